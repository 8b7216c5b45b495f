// Added-token matching on raw text: leftmost-longest over the `added_tokens` of tokenizer.json
// (what the Rust core does with its Aho-Corasick automaton for `normalized: false` tokens).

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** A trie over UTF-16 code units. */
export class AddedTokenMatcher {
  /** 1 for each code unit that starts some added token. */
  readonly firstUnits: Uint8Array = new Uint8Array(65536);
  private readonly children: Map<number, number>[] = [new Map()];
  private tokenIds: Int32Array = new Int32Array(64).fill(-1);
  /** Set by `match`: the id of the token it found. */
  matchedId = -1;

  constructor(tokens: readonly AddedToken[]) {
    for (const t of tokens) {
      if (t.content.length === 0) continue;
      let node = 0;
      for (let i = 0; i < t.content.length; i++) {
        const c = t.content.charCodeAt(i);
        let child = this.children[node]!.get(c);
        if (child === undefined) {
          child = this.children.length;
          this.children.push(new Map());
          this.children[node]!.set(c, child);
        }
        node = child;
      }
      if (node >= this.tokenIds.length) {
        const bigger = new Int32Array(Math.max(node + 1, this.tokenIds.length * 2)).fill(-1);
        bigger.set(this.tokenIds);
        this.tokenIds = bigger;
      }
      this.tokenIds[node] = t.id;
      this.firstUnits[t.content.charCodeAt(0)] = 1;
    }
  }

  /** Length of the longest added token starting at text[pos] (0 if none); its id goes to `matchedId`. */
  match(text: string, pos: number): number {
    let node = 0;
    let best = 0;
    const children = this.children;
    const ids = this.tokenIds;
    for (let j = pos; j < text.length; j++) {
      const child = children[node]!.get(text.charCodeAt(j));
      if (child === undefined) break;
      node = child;
      const id = ids[node]!;
      if (id >= 0) {
        best = j + 1 - pos;
        this.matchedId = id;
      }
    }
    return best;
  }
}

// Fast path for reading a large tokenizer.json straight from its bytes.
//
// `JSON.parse` of Gemma 3's 33 MB tokenizer.json (after a 33 MB UTF-8 decode) builds 515k little
// arrays and a million strings just to turn the merges into pairs of ids. Here the `model.vocab`
// and `model.merges` sections are scanned as bytes instead: every vocab key is hashed by its raw
// (still JSON-escaped) bytes, and each merge's two strings, and their concatenation, are looked up
// by those bytes (equal raw bytes always mean equal strings; the concatenation of two escaped
// strings is the escaped concatenation). Keys are compared by a 64-bit hash of their raw bytes
// (two 32-bit polynomial hashes, so the hash of a concatenation follows from the parts'); the
// vocab keys are checked to have distinct hashes, so for a file whose merges only use vocab pieces
// (which a valid file does) every lookup is exact. Everything else in the file is small and goes through
// JSON.parse. Whenever something is not as expected (an unusual layout, a piece that cannot be
// found by its raw bytes, a duplicate key or id) this returns undefined and the caller falls back to
// the plain JSON.parse path, which also produces the proper error messages.

export interface ModelTables {
  /** Model vocabulary pieces by id (holes allowed). */
  pieces: (string | undefined)[];
  /** Lookup of a model piece's id. */
  idOf: (piece: string) => number | undefined;
  left: Int32Array;
  right: Int32Array;
  merged: Int32Array;
}

export interface FastParsed {
  /** The top-level object, with `model` holding every member except `vocab` and `merges`. */
  root: Record<string, unknown>;
  tables: ModelTables;
}

class Fail extends Error {}

const P = 0x01000193; // hash multipliers (odd)
const P2 = 0x5bd1e995;
const MAX_RAW = 4096; // longest raw key handled

const Q = 0x22; // "
const BS = 0x5c; // backslash

export function fastParseTokenizerJson(buf: Uint8Array): FastParsed | undefined {
  try {
    return new Scanner(buf).parse();
  } catch {
    return undefined; // Fail, or anything unexpected (invalid UTF-8, ...): use JSON.parse
  }
}

/** Lazily built piece -> id map over a pieces array. */
export function lazyIdOf(pieces: readonly (string | undefined)[]): (piece: string) => number | undefined {
  let map: Map<string, number> | undefined;
  return (piece: string) => {
    if (map === undefined) {
      map = new Map();
      for (let id = 0; id < pieces.length; id++) {
        const p = pieces[id];
        if (p !== undefined) map.set(p, id);
      }
    }
    return map.get(piece);
  };
}

class Scanner {
  private pos = 0;
  private readonly buf: Uint8Array;
  private readonly text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private readonly pow = new Int32Array(MAX_RAW + 1);
  private readonly pow2 = new Int32Array(MAX_RAW + 1);
  // vocab table keyed by raw-key hash; slot i holds [hash, hash2, id, unused] at 4i (one cache line)
  private mask = 0;
  private table = new Int32Array(0);
  private pieces: (string | undefined)[] | undefined;
  private vocabCount = 0;
  // result of the last scanned string
  private strHash = 0;
  private strHash2 = 0;
  private strStart = 0;
  private strLen = 0;
  private strPlain = true; // no escapes and ASCII only

  constructor(buf: Uint8Array) {
    // A plain Uint8Array view: subarray() of a Node Buffer makes Buffers, which is slower.
    this.buf = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let x = 1;
    let y = 1;
    for (let i = 0; i <= MAX_RAW; i++) {
      this.pow[i] = x;
      this.pow2[i] = y;
      x = Math.imul(x, P);
      y = Math.imul(y, P2);
    }
  }

  parse(): FastParsed {
    const root: Record<string, unknown> = {};
    let sawModel = false;
    this.ws();
    this.expect(0x7b);
    this.members((key) => {
      if (key === 'model') {
        root[key] = this.parseModel();
        sawModel = true;
      } else root[key] = this.parseSlice();
    });
    this.ws();
    if (this.pos !== this.buf.length || !sawModel || this.pieces === undefined || this.merges === undefined) throw new Fail();
    const pieces = this.pieces;
    // Ids must run from 0 without gaps; one past the entry count is corrupt (the slow path says so).
    const added = Array.isArray(root['added_tokens']) ? root['added_tokens'].length : 0;
    if (pieces.length > this.vocabCount + added) throw new Fail();
    return {
      root,
      tables: { pieces, idOf: lazyIdOf(pieces), left: this.merges.left, right: this.merges.right, merged: this.merges.merged },
    };
  }

  private merges: { left: Int32Array; right: Int32Array; merged: Int32Array } | undefined;

  private parseModel(): Record<string, unknown> {
    const model: Record<string, unknown> = {};
    this.expect(0x7b);
    this.members((key) => {
      if (key === 'vocab') this.parseVocab();
      else if (key === 'merges') this.parseMerges();
      else model[key] = this.parseSlice();
    });
    return model;
  }

  /** Calls `member(key)` with pos at each value, after the opening `{`; consumes the closing `}`. */
  private members(member: (key: string) => void): void {
    this.ws();
    if (this.buf[this.pos] === 0x7d) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      const key = this.readKey();
      this.ws();
      this.expect(0x3a);
      this.ws();
      member(key);
      this.ws();
      const c = this.buf[this.pos++];
      if (c === 0x2c) continue;
      if (c === 0x7d) return;
      throw new Fail();
    }
  }

  private readKey(): string {
    if (this.buf[this.pos] !== Q) throw new Fail();
    this.scanString();
    return this.decodeString(this.strStart, this.strLen, this.strPlain);
  }

  private decodeString(start: number, len: number, plain: boolean): string {
    const raw = this.buf.subarray(start, start + len);
    if (plain) return String.fromCharCode.apply(null, raw as unknown as number[]);
    const s = this.text.decode(raw);
    return s.includes('\\') ? (JSON.parse('"' + s + '"') as string) : s;
  }

  /** At an opening quote: scans the string, leaving its raw span, hashes and plainness in str*. */
  private scanString(): void {
    const buf = this.buf;
    let i = this.pos + 1;
    const start = i;
    let h = 0;
    let h2 = 0;
    let plain = true;
    for (;;) {
      if (i >= buf.length) throw new Fail();
      const c = buf[i]!;
      if (c === Q) break;
      if (c >= 0x80) plain = false;
      h = (Math.imul(h, P) + c) | 0;
      h2 = (Math.imul(h2, P2) + c) | 0;
      i++;
      if (c === BS) {
        plain = false;
        if (i >= buf.length) throw new Fail();
        const d = buf[i]!;
        h = (Math.imul(h, P) + d) | 0;
        h2 = (Math.imul(h2, P2) + d) | 0;
        i++;
      }
    }
    this.strHash = h;
    this.strHash2 = h2;
    this.strStart = start;
    this.strLen = i - start;
    this.strPlain = plain;
    this.pos = i + 1;
  }

  /** Any JSON value, handed to JSON.parse. */
  private parseSlice(): unknown {
    const start = this.pos;
    this.skipValue();
    const s = this.text.decode(this.buf.subarray(start, this.pos));
    try {
      return JSON.parse(s);
    } catch {
      throw new Fail();
    }
  }

  private skipValue(): void {
    const buf = this.buf;
    const c = buf[this.pos];
    if (c === Q) {
      this.scanString();
      return;
    }
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      let i = this.pos;
      for (;;) {
        if (i >= buf.length) throw new Fail();
        const d = buf[i]!;
        if (d === Q) {
          this.pos = i;
          this.scanString();
          i = this.pos;
          continue;
        }
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          depth--;
          if (depth === 0) {
            this.pos = i + 1;
            return;
          }
        }
        i++;
      }
    }
    let i = this.pos;
    while (i < buf.length) {
      const d = buf[i]!;
      if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) break;
      i++;
    }
    if (i === this.pos) throw new Fail();
    this.pos = i;
  }

  private ws(): void {
    const buf = this.buf;
    let i = this.pos;
    while (i < buf.length) {
      const c = buf[i]!;
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.pos = i;
  }

  private expect(c: number): void {
    if (this.buf[this.pos] !== c) throw new Fail();
    this.pos++;
  }

  private slotOf(h: number): number {
    let x = h ^ (h >>> 16);
    x = Math.imul(x, 0x45d9f3b);
    x ^= x >>> 16;
    return x & this.mask;
  }

  /** Id of the vocab key with these hashes, or -1. */
  private lookup(h: number, h2: number): number {
    let i = this.slotOf(h);
    const t = this.table;
    for (;;) {
      const id = t[4 * i + 2]!;
      if (id === -1) return -1;
      if (t[4 * i] === h && t[4 * i + 1] === h2) return id;
      i = (i + 1) & this.mask;
    }
  }

  private insert(h: number, h2: number, id: number): void {
    const t = this.table;
    let i = this.slotOf(h);
    while (t[4 * i + 2] !== -1) i = (i + 1) & this.mask;
    t[4 * i] = h;
    t[4 * i + 1] = h2;
    t[4 * i + 2] = id;
  }

  private parseVocab(): void {
    if (this.pieces !== undefined) throw new Fail();
    const buf = this.buf;
    const sectionStart = this.pos;
    this.expect(0x7b);
    let cap = 1 << 19;
    this.allocTable(cap);
    let count = 0;
    const pieces: (string | undefined)[] = [];
    // Keys are recorded as UTF-16 offsets into the section decoded once, then sliced out.
    const keyIds: number[] = [];
    const keyFrom: number[] = [];
    const keyTo: number[] = [];
    const keyPlain: boolean[] = [];
    let units = 0; // UTF-16 units decoded so far, at byte `scanned`
    let scanned = sectionStart;
    const unitsAt = (byte: number): number => {
      for (let i = scanned; i < byte; i++) {
        const b = buf[i]!;
        if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
      }
      scanned = byte;
      return units;
    };
    this.ws();
    if (buf[this.pos] === 0x7d) this.pos++;
    else {
      for (;;) {
        this.ws();
        if (buf[this.pos] !== Q) throw new Fail();
        this.scanString();
        const h = this.strHash;
        const h2 = this.strHash2;
        const start = this.strStart;
        const len = this.strLen;
        if (len > MAX_RAW) throw new Fail();
        this.ws();
        this.expect(0x3a);
        this.ws();
        let id = 0;
        let digits = 0;
        for (;;) {
          // Past the end, buf[pos] is undefined, which compares false both ways: a file cut
          // inside an id would loop here for ever without the explicit end check.
          const c = this.pos < buf.length ? buf[this.pos]! : -1;
          if (c < 0x30 || c > 0x39) break;
          id = id * 10 + (c - 0x30);
          digits++;
          this.pos++;
        }
        if (digits === 0 || digits > 9) throw new Fail();
        if (pieces[id] !== undefined) throw new Fail(); // duplicate id: let the slow path report it
        pieces[id] = '';
        if (this.lookup(h, h2) !== -1) throw new Fail(); // duplicate key (or a hash collision)
        if ((count + 1) * 2 > cap) {
          cap *= 2;
          this.rehash(cap);
        }
        this.insert(h, h2, id);
        count++;
        keyIds.push(id);
        keyFrom.push(unitsAt(start));
        keyTo.push(unitsAt(start + len));
        keyPlain.push(this.strPlain || !this.hasBackslash(start, len));
        this.ws();
        const c = buf[this.pos++];
        if (c === 0x2c) continue;
        if (c === 0x7d) break;
        throw new Fail();
      }
    }
    this.vocabCount = count;
    const section = this.text.decode(buf.subarray(sectionStart, this.pos));
    for (let k = 0; k < keyIds.length; k++) {
      const raw = section.slice(keyFrom[k]!, keyTo[k]!);
      pieces[keyIds[k]!] = keyPlain[k] ? raw : (JSON.parse('"' + raw + '"') as string);
    }
    this.pieces = pieces;
  }

  private hasBackslash(start: number, len: number): boolean {
    for (let i = start; i < start + len; i++) if (this.buf[i] === BS) return true;
    return false;
  }

  private allocTable(cap: number): void {
    this.mask = cap - 1;
    this.table = new Int32Array(cap * 4);
    for (let i = 2; i < this.table.length; i += 4) this.table[i] = -1;
  }

  private rehash(cap: number): void {
    const old = this.table;
    this.allocTable(cap);
    for (let j = 0; j < old.length; j += 4) if (old[j + 2] !== -1) this.insert(old[j]!, old[j + 1]!, old[j + 2]!);
  }

  private parseMerges(): void {
    if (this.pieces === undefined || this.merges !== undefined) throw new Fail(); // needs the vocab first
    const buf = this.buf;
    this.expect(0x5b);
    let cap = 1 << 19;
    let left = new Int32Array(cap);
    let right = new Int32Array(cap);
    let merged = new Int32Array(cap);
    let n = 0;
    this.ws();
    if (buf[this.pos] === 0x5d) this.pos++;
    else {
      for (;;) {
        this.ws();
        this.expect(0x5b); // only the [a, b] form; "a b" strings take the slow path
        this.ws();
        if (buf[this.pos] !== Q) throw new Fail();
        this.scanString();
        const ha = this.strHash;
        const ha2 = this.strHash2;
        this.ws();
        this.expect(0x2c);
        this.ws();
        if (buf[this.pos] !== Q) throw new Fail();
        this.scanString();
        const hb = this.strHash;
        const hb2 = this.strHash2;
        const lb = this.strLen;
        this.ws();
        this.expect(0x5d);
        if (lb > MAX_RAW) throw new Fail();
        const ia = this.lookup(ha, ha2);
        const ib = this.lookup(hb, hb2);
        const im = this.lookup((Math.imul(ha, this.pow[lb]!) + hb) | 0, (Math.imul(ha2, this.pow2[lb]!) + hb2) | 0);
        if (ia < 0 || ib < 0 || im < 0) throw new Fail();
        if (n === cap) {
          cap *= 2;
          left = grow(left, cap);
          right = grow(right, cap);
          merged = grow(merged, cap);
        }
        left[n] = ia;
        right[n] = ib;
        merged[n] = im;
        n++;
        this.ws();
        const c = buf[this.pos++];
        if (c === 0x2c) continue;
        if (c === 0x5d) break;
        throw new Fail();
      }
    }
    this.merges = { left: left.slice(0, n), right: right.slice(0, n), merged: merged.slice(0, n) };
  }
}

function grow(a: Int32Array, cap: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(cap);
  b.set(a);
  return b;
}

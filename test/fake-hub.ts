// A local fake of the Hugging Face hub for the pull tests: the endpoints @huggingface/hub calls,
// with the hub's shapes. Model info (`/api/models/O/N/revision/REV`, with `sha` and siblings),
// the tree listing (`/api/models/O/N/tree/REV`, paginated by Link headers, LFS files with their
// sha256), `resolve` (small files served directly with their git blob id as ETag; LFS files
// redirected with 302 to a "CDN" path that serves Range requests), 401/403 for a gated
// repository, 401 for an invalid token and 404 for unknown repositories and files. It can cut a
// transfer after N bytes or flip a byte, and it logs every request.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  /** Path in the repository → content. */
  files: Record<string, Buffer>;
  /** Requires a granted token to resolve files (model info and tree stay public, as on the hub). */
  gated?: boolean;
  commit?: string;
  /** Raw entries added to the tree listing (a hostile mirror's). */
  treeExtra?: Record<string, unknown>[];
}

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | undefined;
  auth: string | undefined;
}

interface Served {
  content: Buffer;
  sha256: string;
  oid: string;
  lfs: boolean;
}

const LFS_THRESHOLD = 10_000;

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  /** Files (by path in the repo) whose next transfer is cut after this many bytes of the response. */
  readonly cutOnce = new Map<string, number>();
  /** Files whose next (or every, with `always`) full transfer has one byte flipped. */
  readonly corrupt = new Map<string, 'once' | 'always'>();
  /** Tokens that exist; of them, those granted access to gated repositories. */
  readonly validTokens = new Set<string>(['hf_granted', 'hf_not_granted']);
  readonly grantedTokens = new Set<string>(['hf_granted']);
  url = '';
  private readonly repos = new Map<string, { commit: string; gated: boolean; files: Map<string, Served>; treeExtra: Record<string, unknown>[] }>();
  private readonly byHash = new Map<string, { repo: string; path: string }>();
  private server: Server | null = null;

  constructor(repos: Record<string, FakeRepo>) {
    for (const [name, repo] of Object.entries(repos)) this.addRepo(name, repo);
  }

  addRepo(name: string, repo: FakeRepo): void {
    const files = new Map<string, Served>();
    for (const [path, content] of Object.entries(repo.files)) {
      const sha256 = createHash('sha256').update(content).digest('hex');
      const oid = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
      files.set(path, { content, sha256, oid, lfs: content.length >= LFS_THRESHOLD });
      this.byHash.set(sha256, { repo: name, path });
    }
    const commit = repo.commit ?? createHash('sha1').update(name).digest('hex');
    this.repos.set(name, { commit, gated: repo.gated ?? false, files, treeExtra: repo.treeExtra ?? [] });
  }

  commitOf(repo: string): string {
    return this.repos.get(repo)!.commit;
  }

  sha256Of(repo: string, path: string): string {
    return this.repos.get(repo)!.files.get(path)!.sha256;
  }

  /**
   * Paths of the files the client downloaded: requests for a file's content to its end (whole, or
   * resumed with a Range); probes of its first bytes (`bytes=0-0`, a header peek) are not counted.
   */
  downloads(): string[] {
    return this.log.filter((r) => (r.path.startsWith('/cdn/') || r.path.includes('/resolve/')) && !this.isHeadProbe(r))
      .map((r) => this.pathOfRequest(r.path)).filter((p): p is string => p !== null);
  }

  private isHeadProbe(r: LoggedRequest): boolean {
    const m = /^bytes=0-(\d+)$/.exec(r.range ?? '');
    if (!m) return false;
    const path = this.pathOfRequest(r.path);
    const size = [...this.repos.values()].map((repo) => path !== null ? repo.files.get(path)?.content.length : undefined).find((n) => n !== undefined);
    return size === undefined || Number(m[1]) < size - 1;
  }

  /** Every file path touched by a resolve request (probes included). */
  resolved(): string[] {
    return [...new Set(this.log.filter((r) => r.path.includes('/resolve/')).map((r) => decodeURIComponent(r.path.split('/resolve/')[1]!.split('/').slice(1).join('/'))))];
  }

  private pathOfRequest(path: string): string | null {
    if (path.startsWith('/cdn/')) return this.byHash.get(path.slice(5).split('?')[0]!)?.path ?? null;
    return decodeURIComponent(path.split('/resolve/')[1]!.split('/').slice(1).join('/'));
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((ok) => this.server!.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const auth = req.headers.authorization;
    this.log.push({ method: req.method ?? 'GET', path: url.pathname + url.search, range: req.headers.range, auth });
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    if (token !== undefined && !this.validTokens.has(token)) {
      return json(res, 401, { error: 'Invalid credentials in Authorization header' });
    }
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (m) return this.modelInfo(res, m[1]!, decodeURIComponent(m[2]!));
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (m) return this.tree(res, m[1]!, m[2]!, url);
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) return this.resolve(req, res, m[1]!, decodeURIComponent(m[2]!), decodeURIComponent(m[3]!), token);
    m = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (m) {
      const where = this.byHash.get(m[1]!);
      if (!where) return json(res, 404, { error: 'no such object' });
      return this.serve(req, res, where.path, this.repos.get(where.repo)!.files.get(where.path)!, `"${m[1]}"`);
    }
    json(res, 404, { error: 'Not found' });
  }

  private repoOr404(res: ServerResponse, name: string, revision: string): { commit: string; gated: boolean; files: Map<string, Served>; treeExtra: Record<string, unknown>[] } | null {
    const repo = this.repos.get(name);
    if (!repo) {
      json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
      return null;
    }
    if (!['main', 'HEAD', repo.commit].includes(revision)) {
      json(res, 404, { error: `Invalid rev id: ${revision}` }, { 'X-Error-Code': 'RevisionNotFound' });
      return null;
    }
    return repo;
  }

  private modelInfo(res: ServerResponse, name: string, revision: string): void {
    const repo = this.repoOr404(res, name, revision);
    if (!repo) return;
    json(res, 200, {
      _id: createHash('md5').update(name).digest('hex').slice(0, 24), id: name, modelId: name, sha: repo.commit,
      private: false, gated: repo.gated ? 'manual' : false, disabled: false, downloads: 0, likes: 0,
      lastModified: '2025-03-12T00:00:00.000Z', pipeline_tag: 'image-text-to-text', library_name: 'transformers',
      siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private tree(res: ServerResponse, name: string, revision: string, url: URL): void {
    const repo = this.repoOr404(res, name, decodeURIComponent(revision));
    if (!repo) return;
    const entries = [...repo.files].map(([path, f]) => ({
      type: 'file', oid: f.oid, size: f.content.length, path,
      ...(f.lfs ? { lfs: { oid: f.sha256, size: f.content.length, pointerSize: 134 } } : {}),
    }) as Record<string, unknown>).concat(repo.treeExtra);
    // Pages of 4 entries linked by `Link: <...>; rel="next"`, as the hub paginates long listings.
    const start = Number(url.searchParams.get('cursor') ?? 0);
    const page = entries.slice(start, start + 4);
    const headers: Record<string, string> = {};
    if (start + 4 < entries.length) {
      const next = new URL(url);
      next.searchParams.set('cursor', String(start + 4));
      headers.Link = `<${next.href}>; rel="next"`;
    }
    json(res, 200, page, headers);
  }

  private resolve(req: IncomingMessage, res: ServerResponse, name: string, revision: string, path: string, token: string | undefined): void {
    const repo = this.repoOr404(res, name, revision);
    if (!repo) return;
    if (repo.gated && !(token && this.grantedTokens.has(token))) {
      if (!token) {
        return json(res, 401, { error: `Access to model ${name} is restricted. You must have access to it and be authenticated to access it. Please log in.` },
          { 'X-Error-Code': 'GatedRepo' });
      }
      return json(res, 403, { error: `Access to model ${name} is restricted and you are not in the authorized list. Visit ${this.url}/${name} to ask for access.` },
        { 'X-Error-Code': 'GatedRepo' });
    }
    const file = repo.files.get(path);
    if (!file) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
    if (file.lfs) {
      res.writeHead(302, {
        Location: `/cdn/${file.sha256}`, 'X-Linked-Size': String(file.content.length), 'X-Linked-ETag': `"${file.sha256}"`,
        'X-Repo-Commit': repo.commit, 'Content-Length': 0,
      });
      res.end();
      return;
    }
    this.serve(req, res, path, file, `"${file.oid}"`, { 'X-Repo-Commit': repo.commit });
  }

  private serve(req: IncomingMessage, res: ServerResponse, path: string, file: Served, etag: string, extra: Record<string, string> = {}): void {
    let content = file.content;
    const total = content.length;
    let start = 0;
    let end = total - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), total - 1) : total - 1;
      if (start >= total) {
        res.writeHead(416, { 'Content-Range': `bytes */${total}` });
        res.end();
        return;
      }
    }
    // A read that stops before the end is a probe (size, or a header peek), not a download.
    const isProbe = range !== null && end < total - 1;
    const mode = this.corrupt.get(path);
    if (mode && !isProbe) {
      content = Buffer.from(content);
      content[Math.floor(total / 2)] ^= 0x20;
      if (mode === 'once') this.corrupt.delete(path);
    }
    const body = content.subarray(start, end + 1);
    res.writeHead(range ? 206 : 200, {
      'Content-Length': body.length, 'Accept-Ranges': 'bytes', ETag: etag, 'Content-Type': 'application/octet-stream',
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${total}` } : {}), ...extra,
    });
    const cut = this.cutOnce.get(path);
    if (cut !== undefined && !isProbe && cut < body.length) {
      this.cutOnce.delete(path);
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Splits a safetensors file into `parts` shards (tensors in file order) and the index that lists
 * them, as transformers writes sharded checkpoints.
 */
export function shardSafetensors(bytes: Buffer, parts: number): { shards: Record<string, Buffer>; index: Buffer } {
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, any>;
  const data = bytes.subarray(8 + headerLength);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const per = Math.ceil(names.length / parts);
  const shards: Record<string, Buffer> = {};
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let p = 0; p < parts; p++) {
    const file = `model-${String(p + 1).padStart(5, '0')}-of-${String(parts).padStart(5, '0')}.safetensors`;
    const own: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    const chunks: Buffer[] = [];
    let offset = 0;
    for (const name of names.slice(p * per, (p + 1) * per)) {
      const { dtype, shape, data_offsets: [s, e] } = header[name];
      own[name] = { dtype, shape, data_offsets: [offset, offset + (e - s)] };
      chunks.push(data.subarray(s, e));
      offset += e - s;
      weightMap[name] = file;
    }
    totalSize += offset;
    let text = JSON.stringify(own);
    text += ' '.repeat((8 - (text.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
    shards[file] = Buffer.concat([len, Buffer.from(text), ...chunks]);
  }
  const index = Buffer.from(JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
  return { shards, index };
}

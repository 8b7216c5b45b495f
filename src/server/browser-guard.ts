// Browser safety for a server on someone's own machine. A web page the user happens to visit can
// send requests to http://127.0.0.1:PORT: a cross-origin POST with `Content-Type: text/plain`
// needs no CORS preflight, so without a check any site could generate on the user's model; and a
// site that rebinds its own DNS name to 127.0.0.1 can even read the answers (the browser then
// considers the server same-origin with the attacker's page). Two checks close both holes:
//  - Host: the request must name this server by an IP address, `localhost`, this machine's
//    name or a host the operator allowed (`--allowed-hosts`); a rebinding attacker's Host is
//    their own domain name.
//  - Origin: a browser marks every cross-origin request (and every POST) with its page's origin;
//    only the server's own page and the origins allowed by `--cors-origin` may call the API.
//    Clients that are not browsers (curl, SDKs) send no Origin and are not affected.
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error.js';

export interface BrowserGuardOptions {
  /** Origins whose pages may call the API (exact `scheme://host[:port]`), or ['*'] for any. */
  corsOrigins: readonly string[];
  /** Extra host names accepted in the Host header (`.example.com` also matches subdomains), or ['*'] for any. */
  allowedHosts: readonly string[];
}

/** Parses a comma-separated flag value into a list ('' → empty). */
export function listOption(value: string | readonly string[] | undefined): string[] {
  if (value === undefined) return [];
  const items = typeof value === 'string' ? value.split(',') : [...value];
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

export class BrowserGuard {
  private readonly machineNames: Set<string>;

  constructor(private readonly options: BrowserGuardOptions) {
    const name = hostname().toLowerCase();
    this.machineNames = new Set([name, `${name}.local`, 'localhost']);
  }

  /** The origin to echo in Access-Control-Allow-Origin for this request, if it is an allowed foreign origin. */
  corsOriginFor(req: IncomingMessage): string | null {
    const origin = req.headers.origin;
    if (typeof origin !== 'string') return null;
    if (this.options.corsOrigins.includes('*')) return '*';
    return this.options.corsOrigins.includes(origin) ? origin : null;
  }

  /** Throws ApiError 403 unless the Host header names this server and the Origin (if any) is allowed. */
  check(req: IncomingMessage): void {
    const host = hostOnly(req.headers.host);
    if (host === null || !this.hostAllowed(host)) {
      throw new ApiError(403,
        `Requests must address this server by IP address or localhost; the Host ${JSON.stringify(req.headers.host ?? '')} is not allowed. ` +
        'Start the server with --allowed-hosts NAME to accept another name.', 'invalid_request_error', null, 'host_not_allowed');
    }
    const origin = req.headers.origin;
    if (origin === undefined || this.corsOriginFor(req) !== null) return;
    if (typeof origin === 'string' && this.isOwnOrigin(origin, req)) return;
    throw new ApiError(403,
      `Cross-origin requests from ${JSON.stringify(String(origin))} are not allowed. ` +
      'Start the server with --cors-origin ORIGIN to let that web page call the API.', 'invalid_request_error', null, 'origin_not_allowed');
  }

  private hostAllowed(host: string): boolean {
    const allowed = this.options.allowedHosts;
    if (allowed.includes('*')) return true;
    // An IP literal cannot be rebound: a page can only reach it under its own (IP) origin.
    if (isIP(host) !== 0 || this.machineNames.has(host) || host.endsWith('.localhost')) return true;
    return allowed.some((a) => {
      const name = a.toLowerCase();
      return name.startsWith('.') ? host === name.slice(1) || host.endsWith(name) : host === name;
    });
  }

  /** The server's own page: the Origin is the very scheme://host:port the request was sent to. */
  private isOwnOrigin(origin: string, req: IncomingMessage): boolean {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false; // 'null' (sandboxed frames, file: pages) and garbage
    }
    let target: URL;
    try {
      target = new URL(`${url.protocol}//${req.headers.host ?? ''}`);
    } catch {
      return false;
    }
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === target.host;
  }
}

/** `Host` header → lower-case host name without port or IPv6 brackets; null when missing or malformed. */
export function hostOnly(header: string | undefined): string | null {
  if (!header) return null;
  let url: URL;
  try {
    url = new URL(`http://${header}`);
  } catch {
    return null;
  }
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) return null;
  const name = url.hostname.toLowerCase();
  return name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
}

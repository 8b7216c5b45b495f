// Fetching an image URL that a client named (`--allow-remote-images`) without letting clients use
// the server to reach places they cannot: loopback, private networks, link-local addresses (cloud
// metadata at 169.254.169.254) and the like are refused after DNS resolution, on the very address
// the socket then connects to (no second lookup that could be rebound), and again for every
// redirect. Every failure reads the same to the client, so probing cannot tell an open port from
// a closed one or a blocked address from a dead host.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface RemoteImageOptions {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Time for the whole fetch, redirects included. */
  timeoutMs: number;
  /** Aborts the fetch (the client went away). */
  signal?: AbortSignal;
  /** Also fetch from loopback, private and link-local addresses (for trusted networks). */
  allowPrivate?: boolean;
  /** Which resolved addresses are refused (default isBlockedAddress; tests narrow it). */
  isBlocked?: (address: string) => boolean;
}

/** Why a fetch failed: `unreachable` hides the reason on purpose; the others are the client's to know. */
export class RemoteImageError extends Error {
  constructor(readonly reason: 'unreachable' | 'status' | 'too_large' | 'aborted', message: string) {
    super(message);
  }
}

const MAX_REDIRECTS = 5;

const BLOCKED = (() => {
  const list = new BlockList();
  const v4: [string, number][] = [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
    ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
  ];
  for (const [net, bits] of v4) list.addSubnet(net, bits, 'ipv4');
  const v6: [string, number][] = [
    ['::', 128], ['::1', 128], ['100::', 64], ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
  ];
  for (const [net, bits] of v6) list.addSubnet(net, bits, 'ipv6');
  return list;
})();

/** Whether `address` (an IP literal) is one a client-named URL may not reach. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family !== 6) return true;
  const embedded = embeddedIpv4(address);
  if (embedded !== null) return BLOCKED.check(embedded, 'ipv4');
  return BLOCKED.check(address, 'ipv6');
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedIpv4(address: string): string | null {
  const groups = expandIpv6(address);
  if (groups === null) return null;
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  const mapped = zeros(0, 5) && groups[5] === 0xffff;
  const compatible = zeros(0, 6) && (groups[6]! !== 0 || groups[7]! > 1);
  const nat64 = groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6);
  if (!mapped && !compatible && !nat64) return null;
  return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.');
}

/** An IPv6 literal → its eight 16-bit groups (null if malformed). */
function expandIpv6(address: string): number[] | null {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const b = dotted.slice(1).map(Number);
    text = text.slice(0, dotted.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  return groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

/** A DNS lookup for the socket that refuses blocked addresses (so the checked address is the one used). */
const guardedLookup = (isBlocked: (address: string) => boolean): LookupFunction => (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const usable = addresses.filter((a) => !isBlocked(a.address));
    if (usable.length === 0) return callback(Object.assign(new Error('blocked address'), { code: 'EBLOCKED' }), '', 0);
    if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
    callback(null, usable[0]!.address, usable[0]!.family);
  });
};

/** GETs `url` (http or https), following redirects, within the limits; the body's bytes. */
export async function fetchRemoteImage(url: string, options: RemoteImageOptions): Promise<Uint8Array> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs);
  const onAbort = () => controller.abort();
  options.signal?.addEventListener('abort', onAbort);
  try {
    let target = url;
    for (let hop = 0; ; hop++) {
      const res = await get(target, options, controller.signal);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (hop >= MAX_REDIRECTS) throw new RemoteImageError('status', `too many redirects (more than ${MAX_REDIRECTS})`);
        target = new URL(res.headers.location, target).toString();
        continue;
      }
      if (status !== 200) {
        res.resume();
        throw new RemoteImageError('status', `the server answered HTTP ${status}`);
      }
      return await readBody(res, options.maxBytes, controller.signal);
    }
  } catch (err) {
    if (err instanceof RemoteImageError) throw err;
    if (options.signal?.aborted) throw new RemoteImageError('aborted', 'the request was cancelled');
    throw new RemoteImageError('unreachable', 'the image could not be fetched (the host is unreachable, not allowed, or too slow)');
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function get(target: string, options: RemoteImageOptions, signal: AbortSignal): Promise<IncomingMessage> {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return Promise.reject(new RemoteImageError('unreachable', 'the image URL is not a valid URL'));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new Error('scheme'));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const isBlocked = options.isBlocked ?? isBlockedAddress;
  // An IP literal is connected to without a lookup, so it is checked here.
  if (!options.allowPrivate && isIP(host) !== 0 && isBlocked(host)) return Promise.reject(new Error('blocked address'));
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'GET', signal, headers: { Accept: 'image/*' }, ...(options.allowPrivate ? {} : { lookup: guardedLookup(isBlocked) }),
    }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function readBody(res: IncomingMessage, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.destroy();
    throw new RemoteImageError('too_large', `the image is larger than ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw new RemoteImageError('too_large', `the image is larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  } finally {
    res.destroy();
  }
  if (signal.aborted) throw new Error('aborted');
  return new Uint8Array(Buffer.concat(chunks));
}

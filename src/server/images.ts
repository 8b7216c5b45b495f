// Images from requests, checked on the HTTP thread before a job is queued: OpenAI `image_url`
// data: URLs (and http(s) URLs when the server allows them), Ollama base64 strings. Each
// becomes encoded bytes whose format is recognised and whose size (read from its header, no
// pixel decoded) is within the server's limits and counted against its in-flight budget, so a
// burst of huge pictures is refused before the model thread spends minutes decoding them.
// Clients never name files: a string that is not a data: or allowed http(s) URL is refused.
import { GemmaError } from '../errors.js';
import { loadSharp, parseDataUrl, sniffImageFormat } from '../vision/decode.js';
import { invalidParam } from './api-error.js';
import type { Claim } from './engine.js';
import { fetchRemoteImage, RemoteImageError } from './remote-image.js';

export interface ImageOptions {
  /** Fetch http(s) image URLs (off by default: the server would fetch whatever a client names). */
  allowRemote: boolean;
  /** Let those URLs reach loopback, private and link-local addresses (default false). */
  allowPrivateHosts?: boolean;
  /** Largest image, encoded, in bytes; also the most bytes one request may fetch in total. */
  maxBytes: number;
  /** Largest image in pixels (width × height). */
  maxPixels: number;
  /** Timeout of a remote fetch, in milliseconds. */
  fetchTimeoutMs?: number;
  /** When all of a request's remote images must have arrived (Date.now() time); default none. */
  deadline?: number;
  /** The client went away: stop fetching. */
  signal?: AbortSignal;
}

/**
 * An OpenAI `image_url.url` → encoded bytes; ApiError 400 naming `param` when it is not a usable image.
 * With `checkOnly`, an allowed http(s) URL is not fetched (the result is then empty).
 */
export async function imageFromUrl(url: string, param: string, options: ImageOptions, claim?: Claim, checkOnly = false): Promise<Uint8Array> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'data') {
    return checked(() => parseDataUrl(url, options.maxBytes), param);
  }
  if (scheme === 'http' || scheme === 'https') {
    if (!options.allowRemote) {
      throw invalidParam(param, 'image URLs over http(s) are disabled on this server (start it with --allow-remote-images); ' +
        'send the image inline as a data: URL (data:image/png;base64,...)', 'invalid_image_url');
    }
    if (checkOnly) return new Uint8Array(0);
    // One request may fetch at most maxBytes in all, however many URLs it names.
    const room = options.maxBytes - (claim?.fetched ?? 0);
    if (room <= 0) throw invalidParam(param, `the request's images are larger than ${options.maxBytes} bytes in all`, 'invalid_image');
    const left = (options.deadline ?? Infinity) - Date.now();
    if (left <= 0) throw invalidParam(param, 'could not fetch the image: the request\'s images took too long to fetch in all', 'invalid_image_url');
    const timeout = Math.min(options.fetchTimeoutMs ?? 15_000, left);
    const bytes = checked(await fetchImage(url, param, { ...options, maxBytes: room, fetchTimeoutMs: timeout }), param);
    claim?.addFetched(bytes.length);
    return bytes;
  }
  throw invalidParam(param, `the image URL must be a data: URL (data:image/png;base64,...)${options.allowRemote ? ' or an http(s) URL' : ''}, ` +
    `got ${JSON.stringify(url.slice(0, 40))}${url.length > 40 ? '...' : ''}`, 'invalid_image_url');
}

/** An Ollama `images[]` entry (base64, optionally as a data: URL) → encoded bytes. */
export function imageFromBase64(data: string, param: string, maxBytes: number): Uint8Array {
  if (/^data:/i.test(data)) return checked(() => parseDataUrl(data, maxBytes), param);
  const b64 = data.replace(/\s+/g, '');
  if (b64 === '' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) {
    throw invalidParam(param, 'the image is not valid base64', 'invalid_image');
  }
  if ((b64.length * 3) / 4 > maxBytes) throw invalidParam(param, `the image is larger than ${maxBytes} bytes`, 'invalid_image');
  return checked(() => new Uint8Array(Buffer.from(b64, 'base64')), param);
}

/**
 * Reads the picture's size from its header (no pixels decoded): ApiError 400 over `maxPixels`,
 * else the pixels are counted on `claim` (429 when the server already holds too many).
 */
export async function admitImagePixels(bytes: Uint8Array, param: string, maxPixels: number, claim: Claim): Promise<void> {
  const sharp = await loadSharp();
  let width = 0;
  let height = 0;
  try {
    const meta = await sharp(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { limitInputPixels: false, pages: 1 }).metadata();
    width = meta.autoOrient?.width ?? meta.width ?? 0;
    height = meta.autoOrient?.height ?? meta.height ?? 0;
  } catch (err) {
    throw invalidParam(param, `invalid image: its header could not be read (${(err as Error).message})`, 'invalid_image');
  }
  if (!(width > 0 && height > 0)) throw invalidParam(param, `invalid image: it has zero size (${width}x${height})`, 'invalid_image');
  if (width * height > maxPixels) {
    throw invalidParam(param, `the image is ${width}x${height} = ${width * height} pixels, over this server's limit of ${maxPixels} ` +
      '(the model sees 896x896 anyway: scale it down before sending)', 'image_too_large');
  }
  claim.add(0, width * height);
}

/** Runs `get` and checks that the bytes start like a supported image format. */
function checked(get: Uint8Array | (() => Uint8Array), param: string): Uint8Array {
  try {
    const bytes = typeof get === 'function' ? get() : get;
    if (bytes.length === 0) throw new GemmaError('BAD_FORMAT', 'the image is empty');
    sniffImageFormat(bytes, 'the image');
    return bytes;
  } catch (err) {
    if (err instanceof GemmaError) throw invalidParam(param, `invalid image: ${err.message}`, 'invalid_image');
    throw err;
  }
}

async function fetchImage(url: string, param: string, options: ImageOptions): Promise<Uint8Array> {
  try {
    return await fetchRemoteImage(url, {
      maxBytes: options.maxBytes, timeoutMs: options.fetchTimeoutMs ?? 15_000, allowPrivate: options.allowPrivateHosts ?? false,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    if (!(err instanceof RemoteImageError)) throw err;
    const code = err.reason === 'too_large' ? 'invalid_image' : 'invalid_image_url';
    throw invalidParam(param, `could not fetch the image ${shortUrl(url)}: ${err.message}`, code);
  }
}

function shortUrl(url: string): string {
  return url.length > 80 ? `${url.slice(0, 77)}...` : url;
}

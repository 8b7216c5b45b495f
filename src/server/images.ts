// Images from requests, checked on the HTTP thread before a job is queued: OpenAI `image_url`
// data: URLs (and http(s) URLs when the server allows them), Ollama base64 strings. Each
// becomes encoded bytes whose format is recognised; decoding to pixels is the library's job.
// Clients never name files: a string that is not a data: or allowed http(s) URL is refused.
import { GemmaError } from '../errors.js';
import { parseDataUrl, sniffImageFormat } from '../vision/decode.js';
import { invalidParam } from './api-error.js';

export interface ImageOptions {
  /** Fetch http(s) image URLs (off by default: the server would fetch whatever a client names). */
  allowRemote: boolean;
  /** Largest image, encoded, in bytes. */
  maxBytes: number;
  /** Timeout of a remote fetch, in milliseconds. */
  fetchTimeoutMs?: number;
}

/**
 * An OpenAI `image_url.url` → encoded bytes; ApiError 400 naming `param` when it is not a usable image.
 * With `checkOnly`, an allowed http(s) URL is not fetched (the result is then empty).
 */
export async function imageFromUrl(url: string, param: string, options: ImageOptions, checkOnly = false): Promise<Uint8Array> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'data') {
    return checked(() => parseDataUrl(url, options.maxBytes), param);
  }
  if (scheme === 'http' || scheme === 'https') {
    if (!options.allowRemote) {
      throw invalidParam(param, 'image URLs over http(s) are disabled on this server (start it with --allow-remote-images); ' +
        'send the image inline as a data: URL (data:image/png;base64,...)', 'invalid_image_url');
    }
    return checkOnly ? new Uint8Array(0) : checked(await fetchImage(url, param, options), param);
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
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(options.fetchTimeoutMs ?? 15_000), redirect: 'follow' });
  } catch (err) {
    throw invalidParam(param, `could not fetch the image ${url}: ${(err as Error).message}`, 'invalid_image_url');
  }
  if (!res.ok) throw invalidParam(param, `could not fetch the image ${url}: HTTP ${res.status}`, 'invalid_image_url');
  const declared = Number(res.headers.get('content-length'));
  if (declared > options.maxBytes) throw invalidParam(param, `the image at ${url} is larger than ${options.maxBytes} bytes`, 'invalid_image');
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > options.maxBytes) throw invalidParam(param, `the image at ${url} is larger than ${options.maxBytes} bytes`, 'invalid_image');
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

// HTTP plumbing: bounded JSON bodies, JSON answers, the API key check.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './api-error.js';

/** Default largest request body (images travel inside it as base64). */
export const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/**
 * Reads and parses a JSON body; ApiError 413 past `maxBytes`, 400 when it is not JSON. `meter`
 * is told of the bytes as they arrive and may throw (the server's in-flight budget: 429).
 */
export async function readJson(req: IncomingMessage, maxBytes: number, meter: (bytes: number) => void = () => {}): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    drain(req, maxBytes);
    throw tooLarge(maxBytes);
  }
  // Plain listeners, not for-await: leaving an async iterator early would destroy the socket
  // before the 413 is written.
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      let refusal: unknown = size > maxBytes ? tooLarge(maxBytes) : null;
      if (refusal === null) {
        try {
          meter(chunk.length);
          chunks.push(chunk);
          return;
        } catch (err) {
          refusal = err;
        }
      }
      req.off('data', onData);
      req.off('end', onEnd);
      drain(req, maxBytes);
      reject(refusal);
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', reject);
  });
  const text = body.toString('utf8');
  if (text.trim() === '') throw new ApiError(400, 'The request body is empty; send a JSON object.', 'invalid_request_error', null, 'invalid_json');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `We could not parse the JSON body of your request: ${(err as Error).message}`,
      'invalid_request_error', null, 'invalid_json');
  }
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `The request body is larger than the limit of ${maxBytes} bytes.`, 'invalid_request_error', null, 'request_too_large');
}

/**
 * Lets the rest of an oversized body arrive and be thrown away (so the client reads the 413
 * instead of a reset connection), up to a bound; a bigger upload is cut off.
 */
function drain(req: IncomingMessage, maxBytes: number): void {
  let discarded = 0;
  req.removeAllListeners('data');
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > 4 * maxBytes + 1024 * 1024) req.destroy();
  });
  req.resume();
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The OpenAI error answer; 429 adds Retry-After; a 413 closes the connection. */
export function sendError(res: ServerResponse, err: ApiError): void {
  const headers: Record<string, string> = {};
  if (err.status === 429) headers['Retry-After'] = '1';
  if (err.status === 413) headers.Connection = 'close';
  if (err.status === 401) headers['WWW-Authenticate'] = 'Bearer';
  sendJson(res, err.status, err.toJSON(), headers);
}

/** ApiError 401 unless the request carries `Authorization: Bearer <key>` (constant-time compare). */
export function checkApiKey(req: IncomingMessage, key: string): void {
  const header = req.headers.authorization;
  if (!header) {
    throw new ApiError(401, "You didn't provide an API key. Send it in the Authorization header: 'Authorization: Bearer YOUR_KEY'.",
      'authentication_error', null, 'missing_api_key');
  }
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  const given = createHash('sha256').update(match?.[1] ?? '').digest();
  const wanted = createHash('sha256').update(key).digest();
  if (!match || !timingSafeEqual(given, wanted)) {
    throw new ApiError(401, 'Incorrect API key provided.', 'authentication_error', null, 'invalid_api_key');
  }
}

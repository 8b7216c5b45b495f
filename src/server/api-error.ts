// Errors the HTTP layer answers with: a status and the OpenAI error body
// `{ error: { message, type, param, code } }`. Library errors (GemmaError) are mapped here too.
import { GemmaError } from '../errors.js';

export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The OpenAI error body. */
  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  /** Plain data that survives postMessage (an Error subclass loses its fields there). */
  toData(): ApiErrorData {
    return { status: this.status, message: this.message, type: this.type, param: this.param, code: this.code };
  }

  static fromData(d: ApiErrorData): ApiError {
    return new ApiError(d.status, d.message, d.type, d.param, d.code);
  }
}

export interface ApiErrorData {
  status: number;
  message: string;
  type: ApiErrorType;
  param: string | null;
  code: string | null;
}

/** A 400 about one request field. */
export function invalidParam(param: string, message: string, code: string | null = 'invalid_value'): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

/** A 400 for a field of the wrong type or range: "`temperature` must be a number in [0, 2], got "hot"". */
export function wrongType(param: string, expected: string, actual: unknown): ApiError {
  return invalidParam(param, `'${param}' must be ${expected}, got ${describe(actual)}`, 'invalid_type');
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return typeof value === 'object' ? 'an object' : typeof value;
}

/** Maps anything thrown while serving a request to an ApiError (unknown errors become 500). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof GemmaError) {
    switch (err.code) {
      case 'INVALID_ARGUMENT':
      case 'BAD_FORMAT':
        return new ApiError(400, err.message, 'invalid_request_error', null, 'invalid_value');
      case 'CONTEXT_FULL':
        return new ApiError(400, err.message, 'invalid_request_error', 'messages', 'context_length_exceeded');
      case 'FILE_NOT_FOUND':
        return new ApiError(400, err.message, 'invalid_request_error', null, 'not_found');
      default:
        return new ApiError(500, err.message, 'server_error', null, err.code.toLowerCase());
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, `internal error: ${message}`, 'server_error', null, 'internal_error');
}

// The one error type the library throws. Every failure carries a machine-readable code and a
// message that names the file, tensor or option at fault.

export type GemmaErrorCode =
  | 'INVALID_ARGUMENT' // a caller-supplied option or input is wrong
  | 'FILE_NOT_FOUND' // a model folder or a file it needs is missing
  | 'BAD_FORMAT' // a file is corrupt, truncated or not what its name says
  | 'UNSUPPORTED_MODEL' // a config or file describes a model this engine does not run
  | 'MISSING_TENSOR' // a checkpoint lacks a tensor the config requires
  | 'SHAPE_MISMATCH' // a tensor's shape disagrees with config.json
  | 'CONTEXT_FULL' // a prompt (plus generation) does not fit the context
  | 'ABORTED' // the caller's AbortSignal fired
  | 'NATIVE_UNAVAILABLE' // the native addon could not be loaded
  | 'DISPOSED' // the model was used after dispose()
  | 'ACCESS_DENIED' // the hub refused a download: gated model not accepted, or a bad token
  | 'DOWNLOAD_FAILED'; // the hub or the disk failed during a download (what was fetched is kept to resume)

export class GemmaError extends Error {
  readonly code: GemmaErrorCode;
  /** For a failure of one image of a conversation: its index among the image parts (0-based). */
  readonly imageIndex?: number;

  constructor(code: GemmaErrorCode, message: string, options?: { cause?: unknown; imageIndex?: number }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'GemmaError';
    this.code = code;
    if (options?.imageIndex !== undefined) this.imageIndex = options.imageIndex;
  }
}

/** Uniform wording for a bad option: `invalidArgument('topP', 'a number in (0, 1]', 1.5)`. */
export function invalidArgument(name: string, expected: string, actual: unknown): GemmaError {
  return new GemmaError('INVALID_ARGUMENT', `${name} must be ${expected}, got ${describe(actual)}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return typeof value;
}

// Ollama's `keep_alive` (how long the model stays loaded after a request: seconds, or a duration
// such as "5m"; 0 unloads it now; negative keeps it loaded). This server loads its one model at
// start and keeps it until it stops, so only "keep it loaded" is true to what happens: a negative
// value is accepted, any other is refused with 400 rather than accepted and silently ignored.
import { invalidParam, wrongType } from './api-error.js';

const DURATION = /^(-?)(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)?$/;

export function checkKeepAlive(value: unknown): void {
  if (value === undefined || value === null) return;
  let negative: boolean;
  if (typeof value === 'number' && Number.isFinite(value)) {
    negative = value < 0;
  } else if (typeof value === 'string' && DURATION.test(value.trim())) {
    negative = value.trim().startsWith('-');
  } else {
    throw wrongType('keep_alive', 'a number of seconds or a duration such as "5m"', value);
  }
  if (!negative) {
    throw invalidParam('keep_alive',
      `keep_alive ${JSON.stringify(value)} is not supported: this server loads its model at start and keeps it loaded until it stops; ` +
      'leave keep_alive out, or give a negative value (keep loaded)', 'unsupported_value');
  }
}

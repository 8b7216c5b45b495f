// Which backend a model test runs on: GEMMA3_TEST_BACKEND=native selects the addon (the
// *-native.test files set it), otherwise the TypeScript kernels.
import type { Backend } from '../src/backend/backend.js';
import { JsBackend } from '../src/backend/js-backend.js';
import { selectBackend } from '../src/backend/native-backend.js';

export function testBackend(): Backend {
  return process.env.GEMMA3_TEST_BACKEND === 'native' ? selectBackend('native', 2) : new JsBackend();
}

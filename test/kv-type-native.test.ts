// The KV cache type tests of kv-type.test.ts on the native backend; without the addon, one visibly skipped test says why.
import { test } from 'node:test';
import { loadNativeBinding } from '../src/backend/native-backend.js';

const binding = loadNativeBinding();
if (binding instanceof Error) {
  test('KV cache types on the native backend', { skip: `native addon not built: ${binding.message.split('\n')[0]}` }, () => {});
} else {
  process.env.GEMMA3_TEST_BACKEND = 'native';
  await import('./kv-type.test.js');
}

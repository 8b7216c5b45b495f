// Builds the optional native addon on `npm install`. A failed build is not an install failure:
// the engine then runs on its TypeScript kernels and says so once at load.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (process.env.GEMMA3_SKIP_NATIVE === '1') {
  console.log('gemma3: GEMMA3_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}
const gyp = process.env.npm_config_node_gyp;
const args = gyp && existsSync(gyp) ? [gyp, 'rebuild'] : null;
const result = args
  ? spawnSync(process.execPath, args, { stdio: 'inherit' })
  : spawnSync('node-gyp', ['rebuild'], { stdio: 'inherit', shell: process.platform === 'win32' });
if (result.status !== 0) {
  console.warn('gemma3: the native addon could not be built (needs python3, make and a C compiler); ' +
    'the engine will use its slower TypeScript kernels.');
}

// Builds the optional native addon on `npm install`. A failed build is not an install failure:
// the engine then runs on its TypeScript kernels and says so once at load.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

if (process.env.GEMMA3_SKIP_NATIVE === '1') {
  console.log('gemma3: GEMMA3_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}
const gyp = process.env.npm_config_node_gyp;
// node-gyp downloads Node's headers unless told where they are, which fails offline; Node's own
// installs (the official tarballs, Debian's nodejs) carry them under <prefix>/include/node.
const prefix = dirname(dirname(process.execPath));
const localHeaders = !process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'common.gypi'));
const gypArgs = ['rebuild', ...(localHeaders ? [`--nodedir=${prefix}`] : [])];
const result = gyp && existsSync(gyp)
  ? spawnSync(process.execPath, [gyp, ...gypArgs], { stdio: 'inherit' })
  : spawnSync('node-gyp', gypArgs, { stdio: 'inherit', shell: process.platform === 'win32' });
if (result.status !== 0) {
  console.warn('gemma3: the native addon could not be built (needs python3, make and a C compiler); ' +
    'the engine will use its slower TypeScript kernels.');
}

// Compiles the optional native deflate (native/deflate.c) into native/build/otapack_deflate.node.
// Part of `npm run build`, and the package's `install` script: `npm install` of the tarball runs
// it (npm 11 with a notice unless allowed; not at all with --ignore-scripts or a denying policy).
// Where a C compiler, Node's headers or libdeflate's are missing it says so in one line and exits
// 0: the "zlib" codec then runs on node:zlib (slower, same format); `otapack --version` tells.
// OTAPACK_NO_NATIVE=1 skips it; OTAPACK_NATIVE_REQUIRED=1 (CI) turns a failed build into an error.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'deflate.c');
const walker = join(here, 'deflate-walk.h'); // included by deflate.c (and by the fuzz driver)
const out = join(here, 'build', 'otapack_deflate.node');
const required = process.env.OTAPACK_NATIVE_REQUIRED === '1';

function skip(why) {
  if (required) {
    process.stderr.write(`native deflate: ${why}\n`);
    process.exit(1);
  }
  rmSync(out, { force: true });
  process.stderr.write(`otapack: native deflate not built (${why}); gzip bundles use node:zlib\n`);
  process.exit(0);
}

if (process.env.OTAPACK_NO_NATIVE === '1') skip('OTAPACK_NO_NATIVE=1');
const nodeInclude = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'].find((d) => existsSync(join(d, 'node_api.h')));
if (!nodeInclude) skip("Node's headers (node_api.h) not found");
const cc = process.env.CC || 'cc';
if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) skip(`no C compiler (${cc}); apt-get install gcc libc6-dev`);
if (existsSync(out) && [src, walker, fileURLToPath(import.meta.url)].every((f) => statSync(out).mtimeMs > statSync(f).mtimeMs)) process.exit(0);

mkdirSync(dirname(out), { recursive: true });
const tmp = join(dirname(out), `otapack_deflate.${process.pid}.tmp.node`); // .node: require() loads it as an addon
const r = spawnSync(cc, ['-O2', '-std=c11', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', nodeInclude, src, '-o', tmp, '-ldeflate'], { encoding: 'utf8' });
if (r.status !== 0) {
  rmSync(tmp, { force: true });
  const first = (r.stderr || r.error?.message || '').split('\n').find((l) => /error/i.test(l)) ?? `exit ${r.status}`;
  skip(`${first.trim()}; apt-get install libdeflate-dev`);
}
// the module must load, or the build is useless
const check = spawnSync(process.execPath, ['-e', `const m=require(${JSON.stringify(tmp)});const z=require('zlib');const d=Buffer.from('otapack '.repeat(999));if(!z.inflateRawSync(Buffer.concat([m.deflate(d,6,false),m.deflate(d,6,true)])).equals(Buffer.concat([d,d])))process.exit(3)`], { encoding: 'utf8' });
if (check.status !== 0) {
  rmSync(tmp, { force: true });
  skip(`the compiled module failed its self-check: ${(check.stderr || `exit ${check.status}`).trim().split('\n')[0]}`);
}
renameSync(tmp, out);

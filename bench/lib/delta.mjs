// Release pairs for the delta figures of `npm run bench`, built rootlessly:
//   release 1   mke2fs -d of a realistic tree (bench/lib/rootfs.mjs: real ELF and text files,
//               incompressible blobs, generated logs)
//   (a) lib     one library (~1 % of the used bytes) replaced in place (debugfs rm + write)
//   (b) 5 %     ~5 % of the files (by bytes, every kind) changed in place
//   (c) 30 %    ~30 % of the files changed in place
//   (d) 5 %, rebuilt   (b)'s changes, the rootfs rebuilt from scratch by mke2fs -d (as Buildroot
//               does every build, which moves blocks)
// A changed binary or text file is what a rebuild gives: 64 new bytes near a random point (all
// that follows shifts) and one byte in 4 KiB changed; a blob is new random data; a log is new.
// For each pair: the full bundle (zstd-3 + AES), the rdiff delta bundle made from release 1's
// full .swu (zstd-3 + AES), the zchunk delta (bundle + .zck, bytes fetched from nginx's log), the
// generation times, and the installs by the real client (daemon + swupdate-client) into file
// slots, each result checked byte for byte.
import { spawn, spawnSync } from 'node:child_process';
import { createServer, createConnection } from 'node:net';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, lstat, readFile, rm, writeFile, copyFile, mkdtemp, open } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { populateTree, makeExt4, ext4Used, keystream, generatedText, readStamp } from './rootfs.mjs';
import { measure } from './measure.mjs';

const MiB = 1 << 20;
export const PAIRS = [
  { id: 'a', label: '(a) one library replaced (~1 %)', share: 0.01, single: true, rebuild: false },
  { id: 'b', label: '(b) ~5 % of files changed', share: 0.05, rebuild: false },
  { id: 'c', label: '(c) ~30 % of files changed', share: 0.30, rebuild: false },
  { id: 'd', label: '(d) ~5 % changed, rootfs rebuilt by mke2fs -d', share: 0.05, rebuild: true },
];
const PAIR_VERSION = 2;

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

async function* walk(dir, rel = '') {
  for (const n of (await readdir(join(dir, rel))).sort()) {
    const p = join(rel, n);
    const s = await lstat(join(dir, p));
    if (s.isDirectory()) yield* walk(dir, p);
    else if (s.isFile()) yield { path: p, size: s.size };
  }
}

const kindOf = (p, head) => (p.startsWith('lib/firmware/') || p.startsWith('opt/media/') ? 'random'
  : p.startsWith('var/') ? 'generated'
    : head[0] === 0x7f && head[1] === 0x45 ? 'elf' : 'text');

/** The new content of a changed file, as a rebuild would give it. */
function changed(kind, old, seed) {
  if (kind === 'random') return keystream(`changed-${seed}`, old.length);
  if (kind === 'generated') return generatedText(100000 + seed, old.length);
  const r = rng(seed);
  const at = Math.floor(r() * old.length);
  const out = Buffer.concat([old.subarray(0, at), keystream(`insert-${seed}`, 64), old.subarray(at)]);
  for (let i = Math.floor(r() * 4096); i < out.length; i += 4096) out[i] ^= 0x5a;
  return out;
}

const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB, ...opts, env: { ...process.env, LC_ALL: 'C', ...opts.env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}… failed: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-2).join(' / ')}`);
  return r.stdout;
};

/** Release 1 and the four release-2 images for one size; cached by a stamp. */
export async function buildPairs(work, size, def) {
  const dir = join(work, 'delta', size.toLowerCase());
  await mkdir(dir, { recursive: true });
  const stampPath = join(dir, 'stamp.json');
  const want = { v: PAIR_VERSION, bytes: def.bytes, content: def.content };
  const stamp = await readStamp(stampPath);
  const images = { r1: join(dir, 'release-1.ext4'), ...Object.fromEntries(PAIRS.map((p) => [p.id, join(dir, `release-2${p.id}.ext4`)])) };
  if (stamp && JSON.stringify(stamp.want) === JSON.stringify(want) && Object.values(images).every((p) => existsSync(p))) return { dir, images, facts: stamp.facts };
  process.stderr.write(`bench: building release pairs (${def.label})…\n`);
  const tree = join(dir, 'tree');
  await populateTree(tree, def.content * 0.92);
  makeExt4(images.r1, def.bytes, tree);
  const files = [];
  let total = 0;
  for await (const f of walk(tree)) {
    const fh = await open(join(tree, f.path), 'r');
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    await fh.close();
    files.push({ ...f, kind: kindOf(f.path, head) });
    total += f.size;
  }
  const facts = { files: files.length, bytes: total, used: await ext4Used(images.r1) };
  const pick = (share, seed, single) => {
    if (single) {
      // the ELF file nearest to `share` of the bytes: one library
      const target = total * share;
      return [files.filter((f) => f.kind === 'elf').reduce((a, b) => (Math.abs(b.size - target) < Math.abs(a.size - target) ? b : a))];
    }
    const r = rng(seed);
    const order = files.map((f) => ({ f, k: r() })).sort((a, b) => a.k - b.k).map((x) => x.f);
    const out = [];
    let n = 0;
    for (const f of order) {
      if (n >= total * share) break;
      out.push(f);
      n += f.size;
    }
    return out;
  };
  const sets = { a: pick(0.01, 1, true), b: pick(0.05, 2), c: pick(0.30, 3) };
  sets.d = sets.b;
  for (const p of PAIRS) {
    const set = sets[p.id];
    const newDir = join(dir, `new-${p.id}`);
    await rm(newDir, { recursive: true, force: true });
    await mkdir(newDir, { recursive: true });
    let i = 0;
    for (const f of set) {
      const content = changed(f.kind, await readFile(join(tree, f.path)), (p.id.charCodeAt(0) << 16) + i++);
      await mkdir(dirname(join(newDir, f.path)), { recursive: true });
      await writeFile(join(newDir, f.path), content);
    }
    facts[p.id] = { files: set.length, bytes: set.reduce((n, f) => n + f.size, 0) };
    if (!p.rebuild) {
      // in place: the filesystem of release 1, the changed files rewritten (debugfs rm + write)
      await copyFile(images.r1, images[p.id]);
      const cmds = set.map((f) => `rm /${f.path}\nwrite ${join(newDir, f.path)} /${f.path}`).join('\n') + '\n';
      run('debugfs', ['-w', '-f', '-', images[p.id]], { input: cmds, env: { E2FSPROGS_FAKE_TIME: '1700000000' } });
    } else {
      // from scratch: the whole tree again with the changed files, mke2fs -d
      const t2 = join(dir, 'tree-d');
      await rm(t2, { recursive: true, force: true });
      run('cp', ['-a', tree, t2]);
      for (const f of set) await copyFile(join(newDir, f.path), join(t2, f.path));
      makeExt4(images[p.id], def.bytes, t2);
      await rm(t2, { recursive: true, force: true });
    }
    await rm(newDir, { recursive: true, force: true });
  }
  await rm(tree, { recursive: true, force: true });
  await writeFile(stampPath, JSON.stringify({ want, facts }, null, 2));
  return { dir, images, facts };
}

// ------------------------------------------------------------------ nginx and the real client

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}
const listening = (port) => new Promise((resolve) => {
  const c = createConnection({ port, host: '127.0.0.1' });
  c.once('connect', () => { c.destroy(); resolve(true); });
  c.once('error', () => resolve(false));
});

export async function startNginx(dir) {
  await mkdir(join(dir, 'www'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const port = await freePort();
  const log = join(dir, 'access.log');
  await writeFile(join(dir, 'nginx.conf'), `daemon off;\nmaster_process off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents { worker_connections 64; }\nhttp {\n  log_format bytes '$request $status $body_bytes_sent';\n  access_log ${log} bytes;\n  client_body_temp_path ${dir}/tmp/b; proxy_temp_path ${dir}/tmp/p; fastcgi_temp_path ${dir}/tmp/f; uwsgi_temp_path ${dir}/tmp/u; scgi_temp_path ${dir}/tmp/s;\n  server { listen 127.0.0.1:${port}; root ${dir}/www; }\n}\n`);
  const proc = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  for (let i = 0; !(await listening(port)); i++) {
    if (i > 100) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  let skip = 0;
  const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  return {
    url: `http://127.0.0.1:${port}`,
    root: join(dir, 'www'),
    reset() { skip = lines().length; },
    bytesSent() { return lines().slice(skip).reduce((n, l) => n + Number(/ (\d+)$/.exec(l)?.[1] ?? 0), 0); },
    requests() { return lines().length - skip; },
    stop() { proc.kill('SIGTERM'); },
  };
}

const sha = (path) => run('sha256sum', [path]).split(' ')[0];

/**
 * One install through the real client as a daemon fed by swupdate-client (`swupdate -i` can end a
 * delta's install early): ms from submitting the bundle to the verdict, and whether the slot is right.
 */
export async function installTimed(bundle, o) {
  const t = await mkdtemp(join(o.tmp, 'swu-'));
  const args = ['-k', o.cert, '-H', 'otapack:1.0', '-e', 'stable,copy2', ...(o.aes ? ['-K', o.aes] : [])];
  const d = spawn('swupdate', args, { env: { ...process.env, TMPDIR: t }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  d.stdout.on('data', (b) => { log += b; });
  d.stderr.on('data', (b) => { log += b; });
  try {
    while (!existsSync(join(t, 'sockinstctrl'))) await new Promise((r) => setTimeout(r, 20));
    const t0 = process.hrtime.bigint();
    spawnSync('swupdate-client', ['-q', bundle], { env: { ...process.env, TMPDIR: t } });
    while (!/SWUPDATE successful|SWUPDATE failed \[1\]|SWUpdate \*failed\*/.test(log)) await new Promise((r) => setTimeout(r, 20));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    await new Promise((r) => setTimeout(r, 200));
    const ok = log.includes('SWUPDATE successful') && !log.includes('[ERROR]');
    return { ms, ok, log };
  } finally {
    d.kill('SIGTERM');
    await rm(t, { recursive: true, force: true });
  }
}

/** Everything measured for the pairs of one size; `pairs` limits which. */
export async function measurePairs({ work, size, def, otapack, keys, pairs, install }) {
  const { dir, images, facts } = await buildPairs(work, size, def);
  const out = join(dir, 'out');
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const slotA = join(out, 'slotA.img');
  const slotB = join(out, 'slotB.img');
  const spec = async (name, image, extra = []) => {
    const p = join(out, `${name}.yaml`);
    await writeFile(p, [
      `version: "${name === 'release-1' ? '1.0.0' : '2.0.0'}"`, 'hardware-compatibility: ["1.0"]', 'slots:',
      `  copy1: { device: ${slotA}, bootenv: { rootpart: "2" } }`, `  copy2: { device: ${slotB}, bootenv: { rootpart: "3" } }`,
      'images:', `  - file: ${image}`, '    filename: rootfs.ext4.zst.enc', ...extra, '',
    ].join('\n'));
    return p;
  };
  const signing = ['--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '-q'];
  const bundle = async (name, image, extra) => {
    const o = join(out, `${name}.swu`);
    const r = await measure(process.execPath, [otapack, 'bundle', await spec(name, image, extra), '-o', o, ...signing], { cwd: out });
    if (r.exit !== 0) throw new Error(`otapack bundle ${name}: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
    return { path: o, size: statSync(o).size, wall: r.wall, cpu: r.cpu, rss: r.peakRss };
  };
  // the previous release as CI keeps it: its full bundle
  const r1 = await bundle('release-1', images.r1, ['    compress: zstd', '    encrypt: true']);
  const web = install ? await startNginx(join(out, 'nginx')) : undefined;
  const rows = [];
  try {
    for (const p of PAIRS.filter((x) => !pairs || pairs.includes(x.id))) {
      const img = images[p.id];
      process.stderr.write(`bench: delta pair ${size} ${p.id}: bundles… `);
      const full = await bundle(`full-${p.id}`, img, ['    compress: zstd', '    encrypt: true']);
      const rdiff = await bundle(`rdiff-${p.id}`, img, ['    compress: zstd', '    encrypt: true', `    delta: { from: ${r1.path}, method: rdiff }`]);
      const url = `${web?.url ?? 'http://127.0.0.1:9'}/zchunk-${p.id}.zck`;
      const zchunk = await bundle(`zchunk-${p.id}`, img, [`    delta: { from: ${images.r1}, method: zchunk, url: "${url}" }`]);
      const zckPath = join(out, `zchunk-${p.id}.zck`);
      const row = { pair: p, facts: facts[p.id], full, rdiff, zchunk: { ...zchunk, zck: statSync(zckPath).size } };
      if (install) {
        process.stderr.write('installs… ');
        const want = sha(img);
        const device = async () => { await copyFile(images.r1, slotA); await rm(slotB, { force: true }); await (await open(slotB, 'w')).close(); run('truncate', ['-s', String(def.bytes), slotB]); };
        const one = async (b, aes) => {
          await device();
          const r = await installTimed(b, { cert: keys.cert, aes: aes ? keys.aes : undefined, tmp: out });
          if (!r.ok || sha(slotB) !== want) throw new Error(`install of ${b} failed or wrote another image:\n${r.log.slice(-2000)}`);
          return r.ms;
        };
        row.full.install = await one(full.path, true);
        row.rdiff.install = await one(rdiff.path, true);
        await copyFile(zckPath, join(web.root, `zchunk-${p.id}.zck`));
        web.reset();
        row.zchunk.install = await one(zchunk.path, false);
        row.zchunk.fetched = web.bytesSent();
        row.zchunk.requests = web.requests();
      }
      process.stderr.write(`full ${(full.size / MiB).toFixed(1)} MiB, rdiff ${(rdiff.size / MiB).toFixed(2)} MiB, zchunk fetched ${row.zchunk.fetched !== undefined ? (row.zchunk.fetched / MiB).toFixed(2) : '-'} MiB\n`);
      rows.push(row);
    }
  } finally {
    web?.stop();
  }
  return { size, def, facts, r1, rows };
}

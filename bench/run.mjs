#!/usr/bin/env node
// otapack benchmark (npm run bench): builds realistic ext4 rootfs images rootlessly, then runs
// otapack and its peers on them in one session, alternating tool by tool in every round, and
// writes the medians into bench/results.md (between the bench markers; the hand-written
// findings around them are kept). With --readme it also replaces the table in README.md.
//
//   npm run bench                                   all sizes, all tools, 3 rounds
//   npm run bench -- --quick                        256M only, 1 round
//   npm run bench -- --sizes 1G --tools bundle,shell --runs 5
//   npm run bench -- --profile                      also record otapack's stage profile
//   npm run bench -- --deltas-only                  only the delta release pairs
//
// Options: --sizes 256M,1G,4G  --tools LIST  --runs N  --work DIR  --out FILE  --readme
//          --profile  --no-startup  --keep (keep outputs of the last round)
//          --no-deltas  --deltas-only  --delta-sizes 256M,1G (1G: pairs b and d only)
// Deltas:  release pairs (a) one library, (b) 5 %, (c) 30 % of files changed in place, (d) 5 %
//          with the rootfs rebuilt by mke2fs -d: full bundle, rdiff and zchunk delta bundles,
//          generation times, installs by the real client (needs swupdate, zchunk, nginx-light)
// Tools:   bundle       otapack bundle, zstd -3 + AES-256-CBC + CMS
//          shell        zstd -3 -T0 | openssl enc | tee >(sha256sum), openssl cms, cpio -H crc
//          zstd         zstd -3 -T0 alone (the compressor otapack runs)
//          swugenerator Debian's swugenerator 0.2, zlib (its gzip -9) + AES + CMS
//          mender       Debian's mender-artifact 3.9 write rootfs-image, gzip, RSA key
//          bundle-zlib  otapack bundle, zlib (gzip framing) + AES + CMS, default level 6
//          bundle-zlib-mender  otapack bundle, zlib at --mender-level (default 4): equal-size comparison
//          pigz         pigz -6 alone (reference for gzip speed)
//          convert      otapack convert of a Buildroot-style disk (FAT boot + the ext4 rootfs)
//          bundle-mender  otapack bundle of a .mender (format: mender), gzip at its default level (1), RSA
//          bundle-mender-6  the same at gzip level 6 (what mender-artifact's gzip runs)
//          convert-mender otapack convert --client mender of the same disk (gzip .mender, RSA)
// Runs:    every measured run starts on a settled machine: sync and a short pause first (lib/measure.mjs)
// Limit:   whenever bundle or convert runs, zstd runs too and, on its output in the same round,
//          openssl enc -aes-256-cbc and openssl dgst -sha256: the stages no bundle can avoid.
//          limit = max(zstd wall, (zstd + AES + SHA CPU) / cores); otapack's figures are given
//          as ratios to it (bundle <= 1.10 x limit, convert <= 1.2 x bundle).
//          Beside them the Node floor (lib/node-floor.mjs: "spawn", "file" and "fed"): Node
//          starting zstd alone, then zstd plus AES and SHA-256 through node:crypto and a write,
//          in a bare Node script: what Node itself costs.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, rm, stat, symlink, rename } from 'node:fs/promises';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus, totalmem, loadavg } from 'node:os';
import { populateTree, makeExt4, makeSdcard, ext4Used, readStamp, GENERATOR_VERSION, MIX } from './lib/rootfs.mjs';
import { measure, median } from './lib/measure.mjs';
import { measurePairs } from './lib/delta.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const OTAPACK = join(ROOT, 'bin', 'otapack');
const MiB = 1 << 20;
const GiB = 1 << 30;

const ALL_TOOLS = ['bundle', 'shell', 'zstd', 'swugenerator', 'mender', 'bundle-zlib', 'bundle-zlib-mender', 'pigz', 'convert', 'bundle-mender', 'bundle-mender-6', 'convert-mender'];
const LABEL = {
  bundle: 'otapack bundle (zstd-3, AES, CMS)',
  shell: 'shell pipeline (zstd -3 -T0, openssl, sha256sum, cms, cpio)',
  zstd: 'zstd -3 -T0 alone',
  swugenerator: 'swugenerator 0.2 (gzip -9, AES, CMS)',
  mender: 'mender-artifact 3.9 (gzip, RSA)',
  'bundle-zlib': 'otapack bundle (zlib-6, AES, CMS)',
  'bundle-zlib-mender': 'otapack bundle (zlib-L, AES, CMS)',
  pigz: 'pigz -6 alone',
  convert: 'otapack convert (disk: copy, resize, inject, A/B + bundle, bmap)',
  'bundle-mender': 'otapack bundle .mender (gzip-1, its default, RSA)',
  'bundle-mender-6': 'otapack bundle .mender (gzip-6, RSA)',
  'convert-mender': 'otapack convert --client mender (A/B + .mender, gzip)',
};

function parseArgs(argv) {
  const o = { sizes: ['256M', '1G', '4G'], tools: ALL_TOOLS, runs: 3, work: join(HERE, 'work'), out: join(HERE, 'results.md'), readme: false, profile: false, startup: true, keep: false, menderLevel: 4, deltas: true, deltasOnly: false, deltaSizes: ['256M', '1G'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => { const v = argv[++i]; if (v === undefined) throw new Error(`${a} needs a value`); return v; };
    if (a === '--sizes') o.sizes = next().split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
    else if (a === '--tools') o.tools = next().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--work') o.work = resolve(next());
    else if (a === '--out') o.out = resolve(next());
    else if (a === '--mender-level') o.menderLevel = Number(next());
    else if (a === '--readme') o.readme = true;
    else if (a === '--profile') o.profile = true;
    else if (a === '--no-startup') o.startup = false;
    else if (a === '--keep') o.keep = true;
    else if (a === '--no-deltas') o.deltas = false;
    else if (a === '--deltas-only') o.deltasOnly = true;
    else if (a === '--delta-sizes') o.deltaSizes = next().split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
    else if (a === '--quick') { o.sizes = ['256M']; o.runs = 1; }
    else if (a === '-h' || a === '--help') { console.log(readHelp()); process.exit(0); }
    else throw new Error(`unknown option ${a} (see --help)`);
  }
  for (const t of o.tools) if (!ALL_TOOLS.includes(t)) throw new Error(`unknown tool ${t}; tools: ${ALL_TOOLS.join(', ')}`);
  for (const s of [...o.sizes, ...o.deltaSizes]) if (!SIZES[s]) throw new Error(`unknown size ${s}; sizes: ${Object.keys(SIZES).join(', ')}`);
  if (!(o.runs >= 1)) throw new Error('--runs must be at least 1');
  // the limit every otapack figure is compared with is measured in the same rounds
  if (o.tools.some((t) => /^(bundle|convert)/.test(t)) && !o.tools.includes('zstd')) o.tools = [...o.tools, 'zstd'];
  return o;
}

function readHelp() {
  return spawnSync('sed', ['-n', '2,/^import/p', fileURLToPath(import.meta.url)]).stdout.toString().split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n');
}

/** Image sizes: the ext4 size and how much content goes in (the 4 GiB one is sparse: 1 GiB's content). */
const SIZES = {
  '256M': { bytes: 256 * MiB, content: 256 * MiB * 0.6, label: '256 MiB' },
  '1G': { bytes: GiB, content: GiB * 0.6, label: '1 GiB' },
  '4G': { bytes: 4 * GiB, content: GiB * 0.6, label: '4 GiB (sparse, 1 GiB\'s content)' },
};

const sh = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout + r.stderr).trim() : '';
};
const firstLine = (s) => s.split('\n')[0].trim();

function machine() {
  const cpu = cpus();
  const dpkg = (p) => sh('dpkg-query', ['-W', '-f', '${Version}', p]) || 'not installed';
  return {
    cpu: `${cpu[0]?.model ?? '?'}`,
    cores: cpu.length,
    ram: `${(totalmem() / GiB).toFixed(1)} GiB`,
    kernel: sh('uname', ['-r']),
    os: firstLine(sh('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"'])),
    node: process.version,
    // what otapack's "zlib" codec runs on (libdeflate when native/ is built, else node:zlib)
    deflate: sh(process.execPath, ['--input-type=module', '-e', `import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'compress', 'native-deflate.js')).href)}).then((m) => console.log(m.deflateEngine()))`]) || '?',
    otapack: `${JSON.parse(sh('cat', [join(ROOT, 'package.json')]) || '{}').version ?? '?'} (${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']) || '?'}${sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src']) ? ', with uncommitted changes' : ''})`,
    tools: {
      zstd: firstLine(sh('zstd', ['--version'])),
      pigz: firstLine(sh('pigz', ['--version'])),
      openssl: firstLine(sh('openssl', ['version'])),
      cpio: firstLine(sh('cpio', ['--version'])),
      swugenerator: dpkg('swugenerator'),
      'mender-artifact': dpkg('mender-artifact'),
      e2fsprogs: dpkg('e2fsprogs'),
      coreutils: dpkg('coreutils'),
      time: dpkg('time'),
    },
  };
}

// ---------------------------------------------------------------- inputs

async function prepareImages(o) {
  const dir = join(o.work, 'images');
  await mkdir(dir, { recursive: true });
  const out = {};
  for (const s of o.sizes) {
    const def = SIZES[s];
    const img = join(dir, `rootfs-${s.toLowerCase()}.ext4`);
    const stampPath = `${img}.json`;
    const want = { generator: GENERATOR_VERSION, bytes: def.bytes, content: def.content, mix: MIX };
    const stamp = await readStamp(stampPath);
    if (!stamp || JSON.stringify(stamp.want) !== JSON.stringify(want) || !existsSync(img)) {
      const tree = join(o.work, `tree-${s.toLowerCase()}`);
      process.stderr.write(`bench: building ${img} (${def.label}, ~${Math.round(def.content / MiB)} MiB of content)…\n`);
      const t = Date.now();
      // mke2fs adds metadata (journal, inode tables, partly filled blocks): build once, measure,
      // then refill so the filesystem ends up about `content` bytes used
      const filled = (c) => Object.values(c).reduce((n, k) => n + k.total, 0);
      let counts = await populateTree(tree, def.content * 0.9);
      await rm(img, { force: true });
      makeExt4(img, def.bytes, tree);
      let used = await ext4Used(img);
      if (Math.abs(used / def.content - 1) > 0.03) {
        const overhead = used - filled(counts);
        counts = await populateTree(tree, filled(counts) * ((def.content - overhead) / (used - overhead)));
        await rm(img, { force: true });
        makeExt4(img, def.bytes, tree);
        used = await ext4Used(img);
      }
      await rm(tree, { recursive: true, force: true });
      await writeFile(stampPath, JSON.stringify({ want, counts, used, seconds: (Date.now() - t) / 1000 }, null, 2));
    }
    const st = JSON.parse(await readFile(stampPath, 'utf8'));
    const fst = await stat(img);
    out[s] = { path: img, bytes: def.bytes, used: st.used, allocated: fst.blocks * 512, counts: st.counts, label: def.label };
    if (o.tools.some((t) => t.startsWith('convert'))) {
      const disk = join(dir, `sdcard-${s.toLowerCase()}.img`);
      const dstamp = await readStamp(`${disk}.json`);
      if (!dstamp || dstamp.rootfsStamp !== JSON.stringify(st) || !existsSync(disk)) {
        process.stderr.write(`bench: building ${disk}…\n`);
        await makeSdcard(disk, img, join(o.work, 'sdcard-build'));
        await writeFile(`${disk}.json`, JSON.stringify({ rootfsStamp: JSON.stringify(st) }));
      }
      out[s].disk = disk;
      out[s].diskBytes = (await stat(disk)).size;
      if (o.tools.includes('convert-mender')) out[s].menderDisk = await menderDisk(disk, join(o.work, 'sdcard-build'));
    }
  }
  return out;
}

/**
 * The same disk with the Mender client convert --client mender looks for: stand-ins of a few
 * bytes for /usr/bin/mender, fw_printenv and fw_setenv (convert checks they are there, it does
 * not run them), so both converts compress the same rootfs.
 */
async function menderDisk(disk, work) {
  const out = disk.replace(/\.img$/, '-mender.img');
  if (existsSync(out) && (await stat(out)).mtimeMs >= (await stat(disk)).mtimeMs) return out;
  const r = spawnSync('cp', ['--sparse=always', disk, `${out}.tmp`]);
  if (r.status !== 0) throw new Error(`cp ${disk}: ${r.stderr}`);
  const table = JSON.parse(sh('sfdisk', ['--json', `${out}.tmp`])).partitiontable;
  const root = table.partitions[1];
  await mkdir(work, { recursive: true });
  const standIn = join(work, 'stand-in');
  await writeFile(standIn, '#!/bin/sh\n');
  await writeFile(join(work, 'debugfs.cmd'), ['mender', 'fw_printenv', 'fw_setenv'].map((n) => `write ${standIn} /usr/bin/${n}`).join('\n') + '\n');
  const d = spawnSync('debugfs', ['-w', '-f', join(work, 'debugfs.cmd'), `${out}.tmp?offset=${root.start * 512}`], { encoding: 'utf8', env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' } });
  if (d.status !== 0) throw new Error(`debugfs: ${d.stderr}`);
  await rename(`${out}.tmp`, out);
  return out;
}

async function prepareKeys(o) {
  const dir = join(o.work, 'keys');
  const k = { dir, key: join(dir, 'signing.key'), cert: join(dir, 'signing.crt'), aes: join(dir, 'aes.key'), mender: join(dir, 'mender.key'), swugen: join(dir, 'aes.swugen') };
  if (!existsSync(k.key)) {
    await mkdir(dir, { recursive: true });
    const r = spawnSync(process.execPath, [OTAPACK, 'keygen', '--out', dir, '--cn', 'otapack bench', '--type', 'rsa3072', '--force'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`otapack keygen failed: ${r.stderr}`);
  }
  // the same RSA key for mender-artifact, as PKCS#1 ("traditional"): its signer refuses PKCS#8
  if (!existsSync(k.mender)) {
    const r = spawnSync('openssl', ['rsa', '-in', k.key, '-traditional', '-out', k.mender], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl rsa failed: ${r.stderr}`);
  }
  const [key, iv] = (await readFile(k.aes, 'utf8')).trim().split(/\s+/);
  await writeFile(k.swugen, `key=${key}\niv=${iv}\n`); // swugenerator's own key file format
  return k;
}

async function writeSpecs(o, images) {
  const dir = join(o.work, 'specs');
  await mkdir(dir, { recursive: true });
  const specs = {};
  for (const [s, img] of Object.entries(images)) {
    for (const [id, compress, level] of [['bundle', 'zstd', undefined], ['bundle-zlib', 'zlib', undefined], ['bundle-zlib-mender', 'zlib', o.menderLevel]]) {
      const p = join(dir, `${id}-${s.toLowerCase()}.yaml`);
      await writeFile(p, [
        'version: "1.0.0"',
        'description: "otapack benchmark"',
        'hardware-compatibility: ["1.0"]',
        'slots:',
        '  copy1: { device: /dev/mmcblk0p2, bootenv: { rootpart: "2" } }',
        '  copy2: { device: /dev/mmcblk0p3, bootenv: { rootpart: "3" } }',
        'images:',
        `  - file: ${img.path}`,
        '    filename: rootfs.ext4',
        '    type: raw',
        `    compress: ${compress}`,
        ...(level !== undefined ? [`    compress-level: ${level}`] : []),
        '    encrypt: true',
        '',
      ].join('\n'));
      specs[`${id}:${s}`] = p;
    }
    for (const [id, level] of [['bundle-mender', undefined], ['bundle-mender-6', 6]]) {
      const p = join(dir, `${id}-${s.toLowerCase()}.yaml`);
      await writeFile(p, ['format: mender', 'artifact-name: bench-1.0.0', 'device-types: [bench-board]', `image: ${img.path}`, 'payload-name: rootfs.ext4', 'compress: gzip', ...(level ? [`compress-level: ${level}`] : []), ''].join('\n'));
      specs[`${id}:${s}`] = p;
    }
    // swugenerator: a libconfig template (it fills in sha256 and ivt) and an artifact folder
    const sg = join(dir, `swugen-${s.toLowerCase()}`);
    await mkdir(sg, { recursive: true });
    await writeFile(join(sg, 'sw-description.in'), `software = { version = "1.0.0"; hardware-compatibility = [ "1.0" ];
  images: ( { filename = "rootfs.ext4"; type = "raw"; device = "/dev/mmcblk0p3"; compressed = "zlib"; encrypted = true; } ); };
`);
    await rm(join(sg, 'rootfs.ext4'), { force: true });
    await symlink(img.path, join(sg, 'rootfs.ext4'));
    specs[`swugen:${s}`] = sg;
  }
  const convertCfg = join(dir, 'convert.yaml');
  await writeFile(convertCfg, ['version: "1.0.0"', 'hardware: { board: bench-board, revision: "1.0" }', 'storage: { device: /dev/mmcblk0 }', 'update: { compress: zstd, encrypt: true }', ''].join('\n'));
  specs.convert = convertCfg;
  const convertMender = join(dir, 'convert-mender.yaml');
  await writeFile(convertMender, ['client: mender', 'version: "1.0.0"', 'hardware: { board: bench-board, revision: "1.0" }', 'storage: { device: /dev/mmcblk0 }', ''].join('\n'));
  specs['convert-mender'] = convertMender;
  return specs;
}

// ---------------------------------------------------------------- tasks

function task(o, tool, size, img, keys, specs, outDir, profile) {
  const out = join(outDir, `${tool}-${size.toLowerCase()}`);
  const env = profile ? { OTAPACK_PROFILE: '1' } : {};
  const signing = ['--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes];
  switch (tool) {
    case 'bundle':
    case 'bundle-zlib':
    case 'bundle-zlib-mender':
      return { cmd: process.execPath, args: [OTAPACK, 'bundle', specs[`${tool}:${size}`], '-o', `${out}.swu`, ...signing, '-q'], output: `${out}.swu`, env };
    case 'shell':
      return { cmd: join(HERE, 'lib', 'shell-pipeline.sh'), args: [img.path, `${out}.swu`, keys.key, keys.cert, keys.aes], output: `${out}.swu` };
    case 'zstd':
      return { cmd: 'zstd', args: ['-q', '-f', '-T0', '-3', '--no-progress', img.path, '-o', `${out}.zst`], output: `${out}.zst` };
    case 'pigz':
      return { cmd: 'sh', args: ['-c', 'pigz -n -6 -c "$1" > "$2"', 'pigz', img.path, `${out}.gz`], output: `${out}.gz` };
    case 'swugenerator':
      return { cmd: 'swugenerator', args: ['-s', join(specs[`swugen:${size}`], 'sw-description.in'), '-o', `${out}.swu`, '-a', specs[`swugen:${size}`], '-k', `CMS,${keys.key},${keys.cert}`, '-K', keys.swugen, 'create'], output: `${out}.swu`, cwd: outDir };
    case 'mender':
      return { cmd: 'mender-artifact', args: ['write', 'rootfs-image', '-f', img.path, '-n', 'bench-1.0.0', '-t', 'bench-board', '-o', `${out}.mender`, '--compression', 'gzip', '-k', keys.mender], output: `${out}.mender` };
    case 'convert':
      return { cmd: process.execPath, args: [OTAPACK, 'convert', img.disk, '-c', specs.convert, '-o', out, ...signing, '-q'], output: join(out, 'sdcard-' + size.toLowerCase() + '.swu'), outDir: out, env };
    case 'bundle-mender':
    case 'bundle-mender-6':
      return { cmd: process.execPath, args: [OTAPACK, 'bundle', specs[`${tool}:${size}`], '-o', `${out}.mender`, '--key', keys.key, '-q'], output: `${out}.mender`, env };
    case 'convert-mender':
      return { cmd: process.execPath, args: [OTAPACK, 'convert', img.menderDisk, '-c', specs['convert-mender'], '-o', out, '--key', keys.key, '-q'], output: join(out, 'sdcard-' + size.toLowerCase() + '-mender.mender'), outDir: out, env };
    default:
      throw new Error(tool);
  }
}

async function outputSize(t) {
  try { return (await stat(t.output)).size; } catch { return NaN; }
}

async function runAll(o, images, keys, specs) {
  const outDir = join(o.work, 'out');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const results = {}; // `${tool}:${size}` -> runs[]
  const failures = [];
  for (let round = 1; round <= o.runs; round++) {
    for (const size of o.sizes) {
      for (const tool of o.tools) {
        if (tool.startsWith('convert') && !images[size].disk) continue;
        const t = task(o, tool, size, images[size], keys, specs, outDir, false);
        process.stderr.write(`bench: round ${round}/${o.runs} ${size} ${tool} … `);
        const r = await measure(t.cmd, t.args, { cwd: t.cwd ?? outDir, env: t.env });
        if (r.exit !== 0) {
          process.stderr.write(`FAILED (exit ${r.exit})\n${r.stderr.split('\n').slice(-5).join('\n')}\n`);
          failures.push(`${tool} ${size}: exit ${r.exit}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
          continue;
        }
        r.output = await outputSize(t);
        process.stderr.write(`${r.wall.toFixed(2)} s, cpu ${r.cpu.toFixed(2)} s, rss ${(r.peakRss / MiB).toFixed(0)} MiB, ${(r.output / MiB).toFixed(1)} MiB\n`);
        (results[`${tool}:${size}`] ??= []).push(r);
        if (tool === 'zstd') {
          // the other unavoidable stages, over the same compressed stream (a throwaway key: argv is fine here)
          for (const [name, cmd, args] of [
            ['aes', 'openssl', ['enc', '-aes-256-cbc', '-K', '11'.repeat(32), '-iv', '22'.repeat(16), '-in', t.output, '-out', '/dev/null']],
            ['sha', 'openssl', ['dgst', '-sha256', '-r', t.output]],
          ]) {
            const x = await measure(cmd, args, { cwd: outDir });
            if (x.exit !== 0) throw new Error(`${cmd} ${args[0]} failed: ${x.stderr.trim().split('\n').pop()}`);
            x.output = r.output;
            (results[`${name}:${size}`] ??= []).push(x);
          }
          // the Node floor (lib/node-floor.mjs): zstd, node:crypto AES + SHA-256 and a write, nothing else
          for (const mode of ['spawn', 'file', 'fed']) {
            const floorOut = join(outDir, `floor-${mode}-${size.toLowerCase()}.bin`);
            const x = await measure(process.execPath, [join(HERE, 'lib', 'node-floor.mjs'), mode, images[size].path, floorOut], { cwd: outDir });
            if (x.exit !== 0) throw new Error(`node-floor ${mode} failed: ${x.stderr.trim().split('\n').pop()}`);
            x.output = (await stat(floorOut)).size;
            await rm(floorOut, { force: true });
            (results[`floor-${mode}:${size}`] ??= []).push(x);
          }
        }
        if (!(o.keep && round === o.runs)) await rm(t.outDir ?? t.output, { recursive: true, force: true });
      }
    }
  }
  return { results, failures };
}

async function runProfiles(o, images, keys, specs) {
  const outDir = join(o.work, 'out-profile');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const prof = {};
  for (const size of o.sizes) {
    for (const tool of ['bundle', 'bundle-zlib', 'convert', 'bundle-mender', 'convert-mender'].filter((t) => o.tools.includes(t))) {
      if (tool.startsWith('convert') && !images[size].disk) continue;
      const t = task(o, tool, size, images[size], keys, specs, outDir, true);
      process.stderr.write(`bench: profile ${size} ${tool}\n`);
      const r = await measure(t.cmd, t.args, { cwd: outDir, env: t.env });
      prof[`${tool}:${size}`] = r.stderr.split('\n').filter((l) => l.startsWith('otapack profile') || l.startsWith('  ')).join('\n');
      await rm(t.outDir ?? t.output, { recursive: true, force: true });
    }
  }
  await rm(outDir, { recursive: true, force: true });
  return prof;
}

async function startup(o, keys) {
  const dir = join(o.work, 'startup');
  await mkdir(dir, { recursive: true });
  const payload = join(dir, 'small.bin');
  await writeFile(payload, Buffer.alloc(256 * 1024, 'otapack startup '));
  const spec = join(dir, 'small.yaml');
  await writeFile(spec, `version: "1.0.0"\nhardware-compatibility: ["1.0"]\nimages:\n  - file: small.bin\n    device: /dev/mmcblk0p2\n    compress: zstd\n    encrypt: true\n`);
  const swu = join(dir, 'small.swu');
  const b = spawnSync(process.execPath, [OTAPACK, 'bundle', spec, '-o', swu, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '-q'], { encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`small bundle failed: ${b.stderr}`);
  const cases = {
    'otapack --help': [OTAPACK, '--help'],
    'otapack verify (256 KiB bundle, signed, AES)': [OTAPACK, 'verify', swu, '--trust', keys.cert, '--aes-key', keys.aes],
  };
  const res = {};
  for (const [name, args] of Object.entries(cases)) {
    const runs = [];
    for (let i = 0; i < 7; i++) runs.push(await measure(process.execPath, args, { cwd: dir }));
    res[name] = { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)), rss: median(runs.map((r) => r.peakRss)), exit: Math.max(...runs.map((r) => r.exit)) };
  }
  return res;
}

// ---------------------------------------------------------------- report

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');

function summarise(runs, inputBytes) {
  const wall = median(runs.map((r) => r.wall));
  return {
    n: runs.length,
    wall,
    cpu: median(runs.map((r) => r.cpu)),
    mibs: inputBytes / MiB / wall,
    rss: median(runs.map((r) => r.peakRss)) / MiB,
    rssMax: Math.max(...runs.map((r) => r.peakRss)) / MiB,
    tree: median(runs.map((r) => r.treeRss)) / MiB,
    output: median(runs.map((r) => r.output)) / MiB,
    walls: runs.map((r) => r.wall),
  };
}

function report(o, m, images, { results, failures }, prof, start, began, ended) {
  const lines = [];
  const S = {};
  for (const [k, runs] of Object.entries(results)) {
    const [tool, size] = k.split(':');
    S[k] = summarise(runs, tool.startsWith('convert') ? images[size].diskBytes : images[size].bytes);
  }
  lines.push(`Measured ${began.time} – ${ended.time}; ${o.runs} round(s), tools alternating within each round; medians.`);
  lines.push(`Load average at start / end: ${began.load} / ${ended.load} (other jobs on the machine show up as noise).`);
  lines.push('');
  lines.push('**Machine**');
  lines.push('');
  lines.push(`- CPU: ${m.cpu}, ${m.cores} cores; RAM ${m.ram}; kernel ${m.kernel}; ${m.os}`);
  lines.push(`- Node ${m.node}; otapack ${m.otapack}; gzip (\"zlib\") deflate engine: ${m.deflate}`);
  lines.push(`- ${Object.entries(m.tools).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  lines.push('');
  lines.push('**Inputs** (ext4 from `mke2fs -d` of a tree: ' + Object.entries(MIX).map(([k, v]) => `${Math.round(v * 100)} % ${k === 'elf' ? 'real ELF binaries/libraries' : k === 'text' ? 'real text files' : k === 'random' ? 'incompressible blobs' : 'generated logs/databases'}`).join(', ') + ')');
  lines.push('');
  for (const [s, img] of Object.entries(images)) {
    lines.push(`- ${img.label}: ${fmt(img.bytes / MiB, 0)} MiB, ${fmt((img.used / img.bytes) * 100, 0)} % used (${fmt(img.used / MiB, 0)} MiB), ${fmt(img.allocated / MiB, 0)} MiB allocated on disk${img.disk ? `; convert input ${fmt(img.diskBytes / MiB, 0)} MiB disk (MBR, 32 MiB FAT boot + this rootfs)` : ''}`);
  }
  lines.push('');
  lines.push('| input | tool | wall s | CPU s | MiB/s | peak RSS MiB | tree RSS MiB | output MiB |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const size of o.sizes) {
    for (const tool of o.tools) {
      const s = S[`${tool}:${size}`];
      if (!s) continue;
      const label = tool === 'bundle-zlib-mender' ? LABEL[tool].replace('zlib-L', `zlib-${o.menderLevel}`) : LABEL[tool];
      lines.push(`| ${images[size].label} | ${label} | ${fmt(s.wall)} | ${fmt(s.cpu)} | ${fmt(s.mibs, 0)} | ${fmt(s.rss, 0)} | ${fmt(s.tree, 0)} | ${fmt(s.output, 1)} |`);
    }
  }
  lines.push('');
  lines.push('MiB/s is input size / wall time (the disk image for convert). Peak RSS is the largest single process (GNU time); tree RSS the largest sum over the process tree (sampled every 50 ms).');
  lines.push('');
  lines.push(...limitTable(o, images, S, m.cores));
  // ratios and targets
  lines.push('**Ratios** (same session; wall-time medians)');
  lines.push('');
  lines.push('| input | otapack / shell (≤ 1.10) | swugenerator / otapack zlib-6 (≥ 5) | mender / otapack zlib-6 | mender / otapack zlib-' + o.menderLevel + ' (> 1, size ≤) | otapack peak RSS (≤ 200 MiB) |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const size of o.sizes) {
    const g = (t) => S[`${t}:${size}`];
    const r = (a, b) => (g(a) && g(b) ? g(a).wall / g(b).wall : NaN);
    const sz = (a, b) => (g(a) && g(b) ? ` (${fmt(g(a).output, 1)} vs ${fmt(g(b).output, 1)} MiB)` : '');
    const rss = o.tools.filter((t) => /^(bundle|convert)/.test(t)).map((t) => g(t)?.rssMax).filter(Number.isFinite);
    lines.push(`| ${images[size].label} | ${fmt(r('bundle', 'shell'))} | ${fmt(r('swugenerator', 'bundle-zlib'))}${sz('bundle-zlib', 'swugenerator')} | ${fmt(r('mender', 'bundle-zlib'))}${sz('bundle-zlib', 'mender')} | ${fmt(r('mender', 'bundle-zlib-mender'))}${sz('bundle-zlib-mender', 'mender')} | ${rss.length ? fmt(Math.max(...rss), 0) : '–'} |`);
  }
  lines.push('');
  if (o.tools.some((t) => t.includes('mender'))) {
    lines.push('**Mender** (same session; wall-time medians): mender-artifact 3.9 against otapack\'s .mender writer, both gzip and RSA; convert --client mender against the SWUpdate convert (target ≤ 1.10)');
    lines.push('');
    lines.push('| input | mender-artifact / otapack .mender (gzip-1, default) | mender-artifact / otapack .mender (gzip-6) | convert --client mender / convert (≤ 1.10) |');
    lines.push('|---|---:|---:|---:|');
    for (const size of o.sizes) {
      const g = (t) => S[`${t}:${size}`];
      const r = (a, b) => (g(a) && g(b) ? g(a).wall / g(b).wall : NaN);
      const sz = (a, b) => (g(a) && g(b) ? ` (${fmt(g(a).output, 1)} vs ${fmt(g(b).output, 1)} MiB)` : '');
      lines.push(`| ${images[size].label} | ${fmt(r('mender', 'bundle-mender'))}${sz('mender', 'bundle-mender')} | ${fmt(r('mender', 'bundle-mender-6'))}${sz('mender', 'bundle-mender-6')} | ${fmt(r('convert-mender', 'convert'))}${sz('convert-mender', 'convert')} |`);
    }
    lines.push('');
  }
  if (start) {
    lines.push('**Start-up** (median of 7; target < 0.25 s)');
    lines.push('');
    lines.push('| command | wall s | CPU s | peak RSS MiB |');
    lines.push('|---|---:|---:|---:|');
    for (const [k, v] of Object.entries(start)) lines.push(`| ${k} | ${fmt(v.wall, 3)} | ${fmt(v.cpu, 3)} | ${fmt(v.rss / MiB, 0)} |`);
    lines.push('');
  }
  lines.push('Every run (wall s):');
  lines.push('');
  for (const [k, s] of Object.entries(S)) lines.push(`- ${k}: ${s.walls.map((w) => fmt(w)).join(', ')}`);
  lines.push('');
  if (failures.length) {
    lines.push('**Failures**');
    lines.push('');
    for (const f of failures) lines.push(`- ${f}`);
    lines.push('');
  }
  if (prof && Object.keys(prof).length) {
    lines.push('**Stage profile** (`OTAPACK_PROFILE=1`, one run each, printed by otapack on stderr)');
    lines.push('');
    for (const [k, text] of Object.entries(prof)) {
      lines.push(`${k}:`);
      lines.push('```');
      lines.push(text);
      lines.push('```');
    }
    lines.push('');
  }
  return { text: lines.join('\n'), summary: S };
}

const START = '<!-- bench:start (generated by `npm run bench`; edit outside the markers) -->';
const END = '<!-- bench:end -->';

const DELTA_START = '<!-- bench-delta:start (generated by `npm run bench`; edit outside the markers) -->';
const DELTA_END = '<!-- bench-delta:end -->';

async function replaceBetween(path, body, fallbackHead, START_ = START, END_ = END) {
  const START = START_;
  const END = END_;
  let text = '';
  try { text = await readFile(path, 'utf8'); } catch { /* new file */ }
  const block = `${START}\n${body}\n${END}`;
  if (text.includes(START) && text.includes(END)) {
    text = text.slice(0, text.indexOf(START)) + block + text.slice(text.indexOf(END) + END.length);
  } else {
    text = (text || fallbackHead) + `\n${block}\n`;
  }
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** The machine's limit for a bundle, measured in the same rounds, and every otapack figure against it. */
function limitTable(o, images, S, cores) {
  const lines = [];
  const limitOf = (size) => {
    const z = S[`zstd:${size}`], a = S[`aes:${size}`], h = S[`sha:${size}`];
    return z && a && h ? Math.max(z.wall, (z.cpu + a.cpu + h.cpu) / cores) : NaN;
  };
  if (!o.sizes.some((s) => Number.isFinite(limitOf(s)))) return lines;
  lines.push(`**The limit** (same rounds, medians): the stages a bundle cannot avoid, on the same input: \`zstd -3 -T0\` alone, then \`openssl enc -aes-256-cbc\` and \`openssl dgst -sha256\` over its output; limit = max(zstd wall, (zstd + AES + SHA CPU) / ${cores} cores).`);
  lines.push('');
  lines.push('| input | zstd wall s | zstd CPU s | AES CPU s | SHA-256 CPU s | limit s | bundle / limit (≤ 1.10) | convert / limit | convert / bundle (≤ 1.2) |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const size of o.sizes) {
    const L = limitOf(size);
    if (!Number.isFinite(L)) continue;
    const g = (t) => S[`${t}:${size}`];
    lines.push(`| ${images[size].label} | ${fmt(g('zstd').wall)} | ${fmt(g('zstd').cpu)} | ${fmt(g('aes').cpu)} | ${fmt(g('sha').cpu)} | ${fmt(L)} | ${fmt(g('bundle') ? g('bundle').wall / L : NaN)} | ${fmt(g('convert') ? g('convert').wall / L : NaN)} | ${fmt(g('convert') && g('bundle') ? g('convert').wall / g('bundle').wall : NaN)} |`);
  }
  lines.push('');
  if (o.sizes.some((s) => S[`floor-file:${s}`])) {
    lines.push('**The Node floor** (same rounds, medians; `bench/lib/node-floor.mjs`): the least a Node program does under the house rule "bulk crypto and hashing through node:crypto": start Node, run `zstd -3 -T0`, AES-256-CBC and SHA-256 its output through node:crypto, write and fsync the result; no CLI, spec, keys, cpio or signature. "Node + zstd": Node only starts \`zstd -3 -T0\` (writing its own output) and waits for it, i.e. the limit plus Node\'s start-up. "fed": Node reads the image and writes it into zstd\'s stdin, as convert must (slot A is a region of the disk image).');
    lines.push('');
    lines.push('| input | Node + zstd s | Node + zstd / limit | floor s | floor / limit | bundle / floor | fed floor s | fed floor / limit | fed floor / bundle |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const size of o.sizes) {
      const L = limitOf(size);
      const g = (t) => S[`${t}:${size}`];
      if (!g('floor-file')) continue;
      lines.push(`| ${images[size].label} | ${fmt(g('floor-spawn').wall)} | ${fmt(g('floor-spawn').wall / L)} | ${fmt(g('floor-file').wall)} | ${fmt(g('floor-file').wall / L)} | ${fmt(g('bundle') ? g('bundle').wall / g('floor-file').wall : NaN)} | ${fmt(g('floor-fed').wall)} | ${fmt(g('floor-fed').wall / L)} | ${fmt(g('bundle') ? g('floor-fed').wall / g('bundle').wall : NaN)} |`);
    }
    lines.push('');
  }
  return lines;
}

function readmeTable(o, images, S, cores) {
  const lines = ['| input | tool | wall s | CPU s | MiB/s | peak RSS MiB | output MiB |', '|---|---|---:|---:|---:|---:|---:|'];
  for (const size of o.sizes) {
    for (const tool of o.tools) {
      const s = S[`${tool}:${size}`];
      if (!s) continue;
      const label = tool === 'bundle-zlib-mender' ? LABEL[tool].replace('zlib-L', `zlib-${o.menderLevel}`) : LABEL[tool];
      lines.push(`| ${images[size].label} | ${label} | ${fmt(s.wall)} | ${fmt(s.cpu)} | ${fmt(s.mibs, 0)} | ${fmt(s.rss, 0)} | ${fmt(s.output, 1)} |`);
    }
  }
  const limit = limitTable(o, images, S, cores);
  return [...lines, ...(limit.length ? ['', ...limit] : [])].join('\n').trimEnd();
}

/** The delta figures: one table per size (README: the same table). */
function deltaReport(m, results, began, ended) {
  const mib = (b) => (b / MiB).toFixed(b < 10 * MiB ? 2 : 1);
  const pct = (a, b) => `${((a / b) * 100).toFixed(a / b < 0.1 ? 1 : 0)} %`;
  const s = (x) => (x === undefined ? '–' : (x / 1000).toFixed(1));
  const table = [];
  table.push('| image | release pair | changed | full bundle MiB | rdiff delta bundle MiB (of full) | zchunk: bundle KiB + fetched MiB (of full) | generation s: full / rdiff / zchunk | install s: full / rdiff / zchunk |');
  table.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    for (const row of r.rows) {
      table.push(`| ${r.def.label} | ${row.pair.label} | ${row.facts.files} files, ${mib(row.facts.bytes)} MiB | ${mib(row.full.size)} | ${mib(row.rdiff.size)} (${pct(row.rdiff.size, row.full.size)}) | ${(row.zchunk.size / 1024).toFixed(0)} + ${row.zchunk.fetched !== undefined ? mib(row.zchunk.fetched) : '–'} (${row.zchunk.fetched !== undefined ? pct(row.zchunk.size + row.zchunk.fetched, row.full.size) : '–'}) | ${row.full.wall.toFixed(1)} / ${row.rdiff.wall.toFixed(1)} / ${row.zchunk.wall.toFixed(1)} | ${s(row.full.install)} / ${s(row.rdiff.install)} / ${s(row.zchunk.install)} |`);
    }
  }
  const lines = [];
  lines.push(`Measured ${began.time} – ${ended.time} on ${m.cpu} (${m.cores} cores), load ${began.load} / ${ended.load}; one run per figure.`);
  lines.push('');
  for (const r of results) {
    lines.push(`- ${r.def.label}: release 1 has ${r.facts.files} files, ${mib(r.facts.bytes)} MiB (ext4 ${mib(r.facts.used)} MiB used, 4 KiB blocks); its full bundle ${mib(r.r1.size)} MiB is the rdiff base (taken out of the .swu, decrypted)`);
  }
  lines.push('');
  lines.push(...table);
  lines.push('');
  lines.push('Full and rdiff bundles: zstd-3 + AES-256-CBC + CMS; the zchunk delta is not encrypted (it cannot be). "fetched" is what nginx sent for the chunks (its access log). Generation: wall time of `otapack bundle` (the rdiff one includes taking the base out of release 1\'s .swu). Install: SWUpdate as a daemon fed by swupdate-client, from submitting the bundle to its verdict, into regular files; every result was checked byte for byte against release 2.');
  lines.push('');
  lines.push('Peak RSS of the rdiff generation (GNU time): ' + results.map((r) => `${r.def.label}: ${r.rows.map((row) => `${row.pair.id} ${(row.rdiff.rss / MiB).toFixed(0)} MiB`).join(', ')}`).join('; ') + '.');
  return { full: lines.join('\n'), readme: table.join('\n') };
}

const stamp = () => ({ time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), load: loadavg().map((x) => x.toFixed(2)).join(' ') });

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run npx tsc -p . (npm run build) first');
  for (const t of ['zstd', 'openssl', 'cpio', 'mke2fs', '/usr/bin/time', ...(o.tools.includes('swugenerator') ? ['swugenerator'] : []), ...(o.tools.includes('mender') ? ['mender-artifact'] : []), ...(o.tools.includes('pigz') ? ['pigz'] : []), ...(o.tools.some((t) => t.startsWith('convert')) ? ['mkfs.vfat', 'mcopy', 'mkimage', 'sfdisk'] : [])]) {
    if (!sh('sh', ['-c', `command -v ${t} || ls /usr/sbin/${t} /sbin/${t} 2>/dev/null`])) throw new Error(`${t} not found (apt-get install zstd openssl cpio e2fsprogs time swugenerator mender-artifact pigz dosfstools mtools u-boot-tools fdisk)`);
  }
  const began = stamp();
  const m = machine();
  const keys = await prepareKeys(o);
  if (!o.deltasOnly) {
    const images = await prepareImages(o);
    const specs = await writeSpecs(o, images);
    const start = o.startup ? await startup(o, keys) : undefined;
    const res = await runAll(o, images, keys, specs);
    const prof = o.profile ? await runProfiles(o, images, keys, specs) : undefined;
    const ended = stamp();
    const { text, summary } = report(o, m, images, res, prof, start, began, ended);
    await replaceBetween(o.out, text, '# otapack benchmark results\n\nGenerated by `npm run bench` (bench/run.mjs).\n');
    process.stderr.write(`bench: results written to ${o.out}\n`);
    if (o.readme) {
      await replaceBetween(join(ROOT, 'README.md'), readmeTable(o, images, summary, m.cores), '');
      process.stderr.write('bench: README.md table updated\n');
    }
    process.stdout.write(text + '\n');
    if (res.failures.length) process.exitCode = 1;
  }
  if (o.deltas || o.deltasOnly) {
    const dBegan = stamp();
    const results = [];
    for (const size of o.deltaSizes) {
      results.push(await measurePairs({ work: o.work, size, def: SIZES[size], otapack: OTAPACK, keys, pairs: size === '256M' ? undefined : ['b', 'd'], install: true }));
    }
    const text = deltaReport(m, results, dBegan, stamp());
    await replaceBetween(o.out, text.full, '# otapack benchmark results\n\nGenerated by `npm run bench` (bench/run.mjs).\n', DELTA_START, DELTA_END);
    if (o.readme) {
      await replaceBetween(join(ROOT, 'README.md'), text.readme, '', DELTA_START, DELTA_END);
      process.stderr.write('bench: README.md delta table updated\n');
    }
    process.stdout.write(text.full + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(2);
});

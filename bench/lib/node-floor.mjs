#!/usr/bin/env node
// The least any Node program can do to produce an encrypted zstd payload under otapack's rules
// (bulk crypto and hashing through node:crypto): start Node, run `zstd -3 -T0`, AES-256-CBC and
// SHA-256 its output with node:crypto, write it to a file and fsync it. No CLI parsing, spec,
// keys, cpio, manifest or signature. The bench times it in the same rounds as the limit, so
// "bundle / floor" says how much of otapack's time is otapack's, and "floor / limit" how much
// Node itself costs on this machine.
//
//   node-floor.mjs spawn IMAGE OUT  Node only starts zstd on IMAGE (output to OUT) and waits:
//                                   Node's start-up and nothing else
//   node-floor.mjs file IMAGE OUT   zstd reads IMAGE itself (what `otapack bundle` does)
//   node-floor.mjs fed  IMAGE OUT   Node reads IMAGE in 4 MiB chunks and writes them into zstd's
//                                   stdin (what convert must do: slot A is a region of the disk image)
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { openSync, writeSync, closeSync, fsyncSync, readSync, fstatSync } from 'node:fs';

const [mode, image, out] = process.argv.slice(2);
if (!['spawn', 'file', 'fed'].includes(mode) || !image || !out) {
  process.stderr.write('usage: node-floor.mjs spawn|file|fed IMAGE OUT\n');
  process.exit(2);
}
const args = ['-q', '-T0', '-3', '--no-content-size', '--no-progress'];
if (mode === 'spawn') {
  const z = spawn('zstd', [...args, '-f', '-o', out, '--', image], { stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await new Promise((resolve) => z.on('close', resolve));
  process.exit(code === 0 ? 0 : 1);
}
const zstd = spawn('zstd', mode === 'file' ? [...args, '-c', '--', image] : [...args, '-c'], { stdio: [mode === 'file' ? 'ignore' : 'pipe', 'pipe', 'inherit'] });
const exited = new Promise((resolve) => zstd.on('close', resolve));
const feeding = mode === 'fed' ? (async () => {
  const fd = openSync(image, 'r');
  const size = fstatSync(fd).size;
  const b = Buffer.allocUnsafe(4 << 20); // reused once the pipe has taken the previous chunk
  for (let pos = 0; pos < size;) {
    const n = readSync(fd, b, 0, b.length, pos);
    pos += n;
    await new Promise((resolve, reject) => zstd.stdin.write(b.subarray(0, n), (e) => (e ? reject(e) : resolve())));
  }
  closeSync(fd);
  zstd.stdin.end();
})() : Promise.resolve();

// a throwaway key: the figure is the same for any key
const cipher = createCipheriv('aes-256-cbc', Buffer.alloc(32, 0x11), Buffer.alloc(16, 0x22));
const hash = createHash('sha256');
const fd = openSync(out, 'w');
const put = (b) => { hash.update(b); for (let off = 0; off < b.length;) off += writeSync(fd, b, off); };
for await (const chunk of zstd.stdout) put(cipher.update(chunk));
put(cipher.final());
fsyncSync(fd);
closeSync(fd);
await feeding;
const code = await exited;
if (code !== 0) {
  process.stderr.write(`zstd exited ${code}\n`);
  process.exit(1);
}
process.stdout.write(`${hash.digest('hex')}\n`);

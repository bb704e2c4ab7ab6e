// Release pairs for delta tests, built like Buildroot builds them: a tree per release and
// `mke2fs -d` from scratch each time (so block allocation shifts between releases), with fixed
// UUID, hash seed and time. And nginx-light on 127.0.0.1 (Range requests, multipart byteranges)
// for zchunk deltas, started and stopped by the test, logging the bytes it sent.
import { execa } from 'execa';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'node:net';

/** Deterministic pseudo-random bytes (incompressible, like firmware or media). */
export function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 0xff; }
  return b;
}

/** Text that compresses like logs and sources do. */
export function prose(n: number, seed: number): Buffer {
  const words = 'update slot rootfs kernel device mount service network config version checksum block delta base image release sensor'.split(' ');
  const out: string[] = [];
  let len = 0;
  let x = (seed * 40503) >>> 0 || 7;
  while (len < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    const line = `${seed}.${len} ${words[x % words.length]} ${words[(x >>> 8) % words.length]} ${(x >>> 4) % 9973} ${words[(x >>> 16) % words.length]}\n`;
    out.push(line);
    len += line.length;
  }
  return Buffer.from(out.join('')).subarray(0, n);
}

/** The files of a release tree: path -> content. */
export type Tree = Map<string, Buffer>;

/** A rootfs-like tree of about `bytes`: libraries (noise), text, and an /etc. */
export function baseTree(bytes: number): Tree {
  const t: Tree = new Map();
  let used = 0;
  for (let i = 0; used < bytes * 0.5; i++) {
    const n = 16384 + ((i * 7919) % 200000);
    t.set(`usr/lib/lib${i}.so`, noise(n, i + 1));
    used += n;
  }
  for (let i = 0; used < bytes; i++) {
    const n = 4096 + ((i * 104729) % 60000);
    t.set(`usr/share/doc/file${i}.txt`, prose(n, i + 1));
    used += n;
  }
  t.set('etc/fstab', Buffer.from('/dev/root / ext4 ro,noauto 0 1\n'));
  t.set('etc/os-release', Buffer.from('NAME=delta-test\nVERSION_ID=1\n'));
  return t;
}

/** Release 2: `share` of the library bytes replaced (new builds of them), a file added, one removed. */
export function nextRelease(t: Tree, share: number, seed = 99): Tree {
  const out: Tree = new Map(t);
  const libs = [...t.keys()].filter((k) => k.startsWith('usr/lib/'));
  const total = [...t.values()].reduce((n, b) => n + b.length, 0);
  let changed = 0;
  for (let i = 0; i < libs.length && changed < total * share; i += 3) {
    const k = libs[i]!;
    out.set(k, noise(t.get(k)!.length + 100, seed * 1000 + i));
    changed += t.get(k)!.length;
  }
  out.set('usr/bin/new-tool', noise(30000, seed));
  out.delete(libs[1]!);
  out.set('etc/os-release', Buffer.from(`NAME=delta-test\nVERSION_ID=${seed}\n`));
  return out;
}

export function writeTree(dir: string, t: Tree): string {
  rmSync(dir, { recursive: true, force: true });
  for (const [p, b] of t) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), b);
  }
  return dir;
}

/** mke2fs -d of the tree, reproducible (the same tree gives the same image). */
export async function ext4Of(tree: string, image: string, size: string, blockSize?: number): Promise<string> {
  await execa('mke2fs', ['-q', '-F', '-t', 'ext4', ...(blockSize ? ['-b', String(blockSize)] : []), '-U', '0f1e2d3c-4b5a-4697-8877-665544332211',
    '-E', 'root_owner=0:0,hash_seed=1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', '-d', tree, image, size], { env: { E2FSPROGS_FAKE_TIME: '1700000000' } });
  return image;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export interface WebServer {
  url: string;
  root: string;
  /** Every request so far: "METHOD URI STATUS BODY_BYTES". */
  requests(): { line: string; status: number; bytes: number }[];
  /** Body bytes sent since the start (or since `reset()`). */
  bytesSent(): number;
  reset(): void;
  stop(): Promise<void>;
}

/** nginx-light serving `dir/www` on 127.0.0.1, in the foreground, with its own config and logs. */
export async function startNginx(dir: string): Promise<WebServer> {
  const www = join(dir, 'www');
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  mkdirSync(www, { recursive: true });
  const port = await freePort();
  const log = join(dir, 'access.log');
  writeFileSync(join(dir, 'nginx.conf'), `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  log_format bytes '$request $status $body_bytes_sent';
  access_log ${log} bytes;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server { listen 127.0.0.1:${port}; root ${www}; }
}
`);
  const proc = execa('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { reject: false, all: true });
  let out = '';
  proc.all?.on('data', (b: Buffer) => { out += b.toString(); });
  for (let i = 0; !(await listening(port)); i++) {
    if (proc.exitCode !== null || i > 100) throw new Error(`nginx did not start: ${out}${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  let skip = 0;
  const lines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  const requests = (): { line: string; status: number; bytes: number }[] => lines().slice(skip).map((l) => {
    const m = / (\d{3}) (\d+)$/.exec(l);
    return { line: l, status: Number(m?.[1] ?? 0), bytes: Number(m?.[2] ?? 0) };
  });
  return {
    url: `http://127.0.0.1:${port}`,
    root: www,
    requests,
    bytesSent: () => requests().reduce((n, r) => n + r.bytes, 0),
    reset: () => { skip = lines().length; },
    async stop() {
      proc.kill('SIGTERM');
      await proc;
    },
  };
}

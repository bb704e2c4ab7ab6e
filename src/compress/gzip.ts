// "zlib" in sw-description means gzip framing (RFC 1952). pigz compresses on every core and
// writes a single gzip member (SWUpdate's inflate may stop after the first member of a
// multi-member stream); without pigz, node:zlib's gzip does the same on one core.
import { createReadStream } from 'node:fs';
import { createGzip } from 'node:zlib';
import { cpus } from 'node:os';
import { spawnStream, which } from '../util/tools.js';
import type { Compressor, CompressJob, Input } from './compressor.js';
import { procBytesRead } from './io-progress.js';

export const gzip: Compressor = {
  id: 'zlib',
  suffix: '.gz',
  swupdateName: 'zlib',
  defaultLevel: 6,
  levels: [1, 9],
  start(input: Input, level: number): CompressJob {
    if (which('pigz')) {
      const args = ['-n', '-c', `-${level}`, '-p', String(Math.max(1, cpus().length))];
      const fromPath = 'path' in input;
      if (fromPath) args.push('--', input.path);
      const { child, done } = spawnStream('pigz', args, { stdin: fromPath ? 'ignore' : 'pipe' });
      let fed = 0;
      if (!fromPath) {
        input.stream.on('data', (b: Buffer) => { fed += b.length; });
        input.stream.pipe(child.stdin!);
        child.stdin!.on('error', () => {});
      }
      return {
        output: child.stdout as AsyncIterable<Buffer>,
        done,
        consumed: () => (fromPath ? procBytesRead(child.pid) : fed),
        abort: () => void child.kill('SIGTERM'),
      };
    }
    const src = 'path' in input ? createReadStream(input.path, { highWaterMark: 1 << 20 }) : input.stream;
    let fed = 0;
    src.on('data', (b: Buffer | string) => { fed += b.length; });
    const gz = createGzip({ level, chunkSize: 1 << 18 });
    const done = new Promise<void>((resolve, reject) => {
      gz.on('end', resolve);
      gz.on('error', reject);
      src.on('error', reject);
    });
    done.catch(() => {});
    src.pipe(gz);
    return { output: gz, done, consumed: () => fed, abort: () => { gz.destroy(); src.destroy(); } };
  },
};

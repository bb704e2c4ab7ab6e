// "zlib" in sw-description means gzip framing (RFC 1952). pigz compresses on every core and
// writes a single gzip member (SWUpdate's inflate may stop after the first member of a
// multi-member stream); without pigz, node:zlib's gzip does the same on one core.
import { createReadStream } from 'node:fs';
import { createGzip } from 'node:zlib';
import { cpus } from 'node:os';
import { spawnStream, which } from '../util/tools.js';
import { feedInto, settleFed, type Compressor, type CompressJob, type Input } from './compressor.js';
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
      const feeding = fromPath ? Promise.resolve() : feedInto(child.stdin!, input.feed, { copy: false, onBytes: (n) => { fed += n; } });
      const all = settleFed(done, feeding);
      all.catch(() => {});
      return {
        output: child.stdout as AsyncIterable<Buffer>,
        done: all,
        consumed: () => (fromPath ? procBytesRead(child.pid) : fed),
        abort: () => void child.kill('SIGTERM'),
      };
    }
    let fed = 0;
    const gz = createGzip({ level, chunkSize: 1 << 18 });
    const ended = new Promise<void>((resolve, reject) => {
      gz.on('end', resolve);
      gz.on('error', reject);
    });
    let feeding: Promise<void>;
    let src: ReturnType<typeof createReadStream> | undefined;
    if ('path' in input) {
      src = createReadStream(input.path, { highWaterMark: 1 << 20 });
      src.on('data', (b: Buffer | string) => { fed += b.length; });
      feeding = new Promise<void>((resolve, reject) => { src!.on('end', resolve); src!.on('error', reject); });
      src.pipe(gz);
    } else {
      // zlib has consumed a chunk when its write callback runs: no copy needed
      feeding = feedInto(gz, input.feed, { copy: false, onBytes: (n) => { fed += n; } });
    }
    const done = settleFed(ended, feeding);
    done.catch(() => {});
    return { output: gz, done, consumed: () => fed, abort: () => { gz.destroy(); src?.destroy(); } };
  },
};

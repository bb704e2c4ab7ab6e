// Stored as is: the payload is read in 1 MiB chunks and passed through.
import { createReadStream } from 'node:fs';
import { PassThrough } from 'node:stream';
import { feedInto, type Compressor, type CompressJob, type Input } from './compressor.js';

export const none: Compressor = {
  id: 'none',
  suffix: '',
  defaultLevel: 0,
  levels: [0, 0],
  start(input: Input): CompressJob {
    let fed = 0;
    if ('path' in input) {
      const src = createReadStream(input.path, { highWaterMark: 1 << 20 });
      src.on('data', (b: Buffer | string) => { fed += b.length; });
      const done = new Promise<void>((resolve, reject) => {
        src.on('end', resolve);
        src.on('error', reject);
      });
      done.catch(() => {});
      return { output: src as AsyncIterable<Buffer>, done, consumed: () => fed, abort: () => src.destroy() };
    }
    // a PassThrough keeps each chunk until it is read: copy, since the producer reuses its buffers
    const pass = new PassThrough({ highWaterMark: 4 << 20 });
    const done = feedInto(pass, input.feed, { copy: true, onBytes: (n) => { fed += n; } });
    done.catch(() => {});
    return { output: pass, done, consumed: () => fed, abort: () => pass.destroy() };
  },
};

// Stored as is: the payload is read in 1 MiB chunks and passed through.
import { createReadStream } from 'node:fs';
import type { Compressor, CompressJob, Input } from './compressor.js';

export const none: Compressor = {
  id: 'none',
  suffix: '',
  defaultLevel: 0,
  levels: [0, 0],
  start(input: Input): CompressJob {
    const src = 'path' in input ? createReadStream(input.path, { highWaterMark: 1 << 20 }) : input.stream;
    let fed = 0;
    src.on('data', (b: Buffer | string) => { fed += b.length; });
    const done = new Promise<void>((resolve, reject) => {
      src.on('end', resolve);
      src.on('error', reject);
    });
    done.catch(() => {});
    return { output: src as AsyncIterable<Buffer>, done, consumed: () => fed, abort: () => src.destroy() };
  },
};

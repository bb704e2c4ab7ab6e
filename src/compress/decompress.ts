// Decompression for verification: data is pushed in (after decryption) and only counted, so a
// payload of any size is checked in constant memory.
import { createGunzip } from 'node:zlib';
import { once } from 'node:events';
import type { Writable, Readable } from 'node:stream';
import { spawnStream } from '../util/tools.js';
import type { CompressionId } from './compressor.js';

export interface DecompressSink {
  write(chunk: Buffer): Promise<void>;
  /** Resolves with the decompressed size; rejects when the data is not valid for the codec. */
  end(): Promise<number>;
}

function sink(input: Writable, output: Readable, finished: Promise<void>): DecompressSink {
  let bytes = 0;
  let failure: unknown;
  output.on('data', (b: Buffer) => { bytes += b.length; });
  const drained = finished.catch((e) => { failure = e; });
  input.on('error', (e) => { failure ??= e; });
  return {
    async write(chunk) {
      if (failure) return;
      if (!input.write(chunk)) await Promise.race([once(input, 'drain'), drained]);
    },
    async end() {
      input.end();
      await drained;
      if (failure) throw failure;
      return bytes;
    },
  };
}

export function decompressSink(id: CompressionId): DecompressSink {
  if (id === 'zstd') {
    const { child, done } = spawnStream('zstd', ['-d', '-c', '-q'], { stdin: 'pipe' });
    return sink(child.stdin!, child.stdout!, done);
  }
  if (id === 'zlib') {
    const gz = createGunzip();
    const finished = new Promise<void>((resolve, reject) => {
      gz.on('end', resolve);
      gz.on('error', (e) => reject(new Error(`gzip data is corrupt (${e.message})`)));
    });
    return sink(gz, gz, finished);
  }
  let bytes = 0;
  return { async write(c) { bytes += c.length; }, async end() { return bytes; } };
}

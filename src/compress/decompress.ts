// Decompression for verification: data is pushed in (after decryption) and only counted, so a
// payload of any size is checked in constant memory. A failure is the decoder's own verdict
// (zstd's last words, zlib's error), never the broken pipe a decoder that gave up leaves behind.
import { createGunzip } from 'node:zlib';
import type { Writable, Readable } from 'node:stream';
import { OtapackError } from '../errors.js';
import { spawnStream } from '../util/tools.js';
import type { CompressionId } from './compressor.js';

export interface DecompressSink {
  write(chunk: Buffer): Promise<void>;
  /** Resolves with the decompressed size; rejects (INPUT, reason 'corrupt-data') when the data is not valid for the codec. */
  end(): Promise<number>;
}

/** The codec's reason in a few words: zstd's last line, or zlib's message. */
const corrupt = (codec: string, detail: string, cause?: unknown): OtapackError =>
  new OtapackError('INPUT', `not valid ${codec} data (${detail})`, { reason: 'corrupt-data', expected: `${codec} data`, cause });

const isBrokenPipe = (e: unknown): boolean => {
  const c = (e as NodeJS.ErrnoException)?.code;
  return c === 'EPIPE' || c === 'ERR_STREAM_DESTROYED' || c === 'ECONNRESET';
};

function sink(input: Writable, output: Readable, finished: Promise<void>, verdict: (e: unknown) => OtapackError, onData?: (b: Buffer) => void): DecompressSink {
  let bytes = 0;
  let failure: OtapackError | undefined;
  // The decoder closed its input early: it found the data bad and is exiting; its exit says why.
  let stoppedReading = false;
  output.on('data', (b: Buffer) => { bytes += b.length; onData?.(b); });
  const settled = finished.then(() => undefined, (e) => { failure ??= verdict(e); });
  input.on('error', (e) => {
    if (isBrokenPipe(e)) stoppedReading = true;
    else failure ??= verdict(e);
  });
  return {
    async write(chunk) {
      if (failure || stoppedReading) return;
      if (input.write(chunk)) return;
      // wait for room, the decoder's verdict, or its input breaking, whichever comes first
      await new Promise<void>((resolve) => {
        const done = (): void => { input.off('drain', done); input.off('error', done); input.off('close', done); resolve(); };
        input.on('drain', done);
        input.on('error', done);
        input.on('close', done);
        void settled.then(done);
      });
    },
    async end() {
      if (!stoppedReading && !input.destroyed) input.end();
      await settled;
      if (failure) throw failure;
      if (stoppedReading) throw corrupt('compressed', 'the decoder stopped reading before the end of the data');
      return bytes;
    },
  };
}

/** `onData` sees every decompressed chunk (verify walks an rdiff delta with it); it must not throw. */
export function decompressSink(id: CompressionId, onData?: (b: Buffer) => void): DecompressSink {
  if (id === 'zstd') {
    const { child, done } = spawnStream('zstd', ['-d', '-c', '-q'], { stdin: 'pipe' });
    return sink(child.stdin!, child.stdout!, done, (e) => {
      if (!(e instanceof OtapackError) || e.reason !== 'tool-failed') return e instanceof OtapackError ? e : corrupt('zstd', String((e as Error)?.message ?? e), e);
      // zstd's own last line ("/*stdin*\ : Decoding error (36) : Unknown frame descriptor"), without the stream name
      const last = (e.toolOutput ?? '').split('\n').filter((l) => l.trim()).pop() ?? `exit ${e.status}`;
      return corrupt('zstd', last.replace(/^(zstd: )?\/\*stdin\*\\?\s*:\s*/, '').trim() || `exit ${e.status}`, e);
    }, onData);
  }
  if (id === 'zlib') {
    const gz = createGunzip();
    const finished = new Promise<void>((resolve, reject) => {
      gz.on('end', resolve);
      gz.on('error', reject);
    });
    // zlib's error codes are structured (Z_DATA_ERROR, Z_BUF_ERROR); its message says where it failed
    return sink(gz, gz, finished, (e) => corrupt('gzip', `${(e as Error)?.message ?? e}`, e), onData);
  }
  let bytes = 0;
  return { async write(c) { bytes += c.length; onData?.(c); }, async end() { return bytes; } };
}

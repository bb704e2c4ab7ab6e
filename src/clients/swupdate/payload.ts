// One streaming pass per payload: codec output → AES-256-CBC (node:crypto) → SHA-256 and the
// cpio byte sum → the archive file, in constant memory.
import { createCipheriv, createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { OtapackError } from '../../errors.js';
import type { CompressJob } from '../../compress/compressor.js';
import { MAX_ENTRY_SIZE, byteSum } from './cpio.js';
import { PositionalWriter } from '../../util/positional-writer.js';
import { Meter, metered } from '../../util/profile.js';

export interface PayloadResult {
  size: number;
  sha256: string;
  check: number;
}

export interface Encryption {
  cipher: string; // aes-256-cbc …
  key: Buffer;
  iv: Buffer;
}

export async function streamPayload(
  job: CompressJob,
  fh: FileHandle,
  position: number,
  opts: { encryption?: Encryption; name: string; onOutput?: (storedBytes: number) => void },
): Promise<PayloadResult> {
  const hash = createHash('sha256');
  const cipher = opts.encryption ? createCipheriv(opts.encryption.cipher, opts.encryption.key, opts.encryption.iv) : undefined;
  const out = new PositionalWriter(fh, position);
  let size = 0;
  let check = 0;
  const m = { wait: new Meter('wait for the codec'), enc: new Meter('encrypt (AES)'), hash: new Meter('hash (SHA-256)'), sum: new Meter('cpio byte sum'), write: new Meter('write (buffer, backpressure)') };
  const take = async (b: Buffer): Promise<void> => {
    if (b.length === 0) return;
    size += b.length;
    if (size > MAX_ENTRY_SIZE) {
      job.abort();
      throw new OtapackError('LIMIT', `${opts.name}: the stored payload passed 4 GiB, the cpio format's limit per entry; use stronger compression or split the image`);
    }
    metered(m.hash, () => hash.update(b));
    check = metered(m.sum, () => byteSum(b, check));
    m.write.start();
    await out.write(b);
    m.write.stop();
    opts.onOutput?.(size);
  };
  try {
    m.wait.start();
    for await (const chunk of job.output) {
      m.wait.stop();
      await take(cipher ? metered(m.enc, () => cipher.update(chunk)) : chunk);
      m.wait.start();
    }
    m.wait.stop();
    await job.done;
    if (cipher) await take(cipher.final());
    await out.finish();
  } catch (e) {
    job.abort();
    await job.done.catch(() => {});
    throw e;
  }
  return { size, sha256: hash.digest('hex'), check };
}

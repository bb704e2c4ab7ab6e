// One streaming pass per payload: codec output → AES-256-CBC (node:crypto) → SHA-256 and the
// cpio byte sum → the archive file, in constant memory.
import { createCipheriv, createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { OtapackError } from '../errors.js';
import type { CompressJob } from '../compress/compressor.js';
import { MAX_ENTRY_SIZE, byteSum } from './cpio.js';
import { PositionalWriter } from './positional-writer.js';

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
  const take = async (b: Buffer): Promise<void> => {
    if (b.length === 0) return;
    size += b.length;
    if (size > MAX_ENTRY_SIZE) {
      job.abort();
      throw new OtapackError('LIMIT', `${opts.name}: the stored payload passed 4 GiB, the cpio format's limit per entry; use stronger compression or split the image`);
    }
    hash.update(b);
    check = byteSum(b, check);
    await out.write(b);
    opts.onOutput?.(size);
  };
  try {
    for await (const chunk of job.output) await take(cipher ? cipher.update(chunk) : chunk);
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

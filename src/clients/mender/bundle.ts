// Builds a .mender from a spec (otapack bundle) or from convert's slot A: the payload is read
// once, straight into the archive (artifact.ts), into a temp file renamed into place at the end.
import { open, stat } from 'node:fs/promises';
import { readInto } from '../../util/io.js';
import { OtapackError } from '../../errors.js';
import { AtomicFile } from '../../util/atomic-file.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { REPRODUCIBLE_EPOCH } from '../../util/reproducible.js';
import { stage } from '../../util/profile.js';
import type { Feed } from '../../compress/compressor.js';
import { writeArtifact, type ManifestSigner, type WrittenArtifact } from './artifact.js';
import { menderHeader, type MenderSpec } from './spec.js';
import { asWriteError } from '../swupdate/bundle.js';

export interface MenderBuildOptions {
  spec: MenderSpec;
  output: string;
  signer?: ManifestSigner;
  /** mtime of every member (SOURCE_DATE_EPOCH); 0 by default, REPRODUCIBLE_EPOCH with `reproducible`. */
  mtime?: number;
  reproducible?: boolean;
  reporter?: Reporter;
  /** Also hash the whole artifact (one more read of the output); default true. */
  hashOutput?: boolean;
}

export interface MenderBuildResult extends WrittenArtifact {
  output: string;
  sha256?: string;
  artifactName: string;
  deviceTypes: string[];
  compression: 'gzip' | 'none';
  payloadName: string;
  payloadSize: number;
  signed: boolean;
  signatureAlgorithm?: string;
  signerKind?: 'key' | 'pkcs11' | 'command';
  signer?: string;
}

/** Pushes a file's bytes in 4 MiB chunks: two buffers, the next chunk is read while the previous one is written. */
function fileFeed(path: string, size: number): Feed {
  return async (write) => {
    const fh = await open(path, 'r').catch((e) => { throw new OtapackError('INPUT', `${path}: ${(e as Error).message}`); });
    const bufs = [Buffer.allocUnsafe(4 << 20), Buffer.allocUnsafe(4 << 20)];
    const readAt = (i: number, pos: number): Promise<number> => {
      const p = pos < size ? readInto(fh, bufs[i]!, pos, Math.min(bufs[i]!.length, size - pos)) : Promise.resolve(0);
      p.catch(() => {}); // a read failing while the previous chunk is written is reported by the next await, not as unhandled
      return p;
    };
    let reading = readAt(0, 0);
    try {
      for (let pos = 0, i = 0; pos < size; i ^= 1) {
        const n = await reading;
        if (n === 0) throw new OtapackError('INPUT', `${path}: the file shrank to ${pos} bytes while it was read`);
        reading = readAt(i ^ 1, pos + n);
        await write(bufs[i]!.subarray(0, n));
        pos += n;
      }
    } finally {
      await reading.catch(() => {}); // never close the file under a read still in flight
      await fh.close();
    }
  };
}

async function sizeOf(path: string): Promise<number> {
  const st = await stat(path).catch((e) => { throw new OtapackError('INPUT', `${path}: ${(e as Error).message}`); });
  if (!st.isBlockDevice()) return st.size;
  const fh = await open(path, 'r');
  try { return (await fh.stat()).size; } finally { await fh.close(); }
}

export const signatureAlgorithmName = (s: ManifestSigner): string => (s.algorithm === 'rsa' ? `RSA PKCS#1 v1.5 / SHA-256 (${s.rawLength * 8} bit)` : 'ECDSA P-256 / SHA-256');

export async function buildMenderArtifact(o: MenderBuildOptions): Promise<MenderBuildResult> {
  const reporter = o.reporter ?? silentReporter;
  const mtime = o.mtime ?? (o.reproducible ? REPRODUCIBLE_EPOCH : 0);
  const spec = o.spec;
  const header = await menderHeader(spec);
  const src = spec.source;
  const size = typeof src === 'string' ? await sizeOf(src) : src.size;
  const feed = typeof src === 'string' ? fileFeed(src, size) : src.feed;
  const out = await AtomicFile.create(o.output);
  try {
    const fh = out.handle;
    const progress = reporter.step(`${spec.compress === 'none' ? 'storing' : 'compressing'} ${spec.payloadName}`, size);
    let w: WrittenArtifact;
    try {
      w = await stage(`mender: stream (${spec.compress})`, () => writeArtifact(fh, {
        header, payload: { name: spec.payloadName, size, feed }, compression: spec.compress, level: spec.level, signer: o.signer, mtime,
        onProgress: (n) => progress.update(n),
      }));
    } finally {
      progress.done();
    }
    const sha256 = o.hashOutput === false ? undefined : await stage('mender: hash the output (while fsync)', () => out.syncAndHash(w.size));
    await stage('mender: fsync + rename', () => out.commit());
    return {
      ...w, output: o.output, sha256, artifactName: spec.artifactName, deviceTypes: spec.deviceTypes, compression: spec.compress === 'zlib' ? 'gzip' : 'none',
      payloadName: spec.payloadName, payloadSize: size, signed: !!o.signer,
      signatureAlgorithm: o.signer ? signatureAlgorithmName(o.signer) : undefined, signerKind: o.signer?.kind, signer: o.signer?.subject ?? o.signer?.description,
    };
  } catch (e) {
    await out.abort();
    throw asWriteError(e, o.output);
  }
}


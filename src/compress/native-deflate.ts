// The optional native deflate (native/deflate.c: libdeflate, with its streams turned into the
// byte-aligned pieces parallel gzip chains). `npm run build`, and `npm install` of the package,
// compile it where a C compiler and libdeflate's headers are present; without it, or with
// OTAPACK_DEFLATE=zlib, gzip uses node:zlib. Both engines write valid gzip; the bytes differ
// between them (each engine is deterministic), so which one ran is reported by `deflateEngine()`.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { crc32 as zlibCrc32 } from 'node:zlib';

interface NativeDeflate {
  deflate(data: Uint8Array, level: number, last: boolean): Buffer;
  crc32(crc: number, data: Uint8Array): number;
  version(): string;
}

// from dist/compress/ or src/compress/ alike: the package root is two folders up
const ADDON = '../../native/build/otapack_deflate.node';

let loaded: NativeDeflate | null | undefined;
let loadError: string | undefined;

function load(): NativeDeflate | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON) as NativeDeflate;
    } catch (e) {
      loaded = null;
      const err = e as NodeJS.ErrnoException;
      // an installation without the C sources (the Debian package) never has the addon
      const sources = existsSync(fileURLToPath(new URL('../../native/deflate.c', import.meta.url)));
      loadError = err.code !== 'MODULE_NOT_FOUND' ? `failed to load: ${String(err.message).split('\n')[0]}`
        : sources ? 'not built: it is compiled at install where a C compiler and libdeflate-dev exist' : 'not part of this installation';
    }
  }
  return loaded;
}

/** The native deflate, unless it is not built or OTAPACK_DEFLATE=zlib asks for node:zlib. */
export function nativeDeflate(): NativeDeflate | null {
  return process.env.OTAPACK_DEFLATE === 'zlib' ? null : load();
}

/** Which deflate the "zlib" codec runs: "libdeflate 1.14" or "node:zlib <version>". */
export function deflateEngine(): string {
  const n = nativeDeflate();
  return n ? `libdeflate ${n.version()}` : `node:zlib ${process.versions.zlib}`;
}

/** The engine, and where the addon is or why it is not used (for `otapack --version`). */
export interface DeflateStatus { engine: string; addon: string; native: boolean; why?: string }

export function deflateStatus(): DeflateStatus {
  const addon = fileURLToPath(new URL(ADDON, import.meta.url));
  const native = nativeDeflate() !== null;
  const why = native ? undefined : process.env.OTAPACK_DEFLATE === 'zlib' ? 'off: OTAPACK_DEFLATE=zlib' : loadError;
  return { engine: deflateEngine(), addon, native, ...(why ? { why } : {}) };
}

/** gzip's CRC-32 of `data` continuing `crc` (the same value either way; libdeflate's is faster). */
export function crc32(data: Uint8Array, crc = 0): number {
  const n = nativeDeflate();
  return n ? n.crc32(crc >>> 0, data) : zlibCrc32(data, crc);
}

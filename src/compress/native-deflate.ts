// The optional native deflate (native/deflate.c: libdeflate, with its streams turned into the
// byte-aligned pieces parallel gzip chains). `npm run build` compiles it where a C compiler and
// libdeflate's headers are present; without it, or with OTAPACK_DEFLATE=zlib, gzip uses
// node:zlib. Both engines write valid gzip; the bytes differ between them (each engine is
// deterministic), so which one ran is reported by `deflateEngine()`.
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

interface NativeDeflate {
  deflate(data: Uint8Array, level: number, last: boolean): Buffer;
  crc32(crc: number, data: Uint8Array): number;
  version(): string;
}

let loaded: NativeDeflate | null | undefined;

function load(): NativeDeflate | null {
  if (loaded === undefined) {
    try {
      // from dist/compress/ or src/compress/ alike: the package root is two folders up
      loaded = createRequire(import.meta.url)('../../native/build/otapack_deflate.node') as NativeDeflate;
    } catch {
      loaded = null;
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

/** gzip's CRC-32 of `data` continuing `crc` (the same value either way; libdeflate's is faster). */
export function crc32(data: Uint8Array, crc = 0): number {
  const n = nativeDeflate();
  return n ? n.crc32(crc >>> 0, data) : zlibCrc32(data, crc);
}

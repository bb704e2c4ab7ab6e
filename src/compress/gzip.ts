// "zlib" in sw-description means gzip framing (RFC 1952). The payload is compressed on every
// core by parallel-gzip.ts (libdeflate or node:zlib in worker threads, one gzip member: SWUpdate's inflate may
// stop after the first member of a multi-member stream). It replaced pigz, which runs the same
// scheme on the system zlib and was about a quarter slower here.
import type { Compressor, CompressJob, Input, StartOptions } from './compressor.js';
import { parallelGzip } from './parallel-gzip.js';

export const gzip: Compressor = {
  id: 'zlib',
  suffix: '.gz',
  swupdateName: 'zlib',
  defaultLevel: 6,
  levels: [1, 9],
  start(input: Input, level: number, opts?: StartOptions): CompressJob {
    return parallelGzip(input, level, undefined, opts?.members);
  },
};

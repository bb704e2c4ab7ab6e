import type { CompressionId, Compressor } from './compressor.js';
import { zstd } from './zstd.js';
import { gzip } from './gzip.js';
import { none } from './none.js';

const REGISTRY: Record<CompressionId, Compressor> = { zstd, zlib: gzip, none };

export const compressor = (id: CompressionId): Compressor => REGISTRY[id];
export * from './compressor.js';

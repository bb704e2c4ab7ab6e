// How the CLI prints a delta image (bundle and convert).
import type { PreparedDelta } from '../clients/swupdate/delta.js';
import { formatBytes } from '../util/units.js';

export function describeDelta(d: PreparedDelta): string {
  const from = d.base.version ? `release ${d.base.version}` : d.base.origin;
  if (d.method === 'rdiff') {
    const r = d.rdiff!;
    const copied = d.image.size ? Math.round((r.copyBytes / d.image.size) * 100) : 0;
    return `${d.label}: rdiff delta from ${from}, ${formatBytes(d.payloadBytes)} before compression (${copied} % of the image copied from the base, ${formatBytes(r.literalBytes - r.zeroLiteralBytes)} new data), base checked on the device over ${formatBytes(d.base.dataBytes)}, in ${d.seconds.toFixed(1)} s`;
  }
  const z = d.zchunk!;
  return `${d.label}: zchunk delta from ${from}: header ${formatBytes(z.headerSize)} in the bundle, ${z.chunks} chunks in ${z.file} (${formatBytes(z.size)}) to publish at ${z.url}, in ${d.seconds.toFixed(1)} s`;
}

import { OtapackError } from '../errors.js';

/** SOURCE_DATE_EPOCH (reproducible-builds.org), validated. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) throw new OtapackError('USAGE', `SOURCE_DATE_EPOCH: "${v}" is not a Unix time in seconds`);
  return Number(v);
}

import { convertImage } from '../../convert/convert.js';
import { formatBytes } from '../../util/units.js';
import { cliReporter, printJson, say, bold } from '../output.js';
import { reportJson } from '../../convert/report.js';
import { sourceDateEpoch } from '../env.js';
import { signerOptions, signingFlags, type SigningFlags } from '../signing.js';
import { text, flag, choice, required, requiredText, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';
import { DELTA_METHODS } from '../choices.js';
import { describeDelta } from '../delta.js';
import { CLIENT_IDS } from '../choices.js';
import { describeInput, describeOutput, describeBoot } from './plan-table.js';

export interface ConvertCommandOptions extends GlobalOptions, SigningFlags {
  image: string;
  output: string;
  config?: string;
  trust?: string;
  aesKey?: string;
  unsigned: boolean;
  reproducible: boolean;
  imageSha256: boolean;
  deltaFrom?: string;
  deltaMethod?: 'rdiff' | 'zchunk';
  deltaUrl?: string;
  client?: (typeof CLIENT_IDS)[number];
}

export const options = (args: string[], o: OptionValues): ConvertCommandOptions => ({
  ...globalOptions(o),
  ...signingFlags(o),
  image: required(args, 0, 'image'),
  output: requiredText(o.output, '-o, --output <dir>'),
  config: text(o.config),
  trust: text(o.trust),
  aesKey: text(o.aesKey),
  unsigned: flag(o.unsigned),
  reproducible: flag(o.reproducible),
  imageSha256: flag(o.imageSha256),
  deltaFrom: text(o.deltaFrom),
  deltaMethod: choice(o.deltaMethod, DELTA_METHODS),
  deltaUrl: text(o.deltaUrl),
  client: choice(o.client, CLIENT_IDS),
});

export async function run(o: ConvertCommandOptions): Promise<number> {
  const t0 = Date.now();
  const reporter = cliReporter({ quiet: o.quiet });
  const r = await convertImage({
    input: o.image, config: o.config, outDir: o.output, client: o.client,
    ...signerOptions(o),
    trust: o.trust, aesKey: o.aesKey,
    unsigned: o.unsigned, reproducible: o.reproducible, imageSha256: o.imageSha256, timestamp: sourceDateEpoch(), reporter,
    deltaFrom: o.deltaFrom, deltaMethod: o.deltaMethod, deltaUrl: o.deltaUrl,
  });
  if (o.json) printJson(reportJson(r));
  if (!o.quiet) {
    for (const l of describeInput(r.plan)) say(l);
    for (const l of describeOutput(r.plan)) say(l);
    for (const l of describeBoot(r.boot)) say(l);
    say(`rootfs: ${formatBytes(r.rootfs.sizeBefore)} -> ${formatBytes(r.rootfs.sizeAfter)}, ${r.injected.length} device-side files installed in both slots`);
    const out = r.outputs;
    say(`${bold(out.image.path)}  ${formatBytes(out.image.size)} (${formatBytes(out.image.allocated)} allocated, sparse)`);
    say(`${bold(out.bmap.path)}  ${formatBytes(out.bmap.mappedBytes)} mapped`);
    say(`${bold(out.bundle.path)}  ${formatBytes(out.bundle.size)}, ${r.bundle.signed ? `signed by ${r.bundle.signer}` : 'UNSIGNED'}${r.bundle.entries[0]?.encrypted ? ', encrypted' : ''}${r.plan.client === 'mender' ? ' (Mender artifact)' : ''}`);
    if (out.deltaBundle && r.delta) {
      say(`${bold(out.deltaBundle.path)}  ${formatBytes(out.deltaBundle.size)}, ${r.delta.signed ? `signed by ${r.delta.signer}` : 'UNSIGNED'}`);
      for (const d of r.delta.deltas ?? []) say(`  ${describeDelta(d)}`);
    }
    say(`${bold(out.report)}  in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return 0;
}

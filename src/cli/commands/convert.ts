import { convertImage } from '../../convert/convert.js';
import { reportJson } from '../../convert/apply.js';
import { formatBytes } from '../../util/units.js';
import { cliReporter, printJson, say, bold } from '../output.js';
import { sourceDateEpoch } from '../env.js';
import { signerOptions } from '../signing.js';
import { describeInput, describeOutput, describeBoot } from './plan-table.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const t0 = Date.now();
  const reporter = cliReporter({ quiet: !!o.quiet });
  const r = await convertImage({
    input: String(args[0]), config: o.config as string | undefined, outDir: String(o.output),
    ...signerOptions(o),
    trust: o.trust as string | undefined, aesKey: o.aesKey as string | undefined,
    unsigned: !!o.unsigned, reproducible: !!o.reproducible, imageSha256: !!o.imageSha256, timestamp: sourceDateEpoch(), reporter,
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
    say(`${bold(out.bundle.path)}  ${formatBytes(out.bundle.size)}, ${r.bundle.signed ? `signed by ${r.bundle.signer}` : 'UNSIGNED'}${r.bundle.entries[0]?.encrypted ? ', encrypted' : ''}`);
    say(`${bold(out.report)}  in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return 0;
}

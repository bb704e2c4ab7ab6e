// `otapack --version`: the version, then what this installation runs on — where it is, which
// Node, which deflate engine gzip uses, and every external program with its version — so a
// report from another machine says what differs. Loaded only for that option.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toolReport } from '../util/tool-report.js';
import { deflateStatus } from '../compress/native-deflate.js';

export async function printVersion(version: string): Promise<number> {
  const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
  const tools = await toolReport();
  const gz = deflateStatus();
  const lines = [
    `otapack ${version} (${root})`,
    `node ${process.versions.node} (${process.execPath})`,
    `gzip codec: ${gz.engine}${gz.native ? ` (native addon: ${gz.addon})` : ` (libdeflate addon ${gz.why ?? 'not loaded'})`}`,
    'external tools:',
  ];
  const width = Math.max(...tools.map((t) => t.package.length));
  for (const t of tools) {
    const found = t.missing.length < t.programs.length;
    const state = t.missing.length === 0 ? (t.version ?? 'found') : 'MISSING';
    let line = `  ${t.package.padEnd(width)}  ${state.padEnd(8)}  ${t.programs.join(' ')}`;
    if (t.missing.length > 0) {
      line += `: ${found ? `${t.missing.join(', ')} not found; ` : ''}${t.required ? 'needed for' : 'only for'} ${t.neededFor} (apt-get install ${t.package})`;
    }
    lines.push(line);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

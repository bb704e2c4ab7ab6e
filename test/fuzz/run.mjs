#!/usr/bin/env node
// npm run fuzz [-- --n 10000 --seed 1 --only cpio,manifest]: the full seeded fuzz run.
import { fuzz } from './targets.mjs';

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
const n = Number(arg('n', 10000));
const seed = Number(arg('seed', 1));
const only = arg('only', undefined)?.split(',');
const { findings, exit70, stats } = await fuzz({ n, seed, only, log: (m) => console.log(m) });
for (const f of findings.slice(0, 20)) console.log(`FINDING ${f.target} #${f.input} (seed ${f.seed}): ${f.error}`);
// every input whose error would exit 70 is listed: an internal error is never the answer to an input
for (const x of exit70) console.log(`EXIT 70 ${x}`);
const maxRss = Math.max(...Object.values(stats).map((s) => s.rssMiB));
const inputs = Object.values(stats).reduce((a, s) => a + s.inputs, 0);
console.log(`${findings.length} findings, ${exit70.length} inputs that would exit 70; ${Object.keys(stats).length} targets, ${inputs} inputs; peak rss ${maxRss} MiB`);
process.exit(findings.length || exit70.length || maxRss > 512 ? 1 : 0);

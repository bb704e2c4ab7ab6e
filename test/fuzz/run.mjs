#!/usr/bin/env node
// npm run fuzz [-- --n 10000 --seed 1 --only cpio,manifest]: the full seeded fuzz run.
import { fuzz } from './targets.mjs';

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
const n = Number(arg('n', 10000));
const seed = Number(arg('seed', 1));
const only = arg('only', undefined)?.split(',');
const { findings, stats } = await fuzz({ n, seed, only, log: (m) => console.log(m) });
for (const f of findings.slice(0, 20)) console.log(`FINDING ${f.target} #${f.input} (seed ${f.seed}): ${f.error}`);
const maxRss = Math.max(...Object.values(stats).map((s) => s.rssMiB));
console.log(`${findings.length} findings; ${Object.keys(stats).length} targets × ${n} inputs; peak rss ${maxRss} MiB`);
process.exit(findings.length || maxRss > 512 ? 1 : 0);

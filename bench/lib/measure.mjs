// Runs one command under GNU time (/usr/bin/time -v, package "time") and samples the RSS of its
// whole process tree, so a run yields wall time, CPU time (user + system of every process),
// the largest single process's peak RSS and the peak sum over the tree.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const PAGE = 4096;

function descendants(pid, out = []) {
  let tasks = [];
  try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const t of tasks) {
    let kids = '';
    try { kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'latin1'); } catch { continue; }
    for (const k of kids.split(' ').filter(Boolean)) {
      out.push(Number(k));
      descendants(Number(k), out);
    }
  }
  return out;
}

function rssOf(pid) {
  try { return Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]) * PAGE; } catch { return 0; }
}

function parseTime(text) {
  const num = (re) => { const m = re.exec(text); return m ? Number(m[1]) : NaN; };
  return {
    user: num(/User time \(seconds\): ([\d.]+)/),
    sys: num(/System time \(seconds\): ([\d.]+)/),
    maxRssKiB: num(/Maximum resident set size \(kbytes\): (\d+)/),
    exit: num(/Exit status: (\d+)/),
  };
}

/**
 * Before each measured run: every dirty page of the previous tool written out (sync) and a short
 * pause, outside the timed span. Without it the tool that follows one writing GiBs (convert)
 * pays for their writeback: the 4 GiB bundle measured 4.25-4.8 s right after a convert, 2.8-3.1 s
 * on a settled machine.
 */
function settle() {
  spawnSync('sync');
  spawnSync('sleep', ['0.3']);
}

/**
 * Runs `cmd args` (cwd, env) and returns { wall, cpu, user, sys, peakRss, treeRss, exit, stderr }.
 * Times in seconds, sizes in bytes.
 */
export function measure(cmd, args, { cwd, env, sampleMs = 50 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'otapack-bench-'));
  const tfile = join(dir, 'time');
  settle();
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-v', '-o', tfile, cmd, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => { stderr = (stderr + b.toString()).slice(-20000); });
    let treeRss = 0;
    const timer = setInterval(() => {
      const pids = descendants(child.pid);
      let sum = 0;
      for (const p of pids) sum += rssOf(p);
      if (sum > treeRss) treeRss = sum;
    }, sampleMs);
    child.on('error', (e) => { clearInterval(timer); reject(e); });
    child.on('close', (code) => {
      clearInterval(timer);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let t;
      try { t = parseTime(readFileSync(tfile, 'utf8')); } catch { t = { user: NaN, sys: NaN, maxRssKiB: NaN, exit: code }; }
      rmSync(dir, { recursive: true, force: true });
      resolve({ wall, user: t.user, sys: t.sys, cpu: t.user + t.sys, peakRss: t.maxRssKiB * 1024, treeRss, exit: Number.isNaN(t.exit) ? code : t.exit, stderr });
    });
  });
}

export const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

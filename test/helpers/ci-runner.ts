// Runs the CI examples here, without GitHub or GitLab: the YAML is parsed and every job's
// shell steps run with bash, in order, each job in a fresh workspace, artifacts carried between
// jobs the way the services do, secrets handed only to the jobs that ask for them. What cannot
// be emulated (an unknown action, an unknown ${{ }} expression, a rule we do not evaluate) fails
// the test instead of being skipped. Each job starts without otapack, as on a fresh runner: its
// own steps install it (`npm install --global`, into a folder of the job's own, on its PATH).
import { execa } from 'execa';
import { cpSync, mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './run.js';
import { npmGlobalEnv } from './install.js';

export interface JobRun { job: string; env: Record<string, string>; log: string; npmPrefix: string }

/** actions/checkout / GitLab's clone: the repository files the examples use. */
function checkout(ws: string): void {
  mkdirSync(ws, { recursive: true });
  cpSync(join(ROOT, "examples"), join(ws, "examples"), { recursive: true, filter: (src) => !relative(join(ROOT, "examples"), src).startsWith("work") });
}

async function bash(script: string, cwd: string, env: Record<string, string>, what: string): Promise<string> {
  const file = join(cwd, `.step-${Date.now()}-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, script);
  const r = await execa('bash', ['--noprofile', '--norc', '-eo', 'pipefail', file], { cwd, env, extendEnv: false, reject: false, all: true, timeout: 600_000 });
  const out = String(r.all ?? '');
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode}):\n${out}`);
  return out;
}

/** A job's environment: the runner's PATH, and `npm install --global` going to the job's own prefix (on PATH first). */
function baseEnv(npmPrefix: string): Record<string, string> {
  mkdirSync(join(npmPrefix, 'lib'), { recursive: true });
  return { PATH: `${join(npmPrefix, 'bin')}:${process.env.PATH}`, HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8', CI: 'true', NO_COLOR: '1', ...npmGlobalEnv(npmPrefix) };
}

/** upload-artifact's root: a single folder's contents, a single file's folder, else the paths' common ancestor. */
function artifactRoot(paths: string[]): string {
  if (paths.length === 1) return statSync(paths[0]!).isDirectory() ? resolve(paths[0]!) : dirname(resolve(paths[0]!));
  const parts = paths.map((p) => resolve(p).split(sep));
  const first = parts[0]!;
  let n = 0;
  while (n < first.length && parts.every((p) => p[n] === first[n])) n++;
  return first.slice(0, n).join(sep) || sep;
}

// ------------------------------------------------------------------------------ GitHub Actions

export interface GithubOptions {
  secrets?: Record<string, string>;
  vars?: Record<string, string>;
  workdir: string;
  /** Run only these jobs (their needs' artifacts must already be in `artifacts`). */
  only?: string[];
  /** Artifact store (default: workdir/artifacts); share it to rerun a later job alone. */
  artifacts?: string;
}

export async function runGithubWorkflow(file: string, o: GithubOptions): Promise<JobRun[]> {
  const wf = parse(readFileSync(file, 'utf8')) as { env?: Record<string, string>; jobs: Record<string, GhJob> };
  const expr = (v: unknown, where: string): string => String(v ?? '').replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, e: string) => {
    const m = /^(secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(e);
    if (!m) throw new Error(`${where}: expression \${{ ${e} }} is not emulated`);
    return (m[1] === 'secrets' ? o.secrets : o.vars)?.[m[2]!] ?? '';
  });
  const envOf = (m: Record<string, string> | undefined, where: string): Record<string, string> =>
    Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, expr(v, `${where} env ${k}`)]));
  const order: string[] = [];
  const visit = (name: string): void => {
    if (order.includes(name)) return;
    const needs = wf.jobs[name]!.needs;
    for (const n of needs === undefined ? [] : Array.isArray(needs) ? needs : [needs]) visit(n);
    order.push(name);
  };
  Object.keys(wf.jobs).forEach(visit);
  const store = o.artifacts ?? join(o.workdir, 'artifacts');
  const runs: JobRun[] = [];
  for (const name of order) {
    if (o.only && !o.only.includes(name)) continue;
    const job = wf.jobs[name]!;
    const ws = join(o.workdir, `gh-${name}`);
    mkdirSync(ws, { recursive: true });
    const npmPrefix = join(o.workdir, `gh-${name}-npm-global`);
    const jobEnv = { ...baseEnv(npmPrefix), GITHUB_WORKSPACE: ws, ...envOf(wf.env, 'workflow'), ...envOf(job.env, name) };
    let log = '';
    for (const [i, step] of job.steps.entries()) {
      const where = `job ${name} step ${i + 1}${step.name ? ` (${step.name})` : ''}`;
      if (step.uses) {
        const action = step.uses.replace(/@.*$/, '');
        const w = step.with ?? {};
        if (action === 'actions/checkout') checkout(ws);
        else if (action === 'actions/upload-artifact') {
          const paths = String(w.path).split('\n').map((s) => s.trim()).filter(Boolean).map((p) => join(ws, p));
          const root = artifactRoot(paths);
          const dest = join(store, String(w.name));
          for (const p of paths) cpSync(p, join(dest, relative(root, p)), { recursive: true });
        } else if (action === 'actions/download-artifact') {
          cpSync(join(store, String(w.name)), join(ws, String(w.path ?? '.')), { recursive: true });
        } else throw new Error(`${where}: action ${step.uses} is not emulated`);
        continue;
      }
      if (step.run === undefined) throw new Error(`${where}: neither uses nor run`);
      if (step.shell && step.shell !== 'bash') throw new Error(`${where}: shell ${step.shell} is not emulated`);
      log += await bash(expr(step.run, where), ws, { ...jobEnv, ...envOf(step.env, where) }, where);
    }
    runs.push({ job: name, env: jobEnv, log, npmPrefix });
  }
  return runs;
}

interface GhJob { needs?: string | string[]; env?: Record<string, string>; environment?: string; steps: { name?: string; uses?: string; with?: Record<string, unknown>; run?: string; shell?: string; env?: Record<string, string> }[] }

// ------------------------------------------------------------------------------------ GitLab CI

export interface GitlabOptions {
  /** CI/CD variables every job gets. */
  variables?: Record<string, string>;
  /** Protected variables, given only to jobs in `protectedEnvironment`. */
  protectedVariables?: Record<string, string>;
  protectedEnvironment: string;
  /** Predefined variables (CI_COMMIT_TAG …). */
  predefined?: Record<string, string>;
  workdir: string;
  /** Only list the jobs that would run (stage order, rules applied), without running them. */
  planOnly?: boolean;
}

const GITLAB_RESERVED = new Set(['stages', 'default', 'variables', 'workflow', 'include', 'image', 'services', 'before_script', 'after_script', 'cache']);

type GlScript = (string | GlScript)[];
interface GlJob { stage?: string; needs?: (string | { job: string })[]; environment?: string | { name: string }; rules?: { if?: string }[]; variables?: Record<string, string>; before_script?: GlScript; script: GlScript; artifacts?: { paths?: string[] } }

export async function runGitlabPipeline(file: string, o: GitlabOptions): Promise<JobRun[]> {
  const doc = parse(readFileSync(file, 'utf8'), { merge: true }) as Record<string, unknown> & { stages?: string[]; default?: { before_script?: GlScript }; variables?: Record<string, string> };
  const stages = doc.stages ?? ['build', 'test', 'deploy'];
  const jobs = Object.entries(doc).filter(([k]) => !GITLAB_RESERVED.has(k) && !k.startsWith('.')) as [string, GlJob][];
  const predefined = { CI: 'true', GITLAB_CI: 'true', ...o.predefined };
  const ruleOk = (job: GlJob, name: string): boolean => {
    if (!job.rules) return true;
    return job.rules.some((r) => {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(String(r.if ?? '').trim());
      if (!m) throw new Error(`job ${name}: rule ${JSON.stringify(r)} is not emulated`);
      return !!(predefined as Record<string, string>)[m[1]!];
    });
  };
  const done = new Map<string, string>(); // job → workspace
  const runs: JobRun[] = [];
  for (const stage of stages) {
    for (const [name, job] of jobs.filter(([, j]) => (j.stage ?? 'test') === stage)) {
      if (!ruleOk(job, name)) continue;
      if (o.planOnly) { runs.push({ job: name, env: {}, log: '', npmPrefix: '' }); continue; }
      const ws = join(o.workdir, `gl-${name}`);
      checkout(ws);
      const needs = job.needs ? job.needs.map((n) => (typeof n === 'string' ? n : n.job)) : [...done.keys()];
      for (const n of needs) {
        const from = done.get(n);
        if (!from) throw new Error(`job ${name} needs ${n}, which did not run`);
        const producer = jobs.find(([k]) => k === n)![1];
        for (const p of producer.artifacts?.paths ?? []) if (existsSync(join(from, p))) cpSync(join(from, p), join(ws, p), { recursive: true });
      }
      const envName = typeof job.environment === 'string' ? job.environment : job.environment?.name;
      const npmPrefix = join(o.workdir, `gl-${name}-npm-global`);
      const env: Record<string, string> = {
        ...baseEnv(npmPrefix), ...predefined, CI_JOB_NAME: name, CI_PROJECT_DIR: ws,
        ...doc.variables, ...job.variables, ...o.variables,
        ...(envName === o.protectedEnvironment ? o.protectedVariables : {}),
      };
      // GitLab flattens nested lists (a `- *anchor` of a list of lines) into one script
      const lines = [...(job.before_script ?? doc.default?.before_script ?? []), ...job.script].flat(10);
      const log = await bash(lines.join('\n') + '\n', ws, env, `job ${name}`);
      done.set(name, ws);
      runs.push({ job: name, env, log, npmPrefix });
    }
  }
  return runs;
}

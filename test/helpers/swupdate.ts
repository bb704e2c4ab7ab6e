// Drives Debian's real SWUpdate client. Its exit code is unreliable on success for small
// bundles (a race in 2022.12), so success is judged by its output: "SWUPDATE successful" and no
// "[ERROR]" line; runs that should succeed are retried up to 3 times (see the oracle notes).
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ClientRun { ok: boolean; code: number; output: string }

export interface ClientOptions {
  cert: string; // -k
  aesKey?: string; // -K
  hw?: string; // -H board:rev
  select?: string; // -e stable,copy2
  purpose?: 'emailProtection' | 'codeSigning';
  check?: boolean; // -c
  bootloader?: 'uboot' | 'grub';
  extra?: string[];
  /** Run inside a mount namespace where /etc/fw_env.config is this file (needs root). */
  fwEnvConfig?: string;
}

export async function swupdate(bundle: string, o: ClientOptions): Promise<ClientRun> {
  const args = ['-k', o.cert, '-H', o.hw ?? 'otapack:1.0', '-i', bundle];
  if (o.check) args.unshift('-c');
  if (o.aesKey) args.push('-K', o.aesKey);
  if (o.select) args.push('-e', o.select);
  if (o.purpose) args.push('--cert-purpose', o.purpose);
  if (o.bootloader) args.push('-B', o.bootloader);
  if (o.extra) args.push(...o.extra);
  const t = mkdtempSync(join(tmpdir(), 'swu-'));
  try {
    let cmd = 'swupdate';
    let argv = args;
    if (o.fwEnvConfig) {
      // private mount namespace with an overlay on /etc: the client reads its compiled-in
      // /etc/fw_env.config, the host's /etc stays untouched
      const script = 'mkdir -p "$1/u" "$1/w" && mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/u,workdir=$1/w" /etc && cp "$0" /etc/fw_env.config && shift && exec swupdate "$@"';
      cmd = 'unshare';
      argv = ['-m', '--propagation', 'private', 'sh', '-c', script, o.fwEnvConfig, t, ...args];
    }
    const r = await execa(cmd, argv, { reject: false, all: true, env: { TMPDIR: t }, timeout: 300_000 });
    const output = String(r.all ?? '');
    const ok = output.includes('SWUPDATE successful') && !output.includes('[ERROR]');
    return { ok, code: r.exitCode ?? -1, output };
  } finally {
    rmSync(t, { recursive: true, force: true });
  }
}

/** For runs expected to succeed: retry up to 3 times before reporting failure. */
export async function swupdateOk(bundle: string, o: ClientOptions): Promise<ClientRun> {
  let r: ClientRun | undefined;
  for (let i = 0; i < 3; i++) {
    r = await swupdate(bundle, o);
    if (r.ok) return r;
  }
  return r!;
}

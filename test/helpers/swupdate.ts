// Drives Debian's real SWUpdate client. Its exit code is unreliable on success for small
// bundles (a race in 2022.12), so success is judged by its output: "SWUPDATE successful" and no
// "[ERROR]" line; runs that should succeed are retried up to 3 times (see the oracle notes).
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
  /** Device paths the bundle names, backed by regular files (e.g. /dev/mmcblk0p3 -> slot.img). */
  devices?: Record<string, string>;
  /** A host directory that appears as /boot/grub (where SWUpdate's GRUB backend edits grubenv). */
  grubDir?: string;
}

// In a private mount namespace (root only): a tmpfs /dev with the usual character devices and
// the requested device paths bound to files, an overlay on /etc holding fw_env.config, and
// /boot/grub bound to a host folder. The host sees none of it.
const NS_SCRIPT = `set -e
T=$1; shift
mkdir -p "$T/olddev" "$T/u" "$T/w"
if [ -n "$OTA_DEVICES" ]; then
  mount --bind /dev "$T/olddev"
  mount -t tmpfs tmpfs /dev
  for n in null zero urandom random full tty; do
    if [ -e "$T/olddev/$n" ]; then touch "/dev/$n"; mount --bind "$T/olddev/$n" "/dev/$n"; fi
  done
  echo "$OTA_DEVICES" | while read -r dev file; do
    [ -n "$dev" ] || continue
    mkdir -p "$(dirname "$dev")"; touch "$dev"; mount --bind "$file" "$dev"
  done
fi
if [ -n "$OTA_FWENV" ]; then
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$T/u,workdir=$T/w" /etc
  cp "$OTA_FWENV" /etc/fw_env.config
fi
if [ -n "$OTA_GRUBDIR" ]; then
  mkdir -p "$T/boot"; mount -t tmpfs tmpfs /boot 2>/dev/null || { mkdir -p /boot; mount -t tmpfs tmpfs /boot; }
  mkdir -p /boot/grub; mount --bind "$OTA_GRUBDIR" /boot/grub
fi
exec swupdate "$@"`;

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
    const env: Record<string, string> = { TMPDIR: t };
    if (o.fwEnvConfig || o.devices || o.grubDir) {
      cmd = 'unshare';
      argv = ['-m', '--propagation', 'private', 'sh', '-c', NS_SCRIPT, 'ns', t, ...args];
      env.OTA_FWENV = o.fwEnvConfig ?? '';
      env.OTA_GRUBDIR = o.grubDir ?? '';
      env.OTA_DEVICES = Object.entries(o.devices ?? {}).map(([d, f]) => `${d} ${f}`).join('\n');
    }
    const r = await execa(cmd, argv, { reject: false, all: true, env, timeout: 300_000 });
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

/**
 * Installs through the client as a daemon fed by swupdate-client (next-formats §0): with delta
 * bundles (a small .swu, a long install) `swupdate -i` can end its own install early. The daemon
 * runs with its own TMPDIR (its sockets live there) and, when devices, an fw_env.config or a
 * grub folder are asked for, in the same private mount namespace as swupdate(). Judged by the
 * daemon's output: "SWUPDATE successful" and no "[ERROR]".
 */
export async function swupdateDaemon(bundle: string, o: ClientOptions & { verbose?: boolean; timeoutMs?: number }): Promise<ClientRun & { ms: number }> {
  const args = ['-k', o.cert, '-H', o.hw ?? 'otapack:1.0'];
  if (o.aesKey) args.push('-K', o.aesKey);
  if (o.select) args.push('-e', o.select);
  if (o.purpose) args.push('--cert-purpose', o.purpose);
  if (o.bootloader) args.push('-B', o.bootloader);
  if (o.verbose) args.push('-v');
  if (o.extra) args.push(...o.extra);
  const t = mkdtempSync(join(tmpdir(), 'swud-'));
  const env: Record<string, string> = { TMPDIR: t };
  let cmd = 'swupdate';
  let argv = args;
  if (o.fwEnvConfig || o.devices || o.grubDir) {
    cmd = 'unshare';
    argv = ['-m', '--propagation', 'private', 'sh', '-c', NS_SCRIPT, 'ns', t, ...args];
    env.OTA_FWENV = o.fwEnvConfig ?? '';
    env.OTA_GRUBDIR = o.grubDir ?? '';
    env.OTA_DEVICES = Object.entries(o.devices ?? {}).map(([d, f]) => `${d} ${f}`).join('\n');
  }
  const daemon = execa(cmd, argv, { reject: false, all: true, env, buffer: true });
  let log = '';
  daemon.all?.on('data', (b: Buffer) => { log += b.toString(); });
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  try {
    while (!existsSync(join(t, 'sockinstctrl'))) {
      if (daemon.exitCode !== null || Date.now() > deadline) return { ok: false, code: daemon.exitCode ?? -1, output: log, ms: 0 };
      await sleep(50);
    }
    const t0 = Date.now();
    // the client's own exit code is unreliable (next-formats §0): only the daemon's output counts
    await execa('swupdate-client', ['-q', bundle], { reject: false, env: { TMPDIR: t } });
    const done = /SWUPDATE successful|SWUPDATE failed \[1\]|SWUpdate \*failed\*/;
    while (!done.test(log) && Date.now() < deadline && daemon.exitCode === null) await sleep(50);
    const ms = Date.now() - t0;
    await sleep(300); // the lines that follow the verdict
    const ok = log.includes('SWUPDATE successful') && !log.includes('[ERROR]');
    return { ok, code: ok ? 0 : 1, output: log, ms };
  } finally {
    daemon.kill('SIGTERM');
    await daemon;
    rmSync(t, { recursive: true, force: true });
  }
}

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

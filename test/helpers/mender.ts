// The real Mender tools as judges: mender-artifact 3.9 (validate, read, write) and the Mender
// client 3.4 (`mender install/commit/rollback`) run on this host against loop-device slots, the
// harness of shared/reference next-formats §C. Needs root (losetup, a private mount namespace for
// /etc/mender, whose artifact_info path the client has compiled in).
import { execa } from 'execa';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ToolRun { code: number; out: string }

export async function menderArtifact(args: string[]): Promise<ToolRun> {
  const r = await execa('mender-artifact', args, { reject: false, all: true, env: { LC_ALL: 'C' }, timeout: 300_000 });
  return { code: r.exitCode ?? -1, out: String(r.all ?? '') };
}

/** mender-artifact write rootfs-image (PKCS#1/SEC1 keys only: it cannot read PKCS#8). */
export async function menderArtifactWrite(o: { image: string; out: string; name: string; deviceType: string; key?: string; compression?: 'gzip' | 'none' | 'lzma' }): Promise<void> {
  const r = await menderArtifact(['write', 'rootfs-image', '-f', o.image, '-n', o.name, '-t', o.deviceType, '-o', o.out, '--compression', o.compression ?? 'gzip', '--no-progress', ...(o.key ? ['-k', o.key] : [])]);
  if (r.code !== 0) throw new Error(`mender-artifact write failed: ${r.out}`);
}

/** Keys in the forms each tool wants: PKCS#8 for otapack, traditional PKCS#1/SEC1 for mender-artifact, and the public key. */
export interface KeyPair { key: string; traditional: string; pub: string }

export async function menderKeys(dir: string, kind: 'rsa' | 'ec', name = kind): Promise<KeyPair> {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, `${name}.key`);
  const args = kind === 'rsa' ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'] : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await execa('openssl', ['genpkey', ...args, '-out', key]);
  const traditional = join(dir, `${name}.trad.key`);
  await execa('openssl', [kind === 'rsa' ? 'rsa' : 'ec', '-in', key, ...(kind === 'rsa' ? ['-traditional'] : []), '-out', traditional]);
  const pub = join(dir, `${name}.pub`);
  await execa('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  return { key, traditional, pub };
}

/**
 * The Mender client on loop-device slots. The slots are two files of `size` bytes behind loop
 * devices; the boot environment a mkenvimage file read and written through fw_printenv/fw_setenv
 * -c; a fake `mount` first in PATH says which slot is root (the host root is neither); /etc/mender
 * is a bind mount in a private mount namespace (mender.conf, artifact_info).
 */
export class MenderHost {
  readonly slotA: string;
  readonly slotB: string;
  private constructor(readonly dir: string, readonly devA: string, readonly devB: string, readonly verifyKey?: string) {
    this.slotA = join(dir, 'slotA.img');
    this.slotB = join(dir, 'slotB.img');
  }

  static async create(dir: string, o: { size: number; verifyKey?: string; deviceType: string; artifactName: string }): Promise<MenderHost> {
    for (const d of ['bin', 'state', 'etc-mender']) mkdirSync(join(dir, d), { recursive: true });
    for (const s of ['slotA.img', 'slotB.img']) await execa('truncate', ['-s', String(o.size), join(dir, s)]);
    const devA = (await execa('losetup', ['-f', '--show', join(dir, 'slotA.img')])).stdout.trim();
    let devB: string;
    try {
      devB = (await execa('losetup', ['-f', '--show', join(dir, 'slotB.img')])).stdout.trim();
    } catch (e) {
      await execa('losetup', ['-d', devA], { reject: false });
      throw e;
    }
    const h = new MenderHost(dir, devA, devB, o.verifyKey);
    const partA = /(\d+)$/.exec(devA)![1]!;
    writeFileSync(join(dir, 'env.txt'), `mender_boot_part=${partA}\nmender_boot_part_hex=${Number(partA).toString(16)}\nupgrade_available=0\nbootcount=0\nbootlimit=1\n`);
    await execa('mkenvimage', ['-s', '0x4000', '-o', join(dir, 'uboot.env'), join(dir, 'env.txt')]);
    writeFileSync(join(dir, 'fw_env.config'), `${join(dir, 'uboot.env')} 0x0 0x4000\n`);
    const exe = (name: string, text: string): void => { writeFileSync(join(dir, 'bin', name), text); chmodSync(join(dir, 'bin', name), 0o755); };
    exe('fw_printenv', `#!/bin/sh\nexec /usr/bin/fw_printenv -c ${join(dir, 'fw_env.config')} "$@"\n`);
    exe('fw_setenv', `#!/bin/sh\nexec /usr/bin/fw_setenv -c ${join(dir, 'fw_env.config')} "$@"\n`);
    exe('mount', `#!/bin/sh\nif [ $# -eq 0 ]; then echo "$(cat ${join(dir, 'root')}) on / type ext4 (rw,relatime)"; else exec /bin/mount "$@"; fi\n`);
    writeFileSync(join(dir, 'root'), `${devA}\n`);
    writeFileSync(join(dir, 'state/device_type'), `device_type=${o.deviceType}\n`);
    writeFileSync(join(dir, 'etc-mender/artifact_info'), `artifact_name=${o.artifactName}\n`);
    writeFileSync(join(dir, 'etc-mender/mender.conf'), JSON.stringify({
      RootfsPartA: devA, RootfsPartB: devB,
      BootUtilitiesSetActivePart: join(dir, 'bin/fw_setenv'), BootUtilitiesGetNextActivePart: join(dir, 'bin/fw_printenv'),
      DeviceTypeFile: join(dir, 'state/device_type'),
      ...(o.verifyKey ? { ArtifactVerifyKey: o.verifyKey } : {}),
    }, null, 2));
    return h;
  }

  /** The partition number Mender derives from a slot's device name (its trailing digits). */
  part(slot: 'A' | 'B'): string {
    return /(\d+)$/.exec(slot === 'A' ? this.devA : this.devB)![1]!;
  }

  /** "Boots" a slot: the fake mount reports it as root. */
  boot(slot: 'A' | 'B'): void {
    writeFileSync(join(this.dir, 'root'), `${slot === 'A' ? this.devA : this.devB}\n`);
  }

  async mender(args: string[]): Promise<ToolRun> {
    const d = this.dir;
    const r = await execa('unshare', ['-m', 'sh', '-c',
      `mount --bind ${d}/etc-mender /etc/mender && PATH=${d}/bin:$PATH exec mender --data ${d}/state --no-syslog "$@"`, 'mender', ...args,
    ], { reject: false, all: true, env: { LC_ALL: 'C' }, timeout: 300_000 });
    return { code: r.exitCode ?? -1, out: String(r.all ?? '') };
  }

  async env(): Promise<Record<string, string>> {
    const r = await execa('fw_printenv', ['-c', join(this.dir, 'fw_env.config')]);
    return Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  /** Sets variables the way the boot loader's fallback would. */
  async setEnv(vars: Record<string, string>): Promise<void> {
    await execa('fw_setenv', ['-c', join(this.dir, 'fw_env.config'), '-s', '-'], { input: Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n') + '\n' });
  }

  async close(): Promise<void> {
    for (const d of [this.devA, this.devB]) await execa('losetup', ['-d', d], { reject: false });
  }
}

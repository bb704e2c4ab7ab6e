// The checks every converted layout must pass, each judged by a real tool: sfdisk/sgdisk for the
// table, e2fsck for every ext4, dumpimage/fw_printenv/grub-editenv for the boot state, bmaptool
// for the bmap, debugfs for the trees, and Debian's swupdate installing the bundle.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { readFileSync, writeFileSync, mkdirSync, readdirSync, lstatSync, readlinkSync, statSync, truncateSync, openSync, readSync, closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { otapack, tmp } from './run.js';
import { swupdateOk } from './swupdate.js';
import { keygen, type KeyDir } from './bundle-fixtures.js';
import type { FixtureImage } from './images.js';

export interface ConvertCase {
  name: string;
  build: (dir: string) => Promise<FixtureImage>;
  config?: string;
  /** Run the (slower) bmaptool copy and real-install checks. */
  deep?: boolean;
}

interface OutPart { number: number; role: string; start: number; size: number; device: string; partuuid: string }

export function hashRange(file: string, start: number, length: number): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4 << 20);
    for (let p = 0; p < length; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - p), start + p);
      if (n === 0) { h.update(Buffer.alloc(length - p)); break; }
      h.update(buf.subarray(0, n));
      p += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

export const spec = (img: string, offset: number): string => `${img}?offset=${offset}`;

export async function ext4Cat(img: string, offset: number, path: string): Promise<string> {
  const r = await execa('debugfs', ['-R', `cat "${path}"`, spec(img, offset)], { reject: false });
  return r.stdout;
}

/** Every file, symlink and directory of `tree` is in the filesystem with the same content. */
/** `changed`: files convert rewrites on purpose (from its report; checked on their own). */
export async function compareTree(tree: string, img: string, offset: number, work: string, changed: Set<string> = new Set()): Promise<string[]> {
  const dump = join(work, `rdump-${offset}`);
  mkdirSync(dump, { recursive: true });
  const tops = readdirSync(tree).filter((n) => !lstatSync(join(tree, n)).isSymbolicLink()).map((n) => `"/${n}"`);
  await execa('debugfs', ['-R', `rdump ${tops.join(' ')} ${dump}`, spec(img, offset)], { reject: false });
  const problems: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = relative(tree, p);
      const st = lstatSync(p);
      const got = join(dump, rel);
      if (st.isSymbolicLink()) {
        if (!rel.includes('/')) continue; // top-level merged-/usr links: checked below via debugfs
        try { if (readlinkSync(got) !== readlinkSync(p)) problems.push(`${rel}: symlink target differs`); } catch { problems.push(`${rel}: symlink missing`); }
      } else if (st.isDirectory()) {
        try { if (!statSync(got).isDirectory()) problems.push(`${rel}: not a directory`); } catch { problems.push(`${rel}: directory missing`); }
        walk(p);
      } else if (st.isFile() && !changed.has(rel)) {
        try { if (!readFileSync(got).equals(readFileSync(p))) problems.push(`${rel}: content differs`); } catch { problems.push(`${rel}: file missing`); }
      }
    }
  };
  walk(tree);
  return problems;
}

export function convertSuite(c: ConvertCase): void {
  describe(c.name, () => {
    let dir: string;
    let keys: KeyDir;
    let fx: FixtureImage;
    let out: string;
    let img: string;
    let report: any;
    let parts: OutPart[];
    const part = (role: string): OutPart => parts.find((p) => p.role === role)!;
    let inputHash: string;

    beforeAll(async () => {
      dir = tmp('otapack-convert-');
      [keys, fx] = await Promise.all([keygen(join(dir, 'keys'), ['--type', 'rsa2048']), c.build(join(dir, 'input'))]);
      inputHash = hashRange(fx.path, 0, statSync(fx.path).size);
      out = join(dir, 'out');
      const args = ['convert', fx.path, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--json', '--image-sha256'];
      if (c.config) {
        writeFileSync(join(dir, 'otapack.yaml'), c.config);
        args.push('-c', join(dir, 'otapack.yaml'));
      }
      const r = await otapack(args, { env: { SOURCE_DATE_EPOCH: '1700000000' } });
      if (r.code !== 0) throw new Error(`convert failed (${r.code}): ${r.stderr}`);
      report = JSON.parse(r.stdout);
      parts = report.output.partitions;
      const name = fx.path.split('/').pop()!.replace(/\.img$/, '');
      img = join(out, `${name}.img`);
    });

    test('the input image is not modified', () => {
      expect(hashRange(fx.path, 0, statSync(fx.path).size)).toBe(inputHash);
    });

    test('the partition table is valid and agrees with sfdisk, the report and inspect', async () => {
      const v = await execa('sfdisk', ['--verify', img], { reject: false });
      expect(v.stdout, v.stderr).toMatch(/No errors detected/);
      expect(v.stdout + v.stderr).not.toMatch(/overlap|beyond|wrong/i);
      if (report.output.table === 'gpt') {
        const g = await execa('sgdisk', ['-v', img], { reject: false });
        expect(g.stdout).toMatch(/No problems found/);
      }
      const js = JSON.parse((await execa('sfdisk', ['--json', img])).stdout).partitiontable;
      expect(js.label).toBe(report.output.table === 'gpt' ? 'gpt' : 'dos');
      const sf = js.partitions.map((p: any) => ({ start: p.start * 512, size: p.size * 512, number: Number(/(\d+)$/.exec(p.node)![1]) }));
      expect(sf).toEqual(parts.map((p) => ({ start: p.start, size: p.size, number: p.number })));
      if (report.output.table === 'gpt') expect(js.partitions.map((p: any) => p.uuid.toLowerCase())).toEqual(parts.map((p) => p.partuuid));
      const ins = await otapack(['inspect', fx.path, '--json', ...(c.config ? ['-c', join(dir, 'otapack.yaml')] : [])]);
      expect(ins.code, ins.stderr).toBe(0);
      expect(JSON.parse(ins.stdout).plan.partitions.map((p: any) => [p.number, p.start, p.size])).toEqual(parts.map((p) => [p.number, p.start, p.size]));
      expect(statSync(img).blocks * 512).toBeLessThan(statSync(img).size); // sparse
    });

    test('slots A and B and the data partition pass e2fsck, and A equals B', async () => {
      for (const role of ['rootfs-a', 'rootfs-b', 'data']) {
        const r = await execa('e2fsck', ['-fn', spec(img, part(role).start)], { reject: false });
        expect(r.exitCode, `${role}: ${r.stdout}`).toBe(0);
      }
      const a = part('rootfs-a');
      const b = part('rootfs-b');
      expect(a.size).toBe(b.size);
      expect(hashRange(img, a.start, a.size)).toBe(hashRange(img, b.start, b.size));
    });

    test('everything the original image held is still there', async () => {
      for (const r of fx.rawRegions) expect(hashRange(img, r.offset, r.length), `raw bytes at ${r.offset}`).toBe(r.sha256);
      for (const p of fx.partitions.filter((x) => x.number !== fx.rootPartition && x.number !== fx.bootPartition)) {
        expect(hashRange(img, p.start * 512, p.size * 512), `kept partition ${p.number}`).toBe(hashRange(fx.path, p.start * 512, p.size * 512));
      }
      const changed = new Set<string>(report.injected.map((i: { path: string }) => i.path.replace(/^\//, '')));
      expect([...changed].filter((p) => !/^(etc|usr\/sbin|boot|data|uboot)\b/.test(p))).toEqual([]);
      const problems = await compareTree(fx.rootfsTree, img, part('rootfs-a').start, dir, changed);
      expect(problems).toEqual([]);
      // what the fixture wrote with debugfs beyond the host tree: device nodes, xattrs, owners
      const A = part('rootfs-a').start;
      for (const d of fx.specials.devices) {
        const st = (await execa('debugfs', ['-R', `stat "${d.path}"`, spec(img, A)], { reject: false })).stdout;
        expect(st, d.path).toMatch(/Type: (character|block) special/);
      }
      for (const x of fx.specials.xattrs) {
        const ea = (await execa('debugfs', ['-R', `ea_get -x "${x.path}" ${x.name}`, spec(img, A)], { reject: false })).stdout.replace(/\s+/g, '').toLowerCase();
        expect(ea, `${x.path} ${x.name}`).toContain(x.valueHex.toLowerCase());
      }
      for (const [path, [uid, gid]] of Object.entries(fx.specials.owners)) {
        const st = (await execa('debugfs', ['-R', `stat "${path}"`, spec(img, A)], { reject: false })).stdout;
        expect(st, path).toMatch(new RegExp(`User:\\s+${uid}\\s+Group:\\s+${gid}\\b`));
      }
    });

    test('the device side is wired in both slots', async () => {
      for (const role of ['rootfs-a', 'rootfs-b']) {
        const off = part(role).start;
        const fstab = await ext4Cat(img, off, '/etc/fstab');
        expect(fstab).toMatch(new RegExp(`^${part('data').device}\\s+/data\\s+ext4`, 'm'));
        expect(fstab).toMatch(/^\/dev\/root\s+\/\s/m);
        // every original entry other than the root line is kept
        for (const line of readFileSync(join(fx.rootfsTree, 'etc/fstab'), 'utf8').split('\n').filter((l) => l.trim() && !/\s\/\s/.test(l))) {
          expect(fstab).toContain(line);
        }
        const boot = part('boot');
        if (report.boot.bootloader === 'uboot') {
          expect(await ext4Cat(img, off, '/etc/fw_env.config')).toMatch(/otapack\.env\s+0x0000\s+0x4000/);
          expect(fstab).toMatch(new RegExp(`^${boot.device}\\s+\\S+\\s+vfat`, 'm'));
        } else {
          expect(fstab).toMatch(/\/boot\/grub\s+none\s+bind/);
        }
        const cfg = await ext4Cat(img, off, '/etc/swupdate.cfg');
        expect(cfg).toMatch(/public-key-file = "\/etc\/otapack\/trust\.pem";/);
        expect(cfg).toMatch(new RegExp(`bootloader = "${report.boot.bootloader}";`));
        expect(cfg).not.toMatch(/aes-key-file/);
        expect(await ext4Cat(img, off, '/etc/hwrevision')).toBe('otapack 1.0');
        expect(await ext4Cat(img, off, '/etc/sw-versions')).toMatch(/^rootfs 1\.0\.0/);
        expect((await ext4Cat(img, off, '/etc/otapack/trust.pem')).trim()).toBe(readFileSync(keys.cert, 'utf8').trim());
        const slots = await ext4Cat(img, off, '/etc/otapack/slots.conf');
        expect(slots).toContain(`SLOT_A_PARTUUID=${part('rootfs-a').partuuid}`);
        expect(slots).toContain(`SLOT_B_DEV=${part('rootfs-b').device}`);
        for (const f of ['/usr/sbin/otapack-update', '/usr/sbin/otapack-commit', '/usr/sbin/otapack-slot', '/usr/sbin/otapack-env', '/etc/init.d/S99otapack-commit', '/etc/systemd/system/otapack-commit.service']) {
          const st = await execa('debugfs', ['-R', `stat "${f}"`, spec(img, off)], { reject: false });
          expect(st.stdout, f).toMatch(/Inode: \d+/);
        }
        // the scripts are valid shell
        const sh = await ext4Cat(img, off, '/usr/sbin/otapack-update');
        const t = join(dir, `check-${role}.sh`);
        writeFileSync(t, sh);
        expect((await execa('sh', ['-n', t], { reject: false })).exitCode).toBe(0);
      }
      // no private key material anywhere in the disk image or the bundle
      const key = readFileSync(keys.key, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----'))[1]!;
      const aes = readFileSync(keys.aes, 'utf8').split(' ')[0]!;
      for (const f of [img, join(out, img.split('/').pop()!.replace(/\.img$/, '.swu'))]) {
        const g = await execa('grep', ['-c', '-a', '-F', '-e', key, '-e', aes, f], { reject: false });
        expect(g.stdout.trim(), `secret found in ${f}`).toBe('0');
      }
    });

    test('the boot logic is installed and its initial state selects slot A', async () => {
      const boot = part('boot');
      const A = part('rootfs-a');
      const env = { MTOOLS_SKIP_CHECK: '1' };
      if (report.boot.bootloader === 'uboot') {
        const scr = join(dir, 'boot.scr');
        await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, '::/boot.scr', scr], { env });
        expect((await execa('dumpimage', ['-l', scr])).stdout).toMatch(/Script/);
        const envFile = join(dir, 'uboot.env');
        await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, '::/otapack.env', envFile], { env });
        writeFileSync(join(dir, 'fw.cfg'), `${envFile} 0x0 0x4000\n`);
        const pe = (await execa('fw_printenv', ['-c', join(dir, 'fw.cfg')])).stdout;
        expect(pe).toContain(`rootpart=${A.number}`);
        expect(pe).toContain('upgrade_available=0');
      } else {
        const ge = join(dir, 'grubenv');
        await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, `::${report.boot.envFile}`, ge], { env });
        const list = (await execa('grub-editenv', [ge, 'list'])).stdout;
        expect(list).toContain(`rootpart=${A.number}`);
      }
      expect(report.boot.edits.length + (report.input.board.kind === 'kernel-only' ? 1 : 0)).toBeGreaterThan(0);
      for (const e of report.boot.edits) expect(e.after).not.toMatch(/root=\/dev\/mmcblk0p2(\s|$)|UUID=/);
    });

    test('the report lists every output with its real sha256', () => {
      for (const k of ['image', 'bmap', 'bundle'] as const) {
        const o = report.outputs[k];
        expect(hashRange(o.path, 0, statSync(o.path).size), k).toBe(o.sha256);
      }
    });

    if (c.deep) {
      test('bmaptool copies the disk using the bmap, and the copy is a valid disk', async () => {
        const target = join(dir, 'flashed.img');
        const r = await execa('bmaptool', ['copy', '--bmap', report.outputs.bmap.path, img, target], { reject: false, all: true });
        expect(r.exitCode, String(r.all)).toBe(0);
        for (const role of ['rootfs-a', 'rootfs-b', 'data']) {
          expect((await execa('e2fsck', ['-fn', spec(target, part(role).start)], { reject: false })).exitCode).toBe(0);
        }
        expect(hashRange(target, part('boot').start, part('boot').size)).toBe(hashRange(img, part('boot').start, part('boot').size));
      });

      test('the real client installs the bundle into slot B and the boot state then selects B', async () => {
        const A = part('rootfs-a');
        const B = part('rootfs-b');
        const bundle = report.outputs.bundle.path;
        const check = await swupdateOk(bundle, { check: true, cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2' });
        expect(check.ok, check.output).toBe(true);
        const slotFile = join(dir, 'slotB.img');
        writeFileSync(slotFile, '');
        truncateSync(slotFile, B.size);
        const boot = part('boot');
        const envMount = { MTOOLS_SKIP_CHECK: '1' };
        if (report.boot.bootloader === 'uboot') {
          const envFile = join(dir, 'state.env');
          await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, '::/otapack.env', envFile], { env: envMount });
          const cfg = join(dir, 'fw_env.config');
          writeFileSync(cfg, `${envFile} 0x0 0x4000\n`);
          const r = await swupdateOk(bundle, { cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2', bootloader: 'uboot', fwEnvConfig: cfg, devices: { [B.device]: slotFile } });
          expect(r.ok, r.output).toBe(true);
          const pe = (await execa('fw_printenv', ['-c', cfg])).stdout;
          expect(pe).toContain(`rootpart=${B.number}`);
          expect(pe).toContain('upgrade_available=1');
          expect(pe).toContain('bootcount=0');
        } else {
          const grubDir = join(dir, 'grubdir');
          mkdirSync(grubDir, { recursive: true });
          await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, `::${report.boot.envFile}`, join(grubDir, 'grubenv')], { env: envMount });
          const r = await swupdateOk(bundle, { cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2', bootloader: 'grub', grubDir, devices: { [B.device]: slotFile } });
          expect(r.ok, r.output).toBe(true);
          const list = (await execa('grub-editenv', [join(grubDir, 'grubenv'), 'list'])).stdout;
          expect(list).toContain(`rootpart=${B.number}`);
          expect(list).toContain('upgrade_available=1');
        }
        expect(hashRange(slotFile, 0, B.size)).toBe(hashRange(img, A.start, A.size));
      });
    }
  });
}

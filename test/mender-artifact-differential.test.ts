// otapack's .mender writer and reader, judged by mender-artifact 3.9 (the reader Mender 3.4
// embeds): every artifact otapack writes (RSA-3072 and ECDSA P-256 signed, unsigned; gzip and
// none) passes `mender-artifact validate` and `read`; every tampered one is refused; and
// `otapack verify` gives the same verdict as `mender-artifact validate`, case by case, on
// otapack's artifacts and on mender-artifact's own. About 30 s (4 MiB images, ~70 tool runs, mostly mender-artifact).
import { beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { copyFileSync, openSync, readFileSync, readSync, writeFileSync, writeSync, closeSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { makeExt4, writeSpec } from './helpers/bundle-fixtures.js';
import { requires } from './helpers/require-tool.js';
import { menderArtifact, menderArtifactWrite, menderKeys, type KeyPair } from './helpers/mender.js';

const have = requires({ what: 'Mender artifacts judged by mender-artifact', tools: ['mender-artifact', 'openssl', 'mke2fs'], install: 'apt-get install mender-artifact' });

interface Made { file: string; signed: 'rsa' | 'ec' | 'none'; compression: 'gzip' | 'none'; by: 'otapack' | 'mender-artifact' }

describe.skipIf(!have)('mender-artifact 3.9 accepts what otapack writes; otapack verify agrees case by case', () => {
  const dir = tmp('otapack-mender-diff-');
  let image: string;
  let imageSha: string;
  const keys: Record<'rsa' | 'ec' | 'other', KeyPair> = {} as never;
  const made: Made[] = [];

  beforeAll(async () => {
    image = await makeExt4(join(dir, 'rootfs.ext4'), 4);
    imageSha = createHash('sha256').update(readFileSync(image)).digest('hex');
    [keys.rsa, keys.ec, keys.other] = await Promise.all([menderKeys(join(dir, 'k'), 'rsa'), menderKeys(join(dir, 'k'), 'ec'), menderKeys(join(dir, 'k'), 'rsa', 'other')]);
    const jobs: Promise<void>[] = [];
    for (const compression of ['gzip', 'none'] as const) {
      const spec = writeSpec(dir, `spec-${compression}.yaml`, `format: mender\nartifact-name: release-2\ndevice-types: [otapack-dev, other-dev]\nimage: rootfs.ext4\ncompress: ${compression}\n`);
      for (const signed of ['rsa', 'ec', 'none'] as const) {
        const file = join(dir, `otapack-${signed}-${compression}.mender`);
        made.push({ file, signed, compression, by: 'otapack' });
        jobs.push(otapack(['bundle', spec, '-o', file, ...(signed === 'none' ? ['--unsigned'] : ['--key', keys[signed].key])], { env: { SOURCE_DATE_EPOCH: '1700000000' } }).then((r) => {
          if (r.code !== 0) throw new Error(`otapack bundle ${file}: ${r.stderr}`);
        }));
        const theirs = join(dir, `mender-artifact-${signed}-${compression}.mender`);
        made.push({ file: theirs, signed, compression, by: 'mender-artifact' });
        jobs.push(menderArtifactWrite({ image, out: theirs, name: 'release-2', deviceType: 'otapack-dev', compression, key: signed === 'none' ? undefined : keys[signed].traditional }));
      }
    }
    await Promise.all(jobs);
  });

  const validate = (file: string, pub?: string) => menderArtifact(['validate', ...(pub ? ['-k', pub] : []), file]);
  const verify = (file: string, pub?: string) => otapack(['verify', file, ...(pub ? ['--trust', pub] : ['--allow-unsigned']), '--json']);

  it('every artifact otapack writes passes validate and read, with the image\'s checksum', async () => {
    for (const m of made.filter((x) => x.by === 'otapack')) {
      const pub = m.signed === 'none' ? undefined : keys[m.signed].pub;
      const v = await validate(m.file, pub);
      expect(v.code, `${m.file}: ${v.out}`).toBe(0);
      expect(v.out).toMatch(/validated successfully/);
      const r = await menderArtifact(['read', ...(pub ? ['-k', pub] : []), m.file]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/Name: release-2/);
      expect(r.out).toMatch(/Compatible devices: '\[otapack-dev other-dev\]'/);
      expect(r.out).toMatch(m.signed === 'none' ? /Signature: no signature/ : /Signature: signed and verified correctly/);
      expect(r.out).toContain(`checksum: ${imageSha}`);
      expect(r.out).toContain(`rootfs-image.checksum: ${imageSha}`);
      expect(r.out).toMatch(/name:\s+rootfs\.ext4/);
    }
  });

  it('otapack verify reads what mender-artifact writes (gzip and none; RSA, ECDSA, unsigned)', async () => {
    for (const m of made.filter((x) => x.by === 'mender-artifact')) {
      const pub = m.signed === 'none' ? undefined : keys[m.signed].pub;
      const r = await verify(m.file, pub);
      expect(r.code, `${m.file}: ${r.stdout}${r.stderr}`).toBe(0);
      const j = JSON.parse(r.stdout) as { schema: string; artifact: { name: string; deviceTypes: string[]; payloads: { files: { sha256: string }[]; compression: string }[] }; signature: { present: boolean; verified?: boolean } };
      expect(j.schema).toBe('otapack.mender-verify/1');
      expect(j.artifact.name).toBe('release-2');
      expect(j.artifact.deviceTypes).toEqual(['otapack-dev']);
      expect(j.artifact.payloads[0]!.files[0]!.sha256).toBe(imageSha);
      expect(j.artifact.payloads[0]!.compression).toBe(m.compression);
      expect(j.signature).toEqual(m.signed === 'none' ? { present: false } : expect.objectContaining({ present: true, verified: true }));
    }
  });

  it('the signature is over the manifest bytes: RSA PKCS#1 v1.5 (openssl agrees) and ECDSA as 64 raw bytes', async () => {
    const { execa } = await import('execa');
    const extract = async (file: string, member: string): Promise<Buffer> => Buffer.from((await execa('tar', ['-xOf', file, member], { encoding: 'buffer', stripFinalNewline: false })).stdout);
    const rsa = join(dir, 'otapack-rsa-gzip.mender');
    writeFileSync(join(dir, 'm'), await extract(rsa, 'manifest'));
    writeFileSync(join(dir, 's'), Buffer.from((await extract(rsa, 'manifest.sig')).toString(), 'base64'));
    const ok = await execa('openssl', ['dgst', '-sha256', '-verify', keys.rsa.pub, '-signature', join(dir, 's'), join(dir, 'm')], { reject: false });
    expect(ok.stdout).toBe('Verified OK');
    const bad = await execa('openssl', ['dgst', '-sha256', '-verify', keys.other.pub, '-signature', join(dir, 's'), join(dir, 'm')], { reject: false });
    expect(bad.stdout).not.toBe('Verified OK');
    const ec = Buffer.from((await extract(join(dir, 'otapack-ec-gzip.mender'), 'manifest.sig')).toString(), 'base64');
    expect(ec.length).toBe(64);
  });

  // ---------------------------------------------------------------- negative twins, both judges

  /** Offset of a member's data (from a plain tar listing: header blocks of 512 bytes). */
  function memberData(file: string, name: string): { offset: number; size: number } {
    const buf = readFileSync(file);
    let at = 0;
    while (at + 512 <= buf.length) {
      const n = buf.subarray(at, at + 100).toString('latin1').replace(/\0.*$/s, '');
      if (!n) break;
      const size = parseInt(buf.subarray(at + 124, at + 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
      if (n === name) return { offset: at + 512, size };
      at += 512 + Math.ceil(size / 512) * 512;
    }
    throw new Error(`${file}: no member ${name}`);
  }

  function flip(src: string, dst: string, offset: number): string {
    copyFileSync(src, dst);
    const fd = openSync(dst, 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0x20;
    writeSync(fd, b, 0, 1, offset);
    closeSync(fd);
    return dst;
  }

  interface Case { name: string; file: () => string; pub?: () => string | undefined; expect: RegExp; otapackExpect: RegExp }
  const cases = (by: Made['by']): Case[] => {
    const f = (signed: Made['signed'], c: Made['compression'] = 'gzip'): string => made.find((m) => m.by === by && m.signed === signed && m.compression === c)!.file;
    const out = (n: string): string => join(dir, `${by}-${n}.mender`);
    return [
      { name: 'RSA signature, another RSA key', file: () => f('rsa'), pub: () => keys.other.pub, expect: /verification error/, otapackExpect: /does not verify/ },
      { name: 'RSA signature, an EC key', file: () => f('rsa'), pub: () => keys.ec.pub, expect: /invalid ecdsa key size/, otapackExpect: /does not verify/ },
      { name: 'ECDSA signature, an RSA key', file: () => f('ec'), pub: () => keys.rsa.pub, expect: /verification error/, otapackExpect: /does not verify/ },
      { name: 'unsigned, a key given', file: () => f('none'), pub: () => keys.rsa.pub, expect: /missing signature|expecting signed artifact/, otapackExpect: /unsigned/ },
      { name: 'a header byte changed', file: () => { const m = memberData(f('rsa'), 'header.tar.gz'); return flip(f('rsa'), out('header'), m.offset + m.size - 20); }, pub: () => keys.rsa.pub, expect: /invalid checksum/, otapackExpect: /header\.tar\.gz: expected/ },
      { name: 'a payload byte changed (stored)', file: () => { const m = memberData(f('rsa', 'none'), 'data/0000.tar'); return flip(f('rsa', 'none'), out('payload-none'), m.offset + 512 + 70_000); }, pub: () => keys.rsa.pub, expect: /invalid checksum/, otapackExpect: /data\/0000\/rootfs\.ext4: expected/ },
      { name: 'a payload byte changed (gzip)', file: () => { const m = memberData(f('ec'), 'data/0000.tar.gz'); return flip(f('ec'), out('payload-gz'), m.offset + Math.floor(m.size / 2)); }, pub: () => keys.ec.pub, expect: /invalid checksum|gzip|flate|corrupt/i, otapackExpect: /data\/0000\.tar\.gz|rootfs\.ext4: expected/ },
      { name: 'a manifest digit changed (signed)', file: () => { const m = memberData(f('rsa'), 'manifest'); return flip(f('rsa'), out('manifest'), m.offset + 3); }, pub: () => keys.rsa.pub, expect: /verification error|invalid checksum/, otapackExpect: /does not verify/ },
      { name: 'the version changed', file: () => { const m = memberData(f('none'), 'version'); return flip(f('none'), out('version'), m.offset + 12); }, pub: undefined, expect: /./, otapackExpect: /version/ },
      { name: 'manifest.sig replaced by other base64', file: () => {
        const src = f('rsa');
        const m = memberData(src, 'manifest.sig');
        copyFileSync(src, out('sig'));
        const fd = openSync(out('sig'), 'r+');
        writeSync(fd, Buffer.from('A'.repeat(m.size)), 0, m.size, m.offset);
        closeSync(fd);
        return out('sig');
      }, pub: () => keys.rsa.pub, expect: /verification error/, otapackExpect: /does not verify/ },
      { name: 'truncated in the payload', file: () => { copyFileSync(f('rsa'), out('trunc')); truncateSync(out('trunc'), Math.floor(statSync(out('trunc')).size * 0.6)); return out('trunc'); }, pub: () => keys.rsa.pub, expect: /./, otapackExpect: /truncated|ends/ },
    ];
  };

  for (const by of ['otapack', 'mender-artifact'] as const) {
    it(`tampered ${by} artifacts: mender-artifact validate and otapack verify both refuse, each for its reason`, async () => {
      const table: string[] = [];
      for (const c of cases(by)) {
        const file = c.file();
        const pub = c.pub?.();
        const [theirs, ours] = await Promise.all([validate(file, pub), verify(file, pub)]);
        table.push(`${c.name}: mender-artifact rc=${theirs.code}, otapack verify rc=${ours.code}`);
        expect(theirs.code, `${by} ${c.name}: mender-artifact accepted it\n${theirs.out}`).not.toBe(0);
        expect(theirs.out, `${by} ${c.name}`).toMatch(c.expect);
        expect(ours.code, `${by} ${c.name}: otapack verify accepted it\n${ours.stdout}${ours.stderr}`).toBe(1);
        const failed = (JSON.parse(ours.stdout) as { checks: { status: string; message: string }[] }).checks.filter((x) => x.status === 'fail').map((x) => x.message).join(' | ');
        expect(failed, `${by} ${c.name}`).toMatch(c.otapackExpect);
      }
      console.log(`${by} tamper matrix:\n  ${table.join('\n  ')}`);
    });
  }

  it('device type: verify --device-type passes a listed type and fails another (the client\'s install-time check)', async () => {
    const f = join(dir, 'otapack-rsa-gzip.mender');
    expect((await otapack(['verify', f, '--trust', keys.rsa.pub, '--device-type', 'other-dev'])).code).toBe(0);
    const r = await otapack(['verify', f, '--trust', keys.rsa.pub, '--device-type', 'third-dev']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/device type third-dev is not one of otapack-dev, other-dev/);
  });

  it('reproducible: the same inputs and SOURCE_DATE_EPOCH give the same bytes (RSA PKCS#1 v1.5 is deterministic)', async () => {
    const spec = join(dir, 'spec-gzip.yaml');
    const again = join(dir, 'again.mender');
    const r = await otapack(['bundle', spec, '-o', again, '--key', keys.rsa.key], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(again).equals(readFileSync(join(dir, 'otapack-rsa-gzip.mender')))).toBe(true);
    const later = join(dir, 'later.mender');
    expect((await otapack(['bundle', spec, '-o', later, '--key', keys.rsa.key], { env: { SOURCE_DATE_EPOCH: '1800000000' } })).code).toBe(0);
    expect(readFileSync(later).equals(readFileSync(again))).toBe(false);
  });
});

// The boot-state codecs judged by the real tools: mkenvimage / fw_printenv / fw_setenv (U-Boot env),
// mkimage / dumpimage (legacy script image), grub-editenv (grubenv). Each positive check has a
// negative twin that the same tool must refuse.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { decodeUbootEnv, encodeUbootEnv } from '../src/boot/uboot-env.js';
import { decodeScriptImage, encodeScriptImage } from '../src/boot/uboot-image.js';
import { decodeGrubenv, encodeGrubenv, GRUBENV_SIZE } from '../src/boot/grubenv.js';
import { OtapackError } from '../src/errors.js';
import { makeTmp, must, tool } from './helpers/boot-tools.js';

const tmp = makeTmp('boot-codecs');
afterAll(() => tmp.cleanup());

const otapackVars = { rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '3', bootcmd: 'run distro_bootcmd; echo x=y' };

function fwConfig(file: string, size = 0x4000, redundantTwin?: string): string {
  const cfg = tmp.path(`fw_env.${Math.random().toString(36).slice(2)}.config`);
  let text = `${file} 0x0 0x${size.toString(16)}\n`;
  if (redundantTwin) text += `${redundantTwin} 0x0 0x${size.toString(16)}\n`;
  writeFileSync(cfg, text);
  return cfg;
}

function printenv(cfg: string): { vars: Record<string, string>; r: ReturnType<typeof tool> } {
  const r = tool('fw_printenv', ['-c', cfg]);
  const vars: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return { vars, r };
}

describe('U-Boot environment image', () => {
  it('is byte-identical to mkenvimage -s 0x4000 for the same sorted variables', () => {
    const sorted = Object.entries(otapackVars).sort(([a], [b]) => (a < b ? -1 : 1));
    writeFileSync(tmp.path('env.txt'), sorted.map(([k, v]) => `${k}=${v}\n`).join(''));
    must('mkenvimage', ['-s', '0x4000', '-o', tmp.path('mk.env'), tmp.path('env.txt')]);
    const ours = encodeUbootEnv(otapackVars);
    expect(ours.length).toBe(0x4000);
    expect(ours.equals(readFileSync(tmp.path('mk.env')))).toBe(true);
    // negative twin: a different value gives different bytes
    expect(encodeUbootEnv({ ...otapackVars, rootpart: '3' }).equals(readFileSync(tmp.path('mk.env')))).toBe(false);
  });

  it('matches mkenvimage -r (redundant layout) and an empty environment', () => {
    writeFileSync(tmp.path('r.txt'), 'a=1\nb=2\n');
    must('mkenvimage', ['-r', '-s', '0x2000', '-o', tmp.path('r.env'), tmp.path('r.txt')]);
    expect(encodeUbootEnv({ b: '2', a: '1' }, 0x2000, { redundant: true }).equals(readFileSync(tmp.path('r.env')))).toBe(true);
    writeFileSync(tmp.path('e.txt'), '');
    must('mkenvimage', ['-s', '0x100', '-o', tmp.path('e.env'), tmp.path('e.txt')]);
    expect(encodeUbootEnv({}, 0x100).equals(readFileSync(tmp.path('e.env')))).toBe(true);
    const d = decodeUbootEnv(readFileSync(tmp.path('r.env')), 0x2000, { redundant: true });
    expect(d).toMatchObject({ vars: { a: '1', b: '2' }, crcOk: true, flags: 1 });
  });

  it('is read by fw_printenv -c; a flipped byte makes fw_printenv and decodeUbootEnv refuse it', () => {
    const file = tmp.path('uboot.env');
    writeFileSync(file, encodeUbootEnv(otapackVars));
    const cfg = fwConfig(file);
    const good = printenv(cfg);
    expect(good.r.status).toBe(0);
    expect(good.vars).toEqual(otapackVars);

    const bad = Buffer.from(readFileSync(file));
    bad[10] ^= 0x01;
    writeFileSync(file, bad);
    const broken = printenv(cfg);
    expect(broken.r.status).not.toBe(0);
    expect(broken.r.out).toContain('Cannot read environment, using default');
    expect(broken.vars).toEqual({});
    const dec = decodeUbootEnv(bad);
    expect(dec.crcOk).toBe(false);
    expect(dec.problem).toMatch(/bad CRC/);
    // the good image decodes with crcOk
    expect(decodeUbootEnv(encodeUbootEnv(otapackVars))).toEqual({ vars: otapackVars, crcOk: true });
  });

  it('decodes what fw_setenv -c wrote (set, change, delete)', () => {
    const file = tmp.path('set.env');
    writeFileSync(file, encodeUbootEnv({ rootpart: '2', bootlimit: '3' }));
    const cfg = fwConfig(file);
    must('fw_setenv', ['-c', cfg, 'rootpart', '3']);
    must('fw_setenv', ['-c', cfg, 'upgrade_available', '1']);
    must('fw_setenv', ['-c', cfg, 'note', 'has spaces = and equals']);
    must('fw_setenv', ['-c', cfg, 'bootlimit']); // deletes
    const dec = decodeUbootEnv(readFileSync(file));
    expect(dec.crcOk).toBe(true);
    expect(dec.vars).toEqual({ rootpart: '3', upgrade_available: '1', note: 'has spaces = and equals' });
    // negative twin: the pre-change image is not what fw_setenv left behind
    expect(dec.vars.rootpart).not.toBe('2');
  });

  it('reads U-Boot env export style (zero padding) and survives garbage without throwing', () => {
    const z = encodeUbootEnv({ a: '1' }, 0x400, { pad: 0 });
    expect(decodeUbootEnv(z)).toEqual({ vars: { a: '1' }, crcOk: true });
    const file = tmp.path('zero.env');
    writeFileSync(file, z);
    expect(printenv(fwConfig(file, 0x400)).vars).toEqual({ a: '1' });
    for (const junk of [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(0x4000, 0xff), Buffer.from('not an env at all')]) {
      const d = decodeUbootEnv(junk, 0x4000);
      expect(d.crcOk).toBe(false);
    }
    // a valid CRC over an unterminated list is still bounded
    const unterminated = Buffer.alloc(16, 0x41);
    unterminated.writeUInt32LE(crc32(unterminated.subarray(4)), 0);
    expect(() => decodeUbootEnv(unterminated)).not.toThrow();
  });

  it('refuses what the format cannot hold', () => {
    expect(() => encodeUbootEnv({ 'a=b': '1' })).toThrow(OtapackError);
    expect(() => encodeUbootEnv({ a: 'x\0y' })).toThrow(/NUL/);
    expect(() => encodeUbootEnv({ big: 'x'.repeat(0x4000) })).toThrow(/more than the 16380-byte data area/);
    expect(() => encodeUbootEnv([['a', '1'], ['a', '2']])).toThrow(/twice/);
  });
});

describe('U-Boot legacy script image', () => {
  const script = 'echo otapack test\nsetenv x 1\nif test ${x} = 1; then echo ok; fi\n';
  const time = 1700000000;

  it('is byte-identical to SOURCE_DATE_EPOCH=… mkimage -A arm64 -O linux -T script -C none', () => {
    writeFileSync(tmp.path('s.cmd'), script);
    must('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'otapack A/B', '-d', tmp.path('s.cmd'), tmp.path('mk.scr')],
      { env: { SOURCE_DATE_EPOCH: String(time) } });
    const mk = readFileSync(tmp.path('mk.scr'));
    expect(encodeScriptImage(script, 'otapack A/B', { time }).equals(mk)).toBe(true);
    // SOURCE_DATE_EPOCH is the default time, as in mkimage
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = String(time);
    try { expect(encodeScriptImage(script, 'otapack A/B').equals(mk)).toBe(true); } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH; else process.env.SOURCE_DATE_EPOCH = saved;
    }
    // negative twin: another timestamp differs
    expect(encodeScriptImage(script, 'otapack A/B', { time: time + 1 }).equals(mk)).toBe(false);
    // 32-byte names are allowed (no terminator), like mkimage
    const n32 = 'n'.repeat(32);
    must('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', n32, '-d', tmp.path('s.cmd'), tmp.path('n32.scr')],
      { env: { SOURCE_DATE_EPOCH: String(time) } });
    expect(encodeScriptImage(script, n32, { time }).equals(readFileSync(tmp.path('n32.scr')))).toBe(true);
    expect(() => encodeScriptImage(script, 'n'.repeat(33))).toThrow(/limit is 32/);
  });

  it('is listed by dumpimage -l; a flipped data byte is refused by dumpimage and decodeScriptImage', () => {
    const img = encodeScriptImage(script, 'otapack boot', { time });
    writeFileSync(tmp.path('ours.scr'), img);
    const ok = must('dumpimage', ['-l', tmp.path('ours.scr')]);
    expect(ok.out).toContain('Image Name:   otapack boot');
    expect(ok.out).toContain('Image Type:   AArch64 Linux Script (uncompressed)');
    expect(ok.out).toContain(`Image 0: ${Buffer.byteLength(script)} Bytes`);
    expect(decodeScriptImage(img)).toMatchObject({ name: 'otapack boot', text: script, headerCrcOk: true, dataCrcOk: true, time, type: 6, arch: 22 });

    const bad = Buffer.from(img);
    bad[64 + 8 + 3] ^= 0x20; // inside the script text
    writeFileSync(tmp.path('bad.scr'), bad);
    const r = tool('dumpimage', ['-l', tmp.path('bad.scr')]);
    // dumpimage exits 0 but no longer recognises a legacy image: it falls back to the "GP header" guess
    expect(r.out).not.toContain('Image Type:');
    expect(r.out).toContain('GP Header');
    const d = decodeScriptImage(bad);
    expect(d.dataCrcOk).toBe(false);
    expect(d.headerCrcOk).toBe(true);

    const badHeader = Buffer.from(img);
    badHeader[40] ^= 0x01; // inside the name
    expect(decodeScriptImage(badHeader).headerCrcOk).toBe(false);
    writeFileSync(tmp.path('badh.scr'), badHeader);
    expect(tool('dumpimage', ['-l', tmp.path('badh.scr')]).out).not.toContain('Image Type:');
  });

  it('reads an mkimage-built script and refuses non-script input', () => {
    const d = decodeScriptImage(readFileSync(tmp.path('mk.scr')));
    expect(d.text).toBe(script);
    expect(d.name).toBe('otapack A/B');
    expect(() => decodeScriptImage(Buffer.from('#!/bin/sh\necho not an image\n'.padEnd(80)))).toThrow(/magic/);
    expect(() => decodeScriptImage(Buffer.alloc(10))).toThrow(/shorter than the 64-byte header/);
    const kernelish = Buffer.from(encodeScriptImage(script, 'k', { time }));
    kernelish[30] = 2; // IH_TYPE_KERNEL
    expect(() => decodeScriptImage(kernelish)).toThrow(/not a script/);
    const truncated = encodeScriptImage(script, 'k', { time }).subarray(0, 70);
    expect(() => decodeScriptImage(truncated)).toThrow(OtapackError);
  });
});

describe('GRUB environment block', () => {
  it('is 1024 bytes, read by grub-editenv list; values set by grub-editenv are decoded', () => {
    const vars = { rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit: '3', odd: 'back\\slash and\nnewline' };
    const file = tmp.path('grubenv');
    const buf = encodeGrubenv(vars);
    expect(buf.length).toBe(GRUBENV_SIZE);
    expect(buf.subarray(0, 25).toString()).toBe('# GRUB Environment Block\n');
    expect(buf[GRUBENV_SIZE - 1]).toBe(0x23);
    writeFileSync(file, buf);
    const list = must('grub-editenv', [file, 'list']).stdout;
    expect(list).toBe('rootpart=2\nupgrade_available=0\nbootcount=0\nbootlimit=3\nodd=back\\slash and\nnewline\n');
    expect(decodeGrubenv(buf)).toEqual({ vars, valid: true });

    must('grub-editenv', [file, 'set', 'rootpart=3', 'upgrade_available=1', 'extra=a b=c']);
    must('grub-editenv', [file, 'unset', 'bootlimit']);
    const after = decodeGrubenv(readFileSync(file));
    expect(after.valid).toBe(true);
    expect(after.vars).toEqual({ rootpart: '3', upgrade_available: '1', bootcount: '0', odd: vars.odd, extra: 'a b=c' });
  });

  it('decodes a block created by grub-editenv (with its WARNING line) and refuses a broken one', () => {
    const file = tmp.path('grubenv2');
    must('grub-editenv', [file, 'create']);
    must('grub-editenv', [file, 'set', 'a=1']);
    expect(decodeGrubenv(readFileSync(file))).toEqual({ vars: { a: '1' }, valid: true });
    // negative twin: a damaged signature is refused by grub-editenv and flagged by the decoder
    const bad = Buffer.from(readFileSync(file));
    bad[2] = 0x58;
    writeFileSync(file, bad);
    const r = tool('grub-editenv', [file, 'list']);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/invalid environment block/);
    expect(decodeGrubenv(bad).valid).toBe(false);
    expect(decodeGrubenv(Buffer.alloc(5)).valid).toBe(false);
  });

  it('refuses overflow and impossible names', () => {
    expect(() => encodeGrubenv({ big: 'x'.repeat(1000) })).toThrow(/more than the 1024-byte block/);
    expect(() => encodeGrubenv({ 'a=b': '1' })).toThrow(OtapackError);
    expect(() => encodeGrubenv({ '#x': '1' })).toThrow(OtapackError);
  });
});

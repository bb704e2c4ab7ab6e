// The one template engine (src/util/template.ts) used for templates/boot and templates/device:
// @NAME@ placeholders, every one filled and every value used, slips reported as INTERNAL errors
// naming the template and the key. The device scripts render byte-identical to the old @@NAME@@
// engine of device-files.ts (sha256 captured from commit e3fb9c7 in test/fixtures/boot-ab-swupdate.json).
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fillTemplate, loadTemplate, renderTemplate, TEMPLATE_DIR } from '../src/util/template.js';
import { OtapackError } from '../src/errors.js';
import { DEVICE_TEMPLATE_CASES } from './helpers/boot-ab-cases.js';

const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/boot-ab-swupdate.json', import.meta.url), 'utf8')) as Record<string, Record<string, string>>;
const sha = (b: string): string => createHash('sha256').update(b).digest('hex');

function internal(call: () => unknown): OtapackError {
  let err: unknown;
  try { call(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(OtapackError);
  expect((err as OtapackError).code).toBe('INTERNAL');
  return err as OtapackError;
}

describe('fillTemplate', () => {
  const fills: [string, string, Record<string, string>, string][] = [
    ['one placeholder', 'a @X@ b', { X: '1' }, 'a 1 b'],
    ['repeated and adjacent', '@A@@B@ @A@', { A: 'x', B: 'y' }, 'xy x'],
    ['digits and _ in the name', '@SLOT_A_HEX@', { SLOT_A_HEX: 'a' }, 'a'],
    ['an empty value', '[@E@]', { E: '' }, '[]'],
    ['values are not filled again', '@V@', { V: '@V@ @W@' }, '@V@ @W@'],
    ['shell "$@", e-mail, lower case and @@ are text', 'for a in "$@"; do x@example.org @lower@ @@; done', {}, 'for a in "$@"; do x@example.org @lower@ @@; done'],
    ['multi-line values', 'a\n@BLOCK@\nb', { BLOCK: '  1\n  2' }, 'a\n  1\n  2\nb'],
  ];
  it.each(fills)('%s', (_n, text, values, out) => {
    expect(fillTemplate('t', text, values)).toBe(out);
  });

  it('a missing value names the template and the key', () => {
    expect(internal(() => fillTemplate('boot/x.cmd', 'a @MISSING@', {})).message).toBe('template boot/x.cmd: no value for @MISSING@');
    // inherited properties are not values
    expect(internal(() => fillTemplate('t', '@CONSTRUCTOR@ @toString@', Object.create({ CONSTRUCTOR: 'x' }) as Record<string, string>)).message).toMatch(/no value for @CONSTRUCTOR@/);
  });

  it('an unused value is refused too', () => {
    expect(internal(() => fillTemplate('device/y', '@A@', { A: '1', B: '2' })).message).toBe('template device/y: value B is not used');
  });

  it('a missing template file', () => {
    expect(internal(() => loadTemplate('boot/nope.cmd')).message).toMatch(/template boot\/nope\.cmd is missing from .*templates\//);
  });
});

describe('the templates', () => {
  it('use one syntax: no @@NAME@@ left anywhere under templates/', () => {
    for (const dir of ['boot', 'device']) {
      for (const f of readdirSync(join(TEMPLATE_DIR, dir))) {
        expect(readFileSync(join(TEMPLATE_DIR, dir, f), 'utf8'), `${dir}/${f}`).not.toMatch(/@@[A-Z_]+@@/);
      }
    }
  });

  it('every device template is covered by the identity table', () => {
    const covered = new Set(DEVICE_TEMPLATE_CASES.map((c) => c.name));
    expect(readdirSync(join(TEMPLATE_DIR, 'device')).filter((f) => !covered.has(f))).toEqual([]);
  });

  it.each(DEVICE_TEMPLATE_CASES)('device/$name renders byte-identical to the old engine ($values)', ({ name, values }) => {
    const key = `${name}:${JSON.stringify(values)}`;
    expect(FIXTURE.device![key], key).toBeDefined();
    expect(sha(renderTemplate(`device/${name}`, values))).toBe(FIXTURE.device![key]);
  });

  it('otapack-update needs its BOOTLIMIT and takes nothing else', () => {
    expect(renderTemplate('device/otapack-update', { BOOTLIMIT: '4' })).toContain('falls back after 4 failed boots');
    expect(internal(() => renderTemplate('device/otapack-update')).message).toBe('template device/otapack-update: no value for @BOOTLIMIT@');
    expect(internal(() => renderTemplate('device/otapack-env', { BOOTLIMIT: '3' })).message).toBe('template device/otapack-env: value BOOTLIMIT is not used');
    expect(internal(() => renderTemplate('device/otapack-slot')).message).toBe('template device/otapack-slot: no value for @SLOT_VAR@');
  });
});

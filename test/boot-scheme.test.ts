// Boot-state scheme -> A/B boot logic. (1) With SWUpdate's scheme the U-Boot script, boot.scr,
// GRUB config and initial envs are byte-identical to what the generators produced before they took
// a scheme (sha256 captured from commit e3fb9c7 in test/fixtures/boot-ab-swupdate.json; the GRUB
// entries re-captured with issue 16, when grub.cfg stopped needing regexp and probe). (2) With
// Mender's scheme every state variable is Mender's: mender_boot_part (decimal) with the
// mender_boot_part_hex mirror, and no rootpart/ustate state. (3) The validator and RAUC's
// order scheme are refused with one-line CONFIG errors.
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { generateUbootAbScript, initialUbootAbEnv, assertHushSafe, HUSH_MAX_ARGS, type UbootAbOptions, type UbootBoardStep } from '../src/boot/uboot-ab.js';
import { generateGrubAbConfig, initialGrubAbEnv, type GrubAbOptions } from '../src/boot/grub-ab.js';
import { MAX_STATE_VARS, stateVars, trialBootEnv, validateScheme, type BootScheme, type TrialScheme } from '../src/boot/scheme.js';
import { encodeUbootEnv, decodeUbootEnv } from '../src/boot/uboot-env.js';
import { encodeGrubenv } from '../src/boot/grubenv.js';
import { SWUPDATE_BOOT_SCHEME } from '../src/clients/swupdate/scheme.js';
import { MENDER_BOOT_SCHEME } from '../src/clients/mender/scheme.js';
import { RAUC_BOOT_SCHEME } from '../src/clients/rauc/scheme.js';
import { OtapackError } from '../src/errors.js';
import { buildUbootAbScript } from './helpers/boot-ab.js';
import { ENV_CASES, GRUB_CASES, UBOOT_CASES } from './helpers/boot-ab-cases.js';

const FIXTURE = JSON.parse(readFileSync(new URL('./fixtures/boot-ab-swupdate.json', import.meta.url), 'utf8')) as Record<string, Record<string, string>>;
const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');
const SW = SWUPDATE_BOOT_SCHEME;

describe("SWUpdate's scheme renders byte-identical to the generators before the scheme", () => {
  it('the fixture covers exactly the case tables', () => {
    expect(Object.keys(FIXTURE.uboot!).sort()).toEqual(Object.keys(UBOOT_CASES).sort());
    expect(Object.keys(FIXTURE.grub!).sort()).toEqual(Object.keys(GRUB_CASES).sort());
    expect(Object.keys(FIXTURE.ubootEnv!).sort()).toEqual(ENV_CASES.map((c) => c.name).sort());
  });

  it.each(Object.entries(UBOOT_CASES))('U-Boot script and boot.scr: %s', (name, o) => {
    const opts: UbootAbOptions = { ...o, scheme: SW };
    expect(sha(generateUbootAbScript(opts)), `${name} script text`).toBe(FIXTURE.uboot![name]);
    expect(sha(buildUbootAbScript(opts, { time: 1700000000 })), `${name} boot.scr`).toBe(FIXTURE.ubootImage![name]);
  });

  it.each(Object.entries(GRUB_CASES))('grub.cfg: %s', (name, o) => {
    expect(sha(generateGrubAbConfig({ ...o, scheme: SW }))).toBe(FIXTURE.grub![name]);
  });

  it.each(ENV_CASES)('initial envs: $name', (c) => {
    const u = initialUbootAbEnv({ ...c, scheme: SW }, c.active);
    expect(JSON.stringify(u), 'U-Boot env, key order included').toBe(FIXTURE.ubootEnvObject![c.name]);
    expect(sha(encodeUbootEnv(u, 0x4000))).toBe(FIXTURE.ubootEnv![c.name]);
    const g = initialGrubAbEnv({ ...c, scheme: SW }, c.active);
    expect(JSON.stringify(g)).toBe(FIXTURE.grubEnvList![c.name]);
    expect(sha(encodeGrubenv(g))).toBe(FIXTURE.grubEnv![c.name]);
  });

  it('trial bootenv of a bundle', () => {
    expect(JSON.stringify(trialBootEnv(SW, 3))).toBe(FIXTURE.trialBootEnv!['3']);
    expect(JSON.stringify(trialBootEnv(SW, 12))).toBe(FIXTURE.trialBootEnv!['12']);
  });

  it('a changed output is caught (negative twin)', () => {
    const o = UBOOT_CASES['convert-style']!;
    expect(sha(generateUbootAbScript({ ...o, bootlimit: 4, scheme: SW }))).not.toBe(FIXTURE.uboot!['convert-style']);
    expect(sha(generateUbootAbScript({ ...o, scheme: MENDER_BOOT_SCHEME }))).not.toBe(FIXTURE.uboot!['convert-style']);
  });
});

/** Lines before the board step, where all state handling happens. */
const statePart = (t: string, marker: string): string => t.slice(0, t.indexOf(marker));

interface Row {
  scheme: TrialScheme;
  /** env import/export (U-Boot) and load_env/save_env (GRUB) list. */
  vars: string;
  /** What selecting slot B (partition 11) sets. */
  selectB: [string, string][];
  /** What the fallback sets besides the slot. */
  fallback: [string, string][];
  /** Variable names the state logic must never touch. */
  foreign: string[];
  initial: Record<string, string>;
  trial: { name: string; value: string }[];
}

const ROWS: Row[] = [
  {
    scheme: SWUPDATE_BOOT_SCHEME,
    vars: 'rootpart upgrade_available bootcount bootlimit ustate',
    selectB: [['rootpart', '11']],
    fallback: [['upgrade_available', '0'], ['bootcount', '0'], ['ustate', '3']],
    foreign: ['mender_boot_part', 'mender_boot_part_hex'],
    initial: { bootcount: '0', bootlimit: '3', rootpart: '10', upgrade_available: '0' },
    trial: [{ name: 'rootpart', value: '11' }, { name: 'upgrade_available', value: '1' }, { name: 'bootcount', value: '0' }],
  },
  {
    scheme: MENDER_BOOT_SCHEME,
    vars: 'mender_boot_part mender_boot_part_hex upgrade_available bootcount bootlimit',
    // partitions 10 and 11: decimal and hexadecimal differ
    selectB: [['mender_boot_part', '11'], ['mender_boot_part_hex', 'b']],
    fallback: [['upgrade_available', '0'], ['bootcount', '0']],
    foreign: ['rootpart', 'ustate'],
    initial: { bootcount: '0', bootlimit: '3', mender_boot_part: '10', mender_boot_part_hex: 'a', upgrade_available: '0' },
    // what mender install writes in its one fw_setenv call (next-formats §C)
    trial: [{ name: 'mender_boot_part', value: '11' }, { name: 'mender_boot_part_hex', value: 'b' }, { name: 'upgrade_available', value: '1' }, { name: 'bootcount', value: '0' }],
  },
];

const STEPS: UbootBoardStep[] = [
  { kind: 'boot-script', file: '/otapack/board.scr' },
  { kind: 'slot-script' },
  { kind: 'extlinux', location: 'slot' },
  { kind: 'extlinux', location: 'boot', path: '/otapack/extlinux.conf' },
  { kind: 'kernel', kernel: '/boot/Image', initrd: '/boot/uInitrd', initrdFormat: 'uimage', fdt: '/boot/dtb/${fdtfile}', bootargs: 'console=ttyAMA0' },
];

describe.each(ROWS)('scheme $scheme.client -> U-Boot script', (row) => {
  const opts = (o: Partial<UbootAbOptions> = {}): UbootAbOptions => ({ scheme: row.scheme, bootPart: 1, slotA: 10, slotB: 11, rootFallbackPrefix: '/dev/mmcblk0p', boardStep: STEPS[0]!, ...o });
  const t = generateUbootAbScript(opts());
  const state = statePart(t, '# 5. board boot step');

  it('imports and exports exactly the scheme variables', () => {
    expect(t).toContain(`env import -c \${otapack_envaddr} 0x4000 ${row.vars}; then`);
    expect(t).toContain(`env export -c -s 0x4000 \${otapack_envaddr} ${row.vars}; then`);
  });

  it('selects a slot through the slot variable and its mirrors, and falls back with the scheme marks', () => {
    const selB = row.selectB.map(([k, v]) => `setenv ${k} ${v}`).join('; ');
    const selA = row.selectB.map(([k, v]) => `setenv ${k} ${v.replace('11', '10').replace('b', 'a')}`).join('; ');
    expect(t).toContain(`if test "\${${row.scheme.slotVar}}" = "10"; then ${selB}; else ${selA}; fi`);
    expect(t).toContain(`if test "\${${row.scheme.slotVar}}" = "11"; then\n  setenv otapack_slot B\n  setenv otapack_part b`);
    expect(t).toContain(`  setenv otapack_root /dev/mmcblk0p\${${row.scheme.slotVar}}`);
    const fallback = t.slice(t.indexOf('falling back'), t.indexOf('# 3.'));
    for (const [k, v] of row.fallback) expect(fallback).toContain(`    setenv ${k} ${v}\n`);
    expect(fallback.match(/^ {4}setenv /gm)).toHaveLength(row.fallback.length);
    expect(t).toContain(`(partition \${${row.scheme.slotVar}}) bootcount=\${bootcount} upgrade_available=\${upgrade_available}`);
  });

  it('touches no variable of another client; rootpart only as the board step partition', () => {
    for (const v of row.foreign) {
      if (v === 'rootpart') {
        // the one run-time use: the hexadecimal partition handed to the board step
        expect(state.replace(/\n#[^\n]*/g, '').match(/rootpart/g)).toEqual(['rootpart']);
        expect(state).toContain('\nsetenv rootpart ${otapack_part}\n');
      } else {
        expect(t).not.toContain(v);
      }
    }
  });

  it('is hush-safe with every board step and the most extra variables that fit', () => {
    const room = MAX_STATE_VARS - stateVars(row.scheme).length;
    const extraVars = Array.from({ length: room }, (_, i) => `extra_var_${i}`);
    for (const boardStep of STEPS) {
      const s = generateUbootAbScript(opts({ boardStep, extraVars }));
      expect(() => assertHushSafe(s)).not.toThrow();
      // `if env export -c -s SIZE ADDR vars…; then`: the command fills U-Boot's 16 arguments exactly
      const exp = s.split('\n').find((l) => l.includes('if env export -c -s'))!;
      expect(exp.trim().split(/\s+/).length - 2 /* if, then */).toBe(HUSH_MAX_ARGS);
    }
    expect(() => generateUbootAbScript(opts({ extraVars: [...extraVars, 'one_more'] }))).toThrow(/extra variables fit on one env export/);
  });

  it('initial env and the trial bootenv of a bundle', () => {
    const env = initialUbootAbEnv(opts());
    expect(env).toEqual(row.initial);
    expect(Object.keys(env)).toEqual(Object.keys(row.initial).sort());
    expect(decodeUbootEnv(encodeUbootEnv(env, 0x4000), 0x4000).vars).toEqual(row.initial);
    expect(initialUbootAbEnv(opts(), 'B')[row.scheme.slotVar]).toBe('11');
    expect(trialBootEnv(row.scheme, 11)).toEqual(row.trial);
  });
});

describe.each(ROWS)('scheme $scheme.client -> GRUB config', (row) => {
  const opts: GrubAbOptions = { scheme: row.scheme, slotA: 10, slotB: 11, rootFallbackPrefix: '/dev/sda', boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } };
  const t = generateGrubAbConfig(opts);

  it('loads, saves, selects and falls back with the scheme variables only', () => {
    expect(t).toContain(`load_env --file "\${otapack_env}" ${row.vars}; then`);
    expect(t).toContain(`save_env --file "\${otapack_env}" ${row.vars}; then`);
    const selB = row.selectB.map(([k, v]) => `set ${k}=${v}`).join('; ');
    expect(t).toContain(`if [ "\${${row.scheme.slotVar}}" = "10" ]; then ${selB}; else `);
    expect(t).toContain(`set otapack_rootdev="\${otapack_disk},gpt\${${row.scheme.slotVar}}"`);
    expect(t).toContain(`\nexport ${row.scheme.slotVar}\n`);
    const fallback = t.slice(t.indexOf('falling back'), t.indexOf('# 3.'));
    for (const [k, v] of row.fallback) expect(fallback).toContain(`    set ${k}=${v}\n`);
    expect(fallback.match(/^ {4}set /gm)).toHaveLength(row.fallback.length);
    for (const v of row.foreign) expect(t).not.toContain(v);
  });

  it('initial grubenv', () => {
    const env = initialGrubAbEnv(opts);
    expect(Object.fromEntries(env)).toEqual(row.initial);
    expect(env[0]).toEqual([row.scheme.slotVar, '10']);
    expect(encodeGrubenv(env).toString('latin1')).toContain(`${row.scheme.slotVar}=10\n`);
  });
});

describe('validateScheme', () => {
  const sw = (o: Partial<TrialScheme>): BootScheme => ({ ...SWUPDATE_BOOT_SCHEME, ...o }) as TrialScheme;
  const cases: [string, BootScheme, RegExp][] = [
    ['bad name', sw({ slotVar: 'root-part' }), /slotVar "root-part" must be letters, digits and _/],
    ['otapack_* name', sw({ carry: ['otapack_slot'] }), /otapack_slot clashes with the otapack_\* variables/],
    ['two roles', sw({ countVar: 'upgrade_available' }), /upgrade_available has two roles/],
    ['mirror of the slot variable', sw({ mirrors: [{ name: 'rootpart', form: 'hex' }] }), /rootpart has two roles/],
    ['carried twice', sw({ carry: ['bootcount'] }), /carried variable bootcount is already a state variable/],
    ['fallback sets a core variable', sw({ onFallback: { upgrade_available: '1' } }), /the fallback sets upgrade_available itself/],
    ['fallback value', sw({ onFallback: { ustate: '3; reset' } }), /fallback value ustate="3; reset"/],
    ['mirror form', sw({ mirrors: [{ name: 'x', form: 'octal' as 'hex' }] }), /form must be hex or decimal/],
    ['too many', sw({ carry: ['ustate', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6'] }), /11 state variables; one U-Boot env export line holds at most 10/],
    ['client', sw({ client: 'Bad Client' }), /client must be a lower-case name/],
    ['kind', { ...SWUPDATE_BOOT_SCHEME, kind: 'boot-once' } as unknown as BootScheme, /unknown kind "boot-once"/],
    ['order attempts', { ...RAUC_BOOT_SCHEME, attempts: 0 }, /attempts 0 must be 1..9/],
    ['order counters', { ...RAUC_BOOT_SCHEME, leftVar: () => 'BOOT_LEFT' }, /three different variables/],
  ];
  it.each(cases)('refuses %s', (_n, scheme, re) => {
    let err: unknown;
    try { validateScheme(scheme); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OtapackError);
    expect((err as OtapackError).code).toBe('CONFIG');
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).not.toContain('\n');
  });

  it('accepts the three clients and the largest scheme that fits', () => {
    for (const s of [SWUPDATE_BOOT_SCHEME, MENDER_BOOT_SCHEME, RAUC_BOOT_SCHEME]) expect(validateScheme(s)).toBe(s);
    const full = sw({ carry: ['ustate', 'a1', 'a2', 'a3', 'a4', 'a5'] }) as TrialScheme;
    expect(stateVars(full)).toHaveLength(MAX_STATE_VARS);
    expect(() => assertHushSafe(generateUbootAbScript({ scheme: full, bootPart: 1, slotA: 2, slotB: 3, boardStep: { kind: 'slot-script' } }))).not.toThrow();
  });

  it('U-Boot refuses a scheme that keeps rootpart as state beside another slot variable; GRUB has no such run-time use', () => {
    const s = { ...MENDER_BOOT_SCHEME, carry: ['rootpart'] } as TrialScheme;
    expect(() => generateUbootAbScript({ scheme: s, bootPart: 1, slotA: 2, slotB: 3, boardStep: { kind: 'slot-script' } })).toThrow(/uses rootpart, which the script sets to the hexadecimal partition/);
    expect(() => generateGrubAbConfig({ scheme: s, slotA: 2, slotB: 3, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } })).not.toThrow();
    expect(() => generateUbootAbScript({ scheme: MENDER_BOOT_SCHEME, bootPart: 1, slotA: 2, slotB: 3, extraVars: ['rootpart'], boardStep: { kind: 'slot-script' } })).toThrow(/extra variable rootpart is reserved/);
  });
});

describe("RAUC's order scheme is data, not generated yet", () => {
  it('has BOOT_ORDER and BOOT_<slot>_LEFT', () => {
    expect(RAUC_BOOT_SCHEME).toMatchObject({ kind: 'order', orderVar: 'BOOT_ORDER', attempts: 3 });
    expect([RAUC_BOOT_SCHEME.leftVar('A'), RAUC_BOOT_SCHEME.leftVar('B')]).toEqual(['BOOT_A_LEFT', 'BOOT_B_LEFT']);
  });

  const calls: [string, () => unknown][] = [
    ['generateUbootAbScript', () => generateUbootAbScript({ scheme: RAUC_BOOT_SCHEME, bootPart: 1, slotA: 2, slotB: 3, boardStep: { kind: 'slot-script' } })],
    ['initialUbootAbEnv', () => initialUbootAbEnv({ scheme: RAUC_BOOT_SCHEME, slotA: 2, slotB: 3 })],
    ['generateGrubAbConfig', () => generateGrubAbConfig({ scheme: RAUC_BOOT_SCHEME, slotA: 2, slotB: 3, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } })],
    ['initialGrubAbEnv', () => initialGrubAbEnv({ scheme: RAUC_BOOT_SCHEME, slotA: 2, slotB: 3 })],
    ['trialBootEnv', () => trialBootEnv(RAUC_BOOT_SCHEME, 3)],
  ];
  it.each(calls)('%s refuses it with a CONFIG error', (_n, call) => {
    let err: unknown;
    try { call(); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(OtapackError);
    expect((err as OtapackError).code).toBe('CONFIG');
    expect((err as Error).message).toMatch(/the rauc boot-state scheme \(BOOT_ORDER and BOOT_A_LEFT\/BOOT_B_LEFT counters\) is not supported yet/);
  });
});

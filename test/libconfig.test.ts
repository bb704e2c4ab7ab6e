// The libconfig parser reads what SWUpdate's libconfig reads, refuses what it refuses, and stays
// bounded on hostile input; the serializer's output parses back to the same tree.
import { describe, test, expect } from 'vitest';
import { parseLibconfig, stringifyLibconfig, LibconfigError } from '../src/swu/libconfig.js';
import { readManifest } from '../src/swu/manifest-read.js';

describe('libconfig', () => {
  test('reads the SWUpdate documentation style, comments, both separators, adjacent strings, numbers', () => {
    const t = parseLibconfig(`# comment
software =
{
  version = "0.1.0"; // trailing comment
  /* block
     comment */
  hardware-compatibility: [ "1.0", "1.2" ];
  count = 0x1F; big = 9007199254740993L; f = 1.5e3; yes = TRUE;
  s = "a" "b\\x41\\n";
  images: ( { filename = "x"; sha256 = "ab"; }, { filename = "y"; } );
};`);
    const sw = t.software as Record<string, unknown>;
    expect(sw.version).toBe('0.1.0');
    expect(sw['hardware-compatibility']).toEqual(['1.0', '1.2']);
    expect(sw.count).toBe(31);
    expect(sw.big).toBe(9007199254740993n);
    expect(sw.f).toBe(1500);
    expect(sw.yes).toBe(true);
    expect(sw.s).toBe('abA\n');
    expect((sw.images as unknown[]).length).toBe(2);
  });
  test('round-trips its own output', () => {
    const tree = parseLibconfig('a = { b = [ "x\\"y", "z\\\\" ]; c = ( { d = 1; e = true; }, { f = "g\\nh"; } ); n = -5; };');
    expect(parseLibconfig(stringifyLibconfig(tree))).toEqual(tree);
  });
  test.each([
    ['unterminated string', 'a = "abc;', /unterminated string at line 1/],
    ['duplicate setting', 'a = 1;\na = 2;', /duplicate setting "a" at line 2/],
    ['group in an array', 'a = [ { b = 1; } ];', /arrays \[ \] hold only scalar values/],
    ['missing brace', 'a = { b = 1;', /missing "}"/],
    ['@include', '@include "x"', /@include is not supported/],
    ['garbage', 'a = @;', /expected a value/],
    ['deep nesting', 'a = ' + '('.repeat(200) + ')'.repeat(200) + ';', /nesting deeper than 64 levels/],
  ])('refuses %s', (_n, text, re) => {
    expect(() => parseLibconfig(text)).toThrow(LibconfigError);
    expect(() => parseLibconfig(text)).toThrow(re);
  });
  test('huge strings are refused, not buffered without bound', () => {
    expect(() => parseLibconfig(`a = "${'x'.repeat((1 << 20) + 10)}";`)).toThrow(/string longer than/);
  });
  test('manifest reader finds artifacts in collections, board subtrees and JSON', () => {
    const m = readManifest(`software = { version = "1"; myboard = { hardware-compatibility = [ "1" ];
      stable = { copy1 = { images: ( { filename = "a"; device = "/dev/a"; } ); bootenv: ( { name = "rootpart"; value = "2"; } ); }; }; }; };`);
    expect(m.hardwareCompatibility).toEqual(['1']);
    expect(m.refs.map((r) => r.at)).toEqual(['software.myboard.stable.copy1.images[0]']);
    expect(m.bootenv['myboard.stable.copy1']).toEqual({ rootpart: '2' });
    const j = readManifest(JSON.stringify({ software: { version: '1', 'hardware-compatibility': ['1'], images: [{ filename: 'x', encrypted: true, ivt: 'zz' }] } }));
    expect(j.syntax).toBe('json');
    expect(j.refs[0]!.encrypted).toBe(true);
    expect(() => readManifest('['.repeat(100000))).toThrow(/not valid libconfig/);
    expect(() => readManifest('{' + '"a":{'.repeat(5000) + '}'.repeat(5001))).toThrow(/nesting/);
  });
});

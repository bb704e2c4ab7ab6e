// The manifest parsers follow the client's own rules, one rule per row: libconfig 1.5 as Debian's
// libconfig9 builds it, json-c 0.16 as SWUpdate's fallback calls it, and the way SWUpdate's
// get_field turns a value into the field it fills. (The real client judges the same rules in
// test/manifest-parser-differential.test.ts.) The serializer's output parses back to the same tree.
import { describe, test, expect } from 'vitest';
import { parseLibconfig, parseLibconfigTree, stringifyLibconfig, LibconfigError, type LcNode, type LcGroup } from '../src/clients/swupdate/libconfig.js';
import { readManifest, parseJsonC, ManifestError, type JsonNode } from '../src/clients/swupdate/manifest-read.js';

const lcOk = (text: string): boolean => {
  try {
    parseLibconfigTree(text);
    return true;
  } catch (e) {
    if (!(e instanceof LibconfigError)) throw e;
    return false;
  }
};
const jsonOk = (text: string): boolean => {
  try {
    return parseJsonC(text).t !== 'null';
  } catch (e) {
    if ((e as Error).constructor.name !== 'JsonSyntaxError') throw e;
    return false;
  }
};
const value = (text: string): LcNode => parseLibconfigTree(text).m.get('a')!;

describe('libconfig syntax, as the client accepts or refuses it', () => {
  test.each([
    // comments
    ['# and // comments, newline-terminated', 'a = 1; # c\nb = 2; // c\n', true],
    ['a # comment on the last line without a newline', 'a = 1; # c', false],
    ['a // comment on the last line without a newline', 'a = 1; // c', false],
    ['a /* */ comment over lines', 'a = /* x\ny */ 1;', true],
    ['an unterminated /* comment after a complete setting', 'a = 1; /* open', true],
    ['an unterminated /* comment inside a group', 'g = { a = 1; /* open }', false],
    ['nested /* /* */ */', 'a = 1; /* /* */ */\n', false],
    ['a # comment in a CR-only file runs to the end', '# c\ra = 1;\r', false],
    // separators
    ['= and :', 'a = 1; b : 2;', true],
    ['no terminators', 'a = 1 b = 2', true],
    ['comma terminators', 'a = 1, b = 2,', true],
    ['a double semicolon', 'a = 1;;', false],
    ['a lone semicolon', ';', false],
    ['an empty text', '', true],
    // strings
    ['adjacent strings with a comment between', 'a = "x" /* c */ "y" # c\n "z";', true],
    ['an unterminated string as the value', 'a = "open', false],
    ['an unterminated string after a complete one', 'a = "x" "open', true],
    ['an unterminated string after a complete setting', 'a = 1; "open', true],
    ['single quotes', "a = 'x';", false],
    ['unknown escapes are kept', 'a = "\\q \\u0041 \\x4";', true],
    // numbers
    ['a negative hex number (-0 then the name x10)', 'a = -0x10;', false],
    ['+hex', 'a = +0x10;', false],
    ['0x without digits', 'a = 0x;', false],
    ['L, LL, hex L', 'a = 1L; b = 2LL; c = 0x3L; d = 0x4LL;', true],
    ['LLL', 'a = 1LLL;', false],
    ['lower-case l', 'a = 1l;', false],
    ['float forms . .5 5. -.e5 +. 1e400', 'a = (., .5, 5., -.e5, +., 1e400);', true],
    ['a dangling exponent', 'a = 1.5e;', false],
    ['.e (a float then a name)', 'a = .e;', false],
    ['an f suffix', 'a = 1.5f;', false],
    ['inf is not a value', 'a = inf;', false],
    // booleans
    ['true TRUE True tRuE fAlSe', 'a = (true, TRUE, True, tRuE, fAlSe);', true],
    ['truex is a name, not a value', 'a = truex;', false],
    ['a setting may be named true-ish', 'truex = 1; True1 = 2;', true],
    ['a setting named true (a boolean token)', 'true = 1;', false],
    // duplicates
    ['a duplicate name', 'a = 1; a = 2;', false],
    ['a duplicate name in a group', 'g = { a = 1; a = 2; };', false],
    ['names differing in case', 'a = 1; A = 2;', true],
    // arrays and lists
    ['an array of one type', 'a = [1, 0x2, 3000000000];', true],
    ['an array of int and string', 'a = [1, "x"];', false],
    ['an array of int and int64', 'a = [1, 2L];', false],
    ['an array of int64 and hex64', 'a = [1L, 0x2L];', true],
    ['an array of float and int', 'a = [1.0, 2];', false],
    ['an array of arrays', 'a = [[1]];', false],
    ['a group in an array', 'a = [{ b = 1; }];', false],
    ['a list of anything', 'a = (1, "x", [1], { b = 1; }, (2), 2L, 1.5, true);', true],
    ['a trailing comma in an array', 'a = [1, 2,];', false],
    ['a trailing comma in a list', 'a = (1, 2,);', false],
    ['a lone comma', 'a = [,];', false],
    ['empty array, list and group', 'a = []; b = (); c = {};', true],
    // names
    ['a name starting with a digit', '1a = 1;', false],
    ['a name starting with -', '-a = 1;', false],
    ['a name starting with _', '_a = 1;', false],
    ['* anywhere in a name', '*a = 1; a*b = 2; c-d_e = 3;', true],
    ['a dot in a name', 'a.b = 1;', false],
    // bytes
    ['CRLF', 'a = 1;\r\nb = 2;\r\n', true],
    ['form feed is white space', 'a = 1;\fb = 2;', true],
    ['vertical tab is not', 'a = 1;\vb = 2;', false],
    ['a BOM is not', '\ufeffa = 1;', false],
    ['a no-break space is not', 'a = 1;\u00a0b = 2;', false],
    ['a NUL outside strings', 'a = 1;\0', false],
    ['a NUL in a comment', 'a = 1; # \0\n', true],
    ['@include not at the start of a line', 'a = 1; @include "x"\n', false],
  ])('%s', (_n, text, ok) => {
    expect(lcOk(text)).toBe(ok);
  });

  test('@include is refused with the reason (the file is on the device)', () => {
    for (const t of ['@include "/dev/null"\na = 1;', '  @include "x.cfg"\n']) {
      expect(() => parseLibconfigTree(t)).toThrow(/@include ".*": the device would read that file from its own filesystem, which verify cannot see/);
    }
  });

  test('the parser stack: lists nest 4996 deep, groups 1998 (bison stops at 10000 states)', () => {
    const lists = (n: number): string => 'a = ' + '('.repeat(n) + ')'.repeat(n) + ';';
    const groups = (n: number): string => 'a = ' + '{ a = '.repeat(n) + '1' + '; }'.repeat(n) + ';';
    const withSiblings = (n: number): string => 'a = ' + '{ x = 1; a = '.repeat(n) + '1' + '; }'.repeat(n) + ';';
    expect([lcOk(lists(4996)), lcOk(lists(4997))]).toEqual([true, false]);
    expect([lcOk(groups(1998)), lcOk(groups(1999))]).toEqual([true, false]);
    expect([lcOk(withSiblings(1665)), lcOk(withSiblings(1666))]).toEqual([true, false]);
    expect(() => parseLibconfigTree(lists(5000))).toThrow(/nesting too deep for libconfig \("memory exhausted"\)/);
  });

  test('errors name the line, the column and the rule', () => {
    expect(() => parseLibconfigTree('a = [1,\n  2, ];')).toThrow(/trailing comma before "\]" .* at line 2, column 4/);
    expect(() => parseLibconfigTree('a = 1;\na = 2;')).toThrow(/duplicate setting name "a" at line 2, column 1/);
    expect(() => parseLibconfigTree('a = [1, "x"];')).toThrow(/mismatched element type in array: string after int/);
    expect(() => parseLibconfigTree('a = 1; # end')).toThrow(/comment on the last line needs a newline after it at line 1, column 8/);
  });
});

describe('libconfig values, as the client stores them', () => {
  test.each<[string, string, LcNode]>([
    ['int keeps the low 32 bits (atoi)', 'a = 3000000000;', { t: 'int', v: -1294967296 }],
    ['int saturates before that', 'a = 99999999999999999999;', { t: 'int', v: -1 }],
    ['010 is decimal', 'a = 010;', { t: 'int', v: 10 }],
    ['+7', 'a = +7;', { t: 'int', v: 7 }],
    ['hex keeps the low 32 bits', 'a = 0x100000001;', { t: 'int', v: 1 }],
    ['hex 0xFFFFFFFF', 'a = 0xFFFFFFFF;', { t: 'int', v: -1 }],
    ['L', 'a = 5000000000L;', { t: 'int64', v: 5000000000n }],
    ['L saturates', 'a = -99999999999999999999L;', { t: 'int64', v: -(1n << 63n) }],
    ['hex L wraps into a signed 64-bit value', 'a = 0xFFFFFFFFFFFFFFFFL;', { t: 'int64', v: -1n }],
    ['a lone "." is 0.0', 'a = .;', { t: 'float', v: 0 }],
    ['1e400 is inf', 'a = 1e400;', { t: 'float', v: Infinity }],
    ['-.e5 converts nothing', 'a = -.e5;', { t: 'float', v: 0 }],
    ['tRuE', 'a = tRuE;', { t: 'bool', v: true }],
    ['concatenation', 'a = "x" "y" /* c */ "z";', { t: 'string', v: 'xyz' }],
    ['escapes', 'a = "\\n\\r\\t\\f\\\\\\"";', { t: 'string', v: '\n\r\t\f\\"' }],
    ['\\x and \\X', 'a = "\\x41\\X42";', { t: 'string', v: 'AB' }],
    ['\\x00 adds nothing', 'a = "a\\x00b";', { t: 'string', v: 'ab' }],
    ['unknown escapes keep the backslash', 'a = "\\q\\u0041\\x4";', { t: 'string', v: '\\q\\u0041\\x4' }],
    ['a NUL ends its run of plain characters', 'a = "ab\0cd\\tef";', { t: 'string', v: 'ab\tef' }],
    ['\\xHH makes bytes (here UTF-8 for é)', 'a = "\\xc3\\xa9";', { t: 'string', v: '\xc3\xa9' }],
  ])('%s', (_n, text, want) => {
    expect(value(text)).toEqual(want);
  });

  test('the plain view: groups, lists and arrays, numbers, bigints, UTF-8 strings', () => {
    const t = parseLibconfig(`# comment
software =
{
  version = "0.1.0"; // trailing comment
  /* block
     comment */
  hardware-compatibility: [ "1.0", "1.2" ];
  count = 0x1F; big = 9007199254740993L; f = 1.5e3; yes = TRUE;
  s = "a" "b\\x41\\n" "\\xc3\\xa9";
  images: ( { filename = "x"; sha256 = "ab"; }, { filename = "y"; } );
};`);
    const sw = t.software as Record<string, unknown>;
    expect(sw.version).toBe('0.1.0');
    expect(sw['hardware-compatibility']).toEqual(['1.0', '1.2']);
    expect(sw.count).toBe(31);
    expect(sw.big).toBe(9007199254740993n);
    expect(sw.f).toBe(1500);
    expect(sw.yes).toBe(true);
    expect(sw.s).toBe('abA\né');
    expect((sw.images as unknown[]).length).toBe(2);
  });
});

describe('the serializer', () => {
  test('round-trips its own output', () => {
    const tree = parseLibconfig('a = { b = [ "x\\"y", "z\\\\" ]; c = ( { d = 1; e = true; }, { f = "g\\nh"; } ); n = -5; big = 5000000000L; f = 1.5; };');
    expect(parseLibconfig(stringifyLibconfig(tree))).toEqual(tree);
  });
  test('writes a list where an array would mix libconfig types', () => {
    const g: LcGroup = Object.create(null);
    g.mixed = [1, 'x'];
    g.ints = [1, 5000000000];
    g.same = ['a', 'b'];
    g.float = [2.5, 1e21];
    const text = stringifyLibconfig(g);
    expect(text).toMatch(/mixed = \(/);
    expect(text).toMatch(/ints = \(/);
    expect(text).toMatch(/same = \[ "a", "b" \]/);
    expect(parseLibconfig(text)).toEqual({ mixed: [1, 'x'], ints: [1, 5000000000], same: ['a', 'b'], float: [2.5, 1e21] });
  });
});

describe('JSON, as json-c 0.16 (the client\'s fallback) reads it', () => {
  test.each([
    ['plain JSON', '{"a": [1, "x", true, null, 1.5]}', true],
    ['trailing commas', '{"a": [1, 2,], "b": {"c": 1,},}', true],
    ['/* */ and // comments', '// x\n{ /* y */ "a": 1 // z\n}', true],
    ['a # comment', '{"a": 1 # x\n}', false],
    ['single quotes', "{'a': 'x'}", true],
    ['\\\' is not an escape', "{'a': 'it\\'s'}", false],
    ['True, NULL, nAn, iNfInItY, -Infinity', '{"a": [True, NULL, nAn, iNfInItY, -Infinity]}', true],
    ['garbage after the top value', '{"a": 1} trailing {[', true],
    ['a second object after the top one', '{"a": 1} {"b": 2}', true],
    ['"/x" after the top value (a bad comment start)', '{"a": 1} /x', false],
    ['an unterminated comment after the top value', '{"a": 1} /* open', true],
    ['a // comment without a newline after the top value', '{"a": 1} // end', true],
    ['"**/" does not close a comment', '{"a": /* x **/ 1}', false],
    ['an unterminated comment inside an object, after a key', '{"a": /* open', false],
    ['an unquoted key', '{a: 1}', false],
    ['a missing closing brace', '{"a": 1', false],
    ['a raw control character in a string', '{"a": "x\ty"}', true],
    ['an unknown escape', '{"a": "\\q"}', false],
    ['\\u with 3 hex digits', '{"a": "\\u004"}', false],
    ['a BOM', '\ufeff{"a": 1}', false],
    ['hex numbers', '{"a": 0x10}', false],
    ['01, 1e5, 1E-, -0.5', '{"a": [01, 1e5, 1E-, -0.5]}', true],
    ['1.-5', '{"a": 1.-5}', false],
    ['-', '{"a": -}', false],
    ['-e5', '{"a": -e5}', false],
    ['1-', '{"a": 1-}', false],
    ['a leading comma in an array', '{"a": [,1]}', false],
    ['a NUL ends the input (after the top value)', '{"a": 1}\0garbage', true],
    ['a NUL ends the input (inside it)', '{"a": 1\0}', false],
    ['31 levels below the top', '{"a":'.repeat(31) + '1' + '}'.repeat(31), true],
    ['32 levels below the top', '{"a":'.repeat(32) + '1' + '}'.repeat(32), false],
    ['32 nested empty arrays', '['.repeat(32) + ']'.repeat(32), true],
    ['33 nested empty arrays', '['.repeat(33) + ']'.repeat(33), false],
  ])('%s', (_n, text, ok) => {
    expect(jsonOk(text)).toBe(ok);
  });

  test.each<[string, string, JsonNode]>([
    ['a duplicate key: the last value wins, in the first place', '{"a": 1, "b": 2, "a": 3}', { t: 'group', m: new Map<string, JsonNode>([['a', { t: 'int', v: 3 }], ['b', { t: 'int', v: 2 }]]) }],
    ['a key is a C string (\\u0000 ends it)', '{"ab\\u0000c": 1}', { t: 'group', m: new Map<string, JsonNode>([['ab', { t: 'int', v: 1 }]]) }],
    ['a string keeps \\u0000 (readers stop there)', '["a\\u0000b"]', { t: 'list', items: [{ t: 'string', v: 'a\0b' }] }],
    ['\\u escapes become UTF-8 bytes; a pair is one character', '["\\u00e9\\ud83d\\ude00"]', { t: 'list', items: [{ t: 'string', v: '\xc3\xa9\xf0\x9f\x98\x80' }] }],
    ['a lone high surrogate becomes U+FFFD', '["\\ud800x"]', { t: 'list', items: [{ t: 'string', v: '\xef\xbf\xbdx' }] }],
    ['a high surrogate before another escape', '["\\ud800\\n"]', { t: 'list', items: [{ t: 'string', v: '\xef\xbf\xbd\n' }] }],
    ['big integers saturate', '[99999999999999999999999, -99999999999999999999999]', { t: 'list', items: [{ t: 'int', v: (1n << 64n) - 1n }, { t: 'int', v: -(1n << 63n) }] }],
    ['"1E-" is the double 1', '[1E-]', { t: 'list', items: [{ t: 'float', v: 1 }] }],
    ['input ending in a comment returns the innermost completed value', '{"x": {"a": 1} /* open', { t: 'group', m: new Map<string, JsonNode>([['a', { t: 'int', v: 1 }]]) }],
  ])('%s', (_n, text, want) => {
    expect(parseJsonC(text)).toEqual(want);
  });
});

describe('manifest fields, as the client fills them', () => {
  const lc = (img: string, hw = '[ "1.0" ]'): string => `software = { version = "1"; hardware-compatibility = ${hw}; images: ( { filename = "p"; ${img} } ); };`;
  const js = (img: string): string => `{"software": {"version": "1", "hardware-compatibility": ["1.0"], "images": [{"filename": "p"${img ? ', ' + img : ''}}]}}`;
  const ref = (text: string) => readManifest(text).refs[0]!;

  test.each([
    ['libconfig true', lc('encrypted = true;'), true],
    ['libconfig TRUE', lc('encrypted = TRUE;'), true],
    ['libconfig int 1', lc('encrypted = 1;'), true],
    ['libconfig int 256 (low byte 0)', lc('encrypted = 256;'), false],
    ['libconfig hex 0x101', lc('encrypted = 0x101;'), true],
    ['libconfig int64 1L', lc('encrypted = 1L;'), true],
    ['libconfig float 1.0 (low byte 0)', lc('encrypted = 1.0;'), false],
    ['libconfig string "true" (ignored)', lc('encrypted = "true";'), false],
    ['libconfig group (ignored)', lc('encrypted = { };'), false],
    ['JSON true', js('"encrypted": true'), true],
    ['JSON 1', js('"encrypted": 1'), true],
    ['JSON "false" (strcpy: a non-empty string is true)', js('"encrypted": "false"'), true],
    ['JSON "" (false)', js('"encrypted": ""'), false],
    ['JSON null', js('"encrypted": null'), false],
    ['absent', lc(''), false],
  ])('encrypted: %s', (_n, text, want) => {
    expect(ref(text).encrypted).toBe(want);
  });

  test.each([
    ['"zlib"', lc('compressed = "zlib";'), 'zlib'],
    ['"zstd"', lc('compressed = "zstd";'), 'zstd'],
    ['"gzip" (refused by the client)', lc('compressed = "gzip";'), 'gzip'],
    ['true (the deprecated zlib)', lc('compressed = true;'), true],
    ['false', lc('compressed = false;'), false],
    ['0', lc('compressed = 0;'), false],
    ['2 (zlib)', lc('compressed = 2;'), 'zlib'],
    ['0x3 (zstd)', lc('compressed = 0x3;'), 'zstd'],
    ['7 (no such method)', lc('compressed = 7;'), 'method 7'],
    ['JSON 3', js('"compressed": 3'), 'zstd'],
    ['JSON true', js('"compressed": true'), true],
    ['absent', lc(''), undefined],
  ])('compressed: %s', (_n, text, want) => {
    expect(ref(text).compressed).toBe(want);
  });

  test('strings: only string values count; JSON strings stop at NUL; escapes and concatenation apply', () => {
    expect(ref(lc('sha256 = 1; ivt = [ "x" ];')).sha256).toBeUndefined();
    expect(ref(lc('sha256 = 1; ivt = [ "x" ];')).ivt).toBeUndefined();
    expect(ref(lc('type = "ra" "w"; device = "/dev/\\x6d";')).type).toBe('raw');
    expect(ref(lc('device = "/dev/\\x6d";')).device).toBe('/dev/m');
    expect(ref(js('"type": "raw\\u0000junk"')).type).toBe('raw');
    expect(readManifest('software = { version = "1" "\\xc3\\xa9"; };').version).toBe('1é');
  });

  test('hardware-compatibility: non-strings and empty strings are skipped; a libconfig group counts as a list', () => {
    expect(readManifest(lc('', '( "1.0", 1, "", "2.0" )')).hardwareCompatibility).toEqual(['1.0', '2.0']);
    expect(readManifest(lc('', '{ a = "1.0"; b = "2.0"; }')).hardwareCompatibility).toEqual(['1.0', '2.0']);
    expect(readManifest(lc('', '"1.0"')).hardwareCompatibility).toEqual([]);
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
  });

  test('what is neither is refused with the more useful of the two errors', () => {
    expect(() => readManifest('software = { version = "1"; images: ( { filename = ')).toThrow(ManifestError);
    expect(() => readManifest('software = { version = "1"; images: ( { filename = ')).toThrow(/^not valid libconfig: syntax error: expected a value, found end of input at line 1/);
    expect(() => readManifest('{"software": {"version": 1,, }}')).toThrow(/^neither libconfig nor JSON: quoted object property name expected at line 1/);
    expect(() => readManifest('['.repeat(100000))).toThrow(/neither libconfig nor JSON: nesting too deep/);
    expect(() => readManifest('{' + '"a":{'.repeat(5000) + '}'.repeat(5001))).toThrow(/nesting too deep/);
    expect(() => readManifest('[1, 2]')).toThrow(/as JSON its value is an array, not an object/);
    expect(() => readManifest('1a = 1;')).toThrow(/^not valid libconfig: syntax error/); // json-c reads "1" there
  });
});

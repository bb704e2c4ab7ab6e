// libconfig text: a parser that gives the verdict and the values of the libconfig the device's
// SWUpdate links (Debian's libconfig9 1.5), and a serializer for the manifests otapack writes.
// Written here because no maintained npm package parses libconfig, and because "close enough"
// is not enough: `verify` must refuse exactly what the device refuses and read the same
// filename and sha256 the device reads. test/manifest-parser-differential.test.ts judges the
// same texts with the real client.
//
// The rules below were read from libconfig's scanner.l/grammar.y (the 1.5 release, whose integer
// rule predates the automatic int64 promotion) and confirmed against the installed library:
// - tokens are flex longest-match, earlier rule on a tie: "true" is a boolean, "trueish" a name,
//   "-0x10" is the integer -0 followed by the name x10 (a syntax error), "." and "-.e5" are floats;
// - whitespace is space, tab, \n, \r and \f only; a vertical tab, a BOM or any non-ASCII byte
//   outside strings and comments is a syntax error;
// - a "#" or "//" comment needs a newline after it: one on the last line without one is garbage;
//   an unterminated "/*" comment or string simply ends the input (accepted where the text may end);
// - strings: \n \r \t \f \\ \" and \xHH (\x00 adds nothing); any other backslash is kept as is;
//   a NUL byte ends the run of plain characters it is in; adjacent strings concatenate;
// - integers without L keep the low 32 bits (atoi), hex without L too (strtoul), both saturate
//   first; L/LL make 64-bit values; floats are strtod (1e400 is inf);
// - lists and arrays take no trailing comma; arrays hold scalars of one type (int and hex are one
//   type, int64 and hex64 another); duplicate names in a group are refused; a setting ends with
//   ";", "," or nothing;
// - the bison parser stack holds at most 9999 states ("memory exhausted" past that): a list
//   nests about 5000 deep, a group about 2000;
// - "@include" at the start of a line reads a file from the device's filesystem. verify cannot
//   see that filesystem, so it refuses the manifest and says why.
//
// The scanner works on bytes (a latin1 string); string values are decoded as UTF-8 at the end.
// Nothing recurses: nesting is an explicit stack, bounded by the parser-stack rule above.

export type LcValue = string | number | bigint | boolean | LcValue[] | LcGroup;
export interface LcGroup { [name: string]: LcValue }

/** A parsed value with the type libconfig gives it (what the client's get_field sees). */
export type LcNode =
  | { t: 'group'; m: Map<string, LcNode> }
  | { t: 'list' | 'array'; items: LcNode[] }
  | { t: 'int'; v: number } // 32-bit
  | { t: 'int64'; v: bigint }
  | { t: 'float'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'string'; v: string }; // UTF-8 bytes as a latin1 string (see bytesToText)

/** Bounds on work per input: values (the input size bounds everything else). */
export const LIMITS = { nodes: 5_000_000 };

/** bison's YYMAXDEPTH: the parse fails when its state stack would reach this height. */
const MAX_PARSER_STACK = 10000;

export class LibconfigError extends Error {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(`${message} at line ${line}, column ${column}`);
  }
}

type Scalar = 'bool' | 'int' | 'int64' | 'float' | 'string';
type TokKind =
  | 'name' | 'equals' | 'comma' | 'semi' | '{' | '}' | '[' | ']' | '(' | ')'
  | 'bool' | 'int' | 'int64' | 'float' | 'string' | 'garbage' | 'eof';
interface Tok { k: TokKind; at: number; text: string; node?: LcNode }

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;
/** strtol-style: a decimal or hex literal (sign, 0x, L suffix allowed), saturated to [lo, hi];
 * long digit strings saturate without being parsed. */
export function saturate(text: string, lo: bigint, hi: bigint): bigint {
  const m = /^([-+]?)(0[xX])?0*([0-9A-Fa-f]*)L*$/.exec(text);
  if (!m) throw new TypeError(`not a number: ${text}`);
  const neg = m[1] === '-';
  if (m[3]!.length > 40) return neg ? lo : hi;
  const v = BigInt((m[2] ? '0x' : '') + (m[3] || '0'));
  const r = neg ? -v : v;
  return r < lo ? lo : r > hi ? hi : r;
}

const RE_NAME = /[A-Za-z*][-A-Za-z0-9_*]*/y;
const RE_FLOAT1 = /[-+]?[0-9]*\.[0-9]*(?:[eE][-+]?[0-9]+)?/y;
const RE_FLOAT2 = /[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+/y;
const RE_INT = /[-+]?[0-9]+/y;
const RE_INT64 = /[-+]?[0-9]+LL?/y;
const RE_HEX = /0[xX][0-9A-Fa-f]+/y;
const RE_HEX64 = /0[xX][0-9A-Fa-f]+LL?/y;
const RE_INCLUDE = /[ \t]*@include[ \t]+"/y;

const PUNCT: Record<string, TokKind | undefined> = { '=': 'equals', ':': 'equals', ',': 'comma', ';': 'semi', '{': '{', '}': '}', '[': '[', ']': ']', '(': '(', ')': ')' };
const ESCAPES: Record<string, string | undefined> = { n: '\n', r: '\r', t: '\t', f: '\f', '\\': '\\', '"': '"' };

const stick = (re: RegExp, s: string, at: number): string => {
  re.lastIndex = at;
  const m = re.exec(s);
  return m ? m[0] : '';
};

/** The bytes of a text as a latin1 string (one char per byte), what the scanner reads. */
export const textToBytes = (text: string | Uint8Array): string =>
  (typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text)).toString('latin1');
/** A byte string back to text (invalid UTF-8 becomes U+FFFD, as it would be shown anyway). */
export const bytesToText = (bytes: string): string => Buffer.from(bytes, 'latin1').toString('utf8');

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

function numberToken(s: string, at: number): Tok | undefined {
  // fast path: a short plain decimal integer (what nearly every number is)
  let q = at + (s[at] === '-' || s[at] === '+' ? 1 : 0);
  const d0 = q;
  while (isDigit(s.charCodeAt(q))) q++;
  const after = s[q];
  if (q > d0 && q - d0 <= 9 && after !== '.' && after !== 'e' && after !== 'E' && after !== 'L' && !(q - d0 === 1 && s[d0] === '0' && (after === 'x' || after === 'X'))) {
    const text = s.slice(at, q);
    return { k: 'int', at, text, node: { t: 'int', v: Number(text) | 0 } }; // | 0: no -0 in C
  }
  // flex: the longest match wins, the earlier rule on a tie (float, int, int64, hex, hex64)
  const cands: [TokKind | 'hex' | 'hex64', string][] = [
    ['float', stick(RE_FLOAT1, s, at)], ['float', stick(RE_FLOAT2, s, at)],
    ['int', stick(RE_INT, s, at)], ['int64', stick(RE_INT64, s, at)],
    ['hex', stick(RE_HEX, s, at)], ['hex64', stick(RE_HEX64, s, at)],
  ];
  let best: [TokKind | 'hex' | 'hex64', string] | undefined;
  for (const c of cands) if (c[1].length > (best?.[1].length ?? 0)) best = c;
  if (!best) return undefined;
  const [kind, text] = best;
  let node: LcNode;
  switch (kind) {
    case 'float':
      // strtod: no mantissa digit converts nothing (0); otherwise decimal, 1e400 = inf
      node = { t: 'float', v: /[0-9]/.test(text.split(/[eE]/)[0]!) ? Number(text) : 0 };
      break;
    case 'int': // atoi: strtol (saturating), then the low 32 bits
      node = { t: 'int', v: Number(BigInt.asIntN(32, saturate(text, INT64_MIN, INT64_MAX))) };
      break;
    case 'int64': // atoll
      node = { t: 'int64', v: saturate(text, INT64_MIN, INT64_MAX) };
      break;
    case 'hex': // strtoul (saturating), stored in an int
      node = { t: 'int', v: Number(BigInt.asIntN(32, saturate(text, 0n, UINT64_MAX))) };
      break;
    default: // hex64: strtoull, stored in a long long
      node = { t: 'int64', v: BigInt.asIntN(64, saturate(text, 0n, UINT64_MAX)) };
  }
  return { k: node.t === 'int' ? 'int' : node.t === 'int64' ? 'int64' : 'float', at, text, node };
}

class Scanner {
  pos = 0;
  constructor(readonly s: string, readonly fail: (msg: string, at: number) => never) {}

  next(): Tok {
    const s = this.s;
    const n = s.length;
    for (;;) {
      const at = this.pos;
      if (at >= n) return { k: 'eof', at, text: '' };
      const c = s[at]!;
      if (at === 0 || s.charCodeAt(at - 1) === 10) {
        const inc = stick(RE_INCLUDE, s, at);
        if (inc) {
          const end = s.indexOf('"', at + inc.length);
          const file = bytesToText(s.slice(at + inc.length, end < 0 ? n : end));
          this.fail(`@include "${file}": the device would read that file from its own filesystem, which verify cannot see (a missing file makes the device refuse the bundle)`, at);
        }
      }
      if (c === ' ' || c === '\t') {
        while (this.pos < n && (s[this.pos] === ' ' || s[this.pos] === '\t')) this.pos++;
        continue;
      }
      if (c === '\n' || c === '\r' || c === '\f') { this.pos++; continue; }
      if (c === '/' && s[at + 1] === '*') {
        const end = s.indexOf('*/', at + 2);
        this.pos = end < 0 ? n : end + 2; // unterminated: the input just ends
        continue;
      }
      if (c === '#' || (c === '/' && s[at + 1] === '/')) {
        const nl = s.indexOf('\n', at);
        // the rule is `(#|//).*$`: without a newline after it, it does not match at all
        if (nl < 0) return this.garbage(at, `a ${c === '#' ? '"#"' : '"//"'} comment on the last line needs a newline after it`);
        this.pos = nl;
        continue;
      }
      if (c === '"') return this.string(at);
      const one = PUNCT[c];
      if (one) { this.pos++; return { k: one, at, text: c }; }
      if (/[A-Za-z*]/.test(c)) {
        const text = stick(RE_NAME, s, at);
        this.pos += text.length;
        const low = text.toLowerCase();
        if (low === 'true' || low === 'false') return { k: 'bool', at, text, node: { t: 'bool', v: low === 'true' } };
        return { k: 'name', at, text };
      }
      if (/[-+.0-9]/.test(c)) {
        const t = numberToken(s, at);
        if (t) { this.pos += t.text.length; return t; }
      }
      return this.garbage(at);
    }
  }

  private garbage(at: number, why?: string): Tok {
    this.pos = at + 1;
    return { k: 'garbage', at, text: this.s[at]!, node: why ? { t: 'string', v: why } : undefined };
  }

  private string(at: number): Tok {
    const s = this.s;
    const n = s.length;
    let p = at + 1;
    let out = '';
    for (;;) {
      if (p >= n) { this.pos = n; return { k: 'eof', at: n, text: '' }; } // unterminated: the input ends
      const c = s[p]!;
      if (c === '"') { this.pos = p + 1; return { k: 'string', at, text: s.slice(at, p + 1), node: { t: 'string', v: out } }; }
      if (c === '\\') {
        const e = s[p + 1];
        if (e !== undefined && ESCAPES[e] !== undefined) { out += ESCAPES[e]; p += 2; continue; }
        if ((e === 'x' || e === 'X') && /^[0-9A-Fa-f]{2}$/.test(s.slice(p + 2, p + 4))) {
          const code = parseInt(s.slice(p + 2, p + 4), 16);
          if (code !== 0) out += String.fromCharCode(code); // appended as a C string: NUL adds nothing
          p += 4;
          continue;
        }
        out += '\\'; // any other backslash stands for itself
        p += 1;
        continue;
      }
      let q = p;
      while (q < n && s[q] !== '"' && s[q] !== '\\') q++;
      const run = s.slice(p, q);
      const nul = run.indexOf('\0');
      out += nul < 0 ? run : run.slice(0, nul);
      p = q;
    }
  }
}

// The parser below accepts grammar.y's language and also counts the height of the state stack
// bison would have (one state per symbol, plus the initial one), so that "memory exhausted" falls
// exactly where it does on the device. Per grammar.y: a setting is NAME $@ EQUALS value
// terminator; a group is '{' $@ settings '}'; a list or array is '(' $@ values ')'; an empty
// optional part and each completed left-recursive list (settings, values) hold one state.
// `v` is the height under a group's or vector's opening token, `hs` the height under a group's
// first setting (one more once its first setting has been reduced to a setting_list).
interface GroupFrame { kind: 'group'; node: { t: 'group'; m: Map<string, LcNode> }; hs: number; v: number; count: number; name?: string; close: 'eof' | '}' }
interface VectorFrame { kind: 'vector'; node: { t: 'list' | 'array'; items: LcNode[] }; v: number; close: ')' | ']' }

/** Parses libconfig text (or its bytes) the way the client's libconfig does, keeping types. */
export function parseLibconfigTree(input: string | Uint8Array): { t: 'group'; m: Map<string, LcNode> } {
  const s = textToBytes(input);
  const where = (p: number): [number, number] => {
    let line = 1;
    let col = 1;
    for (let i = 0; i < p && i < s.length; i++) {
      if (s.charCodeAt(i) === 10) { line++; col = 1; } else col++;
    }
    return [line, col];
  };
  const fail = (msg: string, at: number): never => {
    const [l, c] = where(at);
    throw new LibconfigError(msg, l, c);
  };
  const sc = new Scanner(s, fail);
  let la: Tok | undefined;
  const peek = (): Tok => (la ??= sc.next());
  const take = (): Tok => { const t = peek(); la = undefined; return t; };
  const describe = (t: Tok): string => (t.k === 'eof' ? 'end of input' : t.k === 'string' ? 'a string' : JSON.stringify(bytesToText(t.text).slice(0, 20)));
  const syntax = (t: Tok, expected: string): never => {
    if (t.k === 'garbage' && t.node?.t === 'string') return fail(`syntax error: ${t.node.v}`, t.at);
    return fail(`syntax error: expected ${expected}, found ${describe(t)}`, t.at);
  };
  const at = (height: number, t: Tok): void => {
    if (height >= MAX_PARSER_STACK) fail('nesting too deep for libconfig ("memory exhausted")', t.at);
  };
  let nodes = 0;
  const count = (t: Tok): void => {
    if (++nodes > LIMITS.nodes) fail(`more than ${LIMITS.nodes} values`, t.at);
  };

  const root: GroupFrame = { kind: 'group', node: { t: 'group', m: new Map() }, hs: 1, v: -1, count: 0, close: 'eof' };
  const stack: (GroupFrame | VectorFrame)[] = [root];
  // `need` = a value must be parsed now, its first symbol at this parser-stack height
  let need: number | undefined;

  const deliver = (node: LcNode, t: Tok): void => {
    for (;;) {
      const top = stack[stack.length - 1]!;
      if (top.kind === 'group') {
        const cur = top.hs + (top.count > 0 ? 1 : 0);
        top.node.m.set(top.name!, node);
        const term = peek();
        if (term.k === 'semi' || term.k === 'comma') take();
        at(cur + 5, term);
        top.count++;
        top.name = undefined;
        return;
      }
      const items = top.node.items;
      if (top.node.t === 'array' && items.length > 0 && items[0]!.t !== node.t) {
        fail(`mismatched element type in array: ${node.t} after ${items[0]!.t} (an array holds one type; use a list ( ) to mix)`, t.at);
      }
      items.push(node);
      const sep = take();
      if (sep.k === 'comma') {
        at(top.v + 4, sep);
        const nx = peek();
        if (nx.k === top.close) fail(`syntax error: a trailing comma before "${top.close}" (libconfig allows none)`, sep.at);
        need = top.v + 4;
        return;
      }
      if (sep.k === top.close) {
        at(top.v + 4, sep);
        stack.pop();
        node = top.node;
        t = sep;
        continue;
      }
      syntax(sep, `"," or "${top.close}"`);
    }
  };

  for (;;) {
    if (need !== undefined) {
      const base = need;
      need = undefined;
      const t = take();
      count(t);
      const top = stack[stack.length - 1]!;
      const inArray = top.kind === 'vector' && top.node.t === 'array';
      if (t.k === 'bool' || t.k === 'int' || t.k === 'int64' || t.k === 'float') {
        at(base + 1, t);
        deliver(t.node!, t);
        continue;
      }
      if (t.k === 'string') {
        at(base + 1, t);
        let v = (t.node as { v: string }).v;
        while (peek().k === 'string') {
          const more = take();
          at(base + 2, more);
          v += (more.node as { v: string }).v;
        }
        deliver({ t: 'string', v }, t);
        continue;
      }
      if (t.k === '{' || t.k === '(' || t.k === '[') {
        if (inArray) fail(`syntax error: an array [ ] holds only scalar values, found "${t.text}" (use a list ( ))`, t.at);
        at(base + 1, t);
        at(base + 2, t);
        if (t.k === '{') {
          stack.push({ kind: 'group', node: { t: 'group', m: new Map() }, hs: base + 2, v: base, count: 0, close: '}' });
          continue;
        }
        const close = t.k === '(' ? ')' : ']';
        const frame: VectorFrame = { kind: 'vector', node: { t: t.k === '(' ? 'list' : 'array', items: [] }, v: base, close };
        stack.push(frame);
        const nx = peek();
        if (nx.k === close) {
          take();
          at(base + 4, nx);
          stack.pop();
          deliver(frame.node, nx);
        } else need = base + 2;
        continue;
      }
      syntax(t, 'a value');
    }
    const top = stack[stack.length - 1]! as GroupFrame;
    const t = take();
    if (t.k === top.close) {
      if (top === root) break;
      at(top.v + 4, t);
      stack.pop();
      deliver(top.node, t);
      continue;
    }
    if (t.k !== 'name') syntax(t, top === root ? 'a setting name' : 'a setting name or "}"');
    const cur = top.hs + (top.count > 0 ? 1 : 0);
    at(cur + 2, t);
    if (top.node.m.has(t.text)) fail(`duplicate setting name "${t.text}"`, t.at);
    const eq = take();
    if (eq.k !== 'equals') syntax(eq, `"=" or ":" after "${t.text}"`);
    at(cur + 3, eq);
    top.name = t.text;
    need = cur + 3;
  }
  return root.node;
}

/** The plain view of a parsed node: int64 values that fit a double become numbers. */
export function plainValue(n: LcNode): LcValue {
  switch (n.t) {
    case 'group': {
      const g: LcGroup = Object.create(null);
      for (const [k, v] of n.m) g[k] = plainValue(v);
      return g;
    }
    case 'list':
    case 'array':
      return n.items.map(plainValue);
    case 'int64':
      return Number.isSafeInteger(Number(n.v)) ? Number(n.v) : n.v;
    case 'string':
      return bytesToText(n.v);
    default:
      return n.v;
  }
}

/** Parses libconfig text into plain values (groups are null-prototype objects). */
export function parseLibconfig(text: string | Uint8Array): LcGroup {
  return plainValue(parseLibconfigTree(text)) as LcGroup;
}

// ---------------------------------------------------------------------------------- serializer

const quote = (s: string): string =>
  '"' +
  s.replace(/[\\"\n\r\t\f]|[\x00-\x1f\x7f]/g, (ch) => {
    switch (ch) {
      case '\\': return '\\\\';
      case '"': return '\\"';
      case '\n': return '\\n';
      case '\r': return '\\r';
      case '\t': return '\\t';
      case '\f': return '\\f';
      default: return '\\x' + ch.charCodeAt(0).toString(16).padStart(2, '0');
    }
  }) +
  '"';

const isGroup = (v: LcValue): v is LcGroup => typeof v === 'object' && v !== null && !Array.isArray(v);

function scalarType(v: LcValue): Scalar {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'bigint') return 'int64';
  if (typeof v === 'number') return !Number.isInteger(v) || !Number.isSafeInteger(v) ? 'float' : Math.abs(v) > 0x7fffffff ? 'int64' : 'int';
  throw new TypeError('not a scalar');
}

function scalar(v: LcValue): string {
  switch (scalarType(v)) {
    case 'string': return quote(v as string);
    case 'bool': return v ? 'true' : 'false';
    case 'int64': return `${v}L`;
    case 'int': return String(v);
    default: {
      const n = v as number;
      if (!Number.isFinite(n)) throw new TypeError(`${n} has no libconfig form`);
      const t = String(n);
      return /[.eE]/.test(t) ? t : `${t}.0`;
    }
  }
}

/** Renders a group as libconfig settings, in insertion order, indented with 4 spaces. */
export function stringifyLibconfig(root: LcGroup): string {
  const lines: string[] = [];
  const ind = (n: number): string => '    '.repeat(n);
  const value = (v: LcValue, depth: number): string => {
    if (isGroup(v)) {
      const inner: string[] = [];
      for (const [k, x] of Object.entries(v)) inner.push(setting(k, x, depth + 1));
      return `{\n${inner.join('')}${ind(depth)}}`;
    }
    if (Array.isArray(v)) {
      if (v.length === 0) return '( )';
      // an array [ ] holds scalars of one libconfig type; anything else is written as a list
      if (v.every((x) => !isGroup(x) && !Array.isArray(x)) && new Set(v.map(scalarType)).size === 1) return `[ ${v.map(scalar).join(', ')} ]`;
      return `(\n${v.map((x) => ind(depth + 1) + value(x, depth + 1)).join(',\n')}\n${ind(depth)})`;
    }
    return scalar(v);
  };
  const setting = (k: string, v: LcValue, depth: number): string => {
    if (!/^[A-Za-z*][-A-Za-z0-9_*]*$/.test(k)) throw new TypeError(`"${k}" is not a valid libconfig name`);
    if (isGroup(v)) return `${ind(depth)}${k} =\n${ind(depth)}${value(v, depth)};\n`;
    return `${ind(depth)}${k} = ${value(v, depth)};\n`;
  };
  for (const [k, v] of Object.entries(root)) lines.push(setting(k, v, 0));
  return lines.join('');
}

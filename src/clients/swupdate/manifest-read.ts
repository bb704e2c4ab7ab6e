// Reading a sw-description made by anyone, as the device reads it: libconfig first, and when that
// fails the JSON parser the client falls back to (json-c 0.16, non-strict, as
// json_tokener_parse uses it); then every artifact it references, wherever it sits (top level,
// board subtree, software collections), with each field taken the way the client's get_field
// takes it (test/manifest-parser-differential.test.ts holds both against the real client).
import { OtapackError } from '../../errors.js';
import { safeName } from './archive.js';
import { parseLibconfigTree, LibconfigError, LIMITS, textToBytes, bytesToText, saturate, type LcNode } from './libconfig.js';

export interface ManifestRef {
  /** Where it sits: "software.stable.copy2.images[0]". */
  at: string;
  kind: string; // images | files | scripts
  filename?: string;
  sha256?: string;
  encrypted: boolean;
  ivt?: string;
  /** "zlib", "zstd", true (the deprecated boolean form: zlib), false, or what the client cannot use. */
  compressed?: string | boolean;
  type?: string;
  device?: string;
  path?: string;
  installedDirectly: boolean;
  /** `properties`: string values, and lists of strings (other values are left out). */
  properties: Record<string, string | string[]>;
}

export interface ParsedManifest {
  syntax: 'libconfig' | 'json';
  software?: Node;
  version?: string;
  description?: string;
  hardwareCompatibility?: string[];
  refs: ManifestRef[];
  /** Install sets found: "" for top level, "stable.copy1" … */
  sets: string[];
  bootenv: Record<string, Record<string, string>>;
}

export class ManifestError extends Error {}

// ------------------------------------------------------------------------------- JSON (json-c)

/** A value as json-c gives it; strings and keys are bytes (latin1 strings), like libconfig's. */
export type JsonNode =
  | { t: 'group'; m: Map<string, JsonNode> }
  | { t: 'list'; items: JsonNode[] }
  | { t: 'int'; v: number | bigint } // int64 or uint64 (a number when short)
  | { t: 'float'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'string'; v: string }
  | { t: 'null' };

/** A parsed value of either syntax (libconfig ints are 32-bit numbers, json-c ints bigints). */
export type Node =
  | { t: 'group'; m: Map<string, Node> }
  | { t: 'list' | 'array'; items: Node[] }
  | { t: 'int'; v: number | bigint }
  | { t: 'int64'; v: bigint }
  | { t: 'float'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'string'; v: string }
  | { t: 'null' };
type Group = { t: 'group'; m: Map<string, Node> };

/** json_tokener_parse's depth: values nest at most 31 below the top one. */
const JSON_MAX_DEPTH = 32;

class JsonSyntaxError extends Error {
  constructor(message: string, readonly at: number) { super(message); }
}
/** json-c stops, successfully, when the input ends inside a comment after a complete value: the
 * result is that value (the innermost one completed, not necessarily the top one). */
class EndInComment { constructor(readonly node: JsonNode) {} }

const UTF8_REPLACEMENT = '\xef\xbf\xbd';
const utf8Bytes = (cp: number): string => Buffer.from(String.fromCodePoint(cp), 'utf8').toString('latin1');

/** Parses bytes (latin1 string) the way json_tokener_parse does in json-c 0.16; the rules that
 * differ from JSON.parse: comments (/* *\/ and //), single-quoted strings, trailing commas,
 * case-insensitive true/false/null/NaN/Infinity, control characters in strings, a NUL or the end
 * after the top value ends the input and anything after it is ignored, nesting is at most 32
 * deep, a duplicate key replaces the earlier value, "**\/" does not close a comment. */
export function parseJsonC(bytes: string): JsonNode {
  const nul = bytes.indexOf('\0'); // the client reads the file as a C string
  const s = nul < 0 ? bytes : bytes.slice(0, nul);
  const n = s.length;
  let p = 0;
  const fail = (msg: string): never => { throw new JsonSyntaxError(msg, p); };
  const isWs = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';

  // whitespace and comments; `done` is the value just completed at this level (if any)
  const skip = (done?: JsonNode): void => {
    for (;;) {
      while (p < n && isWs(s[p])) p++;
      if (s[p] !== '/') return;
      const kind = s[p + 1];
      if (kind === '*') {
        p += 2;
        for (;;) {
          const star = s.indexOf('*', p);
          if (star < 0 || star + 1 >= n) { p = n; return ended(done); }
          p = star + 2; // the character after a '*' is consumed: "**/" does not close
          if (s[star + 1] === '/') break;
        }
      } else if (kind === '/') {
        const nl = s.indexOf('\n', p + 2);
        if (nl < 0) { p = n; return ended(done); }
        p = nl + 1;
      } else {
        p++;
        fail('expected comment');
      }
    }
  };
  const ended = (done?: JsonNode): never => {
    if (done) throw new EndInComment(done);
    return fail('unexpected end of data (inside a comment)');
  };
  const word = (w: string): boolean => s.slice(p, p + w.length).toLowerCase() === w;

  const string = (quote: string): string => {
    let out = '';
    let high = 0; // a pending high surrogate
    const hex4 = (): number => {
      const h = s.slice(p, p + 4);
      if (!/^[0-9A-Fa-f]{4}$/.test(h)) {
        p += h.search(/[^0-9A-Fa-f]|$/);
        fail('invalid string sequence (\\u needs 4 hex digits)');
      }
      p += 4;
      return parseInt(h, 16);
    };
    let pending = false; // an escape character to read (after a high surrogate and a backslash)
    for (;;) {
      if (!pending) {
        if (p >= n) fail('unexpected end of data in a string');
        const c = s[p]!;
        if (c === quote) { p++; return out; }
        p++;
          if (c !== '\\') {
          let q = p;
          while (q < n && s[q] !== quote && s[q] !== '\\') q++;
          out += c + s.slice(p, q);
          p = q;
          continue;
        }
      }
      pending = false;
      const e = s[p];
      if (e !== 'u') {
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', n: '\n', r: '\r', t: '\t', f: '\f' };
        if (e === undefined || simple[e] === undefined) fail(`invalid string sequence "\\${e ?? ''}"`);
        out += simple[e!]!;
        p++;
        continue;
      }
      p++;
      let u = hex4();
      for (;;) {
        if (high) {
          if ((u & 0xfc00) === 0xdc00) u = (((high & 0x3ff) << 10) | (u & 0x3ff)) + 0x10000;
          else out += UTF8_REPLACEMENT;
          high = 0;
        }
        if ((u & 0xfc00) === 0xd800) {
          // a high surrogate wants "\u" + a low one next; otherwise it becomes U+FFFD
          high = u;
          if (s[p] === '\\' && s[p + 1] === 'u') { p += 2; u = hex4(); continue; }
          out += UTF8_REPLACEMENT;
          high = 0;
          if (s[p] === '\\') { p++; pending = true; } // that other escape is read normally
        } else if ((u & 0xfc00) === 0xdc00) out += UTF8_REPLACEMENT;
        else out += u < 0x80 ? String.fromCharCode(u) : utf8Bytes(u);
        break;
      }
    }
  };

  const number = (depth: number): JsonNode => {
    const start = p;
    let isDouble = false;
    let isExp = false;
    let negOk = true;
    let posOk = false;
    for (;;) {
      const c = s[p];
      if (c === undefined) break;
      const ok = (c >= '0' && c <= '9') || (!isExp && (c === 'e' || c === 'E')) || (negOk && c === '-') || (posOk && c === '+') || (!isDouble && c === '.');
      if (!ok) break;
      negOk = posOk = false;
      if (c === '.') { isDouble = true; negOk = posOk = true; }
      if (c === 'e' || c === 'E') { isExp = isDouble = true; negOk = posOk = true; }
      p++;
    }
    let buf = s.slice(start, p);
    const c = s[p];
    if (depth > 0 && !(c === ',' || c === ']' || c === '}' || c === '/' || c === 'I' || c === 'i' || isWs(c))) fail('number expected');
    if (buf === '-' && (c === 'i' || c === 'I')) {
      if (!word('infinity')) fail('unexpected character');
      p += 8;
      return { t: 'float', v: -Infinity };
    }
    if (isDouble) while (buf.length > 1 && /[eE+-]$/.test(buf)) buf = buf.slice(0, -1);
    if (!isDouble && /^-?[0-9]/.test(buf)) {
      if (buf.length <= 15) return { t: 'int', v: Number(buf) || 0 }; // || 0: no -0 in C
      // strtoll for a negative number, strtoull otherwise: both saturate
      return { t: 'int', v: saturate(buf, -(1n << 63n), (1n << 64n) - 1n) };
    }
    if (isDouble && /^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/.test(buf)) return { t: 'float', v: Number(buf) };
    return fail('number expected');
  };

  const value = (depth: number): JsonNode => {
    skip();
    const c = s[p];
    let v: JsonNode;
    if (c === '{') {
      p++;
      const m = new Map<string, JsonNode>();
      skip();
      if (s[p] === '}') p++;
      else {
        for (;;) {
          const q = s[p];
          if (q !== '"' && q !== "'") fail('quoted object property name expected');
          p++;
          let key = string(q!);
          const z = key.indexOf('\0');
          if (z >= 0) key = key.slice(0, z); // keys are C strings
          skip();
          if (s[p] !== ':') fail("object property name separator ':' expected");
          p++;
          skip();
          if (depth >= JSON_MAX_DEPTH - 1) fail('nesting too deep');
          m.set(key, value(depth + 1));
          skip();
          if (s[p] === '}') { p++; break; }
          if (s[p] !== ',') fail("object value separator ',' expected");
          p++;
          skip();
          if (s[p] === '}') { p++; break; } // a trailing comma is allowed
        }
      }
      v = { t: 'group', m };
    } else if (c === '[') {
      p++;
      const items: JsonNode[] = [];
      skip();
      if (s[p] === ']') p++;
      else {
        for (;;) {
          if (depth >= JSON_MAX_DEPTH - 1) fail('nesting too deep');
          items.push(value(depth + 1));
          skip();
          if (s[p] === ']') { p++; break; }
          if (s[p] !== ',') fail("array value separator ',' expected");
          p++;
          skip();
          if (s[p] === ']') { p++; break; }
        }
      }
      v = { t: 'list', items };
    } else if (c === '"' || c === "'") {
      p++;
      v = { t: 'string', v: string(c) };
    } else if (c === 't' || c === 'T' || c === 'f' || c === 'F') {
      const t = word('true');
      if (!t && !word('false')) fail('boolean expected');
      p += t ? 4 : 5;
      v = { t: 'bool', v: t };
    } else if (c === 'n' || c === 'N') {
      if (word('null')) { p += 4; v = { t: 'null' }; } else if (word('nan')) { p += 3; v = { t: 'float', v: NaN }; } else v = fail('null expected');
    } else if (c === 'i' || c === 'I') {
      if (!word('infinity')) fail('unexpected character');
      p += 8;
      v = { t: 'float', v: Infinity };
    } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      v = number(depth);
    } else {
      v = fail(c === undefined ? 'unexpected end of data' : 'unexpected character');
    }
    skip(v);
    return v;
  };

  try {
    return value(0); // anything after the top value is ignored
  } catch (e) {
    if (e instanceof EndInComment) return e.node;
    throw e;
  }
}

// ------------------------------------------------------------------ the text, as the client parses it

export function parseManifestText(text: string | Uint8Array): { syntax: 'libconfig' | 'json'; root: Group } {
  let lcErr: LibconfigError;
  try {
    return { syntax: 'libconfig', root: parseLibconfigTree(text) as LcNode as Group };
  } catch (e) {
    if (!(e instanceof LibconfigError)) throw e;
    lcErr = e;
  }
  const bytes = textToBytes(text);
  const looksJson = /^\s*(?:\/[*/]|[{[])/.test(bytes);
  let v: JsonNode;
  try {
    v = parseJsonC(bytes);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    if (!looksJson) throw new ManifestError(`not valid libconfig: ${lcErr.message}`);
    const line = bytes.slice(0, e.at).split('\n').length;
    throw new ManifestError(`neither libconfig nor JSON: ${e.message} at line ${line}, byte ${e.at + 1}`);
  }
  if (v.t !== 'group') {
    if (!looksJson) throw new ManifestError(`not valid libconfig: ${lcErr.message}`);
    throw new ManifestError(`not valid libconfig, and as JSON its value is ${v.t === 'list' ? 'an array' : `a ${v.t}`}, not an object`);
  }
  let count = 0;
  const stack: JsonNode[] = [v];
  while (stack.length) {
    const x = stack.pop()!;
    if (++count > LIMITS.nodes) throw new ManifestError(`more than ${LIMITS.nodes} values`);
    if (x.t === 'group') for (const c of x.m.values()) stack.push(c);
    else if (x.t === 'list') for (const c of x.items) stack.push(c);
  }
  return { syntax: 'json', root: v as Group };
}

// ------------------------------------------------------------------- fields, as get_field takes them

const child = (g: Node | undefined, k: string): Node | undefined => (g?.t === 'group' ? g.m.get(k) : undefined);
const isGroup = (v: Node | undefined): v is Group => v?.t === 'group';

/** A string field (GET_FIELD_STRING): only a string counts, read as a C string. */
function str(n: Node | undefined): string | undefined {
  if (n?.t !== 'string') return undefined;
  const z = n.v.indexOf('\0');
  return bytesToText(z < 0 ? n.v : n.v.slice(0, z));
}

/** The bytes get_field writes into its destination, whatever that destination's type: libconfig
 * writes a bool as 1 byte, an int as 4, an int64 or a float as 8, and nothing for a string; json-c
 * writes a bool or an int as a 4-byte unsigned int, a double as 8, a string with strcpy. */
function stored(n: Node | undefined, syntax: 'libconfig' | 'json'): Buffer | undefined {
  if (!n) return undefined;
  const b = Buffer.alloc(8);
  if (syntax === 'libconfig') {
    switch (n.t) {
      case 'bool': return Buffer.from([n.v ? 1 : 0]);
      case 'int': b.writeInt32LE(Number(n.v)); return b.subarray(0, 4);
      case 'int64': b.writeBigInt64LE(n.v); return b;
      case 'float': b.writeDoubleLE(n.v); return b;
      default: return undefined;
    }
  }
  switch (n.t) {
    case 'bool': b.writeUInt32LE(n.v ? 1 : 0); return b.subarray(0, 4);
    case 'int': { // json_object_get_int: clamped to 32 bits
      const big = BigInt(n.v);
      const v = big < -(1n << 31n) ? -(2 ** 31) : big > (1n << 31n) - 1n ? 2 ** 31 - 1 : Number(big);
      b.writeInt32LE(v);
      return b.subarray(0, 4);
    }
    case 'float': b.writeDoubleLE(n.v); return b;
    case 'string': return Buffer.from(n.v + '\0', 'latin1');
    default: return undefined;
  }
}

/** A C bool field (e.g. `encrypted`): its one byte after get_field wrote over it. */
const flag = (n: Node | undefined, syntax: 'libconfig' | 'json'): boolean => (stored(n, syntax)?.[0] ?? 0) !== 0;

/** A C int field (e.g. `compressed`): 4 bytes, zero where get_field wrote less. */
function int(n: Node | undefined, syntax: 'libconfig' | 'json'): number | undefined {
  const b = stored(n, syntax);
  if (!b) return undefined;
  const four = Buffer.alloc(4);
  b.copy(four, 0, 0, Math.min(4, b.length));
  return four.readInt32LE(0);
}

/** The elements the client iterates (get_array_length/get_elem): libconfig also walks a group's
 * settings this way. */
function elements(n: Node | undefined, syntax: 'libconfig' | 'json'): Node[] {
  if (!n) return [];
  if (n.t === 'list' || n.t === 'array') return n.items;
  if (n.t === 'group' && syntax === 'libconfig') return [...n.m.values()];
  return [];
}

function compression(n: Node | undefined, syntax: 'libconfig' | 'json'): string | boolean | undefined {
  if (!n) return undefined;
  const s = str(n);
  if (s !== undefined) return s; // anything but "zlib" and "zstd" is refused
  const v = int(n, syntax);
  if (v === undefined) return undefined;
  // the client's enum: 0 none, 1 the deprecated boolean form (zlib), 2 zlib, 3 zstd
  return v === 0 ? false : v === 1 ? true : v === 2 ? 'zlib' : v === 3 ? 'zstd' : `method ${v}`;
}

const ARTIFACT_KINDS = ['images', 'files', 'scripts'];

/** An entry's `properties` group as the handlers read it: strings, and lists of strings. */
function properties(n: Node | undefined, syntax: 'libconfig' | 'json'): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!isGroup(n)) return out;
  for (const [k, v] of n.m) {
    const one = str(v);
    if (one !== undefined) out[k] = one;
    else if (v.t === 'list' || v.t === 'array') out[k] = elements(v, syntax).map(str).filter((x): x is string => x !== undefined);
  }
  return out;
}

export function readManifest(text: string | Uint8Array): ParsedManifest {
  const { syntax, root } = parseManifestText(text);
  const sw = child(root, 'software');
  const software = isGroup(sw) ? sw : undefined;
  const out: ParsedManifest = { syntax, software, refs: [], sets: [], bootenv: {} };
  if (!software) return out;
  out.version = str(child(software, 'version'));
  out.description = str(child(software, 'description'));
  const findHw = (g: Group): string[] | undefined => {
    const hw = child(g, 'hardware-compatibility');
    if (!hw) return undefined;
    // non-strings and empty strings are skipped, as the client does
    return elements(hw, syntax).map(str).filter((x): x is string => !!x);
  };
  out.hardwareCompatibility = findHw(software);
  // walk groups breadth-first; a group holding images/files/scripts/bootenv is an install set
  const queue: [Group, string][] = [[software, '']];
  let guard = 0;
  while (queue.length && guard++ < 10_000) {
    const [g, at] = queue.shift()!;
    let isSet = false;
    for (const kind of ARTIFACT_KINDS) {
      const list = child(g, kind);
      if (!list || !(list.t === 'list' || list.t === 'array' || (list.t === 'group' && syntax === 'libconfig'))) continue;
      isSet = true;
      elements(list, syntax).forEach((item, i) => {
        if (!isGroup(item)) return;
        out.refs.push({
          at: `software${at ? '.' + at : ''}.${kind}[${i}]`,
          kind,
          filename: str(child(item, 'filename')),
          sha256: str(child(item, 'sha256')),
          encrypted: flag(child(item, 'encrypted'), syntax),
          ivt: str(child(item, 'ivt')),
          compressed: compression(child(item, 'compressed'), syntax),
          type: str(child(item, 'type')),
          device: str(child(item, 'device')),
          path: str(child(item, 'path')),
          installedDirectly: (int(child(item, 'installed-directly'), syntax) ?? 0) !== 0,
          properties: properties(child(item, 'properties'), syntax),
        });
      });
    }
    const bootenv = child(g, 'bootenv');
    if (bootenv && (bootenv.t === 'list' || bootenv.t === 'array')) {
      isSet = true;
      const env: Record<string, string> = {};
      for (const e of elements(bootenv, syntax)) {
        const name = str(child(e, 'name'));
        if (name !== undefined) env[name] = str(child(e, 'value')) ?? '';
      }
      out.bootenv[at] = env;
    }
    if (isSet) out.sets.push(at);
    for (const [k, v] of g.m) {
      if (isGroup(v) && k !== 'properties' && !ARTIFACT_KINDS.includes(k)) {
        if (!out.hardwareCompatibility) out.hardwareCompatibility = findHw(v);
        queue.push([v, at ? `${at}.${k}` : k]);
      }
    }
  }
  return out;
}

/**
 * A bundle's sw-description, read as the client reads it, for the commands that take a bundle
 * apart (sign, the delta base): an INPUT error naming the bundle when it is not libconfig or
 * JSON, or when it gives the sha256 of a payload the bundle does not hold. (verify reports the
 * same faults as rows of its verdict instead.)
 */
export function readBundleManifest(path: string, layout: { manifest: Uint8Array; payloads: readonly { name: string }[] }): ParsedManifest {
  let manifest: ParsedManifest;
  try {
    manifest = readManifest(layout.manifest);
  } catch (e) {
    throw new OtapackError('INPUT', `sw-description is not valid libconfig or JSON (${(e as Error).message})`, { path, reason: 'corrupt-bundle' });
  }
  for (const r of manifest.refs) {
    if (r.filename && typeof r.sha256 === 'string' && !layout.payloads.some((p) => p.name === r.filename)) {
      throw new OtapackError('INPUT', `sw-description references "${safeName(r.filename)}", which is not in the bundle`, { path, reason: 'corrupt-bundle' });
    }
  }
  return manifest;
}

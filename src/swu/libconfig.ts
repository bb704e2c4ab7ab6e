// libconfig text: a bounded parser (for bundles otapack did not make) and a serializer (for the
// ones it makes). Written here because no maintained npm package parses libconfig, and the parser
// must stay safe on hostile input: depth, length and node count are capped, errors carry line and
// column, and nothing recurses without a bound.
//
// Model: groups become null-prototype objects, arrays and lists become JS arrays; integers that
// do not fit a double exactly become bigint.

export type LcValue = string | number | bigint | boolean | LcValue[] | LcGroup;
export interface LcGroup { [name: string]: LcValue }

export const LIMITS = { depth: 64, stringBytes: 1 << 20, nodes: 200_000 };

export class LibconfigError extends Error {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(`${message} at line ${line}, column ${column}`);
  }
}

const NAME_START = /[A-Za-z*]/;
const NAME_CHAR = /[-A-Za-z0-9_*]/;

export function parseLibconfig(text: string): LcGroup {
  let pos = 0;
  let nodes = 0;
  const len = text.length;

  const where = (p = pos): [number, number] => {
    let line = 1;
    let col = 1;
    for (let i = 0; i < p && i < len; i++) {
      if (text.charCodeAt(i) === 10) { line++; col = 1; } else col++;
    }
    return [line, col];
  };
  const err = (msg: string, p = pos): never => {
    const [l, c] = where(p);
    throw new LibconfigError(msg, l, c);
  };
  const count = (): void => {
    if (++nodes > LIMITS.nodes) err(`more than ${LIMITS.nodes} values`);
  };

  const skip = (): void => {
    for (;;) {
      const c = text[pos];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v') { pos++; continue; }
      if (c === '#' || (c === '/' && text[pos + 1] === '/')) {
        while (pos < len && text[pos] !== '\n') pos++;
        continue;
      }
      if (c === '/' && text[pos + 1] === '*') {
        const end = text.indexOf('*/', pos + 2);
        if (end < 0) err('unterminated comment');
        pos = end + 2;
        continue;
      }
      if (c === '@' && text.startsWith('@include', pos)) err('@include is not supported');
      return;
    }
  };

  const parseName = (): string => {
    const start = pos;
    if (!NAME_START.test(text[pos] ?? '')) err(`expected a setting name, found ${describe(text[pos])}`);
    pos++;
    while (pos < len && NAME_CHAR.test(text[pos]!)) pos++;
    if (pos - start > 1024) err('setting name too long', start);
    return text.slice(start, pos);
  };

  const parseString = (): string => {
    let out = '';
    // adjacent literals concatenate: "a" "b" == "ab"
    for (;;) {
      const start = pos;
      pos++; // opening quote
      for (;;) {
        if (pos >= len) err('unterminated string', start);
        const c = text[pos]!;
        if (c === '"') { pos++; break; }
        if (c === '\\') {
          const e = text[pos + 1];
          pos += 2;
          switch (e) {
            case '\\': out += '\\'; break;
            case '"': out += '"'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'f': out += '\f'; break;
            case 'x': {
              const h = text.slice(pos, pos + 2);
              if (!/^[0-9a-fA-F]{2}$/.test(h)) err('bad \\x escape', pos - 2);
              out += String.fromCharCode(parseInt(h, 16));
              pos += 2;
              break;
            }
            default: err(`unknown escape \\${e ?? ''}`, pos - 2);
          }
        } else {
          out += c;
          pos++;
        }
        if (out.length > LIMITS.stringBytes) err(`string longer than ${LIMITS.stringBytes} characters`, start);
      }
      const save = pos;
      skip();
      if (text[pos] !== '"') { pos = save; return out; }
    }
  };

  const parseScalar = (): LcValue => {
    const c = text[pos];
    if (c === '"') return parseString();
    const m = /^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])(?![-A-Za-z0-9_*])/.exec(text.slice(pos, pos + 6));
    if (m) { pos += m[0].length; return m[0].toLowerCase() === 'true'; }
    const num = /^[-+]?(?:0[xX][0-9a-fA-F]+L{0,2}|(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)L{0,2})/.exec(text.slice(pos, pos + 80));
    if (!num || num[0] === '' ) err(`expected a value, found ${describe(c)}`);
    const tok = num![0];
    pos += tok.length;
    const body = tok.replace(/L+$/, '');
    if (/^[-+]?0[xX]/.test(body)) {
      const neg = body.startsWith('-');
      const big = BigInt(body.replace(/^[-+]/, ''));
      const v = neg ? -big : big;
      return Number.isSafeInteger(Number(v)) ? Number(v) : v;
    }
    if (/^[-+]?\d+$/.test(body)) {
      const v = BigInt(body);
      return Number.isSafeInteger(Number(v)) ? Number(v) : v;
    }
    const f = Number(body);
    if (!Number.isFinite(f)) err(`bad number ${tok}`);
    return f;
  };

  const parseValue = (depth: number): LcValue => {
    if (depth > LIMITS.depth) err(`nesting deeper than ${LIMITS.depth} levels`);
    count();
    skip();
    const c = text[pos];
    if (c === '{') {
      pos++;
      const g = parseSettings(depth + 1, '}');
      pos++;
      return g;
    }
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      pos++;
      const items: LcValue[] = [];
      skip();
      if (text[pos] === close) { pos++; return items; }
      for (;;) {
        const start = pos;
        const v = parseValue(depth + 1);
        if (close === ']' && (typeof v === 'object' && v !== null)) err('arrays [ ] hold only scalar values; use a list ( )', start);
        items.push(v);
        skip();
        if (text[pos] === ',') {
          pos++;
          skip();
          if (text[pos] === close) { pos++; return items; } // tolerate a trailing comma
          continue;
        }
        if (text[pos] === close) { pos++; return items; }
        err(`expected "," or "${close}", found ${describe(text[pos])}`);
      }
    }
    return parseScalar();
  };

  const parseSettings = (depth: number, close: string | undefined): LcGroup => {
    const g: LcGroup = Object.create(null);
    for (;;) {
      skip();
      if (pos >= len) {
        if (close) err(`missing "${close}"`);
        return g;
      }
      if (close && text[pos] === close) return g;
      const at = pos;
      const name = parseName();
      skip();
      if (text[pos] !== '=' && text[pos] !== ':') err(`expected "=" or ":" after "${name}", found ${describe(text[pos])}`);
      pos++;
      const v = parseValue(depth);
      if (Object.prototype.hasOwnProperty.call(g, name)) err(`duplicate setting "${name}"`, at);
      g[name] = v;
      skip();
      if (text[pos] === ';' || text[pos] === ',') pos++;
    }
  };

  if (text.charCodeAt(0) === 0xfeff) pos = 1;
  return parseSettings(0, undefined);
}

function describe(c: string | undefined): string {
  return c === undefined ? 'end of input' : JSON.stringify(c);
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

function scalar(v: LcValue): string {
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return `${v}L`;
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return Math.abs(v) > 0x7fffffff ? `${v}L` : String(v);
    return String(v);
  }
  throw new TypeError('not a scalar');
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
      if (v.every((x) => !isGroup(x) && !Array.isArray(x))) return `[ ${v.map(scalar).join(', ')} ]`;
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

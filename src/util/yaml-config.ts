// Reading YAML configuration with errors a user can act on: every problem names the file, the
// line and column, and the key path ("images[0].compress"), and unknown keys suggest the
// closest known one. Shared by the bundle spec and otapack.yaml.
import { readFile } from 'node:fs/promises';
import { parseDocument, LineCounter, isMap, isSeq, isScalar, type Document, type Node } from 'yaml';
import { OtapackError, fileError } from '../errors.js';

type Path = (string | number)[];

export class ConfigReader {
  private constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  static async load(file: string): Promise<{ reader: ConfigReader; data: unknown }> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw fileError('CONFIG', file, e);
    }
    return ConfigReader.parse(file, text);
  }

  static parse(file: string, text: string): { reader: ConfigReader; data: unknown } {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const e = doc.errors[0];
    if (e) {
      const p = lines.linePos(e.pos[0]);
      const msg = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
      throw new OtapackError('CONFIG', `${file}:${p.line}:${p.col}: invalid YAML: ${msg}`);
    }
    const reader = new ConfigReader(file, doc, lines);
    let data: unknown;
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      throw new OtapackError('CONFIG', `${file}: invalid YAML: ${(err as Error).message}`);
    }
    return { reader, data };
  }

  private where(path: Path): string {
    let node: unknown;
    for (let n = path.length; n >= 0 && !node; n--) {
      node = path.length === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
      if (node && !(node as Node).range) node = undefined;
    }
    const range = (node as Node | undefined)?.range;
    if (!range) return this.file;
    const p = this.lines.linePos(range[0]);
    return `${this.file}:${p.line}:${p.col}`;
  }

  /** Position of a key itself (for unknown-key errors). */
  private whereKey(path: Path, key: string): string {
    const parent = path.length ? this.doc.getIn(path, true) : this.doc.contents;
    if (isMap(parent)) {
      const pair = parent.items.find((it) => isScalar(it.key) && String(it.key.value) === key);
      const r = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (r) {
        const p = this.lines.linePos(r[0]);
        return `${this.file}:${p.line}:${p.col}`;
      }
    }
    return this.where(path);
  }

  error(path: Path, message: string): OtapackError {
    return new OtapackError('CONFIG', `${this.where(path)}: ${fmtPath(path) ? fmtPath(path) + ': ' : ''}${message}`);
  }

  /** Wraps a mapping at `path` for typed access. */
  map(value: unknown, path: Path, known: readonly string[]): ConfigMap {
    if (value === null || value === undefined) value = {};
    if (typeof value !== 'object' || Array.isArray(value)) throw this.error(path, `expected a mapping (key: value), got ${kind(value)}`);
    const obj = value as Record<string, unknown>;
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) {
        const hint = closest(k, known);
        throw new OtapackError('CONFIG', `${this.whereKey(path, k)}: ${fmtPath([...path, k])}: unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`);
      }
    }
    return new ConfigMap(this, obj, path);
  }

  isSeqAt(path: Path): boolean {
    return isSeq(this.doc.getIn(path, true));
  }
}

export class ConfigMap {
  constructor(readonly reader: ConfigReader, readonly value: Record<string, unknown>, readonly path: Path) {}

  has(k: string): boolean {
    return this.value[k] !== undefined && this.value[k] !== null;
  }
  err(k: string | undefined, msg: string): OtapackError {
    return this.reader.error(k === undefined ? this.path : [...this.path, k], msg);
  }
  raw(k: string): unknown {
    return this.value[k];
  }
  str(k: string, opts: { required: true; pattern?: RegExp; hint?: string }): string;
  str(k: string, opts?: { required?: false; pattern?: RegExp; hint?: string }): string | undefined;
  str(k: string, opts: { required?: boolean; pattern?: RegExp; hint?: string } = {}): string | undefined {
    const v = this.value[k];
    if (v === undefined || v === null) {
      if (opts.required) throw this.err(undefined, `missing required key "${k}"`);
      return undefined;
    }
    if (typeof v === 'number' || typeof v === 'bigint') return this.check(k, String(v), opts);
    if (typeof v !== 'string') throw this.err(k, `expected a string, got ${kind(v)}`);
    return this.check(k, v, opts);
  }
  private check(k: string, v: string, opts: { pattern?: RegExp; hint?: string }): string {
    if (opts.pattern && !opts.pattern.test(v)) throw this.err(k, `${JSON.stringify(v)} is not valid${opts.hint ? ` (${opts.hint})` : ''}`);
    if (v.length > 65536) throw this.err(k, 'value too long');
    return v;
  }
  bool(k: string, def: boolean): boolean {
    const v = this.value[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') throw this.err(k, `expected true or false, got ${kind(v)}`);
    return v;
  }
  int(k: string, opts: { min?: number; max?: number } = {}): number | undefined {
    const v = this.value[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.err(k, `expected an integer, got ${kind(v)}`);
    if (opts.min !== undefined && v < opts.min) throw this.err(k, `must be at least ${opts.min}`);
    if (opts.max !== undefined && v > opts.max) throw this.err(k, `must be at most ${opts.max}`);
    return v;
  }
  oneOf<T extends string>(k: string, values: readonly T[], def: T): T {
    const v = this.value[k];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' || !values.includes(v as T)) throw this.err(k, `must be one of ${values.join(', ')} (got ${JSON.stringify(v)})`);
    return v as T;
  }
  list(k: string): unknown[] {
    const v = this.value[k];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw this.err(k, `expected a list, got ${kind(v)}`);
    return v;
  }
  strList(k: string): string[] {
    return this.list(k).map((x, i) => {
      if (typeof x === 'string') return x;
      if (typeof x === 'number') return String(x);
      throw this.reader.error([...this.path, k, i], `expected a string, got ${kind(x)}`);
    });
  }
  /** A mapping of string → string (scalars are stringified). */
  strMap(k: string): Record<string, string> {
    const v = this.value[k];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw this.err(k, `expected a mapping, got ${kind(v)}`);
    const out: Record<string, string> = {};
    for (const [kk, vv] of Object.entries(v as Record<string, unknown>)) {
      if (typeof vv === 'string' || typeof vv === 'number' || typeof vv === 'boolean') out[kk] = String(vv);
      else throw this.reader.error([...this.path, k, kk], `expected a scalar value, got ${kind(vv)}`);
    }
    return out;
  }
  sub(k: string, known: readonly string[]): ConfigMap {
    return this.reader.map(this.value[k], [...this.path, k], known);
  }
}

export function fmtPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

export function kind(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`.slice(0, 60);
}

function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = levenshtein(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) { bestD = d; best = o; }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

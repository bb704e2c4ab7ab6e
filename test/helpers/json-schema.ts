// A small JSON Schema validator for the subset docs/json.md uses (type, const, enum, pattern,
// properties, required, additionalProperties, items, oneOf, $ref to #/$defs), and the reader
// that takes the schema blocks out of docs/json.md. No dependency: the subset is small and the
// point is that the documentation itself is what the output is checked against.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './run.js';

export type Schema = Record<string, unknown>;

/** Every ```json <schema-id> block of docs/json.md, by schema id. */
export function documentedSchemas(file = join(ROOT, 'docs/json.md')): Map<string, Schema> {
  const out = new Map<string, Schema>();
  for (const m of readFileSync(file, 'utf8').matchAll(/```json (otapack\.[a-z-]+\/\d+)\n([\s\S]*?)\n```/g)) {
    out.set(m[1]!, JSON.parse(m[2]!) as Schema);
  }
  return out;
}

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);

/** Problems found (empty when valid), each with the JSON path. */
export function validate(value: unknown, schema: Schema, root: Schema = schema, path = '$'): string[] {
  if (typeof schema.$ref === 'string') {
    const m = /^#\/\$defs\/(.+)$/.exec(schema.$ref);
    const target = m ? (root.$defs as Record<string, Schema> | undefined)?.[m[1]!] : undefined;
    if (!target) return [`${path}: unresolvable $ref ${schema.$ref}`];
    return validate(value, target, root, path);
  }
  const errs: string[] = [];
  if ('const' in schema && JSON.stringify(value) !== JSON.stringify(schema.const)) errs.push(`${path}: ${JSON.stringify(value)} is not ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) errs.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  if (schema.type !== undefined) {
    const types = (Array.isArray(schema.type) ? schema.type : [schema.type]) as string[];
    const t = typeOf(value);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return [...errs, `${path}: ${t} where ${types.join('|')} is documented`];
  }
  if (typeof schema.pattern === 'string' && typeof value === 'string' && !new RegExp(schema.pattern).test(value)) errs.push(`${path}: "${value.slice(0, 60)}" does not match ${schema.pattern}`);
  if (schema.format === 'date-time' && typeof value === 'string' && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value)) errs.push(`${path}: "${value}" is not an ISO 8601 UTC time`);
  if (Array.isArray(schema.oneOf)) {
    const ok = (schema.oneOf as Schema[]).filter((s) => validate(value, s, root, path).length === 0).length;
    if (ok !== 1) errs.push(`${path}: matches ${ok} of the oneOf alternatives, not exactly one`);
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) errs.push(`${path}: required field "${r}" missing`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) errs.push(...validate(v, props[k]!, root, `${path}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${path}: field "${k}" is not documented`);
      else if (typeof schema.additionalProperties === 'object') errs.push(...validate(v, schema.additionalProperties as Schema, root, `${path}.${k}`));
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => errs.push(...validate(v, schema.items as Schema, root, `${path}[${i}]`)));
  return errs;
}

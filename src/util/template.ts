// The one template engine: plain-text files under templates/ (boot/ for the A/B boot logic,
// device/ for what convert installs on the device) with @NAME@ placeholders (NAME: A-Z, 0-9, _,
// starting with a letter). Every placeholder must get a value and every value must be used, so a
// template and its generator cannot drift apart silently; either slip is an INTERNAL error (a bug
// in otapack, never the user's input). Values are inserted as they are, in one pass: a value that
// happens to contain @X@ is not filled again.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OtapackError } from '../errors.js';

/** templates/ of the package (the same relative path from src/util and dist/util). */
export const TEMPLATE_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

const PLACEHOLDER = /@([A-Z][A-Z0-9_]*)@/g;

const cache = new Map<string, string>();

/** The text of templates/<name>, e.g. `boot/uboot-ab.cmd`. */
export function loadTemplate(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    try {
      text = readFileSync(TEMPLATE_DIR + name, 'utf8');
    } catch (e) {
      throw new OtapackError('INTERNAL', `template ${name} is missing from ${TEMPLATE_DIR}`, { cause: e });
    }
    cache.set(name, text);
  }
  return text;
}

/** Replaces each @NAME@ in `text` with values[NAME]; a missing or an unused value is an INTERNAL error naming `name`. */
export function fillTemplate(name: string, text: string, values: Readonly<Record<string, string>>): string {
  const used = new Set<string>();
  const out = text.replace(PLACEHOLDER, (_m, key: string) => {
    if (!Object.hasOwn(values, key)) throw new OtapackError('INTERNAL', `template ${name}: no value for @${key}@`);
    used.add(key);
    return values[key]!;
  });
  for (const k of Object.keys(values)) {
    if (!used.has(k)) throw new OtapackError('INTERNAL', `template ${name}: value ${k} is not used`);
  }
  return out;
}

/** loadTemplate + fillTemplate. */
export function renderTemplate(name: string, values: Readonly<Record<string, string>> = {}): string {
  return fillTemplate(name, loadTemplate(name), values);
}

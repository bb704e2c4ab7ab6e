// Loads the plain-text templates under templates/boot/ and fills their @NAME@ placeholders.
// Every placeholder must be given and every given value must be used, so a template and its
// generator cannot drift apart silently.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OtapackError } from '../errors.js';

/** templates/boot/ of the package (the same relative path from src/boot and dist/boot). */
export const BOOT_TEMPLATE_DIR = fileURLToPath(new URL('../../templates/boot/', import.meta.url));

const cache = new Map<string, string>();

export function loadBootTemplate(name: string): string {
  let text = cache.get(name);
  if (text === undefined) {
    try {
      text = readFileSync(BOOT_TEMPLATE_DIR + name, 'utf8');
    } catch (e) {
      throw new OtapackError('INTERNAL', `boot template ${name} is missing from ${BOOT_TEMPLATE_DIR}`, { cause: e });
    }
    cache.set(name, text);
  }
  return text;
}

/** Replaces each @NAME@ with values[NAME]; unknown or unused names are INTERNAL errors. */
export function fillTemplate(name: string, text: string, values: Record<string, string>): string {
  const used = new Set<string>();
  const out = text.replace(/@([A-Z][A-Z0-9_]*)@/g, (_m, key: string) => {
    const v = values[key];
    if (v === undefined) throw new OtapackError('INTERNAL', `boot template ${name}: no value for @${key}@`);
    used.add(key);
    return v;
  });
  for (const k of Object.keys(values)) {
    if (!used.has(k)) throw new OtapackError('INTERNAL', `boot template ${name}: value ${k} is not used`);
  }
  return out;
}

export function renderBootTemplate(name: string, values: Record<string, string>): string {
  return fillTemplate(name, loadBootTemplate(name), values);
}

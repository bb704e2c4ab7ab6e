// Typed option objects from commander's parse. Each command declares an interface for its options
// and builds it from the parsed values with these readers, so no command reads an untyped bag
// and no cast stands between what the parser checked and what the command uses.
import type { OptionValues } from 'commander';
import { OtapackError } from '../errors.js';

export type { OptionValues };

/** The options every command takes (before the command name). */
export interface GlobalOptions {
  quiet: boolean;
  json: boolean;
}

/** A string option's value; undefined when not given. */
export const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** A flag: given or not (commander stores true for a given flag). */
export const flag = (v: unknown): boolean => !!v;

/** A value commander checked against `choices`, narrowed to them. */
export function choice<T extends string>(v: unknown, choices: readonly T[]): T | undefined {
  return choices.find((c) => c === v);
}

/** A value commander checked against `choices` and defaults: always one of them. */
export function chosen<T extends string>(v: unknown, choices: readonly T[], flags: string): T {
  const c = choice(v, choices);
  if (c === undefined) throw new OtapackError('USAGE', `option '${flags}' must be one of ${choices.join(', ')}`);
  return c;
}

/** A required option's value (main.ts has checked that it was given). */
export function requiredText(v: unknown, flags: string): string {
  if (typeof v !== 'string') throw new OtapackError('USAGE', `required option '${flags}' not specified`);
  return v;
}

/** A positional argument commander required. */
export function required(args: string[], i: number, name: string): string {
  const v = args[i];
  if (v === undefined) throw new OtapackError('USAGE', `missing argument <${name}>`);
  return v;
}

export const globalOptions = (o: OptionValues): GlobalOptions => ({ quiet: flag(o.quiet), json: flag(o.json) });

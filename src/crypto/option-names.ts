// Messages name the option that needs fixing. A library caller knows the options as fields of an
// options object; the command line knows them as flags. The caller says which spelling its user
// sees (the CLI passes '--key' …), so no message speaks of a flag its reader does not have.

/** The signing options a message may name; `keygenType` is where a key of another type comes from. */
export type SigningOption = 'key' | 'cert' | 'chain' | 'pss' | 'pkcs11Module' | 'signCommand' | 'signInput' | 'keygenType';

/** How the caller spells each option in messages; one left out gets the library's spelling. */
export type OptionNames<K extends string = SigningOption> = Partial<Record<K, string>>;

const LIBRARY: Record<string, string> = { keygenType: 'a key of type' };

/** The caller's name for option `k`: its own, else `options.<k>` (the field of the options object). */
export const optionName = <K extends string>(names: OptionNames<K> | undefined, k: K): string => names?.[k] ?? LIBRARY[k] ?? `options.${k}`;

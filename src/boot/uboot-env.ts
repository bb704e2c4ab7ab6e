// U-Boot environment image codec: the binary form that `saveenv`, `env export -c`, `mkenvimage`
// and libubootenv (`fw_printenv`/`fw_setenv`, the library SWUpdate uses) all share.
//
// Layout (little-endian CRC, as on every ARM/x86 target):
//   single copy:  [CRC32 LE over the data area][data area]                      data = size - 4
//   redundant:    [CRC32 LE over the data area][flags byte][data area]          data = size - 5
//   data area:    "name=value\0" … "name=value\0" "\0", then padding to the end.
// The CRC covers the whole data area, padding included, so the padding byte matters: mkenvimage
// and libubootenv pad with 0xff, U-Boot's `env export -s` pads with 0x00. The decoder accepts any.
//
// Written by hand (no maintained JS library exists) because otapack must produce it byte for byte
// like mkenvimage (determinism) and must read files that U-Boot itself rewrote on the device.
import { crc32 } from 'node:zlib';
import { OtapackError } from '../errors.js';

/** Size otapack uses for its env file (`fw_env.config` line `<file> 0x0 0x4000`). */
export const UBOOT_ENV_DEFAULT_SIZE = 0x4000;

export interface UbootEnvEncodeOptions {
  /** Redundant layout (`mkenvimage -r`): a flags byte after the CRC. */
  redundant?: boolean;
  /** Flags byte of a redundant copy (mkenvimage writes 1 = active). */
  flags?: number;
  /** Padding byte after the terminating NUL (mkenvimage default 0xff; `env export` uses 0). */
  pad?: number;
  /**
   * Keep the caller's order instead of sorting by name. Sorting (plain byte order) is the
   * default because U-Boot's `env export` and libubootenv both write sorted environments.
   */
  keepOrder?: boolean;
}

export interface DecodedUbootEnv {
  /** Variables read from the data area. Trust them only when `crcOk` is true. */
  vars: Record<string, string>;
  crcOk: boolean;
  /** Flags byte of a redundant copy; undefined for the single-copy layout. */
  flags?: number;
  /** Why the image is not a valid environment (when crcOk is false or entries were malformed). */
  problem?: string;
}

function entriesOf(vars: Record<string, string> | [string, string][]): [string, string][] {
  return Array.isArray(vars) ? vars.map(([k, v]) => [k, v] as [string, string]) : Object.entries(vars);
}

function validateName(name: string): void {
  if (name.length === 0) throw new OtapackError('CONFIG', 'U-Boot environment: empty variable name');
  if (/[=\0\n]/.test(name)) {
    throw new OtapackError('CONFIG', `U-Boot environment: variable name ${JSON.stringify(name)} contains "=", NUL or a newline`);
  }
}

/**
 * Encodes variables into an environment image of exactly `size` bytes.
 * Throws CONFIG for names/values the format cannot hold, LIMIT when they do not fit.
 */
export function encodeUbootEnv(
  vars: Record<string, string> | [string, string][],
  size: number = UBOOT_ENV_DEFAULT_SIZE,
  opts: UbootEnvEncodeOptions = {},
): Buffer {
  const headerLen = opts.redundant ? 5 : 4;
  if (!Number.isInteger(size) || size < headerLen + 2 || size > 0x7fffffff) {
    throw new OtapackError('CONFIG', `U-Boot environment: invalid size ${size}`);
  }
  const pad = opts.pad ?? 0xff;
  const flags = opts.flags ?? 1;
  if (!Number.isInteger(pad) || pad < 0 || pad > 255) throw new OtapackError('CONFIG', `U-Boot environment: invalid pad byte ${pad}`);
  if (!Number.isInteger(flags) || flags < 0 || flags > 255) throw new OtapackError('CONFIG', `U-Boot environment: invalid flags byte ${flags}`);

  const entries = entriesOf(vars);
  const seen = new Set<string>();
  for (const [k, v] of entries) {
    validateName(k);
    if (typeof v !== 'string') throw new OtapackError('CONFIG', `U-Boot environment: value of ${k} is not a string`);
    if (v.includes('\0')) throw new OtapackError('CONFIG', `U-Boot environment: value of ${k} contains a NUL byte`);
    if (seen.has(k)) throw new OtapackError('CONFIG', `U-Boot environment: variable ${k} given twice`);
    seen.add(k);
  }
  if (!opts.keepOrder) entries.sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

  const dataLen = size - headerLen;
  const out = Buffer.alloc(size, pad);
  let pos = headerLen;
  for (const [k, v] of entries) {
    const bytes = Buffer.from(`${k}=${v}\0`, 'utf8');
    // +1 keeps room for the terminating NUL of the list
    if (pos + bytes.length + 1 > size) {
      const need = entries.reduce((n, [a, b]) => n + Buffer.byteLength(`${a}=${b}`) + 1, 1);
      throw new OtapackError('LIMIT', `U-Boot environment needs ${need} bytes, more than the ${dataLen}-byte data area (size 0x${size.toString(16)})`);
    }
    bytes.copy(out, pos);
    pos += bytes.length;
  }
  out[pos] = 0; // end of list (an empty environment is a single NUL, as mkenvimage writes)
  if (opts.redundant) out[4] = flags;
  out.writeUInt32LE(crc32(out.subarray(headerLen)), 0);
  return out;
}

/**
 * Decodes an environment image. Never throws on malformed input: reads at most `size` bytes,
 * reports `crcOk: false` (and a `problem`) and returns whatever entries it could parse.
 */
export function decodeUbootEnv(buf: Buffer, size?: number, opts: { redundant?: boolean } = {}): DecodedUbootEnv {
  const headerLen = opts.redundant ? 5 : 4;
  const want = size ?? buf.length;
  const problems: string[] = [];
  if (!Number.isInteger(want) || want < headerLen + 1) {
    return { vars: {}, crcOk: false, problem: `environment size ${want} is too small` };
  }
  let crcOk = true;
  if (buf.length < want) {
    crcOk = false;
    problems.push(`image is ${buf.length} bytes, shorter than the environment size ${want}`);
  }
  const area = buf.subarray(0, Math.min(want, buf.length));
  if (area.length < headerLen + 1) return { vars: {}, crcOk: false, problem: problems.join('; ') || 'image too short' };
  const data = area.subarray(headerLen);
  if (crcOk) {
    const stored = area.readUInt32LE(0);
    const actual = crc32(data);
    if (stored !== actual) {
      crcOk = false;
      problems.push(`bad CRC (stored 0x${stored.toString(16).padStart(8, '0')}, computed 0x${actual.toString(16).padStart(8, '0')})`);
    }
  }
  const vars = new Map<string, string>();
  let pos = 0;
  let terminated = false;
  while (pos < data.length) {
    const end = data.indexOf(0, pos);
    if (end === pos) { terminated = true; break; } // empty entry = end of list
    const stop = end < 0 ? data.length : end;
    const entry = data.subarray(pos, stop).toString('utf8');
    const eq = entry.indexOf('=');
    if (eq > 0) vars.set(entry.slice(0, eq), entry.slice(eq + 1));
    else problems.push(`malformed entry at offset ${headerLen + pos}`);
    if (end < 0) break;
    pos = end + 1;
  }
  if (!terminated && crcOk) problems.push('entry list is not NUL-terminated');
  const result: DecodedUbootEnv = { vars: Object.fromEntries(vars), crcOk };
  if (opts.redundant) result.flags = area[4];
  if (problems.length) result.problem = problems.slice(0, 3).join('; ');
  return result;
}

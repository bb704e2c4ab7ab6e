// Exit statuses: the only place error codes become process exit codes (README, "Exit codes").
// The library below src/cli/ raises OtapackError with a code and never exits.
import { OtapackError, errnoOf, type ErrorCode } from '../errors.js';

export const EXIT_CODES: Record<ErrorCode, number> = {
  VERIFY: 1,
  USAGE: 2,
  CONFIG: 3,
  INPUT: 4,
  KEY: 5,
  LIMIT: 6,
  TOOL: 7,
  IO: 8,
  INTERRUPTED: 130,
  INTERNAL: 70,
};

export const EXIT_OK = 0;

/** Killed by a signal: 128 + the signal's number, as a shell reports it (SIGINT is INTERRUPTED). */
export const SIGNAL_EXIT_CODES = { SIGINT: EXIT_CODES.INTERRUPTED, SIGTERM: 143, SIGHUP: 129 } as const;

/** The error code a thrown value stands for: its own, IO for a stray system error, else INTERNAL (a bug). */
export function errorCodeOf(e: unknown): ErrorCode {
  if (e instanceof OtapackError) return e.code;
  const err = e as NodeJS.ErrnoException | undefined;
  if (typeof err?.code === 'string' && err.code.startsWith('commander.')) return 'USAGE';
  if (errnoOf(e) && err?.syscall) return 'IO';
  return 'INTERNAL';
}

/** The exit status for a thrown value (70 only for a bug: never for user input). */
export const exitCodeOf = (e: unknown): number => EXIT_CODES[errorCodeOf(e)];

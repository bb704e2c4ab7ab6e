// One error type for the whole library. Each error carries a stable code; the CLI edge maps
// codes to exit statuses and prints the message as one line. Nothing below the CLI prints.

export type ErrorCode =
  | 'USAGE' // bad command-line use
  | 'CONFIG' // spec / otapack.yaml content
  | 'INPUT' // an input file is missing, unreadable or malformed (image, bundle)
  | 'KEY' // key, certificate, passphrase, AES key
  | 'VERIFY' // a verification found problems
  | 'TOOL' // an external program failed or is missing
  | 'IO' // writing output failed (ENOSPC, EROFS, EACCES …)
  | 'LIMIT' // a format limit would be exceeded (cpio 4 GiB, MBR 4 partitions …)
  | 'INTERRUPTED'
  | 'INTERNAL';

/** Exit status per code; documented in the README ("Exit codes"). */
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

export class OtapackError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OtapackError';
    this.code = code;
  }
}

export const fail = (code: ErrorCode, message: string, cause?: unknown): never => {
  throw new OtapackError(code, message, cause === undefined ? undefined : { cause });
};

/** Turns a Node system error into a one-line reason naming the file. */
export function ioError(code: ErrorCode, what: string, err: unknown): OtapackError {
  if (err instanceof OtapackError) return err;
  const e = err as NodeJS.ErrnoException;
  const reason =
    e?.code === 'ENOENT' ? 'no such file or directory'
    : e?.code === 'EACCES' || e?.code === 'EPERM' ? 'permission denied'
    : e?.code === 'ENOSPC' ? 'no space left on device'
    : e?.code === 'EFBIG' ? 'file too large for this filesystem or ulimit'
    : e?.code === 'EROFS' ? 'read-only file system'
    : e?.code === 'EISDIR' ? 'is a directory'
    : e?.code === 'ENOTDIR' ? 'not a directory'
    : e?.code === 'EDQUOT' ? 'disk quota exceeded'
    : (e?.message ?? String(err));
  return new OtapackError(code, `${what}: ${reason}`, { cause: err });
}

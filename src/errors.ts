// One error type for the whole library. Each error carries a stable code and, where known,
// structured fields (the file, the tool and its exit status, what was expected and found, a
// stable machine-readable reason), so that no caller ever has to parse message text. The CLI
// edge (src/cli/exit-codes.ts) maps codes to exit statuses and prints the message as one line.
// Nothing below the CLI prints.

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

export const ERROR_CODES: readonly ErrorCode[] = ['USAGE', 'CONFIG', 'INPUT', 'KEY', 'VERIFY', 'TOOL', 'IO', 'LIMIT', 'INTERRUPTED', 'INTERNAL'];

/** What an error is about, beyond its code. Every field is optional; none holds secret material. */
export interface ErrorFields {
  /** The file the error is about. When set, the message reads "<path>: <detail>". */
  path?: string;
  /** The external program that failed. */
  tool?: string;
  /** That program's exit status, or the signal that ended it ("SIGKILL"). */
  status?: number | string;
  /** What was expected and what was found instead (a format, a key type, a digest …). */
  expected?: string;
  actual?: string;
  /**
   * A stable, machine-readable kind: an errno name ('ENOENT', 'EACCES' …) for system errors,
   * else a kebab-case word ('not-a-disk-image', 'unsupported-key-type', 'ber-encoding' …).
   */
  reason?: string;
  /** The tool's last words (stderr), for messages; never parsed. */
  toolOutput?: string;
}

export interface ErrorOptions extends ErrorFields {
  cause?: unknown;
}

const FIELD_NAMES = ['path', 'tool', 'status', 'expected', 'actual', 'reason'] as const;

export class OtapackError extends Error {
  readonly code: ErrorCode;
  /** The message without the leading "<path>: ". */
  readonly detail: string;
  readonly path?: string;
  readonly tool?: string;
  readonly status?: number | string;
  readonly expected?: string;
  readonly actual?: string;
  readonly reason?: string;
  readonly toolOutput?: string;

  /** `detail` is the message; with `path`, the message becomes "<path>: <detail>". */
  constructor(code: ErrorCode, detail: string, options: ErrorOptions = {}) {
    super(options.path !== undefined ? `${options.path}: ${detail}` : detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OtapackError';
    this.code = code;
    this.detail = detail;
    for (const k of [...FIELD_NAMES, 'toolOutput'] as const) {
      if (options[k] !== undefined) (this as Record<string, unknown>)[k] = options[k];
    }
  }

  /** The structured fields that are set (for --json), without the tool's raw output. */
  fields(): Omit<ErrorFields, 'toolOutput'> {
    const out: Record<string, unknown> = {};
    for (const k of FIELD_NAMES) if (this[k] !== undefined) out[k] = this[k];
    return out as Omit<ErrorFields, 'toolOutput'>;
  }

  /** The same error about another file: e.g. the user's image instead of its decompressed copy. */
  withPath(path: string): OtapackError {
    return new OtapackError(this.code, this.detail, { ...this.fields(), toolOutput: this.toolOutput, path, cause: this.cause });
  }
}

export const fail = (code: ErrorCode, message: string, cause?: unknown): never => {
  throw new OtapackError(code, message, cause === undefined ? undefined : { cause });
};

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ENOSPC: 'no space left on device',
  EFBIG: 'file too large for this filesystem or ulimit',
  EROFS: 'read-only file system',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  EDQUOT: 'disk quota exceeded',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EIO: 'input/output error',
  ENXIO: 'no such device or address',
  EMFILE: 'too many open files',
  ERR_FS_FILE_TOO_LARGE: 'file is larger than 2 GiB, far too large for this kind of file',
};

/** The errno name of a Node system error ('ENOENT' …), if it is one. */
export const errnoOf = (err: unknown): string | undefined => {
  const c = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof c === 'string' && (/^E[A-Z0-9]+$/.test(c) || c === 'ERR_FS_FILE_TOO_LARGE') ? c : undefined;
};

const errnoReason = (err: unknown): string => {
  const c = errnoOf(err);
  return (c && ERRNO_TEXT[c]) ?? (err as Error | undefined)?.message ?? String(err);
};

/** Turns a Node system error into a one-line reason after `what` (a phrase, e.g. "cannot write in DIR"). */
export function ioError(code: ErrorCode, what: string, err: unknown): OtapackError {
  if (err instanceof OtapackError) return err;
  return new OtapackError(code, `${what}: ${errnoReason(err)}`, { cause: err, reason: errnoOf(err) });
}

/** Turns a Node system error about the file `path` into a one-line reason naming it (path field set). */
export function fileError(code: ErrorCode, path: string, err: unknown): OtapackError {
  if (err instanceof OtapackError) return err;
  return new OtapackError(code, errnoReason(err), { cause: err, path, reason: errnoOf(err) });
}

// The CLI edge: turns thrown errors into one line and an exit status, handles interruption.
import { OtapackError, EXIT_CODES, ioError } from '../errors.js';
import { cleanupNow, currentTask } from '../util/cleanup.js';
import { red } from './output.js';

let debug = false;
export const setDebug = (v: boolean): void => void (debug = v);

export function installSignalHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
  const onSignal = (sig: NodeJS.Signals, code: number) => () => {
    const removed = cleanupNow();
    process.stderr.write(`\notapack: interrupted (${sig}) while ${currentTask()}; ${removed.length ? `removed ${removed.length} temporary file(s), ` : ''}previous outputs left as they were\n`);
    process.exit(code);
  };
  process.on('SIGINT', onSignal('SIGINT', 130));
  process.on('SIGTERM', onSignal('SIGTERM', 143));
  process.on('SIGHUP', onSignal('SIGHUP', 129));
  // A file-size limit (ulimit -f) must fail the write with EFBIG, not kill us mid-file.
  process.on('SIGXFSZ', () => {});
  process.on('unhandledRejection', (e) => {
    process.exitCode = reportError(e);
    process.exit();
  });
}

export function reportError(e: unknown): number {
  cleanupNow();
  if (e instanceof OtapackError) {
    process.stderr.write(`${red('otapack: error:')} ${e.message}\n`);
    if (debug && e.cause) process.stderr.write(`${(e.cause as Error).stack ?? String(e.cause)}\n`);
    if (debug) process.stderr.write(`${e.stack}\n`);
    return EXIT_CODES[e.code];
  }
  const err = e as NodeJS.ErrnoException;
  if (err?.code?.startsWith?.('commander.')) return 2;
  // a system error that reached here unwrapped: still one line and the I/O status
  if (err?.code && /^E[A-Z]+$/.test(err.code) && err.syscall) {
    process.stderr.write(`${red('otapack: error:')} ${ioError('IO', err.path ?? err.syscall, err).message}\n`);
    if (debug) process.stderr.write(`${err.stack}\n`);
    return EXIT_CODES.IO;
  }
  process.stderr.write(`${red('otapack: internal error:')} ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug) process.stderr.write(`${err?.stack ?? ''}\n`);
  return EXIT_CODES.INTERNAL;
}

/** Runs a command action; sets the exit code from its result or its error. */
export async function runAction(fn: () => Promise<number | void>): Promise<void> {
  try {
    const code = await fn();
    process.exitCode = code ?? 0;
  } catch (e) {
    process.exitCode = reportError(e);
  }
}

// The CLI edge: turns thrown errors into one line and an exit status, handles interruption.
import { OtapackError, fileError, ioError } from '../errors.js';
import { EXIT_CODES, EXIT_OK, SIGNAL_EXIT_CODES, errorCodeOf } from './exit-codes.js';
import { cleanupNow, currentTask, holdDuringCommit, outputsCommitted } from '../util/cleanup.js';
import { red, printJson } from './output.js';
import { errorJson } from './json.js';
import { profileLines } from '../util/profile.js';

let debug = false;
export const setDebug = (v: boolean): void => void (debug = v);
// --json seen on the command line: errors that escape a command (unhandled rejections) still print the object
let jsonMode = false;
export const setJsonMode = (v: boolean): void => void (jsonMode = v);

export function installSignalHandlers(): void {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.removeAllListeners(sig);
  const onSignal = (sig: NodeJS.Signals, code: number) => (): void => {
    if (holdDuringCommit(onSignal(sig, code))) return;
    const removed = cleanupNow();
    const what = outputsCommitted()
      ? 'the new outputs were already complete'
      : `${removed.length ? `removed ${removed.length} temporary file(s), ` : ''}previous outputs left as they were`;
    process.stderr.write(`\notapack: interrupted (${sig}) while ${currentTask()}; ${what}\n`);
    process.exit(code);
  };
  for (const sig of signals) process.on(sig, onSignal(sig, SIGNAL_EXIT_CODES[sig]));
  // A file-size limit (ulimit -f) must fail the write with EFBIG, not kill us mid-file.
  process.on('SIGXFSZ', () => {});
  process.on('unhandledRejection', (e) => {
    process.exitCode = reportError(e);
    process.exit();
  });
}

/** With --json, a failed command still prints one JSON object on stdout (docs/json.md, otapack.error/1). */
export function printJsonError(code: string, exitCode: number, message: string, fields: Record<string, unknown> = {}): void {
  printJson(errorJson(code, exitCode, message, fields));
}

export function reportError(e: unknown, json = jsonMode): number {
  cleanupNow();
  const code = errorCodeOf(e);
  const exit = EXIT_CODES[code];
  if (e instanceof OtapackError) {
    if (json) printJsonError(e.code, exit, e.message, e.fields());
    process.stderr.write(`${red('otapack: error:')} ${e.message}\n`);
    if (debug && e.toolOutput) process.stderr.write(`${e.tool ?? 'tool'} said:\n${e.toolOutput}\n`);
    if (debug && e.cause) process.stderr.write(`${(e.cause as Error).stack ?? String(e.cause)}\n`);
    if (debug) process.stderr.write(`${e.stack}\n`);
    return exit;
  }
  const err = e as NodeJS.ErrnoException;
  if (code === 'USAGE') return exit; // commander printed its own message
  // a system error that reached here unwrapped: still one line and the I/O status
  if (code === 'IO') {
    const wrapped = err.path ? fileError('IO', err.path, err) : ioError('IO', err.syscall ?? 'I/O', err);
    if (json) printJsonError('IO', exit, wrapped.message, wrapped.fields());
    process.stderr.write(`${red('otapack: error:')} ${wrapped.message}\n`);
    if (debug) process.stderr.write(`${err.stack}\n`);
    return exit;
  }
  if (json) printJsonError('INTERNAL', exit, err?.message ?? String(e));
  process.stderr.write(`${red('otapack: internal error:')} ${err?.message ?? String(e)}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug) process.stderr.write(`${err?.stack ?? ''}\n`);
  return exit;
}

/** Runs a command action; sets the exit code from its result or its error. */
export async function runAction(fn: () => Promise<number | void>, opts: { json?: boolean } = {}): Promise<void> {
  try {
    const code = await fn();
    process.exitCode = code ?? EXIT_OK;
  } catch (e) {
    process.exitCode = reportError(e, !!opts.json);
  }
  for (const l of profileLines(process.uptime())) process.stderr.write(l + '\n');
}

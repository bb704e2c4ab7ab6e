// Everything the CLI prints goes through here: messages and progress to stderr, machine output
// (--json) to stdout. Colour only on a terminal and never with NO_COLOR; progress only on a
// terminal and never in CI.
import type { Progress, Reporter } from '../util/reporter.js';
import { setTask } from '../util/cleanup.js';
import { formatBytes } from '../util/units.js';

const useColor = (): boolean => !!process.stderr.isTTY && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';
const paint = (code: string) => (s: string): string => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const red = paint('31');
export const green = paint('32');
export const yellow = paint('33');
export const bold = paint('1');
export const dim = paint('2');

export const showProgress = (): boolean => !!process.stderr.isTTY && !process.env.CI && process.env.TERM !== 'dumb';

export const say = (msg: string): void => void process.stderr.write(msg + '\n');
export const warn = (msg: string): void => say(`${yellow('warning:')} ${msg}`);

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function cliReporter(opts: { quiet?: boolean } = {}): Reporter {
  return {
    warn,
    info: (m) => { if (!opts.quiet) say(m); },
    step(name: string, total = 0): Progress {
      setTask(name);
      if (!showProgress() || opts.quiet) return { update() {}, done() {} };
      const start = Date.now();
      let last = 0;
      const draw = (done: number, final = false): void => {
        const now = Date.now();
        if (!final && now - last < 100) return;
        last = now;
        const secs = (now - start) / 1000;
        const pct = total > 0 ? ` ${Math.min(100, Math.floor((done / total) * 100))}%` : '';
        const rate = secs > 0.2 ? ` ${formatBytes(done / secs)}/s` : '';
        process.stderr.write(`\r\x1b[2K${dim(name)}${pct} ${formatBytes(done)}${rate}`);
      };
      let lastDone = 0;
      return {
        update(done) { lastDone = done; draw(done); },
        done() {
          if (lastDone > 0 || total > 0) process.stderr.write('\r\x1b[2K');
        },
      };
    },
  };
}

// How library code talks to its caller without printing: warnings, step changes and progress go
// to a Reporter. The CLI supplies one that writes to stderr; library users get a silent default.
import { setTask } from './cleanup.js';

export interface Progress {
  /** Units of work done so far (bytes), out of the step's total. */
  update(done: number): void;
  done(): void;
}

export interface Reporter {
  warn(message: string): void;
  info(message: string): void;
  /** A long step starts; `total` in bytes (or 0 when unknown). */
  step(name: string, total?: number): Progress;
}

const noProgress: Progress = { update() {}, done() {} };

export const silentReporter: Reporter = {
  warn() {},
  info() {},
  step(name) {
    setTask(name);
    return noProgress;
  },
};

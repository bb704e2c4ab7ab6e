// Process-wide cleanup registry: temp files to delete and child processes to stop when a run is
// interrupted (SIGINT/SIGTERM) or fails. The CLI installs the signal handlers; library code only
// registers what it creates, so an interrupted run never leaves a partial file behind.
import { unlinkSync, rmSync, rmdirSync, mkdtempSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../errors.js';

const tempPaths = new Set<string>();
const tempDirs = new Set<string>();
// folders a run created for its outputs (mkdir -p), parents first: removed again, while empty, when the run fails
const createdDirs: string[] = [];
const children = new Set<{ kill(signal?: NodeJS.Signals): boolean }>();
let task = 'otapack';

export const registerTemp = (path: string): void => void tempPaths.add(path);
export const unregisterTemp = (path: string): void => void tempPaths.delete(path);
export const unregisterTempDir = (path: string): void => void tempDirs.delete(path);
export const registerCreatedDirs = (paths: string[]): void => void createdDirs.push(...paths);
export const unregisterCreatedDirs = (paths: string[]): void => {
  for (const p of paths) { const i = createdDirs.lastIndexOf(p); if (i >= 0) createdDirs.splice(i, 1); }
};
export const registerChild = (c: { kill(signal?: NodeJS.Signals): boolean }): (() => void) => {
  children.add(c);
  return () => void children.delete(c);
};

/**
 * Creates a private temp folder and registers it in one synchronous step: a signal handled while
 * an asynchronous mkdtemp was finishing would otherwise find a folder nobody had registered yet.
 */
export function makeTempDir(parent: string, prefix: string): string {
  let dir: string;
  try {
    dir = mkdtempSync(join(parent, prefix));
  } catch (e) {
    throw ioError('IO', `cannot write in ${parent}`, e);
  }
  tempDirs.add(dir);
  return dir;
}

/**
 * Creates a new temp file (`wx`), registered before it exists for the same reason. The name must
 * be unique to this run (pid, random bytes): cleanup may unlink it before the open has finished.
 */
export async function openTemp(path: string, flags: 'wx' | 'wx+' = 'wx', mode?: number): Promise<FileHandle> {
  tempPaths.add(path);
  try {
    return await open(path, flags, mode);
  } catch (e) {
    tempPaths.delete(path);
    throw e;
  }
}

/** What the run is doing now, named in the message printed on interruption. */
export const setTask = (name: string): void => void (task = name);
export const currentTask = (): string => task;

/** Synchronous, so it can run inside a signal handler right before exit. Returns what it removed. */
export function cleanupNow(): string[] {
  for (const c of children) {
    try { c.kill('SIGTERM'); } catch { /* already gone */ }
  }
  children.clear();
  const removed: string[] = [];
  for (const p of tempPaths) {
    try { unlinkSync(p); removed.push(p); } catch { /* already gone */ }
  }
  tempPaths.clear();
  for (const d of tempDirs) {
    // retried: a child told to stop a moment ago may still be adding files to the folder
    try { rmSync(d, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 }); removed.push(d); } catch { /* ignore */ }
  }
  tempDirs.clear();
  // rmdir, not rm -r: a folder that holds anything (published outputs, the user's files) stays
  for (const d of createdDirs.splice(0).reverse()) {
    try { rmdirSync(d); removed.push(d); } catch { /* not empty, or gone */ }
  }
  return removed;
}

// A set of outputs is committed by several renames. An interruption between two of them would
// leave old and new files side by side, so signals that arrive during the commit are held until
// it is over; after it, an interruption no longer undoes anything and says so.
let committing = 0;
let held: (() => void) | undefined;
let committed = false;

/** Runs the renames that publish a run's outputs with interruptions held back. */
export async function commitOutputs<T>(fn: () => Promise<T>): Promise<T> {
  committing++;
  try {
    const r = await fn();
    // only the outermost commit publishes the whole set (convert's wraps the image's own)
    if (committing === 1) committed = true;
    return r;
  } finally {
    committing--;
    if (!committing && held) {
      const run = held;
      held = undefined;
      run();
    }
  }
}

/** For the signal handler: true when it must wait (`run` is called once the commit is over). */
export const holdDuringCommit = (run: () => void): boolean => {
  if (!committing) return false;
  held ??= run;
  return true;
};

/** Whether this run's outputs have all been published. */
export const outputsCommitted = (): boolean => committed;

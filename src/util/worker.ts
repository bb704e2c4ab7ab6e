// Worker threads started from a compiled sibling script (dist/…/x-worker.js). When the code runs
// from its TypeScript sources (there is no compiled script), callers do the work in this thread.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';

/** The URL of a compiled worker script next to `base` (import.meta.url), or undefined. */
export function workerScript(name: string, base: string): URL | undefined {
  const url = new URL(`./${name}`, base);
  return existsSync(fileURLToPath(url)) ? url : undefined;
}

/** Starts a worker from a script found by workerScript. */
export async function startWorker(script: URL, workerData?: unknown): Promise<Worker> {
  const { Worker } = await import('node:worker_threads');
  return new Worker(script, { workerData });
}

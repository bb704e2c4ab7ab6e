// Worker thread entry for image-digest.ts: runs one digest job and reports progress and result.
import { parentPort, workerData } from 'node:worker_threads';
import { digestImage, type DigestJob } from './image-digest.js';

let last = 0;
digestImage(workerData as DigestJob, (done) => {
  if (done - last >= 64 << 20) {
    last = done;
    parentPort!.postMessage({ progress: done });
  }
}).then(
  (result) => parentPort!.postMessage({ result }),
  // the errno name travels too: the main thread turns a read error into an IO error, not a crash
  (e: unknown) => parentPort!.postMessage({ error: (e as Error)?.message ?? String(e), code: (e as NodeJS.ErrnoException)?.code }),
);

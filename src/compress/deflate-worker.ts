// Worker thread entry for parallel-gzip.ts: deflates the blocks it is sent, in order, and hands
// each input buffer back with its output so the main thread can reuse it.
import { parentPort } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateBlock, type DeflateRequest } from './deflate-block.js';

// Every block leaves ~1 MiB of short-lived output buffers behind; V8 would let tens of MiB of
// them pile up before collecting. A minor collection every few blocks keeps the thread small.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
let n = 0;

parentPort!.on('message', (r: DeflateRequest) => {
  const out = deflateBlock(r);
  const owned = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
  const transfer: ArrayBuffer[] = [r.data.buffer as ArrayBuffer];
  if (owned) transfer.push(out.buffer as ArrayBuffer);
  parentPort!.postMessage({ id: r.id, out, data: r.data }, transfer);
  if (++n % 4 === 0) gc({ type: 'minor' });
});

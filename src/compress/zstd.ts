// zstd through the zstd CLI: multi-threaded (-T0 uses every core), and deterministic whatever
// the thread count as long as the content size is left out of the frame header.
import { spawnStream } from '../util/tools.js';
import { feedInto, settleFed, type Compressor, type CompressJob, type Input } from './compressor.js';
import { procBytesRead } from './io-progress.js';

export const zstd: Compressor = {
  id: 'zstd',
  suffix: '.zst',
  swupdateName: 'zstd',
  defaultLevel: 3,
  levels: [1, 19],
  start(input: Input, level: number): CompressJob {
    const args = ['-q', '-c', '-T0', `-${level}`, '--no-content-size', '--no-progress'];
    const fromPath = 'path' in input;
    if (fromPath) args.push('--', input.path);
    const { child, done } = spawnStream('zstd', args, { stdin: fromPath ? 'ignore' : 'pipe' });
    let fed = 0;
    const feeding = fromPath ? Promise.resolve() : feedInto(child.stdin!, input.feed, { copy: false, onBytes: (n) => { fed += n; } });
    const all = settleFed(done, feeding);
    all.catch(() => {});
    return {
      output: child.stdout as AsyncIterable<Buffer>,
      done: all,
      consumed: () => (fromPath ? procBytesRead(child.pid) : fed),
      abort: () => void child.kill('SIGTERM'),
    };
  },
};

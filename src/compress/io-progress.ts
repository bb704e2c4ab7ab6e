// Progress for codecs that read their input themselves: Linux reports a process's bytes read in
// /proc/<pid>/io (rchar). Cheap to poll, and nothing is counted twice.
import { readFileSync } from 'node:fs';

export function procBytesRead(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /^rchar:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// After each test file: its tmp() folders (GiB-sized images) go, so a full run does not fill the
// disk; and no otapack run of the file exited 70 (an internal error is never the answer to an
// input, however bad: README "Exit codes"), every such run listed.
import { afterAll, expect } from 'vitest';
import { cleanupTmp, takeInternalErrors } from './helpers/run.js';

afterAll(() => cleanupTmp());
afterAll(() => {
  expect(takeInternalErrors(), 'otapack runs that exited 70 (internal error)').toEqual([]);
});

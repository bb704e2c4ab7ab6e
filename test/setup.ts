// After each test file: its tmp() folders (GiB-sized images) go, so a full run does not fill the disk.
import { afterAll } from 'vitest';
import { cleanupTmp } from './helpers/run.js';

afterAll(() => cleanupTmp());

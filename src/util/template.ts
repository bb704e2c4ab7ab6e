// The device-side templates (templates/device/): files otapack installs into the slots, with
// @@NAME@@ placeholders. A placeholder without a value is a bug, not a blank.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OtapackError } from '../errors.js';

const TEMPLATES = fileURLToPath(new URL('../../templates/device/', import.meta.url));

export function renderDeviceTemplate(name: string, values: Record<string, string> = {}): string {
  return readFileSync(TEMPLATES + name, 'utf8').replace(/@@([A-Z_]+)@@/g, (_m, k: string) => {
    if (!(k in values)) throw new OtapackError('INTERNAL', `template ${name}: no value for @@${k}@@`);
    return values[k]!;
  });
}

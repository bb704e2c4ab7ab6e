// The values options with a fixed set of choices take: the parser (main.ts) offers them and the
// commands narrow the parsed value to them. Types only from the library, so --help stays light.
import type { KeyType } from '../crypto/keygen.js';
import type { CertPurpose } from '../crypto/cms-verify.js';
import type { SignInput } from '../crypto/signer.js';
import type { BundleSpec, DeltaMethod } from '../clients/swupdate/spec.js';
import type { ClientId } from '../clients/client.js';

export const KEY_TYPES = ['rsa2048', 'rsa3072', 'rsa4096', 'ec256', 'ec384'] as const satisfies readonly KeyType[];
export const CERT_PURPOSES = ['emailProtection', 'codeSigning'] as const satisfies readonly CertPurpose[];
export const SIGN_INPUTS = ['der', 'sha256'] as const satisfies readonly SignInput[];
export const MANIFEST_FORMATS = ['libconfig', 'json'] as const satisfies readonly BundleSpec['manifestFormat'][];
export const CPIO_FORMATS = ['crc', 'newc'] as const satisfies readonly BundleSpec['cpioFormat'][];
export const DELTA_METHODS = ['rdiff', 'zchunk'] as const satisfies readonly DeltaMethod[];
export const CLIENT_IDS = ['swupdate', 'mender'] as const satisfies readonly ClientId[];

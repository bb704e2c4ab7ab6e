// otapack as a library: everything the CLI does, callable from code. The CLI (src/cli) only
// parses arguments and prints; it calls exactly these functions.
export { OtapackError, ERROR_CODES, type ErrorCode, type ErrorFields } from './errors.js';
export { silentReporter, type Reporter, type Progress } from './util/reporter.js';

// bundles
export { loadBundleSpec, type BundleSpec, type ArtifactSpec } from './clients/swupdate/spec.js';
export { buildBundle, type BuildOptions, type BuildResult, type BuiltEntry } from './clients/swupdate/bundle.js';
export { verifyBundle, type VerifyOptions, type VerifyReport, type Check, type CheckStatus } from './clients/swupdate/verify.js';
export { resignBundle, extractManifest, checkDetachedSignature, type ResignOptions, type ResignResult } from './clients/swupdate/resign.js';

// keys and signing
export { writeKeyFiles, type KeyFiles, type KeyFilesOptions } from './crypto/key-files.js';
export { generateKeySet, DEFAULT_DAYS, type KeySet, type KeyType } from './crypto/keygen.js';
export { resolveSigner, type SignerOptions } from './crypto/resolve-signer.js';
export { loadAesKey, loadPrivateKey, loadCertificates, parseAesKey, type AesKey } from './crypto/keys.js';
export { parseCertificates, type CertInfo } from './crypto/x509.js';
export type { Signer, SignerKind } from './crypto/signer.js';
export { verifyCms, verifyChain, type CmsVerdict, type ChainVerdict, type TrustStore, type CertPurpose } from './crypto/cms-verify.js';

// disk images
export { convertImage, inspectImage, inspectInput, type ConvertOptions, type ConvertOutcome } from './convert/convert.js';
export type { OtapackDisk } from './convert/otapack-disk.js';
export type { ConvertPlan } from './convert/plan.js';
export { readPartitionTable, writePartitionTable, type PartitionTable, type Partition, type NewPartition } from './disk/table.js';

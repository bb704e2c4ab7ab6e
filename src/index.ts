// otapack as a library: everything the CLI does, callable from code. The CLI (src/cli) only
// parses arguments and prints; it uses exactly what is exported here (test/cli-imports.test.ts).
export { OtapackError, ERROR_CODES, fileError, ioError, errnoOf, type ErrorCode, type ErrorFields } from './errors.js';
export { silentReporter, type Reporter, type Progress } from './util/reporter.js';
export { formatBytes, formatSize } from './util/units.js';
export { writeFileAtomic } from './util/atomic-file.js';
export { refuseOverwritingInputs, keyInputs, type NamedInput, type NamedOutput } from './util/no-clobber.js';

// bundles
export { loadBundleSpec, DELTA_METHODS, type BundleSpec, type ArtifactSpec, type DeltaSpec, type DeltaMethod } from './clients/swupdate/spec.js';
export { prepareDeltas, type PreparedDelta, type DeltaPreparation } from './clients/swupdate/delta.js';
export { encodeRdiff, RdiffParser, type RdiffStats, type RdiffSummary } from './delta/rdiff.js';
export { openDeltaBase, type DeltaBase } from './delta/base.js';
export { buildBundle, type BuildOptions, type BuildResult, type BuiltEntry } from './clients/swupdate/bundle.js';
export { verifyBundle, type VerifyOptions, type VerifyReport, type DeltaImage, type Check, type CheckStatus } from './clients/swupdate/verify.js';
export { resignBundle, extractManifest, checkDetachedSignature, type ResignOptions, type ResignResult } from './clients/swupdate/resign.js';

// Mender artifacts (.mender, format v3)
export { loadMenderSpec, parseMenderSpec, isMenderSpecData, readSpecFile, type MenderSpec } from './clients/mender/spec.js';
export { buildMenderArtifact, type MenderBuildOptions, type MenderBuildResult } from './clients/mender/bundle.js';
export { verifyMenderArtifact, looksLikeMender, type MenderVerifyOptions, type MenderVerifyReport } from './clients/mender/verify.js';
export { resolveManifestSigner, loadTrustKey, parseTrustKey, type TrustKey } from './clients/mender/keys.js';
export type { ManifestSigner } from './clients/mender/artifact.js';
export type { ClientId } from './clients/client.js';

// keys and signing
export { writeKeyFiles, type KeyFiles, type KeyFilesOptions } from './crypto/key-files.js';
export { generateKeySet, DEFAULT_DAYS, type KeySet, type KeyType } from './crypto/keygen.js';
export { resolveSigner, DEFAULT_EXPIRY_WARNING_DAYS, type SignerOptions } from './crypto/resolve-signer.js';
export type { OptionNames, SigningOption } from './crypto/option-names.js';
export { loadAesKey, loadPrivateKey, loadCertificates, parseAesKey, ENV, type AesKey } from './crypto/keys.js';
export { parseCertificates, type CertInfo } from './crypto/x509.js';
export type { Signer, SignerKind, SignInput } from './crypto/signer.js';
export { verifyCms, verifyChain, type CmsVerdict, type ChainVerdict, type TrustStore, type CertPurpose } from './crypto/cms-verify.js';

// disk images
export { convertImage, inspectImage, inspectInput, type ConvertOptions, type ConvertOutcome } from './convert/convert.js';
export { SLOTS_CONF, type OtapackDisk } from './convert/otapack-disk.js';
export { byRole, type ConvertPlan } from './convert/plan.js';
export { type ConvertResult } from './convert/apply.js';
export { reportJson } from './convert/report.js';
export type { BootWiring } from './convert/boot-plan.js';
export { readPartitionTable, writePartitionTable, type PartitionTable, type Partition, type NewPartition } from './disk/table.js';

// running as a program: what is being done (for an interruption's message), removing temporary
// files on a signal, holding a signal while outputs are renamed into place, timing (OTAPACK_PROFILE)
export { setTask, currentTask, cleanupNow, holdDuringCommit, outputsCommitted } from './util/cleanup.js';
export { profileLines } from './util/profile.js';

// what this installation runs on (`otapack --version`)
export { toolReport, type ToolPackage } from './util/tool-report.js';
export { deflateStatus, type DeflateStatus } from './compress/native-deflate.js';

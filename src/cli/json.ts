// The objects `--json` prints, one builder per schema (docs/json.md; test/json-schemas.test.ts
// checks every field against the schema blocks there). otapack.convert/1 is the exception: it is
// the report convert also writes beside its outputs (OUTDIR/<name>.json), so the library builds
// it (reportJson) and `convert --json` prints that same object. Type imports only: this module
// is loaded with every command, and must not pull in the library behind it.
import type { BuildResult } from '../clients/swupdate/bundle.js';
import type { ResignResult } from '../clients/swupdate/resign.js';
import type { VerifyReport } from '../clients/swupdate/verify.js';
import type { MenderBuildResult } from '../clients/mender/bundle.js';
import type { MenderVerifyReport } from '../clients/mender/verify.js';
import type { KeyFiles } from '../crypto/key-files.js';
import type { KeyType } from '../crypto/keygen.js';
import type { SignerKind } from '../crypto/signer.js';
import type { ConvertPlan } from '../convert/plan.js';
import type { OtapackDisk } from '../convert/otapack-disk.js';

/** otapack.bundle/1 */
export const bundleJson = (r: BuildResult, signerKind: SignerKind | undefined): object => ({
  schema: 'otapack.bundle/1', output: r.output, size: r.size, sha256: r.sha256, signed: r.signed,
  signer: r.signer ?? null, signatureAlgorithm: r.signatureAlgorithm ?? null, signerKind: signerKind ?? null,
  manifestFormat: r.manifestFormat, cpioFormat: r.cpioFormat, entries: r.entries, manifestText: r.manifest,
  ...(r.deltas?.length ? {
    deltas: r.deltas.map((d) => ({
      image: d.label, method: d.method,
      base: { path: d.base.origin, version: d.base.version ?? null, size: d.base.size, dataBytes: d.base.dataBytes, dataSha256: d.base.dataSha256 ?? null },
      imageSha256: d.image.sha256, imageSize: d.image.size, payloadBytes: d.payloadBytes,
      ...(d.zchunk ? { zck: { path: d.zchunk.file, size: d.zchunk.size, url: d.zchunk.url, chunks: d.zchunk.chunks } } : {}),
      readback: d.readback, seconds: d.seconds,
    })),
  } : {}),
});

/** otapack.sign/1 */
export const signJson = (r: ResignResult): object => ({
  schema: 'otapack.sign/1', output: r.output, size: r.size, signer: r.signer, algorithm: r.algorithm, method: r.method,
  certificate: r.certificate, payloads: r.payloads, replacedSignature: r.replacedSignature,
});

/** otapack.verify/1 */
export const verifyJson = (report: VerifyReport): object => ({ schema: 'otapack.verify/1', ...report });

/** otapack.mender-bundle/1 */
export const menderBundleJson = (r: MenderBuildResult): object => ({
  schema: 'otapack.mender-bundle/1', output: r.output, size: r.size, sha256: r.sha256, artifactName: r.artifactName, deviceTypes: r.deviceTypes,
  compression: r.compression, payload: { name: r.payloadName, size: r.payloadSize, sha256: r.payloadSha256, storedSize: r.dataSize },
  signed: r.signed, signatureAlgorithm: r.signatureAlgorithm ?? null, signerKind: r.signerKind ?? null, signer: r.signer ?? null,
  members: r.members, manifestText: r.manifest, headerInfo: JSON.parse(r.headerInfo) as unknown, typeInfo: JSON.parse(r.typeInfo) as unknown,
});

/** otapack.mender-verify/1 */
export const menderVerifyJson = (report: MenderVerifyReport): object => ({ schema: 'otapack.mender-verify/1', ...report });

/** otapack.keygen/1 */
export function keygenJson(kf: KeyFiles, o: { directory: string; type: KeyType; days: number; encrypted: boolean }) {
  const ks = kf.keys;
  return {
    schema: 'otapack.keygen/1',
    directory: o.directory,
    files: {
      signingKey: kf.signingKey,
      signingCert: kf.signingCert,
      aesKey: kf.aesKey,
      ...(kf.caKey ? { caKey: kf.caKey, caCert: kf.caCert } : {}),
    },
    keyType: o.type,
    subject: ks.signingCert.subject,
    notBefore: ks.signingCert.notBefore.toISOString(),
    notAfter: ks.signingCert.notAfter.toISOString(),
    days: o.days,
    ca: !!ks.ca,
    encrypted: o.encrypted,
    fingerprint: ks.signingCert.fingerprint,
    trustAnchor: kf.trustAnchor,
  };
}

/** otapack.inspect/1 */
export function inspectJson(plan: ConvertPlan): object {
  const { layout, ...rest } = plan;
  return {
    schema: 'otapack.inspect/1',
    input: { path: layout.image, layout: layout.kind, table: layout.table, rootPartition: layout.root.number, bootPartition: layout.boot?.number ?? null, bootloader: layout.bootloader, board: layout.board, rootSpec: layout.rootSpec ?? null, rootfs: layout.rootFs, rawBootloader: layout.rawBootloader },
    plan: planJson(rest),
  };
}

/** otapack.abdisk/1: inspect of a disk otapack already converted. */
export const abDiskJson = (d: OtapackDisk, message: string): object => ({
  schema: 'otapack.abdisk/1', path: d.image, table: d.table, bootloader: d.bootloader, device: d.device ?? null,
  slotA: d.slotA, slotB: d.slotB, bootPartition: d.bootPartition ?? null, dataPartition: d.dataPartition ?? null,
  markedBy: d.markedBy, bootFiles: d.bootFiles, message,
});

/** otapack.error/1: what a failed command prints with --json, instead of its result. */
export const errorJson = (code: string, exitCode: number, message: string, fields: Record<string, unknown> = {}): object => ({
  schema: 'otapack.error/1', ok: false, code, exitCode, message, ...fields,
});

/**
 * The plan as data for inspect --json (docs/json.md, otapack.inspect/1): every decision, no
 * bytes — files are named with their size, secrets only by name.
 */
function planJson(plan: Omit<ConvertPlan, 'layout'>): Record<string, unknown> {
  const { boot, files, clientDataFiles, deviceLayout: _dl, artifact, ...core } = plan;
  const size = (d: string | Buffer | undefined): number | undefined => (d === undefined ? undefined : Buffer.byteLength(d));
  const fileJson = (f: ConvertPlan['files'][number]): Record<string, unknown> => ({
    path: f.path, kind: f.kind, mode: f.kind === 'symlink' ? `-> ${f.target}` : `0${f.mode.toString(8)}`, why: f.why,
    ...(f.kind === 'file' && f.pending === undefined && f.source === undefined ? { size: size(f.data) ?? 0 } : {}),
    ...(f.source !== undefined ? { source: f.source } : {}),
    ...(f.pending !== undefined ? { pending: f.pending } : {}),
    ...(f.secret ? { secret: true } : {}),
  });
  return {
    ...core,
    boot: {
      bootloader: boot.bootloader, bootPartition: boot.bootPartition, formatBootPartition: !!boot.format, remove: boot.remove,
      bootFiles: boot.bootFiles.map((f) => ({ ...f, size: size(boot.writes.find((w) => w.path === f.path)?.data) ?? 0 })),
      boardStep: boot.boardStep, edits: boot.edits, initialEnv: boot.initialEnv, envFile: boot.envFile, bootlimit: boot.bootlimit,
      rootfsFiles: boot.rootfsFiles.map((f) => ({ path: f.path, kind: f.kind, mode: `0${f.mode.toString(8)}`, size: size(f.data) ?? 0 })),
      loader: boot.loader,
      ...(boot.installGrub ? { installGrub: boot.installGrub } : {}),
    },
    files: files.map(fileJson),
    ...(clientDataFiles.length ? { clientDataFiles: clientDataFiles.map(fileJson) } : {}),
    artifact: { file: artifact.file, summary: artifact.summary, spec: artifact.spec },
  };
}

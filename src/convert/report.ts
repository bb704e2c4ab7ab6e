// The conversion report: the object convert writes to OUTDIR/<name>.json and prints with --json
// (docs/json.md, otapack.convert/1). Names files changed in the rootfs, never their bytes.
import type { ConvertResult } from './apply.js';

export function reportJson(r: ConvertResult): unknown {
  const { plan } = r;
  const L = plan.layout;
  return {
    schema: 'otapack.convert/1',
    client: plan.client,
    input: {
      path: L.image, layout: L.kind, table: L.table.kind, diskId: L.table.diskId, size: L.table.imageSize,
      bootloader: L.bootloader, board: L.board, rootSpec: L.rootSpec ?? null,
      partitions: L.table.partitions.map((p) => ({ number: p.number, start: p.start, size: p.size, type: p.type, typeName: p.typeName, name: p.name ?? null, partuuid: p.partuuid })),
      rootPartition: L.root.number, bootPartition: L.boot?.number ?? null, rawBootloader: L.rawBootloader,
    },
    output: {
      table: plan.table, diskId: plan.diskId, size: plan.imageSize, device: plan.device,
      partitions: plan.partitions.map((p) => ({ number: p.number, role: p.role, start: p.start, size: p.size, end: p.start + p.size, type: p.type, typeName: p.typeName, name: p.name ?? null, partuuid: p.partuuid, device: p.device, bootable: p.bootable, fs: p.fs })),
    },
    filesystems: { rootfs: r.rootfs },
    // files changed in the rootfs by the boot wiring: named, never their bytes (docs/json.md)
    boot: { ...r.boot, rootfsFiles: r.boot.rootfsFiles.map((f) => ({ path: f.path, kind: f.kind, mode: `0${f.mode.toString(8)}` })) },
    fstab: r.fstabChanges,
    injected: r.injected,
    bundle: { version: r.version, ...(plan.client === 'mender' ? { format: 'mender', artifactName: (r.artifactDetail as { artifactName: string }).artifactName, deviceTypes: (r.artifactDetail as { deviceTypes: string[] }).deviceTypes } : {}), signed: r.bundle.signed, signer: r.bundle.signer ?? null, signatureAlgorithm: r.bundle.signatureAlgorithm ?? null, entries: r.bundle.entries, manifest: r.bundle.manifest },
    outputs: r.outputs,
    ...(r.delta ? { delta: deltaJson(r) } : {}),
    warnings: plan.warnings,
  };
}


/** The delta bundle: what it was made from and what it holds (docs/json.md). */
function deltaJson(r: ConvertResult): unknown {
  const d = r.delta!.deltas![0]!;
  return {
    method: d.method,
    base: { path: d.base.origin, version: d.base.version ?? null, size: d.base.size, dataBytes: d.base.dataBytes, dataSha256: d.base.dataSha256 ?? null, blockSize: d.base.blockSize },
    image: d.image,
    payloadBytes: d.payloadBytes,
    entries: r.delta!.entries,
    ...(d.rdiff ? { rdiff: { copyBytes: d.rdiff.copyBytes, literalBytes: d.rdiff.literalBytes, zeroLiteralBytes: d.rdiff.zeroLiteralBytes, copies: d.rdiff.copies, literals: d.rdiff.literals } } : {}),
    ...(d.zchunk ? { zchunk: { url: d.zchunk.url, headerSize: d.zchunk.headerSize, chunks: d.zchunk.chunks, size: d.zchunk.size } } : {}),
    readback: d.readback,
    seconds: d.seconds,
  };
}

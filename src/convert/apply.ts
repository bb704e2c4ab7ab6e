// Carries out a conversion plan (plan.ts), rootless; every decision was made there, from what
// read-input.ts read, so this only executes steps:
//   raw boot loader bytes and kept partitions are copied sparse (holes stay holes);
//   the (already checked) input rootfs is copied into slot A, grown in place with resize2fs and
//   given the planned device-side files with debugfs; the planned boot files go onto the boot
//   partition (mtools);
//   the data partition is made with mke2fs -d; the partition table is written;
//   slot A is then read ONCE: the same bytes are written to slot B and streamed into the
//   bundle (compress → encrypt → hash → cpio);
//   the bmap maps exactly the blocks in use (ext4 bitmaps, FAT, raw areas, table sectors).
// Outputs are built as temp files in the output folder and renamed together at the end.
import { reportJson } from './report.js';
import { open, mkdir, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, basename } from 'node:path';
import { formatSize } from '../util/units.js';
import { OtapackError, ioError } from '../errors.js';
import { AtomicFile, writeFileAtomic, syncDir, stageFiles, type StagedFiles } from '../util/atomic-file.js';
import { makeTempDir, unregisterTempDir, commitOutputs } from '../util/cleanup.js';
import { silentReporter, type Reporter } from '../util/reporter.js';
import { copyRange } from '../disk/sparse-copy.js';
import { openDirect, type DirectTarget } from '../disk/direct-io.js';
import { dataMap, type DataMap } from '../disk/extents.js';
import { writePartitionTable } from '../disk/table.js';
import { guidFromSeed } from '../disk/guid.js';
import { planBmap, bmapHashRanges, renderBmap } from '../disk/bmap.js';
import { startDigest, RangeHasher, type DigestResult } from '../disk/image-digest.js';
import { probeExt4, fsck, resize, mkfs, usedRanges } from '../fs/ext4.js';
import { writeFat, deleteFat, mkfsFat } from '../fs/fat.js';
import { grubMkimage } from '../fs/grub-mkimage.js';
import { injectEntries, type FsEntry } from '../fs/ext4-inject.js';
import { asWriteError, type BuildResult } from '../clients/swupdate/bundle.js';
import { clientById } from '../clients/index.js';
import type { ArtifactResult } from '../clients/client.js';
import type { ManifestSigner } from '../clients/mender/artifact.js';
import type { Signer } from '../crypto/signer.js';
import type { AesKey } from '../crypto/keys.js';
import type { ConvertConfig } from './config.js';
import { byRole, type ConvertPlan, type PlannedPartition } from './plan.js';
import type { BootWiring, BootPlan } from './boot-plan.js';
import { stage } from '../util/profile.js';

export interface ApplyOptions {
  plan: ConvertPlan;
  cfg: ConvertConfig;
  input: string; // raw image (already decompressed)
  outDir: string;
  signer?: Signer;
  /** Mender: the manifest signer (its artifacts carry a raw signature, no certificate). */
  manifestSigner?: ManifestSigner;
  aes?: AesKey;
  timestamp?: number;
  reproducible?: boolean;
  /**
   * Also compute the SHA-256 of the whole disk image (the slots included, holes as zeros) for the
   * report. Off by default: it is a second full pass over GiBs of mostly empty slots, and the
   * bmap already carries a SHA-256 for every range it maps, which bmaptool checks when flashing.
   */
  imageSha256?: boolean;
  reporter?: Reporter;
  /** Files published together with the outputs (convert's development keys), never before them. */
  extraOutputs?: { path: string; data: string; mode: number }[];
  /** The opened base of the planned delta artifact (plan.delta). */
  deltaBase?: unknown;
}

export interface OutputFile { path: string; size: number; sha256: string }

export interface ConvertResult {
  plan: ConvertPlan;
  version: string;
  outputs: { image: Omit<OutputFile, 'sha256'> & { sha256: string | null; allocated: number }; bmap: OutputFile & { mappedBytes: number }; bundle: OutputFile; report: string; deltaBundle?: OutputFile; zck?: Omit<OutputFile, 'sha256'> };
  /** The update artifact as the report shows it (.swu or .mender). */
  bundle: Pick<BuildResult, 'signed' | 'signer' | 'signatureAlgorithm' | 'entries' | 'manifest'>;
  /** The client's own build result (SWUpdate: BuildResult; Mender: MenderBuildResult). */
  artifactDetail: unknown;
  /** The delta bundle (--delta-from). */
  delta?: BuildResult;
  injected: { path: string; why: string; mode: string }[];
  boot: BootWiring;
  fstabChanges: string[];
  rootfs: { blockSize: number; features: string[]; uuid: string; sizeBefore: number; sizeAfter: number; used: number };
}

export async function applyPlan(o: ApplyOptions): Promise<ConvertResult> {
  const { plan, cfg } = o;
  const reporter = o.reporter ?? silentReporter;
  const A = byRole(plan, 'rootfs-a')!;
  const B = byRole(plan, 'rootfs-b')!;
  const data = byRole(plan, 'data')!;
  const names = { image: join(o.outDir, `${plan.name}.img`), bmap: join(o.outDir, `${plan.name}.bmap`), bundle: join(o.outDir, plan.artifact.file), report: join(o.outDir, `${plan.name}.json`) };

  await mkdir(o.outDir, { recursive: true }).catch((e) => { throw ioError('IO', o.outDir, e); });
  const work = makeTempDir(o.outDir, '.otapack-work-');
  const img = await AtomicFile.create(names.image);
  let inFh: FileHandle | undefined;
  let direct: DirectTarget | undefined;
  let extras: StagedFiles | undefined;
  try {
    const out = img.handle;
    await out.truncate(plan.imageSize);
    // the slots are written past the page cache where the file system allows (disk/direct-io.ts)
    direct = await openDirect(img.tempPath);
    inFh = await open(o.input, 'r');
    const inputMap = await dataMap(o.input);

    // ---- 1. raw boot loader bytes and kept partitions, byte for byte
    const copyHead = (): Promise<void> => stage('convert: copy raw + boot', async () => {
      for (const r of plan.rawCopy) await copyRange(inFh!, r.start, out, r.start, r.end - r.start, { sourceMap: inputMap });
      for (const p of plan.partitions.filter((x) => x.role === 'keep' || (x.role === 'boot' && x.copyFrom))) {
        const s = reporter.step(`copying partition ${p.number}`, p.size);
        await copyRange(inFh!, p.copyFrom!.start, out, p.start, p.copyFrom!.size, { onProgress: (d) => s.update(d), sourceMap: inputMap });
        s.done();
      }
    });
    await copyHead();

    // ---- 2. rootfs → slot A, checked, then grown in place
    const fsIn = plan.layout.rootFs;
    const imgPath = img.tempPath;
    const cp = reporter.step('copying the rootfs into slot A', fsIn.size);
    await stage('convert: copy rootfs -> A', () => copyRange(inFh!, A.copyFrom!.start, out, A.start, fsIn.size, { onProgress: (d) => cp.update(d), sourceMap: inputMap, direct }));
    cp.done();
    // no second e2fsck here: the copy is byte-identical to the input just checked clean
    // (e2fsck -fn), and resize2fs -f does not insist on a fresh check
    if (fsIn.size !== A.size) {
      reporter.step(`resizing the rootfs to ${formatSize(A.size, 'MiB')}`).done();
      // OTAPACK_RESIZE=copy goes straight to the fallback (for a resize2fs that misbehaves in place)
      const { fileIntact } = process.env.OTAPACK_RESIZE === 'copy'
        ? { fileIntact: false }
        : await stage('convert: resize2fs', () => resize(imgPath, A.start, A.size, fsIn.blockSize, 'the rootfs', o.timestamp));
      if (!fileIntact) {
        // this resize2fs cut the image to the filesystem's size (see fs/ext4.ts): start over and
        // grow the rootfs in a file of its own, then copy it into the slot
        await out.truncate(0);
        await out.truncate(plan.imageSize);
        await copyHead();
        await resizeInWorkFile(inFh!, inputMap, out, A, fsIn, work, reporter, o.timestamp, direct);
      }
    }
    await inFh.close();
    inFh = undefined;

    // ---- 3. the planned boot files on the boot partition
    reporter.step('wiring the A/B boot logic').done();
    const bp = byRole(plan, 'boot')!;
    await stage('convert: boot wiring', async () => {
      if (plan.boot.format) await mkfsFat(imgPath, bp.start, bp.size, plan.boot.format);
      for (const f of plan.boot.remove) await deleteFat(imgPath, bp.start, f);
      const g = plan.boot.installGrub;
      // boot.install-grub: a GRUB with the modules the A/B logic needs, in place of the image's
      const grub = g ? [{ path: g.path, data: await grubMkimage({ ...g, config: plan.boot.installGrubConfig }, work) }] : [];
      await writeFat(imgPath, bp.start, [...plan.boot.writes, ...grub], o.timestamp);
    });

    // ---- 4. device-side files into slot A (B is cloned from it)
    const entries: FsEntry[] = [
      ...plan.files.map((f) => ({ path: f.path, kind: f.kind, data: f.data, target: f.target, mode: f.mode, source: f.source, replaceEmptyDir: f.replaceEmptyDir })),
      ...plan.boot.rootfsFiles,
    ];
    reporter.step('installing device-side files').done();
    await stage('convert: inject (debugfs)', () => injectEntries(imgPath, A.start, entries, { what: 'the rootfs', timestamp: o.timestamp }));
    await stage('convert: e2fsck -fn', () => fsck(imgPath, A.start, 'the converted rootfs', false));
    const fsOut = (await probeExt4(imgPath, A.start))!;

    // ---- 5. data partition
    const seed = join(work, 'data-seed');
    await mkdir(seed, { recursive: true });
    const seedEntries: FsEntry[] = [
      ...(plan.clientDataFiles ?? []).map((f) => ({ path: f.path, kind: f.kind, data: f.data, target: f.target, mode: f.mode })),
      ...plan.dataFiles.map((f): FsEntry => ({ path: f.path, kind: 'file', source: f.source, mode: f.mode })),
    ];
    reporter.step('creating the data partition').done();
    await stage('convert: data partition', async () => {
      // the GPT partition GUID doubles as the filesystem UUID; on MBR one derived from the disk (no random bytes in the output)
      await mkfs(imgPath, data.start, data.size, { label: cfg.data.label, uuid: data.uuid ?? guidFromSeed(`otapack:data-fs:${plan.diskId}:${plan.name}`), timestamp: o.timestamp });
      if (seedEntries.length) await injectEntries(imgPath, data.start, seedEntries, { what: 'the data partition', timestamp: o.timestamp });
    });

    // ---- 6. partition table
    const bootCode = await readBootCode(o.input, plan);
    await writePartitionTable(out, {
      kind: plan.table, diskId: plan.diskId, imageSize: plan.imageSize, bootCode, gptEntriesLba: plan.gptEntriesLba,
      partitions: plan.partitions.map((p) => ({ start: p.start, size: p.size, type: p.type, name: p.name, bootable: p.bootable, uuid: p.uuid })),
    });

    // ---- 7. what the bmap maps: every region but slot B is final now, and B will equal A
    const mapped: [number, number][] = [];
    mapped.push([0, plan.table === 'gpt' ? 1024 : 512]);
    if (plan.table === 'gpt') mapped.push([plan.gptEntriesLba * 512, (plan.gptEntriesLba + 32) * 512]);
    if (plan.table === 'gpt') mapped.push([plan.imageSize - 33 * 512, plan.imageSize]);
    for (const r of plan.rawCopy) mapped.push([r.start, r.end]);
    await stage('convert: bmap ranges (dumpe2fs)', async () => {
      const [slotUsed, dataUsed] = await Promise.all([
        usedRanges(imgPath, A.start, fsOut),
        probeExt4(imgPath, data.start).then((d) => usedRanges(imgPath, data.start, d!)),
      ]);
      for (const [a, b] of slotUsed) mapped.push([A.start + a, A.start + b], [B.start + a, B.start + b]);
      for (const [a, b] of dataUsed) mapped.push([data.start + a, data.start + b]);
    });
    for (const p of plan.partitions.filter((x) => x.role === 'keep' || x.role === 'boot')) mapped.push([p.start, p.start + p.size]);
    const bmapPlan = planBmap(plan.imageSize, mapped, { copies: [{ from: A.start, to: B.start, length: A.size }] });
    const hashRanges = bmapHashRanges(bmapPlan);

    // ---- 8. slot A read once: written to slot B, streamed into the bundle and its bmap ranges
    // hashed from the same chunks; meanwhile a worker thread hashes the ranges outside the slots
    // (and, if asked, the whole image, slot B read as its twin A). Slot A is read past the page
    // cache like it was written, so no GiB of it has to pass through the kernel's cache.
    const inA = (r: [number, number]): boolean => r[0] >= A.start && r[1] <= A.start + A.size;
    const slotRanges = hashRanges.filter(inA);
    const restRanges = hashRanges.filter((r) => !inA(r));
    const pieces = o.imageSha256
      ? [{ from: 0, length: B.start }, { from: A.start, length: A.size }, { from: B.start + A.size, length: plan.imageSize - B.start - A.size }]
      : [{ from: 0, length: A.start }, { from: A.start + A.size, length: B.start - A.start - A.size }, { from: B.start + A.size, length: plan.imageSize - B.start - A.size }];
    const hashing = reporter.step(o.imageSha256 ? 'hashing the disk image' : 'hashing the bmap ranges', pieces.reduce((n, p) => n + p.length, 0));
    const imageMap = await stage('convert: data map (filefrag)', () => dataMap(imgPath));
    const digest = startDigest({ map: imageMap, path: imgPath, pieces, ranges: restRanges, image: !!o.imageSha256 }, (d) => hashing.update(d));
    let bundle: ArtifactResult;
    let digests: DigestResult;
    let slotSums: string[];
    try {
      let slotHasher: RangeHasher | undefined;
      bundle = await stage('convert: A -> B + bundle', () => buildSlotBundle(o, img, A, B, join(work, basename(names.bundle)), reporter, imageMap, direct, (h) => { slotHasher = h; }, slotRanges));
      slotSums = slotHasher!.result();
      digests = await stage('convert: image + bmap digests (rest)', () => digest.result);
    } catch (e) {
      await digest.cancel();
      throw e;
    }
    hashing.done();
    // ---- 8b. the delta bundle: slot A (final now) as a delta from the previous release
    let delta: BuildResult | undefined;
    if (plan.delta) {
      delta = await stage('convert: delta bundle', () => buildDeltaBundle(o, img.tempPath, A, join(work, plan.delta!.artifact.file), reporter));
    }
    const shaOf = new Map([...slotRanges.map(([a, b], i) => [`${a}-${b}`, slotSums[i]!] as const), ...restRanges.map(([a, b], i) => [`${a}-${b}`, digests.ranges[i]!] as const)]);
    const bmap = renderBmap(bmapPlan, (a, b) => shaOf.get(`${a}-${b}`)!);
    const imageSha = digests.sha256 ?? null;

    // ---- 9. outputs and report
    await stage('convert: fsync the image', () => out.sync());
    const allocated = (await out.stat()).blocks * 512;
    const bmapTmp = join(work, basename(names.bmap));
    await writeFile(bmapTmp, bmap.xml);
    const result: ConvertResult = {
      plan,
      version: cfg.version,
      outputs: {
        image: { path: names.image, size: plan.imageSize, sha256: imageSha, allocated },
        bmap: { path: names.bmap, size: Buffer.byteLength(bmap.xml), sha256: createHash('sha256').update(bmap.xml).digest('hex'), mappedBytes: bmap.mappedBytes },
        bundle: { path: names.bundle, size: bundle.size, sha256: bundle.sha256! },
        report: names.report,
        ...(delta ? { deltaBundle: { path: join(o.outDir, plan.delta!.artifact.file), size: delta.size, sha256: delta.sha256! } } : {}),
        ...(delta?.deltas?.[0]?.zchunk ? { zck: { path: join(o.outDir, plan.delta!.artifact.extraFiles![0]!), size: delta.deltas[0].zchunk.size } } : {}),
      },
      bundle: { signed: bundle.signed, signer: bundle.signer, signatureAlgorithm: bundle.signatureAlgorithm, entries: bundle.entries, manifest: bundle.manifest },
      artifactDetail: bundle.detail,
      delta,
      injected: [...plan.files.map((f) => ({ path: f.path, why: f.why, mode: f.kind === 'symlink' ? `-> ${f.target}` : `0${f.mode.toString(8)}` })), ...plan.boot.rootfsFiles.map((f) => ({ path: f.path, why: 'board boot files patched to boot the running slot', mode: `0${f.mode.toString(8)}` }))],
      boot: bootReport(plan.boot),
      fstabChanges: plan.fstabChanges,
      rootfs: { blockSize: fsOut.blockSize, features: fsOut.features, uuid: fsOut.uuid, sizeBefore: fsIn.size, sizeAfter: fsOut.size, used: (fsOut.blocks - fsOut.freeBlocks) * fsOut.blockSize },
    };
    // commit: image, bmap, bundle, then the report that describes them
    // (interruptions are held until all four are in place: never a mix of old and new)
    const reportText = JSON.stringify(reportJson(result), null, 2) + '\n';
    extras = await stageFiles(o.extraOutputs ?? []);
    await stage('convert: commit outputs', () => commitOutputs(async () => {
      await extras!.commit();
      await img.commit();
      await renameInto(bmapTmp, names.bmap);
      await renameInto(join(work, basename(names.bundle)), names.bundle);
      if (plan.delta) {
        for (const f of plan.delta.artifact.extraFiles ?? []) await renameInto(join(work, f), join(o.outDir, f));
        await renameInto(join(work, plan.delta.artifact.file), join(o.outDir, plan.delta.artifact.file));
      }
      await writeFileAtomic(names.report, reportText);
      syncDir(o.outDir);
    }));
    return result;
  } catch (e) {
    await extras?.abort();
    await img.abort();
    throw asWriteError(e, names.image);
  } finally {
    await inFh?.close().catch(() => {});
    await direct?.fh.close().catch(() => {});
    await rm(work, { recursive: true, force: true });
    unregisterTempDir(work);
  }
}

/** The fallback for a resize2fs that truncates the image: grow a copy of the rootfs alone, then copy it into slot A. */
async function resizeInWorkFile(inFh: FileHandle, inputMap: DataMap, out: FileHandle, A: PlannedPartition, fsIn: { size: number; blockSize: number }, work: string, reporter: Reporter, timestamp: number | undefined, direct: DirectTarget | undefined): Promise<void> {
  const rootTmp = join(work, 'rootfs.ext4');
  const rootFh = await open(rootTmp, 'w+');
  try {
    // as large as the result: resize2fs then neither extends nor truncates the file when growing
    await rootFh.truncate(Math.max(fsIn.size, A.size));
    await copyRange(inFh, A.copyFrom!.start, rootFh, 0, fsIn.size, { sourceMap: inputMap });
    await rootFh.sync();
    await resize(rootTmp, 0, A.size, fsIn.blockSize, 'the rootfs', timestamp);
    const cpA = reporter.step('copying the resized rootfs into slot A', A.size);
    await copyRange(rootFh, 0, out, A.start, A.size, { onProgress: (d) => cpA.update(d), sourceMap: await dataMap(rootTmp), direct });
    cpA.done();
  } finally {
    await rootFh.close();
    await rm(rootTmp, { force: true });
  }
}

async function renameInto(from: string, to: string): Promise<void> {
  const { rename } = await import('node:fs/promises');
  try {
    await rename(from, to);
  } catch (e) {
    throw ioError('IO', `cannot write ${to}`, e);
  }
}

async function readBootCode(input: string, plan: ConvertPlan): Promise<Buffer | undefined> {
  if (plan.table !== 'mbr') return undefined;
  const fh = await open(input, 'r');
  try {
    const b = Buffer.alloc(440);
    await fh.read(b, 0, 440, 0);
    return b;
  } finally {
    await fh.close();
  }
}

async function buildSlotBundle(o: ApplyOptions, img: AtomicFile, A: PlannedPartition, B: PlannedPartition, output: string, reporter: Reporter, sourceMap: DataMap, direct: DirectTarget | undefined, onHashed: (h: RangeHasher) => void, slotRanges: [number, number][]): Promise<ArtifactResult> {
  const source = {
    label: 'rootfs.ext4',
    size: A.size,
    // every pass over the source reads slot A, writes slot B and hashes the bmap ranges in A
    // (twice only with --reproducible; each complete pass hands over its digests)
    feed: async (write: (chunk: Buffer) => Promise<void>): Promise<void> => {
      const progress = reporter.step('slot A -> slot B + bundle', A.size);
      const hasher = new RangeHasher(slotRanges);
      let pos = A.start;
      const onChunk = (chunk: Buffer): Promise<void> => {
        hasher.update(pos, chunk);
        pos += chunk.length;
        return write(chunk);
      };
      await copyRange(img.handle, A.start, img.handle, B.start, A.size, { onChunk, onProgress: (d) => progress.update(d), sourceMap, direct, directSource: direct });
      onHashed(hasher);
      progress.done();
    },
  };
  return clientById(o.plan.client).buildArtifact({ plan: o.plan.artifact, source, output, signer: o.signer, manifestSigner: o.manifestSigner, aes: o.aes, mtime: o.timestamp, reproducible: o.reproducible, reporter });
}

/** The planned delta artifact, from slot A as it lies in the image (read once more, in order). */
async function buildDeltaBundle(o: ApplyOptions, image: string, A: PlannedPartition, output: string, reporter: Reporter): Promise<BuildResult> {
  const source = {
    label: 'rootfs.ext4',
    size: A.size,
    at: { path: image, offset: A.start },
    feed: async (): Promise<void> => { throw new OtapackError('INTERNAL', 'the delta reads slot A where it lies'); },
  };
  const r = await clientById(o.plan.client).buildArtifact({ plan: o.plan.delta!.artifact, source, output, signer: o.signer, aes: o.aes, mtime: o.timestamp, reproducible: o.reproducible, reporter, deltaBase: o.deltaBase });
  return r.detail as BuildResult;
}

/** The boot wiring as the report shows it (the bytes written stay out). */
export function bootReport(b: BootPlan): BootWiring {
  const { format: _format, remove: _remove, writes: _writes, installGrubConfig: _cfg, loaderWarnings: _lw, ...wiring } = b;
  return wiring;
}

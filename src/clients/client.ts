// The seam between convert and an update client (SWUpdate today; Mender and RAUC next). Convert
// knows a client only through this interface: the files the client needs on the device, the
// artifact it installs from (as pure data in the plan), and how that artifact is streamed out of
// slot A. A new client is one folder under src/clients/ and one entry in CLIENTS.
//
// Clients see the converted disk through DeviceLayout, not through convert's own types, so the
// dependency runs one way: convert -> clients.
import type { Signer } from '../crypto/signer.js';
import type { AesKey } from '../crypto/keys.js';
import type { Reporter } from '../util/reporter.js';
import type { CompressionId } from '../compress/compressor.js';
import type { BootScheme } from '../boot/scheme.js';
import type { ManifestSigner } from './mender/artifact.js';
import type { BuiltEntry } from './swupdate/bundle.js';

export type ClientId = 'swupdate' | 'mender';
export const CLIENT_IDS: readonly ClientId[] = ['swupdate', 'mender'];

/** A slot, the boot partition or the data partition of the converted disk. */
export interface LayoutPartition { number: number; device: string; partuuid: string; size: number }

/** What a client needs to know about the converted disk. */
export interface DeviceLayout {
  /** Output base name (<name>.img, <name>.swu …). */
  name: string;
  bootloader: 'uboot' | 'grub';
  /** The disk as the device names it (/dev/mmcblk0). */
  device: string;
  slotA: LayoutPartition;
  slotB: LayoutPartition;
  boot: LayoutPartition;
  data: LayoutPartition;
  /** Where the A/B boot state lives on the running device (fw_env.config target or grubenv). */
  envPath: string;
}

/** The settings of otapack.yaml a client reads (a subset of convert's config, as data). */
export interface ClientSettings {
  /** Config file, for messages. */
  file?: string;
  version: string;
  hardware: { board: string; revision: string; compatible: string[] };
  update: { compress: CompressionId; level?: number; encrypt: boolean; installAesKey: boolean; collection: string; certPurpose: 'emailProtection' | 'codeSigning' };
  bootlimit: number;
  /** Mender: the device type devices report and artifacts list, and the first artifact's name. */
  mender: { deviceType: string; artifactName: string };
  hawkbit?: { url: string; tenant: string; targetName?: string; gatewayToken?: string; targetToken?: string; pollingInterval: number; caFile?: string };
}

/** Key material that ends up on the device; absent where it is not known yet (inspect). */
export interface DeviceKeys {
  /** Planning without keys (inspect): key files are listed with what they will hold. */
  pending?: boolean;
  /** PEM text of the certificates devices trust ('' when there is none: unsigned, no --trust). */
  trustPem?: string;
  /** The AES key line in the client's key-file format (installed only when asked). */
  aesKeyLine?: string;
  /** Mender: the public key (PEM SubjectPublicKeyInfo) devices verify artifacts with; '' for none. */
  verifyKeyPem?: string;
}

/** A file, folder or link installed into both slots. */
export interface DeviceFile {
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  data?: string | Buffer;
  target?: string;
  mode: number;
  why: string;
  /** Never printed, never in a report. */
  secret?: boolean;
  /** Host file or directory to copy instead of `data`. */
  source?: string;
  /** The content is not known at planning time without keys (inspect): what it will hold. */
  pending?: string;
  /** A symlink that takes the place of an empty directory of the input (Mender's /var/lib/mender). */
  replaceEmptyDir?: boolean;
}

/** The artifact convert builds for the slots: pure data, printed by inspect. */
export interface ArtifactPlan {
  /** File name in the output folder. */
  file: string;
  /** Other files it comes with in the output folder (a zchunk delta's chunks). */
  extraFiles?: string[];
  /** What the client installs it with, in words (for inspect). */
  summary: string;
  /** The client's own spec (SWUpdate: the bundle spec), as data. */
  spec: unknown;
}

/** A stream of slot A's bytes: each call to feed() makes one complete pass. */
export interface SlotSource {
  label: string;
  size: number;
  feed(write: (chunk: Buffer) => Promise<void>): Promise<void>;
  /** Where the same bytes lie in a file (a delta reads the new image there). */
  at?: { path: string; offset: number };
}

/** The previous release a delta is made from, as read before planning (--delta-from). */
export interface DeltaBaseFacts {
  /** The file given (a .swu or a slot image). */
  origin: string;
  /** Its version, when it came out of a bundle. */
  version?: string;
  size: number;
  /** ext4 facts; undefined when the base is not ext4. */
  ext4?: { blockSize: number; rootOptions?: string[] };
  /** Bytes a device is guaranteed to hold (the blocks in use), and in how many ranges. */
  dataBytes: number;
  ranges: number;
}

/** A delta artifact convert is asked for: how, from what, fetched from where. */
export interface DeltaRequest {
  method: 'rdiff' | 'zchunk';
  /** zchunk: the URL devices fetch <name>.zck from. */
  url?: string;
  base: DeltaBaseFacts;
}

export interface ArtifactResult {
  size: number;
  sha256: string;
  signed: boolean;
  signer?: string;
  signatureAlgorithm?: string;
  /** The stored payloads as the report lists them (Mender: the payload file as its manifest lists it). */
  entries: BuiltEntry[];
  /** The signed manifest's text (sw-description, or the Mender manifest). */
  manifest: string;
  /** The client's own build report (SWUpdate: BuildResult), for the convert report. */
  detail: unknown;
}

/** A path of the input rootfs as read-input found it (symlinks followed); undefined when absent. */
export interface InputPath { type: 'file' | 'dir' | 'symlink' | 'other'; /** Entries of a directory (besides . and ..). */ entries?: number }

/** What the device's otapack-commit runs for this client (templates/device/otapack-commit). */
export interface CommitCommands {
  /** Makes the running trial slot permanent; its exit status is the verdict. */
  command: string;
  /** What that sets, in words for the script's header comment. */
  what: string;
  /** Shell lines (each ending in a newline, tab-indented) run when nothing is on trial; '' for none. */
  onIdle: string;
}

export interface UpdateClient {
  id: ClientId;
  /** Human name, for messages. */
  name: string;
  /** How its artifacts are signed: CMS with a certificate (SWUpdate) or a raw signature checked against a public key (Mender). */
  signing: 'cms' | 'raw';
  /** Paths of the input rootfs read-input looks up for this client (its binary, its state directory). */
  inputPaths(bootloader: 'uboot' | 'grub'): string[];
  /**
   * Refuses (INPUT, at planning time) an input that cannot run this client, naming what to add:
   * the client binary comes from the image, otapack does not install it.
   */
  checkInput(paths: Record<string, InputPath | undefined>, bootloader: 'uboot' | 'grub', image: string): void;
  /** How otapack-commit commits a trial slot. */
  commit: CommitCommands;
  /** Files the data partition is created with (the client's state kept across slots). */
  dataFiles(layout: DeviceLayout, settings: ClientSettings): DeviceFile[];
  /** The boot-state variables it reads and writes; the A/B boot logic is generated from them. */
  scheme: BootScheme;
  /** Files this client needs on the device: its configuration, identity, trust anchor, its update command. */
  deviceFiles(layout: DeviceLayout, settings: ClientSettings, keys: DeviceKeys): DeviceFile[];
  /** The artifact that installs slot A's image into either slot. */
  planArtifact(layout: DeviceLayout, settings: ClientSettings): ArtifactPlan;
  /** The artifact that installs slot A's image as a delta from a previous release (clients that have one). */
  planDeltaArtifact?(layout: DeviceLayout, settings: ClientSettings, delta: DeltaRequest): ArtifactPlan;
  /**
   * Streams `source` into the planned artifact at `output` (its extra files next to it).
   * `deltaBase` is the opened base of a delta artifact, as the client's own reader returned it.
   */
  buildArtifact(o: { plan: ArtifactPlan; source: SlotSource; output: string; signer?: Signer; manifestSigner?: ManifestSigner; aes?: AesKey; mtime?: number; reproducible?: boolean; reporter?: Reporter; deltaBase?: unknown }): Promise<ArtifactResult>;
}

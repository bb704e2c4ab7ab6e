// Everything the plan needs from the input image, read once and read-only, before any byte of
// output exists: the rootfs checked (e2fsck -fn), its fstab, and the board's own
// boot files (the boot script, extlinux.conf or grub.cfg that the A/B logic wraps). The plan is
// then computed from these facts alone (plan.ts, boot-plan.ts).
import { fsck, listDir, readFile as readExt4, resolvePath, statPaths, type StatCache } from '../fs/ext4.js';
import type { InputPath } from '../clients/client.js';
import { readFat } from '../fs/fat.js';
import type { DetectedLayout } from './detect.js';
import type { LoaderFacts } from '../boot/loader.js';
import { readHostGrub, readLoader, type HostGrub } from './read-loader.js';

/** The board boot file the A/B logic wraps, as read from the input. */
export type BoardFiles =
  | { kind: 'uboot-script'; where: 'boot' | 'rootfs'; path: string; image: Buffer | undefined; cmdSibling?: string }
  | { kind: 'extlinux' | 'grub'; where: 'boot' | 'rootfs'; path: string; text: string }
  | { kind: 'kernel-only' };

export interface InputFacts {
  layout: DetectedLayout;
  /** /etc/fstab of the rootfs, when it has one. */
  fstab?: string;
  /** /etc/inittab (BusyBox/SysV init), when it has one: a read-only root must not be remounted rw there. */
  inittab?: string;
  board: BoardFiles;
  /** The paths the update client asked about (its binary, its state directory), as found. */
  clientPaths: Record<string, InputPath | undefined>;
  /** The boot loader the image boots with: what it can do (read-loader.ts). */
  loader: LoaderFacts;
  /** boot.install-grub: Debian's GRUB modules on this machine. */
  hostGrub?: HostGrub;
}

export async function readInput(image: string, layout: DetectedLayout, o: { clientPaths?: string[]; loaderBinary?: string; installGrub?: boolean } = {}): Promise<InputFacts> {
  const root = layout.root.start;
  const what = 'the rootfs';
  // the input must be sound before anything is planned from it (read-only check: errors refuse
  // the conversion rather than being repaired behind the user's back)
  await fsck(image, root, `${layout.image}: rootfs in partition ${layout.root.number}`, false);
  const b = layout.board;
  // every path read below, stat'ed in one debugfs run (each run opens the filesystem anew)
  const cmdSibling = b.kind === 'uboot-script' && b.where !== 'boot' && b.path.endsWith('.scr') ? b.path.replace(/\.scr$/, '.cmd') : undefined;
  const stats: StatCache = await statPaths(image, root, ['/etc/fstab', '/etc/inittab', ...(cmdSibling ? [cmdSibling] : []), ...(o.clientPaths ?? [])], what);
  const fstabPath = await resolvePath(image, root, '/etc/fstab', what, stats);
  const fstab = fstabPath?.stat.type === 'file' ? (await readExt4(image, root, fstabPath.path, what)).toString('utf8') : undefined;
  const inittabPath = await resolvePath(image, root, '/etc/inittab', what, stats);
  const inittab = inittabPath?.stat.type === 'file' ? (await readExt4(image, root, inittabPath.path, what)).toString('utf8') : undefined;
  const fromBoot = (path: string): Promise<Buffer | undefined> => readFat(image, layout.boot!.start, path);
  const fromRoot = (path: string): Promise<Buffer> => readExt4(image, root, path, what);
  let board: BoardFiles;
  if (b.kind === 'kernel-only') {
    board = { kind: 'kernel-only' };
  } else if (b.kind === 'uboot-script') {
    if (b.where === 'boot') {
      board = { kind: b.kind, where: b.where, path: b.path, image: await fromBoot(b.path) };
    } else {
      const cmd = b.path.replace(/\.scr$/, '.cmd');
      const hasCmd = cmd !== b.path && (await resolvePath(image, root, cmd, what, stats))?.stat.type === 'file';
      board = { kind: b.kind, where: b.where, path: b.path, image: await fromRoot(b.path), cmdSibling: hasCmd ? cmd : undefined };
    }
  } else {
    const bytes = b.where === 'boot' ? (await fromBoot(b.path)) ?? Buffer.alloc(0) : await fromRoot(b.path);
    board = { kind: b.kind, where: b.where, path: b.path, text: bytes.toString('utf8') };
  }
  const clientPaths: Record<string, InputPath | undefined> = {};
  for (const p of o.clientPaths ?? []) {
    const r = await resolvePath(image, root, p, what, stats);
    clientPaths[p] = r ? { type: r.stat.type, ...(r.stat.type === 'dir' ? { entries: (await listDir(image, root, r.path, what)).filter((e) => e.name !== '.' && e.name !== '..').length } : {}) } : undefined;
  }
  const loader = await readLoader(image, layout, { loaderBinary: o.loaderBinary });
  const hostGrub = o.installGrub && layout.bootloader === 'grub' ? await readHostGrub(loader.kind === 'grub' ? loader.image.platform : 'x86_64-efi') : undefined;
  return { layout, fstab, inittab, board, clientPaths, loader, hostGrub };
}

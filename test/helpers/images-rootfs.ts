// Root filesystem trees for the disk-image fixtures: a Buildroot (sysvinit + busybox) tree and an
// Armbian-like (Debian, merged /usr, systemd layout) tree, both carrying the awkward entries a
// tree copy must keep: hard links, xattrs (incl. a file capability), a FIFO, device nodes, a
// sparse file, setuid, non-root owners, names with spaces and UTF-8, and symlinks that loop.
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Tree, fakeArm64Image, fdt, patternBlob, prng } from './images-lib.js';

/** Host busybox (busybox-static on Debian); a stand-in blob if it is absent. */
export function busyboxBinary(override?: string): { data: Buffer; applets: string[]; real: boolean } {
  const path = override ?? ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
  if (path) {
    const data = fs.readFileSync(path);
    return { data, applets: override ? FALLBACK_APPLETS : hostApplets(path) ?? FALLBACK_APPLETS, real: true };
  }
  return { data: patternBlob('busybox', 900 << 10), applets: FALLBACK_APPLETS, real: false };
}

let appletCache: string[] | undefined;
function hostApplets(path: string): string[] | undefined {
  if (appletCache) return appletCache;
  try {
    const out = execFileSync(path, ['--list-full'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    appletCache = out.split('\n').map((l) => l.trim()).filter(Boolean).sort();
    return appletCache;
  } catch { return undefined; }
}

// Used when the host has no busybox, or for a foreign-arch busybox we cannot run.
const FALLBACK_APPLETS = [
  'bin/ash', 'bin/cat', 'bin/chmod', 'bin/cp', 'bin/date', 'bin/dd', 'bin/df', 'bin/dmesg', 'bin/echo', 'bin/grep',
  'bin/hostname', 'bin/kill', 'bin/ln', 'bin/login', 'bin/ls', 'bin/mkdir', 'bin/mknod', 'bin/mount', 'bin/mv',
  'bin/ping', 'bin/ps', 'bin/pwd', 'bin/rm', 'bin/sed', 'bin/sh', 'bin/sleep', 'bin/stty', 'bin/sync', 'bin/touch',
  'bin/umount', 'bin/uname', 'bin/vi', 'sbin/getty', 'sbin/halt', 'sbin/ifconfig', 'sbin/init', 'sbin/klogd',
  'sbin/mdev', 'sbin/poweroff', 'sbin/reboot', 'sbin/route', 'sbin/switch_root', 'sbin/syslogd', 'usr/bin/[',
  'usr/bin/[[', 'usr/bin/awk', 'usr/bin/basename', 'usr/bin/cut', 'usr/bin/env', 'usr/bin/find', 'usr/bin/head',
  'usr/bin/md5sum', 'usr/bin/sha256sum', 'usr/bin/tail', 'usr/bin/test', 'usr/bin/tr', 'usr/bin/wc', 'usr/bin/xargs',
  'usr/sbin/chroot', 'usr/sbin/crond', 'usr/sbin/fdisk',
];

/** Relative link from an applet path to the busybox binary (what busybox's installer writes). */
function relTo(from: string, to: string): string {
  return posix.relative(posix.dirname('/' + from), '/' + to) || posix.basename(to);
}

/** VFS_CAP_REVISION_2 with CAP_NET_RAW (13) permitted+effective: `setcap cap_net_raw+ep`. */
export const CAP_NET_RAW = Buffer.from([0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

export interface EdgeCaseInfo {
  hardlinks: string[][]; fifo: string; sparse: string; blob: string; setuid: string; spaces: string; utf8: string;
  emptyDir: string; loops: string[]; capability: string; userXattr: string; owned: string;
}

/** The awkward entries, shared by every rootfs flavour. `usr` is the prefix for /usr paths. */
export function addEdgeCases(t: Tree, flavour: string, o: { devices: boolean }): EdgeCaseInfo {
  // e2fsprogs ships mke2fs and mkfs.ext{2,3,4} as one inode with four names.
  t.file('/usr/sbin/mke2fs', patternBlob(`${flavour}:mke2fs`, 120 << 10), 0o755);
  for (const n of ['mkfs.ext2', 'mkfs.ext3', 'mkfs.ext4']) t.hardlink(`/usr/sbin/${n}`, '/usr/sbin/mke2fs');
  // iputils' clockdiff carries a file capability; a user.* xattr on a config file.
  t.file('/usr/bin/clockdiff', patternBlob(`${flavour}:clockdiff`, 30 << 10), 0o755).xattr('/usr/bin/clockdiff', 'security.capability', CAP_NET_RAW);
  t.file('/etc/otapack/tagged.conf', 'tagged = yes\n').xattr('/etc/otapack/tagged.conf', 'user.otapack.origin', 'fixture-builder');
  // setuid root helper, like dbus' launch helper.
  t.file('/usr/libexec/dbus-daemon-launch-helper', patternBlob(`${flavour}:dbus-helper`, 40 << 10), 0o4750);
  // A FIFO (sysvinit's initctl lives in /run; one in the rootfs is what image builders leave).
  t.fifo('/var/lib/otapack/control.fifo');
  // Sparse: 8 MiB apparent, 4 KiB of data at 1 MiB and 4 KiB at the very end.
  t.sparse('/var/lib/otapack/sparse.img', 8 << 20, [
    { offset: 1 << 20, data: prng(`${flavour}:sparse1`, 4096) },
    { offset: (8 << 20) - 4096, data: prng(`${flavour}:sparse2`, 4096) },
  ]);
  // A large-ish incompressible blob (firmware).
  t.file('/usr/lib/firmware/otapack/fw-blob.bin', patternBlob(`${flavour}:firmware`, 3 << 20));
  // Names a shell or a parser can trip over.
  t.file('/usr/share/doc/otapack/read me (1).txt', 'a file name with spaces and parentheses\n');
  t.file('/usr/share/doc/otapack/café-ñ.txt', 'a UTF-8 file name\n');
  t.file(`/usr/share/doc/otapack/${'long-name-'.repeat(24)}end.txt`, 'a 247-byte file name\n');
  t.file('/usr/share/doc/otapack/.hidden', 'dot file\n');
  t.dir('/usr/share/otapack/empty');
  // Symlinks: loops, self, dangling, absolute, relative, directory, going up, long target (> 60 bytes: not a fast symlink).
  const L = '/usr/share/otapack/links';
  t.symlink(`${L}/loop-a`, 'loop-b').symlink(`${L}/loop-b`, 'loop-a').symlink(`${L}/self`, 'self')
    .symlink(`${L}/dangling`, '/nonexistent/target').symlink(`${L}/abs-etc`, '/etc')
    .symlink(`${L}/rel-etc`, '../../../../etc').symlink(`${L}/up`, '..')
    .symlink(`${L}/long-target`, `../../../lib/firmware/otapack/${'x'.repeat(40)}/../fw-blob.bin`)
    .symlink(`${L}/to-blob`, '../../../lib/firmware/otapack/fw-blob.bin');
  // A non-root owner.
  t.dir('/home/user', 0o750).owner('/home/user', 1000, 1000);
  t.file('/home/user/.profile', 'export PS1="$ "\n').owner('/home/user/.profile', 1000, 1000);
  if (o.devices) {
    t.device('/dev/console', 'c', 5, 1, 0o600);
    t.device('/dev/null', 'c', 1, 3, 0o666);
  }
  return {
    hardlinks: [['/usr/sbin/mke2fs', '/usr/sbin/mkfs.ext2', '/usr/sbin/mkfs.ext3', '/usr/sbin/mkfs.ext4']],
    fifo: '/var/lib/otapack/control.fifo', sparse: '/var/lib/otapack/sparse.img',
    blob: '/usr/lib/firmware/otapack/fw-blob.bin', setuid: '/usr/libexec/dbus-daemon-launch-helper',
    spaces: '/usr/share/doc/otapack/read me (1).txt', utf8: '/usr/share/doc/otapack/café-ñ.txt',
    emptyDir: '/usr/share/otapack/empty', loops: [`${L}/loop-a`, `${L}/loop-b`, `${L}/self`, `${L}/up`],
    capability: '/usr/bin/clockdiff', userXattr: '/etc/otapack/tagged.conf', owned: '/home/user',
  };
}

export function addExtra(t: Tree, extra: Record<string, string> | undefined): void {
  for (const [p, c] of Object.entries(extra ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    t.file(p, c, c.startsWith('#!') || /\/init\.d\//.test(p) ? 0o755 : 0o644);
  }
}

// ---------------------------------------------------------------- Buildroot

export interface BuildrootTreeOptions {
  hostname: string; fstab: string; busybox?: string; arch: 'aarch64' | 'x86_64';
  kernelInRootfs?: { path: string; data: Buffer; initrd?: { path: string; data: Buffer } };
  extraDirs?: string[]; devices: boolean; extra?: Record<string, string>;
}

/** A Buildroot 2024.02-shaped target tree (skeleton-init-sysv, busybox init, no merged /usr). */
export function buildrootTree(root: string, o: BuildrootTreeOptions): { tree: Tree; edge: EdgeCaseInfo; busyboxReal: boolean } {
  const t = new Tree(root);
  for (const d of ['bin', 'sbin', 'lib', 'usr/bin', 'usr/sbin', 'usr/lib', 'usr/share', 'dev', 'proc', 'sys', 'run',
    'mnt', 'opt', 'media', 'etc/init.d', 'etc/network/if-up.d', 'etc/network/if-pre-up.d', 'var/lib/misc', 'var/cache', 'var/spool']) t.dir(d);
  t.dir('/tmp', 0o1777).dir('/root', 0o700);
  for (const d of o.extraDirs ?? []) t.dir(d);
  // skeleton symlinks
  t.symlink('/lib64', 'lib').symlink('/usr/lib64', 'lib');
  t.symlink('/var/run', '../run').symlink('/var/log', '../tmp').symlink('/var/tmp', '../tmp').symlink('/var/lock', '../tmp');
  t.symlink('/etc/mtab', '../proc/self/mounts').symlink('/etc/resolv.conf', '../tmp/resolv.conf');
  // busybox + applets
  const bb = busyboxBinary(o.busybox);
  t.file('/bin/busybox', bb.data, 0o755);
  for (const a of bb.applets) if (a !== 'bin/busybox' && a !== 'linuxrc') t.symlink('/' + a, relTo(a, 'bin/busybox'));
  // C library stand-ins
  const ld = o.arch === 'aarch64' ? 'ld-linux-aarch64.so.1' : 'ld-linux-x86-64.so.2';
  t.file(`/lib/${ld}`, patternBlob(`br:${ld}`, 180 << 10), 0o755);
  t.file('/lib/libc.so.6', patternBlob('br:libc', 600 << 10), 0o755);
  t.file('/usr/lib/libz.so.1.3', patternBlob('br:libz', 90 << 10), 0o755);
  t.symlink('/usr/lib/libz.so.1', 'libz.so.1.3').symlink('/usr/lib/libz.so', 'libz.so.1.3');

  t.file('/etc/fstab', o.fstab);
  t.file('/etc/inittab', BUILDROOT_INITTAB);
  t.file('/etc/init.d/rcS', RCS, 0o755).file('/etc/init.d/rcK', RCK, 0o755);
  t.file('/etc/init.d/S01syslogd', initScript('syslogd', '/sbin/syslogd', '-n'), 0o755);
  t.file('/etc/init.d/S02klogd', initScript('klogd', '/sbin/klogd', '-n'), 0o755);
  t.file('/etc/init.d/S40network', NETWORK_INIT, 0o755);
  t.file('/etc/os-release', 'NAME=Buildroot\nVERSION=2024.02.1\nID=buildroot\nVERSION_ID=2024.02.1\nPRETTY_NAME="Buildroot 2024.02.1"\n');
  t.file('/etc/hostname', `${o.hostname}\n`);
  t.file('/etc/hosts', `127.0.0.1\tlocalhost\n127.0.1.1\t${o.hostname}\n`);
  t.file('/etc/issue', 'Welcome to Buildroot\n');
  t.file('/etc/profile', 'export PATH="/bin:/sbin:/usr/bin:/usr/sbin"\nexport PAGER=/bin/more\nexport EDITOR=/bin/vi\n[ "$(id -u)" -eq 0 ] && export PS1="# " || export PS1="$ "\nfor i in /etc/profile.d/*.sh ; do [ -r "$i" ] && . $i; done\n');
  t.dir('/etc/profile.d');
  t.file('/etc/shells', '/bin/sh\n/bin/ash\n');
  t.file('/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nbin:x:2:2:bin:/bin:/bin/false\nsys:x:3:3:sys:/dev:/bin/false\nsync:x:4:100:sync:/bin:/bin/sync\nmail:x:8:8:mail:/var/spool/mail:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nuser:x:1000:1000:Linux User:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n');
  t.file('/etc/group', 'root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nwheel:x:10:root\nutmp:x:43:\nstaff:x:50:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n');
  t.file('/etc/shadow', 'root::19675:0:99999:7:::\ndaemon:*:::::::\nbin:*:::::::\nsys:*:::::::\nsync:*:::::::\nmail:*:::::::\nwww-data:*:::::::\nuser:*:::::::\nnobody:*:::::::\n', 0o600);
  t.file('/etc/network/interfaces', 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n');
  if (o.kernelInRootfs) {
    t.file(o.kernelInRootfs.path, o.kernelInRootfs.data);
    if (o.kernelInRootfs.initrd) t.file(o.kernelInRootfs.initrd.path, o.kernelInRootfs.initrd.data);
  }
  const edge = addEdgeCases(t, 'buildroot', { devices: o.devices });
  addExtra(t, o.extra);
  return { tree: t, edge, busyboxReal: bb.real };
}

// ---------------------------------------------------------------- Armbian

export interface ArmbianTreeOptions {
  fsUuid: string; board: string; boardName: string; family: string; kernelVersion: string; fdtfile: string;
  overlayPrefix: string; kernel?: Buffer; initrd: Buffer; uInitrd: Buffer; bootCmd: string; bootScr: Buffer;
  busybox?: string; devices: boolean; extra?: Record<string, string>; console: string;
}

/** An Armbian 24.x (Debian bookworm) tree: merged /usr, /boot full of symlinks, UUID= everywhere. */
export function armbianTree(root: string, o: ArmbianTreeOptions): { tree: Tree; edge: EdgeCaseInfo; bootSymlinks: Record<string, string> } {
  const t = new Tree(root);
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib/aarch64-linux-gnu', 'usr/share', 'dev', 'proc', 'sys', 'run', 'mnt',
    'media', 'srv', 'opt', 'boot', 'etc/default', 'etc/systemd/system/multi-user.target.wants', 'var/lib/dpkg', 'var/log',
    'var/cache/apt', 'var/tmp', 'home']) t.dir(d);
  t.dir('/tmp', 0o1777).dir('/root', 0o700).dir('/var/tmp', 0o1777);
  // merged /usr
  t.symlink('/bin', 'usr/bin').symlink('/sbin', 'usr/sbin').symlink('/lib', 'usr/lib');
  t.symlink('/var/run', '/run').symlink('/var/lock', '/run/lock');
  t.symlink('/etc/mtab', '../proc/self/mounts');
  const bb = busyboxBinary(o.busybox);
  t.file('/usr/bin/busybox', bb.data, 0o755);
  for (const a of bb.applets) {
    const dest = a.replace(/^(usr\/)?/, 'usr/');
    if (dest === 'usr/bin/busybox' || dest === 'usr/sbin/init' || a === 'linuxrc') continue; // systemd owns /sbin/init
    t.symlink('/' + dest, relTo(dest, 'usr/bin/busybox'));
  }
  t.file('/usr/lib/aarch64-linux-gnu/libc.so.6', patternBlob('armbian:libc', 700 << 10), 0o755);
  t.file('/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1', patternBlob('armbian:ld', 200 << 10), 0o755);
  t.symlink('/usr/lib/ld-linux-aarch64.so.1', 'aarch64-linux-gnu/ld-linux-aarch64.so.1');
  // systemd-style unit enabled through an absolute link that crosses the /lib symlink
  t.file('/usr/lib/systemd/system/armbian-hardware-monitor.service', '[Unit]\nDescription=Armbian hardware monitoring\n\n[Service]\nType=oneshot\nExecStart=/usr/lib/armbian/armbian-hardware-monitor start\nRemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n');
  t.symlink('/etc/systemd/system/multi-user.target.wants/armbian-hardware-monitor.service', '/lib/systemd/system/armbian-hardware-monitor.service');
  t.symlink('/etc/systemd/system/default.target', '/lib/systemd/system/multi-user.target');
  t.symlink('/usr/sbin/init', '/lib/systemd/systemd');
  t.file('/usr/lib/systemd/systemd', patternBlob('armbian:systemd', 90 << 10), 0o755);

  t.file('/etc/fstab', `UUID=${o.fsUuid} / ext4 defaults,noatime,commit=600,errors=remount-ro 0 1\ntmpfs /tmp tmpfs defaults,nosuid 0 0\n`);
  t.file('/etc/os-release', 'PRETTY_NAME="Armbian 24.2.1 bookworm"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.armbian.com"\nSUPPORT_URL="https://forum.armbian.com"\nBUG_REPORT_URL="https://www.armbian.com/bugs"\nARMBIAN_PRETTY_NAME="Armbian 24.2.1 bookworm"\n');
  t.file('/etc/armbian-release', `# PLEASE DO NOT EDIT THIS FILE\nBOARD=${o.board}\nBOARD_NAME="${o.boardName}"\nBOARDFAMILY=${o.family}\nBUILD_REPOSITORY_URL=\nVERSION=24.2.1\nLINUXFAMILY=${o.family}\nARCH=arm64\nIMAGE_TYPE=stable\nBOARD_TYPE=conf\nINITRD_ARCH=arm64\nKERNEL_IMAGE_TYPE=Image\nBRANCH=current\n`);
  t.file('/etc/hostname', `${o.board}\n`);
  t.file('/etc/hosts', `127.0.0.1   localhost\n127.0.1.1   ${o.board}\n::1         localhost ip6-localhost ip6-loopback\n`);
  t.file('/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nsystemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\nuser:x:1000:1000:Armbian user:/home/user:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  t.file('/etc/group', 'root:x:0:\ndaemon:x:1:\ntty:x:5:\ndisk:x:6:\nsudo:x:27:user\nusers:x:100:user\nsystemd-network:x:998:\nuser:x:1000:\nnogroup:x:65534:\n');
  t.file('/etc/shadow', 'root:$y$j9T$fixture$fixture:19770:0:99999:7:::\ndaemon:*:19770:0:99999:7:::\nsystemd-network:!*:19770::::::\nuser:!:19770:0:99999:7:::\nnobody:*:19770:0:99999:7:::\n', 0o640);
  t.owner('/etc/shadow', 0, 42);
  t.file('/etc/default/armbian-ramlog', 'ENABLED=true\nSIZE=50M\nUSE_RSYNC=true\n');
  t.file('/var/lib/dpkg/status', 'Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: arm64\n\n');

  // /boot: versioned files and the symlinks U-Boot's ext4 driver follows.
  const v = o.kernelVersion;
  const dtbDir = `dtb-${v}`;
  t.file('/boot/boot.cmd', o.bootCmd);
  t.file('/boot/boot.scr', o.bootScr);
  t.file('/boot/armbianEnv.txt', armbianEnv(o));
  t.file('/boot/armbian_first_run.txt.template', '#-----------------------------------------------------------------\n# Armbian first run configuration\n#-----------------------------------------------------------------\nFR_general_delete_this_file_after_completion=1\nFR_net_change_defaults=0\n');
  t.file('/boot/boot.bmp', patternBlob('armbian:bootlogo', 230 << 10));
  t.file(`/boot/config-${v}`, `# Linux/arm64 ${v} Kernel Configuration\nCONFIG_ARM64=y\nCONFIG_EXT4_FS=y\nCONFIG_BLK_DEV_INITRD=y\n`);
  t.file(`/boot/System.map-${v}`, 'ffff800080000000 T _text\nffff800080010000 T _stext\n');
  t.file(`/boot/vmlinuz-${v}`, o.kernel ?? fakeArm64Image(`armbian-${v}`));
  t.file(`/boot/initrd.img-${v}`, o.initrd);
  t.file(`/boot/uInitrd-${v}`, o.uInitrd);
  const [vendor, dtbName] = o.fdtfile.includes('/') ? o.fdtfile.split('/') as [string, string] : ['', o.fdtfile];
  const dtbBase = vendor ? `/boot/${dtbDir}/${vendor}` : `/boot/${dtbDir}`;
  t.file(`${dtbBase}/${dtbName}`, boardDtb(o.boardName, dtbName.replace(/\.dtb$/, '')));
  t.file(`${dtbBase}/overlay/${o.overlayPrefix}-i2c7.dtbo`, overlayDtbo('i2c7'));
  t.file(`${dtbBase}/overlay/${o.overlayPrefix}-uart4.dtbo`, overlayDtbo('uart4'));
  t.file(`${dtbBase}/overlay/README.${o.overlayPrefix}-overlays`, 'Overlays for this SoC; list them in /boot/armbianEnv.txt as overlays=i2c7 uart4\n');
  const bootSymlinks: Record<string, string> = { '/boot/Image': `vmlinuz-${v}`, '/boot/uInitrd': `uInitrd-${v}`, '/boot/dtb': dtbDir };
  for (const [p, target] of Object.entries(bootSymlinks)) t.symlink(p, target);
  const edge = addEdgeCases(t, 'armbian', { devices: o.devices });
  addExtra(t, o.extra);
  return { tree: t, edge, bootSymlinks };
}

export function armbianEnv(o: { fsUuid: string; fdtfile: string; overlayPrefix: string; console: string }): string {
  return `verbosity=1\nbootlogo=false\nconsole=${o.console}\noverlay_prefix=${o.overlayPrefix}\nfdtfile=${o.fdtfile}\nrootdev=UUID=${o.fsUuid}\nrootfstype=ext4\noverlays=\nusbstoragequirks=0x2537:0x1066:u,0x2537:0x1068:u\n`;
}

/** Armbian-style boot.cmd (written for these fixtures in the shape of Armbian's rockchip64/sunxi scripts). */
export function armbianBootCmd(o: { loadAddr: string; consoleSerial: string; overlayDir: string }): string {
  const $ = '$';
  return `# Armbian-style U-Boot script (otapack fixture).
# Settings live in /boot/armbianEnv.txt; this file is compiled to boot.scr with
#   mkimage -C none -A arm -T script -d /boot/boot.cmd /boot/boot.scr

setenv load_addr "${o.loadAddr}"
setenv rootdev "/dev/mmcblk0p1"
setenv rootfstype "ext4"
setenv verbosity "1"
setenv console "both"
setenv overlay_error "false"

echo "boot.scr from ${$}{devtype} ${$}{devnum}, prefix ${$}{prefix}"

# armbianEnv.txt overrides the defaults above (rootdev=UUID=..., fdtfile=..., overlays=...)
if test -e ${$}{devtype} ${$}{devnum} ${$}{prefix}armbianEnv.txt; then
	load ${$}{devtype} ${$}{devnum} ${$}{load_addr} ${$}{prefix}armbianEnv.txt
	env import -t ${$}{load_addr} ${$}{filesize}
fi

setenv consoleargs ""
if test "${$}{console}" = "serial" || test "${$}{console}" = "both"; then setenv consoleargs "console=${o.consoleSerial}"; fi
if test "${$}{console}" = "display" || test "${$}{console}" = "both"; then setenv consoleargs "${$}{consoleargs} console=tty1"; fi

if test "${$}{devtype}" = "mmc"; then part uuid mmc ${$}{devnum}:1 partuuid; fi

setenv bootargs "root=${$}{rootdev} rootwait rootfstype=${$}{rootfstype} ${$}{consoleargs} consoleblank=0 loglevel=${$}{verbosity} ubootpart=${$}{partuuid} usb-storage.quirks=${$}{usbstoragequirks} ${$}{extraargs} ${$}{extraboardargs}"

load ${$}{devtype} ${$}{devnum} ${$}{ramdisk_addr_r} ${$}{prefix}uInitrd
load ${$}{devtype} ${$}{devnum} ${$}{kernel_addr_r} ${$}{prefix}Image
load ${$}{devtype} ${$}{devnum} ${$}{fdt_addr_r} ${$}{prefix}dtb/${$}{fdtfile}

fdt addr ${$}{fdt_addr_r}
fdt resize 65536
for overlay_file in ${$}{overlays}; do
	if load ${$}{devtype} ${$}{devnum} ${$}{load_addr} ${$}{prefix}dtb/${o.overlayDir}/overlay/${$}{overlay_prefix}-${$}{overlay_file}.dtbo; then
		echo "applying overlay ${$}{overlay_file}"
		fdt apply ${$}{load_addr} || setenv overlay_error "true"
	fi
done
if test "${$}{overlay_error}" = "true"; then
	echo "overlay failed, reloading the plain device tree"
	load ${$}{devtype} ${$}{devnum} ${$}{fdt_addr_r} ${$}{prefix}dtb/${$}{fdtfile}
fi

booti ${$}{kernel_addr_r} ${$}{ramdisk_addr_r} ${$}{fdt_addr_r}
`;
}

/** A tiny but valid DTB with the properties tools read first. */
export function boardDtb(model: string, name: string): Buffer {
  return fdt({
    props: { compatible: [`fixture,${name}`, 'arm,fixture'], model, '#address-cells': [2], '#size-cells': [2] },
    children: {
      chosen: { props: { 'stdout-path': 'serial0:115200n8' } },
      memory: { props: { device_type: 'memory', reg: [0, 0x40000000, 0, 0x40000000] } },
      aliases: { props: { serial0: '/serial@ff1a0000', mmc0: '/mmc@fe320000' } },
    },
  });
}

export function overlayDtbo(name: string): Buffer {
  return fdt({
    props: { compatible: 'rockchip,rk3399' },
    children: { 'fragment@0': { props: { target: [0xffffffff] }, children: { __overlay__: { props: { status: 'okay', name } } } } },
  });
}

// ---------------------------------------------------------------- Buildroot text files

// Written for these fixtures in the shape Buildroot's skeleton-init-sysv gives a target.
const BUILDROOT_INITTAB = `# /etc/inittab for busybox init (no runlevels)
# <id>:<runlevels>:<action>:<process>

::sysinit:/bin/mount -t proc proc /proc
::sysinit:/bin/mount -o remount,rw /
::sysinit:/bin/mkdir -p /dev/pts /dev/shm /run/lock/subsys
::sysinit:/bin/mount -a
::sysinit:/sbin/swapon -a
null::sysinit:/bin/ln -sf /proc/self/fd /dev/fd
::sysinit:/bin/hostname -F /etc/hostname
::sysinit:/etc/init.d/rcS

# serial console
console::respawn:/sbin/getty -L console 0 vt100

::shutdown:/etc/init.d/rcK
::shutdown:/sbin/swapoff -a
::shutdown:/bin/umount -a -r
`;

const RCS = `#!/bin/sh
# Run every /etc/init.d/S??* script with "start", in order; *.sh ones are sourced.
for s in /etc/init.d/S??*; do
	[ -f "$s" ] || continue
	case "$s" in
		*.sh) ( trap - INT QUIT TSTP; set start; . "$s" ) ;;
		*) "$s" start ;;
	esac
done
`;

const RCK = `#!/bin/sh
# Run every /etc/init.d/S??* script with "stop", in reverse order.
for s in $(ls -r /etc/init.d/S??*); do
	[ -f "$s" ] || continue
	case "$s" in
		*.sh) ( trap - INT QUIT TSTP; set stop; . "$s" ) ;;
		*) "$s" stop ;;
	esac
done
`;

function initScript(name: string, daemon: string, args: string): string {
  return `#!/bin/sh

DAEMON="${name}"
PIDFILE="/var/run/$DAEMON.pid"

start() {
	printf 'Starting %s: ' "$DAEMON"
	start-stop-daemon -b -m -S -q -p "$PIDFILE" -x "${daemon}" -- ${args}
	[ $? -eq 0 ] && echo "OK" || echo "FAIL"
}

stop() {
	printf 'Stopping %s: ' "$DAEMON"
	start-stop-daemon -K -q -p "$PIDFILE"
	[ $? -eq 0 ] && { rm -f "$PIDFILE"; echo "OK"; } || echo "FAIL"
}

case "$1" in
	start|stop) "$1";;
	restart|reload) stop; sleep 1; start;;
	*) echo "Usage: $0 {start|stop|restart|reload}"; exit 1
esac
`;
}

const NETWORK_INIT = `#!/bin/sh
# Bring interfaces from /etc/network/interfaces up or down.
mkdir -p /run/network
case "$1" in
	start) printf "Starting network: "; /sbin/ifup -a && echo OK || echo FAIL ;;
	stop) printf "Stopping network: "; /sbin/ifdown -a && echo OK || echo FAIL ;;
	restart|reload) "$0" stop; "$0" start ;;
	*) echo "Usage: $0 {start|stop|restart}"; exit 1 ;;
esac
`;

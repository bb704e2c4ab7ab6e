// No command writes over one of its inputs. Every command that writes names its outputs and its
// inputs here before it writes anything, and an output that is an input is refused with one line
// naming both: the same path once symlinks are followed, the same inode (a hard link), or a path
// inside an input folder (convert copies data.files/rootfs.files folders into the image).
// Replacing a hard-linked name by rename would leave the input's bytes intact, but an output named
// like an input is a slip of the keyboard every time except one: re-signing a bundle in place,
// which is atomic (temp file + rename) and which the caller marks `replaceable`.
import { stat, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { OtapackError } from '../errors.js';
import { ENV, secretPath } from '../crypto/keys.js';
import { isPkcs11Uri } from '../crypto/pkcs11-uri.js';
import { PKCS11_ENV } from '../crypto/signer-pkcs11.js';

export interface NamedOutput {
  path: string;
  /** What it is, for the message ("A/B disk", "output folder"); empty for a plain -o file. */
  what?: string;
}

export interface NamedInput {
  /** Absent inputs (an option not given) are skipped. */
  path: string | undefined;
  /** What it is, for the message ("signing key", "payload"). */
  what: string;
  /** Where it was named, when not on the command line ("images[0] of spec.yaml"). */
  from?: string;
  /** The output may replace this input (re-signing a bundle in place). */
  replaceable?: boolean;
  /** A folder whose whole tree is read (rootfs.files, data.files): no output may go inside it. */
  tree?: boolean;
}

interface Identity { real: string; dev: number; ino: number; dir: boolean; exists: boolean }

/** Where a path leads: followed through every symlink; for a path not there yet, its nearest existing parent. */
async function identify(p: string): Promise<Identity> {
  try {
    const s = await stat(p);
    return { real: await realpath(p), dev: s.dev, ino: s.ino, dir: s.isDirectory(), exists: true };
  } catch {
    const abs = resolve(p);
    const parent = dirname(abs);
    if (parent === abs) return { real: abs, dev: -1, ino: -1, dir: false, exists: false };
    const up = await identify(parent);
    return { real: join(up.real, basename(abs)), dev: -1, ino: -1, dir: false, exists: false };
  }
}

/** Throws a USAGE error (exit 2) when an output is one of the inputs; call before writing anything. */
export async function refuseOverwritingInputs(outputs: NamedOutput[], inputs: NamedInput[]): Promise<void> {
  const ins: (NamedInput & { path: string; id: Identity })[] = [];
  for (const i of inputs) {
    if (i.path === undefined || i.path === '') continue;
    const id = await identify(i.path);
    // a folder given where a file belongs is the read's error to report (EISDIR), not ours
    if (id.exists && (!id.dir || i.tree)) ins.push({ ...i, path: i.path, id });
  }
  for (const o of outputs) {
    const oid = await identify(o.path);
    const name = `output ${o.what ? `${o.what} ` : ''}${o.path}`;
    for (const i of ins) {
      const sameInode = oid.exists && oid.dev === i.id.dev && oid.ino === i.id.ino;
      if (i.id.dir && !sameInode && !oid.real.startsWith(i.id.real.endsWith(sep) ? i.id.real : i.id.real + sep)) continue;
      if (!i.id.dir && !sameInode && oid.real !== i.id.real) continue;
      if (i.replaceable && !i.id.dir) continue;
      const via = resolve(o.path) === resolve(i.path) ? '' : oid.real === i.id.real ? ' (through a symlink)' : i.id.dir ? '' : ' (a hard link to it)';
      const rel = !i.id.dir ? 'is the same file as' : sameInode ? 'is' : 'is inside';
      throw new OtapackError('USAGE', `${name} ${rel} the ${i.what} ${i.path}${i.from ? ` (from ${i.from})` : ''}${via}; refusing to ${i.id.dir ? 'write into an input folder' : 'overwrite an input'} (choose another output)`);
    }
  }
}

/** The key, certificate and trust files a command reads, from its options or the OTAPACK_* variables. */
export function keyInputs(o: { key?: string; cert?: string; chain?: string; pkcs11Module?: string; aesKey?: string; trust?: string; signature?: string }, env: NodeJS.ProcessEnv = process.env): NamedInput[] {
  const keyRef = o.key ?? env[ENV.key];
  return [
    { path: isPkcs11Uri(keyRef) ? undefined : secretPath(o.key, ENV.key, env), what: 'signing key' },
    { path: secretPath(o.cert, ENV.cert, env), what: 'signing certificate' },
    { path: o.chain, what: 'chain file' },
    { path: o.pkcs11Module ?? env[PKCS11_ENV.module], what: 'PKCS#11 module' },
    { path: secretPath(o.aesKey, ENV.aes, env), what: 'AES key' },
    { path: o.trust, what: 'trust file' },
    { path: o.signature, what: 'signature' },
  ];
}

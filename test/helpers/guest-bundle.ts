// A minimal signed SWUpdate bundle for exercising the client inside a guest, made the way the
// oracle notes do it (openssl cms + GNU cpio -H crc), independent of otapack's own bundle
// engine so a harness failure can never be blamed on the code under test.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestBundle {
  swu: string;
  /** the same bundle with one payload byte flipped (its HASH check must fail) */
  tampered: string;
  cert: string;
  key: string;
  payload: Buffer;
}

export interface TestBundleOptions {
  /** the raw payload (default: 4 MiB of a deterministic pattern, big enough for a reliable client exit code) */
  payload?: Buffer;
  /** device of copy1 and copy2 (regular files or block devices in the guest) */
  copy1: string;
  copy2: string;
  /** bootenv of each collection */
  bootenv1?: Record<string, string>;
  bootenv2?: Record<string, string>;
  hardware?: string;
  /** store the payload gzip-compressed (compressed = "zlib" in sw-description) */
  compress?: 'zlib';
}

export async function makeTestBundle(dir: string, o: TestBundleOptions): Promise<TestBundle> {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'signer.key');
  const cert = join(dir, 'signer.crt');
  await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '3650', '-subj', '/CN=otapack guest test']);
  const payload = o.payload ?? patterned(4 << 20);
  let stored = payload;
  if (o.compress === 'zlib') {
    const gz = await execa('gzip', ['-n', '-6', '-c'], { input: payload, encoding: 'buffer', stripFinalNewline: false });
    stored = Buffer.from(gz.stdout as Uint8Array);
  }
  writeFileSync(join(dir, 'payload.img'), stored);
  const sha = createHash('sha256').update(stored).digest('hex');
  const comp = o.compress ? ` compressed = "${o.compress}";` : '';
  const env = (e: Record<string, string> | undefined): string => {
    const l = Object.entries(e ?? {}).map(([k, v]) => `{ name = "${k}"; value = "${v}"; }`);
    return l.length ? `\n                  bootenv: ( ${l.join(', ')} );` : '';
  };
  const desc = `software =
{
    version = "1.0.0";
    hardware-compatibility = [ "${o.hardware ?? '1.0'}" ];
    stable = {
        copy1 = { images: ( { filename = "payload.img"; type = "raw"; device = "${o.copy1}";${comp} sha256 = "${sha}"; } );${env(o.bootenv1)} };
        copy2 = { images: ( { filename = "payload.img"; type = "raw"; device = "${o.copy2}";${comp} sha256 = "${sha}"; } );${env(o.bootenv2)} };
    };
}
`;
  writeFileSync(join(dir, 'sw-description'), desc);
  await execa('openssl', ['cms', '-sign', '-in', 'sw-description', '-out', 'sw-description.sig', '-signer', cert, '-inkey', key,
    '-outform', 'DER', '-nosmimecap', '-binary'], { cwd: dir });
  const swu = join(dir, 'update.swu');
  const cpio = await execa('cpio', ['-o', '-H', 'crc', '--quiet'], { cwd: dir, input: 'sw-description\nsw-description.sig\npayload.img\n', encoding: 'buffer', stripFinalNewline: false });
  writeFileSync(swu, Buffer.from(cpio.stdout as Uint8Array));
  // flip one byte in the middle of the payload: the CMS signature still verifies, the sha256 does not
  const bad = Buffer.from(readFileSync(swu));
  const at = bad.indexOf(stored.subarray(0, 64)) + (stored.length >> 1);
  bad[at] = bad[at]! ^ 0xff;
  const tampered = join(dir, 'tampered.swu');
  writeFileSync(tampered, bad);
  return { swu, tampered, cert, key, payload };
}

export function patterned(n: number, seed = 0x0a7a9ac4): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i + 4 <= n; i += 4) { x = (x * 1664525 + 1013904223) >>> 0; b.writeUInt32LE(x, i); }
  return b;
}

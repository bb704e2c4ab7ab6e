// `otapack verify --trust` gives the real client's verdict on who signed a bundle, case by case.
// Each case is a signer set-up made with the openssl CLI (keys, certificates with odd extensions,
// validity windows, chains, CMS variants); its bundle is judged by Debian's `swupdate -c -k`
// under both --cert-purpose values, by `otapack verify --trust --cert-purpose`, and (for
// information) by `openssl cms -verify`. Every otapack verdict must equal the client's; each case
// also pins the client's verdict, so a change on either side shows up here.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { which } from '../src/util/tools.js';

type Purpose = 'emailProtection' | 'codeSigning';
type Verdict = 'accept' | 'refuse';
type KeyKind = 'rsa2048' | 'rsa1024' | 'ec256' | 'ec384' | 'rsapss' | 'ed25519' | 'dsa';

interface CertSpec {
  key?: KeyKind;
  /** Name of the issuing certificate; absent = self-signed. */
  issuer?: string;
  /** Extension lines for the certificate; `null` makes a v1 certificate (no extensions). */
  ext: string[] | null;
  /** Validity relative to now, in days. */
  from?: number;
  to?: number;
  /** Certificate signature digest. */
  md?: string;
  /** Reuse another certificate's key (a renewed CA). */
  sameKeyAs?: string;
  /** Subject CN when it differs from the name. */
  cn?: string;
}

interface Case {
  id: string;
  certs: Record<string, CertSpec>;
  /** Signing certificate(s); several make several SignerInfos. */
  signers: string[];
  /** Extra certificates carried in the CMS (-certfile). */
  carried?: string[];
  trust: string[];
  cms?: string[];
  /** Sign with `otapack sign --chain` instead of `openssl cms -sign` (which refuses duplicate certificates). */
  otapackSigns?: boolean;
  /** The client's verdict under [emailProtection, codeSigning]. */
  expect: [Verdict, Verdict];
}

const SKID = ['subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', ...SKID];
const LEAF = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=emailProtection,codeSigning', ...SKID];
const leafWith = (...lines: string[]): string[] => ['basicConstraints=critical,CA:FALSE', ...SKID, ...lines];
const caWith = (...lines: string[]): string[] => [...SKID, ...lines];
const UNKNOWN_CRITICAL = '1.3.6.1.4.1.55555.1=critical,DER:05:00';
const UNKNOWN = '1.3.6.1.4.1.55555.1=DER:05:00';

const R = { root: { ext: CA } };
const RI = { root: { ext: CA }, int: { issuer: 'root', ext: CA } };
const A: [Verdict, Verdict] = ['accept', 'accept'];
const X: [Verdict, Verdict] = ['refuse', 'refuse'];

const CASES: Case[] = [
  // --- where the chain comes from
  { id: 'self-signed leaf (keygen shape)', certs: { leaf: { ext: LEAF, key: 'rsa2048' } }, signers: ['leaf'], trust: ['leaf'], expect: A },
  { id: 'self-signed, openssl req defaults (CA:TRUE, no KU/EKU)', certs: { leaf: { ext: ['basicConstraints=critical,CA:TRUE', ...SKID] } }, signers: ['leaf'], trust: ['leaf'], expect: ['accept', 'refuse'] },
  { id: 'self-signed leaf CA:FALSE, KU digitalSignature, no EKU', certs: { leaf: { ext: leafWith('keyUsage=critical,digitalSignature') } }, signers: ['leaf'], trust: ['leaf'], expect: ['accept', 'refuse'] },
  { id: 'root -> leaf, root trusted (RSA)', certs: { root: { ext: CA, key: 'rsa2048' }, leaf: { issuer: 'root', ext: LEAF, key: 'rsa2048' } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'root -> int -> leaf, root+int trusted', certs: { ...RI, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: A },
  { id: 'root -> int -> leaf, int+root trusted (order)', certs: { ...RI, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['int', 'root'], expect: A },
  { id: 'intermediate only in the CMS, root trusted', certs: { ...RI, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], carried: ['int'], trust: ['root'], expect: X },
  { id: 'intermediate in the CMS and the trust file', certs: { ...RI, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], carried: ['int', 'root'], trust: ['root', 'int'], expect: A },
  { id: 'trust file holds only the intermediate', certs: { ...RI, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], carried: ['int'], trust: ['int'], expect: X },
  { id: 'trust file holds only the CA-issued leaf', certs: { ...R, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['leaf'], expect: X },
  { id: 'several roots in one trust file', certs: { ...R, other: { ext: CA }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['other', 'root'], expect: A },
  { id: 'signer from another root', certs: { ...R, other: { ext: CA }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['other'], expect: X },
  { id: 'duplicate certificates in the trust file', certs: { ...R, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'root'], expect: A },
  { id: 'duplicate certificates in the CMS (otapack sign --chain)', certs: { ...R, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], carried: ['leaf', 'root', 'root'], trust: ['root'], otapackSigns: true, expect: A },
  { id: 'two roots with one name (key rollover), leaf from the second', certs: { root: { ext: CA, cn: 'fleet root' }, root2: { ext: CA, cn: 'fleet root' }, leaf: { issuer: 'root2', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'root2'], expect: A },
  { id: 'renewed root with the same key, the expired one first', certs: { old: { ext: CA, cn: 'fleet root', from: -400, to: -10 }, root: { ext: CA, cn: 'fleet root', sameKeyAs: 'old' }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['old', 'root'], expect: A },
  // --- critical extensions
  { id: 'leaf with an unknown critical extension', certs: { ...R, leaf: { issuer: 'root', ext: [...LEAF, UNKNOWN_CRITICAL] } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'leaf with an unknown non-critical extension', certs: { ...R, leaf: { issuer: 'root', ext: [...LEAF, UNKNOWN] } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'leaf with known critical extensions (SAN, policies)', certs: { ...R, leaf: { issuer: 'root', ext: [...LEAF, 'subjectAltName=critical,email:ota@example.com', 'certificatePolicies=critical,1.3.6.1.4.1.55555.2'] } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'intermediate with an unknown critical extension', certs: { root: { ext: CA }, int: { issuer: 'root', ext: [...CA, UNKNOWN_CRITICAL] }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'root with an unknown critical extension', certs: { root: { ext: [...CA, UNKNOWN_CRITICAL] }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: X },
  // --- issuer constraints
  { id: 'issuer with CA:FALSE', certs: { root: { ext: CA }, int: { issuer: 'root', ext: caWith('basicConstraints=critical,CA:FALSE', 'keyUsage=critical,keyCertSign') }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'intermediate without basicConstraints (KU keyCertSign)', certs: { root: { ext: CA }, int: { issuer: 'root', ext: caWith('keyUsage=critical,keyCertSign') }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'intermediate without basicConstraints or KU', certs: { root: { ext: CA }, int: { issuer: 'root', ext: caWith() }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'root without basicConstraints (KU keyCertSign)', certs: { root: { ext: caWith('keyUsage=critical,keyCertSign') }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'v1 root', certs: { root: { ext: null }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'v1 intermediate', certs: { root: { ext: CA }, int: { issuer: 'root', ext: null }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'intermediate whose KU lacks keyCertSign', certs: { root: { ext: CA }, int: { issuer: 'root', ext: caWith('basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature') }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'root pathlen:0 above an intermediate', certs: { root: { ext: caWith('basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign') }, int: { issuer: 'root', ext: CA }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'root pathlen:1 above an intermediate', certs: { root: { ext: caWith('basicConstraints=critical,CA:TRUE,pathlen:1', 'keyUsage=critical,keyCertSign') }, int: { issuer: 'root', ext: CA }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: A },
  { id: 'intermediate pathlen:0 above the leaf', certs: { root: { ext: CA }, int: { issuer: 'root', ext: caWith('basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign') }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: A },
  { id: 'nameConstraints: leaf e-mail inside', certs: { root: { ext: [...CA, 'nameConstraints=critical,permitted;email:.example.com,permitted;email:example.com'] }, leaf: { issuer: 'root', ext: [...LEAF, 'subjectAltName=email:ota@example.com'] } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'nameConstraints: leaf e-mail outside', certs: { root: { ext: [...CA, 'nameConstraints=critical,permitted;email:.example.com,permitted;email:example.com'] }, leaf: { issuer: 'root', ext: [...LEAF, 'subjectAltName=email:ota@other.org'] } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'nameConstraints: excluded directory name', certs: { root: { ext: [...CA, 'nameConstraints=critical,excluded;dirName:nc_dir'] }, leaf: { issuer: 'root', ext: LEAF, cn: 'blocked' } }, signers: ['leaf'], trust: ['root'], expect: X },
  // --- key usage and extended key usage
  { id: 'leaf EKU emailProtection only', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,digitalSignature', 'extendedKeyUsage=emailProtection') } }, signers: ['leaf'], trust: ['root'], expect: ['accept', 'refuse'] },
  { id: 'leaf EKU codeSigning only', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,digitalSignature', 'extendedKeyUsage=codeSigning') } }, signers: ['leaf'], trust: ['root'], expect: ['refuse', 'accept'] },
  { id: 'leaf without EKU', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,digitalSignature') } }, signers: ['leaf'], trust: ['root'], expect: ['accept', 'refuse'] },
  { id: 'leaf EKU serverAuth only', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth') } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'leaf EKU anyExtendedKeyUsage', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,digitalSignature', 'extendedKeyUsage=anyExtendedKeyUsage') } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'leaf without KU and EKU', certs: { ...R, leaf: { issuer: 'root', ext: leafWith() } }, signers: ['leaf'], trust: ['root'], expect: ['accept', 'refuse'] },
  { id: 'leaf KU keyEncipherment only', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,keyEncipherment', 'extendedKeyUsage=emailProtection,codeSigning') } }, signers: ['leaf'], trust: ['root'], expect: ['refuse', 'accept'] },
  { id: 'leaf KU nonRepudiation only', certs: { ...R, leaf: { issuer: 'root', ext: leafWith('keyUsage=critical,nonRepudiation', 'extendedKeyUsage=emailProtection,codeSigning') } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'CA certificate (KU keyCertSign only) signs the bundle', certs: { ...R }, signers: ['root'], trust: ['root'], expect: ['refuse', 'refuse'] },
  { id: 'root EKU serverAuth', certs: { root: { ext: [...CA, 'extendedKeyUsage=serverAuth'] }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'root EKU codeSigning', certs: { root: { ext: [...CA, 'extendedKeyUsage=codeSigning'] }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: ['refuse', 'accept'] },
  { id: 'root EKU emailProtection', certs: { root: { ext: [...CA, 'extendedKeyUsage=emailProtection'] }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: ['accept', 'refuse'] },
  { id: 'intermediate EKU serverAuth', certs: { root: { ext: CA }, int: { issuer: 'root', ext: [...CA, 'extendedKeyUsage=serverAuth'] }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  // --- validity
  { id: 'leaf expired', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, from: -30, to: -1 } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'leaf not yet valid', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, from: 2, to: 400 } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'intermediate expired', certs: { root: { ext: CA }, int: { issuer: 'root', ext: CA, from: -30, to: -1 }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'intermediate not yet valid', certs: { root: { ext: CA }, int: { issuer: 'root', ext: CA, from: 2, to: 400 }, leaf: { issuer: 'int', ext: LEAF } }, signers: ['leaf'], trust: ['root', 'int'], expect: X },
  { id: 'root expired', certs: { root: { ext: CA, from: -30, to: -1 }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'self-signed signer expired', certs: { leaf: { ext: LEAF, from: -30, to: -1 } }, signers: ['leaf'], trust: ['leaf'], expect: X },
  // --- algorithms and key sizes
  { id: 'RSA-1024 signer', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, key: 'rsa1024' } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'SHA-1 CMS digest', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, key: 'rsa2048' } }, signers: ['leaf'], trust: ['root'], cms: ['-md', 'sha1'], expect: A },
  { id: 'SHA-1 certificate signature', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, md: 'sha1' } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'RSA-2048 signer under an RSA-3072 intermediate', certs: { root: { ext: CA }, int: { issuer: 'root', ext: CA, key: 'rsa2048' }, leaf: { issuer: 'int', ext: LEAF, key: 'rsa2048' } }, signers: ['leaf'], trust: ['root', 'int'], expect: A },
  { id: 'EC P-256 signer and CA', certs: { root: { ext: CA, key: 'ec256' }, leaf: { issuer: 'root', ext: LEAF, key: 'ec256' } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'EC P-384 signer', certs: { root: { ext: CA, key: 'rsa2048' }, leaf: { issuer: 'root', ext: LEAF, key: 'ec384' } }, signers: ['leaf'], trust: ['root'], expect: A },
  { id: 'RSA-PSS signature (rsa_padding_mode:pss)', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, key: 'rsa2048' } }, signers: ['leaf'], trust: ['root'], cms: ['-keyopt', 'rsa_padding_mode:pss'], expect: A },
  { id: 'RSA-PSS key (id-RSASSA-PSS certificate)', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, key: 'rsapss' } }, signers: ['leaf'], trust: ['root'], expect: X },
  { id: 'DSA signer', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, key: 'dsa' } }, signers: ['leaf'], trust: ['root'], expect: A },
  // OpenSSL 3.0 cannot make an Ed25519 CMS signature ("invalid digest"): Ed25519 in the chain instead
  { id: 'Ed25519 root CA above an EC signer', certs: { root: { ext: CA, key: 'ed25519' }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['leaf'], trust: ['root'], expect: A },
  // --- CMS shapes
  { id: 'two signers, only the second trusted', certs: { ...R, other: { ext: LEAF }, leaf: { issuer: 'root', ext: LEAF } }, signers: ['other', 'leaf'], trust: ['root'], expect: A },
  { id: 'two signers, none trusted', certs: { ...R, other: { ext: LEAF }, third: { ext: LEAF } }, signers: ['other', 'third'], trust: ['root'], expect: X },
  { id: 'CMS without certificates (-nocerts)', certs: { leaf: { ext: LEAF } }, signers: ['leaf'], trust: ['leaf'], cms: ['-nocerts'], expect: X },
  { id: 'CMS without signed attributes (-noattr)', certs: { ...R, leaf: { issuer: 'root', ext: LEAF, key: 'rsa2048' } }, signers: ['leaf'], trust: ['root'], cms: ['-noattr'], expect: A },
];

const PURPOSES: Purpose[] = ['emailProtection', 'codeSigning'];
const DAY = 86_400_000;
const asn1Time = (days: number): string => {
  const d = new Date(Date.now() + days * DAY);
  return d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
};

const openssl = async (args: string[], cwd: string): Promise<void> => {
  const r = await execa('openssl', args, { cwd, reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.all}`);
};

async function makeKey(kind: KeyKind, out: string, cwd: string): Promise<void> {
  if (kind === 'dsa') {
    await openssl(['genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:1024', '-out', `${out}.param`], cwd);
    await openssl(['genpkey', '-paramfile', `${out}.param`, '-out', out], cwd);
    return;
  }
  const args: Record<Exclude<KeyKind, 'dsa'>, string[]> = {
    rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
    rsa1024: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
    ec256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    ec384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    rsapss: ['-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048'],
    ed25519: ['-algorithm', 'ED25519'],
  };
  await openssl(['genpkey', ...args[kind], '-out', out], cwd);
}

/** Issues every certificate of a case with `openssl ca` (which takes explicit validity dates). */
async function makeCerts(c: Case, dir: string): Promise<void> {
  const done = new Set<string>();
  const order = (name: string): string[] => {
    const spec = c.certs[name]!;
    return [...(spec.issuer && spec.issuer !== name ? order(spec.issuer) : []), ...(spec.sameKeyAs ? order(spec.sameKeyAs) : []), name];
  };
  for (const name of Object.keys(c.certs).flatMap(order)) {
    if (done.has(name)) continue;
    done.add(name);
    const s = c.certs[name]!;
    const key = s.sameKeyAs ? `${s.sameKeyAs}.key` : `${name}.key`;
    if (!s.sameKeyAs) await makeKey(s.key ?? 'ec256', key, dir);
    const db = join(dir, `${name}.db`);
    mkdirSync(db);
    writeFileSync(join(db, 'index.txt'), '');
    writeFileSync(join(db, 'serial'), createHash('sha256').update(c.id + name).digest('hex').slice(0, 16) + '\n');
    writeFileSync(join(dir, `${name}.cnf`), [
      '[ca]', 'default_ca = ca_default', '[ca_default]', `dir = ${db}`, 'database = $dir/index.txt', 'new_certs_dir = $dir', 'serial = $dir/serial',
      'policy = policy', 'default_md = default', 'unique_subject = no', 'email_in_dn = no', 'copy_extensions = none', '[policy]', 'commonName = supplied',
      '[nc_dir]', 'CN = blocked', '[ext]', ...(s.ext ?? []).filter((l) => !(l.startsWith('authorityKeyIdentifier') && s.issuer && !c.certs[s.issuer]!.ext?.some((e) => e.startsWith('subjectKeyIdentifier')))), '',
    ].join('\n'));
    await openssl(['req', '-new', '-key', key, '-subj', `/CN=${s.cn ?? name}`, '-out', `${name}.csr`], dir);
    const args = ['ca', '-batch', '-notext', '-config', `${name}.cnf`, '-in', `${name}.csr`, '-out', `${name}.crt`,
      '-startdate', asn1Time(s.from ?? -1), '-enddate', asn1Time(s.to ?? 3650), '-subj', `/CN=${s.cn ?? name}`];
    if (s.key !== 'ed25519') args.push('-md', s.md ?? 'sha256');
    if (s.ext) args.push('-extfile', `${name}.cnf`, '-extensions', 'ext');
    if (s.issuer) args.push('-cert', `${s.issuer}.crt`, '-keyfile', c.certs[s.issuer]!.sameKeyAs ? `${c.certs[s.issuer]!.sameKeyAs}.key` : `${s.issuer}.key`);
    else args.push('-selfsign', '-keyfile', key);
    await openssl(args, dir);
  }
}

const MANIFEST = (sha: string): string => `software =
{
\tversion = "1.0.0";
\thardware-compatibility = [ "1.0" ];
\timages: ( { filename = "payload.bin"; type = "raw"; device = "/dev/null"; sha256 = "${sha}"; } );
}
`;

/** sw-description, its CMS signature and one payload, archived by GNU cpio as the oracle does. */
async function makeBundle(c: Case, dir: string): Promise<string> {
  const payload = Buffer.alloc(64 * 1024, c.id);
  writeFileSync(join(dir, 'payload.bin'), payload);
  writeFileSync(join(dir, 'sw-description'), MANIFEST(createHash('sha256').update(payload).digest('hex')));
  const signers = c.signers.flatMap((s) => ['-signer', `${s}.crt`, '-inkey', c.certs[s]!.sameKeyAs ? `${c.certs[s]!.sameKeyAs}.key` : `${s}.key`]);
  if (c.carried) writeFileSync(join(dir, 'carried.pem'), c.carried.map((n) => readFileSync(join(dir, `${n}.crt`), 'latin1')).join(''));
  writeFileSync(join(dir, 'trust.pem'), c.trust.map((n) => readFileSync(join(dir, `${n}.crt`), 'latin1')).join(''));
  if (c.otapackSigns) {
    await execa('cpio', ['-o', '-H', 'crc', '--quiet', '-O', 'unsigned.swu'], { cwd: dir, input: 'sw-description\npayload.bin\n' });
    const r = await otapack(['sign', join(dir, 'unsigned.swu'), '-o', join(dir, 'b.swu'), '--key', join(dir, `${c.signers[0]}.key`), '--cert', join(dir, `${c.signers[0]}.crt`), '--chain', join(dir, 'carried.pem'), '-q']);
    if (r.code !== 0) throw new Error(`otapack sign: ${r.stderr}`);
    return join(dir, 'b.swu');
  }
  await openssl(['cms', '-sign', '-binary', '-nosmimecap', '-outform', 'DER', '-in', 'sw-description', '-out', 'sw-description.sig',
    ...signers, ...(c.carried ? ['-certfile', 'carried.pem'] : []), ...(c.cms ?? [])], dir);
  await execa('cpio', ['-o', '-H', 'crc', '--quiet', '-O', 'b.swu'], { cwd: dir, input: 'sw-description\nsw-description.sig\npayload.bin\n' });
  return join(dir, 'b.swu');
}

/** The client's verdict: success line and no [ERROR]; a run with neither is retried (oracle §0). */
async function clientVerdict(bundle: string, trust: string, purpose: Purpose): Promise<{ verdict: Verdict; output: string }> {
  let output = '';
  for (let i = 0; i < 3; i++) {
    const t = tmp('swu-');
    const r = await execa('swupdate', ['-c', '-k', trust, '-H', 'otapack:1.0', '--cert-purpose', purpose, '-i', bundle], { reject: false, all: true, env: { TMPDIR: t }, timeout: 60_000 });
    output = String(r.all);
    const ok = output.includes('SWUPDATE successful');
    const err = output.includes('[ERROR]');
    if (ok && !err) return { verdict: 'accept', output };
    if (err) return { verdict: 'refuse', output };
  }
  return { verdict: 'refuse', output };
}

async function opensslCmsVerdict(dir: string, c: Case): Promise<Verdict> {
  if (c.otapackSigns) await execa('cpio', ['-i', '--quiet', '-F', 'b.swu', 'sw-description.sig'], { cwd: dir });
  const r = await execa('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'sw-description.sig', '-content', 'sw-description',
    '-CAfile', 'trust.pem', '-no-CApath', '-no-CAstore', '-purpose', 'smimesign', '-out', '/dev/null'], { cwd: dir, reject: false });
  return r.exitCode === 0 ? 'accept' : 'refuse';
}

interface Row { id: string; purpose: Purpose; expected: Verdict; client: Verdict; otapack: Verdict; opensslCms?: Verdict; verifyText: string; clientText: string }

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: n }, async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t);
  }));
}

describe('otapack verify --trust agrees with the real SWUpdate client on every signer case', () => {
  const rows: Row[] = [];
  const root = tmp('trust-diff-');

  beforeAll(async () => {
    // never skipped: without the client there is no verdict to agree with
    for (const t of ['swupdate', 'openssl', 'cpio']) if (!which(t)) throw new Error(`${t} is not installed (apt-get install swupdate openssl cpio)`);
    await pool(CASES.map((c, i) => ({ c, i })), 3, async ({ c, i }) => {
      const dir = join(root, String(i));
      mkdirSync(dir);
      await makeCerts(c, dir);
      const bundle = await makeBundle(c, dir);
      const cms = await opensslCmsVerdict(dir, c);
      for (const [pi, purpose] of PURPOSES.entries()) {
        const [client, ours] = await Promise.all([
          clientVerdict(bundle, join(dir, 'trust.pem'), purpose),
          otapack(['verify', bundle, '--trust', join(dir, 'trust.pem'), '--cert-purpose', purpose]),
        ]);
        rows.push({
          id: c.id, purpose, expected: c.expect[pi]!, client: client.verdict, otapack: ours.code === 0 ? 'accept' : 'refuse',
          opensslCms: purpose === 'emailProtection' ? cms : undefined, verifyText: ours.stderr, clientText: client.output,
        });
      }
    });
    rows.sort((a, b) => CASES.findIndex((c) => c.id === a.id) - CASES.findIndex((c) => c.id === b.id) || a.purpose.localeCompare(b.purpose));
    const agree = rows.filter((r) => r.otapack === r.client).length;
    const cmsRows = rows.filter((r) => r.opensslCms);
    const lines = rows.map((r) => `${r.otapack === r.client ? '  ' : '!!'} ${r.id.padEnd(62)} ${r.purpose.padEnd(15)} client ${r.client.padEnd(6)} otapack ${r.otapack.padEnd(6)}${r.opensslCms ? ` openssl-cms ${r.opensslCms}` : ''}`);
    console.log(`${lines.join('\n')}\nsigner cases: ${CASES.length} set-ups x ${PURPOSES.length} purposes = ${rows.length}; otapack verify agrees with swupdate on ${agree}/${rows.length}; openssl cms -verify agrees with swupdate on ${cmsRows.filter((r) => r.opensslCms === r.client).length}/${cmsRows.length} (emailProtection)`);
  }, 900_000);

  test('at least 30 signer set-ups, each judged under both purposes', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(rows.length).toBe(CASES.length * PURPOSES.length);
  });

  test('every otapack verdict equals the client\'s', () => {
    const bad = rows.filter((r) => r.otapack !== r.client);
    expect(bad.map((r) => `${r.id} [${r.purpose}]: client ${r.client}, otapack ${r.otapack}\n  verify: ${r.verifyText.split('\n').filter((l) => /FAIL|trust|signature/.test(l)).join(' | ')}\n  client: ${r.clientText.split('\n').filter((l) => /ERROR/.test(l)).slice(0, 2).join(' | ')}`)).toEqual([]);
  });

  test('the client\'s verdicts are the ones each case pins (a changed client shows up here)', () => {
    const bad = rows.filter((r) => r.client !== r.expected);
    expect(bad.map((r) => `${r.id} [${r.purpose}]: pinned ${r.expected}, client ${r.client}`)).toEqual([]);
  });

  test('refusals name the device\'s reason in one line; the intermediate rule is explained', () => {
    const int = rows.find((r) => r.id === 'intermediate only in the CMS, root trusted' && r.purpose === 'emailProtection')!;
    expect(int.verifyText).toMatch(/builds the chain from .* only and ignores the intermediate certificates a signature carries; add CN=int to/);
    const partial = rows.find((r) => r.id === 'trust file holds only the intermediate' && r.purpose === 'emailProtection')!;
    expect(partial.verifyText).toMatch(/no partial chains/);
    const crit = rows.find((r) => r.id === 'leaf with an unknown critical extension' && r.purpose === 'emailProtection')!;
    expect(crit.verifyText).toMatch(/unhandled critical extension/);
    for (const r of rows.filter((x) => x.otapack === 'refuse')) {
      expect(r.verifyText, r.id).toMatch(/FAIL\s+trust .*refuses|FAIL\s+signature|FAIL\s+expiry/);
    }
  });
});

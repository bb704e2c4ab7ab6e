// A Signer whose private key stays on a PKCS#11 token (HSM, smart card, YubiKey, SoftHSM, cloud
// HSM client library). The token operation is done by OpenSC's `pkcs11-tool`, with an explicit
// argv, so no PKCS#11 binding is compiled into otapack and any module Debian can load works.
//
// Why pkcs11-tool and not `openssl pkeyutl -engine pkcs11` (libp11): pkcs11-tool takes the PIN
// as `--pin env:NAME`, so it never appears in a process listing; its failures are one readable
// line with the CKR_ code; and on Debian 12 (OpenSSL 3.0 + libengine-pkcs11-openssl 0.4.12) the
// engine segfaults after a wrong PIN. There is no pkcs11-provider package in Debian 12.
//
// The SHA-256 digest is computed here and the token signs it with the plain mechanisms every
// token has (CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS, CKM_ECDSA), not the hash-on-token
// variants many smart cards lack. Every signature is checked against the certificate before it
// is used, so a wrong key on the token is an error, never a bundle devices refuse.
import { access, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { constants as fsc } from 'node:fs';
import { OtapackError } from '../errors.js';
import { requireTool, runBinary, type BinaryRunResult } from '../util/tools.js';
import { parsePkcs11Uri, describePkcs11, type Pkcs11Uri } from './pkcs11-uri.js';
import {
  maxSignatureLength, normalizeSignature, schemeFor, sha256, signatureVerifies, SHA256_DIGEST_INFO, PSS_SALT,
  type SigScheme, type Signer,
} from './signer.js';
import { parseCertificate, type CertInfo } from './x509.js';
import { optionName, type OptionNames } from './option-names.js';

export const PKCS11_ENV = { module: 'OTAPACK_PKCS11_MODULE', pin: 'OTAPACK_PKCS11_PIN' } as const;

/** Name of the variable the PIN is handed to pkcs11-tool in (its own environment only). */
const CHILD_PIN_VAR = 'OTAPACK_PKCS11_TOOL_PIN';

export interface Pkcs11SignerOptions {
  /** `pkcs11:` URI naming the token and the key (object= and/or id=). */
  uri: string;
  /** PKCS#11 module (.so); else the URI's module-path, else $OTAPACK_PKCS11_MODULE. */
  module?: string;
  /** The key's certificate; read from the token (same id/object) when absent. */
  cert?: CertInfo;
  chain?: CertInfo[];
  pss?: boolean;
  env?: NodeJS.ProcessEnv;
  /** How messages name the caller's options (resolveSigner's). */
  names?: OptionNames;
}

export interface TokenSlot {
  /** Slot ID as pkcs11-tool prints it (hex), passed back with --slot. */
  slot: string;
  slotId: number;
  description: string;
  label?: string;
  manufacturer?: string;
  model?: string;
  serial?: string;
}

/** Parses `pkcs11-tool --list-slots`: the slots that hold an initialised token. */
export function parseSlotList(text: string): TokenSlot[] {
  const out: TokenSlot[] = [];
  let cur: TokenSlot | undefined;
  for (const line of text.split('\n')) {
    const m = /^Slot \d+ \((0x[0-9a-fA-F]+)\):\s*(.*)$/.exec(line);
    if (m) {
      cur = { slot: m[1]!, slotId: parseInt(m[1]!, 16), description: m[2]!.trim() };
      out.push(cur);
      continue;
    }
    const kv = /^\s+([a-z /]+?)\s*:\s*(.*)$/.exec(line);
    if (!cur || !kv) continue;
    const [, k, v] = kv;
    if (k === 'token label') cur.label = v!.trim();
    else if (k === 'token manufacturer') cur.manufacturer = v!.trim();
    else if (k === 'token model') cur.model = v!.trim();
    else if (k === 'serial num') cur.serial = v!.trim();
  }
  return out.filter((s) => s.label !== undefined);
}

export interface TokenKey {
  keyType: string; // RSA, EC …
  label?: string;
  idHex?: string;
}

/** Parses `pkcs11-tool --list-objects --type privkey`. */
export function parseKeyList(text: string): TokenKey[] {
  const out: TokenKey[] = [];
  let cur: TokenKey | undefined;
  for (const line of text.split('\n')) {
    const m = /^Private Key Object;\s*(\S*)/.exec(line);
    if (m) {
      cur = { keyType: m[1] ?? '' };
      out.push(cur);
      continue;
    }
    if (/^\S/.test(line)) { cur = undefined; continue; }
    const kv = /^\s+(label|ID):\s*(.*)$/.exec(line);
    if (!cur || !kv) continue;
    if (kv[1] === 'label') cur.label = kv[2]!.trim();
    else cur.idHex = kv[2]!.trim().toLowerCase();
  }
  return out;
}

/**
 * The one private key the URI names. pkcs11-tool selects keys for --sign by CKA_ID only (a
 * --label is silently ignored and the first key taken), so object= is resolved to an id here.
 */
export function selectKey(uri: Pkcs11Uri, keys: TokenKey[], where: string): TokenKey & { idHex: string } {
  const idHex = uri.id?.toString('hex');
  const matches = keys.filter((k) => (uri.object === undefined || k.label === uri.object) && (idHex === undefined || k.idHex === idHex));
  const list = keys.map((k) => `${k.label ?? '(no label)'} (${k.keyType}${k.idHex ? `, id ${k.idHex}` : ''})`).join(', ') || 'none';
  if (matches.length === 0) throw new OtapackError('KEY', `${where}: no private key with this id/object on the token (private keys: ${list})`);
  if (matches.length > 1) throw new OtapackError('KEY', `${where}: ${matches.length} private keys match (${list}); add id= to the URI`);
  const k = matches[0]!;
  if (!k.idHex) throw new OtapackError('KEY', `${where}: the key has no CKA_ID, which pkcs11-tool needs to select it; give it one (pkcs11-tool --set-id)`);
  return k as TokenKey & { idHex: string };
}

/** The one slot whose token the URI selects. */
export function selectSlot(uri: Pkcs11Uri, slots: TokenSlot[], where: string): TokenSlot {
  const matches = slots.filter((s) =>
    (uri.token === undefined || s.label === uri.token)
    && (uri.serial === undefined || s.serial === uri.serial)
    && (uri.manufacturer === undefined || s.manufacturer === uri.manufacturer)
    && (uri.model === undefined || s.model === uri.model)
    && (uri.slotId === undefined || s.slotId === uri.slotId)
    && (uri.slotDescription === undefined || s.description === uri.slotDescription));
  const list = slots.map((s) => `"${s.label}"${s.serial ? ` (serial ${s.serial})` : ''}`).join(', ') || 'none';
  if (matches.length === 0) throw new OtapackError('KEY', `${where}: no token matches the URI (tokens found: ${list})`);
  if (matches.length > 1) throw new OtapackError('KEY', `${where}: ${matches.length} tokens match the URI (${list}); add token= or serial=`);
  return matches[0]!;
}

const last = (stderr: string): string =>
  stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^(Using |Aborting\.|PSS parameters)/.test(l)).slice(-1)[0]?.slice(0, 300) ?? '';

async function readPin(uri: Pkcs11Uri, env: NodeJS.ProcessEnv, where: string): Promise<string> {
  if (uri.pinValue !== undefined) return uri.pinValue;
  if (uri.pinSource !== undefined) {
    const src = uri.pinSource;
    if (/^[a-z][a-z0-9+.-]*:/i.test(src) && !/^file:/i.test(src)) {
      throw new OtapackError('KEY', `${where}: pin-source "${src.split(':')[0]}:" is not supported (use a file path or file:/path)`);
    }
    const path = src.replace(/^file:(\/\/)?/i, '');
    const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new OtapackError('KEY', `${where}: pin-source ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.code ?? 'unreadable'}`);
    });
    const pin = text.split(/\r?\n/)[0] ?? '';
    if (!pin) throw new OtapackError('KEY', `${where}: pin-source ${path} is empty`);
    return pin;
  }
  const v = env[PKCS11_ENV.pin];
  if (v !== undefined && v !== '') return v;
  throw new OtapackError('KEY', `${where}: no PIN: set $${PKCS11_ENV.pin}, or add pin-source=/path/to/pin-file to the URI`);
}

export class Pkcs11Signer implements Signer {
  readonly signatureLength: number;
  readonly description: string;
  readonly kind = 'pkcs11' as const;

  private constructor(
    private readonly tool: string,
    private readonly module: string,
    private readonly slot: TokenSlot,
    uri: Pkcs11Uri,
    private readonly keyId: string,
    private readonly pin: string,
    readonly cert: CertInfo,
    readonly chain: CertInfo[],
    readonly scheme: SigScheme,
  ) {
    this.signatureLength = maxSignatureLength(cert);
    this.description = `${describePkcs11({ ...uri, token: slot.label })} (module ${basename(module)})`;
  }

  /** Resolves module, PIN, token and certificate, then proves PIN, key and certificate with one signature. */
  static async open(o: Pkcs11SignerOptions): Promise<Pkcs11Signer> {
    const env = o.env ?? process.env;
    const uri = parsePkcs11Uri(o.uri);
    const where = describePkcs11(uri);
    if (uri.type !== undefined && uri.type !== 'private') {
      throw new OtapackError('KEY', `${where}: type=${uri.type} does not name a private key (use type=private or leave type out)`);
    }
    if (uri.object === undefined && uri.id === undefined) {
      throw new OtapackError('KEY', `${where}: the URI does not name a key: add object=LABEL and/or id=%01 (see pkcs11-tool --list-objects)`);
    }
    const module = o.module ?? uri.modulePath ?? env[PKCS11_ENV.module];
    if (!module) {
      throw new OtapackError('KEY', `${where}: no PKCS#11 module: give ${optionName(o.names, 'pkcs11Module')} /path/to/module.so (or $${PKCS11_ENV.module}, or module-path= in the URI)`);
    }
    await access(module, fsc.R_OK).catch((e: NodeJS.ErrnoException) => {
      throw new OtapackError('KEY', `PKCS#11 module ${module}: ${e.code === 'ENOENT' ? 'no such file' : 'not readable'}`);
    });
    const pin = await readPin(uri, env, where);
    const tool = requireTool('pkcs11-tool');

    const listed = await runBinary(tool, ['--module', module, '--list-slots']);
    if (listed.exitCode !== 0) throw toolError(listed, where, module);
    const slot = selectSlot(uri, parseSlotList(listed.stdout.toString('utf8')), where);
    const login = ['--login', '--pin', `env:${CHILD_PIN_VAR}`];
    const pinEnv = { [CHILD_PIN_VAR]: pin };

    // logs in (a wrong PIN stops here, after one attempt) and finds the key's CKA_ID
    const objects = await runBinary(tool, ['--module', module, '--slot', slot.slot, ...login, '--list-objects', '--type', 'privkey'], { env: pinEnv });
    if (objects.exitCode !== 0) throw toolError(objects, where, module);
    const key = selectKey(uri, parseKeyList(objects.stdout.toString('utf8')), where);

    const certErr = (why: string): OtapackError => new OtapackError('KEY', `${where}: ${why}; give the key's certificate with ${optionName(o.names, 'cert')}`);
    let cert = o.cert;
    if (!cert) {
      const r = await runBinary(tool, [...selectArgs(module, slot, key.idHex), ...login, '--read-object', '--type', 'cert'], { env: pinEnv });
      if (r.exitCode !== 0) {
        if (/not found|no object/i.test(r.stderr)) throw certErr(`no certificate with the key's id (${key.idHex}) on the token`);
        throw toolError(r, where, module);
      }
      if (r.stdout.length === 0) throw certErr('the token returned an empty certificate');
      try {
        cert = parseCertificate(r.stdout, `certificate on ${where}`);
      } catch {
        throw certErr('the certificate object on the token is not an X.509 certificate');
      }
    }
    if (o.pss && cert.keyType === 'ec') throw new OtapackError('KEY', `${optionName(o.names, 'pss')} needs an RSA key; this key is EC`);
    const scheme: SigScheme = schemeFor(cert, !!o.pss, o.names);
    const certType = cert.keyType === 'ec' ? 'EC' : 'RSA';
    if (key.keyType && key.keyType !== certType) {
      throw new OtapackError('KEY', `${where}: the key on the token is ${key.keyType} but the certificate ${cert.subject} has an ${certType} key; they do not belong together`);
    }
    const signer = new Pkcs11Signer(tool, module, slot, uri, key.idHex, pin, cert, o.chain ?? [], scheme);
    // One signature up front: a wrong PIN, a missing key or a key that does not belong to the
    // certificate is reported now, before minutes of compression, not after.
    await signer.sign(Buffer.from('otapack: PKCS#11 key check\n'));
    return signer;
  }

  async sign(data: Buffer): Promise<Buffer> {
    const digest = sha256(data);
    let mech: string[];
    let input: Buffer;
    if (this.scheme === 'pkcs1') {
      mech = ['--mechanism', 'RSA-PKCS'];
      input = Buffer.concat([SHA256_DIGEST_INFO, digest]);
    } else if (this.scheme === 'pss') {
      mech = ['--mechanism', 'RSA-PKCS-PSS', '--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', String(PSS_SALT)];
      input = digest;
    } else {
      mech = ['--mechanism', 'ECDSA', '--signature-format', 'openssl'];
      input = digest;
    }
    const where = this.description;
    const r = await runBinary(this.tool, [...selectArgs(this.module, this.slot, this.keyId), '--login', '--pin', `env:${CHILD_PIN_VAR}`, '--sign', ...mech], {
      input, env: { [CHILD_PIN_VAR]: this.pin },
    });
    if (r.exitCode !== 0) throw toolError(r, where, this.module, mech[1]);
    if (r.stdout.length === 0) throw new OtapackError('KEY', `${where}: the token returned no signature`);
    const sig = normalizeSignature(this.cert, this.scheme, r.stdout);
    if (!signatureVerifies(this.cert, this.scheme, data, sig)) {
      throw new OtapackError('KEY', `${where}: the key on the token does not match the certificate ${this.cert.subject} (its signature does not verify)`);
    }
    return sig;
  }
}

const selectArgs = (module: string, slot: TokenSlot, idHex: string): string[] => ['--module', module, '--slot', slot.slot, '--id', idHex];

/** One line for a pkcs11-tool failure; never contains the PIN (it is not in argv or output). */
function toolError(r: BinaryRunResult, where: string, module: string, mechanism?: string): OtapackError {
  const e = r.stderr;
  const code = /CKR_[A-Z_]+/.exec(e)?.[0];
  if (/CKR_PIN_INCORRECT/.test(e)) return new OtapackError('KEY', `${where}: wrong PIN (CKR_PIN_INCORRECT); tokens lock the PIN after a few failed logins`);
  if (/CKR_PIN_LOCKED/.test(e)) return new OtapackError('KEY', `${where}: the user PIN is locked (CKR_PIN_LOCKED); unlock it with the SO PIN`);
  if (/CKR_PIN_LEN_RANGE|CKR_PIN_INVALID/.test(e)) return new OtapackError('KEY', `${where}: the PIN is not acceptable to the token (${code})`);
  if (/CKR_USER_PIN_NOT_INITIALIZED/.test(e)) return new OtapackError('KEY', `${where}: the token has no user PIN yet (${code})`);
  if (/private key not found/i.test(e)) return new OtapackError('KEY', `${where}: no private key with this id on the token (see pkcs11-tool --list-objects --login)`);
  if (/Failed to load pkcs11 module|sc_dlopen/i.test(e)) {
    return new OtapackError('KEY', `PKCS#11 module ${module} cannot be loaded: ${last(e.split('\n').find((l) => /dlopen/.test(l)) ?? e) || 'not a PKCS#11 library'}`);
  }
  if (mechanism && /CKR_MECHANISM_INVALID|CKR_MECHANISM_PARAM_INVALID|CKR_KEY_TYPE_INCONSISTENT|CKR_KEY_FUNCTION_NOT_PERMITTED|CKR_OPERATION_NOT_INITIALIZED|not supported/i.test(e)) {
    return new OtapackError('KEY', `${where}: the token refused ${mechanism} with this key (${code ?? last(e)}); does the certificate belong to this key, and may the key sign?`);
  }
  if (/CKR_TOKEN_NOT_PRESENT|CKR_DEVICE_REMOVED|CKR_SLOT_ID_INVALID/.test(e)) return new OtapackError('KEY', `${where}: the token is not present (${code})`);
  const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
  return new OtapackError('TOOL', `${where}: pkcs11-tool failed (${why}): ${last(e) || 'no output'}`);
}

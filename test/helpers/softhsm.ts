// A private SoftHSM2 token per test: its own SOFTHSM2_CONF and token folder in a temp dir, so
// tests run in parallel and never touch /var/lib/softhsm. Keys are imported (softhsm2-util) or
// generated on the token (pkcs11-tool --keypairgen, the private half never leaves it).
import { execa } from 'execa';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const SOFTHSM_MODULE = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'].find(existsSync) ?? '/usr/lib/softhsm/libsofthsm2.so';

export interface Token {
  dir: string;
  conf: string;
  label: string;
  pin: string;
  soPin: string;
  module: string;
  /** Environment that makes the token visible (SOFTHSM2_CONF). */
  env: Record<string, string>;
}

export async function createToken(dir: string, label = 'otapack-test', pin = '246810'): Promise<Token> {
  mkdirSync(join(dir, 'tokens'), { recursive: true });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env = { SOFTHSM2_CONF: conf };
  const soPin = '13579111';
  await execa('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { env });
  return { dir, conf, label, pin, soPin, module: SOFTHSM_MODULE, env };
}

/** Imports a PKCS#8 PEM private key (unencrypted) as object `label` with CKA_ID `idHex`. */
export async function importKey(t: Token, keyPem: string, label: string, idHex: string): Promise<void> {
  await execa('softhsm2-util', ['--import', keyPem, '--token', t.label, '--label', label, '--id', idHex, '--pin', t.pin], { env: t.env });
}

/** Generates a key pair on the token; returns the public key as PEM (the private key stays there). */
export async function generateOnToken(t: Token, keyType: string, label: string, idHex: string): Promise<string> {
  const base = ['--module', t.module, '--token-label', t.label];
  await execa('pkcs11-tool', [...base, '--login', '--pin', 'env:P', '--keypairgen', '--key-type', keyType, '--label', label, '--id', idHex, '--usage-sign'], { env: { ...t.env, P: t.pin } });
  const der = join(t.dir, `${label}.pub.der`);
  await execa('pkcs11-tool', [...base, '--read-object', '--type', 'pubkey', '--id', idHex, '-o', der], { env: t.env });
  const pem = join(t.dir, `${label}.pub.pem`);
  await execa('openssl', ['pkey', '-pubin', '-inform', 'DER', '-in', der, '-out', pem]);
  return pem;
}

/** Stores a certificate (PEM file) on the token next to the key with the same label and id. */
export async function storeCert(t: Token, certPem: string, label: string, idHex: string): Promise<void> {
  const der = join(t.dir, `${label}.crt.der`);
  await execa('openssl', ['x509', '-in', certPem, '-outform', 'DER', '-out', der]);
  await execa('pkcs11-tool', ['--module', t.module, '--token-label', t.label, '--login', '--pin', 'env:P', '--write-object', der, '--type', 'cert', '--label', label, '--id', idHex], { env: { ...t.env, P: t.pin } });
}

/** A leaf certificate for a public key (PEM) issued by a CA key pair, with openssl x509 -new. */
export async function issueCert(o: { pubkey: string; caCert: string; caKey: string; cn: string; out: string; days?: number }): Promise<string> {
  const ext = `${o.out}.ext`;
  writeFileSync(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection,codeSigning\nsubjectKeyIdentifier=hash\n');
  await execa('openssl', ['x509', '-new', '-subj', `/CN=${o.cn}`, '-force_pubkey', o.pubkey, '-CA', o.caCert, '-CAkey', o.caKey, '-days', String(o.days ?? 3650), '-extfile', ext, '-out', o.out]);
  return o.out;
}

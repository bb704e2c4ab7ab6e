// Certificate chain checks with the rules Debian's SWUpdate client applies (OpenSSL
// X509_verify_cert with the "smime_sign" purpose, or SWUpdate's own codeSigning purpose):
//  - every certificate in the trust file is an anchor; the chain must end in a self-signed
//    anchor (no partial chains: a CA-issued leaf alone in the trust file is refused);
//  - every certificate in the chain must be inside its validity period;
//  - emailProtection: the leaf's EKU, if present, lists emailProtection and its KU, if present,
//    has digitalSignature or nonRepudiation; CA certs' EKU, if present, lists emailProtection;
//  - codeSigning: the leaf must have EKU codeSigning; CA certs' EKU, if present, lists it;
//  - certs above the leaf must be CAs (basicConstraints CA:TRUE; KU, if present, keyCertSign).
import { OID } from './asn1.js';
import type { CertInfo } from './x509.js';

export type CertPurpose = 'emailProtection' | 'codeSigning';

export interface ChainResult {
  ok: boolean;
  chain: CertInfo[];
  problems: string[];
}

const day = (d: Date): string => d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

/** OpenSSL's check_ca(): 0 = not a CA, 1 = CA by basicConstraints, 3/4 = legacy CA forms. */
function checkCa(c: CertInfo): number {
  if (c.keyUsage && !c.keyUsage.has('keyCertSign')) return 0;
  if (c.isCA !== undefined) return c.isCA ? 1 : 0;
  if (c.selfIssued && c.version === 1) return 3;
  if (c.keyUsage) return 4;
  return 0;
}

// Name match plus signature; key-usage rules for issuers are checked separately (checkCa) so a
// failure can be named. (X509Certificate.checkIssued would refuse a self-signed leaf whose KU
// lacks keyCertSign, which OpenSSL accepts as an anchor.)
const issuedBy = (child: CertInfo, parent: CertInfo): boolean => {
  try {
    return child.x509.issuer === parent.x509.subject && child.x509.verify(parent.x509.publicKey);
  } catch {
    return false;
  }
};

export function leafPurposeProblem(leaf: CertInfo, purpose: CertPurpose): string | undefined {
  const eku = leaf.extKeyUsage;
  if (purpose === 'codeSigning') {
    if (!eku || !eku.includes(OID.ekuCodeSigning)) return `signer certificate ${leaf.subject} lacks extended key usage codeSigning (required by --cert-purpose codeSigning)`;
    return undefined;
  }
  if (eku && !eku.includes(OID.ekuEmailProtection)) return `signer certificate ${leaf.subject} has an extended key usage without emailProtection (the client's default purpose)`;
  if (leaf.keyUsage && !leaf.keyUsage.has('digitalSignature') && !leaf.keyUsage.has('nonRepudiation')) {
    return `signer certificate ${leaf.subject} key usage allows neither digitalSignature nor nonRepudiation`;
  }
  return undefined;
}

/** Validates `leaf` against `anchors`, using `pool` (certs carried in the signature) as intermediates. */
export function validateChain(leaf: CertInfo, pool: CertInfo[], anchors: CertInfo[], purpose: CertPurpose, now: Date): ChainResult {
  const problems: string[] = [];
  const isAnchor = (c: CertInfo): boolean => anchors.some((a) => a.der.equals(c.der));
  const chain: CertInfo[] = [leaf];
  let trusted = false;
  for (let depth = 0; depth < 10; depth++) {
    const cur = chain[chain.length - 1]!;
    if (isAnchor(cur) && issuedBy(cur, cur)) { trusted = true; break; }
    const next = [...anchors, ...pool].find((c) => !chain.includes(c) && issuedBy(cur, c));
    if (!next) {
      if (isAnchor(cur)) {
        problems.push(`partial chain: ${cur.subject} is in the trust file but its issuer ${cur.issuer} is not (the client accepts only chains that end in a self-signed certificate of the trust file)`);
      } else {
        problems.push(`signer ${leaf.subject} is not trusted: no certificate in the trust file issued ${cur === leaf ? 'it' : cur.subject}`);
      }
      break;
    }
    chain.push(next);
  }
  if (!trusted && problems.length === 0) problems.push('certificate chain too long or looping');
  for (const c of chain) {
    if (now < c.notBefore) problems.push(`certificate ${c.subject} is not valid before ${day(c.notBefore)}`);
    if (now > c.notAfter) problems.push(`certificate ${c.subject} expired on ${day(c.notAfter)}`);
  }
  const lp = leafPurposeProblem(leaf, purpose);
  if (lp) problems.push(lp);
  chain.slice(1).forEach((c, i) => {
    const wanted = purpose === 'codeSigning' ? OID.ekuCodeSigning : OID.ekuEmailProtection;
    if (c.extKeyUsage && !c.extKeyUsage.includes(wanted)) problems.push(`CA certificate ${c.subject} has an extended key usage without ${purpose}`);
    const ca = checkCa(c);
    const isTop = i + 2 === chain.length;
    if (ca === 0 || (!isTop && ca !== 1)) problems.push(`certificate ${c.subject} signs other certificates but is not a valid CA (basicConstraints/keyUsage)`);
  });
  return { ok: trusted && problems.length === 0, chain, problems };
}

/** Days until the certificate expires (negative when expired). */
export const daysLeft = (c: CertInfo, now: Date): number => Math.floor((c.notAfter.getTime() - now.getTime()) / 86_400_000);

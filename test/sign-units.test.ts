// The pieces of the signing backends that need no token or program: PKCS#11 URI parsing and
// redaction, pkcs11-tool listing parsers and selection, and signature normalisation.
import { describe, test, expect } from 'vitest';
import { generateKeyPairSync, sign, createHash } from 'node:crypto';
import { parsePkcs11Uri, redactPkcs11Uri, describePkcs11 } from '../src/crypto/pkcs11-uri.js';
import { parseSlotList, parseKeyList, selectSlot, selectKey } from '../src/crypto/signer-pkcs11.js';
import { normalizeSignature, signatureVerifies } from '../src/crypto/signer.js';
import { makeCertificate } from '../src/crypto/keygen.js';

describe('PKCS#11 URIs (RFC 7512)', () => {
  test('the RFC examples parse, percent-decoding every value', () => {
    const u = parsePkcs11Uri('pkcs11:token=The%20Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin');
    expect(u).toMatchObject({ token: 'The Software PKCS#11 softtoken', manufacturer: 'Snake Oil, Inc.', model: '1.0', object: 'my-certificate', type: 'cert', serial: '', pinSource: 'file:/etc/token_pin' });
    expect(u.id!.toString('hex')).toBe('69953e5cf4bdec91');
    expect(parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-name=mypkcs11&pin-value=1234')).toMatchObject({ object: 'my-sign-key', type: 'private', moduleName: 'mypkcs11', pinValue: '1234' });
    expect(parsePkcs11Uri('pkcs11:slot-id=7;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so')).toMatchObject({ slotId: 7, modulePath: '/usr/lib/softhsm/libsofthsm2.so' });
    expect(parsePkcs11Uri('pkcs11:')).toEqual({});
  });

  test('typos and malformed values are refused, naming the attribute and never the PIN', () => {
    expect(() => parsePkcs11Uri('pkcs11:objet=a')).toThrow(/unknown path attribute "objet"/);
    expect(() => parsePkcs11Uri('pkcs11:object=a;pin-value=1234')).toThrow(/unknown path attribute "pin-value" \(it belongs in the query, after "\?"\)/);
    expect(() => parsePkcs11Uri('pkcs11:object=a?token=x')).toThrow(/belongs in the path/);
    expect(() => parsePkcs11Uri('pkcs11:object=a;object=b')).toThrow(/appears twice/);
    expect(() => parsePkcs11Uri('pkcs11:id=%zz')).toThrow(/bad percent-encoding/);
    expect(() => parsePkcs11Uri('pkcs11:slot-id=x')).toThrow(/slot-id/);
    expect(() => parsePkcs11Uri('pkcs11:type=secret')).toThrow(/type "secret"/);
    expect(() => parsePkcs11Uri('file:/x')).toThrow(/not a PKCS#11 URI/);
    let msg = '';
    try { parsePkcs11Uri('pkcs11:object=a?pin-value=98765&bogus=1'); } catch (e) { msg = (e as Error).message; }
    expect(msg).toMatch(/bogus/);
    expect(msg).not.toContain('98765');
    expect(() => parsePkcs11Uri('pkcs11:object=a?pin-value=12%x9')).toThrow(/pin-value: bad percent-encoding$/);
  });

  test('redaction and descriptions hide the PIN', () => {
    expect(redactPkcs11Uri('pkcs11:token=t;object=k?pin-value=1234&module-path=/m.so')).toBe('pkcs11:token=t;object=k?pin-value=***&module-path=/m.so');
    expect(describePkcs11(parsePkcs11Uri('pkcs11:token=t;id=%01%ff?pin-value=1234'))).toBe('pkcs11:token=t;id=%01%ff');
  });
});

const SLOTS = `Available slots:
Slot 0 (0x74ed5259): SoftHSM slot ID 0x74ed5259
  token label        : release
  token manufacturer : SoftHSM project
  token model        : SoftHSM v2
  token flags        : login required, rng, token initialized, PIN initialized, other flags=0x20
  hardware version   : 2.6
  firmware version   : 2.6
  serial num         : 0610b89a74ed5259
  pin min/max        : 4/255
Slot 1 (0x2e1a): SoftHSM slot ID 0x2e1a
  token label        : staging
  token manufacturer : SoftHSM project
  token model        : SoftHSM v2
  serial num         : 1111
Slot 2 (0x1): SoftHSM slot ID 0x1
  token state:   uninitialized
`;

const KEYS = `Private Key Object; RSA
  label:      release
  ID:         01
  Usage:      decrypt, sign, unwrap
  Access:     sensitive
Private Key Object; EC
  label:      fleet key
  ID:         0A0B
  Usage:      sign
Private Key Object; RSA
  label:      no-id
  Usage:      sign
`;

describe('pkcs11-tool listings', () => {
  test('slots with tokens and private keys are read; the URI selects exactly one', () => {
    const slots = parseSlotList(SLOTS);
    expect(slots.map((s) => [s.slot, s.label, s.serial])).toEqual([['0x74ed5259', 'release', '0610b89a74ed5259'], ['0x2e1a', 'staging', '1111']]);
    expect(selectSlot(parsePkcs11Uri('pkcs11:token=staging'), slots, 'u').slot).toBe('0x2e1a');
    expect(selectSlot(parsePkcs11Uri('pkcs11:serial=0610b89a74ed5259'), slots, 'u').label).toBe('release');
    expect(selectSlot(parsePkcs11Uri('pkcs11:slot-id=11802'), slots, 'u').label).toBe('staging');
    expect(() => selectSlot(parsePkcs11Uri('pkcs11:model=SoftHSM%20v2'), slots, 'u')).toThrow(/2 tokens match the URI .*add token= or serial=/);
    expect(() => selectSlot(parsePkcs11Uri('pkcs11:token=prod'), slots, 'u')).toThrow(/no token matches the URI \(tokens found: "release" \(serial 0610b89a74ed5259\), "staging" \(serial 1111\)\)/);

    const keys = parseKeyList(KEYS);
    expect(keys).toEqual([{ keyType: 'RSA', label: 'release', idHex: '01' }, { keyType: 'EC', label: 'fleet key', idHex: '0a0b' }, { keyType: 'RSA', label: 'no-id' }]);
    expect(selectKey(parsePkcs11Uri('pkcs11:object=fleet%20key'), keys, 'u').idHex).toBe('0a0b');
    expect(selectKey(parsePkcs11Uri('pkcs11:id=%01'), keys, 'u').label).toBe('release');
    expect(() => selectKey(parsePkcs11Uri('pkcs11:object=release;id=%0a%0b'), keys, 'u')).toThrow(/no private key with this id\/object/);
    expect(() => selectKey(parsePkcs11Uri('pkcs11:object=no-id'), keys, 'u')).toThrow(/has no CKA_ID/);
    expect(() => selectKey(parsePkcs11Uri('pkcs11:object=x'), [...keys, { keyType: 'RSA', label: 'x', idHex: '05' }, { keyType: 'RSA', label: 'x', idHex: '06' }], 'u')).toThrow(/2 private keys match .*add id=/);
  });
});

describe('signatures from outside signers', () => {
  const data = Buffer.from('signed attributes');
  test('ECDSA r||s (P1363) becomes DER; DER stays as is; P-384 too', () => {
    for (const curve of ['prime256v1', 'secp384r1'] as const) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const cert = makeCertificate({ subjectKey: privateKey, cn: 'ec', days: 10, ca: false });
      for (let i = 0; i < 20; i++) {
        const p1363 = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        const der = normalizeSignature(cert, 'ecdsa', p1363);
        expect(der[0]).toBe(0x30);
        expect(signatureVerifies(cert, 'ecdsa', data, der)).toBe(true);
        const native = sign('sha256', data, { key: privateKey, dsaEncoding: 'der' });
        expect(normalizeSignature(cert, 'ecdsa', native).equals(native)).toBe(true);
      }
      // negative twin: another message does not verify
      expect(signatureVerifies(cert, 'ecdsa', Buffer.from('other'), normalizeSignature(cert, 'ecdsa', sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })))).toBe(false);
    }
  });

  test('RSA signatures that lost leading zero bytes are padded back to the modulus length', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const cert = makeCertificate({ subjectKey: privateKey, cn: 'rsa', days: 10, ca: false });
    let found = 0;
    for (let i = 0; i < 3000 && found < 1; i++) {
      const msg = createHash('sha256').update(String(i)).digest();
      const sig = sign('sha256', msg, privateKey);
      if (sig[0] !== 0) continue;
      found++;
      const stripped = sig.subarray(1);
      expect(signatureVerifies(cert, 'pkcs1', msg, normalizeSignature(cert, 'pkcs1', stripped))).toBe(true);
    }
    expect(found).toBe(1);
  });
});

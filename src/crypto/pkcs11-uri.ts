// PKCS#11 URIs (RFC 7512), parsed by hand: a small grammar, and no maintained library covers it
// without pulling in a PKCS#11 binding. `pkcs11:path-attr;path-attr?query-attr&query-attr`, every
// value percent-decoded. Only what otapack uses is interpreted; unknown attributes are refused so
// a typo cannot silently select another key. The PIN (pin-value) is never echoed: use
// `redactPkcs11Uri` for anything that ends up in a message.
import { OtapackError } from '../errors.js';

const PATH_ATTRS = ['token', 'manufacturer', 'serial', 'model', 'library-manufacturer', 'library-description', 'library-version',
  'slot-description', 'slot-manufacturer', 'slot-id', 'object', 'type', 'id'] as const;
const QUERY_ATTRS = ['pin-source', 'pin-value', 'module-name', 'module-path'] as const;

export interface Pkcs11Uri {
  /** Token selection. */
  token?: string;
  manufacturer?: string;
  serial?: string;
  model?: string;
  slotDescription?: string;
  slotManufacturer?: string;
  slotId?: number;
  /** Key selection: CKA_LABEL and CKA_ID (raw bytes). */
  object?: string;
  id?: Buffer;
  type?: string;
  /** Query attributes. */
  pinValue?: string;
  pinSource?: string;
  modulePath?: string;
  moduleName?: string;
}

export const isPkcs11Uri = (s: string | undefined): s is string => !!s && /^pkcs11:/i.test(s.trim());

function decode(raw: string, attr: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new OtapackError('KEY', `PKCS#11 URI: attribute ${attr}: bad percent-encoding${attr === 'pin-value' ? '' : ` "%${hex}"`}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      out.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(out);
}

/** Parses a `pkcs11:` URI. Errors name the attribute, never the PIN. */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  const t = text.trim();
  if (!isPkcs11Uri(t)) throw new OtapackError('KEY', 'not a PKCS#11 URI (must start with "pkcs11:")');
  const body = t.slice('pkcs11:'.length);
  const q = body.indexOf('?');
  const pathPart = q < 0 ? body : body.slice(0, q);
  const queryPart = q < 0 ? '' : body.slice(q + 1);
  const uri: Pkcs11Uri = {};
  const seen = new Set<string>();
  const take = (part: string, sep: string, allowed: readonly string[], where: string): void => {
    for (const pair of part.split(sep)) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new OtapackError('KEY', `PKCS#11 URI: "${pair.startsWith('pin-value') ? 'pin-value' : pair.slice(0, 40)}" is not name=value`);
      const name = pair.slice(0, eq).toLowerCase();
      if (!allowed.includes(name)) {
        const other = where === 'path' ? QUERY_ATTRS : PATH_ATTRS;
        const hint = other.includes(name as never) ? ` (it belongs in the ${where === 'path' ? 'query, after "?"' : 'path, before "?"'})` : '';
        throw new OtapackError('KEY', `PKCS#11 URI: unknown ${where} attribute "${name.slice(0, 40)}"${hint}`);
      }
      if (seen.has(name)) throw new OtapackError('KEY', `PKCS#11 URI: attribute ${name} appears twice`);
      seen.add(name);
      const raw = pair.slice(eq + 1);
      const bytes = decode(raw, name);
      const str = bytes.toString('utf8');
      switch (name) {
        case 'token': uri.token = str; break;
        case 'manufacturer': uri.manufacturer = str; break;
        case 'serial': uri.serial = str; break;
        case 'model': uri.model = str; break;
        case 'slot-description': uri.slotDescription = str; break;
        case 'slot-manufacturer': uri.slotManufacturer = str; break;
        case 'slot-id':
          if (!/^\d+$/.test(str)) throw new OtapackError('KEY', `PKCS#11 URI: slot-id "${str.slice(0, 20)}" is not a decimal number`);
          uri.slotId = Number(str);
          break;
        case 'object': uri.object = str; break;
        case 'id': uri.id = bytes; break;
        case 'type':
          if (!['private', 'public', 'cert', 'secret-key', 'data'].includes(str)) throw new OtapackError('KEY', `PKCS#11 URI: type "${str.slice(0, 20)}" is not private, public, cert, secret-key or data`);
          uri.type = str;
          break;
        case 'pin-value': uri.pinValue = str; break;
        case 'pin-source': uri.pinSource = str; break;
        case 'module-path': uri.modulePath = str; break;
        case 'module-name': uri.moduleName = str; break;
        default: break; // library-* attributes: accepted, not used
      }
    }
  };
  take(pathPart, ';', PATH_ATTRS, 'path');
  take(queryPart, '&', QUERY_ATTRS, 'query');
  return uri;
}

/** The URI with any pin-value replaced, for messages and reports. */
export const redactPkcs11Uri = (text: string): string =>
  text.trim().replace(/([?&;]pin-value=)[^&;]*/gi, '$1***');

/** A short label for messages: token and object, never the PIN. */
export function describePkcs11(u: Pkcs11Uri): string {
  const parts: string[] = [];
  if (u.token !== undefined) parts.push(`token=${u.token}`);
  if (u.serial !== undefined) parts.push(`serial=${u.serial}`);
  if (u.slotId !== undefined) parts.push(`slot-id=${u.slotId}`);
  if (u.object !== undefined) parts.push(`object=${u.object}`);
  if (u.id !== undefined) parts.push(`id=${[...u.id].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`);
  return `pkcs11:${parts.join(';')}`;
}

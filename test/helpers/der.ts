// A minimal DER reader/writer for building BER variants of real structures in tests: parse a
// DER blob into its TLV tree, pick nodes, and write it back with chosen nodes' lengths in a
// non-minimal long form (0x84 + four bytes), which BER allows and DER forbids. Enclosing
// lengths are recomputed, so the result is otherwise the same structure.

export interface Tlv {
  /** The identifier octet (low tag numbers only: enough for X.509 and CMS). */
  id: number;
  content?: Buffer;
  children?: Tlv[];
  /** Write this node's length in long form. */
  longLength?: boolean;
}

export function parseDer(b: Buffer): Tlv {
  const [node, end] = parseAt(b, 0);
  if (end !== b.length) throw new Error(`trailing bytes after the DER value (${b.length - end})`);
  return node;
}

function parseAt(b: Buffer, at: number): [Tlv, number] {
  const id = b[at]!;
  if ((id & 0x1f) === 0x1f) throw new Error('high tag numbers are not supported');
  let len = b[at + 1]!;
  let p = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('indefinite or oversized length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    p += n;
  }
  const end = p + len;
  if (!(id & 0x20)) return [{ id, content: b.subarray(p, end) }, end];
  const children: Tlv[] = [];
  while (p < end) {
    const [c, next] = parseAt(b, p);
    children.push(c);
    p = next;
  }
  return [{ id, children }, end];
}

export function encodeDer(t: Tlv): Buffer {
  const body = t.children ? Buffer.concat(t.children.map(encodeDer)) : t.content!;
  const n = body.length;
  let len: Buffer;
  if (t.longLength) len = Buffer.from([0x84, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  else if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else len = Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([t.id]), len, body]);
}

/** Every node, depth first. */
export function* walk(t: Tlv): Generator<Tlv> {
  yield t;
  for (const c of t.children ?? []) yield* walk(c);
}

/** `der` re-encoded with the length of every node whose DER equals `target` in long form (BER). */
export function berWithin(der: Buffer, target: Buffer): Buffer {
  const root = parseDer(der);
  let hits = 0;
  for (const n of walk(root)) {
    if (encodeDer(n).equals(target)) {
      n.longLength = true;
      hits++;
    }
  }
  if (!hits) throw new Error('target structure not found');
  return encodeDer(root);
}

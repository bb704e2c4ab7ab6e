/*
 * The deflate walker used by native/deflate.c, kept free of N-API and libdeflate so that the
 * fuzz driver (test/fuzz/deflate-walk.c) compiles this very file under ASan/UBSan.
 *
 * dw_walk() decodes a raw deflate stream's block headers, Huffman codes and symbols without
 * writing any output: it counts the bytes the symbols stand for and reports where each block
 * starts and ends. dw_make_piece() uses it to turn libdeflate's complete stream into the
 * byte-aligned, non-final piece that parallel gzip chains (BFINAL cleared, then an empty stored
 * block: a sync flush). RFC 1951 3.2.
 *
 * It accepts exactly what zlib's inflate (the decoder on the device) accepts, and must stay safe
 * for ANY input bytes, because a mistake here would ship a corrupt bundle rather than fail:
 * - every bit read goes through dw_need(), which refills when fewer bits are held than the read
 *   wants, so no caller has to count bits (the bug this replaced: 19 three-bit reads after one
 *   refill that guaranteed 56 bits; the count wrapped and a shift by 2^32-1 followed);
 * - the bit buffer only ever shifts by less than 64, and holds zeros above its count;
 * - bytes past the end are read as zeros for lookahead only; consuming one sets `err`;
 * - every table index is bounded by construction and checked where the bound is not local;
 * - arithmetic is unsigned or bounded (no signed overflow), and the output count stops at a
 *   caller's limit.
 */
#ifndef OTAPACK_DEFLATE_WALK_H
#define OTAPACK_DEFLATE_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { DW_OK = 0, DW_BAD = -1, DW_LIMIT = -2 };

/* ---- bits, LSB first ---- */

typedef struct {
  const uint8_t *start, *p, *end;
  uint64_t buf;  /* the next `cnt` bits of input; zero above them */
  unsigned cnt;  /* 0..64 */
  size_t extra;  /* zero bytes fed past the end (lookahead only) */
  int err;       /* a bit past the end was consumed */
} dw_bits;

static inline uint64_t dw_le64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/* Afterwards cnt is 57..64 (past the end of the input, zeros make up the count). */
static inline void dw_refill(dw_bits *b) {
  if (b->cnt > 56) return;
  if (b->end - b->p >= 8) {
    unsigned k = (64 - b->cnt) >> 3; /* whole bytes that fit: 1..8 */
    uint64_t w = dw_le64(b->p);
    if (k < 8) w &= (UINT64_C(1) << (8 * k)) - 1; /* keep the bits above the count zero */
    b->buf |= w << b->cnt;                          /* cnt <= 56 here */
    b->p += k;
    b->cnt += 8 * k;
    return;
  }
  while (b->cnt <= 56) {
    uint64_t byte = 0;
    if (b->p < b->end) byte = *b->p++;
    else b->extra++;
    b->buf |= byte << b->cnt;
    b->cnt += 8;
  }
}

/* Makes sure n (<= 57) bits are held. */
static inline void dw_need(dw_bits *b, unsigned n) {
  if (b->cnt < n) dw_refill(b);
}

/* Consumes n bits (n <= cnt, n < 64). */
static inline void dw_drop(dw_bits *b, unsigned n) {
  b->buf >>= n;
  b->cnt -= n;
  /* every bit held came from the input or from `extra` zero bytes: more zero bytes than bits
   * still held means one of them was consumed */
  if (b->extra * 8 > b->cnt) b->err = 1;
}

static inline unsigned dw_take(dw_bits *b, unsigned n) { /* n <= 32 */
  if (n > 32) {
    b->err = 1;
    return 0;
  }
  dw_need(b, n);
  unsigned v = (unsigned)(b->buf & ((UINT64_C(1) << n) - 1));
  dw_drop(b, n);
  return v;
}

/* Bits consumed so far. Every held bit was loaded, so this never goes below zero. */
static inline size_t dw_bitpos(const dw_bits *b) { return ((size_t)(b->p - b->start) + b->extra) * 8 - b->cnt; }

/* ---- canonical Huffman codes ---- */

/*
 * A two-level table: the first DW_PRIMARY input bits index t[]; a code longer than that finds,
 * at its prefix, a link to a second-level table indexed by the next `sub` bits. (The first level
 * stays in L1 cache; a single 2^15 table did not.) Entries: code length (bits 0-3), DW_LINK (bit
 * 4), symbol or second-level offset (bits 16-31); length 0 marks a bit pattern that is no code.
 * At most 2^DW_PRIMARY prefixes of 2^(15 - DW_PRIMARY) entries each: DW_TABLE entries in all.
 */
#define DW_PRIMARY 10u
#define DW_LINK 16u
#define DW_MAXLEN 15u
#define DW_TABLE ((1u << DW_PRIMARY) + (1u << DW_PRIMARY) * (1u << (DW_MAXLEN - DW_PRIMARY)))
#define DW_MAXSYMS 288u

typedef struct {
  uint32_t t[DW_TABLE];
  unsigned sub; /* bits indexing a second-level table: longest code - DW_PRIMARY, 0..5 */
} dw_code;

/* What zlib's inflate_table() lets an incomplete code be. */
enum { DW_COMPLETE, /* the code-length code */ DW_ONE_OR_NONE /* literal/length and distance codes: also a single 1-bit code or no code */ };

/* Builds c from lens[0..n). 0, or -1 if the lengths are not a code zlib accepts. */
static int dw_build(dw_code *c, const uint8_t *lens, unsigned n, int kind) {
  unsigned count[DW_MAXLEN + 1] = {0}, next[DW_MAXLEN + 1] = {0};
  unsigned max = 0;
  if (n > DW_MAXSYMS) return -1;
  for (unsigned i = 0; i < n; i++) {
    if (lens[i] > DW_MAXLEN) return -1;
    count[lens[i]]++;
    if (lens[i] > max) max = lens[i];
  }
  count[0] = 0;
  long left = 1; /* unused code space in units of the current length: 0..2^15 */
  for (unsigned l = 1; l <= DW_MAXLEN; l++) {
    left = left * 2 - (long)count[l];
    if (left < 0) return -1; /* over-subscribed */
  }
  if (left > 0 && !(kind == DW_ONE_OR_NONE && max <= 1)) return -1; /* incomplete */
  c->sub = max > DW_PRIMARY ? max - DW_PRIMARY : 0;
  memset(c->t, 0, sizeof(uint32_t) << DW_PRIMARY);
  unsigned used = 1u << DW_PRIMARY; /* where the next second-level table goes */
  unsigned code = 0;
  for (unsigned l = 1; l <= DW_MAXLEN; l++) {
    code = (code + count[l - 1]) << 1;
    next[l] = code; /* + count[l] <= 2^l, as the code is not over-subscribed */
  }
  for (unsigned sym = 0; sym < n; sym++) {
    unsigned l = lens[sym];
    if (!l) continue;
    unsigned cd = next[l]++, rev = 0;
    for (unsigned i = 0; i < l; i++) rev |= ((cd >> i) & 1u) << (l - 1 - i); /* codes are sent MSB first */
    uint32_t e = (uint32_t)sym << 16 | l;
    if (l <= DW_PRIMARY) {
      for (unsigned r = rev; r < (1u << DW_PRIMARY); r += 1u << l) c->t[r] = e;
      continue;
    }
    unsigned prefix = rev & ((1u << DW_PRIMARY) - 1);
    if (!(c->t[prefix] & DW_LINK)) {
      if (c->t[prefix] || used + (1u << c->sub) > DW_TABLE) return -1; /* cannot happen for a prefix code */
      memset(c->t + used, 0, sizeof(uint32_t) << c->sub);
      c->t[prefix] = (uint32_t)used << 16 | DW_LINK;
      used += 1u << c->sub;
    }
    unsigned base = c->t[prefix] >> 16;
    for (unsigned r = rev >> DW_PRIMARY; r < (1u << c->sub); r += 1u << (l - DW_PRIMARY)) c->t[base + r] = e;
  }
  return 0;
}

/* The next symbol, or -1 for a bit pattern that is no code. */
static inline int dw_decode(dw_bits *b, const dw_code *c) {
  dw_need(b, DW_MAXLEN);
  uint32_t e = c->t[b->buf & ((1u << DW_PRIMARY) - 1)];
  if (e & DW_LINK) e = c->t[(e >> 16) + ((b->buf >> DW_PRIMARY) & ((1u << c->sub) - 1))];
  unsigned l = e & 15;
  if (!l) return -1;
  dw_drop(b, l);
  return (int)(e >> 16);
}

static const uint16_t DW_LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t DW_LEXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t DW_DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t DW_DEXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t DW_CLORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

typedef struct {
  dw_code lit, dist, cl;
} dw_tables;

/* One block after its 3 header bits: adds the bytes it stands for to *out (at most `limit`). */
static int dw_block(dw_bits *b, dw_tables *k, unsigned type, size_t *out, size_t limit) {
  if (type == 0) {
    /* stored: LEN and NLEN start at the next byte boundary */
    if (b->err) return DW_BAD;
    size_t at = (dw_bitpos(b) + 7) / 8, total = (size_t)(b->end - b->start);
    if (at > total || total - at < 4) return DW_BAD;
    const uint8_t *q = b->start + at;
    unsigned len = (unsigned)q[0] | (unsigned)q[1] << 8, nlen = (unsigned)q[2] | (unsigned)q[3] << 8;
    if ((len ^ 0xffffu) != nlen) return DW_BAD;
    if (total - at - 4 < len) return DW_BAD;
    if (len > limit - *out) return DW_LIMIT;
    b->p = q + 4 + len;
    b->buf = 0;
    b->cnt = 0;
    b->extra = 0;
    *out += len;
    return DW_OK;
  }
  if (type == 3) return DW_BAD;

  if (type == 1) {
    /* literal/lengths 286 and 287 and distances 30 and 31 have codes but stand for nothing */
    uint8_t fixed[288 + 32];
    for (unsigned i = 0; i < 288; i++) fixed[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    for (unsigned i = 0; i < 32; i++) fixed[288 + i] = 5;
    if (dw_build(&k->lit, fixed, 288, DW_COMPLETE) || dw_build(&k->dist, fixed + 288, 32, DW_COMPLETE)) return DW_BAD;
  } else {
    uint8_t lens[286 + 30];
    unsigned nlit = dw_take(b, 5) + 257;
    unsigned ndist = dw_take(b, 5) + 1;
    unsigned ncl = dw_take(b, 4) + 4;
    if (nlit > 286 || ndist > 30) return DW_BAD; /* zlib: "too many length or distance symbols" */
    uint8_t cl[19] = {0};
    for (unsigned i = 0; i < ncl; i++) cl[DW_CLORDER[i]] = (uint8_t)dw_take(b, 3);
    if (b->err || dw_build(&k->cl, cl, 19, DW_COMPLETE)) return DW_BAD;
    for (unsigned i = 0; i < nlit + ndist;) {
      int s = dw_decode(b, &k->cl);
      if (s < 0 || b->err) return DW_BAD;
      if (s < 16) {
        lens[i++] = (uint8_t)s;
        continue;
      }
      unsigned rep;
      uint8_t val = 0;
      if (s == 16) {
        if (i == 0) return DW_BAD;
        val = lens[i - 1];
        rep = 3 + dw_take(b, 2);
      } else if (s == 17) rep = 3 + dw_take(b, 3);
      else rep = 11 + dw_take(b, 7);
      if (rep > nlit + ndist - i) return DW_BAD;
      while (rep--) lens[i++] = val;
    }
    if (b->err || lens[256] == 0) return DW_BAD; /* zlib: "missing end-of-block" */
    if (dw_build(&k->lit, lens, nlit, DW_ONE_OR_NONE) || dw_build(&k->dist, lens + nlit, ndist, DW_ONE_OR_NONE)) return DW_BAD;
  }

  size_t n = *out; /* <= limit */
  for (;;) {
    int s = dw_decode(b, &k->lit);
    if (s < 0 || b->err) return DW_BAD;
    if (s < 256) {
      if (n == limit) return DW_LIMIT;
      n++;
      continue;
    }
    if (s == 256) break;
    s -= 257;
    if (s >= 29) return DW_BAD;
    unsigned len = DW_LBASE[s] + dw_take(b, DW_LEXTRA[s]);
    int d = dw_decode(b, &k->dist);
    if (d < 0 || d >= 30) return DW_BAD;
    size_t dist = DW_DBASE[d] + dw_take(b, DW_DEXTRA[d]);
    if (b->err || dist > n) return DW_BAD; /* before the start: a piece has no dictionary */
    if (len > limit - n) return DW_LIMIT;
    n += len;
  }
  *out = n;
  return b->err ? DW_BAD : DW_OK;
}

typedef struct {
  size_t final_hdr; /* bit position of the last block's BFINAL bit */
  size_t end;       /* bit position where the stream ends */
  size_t out;       /* bytes it inflates to */
} dw_result;

/* Called after each block: where its header bit is, where it ends, the bytes up to its end. */
typedef void dw_block_fn(void *ctx, size_t hdr, size_t end, size_t out);

/*
 * Walks the raw deflate stream at in[0..len) up to its final block. DW_OK (and *r filled; bytes
 * after the stream's end are not looked at), DW_BAD for anything zlib's inflate would refuse,
 * DW_LIMIT if it stands for more than `limit` bytes.
 */
static int dw_walk(dw_tables *k, const uint8_t *in, size_t len, size_t limit, dw_result *r, dw_block_fn *on_block, void *ctx) {
  dw_bits b = {in, in, in + len, 0, 0, 0, 0};
  size_t out = 0;
  for (;;) {
    size_t hdr = dw_bitpos(&b);
    unsigned final = dw_take(&b, 1), type = dw_take(&b, 2);
    if (b.err) return DW_BAD;
    int rc = dw_block(&b, k, type, &out, limit);
    if (rc != DW_OK) return rc;
    size_t end = dw_bitpos(&b);
    if (on_block) on_block(ctx, hdr, end, out);
    if (final) {
      r->final_hdr = hdr;
      r->end = end;
      r->out = out;
      return DW_OK;
    }
  }
}

/*
 * Turns libdeflate's complete stream buf[0..len) (inflating to `expect` bytes) into a
 * non-final, byte-aligned piece, in place: clears the final block's BFINAL bit and appends an
 * empty stored block (3 header bits, padding, 00 00 ff ff). Returns the new length (at most
 * len + 5 <= cap), or 0 if the stream is not exactly `len` bytes standing for `expect` bytes.
 */
static size_t dw_make_piece(dw_tables *k, uint8_t *buf, size_t len, size_t cap, size_t expect) {
  dw_result r;
  if (cap < len || cap - len < 5) return 0;
  if (dw_walk(k, buf, len, expect, &r, NULL, NULL) != DW_OK || r.out != expect) return 0;
  size_t used = (r.end + 7) / 8; /* a valid walk never ends past len * 8 */
  if (used != len) return 0;
  unsigned pad = (unsigned)(used * 8 - r.end); /* unused bits in the last byte: 0..7 */
  buf[r.final_hdr / 8] &= (uint8_t)~(1u << (r.final_hdr % 8));
  if (pad) buf[used - 1] &= (uint8_t)(0xffu >> pad);
  if (pad < 3) buf[used++] = 0; /* the stored block's 3 header bits do not fit in the padding */
  buf[used++] = 0x00;
  buf[used++] = 0x00;
  buf[used++] = 0xff;
  buf[used++] = 0xff;
  return used;
}

#endif

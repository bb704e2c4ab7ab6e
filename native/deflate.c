/*
 * otapack's fast deflate: libdeflate for the match search, made to produce the byte-aligned,
 * non-final pieces that parallel gzip concatenates into ONE deflate stream.
 *
 * Why native: node:zlib spends ~30 % more CPU than libdeflate for the same output size on a
 * rootfs image, and gzip bundles are compression-bound. libdeflate only compresses whole
 * buffers into a complete stream (its last block has BFINAL set, and the stream may end
 * mid-byte), so each piece is walked once by the small decoder below, which reads the block
 * headers and Huffman codes and counts the bytes the symbols stand for without writing them
 * (zlib's inflate in Z_BLOCK mode does the same walk at twice the cost: it also writes the
 * output). That gives the final block's header, whose BFINAL bit is cleared, and the bit where
 * the stream ends, after which an empty stored block (a sync flush: 3 header bits, padding,
 * 00 00 ff ff) byte-aligns the piece. The walk also proves the piece stands for exactly the
 * input length and never reaches before its start. RFC 1951 3.2.
 *
 * JS API (context-aware, so every worker thread gets its own state):
 *   deflate(data: Uint8Array, level: number, last: boolean): Buffer
 *   crc32(crc: number, data: Uint8Array): number   (gzip's CRC-32, as zlib's crc32(); carry-less
 *     multiply, ~4x node:zlib's on this CPU - it runs over the whole input in the main thread)
 *   version(): string   (libdeflate's version)
 */
#include <libdeflate.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVEL 12

typedef struct codes codes_t; /* the walker's Huffman tables, one set per thread */

typedef struct {
  struct libdeflate_compressor *c[MAX_LEVEL + 1];
  codes_t *codes;
  uint8_t *out;
  size_t out_cap;
} state_t;

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  state_t *s = data;
  for (int i = 0; i <= MAX_LEVEL; i++)
    if (s->c[i]) libdeflate_free_compressor(s->c[i]);
  free(s->codes);
  free(s->out);
  free(s);
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, "OTAPACK_DEFLATE", msg);
  return NULL;
}

/* ---- a deflate walker: decodes symbols without producing output (RFC 1951 3.2) ---- */

static inline uint64_t le64(uint64_t w) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap64(w);
#else
  return w;
#endif
}

typedef struct {
  const uint8_t *start, *p, *end;
  uint64_t buf;   /* bits not consumed yet, LSB first */
  unsigned cnt;   /* how many */
  unsigned extra; /* zero bytes fed past the end (a valid stream never consumes them) */
} bits_t;

static inline void refill(bits_t *b) {
  if (b->end - b->p >= 8) {
    /* a whole word at once: the bits above `cnt` are always the true next input bits (or zero),
     * so OR-ing the word in again later changes nothing (branch-free refill) */
    uint64_t w;
    memcpy(&w, b->p, 8);
    b->buf |= le64(w) << b->cnt;
    b->p += (63 - b->cnt) >> 3;
    b->cnt |= 56;
    return;
  }
  while (b->cnt <= 56) {
    if (b->p < b->end) b->buf |= (uint64_t)*b->p++ << b->cnt;
    else b->extra++;
    b->cnt += 8;
  }
}
static inline unsigned take(bits_t *b, unsigned n) { /* n <= 32, after refill */
  unsigned v = (unsigned)(b->buf & ((1ull << n) - 1));
  b->buf >>= n;
  b->cnt -= n;
  return v;
}
static inline size_t bitpos(const bits_t *b) { return (size_t)(b->p - b->start + b->extra) * 8 - b->cnt; }

/*
 * A canonical Huffman code as a two-level table: the first PRIMARY input bits index t[]; a
 * code longer than that finds, at its prefix, a link to a second-level table indexed by the
 * next `sub` bits. The first level stays in L1 cache (a single 2^15 table did not). Entries:
 * length (bits 0-3), LINK flag (bit 4), symbol or second-level offset (bits 16-31); length 0
 * marks a bit pattern that is not a code.
 */
#define PRIMARY 10
#define LINK 16u
typedef struct {
  uint32_t t[(1 << PRIMARY) + (1 << 15)];
  unsigned sub; /* bits indexing a second-level table: longest code - PRIMARY */
} code_t;

static int build(code_t *c, const uint8_t *lens, unsigned n) {
  unsigned count[16] = {0}, next[16];
  unsigned max = 0;
  for (unsigned i = 0; i < n; i++) {
    count[lens[i]]++;
    if (lens[i] > max) max = lens[i];
  }
  count[0] = 0;
  int left = 1;
  for (unsigned l = 1; l < 16; l++) {
    left = left * 2 - (int)count[l];
    if (left < 0) return -1; /* over-subscribed */
  }
  c->sub = max > PRIMARY ? max - PRIMARY : 0;
  memset(c->t, 0, sizeof(uint32_t) << PRIMARY);
  unsigned used = 1u << PRIMARY; /* where the next second-level table goes */
  unsigned code = 0;
  for (unsigned l = 1; l < 16; l++) {
    code = (code + count[l - 1]) << 1;
    next[l] = code;
  }
  for (unsigned sym = 0; sym < n; sym++) {
    unsigned l = lens[sym];
    if (!l) continue;
    unsigned cd = next[l]++, rev = 0;
    for (unsigned i = 0; i < l; i++) rev |= ((cd >> i) & 1) << (l - 1 - i); /* codes are sent MSB first */
    uint32_t e = (uint32_t)sym << 16 | l;
    if (l <= PRIMARY) {
      for (unsigned r = rev; r < (1u << PRIMARY); r += 1u << l) c->t[r] = e;
      continue;
    }
    unsigned prefix = rev & ((1u << PRIMARY) - 1);
    if (!(c->t[prefix] & LINK)) {
      memset(c->t + used, 0, sizeof(uint32_t) << c->sub);
      c->t[prefix] = (uint32_t)used << 16 | LINK;
      used += 1u << c->sub;
    }
    uint32_t base = c->t[prefix] >> 16;
    for (unsigned r = rev >> PRIMARY; r < (1u << c->sub); r += 1u << (l - PRIMARY)) c->t[base + r] = e;
  }
  return 0;
}

static inline int decode(bits_t *b, const code_t *c) { /* after refill; -1 for a code that is not in the table */
  uint32_t e = c->t[b->buf & ((1u << PRIMARY) - 1)];
  if (e & LINK) e = c->t[(e >> 16) + ((b->buf >> PRIMARY) & ((1u << c->sub) - 1))];
  unsigned l = e & 15;
  if (!l) return -1;
  b->buf >>= l;
  b->cnt -= l;
  return (int)(e >> 16);
}

static const uint16_t LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LEXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t DEXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t CLORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

struct codes {
  code_t lit, dist, cl;
};

/* Decodes one block's symbols; adds the bytes it stands for to *out. 0, or -1 if invalid. */
static int walk_block(bits_t *b, codes_t *k, unsigned type, size_t *out) {
  if (type == 1 || type == 2) {
    uint8_t lens[320];
    unsigned nlit = 288, ndist = 32;
    if (type == 1) {
      for (unsigned i = 0; i < 288; i++) lens[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
      for (unsigned i = 0; i < 32; i++) lens[288 + i] = 5;
    } else {
      refill(b);
      nlit = take(b, 5) + 257;
      ndist = take(b, 5) + 1;
      unsigned ncl = take(b, 4) + 4;
      if (nlit > 286 || ndist > 30) return -1;
      uint8_t cl[19] = {0};
      refill(b);
      for (unsigned i = 0; i < ncl; i++) cl[CLORDER[i]] = (uint8_t)take(b, 3);
      if (build(&k->cl, cl, 19)) return -1;
      for (unsigned i = 0; i < nlit + ndist;) {
        refill(b);
        if (b->extra > 8) return -1;
        int s = decode(b, &k->cl);
        if (s < 0) return -1;
        if (s < 16) { lens[i++] = (uint8_t)s; continue; }
        unsigned rep, val = 0;
        if (s == 16) {
          if (i == 0) return -1;
          val = lens[i - 1];
          rep = 3 + take(b, 2);
        } else if (s == 17) rep = 3 + take(b, 3);
        else rep = 11 + take(b, 7);
        if (i + rep > nlit + ndist) return -1;
        while (rep--) lens[i++] = (uint8_t)val;
      }
      if (lens[256] == 0) return -1; /* no end-of-block code */
    }
    if (build(&k->lit, lens, nlit) || build(&k->dist, lens + nlit, ndist)) return -1;
    size_t n = *out;
    for (;;) {
      refill(b);
      if (b->extra > 8) return -1; /* ran past the end */
      int s = decode(b, &k->lit);
      if (s < 0) return -1;
      if (s < 256) { n++; continue; }
      if (s == 256) break;
      s -= 257;
      if (s >= 29) return -1;
      unsigned len = LBASE[s] + take(b, LEXTRA[s]);
      int d = decode(b, &k->dist);
      if (d < 0 || d >= 30) return -1;
      size_t dist = DBASE[d] + take(b, DEXTRA[d]);
      if (dist > n) return -1; /* before the start: the pieces have no dictionary */
      n += len;
    }
    *out = n;
    return b->extra > 8 ? -1 : 0;
  }
  if (type == 0) {
    size_t at = (bitpos(b) + 7) / 8; /* stored: LEN and NLEN start at the next byte */
    if (at + 4 > (size_t)(b->end - b->start)) return -1;
    const uint8_t *q = b->start + at;
    unsigned len = q[0] | q[1] << 8, nlen = q[2] | q[3] << 8;
    if ((len ^ 0xffff) != nlen || at + 4 + len > (size_t)(b->end - b->start)) return -1;
    b->p = q + 4 + len;
    b->buf = 0;
    b->cnt = 0;
    b->extra = 0;
    *out += len;
    return 0;
  }
  return -1;
}

/*
 * Turns libdeflate's complete stream buf[0..len) (inflating to `expect` bytes) into a
 * non-final, byte-aligned piece. Returns the new length, or 0 if the stream is not what it
 * should be. buf must have room for len + 5 bytes.
 */
static size_t make_piece(codes_t *k, uint8_t *buf, size_t len, size_t expect) {
  bits_t b = {buf, buf, buf + len, 0, 0, 0};
  size_t out = 0;
  for (;;) {
    size_t hdr = bitpos(&b); /* the BFINAL bit of this block */
    refill(&b);
    unsigned final = take(&b, 1), type = take(&b, 2);
    if (walk_block(&b, k, type, &out)) return 0;
    if (!final) continue;
    size_t end = bitpos(&b);
    size_t used = (end + 7) / 8;
    unsigned pad = (unsigned)(used * 8 - end); /* unused bits in the last byte */
    if (out != expect || used != len) return 0;
    buf[hdr / 8] &= (uint8_t)~(1u << (hdr % 8));
    if (pad) buf[used - 1] &= (uint8_t)(0xff >> pad);
    if (pad < 3) buf[used++] = 0; /* the stored block's 3 header bits do not fit in the padding */
    buf[used++] = 0x00;
    buf[used++] = 0x00;
    buf[used++] = 0xff;
    buf[used++] = 0xff;
    return used;
  }
}

static napi_value js_deflate(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return fail(env, "deflate(data, level, last)");
  state_t *s;
  if (napi_get_instance_data(env, (void **)&s) != napi_ok || !s) return fail(env, "no state");

  napi_typedarray_type type;
  size_t n;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[0], &type, &n, &data, &ab, &off) != napi_ok || type != napi_uint8_array) return fail(env, "data must be a Uint8Array");
  int32_t level;
  if (napi_get_value_int32(env, argv[1], &level) != napi_ok || level < 1 || level > MAX_LEVEL) return fail(env, "level must be 1-12");
  bool last;
  if (napi_get_value_bool(env, argv[2], &last) != napi_ok) return fail(env, "last must be a boolean");

  if (!s->c[level] && !(s->c[level] = libdeflate_alloc_compressor(level))) return fail(env, "out of memory");
  size_t cap = libdeflate_deflate_compress_bound(s->c[level], n) + 16;
  if (cap > s->out_cap) {
    uint8_t *p = realloc(s->out, cap);
    if (!p) return fail(env, "out of memory");
    s->out = p;
    s->out_cap = cap;
  }
  size_t m = libdeflate_deflate_compress(s->c[level], data, n, s->out, s->out_cap - 16);
  if (m == 0) return fail(env, "libdeflate: output did not fit");
  if (!last) {
    m = make_piece(s->codes, s->out, m, n);
    if (m == 0) return fail(env, "libdeflate's stream did not walk back to its input length");
  }
  napi_value result;
  void *copy;
  if (napi_create_buffer_copy(env, m, s->out, &copy, &result) != napi_ok) return fail(env, "out of memory");
  return result;
}

static napi_value js_crc32(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return fail(env, "crc32(crc, data)");
  uint32_t crc;
  if (napi_get_value_uint32(env, argv[0], &crc) != napi_ok) return fail(env, "crc must be a number");
  napi_typedarray_type type;
  size_t n;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[1], &type, &n, &data, &ab, &off) != napi_ok || type != napi_uint8_array) return fail(env, "data must be a Uint8Array");
  napi_value v;
  napi_create_uint32(env, libdeflate_crc32(crc, data, n), &v);
  return v;
}

static napi_value js_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_string_utf8(env, LIBDEFLATE_VERSION_STRING, NAPI_AUTO_LENGTH, &v);
  return v;
}

NAPI_MODULE_INIT() {
  state_t *s = calloc(1, sizeof *s);
  if (!s || !(s->codes = malloc(sizeof *s->codes))) {
    free(s);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_set_instance_data(env, s, free_state, NULL);
  napi_property_descriptor props[] = {
    { "deflate", NULL, js_deflate, NULL, NULL, NULL, napi_default, NULL },
    { "crc32", NULL, js_crc32, NULL, NULL, NULL, napi_default, NULL },
    { "version", NULL, js_version, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}

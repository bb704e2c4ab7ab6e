/*
 * Fuzz driver for the deflate walker the native addon ships (native/deflate-walk.h, included
 * here as it is by native/deflate.c). Built and run under -fsanitize=address,undefined
 * -fno-sanitize-recover=all by test/fuzz/native.mjs (`npm run fuzz:native`, .ci/run): any
 * sanitizer report ends the run with a non-zero exit.
 *
 * Every input is judged three ways: the walker, zlib's inflate (the decoder on the device) and
 * libdeflate's decompressor. The walker must accept exactly what zlib accepts, ending at the same
 * byte and standing for the same number of bytes; whatever it accepts, libdeflate must accept
 * alike (libdeflate is more lenient: it takes HLIT up to 288, repeat overruns, a one-symbol
 * code-length code...). Where a stream is accepted, every block boundary the walker found is
 * checked by setting that block's BFINAL bit and inflating again (zlib and libdeflate must stop
 * at the walker's end of that block with the walker's byte count), and dw_make_piece() must turn
 * the stream into a piece that, followed by an empty final block, inflates to the same bytes.
 *
 * Inputs: libdeflate's own output at every level 0..12 over random, text, zeros, repetitive,
 * tiny and empty inputs (plus data built to give 15-bit codes, hence HCLEN=15); mutations of it;
 * streams written here with random Huffman codes (lengths 1..15, all 19 code-length codes,
 * single-symbol and empty codes, stored and fixed blocks), valid and with one defect each
 * (HLIT/HDIST too large, over-subscribed or incomplete codes, bad repeats, missing end-of-block,
 * distances too far back, stored LEN/NLEN mismatch, block type 3, truncation, trailing bytes);
 * random bytes. Deterministic: `--seed N` (default 1) and `--scale N` (default 1; the work grows
 * with it) fix every input.
 *
 *   deflate-walk-fuzz [--seed N] [--scale N] [--plant-mismatch] [--selftest-ubsan|--selftest-asan]
 */
#define _POSIX_C_SOURCE 200809L
#include "deflate-walk.h"

#include <libdeflate.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

#define LIMIT_MAX (4u << 20) /* the most output any case may stand for */

static uint8_t *out_a, *out_b; /* zlib's and libdeflate's output */
static dw_tables *tables;
static struct libdeflate_decompressor *ld;
static int plant, planted; /* --plant-mismatch: pretend the walker miscounted once (proves mismatches fail the run) */

/* ---- seeded randomness ---- */

static uint64_t rs;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rs += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}
static unsigned below(unsigned n) { return n ? (unsigned)(rnd() % n) : 0; }
static int chance(unsigned pct) { return below(100) < pct; }

/* ---- results ---- */

static unsigned long cases, accepted, mismatches, boundaries_checked, pieces_checked;
static unsigned long hclen19[2]; /* accepted dynamic blocks sending all 19 code-length codes: libdeflate's, others */
static const char *category = "";
static unsigned long case_no;

static void mismatch(const uint8_t *in, size_t len, const char *fmt, ...) {
  va_list ap;
  mismatches++;
  fprintf(stderr, "MISMATCH [%s #%lu, %zu bytes]: ", category, case_no, len);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n  first bytes:");
  for (size_t i = 0; i < len && i < 48; i++) fprintf(stderr, " %02x", in[i]);
  fprintf(stderr, "\n");
  if (mismatches >= 20 || planted) { /* (a planted mismatch has shown what it had to) */
    fprintf(stderr, planted ? "stopping at the planted mismatch\n" : "too many mismatches, stopping\n");
    exit(1);
  }
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* ---- the oracles ---- */

typedef struct {
  int ok;
  size_t in, out;
} verdict;

static verdict zlib_inflate(const uint8_t *in, size_t len, size_t limit) {
  verdict v = {0, 0, 0};
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -15) != Z_OK) exit(2);
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)len;
  z.next_out = out_a;
  z.avail_out = (uInt)limit;
  int rc = inflate(&z, Z_NO_FLUSH); /* one call: distances reach back into this output only */
  if (rc == Z_STREAM_END) {
    v.ok = 1;
    v.in = len - z.avail_in;
    v.out = z.total_out;
  }
  inflateEnd(&z);
  return v;
}

static verdict libdeflate_inflate(const uint8_t *in, size_t len, size_t limit) {
  verdict v = {0, 0, 0};
  if (libdeflate_deflate_decompress_ex(ld, in, len, out_b, limit, &v.in, &v.out) == LIBDEFLATE_SUCCESS) v.ok = 1;
  return v;
}

/* ---- one input, judged three ways ---- */

#define MAX_BLOCKS 4096
typedef struct {
  size_t n, hdr[MAX_BLOCKS], end[MAX_BLOCKS], out[MAX_BLOCKS];
} blocks_t;
static blocks_t blocks;

static void on_block(void *ctx, size_t hdr, size_t end, size_t out) {
  blocks_t *b = ctx;
  if (b->n < MAX_BLOCKS) {
    b->hdr[b->n] = hdr;
    b->end[b->n] = end;
    b->out[b->n] = out;
  }
  b->n++;
}

static unsigned bits_at(const uint8_t *in, size_t len, size_t pos, unsigned n) {
  unsigned v = 0;
  for (unsigned i = 0; i < n; i++, pos++)
    if (pos / 8 < len) v |= (unsigned)((in[pos / 8] >> (pos % 8)) & 1u) << i;
  return v;
}

/* Judges in[0..len) with the output limited to `limit`; returns whether the walker accepted it. */
static int check(const uint8_t *src, size_t len, size_t limit) {
  cases++;
  if (limit > LIMIT_MAX) limit = LIMIT_MAX;
  /* an exact-size copy, so that ASan sees any read past the end */
  uint8_t *in = xmalloc(len);
  if (len) memcpy(in, src, len);
  dw_result r = {0, 0, 0};
  blocks.n = 0;
  int rc = dw_walk(tables, in, len, limit, &r, on_block, &blocks);
  if (rc == DW_OK && plant) {
    plant = 0;
    planted = 1;
    r.out++;
  }
  verdict z = zlib_inflate(in, len, limit);
  int ok = rc == DW_OK;
  size_t used = ok ? (r.end + 7) / 8 : 0;
  if (ok != z.ok) mismatch(in, len, "walker %s (%d), zlib %s", ok ? "accepts" : "refuses", rc, z.ok ? "accepts" : "refuses");
  else if (ok && (used != z.in || r.out != z.out)) mismatch(in, len, "walker ends at byte %zu with %zu bytes out, zlib at %zu with %zu", used, r.out, z.in, z.out);
  if (ok) {
    accepted++;
    if (r.end > (size_t)len * 8 || blocks.n == 0 || blocks.n > MAX_BLOCKS || blocks.hdr[blocks.n - 1] != r.final_hdr || blocks.end[blocks.n - 1] != r.end)
      mismatch(in, len, "walker's result is inconsistent (end bit %zu, %zu blocks)", r.end, blocks.n);
    verdict d = libdeflate_inflate(in, len, limit);
    if (!d.ok || d.in != used || d.out != r.out) mismatch(in, len, "walker accepts (byte %zu, %zu out), libdeflate %s (byte %zu, %zu out)", used, r.out, d.ok ? "accepts" : "refuses", d.in, d.out);
    else if (z.ok && z.out == d.out && memcmp(out_a, out_b, d.out)) mismatch(in, len, "zlib and libdeflate inflate to different bytes");
    for (size_t i = 0; i < blocks.n && i < MAX_BLOCKS; i++) {
      size_t h = blocks.hdr[i]; /* BFINAL, BTYPE (2 bits), HLIT (5), HDIST (5), HCLEN (4) */
      unsigned type = bits_at(in, len, h + 1, 2), hclen = bits_at(in, len, h + 13, 4);
      if (type == 2 && hclen == 15) hclen19[strcmp(category, "libdeflate") != 0]++;
    }
    /* each block boundary (24 of them at most, the last always): with BFINAL set there, both
     * decoders must stop where the walker said */
    uint8_t *cut = xmalloc(len);
    size_t nb = blocks.n < MAX_BLOCKS ? blocks.n : MAX_BLOCKS;
    size_t step = nb > 24 ? nb / 24 : 1;
    for (size_t i = 0; i < nb; i = (i + step < nb - 1) ? i + step : i == nb - 1 ? nb : nb - 1) {
      memcpy(cut, in, len);
      cut[blocks.hdr[i] / 8] |= (uint8_t)(1u << (blocks.hdr[i] % 8));
      verdict zc = zlib_inflate(cut, len, limit), dc = libdeflate_inflate(cut, len, limit);
      size_t want = (blocks.end[i] + 7) / 8;
      if (!zc.ok || zc.in != want || zc.out != blocks.out[i] || !dc.ok || dc.in != want || dc.out != blocks.out[i])
        mismatch(in, len, "block %zu (header bit %zu) made final: walker says byte %zu, %zu out; zlib %d %zu %zu, libdeflate %d %zu %zu", i, blocks.hdr[i], want, blocks.out[i], zc.ok, zc.in, zc.out, dc.ok, dc.in, dc.out);
      boundaries_checked++;
    }
    free(cut);
  }
  /* the piece: made only from a whole stream with the right length; it must inflate alike */
  size_t expect = ok ? r.out : (size_t)below(1000);
  uint8_t *piece = xmalloc(len + 5);
  if (len) memcpy(piece, in, len);
  size_t pl = dw_make_piece(tables, piece, len, len + 5, expect);
  int whole = ok && used == len;
  if (!whole != !pl) mismatch(in, len, "dw_make_piece returned %zu for a stream that %s", pl, whole ? "is whole" : "is not a whole stream");
  if (!pl && len && memcmp(piece, in, len)) mismatch(in, len, "dw_make_piece refused but changed the buffer");
  if (pl) {
    pieces_checked++;
    if (pl < len + 4 || pl > len + 5 || memcmp(piece + pl - 4, "\x00\x00\xff\xff", 4)) mismatch(in, len, "the piece (%zu bytes) does not end in a sync flush", pl);
    /* followed by an empty final fixed block (bits 1, 01, 0000000), it inflates to the stream's bytes */
    uint8_t *whole_stream = xmalloc(pl + 2);
    memcpy(whole_stream, piece, pl);
    whole_stream[pl] = 0x03;
    whole_stream[pl + 1] = 0x00;
    verdict z0 = zlib_inflate(in, len, limit); /* the original's bytes, kept in out_b */
    memcpy(out_b, out_a, z0.out);
    verdict zp = zlib_inflate(whole_stream, pl + 2, limit);
    if (!zp.ok || zp.in != pl + 2 || zp.out != r.out || memcmp(out_a, out_b, r.out)) mismatch(in, len, "the piece does not inflate to the stream's bytes");
    /* a wrong length is refused, and the buffer is left alone */
    memcpy(piece, in, len);
    if (dw_make_piece(tables, piece, len, len + 5, r.out + 1) || (r.out && dw_make_piece(tables, piece, len, len + 5, r.out - 1)) || dw_make_piece(tables, piece, len, len + 4, r.out))
      mismatch(in, len, "dw_make_piece accepted a wrong length or too small a buffer");
    if (memcmp(piece, in, len)) mismatch(in, len, "a refused dw_make_piece changed the buffer");
    free(whole_stream);
  }
  free(piece);
  /* one byte less room than the stream stands for: refused by all */
  if (ok && r.out > 0 && chance(20)) {
    dw_result r2;
    int rc2 = dw_walk(tables, in, len, r.out - 1, &r2, NULL, NULL);
    verdict z2 = zlib_inflate(in, len, r.out - 1);
    if (rc2 != DW_LIMIT || z2.ok) mismatch(in, len, "with room for %zu of %zu bytes: walker %d, zlib %d", r.out - 1, r.out, rc2, z2.ok);
  }
  free(in);
  return ok;
}

/* ---- inputs for libdeflate ---- */

enum { K_RANDOM, K_TEXT, K_ZEROS, K_REPEAT, K_TINY, K_EMPTY, K_SKEWED, K_FIBDIST, K_MIXED, K_KINDS };
static const char *KIND[K_KINDS] = {"random", "text", "zeros", "repetitive", "tiny", "empty", "skewed", "15-bit codes", "mixed"};

static void fill_text(uint8_t *b, size_t n) {
  static const char *W[] = {"the", "image", "bundle", "swupdate", "partition", "rootfs", "signed", "of", "and", "a", "to", "update", "boot", "slot", "kernel", "otapack", "deflate", "block", "gzip", "device"};
  size_t i = 0;
  while (i < n) {
    const char *w = W[below(20)];
    while (*w && i < n) b[i++] = (uint8_t)*w++;
    if (i < n) b[i++] = chance(8) ? '\n' : chance(10) ? ',' : ' ';
  }
}

/* random bytes with 3-byte copies whose distance classes come in Fibonacci proportions: the
 * distance code wants codewords longer than 15 bits, libdeflate limits them to 15, so the
 * code-length code uses all 19 codes (HCLEN=15) - the input that showed the old walker's bug */
static void fill_fibdist(uint8_t *b, size_t n) {
  uint32_t w[30], tot = 0;
  for (int c = 0; c < 30; c++) tot += (w[c] = (uint32_t)(1000000.0 / __builtin_pow(1.618034, c)) + 1);
  size_t i = 0;
  while (i < n) {
    b[i++] = (uint8_t)rnd();
    uint32_t r = (uint32_t)(rnd() % tot);
    int c = 0;
    while (c < 29 && r >= w[c]) r -= w[c++];
    size_t d = DW_DBASE[c];
    for (int k = 0; k < 3 && i < n && d <= i; k++, i++) b[i] = b[i - d];
  }
}

static void fill(uint8_t *b, size_t n, int kind) {
  switch (kind) {
  case K_RANDOM:
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
    break;
  case K_TEXT:
    fill_text(b, n);
    break;
  case K_ZEROS:
  case K_EMPTY:
    memset(b, 0, n);
    break;
  case K_REPEAT: {
    size_t period = 1 + below(300);
    for (size_t i = 0; i < n; i++) b[i] = i < period ? (uint8_t)rnd() : b[i - period];
    break;
  }
  case K_TINY:
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(chance(50) ? 'a' + below(3) : rnd());
    break;
  case K_SKEWED: /* literal frequencies falling off geometrically */
    for (size_t i = 0; i < n; i++) {
      unsigned s = 0;
      while (s < 40 && chance(45)) s++;
      b[i] = (uint8_t)(s * 7 + (chance(2) ? below(256) : 0));
    }
    break;
  case K_FIBDIST:
    fill_fibdist(b, n);
    break;
  default: { /* runs of the others */
    size_t i = 0;
    while (i < n) {
      size_t k = 1 + below(20000);
      if (k > n - i) k = n - i;
      fill(b + i, k, (int)below(K_MIXED));
      i += k;
    }
  }
  }
}

static size_t kind_size(int kind, unsigned scale) {
  switch (kind) {
  case K_EMPTY: return 0;
  case K_TINY: return below(40);
  case K_FIBDIST: return 20000 + below(50000); /* (and 300-450 KB every other round: see below) */
  default: {
    unsigned r = below(100);
    size_t n = r < 40 ? below(300) : r < 75 ? below(8000) : r < 95 ? below(70000) : below(300000 * scale);
    return n;
  }
  }
}

/* Bit flips, byte changes, truncation, insertion, trailing garbage. */
static size_t mutate(uint8_t *b, size_t len, size_t cap) {
  unsigned edits = 1 + below(3);
  for (unsigned e = 0; e < edits; e++) {
    size_t at = len ? below((unsigned)len) : 0;
    switch (below(6)) {
    case 0:
    case 1:
      if (len) b[at] ^= (uint8_t)(1u << below(8));
      break;
    case 2:
      if (len) b[at] = (uint8_t)rnd();
      break;
    case 3:
      len = at + (len > at && chance(50) ? 1 : 0);
      break;
    case 4:
      if (len < cap) {
        memmove(b + at + 1, b + at, len - at);
        b[at] = (uint8_t)rnd();
        len++;
      }
      break;
    default:
      for (unsigned k = below(8) + 1; k && len < cap; k--) b[len++] = (uint8_t)rnd();
    }
  }
  return len;
}

static void libdeflate_cases(unsigned scale) {
  size_t cap = 2 * 400000 * (size_t)scale + 1024;
  uint8_t *data = xmalloc(cap), *comp = xmalloc(cap + 64 * 1024), *mut = xmalloc(cap + 64 * 1024 + 64);
  struct libdeflate_compressor *c[13];
  for (int l = 0; l <= 12; l++)
    if (!(c[l] = libdeflate_alloc_compressor(l))) {
      fprintf(stderr, "libdeflate has no level %d\n", l);
      exit(2);
    }
  for (int kind = 0; kind < K_KINDS; kind++) {
    unsigned rounds = (kind == K_EMPTY ? 1 : kind == K_FIBDIST ? 4 : 12) * scale;
    for (unsigned round = 0; round < rounds; round++) {
      size_t n = kind_size(kind, scale);
      /* libdeflate gives 15-bit codes (and HCLEN=15) at levels 10-12 on blocks this large */
      if (kind == K_FIBDIST && round % 2) n = 300000 + below(150000);
      if (n > cap) n = cap;
      fill(data, n, kind);
      for (int level = 0; level <= 12; level++) {
        if (kind == K_FIBDIST && level < 10 && round % 2) continue;
        size_t m = libdeflate_deflate_compress(c[level], data, n, comp, libdeflate_deflate_compress_bound(c[level], n));
        if (!m) {
          fprintf(stderr, "libdeflate: output did not fit\n");
          exit(2);
        }
        category = "libdeflate";
        case_no++;
        if (!check(comp, m, n))
          mismatch(comp, m, "the walker refuses libdeflate's level-%d stream of %zu %s bytes", level, n, KIND[kind]);
        /* mutants: the small ones, several each */
        if (m <= 20000) {
          category = "libdeflate mutant";
          for (unsigned k = 0; k < 6; k++) {
            memcpy(mut, comp, m);
            size_t ml = mutate(mut, m, m + 64);
            case_no++;
            check(mut, ml, n + 4096);
          }
        }
      }
    }
  }
  for (int l = 0; l <= 12; l++) libdeflate_free_compressor(c[l]);
  free(data);
  free(comp);
  free(mut);
}

/* ---- streams written here ---- */

typedef struct {
  uint8_t *b;
  size_t cap, bits;
} bw_t;

static void put(bw_t *w, uint32_t v, unsigned n) { /* LSB first */
  for (unsigned i = 0; i < n; i++, w->bits++) {
    if (w->bits / 8 >= w->cap) return; /* full: the stream is cut short */
    if (w->bits % 8 == 0) w->b[w->bits / 8] = 0;
    w->b[w->bits / 8] |= (uint8_t)(((v >> i) & 1u) << (w->bits % 8));
  }
}
static void put_code(bw_t *w, uint32_t code, unsigned len) { /* Huffman codes go MSB first */
  for (unsigned i = len; i-- > 0;) put(w, (code >> i) & 1u, 1);
}
static void align(bw_t *w) {
  while (w->bits % 8) put(w, 0, 1);
}

/* canonical codes from lengths (RFC 1951 3.2.2); garbage in, garbage out for a bad set */
static void codes_of(const uint8_t *lens, unsigned n, uint32_t *codes) {
  unsigned count[16] = {0}, next[16] = {0}, code = 0;
  for (unsigned i = 0; i < n; i++) count[lens[i] & 15]++;
  count[0] = 0;
  for (unsigned l = 1; l < 16; l++) next[l] = code = (code + count[l - 1]) << 1;
  for (unsigned i = 0; i < n; i++) codes[i] = lens[i] ? next[lens[i] & 15]++ : 0;
}

/* A complete code of m (>= 2) leaves no deeper than maxlen, as random splits (often of the
 * deepest leaf, for long codes), given to m distinct symbols among sym[0..nsym). */
static void random_code(uint8_t *lens, unsigned n, const unsigned *sym, unsigned nsym, unsigned m, unsigned maxlen) {
  uint8_t depth[320];
  unsigned leaves = 1;
  depth[0] = 0;
  if (m > nsym) m = nsym;
  while (leaves < m) {
    unsigned i = below(leaves), tries = 0;
    if (chance(50))
      for (unsigned j = 0; j < leaves; j++)
        if (depth[j] > depth[i] && depth[j] < maxlen) i = j;
    while (depth[i] >= maxlen && tries++ < 4 * leaves) i = below(leaves);
    if (depth[i] >= maxlen) break;
    depth[i]++;
    depth[leaves++] = depth[i];
  }
  memset(lens, 0, n);
  unsigned pick[320];
  for (unsigned i = 0; i < nsym; i++) pick[i] = sym[i];
  for (unsigned i = 0; i < leaves; i++) { /* a random subset, in random order */
    unsigned j = i + below(nsym - i), t = pick[i];
    pick[i] = pick[j];
    pick[j] = t;
    lens[pick[i]] = depth[i] ? depth[i] : 1;
  }
}

enum {
  D_NONE,
  D_HLIT,          /* HLIT 30 or 31: 287 or 288 literal/length codes */
  D_HDIST,         /* HDIST 30 or 31: 31 or 32 distance codes */
  D_PRE_LEN,       /* one code-length code length off by one: over-subscribed or incomplete */
  D_PRE_ONE,       /* a code-length code of one symbol */
  D_LIT_LEN,       /* one literal/length code length off by one */
  D_DIST_LEN,      /* one distance code length off by one */
  D_REP_FIRST,     /* a repeat (16) before any length */
  D_REP_OVERRUN,   /* the last repeat runs past the end of the lengths */
  D_NO_EOB,        /* no end-of-block code */
  D_FAR,           /* a distance before the start */
  D_UNUSED_CODE,   /* the unused half of a one-symbol distance code */
  D_EMPTY_DIST,    /* a match with no distance code */
  D_FIXED_SYM,     /* literal/length 286/287 or distance 30/31 in a fixed block */
  D_NLEN,          /* stored block: NLEN is not ~LEN */
  D_STORED_SHORT,  /* stored block: LEN past the end */
  D_TYPE3,         /* block type 3 */
  D_NO_FINAL,      /* no final block */
  D_TRUNC,         /* cut short anywhere */
  D_TRAILING,      /* bytes after the final block (valid, but no whole piece) */
  D_KINDS
};

typedef struct {
  bw_t w;
  size_t out; /* bytes written so far */
  int defect, defect_done;
} gen_t;

/* the symbols of one Huffman block, then its end-of-block code */
static void gen_symbols(gen_t *g, const uint8_t *ll, unsigned nlit, const uint8_t *dl, unsigned ndist) {
  uint32_t lc[288] = {0}, dc[32] = {0};
  codes_of(ll, nlit, lc);
  codes_of(dl, ndist, dc);
  unsigned lits[288], nl = 0, lens_[29], nlen = 0, dists[32], nd = 0;
  for (unsigned i = 0; i < nlit; i++)
    if (ll[i]) {
      if (i < 256) lits[nl++] = i;
      else if (i > 256 && i < 286) lens_[nlen++] = i;
    }
  for (unsigned i = 0; i < ndist && i < 30; i++)
    if (dl[i]) dists[nd++] = i;
  unsigned count = below(chance(10) ? 3000 : 200);
  if (g->defect != D_NONE && !g->defect_done && count < 50) count = 50; /* room for the defect */
  for (unsigned s = 0; s < count; s++) {
    if (g->defect == D_FIXED_SYM && !g->defect_done && nlit == 288 && ndist == 32 && chance(10)) {
      g->defect_done = 1;
      if (chance(50) || !nlen) {
        unsigned sym = 286 + below(2);
        put_code(&g->w, lc[sym], ll[sym]);
      } else {
        unsigned sym = lens_[below(nlen)];
        put_code(&g->w, lc[sym], ll[sym]);
        put(&g->w, (uint32_t)rnd(), DW_LEXTRA[sym - 257]);
        unsigned d = 30 + below(2);
        put_code(&g->w, dc[d], dl[d]);
      }
      continue;
    }
    int want_match = nlen && chance(nl ? 40 : 100);
    if (want_match) {
      unsigned sym = lens_[below(nlen)];
      unsigned len = DW_LBASE[sym - 257] + below(1u << DW_LEXTRA[sym - 257]);
      /* a distance code standing for distances that reach no further back than the output */
      unsigned okd[30], nok = 0;
      for (unsigned i = 0; i < nd; i++)
        if (DW_DBASE[dists[i]] <= g->out) okd[nok++] = dists[i];
      int far = g->defect == D_FAR && !g->defect_done && chance(20);
      int unused = g->defect == D_UNUSED_CODE && !g->defect_done && nd == 1 && dl[dists[0]] == 1 && chance(30);
      int empty = g->defect == D_EMPTY_DIST && !g->defect_done && nd == 0;
      if (!nok && !far && !unused && !empty) {
        if (!nl) break;
        goto literal;
      }
      put_code(&g->w, lc[sym], ll[sym]);
      put(&g->w, len - DW_LBASE[sym - 257], DW_LEXTRA[sym - 257]);
      if (unused || empty) {
        g->defect_done = 1;
        put(&g->w, unused ? 1 : 0, 1);
        put(&g->w, 0, 13);
        continue;
      }
      unsigned d;
      uint32_t dist;
      if (far) {
        g->defect_done = 1;
        d = nd ? dists[below(nd)] : 0;
        dist = (uint32_t)g->out + 1 + below(3);
        while (d < 29 && DW_DBASE[d + 1] <= dist) d++; /* the code holding it, or the nearest one present */
        if (!dl[d] && nd) d = dists[nd - 1];
        if (dist < DW_DBASE[d]) dist = DW_DBASE[d];
        if (dist - DW_DBASE[d] >= (1u << DW_DEXTRA[d])) dist = DW_DBASE[d] + (1u << DW_DEXTRA[d]) - 1;
      } else {
        d = okd[below(nok)];
        uint32_t span = 1u << DW_DEXTRA[d];
        uint32_t room = (uint32_t)(g->out - DW_DBASE[d] + 1);
        dist = DW_DBASE[d] + below(span < room ? span : room);
      }
      put_code(&g->w, dc[d], dl[d]);
      put(&g->w, dist - DW_DBASE[d], DW_DEXTRA[d]);
      g->out += len;
      continue;
    }
  literal:
    if (!nl) break;
    {
      unsigned sym = lits[below(nl)];
      put_code(&g->w, lc[sym], ll[sym]);
      g->out++;
    }
  }
  if (ll[256]) put_code(&g->w, lc[256], ll[256]);
}

/* a code length one off (or a new one): the code becomes over-subscribed or incomplete */
static uint8_t nudge(uint8_t l, unsigned max) {
  if (l == 0) return (uint8_t)(1 + below(max));
  if (l == max || chance(50)) return (uint8_t)(l - 1);
  return (uint8_t)(l + 1);
}

static void gen_dynamic(gen_t *g) {
  int d = g->defect_done ? D_NONE : g->defect;
  unsigned nlit = chance(20) ? 286 : 257 + below(30), ndist = chance(20) ? 30 : 1 + below(30);
  if (d == D_HLIT) nlit = 287 + below(2);
  if (d == D_HDIST) ndist = 31 + below(2);
  if (d == D_HLIT || d == D_HDIST) g->defect_done = 1;
  uint8_t lens[288 + 32] = {0};
  /* the literal/length code: end-of-block and a random set of others */
  unsigned syms[288], ns = 0;
  for (unsigned i = 0; i < nlit; i++)
    if (i != 256 && chance(chance(50) ? 90 : 15)) syms[ns++] = i;
  unsigned m = below(ns + 1);
  if (chance(10)) m = 0; /* end-of-block alone: a one-symbol code */
  if (m == 0) {
    memset(lens, 0, nlit);
    lens[256] = 1;
  } else {
    syms[ns++] = 256;
    random_code(lens, nlit, syms, ns, m + 1, 15);
    if (!lens[256]) { /* end-of-block must have a code: swap it with another symbol's */
      for (unsigned i = 0; i < nlit; i++)
        if (lens[i]) {
          lens[256] = lens[i];
          lens[i] = 0;
          break;
        }
    }
  }
  if (d == D_NO_EOB) {
    lens[256] = 0;
    g->defect_done = 1;
  }
  if (d == D_LIT_LEN) {
    unsigned i = below(nlit);
    lens[i] = nudge(lens[i], 15);
    g->defect_done = 1;
  }
  /* the distance code: none, one (1 bit) or several */
  uint8_t *dl = lens + nlit;
  unsigned dsyms[32], nds = 0;
  for (unsigned i = 0; i < ndist; i++) dsyms[nds++] = i;
  unsigned r = below(10);
  memset(dl, 0, ndist);
  if (d == D_EMPTY_DIST) r = 0;
  if (d == D_UNUSED_CODE) r = 1;
  if (r == 1 || (r == 2 && nds == 1)) dl[below(nds)] = 1;
  else if (r >= 2) random_code(dl, ndist, dsyms, nds, 2 + below(nds), 15);
  if (d == D_DIST_LEN) {
    unsigned i = below(ndist);
    dl[i] = nudge(dl[i], 15);
    g->defect_done = 1;
  }
  /* run-length code the lengths (repeats may cross from literal/length into distance lengths) */
  unsigned total = nlit + ndist;
  uint16_t rle[400][2];
  unsigned nr = 0;
  if (d == D_REP_FIRST) {
    rle[nr][0] = 16;
    rle[nr++][1] = 0;
    g->defect_done = 1;
  }
  for (unsigned i = 0; i < total;) {
    unsigned run = 1;
    while (i + run < total && lens[i + run] == lens[i]) run++;
    if (lens[i] == 0 && run >= 3 && chance(80)) {
      unsigned k = run > 138 ? 138 : run;
      if (k >= 11 && chance(70)) {
        k = 11 + below(k - 10);
        rle[nr][0] = 18;
        rle[nr++][1] = (uint16_t)(k - 11);
      } else {
        if (k > 10) k = 10;
        k = 3 + below(k - 2);
        rle[nr][0] = 17;
        rle[nr++][1] = (uint16_t)(k - 3);
      }
      i += k;
    } else if (i > 0 && lens[i] == lens[i - 1] && run >= 3 && chance(70)) {
      unsigned k = run > 6 ? 6 : run;
      k = 3 + below(k - 2);
      rle[nr][0] = 16;
      rle[nr++][1] = (uint16_t)(k - 3);
      i += k;
    } else {
      rle[nr][0] = lens[i];
      rle[nr++][1] = 0;
      i++;
    }
  }
  if (d == D_REP_OVERRUN) { /* the last run reaches past the end of the lengths */
    unsigned covered = total;
    while (nr && covered >= total) {
      nr--;
      unsigned s = rle[nr][0], k = s == 16 ? 3 + rle[nr][1] : s == 17 ? 3 + rle[nr][1] : s == 18 ? 11 + rle[nr][1] : 1;
      covered -= k;
    }
    unsigned k = total - covered + 1 + below(8);
    if (k <= 10) {
      rle[nr][0] = 17;
      rle[nr++][1] = (uint16_t)(k - 3 > 7 ? 7 : k < 3 ? 0 : k - 3);
    } else {
      rle[nr][0] = 18;
      rle[nr++][1] = (uint16_t)(k - 11 > 127 ? 127 : k - 11);
    }
    g->defect_done = 1;
  }
  /* the code-length code: complete over the symbols used (all 19 at times: HCLEN=15) */
  unsigned used[19], nu = 0, isused[19] = {0};
  for (unsigned i = 0; i < nr; i++) isused[rle[i][0]] = 1;
  int all19 = chance(30);
  for (unsigned i = 0; i < 19; i++)
    if (isused[i] || all19) used[nu++] = i;
  if (nu == 1) { /* one symbol would be an incomplete code: add a second */
    unsigned extra = (used[0] + 1 + below(18)) % 19;
    used[nu++] = extra;
  }
  uint8_t cl[19];
  random_code(cl, 19, used, nu, nu, 7); /* nu <= 19 leaves always fit in 7 bits */
  if (d == D_PRE_ONE) {
    memset(cl, 0, sizeof cl);
    cl[used[0]] = 1;
    g->defect_done = 1;
  }
  if (d == D_PRE_LEN) {
    unsigned i = used[below(nu)];
    cl[i] = nudge(cl[i], 7);
    g->defect_done = 1;
  }
  unsigned hclen = 19;
  while (hclen > 4 && !cl[DW_CLORDER[hclen - 1]]) hclen--;
  if (hclen < 19 && chance(20)) hclen += below(20 - hclen); /* trailing zero lengths sent anyway */
  uint32_t cc[19];
  codes_of(cl, 19, cc);
  put(&g->w, 2, 2);
  put(&g->w, nlit - 257, 5);
  put(&g->w, ndist - 1, 5);
  put(&g->w, hclen - 4, 4);
  for (unsigned i = 0; i < hclen; i++) put(&g->w, cl[DW_CLORDER[i]], 3);
  for (unsigned i = 0; i < nr; i++) {
    unsigned s = rle[i][0];
    put_code(&g->w, cc[s], cl[s]);
    if (s == 16) put(&g->w, rle[i][1], 2);
    if (s == 17) put(&g->w, rle[i][1], 3);
    if (s == 18) put(&g->w, rle[i][1], 7);
  }
  gen_symbols(g, lens, nlit, dl, ndist);
}

static void gen_fixed(gen_t *g) {
  uint8_t ll[288], dl[32];
  for (unsigned i = 0; i < 288; i++) ll[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
  for (unsigned i = 0; i < 32; i++) dl[i] = 5;
  put(&g->w, 1, 2);
  gen_symbols(g, ll, 288, dl, 32);
}

static void gen_stored(gen_t *g) {
  put(&g->w, 0, 2);
  align(&g->w);
  unsigned len = chance(10) ? 0 : below(chance(5) ? 70000 : 300);
  if (len > 65535) len = 65535;
  unsigned nlen = len ^ 0xffff;
  if (g->defect == D_NLEN && !g->defect_done) {
    nlen ^= 1u << below(16);
    g->defect_done = 1;
  }
  put(&g->w, len, 16);
  put(&g->w, nlen, 16);
  if (g->defect == D_STORED_SHORT && !g->defect_done) {
    g->defect_done = 1;
    len = below(len + 1);
    nlen = 0; /* the bytes stop short */
    for (unsigned i = 0; i < len; i++) put(&g->w, (uint32_t)rnd(), 8);
    g->w.cap = g->w.bits / 8; /* and so does the stream */
    return;
  }
  for (unsigned i = 0; i < len; i++) put(&g->w, (uint32_t)rnd(), 8);
  g->out += len;
}

static void crafted_cases(unsigned scale) {
  size_t cap = 1 << 20;
  uint8_t *buf = xmalloc(cap);
  unsigned long per_defect[D_KINDS] = {0}, ok_defect[D_KINDS] = {0};
  unsigned n = 6000 * scale;
  for (unsigned i = 0; i < n; i++) {
    gen_t g;
    memset(&g, 0, sizeof g);
    g.w.b = buf;
    g.w.cap = cap;
    g.defect = i % 3 == 0 ? D_NONE : (int)below(D_KINDS);
    unsigned nblocks = 1 + (chance(30) ? below(5) : 0);
    for (unsigned k = 0; k < nblocks; k++) {
      int final = k == nblocks - 1 && !(g.defect == D_NO_FINAL);
      if (g.defect == D_TYPE3 && !g.defect_done && (chance(50) || final)) {
        put(&g.w, final, 1);
        put(&g.w, 3, 2);
        put(&g.w, (uint32_t)rnd(), 32);
        g.defect_done = 1;
        continue;
      }
      put(&g.w, final, 1);
      unsigned t = below(10);
      if (g.defect == D_FIXED_SYM && !g.defect_done) t = 3;
      if (g.defect >= D_HLIT && g.defect <= D_NO_EOB && !g.defect_done) t = 9;
      if ((g.defect == D_UNUSED_CODE || g.defect == D_EMPTY_DIST) && !g.defect_done) t = 9;
      if (g.defect == D_FAR && !g.defect_done) t = 1 + below(9);
      if ((g.defect == D_NLEN || g.defect == D_STORED_SHORT) && !g.defect_done && final) t = 0;
      if (t == 0) gen_stored(&g);
      else if (t <= 3) gen_fixed(&g);
      else gen_dynamic(&g);
      if (g.w.bits / 8 >= g.w.cap) break;
    }
    size_t len = (g.w.bits + 7) / 8;
    if (len > g.w.cap) len = g.w.cap;
    if (g.defect == D_TRUNC && len) len = below((unsigned)len);
    if (g.defect == D_TRAILING)
      for (unsigned k = 1 + below(8); k && len < cap; k--) buf[len++] = (uint8_t)rnd();
    category = "crafted";
    case_no++;
    per_defect[g.defect]++;
    int ok = check(buf, len, g.out + 1 + below(1000));
    ok_defect[g.defect] += (unsigned long)ok;
    if (g.defect == D_NONE && !ok) mismatch(buf, len, "a valid crafted stream was refused");
  }
  printf("crafted: %lu valid (%lu accepted);", per_defect[D_NONE], ok_defect[D_NONE]);
  static const char *DN[D_KINDS] = {"", "HLIT>286", "HDIST>30", "bad-precode", "1-sym-precode", "bad-litlen", "bad-dist", "rep16-first", "rep-overrun", "no-EOB", "too-far", "unused-code", "empty-dist", "fixed-286/30", "NLEN", "stored-short", "type3", "no-final", "truncated", "trailing"};
  for (int d = 1; d < D_KINDS; d++) printf(" %s %lu/%lu", DN[d], ok_defect[d], per_defect[d]);
  printf(" (accepted/cases)\n");
  free(buf);
}

static void random_cases(unsigned scale) {
  uint8_t buf[4096];
  category = "random bytes";
  for (unsigned i = 0; i < 20000 * scale; i++) {
    size_t len = below(chance(80) ? 64 : sizeof buf);
    for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)rnd();
    if (len && chance(50)) buf[0] = (uint8_t)((buf[0] & ~6u) | (below(3) << 1)); /* a known block type */
    case_no++;
    check(buf, len, LIMIT_MAX);
  }
}

int main(int argc, char **argv) {
  uint64_t seed = 1;
  unsigned scale = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--plant-mismatch")) plant = 1;
    else if (!strcmp(argv[i], "--selftest-ubsan")) { /* the sanitizers must be live in this build */
      volatile unsigned s = 64;
      volatile uint64_t x = 1;
      x <<= s;
      printf("no UBSan report (%llu)\n", (unsigned long long)x);
      return 0;
    } else if (!strcmp(argv[i], "--selftest-asan")) {
      volatile uint8_t *p = xmalloc(8);
      printf("no ASan report (%d)\n", p[8]);
      return 0;
    } else {
      fprintf(stderr, "usage: %s [--seed N] [--scale N] [--plant-mismatch] [--selftest-ubsan|--selftest-asan]\n", argv[0]);
      return 2;
    }
  }
  if (scale < 1) scale = 1;
  rs = seed;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  out_a = xmalloc(LIMIT_MAX);
  out_b = xmalloc(LIMIT_MAX);
  tables = xmalloc(sizeof *tables);
  if (!(ld = libdeflate_alloc_decompressor())) return 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("deflate walker fuzz: seed %llu, scale %u, libdeflate %s, zlib %s\n", (unsigned long long)seed, scale, LIBDEFLATE_VERSION_STRING, zlibVersion());
  libdeflate_cases(scale);
  printf("libdeflate levels 0-12 and mutants: %lu cases so far\n", cases);
  crafted_cases(scale);
  random_cases(scale);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("dynamic blocks with all 19 code-length codes (HCLEN=15): %lu from libdeflate, %lu crafted\n", hclen19[0], hclen19[1]);
  if (!hclen19[0] || !hclen19[1]) {
    fprintf(stderr, "no HCLEN=15 block was walked: the inputs no longer cover the case\n");
    mismatches++;
  }
  printf("%lu cases, %lu accepted by walker and zlib, %lu block boundaries and %lu pieces checked, %lu mismatches, %.1f s\n", cases, accepted, boundaries_checked, pieces_checked, mismatches, secs);
  libdeflate_free_decompressor(ld);
  free(tables);
  free(out_a);
  free(out_b);
  return mismatches ? 1 : 0;
}

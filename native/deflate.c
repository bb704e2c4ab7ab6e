/*
 * otapack's fast deflate: libdeflate for the match search, made to produce the byte-aligned,
 * non-final pieces that parallel gzip concatenates into ONE deflate stream.
 *
 * Why native: node:zlib spends ~30 % more CPU than libdeflate for the same output size on a
 * rootfs image, and gzip bundles are compression-bound. libdeflate only compresses whole
 * buffers into a complete stream (its last block has BFINAL set, and the stream may end
 * mid-byte), so each piece is walked once by a small decoder (deflate-walk.h), which reads the block
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

#include "deflate-walk.h" /* the walker, shared with its fuzz driver (test/fuzz/deflate-walk.c) */

#define MAX_LEVEL 12

typedef struct {
  struct libdeflate_compressor *c[MAX_LEVEL + 1];
  dw_tables *codes; /* the walker's Huffman tables, one set per thread */
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
    m = dw_make_piece(s->codes, s->out, m, s->out_cap, n);
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

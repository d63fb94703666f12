/* fuzz_frame.c - libFuzzer target for pk_wire_parse_frame (and format round trip). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Exact-size heap copy so ASan sees any read past the end. */
  char *buf = malloc(size ? size : 1);
  pk_frame f;
  static const size_t limits[] = {256 * 1024, 16, 0xffffffffUL, (size_t)-1};
  size_t li;
  if (buf == NULL) return 0;
  if (size) memcpy(buf, data, size);
  for (li = 0; li < sizeof(limits) / sizeof(limits[0]); li++) {
    int r = pk_wire_parse_frame(buf, size, limits[li], &f);
    if (r == 1) {
      char out[PK_WIRE_FRAME_HDR_MAX];
      pk_frame g;
      int w;
      /* Invariants of a parsed header. */
      if (f.hdr_len == 0 || f.hdr_len > size || f.hdr_len > PK_WIRE_FRAME_HDR_MAX) abort();
      if (f.len == 0 || f.wire_len == 0 || f.len > limits[li] || f.wire_len > limits[li]) abort();
      if (!f.compressed && f.len != f.wire_len) abort();
      if (buf[f.hdr_len - 1] != '\n' || buf[f.hdr_len - 2] != '\r') abort();
      /* Round trip through the formatter when it fits 32 bits. */
      if (f.len <= 0xffffffffUL && f.wire_len <= 0xffffffffUL) {
        w = pk_wire_format_frame(out, sizeof(out), f.len, f.wire_len, f.compressed, f.reset);
        if (w <= 0) abort();
        if (pk_wire_parse_frame(out, (size_t)w, (size_t)-1, &g) != 1) abort();
        if (g.len != f.len || g.wire_len != f.wire_len || g.compressed != f.compressed ||
            g.reset != f.reset || g.hdr_len != (size_t)w)
          abort();
      }
    } else if (r != PK_WIRE_NEED_MORE && r != PK_WIRE_EBAD && r != PK_WIRE_ETOOBIG) {
      abort();
    }
  }
  free(buf);
  return 0;
}

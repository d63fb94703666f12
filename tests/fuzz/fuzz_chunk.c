/* fuzz_chunk.c - libFuzzer target for pk_wire_parse_chunk and pk_wire_chunk_get. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_slice(pk_slice s, const char *buf, size_t size) {
  if (s.p == NULL) return;
  if (s.p < buf || s.p + s.n > buf + size) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = malloc(size ? size : 1);
  pk_chunk c;
  int r, i;
  volatile size_t sink = 0;
  if (buf == NULL) return 0;
  if (size) memcpy(buf, data, size);
  r = pk_wire_parse_chunk(buf, size, &c);
  if (r == 0) {
    if (c.nheaders < 0 || c.nheaders > PK_WIRE_MAX_HEADERS) abort();
    for (i = 0; i < c.nheaders; i++) {
      check_slice(c.names[i], buf, size);
      check_slice(c.values[i], buf, size);
      if (c.names[i].n == 0) abort();
    }
    for (i = 0; i < PK_CH__COUNT; i++) {
      check_slice(c.known[i], buf, size);
      /* The lookup by name agrees with the table of known headers. */
      pk_slice g = pk_wire_chunk_get(&c, pk_wire_chunk_header_name((pk_chunk_header_id)i));
      if ((g.p == NULL) != (c.known[i].p == NULL)) abort();
      if (g.p != NULL) sink += g.n;
    }
    check_slice(c.data, buf, size);
    if (c.data.p == NULL || c.data.p + c.data.n != buf + size) abort();
    if (c.known[PK_CH_SID].p != NULL && c.sid < 0) abort();
    if (c.known[PK_CH_SID].p == NULL && c.sid != -1) abort();
    if (c.known[PK_CH_EOF].p != NULL && (c.eof & ~(PK_EOF_READ | PK_EOF_WRITE)) != 0) abort();
    for (i = 0; i < c.nheaders; i++) {
      long long v;
      (void)pk_slice_to_ll(c.values[i], &v);
    }
  } else if (r != PK_WIRE_EBAD && r != PK_WIRE_ETOOBIG) {
    abort();
  }
  (void)sink;
  free(buf);
  return 0;
}

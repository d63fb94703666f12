/* fuzz_http_head.c - libFuzzer target for pk_wire_parse_http_head / pk_wire_http_get. */
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
  /* First byte picks the max_len the caller passes (the relay uses 16 KiB). */
  static const size_t limits[] = {16 * 1024, 64, 7, 1, 0, (size_t)-1, 512, 4096};
  char *buf;
  pk_http_head h;
  size_t max_len;
  int r, i;
  if (size < 1) return 0;
  max_len = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
  data++;
  size--;
  buf = malloc(size ? size : 1);
  if (buf == NULL) return 0;
  if (size) memcpy(buf, data, size);
  r = pk_wire_parse_http_head(buf, size, max_len, &h);
  if (r == 1) {
    if (h.head_len == 0 || h.head_len > size || h.head_len > max_len) abort();
    if (buf[h.head_len - 1] != '\n') abort();
    if (h.nheaders < 0 || h.nheaders > PK_WIRE_MAX_HEADERS) abort();
    check_slice(h.method, buf, h.head_len);
    check_slice(h.path, buf, h.head_len);
    check_slice(h.version, buf, h.head_len);
    if (h.is_response && (h.status < 0 || h.status > 999)) abort();
    for (i = 0; i < h.nheaders; i++) {
      check_slice(h.names[i], buf, h.head_len);
      check_slice(h.values[i], buf, h.head_len);
    }
    /* Lookups the relay and the connector make. */
    {
      static const char *const names[] = {"Host", "X-PageKite", "Content-Length",
                                          "Transfer-Encoding", "X-PageKite-Features",
                                          "Connection", "Upgrade"};
      size_t k;
      for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        int idx;
        for (idx = 0; idx < 3; idx++) {
          pk_slice v = pk_wire_http_get(&h, names[k], idx);
          check_slice(v, buf, h.head_len);
          if (v.p != NULL) {
            long long n;
            (void)pk_slice_to_ll(v, &n);
          }
        }
      }
    }
  } else if (r != PK_WIRE_NEED_MORE && r != PK_WIRE_EBAD && r != PK_WIRE_ETOOBIG) {
    abort();
  }
  if (r == PK_WIRE_NEED_MORE && size >= max_len) abort(); /* bound must be enforced */
  free(buf);
  return 0;
}

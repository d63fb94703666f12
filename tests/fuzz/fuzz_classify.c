/* fuzz_classify.c - what the relay does with the first bytes of a connection:
 * pk_wire_peek_kind, then the TLS SNI for TLS, or the HTTP head (Host header,
 * or a CONNECT target) for HTTP.  Every prefix is tried too, as bytes arrive
 * in pieces. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD_MAX (16 * 1024)

static void classify(const unsigned char *buf, size_t n) {
  int kind = pk_wire_peek_kind(buf, n);
  if (n < 3 && kind != PK_PEEK_NEED_MORE) abort();
  if (kind == PK_PEEK_TLS) {
    char sni[256];
    char tiny[4];
    int r = pk_wire_tls_sni(buf, n, sni, sizeof(sni));
    if (r == 1) {
      size_t l = strlen(sni), i;
      if (l == 0 || l >= sizeof(sni)) abort();
      for (i = 0; i < l; i++) {
        if (sni[i] >= 'A' && sni[i] <= 'Z') abort(); /* lower-cased */
      }
    } else if (r != PK_WIRE_NEED_MORE && r != PK_WIRE_EBAD && r != PK_WIRE_ETOOBIG) {
      abort();
    }
    r = pk_wire_tls_sni(buf, n, tiny, sizeof(tiny));
    if (r == 1 && strlen(tiny) >= sizeof(tiny)) abort();
    (void)pk_wire_tls_sni(buf, n, NULL, 0);
  } else if (kind == PK_PEEK_HTTP) {
    pk_http_head h;
    int r = pk_wire_parse_http_head((const char *)buf, n, HEAD_MAX, &h);
    if (r == 1) {
      pk_slice host = pk_wire_http_get(&h, "Host", 0);
      if (host.p != NULL && (host.p < (const char *)buf || host.p + host.n > (const char *)buf + n))
        abort();
      if (pk_slice_ieq(h.method, "CONNECT") && h.path.n > 0) {
        const char *colon = memchr(h.path.p, ':', h.path.n);
        if (colon) {
          pk_slice port = {colon + 1, (size_t)(h.path.p + h.path.n - colon - 1)};
          long long v;
          (void)pk_slice_to_ll(port, &v);
        }
      }
    }
  } else if (kind != PK_PEEK_UNKNOWN && kind != PK_PEEK_NEED_MORE) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *buf;
  size_t cut;
  if (size > 20000) return 0;
  buf = malloc(size ? size : 1);
  if (buf == NULL) return 0;
  if (size) memcpy(buf, data, size);
  classify(buf, size);
  /* A few prefixes, each in its own exact-size allocation. */
  for (cut = 0; cut < size && cut < 8; cut++) {
    size_t n = (size * cut) / 8;
    unsigned char *p = malloc(n ? n : 1);
    if (p == NULL) break;
    if (n) memcpy(p, buf, n);
    classify(p, n);
    free(p);
  }
  free(buf);
  return 0;
}

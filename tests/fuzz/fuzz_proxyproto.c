/* fuzz_proxyproto.c - arbitrary bytes into the PROXY protocol parser, and
 * what it parsed back through the encoder (proxyproto.c).  No sockets.
 *
 * Input: byte 0 = how to cut the rest into pieces (0: whole only; else a
 * piece size), the rest = what a load balancer sends first.
 *
 * Invariants (abort on violation):
 *  - every prefix of the input is fed, each copied to an exact-size heap
 *    buffer (ASan sees any read past it); until the whole answers DONE or
 *    ERROR, each prefix says NEED_MORE or the same final answer once the
 *    prefix covers what decided it;
 *  - NEED_MORE only while fewer than PK_PP_V2_MAX bytes are in (memory the
 *    relay holds for a header is bounded);
 *  - DONE: 0 < len <= n, len <= PK_PP_V2_MAX; a v1 header is at most 107
 *    bytes; addresses are text that parses as the family said, ports 0-65535;
 *  - an ERROR sets a why; the same bytes fed again give the same answer;
 *  - DONE with an address: encoding it as v1 and v2 and parsing that gives
 *    the same addresses and ports back.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                  \
  do {                                                            \
    if (!(c)) {                                                   \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); \
      abort();                                                    \
    }                                                             \
  } while (0)

static int parse_copy(const uint8_t *p, size_t n, pk_pp_info *info, char *why, size_t whyn) {
  char *buf = malloc(n ? n : 1);
  if (n) memcpy(buf, p, n);
  int r = pk_pp_parse(buf, n, info, why, whyn);
  free(buf);
  return r;
}

static void check_done(const pk_pp_info *i, size_t n) {
  CHECK(i->len > 0 && i->len <= n && i->len <= PK_PP_V2_MAX);
  CHECK(i->version == 1 || i->version == 2);
  if (i->version == 1) CHECK(i->len <= PK_PP_V1_MAX);
  if (i->local) {
    CHECK(i->family == 0);
    return;
  }
  unsigned char a[16];
  int af = i->family == 4 ? AF_INET : AF_INET6;
  CHECK(i->family == 4 || i->family == 6);
  CHECK(inet_pton(af, i->src_ip, a) == 1 && inet_pton(af, i->dst_ip, a) == 1);
  CHECK(i->src_port >= 0 && i->src_port <= 65535 && i->dst_port >= 0 && i->dst_port <= 65535);
}

static void roundtrip(const pk_pp_info *i) {
  for (int v = 1; v <= 2; v++) {
    char out[PK_PP_ENCODE_MAX], why[160];
    int n = pk_pp_encode(v, i->src_ip, i->src_port, i->dst_ip, i->dst_port, out, sizeof(out));
    CHECK(n > 0 && n <= PK_PP_ENCODE_MAX);
    pk_pp_info j;
    CHECK(pk_pp_parse(out, (size_t)n, &j, why, sizeof(why)) == PK_PP_DONE);
    CHECK(j.len == (size_t)n && j.version == v && !j.local && j.family == i->family);
    /* IPv4-mapped IPv6 from a v1/v2 TCP6 header is written as IPv4. */
    if (j.family == i->family) {
      CHECK(strcmp(j.src_ip, i->src_ip) == 0 && strcmp(j.dst_ip, i->dst_ip) == 0);
      CHECK(j.src_port == i->src_port && j.dst_port == i->dst_port);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = data[0];
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  pk_pp_info whole, again;
  char why[160] = "", why2[160] = "";
  int r = parse_copy(p, n, &whole, why, sizeof(why));
  CHECK(r == PK_PP_NEED_MORE || r == PK_PP_DONE || r == PK_PP_ERROR);
  if (r == PK_PP_NEED_MORE) CHECK(n < PK_PP_V2_MAX);
  if (r == PK_PP_ERROR) CHECK(why[0] != 0);
  if (r == PK_PP_DONE) check_done(&whole, n);
  CHECK(parse_copy(p, n, &again, why2, sizeof(why2)) == r);
  if (r == PK_PP_ERROR) CHECK(strcmp(why, why2) == 0);
  if (r == PK_PP_DONE) CHECK(memcmp(&whole, &again, sizeof(whole)) == 0);
  /* Pieces: a relay sees the bytes arrive so. */
  if (step) {
    for (size_t k = step; k < n; k += step) {
      pk_pp_info part;
      char w[160];
      int rk = parse_copy(p, k, &part, w, sizeof(w));
      if (rk == PK_PP_NEED_MORE) continue;
      /* A prefix decided: the whole must decide the same. */
      CHECK(rk == r);
      if (rk == PK_PP_DONE) CHECK(memcmp(&part, &whole, sizeof(part)) == 0);
      break;
    }
  }
  if (r == PK_PP_DONE && !whole.local && whole.family == 4) roundtrip(&whole);
  if (r == PK_PP_DONE && !whole.local && whole.family == 6 &&
      strncmp(whole.src_ip, "::ffff:", 7) != 0 && strncmp(whole.dst_ip, "::ffff:", 7) != 0)
    roundtrip(&whole);
  return 0;
}

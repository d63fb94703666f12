/* fuzz_proxy.c - arbitrary proxy answers into an outgoing proxy handshake
 * (proxy.c).  No sockets.
 *
 * Input: byte 0 = options
 *   bits 0-1 proxy: 0 http, 1 socks5, 2 socks5h, 3 http with a 255-byte
 *            user and password
 *   bit  2   a user and password ("joe", "hunter2")
 *   bits 3-4 target: 0 a name (an IPv4 address with socks5://), 1 IPv4,
 *            2 IPv6, 3 a 255-byte name
 *   bits 5-6 pieces: 0 whole, 1 a byte at a time, 2 seven bytes,
 *            3 pseudo-random sizes seeded by byte 1
 *   bit  7   a 24-byte output buffer instead of PK_PROXY_OUT_MAX
 * byte 1 = seed; the rest is what the proxy sends.
 *
 * The answer is fed once whole and once in pieces, each piece copied to an
 * exact-size heap buffer so that ASan sees any read past it.
 *
 * Invariants (abort on violation): used <= n and NEED_MORE consumed it all;
 * outn <= outcap, and nothing used or sent with ERROR; why is set on ERROR
 * and holds the password only when the proxy's answer did; DONE and ERROR
 * are final (recv again: same result, nothing used or written; eof: same
 * result); a handshake that still needs more fails on eof.  With the full
 * output buffer, whole and pieces agree on the result, the why, the bytes
 * sent (one a prefix of the other after an error) and, when DONE, the bytes
 * consumed: the rest went to the relay.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PASSWORD "hunter2"
#define SENT_MAX 4096

typedef struct {
  int result;
  size_t consumed; /* bytes the handshake took; the rest is the relay's */
  char sent[SENT_MAX];
  size_t sentn;
  char why[sizeof(((pk_proxy_hs *)0)->why)];
} run;

static pk_proxy_hs hs;
static char out[PK_PROXY_OUT_MAX];

#define REQUIRE(c)                                                    \
  do {                                                                \
    if (!(c)) {                                                       \
      fprintf(stderr, "fuzz_proxy: invariant failed: %s\n", #c);      \
      abort();                                                        \
    }                                                                 \
  } while (0)

static void make_proxy(uint8_t opt, pk_proxy *p) {
  static char url[800];
  char u[256], pw[256];
  int kind = opt & 3;
  if (kind == 3) {
    memset(u, 'u', 255);
    u[255] = '\0';
    memset(pw, 'p', 255);
    pw[255] = '\0';
    snprintf(url, sizeof(url), "http://%s:%s@proxy:3128", u, pw);
  } else {
    const char *scheme = kind == 0 ? "http" : kind == 1 ? "socks5" : "socks5h";
    snprintf(url, sizeof(url), "%s://%sproxy:1080", scheme, (opt & 4) ? "joe:" PASSWORD "@" : "");
  }
  REQUIRE(pk_proxy_parse_url(url, p, NULL, 0) == 0);
}

static const char *make_target(uint8_t opt) {
  static char longname[256];
  switch ((opt >> 3) & 3) {
    case 0: return (opt & 3) == 1 ? "192.0.2.7" : "relay.example.net";
    case 1: return "192.0.2.7";
    case 2: return "2001:db8::7";
  }
  memset(longname, 'n', 255);
  longname[255] = '\0';
  return longname;
}

static size_t piece_size(uint8_t opt, uint32_t *seed, size_t left) {
  size_t k;
  switch ((opt >> 5) & 3) {
    case 0: k = left; break;
    case 1: k = 1; break;
    case 2: k = 7; break;
    default:
      *seed = *seed * 1103515245u + 12345u;
      k = 1 + (*seed >> 16) % 64;
  }
  return k < left ? k : left;
}

/* memmem is not C11 */
static int contains(const uint8_t *p, size_t n, const char *s) {
  size_t i, sn = strlen(s);
  for (i = 0; i + sn <= n; i++)
    if (memcmp(p + i, s, sn) == 0) return 1;
  return 0;
}

static void check_final(int r) {
  size_t used = 1, outn = 1;
  REQUIRE(pk_proxy_recv(&hs, "zz", 2, &used, out, sizeof(out), &outn) == r);
  REQUIRE(used == 0 && outn == 0);
  REQUIRE(pk_proxy_eof(&hs) == r);
}

/* One handshake against answer[0..n), fed whole or in pieces. */
static void one_run(uint8_t opt, uint32_t seed, const uint8_t *answer, size_t n, int pieces,
                    run *o) {
  pk_proxy p;
  size_t outcap = (opt & 0x80) ? 24 : sizeof(out), outn, off = 0, used;
  int r;
  memset(o, 0, sizeof(*o));
  make_proxy(opt, &p);
  r = pk_proxy_start(&hs, &p, make_target(opt), 443, out, outcap, &outn);
  REQUIRE(r == 0 || r == PK_PROXY_ERROR);
  REQUIRE(outn <= outcap);
  memcpy(o->sent, out, outn);
  o->sentn = outn;
  while (r == 0 && off < n) {
    size_t k = pieces ? piece_size(opt, &seed, n - off) : n - off;
    char *piece = malloc(k);
    REQUIRE(piece != NULL);
    memcpy(piece, answer + off, k);
    r = pk_proxy_recv(&hs, piece, k, &used, out, outcap, &outn);
    free(piece);
    REQUIRE(used <= k && outn <= outcap);
    REQUIRE(r == PK_PROXY_NEED_MORE || r == PK_PROXY_DONE || r == PK_PROXY_ERROR);
    REQUIRE(r != PK_PROXY_NEED_MORE || used == k);
    REQUIRE(r != PK_PROXY_ERROR || (outn == 0 && used == 0));
    REQUIRE(o->sentn + outn <= sizeof(o->sent));
    memcpy(o->sent + o->sentn, out, outn);
    o->sentn += outn;
    off += used;
    if (r == PK_PROXY_DONE) REQUIRE(hs.state == PK_PROXY_S_DONE);
  }
  if (r == 0) {
    REQUIRE(pk_proxy_eof(&hs) == PK_PROXY_ERROR);
    r = PK_PROXY_ERROR;
  }
  REQUIRE(memchr(hs.why, '\0', sizeof(hs.why)) != NULL);
  REQUIRE(r != PK_PROXY_ERROR || hs.why[0] != '\0');
  /* the proxy's own text (a reason phrase) may say anything */
  if (!contains(answer, n, PASSWORD)) REQUIRE(strstr(hs.why, PASSWORD) == NULL);
  check_final(r);
  o->result = r;
  o->consumed = off;
  memcpy(o->why, hs.why, sizeof(o->why));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static run whole, cut;
  uint8_t opt;
  uint8_t *answer;
  size_t n;
  if (size < 2) return 0;
  opt = data[0];
  n = size - 2;
  answer = malloc(n ? n : 1);
  if (!answer) return 0;
  memcpy(answer, data + 2, n);
  one_run(opt, data[1], answer, n, 0, &whole);
  one_run(opt, data[1], answer, n, 1, &cut);
  if (!(opt & 0x80)) {
    REQUIRE(whole.result == cut.result);
    REQUIRE(strcmp(whole.why, cut.why) == 0);
    REQUIRE(whole.result != PK_PROXY_DONE || whole.consumed == cut.consumed);
    /* An error drops what its own call would have sent, so with an error
     * one run may have sent more; what both sent must agree. */
    REQUIRE(memcmp(whole.sent, cut.sent, whole.sentn < cut.sentn ? whole.sentn : cut.sentn) == 0);
    REQUIRE(whole.result == PK_PROXY_ERROR || whole.sentn == cut.sentn);
  }
  free(answer);
  return 0;
}

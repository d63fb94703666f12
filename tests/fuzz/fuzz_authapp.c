/* fuzz_authapp.c - arbitrary bytes as an auth app's output (authapp_proto.c):
 * what a --server child writes, line by line, and what the relay makes of
 * each line as an --auth and a --zk-auth answer; also --capabilities
 * output.  No processes.
 *
 * Input: byte 0 = how to cut the rest into reads (0: one read; else a
 * piece size), the rest = the app's stdout.
 *
 * Invariants (abort on violation):
 *  - the line reader takes every byte: each feed uses 1..n bytes (or all of
 *    them on an overflow), a complete line is at most PK_AUTHAPP_LINE_MAX
 *    bytes, holds no '\n' and its length is what strlen says unless the
 *    line holds a NUL; an overflow is reported only past PK_AUTHAPP_LINE_MAX;
 *  - each line is parsed from an exact-size heap copy (ASan sees any read
 *    past it); a failed parse sets a why and leaves no secret behind; a
 *    parse gives the same answer twice;
 *  - an accepted --auth answer's strings fit their fields and the verdict
 *    is accept (no refusal, quota >= 0), a refusal, or -1 only with neither
 *    secret nor error; a bad signature is refused "signature";
 *  - an accepted --zk-auth answer's CNAME fits; decoding it never crashes;
 *  - capabilities are a subset of the three bits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authapp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                         \
  do {                                                                   \
    if (!(c)) {                                                          \
      fprintf(stderr, "invariant failed: %s (line %d)\n", #c, __LINE__); \
      abort();                                                           \
    }                                                                    \
  } while (0)

static void one_line(const char *line, size_t n) {
  char *buf = malloc(n ? n : 1);
  if (n) memcpy(buf, line, n);
  pk_authapp_auth a, a2;
  const char *why = NULL, *why2 = NULL;
  int r = pk_authapp_parse_auth(buf, n, &a, &why);
  int r2 = pk_authapp_parse_auth(buf, n, &a2, &why2);
  CHECK(r == r2);
  if (r != 0) {
    CHECK(why != NULL && a.secret[0] == 0);
  } else {
    CHECK(memcmp(a.secret, a2.secret, sizeof(a.secret)) == 0);
    CHECK(strlen(a.secret) < sizeof(a.secret) && strlen(a.error) < sizeof(a.error));
    CHECK(strlen(a.reason) < sizeof(a.reason));
    for (int sig = 0; sig <= 1; sig++) {
      pk_authdns_answer ans;
      const char *refusal = NULL;
      int v = pk_authapp_auth_verdict(&a, sig, &ans, &refusal);
      if (v < 0) {
        CHECK(!a.secret[0] && !a.error[0]);
        continue;
      }
      if (!refusal) CHECK(a.secret[0] && sig && ans.quota >= 0);
      if (a.secret[0] && !sig) CHECK(refusal && strcmp(refusal, "signature") == 0);
      if (refusal) CHECK(strlen(refusal) > 0 && strlen(refusal) < 64);
    }
  }
  unsigned char ip[4];
  char cname[PK_AUTHDNS_NAME_MAX + 1];
  r = pk_authapp_parse_zk(buf, n, ip, cname, sizeof(cname), &why);
  if (r != 0) {
    CHECK(why != NULL && cname[0] == 0);
  } else {
    CHECK(strlen(cname) < sizeof(cname));
    pk_authdns_answer ans;
    if (pk_authdns_decode(ip, cname, &ans) == 0) (void)pk_authdns_refusal(&ans);
  }
  int caps = pk_authapp_caps(buf, n);
  CHECK((caps & ~(PK_AUTHAPP_CAP_SERVER | PK_AUTHAPP_CAP_AUTH | PK_AUTHAPP_CAP_ZK)) == 0);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = data[0];
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  static pk_authapp_linebuf lb;
  pk_authapp_line_reset(&lb);
  size_t off = 0, pending = 0;
  while (off < n) {
    size_t piece = step ? (n - off < step ? n - off : step) : n - off;
    const char *q = p + off;
    size_t left = piece;
    while (left) {
      size_t used = 0;
      int rv = pk_authapp_line_feed(&lb, q, left, &used);
      CHECK(used >= 1 && used <= left);
      if (rv < 0) {
        CHECK(pending + used > PK_AUTHAPP_LINE_MAX || lb.len + used > PK_AUTHAPP_LINE_MAX);
        pk_authapp_line_reset(&lb);
        pending = 0;
      } else if (rv == 1) {
        CHECK(lb.done && lb.len <= PK_AUTHAPP_LINE_MAX && !memchr(lb.buf, '\n', lb.len));
        CHECK(lb.buf[lb.len] == 0);
        one_line(lb.buf, lb.len);
        pk_authapp_line_reset(&lb);
        pending = 0;
      } else {
        CHECK(used == left && lb.len <= PK_AUTHAPP_LINE_MAX);
        pending += used;
      }
      q += used;
      left -= used;
    }
    off += piece;
  }
  /* what is left (no newline) is also what a one-shot child's whole stdout
   * would be */
  one_line(lb.buf, lb.len);
  return 0;
}

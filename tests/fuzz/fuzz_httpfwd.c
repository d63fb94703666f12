/* fuzz_httpfwd.c - libFuzzer target for the forwarding-header rewriter
 * (c/src/httpfwd.c: pk_fwd_request_data / pk_fwd_response_data).
 *
 * Input: byte 0 = configuration (bits 0-1 buffer size 256/300/1024/16384,
 * bit 2 X-Forwarded-For append mode, bits 3-5 piece size for the split
 * replay), then operations.  Each operation is a control byte c:
 *   c % 4 == 0 or 1: client bytes, c % 4 == 2: origin bytes,
 *   c % 4 == 3: push parked bytes (pk_fwd_request_data(f, NULL, 0, ...));
 *   the data length is c / 4 (63: everything that is left).
 *
 * Three instances run side by side and must agree:
 *   A  gets each client piece whole;
 *   C  gets the same pieces split into small parts: after every operation
 *      its output and result must equal A's (split-invariance);
 *   B  gets A's output as its client bytes (replace mode only): rewriting
 *      the rewritten stream again must change nothing (A's output is a
 *      fixpoint: one X-Forwarded-For, ours, per head; clean framing).
 * Plus bounds: parked bytes never exceed the buffer, results are in range,
 * errors are sticky.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpfwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  char *p;
  size_t len, cap;
  size_t taken; /* bytes already handed on (B's input) */
} growbuf;

static int grow_out(void *ctx, const char *p, size_t n) {
  growbuf *g = ctx;
  if (n == 0 || p == NULL) abort(); /* never asked to write nothing */
  if (n > g->cap - g->len) {
    size_t nc = (g->cap + n) * 2;
    char *np = realloc(g->p, nc);
    if (np == NULL) return -1;
    g->p = np;
    g->cap = nc;
  }
  memcpy(g->p + g->len, p, n);
  g->len += n;
  return 0;
}

static void check_rc(int rc, int is_resp) {
  if (rc == PK_FWD_OK) return;
  if (!is_resp && rc == PK_FWD_HOLD) return;
  if (is_resp && rc == PK_FWD_RELEASED) return;
  if (rc >= PK_FWD_EBADRESP && rc <= PK_FWD_EBADREQ && rc != PK_FWD_EOUT) return;
  abort();
}

typedef struct {
  pk_fwd f;
  growbuf out;
  char *rq, *rs;
  size_t cap;
  int rc; /* last request-side result */
} inst;

static int inst_init(inst *x, size_t cap, int mode) {
  pk_fwd_config cfg;
  memset(x, 0, sizeof(*x));
  x->rq = malloc(cap);
  x->rs = malloc(cap);
  x->cap = cap;
  if (!x->rq || !x->rs) return -1;
  memset(&cfg, 0, sizeof(cfg));
  cfg.client_ip = "192.0.2.1";
  cfg.proto = "https";
  cfg.xff_mode = mode;
  cfg.req_buf = x->rq;
  cfg.req_cap = cap;
  cfg.resp_buf = x->rs;
  cfg.resp_cap = cap;
  if (pk_fwd_init(&x->f, &cfg) != 0) abort();
  return 0;
}

static void inst_free(inst *x) {
  pk_fwd_free(&x->f);
  free(x->rq);
  free(x->rs);
  free(x->out.p);
}

static void check_bounds(const inst *x) {
  if (pk_fwd_parked(&x->f) > x->cap) abort();
  if (pk_fwd_waiting(&x->f) && pk_fwd_passthrough(&x->f)) abort();
}

static int feed_req(inst *x, const char *p, size_t n) {
  int before = pk_fwd_error(&x->f), rc;
  rc = pk_fwd_request_data(&x->f, p, n, grow_out, &x->out);
  check_rc(rc, 0);
  if (before && rc != before) abort(); /* sticky */
  if (rc >= 0 && (rc == PK_FWD_HOLD) != pk_fwd_waiting(&x->f)) abort();
  check_bounds(x);
  x->rc = rc;
  return rc;
}

/* Origin bytes; a released hold is pushed on at once, as a caller would. */
static int feed_resp(inst *x, const char *p, size_t n) {
  int rc = pk_fwd_response_data(&x->f, p, n);
  check_rc(rc, 1);
  if (rc == PK_FWD_RELEASED) return feed_req(x, NULL, 0);
  check_bounds(x);
  return rc < 0 ? rc : x->rc;
}

static int feed_req_split(inst *x, const char *p, size_t n, size_t piece) {
  size_t pos = 0;
  int rc = feed_req(x, p, 0 * n); /* a zero-length call must be harmless */
  while (pos < n && rc >= 0) {
    size_t k = n - pos < piece ? n - pos : piece;
    rc = feed_req(x, p + pos, k);
    pos += k;
  }
  return rc;
}

/* B eats whatever A emitted since last time. */
static void feed_b(inst *b, growbuf *a_out) {
  if (a_out->len > a_out->taken) {
    feed_req(b, a_out->p + a_out->taken, a_out->len - a_out->taken);
    a_out->taken = a_out->len;
  }
}

static int same(const growbuf *x, const growbuf *y) {
  return x->len == y->len && (x->len == 0 || memcmp(x->p, y->p, x->len) == 0);
}

static void compare(const inst *a, const inst *c, const inst *b, int use_b) {
  if (a->rc != c->rc || pk_fwd_error(&a->f) != pk_fwd_error(&c->f)) abort();
  if (!same(&a->out, &c->out)) abort();
  if (pk_fwd_error(&a->f) != 0) return; /* parked bytes mean nothing after an error */
  if (pk_fwd_parked(&a->f) != pk_fwd_parked(&c->f)) abort();
  if (!use_b) return;
  if (pk_fwd_error(&b->f) != 0) abort();
  if (!same(&b->out, &a->out)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t caps[4] = {256, 300, 1024, PK_FWD_HEAD_MAX};
  inst a, b, c;
  char *buf;
  size_t pos = 1, piece;
  int mode, use_b;
  if (size < 1) return 0;
  buf = malloc(size);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  mode = (data[0] >> 2) & 1;
  piece = 1 + ((data[0] >> 3) & 7);
  use_b = mode == PK_FWD_XFF_REPLACE;
  if (inst_init(&a, caps[data[0] & 3], mode) || inst_init(&c, caps[data[0] & 3], mode) ||
      inst_init(&b, 2 * caps[data[0] & 3] + 1024, PK_FWD_XFF_REPLACE)) {
    goto done;
  }
  while (pos < size) {
    int op = data[pos] % 4;
    size_t n = data[pos] / 4;
    pos++;
    if (n == 63 || n > size - pos) n = size - pos;
    if (op == 3) n = 0;
    if (op == 2) {
      feed_resp(&a, buf + pos, n);
      feed_resp(&c, buf + pos, n);
      if (use_b) feed_resp(&b, buf + pos, n);
    } else {
      feed_req(&a, op == 3 ? NULL : buf + pos, n);
      feed_req_split(&c, buf + pos, n, piece);
    }
    if (use_b) feed_b(&b, &a.out);
    compare(&a, &c, &b, use_b);
    pos += n;
  }
done:
  inst_free(&a);
  inst_free(&b);
  inst_free(&c);
  free(buf);
  return 0;
}

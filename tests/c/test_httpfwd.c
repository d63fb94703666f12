/* test_httpfwd.c - forwarding headers on every request (httpfwd.c), no sockets.
 *
 * Most cases are a table: client bytes, origin bytes, the expected output
 * towards the origin and the final result.  Every case is run with the input
 * fed all at once, a byte at a time and in pieces of several odd sizes, and
 * every run must give the same output and result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpfwd.h"
#include "wire.h"
#include "pk_test.h"

#define IP "203.0.113.7"
#define FWD "X-Forwarded-For: " IP "\r\nX-Forwarded-Proto: https\r\n"
#define OUTMAX (256 * 1024)

/* Feed a whole C string as origin bytes. */
#define RESP(f, str) pk_fwd_response_data((f), (str), strlen(str))

static char req_buf[PK_FWD_HEAD_MAX];
static char resp_buf[PK_FWD_HEAD_MAX];

typedef struct {
  char data[OUTMAX];
  size_t len;
  int calls;
  int fail_at; /* fail the fail_at-th call (1-based); 0 = never */
} sink;

static int sink_out(void *ctx, const char *p, size_t n) {
  sink *s = ctx;
  s->calls++;
  if (s->fail_at && s->calls >= s->fail_at) return -1;
  if (n == 0 || p == NULL) return -2; /* the module never writes nothing */
  if (n > sizeof(s->data) - s->len) return -3;
  memcpy(s->data + s->len, p, n);
  s->len += n;
  return 0;
}

static void fwd_init_cap(pk_fwd *f, size_t cap, int mode) {
  pk_fwd_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.client_ip = IP;
  cfg.proto = "https";
  cfg.xff_mode = mode;
  cfg.req_buf = req_buf;
  cfg.req_cap = cap;
  cfg.resp_buf = resp_buf;
  cfg.resp_cap = cap;
  CHECK_INT(pk_fwd_init(f, &cfg), 0);
}

static void fwd_init(pk_fwd *f) {
  fwd_init_cap(f, PK_FWD_HEAD_MAX, PK_FWD_XFF_REPLACE);
}

/* Output so far equals want. */
static int sink_is(const sink *s, const char *want) {
  return s->len == strlen(want) && memcmp(s->data, want, s->len) == 0;
}

static void show_diff(const char *name, const sink *s, const char *want) {
  fprintf(stderr, "%s: output differs\n--- want (%zu)\n%s\n--- got (%zu)\n%.*s\n---\n", name,
          strlen(want), want, s->len, (int)s->len, s->data);
}

/* ---- the table-driven corpus ---- */
typedef struct {
  const char *name;
  const char *req;  /* client -> origin */
  const char *resp; /* origin -> client, fed after all of req (may be NULL) */
  const char *want; /* expected output */
  int want_rc;      /* final sticky error, or 0 */
  int want_pass;    /* passthrough at the end */
  int want_wait;    /* still holding at the end */
} fcase;

/* Feed c in pieces of `piece` bytes (0: all at once; SIZE_MAX-1: pseudo-
 * random sizes from seed).  Returns the sticky error (or 0). */
static int run_case(const fcase *c, size_t piece, unsigned seed, sink *s, pk_fwd *f) {
  const char *src[2] = {c->req, c->resp};
  int side, rc = 0;
  memset(s, 0, sizeof(*s));
  fwd_init(f);
  for (side = 0; side < 2 && rc >= 0; side++) {
    size_t n = src[side] ? strlen(src[side]) : 0, pos = 0;
    while (pos < n && rc >= 0) {
      size_t k = piece == 0 ? n - pos : piece;
      if (piece == SIZE_MAX - 1) {
        seed = seed * 1103515245u + 12345u;
        k = 1 + (seed >> 16) % 23;
      }
      if (k > n - pos) k = n - pos;
      if (side == 0) {
        rc = pk_fwd_request_data(f, src[side] + pos, k, sink_out, s);
      } else {
        rc = pk_fwd_response_data(f, src[side] + pos, k);
        if (rc == PK_FWD_RELEASED) rc = pk_fwd_request_data(f, NULL, 0, sink_out, s);
      }
      pos += k;
    }
  }
  return rc < 0 ? rc : 0;
}

#define HOLD_REQ "GET /x HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n"
#define UPG_REQ "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
#define UPG_OUT "GET /ws HTTP/1.1\r\n" FWD "Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

static const fcase cases[] = {
    {"keepalive_gets",
     "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /3 HTTP/1.0\r\n\r\n",
     NULL,
     "GET / HTTP/1.1\r\n" FWD "Host: a\r\n\r\nGET /2 HTTP/1.1\r\n" FWD
     "Host: a\r\n\r\nHEAD /3 HTTP/1.0\r\n" FWD "\r\n",
     0, 0, 0},
    {"client_forwarding_fields_dropped",
     "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: a\r\nx-forwarded-proto: http\r\n"
     "X_Forwarded_For: 2.2.2.2\r\nX-FORWARDED-FOR: 3.3.3.3\r\nAccept: */*\r\n\r\n",
     NULL, "GET / HTTP/1.1\r\n" FWD "Host: a\r\nAccept: */*\r\n\r\n", 0, 0, 0},
    {"bare_lf_normalized",
     "GET / HTTP/1.1\nHost: a\nX-Forwarded-For: evil\n\nGET /b HTTP/1.1\r\n\r\n", NULL,
     "GET / HTTP/1.1\r\n" FWD "Host: a\r\n\r\nGET /b HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"empty_lines_between_requests_skipped",
     "\r\n\nGET / HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n", NULL,
     "GET / HTTP/1.1\r\n" FWD "\r\nGET /b HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"content_length_body_untouched",
     "POST /p HTTP/1.1\r\nContent-Length: 52\r\n\r\n"
     "\r\n\r\nGET / HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n1234567"
     "GET /next HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n",
     NULL,
     "POST /p HTTP/1.1\r\n" FWD "Content-Length: 52\r\n\r\n"
     "\r\n\r\nGET / HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n1234567"
     "GET /next HTTP/1.1\r\n" FWD "\r\n",
     0, 0, 0},
    {"identical_content_lengths_folded",
     "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 003\r\nContent-Length: 3, 3\r\n"
     "Host: a\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
     NULL,
     "POST / HTTP/1.1\r\n" FWD "Content-Length: 3\r\nHost: a\r\n\r\nabcGET / HTTP/1.1\r\n" FWD
     "\r\n",
     0, 0, 0},
    {"chunked_with_extensions_and_trailers",
     "POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     "5;name=\"v;x\"\r\nhello\r\n"
     "A ; a=b\r\n0123456789\r\n"
     "1\r\n\n\r\n"
     "0;last\r\nTrailer-One: x\r\nX-Trailer: y z\r\n\r\n"
     "GET /after HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n",
     NULL,
     "POST /c HTTP/1.1\r\n" FWD "Transfer-Encoding: gzip, chunked\r\n\r\n"
     "5;name=\"v;x\"\r\nhello\r\n"
     "A ; a=b\r\n0123456789\r\n"
     "1\r\n\n\r\n"
     "0;last\r\nTrailer-One: x\r\nX-Trailer: y z\r\n\r\n"
     "GET /after HTTP/1.1\r\n" FWD "\r\n",
     0, 0, 0},
    {"chunked_body_hides_a_head",
     "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     "29\r\nGET / HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n\r\n0\r\n\r\n"
     "GET /n HTTP/1.1\r\n\r\n",
     NULL,
     "POST /c HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n"
     "29\r\nGET / HTTP/1.1\r\nX-Forwarded-For: evil\r\n\r\n\r\n0\r\n\r\n"
     "GET /n HTTP/1.1\r\n" FWD "\r\n",
     0, 0, 0},
    {"conflicting_content_length", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     NULL, "", PK_FWD_ELENGTH, 0, 0},
    {"conflicting_content_length_list", "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_plus", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_minus", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_hex", "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_two_words", "POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_empty_element", "POST / HTTP/1.1\r\nContent-Length: 5,,5\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"content_length_overflow",
     "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"te_and_cl",
     "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", NULL,
     "", PK_FWD_ELENGTH, 0, 0},
    {"te_not_chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"te_chunked_not_final", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", NULL,
     "", PK_FWD_ELENGTH, 0, 0},
    {"te_chunked_twice",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", NULL,
     "", PK_FWD_ELENGTH, 0, 0},
    {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"te_chunked_params", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", NULL, "",
     PK_FWD_ELENGTH, 0, 0},
    {"bad_request_line", "GARBAGE\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"bad_version", "GET / HTTP/2.0\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"response_as_request", "HTTP/1.1 200 OK\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"header_without_colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"obs_fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"space_before_colon", "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", NULL, "",
     PK_FWD_EBADREQ, 0, 0},
    {"bare_cr_in_value", "GET / HTTP/1.1\r\nX: a\rX-Forwarded-For: evil\r\n\r\n", NULL, "",
     PK_FWD_EBADREQ, 0, 0},
    {"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"lowercase_head", "head / HTTP/1.1\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"connect_with_body", "CONNECT a:1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", NULL, "",
     PK_FWD_EBADREQ, 0, 0},
    {"bad_head_after_good",
     "GET / HTTP/1.1\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n", NULL, "GET / HTTP/1.1\r\n" FWD "\r\n",
     PK_FWD_EBADREQ, 0, 0},
    {"chunk_bad_hex",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5g\r\nhello\r\n0\r\n\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n5", PK_FWD_EBADREQ, 0, 0},
    {"chunk_bare_lf",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n5", PK_FWD_EBADREQ, 0, 0},
    {"chunk_ws_before_crlf",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n5 ", PK_FWD_EBADREQ, 0, 0},
    {"chunk_no_size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n", PK_FWD_EBADREQ, 0, 0},
    {"chunk_data_too_long",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n2\r\nab", PK_FWD_EBADREQ, 0, 0},
    {"chunk_size_overflow",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n1000000000000000",
     PK_FWD_ETOOBIG, 0, 0},
    {"chunk_ext_ctl",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x01\r\nx\r\n0\r\n\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n1;a", PK_FWD_EBADREQ, 0, 0},
    {"trailer_xff_refused",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Forwarded-For: evil\r\n\r\n",
     NULL, "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n0\r\nX-Forwarded-For",
     PK_FWD_EBADREQ, 0, 0},
    {"trailer_obs_fold",
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n", NULL,
     "POST / HTTP/1.1\r\n" FWD "Transfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n",
     PK_FWD_EBADREQ, 0, 0},
    /* Upgrade: the pipelined request is held until the answer. */
    {"upgrade_held", UPG_REQ HOLD_REQ, NULL, UPG_OUT, 0, 0, 1},
    {"upgrade_declined",
     UPG_REQ HOLD_REQ, "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno",
     UPG_OUT "GET /x HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"upgrade_switched", UPG_REQ HOLD_REQ "\x81\x05hello",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
     UPG_OUT HOLD_REQ "\x81\x05hello", 0, 1, 0},
    {"upgrade_100_then_101", UPG_REQ HOLD_REQ,
     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n", UPG_OUT HOLD_REQ, 0, 1, 0},
    {"upgrade_after_head_response",
     "HEAD / HTTP/1.1\r\n\r\n" UPG_REQ HOLD_REQ,
     "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n",
     "HEAD / HTTP/1.1\r\n" FWD "\r\n" UPG_OUT HOLD_REQ, 0, 1, 0},
    {"upgrade_after_204_304",
     "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n" UPG_REQ HOLD_REQ,
     "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"
     "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
     "HTTP/1.1 101 Switching\r\n\r\n",
     "GET /a HTTP/1.1\r\n" FWD "\r\nGET /b HTTP/1.1\r\n" FWD "\r\n" UPG_OUT HOLD_REQ, 0, 1, 0},
    {"fake_101_inside_response_body",
     "GET /a HTTP/1.1\r\n\r\n" UPG_REQ HOLD_REQ,
     "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n"
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "1a\r\nHTTP/1.1 101 Switching\r\n\r\n\r\n0\r\nT: x\r\n\r\n",
     "GET /a HTTP/1.1\r\n" FWD "\r\n" UPG_OUT "GET /x HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"connect_switched", "CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n" HOLD_REQ,
     "HTTP/1.1 200 Connection established\r\n\r\n",
     "CONNECT db:5432 HTTP/1.1\r\n" FWD "Host: db:5432\r\n\r\n" HOLD_REQ, 0, 1, 0},
    {"connect_refused", "CONNECT db:5432 HTTP/1.1\r\n\r\n" HOLD_REQ,
     "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n",
     "CONNECT db:5432 HTTP/1.1\r\n" FWD "\r\nGET /x HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"h2c_upgrade_offer_removed",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
     "HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n" HOLD_REQ,
     NULL,
     "GET / HTTP/1.1\r\n" FWD "Host: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"
     "GET /x HTTP/1.1\r\n" FWD "\r\n",
     0, 0, 0},
    {"h2c_among_others_removed", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nUpgrade: foo, H2C/1\r\n\r\n",
     NULL, "GET / HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"h2_prior_knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", NULL, "", PK_FWD_EBADREQ, 0, 0},
    {"close_delimited_response_then_requests", "GET /a HTTP/1.1\r\n\r\n" HOLD_REQ,
     "HTTP/1.0 200 OK\r\n\r\nbody until close HTTP/1.1 101 x\r\n\r\n",
     "GET /a HTTP/1.1\r\n" FWD "\r\nGET /x HTTP/1.1\r\n" FWD "\r\n", 0, 0, 0},
    {"response_without_request", "", "HTTP/1.1 408 Timeout\r\n\r\n", "", PK_FWD_EBADRESP, 0, 0},
    {"101_without_upgrade", "GET / HTTP/1.1\r\n\r\n" HOLD_REQ, "HTTP/1.1 101 Switching\r\n\r\n",
     "GET / HTTP/1.1\r\n" FWD "\r\nGET /x HTTP/1.1\r\n" FWD "\r\n", PK_FWD_EBADRESP, 0, 0},
    {"response_conflicting_length", UPG_REQ,
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", UPG_OUT,
     PK_FWD_EBADRESP, 0, 1},
    {"response_garbage", UPG_REQ, "SSH-2.0-OpenSSH\r\n\r\n", UPG_OUT, PK_FWD_EBADRESP, 0, 1},
};

static void check_run(const fcase *c, size_t piece, unsigned seed, const sink *ref) {
  static sink s;
  pk_fwd f;
  int rc = run_case(c, piece, seed, &s, &f);
  int ok = rc == c->want_rc && sink_is(&s, c->want) && pk_fwd_passthrough(&f) == c->want_pass &&
           pk_fwd_waiting(&f) == (c->want_rc ? pk_fwd_waiting(&f) : c->want_wait);
  pk_test_checks++;
  if (!ok) {
    fprintf(stderr, "case %s piece %zu: rc %d (want %d) pass %d wait %d\n", c->name, piece, rc,
            c->want_rc, pk_fwd_passthrough(&f), pk_fwd_waiting(&f));
    show_diff(c->name, &s, c->want);
    pk_test_failures++;
  }
  /* Identical to the all-at-once run, byte for byte. */
  if (ref) CHECK(ref->len == s.len && memcmp(ref->data, s.data, s.len) == 0);
  pk_fwd_free(&f);
}

TEST(corpus_all_piece_sizes) {
  static const size_t pieces[] = {1, 2, 3, 5, 7, 13, 64, 1000, SIZE_MAX - 1};
  static sink ref;
  size_t i, j;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pk_fwd f;
    run_case(&cases[i], 0, 0, &ref, &f);
    pk_fwd_free(&f);
    check_run(&cases[i], 0, 0, NULL);
    for (j = 0; j < sizeof(pieces) / sizeof(pieces[0]); j++) {
      check_run(&cases[i], pieces[j], (unsigned)(i * 31 + j), &ref);
    }
  }
}

/* ---- focused tests ---- */

TEST(xff_append_mode) {
  pk_fwd f;
  static sink s;
  const char *in =
      "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nX-Forwarded-Proto: ftp\r\n"
      "X-Forwarded-For: 10.0.0.3\r\nX-Forwarded-For:\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  memset(&s, 0, sizeof(s));
  fwd_init_cap(&f, PK_FWD_HEAD_MAX, PK_FWD_XFF_APPEND);
  CHECK_INT(pk_fwd_request_data(&f, in, strlen(in), sink_out, &s), PK_FWD_OK);
  CHECK(sink_is(&s,
                "GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, " IP
                "\r\nX-Forwarded-Proto: https\r\n\r\n"
                "GET / HTTP/1.1\r\n" FWD "\r\n"));
}

TEST(parked_bytes_accounting) {
  pk_fwd f;
  static sink s;
  const char *head = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n";
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_parked(&f), 0);
  CHECK_INT(pk_fwd_request_data(&f, head, 10, sink_out, &s), PK_FWD_OK);
  CHECK_INT(pk_fwd_parked(&f), 10); /* an unfinished head waits inside */
  CHECK_INT(s.len, 0);
  CHECK_INT(pk_fwd_request_data(&f, head + 10, strlen(head) - 10, sink_out, &s), PK_FWD_OK);
  CHECK_INT(pk_fwd_parked(&f), 0);
  CHECK_INT(pk_fwd_request_data(&f, "ab", 2, sink_out, &s), PK_FWD_OK);
  CHECK_INT(pk_fwd_parked(&f), 0); /* body bytes are never parked */
  CHECK_INT(pk_fwd_request_data(&f, "cdGET", 5, sink_out, &s), PK_FWD_OK);
  CHECK_INT(pk_fwd_parked(&f), 3);
  CHECK(!pk_fwd_can_reply(&f)); /* the POST is not answered yet */
  CHECK_INT(RESP(&f, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), PK_FWD_OK);
  CHECK(pk_fwd_can_reply(&f));
}

TEST(hold_and_release_accounting) {
  pk_fwd f;
  static sink s;
  const char *up = UPG_REQ, *more = HOLD_REQ "GET /y HTTP/1.1\r\n";
  size_t before;
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, up, strlen(up), sink_out, &s), PK_FWD_HOLD);
  CHECK(pk_fwd_waiting(&f));
  CHECK_INT(pk_fwd_parked(&f), 0);
  before = s.len;
  CHECK_INT(pk_fwd_request_data(&f, more, strlen(more), sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_parked(&f), strlen(more)); /* nothing goes out while we wait */
  CHECK_INT(s.len, before);
  /* An interim response does not end the wait. */
  CHECK_INT(RESP(&f, "HTTP/1.1 100 Continue\r\n\r\n"), PK_FWD_OK);
  CHECK(pk_fwd_waiting(&f));
  CHECK_INT(RESP(&f, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"),
            PK_FWD_RELEASED);
  CHECK(!pk_fwd_waiting(&f));
  CHECK_INT(pk_fwd_parked(&f), strlen(more));
  CHECK_INT(pk_fwd_request_data(&f, NULL, 0, sink_out, &s), PK_FWD_OK);
  /* The complete request went out rewritten; the partial one is parked. */
  CHECK_INT(pk_fwd_parked(&f), strlen("GET /y HTTP/1.1\r\n"));
  CHECK(sink_is(&s, UPG_OUT "GET /x HTTP/1.1\r\n" FWD "\r\n"));
  CHECK_INT(pk_fwd_request_data(&f, "\r\n", 2, sink_out, &s), PK_FWD_OK);
  CHECK(sink_is(&s, UPG_OUT "GET /x HTTP/1.1\r\n" FWD "\r\nGET /y HTTP/1.1\r\n" FWD "\r\n"));
  CHECK_INT(pk_fwd_parked(&f), 0);
}

TEST(upgrade_body_then_101_midway) {
  /* 101 arrives while the upgrade request's body is still coming: the rest
   * of the body is still framed, passthrough starts right after it. */
  pk_fwd f;
  static sink s;
  const char *head = "POST /up HTTP/1.1\r\nUpgrade: example/1\r\nContent-Length: 6\r\n\r\nabc";
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, head, strlen(head), sink_out, &s), PK_FWD_OK);
  CHECK_INT(RESP(&f, "HTTP/1.1 101 Switching\r\n\r\n"), PK_FWD_OK);
  CHECK(!pk_fwd_passthrough(&f));
  CHECK_INT(pk_fwd_request_data(&f, "defNEWPROTO-BYTES\r\n", 19, sink_out, &s), PK_FWD_OK);
  CHECK(pk_fwd_passthrough(&f));
  CHECK(sink_is(&s, "POST /up HTTP/1.1\r\n" FWD
                    "Upgrade: example/1\r\nContent-Length: 6\r\n\r\nabcdefNEWPROTO-BYTES\r\n"));
  /* Response bytes are not examined any more. */
  CHECK_INT(pk_fwd_response_data(&f, "\x00\x00\x12\x04", 4), PK_FWD_OK);
}

TEST(upgrade_declined_before_body_end) {
  pk_fwd f;
  static sink s;
  const char *head = "POST /up HTTP/1.1\r\nUpgrade: example/1\r\nContent-Length: 6\r\n\r\nabc";
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, head, strlen(head), sink_out, &s), PK_FWD_OK);
  CHECK_INT(RESP(&f, "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n"), PK_FWD_OK);
  CHECK_INT(pk_fwd_request_data(&f, "defGET / HTTP/1.1\r\n\r\n", 21, sink_out, &s), PK_FWD_OK);
  CHECK(!pk_fwd_waiting(&f));
  CHECK(sink_is(&s, "POST /up HTTP/1.1\r\n" FWD "Upgrade: example/1\r\nContent-Length: 6\r\n\r\nabcdef"
                    "GET / HTTP/1.1\r\n" FWD "\r\n"));
}

TEST(head_too_large) {
  pk_fwd f;
  static sink s;
  char big[600];
  size_t i;
  memset(&s, 0, sizeof(s));
  /* cap 256: a head of exactly 256 bytes passes, 257 does not. */
  fwd_init_cap(&f, 256, PK_FWD_XFF_REPLACE);
  memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
  for (i = 19; i < 252; i++) big[i] = 'a';
  memcpy(big + 252, "\r\n\r\n", 4);
  CHECK_INT(pk_fwd_request_data(&f, big, 256, sink_out, &s), PK_FWD_OK);
  CHECK(s.len > 256);
  fwd_init_cap(&f, 256, PK_FWD_XFF_REPLACE);
  memmove(big + 253, big + 252, 4);
  big[252] = 'a';
  for (i = 0; i < 257; i++) {
    int rc = pk_fwd_request_data(&f, big + i, 1, sink_out, &s);
    if (i < 255) CHECK_INT(rc, PK_FWD_OK);
    else CHECK_INT(rc, PK_FWD_ETOOBIG);
  }
  CHECK_INT(pk_fwd_http_status(pk_fwd_error(&f)), 431);
  fwd_init_cap(&f, 256, PK_FWD_XFF_REPLACE);
  CHECK_INT(pk_fwd_request_data(&f, big, 257, sink_out, &s), PK_FWD_ETOOBIG);
  /* Endless empty lines are bounded the same way. */
  fwd_init_cap(&f, 256, PK_FWD_XFF_REPLACE);
  for (i = 0; i < 300; i++) big[i] = (i & 1) ? '\n' : '\r';
  CHECK_INT(pk_fwd_request_data(&f, big, 300, sink_out, &s), PK_FWD_ETOOBIG);
}

TEST(too_many_fields) {
  pk_fwd f;
  static sink s;
  static char head[16 * (PK_WIRE_MAX_HEADERS + 8)];
  size_t n = 0;
  int i;
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  n += (size_t)sprintf(head + n, "GET / HTTP/1.1\r\n");
  for (i = 0; i < PK_WIRE_MAX_HEADERS + 1; i++) n += (size_t)sprintf(head + n, "H%d: v\r\n", i);
  n += (size_t)sprintf(head + n, "\r\n");
  CHECK_INT(pk_fwd_request_data(&f, head, n, sink_out, &s), PK_FWD_ETOOBIG);
}

TEST(long_chunk_line_and_trailers) {
  pk_fwd f;
  static sink s;
  static char body[PK_FWD_HEAD_MAX * 2];
  const char *head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  size_t n;
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, head, strlen(head), sink_out, &s), PK_FWD_OK);
  memcpy(body, "1;", 2);
  memset(body + 2, 'e', PK_FWD_LINE_MAX);
  CHECK_INT(pk_fwd_request_data(&f, body, PK_FWD_LINE_MAX + 2, sink_out, &s), PK_FWD_ETOOBIG);
  /* Many short trailer lines: bounded by the buffer size. */
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, head, strlen(head), sink_out, &s), PK_FWD_OK);
  CHECK_INT(pk_fwd_request_data(&f, "0\r\n", 3, sink_out, &s), PK_FWD_OK);
  for (n = 0; n + 6 <= sizeof(body); n += 6) memcpy(body + n, "T: x\r\n", 6);
  CHECK_INT(pk_fwd_request_data(&f, body, n, sink_out, &s), PK_FWD_ETOOBIG);
}

static int fail_out(void *ctx, const char *p, size_t n) {
  (void)ctx;
  (void)p;
  (void)n;
  return -1;
}

TEST(out_failure_propagates) {
  pk_fwd f;
  static sink s;
  static char body[5000];
  const char *req = "GET / HTTP/1.1\r\n\r\n";
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, req, strlen(req), fail_out, NULL), PK_FWD_EOUT);
  CHECK_INT(pk_fwd_error(&f), PK_FWD_EOUT);
  /* Sticky: later calls fail the same way, whatever the sink. */
  memset(&s, 0, sizeof(s));
  CHECK_INT(pk_fwd_request_data(&f, req, strlen(req), sink_out, &s), PK_FWD_EOUT);
  CHECK_INT(RESP(&f, "HTTP/1.1 200 OK\r\n\r\n"), PK_FWD_EOUT);
  CHECK_INT(s.calls, 0);
  CHECK_INT(pk_fwd_http_status(PK_FWD_EOUT), 0);
  /* A failure on a large body write (the zero-copy path). */
  fwd_init(&f);
  memset(&s, 0, sizeof(s));
  s.fail_at = 2;
  memset(body, 'b', sizeof(body));
  req = "POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n";
  CHECK_INT(pk_fwd_request_data(&f, req, strlen(req), sink_out, &s), PK_FWD_OK);
  CHECK_INT(pk_fwd_request_data(&f, body, sizeof(body), sink_out, &s), PK_FWD_EOUT);
}

TEST(hold_overflow) {
  pk_fwd f;
  static sink s;
  static char junk[PK_FWD_HEAD_MAX + 1];
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  memset(junk, 'j', sizeof(junk));
  CHECK_INT(pk_fwd_request_data(&f, UPG_REQ, strlen(UPG_REQ), sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_request_data(&f, junk, PK_FWD_HEAD_MAX, sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_parked(&f), PK_FWD_HEAD_MAX);
  CHECK_INT(pk_fwd_request_data(&f, junk, 1, sink_out, &s), PK_FWD_EFULL);
  CHECK(sink_is(&s, UPG_OUT));
}

/* A long pipeline of one kind is one run: never held. */
TEST(long_pipeline_not_held) {
  pk_fwd f;
  static sink s;
  static char in[18 * 500 + 1];
  const char *one = "GET / HTTP/1.1\r\n\r\n", *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  size_t n = 0, each = strlen("GET / HTTP/1.1\r\n" FWD "\r\n");
  int i;
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  for (i = 0; i < 500; i++) n += (size_t)sprintf(in + n, "%s", one);
  CHECK_INT(pk_fwd_request_data(&f, in, n, sink_out, &s), PK_FWD_OK);
  CHECK_INT(s.len, each * 500);
  CHECK_INT(pk_fwd_parked(&f), 0);
  for (i = 0; i < 500; i++) CHECK_INT(pk_fwd_response_data(&f, resp, strlen(resp)), PK_FWD_OK);
  CHECK(pk_fwd_can_reply(&f));
}

/* Alternating kinds (GET, HEAD, ...) fill the runs: the next one waits. */
TEST(queue_full_holds) {
  pk_fwd f;
  static sink s;
  static char in[64 * 40];
  const char *get = "GET / HTTP/1.1\r\n\r\n", *head = "HEAD / HTTP/1.1\r\n\r\n";
  const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  size_t n = 0;
  int i;
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  for (i = 0; i < PK_FWD_QUEUE_MAX + 2; i++) n += (size_t)sprintf(in + n, "%s", i % 2 ? head : get);
  CHECK_INT(pk_fwd_request_data(&f, in, n, sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_parked(&f), strlen(get) + strlen(head));
  CHECK_INT(pk_fwd_response_data(&f, resp, strlen(resp)), PK_FWD_RELEASED);
  CHECK_INT(pk_fwd_request_data(&f, NULL, 0, sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_parked(&f), strlen(head));
  CHECK_INT(pk_fwd_response_data(&f, resp, strlen(resp)), PK_FWD_RELEASED);
  CHECK_INT(pk_fwd_request_data(&f, NULL, 0, sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_parked(&f), 0);
}

TEST(response_framing_chunked_and_split) {
  /* A response head split across reads, a chunked response with trailers,
   * then the answer to the upgrade: matched correctly. */
  pk_fwd f;
  static sink s;
  const char *req = "GET /a HTTP/1.1\r\n\r\n" UPG_REQ;
  const char *r1 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nHTTP/\r\n0\r\nX: 1\r\n\r\n";
  const char *r2 = "HTTP/1.1 101 Switching\r\n\r\n";
  size_t i;
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, req, strlen(req), sink_out, &s), PK_FWD_HOLD);
  for (i = 0; i < strlen(r1); i++) CHECK_INT(pk_fwd_response_data(&f, r1 + i, 1), PK_FWD_OK);
  CHECK(pk_fwd_waiting(&f));
  CHECK_INT(pk_fwd_response_data(&f, r2, 10), PK_FWD_OK);
  CHECK_INT(pk_fwd_response_data(&f, r2 + 10, strlen(r2) - 10), PK_FWD_RELEASED);
  CHECK(pk_fwd_passthrough(&f));
  CHECK(!pk_fwd_can_reply(&f));
}

TEST(response_te_overrides_cl_and_close_delimited) {
  pk_fwd f;
  static sink s;
  const char *req = "GET /a HTTP/1.1\r\n\r\n" UPG_REQ;
  const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n";
  memset(&s, 0, sizeof(s));
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, req, strlen(req), sink_out, &s), PK_FWD_HOLD);
  CHECK_INT(pk_fwd_response_data(&f, r, strlen(r)), PK_FWD_RELEASED);
  CHECK(pk_fwd_passthrough(&f));
  /* TE not ending in chunked: the response runs to the close. */
  fwd_init(&f);
  CHECK_INT(pk_fwd_request_data(&f, req, strlen(req), sink_out, &s), PK_FWD_HOLD);
  r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nHTTP/1.1 101 Switching\r\n\r\n";
  CHECK_INT(pk_fwd_response_data(&f, r, strlen(r)), PK_FWD_OK);
  CHECK(pk_fwd_waiting(&f));
  CHECK(!pk_fwd_passthrough(&f));
}

TEST(reset_and_bad_config) {
  pk_fwd f;
  pk_fwd_config cfg;
  static sink s;
  memset(&cfg, 0, sizeof(cfg));
  cfg.req_buf = req_buf;
  cfg.req_cap = sizeof(req_buf);
  cfg.resp_buf = resp_buf;
  cfg.resp_cap = sizeof(resp_buf);
  CHECK_INT(pk_fwd_init(&f, &cfg), 0); /* defaults: "unknown", "http" */
  memset(&s, 0, sizeof(s));
  CHECK_INT(pk_fwd_request_data(&f, "GET / HTTP/1.1\r\n\r\n", 18, sink_out, &s), PK_FWD_OK);
  CHECK(sink_is(&s, "GET / HTTP/1.1\r\nX-Forwarded-For: unknown\r\nX-Forwarded-Proto: http\r\n\r\n"));
  CHECK_INT(pk_fwd_request_data(&f, "junk\r\n\r\n", 8, sink_out, &s), PK_FWD_EBADREQ);
  CHECK_INT(pk_fwd_http_status(pk_fwd_error(&f)), 400);
  pk_fwd_reset(&f);
  CHECK_INT(pk_fwd_error(&f), 0);
  CHECK_INT(pk_fwd_request_data(&f, "GET / HTTP/1.1\r\n\r\n", 18, sink_out, &s), PK_FWD_OK);
  cfg.client_ip = "1.2.3.4\r\nX-Forwarded-For: evil";
  CHECK_INT(pk_fwd_init(&f, &cfg), PK_FWD_EINVAL);
  cfg.client_ip = "2001:db8::1%eth0";
  CHECK_INT(pk_fwd_init(&f, &cfg), 0);
  cfg.proto = "ht tp";
  CHECK_INT(pk_fwd_init(&f, &cfg), PK_FWD_EINVAL);
  cfg.proto = "https";
  cfg.req_cap = 10;
  CHECK_INT(pk_fwd_init(&f, &cfg), PK_FWD_EINVAL);
  cfg.req_cap = sizeof(req_buf);
  cfg.xff_mode = 7;
  CHECK_INT(pk_fwd_init(&f, &cfg), PK_FWD_EINVAL);
  CHECK_INT(pk_fwd_request_data(&f, "x", 1, sink_out, &s), PK_FWD_EINVAL);
  cfg.xff_mode = 0;
  CHECK_INT(pk_fwd_init(&f, &cfg), 0);
  CHECK_INT(pk_fwd_request_data(&f, NULL, 1, sink_out, &s), PK_FWD_EINVAL);
  CHECK_INT(pk_fwd_request_data(&f, "x", 1, NULL, NULL), PK_FWD_EINVAL);
  pk_fwd_free(&f);
  CHECK_INT(pk_fwd_request_data(&f, "x", 1, sink_out, &s), PK_FWD_EINVAL);
  CHECK(strcmp(pk_fwd_strerror(PK_FWD_ELENGTH), "unknown error") != 0);
}

/* A pinned host (hostile17): every request of the stream names it, in
 * Host and in an absolute-form target; another name is 421, sticky. */
static int pinned(const char *host, const char *in) {
  pk_fwd f;
  static sink s;
  pk_fwd_config cfg;
  memset(&s, 0, sizeof(s));
  memset(&cfg, 0, sizeof(cfg));
  cfg.client_ip = IP;
  cfg.req_buf = req_buf;
  cfg.req_cap = PK_FWD_HEAD_MAX;
  cfg.resp_buf = resp_buf;
  cfg.resp_cap = PK_FWD_HEAD_MAX;
  cfg.host = host;
  CHECK_INT(pk_fwd_init(&f, &cfg), 0);
  return pk_fwd_request_data(&f, in, strlen(in), sink_out, &s);
}

TEST(pinned_host) {
  const char *h = "Shop.Example.com";
  CHECK_INT(pinned(h, "GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"), PK_FWD_OK);
  CHECK_INT(pinned(h, "GET / HTTP/1.1\r\nHost: SHOP.example.COM:8080\r\n\r\n"), PK_FWD_OK);
  CHECK_INT(pinned("shop.example.com:80", "GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"),
            PK_FWD_OK);
  CHECK_INT(pinned(h, "GET http://shop.example.com:80/x HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"),
            PK_FWD_OK);
  CHECK_INT(pinned("[::1]", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), PK_FWD_OK);
  CHECK_INT(pinned(NULL, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n"),
            PK_FWD_OK);
  CHECK_INT(pinned(h, "GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"
                      "GET / HTTP/1.1\r\nHost: admin.example.com\r\n\r\n"),
            PK_FWD_EMISDIRECTED);
  CHECK_INT(pinned(h, "GET http://admin.example.com/ HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"),
            PK_FWD_EMISDIRECTED);
  CHECK_INT(pinned(h, "GET HTTPS://x@admin.example.com HTTP/1.1\r\nHost: shop.example.com\r\n\r\n"),
            PK_FWD_EMISDIRECTED);
  CHECK_INT(pinned(h, "GET / HTTP/1.0\r\n\r\n"), PK_FWD_EMISDIRECTED);
  CHECK_INT(pinned(h, "GET / HTTP/1.1\r\nHost: shop.example.com.evil\r\n\r\n"), PK_FWD_EMISDIRECTED);
  CHECK_INT(pk_fwd_http_status(PK_FWD_EMISDIRECTED), 421);
}

int main(void) {
  RUN(corpus_all_piece_sizes);
  RUN(pinned_host);
  RUN(xff_append_mode);
  RUN(parked_bytes_accounting);
  RUN(hold_and_release_accounting);
  RUN(upgrade_body_then_101_midway);
  RUN(upgrade_declined_before_body_end);
  RUN(head_too_large);
  RUN(too_many_fields);
  RUN(long_chunk_line_and_trailers);
  RUN(out_failure_propagates);
  RUN(hold_overflow);
  RUN(long_pipeline_not_held);
  RUN(queue_full_holds);
  RUN(response_framing_chunked_and_split);
  RUN(response_te_overrides_cl_and_close_delimited);
  RUN(reset_and_bad_config);
  return TEST_DONE();
}

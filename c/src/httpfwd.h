/* httpfwd.h - X-Forwarded-For / X-Forwarded-Proto on EVERY request of a
 * persistent HTTP/1.x client connection (connector side, client -> origin).
 *
 * No sockets, no allocation, no globals: the caller embeds a pk_fwd per
 * stream, lends it two buffers and feeds it bytes.
 *
 *   client -> origin:  pk_fwd_request_data() parses every request head
 *                      (pk_wire_parse_http_head), re-emits it with our
 *                      forwarding headers, and follows the body (Content-Length
 *                      or chunked) byte-exactly so the next head is found.
 *   origin -> client:  pk_fwd_response_data() only READS the responses (the
 *                      caller forwards them unchanged) to match them to the
 *                      requests, so that an Upgrade / CONNECT request turns
 *                      the connection into an opaque tunnel only when the
 *                      origin really said 101 (or 2xx to CONNECT).
 *
 * Nothing is ever passed through unexamined while its meaning is unknown:
 * after an Upgrade/CONNECT request the later client bytes are HELD (parked in
 * the request buffer) until its response arrives.
 *
 * Policy (RFC 9112 6.3 / RFC 9110):
 *  - Content-Length must be 1*DIGIT; several fields or a list ("5, 5") with
 *    the same value are folded into one "Content-Length: N" line; different
 *    values -> PK_FWD_ELENGTH.
 *  - Transfer-Encoding together with Content-Length -> PK_FWD_ELENGTH.
 *    Transfer-Encoding whose final coding is not "chunked" (or with chunked
 *    twice, or in an HTTP/1.0 request) -> PK_FWD_ELENGTH.
 *  - Only HTTP/1.0 and HTTP/1.1 requests; header names must be tokens with
 *    no blank before ':'; values must have no control characters but HTAB;
 *    a second Host field -> PK_FWD_EBADREQ.  Heads with bare-LF line ends are
 *    accepted and re-emitted with CRLF (the origin sees exactly our parse).
 *  - Client X-Forwarded-For / X-Forwarded-Proto fields are dropped (names
 *    compared case-insensitively with '_' == '-', because CGI/WSGI map both
 *    to HTTP_X_FORWARDED_FOR).  Ours are put right after the request line.
 *    With PK_FWD_XFF_APPEND the client's X-Forwarded-For values are kept in
 *    front of ours: "X-Forwarded-For: <client values>, <ip>".  The client's
 *    X-Forwarded-Proto is always replaced.
 *  - An Upgrade offering h2c is removed (all Upgrade and HTTP2-Settings
 *    fields): after a 101 the client would speak HTTP/2 with forwarding
 *    headers of its own ("h2c smuggling"); the origin answers in HTTP/1.1
 *    instead.  HTTP/2 prior knowledge ("PRI * HTTP/2.0") is a bad request.
 *  - Chunked bodies: strict hex sizes, extensions (visible chars, HTAB, SP),
 *    CRLF only (no bare LF/CR), trailers until the empty line; lines are at
 *    most PK_FWD_LINE_MAX bytes, the trailer section at most the buffer size.
 *    A request trailer named X-Forwarded-For/-Proto -> PK_FWD_EBADREQ.
 *  - Requests awaiting their responses are queued as runs of the same kind
 *    (plain, HEAD, Upgrade, CONNECT): a pipeline of any length of one kind
 *    is one run.  When PK_FWD_QUEUE_MAX runs are waiting, a further request
 *    is HELD (not an error) until a response frees a run.
 *
 * Errors are sticky: once a call returned a negative code every later call
 * returns it again.  On any error the caller stops forwarding client bytes
 * and closes the stream (the output so far is a clean prefix: nothing past
 * the offending byte was emitted).
 */
#ifndef PK_HTTPFWD_H
#define PK_HTTPFWD_H

#include <stddef.h>
#include <stdint.h>

#define PK_FWD_HEAD_MAX 16384 /* suggested size of each buffer (longest head) */
#define PK_FWD_BUF_MIN 256    /* smallest buffer pk_fwd_init accepts */
#define PK_FWD_QUEUE_MAX 32   /* runs of requests forwarded and not yet answered */
#define PK_FWD_LINE_MAX 4096  /* longest chunk-size or trailer line */
#define PK_FWD_IP_MAX 64      /* client_ip, NUL included */
#define PK_FWD_PROTO_MAX 16   /* proto, NUL included */

/* Results.  >= 0 is success. */
#define PK_FWD_OK 0
#define PK_FWD_HOLD 1     /* request_data: input taken, but bytes are parked until the
                           * origin answers: do not acknowledge pk_fwd_parked() bytes */
#define PK_FWD_RELEASED 2 /* response_data: a hold ended; call pk_fwd_request_data(f,
                           * NULL, 0, out, ctx) to push the parked bytes on */
#define PK_FWD_EBADREQ (-1)  /* malformed request head or chunked framing -> 400 */
#define PK_FWD_ELENGTH (-2)  /* bad/conflicting Content-Length, TE+CL, TE not chunked -> 400 */
#define PK_FWD_ETOOBIG (-3)  /* head over the buffer, > PK_WIRE_MAX_HEADERS fields, long chunk line -> 431 */
#define PK_FWD_EOUT (-4)     /* the out() callback failed */
#define PK_FWD_EFULL (-5)    /* more client bytes arrived while held than the buffer holds */
#define PK_FWD_EBADRESP (-6) /* the origin's response framing was not understood */
#define PK_FWD_EINVAL (-7)   /* bad arguments */
#define PK_FWD_EMISDIRECTED (-8) /* a request for another host than the stream's -> 421 */

/* Output sink: write n > 0 bytes towards the origin.  Return 0, or non-zero
 * on failure (the call then returns PK_FWD_EOUT).  Called any number of times
 * per pk_fwd_request_data() call; small pieces are coalesced (~1 KiB). */
typedef int (*pk_fwd_out_fn)(void *ctx, const char *p, size_t n);

#define PK_FWD_XFF_REPLACE 0 /* default: drop the client's X-Forwarded-For */
#define PK_FWD_XFF_APPEND 1  /* keep it, ours last: "client, ours" */

typedef struct {
  const char *client_ip; /* copied; NULL or "" -> "unknown"; chars [0-9A-Za-z.:%_[]-] */
  const char *proto;     /* copied; NULL -> "http"; a token, e.g. "http" / "https" */
  int xff_mode;          /* PK_FWD_XFF_* */
  char *req_buf;         /* request heads and held bytes: caller memory, kept until */
  size_t req_cap;        /*   pk_fwd_free; its size is the longest request head */
  char *resp_buf;        /* scratch copy of a response head split across reads */
  size_t resp_cap;       /*   (never delays response bytes); longest response head */
  const char *host;      /* copied; NULL or "": any; else every request's Host (and an
                          * absolute-form target's host) must name it, port aside,
                          * or PK_FWD_EMISDIRECTED: a stream admitted for one name
                          * (per-kite access rules) carries requests for that name only */
} pk_fwd_config;

/* ---- private state (embedded by the caller; do not touch the fields) ---- */
typedef struct {
  int st;
  uint64_t left;   /* chunk size being read / data bytes left in the chunk */
  size_t line;     /* bytes of the current chunk-size or trailer line */
  size_t trailers; /* bytes of the trailer section */
  size_t name_len; /* bytes of the current trailer field name */
  char name[24];   /* its first bytes */
} pk_fwd_chunk;

typedef struct {
  char *buf;
  size_t cap, off, len; /* live bytes are buf[off..len) */
  size_t scanned;       /* of those, bytes already scanned as head-so-far */
  int hs;               /* head scanner state */
} pk_fwd_hbuf;

#define PK_FWD_HOST_MAX 256 /* host, NUL included */

typedef struct {
  char ip[PK_FWD_IP_MAX];
  char host[PK_FWD_HOST_MAX]; /* "" when any host goes */
  char proto[PK_FWD_PROTO_MAX];
  int xff_mode;
  int err;                             /* sticky error, 0 if none */
  int rq_st;                           /* request side state */
  uint64_t rq_left;                    /* Content-Length body bytes left */
  int rq_upgrade;                      /* current request is Upgrade/CONNECT */
  int upg;                             /* outcome of the pending Upgrade/CONNECT */
  pk_fwd_chunk rq_ck;
  pk_fwd_hbuf rq;
  struct {
    unsigned char flags;               /* kind of the requests in this run */
    uint32_t n;                        /* how many */
  } q[PK_FWD_QUEUE_MAX];               /* requests awaiting responses, oldest first */
  unsigned qhead, qruns;
  uint64_t qlen;                       /* requests awaiting responses in all */
  int rs_st;                           /* response side state */
  uint64_t rs_left;
  pk_fwd_chunk rs_ck;
  pk_fwd_hbuf rs;
} pk_fwd;

/* Set up f for a new connection.  Returns 0 or PK_FWD_EINVAL (NULL buffers,
 * a buffer under PK_FWD_BUF_MIN, a bad client_ip / proto / xff_mode). */
int pk_fwd_init(pk_fwd *f, const pk_fwd_config *cfg);

/* Start over for a new connection with the same configuration and buffers. */
void pk_fwd_reset(pk_fwd *f);

/* Forget everything (nothing is allocated; the buffers stay the caller's). */
void pk_fwd_free(pk_fwd *f);

/* Client -> origin bytes, in pieces of any size (data may be NULL when n is
 * 0: that just pushes on bytes parked by an earlier hold).  Emits the
 * rewritten stream through out(ctx, p, n).  Every input byte is taken: it is
 * either emitted or parked (pk_fwd_parked()).  Returns PK_FWD_OK,
 * PK_FWD_HOLD (waiting for the origin's answer to an Upgrade/CONNECT, or the
 * request queue is full: later bytes are parked), or a negative PK_FWD_E*. */
int pk_fwd_request_data(pk_fwd *f, const char *data, size_t n, pk_fwd_out_fn out, void *ctx);

/* Origin -> client bytes, read only (the caller forwards them unchanged,
 * whatever this returns).  Returns PK_FWD_OK, PK_FWD_RELEASED (a hold
 * ended: call pk_fwd_request_data(f, NULL, 0, out, ctx) now), or a negative
 * PK_FWD_E* (PK_FWD_EBADRESP: a response without a request, a 101 to a
 * request without Upgrade, unparsable head or framing; PK_FWD_ETOOBIG is
 * reported as PK_FWD_EBADRESP).  After a 101 / CONNECT 2xx, or a response
 * delimited by the connection close, later bytes are not examined. */
int pk_fwd_response_data(pk_fwd *f, const char *data, size_t n);

/* Client bytes taken but not yet emitted (an unfinished head, or bytes held
 * while waiting).  Do not acknowledge them to the peer yet.  Meaningless
 * after an error (the stream is going away). */
size_t pk_fwd_parked(const pk_fwd *f);

/* 1 while client bytes are held until the origin answers, else 0. */
int pk_fwd_waiting(const pk_fwd *f);

/* 1 once the connection switched protocols (101 / CONNECT 2xx): both
 * directions are opaque from then on, else 0. */
int pk_fwd_passthrough(const pk_fwd *f);

/* 1 when every forwarded request has been answered in full and no response
 * is under way, so the caller may write its own error response (400/431) to
 * the client without cutting into the origin's responses. */
int pk_fwd_can_reply(const pk_fwd *f);

/* The sticky error (negative), or 0. */
int pk_fwd_error(const pk_fwd *f);

/* The status to answer for a request-side error (400 or 431), or 0 when the
 * client should not be answered (EOUT, EFULL, EBADRESP, EINVAL). */
int pk_fwd_http_status(int err);

/* A short English description of a PK_FWD_* code, for logs. */
const char *pk_fwd_strerror(int rc);

#endif

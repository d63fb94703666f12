/* session.h - one tunnel's PageKite chunk protocol, fed with bytes.
 *
 * A session turns the bytes of an open tunnel into events and events into
 * bytes: frames (plain "<hex>\r\n" or websocket), ZChunks (zlib both ways),
 * chunk headers, PING/PONG keepalive, SKB flow-control credit.  It has no
 * socket, loop, pool or manager: the owner (tunnel.c) hands it bytes with
 * pk_session_recv() and acts on the callbacks, and the session hands the
 * owner bytes to send through cb->send.  So the protocol is unit-tested and
 * fuzzed with no file descriptor (tests/c/test_session.c,
 * tests/fuzz/fuzz_session.c).  Model: nghttp2_session_mem_recv2.
 *
 * Re-entrancy: a callback may end the session (pk_session_close); recv
 * notices and returns -1 without touching anything it parsed since.
 */
#ifndef PK_SESSION_H
#define PK_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "bounds.h"
#include "kiteauth.h"
#include "wire.h"

typedef enum { PK_SESSION_HANDSHAKE = 0, PK_SESSION_OPEN, PK_SESSION_DEAD } pk_session_state;
/* Which end of the handshake (handshake.c) the session plays; NONE: the
 * owner did the handshake itself and only chunks pass (tests). */
typedef enum { PK_SESSION_NONE = 0, PK_SESSION_CONNECTOR, PK_SESSION_RELAY } pk_session_role;

/* Connector: one of our kites as the handshake signs it. */
typedef struct {
  char protoport[40];           /* "http" or "http-8080" */
  char name[PK_NAME_MAX];
  char secret[PK_SECRET_MAX];
  char bsalt[PK_TOKEN_LEN + 1];
  char fsalt[PK_TOKEN_LEN + 1]; /* the relay's challenge to sign, or "" */
} pk_session_kite;

/* Relay: what a handshake or a kite request did. */
typedef struct {
  int ok, challenged, bad;
  int pending; /* asked of a remote authority: pk_session_auth_done answers */
} pk_session_counts;

typedef struct {
  /* Queue a then b for the peer.  a is copied; b is referenced through
   * b_buf when that is not NULL (the owner's buffer handle), else copied.
   * Returns 0, or -1 when the bytes cannot be queued (the owner then ends
   * the session: a chunk cannot be skipped). */
  int (*send)(void *ctx, const char *a, size_t an, const char *b, size_t bn, void *b_buf);
  /* Stream data (SID set, no EOF, not a NOOP), for a known stream or a new
   * one (the chunk then carries Proto/Host/...): the owner decides. */
  void (*data)(void *ctx, const pk_chunk *ch);
  /* Flow control on the receiving side (may be NULL: always): can stream
   * sid take n bytes now?  0 pauses the session before that chunk (nothing
   * of it is processed, later chunks wait behind it): the owner stops
   * reading the peer and calls pk_session_resume() when there is room. */
  int (*room)(void *ctx, long long sid, size_t n);
  /* EOF for a stream (PK_EOF_* bits). */
  void (*eof)(void *ctx, long long sid, int bits);
  /* The peer delivered kb KiB of a stream's data (SKB). */
  void (*credit)(void *ctx, long long sid, long long kb);
  /* A NOOP chunk the session did not consume itself (kite requests and
   * answers are the handshake's when the session has a role).  May be NULL. */
  void (*control)(void *ctx, const pk_chunk *ch);

  /* The handshake's events; NULL for a session without a role. */
  /* Relay: fill in the kite policy (secret, claim, replay, clock) for one
   * request head or NOOP; replace is its X-PageKite-Replace (p NULL if none). */
  void (*policy)(void *ctx, pk_slice replace, pk_auth_relay *a);
  /* Relay: one kite request's verdict (why: the reason for INVALID). */
  void (*verdict)(void *ctx, const pk_kite_req *k, pk_auth_verdict v, const char *why);
  /* Connector: the relay's answer about one kite (OK, INVALID with the WHY
   * before it, DUPLICATE, SIGNTHIS) or its session id (PK_ANS_SESSION). */
  void (*answer)(void *ctx, const pk_auth_answer *a);
  /* Connector: challenges this relay takes only on a new tunnel (it does not
   * speak AddKites); the owner reconnects with the SIGNTHIS tokens. */
  void (*resign)(void *ctx);
  /* Connector: the relay's head was read and applied; the tunnel is open. */
  void (*opened)(void *ctx);
} pk_session_cb;

typedef struct {
  pk_session_state state;
  const pk_session_cb *cb;
  void *ctx;
  int ws;            /* websocket framing instead of chunk frames */
  int peer_zchunks, peer_addkites, peer_skb;
  int authed;        /* a kite is live: full-size frames and buffers */
  pk_session_role role;
  pk_session_kite *kites; /* connector: our kites (handshake.c), nkites of them */
  int nkites;
  int unsent;        /* connector: kites from here on did not fit the request head */
  int challenges;    /* relay: challenges issued on this session */
  int auth_pending;  /* relay: kite requests waiting for a remote authority */
  char *deferred;    /* relay: the answers of a head whose reply waits for them */
  size_t deferred_len;
  pk_session_counts deferred_counts; /* relay: what that head's kites did so far */
  char deferred_ws[64]; /* relay: its Sec-WebSocket-Accept, "" for none */
  int peer_status;   /* connector: the HTTP status of the relay's head (0 before) */
  z_stream zin, zout;
  int zin_ready, zout_ready;
  int zreset_pending; /* peer asked ZRST: our next compressed chunk carries R */
  char *zbuf, *zobuf; /* inflate / deflate output, taken when needed */
  char *in;           /* one partial frame between reads, taken when needed */
  size_t inlen, incap;
  int blocked;        /* paused before a chunk that cb->room refused */
  size_t zpend;       /* blocked on an inflated chunk: its length in zbuf */
  uint64_t last_rx, last_tx, last_ping_sent;
  int sent_since_tick;
  int ping_outstanding, rtt_ms;
  uint64_t bytes_in, bytes_out; /* stream payload */
  char why[96];       /* why the session ended */
} pk_session;

void pk_session_init(pk_session *s, const pk_session_cb *cb, void *ctx, uint64_t now_ms);
/* Gives back buffers and zlib state; the session is DEAD after. */
void pk_session_free(pk_session *s);
void pk_session_open(pk_session *s); /* the handshake is done: chunks from now on */
/* Ends the session (idempotent); recv stops at the next chunk boundary. */
void pk_session_close(pk_session *s, const char *why);
const char *pk_session_why(const pk_session *s);

/* Bytes from the peer (websocket frames are unmasked in place: data must be
 * writable).  Returns 0, or -1 when the session is DEAD (pk_session_why). */
int pk_session_recv(pk_session *s, char *data, size_t n, uint64_t now_ms);
/* Reading into the session's own frame buffer while a frame is half in:
 * room at *base (0 when the owner should read into its own buffer), then
 * pk_session_recv_inplace() with what arrived there. */
size_t pk_session_recv_room(pk_session *s, char **base);
int pk_session_recv_inplace(pk_session *s, size_t n, uint64_t now_ms);
/* Paused by cb->room (s->blocked): bytes received meanwhile are kept (the
 * owner stops reading, so that is the rest of one read at most).  Resume
 * tries the waiting chunk again, and the ones behind it; the session may
 * pause again.  Returns 0, or -1 when the session is DEAD. */
int pk_session_resume(pk_session *s, uint64_t now_ms);

/* Sending.  Each returns 0 or -1 (the session is DEAD or send failed). */
int pk_session_send_chunk(pk_session *s, const char *hdrs, size_t hn, const char *data, size_t dn,
                          void *buf);
/* Stream data with its "SID:" header; ZChunks when the peer offered them and
 * the stream's data shrinks (*noz is the stream's "do not compress" flag,
 * set here when compression does not pay). */
int pk_session_send_data(pk_session *s, long long sid, const char *data, size_t dn, void *buf,
                         int *noz);
/* A chunk with its own header block (a new stream: SID, Proto, Host...). */
int pk_session_send_headed(pk_session *s, const char *hdrs, size_t hn, const char *data,
                           size_t dn, void *buf, int *noz);
int pk_session_send_noop(pk_session *s, const char *lines, size_t n);
/* The peer's X-PageKite-Features (handshake head): AddKites, ZChunks. */
void pk_session_features(pk_session *s, const pk_slice *names, const pk_slice *values, int n);
int pk_session_send_eof(pk_session *s, long long sid, const char *how);
int pk_session_send_skb(pk_session *s, long long sid, unsigned long long kb);
int pk_session_ping(pk_session *s, uint64_t now_ms);

/* ---- the handshake and kite authentication (handshake.c) ---- */
/* Connector: send the tunnel request for kites (copied; a kite with an fsalt
 * answers that challenge, the others ask for one).  resume: the session id
 * of our last tunnel to this relay, or NULL.  0, or -1 (DEAD, with why). */
int pk_session_connect(pk_session *s, const pk_session_kite *kites, int n, const char *version,
                       const char *resume);
/* Connector, on an open tunnel to a relay that speaks AddKites: ask again
 * for the kites with want[i] set (a kite refused earlier, retried), in NOOPs;
 * kites replaces the session's list.  0, or -1 when the tunnel cannot. */
int pk_session_request(pk_session *s, const pk_session_kite *kites, int n, const char *want);
/* What a relay tells every connector about itself in its answer. */
typedef struct {
  const char *ports;      /* "80, 443": X-PageKite-Ports */
  const char *raw_ports;  /* X-PageKite-Raw-Ports, or NULL: the same as ports */
  const char *session_id; /* ours for this tunnel: X-PageKite-SessionID */
  const char *motd;       /* message of the day (X-PageKite-Misc), or NULL */
} pk_relay_hello;

/* Relay: answer a connector's request head (already parsed by the relay):
 * authenticate its kites through cb->policy, send the reply (ws_accept set:
 * the websocket form, a 101 then the answers in a NOOP) and open the session.
 * 0, or -1 (DEAD). */
int pk_session_accept(pk_session *s, const pk_http_head *h, const char *ws_accept,
                      const pk_relay_hello *hello, pk_session_counts *out);

/* Relay: the remote authority answered a request that pk_session_accept or
 * a NOOP left pending (counts.pending): claim the kite (ok) or refuse it
 * with reason.  extra: header lines sent after its OK (the authority's
 * quotas), or NULL.  On an open session the answer goes out in a NOOP; for
 * a head, the reply waits until its last pending kite is answered and then
 * goes out whole (hello as for pk_session_accept), and the session opens.
 * Returns 1 when that reply went out (the owner finishes the handshake:
 * counts as pk_session_accept's in *out), 0 when nothing more is to be
 * done, -1 when the session is DEAD. */
int pk_session_auth_done(pk_session *s, const pk_kite_req *k, int ok, const char *reason,
                         const char *extra, size_t extra_n, const pk_relay_hello *hello,
                         pk_session_counts *out);
/* Keepalive and buffer upkeep: PINGs a quiet peer, ends the session when a
 * PING goes unanswered, gives idle buffers back.  Returns 0 or -1 (DEAD). */
int pk_session_tick(pk_session *s, uint64_t now_ms);

#endif

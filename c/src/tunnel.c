/* tunnel.c - glue between one connection and one protocol session (either
 * role): bytes read go to pk_session_recv, bytes the session sends go to the
 * conn, session events go to streams (stream.c) or to the role (its
 * operations table, role.h).  Also the SID table and the one way a tunnel
 * ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void tunnel_conn_closed(pk_conn *c, int status);
static void tunnel_io(pk_conn *c);
static const pk_session_cb session_cb;

/* A slot is free only after the close callback of its conn has run, so a
 * tunnel killed from inside its own chunk processing is never handed out
 * again (and overwritten) while that processing unwinds. */
pk_tunnel *pk_tunnel_new(pk_mgr *m, pk_conn *c) {
  pk_tunnel *t = NULL;
  for (int i = 0; i < m->ntunnels && !t; i++)
    if (!m->tunnels[i].in_use) t = &m->tunnels[i];
  if (!t) {
    pk_fail(PK_ELIMIT, "tunnel pool exhausted");
    return NULL;
  }
  memset(t, 0, sizeof(*t));
  t->in_use = 1;
  t->mgr = m;
  t->conn = c;
  t->next_sid = 1;
  t->fe_idx = t->addr_idx = -1;
  t->created = pk_now_ms(m);
  pk_session_init(&t->sess, &session_cb, t, t->created);
  c->kind = PK_CK_TUNNEL;
  c->own.tunnel = t;
  c->on_closed = tunnel_conn_closed;
  tunnel_io(c);
  c->wq_max = PK_UNAUTH_WQ_MAX; /* raised when a kite is authenticated */
  return t;
}

/* A kite went live (or the last one went down) on this tunnel. */
void pk_tunnel_kites_changed(pk_tunnel *t, int delta) {
  t->nkites_live += delta;
  if (t->nkites_live < 0) t->nkites_live = 0;
  t->sess.authed = t->nkites_live > 0;
  if (t->conn) t->conn->wq_max = t->nkites_live ? PK_TUNNEL_WQ_MAX : PK_UNAUTH_WQ_MAX;
  pk_counters_publish(t->mgr); /* before the answer or status that tells of it */
}

/* The last step of every tunnel: its conn is gone, the slot can be reused. */
static void tunnel_conn_closed(pk_conn *c, int status) {
  pk_tunnel *t = c->own.tunnel;
  if (!t || t->conn != c) return;
  pk_tunnel_kill(t, "connection closed");
  pk_session_free(&t->sess);
  pk_ratelimit_free(&t->ratelimit);
  c->own.tunnel = NULL;
  memset(t, 0, sizeof(*t));
}

/* ---- the SID table ---- */
/* SIDs are chosen by the peer: hash them as unsigned (no signed overflow). */
static unsigned sid_hash(long long sid) {
  return (unsigned)(((unsigned long long)sid * 2654435761ull) % PK_SID_BUCKETS);
}

pk_conn *pk_tunnel_find_stream(pk_tunnel *t, long long sid) {
  for (pk_conn *s = t->sids[sid_hash(sid)]; s; s = s->sid_next)
    if (s->sid == sid) return s;
  return NULL;
}

void pk_tunnel_add_stream(pk_tunnel *t, pk_conn *s, long long sid) {
  unsigned h = sid_hash(sid);
  s->sid = sid;
  s->tunnel = t;
  s->sid_next = t->sids[h];
  t->sids[h] = s;
  t->nstreams++;
  PK_COUNT(t->mgr->c_streams, 1);
  PK_COUNT(t->mgr->c_streams_total, 1);
  if (s->kstat) t->mgr->kstats[s->kstat - 1].streams_total++;
}

void pk_tunnel_remove_stream(pk_tunnel *t, pk_conn *s) {
  if (!t || s->tunnel != t) return;
  pk_conn **pp = &t->sids[sid_hash(s->sid)];
  while (*pp && *pp != s) pp = &(*pp)->sid_next;
  if (*pp) {
    *pp = s->sid_next;
    t->nstreams--;
    PK_COUNT(t->mgr->c_streams, -1);
  }
  for (pk_conn **q = &t->paused; *q; q = &(*q)->pause_next)
    if (*q == s) {
      *q = s->pause_next;
      break;
    }
  s->tunnel = NULL;
  s->sid_next = NULL;
}

/* ---- sending: the session frames, the conn queues ---- */
static int session_send(void *ctx, const char *a, size_t an, const char *b, size_t bn, void *buf) {
  pk_tunnel *t = ctx;
  if (!t->conn) return -1;
  if (pk_conn_writev2(t->conn, a, an, b, bn, buf) == 0) return 0;
  /* A chunk that cannot be queued cannot be skipped: the tunnel ends. */
  pk_tunnel_kill(t, pk_get_error());
  return -1;
}

static int open_ok(const pk_tunnel *t) { return t && t->sess.state != PK_SESSION_DEAD && t->conn; }

int pk_tunnel_send_chunk(pk_tunnel *t, const char *hdrs, size_t hn, const char *data, size_t dn,
                         pk_block *blk) {
  if (!open_ok(t)) return -1;
  PK_COUNT(t->mgr->c_bytes_out, (long long)dn);
  t->bytes_out += (long long)dn;
  return pk_session_send_chunk(&t->sess, hdrs, hn, data, dn, blk);
}

int pk_tunnel_send_data(pk_tunnel *t, pk_conn *s, const char *hdrs, size_t hn, const char *data,
                        size_t dn, pk_block *blk) {
  if (!open_ok(t)) return -1;
  int noz = s && (s->flags & PK_CF_NOZ);
  PK_COUNT(t->mgr->c_bytes_out, (long long)dn);
  t->bytes_out += (long long)dn;
  if (s && s->kstat) t->mgr->kstats[s->kstat - 1].bytes_out += (long long)dn;
  int rv = pk_session_send_headed(&t->sess, hdrs, hn, data, dn, blk, &noz);
  if (s && noz) s->flags |= PK_CF_NOZ;
  return rv;
}

int pk_tunnel_send_noop(pk_tunnel *t, const char *lines, size_t n) {
  return open_ok(t) ? pk_session_send_noop(&t->sess, lines, n) : -1;
}

int pk_tunnel_send_eof(pk_tunnel *t, long long sid, const char *how) {
  return open_ok(t) ? pk_session_send_eof(&t->sess, sid, how) : -1;
}

void pk_tunnel_ping(pk_tunnel *t) {
  if (open_ok(t)) pk_session_ping(&t->sess, pk_now_ms(t->mgr));
}

/* ---- receiving: session events ---- */
static void session_data(void *ctx, const pk_chunk *ch) {
  pk_tunnel *t = ctx;
  PK_COUNT(t->mgr->c_bytes_in, (long long)ch->data.n);
  t->bytes_in += (long long)ch->data.n;
  pk_conn *s = pk_tunnel_find_stream(t, ch->sid);
  if (s) {
    if (s->kstat) t->mgr->kstats[s->kstat - 1].bytes_in += (long long)ch->data.n;
    pk_stream_from_tunnel(s, ch->data.p, ch->data.n);
  } else {
    t->mgr->role->on_new_stream(t, ch); /* a new stream, or data for one gone */
    /* A stream it opened: its first bytes are its kite's too. */
    if (t->in_use && (s = pk_tunnel_find_stream(t, ch->sid)) && s->kstat)
      t->mgr->kstats[s->kstat - 1].bytes_in += (long long)ch->data.n;
  }
}

/* Receive-side flow control: a chunk for a stream whose queue (or the
 * pool) cannot take it now pauses the whole session before it; the tunnel
 * stops reading and pk_tunnels_unblock() tries again when writes complete.
 * Unknown SIDs (new streams, or streams gone) wait only for blocks to copy
 * a first chunk into; the role decides what to do with it. */
static int session_room(void *ctx, long long sid, size_t n) {
  pk_tunnel *t = ctx;
  pk_conn *s = pk_tunnel_find_stream(t, sid);
  return s ? pk_stream_room(s, n) : pk_pool_room(t->mgr, n);
}

static void session_eof(void *ctx, long long sid, int bits) {
  pk_conn *s = pk_tunnel_find_stream(ctx, sid);
  if (s) pk_stream_peer_eof(s, bits);
}

static void session_credit(void *ctx, long long sid, long long kb) {
  pk_conn *s = pk_tunnel_find_stream(ctx, sid);
  if (s) pk_stream_skb(s, kb);
}

/* The handshake's events go to the role. */
static void session_policy(void *ctx, pk_slice replace, pk_auth_relay *a) {
  pk_tunnel *t = ctx;
  if (t->mgr->role->auth_policy) t->mgr->role->auth_policy(t, replace, a);
}

static void session_verdict(void *ctx, const pk_kite_req *k, pk_auth_verdict v, const char *why) {
  pk_tunnel *t = ctx;
  if (t->mgr->role->kite_verdict) t->mgr->role->kite_verdict(t, k, v, why);
}

static void session_answer(void *ctx, const pk_auth_answer *a) {
  pk_tunnel *t = ctx;
  if (t->mgr->role->kite_answer) t->mgr->role->kite_answer(t, a);
}

static void session_resign(void *ctx) {
  pk_tunnel *t = ctx;
  if (t->mgr->role->resign) t->mgr->role->resign(t);
}

static void session_opened(void *ctx) {
  pk_tunnel *t = ctx;
  pk_tunnel_opened(t);
  if (t->mgr->role->opened) t->mgr->role->opened(t);
}

static const pk_session_cb session_cb = {
    .send = session_send, .data = session_data, .room = session_room, .eof = session_eof,
    .credit = session_credit,
    .policy = session_policy, .verdict = session_verdict, .answer = session_answer,
    .resign = session_resign, .opened = session_opened};

/* A quarter of the tunnel's share of the pool (pk_conn_wq_cap: half of it),
 * so that streams stop feeding long before a write could fail. */
size_t pk_tunnel_wq_high(const pk_tunnel *t) {
  size_t q = t->mgr->blocks.count * PK_BLOCK_SIZE / 8;
  return q < PK_TUNNEL_WQ_HIGH ? q : PK_TUNNEL_WQ_HIGH;
}

static size_t wq_low(const pk_tunnel *t) { return pk_tunnel_wq_high(t) / 4; }

/* A session paused by a stream with no room (session_room): counted in
 * mgr->rx_blocked until it resumes or dies. */
static void set_rx_blocked(pk_tunnel *t, int on) {
  if (t->rx_blocked == on) return;
  t->rx_blocked = on;
  t->mgr->rx_blocked += on ? 1 : -1;
}

/* A session that ended while parsing takes its tunnel with it. */
static void after_recv(pk_tunnel *t, int rv) {
  if (rv != 0) {
    pk_tunnel_kill(t, pk_session_why(&t->sess));
    return;
  }
  /* A peer whose replies we cannot send, or whose data a stream cannot take
   * yet, stops being read until that changes. */
  pk_conn *c = t->conn;
  if (t->sess.blocked) set_rx_blocked(t, 1);
  if (c && (t->sess.blocked || c->wq_bytes > pk_tunnel_wq_high(t)) &&
      !(c->flags & PK_CF_PAUSED)) {
    c->flags |= PK_CF_PAUSED;
    pk_conn_read_stop(c);
  }
}

/* Read the peer again once neither pause reason holds. */
static void maybe_read_again(pk_tunnel *t) {
  pk_conn *c = t->conn;
  if (!c || !(c->flags & PK_CF_PAUSED) || t->sess.blocked || c->wq_bytes > wq_low(t)) return;
  c->flags &= ~PK_CF_PAUSED;
  pk_conn_read_start(c);
}

/* Writes completed (queues shrank, blocks came back): paused sessions try
 * their waiting chunk again.  Runs from libuv callbacks only, never from
 * inside a session's own processing. */
void pk_tunnels_unblock(pk_mgr *m) {
  if (m->rx_blocked <= 0 || m->unblocking) return;
  m->unblocking = 1;
  uint64_t now = pk_now_ms(m);
  for (int i = 0; i < m->ntunnels && m->rx_blocked > 0; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!t->rx_blocked) continue;
    if (!t->in_use || t->dying) {
      set_rx_blocked(t, 0);
      continue;
    }
    int rv = pk_session_resume(&t->sess, now);
    if (!t->sess.blocked) set_rx_blocked(t, 0);
    after_recv(t, rv);
    if (rv == 0 && t->in_use && !t->dying) maybe_read_again(t);
  }
  m->unblocking = 0;
}

int pk_tunnel_feed(pk_tunnel *t, char *data, size_t n) {
  if (t->sess.state == PK_SESSION_DEAD) return -1;
  int rv = pk_session_recv(&t->sess, data, n, pk_now_ms(t->mgr));
  after_recv(t, rv);
  return t->sess.state == PK_SESSION_DEAD ? -1 : 0;
}

/* Reads land in the session's frame buffer while a frame is half there. */
static size_t tunnel_inplace(pk_conn *c, char **base) {
  pk_tunnel *t = c->own.tunnel;
  return t ? pk_session_recv_room(&t->sess, base) : 0;
}

static void tunnel_inplace_done(pk_conn *c, size_t n) {
  pk_tunnel *t = c->own.tunnel;
  if (!t || t->sess.state == PK_SESSION_DEAD) return;
  after_recv(t, pk_session_recv_inplace(&t->sess, n, pk_now_ms(t->mgr)));
}

static void tunnel_on_data(pk_conn *c, const char *data, size_t n, pk_block *blk) {
  pk_tunnel *t = c->own.tunnel;
  /* A relay's answer waiting for the auth domain (reading is stopped): only
   * bytes of the head's own read past its block get here, frames sent
   * before the answer, which no connector does. */
  if (t && t->sess.state == PK_SESSION_HANDSHAKE && t->sess.auth_pending) {
    pk_tunnel_kill(t, "data before the handshake answer");
    return;
  }
  if (t) pk_tunnel_feed(t, (char *)data, n); /* our own read block: writable */
}

static void tunnel_on_eof(pk_conn *c, int status) {
  pk_tunnel *t = c->own.tunnel;
  if (!t) return;
  if (status != 0) pk_tunnel_kill(t, uv_strerror(status));
  else pk_tunnel_kill(t, t->sess.state == PK_SESSION_HANDSHAKE ? "closed during handshake" : "closed by peer");
}

/* The tunnel's write queue drained: read again, feed paused streams. */
static void tunnel_on_drain(pk_conn *c, int n) {
  pk_tunnel *t = c->own.tunnel;
  if (!t || c->wq_bytes > wq_low(t)) return;
  maybe_read_again(t);
  pk_stream_resume_paused(t);
}

/* A tunnel's conn reads into its session from the start: the handshake
 * (connector) is the session's too. */
static void tunnel_io(pk_conn *c) {
  c->on_data = tunnel_on_data;
  c->on_eof = tunnel_on_eof;
  c->on_drain = tunnel_on_drain;
  c->on_inplace = tunnel_inplace;
  c->on_inplace_done = tunnel_inplace_done;
}

/* The handshake is done (either role): plugins hear of the tunnel. */
void pk_tunnel_opened(pk_tunnel *t) {
  const char *peer = t->mgr->role->peer_name(t);
  if (!t->counted_open) t->mgr->tunnels_open++;
  t->counted_open = 1;
  pk_counters_publish(t->mgr);
  pk_event(t->mgr, PK_EVENT_TUNNEL, 1, NULL, peer, NULL);
  pk_plugins_on_tunnel(t->mgr, 1, peer);
}

/* ---- the end ---- */
static void kill_streams(pk_tunnel *t) {
  for (int i = 0; i < PK_SID_BUCKETS; i++)
    while (t->sids[i]) pk_stream_close(t->sids[i]);
}

/* The one way a tunnel dies: streams and kites go at once, the conn closes
 * (politely when finish is set) and the slot is freed by its close callback. */
static void tunnel_end(pk_tunnel *t, const char *why, int finish) {
  if (!t || !t->in_use || t->dying) return;
  pk_mgr *m = t->mgr;
  int was_open = t->sess.state == PK_SESSION_OPEN;
  t->dying = 1;
  set_rx_blocked(t, 0);
  if (t->counted_open) m->tunnels_open--;
  t->counted_open = 0;
  pk_session_close(&t->sess, why);
  if (was_open) {
    pk_event(m, PK_EVENT_TUNNEL, 0, NULL, m->role->peer_name(t), why);
    pk_plugins_on_tunnel(m, 0, m->role->peer_name(t));
  }
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel %s: %s", m->role->tunnel_name, why);
  kill_streams(t);
  m->role->tunnel_closed(t);
  t->nkites_live = 0;
  if (t->conn && finish)
    pk_conn_finish(t->conn);
  else if (t->conn)
    pk_conn_close(t->conn);
  pk_counters_publish(m);
  pk_notify(m);
}

void pk_tunnel_kill(pk_tunnel *t, const char *why) { tunnel_end(t, why, 0); }

void pk_tunnel_finish(pk_tunnel *t, const char *why) { tunnel_end(t, why, 1); }

/* Keepalive: PING a quiet tunnel; kill it when the PING goes unanswered. */
void pk_tunnel_housekeep(pk_tunnel *t, uint64_t now) {
  if (!t->in_use || t->dying) return;
  if (pk_session_tick(&t->sess, now) != 0) pk_tunnel_kill(t, pk_session_why(&t->sess));
}

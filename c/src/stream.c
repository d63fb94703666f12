/* stream.c - one client or origin stream multiplexed over a tunnel, either
 * role: bytes both ways as chunks, SKB flow control, EOF half-closes, and the
 * one function that ends a stream (pk_stream_close).  The relay side sets
 * PK_CF_HTTP never; connector HTTP streams get forwarding headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Connector streams to HTTP origins get forwarding headers on every request. */
static int forwarding(const pk_conn *s) {
  return (s->flags & PK_CF_HTTP) && PK_GET(s->mgr->fwd_headers) && s->tunnel;
}

/* Client bytes taken but not yet written (held by the request rewriter). */
static size_t parked(const pk_conn *s) { return forwarding(s) ? pk_http_forward_parked(s) : 0; }

/* Held bytes delay the origin's half-close only while the rewriter waits for
 * the origin's answer (which releases them); an unfinished head behind a
 * client that is done never completes, so it does not hold anything up. */
static int held_for_origin(const pk_conn *s) {
  return parked(s) > 0 && pk_http_forward_waiting(s);
}

/* The one way a stream ends: out of its tunnel's table, then its conn closes
 * (stream_conn_closed runs from the close callback and finds it detached). */
void pk_stream_close(pk_conn *s) {
  pk_tunnel_remove_stream(s->tunnel, s);
  pk_conn_close(s);
}

static void stream_conn_closed(pk_conn *s, int status) { pk_tunnel_remove_stream(s->tunnel, s); }

static void stream_maybe_done(pk_conn *s) {
  int read_done = (s->flags & (PK_CF_READ_EOF | PK_CF_PEER_W)) != 0;
  int write_done = (s->flags & PK_CF_SHUT_WR) != 0;
  if (read_done && write_done) pk_stream_close(s);
}

void pk_stream_kill(pk_conn *s, int tell_peer) {
  if (s->flags & PK_CF_CLOSING) return;
  if (tell_peer && s->tunnel && !(s->flags & PK_CF_SENT_EOF)) {
    s->flags |= PK_CF_SENT_EOF;
    pk_tunnel_send_eof(s->tunnel, s->sid, "WR");
  }
  pk_stream_close(s);
}

static void stream_pause(pk_conn *s) {
  if (s->flags & PK_CF_PAUSED) return;
  s->flags |= PK_CF_PAUSED;
  pk_conn_read_stop(s);
}

static void stream_resume(pk_conn *s) {
  if (!(s->flags & PK_CF_PAUSED)) return;
  s->flags &= ~PK_CF_PAUSED;
  if (!(s->flags & PK_CF_PEER_W)) pk_conn_read_start(s);
}

/* Wait for the tunnel's write queue to drain (pk_stream_resume_paused). */
static void wait_for_tunnel(pk_conn *s, pk_tunnel *t) {
  for (pk_conn *q = t->paused; q; q = q->pause_next)
    if (q == s) return;
  s->pause_next = t->paused;
  t->paused = s;
}

static void stream_check_window(pk_conn *s) {
  pk_tunnel *t = s->tunnel;
  if (!t) return;
  if (t->sess.peer_skb && s->sent - s->acked > PK_STREAM_WINDOW) stream_pause(s);
}

/* Bytes read from the local socket go into the tunnel as one chunk. */
void pk_stream_on_data(pk_conn *s, const char *data, size_t n, pk_block *blk) {
  pk_tunnel *t = s->tunnel;
  if (!t) {
    pk_conn_close(s);
    return;
  }
  if (forwarding(s)) {
    pk_http_forward_response(s, data, n); /* reads responses; may release held requests */
    if ((s->flags & PK_CF_CLOSING) || !(t = s->tunnel)) return;
  }
  char h[48];
  int hn = pk_wire_format_sid(h, sizeof(h), s->sid);
  if (pk_tunnel_send_data(t, s, h, (size_t)hn, data, n, blk) != 0) {
    /* The tunnel is gone (a chunk that cannot be queued ends it). */
    pk_log(s->mgr, PK_LOG_TUNNEL_DATA | PK_LOG_ERROR, "Stream %lld: tunnel lost (%s), closing",
           s->sid, pk_get_error());
    pk_stream_kill(s, 0);
    return;
  }
  s->sent += n;
  stream_check_window(s);
  if (t->conn && t->conn->wq_bytes > pk_tunnel_wq_high(t)) {
    stream_pause(s);
    wait_for_tunnel(s, t);
  }
}

static void stream_on_eof(pk_conn *s, int status) {
  pk_tunnel *t = s->tunnel;
  if (status < 0 || !t) {
    pk_stream_kill(s, 1);
    return;
  }
  /* Our side will send no more: tell the peer ("R": read side hit EOF). */
  if (!(s->flags & PK_CF_SENT_EOF)) pk_tunnel_send_eof(t, s->sid, "R");
  stream_maybe_done(s);
}

static void stream_on_drain(pk_conn *s, int n) {
  pk_tunnel *t = s->tunnel;
  s->last_activity = pk_now_ms(s->mgr);
  /* Acknowledge in the peer's units: bytes it sent us that have left our
   * queue.  Written bytes differ when forwarding headers are added, and
   * acknowledging those would run ahead of what the peer sent. */
  uint64_t held = s->wq_bytes + parked(s); /* queued, or held by the header rewriter */
  uint64_t q = held < s->received ? held : s->received;
  s->delivered = s->received - q;
  /* pagekite.py senders stall at ~48 KiB unacknowledged: ack every 8 KiB. */
  if (t && s->delivered > s->skb_at && s->delivered - s->skb_at >= PK_SKB_EVERY) {
    s->skb_at = s->delivered;
    pk_session_send_skb(&t->sess, s->sid, (unsigned long long)(s->delivered / 1024));
  }
  if ((s->flags & PK_CF_PEER_R) && s->wq_bytes == 0 && !held_for_origin(s)) pk_conn_shutdown(s);
  stream_maybe_done(s);
}

/* Wire a local socket to a tunnel SID. */
void pk_stream_attach(pk_conn *s, pk_tunnel *t, long long sid) {
  s->kind = PK_CK_STREAM;
  s->on_data = pk_stream_on_data;
  s->on_eof = stream_on_eof;
  s->on_drain = stream_on_drain;
  s->on_closed = stream_conn_closed;
  s->wq_max = PK_STREAM_HARD_MAX + PK_BLOCK_SIZE;
  pk_tunnel_add_stream(t, s, sid);
}

void pk_stream_from_tunnel(pk_conn *s, const char *data, size_t n) {
  if (n == 0) return;
  if (s->flags & (PK_CF_SHUT_WR | PK_CF_PEER_R)) return; /* peer said it was done */
  s->last_activity = pk_now_ms(s->mgr);
  s->received += n;
  /* The session asked pk_stream_room first: a peer that sends past its
   * window (ignoring SKB) stalls its own tunnel, it is not cut off here. */
  int rv;
  if (forwarding(s))
    rv = pk_http_forward_rewrite(s, data, n);
  else
    rv = pk_conn_write(s, data, n, NULL);
  if (rv != 0) {
    pk_log(s->mgr, PK_LOG_TUNNEL_DATA | PK_LOG_ERROR, "Stream %lld: %s, closing", s->sid,
           pk_get_error());
    pk_stream_kill(s, 1);
  }
}

/* Bytes a forwarding rewrite may add to a chunk (its request heads). */
#define PK_STREAM_ROOM_SLACK 4096

int pk_stream_room(pk_conn *s, size_t n) {
  if (s->flags & (PK_CF_SHUT_WR | PK_CF_PEER_R | PK_CF_CLOSING)) return 1; /* dropped */
  size_t need = n + PK_STREAM_ROOM_SLACK;
  /* Its share of the pool (and the hard limit): an empty queue takes any
   * chunk, so one larger than the share cannot wait forever. */
  size_t cap = pk_conn_wq_cap(s);
  if (cap > PK_STREAM_HARD_MAX) cap = PK_STREAM_HARD_MAX;
  if (s->wq_bytes > 0 && s->wq_bytes + need > cap) return 0;
  return pk_pool_room(s->mgr, n);
}

int pk_pool_room(pk_mgr *m, size_t n) {
  /* Blocks to copy it into (packing wastes up to half a block per copy),
   * leaving a few for control replies. */
  size_t blocks = 2 * ((n + PK_STREAM_ROOM_SLACK) / PK_BLOCK_SIZE) + 2;
  return m->blocks.count - m->blocks.in_use >= blocks + PK_CONTROL_RESERVE;
}

void pk_stream_peer_eof(pk_conn *s, int bits) {
  if (bits & PK_EOF_READ) {
    /* Peer's source is exhausted: finish our writes, then half-close. */
    s->flags |= PK_CF_PEER_R;
    if (s->wq_bytes == 0 && !held_for_origin(s)) pk_conn_shutdown(s);
  }
  if (bits & PK_EOF_WRITE) {
    /* Peer cannot deliver any more: stop reading.  Bytes held until the
     * origin answers would then wait forever: the stream is over. */
    s->flags |= PK_CF_PEER_W;
    pk_conn_read_stop(s);
    if (held_for_origin(s)) {
      pk_stream_kill(s, 1);
      return;
    }
  }
  if ((bits & (PK_EOF_READ | PK_EOF_WRITE)) == (PK_EOF_READ | PK_EOF_WRITE) && s->wq_bytes == 0) {
    s->flags |= PK_CF_SENT_EOF;
    pk_stream_close(s);
    return;
  }
  stream_maybe_done(s);
}

void pk_stream_skb(pk_conn *s, long long kb) {
  if (kb < 0) return;
  uint64_t acked = (uint64_t)kb * 1024;
  if (acked > s->sent) acked = s->sent; /* a peer cannot have delivered more than we sent */
  if (acked > s->acked) s->acked = acked;
  if (!(s->flags & PK_CF_PAUSED) || s->sent - s->acked > PK_STREAM_WINDOW / 2) return;
  pk_tunnel *t = s->tunnel;
  /* Window open again, but the tunnel is full: resume when it drains (a
   * stream paused by its window alone is on no list, and the last SKB may
   * be this one). */
  if (t && t->conn && t->conn->wq_bytes > pk_tunnel_wq_high(t))
    wait_for_tunnel(s, t);
  else
    stream_resume(s);
}


/* The tunnel's write queue drained: feed its paused streams again. */
void pk_stream_resume_paused(pk_tunnel *t) {
  while (t->paused) {
    pk_conn *s = t->paused;
    t->paused = s->pause_next;
    s->pause_next = NULL;
    if (!(t->sess.peer_skb && s->sent - s->acked > PK_STREAM_WINDOW)) stream_resume(s);
  }
}

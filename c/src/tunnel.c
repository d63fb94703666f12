/* tunnel.c - one tunnel, either role: frame reassembly, ZChunks inflate,
 * chunk dispatch to streams by SID, PING/PONG, SKB flow control, EOFs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void tunnel_conn_closed(pk_conn *c, int status);

/* A slot is free only after the close callback of its conn has run, so a
 * tunnel killed from inside its own chunk processing is never handed out
 * again (and overwritten) while that processing unwinds. */
pk_tunnel *pk_tunnel_new(pk_mgr *m, pk_conn *c, int relay_side) {
  pk_tunnel *t = NULL;
  for (int i = 0; i < m->ntunnels; i++)
    if (!m->tunnels[i].in_use) {
      t = &m->tunnels[i];
      break;
    }
  if (!t) {
    pk_set_error("tunnel pool exhausted");
    return NULL;
  }
  memset(t, 0, sizeof(*t));
  t->in_use = 1;
  t->mgr = m;
  t->conn = c;
  t->is_relay_side = relay_side;
  t->next_sid = 1;
  t->fe_idx = t->addr_idx = -1;
  t->created = t->last_rx = pk_now_ms(m);
  t->rtt_ms = -1;
  c->kind = PK_CK_TUNNEL;
  c->owner = t;
  c->on_closed = tunnel_conn_closed;
  c->wq_max = PK_UNAUTH_WQ_MAX; /* raised when a kite is authenticated */
  return t;
}

/* A kite went live (or the last one went down) on this tunnel. */
void pk_tunnel_kites_changed(pk_tunnel *t, int delta) {
  t->nkites_live += delta;
  if (t->nkites_live < 0) t->nkites_live = 0;
  if (t->conn) t->conn->wq_max = t->nkites_live ? PK_TUNNEL_WQ_MAX : PK_UNAUTH_WQ_MAX;
}

static void free_buffers(pk_tunnel *t) {
  free(t->in);
  free(t->zbuf);
  free(t->zobuf);
  t->in = t->zbuf = t->zobuf = NULL;
  t->incap = t->inlen = 0;
}

/* The last step of every tunnel: its conn is gone, the slot can be reused. */
static void tunnel_conn_closed(pk_conn *c, int status) {
  pk_tunnel *t = c->owner;
  if (!t || t->conn != c) return;
  pk_tunnel_kill(t, "connection closed");
  if (t->zin_ready) inflateEnd(&t->zin);
  if (t->zout_ready) deflateEnd(&t->zout);
  free_buffers(t);
  c->owner = NULL;
  memset(t, 0, sizeof(*t));
}

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
  t->mgr->c_streams++;
  t->mgr->c_streams_total++;
}

void pk_tunnel_remove_stream(pk_tunnel *t, pk_conn *s) {
  if (!t || s->tunnel != t) return;
  pk_conn **pp = &t->sids[sid_hash(s->sid)];
  while (*pp && *pp != s) pp = &(*pp)->sid_next;
  if (*pp) {
    *pp = s->sid_next;
    t->nstreams--;
    t->mgr->c_streams--;
  }
  for (pk_conn **q = &t->paused; *q; q = &(*q)->pause_next)
    if (*q == s) {
      *q = s->pause_next;
      break;
    }
  s->tunnel = NULL;
  s->sid_next = NULL;
}

/* ---- sending ---- */
/* Websocket tunnels carry each chunk as one binary frame (unmasked: we are
 * the server end); plain tunnels use the "<hex len>\r\n" frame header. */
static int frame_header(pk_tunnel *t, char *out, size_t outsz, size_t len) {
  if (!t->ws) return pk_wire_format_frame(out, outsz, len, len, 0, 0);
  unsigned char *o = (unsigned char *)out;
  o[0] = 0x82; /* FIN + binary */
  if (len < 126) {
    o[1] = (unsigned char)len;
    return 2;
  }
  if (len < 65536) {
    o[1] = 126;
    o[2] = (unsigned char)(len >> 8);
    o[3] = (unsigned char)len;
    return 4;
  }
  o[1] = 127;
  for (int i = 0; i < 8; i++) o[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

/* A chunk that cannot be queued (the peer does not read, the pool is dry,
 * the socket broke) cannot be skipped without corrupting the stream of
 * chunks: the tunnel ends. */
static int sent(pk_tunnel *t, int rv) {
  if (rv != 0) pk_tunnel_kill(t, pk_get_error());
  return rv;
}

int pk_tunnel_send_chunk(pk_tunnel *t, const char *hdrs, size_t hn, const char *data, size_t dn,
                         pk_block *blk) {
  if (!t || t->state == PK_TS_DEAD || !t->conn) return -1;
  char head[PK_WIRE_FRAME_HDR_MAX + 1024];
  int fl = frame_header(t, head, sizeof(head), hn + dn);
  if (fl < 0) return -1;
  t->mgr->c_bytes_out += (long long)dn;
  t->last_tx = pk_now_ms(t->mgr);
  if (hn > sizeof(head) - (size_t)fl) {
    /* Long control chunks (many kite results): header and data go separately. */
    int rv = pk_conn_writev2(t->conn, head, (size_t)fl, hdrs, hn, NULL);
    if (rv == 0 && dn) rv = pk_conn_write(t->conn, data, dn, blk);
    return sent(t, rv);
  }
  memcpy(head + fl, hdrs, hn);
  return sent(t, pk_conn_writev2(t->conn, head, (size_t)fl + hn, data, dn, blk));
}

/* Stream data: ZChunks (zlib, sync-flushed, one stream per direction) when the
 * peer offered them and the stream's data compresses; plain otherwise. */
int pk_tunnel_send_data(pk_tunnel *t, pk_conn *s, const char *hdrs, size_t hn, const char *data,
                        size_t dn, pk_block *blk) {
  if (!t || t->state == PK_TS_DEAD || !t->conn) return -1;
  size_t len = hn + dn;
  if (!t->peer_zchunks || t->ws || (s && (s->flags & PK_CF_NOZ)) || len <= 64 || len > PK_BLOCK_SIZE + 1024)
    return pk_tunnel_send_chunk(t, hdrs, hn, data, dn, blk);
  int reset = 0;
  if (!t->zout_ready || t->zreset_pending) {
    if (t->zout_ready) deflateEnd(&t->zout);
    memset(&t->zout, 0, sizeof(t->zout));
    if (deflateInit(&t->zout, 1) != Z_OK) return pk_tunnel_send_chunk(t, hdrs, hn, data, dn, blk);
    reset = t->zout_ready; /* the peer's inflater must start over too */
    t->zout_ready = 1;
    t->zreset_pending = 0;
  }
  if (!t->zobuf && !(t->zobuf = malloc(PK_MAX_CHUNK))) {
    t->zreset_pending = 1;
    return pk_tunnel_send_chunk(t, hdrs, hn, data, dn, blk);
  }
  t->last_tx = pk_now_ms(t->mgr);
  z_stream *z = &t->zout;
  z->next_out = (Bytef *)t->zobuf;
  z->avail_out = PK_MAX_CHUNK;
  z->next_in = (Bytef *)hdrs;
  z->avail_in = (uInt)hn;
  int r = deflate(z, Z_NO_FLUSH);
  if (r == Z_OK) {
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)dn;
    r = deflate(z, Z_SYNC_FLUSH);
  }
  if (r != Z_OK || z->avail_in != 0) {
    t->zreset_pending = 1;
    return pk_tunnel_send_chunk(t, hdrs, hn, data, dn, blk);
  }
  size_t zlen = PK_MAX_CHUNK - z->avail_out;
  /* Data that does not shrink is sent plain from now on (the deflate state
   * has consumed it, so this chunk still goes out compressed). */
  if (s && zlen * 10 > len * 9) s->flags |= PK_CF_NOZ;
  char head[PK_WIRE_FRAME_HDR_MAX + 1];
  int fl = pk_wire_format_frame(head, sizeof(head), len, zlen, 1, reset);
  if (fl < 0) return -1;
  t->mgr->c_bytes_out += (long long)dn;
  return sent(t, pk_conn_writev2(t->conn, head, (size_t)fl, t->zobuf, zlen, NULL));
}

int pk_tunnel_send_noop(pk_tunnel *t, const char *fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof(buf), "NOOP: 1\r\n");
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)(n + k) >= sizeof(buf) - 4) return -1;
  n += k;
  memcpy(buf + n, "\r\n", 2);
  n += 2;
  return pk_tunnel_send_chunk(t, buf, (size_t)n, "!", 1, NULL);
}

int pk_tunnel_send_eof(pk_tunnel *t, long long sid, const char *how) {
  char buf[80];
  int n = snprintf(buf, sizeof(buf), "SID: %lld\r\nEOF: 1%s\r\n\r\n", sid, how);
  return pk_tunnel_send_chunk(t, buf, (size_t)n, "Bye!", 4, NULL);
}

void pk_tunnel_ping(pk_tunnel *t) {
  uint64_t now = pk_now_ms(t->mgr);
  t->last_ping_sent = now;
  t->ping_outstanding = 1;
  pk_tunnel_send_noop(t, "PING: %.3f\r\n", (double)uv_hrtime() / 1e9);
}

/* ---- streams (shared by both roles) ---- */
/* Connector streams to HTTP origins get forwarding headers on every request. */
static int forwarding(const pk_conn *s) {
  return (s->flags & PK_CF_HTTP) && s->mgr->fwd_headers && s->tunnel && !s->tunnel->is_relay_side;
}

/* Client bytes taken but not yet written (held by the request rewriter). */
static size_t parked(const pk_conn *s) { return forwarding(s) ? pk_http_forward_parked(s) : 0; }

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

static void stream_check_window(pk_conn *s) {
  pk_tunnel *t = s->tunnel;
  if (!t) return;
  if (t->peer_skb && s->sent - s->acked > PK_STREAM_WINDOW) stream_pause(s);
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
    pk_stream_kill(s, 0);
    return;
  }
  s->sent += n;
  stream_check_window(s);
  if (t->conn && t->conn->wq_bytes > PK_TUNNEL_WQ_HIGH && !(s->flags & PK_CF_PAUSED)) {
    stream_pause(s);
    s->pause_next = t->paused;
    t->paused = s;
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
    pk_tunnel_send_noop(t, "SID: %lld\r\nSKB: %llu\r\n", s->sid,
                        (unsigned long long)(s->delivered / 1024));
  }
  if ((s->flags & PK_CF_PEER_R) && s->wq_bytes == 0 && parked(s) == 0) pk_conn_shutdown(s);
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
  if (s->wq_bytes + n > PK_STREAM_HARD_MAX) {
    pk_log(s->mgr, PK_LOG_TUNNEL_DATA | PK_LOG_ERROR,
           "Stream %lld: peer ignores flow control, closing", s->sid);
    pk_stream_kill(s, 1);
    return;
  }
  int rv;
  if (forwarding(s))
    rv = pk_http_forward_rewrite(s, data, n);
  else
    rv = pk_conn_write(s, data, n, NULL);
  if (rv != 0) pk_stream_kill(s, 1);
}

void pk_stream_peer_eof(pk_conn *s, int bits) {
  if (bits & PK_EOF_READ) {
    /* Peer's source is exhausted: finish our writes, then half-close. */
    s->flags |= PK_CF_PEER_R;
    if (s->wq_bytes == 0 && parked(s) == 0) pk_conn_shutdown(s);
  }
  if (bits & PK_EOF_WRITE) {
    /* Peer cannot deliver any more: stop reading. */
    s->flags |= PK_CF_PEER_W;
    pk_conn_read_stop(s);
  }
  if ((bits & (PK_EOF_READ | PK_EOF_WRITE)) == (PK_EOF_READ | PK_EOF_WRITE) && s->wq_bytes == 0 &&
      parked(s) == 0) {
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
  if ((s->flags & PK_CF_PAUSED) && s->sent - s->acked <= PK_STREAM_WINDOW / 2 &&
      !(s->tunnel && s->tunnel->conn && s->tunnel->conn->wq_bytes > PK_TUNNEL_WQ_HIGH))
    stream_resume(s);
}

/* The tunnel's write queue drained: feed paused streams again. */
static void tunnel_on_drain(pk_conn *c, int n) {
  pk_tunnel *t = c->owner;
  if (!t || c->wq_bytes > PK_TUNNEL_WQ_LOW) return;
  if (c->flags & PK_CF_PAUSED) {
    c->flags &= ~PK_CF_PAUSED;
    pk_conn_read_start(c);
  }
  while (t->paused) {
    pk_conn *s = t->paused;
    t->paused = s->pause_next;
    s->pause_next = NULL;
    if (!(t->peer_skb && s->sent - s->acked > PK_STREAM_WINDOW)) stream_resume(s);
  }
}

/* ---- receiving ---- */
static int process_chunk(pk_tunnel *t, const char *p, size_t n) {
  pk_mgr *m = t->mgr;
  pk_chunk ch;
  if (pk_wire_parse_chunk(p, n, &ch) != 0) {
    pk_tunnel_kill(t, "corrupt chunk");
    return -1;
  }
  if (m->log_mask & PK_LOG_TUNNEL_HEADERS)
    pk_log(m, PK_LOG_TUNNEL_HEADERS, "chunk: %d headers, sid=%lld, %zu data bytes", ch.nheaders,
           ch.sid, ch.data.n);
  if (ch.known[PK_CH_PING].p) {
    char ts[72];
    size_t k = ch.known[PK_CH_PING].n < 64 ? ch.known[PK_CH_PING].n : 64;
    memcpy(ts, ch.known[PK_CH_PING].p, k);
    ts[k] = 0;
    pk_tunnel_send_noop(t, "PONG: %s\r\n", ts);
  }
  if (ch.known[PK_CH_ZRST].p) t->zreset_pending = 1;
  if (ch.known[PK_CH_PONG].p) {
    t->ping_outstanding = 0;
    t->rtt_ms = (int)(pk_now_ms(m) - t->last_ping_sent);
  }
  if ((ch.known[PK_CH_SKB].p || ch.known[PK_CH_SPD].p) && ch.sid >= 0) {
    long long kb;
    t->peer_skb = 1;
    pk_conn *s = pk_tunnel_find_stream(t, ch.sid);
    if (s && ch.known[PK_CH_SKB].p && pk_slice_to_ll(ch.known[PK_CH_SKB], &kb) == 0)
      pk_stream_skb(s, kb);
  }
  if (ch.noop) {
    if (t->is_relay_side)
      pk_relay_on_chunk(t, &ch);
    else
      pk_connector_on_chunk(t, &ch);
    return t->state == PK_TS_DEAD ? -1 : 0;
  }
  if (ch.sid < 0) {
    pk_tunnel_kill(t, "chunk without SID");
    return -1;
  }
  pk_conn *s = pk_tunnel_find_stream(t, ch.sid);
  if (ch.eof) {
    if (s) pk_stream_peer_eof(s, ch.eof);
    return 0;
  }
  m->c_bytes_in += (long long)ch.data.n;
  if (s) {
    pk_stream_from_tunnel(s, ch.data.p, ch.data.n);
    return 0;
  }
  if (t->is_relay_side)
    pk_relay_on_chunk(t, &ch);
  else
    pk_connector_on_chunk(t, &ch);
  return t->state == PK_TS_DEAD ? -1 : 0;
}

static int inflate_chunk(pk_tunnel *t, const pk_frame *f, const char *p) {
  if (!t->zbuf && !(t->zbuf = malloc(PK_MAX_CHUNK))) return -1;
  if (!t->zin_ready || f->reset) {
    if (t->zin_ready) inflateEnd(&t->zin);
    memset(&t->zin, 0, sizeof(t->zin));
    if (inflateInit(&t->zin) != Z_OK) return -1;
    t->zin_ready = 1;
  }
  t->zin.next_in = (Bytef *)p;
  t->zin.avail_in = (uInt)f->wire_len;
  t->zin.next_out = (Bytef *)t->zbuf;
  t->zin.avail_out = PK_MAX_CHUNK;
  int r = inflate(&t->zin, Z_SYNC_FLUSH);
  if ((r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) || t->zin.avail_in != 0) return -1;
  size_t out = PK_MAX_CHUNK - t->zin.avail_out;
  if (out != f->len) return -1;
  return process_chunk(t, t->zbuf, out);
}

/* Before a kite is authenticated a peer gets small frames and buffers only. */
static size_t max_chunk(const pk_tunnel *t) {
  return t->nkites_live > 0 ? PK_MAX_CHUNK : PK_UNAUTH_CHUNK;
}

/* Websocket framing (RFC 6455) around chunks, as pagekite.py's websocket
 * tunnels use it: one chunk per binary frame, client frames masked. */
static long consume_ws(pk_tunnel *t, char *buf, size_t n) {
  size_t off = 0;
  while (off < n && t->state != PK_TS_DEAD) {
    unsigned char *b = (unsigned char *)buf + off;
    size_t avail = n - off;
    if (avail < 2) break;
    int fin = b[0] & 0x80, op = b[0] & 0x0f, masked = b[1] & 0x80;
    uint64_t len = b[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)b[2] << 8) | b[3];
      hl = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
      hl = 10;
    }
    if (len > max_chunk(t) || !fin || (b[0] & 0x70)) {
      pk_tunnel_kill(t, "bad websocket frame");
      return -1;
    }
    if (masked) hl += 4;
    if (avail < hl + len) break;
    char *p = (char *)b + hl;
    if (masked)
      for (uint64_t i = 0; i < len; i++) p[i] ^= (char)b[hl - 4 + (i & 3)];
    if (op == 0x1 || op == 0x2) {
      if (len && process_chunk(t, p, (size_t)len) < 0) return -1;
    } else if (op == 0x8) {
      pk_tunnel_kill(t, "websocket closed by peer");
      return -1;
    } else if (op == 0x9) {
      char pong[2] = {(char)0x8a, 0};
      if (len < 126) {
        pong[1] = (char)len;
        pk_conn_writev2(t->conn, pong, 2, p, (size_t)len, NULL);
      }
    } else if (op != 0xa) {
      pk_tunnel_kill(t, "unsupported websocket frame");
      return -1;
    }
    off += hl + (size_t)len;
  }
  return (long)off;
}

/* Consume whole frames from buf; returns bytes consumed or -1 (tunnel dead). */
static long consume(pk_tunnel *t, const char *buf, size_t n) {
  if (t->ws) return consume_ws(t, (char *)buf, n); /* our own buffers: unmasked in place */
  size_t off = 0;
  while (off < n && t->state != PK_TS_DEAD) {
    pk_frame f;
    int r = pk_wire_parse_frame(buf + off, n - off, max_chunk(t), &f);
    if (r == PK_WIRE_NEED_MORE) break;
    if (r < 0) {
      pk_tunnel_kill(t, r == PK_WIRE_ETOOBIG ? "oversized chunk" : "bad chunk frame");
      return -1;
    }
    if (n - off < f.hdr_len + f.wire_len) break;
    const char *p = buf + off + f.hdr_len;
    int rv = f.compressed ? inflate_chunk(t, &f, p) : process_chunk(t, p, f.wire_len);
    if (rv < 0) {
      if (t->state != PK_TS_DEAD) pk_tunnel_kill(t, "bad compressed chunk");
      return -1;
    }
    off += f.hdr_len + f.wire_len;
  }
  return (long)off;
}

/* The frame buffer holds one partial frame between reads.  It is taken when
 * a frame spans reads and given back when the tunnel is idle; before a kite
 * is authenticated it is small. */
static int ensure_in(pk_tunnel *t) {
  size_t cap = t->nkites_live > 0 ? PK_TUNNEL_INBUF : PK_UNAUTH_CHUNK + 2 * PK_WIRE_FRAME_HDR_MAX;
  if (t->in && t->incap >= cap) return 0;
  char *nb = realloc(t->in, cap);
  if (!nb) return -1;
  t->in = nb;
  t->incap = cap;
  return 0;
}

/* Consume what t->in holds; keep the unconsumed tail at its front. */
static int consume_in(pk_tunnel *t) {
  long used = consume(t, t->in, t->inlen);
  if (used < 0) return -1;
  if (used == 0 && t->inlen == t->incap) {
    pk_tunnel_kill(t, "chunk larger than buffer");
    return -1;
  }
  if (used) memmove(t->in, t->in + used, t->inlen - (size_t)used);
  t->inlen -= (size_t)used;
  return 0;
}

/* A peer whose replies we cannot send stops being read until they drain. */
static void check_backlog(pk_tunnel *t) {
  pk_conn *c = t->conn;
  if (t->state == PK_TS_DEAD || !c || c->wq_bytes <= PK_TUNNEL_WQ_HIGH) return;
  if (c->flags & PK_CF_PAUSED) return;
  c->flags |= PK_CF_PAUSED;
  pk_conn_read_stop(c);
}

static void received(pk_tunnel *t) {
  t->last_rx = pk_now_ms(t->mgr);
  t->ping_outstanding = 0;
}

int pk_tunnel_feed(pk_tunnel *t, const char *data, size_t n) {
  received(t);
  while (n > 0 && t->state != PK_TS_DEAD) {
    if (t->inlen == 0) {
      /* Fast path: whole frames straight from the read buffer. */
      long used = consume(t, data, n);
      if (used < 0) return -1;
      data += used;
      n -= (size_t)used;
      if (n == 0 || t->state == PK_TS_DEAD) break;
    }
    if (ensure_in(t) != 0) {
      pk_tunnel_kill(t, "out of memory");
      return -1;
    }
    size_t room = t->incap - t->inlen;
    size_t take = n < room ? n : room;
    memcpy(t->in + t->inlen, data, take);
    t->inlen += take;
    data += take;
    n -= take;
    if (consume_in(t) != 0) return -1;
  }
  check_backlog(t);
  return t->state == PK_TS_DEAD ? -1 : 0;
}

/* Reads land in the frame buffer while a frame is half there. */
static size_t tunnel_inplace(pk_conn *c, char **base) {
  pk_tunnel *t = c->owner;
  if (!t || t->state != PK_TS_OPEN || !t->in || t->inlen == 0) return 0;
  *base = t->in + t->inlen;
  return t->incap - t->inlen;
}

static void tunnel_inplace_done(pk_conn *c, size_t n) {
  pk_tunnel *t = c->owner;
  if (!t || t->state == PK_TS_DEAD) return;
  received(t);
  t->inlen += n;
  if (consume_in(t) == 0) check_backlog(t);
}

static void tunnel_on_data(pk_conn *c, const char *data, size_t n, pk_block *blk) {
  pk_tunnel *t = c->owner;
  if (t) pk_tunnel_feed(t, data, n);
}

static void tunnel_on_eof(pk_conn *c, int status) {
  pk_tunnel *t = c->owner;
  if (t) pk_tunnel_kill(t, status == 0 ? "closed by peer" : uv_strerror(status));
}

/* Switch a connection that finished its handshake into chunk mode. */
void pk_tunnel_open(pk_tunnel *t) {
  t->state = PK_TS_OPEN;
  pk_plugins_on_tunnel(t->mgr, 1, t->is_relay_side ? t->conn->rip : t->mgr->fes[t->fe_idx].host);
  t->conn->on_data = tunnel_on_data;
  t->conn->on_eof = tunnel_on_eof;
  t->conn->on_drain = tunnel_on_drain;
  t->conn->on_inplace = tunnel_inplace;
  t->conn->on_inplace_done = tunnel_inplace_done;
}

static void kill_streams(pk_tunnel *t) {
  for (int i = 0; i < PK_SID_BUCKETS; i++)
    while (t->sids[i]) pk_stream_close(t->sids[i]);
}

/* The one way a tunnel dies: streams and kites go at once, the conn closes
 * (politely when finish is set) and the slot is freed by its close callback. */
static void tunnel_end(pk_tunnel *t, const char *why, int finish) {
  if (!t || !t->in_use || t->state == PK_TS_DEAD) return;
  pk_mgr *m = t->mgr;
  int was_open = t->state == PK_TS_OPEN;
  t->state = PK_TS_DEAD;
  if (was_open)
    pk_plugins_on_tunnel(m, 0, t->is_relay_side ? (t->conn ? t->conn->rip : "")
                                                : m->fes[t->fe_idx].host);
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel %s: %s", t->is_relay_side ? "from connector" : "to relay",
         why);
  kill_streams(t);
  if (t->is_relay_side)
    pk_relay_tunnel_closed(t);
  else
    pk_connector_tunnel_closed(t);
  t->nkites_live = 0;
  if (t->conn && finish)
    pk_conn_finish(t->conn);
  else if (t->conn)
    pk_conn_close(t->conn);
  pk_notify(m);
}

void pk_tunnel_kill(pk_tunnel *t, const char *why) { tunnel_end(t, why, 0); }

void pk_tunnel_finish(pk_tunnel *t, const char *why) { tunnel_end(t, why, 1); }

/* Idle tunnels give their buffers back. */
static void release_idle_buffers(pk_tunnel *t, uint64_t now) {
  if (now - t->last_rx < 2000 || now - t->last_tx < 2000) return;
  if (t->inlen == 0 && t->in) {
    free(t->in);
    t->in = NULL;
    t->incap = 0;
  }
  free(t->zbuf);
  free(t->zobuf);
  t->zbuf = t->zobuf = NULL;
}

/* Keepalive: PING a quiet tunnel; kill it when the PING goes unanswered. */
void pk_tunnel_housekeep(pk_tunnel *t, uint64_t now) {
  if (!t->in_use || t->state != PK_TS_OPEN) return;
  if (t->ping_outstanding && now - t->last_ping_sent > PK_PING_DEAD_MS) {
    pk_tunnel_kill(t, "ping timeout");
    return;
  }
  if (!t->ping_outstanding && now - t->last_rx > PK_PING_IDLE_MS) pk_tunnel_ping(t);
  release_idle_buffers(t, now);
}

/* conn.c - one byte stream over uv_tcp_t, optionally TLS through OpenSSL
 * memory BIOs so TLS rides the same libuv loop.  Memory: reads land in pool
 * blocks; writes reference the caller's block or copy into one. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "proxy.h"

/* An outgoing proxy's handshake on a connecting conn (pk_conn_connect_via). */
struct pk_conn_proxy {
  pk_proxy_hs hs;
  char first[PK_PROXY_OUT_MAX]; /* our first message to the proxy */
  size_t firstn;
  char what[300]; /* the proxy, for messages (password masked) */
};

typedef struct pk_wreq {
  uv_write_t req;
  pk_conn *c;
  pk_block *blk[2];
  size_t n;
  uv_buf_t bufs[2]; /* held while the conn is connecting */
  unsigned nbufs;
  struct pk_wreq *next_free; /* also: the next held write */
} pk_wreq;

/* Each manager's own free list, used on its loop thread only (no lock): it
 * grows to the high-water mark of writes in flight, then is reused, and is
 * freed with the manager (pk_conns_free). */
static pk_wreq *wreq_get(pk_mgr *m) {
  pk_wreq *w = m->wreq_free;
  if (w) m->wreq_free = w->next_free;
  else w = malloc(sizeof(*w));
  if (w) memset(w, 0, sizeof(*w));
  return w;
}

static void wreq_put(pk_mgr *m, pk_wreq *w) {
  w->next_free = m->wreq_free;
  m->wreq_free = w;
}

size_t pk_conn_wreqs_pooled(pk_mgr *m) {
  size_t n = 0;
  for (pk_wreq *w = m->wreq_free; w; w = w->next_free) n++;
  return n;
}

uint64_t pk_now_ms(pk_mgr *m) { return uv_now(&m->loop); }

const char *pk_addr_str(const struct sockaddr *sa, char *buf, size_t n, int *port) {
  buf[0] = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    uv_inet_ntop(AF_INET, &s4->sin_addr, buf, n);
    if (port) *port = ntohs(s4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    uv_inet_ntop(AF_INET6, &s6->sin6_addr, buf, n);
    if (port) *port = ntohs(s6->sin6_port);
  }
  return buf;
}

static void block_freed(void *ctx) { pk_conns_resume_nobuf(ctx); }

int pk_conns_init(pk_mgr *m, int count) {
  m->blocks.on_free = block_freed;
  m->blocks.on_free_ctx = m;
  m->conns = calloc((size_t)count, sizeof(pk_conn));
  if (!m->conns) return -1;
  m->nconns = count;
  for (int i = count - 1; i >= 0; i--) {
    m->conns[i].id = i;
    m->conns[i].free_next = m->conn_free;
    m->conn_free = &m->conns[i];
  }
  return 0;
}

void pk_conns_free(pk_mgr *m) {
  while (m->wreq_free) {
    pk_wreq *w = m->wreq_free;
    m->wreq_free = w->next_free;
    free(w);
  }
  free(m->conns);
  m->conns = NULL;
  m->conn_free = NULL;
}

pk_conn *pk_conn_new(pk_mgr *m, int kind) {
  /* max_conns bounds the connections carrying client traffic (streams and
   * relay connections not yet classified); tunnels and pings have their own
   * reserve in the pool. */
  int counted = kind == PK_CK_STREAM || kind == PK_CK_UNKNOWN;
  if (counted && m->client_conns >= m->max_conns &&
      !(PK_GET(m->evict_idle_s) > 0 && pk_conn_evict_one(m) == 0)) {
    pk_fail(PK_ELIMIT, "connection pool exhausted: max_conns (%d) in flight", m->max_conns);
    return NULL;
  }
  /* Near the end of the pool, start closing an idle stream so that the slot
   * is back (after its close callback) before the pool runs dry. */
  if (PK_GET(m->evict_idle_s) > 0 && m->nconns - m->conns_in_use <= 4) pk_conn_evict_one(m);
  pk_conn *c = m->conn_free;
  if (!c) {
    pk_fail(PK_ELIMIT, "connection pool exhausted (max_conns=%d)", m->max_conns);
    return NULL;
  }
  m->conn_free = c->free_next;
  int id = c->id;
  memset(c, 0, sizeof(*c));
  c->id = id;
  c->mgr = m;
  c->kind = kind;
  c->sid = -1;
  c->created = c->last_activity = pk_now_ms(m);
  if (uv_tcp_init(&m->loop, &c->tcp) != 0) {
    c->kind = PK_CK_FREE;
    c->free_next = m->conn_free;
    m->conn_free = c;
    return NULL;
  }
  c->tcp.data = c;
  m->conns_in_use++;
  if (counted) {
    c->flags |= PK_CF_COUNTED;
    m->client_conns++;
  }
  return c;
}

/* Evict the stream idle the longest, if idle for at least evict_idle_s. */
int pk_conn_evict_one(pk_mgr *m) {
  uint64_t now = pk_now_ms(m), limit = (uint64_t)PK_GET(m->evict_idle_s) * 1000;
  pk_conn *best = NULL;
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind != PK_CK_STREAM || (c->flags & PK_CF_CLOSING)) continue;
    if (now - c->last_activity < limit) continue;
    if (!best || c->last_activity < best->last_activity) best = c;
  }
  if (!best) return -1;
  pk_log(m, PK_LOG_BE_CONNS, "Evicting idle stream %lld", best->sid);
  if (best->flags & PK_CF_COUNTED) { /* its budget is free now; its slot after the close */
    best->flags &= ~PK_CF_COUNTED;
    m->client_conns--;
  }
  pk_stream_kill(best, 1);
  return 0;
}

static void drop_held(pk_conn *c);

static void proxy_free(pk_conn *c) {
  if (!c->px) return;
  pk_proxy_hs_clear(&c->px->hs); /* credentials */
  free(c->px);
  c->px = NULL;
}

static void on_close(uv_handle_t *h) {
  pk_conn *c = h->data;
  pk_mgr *m = c->mgr;
  if (c->on_closed) c->on_closed(c, 0); /* the owner lets go before the slot is reused */
  pk_conn_unauth_clear(c);
  if (c->flags & PK_CF_NOBUF) m->nobuf_waiting--;
  if (c->flags & PK_CF_COUNTED) m->client_conns--;
  if (c->ssl) SSL_free(c->ssl); /* frees both BIOs */
  drop_held(c);
  proxy_free(c);
  if (c->inbuf) pk_block_unref(m, c->inbuf);
  if (c->tail) pk_block_unref(m, c->tail);
  int id = c->id;
  memset(c, 0, sizeof(*c));
  c->id = id;
  c->kind = PK_CK_FREE;
  c->free_next = m->conn_free;
  m->conn_free = c;
  m->conns_in_use--;
  pk_tunnels_unblock(m); /* its blocks came back; a stream waited for may be gone */
}

void pk_conn_close(pk_conn *c) {
  if (!c || c->kind == PK_CK_FREE || (c->flags & PK_CF_CLOSING)) return;
  c->flags |= PK_CF_CLOSING;
  if (c->flags & PK_CF_REOPEN) return; /* the socket is closing already: on_reopen finishes */
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void finish_on_eof(pk_conn *c, int status) { pk_conn_close(c); }

static void finish_on_drain(pk_conn *c, int n) {
  if (c->flags & PK_CF_SHUT_WR) {
    if (c->flags & PK_CF_READ_EOF) pk_conn_close(c);
    return;
  }
  if (c->wq_bytes == 0) pk_conn_shutdown(c);
}

void pk_conn_finish(pk_conn *c) {
  if (c->flags & (PK_CF_CLOSING | PK_CF_FINISH)) return;
  c->flags |= PK_CF_FINISH;
  c->finish_at = pk_now_ms(c->mgr);
  c->on_data = NULL;
  c->on_connect = NULL;
  c->on_inplace = NULL;
  c->on_eof = finish_on_eof;
  c->on_drain = finish_on_drain;
  if (c->flags & PK_CF_READ_EOF) {
    if (c->wq_bytes == 0) pk_conn_close(c);
    return;
  }
  pk_conn_read_start(c); /* to see the peer's close */
  if (c->wq_bytes == 0) pk_conn_shutdown(c);
}

/* Conns whose queued output stopped moving, and hang-ups that took too long. */
void pk_conns_housekeep(pk_mgr *m, uint64_t now) {
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind == PK_CK_FREE || (c->flags & PK_CF_CLOSING)) continue;
    if ((c->flags & PK_CF_FINISH) && now - c->finish_at > PK_FINISH_MS) {
      pk_conn_close(c);
    } else if (c->wq_bytes > 0 && now - c->last_write_ok > PK_WRITE_STALL_MS) {
      pk_log(m, PK_LOG_BE_CONNS, "Peer %s read nothing for %d s: closing", c->rip,
             PK_WRITE_STALL_MS / 1000);
      if (c->on_eof)
        c->on_eof(c, UV_ETIMEDOUT);
      else
        pk_conn_close(c);
    }
  }
}

int pk_conn_unauth_set(pk_conn *c) {
  if (c->flags & PK_CF_UNAUTH) return 0;
  if (!pk_iptab_add(&c->mgr->unauth_ips, &c->ipkey)) return -1;
  c->flags |= PK_CF_UNAUTH;
  c->mgr->unauth_conns++;
  return 0;
}

void pk_conn_unauth_clear(pk_conn *c) {
  if (!(c->flags & PK_CF_UNAUTH)) return;
  c->flags &= ~PK_CF_UNAUTH;
  c->mgr->unauth_conns--;
  pk_iptab_remove(&c->mgr->unauth_ips, &c->ipkey);
}

void pk_conn_set_nodelay(pk_conn *c) { uv_tcp_nodelay(&c->tcp, 1); }

/* ---- writing ---- */
static void write_done(pk_conn *c, pk_wreq *w, int status);

static void on_write(uv_write_t *req, int status) {
  pk_wreq *w = (pk_wreq *)req;
  pk_mgr *m = w->c->mgr;
  write_done(w->c, w, status);
  /* Queues shrank and blocks came back: paused tunnels may read again. */
  pk_tunnels_unblock(m);
}

static void write_done(pk_conn *c, pk_wreq *w, int status) {
  pk_mgr *m = c->mgr;
  c->wq_bytes -= w->n;
  for (int i = 0; i < 2; i++)
    if (w->blk[i]) pk_block_unref(m, w->blk[i]);
  size_t n = w->n;
  wreq_put(m, w);
  if (c->flags & PK_CF_CLOSING) return;
  if (status < 0) {
    if (c->on_eof) c->on_eof(c, status);
    return;
  }
  c->last_write_ok = pk_now_ms(m);
  c->bytes_out += n;
  if (c->wq_bytes == 0 && c->tail && c->tail->refs == 1) {
    pk_block_unref(m, c->tail); /* an idle conn holds no buffer */
    c->tail = NULL;
  }
  if (c->on_drain) c->on_drain(c, (int)(n > 0x7fffffff ? 0x7fffffff : n));
}

/* How much output a peer may leave unread: little for anything that has not
 * proved who it is, more for tunnels and streams, and never more than a
 * share of the block pool. */
size_t pk_conn_wq_cap(const pk_conn *c) {
  size_t cap = c->wq_max ? c->wq_max : PK_SMALL_WQ_MAX;
  size_t share = c->mgr->blocks.count * PK_BLOCK_SIZE / (c->kind == PK_CK_TUNNEL ? 2 : 4);
  return cap < share ? cap : share;
}

/* While connecting, writes wait here (libuv would cancel them if the
 * address refuses and another is tried). */
static int hold_write(pk_conn *c, pk_wreq *w, uv_buf_t *bufs, int nbufs) {
  for (int i = 0; i < nbufs && i < 2; i++) w->bufs[i] = bufs[i];
  w->nbufs = (unsigned)nbufs;
  w->next_free = NULL;
  if (c->pending_tail)
    c->pending_tail->next_free = w;
  else
    c->pending = w;
  c->pending_tail = w;
  return 0;
}

/* Connected: the held writes go out in order, then a held half-close. */
static void flush_held(pk_conn *c) {
  c->flags &= ~PK_CF_CONNECTING;
  while (c->pending && !(c->flags & PK_CF_CLOSING)) {
    pk_wreq *w = c->pending;
    c->pending = w->next_free;
    if (!c->pending) c->pending_tail = NULL;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, on_write) != 0) {
      w->next_free = c->pending; /* back at the front: dropped at close */
      c->pending = w;
      if (!c->pending_tail) c->pending_tail = w;
      if (c->on_eof) c->on_eof(c, UV_EPIPE);
      return;
    }
  }
  if (c->flags & PK_CF_SHUT_LATER) {
    c->flags &= ~PK_CF_SHUT_LATER;
    pk_conn_shutdown(c);
  }
}

/* Held writes that never went out (the conn closed first). */
static void drop_held(pk_conn *c) {
  while (c->pending) {
    pk_wreq *w = c->pending;
    c->pending = w->next_free;
    c->wq_bytes -= w->n;
    for (int i = 0; i < 2; i++)
      if (w->blk[i]) pk_block_unref(c->mgr, w->blk[i]);
    wreq_put(c->mgr, w);
  }
  c->pending_tail = NULL;
}

static int raw_write(pk_conn *c, uv_buf_t *bufs, int nbufs, pk_block *b0, pk_block *b1) {
  size_t n = 0;
  for (int i = 0; i < nbufs; i++) n += bufs[i].len;
  pk_wreq *w = NULL;
  if (c->wq_bytes + n > pk_conn_wq_cap(c))
    pk_fail(PK_ENETWORK, "peer %s does not read: %zu bytes queued", c->rip, c->wq_bytes);
  else if (!(w = wreq_get(c->mgr)))
    pk_fail(PK_ENOMEM, "out of memory");
  if (!w) {
    if (b0) pk_block_unref(c->mgr, b0);
    if (b1) pk_block_unref(c->mgr, b1);
    return -1;
  }
  w->c = c;
  w->blk[0] = b0;
  w->blk[1] = b1;
  w->n = n;
  if (c->wq_bytes == 0) c->last_write_ok = pk_now_ms(c->mgr);
  c->wq_bytes += n;
  if (c->flags & PK_CF_CONNECTING) return hold_write(c, w, bufs, nbufs);
  int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs, on_write);
  if (rv != 0) {
    c->wq_bytes -= n;
    if (b0) pk_block_unref(c->mgr, b0);
    if (b1) pk_block_unref(c->mgr, b1);
    wreq_put(c->mgr, w);
    pk_fail(PK_ENETWORK, "write: %s", uv_strerror(rv));
    return -1;
  }
  return 0;
}

/* Room for n (<= PK_BLOCK_SIZE) bytes at the end of the conn's tail block, so
 * that many small writes (control replies, PONGs, EOFs) share one block
 * instead of pinning one each.  Returns the block, referenced for one write. */
static pk_block *tail_room(pk_conn *c, size_t n, char **at) {
  if (c->tail && PK_BLOCK_SIZE - c->tail_used < n) {
    pk_block_unref(c->mgr, c->tail);
    c->tail = NULL;
  }
  if (!c->tail) {
    if (!(c->tail = pk_block_get(c->mgr))) {
      pk_fail(PK_ELIMIT, "buffer pool exhausted");
      return NULL;
    }
    c->tail_used = 0;
  }
  *at = c->tail->data + c->tail_used;
  c->tail_used += n;
  pk_block_ref(c->tail);
  return c->tail;
}

/* Copy bytes into pool blocks and write them. */
static int copy_write(pk_conn *c, const char *data, size_t n) {
  while (n > 0) {
    size_t take = n < PK_BLOCK_SIZE ? n : PK_BLOCK_SIZE;
    char *at;
    pk_block *b = tail_room(c, take, &at);
    if (!b) return -1;
    memcpy(at, data, take);
    uv_buf_t buf = uv_buf_init(at, (unsigned)take);
    if (raw_write(c, &buf, 1, b, NULL) != 0) return -1;
    data += take;
    n -= take;
  }
  return 0;
}

/* Move whatever TLS produced into the socket. */
static int tls_flush(pk_conn *c) {
  if (c->flags & PK_CF_CLOSING) return -1;
  size_t pending;
  while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
    size_t take = pending < PK_BLOCK_SIZE ? pending : PK_BLOCK_SIZE;
    char *at;
    pk_block *b = tail_room(c, take, &at);
    if (!b) return -1;
    int r = BIO_read(c->wbio, at, (int)take);
    if (r <= 0) {
      pk_block_unref(c->mgr, b);
      break;
    }
    uv_buf_t buf = uv_buf_init(at, (unsigned)r);
    if (raw_write(c, &buf, 1, b, NULL) != 0) return -1;
  }
  return 0;
}

static int tls_write(pk_conn *c, const char *data, size_t n) {
  while (n > 0) {
    int chunk = n > 16384 ? 16384 : (int)n;
    int r = SSL_write(c->ssl, data, chunk);
    if (r <= 0) {
      pk_fail(PK_ETLS, "TLS write failed");
      return -1;
    }
    data += r;
    n -= (size_t)r;
    if (tls_flush(c) != 0) return -1;
  }
  return 0;
}

int pk_conn_writev2(pk_conn *c, const char *h, size_t hn, const char *d, size_t dn,
                    pk_block *blk) {
  if (c->flags & (PK_CF_CLOSING | PK_CF_SHUT_WR)) return -1;
  if (c->ssl) {
    if (hn && tls_write(c, h, hn) != 0) return -1;
    if (dn && tls_write(c, d, dn) != 0) return -1;
    return 0;
  }
  if (hn > PK_BLOCK_SIZE) {
    /* A header too big to stage goes out on its own; the payload follows. */
    if (copy_write(c, h, hn) != 0) return -1;
    hn = 0;
  }
  if (dn && !blk) {
    /* Small unowned payloads are staged with the header; big ones copied. */
    if (hn + dn <= PK_BLOCK_SIZE) {
      char *at;
      pk_block *b = tail_room(c, hn + dn, &at);
      if (!b) return -1;
      if (hn) memcpy(at, h, hn);
      memcpy(at + hn, d, dn);
      uv_buf_t buf = uv_buf_init(at, (unsigned)(hn + dn));
      return raw_write(c, &buf, 1, b, NULL);
    }
    if (hn && copy_write(c, h, hn) != 0) return -1;
    return copy_write(c, d, dn);
  }
  /* The small header is copied; the payload is referenced in its block. */
  uv_buf_t bufs[2];
  int nb = 0;
  pk_block *hb = NULL;
  if (hn) {
    char *at;
    if (!(hb = tail_room(c, hn, &at))) return -1;
    memcpy(at, h, hn);
    bufs[nb++] = uv_buf_init(at, (unsigned)hn);
  }
  if (dn) {
    pk_block_ref(blk);
    bufs[nb++] = uv_buf_init((char *)d, (unsigned)dn);
  }
  return nb ? raw_write(c, bufs, nb, hb, dn ? blk : NULL) : 0;
}

int pk_conn_write(pk_conn *c, const char *data, size_t n, pk_block *blk) {
  return pk_conn_writev2(c, NULL, 0, data, n, blk);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  pk_conn *c = req->data;
  if (c->flags & PK_CF_CLOSING) return;
  c->flags |= PK_CF_SHUT_WR;
  if (c->on_drain) c->on_drain(c, 0);
}

void pk_conn_shutdown(pk_conn *c) {
  if (c->flags & (PK_CF_CLOSING | PK_CF_SHUT_WR)) return;
  if (c->flags & PK_CF_CONNECTING) {
    c->flags |= PK_CF_SHUT_LATER; /* after the held writes */
    return;
  }
  if (c->shutdown_req.data) return; /* already requested */
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    c->flags |= PK_CF_SHUT_WR;
  }
}

/* ---- reading ---- */
#define PK_WRITE_RESERVE 8 /* blocks kept for writes: reads stop first */

/* Reads of clients and origins stop while an eighth of the pool (at least
 * PK_WRITE_RESERVE blocks) is free, so that bytes already received from a
 * tunnel peer always find blocks to be copied into soon: those wait only
 * for local readers, never for the peer (which may wait for us). */
size_t pk_pool_read_reserve(const pk_mgr *m) {
  size_t r = m->blocks.count / 8;
  return r > PK_WRITE_RESERVE ? r : PK_WRITE_RESERVE;
}

static size_t read_reserve(const pk_conn *c) {
  return c->kind == PK_CK_TUNNEL ? PK_WRITE_RESERVE : pk_pool_read_reserve(c->mgr);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  pk_conn *c = h->data;
  c->inplace_base = NULL;
  if (c->on_inplace && !c->ssl) {
    /* The owner (an open tunnel mid-frame) takes the bytes in its own buffer. */
    char *base = NULL;
    size_t room = c->on_inplace(c, &base);
    if (room >= 16384) {
      c->inplace_base = base;
      *buf = uv_buf_init(base, (unsigned)room);
      return;
    }
  }
  pk_pool *p = &c->mgr->blocks;
  pk_block *b = (p->count - p->in_use > read_reserve(c)) ? pk_block_get(c->mgr) : NULL;
  if (!b) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(b->data, PK_BLOCK_SIZE);
}

static pk_block *block_of(char *base) {
  return (pk_block *)(base - offsetof(pk_block, data));
}

static void tls_progress(pk_conn *c);

/* EOF (status 0 to on_eof) or a read error (negative status). */
static void read_ended(pk_conn *c, ssize_t nread) {
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->flags &= ~PK_CF_READING;
  c->flags |= PK_CF_READ_EOF;
  if (c->on_eof) c->on_eof(c, nread == UV_EOF ? 0 : (int)nread);
}

/* ---- an outgoing proxy ---- */
static void tls_progress(pk_conn *c);

/* Bytes for the proxy itself: past TLS and past the writes held for later. */
static int proxy_send(pk_conn *c, const char *p, size_t n) {
  int held = c->flags & PK_CF_CONNECTING;
  c->flags &= ~PK_CF_CONNECTING;
  int rv = copy_write(c, p, n);
  c->flags |= held;
  return rv;
}

static void proxy_failed(pk_conn *c, const char *why) {
  pk_fail(PK_ENETWORK, "proxy %s: %s", c->px->what, why);
  proxy_free(c);
  pk_conn_read_stop(c);
  if (c->on_connect) {
    pk_conn_event_cb cb = c->on_connect;
    c->on_connect = NULL;
    cb(c, UV_ECONNREFUSED);
  }
}

/* The proxy opened the tunnel: what follows is the target's.  TLS starts
 * (or the owner hears it is connected) and bytes that came with the
 * proxy's answer are handed on. */
static void proxy_done(pk_conn *c, const char *rest, size_t n, pk_block *b) {
  pk_log(c->mgr, PK_LOG_TUNNEL_CONNS, "Proxy %s connected us", c->px->what);
  proxy_free(c);
  flush_held(c);
  if (c->flags & PK_CF_CLOSING) return;
  if (c->ssl) {
    SSL_set_connect_state(c->ssl);
    if (n) BIO_write(c->rbio, rest, (int)n);
    tls_progress(c);
    return;
  }
  pk_conn_event_cb cb = c->on_connect;
  c->on_connect = NULL;
  if (cb) cb(c, 0);
  if (n && c->on_data && !(c->flags & PK_CF_CLOSING)) c->on_data(c, rest, n, b);
}

static void proxy_input(pk_conn *c, ssize_t nread, pk_block *b) {
  pk_mgr *m = c->mgr;
  if (nread < 0) {
    if (b) pk_block_unref(m, b);
    pk_proxy_eof(&c->px->hs);
    proxy_failed(c, c->px->hs.why);
    return;
  }
  c->bytes_in += (uint64_t)nread;
  char out[PK_PROXY_OUT_MAX];
  size_t used = 0, outn = 0;
  int r = pk_proxy_recv(&c->px->hs, b->data, (size_t)nread, &used, out, sizeof(out), &outn);
  if (outn && proxy_send(c, out, outn) != 0) r = PK_PROXY_ERROR;
  if (r == PK_PROXY_ERROR)
    proxy_failed(c, c->px->hs.why[0] ? c->px->hs.why : pk_get_error());
  else if (r == PK_PROXY_DONE)
    proxy_done(c, b->data + used, (size_t)nread - used, b);
  pk_block_unref(m, b);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pk_conn *c = s->data;
  pk_mgr *m = c->mgr;
  if (buf->base && buf->base == c->inplace_base) {
    c->inplace_base = NULL;
    if (nread > 0) {
      c->bytes_in += (uint64_t)nread;
      c->last_activity = pk_now_ms(m);
      if (c->on_inplace_done) c->on_inplace_done(c, (size_t)nread);
    } else if (nread < 0) {
      read_ended(c, nread);
    }
    return;
  }
  pk_block *b = buf->base ? block_of(buf->base) : NULL;
  if (c->px && nread != 0 && nread != UV_ENOBUFS) {
    proxy_input(c, nread, b);
    return;
  }
  if (nread == UV_ENOBUFS || (nread == 0 && !b)) {
    uv_read_stop(s);
    c->flags &= ~PK_CF_READING;
    if (!(c->flags & PK_CF_NOBUF)) c->mgr->nobuf_waiting++;
    c->flags |= PK_CF_NOBUF;
    return;
  }
  if (nread <= 0) {
    if (b) pk_block_unref(m, b);
    if (nread < 0) read_ended(c, nread);
    return;
  }
  c->bytes_in += (uint64_t)nread;
  c->last_activity = pk_now_ms(m);
  if (c->ssl) {
    if (!(c->flags & PK_CF_TLS_DONE) && !c->tls_first)
      c->tls_first = 0x100 | (unsigned char)buf->base[0]; /* "does not speak TLS" */
    BIO_write(c->rbio, buf->base, (int)nread);
    pk_block_unref(m, b);
    tls_progress(c);
    return;
  }
  b->len = (size_t)nread;
  if (c->on_data) c->on_data(c, buf->base, (size_t)nread, b);
  pk_block_unref(m, b);
}

void pk_conns_resume_nobuf(pk_mgr *m) {
  if (m->nobuf_waiting <= 0 || m->blocks.count - m->blocks.in_use <= PK_WRITE_RESERVE * 2) return;
  size_t streams_at = pk_pool_read_reserve(m) + PK_WRITE_RESERVE;
  for (int i = 0; i < m->nconns && m->nobuf_waiting > 0; i++) {
    pk_conn *c = &m->conns[i];
    if (!(c->flags & PK_CF_NOBUF)) continue;
    /* Only tunnels read below the reserve (read_reserve). */
    if (c->kind != PK_CK_TUNNEL && m->blocks.count - m->blocks.in_use <= streams_at) continue;
    c->flags &= ~PK_CF_NOBUF;
    m->nobuf_waiting--;
    if (!(c->flags & (PK_CF_CLOSING | PK_CF_PAUSED))) pk_conn_read_start(c);
    if (m->blocks.count - m->blocks.in_use <= PK_WRITE_RESERVE * 2) break;
  }
}

int pk_conn_read_start(pk_conn *c) {
  if (c->flags & (PK_CF_CLOSING | PK_CF_READING | PK_CF_READ_EOF)) return 0;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) return -1;
  c->flags |= PK_CF_READING;
  return 0;
}

void pk_conn_read_stop(pk_conn *c) {
  if (!(c->flags & PK_CF_READING)) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->flags &= ~PK_CF_READING;
}

/* ---- TLS ---- */
/* Why a TLS handshake with a relay failed, in words. */
static void tls_why(pk_conn *c, const char *what, char *out, size_t n) {
  unsigned long e = ERR_get_error();
  char ebuf[200] = "";
  if (e) ERR_error_string_n(e, ebuf, sizeof(ebuf));
  long vr = SSL_get_verify_result(c->ssl);
  int client = !SSL_is_server(c->ssl), first = c->tls_first & 0xff;
  if (client && c->tls_first && first != 0x16 && first != 0x15)
    snprintf(out, n, "TLS %s failed: the relay does not speak TLS (it answered %s)", what,
             first == 'H' ? "in plain HTTP" : "in plain text");
  else if (client && first == 0x15)
    snprintf(out, n, "TLS %s failed: the relay does not speak TLS on this port (it refused the "
             "handshake with an alert before showing a certificate: %s)", what, ebuf);
  else if (client && pk_tls_names_mismatch(c->ssl))
    pk_tls_mismatch_why(c->mgr, c->ssl, out, n);
  else
    snprintf(out, n, "TLS %s failed: %s%s%s", what, ebuf, vr != X509_V_OK ? " / verify: " : "",
             vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
}

static void tls_fail(pk_conn *c, const char *what) {
  char why[1600];
  tls_why(c, what, why, sizeof(why));
  pk_fail(PK_ETLS, "%s", why);
  pk_log(c->mgr, PK_LOG_TUNNEL_CONNS | PK_LOG_ERROR, "%s", pk_get_error());
  ERR_clear_error();
  tls_flush(c);
  pk_conn_read_stop(c);
  /* The owner decides what a broken TLS session means for its object. */
  if (c->on_connect && !SSL_is_server(c->ssl)) {
    pk_conn_event_cb cb = c->on_connect;
    c->on_connect = NULL;
    cb(c, UV_EPROTO);
  } else if (c->on_eof) {
    c->flags |= PK_CF_READ_EOF;
    c->on_eof(c, UV_EPROTO);
  } else {
    pk_conn_close(c);
  }
}

static void tls_progress(pk_conn *c) {
  if (!(c->flags & PK_CF_TLS_DONE)) {
    int r = SSL_do_handshake(c->ssl);
    tls_flush(c);
    if (r != 1) {
      int err = SSL_get_error(c->ssl, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
      tls_fail(c, "handshake");
      return;
    }
    c->flags |= PK_CF_TLS_DONE;
    if (c->on_connect) {
      pk_conn_event_cb cb = c->on_connect;
      c->on_connect = NULL;
      cb(c, 0);
      if (c->flags & PK_CF_CLOSING) return;
    }
  }
  for (;;) {
    if (c->flags & PK_CF_CLOSING) return;
    pk_block *b = pk_block_get(c->mgr);
    if (!b) return; /* bytes stay in the BIO until a block frees up */
    int r = SSL_read(c->ssl, b->data, PK_BLOCK_SIZE);
    if (r <= 0) {
      pk_block_unref(c->mgr, b);
      int err = SSL_get_error(c->ssl, r);
      if (err == SSL_ERROR_WANT_READ) break;
      if (err == SSL_ERROR_ZERO_RETURN) {
        c->flags |= PK_CF_READ_EOF;
        if (c->on_eof) c->on_eof(c, 0);
      } else {
        tls_fail(c, "read");
      }
      return;
    }
    b->len = (size_t)r;
    if (c->on_data) c->on_data(c, b->data, (size_t)r, b);
    pk_block_unref(c->mgr, b);
  }
  tls_flush(c);
}

static int tls_setup(pk_conn *c, SSL_CTX *ctx) {
  c->ssl = SSL_new(ctx);
  if (!c->ssl) return -1;
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->rbio || !c->wbio) return -1;
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  return 0;
}

void pk_conn_tls_input(pk_conn *c, const char *data, size_t n) {
  if (!c->ssl || (c->flags & PK_CF_CLOSING)) return;
  BIO_write(c->rbio, data, (int)n);
  tls_progress(c);
}

int pk_conn_start_tls_server(pk_conn *c, SSL_CTX *ctx, const char *already, size_t n) {
  if (tls_setup(c, ctx) != 0) return -1;
  SSL_set_accept_state(c->ssl);
  if (n) BIO_write(c->rbio, already, (int)n);
  tls_progress(c);
  return 0;
}

/* ---- connecting ---- */
static void on_connect(uv_connect_t *req, int status);

/* The socket of an address that refused is closed; a fresh one tries the
 * next address.  A close asked for meanwhile finishes here. */
static void on_reopen(uv_handle_t *h) {
  pk_conn *c = h->data;
  c->flags &= ~(PK_CF_REOPEN | PK_CF_READING);
  if (c->flags & PK_CF_CLOSING) {
    on_close(h);
    return;
  }
  int rv = uv_tcp_init(&c->mgr->loop, &c->tcp);
  c->tcp.data = c;
  if (rv == 0)
    rv = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&c->addrs[pk_conn_addr_index(c)],
                        on_connect);
  if (rv != 0) {
    c->naddrs = 0; /* no more tries */
    pk_fail(PK_ENETWORK, "connect: %s", uv_strerror(rv));
    if (c->on_connect) c->on_connect(c, rv);
  }
}

/* Another address to try after this one failed? */
static int try_next_address(pk_conn *c, int status) {
  if (c->addr_at + 1 >= c->naddrs) return 0;
  char ip[64];
  pk_addr_str((const struct sockaddr *)&c->addrs[pk_conn_addr_index(c)], ip, sizeof(ip), NULL);
  pk_log(c->mgr, PK_LOG_BE_CONNS, "Connecting to %s failed (%s): trying the next address", ip,
         uv_strerror(status));
  c->addr_at++;
  c->flags |= PK_CF_REOPEN;
  uv_close((uv_handle_t *)&c->tcp, on_reopen);
  return 1;
}

static void on_connect(uv_connect_t *req, int status) {
  pk_conn *c = req->data;
  if (c->flags & PK_CF_CLOSING) return;
  if (status < 0) {
    if (try_next_address(c, status)) return;
    if (c->px)
      pk_fail(PK_ENETWORK, "connecting to proxy %s failed: %s", c->px->what,
              uv_strerror(status));
    else
      pk_fail(PK_ENETWORK, "connect failed: %s", uv_strerror(status));
    if (c->on_connect) c->on_connect(c, status);
    return;
  }
  c->flags |= PK_CF_CONNECTED;
  c->addrs = NULL;
  pk_conn_set_nodelay(c);
  pk_conn_read_start(c);
  if (c->px) { /* the proxy first; writes stay held until it has connected us */
    if (proxy_send(c, c->px->first, c->px->firstn) != 0) proxy_failed(c, pk_get_error());
    return;
  }
  flush_held(c);
  if (c->flags & PK_CF_CLOSING) return;
  if (c->ssl) {
    SSL_set_connect_state(c->ssl);
    tls_progress(c);
    return;
  }
  if (c->on_connect) {
    pk_conn_event_cb cb = c->on_connect;
    c->on_connect = NULL;
    cb(c, 0);
  }
}

int pk_conn_connect(pk_conn *c, const struct sockaddr *addr, SSL_CTX *tls, const char *sni) {
  /* The certificate must carry the relay's name (or IP literal) or one of
   * the accepted names (tlsnames.c). */
  if (tls && (tls_setup(c, tls) != 0 || pk_tls_expect_names(c->mgr, c->ssl, sni) != 0)) {
    pk_fail(PK_ETLS, "TLS setup failed");
    return -1;
  }
  c->connect_req.data = c;
  c->flags |= PK_CF_CONNECTING;
  int rv = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
  if (rv != 0) {
    pk_fail(PK_ENETWORK, "connect: %s", uv_strerror(rv));
    return -1;
  }
  return 0;
}

int pk_conn_addr_index(const pk_conn *c) {
  return c->naddrs ? (c->addr_first + c->addr_at) % c->naddrs : 0;
}

int pk_conn_connect_any(pk_conn *c, const struct sockaddr_storage *addrs, int n, int first,
                        SSL_CTX *tls, const char *sni) {
  if (n < 1) {
    pk_fail(PK_ENETWORK, "connect: no address");
    return -1;
  }
  c->addrs = addrs;
  c->naddrs = n;
  c->addr_first = first >= 0 && first < n ? first : 0;
  c->addr_at = 0;
  return pk_conn_connect(c, (const struct sockaddr *)&addrs[c->addr_first], tls, sni);
}

int pk_conn_connect_via(pk_conn *c, const pk_proxy *p, const struct sockaddr_storage *paddrs,
                        int np, const char *target, int tport, SSL_CTX *tls, const char *sni) {
  c->px = calloc(1, sizeof(*c->px));
  if (!c->px) {
    pk_fail(PK_ENOMEM, "out of memory");
    return -1;
  }
  pk_proxy_describe(p, c->px->what, sizeof(c->px->what));
  if (pk_proxy_start(&c->px->hs, p, target, tport, c->px->first, sizeof(c->px->first),
                     &c->px->firstn) != 0) {
    pk_fail(PK_ENETWORK, "proxy %s: %s", c->px->what, c->px->hs.why);
    proxy_free(c);
    return -1;
  }
  return pk_conn_connect_any(c, paddrs, np, 0, tls, sni);
}

int pk_conn_accept(pk_conn *c, uv_stream_t *server) {
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) return -1;
  c->flags |= PK_CF_CONNECTED;
  pk_conn_set_nodelay(c);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    pk_addr_str((struct sockaddr *)&ss, c->rip, sizeof(c->rip), &c->rport);
    c->ipkey = pk_ipkey_of((struct sockaddr *)&ss);
  }
  return 0;
}

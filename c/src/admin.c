/* admin.c - built-in status and metrics: snapshots of the manager (taken on
 * its loop thread), the admin HTTP listener that serves them (GET /metrics,
 * GET /status.json), and the API calls that hand them to any thread.
 * What the texts look like is admin_render.c's business. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MGR(h) ((pk_mgr *)(void *)(h))

/* ---- counting refusals (loop thread) ---- */
void pk_count_reject(pk_mgr *m, int reason) {
  PK_COUNT(m->c_rejected, 1);
  if (reason >= 0 && reason < PK_REJECT_N) m->c_rejects[reason]++;
}

/* ---- traffic per kite ---- */
int pk_kstat_get(pk_mgr *m, const char *proto, const char *name, int port) {
  for (int i = 0; i < m->nkstats; i++) {
    const pk_kstat *k = &m->kstats[i];
    if (k->port == port && strcmp(k->name, name) == 0 && strcmp(k->proto, proto) == 0) return i + 1;
  }
  int limit = pk_is_relay(m) ? m->max_rkites : m->nkites;
  if (m->nkstats >= limit) return 0;
  if (m->nkstats == m->cap_kstats) {
    int cap = m->cap_kstats ? m->cap_kstats * 2 : 16;
    if (cap > limit) cap = limit;
    pk_kstat *nk = realloc(m->kstats, (size_t)cap * sizeof(*nk));
    if (!nk) return 0;
    m->kstats = nk;
    m->cap_kstats = cap;
  }
  pk_kstat *k = &m->kstats[m->nkstats];
  memset(k, 0, sizeof(*k));
  snprintf(k->proto, sizeof(k->proto), "%s", proto);
  snprintf(k->name, sizeof(k->name), "%s", name);
  k->port = port;
  return ++m->nkstats;
}

/* ---- snapshots ---- */
static int tunnel_index(pk_tunnel *const *tv, int n, const void *t) {
  for (int i = 0; i < n; i++)
    if (tv[i] == t) return i;
  return -1;
}

static const char *kite_state(pk_kite_state s) {
  switch (s) {
    case PK_KITE_LIVE: return "live";
    case PK_KITE_REJECTED: return "rejected";
    case PK_KITE_DUPLICATE: return "duplicate";
    default: return "down";
  }
}

/* Renders the texts asked for (metrics and/or status non-NULL) from what the
 * loop holds now: call on the loop thread, or when the loop does not run.
 * 0, or -1 when out of memory (then nothing is returned). */
static int render_now(pk_mgr *m, char **metrics, char **status) {
  pk_snap s;
  memset(&s, 0, sizeof(s));
  int relay = pk_is_relay(m);
  int maxk = relay ? (int)pk_reg_count(&m->rkites) : m->nkites;
  pk_tunnel **tv = calloc((size_t)m->ntunnels + 1, sizeof(*tv));
  s.tunnels = calloc((size_t)m->ntunnels + 1, sizeof(*s.tunnels));
  s.kites = calloc((size_t)maxk + 1, sizeof(*s.kites));
  int rv = -1;
  if (!tv || !s.tunnels || !s.kites) goto out;
  s.role = relay ? "relay" : "connector";
  s.version = PK_VERSION;
  s.status_code = m->status;
  s.status = pagekite_status_name(m->status);
  s.uptime_s = m->started_at ? (long long)(time(NULL) - m->started_at) : 0;
  s.tunnels_live = m->tunnels_open;
  s.streams_live = m->c_streams;
  s.bytes_in = m->c_bytes_in;
  s.bytes_out = m->c_bytes_out;
  s.streams_total = m->c_streams_total;
  s.rejected = m->c_rejected;
  s.errors = PK_GET(m->error_count);
  memcpy(s.rejects, m->c_rejects, sizeof(s.rejects));
  uint64_t now = m->loop_ready ? pk_now_ms(m) : 0;
  for (int i = 0; i < m->ntunnels; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!t->in_use || t->dying || !t->conn) continue;
    pk_snap_tunnel *st = &s.tunnels[s.ntunnels];
    tv[s.ntunnels++] = t;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&t->conn->tcp, (struct sockaddr *)&ss, &len) == 0)
      pk_addr_str((struct sockaddr *)&ss, st->peer, sizeof(st->peer), &st->peer_port);
    st->streams = t->nstreams;
    st->kites = t->nkites_live;
    st->age_s = now > t->created ? (long long)((now - t->created) / 1000) : 0;
    st->bytes_in = t->bytes_in;
    st->bytes_out = t->bytes_out;
  }
  if (relay) {
    for (const pk_reg_entry *e = pk_reg_next(&m->rkites, NULL); e && s.nkites < maxk;
         e = pk_reg_next(&m->rkites, e)) {
      pk_snap_kite *k = &s.kites[s.nkites++];
      snprintf(k->proto, sizeof(k->proto), "%s", e->proto);
      snprintf(k->name, sizeof(k->name), "%s", e->name);
      k->port = e->port;
      k->tunnel = tunnel_index(tv, s.ntunnels, e->tunnel);
      k->live = 1;
      k->state = "live";
    }
  } else {
    for (int i = 0; i < m->nkites; i++) {
      const pk_kite *pk = &m->kites[i];
      pk_snap_kite *k = &s.kites[s.nkites++];
      snprintf(k->proto, sizeof(k->proto), "%s", pk->proto);
      snprintf(k->name, sizeof(k->name), "%s", pk->name);
      k->port = pk->pport;
      k->live = pk->state == PK_KITE_LIVE;
      k->tunnel = k->live ? tunnel_index(tv, s.ntunnels, pk->tunnel) : -1;
      k->state = kite_state(pk->state);
    }
  }
  for (int i = 0; i < s.nkites; i++) s.kites_live += s.kites[i].live;
  s.kstats = m->kstats;
  s.nkstats = m->nkstats;
  char *mt = metrics ? pk_render_metrics(&s) : NULL;
  char *st = status ? pk_render_status_json(&s) : NULL;
  if ((!metrics || mt) && (!status || st)) {
    rv = 0;
    if (metrics) *metrics = mt;
    if (status) *status = st;
  } else {
    free(mt);
    free(st);
  }
out:
  free(tv);
  free(s.tunnels);
  free(s.kites);
  return rv;
}

/* Loop thread (on_wake): answers the snapshot requests of other threads. */
void pk_admin_on_wake(pk_mgr *m) {
  uv_mutex_lock(&m->lock);
  unsigned long long want = m->snap_req;
  uv_mutex_unlock(&m->lock);
  if (want == m->snap_done_loop) return;
  char *metrics = NULL, *status = NULL;
  render_now(m, &metrics, &status); /* NULLs: the callers report ENOMEM */
  uv_mutex_lock(&m->lock);
  free(m->snap_metrics);
  free(m->snap_status);
  m->snap_metrics = metrics;
  m->snap_status = status;
  m->snap_done = want;
  m->snap_done_loop = want;
  uv_cond_broadcast(&m->cond);
  uv_mutex_unlock(&m->lock);
}

static int on_loop_thread(pk_mgr *m) {
  uv_thread_t self = uv_thread_self();
  return m->started && uv_thread_equal(&m->thread, &self);
}

/* The text for pagekite_get_metrics / pagekite_get_status_json, copied into
 * the calling thread's buffer. */
static char *get_text(pk_mgr *m, int want_metrics, const char *fn) {
  char *metrics = NULL, *status = NULL;
  uv_mutex_lock(&m->lock);
  int loop_runs = m->started && PK_GET(m->running);
  uv_mutex_unlock(&m->lock);
  if (!loop_runs || on_loop_thread(m)) {
    /* Nobody else touches the loop's data: read it here. */
    if (render_now(m, want_metrics ? &metrics : NULL, want_metrics ? NULL : &status) != 0) {
      pk_fail(PK_ENOMEM, "%s: out of memory", fn);
      return NULL;
    }
    uv_mutex_lock(&m->lock);
  } else {
    uv_mutex_lock(&m->lock);
    unsigned long long mine = ++m->snap_req;
    uv_mutex_unlock(&m->lock);
    pk_manager_wake(m);
    uv_mutex_lock(&m->lock);
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while (m->snap_done < mine && m->running) {
      uint64_t t = uv_hrtime();
      if (t >= deadline || uv_cond_timedwait(&m->cond, &m->lock, deadline - t) != 0) break;
    }
    if (m->snap_done < mine || !m->snap_metrics) {
      int stopped = !m->running;
      uv_mutex_unlock(&m->lock);
      if (stopped) return get_text(m, want_metrics, fn); /* it stopped meanwhile */
      pk_fail(m->snap_done < mine ? PK_ESTATE : PK_ENOMEM, "%s: %s", fn,
              m->snap_done < mine ? "the loop did not answer within 5 s" : "out of memory");
      return NULL;
    }
    metrics = strdup(m->snap_metrics);
    status = strdup(m->snap_status);
  }
  /* Under the lock: the caller's buffer. */
  char *text = want_metrics ? metrics : status;
  pk_outbuf *ob = pk_outbuf_mine(m);
  char *out = NULL;
  if (ob && text) {
    free(ob->admin);
    ob->admin = text;
    out = text;
    text = NULL;
  }
  uv_mutex_unlock(&m->lock);
  free(want_metrics ? status : metrics);
  free(text);
  if (!out) pk_fail(PK_ENOMEM, "%s: out of memory", fn);
  return out;
}

PK_API char *pagekite_get_metrics(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (!m) {
    pk_fail(PK_EINVAL, "pagekite_get_metrics: mgr is NULL");
    return NULL;
  }
  return get_text(m, 1, "pagekite_get_metrics");
}

PK_API char *pagekite_get_status_json(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (!m) {
    pk_fail(PK_EINVAL, "pagekite_get_status_json: mgr is NULL");
    return NULL;
  }
  return get_text(m, 0, "pagekite_get_status_json");
}

/* ---- the admin listener ---- */
typedef struct pk_admin_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wr;
  uv_shutdown_t sd;
  struct pk_admin *a;
  struct pk_admin_conn *next;
  char *resp;
  size_t len;
  int open_handles, closing;
  char buf[PK_ADMIN_HEAD_MAX + 1];
} admin_conn;

struct pk_admin {
  pk_mgr *mgr;
  uv_tcp_t tcp;
  int active;
  int nconns;
  admin_conn *conns;
};

PK_API int pagekite_set_admin_listener(pagekite_mgr h, const char *host, int port) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_set_admin_listener";
  if (pk_api_before_start(m, fn)) return -1;
  if (port < 0 || port > 65535) return pk_fail(PK_EINVAL, "%s: port %d is not 0-65535", fn, port);
  if (host && strlen(host) >= sizeof(m->admin_host))
    return pk_fail(PK_EINVAL, "%s: host is longer than %zu bytes", fn, sizeof(m->admin_host) - 1);
  struct sockaddr_storage ss;
  const char *hs = host && *host ? host : "127.0.0.1";
  if (port && uv_ip4_addr(hs, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(hs, port, (struct sockaddr_in6 *)&ss) != 0)
    return pk_fail(PK_EINVAL, "%s: '%s' is not an IPv4 or IPv6 address", fn, hs);
  snprintf(m->admin_host, sizeof(m->admin_host), "%s", hs);
  m->admin_port = port;
  return 0;
}

static void conn_closed(uv_handle_t *h) {
  admin_conn *c = h->data;
  if (--c->open_handles > 0) return;
  struct pk_admin *a = c->a;
  for (admin_conn **pp = &a->conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  a->nconns--;
  free(c->resp);
  free(c);
}

static void conn_close(admin_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
  uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_idle(uv_timer_t *t) {
  admin_conn *c = t->data;
  pk_log(c->a->mgr, PK_LOG_BE_CONNS, "Admin: closing a client (idle, or done)");
  conn_close(c);
}

static void on_shut(uv_shutdown_t *r, int status) {
  if (status < 0) conn_close(r->data);
}

/* The answer is out: half-close, and read (and drop) what the client still
 * sends until it hangs up or the timer ends it, so that unread request bytes
 * do not turn our close into a reset that destroys the answer. */
static void on_written(uv_write_t *w, int status) {
  admin_conn *c = w->data;
  if (status < 0 || c->closing) {
    conn_close(c);
    return;
  }
  c->sd.data = c;
  if (uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shut) != 0)
    conn_close(c);
  else
    uv_timer_start(&c->timer, on_idle, PK_ADMIN_LINGER_MS, 0);
}

static void respond(admin_conn *c, int code, const char *reason, const char *ctype,
                    const char *body) {
  size_t bl = body ? strlen(body) : 0;
  char head[512];
  int hl = snprintf(head, sizeof(head),
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                    code, reason, ctype, bl, code == 405 ? "Allow: GET\r\n" : "");
  c->resp = malloc((size_t)hl + bl + 1);
  if (!c->resp) {
    conn_close(c);
    return;
  }
  memcpy(c->resp, head, (size_t)hl);
  if (bl) memcpy(c->resp + hl, body, bl);
  uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hl + bl));
  c->wr.data = c;
  if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) conn_close(c);
}

static void serve(admin_conn *c, pk_admin_route_t r) {
  pk_mgr *m = c->a->mgr;
  if (r == PK_ADMIN_METRICS || r == PK_ADMIN_STATUS) {
    char *text = NULL;
    int met = r == PK_ADMIN_METRICS;
    if (render_now(m, met ? &text : NULL, met ? NULL : &text) != 0) {
      respond(c, 503, "Service Unavailable", "text/plain", "out of memory\n");
      return;
    }
    respond(c, 200, "OK", met ? "text/plain; version=0.0.4; charset=utf-8" : "application/json",
            text);
    free(text);
    return;
  }
  const char *reason;
  int code = pk_admin_route_status(r, &reason);
  char body[96];
  snprintf(body, sizeof(body), "%d %s\n", code, reason);
  respond(c, code, reason, "text/plain", body);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  admin_conn *c = h->data;
  if (c->resp) c->len = 0; /* answered: what comes now is dropped */
  size_t room = sizeof(c->buf) - 1 - c->len;
  *b = uv_buf_init(c->buf + c->len, (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  admin_conn *c = s->data;
  if (c->closing) return;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (c->resp) return; /* answered: dropped */
  c->len += (size_t)n;
  pk_admin_route_t r = pk_admin_route(c->buf, c->len);
  if (r == PK_ADMIN_NEED_MORE && c->len >= sizeof(c->buf) - 1) r = PK_ADMIN_TOO_BIG;
  if (r != PK_ADMIN_NEED_MORE) serve(c, r);
}


static void on_admin_connection(uv_stream_t *server, int status) {
  struct pk_admin *a = server->data;
  if (status < 0) return;
  admin_conn *c = a->nconns < PK_ADMIN_CONNS_MAX ? calloc(1, sizeof(*c)) : NULL;
  if (!c) {
    /* Full: take it off the backlog and hang up. */
    uv_tcp_t *tmp = malloc(sizeof(*tmp));
    if (tmp && uv_tcp_init(&a->mgr->loop, tmp) == 0) {
      uv_accept(server, (uv_stream_t *)tmp);
      uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
    } else {
      free(tmp);
    }
    pk_log(a->mgr, PK_LOG_BE_CONNS, "Admin: %d clients already, one refused", a->nconns);
    return;
  }
  c->a = a;
  uv_tcp_init(&a->mgr->loop, &c->tcp);
  uv_timer_init(&a->mgr->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = a->conns;
  a->conns = c;
  a->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_idle, PK_ADMIN_IDLE_MS, 0);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Binds the listener, if one is set (before the loop thread starts, so a
 * busy port fails pagekite_thread_start). */
int pk_admin_bind(pk_mgr *m) {
  m->started_at = time(NULL);
  if (!m->admin_port) return 0;
  struct pk_admin *a = m->admin ? m->admin : calloc(1, sizeof(*a));
  if (!a) return pk_fail(PK_ENOMEM, "pagekite_thread_start: out of memory (admin listener)");
  m->admin = a;
  a->mgr = m;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(m->admin_host, m->admin_port, (struct sockaddr_in *)&ss) != 0)
    uv_ip6_addr(m->admin_host, m->admin_port, (struct sockaddr_in6 *)&ss);
  uv_tcp_init(&m->loop, &a->tcp);
  a->tcp.data = a;
  int rv = uv_tcp_bind(&a->tcp, (struct sockaddr *)&ss, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&a->tcp, 16, on_admin_connection);
  if (rv != 0) {
    uv_close((uv_handle_t *)&a->tcp, NULL);
    pk_fail(PK_ENETWORK, "pagekite_thread_start: cannot listen on %s:%d (admin): %s",
            m->admin_host, m->admin_port, uv_strerror(rv));
    pk_log(m, PK_LOG_MANAGER_ERROR, "%s", pk_get_error());
    return -1;
  }
  a->active = 1;
  pk_log(m, PK_LOG_MANAGER_INFO, "Admin listening on %s:%d (/metrics, /status.json)",
         m->admin_host, m->admin_port);
  return 0;
}

/* Loop thread, on stop: the listener and every admin client close (their
 * memory goes in the close callbacks, which the loop's last turns run). */
void pk_admin_stop(pk_mgr *m) {
  struct pk_admin *a = m->admin;
  if (!a) return;
  if (a->active) {
    a->active = 0;
    uv_close((uv_handle_t *)&a->tcp, NULL);
  }
  for (admin_conn *c = a->conns; c; c = c->next) conn_close(c);
}

/* pagekite_free: what the stopped loop left. */
void pk_admin_free(pk_mgr *m) {
  free(m->admin);
  m->admin = NULL;
  free(m->snap_metrics);
  free(m->snap_status);
  m->snap_metrics = m->snap_status = NULL;
  free(m->kstats);
  m->kstats = NULL;
  m->nkstats = m->cap_kstats = 0;
}

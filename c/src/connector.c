/* connector.c - the back-end role: relay choice, tunnel handshake, kites,
 * origin streams, forwarding headers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define PK_PING_TIMEOUT_MS 3000
#define PK_UNKNOWN_PING 100000

static void connect_tunnel(pk_mgr *m, int fe, int ai, int signed_retry);

/* ---- kites ---- */
static int same_key(const pk_kite *a, const pk_kite *b) {
  return strcasecmp(a->proto, b->proto) == 0 && strcasecmp(a->name, b->name) == 0 &&
         a->pport == b->pport;
}

static void kite_proto_string(const pk_kite *k, char *out, size_t n) {
  if (k->pport > 0)
    snprintf(out, n, "%s-%d", k->proto, k->pport);
  else
    snprintf(out, n, "%s", k->proto);
}

/* The kite a relay's answer names ("proto[-port]" exactly as we asked, and
 * the name), or NULL. */
static pk_kite *kite_by_answer(pk_mgr *m, const pk_auth_answer *a) {
  for (int i = 0; i < m->nkites; i++) {
    char ps[48];
    kite_proto_string(&m->kites[i], ps, sizeof(ps));
    if (strcasecmp(ps, a->protoport) == 0 && strcasecmp(m->kites[i].name, a->name) == 0)
      return &m->kites[i];
  }
  return NULL;
}

static void update_status(pk_mgr *m) {
  int live = 0, rejected = 0, dup = 0;
  for (int i = 0; i < m->nkites; i++) {
    if (m->kites[i].state == PK_KITE_LIVE) live++;
    if (m->kites[i].state == PK_KITE_REJECTED) rejected++;
    if (m->kites[i].state == PK_KITE_DUPLICATE) dup++;
  }
  int st;
  if (m->nkites > 0 && live == m->nkites)
    st = m->ddns_busy ? PK_STATUS_UPDATING_DNS : PK_STATUS_FLYING;
  else if (rejected && !live)
    st = PK_STATUS_REJECTED;
  else if (live || dup)
    st = PK_STATUS_PROBLEMS;
  else if (m->fail_streak >= 3)
    st = m->fail_streak >= 6 ? PK_STATUS_NO_NETWORK : PK_STATUS_PROBLEMS;
  else
    st = PK_STATUS_CONNECTING;
  pk_set_status(m, st);
}

/* Our kites as the session's handshake signs them; with use_challenges,
 * those the relay challenged on our last tunnel answer it (signed
 * reconnect).  The challenges are spent either way. */
static int session_kites(pk_mgr *m, pk_session_kite *out, int use_challenges) {
  int n = 0;
  for (int i = 0; i < m->nkites && n < PK_MAX_KITES_PER_TUNNEL; i++, n++) {
    pk_kite *k = &m->kites[i];
    kite_proto_string(k, out[n].protoport, sizeof(out[n].protoport));
    snprintf(out[n].name, sizeof(out[n].name), "%s", k->name);
    snprintf(out[n].secret, sizeof(out[n].secret), "%s", k->secret);
    snprintf(out[n].bsalt, sizeof(out[n].bsalt), "%s", k->bsalt);
    snprintf(out[n].fsalt, sizeof(out[n].fsalt), "%s", use_challenges ? k->fsalt : "");
    k->fsalt[0] = 0;
  }
  return n;
}

static void clear_challenges(pk_mgr *m) {
  for (int i = 0; i < m->nkites; i++) m->kites[i].fsalt[0] = 0;
}

static void note_session(pk_tunnel *t, const char *id) {
  snprintf(t->session_id, sizeof(t->session_id), "%s", id);
  if (t->fe_idx >= 0 && t->addr_idx >= 0)
    snprintf(t->mgr->fes[t->fe_idx].session_id[t->addr_idx], sizeof(t->session_id), "%s", id);
}

/* After a rejection the kite is asked for again after hk_min seconds,
 * doubling each time it is refused again, up to PK_REJECT_RETRY_MAX_S; a
 * kite that flies resets the count.  (A secret fixed on the relay's side
 * shows within minutes, and a wrong one does not hammer the relay.) */
static uint64_t reject_backoff_ms(pk_mgr *m) {
  int n = m->reject_streak > 0 ? m->reject_streak - 1 : 0;
  int hk_min = PK_GET(m->hk_min);
  uint64_t s = (uint64_t)(hk_min > 0 ? hk_min : 1) << (n < 10 ? n : 10);
  return (s < PK_REJECT_RETRY_MAX_S ? s : PK_REJECT_RETRY_MAX_S) * 1000;
}

static void kites_changed(pk_mgr *m) {
  int was = m->rejected, live = 0;
  m->rejected = 0;
  for (int i = 0; i < m->nkites; i++) {
    if (m->kites[i].state == PK_KITE_REJECTED) m->rejected = 1;
    if (m->kites[i].state == PK_KITE_LIVE) live++;
  }
  if (m->rejected && !was) {
    m->reject_streak++;
    m->retry_rejected_at = pk_now_ms(m) + reject_backoff_ms(m);
  }
  if (!m->rejected && live == m->nkites) m->reject_streak = 0;
  update_status(m);
}

/* Kite states and reasons are read by pagekite_get_kite_status() from other
 * threads: they change under the manager's lock. */
static void kite_set(pk_mgr *m, pk_kite *k, pk_kite_state st, const char *reason) {
  static const int told[] = {[PK_KITE_DEAD] = PK_KITE_STATUS_WAITING,
                             [PK_KITE_LIVE] = PK_KITE_STATUS_FLYING,
                             [PK_KITE_REJECTED] = PK_KITE_STATUS_REJECTED,
                             [PK_KITE_DUPLICATE] = PK_KITE_STATUS_DUPLICATE};
  uv_mutex_lock(&m->lock);
  int changed = k->state != st || (reason && strcmp(k->reason, reason) != 0);
  k->state = st;
  if (reason) snprintf(k->reason, sizeof(k->reason), "%s", reason);
  if (changed) pk_event_locked(m, PK_EVENT_KITE, told[st], k->proto, k->name, k->reason);
  uv_mutex_unlock(&m->lock);
}

/* A relay's reason, kept as plain words (it comes from the network). */
static void kite_reason(pk_mgr *m, pk_kite *k, const char *why) {
  char clean[sizeof(k->reason)];
  size_t o = 0;
  for (const char *p = why; *p && o + 1 < sizeof(clean); p++)
    if (*p > ' ' && *p < 0x7f && *p != '"' && *p != '\\') clean[o++] = *p;
  clean[o] = 0;
  kite_set(m, k, k->state, clean);
}

static void kite_refused(pk_tunnel *t, pk_kite *k, int dup) {
  pk_mgr *m = t->mgr;
  kite_set(m, k, dup ? PK_KITE_DUPLICATE : PK_KITE_REJECTED,
           dup ? "duplicate" : (k->reason[0] ? NULL : "invalid"));
  if (k->tunnel == t) k->tunnel = NULL;
  pk_log(m, PK_LOG_MANAGER_ERROR, "Kite %s:%s rejected by relay: %s", k->proto, k->name, k->reason);
}

/* The relay's answer about one kite (the session read it, handshake.c). */
static void connector_kite_answer(pk_tunnel *t, const pk_auth_answer *a) {
  pk_mgr *m = t->mgr;
  if (a->kind == PK_ANS_SESSION) {
    note_session(t, a->detail);
    return;
  }
  if (a->kind == PK_ANS_MOTD) {
    pk_log(m, PK_LOG_MANAGER_INFO, "Message of the day from %s: %s", m->fes[t->fe_idx].host,
           a->detail);
    return;
  }
  pk_kite *k = kite_by_answer(m, a);
  if (!k) return;
  if (a->kind == PK_ANS_SIGNTHIS) {
    snprintf(k->fsalt, sizeof(k->fsalt), "%s", a->detail); /* kept for a signed reconnect */
  } else if (a->kind == PK_ANS_WHY) {
    kite_reason(m, k, a->detail);
  } else if (a->kind == PK_ANS_OK && (k->state != PK_KITE_LIVE || k->tunnel != t)) {
    kite_set(m, k, PK_KITE_LIVE, "");
    k->tunnel = t;
    pk_tunnel_kites_changed(t, 1);
    pk_log(m, PK_LOG_MANAGER_INFO, "Kite %s:%s is flying", k->proto, k->name);
  } else if (a->kind == PK_ANS_INVALID || a->kind == PK_ANS_DUPLICATE) {
    kite_refused(t, k, a->kind == PK_ANS_DUPLICATE);
  } else {
    return;
  }
  if (!t->dying && a->kind != PK_ANS_SIGNTHIS && a->kind != PK_ANS_WHY) kites_changed(m);
  /* A rejection will not fix itself: it weighs ten faults for bail-on-errors
   * (a duplicate may, when the other connector goes).  Counted after the
   * status says REJECTED, which a bail-out exit then leaves behind. */
  if (a->kind == PK_ANS_INVALID || a->kind == PK_ANS_DUPLICATE)
    pk_count_faults(m, a->kind == PK_ANS_DUPLICATE ? 1 : PK_FAULTS_PER_REJECTION);
}

/* An old-style relay (no AddKites) challenged us: reconnect with the
 * signatures.  The new tunnel is opened by housekeeping, never from inside
 * this tunnel's processing. */
static void connector_resign(pk_tunnel *t) {
  pk_mgr *m = t->mgr;
  if (!t->retried_signed && t->fe_idx >= 0 && t->addr_idx >= 0) {
    m->fes[t->fe_idx].signed_next[t->addr_idx] = 1;
    pk_tunnel_kill(t, "reconnecting with signatures");
    m->next_attempt = 0;
    pk_manager_tick_soon(m);
  } else {
    clear_challenges(m);
  }
}

/* ---- origin streams ---- */
static void send_unavailable(pk_tunnel *t, long long sid, const char *proto, const char *host) {
  pk_mgr *m = t->mgr;
  if (strncasecmp(proto, "http", 4) == 0 || strcasecmp(proto, "websocket") == 0) {
    char page[3000], hdr[64], url[sizeof(m->rejection_url)];
    uv_mutex_lock(&m->lock);
    snprintf(url, sizeof(url), "%s", m->rejection_url);
    uv_mutex_unlock(&m->lock);
    pk_wbuf b;
    pk_wbuf_init(&b, page, sizeof(page));
    if (url[0])
      pk_wire_rejection_page(&b, url, "BE", m->app_id, proto, host, "");
    else
      pk_wire_http_page(&b, 503, "Unavailable", "", "The origin server for",
                        "is not reachable right now (PageKite connector).", host);
    int hn = pk_wire_format_sid(hdr, sizeof(hdr), sid);
    if (pk_wbuf_ok(&b) && hn > 0) pk_tunnel_send_chunk(t, hdr, (size_t)hn, page, b.len, NULL);
  }
  pk_tunnel_send_eof(t, sid, "WR");
}

static void origin_on_connect(pk_conn *s, int status) {
  pk_tunnel *t = s->tunnel;
  if (status < 0) {
    pk_log(s->mgr, PK_LOG_BE_CONNS | PK_LOG_ERROR, "Origin for stream %lld unreachable: %s", s->sid,
           uv_strerror(status));
    if (t) {
      pk_kite *k = s->own.kite;
      s->flags |= PK_CF_SENT_EOF;
      send_unavailable(t, s->sid, k ? k->proto : "raw", k ? k->name : "");
    }
    pk_stream_close(s);
    return;
  }
  pk_log(s->mgr, PK_LOG_BE_CONNS, "Stream %lld connected to origin", s->sid);
  if (s->own.kite) s->own.kite->origin_first = pk_conn_addr_index(s); /* start there next time */
  if (s->flags & PK_CF_PEER_W) pk_conn_read_stop(s);
}

/* The kite of proto named name (wild: named "*" + name) that is
 * port-specific for port (specific) or takes any port; a stream without a
 * port takes either. */
static pk_kite *kite_named(pk_mgr *m, const char *proto, const char *name, int wild, int port,
                           int specific) {
  for (int i = 0; i < m->nkites; i++) {
    pk_kite *k = &m->kites[i];
    const char *kn = !wild ? k->name : k->name[0] == '*' ? k->name + 1 : NULL;
    if (!kn || strcasecmp(kn, name) != 0 || strcasecmp(k->proto, proto) != 0) continue;
    if (specific ? k->pport == port : !k->pport || !port) return k;
  }
  return NULL;
}

/* The host's own kite, else its wildcards from the most specific: for
 * a.b.c, *.b.c then *.c (pagekite.py's connector, pk.py GetBackendData). */
static pk_kite *kite_by_name(pk_mgr *m, const char *proto, const char *host, int port,
                             int specific) {
  pk_kite *k = kite_named(m, proto, host, 0, port, specific);
  for (const char *d = strchr(host, '.'); !k && d; d = strchr(d + 1, '.'))
    k = kite_named(m, proto, d, 1, port, specific);
  return k;
}

/* The kite for a new stream, as pagekite.py's connector picks a back-end
 * (proto/conns.py UserConn._BackEnd): for each proto (a websocket stream
 * falls back to http), the port-specific kite, the port-less one, then the
 * catch-all kite named "unknown". */
static pk_kite *kite_for_stream(pk_mgr *m, const char *proto, const char *host, int port) {
  const char *protos[2] = {proto, "http"};
  int n = strcasecmp(proto, "websocket") == 0 ? 2 : 1;
  for (int i = 0; i < n; i++) {
    pk_kite *k = port ? kite_by_name(m, protos[i], host, port, 1) : NULL;
    if (!k) k = kite_by_name(m, protos[i], host, port, 0);
    if (!k) k = kite_named(m, protos[i], "unknown", 0, port, 0);
    if (k) return k;
  }
  return NULL;
}

static void slice_cpy(char *out, size_t n, pk_slice s) {
  size_t k = s.p ? (s.n < n - 1 ? s.n : n - 1) : 0;
  if (k) memcpy(out, s.p, k);
  out[k] = 0;
}

/* What a new-stream chunk asks for. */
typedef struct {
  char proto[32], host[PK_NAME_MAX], rip[64];
  int port, rport, rtls;
} stream_req;

static void parse_stream_req(const pk_chunk *ch, stream_req *r) {
  char portb[16], rpb[16];
  slice_cpy(r->proto, sizeof(r->proto), ch->known[PK_CH_PROTO]);
  slice_cpy(r->host, sizeof(r->host), ch->known[PK_CH_HOST]);
  slice_cpy(portb, sizeof(portb), ch->known[PK_CH_PORT]);
  slice_cpy(r->rip, sizeof(r->rip), ch->known[PK_CH_RIP]);
  slice_cpy(rpb, sizeof(rpb), ch->known[PK_CH_RPORT]);
  for (char *p = r->host; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  r->port = atoi(portb);
  r->rport = atoi(rpb);
  r->rtls = ch->known[PK_CH_RTLS].p && ch->known[PK_CH_RTLS].n > 0;
}

/* A chunk of our own answer to the client, then EOF. */
static void answer_and_close(pk_tunnel *t, long long sid, const char *resp, size_t n) {
  char hdr[64];
  int hn = pk_wire_format_sid(hdr, sizeof(hdr), sid);
  if (n && hn > 0) pk_tunnel_send_chunk(t, hdr, (size_t)hn, resp, n, NULL);
  pk_tunnel_send_eof(t, sid, "WR");
}

/* Plugins see a new stream's first bytes: they may refuse it (-1: answered
 * and closed) or rewrite its head (*first then points into *owned, which
 * the caller frees). */
static int stream_hooks(pk_tunnel *t, const stream_req *r, const char **first, size_t *first_n,
                        long long sid, char **owned) {
  pk_http_head hh;
  int is_http = strncasecmp(r->proto, "http", 4) == 0 || strcasecmp(r->proto, "websocket") == 0;
  int have_head = is_http && pk_wire_parse_http_head(*first, *first_n, PK_HEAD_MAX, &hh) == 1;
  pk_stream_info info = {0, r->proto, r->host, r->port, r->rip, r->rport,
                         have_head ? *first : NULL, have_head ? hh.head_len : 0};
  pk_hook_result hr;
  memset(&hr, 0, sizeof(hr));
  int act = pk_plugins_on_stream(t->mgr, &info, &hr);
  if (act == PK_HOOK_REJECT) {
    char resp[4096];
    int rl = is_http ? pk_hook_reject_response(&hr, resp, sizeof(resp)) : -1;
    answer_and_close(t, sid, resp, rl > 0 ? (size_t)rl : 0);
    return -1;
  }
  int rewrite = act == PK_HOOK_REWRITE && have_head;
  char *rewritten = rewrite ? malloc(PK_HEAD_MAX + 4096 + PK_MAX_CHUNK) : NULL;
  int nl = rewritten ? pk_head_rewrite(*first, hh.head_len, &hr, rewritten, PK_HEAD_MAX + 4096) : -1;
  *owned = rewritten;
  if (nl > 0) {
    memcpy(rewritten + nl, *first + hh.head_len, *first_n - hh.head_len);
    *first_n = (size_t)nl + (*first_n - hh.head_len);
    *first = rewritten;
  }
  return 0;
}

/* pagekite.py's +ip/ and +password/ flags of the kite: 1 when the stream
 * was refused (503 for an address not listed, as pagekite.py; 401 asking
 * for basic auth).  Credentials are never logged. */
static int kite_access_refused(pk_tunnel *t, const pk_kite *k, const stream_req *r,
                               const char *first, size_t first_n, long long sid) {
  pk_mgr *m = t->mgr;
  if (!m->nkite_rules) return 0;
  int is_http = strncasecmp(r->proto, "http", 4) == 0 || strcasecmp(r->proto, "websocket") == 0;
  int v = pk_kite_access_check(m->kite_rules, m->nkite_rules, k->name, k->pport, r->rip, is_http,
                               first, first_n);
  if (v == PK_KA_OK) return 0;
  pk_count_reject(m, v == PK_KA_IP_DENIED ? PK_REJECT_KITE_IP : PK_REJECT_KITE_AUTH);
  if (v == PK_KA_IP_DENIED) {
    pk_log(m, PK_LOG_BE_CONNS, "Stream %lld: %s://%s from %s refused: not on the kite's IP list",
           sid, r->proto, r->host, r->rip);
    send_unavailable(t, sid, r->proto, r->host);
    return 1;
  }
  pk_log(m, PK_LOG_BE_CONNS, "Stream %lld: %s://%s from %s refused: no valid credentials", sid,
         r->proto, r->host, r->rip);
  char page[1500];
  pk_wbuf b;
  pk_wbuf_init(&b, page, sizeof(page));
  if (is_http)
    pk_wire_http_page(&b, 401, "Unauthorized", "WWW-Authenticate: Basic realm=\"PageKite\"\r\n",
                      "Authentication is required for", "(PageKite connector).", r->host);
  answer_and_close(t, sid, page, is_http && pk_wbuf_ok(&b) ? b.len : 0);
  return 1;
}

static int fwd_attach(pk_conn *s, const char *host);

/* A stream to the kite's origin, attached to the tunnel, connecting. */
static pk_conn *open_origin(pk_tunnel *t, pk_kite *k, const stream_req *r, long long sid) {
  pk_mgr *m = t->mgr;
  pk_conn *s = (k && k->norigins) ? pk_conn_new(m, PK_CK_STREAM) : NULL;
  if (!s) {
    long more = pk_ratelimit_check(m, &m->rl_refused); /* one line a second under load */
    if (more >= 0)
      pk_log(m, PK_LOG_BE_CONNS | PK_LOG_ERROR, "No origin for %s://%s:%d (%s); %ld more refused since the last line",
             r->proto, r->host, r->port, k ? pk_get_error() : "no such kite", more);
    send_unavailable(t, sid, r->proto, r->host);
    return NULL;
  }
  s->own.kite = k;
  s->kstat = pk_kstat_get(m, k->proto, k->name, k->pport);
  snprintf(s->rip, sizeof(s->rip), "%s", r->rip);
  s->rport = r->rport;
  s->rtls = r->rtls;
  /* Websocket kites start with an HTTP Upgrade request: forwarding headers
   * too (the rewriter passes the connection through once the origin says
   * 101). */
  if (strcasecmp(r->proto, "http") == 0 || strcasecmp(r->proto, "websocket") == 0)
    s->flags |= PK_CF_HTTP;
  pk_stream_attach(s, t, sid);
  if ((s->flags & PK_CF_HTTP) && m->nkite_rules && PK_GET(m->fwd_headers) &&
      fwd_attach(s, r->host) != 0) {
    s->flags |= PK_CF_SENT_EOF;
    send_unavailable(t, sid, r->proto, r->host);
    pk_stream_close(s);
    return NULL;
  }
  s->on_connect = origin_on_connect;
  if (pk_conn_connect_any(s, k->origins, k->norigins, k->origin_first, NULL, NULL) != 0) {
    s->flags |= PK_CF_SENT_EOF;
    send_unavailable(t, sid, r->proto, r->host);
    pk_stream_close(s);
    return NULL;
  }
  /* +proxyproto: the visitor's address (RIP/RPort) and the relay's, before
   * any of the stream's bytes (they wait with it until connected). */
  int ppv = __atomic_load_n(&k->proxy_proto, __ATOMIC_RELAXED);
  if (ppv) {
    char pp[PK_PP_ENCODE_MAX], relay_ip[64] = "";
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (t->conn && uv_tcp_getpeername(&t->conn->tcp, (struct sockaddr *)&ss, &sl) == 0)
      pk_addr_str((struct sockaddr *)&ss, relay_ip, sizeof(relay_ip), NULL);
    int pn = pk_pp_encode(ppv, r->rip, r->rport, relay_ip, r->port, pp, sizeof(pp));
    if (pn > 0) pk_conn_write(s, pp, (size_t)pn, NULL);
  }
  pk_conn_read_start(s);
  return s;
}

/* Data for a SID we do not know: a new stream (Proto/Host set), a probe,
 * or data for a stream that is gone. */
static void new_stream(pk_tunnel *t, const pk_chunk *ch) {
  stream_req r;
  parse_stream_req(ch, &r);
  if (!r.proto[0] || !r.host[0]) {
    pk_tunnel_send_eof(t, ch->sid, "WR");
    return;
  }
  if (strncasecmp(r.proto, "probe", 5) == 0) {
    char ok[160];
    pk_wbuf b;
    pk_wbuf_init(&b, ok, sizeof(ok));
    pk_wire_http_response(&b, 200, "OK", "text/plain", "", "OK\n", 3);
    answer_and_close(t, ch->sid, ok, b.len);
    return;
  }
  pk_kite *k = kite_for_stream(t->mgr, r.proto, r.host, r.port);
  const char *first = ch->data.p;
  size_t first_n = ch->data.n;
  char *owned = NULL;
  if (k && kite_access_refused(t, k, &r, first, first_n, ch->sid)) return;
  if (k && stream_hooks(t, &r, &first, &first_n, ch->sid, &owned) != 0) return;
  pk_conn *s = open_origin(t, k, &r, ch->sid);
  if (s) {
    pk_log(t->mgr, PK_LOG_BE_CONNS, "Stream %lld: %s://%s from %s", ch->sid, r.proto, r.host, s->rip);
    if (first_n) pk_stream_from_tunnel(s, first, first_n);
  }
  free(owned);
}

/* ---- X-Forwarded-For / X-Forwarded-Proto on every request ---- */
/* The request rewriter (httpfwd.c) lives in one pool block per HTTP stream:
 * its state, then a request and a response buffer.  Its output for one call
 * is staged in one block and written once, so pipelined small requests do
 * not cost a block each. */
#define FWD_BUF ((PK_BLOCK_SIZE - sizeof(pk_fwd)) / 2)

typedef struct {
  pk_conn *s;
  pk_block *b;
  size_t len;
} pk_out;

static int out_flush(pk_out *o) {
  if (!o->b) return 0;
  int rv = o->len ? pk_conn_write(o->s, o->b->data, o->len, o->b) : 0;
  pk_block_unref(o->s->mgr, o->b);
  o->b = NULL;
  o->len = 0;
  return rv;
}

static int out_put(void *ctx, const char *p, size_t n) {
  pk_out *o = ctx;
  while (n > 0) {
    if (!o->b) {
      if (!(o->b = pk_block_get(o->s->mgr))) return -1;
      o->len = 0;
    }
    size_t k = PK_BLOCK_SIZE - o->len < n ? PK_BLOCK_SIZE - o->len : n;
    memcpy(o->b->data + o->len, p, k);
    o->len += k;
    p += k;
    n -= k;
    if (o->len == PK_BLOCK_SIZE && out_flush(o) != 0) return -1;
  }
  return 0;
}

static pk_fwd *stream_fwd(pk_conn *s) { return s->inbuf ? (pk_fwd *)(void *)s->inbuf->data : NULL; }

/* An HTTP stream gets its rewriter when it starts (RIP/RTLS known).  host:
 * the name the stream was opened for, pinned when the connector has
 * per-kite access rules (they are checked on a stream's first request, so
 * its later ones must not ask for another kite's name on the same origin);
 * NULL: any. */
static int fwd_attach(pk_conn *s, const char *host) {
  pk_block *b = pk_block_get(s->mgr);
  if (!b) return -1;
  pk_fwd_config cfg = {s->rip, s->rtls ? "https" : "http", PK_FWD_XFF_REPLACE,
                       b->data + sizeof(pk_fwd), FWD_BUF,
                       b->data + sizeof(pk_fwd) + FWD_BUF, FWD_BUF, host};
  pk_fwd *f = (pk_fwd *)(void *)b->data;
  if (pk_fwd_init(f, &cfg) != 0) {
    cfg.client_ip = NULL; /* an address we cannot vouch for reads "unknown" */
    if (pk_fwd_init(f, &cfg) != 0) {
      pk_block_unref(s->mgr, b);
      return -1;
    }
  }
  s->inbuf = b;
  return 0;
}

static int fwd_push(pk_conn *s, pk_fwd *f, const char *data, size_t n) {
  pk_out o = {s, NULL, 0};
  int rc = pk_fwd_request_data(f, data, n, out_put, &o);
  if (out_flush(&o) != 0 && rc >= 0) rc = PK_FWD_EOUT;
  return rc;
}

/* A request we refuse gets a short answer when the client is not waiting
 * for anything else; the stream then ends. */
static void fwd_refuse(pk_conn *s, pk_fwd *f, int rc) {
  int code = pk_fwd_http_status(rc);
  pk_log(s->mgr, PK_LOG_BE_CONNS, "Stream %lld: refusing the client's request: %s", s->sid,
         pk_fwd_strerror(rc));
  if (!code || !pk_fwd_can_reply(f) || !s->tunnel) return;
  char resp[160], hdr[48];
  pk_wbuf b;
  pk_wbuf_init(&b, resp, sizeof(resp));
  pk_wire_http_response(&b, code,
                        code == 431   ? "Request Header Fields Too Large"
                        : code == 421 ? "Misdirected Request"
                                      : "Bad Request",
                        NULL, "", "", 0);
  int hn = pk_wire_format_sid(hdr, sizeof(hdr), s->sid);
  if (pk_wbuf_ok(&b) && hn > 0) pk_tunnel_send_chunk(s->tunnel, hdr, (size_t)hn, resp, b.len, NULL);
}

/* Client -> origin bytes of an HTTP stream.  Returns -1 when the stream must
 * end (after an answer to the client, if one fits). */
int pk_http_forward_rewrite(pk_conn *s, const char *data, size_t n) {
  pk_fwd *f = stream_fwd(s);
  if (!f && fwd_attach(s, NULL) != 0) return -1;
  f = stream_fwd(s);
  int rc = fwd_push(s, f, data, n);
  if (rc >= 0) return 0;
  fwd_refuse(s, f, rc);
  return -1;
}

/* Origin -> client bytes of an HTTP stream, read only: they tell when an
 * Upgrade took effect, or when held client bytes may go on. */
void pk_http_forward_response(pk_conn *s, const char *data, size_t n) {
  pk_fwd *f = stream_fwd(s);
  if (!f || (pk_fwd_passthrough(f) && pk_fwd_parked(f) == 0)) return;
  int rc = pk_fwd_response_data(f, data, n);
  if (rc == PK_FWD_RELEASED && fwd_push(s, f, NULL, 0) < 0) pk_stream_kill(s, 1);
  /* A response we cannot follow: the client gets it, but no further request
   * of this connection goes to the origin (the error is sticky). */
}

int pk_http_forward_waiting(const pk_conn *s) {
  const pk_fwd *f = s->inbuf ? (const pk_fwd *)(const void *)s->inbuf->data : NULL;
  return f ? pk_fwd_waiting(f) : 0;
}

size_t pk_http_forward_parked(const pk_conn *s) {
  const pk_fwd *f = s->inbuf ? (const pk_fwd *)(const void *)s->inbuf->data : NULL;
  return f ? pk_fwd_parked(f) : 0;
}

/* ---- the tunnel handshake (connector side; the session does the protocol) ---- */
/* The relay accepted the tunnel and its answers were applied. */
static void connector_opened(pk_tunnel *t) {
  pk_mgr *m = t->mgr;
  m->fail_streak = 0;
  int pending = 0;
  for (int i = 0; i < m->nkites; i++)
    if (m->kites[i].state == PK_KITE_DEAD) pending++;
  if (!t->nkites_live && !pending && !t->sess.peer_addkites) {
    pk_tunnel_kill(t, "no kites accepted");
    return;
  }
  update_status(m);
}

static void send_handshake(pk_tunnel *t, int use_challenges) {
  pk_mgr *m = t->mgr;
  pk_session_kite *ks = malloc(PK_MAX_KITES_PER_TUNNEL * sizeof(*ks));
  if (!ks) {
    pk_tunnel_kill(t, "out of memory");
    return;
  }
  int n = session_kites(m, ks, use_challenges);
  int rv = pk_session_connect(&t->sess, ks, n, PK_VERSION,
                              m->fes[t->fe_idx].session_id[t->addr_idx]);
  free(ks);
  if (rv != 0) pk_tunnel_kill(t, pk_session_why(&t->sess));
}

static void tunnel_on_connect(pk_conn *c, int status) {
  pk_tunnel *t = c->own.tunnel;
  pk_mgr *m = c->mgr;
  if (!t) return;
  if (status < 0) {
    pk_frontend *fe = &m->fes[t->fe_idx];
    fe->errors[t->addr_idx]++;
    fe->last_fail[t->addr_idx] = pk_now_ms(m);
    /* Its ping was measured before it failed: forget it, or maybe_migrate
     * "migrates" back to the dead relay once the 30 s penalty is over
     * (tests/fleet).  A fresh ping ranks it again. */
    fe->ping_ms[t->addr_idx] = -1;
    m->fail_streak++;
    pk_count_error(m);
    pk_log(m, PK_LOG_TUNNEL_CONNS | PK_LOG_ERROR, "Connecting to relay %s:%d failed: %s", fe->host,
           fe->port, pk_get_error());
    pk_tunnel_kill(t, "connect failed");
    update_status(m);
    return;
  }
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Connected to relay %s:%d, requesting kites",
         m->fes[t->fe_idx].host, m->fes[t->fe_idx].port);
  send_handshake(t, t->retried_signed);
}

static void connect_tunnel(pk_mgr *m, int fi, int ai, int signed_retry) {
  pk_frontend *fe = &m->fes[fi];
  pk_conn *c = pk_conn_new(m, PK_CK_TUNNEL);
  if (!c) return;
  pk_tunnel *t = pk_tunnel_new(m, c);
  if (!t) {
    pk_conn_close(c);
    return;
  }
  t->fe_idx = fi;
  t->addr_idx = ai;
  t->retried_signed = signed_retry;
  fe->tunnel[ai] = t;
  c->on_connect = tunnel_on_connect;
  SSL_CTX *ctx = (m->flags & PK_WITH_SSL) ? pk_client_tls_ctx(m) : NULL;
  if ((m->flags & PK_WITH_SSL) && !ctx) {
    pk_tunnel_kill(t, "TLS context unavailable");
    return;
  }
  char ip[64];
  pk_addr_str((struct sockaddr *)&fe->addrs[ai], ip, sizeof(ip), NULL);
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Connecting to relay %s (%s) port %d%s%s", fe->host, ip,
         fe->port, ctx ? " with TLS" : "", m->nproxy_addrs ? " through the proxy" : "");
  int rv = m->nproxy_addrs ? pk_conn_connect_via(c, &m->proxy, m->proxy_addrs, m->nproxy_addrs,
                                                 ip, fe->port, ctx, fe->host)
                           : pk_conn_connect(c, (struct sockaddr *)&fe->addrs[ai], ctx, fe->host);
  if (rv != 0) pk_tunnel_kill(t, pk_get_error());
}

/* Why a relay that answered did not take the tunnel. */
static void note_refusal(pk_tunnel *t) {
  int st = t->sess.peer_status;
  if (!st || st == 200 || st == 101) return;
  pk_mgr *m = t->mgr;
  pk_count_error(m);
  m->fail_streak++;
  pk_log(m, PK_LOG_TUNNEL_CONNS | PK_LOG_ERROR, "Relay refused tunnel: HTTP %d", st);
}

static void connector_tunnel_closed(pk_tunnel *t) {
  pk_mgr *m = t->mgr;
  note_refusal(t);
  for (int i = 0; i < m->nkites; i++) {
    pk_kite *k = &m->kites[i];
    if (k->tunnel == t) {
      k->tunnel = NULL;
      if (k->state == PK_KITE_LIVE) kite_set(m, k, PK_KITE_DEAD, NULL);
    }
  }
  if (t->fe_idx >= 0 && t->addr_idx >= 0 && m->fes[t->fe_idx].tunnel[t->addr_idx] == t)
    m->fes[t->fe_idx].tunnel[t->addr_idx] = NULL;
  if (!PK_GET(m->stop_requested)) {
    /* Reconnect soon; back off while failures continue. */
    uint64_t now = pk_now_ms(m);
    if (!m->outage_started) m->outage_started = now;
    uint64_t delay = 250u << (m->fail_streak < 3 ? m->fail_streak : 2);
    if (now - m->outage_started > 60000) delay = (uint64_t)PK_GET(m->hk_min) * 1000;
    if (m->rejected) delay = reject_backoff_ms(m);
    m->next_attempt = now + delay;
    update_status(m);
  }
}

/* ---- relay pings and choice ---- */
/* A ping conn's owner_idx is its slot + PK_MAX_ADDRS * the list's
 * generation when it was sent: the slot, or -1 if the list was re-resolved
 * since (pk_addrs_merge moves addresses between slots). */
static int ping_idx(const pk_conn *c, const pk_frontend *fe) {
  if (c->owner_idx < 0) return -1;
  int ai = c->owner_idx % PK_MAX_ADDRS, gen = c->owner_idx / PK_MAX_ADDRS;
  return gen == (fe->addrs_gen & 0xffff) && ai < fe->naddrs ? ai : -1;
}

/* The slot of the address a ping conn reached: the list may have been
 * re-resolved in another order while the ping was out; -1 if it is gone. */
static int ping_slot(pk_conn *c, pk_frontend *fe) {
  struct sockaddr_storage peer;
  int len = sizeof(peer);
  memset(&peer, 0, sizeof(peer));
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) != 0) return -1;
  for (int a = 0; a < fe->naddrs; a++)
    if (memcmp(&fe->addrs[a], &peer, (size_t)len) == 0) return a;
  return -1;
}

static void ping_on_data(pk_conn *c, const char *data, size_t n, pk_block *blk) {
  pk_frontend *fe = c->own.fe;
  pk_mgr *m = c->mgr;
  if (fe) {
    int slot = ping_slot(c, fe);
    c->owner_idx = slot < 0 ? -1 : slot + PK_MAX_ADDRS * (fe->addrs_gen & 0xffff);
  }
  if (fe && ping_idx(c, fe) >= 0) {
    int ms = (int)(pk_now_ms(m) - c->created);
    int ai = ping_idx(c, fe);
    fe->ping_ms[ai] = PK_GET(m->fake_ping) ? (int)(uv_hrtime() % 500) : (ms < 1 ? 1 : ms);
    pk_log(m, PK_LOG_MANAGER_DEBUG, "Relay %s #%d answered ping in %d ms", fe->host, ai,
           fe->ping_ms[ai]);
  }
  pk_conn_close(c);
}

static void ping_on_eof(pk_conn *c, int status) { pk_conn_close(c); }

static void ping_on_connect(pk_conn *c, int status) {
  if (status < 0) {
    pk_frontend *fe = c->own.fe;
    if (ping_idx(c, fe) >= 0) fe->ping_ms[ping_idx(c, fe)] = -2;
    pk_conn_close(c);
    return;
  }
  static const char req[] = "GET /ping HTTP/1.1\r\nHost: ping.pagekite\r\n\r\n";
  pk_conn_write(c, req, sizeof(req) - 1, NULL);
}

static void ping_relay(pk_mgr *m, int fi, int ai) {
  pk_frontend *fe = &m->fes[fi];
  pk_conn *c = pk_conn_new(m, PK_CK_PING);
  if (!c) return;
  c->own.fe = fe;
  c->owner_idx = ai + PK_MAX_ADDRS * (fe->addrs_gen & 0xffff);
  c->on_connect = ping_on_connect;
  c->on_data = ping_on_data;
  c->on_eof = ping_on_eof;
  fe->ping_ms[ai] = -1;
  if (pk_conn_connect(c, (struct sockaddr *)&fe->addrs[ai], NULL, NULL) != 0) pk_conn_close(c);
}

static int rank_of(pk_mgr *m, int fi, int ai) {
  pk_frontend *fe = &m->fes[fi];
  int p = fe->ping_ms[ai];
  int r = p > 0 ? p : PK_UNKNOWN_PING;
  if (fe->last_fail[ai] && pk_now_ms(m) - fe->last_fail[ai] < 30000) r += 10 * PK_UNKNOWN_PING;
  return r;
}

static int live_tunnels(pk_mgr *m) {
  int n = 0;
  for (int f = 0; f < m->nfes; f++)
    for (int a = 0; a < m->fes[f].naddrs; a++)
      if (m->fes[f].tunnel[a]) n++;
  return n;
}

static void choose_and_connect(pk_mgr *m) {
  int spares = PK_GET(m->spares);
  int want = 1 + (spares > 0 ? spares : 0);
  for (int f = 0; f < m->nfes; f++)
    for (int a = 0; a < m->fes[f].naddrs; a++)
      if (m->fes[f].signed_next[a] && !m->fes[f].tunnel[a]) {
        m->fes[f].signed_next[a] = 0; /* the relay that challenged us gets the answer */
        connect_tunnel(m, f, a, 1);
      }
  while (live_tunnels(m) < want) {
    int bf = -1, ba = -1, br = 0;
    for (int f = 0; f < m->nfes; f++)
      for (int a = 0; a < m->fes[f].naddrs; a++) {
        if (m->fes[f].tunnel[a]) continue;
        int r = rank_of(m, f, a);
        if (bf < 0 || r < br) bf = f, ba = a, br = r;
      }
    if (bf < 0) return;
    connect_tunnel(m, bf, ba, 0);
    if (!m->fes[bf].tunnel[ba]) return; /* could not even start: retry on a later tick */
  }
}

/* ---- DNS ---- */
/* What the connector knows about one relay address moves with it. */
typedef struct {
  struct sockaddr_storage addr;
  int ping_ms, errors;
  uint64_t last_fail;
  char session_id[80];
  pk_tunnel *tunnel;
  char signed_next;
} fe_slot;

static void slot_get(const pk_frontend *fe, int i, fe_slot *s) {
  s->addr = fe->addrs[i];
  s->ping_ms = fe->ping_ms[i];
  s->errors = fe->errors[i];
  s->last_fail = fe->last_fail[i];
  memcpy(s->session_id, fe->session_id[i], sizeof(s->session_id));
  s->tunnel = fe->tunnel[i];
  s->signed_next = fe->signed_next[i];
}

static void slot_put(pk_frontend *fe, int j, const fe_slot *s) {
  fe->addrs[j] = s->addr;
  fe->ping_ms[j] = s->ping_ms;
  fe->errors[j] = s->errors;
  fe->last_fail[j] = s->last_fail;
  memcpy(fe->session_id[j], s->session_id, sizeof(fe->session_id[j]));
  fe->tunnel[j] = s->tunnel;
  fe->signed_next[j] = s->signed_next;
  if (s->tunnel) s->tunnel->addr_idx = j;
}

int pk_addrs_merge(pk_frontend *fe, const struct sockaddr_storage *fresh, int n) {
  fe_slot old[PK_MAX_ADDRS];
  int nold = fe->naddrs < PK_MAX_ADDRS ? fe->naddrs : PK_MAX_ADDRS;
  char used[PK_MAX_ADDRS] = {0};
  for (int i = 0; i < nold; i++) slot_get(fe, i, &old[i]);
  /* Addresses that vanished from DNS but carry a tunnel stay (at the end). */
  int keep = 0;
  for (int i = 0; i < nold; i++) {
    if (!old[i].tunnel) continue;
    int found = 0;
    for (int k = 0; k < n && !found; k++)
      found = memcmp(&fresh[k], &old[i].addr, sizeof(fresh[k])) == 0;
    keep += !found;
  }
  int room = PK_MAX_ADDRS - keep, j = 0;
  for (int k = 0; k < n && j < room; k++) {
    int from = -1;
    for (int i = 0; i < nold && from < 0; i++)
      if (!used[i] && memcmp(&fresh[k], &old[i].addr, sizeof(fresh[k])) == 0) from = i;
    fe_slot s;
    if (from >= 0) {
      used[from] = 1;
      s = old[from];
    } else {
      memset(&s, 0, sizeof(s));
      s.addr = fresh[k];
      s.ping_ms = -1;
    }
    slot_put(fe, j++, &s);
  }
  for (int i = 0; i < nold; i++)
    if (!used[i] && old[i].tunnel) slot_put(fe, j++, &old[i]);
  for (int i = j; i < nold; i++) { /* slots no longer used */
    fe_slot s;
    memset(&s, 0, sizeof(s));
    s.ping_ms = -1;
    slot_put(fe, i, &s);
  }
  int moved = j != nold;
  for (int i = 0; i < j && !moved; i++)
    moved = memcmp(&fe->addrs[i], &old[i].addr, sizeof(old[i].addr)) != 0;
  fe->addrs_gen += moved;
  fe->naddrs = j;
  return j;
}

static void fill_addrs(pk_frontend *fe, struct addrinfo *res, int flags) {
  struct sockaddr_storage fresh[PK_MAX_ADDRS];
  int n = 0;
  for (struct addrinfo *ai = res; ai && n < PK_MAX_ADDRS; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET && (flags & PK_WITH_IPV6) && !(flags & PK_WITH_IPV4)) continue;
    if (ai->ai_family == AF_INET6 && !(flags & PK_WITH_IPV6)) continue;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)fe->port);
    int dup = 0;
    for (int j = 0; j < n; j++)
      if (memcmp(&fresh[j], &ss, sizeof(ss)) == 0) dup = 1;
    if (!dup) fresh[n++] = ss;
  }
  pk_addrs_merge(fe, fresh, n);
}

/* Blocking lookup, used before the loop runs (configuration calls). */
int pk_frontend_resolve(pk_mgr *m, pk_frontend *fe) { return pk_origin_resolve(m, fe, m->flags); }

int pk_origin_resolve(pk_mgr *m, pk_frontend *fe, int flags) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  char port[16];
  snprintf(port, sizeof(port), "%d", fe->port);
  int rv = getaddrinfo(fe->host, port, &hints, &res);
  if (rv != 0) {
    pk_fail(PK_ENETWORK, "cannot resolve %s: %s", fe->host, gai_strerror(rv));
    pk_count_error(m);
    pk_log(m, PK_LOG_MANAGER_ERROR, "%s", pk_get_error());
    fe->naddrs = 0;
    return 0;
  }
  fill_addrs(fe, res, flags);
  freeaddrinfo(res);
  return fe->naddrs;
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  pk_frontend *fe = req->data;
  pk_mgr *m = (pk_mgr *)req->loop->data;
  fe->gai_busy = 0;
  if (!fe->host[0]) { /* removed meanwhile (pagekite_remove_frontend) */
    if (res) uv_freeaddrinfo(res);
    return;
  }
  if (status == 0 && res) {
    /* Keep addresses that have tunnels; refresh the rest. */
    int busy = 0;
    for (int a = 0; a < fe->naddrs; a++)
      if (fe->tunnel[a]) busy = 1;
    if (!busy) fill_addrs(fe, res, m->flags);
  } else if (status != 0) {
    pk_count_error(m);
    pk_log(m, PK_LOG_MANAGER_ERROR, "DNS lookup for relay %s failed: %s", fe->host,
           uv_strerror(status));
  }
  if (res) uv_freeaddrinfo(res);
}

/* A stream-socket lookup of host:port off the loop thread (libuv's pool);
 * 0 when started, cb gets the answer. */
static int lookup(pk_mgr *m, uv_getaddrinfo_t *req, uv_getaddrinfo_cb cb, void *data,
                  const char *host, int port) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  char ps[16];
  snprintf(ps, sizeof(ps), "%d", port);
  req->data = data;
  return uv_getaddrinfo(&m->loop, req, cb, host, ps, &hints);
}

static void refresh_dns(pk_mgr *m) {
  for (int f = 0; f < m->nfes; f++) {
    pk_frontend *fe = &m->fes[f];
    if (!fe->update_dns || fe->gai_busy) continue;
    if (lookup(m, &fe->gai, on_gai, fe, fe->host, fe->port) == 0) fe->gai_busy = 1;
  }
}

/* ---- dynamic DNS ---- */
int pk_ddns_url(pk_mgr *m, const pk_kite *k, const char *ips, char *out, size_t n) {
  char payload[PK_NAME_MAX + 512], sig[PK_LONG_SIGN_LEN + 1];
  snprintf(payload, sizeof(payload), "%s:%s", k->name, ips);
  if (pk_sign_long(k->secret, payload, sig) != 0) return -1;
  /* The format was checked at init to hold exactly three %s and nothing else. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  int w = snprintf(out, n, m->dyndns_url, k->name, ips, sig);
#pragma GCC diagnostic pop
  return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

/* One update: the request, where it goes, and the answer read back.  The
 * job belongs to its conn from connect on (freed in its close callback);
 * until then to the DNS lookup.  Nothing here blocks the loop. */
typedef struct pk_ddns_job {
  uv_getaddrinfo_t gai;
  pk_mgr *m;
  char kite[PK_NAME_MAX];
  char host[256];
  int port;
  struct sockaddr_storage addrs[PK_MAX_ORIGIN_ADDRS];
  int naddrs;
  char req[1400];
  size_t reqlen;
  char reply[512];
  size_t replen;
} pk_ddns_job;

/* dyndns2 answers: "good <ip>" or "nochg <ip>" is success. */
static void ddns_judge(pk_conn *c) {
  pk_ddns_job *j = c->own.ddns;
  if (!j || !j->reqlen) return;
  j->reqlen = 0; /* judged once */
  const char *body = strstr(j->reply, "\r\n\r\n");
  body = body ? body + 4 : j->reply + j->replen;
  int ok = strncasecmp(body, "good", 4) == 0 || strncasecmp(body, "nochg", 5) == 0;
  if (ok) {
    pk_log(j->m, PK_LOG_MANAGER_INFO, "DDNS update for %s: %.60s", j->kite, body);
  } else {
    pk_count_error(j->m);
    pk_log(j->m, PK_LOG_MANAGER_ERROR, "DDNS update for %s refused: %.80s", j->kite,
           j->replen ? j->reply : "no answer");
  }
}

static void ddns_on_data(pk_conn *c, const char *d, size_t n, pk_block *b) {
  pk_ddns_job *j = c->own.ddns;
  size_t room = sizeof(j->reply) - 1 - j->replen;
  memcpy(j->reply + j->replen, d, n < room ? n : room);
  j->replen += n < room ? n : room;
  j->reply[j->replen] = 0;
  if (n >= room) { /* enough to judge */
    ddns_judge(c);
    pk_conn_close(c);
  }
}

static void ddns_on_eof(pk_conn *c, int status) {
  ddns_judge(c);
  pk_conn_close(c);
}

static void ddns_on_connect(pk_conn *c, int status) {
  pk_ddns_job *j = c->own.ddns;
  if (status < 0 || pk_conn_write(c, j->req, j->reqlen, NULL) != 0) {
    pk_count_error(c->mgr);
    pk_log(c->mgr, PK_LOG_MANAGER_ERROR, "DDNS update for %s failed: %s", j->kite,
           pk_get_error());
    j->reqlen = 0;
    pk_conn_close(c);
  }
}

/* A job is done (judged, failed or never sent): UPDATING_DNS lasts while any
 * job of the last update is in flight, as libpagekite's. */
static void ddns_job_end(pk_ddns_job *j) {
  pk_mgr *m = j->m;
  free(j);
  if (m->ddns_busy > 0) m->ddns_busy--;
  update_status(m);
}

static void ddns_closed(pk_conn *c, int status) {
  if (c->own.ddns) ddns_job_end(c->own.ddns);
  c->own.ddns = NULL;
}

/* Connect (directly, or through the proxy: by name when it resolves names). */
static void ddns_connect(pk_ddns_job *j) {
  pk_mgr *m = j->m;
  pk_conn *c = PK_GET(m->stop_requested) ? NULL : pk_conn_new(m, PK_CK_DDNS);
  if (!c) {
    ddns_job_end(j);
    return;
  }
  c->own.ddns = j;
  c->on_closed = ddns_closed;
  c->on_connect = ddns_on_connect;
  c->on_data = ddns_on_data;
  c->on_eof = ddns_on_eof;
  int rv;
  if (m->nproxy_addrs) {
    char ip[64] = "";
    if (j->naddrs) pk_addr_str((struct sockaddr *)&j->addrs[0], ip, sizeof(ip), NULL);
    rv = pk_conn_connect_via(c, &m->proxy, m->proxy_addrs, m->nproxy_addrs,
                             j->naddrs ? ip : j->host, j->port, NULL, NULL);
  } else {
    rv = pk_conn_connect_any(c, j->addrs, j->naddrs, 0, NULL, NULL);
  }
  if (rv != 0) ddns_on_connect(c, -1);
}

static void ddns_on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  pk_ddns_job *j = req->data;
  pk_frontend tmp; /* fill_addrs' shape */
  memset(&tmp, 0, sizeof(tmp));
  tmp.port = j->port;
  if (status == 0 && res) fill_addrs(&tmp, res, PK_WITH_IPV4 | PK_WITH_IPV6);
  if (res) uv_freeaddrinfo(res);
  j->naddrs = tmp.naddrs < PK_MAX_ORIGIN_ADDRS ? tmp.naddrs : PK_MAX_ORIGIN_ADDRS;
  for (int i = 0; i < j->naddrs; i++) j->addrs[i] = tmp.addrs[i];
  if (!j->naddrs) {
    pk_count_error(j->m);
    pk_log(j->m, PK_LOG_MANAGER_ERROR, "DDNS update for %s: cannot resolve %s: %s", j->kite,
           j->host, status ? uv_strerror(status) : "no address");
    ddns_job_end(j);
    return;
  }
  ddns_connect(j);
}

/* "host:port" or "[v6]:port" (the port optional). */
static int split_host_port(const char *s, char *host, size_t n, int *port) {
  const char *end = s[0] == '[' ? strchr(s, ']') : strrchr(s, ':');
  const char *h = s[0] == '[' ? s + 1 : s;
  if (!end) end = s + strlen(s);
  if ((size_t)(end - h) >= n || end == h) return -1;
  snprintf(host, n, "%.*s", (int)(end - h), h);
  const char *colon = s[0] == '[' ? (end[1] == ':' ? end + 1 : NULL) : (*end == ':' ? end : NULL);
  if (colon) *port = atoi(colon + 1);
  return *port > 0 && *port < 65536 ? 0 : -1;
}

/* "http://host[:port]/path" into the job: where to connect and the GET. */
static int ddns_job_url(pk_ddns_job *j, const char *url) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *hp = url + 7, *path = strchr(hp, '/');
  if (!path) path = "/";
  size_t hl = (size_t)(path - hp);
  if (hl == 0 || hl >= sizeof(j->host)) return -1;
  char hostport[256];
  snprintf(hostport, sizeof(hostport), "%.*s", (int)hl, hp);
  j->port = 80;
  if (hostport[0] == '[' || strchr(hostport, ':')) {
    if (split_host_port(hostport, j->host, sizeof(j->host), &j->port) != 0) return -1;
  } else {
    snprintf(j->host, sizeof(j->host), "%s", hostport);
  }
  pk_wbuf b;
  pk_wbuf_init(&b, j->req, sizeof(j->req));
  pk_wire_http_get_request(&b, path, (pk_slice){hp, hl}, PK_VERSION);
  j->reqlen = b.len;
  return pk_wbuf_ok(&b) ? 0 : -1;
}

static void ddns_start(pk_mgr *m, const pk_kite *k, const char *url) {
  pk_ddns_job *j = calloc(1, sizeof(*j));
  if (!j) return;
  j->m = m;
  snprintf(j->kite, sizeof(j->kite), "%s", k->name);
  if (ddns_job_url(j, url) != 0) {
    pk_log(m, PK_LOG_MANAGER_ERROR, "DDNS: not an http:// URL we can use: %.200s", url);
    free(j);
    return;
  }
  pk_log(m, PK_LOG_MANAGER_INFO, "DDNS update for %s", k->name);
  m->ddns_busy++;
  /* An HTTP or socks5h proxy resolves the name itself. */
  if (m->nproxy_addrs && m->proxy.kind != PK_PROXY_SOCKS5) {
    ddns_connect(j);
    return;
  }
  if (lookup(m, &j->gai, ddns_on_gai, j, j->host, j->port) != 0) ddns_job_end(j);
}

static void ddns_update(pk_mgr *m) {
  if (!m->dyndns_url[0] || m->ddns_done) return;
  for (int i = 0; i < m->nkites; i++) {
    pk_kite *k = &m->kites[i];
    if (k->state != PK_KITE_LIVE || !k->tunnel) continue;
    int dupname = 0;
    for (int j = 0; j < i; j++)
      if (strcasecmp(m->kites[j].name, k->name) == 0) dupname = 1;
    if (dupname) continue;
    char ips[256] = "", url[1024];
    pk_tunnel *t = k->tunnel;
    pk_addr_str((struct sockaddr *)&m->fes[t->fe_idx].addrs[t->addr_idx], ips, sizeof(ips), NULL);
    if (pk_ddns_url(m, k, ips, url, sizeof(url)) == 0) ddns_start(m, k, url);
  }
  m->ddns_done = 1;
  update_status(m);
}

/* ---- changes while running (pagekite_add/remove_kite, _frontend) ---- */
/* Streams point at their kite: after kites moved down over the removed
 * one, each pointer follows its kite; the removed kite's streams finish
 * without one. */
static void kite_moved(pk_mgr *m, pk_kite *gone) {
  pk_kite *end = m->kites + m->nkites;
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind != PK_CK_STREAM || !c->own.kite || c->own.kite < gone || c->own.kite >= end)
      continue;
    c->own.kite = c->own.kite == gone ? NULL : c->own.kite - 1;
  }
}

/* Each queued change is taken off the queue and made to the tables in one
 * hold of the lock, so that the API's view (tables + queue) never has a
 * gap; what it sets off (tunnels closed, events, log lines, which take the
 * lock themselves) comes after. */

/* Under the lock.  The wire has no way to drop one kite of a tunnel: a
 * tunnel that carried only this kite is closed (the relay then drops the
 * kite); one that carries others keeps flying, and the relay keeps routing
 * the removed kite to it until it reconnects: its visitors get our
 * "unavailable" page.  Returns the index the kite had, or -1. */
typedef struct {
  pk_tunnel *t;
  int live, others;
} kite_gone;

static int remove_kite_locked(pk_mgr *m, const pk_kite *key, kite_gone *g) {
  int i = 0;
  while (i < m->nkites && !same_key(&m->kites[i], key)) i++;
  if (i == m->nkites) return -1;
  pk_kite *k = &m->kites[i];
  g->t = k->tunnel;
  g->live = k->state == PK_KITE_LIVE;
  kite_moved(m, k);
  memmove(k, k + 1, (size_t)(m->nkites - i - 1) * sizeof(*k));
  m->nkites--;
  memset(&m->kites[m->nkites], 0, sizeof(*k));
  g->others = 0;
  for (int j = 0; g->t && j < m->nkites; j++) g->others += m->kites[j].tunnel == g->t;
  return i;
}

static void kite_removed(pk_mgr *m, const pk_kite *key, const kite_gone *g) {
  pk_event(m, PK_EVENT_KITE, PK_KITE_STATUS_WAITING, key->proto, key->name, "kite removed");
  if (g->t && g->live) pk_tunnel_kites_changed(g->t, -1);
  if (g->t && !g->others) {
    pk_log(m, PK_LOG_MANAGER_INFO, "Kite %s:%s removed: closing its tunnel", key->proto, key->name);
    pk_tunnel_kill(g->t, "kite removed");
  } else {
    pk_log(m, PK_LOG_MANAGER_INFO, "Kite %s:%s removed%s", key->proto, key->name,
           g->t ? "; its tunnel carries other kites and stays: the relay keeps routing it there "
                  "until the tunnel reconnects (its visitors get 'unavailable')"
                : "");
  }
}

/* Under the lock; the API counted, so there is room. */
static int add_kite_locked(pk_mgr *m, const pk_kite *k) {
  if (m->nkites >= m->max_kites) return -1;
  pk_kite *n = &m->kites[m->nkites];
  *n = *k;
  n->state = PK_KITE_DEAD;
  n->tunnel = NULL;
  pk_random_hex(n->bsalt, PK_TOKEN_LEN);
  return m->nkites++;
}

/* Under the lock.  A removed frontend keeps its slot (tunnels and pings
 * hold its index and address), empty: no addresses, no DNS refresh, no
 * name.  Returns the slot, or -1. */
static int remove_frontend_locked(pk_mgr *m, const pk_frontend *key) {
  for (int f = 0; f < m->nfes; f++) {
    pk_frontend *fe = &m->fes[f];
    if (!fe->host[0] || strcasecmp(fe->host, key->host) != 0 || fe->port != key->port) continue;
    fe->host[0] = 0;
    fe->naddrs = 0;
    fe->update_dns = 0;
    memset(fe->tunnel, 0, sizeof(fe->tunnel));
    memset(fe->signed_next, 0, sizeof(fe->signed_next));
    memset(fe->session_id, 0, sizeof(fe->session_id));
    return f;
  }
  return -1;
}

static void frontend_removed(pk_mgr *m, int f, const pk_frontend *key) {
  for (int i = 0; i < m->ntunnels; i++)
    if (m->tunnels[i].in_use && m->tunnels[i].fe_idx == f)
      pk_tunnel_kill(&m->tunnels[i], "relay removed");
  if (m->fes[f].gai_busy) uv_cancel((uv_req_t *)&m->fes[f].gai);
  pk_log(m, PK_LOG_MANAGER_INFO, "Relay %s:%d removed", key->host, key->port);
}

static int slot_free(pk_mgr *m, int f) {
  if (m->fes[f].host[0] || m->fes[f].gai_busy) return 0;
  for (int i = 0; i < m->ntunnels; i++)
    if (m->tunnels[i].in_use && m->tunnels[i].fe_idx == f) return 0;
  return 1;
}

/* Under the lock; the API counted, so there is room. */
static int add_frontend_locked(pk_mgr *m, const pk_frontend *fe) {
  int f = 0;
  while (f < m->nfes && !slot_free(m, f)) f++;
  if (f == m->nfes && m->nfes >= m->max_frontends) return -1;
  m->fes[f] = *fe;
  for (int a = 0; a < PK_MAX_ADDRS; a++) m->fes[f].ping_ms[a] = -1;
  if (f == m->nfes) m->nfes++;
  return f;
}

/* Kites added while running are asked for on the open tunnels (AddKites);
 * a tunnel to a relay without AddKites is made again with them. */
static void request_new_kites(pk_mgr *m, const char *added) {
  pk_session_kite *ks = malloc(PK_MAX_KITES_PER_TUNNEL * sizeof(*ks));
  if (!ks) return;
  int n = session_kites(m, ks, 0);
  for (int i = 0; i < m->ntunnels; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!t->in_use || t->dying || t->sess.state != PK_SESSION_OPEN) continue;
    if (!t->sess.peer_addkites) {
      pk_tunnel_kill(t, "reconnecting: the relay cannot add kites to a live tunnel");
      m->next_attempt = 0;
    } else {
      pk_session_request(&t->sess, ks, n, added);
    }
  }
  free(ks);
}

void pk_connector_reconfigure(pk_mgr *m) {
  char added[PK_MAX_KITES_PER_TUNNEL] = {0};
  int nadded = 0;
  for (;;) {
    uv_mutex_lock(&m->lock);
    pk_cfg_op *op = m->ops;
    if (op) {
      m->ops = op->next;
      if (!m->ops) m->ops_tail = NULL;
    }
    int at = -1;
    kite_gone g = {0};
    if (op && op->kind == PK_OP_ADD_KITE) at = add_kite_locked(m, &op->kite);
    if (op && op->kind == PK_OP_DEL_KITE) at = remove_kite_locked(m, &op->kite, &g);
    if (op && op->kind == PK_OP_ADD_FE) at = add_frontend_locked(m, &op->fe);
    if (op && op->kind == PK_OP_DEL_FE) at = remove_frontend_locked(m, &op->fe);
    uv_mutex_unlock(&m->lock);
    if (!op) break;
    if (at < 0) {
      pk_log(m, PK_LOG_MANAGER_ERROR, "A queued change was not applied (no room, or gone)");
    } else if (op->kind == PK_OP_ADD_KITE) {
      if (at < PK_MAX_KITES_PER_TUNNEL) added[at] = 1, nadded++;
    } else if (op->kind == PK_OP_DEL_KITE) {
      /* the flags follow the kites down */
      memmove(added + at, added + at + 1, sizeof(added) - (size_t)at - 1);
      added[sizeof(added) - 1] = 0;
      kite_removed(m, &op->kite, &g);
    } else if (op->kind == PK_OP_DEL_FE) {
      frontend_removed(m, at, &op->fe);
    }
    free(op);
  }
  if (nadded) request_new_kites(m, added);
  m->next_attempt = 0; /* new kites or relays: housekeeping connects at once if needed */
  kites_changed(m);
  pk_counters_publish(m);
  pk_manager_tick_soon(m);
  pk_notify(m);
}

/* ---- lifecycle ---- */
static int connector_start(pk_mgr *m) {
  for (int i = 0; i < m->nkites; i++) pk_random_hex(m->kites[i].bsalt, PK_TOKEN_LEN);
  int total = 0;
  for (int f = 0; f < m->nfes; f++) total += m->fes[f].naddrs;
  /* Through a proxy relays are not pinged (the proxy would have to carry
   * every ping): they are tried in order. */
  if ((total > 1 || PK_GET(m->fake_ping)) && !m->nproxy_addrs)
    for (int f = 0; f < m->nfes; f++)
      for (int a = 0; a < m->fes[f].naddrs; a++) ping_relay(m, f, a);
  m->next_attempt = pk_now_ms(m) + (total > 1 ? 600 : 0);
  pk_set_status(m, PK_STATUS_CONNECTING);
  return 0;
}

/* Close pings that never answered. */
static void reap_pings(pk_mgr *m, uint64_t now) {
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind == PK_CK_PING && !(c->flags & PK_CF_CLOSING) &&
        now - c->created > PK_PING_TIMEOUT_MS) {
      pk_frontend *fe = c->own.fe;
      if (ping_idx(c, fe) >= 0) fe->ping_ms[ping_idx(c, fe)] = -2;
      pk_conn_close(c);
    }
  }
}

/* A tunnel on which nothing flies (duplicate, rejected, never answered) is
 * dropped; the reconnect logic tries again with backoff. */
static void drop_idle_tunnels(pk_mgr *m, uint64_t now) {
  for (int i = 0; i < m->ntunnels; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!t->in_use || t->dying || t->nkites_live > 0 || now - t->created <= 3000) continue;
    int dup = 0;
    for (int k = 0; k < m->nkites; k++) dup |= m->kites[k].state == PK_KITE_DUPLICATE;
    pk_tunnel_kill(t, dup ? "kite is a duplicate, will retry" : "no kites flying");
    if (dup) m->next_attempt = now + 2000;
  }
}

/* Kites not live anywhere: a new tunnel (or spares). */
/* Kites a relay refused are asked for again on the live tunnel (AddKites)
 * once their back-off has passed, instead of waiting for a new tunnel. */
static void retry_rejected(pk_mgr *m, uint64_t now) {
  if (!m->rejected || now < m->retry_rejected_at) return;
  pk_session_kite *ks = malloc(PK_MAX_KITES_PER_TUNNEL * sizeof(*ks));
  char want[PK_MAX_KITES_PER_TUNNEL] = {0};
  int n = ks ? session_kites(m, ks, 0) : 0, asked = 0;
  for (int i = 0; i < n; i++) want[i] = m->kites[i].state == PK_KITE_REJECTED;
  for (int i = 0; i < m->ntunnels && ks; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!t->in_use || t->dying || t->sess.state != PK_SESSION_OPEN) continue;
    if (pk_session_request(&t->sess, ks, n, want) == 0) asked = 1;
  }
  free(ks);
  if (!asked) return; /* no tunnel takes AddKites: the reconnect path retries */
  pk_log(m, PK_LOG_MANAGER_INFO, "Asking again for refused kites");
  m->rejected = 0; /* counted again if the relay still refuses */
  m->retry_rejected_at = now + reject_backoff_ms(m);
}

static void reconnect(pk_mgr *m, uint64_t now) {
  retry_rejected(m, now);
  if (now < m->next_attempt) return;
  int dead = 0;
  for (int i = 0; i < m->nkites; i++)
    if (m->kites[i].state != PK_KITE_LIVE) dead++;
  if (dead && live_tunnels(m) == 0) {
    for (int i = 0; i < m->nkites; i++)
      if (m->kites[i].state != PK_KITE_LIVE) m->kites[i].state = PK_KITE_DEAD;
    choose_and_connect(m);
    m->next_attempt = now + 250;
  } else if (PK_GET(m->spares) > 0) {
    choose_and_connect(m);
  }
}

/* Migration: a clearly better relay than the one we fly on. */
static void maybe_migrate(pk_mgr *m) {
  for (int f = 0; f < m->nfes; f++)
    for (int a = 0; a < m->fes[f].naddrs; a++) {
      pk_tunnel *t = m->fes[f].tunnel[a];
      if (!t || t->sess.state != PK_SESSION_OPEN || PK_GET(m->spares) > 0) continue;
      int mine = rank_of(m, f, a);
      for (int g = 0; g < m->nfes; g++)
        for (int b = 0; b < m->fes[g].naddrs; b++) {
          int r = rank_of(m, g, b);
          if (m->fes[g].tunnel[b] || r + 50 >= mine / 2 || m->fes[g].ping_ms[b] <= 0 ||
              m->fes[f].ping_ms[a] <= 0)
            continue;
          pk_log(m, PK_LOG_MANAGER_INFO, "Migrating to faster relay %s (%d ms < %d ms)",
                 m->fes[g].host, r, mine);
          pk_tunnel_kill(t, "migrating");
          m->next_attempt = 0;
          return;
        }
    }
}

static void connector_housekeep(pk_mgr *m) {
  if (m->nkites == 0 || m->nfes == 0) return;
  uint64_t now = pk_now_ms(m);
  reap_pings(m, now);
  int live = 0;
  for (int i = 0; i < m->nkites; i++) live += m->kites[i].state == PK_KITE_LIVE;
  if (live == m->nkites) {
    m->outage_started = 0;
    ddns_update(m);
  } else {
    m->ddns_done = 0;
  }
  drop_idle_tunnels(m, now);
  int total = 0;
  for (int f = 0; f < m->nfes; f++) total += m->fes[f].naddrs;
  if (total == 0) {
    if (now - m->last_hk >= 2000) {
      refresh_dns(m);
      m->last_hk = now;
    }
    m->fail_streak = m->fail_streak < 6 ? 6 : m->fail_streak;
    update_status(m);
    return;
  }
  reconnect(m, now);
  /* Periodic DNS refresh and re-ranking. */
  int hk_max = PK_GET(m->hk_max);
  uint64_t hk_ms = (uint64_t)(hk_max > 0 ? hk_max : 60) * 1000;
  if (now - m->last_hk >= hk_ms) {
    m->last_hk = now;
    refresh_dns(m);
    /* Through a proxy relays are not pinged (the proxy would have to carry
   * every ping): they are tried in order. */
  if ((total > 1 || PK_GET(m->fake_ping)) && !m->nproxy_addrs)
      for (int f = 0; f < m->nfes; f++)
        for (int a = 0; a < m->fes[f].naddrs; a++)
          if (!m->fes[f].tunnel[a]) ping_relay(m, f, a);
  }
  maybe_migrate(m);
}

static void connector_stop(pk_mgr *m) {
  for (int f = 0; f < m->nfes; f++)
    if (m->fes[f].gai_busy) uv_cancel((uv_req_t *)&m->fes[f].gai);
}

static int connector_bind(pk_mgr *m) { return 0; }

static const char *connector_peer_name(pk_tunnel *t) {
  return t->fe_idx >= 0 ? t->mgr->fes[t->fe_idx].host : "";
}

const pk_role_ops pk_connector_role = {.tunnel_name = "to relay",
                                       .start = connector_start,
                                       .bind = connector_bind,
                                       .stop = connector_stop,
                                       .housekeep = connector_housekeep,
                                       .on_new_stream = new_stream,
                                       .kite_answer = connector_kite_answer,
                                       .resign = connector_resign,
                                       .opened = connector_opened,
                                       .tunnel_closed = connector_tunnel_closed,
                                       .reconfigure = pk_connector_reconfigure,
                                       .peer_name = connector_peer_name};

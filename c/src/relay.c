/* relay.c - the front-end role: listeners, routing of incoming connections
 * (HTTP Host, TLS by SNI: passed through or terminated, CONNECT host:port)
 * through the kite registry (registry.c), and the relay's policy for the
 * tunnel handshake (which secret, duplicates, quota; handshake.c runs it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authdns.h"
#include "internal.h"

#define PK_CLASSIFY_TIMEOUT_MS 10000
static const char k_tls_alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31};

static int proto_listed(const char *list, const char *proto) {
  return pk_domain_proto_listed(list, proto);
}

static int is_our_port(pk_mgr *m, int port) {
  for (int i = 0; i < m->nlisteners; i++)
    if (m->listeners[i].port == port) return 1;
  for (int i = 0; i < m->nport_alias; i++) /* visitors on its listener come as port */
    if (m->port_alias[i][1] == port && m->port_alias[i][0] != port) return 1;
  return 0;
}

/* A kite's port: any listening port (or an alias's), for raw kites also
 * pagekite_set_relay_raw_ports's (any, with "virtual"); 0 means any port,
 * except for raw kites, which name theirs. */
static int kite_port_ok(pk_mgr *m, const char *proto, int port) {
  int raw = strcmp(proto, "raw") == 0;
  if (port == 0) return !raw;
  if (port < 0 || port > 65535) return 0;
  return is_our_port(m, port) || (raw && pk_relay_raw_port_ok(m, port));
}

/* The kite registered as exactly (proto, name, port), else as (proto, name,
 * any port): no wildcards (kite registration, CONNECT).  With duplicates
 * allowed, streams go to the matching tunnels in turn. */
static pk_relay_kite *find_rkite(pk_mgr *m, const char *proto, const char *name, int port) {
  pk_relay_kite *k = pk_reg_get(&m->rkites, proto, port, name, NULL, m->relay_dups);
  return k || !port ? k : pk_reg_get(&m->rkites, proto, 0, name, NULL, m->relay_dups);
}

/* The kite that serves a client's request for name on port, trying protos
 * in order: exact names, wildcards, port-specific kites and the "unknown"
 * catch-all, with pagekite.py's precedence (registry.c: pk_reg_route). */
static pk_relay_kite *route_kite(pk_mgr *m, const char *const *protos, int nprotos,
                                 const char *name, int port) {
  return pk_reg_route(&m->rkites, protos, nprotos, port, name, m->relay_dups);
}

static pk_relay_kite *find_rkite_on(pk_mgr *m, const char *proto, const char *name, int port,
                                    pk_tunnel *t) {
  return pk_reg_get(&m->rkites, proto, port, name, t, 0);
}

static void kite_down(void *ctx, const pk_relay_kite *k) {
  pk_event(ctx, PK_EVENT_KITE, PK_KITE_STATUS_WAITING, k->proto, k->name, "tunnel closed");
  pk_log(ctx, PK_LOG_MANAGER_INFO, "Kite %s:%s is down", k->proto, k->name);
}

static void unregister_tunnel(pk_mgr *m, pk_tunnel *t) {
  pk_reg_remove_list(&m->rkites, &t->rkites, kite_down, m);
}

static void relay_tunnel_closed(pk_tunnel *t) {
  pk_authq_forget(t->mgr, t); /* its lookups answer nobody now */
  unregister_tunnel(t->mgr, t);
}

/* ---- authentication of kite requests: the policy (the session runs
 * kiteauth.c's checks, handshake.c) ---- */
/* Which secret signs a kite (the most specific --domain), and whether its
 * port and protocol are served here.  ctx: the tunnel.  The domain table
 * may change from any thread: the secret is copied out under the lock,
 * and its fingerprint kept for kite_claim (the kite then flies as long as
 * the table names that same secret: pk_relay_recheck_kites). */
static const char *kite_secret(void *ctx, const pk_kite_req *k, const char **reason) {
  pk_tunnel *t = ctx;
  pk_mgr *m = t->mgr;
  const pk_relay_domain *d = NULL;
  t->auth_fp = 0;
  if (!proto_listed("http,https,raw,websocket", k->proto)) {
    *reason = "proto";
    return NULL;
  }
  if (!kite_port_ok(m, k->proto, k->port)) {
    *reason = "port";
    return NULL;
  }
  uv_mutex_lock(&m->lock);
  /* "http-8080" entries first, then "http" ones, as pagekite.py. */
  d = pk_domains_find(&m->domains, k->proto, k->protoport, k->port, k->name);
  if (d) snprintf(m->auth_secret, sizeof(m->auth_secret), "%s", d->secret);
  uv_mutex_unlock(&m->lock);
  if (!d) {
    /* No static secret: an --authdomain may vouch for it (authq.c). */
    *reason = pk_authq_covers(m, k) ? pk_auth_remote : "unknown";
    return NULL;
  }
  t->auth_fp = pk_domains_fingerprint(m->relay_secret, m->auth_secret);
  return m->auth_secret;
}

/* X-PageKite-Replace drops the connector's old tunnel, but only for a kite
 * this request just proved with a fresh signature. */
static pk_relay_kite *replace_old(pk_tunnel *t, const pk_kite_req *k, pk_relay_kite *rk) {
  pk_tunnel *old = rk ? rk->tunnel : NULL;
  pk_slice rep = t->replace;
  if (!old || old == t || rk->port != k->port || !rep.p || !old->session_id[0] ||
      rep.n != strlen(old->session_id) || !pk_consttime_eq(rep.p, old->session_id, rep.n))
    return rk;
  pk_tunnel_kill(old, "replaced by a new tunnel");
  return find_rkite(t->mgr, k->proto, k->name, k->port);
}

/* Registers a kite that passed every check on this tunnel. */
static pk_auth_verdict kite_claim(void *ctx, const pk_kite_req *k, const char **reason) {
  pk_tunnel *t = ctx;
  pk_mgr *m = t->mgr;
  pk_relay_kite *rk = find_rkite_on(m, k->proto, k->name, k->port, t);
  if (!rk) rk = replace_old(t, k, find_rkite(m, k->proto, k->name, k->port));
  if (rk && rk->port == k->port && rk->tunnel != t && !m->relay_dups) {
    pk_tunnel_ping(rk->tunnel); /* if the old tunnel is dead, find out soon */
    return PK_AUTH_DUPLICATE;
  }
  if (rk && rk->tunnel == t) {
    rk->tag = t->auth_fp; /* proved again: with the secret required now */
    return PK_AUTH_OK;
  }
  /* The registry holds m->max_rkites: when full, it takes no more. */
  if (t->nkites_live >= PK_MAX_KITES_PER_TUNNEL ||
      !(rk = pk_reg_add(&m->rkites, &t->rkites, t, k->proto, k->port, k->name))) {
    *reason = "quota";
    return PK_AUTH_INVALID;
  }
  rk->tag = t->auth_fp;
  pk_tunnel_kites_changed(t, 1);
  pk_conn_unauth_clear(t->conn); /* it proved a kite: no longer counted as unknown */
  return PK_AUTH_OK;
}

/* The tag of a kite the --authdomain authority vouched for: it has no
 * secret here; live reconfiguration keeps it while no --domain covers it. */
#define PK_AUTH_FP_REMOTE UINT64_MAX

/* A kite for the --authdomain authority (its challenge checked): asked off
 * the loop; the answer comes back through pk_relay_auth_answer. */
static pk_auth_verdict kite_remote(void *ctx, const pk_kite_req *k, const char **reason) {
  pk_tunnel *t = ctx;
  t->auth_fp = PK_AUTH_FP_REMOTE; /* claimed now when it fails open */
  return pk_authq_ask(t, k, reason);
}

/* The session's handshake asks for the policy of one request. */
static void relay_auth_policy(pk_tunnel *t, pk_slice replace, pk_auth_relay *a) {
  pk_mgr *m = t->mgr;
  t->replace = replace; /* valid while the session authenticates this request */
  a->relay_secret = m->relay_secret;
  a->replay = &m->replay;
  a->now = (long long)time(NULL);
  a->ctx = t;
  a->secret = kite_secret;
  a->claim = kite_claim;
  a->remote = kite_remote;
}

static void relay_kite_verdict(pk_tunnel *t, const pk_kite_req *k, pk_auth_verdict v,
                               const char *why) {
  pk_mgr *m = t->mgr;
  if (v == PK_AUTH_OK) {
    if (m->nrl_rules) {
      const char *names[PK_ACL_MAX_RULES];
      for (int i = 0; i < m->nrl_rules; i++) names[i] = m->rl_rules[i].name;
      int i = pk_ratelimit_rule_for(names, m->nrl_rules, k->name);
      if (i >= 0 && pk_ratelimit_set(&t->ratelimit, m->rl_rules[i].ips, m->rl_rules[i].secs) != 0) {
        pk_log(m, PK_LOG_MANAGER_ERROR, "Kite %s: no memory for its rate limit", k->name);
        pk_tunnel_kill(t, "out of memory for a rate limit"); /* never unlimited */
        return;
      }
    }
    pk_event(m, PK_EVENT_KITE, PK_KITE_STATUS_FLYING, k->proto, k->name, NULL);
    pk_log(m, PK_LOG_MANAGER_INFO, "Kite %s:%s is live", k->protoport, k->name);
  } else if (v == PK_AUTH_INVALID) {
    pk_count_reject(m, pk_reject_from_kite_why(why));
    pk_log(m, PK_LOG_MANAGER_ERROR, "Rejected kite %s:%s (%s)", k->protoport, k->name, why ? why : "?");
  } else if (v == PK_AUTH_DUPLICATE) {
    pk_log(m, PK_LOG_MANAGER_INFO, "Duplicate kite %s:%s refused", k->protoport, k->name);
  }
}

/* Data for a stream we do not have (any more): tell the connector. */
static void relay_on_new_stream(pk_tunnel *t, const pk_chunk *ch) {
  if (ch->sid >= 0 && !ch->eof) pk_tunnel_send_eof(t, ch->sid, "WR");
}

/* Sec-WebSocket-Accept for a client key (RFC 6455, section 4.2.2). */
static void ws_accept(pk_slice key, char out[64]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  out[0] = 0;
  if (!ctx) return;
  if (EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 && EVP_DigestUpdate(ctx, key.p, key.n) == 1 &&
      EVP_DigestUpdate(ctx, guid, sizeof(guid) - 1) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1)
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
  EVP_MD_CTX_free(ctx);
}

/* Tunnels that have not authenticated a kite yet may hold at most a quarter
 * of the tunnel slots, so a flood of them never locks real connectors out.
 * A newcomer is let in by ending the oldest such tunnel of the source that
 * holds the most unknown connections: a real connector proves its kites
 * within a round trip or two, an idle one never does. */
static void refuse_status(pk_conn *c, int code, const char *reason, int why);

static int is_unauth_tunnel(const pk_tunnel *t) {
  return t->in_use && !t->dying && t->nkites_live == 0;
}

static int make_room_for_tunnel(pk_mgr *m) {
  int n = 0;
  pk_tunnel *victim = NULL;
  uint32_t worst = 0;
  for (int i = 0; i < m->ntunnels; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!is_unauth_tunnel(t)) continue;
    n++;
    uint32_t load = pk_iptab_count(&m->unauth_ips, &t->conn->ipkey);
    if (!victim || load > worst || (load == worst && t->created < victim->created))
      victim = t, worst = load;
  }
  if (n < m->ntunnels / 4 + 4) return 0;
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Evicting a tunnel without a kite from %s", victim->conn->rip);
  pk_tunnel_kill(victim, "evicted: no kite authenticated");
  return 0;
}

static pk_tunnel *admit_tunnel(pk_conn *c) {
  pk_mgr *m = c->mgr;
  make_room_for_tunnel(m);
  pk_tunnel *t = pk_tunnel_new(m, c);
  if (!t) {
    char busy[64];
    pk_wbuf b;
    pk_wbuf_init(&b, busy, sizeof(busy));
    pk_wire_http_status(&b, "HTTP/1.0", 503, "Unavailable");
    pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel from %s refused: %s", c->rip, pk_get_error());
    pk_count_reject(m, PK_REJECT_LIMIT);
    pk_conn_write(c, busy, b.len, NULL);
    pk_conn_finish(c);
  }
  return t;
}

static void new_session_id(pk_tunnel *t) {
  pk_mgr *m = t->mgr;
  char sess_src[64], hex[41];
  snprintf(sess_src, sizeof(sess_src), "%llx:%d:%p", (unsigned long long)time(NULL), t->conn->id,
           (void *)t);
  const char *parts[2] = {sess_src, m->relay_secret};
  pk_sha1hex_parts(parts, 2, hex);
  snprintf(t->session_id, sizeof(t->session_id), "%llx:%s", (unsigned long long)time(NULL), hex);
}

/* The relay's ports (as their aliases stand for), for X-PageKite-Ports. */
static size_t listener_ports(pk_mgr *m, char *out, size_t n) {
  size_t po = 0;
  out[0] = 0;
  for (int i = 0; i < m->nlisteners && po + 16 < n; i++)
    po += (size_t)snprintf(out + po, n - po, "%s%d", i ? ", " : "",
                           pk_relay_port_alias(m, m->listeners[i].port));
  return po;
}

/* X-PageKite-Raw-Ports: the listening ports, the raw ports, "virtual". */
static void raw_ports(pk_mgr *m, char *out, size_t n) {
  size_t po = listener_ports(m, out, n);
  for (int p = 1; p < 65536 && po + 16 < n; p++)
    if ((m->raw_ports[p / 8] & (1u << (p % 8))) && !is_our_port(m, p))
      po += (size_t)snprintf(out + po, n - po, "%s%d", po ? ", " : "", p);
  if (m->raw_virtual && po + 16 < n) snprintf(out + po, n - po, "%svirtual", po ? ", " : "");
}

/* A connector asks for a tunnel: "CONNECT PageKite:1", or the websocket form
 * (GET /~:PageKite:~/... with Upgrade: websocket) when wskey.p is set.  The
 * session authenticates the kites and answers (handshake.c).  The conn stays
 * counted as unknown until a kite is authenticated. */
/* --tunnel_acl and require_tls, before anything is parsed: a refused
 * connector gets "403 Forbidden" (as pagekite.py's tunnel ACL) and the
 * log says which rule. */
static int tunnel_refused(pk_conn *c) {
  pk_mgr *m = c->mgr;
  int rule, why = PK_REJECT_ACL;
  if (!pk_acl_check(&m->tunnel_acl, c->rip, &rule)) {
    pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel from %s rejected by %s tunnel ACL%s%s", c->rip,
           rule < 0 ? "the default" : "the", rule < 0 ? "" : ": ",
           rule < 0 ? "" : m->tunnel_acl.rules[rule].pattern);
  } else if (m->require_tls && !c->ssl) {
    pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel from %s refused: not in TLS (require_tls)", c->rip);
    why = PK_REJECT_TLS_REQUIRED;
  } else {
    return 0;
  }
  refuse_status(c, 403, "Forbidden", why);
  return 1;
}

/* What every connector is told about this relay; motd: room for a copy. */
static void relay_hello(pk_tunnel *t, pk_relay_hello *hello, char *motd, size_t n) {
  pk_mgr *m = t->mgr;
  uv_mutex_lock(&m->lock);
  snprintf(motd, n, "%s", m->motd);
  uv_mutex_unlock(&m->lock);
  pk_relay_hello h = {m->hello_ports, m->hello_raw, t->session_id, motd};
  *hello = h;
}

/* The reply went out: the tunnel is open, and the bytes that came with the
 * head (in the conn's buffer from head_len on) are its first frames. */
static void handshake_done(pk_tunnel *t, const pk_session_counts *r, size_t head_len) {
  pk_mgr *m = t->mgr;
  pk_conn *c = t->conn;
  if (!r->ok && !r->challenged && !t->sess.peer_addkites) {
    pk_tunnel_finish(t, "nothing to fly"); /* answer, then hang up */
    return;
  }
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel from %s: %d kite(s) live, %d challenged", c->rip, r->ok,
         r->challenged);
  pk_tunnel_opened(t);
  size_t rest = c->inbuf && c->inlen > head_len ? c->inlen - head_len : 0;
  pk_block *ib = c->inbuf;
  c->inbuf = NULL;
  c->inlen = 0;
  if (rest) pk_tunnel_feed(t, ib->data + head_len, rest);
  if (ib) pk_block_unref(m, ib);
  pk_notify(m);
}

static void tunnel_handshake(pk_conn *c, pk_http_head *h, size_t head_len, pk_slice wskey) {
  pk_mgr *m = c->mgr;
  if (tunnel_refused(c)) return;
  pk_tunnel *t = admit_tunnel(c);
  if (!t) return;
  char acc[64];
  if (wskey.p) ws_accept(wskey, acc);
  new_session_id(t);
  char motd[sizeof(m->motd)];
  pk_relay_hello hello;
  relay_hello(t, &hello, motd, sizeof(motd));
  pk_session_counts r;
  if (pk_session_accept(&t->sess, h, wskey.p ? acc : NULL, &hello, &r) != 0) {
    pk_tunnel_kill(t, pk_session_why(&t->sess));
    return;
  }
  if (t->sess.state == PK_SESSION_HANDSHAKE && r.pending) {
    /* The reply waits for the --authdomain authority: nothing more is read
     * until it goes out (pk_relay_auth_answer). */
    t->hs_head_len = head_len;
    pk_conn_read_stop(c);
    pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel from %s: %d kite(s) waiting for the auth domain",
           c->rip, r.pending);
    return;
  }
  handshake_done(t, &r, head_len);
}

void pk_relay_auth_answer(pk_tunnel *t, const pk_kite_req *k, int ok, const char *reason,
                          const char *extra, size_t extra_n, int ipc, int ips) {
  pk_mgr *m = t->mgr;
  if (!t->in_use || t->dying) return;
  char motd[sizeof(m->motd)];
  pk_relay_hello hello;
  relay_hello(t, &hello, motd, sizeof(motd));
  pk_session_counts r;
  t->auth_fp = PK_AUTH_FP_REMOTE;
  int rv = pk_session_auth_done(&t->sess, k, ok, reason, extra, extra_n, &hello, &r);
  if (rv < 0) {
    pk_tunnel_kill(t, pk_session_why(&t->sess));
    return;
  }
  /* The authority's visitor rate limit for this tunnel (pagekite.py's
   * ips_per_sec), once the kite flies here. */
  if (ok && ipc > 0 && ips > 0 && find_rkite_on(m, k->proto, k->name, k->port, t) &&
      pk_ratelimit_set(&t->ratelimit, ipc, ips) != 0) {
    pk_tunnel_kill(t, "out of memory for a rate limit"); /* never unlimited */
    return;
  }
  if (rv == 1) {
    if (t->conn) pk_conn_read_start(t->conn);
    handshake_done(t, &r, t->hs_head_len);
  }
  pk_notify(m);
}

/* ---- client streams ---- */
static void start_stream(pk_conn *c, pk_relay_kite *k, const char *proto, const char *host,
                         int port, const char *data, size_t n) {
  pk_mgr *m = c->mgr;
  pk_tunnel *t = k->tunnel;
  long long sid = t->next_sid++;
  char hdr[768];
  pk_wbuf b;
  pk_wbuf_init(&b, hdr, sizeof(hdr));
  pk_wire_stream_open(&b, sid, proto, host, port, c->rip, c->rport, c->rtls);
  pk_conn_unauth_clear(c);
  if (!k->kstat) k->kstat = pk_kstat_get(m, k->proto, k->name, k->port); /* once per kite */
  c->kstat = k->kstat;
  pk_stream_attach(c, t, sid);
  c->on_connect = NULL;
  int rv = pk_wbuf_ok(&b) ? pk_tunnel_send_data(t, c, hdr, b.len, data, n, NULL) : -1;
  /* The first bytes were copied into the tunnel: idle streams hold no buffer. */
  if (c->inbuf) pk_block_unref(m, c->inbuf);
  c->inbuf = NULL;
  c->inlen = 0;
  if (rv != 0) {
    pk_stream_kill(c, 0);
    return;
  }
  c->sent += n;
  pk_log(m, PK_LOG_BE_CONNS, "Stream %lld: %s://%s:%d from %s", sid, proto, host, port, c->rip);
}

/* An error page; a 503 for a kite that is not here frames the rejection URL
 * (pagekite_set_rejection_url, pagekite.py's --errorurl) when one is set. */
static void reject_http(pk_conn *c, int code, const char *status, const char *host, int why) {
  pk_mgr *m = c->mgr;
  char resp[3000], url[sizeof(m->rejection_url)];
  uv_mutex_lock(&m->lock);
  snprintf(url, sizeof(url), "%s", code == 503 && *host ? m->rejection_url : "");
  uv_mutex_unlock(&m->lock);
  pk_wbuf b;
  pk_wbuf_init(&b, resp, sizeof(resp));
  if (url[0])
    pk_wire_rejection_page(&b, url, "FE", m->app_id, "http", host, "");
  else
    pk_wire_http_page(&b, code, status, "X-PageKite-Status: unavailable\r\n", "Kite",
                      "is not available on this PageKite relay.", host);
  pk_count_reject(m, why);
  if (pk_wbuf_ok(&b)) pk_conn_write(c, resp, b.len, NULL);
  pk_conn_finish(c);
}

/* A short refusal ("HTTP/1.0 503 Unavailable") before hanging up. */
static void refuse_status(pk_conn *c, int code, const char *reason, int why) {
  char resp[128];
  pk_wbuf b;
  pk_wbuf_init(&b, resp, sizeof(resp));
  pk_wire_http_status(&b, "HTTP/1.0", code, reason);
  pk_count_reject(c->mgr, why);
  pk_conn_write(c, resp, b.len, NULL);
  pk_conn_finish(c);
}

static int listener_port(pk_conn *c) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), port = 0;
  char ip[64];
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
    pk_addr_str((struct sockaddr *)&ss, ip, sizeof(ip), &port);
  return pk_relay_port_alias(c->mgr, port);
}

static void host_only(pk_slice hv, char *out, size_t n) {
  size_t k = hv.n < n - 1 ? hv.n : n - 1;
  memcpy(out, hv.p, k);
  out[k] = 0;
  char *colon = strrchr(out, ':');
  if (colon && !strchr(out, ']')) *colon = 0;
  for (char *p = out; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
}

static void classify(pk_conn *c, const char *data, size_t n, pk_block *blk);

/* --client_acl: 1 when c's address is refused (logged; the caller answers
 * as the protocol allows). */
static int client_refused(pk_conn *c) {
  pk_mgr *m = c->mgr;
  int rule;
  if (pk_acl_check(&m->client_acl, c->rip, &rule)) return 0;
  pk_log(m, PK_LOG_BE_CONNS, "Client %s rejected by %s client ACL%s%s", c->rip,
         rule < 0 ? "the default" : "the", rule < 0 ? "" : ": ",
         rule < 0 ? "" : m->client_acl.rules[rule].pattern);
  return 1;
}

/* --ratelimit_ips: 1 when k's tunnel has seen too many other clients
 * lately (logged; the caller answers).  HTTP clients are told apart by
 * address, User-Agent and Accept-Language, as pagekite.py does. */
static int rate_limited(pk_conn *c, pk_relay_kite *k, const char *host, const pk_http_head *h) {
  pk_tunnel *t = k->tunnel;
  if (!t || !t->ratelimit.slots) return 0;
  char ua[256] = "", al[128] = "";
  if (h) {
    pk_slice v = pk_wire_http_get(h, "User-Agent", 0);
    if (v.p) snprintf(ua, sizeof(ua), "%.*s", (int)v.n, v.p);
    v = pk_wire_http_get(h, "Accept-Language", 0);
    if (v.p) snprintf(al, sizeof(al), "%.*s", (int)v.n, v.p);
  }
  const char *parts[3] = {c->rip, ua, al};
  if (pk_ratelimit_admit(&t->ratelimit, pk_ratelimit_key(parts, 3), pk_now_ms(c->mgr))) return 0;
  pk_log(c->mgr, PK_LOG_BE_CONNS, "Client %s rejected for %s: ips_per_sec %d/%ds", c->rip, host,
         t->ratelimit.ips, t->ratelimit.secs);
  return 1;
}

static int stream_allowed(pk_conn *c, const char *proto, const char *host, int port) {
  pk_stream_info info = {1, proto, host, port, c->rip, c->rport, NULL, 0};
  pk_hook_result hr;
  memset(&hr, 0, sizeof(hr));
  return pk_plugins_on_stream(c->mgr, &info, &hr) != PK_HOOK_REJECT;
}

static void tls_refuse(pk_conn *c, int reason) {
  pk_count_reject(c->mgr, reason);
  pk_conn_write(c, k_tls_alert, sizeof(k_tls_alert), NULL);
  pk_conn_finish(c);
}

/* TLS for name (from SNI, CONNECT name:443, or the --tls_default name):
 * passed through to its https kite, else terminated here with name's
 * certificate (then what is inside is classified), else refused with an
 * alert, as pagekite.py's ProcessTls.  data: the first bytes of TLS. */
static void route_tls(pk_conn *c, const char *name, int port, const char *data, size_t n) {
  pk_mgr *m = c->mgr;
  static const char *const https[] = {"https"};
  pk_relay_kite *k = *name ? route_kite(m, https, 1, name, port) : NULL;
  if (k && k->tunnel) {
    if (client_refused(c))
      tls_refuse(c, PK_REJECT_ACL);
    else if (rate_limited(c, k, name, NULL))
      tls_refuse(c, PK_REJECT_RATELIMIT);
    else if (!stream_allowed(c, "https", name, port))
      tls_refuse(c, PK_REJECT_PLUGIN);
    else
      start_stream(c, k, "https", name, port, data, n);
    return;
  }
  /* Our own reference: the certificate may be replaced from another thread
   * meanwhile; the session keeps the one it started with (SSL_new). */
  SSL_CTX *ctx = c->ssl ? NULL : pk_relay_tls_ctx_ref(m, name); /* never TLS in TLS */
  if (!ctx) {
    pk_log(m, PK_LOG_BE_CONNS, "No TLS kite or certificate for %s", *name ? name : "(no SNI)");
    tls_refuse(c, PK_REJECT_NO_KITE);
    return;
  }
  pk_block *ib = c->inbuf;
  c->inbuf = NULL;
  c->inlen = 0;
  c->rtls = 1;
  int rv = pk_conn_start_tls_server(c, ctx, data, n);
  SSL_CTX_free(ctx);
  if (rv != 0) pk_conn_close(c);
  pk_block_unref(m, ib);
}

/* CONNECT host:port -> a raw kite; on 443 TLS for host (an https kite, or
 * terminated with host's certificate: pagekite.py connectors with
 * --fe_certname reach a relay so). */
static void classify_connect(pk_conn *c, const pk_http_head *h, int port) {
  pk_mgr *m = c->mgr;
  char target[PK_NAME_MAX];
  host_only(h->path, target, sizeof(target));
  if (client_refused(c)) {
    refuse_status(c, 403, "Forbidden", PK_REJECT_ACL);
    return;
  }
  const char *pc = memrchr(h->path.p, ':', h->path.n);
  int cport = pc ? atoi(pc + 1) : 0;
  pk_relay_kite *k = find_rkite(m, "raw", target, cport);
  int tls = !k && cport == 443 && (find_rkite(m, "https", target, port) ||
                                    (!c->ssl && pk_relay_has_tls(m, target)));
  if (!tls && (!k || !k->tunnel)) {
    refuse_status(c, 503, "Unavailable", PK_REJECT_NO_KITE);
    return;
  }
  if (!tls && rate_limited(c, k, target, NULL)) {
    refuse_status(c, 503, "Unavailable", PK_REJECT_RATELIMIT);
    return;
  }
  if (!tls && !stream_allowed(c, "raw", target, cport)) {
    refuse_status(c, 403, "Forbidden", PK_REJECT_PLUGIN);
    return;
  }
  char ok[64];
  pk_wbuf b;
  pk_wbuf_init(&b, ok, sizeof(ok));
  pk_wire_http_status(&b, "HTTP/1.0", 200, "Connection Established");
  pk_conn_write(c, ok, b.len, NULL);
  const char *rest = c->inbuf->data + h->head_len;
  size_t rn = c->inlen - h->head_len;
  if (tls)
    route_tls(c, target, port, rest, rn);
  else
    start_stream(c, k, "raw", target, cport, rest, rn);
}

/* The websocket form of a tunnel request (it carries no Host). */
static int is_ws_tunnel(const pk_http_head *h, pk_slice *key) {
  pk_slice wup = pk_wire_http_get(h, "Upgrade", 0);
  pk_slice wsp = pk_wire_http_get(h, "Sec-WebSocket-Protocol", 0);
  *key = pk_wire_http_get(h, "Sec-WebSocket-Key", 0);
  return wup.p && pk_slice_ieq(wup, "websocket") && key->p && wsp.p && wsp.n >= 15 &&
         memmem(wsp.p, wsp.n, "v1.pagekite.org", 15) && h->path.n >= 14 &&
         (memcmp(h->path.p, "/~:PageKite:~/", 14) == 0 ||
          pk_slice_ieq(h->path, "/Beanstalk~Magic~Beans/0.2"));
}

/* GET /ping for ping.pagekite: connectors measuring us. */
static int answer_ping(pk_conn *c, const pk_http_head *h, const char *host) {
  if (strcmp(host, "ping.pagekite") != 0 || h->path.n < 5 || memcmp(h->path.p, "/ping", 5) != 0)
    return 0;
  char resp[256];
  pk_wbuf b;
  pk_wbuf_init(&b, resp, sizeof(resp));
  pk_wire_ping_reply(&b, c->mgr->relay_uuid); /* random, not the secret */
  if (pk_wbuf_ok(&b)) pk_conn_write(c, resp, b.len, NULL);
  pk_conn_finish(c);
  return 1;
}

/* A request for an HTTP (or websocket) kite: plugins may refuse or rewrite
 * its head, then the stream starts. */
static void route_http(pk_conn *c, pk_relay_kite *k, const char *proto, const char *host, int port,
                       const pk_http_head *h) {
  pk_mgr *m = c->mgr;
  pk_stream_info info = {1, proto, host, port, c->rip, c->rport, c->inbuf->data, h->head_len};
  pk_hook_result hr;
  memset(&hr, 0, sizeof(hr));
  int act = pk_plugins_on_stream(m, &info, &hr);
  if (act == PK_HOOK_REJECT) {
    char resp[4096];
    int rl = pk_hook_reject_response(&hr, resp, sizeof(resp));
    pk_count_reject(m, PK_REJECT_PLUGIN);
    if (rl > 0) pk_conn_write(c, resp, (size_t)rl, NULL);
    pk_conn_finish(c);
    return;
  }
  /* A rewritten head (plugins only): its own buffer, per call, so that
   * managers on other threads never share it. */
  char *nh = act == PK_HOOK_REWRITE ? malloc(PK_HEAD_MAX + 4096 + PK_BLOCK_SIZE) : NULL;
  int nl = nh ? pk_head_rewrite(c->inbuf->data, h->head_len, &hr, nh, PK_HEAD_MAX + 4096) : -1;
  if (nl > 0) {
    size_t rest = c->inlen - h->head_len;
    memcpy(nh + nl, c->inbuf->data + h->head_len, rest);
    start_stream(c, k, proto, host, port, nh, (size_t)nl + rest);
    free(nh);
    return;
  }
  free(nh);
  start_stream(c, k, proto, host, port, c->inbuf->data, c->inlen);
}

static void classify_http(pk_conn *c) {
  pk_mgr *m = c->mgr;
  pk_http_head h;
  int r = pk_wire_parse_http_head(c->inbuf->data, c->inlen, PK_HEAD_MAX, &h);
  if (r == PK_WIRE_NEED_MORE && c->inlen < PK_HEAD_MAX) return;
  if (r == PK_WIRE_NEED_MORE || r == PK_WIRE_ETOOBIG) {
    reject_http(c, 431, "Request Header Fields Too Large", "", PK_REJECT_HEAD_TOO_LARGE);
    return;
  }
  pk_slice wskey;
  if (r < 0 || h.is_response) {
    reject_http(c, 400, "Bad Request", "", PK_REJECT_BAD_REQUEST);
  } else if (pk_slice_ieq(h.method, "CONNECT") && h.path.n >= 9 &&
             strncasecmp(h.path.p, "pagekite:", 9) == 0) {
    pk_slice none = {NULL, 0};
    tunnel_handshake(c, &h, h.head_len, none);
  } else if (pk_slice_ieq(h.method, "CONNECT")) {
    classify_connect(c, &h, listener_port(c));
  } else if (is_ws_tunnel(&h, &wskey)) {
    tunnel_handshake(c, &h, h.head_len, wskey);
  } else {
    pk_slice hv = pk_wire_http_get(&h, "Host", 0);
    if (!hv.p) {
      reject_http(c, 400, "Bad Request", "", PK_REJECT_BAD_REQUEST);
      return;
    }
    char host[PK_NAME_MAX];
    host_only(hv, host, sizeof(host));
    if (answer_ping(c, &h, host)) return;
    if (client_refused(c)) {
      reject_http(c, 403, "Forbidden", host, PK_REJECT_ACL);
      return;
    }
    int port = listener_port(c);
    static const char *const ws[] = {"websocket", "http"};
    pk_slice up = pk_wire_http_get(&h, "Upgrade", 0);
    int isws = up.p && pk_slice_ieq(up, "websocket");
    pk_relay_kite *k = route_kite(m, isws ? ws : ws + 1, isws ? 2 : 1, host, port);
    if (!k || !k->tunnel) {
      pk_log(m, PK_LOG_BE_CONNS, "No kite for http://%s:%d", host, port);
      reject_http(c, 503, "Unavailable", host, PK_REJECT_NO_KITE);
      return;
    }
    if (rate_limited(c, k, host, &h)) {
      reject_http(c, 503, "Unavailable", host, PK_REJECT_RATELIMIT);
      return;
    }
    route_http(c, k, k->proto, host, port, &h);
  }
}

/* A TLS ClientHello: routed by its SNI (none: the --tls_default name). */
static void classify_tls(pk_conn *c) {
  pk_mgr *m = c->mgr;
  char sni[PK_NAME_MAX];
  int r = pk_wire_tls_sni((const unsigned char *)c->inbuf->data, c->inlen, sni, sizeof(sni));
  if (r == PK_WIRE_NEED_MORE && c->inlen < PK_BLOCK_SIZE) return;
  if (r != 1) {
    uv_mutex_lock(&m->lock);
    snprintf(sni, sizeof(sni), "%s", m->tls_default);
    uv_mutex_unlock(&m->lock);
  }
  route_tls(c, sni, listener_port(c), c->inbuf->data, c->inlen);
}

/* First bytes of a relay connection.  They are collected in one block until
 * the head is complete; bytes of the same read past that block are handed on
 * to whatever the conn became (stream, tunnel, TLS), never dropped. */
static void classify(pk_conn *c, const char *data, size_t n, pk_block *blk) {
  pk_mgr *m = c->mgr;
  if (!c->inbuf && !(c->inbuf = pk_block_get(m))) {
    pk_conn_close(c);
    return;
  }
  size_t take = n < PK_BLOCK_SIZE - c->inlen ? n : PK_BLOCK_SIZE - c->inlen;
  memcpy(c->inbuf->data + c->inlen, data, take);
  c->inlen += take;
  int kind = pk_wire_peek_kind((const unsigned char *)c->inbuf->data, c->inlen);
  int was_tls = c->ssl != NULL;
  if (kind == PK_PEEK_NEED_MORE) return;
  if (kind == PK_PEEK_TLS && !c->ssl)
    classify_tls(c);
  else if (kind == PK_PEEK_HTTP)
    classify_http(c);
  else
    reject_http(c, 400, "Bad Request", "", PK_REJECT_BAD_REQUEST);
  if (take == n || (c->flags & PK_CF_CLOSING)) return;
  if (c->ssl && !was_tls)
    pk_conn_tls_input(c, data + take, n - take); /* TLS was started on these bytes */
  else if (c->on_data && c->on_data != classify)
    c->on_data(c, data + take, n - take, blk);
}

static void unknown_on_eof(pk_conn *c, int status) { pk_conn_close(c); }

static int admit_unknown(pk_conn *c);

/* A connection from a load balancer (pagekite_add_relay_proxy_source) starts
 * with a PROXY v1/v2 header: required, read into inbuf (at most
 * PK_PP_V2_MAX bytes, within PK_CLASSIFY_TIMEOUT_MS like any first bytes),
 * then the client's address stands for the connection's everywhere (logs,
 * per-source limits, RIP/RPort to the connector), and what follows is
 * classified as usual.  LOCAL (health checks) and UNKNOWN keep the
 * balancer's own address. */
static void proxy_head(pk_conn *c, const char *data, size_t n, pk_block *blk) {
  pk_mgr *m = c->mgr;
  if (!c->inbuf && !(c->inbuf = pk_block_get(m))) {
    pk_conn_close(c);
    return;
  }
  size_t room = PK_PP_V2_MAX - c->inlen, take = n < room ? n : room;
  memcpy(c->inbuf->data + c->inlen, data, take);
  c->inlen += take;
  pk_pp_info pp;
  char why[160];
  int r = pk_pp_parse(c->inbuf->data, c->inlen, &pp, why, sizeof(why));
  if (r == PK_PP_NEED_MORE) return;
  if (r == PK_PP_ERROR) {
    /* Not an error line: what arrives is not ours to fix, and must not
     * count toward bail-on-errors; at most a line a second. */
    long more = pk_ratelimit_check(m, &m->rl_refused);
    if (more >= 0)
      pk_log(m, PK_LOG_BE_CONNS,
             "Closing a connection from load balancer %s: %s; %ld more refused since the last line",
             c->rip, why, more);
    pk_count_reject(m, PK_REJECT_PROXY_HEADER);
    pk_conn_close(c);
    return;
  }
  if (!pp.local) {
    struct sockaddr_storage ss;
    if (uv_ip4_addr(pp.src_ip, pp.src_port, (struct sockaddr_in *)&ss) != 0)
      uv_ip6_addr(pp.src_ip, pp.src_port, (struct sockaddr_in6 *)&ss);
    pk_log(m, PK_LOG_BE_CONNS, "Connection from %s:%d via load balancer %s", pp.src_ip, pp.src_port,
           c->rip);
    pk_conn_unauth_clear(c); /* counted against the client now, not the balancer */
    snprintf(c->rip, sizeof(c->rip), "%s", pp.src_ip);
    c->rport = pp.src_port;
    c->ipkey = pk_ipkey_of((struct sockaddr *)&ss);
    if (admit_unknown(c) != 0) {
      pk_log(m, PK_LOG_BE_CONNS, "Dropped a connection from %s: %s", c->rip, "no room");
      pk_count_reject(m, PK_REJECT_LIMIT);
      pk_conn_close(c);
      return;
    }
  }
  c->inlen -= pp.len;
  memmove(c->inbuf->data, c->inbuf->data + pp.len, c->inlen);
  c->on_data = classify;
  classify(c, data + take, n - take, blk);
}

/* Connections that proved nothing yet (not classified, or tunnels without a
 * kite) are bounded in total, and per source: one source holds at most an
 * eighth of them for longer than PK_UNKNOWN_GRACE_MS.  A newcomer is always
 * let in.  To make room, its own source's oldest unknown connection goes when
 * that source is over its share with one older than the grace (a burst of
 * fresh connections, such as a browser's or a proxy's, is let through), or,
 * when all are taken, the oldest of the source holding the most.  So a flood
 * from a few addresses churns only its own connections, and real clients,
 * which classify within a round trip, are not locked out even from an
 * attacker's address. */
#define PK_UNKNOWN_GRACE_MS 2000

static int unauth_cap(pk_mgr *m) { return m->max_conns / 2 + 8; }

static int per_source_cap(pk_mgr *m) {
  int cap = unauth_cap(m) / 8;
  return cap < 8 ? 8 : cap;
}

/* The oldest unknown conn of a source (older than min_age_ms), or NULL. */
static pk_conn *oldest_unknown(pk_mgr *m, const pk_ipkey *src, uint64_t min_age_ms) {
  uint64_t now = pk_now_ms(m);
  pk_conn *old = NULL;
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (!(c->flags & PK_CF_UNAUTH) || (c->flags & PK_CF_CLOSING)) continue;
    if (memcmp(&c->ipkey, src, sizeof(*src)) != 0 || now - c->created < min_age_ms) continue;
    if (!old || c->created < old->created) old = c;
  }
  return old;
}

static void evict_unknown(pk_mgr *m, pk_conn *old) {
  pk_log(m, PK_LOG_BE_CONNS, "Evicting unauthenticated connection from %s", old->rip);
  pk_conn_unauth_clear(old);
  if (old->flags & PK_CF_COUNTED) { /* its budget is free now; its slot after the close */
    old->flags &= ~PK_CF_COUNTED;
    m->client_conns--;
  }
  if (old->kind == PK_CK_TUNNEL && old->own.tunnel)
    pk_tunnel_kill(old->own.tunnel, "evicted: no kite authenticated");
  else
    pk_conn_close(old);
}

static int admit_unknown(pk_conn *c) {
  pk_mgr *m = c->mgr;
  pk_conn *victim = NULL;
  if (m->unauth_conns >= unauth_cap(m)) {
    pk_ipkey heavy;
    if (pk_iptab_heaviest(&m->unauth_ips, &heavy) > 0) victim = oldest_unknown(m, &heavy, 0);
  } else if ((int)pk_iptab_count(&m->unauth_ips, &c->ipkey) >= per_source_cap(m)) {
    victim = oldest_unknown(m, &c->ipkey, PK_UNKNOWN_GRACE_MS);
  }
  if (victim) evict_unknown(m, victim);
  return pk_conn_unauth_set(c);
}

static void accept_and_drop(pk_mgr *m, uv_stream_t *server) {
  /* Accept and drop, so the backlog does not fill with dead peers. */
  uv_tcp_t *tmp = malloc(sizeof(*tmp));
  if (tmp && uv_tcp_init(&m->loop, tmp) == 0) {
    uv_accept(server, (uv_stream_t *)tmp);
    uv_close((uv_handle_t *)tmp, (uv_close_cb)free); /* linked into the loop: close, then free */
  } else {
    free(tmp);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  pk_listener *l = server->data;
  pk_mgr *m = l->mgr;
  if (status < 0) return;
  pk_conn *c = pk_conn_new(m, PK_CK_UNKNOWN);
  if (!c) {
    accept_and_drop(m, server);
    pk_count_reject(m, PK_REJECT_LIMIT);
    /* Not an error line: a flood must not count toward bail-on-errors, nor
     * write more than a line a second. */
    long more = pk_ratelimit_check(m, &m->rl_dropped);
    if (more >= 0)
      pk_log(m, PK_LOG_BE_CONNS, "Dropped a connection: %s; %ld more since the last line",
             pk_get_error(), more);
    return;
  }
  if (pk_conn_accept(c, server) != 0) {
    pk_conn_close(c);
    return;
  }
  if (admit_unknown(c) != 0) {
    pk_log(m, PK_LOG_BE_CONNS, "Dropped a connection from %s: %s", c->rip, "no room");
    pk_count_reject(m, PK_REJECT_LIMIT);
    pk_conn_close(c);
    return;
  }
  c->on_data = m->nproxy_sources && pk_relay_proxy_source(m, c->rip) ? proxy_head : classify;
  c->on_eof = unknown_on_eof;
  pk_conn_read_start(c);
}

static int relay_bind(pk_mgr *m) {
  int ok = 0;
  for (int i = 0; i < m->nlisteners; i++) {
    pk_listener *l = &m->listeners[i];
    struct sockaddr_storage ss;
    if (uv_ip4_addr(l->host, l->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(l->host, l->port, (struct sockaddr_in6 *)&ss) != 0) {
      pk_log(m, PK_LOG_MANAGER_ERROR, "Bad listen address %s", l->host);
      continue;
    }
    uv_tcp_init(&m->loop, &l->tcp);
    l->tcp.data = l;
    int rv = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0) rv = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rv != 0) {
      pk_fail(PK_ENETWORK, "cannot listen on %s:%d: %s", l->host, l->port, uv_strerror(rv));
      pk_log(m, PK_LOG_MANAGER_ERROR, "%s", pk_get_error());
      uv_close((uv_handle_t *)&l->tcp, NULL);
      continue;
    }
    if (l->port == 0) {
      int len = sizeof(ss);
      char ip[64];
      uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
      pk_addr_str((struct sockaddr *)&ss, ip, sizeof(ip), &l->port);
    }
    l->active = 1;
    ok++;
    pk_log(m, PK_LOG_MANAGER_INFO, "Relay listening on %s:%d", l->host, l->port);
  }
  if (ok < m->nlisteners) return -1;
  listener_ports(m, m->hello_ports, sizeof(m->hello_ports)); /* once: they do not change */
  raw_ports(m, m->hello_raw, sizeof(m->hello_raw));
  pk_set_status(m, PK_STATUS_FLYING);
  return 0;
}

static void relay_stop(pk_mgr *m) {
  pk_authq_stop(m);
  for (int i = 0; i < m->nlisteners; i++)
    if (m->listeners[i].active) {
      m->listeners[i].active = 0;
      uv_close((uv_handle_t *)&m->listeners[i].tcp, NULL);
    }
}

static void relay_housekeep(pk_mgr *m) {
  uint64_t now = pk_now_ms(m);
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind == PK_CK_UNKNOWN && !(c->flags & PK_CF_CLOSING) &&
        now - c->created > PK_CLASSIFY_TIMEOUT_MS) {
      /* Slow or silent clients do not get to hold a slot. */
      pk_conn_close(c);
    }
  }
  for (int i = 0; i < m->ntunnels; i++) {
    pk_tunnel *t = &m->tunnels[i];
    /* (a head whose reply waits for the auth domain too) */
    if (t->in_use && t->nkites_live == 0 && now - t->created > PK_HANDSHAKE_TIMEOUT_MS &&
        (t->sess.state == PK_SESSION_OPEN ||
         (t->sess.state == PK_SESSION_HANDSHAKE && t->sess.auth_pending)))
      pk_tunnel_kill(t, "no kite authenticated in time");
  }
}

/* ---- live reconfiguration ---- */
/* Is the kite still allowed by the domain table (under the lock)? */
static int kite_still_allowed(pk_mgr *m, const pk_relay_kite *k) {
  char pp[48];
  snprintf(pp, sizeof(pp), "%s-%d", k->proto, k->port);
  uv_mutex_lock(&m->lock);
  int ok = pk_domains_allows(&m->domains, m->relay_secret, k->proto, k->port, k->name, k->tag);
  int covered = pk_domains_find(&m->domains, k->proto, pp, k->port, k->name) != NULL;
  uv_mutex_unlock(&m->lock);
  if (!ok && k->tag == PK_AUTH_FP_REMOTE && !covered) { /* the authority's (before start only) */
    pk_kite_req req;
    memset(&req, 0, sizeof(req));
    snprintf(req.name, sizeof(req.name), "%s", k->name);
    ok = pk_authq_covers(m, &req);
  }
  return ok;
}

void pk_relay_recheck_kites(pk_mgr *m) {
  int dropped = 0, closed = 0;
  for (int i = 0; i < m->ntunnels; i++) {
    pk_tunnel *t = &m->tunnels[i];
    if (!t->in_use || t->dying || !t->rkites.head) continue;
    int had = t->rkites.n;
    uint32_t next = t->rkites.head;
    while (next) {
      pk_relay_kite *k = &m->rkites.e[next - 1];
      next = k->tnext; /* k may go */
      if (kite_still_allowed(m, k)) continue;
      pk_event(m, PK_EVENT_KITE, PK_KITE_STATUS_REJECTED, k->proto, k->name,
               "domain removed or its secret changed");
      pk_log(m, PK_LOG_MANAGER_INFO, "Kite %s:%s dropped: domain removed or its secret changed",
             k->proto, k->name);
      pk_reg_remove(&m->rkites, &t->rkites, k);
      pk_tunnel_kites_changed(t, -1);
      dropped++;
    }
    if (had && !t->rkites.n) {
      pk_log(m, PK_LOG_TUNNEL_CONNS, "Tunnel from %s closed: domain removed, no kite left",
             t->conn ? t->conn->rip : "?");
      pk_tunnel_kill(t, "domain removed: no kite left");
      closed++;
    }
  }
  if (dropped || closed) {
    pk_log(m, PK_LOG_MANAGER_INFO, "Domains changed: %d kite(s) dropped, %d tunnel(s) closed",
           dropped, closed);
    pk_notify(m);
  }
}

/* Listeners are bound by relay_bind; auth apps are asked their
 * capabilities on the loop's first turns (authapp.c). */
static int relay_start(pk_mgr *m) {
  pk_authapp_start(m);
  return 0;
}

static const char *relay_peer_name(pk_tunnel *t) { return t->conn ? t->conn->rip : ""; }

const pk_role_ops pk_relay_role = {.tunnel_name = "from connector",
                                   .start = relay_start,
                                   .bind = relay_bind,
                                   .stop = relay_stop,
                                   .housekeep = relay_housekeep,
                                   .on_new_stream = relay_on_new_stream,
                                   .auth_policy = relay_auth_policy,
                                   .kite_verdict = relay_kite_verdict,
                                   .tunnel_closed = relay_tunnel_closed,
                                   .reconfigure = pk_relay_recheck_kites,
                                   .peer_name = relay_peer_name};

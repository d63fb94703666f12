/* api.c - exported entry points: validate, take the lock or wake the loop,
 * translate errors.  Every failure leaves a reason in pagekite_last_error(). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include <openssl/rand.h>

#include "internal.h"
#include "pk_names.h"

#define MGR(h) ((pk_mgr *)(void *)(h))
#define PK_HK_HARD_MIN 1

static int check_mgr_in(pk_mgr *m, const char *fn) {
  return m ? 0 : pk_fail(PK_EINVAL, "%s: mgr is NULL", fn);
}
#define check_mgr(m) check_mgr_in((m), __func__)

/* Configuration calls documented "before starting the master thread". */
int pk_api_before_start(pk_mgr *m, const char *fn) {
  if (check_mgr_in(m, fn)) return -1;
  if (m->started) {
    pk_fail(PK_ESTATE, "%s: only allowed before pagekite_thread_start", fn);
    pk_log(m, PK_LOG_MANAGER_ERROR, "%s", pk_get_error());
    return -1;
  }
  return 0;
}

/* A DDNS format string may hold three %s and %% escapes, nothing else. */
static int ddns_format_ok(const char *f) {
  if (!*f) return 1;
  int n = 0;
  for (const char *p = f; *p; p++) {
    if (*p != '%') continue;
    if (p[1] == '%') {
      p++;
      continue;
    }
    if (p[1] != 's') return 0;
    n++;
    p++;
  }
  return n == 3;
}

static int verbosity_mask(int v) {
  if (v < 0) return PK_LOG_ERRORS;
  if (v == 0) return PK_LOG_NORMAL;
  if (v == 1) return PK_LOG_DEBUG;
  if (v == 2) return PK_LOG_ALL;
  return v;
}

/* pagekite_init's limits and DDNS URL: 0, or -1 naming the bad one. */
static int init_args_ok(int relay, int max_kites, int max_frontends, int max_conns,
                        const char *dyndns_url) {
  static const char fn[] = "pagekite_init";
  if (max_kites < 0 || max_kites > 100000)
    return pk_fail(PK_EINVAL, "%s: max_kites %d is not 0-100000", fn, max_kites);
  if (max_frontends < (relay ? 0 : 1) || max_frontends > 1000)
    return pk_fail(PK_EINVAL, "%s: max_frontends %d is not %d-1000%s", fn, max_frontends,
                   relay ? 0 : 1, relay ? "" : " (a connector needs a relay)");
  if (max_conns < 1 || max_conns > 1000000)
    return pk_fail(PK_EINVAL, "%s: max_conns %d is not 1-1000000", fn, max_conns);
  /* A connector flies all its kites on one tunnel; relays take at most
   * this many per tunnel (pagekite.py takes any number). */
  if (!relay && max_kites > PK_MAX_KITES_PER_TUNNEL)
    return pk_fail(PK_EINVAL, "%s: max_kites %d: a connector flies at most %d kites", fn,
                   max_kites, PK_MAX_KITES_PER_TUNNEL);
  if (dyndns_url && (strlen(dyndns_url) >= 512 || !ddns_format_ok(dyndns_url)))
    return pk_fail(PK_EINVAL, "%s: dyndns_url must be a URL with exactly three %%s (host, ip, "
                   "sign), shorter than 512 bytes", fn);
  return 0;
}

PK_API pagekite_mgr pagekite_init(const char *app_id, int max_kites, int max_frontends,
                                  int max_conns, const char *dyndns_url, int flags,
                                  int verbosity) {
  int relay = (flags & PK_AS_FRONTEND_RELAY) != 0;
  if (init_args_ok(relay, max_kites, max_frontends, max_conns, dyndns_url) != 0) return NULL;
  pk_mgr *m = calloc(1, sizeof(*m));
  if (!m) {
    pk_fail(PK_ENOMEM, "pagekite_init: out of memory");
    return NULL;
  }
  uv_mutex_init(&m->lock);
  uv_cond_init(&m->cond);
  /* The recommended settings, as libpagekite: TLS (verified) and both
   * address families.  A relay's TLS is its certificate (set_relay_tls). */
  if (flags & PK_WITH_DEFAULTS) flags |= PK_WITH_IPV4 | PK_WITH_IPV6 | (relay ? 0 : PK_WITH_SSL);
  if (!(flags & (PK_WITH_IPV4 | PK_WITH_IPV6))) flags |= PK_WITH_IPV4 | PK_WITH_IPV6;
  m->flags = flags;
  m->role = relay ? &pk_relay_role : &pk_connector_role;
  m->status = PK_STATUS_STARTUP;
  snprintf(m->app_id, sizeof(m->app_id), "%s", app_id ? app_id : "libpagekite");
  if (dyndns_url) snprintf(m->dyndns_url, sizeof(m->dyndns_url), "%s", dyndns_url);
  m->log_mask = verbosity_mask(verbosity);
  /* The environment is read here, once: never from the loop thread, where a
   * host's setenv could race with it. */
  m->log_stderr = getenv("PK_LOG_STDERR") != NULL;
  m->hk_min = 15;
  m->hk_max = 120;
  m->tick_timer_on = 1;
  m->tls_verify = PK_TLS_VERIFY_PEER;
  m->max_kites = max_kites;
  m->max_frontends = max_frontends;
  m->max_conns = max_conns;
  m->ntunnels = relay ? (max_kites > 0 ? max_kites : 1) + 16 : max_frontends * 2 + 2;
  m->kites = calloc((size_t)(max_kites ? max_kites : 1), sizeof(pk_kite));
  m->fes = calloc((size_t)(max_frontends ? max_frontends : 1), sizeof(pk_frontend));
  m->tunnels = calloc((size_t)m->ntunnels, sizeof(pk_tunnel));
  int nconns = max_conns + m->ntunnels + 16 + (relay ? 0 : max_frontends * 4);
  /* Reserved address space; pages count in RSS only once used. */
  size_t nblocks = 64 + (size_t)max_conns * 2 + (size_t)m->ntunnels * 8;
  /* The pool first: the conns register their hook on it. */
  if (!m->kites || !m->fes || !m->tunnels || pk_events_init(&m->evring) != 0 ||
      pk_pool_init(&m->blocks, nblocks) != 0 || pk_conns_init(m, nconns) != 0) {
    pk_fail(PK_ENOMEM, "pagekite_init: out of memory reserving pools for max_conns %d",
            max_conns);
    pagekite_free((pagekite_mgr)(void *)m);
    return NULL;
  }
  if (relay) {
    m->max_listeners = max_frontends > 0 ? max_frontends : 8;
    m->listeners = calloc((size_t)m->max_listeners, sizeof(pk_listener));
    m->domains.max = PK_MAX_RELAY_DOMAINS;
    m->domains.d = calloc((size_t)m->domains.max, sizeof(pk_relay_domain));
    m->max_rkites = (max_kites > 0 ? max_kites : 1) * 4;
    uint32_t seq0 = 0;
    uint64_t seed = 0;
    RAND_bytes((unsigned char *)&seq0, sizeof(seq0));
    RAND_bytes((unsigned char *)&seed, sizeof(seed));
    if (!m->listeners || !m->domains.d ||
        pk_reg_init(&m->rkites, (uint32_t)m->max_rkites, seed) != 0 ||
        pk_replay_init(&m->replay, seq0) != 0 ||
        pk_iptab_init(&m->unauth_ips, (size_t)(max_conns / 2 + 8) + m->ntunnels) != 0) {
      pk_fail(PK_ENOMEM, "pagekite_init: out of memory (relay tables)");
      pagekite_free((pagekite_mgr)(void *)m);
      return NULL;
    }
    pk_random_hex(m->relay_secret, PK_TOKEN_LEN);
    pk_random_hex(m->relay_uuid, 16); /* /ping's X-PageKite-UUID: unrelated to the secret */
  }
  pk_log(m, PK_LOG_MANAGER_INFO, "%s: libpagekite %s initialized (%s)", m->app_id, PK_VERSION,
         relay ? "relay" : "connector");
  return (pagekite_mgr)(void *)m;
}

static int add_service_certnames(pk_mgr *m, const char *wl, int flags);

PK_API pagekite_mgr pagekite_init_pagekitenet(const char *app_id, int max_kites, int max_conns,
                                              int flags, int verbosity) {
  pagekite_mgr h = pagekite_init(app_id, max_kites, PAGEKITE_NET_FE_MAX, max_conns,
                                 PAGEKITE_NET_DDNS, flags | PK_WITH_SSL, verbosity);
  if (h && !(flags & PK_WITHOUT_SERVICE_FRONTENDS)) pagekite_add_service_frontends(h, flags);
  else if (h) add_service_certnames(MGR(h), NULL, flags);
  if (h) pagekite_set_rejection_url(h, PAGEKITE_NET_REJECTION_URL); /* as pagekite.py */
  return h;
}

PK_API pagekite_mgr pagekite_init_whitelabel(const char *app_id, int max_kites, int max_conns,
                                             int flags, int verbosity,
                                             const char *whitelabel_tld) {
  if (!whitelabel_tld || !*whitelabel_tld || strlen(whitelabel_tld) > 200) {
    pk_fail(PK_EINVAL, "pagekite_init_whitelabel: whitelabel_tld must be a domain of 1-200 bytes");
    return NULL;
  }
  char ddns[512];
  snprintf(ddns, sizeof(ddns), PAGEKITE_NET_WL_DDNS, whitelabel_tld);
  pagekite_mgr h = pagekite_init(app_id, max_kites, PAGEKITE_NET_FE_MAX, max_conns, ddns,
                                 flags | PK_WITH_SSL, verbosity);
  if (h && !(flags & PK_WITHOUT_SERVICE_FRONTENDS))
    pagekite_add_whitelabel_frontends(h, flags, whitelabel_tld);
  else if (h)
    add_service_certnames(MGR(h), whitelabel_tld, flags);
  if (h) {
    char url[512];
    snprintf(url, sizeof(url), "http://www.%s/offline/", whitelabel_tld);
    pagekite_set_rejection_url(h, url);
  }
  return h;
}

int pk_api_valid_name(const char *s, size_t max) {
  if (!s || !*s || strlen(s) >= max) return 0;
  for (const char *p = s; *p; p++)
    if (*p == ':' || *p <= ' ' || *p == 0x7f) return 0;
  return 1;
}

/* The protocols a kite may fly (what relays serve). */
static int proto_known(const char *proto) {
  static const char *const known[] = {"http", "https", "raw", "websocket"};
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (strcasecmp(proto, known[i]) == 0) return 1;
  return 0;
}

/* A host as given: a DNS name, an IPv4 literal or an IPv6 literal with or
 * without brackets ("[::1]"); into out without the brackets.  0 or -1. */
static int host_arg(const char *in, char *out, size_t n) {
  size_t l = in ? strlen(in) : 0;
  if (l == 0 || l >= n) return -1;
  if (in[0] == '[' && l > 2 && in[l - 1] == ']')
    snprintf(out, n, "%.*s", (int)(l - 2), in + 1);
  else
    snprintf(out, n, "%s", in);
  struct in6_addr a6;
  if (strchr(out, ':')) return inet_pton(AF_INET6, out, &a6) == 1 ? 0 : -1;
  return pk_api_valid_name(out, n) ? 0 : -1;
}

/* pagekite_add_kite's arguments: 0, or -1 naming the bad one. */
static int kite_args_ok(const char *proto, const char *kitename, int pport, const char *secret,
                        int lport) {
  static const char fn[] = "pagekite_add_kite";
  if (!pk_api_valid_name(proto, 32) || !proto_known(proto))
    return pk_fail(PK_EINVAL, "%s: proto '%.32s' is not http, https, raw or websocket", fn,
                   proto ? proto : "(null)");
  if (!pk_api_valid_name(kitename, PK_NAME_MAX))
    return pk_fail(PK_EINVAL, "%s: kitename '%.80s' is not a name (empty, too long, spaces or ':')",
                   fn, kitename ? kitename : "(null)");
  if (pport < 0 || pport > 65535)
    return pk_fail(PK_EINVAL, "%s: pport %d is not 0-65535", fn, pport);
  if (strcasecmp(proto, "raw") == 0 && pport == 0)
    return pk_fail(PK_EINVAL, "%s: pport 0: raw kites need a public port", fn);
  if (!secret || !*secret || strlen(secret) >= PK_SECRET_MAX || strpbrk(secret, "\r\n"))
    return pk_fail(PK_EINVAL, "%s: secret must be 1-%d bytes without line breaks", fn,
                   PK_SECRET_MAX - 1);
  if (lport < 1 || lport > 65535)
    return pk_fail(PK_EINVAL, "%s: lport %d is not 1-65535", fn, lport);
  return 0;
}

/* pagekite.py's +ip/ and +password/ kite flags (acl.c); the connector
 * enforces them on each new stream. */
PK_API int pagekite_add_kite_access(pagekite_mgr h, const char *kitename, int pport,
                                    const char *rule) {
  pk_mgr *m = MGR(h);
  const char *fn = "pagekite_add_kite_access";
  if (pk_api_before_start(m, fn)) return -1;
  if (pk_is_relay(m))
    return pk_fail(PK_ESTATE, "%s: a connector call (the relay has client ACLs)", fn);
  if (!kitename || !*kitename) return pk_fail(PK_EINVAL, "%s: kitename is NULL or empty", fn);
  if (pport < 0 || pport > 65535) return pk_fail(PK_EINVAL, "%s: pport %d is not 0-65535", fn, pport);
  int found = 0;
  for (int i = 0; i < m->nkites; i++)
    found |= strcasecmp(m->kites[i].name, kitename) == 0 && (pport == 0 || m->kites[i].pport == pport);
  if (!found)
    return pk_fail(PK_ENOTFOUND, "%s: no such kite %.200s (port %d): add the kite first", fn,
                   kitename, pport);
  pk_kite_rule r;
  char why[320];
  if (pk_kite_rule_parse(rule, &r, why, sizeof(why)) != 0)
    return pk_fail(PK_EINVAL, "%s: rule %s", fn, why);
  snprintf(r.name, sizeof(r.name), "%s", kitename);
  for (char *p = r.name; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  r.pport = pport;
  if (m->nkite_rules >= PK_ACL_MAX_RULES)
    return pk_fail(PK_ELIMIT, "%s: too many rules (at most %d)", fn, PK_ACL_MAX_RULES);
  pk_kite_rule *g = realloc(m->kite_rules, (size_t)(m->nkite_rules + 1) * sizeof(*g));
  if (!g) return pk_fail(PK_ENOMEM, "%s: out of memory", fn);
  m->kite_rules = g;
  m->kite_rules[m->nkite_rules++] = r;
  OPENSSL_cleanse(&r, sizeof(r));
  return 0;
}

/* ---- kites and frontends, before and after start ---- */
/* After start, kites and frontends change on the loop thread: the caller
 * queues a pk_cfg_op (under the lock) and wakes the loop, which applies it
 * (connector.c: pk_connector_reconfigure).  Before start they change here. */
static void queue_op(pk_mgr *m, pk_cfg_op *op) { /* under the lock */
  op->next = NULL;
  if (!m->ops_tail) m->ops_tail = &m->ops;
  *m->ops_tail = op;
  m->ops_tail = &op->next;
}

static void ops_changed(pk_mgr *m) {
  PK_SET(m->reconfigured, 1);
  pk_manager_wake(m);
}

static void ops_free(pk_mgr *m) {
  while (m->ops) {
    pk_cfg_op *op = m->ops;
    m->ops = op->next;
    free(op);
  }
  m->ops_tail = NULL;
}

static int same_kite(const pk_kite *a, const char *proto, const char *name, int pport) {
  return strcasecmp(a->proto, proto) == 0 && strcasecmp(a->name, name) == 0 && a->pport == pport;
}

/* Under the lock: the queued op of kind for this kite, or NULL. */
static pk_cfg_op **op_for_kite(pk_mgr *m, int kind, const char *proto, const char *name,
                               int pport) {
  for (pk_cfg_op **p = &m->ops; *p; p = &(*p)->next)
    if ((*p)->kind == kind && same_kite(&(*p)->kite, proto, name, pport)) return p;
  return NULL;
}

/* Under the lock: the kite as it will be once the queue is applied. */
static int kite_index(pk_mgr *m, const char *proto, const char *name, int pport) {
  for (int i = 0; i < m->nkites; i++)
    if (same_kite(&m->kites[i], proto, name, pport)) return i;
  return -1;
}

static int kite_will_exist(pk_mgr *m, const char *proto, const char *name, int pport) {
  if (op_for_kite(m, PK_OP_ADD_KITE, proto, name, pport)) return 1;
  return kite_index(m, proto, name, pport) >= 0 &&
         !op_for_kite(m, PK_OP_DEL_KITE, proto, name, pport);
}

static int kites_planned(pk_mgr *m) {
  int n = m->nkites;
  for (pk_cfg_op *op = m->ops; op; op = op->next)
    n += op->kind == PK_OP_ADD_KITE ? 1 : op->kind == PK_OP_DEL_KITE ? -1 : 0;
  return n;
}

PK_API int pagekite_add_kite(pagekite_mgr h, const char *proto, const char *kitename, int pport,
                             const char *secret, const char *backend, int lport) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (kite_args_ok(proto, kitename, pport, secret, lport) != 0) return -1;
  pk_cfg_op *op = calloc(1, sizeof(*op));
  if (!op) return pk_fail(PK_ENOMEM, "pagekite_add_kite: out of memory");
  pk_kite *k = &op->kite;
  snprintf(k->proto, sizeof(k->proto), "%s", proto);
  for (char *p = k->proto; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  snprintf(k->name, sizeof(k->name), "%s", kitename);
  for (char *p = k->name; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  snprintf(k->secret, sizeof(k->secret), "%s", secret);
  if (host_arg(backend && *backend ? backend : "localhost", k->backend, sizeof(k->backend)) != 0) {
    free(op);
    return pk_fail(PK_EINVAL, "pagekite_add_kite: backend '%.80s' is not a host name or address",
                   backend);
  }
  k->pport = pport;
  k->lport = lport;
  /* Every address the origin's name has is tried in turn, in the
   * resolver's order (localhost: ::1, then 127.0.0.1).  Resolved here, in
   * the caller's thread, never on the loop. */
  pk_frontend *tmp = &op->fe;
  snprintf(tmp->host, sizeof(tmp->host), "%s", k->backend);
  tmp->port = lport;
  int n = pk_origin_resolve(m, tmp, m->flags | PK_WITH_IPV4 | PK_WITH_IPV6);
  k->norigins = n < PK_MAX_ORIGIN_ADDRS ? n : PK_MAX_ORIGIN_ADDRS;
  for (int i = 0; i < k->norigins; i++) k->origins[i] = tmp->addrs[i];
  memset(tmp, 0, sizeof(*tmp));
  if (!k->norigins) {
    free(op);
    return pk_fail(PK_ENETWORK, "pagekite_add_kite: cannot resolve backend %s (%s)", k->backend,
                   pk_get_error());
  }
  uv_mutex_lock(&m->lock);
  int rv = 0, started = m->started;
  if (kite_will_exist(m, k->proto, k->name, pport))
    rv = pk_fail(PK_EEXIST, "pagekite_add_kite: kite %s:%s:%d already configured", proto,
                 kitename, pport);
  else if (kites_planned(m) >= m->max_kites)
    rv = pk_fail(PK_ELIMIT, "pagekite_add_kite: max_kites (%d) reached", m->max_kites);
  else if (!started)
    m->kites[m->nkites++] = *k;
  else
    op->kind = PK_OP_ADD_KITE, queue_op(m, op), op = NULL;
  uv_mutex_unlock(&m->lock);
  free(op);
  if (rv != 0) return rv;
  if (started) ops_changed(m);
  pk_log(m, PK_LOG_MANAGER_INFO, "Kite %s://%s:%d -> %s:%d%s", proto, kitename, pport,
         backend && *backend ? backend : "localhost", lport, started ? " (added while running)" : "");
  return 0;
}

PK_API int pagekite_remove_kite(pagekite_mgr h, const char *proto, const char *kitename,
                                int pport) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_remove_kite";
  if (check_mgr(m)) return -1;
  if (!pk_api_valid_name(proto, 32) || !pk_api_valid_name(kitename, PK_NAME_MAX) || pport < 0 ||
      pport > 65535)
    return pk_fail(PK_EINVAL, "%s: expected a proto, a kite name and a port 0-65535", fn);
  pk_cfg_op *op = calloc(1, sizeof(*op));
  if (!op) return pk_fail(PK_ENOMEM, "%s: out of memory", fn);
  uv_mutex_lock(&m->lock);
  int rv = 0, started = m->started, i = kite_index(m, proto, kitename, pport);
  pk_cfg_op **queued = op_for_kite(m, PK_OP_ADD_KITE, proto, kitename, pport);
  if (queued) { /* not applied yet: it never flies */
    pk_cfg_op *gone = *queued;
    *queued = gone->next;
    if (m->ops_tail == &gone->next) m->ops_tail = queued;
    free(gone);
  } else if (i < 0 || op_for_kite(m, PK_OP_DEL_KITE, proto, kitename, pport)) {
    rv = pk_fail(PK_ENOTFOUND, "%s: no kite %s:%s:%d", fn, proto, kitename, pport);
  } else if (!started) { /* no loop, no streams yet */
    memmove(&m->kites[i], &m->kites[i + 1], (size_t)(m->nkites - i - 1) * sizeof(pk_kite));
    m->nkites--;
  } else {
    op->kind = PK_OP_DEL_KITE;
    op->kite = m->kites[i];
    queue_op(m, op);
    op = NULL;
  }
  uv_mutex_unlock(&m->lock);
  free(op);
  if (rv == 0 && started) ops_changed(m);
  return rv;
}

static int same_fe(const pk_frontend *f, const char *host, int port) {
  return f->host[0] && strcasecmp(f->host, host) == 0 && f->port == port;
}

/* Under the lock: frontends once the queue is applied, and whether one is. */
static int fes_planned(pk_mgr *m, const char *host, int port, int *exists) {
  int n = 0;
  *exists = 0;
  for (int i = 0; i < m->nfes; i++)
    if (m->fes[i].host[0]) n++, *exists |= same_fe(&m->fes[i], host, port);
  for (pk_cfg_op *op = m->ops; op; op = op->next) {
    if (op->kind == PK_OP_ADD_FE) n++, *exists |= same_fe(&op->fe, host, port);
    if (op->kind == PK_OP_DEL_FE) {
      n--;
      if (same_fe(&op->fe, host, port)) *exists = 0;
    }
  }
  return n;
}

PK_API int pagekite_lookup_and_add_frontend(pagekite_mgr h, const char *domain, int port,
                                            int update_from_dns) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  char host[PK_NAME_MAX];
  if (host_arg(domain, host, sizeof(host)) != 0)
    return pk_fail(PK_EINVAL, "pagekite_lookup_and_add_frontend: domain '%.80s' is not a host "
                   "name or address", domain ? domain : "(null)");
  if (port < 1 || port > 65535)
    return pk_fail(PK_EINVAL, "pagekite_lookup_and_add_frontend: port %d is not 1-65535", port);
  domain = host;
  pk_cfg_op *op = calloc(1, sizeof(*op));
  if (!op) return pk_fail(PK_ENOMEM, "pagekite_lookup_and_add_frontend: out of memory");
  pk_frontend *fe = &op->fe;
  snprintf(fe->host, sizeof(fe->host), "%s", domain);
  fe->port = port;
  fe->update_dns = update_from_dns != 0;
  int n = pk_frontend_resolve(m, fe); /* in the caller's thread */
  if (n == 0 && !fe->update_dns) {
    free(op);
    return 0; /* nothing to keep */
  }
  int exists = 0, rv = n;
  uv_mutex_lock(&m->lock);
  int started = m->started;
  if (fes_planned(m, domain, port, &exists) >= m->max_frontends || (started && exists)) {
    rv = exists ? pk_fail(PK_EEXIST, "pagekite_lookup_and_add_frontend: %s:%d is a relay already",
                          domain, port)
                : pk_fail(PK_ELIMIT, "pagekite_lookup_and_add_frontend: max_frontends (%d) reached",
                          m->max_frontends);
  } else if (!started) {
    m->fes[m->nfes++] = *fe;
  } else {
    op->kind = PK_OP_ADD_FE;
    queue_op(m, op);
    op = NULL;
  }
  uv_mutex_unlock(&m->lock);
  free(op);
  if (rv < 0) return rv;
  if (started) ops_changed(m);
  pk_log(m, PK_LOG_MANAGER_INFO, "Relay %s:%d: %d address(es)%s%s", domain, port, n,
         update_from_dns ? ", DNS updates on" : "", started ? " (added while running)" : "");
  return n;
}

PK_API int pagekite_add_frontend(pagekite_mgr h, const char *domain, int port) {
  return pagekite_lookup_and_add_frontend(h, domain, port, 0);
}

PK_API int pagekite_remove_frontend(pagekite_mgr h, const char *domain, int port) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_remove_frontend";
  if (check_mgr(m)) return -1;
  char host[PK_NAME_MAX];
  if (host_arg(domain, host, sizeof(host)) != 0 || port < 1 || port > 65535)
    return pk_fail(PK_EINVAL, "%s: expected a host name or address and a port 1-65535", fn);
  pk_cfg_op *op = calloc(1, sizeof(*op));
  if (!op) return pk_fail(PK_ENOMEM, "%s: out of memory", fn);
  int exists = 0, rv = 0;
  uv_mutex_lock(&m->lock);
  int started = m->started;
  fes_planned(m, host, port, &exists);
  if (!exists) {
    rv = pk_fail(PK_ENOTFOUND, "%s: no relay %s:%d", fn, host, port);
  } else if (!started) { /* no loop, no tunnels yet */
    for (int i = 0; i < m->nfes; i++)
      if (same_fe(&m->fes[i], host, port)) {
        memmove(&m->fes[i], &m->fes[i + 1], (size_t)(m->nfes - i - 1) * sizeof(pk_frontend));
        m->nfes--;
        break;
      }
  } else {
    op->kind = PK_OP_DEL_FE;
    snprintf(op->fe.host, sizeof(op->fe.host), "%s", host);
    op->fe.port = port;
    queue_op(m, op);
    op = NULL;
  }
  uv_mutex_unlock(&m->lock);
  free(op);
  if (rv == 0 && started) ops_changed(m);
  return rv;
}

/* The names the service's (or a white-label domain's) relays carry, as
 * pagekite.py accepts them: fe.DOMAIN and DOMAIN first for a white label.
 * With PK_WITH_FRONTEND_SNI a white label accepts only its own names and asks
 * for fe.DOMAIN by SNI; libpagekite adds the service's names otherwise
 * ("Adding multiple names disables SNI"). */
static int add_service_certnames(pk_mgr *m, const char *wl, int flags) {
  char name[PK_NAME_MAX];
  if (wl) {
    snprintf(name, sizeof(name), "fe.%s", wl);
    if (pk_certname_add(m, name) != 0 || pk_certname_add(m, wl) != 0) return -1;
    if (flags & PK_WITH_FRONTEND_SNI) {
      snprintf(m->relay_sni, sizeof(m->relay_sni), "%s", name);
      return 0;
    }
  }
  for (int i = 0; pk_service_certnames[i]; i++)
    if (pk_certname_add(m, pk_service_certnames[i]) != 0) return -1;
  return 0;
}

/* The service calls' flags as libpagekite reads them: PK_WITH_DEFAULTS or 0
 * mean IPv4, IPv6 and PK_WITH_DYNAMIC_FE_LIST; no family at all means both. */
static int service_flags(int flags) {
  if ((flags & PK_WITH_DEFAULTS) || flags == 0)
    flags |= PK_WITH_IPV4 | PK_WITH_IPV6 | PK_WITH_DYNAMIC_FE_LIST;
  if (!(flags & (PK_WITH_IPV4 | PK_WITH_IPV6))) flags |= PK_WITH_IPV4 | PK_WITH_IPV6;
  return flags;
}

/* name4/name6 for the families in flags, DNS refresh as flags say; the
 * number of addresses, or -1. */
static int add_pool(pagekite_mgr h, int flags, const char *name4, const char *name6, int port) {
  int dyn = (flags & PK_WITH_DYNAMIC_FE_LIST) != 0, total = 0, rv;
  if (flags & PK_WITH_IPV4) {
    if ((rv = pagekite_lookup_and_add_frontend(h, name4, port, dyn)) < 0) return -1;
    total += rv;
  }
  if (flags & PK_WITH_IPV6) {
    if ((rv = pagekite_lookup_and_add_frontend(h, name6, port, dyn)) < 0) return -1;
    total += rv;
  }
  return total;
}

PK_API int pagekite_add_frontend_certname(pagekite_mgr h, const char *name) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_add_frontend_certname")) return -1;
  if (!name || (*name && !pk_api_valid_name(name, PK_NAME_MAX))) {
    return pk_fail(PK_EINVAL, "pagekite_add_frontend_certname: invalid name '%.80s' (not a host "
                   "name)", name ? name : "(null)");
  }
  return pk_certname_add(m, name);
}

PK_API int pagekite_add_service_frontends(pagekite_mgr h, int flags) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_add_service_frontends")) return -1;
  if (add_service_certnames(m, NULL, flags) != 0) return -1;
  return add_pool(h, service_flags(flags), PAGEKITE_NET_V4FRONTENDS, PAGEKITE_NET_V6FRONTENDS,
                  PAGEKITE_NET_FRONTEND_PORT);
}

PK_API int pagekite_add_whitelabel_frontends(pagekite_mgr h, int flags, const char *tld) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_add_whitelabel_frontends")) return -1;
  if (!tld || !*tld || strlen(tld) > 200) {
    pk_fail(PK_EINVAL, "pagekite_add_whitelabel_frontends: tld must be a domain of 1-200 bytes");
    return -1;
  }
  if (add_service_certnames(m, tld, flags) != 0) return -1;
  char name4[PK_NAME_MAX], name6[PK_NAME_MAX];
  snprintf(name4, sizeof(name4), PAGEKITE_NET_WL_V4FRONTENDS, tld);
  snprintf(name6, sizeof(name6), PAGEKITE_NET_WL_V6FRONTENDS, tld);
  return add_pool(h, service_flags(flags), name4, name6, PAGEKITE_NET_WL_FRONTEND_PORT);
}

/* ---- "any time" settings ---- */
#define SETTER(fn, field, expr)                  \
  PK_API int fn(pagekite_mgr h, int value) {     \
    pk_mgr *m = MGR(h);                          \
    if (check_mgr(m)) return -1;                 \
    PK_SET(m->field, (expr));                    \
    pk_manager_wake(m);                          \
    return 0;                                    \
  }

SETTER(pagekite_set_log_mask, log_mask, value)
SETTER(pagekite_enable_http_forwarding_headers, fwd_headers, value != 0)
SETTER(pagekite_enable_fake_ping, fake_ping, value != 0)
SETTER(pagekite_enable_tick_timer, tick_timer_on, value != 0)
SETTER(pagekite_set_conn_eviction_idle_s, evict_idle_s, value > 0 ? value : 0)
SETTER(pagekite_want_spare_frontends, spares, value > 0 ? value : 0)
SETTER(pagekite_set_bail_on_errors, bail_errors, value > 0 ? value : 0)

PK_API int pagekite_enable_watchdog(pagekite_mgr h, int enable) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_enable_watchdog")) return -1;
  m->watchdog_on = enable != 0;
  return 0;
}

PK_API int pagekite_set_housekeeping_min_interval(pagekite_mgr h, int interval) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  /* The lock orders the two setters; the loop reads each field atomically. */
  uv_mutex_lock(&m->lock);
  int rv = interval < PK_HK_HARD_MIN ? PK_HK_HARD_MIN : interval;
  PK_SET(m->hk_min, rv);
  if (PK_GET(m->hk_max) < rv) PK_SET(m->hk_max, rv);
  uv_mutex_unlock(&m->lock);
  return rv;
}

PK_API int pagekite_set_housekeeping_max_interval(pagekite_mgr h, int interval) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  uv_mutex_lock(&m->lock);
  int rv = interval < m->hk_min ? m->hk_min : interval;
  PK_SET(m->hk_max, rv);
  uv_mutex_unlock(&m->lock);
  return rv;
}

PK_API int pagekite_set_openssl_ciphers(pagekite_mgr h, const char *ciphers) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (!ciphers || strlen(ciphers) >= sizeof(m->ciphers))
    return pk_fail(PK_EINVAL, "pagekite_set_openssl_ciphers: ciphers must be a string shorter "
                   "than %zu bytes", sizeof(m->ciphers));
  uv_mutex_lock(&m->lock);
  snprintf(m->ciphers, sizeof(m->ciphers), "%s", ciphers);
  uv_mutex_unlock(&m->lock);
  /* Applies to tunnels opened from now on (the context is rebuilt lazily). */
  if (!m->started && m->client_ctx) {
    SSL_CTX_free(m->client_ctx);
    m->client_ctx = NULL;
  }
  return 0;
}

PK_API int pagekite_set_tls_verify(pagekite_mgr h, int mode, const char *ca_file) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_set_tls_verify")) return -1;
  if (mode != PK_TLS_VERIFY_NONE && mode != PK_TLS_VERIFY_PEER)
    return pk_fail(PK_EINVAL, "pagekite_set_tls_verify: mode %d is not PK_TLS_VERIFY_NONE or "
                   "PK_TLS_VERIFY_PEER", mode);
  if (ca_file && strlen(ca_file) >= sizeof(m->ca_file))
    return pk_fail(PK_EINVAL, "pagekite_set_tls_verify: ca_file is longer than %zu bytes",
                   sizeof(m->ca_file) - 1);
  m->tls_verify = mode;
  snprintf(m->ca_file, sizeof(m->ca_file), "%s", ca_file ? ca_file : "");
  if (m->client_ctx) {
    SSL_CTX_free(m->client_ctx);
    m->client_ctx = NULL;
  }
  return 0;
}

/* ---- lifecycle ---- */
PK_API int pagekite_thread_start(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_thread_start")) return -1;
  if (pk_is_relay(m) && m->nlisteners == 0)
    return pk_fail(PK_ESTATE, "pagekite_thread_start: relay has no listeners "
                   "(pagekite_add_relay_listener)");
  /* A rule that cannot be applied refuses service. */
  if (pk_is_relay(m) && m->require_tls && !m->relay_ctx && m->ntls_eps == 0)
    return pk_fail(PK_ETLS, "pagekite_thread_start: require_tls is on but the relay has no "
                   "certificate (pagekite_set_relay_tls or a TLS endpoint): no tunnel could "
                   "connect");
  if (!pk_is_relay(m) && (m->flags & PK_WITH_SSL) && !pk_client_tls_ctx(m))
    return pk_fail(PK_ETLS, "pagekite_thread_start: cannot set up TLS (CA file or ciphers)");
  /* Its failures record their own reasons (a port that cannot be bound...). */
  return pk_manager_start(m);
}

PK_API int pagekite_thread_wait(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (!m->started || m->thread_joined) {
    return pk_fail(PK_ESTATE, "pagekite_thread_wait: thread not running");
  }
  return pk_manager_join(m);
}

PK_API int pagekite_thread_stop(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (!m->started || m->thread_joined) {
    return pk_fail(PK_ESTATE, "pagekite_thread_stop: thread not running");
  }
  PK_SET(m->stop_requested, 1);
  uv_async_send(&m->wake);
  return pk_manager_join(m);
}

PK_API int pagekite_free(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (m->started && !m->thread_joined) pagekite_thread_stop(h);
  for (int i = 0; i < m->ntunnels && m->tunnels; i++) {
    pk_session_free(&m->tunnels[i].sess);
    pk_ratelimit_free(&m->tunnels[i].ratelimit);
  }
  free(m->tunnels);
  ops_free(m);
  free(m->kites);
  free(m->fes);
  free(m->listeners);
  if (m->domains.d) memset(m->domains.d, 0, (size_t)m->domains.max * sizeof(pk_relay_domain));
  free(m->domains.d);
  pk_reg_free(&m->rkites);
  pk_replay_free(&m->replay);
  pk_iptab_free(&m->unauth_ips);
  if (m->kite_rules) OPENSSL_cleanse(m->kite_rules, (size_t)m->nkite_rules * sizeof(*m->kite_rules));
  free(m->kite_rules);
  pk_plugins_free(m);
  pk_conns_free(m);
  pk_pool_free(&m->blocks);
  if (m->client_ctx) SSL_CTX_free(m->client_ctx);
  pk_relay_config_free(m);
  pk_outbufs_free(m);
  pk_admin_free(m);
  pk_events_free(&m->evring);
  uv_mutex_destroy(&m->lock);
  uv_cond_destroy(&m->cond);
  /* Secrets do not outlive the manager in freed memory. */
  OPENSSL_cleanse(m, sizeof(*m));
  free(m);
  return 0;
}

PK_API int pagekite_get_status(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  uv_mutex_lock(&m->lock);
  int s = m->status;
  m->events_seen = m->events;
  uv_mutex_unlock(&m->lock);
  return s;
}

PK_API char *pagekite_get_log(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return NULL;
  return pk_log_snapshot(m);
}

PK_API int pagekite_next_events(pagekite_mgr h, long long after, pagekite_event *events, int max,
                                int timeout_ms) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (!events || max < 1 || after < 0)
    return pk_fail(PK_EINVAL, "pagekite_next_events: %s", !events ? "events is NULL"
                   : max < 1 ? "max must be at least 1" : "after must be 0 or a seq");
  if (events[0].version != PK_EVENT_VERSION)
    return pk_fail(PK_EINVAL, "pagekite_next_events: events[0].version is %d; this library "
                   "knows %d (PAGEKITE_EVENT_INIT)", events[0].version, PK_EVENT_VERSION);
  return pk_events_next(m, after, events, max, timeout_ms);
}

PK_API int pagekite_poll(pagekite_mgr h, int timeout) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (!m->started) {
    return pk_fail(PK_ESTATE, "pagekite_poll: not running");
  }
  return pk_manager_poll(m, timeout);
}

PK_API int pagekite_tick(pagekite_mgr h) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (!m->started || !PK_GET(m->running)) {
    return pk_fail(PK_ESTATE, "pagekite_tick: not running");
  }
  PK_SET(m->tick_requested, 1);
  pk_manager_wake(m);
  return 0;
}

PK_API void pagekite_perror(pagekite_mgr h, const char *prefix) {
  pk_mgr *m = MGR(h);
  fprintf(stderr, "%s%s%s\n", prefix ? prefix : "", prefix ? ": " : "", pk_get_error());
  if (m) pk_log(m, PK_LOG_ERROR, "%s%s%s", prefix ? prefix : "", prefix ? ": " : "", pk_get_error());
  pk_fail(PK_OK, "no error"); /* reported: the thread's error is reset */
}

/* Traffic counters live (the loop writes them atomically: never behind
 * what a client could already see); kites and tunnels from the copy the
 * loop publishes when they change (and after each of its turns). */
PK_API long long pagekite_get_counter(pagekite_mgr h, int counter) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (counter < 1 || counter >= PK_COUNTERS_N) {
    return pk_fail(PK_EINVAL, "pagekite_get_counter: counter %d is not a PK_COUNTER_* (1-%d)",
                   counter, PK_COUNTERS_N - 1);
  }
  switch (counter) {
    case PK_COUNTER_ERRORS: return PK_GET(m->error_count);
    case PK_COUNTER_STREAMS: return PK_GET(m->c_streams);
    case PK_COUNTER_BYTES_IN: return PK_GET(m->c_bytes_in);
    case PK_COUNTER_BYTES_OUT: return PK_GET(m->c_bytes_out);
    case PK_COUNTER_STREAMS_TOTAL: return PK_GET(m->c_streams_total);
    case PK_COUNTER_REJECTED: return PK_GET(m->c_rejected);
    default: break;
  }
  uv_mutex_lock(&m->lock);
  long long n = m->counters_pub[counter];
  uv_mutex_unlock(&m->lock);
  return n;
}

PK_API const char *pagekite_last_error(void) { return pk_get_error(); }

/* Status codes and their names: one table, generated from the spec (pk_names.h). */
PK_API const char *pagekite_status_name(int status) {
  switch (status) {
#define PK_STATUS_CASE(code, NAME, name) \
  case code:                             \
    return NAME;
    PK_STATUS_NAMES(PK_STATUS_CASE)
#undef PK_STATUS_CASE
    default:
      return "UNKNOWN";
  }
}

PK_API int pagekite_version_number(void) { return PK_VERSION_NUMBER; }

/* ---- kite states (connector) ---- */
/* The kite named by proto ("http" or "http-8080") and name; under the lock. */
static pk_kite *find_kite(pk_mgr *m, const char *proto, const char *name) {
  if (!proto || !name) return NULL;
  const char *dash = strchr(proto, '-');
  size_t pl = dash ? (size_t)(dash - proto) : strlen(proto);
  int port = dash ? atoi(dash + 1) : -1;
  /* Queued changes count as done: a kite added after start is WAITING, a
   * removed one is gone, as soon as the call returns. */
  for (int i = 0; i < m->nkites; i++) {
    pk_kite *k = &m->kites[i];
    if (strlen(k->proto) == pl && strncasecmp(k->proto, proto, pl) == 0 &&
        strcasecmp(k->name, name) == 0 && (port < 0 || k->pport == port) &&
        !op_for_kite(m, PK_OP_DEL_KITE, k->proto, k->name, k->pport))
      return k;
  }
  for (pk_cfg_op *op = m->ops; op; op = op->next) {
    pk_kite *k = &op->kite;
    if (op->kind == PK_OP_ADD_KITE && strlen(k->proto) == pl &&
        strncasecmp(k->proto, proto, pl) == 0 && strcasecmp(k->name, name) == 0 &&
        (port < 0 || k->pport == port))
      return k;
  }
  return NULL;
}

static const int kite_status_of[] = {[PK_KITE_DEAD] = PK_KITE_STATUS_WAITING,
                                     [PK_KITE_LIVE] = PK_KITE_STATUS_FLYING,
                                     [PK_KITE_REJECTED] = PK_KITE_STATUS_REJECTED,
                                     [PK_KITE_DUPLICATE] = PK_KITE_STATUS_DUPLICATE};

PK_API int pagekite_get_kite_status(pagekite_mgr h, const char *proto, const char *kitename) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  uv_mutex_lock(&m->lock);
  pk_kite *k = find_kite(m, proto, kitename);
  int st = k ? kite_status_of[k->state] : -1;
  uv_mutex_unlock(&m->lock);
  if (st < 0)
    pk_fail(PK_ENOTFOUND, "pagekite_get_kite_status: no kite %s:%s", proto ? proto : "(null)",
            kitename ? kitename : "(null)");
  return st;
}

PK_API char *pagekite_get_kite_reason(pagekite_mgr h, const char *proto, const char *kitename) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return NULL;
  uv_mutex_lock(&m->lock);
  pk_kite *k = find_kite(m, proto, kitename);
  pk_outbuf *ob = k ? pk_outbuf_mine(m) : NULL;
  if (ob) snprintf(ob->reason, sizeof(ob->reason), "%s", k->reason);
  uv_mutex_unlock(&m->lock);
  if (!k) {
    pk_fail(PK_ENOTFOUND, "pagekite_get_kite_reason: no kite %s:%s", proto ? proto : "(null)",
            kitename ? kitename : "(null)");
    return NULL;
  }
  if (!ob) pk_fail(PK_ENOMEM, "pagekite_get_kite_reason: out of memory");
  return ob ? ob->reason : NULL;
}

PK_API int pagekite_set_kite_proxy_protocol(pagekite_mgr h, const char *proto, const char *kitename,
                                            int version) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_set_kite_proxy_protocol";
  if (check_mgr(m)) return -1;
  if (version < 0 || version > 2)
    return pk_fail(PK_EINVAL, "%s: version %d is not 0 (none), 1 or 2", fn, version);
  uv_mutex_lock(&m->lock);
  pk_kite *k = find_kite(m, proto, kitename);
  if (k) __atomic_store_n(&k->proxy_proto, version, __ATOMIC_RELAXED);
  uv_mutex_unlock(&m->lock);
  if (!k)
    return pk_fail(PK_ENOTFOUND, "%s: no kite %s:%s", fn, proto ? proto : "(null)",
                   kitename ? kitename : "(null)");
  return 0;
}

PK_API int pagekite_set_rejection_url(pagekite_mgr h, const char *url) {
  pk_mgr *m = MGR(h);
  if (check_mgr(m)) return -1;
  if (url && *url &&
      ((strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) || strlen(url) > 400 ||
       strpbrk(url, "\r\n\"'<> "))) {
    return pk_fail(PK_EINVAL, "pagekite_set_rejection_url: url is not an http:// or https:// URL "
                   "of at most 400 bytes without quotes, spaces or <>: %.80s", url);
  }
  uv_mutex_lock(&m->lock);
  snprintf(m->rejection_url, sizeof(m->rejection_url), "%s", url ? url : "");
  uv_mutex_unlock(&m->lock);
  return 0;
}

PK_API int pagekite_set_proxy(pagekite_mgr h, const char *url) {
  pk_mgr *m = MGR(h);
  if (pk_api_before_start(m, "pagekite_set_proxy")) return -1;
  m->nproxy_addrs = 0;
  if (!url || !*url) return 0;
  char err[200];
  pk_proxy p;
  if (pk_proxy_parse_url(url, &p, err, sizeof(err)) != 0) {
    /* proxy.c says "unsupported proxy scheme" for a scheme it does not speak. */
    int code = strncmp(err, "unsupported", 11) == 0 ? PK_EUNSUPPORTED : PK_EINVAL;
    return pk_fail(code, "pagekite_set_proxy: url: %s", err);
  }
  pk_frontend tmp;
  memset(&tmp, 0, sizeof(tmp));
  snprintf(tmp.host, sizeof(tmp.host), "%s", p.host);
  tmp.port = p.port;
  int saved = m->flags;
  m->flags |= PK_WITH_IPV4 | PK_WITH_IPV6;
  int n = pk_frontend_resolve(m, &tmp);
  m->flags = saved;
  if (n < 1) {
    return pk_fail(PK_ENETWORK, "pagekite_set_proxy: cannot resolve the proxy %s", p.host);
  }
  m->proxy = p;
  m->nproxy_addrs = n < PK_MAX_ORIGIN_ADDRS ? n : PK_MAX_ORIGIN_ADDRS;
  for (int i = 0; i < m->nproxy_addrs; i++) m->proxy_addrs[i] = tmp.addrs[i];
  char what[300];
  pk_proxy_describe(&p, what, sizeof(what));
  pk_log(m, PK_LOG_MANAGER_INFO, "Outgoing proxy %s", what);
  return 0;
}

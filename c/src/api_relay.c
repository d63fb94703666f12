/* api_relay.c - the relay role's configuration calls (listeners, domains,
 * certificates per name, raw ports, port aliases, message of the day) and
 * the lookups relay.c makes in what they configured. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "authdns.h"
#include "internal.h"

#define MGR(h) ((pk_mgr *)(void *)(h))

static int relay_only(pk_mgr *m, const char *fn) {
  if (pk_api_before_start(m, fn)) return -1;
  if (!pk_is_relay(m)) {
    return pk_fail(PK_ESTATE, "%s: manager was not initialized with PK_AS_FRONTEND_RELAY", fn);
  }
  return 0;
}

/* Calls documented "at any time": the relay's tables they change are read
 * by the loop under m->lock (relay.c), so they are changed under it too. */
static int relay_any(pk_mgr *m, const char *fn) {
  if (!m) return pk_fail(PK_EINVAL, "%s: mgr is NULL", fn);
  if (!pk_is_relay(m)) {
    return pk_fail(PK_ESTATE, "%s: manager was not initialized with PK_AS_FRONTEND_RELAY", fn);
  }
  return 0;
}

/* After a change of the domain table: the loop re-checks the live kites. */
static void domains_changed(pk_mgr *m) {
  PK_SET(m->reconfigured, 1);
  pk_manager_wake(m);
}

static void lower(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

PK_API int pagekite_add_relay_listener(pagekite_mgr h, const char *host, int port) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_add_relay_listener")) return -1;
  if (port < 0 || port > 65535)
    return pk_fail(PK_EINVAL, "pagekite_add_relay_listener: port %d is not 0-65535", port);
  if (host && strlen(host) >= 64)
    return pk_fail(PK_EINVAL, "pagekite_add_relay_listener: host is longer than 63 bytes");
  if (m->nlisteners >= m->max_listeners)
    return pk_fail(PK_ELIMIT, "pagekite_add_relay_listener: too many listeners (max_frontends=%d)",
                   m->max_listeners);
  pk_listener *l = &m->listeners[m->nlisteners++];
  snprintf(l->host, sizeof(l->host), "%s", host && *host ? host : "0.0.0.0");
  l->port = port;
  l->mgr = m;
  return 0;
}

static int domain_args_ok(const char *fn, const char *protos, const char *pattern) {
  if (!protos || !*protos || strlen(protos) >= 128)
    return pk_fail(PK_EINVAL, "%s: protos must be a list of 1-127 bytes (\"http,https\")", fn);
  if (!pk_api_valid_name(pattern, PK_NAME_MAX))
    return pk_fail(PK_EINVAL, "%s: pattern '%.80s' is not a name or *.domain", fn,
                   pattern ? pattern : "(null)");
  return 0;
}

PK_API int pagekite_add_relay_domain(pagekite_mgr h, const char *protos, const char *pattern,
                                     const char *secret) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_add_relay_domain";
  if (relay_any(m, fn) || domain_args_ok(fn, protos, pattern)) return -1;
  if (!secret || !*secret || strlen(secret) >= PK_SECRET_MAX)
    return pk_fail(PK_EINVAL, "%s: secret must be 1-%d bytes", fn, PK_SECRET_MAX - 1);
  uv_mutex_lock(&m->lock);
  int rv = pk_domains_put(&m->domains, protos, pattern, secret);
  uv_mutex_unlock(&m->lock);
  if (rv < 0)
    return pk_fail(PK_ELIMIT, "%s: too many domains (at most %d)", fn, m->domains.max);
  if (rv == 1) pk_log(m, PK_LOG_MANAGER_INFO, "Domain %s:%s: secret replaced", protos, pattern);
  /* A replaced secret, and also a new entry: the most specific entry
   * decides (domains.c), so a new "shop.example.com" overrides the
   * "*.example.com" that live kites of that name proved. Either way the
   * loop re-checks them, and those the table no longer allows go. */
  if (rv != 2) domains_changed(m);
  return 0;
}

PK_API int pagekite_remove_relay_domain(pagekite_mgr h, const char *protos, const char *pattern) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_remove_relay_domain";
  if (relay_any(m, fn) || domain_args_ok(fn, protos, pattern)) return -1;
  uv_mutex_lock(&m->lock);
  int rv = pk_domains_remove(&m->domains, protos, pattern);
  uv_mutex_unlock(&m->lock);
  if (rv != 0)
    return pk_fail(PK_ENOTFOUND, "%s: no domain %s:%s (protos and pattern as added)", fn, protos,
                   pattern);
  pk_log(m, PK_LOG_MANAGER_INFO, "Domain %s:%s removed", protos, pattern);
  domains_changed(m);
  return 0;
}

PK_API int pagekite_set_relay_duplicates(pagekite_mgr h, int allow) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_set_relay_duplicates")) return -1;
  m->relay_dups = allow != 0;
  return 0;
}

/* ---- certificates ---- */
/* A TLS server context from PEM files (key_file NULL: the key is in
 * cert_file), or NULL with the error set, naming the files. */
static SSL_CTX *load_server_ctx(const char *fn, const char *cert_file, const char *key_file) {
  const char *kf = key_file ? key_file : cert_file;
  const char *unreadable = access(cert_file, R_OK) ? cert_file : access(kf, R_OK) ? kf : NULL;
  if (unreadable) {
    pk_fail(PK_EIO, "%s: cannot read %s: %s", fn, unreadable, strerror(errno));
    return NULL;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, kf, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    unsigned long e = ERR_get_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    pk_fail(PK_ETLS, "%s: cannot load TLS certificate %s / key %s: %s", fn, cert_file, kf,
            why ? why : "unreadable or mismatched files");
    ERR_clear_error();
    if (ctx) SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  return ctx;
}

PK_API int pagekite_set_relay_tls(pagekite_mgr h, const char *cert_file, const char *key_file) {
  pk_mgr *m = MGR(h);
  if (relay_any(m, "pagekite_set_relay_tls")) return -1;
  if (!cert_file || !key_file)
    return pk_fail(PK_EINVAL, "pagekite_set_relay_tls: %s is NULL",
                   !cert_file ? "cert_file" : "key_file");
  SSL_CTX *ctx = load_server_ctx("pagekite_set_relay_tls", cert_file, key_file);
  if (!ctx) return -1;
  /* Sessions in progress hold their own reference to the old one. */
  uv_mutex_lock(&m->lock);
  SSL_CTX *old = m->relay_ctx;
  m->relay_ctx = ctx;
  uv_mutex_unlock(&m->lock);
  if (old) SSL_CTX_free(old);
  return 0;
}

/* "name" or "*.domain" with at least two labels after the star. */
static int endpoint_name_ok(const char *name) {
  if (!pk_api_valid_name(name, PK_NAME_MAX) || strchr(name + (name[0] == '*'), '*')) return 0;
  if (name[0] != '*') return 1;
  return name[1] == '.' && name[2] && name[2] != '.' && strchr(name + 2, '.');
}

static pk_tls_endpoint *endpoint_exact(const pk_mgr *m, const char *name) {
  for (int i = 0; i < m->ntls_eps; i++)
    if (strcasecmp(m->tls_eps[i].name, name) == 0) return &m->tls_eps[i];
  return NULL;
}

static int grow_endpoints(pk_mgr *m) {
  if (m->ntls_eps < m->max_tls_eps) return 0;
  int want = m->max_tls_eps ? m->max_tls_eps * 2 : 8;
  if (want > PK_MAX_TLS_ENDPOINTS) want = PK_MAX_TLS_ENDPOINTS;
  if (m->ntls_eps >= want) {
    return pk_fail(PK_ELIMIT, "pagekite_add_relay_tls_endpoint: too many endpoints (at most %d)",
                   PK_MAX_TLS_ENDPOINTS);
  }
  pk_tls_endpoint *n = realloc(m->tls_eps, (size_t)want * sizeof(*n));
  if (!n) {
    return pk_fail(PK_ENOMEM, "pagekite_add_relay_tls_endpoint: out of memory");
  }
  m->tls_eps = n;
  m->max_tls_eps = want;
  return 0;
}

PK_API int pagekite_add_relay_tls_endpoint(pagekite_mgr h, const char *name, const char *cert_file,
                                           const char *key_file) {
  pk_mgr *m = MGR(h);
  if (relay_any(m, "pagekite_add_relay_tls_endpoint")) return -1;
  static const char fn[] = "pagekite_add_relay_tls_endpoint";
  if (!name || !endpoint_name_ok(name))
    return pk_fail(PK_EINVAL, "%s: name '%.80s' is not a host name or *.domain", fn,
                   name ? name : "(null)");
  if (!cert_file || !*cert_file)
    return pk_fail(PK_EINVAL, "%s: cert_file must name a PEM file", fn);
  /* Loaded outside the lock (file I/O); swapped in under it.  An existing
   * name gets the new certificate (rotation): handshakes in progress keep
   * the old one, which goes with its last session. */
  SSL_CTX *ctx = load_server_ctx(fn, cert_file, key_file);
  if (!ctx) return -1;
  uv_mutex_lock(&m->lock);
  SSL_CTX *old = NULL;
  pk_tls_endpoint *e = endpoint_exact(m, name);
  int rv = 0;
  if (e) {
    old = e->ctx;
    e->ctx = ctx;
  } else if ((rv = grow_endpoints(m)) == 0) {
    e = &m->tls_eps[m->ntls_eps++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    lower(e->name);
    e->ctx = ctx;
  } else {
    old = ctx; /* not kept */
  }
  uv_mutex_unlock(&m->lock);
  if (old) SSL_CTX_free(old);
  return rv;
}

PK_API int pagekite_remove_relay_tls_endpoint(pagekite_mgr h, const char *name) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_remove_relay_tls_endpoint";
  if (relay_any(m, fn)) return -1;
  if (!name || !endpoint_name_ok(name))
    return pk_fail(PK_EINVAL, "%s: name '%.80s' is not a host name or *.domain", fn,
                   name ? name : "(null)");
  uv_mutex_lock(&m->lock);
  SSL_CTX *old = NULL;
  pk_tls_endpoint *e = endpoint_exact(m, name);
  if (e) {
    old = e->ctx;
    *e = m->tls_eps[--m->ntls_eps];
  }
  uv_mutex_unlock(&m->lock);
  if (!old) return pk_fail(PK_ENOTFOUND, "%s: %s has no endpoint", fn, name);
  SSL_CTX_free(old);
  return 0;
}

PK_API int pagekite_set_relay_tls_default(pagekite_mgr h, const char *name) {
  pk_mgr *m = MGR(h);
  if (relay_any(m, "pagekite_set_relay_tls_default")) return -1;
  if (name && *name && !pk_api_valid_name(name, PK_NAME_MAX)) {
    return pk_fail(PK_EINVAL, "pagekite_set_relay_tls_default: name '%.80s' is not a valid name",
                   name);
  }
  uv_mutex_lock(&m->lock);
  snprintf(m->tls_default, sizeof(m->tls_default), "%s", name ? name : "");
  lower(m->tls_default);
  uv_mutex_unlock(&m->lock);
  return 0;
}

/* An endpoint for name: exact, else the wildcard one label up. */
static const pk_tls_endpoint *endpoint_for(const pk_mgr *m, const char *name) {
  const pk_tls_endpoint *e = endpoint_exact(m, name);
  const char *dot = strchr(name, '.');
  if (e || !dot || !strchr(dot + 1, '.')) return e;
  char wild[PK_NAME_MAX + 2];
  snprintf(wild, sizeof(wild), "*%s", dot);
  return endpoint_exact(m, wild);
}

/* Under the lock. */
static SSL_CTX *tls_ctx_locked(const pk_mgr *m, const char *name) {
  if (!name || !*name) name = m->tls_default;
  const pk_tls_endpoint *e = *name ? endpoint_for(m, name) : NULL;
  return e ? e->ctx : m->relay_ctx;
}

SSL_CTX *pk_relay_tls_ctx_ref(pk_mgr *m, const char *name) {
  uv_mutex_lock(&m->lock);
  SSL_CTX *ctx = tls_ctx_locked(m, name);
  if (ctx) SSL_CTX_up_ref(ctx);
  uv_mutex_unlock(&m->lock);
  return ctx;
}

int pk_relay_has_tls(pk_mgr *m, const char *name) {
  uv_mutex_lock(&m->lock);
  int has = tls_ctx_locked(m, name) != NULL;
  uv_mutex_unlock(&m->lock);
  return has;
}

/* ---- raw ports, port aliases, message of the day ---- */
/* Parses "22,2222,virtual" into the bitmap; -1 on anything else. */
static int parse_raw_ports(const char *ports, unsigned char *bits, int *virt) {
  for (const char *p = ports; *p;) {
    size_t len = strcspn(p, ",");
    char tok[16];
    if (len == 0 || len >= sizeof(tok)) return -1;
    memcpy(tok, p, len);
    tok[len] = 0;
    char *end;
    long v = strtol(tok, &end, 10);
    if (strcasecmp(tok, "virtual") == 0)
      *virt = 1;
    else if (*end || tok[0] < '0' || tok[0] > '9' || v < 1 || v > 65535)
      return -1;
    else
      bits[v / 8] |= (unsigned char)(1u << (v % 8));
    p += len;
    if (*p == ',' && !*++p) return -1;
  }
  return 0;
}

PK_API int pagekite_set_relay_raw_ports(pagekite_mgr h, const char *ports) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_set_relay_raw_ports")) return -1;
  unsigned char bits[sizeof(m->raw_ports)];
  int virt = 0;
  memset(bits, 0, sizeof(bits));
  if (ports && parse_raw_ports(ports, bits, &virt) != 0) {
    return pk_fail(PK_EINVAL, "pagekite_set_relay_raw_ports: ports: expected ports (1-65535) "
                   "and/or \"virtual\", comma-separated, not '%.80s'", ports);
  }
  memcpy(m->raw_ports, bits, sizeof(bits));
  m->raw_virtual = virt;
  return 0;
}

int pk_relay_raw_port_ok(const pk_mgr *m, int port) {
  if (port < 1 || port > 65535) return 0;
  return m->raw_virtual || (m->raw_ports[port / 8] & (1u << (port % 8)));
}

PK_API int pagekite_add_relay_port_alias(pagekite_mgr h, int port, int alias_of) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_add_relay_port_alias")) return -1;
  static const char fn[] = "pagekite_add_relay_port_alias";
  if (port < 1 || port > 65535)
    return pk_fail(PK_EINVAL, "%s: port %d is not 1-65535", fn, port);
  if (alias_of < 1 || alias_of > 65535 || alias_of == port)
    return pk_fail(PK_EINVAL, "%s: alias_of %d is not 1-65535 and other than port", fn, alias_of);
  for (int i = 0; i < m->nport_alias; i++)
    if (m->port_alias[i][0] == port)
      return pk_fail(PK_EEXIST, "%s: port %d is aliased already", fn, port);
  if (m->nport_alias >= PK_MAX_PORT_ALIASES)
    return pk_fail(PK_ELIMIT, "%s: too many aliases (at most %d)", fn, PK_MAX_PORT_ALIASES);
  m->port_alias[m->nport_alias][0] = port;
  m->port_alias[m->nport_alias][1] = alias_of;
  m->nport_alias++;
  return 0;
}

int pk_relay_port_alias(const pk_mgr *m, int port) {
  for (int i = 0; i < m->nport_alias; i++)
    if (m->port_alias[i][0] == port) return m->port_alias[i][1];
  return port;
}

PK_API int pagekite_set_relay_motd(pagekite_mgr h, const char *motd) {
  pk_mgr *m = MGR(h);
  if (relay_any(m, "pagekite_set_relay_motd")) return -1;
  size_t n = motd ? strlen(motd) : 0;
  if (n > PK_MOTD_MAX) {
    return pk_fail(PK_EINVAL, "pagekite_set_relay_motd: motd has %zu bytes, at most %d", n,
                   PK_MOTD_MAX);
  }
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)motd[i] < ' ' && motd[i] != '\n' && motd[i] != '\t') {
      return pk_fail(PK_EINVAL, "pagekite_set_relay_motd: motd has a control character at byte %zu",
                     i);
    }
  uv_mutex_lock(&m->lock);
  snprintf(m->motd, sizeof(m->motd), "%s", motd ? motd : ""); /* for the next tunnels */
  uv_mutex_unlock(&m->lock);
  return 0;
}

/* ---- access rules (acl.c); before start, like the rest of the policy ---- */

static int add_acl(pk_mgr *m, pk_acl *a, const char *fn, const char *rule) {
  if (relay_only(m, fn)) return -1;
  if (!rule) return pk_fail(PK_EINVAL, "%s: rule is NULL", fn);
  char why[320];
  if (pk_acl_add(a, rule, why, sizeof(why)) != 0) {
    if (a->n >= PK_ACL_MAX_RULES) return pk_fail(PK_ELIMIT, "%s: %s", fn, why);
    return pk_fail(PK_EINVAL, "%s: rule %s", fn, why);
  }
  return 0;
}

PK_API int pagekite_add_relay_client_acl(pagekite_mgr h, const char *rule) {
  pk_mgr *m = MGR(h);
  return add_acl(m, m ? &m->client_acl : NULL, "pagekite_add_relay_client_acl", rule);
}

PK_API int pagekite_add_relay_tunnel_acl(pagekite_mgr h, const char *rule) {
  pk_mgr *m = MGR(h);
  return add_acl(m, m ? &m->tunnel_acl : NULL, "pagekite_add_relay_tunnel_acl", rule);
}

/* ---- --authdomain (authq.c) ---- */
PK_API int pagekite_add_relay_authdomain(pagekite_mgr h, const char *spec) {
  pk_mgr *m = MGR(h);
  const char *fn = "pagekite_add_relay_authdomain";
  if (relay_only(m, fn)) return -1;
  if (!spec) return pk_fail(PK_EINVAL, "%s: spec is NULL", fn);
  char kd[PK_NAME_MAX], target[PK_NAME_MAX];
  if (pk_authdomain_split(spec, kd, sizeof(kd), target, sizeof(target)) != 0)
    return pk_fail(PK_EINVAL, "%s: \"%s\" is not SUFFIX or KITE-DOMAIN:SUFFIX", fn, spec);
  if (pk_authdomain_is_app(target)) {
    /* An auth app (authapp.c): a program we can run, named with no byte a
     * server's line protocol would split or choke on. */
    for (const char *p = target; *p; p++)
      if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
        return pk_fail(PK_EINVAL, "%s: the auth app path \"%s\" holds a space or control character",
                       fn, target);
    struct stat st;
    if (stat(target, &st) == 0 && !S_ISREG(st.st_mode)) errno = EISDIR;
    else if (access(target, X_OK) == 0) errno = 0;
    if (errno != 0)
      return pk_fail(PK_EINVAL, "%s: the auth app %s cannot be run: %s", fn, target,
                     strerror(errno));
  } else {
    char probe[PK_AUTHDNS_NAME_MAX + 1];
    if (pk_authdns_query("s", "t", "g", "http", "a", target, probe, sizeof(probe)) != 0)
      return pk_fail(PK_EINVAL, "%s: \"%s\" is not a DNS suffix", fn, target);
  }
  int i = 0;
  while (i < m->nauthdomains && strcmp(m->authdomains[i].kite_domain, kd) != 0) i++;
  if (i == m->nauthdomains && m->nauthdomains >= PK_MAX_AUTHDOMAINS)
    return pk_fail(PK_ELIMIT, "%s: too many auth domains (at most %d)", fn, PK_MAX_AUTHDOMAINS);
  /* the same kite domain again (or a second default) replaces it */
  snprintf(m->authdomains[i].kite_domain, PK_NAME_MAX, "%s", kd);
  snprintf(m->authdomains[i].target, PK_NAME_MAX, "%s", target);
  if (i == m->nauthdomains) m->nauthdomains++;
  return 0;
}

PK_API int pagekite_set_relay_authfail_closed(pagekite_mgr h, int closed) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_set_relay_authfail_closed")) return -1;
  if (closed != 0 && closed != 1)
    return pk_fail(PK_EINVAL, "pagekite_set_relay_authfail_closed: closed %d is not 0 or 1", closed);
  m->authfail_closed = closed;
  return 0;
}

PK_API int pagekite_set_relay_require_tls(pagekite_mgr h, int require) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_set_relay_require_tls")) return -1;
  if (require != 0 && require != 1)
    return pk_fail(PK_EINVAL, "pagekite_set_relay_require_tls: require %d is not 0 or 1", require);
  m->require_tls = require;
  return 0;
}

PK_API int pagekite_add_relay_ratelimit_ips(pagekite_mgr h, const char *limit) {
  pk_mgr *m = MGR(h);
  if (relay_only(m, "pagekite_add_relay_ratelimit_ips")) return -1;
  if (!limit) return pk_fail(PK_EINVAL, "pagekite_add_relay_ratelimit_ips: limit is NULL");
  pk_rl_rule r;
  char why[320];
  if (pk_ratelimit_parse(limit, r.name, sizeof(r.name), &r.ips, &r.secs, why, sizeof(why)) != 0)
    return pk_fail(PK_EINVAL, "pagekite_add_relay_ratelimit_ips: limit %s", why);
  for (int i = 0; i < m->nrl_rules; i++)
    if (strcmp(m->rl_rules[i].name, r.name) == 0) { /* pagekite.py: the last one wins */
      m->rl_rules[i] = r;
      return 0;
    }
  if (m->nrl_rules >= PK_ACL_MAX_RULES)
    return pk_fail(PK_ELIMIT, "pagekite_add_relay_ratelimit_ips: too many limits (at most %d)",
                   PK_ACL_MAX_RULES);
  pk_rl_rule *g = realloc(m->rl_rules, (size_t)(m->nrl_rules + 1) * sizeof(*g));
  if (!g) return pk_fail(PK_ENOMEM, "pagekite_add_relay_ratelimit_ips: out of memory");
  m->rl_rules = g;
  m->rl_rules[m->nrl_rules++] = r;
  return 0;
}

void pk_relay_config_free(pk_mgr *m) {
  pk_acl_free(&m->client_acl);
  pk_acl_free(&m->tunnel_acl);
  free(m->rl_rules);
  m->rl_rules = NULL;
  m->nrl_rules = 0;
  for (int i = 0; i < m->ntls_eps; i++) SSL_CTX_free(m->tls_eps[i].ctx);
  free(m->tls_eps);
  m->tls_eps = NULL;
  m->ntls_eps = m->max_tls_eps = 0;
  if (m->relay_ctx) SSL_CTX_free(m->relay_ctx);
  m->relay_ctx = NULL;
}

PK_API int pagekite_add_relay_proxy_source(pagekite_mgr h, const char *cidr) {
  pk_mgr *m = MGR(h);
  static const char fn[] = "pagekite_add_relay_proxy_source";
  if (relay_only(m, fn)) return -1;
  pk_pp_cidr net;
  char why[160];
  if (pk_pp_cidr_parse(cidr, &net, why, sizeof(why)) != 0) return pk_fail(PK_EINVAL, "%s: %s", fn, why);
  if (m->nproxy_sources >= PK_MAX_PROXY_SOURCES)
    return pk_fail(PK_ELIMIT, "%s: too many sources (at most %d)", fn, PK_MAX_PROXY_SOURCES);
  m->proxy_sources[m->nproxy_sources++] = net;
  return 0;
}

int pk_relay_proxy_source(const pk_mgr *m, const char *ip) {
  for (int i = 0; i < m->nproxy_sources; i++)
    if (pk_pp_cidr_match(&m->proxy_sources[i], ip)) return 1;
  return 0;
}

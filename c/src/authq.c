/* authq.c - the relay's --authdomain lookups, off the loop.
 *
 * A kite request no --domain signs but an --authdomain covers is asked of
 * the operator's DNS authority: the name authdns.c builds is resolved with
 * uv_getaddrinfo (libuv's thread pool, the system resolver as pagekite.py's
 * gethostbyname_ex), AI_CANONNAME telling the CNAME that carries reasons and
 * extended quotas.  At most PK_AUTHQ_ACTIVE lookups run at once (the pool is
 * shared and a dead server holds a thread for its whole timeout), at most
 * PK_AUTHQ_WAITING wait; past that a lookup fails at once.  A failed lookup
 * (timeout, SERVFAIL, NXDOMAIN, a malformed answer) fails open, as
 * pagekite.py: the kite flies, with no quota; --authfail_closed refuses it.
 * Nothing here blocks the loop, so tunnels flying and kites with static
 * secrets never wait on the authority.  Answers are not cached: every name
 * carries the relay's one-time challenge and the kite's signature, so no
 * two requests share one (pagekite.py does not cache either).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authdns.h"
#include "internal.h"

typedef struct pk_authq_job {
  uv_getaddrinfo_t req;
  struct pk_authq_job *next;
  pk_mgr *m;
  pk_tunnel *t; /* NULL once the tunnel is gone */
  pk_kite_req k;
  char qname[PK_AUTHDNS_NAME_MAX + 1];
  int active;
} pk_authq_job;

static const char *target_for(pk_mgr *m, const char *name) {
  pk_authdomain_rule rules[PK_MAX_AUTHDOMAINS];
  const char *dflt = NULL;
  int n = 0;
  for (int i = 0; i < m->nauthdomains; i++) {
    if (!m->authdomains[i].kite_domain[0]) {
      dflt = m->authdomains[i].target;
      continue;
    }
    rules[n].kite_domain = m->authdomains[i].kite_domain;
    rules[n++].target = m->authdomains[i].target;
  }
  const char *t = pk_authdomain_select(rules, n, dflt, name);
  return t && t[0] ? t : NULL;
}

int pk_authq_covers(pk_mgr *m, const pk_kite_req *k) {
  return m->nauthdomains && target_for(m, k->name) != NULL;
}

static void unlink_job(pk_mgr *m, pk_authq_job *j) {
  for (pk_authq_job **p = &m->authq; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      return;
    }
}

int pk_authq_fail(pk_mgr *m, const pk_kite_req *k, const char *what, const char **reason) {
  pk_log(m, PK_LOG_MANAGER_ERROR, "Auth lookup failed for %s:%s (%s): %s", k->protoport, k->name,
         what, m->authfail_closed ? "fail-closed, refused" : "fail-open, accepted");
  *reason = m->authfail_closed ? "unauthorized" : NULL;
  return !m->authfail_closed;
}
#define failed pk_authq_fail

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res);

static int start(pk_authq_job *j) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_CANONNAME;
  int rv = uv_getaddrinfo(&j->m->loop, &j->req, on_resolved, j->qname, NULL, &hints);
  if (rv == 0) {
    j->active = 1;
    j->m->authq_active++;
  }
  return rv;
}

/* The next waiting lookups, as threads come free.  One that cannot start
 * is answered as failed (we are in a loop callback, not in a session). */
static void start_waiting(pk_mgr *m) {
  for (pk_authq_job *j = m->authq; j && m->authq_active < PK_AUTHQ_ACTIVE && !m->authq_stopping;) {
    pk_authq_job *next = j->next;
    if (!j->active) {
      m->authq_waiting--;
      int rv = j->t ? start(j) : -1;
      if (rv != 0) {
        const char *why = NULL;
        if (j->t) {
          int ok = failed(m, &j->k, uv_strerror(rv), &why);
          pk_relay_auth_answer(j->t, &j->k, ok, why, NULL, 0, 0, 0);
        }
        unlink_job(m, j);
        free(j);
      }
    }
    j = next;
  }
}

/* The canonical name, when the answer was a CNAME (it differs from the
 * name asked, final dots aside); else NULL. */
static const char *cname_of(const pk_authq_job *j, const struct addrinfo *res) {
  const char *c = res ? res->ai_canonname : NULL;
  if (!c) return NULL;
  size_t cl = strlen(c), ql = strlen(j->qname);
  if (cl && c[cl - 1] == '.') cl--;
  if (ql && j->qname[ql - 1] == '.') ql--;
  return cl == ql && strncasecmp(c, j->qname, cl) == 0 ? NULL : c;
}

static void answer(pk_authq_job *j, int status, struct addrinfo *res) {
  pk_mgr *m = j->m;
  const char *why = NULL;
  const struct addrinfo *a = res;
  while (a && a->ai_family != AF_INET) a = a->ai_next;
  pk_authdns_answer ans;
  if (status != 0 || !a) {
    int ok = failed(m, &j->k, status ? uv_strerror(status) : "no address", &why);
    pk_relay_auth_answer(j->t, &j->k, ok, why, NULL, 0, 0, 0);
    return;
  }
  const unsigned char *ip = (const unsigned char *)&((const struct sockaddr_in *)a->ai_addr)->sin_addr;
  if (pk_authdns_decode(ip, cname_of(j, res), &ans) != 0) {
    int ok = failed(m, &j->k, "malformed answer", &why);
    pk_relay_auth_answer(j->t, &j->k, ok, why, NULL, 0, 0, 0);
    return;
  }
  pk_authq_reply(m, j->t, &j->k, &ans, pk_authdns_refusal(&ans), "DNS");
}

void pk_authq_reply(pk_mgr *m, pk_tunnel *t, const pk_kite_req *k, const pk_authdns_answer *ans,
                    const char *why, const char *who) {
  char extra[256];
  pk_wbuf b;
  pk_wbuf_init(&b, extra, sizeof(extra));
  pk_authdns_quotas q;
  pk_authdns_quotas_init(&q);
  pk_authdns_quotas_add(&q, ans);
  if (!why) pk_authdns_quotas_headers(&q, &b);
  pk_log(m, PK_LOG_MANAGER_INFO, "Auth answer (%s) for %s:%s: %s (quota %lld)", who, k->protoport,
         k->name, why ? why : "ok", ans->quota);
  pk_relay_auth_answer(t, k, !why, why, extra, pk_wbuf_ok(&b) ? b.len : 0,
                       !why && ans->ipc > 0 && ans->ips > 0 ? (int)ans->ipc : 0, (int)ans->ips);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  pk_authq_job *j = req->data;
  pk_mgr *m = j->m;
  j->active = 0;
  m->authq_active--;
  if (j->t && !m->authq_stopping && status != UV_ECANCELED) answer(j, status, res);
  uv_freeaddrinfo(res);
  unlink_job(m, j);
  free(j);
  start_waiting(m);
}

pk_auth_verdict pk_authq_ask(pk_tunnel *t, const pk_kite_req *k, const char **reason) {
  pk_mgr *m = t->mgr;
  const char *target = target_for(m, k->name);
  *reason = NULL;
  pk_authq_job *j = NULL;
  if (!target) {
    *reason = "unknown";
    return PK_AUTH_INVALID;
  }
  if (t->sess.auth_pending >= PK_MAX_KITES_PER_TUNNEL) {
    *reason = "quota"; /* more than the kites a tunnel may fly */
    return PK_AUTH_INVALID;
  }
  if (pk_authdomain_is_app(target)) return pk_authapp_ask(t, k, target, reason);
  if (m->authq_stopping || (m->authq_active >= PK_AUTHQ_ACTIVE &&
                            m->authq_waiting >= PK_AUTHQ_WAITING))
    return failed(m, k, "too many lookups waiting", reason) ? PK_AUTH_OK : PK_AUTH_INVALID;
  if (!(j = calloc(1, sizeof(*j))))
    return failed(m, k, "out of memory", reason) ? PK_AUTH_OK : PK_AUTH_INVALID;
  if (pk_authdns_query(k->bsalt, k->token, k->sign, k->protoport, k->name, target, j->qname,
                       sizeof(j->qname)) != 0) {
    free(j);
    pk_log(m, PK_LOG_MANAGER_ERROR, "Kite %s:%s: its auth query is not a valid DNS name",
           k->protoport, k->name);
    *reason = "unauthorized";
    return PK_AUTH_INVALID;
  }
  j->m = m;
  j->t = t;
  j->k = *k;
  j->req.data = j;
  if (m->authq_active < PK_AUTHQ_ACTIVE) {
    int rv = start(j);
    if (rv != 0) {
      free(j);
      return failed(m, k, uv_strerror(rv), reason) ? PK_AUTH_OK : PK_AUTH_INVALID;
    }
  } else {
    m->authq_waiting++;
  }
  pk_authq_job **tail = &m->authq; /* in order: the oldest waiting starts first */
  while (*tail) tail = &(*tail)->next;
  *tail = j;
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Asking %s about kite %s:%s", target, k->protoport, k->name);
  return PK_AUTH_PENDING;
}

void pk_authq_forget(pk_mgr *m, pk_tunnel *t) {
  pk_authapp_forget(m, t);
  for (pk_authq_job *j = m->authq; j; j = j->next)
    if (j->t == t) j->t = NULL;
}

void pk_authq_stop(pk_mgr *m) {
  m->authq_stopping = 1;
  pk_authapp_stop(m);
  for (pk_authq_job *j = m->authq, *next; j; j = next) {
    next = j->next;
    j->t = NULL;
    if (j->active) {
      uv_cancel((uv_req_t *)&j->req); /* a running lookup ends on its own */
      continue;
    }
    m->authq_waiting--;
    unlink_job(m, j);
    free(j);
  }
}

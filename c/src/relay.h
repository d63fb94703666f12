/* relay.h - the relay role's domains, listeners and kite registry (relay.c).
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_RELAY_H
#define PK_RELAY_H

/* ---- relay ---- */
/* pk_relay_domain, pk_domains: domains.h (the --domain table). */

typedef struct {
  uv_tcp_t tcp;
  pk_mgr *mgr;
  char host[64];
  int port;
  int active;
} pk_listener;

/* A certificate for one name or "*.domain" (pagekite.py's --tls_endpoint). */
typedef struct {
  char name[PK_NAME_MAX];
  SSL_CTX *ctx;
} pk_tls_endpoint;

/* A kite registered on the relay: (proto, port, name) -> tunnel, an entry
 * of the registry (registry.h; its tunnel is a pk_tunnel). */
/* --ratelimit_ips: KITE (or "*") -> IPS per SECONDS (acl.c). */
typedef struct pk_rl_rule {
  char name[PK_NAME_MAX];
  int ips, secs;
} pk_rl_rule;

typedef pk_reg_entry pk_relay_kite;


/* ---- relay.c ---- */
#define pk_relay_match pk_domain_match
/* Loop thread: re-checks every live kite against the current domain table
 * (after pagekite_add/remove_relay_domain); drops those it no longer
 * allows, and closes tunnels left without a kite. */
void pk_relay_recheck_kites(pk_mgr *m);
/* Loop thread (authq.c): the authority answered a kite request of t left
 * pending: ok claims it (extra: quota header lines for the connector; ipc
 * per ips seconds: a visitor rate limit, ipc 0 for none), else it is
 * refused with reason.  A head's reply goes out with its last answer. */
void pk_relay_auth_answer(pk_tunnel *t, const pk_kite_req *k, int ok, const char *reason,
                          const char *extra, size_t extra_n, int ipc, int ips);

/* ---- authq.c: --authdomain lookups (authdns.h has the scheme) ---- */
/* 1 when an --authdomain covers the kite's name. */
int pk_authq_covers(pk_mgr *m, const pk_kite_req *k);
/* Asks the authority about a kite request of t: PK_AUTH_PENDING (the answer
 * comes through pk_relay_auth_answer), or at once PK_AUTH_OK (fail-open) or
 * PK_AUTH_INVALID with *reason. */
pk_auth_verdict pk_authq_ask(pk_tunnel *t, const pk_kite_req *k, const char **reason);
/* The tunnel is gone: its lookups answer nobody. */
void pk_authq_forget(pk_mgr *m, pk_tunnel *t);
/* The loop stops: lookups not started are dropped, the others cancelled
 * where libuv can (their callbacks run before the loop ends). */
void pk_authq_stop(pk_mgr *m);
/* A lookup that could not be made or answered: logs it; 1 when it fails
 * open (the kite flies), else 0 with *reason. */
int pk_authq_fail(pk_mgr *m, const pk_kite_req *k, const char *what, const char **reason);
/* The authority's decoded answer (why: its refusal, NULL to accept) sent
 * back with its quota headers; who names the authority in the log. */
void pk_authq_reply(pk_mgr *m, pk_tunnel *t, const pk_kite_req *k, const pk_authdns_answer *ans,
                    const char *why, const char *who);

/* ---- authapp.c: --authdomain=/path/to/app (authapp_proto.h has the protocol) ---- */
/* Loop thread, at start: asks every app for its capabilities. */
void pk_authapp_start(pk_mgr *m);
/* As pk_authq_ask, for a kite the app at path covers. */
pk_auth_verdict pk_authapp_ask(pk_tunnel *t, const pk_kite_req *k, const char *path,
                               const char **reason);
void pk_authapp_forget(pk_mgr *m, pk_tunnel *t);
/* Queries dropped, children told to end (SIGTERM, SIGKILL after a grace
 * time) and reaped before the loop ends. */
void pk_authapp_stop(pk_mgr *m);
/* The listening port a visitor's port stands for (--portalias), or port. */
int pk_relay_port_alias(const pk_mgr *m, int port);
/* From a load balancer that must send a PROXY header (pagekite_add_relay_proxy_source). */
int pk_relay_proxy_source(const pk_mgr *m, const char *ip);

/* ---- api_relay.c ---- */
/* The server context for a name: its endpoint, else the wildcard one label
 * up, else the catch-all certificate (pagekite_set_relay_tls), else NULL.
 * name NULL or "": the --tls_default name's, else the catch-all. */
/* The reference is the caller's (SSL_CTX_free), taken under the manager's
 * lock: certificates may be replaced from any thread at any time. */
SSL_CTX *pk_relay_tls_ctx_ref(pk_mgr *m, const char *name);
/* Whether pk_relay_tls_ctx_ref would find one (under the lock). */
int pk_relay_has_tls(pk_mgr *m, const char *name);
int pk_relay_raw_port_ok(const pk_mgr *m, int port);
void pk_relay_config_free(pk_mgr *m);

#endif

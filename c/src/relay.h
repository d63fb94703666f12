/* relay.h - the relay role's domains, listeners and kite registry (relay.c).
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_RELAY_H
#define PK_RELAY_H

/* ---- relay ---- */
typedef struct {
  char protos[128];
  char pattern[PK_NAME_MAX];
  char secret[PK_SECRET_MAX];
} pk_relay_domain;

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
int pk_relay_match(const char *pattern, const char *name);
/* The listening port a visitor's port stands for (--portalias), or port. */
int pk_relay_port_alias(const pk_mgr *m, int port);
/* From a load balancer that must send a PROXY header (pagekite_add_relay_proxy_source). */
int pk_relay_proxy_source(const pk_mgr *m, const char *ip);

/* ---- api_relay.c ---- */
/* The server context for a name: its endpoint, else the wildcard one label
 * up, else the catch-all certificate (pagekite_set_relay_tls), else NULL.
 * name NULL or "": the --tls_default name's, else the catch-all. */
SSL_CTX *pk_relay_tls_ctx(const pk_mgr *m, const char *name);
int pk_relay_raw_port_ok(const pk_mgr *m, int port);
void pk_relay_config_free(pk_mgr *m);

#endif

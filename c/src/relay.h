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

/* A kite registered on the relay: (proto, port, name) -> tunnel, an entry
 * of the registry (registry.h; its tunnel is a pk_tunnel). */
typedef pk_reg_entry pk_relay_kite;


/* ---- relay.c ---- */
int pk_relay_match(const char *pattern, const char *name);

#endif

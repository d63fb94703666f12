/* connector.h - the connector role's kites and frontends (connector.c).
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_CONNECTOR_H
#define PK_CONNECTOR_H

/* ---- kites and frontends (connector) ---- */
typedef enum { PK_KITE_DEAD = 0, PK_KITE_LIVE, PK_KITE_REJECTED, PK_KITE_DUPLICATE } pk_kite_state;

typedef struct {
  char proto[32];
  char name[PK_NAME_MAX];
  int pport;
  char secret[PK_SECRET_MAX];
  char backend[PK_NAME_MAX];
  int lport;
  struct sockaddr_storage origins[PK_MAX_ORIGIN_ADDRS]; /* tried in turn */
  int norigins, origin_first; /* the address that answered last */
  char bsalt[PK_TOKEN_LEN + 1];
  char fsalt[PK_TOKEN_LEN + 1]; /* challenge kept for a signed reconnect */
  pk_kite_state state;
  pk_tunnel *tunnel;  /* tunnel flying it, if live */
  char reason[64];
  int proxy_proto;    /* PROXY header version to the origin (0: none); atomic */
} pk_kite;

typedef struct {
  char host[PK_NAME_MAX];
  int port;
  int update_dns;
  int naddrs;
  struct sockaddr_storage addrs[PK_MAX_ADDRS];
  int ping_ms[PK_MAX_ADDRS];   /* measured /ping latency, -1 unknown */
  int errors[PK_MAX_ADDRS];
  uint64_t last_fail[PK_MAX_ADDRS];
  char session_id[PK_MAX_ADDRS][80];
  pk_tunnel *tunnel[PK_MAX_ADDRS];
  char signed_next[PK_MAX_ADDRS]; /* reconnect here with the challenges answered */
  int addrs_gen;                  /* bumped when addresses change slots (pings) */
  uv_getaddrinfo_t gai;
  int gai_busy;
} pk_frontend;


/* A change asked for from another thread after start, applied by the loop
 * (pk_connector_reconfigure): kites and frontends are read by the loop
 * without the lock, and streams point at kites, so only the loop moves
 * them. */
enum { PK_OP_ADD_KITE = 1, PK_OP_DEL_KITE, PK_OP_ADD_FE, PK_OP_DEL_FE };
typedef struct pk_cfg_op {
  struct pk_cfg_op *next;
  int kind;
  pk_kite kite;   /* ADD_KITE: the kite; DEL_KITE: proto, name, pport */
  pk_frontend fe; /* ADD_FE: resolved; DEL_FE: host, port */
} pk_cfg_op;

/* ---- connector.c ---- */
/* Loop thread: applies the queued pk_cfg_ops (m->ops). */
void pk_connector_reconfigure(pk_mgr *m);
int pk_frontend_resolve(pk_mgr *m, pk_frontend *fe);
/* fe's addresses become fresh[0..n) (at most PK_MAX_ADDRS), in that order;
 * what is known of each (ping, failures, session, tunnel) moves with its
 * address, new ones start unknown, vanished ones carrying a tunnel stay at
 * the end.  Returns the new count.  Loop thread (or before it runs). */
int pk_addrs_merge(pk_frontend *fe, const struct sockaddr_storage *fresh, int n);
/* The same with the given PK_WITH_IPV4/6 flags (any thread). */
int pk_origin_resolve(pk_mgr *m, pk_frontend *fe, int flags);
/* Forwarding headers (connector HTTP streams, httpfwd.c underneath). */
int pk_http_forward_rewrite(pk_conn *s, const char *data, size_t n);
void pk_http_forward_response(pk_conn *s, const char *data, size_t n);
size_t pk_http_forward_parked(const pk_conn *s);
int pk_http_forward_waiting(const pk_conn *s);

#endif

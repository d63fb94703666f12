/* admin.h - built-in status and metrics: the reasons refusals are counted
 * by, a snapshot of what the manager holds, its two renderings (Prometheus
 * text, status JSON) and the request router of the admin listener.
 * admin_render.c is socket-free (unit test: tests/c/test_admin_render.c);
 * admin.c takes snapshots on the loop thread and serves them. */
#ifndef PK_ADMIN_H
#define PK_ADMIN_H

#include <stddef.h>

/* Why something was refused: X(ENUM, "label").  The label is the metric's
 * reason="..." and the status JSON's key, so the two never disagree. */
#define PK_REJECT_REASONS(X)                                              \
  X(KITE_UNKNOWN, "kite_unknown")     /* no --domain covers the kite */   \
  X(KITE_SIGNATURE, "kite_signature") /* bad signature or forged token */ \
  X(KITE_REPLAY, "kite_replay")       /* a challenge answered twice/stale */ \
  X(KITE_PROTO, "kite_proto")         /* protocol not served */           \
  X(KITE_PORT, "kite_port")           /* port not served */               \
  X(KITE_QUOTA, "kite_quota")         /* too many kites */                \
  X(NO_KITE, "no_kite")               /* a visitor for a kite not here */ \
  X(BAD_REQUEST, "bad_request")       /* unparseable first bytes */       \
  X(HEAD_TOO_LARGE, "head_too_large") /* request head over the bound */   \
  X(PROXY_HEADER, "proxy_header")     /* a bad PROXY header (--proxy_protocol_from) */ \
  X(ACL, "acl")                       /* --client_acl / --tunnel_acl */    \
  X(TLS_REQUIRED, "tls_required")     /* a tunnel without TLS (require) */ \
  X(RATELIMIT, "ratelimit")           /* --ratelimit_ips */                \
  X(KITE_IP, "kite_ip")               /* not on a kite's +ip/ list */      \
  X(KITE_AUTH, "kite_auth")           /* no valid +password/ credentials */ \
  X(PLUGIN, "plugin")                 /* a Lua plugin refused */           \
  X(LIMIT, "limit")                   /* no room: connection limits */

#define PK_REJECT_ENUM(e, label) PK_REJECT_##e,
enum { PK_REJECT_REASONS(PK_REJECT_ENUM) PK_REJECT_N };
#undef PK_REJECT_ENUM

/* The label of a PK_REJECT_*; "other" when out of range. */
const char *pk_reject_label(int reason);
/* A kite verdict's reason ("unknown", "signature", ...) as a PK_REJECT_*. */
int pk_reject_from_kite_why(const char *why);

#define PK_SNAP_PROTO_MAX 16
#define PK_SNAP_NAME_MAX 256
typedef struct {
  char proto[PK_SNAP_PROTO_MAX];
  char name[PK_SNAP_NAME_MAX];
  int port;      /* public port; 0: any */
  int tunnel;    /* index into pk_snap.tunnels; -1: none */
  int live;
  const char *state; /* "live", "rejected", "duplicate", "down" */
} pk_snap_kite;

typedef struct {
  char peer[64];
  int peer_port;
  int streams;
  int kites;
  long long age_s;
  long long bytes_in, bytes_out;
} pk_snap_tunnel;

/* Traffic of one kite name, since the manager started (both roles). */
typedef struct {
  char proto[PK_SNAP_PROTO_MAX];
  char name[PK_SNAP_NAME_MAX];
  int port;
  long long streams_total, bytes_in, bytes_out;
} pk_kstat;

/* Everything the renderings show; no secrets in it by construction. */
typedef struct {
  const char *role;    /* "relay" or "connector" */
  const char *version;
  const char *status;  /* pagekite_status_name() */
  int status_code;
  long long uptime_s;
  long long kites_live, tunnels_live, streams_live;
  long long bytes_in, bytes_out, streams_total, rejected, errors;
  long long rejects[PK_REJECT_N];
  pk_snap_tunnel *tunnels;
  int ntunnels;
  pk_snap_kite *kites;
  int nkites;
  const pk_kstat *kstats; /* per kite name, live or not */
  int nkstats;
} pk_snap;

/* Prometheus text exposition format 0.0.4 / a JSON object: a malloc'd,
 * NUL-terminated string the caller frees, or NULL when out of memory. */
char *pk_render_metrics(const pk_snap *s);
char *pk_render_status_json(const pk_snap *s);

/* ---- the admin listener's requests ---- */
#define PK_ADMIN_HEAD_MAX 4096   /* a request head longer than this: 431 */
#define PK_ADMIN_CONNS_MAX 8     /* admin connections at once; more are closed */
#define PK_ADMIN_IDLE_MS 5000    /* a client that has not sent its head by then */
#define PK_ADMIN_LINGER_MS 1000  /* after the answer, for the client to hang up */

typedef enum {
  PK_ADMIN_NEED_MORE = 0,
  PK_ADMIN_METRICS,
  PK_ADMIN_STATUS,
  PK_ADMIN_NOT_FOUND,     /* 404 */
  PK_ADMIN_BAD_METHOD,    /* 405 */
  PK_ADMIN_BAD_REQUEST,   /* 400 */
  PK_ADMIN_TOO_BIG        /* 431 */
} pk_admin_route_t;

/* What the request head in buf[0..n) asks for (socket-free). */
pk_admin_route_t pk_admin_route(const char *buf, size_t n);
/* The HTTP status code and reason of an error route (404, 405, 400, 431). */
int pk_admin_route_status(pk_admin_route_t r, const char **reason);

#endif

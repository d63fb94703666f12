/* internal.h - private structures shared by the core modules.
 *
 * Ownership: the manager owns every pool.  A pk_conn is one socket (tunnel,
 * stream to an origin or from a client, relay connection being classified,
 * relay ping, DDNS request); it is taken from the conn pool by pk_conn_new()
 * and goes back only in the uv_close callback (one teardown path).
 */
#ifndef PK_INTERNAL_H
#define PK_INTERNAL_H

#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdint.h>
#include <uv.h>
#include <zlib.h>

#include "pagekite.h"
#include "sign.h"
#include "wire.h"
#include "plugins.h"
#include "iplimit.h"
#include "replay.h"
#include "httpfwd.h"
#include "session.h"
#include "kiteauth.h"
#include "role.h"

#define PK_API __attribute__((visibility("default")))

#include "bounds.h"

typedef struct pk_mgr pk_mgr;
typedef struct pk_conn pk_conn;
typedef struct pk_tunnel pk_tunnel;
typedef struct pk_block pk_block;

/* ---- buffers.c: refcounted fixed-size blocks from a pool reserved at init ---- */
struct pk_block {
  pk_block *next_free;
  int refs;
  size_t len;
  char data[PK_BLOCK_SIZE];
};

typedef struct {
  char *mem;
  size_t count, used;
  pk_block *free_list;
  size_t in_use, high_water;
} pk_pool;

int pk_pool_init(pk_pool *p, size_t count);
void pk_pool_free(pk_pool *p);
pk_block *pk_block_get(pk_mgr *m);
void pk_block_ref(pk_block *b);
void pk_block_unref(pk_mgr *m, pk_block *b);

/* ---- log.c ---- */
typedef struct {
  char lines[PK_LOG_LINES][PK_LOG_LINE_MAX];
  unsigned long long seq;
  int next;
  char *snapshot;
  size_t snapshot_size;
} pk_logring;

void pk_log(pk_mgr *m, int bits, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pk_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *pk_get_error(void);

/* ---- kites and frontends (connector) ---- */
#define PK_KITE_DEAD 0
#define PK_KITE_LIVE 1
#define PK_KITE_REJECTED 2
#define PK_KITE_DUPLICATE 3

typedef struct {
  char proto[32];
  char name[PK_NAME_MAX];
  int pport;
  char secret[PK_SECRET_MAX];
  char backend[PK_NAME_MAX];
  int lport;
  struct sockaddr_storage origin;
  int origin_ok;
  char bsalt[PK_TOKEN_LEN + 1];
  char fsalt[PK_TOKEN_LEN + 1]; /* challenge kept for a signed reconnect */
  int state;          /* PK_KITE_* */
  pk_tunnel *tunnel;  /* tunnel flying it, if live */
  char reason[64];
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
  uv_getaddrinfo_t gai;
  int gai_busy;
} pk_frontend;

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

/* A kite registered on the relay: (proto, port, name) -> tunnel. */
typedef struct {
  char proto[32];
  int port; /* 0: any */
  char name[PK_NAME_MAX];
  pk_tunnel *tunnel;
} pk_relay_kite;

/* ---- conn.c: a socket, optionally TLS through memory BIOs ---- */
enum pk_conn_kind {
  PK_CK_FREE = 0,
  PK_CK_TUNNEL,  /* tunnel, either role */
  PK_CK_STREAM,  /* origin (connector) or client (relay) */
  PK_CK_UNKNOWN, /* relay: first bytes not classified yet */
  PK_CK_PING,    /* connector: measuring a relay */
  PK_CK_DDNS     /* connector: dynamic DNS update */
};

#define PK_CF_CONNECTED 0x0001
#define PK_CF_CLOSING 0x0002
#define PK_CF_READING 0x0004
#define PK_CF_READ_EOF 0x0008   /* local socket said EOF */
#define PK_CF_PEER_R 0x0010     /* peer sent EOF R: shut our write side when flushed */
#define PK_CF_PEER_W 0x0020     /* peer sent EOF W: stop reading */
#define PK_CF_SHUT_WR 0x0040
#define PK_CF_TLS_DONE 0x0080
#define PK_CF_PAUSED 0x0100     /* flow control: reading paused */
#define PK_CF_NOBUF 0x0200      /* waiting for a free block */
#define PK_CF_SENT_EOF 0x0400
#define PK_CF_HTTP 0x0800       /* stream carries HTTP requests (forwarding headers) */
#define PK_CF_NOZ 0x1000        /* stream data does not compress: send it plain */
#define PK_CF_UNAUTH 0x2000     /* relay: counted in unauth_conns until classified */
#define PK_CF_COUNTED 0x4000    /* counted against max_conns (client_conns) */
#define PK_CF_FINISH 0x8000     /* flush queued output, half-close, then close */

typedef void (*pk_conn_data_cb)(pk_conn *c, const char *data, size_t n, pk_block *blk);
typedef void (*pk_conn_event_cb)(pk_conn *c, int status);
/* An owner that reads into its own memory: return room (may be 0) at *base. */
typedef size_t (*pk_conn_inplace_cb)(pk_conn *c, char **base);
typedef void (*pk_conn_inplace_done_cb)(pk_conn *c, size_t n);

struct pk_conn {
  uv_tcp_t tcp;
  pk_mgr *mgr;
  int kind;
  int flags;
  int id;
  SSL *ssl;
  BIO *rbio, *wbio;
  size_t wq_bytes;
  size_t wq_max;        /* output a peer may leave unread (0: PK_SMALL_WQ_MAX) */
  pk_block *tail;       /* partly filled block that small writes are copied into */
  size_t tail_used;
  uint64_t bytes_in, bytes_out;
  uint64_t created, last_activity;
  uint64_t last_write_ok; /* last write completion (or start of a non-empty queue) */
  uint64_t finish_at;     /* PK_CF_FINISH: when the hang-up started */
  char *inplace_base;     /* read buffer handed out by on_inplace, if any */
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  uv_timer_t *timer; /* optional per-conn timer (ping, classify timeout) */
  /* role callbacks */
  pk_conn_data_cb on_data;
  pk_conn_event_cb on_connect; /* status 0 = connected (and TLS done) */
  pk_conn_event_cb on_eof;     /* local read side EOF or error (status <0) */
  pk_conn_event_cb on_drain;   /* write queue dropped to zero */
  pk_conn_event_cb on_closed;  /* the close completed: the owner lets go, then the slot is free */
  pk_conn_inplace_cb on_inplace;           /* optional: read into the owner's memory */
  pk_conn_inplace_done_cb on_inplace_done; /* n bytes landed there */
  /* stream state */
  pk_tunnel *tunnel;
  long long sid;
  pk_conn *sid_next;
  uint64_t sent;        /* bytes sent into the tunnel for this stream */
  uint64_t acked;       /* bytes the peer said it delivered (SKB) */
  uint64_t received;    /* bytes the peer sent us for this stream */
  uint64_t delivered;   /* of those, bytes that left our write queue */
  uint64_t skb_at;      /* delivered count at our last SKB */
  pk_conn *pause_next;  /* in tunnel's paused list */
  /* small input buffer: relay classification, handshake heads, HTTP rewriting */
  pk_block *inbuf;
  size_t inlen;
  char rip[64];
  int rport;
  pk_ipkey ipkey;       /* source, for per-source limits (relay) */
  int rtls;
  /* owner pointers */
  void *owner;          /* frontend (ping/tunnel) */
  int owner_idx;
  pk_conn *free_next;
};

int pk_conns_init(pk_mgr *m, int count);
void pk_conns_free(pk_mgr *m);
pk_conn *pk_conn_new(pk_mgr *m, int kind);
int pk_conn_connect(pk_conn *c, const struct sockaddr *addr, SSL_CTX *tls, const char *sni);
int pk_conn_accept(pk_conn *c, uv_stream_t *server);
int pk_conn_start_tls_server(pk_conn *c, SSL_CTX *ctx, const char *already, size_t n);
int pk_conn_read_start(pk_conn *c);
void pk_conn_read_stop(pk_conn *c);
/* Queue bytes for writing.  With blk, the block is referenced until written;
 * without, the bytes are copied. */
int pk_conn_write(pk_conn *c, const char *data, size_t n, pk_block *blk);
int pk_conn_writev2(pk_conn *c, const char *h, size_t hn, const char *d, size_t dn, pk_block *blk);
void pk_conn_shutdown(pk_conn *c); /* half-close after queued writes */
/* The one way a conn goes away: reading stops at once, the owner's on_closed
 * runs from the uv close callback, and only then is the slot reused.  Errors
 * (TLS, write, read) never close a conn: they reach the owner through on_eof
 * (negative status) or on_connect, and the owner decides. */
void pk_conn_close(pk_conn *c);
/* Hang up politely: flush what is queued, half-close, close when the peer
 * does (or after PK_FINISH_MS).  Data read meanwhile is discarded. */
void pk_conn_finish(pk_conn *c);
void pk_conns_housekeep(pk_mgr *m, uint64_t now);
/* Counted as unknown (relay): per source in mgr->unauth_ips until cleared. */
int pk_conn_unauth_set(pk_conn *c);
void pk_conn_unauth_clear(pk_conn *c);
void pk_conn_tls_input(pk_conn *c, const char *data, size_t n);
void pk_conn_set_nodelay(pk_conn *c);
void pk_conns_resume_nobuf(pk_mgr *m);
int pk_conn_evict_one(pk_mgr *m);
uint64_t pk_now_ms(pk_mgr *m);
const char *pk_addr_str(const struct sockaddr *sa, char *buf, size_t n, int *port);

/* ---- tunnel.c: one conn + one protocol session (session.h), either role ---- */
struct pk_tunnel {
  pk_mgr *mgr;
  pk_conn *conn;
  pk_session sess;       /* the protocol: frames, ZChunks, PING, credit */
  int in_use;            /* the slot is taken (until the conn's close callback) */
  int dying;             /* ended: streams and kites gone, conn closing */
  int fe_idx, addr_idx;  /* connector: which frontend/address */
  char session_id[80];   /* X-PageKite-SessionID */
  uint64_t created;
  pk_conn *sids[PK_SID_BUCKETS];
  int nstreams;
  long long next_sid;
  pk_conn *paused;       /* streams paused because our write queue is full */
  int nkites_live;
  int retried_signed;    /* connector: reconnect-with-signatures done */
  int kites_requested;   /* relay: challenges issued on this tunnel */
};

pk_tunnel *pk_tunnel_new(pk_mgr *m, pk_conn *c);
/* Ends a tunnel (idempotent; safe from inside its own callbacks: the slot is
 * reused only after its conn's close callback).  finish: flush queued
 * output (a refusal) before hanging up. */
void pk_tunnel_kill(pk_tunnel *t, const char *why);
void pk_tunnel_finish(pk_tunnel *t, const char *why);
void pk_tunnel_kites_changed(pk_tunnel *t, int delta);
void pk_tunnel_open(pk_tunnel *t);
char *pk_log_snapshot(pk_mgr *m);
/* Feed bytes after the handshake (writable: websocket frames are unmasked in
 * place); returns -1 when the tunnel was killed. */
int pk_tunnel_feed(pk_tunnel *t, char *data, size_t n);
int pk_tunnel_send_chunk(pk_tunnel *t, const char *hdrs, size_t hn, const char *data, size_t dn,
                         pk_block *blk);
int pk_tunnel_send_data(pk_tunnel *t, pk_conn *s, const char *hdrs, size_t hn, const char *data,
                        size_t dn, pk_block *blk);
int pk_tunnel_send_noop(pk_tunnel *t, const char *lines, size_t n);
int pk_tunnel_send_eof(pk_tunnel *t, long long sid, const char *how);
void pk_tunnel_add_stream(pk_tunnel *t, pk_conn *s, long long sid);
pk_conn *pk_tunnel_find_stream(pk_tunnel *t, long long sid);
void pk_tunnel_remove_stream(pk_tunnel *t, pk_conn *s);
void pk_tunnel_ping(pk_tunnel *t);
void pk_tunnel_housekeep(pk_tunnel *t, uint64_t now);

/* ---- stream.c: streams over a tunnel, shared by both roles ---- */
void pk_stream_attach(pk_conn *s, pk_tunnel *t, long long sid);
void pk_stream_from_tunnel(pk_conn *s, const char *data, size_t n);
void pk_stream_peer_eof(pk_conn *s, int eof_bits);
void pk_stream_skb(pk_conn *s, long long kb);
void pk_stream_kill(pk_conn *s, int tell_peer);
void pk_stream_close(pk_conn *s);
void pk_stream_on_data(pk_conn *s, const char *data, size_t n, pk_block *blk);
void pk_stream_resume_paused(pk_tunnel *t);

/* ---- connector.c ---- */
int pk_frontend_resolve(pk_mgr *m, pk_frontend *fe);
/* Forwarding headers (connector HTTP streams, httpfwd.c underneath). */
int pk_http_forward_rewrite(pk_conn *s, const char *data, size_t n);
void pk_http_forward_response(pk_conn *s, const char *data, size_t n);
size_t pk_http_forward_parked(const pk_conn *s);

/* ---- relay.c ---- */
int pk_relay_match(const char *pattern, const char *name);

/* ---- manager.c ---- */
struct pk_mgr {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_thread_t watchdog;
  uv_async_t wake;
  uv_timer_t tick;
  uv_mutex_t lock;
  uv_cond_t cond;
  int started, running, stop_requested, thread_joined;
  int loop_ready;
  unsigned long long events;      /* bumped on each notify */
  unsigned long long events_seen; /* events at the last get_status/get_log/poll: poll waits past it */
  int flags;
  const pk_role_ops *role; /* relay or connector: every role-specific step */
  int status;
  char app_id[64];
  char dyndns_url[512];
  int ddns_done;
  /* settings (ints read by the loop; written under lock) */
  int log_mask;
  int hk_min, hk_max;
  int fwd_headers;
  int fake_ping;
  int watchdog_on;
  int tick_timer_on;
  int evict_idle_s;
  int spares;
  int bail_errors;
  int error_count;
  int tls_verify;
  char ca_file[512];
  char ciphers[512];
  char relay_cert[512], relay_key[512];
  volatile int watchdog_beat;
  int tick_requested;
  /* config */
  pk_kite *kites;
  int nkites, max_kites;
  pk_frontend *fes;
  int nfes, max_frontends;
  int max_conns;
  /* pools */
  pk_pool blocks;
  pk_conn *conns;
  int nconns;
  pk_conn *conn_free;
  int conns_in_use;
  int nobuf_waiting; /* conns whose reads wait for a free block */
  int client_conns;  /* streams and unclassified conns: bounded by max_conns */
  pk_tunnel *tunnels;
  int ntunnels;
  SSL_CTX *client_ctx;
  SSL_CTX *relay_ctx;
  /* relay */
  pk_listener *listeners;
  int nlisteners, max_listeners;
  pk_relay_domain *domains;
  int ndomains, max_domains;
  pk_relay_kite *rkites;
  int nrkites, max_rkites;
  char relay_secret[PK_TOKEN_LEN + 1];
  char relay_uuid[17];
  pk_replay replay;    /* challenges answered (each is good once) */
  pk_iptab unauth_ips; /* unknown conns and kite-less tunnels per source */
  int relay_dups;    /* several tunnels may fly one kite; streams take turns */
  unsigned relay_rr;
  int unauth_conns;
  /* counters */
  long long c_bytes_in, c_bytes_out, c_streams_total, c_rejected;
  int c_streams;
  /* reconnect state (connector) */
  int fail_streak;
  uint64_t next_attempt;
  uint64_t last_hk;
  uint64_t outage_started;
  int rejected;
  /* log */
  pk_logring log;
  /* plugins (plugins_lua.c) */
  void *plugins;
  uint64_t last_plugin_tick;
};

void pk_set_status(pk_mgr *m, int status);
int pk_manager_start(pk_mgr *m);
void pk_manager_wake(pk_mgr *m);
void pk_manager_tick_soon(pk_mgr *m); /* loop thread: housekeep on the next loop turn */
int pk_manager_join(pk_mgr *m);
int pk_manager_poll(pk_mgr *m, int timeout_s);
int pk_ddns_url(pk_mgr *m, const pk_kite *k, const char *ips, char *out, size_t n);
int pk_head_rewrite(const char *head, size_t hl, const pk_hook_result *r, char *out, size_t outsz);
int pk_hook_reject_response(const pk_hook_result *r, char *out, size_t outsz);
void pk_notify(pk_mgr *m);
void pk_count_error(pk_mgr *m);
SSL_CTX *pk_client_tls_ctx(pk_mgr *m);
int pk_is_relay(pk_mgr *m);

#endif

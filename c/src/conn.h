/* conn.h - one socket (conn.c): kinds, flags, callbacks, the one close path.
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_CONN_H
#define PK_CONN_H

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
#define PK_CF_CONNECTING 0x10000 /* writes wait in `pending` until connected */
#define PK_CF_REOPEN 0x20000     /* socket closing to try the next address */
#define PK_CF_SHUT_LATER 0x40000 /* half-close once connected and flushed */

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
  const struct sockaddr_storage *addrs; /* connecting: the addresses to try in turn */
  int naddrs, addr_first, addr_at;
  struct pk_wreq *pending, *pending_tail; /* writes held while connecting */
  struct pk_conn_proxy *px; /* an outgoing proxy's handshake, while it runs */
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
  int kstat;            /* stream: its kite's entry in mgr->kstats (index + 1; 0: none) */
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
  int tls_first;        /* TLS client: 0x100 | the first byte the peer sent */
  /* owner pointers */
  /* The owner, by kind: the tunnel of a PK_CK_TUNNEL conn, the kite of a
   * connector's origin stream, the frontend of a PK_CK_PING conn. */
  union {
    pk_tunnel *tunnel;
    pk_kite *kite;
    pk_frontend *fe;
    struct pk_ddns_job *ddns;
  } own;
  int owner_idx;        /* PK_CK_PING: which of the frontend's addresses */
  pk_conn *free_next;
};

int pk_conns_init(pk_mgr *m, int count);
void pk_conns_free(pk_mgr *m);
/* Write requests waiting in the manager's own pool for reuse. */
size_t pk_conn_wreqs_pooled(pk_mgr *m);
pk_conn *pk_conn_new(pk_mgr *m, int kind);
int pk_conn_connect(pk_conn *c, const struct sockaddr *addr, SSL_CTX *tls, const char *sni);
/* Connect to the n addrs in turn from addrs[first] on (every address a name
 * resolved to): one that refuses is closed and the next tried; writes wait
 * until one answers.  addrs must stay valid until on_connect, which reports
 * the last failure; after success pk_conn_addr_index() says which answered. */
int pk_conn_connect_any(pk_conn *c, const struct sockaddr_storage *addrs, int n, int first,
                        SSL_CTX *tls, const char *sni);
int pk_conn_addr_index(const pk_conn *c);
/* The same through an outgoing proxy (proxy.h) at paddrs: once the TCP
 * connection to the proxy is up, the proxy is asked for target:tport (HTTP
 * CONNECT or SOCKS5), then TLS (when tls) and on_connect follow as for a
 * direct connection.  A proxy that refuses reaches on_connect as a failure
 * with pk_get_error() saying why. */
int pk_conn_connect_via(pk_conn *c, const pk_proxy *p, const struct sockaddr_storage *paddrs,
                        int np, const char *target, int tport, SSL_CTX *tls, const char *sni);
int pk_conn_accept(pk_conn *c, uv_stream_t *server);
int pk_conn_start_tls_server(pk_conn *c, SSL_CTX *ctx, const char *already, size_t n);
int pk_conn_read_start(pk_conn *c);
void pk_conn_read_stop(pk_conn *c);
/* Queue bytes for writing.  With blk, the block is referenced until written;
 * without, the bytes are copied. */
int pk_conn_write(pk_conn *c, const char *data, size_t n, pk_block *blk);
/* How many bytes the conn may have queued (its wq_max, and never more than
 * its share of the block pool): a write past it fails. */
size_t pk_conn_wq_cap(const pk_conn *c);
/* Free blocks that reads leave alone: copies of peer data into stream
 * queues and control replies use them. */
size_t pk_pool_read_reserve(const pk_mgr *m);
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

/* ---- tlsnames.c: the names a relay's certificate may carry ---- */
extern const char *const pk_service_certnames[]; /* pagekite.py's SERVICE_CERTS */
/* Accept a certificate for name too ("" forgets the list).  0 or -1. */
int pk_certname_add(pk_mgr *m, const char *name);
/* SNI and the names to verify on a client SSL: dialled (name or IP) or any
 * accepted name.  Checked by pk_tls_verify_cb (set on the client context). */
int pk_tls_expect_names(pk_mgr *m, SSL *ssl, const char *dialled);
/* The client context's verify callback (keeps the relay's certificate for
 * pk_tls_mismatch_why). */
int pk_tls_verify_cb(int ok, X509_STORE_CTX *st);
/* "the relay's certificate is for X; expected one of: A, B" */
void pk_tls_mismatch_why(pk_mgr *m, SSL *ssl, char *out, size_t n);
/* The handshake failed because the certificate is for other names. */
int pk_tls_names_mismatch(const SSL *ssl);
const char *pk_addr_str(const struct sockaddr *sa, char *buf, size_t n, int *port);

#endif

/* tunnel.h - one tunnel (tunnel.c) and the streams over it (stream.c).
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_TUNNEL_H
#define PK_TUNNEL_H

/* ---- tunnel.c: one conn + one protocol session (session.h), either role ---- */
struct pk_tunnel {
  pk_mgr *mgr;
  pk_conn *conn;
  pk_session sess;       /* the protocol: frames, ZChunks, PING, credit */
  int in_use;            /* the slot is taken (until the conn's close callback) */
  int dying;             /* ended: streams and kites gone, conn closing */
  int counted_open;      /* in mgr->tunnels_open (PK_COUNTER_TUNNELS) */
  int fe_idx, addr_idx;  /* connector: which frontend/address */
  char session_id[80];   /* X-PageKite-SessionID */
  uint64_t created;
  pk_conn *sids[PK_SID_BUCKETS];
  int nstreams;
  long long next_sid;
  pk_conn *paused;       /* streams paused because our write queue is full */
  int rx_blocked;        /* not reading: a stream cannot take the next chunk (mgr->rx_blocked) */
  int nkites_live;
  long long bytes_in, bytes_out; /* stream payload, for status (admin.c) */
  int retried_signed;    /* connector: reconnect-with-signatures done */
  pk_slice replace;      /* relay: X-PageKite-Replace of the request being authenticated */
  pk_reg_list rkites;    /* relay: the kites it flies (entries of m->rkites) */
  uint64_t auth_fp;      /* relay: fingerprint of the secret of the kite being authenticated */
  pk_ipwindow ratelimit; /* relay: --ratelimit_ips of its strictest kite */
  size_t hs_head_len;    /* relay: the request head's length, while its reply waits (authq.c) */
};

pk_tunnel *pk_tunnel_new(pk_mgr *m, pk_conn *c);
/* Ends a tunnel (idempotent; safe from inside its own callbacks: the slot is
 * reused only after its conn's close callback).  finish: flush queued
 * output (a refusal) before hanging up. */
void pk_tunnel_kill(pk_tunnel *t, const char *why);
void pk_tunnel_finish(pk_tunnel *t, const char *why);
void pk_tunnel_kites_changed(pk_tunnel *t, int delta);
/* The handshake is done: plugins hear of it (the session opened itself). */
void pk_tunnel_opened(pk_tunnel *t);
char *pk_log_snapshot(pk_mgr *m);
/* Feed bytes (writable: websocket frames are unmasked in
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
/* Streams feeding the tunnel pause above this many queued bytes: at most
 * PK_TUNNEL_WQ_HIGH, and an eighth of the pool (a quarter of what a tunnel
 * may queue at all), so a small pool pauses them long before a write would
 * fail; they resume below a quarter of it. */
size_t pk_tunnel_wq_high(const pk_tunnel *t);
/* Sessions paused for a stream without room try again (conn.c calls it when
 * writes complete or conns close). */
void pk_tunnels_unblock(pk_mgr *m);

/* ---- stream.c: streams over a tunnel, shared by both roles ---- */
void pk_stream_attach(pk_conn *s, pk_tunnel *t, long long sid);
void pk_stream_from_tunnel(pk_conn *s, const char *data, size_t n);
void pk_stream_peer_eof(pk_conn *s, int eof_bits);
void pk_stream_skb(pk_conn *s, long long kb);
void pk_stream_kill(pk_conn *s, int tell_peer);
void pk_stream_close(pk_conn *s);
void pk_stream_on_data(pk_conn *s, const char *data, size_t n, pk_block *blk);
void pk_stream_resume_paused(pk_tunnel *t);
/* Can the stream queue n more bytes from its peer now (its share of the
 * pool, and free blocks to copy them into)?  1 also when the bytes will be
 * dropped anyway (the stream is ending). */
int pk_stream_room(pk_conn *s, size_t n);
/* Free blocks enough to copy n bytes of peer data (a new stream's first). */
int pk_pool_room(pk_mgr *m, size_t n);

#endif

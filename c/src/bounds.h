/* bounds.h - every size and time bound of the core, named once.  Bounds that
 * depend on each other are derived here, not coupled by hand where used. */
#ifndef PK_BOUNDS_H
#define PK_BOUNDS_H

#define PK_BLOCK_SIZE (32 * 1024)      /* one data buffer */
#define PK_MAX_CHUNK (256 * 1024)      /* largest chunk accepted from a peer */
#define PK_TUNNEL_INBUF (PK_MAX_CHUNK + 1024) /* a whole chunk and its frame header */
#define PK_HEAD_MAX (16 * 1024)        /* HTTP heads: handshake, relay first bytes */
#define PK_STREAM_WINDOW (1024 * 1024) /* unacked bytes per stream before we pause */
#define PK_STREAM_HARD_MAX (8 * 1024 * 1024) /* queued to one stream: the tunnel stops reading */
#define PK_TUNNEL_WQ_HIGH (4 * 1024 * 1024)  /* pause feeding streams into a tunnel */
#define PK_CONTROL_RESERVE 4 /* pool blocks copies of peer data leave for control replies */
#define PK_SKB_EVERY (8 * 1024)
#define PK_SID_BUCKETS 256
#define PK_NAME_MAX 256
#define PK_SECRET_MAX 256
#define PK_LOG_LINES 256
#define PK_LOG_LINE_MAX 640 /* room for a certificate mismatch with every name */
#define PK_MAX_ADDRS 16   /* IPs per frontend name */
#define PK_MAX_ORIGIN_ADDRS 4 /* addresses of one origin tried in turn */
#define PK_MAX_CERTNAMES 32 /* accepted relay certificate names */
#define PK_MAX_TLS_ENDPOINTS 4096 /* relay: per-name certificates */
#define PK_MAX_PORT_ALIASES 16    /* relay: --portalias pairs */
#define PK_MAX_RELAY_DOMAINS 64   /* relay: --domain entries */
#define PK_MAX_PROXY_SOURCES 32   /* relay: load balancers that send PROXY headers */
#define PK_MOTD_MAX 1024          /* relay: message of the day, bytes */
#define PK_EVENTS_KEPT 512        /* events a manager keeps for slow readers */
#define PK_HANDSHAKE_TIMEOUT_MS 15000
#define PK_PING_IDLE_MS 30000 /* send a PING when the tunnel was quiet this long */
#define PK_PING_DEAD_MS 20000 /* no traffic this long after a PING: dead */
#define PK_HALF_CLOSED_IDLE_MS 300000 /* half-closed and silent this long: closed */
#define PK_UNAUTH_CHUNK (32 * 1024)   /* largest frame before a kite is authenticated */
#define PK_UNAUTH_INBUF (PK_UNAUTH_CHUNK + 64)
/* Smallest control chunk (EOF, NOOP) we send: pagekite.py reads at most
 * 150 chunks per ~50 KB read (MAX_READ_BYTES * 3.1) and dies on more. */
#define PK_MIN_CONTROL_CHUNK 340
#define PK_ZCHUNK_MAX (PK_BLOCK_SIZE + 1024) /* larger chunks are not worth compressing */
#define PK_BUFFER_IDLE_MS 2000 /* a session idle this long gives its buffers back */
#define PK_UNAUTH_WQ_MAX (64 * 1024)  /* output queued to a peer that proved nothing */
#define PK_TUNNEL_WQ_MAX (16 * 1024 * 1024) /* an authenticated tunnel that never reads */
#define PK_SMALL_WQ_MAX (256 * 1024)  /* pings, DDNS, relay conns not yet classified */
#define PK_WRITE_STALL_MS 60000 /* queued output made no progress this long: peer gone */
#define PK_BLOCKED_STALL_MS 4000 /* the same while a tunnel waits for room (rx_blocked) */
#define PK_FAULTS_PER_REJECTION 10 /* bail-on-errors weight of a refused kite */
#define PK_REJECT_RETRY_MAX_S 900 /* a refused kite is asked for again at least this often */
#define PK_FINISH_MS 5000       /* a conn answering before hanging up gets this long */

#define PK_MAX_KITES_PER_TUNNEL 64   /* kites one tunnel may fly (relay) */
#define PK_MAX_CHALLENGES_PER_TUNNEL (4 * PK_MAX_KITES_PER_TUNNEL)
/* Kite lines in one tunnel request head or NOOP: half of what the other end
 * reads, so that the answers (about as long) fit too; more kites follow in
 * NOOPs (AddKites). */
#define PK_KITE_LINES_HEAD (PK_HEAD_MAX / 2)
#define PK_KITE_LINES_NOOP (PK_UNAUTH_CHUNK / 2)
#define PK_MAX_AUTHDOMAINS 32  /* relay: --authdomain entries */
#define PK_AUTHQ_ACTIVE 2      /* relay: --authdomain lookups on libuv's thread pool at once */
#define PK_AUTHQ_WAITING 256   /* relay: more wait their turn; past that a lookup fails at once */
/* --authdomain=/path/to/app (authapp.c): */
/* A query is answered within this (waiting included), else it fails, open or
 * closed; a process asked that long is killed.  Under pagekitec's 3 s (a
 * tunnel with no kite flying after 3 s is dropped and made again). */
#define PK_AUTHAPP_TIMEOUT_MS 2000
#define PK_AUTHAPP_ACTIVE 4        /* one-shot app processes at once, per app */
#define PK_AUTHAPP_WAITING 256     /* queries waiting per app; past that one fails at once */
#define PK_AUTHAPP_BACKOFF_MIN_MS 250   /* a --server child that died is restarted after this, */
#define PK_AUTHAPP_BACKOFF_MAX_MS 30000 /* doubling up to this until it answers again */
#define PK_AUTHAPP_KILL_GRACE_MS 1000   /* at shutdown: EOF, SIGTERM after half this, SIGKILL after this more */
_Static_assert(PK_AUTHAPP_TIMEOUT_MS < PK_HANDSHAKE_TIMEOUT_MS,
               "an auth app's answer must come within the handshake's time");
#define PK_AUTH_REPLY_MAX (PK_MAX_KITES_PER_TUNNEL * 2 * (PK_NAME_MAX + 160)) /* answers */

#endif

/* manager.h - the manager (manager.c, api.c, log.c): pools, loop thread, status, log.
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_MANAGER_H
#define PK_MANAGER_H

/* Fields that any-thread calls write and the loop (or the watchdog) reads
 * without the lock: relaxed atomics, so no side sees a torn value.  Settings
 * need no ordering; the loop acts on them on its next turn. */
#define PK_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define PK_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)
#define PK_COUNT(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)

/* Published counters, indexed by PK_COUNTER_* (1 .. PK_COUNTER_REJECTED). */
#define PK_COUNTERS_N (PK_COUNTER_REJECTED + 1)

/* ---- log.c ---- */
typedef struct {
  char lines[PK_LOG_LINES][PK_LOG_LINE_MAX];
  unsigned long long seq;
  int next;
} pk_logring;

/* The text pagekite_get_log and pagekite_get_kite_reason return: one per
 * calling thread, so a caller's text is overwritten only by its own next
 * call; all freed in pagekite_free.  Under the manager's lock. */
typedef struct pk_outbuf {
  struct pk_outbuf *next;
  uv_thread_t owner;
  char *log;
  size_t log_size;
  char reason[64];
  char *admin; /* pagekite_get_metrics / pagekite_get_status_json */
} pk_outbuf;

/* The calling thread's buffers (under the lock); NULL when out of memory. */
pk_outbuf *pk_outbuf_mine(pk_mgr *m);
void pk_outbufs_free(pk_mgr *m);

void pk_log(pk_mgr *m, int bits, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records why the calling thread's current call fails: a PK_E* code (PK_OK
 * only to reset) and a message naming the call.  Returns -1, the usual
 * failure value, so that `return pk_fail(PK_EINVAL, ...);` reads well. */
int pk_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *pk_get_error(void);


/* ---- events.c ---- */
typedef struct {
  pagekite_event *ev; /* PK_EVENTS_KEPT, event seq at [seq % PK_EVENTS_KEPT] */
  long long last;     /* seq of the newest event (0: none yet) */
  int streams_told;   /* the live stream count of the last PK_EVENT_STREAMS */
} pk_evring;

int pk_events_init(pk_evring *r);
void pk_events_free(pk_evring *r);
/* Adds an event (any thread; the _locked form when m->lock is held). */
void pk_event(pk_mgr *m, int kind, int code, const char *proto, const char *name,
              const char *text);
void pk_event_locked(pk_mgr *m, int kind, int code, const char *proto, const char *name,
                     const char *text);
int pk_events_next(pk_mgr *m, long long after, pagekite_event *out, int max, int timeout_ms);


/* ---- manager.c ---- */
/* At most one log line per second for a kind of event that peers can make
 * happen at will (refused requests, dropped connections). */
typedef struct {
  uint64_t last_ms;
  long suppressed;
} pk_ratelimit;

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
  int ddns_busy; /* DDNS requests in flight: PK_STATUS_UPDATING_DNS */
  /* settings (ints read by the loop; written under lock) */
  int log_mask;
  int log_stderr; /* PK_LOG_STDERR was set when the manager was made */
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
  char certnames[PK_MAX_CERTNAMES][PK_NAME_MAX]; /* accepted relay certificate names */
  int ncertnames;
  char relay_sni[PK_NAME_MAX]; /* SNI for relay tunnels (PK_WITH_FRONTEND_SNI), else "" */
  char ciphers[512];
  char relay_cert[512], relay_key[512];
  int watchdog_beat; /* PK_GET/PK_SET, as running, stop_requested, tick_requested */
  int tick_requested;
  /* config */
  pk_kite *kites;
  int nkites, max_kites;
  pk_frontend *fes; /* a removed one keeps its slot (host ""): tunnels and pings hold indexes */
  int nfes, max_frontends;
  pk_cfg_op *ops, **ops_tail; /* under lock: kite/frontend changes after start (connector.h) */
  int max_conns;
  /* pools */
  pk_pool blocks;
  pk_conn *conns;
  int nconns;
  pk_conn *conn_free;
  int conns_in_use;
  struct pk_wreq *wreq_free; /* write requests to reuse (conn.c, loop thread) */
  int nobuf_waiting; /* conns whose reads wait for a free block */
  int rx_blocked;    /* tunnels not reading: a stream cannot take their next chunk */
  int unblocking;    /* pk_tunnels_unblock is running */
  int client_conns;  /* streams and unclassified conns: bounded by max_conns */
  pk_tunnel *tunnels;
  int ntunnels;
  SSL_CTX *client_ctx;
  SSL_CTX *relay_ctx; /* pagekite_set_relay_tls: any name without an endpoint */
  /* relay */
  pk_tls_endpoint *tls_eps; /* per-name certificates (api_relay.c) */
  int ntls_eps, max_tls_eps;
  char tls_default[PK_NAME_MAX]; /* the name assumed without SNI */
  unsigned char raw_ports[65536 / 8]; /* raw-PORT kites accepted besides listeners */
  int raw_virtual;                    /* raw kites on any port */
  int port_alias[PK_MAX_PORT_ALIASES][2]; /* {listening port, the port it stands for} */
  int nport_alias;
  char motd[PK_MOTD_MAX + 1]; /* under lock, as tls_eps, relay_ctx and tls_default */
  pk_pp_cidr proxy_sources[PK_MAX_PROXY_SOURCES]; /* PROXY headers required from these */
  int nproxy_sources;
  char hello_ports[256], hello_raw[512]; /* X-PageKite-(Raw-)Ports, set when bound */
  pk_listener *listeners;
  int nlisteners, max_listeners;
  pk_domains domains; /* under lock: changed from any thread (domains.h) */
  /* --authdomain (authq.c), set before start: kite domains and their DNS
   * suffixes ("" kite domain: the default), the lookups under way */
  struct {
    char kite_domain[PK_NAME_MAX], target[PK_NAME_MAX];
  } authdomains[PK_MAX_AUTHDOMAINS];
  int nauthdomains;
  int authfail_closed;
  struct pk_authq_job *authq; /* every lookup under way or waiting (loop thread) */
  int authq_active, authq_waiting, authq_stopping;
  struct pk_authapp *authapps; /* auth apps (authapp.c, loop thread) */
  int reconfigured;   /* PK_GET/PK_SET: the loop re-checks live kites (role->reconfigure) */
  pk_reg rkites; /* the live kites (registry.c) */
  int max_rkites;
  char relay_secret[PK_TOKEN_LEN + 1];
  char auth_secret[PK_SECRET_MAX]; /* loop thread: the secret being checked (relay.c) */
  char relay_uuid[17];
  pk_replay replay;    /* challenges answered (each is good once) */
  pk_iptab unauth_ips; /* unknown conns and kite-less tunnels per source */
  pk_acl client_acl, tunnel_acl; /* --client_acl, --tunnel_acl (acl.c) */
  int require_tls;               /* tunnels only inside TLS */
  struct pk_rl_rule *rl_rules;   /* --ratelimit_ips, in the order given */
  int nrl_rules;
  pk_kite_rule *kite_rules; /* connector: +ip/ and +password/ (acl.c) */
  int nkite_rules;
  int relay_dups;    /* several tunnels may fly one kite; streams take turns */
  int unauth_conns;
  /* counters: written by the loop only, through PK_COUNT (atomic), so that
   * pagekite_get_counter reads them live from any thread: a client that saw
   * bytes arrive must find them counted.  Kites and tunnels are published
   * into counters_pub under the lock (at once when they change). */
  long long c_bytes_in, c_bytes_out, c_streams_total, c_rejected;
  int c_streams;
  int tunnels_open; /* handshake done, not ended (pk_tunnel_opened .. tunnel_end) */
  long long counters_pub[PK_COUNTERS_N];
  uv_check_t publish;
  /* reconnect state (connector) */
  int fail_streak;
  uint64_t next_attempt;
  uint64_t last_hk;
  uint64_t outage_started;
  int rejected;
  char rejection_url[512];
  pk_ratelimit rl_refused, rl_dropped; /* log lines for refused streams / dropped conns */
  pk_proxy proxy;             /* outgoing proxy, when nproxy_addrs > 0 */
  struct sockaddr_storage proxy_addrs[PK_MAX_ORIGIN_ADDRS];
  int nproxy_addrs;
  int reject_streak;          /* rejections in a row (back-off) */
  uint64_t retry_rejected_at; /* when refused kites are asked for again */
  /* log and events */
  pk_logring log;
  pk_evring evring;
  pk_outbuf *outbufs;
  /* plugins (plugins_lua.c) */
  void *plugins;
  uint64_t last_plugin_tick;
  /* status and metrics (admin.c) */
  long long c_rejects[PK_REJECT_N]; /* the loop's, by PK_REJECT_* (sum: c_rejected) */
  time_t started_at;
  char admin_host[64]; /* pagekite_set_admin_listener; admin_port 0: off */
  int admin_port;
  struct pk_admin *admin;
  /* snapshot requests from other threads: under the lock */
  unsigned long long snap_req, snap_done;
  unsigned long long snap_done_loop; /* the loop's own copy of snap_done */
  char *snap_metrics, *snap_status;
  pk_kstat *kstats; /* traffic per kite name, kept for the manager's life (loop) */
  int nkstats, cap_kstats;
};

void pk_set_status(pk_mgr *m, int status);
/* Copies the loop's counters for pagekite_get_counter (loop thread, or before
 * the loop runs). */
void pk_counters_publish(pk_mgr *m);
int pk_manager_start(pk_mgr *m);
void pk_manager_wake(pk_mgr *m);
void pk_manager_tick_soon(pk_mgr *m); /* loop thread: housekeep on the next loop turn */
int pk_manager_join(pk_mgr *m);
int pk_manager_poll(pk_mgr *m, int timeout_s);
int pk_ddns_url(pk_mgr *m, const pk_kite *k, const char *ips, char *out, size_t n);
int pk_head_rewrite(const char *head, size_t hl, const pk_hook_result *r, char *out, size_t outsz);
int pk_hook_reject_response(const pk_hook_result *r, char *out, size_t outsz);
void pk_notify(pk_mgr *m);
/* -1: stay quiet (counted); else log now, mentioning the returned number of
 * lines left out since the last one. */
long pk_ratelimit_check(pk_mgr *m, pk_ratelimit *rl);
void pk_count_error(pk_mgr *m);
/* weight faults at once (a rejected kite: PK_FAULTS_PER_REJECTION). */
void pk_count_faults(pk_mgr *m, int weight);
/* The library's only way out of its host process (bail-on-errors: 100, the
 * watchdog: 134 = abort()).  Any thread. */
void pk_process_exit(pk_mgr *m, int code, const char *why);
SSL_CTX *pk_client_tls_ctx(pk_mgr *m);
int pk_is_relay(pk_mgr *m);

/* ---- admin.c ---- */
/* The traffic entry of a kite (index + 1), made on first use; 0 when the
 * table is full (at most max_kites names) or out of memory.  Loop thread. */
int pk_kstat_get(pk_mgr *m, const char *proto, const char *name, int port);
/* A refusal, by PK_REJECT_* reason (loop thread). */
void pk_count_reject(pk_mgr *m, int reason);
int pk_admin_bind(pk_mgr *m);
void pk_admin_stop(pk_mgr *m);
void pk_admin_on_wake(pk_mgr *m);
void pk_admin_free(pk_mgr *m);

/* ---- api.c: shared by the entry points of api_relay.c ---- */
/* -1 (with the error set) if the master thread runs already. */
int pk_api_before_start(pk_mgr *m, const char *fn);
/* A name without ':', blanks or control characters, shorter than max. */
int pk_api_valid_name(const char *s, size_t max);

#endif

/* manager.h - the manager (manager.c, api.c, log.c): pools, loop thread, status, log.
 * Part of the core's private headers: included through internal.h, which
 * declares the shared types first. */
#ifndef PK_MANAGER_H
#define PK_MANAGER_H

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
  char certnames[PK_MAX_CERTNAMES][PK_NAME_MAX]; /* accepted relay certificate names */
  int ncertnames;
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
  pk_reg rkites; /* the live kites (registry.c) */
  int max_rkites;
  char relay_secret[PK_TOKEN_LEN + 1];
  char relay_uuid[17];
  pk_replay replay;    /* challenges answered (each is good once) */
  pk_iptab unauth_ips; /* unknown conns and kite-less tunnels per source */
  int relay_dups;    /* several tunnels may fly one kite; streams take turns */
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
  char reason_out[64];
  char rejection_url[512];
  pk_ratelimit rl_refused, rl_dropped; /* log lines for refused streams / dropped conns */
  pk_proxy proxy;             /* outgoing proxy, when nproxy_addrs > 0 */
  struct sockaddr_storage proxy_addrs[PK_MAX_ORIGIN_ADDRS];
  int nproxy_addrs;    /* framed in the connector's 503 page, if set */        /* pagekite_get_kite_reason's answer */
  int reject_streak;          /* rejections in a row (back-off) */
  uint64_t retry_rejected_at; /* when refused kites are asked for again */
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
/* -1: stay quiet (counted); else log now, mentioning the returned number of
 * lines left out since the last one. */
long pk_ratelimit_check(pk_mgr *m, pk_ratelimit *rl);
void pk_count_error(pk_mgr *m);
/* weight faults at once (a rejected kite: PK_FAULTS_PER_REJECTION). */
void pk_count_faults(pk_mgr *m, int weight);
SSL_CTX *pk_client_tls_ctx(pk_mgr *m);
int pk_is_relay(pk_mgr *m);

#endif

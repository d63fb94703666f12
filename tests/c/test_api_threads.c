/* test_api_threads.c - the calls documented "at any time (thread-safe)" are
 * made from several threads in a loop while a relay and a connector on
 * loopback carry HTTP traffic.  Built normally it checks what the callers
 * see (counters never go backwards, buffers hold whole text); built with
 * -DPK_TSAN=ON, ThreadSanitizer reports any unlocked read of state the loop
 * owns (doc/HARDENING.md).
 */
#include <pthread.h>
#include <stdlib.h>

#include "test_api_util.h"

#define BODY_LEN 20000
#define RUN_MS 2500
#define NCALLERS 3

typedef struct {
  int lfd;
  int stop;      /* atomic */
  long served;   /* atomic */
  int relay_port;
  int origin_port;
  long fetched;  /* atomic: whole responses the client read */
  pagekite_mgr relay, conn;
  int bad;       /* atomic: what a caller saw that cannot be */
  long calls;    /* atomic */
} world;

static int stopped(world *w) { return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); }

/* An origin: each connection gets one response of BODY_LEN bytes. */
static void *origin_main(void *arg) {
  world *w = arg;
  static char resp[BODY_LEN + 128];
  int hl = snprintf(resp, sizeof(resp),
                    "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", BODY_LEN);
  memset(resp + hl, 'x', BODY_LEN);
  resp[hl + BODY_LEN] = 0;
  while (!stopped(w)) {
    if (t_wait_readable(w->lfd, 100) <= 0) continue;
    int fd = accept(w->lfd, NULL, NULL);
    if (fd < 0) continue;
    char buf[2048];
    size_t off = 0;
    while (off + 1 < sizeof(buf) && t_wait_readable(fd, 1000) > 0) {
      ssize_t r = recv(fd, buf + off, sizeof(buf) - 1 - off, 0);
      if (r <= 0) break;
      off += (size_t)r;
      buf[off] = 0;
      if (strstr(buf, "\r\n\r\n")) break;
    }
    t_send_all(fd, resp);
    close(fd);
    __atomic_add_fetch(&w->served, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

/* A client: requests through the relay, one connection each. */
static void *client_main(void *arg) {
  world *w = arg;
  static char buf[BODY_LEN + 4096];
  while (!stopped(w)) {
    int fd = t_connect(w->relay_port);
    if (fd < 0) continue;
    t_send_all(fd, "GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n");
    size_t n = t_read_all(fd, buf, sizeof(buf), 3000);
    close(fd);
    if (n > BODY_LEN && strstr(buf, "200 OK")) __atomic_add_fetch(&w->fetched, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

static void bad(world *w, const char *what) {
  if (__atomic_fetch_add(&w->bad, 1, __ATOMIC_RELAXED) < 5) fprintf(stderr, "caller saw: %s\n", what);
}

/* Every counter, status and buffer of one manager; counters only grow. */
static void query(world *w, pagekite_mgr m, long long *prev) {
  static const int mono[] = {PK_COUNTER_BYTES_IN, PK_COUNTER_BYTES_OUT, PK_COUNTER_STREAMS_TOTAL,
                             PK_COUNTER_ERRORS, PK_COUNTER_REJECTED};
  for (int i = 0; i < 5; i++) {
    long long v = pagekite_get_counter(m, mono[i]);
    if (v < prev[i]) bad(w, "a counter went backwards");
    prev[i] = v;
  }
  if (pagekite_get_counter(m, PK_COUNTER_KITES_LIVE) < 0 ||
      pagekite_get_counter(m, PK_COUNTER_TUNNELS) < 0 ||
      pagekite_get_counter(m, PK_COUNTER_STREAMS) < 0)
    bad(w, "a negative gauge");
  int st = pagekite_get_status(m);
  if (strcmp(pagekite_status_name(st), "UNKNOWN") == 0) bad(w, "an unknown status");
  const char *log = pagekite_get_log(m);
  size_t ll = log ? strlen(log) : 0;
  if (!log || (ll && log[ll - 1] != '\n')) bad(w, "a log snapshot cut short");
  /* The loop takes the snapshot; each thread gets its own whole copy. */
  const char *met = pagekite_get_metrics(m);
  if (!met || !strstr(met, "pagekite_streams_opened_total ") || met[strlen(met) - 1] != '\n')
    bad(w, "metrics text missing or cut short");
  const char *js = pagekite_get_status_json(m);
  if (!js || js[0] != '{' || !strstr(js, "\"kites\": [") || strcmp(js + strlen(js) - 2, "}\n"))
    bad(w, "status JSON missing or cut short");
  pagekite_event ev[8] = {PAGEKITE_EVENT_INIT};
  int n = pagekite_next_events(m, 0, ev, 8, 0);
  for (int i = 1; i < n; i++)
    if (ev[i].seq != ev[i - 1].seq + 1) bad(w, "events out of order");
}

/* The settings: values that keep the managers working. */
static void settings(pagekite_mgr m, long i) {
  pagekite_set_log_mask(m, (i & 1) ? PK_LOG_ALL : PK_LOG_NORMAL);
  pagekite_set_housekeeping_min_interval(m, 15 + (int)(i & 3));
  pagekite_set_housekeeping_max_interval(m, 120);
  pagekite_enable_http_forwarding_headers(m, (int)(i & 1));
  pagekite_enable_fake_ping(m, 0);
  pagekite_enable_tick_timer(m, 1);
  pagekite_set_conn_eviction_idle_s(m, (i & 1) ? 0 : 300);
  pagekite_want_spare_frontends(m, 0);
  pagekite_set_bail_on_errors(m, 0);
  pagekite_set_rejection_url(m, (i & 1) ? "http://example.com/x" : "");
  pagekite_set_openssl_ciphers(m, "DEFAULT");
}

static void *caller_main(void *arg) {
  world *w = arg;
  long long prev_r[5] = {0}, prev_c[5] = {0};
  for (long i = 0; !stopped(w); i++) {
    query(w, w->relay, prev_r);
    query(w, w->conn, prev_c);
    if (pagekite_get_kite_status(w->conn, "http", "demo.test") < 0) bad(w, "kite status -1");
    const char *why = pagekite_get_kite_reason(w->conn, "http", "demo.test");
    if (!why || strlen(why) > 63) bad(w, "a kite reason");
    /* Read by the loop at every new stream; 0 keeps the plain origin happy. */
    if (pagekite_set_kite_proxy_protocol(w->conn, "http", "demo.test", 0) != 0) bad(w, "proxy protocol");
    settings(w->conn, i);
    settings(w->relay, i);
    pagekite_tick(w->conn);
    if (pagekite_version_number() != PK_VERSION_NUMBER) bad(w, "version");
    (void)pagekite_last_error();
    __atomic_add_fetch(&w->calls, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

/* Live reconfiguration from another thread while traffic flows: relay
 * domains (the live kite's own re-added with its secret: it stays), the
 * MOTD and TLS default name; connector kites and relays added and removed. */
static void *reconfigurer_main(void *arg) {
  world *w = arg;
  char name[64];
  for (long i = 0; !stopped(w); i++) {
    snprintf(name, sizeof(name), "x%ld.other", i % 8);
    if (pagekite_add_relay_domain(w->relay, "http", name, "s3cret") != 0) bad(w, "add domain");
    if (pagekite_remove_relay_domain(w->relay, "http", name) != 0) bad(w, "remove domain");
    if (pagekite_add_relay_domain(w->relay, "http", "*.test", "s3cret") != 0)
      bad(w, "re-add the live domain");
    pagekite_set_relay_motd(w->relay, (i & 1) ? "odd" : NULL);
    pagekite_set_relay_tls_default(w->relay, (i & 1) ? "demo.test" : NULL);
    if ((i & 15) == 0) {
      if (pagekite_add_kite(w->conn, "http", "extra.test", 0, "s3cret", "127.0.0.1",
                            w->origin_port) != 0)
        bad(w, "add kite");
      t_sleep_ms(20);
      if (pagekite_remove_kite(w->conn, "http", "extra.test", 0) != 0) bad(w, "remove kite");
      if (pagekite_add_frontend(w->conn, "127.0.0.1", 9) != 1) bad(w, pagekite_last_error());
      if (pagekite_remove_frontend(w->conn, "127.0.0.1", 9) != 0) bad(w, pagekite_last_error());
    }
    __atomic_add_fetch(&w->calls, 1, __ATOMIC_RELAXED);
    t_sleep_ms(1);
  }
  return NULL;
}

static int start_world(world *w, int *origin_port) {
  w->lfd = t_listen(origin_port);
  w->relay = t_start_relay(4, 64, "http", "*.test", "s3cret");
  if (w->lfd < 0 || !w->relay) return -1;
  w->relay_port = t_relay_port(w->relay);
  w->origin_port = *origin_port;
  w->conn = pagekite_init("test-threads", 2, 2, 64, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4,
                          PK_LOG_ALL);
  if (!w->conn ||
      pagekite_add_kite(w->conn, "http", "demo.test", 0, "s3cret", "127.0.0.1", *origin_port) ||
      pagekite_add_frontend(w->conn, "127.0.0.1", w->relay_port) != 1 ||
      pagekite_thread_start(w->conn) != 0)
    return -1;
  int want[] = {PK_STATUS_FLYING};
  return t_wait_status(w->conn, want, 1, 10000) == PK_STATUS_FLYING ? 0 : -1;
}

TEST(any_thread_calls_under_traffic) {
  static world w;
  int origin_port = 0;
  int ok = start_world(&w, &origin_port) == 0;
  CHECK(ok);
  pthread_t origin, client, callers[NCALLERS], reconfigurer;
  if (ok) {
    pthread_create(&origin, NULL, origin_main, &w);
    pthread_create(&client, NULL, client_main, &w);
    for (int i = 0; i < NCALLERS; i++) pthread_create(&callers[i], NULL, caller_main, &w);
    pthread_create(&reconfigurer, NULL, reconfigurer_main, &w);
    t_sleep_ms(RUN_MS);
    __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < NCALLERS; i++) pthread_join(callers[i], NULL);
    pthread_join(reconfigurer, NULL);
    pthread_join(client, NULL);
    pthread_join(origin, NULL);
    fprintf(stderr, "fetched %ld, served %ld, calls %ld\n", w.fetched, w.served, w.calls);
    CHECK(w.fetched > 0);
    CHECK(w.calls > 0);
    CHECK_INT(w.bad, 0);
    if (w.bad) fprintf(stderr, "connector log:\n%s\n", pagekite_get_log(w.conn));
    /* Byte and stream counts are live: they cover every page the client
     * read, with no wait (test_api_counters checks it page by page). */
    CHECK(pagekite_get_counter(w.relay, PK_COUNTER_BYTES_IN) >= (long long)w.fetched * BODY_LEN);
    CHECK(pagekite_get_counter(w.relay, PK_COUNTER_STREAMS_TOTAL) >= w.fetched);
    /* demo.test, and extra.test if it was last removed while sharing the
     * tunnel (the wire cannot drop one kite of a tunnel) */
    CHECK(pagekite_get_counter(w.relay, PK_COUNTER_KITES_LIVE) >= 1);
    CHECK_INT(pagekite_get_kite_status(w.conn, "http", "demo.test"), PK_KITE_STATUS_FLYING);
    CHECK_INT(pagekite_get_counter(w.conn, PK_COUNTER_TUNNELS), 1);
  } else if (w.conn) {
    fprintf(stderr, "connector log:\n%s\n", pagekite_get_log(w.conn));
  }
  if (w.conn) CHECK_INT(pagekite_free(w.conn), 0);
  if (w.relay) CHECK_INT(pagekite_free(w.relay), 0);
  if (w.lfd >= 0) close(w.lfd);
}

int main(void) {
  alarm(120); /* ThreadSanitizer runs it several times slower */
  RUN(any_thread_calls_under_traffic);
  return TEST_DONE();
}

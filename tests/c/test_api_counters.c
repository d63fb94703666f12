/* test_api_counters.c - counters are current the moment a transfer is seen
 * to complete.
 *
 * Flake seen once in tests/lua (test_module_relay_and_connector_fly_a_kite):
 * a client had read a whole page through the relay, yet the relay then
 * reported bytes_in 0 and streams_total 1.  A client can see the bytes as
 * soon as the loop writes them; pagekite_get_counter must never tell less
 * than what anyone outside could already have seen.
 *
 * A relay and a connector on loopback; ROUNDS times: a new client connection
 * fetches one page, and right after its last byte arrives the counters of
 * both managers are read from this thread.  Each must already cover every
 * page fetched so far: the relay's and the connector's bytes (each body
 * counted where it crossed the tunnel), and streams_total.
 */
#include <pthread.h>
#include <stdlib.h>

#include "test_api_util.h"

#define ROUNDS 300
#define BODY_LEN 3000
#define SECRET "counters-secret"

static int origin_fd;
static int origin_stop; /* atomic */
static char page[BODY_LEN + 128];
static int page_len;

/* Each connection: read the request head, answer one page, close. */
static void *origin_main(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&origin_stop, __ATOMIC_ACQUIRE)) {
    if (t_wait_readable(origin_fd, 100) <= 0) continue;
    int fd = accept(origin_fd, NULL, NULL);
    if (fd < 0) continue;
    char buf[2048];
    size_t off = 0;
    while (off + 1 < sizeof(buf) && t_wait_readable(fd, 2000) > 0) {
      ssize_t r = recv(fd, buf + off, sizeof(buf) - 1 - off, 0);
      if (r <= 0) break;
      off += (size_t)r;
      buf[off] = 0;
      if (strstr(buf, "\r\n\r\n")) break;
    }
    t_send_all(fd, page);
    close(fd);
  }
  return NULL;
}

/* Read exactly n bytes (the whole response) or fail. */
static int read_exactly(int fd, char *buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    if (t_wait_readable(fd, 5000) <= 0) return -1;
    ssize_t r = recv(fd, buf + off, n - off, 0);
    if (r <= 0) return -1;
    off += (size_t)r;
  }
  return 0;
}

int main(void) {
  alarm(60);
  page_len = snprintf(page, sizeof(page),
                      "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
                      BODY_LEN);
  memset(page + page_len, 'c', BODY_LEN);
  page_len += BODY_LEN;
  page[page_len] = 0;

  int oport = 0;
  origin_fd = t_listen(&oport);
  CHECK(origin_fd >= 0);
  pthread_t ot;
  CHECK(pthread_create(&ot, NULL, origin_main, NULL) == 0);

  pagekite_mgr relay = t_start_relay(4, 64, "http", "*.test", SECRET);
  CHECK(relay != NULL);
  int rport = t_relay_port(relay);
  CHECK(rport > 0);
  pagekite_mgr conn = pagekite_init("test-counters", 1, 1, 64, NULL,
                                    PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, PK_LOG_NORMAL);
  CHECK(conn != NULL);
  CHECK(pagekite_add_kite(conn, "http", "counters.test", 0, SECRET, "127.0.0.1", oport) == 0);
  CHECK(pagekite_add_frontend(conn, "127.0.0.1", rport) >= 1);
  CHECK(pagekite_thread_start(conn) == 0);
  int flying[] = {PK_STATUS_FLYING};
  CHECK(t_wait_status(conn, flying, 1, 15000) == PK_STATUS_FLYING);

  static const char req[] = "GET /c HTTP/1.1\r\nHost: counters.test\r\n\r\n";
  static char got[BODY_LEN + 128];
  long long r_in0 = pagekite_get_counter(relay, PK_COUNTER_BYTES_IN);
  long long c_out0 = pagekite_get_counter(conn, PK_COUNTER_BYTES_OUT);
  long long c_in0 = pagekite_get_counter(conn, PK_COUNTER_BYTES_IN);
  long long r_st0 = pagekite_get_counter(relay, PK_COUNTER_STREAMS_TOTAL);
  long long c_st0 = pagekite_get_counter(conn, PK_COUNTER_STREAMS_TOTAL);
  int stale = 0, fetched = 0;
  for (int i = 1; i <= ROUNDS; i++) {
    int fd = t_connect(rport);
    CHECK(fd >= 0);
    CHECK(t_send_all(fd, req) == 0);
    int ok = read_exactly(fd, got, (size_t)page_len) == 0;
    /* The whole page is here: read the counters before anything else. */
    long long r_in = pagekite_get_counter(relay, PK_COUNTER_BYTES_IN) - r_in0;
    long long c_out = pagekite_get_counter(conn, PK_COUNTER_BYTES_OUT) - c_out0;
    long long c_in = pagekite_get_counter(conn, PK_COUNTER_BYTES_IN) - c_in0;
    long long r_st = pagekite_get_counter(relay, PK_COUNTER_STREAMS_TOTAL) - r_st0;
    long long c_st = pagekite_get_counter(conn, PK_COUNTER_STREAMS_TOTAL) - c_st0;
    close(fd);
    if (!ok) {
      fprintf(stderr, "round %d: the page did not come through\n", i);
      break;
    }
    CHECK(memcmp(got, page, (size_t)page_len) == 0);
    fetched++;
    long long want_body = (long long)i * page_len, want_req = (long long)i * (long long)strlen(req);
    if (r_in < want_body || c_out < want_body || c_in < want_req || r_st < i || c_st < i) {
      if (stale++ < 5)
        fprintf(stderr,
                "round %d: page read, but relay bytes_in %lld (want >= %lld), connector "
                "bytes_out %lld, bytes_in %lld (want >= %lld), streams_total relay %lld "
                "connector %lld (want >= %d)\n",
                i, r_in, want_body, c_out, c_in, want_req, r_st, c_st, i);
    }
  }
  printf("%d pages fetched, counters behind the client %d time(s)\n", fetched, stale);
  CHECK(fetched == ROUNDS);
  CHECK(stale == 0);

  __atomic_store_n(&origin_stop, 1, __ATOMIC_RELEASE);
  pthread_join(ot, NULL);
  close(origin_fd);
  CHECK(pagekite_thread_stop(conn) == 0);
  CHECK(pagekite_thread_stop(relay) == 0);
  pagekite_free(conn);
  pagekite_free(relay);
  return TEST_DONE();
}

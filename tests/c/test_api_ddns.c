/* test_api_ddns.c - end to end over loopback: a connector flies a kite on an
 * in-process relay, then sends its dynamic DNS update to a tiny HTTP server
 * in this test, signed with the kite's secret.
 */
#include <pthread.h>
#include <stdlib.h>

#include "test_api_util.h"

typedef struct {
  int lfd;
  pthread_mutex_t lock;
  char request[4096]; /* the whole request head, once received */
  int done;
  int count; /* complete requests seen */
  int stop;
} ddns_server;

/* Accepts connections until stop, recording the first complete request head
 * and answering every request with a small 200. */
static void *ddns_server_main(void *arg) {
  ddns_server *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    int stop = s->stop;
    pthread_mutex_unlock(&s->lock);
    if (stop) break;
    if (t_wait_readable(s->lfd, 100) <= 0) continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    char buf[4096];
    size_t off = 0;
    long long deadline = t_now_ms() + 3000;
    while (off + 1 < sizeof(buf) && t_now_ms() < deadline) {
      if (t_wait_readable(fd, 100) <= 0) continue;
      ssize_t r = recv(fd, buf + off, sizeof(buf) - 1 - off, 0);
      if (r <= 0) break;
      off += (size_t)r;
      buf[off] = 0;
      if (strstr(buf, "\r\n\r\n")) break;
    }
    buf[off] = 0;
    pthread_mutex_lock(&s->lock);
    if (strstr(buf, "\r\n\r\n")) s->count++;
    if (!s->done && strstr(buf, "\r\n\r\n")) {
      memcpy(s->request, buf, off + 1);
      s->done = 1;
    }
    pthread_mutex_unlock(&s->lock);
    t_sleep_ms(800); /* an update in flight: the connector says UPDATING_DNS */
    t_send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\ngood ok");
    close(fd);
  }
  return NULL;
}

TEST(ddns_end_to_end) {
  long long started = t_now_ms();
  ddns_server srv;
  memset(&srv, 0, sizeof(srv));
  pthread_mutex_init(&srv.lock, NULL);
  int http_port = 0;
  srv.lfd = t_listen(&http_port);
  CHECK(srv.lfd >= 0);
  if (srv.lfd < 0) return;
  pthread_t th;
  CHECK_INT(pthread_create(&th, NULL, ddns_server_main, &srv), 0);

  pagekite_mgr relay = t_start_relay(4, 32, "http", "*.test", "s3cret");
  CHECK(relay != NULL);
  int relay_port = t_relay_port(relay);
  CHECK(relay_port > 0);

  int origin_port = t_closed_port(); /* the origin is never contacted */
  char url[256];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/update?hostname=%%s&myip=%%s&sign=%%s",
           http_port);
  pagekite_mgr conn =
      pagekite_init("test-ddns", 1, 1, 16, url, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, PK_LOG_ALL);
  CHECK(conn != NULL);
  if (!relay || !conn || relay_port <= 0) goto out;
  CHECK_INT(pagekite_add_kite(conn, "http", "demo.test", 0, "s3cret", "127.0.0.1", origin_port),
            0);
  CHECK_INT(pagekite_add_frontend(conn, "127.0.0.1", relay_port), 1);
  CHECK_INT(pagekite_thread_start(conn), 0);

  int want[] = {PK_STATUS_FLYING};
  int st = t_wait_status(conn, want, 1, 10000);
  CHECK_INT(st, PK_STATUS_FLYING);
  if (st != PK_STATUS_FLYING) {
    fprintf(stderr, "connector log:\n%s\nrelay log:\n%s\n", pagekite_get_log(conn),
            pagekite_get_log(relay));
    goto out;
  }
  CHECK_INT(pagekite_get_counter(relay, PK_COUNTER_KITES_LIVE), 1);
  CHECK_INT(pagekite_get_counter(conn, PK_COUNTER_KITES_LIVE), 1);

  /* The update follows within a few housekeeping ticks. */
  char req[4096] = "";
  long long deadline = t_now_ms() + 10000;
  while (t_now_ms() < deadline) {
    pthread_mutex_lock(&srv.lock);
    int done = srv.done;
    if (done) memcpy(req, srv.request, sizeof(req));
    pthread_mutex_unlock(&srv.lock);
    if (done) break;
    t_sleep_ms(20); /* not poll: the server holds its answer, nothing happens */
  }
  CHECK(req[0] != 0);
  if (!req[0]) {
    fprintf(stderr, "no DDNS request; connector log:\n%s\n", pagekite_get_log(conn));
    goto out;
  }
  /* "GET /update?hostname=demo.test&myip=127.0.0.1&sign=<48> HTTP/1.x" */
  const char *prefix = "GET /update?hostname=demo.test&myip=127.0.0.1&sign=";
  size_t pl = strlen(prefix);
  CHECK(strncmp(req, prefix, pl) == 0);
  if (strncmp(req, prefix, pl) != 0) {
    fprintf(stderr, "request was: %.200s\n", req);
    goto out;
  }
  size_t sl = strcspn(req + pl, " &\r\n");
  CHECK_INT(sl, PK_LONG_SIGN_LEN);
  char sig[PK_LONG_SIGN_LEN + 1] = "";
  if (sl == PK_LONG_SIGN_LEN) memcpy(sig, req + pl, PK_LONG_SIGN_LEN);
  CHECK(strncmp(req + pl + sl, " HTTP/1.", 8) == 0);
  CHECK(ddns_sig_ok(sig, "s3cret", "demo.test:127.0.0.1"));
  /* The server holds its answer: the update is in flight, then done. */
  CHECK_INT(pagekite_get_status(conn), PK_STATUS_UPDATING_DNS);
  CHECK_INT(t_wait_status(conn, want, 1, 5000), PK_STATUS_FLYING);
  CHECK(!ddns_sig_ok(sig, "wrong", "demo.test:127.0.0.1"));
  /* Host header of the update names the server. */
  CHECK(strstr(req, "\r\nHost: 127.0.0.1") != NULL);
  char host_with_port[64];
  snprintf(host_with_port, sizeof(host_with_port), "\r\nHost: 127.0.0.1:%d\r\n", http_port);
  if (!strstr(req, host_with_port))
    fprintf(stderr, "note: Host header lacks the non-default port %d (RFC 9110 7.2)\n",
            http_port);
  /* Only one update while nothing changes. */
  t_sleep_ms(1000);
  pthread_mutex_lock(&srv.lock);
  int count = srv.count;
  pthread_mutex_unlock(&srv.lock);
  CHECK_INT(count, 1);
  CHECK(t_log_has(conn, "DDNS update"));
  CHECK(pagekite_get_status(conn) == PK_STATUS_FLYING);

out:
  if (conn) CHECK_INT(pagekite_free(conn), 0);
  if (relay) CHECK_INT(pagekite_free(relay), 0);
  pthread_mutex_lock(&srv.lock);
  srv.stop = 1;
  pthread_mutex_unlock(&srv.lock);
  pthread_join(th, NULL);
  close(srv.lfd);
  pthread_mutex_destroy(&srv.lock);
  CHECK(t_now_ms() - started < 20000);
}

int main(void) {
  alarm(25);
  RUN(ddns_end_to_end);
  return TEST_DONE();
}

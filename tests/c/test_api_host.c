/* test_api_host.c - the library leaves its host process alone: the SIGPIPE
 * disposition stays as the host set it (default: die) and peers that close
 * mid-write do not kill the host; the environment is read once, at init;
 * write requests are pooled per manager and freed with it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "test_api_util.h"

#define BIG_BODY (4 << 20)

typedef struct {
  int lfd;
  int stop; /* atomic */
  int mode; /* atomic; 0: send BIG_BODY; 1: close at once (the connector writes into a closed origin) */
} origin;

static void *origin_main(void *arg) {
  origin *o = arg;
  char *body = malloc(BIG_BODY + 1);
  memset(body, 'x', BIG_BODY);
  body[BIG_BODY] = 0;
  while (!__atomic_load_n(&o->stop, __ATOMIC_ACQUIRE)) {
    if (t_wait_readable(o->lfd, 100) <= 0) continue;
    int fd = accept(o->lfd, NULL, NULL);
    if (fd < 0) continue;
    if (__atomic_load_n(&o->mode, __ATOMIC_ACQUIRE) == 0) {
      char head[128];
      snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_BODY);
      if (t_send_all(fd, head) == 0) t_send_all(fd, body);
    }
    close(fd);
  }
  free(body);
  return NULL;
}

/* A relay and a connector flying http://demo.test to o's port. */
static int fly(pagekite_mgr *relay, pagekite_mgr *conn, int origin_port) {
  *relay = t_start_relay(4, 64, "http", "*.test", "s3cret");
  *conn = pagekite_init("test-host", 1, 1, 64, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4,
                        PK_LOG_ALL);
  if (!*relay || !*conn ||
      pagekite_add_kite(*conn, "http", "demo.test", 0, "s3cret", "127.0.0.1", origin_port) ||
      pagekite_add_frontend(*conn, "127.0.0.1", t_relay_port(*relay)) != 1 ||
      pagekite_thread_start(*conn) != 0)
    return -1;
  int want[] = {PK_STATUS_FLYING};
  return t_wait_status(*conn, want, 1, 10000) == PK_STATUS_FLYING ? 0 : -1;
}

/* Clients that read a little of a big answer and reset; clients that send a
 * big body to an origin that hung up.  Either way a write of ours meets a
 * closed socket (EPIPE). */
static void rude_clients(int relay_port, origin *o) {
  static char junk[1 << 16];
  memset(junk, 'y', sizeof(junk) - 1);
  for (int i = 0; i < 12; i++) {
    __atomic_store_n(&o->mode, i & 1, __ATOMIC_RELEASE);
    int fd = t_connect(relay_port);
    if (fd < 0) continue;
    if ((i & 1) == 0) {
      t_send_all(fd, "GET / HTTP/1.1\r\nHost: demo.test\r\n\r\n");
      char buf[4096];
      if (t_wait_readable(fd, 3000) > 0) (void)!recv(fd, buf, sizeof(buf), 0);
    } else {
      t_send_all(fd, "POST / HTTP/1.1\r\nHost: demo.test\r\nContent-Length: 4000000\r\n\r\n");
      for (int k = 0; k < 60 && t_send_all(fd, junk) == 0; k++) {
      }
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    t_sleep_ms(50);
  }
}

static void (*pipe_disposition(void))(int) {
  struct sigaction sa;
  sigaction(SIGPIPE, NULL, &sa);
  return sa.sa_handler;
}

TEST(sigpipe_left_to_the_host) {
  signal(SIGPIPE, SIG_DFL); /* a host that never thought about SIGPIPE */
  origin o = {.lfd = -1};
  int origin_port = 0;
  o.lfd = t_listen(&origin_port);
  pagekite_mgr relay = NULL, conn = NULL;
  int ok = o.lfd >= 0 && fly(&relay, &conn, origin_port) == 0;
  CHECK(ok);
  CHECK(pipe_disposition() == SIG_DFL);
  if (ok) {
    pthread_t th;
    pthread_create(&th, NULL, origin_main, &o);
    rude_clients(t_relay_port(relay), &o);
    __atomic_store_n(&o.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    /* Still here (SIGPIPE would have killed us), still flying. */
    CHECK_INT(pagekite_get_status(conn), PK_STATUS_FLYING);
    CHECK(pipe_disposition() == SIG_DFL);
    /* Each manager pooled its own write requests (read once the loops end). */
    CHECK_INT(pagekite_thread_stop(conn), 0);
    CHECK_INT(pagekite_thread_stop(relay), 0);
    CHECK(pk_conn_wreqs_pooled((pk_mgr *)(void *)relay) > 0);
    CHECK(pk_conn_wreqs_pooled((pk_mgr *)(void *)conn) > 0);
  }
  if (conn) pagekite_free(conn);
  if (relay) pagekite_free(relay);
  CHECK(pipe_disposition() == SIG_DFL);
  if (o.lfd >= 0) close(o.lfd);
}

/* Everything the log wrote to stderr while fn ran. */
static size_t stderr_of(void (*fn)(void), char *out, size_t n) {
  fflush(stderr);
  int saved = dup(2), p[2];
  if (saved < 0 || pipe(p) != 0) return 0;
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  dup2(p[1], 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(p[1]);
  ssize_t r = read(p[0], out, n - 1);
  close(p[0]);
  out[r > 0 ? r : 0] = 0;
  return r > 0 ? (size_t)r : 0;
}

static void init_then_setenv(void) {
  unsetenv("PK_LOG_STDERR");
  pagekite_mgr m = pagekite_init("env-late", 1, 1, 4, NULL, PK_WITHOUT_DEFAULTS, PK_LOG_ALL);
  setenv("PK_LOG_STDERR", "1", 1);
  pagekite_add_frontend(m, "127.0.0.1", 9); /* logs a line */
  pagekite_free(m);
  unsetenv("PK_LOG_STDERR");
}

static void setenv_then_init(void) {
  setenv("PK_LOG_STDERR", "1", 1);
  pagekite_mgr m = pagekite_init("env-early", 1, 1, 4, NULL, PK_WITHOUT_DEFAULTS, PK_LOG_ALL);
  unsetenv("PK_LOG_STDERR");
  pagekite_add_frontend(m, "127.0.0.1", 9);
  pagekite_free(m);
}

TEST(environment_read_at_init) {
  char out[8192];
  stderr_of(init_then_setenv, out, sizeof(out));
  CHECK(strstr(out, "[pk env-late]") == NULL);
  stderr_of(setenv_then_init, out, sizeof(out));
  CHECK(strstr(out, "[pk env-early] Relay 127.0.0.1:9") != NULL);
}

int main(void) {
  alarm(60);
  RUN(environment_read_at_init);
  RUN(sigpipe_left_to_the_host);
  return TEST_DONE();
}

/* test_api_exit.c - the library ends its host process only through
 * bail-on-errors and the watchdog, as documented, and not at all for a
 * manager made with PK_WITHOUT_PROCESS_EXIT: that one stops and says why in
 * a PK_EVENT_EXIT event.
 *
 * A relay in this process (loopback) refuses the connector's kite (wrong
 * secret); a rejection weighs ten faults, so bail_on_errors = 1 trips at the
 * first one.  The default case runs in a child process: it must exit 100.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "test_api_util.h"

#define SECRET "right-secret"
#define KITE "bail.exit.test"

typedef struct {
  pagekite_mgr relay, conn;
} pair;

/* A relay for *.exit.test and a connector with the wrong secret, bail on
 * errors at 1, both started.  0 on success. */
static int start_rejected(pair *p, int extra_flags) {
  p->conn = NULL;
  p->relay = t_start_relay(4, 8, "http", "*.exit.test", SECRET);
  if (!p->relay) return -1;
  p->conn = pagekite_init("exit-test", 1, 2, 8, NULL,
                          PK_WITHOUT_DEFAULTS | PK_WITH_IPV4 | extra_flags, PK_LOG_ALL);
  if (!p->conn) return -1;
  if (pagekite_lookup_and_add_frontend(p->conn, "127.0.0.1", t_relay_port(p->relay), 0) != 1 ||
      pagekite_add_kite(p->conn, "http", KITE, 0, "wrong-secret", "127.0.0.1", 9) != 0 ||
      pagekite_set_bail_on_errors(p->conn, 1) != 0 || pagekite_thread_start(p->conn) != 0)
    return -1;
  return 0;
}

static void stop_pair(pair *p) {
  if (p->conn) {
    pagekite_thread_stop(p->conn);
    pagekite_free(p->conn);
  }
  if (p->relay) {
    pagekite_thread_stop(p->relay);
    pagekite_free(p->relay);
  }
}

/* Child: the default manager; returns only if the library did not exit. */
static int child_default(void) {
  pair p;
  if (start_rejected(&p, 0) != 0) return 3;
  t_sleep_ms(15000);
  return 4; /* still alive: bail-on-errors did not end the process */
}

TEST(bail_default_exits_100) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid < 0) return;
  if (pid == 0) _exit(child_default());
  int st = 0;
  CHECK_INT(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st), 100);
}

/* The first PK_EVENT_EXIT after seq 0 within ms, or kind 0. */
static pagekite_event wait_exit_event(pagekite_mgr m, int ms) {
  pagekite_event evs[16], none = PAGEKITE_EVENT_INIT;
  long long after = 0, deadline = t_now_ms() + ms;
  for (int i = 0; i < 16; i++) evs[i] = none;
  while (t_now_ms() < deadline) {
    int n = pagekite_next_events(m, after, evs, 16, 200);
    for (int i = 0; i < n; i++) {
      if (evs[i].kind == PK_EVENT_EXIT) return evs[i];
      after = evs[i].seq;
    }
  }
  return none;
}

TEST(bail_without_process_exit_stops_manager) {
  pair p;
  CHECK_INT(start_rejected(&p, PK_WITHOUT_PROCESS_EXIT), 0);
  if (!p.conn || !p.relay) {
    stop_pair(&p);
    return;
  }
  pagekite_event ev = wait_exit_event(p.conn, 15000);
  CHECK_INT(ev.kind, PK_EVENT_EXIT);
  CHECK_INT(ev.code, 100);
  CHECK(strstr(ev.text, "too many errors") != NULL);
  /* The master thread ends by itself: thread_wait returns. */
  CHECK_INT(pagekite_thread_wait(p.conn), 0);
  CHECK_INT(pagekite_get_status(p.conn), PK_STATUS_REJECTED);
  CHECK(t_log_has(p.conn, "too many errors"));
  pagekite_free(p.conn);
  p.conn = NULL;
  stop_pair(&p);
}

/* The watchdog's way out, pk_process_exit(m, 134, why), by default: abort(). */
TEST(watchdog_exit_default_aborts) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid < 0) return;
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    pagekite_mgr m = pagekite_init("exit-test", 1, 1, 4, NULL, PK_WITHOUT_DEFAULTS, 0);
    if (m) pk_process_exit((pk_mgr *)(void *)m, 134, "watchdog: test");
    _exit(5);
  }
  int st = 0;
  CHECK_INT(waitpid(pid, &st, 0), pid);
  CHECK(WIFSIGNALED(st));
  CHECK_INT(WIFSIGNALED(st) ? WTERMSIG(st) : -1, SIGABRT);
}

/* ... and with PK_WITHOUT_PROCESS_EXIT: an event, and the thread ends. */
TEST(watchdog_exit_without_process_exit_stops) {
  pagekite_mgr m = pagekite_init("exit-test", 1, 1, 4, NULL,
                                 PK_WITHOUT_DEFAULTS | PK_WITHOUT_PROCESS_EXIT, 0);
  CHECK(m != NULL);
  if (!m) return;
  CHECK_INT(pagekite_thread_start(m), 0);
  pk_process_exit((pk_mgr *)(void *)m, 134, "watchdog: test");
  pagekite_event ev = wait_exit_event(m, 5000);
  CHECK_INT(ev.kind, PK_EVENT_EXIT);
  CHECK_INT(ev.code, 134);
  CHECK(strcmp(ev.text, "watchdog: test") == 0);
  CHECK_INT(pagekite_thread_wait(m), 0);
  pagekite_free(m);
}

int main(void) {
  alarm(60);
  signal(SIGPIPE, SIG_IGN);
  RUN(bail_default_exits_100);
  RUN(bail_without_process_exit_stops_manager);
  RUN(watchdog_exit_default_aborts);
  RUN(watchdog_exit_without_process_exit_stops);
  return TEST_DONE();
}

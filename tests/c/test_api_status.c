/* test_api_status.c - status, log and poll of a connector whose only relay is
 * a closed loopback port: STARTUP -> CONNECTING -> PROBLEMS / NO_NETWORK, a
 * numbered log that set_log_mask(0) silences, and a poll() that honours its
 * timeout.
 */
#include <stdlib.h>

#include "test_api_util.h"

/* Parses the log: every line must start with a decimal sequence number, and
 * the numbers must go up by exactly one.  Returns the number of lines (or -1
 * when malformed); *last gets the last sequence number. */
static int log_lines(const char *log, unsigned long long *last) {
  int n = 0;
  unsigned long long prev = 0;
  *last = 0;
  for (const char *p = log; *p;) {
    const char *eol = strchr(p, '\n');
    if (!eol) return -1; /* every line ends in \n */
    char *end = NULL;
    unsigned long long seq = strtoull(p, &end, 10);
    if (end == p || *end != ' ') return -1;
    if (n > 0 && seq != prev + 1) return -1;
    prev = seq;
    *last = seq;
    n++;
    p = eol + 1;
  }
  return n;
}

TEST(status_log_poll) {
  long long started = t_now_ms();
  int closed = t_closed_port();
  CHECK(closed > 0);
  pagekite_mgr m =
      pagekite_init("test-status", 1, 1, 16, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, PK_LOG_ALL);
  CHECK(m != NULL);
  if (!m || closed <= 0) return;
  CHECK_INT(pagekite_add_kite(m, "http", "demo.test", 0, "s", "127.0.0.1", closed), 0);
  CHECK_INT(pagekite_add_frontend(m, "127.0.0.1", closed), 1);
  CHECK_INT(pagekite_get_status(m), PK_STATUS_STARTUP);

  unsigned long long last = 0;
  CHECK(log_lines(pagekite_get_log(m), &last) >= 1); /* init and add_kite logged */
  CHECK(last >= 1);

  CHECK_INT(pagekite_thread_start(m), 0);
  /* Record the sequence of distinct states for up to 15 s. */
  int seen[32], nseen = 0;
  seen[nseen++] = PK_STATUS_STARTUP;
  long long deadline = t_now_ms() + 15000;
  int st = PK_STATUS_STARTUP;
  while (t_now_ms() < deadline) {
    st = pagekite_get_status(m);
    if (st != seen[nseen - 1] && nseen < 32) seen[nseen++] = st;
    if (st == PK_STATUS_PROBLEMS || st == PK_STATUS_NO_NETWORK) break;
    pagekite_poll(m, 1);
  }
  fprintf(stderr, "states:");
  for (int i = 0; i < nseen; i++) fprintf(stderr, " %d", seen[i]);
  fprintf(stderr, " after %lld ms\n", t_now_ms() - started);
  CHECK(nseen >= 3);
  if (nseen >= 2) CHECK_INT(seen[1], PK_STATUS_CONNECTING);
  CHECK(st == PK_STATUS_PROBLEMS || st == PK_STATUS_NO_NETWORK);
  /* Never claimed success against a closed port. */
  for (int i = 0; i < nseen; i++) {
    CHECK(seen[i] != PK_STATUS_FLYING);
    CHECK(seen[i] != PK_STATUS_UPDATING_DNS);
  }
  CHECK_INT(pagekite_get_counter(m, PK_COUNTER_KITES_LIVE), 0);
  CHECK_INT(pagekite_get_counter(m, PK_COUNTER_TUNNELS), 0);
  CHECK(pagekite_get_counter(m, PK_COUNTER_ERRORS) > 0);

  /* Numbered lines, the failures are in there. */
  const char *log = pagekite_get_log(m);
  CHECK(log != NULL);
  unsigned long long before = 0;
  int nlines = log ? log_lines(log, &before) : -1;
  CHECK(nlines >= 3);
  CHECK(before > last);
  if (nlines < 0) fprintf(stderr, "malformed log:\n%s\n", log);

  /* Mask 0: the connector keeps failing (errors still counted), no new lines. */
  CHECK_INT(pagekite_set_log_mask(m, 0), 0);
  t_sleep_ms(300); /* a line being written as the mask changed may land */
  unsigned long long muted = 0;
  CHECK(log_lines(pagekite_get_log(m), &muted) >= 1);
  long long errs = pagekite_get_counter(m, PK_COUNTER_ERRORS);
  long long quiet_until = t_now_ms() + 3000;
  while (t_now_ms() < quiet_until &&
         pagekite_get_counter(m, PK_COUNTER_ERRORS) == errs)
    t_sleep_ms(50);
  t_sleep_ms(200);
  CHECK(pagekite_get_counter(m, PK_COUNTER_ERRORS) > errs);
  unsigned long long after = 0;
  CHECK(log_lines(pagekite_get_log(m), &after) >= 1);
  CHECK(after == muted);

  /* Unmuted again, lines come back and numbering continues. */
  CHECK_INT(pagekite_set_log_mask(m, PK_LOG_ALL), 0);
  long long until = t_now_ms() + 4000;
  unsigned long long again = after;
  while (t_now_ms() < until && again == after) {
    pagekite_poll(m, 1);
    CHECK(log_lines(pagekite_get_log(m), &again) >= 1);
  }
  CHECK(again > after);

  /* poll() honours its timeout (returns early on activity, never late). */
  for (int timeout = 0; timeout <= 2; timeout++) {
    long long t0 = t_now_ms();
    CHECK_INT(pagekite_poll(m, timeout), 0);
    long long took = t_now_ms() - t0;
    CHECK(took <= (long long)timeout * 1000 + 1000);
  }
  /* A quiet manager (nothing logged, tick off) really waits. */
  CHECK_INT(pagekite_set_log_mask(m, 0), 0);
  CHECK_INT(pagekite_enable_tick_timer(m, 0), 0);
  t_sleep_ms(300);
  (void)pagekite_get_status(m); /* look now: poll waits for what comes after */
  long long t0 = t_now_ms();
  CHECK_INT(pagekite_poll(m, 1), 0);
  long long took = t_now_ms() - t0;
  fprintf(stderr, "quiet poll(1) took %lld ms\n", took);
  CHECK(took >= 700);
  CHECK(took <= 2000);

  CHECK_INT(pagekite_thread_stop(m), 0);
  /* After the stop poll does not block. */
  t0 = t_now_ms();
  pagekite_poll(m, 5);
  CHECK(t_now_ms() - t0 < 1000);
  CHECK_INT(pagekite_free(m), 0);
  CHECK(t_now_ms() - started < 20000);
}

int main(void) {
  alarm(20);
  RUN(status_log_poll);
  return TEST_DONE();
}

/* test_api_events.c - pagekite_next_events: order without gaps across a
 * concurrent reader, an explicit PK_EVENT_LOST for a slow one, argument
 * checks, and the events of a real connector flying through a relay
 * (loopback only). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test_api_util.h"

#define N_EVENTS 10000

typedef struct {
  pagekite_mgr m;
  atomic_llong seen; /* the reader's last seq */
  long long first;   /* the seq before the writer's first line */
  int bad_order, lost, others;
} reader_t;

/* Reads until it has the writer's N_EVENTS lines, checking each seq is the
 * next one and each line is the next "line N". */
static void *reader(void *arg) {
  reader_t *r = arg;
  pagekite_event ev[64];
  long long after = r->first;
  int want = 0;
  long long deadline = t_now_ms() + 30000;
  while (want < N_EVENTS && t_now_ms() < deadline) {
    ev[0] = (pagekite_event)PAGEKITE_EVENT_INIT;
    int n = pagekite_next_events(r->m, after, ev, 64, 500);
    for (int i = 0; i < n; i++) {
      if (ev[i].seq != after + 1) r->bad_order++;
      after = ev[i].seq;
      if (ev[i].kind == PK_EVENT_LOST) {
        r->lost++;
        continue;
      }
      char expect[32];
      snprintf(expect, sizeof(expect), "line %d", want);
      if (ev[i].kind == PK_EVENT_LOG && strcmp(ev[i].text, expect) == 0)
        want++;
      else
        r->others++;
    }
    atomic_store(&r->seen, after);
  }
  return NULL;
}

/* 10,000 log events written while another thread reads: every one arrives,
 * once, in order.  The writer stays at most 256 ahead (a reader that keeps
 * up; the ring keeps PK_EVENTS_KEPT). */
TEST(no_gaps_across_threads) {
  pagekite_mgr m = pagekite_init("t", 2, 1, 16, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, -1);
  CHECK(m != NULL);
  if (!m) return;
  pk_mgr *pm = (pk_mgr *)(void *)m;
  pagekite_set_log_mask(m, PK_LOG_ALL);
  reader_t r = {.m = m};
  r.first = pm->evring.last;
  atomic_store(&r.seen, r.first);
  pthread_t th;
  CHECK_INT(pthread_create(&th, NULL, reader, &r), 0);
  for (int i = 0; i < N_EVENTS; i++) {
    long long deadline = t_now_ms() + 10000;
    while (pm->evring.last - atomic_load(&r.seen) > 256 && t_now_ms() < deadline) t_sleep_ms(1);
    pk_log(pm, PK_LOG_MANAGER_INFO, "line %d", i);
  }
  pthread_join(th, NULL);
  CHECK_INT(r.bad_order, 0);
  CHECK_INT(r.lost, 0);
  CHECK_INT(r.others, 0);
  CHECK_INT((int)(atomic_load(&r.seen) - r.first), N_EVENTS);
  CHECK_INT(pagekite_free(m), 0);
}

/* A reader that falls behind gets one PK_EVENT_LOST with the count, then
 * the events still kept, in order; after = 0 starts at the oldest kept. */
TEST(slow_reader_is_told) {
  pagekite_mgr m = pagekite_init("t", 2, 1, 16, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, -1);
  CHECK(m != NULL);
  if (!m) return;
  pk_mgr *pm = (pk_mgr *)(void *)m;
  pagekite_set_log_mask(m, PK_LOG_ALL);
  long long base = pm->evring.last;
  for (int i = 0; i < 1000; i++) pk_log(pm, PK_LOG_MANAGER_INFO, "x %d", i);
  long long last = base + 1000, oldest = last - PK_EVENTS_KEPT + 1;
  pagekite_event ev[4] = {PAGEKITE_EVENT_INIT};
  CHECK_INT(pagekite_next_events(m, base + 1, ev, 4, 0), 4);
  CHECK_INT(ev[0].kind, PK_EVENT_LOST);
  CHECK_INT(ev[0].code, (int)(oldest - 1 - (base + 1)));
  CHECK(ev[0].seq == oldest - 1);
  CHECK(ev[1].seq == oldest && ev[2].seq == oldest + 1 && ev[3].seq == oldest + 2);
  CHECK_INT(ev[1].kind, PK_EVENT_LOG);
  CHECK_INT(ev[1].version, PK_EVENT_VERSION);
  CHECK(ev[1].time_ms > 1700000000000LL);
  CHECK_INT(pagekite_next_events(m, 0, ev, 4, 0), 4);
  CHECK(ev[0].kind == PK_EVENT_LOG && ev[0].seq == oldest);
  /* Caught up: nothing, after the timeout. */
  long long t0 = t_now_ms();
  CHECK_INT(pagekite_next_events(m, last, ev, 4, 200), 0);
  CHECK(t_now_ms() - t0 >= 150);
  CHECK_INT(pagekite_free(m), 0);
}

TEST(bad_arguments) {
  pagekite_mgr m = pagekite_init("t", 2, 1, 16, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, -1);
  CHECK(m != NULL);
  if (!m) return;
  pagekite_event ev[2] = {PAGEKITE_EVENT_INIT};
  CHECK_INT(pagekite_next_events(NULL, 0, ev, 2, 0), -1);
  CHECK_INT(pagekite_next_events(m, 0, NULL, 2, 0), -1);
  CHECK(strstr(pagekite_last_error(), "events") != NULL);
  CHECK_INT(pagekite_next_events(m, 0, ev, 0, 0), -1);
  CHECK(strstr(pagekite_last_error(), "max") != NULL);
  CHECK_INT(pagekite_next_events(m, -5, ev, 2, 0), -1);
  ev[0].version = 0;
  CHECK_INT(pagekite_next_events(m, 0, ev, 2, 0), -1);
  CHECK(strstr(pagekite_last_error(), "version") != NULL);
  CHECK_INT(pagekite_free(m), 0);
}

/* Waits until kind/code (and name, if given) shows up after *after. */
static int wait_event(pagekite_mgr m, long long *after, int kind, int code, const char *name,
                      int ms) {
  long long deadline = t_now_ms() + ms;
  pagekite_event ev[16];
  while (t_now_ms() < deadline) {
    ev[0] = (pagekite_event)PAGEKITE_EVENT_INIT;
    int n = pagekite_next_events(m, *after, ev, 16, 200);
    for (int i = 0; i < n; i++) {
      *after = ev[i].seq;
      if (ev[i].kind == kind && ev[i].code == code && (!name || strcmp(ev[i].name, name) == 0))
        return 1;
    }
  }
  return 0;
}

/* A connector flying one kite through a relay: status, tunnel and kite
 * events on both sides; the kite goes down on the relay when the connector
 * stops. */
TEST(connector_and_relay) {
  int oport = 0, ofd = t_listen(&oport);
  CHECK(ofd >= 0);
  pagekite_mgr r = t_start_relay(4, 32, "http", "*.test", "s3cret");
  CHECK(r != NULL);
  if (!r || ofd < 0) return;
  pagekite_mgr c = pagekite_init("t", 2, 1, 16, NULL, PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, -1);
  CHECK(c != NULL);
  if (!c) return;
  long long ra = 0, ca = 0;
  CHECK_INT(pagekite_add_kite(c, "http", "ev.test", 0, "s3cret", "127.0.0.1", oport), 0);
  CHECK_INT(pagekite_add_frontend(c, "127.0.0.1", t_relay_port(r)), 1);
  CHECK_INT(pagekite_thread_start(c), 0);
  CHECK(wait_event(c, &ca, PK_EVENT_TUNNEL, 1, NULL, 10000));
  CHECK(wait_event(c, &ca, PK_EVENT_KITE, PK_KITE_STATUS_FLYING, "ev.test", 10000));
  CHECK(wait_event(c, &ca, PK_EVENT_STATUS, PK_STATUS_FLYING, NULL, 10000));
  CHECK(wait_event(r, &ra, PK_EVENT_KITE, PK_KITE_STATUS_FLYING, "ev.test", 10000));
  CHECK_INT(pagekite_thread_stop(c), 0);
  CHECK(wait_event(r, &ra, PK_EVENT_KITE, PK_KITE_STATUS_WAITING, "ev.test", 10000));
  CHECK_INT(pagekite_free(c), 0);
  CHECK_INT(pagekite_thread_stop(r), 0);
  CHECK_INT(pagekite_free(r), 0);
  close(ofd);
}

int main(void) {
  alarm(60);
  RUN(no_gaps_across_threads);
  RUN(slow_reader_is_told);
  RUN(bad_arguments);
  RUN(connector_and_relay);
  return TEST_DONE();
}

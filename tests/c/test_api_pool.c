/* test_api_pool.c - a relay with a small connection pool survives a flood of
 * idle TCP connections: the excess is closed promptly and, once the flood is
 * gone, the relay answers its /ping probe again.
 */
#include <stdlib.h>

#include "test_api_util.h"

#define FLOOD 200
#define MAX_CONNS 8

TEST(flood) {
  long long started = t_now_ms();
  pagekite_mgr r = t_start_relay(2, MAX_CONNS, "http", "*.test", "s");
  CHECK(r != NULL);
  if (!r) return;
  pk_mgr *m = (pk_mgr *)(void *)r;
  int port = t_relay_port(r);
  CHECK(port > 0);
  char resp[1024];
  CHECK(t_ping_until(port, 2000, resp, sizeof(resp)));
  char uuid[64] = "";
  const char *u = strstr(resp, "X-PageKite-UUID: ");
  if (u) sscanf(u + 17, "%63[^\r\n]", uuid);
  CHECK(strlen(uuid) > 0);

  /* Flood: FLOOD idle connections that never send a byte. */
  int fds[FLOOD];
  int opened = 0;
  for (int i = 0; i < FLOOD; i++) {
    fds[i] = t_connect(port);
    if (fds[i] >= 0) opened++;
  }
  CHECK(opened > m->nconns); /* the flood really exceeds the pool */

  /* Within 2 s the relay has closed everything it cannot hold. */
  long long deadline = t_now_ms() + 2000;
  int closed = 0;
  int is_closed[FLOOD] = {0};
  while (t_now_ms() < deadline) {
    for (int i = 0; i < FLOOD; i++) {
      if (fds[i] < 0 || is_closed[i]) continue;
      if (t_wait_readable(fds[i], 0) > 0) {
        char b[16];
        ssize_t rr = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
        if (rr == 0 || (rr < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          is_closed[i] = 1;
          closed++;
        }
      }
    }
    t_sleep_ms(20);
  }
  int held = opened - closed;
  fprintf(stderr, "flood: %d opened, %d closed by the relay, %d held (pool %d conns)\n", opened,
          closed, held, m->nconns);
  CHECK(closed > 0);
  /* What stays open fits in the pool reserved at init. */
  CHECK(held <= m->nconns);
  CHECK(m->conns_in_use <= m->nconns);
  CHECK_INT(pagekite_get_status(r), PK_STATUS_FLYING);

  for (int i = 0; i < FLOOD; i++)
    if (fds[i] >= 0) close(fds[i]);

  /* The flood is gone: the relay answers again, with the same identity. */
  CHECK(t_ping_until(port, 3000, resp, sizeof(resp)));
  char uuid2[64] = "";
  u = strstr(resp, "X-PageKite-UUID: ");
  if (u) sscanf(u + 17, "%63[^\r\n]", uuid2);
  CHECK(strcmp(uuid, uuid2) == 0);
  /* And again: slots come back, they do not leak. */
  for (int i = 0; i < 3 * MAX_CONNS; i++) CHECK(t_ping_until(port, 1000, resp, sizeof(resp)));
  CHECK(pagekite_get_counter(r, PK_COUNTER_ERRORS) >= 0);
  CHECK_INT(pagekite_thread_stop(r), 0);
  CHECK_INT(pagekite_free(r), 0);
  CHECK(t_now_ms() - started < 20000);
}

int main(void) {
  alarm(20);
  RUN(flood);
  return TEST_DONE();
}

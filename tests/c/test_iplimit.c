/* test_iplimit.c - per-source counts (iplimit.c), no sockets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "iplimit.h"
#include "pk_test.h"

static pk_ipkey key4(const char *ip) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &sa.sin_addr);
  return pk_ipkey_of((struct sockaddr *)&sa);
}

static pk_ipkey key6(const char *ip) {
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &sa.sin6_addr);
  return pk_ipkey_of((struct sockaddr *)&sa);
}

TEST(keys) {
  pk_ipkey a = key4("10.1.2.3"), b = key6("::ffff:10.1.2.3");
  CHECK(memcmp(&a, &b, sizeof(a)) == 0); /* v4-mapped is the same source */
  pk_ipkey c = key6("2001:db8:1:2::1"), d = key6("2001:db8:1:2:ffff::7");
  CHECK(memcmp(&c, &d, sizeof(c)) == 0); /* one /64 */
  pk_ipkey e = key6("2001:db8:1:3::1");
  CHECK(memcmp(&c, &e, sizeof(c)) != 0);
}

TEST(count_and_heaviest) {
  pk_iptab t;
  CHECK_INT(pk_iptab_init(&t, 8), 0);
  pk_ipkey a = key4("127.0.0.1"), b = key4("127.0.0.2"), h;
  CHECK_INT(pk_iptab_heaviest(&t, &h), 0);
  CHECK_INT(pk_iptab_add(&t, &a), 1);
  CHECK_INT(pk_iptab_add(&t, &b), 1);
  CHECK_INT(pk_iptab_add(&t, &b), 2);
  CHECK_INT(pk_iptab_count(&t, &b), 2);
  CHECK_INT(pk_iptab_heaviest(&t, &h), 2);
  CHECK(memcmp(&h, &b, sizeof(h)) == 0);
  pk_iptab_remove(&t, &b);
  pk_iptab_remove(&t, &b);
  CHECK_INT(pk_iptab_count(&t, &b), 0);
  CHECK_INT(pk_iptab_count(&t, &a), 1);
  pk_iptab_remove(&t, &b); /* absent: no effect */
  CHECK_INT(t.used, 1);
  pk_iptab_free(&t);
}

/* Many keys added and removed in a shuffled order: counts stay exact, which
 * exercises the backward-shift deletion across collisions. */
TEST(churn) {
  pk_iptab t;
  pk_iptab_init(&t, 600);
  enum { N = 600 };
  static int counts[N];
  unsigned seed = 12345;
  for (int round = 0; round < 20000; round++) {
    seed = seed * 1103515245u + 12345u;
    int i = (int)((seed >> 8) % N);
    char ip[32];
    snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
    pk_ipkey k = key4(ip);
    if ((seed >> 4) & 1 && counts[i] > 0) {
      pk_iptab_remove(&t, &k);
      counts[i]--;
    } else if (pk_iptab_add(&t, &k)) {
      counts[i]++;
    }
  }
  int bad = 0;
  size_t live = 0;
  for (int i = 0; i < N; i++) {
    char ip[32];
    snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
    pk_ipkey k = key4(ip);
    bad += (int)pk_iptab_count(&t, &k) != counts[i];
    live += counts[i] > 0;
  }
  CHECK_INT(bad, 0);
  CHECK_INT(t.used, live);
  pk_iptab_free(&t);
}

TEST(full_table_refuses) {
  pk_iptab t;
  pk_iptab_init(&t, 4); /* 16 slots, at most 8 keys */
  int added = 0;
  for (int i = 0; i < 20; i++) {
    char ip[32];
    snprintf(ip, sizeof(ip), "192.0.2.%d", i);
    pk_ipkey k = key4(ip);
    added += pk_iptab_add(&t, &k) != 0;
  }
  CHECK_INT(added, 8);
  pk_iptab_free(&t);
}

int main(void) {
  RUN(keys);
  RUN(count_and_heaviest);
  RUN(churn);
  RUN(full_table_refuses);
  return TEST_DONE();
}

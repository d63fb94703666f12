/* test_addrs_merge.c - a relay pool's addresses re-resolved (connector.c,
 * pk_addrs_merge), no sockets: DNS servers shuffle their answers (PowerDNS
 * does on every query), and what the connector knows about each relay
 * (ping, failures, session) must follow the address, not the position in
 * the list (tests/fleet found pings credited to the wrong relay). */
#include <arpa/inet.h>
#include <string.h>

#include "internal.h"
#include "pk_test.h"

static struct sockaddr_storage v4(const char *ip, int port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  sin->sin_family = AF_INET;
  sin->sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, ip, &sin->sin_addr);
  return ss;
}

TEST(same_set_other_order_moves_state_with_the_address) {
  pk_frontend fe;
  memset(&fe, 0, sizeof(fe));
  fe.port = 80;
  const char *ips[3] = {"10.0.0.11", "10.0.0.12", "10.0.0.13"};
  for (int i = 0; i < 3; i++) {
    fe.addrs[i] = v4(ips[i], 80);
    fe.ping_ms[i] = 10 * (i + 1);
    fe.errors[i] = i;
    fe.last_fail[i] = 1000u * (unsigned)i;
    snprintf(fe.session_id[i], sizeof(fe.session_id[i]), "sess-%d", i);
  }
  fe.naddrs = 3;
  struct sockaddr_storage fresh[3] = {v4(ips[2], 80), v4(ips[0], 80), v4(ips[1], 80)};
  CHECK_INT(pk_addrs_merge(&fe, fresh, 3), 3);
  for (int j = 0; j < 3; j++) {
    int i = j == 0 ? 2 : j - 1; /* the old slot of the address now at j */
    CHECK(memcmp(&fe.addrs[j], &fresh[j], sizeof(fresh[j])) == 0);
    CHECK_INT(fe.ping_ms[j], 10 * (i + 1));
    CHECK_INT(fe.errors[j], i);
    CHECK_INT(fe.last_fail[j], 1000 * i);
    char want[16];
    snprintf(want, sizeof(want), "sess-%d", i);
    CHECK(strcmp(fe.session_id[j], want) == 0);
  }
}

TEST(new_addresses_start_unknown_and_gone_ones_go) {
  pk_frontend fe;
  memset(&fe, 0, sizeof(fe));
  fe.addrs[0] = v4("10.0.0.11", 80);
  fe.addrs[1] = v4("10.0.0.12", 80);
  fe.ping_ms[0] = 5;
  fe.ping_ms[1] = 7;
  fe.errors[1] = 3;
  fe.naddrs = 2;
  struct sockaddr_storage fresh[2] = {v4("10.0.0.14", 80), v4("10.0.0.12", 80)};
  CHECK_INT(pk_addrs_merge(&fe, fresh, 2), 2);
  CHECK_INT(fe.ping_ms[0], -1); /* new: not pinged yet */
  CHECK_INT(fe.errors[0], 0);
  CHECK_INT(fe.ping_ms[1], 7); /* kept with its address */
  CHECK_INT(fe.errors[1], 3);
}

TEST(bounded) {
  pk_frontend fe;
  memset(&fe, 0, sizeof(fe));
  struct sockaddr_storage fresh[PK_MAX_ADDRS + 4];
  char ip[32];
  for (int i = 0; i < PK_MAX_ADDRS + 4; i++) {
    snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 200, i % 200 + 1);
    fresh[i] = v4(ip, 80);
  }
  CHECK_INT(pk_addrs_merge(&fe, fresh, PK_MAX_ADDRS + 4), PK_MAX_ADDRS);
  CHECK_INT(fe.naddrs, PK_MAX_ADDRS);
  CHECK_INT(pk_addrs_merge(&fe, fresh, 0), 0);
}

int main(void) {
  RUN(same_set_other_order_moves_state_with_the_address);
  RUN(new_addresses_start_unknown_and_gone_ones_go);
  RUN(bounded);
  return TEST_DONE();
}

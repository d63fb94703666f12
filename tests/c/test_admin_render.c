/* test_admin_render.c - admin_render.c, no sockets: the Prometheus text and
 * the status JSON of a made-up snapshot, label and string escaping, and the
 * admin listener's routing of request heads (404, 405, 400, 431). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "admin.h"
#include "pk_test.h"

static pk_snap_tunnel tunnels[1];
static pk_snap_kite kites[2];
static pk_kstat kstats[1];

static pk_snap sample(void) {
  pk_snap s;
  memset(&s, 0, sizeof(s));
  s.role = "relay";
  s.version = "9.9";
  s.status = "FLYING";
  s.status_code = 20;
  s.tunnels_live = 1;
  s.streams_live = 3;
  s.kites_live = 1;
  s.bytes_in = 1000;
  s.bytes_out = 2000;
  s.streams_total = 7;
  s.rejected = 5;
  s.rejects[PK_REJECT_KITE_SIGNATURE] = 2;
  s.rejects[PK_REJECT_NO_KITE] = 3;
  snprintf(tunnels[0].peer, sizeof(tunnels[0].peer), "127.0.0.1");
  tunnels[0].peer_port = 4242;
  tunnels[0].streams = 3;
  tunnels[0].bytes_in = 1000;
  s.tunnels = tunnels;
  s.ntunnels = 1;
  /* A name with every character that needs escaping in either format. */
  snprintf(kites[0].proto, sizeof(kites[0].proto), "http");
  snprintf(kites[0].name, sizeof(kites[0].name), "a\"b\\c\nd.test");
  kites[0].tunnel = 0;
  kites[0].live = 1;
  kites[0].state = "live";
  snprintf(kites[1].proto, sizeof(kites[1].proto), "raw");
  snprintf(kites[1].name, sizeof(kites[1].name), "down.test");
  kites[1].port = 22;
  kites[1].tunnel = -1;
  kites[1].state = "rejected";
  s.kites = kites;
  s.nkites = 2;
  snprintf(kstats[0].proto, sizeof(kstats[0].proto), "https");
  snprintf(kstats[0].name, sizeof(kstats[0].name), "gone\\.test");
  kstats[0].port = 443;
  kstats[0].streams_total = 9;
  kstats[0].bytes_in = 123;
  kstats[0].bytes_out = 456;
  s.kstats = kstats;
  s.nkstats = 1;
  return s;
}

TEST(metrics_text) {
  pk_snap s = sample();
  char *t = pk_render_metrics(&s);
  CHECK(t != NULL);
  if (!t) return;
  CHECK(strstr(t, "# TYPE pagekite_tunnel_received_bytes_total counter\n"
                  "pagekite_tunnel_received_bytes_total 1000\n") != NULL);
  CHECK(strstr(t, "# HELP pagekite_tunnels ") != NULL);
  CHECK(strstr(t, "# TYPE pagekite_streams gauge\npagekite_streams 3\n") != NULL);
  CHECK(strstr(t, "pagekite_rejects_total{reason=\"kite_signature\"} 2\n") != NULL);
  CHECK(strstr(t, "pagekite_rejects_total{reason=\"no_kite\"} 3\n") != NULL);
  CHECK(strstr(t, "pagekite_rejects_total{reason=\"limit\"} 0\n") != NULL);
  CHECK(strstr(t, "pagekite_kite_up{kite=\"a\\\"b\\\\c\\nd.test\",proto=\"http\",port=\"0\"} 1\n") !=
        NULL);
  CHECK(strstr(t, "pagekite_kite_up{kite=\"down.test\",proto=\"raw\",port=\"22\"} 0\n") != NULL);
  CHECK(strstr(t, "pagekite_kite_tunnel_streams{kite=\"down.test\"") == NULL);
  CHECK(strstr(t, "pagekite_info{role=\"relay\",version=\"9.9\"} 1\n") != NULL);
  /* Traffic per kite name, also for one that is not flying now. */
  CHECK(strstr(t, "# TYPE pagekite_kite_streams_opened_total counter\n"
                  "pagekite_kite_streams_opened_total{kite=\"gone\\\\.test\",proto=\"https\","
                  "port=\"443\"} 9\n") != NULL);
  CHECK(strstr(t, "pagekite_kite_tunnel_received_bytes_total{kite=\"gone\\\\.test\",proto=\"https\","
                  "port=\"443\"} 123\n") != NULL);
  CHECK(strstr(t, "pagekite_kite_tunnel_sent_bytes_total{kite=\"gone\\\\.test\",proto=\"https\","
                  "port=\"443\"} 456\n") != NULL);
  /* Every line ends with \n, including the last one (format 0.0.4). */
  CHECK(t[strlen(t) - 1] == '\n');
  free(t);
}

TEST(status_json) {
  pk_snap s = sample();
  char *t = pk_render_status_json(&s);
  CHECK(t != NULL);
  if (!t) return;
  CHECK(strstr(t, "\"role\": \"relay\"") != NULL);
  CHECK(strstr(t, "\"name\": \"a\\\"b\\\\c\\u000ad.test\"") != NULL);
  CHECK(strstr(t, "\"kite_signature\": 2") != NULL);
  CHECK(strstr(t, "\"peer\": \"127.0.0.1\", \"peer_port\": 4242") != NULL);
  CHECK(strstr(t, "\"state\": \"rejected\", \"tunnel\": null") != NULL);
  CHECK(strstr(t, "\"state\": \"live\", \"tunnel\": 0") != NULL);
  CHECK(strstr(t, "\"traffic\": [\n  {\"proto\": \"https\", \"name\": \"gone\\\\.test\", "
                  "\"port\": 443, \"streams_total\": 9, \"bytes_in\": 123, \"bytes_out\": 456}]}\n") !=
        NULL);
  free(t);
}

TEST(json_escapes_high_bytes) {
  pk_snap s = sample();
  snprintf(kites[1].name, sizeof(kites[1].name), "\xc3\xa9\x01.test");
  char *t = pk_render_status_json(&s);
  CHECK(t && strstr(t, "\"\\u00c3\\u00a9\\u0001.test\"") != NULL);
  for (const char *p = t; p && *p; p++) CHECK((unsigned char)*p < 0x80);
  free(t);
}

TEST(empty_snapshot) {
  pk_snap s;
  memset(&s, 0, sizeof(s));
  char *m = pk_render_metrics(&s), *j = pk_render_status_json(&s);
  CHECK(m && strstr(m, "pagekite_kites_live 0\n"));
  CHECK(j && strstr(j, "\"tunnels\": [],\n \"kites\": [],\n \"traffic\": []}\n"));
  free(m);
  free(j);
}

TEST(reject_labels) {
  CHECK(strcmp(pk_reject_label(PK_REJECT_LIMIT), "limit") == 0);
  CHECK(strcmp(pk_reject_label(-1), "other") == 0);
  CHECK(strcmp(pk_reject_label(PK_REJECT_N), "other") == 0);
  CHECK_INT(pk_reject_from_kite_why("signature"), PK_REJECT_KITE_SIGNATURE);
  CHECK_INT(pk_reject_from_kite_why("quota"), PK_REJECT_KITE_QUOTA);
  CHECK_INT(pk_reject_from_kite_why("replay"), PK_REJECT_KITE_REPLAY);
  CHECK(strcmp(pk_reject_label(PK_REJECT_KITE_REPLAY), "kite_replay") == 0);
  CHECK_INT(pk_reject_from_kite_why("port"), PK_REJECT_KITE_PORT);
  CHECK_INT(pk_reject_from_kite_why(NULL), PK_REJECT_KITE_UNKNOWN);
}

#define ROUTE(s) pk_admin_route(s, sizeof(s) - 1)

TEST(routes) {
  CHECK_INT(ROUTE("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), PK_ADMIN_METRICS);
  CHECK_INT(ROUTE("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), PK_ADMIN_METRICS);
  CHECK_INT(ROUTE("GET /status.json HTTP/1.1\n\n"), PK_ADMIN_STATUS);
  CHECK_INT(ROUTE("GET / HTTP/1.1\r\n\r\n"), PK_ADMIN_NOT_FOUND);
  CHECK_INT(ROUTE("GET /metricsx HTTP/1.1\r\n\r\n"), PK_ADMIN_NOT_FOUND);
  CHECK_INT(ROUTE("POST /metrics HTTP/1.1\r\n\r\n"), PK_ADMIN_BAD_METHOD);
  CHECK_INT(ROUTE("HEAD /metrics HTTP/1.1\r\n\r\n"), PK_ADMIN_BAD_METHOD);
  CHECK_INT(ROUTE("get /metrics HTTP/1.1\r\n\r\n"), PK_ADMIN_BAD_REQUEST);
  CHECK_INT(ROUTE("GET /metrics\r\n\r\n"), PK_ADMIN_BAD_REQUEST);
  CHECK_INT(ROUTE("GET /metrics SPDY/3\r\n\r\n"), PK_ADMIN_BAD_REQUEST);
  CHECK_INT(ROUTE("\r\n\r\n"), PK_ADMIN_BAD_REQUEST);
  CHECK_INT(ROUTE("GET /metrics HTTP/1.1\r\nHost: x\r\n"), PK_ADMIN_NEED_MORE);
  CHECK_INT(ROUTE(""), PK_ADMIN_NEED_MORE);
  static char big[PK_ADMIN_HEAD_MAX + 16];
  memset(big, 'a', sizeof(big));
  memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
  CHECK_INT(pk_admin_route(big, PK_ADMIN_HEAD_MAX), PK_ADMIN_TOO_BIG);
  CHECK_INT(pk_admin_route(big, PK_ADMIN_HEAD_MAX - 1), PK_ADMIN_NEED_MORE);
  const char *why;
  CHECK_INT(pk_admin_route_status(PK_ADMIN_BAD_METHOD, &why), 405);
  CHECK(strcmp(why, "Method Not Allowed") == 0);
  CHECK_INT(pk_admin_route_status(PK_ADMIN_TOO_BIG, &why), 431);
  CHECK_INT(pk_admin_route_status(PK_ADMIN_NOT_FOUND, &why), 404);
}

/* A head whose first space is past the end of the request line
 * ("GET\r\nX /...") made the request-line scan's length negative: memchr
 * then read on past the bytes given (an over-read on the admin listener,
 * found by hostile17).  The head is put at the very end of a page with a
 * PROT_NONE page after it, so any read past it faults. */
TEST(route_reads_only_what_it_is_given) {
  static const char *const heads[] = {
      "GET\r\nX /metrics\r\n\r\n",
      "GET\nXX /\n\n",
      "G\r\nH I\r\n\r\n",
      "GET /metrics\r\nX Y\r\n\r\n",
  };
  long pg = sysconf(_SC_PAGESIZE);
  char *map = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(map != MAP_FAILED);
  CHECK(mprotect(map + pg, (size_t)pg, PROT_NONE) == 0);
  for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
    size_t n = strlen(heads[i]);
    char *at = map + pg - n;
    memset(map, 'Z', (size_t)pg); /* no space or newline before it either */
    memcpy(at, heads[i], n);
    CHECK_INT(pk_admin_route(at, n), PK_ADMIN_BAD_REQUEST);
  }
  munmap(map, (size_t)pg * 2);
}

int main(void) {
  RUN(metrics_text);
  RUN(status_json);
  RUN(json_escapes_high_bytes);
  RUN(empty_snapshot);
  RUN(reject_labels);
  RUN(routes);
  RUN(route_reads_only_what_it_is_given);
  return TEST_DONE();
}

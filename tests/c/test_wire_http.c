/* test_wire_http.c - HTTP request and response heads. */
#include <stdio.h>
#include <string.h>

#include "pk_test.h"
#include "wire.h"

#define MAXH 4096

static int parse(const char *s, pk_http_head *h) {
  return pk_wire_parse_http_head(s, strlen(s), MAXH, h);
}

TEST(tunnel_request) {
  pk_http_head h;
  const char *s =
      "CONNECT PageKite:1 HTTP/1.0\r\n"
      "X-PageKite-Version: 1.5.2\r\n"
      "X-PageKite-Features: ZChunks\r\n"
      "X-PageKite-Features: AddKites\r\n"
      "X-PageKite: http:foo.example.com:abcdef12:\r\n"
      "\r\n";
  CHECK_INT(parse(s, &h), 1);
  CHECK_INT(h.is_response, 0);
  CHECK_SLICE(h.method, "CONNECT");
  CHECK_SLICE(h.path, "PageKite:1");
  CHECK_SLICE(h.version, "HTTP/1.0");
  CHECK_INT(h.nheaders, 4);
  CHECK_INT(h.head_len, strlen(s));
  CHECK_SLICE(pk_wire_http_get(&h, "x-pagekite-version", 0), "1.5.2");
  CHECK_SLICE(pk_wire_http_get(&h, "X-PageKite", 0), "http:foo.example.com:abcdef12:");
}

TEST(multiple_same_name_headers) {
  pk_http_head h;
  CHECK_INT(parse("CONNECT PageKite:1 HTTP/1.0\r\n"
                  "X-PageKite-Features: ZChunks\r\n"
                  "Other: x\r\n"
                  "x-pagekite-features: AddKites\r\n"
                  "X-PAGEKITE-FEATURES: Mobile\r\n"
                  "\r\n",
                  &h),
            1);
  CHECK_SLICE(pk_wire_http_get(&h, "X-PageKite-Features", 0), "ZChunks");
  CHECK_SLICE(pk_wire_http_get(&h, "X-PageKite-Features", 1), "AddKites");
  CHECK_SLICE(pk_wire_http_get(&h, "X-PageKite-Features", 2), "Mobile");
  CHECK(pk_wire_http_get(&h, "X-PageKite-Features", 3).p == NULL);
  CHECK(pk_wire_http_get(&h, "X-PageKite-Features", -1).p == NULL);
  CHECK(pk_wire_http_get(&h, "Missing", 0).p == NULL);
}

TEST(get_request_with_body_after_head) {
  pk_http_head h;
  const char *s = "GET /index.html?a=b HTTP/1.1\r\nHost: foo.example.com:8080\r\n\r\nBODY";
  CHECK_INT(parse(s, &h), 1);
  CHECK_SLICE(h.method, "GET");
  CHECK_SLICE(h.path, "/index.html?a=b");
  CHECK_SLICE(h.version, "HTTP/1.1");
  CHECK_SLICE(pk_wire_http_get(&h, "host", 0), "foo.example.com:8080");
  CHECK_INT(h.head_len, strlen(s) - 4);
}

TEST(response_head) {
  pk_http_head h;
  const char *s = "HTTP/1.1 200 OK\r\nX-PageKite-OK: http:foo.example.com:abcd:\r\n"
                  "X-PageKite-SessionID: abc123\r\n\r\n";
  CHECK_INT(parse(s, &h), 1);
  CHECK_INT(h.is_response, 1);
  CHECK_INT(h.status, 200);
  CHECK_SLICE(h.method, "HTTP/1.1");
  CHECK_SLICE(h.path, "200");
  CHECK_SLICE(h.version, "OK");
  CHECK_SLICE(pk_wire_http_get(&h, "X-PageKite-SessionID", 0), "abc123");
  CHECK_INT(h.head_len, strlen(s));
}

TEST(response_reason_with_spaces_or_empty) {
  pk_http_head h;
  CHECK_INT(parse("HTTP/1.0 503 Service Unavailable\r\n\r\n", &h), 1);
  CHECK_INT(h.status, 503);
  CHECK_SLICE(h.version, "Service Unavailable");
  CHECK_INT(parse("HTTP/1.1 204\r\n\r\n", &h), 1);
  CHECK_INT(h.status, 204);
  CHECK(h.version.n == 0);
}

TEST(bad_response_status) {
  pk_http_head h;
  CHECK_INT(parse("HTTP/1.1 20 OK\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("HTTP/1.1 2000 OK\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("HTTP/1.1 abc OK\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("HTTP/1.1\r\n\r\n", &h), PK_WIRE_EBAD);
}

TEST(bad_request_line) {
  pk_http_head h;
  CHECK_INT(parse("GET /\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("GET / HTTP/1.1 extra\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("GET / FTP/1.0\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("G(T / HTTP/1.1\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("GET /\t HTTP/1.1\r\n\r\n", &h), PK_WIRE_EBAD);
  {
    const char nul[] = "GET /\0 HTTP/1.1\r\n\r\n";
    CHECK_INT(pk_wire_parse_http_head(nul, sizeof(nul) - 1, MAXH, &h), PK_WIRE_EBAD);
  }
}

TEST(bad_header_line) {
  pk_http_head h;
  CHECK_INT(parse("GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("GET / HTTP/1.1\r\n: empty-name\r\n\r\n", &h), PK_WIRE_EBAD);
  CHECK_INT(parse("GET / HTTP/1.1\r\nA: b\r\n  folded: c\r\n\r\n", &h), PK_WIRE_EBAD);
  /* Reported as soon as the bad line is complete, even without the end. */
  CHECK_INT(parse("GET / HTTP/1.1\r\nNoColonHere\r\n", &h), PK_WIRE_EBAD);
}

TEST(values_trimmed) {
  pk_http_head h;
  CHECK_INT(parse("GET / HTTP/1.1\r\nHost:    a.example   \r\nX:\t\ty\t\r\nEmpty:\r\n\r\n", &h), 1);
  CHECK_SLICE(pk_wire_http_get(&h, "Host", 0), "a.example");
  CHECK_SLICE(pk_wire_http_get(&h, "X", 0), "y");
  CHECK(pk_wire_http_get(&h, "Empty", 0).p != NULL);
  CHECK_INT(pk_wire_http_get(&h, "Empty", 0).n, 0);
}

TEST(bare_lf) {
  pk_http_head h;
  const char *s = "GET / HTTP/1.1\nHost: a\nAccept: */*\n\nrest";
  CHECK_INT(parse(s, &h), 1);
  CHECK_SLICE(h.version, "HTTP/1.1");
  CHECK_SLICE(pk_wire_http_get(&h, "Host", 0), "a");
  CHECK_SLICE(pk_wire_http_get(&h, "Accept", 0), "*/*");
  CHECK_INT(h.head_len, strlen(s) - 4);
  /* Mixed line ends. */
  CHECK_INT(parse("HTTP/1.1 200 OK\nA: 1\r\n\n", &h), 1);
  CHECK_INT(h.head_len, strlen("HTTP/1.1 200 OK\nA: 1\r\n\n"));
}

TEST(incomplete_every_prefix) {
  const char *s = "CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite: a:b:c:d\r\nX-B: y\r\n\r\n";
  size_t n = strlen(s), i;
  pk_http_head h;
  int ok = 1;
  for (i = 0; i < n; i++) {
    if (pk_wire_parse_http_head(s, i, MAXH, &h) != PK_WIRE_NEED_MORE) ok = 0;
  }
  CHECK(ok);
  CHECK_INT(pk_wire_parse_http_head(s, n, MAXH, &h), 1);
}

TEST(oversized) {
  char buf[600];
  pk_http_head h;
  size_t n;
  memset(buf, 0, sizeof(buf));
  n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX-Long: %0400d\r\n\r\n", 0);
  CHECK_INT(pk_wire_parse_http_head(buf, n, 1024, &h), 1);
  /* Same head with a smaller limit: the blank line is past max_len. */
  CHECK_INT(pk_wire_parse_http_head(buf, n, 256, &h), PK_WIRE_ETOOBIG);
  /* Limit equal to the head length is enough; one less is not. */
  CHECK_INT(pk_wire_parse_http_head(buf, n, n, &h), 1);
  CHECK_INT(pk_wire_parse_http_head(buf, n, n - 1, &h), PK_WIRE_ETOOBIG);
  /* Fewer than max_len bytes so far: still waiting. */
  CHECK_INT(pk_wire_parse_http_head(buf, 200, 256, &h), PK_WIRE_NEED_MORE);
}

TEST(too_many_headers) {
  char buf[PK_WIRE_MAX_HEADERS * 16 + 64];
  size_t pos;
  int i;
  pk_http_head h;
  pos = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
  for (i = 0; i < PK_WIRE_MAX_HEADERS; i++) {
    pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "H%d: %d\r\n", i, i);
  }
  memcpy(buf + pos, "\r\n", 2);
  CHECK_INT(pk_wire_parse_http_head(buf, pos + 2, sizeof(buf), &h), 1);
  CHECK_INT(h.nheaders, PK_WIRE_MAX_HEADERS);
  CHECK_SLICE(pk_wire_http_get(&h, "h63", 0), "63");
  pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "Last: 1\r\n\r\n");
  CHECK_INT(pk_wire_parse_http_head(buf, pos, sizeof(buf), &h), PK_WIRE_ETOOBIG);
}

TEST(random_bytes_never_crash) {
  char buf[128];
  unsigned seed = 4242;
  int round, ok = 1;
  for (round = 0; round < 20000; round++) {
    size_t i, n;
    pk_http_head h;
    int rc;
    seed = seed * 1103515245u + 12345u;
    n = (seed >> 16) % sizeof(buf);
    memcpy(buf, "GET / HTTP/1.1\r\n", 16);
    for (i = (round & 1) ? 16 : 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      buf[i] = "GETHTP/1.0 :a\r\n\x00\x7f"[(seed >> 16) % 17];
    }
    rc = pk_wire_parse_http_head(buf, n, 100, &h);
    if (rc < PK_WIRE_ETOOBIG || rc > 1) ok = 0;
    if (rc == 1 && (h.head_len > n || h.head_len > 100)) ok = 0;
  }
  CHECK(ok);
}

int main(void) {
  RUN(tunnel_request);
  RUN(multiple_same_name_headers);
  RUN(get_request_with_body_after_head);
  RUN(response_head);
  RUN(response_reason_with_spaces_or_empty);
  RUN(bad_response_status);
  RUN(bad_request_line);
  RUN(bad_header_line);
  RUN(values_trimmed);
  RUN(bare_lf);
  RUN(incomplete_every_prefix);
  RUN(oversized);
  RUN(too_many_headers);
  RUN(random_bytes_never_crash);
  return TEST_DONE();
}

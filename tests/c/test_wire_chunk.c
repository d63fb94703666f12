/* test_wire_chunk.c - chunk payloads: header lines, a blank line, data. */
#include <stdio.h>
#include <string.h>

#include "pk_test.h"
#include "wire.h"

static int parse(const char *s, pk_chunk *c) {
  return pk_wire_parse_chunk(s, strlen(s), c);
}

TEST(header_names_from_x_macro) {
  CHECK(strcmp(pk_wire_chunk_header_name(PK_CH_SID), "SID") == 0);
  CHECK(strcmp(pk_wire_chunk_header_name(PK_CH_EOF), "EOF") == 0);
  CHECK(strcmp(pk_wire_chunk_header_name(PK_CH_HOST), "Host") == 0);
  CHECK(strcmp(pk_wire_chunk_header_name(PK_CH_QCONNS), "QConns") == 0);
  CHECK(pk_wire_chunk_header_name(PK_CH__COUNT) == NULL);
  CHECK(pk_wire_chunk_header_name((pk_chunk_header_id)-1) == NULL);
}

TEST(sid_data_chunk) {
  pk_chunk c;
  const char *s = "SID: 42\r\n\r\nhello world";
  CHECK_INT(parse(s, &c), 0);
  CHECK_INT(c.sid, 42);
  CHECK_INT(c.eof, 0);
  CHECK_INT(c.noop, 0);
  CHECK_INT(c.nheaders, 1);
  CHECK_SLICE(c.names[0], "SID");
  CHECK_SLICE(c.values[0], "42");
  CHECK_SLICE(c.known[PK_CH_SID], "42");
  CHECK(c.known[PK_CH_EOF].p == NULL);
  CHECK_SLICE(c.data, "hello world");
  /* The data slice points into the caller's buffer. */
  CHECK(c.data.p == s + strlen("SID: 42\r\n\r\n"));
}

TEST(new_stream_chunk) {
  pk_chunk c;
  CHECK_INT(parse("SID: 7\r\nProto: http\r\nHost: foo.example.com\r\nPort: 80\r\n"
                  "RIP: ::ffff:1.2.3.4\r\nRPort: 5555\r\nRTLS: 1\r\n\r\nGET / HTTP/1.1\r\n",
                  &c),
            0);
  CHECK_INT(c.sid, 7);
  CHECK_SLICE(c.known[PK_CH_PROTO], "http");
  CHECK_SLICE(c.known[PK_CH_HOST], "foo.example.com");
  CHECK_SLICE(c.known[PK_CH_PORT], "80");
  CHECK_SLICE(c.known[PK_CH_RIP], "::ffff:1.2.3.4");
  CHECK_SLICE(c.known[PK_CH_RPORT], "5555");
  CHECK_SLICE(c.known[PK_CH_RTLS], "1");
  CHECK_SLICE(c.data, "GET / HTTP/1.1\r\n");
}

TEST(empty_data) {
  pk_chunk c;
  CHECK_INT(parse("SID: 1\r\n\r\n", &c), 0);
  CHECK(c.data.p != NULL);
  CHECK_INT(c.data.n, 0);
}

TEST(no_headers_only_data) {
  pk_chunk c;
  CHECK_INT(parse("\r\nxyz", &c), 0);
  CHECK_INT(c.nheaders, 0);
  CHECK_INT(c.sid, -1);
  CHECK_SLICE(c.data, "xyz");
}

TEST(data_may_contain_blank_lines_and_nul) {
  pk_chunk c;
  const char buf[] = "SID: 3\r\n\r\n\r\n\r\nA\0B";
  CHECK_INT(pk_wire_parse_chunk(buf, sizeof(buf) - 1, &c), 0);
  CHECK_INT(c.nheaders, 1);
  CHECK_INT(c.data.n, 7);
  CHECK(c.data.n == 7 && memcmp(c.data.p, "\r\n\r\nA\0B", 7) == 0);
}

TEST(eof_flags) {
  pk_chunk c;
  CHECK_INT(parse("SID: 5\r\nEOF: 1\r\n\r\n", &c), 0);
  CHECK_INT(c.sid, 5);
  CHECK_INT(c.eof, PK_EOF_READ | PK_EOF_WRITE);
  CHECK_INT(parse("SID: 5\r\nEOF: 1W\r\n\r\n", &c), 0);
  CHECK_INT(c.eof, PK_EOF_WRITE);
  CHECK_INT(parse("SID: 5\r\nEOF: 1R\r\n\r\n", &c), 0);
  CHECK_INT(c.eof, PK_EOF_READ);
  CHECK_INT(parse("SID: 5\r\nEOF: 1WR\r\n\r\n", &c), 0);
  CHECK_INT(c.eof, PK_EOF_READ | PK_EOF_WRITE);
  CHECK_INT(parse("SID: 5\r\nEOF:\r\n\r\n", &c), 0);
  CHECK_INT(c.eof, PK_EOF_READ | PK_EOF_WRITE);
  CHECK_INT(parse("SID: 5\r\n\r\n", &c), 0);
  CHECK_INT(c.eof, 0);
}

TEST(noop_and_ping) {
  pk_chunk c;
  CHECK_INT(parse("NOOP: 1\r\nPING: 1\r\n\r\n!", &c), 0);
  CHECK_INT(c.noop, 1);
  CHECK_INT(c.sid, -1);
  CHECK_SLICE(c.known[PK_CH_PING], "1");
  CHECK(c.known[PK_CH_PONG].p == NULL);
  CHECK_SLICE(c.data, "!");
  CHECK_INT(parse("NOOP: 1\r\nPONG: 1234\r\n\r\n!", &c), 0);
  CHECK_SLICE(c.known[PK_CH_PONG], "1234");
  CHECK_INT(parse("NOOP: 1\r\nZRST: 1\r\n\r\n!", &c), 0);
  CHECK_SLICE(c.known[PK_CH_ZRST], "1");
}

TEST(flow_control_and_quota) {
  pk_chunk c;
  CHECK_INT(parse("NOOP: 1\r\nSID: 9\r\nSKB: 16\r\nSPD: 1\r\nQuota: 1024\r\n"
                  "QDays: 30\r\nQConns: 5\r\n\r\n!",
                  &c),
            0);
  CHECK_SLICE(c.known[PK_CH_SKB], "16");
  CHECK_SLICE(c.known[PK_CH_SPD], "1");
  CHECK_SLICE(c.known[PK_CH_QUOTA], "1024");
  CHECK_SLICE(c.known[PK_CH_QDAYS], "30");
  CHECK_SLICE(c.known[PK_CH_QCONNS], "5");
}

TEST(case_insensitive_names) {
  pk_chunk c;
  CHECK_INT(parse("sid: 11\r\neof: 1r\r\nnoop: 1\r\nhOsT: a.b\r\n\r\n", &c), 0);
  CHECK_INT(c.sid, 11);
  CHECK_INT(c.eof, PK_EOF_READ);
  CHECK_INT(c.noop, 1);
  CHECK_SLICE(c.known[PK_CH_HOST], "a.b");
  /* Original spelling is kept in names[]. */
  CHECK_SLICE(c.names[3], "hOsT");
}

TEST(values_trimmed) {
  pk_chunk c;
  CHECK_INT(parse("SID:   12  \r\nHost:\tfoo \t\r\nProto:http\r\n\r\n", &c), 0);
  CHECK_INT(c.sid, 12);
  CHECK_SLICE(c.known[PK_CH_SID], "12");
  CHECK_SLICE(c.known[PK_CH_HOST], "foo");
  CHECK_SLICE(c.known[PK_CH_PROTO], "http");
}

TEST(value_with_colons) {
  pk_chunk c;
  CHECK_INT(parse("RIP: ::1\r\nX-PageKite-Foo: a: b\r\n\r\n", &c), 0);
  CHECK_SLICE(c.known[PK_CH_RIP], "::1");
  CHECK_SLICE(pk_wire_chunk_get(&c, "x-pagekite-foo"), "a: b");
}

TEST(first_value_wins) {
  pk_chunk c;
  CHECK_INT(parse("Host: first\r\nHost: second\r\n\r\n", &c), 0);
  CHECK_SLICE(c.known[PK_CH_HOST], "first");
  CHECK_INT(c.nheaders, 2);
  CHECK_SLICE(c.values[1], "second");
  CHECK_SLICE(pk_wire_chunk_get(&c, "HOST"), "first");
}

TEST(bare_lf) {
  pk_chunk c;
  CHECK_INT(parse("SID: 4\nEOF: 1W\n\nbody", &c), 0);
  CHECK_INT(c.sid, 4);
  CHECK_INT(c.eof, PK_EOF_WRITE);
  CHECK_SLICE(c.data, "body");
  CHECK_INT(parse("SID: 4\r\n\nbody", &c), 0);
  CHECK_SLICE(c.data, "body");
}

TEST(missing_blank_line) {
  pk_chunk c;
  CHECK_INT(parse("SID: 1\r\nEOF: 1\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 1\r\nEOF: 1", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 1", &c), PK_WIRE_EBAD);
  CHECK_INT(pk_wire_parse_chunk("", 0, &c), PK_WIRE_EBAD);
}

TEST(line_without_colon) {
  pk_chunk c;
  CHECK_INT(parse("SID 1\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 1\r\ngarbage\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse(": value\r\n\r\n", &c), PK_WIRE_EBAD);
}

TEST(bad_sid) {
  pk_chunk c;
  CHECK_INT(parse("SID: abc\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 12x\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID:\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: -3\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 1 2\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 99999999999999999999999\r\n\r\n", &c), PK_WIRE_EBAD);
  CHECK_INT(parse("SID: 9223372036854775807\r\n\r\n", &c), 0);
  CHECK(c.sid == 9223372036854775807LL);
}

TEST(header_flood) {
  char buf[PK_WIRE_MAX_HEADERS * 16 + 64];
  size_t pos = 0;
  int i;
  pk_chunk c;
  for (i = 0; i < PK_WIRE_MAX_HEADERS; i++) {
    pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "X-H%d: %d\r\n", i, i);
  }
  memcpy(buf + pos, "\r\nD", 3);
  CHECK_INT(pk_wire_parse_chunk(buf, pos + 3, &c), 0);
  CHECK_INT(c.nheaders, PK_WIRE_MAX_HEADERS);
  CHECK_SLICE(c.data, "D");
  pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "X-Last: 1\r\n\r\nD");
  CHECK_INT(pk_wire_parse_chunk(buf, pos, &c), PK_WIRE_ETOOBIG);
}

TEST(chunk_get_in_noop) {
  pk_chunk c;
  CHECK_INT(parse("NOOP: 1\r\n"
                  "X-PageKite-OK: http:foo.example.com:abcdef12:\r\n"
                  "X-PageKite-OK: http:bar.example.com:abcdef34:\r\n"
                  "X-PageKite-SSL-OK: 443\r\n"
                  "\r\n!",
                  &c),
            0);
  CHECK_INT(c.noop, 1);
  CHECK_SLICE(pk_wire_chunk_get(&c, "X-PageKite-OK"), "http:foo.example.com:abcdef12:");
  CHECK_SLICE(pk_wire_chunk_get(&c, "x-pagekite-ssl-ok"), "443");
  CHECK(pk_wire_chunk_get(&c, "X-PageKite-Missing").p == NULL);
  CHECK(pk_wire_chunk_get(&c, "X-PageKite").p == NULL); /* no prefix matches */
  CHECK(pk_wire_chunk_get(&c, "X-PageKite-OK-more").p == NULL);
  CHECK(pk_wire_chunk_get(&c, NULL).p == NULL);
}

TEST(slice_helpers) {
  pk_slice s = {"Content-Length", 14};
  pk_slice num = {"12345", 5}, neg = {"-17", 3}, junk = {"12a", 3}, empty = {"", 0};
  pk_slice big = {"9223372036854775808", 19}, min = {"-9223372036854775808", 20};
  long long v = 0;
  CHECK(pk_slice_ieq(s, "content-length"));
  CHECK(pk_slice_ieq(s, "CONTENT-LENGTH"));
  CHECK(!pk_slice_ieq(s, "content-lengt"));
  CHECK(!pk_slice_ieq(s, "content-lengthx"));
  CHECK_INT(pk_slice_to_ll(num, &v), 0);
  CHECK_INT(v, 12345);
  CHECK_INT(pk_slice_to_ll(neg, &v), 0);
  CHECK_INT(v, -17);
  CHECK_INT(pk_slice_to_ll(junk, &v), -1);
  CHECK_INT(pk_slice_to_ll(empty, &v), -1);
  CHECK_INT(pk_slice_to_ll(big, &v), -1);
  CHECK_INT(pk_slice_to_ll(min, &v), 0);
  CHECK(v == (-9223372036854775807LL - 1));
}

TEST(random_bytes_never_crash) {
  char buf[96];
  unsigned seed = 777;
  int round, ok = 1;
  for (round = 0; round < 20000; round++) {
    size_t i, n;
    pk_chunk c;
    int rc;
    seed = seed * 1103515245u + 12345u;
    n = (seed >> 16) % sizeof(buf);
    for (i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      buf[i] = "SIDEOF: 0123\r\n \t\x00"[(seed >> 16) % 17];
    }
    rc = pk_wire_parse_chunk(buf, n, &c);
    if (rc != 0 && rc != PK_WIRE_EBAD && rc != PK_WIRE_ETOOBIG) ok = 0;
    if (rc == 0 && (c.data.p < buf || c.data.p + c.data.n != buf + n)) ok = 0;
  }
  CHECK(ok);
}

int main(void) {
  RUN(header_names_from_x_macro);
  RUN(sid_data_chunk);
  RUN(new_stream_chunk);
  RUN(empty_data);
  RUN(no_headers_only_data);
  RUN(data_may_contain_blank_lines_and_nul);
  RUN(eof_flags);
  RUN(noop_and_ping);
  RUN(flow_control_and_quota);
  RUN(case_insensitive_names);
  RUN(values_trimmed);
  RUN(value_with_colons);
  RUN(first_value_wins);
  RUN(bare_lf);
  RUN(missing_blank_line);
  RUN(line_without_colon);
  RUN(bad_sid);
  RUN(header_flood);
  RUN(chunk_get_in_noop);
  RUN(slice_helpers);
  RUN(random_bytes_never_crash);
  return TEST_DONE();
}

/* test_wire_frame.c - chunk frame headers: "<hex len>[Z<hex zlen>][R]\r\n". */
#include <stdint.h>
#include <string.h>

#include "pk_test.h"
#include "wire.h"

#define BIG ((size_t)1 << 20)

static int parse(const char *s, size_t max_len, pk_frame *f) {
  return pk_wire_parse_frame(s, strlen(s), max_len, f);
}

TEST(parse_plain) {
  pk_frame f;
  CHECK_INT(parse("1a\r\n", BIG, &f), 1);
  CHECK_INT(f.len, 0x1a);
  CHECK_INT(f.wire_len, 0x1a);
  CHECK_INT(f.compressed, 0);
  CHECK_INT(f.reset, 0);
  CHECK_INT(f.hdr_len, 4);
}

TEST(parse_upper_and_lower_hex) {
  pk_frame f;
  CHECK_INT(parse("aBcD\r\n", BIG, &f), 1);
  CHECK_INT(f.len, 0xabcd);
}

TEST(parse_compressed) {
  pk_frame f;
  CHECK_INT(parse("100Z2f\r\n", BIG, &f), 1);
  CHECK_INT(f.len, 0x100);
  CHECK_INT(f.wire_len, 0x2f);
  CHECK_INT(f.compressed, 1);
  CHECK_INT(f.reset, 0);
  CHECK_INT(f.hdr_len, 8);
}

TEST(parse_reset) {
  pk_frame f;
  CHECK_INT(parse("5R\r\n", BIG, &f), 1);
  CHECK_INT(f.len, 5);
  CHECK_INT(f.wire_len, 5);
  CHECK_INT(f.compressed, 0);
  CHECK_INT(f.reset, 1);
  CHECK_INT(f.hdr_len, 4);
}

TEST(parse_compressed_reset) {
  pk_frame f;
  CHECK_INT(parse("40Z10R\r\n", BIG, &f), 1);
  CHECK_INT(f.len, 0x40);
  CHECK_INT(f.wire_len, 0x10);
  CHECK_INT(f.compressed, 1);
  CHECK_INT(f.reset, 1);
  CHECK_INT(f.hdr_len, 8);
}

TEST(parse_ignores_bytes_after_header) {
  pk_frame f;
  const char buf[] = "3\r\nabcGARBAGE";
  CHECK_INT(pk_wire_parse_frame(buf, sizeof(buf) - 1, BIG, &f), 1);
  CHECK_INT(f.hdr_len, 3);
  CHECK_INT(f.len, 3);
}

static void round_trip(size_t len, size_t wire_len, int z, int r) {
  char buf[PK_WIRE_FRAME_HDR_MAX + 8];
  pk_frame f;
  int w = pk_wire_format_frame(buf, sizeof(buf), len, wire_len, z, r);
  CHECK(w > 0);
  CHECK(w <= PK_WIRE_FRAME_HDR_MAX);
  if (w <= 0) return;
  CHECK_INT(pk_wire_parse_frame(buf, (size_t)w, SIZE_MAX, &f), 1);
  CHECK_INT(f.hdr_len, w);
  CHECK_INT(f.len, len);
  CHECK_INT(f.wire_len, z ? wire_len : len);
  CHECK_INT(f.compressed, z);
  CHECK_INT(f.reset, r);
}

TEST(format_round_trips) {
  size_t lens[] = {1, 2, 15, 16, 255, 4096, 65535, 0x123456, 0xffffffffUL};
  size_t i;
  for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    round_trip(lens[i], lens[i], 0, 0);
    round_trip(lens[i], lens[i], 0, 1);
    round_trip(lens[i], 1 + lens[i] / 3, 1, 0);
    round_trip(lens[i], 1 + lens[i] / 3, 1, 1);
  }
}

TEST(format_exact_text) {
  char buf[64];
  CHECK_INT(pk_wire_format_frame(buf, sizeof(buf), 0x1a, 0, 0, 0), 4);
  CHECK(memcmp(buf, "1a\r\n", 4) == 0);
  CHECK_INT(pk_wire_format_frame(buf, sizeof(buf), 0x100, 0x2f, 1, 1), 9);
  CHECK(memcmp(buf, "100Z2fR\r\n", 9) == 0);
  CHECK_INT(pk_wire_format_frame(buf, sizeof(buf), 7, 7, 0, 1), 4);
  CHECK(memcmp(buf, "7R\r\n", 4) == 0);
  /* Largest header fits the documented bound. */
  CHECK_INT(pk_wire_format_frame(buf, sizeof(buf), 0xffffffffUL, 0xffffffffUL, 1, 1), 20);
  CHECK(memcmp(buf, "ffffffffZffffffffR\r\n", 20) == 0);
}

TEST(format_small_buffer) {
  char buf[8];
  memset(buf, 'x', sizeof(buf));
  CHECK_INT(pk_wire_format_frame(buf, 3, 0x1a, 0, 0, 0), -1);
  CHECK_INT(pk_wire_format_frame(buf, 4, 0x1a, 0, 0, 0), 4);
  CHECK(memcmp(buf, "1a\r\n", 4) == 0);
  CHECK_INT(pk_wire_format_frame(buf, 8, 0x100, 0x2f, 1, 1), -1);
}

TEST(format_rejects_zero_length) {
  char buf[32];
  CHECK_INT(pk_wire_format_frame(buf, sizeof(buf), 0, 0, 0, 0), -1);
  CHECK_INT(pk_wire_format_frame(buf, sizeof(buf), 10, 0, 1, 0), -1);
}

TEST(incremental_every_prefix) {
  const char *hdrs[] = {"1\r\n", "1a2b\r\n", "100Z2f\r\n", "5R\r\n", "40Z10R\r\n",
                        "ffffffffZffffffffR\r\n"};
  size_t h;
  for (h = 0; h < sizeof(hdrs) / sizeof(hdrs[0]); h++) {
    size_t n = strlen(hdrs[h]), i;
    pk_frame f;
    for (i = 0; i < n; i++) CHECK_INT(pk_wire_parse_frame(hdrs[h], i, SIZE_MAX, &f), 0);
    CHECK_INT(pk_wire_parse_frame(hdrs[h], n, SIZE_MAX, &f), 1);
    CHECK_INT(f.hdr_len, n);
  }
}

TEST(malformed_bad_hex) {
  pk_frame f;
  CHECK_INT(parse("1g\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("x\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("0x10\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse(" 10\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("-1\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10z5\r\n", BIG, &f), PK_WIRE_EBAD); /* Z is case-sensitive */
  CHECK_INT(parse("10r\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10RZ5\r\n", BIG, &f), PK_WIRE_EBAD); /* R comes last */
  CHECK_INT(parse("10Z5Z6\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10RR\r\n", BIG, &f), PK_WIRE_EBAD);
  /* Bad syntax is reported as soon as it is seen, before the CRLF. */
  CHECK_INT(parse("1g", BIG, &f), PK_WIRE_EBAD);
}

TEST(malformed_empty_numbers) {
  pk_frame f;
  CHECK_INT(parse("\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("Z5\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("5Z\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("5ZR\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("R\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(pk_wire_parse_frame("", 0, BIG, &f), PK_WIRE_NEED_MORE);
}

TEST(malformed_zero_length) {
  pk_frame f;
  CHECK_INT(parse("0\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("000\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("0R\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10Z0\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("0Z10\r\n", BIG, &f), PK_WIRE_EBAD);
}

TEST(malformed_missing_cr_or_lf) {
  pk_frame f;
  CHECK_INT(parse("10\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10R\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10\rx", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10\r\r\n", BIG, &f), PK_WIRE_EBAD);
  CHECK_INT(parse("10\r", BIG, &f), PK_WIRE_NEED_MORE);
}

TEST(over_max_len) {
  pk_frame f;
  CHECK_INT(parse("100\r\n", 0x100, &f), 1);
  CHECK_INT(parse("101\r\n", 0x100, &f), PK_WIRE_ETOOBIG);
  CHECK_INT(parse("100Z100\r\n", 0x100, &f), 1);
  CHECK_INT(parse("101Z10\r\n", 0x100, &f), PK_WIRE_ETOOBIG);
  CHECK_INT(parse("10Z101\r\n", 0x100, &f), PK_WIRE_ETOOBIG);
  /* Known too big before the header is complete. */
  CHECK_INT(parse("1000", 0x100, &f), PK_WIRE_ETOOBIG);
}

TEST(absurd_digit_counts) {
  pk_frame f;
  CHECK_INT(parse("1ffffffffffffffff\r\n", SIZE_MAX, &f), PK_WIRE_ETOOBIG);
  CHECK_INT(parse("10000000000000000000000000000000\r\n", SIZE_MAX, &f), PK_WIRE_ETOOBIG);
  CHECK_INT(parse("ffffffffffffffffffff\r\n", BIG, &f), PK_WIRE_ETOOBIG);
  CHECK_INT(parse("10Zfffffffffffffffffffff\r\n", BIG, &f), PK_WIRE_ETOOBIG);
  /* Leading zeros do not overflow but the header is longer than allowed. */
  CHECK_INT(parse("00000000000000000000000000001\r\n", BIG, &f), PK_WIRE_EBAD);
}

TEST(header_length_bound) {
  pk_frame f;
  char buf[64];
  /* "000...01\r\n" exactly PK_WIRE_FRAME_HDR_MAX bytes long is accepted. */
  memset(buf, '0', sizeof(buf));
  buf[PK_WIRE_FRAME_HDR_MAX - 3] = '1';
  memcpy(buf + PK_WIRE_FRAME_HDR_MAX - 2, "\r\n", 2);
  CHECK_INT(pk_wire_parse_frame(buf, PK_WIRE_FRAME_HDR_MAX, BIG, &f), 1);
  CHECK_INT(f.len, 1);
  CHECK_INT(f.hdr_len, PK_WIRE_FRAME_HDR_MAX);
  memset(buf, '0', sizeof(buf));
  CHECK_INT(pk_wire_parse_frame(buf, PK_WIRE_FRAME_HDR_MAX, BIG, &f), PK_WIRE_NEED_MORE);
  CHECK_INT(pk_wire_parse_frame(buf, PK_WIRE_FRAME_HDR_MAX + 1, BIG, &f), PK_WIRE_EBAD);
}

TEST(binary_garbage_never_crashes) {
  unsigned char buf[40];
  unsigned seed = 12345;
  int round, ok = 1;
  for (round = 0; round < 20000; round++) {
    size_t i, n;
    pk_frame f;
    int rc;
    seed = seed * 1103515245u + 12345u;
    n = (seed >> 16) % sizeof(buf);
    for (i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      buf[i] = (unsigned char)"0123456789abcdefZR\r\n\x00\xff"[(seed >> 16) % 22];
    }
    rc = pk_wire_parse_frame((const char *)buf, n, BIG, &f);
    if (rc < PK_WIRE_ETOOBIG || rc > 1) ok = 0;
    if (rc == 1 && (f.hdr_len > n || f.len == 0 || f.len > BIG || f.wire_len > BIG)) ok = 0;
  }
  CHECK(ok);
}

int main(void) {
  RUN(parse_plain);
  RUN(parse_upper_and_lower_hex);
  RUN(parse_compressed);
  RUN(parse_reset);
  RUN(parse_compressed_reset);
  RUN(parse_ignores_bytes_after_header);
  RUN(format_round_trips);
  RUN(format_exact_text);
  RUN(format_small_buffer);
  RUN(format_rejects_zero_length);
  RUN(incremental_every_prefix);
  RUN(malformed_bad_hex);
  RUN(malformed_empty_numbers);
  RUN(malformed_zero_length);
  RUN(malformed_missing_cr_or_lf);
  RUN(over_max_len);
  RUN(absurd_digit_counts);
  RUN(header_length_bound);
  RUN(binary_garbage_never_crashes);
  return TEST_DONE();
}

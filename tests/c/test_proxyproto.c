/* test_proxyproto.c - PROXY protocol v1/v2 headers (proxyproto.c), no
 * sockets.  The examples are haproxy's doc/proxy-protocol.txt's; every
 * header is also parsed fed whole and cut at every byte boundary (the
 * parser must say NEED_MORE for each prefix, then the same answer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "pk_test.h"

#define B(lit) lit, sizeof(lit) - 1

/* Parse buf[0..n) whole; every shorter prefix must need more. */
static int parse_all(const char *buf, size_t n, pk_pp_info *info, char *why, size_t whyn) {
  int r = pk_pp_parse(buf, n, info, why, whyn);
  for (size_t k = 0; k < n && r != PK_PP_ERROR; k++) {
    pk_pp_info tmp;
    char w[128];
    char *copy = malloc(k ? k : 1); /* exact size: ASan sees any over-read */
    memcpy(copy, buf, k);
    int rk = pk_pp_parse(copy, k, &tmp, w, sizeof(w));
    free(copy);
    if (r == PK_PP_DONE && k < info->len && rk != PK_PP_NEED_MORE) {
      fprintf(stderr, "prefix %zu of %zu: %d, wanted NEED_MORE\n", k, n, rk);
      CHECK_INT(rk, PK_PP_NEED_MORE);
    }
  }
  return r;
}

static void bad(const char *buf, size_t n, const char *want) {
  pk_pp_info info;
  char why[160] = "";
  int r = parse_all(buf, n, &info, why, sizeof(why));
  CHECK_INT(r, PK_PP_ERROR);
  if (!strstr(why, want)) fprintf(stderr, "error \"%s\", wanted \"%s\"\n", why, want);
  CHECK(strstr(why, want) != NULL);
}

TEST(v1_spec_examples) {
  pk_pp_info i;
  char why[128];
  static const char h[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
  CHECK_INT(parse_all(B(h), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.version, 1);
  CHECK_INT(i.local, 0);
  CHECK_INT(i.family, 4);
  CHECK(strcmp(i.src_ip, "192.168.0.1") == 0);
  CHECK(strcmp(i.dst_ip, "192.168.0.11") == 0);
  CHECK_INT(i.src_port, 56324);
  CHECK_INT(i.dst_port, 443);
  CHECK_INT(i.len, strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"));

  /* The spec's worst cases: 104 bytes for TCP6, 107 for UNKNOWN. */
  static const char h6[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  CHECK_INT(sizeof(h6) - 1, 104);
  CHECK_INT(parse_all(B(h6), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.family, 6);
  CHECK(strcmp(i.src_ip, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 0);
  CHECK_INT(i.src_port, 65535);
  CHECK_INT(i.len, 104);

  static const char hu[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  CHECK_INT(sizeof(hu) - 1, PK_PP_V1_MAX);
  CHECK_INT(parse_all(B(hu), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.local, 1);
  CHECK_INT(i.family, 0);
  CHECK_INT(i.len, 107);

  CHECK_INT(parse_all(B("PROXY UNKNOWN\r\nxyz"), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.local, 1);
  CHECK_INT(i.len, 15);
  CHECK_INT(parse_all(B("PROXY TCP6 ::1 2001:db8::2 1 0\r\n"), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK(strcmp(i.src_ip, "::1") == 0 && strcmp(i.dst_ip, "2001:db8::2") == 0);
  CHECK_INT(i.src_port, 1);
  CHECK_INT(i.dst_port, 0);
}

TEST(v1_malformed) {
  bad(B("GET / HTTP/1.1\r\n\r\n"), "not a PROXY protocol header");
  bad(B("PROXY\r\n"), "v1");
  bad(B("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), "not a PROXY protocol header");
  bad(B("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), "protocol");
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "v1");          /* bare LF */
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), "v1");        /* trailing field */
  bad(B("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), "v1");        /* two spaces */
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), "v1");
  bad(B("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), "address");
  bad(B("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), "address");        /* wrong family */
  bad(B("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), "address");
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "port");
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"), "port");
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 1x 2\r\n"), "port");
  bad(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\0\n"), "v1");
  /* No CRLF within 107 bytes: refused as soon as 107 bytes are in. */
  char longl[200];
  memset(longl, 'a', sizeof(longl));
  memcpy(longl, "PROXY UNKNOWN ", 14);
  bad(longl, PK_PP_V1_MAX, "longer than 107");
  pk_pp_info i;
  char why[128];
  CHECK_INT(pk_pp_parse(longl, PK_PP_V1_MAX - 2, &i, why, sizeof(why)), PK_PP_NEED_MORE);
  /* 108 bytes with the CRLF at the end (found by fuzz_proxyproto): too long,
   * and known to be so once the 106th byte is not a CR. */
  memcpy(longl + 106, "\r\n", 2);
  bad(longl, 108, "longer than 107");
  CHECK_INT(pk_pp_parse(longl, PK_PP_V1_MAX - 1, &i, why, sizeof(why)), PK_PP_ERROR);
  /* A NUL is refused at once, not after 107 bytes. */
  CHECK_INT(pk_pp_parse(B("PROXY TCP4 1.2\0"), &i, why, sizeof(why)), PK_PP_ERROR);
}

/* The v2 examples: the signature, then version/command, family, length. */
TEST(v2_tcp4_and_tcp6) {
  static const char h4[] = "\r\n\r\n\0\r\nQUIT\n"
                           "\x21\x11\x00\x0c"
                           "\xc0\xa8\x00\x01" "\xc0\xa8\x00\x0b" "\xdc\x04" "\x01\xbb"
                           "after";
  pk_pp_info i;
  char why[128];
  CHECK_INT(parse_all(B(h4), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.version, 2);
  CHECK_INT(i.local, 0);
  CHECK_INT(i.family, 4);
  CHECK(strcmp(i.src_ip, "192.168.0.1") == 0);
  CHECK(strcmp(i.dst_ip, "192.168.0.11") == 0);
  CHECK_INT(i.src_port, 56324);
  CHECK_INT(i.dst_port, 443);
  CHECK_INT(i.len, 28);

  static const char h6[] = "\r\n\r\n\0\r\nQUIT\n"
                           "\x21\x21\x00\x24"
                           "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
                           "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
                           "\x00\x50" "\x1f\x90";
  CHECK_INT(parse_all(B(h6), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.family, 6);
  CHECK(strcmp(i.src_ip, "2001:db8::1") == 0);
  CHECK(strcmp(i.dst_ip, "::1") == 0);
  CHECK_INT(i.src_port, 80);
  CHECK_INT(i.dst_port, 8080);
  CHECK_INT(i.len, 52);

  /* TLVs after the addresses are skipped (length covers them). */
  static const char tlv[] = "\r\n\r\n\0\r\nQUIT\n"
                            "\x21\x11\x00\x13"
                            "\x0a\x00\x00\x01" "\x0a\x00\x00\x02" "\x00\x01" "\x00\x02"
                            "\x01\x00\x04" "h2ok" "X";
  CHECK_INT(parse_all(B(tlv), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK(strcmp(i.src_ip, "10.0.0.1") == 0);
  CHECK_INT(i.len, 16 + 19);
}

TEST(v2_local_unspec_unix) {
  pk_pp_info i;
  char why[128];
  /* LOCAL (health checks): no address, even with an address block. */
  CHECK_INT(parse_all(B("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.local, 1);
  CHECK_INT(i.len, 16);
  static const char l4[] = "\r\n\r\n\0\r\nQUIT\n\x20\x11\x00\x0c"
                           "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02";
  CHECK_INT(parse_all(B(l4), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.local, 1);
  CHECK_INT(i.len, 28);
  /* PROXY with UNSPEC: no address either. */
  CHECK_INT(parse_all(B("\r\n\r\n\0\r\nQUIT\n\x21\x00\x00\x00"), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.local, 1);
  /* UNIX stream sockets: 216 bytes of paths, no IP to use. */
  char ux[16 + 216];
  memset(ux, 0, sizeof(ux));
  memcpy(ux, "\r\n\r\n\0\r\nQUIT\n\x21\x31\x00\xd8", 16);
  CHECK_INT(parse_all(ux, sizeof(ux), &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.local, 1);
  CHECK_INT(i.len, sizeof(ux));
}

TEST(v2_malformed) {
  bad(B("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c"), "not a PROXY protocol header");
  bad(B("\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c"), "version");
  bad(B("\r\n\r\n\0\r\nQUIT\n\x22\x11\x00\x0c"), "command");
  bad(B("\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c"), "UDP");        /* UDP over IPv4 */
  bad(B("\r\n\r\n\0\r\nQUIT\n\x21\x41\x00\x0c"), "family");
  bad(B("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0b"), "too short");   /* 11 < 12 */
  bad(B("\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x0c"), "too short");   /* TCP6 needs 36 */
  /* Oversized: refused from the length field, before the bytes come. */
  pk_pp_info i;
  char why[128] = "";
  CHECK_INT(pk_pp_parse(B("\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff"), &i, why, sizeof(why)), PK_PP_ERROR);
  CHECK(strstr(why, "longer than") != NULL);
  CHECK_INT(pk_pp_parse(B("\r\n\r\n\0\r\nQUIT\n\x21\x11\x02\x01"), &i, why, sizeof(why)), PK_PP_ERROR);
  CHECK_INT(pk_pp_parse(B("\r\n\r\n\0\r\nQUIT\n\x21\x11\x02\x00"), &i, why, sizeof(why)), PK_PP_NEED_MORE);
  /* Nothing at all yet: more needed; the empty why buffer is never written. */
  CHECK_INT(pk_pp_parse("", 0, &i, NULL, 0), PK_PP_NEED_MORE);
  CHECK_INT(pk_pp_parse(B("X"), &i, NULL, 0), PK_PP_ERROR);
}

/* What we write parses back to what we meant, fed whole and in pieces. */
static void roundtrip(int v, const char *src, int sp, const char *dst, int dp, const char *want_src,
                      const char *want_dst, int local) {
  char out[PK_PP_ENCODE_MAX];
  int n = pk_pp_encode(v, src, sp, dst, dp, out, sizeof(out));
  CHECK(n > 0);
  if (n <= 0) return;
  pk_pp_info i;
  char why[128];
  CHECK_INT(parse_all(out, (size_t)n, &i, why, sizeof(why)), PK_PP_DONE);
  CHECK_INT(i.len, n);
  CHECK_INT(i.version, v);
  CHECK_INT(i.local, local);
  if (!local) {
    if (strcmp(i.src_ip, want_src) || strcmp(i.dst_ip, want_dst))
      fprintf(stderr, "v%d %s -> %s %s\n", v, src, i.src_ip, i.dst_ip);
    CHECK(strcmp(i.src_ip, want_src) == 0);
    CHECK(strcmp(i.dst_ip, want_dst) == 0);
    CHECK_INT(i.src_port, sp);
    CHECK_INT(i.dst_port, dp);
  }
}

TEST(encode) {
  char out[PK_PP_ENCODE_MAX];
  int n = pk_pp_encode(1, "192.168.0.1", 56324, "192.168.0.11", 443, out, sizeof(out));
  CHECK_INT(n, 47);
  CHECK(n == 47 && memcmp(out, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 47) == 0);
  /* pagekite.py's form: no relay address known -> 0.0.0.0. */
  n = pk_pp_encode(1, "10.1.2.3", 5000, NULL, 80, out, sizeof(out));
  CHECK(n > 0 && memcmp(out, "PROXY TCP4 10.1.2.3 0.0.0.0 5000 80\r\n", (size_t)n) == 0);
  /* IPv4-mapped IPv6 goes out as IPv4 (pagekite.py relays report these). */
  n = pk_pp_encode(1, "::ffff:10.1.2.3", 5000, "::ffff:127.0.0.1", 80, out, sizeof(out));
  CHECK(n > 0 && memcmp(out, "PROXY TCP4 10.1.2.3 127.0.0.1 5000 80\r\n", (size_t)n) == 0);
  n = pk_pp_encode(1, "2001:db8::7", 1, "127.0.0.1", 443, out, sizeof(out));
  CHECK(n > 0 && memcmp(out, "PROXY TCP6 2001:db8::7 :: 1 443\r\n", (size_t)n) == 0);
  n = pk_pp_encode(1, "unknown", 1, "127.0.0.1", 443, out, sizeof(out));
  CHECK(n > 0 && memcmp(out, "PROXY UNKNOWN\r\n", (size_t)n) == 0);
  n = pk_pp_encode(1, "1.2.3.4", 70000, "127.0.0.1", 443, out, sizeof(out));
  CHECK(n > 0 && memcmp(out, "PROXY UNKNOWN\r\n", (size_t)n) == 0);
  n = pk_pp_encode(2, "192.168.0.1", 56324, "192.168.0.11", 443, out, sizeof(out));
  CHECK_INT(n, 28);
  CHECK(n == 28 && memcmp(out, "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\xa8\x00\x01\xc0\xa8\x00\x0b"
                               "\xdc\x04\x01\xbb", 28) == 0);
  n = pk_pp_encode(2, NULL, 0, NULL, 0, out, sizeof(out));
  CHECK(n == 16 && memcmp(out, "\r\n\r\n\0\r\nQUIT\n\x21\x00\x00\x00", 16) == 0);
  /* Too small a buffer, or a version we do not speak. */
  CHECK_INT(pk_pp_encode(1, "192.168.0.1", 1, "192.168.0.11", 2, out, 20), -1);
  CHECK_INT(pk_pp_encode(2, "::1", 1, "::1", 2, out, 51), -1);
  CHECK_INT(pk_pp_encode(3, "::1", 1, "::1", 2, out, sizeof(out)), -1);
  /* Largest v1 header fits PK_PP_ENCODE_MAX. */
  n = pk_pp_encode(1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
                   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, out, sizeof(out));
  CHECK_INT(n, 104);

  for (int v = 1; v <= 2; v++) {
    roundtrip(v, "192.168.0.1", 56324, "192.168.0.11", 443, "192.168.0.1", "192.168.0.11", 0);
    roundtrip(v, "2001:db8::1", 0, "::1", 65535, "2001:db8::1", "::1", 0);
    roundtrip(v, "::ffff:1.2.3.4", 9, "", 80, "1.2.3.4", "0.0.0.0", 0);
    roundtrip(v, "x", 9, "1.2.3.4", 80, NULL, NULL, 1);
  }
}

TEST(cidr) {
  pk_pp_cidr c;
  char why[128];
  CHECK_INT(pk_pp_cidr_parse("10.0.0.0/8", &c, why, sizeof(why)), 0);
  CHECK(pk_pp_cidr_match(&c, "10.200.3.4"));
  CHECK(pk_pp_cidr_match(&c, "::ffff:10.0.0.1"));
  CHECK(!pk_pp_cidr_match(&c, "11.0.0.1"));
  CHECK(!pk_pp_cidr_match(&c, "::1"));
  CHECK(!pk_pp_cidr_match(&c, "garbage"));
  CHECK_INT(pk_pp_cidr_parse("127.0.0.1", &c, why, sizeof(why)), 0);
  CHECK_INT(c.bits, 32);
  CHECK(pk_pp_cidr_match(&c, "127.0.0.1"));
  CHECK(!pk_pp_cidr_match(&c, "127.0.0.2"));
  CHECK_INT(pk_pp_cidr_parse("2001:db8::/33", &c, why, sizeof(why)), 0);
  CHECK(pk_pp_cidr_match(&c, "2001:db8:7fff::1"));
  CHECK(!pk_pp_cidr_match(&c, "2001:db8:8000::1"));
  CHECK_INT(pk_pp_cidr_parse("0.0.0.0/0", &c, why, sizeof(why)), 0);
  CHECK(pk_pp_cidr_match(&c, "8.8.8.8"));
  CHECK_INT(pk_pp_cidr_parse("10.0.0.0/33", &c, why, sizeof(why)), -1);
  CHECK_INT(pk_pp_cidr_parse("::/129", &c, why, sizeof(why)), -1);
  CHECK_INT(pk_pp_cidr_parse("10.0.0.0/", &c, why, sizeof(why)), -1);
  CHECK_INT(pk_pp_cidr_parse("10.0.0.0/8x", &c, why, sizeof(why)), -1);
  CHECK_INT(pk_pp_cidr_parse("host.example", &c, why, sizeof(why)), -1);
  CHECK(strstr(why, "host.example") != NULL);
  CHECK_INT(pk_pp_cidr_parse(NULL, &c, why, sizeof(why)), -1);
}

int main(void) {
  RUN(v1_spec_examples);
  RUN(v1_malformed);
  RUN(v2_tcp4_and_tcp6);
  RUN(v2_local_unspec_unix);
  RUN(v2_malformed);
  RUN(encode);
  RUN(cidr);
  return TEST_DONE();
}

/* test_sign.c - sign.c behaviour that needs no reference implementation. */
#include <string.h>

#include "pk_test.h"
#include "sign.h"

static int is_lower_hex(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  }
  return s[n] == '\0';
}

TEST(sha1_known_answers) {
  char out[41];
  const char *abc[] = {"abc"};
  const char *split[] = {"a", "", "bc"};
  pk_sha1hex_parts(abc, 1, out);
  CHECK(strcmp(out, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
  pk_sha1hex_parts(split, 3, out);
  CHECK(strcmp(out, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
  pk_sha1hex_parts(NULL, 0, out);
  CHECK(strcmp(out, "da39a3ee5e6b4b0d3255bfef95601890afd80709") == 0);
}

TEST(sign_plain_shape) {
  char out[PK_TOKEN_LEN + 1];
  CHECK_INT(pk_sign_token("secret", "payload", "0123456789abcdef", 0, out), 0);
  CHECK_INT(strlen(out), PK_TOKEN_LEN);
  CHECK(memcmp(out, "01234567", 8) == 0);
  CHECK(is_lower_hex(out, PK_TOKEN_LEN));
}

TEST(sign_timestamp_shape) {
  char out[PK_TOKEN_LEN + 1];
  CHECK_INT(pk_sign_token("secret", "payload", "0123456789abcdef", 1700000000, out), 0);
  CHECK(memcmp(out, "t1234567", 8) == 0);
  CHECK(is_lower_hex(out + 1, PK_TOKEN_LEN - 1));
}

TEST(sign_is_deterministic_and_keyed) {
  char a[PK_TOKEN_LEN + 1], b[PK_TOKEN_LEN + 1], c[PK_TOKEN_LEN + 1], d[PK_TOKEN_LEN + 1];
  CHECK_INT(pk_sign_token("k1", "p", "abcdef01", 0, a), 0);
  CHECK_INT(pk_sign_token("k1", "p", "abcdef01ffff", 0, b), 0); /* only 8 chars count */
  CHECK_INT(pk_sign_token("k2", "p", "abcdef01", 0, c), 0);
  CHECK_INT(pk_sign_token("k1", "q", "abcdef01", 0, d), 0);
  CHECK(strcmp(a, b) == 0);
  CHECK(strcmp(a, c) != 0);
  CHECK(strcmp(a, d) != 0);
}

TEST(sign_bad_input) {
  char out[PK_TOKEN_LEN + 1];
  CHECK_INT(pk_sign_token("k", "p", "1234567", 0, out), -1);
  CHECK_INT(pk_sign_token(NULL, "p", "12345678", 0, out), -1);
  CHECK_INT(pk_sign_token("k", "p", "12345678", 0, NULL), -1);
  CHECK_INT(pk_sign_token("k", NULL, "12345678", 0, out), 0); /* NULL payload = "" */
}

TEST(sign_random_token) {
  char a[PK_TOKEN_LEN + 1], b[PK_TOKEN_LEN + 1];
  CHECK_INT(pk_sign_token("k", "p", NULL, 0, a), 0);
  CHECK_INT(pk_sign_token("k", "p", NULL, 0, b), 0);
  CHECK(is_lower_hex(a, PK_TOKEN_LEN));
  CHECK(strcmp(a, b) != 0);
  CHECK_INT(pk_check_signature(a, "k", "p", 1700000000), 1);
}

TEST(check_windows) {
  char s[PK_TOKEN_LEN + 1];
  long long now = 1700000000;
  CHECK_INT(pk_sign_token("k", "p", "abcdef01", now, s), 0);
  CHECK_INT(pk_check_signature(s, "k", "p", now), 1);
  CHECK_INT(pk_check_signature(s, "k", "p", now + 600), 1);
  CHECK_INT(pk_check_signature(s, "k", "p", now + 1200), 0);
  CHECK_INT(pk_check_signature(s, "k", "p", now - 600), 0);
  CHECK_INT(pk_check_signature(s, "x", "p", now), 0);
  CHECK_INT(pk_check_signature(s, "k", "P", now), 0);
}

TEST(check_rejects_junk) {
  CHECK_INT(pk_check_signature("", "k", "p", 1), 0);
  CHECK_INT(pk_check_signature(NULL, "k", "p", 1), 0);
  CHECK_INT(pk_check_signature("t", "k", "p", 1), 0);
  CHECK_INT(pk_check_signature("abcdef01", "k", "p", 1), 0);
  CHECK_INT(pk_check_signature("tbcdef01aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "k", "p", -9223372036854775807LL - 1), 0);
}

TEST(random_hex) {
  char buf[80];
  char other[80];
  memset(buf, 'X', sizeof(buf));
  CHECK_INT(pk_random_hex(buf, 0), 0);
  CHECK(buf[0] == '\0');
  CHECK_INT(pk_random_hex(buf, 1), 0);
  CHECK(is_lower_hex(buf, 1));
  CHECK_INT(pk_random_hex(buf, PK_TOKEN_LEN), 0);
  CHECK(is_lower_hex(buf, PK_TOKEN_LEN));
  CHECK_INT(pk_random_hex(buf, 79), 0);
  CHECK(is_lower_hex(buf, 79));
  CHECK_INT(pk_random_hex(other, 79), 0);
  CHECK(strcmp(buf, other) != 0);
  CHECK_INT(pk_random_hex(NULL, 4), -1);
}

TEST(consttime_eq) {
  CHECK_INT(pk_consttime_eq("abcdef", "abcdef", 6), 1);
  CHECK_INT(pk_consttime_eq("abcdef", "abcdeg", 6), 0);
  CHECK_INT(pk_consttime_eq("xbcdef", "abcdef", 6), 0);
  CHECK_INT(pk_consttime_eq("abcdef", "abcdeg", 5), 1);
  CHECK_INT(pk_consttime_eq("", "", 0), 1);
  CHECK_INT(pk_consttime_eq(NULL, "a", 1), 0);
}

int main(void) {
  RUN(sha1_known_answers);
  RUN(sign_plain_shape);
  RUN(sign_timestamp_shape);
  RUN(sign_is_deterministic_and_keyed);
  RUN(sign_bad_input);
  RUN(sign_random_token);
  RUN(check_windows);
  RUN(check_rejects_junk);
  RUN(random_hex);
  RUN(consttime_eq);
  return TEST_DONE();
}

/* pk_test.h - a tiny assertion harness for the C unit tests.
 *
 * Each test file defines small TEST(name) functions and lists them in main()
 * with RUN(name).  A failed CHECK prints file:line and the expression, the
 * test keeps going, and main() returns non-zero if anything failed.
 */
#ifndef PK_TEST_H
#define PK_TEST_H

#include <stdio.h>
#include <string.h>

static int pk_test_failures;
static int pk_test_checks;

#define CHECK(cond)                                                              \
  do {                                                                           \
    pk_test_checks++;                                                            \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      pk_test_failures++;                                                        \
    }                                                                            \
  } while (0)

#define CHECK_INT(a, b)                                                                 \
  do {                                                                                  \
    long long pk_a_ = (long long)(a), pk_b_ = (long long)(b);                           \
    pk_test_checks++;                                                                   \
    if (pk_a_ != pk_b_) {                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__,       \
              __LINE__, #a, #b, pk_a_, pk_b_);                                          \
      pk_test_failures++;                                                               \
    }                                                                                   \
  } while (0)

/* A slice equals a C string exactly (case-sensitive). */
#define CHECK_SLICE(s, str)                                                             \
  do {                                                                                  \
    pk_slice pk_s_ = (s);                                                               \
    const char *pk_str_ = (str);                                                        \
    pk_test_checks++;                                                                   \
    if (pk_s_.p == NULL || pk_s_.n != strlen(pk_str_) ||                                \
        memcmp(pk_s_.p, pk_str_, pk_s_.n) != 0) {                                       \
      fprintf(stderr, "%s:%d: CHECK failed: %s == \"%s\" (got \"%.*s\")\n", __FILE__,   \
              __LINE__, #s, pk_str_, pk_s_.p ? (int)pk_s_.n : 6,                        \
              pk_s_.p ? pk_s_.p : "(null)");                                            \
      pk_test_failures++;                                                               \
    }                                                                                   \
  } while (0)

#define TEST(name) static void name(void)

#define RUN(name)                                                                  \
  do {                                                                             \
    int pk_before_ = pk_test_failures;                                             \
    name();                                                                        \
    printf("%s %s\n", pk_test_failures == pk_before_ ? "ok  " : "FAIL", #name);    \
  } while (0)

#define TEST_DONE()                                                                   \
  (printf("%d checks, %d failures\n", pk_test_checks, pk_test_failures),              \
   pk_test_failures == 0 && pk_test_checks > 0 ? 0 : 1)

#endif

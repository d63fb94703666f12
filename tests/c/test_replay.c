/* test_replay.c - single-use relay challenges (replay.c), no sockets. */
#include <stdlib.h>

#include "pk_test.h"
#include "replay.h"

TEST(first_use_only) {
  pk_replay r;
  CHECK_INT(pk_replay_init(&r, 100), 0);
  char a[9], b[9];
  pk_replay_issue(&r, a);
  pk_replay_issue(&r, b);
  CHECK(strcmp(a, "t0000064") == 0);
  CHECK(strcmp(b, "t0000065") == 0);
  CHECK_INT(pk_replay_use(&r, b), 0);
  CHECK_INT(pk_replay_use(&r, b), -1); /* replayed */
  CHECK_INT(pk_replay_use(&r, a), 0);  /* order does not matter */
  CHECK_INT(pk_replay_use(&r, a), -1);
  pk_replay_free(&r);
}

TEST(never_issued_or_foreign) {
  pk_replay r;
  pk_replay_init(&r, 0);
  char a[9];
  pk_replay_issue(&r, a);
  CHECK_INT(pk_replay_use(&r, "t0000001"), -1); /* the next one, not issued yet */
  CHECK_INT(pk_replay_use(&r, "x0000000"), -1); /* not a timestamped token */
  CHECK_INT(pk_replay_use(&r, "t00000g0"), -1); /* not hex */
  CHECK_INT(pk_replay_use(&r, "T0000000"), -1);
  CHECK_INT(pk_replay_use(&r, a), 0);
  pk_replay_free(&r);
}

TEST(too_old_after_a_ring) {
  pk_replay r;
  pk_replay_init(&r, 5);
  char first[9], x[9];
  pk_replay_issue(&r, first);
  for (uint32_t i = 0; i < PK_REPLAY_RING - 1; i++) pk_replay_issue(&r, x);
  CHECK_INT(pk_replay_use(&r, first), 0); /* exactly one ring old: still good */
  pk_replay_issue(&r, x);
  CHECK_INT(pk_replay_use(&r, first), -1);
  /* The slot reused by x is clear for x. */
  CHECK_INT(pk_replay_use(&r, x), 0);
  pk_replay_free(&r);
}

TEST(sequence_wraps) {
  pk_replay r;
  pk_replay_init(&r, (1u << PK_REPLAY_SEQ_BITS) - 1);
  char a[9], b[9];
  pk_replay_issue(&r, a);
  pk_replay_issue(&r, b);
  CHECK(strcmp(a, "tfffffff") == 0);
  CHECK(strcmp(b, "t0000000") == 0);
  CHECK_INT(pk_replay_use(&r, a), 0);
  CHECK_INT(pk_replay_use(&r, b), 0);
  CHECK_INT(pk_replay_use(&r, b), -1);
  pk_replay_free(&r);
}

int main(void) {
  RUN(first_use_only);
  RUN(never_issued_or_foreign);
  RUN(too_old_after_a_ring);
  RUN(sequence_wraps);
  return TEST_DONE();
}

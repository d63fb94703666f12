/* replay.h - single-use challenges on the relay.
 *
 * A relay challenge ("X-PageKite-SignThis" token) is 't' + 7 hex digits + 28
 * hex digits of keyed hash.  pagekite.py fills the 7 digits at random; we put
 * a sequence number there (the hash covers it, so it cannot be forged) and
 * remember in a ring bitmap which of the last PK_REPLAY_RING challenges have
 * been answered.  An answer is accepted once; a sniffed signed request
 * replayed later, or a challenge older than the ring, is refused.  Memory is
 * fixed (PK_REPLAY_RING bits) whatever peers do, and no state is kept for
 * challenges that are never answered.
 */
#ifndef PK_REPLAY_H
#define PK_REPLAY_H

#include <stdint.h>

#define PK_REPLAY_SEQ_BITS 28 /* 7 hex digits */
#define PK_REPLAY_RING_BITS 20
#define PK_REPLAY_RING (1u << PK_REPLAY_RING_BITS)

typedef struct {
  uint32_t next;      /* next sequence number to issue (mod 2^28) */
  unsigned char *used; /* PK_REPLAY_RING bits */
} pk_replay;

int pk_replay_init(pk_replay *r, uint32_t first_seq);
void pk_replay_free(pk_replay *r);
/* Writes the 8-character prefix ("t" + 7 hex digits) of a new challenge. */
void pk_replay_issue(pk_replay *r, char prefix[9]);
/* The challenge token was answered with a valid signature: 0 if this is its
 * first use (now recorded), -1 if it was used before, is older than the ring,
 * was never issued here, or is not one of our tokens. */
int pk_replay_use(pk_replay *r, const char *token);

#endif

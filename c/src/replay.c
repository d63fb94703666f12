/* replay.c - single-use challenges on the relay (see replay.h). */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_MASK ((1u << PK_REPLAY_SEQ_BITS) - 1)
#define RING_MASK (PK_REPLAY_RING - 1)

int pk_replay_init(pk_replay *r, uint32_t first_seq) {
  r->used = calloc(PK_REPLAY_RING / 8, 1);
  r->next = first_seq & SEQ_MASK;
  return r->used ? 0 : -1;
}

void pk_replay_free(pk_replay *r) {
  free(r->used);
  r->used = NULL;
}

static void bit_clear(pk_replay *r, uint32_t seq) {
  uint32_t i = seq & RING_MASK;
  r->used[i >> 3] &= (unsigned char)~(1u << (i & 7));
}

void pk_replay_issue(pk_replay *r, char prefix[9]) {
  uint32_t seq = r->next;
  r->next = (r->next + 1) & SEQ_MASK;
  if (r->used) bit_clear(r, seq); /* the slot of a challenge one ring ago */
  snprintf(prefix, 9, "t%07x", (unsigned)seq);
}

static int parse_seq(const char *token, uint32_t *seq) {
  if (token[0] != 't') return -1;
  uint32_t v = 0;
  for (int i = 1; i < 8; i++) {
    char ch = token[i];
    int d = (ch >= '0' && ch <= '9') ? ch - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = (v << 4) | (uint32_t)d;
  }
  *seq = v;
  return 0;
}

int pk_replay_use(pk_replay *r, const char *token) {
  uint32_t seq;
  if (!r->used || parse_seq(token, &seq) != 0) return -1;
  uint32_t age = (r->next - seq) & SEQ_MASK; /* 1 = the newest challenge */
  if (age == 0 || age > PK_REPLAY_RING) return -1;
  uint32_t i = seq & RING_MASK;
  unsigned char bit = (unsigned char)(1u << (i & 7));
  if (r->used[i >> 3] & bit) return -1;
  r->used[i >> 3] |= bit;
  return 0;
}

/* iplimit.c - counts of connections per source network (see iplimit.h). */
#include "iplimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int pk_iptab_init(pk_iptab *t, size_t max_keys) {
  size_t cap = 16;
  while (cap < max_keys * 2) cap <<= 1;
  t->slots = calloc(cap, sizeof(pk_ipslot));
  t->cap = t->slots ? cap : 0;
  t->used = 0;
  return t->slots ? 0 : -1;
}

void pk_iptab_free(pk_iptab *t) {
  free(t->slots);
  memset(t, 0, sizeof(*t));
}

pk_ipkey pk_ipkey_of(const struct sockaddr *sa) {
  pk_ipkey k;
  memset(&k, 0, sizeof(k));
  if (sa->sa_family == AF_INET) {
    memcpy(k.b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    k.b[10] = k.b[11] = 0xff;
  } else if (sa->sa_family == AF_INET6) {
    const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(k.b, a, memcmp(a, mapped, 12) == 0 ? 16 : 8); /* v4-mapped whole, else the /64 */
  }
  return k;
}

static size_t hash(const pk_ipkey *k) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (int i = 0; i < 16; i++) h = (h ^ k->b[i]) * 1099511628211ull;
  return (size_t)(h ^ (h >> 29));
}

/* The slot holding k, or the empty slot where it would go. */
static size_t find(const pk_iptab *t, const pk_ipkey *k) {
  size_t i = hash(k) & (t->cap - 1);
  while (t->slots[i].count && memcmp(&t->slots[i].key, k, sizeof(*k)) != 0)
    i = (i + 1) & (t->cap - 1);
  return i;
}

uint32_t pk_iptab_count(const pk_iptab *t, const pk_ipkey *k) {
  return t->cap ? t->slots[find(t, k)].count : 0;
}

uint32_t pk_iptab_add(pk_iptab *t, const pk_ipkey *k) {
  if (!t->cap) return 0;
  size_t i = find(t, k);
  if (!t->slots[i].count) {
    if (t->used + 1 > t->cap / 2) return 0; /* keep probes short */
    t->slots[i].key = *k;
    t->used++;
  }
  return ++t->slots[i].count;
}

void pk_iptab_remove(pk_iptab *t, const pk_ipkey *k) {
  if (!t->cap) return;
  size_t i = find(t, k);
  if (!t->slots[i].count || --t->slots[i].count) return;
  t->used--;
  /* Backward-shift deletion: move later members of the run into the hole. */
  size_t hole = i, j = i;
  for (;;) {
    j = (j + 1) & (t->cap - 1);
    if (!t->slots[j].count) break;
    size_t home = hash(&t->slots[j].key) & (t->cap - 1);
    if (((j - home) & (t->cap - 1)) >= ((j - hole) & (t->cap - 1))) {
      t->slots[hole] = t->slots[j];
      t->slots[j].count = 0;
      hole = j;
    }
  }
}

uint32_t pk_iptab_heaviest(const pk_iptab *t, pk_ipkey *out) {
  uint32_t best = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->slots[i].count > best) {
      best = t->slots[i].count;
      *out = t->slots[i].key;
    }
  return best;
}

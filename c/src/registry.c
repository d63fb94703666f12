/* registry.c - the relay's kite registry (registry.h): a chained hash table
 * over a slab of entries fixed at init, with a free list, and a doubly
 * linked list of entries per owner.  Indexes are stored plus one, so that
 * zeroed memory is empty. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FNV_PRIME 0x100000001b3ull

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

/* Lower-cased copy of s into out[PK_NAME_MAX]; -1 when it does not fit. */
static int lower_copy(char *out, size_t n, const char *s) {
  size_t i = 0;
  for (; s[i]; i++) {
    if (i + 1 >= n) return -1;
    out[i] = lower(s[i]);
  }
  out[i] = 0;
  return 0;
}

static uint64_t mix_str(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (unsigned char)lower(*s)) * FNV_PRIME;
  return h;
}

/* The key's hash: seeded FNV-1a of proto, a separator, port and the name
 * (given as pre + rest, so wildcards are hashed without being copied),
 * then mixed so the low bits pick the bucket. */
static uint64_t key_hash(const pk_reg *r, const char *proto, int port, const char *pre,
                         const char *rest) {
  uint64_t h = mix_str(r->seed ^ 0xcbf29ce484222325ull, proto) * FNV_PRIME;
  h = (h ^ (uint64_t)(unsigned)port) * FNV_PRIME;
  h = mix_str(mix_str(h, pre), rest);
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  return h ^ (h >> 32);
}

static int key_eq(const pk_reg_entry *e, uint64_t h, const char *proto, int port, const char *pre,
                  const char *rest) {
  size_t pl = strlen(pre);
  return e->hash == h && e->port == port && strcasecmp(e->proto, proto) == 0 &&
         strncmp(e->name, pre, pl) == 0 && strcmp(e->name + pl, rest) == 0;
}

int pk_reg_init(pk_reg *r, uint32_t cap, uint64_t seed) {
  memset(r, 0, sizeof(*r));
  if (cap == 0 || cap > (1u << 30)) return -1;
  uint32_t nb = 1;
  while (nb < cap) nb <<= 1;
  r->e = calloc(cap, sizeof(*r->e)); /* pages are touched only when used */
  r->buckets = calloc(nb, sizeof(*r->buckets));
  if (!r->e || !r->buckets) {
    pk_reg_free(r);
    return -1;
  }
  r->cap = cap;
  r->mask = nb - 1;
  r->seed = seed;
  return 0;
}

void pk_reg_free(pk_reg *r) {
  free(r->e);
  free(r->buckets);
  memset(r, 0, sizeof(*r));
}

uint32_t pk_reg_count(const pk_reg *r) { return r->count; }

static uint32_t take_slot(pk_reg *r) {
  uint32_t i = r->free_head;
  if (i) {
    r->free_head = r->e[i - 1].next;
    return i;
  }
  return r->used < r->cap ? ++r->used : 0;
}

pk_reg_entry *pk_reg_add(pk_reg *r, pk_reg_list *l, void *tunnel, const char *proto, int port,
                         const char *name) {
  if (!r->e || !tunnel || !proto || !*proto || !name || !*name || port < 0) return NULL;
  char p[PK_REG_PROTO_MAX], n[PK_NAME_MAX];
  if (lower_copy(p, sizeof(p), proto) != 0 || lower_copy(n, sizeof(n), name) != 0) return NULL;
  uint32_t i = take_slot(r);
  if (!i) return NULL;
  pk_reg_entry *e = &r->e[i - 1];
  memcpy(e->proto, p, sizeof(p));
  memcpy(e->name, n, strlen(n) + 1);
  e->port = port;
  e->tunnel = tunnel;
  e->kstat = 0;
  e->hash = key_hash(r, p, port, "", n);
  uint32_t *b = &r->buckets[e->hash & r->mask];
  e->next = *b;
  *b = i;
  e->tprev = 0;
  e->tnext = l->head;
  if (l->head) r->e[l->head - 1].tprev = i;
  l->head = i;
  l->n++;
  r->count++;
  return e;
}

void pk_reg_remove(pk_reg *r, pk_reg_list *l, pk_reg_entry *e) {
  uint32_t i = (uint32_t)(e - r->e) + 1;
  uint32_t *p = &r->buckets[e->hash & r->mask];
  while (*p && *p != i) p = &r->e[*p - 1].next;
  if (!*p) return; /* not in the table */
  *p = e->next;
  if (e->tprev)
    r->e[e->tprev - 1].tnext = e->tnext;
  else
    l->head = e->tnext;
  if (e->tnext) r->e[e->tnext - 1].tprev = e->tprev;
  l->n--;
  r->count--;
  memset(e, 0, sizeof(*e));
  e->next = r->free_head;
  r->free_head = i;
}

void pk_reg_remove_list(pk_reg *r, pk_reg_list *l, void (*gone)(void *ctx, const pk_reg_entry *e),
                        void *ctx) {
  while (l->head) {
    pk_reg_entry *e = &r->e[l->head - 1];
    if (gone) gone(ctx, e);
    pk_reg_remove(r, l, e);
  }
  l->n = 0;
}

/* The entry under key (proto, port, pre + rest) of tunnel (NULL: any).  Of
 * several, the first, or with rotate the next in turn. */
static pk_reg_entry *find_key(pk_reg *r, const char *proto, int port, const char *pre,
                              const char *rest, const void *tunnel, int rotate) {
  uint64_t h = key_hash(r, proto, port, pre, rest);
  pk_reg_entry *first = NULL;
  uint32_t n = 0;
  for (uint32_t i = r->buckets[h & r->mask]; i; i = r->e[i - 1].next) {
    pk_reg_entry *e = &r->e[i - 1];
    if (!key_eq(e, h, proto, port, pre, rest) || (tunnel && e->tunnel != tunnel)) continue;
    if (!first) first = e;
    n++;
  }
  if (n < 2 || !rotate) return first;
  uint32_t k = r->rr++ % n;
  for (uint32_t i = (uint32_t)(first - r->e) + 1; i; i = r->e[i - 1].next) {
    pk_reg_entry *e = &r->e[i - 1];
    if (key_eq(e, h, proto, port, pre, rest) && (!tunnel || e->tunnel == tunnel) && k-- == 0)
      return e;
  }
  return first; /* not reached */
}

pk_reg_entry *pk_reg_get(pk_reg *r, const char *proto, int port, const char *name,
                         const void *tunnel, int rotate) {
  char n[PK_NAME_MAX];
  if (!r->e || !proto || !name || lower_copy(n, sizeof(n), name) != 0) return NULL;
  return find_key(r, proto, port, "", n, tunnel, rotate);
}

/* The name itself, then its wildcards from the most specific, as
 * pagekite.py's Tunnel() (pk.py) makes them: "*" followed by the name from
 * each of its dots on, as long as a dot still follows that one.  So
 * a.b.c.d tries *.b.c.d and *.c.d, never the one-label *.d; a wildcard never
 * covers its own base name (example.com is not in *.example.com). */
static pk_reg_entry *find_name(pk_reg *r, const char *proto, int port, const char *name,
                               int rotate) {
  pk_reg_entry *e = find_key(r, proto, port, "", name, NULL, rotate);
  for (const char *d = strchr(name, '.'); !e && d && strchr(d + 1, '.'); d = strchr(d + 1, '.'))
    e = find_key(r, proto, port, "*", d, NULL, rotate);
  return e;
}

/* pagekite.py's order (proto/conns.py, UserConn._FrontEnd), for a request
 * for name arriving on port:
 *   for each proto in order (a websocket request passes websocket, http):
 *     1. proto-PORT: the name, then its wildcards (find_name);
 *     2. proto with no port: the name, then its wildcards;
 *   3. after every proto: the kite named "unknown" of the first proto, with
 *      no port (pagekite.py's catch-all, CATCHALL_HN).
 * So a port-specific wildcard beats a port-less exact name, and an http kite
 * serves a websocket request only when no websocket kite matches at all.
 * pagekite.py also tries http2 and http3 after http; we serve no such proto.
 * Each step is one hash lookup: the cost grows with the labels of the name,
 * never with the number of kites. */
pk_reg_entry *pk_reg_route(pk_reg *r, const char *const *protos, int nprotos, int port,
                           const char *name, int rotate) {
  char n[PK_NAME_MAX];
  if (!r->e || nprotos < 1 || !name) return NULL;
  int fits = lower_copy(n, sizeof(n), name) == 0;
  for (int i = 0; fits && i < nprotos; i++) {
    pk_reg_entry *e = port ? find_name(r, protos[i], port, n, rotate) : NULL;
    if (!e) e = find_name(r, protos[i], 0, n, rotate);
    if (e) return e;
  }
  return find_key(r, protos[0], 0, "", PK_REG_CATCHALL, NULL, rotate);
}

const pk_reg_entry *pk_reg_next(const pk_reg *r, const pk_reg_entry *prev) {
  for (uint32_t i = prev ? (uint32_t)(prev - r->e) + 1 : 0; i < r->used; i++)
    if (r->e[i].tunnel) return &r->e[i];
  return NULL;
}

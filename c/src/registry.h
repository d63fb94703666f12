/* registry.h - the relay's kite registry: (proto, port, name) -> tunnel.
 *
 * A hash table sized once at init (the relay's max kites), no growth and no
 * allocation after it.  Keys are (proto, port, lower-cased name); port 0
 * means "any port"; a wildcard kite is kept under its literal name
 * ("*.example.com").  Several entries may share a key (duplicates allowed):
 * lookups then take turns.  Each owner (a tunnel, opaque here) keeps the list
 * of its entries, so dropping a tunnel costs its own kites only.  Routing
 * follows pagekite.py's precedence (pk_reg_route, registry.c).  No sockets:
 * unit-tested alone (tests/c/test_registry.c).
 */
#ifndef PK_REGISTRY_H
#define PK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

#define PK_REG_PROTO_MAX 16 /* "websocket" and room to spare */
/* pagekite.py's catch-all kite (common.py: CATCHALL_HN). */
#define PK_REG_CATCHALL "unknown"

/* What a lookup compares first (hash, chain, port, proto) shares the
 * entry's first cache line with the start of the name. */
typedef struct {
  uint64_t hash;
  uint32_t next;         /* the bucket's chain (index + 1; 0 ends it), or the free list */
  uint32_t tprev, tnext; /* the owner's list (index + 1) */
  int port;              /* 0: any port */
  void *tunnel;          /* the owner; NULL: a free slot */
  int kstat;             /* the owner's cache (relay: its traffic entry); 0 when added */
  uint64_t tag;          /* the owner's (relay: the fingerprint of the kite's secret) */
  char proto[PK_REG_PROTO_MAX]; /* lower case */
  char name[PK_NAME_MAX];       /* lower case */
} pk_reg_entry;

/* The entries of one owner, kept by the owner.  All zero: empty. */
typedef struct {
  uint32_t head; /* index + 1 */
  int n;
} pk_reg_list;

typedef struct {
  pk_reg_entry *e;
  uint32_t *buckets; /* index + 1 of a chain's first entry */
  uint32_t mask;     /* buckets - 1 (a power of two) */
  uint32_t cap, used, count;
  uint32_t free_head; /* index + 1 */
  uint64_t seed;
  unsigned rr; /* turns among duplicates */
} pk_reg;

/* Room for cap entries.  seed: random, so that chains cannot be aimed at. */
int pk_reg_init(pk_reg *r, uint32_t cap, uint64_t seed);
void pk_reg_free(pk_reg *r);
uint32_t pk_reg_count(const pk_reg *r);

/* Adds (proto, port, name) -> tunnel to list l (the tunnel's).  NULL when
 * the registry is full or the arguments are not a key (empty, too long). */
pk_reg_entry *pk_reg_add(pk_reg *r, pk_reg_list *l, void *tunnel, const char *proto, int port,
                         const char *name);
void pk_reg_remove(pk_reg *r, pk_reg_list *l, pk_reg_entry *e);
/* Removes every entry of l; gone (if set) sees each one first. */
void pk_reg_remove_list(pk_reg *r, pk_reg_list *l, void (*gone)(void *ctx, const pk_reg_entry *e),
                        void *ctx);

/* The entry with exactly this key, of tunnel (NULL: of any tunnel; with
 * rotate, the tunnels sharing the key take turns). */
pk_reg_entry *pk_reg_get(pk_reg *r, const char *proto, int port, const char *name,
                         const void *tunnel, int rotate);
/* The kite that serves a request for name on port, trying protos in order,
 * as pagekite.py does (registry.c says exactly how). */
pk_reg_entry *pk_reg_route(pk_reg *r, const char *const *protos, int nprotos, int port,
                           const char *name, int rotate);

/* Every entry, in no particular order: pass NULL first, then the last one. */
const pk_reg_entry *pk_reg_next(const pk_reg *r, const pk_reg_entry *prev);

#endif

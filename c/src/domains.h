/* domains.h - the relay's --domain table: which secret signs a kite, and
 * which live kites a changed table still allows.
 *
 * A flat array of (protos, pattern, secret) entries, keyed by (protos,
 * pattern): putting an existing key replaces its secret.  Lookups follow
 * pagekite.py (GetBackendData): an exact name beats a wildcard, a longer
 * wildcard a shorter one; "proto-PORT" entries first for a kite with a port.
 * A kite remembers a fingerprint of the secret it proved; after a change it
 * keeps flying only if the table still names that same secret for it
 * (pk_domains_allows).  No sockets, no locks: the caller (api_relay.c,
 * relay.c) holds the manager's lock.  Unit-tested alone
 * (tests/c/test_domains.c).
 */
#ifndef PK_DOMAINS_H
#define PK_DOMAINS_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

typedef struct {
  char protos[128];
  char pattern[PK_NAME_MAX];
  char secret[PK_SECRET_MAX];
} pk_relay_domain;

typedef struct {
  pk_relay_domain *d;
  int n, max;
} pk_domains;

/* "*.example.com" matches one or more labels before .example.com. */
int pk_domain_match(const char *pattern, const char *name);
/* proto is one of the comma (or blank) separated list. */
int pk_domain_proto_listed(const char *list, const char *proto);

/* Adds (protos, pattern) -> secret, or replaces the secret of that key.
 * 0 added, 1 replaced, 2 there already with this secret, -1 full.
 * Arguments are checked by the caller. */
int pk_domains_put(pk_domains *t, const char *protos, const char *pattern, const char *secret);
/* Removes the entry (protos, pattern); 0, or -1 when there is none. */
int pk_domains_remove(pk_domains *t, const char *protos, const char *pattern);

/* The entry whose secret signs a kite of proto (and, when port is not 0,
 * protoport such as "http-8080", tried first) named name; NULL if none. */
const pk_relay_domain *pk_domains_find(const pk_domains *t, const char *proto,
                                       const char *protoport, int port, const char *name);

/* A fingerprint of secret (salted with the relay's own secret), so that a
 * kite can tell whether the secret it proved is still the one required. */
uint64_t pk_domains_fingerprint(const char *salt, const char *secret);
/* 1 when the table still names a secret with fingerprint fp for the kite. */
int pk_domains_allows(const pk_domains *t, const char *salt, const char *proto, int port,
                      const char *name, uint64_t fp);

#endif

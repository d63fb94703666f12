/* iplimit.h - counts of connections per source network, for fair limits.
 *
 * The relay counts the connections that have proved nothing yet (not
 * classified, or tunnels without a live kite) per source: an IPv4 address, or
 * an IPv6 /64 (one host usually holds a whole /64).  Open addressing with
 * backward-shift deletion; the table never holds more keys than the cap of
 * such connections, so it is sized once.  No sockets: unit-tested alone.
 */
#ifndef PK_IPLIMIT_H
#define PK_IPLIMIT_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

typedef struct {
  unsigned char b[16];
} pk_ipkey;

typedef struct {
  pk_ipkey key;
  uint32_t count; /* 0: empty slot */
} pk_ipslot;

typedef struct {
  pk_ipslot *slots;
  size_t cap; /* power of two */
  size_t used;
} pk_iptab;

/* Room for at least max_keys distinct sources. */
int pk_iptab_init(pk_iptab *t, size_t max_keys);
void pk_iptab_free(pk_iptab *t);
/* The key for a peer address (IPv4, IPv4-mapped IPv6, or IPv6 /64). */
pk_ipkey pk_ipkey_of(const struct sockaddr *sa);
uint32_t pk_iptab_count(const pk_iptab *t, const pk_ipkey *k);
/* Returns the new count, or 0 when the table is full. */
uint32_t pk_iptab_add(pk_iptab *t, const pk_ipkey *k);
void pk_iptab_remove(pk_iptab *t, const pk_ipkey *k);
/* The source with the most connections (count 0 when empty). */
uint32_t pk_iptab_heaviest(const pk_iptab *t, pk_ipkey *out);

#endif

/* domains.c - the relay's --domain table (domains.h). */
#include "domains.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sign.h"

int pk_domain_match(const char *pattern, const char *name) {
  if (pattern[0] == '*' && pattern[1] == '.') {
    size_t pl = strlen(pattern + 1), nl = strlen(name);
    return nl > pl && strcasecmp(name + nl - pl, pattern + 1) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

int pk_domain_proto_listed(const char *list, const char *proto) {
  size_t pl = strlen(proto);
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ') e++;
    if ((size_t)(e - p) == pl && strncasecmp(p, proto, pl) == 0) return 1;
    p = e;
  }
  return 0;
}

static pk_relay_domain *find_key(const pk_domains *t, const char *protos, const char *pattern) {
  for (int i = 0; i < t->n; i++)
    if (strcasecmp(t->d[i].protos, protos) == 0 && strcasecmp(t->d[i].pattern, pattern) == 0)
      return &t->d[i];
  return NULL;
}

int pk_domains_put(pk_domains *t, const char *protos, const char *pattern, const char *secret) {
  pk_relay_domain *d = find_key(t, protos, pattern);
  if (d && strcmp(d->secret, secret) == 0) return 2;
  int replaced = d != NULL;
  if (!d) {
    if (t->n >= t->max) return -1;
    d = &t->d[t->n++];
    snprintf(d->protos, sizeof(d->protos), "%s", protos);
    snprintf(d->pattern, sizeof(d->pattern), "%s", pattern);
    for (char *p = d->pattern; *p; p++)
      if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  }
  snprintf(d->secret, sizeof(d->secret), "%s", secret);
  return replaced;
}

int pk_domains_remove(pk_domains *t, const char *protos, const char *pattern) {
  pk_relay_domain *d = find_key(t, protos, pattern);
  if (!d) return -1;
  int i = (int)(d - t->d);
  memmove(d, d + 1, (size_t)(t->n - i - 1) * sizeof(*d));
  t->n--;
  memset(&t->d[t->n], 0, sizeof(*d)); /* no secret left behind */
  return 0;
}

/* The most specific entry for (proto, name); the order does not matter. */
static const pk_relay_domain *find_one(const pk_domains *t, const char *proto, const char *name) {
  const pk_relay_domain *best = NULL;
  size_t best_score = 0;
  for (int i = 0; i < t->n; i++) {
    const pk_relay_domain *d = &t->d[i];
    if (!pk_domain_proto_listed(d->protos, proto) || !pk_domain_match(d->pattern, name)) continue;
    size_t score = d->pattern[0] == '*' ? strlen(d->pattern) : (size_t)-1;
    if (!best || score > best_score) best = d, best_score = score;
  }
  return best;
}

const pk_relay_domain *pk_domains_find(const pk_domains *t, const char *proto,
                                       const char *protoport, int port, const char *name) {
  const pk_relay_domain *d = port && protoport ? find_one(t, protoport, name) : NULL;
  return d ? d : find_one(t, proto, name);
}

uint64_t pk_domains_fingerprint(const char *salt, const char *secret) {
  const char *parts[3] = {salt ? salt : "", ":", secret ? secret : ""};
  char hex[41];
  uint64_t v = 0;
  pk_sha1hex_parts(parts, 3, hex);
  for (int i = 0; i < 16; i++) {
    char c = hex[i];
    v = (v << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return v | 1; /* never 0: 0 is "no secret" */
}

int pk_domains_allows(const pk_domains *t, const char *salt, const char *proto, int port,
                      const char *name, uint64_t fp) {
  char protoport[48];
  snprintf(protoport, sizeof(protoport), "%s-%d", proto, port);
  const pk_relay_domain *d = pk_domains_find(t, proto, protoport, port, name);
  return d && pk_domains_fingerprint(salt, d->secret) == fp;
}

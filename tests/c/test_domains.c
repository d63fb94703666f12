/* test_domains.c - the relay's --domain table (domains.c), no sockets:
 * which secret signs a kite, replacing and removing entries, and which live
 * kites a changed table still allows (live reconfiguration). */
#include <string.h>

#include "domains.h"
#include "pk_test.h"

#define SALT "relay-own-secret"

static pk_relay_domain slots[4];

static pk_domains table(void) {
  memset(slots, 0, sizeof(slots));
  pk_domains t = {slots, 0, 4};
  return t;
}

static const char *secret_of(const pk_domains *t, const char *proto, int port, const char *name) {
  char pp[48];
  snprintf(pp, sizeof(pp), "%s-%d", proto, port);
  const pk_relay_domain *d = pk_domains_find(t, proto, pp, port, name);
  return d ? d->secret : "";
}

/* The fingerprint a kite keeps: of the secret it proved when it flew. */
static uint64_t proved(const pk_domains *t, const char *proto, int port, const char *name) {
  return pk_domains_fingerprint(SALT, secret_of(t, proto, port, name));
}

TEST(lookup_precedence) {
  pk_domains t = table();
  CHECK_INT(pk_domains_put(&t, "http,https", "*.example.com", "wide"), 0);
  CHECK_INT(pk_domains_put(&t, "http", "a.example.com", "exact"), 0);
  CHECK_INT(pk_domains_put(&t, "http-8080", "*.example.com", "port"), 0);
  CHECK(strcmp(secret_of(&t, "http", 0, "A.Example.com"), "exact") == 0);
  CHECK(strcmp(secret_of(&t, "http", 0, "b.example.com"), "wide") == 0);
  CHECK(strcmp(secret_of(&t, "https", 0, "a.example.com"), "wide") == 0);
  CHECK(strcmp(secret_of(&t, "http", 8080, "b.example.com"), "port") == 0);
  CHECK(strcmp(secret_of(&t, "raw", 22, "b.example.com"), "") == 0);
  CHECK(strcmp(secret_of(&t, "http", 0, "example.com"), "") == 0); /* not in *.example.com */
  CHECK_INT(pk_domains_put(&t, "raw", "x.test", "x"), 0);
  CHECK_INT(pk_domains_put(&t, "raw", "y.test", "y"), -1); /* full (4) */
  CHECK_INT(t.n, 4);
}

TEST(replace_and_remove) {
  pk_domains t = table();
  CHECK_INT(pk_domains_put(&t, "http", "*.example.com", "one"), 0);
  CHECK_INT(pk_domains_put(&t, "http", "*.EXAMPLE.com", "two"), 1); /* same key: replaced */
  CHECK_INT(pk_domains_put(&t, "http", "*.example.com", "two"), 2); /* and again: unchanged */
  CHECK_INT(t.n, 1);
  CHECK(strcmp(secret_of(&t, "http", 0, "a.example.com"), "two") == 0);
  CHECK_INT(pk_domains_put(&t, "https", "*.example.com", "three"), 0); /* other protos: new */
  CHECK_INT(t.n, 2);
  CHECK_INT(pk_domains_remove(&t, "http", "*.nowhere.com"), -1);
  CHECK_INT(pk_domains_remove(&t, "http,https", "*.example.com"), -1); /* protos as added */
  CHECK_INT(pk_domains_remove(&t, "http", "*.example.com"), 0);
  CHECK_INT(t.n, 1);
  CHECK(strcmp(secret_of(&t, "http", 0, "a.example.com"), "") == 0);
  CHECK(strcmp(secret_of(&t, "https", 0, "a.example.com"), "three") == 0);
  CHECK(slots[1].secret[0] == '\0'); /* the freed slot keeps no secret */
}

/* Which kites of a tunnel survive a change of the table. */
TEST(kites_surviving_a_change) {
  pk_domains t = table();
  pk_domains_put(&t, "http", "a.example.com", "sa");
  pk_domains_put(&t, "http", "b.example.com", "sb");
  pk_domains_put(&t, "http", "*.wide.com", "sw");
  uint64_t fa = proved(&t, "http", 0, "a.example.com");
  uint64_t fb = proved(&t, "http", 0, "b.example.com");
  uint64_t fw = proved(&t, "http", 0, "x.wide.com");
  CHECK(fa != fb && fa != 0 && fb != 0);
  /* Nothing changed: all stay. */
  CHECK(pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fa));
  CHECK(pk_domains_allows(&t, SALT, "http", 0, "x.wide.com", fw));
  /* A kite claiming another kite's fingerprint does not pass. */
  CHECK(!pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fb));
  /* b removed: b goes, a stays. */
  pk_domains_remove(&t, "http", "b.example.com");
  CHECK(!pk_domains_allows(&t, SALT, "http", 0, "b.example.com", fb));
  CHECK(pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fa));
  /* a wider pattern with the same secret keeps a kite whose exact entry goes */
  pk_domains_put(&t, "http", "*.example.com", "sa");
  pk_domains_remove(&t, "http", "a.example.com");
  CHECK(pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fa));
  /* ... a wider one with another secret does not */
  pk_domains_put(&t, "http", "*.example.com", "other");
  CHECK(!pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fa));
  /* secret rotated for the wildcard: its kites go */
  pk_domains_put(&t, "http", "*.wide.com", "sw2");
  CHECK(!pk_domains_allows(&t, SALT, "http", 0, "x.wide.com", fw));
  /* another proto of the same name is not allowed by an http entry */
  CHECK(!pk_domains_allows(&t, SALT, "raw", 22, "x.wide.com", fw));
  /* a different salt (another relay) gives other fingerprints */
  CHECK(pk_domains_fingerprint("other-relay", "sa") != pk_domains_fingerprint(SALT, "sa"));
}

TEST(port_specific_entries) {
  pk_domains t = table();
  pk_domains_put(&t, "http-8080", "a.example.com", "p8080");
  pk_domains_put(&t, "http", "a.example.com", "plain");
  uint64_t f8080 = proved(&t, "http", 8080, "a.example.com");
  uint64_t fplain = proved(&t, "http", 0, "a.example.com");
  CHECK(pk_domains_allows(&t, SALT, "http", 8080, "a.example.com", f8080));
  CHECK(pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fplain));
  pk_domains_remove(&t, "http-8080", "a.example.com");
  /* the port kite falls back to the plain entry: another secret, so it goes */
  CHECK(!pk_domains_allows(&t, SALT, "http", 8080, "a.example.com", f8080));
  CHECK(pk_domains_allows(&t, SALT, "http", 0, "a.example.com", fplain));
}

int main(void) {
  RUN(lookup_precedence);
  RUN(replace_and_remove);
  RUN(kites_surviving_a_change);
  RUN(port_specific_entries);
  return TEST_DONE();
}

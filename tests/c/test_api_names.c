/* test_api_names.c - the service helpers build libpagekite's relay names and
 * dynamic DNS URLs, and pk_ddns_url() signs updates the way relays check them.
 *
 * The relay names do not resolve here (no network): with
 * PK_WITH_DYNAMIC_FE_LIST (or the defaults, which include it) they are kept
 * with no addresses and DNS updates on; without it they are dropped, as in
 * libpagekite.  tests/e2e/test_service_tls.py shows both over real sockets.
 */
#include <stdlib.h>

#include "test_api_util.h"

#define MGR(h) ((pk_mgr *)(void *)(h))

/* Index of the frontend named host, or -1. */
static int fe_index(pagekite_mgr h, const char *host) {
  pk_mgr *m = MGR(h);
  for (int i = 0; i < m->nfes; i++)
    if (strcmp(m->fes[i].host, host) == 0) return i;
  return -1;
}

/* The frontend is present once, on port 443, with DNS updates on. */
static void check_fe(pagekite_mgr h, const char *host) {
  pk_mgr *m = MGR(h);
  int i = fe_index(h, host), n = 0;
  CHECK(i >= 0);
  if (i < 0) {
    fprintf(stderr, "  missing frontend %s\n", host);
    return;
  }
  for (int j = 0; j < m->nfes; j++) n += strcmp(m->fes[j].host, host) == 0;
  CHECK_INT(n, 1);
  CHECK_INT(m->fes[i].port, 443);
  CHECK(m->fes[i].update_dns != 0);
}

TEST(pagekitenet_both_families) {
  pagekite_mgr h = pagekite_init_pagekitenet(
      "t", 2, 16, PK_WITH_IPV4 | PK_WITH_IPV6 | PK_WITH_DYNAMIC_FE_LIST, -1);
  CHECK(h != NULL);
  if (!h) return;
  pk_mgr *m = MGR(h);
  CHECK(strcmp(m->dyndns_url, "http://up.pagekite.net/?hostname=%s&myip=%s&sign=%s") == 0);
  CHECK(strcmp(m->dyndns_url, PAGEKITE_NET_DDNS) == 0);
  CHECK_INT(m->nfes, 2);
  check_fe(h, "fe4_091c.b5p.us");
  check_fe(h, "fe6_091c.b5p.us");
  CHECK_INT(m->max_frontends, PAGEKITE_NET_FE_MAX);
  CHECK(m->flags & PK_WITH_SSL);
  CHECK(!(m->flags & PK_AS_FRONTEND_RELAY));
  CHECK_INT(pagekite_free(h), 0);
}

TEST(pagekitenet_ipv4_only) {
  pagekite_mgr h = pagekite_init_pagekitenet("t", 2, 16, PK_WITH_IPV4 | PK_WITH_DYNAMIC_FE_LIST, -1);
  CHECK(h != NULL);
  if (!h) return;
  CHECK_INT(MGR(h)->nfes, 1);
  check_fe(h, "fe4_091c.b5p.us");
  CHECK_INT(fe_index(h, "fe6_091c.b5p.us"), -1);
  CHECK_INT(pagekite_free(h), 0);
}

TEST(pagekitenet_without_frontends) {
  pagekite_mgr h = pagekite_init_pagekitenet("t", 2, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1);
  CHECK(h != NULL);
  if (!h) return;
  CHECK_INT(MGR(h)->nfes, 0);
  /* Unresolvable here: 0 addresses, but the names are kept. */
  CHECK_INT(pagekite_add_service_frontends(h, PK_WITH_IPV6 | PK_WITH_DYNAMIC_FE_LIST), 0);
  CHECK_INT(MGR(h)->nfes, 1);
  check_fe(h, "fe6_091c.b5p.us");
  CHECK_INT(pagekite_add_service_frontends(h, PK_WITH_IPV4 | PK_WITH_DYNAMIC_FE_LIST), 0);
  CHECK_INT(MGR(h)->nfes, 2);
  check_fe(h, "fe4_091c.b5p.us");
  CHECK_INT(pagekite_free(h), 0);
}

TEST(whitelabel_names) {
  pagekite_mgr h = pagekite_init_whitelabel(
      "t", 2, 16, PK_WITH_IPV4 | PK_WITH_IPV6 | PK_WITH_DYNAMIC_FE_LIST, -1, "example.org");
  CHECK(h != NULL);
  if (!h) return;
  pk_mgr *m = MGR(h);
  CHECK(strcmp(m->dyndns_url, "http://dnsup.example.org/?hostname=%s&myip=%s&sign=%s") == 0);
  CHECK_INT(m->nfes, 2);
  check_fe(h, "fe4_091c.example.org");
  check_fe(h, "fe6_091c.example.org");
  CHECK(m->flags & PK_WITH_SSL);
  CHECK_INT(pagekite_free(h), 0);

  h = pagekite_init_whitelabel("t", 2, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1, "example.org");
  CHECK(h != NULL);
  if (!h) return;
  CHECK_INT(MGR(h)->nfes, 0);
  CHECK_INT(pagekite_add_whitelabel_frontends(h, 0, "example.org"), 0); /* 0: the defaults */
  CHECK_INT(MGR(h)->nfes, 2);
  check_fe(h, "fe4_091c.example.org");
  check_fe(h, "fe6_091c.example.org");
  pk_fail(PK_OK, "%s", "");
  CHECK_INT(pagekite_add_whitelabel_frontends(h, PK_WITH_IPV4, NULL), -1);
  CHECK(pagekite_last_error()[0] != '\0');
  CHECK_INT(pagekite_add_whitelabel_frontends(h, PK_WITH_IPV4, ""), -1);
  CHECK_INT(pagekite_free(h), 0);
}

/* Without PK_WITH_DYNAMIC_FE_LIST a name that resolves to nothing is
 * dropped (libpagekite: add_null_records = flags & PK_WITH_DYNAMIC_FE_LIST). */
TEST(static_list_drops_unresolved_names) {
  pagekite_mgr h = pagekite_init_pagekitenet("t", 2, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1);
  CHECK(h != NULL);
  if (!h) return;
  CHECK_INT(pagekite_add_service_frontends(h, PK_WITH_IPV4 | PK_WITH_IPV6), 0);
  CHECK_INT(MGR(h)->nfes, 0);
  CHECK_INT(pagekite_add_whitelabel_frontends(h, PK_WITH_IPV4 | PK_WITH_SSL, "example.org"), 0);
  CHECK_INT(MGR(h)->nfes, 0);
  CHECK_INT(pagekite_free(h), 0);
  h = pagekite_init_pagekitenet("t", 2, 16, PK_WITH_IPV4 | PK_WITH_SSL, -1);
  CHECK(h != NULL);
  if (h) CHECK_INT(MGR(h)->nfes, 0);
  pagekite_free(h);
}

/* PK_WITH_DEFAULTS and flags 0 include PK_WITH_DYNAMIC_FE_LIST. */
TEST(defaults_keep_names) {
  int cases[] = {0, PK_WITH_DEFAULTS};
  for (int i = 0; i < 2; i++) {
    pagekite_mgr h = pagekite_init_pagekitenet("t", 2, 16, cases[i], -1);
    CHECK(h != NULL);
    if (!h) continue;
    CHECK_INT(MGR(h)->nfes, 2);
    check_fe(h, "fe4_091c.b5p.us");
    check_fe(h, "fe6_091c.b5p.us");
    pagekite_free(h);
  }
}

static int has_certname(pagekite_mgr h, const char *name) {
  for (int i = 0; i < MGR(h)->ncertnames; i++)
    if (strcmp(MGR(h)->certnames[i], name) == 0) return 1;
  return 0;
}

/* White label: the service's certificate names too, unless
 * PK_WITH_FRONTEND_SNI ("Adding multiple names disables SNI"). */
TEST(whitelabel_frontend_sni_names) {
  pagekite_mgr h = pagekite_init_whitelabel("t", 2, 16, 0, -1, "example.org");
  CHECK(h != NULL);
  if (!h) return;
  CHECK(has_certname(h, "fe.example.org") && has_certname(h, "example.org"));
  CHECK(has_certname(h, "pagekite.net") && has_certname(h, "frontends.b5p.us"));
  CHECK_INT(MGR(h)->relay_sni[0], 0);
  pagekite_free(h);
  h = pagekite_init_whitelabel("t", 2, 16, PK_WITH_DEFAULTS | PK_WITH_FRONTEND_SNI, -1,
                               "example.org");
  CHECK(h != NULL);
  if (!h) return;
  CHECK(has_certname(h, "fe.example.org") && has_certname(h, "example.org"));
  CHECK(!has_certname(h, "pagekite.net") && !has_certname(h, "frontends.b5p.us"));
  CHECK(strcmp(MGR(h)->relay_sni, "fe.example.org") == 0);
  CHECK_INT(MGR(h)->nfes, 2);
  pagekite_free(h);
}

/* Pulls "sign=<...>" out of url; returns its length. */
static size_t url_param(const char *url, const char *key, char *out, size_t n) {
  const char *p = strstr(url, key);
  out[0] = 0;
  if (!p) return 0;
  p += strlen(key);
  size_t len = strcspn(p, "&");
  if (len >= n) len = n - 1;
  memcpy(out, p, len);
  out[len] = 0;
  return len;
}

TEST(ddns_url_signed) {
  pagekite_mgr h = pagekite_init_pagekitenet("t", 2, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1);
  CHECK(h != NULL);
  if (!h) return;
  pk_mgr *m = MGR(h);
  CHECK_INT(pagekite_add_kite(h, "http", "Demo.Example.ORG", 0, "sEcret", "127.0.0.1", 8080), 0);
  CHECK_INT(m->nkites, 1);
  if (m->nkites != 1) {
    pagekite_free(h);
    return;
  }
  char url[1024], sig[128], v[256];
  CHECK_INT(pk_ddns_url(m, &m->kites[0], "192.0.2.7", url, sizeof(url)), 0);
  const char *prefix = "http://up.pagekite.net/?hostname=demo.example.org&myip=192.0.2.7&sign=";
  CHECK(strncmp(url, prefix, strlen(prefix)) == 0);
  CHECK_INT(url_param(url, "hostname=", v, sizeof(v)), strlen("demo.example.org"));
  CHECK(strcmp(v, "demo.example.org") == 0);
  CHECK(url_param(url, "myip=", v, sizeof(v)) > 0 && strcmp(v, "192.0.2.7") == 0);
  /* signToken(length=100), as pagekite.py and libpagekite sign updates: a
   * salt and the whole SHA-1, 48 characters. */
  CHECK_INT(url_param(url, "sign=", sig, sizeof(sig)), PK_LONG_SIGN_LEN);
  CHECK(ddns_sig_ok(sig, "sEcret", "demo.example.org:192.0.2.7"));
  /* The signature binds secret, name and address. */
  CHECK(!ddns_sig_ok(sig, "other", "demo.example.org:192.0.2.7"));
  CHECK(!ddns_sig_ok(sig, "sEcret", "demo.example.org:192.0.2.8"));
  CHECK(!ddns_sig_ok(sig, "sEcret", "evil.example.org:192.0.2.7"));

  /* Two calls use fresh random salts, both valid. */
  char url2[1024], sig2[128];
  CHECK_INT(pk_ddns_url(m, &m->kites[0], "192.0.2.7", url2, sizeof(url2)), 0);
  CHECK_INT(url_param(url2, "sign=", sig2, sizeof(sig2)), PK_LONG_SIGN_LEN);
  CHECK(strcmp(sig, sig2) != 0);
  CHECK(ddns_sig_ok(sig2, "sEcret", "demo.example.org:192.0.2.7"));

  /* A buffer that cannot hold the URL is an error, not a truncated URL. */
  char small[40];
  CHECK_INT(pk_ddns_url(m, &m->kites[0], "192.0.2.7", small, sizeof(small)), -1);
  CHECK_INT(pagekite_free(h), 0);
}

TEST(ddns_url_whitelabel_multi_ip) {
  pagekite_mgr h =
      pagekite_init_whitelabel("t", 1, 16, PK_WITHOUT_SERVICE_FRONTENDS, -1, "example.org");
  CHECK(h != NULL);
  if (!h) return;
  pk_mgr *m = MGR(h);
  CHECK_INT(pagekite_add_kite(h, "https", "k.example.org", 0, "pw", "127.0.0.1", 8443), 0);
  if (m->nkites != 1) {
    pagekite_free(h);
    return;
  }
  char url[1024], sig[128];
  const char *ips = "192.0.2.1,2001:db8::1";
  CHECK_INT(pk_ddns_url(m, &m->kites[0], ips, url, sizeof(url)), 0);
  const char *prefix = "http://dnsup.example.org/?hostname=k.example.org&myip=192.0.2.1,2001:db8::1&sign=";
  CHECK(strncmp(url, prefix, strlen(prefix)) == 0);
  CHECK_INT(url_param(url, "sign=", sig, sizeof(sig)), PK_LONG_SIGN_LEN);
  CHECK(ddns_sig_ok(sig, "pw", "k.example.org:192.0.2.1,2001:db8::1"));
  CHECK_INT(pagekite_free(h), 0);
}

int main(void) {
  alarm(20);
  RUN(pagekitenet_both_families);
  RUN(pagekitenet_ipv4_only);
  RUN(pagekitenet_without_frontends);
  RUN(whitelabel_names);
  RUN(static_list_drops_unresolved_names);
  RUN(defaults_keep_names);
  RUN(whitelabel_frontend_sni_names);
  RUN(ddns_url_signed);
  RUN(ddns_url_whitelabel_multi_ip);
  return TEST_DONE();
}

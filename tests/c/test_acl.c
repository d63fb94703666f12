/* test_acl.c - client/tunnel ACL rules and IP rate limits (acl.c), no sockets. */
#include <stdlib.h>

#include "acl.h"
#include "pk_test.h"

static pk_acl acl_of(const char *const *rules) {
  pk_acl a = {0};
  char why[256];
  for (; *rules; rules++) CHECK_INT(pk_acl_add(&a, *rules, why, sizeof(why)), 0);
  return a;
}

static int add_fails(const char *rule, const char *want) {
  pk_acl a = {0};
  char why[256] = "";
  int rc = pk_acl_add(&a, rule, why, sizeof(why));
  int ok = rc == -1 && a.n == 0 && strstr(why, want) != NULL;
  if (!ok) fprintf(stderr, "rule %s: rc %d why '%s' (want '%s')\n", rule, rc, why, want);
  pk_acl_free(&a);
  return ok;
}

TEST(no_rules_allow_all) {
  pk_acl a = {0};
  int r = 7;
  CHECK_INT(pk_acl_check(&a, "10.0.0.1", &r), 1);
  CHECK_INT(r, -1);
}

TEST(first_match_decides_and_default_refuses) {
  const char *rules[] = {"deny:10\\.0\\.0\\.66", "allow:10\\..*", "allow:localhost", NULL};
  pk_acl a = acl_of(rules);
  int r;
  CHECK_INT(pk_acl_check(&a, "10.0.0.66", &r), 0);
  CHECK_INT(r, 0);
  CHECK_INT(pk_acl_check(&a, "10.0.0.6", &r), 1);
  CHECK_INT(r, 1);
  CHECK_INT(pk_acl_check(&a, "127.0.0.1", &r), 1);
  CHECK_INT(r, 2);
  CHECK_INT(pk_acl_check(&a, "::1", NULL), 1);
  CHECK_INT(pk_acl_check(&a, "::ffff:127.0.0.1", NULL), 1);
  CHECK_INT(pk_acl_check(&a, "192.168.1.1", &r), 0); /* no rule matched: refused */
  CHECK_INT(r, -1);
  pk_acl_free(&a);
}

TEST(whole_address_is_matched) {
  const char *rules[] = {"allow:10\\.0\\.0\\.1", NULL};
  pk_acl a = acl_of(rules);
  CHECK_INT(pk_acl_check(&a, "10.0.0.1", NULL), 1);
  CHECK_INT(pk_acl_check(&a, "10.0.0.12", NULL), 0);   /* no prefix match */
  CHECK_INT(pk_acl_check(&a, "110.0.0.1", NULL), 0);   /* no infix match */
  CHECK_INT(pk_acl_check(&a, "::ffff:10.0.0.1", NULL), 1); /* mapped form */
  pk_acl_free(&a);
}

TEST(any_and_policy_case) {
  const char *rules[] = {"DENY:any", NULL};
  pk_acl a = acl_of(rules);
  CHECK_INT(pk_acl_check(&a, "127.0.0.1", NULL), 0);
  CHECK_INT(pk_acl_check(&a, "2001:db8::1", NULL), 0);
  pk_acl_free(&a);
}

TEST(bad_rules_are_refused_with_a_reason) {
  CHECK(add_fails("10\\..*", "not allow:REGEXP"));
  CHECK(add_fails("permit:10\\..*", "policy is not allow or deny"));
  CHECK(add_fails("allow:", "regexp is empty"));
  CHECK(add_fails("allow:10\\.(0", "bad regexp"));
  CHECK(add_fails("deny:10\\.\\d+\\..*", "Python regexp syntax"));
  CHECK(add_fails("deny:(?i)10\\..*", "Python regexp syntax"));
  CHECK(add_fails("deny:10\\..*?", "Python regexp syntax"));
  CHECK(add_fails(NULL, "no rule"));
}

TEST(rule_limit) {
  pk_acl a = {0};
  char why[128];
  for (int i = 0; i < PK_ACL_MAX_RULES; i++) CHECK_INT(pk_acl_add(&a, "deny:1", why, sizeof(why)), 0);
  CHECK_INT(pk_acl_add(&a, "deny:1", why, sizeof(why)), -1);
  CHECK(strstr(why, "too many") != NULL);
  pk_acl_free(&a);
}

TEST(ratelimit_parse) {
  char name[64], why[256];
  int ips = 0, secs = 0;
  CHECK_INT(pk_ratelimit_parse("5/3600", name, sizeof(name), &ips, &secs, why, sizeof(why)), 0);
  CHECK(strcmp(name, "*") == 0);
  CHECK_INT(ips, 5);
  CHECK_INT(secs, 3600);
  CHECK_INT(pk_ratelimit_parse("Foo.Example.COM:2/10", name, sizeof(name), &ips, &secs, why,
                               sizeof(why)), 0);
  CHECK(strcmp(name, "foo.example.com") == 0);
  CHECK_INT(ips, 2);
  const char *bad[] = {"", "5", "5/", "/5", "0/10", "5/0", "x/10", "5/10s", "a:b:5/10", ":5/10",
                       "a b:5/10", "-1/10", "100001/10"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why[0] = 0;
    CHECK_INT(pk_ratelimit_parse(bad[i], name, sizeof(name), &ips, &secs, why, sizeof(why)), -1);
    CHECK(why[0] != 0);
  }
}

TEST(ratelimit_rule_for) {
  const char *names[] = {"*", "example.com", "a.b.example.com"};
  CHECK_INT(pk_ratelimit_rule_for(names, 3, "a.b.example.com"), 2);
  CHECK_INT(pk_ratelimit_rule_for(names, 3, "x.a.b.example.com"), 2);
  CHECK_INT(pk_ratelimit_rule_for(names, 3, "b.example.com"), 1);
  CHECK_INT(pk_ratelimit_rule_for(names, 3, "other.net"), 0);
  const char *tld[] = {"com"};
  CHECK_INT(pk_ratelimit_rule_for(tld, 1, "example.com"), -1); /* never a bare TLD */
  CHECK_INT(pk_ratelimit_rule_for(names + 1, 2, "other.net"), -1);
}

TEST(ratelimit_window) {
  pk_ipwindow r = {0};
  CHECK_INT(pk_ratelimit_admit(&r, 1, 0), 1); /* no limit set */
  CHECK_INT(pk_ratelimit_set(&r, 2, 10), 0);
  CHECK_INT(pk_ratelimit_admit(&r, 1, 1000), 1);
  CHECK_INT(pk_ratelimit_admit(&r, 2, 2000), 1);
  CHECK_INT(pk_ratelimit_admit(&r, 3, 3000), 0);  /* a third client in the window */
  CHECK_INT(pk_ratelimit_admit(&r, 1, 4000), 1);  /* known ones come back */
  CHECK_INT(pk_ratelimit_admit(&r, 3, 12500), 1); /* 2 expired (seen at 2000) */
  CHECK_INT(pk_ratelimit_admit(&r, 4, 13000), 0); /* 1 (4000) and 3 still in */
  CHECK_INT(pk_ratelimit_admit(&r, 4, 14001), 1);
  /* The strictest limit wins; a looser one changes nothing. */
  CHECK_INT(pk_ratelimit_set(&r, 50, 10), 0);
  CHECK_INT(r.ips, 2);
  CHECK_INT(pk_ratelimit_set(&r, 1, 10), 0);
  CHECK_INT(r.ips, 1);
  CHECK_INT(pk_ratelimit_set(&r, 8, 1000), 0); /* lower rate, more IPs: grows */
  CHECK_INT(r.ips, 8);
  CHECK_INT(r.n, 1); /* one client kept from before */
  for (uint64_t k = 100; k < 107; k++) CHECK_INT(pk_ratelimit_admit(&r, k, 20000), 1);
  CHECK_INT(pk_ratelimit_admit(&r, 200, 20000), 0);
  pk_ratelimit_free(&r);
}

TEST(ratelimit_key) {
  const char *a[] = {"10.0.0.1", "curl/8", ""};
  const char *b[] = {"10.0.0.1", "Firefox", ""};
  const char *c[] = {"10.0.0.1curl/8", "", ""};
  CHECK(pk_ratelimit_key(a, 3) != pk_ratelimit_key(b, 3));
  CHECK(pk_ratelimit_key(a, 3) != pk_ratelimit_key(c, 3));
  CHECK(pk_ratelimit_key(a, 3) == pk_ratelimit_key(a, 3));
}

static pk_kite_rule krule(const char *name, int pport, const char *rule) {
  pk_kite_rule r;
  char why[256] = "";
  CHECK_INT(pk_kite_rule_parse(rule, &r, why, sizeof(why)), 0);
  snprintf(r.name, sizeof(r.name), "%s", name);
  r.pport = pport;
  return r;
}

static const char *head_with(const char *auth, char *buf, size_t n) {
  snprintf(buf, n, "GET / HTTP/1.1\r\nHost: k.test\r\n%s%s%s\r\n", auth ? "Authorization: " : "",
           auth ? auth : "", auth ? "\r\n" : "");
  return buf;
}

TEST(kite_rule_parse) {
  pk_kite_rule r;
  char why[256];
  CHECK_INT(pk_kite_rule_parse("+ip/10.1.2.3", &r, why, sizeof(why)), 0);
  CHECK_INT(r.kind, PK_KA_IP);
  CHECK(strcmp(r.ip, "10.1.2.3") == 0);
  CHECK_INT(pk_kite_rule_parse("password/bob=s3:cr=et", &r, why, sizeof(why)), 0);
  CHECK_INT(r.kind, PK_KA_PASSWORD);
  CHECK(strcmp(r.user, "bob") == 0 && strcmp(r.pass, "s3:cr=et") == 0);
  const char *bad[] = {"ip/", "ip/10.0.0.0/8", "ip/host.name", "password/bob", "password/=pw",
                       "password/bob=", "password/a:b=pw", "user/bob=pw", "+insecure", ""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why[0] = 0;
    CHECK_INT(pk_kite_rule_parse(bad[i], &r, why, sizeof(why)), -1);
    CHECK(why[0] != 0);
  }
  /* A refused password/ rule is named without its password (hostile17):
   * the message reaches pagekite_last_error() and logs. */
  char longpw[300];
  memset(longpw, 'P', sizeof(longpw) - 1);
  longpw[sizeof(longpw) - 1] = 0;
  char rule[400];
  snprintf(rule, sizeof(rule), "password/bob=%s", longpw);
  const char *leaky[] = {"password/a:b=Sekrit9", "+password/bob=Sekrit9\x01", rule,
                         "+pasword/bob=Sekrit9", "+bob=Sekrit9"};
  for (size_t i = 0; i < sizeof(leaky) / sizeof(leaky[0]); i++) {
    why[0] = 0;
    CHECK_INT(pk_kite_rule_parse(leaky[i], &r, why, sizeof(why)), -1);
    CHECK(why[0] != 0 && strstr(why, "Sekrit9") == NULL && strstr(why, "PPPPPPPP") == NULL);
  }
}

TEST(kite_ip_rules) {
  pk_kite_rule rules[] = {krule("k.test", 0, "ip/10.1.2.3"), krule("k.test", 0, "ip/192.168.7"),
                          krule("other.test", 0, "ip/10.9.9.9")};
  CHECK_INT(pk_kite_access_check(rules, 3, "k.test", 80, "10.1.2.3", 1, NULL, 0), PK_KA_OK);
  CHECK_INT(pk_kite_access_check(rules, 3, "k.test", 80, "::ffff:10.1.2.3", 1, NULL, 0), PK_KA_OK);
  CHECK_INT(pk_kite_access_check(rules, 3, "k.test", 80, "192.168.7.200", 0, NULL, 0), PK_KA_OK);
  CHECK_INT(pk_kite_access_check(rules, 3, "k.test", 80, "10.1.2.4", 1, NULL, 0), PK_KA_IP_DENIED);
  CHECK_INT(pk_kite_access_check(rules, 3, "k.test", 80, "192.168.70.1", 1, NULL, 0),
            PK_KA_IP_DENIED);
  CHECK_INT(pk_kite_access_check(rules, 3, "k.test", 80, "", 1, NULL, 0), PK_KA_IP_DENIED);
  CHECK_INT(pk_kite_access_check(rules, 3, "K.TEST", 80, "10.9.9.9", 1, NULL, 0), PK_KA_IP_DENIED);
  CHECK_INT(pk_kite_access_check(rules, 3, "free.test", 80, "10.9.9.9", 1, NULL, 0), PK_KA_OK);
}

TEST(kite_basic_auth) {
  pk_kite_rule rules[] = {krule("k.test", 0, "password/alice=secretpw"),
                          krule("k.test", 0, "password/bob=x:y")};
  char h[512];
  /* alice:secretpw, bob:x:y, alice:wrong, alice:secretpwX */
  const char *good1 = "Basic YWxpY2U6c2VjcmV0cHc=", *good2 = "basic  Ym9iOng6eQ==";
  const char *bad[] = {NULL, "Basic YWxpY2U6d3Jvbmc=", "Basic YWxpY2U6c2VjcmV0cHdY",
                       "Bearer YWxpY2U6c2VjcmV0cHc=", "Basic !!!", "Basic YWxpY2U=",
                       "Basic Ym9iOnNlY3JldHB3" /* bob:secretpw */};
  head_with(good1, h, sizeof(h));
  CHECK_INT(pk_kite_access_check(rules, 2, "k.test", 80, "1.2.3.4", 1, h, strlen(h)), PK_KA_OK);
  head_with(good2, h, sizeof(h));
  CHECK_INT(pk_kite_access_check(rules, 2, "k.test", 80, "1.2.3.4", 1, h, strlen(h)), PK_KA_OK);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    head_with(bad[i], h, sizeof(h));
    CHECK_INT(pk_kite_access_check(rules, 2, "k.test", 80, "1.2.3.4", 1, h, strlen(h)),
              PK_KA_AUTH_NEEDED);
  }
  /* Not HTTP, or no complete head: refused. */
  head_with(good1, h, sizeof(h));
  CHECK_INT(pk_kite_access_check(rules, 2, "k.test", 80, "1.2.3.4", 0, h, strlen(h)),
            PK_KA_AUTH_NEEDED);
  CHECK_INT(pk_kite_access_check(rules, 2, "k.test", 80, "1.2.3.4", 1, h, 20), PK_KA_AUTH_NEEDED);
  /* Port-specific rules. */
  pk_kite_rule p8080[] = {krule("k.test", 8080, "password/alice=pw")};
  CHECK_INT(pk_kite_access_check(p8080, 1, "k.test", 80, "1.2.3.4", 1, NULL, 0), PK_KA_OK);
  CHECK_INT(pk_kite_access_check(p8080, 1, "k.test", 8080, "1.2.3.4", 1, NULL, 0),
            PK_KA_AUTH_NEEDED);
}

int main(void) {
  RUN(no_rules_allow_all);
  RUN(first_match_decides_and_default_refuses);
  RUN(whole_address_is_matched);
  RUN(any_and_policy_case);
  RUN(bad_rules_are_refused_with_a_reason);
  RUN(rule_limit);
  RUN(ratelimit_parse);
  RUN(ratelimit_rule_for);
  RUN(ratelimit_window);
  RUN(ratelimit_key);
  RUN(kite_rule_parse);
  RUN(kite_ip_rules);
  RUN(kite_basic_auth);
  return TEST_DONE();
}

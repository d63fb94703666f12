/* test_authdns.c - pagekite.py's --authdomain scheme (authdns.c), no
 * sockets: option splitting, which rule covers a kite, the name resolved,
 * answers decoded, verdicts and the quota headers.  authdns_vectors.py
 * checks the same functions against pagekite.py's own code. */
#include <string.h>

#include "authdns.h"
#include "pk_test.h"

TEST(split_option) {
  char kd[64], t[128];
  CHECK_INT(pk_authdomain_split("auth.example.net", kd, sizeof(kd), t, sizeof(t)), 0);
  CHECK(strcmp(kd, "") == 0 && strcmp(t, "auth.example.net") == 0);
  CHECK_INT(pk_authdomain_split("Kites.COM:/usr/local/bin/app", kd, sizeof(kd), t, sizeof(t)), 0);
  CHECK(strcmp(kd, "kites.com") == 0 && strcmp(t, "/usr/local/bin/app") == 0);
  CHECK(pk_authdomain_is_app(t));
  CHECK(!pk_authdomain_is_app("auth.example.net"));
  CHECK_INT(pk_authdomain_split("a:b:c", kd, sizeof(kd), t, sizeof(t)), -1);
  CHECK_INT(pk_authdomain_split(":b", kd, sizeof(kd), t, sizeof(t)), -1);
  CHECK_INT(pk_authdomain_split("a:", kd, sizeof(kd), t, sizeof(t)), -1);
  CHECK_INT(pk_authdomain_split("", kd, sizeof(kd), t, sizeof(t)), -1);
  CHECK_INT(pk_authdomain_split("x.com:waytoolongforthisbuffer", kd, sizeof(kd), t, 8), -1);
}

TEST(select_rule) {
  pk_authdomain_rule r[] = {{"example.com", "a.net"},
                            {"deep.example.com", "b.net"},
                            {"other.org", "/bin/app"}};
  CHECK(strcmp(pk_authdomain_select(r, 3, "d.net", "x.example.com"), "a.net") == 0);
  CHECK(strcmp(pk_authdomain_select(r, 3, "d.net", "x.deep.example.com"), "b.net") == 0);
  /* the kite domain itself is not covered by its rule, as in pagekite.py */
  CHECK(strcmp(pk_authdomain_select(r, 3, "d.net", "example.com"), "d.net") == 0);
  CHECK(strcmp(pk_authdomain_select(r, 3, "d.net", "notexample.com"), "d.net") == 0);
  CHECK(strcmp(pk_authdomain_select(r, 3, NULL, "a.other.org"), "/bin/app") == 0);
  CHECK(pk_authdomain_select(r, 3, NULL, "a.nowhere.org") == NULL);
  CHECK(pk_authdomain_select(NULL, 0, NULL, "a.nowhere.org") == NULL);
}

TEST(query_name) {
  char q[PK_AUTHDNS_NAME_MAX + 1];
  CHECK_INT(pk_authdns_query("s", "t", "g", "http-8080", "*.a.com", "auth.net", q, sizeof(q)), 0);
  CHECK(strcmp(q, "s.t.g.http-8080._any_.a.com.auth.net.") == 0);
  /* a suffix given with its final dot is not doubled */
  CHECK_INT(pk_authdns_query("s", "t", "g", "raw-22", "b.com", "auth.net.", q, sizeof(q)), 0);
  CHECK(strcmp(q, "s.t.g.raw-22.b.com.auth.net.") == 0);
  /* a label of 64 characters, an empty label, or too long in all: refused */
  char big[80];
  memset(big, 'x', 64);
  big[64] = 0;
  CHECK_INT(pk_authdns_query(big, "t", "g", "http", "b.com", "auth.net", q, sizeof(q)), -1);
  CHECK_INT(pk_authdns_query("s", "t", "g", "http", "b..com", "auth.net", q, sizeof(q)), -1);
  CHECK_INT(pk_authdns_query("", "t", "g", "http", "b.com", "auth.net", q, sizeof(q)), -1);
  char name[200];
  memset(name, 0, sizeof(name));
  for (int i = 0; i < 6; i++) memcpy(name + i * 31, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.", 31);
  memcpy(name + 6 * 31, "com", 3);
  CHECK_INT(pk_authdns_query("s", "t", "g", "http", name, "auth.net", q, sizeof(q)), 0);
  char tok[40];
  memset(tok, 'b', 36);
  tok[36] = 0;
  CHECK_INT(pk_authdns_query(tok, tok, tok, "http", name, "auth.net", q, sizeof(q)), -1);
  CHECK_INT(pk_authdns_query("s", "t", "g", "http", "b.com", "auth.net", q, 10), -1);
}

TEST(decode_addresses) {
  pk_authdns_answer a;
  unsigned char ok[4] = {0, 0, 4, 0}, big[4] = {255, 255, 254, 255}, zero[4] = {0, 0, 0, 0};
  unsigned char unknown[4] = {255, 255, 255, 0}, invalid[4] = {255, 255, 255, 1},
                other[4] = {255, 255, 255, 7};
  CHECK_INT(pk_authdns_decode(ok, NULL, &a), 0);
  CHECK_INT(a.quota, 1024);
  CHECK_INT(a.days, -1);
  CHECK_INT(a.conns, -1);
  CHECK(a.error[0] == 0);
  CHECK(pk_authdns_refusal(&a) == NULL);
  CHECK_INT(pk_authdns_decode(big, "", &a), 0);
  CHECK_INT(a.quota, 4294967039LL);
  CHECK_INT(pk_authdns_decode(zero, NULL, &a), 0);
  CHECK_INT(a.quota, 0);
  CHECK(strcmp(pk_authdns_refusal(&a), "quota") == 0);
  CHECK_INT(pk_authdns_decode(unknown, NULL, &a), 0);
  CHECK_INT(a.quota, -1);
  CHECK(strcmp(a.error, "unauthorized") == 0);
  CHECK(strcmp(pk_authdns_refusal(&a), "unauthorized") == 0);
  CHECK_INT(pk_authdns_decode(invalid, NULL, &a), 0);
  CHECK_INT(a.quota, 0);
  CHECK(strcmp(pk_authdns_refusal(&a), "unauthorized") == 0);
  CHECK_INT(pk_authdns_decode(other, NULL, &a), 0);
  CHECK_INT(a.quota, 0);
  CHECK(a.error[0] == 0);
  CHECK(strcmp(pk_authdns_refusal(&a), "quota") == 0);
}

TEST(decode_cnames) {
  pk_authdns_answer a;
  unsigned char ok[4] = {0, 1, 0, 0}, err[4] = {255, 255, 255, 1};
  CHECK_INT(pk_authdns_decode(ok, "ok.0.1e.a.x.example.", &a), 0);
  CHECK_INT(a.quota, 65536);
  CHECK_INT(a.days, 30);
  CHECK_INT(a.conns, 10);
  CHECK_INT(a.ipc, -1);
  CHECK_INT(pk_authdns_decode(ok, "ok-5-3c.0.1e.a.x", &a), 0);
  CHECK_INT(a.ipc, 5);
  CHECK_INT(a.ips, 60);
  CHECK(a.error[0] == 0); /* a quota carries no reason */
  CHECK_INT(pk_authdns_decode(err, "bad-5-3c.0.1e.a.x", &a), 0);
  CHECK(strcmp(a.error, "bad") == 0);
  CHECK_INT(a.ipc, 5);
  /* two dash fields: pagekite.py keeps the whole label as the error */
  CHECK_INT(pk_authdns_decode(err, "bad-5.0.1e.a.x", &a), 0);
  CHECK(strcmp(a.error, "bad-5") == 0);
  CHECK_INT(a.ipc, -1);
  /* a CNAME error wins over the address's "unauthorized" */
  CHECK_INT(pk_authdns_decode(err, "expired.0.0.0.x", &a), 0);
  CHECK_INT(a.quota, 0);
  CHECK(strcmp(pk_authdns_refusal(&a), "expired") == 0);
  /* malformed: a lookup failure */
  CHECK_INT(pk_authdns_decode(ok, "ok.0.1e.a", &a), -1);
  CHECK_INT(pk_authdns_decode(ok, "ok.0.zz.a.x", &a), -1);
  CHECK_INT(pk_authdns_decode(ok, "ok.0..a.x", &a), -1);
}

TEST(quota_headers) {
  pk_authdns_quotas q;
  pk_authdns_answer a1 = {2048, 30, 5, 10, 60, ""}, a2 = {1024, -1, 3, 2, 1, ""},
                    a3 = {-1, -1, -1, -1, -1, ""};
  char buf[512];
  pk_wbuf b;
  pk_authdns_quotas_init(&q);
  pk_wbuf_init(&b, buf, sizeof(buf));
  pk_authdns_quotas_headers(&q, &b);
  CHECK_INT(b.len, 0);
  pk_authdns_quotas_add(&q, &a3);
  pk_authdns_quotas_headers(&q, &b);
  CHECK_INT(b.len, 0);
  pk_authdns_quotas_add(&q, &a1);
  pk_authdns_quotas_add(&q, &a2);
  pk_authdns_quotas_headers(&q, &b);
  CHECK(pk_wbuf_ok(&b));
  buf[b.len] = 0;
  /* QConns, QDays, IPsPerSec then Quota: pagekite.py's order */
  CHECK(strcmp(buf, "X-PageKite-QConns: 3\r\nX-PageKite-QDays: 30\r\n"
                    "X-PageKite-IPsPerSec: 10/60\r\nX-PageKite-Quota: 1024\r\n") == 0);
}

int main(void) {
  RUN(split_option);
  RUN(select_rule);
  RUN(query_name);
  RUN(decode_addresses);
  RUN(decode_cnames);
  RUN(quota_headers);
  return TEST_DONE();
}

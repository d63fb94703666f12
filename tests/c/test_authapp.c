/* test_authapp.c - pagekite.py's auth app protocol (authapp_proto.c), no
 * processes: capabilities, the query arguments, the strict JSON reader,
 * --auth and --zk-auth answers and their verdicts, server lines. */
#include <stdio.h>
#include <string.h>

#include "authapp_proto.h"
#include "pk_test.h"

#define S(lit) lit, sizeof(lit) - 1

TEST(capabilities) {
  CHECK_INT(pk_authapp_caps(S("SERVER AUTH\n")), PK_AUTHAPP_CAP_SERVER | PK_AUTHAPP_CAP_AUTH);
  CHECK_INT(pk_authapp_caps(S("zk-auth")), PK_AUTHAPP_CAP_ZK);
  CHECK_INT(pk_authapp_caps(S("  Server\tZK-Auth\r\n  other  ")),
            PK_AUTHAPP_CAP_SERVER | PK_AUTHAPP_CAP_ZK);
  CHECK_INT(pk_authapp_caps(S("")), 0);
  CHECK_INT(pk_authapp_caps(S("SERVERAUTH AUTHX ZK")), 0); /* whole words only */
}

TEST(query_args) {
  char a[PK_AUTHAPP_ARG_MAX];
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "*.kite.test", "/x/app", a, sizeof(a)), 0);
  CHECK(strcmp(a, "_any_.kite.test") == 0);
  /* pagekite.py: '.'.join([srand, token, sign, protoport, domain, adom]) + '.' */
  CHECK_INT(pk_authapp_arg(1, "s1", "t2", "g3", "http-80", "a.kite.test", "/x/app.py", a, sizeof(a)), 0);
  CHECK(strcmp(a, "s1.t2.g3.http-80.a.kite.test./x/app.py.") == 0);
  /* a name with a space or control byte cannot go on a server's line */
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "a b.test", "/x/app", a, sizeof(a)), -1);
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "a\nb.test", "/x/app", a, sizeof(a)), -1);
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "a\xc3\xa9.test", "/x/app", a, sizeof(a)), -1);
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "abcdefgh", "/x/app", a, 8), -1);
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "", "/x/app", a, sizeof(a)), -1);
  /* never an option to the app */
  CHECK_INT(pk_authapp_arg(0, "s", "t", "g", "http", "--server", "/x/app", a, sizeof(a)), -1);
  CHECK_INT(pk_authapp_arg(1, "-s", "t", "g", "http", "a.test", "/x/app", a, sizeof(a)), -1);
}

typedef struct {
  int n;
  char keys[8][32];
  pk_json_val v[8];
} collect;

static int cb(void *ctx, const char *key, const pk_json_val *v) {
  collect *c = ctx;
  if (c->n < 8) {
    snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
    c->v[c->n++] = *v;
  }
  return 0;
}

static int parse(const char *s, collect *c, const char **why) {
  memset(c, 0, sizeof(*c));
  return pk_json_flat(s, strlen(s), cb, c, why);
}

TEST(json_values) {
  collect c;
  const char *why;
  CHECK_INT(parse(" {\"a\": \"x\\\"y\\u00e9\\ud83d\\ude00\", \"b\": -12, \"c\": 1.5, \"d\": true,"
                  " \"e\": false, \"f\": null, \"g\": [\"1.2.3.4\", 5], \"h\": []}\n",
                  &c, &why),
            0);
  CHECK_INT(c.n, 8);
  CHECK(c.v[0].type == PK_JV_STR && strcmp(c.v[0].str, "x\"y\xc3\xa9\xf0\x9f\x98\x80") == 0);
  CHECK(c.v[1].type == PK_JV_INT && c.v[1].i == -12);
  CHECK(c.v[2].type == PK_JV_NUM);
  CHECK(c.v[3].type == PK_JV_TRUE && c.v[4].type == PK_JV_FALSE && c.v[5].type == PK_JV_NULL);
  CHECK(c.v[6].type == PK_JV_ARRAY && c.v[6].items == 2 && c.v[6].first_is_str &&
        strcmp(c.v[6].str, "1.2.3.4") == 0);
  CHECK(c.v[7].type == PK_JV_ARRAY && c.v[7].items == 0);
  CHECK_INT(parse("{}", &c, &why), 0);
  CHECK_INT(c.n, 0);
  CHECK_INT(parse("{\"n\": 99999999999999999999}", &c, &why), 0); /* too big: not an INT */
  CHECK(c.v[0].type == PK_JV_NUM);
}

TEST(json_refused) {
  collect c;
  const char *why = NULL;
  const char *bad[] = {"", "[]", "\"s\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1} x",
                       "{\"a\":1}{}", "{\"a\":{\"b\":1}}", "{\"a\":[[1]]}", "{\"a\":01}",
                       "{\"a\":-}", "{\"a\":1.}", "{\"a\":1e}", "{\"a\":\"\\x\"}",
                       "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}",
                       "{\"a\":\"\\u0000\"}", "{\"a\":\"a\tb\"}", "{\"a\":1,\"a\":2}",
                       "{\"a\":tru}", "{\"a\":nul}", "{a:1}", "{'a':1}", "{\"a\":NaN}",
                       "{\"a\":\"unterminated}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why = NULL;
    if (parse(bad[i], &c, &why) != -1 || !why) {
      fprintf(stderr, "accepted: %s\n", bad[i]);
      CHECK(0);
    }
  }
  /* a string over PK_JSON_STR_MAX */
  char big[PK_JSON_STR_MAX + 32];
  memset(big, 'x', sizeof(big));
  memcpy(big, "{\"a\":\"", 6);
  memcpy(big + sizeof(big) - 3, "\"}", 3);
  CHECK_INT(parse(big, &c, &why), -1);
  CHECK(strstr(why, "too long") != NULL);
}

TEST(auth_answers) {
  pk_authapp_auth a;
  pk_authdns_answer ans;
  const char *why = NULL, *refusal;
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\": \"s3cr3t\", \"quota_kb\": 10240, \"quota_days\": 24,"
                                    " \"quota_conns\": 5, \"reason\": \"r\", \"ips_per_sec-ips\": 1,"
                                    " \"ips_per_sec-secs\": 900, \"extra\": [1,2]}"),
                                  &a, &why),
            0);
  CHECK(strcmp(a.secret, "s3cr3t") == 0 && a.quota_state == 1 && a.quota_kb == 10240);
  CHECK(a.days == 24 && a.conns == 5 && a.ipc == 1 && a.ips == 900);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), 0);
  CHECK(refusal == NULL && ans.quota == 10240 && ans.days == 24 && ans.conns == 5);
  CHECK(ans.ipc == 1 && ans.ips == 900);
  /* the wrong signature */
  CHECK_INT(pk_authapp_auth_verdict(&a, 0, &ans, &refusal), 0);
  CHECK(refusal && strcmp(refusal, "signature") == 0);
  /* quota 0: refused with the reason; null: refused too (pagekite.py: None) */
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"s\",\"quota_kb\":0,\"reason\":\"noquota\"}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), 0);
  CHECK(refusal && strcmp(refusal, "noquota") == 0);
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"s\",\"quota_kb\":null,\"error\":\"e\"}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), 0);
  CHECK(refusal && strcmp(refusal, "e") == 0);
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"s\",\"quota_kb\":0}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), 0);
  CHECK(refusal && strcmp(refusal, "quota") == 0);
  /* absent or negative: accepted, no quota told */
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"s\"}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), 0);
  CHECK(refusal == NULL && ans.quota == 0 && ans.days == -1 && ans.ipc == -1);
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"s\",\"quota_kb\":-1}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), 0);
  CHECK(refusal == NULL && ans.quota == 0);
  /* an error and no secret: refused with it (pagekite.py fails open) */
  CHECK_INT(pk_authapp_parse_auth(S("{\"error\":\"unknown-kite\"}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 0, &ans, &refusal), 0);
  CHECK(refusal && strcmp(refusal, "unknown-kite") == 0);
  /* neither: a lookup failure */
  CHECK_INT(pk_authapp_parse_auth(S("{\"quota_kb\":5}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), -1);
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"\"}"), &a, &why), 0);
  CHECK_INT(pk_authapp_auth_verdict(&a, 1, &ans, &refusal), -1);
  /* wrong types, never echoing the bytes */
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\": 5}"), &a, &why), -1);
  CHECK(strstr(why, "secret") != NULL);
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"hunter2\",\"quota_kb\":\"10\"}"), &a, &why), -1);
  CHECK(strstr(why, "hunter2") == NULL && a.secret[0] == 0);
  CHECK_INT(pk_authapp_parse_auth(S("{\"secret\":\"s\",\"quota_days\":1.5}"), &a, &why), -1);
  CHECK_INT(pk_authapp_parse_auth(S("not json"), &a, &why), -1);
  char longsecret[PK_SECRET_MAX + 40];
  snprintf(longsecret, sizeof(longsecret), "{\"secret\":\"%0*d\"}", PK_SECRET_MAX, 7);
  CHECK_INT(pk_authapp_parse_auth(longsecret, strlen(longsecret), &a, &why), -1);
}

TEST(zk_answers) {
  unsigned char ip[4];
  char cname[PK_AUTHDNS_NAME_MAX + 1];
  const char *why = NULL;
  pk_authdns_answer ans;
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"q.x\", \"alias\": \"\", \"ips\": [\"0.0.4.0\"]}"),
                                ip, cname, sizeof(cname), &why),
            0);
  CHECK(ip[0] == 0 && ip[1] == 0 && ip[2] == 4 && ip[3] == 0 && cname[0] == 0);
  CHECK_INT(pk_authdns_decode(ip, cname, &ans), 0);
  CHECK(ans.quota == 1024 && pk_authdns_refusal(&ans) == NULL);
  /* an alias: the hostname is the CNAME with the reason and quotas */
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"nodays-a-3c.0.0.5.rest\", \"alias\": [\"q\"],"
                                  " \"ips\": [\"255.255.255.1\"]}"),
                                ip, cname, sizeof(cname), &why),
            0);
  CHECK(strcmp(cname, "nodays-a-3c.0.0.5.rest") == 0);
  CHECK_INT(pk_authdns_decode(ip, cname, &ans), 0);
  CHECK(pk_authdns_refusal(&ans) && strcmp(pk_authdns_refusal(&ans), "nodays") == 0);
  CHECK(ans.conns == 5 && ans.ipc == 10 && ans.ips == 60);
  /* failures: no hostname, no ips, not an address */
  CHECK_INT(pk_authapp_parse_zk(S("{\"ips\": [\"1.2.3.4\"]}"), ip, cname, sizeof(cname), &why), -1);
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"x\"}"), ip, cname, sizeof(cname), &why), -1);
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"x\", \"ips\": []}"), ip, cname, sizeof(cname), &why), -1);
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"x\", \"ips\": [\"1.2.3\"]}"), ip, cname, sizeof(cname), &why), -1);
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"x\", \"ips\": [\"1.2.3.256\"]}"), ip, cname, sizeof(cname), &why), -1);
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"x\", \"ips\": [\"1.2.3.4 \"]}"), ip, cname, sizeof(cname), &why), -1);
  CHECK_INT(pk_authapp_parse_zk(S("{\"hostname\": \"x\", \"ips\": [1]}"), ip, cname, sizeof(cname), &why), -1);
}

TEST(server_lines) {
  static pk_authapp_linebuf lb;
  size_t used;
  pk_authapp_line_reset(&lb);
  CHECK_INT(pk_authapp_line_feed(&lb, S("{\"a\":"), &used), 0);
  CHECK_INT(used, 5);
  CHECK_INT(pk_authapp_line_feed(&lb, S("1}\r\nnext"), &used), 1);
  CHECK_INT(used, 4); /* "next" is left for the caller */
  CHECK(strcmp(lb.buf, "{\"a\":1}") == 0 && lb.len == 7);
  pk_authapp_line_reset(&lb);
  static char big[PK_AUTHAPP_LINE_MAX + 2];
  memset(big, 'x', sizeof(big));
  CHECK_INT(pk_authapp_line_feed(&lb, big, PK_AUTHAPP_LINE_MAX, &used), 0);
  CHECK_INT(pk_authapp_line_feed(&lb, "y", 1, &used), -1);
  pk_authapp_line_reset(&lb);
  big[PK_AUTHAPP_LINE_MAX] = '\n';
  CHECK_INT(pk_authapp_line_feed(&lb, big, PK_AUTHAPP_LINE_MAX + 1, &used), 1);
}

int main(void) {
  RUN(capabilities);
  RUN(query_args);
  RUN(json_values);
  RUN(json_refused);
  RUN(auth_answers);
  RUN(zk_answers);
  RUN(server_lines);
  return TEST_DONE();
}

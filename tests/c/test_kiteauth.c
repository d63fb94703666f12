/* test_kiteauth.c - kite authentication, both roles, no sockets: the relay's
 * challenge and every reject reason, the connector's signed request, and
 * the answers read back. */
#include <stdlib.h>

#include "kiteauth.h"
#include "pk_test.h"

#define SECRET "kite-secret-1"
#define RELAY_SECRET "0123456789abcdef0123456789abcdef0123"
#define NOW 1800000000LL

typedef struct {
  const char *secret;       /* NULL: no domain */
  const char *why_no;       /* reason when secret is NULL */
  pk_auth_verdict claim;    /* what the registry answers */
  int claims;
} policy;

static const char *pol_secret(void *ctx, const pk_kite_req *k, const char **reason) {
  policy *p = ctx;
  if (!p->secret) *reason = p->why_no;
  return p->secret;
}

static pk_auth_verdict pol_claim(void *ctx, const pk_kite_req *k, const char **reason) {
  policy *p = ctx;
  p->claims++;
  if (p->claim == PK_AUTH_INVALID) *reason = "quota";
  return p->claim;
}

static pk_slice sl(const char *s) {
  pk_slice v = {s, strlen(s)};
  return v;
}

/* The relay answers `line`; the answer text lands in out. */
static pk_auth_verdict ask(pk_auth_relay *a, const char *line, char *out, size_t outsz,
                           const char **why) {
  pk_kite_req k;
  pk_wbuf b;
  pk_wbuf_init(&b, out, outsz);
  if (pk_kite_req_parse(sl(line), &k) != 0) return PK_AUTH_IGNORED;
  return pk_auth_relay_request(a, &k, 1, &b, why);
}

/* From "X-PageKite-SignThis: what:token\r\n" to the signed request line. */
static void answer_challenge(const char *reply, const char *secret, char *line, size_t n) {
  const char *v = strstr(reply, ": ") + 2;
  char what_tok[400];
  snprintf(what_tok, sizeof(what_tok), "%.*s", (int)(strstr(v, "\r\n") - v), v);
  char sig[PK_TOKEN_LEN + 1];
  pk_sign_token(secret, what_tok, NULL, 0, sig);
  snprintf(line, n, "%s:%s", what_tok, sig);
}

static void setup(pk_auth_relay *a, pk_replay *r, policy *p) {
  memset(p, 0, sizeof(*p));
  p->secret = SECRET;
  p->claim = PK_AUTH_OK;
  pk_replay_init(r, 7);
  pk_auth_relay init = {RELAY_SECRET, r, NOW, p, pol_secret, pol_claim, NULL};
  *a = init;
}

TEST(challenge_then_ok_once) {
  pk_auth_relay a;
  pk_replay r;
  policy p;
  setup(&a, &r, &p);
  char out[1024], line[512];
  const char *why;
  CHECK_INT(ask(&a, "HTTP:Blog.Example.Test:salt1::", out, sizeof(out), &why), PK_AUTH_CHALLENGED);
  CHECK(strncmp(out, "X-PageKite-SignThis: http:blog.example.test:salt1:t", 51) == 0);
  answer_challenge(out, SECRET, line, sizeof(line));
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_OK);
  CHECK(strcmp(out, "X-PageKite-OK: http:blog.example.test:salt1\r\n") == 0);
  CHECK_INT(p.claims, 1);
  /* The same answer again: a replay.  Counted as one (why), told to the
   * connector as pagekite.py tells it ("signature"). */
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  CHECK(strcmp(why, "replay") == 0);
  CHECK(strstr(out, "X-PageKite-Invalid-Why: http:blog.example.test:salt1;signature\r\n") != NULL);
  CHECK_INT(p.claims, 1);
  pk_replay_free(&r);
}

TEST(every_reject_reason) {
  pk_auth_relay a;
  pk_replay r;
  policy p;
  setup(&a, &r, &p);
  char out[1024], line[512], chal[1024];
  const char *why;
  ask(&a, "http:x.example.test:s::", chal, sizeof(chal), &why);
  /* wrong secret */
  answer_challenge(chal, "not-the-secret", line, sizeof(line));
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  CHECK(strcmp(why, "signature") == 0);
  /* policy: no domain, bad port, bad proto */
  const char *reasons[] = {"unknown", "port", "proto"};
  for (int i = 0; i < 3; i++) {
    ask(&a, "http:x.example.test:s::", chal, sizeof(chal), &why);
    answer_challenge(chal, SECRET, line, sizeof(line));
    p.secret = NULL;
    p.why_no = reasons[i];
    CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
    CHECK(strcmp(why, reasons[i]) == 0);
    p.secret = SECRET;
  }
  /* registry: duplicate, quota */
  ask(&a, "http:x.example.test:s::", chal, sizeof(chal), &why);
  answer_challenge(chal, SECRET, line, sizeof(line));
  p.claim = PK_AUTH_DUPLICATE;
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_DUPLICATE);
  CHECK(strcmp(out, "X-PageKite-Duplicate: http:x.example.test:s\r\n") == 0);
  ask(&a, "http:x.example.test:s::", chal, sizeof(chal), &why);
  answer_challenge(chal, SECRET, line, sizeof(line));
  p.claim = PK_AUTH_INVALID;
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  CHECK(strcmp(why, "quota") == 0);
  pk_replay_free(&r);
}

TEST(forged_and_expired_tokens) {
  pk_auth_relay a;
  pk_replay r;
  policy p;
  setup(&a, &r, &p);
  char out[1024], line[512], chal[1024];
  const char *why;
  /* A token we never issued, properly signed by the kite owner. */
  char tok[PK_TOKEN_LEN + 1], payload[200], sig[PK_TOKEN_LEN + 1];
  pk_sign_token("some-other-relay", "http:x.example.test:s", "t0000007", NOW, tok);
  snprintf(payload, sizeof(payload), "http:x.example.test:s:%s", tok);
  pk_sign_token(SECRET, payload, NULL, 0, sig);
  snprintf(line, sizeof(line), "%s:%s", payload, sig);
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  /* Not a timestamped token. */
  pk_sign_token(RELAY_SECRET, "http:x.example.test:s", "a0000007", 0, tok);
  snprintf(payload, sizeof(payload), "http:x.example.test:s:%s", tok);
  pk_sign_token(SECRET, payload, NULL, 0, sig);
  snprintf(line, sizeof(line), "%s:%s", payload, sig);
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  /* A real challenge answered two windows later. */
  ask(&a, "http:x.example.test:s::", chal, sizeof(chal), &why);
  answer_challenge(chal, SECRET, line, sizeof(line));
  a.now = NOW + 1300;
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  a.now = NOW + 500; /* still inside the window: accepted (and only now used) */
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_OK);
  pk_replay_free(&r);
}

TEST(malformed_and_capped) {
  pk_auth_relay a;
  pk_replay r;
  policy p;
  setup(&a, &r, &p);
  pk_kite_req k;
  CHECK_INT(pk_kite_req_parse(sl("http:x.example.test:s:t"), &k), -1);
  CHECK_INT(pk_kite_req_parse(sl("http:x.example.test:s:t:u:v"), &k), -1);
  CHECK_INT(pk_kite_req_parse(sl(":x:s::"), &k), -1);
  CHECK_INT(pk_kite_req_parse(sl("raw-22:x.example.test:s::"), &k), 0);
  CHECK(strcmp(k.proto, "raw") == 0 && k.port == 22);
  CHECK_INT(pk_kite_req_parse(sl("raw-x2:x.example.test:s::"), &k), 0);
  CHECK_INT(k.port, -1);
  char out[64];
  pk_wbuf b;
  pk_wbuf_init(&b, out, sizeof(out));
  const char *why;
  pk_kite_req_parse(sl("http:x.example.test:s::"), &k);
  CHECK_INT(pk_auth_relay_request(&a, &k, 0, &b, &why), PK_AUTH_IGNORED); /* no more challenges */
  CHECK_INT(b.len, 0);
  pk_replay_free(&r);
}

TEST(connector_side) {
  char out[512];
  pk_wbuf b;
  pk_wbuf_init(&b, out, sizeof(out));
  CHECK_INT(pk_auth_sign_request(&b, "http", "a.example.test", "bsalt", NULL, SECRET), 0);
  CHECK(strncmp(out, "X-PageKite: http:a.example.test:bsalt::", 39) == 0);
  pk_auth_answer ans;
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-SignThis"), sl("http:A.example.test:bsalt:t123"), &ans),
            PK_ANS_SIGNTHIS);
  CHECK(strcmp(ans.name, "a.example.test") == 0 && strcmp(ans.detail, "t123") == 0);
  CHECK_INT(pk_auth_parse_answer(sl("x-pagekite-invalid-why"), sl("raw-22:a.example.test:b;port"), &ans),
            PK_ANS_WHY);
  CHECK(strcmp(ans.protoport, "raw-22") == 0 && strcmp(ans.detail, "port") == 0);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-OK"), sl("http:a.example.test:b"), &ans), PK_ANS_OK);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Duplicate"), sl("http:a.example.test:b"), &ans),
            PK_ANS_DUPLICATE);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-SessionID"), sl("abc:def"), &ans), PK_ANS_SESSION);
  CHECK(strcmp(ans.detail, "abc:def") == 0);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-OK"), sl("nocolon"), &ans), PK_ANS_NONE);
  CHECK_INT(pk_auth_parse_answer(sl("Content-Type"), sl("text/html"), &ans), PK_ANS_NONE);
}

/* X-PageKite-Misc: motd=... as pagekite.py (urlencode: '+') and we (%20)
 * send it; control characters never reach the log. */
TEST(motd_answer) {
  pk_auth_answer ans;
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Misc"), sl("motd=Hello+world%21+%3Cb%3E"), &ans),
            PK_ANS_MOTD);
  CHECK(strcmp(ans.detail, "Hello world! <b>") == 0);
  CHECK_INT(pk_auth_parse_answer(sl("x-pagekite-misc"), sl("x=1&motd=a%20b%0Ac%1b&y=2"), &ans),
            PK_ANS_MOTD);
  CHECK(strcmp(ans.detail, "a b c ") == 0);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Misc"), sl("motd=100%"), &ans), PK_ANS_MOTD);
  CHECK(strcmp(ans.detail, "100%") == 0);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Misc"), sl("motd="), &ans), PK_ANS_NONE);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Misc"), sl("nomotd=x"), &ans), PK_ANS_NONE);
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Misc"), sl(""), &ans), PK_ANS_NONE);
  char big[3000];
  memcpy(big, "motd=", 5);
  memset(big + 5, 'x', sizeof(big) - 6);
  big[sizeof(big) - 1] = 0;
  CHECK_INT(pk_auth_parse_answer(sl("X-PageKite-Misc"), sl(big), &ans), PK_ANS_MOTD);
  CHECK_INT((int)strlen(ans.detail), PK_MOTD_MAX); /* capped */
}

/* The connector's signed answer to a real challenge is what the relay takes. */
TEST(both_sides_agree) {
  pk_auth_relay a;
  pk_replay r;
  policy p;
  setup(&a, &r, &p);
  char req[512], reply[512];
  pk_wbuf b;
  pk_wbuf_init(&b, req, sizeof(req));
  pk_auth_sign_request(&b, "websocket", "w.example.test", "bs", NULL, SECRET);
  const char *why;
  CHECK_INT(ask(&a, strstr(req, ": ") + 2, reply, sizeof(reply), &why), PK_AUTH_CHALLENGED);
  pk_auth_answer ans;
  const char *colon = strstr(reply, ": ");
  pk_slice name = {reply, (size_t)(colon - reply)};
  pk_slice value = {colon + 2, strlen(colon + 2) - 2};
  CHECK_INT(pk_auth_parse_answer(name, value, &ans), PK_ANS_SIGNTHIS);
  pk_wbuf_init(&b, req, sizeof(req));
  pk_auth_sign_request(&b, ans.protoport, ans.name, "bs", ans.detail, SECRET);
  req[b.len - 2] = 0; /* drop CRLF */
  CHECK_INT(ask(&a, strstr(req, ": ") + 2, reply, sizeof(reply), &why), PK_AUTH_OK);
  pk_replay_free(&r);
}

/* --authdomain: a kite no static secret signs is the authority's to vouch
 * for; the relay still checks its own challenge and its single use, and
 * answers when the authority has (pk_auth_relay_finish). */
static int remote_calls;
static pk_auth_verdict remote_pending(void *ctx, const pk_kite_req *k, const char **reason) {
  remote_calls++;
  return PK_AUTH_PENDING;
}

TEST(remote_authority) {
  pk_auth_relay a;
  pk_replay r;
  policy p;
  setup(&a, &r, &p);
  a.remote = remote_pending;
  char out[1024], line[512], chal[1024];
  const char *why;
  p.secret = NULL;
  p.why_no = pk_auth_remote;
  CHECK_INT(ask(&a, "http:d.dyn.test:s::", chal, sizeof(chal), &why), PK_AUTH_CHALLENGED);
  /* any secret: the relay cannot tell; the authority will */
  answer_challenge(chal, "whatever", line, sizeof(line));
  out[0] = 0;
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_PENDING);
  CHECK_INT(remote_calls, 1);
  CHECK(out[0] == 0); /* nothing said yet */
  /* the same answer again: a replay, the authority is not asked */
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  CHECK(strcmp(why, "replay") == 0);
  CHECK_INT(remote_calls, 1);
  /* a token that is not ours: refused before the authority is asked */
  CHECK_INT(ask(&a, "http:d.dyn.test:s:t0000000000000000000000000000000000:sig", out,
                sizeof(out), &why), PK_AUTH_INVALID);
  CHECK(strcmp(why, "signature") == 0);
  CHECK_INT(remote_calls, 1);
  /* the answers */
  pk_kite_req k;
  pk_kite_req_parse(sl(line), &k);
  pk_wbuf b;
  pk_wbuf_init(&b, out, sizeof(out));
  CHECK_INT(pk_auth_relay_finish(&a, &k, 1, NULL, &b, &why), PK_AUTH_OK);
  out[b.len] = 0;
  CHECK(strcmp(out, "X-PageKite-OK: http:d.dyn.test:s\r\n") == 0);
  CHECK_INT(p.claims, 1);
  pk_wbuf_init(&b, out, sizeof(out));
  CHECK_INT(pk_auth_relay_finish(&a, &k, 0, "expired", &b, &why), PK_AUTH_INVALID);
  out[b.len] = 0;
  CHECK(strcmp(why, "expired") == 0);
  CHECK(strstr(out, "X-PageKite-Invalid-Why: http:d.dyn.test:s;expired\r\n") != NULL);
  /* no remote policy: refused as unknown */
  a.remote = NULL;
  ask(&a, "http:d.dyn.test:s::", chal, sizeof(chal), &why);
  answer_challenge(chal, "whatever", line, sizeof(line));
  CHECK_INT(ask(&a, line, out, sizeof(out), &why), PK_AUTH_INVALID);
  CHECK(strcmp(why, "unknown") == 0);
  pk_replay_free(&r);
}

int main(void) {
  RUN(remote_authority);
  RUN(challenge_then_ok_once);
  RUN(every_reject_reason);
  RUN(forged_and_expired_tokens);
  RUN(malformed_and_capped);
  RUN(connector_side);
  RUN(motd_answer);
  RUN(both_sides_agree);
  return TEST_DONE();
}

/* test_handshake.c - the tunnel handshake and kite authentication of a
 * session (handshake.c), both roles, with no sockets: a connector session
 * and a relay session talk through two byte queues.
 *
 * Covered: challenge and in-band answer (AddKites), the signed reconnect an
 * old relay needs, every reject reason reaching the connector with its
 * Invalid-Why, wrong / forged / replayed signatures, duplicates, quota,
 * kites added later by NOOP, a refused or malformed relay head, a head split
 * at every byte with frames behind it, the websocket form of the reply, and
 * the most kites one tunnel may carry.
 */
#include <stdlib.h>

#include "pk_test.h"
#include "session.h"

#define RELAY_SECRET "relay-secret-0123456789abcdef"
#define NOW_S 1800000000LL

/* ---- the relay's policy: a table of domains and a registry ---- */
typedef struct {
  const char *name, *secret;
} dom;

typedef struct {
  const dom *doms;
  int ndoms;
  char claimed[80][PK_NAME_MAX]; /* names live (any tunnel) */
  int nclaimed, quota;
  const char *relay_secret;
  pk_replay *replay;
  int remote;              /* names "r.*" are the remote authority's (--authdomain) */
  pk_kite_req pending[8];  /* what the authority was asked */
  int npending;
} relay_pol;

static const char *pol_secret(void *ctx, const pk_kite_req *k, const char **reason) {
  relay_pol *p = ctx;
  if (k->port != 0 && k->port != 80) {
    *reason = "port";
    return NULL;
  }
  if (strcmp(k->proto, "http") && strcmp(k->proto, "raw") && strcmp(k->proto, "websocket")) {
    *reason = "proto";
    return NULL;
  }
  for (int i = 0; i < p->ndoms; i++)
    if (strcmp(p->doms[i].name, k->name) == 0) return p->doms[i].secret;
  *reason = p->remote && strncmp(k->name, "r.", 2) == 0 ? pk_auth_remote : "unknown";
  return NULL;
}

static pk_auth_verdict pol_remote(void *ctx, const pk_kite_req *k, const char **reason) {
  relay_pol *p = ctx;
  if (p->npending >= 8) return PK_AUTH_INVALID;
  p->pending[p->npending++] = *k;
  return PK_AUTH_PENDING;
}

static pk_auth_verdict pol_claim(void *ctx, const pk_kite_req *k, const char **reason) {
  relay_pol *p = ctx;
  for (int i = 0; i < p->nclaimed; i++)
    if (strcmp(p->claimed[i], k->name) == 0) return PK_AUTH_DUPLICATE;
  if (p->nclaimed >= p->quota) {
    *reason = "quota";
    return PK_AUTH_INVALID;
  }
  snprintf(p->claimed[p->nclaimed++], PK_NAME_MAX, "%s", k->name);
  return PK_AUTH_OK;
}

/* ---- one end: a session, its outgoing bytes, what it reported ---- */
typedef struct end {
  pk_session s;
  char out[256 * 1024];
  size_t outlen;
  relay_pol *pol;          /* relay ends */
  char log[65536];         /* connector: "OK:name " "INVALID:name:why " ...; relay: verdicts */
  int opened, resigned, controls;
  char fsalt[64];          /* last SignThis token */
} end;

/* Appends "<kind>:<name>:<detail> " to the end's log. */
static void note(end *e, const char *kind, const char *name, const char *detail) {
  size_t l = strlen(e->log);
  snprintf(e->log + l, sizeof(e->log) - l, "%s:%s:%s ", kind, name, detail ? detail : "");
}

static int cb_send(void *ctx, const char *a, size_t an, const char *b, size_t bn, void *buf) {
  end *e = ctx;
  if (e->outlen + an + bn > sizeof(e->out)) return -1;
  if (an) memcpy(e->out + e->outlen, a, an);
  e->outlen += an;
  if (bn) memcpy(e->out + e->outlen, b, bn);
  e->outlen += bn;
  return 0;
}

static void cb_data(void *ctx, const pk_chunk *ch) {}
static void cb_eof(void *ctx, long long sid, int bits) {}
static void cb_credit(void *ctx, long long sid, long long kb) {}
static void cb_control(void *ctx, const pk_chunk *ch) { ((end *)ctx)->controls++; }

static void cb_policy(void *ctx, pk_slice replace, pk_auth_relay *a) {
  end *e = ctx;
  a->relay_secret = e->pol->relay_secret;
  a->replay = e->pol->replay;
  a->now = NOW_S;
  a->ctx = e->pol;
  a->secret = pol_secret;
  a->claim = pol_claim;
  a->remote = pol_remote;
}

static const char *verdict_name(pk_auth_verdict v) {
  static const char *n[] = {"CHALLENGED", "OK", "INVALID", "DUPLICATE", "IGNORED"};
  return n[v];
}

static void cb_verdict(void *ctx, const pk_kite_req *k, pk_auth_verdict v, const char *why) {
  note(ctx, verdict_name(v), k->name, why);
}

static void cb_answer(void *ctx, const pk_auth_answer *a) {
  end *e = ctx;
  static const char *kinds[] = {"NONE", "OK", "INVALID", "WHY", "DUPLICATE", "SIGNTHIS", "SESSION",
                                "FEATURE"};
  if (a->kind == PK_ANS_SIGNTHIS) snprintf(e->fsalt, sizeof(e->fsalt), "%s", a->detail);
  if (a->kind == PK_ANS_SESSION)
    note(e, kinds[a->kind], a->detail, NULL);
  else
    note(e, kinds[a->kind], a->name, a->kind == PK_ANS_WHY ? a->detail : NULL);
}

static void cb_resign(void *ctx) { ((end *)ctx)->resigned++; }
static void cb_opened(void *ctx) { ((end *)ctx)->opened++; }

static const pk_session_cb cbs = {.send = cb_send,
                                  .data = cb_data,
                                  .eof = cb_eof,
                                  .credit = cb_credit,
                                  .control = cb_control,
                                  .policy = cb_policy,
                                  .verdict = cb_verdict,
                                  .answer = cb_answer,
                                  .resign = cb_resign,
                                  .opened = cb_opened};

static end *end_new(relay_pol *pol) {
  end *e = calloc(1, sizeof(*e));
  e->pol = pol;
  pk_session_init(&e->s, &cbs, e, 1000);
  return e;
}

static void end_free(end *e) {
  pk_session_free(&e->s);
  free(e);
}

static void kite(pk_session_kite *k, const char *pp, const char *name, const char *secret) {
  memset(k, 0, sizeof(*k));
  snprintf(k->protoport, sizeof(k->protoport), "%s", pp);
  snprintf(k->name, sizeof(k->name), "%s", name);
  snprintf(k->secret, sizeof(k->secret), "%s", secret);
  snprintf(k->bsalt, sizeof(k->bsalt), "bs%.20s", name);
}

/* The relay reads the connector's request head and accepts it; the rest of
 * the connector's bytes are frames.  Returns accept's result. */
static int relay_takes_head(end *r, end *c, pk_session_counts *counts) {
  pk_http_head h;
  int rv = pk_wire_parse_http_head(c->out, c->outlen, PK_HEAD_MAX, &h);
  CHECK_INT(rv, 1);
  if (rv != 1) return -1;
  rv = pk_session_accept(&r->s, &h, NULL, &(pk_relay_hello){"80", NULL, "sess-1", NULL}, counts);
  size_t rest = c->outlen - h.head_len;
  memmove(c->out, c->out + h.head_len, rest);
  c->outlen = rest;
  return rv;
}

/* Moves a's output into b (pieces of at most `piece` bytes; 0: at once). */
static int deliver(end *from, end *to, size_t piece) {
  int rv = 0;
  char *tmp = malloc(from->outlen + 1);
  size_t n = from->outlen;
  memcpy(tmp, from->out, n);
  from->outlen = 0;
  for (size_t off = 0; off < n && rv == 0;) {
    size_t k = piece && n - off > piece ? piece : n - off;
    rv = pk_session_recv(&to->s, tmp + off, k, 2000);
    off += k;
  }
  free(tmp);
  return rv;
}

/* Rounds of delivery both ways until quiet. */
static void settle(end *c, end *r) {
  for (int i = 0; i < 8 && (c->outlen || r->outlen); i++) {
    if (r->outlen) deliver(r, c, 0);
    if (c->outlen && r->s.state == PK_SESSION_OPEN) deliver(c, r, 0);
  }
}

typedef struct {
  relay_pol pol;
  pk_replay replay;
  end *c, *r;
} pair;

static const dom two_doms[] = {{"a.example.test", "secret-a"}, {"b.example.test", "secret-b"}};

static pair *pair_new(void) {
  pair *p = calloc(1, sizeof(*p));
  pk_replay_init(&p->replay, 42);
  p->pol.doms = two_doms;
  p->pol.ndoms = 2;
  p->pol.quota = 80;
  p->pol.relay_secret = RELAY_SECRET;
  p->pol.replay = &p->replay;
  p->c = end_new(NULL);
  p->r = end_new(&p->pol);
  return p;
}

static void pair_free(pair *p) {
  end_free(p->c);
  end_free(p->r);
  pk_replay_free(&p->replay);
  free(p);
}

/* A full handshake of the given kites; returns the relay's counts. */
static pk_session_counts fly(pair *p, const pk_session_kite *ks, int n) {
  pk_session_counts counts = {0, 0, 0, 0};
  CHECK_INT(pk_session_connect(&p->c->s, ks, n, "test", NULL), 0);
  CHECK(strncmp(p->c->out, "CONNECT PageKite:1 HTTP/1.0\r\n", 29) == 0);
  CHECK_INT(relay_takes_head(p->r, p->c, &counts), 0);
  settle(p->c, p->r);
  return counts;
}

TEST(challenge_answered_in_band) {
  pair *p = pair_new();
  pk_session_kite ks[2];
  kite(&ks[0], "http", "a.example.test", "secret-a");
  kite(&ks[1], "http", "b.example.test", "secret-b");
  pk_session_counts c = fly(p, ks, 2);
  CHECK_INT(c.challenged, 2);
  CHECK_INT(c.ok, 0);
  CHECK_INT(p->c->opened, 1);
  CHECK_INT(p->c->resigned, 0);
  CHECK(strstr(p->c->log, "SIGNTHIS:a.example.test") != NULL);
  CHECK(strstr(p->c->log, "SESSION:sess-1") != NULL);
  CHECK(strstr(p->c->log, "OK:a.example.test:") != NULL);
  CHECK(strstr(p->c->log, "OK:b.example.test:") != NULL);
  CHECK(strstr(p->r->log, "OK:a.example.test:") != NULL);
  CHECK_INT(p->pol.nclaimed, 2);
  CHECK_INT(p->c->s.state, PK_SESSION_OPEN);
  CHECK_INT(p->r->s.state, PK_SESSION_OPEN);
  CHECK(p->c->s.peer_addkites && p->c->s.peer_zchunks);
  CHECK(p->r->s.peer_addkites && p->r->s.peer_zchunks);
  CHECK_INT(p->c->controls + p->r->controls, 0); /* the handshake took its NOOPs */
  pair_free(p);
}

/* Each reason the relay gives reaches the connector with the kite's name. */
TEST(every_reject_reason_reaches_connector) {
  static const struct {
    const char *pp, *name, *secret, *why;
  } cases[] = {{"http", "a.example.test", "wrong-secret", "signature"},
               {"http", "nobody.example.test", "x", "unknown"},
               {"http-8080", "a.example.test", "secret-a", "port"},
               {"htp", "a.example.test", "secret-a", "proto"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pair *p = pair_new();
    pk_session_kite k;
    kite(&k, cases[i].pp, cases[i].name, cases[i].secret);
    fly(p, &k, 1);
    char want[200];
    snprintf(want, sizeof(want), "WHY:%s:%s INVALID:%s:", cases[i].name, cases[i].why, cases[i].name);
    if (!strstr(p->c->log, want)) fprintf(stderr, "case %zu: log %s\n", i, p->c->log);
    CHECK(strstr(p->c->log, want) != NULL);
    CHECK_INT(p->pol.nclaimed, 0);
    pair_free(p);
  }
}

TEST(quota_and_duplicate) {
  pair *p = pair_new();
  p->pol.quota = 1;
  pk_session_kite ks[2];
  kite(&ks[0], "http", "a.example.test", "secret-a");
  kite(&ks[1], "http", "b.example.test", "secret-b");
  fly(p, ks, 2);
  CHECK(strstr(p->c->log, "OK:a.example.test:") != NULL);
  CHECK(strstr(p->c->log, "WHY:b.example.test:quota") != NULL);
  /* A second connector for a: a duplicate. */
  end *c2 = end_new(NULL), *r2 = end_new(&p->pol);
  pk_session_counts counts;
  CHECK_INT(pk_session_connect(&c2->s, ks, 1, "test", NULL), 0);
  CHECK_INT(relay_takes_head(r2, c2, &counts), 0);
  settle(c2, r2);
  CHECK(strstr(c2->log, "DUPLICATE:a.example.test:") != NULL);
  end_free(c2);
  end_free(r2);
  pair_free(p);
}

/* A signed request seen on the wire does not fly again (single-use
 * challenge), and a token the relay did not make is refused. */
TEST(replayed_and_forged_signatures) {
  pair *p = pair_new();
  pk_session_kite k;
  kite(&k, "http", "a.example.test", "secret-a");
  CHECK_INT(pk_session_connect(&p->c->s, &k, 1, "test", NULL), 0);
  pk_session_counts counts;
  CHECK_INT(relay_takes_head(p->r, p->c, &counts), 0);
  deliver(p->r, p->c, 0); /* the challenge; the connector signs in a NOOP */
  char sniffed[4096];
  size_t sn = p->c->outlen;
  memcpy(sniffed, p->c->out, sn);
  settle(p->c, p->r);
  CHECK(strstr(p->c->log, "OK:a.example.test:") != NULL);
  p->pol.nclaimed = 0; /* the kite went down: only the replay check stands */
  /* The thief replays the signed NOOP on its own tunnel. */
  end *c2 = end_new(NULL), *r2 = end_new(&p->pol);
  pk_session_kite none;
  kite(&none, "http", "b.example.test", "secret-b");
  CHECK_INT(pk_session_connect(&c2->s, &none, 1, "test", NULL), 0);
  CHECK_INT(relay_takes_head(r2, c2, &counts), 0);
  CHECK_INT(pk_session_recv(&r2->s, sniffed, sn, 3000), 0);
  /* Counted as a replay; the thief is told "signature", as pagekite.py does. */
  CHECK(strstr(r2->log, "INVALID:a.example.test:replay") != NULL);
  {
    static const char why[] = "X-PageKite-Invalid-Why: http:a.example.test:";
    int told = 0;
    for (size_t i = 0; i + sizeof(why) - 1 <= r2->outlen && !told; i++)
      if (memcmp(r2->out + i, why, sizeof(why) - 1) == 0) {
        const char *semi = memchr(r2->out + i, ';', r2->outlen - i);
        told = semi && (size_t)(semi - r2->out) + 10 <= r2->outlen &&
               memcmp(semi, ";signature", 10) == 0;
      }
    CHECK(told);
  }
  CHECK_INT(p->pol.nclaimed, 0);
  /* A token signed with another relay secret. */
  pk_replay other;
  pk_replay_init(&other, 1);
  relay_pol forger = p->pol;
  forger.relay_secret = "not-the-relay-secret";
  forger.replay = &other;
  end *c3 = end_new(NULL), *r3 = end_new(&forger);
  CHECK_INT(pk_session_connect(&c3->s, &k, 1, "test", NULL), 0);
  CHECK_INT(relay_takes_head(r3, c3, &counts), 0);
  deliver(r3, c3, 0);
  CHECK_INT(pk_session_recv(&p->r->s, c3->out, c3->outlen, 3000), 0); /* to the real relay */
  CHECK(strstr(p->r->log, "INVALID:a.example.test:signature") != NULL);
  end_free(c2), end_free(r2), end_free(c3), end_free(r3);
  pk_replay_free(&other);
  pair_free(p);
}

/* An old relay (no AddKites) challenges in its head: the owner is told to
 * reconnect, and a reconnect with the token flies at once. */
TEST(old_relay_signed_reconnect) {
  pair *p = pair_new();
  pk_session_kite k;
  kite(&k, "http", "a.example.test", "secret-a");
  CHECK_INT(pk_session_connect(&p->c->s, &k, 1, "test", NULL), 0);
  pk_session_counts counts;
  CHECK_INT(relay_takes_head(p->r, p->c, &counts), 0);
  /* Strip the relay's AddKites feature, as an old relay would not send it. */
  char *f = strstr(p->r->out, "X-PageKite-Features: AddKites\r\n");
  CHECK(f != NULL);
  if (f) memcpy(f, "X-PageKite-Xeatures", 19);
  deliver(p->r, p->c, 0);
  CHECK_INT(p->c->resigned, 1);
  CHECK(p->c->fsalt[0] != 0);
  CHECK_INT(p->c->outlen, 0); /* nothing signed in-band */
  /* The new tunnel carries the signature in its head. */
  end *c2 = end_new(NULL), *r2 = end_new(&p->pol);
  snprintf(k.fsalt, sizeof(k.fsalt), "%s", p->c->fsalt);
  CHECK_INT(pk_session_connect(&c2->s, &k, 1, "test", "old-session"), 0);
  CHECK(strstr(c2->out, "X-PageKite-Replace: old-session\r\n") != NULL);
  CHECK_INT(relay_takes_head(r2, c2, &counts), 0);
  CHECK_INT(counts.ok, 1);
  deliver(r2, c2, 0);
  CHECK(strstr(c2->log, "OK:a.example.test:") != NULL);
  end_free(c2), end_free(r2);
  pair_free(p);
}

/* Kites added to an open tunnel by NOOP (AddKites) are challenged and
 * accepted like those of the head. */
TEST(kites_added_later) {
  pair *p = pair_new();
  pk_session_kite a, b;
  kite(&a, "http", "a.example.test", "secret-a");
  kite(&b, "raw-80", "b.example.test", "secret-b");
  fly(p, &a, 1);
  CHECK_INT(p->pol.nclaimed, 1);
  char line[600];
  pk_wbuf w;
  pk_wbuf_init(&w, line, sizeof(line));
  CHECK_INT(pk_auth_sign_request(&w, b.protoport, b.name, b.bsalt, "", b.secret), 0);
  CHECK_INT(pk_session_send_noop(&p->c->s, line, w.len), 0);
  deliver(p->c, p->r, 0);
  CHECK(strstr(p->r->log, "CHALLENGED:b.example.test:") != NULL);
  deliver(p->r, p->c, 0);
  /* The connector does not know b (it was not in its list): it ignores the
   * challenge rather than sign for a kite it never asked for. */
  CHECK(strstr(p->c->log, "SIGNTHIS:b.example.test") == NULL);
  CHECK_INT(p->c->outlen, 0);
  pair_free(p);
}

TEST(refused_and_bad_heads) {
  static const struct {
    const char *head, *why;
  } cases[] = {{"HTTP/1.1 503 Unavailable\r\n\r\n", "relay refused the tunnel: HTTP 503"},
               {"HTTP/1.1 403 Forbidden\r\nX-PageKite-Invalid: http:a.example.test\r\n\r\n",
                "relay refused the tunnel: HTTP 403"},
               {"SSH-2.0-OpenSSH\r\n\r\n", "bad handshake response"},
               {"GET / HTTP/1.1\r\n\r\n", "bad handshake response"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    end *c = end_new(NULL);
    pk_session_kite k;
    kite(&k, "http", "a.example.test", "secret-a");
    CHECK_INT(pk_session_connect(&c->s, &k, 1, "test", NULL), 0);
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", cases[i].head);
    CHECK_INT(pk_session_recv(&c->s, buf, strlen(buf), 2000), -1);
    CHECK(strcmp(pk_session_why(&c->s), cases[i].why) == 0);
    CHECK_INT(c->opened, 0);
    end_free(c);
  }
  /* No end of head within the bound. */
  end *c = end_new(NULL);
  CHECK_INT(pk_session_connect(&c->s, NULL, 0, "test", NULL), 0);
  char *big = malloc(PK_HEAD_MAX + 100);
  memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
  for (size_t i = 17; i < PK_HEAD_MAX + 100; i++) big[i] = i % 60 ? 'x' : '\n';
  int rv = 0;
  for (size_t off = 0; off < PK_HEAD_MAX + 100 && rv == 0; off += 1000)
    rv = pk_session_recv(&c->s, big + off, off + 1000 > PK_HEAD_MAX + 100 ? PK_HEAD_MAX + 100 - off : 1000, 2000);
  CHECK_INT(rv, -1);
  CHECK(strstr(pk_session_why(&c->s), "too large") || strstr(pk_session_why(&c->s), "bad"));
  free(big);
  end_free(c);
}

/* The relay's head and the frames behind it, split at every byte. */
TEST(head_split_everywhere) {
  pair *p = pair_new();
  pk_session_kite k;
  kite(&k, "http", "a.example.test", "secret-a");
  CHECK_INT(pk_session_connect(&p->c->s, &k, 1, "test", NULL), 0);
  pk_session_counts counts;
  CHECK_INT(relay_takes_head(p->r, p->c, &counts), 0);
  CHECK_INT(pk_session_ping(&p->r->s, 1500), 0); /* a frame right behind the head */
  char whole[8192];
  size_t n = p->r->outlen;
  memcpy(whole, p->r->out, n);
  for (size_t cut = 1; cut < n; cut++) {
    end *c = end_new(NULL);
    CHECK_INT(pk_session_connect(&c->s, &k, 1, "test", NULL), 0);
    c->outlen = 0;
    char buf[8192];
    memcpy(buf, whole, n);
    int r1 = pk_session_recv(&c->s, buf, cut, 2000);
    int r2 = pk_session_recv(&c->s, buf + cut, n - cut, 2000);
    if (r1 || r2 || c->opened != 1 || !strstr(c->log, "SIGNTHIS:a.example.test") ||
        !strstr(c->out, "PONG")) {
      fprintf(stderr, "cut %zu: %d %d opened %d log %s\n", cut, r1, r2, c->opened, c->log);
      CHECK(0);
      end_free(c);
      break;
    }
    end_free(c);
  }
  pair_free(p);
}

/* The websocket form: a 101, then the answers in a NOOP in a ws frame. */
TEST(websocket_reply) {
  pair *p = pair_new();
  pk_session_kite k;
  kite(&k, "http", "a.example.test", "secret-a");
  CHECK_INT(pk_session_connect(&p->c->s, &k, 1, "test", NULL), 0);
  pk_http_head h;
  CHECK_INT(pk_wire_parse_http_head(p->c->out, p->c->outlen, PK_HEAD_MAX, &h), 1);
  pk_session_counts counts;
  CHECK_INT(pk_session_accept(&p->r->s, &h, "acceptkey=", &(pk_relay_hello){"80", NULL, "sess-ws", NULL}, &counts), 0);
  CHECK(strncmp(p->r->out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
  CHECK(strstr(p->r->out, "Sec-WebSocket-Accept: acceptkey=\r\n") != NULL);
  char *end_of_head = strstr(p->r->out, "\r\n\r\n");
  CHECK(end_of_head != NULL);
  if (end_of_head) CHECK_INT((unsigned char)end_of_head[4], 0x82); /* a binary ws frame */
  CHECK(p->r->s.ws && p->r->s.peer_addkites);
  CHECK_INT(counts.challenged, 1);
  pair_free(p);
}

/* The most kites a tunnel may carry fly on one tunnel: no hidden cap below
 * PK_MAX_KITES_PER_TUNNEL in the request, the challenges or the answers. */
TEST(max_kites_one_tunnel) {
  pair *p = pair_new();
  static dom doms[PK_MAX_KITES_PER_TUNNEL];
  static char names[PK_MAX_KITES_PER_TUNNEL][40];
  static pk_session_kite ks[PK_MAX_KITES_PER_TUNNEL + 1];
  for (int i = 0; i < PK_MAX_KITES_PER_TUNNEL; i++) {
    snprintf(names[i], sizeof(names[i]), "k%02d.example.test", i);
    doms[i].name = names[i];
    doms[i].secret = "shared-secret";
    kite(&ks[i], "http", names[i], "shared-secret");
  }
  p->pol.doms = doms;
  p->pol.ndoms = PK_MAX_KITES_PER_TUNNEL;
  pk_session_counts c = fly(p, ks, PK_MAX_KITES_PER_TUNNEL);
  CHECK_INT(c.challenged, PK_MAX_KITES_PER_TUNNEL);
  CHECK_INT(p->pol.nclaimed, PK_MAX_KITES_PER_TUNNEL);
  int oks = 0;
  for (const char *q = p->c->log; (q = strstr(q, " OK:")) != NULL; q++) oks++;
  if (strncmp(p->c->log, "OK:", 3) == 0) oks++;
  CHECK_INT(oks, PK_MAX_KITES_PER_TUNNEL);
  /* One more than that is refused up front, with a reason. */
  end *c2 = end_new(NULL);
  kite(&ks[PK_MAX_KITES_PER_TUNNEL], "http", "extra.example.test", "x");
  CHECK_INT(pk_session_connect(&c2->s, ks, PK_MAX_KITES_PER_TUNNEL + 1, "test", NULL), -1);
  CHECK(strstr(pk_session_why(&c2->s), "too many kites") != NULL);
  end_free(c2);
  pair_free(p);
}

/* The same with names of the longest legal length (253): the request head
 * cannot hold them all, so the rest follow in NOOPs, and still every kite
 * flies on the one tunnel. */
TEST(max_kites_longest_names) {
  pair *p = pair_new();
  static dom doms[PK_MAX_KITES_PER_TUNNEL];
  static char names[PK_MAX_KITES_PER_TUNNEL][256];
  static pk_session_kite ks[PK_MAX_KITES_PER_TUNNEL];
  char a[64], b[64], d[64];
  memset(a, 'a', 58), a[58] = 0;
  memset(b, 'b', 63), b[63] = 0;
  memset(d, 'd', 58), d[58] = 0;
  for (int i = 0; i < PK_MAX_KITES_PER_TUNNEL; i++) {
    snprintf(names[i], sizeof(names[i]), "k%02d%s.%s.%s.%s.test", i, a, b, b, d);
    CHECK_INT(strlen(names[i]), 253);
    doms[i].name = names[i];
    doms[i].secret = "shared-secret";
    kite(&ks[i], "http-80", names[i], "shared-secret");
  }
  p->pol.doms = doms;
  p->pol.ndoms = PK_MAX_KITES_PER_TUNNEL;
  pk_session_counts c = fly(p, ks, PK_MAX_KITES_PER_TUNNEL);
  CHECK(c.challenged > 0 && c.challenged < PK_MAX_KITES_PER_TUNNEL); /* the head held some */
  CHECK_INT(p->pol.nclaimed, PK_MAX_KITES_PER_TUNNEL);
  CHECK_INT(p->c->s.state, PK_SESSION_OPEN);
  CHECK_INT(p->r->s.state, PK_SESSION_OPEN);
  int oks = 0;
  for (const char *q = p->c->log; (q = strstr(q, "OK:k")) != NULL; q++) oks++;
  CHECK_INT(oks, PK_MAX_KITES_PER_TUNNEL);
  pair_free(p);
}

/* Found by fuzz_handshake: kites of one name on two ports each get their
 * own answer (an answer is matched on proto[-port] exactly). */
TEST(same_name_two_ports) {
  pair *p = pair_new();
  pk_session_kite ks[2];
  kite(&ks[0], "http-80", "a.example.test", "secret-a");
  kite(&ks[1], "http", "a.example.test", "secret-a");
  p->pol.quota = 80;
  fly(p, ks, 2);
  CHECK(strstr(p->c->log, "OK:a.example.test:") != NULL);
  CHECK(strstr(p->c->log, "INVALID") == NULL);
  CHECK(strstr(p->r->log, "INVALID") == NULL);
  pair_free(p);
}

/* Found by fuzz_handshake: in the websocket form AddKites comes in the NOOP
 * after the 101, and the kites that did not fit the head follow then. */
TEST(websocket_form_rest_follows) {
  pair *p = pair_new();
  static dom doms[PK_MAX_KITES_PER_TUNNEL];
  static char names[PK_MAX_KITES_PER_TUNNEL][256];
  static pk_session_kite ks[PK_MAX_KITES_PER_TUNNEL];
  char a[64], b[64];
  memset(a, 'a', 58), a[58] = 0;
  memset(b, 'b', 63), b[63] = 0;
  for (int i = 0; i < PK_MAX_KITES_PER_TUNNEL; i++) {
    snprintf(names[i], sizeof(names[i]), "w%02d%s.%s.%s.%s.test", i, a, b, b, a);
    doms[i].name = names[i];
    doms[i].secret = "shared-secret";
    kite(&ks[i], "http", names[i], "shared-secret");
  }
  p->pol.doms = doms;
  p->pol.ndoms = PK_MAX_KITES_PER_TUNNEL;
  CHECK_INT(pk_session_connect(&p->c->s, ks, PK_MAX_KITES_PER_TUNNEL, "test", NULL), 0);
  CHECK(p->c->s.unsent > 0 && p->c->s.unsent < PK_MAX_KITES_PER_TUNNEL);
  pk_http_head h;
  CHECK_INT(pk_wire_parse_http_head(p->c->out, p->c->outlen, PK_HEAD_MAX, &h), 1);
  pk_session_counts counts;
  CHECK_INT(pk_session_accept(&p->r->s, &h, "key=", &(pk_relay_hello){"80", NULL, "sess-ws", NULL}, &counts), 0);
  p->c->outlen = 0;
  /* The connector reads the 101, then websocket frames both ways (set as
   * the owner of a websocket tunnel would). */
  char *eoh = strstr(p->r->out, "\r\n\r\n");
  size_t hl = eoh ? (size_t)(eoh + 4 - p->r->out) : 0;
  CHECK_INT(pk_session_recv(&p->c->s, p->r->out, hl, 2000), 0);
  memmove(p->r->out, p->r->out + hl, p->r->outlen - hl);
  p->r->outlen -= hl;
  p->c->s.ws = 1;
  settle(p->c, p->r);
  CHECK_INT(p->pol.nclaimed, PK_MAX_KITES_PER_TUNNEL);
  pair_free(p);
}

/* Control chunks are never tiny: pagekite.py reads at most 150 chunks per
 * ~50 KB read and dies on more, so a burst of EOFs or SKBs must not fit 150
 * chunks in one read. */
TEST(control_chunks_are_padded) {
  pair *p = pair_new();
  pk_session_kite k;
  kite(&k, "http", "a.example.test", "secret-a");
  fly(p, &k, 1);
  p->c->outlen = 0;
  CHECK_INT(pk_session_send_eof(&p->c->s, 12345, "RW"), 0);
  size_t eof_len = p->c->outlen;
  CHECK_INT(pk_session_send_skb(&p->c->s, 12345, 8), 0);
  size_t skb_len = p->c->outlen - eof_len;
  CHECK_INT(pk_session_ping(&p->c->s, 5000), 0);
  size_t ping_len = p->c->outlen - eof_len - skb_len;
  CHECK(eof_len >= PK_MIN_CONTROL_CHUNK && skb_len >= PK_MIN_CONTROL_CHUNK &&
        ping_len >= PK_MIN_CONTROL_CHUNK);
  CHECK(150 * PK_MIN_CONTROL_CHUNK > (size_t)(16 * 1024 - 128) * 31 / 10);
  /* ... and still read as what they are. */
  settle(p->c, p->r);
  CHECK_INT(p->r->s.state, PK_SESSION_OPEN);
  pair_free(p);
}

/* --authdomain: kites the remote authority vouches for.  Asked in-band
 * (AddKites), the answer follows in a NOOP when the authority has spoken. */
TEST(remote_answer_in_band) {
  pair *p = pair_new();
  p->pol.remote = 1;
  pk_session_kite k;
  kite(&k, "http", "r.example.test", "any-secret");
  pk_session_counts c = fly(p, &k, 1);
  CHECK_INT(c.challenged, 1);
  CHECK_INT(p->pol.npending, 1);
  CHECK(strstr(p->c->log, "OK:r.example.test") == NULL); /* not yet */
  CHECK_INT(p->r->s.auth_pending, 1);
  pk_session_counts d;
  static const char quota[] = "X-PageKite-Quota: 1024\r\n";
  CHECK_INT(pk_session_auth_done(&p->r->s, &p->pol.pending[0], 1, NULL, quota, sizeof(quota) - 1,
                                 &(pk_relay_hello){"80", NULL, "sess-1", NULL}, &d),
            0);
  CHECK_INT(p->pol.nclaimed, 1);
  settle(p->c, p->r);
  CHECK(strstr(p->c->log, "OK:r.example.test") != NULL);
  CHECK(strstr(p->r->log, "OK:r.example.test") != NULL);
  /* nothing pending: an answer out of the blue is refused */
  CHECK_INT(pk_session_auth_done(&p->r->s, &p->pol.pending[0], 1, NULL, NULL, 0,
                                 &(pk_relay_hello){"80", NULL, "sess-1", NULL}, &d),
            -1);
  pair_free(p);
}

/* A signed head (an old connector's reconnect, pagekite.py's way): the
 * reply waits until every kite of it is answered, then goes out whole. */
TEST(remote_answers_hold_the_head) {
  pair *p = pair_new();
  p->pol.remote = 1;
  pk_session_kite ks[3];
  kite(&ks[0], "http", "r.example.test", "any-secret");
  kite(&ks[1], "http", "r2.example.test", "x"); /* not "r.": unknown */
  kite(&ks[2], "http", "r.other.test", "any-secret");
  /* challenges first (the connector is an old one: it reconnects signed) */
  CHECK_INT(pk_session_connect(&p->c->s, ks, 3, "test", NULL), 0);
  pk_session_counts counts;
  CHECK_INT(relay_takes_head(p->r, p->c, &counts), 0);
  CHECK_INT(counts.challenged, 3);
  p->r->out[p->r->outlen] = 0;
  for (int i = 0; i < 3; i++) { /* each kite's challenge, from the relay's head */
    char pre[PK_NAME_MAX + 64];
    snprintf(pre, sizeof(pre), "X-PageKite-SignThis: http:%s:%s:", ks[i].name, ks[i].bsalt);
    const char *t = strstr(p->r->out, pre);
    CHECK(t != NULL);
    if (t) snprintf(ks[i].fsalt, sizeof(ks[i].fsalt), "%.36s", t + strlen(pre));
  }
  end *c2 = end_new(NULL), *r2 = end_new(&p->pol);
  CHECK_INT(pk_session_connect(&c2->s, ks, 3, "test", NULL), 0);
  CHECK_INT(relay_takes_head(r2, c2, &counts), 0);
  CHECK_INT(counts.pending, 2);
  CHECK_INT(counts.bad, 1); /* r2.example.test: unknown, answered at once... */
  CHECK_INT(r2->outlen, 0); /* ...but nothing goes out before the authority's answers */
  CHECK_INT(r2->s.state, PK_SESSION_HANDSHAKE);
  CHECK_INT(p->pol.npending, 2);
  pk_relay_hello hello = {"80", NULL, "sess-2", NULL};
  static const char quota[] = "X-PageKite-Quota: 4096\r\n";
  CHECK_INT(pk_session_auth_done(&r2->s, &p->pol.pending[0], 1, NULL, quota, sizeof(quota) - 1,
                                 &hello, &counts),
            0);
  CHECK_INT(r2->outlen, 0);
  CHECK_INT(pk_session_auth_done(&r2->s, &p->pol.pending[1], 0, "expired", NULL, 0, &hello,
                                 &counts),
            1);
  CHECK_INT(counts.ok, 1);
  CHECK_INT(counts.bad, 2); /* the unknown one, and the refused one */
  CHECK_INT(r2->s.state, PK_SESSION_OPEN);
  r2->out[r2->outlen] = 0;
  CHECK(strncmp(r2->out, "HTTP/1.1 200", 12) == 0 || strncmp(r2->out, "HTTP/1.0 200", 12) == 0);
  CHECK(strstr(r2->out, "X-PageKite-OK: http:r.example.test:") != NULL);
  CHECK(strstr(r2->out, "X-PageKite-Quota: 4096\r\n") != NULL);
  CHECK(strstr(r2->out, "X-PageKite-Invalid-Why: http:r2.example.test:") != NULL);
  CHECK(strstr(r2->out, "X-PageKite-Invalid-Why: http:r.other.test:bsr.other.test;expired") != NULL);
  CHECK(strstr(r2->out, "X-PageKite-SessionID: sess-2") != NULL);
  deliver(r2, c2, 0);
  CHECK(strstr(c2->log, "OK:r.example.test:") != NULL);
  CHECK(strstr(c2->log, "WHY:r.other.test:expired") != NULL);
  CHECK_INT(c2->opened, 1);
  end_free(c2), end_free(r2);
  pair_free(p);
}

int main(void) {
  RUN(remote_answer_in_band);
  RUN(remote_answers_hold_the_head);
  RUN(challenge_answered_in_band);
  RUN(every_reject_reason_reaches_connector);
  RUN(quota_and_duplicate);
  RUN(replayed_and_forged_signatures);
  RUN(old_relay_signed_reconnect);
  RUN(kites_added_later);
  RUN(refused_and_bad_heads);
  RUN(head_split_everywhere);
  RUN(websocket_reply);
  RUN(max_kites_one_tunnel);
  RUN(max_kites_longest_names);
  RUN(same_name_two_ports);
  RUN(websocket_form_rest_follows);
  RUN(control_chunks_are_padded);
  return TEST_DONE();
}

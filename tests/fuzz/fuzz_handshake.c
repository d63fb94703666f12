/* fuzz_handshake.c - the tunnel handshake and kite authentication of a
 * session (handshake.c, kiteauth.c, replay.c): a connector session and a
 * relay session against each other, and each against raw bytes.  No sockets,
 * no loop, no internal.h: only session.h and what it includes.
 *
 * Byte 0 & 3 picks the mode:
 *
 *  0 (a) raw bytes into a connector session after pk_session_connect(): the
 *        relay's head and the frames behind it, in pieces.  The connector's
 *        own request head goes to a real relay session R (which challenges
 *        its kites); everything else the connector sends goes to R too, so R
 *        checks that the connector only ever sends well-formed chunks and
 *        signs only its own kites, whatever it is fed.
 *        byte 0: bit 2 websocket framing, bit 3 authenticated from the start,
 *        bit 4 read in place (pk_session_recv_room/_inplace) when offered,
 *        bit 5 resume a session id, bits 6-7 clock step per piece;
 *        byte 1 piece size (0 all at once, 255 pseudo-random);
 *        byte 2 bits 0-2 number of kites (one byte each follows), bits 3-7
 *        seed; then the relay's bytes.
 *  1 (b) raw bytes as a connector's request head for a relay:
 *        pk_wire_parse_http_head(), pk_session_accept() (plain or websocket
 *        form), then the rest into pk_session_recv() of the relay session in
 *        pieces.  Whatever the relay sends is then fed to a connector session
 *        with no kites, which must be able to read it all.
 *        byte 0: bit 2 websocket form, bits 4-7 names 0-3 live on another
 *        tunnel (duplicates); byte 1 quota; byte 2 piece size; then the head.
 *  2, 3 (c) a real connector session C and a real relay session R exchange
 *        bytes until quiet (bounded rounds).
 *        byte 0: bit 2 websocket form, bit 3 strip the relay's AddKites
 *        feature (an old relay: C is told to reconnect with the signatures,
 *        which the harness does, on a new R), bit 4 flip a byte of R's
 *        output, bit 5 inject NOOP kite requests from C's side later
 *        (AddKites); byte 1 number of kites (0-7, or 8-66 when >= 0xe0:
 *        up to two more than a tunnel may carry); byte 2 quota; byte 3 names
 *        0-7 live on another tunnel (duplicates); byte 4 piece size; bytes
 *        5-7 the flip (round in bits 6-7 of byte 5, offset, xor mask); byte
 *        8 bits 0-2 number of injected requests, bit 3 re-request our kites
 *        through pk_session_request(); then one byte per kite (bits 0-3
 *        name, bits 4-6 protoport, bit 7 wrong secret) and one per injection
 *        (bit 7 one of C's kites, else bits 0-3 name and 4-6 protoport of
 *        any kite: its challenge must be ignored).
 *
 * Names come from a fixed list of 16 (eight short, eight of 232-253
 * characters; twelve are the relay's domains, each with its secret);
 * protoports from http, http-8080, raw-80, htp, http-80, websocket, raw,
 * https.  The relay's policy takes port 80 (or none) and the protos http,
 * raw and websocket; a claim is refused as DUPLICATE when another tunnel has
 * the name, INVALID "quota" past the quota, and is idempotent on the tunnel
 * that holds it.  All relays of one input share one pk_replay.
 *
 * Invariants (abort() with a message):
 *  - every call returns -1 exactly when the session is DEAD; a DEAD session
 *    stays DEAD, takes no bytes and runs no callback; DEAD has a reason;
 *  - opened runs at most once, with the session OPEN and status 200 or 101;
 *    resign only after a challenge, and only when the relay does not speak
 *    AddKites; a SIGNTHIS answer always names one of the connector's kites;
 *  - the relay's verdicts: INVALID has one of the five reasons, OK and
 *    DUPLICATE only as the policy's claim said, a challenge token gets OK at
 *    most once (any relay of the input), count totals match accept's counts,
 *    no more challenges than PK_MAX_CHALLENGES_PER_TUNNEL, kite-request
 *    NOOPs never leak to the control callback;
 *  - a relay fed only by a connector session never dies, and signed requests
 *    only ever name the connector's kites; OK only with the right secret;
 *  - (b) the relay's output is readable by our connector (it may only die
 *    of a reply head larger than PK_HEAD_MAX or a chunk larger than an
 *    unauthenticated tunnel takes, and only when there was one);
 *  - (c) pk_session_connect() fails exactly when there are more than
 *    PK_MAX_KITES_PER_TUNNEL kites (those that do not fit the request head
 *    follow in NOOPs); the exchange always settles within its rounds; with
 *    no byte flipped: neither side dies, opened ran once, one session id,
 *    every kite's last answer at the connector is what the policy says (OK
 *    for the right secret and an allowed protoport unless it is a duplicate
 *    or past the quota; INVALID with the right reason: signature, unknown,
 *    port, proto, quota; DUPLICATE), exactly the OK kites are claimed by the
 *    relay, and answers name only kites the connector asked for;
 *  - (c) replay: the connector's recorded bytes (request head and frames)
 *    fed into a second relay session with the same replay store, with every
 *    claim released, never yield OK or DUPLICATE (with or without flips);
 *  - everything is freed (LeakSanitizer).
 *
 * Known bugs, stepped over when built with these macros (build.sh passes
 * them until c/src is fixed; corpus/handshake/regress-* reproduce them
 * without):
 *   FUZZ_HANDSHAKE_KNOWN_PROTO_MATCH_BUG  handshake.c kite_named() takes an
 *     answer about "raw:a" for an earlier "raw-80:a" kite (proto-only match
 *     before the exact one): raw-80 signs raw's challenge (INVALID
 *     signature) and raw never gets an answer.  The harness then makes no
 *     such lists and injects no such kites.
 *   FUZZ_HANDSHAKE_KNOWN_WS_REST_BUG  in the websocket form AddKites comes
 *     in the NOOP after the 101, after send_rest() looked for it, so kites
 *     that did not fit the request head are never requested.  The harness
 *     then keeps websocket kite lists within PK_KITE_LINES_HEAD.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RELAY_SECRET "fuzz-relay-secret-0123456789"
#define NOW_S 1800000000LL
#define QMAX (4u << 20) /* an owner's write-queue bound */
#define ROUNDS 12
#define MAXK (PK_MAX_KITES_PER_TUNNEL + 2)
#define NNAMES 16
#define NPP 8
#define NREG 256
#define NOKTOK 512

#define FAIL(...)                                \
  do {                                           \
    fprintf(stderr, "fuzz_handshake: ");         \
    fprintf(stderr, __VA_ARGS__);                \
    fprintf(stderr, "\n");                       \
    abort();                                     \
  } while (0)
#define CHECK(c)                                                         \
  do {                                                                   \
    if (!(c)) FAIL("invariant failed at line %d: %s", __LINE__, #c);     \
  } while (0)

/* ---- the fixed lists ---- */
static char names[NNAMES][PK_NAME_MAX];
static const char *secrets[NNAMES]; /* NULL: not one of the relay's domains */
static char long_secrets[NNAMES][32];

static const struct {
  const char *pp, *reason; /* reason: what the relay's policy says, or NULL */
} pps[NPP] = {{"http", NULL},      {"http-8080", "port"}, {"raw-80", NULL}, {"htp", "proto"},
              {"http-80", NULL},   {"websocket", NULL},   {"raw", NULL},    {"https", "proto"}};

static void setup(void) {
  static int done;
  static const char *shorts[8] = {"a.example.test",   "b.example.test",      "c.example.test",
                                  "www.d.example.test", "e.example.test",    "nobody.example.test",
                                  "evil.test",        "f.example.test"};
  static const char *short_secrets[8] = {"secret-a", "secret-b", "secret-c", "secret-d",
                                         "secret-e", NULL,       NULL,       "secret-f"};
  if (done) return;
  done = 1;
  for (int i = 0; i < 8; i++) {
    snprintf(names[i], PK_NAME_MAX, "%s", shorts[i]);
    secrets[i] = short_secrets[i];
  }
  /* Long names: 63-character labels, 253 down to 232 characters. */
  for (int i = 8; i < NNAMES; i++) {
    size_t len = 253 - 3 * (size_t)(i - 8);
    char *p = names[i];
    int n = snprintf(p, PK_NAME_MAX, "k%02d-", i);
    const char *suffix = ".example.test";
    size_t body = len - strlen(suffix);
    for (size_t j = (size_t)n; j < body; j++) p[j] = (j % 64 == 63) ? '.' : (char)('a' + i - 8);
    memcpy(p + body, suffix, strlen(suffix) + 1);
    if (i < 14) {
      snprintf(long_secrets[i], sizeof(long_secrets[i]), "secret-long-%d", i);
      secrets[i] = long_secrets[i];
    }
  }
}

/* ---- one input's world: the relays' shared replay store and registry ---- */
typedef struct {
  char name[PK_NAME_MAX];
  int owner; /* tunnel id; 0: another tunnel */
} claim;

typedef struct {
  pk_replay replay;
  claim reg[NREG];
  int nreg, quota;
  char ok_tokens[NOKTOK][PK_TOKEN_LEN + 8]; /* challenge tokens that got OK */
  int nok;
} world;

static void reg_add(world *w, const char *name, int owner) {
  if (w->nreg < NREG) {
    snprintf(w->reg[w->nreg].name, PK_NAME_MAX, "%s", name);
    w->reg[w->nreg++].owner = owner;
  }
}

static claim *reg_find(world *w, const char *name) {
  for (int i = 0; i < w->nreg; i++)
    if (strcmp(w->reg[i].name, name) == 0) return &w->reg[i];
  return NULL;
}

/* The claims of our tunnels go (the kites went down); other tunnels' stay. */
static void reg_release(world *w) {
  int k = 0;
  for (int i = 0; i < w->nreg; i++)
    if (w->reg[i].owner == 0) w->reg[k++] = w->reg[i];
  w->nreg = k;
}

/* ---- one end: a session, its output queue, what it reported ---- */
typedef struct {
  int final; /* last OK / INVALID / DUPLICATE answer (PK_ANS_*), 0: none */
  char why[48], pending_why[48];
  int signthis;
  char token[PK_TOKEN_LEN + 64]; /* last SignThis token */
  int relay_ok;                  /* the relay said OK for it */
} kstate;

typedef struct end end;
struct end {
  pk_session s;
  world *w;
  int relay, tunnel;
  int thief;  /* a relay fed a replay: no OK, no DUPLICATE */
  int hostile; /* a relay fed raw bytes: it may die */
  int strict; /* connector: answers must name our kites exactly */
  char *q;
  size_t qlen, qcap;
  int died;
  unsigned long cbs, cbs_at_death;
  uint64_t now;
  /* connector */
  int opened, resigned, sessions, signthis_seen;
  char session_id[80];
  pk_session_kite kites[MAXK]; /* the harness's copy */
  int nkites;
  kstate ks[MAXK];
  /* relay */
  end *conn;    /* the connector whose kites the signed requests must name */
  int v[6];     /* verdicts by kind (PENDING never reaches it: no remote policy) */
  int claim_v;  /* the last claim's verdict, -1: none */
  char claim_name[PK_NAME_MAX];
  const char *head_lo, *head_hi; /* accept's head, for X-PageKite-Replace */
};

static void check_state(end *e) {
  CHECK(e->s.inlen <= e->s.incap);
  CHECK(e->s.in != NULL || e->s.inlen == 0);
  if (e->s.state == PK_SESSION_DEAD) {
    if (!e->died) {
      e->died = 1;
      e->cbs_at_death = e->cbs;
    }
    CHECK(e->cbs == e->cbs_at_death);
    CHECK(e->s.why[0] != 0);
  } else {
    CHECK(!e->died);
  }
}

static void check_rv(end *e, int rv) {
  CHECK(rv == 0 || rv == -1);
  if ((rv == -1) != (e->s.state == PK_SESSION_DEAD))
    FAIL("%s: call returned %d with the session %s (%s)", e->relay ? "relay" : "connector", rv,
         e->s.state == PK_SESSION_DEAD ? "DEAD" : "alive", e->s.why);
  check_state(e);
  if (e->relay && e->s.state == PK_SESSION_DEAD && !e->thief && !e->hostile)
    FAIL("relay (fed only by a connector session) died: %s", pk_session_why(&e->s));
}

static void cb_enter(end *e) {
  if (e->s.state == PK_SESSION_DEAD || e->died) FAIL("callback on a DEAD session");
  e->cbs++;
}

static int cb_send(void *ctx, const char *a, size_t an, const char *b, size_t bn, void *b_buf) {
  end *e = ctx;
  CHECK(an + bn > 0);
  CHECK(!an || a);
  CHECK(!bn || b);
  if (e->s.state == PK_SESSION_DEAD) FAIL("send on a DEAD session");
  if (e->qlen + an + bn > QMAX) return -1;
  if (e->qlen + an + bn > e->qcap) {
    size_t cap = e->qcap ? e->qcap : 4096;
    while (cap < e->qlen + an + bn) cap *= 2;
    char *nq = realloc(e->q, cap);
    if (!nq) abort();
    e->q = nq;
    e->qcap = cap;
  }
  if (an) memcpy(e->q + e->qlen, a, an);
  if (bn) memcpy(e->q + e->qlen + an, b, bn);
  e->qlen += an + bn;
  return 0;
}

static void cb_data(void *ctx, const pk_chunk *ch) {
  end *e = ctx;
  cb_enter(e);
  CHECK(ch->sid >= 0);
  CHECK(!ch->noop && !ch->eof);
  CHECK(ch->data.n <= PK_MAX_CHUNK);
}

static void cb_eof(void *ctx, long long sid, int bits) {
  cb_enter(ctx);
  CHECK(sid >= 0);
  CHECK(bits >= 1 && bits <= 3);
}

static void cb_credit(void *ctx, long long sid, long long kb) {
  cb_enter(ctx);
  CHECK(sid >= 0);
}

static void cb_control(void *ctx, const pk_chunk *ch) {
  end *e = ctx;
  cb_enter(e);
  CHECK(ch->noop);
  /* Kite requests (relay) and answers (connector) are the handshake's. */
  CHECK(!e->relay || !pk_wire_chunk_get(ch, "X-PageKite").p);
  CHECK(e->relay); /* a connector with a role takes every NOOP itself */
}

/* ---- relay: policy, claims, verdicts ---- */
static const char *pol_secret(void *ctx, const pk_kite_req *k, const char **reason) {
  end *e = ctx;
  cb_enter(e);
  CHECK(k->name[0] && k->protoport[0]);
  for (const char *p = k->name; *p; p++) CHECK(!(*p >= 'A' && *p <= 'Z'));
  if (k->port != 0 && k->port != 80) {
    *reason = "port";
    return NULL;
  }
  if (strcmp(k->proto, "http") && strcmp(k->proto, "raw") && strcmp(k->proto, "websocket")) {
    *reason = "proto";
    return NULL;
  }
  for (int i = 0; i < NNAMES; i++)
    if (secrets[i] && strcmp(names[i], k->name) == 0) return secrets[i];
  *reason = "unknown";
  return NULL;
}

static pk_auth_verdict pol_claim(void *ctx, const pk_kite_req *k, const char **reason) {
  end *e = ctx;
  cb_enter(e);
  pk_auth_verdict v;
  claim *c = reg_find(e->w, k->name);
  if (c) {
    v = c->owner == e->tunnel ? PK_AUTH_OK : PK_AUTH_DUPLICATE;
  } else if (e->w->nreg >= e->w->quota || e->w->nreg >= NREG) {
    *reason = "quota";
    v = PK_AUTH_INVALID;
  } else {
    reg_add(e->w, k->name, e->tunnel);
    v = PK_AUTH_OK;
  }
  e->claim_v = (int)v;
  snprintf(e->claim_name, sizeof(e->claim_name), "%s", k->name);
  return v;
}

static void cb_policy(void *ctx, pk_slice replace, pk_auth_relay *a) {
  end *e = ctx;
  cb_enter(e);
  CHECK(e->relay);
  CHECK(replace.p || replace.n == 0);
  if (replace.p && e->head_lo)
    CHECK(replace.p >= e->head_lo && replace.p + replace.n <= e->head_hi);
  a->relay_secret = RELAY_SECRET;
  a->replay = &e->w->replay;
  a->now = NOW_S;
  a->ctx = e;
  a->secret = pol_secret;
  a->claim = pol_claim;
}

/* Index of the connector's kite named exactly (protoport, name), or -1. */
static int kite_exact(const end *c, const char *pp, const char *name) {
  for (int i = 0; i < c->nkites; i++)
    if (strcasecmp(c->kites[i].protoport, pp) == 0 && strcasecmp(c->kites[i].name, name) == 0)
      return i;
  return -1;
}

static int is_reason(const char *why) {
  static const char *ok[] = {"signature", "replay", "unknown", "port", "proto", "quota"};
  for (size_t i = 0; why && i < sizeof(ok) / sizeof(ok[0]); i++)
    if (strcmp(why, ok[i]) == 0) return 1;
  return 0;
}

static void cb_verdict(void *ctx, const pk_kite_req *k, pk_auth_verdict v, const char *why) {
  end *e = ctx;
  cb_enter(e);
  CHECK(e->relay);
  CHECK(v >= PK_AUTH_CHALLENGED && v <= PK_AUTH_IGNORED);
  e->v[v]++;
  if (v == PK_AUTH_CHALLENGED) CHECK(e->s.challenges <= PK_MAX_CHALLENGES_PER_TUNNEL);
  if (v == PK_AUTH_INVALID && !is_reason(why)) FAIL("INVALID with reason %s", why ? why : "NULL");
  if (v == PK_AUTH_INVALID && !strcmp(why, "quota"))
    CHECK(e->claim_v == PK_AUTH_INVALID && !strcmp(e->claim_name, k->name));
  if (v == PK_AUTH_OK || v == PK_AUTH_DUPLICATE)
    CHECK(e->claim_v == (int)v && !strcmp(e->claim_name, k->name));
  e->claim_v = -1;
  if (e->thief && (v == PK_AUTH_OK || v == PK_AUTH_DUPLICATE))
    FAIL("replayed handshake: %s for %s (token %s)", v == PK_AUTH_OK ? "OK" : "DUPLICATE", k->what,
         k->token);
  if (v == PK_AUTH_OK) {
    for (int i = 0; i < e->w->nok; i++)
      if (!strcmp(e->w->ok_tokens[i], k->token)) FAIL("challenge %s answered OK twice", k->token);
    if (e->w->nok < NOKTOK)
      snprintf(e->w->ok_tokens[e->w->nok++], PK_TOKEN_LEN + 8, "%s", k->token);
    e->s.authed = 1; /* a kite is live on this tunnel */
  }
  /* A connector session signs its own kites only, with its own secrets. */
  if (e->conn && (v == PK_AUTH_OK || v == PK_AUTH_INVALID || v == PK_AUTH_DUPLICATE)) {
    int i = kite_exact(e->conn, k->protoport, k->name);
    if (i < 0) FAIL("relay got a signed request for %s, not one of the connector's kites", k->what);
    if (v == PK_AUTH_OK) {
      const char *want = NULL;
      for (int j = 0; j < NNAMES; j++)
        if (secrets[j] && !strcmp(names[j], k->name)) want = secrets[j];
      if (!want || strcmp(want, e->conn->kites[i].secret))
        FAIL("OK for %s signed with the wrong secret", k->what);
      if (!e->thief) e->conn->ks[i].relay_ok = 1;
    }
  }
}

/* ---- connector: answers, resign, opened ---- */
/* Our kite an answer names, as handshake.c matches it: the protoport as
 * sent or just its proto, and the name. */
static int kite_loose(const end *c, const pk_auth_answer *a) {
  for (int i = 0; i < c->nkites; i++) {
    const pk_session_kite *k = &c->kites[i];
    size_t pl = strcspn(k->protoport, "-");
    int proto_only = strlen(a->protoport) == pl && strncasecmp(k->protoport, a->protoport, pl) == 0;
    if ((strcasecmp(k->protoport, a->protoport) == 0 || proto_only) &&
        strcasecmp(k->name, a->name) == 0)
      return i;
  }
  return -1;
}

static void cb_answer(void *ctx, const pk_auth_answer *a) {
  end *e = ctx;
  cb_enter(e);
  CHECK(!e->relay);
  CHECK(a->kind >= PK_ANS_OK && a->kind <= PK_ANS_MOTD && a->kind != PK_ANS_FEATURE);
  if (a->kind == PK_ANS_MOTD) { /* a relay's message of the day: decoded, no control bytes */
    CHECK(a->detail[0] != 0);
    for (const char *p = a->detail; *p; p++) CHECK((unsigned char)*p >= ' ' && *p != 0x7f);
    return;
  }
  if (a->kind == PK_ANS_SESSION) {
    e->sessions++;
    snprintf(e->session_id, sizeof(e->session_id), "%s", a->detail);
    return;
  }
  if (a->kind == PK_ANS_SIGNTHIS) {
    e->signthis_seen++;
    if (kite_loose(e, a) < 0)
      FAIL("SIGNTHIS for %s:%s passed on: not our kite", a->protoport, a->name);
  }
  int i = kite_exact(e, a->protoport, a->name);
  if (e->strict && i < 0)
    FAIL("answer %d names %s:%s, a kite the connector did not ask for", (int)a->kind, a->protoport,
         a->name);
  if (i < 0) return;
  kstate *k = &e->ks[i];
  switch (a->kind) {
    case PK_ANS_WHY:
      if (e->strict && !is_reason(a->detail)) FAIL("Invalid-Why reason %s", a->detail);
      snprintf(k->pending_why, sizeof(k->pending_why), "%s", a->detail);
      break;
    case PK_ANS_INVALID:
      k->final = PK_ANS_INVALID;
      snprintf(k->why, sizeof(k->why), "%s", k->pending_why);
      k->pending_why[0] = 0;
      break;
    case PK_ANS_OK:
      e->s.authed = 1; /* a kite is live on this tunnel */
      /* fall through */
    case PK_ANS_DUPLICATE:
      k->final = a->kind;
      k->why[0] = 0;
      break;
    case PK_ANS_SIGNTHIS:
      k->signthis++;
      snprintf(k->token, sizeof(k->token), "%s", a->detail);
      break;
    default:
      break;
  }
}

static void cb_resign(void *ctx) {
  end *e = ctx;
  cb_enter(e);
  CHECK(!e->relay);
  CHECK(e->signthis_seen > 0);
  CHECK(!(e->s.state == PK_SESSION_OPEN && e->s.peer_addkites));
  e->resigned++;
}

static void cb_opened(void *ctx) {
  end *e = ctx;
  cb_enter(e);
  CHECK(!e->relay);
  CHECK(++e->opened == 1);
  CHECK(e->s.state == PK_SESSION_OPEN);
  CHECK(e->s.peer_status == 200 || e->s.peer_status == 101);
}

static const pk_session_cb callbacks = {.send = cb_send,
                                        .data = cb_data,
                                        .eof = cb_eof,
                                        .credit = cb_credit,
                                        .control = cb_control,
                                        .policy = cb_policy,
                                        .verdict = cb_verdict,
                                        .answer = cb_answer,
                                        .resign = cb_resign,
                                        .opened = cb_opened};

static void end_init(end *e, world *w, int relay, int tunnel) {
  memset(e, 0, sizeof(*e));
  e->w = w;
  e->relay = relay;
  e->tunnel = tunnel;
  e->claim_v = -1;
  e->now = 1000;
  pk_session_init(&e->s, &callbacks, e, e->now);
}

static void end_free(end *e) {
  unsigned long before = e->cbs;
  pk_session_free(&e->s);
  CHECK(e->s.state == PK_SESSION_DEAD && e->s.in == NULL && e->s.zbuf == NULL &&
        e->s.zobuf == NULL && e->s.kites == NULL);
  char one = '1';
  CHECK(pk_session_recv(&e->s, &one, 1, e->now) == -1);
  CHECK(e->cbs == before);
  free(e->q);
  e->q = NULL;
  e->qlen = e->qcap = 0;
}

/* Takes e's queued output (the caller frees it). */
static char *take_q(end *e, size_t *n) {
  char *q = e->q;
  *n = e->qlen;
  e->q = NULL;
  e->qlen = e->qcap = 0;
  return q;
}

static unsigned lcg(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 16;
}

typedef struct {
  size_t piece; /* 0: all at once */
  int random_pieces, inplace;
  unsigned seed;
} feeding;

static feeding feeding_of(unsigned b, unsigned seed) {
  feeding f = {b == 255 ? 0 : b, b == 255, 0, seed};
  return f;
}

/* Feeds n bytes to e in pieces, each from an exact-size heap copy (or read
 * in place into the session's frame buffer).  Stops when e dies. */
static void feed(end *e, const char *p, size_t n, feeding *f) {
  size_t pos = 0;
  while (pos < n) {
    size_t k = f->random_pieces ? 1 + lcg(&f->seed) % 300 : f->piece ? f->piece : n;
    if (k > n - pos) k = n - pos;
    unsigned long before = e->cbs;
    int dead_before = e->s.state == PK_SESSION_DEAD;
    char *base = NULL;
    size_t room = f->inplace ? pk_session_recv_room(&e->s, &base) : 0;
    int rv;
    if (room) {
      CHECK(!dead_before);
      CHECK(base >= e->s.in && base + room == e->s.in + e->s.incap);
      if (k > room) k = room;
      memcpy(base, p + pos, k);
      rv = pk_session_recv_inplace(&e->s, k, e->now);
    } else {
      char *copy = malloc(k);
      if (!copy) abort();
      memcpy(copy, p + pos, k);
      rv = pk_session_recv(&e->s, copy, k, e->now);
      free(copy);
    }
    if (dead_before) CHECK(rv == -1 && e->cbs == before);
    check_rv(e, rv);
    pos += k;
    if (rv < 0) break;
  }
}

/* A kite of the fixed lists; bsalt is 36 digits of its slot. */
static void make_kite(pk_session_kite *k, int ni, int pi, int wrong, int slot) {
  memset(k, 0, sizeof(*k));
  snprintf(k->protoport, sizeof(k->protoport), "%s", pps[pi].pp);
  snprintf(k->name, sizeof(k->name), "%s", names[ni]);
  snprintf(k->secret, sizeof(k->secret), "%s",
           secrets[ni] && !wrong ? secrets[ni] : wrong ? "wrong-secret" : "any-secret");
  snprintf(k->bsalt, sizeof(k->bsalt), "%036d", slot);
}

#ifdef FUZZ_HANDSHAKE_KNOWN_PROTO_MATCH_BUG
/* 1 when one of ks[0..n) would take an answer about (pp, name) that is not
 * its own: same name, and pp is just its proto ("raw" for "raw-80"). */
static int shadowed(const pk_session_kite *ks, int n, const char *pp, const char *name) {
  for (int i = 0; i < n; i++) {
    size_t pl = strcspn(ks[i].protoport, "-");
    if (strcasecmp(ks[i].protoport, pp) && strlen(pp) == pl &&
        !strncasecmp(ks[i].protoport, pp, pl) && !strcasecmp(ks[i].name, name))
      return 1;
  }
  return 0;
}
#endif

/* Kites from input bytes (bits 0-3 name, 4-6 protoport, 7 wrong secret),
 * each (protoport, name) once, their request lines (signed, with a
 * challenge) within line_budget bytes.  Returns how many; ni/pi/wrong per
 * kite. */
static int kites_from(const uint8_t *b, size_t nb, int want, size_t line_budget,
                      pk_session_kite *ks, int *ni, int *pi, int *wrong) {
  int n = 0;
  size_t lines = 0;
  for (size_t j = 0; j < nb && n < want; j++) {
    int a = b[j] & 15, p = (b[j] >> 4) & 7, dup = 0;
    size_t line = strlen("X-PageKite: ::::\r\n") + strlen(pps[p].pp) + strlen(names[a]) +
                  3 * PK_TOKEN_LEN;
    if (lines + line > line_budget) break;
    for (int i = 0; i < n; i++) dup |= ni[i] == a && pi[i] == p;
#ifdef FUZZ_HANDSHAKE_KNOWN_PROTO_MATCH_BUG
    /* Known bug: handshake.c's kite_named() takes an answer about "raw:a"
     * for an earlier "raw-80:a" kite; step over lists where that happens. */
    dup |= shadowed(ks, n, pps[p].pp, names[a]);
#endif
    if (dup) continue;
    lines += line;
    ni[n] = a;
    pi[n] = p;
    wrong[n] = b[j] >> 7;
    make_kite(&ks[n], a, p, wrong[n], n);
    n++;
  }
  return n;
}

/* The relay takes a connector's request head (q, n: exactly the head; the
 * caller keeps q). */
static int relay_takes(end *r, const char *q, size_t n, int ws, pk_session_counts *counts) {
  pk_http_head h;
  int rc = pk_wire_parse_http_head(q, n, PK_HEAD_MAX, &h);
  if (rc != 1 || h.head_len != n)
    FAIL("connector's request head does not parse (%d, %zu of %zu)", rc, h.head_len, n);
  memset(r->v, 0, sizeof(r->v));
  r->head_lo = q;
  r->head_hi = q + n;
  pk_relay_hello hello = {"80", ws ? "virtual" : NULL, r->tunnel == 1 ? "sess-1" : "sess-n",
                          ws ? "motd: <b>&\"\n\t\xff" : NULL};
  int rv = pk_session_accept(&r->s, &h, ws ? "fuzzaccept=" : NULL, &hello, counts);
  r->head_lo = r->head_hi = NULL;
  check_rv(r, rv);
  CHECK(counts->ok == r->v[PK_AUTH_OK]);
  CHECK(counts->challenged == r->v[PK_AUTH_CHALLENGED]);
  CHECK(counts->bad >= r->v[PK_AUTH_INVALID] + r->v[PK_AUTH_DUPLICATE] + r->v[PK_AUTH_IGNORED]);
  return rv;
}

/* ---- mode (c) ---- */
typedef struct {
  int ws, strip, mutate, inject;
  int mround;
  size_t moff;
  uint8_t mask;
  feeding f;
  int mutated;  /* a byte of the relay's output was flipped */
  char *rec;    /* the connector's frames (for the replay check) */
  size_t reclen;
} copts;

static void record(copts *o, const char *p, size_t n) {
  char *nr = realloc(o->rec, o->reclen + n + 1);
  if (!nr) abort();
  o->rec = nr;
  memcpy(o->rec + o->reclen, p, n);
  o->reclen += n;
}

/* Rounds of delivery both ways until quiet. */
static void exchange(end *c, end *r, copts *o, int *round) {
  for (int i = 0; i < ROUNDS; i++, (*round)++) {
    int moved = 0;
    size_t n;
    if (r->qlen) {
      char *p = take_q(r, &n);
      if (o->mutate && *round == o->mround && n) {
        p[o->moff % n] ^= o->mask;
        o->mutated = 1;
      }
      if (c->s.state != PK_SESSION_DEAD) feed(c, p, n, &o->f);
      free(p);
      moved = 1;
    }
    if (c->qlen) {
      char *p = take_q(c, &n);
      record(o, p, n);
      if (r->s.state != PK_SESSION_DEAD) feed(r, p, n, &o->f);
      free(p);
      moved = 1;
    }
    if (!moved) break;
  }
  /* Every answer leads to at most one more request: it always settles. */
  if (c->qlen || r->qlen)
    FAIL("no quiet after %d rounds (%zu, %zu bytes queued)", ROUNDS, c->qlen, r->qlen);
}

static const char *kind_name(int k) {
  static const char *n[] = {"none",      "OK",       "INVALID", "WHY",
                            "DUPLICATE", "SIGNTHIS", "SESSION", "FEATURE"};
  return k >= 0 && k < 8 ? n[k] : "?";
}

static void dump_kites(const end *c, const int *want, const char *const *why) {
  for (int i = 0; i < c->nkites; i++)
    fprintf(stderr,
            "  kite %d %s:%.40s%s secret %s: want %s %s, got %s %s (signthis %d relay_ok %d)\n", i,
            c->kites[i].protoport, c->kites[i].name, strlen(c->kites[i].name) > 40 ? "..." : "",
            c->kites[i].secret, kind_name(want[i]), why[i] ? why[i] : "", kind_name(c->ks[i].final),
            c->ks[i].why, c->ks[i].signthis, c->ks[i].relay_ok);
}

static void mode_c(world *w, const uint8_t *d, size_t size) {
  if (size < 9) return;
  copts o;
  memset(&o, 0, sizeof(o));
  o.ws = (d[0] >> 2) & 1;
  o.strip = (d[0] >> 3) & 1;
  o.mutate = (d[0] >> 4) & 1;
  o.inject = (d[0] >> 5) & 1;
  /* Up to 7 kites, or (byte 1 >= 0xe0, an eighth of the values: the long
   * runs) 8-70 of them, 66 at most: two more than a tunnel may carry. */
  int want = d[1] >= 0xe0 ? 8 + (d[1] & 31) * 2 : d[1] & 7;
  if (want > MAXK) want = MAXK;
  w->quota = d[2];
  for (int i = 0; i < 8; i++)
    if (d[3] & (1 << i)) reg_add(w, names[i], 0);
  /* Pieces of 32-8128 bytes or pseudo-random 1-300 (small fixed pieces of
   * a long head cost quadratic time: the connector parses its buffered
   * head again on every read; test_handshake.c splits one at every byte). */
  o.f = feeding_of(d[4] == 255 ? 255 : d[4] * 32u, d[5] * 7u + d[6]);
  o.mround = d[5] >> 6;
  o.moff = ((size_t)(d[5] & 0x3f) << 8) | d[6];
  o.mask = d[7] ? d[7] : 1;
  int ninj = o.inject ? d[8] & 7 : 0;

  static pk_session_kite ks[MAXK];
  int ni[MAXK], pi[MAXK], wrong[MAXK];
  const uint8_t *kb = d + 9;
  size_t nkb = size - 9;
  size_t used = (size_t)want < nkb ? (size_t)want : nkb;
  size_t budget = SIZE_MAX;
#ifdef FUZZ_HANDSHAKE_KNOWN_WS_REST_BUG
  /* Known bug: in the websocket form AddKites comes in the NOOP after the
   * 101, after send_rest() gave up, so kites that do not fit the request
   * head are never requested; step over lists that do not fit. */
  if (o.ws) budget = PK_KITE_LINES_HEAD;
#endif
  int nk = kites_from(kb, used, want, budget, ks, ni, pi, wrong);
  const uint8_t *inj = kb + used;
  size_t ninj_avail = nkb - used;
  if ((size_t)ninj > ninj_avail) ninj = (int)ninj_avail;

  /* What the policy will say about each kite, in the order the relay sees
   * the signed requests (the connector's list order). */
  int exp_kind[MAXK];
  const char *exp_why[MAXK];
  {
    claim reg[NREG];
    int nreg = w->nreg;
    memcpy(reg, w->reg, sizeof(claim) * (size_t)nreg);
    for (int i = 0; i < nk; i++) {
      const char *why = pps[pi[i]].reason;
      if (!why && !secrets[ni[i]]) why = "unknown";
      if (!why && wrong[i]) why = "signature";
      exp_kind[i] = PK_ANS_INVALID;
      exp_why[i] = why;
      if (why) continue;
      int found = 0;
      for (int j = 0; j < nreg; j++)
        if (!strcmp(reg[j].name, names[ni[i]])) found = reg[j].owner ? 1 : 2;
      if (found == 1) {
        exp_kind[i] = PK_ANS_OK;
      } else if (found == 2) {
        exp_kind[i] = PK_ANS_DUPLICATE;
      } else if (nreg >= w->quota || nreg >= NREG) {
        exp_why[i] = "quota";
      } else {
        snprintf(reg[nreg].name, PK_NAME_MAX, "%s", names[ni[i]]);
        reg[nreg++].owner = 1;
        exp_kind[i] = PK_ANS_OK;
      }
    }
  }

  end c, r, c2, r2;
  end *fc = &c, *fr = &r; /* the final pair */
  int have2 = 0, round = 0;
  char *head = NULL;
  size_t headlen = 0;
  end_init(&c, w, 0, 0);
  end_init(&r, w, 1, 1);
  c.strict = !o.mutate;
  c.s.ws = o.ws;
  memcpy(c.kites, ks, sizeof(ks[0]) * (size_t)nk);
  c.nkites = nk;
  r.conn = &c;

  int rv = pk_session_connect(&c.s, ks, nk, "fuzz", NULL);
  check_rv(&c, rv);
  /* Kite lines that do not fit the head follow in NOOPs: only the count
   * is a limit. */
  if ((rv == 0) != (nk <= PK_MAX_KITES_PER_TUNNEL))
    FAIL("connect with %d kites returned %d: %s", nk, rv, c.s.why);
  if (rv != 0) {
    CHECK(strstr(pk_session_why(&c.s), "too many kites") != NULL);
    CHECK(c.qlen == 0);
    goto out;
  }
  pk_session_counts counts;
  head = take_q(&c, &headlen);
  rv = relay_takes(&r, head, headlen, o.ws, &counts);
  CHECK(rv == 0);
  CHECK(counts.ok == 0 && counts.bad == 0 && counts.challenged <= nk);
  CHECK(counts.challenged > 0 || nk == 0);
  if (o.strip) {
    /* An old relay: no AddKites (in the head, or the websocket NOOP). */
    char *f = memmem(r.q, r.qlen, "X-PageKite-Features: AddKites\r\n", 31);
    CHECK(f != NULL);
    memcpy(f, "X-PageKite-Xeatures", 19);
  }
  exchange(&c, &r, &o, &round);

  if (c.resigned && c.s.state != PK_SESSION_DEAD) {
    /* The owner reconnects with the signatures, on a new tunnel. */
    pk_session_kite *k2 = calloc(MAXK, sizeof(*k2));
    if (!k2) abort();
    memcpy(k2, ks, sizeof(ks[0]) * (size_t)nk);
    for (int i = 0; i < nk; i++)
      if (c.ks[i].signthis) snprintf(k2[i].fsalt, sizeof(k2[i].fsalt), "%s", c.ks[i].token);
    end_init(&c2, w, 0, 0);
    end_init(&r2, w, 1, 2);
    have2 = 1;
    fc = &c2;
    fr = &r2;
    c2.strict = !o.mutate;
    c2.s.ws = o.ws;
    memcpy(c2.kites, k2, sizeof(k2[0]) * (size_t)nk);
    c2.nkites = nk;
    r2.conn = &c2;
    const char *resume = c.session_id[0] ? c.session_id : NULL;
    rv = pk_session_connect(&c2.s, k2, nk, "fuzz", resume);
    check_rv(&c2, rv);
    free(k2);
    if (rv != 0) FAIL("signed reconnect with %d kites failed: %s", nk, c2.s.why);
    free(head);
    head = NULL;
    free(o.rec);
    o.rec = NULL;
    o.reclen = 0;
    head = take_q(&c2, &headlen);
    rv = relay_takes(&r2, head, headlen, o.ws, &counts);
    CHECK(rv == 0);
    exchange(&c2, &r2, &o, &round);
  }

  if (ninj && fc->s.state == PK_SESSION_OPEN && fr->s.state == PK_SESSION_OPEN &&
      fc->s.peer_addkites) {
    /* Kite requests added later by the connector's owner (AddKites): ours
     * again (re-requests change nothing), or kites we do not fly (their
     * challenges must be ignored). */
    int use_request = (d[8] >> 3) & 1, nwant = 0;
    char want_again[MAXK] = {0};
    char *lines = malloc(4096);
    if (!lines) abort();
    pk_wbuf b;
    pk_wbuf_init(&b, lines, 4096);
    for (int j = 0; j < ninj; j++) {
      pk_session_kite k;
      if ((inj[j] & 0x80) && nk) {
        int i = (inj[j] & 0x7f) % nk;
        if (use_request) { /* the session's own re-request */
          nwant += !want_again[i];
          want_again[i] = 1;
          continue;
        }
        k = ks[i];
      } else {
        int a = inj[j] & 15, p = (inj[j] >> 4) & 7, i = kite_exact(fc, pps[p].pp, names[a]);
        if (i >= 0) {
          k = ks[i];
        } else {
#ifdef FUZZ_HANDSHAKE_KNOWN_PROTO_MATCH_BUG
          if (shadowed(ks, nk, pps[p].pp, names[a])) continue;
#endif
          make_kite(&k, a, p, 0, 100 + j);
        }
      }
      CHECK(pk_auth_sign_request(&b, k.protoport, k.name, k.bsalt, "", k.secret) == 0);
    }
    if (nwant) {
      rv = pk_session_request(&fc->s, ks, nk, want_again);
      check_rv(fc, rv);
    }
    if (b.len && fc->s.state != PK_SESSION_DEAD) {
      rv = pk_session_send_noop(&fc->s, lines, b.len);
      check_rv(fc, rv);
    }
    free(lines);
    exchange(fc, fr, &o, &round);
  }
  if (have2 && c.s.state == PK_SESSION_OPEN && !c.s.peer_addkites && nk) {
    /* The old relay's tunnel: no kites in-band, and nothing changes. */
    char all[MAXK];
    memset(all, 1, sizeof(all));
    CHECK(pk_session_request(&c.s, ks, nk, all) == -1);
    CHECK(c.s.state == PK_SESSION_OPEN && c.qlen == 0);
  }

  if (fc->s.state == PK_SESSION_DEAD && !o.mutated)
    FAIL("connector died talking to a real relay: %s", pk_session_why(&fc->s));
  if (!o.mutated) {
    CHECK(c.opened == 1);
    CHECK(fc->opened == 1);
    CHECK(fc->sessions == 1);
    CHECK(c.resigned == (o.strip && nk > 0));
    CHECK(!have2 || c2.resigned == 0);
    for (int i = 0; i < nk; i++) {
      int ok = fc->ks[i].final == exp_kind[i] && !fc->ks[i].pending_why[0] &&
               (exp_kind[i] != PK_ANS_INVALID || !strcmp(fc->ks[i].why, exp_why[i])) &&
               fc->ks[i].relay_ok == (exp_kind[i] == PK_ANS_OK);
      if (!ok) {
        fprintf(stderr,
                "fuzz_handshake: kite %d ends wrong (ws %d strip %d inject %d quota %d)\n", i,
                o.ws, o.strip, ninj, w->quota);
        dump_kites(fc, exp_kind, exp_why);
        FAIL("kite %s:%s did not end as the policy says", ks[i].protoport, ks[i].name);
      }
    }
    /* Exactly the OK kites are claimed by the relay that serves them. */
    for (int j = 0; j < w->nreg; j++) {
      if (!w->reg[j].owner) continue;
      CHECK(w->reg[j].owner == fr->tunnel);
      int found = 0;
      for (int i = 0; i < nk; i++)
        found |= exp_kind[i] == PK_ANS_OK && !strcmp(ks[i].name, w->reg[j].name);
      if (!found) FAIL("relay claimed %s, which no kite got OK for", w->reg[j].name);
    }
    for (int i = 0; i < nk; i++)
      if (exp_kind[i] == PK_ANS_OK) {
        claim *cl = reg_find(w, ks[i].name);
        CHECK(cl && cl->owner == fr->tunnel);
      }
  }

  /* Replay: the connector's bytes again, on a thief's tunnel, with every
   * claim released so that only the replay store stands in the way. */
  if (head) {
    end t;
    end_init(&t, w, 1, 9);
    t.thief = 1;
    t.conn = fc;
    reg_release(w);
    rv = relay_takes(&t, head, headlen, o.ws, &counts);
    CHECK(rv == 0);
    feeding whole = {0, 0, 0, 0};
    if (o.reclen) feed(&t, o.rec, o.reclen, &whole);
    end_free(&t);
  }

out:
  free(head);
  free(o.rec);
  end_free(&c);
  end_free(&r);
  if (have2) {
    end_free(&c2);
    end_free(&r2);
  }
}

/* ---- mode (a) ---- */
static void mode_a(world *w, const uint8_t *d, size_t size) {
  static const uint64_t steps[4] = {0, 500, 20001, 61000};
  if (size < 3) return;
  uint8_t o = d[0];
  int ws = (o >> 2) & 1;
  int want = d[2] & 7;
  size_t nkb = size - 3 < (size_t)want ? size - 3 : (size_t)want;
  pk_session_kite ks[8];
  int ni[8], pi[8], wrong[8];
  int nk = kites_from(d + 3, nkb, want, SIZE_MAX, ks, ni, pi, wrong);
  w->quota = 1000;

  end c, r;
  end_init(&c, w, 0, 0);
  end_init(&r, w, 1, 1);
  c.s.ws = ws;
  c.s.authed = (o >> 3) & 1;
  memcpy(c.kites, ks, sizeof(ks[0]) * (size_t)nk);
  c.nkites = nk;
  r.conn = &c;
  int rv = pk_session_connect(&c.s, ks, nk, "fuzz", (o >> 5) & 1 ? "sess-resumed" : NULL);
  check_rv(&c, rv);
  CHECK(rv == 0);
  pk_session_counts counts;
  size_t hn;
  char *hq = take_q(&c, &hn);
  CHECK(relay_takes(&r, hq, hn, ws, &counts) == 0);
  CHECK(counts.challenged == nk);
  free(hq);
  free(take_q(&r, &hn)); /* the fuzzer's bytes stand in for its reply */

  feeding f = feeding_of(d[1], d[2] >> 3);
  f.inplace = (o >> 4) & 1;
  feeding whole = {0, 0, 0, 0};
  const char *in = (const char *)d + 3 + nkb;
  size_t n = size - 3 - nkb, pos = 0;
  uint64_t step = steps[o >> 6];
  while (pos < n && c.s.state != PK_SESSION_DEAD) {
    size_t k = f.random_pieces ? 1 + lcg(&f.seed) % 300 : f.piece ? f.piece : n;
    if (k > n - pos) k = n - pos;
    feeding one = f;
    one.random_pieces = 0;
    one.piece = k;
    feed(&c, in + pos, k, &one);
    pos += k;
    c.now += step;
    check_rv(&c, pk_session_tick(&c.s, c.now));
    /* The connector's answers (signed kites, PONGs) go to the real relay. */
    size_t qn;
    char *q = take_q(&c, &qn);
    if (qn) feed(&r, q, qn, &whole);
    free(q);
    free(take_q(&r, &qn));
  }
  if (c.s.state == PK_SESSION_DEAD) {
    char junk[8] = "1\r\nSID:";
    unsigned long before = c.cbs;
    CHECK(pk_session_recv(&c.s, junk, sizeof(junk), c.now) == -1);
    CHECK(pk_session_tick(&c.s, c.now) == -1);
    CHECK(c.cbs == before);
  } else if (c.opened) {
    CHECK(c.s.state == PK_SESSION_OPEN);
  }
  end_free(&c);
  end_free(&r);
}

/* ---- mode (b) ---- */
static void mode_b(world *w, const uint8_t *d, size_t size) {
  if (size < 4) return;
  uint8_t o = d[0];
  int ws = (o >> 2) & 1;
  for (int i = 0; i < 4; i++)
    if (o & (0x10 << i)) reg_add(w, names[i], 0);
  w->quota = d[1];
  feeding f = feeding_of(d[2], d[1]);
  size_t n = size - 3;
  char *body = malloc(n);
  if (!body) abort();
  memcpy(body, d + 3, n);
  pk_http_head h;
  if (pk_wire_parse_http_head(body, n, PK_HEAD_MAX, &h) != 1) {
    free(body);
    return;
  }
  end r;
  end_init(&r, w, 1, 1);
  r.hostile = 1;
  r.head_lo = body;
  r.head_hi = body + n;
  pk_session_counts counts;
  pk_relay_hello hello = {"80, 443", NULL, "sess-b", NULL};
  int rv = pk_session_accept(&r.s, &h, ws ? "fuzzaccept=" : NULL, &hello, &counts);
  r.head_lo = r.head_hi = NULL;
  check_rv(&r, rv);
  CHECK(counts.ok == r.v[PK_AUTH_OK]);
  CHECK(counts.challenged == r.v[PK_AUTH_CHALLENGED]);
  CHECK(counts.bad >= r.v[PK_AUTH_INVALID] + r.v[PK_AUTH_DUPLICATE] + r.v[PK_AUTH_IGNORED]);
  if (rv == 0) {
    CHECK(r.s.state == PK_SESSION_OPEN);
    const char *want = ws ? "HTTP/1.1 101 " : "HTTP/1.1 200 OK\r\n";
    CHECK(r.qlen >= strlen(want) && !memcmp(r.q, want, strlen(want)));
    if (h.head_len < n) feed(&r, body + h.head_len, n - h.head_len, &f);
  }
  free(body);

  /* Our connector reads whatever the relay said. */
  if (r.qlen) {
    size_t qn;
    char *q = take_q(&r, &qn);
    const char *eoh = memmem(q, qn, "\r\n\r\n", 4);
    size_t head_len = eoh ? (size_t)(eoh - q) + 4 : qn + 1;
    end c;
    end_init(&c, w, 0, 0);
    c.s.ws = ws;
    CHECK(pk_session_connect(&c.s, NULL, 0, "fuzz", NULL) == 0);
    free(take_q(&c, &(size_t){0}));
    feeding whole = {0, 0, 0, 0};
    feed(&c, q, qn, &whole);
    if (c.s.state == PK_SESSION_DEAD) {
      const char *why = pk_session_why(&c.s);
      int big_head = head_len > PK_HEAD_MAX && !strcmp(why, "handshake response too large");
      int big_chunk = qn - (head_len < qn ? head_len : qn) > PK_UNAUTH_CHUNK &&
                      (!strcmp(why, "oversized chunk") || !strcmp(why, "bad websocket frame"));
      if (!big_head && !big_chunk)
        FAIL("our connector cannot read the relay's output (%zu bytes, head %zu): %s", qn,
             head_len, why);
    } else {
      CHECK(c.opened == 1);
    }
    free(q);
    end_free(&c);
  }
  end_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* One world for all inputs, reset each time (the replay store is 128 KiB:
   * cleared, not reallocated). */
  static world *w;
  if (size < 1) return 0;
  setup();
  if (!w) {
    w = calloc(1, sizeof(*w));
    if (!w || pk_replay_init(&w->replay, 42) != 0) abort();
  }
  memset(w->replay.used, 0, PK_REPLAY_RING / 8);
  w->replay.next = 42;
  w->nreg = w->nok = w->quota = 0;
  switch (data[0] & 3) {
    case 0:
      mode_a(w, data, size);
      break;
    case 1:
      mode_b(w, data, size);
      break;
    default:
      mode_c(w, data, size);
      break;
  }
  return 0;
}

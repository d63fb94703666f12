/* fuzz_session.c - arbitrary bytes into one tunnel's protocol session
 * (session.c), with a well-behaved peer session on the other end.  No
 * sockets, no loop, no internal.h.
 *
 * Session A is fed the input (as from a hostile peer) in pieces.  Everything
 * A sends is queued and fed to session B, and B's output back to A, until
 * both queues are empty (bounded rounds).  B's output goes to A only when A
 * holds no partial frame, so that it does not land inside a frame of the
 * input.  Both are ticked with an advancing fake clock.
 *
 * A reacts like an owner would: it echoes stream data (so it compresses when
 * B offered ZChunks), answers new streams and EOFs, and data starting with
 * a magic word makes it close ("CLOS"), ping ("PING"), ask B for a zlib reset
 * ("ZRST"), flip its authenticated flag ("AUTH"), or have B echo back
 * ("ECHO", so that B compresses towards A).  B gives SKB credit for data.
 *
 * Input: byte 0 = option bits
 *   0 websocket framing on both   1 A authenticated   2 B authenticated
 *   3 A compresses (A.peer_zchunks)                   4 B compresses
 *   5 read in place (pk_session_recv_room/_inplace) when offered
 *   6 A's send fails after (byte 2 & 31) calls        7 A starts authenticated
 *     only after its first piece (the kite goes live mid-stream)
 * byte 1 = piece size (0: all at once, 255: pseudo-random sizes), byte 2 =
 * bits 5-7 clock step per piece, bits 0-4 send budget / random seed; the
 * rest is the byte stream into A.
 *
 * Invariants (abort on violation): a call returns -1 exactly when the
 * session is DEAD; a DEAD session stays DEAD, its recv returns -1 and no
 * callback runs after it died; no callback runs on a DEAD session; inlen <=
 * incap; data/eof/credit callbacks get sid >= 0, data chunks are neither
 * NOOP nor EOF and no larger than PK_MAX_CHUNK; control chunks are NOOPs;
 * every send call is well-formed; no session ends with "chunk larger than
 * buffer" (a frame within the bound always fits).  B only ever sees what A
 * sent, so B must decode all of it: B may end only by ping timeout, a full
 * queue or a magic-word close.  Everything is freed at the end
 * (LeakSanitizer).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define QMAX (4u << 20)       /* an owner's write-queue bound */
#define ECHO_SID (1LL << 40)  /* B echoes on these SIDs; A does not echo them */
#define ROUNDS 8

typedef struct end end;
struct end {
  pk_session s;
  int is_a;
  end *peer;
  char *q;
  size_t qlen, qcap;
  int sends, fail_after; /* fail_after < 0: never */
  int died;              /* DEAD was observed */
  unsigned long cbs;     /* callbacks so far */
  unsigned long cbs_at_death;
  uint64_t now;
  int noz[8];
};

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "fuzz_session: invariant failed at line %d: %s\n", __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

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

/* What B may die of: it only ever gets A's well-formed output. */
static void check_b_death(end *b) {
  if (b->s.state != PK_SESSION_DEAD) return;
  const char *why = pk_session_why(&b->s);
  if (strcmp(why, "ping timeout") && strcmp(why, "fuzz close") &&
      strcmp(why, "cannot queue a chunk for the peer")) {
    fprintf(stderr, "fuzz_session: B (fed only by A) died: %s\n", why);
    abort();
  }
}

static void check_rv(end *e, int rv) {
  CHECK(rv == 0 || rv == -1);
  CHECK((rv == -1) == (e->s.state == PK_SESSION_DEAD));
  check_state(e);
  if (!e->is_a) check_b_death(e);
#ifndef FUZZ_SESSION_KNOWN_BUFFER_BUG
  /* Every frame the parser lets through fits the frame buffer, so this
   * reason must never be reached, whatever the input (built with
   * -DFUZZ_SESSION_KNOWN_BUFFER_BUG to step over it while it is open). */
  if (e->s.state == PK_SESSION_DEAD && !strcmp(e->s.why, "chunk larger than buffer")) {
    fprintf(stderr, "fuzz_session: %s died: chunk larger than buffer\n", e->is_a ? "A" : "B");
    abort();
  }
#endif
}

static void cb_enter(end *e) {
  CHECK(e->s.state != PK_SESSION_DEAD);
  CHECK(!e->died);
  e->cbs++;
}

static int cb_send(void *ctx, const char *a, size_t an, const char *b, size_t bn, void *b_buf) {
  end *e = ctx;
  CHECK(an + bn > 0);
  CHECK(!an || a);
  CHECK(!bn || b);
  CHECK(e->s.state != PK_SESSION_DEAD);
  e->sends++;
  if (e->fail_after >= 0 && e->sends > e->fail_after) return -1;
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

/* Largest echo that the peer takes in one chunk, headers included. */
static size_t echo_max(const end *e) {
  return (e->peer->s.authed ? PK_MAX_CHUNK : PK_UNAUTH_CHUNK) - 600;
}

static void copy_value(char *out, size_t cap, pk_slice v) {
  size_t n = 0;
  if (v.p)
    for (size_t i = 0; i < v.n && n + 1 < cap; i++)
      if (v.p[i] != 0) out[n++] = v.p[i];
  out[n] = 0;
}

static void magic(end *e, const pk_chunk *ch) {
  if (ch->data.n < 4) return;
  const char *p = ch->data.p;
  if (!memcmp(p, "CLOS", 4)) pk_session_close(&e->s, "fuzz close");
  else if (!memcmp(p, "PING", 4)) pk_session_ping(&e->s, e->now);
  else if (!memcmp(p, "ZRST", 4)) pk_session_send_noop(&e->s, "ZRST: 1\r\n", 9);
  else if (!memcmp(p, "AUTH", 4) && e->is_a) e->s.authed = !e->s.authed;
}

static void cb_data(void *ctx, const pk_chunk *ch) {
  end *e = ctx;
  cb_enter(e);
  CHECK(ch->sid >= 0);
  CHECK(!ch->noop && !ch->eof);
  CHECK(ch->data.n <= PK_MAX_CHUNK);
  CHECK(ch->data.p || ch->data.n == 0);
  int *noz = &e->noz[ch->sid & 7];
  size_t n = ch->data.n < echo_max(e) ? ch->data.n : echo_max(e);
  if (e->is_a) {
    if (ch->sid >= ECHO_SID) {
      /* B's echo: just count it */
    } else if (ch->known[PK_CH_PROTO].p) {
      char host[256], proto[32], hb[1024];
      pk_wbuf w;
      copy_value(host, sizeof(host), ch->known[PK_CH_HOST]);
      copy_value(proto, sizeof(proto), ch->known[PK_CH_PROTO]);
      pk_wbuf_init(&w, hb, sizeof(hb));
      pk_wire_stream_open(&w, ch->sid, proto, host, 80, "192.0.2.9", 1234, 0);
      if (pk_wbuf_ok(&w)) pk_session_send_headed(&e->s, hb, w.len, ch->data.p, n, NULL, noz);
    } else if (n) {
      pk_session_send_data(&e->s, ch->sid, ch->data.p, n, NULL, noz);
    }
  } else {
    pk_session_send_skb(&e->s, ch->sid, ch->data.n / 1024 + 1);
    if (ch->data.n >= 4 && !memcmp(ch->data.p, "ECHO", 4) && ch->sid < ECHO_SID)
      pk_session_send_data(&e->s, ch->sid | ECHO_SID, ch->data.p, n, NULL, noz);
  }
  if (e->s.state != PK_SESSION_DEAD) magic(e, ch);
}

static void cb_eof(void *ctx, long long sid, int bits) {
  end *e = ctx;
  cb_enter(e);
  CHECK(sid >= 0);
  CHECK(bits >= 1 && bits <= 3);
  if (e->is_a && sid < ECHO_SID) pk_session_send_eof(&e->s, sid, (bits & PK_EOF_WRITE) ? "W" : "R");
}

static void cb_credit(void *ctx, long long sid, long long kb) {
  end *e = ctx;
  cb_enter(e);
  CHECK(sid >= 0);
}

static void cb_control(void *ctx, const pk_chunk *ch) {
  end *e = ctx;
  cb_enter(e);
  CHECK(ch->noop);
  CHECK(ch->nheaders >= 1 && ch->nheaders <= PK_WIRE_MAX_HEADERS);
  if (e->is_a && pk_wire_chunk_get(ch, "X-Auth").p) e->s.authed = !e->s.authed;
}

static const pk_session_cb callbacks = {
    .send = cb_send, .data = cb_data, .eof = cb_eof, .credit = cb_credit, .control = cb_control};

static unsigned lcg(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 16;
}

typedef struct {
  size_t piece; /* 0: all at once */
  int random_pieces, inplace;
  unsigned seed;
} feeding;

/* Feed n bytes to e in pieces, each from an exact-size heap copy (or read in
 * place into the session's frame buffer).  Stops when e dies. */
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

/* Move queued output across until nothing moves (bounded). */
static void pump(end *a, end *b, feeding *fb) {
  for (int r = 0; r < ROUNDS; r++) {
    int moved = 0;
    if (a->qlen) {
      size_t n = a->qlen;
      char *q = a->q;
      a->q = NULL;
      a->qlen = a->qcap = 0;
      feed(b, q, n, fb);
      free(q);
      moved = 1;
    }
    /* B's frames go into A only at a frame boundary of A's input. */
    if (b->qlen && a->s.inlen == 0) {
      size_t n = b->qlen;
      char *q = b->q;
      b->q = NULL;
      b->qlen = b->qcap = 0;
      feeding whole = {0, 0, 0, 0};
      feed(a, q, n, &whole);
      free(q);
      moved = 1;
    }
    if (!moved) break;
  }
}

static void tick(end *e) {
  int rv = pk_session_tick(&e->s, e->now);
  check_rv(e, rv);
}

static void end_init(end *e, end *peer, int is_a, uint64_t now) {
  memset(e, 0, sizeof(*e));
  e->is_a = is_a;
  e->peer = peer;
  e->fail_after = -1;
  e->now = now;
  pk_session_init(&e->s, &callbacks, e, now);
  pk_session_open(&e->s);
}

static void end_free(end *e) {
  unsigned long before = e->cbs;
  pk_session_free(&e->s);
  CHECK(e->s.state == PK_SESSION_DEAD && e->s.in == NULL && e->s.zbuf == NULL && e->s.zobuf == NULL);
  char one = '1';
  CHECK(pk_session_recv(&e->s, &one, 1, e->now) == -1);
  CHECK(e->cbs == before);
  free(e->q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint64_t steps[8] = {0, 7, 500, 1999, 5000, 20001, 30001, 61000};
  end a, b;
  if (size < 3) return 0;
  uint8_t o = data[0], ps = data[1], o2 = data[2];
  uint64_t now = 1000, step = steps[o2 >> 5];
  end_init(&a, &b, 1, now);
  end_init(&b, &a, 0, now);
  a.s.ws = b.s.ws = o & 1;
  a.s.authed = (o >> 1) & 1;
  b.s.authed = (o >> 2) & 1;
  a.s.peer_zchunks = (o >> 3) & 1;
  b.s.peer_zchunks = (o >> 4) & 1;
  if (o & 0x40) a.fail_after = o2 & 31;
  int late_auth = (o >> 7) & 1;
  feeding fa = {ps == 255 ? 0 : ps, ps == 255, (o >> 5) & 1, o2 & 31};
  feeding fb = {ps == 255 ? 0 : ps, ps == 255, (o >> 5) & 1, (unsigned)o2 * 31u};

  const char *in = (const char *)data + 3;
  size_t n = size - 3, pos = 0;
  while (pos < n && a.s.state != PK_SESSION_DEAD) {
    size_t k = fa.random_pieces ? 1 + lcg(&fa.seed) % 300 : fa.piece ? fa.piece : n;
    if (k > n - pos) k = n - pos;
    feeding one = fa;
    one.random_pieces = 0;
    one.piece = k;
    feed(&a, in + pos, k, &one);
    pos += k;
    if (late_auth) {
      a.s.authed = 1;
      late_auth = 0;
    }
    a.now = b.now = now += step;
    tick(&a);
    tick(&b);
    pump(&a, &b, &fb);
  }
  /* Let things settle: more ticks (pings, timeouts, idle buffers) and
   * pumping, then feeding a dead session must do nothing. */
  for (int r = 0; r < 4; r++) {
    a.now = b.now = now += step * 3 + 1;
    tick(&a);
    tick(&b);
    pump(&a, &b, &fb);
  }
  if (a.s.state == PK_SESSION_DEAD) {
    char junk[8] = "1\r\nSID:";
    unsigned long before = a.cbs;
    CHECK(pk_session_recv(&a.s, junk, sizeof(junk), now) == -1);
    CHECK(pk_session_tick(&a.s, now) == -1);
    CHECK(a.cbs == before);
  }
#ifdef FUZZ_SESSION_TRACE
  fprintf(stderr, "A: %s cbs=%lu in=%llu out=%llu sends=%d rtt=%d | B: %s cbs=%lu in=%llu out=%llu\n",
          a.s.state == PK_SESSION_DEAD ? pk_session_why(&a.s) : "alive", a.cbs,
          (unsigned long long)a.s.bytes_in, (unsigned long long)a.s.bytes_out, a.sends, a.s.rtt_ms,
          b.s.state == PK_SESSION_DEAD ? pk_session_why(&b.s) : "alive", b.cbs,
          (unsigned long long)b.s.bytes_in, (unsigned long long)b.s.bytes_out);
#endif
  end_free(&a);
  end_free(&b);
  return 0;
}

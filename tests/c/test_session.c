/* test_session.c - one tunnel's chunk protocol (session.c), no sockets.
 *
 * A harness holds two sessions, A and B.  Each one's send callback appends
 * to its own output queue; a test delivers a queue to the other session
 * with pk_session_recv() (never from inside a callback) and looks at the
 * callbacks the receiver made, which are recorded as events and as one
 * canonical text log (so that feeding the same bytes in different ways can
 * be compared).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pk_test.h"
#include "session.h"

/* ---- growable byte buffer ---- */
typedef struct {
  char *p;
  size_t len, cap;
} bytes;

static void bytes_put(bytes *b, const void *p, size_t n) {
  if (n == 0) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) abort();
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void bytes_puts(bytes *b, const char *s) { bytes_put(b, s, strlen(s)); }

static void bytes_free(bytes *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

static int bytes_has(const bytes *b, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0) return 1;
  for (size_t i = 0; i + n <= b->len; i++)
    if (memcmp(b->p + i, needle, n) == 0) return 1;
  return 0;
}

/* ---- one end: a session, its output queue and what its callbacks saw ---- */
typedef struct {
  char kind;          /* 'D' data, 'E' eof, 'C' credit, 'N' control (NOOP) */
  long long sid, num; /* num: EOF bits or SKB kb */
  int alive;          /* the session was not DEAD during the callback */
  char hdrs[4096];    /* "\nName: value\n..." as parsed */
  int nheaders;
  char *data;
  size_t dn;
} ev;

typedef struct {
  pk_session s;
  bytes out; /* bytes this end sent, not yet delivered */
  int send_calls;
  int fail_send_at;  /* the fail_send_at-th send call (1-based) fails; 0 never */
  void *last_b_buf;  /* b_buf of the last send call */
  int bad_send;      /* a send call broke the contract */
  int close_at;      /* the close_at-th callback (1-based) ends the session */
  int auth_on_ctrl;  /* a control chunk with "X-Auth" sets s.authed */
  ev *evs;
  int nev, evcap;
  bytes log; /* canonical record of every callback */
} peer;

static int cb_send(void *ctx, const char *a, size_t an, const char *b, size_t bn, void *b_buf) {
  peer *p = ctx;
  p->send_calls++;
  p->last_b_buf = b_buf;
  if ((an && !a) || (bn && !b) || an + bn == 0) p->bad_send = 1;
  if (p->fail_send_at && p->send_calls >= p->fail_send_at) return -1;
  bytes_put(&p->out, a, an);
  bytes_put(&p->out, b, bn);
  return 0;
}

static ev *add_ev(peer *p, char kind, long long sid, long long num, const pk_chunk *ch) {
  if (p->nev == p->evcap) {
    p->evcap = p->evcap ? p->evcap * 2 : 16;
    p->evs = realloc(p->evs, (size_t)p->evcap * sizeof(ev));
    if (!p->evs) abort();
  }
  ev *e = &p->evs[p->nev++];
  memset(e, 0, sizeof(*e));
  e->kind = kind;
  e->sid = sid;
  e->num = num;
  e->alive = p->s.state != PK_SESSION_DEAD;
  char line[256];
  snprintf(line, sizeof(line), "%c sid=%lld num=%lld alive=%d", kind, sid, num, e->alive);
  bytes_puts(&p->log, line);
  if (ch) {
    size_t hl = 0;
    e->hdrs[hl++] = '\n';
    e->nheaders = ch->nheaders;
    for (int i = 0; i < ch->nheaders; i++) {
      int w = snprintf(e->hdrs + hl, sizeof(e->hdrs) - hl, "%.*s: %.*s\n", (int)ch->names[i].n,
                       ch->names[i].p, (int)ch->values[i].n, ch->values[i].p);
      if (w < 0 || (size_t)w >= sizeof(e->hdrs) - hl) break;
      hl += (size_t)w;
    }
    e->dn = ch->data.n;
    e->data = malloc(e->dn + 1);
    if (!e->data) abort();
    memcpy(e->data, ch->data.p, e->dn);
    e->data[e->dn] = 0;
    snprintf(line, sizeof(line), " sid=%lld eof=%d noop=%d n=%zu", ch->sid, ch->eof, ch->noop,
             ch->data.n);
    bytes_puts(&p->log, line);
    bytes_puts(&p->log, e->hdrs);
    bytes_put(&p->log, ch->data.p, ch->data.n);
  }
  bytes_puts(&p->log, "\n");
  if (p->close_at && p->nev == p->close_at) pk_session_close(&p->s, "closed by a callback");
  return e;
}

static void cb_data(void *ctx, const pk_chunk *ch) { add_ev(ctx, 'D', ch->sid, 0, ch); }
static void cb_eof(void *ctx, long long sid, int bits) { add_ev(ctx, 'E', sid, bits, NULL); }
static void cb_credit(void *ctx, long long sid, long long kb) { add_ev(ctx, 'C', sid, kb, NULL); }
static void cb_control(void *ctx, const pk_chunk *ch) {
  peer *p = ctx;
  if (p->auth_on_ctrl && pk_wire_chunk_get(ch, "X-Auth").p) p->s.authed = 1;
  add_ev(ctx, 'N', ch->sid, 0, ch);
}

static const pk_session_cb callbacks = {
    .send = cb_send, .data = cb_data, .eof = cb_eof, .credit = cb_credit, .control = cb_control};

static peer *peer_new(int ws, uint64_t now) {
  peer *p = calloc(1, sizeof(*p));
  if (!p) abort();
  pk_session_init(&p->s, &callbacks, p, now);
  p->s.ws = ws;
  pk_session_open(&p->s);
  return p;
}

static void peer_forget(peer *p) { /* events and log, not the session */
  for (int i = 0; i < p->nev; i++) free(p->evs[i].data);
  p->nev = 0;
  p->log.len = 0;
}

static void peer_free(peer *p) {
  if (!p) return;
  peer_forget(p);
  free(p->evs);
  bytes_free(&p->log);
  bytes_free(&p->out);
  pk_session_free(&p->s);
  free(p);
}

/* Hand everything `from` queued to `to`, from an exact-size heap copy (so
 * ASan sees any read past the end; websocket frames are unmasked in it). */
static int deliver(peer *from, peer *to, uint64_t now) {
  size_t n = from->out.len;
  char *copy = malloc(n ? n : 1);
  if (!copy) abort();
  if (n) memcpy(copy, from->out.p, n);
  from->out.len = 0;
  int rv = pk_session_recv(&to->s, copy, n, now);
  free(copy);
  return rv;
}

/* Raw bytes into a session, from an exact-size heap copy. */
static int feed_raw(peer *to, const void *p, size_t n, uint64_t now) {
  char *copy = malloc(n ? n : 1);
  if (!copy) abort();
  if (n) memcpy(copy, p, n);
  int rv = pk_session_recv(&to->s, copy, n, now);
  free(copy);
  return rv;
}

static int feed_str(peer *to, const char *s, uint64_t now) { return feed_raw(to, s, strlen(s), now); }

/* One plain frame around payload p. */
static size_t frame_plain(char *out, size_t cap, const char *p, size_t n) {
  int fl = pk_wire_format_frame(out, cap, n, n, 0, 0);
  if (fl < 0 || (size_t)fl + n > cap) abort();
  memcpy(out + fl, p, n);
  return (size_t)fl + n;
}

static int feed_chunk(peer *to, const char *payload, uint64_t now) {
  size_t n = strlen(payload);
  char *f = malloc(n + 32);
  if (!f) abort();
  size_t fl = frame_plain(f, n + 32, payload, n);
  int rv = feed_raw(to, f, fl, now);
  free(f);
  return rv;
}

/* A websocket frame: op, payload, optional 4-byte mask key, fin/rsv bits
 * given in b0 directly when op_b0 has bits above 0x0f. */
static size_t ws_frame(unsigned char *out, unsigned b0, const void *payload, size_t n,
                       const unsigned char *key) {
  size_t hl = 0;
  const unsigned char *src = payload;
  out[hl++] = (unsigned char)b0;
  unsigned char m = key ? 0x80 : 0;
  if (n < 126) {
    out[hl++] = (unsigned char)(m | n);
  } else if (n < 65536) {
    out[hl++] = m | 126;
    out[hl++] = (unsigned char)(n >> 8);
    out[hl++] = (unsigned char)n;
  } else {
    out[hl++] = m | 127;
    for (int i = 0; i < 8; i++) out[hl++] = (unsigned char)((unsigned long long)n >> (56 - 8 * i));
  }
  if (key) {
    memcpy(out + hl, key, 4);
    hl += 4;
  }
  for (size_t i = 0; i < n; i++) out[hl + i] = key ? (unsigned char)(src[i] ^ key[i & 3]) : src[i];
  return hl + n;
}

static int count_kind(const peer *p, char kind) {
  int c = 0;
  for (int i = 0; i < p->nev; i++) c += p->evs[i].kind == kind;
  return c;
}

static const ev *last_ev(const peer *p) {
  static ev none;
  return p->nev ? &p->evs[p->nev - 1] : &none;
}

static int has_hdr(const ev *e, const char *line) { /* "Name: value" */
  char want[512];
  snprintf(want, sizeof(want), "\n%s\n", line);
  return strstr(e->hdrs, want) != NULL;
}

static int data_is(const ev *e, const void *p, size_t n) {
  return e->data && e->dn == n && memcmp(e->data, p, n) == 0;
}

static int why_is(const peer *p, const char *why) {
  return p->s.state == PK_SESSION_DEAD && strcmp(pk_session_why(&p->s), why) == 0;
}

/* The first frame queued in p->out. */
static int first_frame(const peer *p, pk_frame *f) {
  return pk_wire_parse_frame(p->out.p, p->out.len, PK_MAX_CHUNK, f);
}

static unsigned lcg(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 16;
}

static char *text_data(size_t n, unsigned seed) { /* compressible */
  static const char *words[] = {"pagekite ", "tunnel ", "chunk ", "stream ", "relay\r\n", "kite "};
  char *d = malloc(n ? n : 1);
  if (!d) abort();
  size_t i = 0;
  while (i < n) {
    const char *w = words[lcg(&seed) % 6];
    for (size_t k = 0; w[k] && i < n; k++) d[i++] = w[k];
  }
  return d;
}

static char *random_data(size_t n, unsigned seed) { /* incompressible */
  char *d = malloc(n ? n : 1);
  if (!d) abort();
  for (size_t i = 0; i < n; i++) d[i] = (char)(lcg(&seed) >> 3);
  return d;
}

#define SIDHDR 10 /* strlen("SID: 1\r\n\r\n"): a one-digit SID */

/* ---- plain chunks both ways ---- */
TEST(data_both_ways) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  static const char bin[] = "bin\0ary\r\n\r\nSID: 9\r\n";
  CHECK_INT(pk_session_send_data(&a->s, 7, "hello", 5, (void *)&bin, NULL), 0);
  CHECK(a->last_b_buf == (void *)&bin); /* the owner's buffer handle is passed on */
  CHECK_INT(pk_session_send_data(&b->s, 7, "world", 5, NULL, NULL), 0);
  CHECK_INT(pk_session_send_data(&a->s, 123456789012LL, bin, sizeof(bin), NULL, NULL), 0);
  CHECK_INT(deliver(a, b, 10), 0);
  CHECK_INT(deliver(b, a, 10), 0);
  CHECK_INT(b->nev, 2);
  CHECK_INT(a->nev, 1);
  if (b->nev == 2 && a->nev == 1) {
    CHECK(b->evs[0].kind == 'D');
    CHECK_INT(b->evs[0].sid, 7);
    CHECK(data_is(&b->evs[0], "hello", 5));
    CHECK(b->evs[1].kind == 'D');
    CHECK_INT(b->evs[1].sid, 123456789012LL);
    CHECK(data_is(&b->evs[1], bin, sizeof(bin)));
    CHECK(a->evs[0].kind == 'D');
    CHECK_INT(a->evs[0].sid, 7);
    CHECK(data_is(&a->evs[0], "world", 5));
  }
  CHECK_INT(a->s.bytes_out, 5 + sizeof(bin));
  CHECK_INT(b->s.bytes_in, 5 + sizeof(bin));
  CHECK_INT(a->s.bytes_in, 5);
  CHECK(!a->bad_send && !b->bad_send);
  CHECK(a->s.state == PK_SESSION_OPEN && b->s.state == PK_SESSION_OPEN);
  peer_free(a);
  peer_free(b);
}

TEST(stream_open_headers) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  char hb[512];
  pk_wbuf w;
  pk_wbuf_init(&w, hb, sizeof(hb));
  pk_wire_stream_open(&w, 3, "http", "x.example.com", 8080, "198.51.100.7", 5555, 1);
  CHECK(pk_wbuf_ok(&w));
  const char *req = "GET / HTTP/1.1\r\nHost: x.example.com\r\n\r\n";
  int noz = 0;
  CHECK_INT(pk_session_send_headed(&a->s, hb, w.len, req, strlen(req), NULL, &noz), 0);
  pk_wbuf_init(&w, hb, sizeof(hb));
  pk_wire_stream_open(&w, 4, "raw", "y.example.com", 22, "::1", 1, 0);
  CHECK_INT(pk_session_send_headed(&a->s, hb, w.len, "SSH-2.0", 7, NULL, &noz), 0);
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK_INT(b->nev, 2);
  if (b->nev == 2) {
    const ev *e = &b->evs[0];
    CHECK(e->kind == 'D');
    CHECK_INT(e->sid, 3);
    CHECK(has_hdr(e, "Proto: http"));
    CHECK(has_hdr(e, "Host: x.example.com"));
    CHECK(has_hdr(e, "Port: 8080"));
    CHECK(has_hdr(e, "RIP: 198.51.100.7"));
    CHECK(has_hdr(e, "RPort: 5555"));
    CHECK(has_hdr(e, "RTLS: 1"));
    CHECK(data_is(e, req, strlen(req)));
    e = &b->evs[1];
    CHECK_INT(e->sid, 4);
    CHECK(has_hdr(e, "Proto: raw"));
    CHECK(has_hdr(e, "Host: y.example.com"));
    CHECK(has_hdr(e, "Port: 22"));
    CHECK(!strstr(e->hdrs, "RTLS"));
    CHECK(data_is(e, "SSH-2.0", 7));
  }
  peer_free(a);
  peer_free(b);
}

TEST(eof_bits) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  CHECK_INT(pk_session_send_eof(&a->s, 4, "R"), 0);
  CHECK_INT(pk_session_send_eof(&a->s, 5, "W"), 0);
  CHECK_INT(pk_session_send_eof(&a->s, 6, "WR"), 0);
  CHECK_INT(pk_session_send_eof(&a->s, 7, ""), 0); /* "EOF: 1": both ways */
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK_INT(b->nev, 4);
  CHECK_INT(count_kind(b, 'E'), 4);
  if (b->nev == 4) {
    CHECK_INT(b->evs[0].sid, 4);
    CHECK_INT(b->evs[0].num, PK_EOF_READ);
    CHECK_INT(b->evs[1].sid, 5);
    CHECK_INT(b->evs[1].num, PK_EOF_WRITE);
    CHECK_INT(b->evs[2].sid, 6);
    CHECK_INT(b->evs[2].num, PK_EOF_READ | PK_EOF_WRITE);
    CHECK_INT(b->evs[3].sid, 7);
    CHECK_INT(b->evs[3].num, PK_EOF_READ | PK_EOF_WRITE);
  }
  CHECK_INT(b->s.bytes_in, 0); /* "Bye!" is not stream data */
  peer_free(a);
  peer_free(b);
}

TEST(skb_credit_and_noop_control) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  CHECK_INT(b->s.peer_skb, 0);
  CHECK_INT(pk_session_send_skb(&a->s, 9, 1234), 0);
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK_INT(b->s.peer_skb, 1);
  /* credit first, then the NOOP itself reaches control */
  CHECK_INT(b->nev, 2);
  if (b->nev == 2) {
    CHECK(b->evs[0].kind == 'C');
    CHECK_INT(b->evs[0].sid, 9);
    CHECK_INT(b->evs[0].num, 1234);
    CHECK(b->evs[1].kind == 'N');
    CHECK(has_hdr(&b->evs[1], "SKB: 1234"));
  }
  peer_forget(b);
  const char *lines = "X-PageKite-OK: http:a.example.com:abc\r\nX-Foo: bar baz\r\n";
  CHECK_INT(pk_session_send_noop(&a->s, lines, strlen(lines)), 0);
  CHECK_INT(deliver(a, b, 2), 0);
  CHECK_INT(b->nev, 1);
  CHECK(last_ev(b)->kind == 'N');
  CHECK_INT(last_ev(b)->sid, -1);
  CHECK(has_hdr(last_ev(b), "NOOP: 1"));
  CHECK(has_hdr(last_ev(b), "X-PageKite-OK: http:a.example.com:abc"));
  CHECK(has_hdr(last_ev(b), "X-Foo: bar baz"));
  CHECK_INT(last_ev(b)->nheaders, 3);
  /* SPD without SKB: flow control is on, but there is no credit to give */
  peer_forget(b);
  b->s.peer_skb = 0;
  CHECK_INT(pk_session_send_noop(&a->s, "SID: 3\r\nSPD: 5\r\n", 16), 0);
  CHECK_INT(deliver(a, b, 3), 0);
  CHECK_INT(b->s.peer_skb, 1);
  CHECK_INT(count_kind(b, 'C'), 0);
  CHECK_INT(count_kind(b, 'N'), 1);
  /* SKB that is not a number: no credit */
  peer_forget(b);
  CHECK_INT(feed_chunk(b, "NOOP: 1\r\nSID: 3\r\nSKB: 12x\r\n\r\n!", 4), 0);
  CHECK_INT(count_kind(b, 'C'), 0);
  CHECK_INT(count_kind(b, 'N'), 1);
  peer_free(a);
  peer_free(b);
}

/* A control chunk longer than the session's header buffer goes out as two
 * send calls (frame header + headers, then data) and still arrives whole. */
TEST(long_control_chunk) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  bytes h = {0};
  bytes_puts(&h, "NOOP: 1\r\n");
  for (int i = 0; i < 40; i++) {
    char line[128];
    snprintf(line, sizeof(line), "X-PageKite-OK: http:kite%02d.example.com:0123456789abcdef\r\n", i);
    bytes_puts(&h, line);
  }
  bytes_puts(&h, "\r\n");
  CHECK(h.len > PK_WIRE_FRAME_HDR_MAX + 1024);
  CHECK_INT(pk_session_send_chunk(&a->s, h.p, h.len, "!", 1, NULL), 0);
  CHECK_INT(a->send_calls, 2);
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK_INT(b->nev, 1);
  CHECK_INT(last_ev(b)->nheaders, 41);
  CHECK(has_hdr(last_ev(b), "X-PageKite-OK: http:kite39.example.com:0123456789abcdef"));
  CHECK(data_is(last_ev(b), "!", 1));
  /* and the second send call failing ends the session */
  peer *c = peer_new(0, 0);
  c->fail_send_at = 2;
  CHECK_INT(pk_session_send_chunk(&c->s, h.p, h.len, "!", 1, NULL), -1);
  CHECK(why_is(c, "cannot queue a chunk for the peer"));
  bytes_free(&h);
  peer_free(a);
  peer_free(b);
  peer_free(c);
}

/* ---- ZChunks ---- */
TEST(zchunks_sizes) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  a->s.peer_zchunks = 1; /* the SENDER's flag decides */
  b->s.authed = 1;       /* frames above PK_UNAUTH_CHUNK */
  static const struct {
    size_t dn;
    int compressed;
  } cases[] = {
      {1, 0},
      {64 - SIDHDR, 0},     /* 64 bytes in all: plain */
      {65 - SIDHDR, 1},     /* 65: compressed */
      {1000, 1},
      {PK_BLOCK_SIZE, 1},
      {PK_ZCHUNK_MAX - SIDHDR, 1},     /* the largest compressed chunk */
      {PK_ZCHUNK_MAX - SIDHDR + 1, 0}, /* one more: plain */
      {100000, 0},
      {200, 1}, /* the deflate stream goes on after plain chunks in between */
      {PK_MAX_CHUNK - SIDHDR, 0},
      {3000, 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *d = text_data(cases[i].dn, (unsigned)i + 1);
    if (cases[i].dn < 1000) /* small ones compress only when repetitive */
      for (size_t k = 0; k < cases[i].dn; k++) d[k] = "abcd"[k % 4];
    int noz = 0;
    CHECK_INT(pk_session_send_data(&a->s, 1, d, cases[i].dn, (void *)d, &noz), 0);
    pk_frame f;
    CHECK_INT(first_frame(a, &f), 1);
    CHECK_INT(f.compressed, cases[i].compressed);
    CHECK_INT(f.len, cases[i].dn + SIDHDR);
    CHECK_INT(f.reset, 0);
    if (cases[i].compressed) {
      CHECK(f.wire_len < f.len / 2 || f.len < 1000);
      CHECK(a->last_b_buf == NULL); /* compressed bytes are the session's own */
    } else {
      CHECK(a->last_b_buf == (void *)d);
    }
    CHECK_INT(noz, 0);
    CHECK_INT(deliver(a, b, 1), 0);
    CHECK_INT(b->nev, 1);
    CHECK(last_ev(b)->kind == 'D');
    CHECK_INT(last_ev(b)->sid, 1);
    CHECK(data_is(last_ev(b), d, cases[i].dn));
    peer_forget(b);
    free(d);
  }
  CHECK(a->s.zobuf != NULL && b->s.zbuf != NULL);
  /* no compression over websockets, nor when the peer did not offer it */
  peer *w = peer_new(1, 0);
  w->s.peer_zchunks = 1;
  char *d = text_data(5000, 9);
  CHECK_INT(pk_session_send_data(&w->s, 1, d, 5000, NULL, NULL), 0);
  CHECK(w->s.zobuf == NULL && !w->s.zout_ready);
  CHECK_INT(pk_session_send_data(&b->s, 1, d, 5000, NULL, NULL), 0);
  pk_frame f;
  CHECK_INT(first_frame(b, &f), 1);
  CHECK_INT(f.compressed, 0);
  free(d);
  peer_free(w);
  peer_free(a);
  peer_free(b);
}

TEST(zchunks_incompressible_sets_noz) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  a->s.peer_zchunks = 1;
  char *r = random_data(4000, 77);
  int noz = 0;
  CHECK_INT(pk_session_send_data(&a->s, 2, r, 4000, NULL, &noz), 0);
  pk_frame f;
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 1); /* the deflater consumed it: it goes out compressed */
  CHECK_INT(noz, 1);
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK(b->nev == 1 && data_is(last_ev(b), r, 4000));
  /* from now on plain for this stream; another stream still compresses */
  CHECK_INT(pk_session_send_data(&a->s, 2, r, 4000, NULL, &noz), 0);
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 0);
  CHECK_INT(deliver(a, b, 2), 0);
  char *t = text_data(4000, 3);
  int noz2 = 0;
  CHECK_INT(pk_session_send_data(&a->s, 3, t, 4000, NULL, &noz2), 0);
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 1);
  CHECK_INT(noz2, 0);
  CHECK_INT(deliver(a, b, 3), 0);
  CHECK_INT(b->nev, 3);
  if (b->nev == 3) {
    CHECK(data_is(&b->evs[1], r, 4000));
    CHECK(data_is(&b->evs[2], t, 4000));
    CHECK_INT(b->evs[2].sid, 3);
  }
  CHECK_INT(b->s.bytes_in, 12000);
  free(r);
  free(t);
  peer_free(a);
  peer_free(b);
}

/* B asks for a reset (ZRST); A's next compressed frame carries R and starts a
 * new deflate stream.  A third session C, that saw the same first frame,
 * gets the R frame with the R taken out and must fail: the flag matters. */
TEST(zchunks_zrst) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0), *c = peer_new(0, 0);
  a->s.peer_zchunks = 1;
  char *d = text_data(3000, 5);
  CHECK_INT(pk_session_send_data(&a->s, 1, d, 3000, NULL, NULL), 0);
  pk_frame f;
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 1);
  CHECK_INT(f.reset, 0);
  CHECK_INT(feed_raw(c, a->out.p, a->out.len, 1), 0);
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK_INT(pk_session_send_noop(&b->s, "ZRST: 1\r\n", 9), 0);
  CHECK_INT(deliver(b, a, 2), 0);
  CHECK_INT(a->s.zreset_pending, 1);
  CHECK_INT(count_kind(a, 'N'), 1); /* the ZRST NOOP also reaches control */
  /* a small (plain) chunk does not use up the reset */
  CHECK_INT(pk_session_send_data(&a->s, 1, "tiny", 4, NULL, NULL), 0);
  CHECK_INT(deliver(a, b, 3), 0);
  CHECK_INT(a->s.zreset_pending, 1);
  CHECK_INT(pk_session_send_data(&a->s, 1, d, 3000, NULL, NULL), 0);
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 1);
  CHECK_INT(f.reset, 1);
  CHECK_INT(a->s.zreset_pending, 0);
  /* the same frame without its R, to C */
  {
    bytes nr = {0};
    for (size_t i = 0; i < a->out.len; i++)
      if (!(i < f.hdr_len && a->out.p[i] == 'R')) bytes_put(&nr, a->out.p + i, 1);
    CHECK_INT(nr.len, a->out.len - 1);
    CHECK_INT(feed_raw(c, nr.p, nr.len, 4), -1);
    CHECK(why_is(c, "bad compressed chunk"));
    bytes_free(&nr);
  }
  CHECK_INT(deliver(a, b, 4), 0);
  CHECK_INT(pk_session_send_data(&a->s, 1, d + 1, 2999, NULL, NULL), 0);
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 1);
  CHECK_INT(f.reset, 0);
  CHECK_INT(deliver(a, b, 5), 0);
  CHECK_INT(b->nev, 4);
  if (b->nev == 4) {
    CHECK(data_is(&b->evs[0], d, 3000));
    CHECK(data_is(&b->evs[1], "tiny", 4));
    CHECK(data_is(&b->evs[2], d, 3000));
    CHECK(data_is(&b->evs[3], d + 1, 2999));
  }
  CHECK(b->s.state == PK_SESSION_OPEN);
  free(d);
  peer_free(a);
  peer_free(b);
  peer_free(c);
}

/* A ZChunk made by the test with zlib: declared length, zlen, R flag. */
static size_t make_zchunk(char *out, size_t cap, z_stream *z, const char *payload, size_t n,
                          size_t declare, int reset) {
  unsigned char zb[4096];
  z->next_in = (Bytef *)payload;
  z->avail_in = (uInt)n;
  z->next_out = zb;
  z->avail_out = sizeof(zb);
  if (deflate(z, Z_SYNC_FLUSH) != Z_OK) abort();
  size_t zl = sizeof(zb) - z->avail_out;
  int fl = pk_wire_format_frame(out, cap, declare, zl, 1, reset);
  if (fl < 0 || (size_t)fl + zl > cap) abort();
  memcpy(out + fl, zb, zl);
  return (size_t)fl + zl;
}

TEST(zchunks_bad) {
  char buf[8192];
  const char *ok = "SID: 1\r\n\r\nhello zlib";
  z_stream z;
  /* a well-made ZChunk from plain zlib is taken */
  {
    peer *b = peer_new(0, 0);
    memset(&z, 0, sizeof(z));
    CHECK_INT(deflateInit(&z, 6), Z_OK);
    size_t n = make_zchunk(buf, sizeof(buf), &z, ok, strlen(ok), strlen(ok), 0);
    CHECK_INT(feed_raw(b, buf, n, 1), 0);
    CHECK(b->nev == 1 && data_is(last_ev(b), "hello zlib", 10));
    /* the declared length must match what it inflates to */
    n = make_zchunk(buf, sizeof(buf), &z, ok, strlen(ok), strlen(ok) + 1, 0);
    CHECK_INT(feed_raw(b, buf, n, 2), -1);
    CHECK(why_is(b, "bad compressed chunk"));
    CHECK_INT(b->nev, 1);
    deflateEnd(&z);
    peer_free(b);
  }
  /* garbage instead of zlib */
  {
    peer *b = peer_new(0, 0);
    CHECK_INT(feed_str(b, "10Z5\r\nxxxxx", 1), -1);
    CHECK(why_is(b, "bad compressed chunk"));
    CHECK_INT(b->nev, 0);
    CHECK_INT(pk_session_recv(&b->s, buf, 0, 2), -1); /* DEAD stays DEAD */
    peer_free(b);
  }
  /* zlib data followed by junk inside the same frame */
  {
    peer *b = peer_new(0, 0);
    memset(&z, 0, sizeof(z));
    CHECK_INT(deflateInit(&z, 6), Z_OK);
    size_t n = make_zchunk(buf, sizeof(buf), &z, ok, strlen(ok), strlen(ok), 0);
    /* grow zlen by 3 and append 3 junk bytes */
    pk_frame f;
    CHECK_INT(pk_wire_parse_frame(buf, n, PK_MAX_CHUNK, &f), 1);
    char f2[8192];
    int fl = pk_wire_format_frame(f2, sizeof(f2), f.len, f.wire_len + 3, 1, 0);
    memcpy(f2 + fl, buf + f.hdr_len, f.wire_len);
    memcpy(f2 + fl + f.wire_len, "\xff\xff\xff", 3); /* a reserved block type */
    CHECK_INT(feed_raw(b, f2, (size_t)fl + f.wire_len + 3, 1), -1);
    CHECK(b->s.state == PK_SESSION_DEAD);
    CHECK_INT(b->nev, 0);
    deflateEnd(&z);
    peer_free(b);
  }
  /* a compressed chunk that inflates to a corrupt chunk */
  {
    peer *b = peer_new(0, 0);
    memset(&z, 0, sizeof(z));
    CHECK_INT(deflateInit(&z, 6), Z_OK);
    const char *bad = "SID: 1\r\nno blank line";
    size_t n = make_zchunk(buf, sizeof(buf), &z, bad, strlen(bad), strlen(bad), 0);
    CHECK_INT(feed_raw(b, buf, n, 1), -1);
    CHECK(why_is(b, "corrupt chunk"));
    deflateEnd(&z);
    peer_free(b);
  }
  /* a second zlib stream without R fails; with R it is taken */
  {
    peer *b = peer_new(0, 0), *b2 = peer_new(0, 0);
    for (int reset = 0; reset < 2; reset++) {
      peer *t = reset ? b2 : b;
      memset(&z, 0, sizeof(z));
      CHECK_INT(deflateInit(&z, 6), Z_OK);
      size_t n = make_zchunk(buf, sizeof(buf), &z, ok, strlen(ok), strlen(ok), 0);
      CHECK_INT(feed_raw(t, buf, n, 1), 0);
      deflateEnd(&z);
      memset(&z, 0, sizeof(z));
      CHECK_INT(deflateInit(&z, 6), Z_OK);
      n = make_zchunk(buf, sizeof(buf), &z, ok, strlen(ok), strlen(ok), reset);
      CHECK_INT(feed_raw(t, buf, n, 2), reset ? 0 : -1);
      CHECK_INT(t->nev, reset ? 2 : 1);
      deflateEnd(&z);
    }
    peer_free(b);
    peer_free(b2);
  }
}

/* ---- websocket framing ---- */
TEST(ws_roundtrip) {
  peer *a = peer_new(1, 0), *b = peer_new(1, 0);
  b->s.authed = 1;
  static const size_t sizes[] = {1, 100, 115, 116, 200, 65525, 65526, 70000, PK_MAX_CHUNK - SIDHDR};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    char *d = random_data(sizes[i], (unsigned)i);
    CHECK_INT(pk_session_send_data(&a->s, 2, d, sizes[i], NULL, NULL), 0);
    CHECK((unsigned char)a->out.p[0] == 0x82);
    CHECK(((unsigned char)a->out.p[1] & 0x80) == 0); /* we send unmasked */
    size_t total = sizes[i] + SIDHDR, hl = total < 126 ? 2 : total < 65536 ? 4 : 10;
    CHECK_INT(a->out.len, hl + total);
    CHECK_INT(deliver(a, b, 1), 0);
    CHECK(b->nev == 1 && data_is(last_ev(b), d, sizes[i]));
    peer_forget(b);
    free(d);
  }
  CHECK_INT(pk_session_send_eof(&b->s, 21, "W"), 0);
  CHECK_INT(pk_session_send_skb(&b->s, 21, 64), 0);
  CHECK_INT(deliver(b, a, 2), 0);
  CHECK_INT(a->nev, 3);
  if (a->nev == 3) {
    CHECK(a->evs[0].kind == 'E' && a->evs[0].num == PK_EOF_WRITE);
    CHECK(a->evs[1].kind == 'C' && a->evs[1].num == 64);
    CHECK(a->evs[2].kind == 'N');
  }
  peer_free(a);
  peer_free(b);
}

TEST(ws_masked_client_frames) {
  static const unsigned char key[4] = {0x12, 0x34, 0xab, 0xcd};
  peer *b = peer_new(1, 0);
  unsigned char fr[1024];
  const char *p = "SID: 5\r\n\r\nmasked hello";
  size_t n = ws_frame(fr, 0x82, p, strlen(p), key);
  CHECK(fr[1] & 0x80);
  CHECK_INT(feed_raw(b, fr, n, 1), 0);
  CHECK(b->nev == 1 && last_ev(b)->sid == 5 && data_is(last_ev(b), "masked hello", 12));
  /* a text frame, masked, with a 16-bit length, fed 7 bytes at a time */
  char big[600];
  memcpy(big, "SID: 6\r\n\r\n", SIDHDR);
  for (size_t i = SIDHDR; i < sizeof(big); i++) big[i] = (char)('a' + i % 26);
  n = ws_frame(fr, 0x81, big, sizeof(big), key);
  CHECK_INT(fr[1], 0x80 | 126);
  for (size_t off = 0; off < n; off += 7) {
    size_t k = n - off < 7 ? n - off : 7;
    CHECK_INT(feed_raw(b, fr + off, k, 2), 0);
  }
  CHECK_INT(b->nev, 2);
  CHECK(last_ev(b)->sid == 6 && data_is(last_ev(b), big + SIDHDR, sizeof(big) - SIDHDR));
  /* an empty binary frame is ignored */
  n = ws_frame(fr, 0x82, "", 0, key);
  CHECK_INT(feed_raw(b, fr, n, 3), 0);
  CHECK_INT(b->nev, 2);
  CHECK(b->s.state == PK_SESSION_OPEN);
  peer_free(b);
}

TEST(ws_ping_pong) {
  static const unsigned char key[4] = {1, 2, 3, 4};
  peer *a = peer_new(1, 0), *b = peer_new(1, 0);
  unsigned char fr[256];
  size_t n = ws_frame(fr, 0x89, "ping!", 5, NULL);
  CHECK_INT(feed_raw(b, fr, n, 1), 0);
  CHECK_INT(b->out.len, 7);
  CHECK(b->out.len == 7 && memcmp(b->out.p, "\x8a\x05ping!", 7) == 0);
  b->out.len = 0;
  /* a masked ping: the pong echoes the unmasked payload */
  n = ws_frame(fr, 0x89, "abc", 3, key);
  CHECK_INT(feed_raw(b, fr, n, 2), 0);
  CHECK(b->out.len == 5 && memcmp(b->out.p, "\x8a\x03" "abc", 5) == 0);
  b->out.len = 0;
  /* an empty ping, then a chunk in the same read */
  n = ws_frame(fr, 0x89, "", 0, NULL);
  const char *c = "SID: 1\r\n\r\nafter";
  n += ws_frame(fr + n, 0x82, c, strlen(c), NULL);
  CHECK_INT(feed_raw(b, fr, n, 3), 0);
  CHECK(b->out.len == 2 && memcmp(b->out.p, "\x8a\x00", 2) == 0);
  CHECK(b->nev == 1 && data_is(last_ev(b), "after", 5));
  /* A takes the pong without a callback and without answering */
  CHECK_INT(deliver(b, a, 4), 0);
  CHECK_INT(a->nev, 0);
  CHECK_INT(a->out.len, 0);
  CHECK(a->s.state == PK_SESSION_OPEN && b->s.state == PK_SESSION_OPEN);
  /* the pong failing to queue ends the session */
  b->fail_send_at = b->send_calls + 1;
  n = ws_frame(fr, 0x89, "x", 1, NULL);
  CHECK_INT(feed_raw(b, fr, n, 5), -1);
  CHECK(why_is(b, "cannot queue a chunk for the peer"));
  peer_free(a);
  peer_free(b);
}

TEST(ws_close_and_bad_frames) {
  unsigned char fr[256];
  const char *c = "SID: 1\r\n\r\nlate";
  struct {
    unsigned b0;
    const char *why;
  } bad[] = {
      {0x88, "websocket closed by peer"},
      {0x02, "bad websocket frame"},  /* FIN=0: fragmented */
      {0x00, "bad websocket frame"},  /* continuation without FIN */
      {0xc2, "bad websocket frame"},  /* RSV1 (compressed frame) */
      {0xa2, "bad websocket frame"},  /* RSV2 */
      {0x92, "bad websocket frame"},  /* RSV3 */
      {0x80, "unsupported websocket frame"}, /* continuation with FIN */
      {0x83, "unsupported websocket frame"}, /* reserved opcode */
      {0x8b, "unsupported websocket frame"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    peer *b = peer_new(1, 0);
    size_t n = ws_frame(fr, bad[i].b0, "\x03\xe8", 2, NULL);
    n += ws_frame(fr + n, 0x82, c, strlen(c), NULL); /* never delivered */
    CHECK_INT(feed_raw(b, fr, n, 1), -1);
    CHECK(why_is(b, bad[i].why));
    CHECK_INT(b->nev, 0);
    CHECK_INT(feed_raw(b, fr, n, 2), -1);
    CHECK_INT(b->nev, 0);
    peer_free(b);
  }
  /* larger than the session takes: refused from the length alone */
  {
    peer *b = peer_new(1, 0);
    unsigned char h[4] = {0x82, 126, (PK_UNAUTH_CHUNK + 1) >> 8, (PK_UNAUTH_CHUNK + 1) & 0xff};
    CHECK_INT(feed_raw(b, h, 4, 1), -1);
    CHECK(why_is(b, "bad websocket frame"));
    peer_free(b);
    b = peer_new(1, 0);
    b->s.authed = 1;
    unsigned char h8[10] = {0x82, 127, 0, 0, 0, 0, 0, 0x04, 0, 1}; /* 256K + 1 */
    CHECK_INT(feed_raw(b, h8, 10, 1), -1);
    CHECK(why_is(b, "bad websocket frame"));
    peer_free(b);
    b = peer_new(1, 0);
    unsigned char hx[10] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 5}; /* 2^63 + 5 */
    CHECK_INT(feed_raw(b, hx, 10, 1), -1);
    peer_free(b);
  }
}

/* ---- PING / PONG / tick ---- */
TEST(ping_gets_pong) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  CHECK_INT(pk_session_send_noop(&a->s, "PING: 123.456\r\n", 15), 0);
  CHECK_INT(deliver(a, b, 100), 0);
  CHECK(bytes_has(&b->out, "NOOP: 1\r\nPONG: 123.456\r\n"));
  CHECK_INT(count_kind(b, 'N'), 1);
  CHECK(has_hdr(last_ev(b), "PING: 123.456"));
  CHECK_INT(deliver(b, a, 200), 0);
  CHECK_INT(a->nev, 1);
  CHECK(has_hdr(last_ev(a), "PONG: 123.456"));
  CHECK_INT(a->out.len, 0); /* a PONG is not answered */
  /* a PING riding on a data chunk is answered too, and the data delivered */
  CHECK_INT(feed_chunk(b, "SID: 4\r\nPING: 9\r\n\r\nxyz", 300), 0);
  CHECK(bytes_has(&b->out, "PONG: 9\r\n"));
  CHECK(last_ev(b)->kind == 'D' && data_is(last_ev(b), "xyz", 3));
  /* the PONG failing to queue ends the session and nothing is delivered */
  peer *c = peer_new(0, 0);
  c->fail_send_at = 1;
  CHECK_INT(feed_chunk(c, "SID: 4\r\nPING: 9\r\n\r\nxyz", 300), -1);
  CHECK(why_is(c, "cannot queue a chunk for the peer"));
  CHECK_INT(c->nev, 0);
  peer_free(a);
  peer_free(b);
  peer_free(c);
}

TEST(ping_rtt) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  CHECK_INT(a->s.rtt_ms, -1);
  CHECK_INT(pk_session_ping(&a->s, 1000), 0);
  CHECK_INT(a->s.ping_outstanding, 1);
  CHECK(bytes_has(&a->out, "NOOP: 1\r\nPING: 1.000\r\n"));
  CHECK_INT(deliver(a, b, 1100), 0);
  CHECK(bytes_has(&b->out, "PONG: 1.000\r\n"));
  CHECK_INT(deliver(b, a, 1250), 0);
  CHECK_INT(a->s.ping_outstanding, 0);
  CHECK_INT(a->s.rtt_ms, 250);
  peer_free(a);
  peer_free(b);
}

TEST(tick_pings_and_times_out) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  uint64_t t = PK_PING_IDLE_MS;
  CHECK_INT(pk_session_tick(&a->s, t), 0);
  CHECK_INT(a->out.len, 0);
  CHECK_INT(a->s.ping_outstanding, 0);
  t++;
  CHECK_INT(pk_session_tick(&a->s, t), 0);
  CHECK(bytes_has(&a->out, "PING: "));
  CHECK_INT(a->s.ping_outstanding, 1);
  size_t sent = a->out.len;
  CHECK_INT(pk_session_tick(&a->s, t + 1000), 0); /* one ping at a time */
  CHECK_INT(a->out.len, sent);
  CHECK_INT(pk_session_tick(&a->s, t + PK_PING_DEAD_MS), 0);
  CHECK(a->s.state == PK_SESSION_OPEN);
  CHECK_INT(pk_session_tick(&a->s, t + PK_PING_DEAD_MS + 1), -1);
  CHECK(why_is(a, "ping timeout"));
  CHECK_INT(pk_session_tick(&a->s, t + PK_PING_DEAD_MS + 2), -1);
  /* answered in time: no timeout, and the next ping comes after the next
   * quiet period */
  peer *c = peer_new(0, 0);
  CHECK_INT(pk_session_tick(&c->s, t), 0);
  CHECK_INT(c->s.ping_outstanding, 1);
  CHECK_INT(deliver(c, b, t + 10), 0);
  CHECK_INT(deliver(b, c, t + 20), 0);
  CHECK_INT(c->s.ping_outstanding, 0);
  CHECK_INT(c->s.rtt_ms, 20);
  c->out.len = 0;
  CHECK_INT(pk_session_tick(&c->s, t + PK_PING_DEAD_MS + 100), 0);
  CHECK_INT(pk_session_tick(&c->s, t + 20 + PK_PING_IDLE_MS), 0);
  CHECK_INT(c->out.len, 0);
  CHECK_INT(pk_session_tick(&c->s, t + 21 + PK_PING_IDLE_MS), 0);
  CHECK(bytes_has(&c->out, "PING: "));
  CHECK(c->s.state == PK_SESSION_OPEN);
  /* no pings during the handshake */
  peer *h = calloc(1, sizeof(*h));
  pk_session_init(&h->s, &callbacks, h, 0);
  CHECK_INT(pk_session_tick(&h->s, 10 * PK_PING_IDLE_MS), 0);
  CHECK_INT(h->out.len, 0);
  CHECK(h->s.state == PK_SESSION_HANDSHAKE);
  /* a ping that cannot be queued ends the session */
  peer *f = peer_new(0, 0);
  f->fail_send_at = 1;
  CHECK_INT(pk_session_tick(&f->s, t), -1);
  CHECK(why_is(f, "cannot queue a chunk for the peer"));
  peer_free(a);
  peer_free(b);
  peer_free(c);
  peer_free(h);
  peer_free(f);
}

TEST(tick_frees_idle_buffers) {
  peer *a = peer_new(0, 0), *b = peer_new(0, 0);
  a->s.peer_zchunks = 1;
  char *d = text_data(5000, 1);
  uint64_t t = 1000;
  CHECK_INT(pk_session_send_data(&a->s, 1, d, 5000, NULL, NULL), 0);
  /* the frame in two reads: B takes its frame buffer */
  size_t half = a->out.len / 2;
  CHECK_INT(feed_raw(b, a->out.p, half, t), 0);
  CHECK(b->s.in != NULL);
  CHECK_INT(b->s.inlen, half);
  CHECK(b->s.inlen <= b->s.incap);
  CHECK_INT(feed_raw(b, a->out.p + half, a->out.len - half, t), 0);
  a->out.len = 0;
  CHECK(b->nev == 1 && data_is(last_ev(b), d, 5000));
  CHECK_INT(b->s.inlen, 0);
  CHECK(b->s.in != NULL && b->s.zbuf != NULL && a->s.zobuf != NULL);
  CHECK_INT(pk_session_tick(&a->s, t), 0); /* notes that A sent at t */
  CHECK_INT(pk_session_tick(&b->s, t), 0);
  CHECK_INT(pk_session_tick(&a->s, t + PK_BUFFER_IDLE_MS - 1), 0);
  CHECK_INT(pk_session_tick(&b->s, t + PK_BUFFER_IDLE_MS - 1), 0);
  CHECK(b->s.in != NULL && b->s.zbuf != NULL && a->s.zobuf != NULL);
  CHECK_INT(pk_session_tick(&a->s, t + PK_BUFFER_IDLE_MS), 0);
  CHECK_INT(pk_session_tick(&b->s, t + PK_BUFFER_IDLE_MS), 0);
  CHECK(b->s.in == NULL && b->s.zbuf == NULL && b->s.zobuf == NULL);
  CHECK(a->s.in == NULL && a->s.zobuf == NULL && a->s.zbuf == NULL);
  CHECK_INT(b->s.incap, 0);
  /* the zlib streams go on with new buffers */
  t += PK_BUFFER_IDLE_MS + 10;
  CHECK_INT(pk_session_send_data(&a->s, 1, d + 7, 4000, NULL, NULL), 0);
  pk_frame f;
  CHECK_INT(first_frame(a, &f), 1);
  CHECK(f.compressed && !f.reset);
  /* half a frame is kept over an idle tick; the zlib buffers are not */
  half = a->out.len / 2;
  CHECK_INT(feed_raw(b, a->out.p, half, t), 0);
  CHECK_INT(pk_session_tick(&b->s, t + 10 * PK_BUFFER_IDLE_MS), 0);
  CHECK(b->s.in != NULL);
  CHECK_INT(b->s.inlen, half);
  CHECK_INT(feed_raw(b, a->out.p + half, a->out.len - half, t + 10 * PK_BUFFER_IDLE_MS), 0);
  a->out.len = 0;
  CHECK(b->nev == 2 && data_is(last_ev(b), d + 7, 4000));
  /* a session that keeps sending keeps its buffers */
  t += 20 * PK_BUFFER_IDLE_MS;
  for (int i = 0; i < 5; i++, t += PK_BUFFER_IDLE_MS) {
    CHECK_INT(pk_session_send_data(&a->s, 1, d, 3000, NULL, NULL), 0);
    CHECK_INT(pk_session_tick(&a->s, t), 0);
    CHECK(a->s.zobuf != NULL);
  }
  free(d);
  peer_free(a);
  peer_free(b);
}

/* ---- bounds and bad input ---- */
TEST(bounds_unauthed) {
  /* one byte too long: refused from the frame header alone */
  peer *b = peer_new(0, 0);
  char h[32];
  snprintf(h, sizeof(h), "%x\r\n", PK_UNAUTH_CHUNK + 1);
  CHECK_INT(feed_str(b, h, 1), -1);
  CHECK(why_is(b, "oversized chunk"));
  peer_free(b);
  b = peer_new(0, 0);
  snprintf(h, sizeof(h), "10Z%x\r\n", PK_UNAUTH_CHUNK + 1);
  CHECK_INT(feed_str(b, h, 1), -1);
  CHECK(why_is(b, "oversized chunk"));
  peer_free(b);
  /* exactly PK_UNAUTH_CHUNK is taken, at once or in pieces */
  peer *a = peer_new(0, 0);
  char *d = random_data(PK_UNAUTH_CHUNK - SIDHDR, 4);
  for (int pieces = 0; pieces < 2; pieces++) {
    b = peer_new(0, 0);
    CHECK_INT(pk_session_send_data(&a->s, 1, d, PK_UNAUTH_CHUNK - SIDHDR, NULL, NULL), 0);
    if (!pieces) {
      CHECK_INT(deliver(a, b, 1), 0);
    } else {
      for (size_t off = 0; off < a->out.len; off += 1000) {
        size_t k = a->out.len - off < 1000 ? a->out.len - off : 1000;
        CHECK_INT(feed_raw(b, a->out.p + off, k, 1), 0);
        CHECK(b->s.inlen <= b->s.incap && b->s.incap <= PK_UNAUTH_INBUF);
      }
      a->out.len = 0;
    }
    CHECK(b->nev == 1 && data_is(last_ev(b), d, PK_UNAUTH_CHUNK - SIDHDR));
    peer_free(b);
  }
  free(d);
  peer_free(a);
}

TEST(bounds_authed) {
  peer *a = peer_new(0, 0);
  size_t dn = PK_MAX_CHUNK - SIDHDR;
  char *d = random_data(dn, 8);
  for (int pieces = 0; pieces < 2; pieces++) {
    peer *b = peer_new(0, 0);
    b->s.authed = 1;
    CHECK_INT(pk_session_send_data(&a->s, 2, d, dn, NULL, NULL), 0);
    if (!pieces) {
      CHECK_INT(deliver(a, b, 1), 0);
    } else {
      for (size_t off = 0; off < a->out.len; off += 4096) {
        size_t k = a->out.len - off < 4096 ? a->out.len - off : 4096;
        CHECK_INT(feed_raw(b, a->out.p + off, k, 1), 0);
        CHECK(b->s.inlen <= b->s.incap && b->s.incap <= PK_TUNNEL_INBUF);
      }
      a->out.len = 0;
    }
    CHECK(b->nev == 1 && data_is(last_ev(b), d, dn));
    peer_free(b);
  }
  peer *b = peer_new(0, 0);
  b->s.authed = 1;
  char h[32];
  snprintf(h, sizeof(h), "%x\r\n", PK_MAX_CHUNK + 1);
  CHECK_INT(feed_str(b, h, 1), -1);
  CHECK(why_is(b, "oversized chunk"));
  free(d);
  peer_free(a);
  peer_free(b);
}

TEST(bad_chunks_close) {
  static const struct {
    int framed;     /* in is a chunk payload the test frames, else raw bytes */
    const char *in;
    const char *why;
  } cases[] = {
      {1, "Host: x\r\n\r\nabc", "chunk without SID"},
      {1, "\r\nab", "chunk without SID"},
      {1, "EOF: 1\r\n\r\nBye!", "chunk without SID"},
      {1, "SID: 1\r\nabc", "corrupt chunk"}, /* no blank line */
      {1, "SID: -1\r\n\r\nabcd", "corrupt chunk"},
      {1, "SID: x\r\n\r\nab", "corrupt chunk"},
      {1, "SID: 99999999999999999999\r\n\r\nab", "corrupt chunk"},
      {1, "no colon\r\n\r\n", "corrupt chunk"},
      {1, " SID: 1\r\n\r\n", "corrupt chunk"},
      {0, "zz\r\n", "bad chunk frame"},
      {0, "\r\n", "bad chunk frame"},
      {0, "0\r\n", "bad chunk frame"},
      {0, "5\n", "bad chunk frame"},
      {0, "5 \r\n", "bad chunk frame"},
      {0, "5RR\r\n", "bad chunk frame"},
      {0, "5Z\r\n", "bad chunk frame"},
      {0, "5Z0\r\n", "bad chunk frame"},
      {0, "GET / HTTP/1.1\r\n", "bad chunk frame"},
      {0, "000000000000000000000000005\r\n", "bad chunk frame"}, /* header too long */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    peer *b = peer_new(0, 0);
    char buf[256];
    /* a good chunk first, which must be delivered, then the bad one, then
     * a good one that must not be */
    size_t n = frame_plain(buf, sizeof(buf), "SID: 1\r\n\r\nok", 12);
    size_t bl = strlen(cases[i].in);
    if (cases[i].framed) {
      n += frame_plain(buf + n, sizeof(buf) - n, cases[i].in, bl);
    } else {
      memcpy(buf + n, cases[i].in, bl);
      n += bl;
    }
    n += frame_plain(buf + n, sizeof(buf) - n, "SID: 1\r\n\r\nno", 12);
    CHECK_INT(feed_raw(b, buf, n, 1), -1);
    if (!why_is(b, cases[i].why))
      fprintf(stderr, "case %zu: why \"%s\", want \"%s\"\n", i, pk_session_why(&b->s), cases[i].why);
    CHECK(why_is(b, cases[i].why));
    CHECK_INT(b->nev, 1);
    CHECK(data_is(last_ev(b), "ok", 2));
    peer_free(b);
  }
}

/* ---- feeding: the same bytes, cut differently, give the same callbacks ---- */
static int feed_pieces(peer *to, const char *stream, size_t n, int mode, unsigned seed,
                       size_t maxpiece, uint64_t now) {
  /* mode 0: all at once; 1: a byte at a time; 2: random pieces; 3: random
   * pieces read in place when the session offers room (as tunnel.c does) */
  size_t pos = 0;
  int rv = 0;
  while (pos < n && rv == 0) {
    size_t k = mode == 0 ? n : mode == 1 ? 1 : 1 + lcg(&seed) % maxpiece;
    if (k > n - pos) k = n - pos;
    char *base = NULL;
    size_t room = mode == 3 ? pk_session_recv_room(&to->s, &base) : 0;
    if (room) {
      if (k > room) k = room;
      memcpy(base, stream + pos, k);
      rv = pk_session_recv_inplace(&to->s, k, now);
    } else {
      rv = feed_raw(to, stream + pos, k, now);
    }
    if (to->s.inlen > to->s.incap) return -2;
    pos += k;
  }
  return rv;
}

/* Everything A can send, as one byte stream. */
static void build_stream(bytes *out, int ws) {
  peer *a = peer_new(ws, 0), *z = peer_new(ws, 0);
  a->s.peer_zchunks = 1;
  char hb[512];
  pk_wbuf w;
  pk_wbuf_init(&w, hb, sizeof(hb));
  pk_wire_stream_open(&w, 1, "http", "feed.example.com", 80, "192.0.2.1", 4444, 0);
  const char *req = "GET /index.html HTTP/1.1\r\nHost: feed.example.com\r\n\r\n";
  int noz1 = 0, noz2 = 0;
  char *t = text_data(40000, 11), *r = random_data(40000, 12);
  pk_session_send_headed(&a->s, hb, w.len, req, strlen(req), NULL, &noz1);
  pk_session_send_data(&a->s, 1, "0123456789", 10, NULL, &noz1);
  pk_session_send_data(&a->s, 1, t, 5000, NULL, &noz1);
  pk_session_send_data(&a->s, 2, r, 3000, NULL, &noz2);
  pk_session_send_data(&a->s, 2, r + 3000, 3000, NULL, &noz2);
  pk_session_send_skb(&a->s, 1, 64);
  pk_session_send_noop(&a->s, "PING: 42.000\r\n", 14);
  pk_session_send_noop(&a->s, "X-Foo: bar\r\n", 12);
  pk_session_send_eof(&a->s, 1, "W");
  pk_session_send_data(&a->s, 3, r, 40000, NULL, NULL);
  pk_session_send_data(&a->s, 3, t, PK_ZCHUNK_MAX - SIDHDR, NULL, NULL);
  /* a ZRST from elsewhere: the next compressed frame carries R */
  pk_session_send_noop(&z->s, "ZRST: 1\r\n", 9);
  deliver(z, a, 0);
  pk_session_send_data(&a->s, 3, t + 100, 9000, NULL, NULL);
  pk_session_send_data(&a->s, 3, t + 200, 9000, NULL, NULL);
  pk_session_send_eof(&a->s, 3, "WR");
  for (int i = 0; i < 50; i++) pk_session_send_data(&a->s, 4 + i % 3, t + i, 1 + (size_t)i * 37, NULL, NULL);
  if (ws) {
    static const unsigned char key[4] = {9, 8, 7, 6};
    unsigned char fr[256];
    size_t n = ws_frame(fr, 0x89, "wsping", 6, key);
    bytes_put(&a->out, fr, n);
    n = ws_frame(fr, 0x81, "SID: 8\r\n\r\nmasked text", 21, key);
    bytes_put(&a->out, fr, n);
    n = ws_frame(fr, 0x8a, "pong", 4, NULL);
    bytes_put(&a->out, fr, n);
  }
  pk_session_send_noop(&a->s, "X-Last: 1\r\n", 11);
  bytes_put(out, a->out.p, a->out.len);
  free(t);
  free(r);
  peer_free(a);
  peer_free(z);
}

TEST(feeding_is_cut_independent) {
  for (int ws = 0; ws < 2; ws++) {
    bytes stream = {0}, ref = {0}, refout = {0};
    build_stream(&stream, ws);
    int nev = 0;
    for (int run = 0; run < 12; run++) {
      static const int modes[] = {0, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3};
      static const size_t maxp[] = {0, 0, 7, 100, 5000, 70000, 3, 100, 4096, 65536, 300000, 17};
      peer *b = peer_new(ws, 0);
      b->s.authed = 1;
      char *copy = malloc(stream.len); /* websocket frames are unmasked in place */
      memcpy(copy, stream.p, stream.len);
      int rv = feed_pieces(b, copy, stream.len, modes[run], (unsigned)run * 7919u, maxp[run] ? maxp[run] : 1, 5);
      free(copy);
      CHECK_INT(rv, 0);
      CHECK(b->s.state == PK_SESSION_OPEN);
      CHECK_INT(b->s.inlen, 0);
      CHECK(!b->bad_send);
      if (run == 0) {
        bytes_put(&ref, b->log.p, b->log.len);
        bytes_put(&refout, b->out.p, b->out.len);
        nev = b->nev;
        /* what the stream holds */
        /* open + 4 data, SKB (credit + control), PING, X-Foo, EOF, 2 big data,
         * 2 after the reset, EOF, 50 small, (masked text), X-Last */
        CHECK_INT(nev, 1 + 4 + 2 + 1 + 1 + 1 + 2 + 2 + 1 + 50 + (ws ? 1 : 0) + 1);
        CHECK_INT(count_kind(b, 'E'), 2);
        CHECK_INT(count_kind(b, 'C'), 1);
        CHECK(bytes_has(&b->out, "PONG: 42.000\r\n"));
        CHECK(!ws || bytes_has(&b->out, "\x8a\x06wsping"));
        CHECK(has_hdr(&b->evs[0], "Host: feed.example.com"));
        CHECK(has_hdr(last_ev(b), "X-Last: 1"));
      } else {
        CHECK_INT(b->nev, nev);
        CHECK(b->log.len == ref.len && memcmp(b->log.p, ref.p, ref.len) == 0);
        CHECK(b->out.len == refout.len && memcmp(b->out.p, refout.p, refout.len) == 0);
        if (b->log.len != ref.len || memcmp(b->log.p, ref.p, ref.len) != 0)
          fprintf(stderr, "feeding ws=%d run %d differs (%d events, want %d)\n", ws, run, b->nev, nev);
      }
      peer_free(b);
    }
    bytes_free(&stream);
    bytes_free(&ref);
    bytes_free(&refout);
  }
}

/* The first kite goes live (a control chunk sets authed) while the next,
 * larger-than-unauthenticated chunk is half in the session's frame buffer,
 * and the owner reads in place (tunnel.c's path).  The chunk is within the
 * authenticated bound, so it must be delivered as with pk_session_recv. */
TEST(authed_midway_inplace) {
  peer *a = peer_new(0, 0);
  size_t dn = 40000;
  char *d = random_data(dn, 21);
  CHECK_INT(pk_session_send_noop(&a->s, "X-Auth: yes\r\n", 13), 0);
  CHECK_INT(pk_session_send_data(&a->s, 1, d, dn, NULL, NULL), 0);
  for (int inplace = 0; inplace < 2; inplace++) {
    peer *b = peer_new(0, 0);
    b->auth_on_ctrl = 1;
    size_t pos = 0, n = a->out.len;
    int rv = feed_raw(b, a->out.p, 10, 1); /* a partial NOOP: into the frame buffer */
    pos = 10;
    while (rv == 0 && pos < n) {
      size_t k = n - pos < 4096 ? n - pos : 4096;
      char *base = NULL;
      size_t room = inplace ? pk_session_recv_room(&b->s, &base) : 0;
      if (room) {
        if (k > room) k = room;
        memcpy(base, a->out.p + pos, k);
        rv = pk_session_recv_inplace(&b->s, k, 1);
      } else {
        rv = feed_raw(b, a->out.p + pos, k, 1);
      }
      pos += k;
    }
    if (rv != 0) fprintf(stderr, "authed_midway_inplace(inplace=%d): %s\n", inplace, pk_session_why(&b->s));
    CHECK_INT(rv, 0);
    CHECK_INT(b->s.authed, 1);
    CHECK_INT(b->nev, 2);
    CHECK(b->nev == 2 && data_is(&b->evs[1], d, dn));
    peer_free(b);
  }
  free(d);
  peer_free(a);
}

/* ---- re-entrancy: a callback ends the session ---- */
TEST(callback_closes) {
  bytes s = {0};
  {
    peer *a = peer_new(0, 0);
    pk_session_send_data(&a->s, 1, "one", 3, NULL, NULL);
    pk_session_send_skb(&a->s, 1, 8);            /* credit + control */
    pk_session_send_eof(&a->s, 1, "W");
    pk_session_send_data(&a->s, 2, "two", 3, NULL, NULL);
    pk_session_send_noop(&a->s, "PING: 1\r\n", 9); /* would be answered */
    pk_session_send_data(&a->s, 3, "three", 5, NULL, NULL);
    bytes_put(&s, a->out.p, a->out.len);
    peer_free(a);
  }
  /* events: D C N E D N D = 7 */
  for (int close_at = 1; close_at <= 7; close_at++) {
    for (int mode = 0; mode < 4; mode++) {
      peer *b = peer_new(0, 0);
      b->close_at = close_at;
      char *copy = malloc(s.len);
      memcpy(copy, s.p, s.len);
      int rv = feed_pieces(b, copy, s.len, mode, 3, 9, 1);
      free(copy);
      CHECK_INT(rv, -1);
      CHECK(why_is(b, "closed by a callback"));
      CHECK_INT(b->nev, close_at);
      for (int i = 0; i < b->nev; i++) CHECK(b->evs[i].alive);
      CHECK(close_at < 6 || bytes_has(&b->out, "PONG: 1"));
      CHECK(close_at >= 6 || b->out.len == 0);
      CHECK_INT(feed_raw(b, s.p, s.len, 2), -1);
      CHECK_INT(b->nev, close_at);
      peer_free(b);
    }
  }
  /* the same from compressed chunks and websocket frames */
  for (int ws = 0; ws < 2; ws++) {
    peer *a = peer_new(ws, 0), *b = peer_new(ws, 0);
    a->s.peer_zchunks = 1;
    char *t = text_data(2000, 1);
    for (int i = 0; i < 4; i++) pk_session_send_data(&a->s, 1, t, 1000 + (size_t)i, NULL, NULL);
    pk_frame f;
    CHECK(ws || (first_frame(a, &f) == 1 && f.compressed));
    b->close_at = 2;
    CHECK_INT(deliver(a, b, 1), -1);
    CHECK_INT(b->nev, 2);
    CHECK(why_is(b, "closed by a callback"));
    free(t);
    peer_free(a);
    peer_free(b);
  }
  bytes_free(&s);
}

/* ---- sending ---- */
TEST(send_failure_closes) {
  peer *a = peer_new(0, 0);
  a->fail_send_at = 1;
  CHECK_INT(pk_session_send_data(&a->s, 1, "x", 1, NULL, NULL), -1);
  CHECK(why_is(a, "cannot queue a chunk for the peer"));
  int calls = a->send_calls;
  CHECK_INT(pk_session_send_data(&a->s, 1, "x", 1, NULL, NULL), -1);
  CHECK_INT(pk_session_send_eof(&a->s, 1, "W"), -1);
  CHECK_INT(pk_session_send_skb(&a->s, 1, 1), -1);
  CHECK_INT(pk_session_send_noop(&a->s, "X: y\r\n", 6), -1);
  CHECK_INT(pk_session_ping(&a->s, 5), -1);
  CHECK_INT(pk_session_send_chunk(&a->s, "SID: 1\r\n\r\n", 10, "x", 1, NULL), -1);
  CHECK_INT(a->send_calls, calls); /* nothing more reached the owner */
  char one[4] = "1\r\n";
  CHECK_INT(pk_session_recv(&a->s, one, 3, 6), -1);
  peer_free(a);
  /* the compressed path too */
  a = peer_new(0, 0);
  a->s.peer_zchunks = 1;
  a->fail_send_at = 2;
  char *t = text_data(3000, 2);
  CHECK_INT(pk_session_send_data(&a->s, 1, t, 3000, NULL, NULL), 0);
  CHECK_INT(pk_session_send_data(&a->s, 1, t, 3000, NULL, NULL), -1);
  CHECK(why_is(a, "cannot queue a chunk for the peer"));
  free(t);
  peer_free(a);
  /* websocket */
  a = peer_new(1, 0);
  a->fail_send_at = 1;
  CHECK_INT(pk_session_send_eof(&a->s, 1, "R"), -1);
  CHECK(a->s.state == PK_SESSION_DEAD);
  peer_free(a);
}

/* The peer's handshake head turns features on (pagekite.py sends one
 * X-PageKite-Features header per feature). */
TEST(features_from_head) {
  static const char head[] =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
      "X-PageKite-Features: WebSockets\r\nx-pagekite-features: zchunks\r\n"
      "X-PageKite-Features: AddKites\r\nX-PageKite-Protos: http\r\n\r\n";
  pk_http_head h;
  CHECK_INT(pk_wire_parse_http_head(head, sizeof(head) - 1, PK_HEAD_MAX, &h), 1);
  peer *a = peer_new(0, 0);
  CHECK_INT(a->s.peer_zchunks, 0);
  CHECK_INT(a->s.peer_addkites, 0);
  pk_session_features(&a->s, h.names, h.values, h.nheaders);
  CHECK_INT(a->s.peer_zchunks, 1);
  CHECK_INT(a->s.peer_addkites, 1);
  /* and then A compresses */
  char *t = text_data(2000, 3);
  CHECK_INT(pk_session_send_data(&a->s, 1, t, 2000, NULL, NULL), 0);
  pk_frame f;
  CHECK_INT(first_frame(a, &f), 1);
  CHECK_INT(f.compressed, 1);
  free(t);
  peer_free(a);
  /* features offered only as other headers' values, or not at all */
  static const char head2[] =
      "HTTP/1.1 200 OK\r\nX-PageKite-Protos: ZChunks\r\nX-Features: AddKites\r\n"
      "X-PageKite-Features: ZChunksX\r\n\r\n";
  CHECK_INT(pk_wire_parse_http_head(head2, sizeof(head2) - 1, PK_HEAD_MAX, &h), 1);
  a = peer_new(0, 0);
  pk_session_features(&a->s, h.names, h.values, h.nheaders);
  CHECK_INT(a->s.peer_zchunks, 0);
  CHECK_INT(a->s.peer_addkites, 0);
  pk_session_features(&a->s, h.names, h.values, 0);
  CHECK_INT(a->s.peer_zchunks, 0);
  peer_free(a);
}

TEST(lifecycle) {
  peer *a = calloc(1, sizeof(*a));
  pk_session_init(&a->s, &callbacks, a, 77);
  CHECK(a->s.state == PK_SESSION_HANDSHAKE);
  CHECK_INT(a->s.last_rx, 77);
  CHECK_INT(a->s.rtt_ms, -1);
  char *base = NULL;
  CHECK_INT(pk_session_recv_room(&a->s, &base), 0);
  pk_session_open(&a->s);
  CHECK(a->s.state == PK_SESSION_OPEN);
  CHECK_INT(pk_session_recv_room(&a->s, &base), 0); /* no partial frame: own buffer */
  CHECK_INT(feed_str(a, "1", 100), 0);
  CHECK_INT(pk_session_recv_room(&a->s, &base) > 0, 1);
  CHECK(base == a->s.in + 1);
  CHECK_INT(a->s.last_rx, 100);
  pk_session_close(&a->s, "first reason");
  pk_session_close(&a->s, "second reason");
  CHECK(why_is(a, "first reason"));
  CHECK_INT(pk_session_recv_room(&a->s, &base), 0);
  CHECK_INT(pk_session_recv_inplace(&a->s, 0, 101), -1);
  CHECK_INT(pk_session_tick(&a->s, 102), -1);
  pk_session_open(&a->s); /* does not revive */
  CHECK(a->s.state == PK_SESSION_DEAD);
  pk_session_free(&a->s);
  pk_session_free(&a->s); /* twice is harmless */
  CHECK(a->s.in == NULL && a->s.state == PK_SESSION_DEAD);
  pk_session_close(&a->s, NULL);
  CHECK(strcmp(pk_session_why(&a->s), "first reason") == 0);
  bytes_free(&a->out);
  free(a);
  /* a session with zlib state in both directions frees cleanly */
  peer *x = peer_new(0, 0), *y = peer_new(0, 0);
  x->s.peer_zchunks = y->s.peer_zchunks = 1;
  char *t = text_data(2000, 4);
  pk_session_send_data(&x->s, 1, t, 2000, NULL, NULL);
  pk_session_send_data(&y->s, 1, t, 2000, NULL, NULL);
  CHECK_INT(deliver(x, y, 1), 0);
  CHECK_INT(deliver(y, x, 1), 0);
  CHECK(x->s.zin_ready && x->s.zout_ready && y->s.zin_ready && y->s.zout_ready);
  pk_session_close(&x->s, NULL);
  CHECK(strcmp(pk_session_why(&x->s), "closed") == 0);
  free(t);
  peer_free(x);
  peer_free(y);
}

/* ---- receive-side flow control: cb->room pauses the session ---- */
static long long shut_sid = -1; /* the stream whose queue is "full" */
static int room_asked;

static int cb_room(void *ctx, long long sid, size_t n) {
  (void)ctx;
  (void)n;
  room_asked++;
  return sid != shut_sid;
}

static const pk_session_cb pausing_callbacks = {
    .send = cb_send, .data = cb_data, .room = cb_room, .eof = cb_eof, .credit = cb_credit,
    .control = cb_control};

/* mode 0: plain frames, 1: ZChunks, 2: masked websocket frames.  A chunk
 * for the shut stream pauses the receiver before it: nothing of it or of
 * what follows is processed (not even its SKB), bytes received meanwhile
 * are kept, and resume delivers everything once, in order. */
static void pause_and_resume(int mode) {
  static const unsigned char key[4] = {0x5a, 0x01, 0xfe, 0x77};
  peer *a = peer_new(0, 0), *b = peer_new(mode == 2, 0);
  b->s.cb = &pausing_callbacks;
  b->s.authed = 1;
  a->s.peer_zchunks = mode == 1;
  char *d1 = text_data(3000, 1), *d2 = text_data(5000, 2), *late = text_data(700, 3);
  bytes wire = {0};
  /* sid 2 flows, sid 1 is shut; an SKB rides on sid 1's first chunk */
  const char *hdr1 = "SID: 1\r\nSKB: 9\r\n\r\n";
  CHECK_INT(pk_session_send_data(&a->s, 2, "first", 5, NULL, NULL), 0);
  if (mode == 0) {
    char f[4096];
    char *c = malloc(strlen(hdr1) + 3000);
    memcpy(c, hdr1, strlen(hdr1));
    memcpy(c + strlen(hdr1), d1, 3000);
    size_t fl = frame_plain(f, sizeof(f), c, strlen(hdr1) + 3000);
    bytes_put(&a->out, f, fl);
    free(c);
  } else {
    CHECK_INT(pk_session_send_headed(&a->s, hdr1, strlen(hdr1), d1, 3000, NULL, NULL), 0);
  }
  CHECK_INT(pk_session_send_eof(&a->s, 2, "W"), 0);
  CHECK_INT(pk_session_send_data(&a->s, 1, d2, 5000, NULL, NULL), 0);
  CHECK_INT(pk_session_send_eof(&a->s, 1, "RW"), 0);
  if (mode == 2) { /* re-frame every chunk as a masked client frame */
    size_t off = 0;
    while (off < a->out.len) {
      pk_frame f;
      int r = pk_wire_parse_frame(a->out.p + off, a->out.len - off, PK_MAX_CHUNK, &f);
      if (r < 0 || f.compressed) abort();
      unsigned char *wf = malloc(f.wire_len + 16);
      size_t wn = ws_frame(wf, 0x82, a->out.p + off + f.hdr_len, f.wire_len, key);
      bytes_put(&wire, wf, wn);
      free(wf);
      off += f.hdr_len + f.wire_len;
    }
    a->out.len = 0;
    bytes_put(&a->out, wire.p, wire.len);
  }
  shut_sid = 1;
  CHECK_INT(deliver(a, b, 1), 0);
  CHECK(b->s.blocked);
  CHECK(mode == 1 ? b->s.zpend > 0 : b->s.zpend == 0); /* inflated, waiting in zbuf */
  CHECK_INT(b->nev, 1); /* only sid 2's first chunk */
  CHECK(b->nev >= 1 && b->evs[0].kind == 'D' && b->evs[0].sid == 2);
  CHECK_INT(count_kind(b, 'C'), 0); /* the SKB waits with its chunk */
  /* More arrives while paused (the rest of a read): kept, not processed. */
  CHECK_INT(pk_session_send_data(&a->s, 2, late, 700, NULL, NULL), 0);
  if (mode == 2) {
    pk_frame f;
    CHECK(pk_wire_parse_frame(a->out.p, a->out.len, PK_MAX_CHUNK, &f) >= 0 && !f.compressed);
    unsigned char *wf = malloc(f.wire_len + 16);
    size_t wn = ws_frame(wf, 0x82, a->out.p + f.hdr_len, f.wire_len, key);
    a->out.len = 0;
    bytes_put(&a->out, wf, wn);
    free(wf);
  }
  CHECK_INT(deliver(a, b, 2), 0);
  CHECK_INT(b->nev, 1);
  char *room;
  CHECK_INT(pk_session_recv_room(&b->s, &room), 0); /* no reading in place while paused */
  /* Still no room: resume pauses again at the same chunk. */
  int asked = room_asked;
  CHECK_INT(pk_session_resume(&b->s, 3), 0);
  CHECK(b->s.blocked && room_asked > asked);
  CHECK_INT(b->nev, 1);
  /* Room: everything, once, in order. */
  shut_sid = -1;
  CHECK_INT(pk_session_resume(&b->s, 4), 0);
  CHECK(!b->s.blocked);
  CHECK(b->s.state == PK_SESSION_OPEN);
  static const char kinds[] = "DCDEDED";
  static const long long sids[] = {2, 1, 1, 2, 1, 1, 2};
  CHECK_INT(b->nev, 7);
  if (b->nev == 7) {
    for (int i = 0; i < 7; i++) {
      CHECK(b->evs[i].kind == kinds[i]);
      CHECK_INT(b->evs[i].sid, sids[i]);
    }
    CHECK_INT(b->evs[1].num, 9);
    CHECK(data_is(&b->evs[2], d1, 3000));
    CHECK_INT(b->evs[3].num, PK_EOF_WRITE);
    CHECK(data_is(&b->evs[4], d2, 5000));
    CHECK_INT(b->evs[5].num, PK_EOF_READ | PK_EOF_WRITE);
    CHECK(data_is(&b->evs[6], late, 700));
  }
  CHECK_INT(b->s.bytes_in, 5 + 3000 + 5000 + 700);
  bytes_free(&wire);
  free(d1);
  free(d2);
  free(late);
  peer_free(a);
  peer_free(b);
}

TEST(room_pauses_plain) { pause_and_resume(0); }
TEST(room_pauses_zchunks) { pause_and_resume(1); }
TEST(room_pauses_websocket) { pause_and_resume(2); }

int main(void) {
  RUN(data_both_ways);
  RUN(stream_open_headers);
  RUN(eof_bits);
  RUN(skb_credit_and_noop_control);
  RUN(long_control_chunk);
  RUN(zchunks_sizes);
  RUN(zchunks_incompressible_sets_noz);
  RUN(zchunks_zrst);
  RUN(zchunks_bad);
  RUN(ws_roundtrip);
  RUN(ws_masked_client_frames);
  RUN(ws_ping_pong);
  RUN(ws_close_and_bad_frames);
  RUN(ping_gets_pong);
  RUN(ping_rtt);
  RUN(tick_pings_and_times_out);
  RUN(tick_frees_idle_buffers);
  RUN(bounds_unauthed);
  RUN(bounds_authed);
  RUN(bad_chunks_close);
  RUN(feeding_is_cut_independent);
  RUN(authed_midway_inplace);
  RUN(callback_closes);
  RUN(send_failure_closes);
  RUN(features_from_head);
  RUN(lifecycle);
  RUN(room_pauses_plain);
  RUN(room_pauses_zchunks);
  RUN(room_pauses_websocket);
  return TEST_DONE();
}

/* handshake.c - the tunnel handshake and kite authentication of a session,
 * both roles, with no sockets (session.h).
 *
 * Connector: pk_session_connect() sends "CONNECT PageKite:1" with a signed
 * X-PageKite line per kite; the relay's head is read here (session.c hands
 * the bytes over while the session is in HANDSHAKE) and its answers go to
 * the owner one by one.  A challenge (SignThis) is answered in a NOOP when
 * the relay speaks AddKites, else the owner is told to reconnect with the
 * signatures (old relays).
 * Relay: pk_session_accept() runs every kite request of the head through
 * kiteauth.c with the owner's policy and sends the reply; kite requests in
 * NOOP chunks later (AddKites) are answered the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session.h"
#include "session_hs.h"

/* ---- connector ---- */
/* X-PageKite lines for our kites from *next on (all, or those the relay
 * challenged), as many as fit in max bytes; *next is left at the first
 * kite that did not fit.  -1 when not even one fits. */
static int kite_lines(pk_session *s, pk_wbuf *out, int only_challenged, int *next, size_t max) {
  size_t start = out->len;
  for (; *next < s->nkites; (*next)++) {
    pk_session_kite *k = &s->kites[*next];
    if (only_challenged && !k->fsalt[0]) continue;
    size_t before = out->len;
    int rv = pk_auth_sign_request(out, k->protoport, k->name, k->bsalt, k->fsalt, k->secret);
    if (rv == 0 && out->len - start <= max) continue;
    out->len = before; /* this one waits for the next message */
    out->overflow = 0;
    return before > start ? 0 : -1;
  }
  return 0;
}

/* Kites that did not fit in the request head follow in NOOPs, once the
 * relay has said it takes them (AddKites). */
static void send_rest(pk_session *s) {
  char *lines = malloc(PK_KITE_LINES_NOOP + 64);
  while (lines && s->unsent < s->nkites && s->state == PK_SESSION_OPEN && s->peer_addkites) {
    pk_wbuf b;
    pk_wbuf_init(&b, lines, PK_KITE_LINES_NOOP + 64);
    if (kite_lines(s, &b, 0, &s->unsent, PK_KITE_LINES_NOOP) != 0 ||
        pk_session_send_noop(s, lines, b.len) != 0)
      pk_session_close(s, "cannot send kite requests");
  }
  if (!lines) pk_session_close(s, "out of memory");
  free(lines);
}

static void clear_challenges(pk_session *s) {
  for (int i = 0; i < s->nkites; i++) s->kites[i].fsalt[0] = 0;
}

static int send_or_close(pk_session *s, int rv, const char *why) {
  if (rv != 0) pk_session_close(s, why);
  return rv;
}

int pk_session_connect(pk_session *s, const pk_session_kite *kites, int n, const char *version,
                       const char *resume) {
  if (s->state != PK_SESSION_HANDSHAKE || n < 0 || n > PK_MAX_KITES_PER_TUNNEL)
    return send_or_close(s, -1, "too many kites for one tunnel");
  free(s->kites);
  s->kites = n ? malloc((size_t)n * sizeof(*kites)) : NULL;
  if (n && !s->kites) return send_or_close(s, -1, "out of memory");
  if (n) memcpy(s->kites, kites, (size_t)n * sizeof(*kites));
  s->nkites = n;
  s->role = PK_SESSION_CONNECTOR;
  char *req = malloc(PK_HEAD_MAX);
  if (!req) return send_or_close(s, -1, "out of memory");
  pk_wbuf b;
  pk_wbuf_init(&b, req, PK_HEAD_MAX);
  pk_wire_tunnel_request(&b, version, resume);
  s->unsent = 0;
  int rv = n ? kite_lines(s, &b, 0, &s->unsent, PK_KITE_LINES_HEAD) : 0;
  pk_wbuf_end(&b);
  clear_challenges(s);
  if (rv != 0 || !pk_wbuf_ok(&b)) rv = send_or_close(s, -1, "too many kites for one request");
  if (rv == 0) rv = s->cb->send(s->ctx, req, b.len, NULL, 0, NULL) == 0 ? 0 : -1;
  free(req);
  return send_or_close(s, rv, "cannot send the tunnel request");
}

int pk_session_request(pk_session *s, const pk_session_kite *kites, int n, const char *want) {
  if (s->state != PK_SESSION_OPEN || s->role != PK_SESSION_CONNECTOR || !s->peer_addkites)
    return -1;
  if (n < 0 || n > PK_MAX_KITES_PER_TUNNEL) return -1;
  pk_session_kite *nk = n ? malloc((size_t)n * sizeof(*kites)) : NULL;
  char *lines = malloc(PK_KITE_LINES_NOOP + 64);
  if ((n && !nk) || !lines) {
    free(nk), free(lines);
    return -1;
  }
  if (n) memcpy(nk, kites, (size_t)n * sizeof(*kites));
  /* A longer list (kites added while running) is asked for here, for the
   * kites in want: send_rest must not ask for the new ones again (a relay
   * such as pagekite.py answers a second request with Duplicate and drops
   * the tunnel). */
  int all_sent = s->unsent >= s->nkites;
  free(s->kites);
  s->kites = nk;
  s->nkites = n;
  if (all_sent) s->unsent = n;
  pk_wbuf b;
  pk_wbuf_init(&b, lines, PK_KITE_LINES_NOOP + 64);
  for (int i = 0; i < n && s->state == PK_SESSION_OPEN; i++) {
    if (!want[i]) continue;
    s->kites[i].fsalt[0] = 0; /* unsigned: the relay challenges, we sign in-band */
    size_t before = b.len;
    pk_auth_sign_request(&b, s->kites[i].protoport, s->kites[i].name, s->kites[i].bsalt, "",
                         s->kites[i].secret);
    if (pk_wbuf_ok(&b) && b.len <= PK_KITE_LINES_NOOP) continue;
    b.len = before, b.overflow = 0, i--; /* send what we have, then this one again */
    if (!before || pk_session_send_noop(s, lines, b.len) != 0) break;
    b.len = 0;
  }
  if (b.len && s->state == PK_SESSION_OPEN) pk_session_send_noop(s, lines, b.len);
  free(lines);
  return s->state == PK_SESSION_OPEN ? 0 : -1;
}

/* Challenges are answered in-band when the relay speaks AddKites; an old
 * relay wants a new tunnel with the signatures (the owner's job). */
static void answer_challenges(pk_session *s) {
  if (s->state == PK_SESSION_OPEN && s->peer_addkites) {
    char *lines = malloc(PK_KITE_LINES_NOOP + 64);
    for (int next = 0; lines && next < s->nkites && s->state != PK_SESSION_DEAD;) {
      pk_wbuf b;
      pk_wbuf_init(&b, lines, PK_KITE_LINES_NOOP + 64);
      int rv = kite_lines(s, &b, 1, &next, PK_KITE_LINES_NOOP);
      if (rv != 0 || (b.len && pk_session_send_noop(s, lines, b.len) != 0))
        pk_session_close(s, "cannot sign challenge");
    }
    if (!lines) pk_session_close(s, "out of memory");
    free(lines);
    clear_challenges(s);
    return;
  }
  clear_challenges(s);
  if (s->cb->resign) s->cb->resign(s->ctx);
}

/* Our kite an answer names: relays (ours and pagekite.py) answer with the
 * "proto[-port]:name" exactly as it was asked for. */
static pk_session_kite *kite_named(pk_session *s, const pk_auth_answer *a) {
  for (int i = 0; i < s->nkites; i++)
    if (strcasecmp(s->kites[i].protoport, a->protoport) == 0 &&
        strcasecmp(s->kites[i].name, a->name) == 0)
      return &s->kites[i];
  return NULL;
}

static void one_answer(pk_session *s, const pk_slice *name, const pk_slice *value, int *challenged) {
  pk_auth_answer a;
  pk_answer_kind kind = pk_auth_parse_answer(*name, *value, &a);
  if (kind == PK_ANS_NONE) return;
  if (kind == PK_ANS_FEATURE) {
    pk_session_features(s, name, value, 1);
    return;
  }
  int about_tunnel = kind == PK_ANS_SESSION || kind == PK_ANS_MOTD;
  pk_session_kite *k = about_tunnel ? NULL : kite_named(s, &a);
  if (!about_tunnel && !k) return; /* about a kite we never asked for */
  if (kind == PK_ANS_SIGNTHIS) {
    snprintf(k->fsalt, sizeof(k->fsalt), "%s", a.detail);
    (*challenged)++;
  }
  if (s->cb->answer) s->cb->answer(s->ctx, &a);
}

/* The relay's X-PageKite-* answers, in its head or a NOOP chunk.  Reasons go
 * first: X-PageKite-Invalid-Why follows the Invalid it explains. */
static void client_answers(pk_session *s, const pk_slice *names, const pk_slice *values, int n) {
  int challenged = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < n && s->state != PK_SESSION_DEAD; i++) {
      int why = pk_slice_ieq(names[i], "X-PageKite-Invalid-Why");
      if (why == (pass == 0)) one_answer(s, &names[i], &values[i], &challenged);
    }
  if (challenged && s->state != PK_SESSION_DEAD) answer_challenges(s);
  /* The websocket form says AddKites in a NOOP after the 101: kites that
   * did not fit the request head follow now. */
  if (s->state == PK_SESSION_OPEN) send_rest(s);
}

static int head_ok(pk_session *s, int r, const pk_http_head *h) {
  char why[64];
  if (r == PK_WIRE_NEED_MORE || r == PK_WIRE_ETOOBIG)
    snprintf(why, sizeof(why), "handshake response too large");
  else if (r < 0 || !h->is_response)
    snprintf(why, sizeof(why), "bad handshake response");
  else if ((s->peer_status = h->status) != 200 && h->status != 101)
    snprintf(why, sizeof(why), "relay refused the tunnel: HTTP %d", h->status);
  else
    return 1;
  pk_session_close(s, why);
  return 0;
}

long pk_session_hs_head(pk_session *s, const char *data, size_t n) {
  if (!s->in || s->incap < PK_HEAD_MAX) {
    char *nb = realloc(s->in, PK_HEAD_MAX);
    if (!nb) return send_or_close(s, -1, "out of memory");
    s->in = nb;
    s->incap = PK_HEAD_MAX;
  }
  size_t take = n < PK_HEAD_MAX - s->inlen ? n : PK_HEAD_MAX - s->inlen;
  memcpy(s->in + s->inlen, data, take);
  s->inlen += take;
  pk_http_head h;
  int r = pk_wire_parse_http_head(s->in, s->inlen, PK_HEAD_MAX, &h);
  if (r == PK_WIRE_NEED_MORE && s->inlen < PK_HEAD_MAX) return (long)take;
  if (!head_ok(s, r, &h)) return -1;
  s->state = PK_SESSION_OPEN;
  client_answers(s, h.names, h.values, h.nheaders);
  /* What followed the head is the first frames: keep it at the front. */
  s->inlen -= h.head_len;
  memmove(s->in, s->in + h.head_len, s->inlen);
  if (s->state == PK_SESSION_DEAD) return -1;
  if (s->cb->opened) s->cb->opened(s->ctx);
  return s->state == PK_SESSION_DEAD ? -1 : (long)take;
}

/* ---- relay ---- */
/* Every "X-PageKite:" request of a head or NOOP chunk, answered into out. */
static void relay_requests(pk_session *s, const pk_slice *names, const pk_slice *values, int n,
                           pk_wbuf *out, pk_session_counts *c) {
  pk_slice replace = {NULL, 0};
  for (int i = 0; i < n; i++)
    if (pk_slice_ieq(names[i], "X-PageKite-Replace")) replace = values[i];
  pk_auth_relay a;
  memset(&a, 0, sizeof(a));
  s->cb->policy(s->ctx, replace, &a);
  for (int i = 0; i < n && s->state != PK_SESSION_DEAD; i++) {
    pk_kite_req k;
    if (!pk_slice_ieq(names[i], "X-PageKite")) continue;
    if (pk_kite_req_parse(values[i], &k) != 0) {
      c->bad++;
      continue;
    }
    const char *why = NULL;
    int may = s->challenges < PK_MAX_CHALLENGES_PER_TUNNEL;
    pk_auth_verdict v = pk_auth_relay_request(&a, &k, may, out, &why);
    if (v == PK_AUTH_CHALLENGED) s->challenges++;
    if (v == PK_AUTH_PENDING) { /* the owner answers later: pk_session_auth_done */
      c->pending++;
      s->auth_pending++;
      continue;
    }
    *(v == PK_AUTH_OK ? &c->ok : v == PK_AUTH_CHALLENGED ? &c->challenged : &c->bad) += 1;
    if (s->cb->verdict) s->cb->verdict(s->ctx, &k, v, why);
  }
}

static char *reply_buf(pk_wbuf *b) {
  size_t cap = PK_AUTH_REPLY_MAX + 2048;
  char *p = malloc(cap);
  pk_wbuf_init(b, p, p ? cap : 0);
  return p;
}

/* Kite requests in a NOOP chunk (AddKites), answered in a NOOP.  The answer
 * takes at most two lines per request: a NOOP with a few requests (the
 * usual, and a flood's) is answered from the stack, without the heap. */
static void relay_noop(pk_session *s, const pk_chunk *ch) {
  pk_session_counts c = {0, 0, 0, 0};
  size_t lines = 0;
  for (int i = 0; i < ch->nheaders; i++) lines += pk_slice_ieq(ch->names[i], "X-PageKite");
  size_t need = lines * 2 * (PK_NAME_MAX + 160) + 64;
  char small[4096], *buf = need <= sizeof(small) ? small : malloc(need);
  if (!buf) {
    pk_session_close(s, "out of memory");
    return;
  }
  pk_wbuf b;
  pk_wbuf_init(&b, buf, buf == small ? sizeof(small) : need);
  relay_requests(s, ch->names, ch->values, ch->nheaders, &b, &c);
  if (s->state != PK_SESSION_DEAD && pk_wbuf_ok(&b) && (b.len || !c.pending))
    pk_session_send_noop(s, buf, b.len);
  if (buf != small) free(buf);
}

int pk_session_hs_control(pk_session *s, const pk_chunk *ch) {
  if (s->role == PK_SESSION_CONNECTOR) {
    client_answers(s, ch->names, ch->values, ch->nheaders);
    return 1;
  }
  if (s->role != PK_SESSION_RELAY) return 0;
  for (int i = 0; i < ch->nheaders; i++)
    if (pk_slice_ieq(ch->names[i], "X-PageKite")) {
      relay_noop(s, ch);
      return 1;
    }
  return 0;
}

/* The reply: features, the kites' answers and the session id, in the head
 * or (websocket form) in a NOOP chunk right after the 101, as pagekite.py. */
static int send_reply(pk_session *s, pk_wbuf *b, const char *answers, size_t an,
                      const char *ws_accept, const pk_relay_hello *hello) {
  if (ws_accept) {
    pk_wire_tunnel_ws_head(b, ws_accept);
    if (!pk_wbuf_ok(b) || s->cb->send(s->ctx, b->p, b->len, NULL, 0, NULL) != 0) return -1;
    s->ws = 1;
    b->len = 0;
  } else {
    pk_wire_tunnel_ok_head(b);
  }
  pk_wire_tunnel_features(b, !ws_accept, hello->ports,
                          hello->raw_ports ? hello->raw_ports : hello->ports);
  pk_wbuf_put(b, answers, an);
  pk_wire_tunnel_session(b, hello->session_id, hello->motd);
  if (!pk_wbuf_ok(b)) return -1;
  s->state = PK_SESSION_OPEN;
  if (ws_accept) return pk_session_send_noop(s, b->p, b->len);
  pk_wbuf_end(b);
  return pk_wbuf_ok(b) ? s->cb->send(s->ctx, b->p, b->len, NULL, 0, NULL) : -1;
}

int pk_session_accept(pk_session *s, const pk_http_head *h, const char *ws_accept,
                      const pk_relay_hello *hello, pk_session_counts *out) {
  pk_session_counts c = {0, 0, 0, 0};
  if (out) *out = c;
  if (s->state != PK_SESSION_HANDSHAKE || !s->cb->policy)
    return send_or_close(s, -1, "handshake out of order");
  s->role = PK_SESSION_RELAY;
  pk_session_features(s, h->names, h->values, h->nheaders);
  if (ws_accept) s->peer_addkites = 1; /* websocket tunnels always add kites in-band */
  pk_wbuf ans, rep;
  char *abuf = reply_buf(&ans), *rbuf = NULL;
  int rv = abuf ? 0 : -1;
  if (rv == 0) relay_requests(s, h->names, h->values, h->nheaders, &ans, &c);
  if (rv == 0 && s->state != PK_SESSION_DEAD && c.pending) {
    /* The reply waits for the authority: the answers so far are kept. */
    free(s->deferred);
    s->deferred = abuf;
    s->deferred_len = ans.len;
    s->deferred_counts = c;
    s->deferred_counts.pending = 0;
    snprintf(s->deferred_ws, sizeof(s->deferred_ws), "%s", ws_accept ? ws_accept : "");
    if (out) *out = c;
    return 0;
  }
  if (rv == 0 && !(rbuf = reply_buf(&rep))) rv = -1;
  if (rv == 0 && s->state != PK_SESSION_DEAD)
    rv = send_reply(s, &rep, abuf, ans.len, ws_accept, hello);
  free(abuf);
  free(rbuf);
  if (out) *out = c;
  if (s->state == PK_SESSION_DEAD) return -1;
  return send_or_close(s, rv, "cannot answer the handshake");
}

int pk_session_auth_done(pk_session *s, const pk_kite_req *k, int ok, const char *reason,
                         const char *extra, size_t extra_n, const pk_relay_hello *hello,
                         pk_session_counts *out) {
  if (s->state == PK_SESSION_DEAD || s->role != PK_SESSION_RELAY || s->auth_pending <= 0) return -1;
  s->auth_pending--;
  pk_auth_relay a;
  memset(&a, 0, sizeof(a));
  pk_slice none = {NULL, 0};
  s->cb->policy(s->ctx, none, &a);
  char lines[2 * (PK_NAME_MAX + 160) + 512];
  pk_wbuf b;
  pk_wbuf_init(&b, lines, sizeof(lines));
  const char *why = NULL;
  pk_auth_verdict v = pk_auth_relay_finish(&a, k, ok, reason, &b, &why);
  if (v == PK_AUTH_OK && extra && extra_n) pk_wbuf_put(&b, extra, extra_n);
  if (s->cb->verdict) s->cb->verdict(s->ctx, k, v, why);
  if (s->state == PK_SESSION_DEAD) return -1;
  if (!pk_wbuf_ok(&b)) return send_or_close(s, -1, "cannot answer a kite request");
  if (s->state == PK_SESSION_OPEN) {
    if (b.len && pk_session_send_noop(s, lines, b.len) != 0) return -1;
    return 0;
  }
  /* A head's reply: this answer joins the others; the last one sends it. */
  size_t cap = PK_AUTH_REPLY_MAX + 2048;
  if (!s->deferred || s->deferred_len + b.len > cap)
    return send_or_close(s, -1, "cannot answer the handshake");
  memcpy(s->deferred + s->deferred_len, lines, b.len);
  s->deferred_len += b.len;
  *(v == PK_AUTH_OK ? &s->deferred_counts.ok : &s->deferred_counts.bad) += 1;
  if (s->auth_pending) return 0;
  if (out) *out = s->deferred_counts;
  pk_wbuf rep;
  char *rbuf = reply_buf(&rep);
  int rv = rbuf ? send_reply(s, &rep, s->deferred, s->deferred_len,
                             s->deferred_ws[0] ? s->deferred_ws : NULL, hello)
                : -1;
  free(rbuf);
  free(s->deferred);
  s->deferred = NULL;
  if (s->state == PK_SESSION_DEAD) return -1;
  return send_or_close(s, rv, "cannot answer the handshake") == 0 ? 1 : -1;
}

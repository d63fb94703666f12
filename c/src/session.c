/* session.c - one tunnel's chunk protocol, fed with bytes (see session.h). */
#include "session.h"
#include "session_hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pk_session_init(pk_session *s, const pk_session_cb *cb, void *ctx, uint64_t now_ms) {
  memset(s, 0, sizeof(*s));
  s->cb = cb;
  s->ctx = ctx;
  s->last_rx = s->last_tx = now_ms;
  s->rtt_ms = -1;
}

static void free_buffers(pk_session *s) {
  free(s->in);
  free(s->zbuf);
  free(s->zobuf);
  s->in = s->zbuf = s->zobuf = NULL;
  s->inlen = s->incap = 0;
}

void pk_session_free(pk_session *s) {
  if (s->zin_ready) inflateEnd(&s->zin);
  if (s->zout_ready) deflateEnd(&s->zout);
  s->zin_ready = s->zout_ready = 0;
  free_buffers(s);
  free(s->kites);
  s->kites = NULL;
  s->nkites = 0;
  free(s->deferred);
  s->deferred = NULL;
  s->state = PK_SESSION_DEAD;
}

void pk_session_open(pk_session *s) {
  if (s->state == PK_SESSION_HANDSHAKE) s->state = PK_SESSION_OPEN;
}

void pk_session_close(pk_session *s, const char *why) {
  if (s->state == PK_SESSION_DEAD) return;
  s->state = PK_SESSION_DEAD;
  snprintf(s->why, sizeof(s->why), "%s", why ? why : "closed");
}

const char *pk_session_why(const pk_session *s) { return s->why[0] ? s->why : "closed"; }

static int alive(const pk_session *s) { return s->state != PK_SESSION_DEAD; }

/* Before a kite is authenticated a peer gets small frames and buffers only. */
static size_t max_chunk(const pk_session *s) { return s->authed ? PK_MAX_CHUNK : PK_UNAUTH_CHUNK; }

/* ---- sending ---- */
/* Websocket tunnels carry each chunk as one binary frame (unmasked: we are
 * the server end); plain tunnels use the "<hex len>\r\n" frame header. */
static int frame_header(const pk_session *s, char *out, size_t outsz, size_t len) {
  if (s->ws) return pk_wire_ws_header((unsigned char *)out, len);
  return pk_wire_format_frame(out, outsz, len, len, 0, 0);
}

static int sent(pk_session *s, int rv) {
  s->sent_since_tick = 1;
  if (rv != 0) pk_session_close(s, "cannot queue a chunk for the peer");
  return rv;
}

int pk_session_send_chunk(pk_session *s, const char *hdrs, size_t hn, const char *data, size_t dn,
                          void *buf) {
  if (!alive(s)) return -1;
  char head[PK_WIRE_FRAME_HDR_MAX + 1024];
  int fl = frame_header(s, head, sizeof(head), hn + dn);
  if (fl < 0) return -1;
  s->bytes_out += dn;
  if (hn > sizeof(head) - (size_t)fl) {
    /* Long control chunks (many kite results): frame header and headers go
     * separately. */
    int rv = s->cb->send(s->ctx, head, (size_t)fl, hdrs, hn, NULL);
    if (rv == 0 && dn) rv = s->cb->send(s->ctx, NULL, 0, data, dn, buf);
    return sent(s, rv);
  }
  memcpy(head + fl, hdrs, hn);
  return sent(s, s->cb->send(s->ctx, head, (size_t)fl + hn, data, dn, buf));
}

/* (Re)start the deflater when the peer asked (ZRST); returns the frame's R
 * flag, or -1 when compression is off for now. */
static int deflate_ready(pk_session *s) {
  if (s->zout_ready && !s->zreset_pending) return 0;
  int reset = s->zout_ready; /* the peer's inflater must start over too */
  if (s->zout_ready) deflateEnd(&s->zout);
  memset(&s->zout, 0, sizeof(s->zout));
  s->zout_ready = 0;
  if (deflateInit(&s->zout, 1) != Z_OK) return -1;
  s->zout_ready = 1;
  s->zreset_pending = 0;
  return reset;
}

/* Compresses hdrs+data into zobuf; returns the compressed length or 0. */
static size_t deflate_chunk(pk_session *s, const char *hdrs, size_t hn, const char *data, size_t dn) {
  z_stream *z = &s->zout;
  z->next_out = (Bytef *)s->zobuf;
  z->avail_out = PK_MAX_CHUNK;
  z->next_in = (Bytef *)hdrs;
  z->avail_in = (uInt)hn;
  int r = deflate(z, Z_NO_FLUSH);
  if (r == Z_OK) {
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)dn;
    r = deflate(z, Z_SYNC_FLUSH);
  }
  if (r != Z_OK || z->avail_in != 0) {
    s->zreset_pending = 1; /* the deflater is off track: start over next time */
    return 0;
  }
  return PK_MAX_CHUNK - z->avail_out;
}

/* ZChunks (zlib, sync-flushed, one stream per direction) when the peer
 * offered them and the stream's data compresses; plain otherwise. */
int pk_session_send_headed(pk_session *s, const char *hdrs, size_t hn, const char *data,
                           size_t dn, void *buf, int *noz) {
  if (!alive(s)) return -1;
  size_t len = hn + dn;
  if (!s->peer_zchunks || s->ws || (noz && *noz) || len <= 64 || len > PK_ZCHUNK_MAX)
    return pk_session_send_chunk(s, hdrs, hn, data, dn, buf);
  int reset = deflate_ready(s);
  if (reset < 0 || (!s->zobuf && !(s->zobuf = malloc(PK_MAX_CHUNK))))
    return pk_session_send_chunk(s, hdrs, hn, data, dn, buf);
  size_t zlen = deflate_chunk(s, hdrs, hn, data, dn);
  if (!zlen) return pk_session_send_chunk(s, hdrs, hn, data, dn, buf);
  /* Data that does not shrink is sent plain from now on (the deflate state
   * has consumed it, so this chunk still goes out compressed). */
  if (noz && zlen * 10 > len * 9) *noz = 1;
  char head[PK_WIRE_FRAME_HDR_MAX + 1];
  int fl = pk_wire_format_frame(head, sizeof(head), len, zlen, 1, reset);
  if (fl < 0) return -1;
  s->bytes_out += dn;
  return sent(s, s->cb->send(s->ctx, head, (size_t)fl, s->zobuf, zlen, NULL));
}

int pk_session_send_data(pk_session *s, long long sid, const char *data, size_t dn, void *buf,
                         int *noz) {
  char h[48];
  int hn = pk_wire_format_sid(h, sizeof(h), sid);
  if (hn < 0) return -1;
  return pk_session_send_headed(s, h, (size_t)hn, data, dn, buf, noz);
}

/* pagekite.py's tunnel reader handles at most 150 chunks per read of up to
 * ~50 KB and dies ("Too much data") on more, so a burst of tiny control
 * chunks (EOFs of many streams ending at once, SKBs) can kill a pagekite.py
 * relay.  Control chunks are therefore never smaller than
 * PK_MIN_CONTROL_CHUNK: their payload (which every reader ignores) is
 * padded.  Returns the payload and its length. */
static const char *control_payload(const char *word, size_t hn, size_t *pn) {
  static const char pad[PK_MIN_CONTROL_CHUNK + 1] =
      "Bye!"
      "...................................................................................."
      "...................................................................................."
      "...................................................................................."
      "....................................................................................";
  size_t wl = strlen(word);
  const char *p = wl == 1 ? pad + 3 : pad; /* "!..." or "Bye!..." */
  size_t avail = sizeof(pad) - 1 - (size_t)(p - pad);
  *pn = hn + wl >= PK_MIN_CONTROL_CHUNK ? wl : PK_MIN_CONTROL_CHUNK - hn;
  if (*pn > avail) *pn = avail;
  return p;
}

int pk_session_send_noop(pk_session *s, const char *lines, size_t n) {
  char small[1024], *buf = small;
  size_t cap = n + 32 <= sizeof(small) ? sizeof(small) : n + 32;
  if (cap > sizeof(small) && !(buf = malloc(cap))) return -1; /* long kite answers only */
  pk_wbuf b;
  pk_wbuf_init(&b, buf, cap);
  pk_wire_noop(&b, lines, n);
  size_t pn;
  const char *payload = control_payload("!", b.len, &pn);
  int rv = pk_wbuf_ok(&b) ? pk_session_send_chunk(s, buf, b.len, payload, pn, NULL) : -1;
  if (buf != small) free(buf);
  return rv;
}

void pk_session_features(pk_session *s, const pk_slice *names, const pk_slice *values, int n) {
  for (int i = 0; i < n; i++) {
    if (!pk_slice_ieq(names[i], "X-PageKite-Features")) continue;
    if (pk_slice_ieq(values[i], "AddKites")) s->peer_addkites = 1;
    if (pk_slice_ieq(values[i], "ZChunks")) s->peer_zchunks = 1;
  }
}

int pk_session_send_eof(pk_session *s, long long sid, const char *how) {
  char buf[80];
  pk_wbuf b;
  pk_wbuf_init(&b, buf, sizeof(buf));
  pk_wire_eof(&b, sid, how);
  if (!pk_wbuf_ok(&b)) return -1;
  size_t pn;
  const char *payload = control_payload("Bye!", b.len, &pn);
  return pk_session_send_chunk(s, buf, b.len, payload, pn, NULL);
}

int pk_session_send_skb(pk_session *s, long long sid, unsigned long long kb) {
  char buf[80];
  pk_wbuf b;
  pk_wbuf_init(&b, buf, sizeof(buf));
  pk_wire_skb_lines(&b, sid, kb);
  return pk_wbuf_ok(&b) ? pk_session_send_noop(s, buf, b.len) : -1;
}

int pk_session_ping(pk_session *s, uint64_t now_ms) {
  char buf[64];
  pk_wbuf b;
  pk_wbuf_init(&b, buf, sizeof(buf));
  pk_wire_ping_line(&b, (double)now_ms / 1000.0);
  s->last_ping_sent = now_ms;
  s->ping_outstanding = 1;
  return pk_session_send_noop(s, buf, b.len);
}

static int pong(pk_session *s, pk_slice ts) {
  char buf[96];
  pk_wbuf b;
  pk_wbuf_init(&b, buf, sizeof(buf));
  pk_wire_pong_line(&b, ts);
  return pk_session_send_noop(s, buf, b.len);
}

/* ---- receiving ---- */
/* Keepalive and flow-control headers any chunk may carry. */
static void chunk_housekeeping(pk_session *s, const pk_chunk *ch, uint64_t now_ms) {
  if (ch->known[PK_CH_PING].p) pong(s, ch->known[PK_CH_PING]);
  if (ch->known[PK_CH_ZRST].p) s->zreset_pending = 1;
  if (ch->known[PK_CH_PONG].p) {
    s->ping_outstanding = 0;
    s->rtt_ms = (int)(now_ms - s->last_ping_sent);
  }
  if ((ch->known[PK_CH_SKB].p || ch->known[PK_CH_SPD].p) && ch->sid >= 0) {
    long long kb;
    s->peer_skb = 1;
    if (ch->known[PK_CH_SKB].p && pk_slice_to_ll(ch->known[PK_CH_SKB], &kb) == 0 && alive(s))
      s->cb->credit(s->ctx, ch->sid, kb);
  }
}

/* process_chunk's answer when the owner has no room for the chunk's data:
 * nothing of the chunk was processed, it waits (s->blocked). */
#define PK_SESSION_BLOCKED 1

static int process_chunk(pk_session *s, const char *p, size_t n, uint64_t now_ms) {
  pk_chunk ch;
  if (pk_wire_parse_chunk(p, n, &ch) != 0) {
    pk_session_close(s, "corrupt chunk");
    return -1;
  }
  /* Before any side effect (PONG, credit, counters), so the retry is the
   * chunk's first and only processing. */
  if (!ch.noop && !ch.eof && ch.sid >= 0 && ch.data.n > 0 && s->cb->room &&
      !s->cb->room(s->ctx, ch.sid, ch.data.n)) {
    s->blocked = 1;
    return PK_SESSION_BLOCKED;
  }
  chunk_housekeeping(s, &ch, now_ms);
  if (!alive(s)) return -1;
  if (ch.noop) {
    if (!pk_session_hs_control(s, &ch) && s->cb->control) s->cb->control(s->ctx, &ch);
  } else if (ch.sid < 0) {
    pk_session_close(s, "chunk without SID");
  } else if (ch.eof) {
    s->cb->eof(s->ctx, ch.sid, ch.eof);
  } else {
    s->bytes_in += ch.data.n;
    s->cb->data(s->ctx, &ch);
  }
  return alive(s) ? 0 : -1;
}

static int inflate_chunk(pk_session *s, const pk_frame *f, const char *p, uint64_t now_ms) {
  if (!s->zbuf && !(s->zbuf = malloc(PK_MAX_CHUNK))) return -1;
  if (!s->zin_ready || f->reset) {
    if (s->zin_ready) inflateEnd(&s->zin);
    memset(&s->zin, 0, sizeof(s->zin));
    s->zin_ready = 0;
    if (inflateInit(&s->zin) != Z_OK) return -1;
    s->zin_ready = 1;
  }
  s->zin.next_in = (Bytef *)p;
  s->zin.avail_in = (uInt)f->wire_len;
  s->zin.next_out = (Bytef *)s->zbuf;
  s->zin.avail_out = PK_MAX_CHUNK;
  int r = inflate(&s->zin, Z_SYNC_FLUSH);
  if ((r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) || s->zin.avail_in != 0) return -1;
  size_t out = PK_MAX_CHUNK - s->zin.avail_out;
  if (out != f->len) return -1;
  /* The inflater took the frame: a chunk that must wait, waits in zbuf. */
  int rv = process_chunk(s, s->zbuf, out, now_ms);
  if (rv == PK_SESSION_BLOCKED) s->zpend = out;
  return rv == PK_SESSION_BLOCKED ? 0 : rv;
}

/* One websocket frame's header: lengths into *hl and *len, or 0 when more
 * bytes are needed, -1 when the frame is not one we take. */
static int ws_frame_len(const pk_session *s, const unsigned char *b, size_t avail, size_t *hl,
                        uint64_t *len) {
  if (avail < 2) return 0;
  *len = b[1] & 0x7f;
  *hl = 2;
  if (*len == 126) {
    if (avail < 4) return 0;
    *len = ((uint64_t)b[2] << 8) | b[3];
    *hl = 4;
  } else if (*len == 127) {
    if (avail < 10) return 0;
    *len = 0;
    for (int i = 0; i < 8; i++) *len = (*len << 8) | b[2 + i];
    *hl = 10;
  }
  if (*len > max_chunk(s) || !(b[0] & 0x80) || (b[0] & 0x70)) return -1;
  if (b[1] & 0x80) *hl += 4; /* masking key */
  return 1;
}

/* One complete websocket frame (payload unmasked in place). */
static int ws_frame(pk_session *s, unsigned char *b, size_t hl, size_t len, uint64_t now_ms) {
  char *p = (char *)b + hl;
  if (b[1] & 0x80) {
    for (size_t i = 0; i < len; i++) p[i] ^= (char)b[hl - 4 + (i & 3)];
    memset(b + hl - 4, 0, 4); /* unmasked: a retry (after a pause) must not unmask again */
  }
  int op = b[0] & 0x0f;
  if (op == 0x1 || op == 0x2) return len ? process_chunk(s, p, len, now_ms) : 0;
  if (op == 0x8) {
    pk_session_close(s, "websocket closed by peer");
    return -1;
  }
  if (op == 0x9 && len < 126) {
    unsigned char ph[2];
    int pl = pk_wire_ws_pong_header(ph, len);
    return sent(s, s->cb->send(s->ctx, (const char *)ph, (size_t)pl, p, len, NULL));
  }
  if (op == 0x9 || op == 0xa) return 0;
  pk_session_close(s, "unsupported websocket frame");
  return -1;
}

/* Websocket framing (RFC 6455) around chunks, as pagekite.py's websocket
 * tunnels use it: one chunk per binary frame, client frames masked. */
static long consume_ws(pk_session *s, char *buf, size_t n, uint64_t now_ms) {
  size_t off = 0;
  while (off < n && alive(s)) {
    unsigned char *b = (unsigned char *)buf + off;
    size_t hl;
    uint64_t len;
    int r = ws_frame_len(s, b, n - off, &hl, &len);
    if (r < 0) pk_session_close(s, "bad websocket frame");
    if (r <= 0 || n - off < hl + len) break;
    int rv = ws_frame(s, b, hl, (size_t)len, now_ms);
    if (rv < 0) return -1;
    if (rv == PK_SESSION_BLOCKED) break;
    off += hl + (size_t)len;
  }
  return alive(s) ? (long)off : -1;
}

/* Consume whole frames from buf; returns bytes consumed or -1 (dead). */
static long consume(pk_session *s, char *buf, size_t n, uint64_t now_ms) {
  if (s->ws) return consume_ws(s, buf, n, now_ms);
  size_t off = 0;
  while (off < n && alive(s)) {
    pk_frame f;
    int r = pk_wire_parse_frame(buf + off, n - off, max_chunk(s), &f);
    if (r == PK_WIRE_NEED_MORE) break;
    if (r < 0) {
      pk_session_close(s, r == PK_WIRE_ETOOBIG ? "oversized chunk" : "bad chunk frame");
      return -1;
    }
    if (n - off < f.hdr_len + f.wire_len) break;
    const char *p = buf + off + f.hdr_len;
    int rv = f.compressed ? inflate_chunk(s, &f, p, now_ms) : process_chunk(s, p, f.wire_len, now_ms);
    if (rv < 0) {
      pk_session_close(s, "bad compressed chunk");
      return -1;
    }
    if (rv == PK_SESSION_BLOCKED) break; /* the frame stays, first in line */
    off += f.hdr_len + f.wire_len;
    if (s->blocked) break; /* its inflated chunk waits in zbuf */
  }
  return alive(s) ? (long)off : -1;
}

/* The frame buffer holds one partial frame between reads.  It is taken when
 * a frame spans reads and given back when the session is idle; before a kite
 * is authenticated it is small. */
static int ensure_in(pk_session *s) {
  size_t cap = s->authed ? PK_TUNNEL_INBUF : PK_UNAUTH_INBUF;
  if (s->in && s->incap >= cap) return 0;
  char *nb = realloc(s->in, cap);
  if (!nb) return -1;
  s->in = nb;
  s->incap = cap;
  return 0;
}

/* Consume what s->in holds; keep the unconsumed tail at its front. */
static int consume_in(pk_session *s, uint64_t now_ms) {
  long used = consume(s, s->in, s->inlen, now_ms);
  if (used < 0) return -1;
  /* A full buffer with no whole frame: grow it if the session became
   * authenticated since it was taken, else the frame is too big. */
  if (used == 0 && !s->blocked && s->inlen == s->incap &&
      (ensure_in(s) != 0 || s->inlen == s->incap)) {
    pk_session_close(s, "chunk larger than buffer");
    return -1;
  }
  if (used) memmove(s->in, s->in + used, s->inlen - (size_t)used);
  s->inlen -= (size_t)used;
  return 0;
}

static void received(pk_session *s, uint64_t now_ms) {
  s->last_rx = now_ms;
  s->ping_outstanding = 0;
}

/* Connector: the relay's head first; what follows it is frames. */
static int recv_head(pk_session *s, char **data, size_t *n, uint64_t now_ms) {
  long took = pk_session_hs_head(s, *data, *n);
  if (took < 0) return -1;
  *data += took;
  *n -= (size_t)took;
  if (s->state == PK_SESSION_OPEN && s->inlen) return consume_in(s, now_ms);
  return 0;
}

int pk_session_recv(pk_session *s, char *data, size_t n, uint64_t now_ms) {
  if (!alive(s)) return -1;
  received(s, now_ms);
  if (s->state == PK_SESSION_HANDSHAKE && s->role == PK_SESSION_CONNECTOR &&
      recv_head(s, &data, &n, now_ms) != 0)
    return -1;
  while (n > 0 && alive(s)) {
    if (s->inlen == 0 && !s->blocked) {
      /* Fast path: whole frames straight from the caller's buffer. */
      long used = consume(s, data, n, now_ms);
      if (used < 0) return -1;
      data += used;
      n -= (size_t)used;
      if (n == 0) break;
    }
    if (ensure_in(s) != 0) {
      pk_session_close(s, "out of memory");
      return -1;
    }
    if (s->blocked) {
      /* Paused: keep the rest of this read (the owner reads no more until
       * resumed; a TLS record split over reads can add a little). */
      if (s->incap - s->inlen < n) {
        size_t cap = s->inlen + n;
        char *nb = cap <= PK_TUNNEL_INBUF + 2 * PK_BLOCK_SIZE ? realloc(s->in, cap) : NULL;
        if (!nb) {
          pk_session_close(s, "peer data while paused overflows the buffer");
          return -1;
        }
        s->in = nb;
        s->incap = cap;
      }
      memcpy(s->in + s->inlen, data, n);
      s->inlen += n;
      break;
    }
    size_t room = s->incap - s->inlen;
    size_t take = n < room ? n : room;
    memcpy(s->in + s->inlen, data, take);
    s->inlen += take;
    data += take;
    n -= take;
    if (consume_in(s, now_ms) != 0) return -1;
  }
  return alive(s) ? 0 : -1;
}

size_t pk_session_recv_room(pk_session *s, char **base) {
  if (s->state != PK_SESSION_OPEN || s->blocked || !s->in || s->inlen == 0 || ensure_in(s) != 0)
    return 0;
  *base = s->in + s->inlen;
  return s->incap - s->inlen;
}

int pk_session_recv_inplace(pk_session *s, size_t n, uint64_t now_ms) {
  if (!alive(s)) return -1;
  received(s, now_ms);
  s->inlen += n;
  return consume_in(s, now_ms);
}

int pk_session_resume(pk_session *s, uint64_t now_ms) {
  if (!alive(s)) return -1;
  if (!s->blocked) return 0;
  s->blocked = 0;
  if (s->zpend) {
    size_t n = s->zpend;
    s->zpend = 0;
    int rv = process_chunk(s, s->zbuf, n, now_ms);
    if (rv < 0) return -1;
    if (rv == PK_SESSION_BLOCKED) {
      s->zpend = n;
      return 0;
    }
  }
  if (s->inlen && consume_in(s, now_ms) != 0) return -1;
  return alive(s) ? 0 : -1;
}

/* ---- upkeep ---- */
static void release_idle_buffers(pk_session *s, uint64_t now_ms) {
  if (now_ms - s->last_rx < PK_BUFFER_IDLE_MS || now_ms - s->last_tx < PK_BUFFER_IDLE_MS) return;
  if (s->inlen == 0 && s->in) {
    free(s->in);
    s->in = NULL;
    s->incap = 0;
  }
  if (!s->zpend) { /* a paused chunk waits there */
    free(s->zbuf);
    s->zbuf = NULL;
  }
  free(s->zobuf);
  s->zobuf = NULL;
}

int pk_session_tick(pk_session *s, uint64_t now_ms) {
  if (s->sent_since_tick) s->last_tx = now_ms;
  s->sent_since_tick = 0;
  if (s->state != PK_SESSION_OPEN) return alive(s) ? 0 : -1;
  if (s->ping_outstanding && now_ms - s->last_ping_sent > PK_PING_DEAD_MS) {
    pk_session_close(s, "ping timeout");
    return -1;
  }
  if (!s->ping_outstanding && now_ms - s->last_rx > PK_PING_IDLE_MS) pk_session_ping(s, now_ms);
  release_idle_buffers(s, now_ms);
  return alive(s) ? 0 : -1;
}

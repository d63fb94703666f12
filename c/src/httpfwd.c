/* httpfwd.c - forwarding headers on every request of an HTTP/1.x connection
 * (see httpfwd.h for the policy).
 *
 * Layout: a head scanner and head collector shared by both directions, a
 * byte-wise chunked-body machine shared by both directions, then the request
 * side (rewrites) and the response side (reads only, to match answers to the
 * queue of forwarded requests).  Every byte is examined before it is
 * emitted; emission is a clean prefix of the input at any error.
 */
#include "httpfwd.h"

#include <string.h>
#include <strings.h>

#include "wire.h"

/* Request side states. */
enum { RQ_HEAD, RQ_BODY, RQ_CHUNK, RQ_HOLD, RQ_PASS };
/* Response side states. */
enum { RS_HEAD, RS_BODY, RS_CHUNK, RS_CLOSE, RS_PASS };
/* Outcome of the Upgrade / CONNECT request in flight (at most one). */
enum { UPG_NONE, UPG_PENDING, UPG_SWITCHED, UPG_DECLINED };
/* Flags of a queued request. */
#define QF_HEAD 1
#define QF_CONNECT 2
#define QF_UPGRADE 4

/* Largest Content-Length / chunk size we follow: fits any int64 origin. */
#define PK_FWD_LEN_MAX ((uint64_t)INT64_MAX)

/* ---- small helpers ---- */

static int lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* RFC 9110 tchar. */
static int is_tchar(int c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-content: visible chars, obs-text, SP and HTAB; no CR/LF/NUL/CTL. */
static int is_field_char(int c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static pk_slice trim(const char *p, size_t n) {
  pk_slice s;
  while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
    p++;
    n--;
  }
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  s.p = p;
  s.n = n;
  return s;
}

/* Header name equality, case-insensitive, with '_' taken as '-': CGI/WSGI
 * turn both into the same variable, so "X_Forwarded_For" must go too.
 * want is lower case. */
static int name_is(const char *p, size_t n, const char *want) {
  size_t i;
  if (n != strlen(want)) return 0;
  for (i = 0; i < n; i++) {
    int c = lower((unsigned char)p[i]);
    if (c == '_') c = '-';
    if (c != want[i]) return 0;
  }
  return 1;
}

static int is_fwd_name(const char *p, size_t n) {
  return name_is(p, n, "x-forwarded-for") || name_is(p, n, "x-forwarded-proto");
}

static int slice_eq(pk_slice s, const char *str) {
  return s.n == strlen(str) && memcmp(s.p, str, s.n) == 0;
}

/* ---- output staging: many small pieces become one out() call ---- */
typedef struct {
  pk_fwd_out_fn out;
  void *ctx;
  int err;
  size_t len;
  char buf[1024];
} pk_fwd_w;

static void w_flush(pk_fwd_w *w) {
  if (w->len && !w->err && w->out(w->ctx, w->buf, w->len) != 0) w->err = 1;
  w->len = 0;
}

static void w_put(pk_fwd_w *w, const char *p, size_t n) {
  if (w->err || n == 0) return;
  if (n > sizeof(w->buf) - w->len) {
    w_flush(w);
    /* Bodies go out as they are, without a copy. */
    if (n >= sizeof(w->buf)) {
      if (!w->err && w->out(w->ctx, p, n) != 0) w->err = 1;
      return;
    }
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

static void w_str(pk_fwd_w *w, const char *s) {
  w_put(w, s, strlen(s));
}

static void w_slice(pk_fwd_w *w, pk_slice s) {
  w_put(w, s.p, s.n);
}

/* ---- head scanner ---- */
/* Finds the empty line ending a head incrementally, so a head fed a byte at
 * a time is not re-parsed for every byte.  Its notion of "empty line" is the
 * one of pk_wire_parse_http_head (LF, optionally preceded by one CR). */
enum { HS_PRE, HS_PRE_CR, HS_LINE, HS_LF, HS_LF_CR };

/* Returns the bytes of p[0..n) up to and including the head's final LF, or 0
 * when it is not there yet (*hs keeps the position).  Empty lines before the
 * start line (RFC 9112 2.2) count as head bytes; head_skip() drops them. */
static size_t hs_scan(int *hs, const char *p, size_t n) {
  size_t i;
  int s = *hs;
  for (i = 0; i < n; i++) {
    int c = (unsigned char)p[i];
    if (s == HS_LINE) {
      const char *lf = memchr(p + i, '\n', n - i);
      if (lf == NULL) break;
      i = (size_t)(lf - p);
      s = HS_LF;
    } else if (s == HS_PRE) {
      s = c == '\n' ? HS_PRE : c == '\r' ? HS_PRE_CR : HS_LINE;
    } else if (s == HS_PRE_CR) {
      s = c == '\n' ? HS_PRE : HS_LINE;
    } else if (c == '\n') { /* HS_LF or HS_LF_CR: an empty line */
      *hs = HS_PRE;
      return i + 1;
    } else {
      s = (s == HS_LF && c == '\r') ? HS_LF_CR : HS_LINE;
    }
  }
  *hs = s;
  return 0;
}

/* Bytes of leading empty lines (CRLF or LF) that hs_scan let through. */
static size_t head_skip(const char *p, size_t n) {
  size_t i = 0;
  for (;;) {
    if (i < n && p[i] == '\n') {
      i++;
    } else if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n') {
      i += 2;
    } else {
      return i;
    }
  }
}

/* Parse the head p[0..n) that hs_scan delimited.  Returns 0, or the wire
 * error (PK_WIRE_EBAD also when the parser disagrees on the head's end). */
static int parse_head(const char *p, size_t n, pk_http_head *h) {
  size_t s = head_skip(p, n);
  int r = pk_wire_parse_http_head(p + s, n - s, n - s, h);
  if (r == PK_WIRE_ETOOBIG) return PK_WIRE_ETOOBIG;
  if (r != 1 || h->head_len != n - s) return PK_WIRE_EBAD;
  return 0;
}

/* ---- head collector (one per direction) ---- */

static void hb_reset(pk_fwd_hbuf *hb) {
  hb->off = hb->len = hb->scanned = 0;
  hb->hs = HS_PRE;
}

/* Drop k bytes from the front (they were handled). */
static void hb_drop(pk_fwd_hbuf *hb, size_t k) {
  hb->off += k;
  hb->scanned = 0;
  if (hb->off >= hb->len) hb->off = hb->len = 0;
}

/* Append p[0..n) after the live bytes; -1 when they do not fit. */
static int hb_append(pk_fwd_hbuf *hb, const char *p, size_t n) {
  if (hb->off > 0) {
    memmove(hb->buf, hb->buf + hb->off, hb->len - hb->off);
    hb->len -= hb->off;
    hb->off = 0;
  }
  if (n > hb->cap - hb->len) return -1;
  memcpy(hb->buf + hb->len, p, n);
  hb->len += n;
  return 0;
}

/* Collect a head from data[0..n).  Precondition: every live byte is a
 * scanned part of this head.  Sets *used.  Returns 0 (need more), 1 (head
 * complete in data[0..*hlen), nothing buffered: no copy), 2 (head complete at
 * hb->buf + hb->off, *hlen bytes), or PK_FWD_ETOOBIG (cap bytes, no end). */
static int hb_feed(pk_fwd_hbuf *hb, const char *data, size_t n, size_t *hlen, size_t *used) {
  size_t have = hb->len - hb->off, room = hb->cap - have;
  size_t lim = n < room ? n : room;
  size_t t = hs_scan(&hb->hs, data, lim);
  if (t == 0) {
    if (lim == room) return PK_FWD_ETOOBIG;
    (void)hb_append(hb, data, lim); /* fits: lim < room */
    hb->scanned += lim;
    *used = lim;
    return 0;
  }
  *used = t;
  if (have == 0) {
    *hlen = t;
    return 1;
  }
  (void)hb_append(hb, data, t);
  *hlen = hb->len - hb->off;
  return 2;
}

/* ---- chunked bodies (both directions, bytes are never changed) ---- */
enum {
  CK_SIZE0, CK_SIZE, CK_SIZE_WS, CK_EXT, CK_SIZE_LF, /* chunk-size line */
  CK_DATA, CK_DATA_CR, CK_DATA_LF,                   /* chunk-data CRLF */
  CK_TR_START, CK_TR_NAME, CK_TR_VALUE, CK_TR_LF,    /* trailer lines */
  CK_END_LF, CK_DONE
};
#define CK_EBAD (-1)
#define CK_ETOOBIG (-2)

static void ck_init(pk_fwd_chunk *c) {
  memset(c, 0, sizeof(*c));
  c->st = CK_SIZE0;
}

/* chunk-size [ BWS ";" chunk-ext ] CRLF, strict hex, CRLF only. */
static int ck_size_byte(pk_fwd_chunk *c, int ch) {
  int v = hexval(ch);
  switch (c->st) {
    case CK_SIZE0:
    case CK_SIZE:
      if (v >= 0) {
        if (c->left > (PK_FWD_LEN_MAX >> 4)) return CK_ETOOBIG;
        c->left = c->left * 16 + (uint64_t)v;
        c->st = CK_SIZE;
        return 0;
      }
      if (c->st == CK_SIZE0) return CK_EBAD;
      if (ch == '\r') c->st = CK_SIZE_LF;
      else if (ch == ';') c->st = CK_EXT;
      else if (ch == ' ' || ch == '\t') c->st = CK_SIZE_WS;
      else return CK_EBAD;
      return 0;
    case CK_SIZE_WS: /* BWS is only allowed before an extension */
      if (ch == ';') c->st = CK_EXT;
      else if (ch != ' ' && ch != '\t') return CK_EBAD;
      return 0;
    case CK_EXT: /* extensions are not interpreted, only kept on one line */
      if (ch == '\r') c->st = CK_SIZE_LF;
      else if (!is_field_char(ch)) return CK_EBAD;
      return 0;
    default: /* CK_SIZE_LF */
      if (ch != '\n') return CK_EBAD;
      c->line = 0;
      c->st = c->left == 0 ? CK_TR_START : CK_DATA;
      return 0;
  }
}

static int ck_data_byte(pk_fwd_chunk *c, int ch) {
  if (c->st == CK_DATA_CR) {
    if (ch != '\r') return CK_EBAD;
    c->st = CK_DATA_LF;
    return 0;
  }
  if (ch != '\n') return CK_EBAD;
  c->st = CK_SIZE0;
  c->left = 0;
  c->line = 0;
  return 0;
}

/* Trailer field lines until the empty line.  A request trailer must not
 * smuggle a forwarding header past us (frameworks that merge trailers). */
static int ck_trailer_byte(pk_fwd_chunk *c, int ch, int is_req) {
  switch (c->st) {
    case CK_TR_START:
      if (ch == '\r') {
        c->st = CK_END_LF;
        return 0;
      }
      if (!is_tchar(ch)) return CK_EBAD; /* also refuses obs-fold */
      c->name_len = 0;
      c->st = CK_TR_NAME;
      /* fall through */
    case CK_TR_NAME:
      if (ch == ':') {
        if (is_req && c->name_len <= sizeof(c->name) && is_fwd_name(c->name, c->name_len))
          return CK_EBAD;
        c->st = CK_TR_VALUE;
        return 0;
      }
      if (!is_tchar(ch)) return CK_EBAD;
      if (c->name_len < sizeof(c->name)) c->name[c->name_len] = (char)ch;
      c->name_len++;
      return 0;
    case CK_TR_VALUE:
      if (ch == '\r') c->st = CK_TR_LF;
      else if (!is_field_char(ch)) return CK_EBAD;
      return 0;
    case CK_TR_LF:
      if (ch != '\n') return CK_EBAD;
      c->line = 0;
      c->st = CK_TR_START;
      return 0;
    default: /* CK_END_LF */
      if (ch != '\n') return CK_EBAD;
      c->st = CK_DONE;
      return 0;
  }
}

static int ck_byte(pk_fwd_chunk *c, int ch, size_t limit, int is_req) {
  if (c->st >= CK_TR_START && ++c->trailers > limit) return CK_ETOOBIG;
  if (c->st != CK_DATA_CR && c->st != CK_DATA_LF && ++c->line > PK_FWD_LINE_MAX)
    return CK_ETOOBIG;
  if (c->st <= CK_SIZE_LF) return ck_size_byte(c, ch);
  if (c->st <= CK_DATA_LF) return ck_data_byte(c, ch);
  return ck_trailer_byte(c, ch, is_req);
}

/* Run p[0..n) through the chunked machine.  *used is the bytes accepted
 * (all valid: the caller may emit them even on error).  Returns 0 (body goes
 * on), 1 (body ended after *used bytes), CK_EBAD or CK_ETOOBIG. */
static int ck_run(pk_fwd_chunk *c, const char *p, size_t n, size_t limit, int is_req,
                  size_t *used) {
  size_t i = 0;
  while (i < n) {
    int rc;
    if (c->st == CK_DATA) {
      size_t k = (uint64_t)(n - i) < c->left ? n - i : (size_t)c->left;
      i += k;
      c->left -= k;
      if (c->left == 0) c->st = CK_DATA_CR;
      continue;
    }
    rc = ck_byte(c, (unsigned char)p[i], limit, is_req);
    if (rc < 0) {
      *used = i;
      return rc;
    }
    i++;
    if (c->st == CK_DONE) {
      *used = i;
      return 1;
    }
  }
  *used = n;
  return 0;
}

/* ---- framing fields (RFC 9112 6.3) ---- */

/* Next element of a comma-separated list (trimmed; may be empty). */
static int list_next(pk_slice v, size_t *pos, pk_slice *e) {
  size_t i = *pos, start = *pos;
  if (i > v.n) return 0;
  while (i < v.n && v.p[i] != ',') i++;
  *e = trim(v.p + start, i - start);
  *pos = i + 1;
  return 1;
}

/* Content-Length: 1*DIGIT, or a list of the same value (folded).  *have
 * says whether an earlier field set *len.  Returns 0 or -1. */
static int cl_merge(pk_slice v, uint64_t *len, int *have) {
  size_t pos = 0, i;
  pk_slice e;
  while (list_next(v, &pos, &e)) {
    uint64_t x = 0;
    if (e.n == 0) return -1;
    for (i = 0; i < e.n; i++) {
      unsigned d = (unsigned)(unsigned char)e.p[i] - '0';
      if (d > 9 || x > (PK_FWD_LEN_MAX - d) / 10) return -1;
      x = x * 10 + d;
    }
    if (*have && x != *len) return -1;
    *len = x;
    *have = 1;
  }
  return 0;
}

typedef struct {
  int seen;         /* a Transfer-Encoding field was present */
  int bad;          /* a coding that is not a token, or chunked with parameters */
  int nchunked;     /* how many times chunked was named */
  int last_chunked; /* the last coding named so far is chunked */
} te_info;

/* Transfer-Encoding, merged over every field in order. */
static void te_merge(pk_slice v, te_info *te) {
  size_t pos = 0, i;
  pk_slice e;
  te->seen = 1;
  while (list_next(v, &pos, &e)) {
    const char *semi;
    pk_slice name;
    int chunked;
    if (e.n == 0) continue; /* empty list elements are ignored (RFC 9110 5.6.1) */
    semi = memchr(e.p, ';', e.n);
    name = trim(e.p, semi ? (size_t)(semi - e.p) : e.n);
    if (name.n == 0) te->bad = 1;
    for (i = 0; i < name.n; i++) {
      if (!is_tchar((unsigned char)name.p[i])) te->bad = 1;
    }
    chunked = pk_slice_ieq(name, "chunked");
    if (chunked && semi) te->bad = 1;
    te->nchunked += chunked;
    te->last_chunked = chunked;
  }
}

/* ---- request queue ---- */

/* Runs of requests of the same kind: a long pipeline costs one slot. */
static int q_full(const pk_fwd *f) { return f->qruns >= PK_FWD_QUEUE_MAX; }

static void q_push(pk_fwd *f, int flags) {
  unsigned last = (f->qhead + f->qruns - 1) % PK_FWD_QUEUE_MAX;
  if (f->qruns && f->q[last].flags == (unsigned char)flags && f->q[last].n < UINT32_MAX) {
    f->q[last].n++;
  } else {
    unsigned at = (f->qhead + f->qruns) % PK_FWD_QUEUE_MAX;
    f->q[at].flags = (unsigned char)flags;
    f->q[at].n = 1;
    f->qruns++;
  }
  f->qlen++;
}

static int q_pop(pk_fwd *f) {
  int flags = f->q[f->qhead].flags;
  if (--f->q[f->qhead].n == 0) {
    f->qhead = (f->qhead + 1) % PK_FWD_QUEUE_MAX;
    f->qruns--;
  }
  f->qlen--;
  return flags;
}

/* ---- request side ---- */

typedef struct {
  int flags;    /* QF_* */
  int chunked;  /* Transfer-Encoding: ..., chunked */
  int have_cl;  /* Content-Length present */
  uint64_t cl;  /* its (folded) value */
  int no_h2c;   /* drop Upgrade / HTTP2-Settings: an h2c offer */
} rq_info;

/* Does an Upgrade value offer h2c?  After a 101 to h2c the client would
 * speak HTTP/2 with headers of its own choosing, past us ("h2c
 * smuggling"); without the offer the origin simply answers in HTTP/1.1. */
static int offers_h2c(pk_slice v) {
  size_t pos = 0;
  pk_slice e;
  while (list_next(v, &pos, &e)) {
    const char *slash = memchr(e.p, '/', e.n);
    if (pk_slice_ieq(trim(e.p, slash ? (size_t)(slash - e.p) : e.n), "h2c")) return 1;
  }
  return 0;
}

/* Fields the rewritten head leaves out. */
static int rq_dropped(const rq_info *ri, pk_slice name) {
  if (is_fwd_name(name.p, name.n)) return 1;
  return ri->no_h2c && (pk_slice_ieq(name, "Upgrade") || pk_slice_ieq(name, "HTTP2-Settings"));
}

/* A field line we are willing to pass on: a token name right before ':'
 * (no blank before the colon, RFC 9112 5.1) and a value without CTLs. */
static int rq_field_ok(pk_slice name, pk_slice value) {
  size_t i;
  if (name.p[name.n] != ':') return 0;
  for (i = 0; i < name.n; i++) {
    if (!is_tchar((unsigned char)name.p[i])) return 0;
  }
  for (i = 0; i < value.n; i++) {
    if (!is_field_char((unsigned char)value.p[i])) return 0;
  }
  return 1;
}

/* Validate a parsed request head and work out its framing. */
static int rq_check(const pk_http_head *h, rq_info *ri) {
  te_info te;
  int i, hosts = 0, http10 = slice_eq(h->version, "HTTP/1.0");
  memset(ri, 0, sizeof(*ri));
  memset(&te, 0, sizeof(te));
  if (h->is_response || (!http10 && !slice_eq(h->version, "HTTP/1.1"))) return PK_FWD_EBADREQ;
  /* Methods are case-sensitive; a lenient origin reading "head" as HEAD
   * would frame its answer differently from us: refuse such spellings. */
  if (pk_slice_ieq(h->method, "CONNECT") && !slice_eq(h->method, "CONNECT")) return PK_FWD_EBADREQ;
  if (pk_slice_ieq(h->method, "HEAD") && !slice_eq(h->method, "HEAD")) return PK_FWD_EBADREQ;
  if (slice_eq(h->method, "CONNECT")) ri->flags |= QF_CONNECT;
  if (slice_eq(h->method, "HEAD")) ri->flags |= QF_HEAD;
  for (i = 0; i < h->nheaders; i++) {
    pk_slice name = h->names[i], value = h->values[i];
    if (!rq_field_ok(name, value)) return PK_FWD_EBADREQ;
    if (pk_slice_ieq(name, "Content-Length")) {
      if (cl_merge(value, &ri->cl, &ri->have_cl) != 0) return PK_FWD_ELENGTH;
    } else if (pk_slice_ieq(name, "Transfer-Encoding")) {
      te_merge(value, &te);
    } else if (pk_slice_ieq(name, "Host")) {
      if (++hosts > 1) return PK_FWD_EBADREQ; /* which one did the relay route on? */
    } else if (pk_slice_ieq(name, "Upgrade")) {
      ri->flags |= QF_UPGRADE;
      if (offers_h2c(value)) ri->no_h2c = 1;
    }
  }
  if (ri->no_h2c) ri->flags &= ~QF_UPGRADE; /* every Upgrade field is dropped */
  if (te.seen) {
    /* RFC 9112 6.1/6.3: TE with CL, TE in HTTP/1.0, or a final coding other
     * than chunked cannot be framed reliably: refuse. */
    if (ri->have_cl || http10 || te.bad || te.nchunked != 1 || !te.last_chunked)
      return PK_FWD_ELENGTH;
    ri->chunked = 1;
  }
  /* A CONNECT has no content: bytes after its head are the tunnel's. */
  if ((ri->flags & QF_CONNECT) && (ri->chunked || ri->cl > 0)) return PK_FWD_EBADREQ;
  return 0;
}

static void rq_write_xff(pk_fwd *f, const pk_http_head *h, pk_fwd_w *w) {
  int i;
  w_str(w, "X-Forwarded-For: ");
  for (i = 0; f->xff_mode == PK_FWD_XFF_APPEND && i < h->nheaders; i++) {
    if (name_is(h->names[i].p, h->names[i].n, "x-forwarded-for") && h->values[i].n > 0) {
      w_slice(w, h->values[i]);
      w_str(w, ", ");
    }
  }
  w_str(w, f->ip);
  w_str(w, "\r\nX-Forwarded-Proto: ");
  w_str(w, f->proto);
  w_str(w, "\r\n");
}

/* Re-emit the head: our fields right after the request line, the client's
 * forwarding fields dropped, Content-Length folded to one canonical line,
 * everything with CRLF line ends. */
static void rq_write_head(pk_fwd *f, const pk_http_head *h, const rq_info *ri, pk_fwd_w *w) {
  char num[24];
  int i, cl_done = 0;
  w_slice(w, h->method);
  w_str(w, " ");
  w_slice(w, h->path);
  w_str(w, " ");
  w_slice(w, h->version);
  w_str(w, "\r\n");
  rq_write_xff(f, h, w);
  for (i = 0; i < h->nheaders; i++) {
    pk_slice name = h->names[i];
    if (rq_dropped(ri, name)) continue;
    if (pk_slice_ieq(name, "Content-Length")) {
      size_t k = sizeof(num);
      uint64_t v = ri->cl;
      if (cl_done++) continue;
      do {
        num[--k] = (char)('0' + v % 10);
        v /= 10;
      } while (v > 0);
      w_str(w, "Content-Length: ");
      w_put(w, num + k, sizeof(num) - k);
      w_str(w, "\r\n");
      continue;
    }
    w_slice(w, name);
    w_str(w, ": ");
    w_slice(w, h->values[i]);
    w_str(w, "\r\n");
  }
  w_str(w, "\r\n");
}

/* The request message ended: what may the next client byte be? */
static void rq_msg_end(pk_fwd *f) {
  if (f->rq_upgrade) {
    f->rq_upgrade = 0;
    if (f->upg == UPG_SWITCHED) {
      f->rq_st = RQ_PASS;
      return;
    }
    if (f->upg == UPG_PENDING) { /* 101 or not? hold until the origin says */
      f->rq_st = RQ_HOLD;
      return;
    }
    f->upg = UPG_NONE; /* already declined */
  }
  f->rq_st = q_full(f) ? RQ_HOLD : RQ_HEAD;
}

/* A response arrived: end a hold if its reason is gone.  Returns
 * PK_FWD_RELEASED when the request side can go on. */
static int rq_recheck(pk_fwd *f) {
  if (f->rq_st != RQ_HOLD || f->upg == UPG_PENDING) return 0;
  if (f->upg == UPG_SWITCHED) {
    f->rq_st = RQ_PASS;
    return PK_FWD_RELEASED;
  }
  f->upg = UPG_NONE;
  if (q_full(f)) return 0;
  f->rq_st = RQ_HEAD;
  return PK_FWD_RELEASED;
}

/* Does host[0..n) ("name", "name:port", "[v6]:port"; any case) name the
 * stream's host (lower case, no port)? */
static int same_host(const pk_fwd *f, const char *host, size_t n) {
  size_t k = n;
  const char *colon = NULL;
  for (size_t i = 0; i < n; i++)
    if (host[i] == ':') colon = host + i;
  int v6 = n && host[0] == '[';
  if (colon && (!v6 || colon[-1] == ']')) k = (size_t)(colon - host);
  if (k != strlen(f->host) || k == 0) return 0;
  for (size_t i = 0; i < k; i++)
    if (lower((unsigned char)host[i]) != (unsigned char)f->host[i]) return 0;
  return 1;
}

/* With a pinned host: the Host field, and the host of an absolute-form
 * target (which an origin must prefer to Host, RFC 9112 3.2.2), name it. */
static int rq_host_ok(const pk_fwd *f, const pk_http_head *h) {
  if (!f->host[0]) return 1;
  const pk_slice t = h->path;
  size_t skip = t.n >= 7 && strncasecmp(t.p, "http://", 7) == 0    ? 7
                : t.n >= 8 && strncasecmp(t.p, "https://", 8) == 0 ? 8
                                                                     : 0;
  if (skip) {
    size_t e = skip, at = skip;
    while (e < t.n && t.p[e] != '/' && t.p[e] != '?' && t.p[e] != '#') e++;
    for (size_t i = skip; i < e; i++)
      if (t.p[i] == '@') at = i + 1; /* userinfo@ aside */
    if (!same_host(f, t.p + at, e - at)) return 0;
  }
  for (int i = 0; i < h->nheaders; i++)
    if (pk_slice_ieq(h->names[i], "Host")) return same_host(f, h->values[i].p, h->values[i].n);
  return 0; /* no Host: which virtual host would the origin pick? */
}

/* A complete request head p[0..n): check, re-emit, queue, set framing. */
static int rq_head(pk_fwd *f, const char *p, size_t n, pk_fwd_w *w) {
  pk_http_head h;
  rq_info ri;
  int rc = parse_head(p, n, &h);
  if (rc == PK_WIRE_ETOOBIG) return PK_FWD_ETOOBIG;
  if (rc != 0) return PK_FWD_EBADREQ;
  rc = rq_check(&h, &ri);
  if (rc != 0) return rc;
  if (!rq_host_ok(f, &h)) return PK_FWD_EMISDIRECTED;
  if (q_full(f)) return PK_FWD_EFULL; /* rq_msg_end holds before this */
  rq_write_head(f, &h, &ri, w);
  q_push(f, ri.flags);
  f->rq_upgrade = (ri.flags & (QF_UPGRADE | QF_CONNECT)) != 0;
  if (f->rq_upgrade) f->upg = UPG_PENDING;
  if (ri.chunked) {
    ck_init(&f->rq_ck);
    f->rq_st = RQ_CHUNK;
  } else if (ri.cl > 0) {
    f->rq_left = ri.cl;
    f->rq_st = RQ_BODY;
  } else {
    rq_msg_end(f);
  }
  return 0;
}

/* Body and passthrough bytes p[0..n): emitted unchanged. */
static int rq_stream(pk_fwd *f, const char *p, size_t n, pk_fwd_w *w, size_t *used) {
  int rc;
  if (f->rq_st == RQ_PASS) {
    w_put(w, p, n);
    *used = n;
    return 0;
  }
  if (f->rq_st == RQ_BODY) {
    size_t k = (uint64_t)n < f->rq_left ? n : (size_t)f->rq_left;
    w_put(w, p, k);
    f->rq_left -= k;
    *used = k;
    if (f->rq_left == 0) rq_msg_end(f);
    return 0;
  }
  rc = ck_run(&f->rq_ck, p, n, f->rq.cap, 1, used);
  w_put(w, p, *used);
  if (rc == 1) rq_msg_end(f);
  if (rc == CK_ETOOBIG) return PK_FWD_ETOOBIG;
  return rc < 0 ? PK_FWD_EBADREQ : 0;
}

/* Bytes parked in the request buffer (after a hold ended) go first. */
static int rq_drain(pk_fwd *f, pk_fwd_w *w) {
  pk_fwd_hbuf *hb = &f->rq;
  while (hb->len > hb->off && f->rq_st != RQ_HOLD && !w->err) {
    size_t have = hb->len - hb->off, used = 0, t;
    int rc;
    if (f->rq_st != RQ_HEAD) {
      rc = rq_stream(f, hb->buf + hb->off, have, w, &used);
      if (rc < 0) return rc;
      if (used == 0) return PK_FWD_EBADREQ; /* cannot happen: no progress */
      hb_drop(hb, used);
      continue;
    }
    t = hs_scan(&hb->hs, hb->buf + hb->off + hb->scanned, have - hb->scanned);
    if (t == 0) { /* the live bytes are all head-so-far now */
      hb->scanned = have;
      return have >= hb->cap ? PK_FWD_ETOOBIG : 0;
    }
    t += hb->scanned;
    rc = rq_head(f, hb->buf + hb->off, t, w);
    if (rc < 0) return rc;
    hb_drop(hb, t);
  }
  return 0;
}

/* New client bytes p[0..n) in the current state; sets *used. */
static int rq_step(pk_fwd *f, const char *p, size_t n, pk_fwd_w *w, size_t *used) {
  size_t hlen = 0;
  int rc;
  if (f->rq_st == RQ_HOLD) {
    if (hb_append(&f->rq, p, n) != 0) return PK_FWD_EFULL;
    *used = n;
    return 0;
  }
  if (f->rq_st != RQ_HEAD) return rq_stream(f, p, n, w, used);
  rc = hb_feed(&f->rq, p, n, &hlen, used);
  if (rc <= 0) return rc;
  if (rc == 1) return rq_head(f, p, hlen, w);
  rc = rq_head(f, f->rq.buf + f->rq.off, hlen, w);
  hb_drop(&f->rq, hlen);
  return rc;
}

int pk_fwd_request_data(pk_fwd *f, const char *data, size_t n, pk_fwd_out_fn out, void *ctx) {
  pk_fwd_w w;
  int rc;
  if (f == NULL || out == NULL || (data == NULL && n > 0) || f->rq.buf == NULL) {
    return PK_FWD_EINVAL;
  }
  if (f->err) return f->err;
  w.out = out;
  w.ctx = ctx;
  w.err = 0;
  w.len = 0;
  rc = rq_drain(f, &w);
  while (rc >= 0 && n > 0 && !w.err) {
    size_t used = 0;
    rc = rq_step(f, data, n, &w, &used);
    if (rc >= 0 && used == 0) rc = PK_FWD_EBADREQ; /* cannot happen: no progress */
    data += used;
    n -= used;
  }
  w_flush(&w); /* also on error: what was checked goes out, as byte-wise */
  if (rc >= 0 && w.err) rc = PK_FWD_EOUT;
  if (rc < 0) {
    f->err = rc;
    return rc;
  }
  return f->rq_st == RQ_HOLD ? PK_FWD_HOLD : PK_FWD_OK;
}

/* ---- response side (read only) ---- */

static int rs_switch(pk_fwd *f) {
  (void)q_pop(f);
  f->upg = UPG_SWITCHED;
  f->rs_st = RS_PASS; /* the rest is the new protocol: not ours to read */
  return rq_recheck(f);
}

/* Body framing of a final response (RFC 9112 6.3). */
static int rs_framing(pk_fwd *f, const pk_http_head *h, int flags) {
  te_info te;
  uint64_t cl = 0;
  int i, have_cl = 0;
  f->rs_st = RS_HEAD;
  if ((flags & QF_HEAD) || h->status == 204 || h->status == 304) return 0;
  memset(&te, 0, sizeof(te));
  for (i = 0; i < h->nheaders; i++) {
    if (pk_slice_ieq(h->names[i], "Transfer-Encoding")) te_merge(h->values[i], &te);
    if (pk_slice_ieq(h->names[i], "Content-Length") &&
        cl_merge(h->values[i], &cl, &have_cl) != 0) {
      return PK_FWD_EBADRESP;
    }
  }
  if (te.seen) { /* overrides Content-Length */
    if (te.bad || te.nchunked > 1) return PK_FWD_EBADRESP;
    if (te.last_chunked) {
      ck_init(&f->rs_ck);
      f->rs_st = RS_CHUNK;
    } else {
      f->rs_st = RS_CLOSE;
    }
  } else if (!have_cl) {
    f->rs_st = RS_CLOSE; /* delimited by the close: no response follows */
  } else if (cl > 0) {
    f->rs_left = cl;
    f->rs_st = RS_BODY;
  }
  return 0;
}

/* A complete response head: match it to the oldest queued request. */
static int rs_head(pk_fwd *f, const char *p, size_t n) {
  pk_http_head h;
  int flags, rc;
  if (parse_head(p, n, &h) != 0 || !h.is_response || h.status < 100) return PK_FWD_EBADRESP;
  if (!slice_eq(h.method, "HTTP/1.1") && !slice_eq(h.method, "HTTP/1.0")) return PK_FWD_EBADRESP;
  if (f->qlen == 0) return PK_FWD_EBADRESP; /* nobody asked */
  flags = f->q[f->qhead].flags;
  if (h.status == 101) {
    if (!(flags & QF_UPGRADE)) return PK_FWD_EBADRESP;
    return rs_switch(f);
  }
  if (h.status < 200) return 0; /* interim (100, 102, 103): the final one follows */
  if ((flags & QF_CONNECT) && h.status < 300) return rs_switch(f);
  (void)q_pop(f);
  if (flags & (QF_UPGRADE | QF_CONNECT)) f->upg = UPG_DECLINED;
  rc = rs_framing(f, &h, flags);
  if (rc < 0) return rc;
  return rq_recheck(f);
}

/* Origin bytes p[0..n) in the current state; sets *used. */
static int rs_step(pk_fwd *f, const char *p, size_t n, size_t *used) {
  size_t hlen = 0;
  int rc;
  switch (f->rs_st) {
    case RS_BODY: {
      size_t k = (uint64_t)n < f->rs_left ? n : (size_t)f->rs_left;
      f->rs_left -= k;
      *used = k;
      if (f->rs_left == 0) f->rs_st = RS_HEAD;
      return 0;
    }
    case RS_CHUNK:
      rc = ck_run(&f->rs_ck, p, n, f->rs.cap, 0, used);
      if (rc < 0) return PK_FWD_EBADRESP;
      if (rc == 1) f->rs_st = RS_HEAD;
      return 0;
    case RS_HEAD:
      rc = hb_feed(&f->rs, p, n, &hlen, used);
      if (rc < 0) return PK_FWD_EBADRESP;
      if (rc == 0) return 0;
      if (rc == 1) return rs_head(f, p, hlen);
      rc = rs_head(f, f->rs.buf + f->rs.off, hlen);
      hb_drop(&f->rs, hlen);
      return rc;
    default: /* RS_CLOSE, RS_PASS: nothing more to learn */
      *used = n;
      return 0;
  }
}

int pk_fwd_response_data(pk_fwd *f, const char *data, size_t n) {
  int rc = 0, released = 0;
  if (f == NULL || (data == NULL && n > 0) || f->rs.buf == NULL) return PK_FWD_EINVAL;
  if (f->err) return f->err;
  while (n > 0) {
    size_t used = 0;
    rc = rs_step(f, data, n, &used);
    if (rc < 0) {
      f->err = rc;
      return rc;
    }
    if (rc == PK_FWD_RELEASED) released = 1;
    data += used;
    n -= used;
  }
  return released ? PK_FWD_RELEASED : PK_FWD_OK;
}

/* ---- setup and status ---- */

static int ip_ok(const char *s) {
  size_t i, n = strlen(s);
  if (n == 0 || n >= PK_FWD_IP_MAX) return 0;
  for (i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          strchr(".:%_[]-", c) != NULL)) {
      return 0; /* it goes into a header line: nothing else */
    }
  }
  return 1;
}

static int proto_ok(const char *s) {
  size_t i, n = strlen(s);
  if (n == 0 || n >= PK_FWD_PROTO_MAX) return 0;
  for (i = 0; i < n; i++) {
    if (!is_tchar((unsigned char)s[i])) return 0;
  }
  return 1;
}

int pk_fwd_init(pk_fwd *f, const pk_fwd_config *cfg) {
  const char *ip, *proto;
  if (f == NULL) return PK_FWD_EINVAL;
  memset(f, 0, sizeof(*f));
  if (cfg == NULL || cfg->req_buf == NULL || cfg->resp_buf == NULL) return PK_FWD_EINVAL;
  if (cfg->req_cap < PK_FWD_BUF_MIN || cfg->resp_cap < PK_FWD_BUF_MIN) return PK_FWD_EINVAL;
  if (cfg->xff_mode != PK_FWD_XFF_REPLACE && cfg->xff_mode != PK_FWD_XFF_APPEND) {
    return PK_FWD_EINVAL;
  }
  ip = (cfg->client_ip && cfg->client_ip[0]) ? cfg->client_ip : "unknown";
  proto = cfg->proto ? cfg->proto : "http";
  if (!ip_ok(ip) || !proto_ok(proto)) return PK_FWD_EINVAL;
  memcpy(f->ip, ip, strlen(ip) + 1);
  memcpy(f->proto, proto, strlen(proto) + 1);
  if (cfg->host && strlen(cfg->host) >= sizeof(f->host)) return PK_FWD_EINVAL;
  for (size_t i = 0; cfg->host && cfg->host[i]; i++)
    f->host[i] = (char)lower((unsigned char)cfg->host[i]);
  char *pc = strrchr(f->host, ':'); /* "name:port" or "[v6]:port": the name */
  if (pc && (f->host[0] != '[' || pc[-1] == ']')) *pc = '\0';
  f->xff_mode = cfg->xff_mode;
  f->rq.buf = cfg->req_buf;
  f->rq.cap = cfg->req_cap;
  f->rs.buf = cfg->resp_buf;
  f->rs.cap = cfg->resp_cap;
  pk_fwd_reset(f);
  return 0;
}

void pk_fwd_reset(pk_fwd *f) {
  if (f == NULL) return;
  f->err = 0;
  f->rq_st = RQ_HEAD;
  f->rq_left = 0;
  f->rq_upgrade = 0;
  f->upg = UPG_NONE;
  ck_init(&f->rq_ck);
  hb_reset(&f->rq);
  f->qhead = f->qruns = 0;
  f->qlen = 0;
  f->rs_st = RS_HEAD;
  f->rs_left = 0;
  ck_init(&f->rs_ck);
  hb_reset(&f->rs);
}

void pk_fwd_free(pk_fwd *f) {
  if (f != NULL) memset(f, 0, sizeof(*f));
}

size_t pk_fwd_parked(const pk_fwd *f) {
  return f ? f->rq.len - f->rq.off : 0;
}

int pk_fwd_waiting(const pk_fwd *f) {
  return f != NULL && f->rq_st == RQ_HOLD;
}

int pk_fwd_passthrough(const pk_fwd *f) {
  return f != NULL && f->rq_st == RQ_PASS;
}

int pk_fwd_can_reply(const pk_fwd *f) {
  return f != NULL && f->qlen == 0 && f->rs_st == RS_HEAD && f->rs.len == f->rs.off &&
         f->rq_st != RQ_PASS;
}

int pk_fwd_error(const pk_fwd *f) {
  return f ? f->err : PK_FWD_EINVAL;
}

int pk_fwd_http_status(int err) {
  if (err == PK_FWD_EBADREQ || err == PK_FWD_ELENGTH) return 400;
  if (err == PK_FWD_ETOOBIG) return 431;
  if (err == PK_FWD_EMISDIRECTED) return 421;
  return 0;
}

const char *pk_fwd_strerror(int rc) {
  switch (rc) {
    case PK_FWD_OK: return "ok";
    case PK_FWD_HOLD: return "holding client bytes until the origin answers";
    case PK_FWD_RELEASED: return "hold released";
    case PK_FWD_EBADREQ: return "malformed request";
    case PK_FWD_ELENGTH: return "invalid or conflicting message length";
    case PK_FWD_ETOOBIG: return "request head or chunk line too large";
    case PK_FWD_EOUT: return "output failed";
    case PK_FWD_EFULL: return "too many client bytes while waiting for the origin";
    case PK_FWD_EBADRESP: return "origin response not understood";
    case PK_FWD_EINVAL: return "invalid argument";
    case PK_FWD_EMISDIRECTED: return "a request for another host than the stream's";
    default: return "unknown error";
  }
}

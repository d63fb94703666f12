/* wire.c - the PageKite wire format as pure functions (see wire.h).
 *
 * Everything here must be safe on arbitrary bytes: every index is checked
 * against the caller's length before it is read.  No I/O, no allocation.
 */
#include "wire.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const pk_chunk_header_names[PK_CH__COUNT] = {
#define PK_CH_NAME(id, name) name,
    PK_CHUNK_HEADER_MAP(PK_CH_NAME)
#undef PK_CH_NAME
};

static int pk_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int pk_hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int pk_is_space(int c) {
  return c == ' ' || c == '\t';
}

static pk_slice pk_trim(const char *p, size_t n) {
  pk_slice s;
  while (n > 0 && pk_is_space((unsigned char)p[0])) {
    p++;
    n--;
  }
  while (n > 0 && pk_is_space((unsigned char)p[n - 1])) n--;
  s.p = p;
  s.n = n;
  return s;
}

int pk_slice_ieq(pk_slice s, const char *str) {
  size_t i;
  if (s.p == NULL || str == NULL) return 0;
  for (i = 0; i < s.n; i++) {
    if (str[i] == '\0') return 0;
    if (pk_lower((unsigned char)s.p[i]) != pk_lower((unsigned char)str[i])) return 0;
  }
  return str[s.n] == '\0';
}

int pk_slice_to_ll(pk_slice s, long long *out) {
  size_t i = 0;
  int neg = 0;
  unsigned long long v = 0;
  /* Magnitude limit: LLONG_MAX, or LLONG_MAX + 1 for negative numbers. */
  unsigned long long lim;
  if (s.p == NULL || s.n == 0 || out == NULL) return -1;
  if (s.p[0] == '-' || s.p[0] == '+') {
    neg = (s.p[0] == '-');
    i = 1;
  }
  if (i >= s.n) return -1;
  lim = neg ? (unsigned long long)LLONG_MAX + 1ULL : (unsigned long long)LLONG_MAX;
  for (; i < s.n; i++) {
    unsigned d;
    if (s.p[i] < '0' || s.p[i] > '9') return -1;
    d = (unsigned)(s.p[i] - '0');
    if (v > (lim - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (neg) {
    *out = (v == (unsigned long long)LLONG_MAX + 1ULL) ? LLONG_MIN : -(long long)v;
  } else {
    *out = (long long)v;
  }
  return 0;
}

/* ---- frames ---- */

int pk_wire_parse_frame(const char *buf, size_t n, size_t max_len, pk_frame *out) {
  /* Grammar: HEX+ ( 'Z' HEX+ )? 'R'? CR LF.  States: 0 = first number,
   * 1 = number after Z, 2 = after R (only CR allowed), 3 = after CR. */
  size_t i;
  size_t val[2] = {0, 0};
  size_t digits[2] = {0, 0};
  int state = 0, compressed = 0, reset = 0;
  if (buf == NULL || out == NULL) return PK_WIRE_EBAD;
  for (i = 0; i < n; i++) {
    int c = (unsigned char)buf[i];
    if (i >= PK_WIRE_FRAME_HDR_MAX) return PK_WIRE_EBAD;
    if (state == 3) {
      size_t len, wire_len;
      if (c != '\n') return PK_WIRE_EBAD;
      len = val[0];
      wire_len = compressed ? val[1] : val[0];
      if (len == 0 || wire_len == 0) return PK_WIRE_EBAD;
      out->len = len;
      out->wire_len = wire_len;
      out->compressed = compressed;
      out->reset = reset;
      out->hdr_len = i + 1;
      return 1;
    }
    if (state <= 1) {
      int h = pk_hexval(c);
      if (h >= 0) {
        size_t *v = &val[state];
        if (*v > (SIZE_MAX - (size_t)h) / 16) return PK_WIRE_ETOOBIG;
        *v = *v * 16 + (size_t)h;
        if (*v > max_len) return PK_WIRE_ETOOBIG;
        digits[state]++;
        continue;
      }
      if (digits[state] == 0) return PK_WIRE_EBAD;
      if (c == 'Z' && state == 0) {
        compressed = 1;
        state = 1;
        continue;
      }
      if (c == 'R') {
        reset = 1;
        state = 2;
        continue;
      }
      if (c == '\r') {
        state = 3;
        continue;
      }
      return PK_WIRE_EBAD;
    }
    /* state 2: after 'R' */
    if (c != '\r') return PK_WIRE_EBAD;
    state = 3;
  }
  return PK_WIRE_NEED_MORE;
}

int pk_wire_format_frame(char *out, size_t outsz, size_t len, size_t wire_len, int compressed,
                         int reset) {
  char tmp[PK_WIRE_FRAME_HDR_MAX + 8];
  int w;
  if (out == NULL || len == 0 || len > 0xffffffffUL) return -1;
  if (compressed && (wire_len == 0 || wire_len > 0xffffffffUL)) return -1;
  if (compressed) {
    w = snprintf(tmp, sizeof(tmp), "%zxZ%zx%s\r\n", len, wire_len, reset ? "R" : "");
  } else {
    w = snprintf(tmp, sizeof(tmp), "%zx%s\r\n", len, reset ? "R" : "");
  }
  if (w < 0 || (size_t)w > PK_WIRE_FRAME_HDR_MAX || (size_t)w > outsz) return -1;
  memcpy(out, tmp, (size_t)w);
  /* NUL-terminate when there is room; the return value never counts it. */
  if ((size_t)w < outsz) out[w] = '\0';
  return w;
}

/* ---- lines and headers (shared by chunks and HTTP heads) ---- */

/* Find the end of the line starting at buf[pos].  On success sets *content
 * (line without CR/LF) and *next (index after the LF) and returns 1; returns
 * 0 if no LF before n. */
static int pk_next_line(const char *buf, size_t n, size_t pos, size_t *content, size_t *next) {
  const char *lf;
  size_t len;
  if (pos >= n) return 0;
  lf = memchr(buf + pos, '\n', n - pos);
  if (lf == NULL) return 0;
  len = (size_t)(lf - (buf + pos));
  *next = pos + len + 1;
  if (len > 0 && buf[pos + len - 1] == '\r') len--;
  *content = len;
  return 1;
}

/* Split "Name: value" into trimmed slices.  Returns 0 or PK_WIRE_EBAD. */
static int pk_split_header(const char *line, size_t len, pk_slice *name, pk_slice *value) {
  const char *colon = memchr(line, ':', len);
  size_t nlen;
  /* A line starting with a blank is an obs-fold continuation: refuse it
   * rather than guess (RFC 7230 3.2.4). */
  if (colon == NULL || pk_is_space((unsigned char)line[0])) return PK_WIRE_EBAD;
  nlen = (size_t)(colon - line);
  *name = pk_trim(line, nlen);
  if (name->n == 0) return PK_WIRE_EBAD;
  /* A name with inner blanks is not a header we can route on. */
  if (memchr(name->p, ' ', name->n) != NULL || memchr(name->p, '\t', name->n) != NULL) {
    return PK_WIRE_EBAD;
  }
  *value = pk_trim(colon + 1, len - nlen - 1);
  return 0;
}

/* ---- chunks ---- */

const char *pk_wire_chunk_header_name(pk_chunk_header_id id) {
  if ((int)id < 0 || id >= PK_CH__COUNT) return NULL;
  return pk_chunk_header_names[id];
}

static int pk_parse_eof_flags(pk_slice v) {
  int flags = 0;
  size_t i;
  for (i = 0; i < v.n; i++) {
    int c = (unsigned char)v.p[i];
    if (c == 'R' || c == 'r') flags |= PK_EOF_READ;
    if (c == 'W' || c == 'w') flags |= PK_EOF_WRITE;
  }
  /* pagekite.py: a value naming neither direction closes both. */
  if (flags == 0) flags = PK_EOF_READ | PK_EOF_WRITE;
  return flags;
}

int pk_wire_parse_chunk(const char *buf, size_t n, pk_chunk *out) {
  size_t pos = 0, content, next;
  int k;
  if (out == NULL) return PK_WIRE_EBAD;
  memset(out, 0, sizeof(*out));
  out->sid = -1;
  if (buf == NULL) return PK_WIRE_EBAD;
  for (;;) {
    pk_slice name, value;
    int rc;
    if (!pk_next_line(buf, n, pos, &content, &next)) return PK_WIRE_EBAD;
    if (content == 0) {
      out->data.p = buf + next;
      out->data.n = n - next;
      break;
    }
    if (out->nheaders >= PK_WIRE_MAX_HEADERS) return PK_WIRE_ETOOBIG;
    rc = pk_split_header(buf + pos, content, &name, &value);
    if (rc != 0) return rc;
    out->names[out->nheaders] = name;
    out->values[out->nheaders] = value;
    out->nheaders++;
    for (k = 0; k < PK_CH__COUNT; k++) {
      if (out->known[k].p == NULL && pk_slice_ieq(name, pk_chunk_header_names[k])) {
        out->known[k] = value;
        break;
      }
    }
    pos = next;
  }
  if (out->known[PK_CH_SID].p != NULL) {
    long long sid;
    if (pk_slice_to_ll(out->known[PK_CH_SID], &sid) != 0 || sid < 0) return PK_WIRE_EBAD;
    out->sid = sid;
  }
  if (out->known[PK_CH_EOF].p != NULL) out->eof = pk_parse_eof_flags(out->known[PK_CH_EOF]);
  out->noop = (out->known[PK_CH_NOOP].p != NULL);
  return 0;
}

pk_slice pk_wire_chunk_get(const pk_chunk *c, const char *name) {
  pk_slice none = {NULL, 0};
  int i;
  if (c == NULL || name == NULL) return none;
  for (i = 0; i < c->nheaders && i < PK_WIRE_MAX_HEADERS; i++) {
    if (pk_slice_ieq(c->names[i], name)) return c->values[i];
  }
  return none;
}

/* ---- HTTP heads ---- */

/* RFC 7230 tchar: the characters allowed in a method token. */
static int pk_is_tchar(int c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int pk_starts_with(const char *p, size_t n, const char *prefix) {
  size_t l = strlen(prefix);
  return n >= l && memcmp(p, prefix, l) == 0;
}

/* Next space-separated word of line[*pos..len); empty slice at the end. */
static pk_slice pk_word(const char *line, size_t len, size_t *pos) {
  pk_slice s;
  size_t i = *pos;
  while (i < len && line[i] == ' ') i++;
  s.p = line + i;
  while (i < len && line[i] != ' ') i++;
  s.n = (size_t)(line + i - s.p);
  *pos = i;
  return s;
}

static int pk_parse_start_line(const char *line, size_t len, pk_http_head *h) {
  size_t pos = 0, i;
  for (i = 0; i < len; i++) {
    /* Control characters (including a stray CR or NUL) never belong here. */
    if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) return PK_WIRE_EBAD;
  }
  if (pk_starts_with(line, len, "HTTP/")) {
    pk_slice ver, code;
    ver = pk_word(line, len, &pos);
    code = pk_word(line, len, &pos);
    while (pos < len && line[pos] == ' ') pos++;
    if (code.n != 3) return PK_WIRE_EBAD;
    for (i = 0; i < 3; i++) {
      if (code.p[i] < '0' || code.p[i] > '9') return PK_WIRE_EBAD;
    }
    h->is_response = 1;
    h->status = (code.p[0] - '0') * 100 + (code.p[1] - '0') * 10 + (code.p[2] - '0');
    h->method = ver;
    h->path = code;
    h->version = pk_trim(line + pos, len - pos);
    return 0;
  }
  h->method = pk_word(line, len, &pos);
  h->path = pk_word(line, len, &pos);
  h->version = pk_word(line, len, &pos);
  while (pos < len && line[pos] == ' ') pos++;
  if (pos != len || h->method.n == 0 || h->path.n == 0) return PK_WIRE_EBAD;
  for (i = 0; i < h->method.n; i++) {
    if (!pk_is_tchar((unsigned char)h->method.p[i])) return PK_WIRE_EBAD;
  }
  if (!pk_starts_with(h->version.p, h->version.n, "HTTP/")) return PK_WIRE_EBAD;
  h->is_response = 0;
  return 0;
}

int pk_wire_parse_http_head(const char *buf, size_t n, size_t max_len, pk_http_head *out) {
  size_t pos = 0, content, next, lim;
  int rc;
  if (out == NULL) return PK_WIRE_EBAD;
  memset(out, 0, sizeof(*out));
  if (buf == NULL) return PK_WIRE_EBAD;
  lim = n < max_len ? n : max_len;

  if (!pk_next_line(buf, lim, 0, &content, &next)) goto incomplete;
  rc = pk_parse_start_line(buf, content, out);
  if (rc != 0) return rc;
  pos = next;
  for (;;) {
    pk_slice name, value;
    if (!pk_next_line(buf, lim, pos, &content, &next)) goto incomplete;
    if (content == 0) {
      out->head_len = next;
      return 1;
    }
    if (out->nheaders >= PK_WIRE_MAX_HEADERS) return PK_WIRE_ETOOBIG;
    rc = pk_split_header(buf + pos, content, &name, &value);
    if (rc != 0) return rc;
    out->names[out->nheaders] = name;
    out->values[out->nheaders] = value;
    out->nheaders++;
    pos = next;
  }
incomplete:
  return n >= max_len ? PK_WIRE_ETOOBIG : PK_WIRE_NEED_MORE;
}

pk_slice pk_wire_http_get(const pk_http_head *h, const char *name, int idx) {
  pk_slice none = {NULL, 0};
  int i;
  if (h == NULL || name == NULL || idx < 0) return none;
  for (i = 0; i < h->nheaders && i < PK_WIRE_MAX_HEADERS; i++) {
    if (pk_slice_ieq(h->names[i], name)) {
      if (idx == 0) return h->values[i];
      idx--;
    }
  }
  return none;
}

/* ---- first bytes of a relay connection ---- */

/* pagekite.py's HTTP_METHODS: a relay only treats these as HTTP. */
static const char *const pk_http_methods[] = {
    "OPTIONS", "CONNECT", "GET",  "HEAD", "POST", "PUT",    "TRACE", "PROPFIND", "PROPPATCH",
    "MKCOL",   "DELETE",  "COPY", "MOVE", "LOCK", "UNLOCK", "PING",  "PATCH"};

int pk_wire_peek_kind(const unsigned char *buf, size_t n) {
  size_t m;
  if (buf == NULL || n < 3) return PK_PEEK_NEED_MORE;
  if (buf[0] == 0x16 && buf[1] == 0x03) return PK_PEEK_TLS;
  /* HTTP when the bytes we have are a prefix of "METHOD " for a known
   * method (at least three bytes are always compared). */
  for (m = 0; m < sizeof(pk_http_methods) / sizeof(pk_http_methods[0]); m++) {
    const char *meth = pk_http_methods[m];
    size_t ml = strlen(meth), k, cmp = n < ml + 1 ? n : ml + 1;
    for (k = 0; k < cmp; k++) {
      int want = k < ml ? (unsigned char)meth[k] : ' ';
      if (buf[k] != want) break;
    }
    if (k == cmp) return PK_PEEK_HTTP;
  }
  return PK_PEEK_UNKNOWN;
}

/* ---- TLS ClientHello SNI ---- */

#define PK_TLS_RECORD_MAX 16384 /* plaintext record limit (RFC 8446 5.1) */

static size_t pk_be16(const unsigned char *p) {
  return ((size_t)p[0] << 8) | p[1];
}

static size_t pk_be24(const unsigned char *p) {
  return ((size_t)p[0] << 16) | ((size_t)p[1] << 8) | p[2];
}

/* Copy a host_name into out, lower-cased.  Only DNS characters are allowed:
 * the name is used for routing and logging. */
static int pk_copy_sni(const unsigned char *p, size_t len, char *out, size_t outsz) {
  size_t i;
  if (len == 0) return PK_WIRE_EBAD;
  for (i = 0; i < len; i++) {
    int c = p[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '-' || c == '.' || c == '_')) {
      return PK_WIRE_EBAD;
    }
  }
  if (out == NULL || outsz < len + 1) return PK_WIRE_ETOOBIG;
  for (i = 0; i < len; i++) out[i] = (char)pk_lower(p[i]);
  out[len] = '\0';
  return 1;
}

/* Walk the server_name extension body p[0..len). */
static int pk_parse_sni_ext(const unsigned char *p, size_t len, char *out, size_t outsz) {
  size_t list_len, pos;
  if (len < 2) return PK_WIRE_EBAD;
  list_len = pk_be16(p);
  if (list_len > len - 2) return PK_WIRE_EBAD;
  p += 2;
  pos = 0;
  while (pos < list_len) {
    int type;
    size_t nlen;
    if (list_len - pos < 3) return PK_WIRE_EBAD;
    type = p[pos];
    nlen = pk_be16(p + pos + 1);
    pos += 3;
    if (nlen > list_len - pos) return PK_WIRE_EBAD;
    if (type == 0) return pk_copy_sni(p + pos, nlen, out, outsz);
    pos += nlen;
  }
  return PK_WIRE_EBAD;
}

int pk_wire_tls_sni(const unsigned char *buf, size_t n, char *out, size_t outsz) {
  size_t rec_len, hs_len, pos, end, l, ext_end;
  const unsigned char *hs;
  if (buf == NULL) return PK_WIRE_EBAD;
  if (out != NULL && outsz > 0) out[0] = '\0';
  /* Record header: type 0x16, version 3.x, 16-bit length. */
  if (n >= 1 && buf[0] != 0x16) return PK_WIRE_EBAD;
  if (n >= 2 && buf[1] != 0x03) return PK_WIRE_EBAD;
  if (n < 5) return PK_WIRE_NEED_MORE;
  rec_len = pk_be16(buf + 3);
  if (rec_len < 4 || rec_len > PK_TLS_RECORD_MAX) return PK_WIRE_EBAD;
  /* Handshake header can be checked before the whole record is in. */
  if (n >= 6 && buf[5] != 1) return PK_WIRE_EBAD;
  if (n < 9) return PK_WIRE_NEED_MORE;
  hs_len = pk_be24(buf + 6);
  /* A ClientHello split across records is not supported: it must fit. */
  if (hs_len > rec_len - 4) return PK_WIRE_EBAD;
  if (n < 5 + rec_len) return PK_WIRE_NEED_MORE;

  hs = buf + 9;
  end = hs_len;
  /* client_version(2) + random(32) */
  pos = 34;
  if (pos + 1 > end) return PK_WIRE_EBAD;
  l = hs[pos]; /* session_id */
  pos += 1;
  if (l > 32 || l > end - pos) return PK_WIRE_EBAD;
  pos += l;
  if (end - pos < 2) return PK_WIRE_EBAD;
  l = pk_be16(hs + pos); /* cipher_suites */
  pos += 2;
  if (l < 2 || (l & 1) != 0 || l > end - pos) return PK_WIRE_EBAD;
  pos += l;
  if (end - pos < 1) return PK_WIRE_EBAD;
  l = hs[pos]; /* compression_methods */
  pos += 1;
  if (l < 1 || l > end - pos) return PK_WIRE_EBAD;
  pos += l;
  if (end - pos < 2) return PK_WIRE_EBAD; /* no extensions: no SNI */
  l = pk_be16(hs + pos);
  pos += 2;
  if (l > end - pos) return PK_WIRE_EBAD;
  ext_end = pos + l;
  while (pos < ext_end) {
    size_t type, elen;
    if (ext_end - pos < 4) return PK_WIRE_EBAD;
    type = pk_be16(hs + pos);
    elen = pk_be16(hs + pos + 2);
    pos += 4;
    if (elen > ext_end - pos) return PK_WIRE_EBAD;
    if (type == 0) return pk_parse_sni_ext(hs + pos, elen, out, outsz);
    pos += elen;
  }
  return PK_WIRE_EBAD;
}

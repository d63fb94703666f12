/* proxy.c - outgoing proxy handshakes (HTTP CONNECT, SOCKS5) as a state
 * machine fed with bytes; see proxy.h.  libc only. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L /* inet_pton, inet_ntop */
#endif
#include "proxy.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SHOW_MAX 48 /* bytes of a bad input echoed in an error */

/* ---- small helpers ---- */

/* memset that the compiler may not drop: for credentials. */
static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
}

static void seterr(char *err, size_t errn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errn, const char *fmt, ...) {
  va_list ap;
  if (!err || errn == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errn, fmt, ap);
  va_end(ap);
}

/* s[0..n) fit to echo in an error: printable ASCII, others as '?', cut to
 * SHOW_MAX bytes with "..." after. */
static const char *shown(char tmp[SHOW_MAX + 4], const char *s, size_t n) {
  size_t i, m = n > SHOW_MAX ? SHOW_MAX : n;
  for (i = 0; i < m; i++) {
    unsigned char c = (unsigned char)s[i];
    tmp[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  memcpy(tmp + m, n > m ? "..." : "", n > m ? 4 : 1);
  return tmp;
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

static int ieq(const char *a, size_t n, const char *b) {
  size_t i;
  if (strlen(b) != n) return 0;
  for (i = 0; i < n; i++)
    if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
  return 1;
}

static int is_alnum(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A host name as we accept it: letters, digits, '-', '.', '_'. */
static int name_ok(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++)
    if (!is_alnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_') return 0;
  return 1;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* RFC 4648 base64 of in[0..n) into out (4 * ceil(n / 3) + 1 bytes). */
static size_t base64(const unsigned char *in, size_t n, char *out) {
  static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
    out[o++] = T[(v >> 18) & 63];
    out[o++] = T[(v >> 12) & 63];
    out[o++] = T[(v >> 6) & 63];
    out[o++] = T[v & 63];
  }
  if (i < n) {
    unsigned long v = (unsigned long)in[i] << 16;
    if (i + 1 < n) v |= (unsigned long)in[i + 1] << 8;
    out[o++] = T[(v >> 18) & 63];
    out[o++] = T[(v >> 12) & 63];
    out[o++] = i + 1 < n ? T[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

/* ---- proxy URLs ---- */

const char *pk_proxy_scheme(pk_proxy_kind kind) {
  switch (kind) {
    case PK_PROXY_HTTP: return "http";
    case PK_PROXY_SOCKS5: return "socks5";
    case PK_PROXY_SOCKS5H: return "socks5h";
  }
  return "?";
}

/* "scheme://" at the start of url; *rest is what follows. */
static int parse_scheme(const char *url, pk_proxy_kind *kind, const char **rest, char *err,
                        size_t errn) {
  char tmp[SHOW_MAX + 4];
  size_t n = 0;
  while (is_alnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.') n++;
  if (n == 0 || strncmp(url + n, "://", 3) != 0) {
    seterr(err, errn, "proxy URL needs a scheme: http://, socks5:// or socks5h://");
    return -1;
  }
  if (ieq(url, n, "http")) *kind = PK_PROXY_HTTP;
  else if (ieq(url, n, "socks5")) *kind = PK_PROXY_SOCKS5;
  else if (ieq(url, n, "socks5h")) *kind = PK_PROXY_SOCKS5H;
  else {
    seterr(err, errn, "unsupported proxy scheme '%s' (use http, socks5 or socks5h)",
           shown(tmp, url, n));
    return -1;
  }
  *rest = url + n + 3;
  return 0;
}

/* Percent-decode s[0..n) into out (cap bytes with the NUL). */
static int pct_decode(const char *s, size_t n, char *out, size_t cap, const char *what, char *err,
                      size_t errn) {
  size_t i, o = 0;
  for (i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '%') {
      int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
      int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        seterr(err, errn, "bad %%-escape in the proxy %s", what);
        return -1;
      }
      c = hi * 16 + lo;
      i += 2;
    }
    if (c == 0) {
      seterr(err, errn, "the proxy %s contains a NUL byte", what);
      return -1;
    }
    if (o + 1 >= cap) {
      seterr(err, errn, "the proxy %s is longer than %d bytes", what, PK_PROXY_CRED_MAX);
      return -1;
    }
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return 0;
}

/* "user[:pass]" (still percent-encoded). */
static int parse_userinfo(const char *s, size_t n, pk_proxy *out, char *err, size_t errn) {
  const char *colon = memchr(s, ':', n);
  size_t un = colon ? (size_t)(colon - s) : n;
  if (un == 0) {
    seterr(err, errn, "empty user name in the proxy URL");
    return -1;
  }
  if (pct_decode(s, un, out->user, sizeof(out->user), "user name", err, errn) < 0) return -1;
  if (colon && pct_decode(colon + 1, n - un - 1, out->pass, sizeof(out->pass), "password", err,
                          errn) < 0)
    return -1;
  if (out->kind == PK_PROXY_HTTP && strchr(out->user, ':')) {
    seterr(err, errn, "the proxy user name contains ':', which HTTP Basic cannot carry");
    return -1;
  }
  out->has_user = 1;
  return 0;
}

static int parse_port(const char *s, size_t n, int *port, char *err, size_t errn) {
  char tmp[SHOW_MAX + 4];
  size_t i;
  long v = 0;
  for (i = 0; i < n && i < 6; i++) {
    if (s[i] < '0' || s[i] > '9') break;
    v = v * 10 + (s[i] - '0');
  }
  if (n == 0 || i != n || v < 1 || v > 65535) {
    seterr(err, errn, "bad port '%s' in the proxy URL", shown(tmp, s, n));
    return -1;
  }
  *port = (int)v;
  return 0;
}

/* "[v6]" at s[0..n): the address goes to out->host, *rest after the ']'. */
static int parse_v6_host(const char *s, size_t n, pk_proxy *out, const char **rest, char *err,
                         size_t errn) {
  char tmp[SHOW_MAX + 4];
  const char *close = memchr(s, ']', n);
  unsigned char a6[16];
  size_t hn;
  if (!close) {
    seterr(err, errn, "unclosed '[' in the proxy URL");
    return -1;
  }
  hn = (size_t)(close - s - 1);
  if (hn <= 45) { /* INET6_ADDRSTRLEN - 1: no longer IPv6 text exists */
    memcpy(out->host, s + 1, hn);
    out->host[hn] = '\0';
  }
  if (hn > 45 || inet_pton(AF_INET6, out->host, a6) != 1) {
    seterr(err, errn, "bad IPv6 address '[%s]' in the proxy URL", shown(tmp, s + 1, hn));
    return -1;
  }
  *rest = close + 1;
  if (*rest != s + n && **rest != ':') {
    seterr(err, errn, "junk after ']' in the proxy URL");
    return -1;
  }
  return 0;
}

/* "[v6]" or "name" / "v4", then ":port" or nothing. */
static int parse_hostport(const char *s, size_t n, pk_proxy *out, char *err, size_t errn) {
  char tmp[SHOW_MAX + 4];
  const char *rest;
  if (n == 0) {
    seterr(err, errn, "no host in the proxy URL");
    return -1;
  }
  if (s[0] == '[') {
    if (parse_v6_host(s, n, out, &rest, err, errn) < 0) return -1;
  } else {
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n;
    if (colon && memchr(colon + 1, ':', n - hn - 1)) {
      seterr(err, errn, "an IPv6 proxy address must be in brackets: [%s]", shown(tmp, s, n));
      return -1;
    }
    if (hn == 0) {
      seterr(err, errn, "no host in the proxy URL");
      return -1;
    }
    if (hn > PK_PROXY_HOST_MAX) {
      seterr(err, errn, "the proxy host name is longer than %d bytes", PK_PROXY_HOST_MAX);
      return -1;
    }
    if (!name_ok(s, hn)) {
      seterr(err, errn, "bad proxy host '%s'", shown(tmp, s, hn));
      return -1;
    }
    memcpy(out->host, s, hn);
    out->host[hn] = '\0';
    rest = s + hn;
  }
  out->port = PK_PROXY_DEFAULT_PORT;
  if (rest == s + n) return 0;
  return parse_port(rest + 1, (size_t)(s + n - rest - 1), &out->port, err, errn);
}

int pk_proxy_parse_url(const char *url, pk_proxy *out, char *err, size_t errn) {
  const char *auth, *end, *at = NULL, *p;
  size_t an;
  if (err && errn) err[0] = '\0';
  wipe(out, sizeof(*out));
  if (!url) {
    seterr(err, errn, "no proxy URL");
    return -1;
  }
  if (parse_scheme(url, &out->kind, &auth, err, errn) < 0) return -1;
  an = strcspn(auth, "/?#");
  end = auth + an;
  if (*end && strcmp(end, "/") != 0) {
    seterr(err, errn, "the proxy URL must not have a path, query or fragment");
    goto bad;
  }
  for (p = auth; p < end; p++)
    if (*p == '@') at = p; /* the last '@': a raw '@' in a password still works */
  if (at && parse_userinfo(auth, (size_t)(at - auth), out, err, errn) < 0) goto bad;
  if (at) auth = at + 1;
  if (parse_hostport(auth, (size_t)(end - auth), out, err, errn) < 0) goto bad;
  return 0;
bad:
  wipe(out, sizeof(*out));
  return -1;
}

/* user name for logs: unreserved characters as is, the rest %XX. */
static size_t put_escaped(char *out, size_t outsz, size_t o, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int plain = is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
    int w = snprintf(out + o, outsz - o, plain ? "%c" : "%%%02X", c);
    if (w < 0 || (size_t)w >= outsz - o) return outsz - 1;
    o += (size_t)w;
  }
  return o;
}

size_t pk_proxy_describe(const pk_proxy *p, char *out, size_t outsz) {
  size_t o;
  int w;
  if (!out || outsz == 0) return 0;
  w = snprintf(out, outsz, "%s://", pk_proxy_scheme(p->kind));
  o = (w < 0 || (size_t)w >= outsz) ? outsz - 1 : (size_t)w;
  if (p->has_user) {
    o = put_escaped(out, outsz, o, p->user);
    w = snprintf(out + o, outsz - o, "%s@", p->pass[0] ? ":***" : "");
    o = (w < 0 || (size_t)w >= outsz - o) ? outsz - 1 : o + (size_t)w;
  }
  w = snprintf(out + o, outsz - o, strchr(p->host, ':') ? "[%s]:%d" : "%s:%d", p->host, p->port);
  o = (w < 0 || (size_t)w >= outsz - o) ? outsz - 1 : o + (size_t)w;
  return o;
}

/* ---- the handshake ---- */

const char *pk_socks5_reply_text(int code) {
  switch (code) {
#define PK_S5_TEXT(c, id, text) \
  case c: return text;
    PK_SOCKS5_REPLY_MAP(PK_S5_TEXT)
#undef PK_S5_TEXT
  }
  return "unassigned reply code";
}

static void wipe_creds(pk_proxy_hs *hs) {
  wipe(hs->user, sizeof(hs->user));
  wipe(hs->pass, sizeof(hs->pass));
}

static int fail(pk_proxy_hs *hs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(pk_proxy_hs *hs, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(hs->why, sizeof(hs->why), fmt, ap);
  va_end(ap);
  hs->state = PK_PROXY_S_ERROR;
  wipe_creds(hs);
  return PK_PROXY_ERROR;
}

void pk_proxy_hs_clear(pk_proxy_hs *hs) {
  wipe(hs, sizeof(*hs));
  hs->socks5_reply = -1;
}

#define TARGET_NAME 0
#define TARGET_V4 1
#define TARGET_V6 2

/* Check target_host; its bare form (no brackets) goes to h. */
static int target_kind(pk_proxy_hs *hs, const char *host, char h[PK_PROXY_HOST_MAX + 1],
                       unsigned char addr[16]) {
  char tmp[SHOW_MAX + 4];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    host++;
    n -= 2;
  }
  if (n == 0) return fail(hs, "no target host");
  if (n > PK_PROXY_HOST_MAX)
    return fail(hs, "the target host name is longer than %d bytes", PK_PROXY_HOST_MAX);
  memcpy(h, host, n);
  h[n] = '\0';
  if (inet_pton(AF_INET, h, addr) == 1) return TARGET_V4;
  if (inet_pton(AF_INET6, h, addr) == 1) return TARGET_V6;
  if (!name_ok(h, n)) return fail(hs, "bad target host '%s'", shown(tmp, h, n));
  return TARGET_NAME;
}

static int http_start(pk_proxy_hs *hs, const pk_proxy *p, const char *h, int v6, int port,
                      char *out, size_t outcap, size_t *outn) {
  char cred[2 * PK_PROXY_CRED_MAX + 2], b64[4 * ((2 * PK_PROXY_CRED_MAX + 1 + 2) / 3) + 1];
  const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
  int w;
  b64[0] = '\0';
  if (p->has_user) {
    int cn = snprintf(cred, sizeof(cred), "%s:%s", p->user, p->pass);
    base64((const unsigned char *)cred, cn < 0 ? 0 : (size_t)cn, b64);
    wipe(cred, sizeof(cred));
  }
  w = snprintf(out, outcap, "CONNECT %s%s%s:%d HTTP/1.1\r\nHost: %s%s%s:%d\r\n%s%s%s\r\n", lb, h,
               rb, port, lb, h, rb, port, b64[0] ? "Proxy-Authorization: Basic " : "", b64,
               b64[0] ? "\r\n" : "");
  wipe(b64, sizeof(b64));
  if (w < 0 || (size_t)w >= outcap) {
    wipe(out, outcap);
    return fail(hs, "output buffer too small (%zu bytes) for the CONNECT request", outcap);
  }
  *outn = (size_t)w;
  hs->state = PK_PROXY_S_HTTP_HEAD;
  return 0;
}

/* The CONNECT request, kept until the proxy lets us send it. */
static void s5_request(pk_proxy_hs *hs, const char *h, int kind, const unsigned char *addr,
                       int port) {
  unsigned char *t = hs->target;
  size_t o = 0, hn = strlen(h);
  t[o++] = 5; /* VER */
  t[o++] = 1; /* CMD: CONNECT */
  t[o++] = 0; /* RSV */
  if (kind == TARGET_V4) {
    t[o++] = 1;
    memcpy(t + o, addr, 4);
    o += 4;
  } else if (kind == TARGET_V6) {
    t[o++] = 4;
    memcpy(t + o, addr, 16);
    o += 16;
  } else {
    t[o++] = 3;
    t[o++] = (unsigned char)hn;
    memcpy(t + o, h, hn);
    o += hn;
  }
  t[o++] = (unsigned char)(port >> 8);
  t[o++] = (unsigned char)(port & 255);
  hs->target_len = o;
}

static int s5_start(pk_proxy_hs *hs, const pk_proxy *p, const char *h, int kind,
                    const unsigned char *addr, int port, char *out, size_t outcap, size_t *outn) {
  static const char greet_anon[] = {5, 1, 0}, greet_user[] = {5, 2, 0, 2};
  if (kind == TARGET_NAME && p->kind == PK_PROXY_SOCKS5)
    return fail(hs, "socks5:// needs the target '%s' resolved to an address first "
                    "(socks5h:// lets the proxy resolve it)", h);
  if (outcap < sizeof(greet_user))
    return fail(hs, "output buffer too small (%zu bytes) for the SOCKS5 greeting", outcap);
  s5_request(hs, h, kind, addr, port);
  if (p->has_user) {
    memcpy(hs->user, p->user, sizeof(hs->user));
    memcpy(hs->pass, p->pass, sizeof(hs->pass));
    hs->user[PK_PROXY_CRED_MAX] = hs->pass[PK_PROXY_CRED_MAX] = '\0';
    memcpy(out, greet_user, sizeof(greet_user));
    *outn = sizeof(greet_user);
  } else {
    memcpy(out, greet_anon, sizeof(greet_anon));
    *outn = sizeof(greet_anon);
  }
  hs->state = PK_PROXY_S_S5_METHOD;
  return 0;
}

int pk_proxy_start(pk_proxy_hs *hs, const pk_proxy *p, const char *target_host, int target_port,
                   char *out, size_t outcap, size_t *outn) {
  char h[PK_PROXY_HOST_MAX + 1];
  unsigned char addr[16];
  int kind;
  pk_proxy_hs_clear(hs);
  *outn = 0;
  if (!p || (p->kind != PK_PROXY_HTTP && p->kind != PK_PROXY_SOCKS5 &&
             p->kind != PK_PROXY_SOCKS5H))
    return fail(hs, "no proxy (or an unknown kind)");
  hs->kind = p->kind;
  hs->has_user = p->has_user;
  if (!target_host) return fail(hs, "no target host");
  if (target_port < 1 || target_port > 65535)
    return fail(hs, "bad target port %d", target_port);
  kind = target_kind(hs, target_host, h, addr);
  if (kind < 0) return PK_PROXY_ERROR;
  if (p->kind == PK_PROXY_HTTP)
    return http_start(hs, p, h, kind == TARGET_V6, target_port, out, outcap, outn);
  return s5_start(hs, p, h, kind, addr, target_port, out, outcap, outn);
}

/* ---- HTTP CONNECT response ---- */

/* tinyproxy 1.11 answers wrong credentials with 401, not 407. */
static const char *auth_hint(int status, int has_user) {
  if (has_user && (status == 407 || status == 401)) return " (wrong user or password?)";
  if (status == 407) return " (the proxy wants a user and password)";
  return "";
}

/* The status line of a complete head: 2xx -> DONE, else why not. */
static int http_status(pk_proxy_hs *hs) {
  char tmp[SHOW_MAX + 4];
  const char *b = hs->buf, *sp = memchr(b, ' ', hs->len), *r;
  size_t i, rn;
  if (!sp || sp - b > 16 || hs->len - (size_t)(sp - b) < 5)
    return fail(hs, "HTTP proxy sent a bad status line");
  for (i = 1; i <= 3; i++)
    if (sp[i] < '0' || sp[i] > '9') return fail(hs, "HTTP proxy sent a bad status line");
  if (sp[4] != ' ' && sp[4] != '\r' && sp[4] != '\n')
    return fail(hs, "HTTP proxy sent a bad status line");
  hs->http_status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
  if (hs->http_status >= 200 && hs->http_status <= 299) {
    hs->state = PK_PROXY_S_DONE;
    wipe_creds(hs);
    return PK_PROXY_DONE;
  }
  r = sp[4] == ' ' ? sp + 5 : sp + 4;
  rn = strcspn(r, "\r\n"); /* the head ends with '\n', so this stays inside */
  return fail(hs, "proxy refused: HTTP %d%s%s%s", hs->http_status, rn ? " " : "",
              rn ? shown(tmp, r, rn) : "", auth_hint(hs->http_status, hs->has_user));
}

static int head_complete(const pk_proxy_hs *hs) {
  const char *e = hs->buf + hs->len;
  if (hs->len < 2 || e[-1] != '\n') return 0;
  return e[-2] == '\n' || (hs->len >= 3 && e[-2] == '\r' && e[-3] == '\n');
}

static int http_recv(pk_proxy_hs *hs, const char *data, size_t n, size_t *used) {
  static const char prefix[] = "HTTP/";
  size_t i;
  for (i = 0; i < n; i++) {
    hs->buf[hs->len++] = data[i];
    if (hs->len < sizeof(prefix) && hs->buf[hs->len - 1] != prefix[hs->len - 1])
      return fail(hs, "HTTP proxy: the answer does not start with 'HTTP/' (not an HTTP proxy?)");
    if (data[i] == '\0')
      return fail(hs, "HTTP proxy sent a NUL byte in its response head");
    if (head_complete(hs)) {
      int r;
      hs->buf[hs->len - 1] = '\0'; /* for http_status's strcspn */
      r = http_status(hs);
      if (r == PK_PROXY_DONE) *used = i + 1;
      return r;
    }
    if (hs->len == sizeof(hs->buf))
      return fail(hs, "HTTP proxy: response head larger than %d bytes", PK_PROXY_HEAD_MAX);
  }
  *used = n;
  return PK_PROXY_NEED_MORE;
}

/* ---- SOCKS5 replies ---- */

#define S5_MORE 0 /* the message so far is fine, more bytes to come */
#define S5_NEXT 2 /* a message was handled and answered */

/* Append msg to what this call sends.  A proxy that answered ahead of our
 * request gets both of our messages in one go, so that the outcome depends on
 * the byte stream only, never on how it was cut into reads. */
static int s5_send(pk_proxy_hs *hs, const void *msg, size_t n, char *out, size_t outcap,
                   size_t *outn) {
  if (outcap - *outn < n)
    return fail(hs, "output buffer too small (%zu bytes, %zu needed)", outcap, *outn + n);
  memcpy(out + *outn, msg, n);
  *outn += n;
  hs->len = 0;
  return S5_NEXT;
}

/* RFC 1929: VER=1 ULEN UNAME PLEN PASSWD. */
static int s5_send_auth(pk_proxy_hs *hs, char *out, size_t outcap, size_t *outn) {
  unsigned char msg[3 + 2 * PK_PROXY_CRED_MAX];
  size_t un = strlen(hs->user), pn = strlen(hs->pass), o = 0;
  int r;
  msg[o++] = 1;
  msg[o++] = (unsigned char)un;
  memcpy(msg + o, hs->user, un);
  o += un;
  msg[o++] = (unsigned char)pn;
  memcpy(msg + o, hs->pass, pn);
  o += pn;
  wipe_creds(hs);
  r = s5_send(hs, msg, o, out, outcap, outn);
  wipe(msg, sizeof(msg));
  hs->state = r == S5_NEXT ? PK_PROXY_S_S5_AUTH : hs->state;
  return r;
}

static int s5_method(pk_proxy_hs *hs, char *out, size_t outcap, size_t *outn) {
  const unsigned char *b = (const unsigned char *)hs->buf;
  if (b[0] != 5)
    return fail(hs, "not a SOCKS5 proxy: it answered with version byte 0x%02x%s", b[0],
                b[0] == 'H' ? " (an HTTP proxy? use http://)" : "");
  if (hs->len < 2) return S5_MORE;
  if (b[1] == 0) {
    wipe_creds(hs);
    hs->state = PK_PROXY_S_S5_REPLY;
    return s5_send(hs, hs->target, hs->target_len, out, outcap, outn);
  }
  if ((b[1] == 2 || b[1] == 0xff) && !hs->has_user)
    return fail(hs, "SOCKS5 proxy wants authentication but no user given");
  if (b[1] == 2) return s5_send_auth(hs, out, outcap, outn);
  if (b[1] == 0xff)
    return fail(hs, "SOCKS5 proxy accepts none of our authentication methods "
                    "(none, user/password)");
  return fail(hs, "SOCKS5 proxy chose authentication method 0x%02x, which was not offered",
              b[1]);
}

static int s5_auth(pk_proxy_hs *hs, char *out, size_t outcap, size_t *outn) {
  const unsigned char *b = (const unsigned char *)hs->buf;
  /* RFC 1929 says VER=1; some servers echo the SOCKS version 5. */
  if (b[0] != 1 && b[0] != 5)
    return fail(hs, "SOCKS5 proxy sent a bad authentication reply (version 0x%02x)", b[0]);
  if (hs->len < 2) return S5_MORE;
  if (b[1] != 0)
    return fail(hs, "SOCKS5 proxy: authentication failed (wrong user or password?)");
  hs->state = PK_PROXY_S_S5_REPLY;
  return s5_send(hs, hs->target, hs->target_len, out, outcap, outn);
}

/* BND.ADDR:BND.PORT of a complete reply, for logs. */
static void s5_bound(pk_proxy_hs *hs, size_t total) {
  const unsigned char *b = (const unsigned char *)hs->buf;
  char a[PK_PROXY_HOST_MAX + 1];
  int port = (b[total - 2] << 8) | b[total - 1];
  size_t i;
  if (b[3] == 1) inet_ntop(AF_INET, b + 4, a, sizeof(a));
  else if (b[3] == 4) inet_ntop(AF_INET6, b + 4, a, sizeof(a));
  else {
    for (i = 0; i < b[4]; i++) a[i] = (b[5 + i] >= 0x20 && b[5 + i] < 0x7f) ? (char)b[5 + i] : '?';
    a[i] = '\0';
  }
  snprintf(hs->bound, sizeof(hs->bound), b[3] == 4 ? "[%s]:%d" : "%s:%d", a, port);
}

static int s5_reply(pk_proxy_hs *hs) {
  const unsigned char *b = (const unsigned char *)hs->buf;
  size_t total;
  if (b[0] != 5) return fail(hs, "SOCKS5 proxy sent a bad reply (version 0x%02x)", b[0]);
  if (hs->len < 2) return S5_MORE;
  hs->socks5_reply = b[1];
  if (b[1] != 0)
    return fail(hs, "SOCKS5 proxy: %s (reply %d)", pk_socks5_reply_text(b[1]), b[1]);
  if (hs->len < 4) return S5_MORE;
  if (b[3] != 1 && b[3] != 3 && b[3] != 4)
    return fail(hs, "SOCKS5 proxy sent a reply with unknown address type 0x%02x", b[3]);
  if (hs->len < 5) return S5_MORE;
  total = b[3] == 1 ? 10 : b[3] == 4 ? 22 : 7 + (size_t)b[4];
  if (hs->len < total) return S5_MORE;
  s5_bound(hs, total);
  hs->state = PK_PROXY_S_DONE;
  return PK_PROXY_DONE;
}

static int s5_recv(pk_proxy_hs *hs, const char *data, size_t n, size_t *used, char *out,
                   size_t outcap, size_t *outn) {
  size_t i = 0;
  while (i < n) {
    int r;
    hs->buf[hs->len++] = data[i++];
    if (hs->state == PK_PROXY_S_S5_METHOD) r = s5_method(hs, out, outcap, outn);
    else if (hs->state == PK_PROXY_S_S5_AUTH) r = s5_auth(hs, out, outcap, outn);
    else r = s5_reply(hs);
    if (r == PK_PROXY_DONE) {
      *used = i;
      return r;
    }
    if (r == PK_PROXY_ERROR) return r;
  }
  *used = n;
  return PK_PROXY_NEED_MORE;
}

int pk_proxy_recv(pk_proxy_hs *hs, const char *data, size_t n, size_t *used, char *out,
                  size_t outcap, size_t *outn) {
  int r;
  *used = 0;
  *outn = 0;
  switch (hs->state) {
    case PK_PROXY_S_DONE: return PK_PROXY_DONE;
    case PK_PROXY_S_ERROR: return PK_PROXY_ERROR;
    case PK_PROXY_S_IDLE: return fail(hs, "proxy handshake not started");
    case PK_PROXY_S_HTTP_HEAD: r = http_recv(hs, data, n, used); break;
    default: r = s5_recv(hs, data, n, used, out, outcap, outn); break;
  }
  if (r == PK_PROXY_ERROR) {
    if (*outn) wipe(out, *outn); /* e.g. the auth request of a failed step */
    *outn = 0;
  }
  return r;
}

int pk_proxy_eof(pk_proxy_hs *hs) {
  switch (hs->state) {
    case PK_PROXY_S_DONE: return PK_PROXY_DONE;
    case PK_PROXY_S_ERROR: return PK_PROXY_ERROR;
    case PK_PROXY_S_IDLE: return fail(hs, "proxy handshake not started");
    case PK_PROXY_S_HTTP_HEAD:
      return fail(hs, hs->len ? "HTTP proxy closed the connection in the middle of its answer"
                              : "HTTP proxy closed the connection without answering CONNECT");
    case PK_PROXY_S_S5_METHOD:
      return fail(hs, "SOCKS5 proxy closed the connection before choosing an "
                      "authentication method");
    case PK_PROXY_S_S5_AUTH:
      return fail(hs, "SOCKS5 proxy closed the connection during authentication "
                      "(wrong user or password?)");
    case PK_PROXY_S_S5_REPLY:
      return fail(hs, "SOCKS5 proxy closed the connection before answering CONNECT");
  }
  return fail(hs, "proxy handshake in a bad state");
}

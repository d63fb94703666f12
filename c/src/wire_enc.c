/* wire_enc.c - the encoders of the wire layer: every piece of PageKite
 * protocol text (chunk headers, handshakes, kite results) and the HTTP
 * answers we make up are written here and nowhere else.  No I/O, no
 * allocation: callers lend the memory (pk_wbuf), overflow is recorded. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

void pk_wbuf_init(pk_wbuf *b, char *p, size_t cap) {
  b->p = p;
  b->cap = cap;
  b->len = 0;
  b->overflow = 0;
  if (cap) p[0] = 0;
}

int pk_wbuf_ok(const pk_wbuf *b) { return !b->overflow; }

void pk_wbuf_put(pk_wbuf *b, const char *s, size_t n) {
  if (b->overflow || n >= b->cap - b->len) {
    b->overflow = 1;
    return;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void pk_wbuf_puts(pk_wbuf *b, const char *s) { pk_wbuf_put(b, s, strlen(s)); }

static void wbuf_vprintf(pk_wbuf *b, const char *fmt, va_list ap) {
  if (b->overflow) return;
  size_t room = b->cap - b->len;
  int n = vsnprintf(b->p + b->len, room, fmt, ap);
  if (n < 0 || (size_t)n >= room) {
    b->overflow = 1;
    if (b->cap) b->p[b->len] = 0;
    return;
  }
  b->len += (size_t)n;
}

static void wbuf_printf(pk_wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wbuf_printf(pk_wbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wbuf_vprintf(b, fmt, ap);
  va_end(ap);
}

/* A header line goes in whole or not at all, so a full buffer still holds
 * complete lines. */
void pk_wbuf_header(pk_wbuf *b, const char *name, const char *fmt, ...) {
  size_t before = b->len;
  wbuf_printf(b, "%s: ", name);
  va_list ap;
  va_start(ap, fmt);
  wbuf_vprintf(b, fmt, ap);
  va_end(ap);
  pk_wbuf_put(b, "\r\n", 2);
  if (b->overflow && b->cap) {
    b->len = before;
    b->p[before] = 0;
  }
}

void pk_wbuf_end(pk_wbuf *b) { pk_wbuf_put(b, "\r\n", 2); }

/* ---- chunk headers ---- */
int pk_wire_format_sid(char *out, size_t outsz, long long sid) {
  pk_wbuf b;
  pk_wbuf_init(&b, out, outsz);
  pk_wbuf_header(&b, "SID", "%lld", sid);
  pk_wbuf_end(&b);
  return pk_wbuf_ok(&b) ? (int)b.len : -1;
}

void pk_wire_stream_open(pk_wbuf *b, long long sid, const char *proto, const char *host, int port,
                         const char *rip, int rport, int rtls) {
  pk_wbuf_header(b, "SID", "%lld", sid);
  pk_wbuf_header(b, "Proto", "%s", proto);
  pk_wbuf_header(b, "Host", "%s", host);
  pk_wbuf_header(b, "Port", "%d", port);
  pk_wbuf_header(b, "RIP", "%s", rip);
  pk_wbuf_header(b, "RPort", "%d", rport);
  if (rtls) pk_wbuf_header(b, "RTLS", "1");
  pk_wbuf_end(b);
}

void pk_wire_eof(pk_wbuf *b, long long sid, const char *how) {
  pk_wbuf_header(b, "SID", "%lld", sid);
  pk_wbuf_header(b, "EOF", "1%s", how);
  pk_wbuf_end(b);
}

void pk_wire_noop(pk_wbuf *b, const char *lines, size_t n) {
  pk_wbuf_header(b, "NOOP", "1");
  pk_wbuf_put(b, lines, n);
  pk_wbuf_end(b);
}

void pk_wire_ping_line(pk_wbuf *b, double ts) { pk_wbuf_header(b, "PING", "%.3f", ts); }

void pk_wire_pong_line(pk_wbuf *b, pk_slice ts) {
  pk_wbuf_header(b, "PONG", "%.*s", (int)(ts.n < 64 ? ts.n : 64), ts.p ? ts.p : "");
}

void pk_wire_skb_lines(pk_wbuf *b, long long sid, unsigned long long kb) {
  pk_wbuf_header(b, "SID", "%lld", sid);
  pk_wbuf_header(b, "SKB", "%llu", kb);
}

int pk_wire_ws_header(unsigned char out[10], size_t len) {
  out[0] = 0x82; /* FIN + binary */
  if (len < 126) {
    out[1] = (unsigned char)len;
    return 2;
  }
  if (len < 65536) {
    out[1] = 126;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
  return 10;
}

int pk_wire_ws_pong_header(unsigned char out[2], size_t len) {
  out[0] = 0x8a;
  out[1] = (unsigned char)(len < 126 ? len : 0);
  return 2;
}

/* ---- tunnel handshake ---- */
void pk_wire_kite_line(pk_wbuf *b, const char *protoport, const char *name, const char *bsalt,
                       const char *token, const char *sign) {
  pk_wbuf_header(b, "X-PageKite", "%s:%s:%s:%s:%s", protoport, name, bsalt, token, sign);
}

void pk_wire_tunnel_request(pk_wbuf *b, const char *version, const char *replace_session) {
  pk_wbuf_puts(b, "CONNECT PageKite:1 HTTP/1.0\r\n");
  pk_wbuf_header(b, "X-PageKite-Features", "AddKites");
  pk_wbuf_header(b, "X-PageKite-Version", "%s", version);
  pk_wbuf_header(b, "X-PageKite-Features", "ZChunks");
  if (replace_session && *replace_session)
    pk_wbuf_header(b, "X-PageKite-Replace", "%s", replace_session);
}

static void url_put(pk_wbuf *b, const char *s);

void pk_wire_tunnel_features(pk_wbuf *b, int zchunks, const char *ports, const char *raw_ports) {
  if (zchunks) pk_wbuf_header(b, "X-PageKite-Features", "ZChunks");
  pk_wbuf_header(b, "X-PageKite-Features", "WebSockets");
  pk_wbuf_header(b, "X-PageKite-Features", "AddKites");
  pk_wbuf_header(b, "X-PageKite-Protos", "http, https, raw, websocket");
  pk_wbuf_header(b, "X-PageKite-Ports", "%s", ports);
  pk_wbuf_header(b, "X-PageKite-Raw-Ports", "%s", raw_ports);
}

void pk_wire_tunnel_session(pk_wbuf *b, const char *session_id, const char *motd) {
  pk_wbuf_header(b, "X-PageKite-SessionID", "%s", session_id);
  if (!motd || !*motd) return;
  pk_wbuf_puts(b, "X-PageKite-Misc: motd=");
  url_put(b, motd);
  pk_wbuf_end(b);
}

void pk_wire_kite_ok(pk_wbuf *b, const char *what) { pk_wbuf_header(b, "X-PageKite-OK", "%s", what); }

void pk_wire_kite_invalid(pk_wbuf *b, const char *what, const char *reason) {
  pk_wbuf_header(b, "X-PageKite-Invalid", "%s", what);
  pk_wbuf_header(b, "X-PageKite-Invalid-Why", "%s;%s", what, reason);
}

void pk_wire_kite_duplicate(pk_wbuf *b, const char *what) {
  pk_wbuf_header(b, "X-PageKite-Duplicate", "%s", what);
}

void pk_wire_kite_signthis(pk_wbuf *b, const char *what, const char *token) {
  pk_wbuf_header(b, "X-PageKite-SignThis", "%s:%s", what, token);
}

void pk_wire_tunnel_ok_head(pk_wbuf *b) {
  pk_wbuf_puts(b, "HTTP/1.1 200 OK\r\n");
  pk_wbuf_header(b, "Transfer-Encoding", "chunked");
}

void pk_wire_tunnel_ws_head(pk_wbuf *b, const char *accept) {
  pk_wbuf_puts(b, "HTTP/1.1 101 Switching Protocols\r\n");
  pk_wbuf_header(b, "Upgrade", "websocket");
  pk_wbuf_header(b, "Connection", "Upgrade");
  pk_wbuf_header(b, "Sec-WebSocket-Accept", "%s", accept);
  pk_wbuf_header(b, "Sec-WebSocket-Protocol", "v1.pagekite.org");
  pk_wbuf_end(b);
}

/* ---- HTTP answers ---- */
void pk_wire_http_response_head(pk_wbuf *b, int code, const char *reason, const char *ctype,
                                const char *extra, size_t content_length) {
  wbuf_printf(b, "HTTP/1.1 %d %s\r\n", code, reason);
  if (ctype) pk_wbuf_header(b, "Content-Type", "%s", ctype);
  pk_wbuf_header(b, "Content-Length", "%zu", content_length);
  pk_wbuf_header(b, "Connection", "close");
  pk_wbuf_puts(b, extra);
  pk_wbuf_end(b);
}

void pk_wire_http_response(pk_wbuf *b, int code, const char *reason, const char *ctype,
                           const char *extra, const char *body, size_t bn) {
  pk_wire_http_response_head(b, code, reason, ctype, extra, bn);
  pk_wbuf_put(b, body, bn);
}

void pk_wire_ping_reply(pk_wbuf *b, const char *uuid) {
  char extra[96];
  pk_wbuf e;
  pk_wbuf_init(&e, extra, sizeof(extra));
  pk_wbuf_header(&e, "X-PageKite-UUID", "%s", uuid);
  if (!pk_wbuf_ok(&e) || e.len >= sizeof(extra)) e.len = 0;
  extra[e.len] = 0;
  pk_wire_http_response(b, 503, "Unavailable", NULL, extra, "", 0);
}

void pk_wire_http_page(pk_wbuf *b, int code, const char *reason, const char *extra,
                       const char *html_title, const char *html_text, const char *host) {
  char body[768];
  int bl = snprintf(body, sizeof(body),
                    "<html><body><h1>%d %s</h1><p>%s <b>%.200s</b> %s</p></body></html>\n", code,
                    reason, html_title, host, html_text);
  if (bl < 0 || (size_t)bl >= sizeof(body)) bl = 0;
  pk_wire_http_response(b, code, reason, "text/html", extra, body, (size_t)bl);
}

/* Query-string encoding (RFC 3986 unreserved characters pass). */
static void url_put(pk_wbuf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~", *p)) {
      pk_wbuf_put(b, (const char *)p, 1);
    } else {
      char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      pk_wbuf_put(b, e, 3);
    }
  }
}

/* HTML text: the five special characters escaped. */
static void html_put(pk_wbuf *b, const char *s) {
  for (const char *p = s; p && *p; p++) {
    const char *e = *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '&' ? "&amp;"
                  : *p == '"' ? "&quot;" : *p == '\'' ? "&#39;" : NULL;
    if (e)
      pk_wbuf_puts(b, e);
    else
      pk_wbuf_put(b, p, 1);
  }
}

void pk_wire_rejection_page(pk_wbuf *b, const char *url, const char *where, const char *app,
                            const char *proto, const char *host, const char *relay_ip) {
  char body[2048];
  pk_wbuf h;
  pk_wbuf_init(&h, body, sizeof(body));
  pk_wbuf_puts(&h, "<html><frameset cols='*'><frame target='_top' src='");
  html_put(&h, url);
  pk_wbuf_puts(&h, strchr(url, '?') ? "&amp;where=" : "?&amp;where=");
  url_put(&h, where);
  const char *names[] = {"&amp;v=", "&amp;proto=", "&amp;domain=", "&amp;relay_ip="};
  const char *vals[] = {app, proto, host, relay_ip};
  for (int i = 0; i < 4; i++) {
    pk_wbuf_puts(&h, names[i]);
    url_put(&h, vals[i]);
  }
  pk_wbuf_puts(&h, "'><noframes><h1>Sorry! (");
  html_put(&h, where);
  pk_wbuf_puts(&h, ")</h1><p>The PageKite for <b>");
  html_put(&h, host);
  pk_wbuf_puts(&h, "</b> is unavailable at the moment.</p></noframes></frameset></html>\n");
  if (!pk_wbuf_ok(&h)) h.len = 0;
  pk_wire_http_response(b, 503, "Unavailable", "text/html",
                        "Cache-Control: no-cache\r\n", body, h.len);
}

void pk_wire_http_get_request(pk_wbuf *b, const char *path, pk_slice host, const char *version) {
  wbuf_printf(b, "GET %s HTTP/1.1\r\n", path);
  pk_wire_header_slice(b, (pk_slice){"Host", 4}, host);
  pk_wbuf_header(b, "User-Agent", "libpagekite/%s", version);
  pk_wbuf_header(b, "Connection", "close");
  pk_wbuf_end(b);
}

void pk_wire_header_slice(pk_wbuf *b, pk_slice name, pk_slice value) {
  pk_wbuf_put(b, name.p, name.n);
  pk_wbuf_put(b, ": ", 2);
  pk_wbuf_put(b, value.p, value.n);
  pk_wbuf_put(b, "\r\n", 2);
}

void pk_wire_http_status(pk_wbuf *b, const char *version, int code, const char *reason) {
  wbuf_printf(b, "%s %d %s\r\n\r\n", version, code, reason);
}

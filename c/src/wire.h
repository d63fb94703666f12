/* wire.h - the PageKite wire format as pure functions.
 *
 * No I/O, no globals, no allocation: every parser works on caller memory and
 * returns slices into it.  This is what the fuzzers target.
 */
#ifndef PK_WIRE_H
#define PK_WIRE_H

#include <stddef.h>

/* Errors (negative). */
#define PK_WIRE_NEED_MORE 0
#define PK_WIRE_EBAD (-1)     /* malformed */
#define PK_WIRE_ETOOBIG (-2)  /* a length/count bound was exceeded */

/* Longest frame header we accept: "ffffffffZffffffffR\r\n" */
#define PK_WIRE_FRAME_HDR_MAX 24
/* Header lines per chunk or HTTP head: a tunnel handshake carries one line
 * per kite, and its answer up to two (kiteauth.c checks this against
 * PK_MAX_KITES_PER_TUNNEL). */
#define PK_WIRE_MAX_HEADERS 160

typedef struct {
  const char *p;
  size_t n;
} pk_slice;

/* ---- chunk frames: "<hex len>[Z<hex zlen>][R]\r\n<wire bytes>" ---- */
typedef struct {
  size_t len;      /* payload length after decompression */
  size_t wire_len; /* bytes following the frame header on the wire */
  int compressed;  /* 'Z' seen: payload is zlib (sync-flushed) data */
  int reset;       /* 'R' seen: reset the inflater before this chunk */
  size_t hdr_len;  /* bytes of the frame header including CRLF */
} pk_frame;

/* Parse a frame header at buf[0..n).  Returns 1 and fills *out when complete,
 * PK_WIRE_NEED_MORE when more bytes are needed, PK_WIRE_EBAD on bad syntax
 * (non-hex, zero length, missing CR), PK_WIRE_ETOOBIG when len or wire_len
 * exceeds max_len. */
int pk_wire_parse_frame(const char *buf, size_t n, size_t max_len, pk_frame *out);

/* Write a frame header for a payload of len bytes (wire_len bytes on the wire
 * when compressed).  Returns bytes written (<= PK_WIRE_FRAME_HDR_MAX) or -1 if
 * outsz is too small. */
int pk_wire_format_frame(char *out, size_t outsz, size_t len, size_t wire_len, int compressed,
                         int reset);

/* ---- chunk headers ---- */
#define PK_CHUNK_HEADER_MAP(X) \
  X(SID, "SID")                \
  X(EOF, "EOF")                \
  X(NOOP, "NOOP")              \
  X(PING, "PING")              \
  X(PONG, "PONG")              \
  X(SKB, "SKB")                \
  X(SPD, "SPD")                \
  X(HOST, "Host")              \
  X(PROTO, "Proto")            \
  X(PORT, "Port")              \
  X(RIP, "RIP")                \
  X(RPORT, "RPort")            \
  X(RTLS, "RTLS")              \
  X(ZRST, "ZRST")              \
  X(QUOTA, "Quota")            \
  X(QDAYS, "QDays")            \
  X(QCONNS, "QConns")

typedef enum {
#define PK_CH_ENUM(id, name) PK_CH_##id,
  PK_CHUNK_HEADER_MAP(PK_CH_ENUM)
#undef PK_CH_ENUM
  PK_CH__COUNT
} pk_chunk_header_id;

/* Canonical header name for an id ("SID", "Host", ...). */
const char *pk_wire_chunk_header_name(pk_chunk_header_id id);

/* EOF flags */
#define PK_EOF_READ 1  /* 'R' */
#define PK_EOF_WRITE 2 /* 'W' */

typedef struct {
  pk_slice known[PK_CH__COUNT]; /* first value of each known header; p==NULL if absent */
  pk_slice names[PK_WIRE_MAX_HEADERS]; /* every header line, in order */
  pk_slice values[PK_WIRE_MAX_HEADERS];
  int nheaders;
  long long sid;  /* parsed SID, or -1 when absent */
  int eof;        /* 0 when no EOF header; else PK_EOF_* bits (both when "1" alone) */
  int noop;       /* NOOP header present */
  pk_slice data;  /* bytes after the blank line */
} pk_chunk;

/* Parse a (decompressed) chunk payload: header lines "Name: value\r\n" (bare
 * "\n" accepted), a blank line, then data.  Header names are matched
 * case-insensitively.  Returns 0 or PK_WIRE_EBAD (no blank line, line without
 * colon, bad SID number) / PK_WIRE_ETOOBIG (more than PK_WIRE_MAX_HEADERS). */
int pk_wire_parse_chunk(const char *buf, size_t n, pk_chunk *out);

/* First value of header `name` (case-insensitive) in a parsed chunk, or a
 * slice with p==NULL. */
pk_slice pk_wire_chunk_get(const pk_chunk *c, const char *name);

/* ---- HTTP heads (tunnel handshake request/response, relay first bytes) ---- */
typedef struct {
  pk_slice method, path, version; /* request line; for a response: version, code, reason */
  int is_response;
  int status;                     /* response status code */
  pk_slice names[PK_WIRE_MAX_HEADERS];
  pk_slice values[PK_WIRE_MAX_HEADERS];
  int nheaders;
  size_t head_len;                /* bytes up to and including the blank line */
} pk_http_head;

/* Parse an HTTP request or response head from buf[0..n).  Returns 1 when the
 * blank line was found (head_len set), PK_WIRE_NEED_MORE, PK_WIRE_EBAD, or
 * PK_WIRE_ETOOBIG when no blank line within max_len bytes or too many headers. */
int pk_wire_parse_http_head(const char *buf, size_t n, size_t max_len, pk_http_head *out);

/* Value of the idx-th header called name (case-insensitive), p==NULL if none. */
pk_slice pk_wire_http_get(const pk_http_head *h, const char *name, int idx);

/* ---- first bytes of a relay connection ---- */
#define PK_PEEK_UNKNOWN 0
#define PK_PEEK_HTTP 1
#define PK_PEEK_TLS 2

/* Classify the first bytes: a TLS record (0x16 0x03 ..) or an HTTP-looking
 * request line.  Returns PK_PEEK_* or PK_WIRE_NEED_MORE (-> 0 is UNKNOWN only
 * when n >= 3 and nothing matches; with n < 3 returns -3 meaning need more). */
#define PK_PEEK_NEED_MORE (-3)
int pk_wire_peek_kind(const unsigned char *buf, size_t n);

/* Extract the SNI host name from a TLS ClientHello at buf[0..n) into out
 * (NUL-terminated, lower-cased).  Returns 1 found, PK_WIRE_NEED_MORE when the
 * record is incomplete, PK_WIRE_EBAD when not a ClientHello or no SNI, or
 * PK_WIRE_ETOOBIG when the name does not fit outsz. */
int pk_wire_tls_sni(const unsigned char *buf, size_t n, char *out, size_t outsz);

/* ---- encoders (wire_enc.c): every byte of protocol text we send ---- */
/* An output buffer that records overflow instead of writing past its end:
 * build a message with the calls below, then check pk_wbuf_ok(). */
typedef struct {
  char *p;
  size_t cap, len;
  int overflow;
} pk_wbuf;

void pk_wbuf_init(pk_wbuf *b, char *p, size_t cap);
int pk_wbuf_ok(const pk_wbuf *b); /* 1 when nothing was cut */
void pk_wbuf_put(pk_wbuf *b, const char *s, size_t n);
void pk_wbuf_puts(pk_wbuf *b, const char *s);
/* "Name: value\r\n" with a printf-style value. */
void pk_wbuf_header(pk_wbuf *b, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pk_wbuf_end(pk_wbuf *b); /* the blank line that ends a header block */

/* Chunk header blocks (the part before the payload). */
/* "SID: <sid>\r\n\r\n": a data chunk.  Returns its length or -1. */
int pk_wire_format_sid(char *out, size_t outsz, long long sid);
/* A new stream, relay to connector: SID, Proto, Host, Port, RIP, RPort, RTLS. */
void pk_wire_stream_open(pk_wbuf *b, long long sid, const char *proto, const char *host, int port,
                         const char *rip, int rport, int rtls);
/* "SID: <sid>\r\nEOF: 1<how>\r\n\r\n" (how: "R", "W" or "WR"). */
void pk_wire_eof(pk_wbuf *b, long long sid, const char *how);
/* A NOOP chunk's header block around lines (already "Name: value\r\n"). */
void pk_wire_noop(pk_wbuf *b, const char *lines, size_t n);
/* NOOP lines: PING with a timestamp, the PONG that echoes one, SKB credit. */
void pk_wire_ping_line(pk_wbuf *b, double ts);
void pk_wire_pong_line(pk_wbuf *b, pk_slice ts);
void pk_wire_skb_lines(pk_wbuf *b, long long sid, unsigned long long kb);
/* Websocket frame header for a server-to-client binary frame of len bytes
 * (RFC 6455, unmasked).  Returns its length (2, 4 or 10). */
int pk_wire_ws_header(unsigned char out[10], size_t len);
/* The pong to a websocket ping (payload < 126 bytes). */
int pk_wire_ws_pong_header(unsigned char out[2], size_t len);

/* Tunnel handshake. */
/* "X-PageKite: proto:name:bsalt:token:sign" (token and sign may be ""). */
void pk_wire_kite_line(pk_wbuf *b, const char *protoport, const char *name, const char *bsalt,
                       const char *token, const char *sign);
/* The connector's request head up to its kite lines (end with pk_wbuf_end). */
void pk_wire_tunnel_request(pk_wbuf *b, const char *version, const char *replace_session);
/* The relay's answer: features, ports, then results (caller), session id. */
void pk_wire_tunnel_features(pk_wbuf *b, int zchunks, const char *ports, const char *raw_ports);
/* X-PageKite-SessionID, and X-PageKite-Misc: motd=... when motd is set. */
void pk_wire_tunnel_session(pk_wbuf *b, const char *session_id, const char *motd);
/* Kite results: what = "proto:name:bsalt"; reason for Invalid-Why. */
void pk_wire_kite_ok(pk_wbuf *b, const char *what);
void pk_wire_kite_invalid(pk_wbuf *b, const char *what, const char *reason);
void pk_wire_kite_duplicate(pk_wbuf *b, const char *what);
void pk_wire_kite_signthis(pk_wbuf *b, const char *what, const char *token);
/* "HTTP/1.1 200 OK" + chunked (plain form), or 101 with Sec-WebSocket-Accept. */
void pk_wire_tunnel_ok_head(pk_wbuf *b);
void pk_wire_tunnel_ws_head(pk_wbuf *b, const char *accept);

/* HTTP answers the relay and connector make up themselves. */
/* A complete response with a small HTML page naming host; extra is more
 * header lines ("Name: value\r\n") or "". */
void pk_wire_http_page(pk_wbuf *b, int code, const char *reason, const char *extra,
                       const char *html_title, const char *html_text, const char *host);
/* A response head: status line, Content-Type (unless ctype is NULL),
 * Content-Length, Connection: close, extra header lines ("Name: value\r\n"
 * or ""), the blank line. */
void pk_wire_http_response_head(pk_wbuf *b, int code, const char *reason, const char *ctype,
                                const char *extra, size_t content_length);
/* The relay's answer to a connector's /ping: 503 with X-PageKite-UUID. */
void pk_wire_ping_reply(pk_wbuf *b, const char *uuid);
/* A complete response: the head above, then the body. */
void pk_wire_http_response(pk_wbuf *b, int code, const char *reason, const char *ctype,
                           const char *extra, const char *body, size_t bn);
/* "GET path HTTP/1.1" with Host, User-Agent "libpagekite/<version>" and
 * Connection: close (DDNS updates). */
void pk_wire_http_get_request(pk_wbuf *b, const char *path, pk_slice host, const char *version);
/* "Name: value\r\n" from slices (header rewrites). */
void pk_wire_header_slice(pk_wbuf *b, pk_slice name, pk_slice value);
/* libpagekite's 503 page when an origin is down: a frameset loading
 * url?&where=WHERE&v=APP&proto=..&domain=HOST&relay_ip=.. (URL-encoded; the
 * page HTML-escaped), the text inside <noframes>. */
void pk_wire_rejection_page(pk_wbuf *b, const char *url, const char *where, const char *app,
                            const char *proto, const char *host, const char *relay_ip);
/* A bare status line and blank line ("HTTP/1.0 503 Unavailable"). */
void pk_wire_http_status(pk_wbuf *b, const char *version, int code, const char *reason);

/* Case-insensitive compare of a slice with a C string. */
int pk_slice_ieq(pk_slice s, const char *str);
/* Parse a decimal slice into *out; returns 0 or -1 on junk/overflow. */
int pk_slice_to_ll(pk_slice s, long long *out);

#endif

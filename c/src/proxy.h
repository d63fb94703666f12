/* proxy.h - the protocol half of outgoing proxies (HTTP CONNECT, SOCKS5),
 * fed with bytes.
 *
 * No sockets, no allocation, no globals: the owner connects to the proxy,
 * sends what pk_proxy_start() wrote, hands every byte the proxy sends to
 * pk_proxy_recv() and sends what that writes, until PK_PROXY_DONE (the
 * tunnel to the target is open) or PK_PROXY_ERROR (hs->why says why).
 * So the whole exchange is unit-tested and fuzzed with no file descriptor
 * (tests/c/test_proxy.c, tests/fuzz/fuzz_proxy.c).
 *
 * Proxy URLs:
 *   http://[user[:pass]@]host[:port][/]    HTTP CONNECT (RFC 9110 9.3.6)
 *   socks5://[user[:pass]@]host[:port][/]  SOCKS5 (RFC 1928), the caller
 *                                          resolves the target name
 *   socks5h://...                          SOCKS5, the proxy resolves it
 * The scheme is required and case-insensitive.  The port defaults to 1080
 * for every scheme, as in curl (CURLOPT_PROXYPORT, curl --proxy), so a URL
 * means the same proxy to both.  host is a name, an IPv4 address or an IPv6
 * address in brackets.  user and pass are percent-decoded (RFC 3986); user
 * with SOCKS5 is RFC 1929 username/password authentication, with HTTP it is
 * "Proxy-Authorization: Basic".  HTTPS proxies (TLS to the proxy) and SOCKS4
 * are not supported.
 *
 * Targets: with socks5:// a target name is an error (resolve it first and
 * pass the address); an address is sent as one with every scheme.  IPv6
 * targets may be given with or without brackets.
 *
 * Passwords: the handshake keeps a copy of the SOCKS5 credentials only until
 * the authentication request is written, and wipes it then and on
 * DONE/ERROR.  No text of ours ever contains the password (an HTTP proxy's
 * reason phrase is quoted, sanitized, as the proxy sent it).
 */
#ifndef PK_PROXY_H
#define PK_PROXY_H

#include <stddef.h>

/* pk_proxy_recv() results; DONE and ERROR are final. */
#define PK_PROXY_NEED_MORE 0
#define PK_PROXY_DONE 1
#define PK_PROXY_ERROR (-1)

#define PK_PROXY_DEFAULT_PORT 1080
#define PK_PROXY_HOST_MAX 255 /* host names and SOCKS5 domain names */
#define PK_PROXY_CRED_MAX 255 /* user and pass each (RFC 1929 ULEN / PLEN) */
#define PK_PROXY_HEAD_MAX 8192 /* an HTTP proxy's response head */
/* The most any one step writes (the HTTP CONNECT request with credentials);
 * an out buffer this big is always enough. */
#define PK_PROXY_OUT_MAX 1536

typedef enum { PK_PROXY_HTTP = 1, PK_PROXY_SOCKS5, PK_PROXY_SOCKS5H } pk_proxy_kind;

typedef struct {
  pk_proxy_kind kind;
  char host[PK_PROXY_HOST_MAX + 1]; /* IPv6 without brackets */
  int port;
  int has_user; /* user (and pass, maybe empty) were given */
  char user[PK_PROXY_CRED_MAX + 1];
  char pass[PK_PROXY_CRED_MAX + 1];
} pk_proxy;

/* Parse a proxy URL into *out.  Returns 0, or -1 with a message in
 * err[0..errn) ("unsupported proxy scheme 'ftp' (use http, socks5 or socks5h)",
 * "bad port '99999' in the proxy URL", ...; err may be NULL).  *out is zeroed
 * first, and again on failure. */
int pk_proxy_parse_url(const char *url, pk_proxy *out, char *err, size_t errn);

/* "http", "socks5" or "socks5h". */
const char *pk_proxy_scheme(pk_proxy_kind kind);

/* The URL for logs, password masked: "socks5h://joe:***@[::1]:1080".
 * Returns the length written (cut to fit outsz, always NUL-terminated). */
size_t pk_proxy_describe(const pk_proxy *p, char *out, size_t outsz);

/* SOCKS5 replies (RFC 1928 section 6): code, constant, text. */
#define PK_SOCKS5_REPLY_MAP(X)                          \
  X(0, SUCCEEDED, "succeeded")                          \
  X(1, GENERAL, "general SOCKS server failure")         \
  X(2, NOT_ALLOWED, "connection not allowed by ruleset") \
  X(3, NET_UNREACH, "network unreachable")              \
  X(4, HOST_UNREACH, "host unreachable")                \
  X(5, REFUSED, "connection refused by destination")    \
  X(6, TTL, "TTL expired")                              \
  X(7, COMMAND, "command not supported")                \
  X(8, ATYP, "address type not supported")

typedef enum {
#define PK_S5_ENUM(code, id, text) PK_SOCKS5_##id = code,
  PK_SOCKS5_REPLY_MAP(PK_S5_ENUM)
#undef PK_S5_ENUM
} pk_socks5_reply;

/* The text for a SOCKS5 reply code ("unassigned reply code" when unknown). */
const char *pk_socks5_reply_text(int code);

typedef enum {
  PK_PROXY_S_IDLE = 0, /* not started */
  PK_PROXY_S_HTTP_HEAD, /* reading the HTTP response head */
  PK_PROXY_S_S5_METHOD, /* SOCKS5: waiting for the method choice */
  PK_PROXY_S_S5_AUTH,   /* SOCKS5: waiting for the RFC 1929 status */
  PK_PROXY_S_S5_REPLY,  /* SOCKS5: waiting for the CONNECT reply */
  PK_PROXY_S_DONE,
  PK_PROXY_S_ERROR
} pk_proxy_state;

/* About 9 KiB (the response-head buffer): embed it, or keep it off small
 * stacks. */
typedef struct {
  pk_proxy_state state;
  pk_proxy_kind kind;
  int has_user;
  char user[PK_PROXY_CRED_MAX + 1]; /* SOCKS5 only, wiped once used */
  char pass[PK_PROXY_CRED_MAX + 1];
  unsigned char target[4 + 1 + PK_PROXY_HOST_MAX + 2]; /* SOCKS5 request */
  size_t target_len;
  char buf[PK_PROXY_HEAD_MAX]; /* the reply so far */
  size_t len;
  int http_status;   /* the HTTP proxy's status code, once read */
  int socks5_reply;  /* the SOCKS5 REP code, once read; -1 before */
  char bound[64 + PK_PROXY_HOST_MAX]; /* SOCKS5 BND.ADDR:BND.PORT on DONE */
  char why[192];     /* why it failed */
} pk_proxy_hs;

/* Begin a handshake with proxy p for target_host:target_port and write the
 * first bytes to send to out[0..outcap) (*outn = their length).  p and
 * target_host need not outlive the call.  Returns 0, or PK_PROXY_ERROR with
 * hs->why set ("bad target port", "socks5:// needs the target resolved ..."). */
int pk_proxy_start(pk_proxy_hs *hs, const pk_proxy *p, const char *target_host, int target_port,
                   char *out, size_t outcap, size_t *outn);

/* Bytes from the proxy.  Consumes a prefix (*used bytes) and may write bytes
 * to send to out[0..outcap) (*outn, 0 when none; send them before feeding
 * more).  The outcome depends only on the byte stream, never on how it was
 * cut into reads: a proxy that answers ahead of our request gets our next
 * two messages from one call (PK_PROXY_OUT_MAX still holds them).  Returns
 *   PK_PROXY_NEED_MORE  all n bytes were consumed (*used == n);
 *   PK_PROXY_DONE       the tunnel is open; data[*used..n) came from the
 *                       target through the tunnel and belongs to the caller;
 *   PK_PROXY_ERROR      hs->why says why ("proxy refused: HTTP 407 Proxy
 *                       Authentication Required", "SOCKS5 proxy: connection
 *                       refused by destination (reply 5)", ...); *used and
 *                       *outn are 0: close the connection.
 * Once DONE or ERROR, later calls return the same with *used = *outn = 0. */
int pk_proxy_recv(pk_proxy_hs *hs, const char *data, size_t n, size_t *used, char *out,
                  size_t outcap, size_t *outn);

/* The proxy closed the connection: unless DONE, the handshake fails with a
 * why that says at which step.  Returns PK_PROXY_DONE or PK_PROXY_ERROR. */
int pk_proxy_eof(pk_proxy_hs *hs);

/* Wipe the handshake (credentials included); it is IDLE after. */
void pk_proxy_hs_clear(pk_proxy_hs *hs);

#endif

/* test_proxy.c - outgoing proxy URLs and handshakes (proxy.c), no sockets.
 *
 * A handshake is a script: what we must send, then what the proxy answers,
 * step by step; the last answer may carry the target's first bytes, which
 * must be handed on.  Every script is run with each answer fed whole, a byte
 * at a time, and cut at every byte boundary, and every run must give the
 * same bytes out, the same result and the same text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "pk_test.h"

/* A string literal with its length: binary bytes with NULs welcome. */
#define B(lit) lit, sizeof(lit) - 1
#define NOTHING NULL, 0

static pk_proxy_hs hs; /* 9 KiB: not on the stack */
static char out[PK_PROXY_OUT_MAX];

/* ---- URL parsing ---- */

static pk_proxy parse_ok(const char *url) {
  pk_proxy p;
  char err[160] = "";
  int r = pk_proxy_parse_url(url, &p, err, sizeof(err));
  if (r != 0) fprintf(stderr, "unexpected error for %s: %s\n", url, err);
  CHECK_INT(r, 0);
  return p;
}

/* url must fail with an error starting with want. */
static void parse_bad(const char *url, const char *want) {
  pk_proxy p;
  char err[160] = "x";
  int r = pk_proxy_parse_url(url, &p, err, sizeof(err));
  CHECK_INT(r, -1);
  if (strncmp(err, want, strlen(want)) != 0)
    fprintf(stderr, "url %s: error \"%s\", wanted \"%s...\"\n", url ? url : "(null)", err, want);
  CHECK(strncmp(err, want, strlen(want)) == 0);
  CHECK(p.host[0] == '\0' && p.user[0] == '\0' && p.pass[0] == '\0' && p.port == 0);
}

TEST(url_schemes_and_ports) {
  pk_proxy p = parse_ok("http://proxy.example:3128");
  CHECK_INT(p.kind, PK_PROXY_HTTP);
  CHECK(strcmp(p.host, "proxy.example") == 0);
  CHECK_INT(p.port, 3128);
  CHECK_INT(p.has_user, 0);
  p = parse_ok("HTTP://proxy");
  CHECK_INT(p.kind, PK_PROXY_HTTP);
  CHECK_INT(p.port, 1080); /* curl's default for every non-HTTPS proxy */
  p = parse_ok("http://proxy:8080/");
  CHECK_INT(p.port, 8080);
  p = parse_ok("socks5://10.0.0.1:1081");
  CHECK_INT(p.kind, PK_PROXY_SOCKS5);
  CHECK(strcmp(p.host, "10.0.0.1") == 0);
  CHECK_INT(p.port, 1081);
  p = parse_ok("SOCKS5H://tor_gw-1.lan:9050");
  CHECK_INT(p.kind, PK_PROXY_SOCKS5H);
  CHECK(strcmp(p.host, "tor_gw-1.lan") == 0);
  p = parse_ok("socks5h://[::1]:9050");
  CHECK(strcmp(p.host, "::1") == 0);
  CHECK_INT(p.port, 9050);
  p = parse_ok("http://[2001:db8::1]");
  CHECK(strcmp(p.host, "2001:db8::1") == 0);
  CHECK_INT(p.port, 1080);
  p = parse_ok("http://h:00080");
  CHECK_INT(p.port, 80);
  p = parse_ok("http://h:65535");
  CHECK_INT(p.port, 65535);
}

TEST(url_userinfo) {
  pk_proxy p = parse_ok("http://joe:s%40cret%3a@proxy:3128");
  CHECK_INT(p.has_user, 1);
  CHECK(strcmp(p.user, "joe") == 0);
  CHECK(strcmp(p.pass, "s@cret:") == 0);
  CHECK(strcmp(p.host, "proxy") == 0);
  p = parse_ok("http://joe@proxy");
  CHECK_INT(p.has_user, 1);
  CHECK(strcmp(p.pass, "") == 0);
  p = parse_ok("socks5://j%20o:p:q@h"); /* the first ':' splits */
  CHECK(strcmp(p.user, "j o") == 0);
  CHECK(strcmp(p.pass, "p:q") == 0);
  p = parse_ok("http://u:p@ss@h:1"); /* the last '@' ends the userinfo */
  CHECK(strcmp(p.user, "u") == 0);
  CHECK(strcmp(p.pass, "p@ss") == 0);
  CHECK(strcmp(p.host, "h") == 0);
  p = parse_ok("socks5://a%3Ab:c@h"); /* ':' in a SOCKS5 user is fine */
  CHECK(strcmp(p.user, "a:b") == 0);
  p = parse_ok("socks5h://u:@[::1]:1");
  CHECK_INT(p.has_user, 1);
  CHECK(strcmp(p.pass, "") == 0);
}

TEST(url_credential_lengths) {
  static char url[1200];
  pk_proxy p;
  char u[300], pw[300];
  memset(u, 'u', 255);
  u[255] = '\0';
  memset(pw, 'p', 255);
  pw[255] = '\0';
  snprintf(url, sizeof(url), "socks5://%s:%s@h:1", u, pw);
  p = parse_ok(url);
  CHECK_INT(strlen(p.user), 255);
  CHECK_INT(strlen(p.pass), 255);
  /* 255 decoded bytes from 765 encoded ones */
  url[0] = '\0';
  strcat(url, "socks5://");
  for (int i = 0; i < 255; i++) strcat(url, "%41");
  strcat(url, "@h");
  p = parse_ok(url);
  CHECK_INT(strlen(p.user), 255);
  snprintf(url, sizeof(url), "socks5://%su:p@h:1", u);
  parse_bad(url, "the proxy user name is longer than 255 bytes");
  snprintf(url, sizeof(url), "socks5://u:%sp@h:1", pw);
  parse_bad(url, "the proxy password is longer than 255 bytes");
  char host[300];
  memset(host, 'h', 256);
  host[256] = '\0';
  snprintf(url, sizeof(url), "http://%s:1", host);
  parse_bad(url, "the proxy host name is longer than 255 bytes");
  host[255] = '\0';
  snprintf(url, sizeof(url), "http://%s:1", host);
  p = parse_ok(url);
  CHECK_INT(strlen(p.host), 255);
}

TEST(url_bad) {
  parse_bad("ftp://h", "unsupported proxy scheme 'ftp'");
  parse_bad("https://h:443", "unsupported proxy scheme 'https'");
  parse_bad("socks4://h", "unsupported proxy scheme 'socks4'");
  parse_bad("socks4a://h", "unsupported proxy scheme 'socks4a'");
  parse_bad("proxy:3128", "proxy URL needs a scheme");
  parse_bad("://h", "proxy URL needs a scheme");
  parse_bad("", "proxy URL needs a scheme");
  parse_bad(NULL, "no proxy URL");
  parse_bad("http://", "no host in the proxy URL");
  parse_bad("http://u:p@", "no host in the proxy URL");
  parse_bad("http://:8080", "no host in the proxy URL");
  parse_bad("http://h:", "bad port '' in the proxy URL");
  parse_bad("http://h:0", "bad port '0'");
  parse_bad("http://h:65536", "bad port '65536'");
  parse_bad("http://h:80a", "bad port '80a'");
  parse_bad("http://h:-1", "bad port '-1'");
  parse_bad("http://h:99999999999999999999", "bad port '99999999999999999999'");
  parse_bad("http://h: 80", "bad port ' 80'");
  parse_bad("http://[::1", "unclosed '[' in the proxy URL");
  parse_bad("http://[::g]:80", "bad IPv6 address '[::g]'");
  parse_bad("http://[]:80", "bad IPv6 address '[]'");
  parse_bad("http://[10.0.0.1]:80", "bad IPv6 address '[10.0.0.1]'");
  parse_bad("http://[fe80::1%25eth0]:80", "bad IPv6 address");
  parse_bad("http://[0000:0000:0000:0000:0000:0000:0000:0000:0001]", "bad IPv6 address");
  parse_bad("http://[::1]x", "junk after ']'");
  parse_bad("http://[::1]:", "bad port ''");
  parse_bad("http://::1:80", "an IPv6 proxy address must be in brackets");
  parse_bad("http://h/path", "the proxy URL must not have a path, query or fragment");
  parse_bad("http://h:80//", "the proxy URL must not have a path");
  parse_bad("http://h?x=1", "the proxy URL must not have a path");
  parse_bad("http://h#frag", "the proxy URL must not have a path");
  parse_bad("http://bad host", "bad proxy host 'bad host'");
  parse_bad("http://h\r\nX: y", "bad proxy host 'h??X'");
  parse_bad("http://:p@h", "empty user name in the proxy URL");
  parse_bad("http://@h", "empty user name in the proxy URL");
  parse_bad("http://u:%zz@h", "bad %-escape in the proxy password");
  parse_bad("http://u:%4@h", "bad %-escape in the proxy password");
  parse_bad("http://u:ab%@h", "bad %-escape in the proxy password");
  parse_bad("http://u%g1@h", "bad %-escape in the proxy user name");
  parse_bad("http://u%00:p@h", "the proxy user name contains a NUL byte");
  parse_bad("http://u:p%00@h", "the proxy password contains a NUL byte");
  parse_bad("http://a%3Ab:p@h", "the proxy user name contains ':'");
}

TEST(url_errors_never_show_the_password) {
  static const char *urls[] = {"http://u:hunter2@bad host", "http://u:hunter2@h:99999",
                               "http://u:hunter2@h/x", "http://u:hunter2@[::1",
                               "http://u:hunter2@::1:80", "http://u:hunter2%zz@h",
                               "ftp://u:hunter2@h"};
  for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
    pk_proxy p;
    char err[200];
    CHECK_INT(pk_proxy_parse_url(urls[i], &p, err, sizeof(err)), -1);
    CHECK(strstr(err, "hunter2") == NULL);
  }
}

TEST(url_error_buffers) {
  pk_proxy p;
  char small[8];
  CHECK_INT(pk_proxy_parse_url("ftp://h", &p, small, sizeof(small)), -1);
  CHECK(strcmp(small, "unsuppo") == 0);
  CHECK_INT(pk_proxy_parse_url("ftp://h", &p, NULL, 0), -1);
  CHECK_INT(pk_proxy_parse_url("http://h", &p, NULL, 0), 0);
}

TEST(url_describe) {
  char d[400];
  pk_proxy p = parse_ok("socks5h://joe:secret@[::1]");
  CHECK_INT(pk_proxy_describe(&p, d, sizeof(d)), strlen("socks5h://joe:***@[::1]:1080"));
  CHECK(strcmp(d, "socks5h://joe:***@[::1]:1080") == 0);
  p = parse_ok("HTTP://proxy:3128/");
  pk_proxy_describe(&p, d, sizeof(d));
  CHECK(strcmp(d, "http://proxy:3128") == 0);
  p = parse_ok("socks5://j%20o%2F@h");
  pk_proxy_describe(&p, d, sizeof(d));
  CHECK(strcmp(d, "socks5://j%20o%2F@h:1080") == 0);
  p = parse_ok("http://joe:secret@proxy");
  CHECK_INT(pk_proxy_describe(&p, d, 10), 9);
  CHECK(strcmp(d, "http://jo") == 0);
  CHECK_INT(pk_proxy_describe(&p, d, 1), 0);
  CHECK(strcmp(pk_proxy_scheme(PK_PROXY_SOCKS5), "socks5") == 0);
}

/* ---- the script runner ---- */

typedef struct {
  const char *send; /* what we must have sent before this answer */
  size_t sendn;
  const char *answer; /* the proxy's answer */
  size_t answern;
} step;

typedef struct {
  int result;
  char why[sizeof(hs.why)];
  char relay[256];
  size_t relayn;
  int sends_ok; /* every step's output was as scripted */
  int contract_ok; /* used <= n, NEED_MORE used everything, final stays final */
} outcome;

/* Feed answer i in pieces: at most `piece` bytes (0: whole), and cut once at
 * `cut` when i == cut_step.  Returns the recv result after the answer. */
static int feed_answer(const step *st, int i, size_t piece, int cut_step, size_t cut, outcome *o,
                       char *acc, size_t *accn) {
  size_t off = 0, used, outn;
  int r = PK_PROXY_NEED_MORE;
  while (off < st[i].answern) {
    size_t k = st[i].answern - off;
    if (piece && k > piece) k = piece;
    if (i == cut_step && off < cut && off + k > cut) k = cut - off;
    r = pk_proxy_recv(&hs, st[i].answer + off, k, &used, out, sizeof(out), &outn);
    if (used > k || outn > sizeof(out)) o->contract_ok = 0;
    if (r == PK_PROXY_ERROR && (outn != 0 || used != 0)) o->contract_ok = 0;
    memcpy(acc + *accn, out, outn);
    *accn += outn;
    if (r == PK_PROXY_DONE) {
      o->relayn = st[i].answern - off - used;
      memcpy(o->relay, st[i].answer + off + used, o->relayn);
    }
    if (r != PK_PROXY_NEED_MORE) return r;
    if (used != k) o->contract_ok = 0;
    off += k;
  }
  return r;
}

static void run_once(const pk_proxy *p, const char *host, int port, const step *st, int nst,
                     size_t piece, int cut_step, size_t cut, outcome *o) {
  static char acc[4096];
  size_t accn = 0, used, outn;
  int r, i;
  memset(o, 0, sizeof(*o));
  o->sends_ok = o->contract_ok = 1;
  r = pk_proxy_start(&hs, p, host, port, out, sizeof(out), &outn);
  if (r == 0 && (outn != st[0].sendn || memcmp(out, st[0].send, outn) != 0)) o->sends_ok = 0;
  for (i = 0; r == 0 && i < nst; i++) {
    accn = 0;
    r = feed_answer(st, i, piece, cut_step, cut, o, acc, &accn);
    if (r == PK_PROXY_NEED_MORE) {
      const step *next = i + 1 < nst ? &st[i + 1] : NULL;
      if (accn != (next ? next->sendn : 0) || (next && memcmp(acc, next->send, accn) != 0))
        o->sends_ok = 0;
    }
  }
  o->result = r;
  snprintf(o->why, sizeof(o->why), "%s", hs.why);
  if (r == PK_PROXY_DONE || r == PK_PROXY_ERROR) {
    /* final: more bytes change nothing */
    if (pk_proxy_recv(&hs, "x", 1, &used, out, sizeof(out), &outn) != r || used || outn)
      o->contract_ok = 0;
    if (pk_proxy_eof(&hs) != r) o->contract_ok = 0;
  }
}

static int same(const outcome *a, const outcome *b) {
  return a->result == b->result && strcmp(a->why, b->why) == 0 && a->relayn == b->relayn &&
         memcmp(a->relay, b->relay, a->relayn) == 0 && a->sends_ok == b->sends_ok;
}

/* Run the script whole, a byte at a time and cut at every byte of every
 * answer; each run must end with result, a why starting with why, and the
 * relay bytes handed on. */
static void script(const pk_proxy *p, const char *host, int port, const step *st, int nst,
                   int result, const char *why, const char *relay, size_t relayn) {
  outcome whole, o;
  int runs = 0, bad = 0;
  run_once(p, host, port, st, nst, 0, -1, 0, &whole);
  if (strncmp(whole.why, why, strlen(why)) != 0)
    fprintf(stderr, "why \"%s\", wanted \"%s...\"\n", whole.why, why);
  CHECK_INT(whole.result, result);
  CHECK(strncmp(whole.why, why, strlen(why)) == 0);
  CHECK(whole.sends_ok);
  CHECK(whole.contract_ok);
  CHECK_INT(whole.relayn, relayn);
  CHECK(whole.relayn == relayn && (relayn == 0 || memcmp(whole.relay, relay, relayn) == 0));
  run_once(p, host, port, st, nst, 1, -1, 0, &o);
  bad += !same(&o, &whole) || !o.contract_ok;
  runs++;
  for (int i = 0; i < nst; i++) {
    size_t stride = st[i].answern > 600 ? 97 : 1; /* big heads: cut at fewer places */
    for (size_t cut = 1; cut < st[i].answern; cut += stride) {
      run_once(p, host, port, st, nst, 0, i, cut, &o);
      if (!same(&o, &whole) || !o.contract_ok)
        fprintf(stderr, "answer %d cut at %zu: result %d why \"%s\"\n", i, cut, o.result, o.why);
      bad += !same(&o, &whole) || !o.contract_ok;
      runs++;
    }
  }
  CHECK_INT(bad, 0);
  CHECK(runs >= 1);
}

static pk_proxy proxy(const char *url) { return parse_ok(url); }

/* ---- HTTP CONNECT ---- */

TEST(http_no_auth) {
  pk_proxy p = proxy("http://proxy:3128");
  step st[] = {{B("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
                B("HTTP/1.1 200 Connection established\r\n\r\n")}};
  script(&p, "example.com", 443, st, 1, PK_PROXY_DONE, "", NOTHING);
  CHECK_INT(hs.http_status, 200);
}

TEST(http_relay_bytes_handed_on) {
  pk_proxy p = proxy("http://proxy:3128");
  step st[] = {{B("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
                B("HTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\nHTTP/1.1 101 \r\n\r\n\0tail")}};
  script(&p, "example.com", 443, st, 1, PK_PROXY_DONE, "", B("HTTP/1.1 101 \r\n\r\n\0tail"));
}

TEST(http_auth) {
  pk_proxy p = proxy("http://joe:secret@proxy:3128");
  step st[] = {{B("CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n"
                  "Proxy-Authorization: Basic am9lOnNlY3JldA==\r\n\r\n"),
                B("HTTP/1.1 200 OK\r\n\r\n")}};
  script(&p, "example.com", 80, st, 1, PK_PROXY_DONE, "", NOTHING);
  /* every base64 padding case, and a space in the password */
  p = proxy("http://a:@h");
  step s1[] = {{B("CONNECT t:1 HTTP/1.1\r\nHost: t:1\r\nProxy-Authorization: Basic YTo=\r\n\r\n"),
                B("HTTP/1.1 200 OK\r\n\r\n")}};
  script(&p, "t", 1, s1, 1, PK_PROXY_DONE, "", NOTHING);
  p = proxy("http://ab@h");
  step s2[] = {{B("CONNECT t:1 HTTP/1.1\r\nHost: t:1\r\nProxy-Authorization: Basic YWI6\r\n\r\n"),
                B("HTTP/1.1 200 OK\r\n\r\n")}};
  script(&p, "t", 1, s2, 1, PK_PROXY_DONE, "", NOTHING);
  p = proxy("http://Aladdin:open%20sesame@h");
  step s3[] = {{B("CONNECT t:1 HTTP/1.1\r\nHost: t:1\r\n"
                  "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"),
                B("HTTP/1.1 200 OK\r\n\r\n")}};
  script(&p, "t", 1, s3, 1, PK_PROXY_DONE, "", NOTHING);
}

TEST(http_ipv6_target) {
  pk_proxy p = proxy("http://[::1]:3128");
  step st[] = {{B("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"),
                B("HTTP/1.1 200 OK\r\n\r\n")}};
  script(&p, "2001:db8::1", 443, st, 1, PK_PROXY_DONE, "", NOTHING);
  script(&p, "[2001:db8::1]", 443, st, 1, PK_PROXY_DONE, "", NOTHING);
  step s4[] = {{B("CONNECT 192.0.2.1:443 HTTP/1.1\r\nHost: 192.0.2.1:443\r\n\r\n"),
                B("HTTP/1.1 200 OK\r\n\r\n")}};
  script(&p, "192.0.2.1", 443, s4, 1, PK_PROXY_DONE, "", NOTHING);
}

/* One answer to "CONNECT t:1" from a proxy without credentials. */
static void http_answer(const char *answer, size_t n, int result, const char *why) {
  pk_proxy p = proxy("http://h");
  step st[] = {{B("CONNECT t:1 HTTP/1.1\r\nHost: t:1\r\n\r\n"), answer, n}};
  script(&p, "t", 1, st, 1, result, why, NOTHING);
}

TEST(http_status_codes) {
  http_answer(B("HTTP/1.1 200\r\n\r\n"), PK_PROXY_DONE, "");
  http_answer(B("HTTP/1.1 204 No Content\r\n\r\n"), PK_PROXY_DONE, "");
  http_answer(B("HTTP/1.1 299 Odd\r\nContent-Length: 5\r\n\r\n"), PK_PROXY_DONE, "");
  http_answer(B("HTTP/1.0 200 OK\n\n"), PK_PROXY_DONE, "");
  http_answer(B("HTTP/1.0 200 OK\nA: b\n\r\n"), PK_PROXY_DONE, "");
  http_answer(B("HTTP/1.1 407 Proxy Authentication Required\r\n"
                "Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n<html>"),
              PK_PROXY_ERROR,
              "proxy refused: HTTP 407 Proxy Authentication Required (the proxy wants a user "
              "and password)");
  http_answer(B("HTTP/1.1 403 Forbidden\r\n\r\n"), PK_PROXY_ERROR,
              "proxy refused: HTTP 403 Forbidden");
  CHECK(strcmp(hs.why, "proxy refused: HTTP 403 Forbidden") == 0);
  CHECK_INT(hs.http_status, 403);
  http_answer(B("HTTP/1.1 502\r\n\r\n"), PK_PROXY_ERROR, "proxy refused: HTTP 502");
  CHECK(strcmp(hs.why, "proxy refused: HTTP 502") == 0);
  http_answer(B("HTTP/1.1 100 Continue\r\n\r\n"), PK_PROXY_ERROR, "proxy refused: HTTP 100");
  http_answer(B("HTTP/1.1 300 Multiple\r\n\r\n"), PK_PROXY_ERROR, "proxy refused: HTTP 300");
  http_answer(B("HTTP/1.1 403 Bad\x01Thing\r\n\r\n"), PK_PROXY_ERROR,
              "proxy refused: HTTP 403 Bad?Thing");
}

TEST(http_407_with_credentials) {
  pk_proxy p = proxy("http://joe:secret@h");
  step st[] = {{B("CONNECT t:1 HTTP/1.1\r\nHost: t:1\r\n"
                  "Proxy-Authorization: Basic am9lOnNlY3JldA==\r\n\r\n"),
                B("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")}};
  script(&p, "t", 1, st, 1, PK_PROXY_ERROR,
         "proxy refused: HTTP 407 Proxy Authentication Required (wrong user or password?)",
         NOTHING);
  CHECK(strstr(hs.why, "secret") == NULL);
  /* tinyproxy 1.11 answers a wrong password with 401 */
  st[0].answer = "HTTP/1.0 401 Unauthorized\r\nServer: tinyproxy/1.11.1\r\n\r\n";
  st[0].answern = strlen(st[0].answer);
  script(&p, "t", 1, st, 1, PK_PROXY_ERROR,
         "proxy refused: HTTP 401 Unauthorized (wrong user or password?)", NOTHING);
  p = proxy("http://h");
  st[0].send = "CONNECT t:1 HTTP/1.1\r\nHost: t:1\r\n\r\n";
  st[0].sendn = strlen(st[0].send);
  script(&p, "t", 1, st, 1, PK_PROXY_ERROR, "proxy refused: HTTP 401 Unauthorized", NOTHING);
  CHECK(strcmp(hs.why, "proxy refused: HTTP 401 Unauthorized") == 0);
}

TEST(http_bad_answers) {
  http_answer(B("\x05\x00"), PK_PROXY_ERROR,
              "HTTP proxy: the answer does not start with 'HTTP/' (not an HTTP proxy?)");
  http_answer(B("HTTX/1.1 200 OK\r\n\r\n"), PK_PROXY_ERROR, "HTTP proxy: the answer does not");
  http_answer(B("http/1.1 200 OK\r\n\r\n"), PK_PROXY_ERROR, "HTTP proxy: the answer does not");
  http_answer(B("HTTP/1.1 2x0 OK\r\n\r\n"), PK_PROXY_ERROR, "HTTP proxy sent a bad status line");
  http_answer(B("HTTP/1.1\r\n\r\n"), PK_PROXY_ERROR, "HTTP proxy sent a bad status line");
  http_answer(B("HTTP/1.1 20\r\n\r\n"), PK_PROXY_ERROR, "HTTP proxy sent a bad status line");
  http_answer(B("HTTP/1.1 2000 OK\r\n\r\n"), PK_PROXY_ERROR, "HTTP proxy sent a bad status line");
  http_answer(B("HTTP/1.1.1.1.1.1.1.1.1 200 OK\r\n\r\n"), PK_PROXY_ERROR,
              "HTTP proxy sent a bad status line");
  http_answer(B("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"), PK_PROXY_ERROR,
              "HTTP proxy sent a NUL byte in its response head");
}

TEST(http_head_bound) {
  static char big[PK_PROXY_HEAD_MAX + 64];
  const char *first = "HTTP/1.1 200 OK\r\nX: ";
  size_t n;
  /* exactly PK_PROXY_HEAD_MAX bytes: fine */
  n = strlen(first);
  memcpy(big, first, n);
  memset(big + n, 'a', PK_PROXY_HEAD_MAX - n - 4);
  memcpy(big + PK_PROXY_HEAD_MAX - 4, "\r\n\r\nZ", 5);
  http_answer(big, PK_PROXY_HEAD_MAX, PK_PROXY_DONE, "");
  /* one more byte: too big, even though it would end right there */
  memset(big + n, 'a', PK_PROXY_HEAD_MAX - n - 3);
  memcpy(big + PK_PROXY_HEAD_MAX - 3, "\r\n\r\n", 4);
  http_answer(big, PK_PROXY_HEAD_MAX + 1, PK_PROXY_ERROR,
              "HTTP proxy: response head larger than 8192 bytes");
  /* and a stream that never ends its head stops at the bound */
  memset(big + n, 'a', sizeof(big) - n);
  http_answer(big, sizeof(big), PK_PROXY_ERROR, "HTTP proxy: response head larger than 8192");
}

TEST(http_eof) {
  pk_proxy p = proxy("http://h");
  size_t outn, used;
  CHECK_INT(pk_proxy_start(&hs, &p, "t", 1, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "HTTP proxy closed the connection without answering CONNECT") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "t", 1, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, "HTTP/1.1 200", 12, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK_INT(used, 12);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "HTTP proxy closed the connection in the middle of its answer") == 0);
}

/* ---- start errors ---- */

TEST(start_errors) {
  pk_proxy p = proxy("socks5h://h");
  size_t outn = 99;
  char long_host[300];
  CHECK_INT(pk_proxy_start(&hs, &p, "t", 0, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "bad target port 0") == 0);
  CHECK_INT(outn, 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "t", 65536, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "bad target port 65536") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "", 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "no target host") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "[]", 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK_INT(pk_proxy_start(&hs, &p, NULL, 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  p = proxy("http://h");
  CHECK_INT(pk_proxy_start(&hs, &p, "t\r\nX-Evil: 1", 1, out, sizeof(out), &outn),
            PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "bad target host 't??X-Evil: 1'") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "a b", 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  memset(long_host, 'a', 256);
  long_host[256] = '\0';
  CHECK_INT(pk_proxy_start(&hs, &p, long_host, 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "the target host name is longer than 255 bytes") == 0);
  long_host[255] = '\0';
  CHECK_INT(pk_proxy_start(&hs, &p, long_host, 1, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "t", 1, out, 20, &outn), PK_PROXY_ERROR);
  CHECK(strncmp(hs.why, "output buffer too small (20 bytes)", 34) == 0);
  CHECK_INT(pk_proxy_start(&hs, NULL, "t", 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  p = proxy("socks5://h");
  CHECK_INT(pk_proxy_start(&hs, &p, "example.com", 1, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "socks5:// needs the target 'example.com' resolved to an address first "
                       "(socks5h:// lets the proxy resolve it)") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "10.1.2.3", 1, out, 3, &outn), PK_PROXY_ERROR);
  CHECK(strncmp(hs.why, "output buffer too small", 23) == 0);
}

TEST(recv_before_start) {
  size_t used = 7, outn = 7;
  pk_proxy_hs_clear(&hs);
  CHECK_INT(pk_proxy_recv(&hs, "x", 1, &used, out, sizeof(out), &outn), PK_PROXY_ERROR);
  CHECK_INT(used, 0);
  CHECK_INT(outn, 0);
  CHECK(strcmp(hs.why, "proxy handshake not started") == 0);
  pk_proxy_hs_clear(&hs);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
}

/* ---- SOCKS5 ---- */

#define GREET_ANON "\x05\x01\x00"
#define GREET_USER "\x05\x02\x00\x02"
/* CONNECT 10.0.0.1:443 */
#define REQ_V4 "\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb"
/* succeeded, bound to 127.0.0.1:1080 */
#define REP_V4 "\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"

TEST(socks5_no_auth_ipv4) {
  pk_proxy p = proxy("socks5://h");
  step st[] = {{B(GREET_ANON), B("\x05\x00")}, {B(REQ_V4), B(REP_V4)}};
  script(&p, "10.0.0.1", 443, st, 2, PK_PROXY_DONE, "", NOTHING);
  CHECK(strcmp(hs.bound, "127.0.0.1:1080") == 0);
  CHECK_INT(hs.socks5_reply, 0);
  /* socks5h sends an address as an address too */
  p = proxy("socks5h://h");
  script(&p, "10.0.0.1", 443, st, 2, PK_PROXY_DONE, "", NOTHING);
}

TEST(socks5h_domain) {
  pk_proxy p = proxy("socks5h://h");
  step st[] = {{B(GREET_ANON), B("\x05\x00")},
               {B("\x05\x01\x00\x03\x0b" "example.com" "\x00\x50"),
                B("\x05\x00\x00\x03\x09" "proxy.lan" "\x1f\x90" "GET / HTTP/1.1\r\n")}};
  script(&p, "example.com", 80, st, 2, PK_PROXY_DONE, "", B("GET / HTTP/1.1\r\n"));
  CHECK(strcmp(hs.bound, "proxy.lan:8080") == 0);
  /* a 255-byte name, and an empty BND.ADDR name */
  static char name[256], req[300];
  memset(name, 'n', 255);
  memcpy(req, "\x05\x01\x00\x03\xff", 5);
  memcpy(req + 5, name, 255);
  memcpy(req + 260, "\x00\x50", 2);
  step s2[] = {{B(GREET_ANON), B("\x05\x00")},
               {req, 262, B("\x05\x00\x00\x03\x00\x00\x00")}};
  script(&p, name, 80, s2, 2, PK_PROXY_DONE, "", NOTHING);
  CHECK(strcmp(hs.bound, ":0") == 0);
}

TEST(socks5_ipv6) {
  pk_proxy p = proxy("socks5://[::1]:1080");
  step st[] = {{B(GREET_ANON), B("\x05\x00")},
               {B("\x05\x01\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x01\xbb"),
                B("\x05\x00\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02\x04\x38\x16\x03")}};
  script(&p, "2001:db8::1", 443, st, 2, PK_PROXY_DONE, "", B("\x16\x03"));
  CHECK(strcmp(hs.bound, "[2001:db8::2]:1080") == 0);
  script(&p, "[2001:db8::1]", 443, st, 2, PK_PROXY_DONE, "", B("\x16\x03"));
}

TEST(socks5_auth) {
  pk_proxy p = proxy("socks5://joe:secret@h");
  step st[] = {{B(GREET_USER), B("\x05\x02")},
               {B("\x01\x03joe\x06secret"), B("\x01\x00")},
               {B(REQ_V4), B(REP_V4 "relay")}};
  script(&p, "10.0.0.1", 443, st, 3, PK_PROXY_DONE, "", B("relay"));
  /* some servers answer the RFC 1929 request with version 5 */
  step s2[] = {{B(GREET_USER), B("\x05\x02")},
               {B("\x01\x03joe\x06secret"), B("\x05\x00")},
               {B(REQ_V4), B(REP_V4)}};
  script(&p, "10.0.0.1", 443, s2, 3, PK_PROXY_DONE, "", NOTHING);
  /* the proxy may choose no authentication even when we have a user */
  step s3[] = {{B(GREET_USER), B("\x05\x00")}, {B(REQ_V4), B(REP_V4)}};
  script(&p, "10.0.0.1", 443, s3, 2, PK_PROXY_DONE, "", NOTHING);
  /* an empty password */
  p = proxy("socks5://joe@h");
  step s4[] = {{B(GREET_USER), B("\x05\x02")},
               {B("\x01\x03joe\x00"), B("\x01\x00")},
               {B(REQ_V4), B(REP_V4)}};
  script(&p, "10.0.0.1", 443, s4, 3, PK_PROXY_DONE, "", NOTHING);
}

TEST(socks5_auth_failures) {
  pk_proxy anon = proxy("socks5://h"), joe = proxy("socks5://joe:secret@h");
  step s1[] = {{B(GREET_ANON), B("\x05\x02")}};
  script(&anon, "10.0.0.1", 443, s1, 1, PK_PROXY_ERROR,
         "SOCKS5 proxy wants authentication but no user given", NOTHING);
  step s2[] = {{B(GREET_ANON), B("\x05\xff")}};
  script(&anon, "10.0.0.1", 443, s2, 1, PK_PROXY_ERROR,
         "SOCKS5 proxy wants authentication but no user given", NOTHING);
  step s3[] = {{B(GREET_USER), B("\x05\xff")}};
  script(&joe, "10.0.0.1", 443, s3, 1, PK_PROXY_ERROR,
         "SOCKS5 proxy accepts none of our authentication methods (none, user/password)",
         NOTHING);
  step s4[] = {{B(GREET_USER), B("\x05\x01")}};
  script(&joe, "10.0.0.1", 443, s4, 1, PK_PROXY_ERROR,
         "SOCKS5 proxy chose authentication method 0x01, which was not offered", NOTHING);
  step s5[] = {{B(GREET_USER), B("\x05\x02")}, {B("\x01\x03joe\x06secret"), B("\x01\x01")}};
  script(&joe, "10.0.0.1", 443, s5, 2, PK_PROXY_ERROR,
         "SOCKS5 proxy: authentication failed (wrong user or password?)", NOTHING);
  step s6[] = {{B(GREET_USER), B("\x05\x02")}, {B("\x01\x03joe\x06secret"), B("\x02\x00")}};
  script(&joe, "10.0.0.1", 443, s6, 2, PK_PROXY_ERROR,
         "SOCKS5 proxy sent a bad authentication reply (version 0x02)", NOTHING);
  CHECK(strstr(hs.why, "secret") == NULL);
}

/* The CONNECT reply with REP = code must fail with text. */
static void socks5_reply_code(int code, const char *text) {
  pk_proxy p = proxy("socks5://h");
  char rep[10], why[120];
  memcpy(rep, REP_V4, 10);
  rep[1] = (char)code;
  step st[] = {{B(GREET_ANON), B("\x05\x00")}, {B(REQ_V4), rep, 10}};
  snprintf(why, sizeof(why), "SOCKS5 proxy: %s (reply %d)", text, code);
  script(&p, "10.0.0.1", 443, st, 2, PK_PROXY_ERROR, why, NOTHING);
  CHECK(strcmp(hs.why, why) == 0);
  CHECK_INT(hs.socks5_reply, code);
  CHECK(strcmp(pk_socks5_reply_text(code), text) == 0);
}

TEST(socks5_reply_codes) {
  socks5_reply_code(1, "general SOCKS server failure");
  socks5_reply_code(2, "connection not allowed by ruleset");
  socks5_reply_code(3, "network unreachable");
  socks5_reply_code(4, "host unreachable");
  socks5_reply_code(5, "connection refused by destination");
  socks5_reply_code(6, "TTL expired");
  socks5_reply_code(7, "command not supported");
  socks5_reply_code(8, "address type not supported");
  socks5_reply_code(9, "unassigned reply code");
  socks5_reply_code(255, "unassigned reply code");
  CHECK(strcmp(pk_socks5_reply_text(PK_SOCKS5_SUCCEEDED), "succeeded") == 0);
  CHECK(strcmp(pk_socks5_reply_text(-1), "unassigned reply code") == 0);
}

TEST(socks5_bad_answers) {
  pk_proxy p = proxy("socks5://h");
  step s1[] = {{B(GREET_ANON), B("HTTP/1.1 400 Bad Request\r\n\r\n")}};
  script(&p, "10.0.0.1", 443, s1, 1, PK_PROXY_ERROR,
         "not a SOCKS5 proxy: it answered with version byte 0x48 (an HTTP proxy? use http://)",
         NOTHING);
  step s2[] = {{B(GREET_ANON), B("\x04\x5a")}};
  script(&p, "10.0.0.1", 443, s2, 1, PK_PROXY_ERROR,
         "not a SOCKS5 proxy: it answered with version byte 0x04", NOTHING);
  CHECK(strcmp(hs.why, "not a SOCKS5 proxy: it answered with version byte 0x04") == 0);
  step s3[] = {{B(GREET_ANON), B("\x05\x00")}, {B(REQ_V4), B("\x04\x00\x00\x01")}};
  script(&p, "10.0.0.1", 443, s3, 2, PK_PROXY_ERROR,
         "SOCKS5 proxy sent a bad reply (version 0x04)", NOTHING);
  step s4[] = {{B(GREET_ANON), B("\x05\x00")}, {B(REQ_V4), B("\x05\x00\x00\x02\x00\x00")}};
  script(&p, "10.0.0.1", 443, s4, 2, PK_PROXY_ERROR,
         "SOCKS5 proxy sent a reply with unknown address type 0x02", NOTHING);
}

/* A proxy that answers ahead of our requests: the outcome depends on the
 * byte stream only, not on how it is cut into reads.  Whole, our two
 * messages come out of one call. */
TEST(socks5_answers_ahead) {
  pk_proxy p = proxy("socks5://joe:secret@h");
  size_t outn, used;
  static const char all[] = "\x05\x02\x01\x00" REP_V4 "x";
  step st[] = {{B(GREET_USER), B("\x05\x02\x01\x00" REP_V4 "x")}};
  script(&p, "10.0.0.1", 443, st, 1, PK_PROXY_DONE, "", B("x"));
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, all, sizeof(all) - 1, &used, out, sizeof(out), &outn),
            PK_PROXY_DONE);
  CHECK_INT(used, sizeof(all) - 2);
  CHECK_INT(outn, 12 + 10);
  CHECK(memcmp(out, "\x01\x03joe\x06secret" REQ_V4, 22) == 0);
  /* the buffer must hold both: the check counts what is already in it */
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, all, sizeof(all) - 1, &used, out, 20, &outn), PK_PROXY_ERROR);
  CHECK_INT(outn, 0);
  CHECK(strcmp(hs.why, "output buffer too small (20 bytes, 22 needed)") == 0);
}

TEST(socks5_eof) {
  pk_proxy p = proxy("socks5://joe:pw@h");
  size_t outn, used;
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 1, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "SOCKS5 proxy closed the connection before choosing an authentication "
                       "method") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 1, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x02", 2, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "SOCKS5 proxy closed the connection during authentication (wrong user "
                       "or password?)") == 0);
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 1, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x00", 2, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x00\x00", 3, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
  CHECK(strcmp(hs.why, "SOCKS5 proxy closed the connection before answering CONNECT") == 0);
}

static int all_zero(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

TEST(socks5_credentials_wiped) {
  pk_proxy p = proxy("socks5://joe:secret@h");
  size_t outn, used;
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK(strcmp(hs.pass, "secret") == 0); /* needed until the proxy asks */
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x02", 2, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK_INT(outn, 12);
  CHECK(all_zero(hs.user, sizeof(hs.user)) && all_zero(hs.pass, sizeof(hs.pass)));
  /* no auth chosen: wiped as well */
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x00", 2, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK(all_zero(hs.pass, sizeof(hs.pass)));
  /* an error: wiped */
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_eof(&hs), PK_PROXY_ERROR);
  CHECK(all_zero(hs.pass, sizeof(hs.pass)));
  /* clear wipes everything */
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  pk_proxy_hs_clear(&hs);
  CHECK(all_zero(hs.pass, sizeof(hs.pass)));
  CHECK_INT(hs.state, PK_PROXY_S_IDLE);
}

TEST(socks5_longest_credentials) {
  static char url[700];
  char u[256], pw[256];
  size_t outn, used;
  memset(u, 'u', 255);
  u[255] = '\0';
  memset(pw, 'p', 255);
  pw[255] = '\0';
  snprintf(url, sizeof(url), "socks5://%s:%s@h", u, pw);
  pk_proxy p = proxy(url);
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x02", 2, &used, out, sizeof(out), &outn),
            PK_PROXY_NEED_MORE);
  CHECK_INT(outn, 513);
  CHECK(out[0] == 1 && (unsigned char)out[1] == 255 && (unsigned char)out[257] == 255);
  CHECK(memcmp(out + 2, u, 255) == 0 && memcmp(out + 258, pw, 255) == 0);
  /* too small a buffer for it: an error, and nothing half-written to send */
  CHECK_INT(pk_proxy_start(&hs, &p, "10.0.0.1", 443, out, sizeof(out), &outn), 0);
  CHECK_INT(pk_proxy_recv(&hs, "\x05\x02", 2, &used, out, 512, &outn), PK_PROXY_ERROR);
  CHECK_INT(outn, 0);
  CHECK(strcmp(hs.why, "output buffer too small (512 bytes, 513 needed)") == 0);
  /* the HTTP request with the longest credentials fits PK_PROXY_OUT_MAX */
  char host[256];
  memset(host, 'h', 255);
  host[255] = '\0';
  snprintf(url, sizeof(url), "http://%s:%s@h", u, pw);
  p = proxy(url);
  CHECK_INT(pk_proxy_start(&hs, &p, host, 65535, out, sizeof(out), &outn), 0);
  CHECK(outn > 1200 && outn < sizeof(out));
}

int main(void) {
  RUN(url_schemes_and_ports);
  RUN(url_userinfo);
  RUN(url_credential_lengths);
  RUN(url_bad);
  RUN(url_errors_never_show_the_password);
  RUN(url_error_buffers);
  RUN(url_describe);
  RUN(http_no_auth);
  RUN(http_relay_bytes_handed_on);
  RUN(http_auth);
  RUN(http_ipv6_target);
  RUN(http_status_codes);
  RUN(http_407_with_credentials);
  RUN(http_bad_answers);
  RUN(http_head_bound);
  RUN(http_eof);
  RUN(start_errors);
  RUN(recv_before_start);
  RUN(socks5_no_auth_ipv4);
  RUN(socks5h_domain);
  RUN(socks5_ipv6);
  RUN(socks5_auth);
  RUN(socks5_auth_failures);
  RUN(socks5_reply_codes);
  RUN(socks5_bad_answers);
  RUN(socks5_answers_ahead);
  RUN(socks5_eof);
  RUN(socks5_credentials_wiped);
  RUN(socks5_longest_credentials);
  return TEST_DONE();
}

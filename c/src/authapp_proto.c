/* authapp_proto.c - the auth app protocol's bytes (authapp_proto.h). */
#include "authapp_proto.h"
#include "authdns.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Clears memory that held an answer (it may hold a secret), in a way the
 * compiler cannot drop as a dead store. */
static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
}

/* ---- capabilities ---- */
static int word_is(const char *w, size_t wl, const char *cap) {
  size_t cl = strlen(cap);
  if (wl != cl) return 0;
  for (size_t i = 0; i < wl; i++) {
    char c = w[i];
    if (c >= 'a' && c <= 'z') c = (char)(c - 32);
    if (c != cap[i]) return 0;
  }
  return 1;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int pk_authapp_caps(const char *out, size_t n) {
  int caps = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && is_space(out[i])) i++;
    size_t s = i;
    while (i < n && !is_space(out[i])) i++;
    if (i == s) break;
    if (word_is(out + s, i - s, "SERVER")) caps |= PK_AUTHAPP_CAP_SERVER;
    if (word_is(out + s, i - s, "AUTH")) caps |= PK_AUTHAPP_CAP_AUTH;
    if (word_is(out + s, i - s, "ZK-AUTH")) caps |= PK_AUTHAPP_CAP_ZK;
  }
  return caps;
}

/* ---- queries ---- */

int pk_authapp_arg(int zk, const char *bsalt, const char *token, const char *sign,
                   const char *protoport, const char *name, const char *app, char *out, size_t n) {
  size_t o = 0;
  if (!n) return -1;
  out[0] = 0;
  if (!zk) {
    if (pk_authdns_put(out, n, &o, name, 1) != 0) return -1;
  } else {
    if (pk_authdns_join(bsalt, token, sign, protoport, name, app, out, n) != 0) return -1;
    o = strlen(out);
  }
  if (!o || out[0] == '-') return -1; /* never read as an option by the app */
  for (size_t i = 0; i < o; i++)
    if ((unsigned char)out[i] < 0x21 || (unsigned char)out[i] > 0x7e) return -1;
  return 0;
}

/* ---- JSON ---- */
typedef struct {
  const char *p, *e;
  const char *why;
} jrd;

static void ws(jrd *r) {
  while (r->p < r->e && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int fail(jrd *r, const char *why) {
  if (!r->why) r->why = why;
  return -1;
}

static int hex4(jrd *r, unsigned *v) {
  if (r->e - r->p < 4) return fail(r, "a \\u escape is cut short");
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *r->p++;
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (d < 0) return fail(r, "a \\u escape is not hex");
    *v = *v * 16 + (unsigned)d;
  }
  return 0;
}

static int emit(jrd *r, char *out, size_t cap, size_t *len, unsigned cp) {
  unsigned char b[4];
  size_t k;
  if (cp < 0x80) b[0] = (unsigned char)cp, k = 1;
  else if (cp < 0x800) b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), k = 2;
  else if (cp < 0x10000)
    b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
    b[2] = (unsigned char)(0x80 | (cp & 0x3f)), k = 3;
  else
    b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (unsigned char)(0x80 | (cp & 0x3f)),
    k = 4;
  if (*len + k > cap) return fail(r, "a string is too long");
  memcpy(out + *len, b, k);
  *len += k;
  return 0;
}

/* A string at r->p (its opening quote), decoded into out (cap bytes + NUL). */
static int jstring(jrd *r, char *out, size_t cap, size_t *lenp) {
  size_t len = 0;
  if (r->p >= r->e || *r->p != '"') return fail(r, "expected a string");
  r->p++;
  for (;;) {
    if (r->p >= r->e) return fail(r, "a string is not closed");
    unsigned char c = (unsigned char)*r->p++;
    if (c == '"') break;
    if (c < 0x20) return fail(r, "a control character in a string");
    if (c != '\\') {
      if (len + 1 > cap) return fail(r, "a string is too long");
      out[len++] = (char)c;
      continue;
    }
    if (r->p >= r->e) return fail(r, "an escape is cut short");
    char esc = *r->p++;
    unsigned cp;
    switch (esc) {
      case '"': cp = '"'; break;
      case '\\': cp = '\\'; break;
      case '/': cp = '/'; break;
      case 'b': cp = '\b'; break;
      case 'f': cp = '\f'; break;
      case 'n': cp = '\n'; break;
      case 'r': cp = '\r'; break;
      case 't': cp = '\t'; break;
      case 'u':
        if (hex4(r, &cp) != 0) return -1;
        if (cp >= 0xd800 && cp <= 0xdbff) { /* a surrogate pair */
          unsigned lo;
          if (r->e - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
            return fail(r, "a lone surrogate in a string");
          r->p += 2;
          if (hex4(r, &lo) != 0) return -1;
          if (lo < 0xdc00 || lo > 0xdfff) return fail(r, "a lone surrogate in a string");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          return fail(r, "a lone surrogate in a string");
        }
        if (cp == 0) return fail(r, "a NUL in a string");
        break;
      default: return fail(r, "an unknown escape in a string");
    }
    if (emit(r, out, cap, &len, cp) != 0) return -1;
  }
  out[len] = 0;
  if (lenp) *lenp = len;
  return 0;
}

static int jnumber(jrd *r, pk_json_val *v) {
  int neg = 0, frac = 0;
  if (r->p < r->e && *r->p == '-') neg = 1, r->p++;
  if (r->p >= r->e || *r->p < '0' || *r->p > '9') return fail(r, "a bad number");
  if (*r->p == '0' && r->p + 1 < r->e && r->p[1] >= '0' && r->p[1] <= '9')
    return fail(r, "a number with a leading zero");
  unsigned long long acc = 0;
  int over = 0;
  while (r->p < r->e && *r->p >= '0' && *r->p <= '9') {
    unsigned d = (unsigned)(*r->p++ - '0');
    if (acc > (ULLONG_MAX - d) / 10) over = 1;
    else acc = acc * 10 + d;
  }
  if (r->p < r->e && *r->p == '.') {
    frac = 1;
    r->p++;
    if (r->p >= r->e || *r->p < '0' || *r->p > '9') return fail(r, "a bad number");
    while (r->p < r->e && *r->p >= '0' && *r->p <= '9') r->p++;
  }
  if (r->p < r->e && (*r->p == 'e' || *r->p == 'E')) {
    frac = 1;
    r->p++;
    if (r->p < r->e && (*r->p == '+' || *r->p == '-')) r->p++;
    if (r->p >= r->e || *r->p < '0' || *r->p > '9') return fail(r, "a bad number");
    while (r->p < r->e && *r->p >= '0' && *r->p <= '9') r->p++;
  }
  if (frac || over || acc > (unsigned long long)LLONG_MAX) {
    v->type = PK_JV_NUM;
    return 0;
  }
  v->type = PK_JV_INT;
  v->i = neg ? -(long long)acc : (long long)acc;
  return 0;
}

static int jword(jrd *r, const char *w) {
  size_t l = strlen(w);
  if ((size_t)(r->e - r->p) < l || memcmp(r->p, w, l) != 0) return fail(r, "an unexpected character");
  r->p += l;
  return 0;
}

/* A scalar: string, number, true, false, null. */
static int jscalar(jrd *r, pk_json_val *v) {
  if (r->p >= r->e) return fail(r, "a value is missing");
  char c = *r->p;
  if (c == '"') {
    v->type = PK_JV_STR;
    return jstring(r, v->str, PK_JSON_STR_MAX, &v->len);
  }
  if (c == '-' || (c >= '0' && c <= '9')) return jnumber(r, v);
  if (c == 't') return v->type = PK_JV_TRUE, jword(r, "true");
  if (c == 'f') return v->type = PK_JV_FALSE, jword(r, "false");
  if (c == 'n') return v->type = PK_JV_NULL, jword(r, "null");
  if (c == '{' || c == '[') return fail(r, "a nested object or array");
  return fail(r, "an unexpected character");
}

static int jvalue(jrd *r, pk_json_val *v) {
  v->type = 0;
  v->str[0] = 0;
  v->len = 0;
  v->i = 0;
  v->items = 0;
  v->first_is_str = 0;
  if (r->p >= r->e || *r->p != '[') return jscalar(r, v);
  r->p++;
  ws(r);
  v->type = PK_JV_ARRAY;
  if (r->p < r->e && *r->p == ']') {
    r->p++;
    return 0;
  }
  for (;;) {
    pk_json_val item;
    ws(r);
    if (r->p < r->e && *r->p == '"' && !v->items) {
      if (jstring(r, v->str, PK_JSON_STR_MAX, &v->len) != 0) return -1;
      v->first_is_str = 1;
    } else {
      item.type = 0;
      if (jscalar(r, &item) != 0) return -1;
    }
    if (++v->items > 64) return fail(r, "an array is too long");
    ws(r);
    if (r->p >= r->e) return fail(r, "an array is not closed");
    if (*r->p == ']') {
      r->p++;
      return 0;
    }
    if (*r->p++ != ',') return fail(r, "expected ',' or ']'");
  }
}

#define PK_JSON_MEMBERS_MAX 64

int pk_json_flat(const char *s, size_t n, int (*cb)(void *ctx, const char *key, const pk_json_val *v),
                 void *ctx, const char **why) {
  jrd r = {s, s + n, NULL};
  char keys[PK_JSON_MEMBERS_MAX][PK_JSON_KEY_MAX + 1];
  int nkeys = 0;
  pk_json_val v;
  *why = NULL;
  ws(&r);
  if (r.p >= r.e || *r.p != '{') {
    *why = "not a JSON object";
    return -1;
  }
  r.p++;
  ws(&r);
  if (r.p < r.e && *r.p == '}') {
    r.p++;
    goto end;
  }
  for (;;) {
    char key[PK_JSON_KEY_MAX + 1];
    ws(&r);
    if (jstring(&r, key, PK_JSON_KEY_MAX, NULL) != 0) goto bad;
    for (int i = 0; i < nkeys; i++)
      if (strcmp(keys[i], key) == 0) {
        fail(&r, "a key repeats");
        goto bad;
      }
    if (nkeys >= PK_JSON_MEMBERS_MAX) {
      fail(&r, "too many members");
      goto bad;
    }
    memcpy(keys[nkeys++], key, sizeof(key));
    ws(&r);
    if (r.p >= r.e || *r.p++ != ':') {
      fail(&r, "expected ':'");
      goto bad;
    }
    ws(&r);
    if (jvalue(&r, &v) != 0) goto bad;
    int rv = cb ? cb(ctx, key, &v) : 0;
    wipe(v.str, sizeof(v.str));
    if (rv) return rv;
    ws(&r);
    if (r.p >= r.e) {
      fail(&r, "the object is not closed");
      goto bad;
    }
    if (*r.p == '}') {
      r.p++;
      break;
    }
    if (*r.p++ != ',') {
      fail(&r, "expected ',' or '}'");
      goto bad;
    }
  }
end:
  ws(&r);
  if (r.p != r.e) {
    *why = "bytes after the object";
    return -1;
  }
  return 0;
bad:
  wipe(v.str, sizeof(v.str));
  *why = r.why ? r.why : "malformed JSON";
  return -1;
}

/* ---- answers ---- */
typedef struct {
  pk_authapp_auth *a;
  const char *why;
} auth_ctx;

static int get_long(auth_ctx *c, const pk_json_val *v, long *out) {
  if (v->type == PK_JV_NULL) return 0; /* pagekite.py: None, as absent */
  if (v->type != PK_JV_INT || v->i < -2147483647LL || v->i > 2147483647LL) {
    c->why = "a quota is not an integer";
    return -1;
  }
  *out = (long)v->i;
  return 0;
}

static int get_str(auth_ctx *c, const pk_json_val *v, char *out, size_t n, const char *what) {
  if (v->type == PK_JV_NULL) return 0;
  if (v->type != PK_JV_STR || v->len >= n || memchr(v->str, 0, v->len)) {
    c->why = what;
    return -1;
  }
  memcpy(out, v->str, v->len + 1);
  return 0;
}

static int auth_member(void *ctx, const char *key, const pk_json_val *v) {
  auth_ctx *c = ctx;
  pk_authapp_auth *a = c->a;
  if (strcmp(key, "secret") == 0)
    return get_str(c, v, a->secret, sizeof(a->secret), "\"secret\" is not a string that fits");
  if (strcmp(key, "error") == 0)
    return get_str(c, v, a->error, sizeof(a->error), "\"error\" is not a short string");
  if (strcmp(key, "reason") == 0)
    return get_str(c, v, a->reason, sizeof(a->reason), "\"reason\" is not a short string");
  if (strcmp(key, "quota_kb") == 0) {
    if (v->type == PK_JV_NULL) {
      a->quota_state = 2;
      return 0;
    }
    if (v->type != PK_JV_INT) {
      c->why = "\"quota_kb\" is not an integer";
      return -1;
    }
    a->quota_state = 1;
    a->quota_kb = v->i;
    return 0;
  }
  if (strcmp(key, "quota_days") == 0) return get_long(c, v, &a->days);
  if (strcmp(key, "quota_conns") == 0) return get_long(c, v, &a->conns);
  if (strcmp(key, "ips_per_sec-ips") == 0) return get_long(c, v, &a->ipc);
  if (strcmp(key, "ips_per_sec-secs") == 0) return get_long(c, v, &a->ips);
  return 0; /* other members are the app's own */
}

int pk_authapp_parse_auth(const char *s, size_t n, pk_authapp_auth *out, const char **why) {
  memset(out, 0, sizeof(*out));
  out->days = out->conns = out->ipc = out->ips = -1;
  auth_ctx c = {out, NULL};
  int rv = pk_json_flat(s, n, auth_member, &c, why);
  if (rv != 0) {
    if (c.why) *why = c.why;
    if (!*why) *why = "malformed answer";
    wipe(out->secret, sizeof(out->secret));
    return -1;
  }
  return 0;
}

int pk_authapp_auth_verdict(const pk_authapp_auth *a, int sig_ok, pk_authdns_answer *out,
                            const char **refusal) {
  memset(out, 0, sizeof(*out));
  out->days = a->days;
  out->conns = a->conns;
  out->ipc = a->ipc;
  out->ips = a->ips;
  *refusal = NULL;
  if (!a->secret[0]) {
    if (!a->error[0]) return -1;
    snprintf(out->error, sizeof(out->error), "%s", a->error);
    *refusal = out->error;
    return 0;
  }
  if (!sig_ok) {
    *refusal = "signature";
    return 0;
  }
  if (a->quota_state == 2 || (a->quota_state == 1 && a->quota_kb == 0)) {
    snprintf(out->error, sizeof(out->error), "%s",
             a->reason[0] ? a->reason : a->error[0] ? a->error : "quota");
    *refusal = out->error;
    return 0;
  }
  out->quota = a->quota_state == 1 && a->quota_kb > 0 ? a->quota_kb : 0;
  return 0;
}

typedef struct {
  unsigned char *addr;
  char *cname;
  size_t cn;
  int have_host, have_ip, alias;
  const char *why;
} zk_ctx;

/* A dotted quad, strictly: four decimal octets. */
static int ipv4(const char *s, unsigned char out[4]) {
  for (int i = 0; i < 4; i++) {
    int v = 0, d = 0;
    while (*s >= '0' && *s <= '9' && d < 3) v = v * 10 + (*s++ - '0'), d++;
    if (!d || v > 255) return -1;
    out[i] = (unsigned char)v;
    if (i < 3 && *s++ != '.') return -1;
  }
  return *s ? -1 : 0;
}

static int zk_member(void *ctx, const char *key, const pk_json_val *v) {
  zk_ctx *c = ctx;
  if (strcmp(key, "hostname") == 0) {
    if (v->type != PK_JV_STR || v->len >= c->cn) {
      c->why = "\"hostname\" is not a string that fits";
      return -1;
    }
    memcpy(c->cname, v->str, v->len + 1);
    c->have_host = 1;
    return 0;
  }
  if (strcmp(key, "alias") == 0) {
    /* pagekite.py tests it for truth: a non-empty string or list */
    c->alias = (v->type == PK_JV_STR && v->len) || (v->type == PK_JV_ARRAY && v->items) ||
               v->type == PK_JV_TRUE || (v->type == PK_JV_INT && v->i);
    return 0;
  }
  if (strcmp(key, "ips") == 0) {
    if (v->type != PK_JV_ARRAY || !v->first_is_str || ipv4(v->str, c->addr) != 0) {
      c->why = "\"ips\" does not start with an IPv4 address";
      return -1;
    }
    c->have_ip = 1;
    return 0;
  }
  return 0;
}

int pk_authapp_parse_zk(const char *s, size_t n, unsigned char addr[4], char *cname, size_t cn,
                        const char **why) {
  if (!cn) return -1;
  cname[0] = 0;
  zk_ctx c = {addr, cname, cn, 0, 0, 0, NULL};
  if (pk_json_flat(s, n, zk_member, &c, why) != 0) {
    if (c.why) *why = c.why;
    if (!*why) *why = "malformed answer";
    cname[0] = 0;
    return -1;
  }
  if (!c.have_host || !c.have_ip) {
    *why = !c.have_host ? "no \"hostname\"" : "no \"ips\"";
    cname[0] = 0;
    return -1;
  }
  if (!c.alias) cname[0] = 0;
  return 0;
}

/* ---- lines ---- */
void pk_authapp_line_reset(pk_authapp_linebuf *lb) {
  lb->len = 0;
  lb->done = 0;
  lb->buf[0] = 0;
}

int pk_authapp_line_feed(pk_authapp_linebuf *lb, const char *p, size_t n, size_t *used) {
  *used = 0;
  if (lb->done) return 1;
  const char *nl = memchr(p, '\n', n);
  size_t take = nl ? (size_t)(nl - p) : n;
  if (lb->len + take > PK_AUTHAPP_LINE_MAX) {
    *used = n;
    return -1;
  }
  memcpy(lb->buf + lb->len, p, take);
  lb->len += take;
  lb->buf[lb->len] = 0;
  *used = nl ? take + 1 : take;
  if (!nl) return 0;
  if (lb->len && lb->buf[lb->len - 1] == '\r') lb->buf[--lb->len] = 0;
  lb->done = 1;
  return 1;
}

/* acl.c - access rules for the relay, with no sockets (see acl.h). */
#include "acl.h"
#include "wire.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t n, const char *fmt, ...) {
  if (why && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Python regexp syntax that POSIX would read differently (or not at all). */
static const char *python_only(const char *p) {
  for (const char *s = p; *s; s++) {
    if (s[0] == '\\' && s[1] && strchr("dDsSwWbBAZz", s[1])) return "a \\d-style class or anchor";
    if (s[0] == '\\' && s[1]) {
      s++;
      continue;
    }
    if (s[0] == '(' && s[1] == '?') return "a (?...) group";
    if (strchr("*+?}", s[0]) && s[1] == '?') return "a lazy quantifier";
  }
  return NULL;
}

int pk_acl_add(pk_acl *a, const char *rule, char *why, size_t whylen) {
  if (!rule) return fail(why, whylen, "%s", "no rule");
  const char *colon = strchr(rule, ':');
  if (!colon) return fail(why, whylen, "'%.200s' is not allow:REGEXP or deny:REGEXP", rule);
  size_t pl = (size_t)(colon - rule);
  int allow;
  if (pl == 5 && strncasecmp(rule, "allow", 5) == 0)
    allow = 1;
  else if (pl == 4 && strncasecmp(rule, "deny", 4) == 0)
    allow = 0;
  else
    return fail(why, whylen, "'%.200s': the policy is not allow or deny", rule);
  const char *pat = colon + 1;
  if (!*pat) return fail(why, whylen, "'%.200s': the regexp is empty", rule);
  if (a->n >= PK_ACL_MAX_RULES) return fail(why, whylen, "%s", "too many rules (at most 256)");
  const char *src = pat;
  if (strcmp(pat, "localhost") == 0)
    src = "(::ffff:)?127\\..*|::1";
  else if (strcmp(pat, "any") == 0)
    src = ".*";
  const char *py = python_only(src);
  if (py) {
    return fail(why, whylen, "'%.200s': %s is Python regexp syntax, not POSIX (use [0-9] for \\d)",
                rule, py);
  }
  size_t sl = strlen(src);
  char *anchored = malloc(sl + 5);
  pk_acl_rule *grown = realloc(a->rules, (size_t)(a->n + 1) * sizeof(*grown));
  if (!anchored || !grown) {
    free(anchored);
    if (grown) a->rules = grown;
    return fail(why, whylen, "%s", "out of memory");
  }
  a->rules = grown;
  /* The whole address, as pagekite.py's re.match(pattern + '$'). */
  snprintf(anchored, sl + 5, "^(%s)$", src);
  pk_acl_rule *r = &a->rules[a->n];
  int rc = regcomp(&r->re, anchored, REG_EXTENDED | REG_NOSUB | REG_ICASE);
  free(anchored);
  if (rc != 0) {
    char err[128];
    regerror(rc, &r->re, err, sizeof(err));
    return fail(why, whylen, "'%.200s': bad regexp: %s", rule, err);
  }
  r->allow = allow;
  r->pattern = strdup(rule);
  if (!r->pattern) {
    regfree(&r->re);
    return fail(why, whylen, "%s", "out of memory");
  }
  a->n++;
  return 0;
}

int pk_acl_check(const pk_acl *a, const char *ip, int *rule) {
  if (rule) *rule = -1;
  if (!a || a->n == 0) return 1;
  const char *v4 = NULL;
  if (ip && strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.')) v4 = ip + 7;
  for (int i = 0; i < a->n; i++) {
    if (regexec(&a->rules[i].re, ip ? ip : "", 0, NULL, 0) == 0 ||
        (v4 && regexec(&a->rules[i].re, v4, 0, NULL, 0) == 0)) {
      if (rule) *rule = i;
      return a->rules[i].allow;
    }
  }
  return 0;
}

void pk_acl_free(pk_acl *a) {
  for (int i = 0; i < a->n; i++) {
    regfree(&a->rules[i].re);
    free(a->rules[i].pattern);
  }
  free(a->rules);
  a->rules = NULL;
  a->n = 0;
}

static int parse_count(const char *s, size_t n, int max, int *out) {
  if (n == 0 || n > 9) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v < 1 || v > max) return -1;
  *out = v;
  return 0;
}

int pk_ratelimit_parse(const char *spec, char *name, size_t namelen, int *ips, int *secs,
                       char *why, size_t whylen) {
  if (!spec || !*spec) return fail(why, whylen, "%s", "empty (expected [KITE:]IPS/SECONDS)");
  const char *colon = strchr(spec, ':');
  const char *lim = colon ? colon + 1 : spec;
  size_t nl = colon ? (size_t)(colon - spec) : 1;
  const char *nm = colon ? spec : "*";
  if (colon && strchr(lim, ':'))
    return fail(why, whylen, "'%.200s' has more than one ':' (expected [KITE:]IPS/SECONDS)", spec);
  if (nl == 0 || nl >= namelen)
    return fail(why, whylen, "'%.200s': the kite name is empty or too long", spec);
  for (size_t i = 0; i < nl; i++) {
    unsigned char ch = (unsigned char)nm[i];
    if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '*' || ch == '_'))
      return fail(why, whylen, "'%.200s': the kite name is not a DNS name", spec);
  }
  const char *slash = strchr(lim, '/');
  if (!slash || parse_count(lim, (size_t)(slash - lim), PK_RATELIMIT_MAX_IPS, ips) != 0 ||
      parse_count(slash + 1, strlen(slash + 1), 86400 * 366, secs) != 0)
    return fail(why, whylen,
                "'%.200s' is not [KITE:]IPS/SECONDS (whole numbers, IPS 1-100000, SECONDS >= 1)",
                spec);
  for (size_t i = 0; i < nl; i++) name[i] = (char)tolower((unsigned char)nm[i]);
  name[nl] = 0;
  return 0;
}

int pk_ratelimit_rule_for(const char *const *names, int n, const char *kite) {
  const char *d = kite;
  while (d && strchr(d, '.')) { /* kite, then parents with two labels or more */
    for (int i = 0; i < n; i++)
      if (strcasecmp(names[i], d) == 0) return i;
    d = strchr(d, '.') + 1;
  }
  if (kite && !strchr(kite, '.'))
    for (int i = 0; i < n; i++)
      if (strcasecmp(names[i], kite) == 0) return i;
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], "*") == 0) return i;
  return -1;
}

int pk_ratelimit_set(pk_ipwindow *r, int ips, int secs) {
  if (r->slots) {
    /* The lower rate wins: ips/secs < r->ips/r->secs. */
    if ((long long)ips * r->secs >= (long long)r->ips * secs) return 0;
    if (ips > r->cap) {
      pk_rl_slot *g = realloc(r->slots, (size_t)ips * sizeof(*g));
      if (!g) return -1;
      r->slots = g;
      r->cap = ips;
    }
    if (ips < r->n) r->n = ips; /* forget the newest: they get counted again */
    r->ips = ips;
    r->secs = secs;
    return 0;
  }
  r->slots = calloc((size_t)ips, sizeof(*r->slots));
  if (!r->slots) return -1;
  r->ips = r->cap = ips;
  r->secs = secs;
  r->n = 0;
  return 0;
}

int pk_ratelimit_admit(pk_ipwindow *r, uint64_t key, uint64_t now_ms) {
  if (!r->slots) return 1;
  for (int i = 0; i < r->n; i++)
    if (r->slots[i].key == key) {
      r->slots[i].seen = now_ms;
      return 1;
    }
  uint64_t window = (uint64_t)r->secs * 1000;
  for (int i = 0; i < r->n;) {
    if (r->slots[i].seen + window < now_ms)
      r->slots[i] = r->slots[--r->n];
    else
      i++;
  }
  if (r->n >= r->ips) return 0;
  r->slots[r->n].key = key;
  r->slots[r->n].seen = now_ms;
  r->n++;
  return 1;
}

void pk_ratelimit_free(pk_ipwindow *r) {
  free(r->slots);
  memset(r, 0, sizeof(*r));
}

uint64_t pk_ratelimit_key(const char *const *parts, int n) {
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < n; i++) {
    for (const char *p = parts[i] ? parts[i] : ""; *p; p++) {
      h ^= (unsigned char)*p;
      h *= 1099511628211ULL;
    }
    h ^= '/';
    h *= 1099511628211ULL;
  }
  return h;
}

/* ---- per-kite rules (pagekite.py's +ip/ and +password/) ---- */

int pk_kite_rule_parse(const char *rule, pk_kite_rule *out, char *why, size_t whylen) {
  if (!rule) return fail(why, whylen, "%s", "no rule");
  const char *r = rule[0] == '+' ? rule + 1 : rule;
  memset(out, 0, sizeof(*out));
  if (strncmp(r, "ip/", 3) == 0) {
    const char *a = r + 3;
    size_t n = strlen(a);
    if (n == 0 || n >= sizeof(out->ip) || strspn(a, "0123456789abcdefABCDEF.:") != n)
      return fail(why, whylen, "'%.200s': ip/ takes an address (1.2.3.4) or a /24 (1.2.3)", rule);
    out->kind = PK_KA_IP;
    for (size_t i = 0; i <= n; i++) out->ip[i] = (char)tolower((unsigned char)a[i]);
    return 0;
  }
  if (strncmp(r, "password/", 9) == 0) {
    const char *u = r + 9, *eq = strchr(u, '=');
    if (!eq || eq == u)
      return fail(why, whylen, "'%.200s': password/ takes USER=PASSWORD", rule);
    size_t ul = (size_t)(eq - u), pl = strlen(eq + 1);
    /* Named as password/USER=... : never the password. */
    int us = ul < 64 ? (int)ul : 64;
    if (memchr(u, ':', ul))
      return fail(why, whylen, "'password/%.*s=...': a basic-auth user name cannot hold ':'", us, u);
    if (pl == 0) return fail(why, whylen, "'password/%.*s=': the password is empty", us, u);
    if (ul >= PK_KA_FIELD || pl >= PK_KA_FIELD)
      return fail(why, whylen, "'password/%.*s=...': user or password longer than 255 bytes", us,
                  u);
    for (const char *p = u; *p; p++)
      if ((unsigned char)*p < ' ' || *p == 0x7f)
        return fail(why, whylen, "%s", "password/: user or password has a control character");
    out->kind = PK_KA_PASSWORD;
    memcpy(out->user, u, ul);
    memcpy(out->pass, eq + 1, pl);
    return 0;
  }
  int kl = (int)strcspn(rule, "/="); /* a mistyped "pasword/USER=PASS": not its password */
  return fail(why, whylen, "'%.*s%s' is not ip/ADDRESS or password/USER=PASSWORD",
              kl < 64 ? kl : 64, rule, rule[kl] ? "..." : "");
}

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Standard base64 (padding optional); -1 when malformed or too long. */
static int b64decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  while (n && s[n - 1] == '=') n--;
  for (size_t i = 0; i < n; i++) {
    int v = b64val((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o + 1 >= cap) return -1;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  out[o] = 0;
  return (int)o;
}

/* Equal strings, in time that depends on neither's content. */
static int ct_streq(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char d = (unsigned char)(la != lb);
  for (size_t i = 0; i < PK_KA_FIELD; i++) {
    unsigned char x = i < la ? (unsigned char)a[i] : 0, y = i < lb ? (unsigned char)b[i] : 0;
    d |= (unsigned char)(x ^ y);
  }
  return d == 0;
}

static int rule_for(const pk_kite_rule *r, const char *name, int pport) {
  return strcasecmp(r->name, name) == 0 && (r->pport == 0 || r->pport == pport);
}

int pk_kite_access_check(const pk_kite_rule *rules, int n, const char *name, int pport,
                         const char *rip, int is_http, const char *head, size_t head_len) {
  int have_ip = 0, ip_ok = 0, have_pw = 0;
  char ip[64], net[64];
  snprintf(ip, sizeof(ip), "%s", rip ? rip : "");
  if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.')) memmove(ip, ip + 7, strlen(ip + 7) + 1);
  for (char *p = ip; *p; p++) *p = (char)tolower((unsigned char)*p);
  snprintf(net, sizeof(net), "%s", ip);
  char *dot = strrchr(net, '.');
  if (dot) *dot = 0; else net[0] = 0;
  for (int i = 0; i < n; i++) {
    if (!rule_for(&rules[i], name, pport)) continue;
    if (rules[i].kind == PK_KA_IP) {
      have_ip = 1;
      if (ip[0] && (strcmp(rules[i].ip, ip) == 0 || (net[0] && strcmp(rules[i].ip, net) == 0)))
        ip_ok = 1;
    } else if (rules[i].kind == PK_KA_PASSWORD) {
      have_pw = 1;
    }
  }
  if (have_ip && !ip_ok) return PK_KA_IP_DENIED;
  if (!have_pw) return PK_KA_OK;
  if (!is_http || !head) return PK_KA_AUTH_NEEDED;
  pk_http_head h;
  if (pk_wire_parse_http_head(head, head_len, PK_HEAD_MAX, &h) != 1) return PK_KA_AUTH_NEEDED;
  pk_slice v = pk_wire_http_get(&h, "Authorization", 0);
  if (!v.p || v.n < 7 || strncasecmp(v.p, "Basic ", 6) != 0) return PK_KA_AUTH_NEEDED;
  size_t off = 6;
  while (off < v.n && v.p[off] == ' ') off++;
  char cred[2 * PK_KA_FIELD + 2];
  if (b64decode(v.p + off, v.n - off, cred, sizeof(cred)) < 0) return PK_KA_AUTH_NEEDED;
  char *colon = strchr(cred, ':');
  if (!colon) return PK_KA_AUTH_NEEDED;
  *colon = 0;
  const char *user = cred, *pass = colon + 1;
  if (strlen(user) >= PK_KA_FIELD || strlen(pass) >= PK_KA_FIELD) return PK_KA_AUTH_NEEDED;
  int ok = 0;
  for (int i = 0; i < n; i++)
    if (rule_for(&rules[i], name, pport) && rules[i].kind == PK_KA_PASSWORD &&
        strcmp(rules[i].user, user) == 0)
      ok |= ct_streq(rules[i].pass, pass);
  return ok ? PK_KA_OK : PK_KA_AUTH_NEEDED;
}

/* kiteauth.c - kite authentication, both sides (see kiteauth.h). */
#include "kiteauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A handshake head or NOOP chunk must hold every kite's lines. */
_Static_assert(PK_WIRE_MAX_HEADERS >= 2 * PK_MAX_KITES_PER_TUNNEL + 16,
               "PK_WIRE_MAX_HEADERS too small for PK_MAX_KITES_PER_TUNNEL");

static void lower(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z') *s = (char)(*s + 32);
}

/* Copies field [p, e) into out (size n); -1 when it does not fit. */
static int field(const char *p, const char *e, char *out, size_t n) {
  if ((size_t)(e - p) >= n) return -1;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = 0;
  return 0;
}

static int split_protoport(pk_kite_req *k) {
  snprintf(k->proto, sizeof(k->proto), "%s", k->protoport);
  char *dash = strchr(k->proto, '-');
  k->port = 0;
  if (!dash) return 0;
  *dash = 0;
  char *end = NULL;
  long v = strtol(dash + 1, &end, 10);
  k->port = (end && !*end && v > 0 && v < 65536) ? (int)v : -1;
  return 0;
}

int pk_kite_req_parse(pk_slice v, pk_kite_req *out) {
  memset(out, 0, sizeof(*out));
  const char *p = v.p, *end = v.p + v.n, *f[6];
  int nf = 0;
  f[nf++] = p;
  for (const char *q = p; q < end && nf < 6; q++)
    if (*q == ':') f[nf++] = q + 1;
  if (nf != 5) return -1;
  if (field(f[0], f[1] - 1, out->protoport, sizeof(out->protoport)) ||
      field(f[1], f[2] - 1, out->name, sizeof(out->name)) ||
      field(f[2], f[3] - 1, out->bsalt, sizeof(out->bsalt)) ||
      field(f[3], f[4] - 1, out->token, sizeof(out->token)) ||
      field(f[4], end, out->sign, sizeof(out->sign)))
    return -1;
  if (!out->protoport[0] || !out->name[0]) return -1;
  lower(out->protoport);
  lower(out->name);
  snprintf(out->what, sizeof(out->what), "%s:%s:%s", out->protoport, out->name, out->bsalt);
  return split_protoport(out);
}

/* ---- relay ---- */
const char pk_auth_remote[] = "remote";

static pk_auth_verdict challenge(const pk_auth_relay *a, const pk_kite_req *k, pk_wbuf *out) {
  char tok[PK_TOKEN_LEN + 1], prefix[9];
  pk_replay_issue(a->replay, prefix);
  if (pk_sign_token(a->relay_secret, k->what, prefix, a->now, tok) != 0) return PK_AUTH_IGNORED;
  pk_wire_kite_signthis(out, k->what, tok);
  return PK_AUTH_CHALLENGED;
}

/* The token is ours and fresh, the signature is the kite owner's, and the
 * challenge was not answered before.  NULL, or the reason. */
static int our_token(const pk_auth_relay *a, const pk_kite_req *k) {
  return k->token[0] == 't' && pk_check_signature(k->token, a->relay_secret, k->what, a->now);
}

static const char *check(const pk_auth_relay *a, const pk_kite_req *k, const char *secret) {
  if (!our_token(a, k)) return "signature";
  char payload[sizeof(k->what) + PK_TOKEN_LEN + 8];
  snprintf(payload, sizeof(payload), "%s:%s", k->what, k->token);
  if (!pk_check_signature(k->sign, secret, payload, a->now)) return "signature";
  if (pk_replay_use(a->replay, k->token) != 0) return "replay"; /* answered before, or too old */
  return NULL;
}

/* The kite passed: claim it; OK and DUPLICATE lines are written here. */
static pk_auth_verdict claim(const pk_auth_relay *a, const pk_kite_req *k, pk_wbuf *out,
                             const char **reason) {
  pk_auth_verdict v = a->claim(a->ctx, k, reason);
  if (v == PK_AUTH_OK) pk_wire_kite_ok(out, k->what);
  if (v == PK_AUTH_DUPLICATE) pk_wire_kite_duplicate(out, k->what);
  return v;
}

static pk_auth_verdict refuse(const pk_kite_req *k, pk_wbuf *out, const char **reason) {
  if (!*reason) *reason = "unknown";
  /* A replay is told as pagekite.py tells it; *reason keeps it apart for
   * the counters. */
  pk_wire_kite_invalid(out, k->what, strcmp(*reason, "replay") == 0 ? "signature" : *reason);
  return PK_AUTH_INVALID;
}

/* A kite the authority vouches for: the challenge must be ours and unused;
 * the signature is the authority's to check. */
static pk_auth_verdict remote(const pk_auth_relay *a, const pk_kite_req *k, pk_wbuf *out,
                              const char **reason) {
  *reason = NULL;
  if (!a->remote) return refuse(k, out, reason);
  if (!our_token(a, k)) *reason = "signature";
  else if (pk_replay_use(a->replay, k->token) != 0) *reason = "replay";
  if (*reason) return refuse(k, out, reason);
  pk_auth_verdict v = a->remote(a->ctx, k, reason);
  if (v == PK_AUTH_PENDING) return v;
  if (v == PK_AUTH_OK && (v = claim(a, k, out, reason)) != PK_AUTH_INVALID) return v;
  return refuse(k, out, reason);
}

pk_auth_verdict pk_auth_relay_request(const pk_auth_relay *a, const pk_kite_req *k,
                                      int may_challenge, pk_wbuf *out, const char **reason) {
  *reason = NULL;
  if (!k->token[0] || !k->sign[0]) return may_challenge ? challenge(a, k, out) : PK_AUTH_IGNORED;
  const char *secret = a->secret(a->ctx, k, reason);
  if (!secret && *reason == pk_auth_remote) return remote(a, k, out, reason);
  if (secret && !(*reason = check(a, k, secret))) {
    pk_auth_verdict v = claim(a, k, out, reason);
    if (v != PK_AUTH_INVALID) return v;
  }
  return refuse(k, out, reason);
}

pk_auth_verdict pk_auth_relay_finish(const pk_auth_relay *a, const pk_kite_req *k, int ok,
                                     const char *reason, pk_wbuf *out, const char **why) {
  *why = ok ? NULL : (reason ? reason : "unauthorized");
  if (ok) {
    pk_auth_verdict v = claim(a, k, out, why);
    if (v != PK_AUTH_INVALID) return v;
  }
  return refuse(k, out, why);
}

/* ---- connector ---- */
int pk_auth_sign_request(pk_wbuf *out, const char *protoport, const char *name,
                         const char *bsalt, const char *fsalt, const char *secret) {
  char payload[PK_NAME_MAX + 160], sig[PK_TOKEN_LEN + 1];
  if (!fsalt) fsalt = "";
  snprintf(payload, sizeof(payload), "%s:%s:%s:%s", protoport, name, bsalt, fsalt);
  if (pk_sign_token(secret, payload, NULL, 0, sig) != 0) return -1;
  pk_wire_kite_line(out, protoport, name, bsalt, fsalt, sig);
  return pk_wbuf_ok(out) ? 0 : -1;
}

static const struct {
  const char *header;
  pk_answer_kind kind;
} answers[] = {{"X-PageKite-OK", PK_ANS_OK},
               {"X-PageKite-Invalid", PK_ANS_INVALID},
               {"X-PageKite-Invalid-Why", PK_ANS_WHY},
               {"X-PageKite-Duplicate", PK_ANS_DUPLICATE},
               {"X-PageKite-SignThis", PK_ANS_SIGNTHIS},
               {"X-PageKite-SessionID", PK_ANS_SESSION},
               {"X-PageKite-Features", PK_ANS_FEATURE},
               {"X-PageKite-Misc", PK_ANS_MOTD}};

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (char)(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The motd parameter of X-PageKite-Misc (a query string, as pagekite.py
 * sends it: '+' for space, %XX escapes) into out, control characters as
 * spaces: it goes to a log.  -1 when there is none. */
static int misc_motd(pk_slice v, char *out, size_t n) {
  const char *p = v.p, *end = v.p + v.n;
  while (p < end && !(end - p >= 5 && memcmp(p, "motd=", 5) == 0 && (p == v.p || p[-1] == '&')))
    p++;
  if (p >= end) return -1;
  size_t o = 0;
  for (p += 5; p < end && *p != '&' && o + 1 < n; p++) {
    int c = (unsigned char)*p;
    if (c == '+') c = ' ';
    if (c == '%' && end - p > 2 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
      c = hexval(p[1]) * 16 + hexval(p[2]);
      p += 2;
    }
    out[o++] = (char)(c < ' ' || c == 0x7f ? ' ' : c);
  }
  out[o] = 0;
  return o ? 0 : -1;
}

/* "protoport:name[:...|;...]" -> protoport, name; the rest after the last
 * ':' (SignThis) or the first ';' (Invalid-Why) into detail. */
static int kite_answer(pk_slice v, pk_auth_answer *out) {
  const char *end = v.p + v.n, *c1 = memchr(v.p, ':', v.n);
  if (!c1) return -1;
  const char *c2 = c1 + 1;
  while (c2 < end && *c2 != ':' && *c2 != ';') c2++;
  if (field(v.p, c1, out->protoport, sizeof(out->protoport)) ||
      field(c1 + 1, c2, out->name, sizeof(out->name)))
    return -1;
  lower(out->protoport);
  lower(out->name);
  const char *d = NULL;
  if (out->kind == PK_ANS_WHY) d = memchr(v.p, ';', v.n);
  if (out->kind == PK_ANS_SIGNTHIS) d = memrchr(v.p, ':', v.n);
  if (d && field(d + 1, end, out->detail, sizeof(out->detail))) return -1;
  return 0;
}

pk_answer_kind pk_auth_parse_answer(pk_slice name, pk_slice value, pk_auth_answer *out) {
  memset(out, 0, sizeof(*out));
  for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
    if (!pk_slice_ieq(name, answers[i].header)) continue;
    out->kind = answers[i].kind;
    if (out->kind == PK_ANS_MOTD) {
      if (misc_motd(value, out->detail, sizeof(out->detail)) != 0) break;
      return out->kind;
    }
    if (out->kind == PK_ANS_SESSION || out->kind == PK_ANS_FEATURE) {
      if (field(value.p, value.p + value.n, out->detail, sizeof(out->detail))) break;
      return out->kind;
    }
    if (kite_answer(value, out) == 0) return out->kind;
    break;
  }
  out->kind = PK_ANS_NONE;
  return PK_ANS_NONE;
}

/* authdns.c - pagekite.py's --authdomain scheme, no sockets (authdns.h). */
#include "authdns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pk_authdomain_split(const char *arg, char *kite_domain, size_t kn, char *target, size_t tn) {
  const char *colon = strchr(arg, ':');
  if (colon && strchr(colon + 1, ':')) return -1;
  const char *t = colon ? colon + 1 : arg;
  size_t dl = colon ? (size_t)(colon - arg) : 0, tl = strlen(t);
  if (!tl || (colon && !dl) || dl >= kn || tl >= tn) return -1;
  for (size_t i = 0; i < dl; i++) {
    char c = arg[i];
    kite_domain[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  kite_domain[dl] = 0;
  memcpy(target, t, tl + 1);
  return 0;
}

int pk_authdomain_is_app(const char *target) { return target && strchr(target, '/') != NULL; }

/* name ends with "." + dom */
static int covers(const char *dom, const char *name) {
  size_t dl = strlen(dom), nl = strlen(name);
  return dl && nl > dl && name[nl - dl - 1] == '.' && strcmp(name + nl - dl, dom) == 0;
}

const char *pk_authdomain_select(const pk_authdomain_rule *rules, int n, const char *dflt,
                                 const char *name) {
  const pk_authdomain_rule *best = NULL;
  for (int i = 0; i < n; i++)
    if (covers(rules[i].kite_domain, name) &&
        (!best || strlen(rules[i].kite_domain) > strlen(best->kite_domain)))
      best = &rules[i];
  return best ? best->target : dflt;
}

int pk_authdns_put(char *out, size_t n, size_t *o, const char *s, int any) {
  for (; *s; s++) {
    const char *w = (any && *s == '*') ? "_any_" : NULL;
    size_t wl = w ? 5 : 1;
    if (*o + wl + 1 > n) return -1;
    memcpy(out + *o, w ? w : s, wl);
    *o += wl;
  }
  out[*o] = 0;
  return 0;
}

/* Labels of 1..63 characters, 253 in all without the final dot. */
static int valid_name(const char *q) {
  size_t len = strlen(q);
  if (len < 2 || q[len - 1] != '.' || len - 1 > 253) return 0;
  size_t label = 0;
  for (const char *p = q; *p; p++) {
    if (*p != '.') {
      if (++label > 63) return 0;
      continue;
    }
    if (!label) return 0;
    label = 0;
  }
  return 1;
}

int pk_authdns_join(const char *bsalt, const char *token, const char *sign, const char *protoport,
                    const char *name, const char *last, char *out, size_t n) {
  const char *parts[6] = {bsalt, token, sign, protoport, name, last};
  size_t o = 0;
  if (!n) return -1;
  out[0] = 0;
  for (int i = 0; i < 6; i++) {
    if (i && pk_authdns_put(out, n, &o, ".", 0) != 0) return -1;
    if (pk_authdns_put(out, n, &o, parts[i], i == 4) != 0) return -1;
  }
  if ((!o || out[o - 1] != '.') && pk_authdns_put(out, n, &o, ".", 0) != 0) return -1;
  return 0;
}

int pk_authdns_query(const char *bsalt, const char *token, const char *sign, const char *protoport,
                     const char *name, const char *adom, char *out, size_t n) {
  if (pk_authdns_join(bsalt, token, sign, protoport, name, adom, out, n) != 0) return -1;
  return valid_name(out) ? 0 : -1;
}

/* A hex field of 1..8 digits: its value, or -1. */
static long hexfield(const char *p, size_t len) {
  if (!len || len > 8) return -1;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    char c = p[i];
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* "error[-ipc-ips...].gb.days.conns.rest" (pagekite.py: hn.split('.', 4)). */
static int decode_cname(const char *hn, pk_authdns_answer *out) {
  const char *f[5];
  size_t fl[4];
  f[0] = hn;
  for (int i = 1; i < 5; i++) {
    const char *dot = strchr(f[i - 1], '.');
    if (!dot) return -1;
    fl[i - 1] = (size_t)(dot - f[i - 1]);
    f[i] = dot + 1;
  }
  out->days = hexfield(f[2], fl[2]);
  out->conns = hexfield(f[3], fl[3]);
  if (out->days < 0 || out->conns < 0 || fl[0] >= sizeof(out->error)) return -1;
  memcpy(out->error, f[0], fl[0]);
  out->error[fl[0]] = 0;
  char *d1 = strchr(out->error, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
  if (d2) { /* error, ipc, ips = error.split('-')[:3] */
    char *d3 = strchr(d2 + 1, '-');
    size_t l3 = d3 ? (size_t)(d3 - d2 - 1) : strlen(d2 + 1);
    long ipc = hexfield(d1 + 1, (size_t)(d2 - d1 - 1)), ips = hexfield(d2 + 1, l3);
    *d1 = 0;
    if (ipc >= 0 && ips >= 0) out->ipc = ipc, out->ips = ips;
  }
  return 0;
}

int pk_authdns_decode(const unsigned char addr[4], const char *cname, pk_authdns_answer *out) {
  memset(out, 0, sizeof(*out));
  out->days = out->conns = out->ipc = out->ips = -1;
  if (cname && cname[0] && decode_cname(cname, out) != 0) return -1;
  if (addr[0] != 255 || addr[1] != 255 || addr[2] != 255) {
    out->quota = (((long long)addr[0] * 256 + addr[1]) * 256 + addr[2]) * 256 + addr[3];
    out->error[0] = 0; /* a quota: pagekite.py returns no reason */
    return 0;
  }
  if (!out->error[0] && addr[3] <= 1) snprintf(out->error, sizeof(out->error), "unauthorized");
  out->quota = addr[3] == 0 ? -1 : 0; /* user unknown: pagekite.py's -1 */
  return 0;
}

const char *pk_authdns_refusal(const pk_authdns_answer *a) {
  if (a->quota == -1) return a->error[0] ? a->error : "unauthorized";
  if (a->quota == 0) return a->error[0] ? a->error : "quota";
  return NULL;
}

void pk_authdns_quotas_init(pk_authdns_quotas *q) {
  q->quota = -1;
  q->conns = q->days = q->ipc = q->ips = -1;
}

void pk_authdns_quotas_add(pk_authdns_quotas *q, const pk_authdns_answer *a) {
  if (a->quota > 0 && (q->quota < 0 || a->quota < q->quota)) q->quota = a->quota;
  if (a->conns > 0 && (q->conns < 0 || a->conns < q->conns)) q->conns = a->conns;
  if (a->days > 0 && (q->days < 0 || a->days < q->days)) q->days = a->days;
  /* the strictest rate: the smallest ipc/ips, compared without division */
  if (a->ipc > 0 && a->ips > 0 &&
      (q->ipc < 0 || (long long)a->ipc * q->ips < (long long)q->ipc * a->ips))
    q->ipc = a->ipc, q->ips = a->ips;
}

void pk_authdns_quotas_headers(const pk_authdns_quotas *q, pk_wbuf *out) {
  if (q->conns > 0) pk_wbuf_header(out, "X-PageKite-QConns", "%ld", q->conns);
  if (q->days > 0) pk_wbuf_header(out, "X-PageKite-QDays", "%ld", q->days);
  if (q->ipc > 0) pk_wbuf_header(out, "X-PageKite-IPsPerSec", "%ld/%ld", q->ipc, q->ips);
  if (q->quota > 0) pk_wbuf_header(out, "X-PageKite-Quota", "%lld", q->quota);
}

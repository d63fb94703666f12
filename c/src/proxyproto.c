/* proxyproto.c - PROXY protocol v1/v2 headers: see proxyproto.h. */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const unsigned char pk_pp_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int fail(char *why, size_t whyn, const char *fmt, ...) {
  if (why && whyn) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whyn, fmt, ap);
    va_end(ap);
  }
  return PK_PP_ERROR;
}

/* An address as text: family 4 or 6 (IPv4-mapped IPv6 counts as 4), 0 if
 * it is none. */
static int addr_of(const char *text, unsigned char out[16]) {
  if (!text || !*text) return 0;
  if (inet_pton(AF_INET, text, out) == 1) return 4;
  unsigned char a6[16];
  if (inet_pton(AF_INET6, text, a6) != 1) return 0;
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(a6, mapped, 12) == 0) {
    memcpy(out, a6 + 12, 4);
    return 4;
  }
  memcpy(out, a6, 16);
  return 6;
}

int pk_pp_encode(int version, const char *src_ip, int src_port, const char *dst_ip, int dst_port,
                 char *out, size_t cap) {
  unsigned char src[16], dst[16];
  if (version != 1 && version != 2) return -1;
  int fam = addr_of(src_ip, src);
  if (src_port < 0 || src_port > 65535 || dst_port < 0 || dst_port > 65535) fam = 0;
  if (fam && addr_of(dst_ip, dst) != fam) memset(dst, 0, sizeof(dst));
  if (version == 1) {
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    int n;
    if (!fam) {
      n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
    } else {
      int af = fam == 4 ? AF_INET : AF_INET6;
      inet_ntop(af, src, s, sizeof(s));
      inet_ntop(af, dst, d, sizeof(d));
      n = snprintf(out, cap, "PROXY TCP%d %s %s %d %d\r\n", fam, s, d, src_port, dst_port);
    }
    return n > 0 && (size_t)n < cap ? n : -1;
  }
  size_t alen = fam == 4 ? 12 : fam == 6 ? 36 : 0;
  if (cap < 16 + alen) return -1;
  unsigned char *o = (unsigned char *)out;
  memcpy(o, pk_pp_v2_sig, 12);
  o[12] = 0x21; /* version 2, PROXY */
  o[13] = fam == 4 ? 0x11 : fam == 6 ? 0x21 : 0x00;
  o[14] = 0;
  o[15] = (unsigned char)alen;
  size_t al = fam == 4 ? 4 : 16;
  if (fam) {
    memcpy(o + 16, src, al);
    memcpy(o + 16 + al, dst, al);
    o[16 + 2 * al] = (unsigned char)(src_port >> 8);
    o[17 + 2 * al] = (unsigned char)src_port;
    o[18 + 2 * al] = (unsigned char)(dst_port >> 8);
    o[19 + 2 * al] = (unsigned char)dst_port;
  }
  return (int)(16 + alen);
}

/* ---- v1 ---- */

/* The next space-separated field of line[*at..end): its length, or -1. */
static int field(const char *line, size_t end, size_t *at, char *out, size_t cap) {
  size_t s = *at, e = s;
  while (e < end && line[e] != ' ') e++;
  if (e == s || e - s >= cap) return -1;
  memcpy(out, line + s, e - s);
  out[e - s] = 0;
  *at = e < end ? e + 1 : e;
  if (e < end && *at == end) return -1; /* a trailing space */
  return (int)(e - s);
}

static int port_of(const char *t) {
  size_t n = strlen(t);
  if (n < 1 || n > 5) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return -1;
    v = v * 10 + (t[i] - '0');
  }
  return v <= 65535 ? v : -1;
}

static int parse_v1(const char *buf, size_t n, pk_pp_info *info, char *why, size_t whyn) {
  /* The CR of a line of at most 107 bytes is at offset 105 or before. */
  size_t lim = n < PK_PP_V1_MAX - 1 ? n : PK_PP_V1_MAX - 1, cr = 0;
  for (size_t i = 0; i < lim; i++) {
    unsigned char ch = (unsigned char)buf[i];
    if (ch == '\r') {
      cr = i;
      break;
    }
    if (ch == '\n' || ch < 0x20 || ch > 0x7e)
      return fail(why, whyn, "bad PROXY v1 header: control or non-ASCII byte 0x%02x", ch);
  }
  if (!cr) {
    if (n >= PK_PP_V1_MAX - 1) return fail(why, whyn, "bad PROXY v1 header: longer than 107 bytes");
    return PK_PP_NEED_MORE;
  }
  if (cr + 1 >= n) return PK_PP_NEED_MORE;
  if (buf[cr + 1] != '\n') return fail(why, whyn, "bad PROXY v1 header: CR without LF");
  info->len = cr + 2;
  size_t at = 6;
  char proto[16], s[48], d[48], sp[8], dp[8];
  if (field(buf, cr, &at, proto, sizeof(proto)) < 0)
    return fail(why, whyn, "bad PROXY v1 header: no protocol");
  if (strcmp(proto, "UNKNOWN") == 0) {
    info->local = 1; /* the rest of the line is ignored, as the spec says */
    return PK_PP_DONE;
  }
  int fam = strcmp(proto, "TCP4") == 0 ? 4 : strcmp(proto, "TCP6") == 0 ? 6 : 0;
  if (!fam) return fail(why, whyn, "bad PROXY v1 header: protocol %s is not TCP4, TCP6 or UNKNOWN", proto);
  if (field(buf, cr, &at, s, sizeof(s)) < 0 || field(buf, cr, &at, d, sizeof(d)) < 0 ||
      field(buf, cr, &at, sp, sizeof(sp)) < 0 || field(buf, cr, &at, dp, sizeof(dp)) < 0 || at != cr)
    return fail(why, whyn, "bad PROXY v1 header: want PROXY %s SRC DST SPORT DPORT", proto);
  unsigned char a[16];
  int af = fam == 4 ? AF_INET : AF_INET6;
  if (inet_pton(af, s, a) != 1 || inet_pton(af, d, a) != 1)
    return fail(why, whyn, "bad PROXY v1 header: not an IPv%d address", fam);
  int sport = port_of(sp), dport = port_of(dp);
  if (sport < 0 || dport < 0) return fail(why, whyn, "bad PROXY v1 header: port not 0-65535");
  info->family = fam;
  /* Written back in canonical form (so "::ffff:..." compares as we print). */
  inet_pton(af, s, a);
  inet_ntop(af, a, info->src_ip, sizeof(info->src_ip));
  inet_pton(af, d, a);
  inet_ntop(af, a, info->dst_ip, sizeof(info->dst_ip));
  info->src_port = sport;
  info->dst_port = dport;
  return PK_PP_DONE;
}

/* ---- v2 ---- */

static int parse_v2(const unsigned char *b, size_t n, pk_pp_info *info, char *why, size_t whyn) {
  if (n < 16) return PK_PP_NEED_MORE;
  if ((b[12] >> 4) != 2) return fail(why, whyn, "bad PROXY v2 header: version %d", b[12] >> 4);
  int cmd = b[12] & 0x0f;
  if (cmd > 1) return fail(why, whyn, "bad PROXY v2 header: command %d is not LOCAL or PROXY", cmd);
  size_t len = ((size_t)b[14] << 8) | b[15];
  if (16 + len > PK_PP_V2_MAX)
    return fail(why, whyn, "bad PROXY v2 header: %zu bytes, longer than %d", 16 + len, PK_PP_V2_MAX);
  int fam = b[13] >> 4, tp = b[13] & 0x0f;
  if (fam > 3 || tp > 2 || (fam == 0) != (tp == 0))
    return fail(why, whyn, "bad PROXY v2 header: address family 0x%02x", b[13]);
  if (tp == 2) return fail(why, whyn, "bad PROXY v2 header: a UDP connection");
  static const size_t need[4] = {0, 12, 36, 216};
  if (len < need[fam])
    return fail(why, whyn, "bad PROXY v2 header: %zu address bytes, too short for family 0x%02x", len,
                b[13]);
  if (n < 16 + len) return PK_PP_NEED_MORE;
  info->len = 16 + len;
  if (cmd == 0 || fam == 0 || fam == 3) { /* LOCAL, UNSPEC, UNIX: no IP of a client */
    info->local = 1;
    return PK_PP_DONE;
  }
  int af = fam == 1 ? AF_INET : AF_INET6;
  size_t al = fam == 1 ? 4 : 16;
  inet_ntop(af, b + 16, info->src_ip, sizeof(info->src_ip));
  inet_ntop(af, b + 16 + al, info->dst_ip, sizeof(info->dst_ip));
  info->src_port = (b[16 + 2 * al] << 8) | b[17 + 2 * al];
  info->dst_port = (b[18 + 2 * al] << 8) | b[19 + 2 * al];
  info->family = fam == 1 ? 4 : 6;
  return PK_PP_DONE;
}

int pk_pp_parse(const char *buf, size_t n, pk_pp_info *info, char *why, size_t whyn) {
  memset(info, 0, sizeof(*info));
  const unsigned char *b = (const unsigned char *)buf;
  size_t k1 = n < 6 ? n : 6, k2 = n < 12 ? n : 12;
  if (n > 0 && memcmp(buf, "PROXY ", k1) == 0) {
    if (n < 6) return PK_PP_NEED_MORE;
    info->version = 1;
    return parse_v1(buf, n, info, why, whyn);
  }
  if (n > 0 && memcmp(b, pk_pp_v2_sig, k2) == 0) {
    if (n < 12) return PK_PP_NEED_MORE;
    info->version = 2;
    return parse_v2(b, n, info, why, whyn);
  }
  if (n == 0) return PK_PP_NEED_MORE;
  if (n >= 5 && memcmp(buf, "PROXY", 5) == 0)
    return fail(why, whyn, "bad PROXY v1 header: no space after PROXY");
  return fail(why, whyn, "not a PROXY protocol header");
}

/* ---- CIDR networks ---- */

int pk_pp_cidr_parse(const char *text, pk_pp_cidr *out, char *why, size_t whyn) {
  memset(out, 0, sizeof(*out));
  if (!text || !*text) return fail(why, whyn, "empty network"), -1;
  char host[64];
  const char *slash = strchr(text, '/');
  size_t hl = slash ? (size_t)(slash - text) : strlen(text);
  if (hl == 0 || hl >= sizeof(host)) return fail(why, whyn, "bad network %.80s", text), -1;
  memcpy(host, text, hl);
  host[hl] = 0;
  int fam = addr_of(host, out->addr);
  if (fam == 4 && strchr(host, ':')) fam = 0; /* ::ffff:a.b.c.d/N: whose bits? refuse */
  if (!fam) return fail(why, whyn, "%.80s is not an IPv4 or IPv6 network (want ADDRESS[/BITS])", text), -1;
  int max = fam == 4 ? 32 : 128, bits = max;
  if (slash) {
    const char *p = slash + 1;
    if (!*p || strlen(p) > 3) return fail(why, whyn, "bad prefix length in %.80s", text), -1;
    bits = 0;
    for (; *p; p++) {
      if (*p < '0' || *p > '9') return fail(why, whyn, "bad prefix length in %.80s", text), -1;
      bits = bits * 10 + (*p - '0');
    }
    if (bits > max) return fail(why, whyn, "prefix length %d is over %d in %.80s", bits, max, text), -1;
  }
  out->family = fam;
  out->bits = bits;
  return 0;
}

int pk_pp_cidr_match(const pk_pp_cidr *net, const char *ip) {
  unsigned char a[16];
  int fam = addr_of(ip, a);
  if (!fam || fam != net->family) return 0;
  int full = net->bits / 8, rest = net->bits % 8;
  if (memcmp(a, net->addr, (size_t)full) != 0) return 0;
  if (!rest) return 1;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));
  return (a[full] & mask) == (net->addr[full] & mask);
}

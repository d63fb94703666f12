/* admin_render.c - the status snapshot as Prometheus text and as JSON, and
 * the admin listener's request router.  No sockets: fed a snapshot or the
 * bytes of a request head (tests/c/test_admin_render.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"

static const char *const reject_labels[] = {
#define PK_REJECT_LABEL(e, label) label,
    PK_REJECT_REASONS(PK_REJECT_LABEL)
#undef PK_REJECT_LABEL
};

const char *pk_reject_label(int reason) {
  return reason >= 0 && reason < PK_REJECT_N ? reject_labels[reason] : "other";
}

int pk_reject_from_kite_why(const char *why) {
  static const struct {
    const char *why;
    int reason;
  } map[] = {{"unknown", PK_REJECT_KITE_UNKNOWN}, {"signature", PK_REJECT_KITE_SIGNATURE},
             {"replay", PK_REJECT_KITE_REPLAY},
             {"proto", PK_REJECT_KITE_PROTO},     {"port", PK_REJECT_KITE_PORT},
             {"quota", PK_REJECT_KITE_QUOTA}};
  for (size_t i = 0; why && i < sizeof(map) / sizeof(map[0]); i++)
    if (strcmp(why, map[i].why) == 0) return map[i].reason;
  return PK_REJECT_KITE_UNKNOWN;
}

/* ---- a growing string ---- */
typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t more) {
  if (b->oom || b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1) cap *= 2;
  char *np = realloc(b->p, cap);
  if (!np) {
    b->oom = 1;
    return;
  }
  b->p = np;
  b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n) {
  sb_reserve(b, n);
  if (b->oom) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static char *sb_done(sbuf *b) {
  if (!b->oom && !b->p) sb_put(b, "", 0);
  if (b->oom) {
    free(b->p);
    return NULL;
  }
  return b->p;
}

/* ---- Prometheus text format 0.0.4 ---- */
/* A label value: backslash, double quote and line feed escaped. */
static void prom_label(sbuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\') sb_put(b, "\\\\", 2);
    else if (*s == '"') sb_put(b, "\\\"", 2);
    else if (*s == '\n') sb_put(b, "\\n", 2);
    else sb_put(b, s, 1);
  }
}

static void prom_head(sbuf *b, const char *name, const char *type, const char *help) {
  sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_one(sbuf *b, const char *name, const char *type, const char *help,
                     long long v) {
  prom_head(b, name, type, help);
  sb_printf(b, "%s %lld\n", name, v);
}

char *pk_render_metrics(const pk_snap *s) {
  sbuf b = {0};
  prom_head(&b, "pagekite_info", "gauge", "Always 1; the labels name the role and version.");
  sb_printf(&b, "pagekite_info{role=\"");
  prom_label(&b, s->role ? s->role : "");
  sb_printf(&b, "\",version=\"");
  prom_label(&b, s->version ? s->version : "");
  sb_printf(&b, "\"} 1\n");
  prom_one(&b, "pagekite_status_code", "gauge", "The manager's PK_STATUS_* code.",
           s->status_code);
  prom_one(&b, "pagekite_uptime_seconds", "gauge", "Seconds since the manager started.",
           s->uptime_s);
  prom_one(&b, "pagekite_tunnels", "gauge", "Live tunnels (handshake done).", s->tunnels_live);
  prom_one(&b, "pagekite_streams", "gauge", "Live streams over all tunnels.", s->streams_live);
  prom_one(&b, "pagekite_kites_live", "gauge", "Kites flying now.", s->kites_live);
  prom_one(&b, "pagekite_streams_opened_total", "counter", "Streams opened since start.",
           s->streams_total);
  prom_one(&b, "pagekite_tunnel_received_bytes_total", "counter",
           "Stream payload bytes received from tunnels.", s->bytes_in);
  prom_one(&b, "pagekite_tunnel_sent_bytes_total", "counter",
           "Stream payload bytes sent into tunnels.", s->bytes_out);
  prom_one(&b, "pagekite_errors_total", "counter", "Errors counted toward bail-on-errors.",
           s->errors);
  prom_head(&b, "pagekite_rejects_total", "counter",
            "Refused kites, visitors and connections, by reason.");
  for (int r = 0; r < PK_REJECT_N; r++)
    sb_printf(&b, "pagekite_rejects_total{reason=\"%s\"} %lld\n", pk_reject_label(r),
              s->rejects[r]);
  prom_head(&b, "pagekite_kite_up", "gauge", "1 for a kite flying now, 0 for one that is not.");
  for (int i = 0; i < s->nkites; i++) {
    const pk_snap_kite *k = &s->kites[i];
    sb_printf(&b, "pagekite_kite_up{kite=\"");
    prom_label(&b, k->name);
    sb_printf(&b, "\",proto=\"");
    prom_label(&b, k->proto);
    sb_printf(&b, "\",port=\"%d\"} %d\n", k->port, k->live ? 1 : 0);
  }
  static const struct {
    const char *name, *help;
    size_t off;
  } per_kite[] = {
      {"pagekite_kite_streams_opened_total", "Streams opened for the kite since start.",
       offsetof(pk_kstat, streams_total)},
      {"pagekite_kite_tunnel_received_bytes_total",
       "Stream payload bytes received from tunnels for the kite.", offsetof(pk_kstat, bytes_in)},
      {"pagekite_kite_tunnel_sent_bytes_total",
       "Stream payload bytes sent into tunnels for the kite.", offsetof(pk_kstat, bytes_out)}};
  for (size_t j = 0; j < sizeof(per_kite) / sizeof(per_kite[0]); j++) {
    prom_head(&b, per_kite[j].name, "counter", per_kite[j].help);
    for (int i = 0; i < s->nkstats; i++) {
      const pk_kstat *k = &s->kstats[i];
      sb_printf(&b, "%s{kite=\"", per_kite[j].name);
      prom_label(&b, k->name);
      sb_printf(&b, "\",proto=\"");
      prom_label(&b, k->proto);
      sb_printf(&b, "\",port=\"%d\"} %lld\n", k->port,
                *(const long long *)(const void *)((const char *)k + per_kite[j].off));
    }
  }
  prom_head(&b, "pagekite_kite_tunnel_streams", "gauge",
            "Live streams on the tunnel that flies the kite.");
  for (int i = 0; i < s->nkites; i++) {
    const pk_snap_kite *k = &s->kites[i];
    if (k->tunnel < 0 || k->tunnel >= s->ntunnels) continue;
    sb_printf(&b, "pagekite_kite_tunnel_streams{kite=\"");
    prom_label(&b, k->name);
    sb_printf(&b, "\",proto=\"");
    prom_label(&b, k->proto);
    sb_printf(&b, "\",port=\"%d\"} %d\n", k->port, s->tunnels[k->tunnel].streams);
  }
  return sb_done(&b);
}

/* ---- JSON ---- */
/* A JSON string; bytes outside printable ASCII as \u00XX, so the text is
 * valid JSON (and ASCII) whatever the name holds. */
static void json_str(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      sb_put(b, e, 2);
    } else if (*p < 0x20 || *p >= 0x7f) {
      sb_printf(b, "\\u%04x", *p);
    } else {
      sb_put(b, (const char *)p, 1);
    }
  }
  sb_put(b, "\"", 1);
}

char *pk_render_status_json(const pk_snap *s) {
  sbuf b = {0};
  sb_printf(&b, "{\"role\": ");
  json_str(&b, s->role ? s->role : "");
  sb_printf(&b, ", \"version\": ");
  json_str(&b, s->version ? s->version : "");
  sb_printf(&b, ", \"status\": ");
  json_str(&b, s->status ? s->status : "");
  sb_printf(&b, ", \"status_code\": %d, \"uptime_s\": %lld,\n", s->status_code, s->uptime_s);
  sb_printf(&b,
            " \"totals\": {\"kites_live\": %lld, \"tunnels\": %lld, \"streams\": %lld, "
            "\"streams_total\": %lld, \"bytes_in\": %lld, \"bytes_out\": %lld, "
            "\"rejected\": %lld, \"errors\": %lld},\n",
            s->kites_live, s->tunnels_live, s->streams_live, s->streams_total, s->bytes_in,
            s->bytes_out, s->rejected, s->errors);
  sb_printf(&b, " \"rejects\": {");
  for (int r = 0; r < PK_REJECT_N; r++)
    sb_printf(&b, "%s\"%s\": %lld", r ? ", " : "", pk_reject_label(r), s->rejects[r]);
  sb_printf(&b, "},\n \"tunnels\": [");
  for (int i = 0; i < s->ntunnels; i++) {
    const pk_snap_tunnel *t = &s->tunnels[i];
    sb_printf(&b, "%s\n  {\"id\": %d, \"peer\": ", i ? "," : "", i);
    json_str(&b, t->peer);
    sb_printf(&b,
              ", \"peer_port\": %d, \"age_s\": %lld, \"streams\": %d, \"bytes_in\": %lld, "
              "\"bytes_out\": %lld, \"kites\": [",
              t->peer_port, t->age_s, t->streams, t->bytes_in, t->bytes_out);
    int first = 1;
    for (int k = 0; k < s->nkites; k++) {
      if (s->kites[k].tunnel != i) continue;
      sb_printf(&b, "%s{\"proto\": ", first ? "" : ", ");
      json_str(&b, s->kites[k].proto);
      sb_printf(&b, ", \"name\": ");
      json_str(&b, s->kites[k].name);
      sb_printf(&b, ", \"port\": %d}", s->kites[k].port);
      first = 0;
    }
    sb_printf(&b, "]}");
  }
  sb_printf(&b, "],\n \"kites\": [");
  for (int i = 0; i < s->nkites; i++) {
    const pk_snap_kite *k = &s->kites[i];
    sb_printf(&b, "%s\n  {\"proto\": ", i ? "," : "");
    json_str(&b, k->proto);
    sb_printf(&b, ", \"name\": ");
    json_str(&b, k->name);
    sb_printf(&b, ", \"port\": %d, \"state\": ", k->port);
    json_str(&b, k->state ? k->state : "");
    if (k->tunnel >= 0)
      sb_printf(&b, ", \"tunnel\": %d}", k->tunnel);
    else
      sb_printf(&b, ", \"tunnel\": null}");
  }
  sb_printf(&b, "],\n \"traffic\": [");
  for (int i = 0; i < s->nkstats; i++) {
    const pk_kstat *k = &s->kstats[i];
    sb_printf(&b, "%s\n  {\"proto\": ", i ? "," : "");
    json_str(&b, k->proto);
    sb_printf(&b, ", \"name\": ");
    json_str(&b, k->name);
    sb_printf(&b, ", \"port\": %d, \"streams_total\": %lld, \"bytes_in\": %lld, "
              "\"bytes_out\": %lld}", k->port, k->streams_total, k->bytes_in, k->bytes_out);
  }
  sb_printf(&b, "]}\n");
  return sb_done(&b);
}

/* ---- requests ---- */
pk_admin_route_t pk_admin_route(const char *buf, size_t n) {
  const char *end = NULL;
  for (size_t i = 0; i + 1 < n && !end; i++) {
    if (buf[i] == '\n' && buf[i + 1] == '\n') end = buf + i;
    if (i + 3 < n && memcmp(buf + i, "\r\n\r\n", 4) == 0) end = buf + i;
  }
  if (!end) return n >= PK_ADMIN_HEAD_MAX ? PK_ADMIN_TOO_BIG : PK_ADMIN_NEED_MORE;
  if ((size_t)(end - buf) > PK_ADMIN_HEAD_MAX) return PK_ADMIN_TOO_BIG;
  /* METHOD SP target SP HTTP/1.x, all within the request line: a space
   * found past its end ("GET\r\nX /...") made the length below negative. */
  const char *eol = memchr(buf, '\n', n); /* the head's end has one */
  if (!eol) return PK_ADMIN_BAD_REQUEST;
  if (eol > buf && eol[-1] == '\r') eol--;
  const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
  if (!sp1 || sp1 == buf) return PK_ADMIN_BAD_REQUEST;
  const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
  if (!sp2 || sp2 == sp1 + 1 || eol - sp2 < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
    return PK_ADMIN_BAD_REQUEST;
  for (const char *p = buf; p < sp1; p++)
    if (*p < 'A' || *p > 'Z') return PK_ADMIN_BAD_REQUEST;
  size_t ml = (size_t)(sp1 - buf);
  if (!(ml == 3 && memcmp(buf, "GET", 3) == 0)) return PK_ADMIN_BAD_METHOD;
  const char *path = sp1 + 1;
  size_t pl = (size_t)(sp2 - path);
  const char *q = memchr(path, '?', pl);
  if (q) pl = (size_t)(q - path);
  if (pl == 8 && memcmp(path, "/metrics", 8) == 0) return PK_ADMIN_METRICS;
  if (pl == 12 && memcmp(path, "/status.json", 12) == 0) return PK_ADMIN_STATUS;
  return PK_ADMIN_NOT_FOUND;
}

int pk_admin_route_status(pk_admin_route_t r, const char **reason) {
  switch (r) {
    case PK_ADMIN_NOT_FOUND: *reason = "Not Found"; return 404;
    case PK_ADMIN_BAD_METHOD: *reason = "Method Not Allowed"; return 405;
    case PK_ADMIN_TOO_BIG: *reason = "Request Header Fields Too Large"; return 431;
    case PK_ADMIN_BAD_REQUEST: *reason = "Bad Request"; return 400;
    default: *reason = "OK"; return 200;
  }
}

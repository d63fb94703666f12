/* hooks.c - applying plugin decisions to streams: header rewrites and
 * rejection responses, shared by the relay and the connector. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "plugins.h"

static int listed(const char *csv, pk_slice name) {
  for (const char *p = csv; *p;) {
    while (*p == ',' || *p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    if ((size_t)(t - p) == name.n && name.n && strncasecmp(p, name.p, name.n) == 0) return 1;
    p = e;
  }
  return 0;
}

/* Rewrite an HTTP request head: drop del_headers, append add_headers.
 * Returns the new length, or -1 if it does not fit or does not parse. */
int pk_head_rewrite(const char *head, size_t hl, const pk_hook_result *r, char *out, size_t outsz) {
  pk_http_head h;
  if (pk_wire_parse_http_head(head, hl, hl, &h) != 1) return -1;
  const char *eol = memchr(head, '\n', hl);
  if (!eol) return -1;
  size_t off = (size_t)(eol - head) + 1;
  if (off >= outsz) return -1;
  memcpy(out, head, off);
  for (int i = 0; i < h.nheaders; i++) {
    if (listed(r->del_headers, h.names[i])) continue;
    int n = snprintf(out + off, outsz - off, "%.*s: %.*s\r\n", (int)h.names[i].n, h.names[i].p,
                     (int)h.values[i].n, h.values[i].p);
    if (n < 0 || (size_t)n >= outsz - off) return -1;
    off += (size_t)n;
  }
  int n = snprintf(out + off, outsz - off, "%s\r\n", r->add_headers);
  if (n < 0 || (size_t)n >= outsz - off) return -1;
  return (int)(off + (size_t)n);
}

/* The HTTP response for a REJECT decision. */
int pk_hook_reject_response(const pk_hook_result *r, char *out, size_t outsz) {
  int status = r->status >= 100 && r->status <= 999 ? r->status : 403;
  const char *reason = r->reason[0] ? r->reason : "Forbidden";
  int n = snprintf(out, outsz,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n%s\r\n%s",
                   status, reason, strlen(r->body), r->extra_headers, r->body);
  return (n < 0 || (size_t)n >= outsz) ? -1 : n;
}

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
  pk_wbuf b;
  pk_wbuf_init(&b, out, outsz);
  pk_wbuf_put(&b, head, (size_t)(eol - head) + 1);
  for (int i = 0; i < h.nheaders; i++)
    if (!listed(r->del_headers, h.names[i])) pk_wire_header_slice(&b, h.names[i], h.values[i]);
  pk_wbuf_puts(&b, r->add_headers);
  pk_wbuf_end(&b);
  return pk_wbuf_ok(&b) && b.len < outsz ? (int)b.len : -1;
}

/* The HTTP response for a REJECT decision. */
int pk_hook_reject_response(const pk_hook_result *r, char *out, size_t outsz) {
  int status = r->status >= 100 && r->status <= 999 ? r->status : 403;
  pk_wbuf b;
  pk_wbuf_init(&b, out, outsz);
  pk_wire_http_response(&b, status, r->reason[0] ? r->reason : "Forbidden", "text/html",
                        r->extra_headers, r->body, strlen(r->body));
  return pk_wbuf_ok(&b) && b.len < outsz ? (int)b.len : -1;
}

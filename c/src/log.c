/* log.c - the in-memory log ring behind pagekite_get_log, per-thread errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "internal.h"

static _Thread_local char pk_last_error_buf[1024] = "no error";
static _Thread_local int pk_last_error_code;

int pk_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pk_last_error_buf, sizeof(pk_last_error_buf), fmt, ap);
  va_end(ap);
  pk_last_error_code = code;
  return -1;
}

PK_API int pagekite_last_error_code(void) { return pk_last_error_code; }

const char *pk_get_error(void) { return pk_last_error_buf; }

/* Appends one line "<seq> <ts> <text>" to the ring when any of bits is in the
 * mask.  Logging counts nothing: bail-on-errors counts only local faults,
 * where they happen (pk_count_error), so remote peers cannot trigger it. */
void pk_log(pk_mgr *m, int bits, const char *fmt, ...) {
  if (!m) return;
  if (!(PK_GET(m->log_mask) & bits)) return;
  char text[PK_LOG_LINE_MAX - 40];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  for (char *p = text; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  uv_mutex_lock(&m->lock);
  pk_logring *r = &m->log;
  r->seq++;
  snprintf(r->lines[r->next], PK_LOG_LINE_MAX, "%llu t=%lld %s", r->seq, (long long)time(NULL),
           text);
  r->next = (r->next + 1) % PK_LOG_LINES;
  pk_event_locked(m, PK_EVENT_LOG, bits, NULL, NULL, text);
  uv_cond_broadcast(&m->cond);
  uv_mutex_unlock(&m->lock);
  if (m->log_stderr) fprintf(stderr, "[pk %s] %s\n", m->app_id, text);
}

pk_outbuf *pk_outbuf_mine(pk_mgr *m) {
  uv_thread_t self = uv_thread_self();
  for (pk_outbuf *b = m->outbufs; b; b = b->next)
    if (uv_thread_equal(&b->owner, &self)) return b;
  pk_outbuf *b = calloc(1, sizeof(*b));
  if (!b) return NULL;
  b->owner = self;
  b->next = m->outbufs;
  m->outbufs = b;
  return b;
}

void pk_outbufs_free(pk_mgr *m) {
  while (m->outbufs) {
    pk_outbuf *b = m->outbufs;
    m->outbufs = b->next;
    free(b->log);
    free(b->admin);
    free(b);
  }
}

/* Snapshot of the ring, oldest first, in the calling thread's buffer: the
 * next call from the same thread overwrites it (as documented). */
char *pk_log_snapshot(pk_mgr *m) {
  uv_mutex_lock(&m->lock);
  pk_logring *r = &m->log;
  pk_outbuf *ob = pk_outbuf_mine(m);
  size_t need = 1;
  for (int i = 0; i < PK_LOG_LINES; i++) need += strlen(r->lines[i]) + 1;
  if (ob && need > ob->log_size) {
    char *nb = realloc(ob->log, need);
    if (nb) {
      ob->log = nb;
      ob->log_size = need;
    }
  }
  if (!ob || need > ob->log_size) {
    uv_mutex_unlock(&m->lock);
    return (char *)"";
  }
  size_t off = 0;
  for (int i = 0; i < PK_LOG_LINES; i++) {
    const char *l = r->lines[(r->next + i) % PK_LOG_LINES];
    if (!*l) continue;
    size_t n = strlen(l);
    memcpy(ob->log + off, l, n);
    off += n;
    ob->log[off++] = '\n';
  }
  ob->log[off] = 0;
  m->events_seen = m->events;
  uv_mutex_unlock(&m->lock);
  return ob->log;
}

long pk_ratelimit_check(pk_mgr *m, pk_ratelimit *rl) {
  uint64_t now = pk_now_ms(m);
  if (rl->last_ms && now - rl->last_ms < 1000) {
    rl->suppressed++;
    return -1;
  }
  long n = rl->suppressed;
  rl->suppressed = 0;
  rl->last_ms = now ? now : 1;
  return n;
}

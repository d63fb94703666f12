/* events.c - the manager's event ring behind pagekite_next_events: status
 * changes, log lines, kite and tunnel changes, stream counts.  Every event
 * gets the next sequence number; a reader asks for what came after the last
 * one it saw, so it sees each event once, in order, or an explicit
 * PK_EVENT_LOST saying how many it missed.  Any thread may add or read;
 * m->lock guards the ring. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

int pk_events_init(pk_evring *r) {
  memset(r, 0, sizeof(*r));
  r->ev = calloc(PK_EVENTS_KEPT, sizeof(*r->ev));
  return r->ev ? 0 : -1;
}

void pk_events_free(pk_evring *r) {
  free(r->ev);
  r->ev = NULL;
}

static long long now_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Caller holds m->lock. */
static void push_locked(pk_mgr *m, int kind, int code, const char *proto, const char *name,
                        const char *text) {
  pk_evring *r = &m->evring;
  if (!r->ev) return;
  long long seq = ++r->last;
  pagekite_event *e = &r->ev[seq % PK_EVENTS_KEPT];
  memset(e, 0, sizeof(*e));
  e->version = PK_EVENT_VERSION;
  e->kind = kind;
  e->seq = seq;
  e->time_ms = now_ms();
  e->code = code;
  snprintf(e->proto, sizeof(e->proto), "%s", proto ? proto : "");
  snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
  snprintf(e->text, sizeof(e->text), "%s", text ? text : "");
  m->events++;
  uv_cond_broadcast(&m->cond);
}

void pk_event(pk_mgr *m, int kind, int code, const char *proto, const char *name,
              const char *text) {
  uv_mutex_lock(&m->lock);
  push_locked(m, kind, code, proto, name, text);
  uv_mutex_unlock(&m->lock);
}

void pk_event_locked(pk_mgr *m, int kind, int code, const char *proto, const char *name,
                     const char *text) {
  push_locked(m, kind, code, proto, name, text);
}

/* Copies events after `after` into out (at most max); a gap (events no
 * longer kept) becomes one PK_EVENT_LOST first.  Caller holds m->lock. */
static int copy_after(pk_mgr *m, long long after, pagekite_event *out, int max) {
  pk_evring *r = &m->evring;
  long long oldest = r->last - PK_EVENTS_KEPT + 1;
  int n = 0;
  if (oldest < 1) oldest = 1;
  if (after + 1 < oldest) {
    memset(&out[0], 0, sizeof(out[0]));
    out[0].version = PK_EVENT_VERSION;
    out[0].kind = PK_EVENT_LOST;
    out[0].seq = oldest - 1; /* continue after it */
    out[0].time_ms = now_ms();
    out[0].code = (int)(oldest - 1 - after);
    snprintf(out[0].text, sizeof(out[0].text), "%lld events were not read in time",
             oldest - 1 - after);
    n = 1;
    after = oldest - 1;
  }
  for (long long s = after + 1; s <= r->last && n < max; s++) out[n++] = r->ev[s % PK_EVENTS_KEPT];
  return n;
}

int pk_events_next(pk_mgr *m, long long after, pagekite_event *out, int max, int timeout_ms) {
  uv_mutex_lock(&m->lock);
  if (after == 0) { /* a new reader: from the oldest event kept, no gap */
    long long oldest = m->evring.last - PK_EVENTS_KEPT;
    after = oldest > 0 ? oldest : 0;
  }
  uint64_t deadline = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
  while (m->evring.last <= after) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    if (uv_cond_timedwait(&m->cond, &m->lock, deadline - now) != 0) break;
  }
  int n = m->evring.last > after ? copy_after(m, after, out, max) : 0;
  m->events_seen = m->events;
  uv_mutex_unlock(&m->lock);
  return n;
}

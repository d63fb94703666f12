/* manager.c - the loop thread, housekeeping tick, status, poll, watchdog,
 * bail-on-errors, TLS contexts. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "internal.h"

int pk_is_relay(pk_mgr *m) { return (m->flags & PK_AS_FRONTEND_RELAY) != 0; }

void pk_notify(pk_mgr *m) {
  uv_mutex_lock(&m->lock);
  m->events++;
  uv_cond_broadcast(&m->cond);
  uv_mutex_unlock(&m->lock);
}

void pk_counters_publish(pk_mgr *m) {
  long long live = 0;
  if (pk_is_relay(m)) live = (int)pk_reg_count(&m->rkites);
  else
    for (int i = 0; i < m->nkites; i++) live += m->kites[i].state == PK_KITE_LIVE;
  uv_mutex_lock(&m->lock);
  long long *c = m->counters_pub;
  c[PK_COUNTER_KITES_LIVE] = live;
  c[PK_COUNTER_TUNNELS] = m->tunnels_open;
  c[PK_COUNTER_STREAMS] = m->c_streams;
  c[PK_COUNTER_BYTES_IN] = m->c_bytes_in;
  c[PK_COUNTER_BYTES_OUT] = m->c_bytes_out;
  c[PK_COUNTER_STREAMS_TOTAL] = m->c_streams_total;
  c[PK_COUNTER_REJECTED] = m->c_rejected;
  uv_mutex_unlock(&m->lock);
}

static void on_publish(uv_check_t *h) { pk_counters_publish(h->data); }

void pk_set_status(pk_mgr *m, int status) {
  uv_mutex_lock(&m->lock);
  int changed = m->status != status;
  m->status = status;
  if (changed) pk_event_locked(m, PK_EVENT_STATUS, status, NULL, NULL, NULL);
  m->events++;
  uv_cond_broadcast(&m->cond);
  uv_mutex_unlock(&m->lock);
  if (changed) {
    pk_log(m, PK_LOG_MANAGER_INFO, "Status: %d", status);
    if (m->loop_ready) pk_plugins_on_status(m, status);
  }
}

/* After errors*9 problems the log gets louder; after errors*10 we exit(100),
 * as documented for pagekite_set_bail_on_errors. */
void pk_count_error(pk_mgr *m) { pk_count_faults(m, 1); }

void pk_count_faults(pk_mgr *m, int weight) {
  int n = __atomic_add_fetch(&m->error_count, weight, __ATOMIC_SEQ_CST);
  int limit = PK_GET(m->bail_errors);
  if (limit <= 0) return;
  if (n >= limit * 9 && n - weight < limit * 9) PK_SET(m->log_mask, PK_LOG_ALL);
  if (n >= limit * 10 && n - weight < limit * 10) {
    char why[96];
    snprintf(why, sizeof(why), "too many errors (%d), bailing out", n);
    pk_process_exit(m, 100, why);
  }
}

/* Every exit()/abort() of the library is here.  With
 * PK_WITHOUT_PROCESS_EXIT the host keeps its process: the manager says why
 * (log line + PK_EVENT_EXIT) and stops as pagekite_thread_stop() would ask;
 * the host's pagekite_thread_wait() then returns. */
void pk_process_exit(pk_mgr *m, int code, const char *why) {
  if (m->flags & PK_WITHOUT_PROCESS_EXIT) {
    pk_log(m, PK_LOG_ERROR, "%s; stopping the manager (PK_WITHOUT_PROCESS_EXIT)", why);
    pk_event(m, PK_EVENT_EXIT, code, NULL, NULL, why);
    PK_SET(m->stop_requested, 1);
    pk_manager_wake(m);
    return;
  }
  fprintf(stderr, "pagekite: %s\n", why);
  if (code == 134) abort();
  exit(code);
}

SSL_CTX *pk_client_tls_ctx(pk_mgr *m) {
  if (m->client_ctx) return m->client_ctx;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  char ciphers[sizeof(m->ciphers)]; /* pagekite_set_openssl_ciphers writes it any time */
  uv_mutex_lock(&m->lock);
  memcpy(ciphers, m->ciphers, sizeof(ciphers));
  uv_mutex_unlock(&m->lock);
  if (ciphers[0] && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
    pk_count_error(m);
    pk_log(m, PK_LOG_ERROR, "Bad cipher list: %s", ciphers);
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (m->tls_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, pk_tls_verify_cb);
    int ok = m->ca_file[0] ? SSL_CTX_load_verify_locations(ctx, m->ca_file, NULL)
                           : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
      pk_count_error(m);
    pk_log(m, PK_LOG_ERROR, "Cannot load CA certificates from %s",
             m->ca_file[0] ? m->ca_file : "the system store");
      SSL_CTX_free(ctx);
      return NULL;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  m->client_ctx = ctx;
  return ctx;
}

/* A stream with one direction finished that stays silent is not coming back
 * (a client that gave up on a silent origin, say): close it after
 * evict_idle_s when eviction is on, else after PK_HALF_CLOSED_IDLE_MS. */
static void reap_half_closed(pk_mgr *m, uint64_t now) {
  int evict_s = PK_GET(m->evict_idle_s);
  uint64_t limit = evict_s > 0 ? (uint64_t)evict_s * 1000 : PK_HALF_CLOSED_IDLE_MS;
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind != PK_CK_STREAM || (c->flags & PK_CF_CLOSING)) continue;
    if (!(c->flags & (PK_CF_PEER_R | PK_CF_PEER_W | PK_CF_READ_EOF))) continue;
    if (now - c->last_activity < limit) continue;
    pk_log(m, PK_LOG_BE_CONNS, "Closing half-closed idle stream %lld", c->sid);
    pk_stream_kill(c, 1);
  }
}

/* While a tunnel waits for room (rx_blocked: a stream's queue or the block
 * pool cannot take its next chunk) or conns wait for blocks to read into
 * (nobuf_waiting: the pool is down to its read reserve), output that nobody
 * reads holds up every stream of that tunnel, or every conn when the pool is
 * what is short: a stalled client or origin (unauthenticated, any number
 * from one address) must not do that for PK_WRITE_STALL_MS.  A stream whose queued output made
 * no progress for PK_BLOCKED_STALL_MS is closed then; slow readers make
 * progress and stay. */
static void reap_blocking_stalls(pk_mgr *m, uint64_t now) {
  if (m->rx_blocked <= 0 && m->nobuf_waiting <= 0) return;
  for (int i = 0; i < m->nconns; i++) {
    pk_conn *c = &m->conns[i];
    if (c->kind != PK_CK_STREAM || (c->flags & (PK_CF_CLOSING | PK_CF_CONNECTING))) continue;
    if (c->wq_bytes == 0 || now - c->last_write_ok < PK_BLOCKED_STALL_MS) continue;
    pk_log(m, PK_LOG_BE_CONNS, "Stream %lld: peer %s read nothing for %d s while a tunnel waits "
           "for room: closing", c->sid, c->rip, PK_BLOCKED_STALL_MS / 1000);
    pk_stream_kill(c, 1);
  }
}

static void housekeep(pk_mgr *m) {
  uint64_t now = pk_now_ms(m);
  /* A change made before the loop ran (its wake-up may have come first). */
  if (__atomic_exchange_n(&m->reconfigured, 0, __ATOMIC_RELAXED) && m->role->reconfigure)
    m->role->reconfigure(m);
  PK_SET(m->watchdog_beat, m->watchdog_beat + 1); /* only the loop writes it */
  reap_half_closed(m, now);
  reap_blocking_stalls(m, now);
  pk_conns_housekeep(m, now);
  for (int i = 0; i < m->ntunnels; i++)
    if (m->tunnels[i].in_use) pk_tunnel_housekeep(&m->tunnels[i], now);
  m->role->housekeep(m);
  if (m->c_streams != m->evring.streams_told) {
    m->evring.streams_told = m->c_streams;
    pk_event(m, PK_EVENT_STREAMS, m->c_streams, NULL, NULL, NULL);
  }
  if (now - m->last_plugin_tick >= 1000) {
    m->last_plugin_tick = now;
    pk_plugins_on_tick(m);
  }
}

static void on_tick(uv_timer_t *t) {
  pk_mgr *m = t->data;
  housekeep(m);
}

/* Anything still open after the stop request (should be nothing). */
static void close_all(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_wake(uv_async_t *a) {
  pk_mgr *m = a->data;
  if (PK_GET(m->stop_requested)) {
    pk_plugins_stop(m);
    pk_admin_stop(m);
    m->role->stop(m);
    for (int i = 0; i < m->ntunnels; i++)
      if (m->tunnels[i].in_use) pk_tunnel_kill(&m->tunnels[i], "shutting down");
    for (int i = 0; i < m->nconns; i++)
      if (m->conns[i].kind != PK_CK_FREE) pk_conn_close(&m->conns[i]);
    uv_close((uv_handle_t *)&m->tick, NULL);
    uv_close((uv_handle_t *)&m->wake, NULL);
    uv_close((uv_handle_t *)&m->publish, NULL);
    return;
  }
  if (__atomic_exchange_n(&m->reconfigured, 0, __ATOMIC_RELAXED) && m->role->reconfigure)
    m->role->reconfigure(m);
  if (__atomic_exchange_n(&m->tick_requested, 0, __ATOMIC_RELAXED)) housekeep(m);
  pk_admin_on_wake(m);
  int timer_on = PK_GET(m->tick_timer_on);
  if (timer_on && !uv_is_active((uv_handle_t *)&m->tick))
    uv_timer_start(&m->tick, on_tick, 250, 250);
  if (!timer_on && uv_is_active((uv_handle_t *)&m->tick)) uv_timer_stop(&m->tick);
}

/* libuv writes sockets with write()/writev(), which raise SIGPIPE on a peer
 * that is gone (libuv issue #1013); there is no MSG_NOSIGNAL to pass and
 * Linux has no SO_NOSIGPIPE.  The signal is sent to the thread that wrote,
 * and every socket write of a manager happens on its loop thread, so that
 * thread blocks SIGPIPE: the write fails with EPIPE, the pending signal is
 * dropped when the thread ends, and the host's disposition is untouched. */
static void block_sigpipe(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void run_loop(void *arg) {
  pk_mgr *m = arg;
  block_sigpipe();
  pk_plugins_adopt_thread(m);
  if (m->role->start(m) != 0)
    pk_log(m, PK_LOG_MANAGER_ERROR, "Startup failed: %s", pk_get_error());
  if (PK_GET(m->tick_timer_on)) uv_timer_start(&m->tick, on_tick, 250, 250);
  housekeep(m);
  uv_run(&m->loop, UV_RUN_DEFAULT);
  /* Drain close callbacks of anything still open. */
  uv_walk(&m->loop, close_all, m);
  uv_run(&m->loop, UV_RUN_DEFAULT);
  pk_counters_publish(m);
  uv_mutex_lock(&m->lock);
  PK_SET(m->running, 0);
  m->events++;
  uv_cond_broadcast(&m->cond);
  uv_mutex_unlock(&m->lock);
}

static void watchdog_main(void *arg) {
  pk_mgr *m = arg;
  int last = -1, stuck = 0;
  while (1) {
    for (int i = 0; i < 10; i++) {
      usleep(100 * 1000);
      if (!PK_GET(m->running) || PK_GET(m->stop_requested)) return;
    }
    int beat = PK_GET(m->watchdog_beat);
    if (beat == last && PK_GET(m->tick_timer_on)) {
      if (++stuck >= 30) {
        pk_process_exit(m, 134, "watchdog: loop stuck for 30 s, aborting");
        return;
      }
    } else {
      stuck = 0;
    }
    last = beat;
  }
}

int pk_manager_start(pk_mgr *m) {
  if (uv_loop_init(&m->loop) != 0)
    return pk_fail(PK_ENOMEM, "pagekite_thread_start: cannot set up the event loop");
  m->loop.data = m;
  uv_async_init(&m->loop, &m->wake, on_wake);
  m->wake.data = m;
  uv_timer_init(&m->loop, &m->tick);
  m->tick.data = m;
  uv_check_init(&m->loop, &m->publish);
  m->publish.data = m;
  uv_check_start(&m->publish, on_publish);
  uv_unref((uv_handle_t *)&m->publish);
  m->loop_ready = 1;
  /* Listeners are bound here so that a busy port fails thread_start. */
  /* Plugins load here too: one that cannot load fails thread_start (its
   * rules would not apply), before anything is served. */
  if (m->role->bind(m) != 0 || pk_plugins_start(m) != 0 || pk_admin_bind(m) != 0) {
    pk_plugins_stop(m);
    m->role->stop(m);
    pk_admin_stop(m);
    uv_close((uv_handle_t *)&m->wake, NULL);
    uv_close((uv_handle_t *)&m->tick, NULL);
    uv_close((uv_handle_t *)&m->publish, NULL);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_loop_close(&m->loop);
    m->loop_ready = 0;
    return -1;
  }
  PK_SET(m->running, 1);
  m->started = 1;
  int rv = uv_thread_create(&m->thread, run_loop, m);
  if (rv != 0) {
    PK_SET(m->running, 0);
    pk_fail(PK_ENOMEM, "pagekite_thread_start: cannot start the thread: %s", uv_strerror(rv));
    return rv;
  }
  if (m->watchdog_on) uv_thread_create(&m->watchdog, watchdog_main, m);
  return 0;
}

void pk_manager_tick_soon(pk_mgr *m) {
  PK_SET(m->tick_requested, 1);
  uv_async_send(&m->wake);
}

void pk_manager_wake(pk_mgr *m) {
  if (m->loop_ready && PK_GET(m->running)) uv_async_send(&m->wake);
}

int pk_manager_join(pk_mgr *m) {
  if (!m->started || m->thread_joined) return -1;
  int rv = uv_thread_join(&m->thread);
  m->thread_joined = 1;
  if (m->watchdog_on) uv_thread_join(&m->watchdog);
  uv_loop_close(&m->loop);
  m->loop_ready = 0;
  return rv;
}

int pk_manager_poll(pk_mgr *m, int timeout_s) {
  /* Waits for events after the caller last looked (get_status, get_log or
   * poll), so a change between its look and this call is not missed. */
  uv_mutex_lock(&m->lock);
  uint64_t deadline = uv_hrtime() + (uint64_t)(timeout_s > 0 ? timeout_s : 0) * 1000000000ull;
  while (m->events == m->events_seen && m->running) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    if (uv_cond_timedwait(&m->cond, &m->lock, deadline - now) != 0) break;
  }
  m->events_seen = m->events;
  uv_mutex_unlock(&m->lock);
  return 0;
}

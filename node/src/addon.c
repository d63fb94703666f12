/* addon.c - the hand-written half of the Node addon.
 *
 * - Manager handles: a pagekite_mgr wrapped in a frozen, type-tagged JS
 *   object.  Once the manager is freed the handle holds NULL, so every later
 *   call fails safely (libpagekite accepts a NULL manager everywhere).
 * - The argument and result helpers the generated glue (glue_generated.c)
 *   calls: wrong types throw TypeError, never reach the library.
 * - The event bridge: start(handle, callback) starts the master thread and a
 *   waiter thread that blocks in pagekite_next_events() and hands each batch
 *   of events to JS through a napi_threadsafe_function, in order.  stop(handle) stops the master thread, joins
 *   the waiter and frees the manager on a worker thread (napi async work),
 *   then releases the thread-safe function so that nothing keeps the event
 *   loop alive.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addon.h"

enum { EV_NONE, EV_ACTIVE, EV_RELEASED };
enum { PKN_BATCH_EVENTS, PKN_BATCH_DONE };

/* Events per pagekite_next_events() call, and how long one call waits (ms):
 * the waiter notices stop_flag within that time. */
#define PKN_BATCH_MAX 64
#define PKN_WAIT_MS 100

/* What the waiter hands to the JS thread: events in order, or "done". */
typedef struct pkn_batch {
  int kind;
  int n;
  pagekite_event ev[PKN_BATCH_MAX];
} pkn_batch;

struct pkn_handle {
  pagekite_mgr mgr;          /* NULL once freed */
  pthread_mutex_t buf_lock;  /* held while the glue calls and copies pagekite_get_log() */
  pthread_mutex_t join_lock; /* serializes joining the waiter */
  /* Owned by the JS thread. */
  int ev;      /* EV_*: state of the thread-safe function */
  int closing; /* stop() runs on a worker: calls see a NULL manager */
  int orphan;  /* the JS object was finalized while something still used h */
  napi_threadsafe_function tsfn;
  napi_ref self;     /* keeps the handle object alive while events run */
  napi_ref work_ref; /* ... and while stop() runs */
  napi_deferred deferred;
  napi_async_work work;
  int stop_rc;
  char stop_err[256];
  /* The waiter thread. */
  int waiter_started;
  int waiter_joined; /* under join_lock */
  pthread_t waiter;
  atomic_int stop_flag;
  long long after; /* waiter only, once started: the last seq handed on */
};

static const napi_type_tag pkn_tag = {0x7061676b6974656eULL, 0x6f64652d6d677231ULL};

/* ---------------------------------------------------------------- errors */

static int throw_type(napi_env env, const char *fn, const char *name, const char *what) {
  char msg[320];
  snprintf(msg, sizeof(msg), "%s: %s must be %s", fn, name, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return -1;
}

static int throw_range(napi_env env, const char *fn, const char *name, const char *what) {
  char msg[320];
  snprintf(msg, sizeof(msg), "%s: %s must be %s", fn, name, what);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return -1;
}

/* ---------------------------------------------------------------- arguments */

int pkn_argv(napi_env env, napi_callback_info info, const char *fn, size_t n, napi_value *argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc > n) {
    char msg[200];
    snprintf(msg, sizeof(msg), "%s: expected %zu argument%s, got %zu", fn, n, n == 1 ? "" : "s",
             argc);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return -1;
  }
  return 0;
}

static napi_valuetype type_of(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  if (napi_typeof(env, v, &t) != napi_ok) return napi_undefined;
  return t;
}

static pkn_handle *unwrap_handle(napi_env env, napi_value v) {
  if (type_of(env, v) != napi_object) return NULL;
  bool ours = false;
  if (napi_check_object_type_tag(env, v, &pkn_tag, &ours) != napi_ok || !ours) return NULL;
  void *p = NULL;
  if (napi_unwrap(env, v, &p) != napi_ok) return NULL;
  return p;
}

int pkn_arg_mgr(napi_env env, napi_value v, const char *fn, const char *name, pkn_handle **h,
                pagekite_mgr *mgr) {
  *h = NULL;
  *mgr = NULL;
  if (type_of(env, v) == napi_null) return 0;
  pkn_handle *p = unwrap_handle(env, v);
  if (!p) return throw_type(env, fn, name, "a manager handle (from init) or null");
  *h = p;
  *mgr = p->closing ? NULL : p->mgr;
  return 0;
}

int pkn_arg_int(napi_env env, napi_value v, const char *fn, const char *name, int *out) {
  if (type_of(env, v) != napi_number) return throw_type(env, fn, name, "an integer number");
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!isfinite(d)) return throw_type(env, fn, name, "a finite integer number");
  if (d < (double)INT_MIN || d > (double)INT_MAX)
    return throw_range(env, fn, name, "a 32-bit signed integer");
  if (d != (double)(int)d) return throw_type(env, fn, name, "an integer number");
  *out = (int)d;
  return 0;
}

int pkn_arg_int64(napi_env env, napi_value v, const char *fn, const char *name, long long *out) {
  if (type_of(env, v) != napi_number) return throw_type(env, fn, name, "an integer number");
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!isfinite(d) || d != (double)(long long)d) return throw_type(env, fn, name, "an integer number");
  if (d < -9007199254740991.0 || d > 9007199254740991.0)
    return throw_range(env, fn, name, "a safe integer (|n| < 2^53)");
  *out = (long long)d;
  return 0;
}

/* Room for count structs of size bytes for an out-array argument: count
 * must be 1..max (a JS number checked by pkn_arg_int already). */
void *pkn_out_array(napi_env env, const char *fn, const char *name, int count, int max,
                    size_t size) {
  if (count < 1 || count > max) {
    char what[64];
    snprintf(what, sizeof(what), "an integer from 1 to %d", max);
    throw_range(env, fn, name, what);
    return NULL;
  }
  void *p = calloc((size_t)count, size);
  if (!p) napi_throw_error(env, "ERR_PAGEKITE_NOMEM", "out of memory");
  return p;
}

int pkn_arg_str(napi_env env, napi_value v, const char *fn, const char *name, int nullable,
                char **out) {
  *out = NULL;
  napi_valuetype t = type_of(env, v);
  if (nullable && (t == napi_null || t == napi_undefined)) return 0;
  if (t != napi_string) return throw_type(env, fn, name, nullable ? "a string or null" : "a string");
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, NULL, "out of memory");
    return -1;
  }
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return -1;
  }
  if (strlen(s) != len) {
    free(s);
    return throw_type(env, fn, name, "a string without NUL characters");
  }
  *out = s;
  return 0;
}

void pkn_free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

int pkn_arg_strv(napi_env env, napi_value v, const char *fn, const char *name, int nullable,
                 char ***out) {
  *out = NULL;
  napi_valuetype t = type_of(env, v);
  if (nullable && (t == napi_null || t == napi_undefined)) return 0;
  bool is_array = false;
  if (t == napi_object) napi_is_array(env, v, &is_array);
  if (!is_array)
    return throw_type(env, fn, name,
                      nullable ? "an array of strings or null" : "an array of strings");
  uint32_t n = 0;
  if (napi_get_array_length(env, v, &n) != napi_ok) return -1;
  if (n > 4096) return throw_range(env, fn, name, "at most 4096 strings long");
  char **list = calloc((size_t)n + 1, sizeof(char *));
  if (!list) {
    napi_throw_error(env, NULL, "out of memory");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    char label[96];
    snprintf(label, sizeof(label), "%s[%u]", name, i);
    if (napi_get_element(env, v, i, &item) != napi_ok ||
        pkn_arg_str(env, item, fn, label, 0, &list[i]) != 0) {
      pkn_free_strv(list);
      return -1;
    }
  }
  *out = list;
  return 0;
}

/* ---------------------------------------------------------------- results */

napi_value pkn_ret_undefined(napi_env env) {
  napi_value v = NULL;
  napi_get_undefined(env, &v);
  return v;
}

napi_value pkn_ret_int(napi_env env, int r) {
  napi_value v = NULL;
  napi_create_int32(env, r, &v);
  return v;
}

napi_value pkn_ret_int64(napi_env env, long long r) {
  napi_value v = NULL;
  napi_create_int64(env, (int64_t)r, &v);
  return v;
}

napi_value pkn_ret_str(napi_env env, const char *r) {
  napi_value v = NULL;
  if (!r)
    napi_get_null(env, &v);
  else
    napi_create_string_utf8(env, r, NAPI_AUTO_LENGTH, &v);
  return v;
}

static void handle_destroy(pkn_handle *h) {
  pthread_mutex_destroy(&h->buf_lock);
  pthread_mutex_destroy(&h->join_lock);
  free(h);
}

/* The handle object was collected (or the environment is shutting down). */
static void handle_finalize(napi_env env, void *data, void *hint) {
  pkn_handle *h = data;
  if (h->ev != EV_NONE || h->closing) {
    h->orphan = 1; /* the event bridge or stop() frees it when done */
    return;
  }
  if (h->mgr) pagekite_free(h->mgr);
  handle_destroy(h);
}

napi_value pkn_ret_mgr(napi_env env, pagekite_mgr r) {
  napi_value v = NULL;
  if (!r) {
    napi_get_null(env, &v);
    return v;
  }
  pkn_handle *h = calloc(1, sizeof(*h));
  if (!h) {
    pagekite_free(r);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  h->mgr = r;
  pthread_mutex_init(&h->buf_lock, NULL);
  pthread_mutex_init(&h->join_lock, NULL);
  atomic_init(&h->stop_flag, 0);
  if (napi_create_object(env, &v) != napi_ok ||
      napi_wrap(env, v, h, handle_finalize, NULL, NULL) != napi_ok) {
    pagekite_free(r);
    handle_destroy(h);
    return NULL;
  }
  napi_type_tag_object(env, v, &pkn_tag);
  napi_object_freeze(env, v);
  return v;
}

void pkn_lock_buffer(pkn_handle *h) {
  if (h) pthread_mutex_lock(&h->buf_lock);
}

void pkn_unlock_buffer(pkn_handle *h) {
  if (h) pthread_mutex_unlock(&h->buf_lock);
}

/* ---------------------------------------------------------------- the waiter */

static pkn_batch *batch_new(int kind) {
  pkn_batch *b = calloc(1, sizeof(*b));
  if (b) b->kind = kind;
  return b;
}

/* Waits for events after h->after and queues them for JS, until stop_flag;
 * then takes what is left without waiting, so stop() delivers every event. */
static void *waiter_main(void *arg) {
  pkn_handle *h = arg;
  pkn_batch *b = NULL;
  for (;;) {
    int stopping = atomic_load(&h->stop_flag);
    if (!b) b = batch_new(PKN_BATCH_EVENTS);
    if (b) {
      b->ev[0].version = PK_EVENT_VERSION;
      b->n = pagekite_next_events(h->mgr, h->after, b->ev, PKN_BATCH_MAX,
                                  stopping ? 0 : PKN_WAIT_MS);
    }
    if (b && b->n > 0) {
      h->after = b->ev[b->n - 1].seq;
      napi_status st = napi_call_threadsafe_function(h->tsfn, b, napi_tsfn_nonblocking);
      if (st != napi_ok) free(b);
      b = NULL;
      if (st == napi_closing) break;
      continue; /* more may be waiting: read on before looking at stop_flag */
    }
    if (stopping) break;
    if (!b || b->n < 0) { /* no memory, or the manager refused: do not spin */
      struct timespec pause = {0, PKN_WAIT_MS * 1000 * 1000};
      nanosleep(&pause, NULL);
    }
  }
  free(b);
  return NULL;
}

static void join_waiter(pkn_handle *h) {
  pthread_mutex_lock(&h->join_lock);
  if (h->waiter_started && !h->waiter_joined) {
    pthread_join(h->waiter, NULL);
    h->waiter_joined = 1;
  }
  pthread_mutex_unlock(&h->join_lock);
}

static int waiter_joined(pkn_handle *h) {
  pthread_mutex_lock(&h->join_lock);
  int j = !h->waiter_started || h->waiter_joined;
  pthread_mutex_unlock(&h->join_lock);
  return j;
}

/* ---------------------------------------------------------------- JS side of events */

static void settle(napi_env env, pkn_handle *h) {
  if (h->deferred) {
    napi_value v = NULL;
    if (h->stop_rc == 0) {
      napi_get_undefined(env, &v);
      napi_resolve_deferred(env, h->deferred, v);
    } else {
      napi_value msg = NULL;
      napi_create_string_utf8(env, h->stop_err, NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, NULL, msg, &v);
      napi_reject_deferred(env, h->deferred, v);
    }
    h->deferred = NULL;
  }
  if (h->work_ref) {
    napi_delete_reference(env, h->work_ref);
    h->work_ref = NULL;
  }
}

static void set_int64(napi_env env, napi_value obj, const char *key, long long n) {
  napi_value v;
  if (napi_create_int64(env, (int64_t)n, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *s, size_t max) {
  napi_value v;
  if (napi_create_string_utf8(env, s, strnlen(s, max), &v) == napi_ok)
    napi_set_named_property(env, obj, key, v);
}

/* The same object as binding.nextEvents() returns for one event. */
static napi_value event_object(napi_env env, const pagekite_event *e) {
  napi_value obj = NULL;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  set_int64(env, obj, "version", e->version);
  set_int64(env, obj, "kind", e->kind);
  set_int64(env, obj, "seq", e->seq);
  set_int64(env, obj, "timeMs", e->time_ms);
  set_int64(env, obj, "code", e->code);
  set_str(env, obj, "proto", e->proto, sizeof(e->proto));
  set_str(env, obj, "name", e->name, sizeof(e->name));
  set_str(env, obj, "text", e->text, sizeof(e->text));
  return obj;
}

static void deliver(napi_env env, napi_value cb, const pagekite_event *e) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value arg = event_object(env, e), undef;
  napi_get_undefined(env, &undef);
  if (arg) napi_call_function(env, undef, cb, 1, &arg, NULL);
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err); /* like a throwing listener anywhere else */
  }
  napi_close_handle_scope(env, scope);
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  pkn_handle *h = context;
  pkn_batch *b = data;
  if (env && b->kind == PKN_BATCH_DONE) {
    /* Everything the waiter sent came before this: finish stop(). */
    settle(env, h);
    if (h->ev == EV_ACTIVE) {
      h->ev = EV_RELEASED;
      napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
    }
  } else if (env && cb) {
    for (int i = 0; i < b->n; i++) deliver(env, cb, &b->ev[i]);
  }
  free(b);
}

/* The thread-safe function is gone: after stop(), after a raw lifecycle call,
 * or because the environment shuts down.  Nothing may call it after this
 * returns, so the waiter is stopped and joined here. */
static void tsfn_finalize(napi_env env, void *data, void *hint) {
  pkn_handle *h = data;
  atomic_store(&h->stop_flag, 1);
  if (!waiter_joined(h)) {
    if (!h->closing && h->mgr) pagekite_thread_stop(h->mgr); /* wakes the waiter */
    join_waiter(h);
  }
  h->ev = EV_NONE;
  h->tsfn = NULL;
  if (h->self) {
    napi_delete_reference(env, h->self);
    h->self = NULL;
  }
  if (h->orphan && !h->closing) {
    if (h->mgr) pagekite_free(h->mgr);
    handle_destroy(h);
  }
}

void pkn_quiesce(napi_env env, pkn_handle *h) {
  if (!h || h->closing || h->ev != EV_ACTIVE) return;
  atomic_store(&h->stop_flag, 1);
  join_waiter(h); /* at most one poll interval */
  h->ev = EV_RELEASED;
  napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
}

void pkn_forget(napi_env env, pkn_handle *h, int rc) {
  if (h && rc == 0 && !h->closing) h->mgr = NULL;
}

static int get_handle(napi_env env, napi_value v, const char *fn, pkn_handle **h) {
  pagekite_mgr unused;
  if (pkn_arg_mgr(env, v, fn, "handle", h, &unused) != 0) return -1;
  if (!*h) return throw_type(env, fn, "handle", "a manager handle (from init)");
  return 0;
}

/* start(handle, callback) -> the pagekite_thread_start() result.  On success
 * callback(event) follows from the event loop for every event, with the
 * fields of binding.nextEvents()' objects: first a STATUS event with seq 0
 * (the status before the thread ran, not from the ring), then the ring's
 * events from the oldest kept, in order. */
static napi_value pkn_start(napi_env env, napi_callback_info info) {
  static const char fn[] = "start";
  napi_value argv[2];
  pkn_handle *h = NULL;
  if (pkn_argv(env, info, fn, 2, argv) != 0 || get_handle(env, argv[0], fn, &h) != 0)
    return NULL;
  if (type_of(env, argv[1]) != napi_function) {
    throw_type(env, fn, "callback", "a function");
    return NULL;
  }
  if (h->ev != EV_NONE || h->waiter_started) {
    napi_throw_error(env, "ERR_PAGEKITE_STATE", "start: this manager was already started");
    return NULL;
  }
  if (h->closing || !h->mgr) return pkn_ret_int(env, pagekite_thread_start(NULL));
  int s0 = pagekite_get_status(h->mgr);
  napi_value name;
  napi_create_string_utf8(env, "pagekite-events", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, h, tsfn_finalize, h,
                                      call_js, &h->tsfn) != napi_ok)
    return NULL;
  h->ev = EV_ACTIVE;
  int rc = pagekite_thread_start(h->mgr);
  if (rc != 0) {
    h->ev = EV_RELEASED;
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
    return pkn_ret_int(env, rc);
  }
  napi_create_reference(env, argv[0], 1, &h->self);
  h->after = 0;
  pkn_batch *first = batch_new(PKN_BATCH_EVENTS);
  if (first) {
    first->n = 1;
    first->ev[0] = (pagekite_event)PAGEKITE_EVENT_INIT;
    first->ev[0].kind = PK_EVENT_STATUS;
    first->ev[0].time_ms = (long long)time(NULL) * 1000;
    first->ev[0].code = s0;
    if (napi_call_threadsafe_function(h->tsfn, first, napi_tsfn_nonblocking) != napi_ok)
      free(first);
  }
  atomic_store(&h->stop_flag, 0);
  h->waiter_joined = 0;
  if (pthread_create(&h->waiter, NULL, waiter_main, h) != 0) {
    pagekite_thread_stop(h->mgr);
    h->ev = EV_RELEASED;
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
    napi_throw_error(env, "ERR_PAGEKITE_THREAD", "start: cannot create the event thread");
    return NULL;
  }
  h->waiter_started = 1;
  return pkn_ret_int(env, 0);
}

static void stop_execute(napi_env env, void *data) {
  pkn_handle *h = data;
  if (h->waiter_started) {
    if (!waiter_joined(h)) pagekite_thread_stop(h->mgr); /* also wakes the waiter */
    atomic_store(&h->stop_flag, 1);
    join_waiter(h);
  }
  h->stop_rc = pagekite_free(h->mgr);
  if (h->stop_rc != 0) snprintf(h->stop_err, sizeof(h->stop_err), "%s", pagekite_last_error());
}

static void stop_complete(napi_env env, napi_status status, void *data) {
  pkn_handle *h = data;
  h->mgr = NULL;
  h->closing = 0;
  napi_delete_async_work(env, h->work);
  h->work = NULL;
  if (status != napi_ok && h->stop_rc == 0) {
    h->stop_rc = -1;
    snprintf(h->stop_err, sizeof(h->stop_err), "stop: cancelled");
  }
  if (h->ev == EV_ACTIVE) {
    pkn_batch *done = batch_new(PKN_BATCH_DONE);
    if (done && napi_call_threadsafe_function(h->tsfn, done, napi_tsfn_nonblocking) == napi_ok)
      return; /* settled after the events queued before it */
    free(done);
    h->ev = EV_RELEASED;
    napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
  }
  settle(env, h);
}

/* stop(handle) -> Promise: stop the master thread and the waiter, free the
 * manager, off the JS thread.  Resolves after the last event was delivered. */
static napi_value pkn_stop(napi_env env, napi_callback_info info) {
  static const char fn[] = "stop";
  napi_value argv[1], promise;
  pkn_handle *h = NULL;
  if (pkn_argv(env, info, fn, 1, argv) != 0 || get_handle(env, argv[0], fn, &h) != 0)
    return NULL;
  if (h->closing) {
    napi_throw_error(env, "ERR_PAGEKITE_STATE", "stop: already stopping");
    return NULL;
  }
  napi_deferred deferred;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) return NULL;
  if (!h->mgr) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, deferred, undef);
    return promise;
  }
  napi_value name;
  napi_create_string_utf8(env, "pagekite-stop", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, stop_execute, stop_complete, h, &h->work) !=
      napi_ok) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_reject_deferred(env, deferred, undef);
    return promise;
  }
  h->deferred = deferred;
  h->closing = 1;
  h->stop_rc = 0;
  h->stop_err[0] = 0;
  napi_create_reference(env, argv[0], 1, &h->work_ref);
  if (h->ev == EV_ACTIVE) napi_ref_threadsafe_function(env, h->tsfn);
  napi_queue_async_work(env, h->work);
  return promise;
}

/* ref(handle) / unref(handle): whether running events keep Node alive. */
static napi_value ref_common(napi_env env, napi_callback_info info, const char *fn, int ref) {
  napi_value argv[1];
  pkn_handle *h = NULL;
  if (pkn_argv(env, info, fn, 1, argv) != 0 || get_handle(env, argv[0], fn, &h) != 0)
    return NULL;
  if (h->ev == EV_ACTIVE && !h->closing) {
    if (ref)
      napi_ref_threadsafe_function(env, h->tsfn);
    else
      napi_unref_threadsafe_function(env, h->tsfn);
  }
  return pkn_ret_undefined(env);
}

static napi_value pkn_ref(napi_env env, napi_callback_info info) {
  return ref_common(env, info, "ref", 1);
}

static napi_value pkn_unref(napi_env env, napi_callback_info info) {
  return ref_common(env, info, "unref", 0);
}

/* ---------------------------------------------------------------- registration */

int pkn_define(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_property_descriptor d = {name, NULL, cb, NULL, NULL, NULL, napi_enumerable, NULL};
  return napi_define_properties(env, exports, 1, &d) == napi_ok ? 0 : -1;
}

static int define_value(napi_env env, napi_value exports, const char *name, napi_value v) {
  napi_property_descriptor d = {name, NULL, NULL, NULL, NULL, v, napi_enumerable, NULL};
  return napi_define_properties(env, exports, 1, &d) == napi_ok ? 0 : -1;
}

int pkn_const_int(napi_env env, napi_value exports, const char *name, long long value) {
  napi_value v;
  if (napi_create_int64(env, (int64_t)value, &v) != napi_ok) return -1;
  return define_value(env, exports, name, v);
}

int pkn_const_str(napi_env env, napi_value exports, const char *name, const char *value) {
  napi_value v;
  if (napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v) != napi_ok) return -1;
  return define_value(env, exports, name, v);
}

NAPI_MODULE_INIT() {
  if (pkn_register_generated(env, exports) != 0 || pkn_define(env, exports, "start", pkn_start) ||
      pkn_define(env, exports, "stop", pkn_stop) || pkn_define(env, exports, "ref", pkn_ref) ||
      pkn_define(env, exports, "unref", pkn_unref))
    return NULL;
  return exports;
}

/* authapp.c - the relay's auth apps: "--authdomain=[kite-domain:]/path/to/app".
 *
 * pagekite.py's AuthApp (pk.py), run off the loop: every process is started
 * with uv_spawn, its stdout read through a pipe, its exit reaped by libuv.
 * At start each app is asked "--capabilities" (authapp_proto.h has the
 * protocol).  An app listing SERVER runs as one long-lived "--server" child
 * that gets one query a line and answers one line; as in pagekite.py (which
 * holds a lock around it) one query is with it at a time, the others wait
 * in order.  Any other app runs once per query ("app --auth NAME"), at most
 * PK_AUTHAPP_ACTIVE at once.  An app listing ZK-AUTH is asked "--zk-auth"
 * (it checks the signature; its answer reads as a DNS answer, authdns.c),
 * any other "--auth" (it tells the kite's secret; the relay checks the
 * signature and forgets the secret).
 *
 * Bounds, beyond pagekite.py (which blocks a thread on the app forever):
 *  - a query is answered within PK_AUTHAPP_TIMEOUT_MS of being asked, its
 *    wait for a turn included; past that it fails (open, or closed with
 *    --authfail_closed) and a one-shot process still at it is killed; a
 *    server that owes an answer that long is killed and restarted (its
 *    answer stream can no longer be trusted to be in step), and a late
 *    answer to a query that already failed is dropped;
 *  - at most PK_AUTHAPP_WAITING queries wait per app; past that one fails
 *    at once;
 *  - answers are at most PK_AUTHAPP_LINE_MAX bytes, strict JSON; a longer
 *    or malformed one fails its query, and a server that sends it (or a
 *    line nobody asked for) is restarted;
 *  - a server that exits or closes its stdout fails the query it held and
 *    is started again after PK_AUTHAPP_BACKOFF_MIN_MS, doubling up to
 *    PK_AUTHAPP_BACKOFF_MAX_MS while it fails to answer; the queries that
 *    wait keep waiting (within their time);
 *  - logs never hold an answer's bytes (an --auth answer holds a secret);
 *  - every child is reaped; at shutdown each gets SIGTERM (a server's stdin
 *    closed first), then SIGKILL after PK_AUTHAPP_KILL_GRACE_MS, and the
 *    loop ends only once all are gone.
 * Everything here runs on the loop thread; answers go out from loop
 * callbacks only (a query is started from a timer, never inside the
 * session's own call).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "authapp_proto.h"
#include "internal.h"

enum { CK_CAPS = 1, CK_QUERY, CK_SERVER };

typedef struct pk_authapp_q {
  struct pk_authapp_q *next;
  pk_tunnel *t; /* NULL once the tunnel is gone */
  pk_kite_req k;
  uint64_t deadline;
} pk_authapp_q;

typedef struct pk_authapp pk_authapp;

typedef struct pk_authapp_child {
  uv_process_t proc;
  uv_pipe_t in, out;
  uv_write_t wr;
  struct pk_authapp_child *next;
  pk_authapp *app;
  int kind, has_in, open_handles;
  int exited, eof, released, closing;
  int64_t status;
  int termsig;
  uint64_t deadline; /* CK_CAPS, CK_QUERY: killed when it passes */
  pk_authapp_q *q;   /* CK_QUERY: its query, until answered */
  size_t outlen;
  int overflow;
  char obuf[PK_AUTHAPP_LINE_MAX + 1]; /* CK_CAPS, CK_QUERY: all of stdout */
  pk_authapp_linebuf lb;             /* CK_SERVER: the answer being read */
  char rbuf[4096];
  char wbuf[PK_AUTHAPP_ARG_MAX + 16];
} pk_authapp_child;

struct pk_authapp {
  struct pk_authapp *next;
  pk_mgr *m;
  char path[PK_NAME_MAX];
  int caps; /* -1 until --capabilities answered */
  pk_authapp_child *children;
  pk_authapp_child *server, *caps_child;
  pk_authapp_q *queue;    /* waiting, oldest first */
  pk_authapp_q *inflight; /* with the server */
  int owed;                 /* the server owes an answer (to inflight, or to a query that
                             * timed out: that answer is dropped when it comes) */
  uint64_t sent_at;         /* when the owed query was written */
  int nwaiting, nqueries;
  uv_timer_t timer;
  int timer_on, stopping, timer_closed;
  uint64_t retry_at, term_at, kill_at;
  int termed;
  int backoff_ms;
};

static uint64_t now_ms(pk_authapp *a) { return uv_now(&a->m->loop); }

static void arm(pk_authapp *a);
static void kick(pk_authapp *a);

/* ---- queries ---- */
static void q_free(pk_authapp_q *q) { free(q); }

/* The query failed (timeout, crash, malformed answer): open or closed. */
static void q_fail(pk_authapp *a, pk_authapp_q *q, const char *what) {
  if (q->t) {
    const char *why = NULL;
    char w[200];
    snprintf(w, sizeof(w), "auth app %s: %s", a->path, what);
    int ok = pk_authq_fail(a->m, &q->k, w, &why);
    pk_relay_auth_answer(q->t, &q->k, ok, why, NULL, 0, 0, 0);
  }
  q_free(q);
}

/* A refusal that is no lookup failure (a kite name the app cannot be asked). */
static void q_refuse(pk_authapp *a, pk_authapp_q *q, const char *reason) {
  if (q->t) pk_relay_auth_answer(q->t, &q->k, 0, reason, NULL, 0, 0, 0);
  q_free(q);
}

/* The app's answer to q (s: the line, stripped by the parser). 0, or -1
 * when it was malformed (q has been failed). */
static int q_answer(pk_authapp *a, pk_authapp_q *q, const char *s, size_t n) {
  pk_mgr *m = a->m;
  const char *why = NULL;
  char what[160];
  pk_authdns_answer ans;
  if (a->caps & PK_AUTHAPP_CAP_ZK) {
    unsigned char ip[4];
    char cname[PK_AUTHDNS_NAME_MAX + 1];
    if (pk_authapp_parse_zk(s, n, ip, cname, sizeof(cname), &why) != 0 ||
        pk_authdns_decode(ip, cname, &ans) != 0) {
      snprintf(what, sizeof(what), "malformed --zk-auth answer (%s)",
               why ? why : "its hostname is not an auth CNAME");
      q_fail(a, q, what);
      return -1;
    }
    if (q->t) pk_authq_reply(m, q->t, &q->k, &ans, pk_authdns_refusal(&ans), a->path);
    q_free(q);
    return 0;
  }
  pk_authapp_auth au;
  if (pk_authapp_parse_auth(s, n, &au, &why) != 0) {
    snprintf(what, sizeof(what), "malformed --auth answer (%s)", why);
    q_fail(a, q, what);
    return -1;
  }
  int sig_ok = 0;
  if (au.secret[0]) {
    /* The signature as the connector made it: over its kite name ('*'
     * included; pagekite.py checks "_any_" there, which no wildcard kite
     * signs). */
    char payload[sizeof(q->k.what) + PK_TOKEN_LEN + 8];
    snprintf(payload, sizeof(payload), "%s:%s", q->k.what, q->k.token);
    sig_ok = pk_check_signature(q->k.sign, au.secret, payload, (long long)time(NULL));
  }
  const char *refusal = NULL;
  int rv = pk_authapp_auth_verdict(&au, sig_ok, &ans, &refusal);
  OPENSSL_cleanse(au.secret, sizeof(au.secret)); /* the relay keeps no secret */
  if (rv != 0) {
    q_fail(a, q, "its --auth answer has neither \"secret\" nor \"error\"");
    return -1;
  }
  if (refusal && strcmp(refusal, "signature") == 0)
    pk_log(m, PK_LOG_MANAGER_ERROR, "Invalid signature for: %s (%s)", q->k.name, q->k.protoport);
  if (q->t) pk_authq_reply(m, q->t, &q->k, &ans, refusal, a->path);
  q_free(q);
  return 0;
}

/* The oldest waiting query whose tunnel is still there (others dropped). */
static pk_authapp_q *pop(pk_authapp *a) {
  while (a->queue) {
    pk_authapp_q *q = a->queue;
    a->queue = q->next;
    a->nwaiting--;
    q->next = NULL;
    if (q->t) return q;
    q_free(q);
  }
  return NULL;
}

/* The query's argument; a name that cannot be passed is refused. */
static int q_arg(pk_authapp *a, pk_authapp_q *q, char *arg, size_t n) {
  const pk_kite_req *k = &q->k;
  if (pk_authapp_arg(!!(a->caps & PK_AUTHAPP_CAP_ZK), k->bsalt, k->token, k->sign, k->protoport,
                     k->name, a->path, arg, n) == 0)
    return 0;
  pk_log(a->m, PK_LOG_MANAGER_ERROR, "Kite %s:%s: its name cannot be passed to auth app %s",
         k->protoport, k->name, a->path);
  q_refuse(a, q, "unauthorized");
  return -1;
}

/* ---- children ---- */
static void child_closed(uv_handle_t *h) {
  pk_authapp_child *ch = h->data;
  if (--ch->open_handles > 0) return;
  pk_authapp *a = ch->app;
  for (pk_authapp_child **p = &a->children; *p; p = &(*p)->next)
    if (*p == ch) {
      *p = ch->next;
      break;
    }
  free(ch);
  arm(a); /* at shutdown: the app may be done now */
}

static void close_pipes(pk_authapp_child *ch) {
  if (ch->closing) return;
  ch->closing = 1;
  if (!uv_is_closing((uv_handle_t *)&ch->out)) uv_close((uv_handle_t *)&ch->out, child_closed);
  if (ch->has_in && !uv_is_closing((uv_handle_t *)&ch->in))
    uv_close((uv_handle_t *)&ch->in, child_closed);
}

/* The app logic is done with ch: killed if still running, its handles
 * closed (the process handle once it is reaped). */
static void release(pk_authapp_child *ch) {
  if (ch->released) return;
  ch->released = 1;
  close_pipes(ch);
  if (!ch->exited) uv_process_kill(&ch->proc, SIGKILL);
  else if (!uv_is_closing((uv_handle_t *)&ch->proc)) uv_close((uv_handle_t *)&ch->proc, child_closed);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int termsig);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  pk_authapp_child *ch = h->data;
  (void)hint;
  *buf = uv_buf_init(ch->rbuf, sizeof(ch->rbuf));
}

static pk_authapp_child *spawn(pk_authapp *a, int kind, const char *opt, const char *arg) {
  pk_mgr *m = a->m;
  pk_authapp_child *ch = calloc(1, sizeof(*ch));
  if (!ch) {
    pk_log(m, PK_LOG_MANAGER_ERROR, "Auth app %s: out of memory", a->path);
    return NULL;
  }
  ch->app = a;
  ch->kind = kind;
  ch->has_in = kind == CK_SERVER;
  uv_pipe_init(&m->loop, &ch->out, 0);
  ch->out.data = ch;
  ch->open_handles = 2;
  if (ch->has_in) {
    uv_pipe_init(&m->loop, &ch->in, 0);
    ch->in.data = ch;
    ch->open_handles++;
  }
  ch->proc.data = ch;
  char *argv[4] = {a->path, (char *)opt, (char *)arg, NULL};
  uv_stdio_container_t io[3];
  io[0].flags = ch->has_in ? (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE) : UV_IGNORE;
  io[0].data.stream = (uv_stream_t *)&ch->in;
  io[1].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  io[1].data.stream = (uv_stream_t *)&ch->out;
  io[2].flags = UV_INHERIT_FD; /* the app's complaints go where ours go */
  io[2].data.fd = 2;
  uv_process_options_t o;
  memset(&o, 0, sizeof(o));
  o.exit_cb = on_exit_cb;
  o.file = a->path;
  o.args = argv;
  o.stdio = io;
  o.stdio_count = 3;
  ch->next = a->children;
  a->children = ch;
  int rv = uv_spawn(&m->loop, &ch->proc, &o);
  if (rv != 0) {
    pk_log(m, PK_LOG_MANAGER_ERROR, "Auth app %s: cannot run it: %s", a->path, uv_strerror(rv));
    ch->exited = 1; /* nothing to reap */
    ch->released = 1;
    close_pipes(ch);
    uv_close((uv_handle_t *)&ch->proc, child_closed);
    return NULL;
  }
  uv_read_start((uv_stream_t *)&ch->out, on_alloc, on_read);
  return ch;
}

/* ---- the --server child ---- */
static void backoff(pk_authapp *a) {
  a->retry_at = now_ms(a) + (uint64_t)a->backoff_ms;
  a->backoff_ms = a->backoff_ms * 2 > PK_AUTHAPP_BACKOFF_MAX_MS ? PK_AUTHAPP_BACKOFF_MAX_MS
                                                                 : a->backoff_ms * 2;
}

/* The server is gone or can no longer be trusted: the query it held fails,
 * it is killed and started again later. */
static void server_lost(pk_authapp *a, const char *why) {
  pk_authapp_child *ch = a->server;
  if (!ch) return;
  a->server = NULL;
  int delay = a->backoff_ms;
  backoff(a);
  if (!a->stopping)
    pk_log(a->m, PK_LOG_MANAGER_ERROR, "Auth app %s --server (pid %d): %s; restarting it in %d ms",
           a->path, ch->proc.pid, why, delay);
  release(ch);
  pk_authapp_q *q = a->inflight;
  a->inflight = NULL;
  a->owed = 0;
  if (q) q_fail(a, q, why);
  arm(a);
}

static void on_written(uv_write_t *w, int status) {
  pk_authapp_child *ch = w->data;
  if (status != 0 && ch->app->server == ch && !ch->released) {
    char why[96];
    snprintf(why, sizeof(why), "writing a query to it failed (%s)", uv_strerror(status));
    server_lost(ch->app, why);
  }
}

static void server_line(pk_authapp_child *ch) {
  pk_authapp *a = ch->app;
  pk_authapp_q *q = a->inflight;
  if (!a->owed) {
    server_lost(a, "it sent a line nobody asked for");
    return;
  }
  a->inflight = NULL;
  a->owed = 0;
  if (!q) a->backoff_ms = PK_AUTHAPP_BACKOFF_MIN_MS; /* late, for a query that timed out */
  else if (q_answer(a, q, ch->lb.buf, ch->lb.len) == 0) a->backoff_ms = PK_AUTHAPP_BACKOFF_MIN_MS;
  OPENSSL_cleanse(ch->lb.buf, sizeof(ch->lb.buf));
  pk_authapp_line_reset(&ch->lb);
  kick(a); /* the next query goes now */
}

static void server_read(pk_authapp_child *ch, const char *p, size_t n) {
  while (n && !ch->released && ch->app->server == ch) {
    size_t used = 0;
    int rv = pk_authapp_line_feed(&ch->lb, p, n, &used);
    p += used;
    n -= used;
    if (rv < 0) {
      OPENSSL_cleanse(ch->lb.buf, sizeof(ch->lb.buf));
      char why[96];
      snprintf(why, sizeof(why), "an answer over %d bytes", PK_AUTHAPP_LINE_MAX);
      server_lost(ch->app, why);
      return;
    }
    if (rv == 1) server_line(ch);
  }
}

static int server_send(pk_authapp *a, pk_authapp_q *q) {
  pk_authapp_child *ch = a->server;
  char arg[PK_AUTHAPP_ARG_MAX];
  if (q_arg(a, q, arg, sizeof(arg)) != 0) return -1;
  int n = snprintf(ch->wbuf, sizeof(ch->wbuf), "%s %s\n",
                   (a->caps & PK_AUTHAPP_CAP_ZK) ? "--zk-auth" : "--auth", arg);
  uv_buf_t b = uv_buf_init(ch->wbuf, (unsigned)n);
  ch->wr.data = ch;
  a->inflight = q;
  a->owed = 1;
  a->sent_at = now_ms(a);
  int rv = uv_write(&ch->wr, (uv_stream_t *)&ch->in, &b, 1, on_written);
  if (rv != 0) {
    char why[96];
    snprintf(why, sizeof(why), "writing a query to it failed (%s)", uv_strerror(rv));
    server_lost(a, why);
  }
  return 0;
}

/* ---- one-shot children (--capabilities, --auth, --zk-auth) ---- */
static void caps_done(pk_authapp_child *ch, const char *fail) {
  pk_authapp *a = ch->app;
  if (a->caps_child == ch) a->caps_child = NULL;
  if (fail || a->stopping) {
    if (fail && !a->stopping) {
      int delay = a->backoff_ms;
      backoff(a);
      pk_log(a->m, PK_LOG_MANAGER_ERROR, "Auth app %s --capabilities: %s; asking again in %d ms",
             a->path, fail, delay);
    }
    release(ch);
    arm(a);
    return;
  }
  a->caps = pk_authapp_caps(ch->obuf, ch->outlen);
  a->backoff_ms = PK_AUTHAPP_BACKOFF_MIN_MS;
  a->retry_at = 0;
  pk_log(a->m, PK_LOG_MANAGER_INFO, "Auth app %s: %s%s%s (asked with %s, %s)", a->path,
         (a->caps & PK_AUTHAPP_CAP_SERVER) ? "SERVER " : "",
         (a->caps & PK_AUTHAPP_CAP_AUTH) ? "AUTH" : "",
         (a->caps & PK_AUTHAPP_CAP_ZK) ? ((a->caps & PK_AUTHAPP_CAP_AUTH) ? " ZK-AUTH" : "ZK-AUTH") : "",
         (a->caps & PK_AUTHAPP_CAP_ZK) ? "--zk-auth" : "--auth",
         (a->caps & PK_AUTHAPP_CAP_SERVER) ? "one --server child" : "one process per query");
  if (!(a->caps & (PK_AUTHAPP_CAP_AUTH | PK_AUTHAPP_CAP_ZK)))
    pk_log(a->m, PK_LOG_MANAGER_ERROR,
           "Auth app %s lists neither AUTH nor ZK-AUTH: asking it --auth, as pagekite.py does",
           a->path);
  release(ch);
  kick(a);
}

/* A one-shot child ended (exited and its stdout closed), or failed. */
static void oneshot_done(pk_authapp_child *ch, const char *fail) {
  char why[96];
  if (!fail && ch->overflow) {
    snprintf(why, sizeof(why), "an answer over %d bytes", PK_AUTHAPP_LINE_MAX);
    fail = why;
  } else if (!fail && ch->termsig) {
    snprintf(why, sizeof(why), "killed by signal %d", ch->termsig);
    fail = why;
  } else if (!fail && ch->status) {
    snprintf(why, sizeof(why), "exited with status %lld", (long long)ch->status);
    fail = why;
  }
  if (ch->kind == CK_CAPS) {
    caps_done(ch, fail);
    return;
  }
  pk_authapp *a = ch->app;
  pk_authapp_q *q = ch->q;
  ch->q = NULL;
  a->nqueries--;
  release(ch);
  if (q) {
    if (fail) q_fail(a, q, fail);
    else q_answer(a, q, ch->obuf, ch->outlen);
  }
  OPENSSL_cleanse(ch->obuf, sizeof(ch->obuf));
  kick(a);
}

static void child_progress(pk_authapp_child *ch) {
  if (ch->released || ch->kind == CK_SERVER) return;
  if (ch->exited && ch->eof) oneshot_done(ch, NULL);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pk_authapp_child *ch = s->data;
  (void)buf;
  if (nread == 0) return;
  if (nread < 0) {
    uv_read_stop(s);
    ch->eof = 1;
    if (ch->kind == CK_SERVER) {
      if (ch->app->server == ch) server_lost(ch->app, "it closed its stdout");
      return;
    }
    child_progress(ch);
    return;
  }
  if (ch->released) return;
  if (ch->kind == CK_SERVER) {
    server_read(ch, ch->rbuf, (size_t)nread);
    OPENSSL_cleanse(ch->rbuf, (size_t)nread); /* an answer may hold a secret */
    return;
  }
  size_t room = (ch->kind == CK_CAPS ? 1024 : PK_AUTHAPP_LINE_MAX) - ch->outlen;
  if ((size_t)nread > room) {
    ch->overflow = 1;
    OPENSSL_cleanse(ch->rbuf, (size_t)nread);
    oneshot_done(ch, NULL);
    return;
  }
  memcpy(ch->obuf + ch->outlen, ch->rbuf, (size_t)nread);
  OPENSSL_cleanse(ch->rbuf, (size_t)nread);
  ch->outlen += (size_t)nread;
  ch->obuf[ch->outlen] = 0;
}

static void on_exit_cb(uv_process_t *p, int64_t status, int termsig) {
  pk_authapp_child *ch = p->data;
  ch->exited = 1;
  ch->status = status;
  ch->termsig = termsig;
  if (ch->app->stopping)
    pk_log(ch->app->m, PK_LOG_MANAGER_INFO, "Auth app %s (pid %d) ended", ch->app->path, p->pid);
  if (ch->released) {
    if (!uv_is_closing((uv_handle_t *)p)) uv_close((uv_handle_t *)p, child_closed);
    return;
  }
  if (ch->kind == CK_SERVER) {
    char why[96];
    if (termsig) snprintf(why, sizeof(why), "it was killed by signal %d", termsig);
    else snprintf(why, sizeof(why), "it exited with status %lld", (long long)status);
    if (ch->app->server == ch) server_lost(ch->app, why);
    else release(ch);
    return;
  }
  child_progress(ch);
}

/* ---- the app's clock: starts, deadlines, restarts ---- */
static void pump(pk_authapp *a) {
  uint64_t now = now_ms(a);
  if (a->stopping) return;
  if (a->caps < 0) {
    if (!a->caps_child && now >= a->retry_at) {
      a->caps_child = spawn(a, CK_CAPS, "--capabilities", NULL);
      if (a->caps_child) a->caps_child->deadline = now + PK_AUTHAPP_TIMEOUT_MS;
      else backoff(a);
    }
    return;
  }
  if (a->caps & PK_AUTHAPP_CAP_SERVER) {
    if (!a->server && now >= a->retry_at) {
      a->server = spawn(a, CK_SERVER, "--server", NULL);
      if (a->server) pk_log(a->m, PK_LOG_MANAGER_INFO, "Auth app %s --server started (pid %d)",
                            a->path, a->server->proc.pid);
      else backoff(a);
    }
    while (a->server && !a->owed && a->queue) {
      pk_authapp_q *q = pop(a);
      if (q && server_send(a, q) == 0) break;
    }
    return;
  }
  while (a->nqueries < PK_AUTHAPP_ACTIVE && a->queue) {
    pk_authapp_q *q = pop(a);
    char arg[PK_AUTHAPP_ARG_MAX];
    if (!q || q_arg(a, q, arg, sizeof(arg)) != 0) continue;
    pk_authapp_child *ch =
        spawn(a, CK_QUERY, (a->caps & PK_AUTHAPP_CAP_ZK) ? "--zk-auth" : "--auth", arg);
    if (!ch) {
      q_fail(a, q, "it could not be run");
      continue;
    }
    ch->q = q;
    ch->deadline = q->deadline;
    a->nqueries++;
  }
}

static void timeouts(pk_authapp *a) {
  uint64_t now = now_ms(a);
  char why[96];
  snprintf(why, sizeof(why), "no answer within %d ms", PK_AUTHAPP_TIMEOUT_MS);
  for (;;) { /* waiting too long (oldest first): one at a time, answers may re-enter */
    pk_authapp_q **p = &a->queue;
    while (*p && (*p)->t && (*p)->deadline > now) p = &(*p)->next;
    if (!*p) break;
    pk_authapp_q *q = *p;
    *p = q->next;
    a->nwaiting--;
    q_fail(a, q, why);
  }
  if (a->inflight && a->inflight->deadline <= now) { /* the query fails; its answer is owed */
    pk_authapp_q *q = a->inflight;
    a->inflight = NULL;
    q_fail(a, q, why);
  }
  if (a->owed && a->sent_at + PK_AUTHAPP_TIMEOUT_MS <= now) server_lost(a, why);
  for (int again = 1; again;) {
    again = 0;
    for (pk_authapp_child *ch = a->children; ch; ch = ch->next)
      if (!ch->released && ch->kind != CK_SERVER && ch->deadline && ch->deadline <= now) {
        oneshot_done(ch, why);
        again = 1;
        break;
      }
  }
}

/* Anything the clock must watch (a healthy idle server needs nothing). */
static int busy(const pk_authapp *a) {
  if (a->stopping) return a->children != NULL;
  if (a->caps < 0 || a->queue || a->owed) return 1;
  if ((a->caps & PK_AUTHAPP_CAP_SERVER) && !a->server) return 1;
  for (const pk_authapp_child *ch = a->children; ch; ch = ch->next)
    if (ch != a->server) return 1;
  return 0;
}

static void on_timer_closed(uv_handle_t *h) {
  pk_authapp *a = h->data;
  a->timer_closed = 1;
  pk_mgr *m = a->m;
  for (pk_authapp **p = &m->authapps; *p; p = &(*p)->next)
    if (*p == a) {
      *p = a->next;
      break;
    }
  free(a);
}

static void on_timer(uv_timer_t *t) {
  pk_authapp *a = t->data;
  if (a->stopping) {
    uint64_t now = now_ms(a);
    int sig = now >= a->kill_at ? SIGKILL : now >= a->term_at && !a->termed ? SIGTERM : 0;
    if (sig == SIGTERM) a->termed = 1;
    for (pk_authapp_child *ch = a->children; sig && ch; ch = ch->next)
      if (!ch->exited) uv_process_kill(&ch->proc, sig);
  } else {
    timeouts(a);
    pump(a);
  }
  arm(a);
}

/* Runs the app's clock while it has anything to do; at shutdown, frees the
 * app once its children are gone. */
static void arm(pk_authapp *a) {
  if (a->timer_closed || uv_is_closing((uv_handle_t *)&a->timer)) return;
  if (a->stopping && !a->children) {
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
    return;
  }
  int want = busy(a);
  if (want && !a->timer_on) uv_timer_start(&a->timer, on_timer, 0, 100);
  if (!want && a->timer_on) uv_timer_stop(&a->timer);
  a->timer_on = want;
}

/* The clock's next turn comes at once (the loop's next iteration). */
static void kick(pk_authapp *a) {
  if (a->timer_closed || uv_is_closing((uv_handle_t *)&a->timer)) return;
  uv_timer_start(&a->timer, on_timer, 0, 100);
  a->timer_on = 1;
}

/* ---- the relay's side ---- */
static pk_authapp *find_app(pk_mgr *m, const char *path) {
  for (pk_authapp *a = m->authapps; a; a = a->next)
    if (strcmp(a->path, path) == 0) return a;
  return NULL;
}

void pk_authapp_start(pk_mgr *m) {
  for (int i = 0; i < m->nauthdomains; i++) {
    const char *path = m->authdomains[i].target;
    if (!pk_authdomain_is_app(path) || find_app(m, path)) continue;
    pk_authapp *a = calloc(1, sizeof(*a));
    if (!a) {
      pk_log(m, PK_LOG_MANAGER_ERROR, "Auth app %s: out of memory", path);
      continue;
    }
    a->m = m;
    snprintf(a->path, sizeof(a->path), "%s", path);
    a->caps = -1;
    a->backoff_ms = PK_AUTHAPP_BACKOFF_MIN_MS;
    uv_timer_init(&m->loop, &a->timer);
    a->timer.data = a;
    a->next = m->authapps;
    m->authapps = a;
    arm(a); /* asks --capabilities on the first turn of the loop */
  }
}

pk_auth_verdict pk_authapp_ask(pk_tunnel *t, const pk_kite_req *k, const char *path,
                               const char **reason) {
  pk_mgr *m = t->mgr;
  pk_authapp *a = find_app(m, path);
  *reason = NULL;
  if (!a || a->stopping)
    return pk_authq_fail(m, k, "auth app not running", reason) ? PK_AUTH_OK : PK_AUTH_INVALID;
  if (a->nwaiting >= PK_AUTHAPP_WAITING)
    return pk_authq_fail(m, k, "too many auth app queries waiting", reason) ? PK_AUTH_OK
                                                                              : PK_AUTH_INVALID;
  pk_authapp_q *q = calloc(1, sizeof(*q));
  if (!q) return pk_authq_fail(m, k, "out of memory", reason) ? PK_AUTH_OK : PK_AUTH_INVALID;
  q->t = t;
  q->k = *k;
  q->deadline = now_ms(a) + PK_AUTHAPP_TIMEOUT_MS;
  pk_authapp_q **tail = &a->queue;
  while (*tail) tail = &(*tail)->next;
  *tail = q;
  a->nwaiting++;
  kick(a); /* started from the timer's next turn, never from inside this call */
  pk_log(m, PK_LOG_TUNNEL_CONNS, "Asking auth app %s about kite %s:%s", a->path, k->protoport,
         k->name);
  return PK_AUTH_PENDING;
}

void pk_authapp_forget(pk_mgr *m, pk_tunnel *t) {
  for (pk_authapp *a = m->authapps; a; a = a->next) {
    for (pk_authapp_q *q = a->queue; q; q = q->next)
      if (q->t == t) q->t = NULL;
    if (a->inflight && a->inflight->t == t) a->inflight->t = NULL;
    for (pk_authapp_child *ch = a->children; ch; ch = ch->next)
      if (ch->q && ch->q->t == t) ch->q->t = NULL;
  }
}

void pk_authapp_stop(pk_mgr *m) {
  for (pk_authapp *a = m->authapps; a; a = a->next) {
    if (a->stopping) continue;
    a->stopping = 1;
    a->term_at = now_ms(a) + PK_AUTHAPP_KILL_GRACE_MS / 2; /* a server first reads EOF */
    a->kill_at = a->term_at + PK_AUTHAPP_KILL_GRACE_MS;
    while (a->queue) {
      pk_authapp_q *q = a->queue;
      a->queue = q->next;
      q_free(q);
    }
    a->nwaiting = 0;
    if (a->inflight) q_free(a->inflight);
    a->inflight = NULL;
    a->owed = 0;
    a->server = a->caps_child = NULL;
    for (pk_authapp_child *ch = a->children; ch; ch = ch->next) {
      if (ch->q) q_free(ch->q);
      ch->q = NULL;
      if (ch->released) continue;
      ch->released = 1;
      close_pipes(ch); /* a server reads EOF on its stdin */
      if (ch->exited) {
        if (!uv_is_closing((uv_handle_t *)&ch->proc)) uv_close((uv_handle_t *)&ch->proc, child_closed);
      } else if (ch->kind != CK_SERVER) {
        uv_process_kill(&ch->proc, SIGTERM); /* (a one-shot child has no stdin to close) */
      }
    }
    if (a->timer_on) uv_timer_stop(&a->timer);
    a->timer_on = 0;
    arm(a);
  }
}

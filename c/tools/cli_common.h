/* cli_common.h - helpers shared by pagekitec and pagekiter.
 *
 * The tools are thin programs over the public API only: this header must
 * never include anything from c/src.  Everything here is static inline so
 * each tool stays one translation unit.  Include this header first: it sets
 * the POSIX feature level for sigaction, isatty and ftruncate.
 */
#ifndef PK_CLI_COMMON_H
#define PK_CLI_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "pagekite.h"
#include "../src/pk_names.h" /* generated: names of the status and counter codes */

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
/* The longest secret read from a file (the library's own limit is 255). */
#define CLI_SECRET_MAX 1024

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CLI_NORETURN __attribute__((noreturn))
#else
#define CLI_PRINTF(f, a)
#define CLI_NORETURN
#endif

/* ---- usage errors and failures ---- */

/* Bad usage: one message on stderr, a hint, exit 2. */
CLI_NORETURN CLI_PRINTF(2, 3) static inline void cli_usage_error(const char *prog,
                                                                  const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
  exit(CLI_EXIT_USAGE);
}

/* A library call failed: say which and why (the thread's last error). */
static inline int cli_fail(const char *prog, const char *what) {
  fprintf(stderr, "%s: %s failed: %s\n", prog, what, pagekite_last_error());
  return CLI_EXIT_FAIL;
}

static inline void cli_print_version(const char *prog) {
  int v = pagekite_version_number();
  printf("%s (libpagekite reborn) %s, library %d.%d.%d\n", prog, PK_VERSION, (v >> 16) & 0xff,
         (v >> 8) & 0xff, v & 0xff);
}

/* ---- argument parsing ---- */

/* Whole-string decimal integer within [min, max]; 0 on success. */
static inline int cli_parse_int(const char *s, int min, int max, int *out) {
  if (!s || !*s) return -1;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max) return -1;
  *out = (int)v;
  return 0;
}

/* Like cli_parse_int, but a bad value is a usage error naming the option. */
static inline int cli_int_arg(const char *prog, const char *opt, const char *s, int min,
                              int max) {
  int v = 0;
  if (cli_parse_int(s, min, max, &v) != 0)
    cli_usage_error(prog, "invalid value for %s: '%s' (expected %d..%d)", opt, s ? s : "", min,
                    max);
  return v;
}

/* Splits "HOST:PORT", "[V6ADDR]:PORT" or (when default_host is given) a bare
 * "PORT".  host is copied into host_buf.  0 on success, -1 if malformed. */
static inline int cli_split_host_port(const char *s, const char *default_host, char *host_buf,
                                      size_t host_len, int min_port, int *port) {
  const char *colon = NULL;
  const char *h = s;
  size_t hl = 0;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return -1;
    h = s + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
  } else if ((colon = strrchr(s, ':')) != NULL) {
    hl = (size_t)(colon - s);
  }
  if (!colon) {
    if (!default_host) return -1;
    h = default_host;
    hl = strlen(default_host);
    colon = s - 1; /* the whole string is the port */
  }
  if (hl == 0 || hl >= host_len) return -1;
  if (cli_parse_int(colon + 1, min_port, 65535, port) != 0) return -1;
  memcpy(host_buf, h, hl);
  host_buf[hl] = '\0';
  return 0;
}

/* -v/-q balance to a log mask: <0 errors only, 0 normal, 1 debug, >=2 all. */
static inline int cli_log_mask(int level) {
  if (level < 0) return PK_LOG_ERRORS;
  if (level == 0) return PK_LOG_NORMAL;
  if (level == 1) return PK_LOG_DEBUG;
  return PK_LOG_ALL;
}

/* ---- status ---- */

/* Human-readable byte count ("512 B", "1.5 KiB", ...) into buf. */
static inline const char *cli_fmt_bytes(long long n, char *buf, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (n < 0) n = 0;
  if (n < 1024) {
    snprintf(buf, len, "%lld B", n);
    return buf;
  }
  double v = (double)n;
  size_t u = 0;
  while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, len, "%.1f %s", v, units[u]);
  return buf;
}

/* ---- signals ---- */

static volatile sig_atomic_t cli_stop_requested = 0;
static volatile sig_atomic_t cli_more_logging = 0;
static volatile sig_atomic_t cli_dump_requested = 0;

static void cli_on_signal(int sig) {
  if (sig == SIGUSR1)
    cli_more_logging = 1;
  else if (sig == SIGUSR2)
    cli_dump_requested = 1;
  else
    cli_stop_requested = 1;
}

/* As libpagekite's tools: SIGINT and SIGQUIT (and SIGTERM) ask the run loop
 * to stop; SIGUSR1 raises logging to PK_LOG_ALL; SIGUSR2 dumps the state to
 * the log; SIGPIPE is ignored (a dead peer is an error return). */
static inline void cli_install_signals(void) {
  static const int handled[] = {SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = cli_on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
    sigaction(handled[i], &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
}

/* ---- the run loop ---- */

/* Called once per wake-up with the current status (pagekitec's -Y file). */
typedef void (*cli_status_hook)(void *ctx, int status);

/* Where log lines go: stderr (the default) or syslog(3) (pagekitec -s,
 * pagekiter --logfile=syslog; the caller has called openlog()). */
typedef struct {
  int use_syslog;
  int tty; /* stdout is a terminal: clear the status line before a log line */
} cli_log_out;

/* Log levels, named as pagekite.py names them (the key of the message). */
typedef enum { CLI_LL_ERR, CLI_LL_WARN, CLI_LL_INFO, CLI_LL_DEBUG } cli_level;

static inline const char *cli_level_key(cli_level l) {
  static const char *const keys[] = {"err", "warn", "info", "debug"};
  return keys[l];
}

static inline int cli_level_syslog(cli_level l) {
  static const int pri[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
  return pri[l];
}

/* A log event's PK_LOG_* bits as a level: PK_LOG_ERROR is an error, a
 * manager error (a peer's fault: a rejected kite, a bad handshake) a
 * warning, the debug, data and header bits debug, the rest info. */
static inline cli_level cli_level_of(int bits) {
  if (bits & PK_LOG_ERROR) return CLI_LL_ERR;
  if (bits & PK_LOG_MANAGER_ERROR) return CLI_LL_WARN;
  if (bits & (PK_LOG_MANAGER_DEBUG | PK_LOG_LUA_DEBUG | PK_LOG_TRACE | PK_LOG_TUNNEL_DATA |
              PK_LOG_TUNNEL_HEADERS | PK_LOG_BE_DATA | PK_LOG_BE_HEADERS))
    return CLI_LL_DEBUG;
  return CLI_LL_INFO;
}

/* One event, one line, in the key=value style of pagekite.py's log
 * (LogValues: "ts=HEX; t=ISO; ll=HEX; info=message"):
 *   ts=<unix time, hex>; t=<ISO 8601 UTC, ms>Z; ll=<event seq, hex>; <level>=<text>
 * The message comes last and runs to the end of the line (it may itself
 * hold "; "); newlines, CRs and tabs in it become spaces.  syslog stamps its
 * own time, so it gets "ll=...; <level>=<text>" at the level's priority.
 * seq < 0: not an event (a state dump line): ll is left out. */
static inline void cli_log_text(const cli_log_out *out, cli_level level, long long seq,
                                long long time_ms, const char *text) {
  char msg[1024], head[128];
  size_t n = 0;
  for (const char *p = text; *p && n + 1 < sizeof(msg); p++)
    msg[n++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
  msg[n] = '\0';
  char ll[32] = "";
  if (seq >= 0) snprintf(ll, sizeof(ll), "ll=%llx; ", seq);
  if (out->use_syslog) {
    syslog(cli_level_syslog(level), "%s%s=%s", ll, cli_level_key(level), msg);
    return;
  }
  time_t secs = (time_t)(time_ms / 1000);
  struct tm tm;
  char iso[32] = "1970-01-01T00:00:00";
  if (gmtime_r(&secs, &tm)) strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(head, sizeof(head), "ts=%llx; t=%s.%03dZ; ", (long long)secs, iso,
           (int)(time_ms % 1000));
  if (out->tty) {
    fputs("\r\033[K", stdout);
    fflush(stdout);
  }
  fprintf(stderr, "%s%s%s=%s\n", head, ll, cli_level_key(level), msg);
  fflush(stderr);
}

static inline long long cli_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A line of the tool's own (a state dump, a reopen failure), stamped now. */
static inline void cli_log_line(const cli_log_out *out, cli_level level, const char *line) {
  cli_log_text(out, level, -1, cli_wall_ms(), line);
}

/* A PK_EVENT_LOG (or PK_EVENT_LOST: a warning) event as a log line. */
static inline void cli_log_event(const cli_log_out *out, const pagekite_event *e) {
  cli_level level = e->kind == PK_EVENT_LOST ? CLI_LL_WARN : cli_level_of(e->code);
  char text[sizeof(e->text) + 64];
  if (e->kind == PK_EVENT_LOST && !e->text[0])
    snprintf(text, sizeof(text), "%d log event(s) lost (the reader fell behind)", e->code);
  else
    snprintf(text, sizeof(text), "%s", e->text);
  cli_log_text(out, level, e->seq, e->time_ms, text);
}

/* ---- secrets out of argv ---- */

/* Opens a file that should hold secrets for reading, without blocking on a
 * FIFO or a device (cli_secret_file_ok refuses those); NULL with errno. */
static inline FILE *cli_open_secret(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, "r");
  if (!f) close(fd);
  return f;
}

/* A file that holds secrets must be a regular file owned by us or root,
 * with no group or other permission bits (as ssh wants a private key).
 * 0, or -1 with why set.  With owner not NULL the owner is not checked but
 * returned in *owner (pagekiter as root with --runas, whose user is known
 * only once every option is read). */
static inline int cli_secret_file_check(const char *path, FILE *f, char *why, size_t why_len,
                                        uid_t *owner) {
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    snprintf(why, why_len, "cannot stat secret file %s: %s", path, strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    snprintf(why, why_len, "secret file %s is not a regular file", path);
  } else if (!owner && st.st_uid != geteuid() && st.st_uid != 0) {
    snprintf(why, why_len, "secret file %s is owned by uid %u, not by uid %u or root", path,
             (unsigned)st.st_uid, (unsigned)geteuid());
  } else if (st.st_mode & 077) {
    snprintf(why, why_len,
             "secret file %s has mode %04o: group or others may read or write it "
             "(chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
  } else {
    if (owner) *owner = st.st_uid;
    return 0;
  }
  return -1;
}

static inline int cli_secret_file_ok(const char *path, FILE *f, char *why, size_t why_len) {
  return cli_secret_file_check(path, f, why, why_len, NULL);
}

/* The owner test cli_secret_file_check skips: us, root or also_ok (a
 * --runas user; (uid_t)-1 for none).  0, or -1 with why set. */
static inline int cli_secret_owner_ok(const char *path, uid_t owner, uid_t also_ok, char *why,
                                      size_t why_len) {
  if (owner == geteuid() || owner == 0 || owner == also_ok) return 0;
  if (also_ok != (uid_t)-1 && also_ok != geteuid())
    snprintf(why, why_len, "secret file %s is owned by uid %u, not by uid %u (--runas) or root",
             path, (unsigned)owner, (unsigned)also_ok);
  else
    snprintf(why, why_len, "secret file %s is owned by uid %u, not by uid %u or root", path,
             (unsigned)owner, (unsigned)geteuid());
  return -1;
}

/* Reads a secret from FILE (checked as above, its owner against also_ok
 * too): its first line, the line end stripped.  0, or -1 with why set. */
static inline int cli_read_secret_file_as(const char *path, char *secret, size_t len,
                                          uid_t also_ok, char *why, size_t why_len);
static inline int cli_read_secret_file(const char *path, char *secret, size_t len, char *why,
                                       size_t why_len) {
  return cli_read_secret_file_as(path, secret, len, (uid_t)-1, why, why_len);
}

static inline int cli_read_secret_file_as(const char *path, char *secret, size_t len,
                                          uid_t also_ok, char *why, size_t why_len) {
  FILE *f = cli_open_secret(path);
  if (!f) {
    snprintf(why, why_len, "cannot read secret file %s: %s", path, strerror(errno));
    return -1;
  }
  int rc = -1;
  uid_t owner;
  if (cli_secret_file_check(path, f, why, why_len, &owner) != 0 ||
      cli_secret_owner_ok(path, owner, also_ok, why, why_len) != 0) {
    /* why is set */
  } else if (!fgets(secret, (int)len, f)) {
    snprintf(why, why_len, "secret file %s is empty", path);
  } else {
    size_t n = strcspn(secret, "\r\n");
    if (secret[n] == '\0' && n + 1 >= len && !feof(f))
      snprintf(why, why_len, "secret file %s: the first line is too long (max %zu)", path,
               len - 2);
    else if ((secret[n] = '\0', n == 0))
      snprintf(why, why_len, "secret file %s: the first line is empty", path);
    else
      rc = 0;
  }
  fclose(f);
  return rc;
}

/* The warning for a secret left on the command line (never the secret). */
static inline void cli_warn_argv_secret(const char *prog, const char *what,
                                        const char *suggest) {
  fprintf(stderr,
          "%s: warning: the secret for %s is on the command line, visible in ps and "
          "/proc; put it in a file (mode 600) and use %s\n",
          prog, what, suggest);
}

/* What the run loop knows from the events it took. */
typedef struct {
  long long after; /* seq of the last event taken */
  int status;      /* from PK_EVENT_STATUS */
} cli_events;

#define CLI_EVENTS_MAX 64

/* Takes the events after ev->after (waiting up to wait_ms for one), prints
 * the log lines and follows the status.  Returns how many, or -1. */
static inline int cli_take_events(pagekite_mgr mgr, cli_events *ev, const cli_log_out *out,
                                  int wait_ms) {
  static pagekite_event buf[CLI_EVENTS_MAX]; /* one run loop per tool */
  buf[0] = (pagekite_event)PAGEKITE_EVENT_INIT;
  int n = pagekite_next_events(mgr, ev->after, buf, CLI_EVENTS_MAX, wait_ms);
  for (int i = 0; i < n; i++) {
    const pagekite_event *e = &buf[i];
    ev->after = e->seq;
    if (e->kind == PK_EVENT_STATUS) ev->status = e->code;
    if (e->kind == PK_EVENT_LOG || e->kind == PK_EVENT_LOST) cli_log_event(out, e);
    /* Status changes may be among the events lost. */
    if (e->kind == PK_EVENT_LOST) ev->status = pagekite_get_status(mgr);
  }
  return n;
}

/* SIGUSR2: the status and every counter, one "state/NAME: VALUE" line each. */
static inline void cli_dump_state(pagekite_mgr mgr, const cli_log_out *out) {
  static const struct {
    int id;
    const char *name;
  } counters[] = {
#define CLI_COUNTER_ROW(code, NAME, name) {code, name},
      PK_COUNTER_NAMES(CLI_COUNTER_ROW)
#undef CLI_COUNTER_ROW
  };
  char line[128];
  int status = pagekite_get_status(mgr);
  snprintf(line, sizeof(line), "state/status: %s (%d)", pagekite_status_name(status), status);
  cli_log_line(out, CLI_LL_INFO, line);
  for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
    snprintf(line, sizeof(line), "state/%s: %lld", counters[i].name,
             pagekite_get_counter(mgr, counters[i].id));
    cli_log_line(out, CLI_LL_INFO, line);
  }
}

static inline void cli_draw_status_line(pagekite_mgr mgr, int status) {
  char in[32], out[32];
  printf("\r%s | kites %lld | tunnels %lld | streams %lld | in %s | out %s\033[K",
         pagekite_status_name(status), pagekite_get_counter(mgr, PK_COUNTER_KITES_LIVE),
         pagekite_get_counter(mgr, PK_COUNTER_TUNNELS),
         pagekite_get_counter(mgr, PK_COUNTER_STREAMS),
         cli_fmt_bytes(pagekite_get_counter(mgr, PK_COUNTER_BYTES_IN), in, sizeof(in)),
         cli_fmt_bytes(pagekite_get_counter(mgr, PK_COUNTER_BYTES_OUT), out, sizeof(out)));
  fflush(stdout);
}

/* The live status line is redrawn at most this often (ms); events are read
 * as fast as they come. */
#define CLI_MIN_REFRESH_MS 100
/* The longest wait for events: how soon a signal's request is acted on. */
#define CLI_WAIT_MS 1000

static inline long long cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
  cli_status_hook hook; /* may be NULL */
  void *hook_ctx;
  int use_syslog;      /* log lines to syslog(3) instead of stderr */
  int start_fail_code; /* exit code when pagekite_thread_start fails */
  /* Called once the thread runs (listeners bound), with hook_ctx; a nonzero
   * return stops the tool with that exit code.  May be NULL. */
  int (*after_start)(void *ctx);
} cli_run_opts;

/* One wake-up of the run loop: signals' requests, then the status line
 * (tty: redrawn on a change and at most every CLI_MIN_REFRESH_MS), the
 * "status:" line on a change, the hook. */
static inline void cli_report(pagekite_mgr mgr, const cli_run_opts *o, const cli_log_out *out,
                              int status, int *last_status, long long *last_draw) {
  if (cli_more_logging) {
    cli_more_logging = 0;
    pagekite_set_log_mask(mgr, PK_LOG_ALL);
  }
  if (cli_dump_requested) {
    cli_dump_requested = 0;
    cli_dump_state(mgr, out);
  }
  long long now = cli_now_ms();
  if (out->tty) {
    if (status != *last_status || now - *last_draw >= CLI_MIN_REFRESH_MS) {
      cli_draw_status_line(mgr, status);
      *last_draw = now;
    }
  } else if (status != *last_status) {
    printf("status: %s\n", pagekite_status_name(status));
    fflush(stdout);
  }
  *last_status = status;
  if (o->hook) o->hook(o->hook_ctx, status);
}

/* Starts the master thread, reports from its events (pagekite_next_events)
 * until SIGINT/SIGQUIT/SIGTERM, then stops and frees the manager.  Returns
 * the process exit code. */
static inline int cli_run_with(pagekite_mgr mgr, const char *prog, const cli_run_opts *o) {
  cli_log_out out = {o->use_syslog, isatty(STDOUT_FILENO)};
  cli_events ev = {0, pagekite_get_status(mgr)}; /* after 0: every event kept */
  int last_status = -1, rc = CLI_EXIT_OK;
  long long last_draw = 0;

  cli_install_signals();
  if (pagekite_thread_start(mgr) != 0) {
    cli_fail(prog, "pagekite_thread_start");
    pagekite_free(mgr);
    return o->start_fail_code;
  }
  if (o->after_start) rc = o->after_start(o->hook_ctx);
  int wait_ms = 0; /* the first report comes at once */
  while (rc == CLI_EXIT_OK && !cli_stop_requested) {
    if (cli_take_events(mgr, &ev, &out, wait_ms) < 0) {
      rc = cli_fail(prog, "pagekite_next_events");
      break;
    }
    cli_report(mgr, o, &out, ev.status, &last_status, &last_draw);
    wait_ms = CLI_WAIT_MS;
  }
  pagekite_thread_stop(mgr);
  while (cli_take_events(mgr, &ev, &out, 0) > 0) continue;
  if (out.tty) fputs("\n", stdout);
  fflush(stdout);
  pagekite_free(mgr);
  return rc;
}

/* cli_run_with() logging to stderr; exit 1 if the thread does not start. */
static inline int cli_run(pagekite_mgr mgr, const char *prog, cli_status_hook hook,
                          void *hook_ctx) {
  cli_run_opts o = {hook, hook_ctx, 0, CLI_EXIT_FAIL, NULL};
  return cli_run_with(mgr, prog, &o);
}

#endif /* PK_CLI_COMMON_H */

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
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pagekite.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

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

static void cli_on_signal(int sig) {
  if (sig == SIGUSR1)
    cli_more_logging = 1;
  else
    cli_stop_requested = 1;
}

/* SIGINT/SIGTERM ask the run loop to stop; SIGUSR1 raises logging to
 * PK_LOG_ALL; SIGPIPE is ignored (a dead peer is an error return). */
static inline void cli_install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = cli_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
}

/* ---- the run loop ---- */

/* Called once per wake-up with the current status (pagekitec's -Y file). */
typedef void (*cli_status_hook)(void *ctx, int status);

/* Prints ring lines whose sequence number exceeds *last_seq to stderr.
 * Returns the number of lines printed. */
static inline int cli_print_new_log(pagekite_mgr mgr, unsigned long long *last_seq,
                                    int clear_status_line) {
  const char *log = pagekite_get_log(mgr);
  int printed = 0;
  if (!log) return 0;
  for (const char *line = log; *line;) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    char *end = NULL;
    unsigned long long seq = strtoull(line, &end, 10);
    if (end != line && seq > *last_seq) {
      if (clear_status_line && printed == 0) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
      }
      fprintf(stderr, "%.*s\n", (int)len, line);
      *last_seq = seq;
      printed++;
    }
    line += len;
    if (*line == '\n') line++;
  }
  if (printed) fflush(stderr);
  return printed;
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

/* poll wakes on every network event batch; under load the tool would spin
 * copying the log ring, so it looks at most this often (ms). */
#define CLI_MIN_REFRESH_MS 100

static inline long long cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void cli_sleep_ms(long long ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

/* Starts the master thread, reports until SIGINT/SIGTERM, then stops and
 * frees the manager.  Returns the process exit code. */
static inline int cli_run(pagekite_mgr mgr, const char *prog, cli_status_hook hook,
                          void *hook_ctx) {
  int tty = isatty(STDOUT_FILENO);
  int last_status = -1;
  int rc = CLI_EXIT_OK;
  unsigned long long last_seq = 0;

  cli_install_signals();
  if (pagekite_thread_start(mgr) != 0) {
    rc = cli_fail(prog, "pagekite_thread_start");
    pagekite_free(mgr);
    return rc;
  }
  while (!cli_stop_requested) {
    long long started = cli_now_ms();
    if (cli_more_logging) {
      cli_more_logging = 0;
      pagekite_set_log_mask(mgr, PK_LOG_ALL);
    }
    int status = pagekite_get_status(mgr);
    cli_print_new_log(mgr, &last_seq, tty);
    if (tty) {
      cli_draw_status_line(mgr, status);
    } else if (status != last_status) {
      printf("status: %s\n", pagekite_status_name(status));
      fflush(stdout);
    }
    last_status = status;
    if (hook) hook(hook_ctx, status);
    if (cli_stop_requested) break;
    if (pagekite_poll(mgr, 1) < 0) {
      rc = cli_fail(prog, "pagekite_poll");
      break;
    }
    long long spent = cli_now_ms() - started;
    if (spent < CLI_MIN_REFRESH_MS && !cli_stop_requested) cli_sleep_ms(CLI_MIN_REFRESH_MS - spent);
  }
  pagekite_thread_stop(mgr);
  cli_print_new_log(mgr, &last_seq, tty);
  if (tty) fputs("\n", stdout);
  fflush(stdout);
  pagekite_free(mgr);
  return rc;
}

#endif /* PK_CLI_COMMON_H */

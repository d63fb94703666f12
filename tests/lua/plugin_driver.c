/* plugin_driver.c - a relay or connector with Lua plugins, for tests/lua.
 *
 *   pk_plugin_driver relay --listen PORT --domain PROTOS:PATTERN:SECRET
 *                    [--setting NAME=VALUE]... [--plugin FILE]... [--defaults]
 *                    [--mask MASK]
 *   pk_plugin_driver connector --frontend HOST:PORT --kite PROTO:NAME:SECRET:ORIGIN_PORT
 *                    [same plugin options]
 *
 * Prints "ready" once the thread runs, "status: NAME" on each status change,
 * "log: LINE" for new log lines, and "exit: N" before leaving.  Runs until
 * SIGTERM or SIGINT.  Exit code 2 on a usage error, 1 when an API call fails.
 */
#include <signal.h>
#include <stdio.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "pagekite.h"

static volatile sig_atomic_t stop_now = 0;
static void on_signal(int sig) { stop_now = 1; }

static int usage(void) {
  fprintf(stderr, "usage: pk_plugin_driver relay|connector [options] (see plugin_driver.c)\n");
  return 2;
}

static int die(pagekite_mgr m, const char *what) {
  printf("error: %s: %s\n", what, pagekite_last_error());
  fflush(stdout);
  if (m) pagekite_free(m);
  return 1;
}

/* Prints log lines newer than *seen (lines start with their sequence number). */
static void print_new_log(pagekite_mgr m, unsigned long long *seen) {
  char *log = pagekite_get_log(m);
  if (!log) return;
  char *save = NULL;
  for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    unsigned long long seq = strtoull(line, NULL, 10);
    if (seq <= *seen) continue;
    *seen = seq;
    printf("log: %s\n", line);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  int relay = strcmp(argv[1], "relay") == 0;
  if (!relay && strcmp(argv[1], "connector") != 0) return usage();
  const char *settings[128];
  const char *plugins[32];
  int nsettings = 0, nplugins = 0, defaults = 0, mask = PK_LOG_NORMAL, listen = 0;
  const char *domain = NULL, *frontend = NULL, *kite = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--defaults") == 0) {
      defaults = 1;
      continue;
    }
    if (!v) return usage();
    i++;
    if (strcmp(a, "--listen") == 0) listen = atoi(v);
    else if (strcmp(a, "--domain") == 0) domain = v;
    else if (strcmp(a, "--frontend") == 0) frontend = v;
    else if (strcmp(a, "--kite") == 0) kite = v;
    else if (strcmp(a, "--mask") == 0) mask = (int)strtol(v, NULL, 0);
    else if (strcmp(a, "--setting") == 0 && nsettings < 127) settings[nsettings++] = v;
    else if (strcmp(a, "--plugin") == 0 && nplugins < 32) plugins[nplugins++] = v;
    else return usage();
  }
  settings[nsettings] = NULL;

  pagekite_mgr m;
  if (relay) {
    if (!listen || !domain) return usage();
    m = pagekite_init("plugin-driver", 16, 4, 64, NULL, PK_WITH_DEFAULTS | PK_AS_FRONTEND_RELAY,
                      mask);
    if (!m) return die(NULL, "init");
    char protos[128], pattern[256], secret[256];
    if (sscanf(domain, "%127[^:]:%255[^:]:%255s", protos, pattern, secret) != 3) return usage();
    if (pagekite_add_relay_listener(m, "127.0.0.1", listen) < 0) return die(m, "listener");
    if (pagekite_add_relay_domain(m, protos, pattern, secret) < 0) return die(m, "domain");
  } else {
    if (!frontend || !kite) return usage();
    /* The driver's relay has no certificate: no PK_WITH_SSL (PK_WITH_DEFAULTS would add it). */
    m = pagekite_init("plugin-driver", 4, 2, 64, NULL, PK_WITH_IPV4 | PK_WITH_IPV6, mask);
    if (!m) return die(NULL, "init");
    char fhost[256], proto[32], name[256], secret[256];
    int fport = 0, oport = 0;
    if (sscanf(frontend, "%255[^:]:%d", fhost, &fport) != 2) return usage();
    if (sscanf(kite, "%31[^:]:%255[^:]:%255[^:]:%d", proto, name, secret, &oport) != 4)
      return usage();
    if (pagekite_add_kite(m, proto, name, 0, secret, "127.0.0.1", oport) < 0)
      return die(m, "kite");
    if (pagekite_add_frontend(m, fhost, fport) < 0) return die(m, "frontend");
    pagekite_set_housekeeping_min_interval(m, 1);
  }
  if ((defaults || nsettings) && pagekite_enable_lua_plugins(m, defaults, (char **)settings) < 0)
    return die(m, "enable_lua_plugins");
  for (int i = 0; i < nplugins; i++)
    if (pagekite_load_lua_plugin(m, plugins[i]) < 0) return die(m, "load_lua_plugin");

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (pagekite_thread_start(m) < 0) return die(m, "thread_start");
  printf("ready\n");
  int last = -1;
  unsigned long long seen = 0;
  while (!stop_now) {
    int s = pagekite_get_status(m);
    if (s != last) {
      char low[16];
      const char *n = pagekite_status_name(s);
      size_t i = 0;
      for (; n[i] && i < sizeof(low) - 1; i++) low[i] = (char)tolower((unsigned char)n[i]);
      low[i] = 0;
      printf("status: %s\n", low);
      last = s;
    }
    print_new_log(m, &seen);
    pagekite_poll(m, 1);
  }
  int rc = pagekite_thread_stop(m);
  print_new_log(m, &seen);
  pagekite_free(m);
  printf("exit: %d\n", rc);
  return rc == 0 ? 0 : 1;
}

/* A program built only against the installed header and library.
 *
 *   consumer
 *       checks the header against the library and configures a manager;
 *       prints "consumer ok VERSION".
 *   consumer connect RELAY_PORT ORIGIN_PORT KITE SECRET lua|nolua [SECONDS]
 *       a connector: flies http KITE (origin 127.0.0.1:ORIGIN_PORT) through
 *       the plain-TCP relay on 127.0.0.1:RELAY_PORT until SIGTERM/SIGINT or
 *       SECONDS (default 60) pass.  "lua": the library must host Lua (the Lua
 *       plugin host is turned on and runs); "nolua": it must say it was built
 *       without Lua.  Prints "consumer flying" once the connector flies.
 */
#include <pagekite.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_now = 0;
static void on_signal(int sig) { (void)sig; stop_now = 1; }

static int fail(pagekite_mgr m, const char *what) {
  fprintf(stderr, "consumer: %s: %s\n", what, pagekite_last_error());
  if (m) pagekite_free(m);
  return 1;
}

static int connect_mode(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: consumer connect RELAY_PORT ORIGIN_PORT KITE SECRET lua|nolua [SECONDS]\n");
    return 2;
  }
  int relay_port = atoi(argv[2]), origin_port = atoi(argv[3]);
  const char *kite = argv[4], *secret = argv[5], *lua = argv[6];
  int secs = argc > 7 ? atoi(argv[7]) : 60;
  int want_lua = strcmp(lua, "lua") == 0;
  if (!want_lua && strcmp(lua, "nolua") != 0) return 2;

  pagekite_mgr m = pagekite_init("consumer", 1, 2, 16, NULL,
                                 PK_WITHOUT_DEFAULTS | PK_WITH_IPV4, PK_LOG_ERRORS);
  if (!m) return fail(NULL, "pagekite_init");
  int lua_rc = pagekite_enable_lua_plugins(m, 0, NULL);
  if (want_lua && lua_rc != 0) return fail(m, "pagekite_enable_lua_plugins");
  if (!want_lua && (lua_rc == 0 || pagekite_last_error_code() != PK_EUNSUPPORTED)) {
    fprintf(stderr, "consumer: the library hosts Lua, but nolua was asked for\n");
    pagekite_free(m);
    return 1;
  }
  if (pagekite_add_kite(m, "http", kite, 0, secret, "127.0.0.1", origin_port) < 0)
    return fail(m, "pagekite_add_kite");
  if (pagekite_add_frontend(m, "127.0.0.1", relay_port) < 0) return fail(m, "pagekite_add_frontend");
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  if (pagekite_thread_start(m) < 0) return fail(m, "pagekite_thread_start");
  int said = 0;
  for (time_t end = time(NULL) + secs; time(NULL) < end;) {
    int stopping = stop_now; /* one last look at the status after a signal */
    if (!said && pagekite_get_status(m) == PK_STATUS_FLYING) {
      printf("consumer flying %s (%s)\n", kite, want_lua ? "with Lua" : "without Lua");
      fflush(stdout);
      said = 1;
    }
    if (stopping) break;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  pagekite_thread_stop(m);
  pagekite_free(m);
  return said ? 0 : 1;
}

int main(int argc, char **argv) {
  if (pagekite_version_number() != PK_VERSION_NUMBER) {
    fprintf(stderr, "header/library version mismatch\n");
    return 1;
  }
  if (argc > 1 && strcmp(argv[1], "connect") == 0) return connect_mode(argc, argv);
  pagekite_mgr m = pagekite_init("consumer", 1, 1, 4, NULL, PK_WITH_DEFAULTS, -1);
  if (!m) return 1;
  int rv = pagekite_add_kite(m, "http", "c.example.test", 0, "s", "127.0.0.1", 80);
  pagekite_free(m);
  printf("consumer ok %s\n", PK_VERSION);
  return rv == 0 ? 0 : 1;
}

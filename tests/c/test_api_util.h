/* test_api_util.h - loopback helpers shared by the test_api_* programs.
 *
 * Plain POSIX sockets on 127.0.0.1, monotonic time, and bounded waits on a
 * manager's status.  Everything here is static so each test is one file.
 */
#ifndef PK_TEST_API_UTIL_H
#define PK_TEST_API_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pk_test.h"

/* sign == salt8 + sha1hex(secret + payload + salt8), checked independently
 * of sign.c's signing. */
static inline int ddns_sig_ok(const char *sign, const char *secret, const char *payload) {
  char salt[9], hex[41];
  if (strlen(sign) != 48) return 0;
  memcpy(salt, sign, 8);
  salt[8] = 0;
  const char *parts[3] = {secret, payload, salt};
  pk_sha1hex_parts(parts, 3, hex);
  return strcmp(sign + 8, hex) == 0;
}

static inline long long t_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void t_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static inline struct sockaddr_in t_loopback(int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

/* A listening socket on 127.0.0.1:0; *port gets the bound port. */
static inline int t_listen(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sa = t_loopback(0);
  socklen_t len = sizeof(sa);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

/* A loopback port nobody listens on (bound once, then released). */
static inline int t_closed_port(void) {
  int port = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = t_loopback(0);
  socklen_t len = sizeof(sa);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port > 0 ? port : -1;
}

/* Blocking connect to 127.0.0.1:port; -1 on failure. */
static inline int t_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = t_loopback(port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Wait up to ms for fd to become readable: 1 readable, 0 timeout, -1 error. */
static inline int t_wait_readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r;
}

/* Read until EOF, error, the buffer is full or ms passed; returns the byte
 * count (NUL-terminated in buf). */
static inline size_t t_read_all(int fd, char *buf, size_t n, int ms) {
  size_t off = 0;
  long long deadline = t_now_ms() + ms;
  while (off + 1 < n) {
    long long left = deadline - t_now_ms();
    if (left <= 0 || t_wait_readable(fd, (int)left) <= 0) break;
    ssize_t r = recv(fd, buf + off, n - 1 - off, 0);
    if (r <= 0) break;
    off += (size_t)r;
  }
  buf[off] = 0;
  return off;
}

static inline int t_send_all(int fd, const char *s) {
  size_t n = strlen(s), off = 0;
  while (off < n) {
    ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

/* pagekite_poll until the status is one of want[0..nwant), or ms passed.
 * Returns the last status seen. */
static inline int t_wait_status(pagekite_mgr m, const int *want, int nwant, int ms) {
  long long deadline = t_now_ms() + ms;
  int st = pagekite_get_status(m);
  for (;;) {
    for (int i = 0; i < nwant; i++)
      if (st == want[i]) return st;
    if (t_now_ms() >= deadline) return st;
    pagekite_poll(m, 1);
    st = pagekite_get_status(m);
  }
}

/* The port the relay's first listener is bound to (valid after
 * pagekite_thread_start, which binds listeners before it returns). */
static inline int t_relay_port(pagekite_mgr h) {
  pk_mgr *m = (pk_mgr *)(void *)h;
  if (!m || m->nlisteners < 1 || !m->listeners[0].active) return -1;
  return m->listeners[0].port;
}

/* A running relay on 127.0.0.1:<ephemeral>; NULL on failure. */
static inline pagekite_mgr t_start_relay(int max_kites, int max_conns, const char *protos,
                                  const char *pattern, const char *secret) {
  pagekite_mgr r = pagekite_init("test-relay", max_kites, 2, max_conns, NULL,
                                 PK_AS_FRONTEND_RELAY | PK_WITHOUT_DEFAULTS, PK_LOG_ALL);
  if (!r) return NULL;
  if (pagekite_add_relay_listener(r, "127.0.0.1", 0) != 0 ||
      (pattern && pagekite_add_relay_domain(r, protos, pattern, secret) != 0) ||
      pagekite_thread_start(r) != 0) {
    pagekite_free(r);
    return NULL;
  }
  return r;
}

/* One /ping probe: 1 when the relay answered 503 with X-PageKite-UUID. */
static inline int t_ping_once(int port, char *resp, size_t n) {
  resp[0] = 0;
  int fd = t_connect(port);
  if (fd < 0) return 0;
  int ok = 0;
  if (t_send_all(fd, "GET /ping HTTP/1.1\r\nHost: ping.pagekite\r\n\r\n") == 0) {
    t_read_all(fd, resp, n, 2000);
    ok = strncmp(resp, "HTTP/1.1 503", 12) == 0 && strstr(resp, "\r\nX-PageKite-UUID: ") != NULL;
  }
  close(fd);
  return ok;
}

/* Retry the probe for up to ms (the relay frees slots asynchronously). */
static inline int t_ping_until(int port, int ms, char *resp, size_t n) {
  long long deadline = t_now_ms() + ms;
  do {
    if (t_ping_once(port, resp, n)) return 1;
    t_sleep_ms(100);
  } while (t_now_ms() < deadline);
  return 0;
}

/* Does the log snapshot contain needle? */
static inline int t_log_has(pagekite_mgr m, const char *needle) {
  const char *log = pagekite_get_log(m);
  return log && strstr(log, needle) != NULL;
}

#endif

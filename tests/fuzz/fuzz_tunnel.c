/* fuzz_tunnel.c - arbitrary bytes into an open tunnel (pk_tunnel_feed).
 *
 * Two managers are made through the public API: a relay (with a domain, so
 * X-PageKite kite requests are authenticated) and a connector (with a kite,
 * never resolved, so streams get "unavailable" answers without touching the
 * network).  For each input a pk_conn is opened on one end of a socketpair,
 * made a tunnel in the OPEN state, and fed the input in pieces.  Afterwards
 * the tunnel is killed and the loop run until every handle is closed; the
 * connection and buffer pools must be back where they were (leak check).
 *
 * Input: byte 0 bit 0 picks the relay (1) or the connector (0) side, bits 1-7
 * the piece size (0 = all at once); the rest is the tunnel byte stream.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
  pk_mgr *m;
  int base_conns;
  size_t base_blocks;
} side;

static side sides[2];

static void loop_init(pk_mgr *m) {
  if (uv_loop_init(&m->loop) != 0) abort();
  m->loop.data = m;
  m->loop_ready = 1;
}

static void setup(void) {
  static int done;
  pagekite_mgr h;
  if (done) return;
  done = 1;
  /* Connector: one kite, one frontend slot. */
  h = pagekite_init("fuzz-c", 2, 1, 8, NULL, PK_WITH_IPV4, 0);
  if (h == NULL) abort();
  if (pagekite_add_kite(h, "http", "a.example.test", 0, "fuzzsecret", "localhost", 1) != 0) abort();
  if (pagekite_add_kite(h, "raw", "b.example.test", 22, "fuzzsecret", "localhost", 1) != 0) abort();
  sides[0].m = (pk_mgr *)(void *)h;
  /* Relay: one domain. */
  h = pagekite_init("fuzz-r", 4, 1, 8, NULL, PK_AS_FRONTEND_RELAY, 0);
  if (h == NULL) abort();
  if (pagekite_add_relay_domain(h, "http,raw,https", "*.example.test", "fuzzsecret") != 0) abort();
  sides[1].m = (pk_mgr *)(void *)h;
  for (int i = 0; i < 2; i++) {
    loop_init(sides[i].m);
    /* Exercise the log formatting too. */
    sides[i].m->log_mask = PK_LOG_ALL;
    sides[i].base_conns = sides[i].m->conns_in_use;
    sides[i].base_blocks = sides[i].m->blocks.in_use;
  }
}

static void drain(int fd) {
  char junk[65536];
  while (read(fd, junk, sizeof(junk)) > 0) {
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sv[2];
  side *sd;
  pk_mgr *m;
  pk_conn *c;
  pk_tunnel *t;
  size_t piece, off = 0;
  int spins;
  if (size < 1) return 0;
  setup();
  sd = &sides[data[0] & 1];
  m = sd->m;
  piece = (size_t)(data[0] >> 1);
  data++;
  size--;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  c = pk_conn_new(m, PK_CK_TUNNEL);
  if (c == NULL) abort();
  if (uv_tcp_open(&c->tcp, sv[0]) != 0) abort();
  c->flags |= PK_CF_CONNECTED;
  snprintf(c->rip, sizeof(c->rip), "127.0.0.1");
  t = pk_tunnel_new(m, c);
  if (t == NULL) abort();
  /* A connector tunnel always belongs to a frontend address (connector.c
   * sets both when it connects). */
  if (m->role == &pk_connector_role) t->fe_idx = t->addr_idx = 0;
  snprintf(t->session_id, sizeof(t->session_id), "fuzzsession");
  /* The handshake is taken as done: the session is open, in the manager's
   * role (so NOOPs carry kite requests or answers as they would). */
  t->sess.role = m->role == &pk_relay_role ? PK_SESSION_RELAY : PK_SESSION_CONNECTOR;
  pk_session_open(&t->sess);
  pk_tunnel_opened(t);
  /* Copy each piece to its own exact-size buffer so ASan sees over-reads. */
  while (off < size && t->in_use && !t->dying) {
    size_t n = piece ? piece : size;
    char *p;
    if (n > size - off) n = size - off;
    p = malloc(n);
    if (p == NULL) abort();
    memcpy(p, data + off, n);
    pk_tunnel_feed(t, p, n);
    free(p);
    off += n;
    drain(sv[1]);
    uv_run(&m->loop, UV_RUN_NOWAIT);
  }
  if (t->in_use && !t->dying) pk_tunnel_kill(t, "fuzz input done");
  for (spins = 0; spins < 1000 && m->conns_in_use > sd->base_conns; spins++) {
    drain(sv[1]);
    uv_run(&m->loop, UV_RUN_NOWAIT);
  }
  close(sv[1]);
  /* Everything this input opened must be closed and every block returned. */
  if (m->conns_in_use != sd->base_conns) {
    fprintf(stderr, "leak: conns_in_use %d (base %d)\n", m->conns_in_use, sd->base_conns);
    abort();
  }
  if (m->blocks.in_use != sd->base_blocks) {
    fprintf(stderr, "leak: blocks in use %zu (base %zu)\n", m->blocks.in_use, sd->base_blocks);
    abort();
  }
  if (m->unauth_conns != 0 || pk_reg_count(&m->rkites) > (uint32_t)m->max_rkites) abort();
  return 0;
}

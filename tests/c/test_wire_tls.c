/* test_wire_tls.c - ClientHello SNI extraction and first-bytes peeking.
 *
 * data/clienthello_sni.bin and data/clienthello_nosni.bin were captured from
 * `openssl s_client -servername Foo.Example.com` (and -noservername) against a
 * loopback socket that saved the first TLS record.  The data directory is
 * passed as argv[1].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pk_test.h"
#include "wire.h"

static const char *data_dir = "data";

static size_t load(const char *name, unsigned char *buf, size_t cap) {
  char path[1024];
  FILE *f;
  size_t n;
  snprintf(path, sizeof(path), "%s/%s", data_dir, name);
  f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    return 0;
  }
  n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

/* ---- a synthetic ClientHello with known offsets ---- */

typedef struct {
  size_t rec_len, hs_len, sid_len, cs_len, comp_len, ext_len, sni_ext_len, sni_list_len,
      sni_name_len;
} hello_offsets;

static size_t put16(unsigned char *p, size_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
  return 2;
}

/* Builds a hello with a padding extension before server_name (so the SNI
 * walker must skip one) and, optionally, a non-host_name entry first. */
static size_t build_hello_ex(unsigned char *b, const char *sni, int odd_entry_first,
                             size_t sid_n, size_t cs_n, size_t comp_n, hello_offsets *o) {
  size_t p = 0, i, name_len = sni ? strlen(sni) : 0, ext_start, sni_start, list_start;
  b[p++] = 0x16;
  b[p++] = 0x03;
  b[p++] = 0x01;
  o->rec_len = p;
  p += 2;
  b[p++] = 0x01;
  o->hs_len = p;
  p += 3;
  b[p++] = 0x03;
  b[p++] = 0x03;
  for (i = 0; i < 32; i++) b[p++] = (unsigned char)i;
  o->sid_len = p;
  b[p++] = (unsigned char)sid_n;
  for (i = 0; i < sid_n; i++) b[p++] = 0xaa;
  o->cs_len = p;
  p += put16(b + p, cs_n);
  for (i = 0; i < cs_n; i++) b[p++] = (unsigned char)(i & 1 ? 0x01 : 0x13);
  o->comp_len = p;
  b[p++] = (unsigned char)comp_n;
  for (i = 0; i < comp_n; i++) b[p++] = 0;
  o->ext_len = p;
  p += 2;
  ext_start = p;
  /* padding extension (21) with 5 zero bytes */
  p += put16(b + p, 21);
  p += put16(b + p, 5);
  memset(b + p, 0, 5);
  p += 5;
  if (sni != NULL) {
    p += put16(b + p, 0);
    o->sni_ext_len = p;
    p += 2;
    sni_start = p;
    o->sni_list_len = p;
    p += 2;
    list_start = p;
    if (odd_entry_first) {
      b[p++] = 7; /* unknown name type */
      p += put16(b + p, 3);
      memcpy(b + p, "zzz", 3);
      p += 3;
    }
    b[p++] = 0; /* host_name */
    o->sni_name_len = p;
    p += put16(b + p, name_len);
    memcpy(b + p, sni, name_len);
    p += name_len;
    put16(b + o->sni_list_len, p - list_start);
    put16(b + o->sni_ext_len, p - sni_start);
  }
  /* a trailing extension after server_name */
  p += put16(b + p, 23);
  p += put16(b + p, 0);
  put16(b + o->ext_len, p - ext_start);
  b[o->hs_len] = (unsigned char)((p - o->hs_len - 3) >> 16);
  put16(b + o->hs_len + 1, p - o->hs_len - 3);
  put16(b + o->rec_len, p - 5);
  return p;
}

static size_t build_hello(unsigned char *b, const char *sni, int odd_entry_first,
                          hello_offsets *o) {
  return build_hello_ex(b, sni, odd_entry_first, 32, 4, 1, o);
}

static int valid_rc(int rc) {
  return rc == 1 || rc == PK_WIRE_NEED_MORE || rc == PK_WIRE_EBAD || rc == PK_WIRE_ETOOBIG;
}

TEST(captured_hello_sni) {
  unsigned char buf[2048];
  char out[256];
  size_t n = load("clienthello_sni.bin", buf, sizeof(buf));
  CHECK(n > 100);
  CHECK_INT(pk_wire_tls_sni(buf, n, out, sizeof(out)), 1);
  CHECK(strcmp(out, "foo.example.com") == 0); /* sent as Foo.Example.com */
  CHECK_INT(pk_wire_peek_kind(buf, n), PK_PEEK_TLS);
}

TEST(captured_hello_every_truncation_needs_more) {
  unsigned char buf[2048];
  char out[256];
  size_t n = load("clienthello_sni.bin", buf, sizeof(buf)), i;
  int ok = 1;
  CHECK(n > 100);
  for (i = 0; i < n; i++) {
    /* A copy of exactly i bytes so ASan catches any read past the end. */
    unsigned char *cp = malloc(i ? i : 1);
    if (cp == NULL) return;
    memcpy(cp, buf, i);
    if (pk_wire_tls_sni(cp, i, out, sizeof(out)) != PK_WIRE_NEED_MORE) ok = 0;
    free(cp);
  }
  CHECK(ok);
}

TEST(captured_hello_without_sni) {
  unsigned char buf[2048];
  char out[256];
  size_t n = load("clienthello_nosni.bin", buf, sizeof(buf));
  CHECK(n > 100);
  CHECK_INT(pk_wire_tls_sni(buf, n, out, sizeof(out)), PK_WIRE_EBAD);
  CHECK_INT(pk_wire_peek_kind(buf, n), PK_PEEK_TLS);
}

TEST(captured_hello_every_byte_mutated) {
  unsigned char buf[2048];
  char out[64];
  size_t n = load("clienthello_sni.bin", buf, sizeof(buf)), i;
  const unsigned char vals[] = {0x00, 0x01, 0x02, 0x20, 0x7f, 0x80, 0xfe, 0xff};
  int ok = 1;
  CHECK(n > 100);
  for (i = 0; i < n; i++) {
    size_t v;
    for (v = 0; v < sizeof(vals); v++) {
      unsigned char *cp = malloc(n);
      int rc;
      if (cp == NULL) return;
      memcpy(cp, buf, n);
      cp[i] = vals[v];
      memset(out, 'X', sizeof(out));
      rc = pk_wire_tls_sni(cp, n, out, sizeof(out));
      if (!valid_rc(rc)) ok = 0;
      if (rc == 1 && memchr(out, '\0', sizeof(out)) == NULL) ok = 0;
      free(cp);
    }
  }
  CHECK(ok);
}

TEST(synthetic_hello) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "Kite.Example.NET", 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), 1);
  CHECK(strcmp(out, "kite.example.net") == 0);
  n = build_hello(b, "a.b", 1, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), 1);
  CHECK(strcmp(out, "a.b") == 0);
  n = build_hello(b, NULL, 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
}

TEST(trailing_bytes_after_record_ignored) {
  unsigned char b[600];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "x.example", 0, &o);
  memset(b + n, 0xee, 50);
  CHECK_INT(pk_wire_tls_sni(b, n + 50, out, sizeof(out)), 1);
  CHECK(strcmp(out, "x.example") == 0);
}

TEST(output_buffer_size) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "abcdefghij", 0, &o); /* 10 chars */
  CHECK_INT(pk_wire_tls_sni(b, n, out, 11), 1);
  CHECK(strcmp(out, "abcdefghij") == 0);
  CHECK_INT(pk_wire_tls_sni(b, n, out, 10), PK_WIRE_ETOOBIG);
  CHECK_INT(pk_wire_tls_sni(b, n, out, 0), PK_WIRE_ETOOBIG);
  CHECK_INT(pk_wire_tls_sni(b, n, NULL, 0), PK_WIRE_ETOOBIG);
}

TEST(bad_host_names) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "", 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello(b, "evil\r\nhost", 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello(b, "sp ace", 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello(b, "a/b", 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  /* An embedded NUL must not truncate the name silently. */
  n = build_hello(b, "abc.def", 0, &o);
  b[o.sni_name_len + 2 + 3] = 0;
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
}

TEST(not_a_client_hello) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  b[0] = 0x17; /* application data record */
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  CHECK_INT(pk_wire_tls_sni(b, 1, out, sizeof(out)), PK_WIRE_EBAD);
  b[0] = 0x16;
  b[1] = 0x02; /* SSLv2-ish major version */
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  b[1] = 0x03;
  b[5] = 0x02; /* ServerHello */
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  CHECK_INT(pk_wire_tls_sni(b, 6, out, sizeof(out)), PK_WIRE_EBAD);
  CHECK_INT(pk_wire_tls_sni((const unsigned char *)"GET / HTTP/1.1\r\n", 16, out, sizeof(out)),
            PK_WIRE_EBAD);
}

/* Set a 16-bit (or 8-bit / 24-bit) length field and expect rc. */
static int with16(const unsigned char *src, size_t n, size_t off, size_t v) {
  unsigned char b[512];
  char out[64];
  memcpy(b, src, n);
  put16(b + off, v);
  return pk_wire_tls_sni(b, n, out, sizeof(out));
}

static int with8(const unsigned char *src, size_t n, size_t off, unsigned v) {
  unsigned char b[512];
  char out[64];
  memcpy(b, src, n);
  b[off] = (unsigned char)v;
  return pk_wire_tls_sni(b, n, out, sizeof(out));
}

TEST(corrupted_record_length) {
  unsigned char b[512];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  size_t rl = n - 5;
  CHECK_INT(with16(b, n, o.rec_len, rl), 1);
  CHECK_INT(with16(b, n, o.rec_len, rl + 1), PK_WIRE_NEED_MORE); /* waits for more */
  CHECK_INT(with16(b, n, o.rec_len, 16384), PK_WIRE_NEED_MORE);
  CHECK_INT(with16(b, n, o.rec_len, 16385), PK_WIRE_EBAD);       /* above TLS limit */
  CHECK_INT(with16(b, n, o.rec_len, 0xffff), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.rec_len, rl - 1), PK_WIRE_EBAD); /* handshake no longer fits */
  CHECK_INT(with16(b, n, o.rec_len, 0), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.rec_len, 3), PK_WIRE_EBAD);
}

TEST(corrupted_handshake_length) {
  unsigned char b[512], c[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  memcpy(c, b, n);
  c[o.hs_len] = 0x01; /* 65536+ bytes: larger than the record */
  CHECK_INT(pk_wire_tls_sni(c, n, out, sizeof(out)), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.hs_len + 1, n - 9 + 1), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.hs_len + 1, 0), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.hs_len + 1, 20), PK_WIRE_EBAD); /* cuts the random */
  /* Shorter handshake cutting off the SNI extension: no name found. */
  CHECK_INT(with16(b, n, o.hs_len + 1, o.ext_len - 9 + 2 + 9), PK_WIRE_EBAD);
}

TEST(corrupted_session_id_length) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  CHECK_INT(with8(b, n, o.sid_len, 33), PK_WIRE_EBAD); /* > 32 is illegal */
  CHECK_INT(with8(b, n, o.sid_len, 0xff), PK_WIRE_EBAD);
  CHECK_INT(with8(b, n, o.sid_len, 0), PK_WIRE_EBAD); /* parses garbage after */
  CHECK_INT(with8(b, n, o.sid_len, 31), PK_WIRE_EBAD);
  /* Well-formed apart from the limit: a 33-byte session id is refused. */
  n = build_hello_ex(b, "a.example", 0, 33, 4, 1, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello_ex(b, "a.example", 0, 0, 4, 1, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), 1);
  CHECK(strcmp(out, "a.example") == 0);
}

TEST(corrupted_cipher_suites_length) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  CHECK_INT(with16(b, n, o.cs_len, 0), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.cs_len, 3), PK_WIRE_EBAD); /* odd */
  CHECK_INT(with16(b, n, o.cs_len, 0xfffe), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.cs_len, n), PK_WIRE_EBAD);
  /* Well-formed apart from the count: empty or odd lists are refused. */
  n = build_hello_ex(b, "a.example", 0, 32, 0, 1, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello_ex(b, "a.example", 0, 32, 5, 1, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello_ex(b, "a.example", 0, 32, 2, 1, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), 1);
}

TEST(corrupted_compression_length) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  CHECK_INT(with8(b, n, o.comp_len, 0), PK_WIRE_EBAD);
  CHECK_INT(with8(b, n, o.comp_len, 0xff), PK_WIRE_EBAD);
  /* Well-formed apart from the count: at least one method is required. */
  n = build_hello_ex(b, "a.example", 0, 32, 4, 0, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), PK_WIRE_EBAD);
  n = build_hello_ex(b, "a.example", 0, 32, 4, 2, &o);
  CHECK_INT(pk_wire_tls_sni(b, n, out, sizeof(out)), 1);
}

TEST(corrupted_extensions_length) {
  unsigned char b[512];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  size_t el = n - o.ext_len - 2;
  CHECK_INT(with16(b, n, o.ext_len, el + 1), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.ext_len, 0xffff), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.ext_len, 0), PK_WIRE_EBAD); /* no extensions: no SNI */
  CHECK_INT(with16(b, n, o.ext_len, 3), PK_WIRE_EBAD); /* partial extension header */
  /* One extension length overrunning the extensions block. */
  CHECK_INT(with16(b, n, o.ext_len + 2 + 2, 0xfff0), PK_WIRE_EBAD);
}

TEST(corrupted_server_name_lengths) {
  unsigned char b[512];
  hello_offsets o;
  size_t n = build_hello(b, "a.example", 0, &o);
  CHECK_INT(with16(b, n, o.sni_ext_len, 0), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_ext_len, 1), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_ext_len, 0xffff), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_list_len, 0), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_list_len, 2), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_list_len, 0x100), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_name_len, 0), PK_WIRE_EBAD);
  CHECK_INT(with16(b, n, o.sni_name_len, 10), PK_WIRE_EBAD); /* one past the list */
  CHECK_INT(with16(b, n, o.sni_name_len, 0xffff), PK_WIRE_EBAD);
  /* A shorter name is still inside the list and is accepted as such. */
  {
    unsigned char c[512];
    char out[64];
    memcpy(c, b, n);
    put16(c + o.sni_name_len, 1);
    CHECK_INT(pk_wire_tls_sni(c, n, out, sizeof(out)), 1);
    CHECK(strcmp(out, "a") == 0);
  }
}

TEST(synthetic_every_truncation) {
  unsigned char b[512];
  char out[64];
  hello_offsets o;
  size_t n = build_hello(b, "t.example", 1, &o), i;
  int ok = 1;
  for (i = 0; i < n; i++) {
    unsigned char *cp = malloc(i ? i : 1);
    if (cp == NULL) return;
    memcpy(cp, b, i);
    if (pk_wire_tls_sni(cp, i, out, sizeof(out)) != PK_WIRE_NEED_MORE) ok = 0;
    free(cp);
  }
  CHECK(ok);
}

TEST(random_bytes_never_crash) {
  unsigned char buf[300];
  char out[32];
  unsigned seed = 99;
  int round, ok = 1;
  for (round = 0; round < 50000; round++) {
    size_t i, n;
    int rc;
    seed = seed * 1103515245u + 12345u;
    n = (seed >> 16) % sizeof(buf);
    for (i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      buf[i] = (unsigned char)((seed >> 16) & 3 ? (seed >> 20) % 4 : (seed >> 12));
    }
    if (n > 0) buf[0] = 0x16;
    if (n > 1) buf[1] = 0x03;
    if (n > 5) buf[5] = 0x01;
    if (n > 4) {
      buf[3] = (unsigned char)((n - 5) >> 8);
      buf[4] = (unsigned char)(n - 5);
    }
    rc = pk_wire_tls_sni(buf, n, out, sizeof(out));
    if (!valid_rc(rc)) ok = 0;
  }
  CHECK(ok);
}

TEST(peek_kind) {
  const unsigned char tls[] = {0x16, 0x03, 0x01, 0x02, 0x00};
  CHECK_INT(pk_wire_peek_kind(tls, 5), PK_PEEK_TLS);
  CHECK_INT(pk_wire_peek_kind(tls, 3), PK_PEEK_TLS);
  CHECK_INT(pk_wire_peek_kind(tls, 2), PK_PEEK_NEED_MORE);
  CHECK_INT(pk_wire_peek_kind(tls, 0), PK_PEEK_NEED_MORE);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"GET / HTTP/1.1\r\n", 16), PK_PEEK_HTTP);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"GET", 3), PK_PEEK_HTTP);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"GE", 2), PK_PEEK_NEED_MORE);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"POST /x HTTP/1.0\r\n", 18), PK_PEEK_HTTP);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"CONNECT PageKite:1 HTTP/1.0", 27),
            PK_PEEK_HTTP);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"OPTIONS * HTTP/1.1", 18), PK_PEEK_HTTP);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"GETX / HTTP/1.1", 15), PK_PEEK_UNKNOWN);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"get / HTTP/1.1", 14), PK_PEEK_UNKNOWN);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"SSH-2.0-OpenSSH", 15), PK_PEEK_UNKNOWN);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"\x00\x01\x02", 3), PK_PEEK_UNKNOWN);
  CHECK_INT(pk_wire_peek_kind((const unsigned char *)"\x16\x02\x00", 3), PK_PEEK_UNKNOWN);
  CHECK_INT(pk_wire_peek_kind(NULL, 10), PK_PEEK_NEED_MORE);
}

int main(int argc, char **argv) {
  if (argc > 1) data_dir = argv[1];
  RUN(captured_hello_sni);
  RUN(captured_hello_every_truncation_needs_more);
  RUN(captured_hello_without_sni);
  RUN(captured_hello_every_byte_mutated);
  RUN(synthetic_hello);
  RUN(trailing_bytes_after_record_ignored);
  RUN(output_buffer_size);
  RUN(bad_host_names);
  RUN(not_a_client_hello);
  RUN(corrupted_record_length);
  RUN(corrupted_handshake_length);
  RUN(corrupted_session_id_length);
  RUN(corrupted_cipher_suites_length);
  RUN(corrupted_compression_length);
  RUN(corrupted_extensions_length);
  RUN(corrupted_server_name_lengths);
  RUN(synthetic_every_truncation);
  RUN(random_bytes_never_crash);
  RUN(peek_kind);
  return TEST_DONE();
}

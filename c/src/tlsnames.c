/* tlsnames.c - which names a relay's certificate may carry, and saying so
 * when it carries none of them.
 *
 * A tunnel to a relay is verified against the name we dialled (or its IP
 * literal) and against every accepted name (pagekite_add_frontend_certname):
 * the service's names (pagekite.py's SERVICE_CERTS) when the service relays
 * are used (for a white label too, unless PK_WITH_FRONTEND_SNI), "fe.<domain>"
 * and "<domain>" for a white-label domain.  The pool names we dial
 * (fe4_091c.b5p.us) are not on the service's certificates.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"

const char *const pk_service_certnames[] = {"b5p.us",       "frontends.b5p.us", "pagekite.net",
                                            "pagekite.me",  "pagekite.com",     "pagekite.org",
                                            "testing.is",   "302.is",           NULL};

int pk_certname_add(pk_mgr *m, const char *name) {
  if (!*name) { /* as pagekite.py's --fe_certname="": forget the list */
    m->ncertnames = 0;
    return 0;
  }
  for (int i = 0; i < m->ncertnames; i++)
    if (strcasecmp(m->certnames[i], name) == 0) return 0;
  if (m->ncertnames >= PK_MAX_CERTNAMES) {
    pk_fail(PK_ELIMIT, "at most %d accepted certificate names", PK_MAX_CERTNAMES);
    return -1;
  }
  char *dst = m->certnames[m->ncertnames++];
  snprintf(dst, PK_NAME_MAX, "%s", name);
  for (char *p = dst; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  return 0;
}

static int is_ip_literal(const char *s) {
  struct in6_addr tmp;
  return inet_pton(AF_INET, s, &tmp) == 1 || inet_pton(AF_INET6, s, &tmp) == 1;
}

/* What one client SSL expects, in its ex_data (freed with it). */
typedef struct {
  pk_mgr *m;
  char dialled[PK_NAME_MAX]; /* name or IP literal, "" when none */
  X509 *peer;                /* the relay's certificate, kept for messages */
} pk_tls_expect;

static int expect_idx = -1;
static uv_once_t expect_once = UV_ONCE_INIT;

static void expect_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                        void *argp) {
  pk_tls_expect *e = ptr;
  if (e) X509_free(e->peer);
  free(e);
}

static void expect_init(void) {
  expect_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, expect_free);
}

static pk_tls_expect *expect_of(const SSL *ssl) {
  uv_once(&expect_once, expect_init);
  return expect_idx >= 0 ? SSL_get_ex_data(ssl, expect_idx) : NULL;
}

/* The names are checked by pk_tls_verify_cb rather than by OpenSSL's host
 * and IP parameters: those would want the certificate to carry the dialled
 * IP and a name at once, where any one of them is enough. */
int pk_tls_expect_names(pk_mgr *m, SSL *ssl, const char *dialled) {
  int named = dialled && *dialled && !is_ip_literal(dialled);
  /* PK_WITH_FRONTEND_SNI: ask a white label's relay for fe.DOMAIN. */
  if (m->relay_sni[0]) SSL_set_tlsext_host_name(ssl, m->relay_sni);
  else if (named) SSL_set_tlsext_host_name(ssl, dialled);
  uv_once(&expect_once, expect_init);
  pk_tls_expect *e = calloc(1, sizeof(*e));
  if (!e || expect_idx < 0 || SSL_set_ex_data(ssl, expect_idx, e) != 1) {
    free(e);
    return -1;
  }
  e->m = m;
  snprintf(e->dialled, sizeof(e->dialled), "%s", dialled ? dialled : "");
  return 0;
}

/* The certificate carries the dialled name or IP, or an accepted name
 * (wildcards as OpenSSL matches them). */
static int names_match(const pk_tls_expect *e, X509 *cert) {
  const char *d = e->dialled;
  if (*d && is_ip_literal(d) && X509_check_ip_asc(cert, d, 0) == 1) return 1;
  if (*d && !is_ip_literal(d) && X509_check_host(cert, d, 0, 0, NULL) == 1) return 1;
  for (int i = 0; i < e->m->ncertnames; i++)
    if (X509_check_host(cert, e->m->certnames[i], 0, 0, NULL) == 1) return 1;
  return 0;
}

int pk_tls_verify_cb(int ok, X509_STORE_CTX *st) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx());
  X509 *cert = X509_STORE_CTX_get_current_cert(st);
  pk_tls_expect *e = ssl ? expect_of(ssl) : NULL;
  if (!e || !cert || X509_STORE_CTX_get_error_depth(st) != 0) return ok;
  if (!e->peer && X509_up_ref(cert) == 1) e->peer = cert;
  if (ok && !names_match(e, cert)) {
    X509_STORE_CTX_set_error(st, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
  }
  return ok;
}

/* "a, b, c" (at most n bytes). */
static void join(char *out, size_t n, const char *first, const char (*rest)[PK_NAME_MAX], int nrest) {
  size_t o = 0;
  out[0] = 0;
  if (first && *first) o += (size_t)snprintf(out, n, "%s", first);
  for (int i = 0; i < nrest && o < n; i++)
    o += (size_t)snprintf(out + o, n - o, "%s%s", o ? ", " : "", rest[i]);
}

/* The DNS names and IP addresses of a certificate (subjectAltName, else
 * the CN). */
static void cert_names(X509 *cert, char *out, size_t n) {
  size_t o = 0;
  out[0] = 0;
  GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && o < n; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    char ip[64] = "";
    const unsigned char *ipb = g->type == GEN_IPADD ? ASN1_STRING_get0_data(g->d.iPAddress) : NULL;
    int ipl = ipb ? ASN1_STRING_length(g->d.iPAddress) : 0;
    if (ipb && (ipl == 4 || ipl == 16)) inet_ntop(ipl == 4 ? AF_INET : AF_INET6, ipb, ip, sizeof(ip));
    if (ip[0])
      o += (size_t)snprintf(out + o, n - o, "%s%s", o ? ", " : "", ip);
    else if (g->type == GEN_DNS)
      o += (size_t)snprintf(out + o, n - o, "%s%.*s", o ? ", " : "",
                            ASN1_STRING_length(g->d.dNSName),
                            (const char *)ASN1_STRING_get0_data(g->d.dNSName));
  }
  GENERAL_NAMES_free(gens);
  if (!o) X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)n);
  if (!out[0]) snprintf(out, n, "no name");
}

void pk_tls_mismatch_why(pk_mgr *m, SSL *ssl, char *out, size_t n) {
  char want[1024], have[512] = "";
  pk_tls_expect *e = expect_of(ssl);
  join(want, sizeof(want), e ? e->dialled : "", (const char (*)[PK_NAME_MAX])m->certnames,
       m->ncertnames);
  X509 *cert = SSL_get0_peer_certificate(ssl);
  if (!cert && e) cert = e->peer;
  if (cert) cert_names(cert, have, sizeof(have));
  snprintf(out, n, "the relay's certificate is for %s; expected one of: %s", have[0] ? have : "?",
           want);
}

int pk_tls_names_mismatch(const SSL *ssl) {
  long vr = SSL_get_verify_result(ssl);
  return vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH;
}

/* tlsnames.c - which names a relay's certificate may carry, and saying so
 * when it carries none of them.
 *
 * A tunnel to a relay is verified against the name we dialled (or its IP
 * literal) and against every accepted name (pagekite_add_frontend_certname):
 * the service's names (pagekite.py's SERVICE_CERTS) when the service relays
 * are used, "fe.<domain>" and "<domain>" for a white-label domain.  The pool
 * names we dial (fe4_091c.b5p.us) are not on the service's certificates.
 */
#include <arpa/inet.h>
#include <stdio.h>
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
    pk_set_error("at most %d accepted certificate names", PK_MAX_CERTNAMES);
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

int pk_tls_expect_names(pk_mgr *m, SSL *ssl, const char *dialled) {
  int named = dialled && *dialled && !is_ip_literal(dialled);
  if (named) SSL_set_tlsext_host_name(ssl, dialled);
  if (!m->tls_verify) return 0;
  /* An IP literal is checked as such only when no names are accepted
   * (OpenSSL would want the certificate to carry both). */
  if (dialled && *dialled && !named && !m->ncertnames)
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), dialled) == 1 ? 0 : -1;
  int hosts = 0;
  if (named && SSL_set1_host(ssl, dialled) != 1) return -1;
  hosts += named;
  for (int i = 0; i < m->ncertnames; i++)
    if ((hosts++ ? SSL_add1_host(ssl, m->certnames[i]) : SSL_set1_host(ssl, m->certnames[i])) != 1)
      return -1;
  return 0;
}

/* "a, b, c" (at most n bytes). */
static void join(char *out, size_t n, const char *first, const char (*rest)[PK_NAME_MAX], int nrest) {
  size_t o = 0;
  out[0] = 0;
  if (first && *first) o += (size_t)snprintf(out, n, "%s", first);
  for (int i = 0; i < nrest && o < n; i++)
    o += (size_t)snprintf(out + o, n - o, "%s%s", o ? ", " : "", rest[i]);
}

/* The DNS names of a certificate (subjectAltName, else the CN). */
static void cert_names(X509 *cert, char *out, size_t n) {
  size_t o = 0;
  out[0] = 0;
  GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && o < n; i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
    if (g->type != GEN_DNS) continue;
    const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
    o += (size_t)snprintf(out + o, n - o, "%s%.*s", o ? ", " : "",
                          ASN1_STRING_length(g->d.dNSName), (const char *)s);
  }
  GENERAL_NAMES_free(gens);
  if (!o)
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)n);
  if (!out[0]) snprintf(out, n, "no DNS name");
}

/* A failed verification leaves no peer certificate on the SSL: the verify
 * callback keeps the relay's own (depth 0) in the SSL's ex_data so that the
 * refusal can say what it was for. */
static int peer_idx = -1;
static uv_once_t peer_once = UV_ONCE_INIT;

static void peer_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
  X509_free(ptr);
}

static void peer_init(void) { peer_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, peer_free); }

int pk_tls_verify_cb(int ok, X509_STORE_CTX *st) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(st, SSL_get_ex_data_X509_STORE_CTX_idx());
  X509 *cert = X509_STORE_CTX_get_current_cert(st);
  uv_once(&peer_once, peer_init);
  if (ssl && cert && peer_idx >= 0 && X509_STORE_CTX_get_error_depth(st) == 0 &&
      !SSL_get_ex_data(ssl, peer_idx) && X509_up_ref(cert) == 1 &&
      SSL_set_ex_data(ssl, peer_idx, cert) != 1)
    X509_free(cert);
  return ok;
}

void pk_tls_mismatch_why(pk_mgr *m, SSL *ssl, const char *dialled, char *out, size_t n) {
  char want[1024], have[512] = "";
  join(want, sizeof(want), dialled, (const char (*)[PK_NAME_MAX])m->certnames, m->ncertnames);
  uv_once(&peer_once, peer_init);
  X509 *cert = SSL_get0_peer_certificate(ssl);
  if (!cert && peer_idx >= 0) cert = SSL_get_ex_data(ssl, peer_idx);
  if (cert) cert_names(cert, have, sizeof(have));
  snprintf(out, n, "the relay's certificate is for %s; expected one of: %s", have[0] ? have : "?",
           want);
}

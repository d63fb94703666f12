/* sign.c - PageKite salts, tokens and signatures (see sign.h).
 *
 * Same formulas as pagekite.py's signToken()/checkSignature(); SHA-1 through
 * the OpenSSL EVP interface, randomness from RAND_bytes.
 */
#include "sign.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define PK_TS_WINDOW 600 /* seconds per timestamp window */

static const char pk_hexdigits[] = "0123456789abcdef";

/* strnlen() without depending on POSIX feature macros. */
static size_t pk_strnlen(const char *s, size_t max) {
  size_t i = 0;
  while (i < max && s[i] != '\0') i++;
  return i;
}

static void pk_hex(const unsigned char *in, size_t n, char *out) {
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = pk_hexdigits[in[i] >> 4];
    out[2 * i + 1] = pk_hexdigits[in[i] & 0x0f];
  }
}

/* Returns 0, or -1 when OpenSSL fails (out is then all zeros). */
static int pk_sha1hex_try(const char *const *parts, int nparts, char out[41]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1;
  int i;
  for (i = 0; ok && i < nparts; i++) {
    const char *p = parts[i] ? parts[i] : "";
    ok = EVP_DigestUpdate(ctx, p, strlen(p)) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    memset(out, '0', 40);
    out[40] = '\0';
    return -1;
  }
  pk_hex(md, 20, out);
  out[40] = '\0';
  return 0;
}

void pk_sha1hex_parts(const char *const *parts, int nparts, char out[41]) {
  (void)pk_sha1hex_try(parts, nparts, out);
}

int pk_random_hex(char *out, size_t n) {
  unsigned char rnd[32];
  size_t done = 0;
  if (out == NULL) return -1;
  while (done < n) {
    size_t want = (n - done + 1) / 2, i;
    if (want > sizeof(rnd)) want = sizeof(rnd);
    if (RAND_bytes(rnd, (int)want) != 1) {
      out[0] = '\0';
      return -1;
    }
    for (i = 0; i < want * 2 && done < n; i++) {
      out[done++] = pk_hexdigits[(rnd[i / 2] >> ((i & 1) ? 0 : 4)) & 0x0f];
    }
  }
  out[n] = '\0';
  OPENSSL_cleanse(rnd, sizeof(rnd));
  return 0;
}

int pk_consttime_eq(const char *a, const char *b, size_t n) {
  if (a == NULL || b == NULL) return 0;
  return CRYPTO_memcmp(a, b, n) == 0;
}

/* signToken with pagekite.py's length argument: 8 + (len - 8) hex chars
 * (len at most 48, a whole SHA-1). */
static int sign_len(const char *secret, const char *payload, const char *token,
                    long long timestamp, char *out, size_t len) {
  char prefix[9];
  char rnd[9];
  char ts[24];
  char digest[41];
  const char *parts[4];
  int nparts = 0;
  if (out == NULL) return -1;
  out[0] = '\0';
  if (secret == NULL) return -1;
  if (payload == NULL) payload = "";
  if (token == NULL) {
    if (pk_random_hex(rnd, 8) != 0) return -1;
    token = rnd;
  }
  if (pk_strnlen(token, 8) < 8) return -1;
  memcpy(prefix, token, 8);
  prefix[8] = '\0';

  parts[nparts++] = secret;
  parts[nparts++] = payload;
  if (timestamp != 0) {
    /* Python: '%x' % int(timestamp/600), truncating toward zero like C. */
    long long w = timestamp / PK_TS_WINDOW;
    unsigned long long mag = w < 0 ? 0ULL - (unsigned long long)w : (unsigned long long)w;
    snprintf(ts, sizeof(ts), "%s%llx", w < 0 ? "-" : "", mag);
    prefix[0] = 't';
    parts[nparts++] = ts;
  }
  parts[nparts++] = prefix;
  if (pk_sha1hex_try(parts, nparts, digest) != 0) return -1;
  memcpy(out, prefix, 8);
  memcpy(out + 8, digest, len - 8);
  out[len] = '\0';
  return 0;
}

int pk_sign_token(const char *secret, const char *payload, const char *token, long long timestamp,
                  char out[PK_TOKEN_LEN + 1]) {
  return sign_len(secret, payload, token, timestamp, out, PK_TOKEN_LEN);
}

int pk_sign_long(const char *secret, const char *payload, char out[PK_LONG_SIGN_LEN + 1]) {
  return sign_len(secret, payload, NULL, 0, out, PK_LONG_SIGN_LEN);
}

int pk_check_signature(const char *sign, const char *secret, const char *payload, long long now) {
  char valid[PK_TOKEN_LEN + 1];
  int ok = 0, window;
  /* Anything but a full-length signature can never equal a fresh one. */
  if (sign == NULL || secret == NULL || pk_strnlen(sign, PK_TOKEN_LEN + 1) != PK_TOKEN_LEN) return 0;
  if (sign[0] == 't') {
    /* Both windows are always computed so timing does not tell which hit. */
    for (window = 0; window < 2; window++) {
      if (window == 1 && now < LLONG_MIN + PK_TS_WINDOW) break;
      if (pk_sign_token(secret, payload, sign, now - (long long)window * PK_TS_WINDOW, valid) == 0) {
        ok |= pk_consttime_eq(sign, valid, PK_TOKEN_LEN);
      }
    }
  } else if (pk_sign_token(secret, payload, sign, 0, valid) == 0) {
    ok = pk_consttime_eq(sign, valid, PK_TOKEN_LEN);
  }
  OPENSSL_cleanse(valid, sizeof(valid));
  return ok;
}

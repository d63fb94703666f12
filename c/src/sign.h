/* sign.h - PageKite salts, tokens and signatures (SHA-1 hex via OpenSSL EVP). */
#ifndef PK_SIGN_H
#define PK_SIGN_H

#include <stddef.h>

#define PK_TOKEN_LEN 36 /* signatures and salts are 36 characters */

/* Lower-case hex SHA-1 of the concatenation of nparts strings. */
void pk_sha1hex_parts(const char *const *parts, int nparts, char out[41]);

/* pagekite.py's signToken(): with timestamp == 0,
 *   out = token[0:8] + sha1hex(secret + payload + token[0:8])[0:28]
 * with a timestamp (seconds),
 *   tok = 't' + token[1:];
 *   out = tok[0:8] + sha1hex(secret + payload + ('%x' % (timestamp/600)) + tok[0:8])[0:28]
 * token must hold at least 8 characters; when token is NULL a random one is
 * used.  out gets PK_TOKEN_LEN chars + NUL.  Returns 0, or -1 on bad input. */
int pk_sign_token(const char *secret, const char *payload, const char *token, long long timestamp,
                  char out[PK_TOKEN_LEN + 1]);

/* signToken(secret, payload, length=100) as pagekite.py and libpagekite sign
 * DDNS updates: a random 8-char salt + the whole sha1hex(secret + payload +
 * salt), 48 characters.  Returns 0 or -1. */
#define PK_LONG_SIGN_LEN 48
int pk_sign_long(const char *secret, const char *payload, char out[PK_LONG_SIGN_LEN + 1]);

/* pagekite.py's checkSignature(): a 't' signature is valid for the window of
 * `now` and the one before it (600 s each); other signatures are re-signed
 * with their own 8-char prefix.  Constant-time comparison.  1 valid, 0 not. */
int pk_check_signature(const char *sign, const char *secret, const char *payload, long long now);

/* Fill out with n random lower-case hex characters (OpenSSL RAND_bytes) and a
 * NUL.  Returns 0 or -1. */
int pk_random_hex(char *out, size_t n);

/* Constant-time equality of two n-byte strings: 1 equal, 0 not. */
int pk_consttime_eq(const char *a, const char *b, size_t n);

#endif

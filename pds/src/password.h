/* pds/src/password.h: password and app-password hashing (scrypt via OpenSSL).
 *
 * Stored form (self-describing, so parameters can be raised later without a migration):
 *   "$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt hex, 32>$<key hex, 128>"
 * New hashes use N = 2^14, r = 8, p = 1, a 16-byte random salt and a 64-byte key: the
 * reference PDS's parameters (16 MiB of memory per hash; measured 50-150 ms on this machine's
 * cores; N = 2^15 measured ~290 ms, too slow for logins on 2 cores: two cores sustain
 * ~25 logins/s at 2^14, more than the default rate limits let through).
 * Verification accepts ln 10..16, r 1..16, p 1..4 (at most 128 MiB) and compares in constant
 * time.
 */
#ifndef PDS_PASSWORD_H
#define PDS_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "atp/err.h"

#define PDS_PASSWORD_MAX 256  /* bytes of a new password (the reference's limit) */
#define PDS_PW_HASH_LEN 192   /* buffer for a stored hash string */
#define PDS_APP_PASS_LEN 19   /* "xxxx-xxxx-xxxx-xxxx" */

/* Hashes `pw` (pw_len bytes) into out (NUL-terminated). ATP_EINVAL if pw_len is 0 or over
 * PDS_PASSWORD_MAX; ATP_EINTERNAL if OpenSSL fails. */
ATP_NODISCARD int pds_password_hash(const char *pw, size_t pw_len, char out[PDS_PW_HASH_LEN]);

/* Parses the parameters of a stored hash string and checks its shape (salt and key lengths,
 * lowercase hex); false for anything else. Pure. */
bool pds_password_params(const char *stored, unsigned *ln, unsigned *r, unsigned *p);

/* True if `pw` matches `stored` (any malformed stored string: false). */
bool pds_password_verify(const char *pw, size_t pw_len, const char *stored);

/* A new app password "xxxx-xxxx-xxxx-xxxx" (lowercase base32 letters and digits 2-7). */
void pds_app_password_generate(char out[PDS_APP_PASS_LEN + 1]);

/* True if `s` has the app password shape. */
bool pds_app_password_shape(const char *s, size_t n);

/* Random URL-safe token of `nbytes` random bytes, base64url (no padding) into out; out must
 * hold 4 * nbytes / 3 + 4 bytes. */
void pds_random_token(char *out, size_t nbytes);

#endif

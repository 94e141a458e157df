/* atp/jwt.h: compact JWS tokens (JWT) for atproto session and inter-service auth.
 *
 * Three algorithms: ES256K (k256 key), ES256 (P-256 key), HS256 (a shared secret). The alg is
 * chosen by the key given, never read from the token: verification refuses "none" and any
 * alg that does not match the key (no alg confusion). Segments are base64url without padding;
 * the signature segment must be canonical (no padding, zero trailing bits).
 *
 * Claims are cJSON objects: callers build them for signing and receive an owned copy after
 * verification (free with cJSON_Delete). Time is always given by the caller (`now`, Unix
 * seconds), so nothing here reads a clock.
 */
#ifndef ATP_JWT_H
#define ATP_JWT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/crypto.h"

#define ATP_JWT_MAX_LEN_DEFAULT   8192 /* bytes of token text */
#define ATP_JWT_MAX_DEPTH_DEFAULT 16   /* JSON nesting in header and payload */
#define ATP_JWT_MAX_ITEMS_DEFAULT 64   /* members of the header / payload object */
#define ATP_JWT_LEEWAY_DEFAULT    10   /* seconds of slack on exp and nbf */
#define ATP_JWT_IAT_SKEW_DEFAULT  60   /* how far in the future iat may be, seconds */

/* Signing / verification material: exactly one of `key` (ES256K or ES256 by its curve) or a
 * non-empty `secret` (HS256). Both borrowed for the duration of the call. */
typedef struct atp_jwt_key {
    const atp_key *key;
    atp_slice secret;
} atp_jwt_key;

/* Parser limits; a NULL pointer means the defaults above. A zero field also means its
 * default. */
typedef struct atp_jwt_limits {
    size_t max_len;
    int max_depth;
    int max_items;
} atp_jwt_limits;

/* What atp_jwt_verify checks besides the signature. Fill with atp_jwt_verify_opts_init and
 * then set the expectations; all string fields are borrowed C strings, NULL = not checked. */
typedef struct atp_jwt_verify_opts {
    atp_jwt_key key;
    int64_t now;         /* Unix seconds */
    int64_t leeway;      /* exp is expired once now >= exp + leeway; nbf ok if nbf <= now+leeway */
    int64_t iat_skew;    /* iat (when present) must be <= now + iat_skew */
    bool exp_optional;   /* true: a token without exp is accepted (never expires) */
    bool allow_high_s;   /* accept high-S ECDSA (the reference's service-JWT verifier does) */
    const char *typ;     /* expected header typ ("JWT", "at+jwt", "refresh+jwt") */
    const char *aud;     /* expected audience: the aud claim must be a string equal to it... */
    const char *aud_alt; /* ...or to this one (e.g. bare DID and "<did>#<service id>") */
    const char *lxm;     /* expected lxm claim (service auth: the NSID being called) */
} atp_jwt_verify_opts;

/* Sets every field to "strict, nothing expected": key unset, `now` as given, leeway and iat
 * skew at their defaults, exp required, low-S required. */
void atp_jwt_verify_opts_init(atp_jwt_verify_opts *o, int64_t now);

/* JWT alg of a key: "ES256K", "ES256" or "HS256"; NULL if the key is not exactly one of
 * key/secret. */
const char *atp_jwt_key_alg(const atp_jwt_key *key);

/* Appends a signed token b64url({"typ":typ,"alg":alg}) "." b64url(claims) "." b64url(sig) to
 * `out`. `typ` NULL means "JWT". `claims` must be a JSON object (borrowed).
 * Errors: ATP_EINVAL (bad key choice, claims not an object, typ with a quote or control
 * character), ATP_EKEY (public-only EC key), ATP_ELIMIT (out's max reached; out->err set),
 * ATP_EINTERNAL. On error `out` is left at its previous length. */
ATP_NODISCARD int atp_jwt_sign(atp_buf *out, const atp_jwt_key *key, const char *typ,
                               const cJSON *claims, atp_err *err);

/* Verifies `token` and its claims (see atp_jwt_verify_opts), then writes the payload to
 * *claims (owned: cJSON_Delete; `claims` may be NULL if not wanted).
 * Errors: ATP_ETOKEN (malformed, too long, JSON too deep or with too many members, alg none or
 * not matching the key, unknown "crit", bad signature, typ/aud/lxm mismatch, nbf or iat in
 * the future, exp missing or not a number), ATP_EEXPIRED (exp passed), ATP_EINVAL (opts key
 * is not exactly one of key/secret). err->msg says which rule failed. */
ATP_NODISCARD int atp_jwt_verify(atp_slice token, const atp_jwt_verify_opts *opts,
                                 const atp_jwt_limits *lim, cJSON **claims, atp_err *err);

/* UNVERIFIED: decodes header and payload without checking the signature or any claim, for
 * routing decisions only (e.g. which DID to resolve). Either out pointer may be NULL; written
 * ones are owned (cJSON_Delete). Errors: ATP_ETOKEN for any malformation. */
ATP_NODISCARD int atp_jwt_decode_unverified(atp_slice token, const atp_jwt_limits *lim,
                                            cJSON **header, cJSON **payload, atp_err *err);

/* UNVERIFIED: appends the `iss` claim (a string, as is) to `out`: service auth needs the
 * issuer's DID to find the key before it can verify. Never trust the value before
 * atp_jwt_verify succeeds with that key. Errors: ATP_ETOKEN (malformed or no string iss),
 * ATP_ELIMIT (out full). */
ATP_NODISCARD int atp_jwt_unverified_iss(atp_slice token, const atp_jwt_limits *lim, atp_buf *out,
                                         atp_err *err);

#endif

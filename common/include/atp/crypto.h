/* atp/crypto.h: the two atproto curves (secp256k1 "k256" / ES256K, NIST P-256 "p256" / ES256),
 * ECDSA over SHA-256 with 64-byte compact r||s low-S signatures, and the public key string
 * forms (did:key, Multikey, legacy publicKeyMultibase).
 *
 * One opaque key object holds a parsed public key and, optionally, the private scalar. It is
 * immutable once made: any number of threads may sign and verify with the same key at once
 * (k256 verify touches nothing but the parsed point and libsecp256k1's static context; P-256
 * keeps one cached OpenSSL verify context behind a try-lock and a contended caller makes a
 * temporary one, see crypto.c).
 *
 * Signatures: signing always returns low-S (s <= n/2). k256 nonces are deterministic
 * (RFC 6979, by libsecp256k1); P-256 nonces are random (OpenSSL 3.0 has no deterministic
 * ECDSA), which is valid ECDSA: only the signature bytes differ from run to run.
 * Verification is strict: exactly 64 bytes, 0 < r < n, 0 < s <= n/2 (high-S rejected on both
 * curves unless ATP_SIG_ALLOW_HIGH_S is given), then ECDSA over SHA-256 of the message.
 */
#ifndef ATP_CRYPTO_H
#define ATP_CRYPTO_H

#include "atp/buf.h"

#define ATP_KEY_PRIV_LEN             32 /* private scalar, big-endian */
#define ATP_KEY_PUB_LEN              33 /* compressed SEC1 point (02/03 prefix) */
#define ATP_KEY_PUB_UNCOMPRESSED_LEN 65
#define ATP_SIG_LEN                  64 /* r || s, 32 bytes each, big-endian */
#define ATP_HASH_LEN                 32 /* SHA-256 digest */
/* Longest did:key string this module accepts or produces ("did:key:z" + base58 of 35 bytes
 * is 57 characters; the bound leaves room and matches nothing else). */
#define ATP_DIDKEY_MAX_LEN 128

typedef enum atp_curve {
    ATP_CURVE_K256 = 1, /* secp256k1, JWT alg ES256K, multicodec 0xe7 */
    ATP_CURVE_P256 = 2, /* NIST P-256 (secp256r1), JWT alg ES256, multicodec 0x1200 */
} atp_curve;

/* Flags for atp_key_verify_ex. */
#define ATP_SIG_ALLOW_HIGH_S 1u /* accept s > n/2 (the reference's service-JWT leniency) */

typedef struct atp_key atp_key;

/* ---- curves ---- */

/* "k256" / "p256"; "?" for an unknown value. */
const char *atp_curve_name(atp_curve c);
/* JWT alg: "ES256K" / "ES256"; "?" for an unknown value. */
const char *atp_curve_jwt_alg(atp_curve c);
/* Curve from "k256"/"secp256k1" or "p256"/"secp256r1"/"P-256"; ATP_EINVAL otherwise. */
ATP_NODISCARD int atp_curve_from_name(atp_slice name, atp_curve *out, atp_err *err);
/* Curve from a JWT alg, exactly "ES256K" or "ES256" (case-sensitive); ATP_EINVAL otherwise. */
ATP_NODISCARD int atp_curve_from_jwt_alg(atp_slice alg, atp_curve *out, atp_err *err);

/* ---- key objects ---- */

/* Drops one owner of a key; the last one frees it and wipes its private scalar. NULL is a
 * no-op. */
void atp_key_destroy(atp_key *k);

/* Adds an owner to `k` (thread-safe; keys are immutable once made, so owners on several
 * threads may use it at once); each owner calls atp_key_destroy once. Returns k. */
atp_key *atp_key_ref(atp_key *k);

/* Fresh private key from the OS CSPRNG (OpenSSL RAND_priv_bytes). *out is owned: destroy.
 * Errors: ATP_EINVAL (unknown curve), ATP_EINTERNAL (the RNG failed). */
ATP_NODISCARD int atp_key_generate(atp_curve c, atp_key **out, atp_err *err);

/* Private key from its 32-byte big-endian scalar, which must be in [1, n-1]. *out is owned.
 * Errors: ATP_EKEY (wrong length or scalar out of range), ATP_EINVAL (unknown curve). */
ATP_NODISCARD int atp_key_import_private(atp_curve c, atp_slice priv, atp_key **out, atp_err *err);
/* Same from 64 hex characters (either case), e.g. PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX. */
ATP_NODISCARD int atp_key_import_private_hex(atp_curve c, atp_slice hex, atp_key **out,
                                             atp_err *err);

/* Public-only key from SEC1 bytes: 33 compressed (02/03) or 65 uncompressed (04); hybrid
 * (06/07) forms are refused. The point must lie on the curve. *out is owned.
 * Errors: ATP_EKEY. */
ATP_NODISCARD int atp_key_import_public(atp_curve c, atp_slice sec1, atp_key **out, atp_err *err);

atp_curve atp_key_curve(const atp_key *k);
bool atp_key_has_private(const atp_key *k);
/* Copies the private scalar; ATP_EKEY if the key is public-only. */
ATP_NODISCARD int atp_key_export_private(const atp_key *k, uint8_t out[ATP_KEY_PRIV_LEN],
                                         atp_err *err);
/* Copies the compressed public point (33 bytes). */
void atp_key_export_public(const atp_key *k, uint8_t out[ATP_KEY_PUB_LEN]);
/* True when both keys are on the same curve with the same public point. */
bool atp_key_equal_public(const atp_key *a, const atp_key *b);

/* ---- ECDSA ---- */

/* Signs SHA-256(msg) into sig[64] (r||s, low-S). ATP_EKEY if the key has no private part,
 * ATP_EINTERNAL if the library fails. No allocation for k256. */
ATP_NODISCARD int atp_key_sign(const atp_key *k, atp_slice msg, uint8_t sig[ATP_SIG_LEN],
                               atp_err *err);
/* Same over a digest the caller computed (must be SHA-256 of the message). */
ATP_NODISCARD int atp_key_sign_prehash(const atp_key *k, const uint8_t hash[ATP_HASH_LEN],
                                       uint8_t sig[ATP_SIG_LEN], atp_err *err);

/* Verifies a signature over SHA-256(msg). 0 if valid; ATP_EINVAL if `sig` is malformed (not
 * 64 bytes, r or s zero or >= n, or high-S); ATP_ESIG if it does not verify. k256 verify never
 * allocates; P-256 allocates its cached context on a key's first verify (and a temporary one
 * when another thread holds the cached one). */
ATP_NODISCARD int atp_key_verify(const atp_key *k, atp_slice msg, atp_slice sig, atp_err *err);
/* Same over a SHA-256 digest the caller computed. */
ATP_NODISCARD int atp_key_verify_prehash(const atp_key *k, const uint8_t hash[ATP_HASH_LEN],
                                         atp_slice sig, atp_err *err);
/* Same with flags (ATP_SIG_ALLOW_HIGH_S); flags 0 is atp_key_verify_prehash. */
ATP_NODISCARD int atp_key_verify_prehash_ex(const atp_key *k, const uint8_t hash[ATP_HASH_LEN],
                                            atp_slice sig, unsigned flags, atp_err *err);

/* ---- string forms ---- */

/* Appends "did:key:z" + base58btc(multicodec varint || compressed point). */
void atp_didkey_encode(atp_buf *out, const atp_key *k);
/* Parses a did:key string (at most ATP_DIDKEY_MAX_LEN bytes) into a public-only key; the curve
 * comes from the multicodec (0xe7 secp256k1-pub, 0x1200 p256-pub). The point must be 33 bytes
 * compressed and on the curve. *out is owned.
 * Errors: ATP_EINVAL (prefix, base58, varint, unknown codec, length), ATP_EKEY (bad point). */
ATP_NODISCARD int atp_didkey_decode(atp_slice in, atp_key **out, atp_err *err);

/* Appends the Multikey form: the did:key string without "did:key:" ("zQ3s...", "zDna..."). */
void atp_multikey_encode(atp_buf *out, const atp_key *k);
/* Parses a Multikey publicKeyMultibase value; rules and errors as atp_didkey_decode. */
ATP_NODISCARD int atp_multikey_decode(atp_slice in, atp_key **out, atp_err *err);
/* Parses a LEGACY publicKeyMultibase ("z" + base58btc of the raw 33- or 65-byte SEC1 point, no
 * multicodec; the curve comes from the verification method type). Errors as above. */
ATP_NODISCARD int atp_multikey_decode_legacy(atp_curve c, atp_slice in, atp_key **out,
                                             atp_err *err);

#endif

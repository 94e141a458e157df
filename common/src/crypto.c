/* crypto.c: key objects and ECDSA for k256 (libsecp256k1) and P-256 (OpenSSL 3 EVP).
 *
 * Threading: the key object is never modified after creation. k256 verification uses
 * secp256k1_context_static (enough for parsing and verifying in libsecp256k1 0.2.0); k256
 * signing and public key derivation need a full context, created once per process under
 * pthread_once, randomised, and then only read (libsecp256k1 takes it as const). P-256 keys
 * hold one cached EVP_PKEY_CTX for verification in a separately allocated cache guarded by a
 * mutex taken with trylock: the common single-caller case reuses it, a concurrent caller
 * builds a temporary context instead of waiting.
 */
#include "atp/crypto.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <secp256k1.h>

#include "atp/multibase.h"
#include "atp/sha256.h"

/* Cached P-256 verify context; mutable state kept out of the const key (see file comment). */
struct p256_cache {
    pthread_mutex_t lock;
    EVP_PKEY_CTX *vctx;
};

struct atp_key {
    atomic_uint refs; /* owners beyond the first (atp_key_ref) */
    atp_curve curve;
    bool has_priv;
    uint8_t priv[ATP_KEY_PRIV_LEN];
    uint8_t pub[ATP_KEY_PUB_LEN];
    secp256k1_pubkey k1pub;   /* k256: parsed once so verify does no parsing */
    EVP_PKEY *pkey;           /* p256 */
    struct p256_cache *cache; /* p256 */
};

/* Curve orders n and half orders floor(n/2), big-endian: range and low-S checks compare
 * 32-byte strings instead of converting to bignums on the hot path. */
static const uint8_t k256_n[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                   0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
static const uint8_t k256_half[32] = {
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};
static const uint8_t p256_n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                                   0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
static const uint8_t p256_half[32] = {
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};

static const uint8_t zero32[32];

/* ---- curves ---- */

const char *atp_curve_name(atp_curve c)
{
    switch (c) {
    case ATP_CURVE_K256:
        return "k256";
    case ATP_CURVE_P256:
        return "p256";
    }
    return "?";
}

const char *atp_curve_jwt_alg(atp_curve c)
{
    switch (c) {
    case ATP_CURVE_K256:
        return "ES256K";
    case ATP_CURVE_P256:
        return "ES256";
    }
    return "?";
}

int atp_curve_from_name(atp_slice name, atp_curve *out, atp_err *err)
{
    if (atp_slice_eq_str(name, "k256") || atp_slice_eq_str(name, "secp256k1")) {
        *out = ATP_CURVE_K256;
        return 0;
    }
    if (atp_slice_eq_str(name, "p256") || atp_slice_eq_str(name, "secp256r1") ||
        atp_slice_eq_str(name, "P-256")) {
        *out = ATP_CURVE_P256;
        return 0;
    }
    return atp_err_set(err, ATP_EINVAL, 0, "unknown curve name");
}

int atp_curve_from_jwt_alg(atp_slice alg, atp_curve *out, atp_err *err)
{
    if (atp_slice_eq_str(alg, "ES256K")) {
        *out = ATP_CURVE_K256;
        return 0;
    }
    if (atp_slice_eq_str(alg, "ES256")) {
        *out = ATP_CURVE_P256;
        return 0;
    }
    return atp_err_set(err, ATP_EINVAL, 0, "unsupported JWT alg for ECDSA");
}

static bool curve_ok(atp_curve c)
{
    return c == ATP_CURVE_K256 || c == ATP_CURVE_P256;
}

/* ---- process-wide secp256k1 signing context ---- */

static pthread_once_t k1_once = PTHREAD_ONCE_INIT;
static secp256k1_context *k1_sign_ctx;

/* Created once and never freed: it lives as long as the process and is read-only after
 * randomisation, so sharing it between threads is safe. Randomisation is side-channel
 * blinding only; a failed RNG leaves a working (unblinded) context. */
static void k1_init(void)
{
    uint8_t seed[32];
    k1_sign_ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (RAND_priv_bytes(seed, sizeof seed) == 1 &&
        !secp256k1_context_randomize(k1_sign_ctx, seed)) {
        /* Only blinding is lost; signing stays correct. */
    }
    OPENSSL_cleanse(seed, sizeof seed);
}

static const secp256k1_context *k1_ctx(void)
{
    (void)pthread_once(&k1_once, k1_init);
    return k1_sign_ctx;
}

/* ---- helpers ---- */

static atp_key *key_new(atp_curve c)
{
    atp_key *k = atp_xcalloc(1, sizeof *k);
    k->curve = c;
    return k;
}

atp_key *atp_key_ref(atp_key *k)
{
    atomic_fetch_add_explicit(&k->refs, 1u, memory_order_relaxed);
    return k;
}

void atp_key_destroy(atp_key *k)
{
    if (!k) {
        return;
    }
    /* refs counts the other owners: the last one (it finds 0) frees */
    if (atomic_fetch_sub_explicit(&k->refs, 1u, memory_order_acq_rel) > 0) {
        return;
    }
    if (k->cache) {
        EVP_PKEY_CTX_free(k->cache->vctx);
        pthread_mutex_destroy(&k->cache->lock);
        free(k->cache);
    }
    EVP_PKEY_free(k->pkey);
    OPENSSL_cleanse(k->priv, sizeof k->priv);
    free(k);
}

static int be_cmp(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, 32);
}

/* out = n - s for 32-byte big-endian values with 0 < s < n (so no borrow out). */
static void be_sub_from(const uint8_t *n, const uint8_t *s, uint8_t *out)
{
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = (int)n[i] - (int)s[i] - borrow;
        borrow = d < 0;
        out[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

static const uint8_t *curve_n(atp_curve c)
{
    return c == ATP_CURVE_K256 ? k256_n : p256_n;
}

static const uint8_t *curve_half(atp_curve c)
{
    return c == ATP_CURVE_K256 ? k256_half : p256_half;
}

/* ---- P-256 through OpenSSL ---- */

static EC_GROUP *p256_group(void)
{
    return EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

/* Builds the EVP_PKEY from the compressed point (and the scalar when present). */
static int p256_make_pkey(atp_key *k, atp_err *err)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    BIGNUM *d = k->has_priv ? BN_bin2bn(k->priv, ATP_KEY_PRIV_LEN, NULL) : NULL;
    int rc = ATP_EINTERNAL;
    if (!bld || !ctx || (k->has_priv && !d) ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, k->pub, sizeof k->pub) ||
        (d && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))) {
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &k->pkey, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) == 1) {
        rc = 0;
    }
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_clear_free(d);
    if (rc != 0) {
        ERR_clear_error();
        return atp_err_set(err, rc, 0, "OpenSSL could not build the P-256 key");
    }
    return 0;
}

static int p256_finish(atp_key *k, atp_err *err)
{
    int rc = p256_make_pkey(k, err);
    if (rc == 0) {
        k->cache = atp_xcalloc(1, sizeof *k->cache);
        pthread_mutex_init(&k->cache->lock, NULL);
    }
    return rc;
}

/* Derives the compressed public point from the scalar (already range-checked). */
static int p256_pub_from_priv(atp_key *k, atp_err *err)
{
    EC_GROUP *g = p256_group();
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    BIGNUM *d = BN_bin2bn(k->priv, ATP_KEY_PRIV_LEN, NULL);
    int ok = pt && d && EC_POINT_mul(g, pt, d, NULL, NULL, NULL) == 1 &&
             EC_POINT_point2oct(g, pt, POINT_CONVERSION_COMPRESSED, k->pub, sizeof k->pub, NULL) ==
                 sizeof k->pub;
    BN_clear_free(d);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return ok ? 0 : atp_err_set(err, ATP_EINTERNAL, 0, "P-256 public key derivation failed");
}

/* Decodes a SEC1 point (OpenSSL checks it is on the curve) and stores it compressed. */
static int p256_pub_from_sec1(atp_key *k, atp_slice sec1, atp_err *err)
{
    EC_GROUP *g = p256_group();
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    int ok = pt && EC_POINT_oct2point(g, pt, sec1.ptr, sec1.len, NULL) == 1 &&
             EC_POINT_point2oct(g, pt, POINT_CONVERSION_COMPRESSED, k->pub, sizeof k->pub, NULL) ==
                 sizeof k->pub;
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    if (!ok) {
        ERR_clear_error(); /* a rejected point is input error, not state to keep */
        return atp_err_set(err, ATP_EKEY, 0, "P-256 point is not on the curve");
    }
    return 0;
}

/* Writes r||s (each 32 bytes, non-zero) as a DER ECDSA-Sig-Value into der[72]. */
static size_t der_put_int(uint8_t *p, const uint8_t *v)
{
    size_t i = 0;
    while (i < 31 && v[i] == 0) {
        i++;
    }
    size_t n = 32 - i;
    size_t pad = (v[i] & 0x80) ? 1 : 0;
    p[0] = 0x02;
    p[1] = (uint8_t)(n + pad);
    p[2] = 0;
    memcpy(p + 2 + pad, v + i, n);
    return 2 + pad + n;
}

static size_t der_from_rs(const uint8_t sig[ATP_SIG_LEN], uint8_t der[72])
{
    size_t n = der_put_int(der + 2, sig);
    n += der_put_int(der + 2 + n, sig + 32);
    der[0] = 0x30;
    der[1] = (uint8_t)n;
    return n + 2;
}

static int p256_verify_with(EVP_PKEY_CTX *ctx, const uint8_t *hash, const uint8_t *der, size_t dlen)
{
    if (EVP_PKEY_verify(ctx, der, dlen, hash, ATP_HASH_LEN) == 1) {
        return 0;
    }
    /* A mismatch may leave entries on this thread's OpenSSL error queue: drop them so that
     * repeated failures do not pile up. */
    ERR_clear_error();
    return ATP_ESIG;
}

static int p256_verify_tmp(const atp_key *k, const uint8_t *hash, const uint8_t *der, size_t dlen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    int rc = ATP_EINTERNAL;
    if (ctx && EVP_PKEY_verify_init(ctx) == 1) {
        rc = p256_verify_with(ctx, hash, der, dlen);
    }
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static int p256_verify(const atp_key *k, const uint8_t *hash, const uint8_t *sig)
{
    uint8_t der[72];
    size_t dlen = der_from_rs(sig, der);
    struct p256_cache *c = k->cache;
    if (pthread_mutex_trylock(&c->lock) != 0) {
        return p256_verify_tmp(k, hash, der, dlen);
    }
    if (!c->vctx) {
        c->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
        if (c->vctx && EVP_PKEY_verify_init(c->vctx) != 1) {
            EVP_PKEY_CTX_free(c->vctx);
            c->vctx = NULL;
        }
    }
    int rc =
        c->vctx ? p256_verify_with(c->vctx, hash, der, dlen) : p256_verify_tmp(k, hash, der, dlen);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* Reads OpenSSL's DER signature back as r||s. */
static int p256_der_to_rs(const uint8_t *der, size_t dlen, uint8_t sig[ATP_SIG_LEN])
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    const BIGNUM *r = NULL, *s = NULL;
    int ok = 0;
    if (es) {
        ECDSA_SIG_get0(es, &r, &s);
        ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    }
    ECDSA_SIG_free(es);
    return ok ? 0 : ATP_EINTERNAL;
}

static int p256_sign(const atp_key *k, const uint8_t *hash, uint8_t sig[ATP_SIG_LEN])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    uint8_t der[80];
    size_t dlen = sizeof der;
    int rc = ATP_EINTERNAL;
    if (ctx && EVP_PKEY_sign_init(ctx) == 1 &&
        EVP_PKEY_sign(ctx, der, &dlen, hash, ATP_HASH_LEN) == 1) {
        rc = p256_der_to_rs(der, dlen, sig);
    }
    EVP_PKEY_CTX_free(ctx);
    if (rc == 0 && be_cmp(sig + 32, p256_half) > 0) {
        /* OpenSSL returns either S; atproto wants the low one. */
        be_sub_from(p256_n, sig + 32, sig + 32);
    }
    return rc;
}

/* ---- key construction ---- */

static int scalar_in_range(atp_curve c, const uint8_t *d)
{
    return memcmp(d, zero32, 32) != 0 && be_cmp(d, curve_n(c)) < 0;
}

static int k256_from_priv(atp_key *k, atp_err *err)
{
    uint8_t pub[ATP_KEY_PUB_LEN];
    size_t len = sizeof pub;
    if (!secp256k1_ec_pubkey_create(k1_ctx(), &k->k1pub, k->priv) ||
        !secp256k1_ec_pubkey_serialize(secp256k1_context_static, pub, &len, &k->k1pub,
                                       SECP256K1_EC_COMPRESSED)) {
        return atp_err_set(err, ATP_EINTERNAL, 0, "secp256k1 public key derivation failed");
    }
    memcpy(k->pub, pub, sizeof pub);
    return 0;
}

int atp_key_import_private(atp_curve c, atp_slice priv, atp_key **out, atp_err *err)
{
    if (!curve_ok(c)) {
        return atp_err_set(err, ATP_EINVAL, 0, "unknown curve");
    }
    if (priv.len != ATP_KEY_PRIV_LEN) {
        return atp_err_set(err, ATP_EKEY, 0, "private key must be 32 bytes, got %zu", priv.len);
    }
    if (!scalar_in_range(c, priv.ptr)) {
        return atp_err_set(err, ATP_EKEY, 0, "private scalar out of range");
    }
    atp_key *k = key_new(c);
    memcpy(k->priv, priv.ptr, ATP_KEY_PRIV_LEN);
    k->has_priv = true;
    int rc = c == ATP_CURVE_K256 ? k256_from_priv(k, err) : p256_pub_from_priv(k, err);
    if (rc == 0 && c == ATP_CURVE_P256) {
        rc = p256_finish(k, err);
    }
    if (rc != 0) {
        atp_key_destroy(k);
        return rc;
    }
    *out = k;
    return 0;
}

int atp_key_import_private_hex(atp_curve c, atp_slice hex, atp_key **out, atp_err *err)
{
    uint8_t raw[ATP_KEY_PRIV_LEN];
    size_t n = 0;
    if (hex.len != 2 * ATP_KEY_PRIV_LEN) {
        return atp_err_set(err, ATP_EKEY, 0, "private key hex must be 64 characters");
    }
    if (atp_hex_decode(hex, raw, sizeof raw, &n, err) != 0 || n != sizeof raw) {
        return atp_err_set(err, ATP_EKEY, err ? err->off : 0, "private key is not valid hex");
    }
    int rc = atp_key_import_private(c, atp_slice_make(raw, n), out, err);
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

int atp_key_generate(atp_curve c, atp_key **out, atp_err *err)
{
    uint8_t d[ATP_KEY_PRIV_LEN];
    if (!curve_ok(c)) {
        return atp_err_set(err, ATP_EINVAL, 0, "unknown curve");
    }
    /* Rejection sampling: an out-of-range draw has probability < 2^-32, so this loops
     * essentially never; the bound only guards against a broken RNG. */
    for (int tries = 0; tries < 64; tries++) {
        if (RAND_priv_bytes(d, sizeof d) != 1) {
            break;
        }
        if (scalar_in_range(c, d)) {
            int rc = atp_key_import_private(c, atp_slice_make(d, sizeof d), out, err);
            OPENSSL_cleanse(d, sizeof d);
            return rc;
        }
    }
    OPENSSL_cleanse(d, sizeof d);
    return atp_err_set(err, ATP_EINTERNAL, 0, "random number generator failed");
}

static int sec1_shape_ok(atp_slice sec1)
{
    if (sec1.len == ATP_KEY_PUB_LEN) {
        return sec1.ptr[0] == 0x02 || sec1.ptr[0] == 0x03;
    }
    return sec1.len == ATP_KEY_PUB_UNCOMPRESSED_LEN && sec1.ptr[0] == 0x04;
}

static int k256_pub_from_sec1(atp_key *k, atp_slice sec1, atp_err *err)
{
    size_t len = sizeof k->pub;
    if (!secp256k1_ec_pubkey_parse(secp256k1_context_static, &k->k1pub, sec1.ptr, sec1.len)) {
        return atp_err_set(err, ATP_EKEY, 0, "secp256k1 point is not on the curve");
    }
    (void)secp256k1_ec_pubkey_serialize(secp256k1_context_static, k->pub, &len, &k->k1pub,
                                        SECP256K1_EC_COMPRESSED);
    return 0;
}

int atp_key_import_public(atp_curve c, atp_slice sec1, atp_key **out, atp_err *err)
{
    if (!curve_ok(c)) {
        return atp_err_set(err, ATP_EINVAL, 0, "unknown curve");
    }
    if (!sec1_shape_ok(sec1)) {
        return atp_err_set(err, ATP_EKEY, 0,
                           "public key must be 33 bytes (02/03) or 65 bytes (04), got %zu",
                           sec1.len);
    }
    atp_key *k = key_new(c);
    int rc =
        c == ATP_CURVE_K256 ? k256_pub_from_sec1(k, sec1, err) : p256_pub_from_sec1(k, sec1, err);
    if (rc == 0 && c == ATP_CURVE_P256) {
        rc = p256_finish(k, err);
    }
    if (rc != 0) {
        atp_key_destroy(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* ---- accessors ---- */

atp_curve atp_key_curve(const atp_key *k)
{
    return k->curve;
}

bool atp_key_has_private(const atp_key *k)
{
    return k->has_priv;
}

int atp_key_export_private(const atp_key *k, uint8_t out[ATP_KEY_PRIV_LEN], atp_err *err)
{
    if (!k->has_priv) {
        return atp_err_set(err, ATP_EKEY, 0, "key has no private part");
    }
    memcpy(out, k->priv, ATP_KEY_PRIV_LEN);
    return 0;
}

void atp_key_export_public(const atp_key *k, uint8_t out[ATP_KEY_PUB_LEN])
{
    memcpy(out, k->pub, ATP_KEY_PUB_LEN);
}

bool atp_key_equal_public(const atp_key *a, const atp_key *b)
{
    return a->curve == b->curve && memcmp(a->pub, b->pub, ATP_KEY_PUB_LEN) == 0;
}

/* ---- sign ---- */

static int k256_sign(const atp_key *k, const uint8_t *hash, uint8_t sig[ATP_SIG_LEN])
{
    secp256k1_ecdsa_signature s;
    /* NULL nonce function = RFC 6979; the output is already low-S but normalising is cheap and
     * keeps the guarantee independent of the library version. */
    if (!secp256k1_ecdsa_sign(k1_ctx(), &s, hash, k->priv, NULL, NULL)) {
        return ATP_EINTERNAL;
    }
    (void)secp256k1_ecdsa_signature_normalize(secp256k1_context_static, &s, &s);
    (void)secp256k1_ecdsa_signature_serialize_compact(secp256k1_context_static, sig, &s);
    return 0;
}

int atp_key_sign_prehash(const atp_key *k, const uint8_t hash[ATP_HASH_LEN],
                         uint8_t sig[ATP_SIG_LEN], atp_err *err)
{
    uint8_t tmp[ATP_SIG_LEN];
    if (!k->has_priv) {
        return atp_err_set(err, ATP_EKEY, 0, "cannot sign with a public-only key");
    }
    int rc = k->curve == ATP_CURVE_K256 ? k256_sign(k, hash, tmp) : p256_sign(k, hash, tmp);
    if (rc != 0) {
        return atp_err_set(err, rc, 0, "%s signing failed", atp_curve_name(k->curve));
    }
    memcpy(sig, tmp, sizeof tmp);
    return 0;
}

int atp_key_sign(const atp_key *k, atp_slice msg, uint8_t sig[ATP_SIG_LEN], atp_err *err)
{
    uint8_t hash[ATP_HASH_LEN];
    atp_sha256(msg, hash);
    return atp_key_sign_prehash(k, hash, sig, err);
}

/* ---- verify ---- */

/* The shape rules shared by both curves; the library checks are not relied on for them
 * because OpenSSL accepts high-S and the DER path would hide length mistakes. */
static int sig_shape(atp_curve c, atp_slice sig, unsigned flags, atp_err *err)
{
    if (sig.len != ATP_SIG_LEN) {
        return atp_err_set(err, ATP_EINVAL, 0, "signature must be 64 bytes (r||s), got %zu",
                           sig.len);
    }
    const uint8_t *r = sig.ptr, *s = sig.ptr + 32;
    if (memcmp(r, zero32, 32) == 0 || be_cmp(r, curve_n(c)) >= 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "signature r out of range");
    }
    if (memcmp(s, zero32, 32) == 0 || be_cmp(s, curve_n(c)) >= 0) {
        return atp_err_set(err, ATP_EINVAL, 32, "signature s out of range");
    }
    if (!(flags & ATP_SIG_ALLOW_HIGH_S) && be_cmp(s, curve_half(c)) > 0) {
        return atp_err_set(err, ATP_EINVAL, 32, "high-S signature (s > n/2) is not allowed");
    }
    return 0;
}

static int k256_verify(const atp_key *k, const uint8_t *hash, const uint8_t *sig)
{
    secp256k1_ecdsa_signature s;
    if (!secp256k1_ecdsa_signature_parse_compact(secp256k1_context_static, &s, sig)) {
        return ATP_ESIG;
    }
    /* libsecp256k1 verifies only low-S; a high-S signature allowed by the caller's flag is
     * normalised first (normalize is a no-op on low-S input). */
    (void)secp256k1_ecdsa_signature_normalize(secp256k1_context_static, &s, &s);
    return secp256k1_ecdsa_verify(secp256k1_context_static, &s, hash, &k->k1pub) ? 0 : ATP_ESIG;
}

int atp_key_verify_prehash_ex(const atp_key *k, const uint8_t hash[ATP_HASH_LEN], atp_slice sig,
                              unsigned flags, atp_err *err)
{
    int rc = sig_shape(k->curve, sig, flags, err);
    if (rc != 0) {
        return rc;
    }
    rc = k->curve == ATP_CURVE_K256 ? k256_verify(k, hash, sig.ptr) : p256_verify(k, hash, sig.ptr);
    if (rc == ATP_ESIG) {
        return atp_err_set(err, rc, 0, "%s signature does not verify", atp_curve_name(k->curve));
    }
    if (rc != 0) {
        return atp_err_set(err, rc, 0, "%s verification failed", atp_curve_name(k->curve));
    }
    return 0;
}

int atp_key_verify_prehash(const atp_key *k, const uint8_t hash[ATP_HASH_LEN], atp_slice sig,
                           atp_err *err)
{
    return atp_key_verify_prehash_ex(k, hash, sig, 0, err);
}

int atp_key_verify(const atp_key *k, atp_slice msg, atp_slice sig, atp_err *err)
{
    uint8_t hash[ATP_HASH_LEN];
    atp_sha256(msg, hash);
    return atp_key_verify_prehash_ex(k, hash, sig, 0, err);
}

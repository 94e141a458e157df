/* test_crypto.c: keys, ECDSA (k256 and P-256), did:key / Multikey / legacy multibase, the
 * interop vectors of interop/crypto/. With ATP_CRYPTO_BENCH=1 in the environment it also prints
 * sign/s and verify/s per curve next to the raw library rates. */
#include "atp/crypto.h"

#include <pthread.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <secp256k1.h>

#include "atp/multibase.h"
#include "atp/sha256.h"
#include "atp/varint.h"
#include "t.h"

static const uint8_t k256_n[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                   0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
static const uint8_t p256_n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                                   0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

static const uint8_t *order(atp_curve c)
{
    return c == ATP_CURVE_K256 ? k256_n : p256_n;
}

/* out = n - s (big-endian, 32 bytes). */
static void sub_from(const uint8_t *n, const uint8_t *s, uint8_t *out)
{
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = (int)n[i] - (int)s[i] - borrow;
        borrow = d < 0;
        out[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

/* floor(n/2) by shifting right one bit. */
static void half(const uint8_t *n, uint8_t *out)
{
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        out[i] = (uint8_t)((n[i] >> 1) | (carry << 7));
        carry = n[i] & 1u;
    }
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    atp_err e;
    int rc = atp_hex_decode(atp_slice_str(hex), out, cap, &n, &e);
    T_OKE(rc, &e);
    return rc ? 0 : n;
}

static size_t unb64(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    atp_err e;
    int rc = atp_base_decode(ATP_BASE64, atp_slice_str(s), out, cap, &n, &e);
    T_OKE(rc, &e);
    return rc ? 0 : n;
}

/* did:key string of a key, in a static buffer. */
static const char *didkey_of(const atp_key *k)
{
    static char s[ATP_DIDKEY_MAX_LEN + 1];
    atp_buf b;
    atp_buf_init(&b, 256);
    atp_didkey_encode(&b, k);
    T_EQ(b.err, 0);
    snprintf(s, sizeof s, "%.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
    return s;
}

static atp_key *must_import_hex(atp_curve c, const char *hex)
{
    atp_key *k = NULL;
    atp_err e;
    int rc = atp_key_import_private_hex(c, atp_slice_str(hex), &k, &e);
    T_OKE(rc, &e);
    return k;
}

/* ---- interop vectors ---- */

static void fixture_case(const cJSON *c)
{
    const char *alg = cJSON_GetObjectItem(c, "algorithm")->valuestring;
    const char *did = cJSON_GetObjectItem(c, "publicKeyDid")->valuestring;
    const char *mb = cJSON_GetObjectItem(c, "publicKeyMultibase")->valuestring;
    bool valid = cJSON_IsTrue(cJSON_GetObjectItem(c, "validSignature"));
    const cJSON *tags = cJSON_GetObjectItem(c, "tags");
    uint8_t msg[64], sig[128];
    size_t mlen = unb64(cJSON_GetObjectItem(c, "messageBase64")->valuestring, msg, sizeof msg);
    size_t slen = unb64(cJSON_GetObjectItem(c, "signatureBase64")->valuestring, sig, sizeof sig);
    atp_curve curve;
    atp_key *k1 = NULL, *k2 = NULL;
    atp_err e;
    T_OK(atp_curve_from_jwt_alg(atp_slice_str(alg), &curve, NULL));
    T_OKE(atp_didkey_decode(atp_slice_str(did), &k1, &e), &e);
    T_OKE(atp_multikey_decode_legacy(curve, atp_slice_str(mb), &k2, &e), &e);
    if (!k1 || !k2) {
        atp_key_destroy(k1);
        atp_key_destroy(k2);
        return;
    }
    T_EQ(atp_key_curve(k1), curve);
    T_TRUE(atp_key_equal_public(k1, k2));
    T_STREQ(didkey_of(k1), did);
    int r1 = atp_key_verify(k1, atp_slice_make(msg, mlen), atp_slice_make(sig, slen), &e);
    int r2 = atp_key_verify(k2, atp_slice_make(msg, mlen), atp_slice_make(sig, slen), NULL);
    T_EQ(r1 == 0, valid);
    T_EQ(r2, r1);
    const char *tag = cJSON_GetArraySize(tags) ? cJSON_GetArrayItem(tags, 0)->valuestring : "";
    if (strcmp(tag, "high-s") == 0) {
        /* Mathematically valid: only the low-S rule rejects it. */
        T_EQ(r1, ATP_EINVAL);
        uint8_t h[32];
        atp_sha256(atp_slice_make(msg, mlen), h);
        T_OK(atp_key_verify_prehash_ex(k1, h, atp_slice_make(sig, slen), ATP_SIG_ALLOW_HIGH_S,
                                       NULL));
    } else if (strcmp(tag, "der-encoded") == 0) {
        T_EQ(r1, ATP_EINVAL);
        T_TRUE(slen == 70 || slen == 71);
    }
    atp_key_destroy(k1);
    atp_key_destroy(k2);
}

static void test_signature_fixtures(void)
{
    char *text = t_read_file(t_shared("interop/crypto/signature-fixtures.json"), NULL);
    cJSON *arr = text ? cJSON_Parse(text) : NULL;
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        fixture_case(c);
        n++;
    }
    t_vectors("crypto/signature-fixtures.json", n);
    T_EQ(n, 6);
    cJSON_Delete(arr);
    free(text);
}

static void didkey_vector(atp_curve c, const uint8_t *priv, size_t plen, const char *want)
{
    atp_key *k = NULL, *back = NULL;
    atp_err e;
    uint8_t out[32];
    T_OKE(atp_key_import_private(c, atp_slice_make(priv, plen), &k, &e), &e);
    if (!k) {
        return;
    }
    T_STREQ(didkey_of(k), want);
    T_OKE(atp_didkey_decode(atp_slice_str(want), &back, &e), &e);
    if (back) {
        T_TRUE(atp_key_equal_public(k, back));
        T_FALSE(atp_key_has_private(back));
    }
    T_OK(atp_key_export_private(k, out, NULL));
    T_MEMEQ(out, 32, priv, plen);
    atp_key_destroy(k);
    atp_key_destroy(back);
}

static void test_w3c_didkey(void)
{
    char *text = t_read_file(t_shared("interop/crypto/w3c_didkey_K256.json"), NULL);
    cJSON *arr = text ? cJSON_Parse(text) : NULL;
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, arr)
    {
        uint8_t priv[32];
        size_t len = unhex(cJSON_GetObjectItem(c, "privateKeyBytesHex")->valuestring, priv, 32);
        didkey_vector(ATP_CURVE_K256, priv, len,
                      cJSON_GetObjectItem(c, "publicDidKey")->valuestring);
        n++;
    }
    t_vectors("crypto/w3c_didkey_K256.json", n);
    cJSON_Delete(arr);
    free(text);

    text = t_read_file(t_shared("interop/crypto/w3c_didkey_P256.json"), NULL);
    arr = text ? cJSON_Parse(text) : NULL;
    n = 0;
    cJSON_ArrayForEach(c, arr)
    {
        uint8_t priv[40];
        size_t len = 0;
        const char *b58 = cJSON_GetObjectItem(c, "privateKeyBytesBase58")->valuestring;
        T_OK(atp_base_decode(ATP_BASE58BTC, atp_slice_str(b58), priv, sizeof priv, &len, NULL));
        didkey_vector(ATP_CURVE_P256, priv, len,
                      cJSON_GetObjectItem(c, "publicDidKey")->valuestring);
        n++;
    }
    t_vectors("crypto/w3c_didkey_P256.json", n);
    cJSON_Delete(arr);
    free(text);
}

/* The worked example of spec/identity-crypto.md §4.6. */
static void test_spec_example(void)
{
    atp_key *rot = must_import_hex(
        ATP_CURVE_K256, "c464761c64ce0fdce18a123ec81686347632bd388ccc41279fb039124239b04d");
    atp_key *sig = must_import_hex(
        ATP_CURVE_K256, "780437017D08A32D28137C55E1E1A34E90C8908034BF4E9BAFB764C15D0232F6");
    uint8_t pub[33], want[33];
    unhex("02be526b1a86e5d4cc1452909b2b63462b4afd68a46b75c23cc40aa23738979b62", want, 33);
    T_STREQ(didkey_of(rot), "did:key:zQ3shevRTtL7ceZH3fxtp5hYAah7JDa4VHHQRpwhfMavQA9PH");
    T_STREQ(didkey_of(sig), "did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm");
    atp_key_export_public(sig, pub);
    T_MEMEQ(pub, 33, want, 33);
    atp_buf b;
    atp_buf_init(&b, 128);
    atp_multikey_encode(&b, sig);
    T_MEMEQ(b.ptr, b.len, "zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm", 49);
    atp_key *mk = NULL;
    T_OK(atp_multikey_decode(atp_buf_slice(&b), &mk, NULL));
    T_TRUE(mk && atp_key_equal_public(mk, sig));
    T_FALSE(atp_key_equal_public(rot, sig));
    atp_buf_release(&b);
    atp_key_destroy(mk);
    atp_key_destroy(rot);
    atp_key_destroy(sig);
}

/* ---- sign / verify ---- */

static void roundtrip(atp_curve c)
{
    atp_key *k = NULL, *pubonly = NULL;
    atp_err e;
    uint8_t sig[64], sig2[64], pub[33], h[32], half_n[32];
    const char *msgs[] = {"", "hello", "a somewhat longer message for the signature test"};
    T_OKE(atp_key_generate(c, &k, &e), &e);
    atp_key_export_public(k, pub);
    T_OKE(atp_key_import_public(c, atp_slice_make(pub, 33), &pubonly, &e), &e);
    half(order(c), half_n);
    for (size_t i = 0; i < 3; i++) {
        atp_slice m = atp_slice_str(msgs[i]);
        T_OKE(atp_key_sign(k, m, sig, &e), &e);
        T_TRUE(memcmp(sig + 32, half_n, 32) <= 0); /* low-S */
        T_OKE(atp_key_verify(k, m, atp_slice_make(sig, 64), &e), &e);
        T_OKE(atp_key_verify(pubonly, m, atp_slice_make(sig, 64), &e), &e);
        atp_sha256(m, h);
        T_OK(atp_key_verify_prehash(pubonly, h, atp_slice_make(sig, 64), NULL));
        T_OK(atp_key_sign_prehash(k, h, sig2, NULL));
        T_OK(atp_key_verify(pubonly, m, atp_slice_make(sig2, 64), NULL));
        if (c == ATP_CURVE_K256) {
            T_MEMEQ(sig, 64, sig2, 64); /* RFC 6979 */
        }
    }
    T_EQ(atp_key_sign(pubonly, ATP_SLICE_LIT("x"), sig, NULL), ATP_EKEY);
    T_EQ(atp_key_export_private(pubonly, sig, NULL), ATP_EKEY);
    atp_key_destroy(k);
    atp_key_destroy(pubonly);
}

static void test_roundtrip_k256(void)
{
    roundtrip(ATP_CURVE_K256);
}

static void test_roundtrip_p256(void)
{
    roundtrip(ATP_CURVE_P256);
}

/* Many signatures: each one low-S and verifying; P-256 makes high-S about half the time
 * before normalisation, so this exercises the flip. */
static void test_many_signatures_low_s(void)
{
    for (int ci = 0; ci < 2; ci++) {
        atp_curve c = ci ? ATP_CURVE_P256 : ATP_CURVE_K256;
        atp_key *k = NULL;
        uint8_t sig[64], half_n[32], msg[4];
        int bad = 0;
        T_OK(atp_key_generate(c, &k, NULL));
        half(order(c), half_n);
        for (int i = 0; i < 64 && k; i++) {
            memcpy(msg, &i, sizeof msg);
            atp_slice m = atp_slice_make(msg, sizeof msg);
            if (atp_key_sign(k, m, sig, NULL) || memcmp(sig + 32, half_n, 32) > 0 ||
                atp_key_verify(k, m, atp_slice_make(sig, 64), NULL)) {
                bad++;
            }
        }
        T_EQ(bad, 0);
        atp_key_destroy(k);
    }
}

static void rejections(atp_curve c)
{
    atp_key *k = NULL, *other = NULL;
    atp_err e;
    uint8_t sig[64], bad[64], half_n[32];
    atp_slice m = ATP_SLICE_LIT("the message");
    T_OK(atp_key_generate(c, &k, NULL));
    T_OK(atp_key_generate(c, &other, NULL));
    T_OK(atp_key_sign(k, m, sig, NULL));
    /* High-S made by hand: s' = n - s is the same signature mathematically. */
    memcpy(bad, sig, 64);
    sub_from(order(c), sig + 32, bad + 32);
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), &e), ATP_EINVAL);
    T_TRUE(strstr(e.msg, "high-S") != NULL);
    uint8_t h[32];
    atp_sha256(m, h);
    T_OK(atp_key_verify_prehash_ex(k, h, atp_slice_make(bad, 64), ATP_SIG_ALLOW_HIGH_S, NULL));
    /* Tampered message and signature, wrong key. */
    T_EQ(atp_key_verify(k, ATP_SLICE_LIT("the messagE"), atp_slice_make(sig, 64), NULL), ATP_ESIG);
    memcpy(bad, sig, 64);
    bad[31] ^= 1;
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_ESIG);
    memcpy(bad, sig, 64);
    bad[63] ^= 1;
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_ESIG);
    T_EQ(atp_key_verify(other, m, atp_slice_make(sig, 64), NULL), ATP_ESIG);
    /* Lengths. */
    T_EQ(atp_key_verify(k, m, atp_slice_make(sig, 63), NULL), ATP_EINVAL);
    T_EQ(atp_key_verify(k, m, atp_slice_make(sig, 0), NULL), ATP_EINVAL);
    uint8_t longer[65] = {0};
    memcpy(longer, sig, 64);
    T_EQ(atp_key_verify(k, m, atp_slice_make(longer, 65), NULL), ATP_EINVAL);
    /* Range: r = 0, s = 0, r = n, s = n, s = n/2 (allowed shape), s = n/2 + 1 (high). */
    memcpy(bad, sig, 64);
    memset(bad, 0, 32);
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_EINVAL);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0, 32);
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_EINVAL);
    memcpy(bad, order(c), 32);
    memcpy(bad + 32, sig + 32, 32);
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_EINVAL);
    memcpy(bad, sig, 32);
    memcpy(bad + 32, order(c), 32);
    T_EQ(atp_key_verify_prehash_ex(k, h, atp_slice_make(bad, 64), ATP_SIG_ALLOW_HIGH_S, NULL),
         ATP_EINVAL);
    half(order(c), half_n);
    memcpy(bad + 32, half_n, 32);
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_ESIG);
    bad[63]++;
    T_EQ(atp_key_verify(k, m, atp_slice_make(bad, 64), NULL), ATP_EINVAL);
    atp_key_destroy(k);
    atp_key_destroy(other);
}

static void test_rejections_k256(void)
{
    rejections(ATP_CURVE_K256);
}

static void test_rejections_p256(void)
{
    rejections(ATP_CURVE_P256);
}

static void test_cross_curve(void)
{
    atp_key *k = NULL, *p = NULL;
    uint8_t sig[64];
    atp_slice m = ATP_SLICE_LIT("m");
    T_OK(atp_key_generate(ATP_CURVE_K256, &k, NULL));
    T_OK(atp_key_generate(ATP_CURVE_P256, &p, NULL));
    T_OK(atp_key_sign(k, m, sig, NULL));
    T_NE(atp_key_verify(p, m, atp_slice_make(sig, 64), NULL), 0);
    T_OK(atp_key_sign(p, m, sig, NULL));
    T_NE(atp_key_verify(k, m, atp_slice_make(sig, 64), NULL), 0);
    T_FALSE(atp_key_equal_public(k, p));
    T_TRUE(strncmp(didkey_of(k), "did:key:zQ3s", 12) == 0);
    T_TRUE(strncmp(didkey_of(p), "did:key:zDna", 12) == 0);
    atp_key_destroy(k);
    atp_key_destroy(p);
}

/* ---- key import rules ---- */

static void test_private_import(void)
{
    atp_key *k = NULL;
    uint8_t d[32] = {0};
    atp_err e;
    T_EQ(atp_key_import_private(ATP_CURVE_K256, atp_slice_make(d, 32), &k, &e), ATP_EKEY);
    T_EQ(atp_key_import_private(ATP_CURVE_P256, atp_slice_make(d, 31), &k, &e), ATP_EKEY);
    T_EQ(atp_key_import_private(ATP_CURVE_K256, atp_slice_make(k256_n, 32), &k, &e), ATP_EKEY);
    T_EQ(atp_key_import_private(ATP_CURVE_P256, atp_slice_make(p256_n, 32), &k, &e), ATP_EKEY);
    T_EQ(atp_key_import_private((atp_curve)7, atp_slice_make(p256_n, 32), &k, &e), ATP_EINVAL);
    T_TRUE(k == NULL);
    /* n - 1 and 1 are the extreme valid scalars. */
    for (int ci = 0; ci < 2; ci++) {
        atp_curve c = ci ? ATP_CURVE_P256 : ATP_CURVE_K256;
        memcpy(d, order(c), 32);
        d[31]--;
        T_OKE(atp_key_import_private(c, atp_slice_make(d, 32), &k, &e), &e);
        atp_key_destroy(k);
        k = NULL;
        memset(d, 0, 32);
        d[31] = 1;
        T_OKE(atp_key_import_private(c, atp_slice_make(d, 32), &k, &e), &e);
        uint8_t pub[33];
        if (k) {
            atp_key_export_public(k, pub);
            T_EQ(pub[0] == 2 || pub[0] == 3, 1); /* the generator */
        }
        atp_key_destroy(k);
        k = NULL;
    }
    T_EQ(atp_key_import_private_hex(ATP_CURVE_K256, ATP_SLICE_LIT("zz"), &k, &e), ATP_EKEY);
    T_EQ(atp_key_import_private_hex(
             ATP_CURVE_K256,
             ATP_SLICE_LIT("c464761c64ce0fdce18a123ec81686347632bd388ccc41279fb039124239b04g"), &k,
             &e),
         ATP_EKEY);
    T_EQ(atp_key_import_private_hex(
             ATP_CURVE_K256,
             ATP_SLICE_LIT("c464761c64ce0fdce18a123ec81686347632bd388ccc41279fb039124239b04"), &k,
             &e),
         ATP_EKEY);
    T_TRUE(k == NULL);
}

/* Finds an x for which 02||x is not a point (about half of all x). */
static bool find_off_curve(atp_curve c, uint8_t out[33])
{
    memset(out, 0, 33);
    out[0] = 2;
    for (int x = 1; x < 64; x++) {
        atp_key *k = NULL;
        out[32] = (uint8_t)x;
        if (atp_key_import_public(c, atp_slice_make(out, 33), &k, NULL) == ATP_EKEY) {
            return true;
        }
        atp_key_destroy(k);
    }
    return false;
}

static void public_import(atp_curve c)
{
    atp_key *k = NULL, *u = NULL, *g = NULL;
    uint8_t pt[65], pub[33];
    atp_err e;
    T_OK(atp_key_generate(c, &g, NULL));
    atp_key_export_public(g, pub);
    /* Build the uncompressed form through the library of the curve. */
    if (c == ATP_CURVE_K256) {
        secp256k1_pubkey p;
        size_t len = 65;
        T_TRUE(secp256k1_ec_pubkey_parse(secp256k1_context_static, &p, pub, 33));
        T_TRUE(secp256k1_ec_pubkey_serialize(secp256k1_context_static, pt, &len, &p,
                                             SECP256K1_EC_UNCOMPRESSED));
    } else {
        EC_GROUP *grp = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
        EC_POINT *p = EC_POINT_new(grp);
        T_TRUE(EC_POINT_oct2point(grp, p, pub, 33, NULL) == 1);
        T_EQ(EC_POINT_point2oct(grp, p, POINT_CONVERSION_UNCOMPRESSED, pt, 65, NULL), 65);
        EC_POINT_free(p);
        EC_GROUP_free(grp);
    }
    T_OKE(atp_key_import_public(c, atp_slice_make(pt, 65), &u, &e), &e);
    T_TRUE(u && atp_key_equal_public(u, g));
    pt[0] = 0x06 | (pub[0] & 1); /* hybrid form */
    T_EQ(atp_key_import_public(c, atp_slice_make(pt, 65), &k, NULL), ATP_EKEY);
    pt[0] = 4;
    pt[64] ^= 1; /* off the curve */
    T_EQ(atp_key_import_public(c, atp_slice_make(pt, 65), &k, NULL), ATP_EKEY);
    T_EQ(atp_key_import_public(c, atp_slice_make(pub, 32), &k, NULL), ATP_EKEY);
    memcpy(pt, pub, 33);
    pt[0] = 4;
    T_EQ(atp_key_import_public(c, atp_slice_make(pt, 33), &k, NULL), ATP_EKEY);
    memset(pt + 1, 0xff, 32); /* x >= p */
    pt[0] = 2;
    T_EQ(atp_key_import_public(c, atp_slice_make(pt, 33), &k, NULL), ATP_EKEY);
    T_TRUE(find_off_curve(c, pt));
    T_TRUE(k == NULL);
    atp_key_destroy(u);
    atp_key_destroy(g);
}

static void test_public_import(void)
{
    public_import(ATP_CURVE_K256);
    public_import(ATP_CURVE_P256);
}

/* ---- did:key / multikey rejections ---- */

/* did:key of arbitrary bytes after "z". */
static const char *didkey_raw(const uint8_t *raw, size_t n)
{
    static char s[256];
    atp_buf b;
    atp_buf_init(&b, sizeof s - 1);
    atp_buf_append_str(&b, "did:key:");
    atp_multibase_encode(&b, ATP_BASE58BTC, atp_slice_make(raw, n));
    snprintf(s, sizeof s, "%.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
    return s;
}

static int didkey_rc(const char *s)
{
    atp_key *k = NULL;
    atp_err e;
    int rc = atp_didkey_decode(atp_slice_str(s), &k, &e);
    if (rc != 0) {
        T_TRUE(k == NULL);
        T_EQ(e.code, rc);
        T_TRUE(e.msg[0] != '\0');
    }
    atp_key_destroy(k);
    return rc;
}

static void test_didkey_rejections(void)
{
    const char *good = "did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm";
    uint8_t raw[80], pub[33];
    T_EQ(didkey_rc(good), 0);
    T_EQ(didkey_rc("did:web:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"), ATP_EINVAL);
    T_EQ(didkey_rc("DID:KEY:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:z"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:Q3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:uQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQ0"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQl"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQ"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQmm"), ATP_EINVAL);
    T_EQ(didkey_rc(" did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"), ATP_EINVAL);
    T_EQ(didkey_rc("did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm "), ATP_EINVAL);
    char big[300];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "did:key:", 8);
    T_EQ(didkey_rc(big), ATP_EINVAL);
    /* Built by hand from the good key's point. */
    unhex("02be526b1a86e5d4cc1452909b2b63462b4afd68a46b75c23cc40aa23738979b62", pub, 33);
    raw[0] = 0xe7;
    raw[1] = 0x01;
    memcpy(raw + 2, pub, 33);
    T_STREQ(didkey_raw(raw, 35), good);
    raw[0] = 0xed; /* ed25519-pub */
    T_EQ(didkey_rc(didkey_raw(raw, 35)), ATP_EINVAL);
    raw[0] = 0x80; /* p256 codec but a k256 point: decodes only if the point is on P-256 */
    raw[1] = 0x24;
    T_EQ(didkey_rc(didkey_raw(raw, 34)), ATP_EINVAL); /* 32-byte point */
    raw[0] = 0xe7;
    raw[1] = 0x01;
    T_EQ(didkey_rc(didkey_raw(raw, 34)), ATP_EINVAL);
    raw[35] = 0;
    T_EQ(didkey_rc(didkey_raw(raw, 36)), ATP_EINVAL);
    T_EQ(didkey_rc(didkey_raw(raw, 2)), ATP_EINVAL);
    T_EQ(didkey_rc(didkey_raw(raw, 1)), ATP_EINVAL);
    /* Non-shortest varint for 0xe7: e7 81 00. */
    uint8_t nonmin[36] = {0xe7, 0x81, 0x00};
    memcpy(nonmin + 3, pub, 33);
    T_EQ(didkey_rc(didkey_raw(nonmin, 36)), ATP_EINVAL);
    /* 0x04 prefix in a 33-byte slot, and points off the curve. */
    raw[2] = 0x04;
    T_EQ(didkey_rc(didkey_raw(raw, 35)), ATP_EKEY);
    T_TRUE(find_off_curve(ATP_CURVE_K256, raw + 2));
    T_EQ(didkey_rc(didkey_raw(raw, 35)), ATP_EKEY);
    raw[0] = 0x80;
    raw[1] = 0x24;
    T_TRUE(find_off_curve(ATP_CURVE_P256, raw + 2));
    T_EQ(didkey_rc(didkey_raw(raw, 35)), ATP_EKEY);
    /* An uncompressed point is not allowed in did:key. */
    memset(raw + 2, 0, 65);
    raw[2] = 4;
    T_EQ(didkey_rc(didkey_raw(raw, 67)), ATP_EINVAL);
}

static void test_multikey_forms(void)
{
    atp_key *k = NULL;
    atp_err e;
    T_OKE(atp_multikey_decode(ATP_SLICE_LIT("zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"),
                              &k, &e),
          &e);
    T_TRUE(k && atp_key_curve(k) == ATP_CURVE_P256);
    atp_key_destroy(k);
    k = NULL;
    /* A did:key is not a multikey and vice versa. */
    T_EQ(atp_multikey_decode(
             ATP_SLICE_LIT("did:key:zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"), &k, NULL),
         ATP_EINVAL);
    T_EQ(atp_didkey_decode(ATP_SLICE_LIT("zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"), &k,
                           NULL),
         ATP_EINVAL);
    /* Legacy form: no multicodec, so a multikey string fed to it fails (35 bytes). */
    T_EQ(atp_multikey_decode_legacy(
             ATP_CURVE_P256, ATP_SLICE_LIT("zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"), &k,
             NULL),
         ATP_EKEY);
    T_EQ(atp_multikey_decode_legacy(ATP_CURVE_P256, ATP_SLICE_LIT("xdM8dSstjrpZaRUwBmDvjGXweK"), &k,
                                    NULL),
         ATP_EINVAL);
    /* The legacy P-256 key of the fixtures read as k256 is a different (or no) point. */
    int rc = atp_multikey_decode_legacy(
        ATP_CURVE_K256, ATP_SLICE_LIT("zxdM8dSstjrpZaRUwBmDvjGXweKuEMVN95A9oJBFjkWMh"), &k, NULL);
    if (rc == 0) {
        T_TRUE(atp_key_curve(k) == ATP_CURVE_K256);
        atp_key_destroy(k);
    } else {
        T_EQ(rc, ATP_EKEY);
    }
}

static void test_curve_names(void)
{
    atp_curve c;
    T_STREQ(atp_curve_name(ATP_CURVE_K256), "k256");
    T_STREQ(atp_curve_name(ATP_CURVE_P256), "p256");
    T_STREQ(atp_curve_jwt_alg(ATP_CURVE_K256), "ES256K");
    T_STREQ(atp_curve_jwt_alg(ATP_CURVE_P256), "ES256");
    T_STREQ(atp_curve_name((atp_curve)0), "?");
    T_OK(atp_curve_from_name(ATP_SLICE_LIT("secp256k1"), &c, NULL));
    T_EQ(c, ATP_CURVE_K256);
    T_OK(atp_curve_from_name(ATP_SLICE_LIT("P-256"), &c, NULL));
    T_EQ(c, ATP_CURVE_P256);
    T_EQ(atp_curve_from_name(ATP_SLICE_LIT("ed25519"), &c, NULL), ATP_EINVAL);
    T_OK(atp_curve_from_jwt_alg(ATP_SLICE_LIT("ES256"), &c, NULL));
    T_EQ(c, ATP_CURVE_P256);
    T_EQ(atp_curve_from_jwt_alg(ATP_SLICE_LIT("es256k"), &c, NULL), ATP_EINVAL);
    T_EQ(atp_curve_from_jwt_alg(ATP_SLICE_LIT("HS256"), &c, NULL), ATP_EINVAL);
    T_EQ(atp_key_generate((atp_curve)3, NULL, NULL), ATP_EINVAL);
}

/* ---- threads: one shared P-256 key verified from several threads at once ---- */

struct thr_arg {
    const atp_key *k;
    const uint8_t *sig;
    int failures;
};

static void *verify_loop(void *p)
{
    struct thr_arg *a = p;
    for (int i = 0; i < 200; i++) {
        if (atp_key_verify(a->k, ATP_SLICE_LIT("shared"), atp_slice_make(a->sig, 64), NULL) ||
            atp_key_verify(a->k, ATP_SLICE_LIT("Shared"), atp_slice_make(a->sig, 64), NULL) !=
                ATP_ESIG) {
            a->failures++;
        }
    }
    return NULL;
}

static void test_threads_share_key(void)
{
    for (int ci = 0; ci < 2; ci++) {
        atp_key *k = NULL;
        uint8_t sig[64];
        pthread_t th[4];
        struct thr_arg args[4];
        T_OK(atp_key_generate(ci ? ATP_CURVE_P256 : ATP_CURVE_K256, &k, NULL));
        T_OK(atp_key_sign(k, ATP_SLICE_LIT("shared"), sig, NULL));
        for (int i = 0; i < 4; i++) {
            args[i] = (struct thr_arg){k, sig, 0};
            T_EQ(pthread_create(&th[i], NULL, verify_loop, &args[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            T_EQ(args[i].failures, 0);
        }
        atp_key_destroy(k);
    }
}

/* Each thread owns a reference, signs and verifies with it, and drops it; the creator drops
 * its own first: the key lives until the last owner (ASan would see a use after free). */
static void *ref_owner(void *p)
{
    struct thr_arg *a = p;
    uint8_t sig[64];
    for (int i = 0; i < 50; i++) {
        if (atp_key_sign(a->k, ATP_SLICE_LIT("owned"), sig, NULL) != 0 ||
            atp_key_verify(a->k, ATP_SLICE_LIT("owned"), atp_slice_make(sig, 64), NULL) != 0) {
            a->failures++;
        }
    }
    atp_key_destroy((atp_key *)(uintptr_t)a->k);
    return NULL;
}

static void test_key_refs(void)
{
    for (int ci = 0; ci < 2; ci++) {
        atp_key *k = NULL;
        pthread_t th[4];
        struct thr_arg args[4];
        T_OK(atp_key_generate(ci ? ATP_CURVE_P256 : ATP_CURVE_K256, &k, NULL));
        for (int i = 0; i < 4; i++) {
            args[i] = (struct thr_arg){atp_key_ref(k), NULL, 0};
        }
        atp_key_destroy(k);
        for (int i = 0; i < 4; i++) {
            T_EQ(pthread_create(&th[i], NULL, ref_owner, &args[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            T_EQ(args[i].failures, 0);
        }
    }
}

/* ---- optional measurement (ATP_CRYPTO_BENCH=1) ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rate_ours(const atp_key *k, bool sign, const uint8_t *h, const uint8_t *sig,
                        double secs)
{
    uint8_t out[64];
    int n = 0, errs = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 200; i++) {
            errs += sign ? atp_key_sign_prehash(k, h, out, NULL) != 0
                         : atp_key_verify_prehash(k, h, atp_slice_make(sig, 64), NULL) != 0;
        }
        n += 200;
        t = now_s() - t0;
    } while (t < secs);
    T_EQ(errs, 0);
    return n / t;
}

static double rate_raw_k256(const atp_key *k, const uint8_t *h, const uint8_t *sig, double secs)
{
    secp256k1_pubkey pk;
    secp256k1_ecdsa_signature s;
    uint8_t pub[33];
    int n = 0, errs = 0;
    atp_key_export_public(k, pub);
    T_TRUE(secp256k1_ec_pubkey_parse(secp256k1_context_static, &pk, pub, 33));
    T_TRUE(secp256k1_ecdsa_signature_parse_compact(secp256k1_context_static, &s, sig));
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 200; i++) {
            errs += !secp256k1_ecdsa_verify(secp256k1_context_static, &s, h, &pk);
        }
        n += 200;
        t = now_s() - t0;
    } while (t < secs);
    T_EQ(errs, 0);
    return n / t;
}

/* The raw OpenSSL rate: EVP_PKEY_verify on one reused context with a prepared DER signature,
 * as `openssl speed ecdsap256` measures. */
static double rate_raw_p256(const atp_key *k, const uint8_t *h, const uint8_t *sig, double secs)
{
    uint8_t pub[33], der[72];
    atp_key_export_public(k, pub);
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM params[] = {OSSL_PARAM_utf8_string("group", (char *)(uintptr_t) "prime256v1", 0),
                           OSSL_PARAM_octet_string("pub", pub, 33), OSSL_PARAM_END};
    T_TRUE(EVP_PKEY_fromdata_init(fc) == 1);
    T_TRUE(EVP_PKEY_fromdata(fc, &pk, EVP_PKEY_PUBLIC_KEY, params) == 1);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char *dp = der;
    int dlen = i2d_ECDSA_SIG(es, &dp);
    EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    T_TRUE(EVP_PKEY_verify_init(vc) == 1);
    int n = 0, errs = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 200; i++) {
            errs += EVP_PKEY_verify(vc, der, (size_t)dlen, h, 32) != 1;
        }
        n += 200;
        t = now_s() - t0;
    } while (t < secs);
    T_EQ(errs, 0);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(vc);
    EVP_PKEY_CTX_free(fc);
    EVP_PKEY_free(pk);
    return n / t;
}

static void test_bench(void)
{
    const char *on = getenv("ATP_CRYPTO_BENCH");
    if (!on || strcmp(on, "1") != 0) {
        return;
    }
    for (int ci = 0; ci < 2; ci++) {
        atp_curve c = ci ? ATP_CURVE_P256 : ATP_CURVE_K256;
        atp_key *k = NULL, *pub = NULL;
        uint8_t h[32], sig[64], p[33];
        atp_sha256(ATP_SLICE_LIT("benchmark message"), h);
        T_OK(atp_key_generate(c, &k, NULL));
        T_OK(atp_key_sign_prehash(k, h, sig, NULL));
        atp_key_export_public(k, p);
        T_OK(atp_key_import_public(c, atp_slice_make(p, 33), &pub, NULL));
        /* Interleaved short rounds so that load from other processes hits both sides. */
        double s = 0, v = 0, raw = 0;
        for (int r = 0; r < 5; r++) {
            s += rate_ours(k, true, h, sig, 0.2) / 5;
            v += rate_ours(pub, false, h, sig, 0.2) / 5;
            raw += (c == ATP_CURVE_K256 ? rate_raw_k256(pub, h, sig, 0.2)
                                        : rate_raw_p256(pub, h, sig, 0.2)) /
                   5;
        }
        printf("# bench %s: sign %.0f/s, verify %.0f/s, raw verify %.0f/s (%.1f %%)\n",
               atp_curve_name(c), s, v, raw, 100.0 * v / raw);
        atp_key_destroy(k);
        atp_key_destroy(pub);
    }
}

int main(void)
{
    T_RUN(test_signature_fixtures);
    T_RUN(test_w3c_didkey);
    T_RUN(test_spec_example);
    T_RUN(test_roundtrip_k256);
    T_RUN(test_roundtrip_p256);
    T_RUN(test_many_signatures_low_s);
    T_RUN(test_rejections_k256);
    T_RUN(test_rejections_p256);
    T_RUN(test_cross_curve);
    T_RUN(test_private_import);
    T_RUN(test_public_import);
    T_RUN(test_didkey_rejections);
    T_RUN(test_multikey_forms);
    T_RUN(test_curve_names);
    T_RUN(test_threads_share_key);
    T_RUN(test_key_refs);
    T_RUN(test_bench);
    return t_done();
}

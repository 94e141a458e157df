/* fuzz_crypto.c: did:key / Multikey / legacy multibase parsing and ECDSA verification with
 * arbitrary bytes. The first input byte picks the mode; the rest is the payload.
 *
 * Invariants checked (abort on violation):
 *  - a did:key or Multikey string that parses re-encodes to exactly the same string, and its
 *    other form parses to the same public key;
 *  - a legacy key that parses re-encodes (as Multikey) to a string that parses to the same key;
 *  - a SEC1 point that imports re-imports from its compressed form to the same key;
 *  - verify returns only 0, ATP_ESIG or ATP_EINVAL, and anything that verifies strictly also
 *    verifies with ATP_SIG_ALLOW_HIGH_S;
 *  - our own signature over the input verifies, and its high-S twin is refused strictly but
 *    accepted with the flag. */
#include <stdlib.h>
#include <string.h>

#include "atp/crypto.h"
#include "atp/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static atp_key *keys[2]; /* k256, p256: made once, shared by every run */

static const uint8_t orders[2][32] = {
    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
     0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41},
    {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
     0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51},
};

static void init_keys(void)
{
    static const uint8_t d[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    if (!keys[0]) {
        CHECK(atp_key_import_private(ATP_CURVE_K256, atp_slice_make(d, 32), &keys[0], NULL) == 0);
        CHECK(atp_key_import_private(ATP_CURVE_P256, atp_slice_make(d, 32), &keys[1], NULL) == 0);
    }
}

static void check_reencode(atp_slice in, const atp_key *k, bool did)
{
    atp_buf b;
    atp_key *other = NULL;
    atp_buf_init(&b, 256);
    if (did) {
        atp_didkey_encode(&b, k);
    } else {
        atp_multikey_encode(&b, k);
    }
    CHECK(b.err == 0 && atp_slice_eq(atp_buf_slice(&b), in));
    /* The other form of the same key. */
    atp_slice rest = did ? atp_slice_sub(in, 8, in.len) : in;
    CHECK(atp_multikey_decode(rest, &other, NULL) == 0);
    CHECK(atp_key_equal_public(k, other));
    atp_key_destroy(other);
    atp_buf_release(&b);
}

static void fuzz_strings(atp_slice in, int mode)
{
    atp_key *k = NULL;
    if (mode == 0 && atp_didkey_decode(in, &k, NULL) == 0) {
        check_reencode(in, k, true);
    } else if (mode == 1 && atp_multikey_decode(in, &k, NULL) == 0) {
        check_reencode(in, k, false);
    } else if (mode == 2 && in.len > 0) {
        atp_curve c = (in.ptr[0] & 1) ? ATP_CURVE_P256 : ATP_CURVE_K256;
        if (atp_multikey_decode_legacy(c, atp_slice_sub(in, 1, in.len), &k, NULL) == 0) {
            atp_buf b;
            atp_key *again = NULL;
            atp_buf_init(&b, 256);
            atp_multikey_encode(&b, k);
            CHECK(atp_multikey_decode(atp_buf_slice(&b), &again, NULL) == 0);
            CHECK(atp_key_equal_public(k, again));
            atp_key_destroy(again);
            atp_buf_release(&b);
        }
    }
    atp_key_destroy(k);
}

static void fuzz_point(atp_slice in)
{
    for (int ci = 0; ci < 2; ci++) {
        atp_curve c = ci ? ATP_CURVE_P256 : ATP_CURVE_K256;
        atp_key *k = NULL, *again = NULL;
        uint8_t pub[ATP_KEY_PUB_LEN];
        if (atp_key_import_public(c, in, &k, NULL) != 0) {
            continue;
        }
        atp_key_export_public(k, pub);
        CHECK(pub[0] == 2 || pub[0] == 3);
        CHECK(atp_key_import_public(c, atp_slice_make(pub, sizeof pub), &again, NULL) == 0);
        CHECK(atp_key_equal_public(k, again));
        atp_key_destroy(k);
        atp_key_destroy(again);
    }
}

/* Arbitrary signature bytes (length from the first byte, at most 80) over the rest. */
static void fuzz_verify(atp_slice in)
{
    size_t slen = in.len > 0 ? in.ptr[0] % 81 : 0;
    if (slen + 1 > in.len) {
        return;
    }
    atp_slice sig = atp_slice_sub(in, 1, slen), msg = atp_slice_sub(in, 1 + slen, in.len);
    uint8_t h[ATP_HASH_LEN];
    atp_sha256(msg, h);
    for (int ci = 0; ci < 2; ci++) {
        int rc = atp_key_verify(keys[ci], msg, sig, NULL);
        int lax = atp_key_verify_prehash_ex(keys[ci], h, sig, ATP_SIG_ALLOW_HIGH_S, NULL);
        CHECK(rc == 0 || rc == ATP_ESIG || rc == ATP_EINVAL);
        CHECK(lax == 0 || lax == ATP_ESIG || lax == ATP_EINVAL);
        CHECK(rc != 0 || lax == 0);
        CHECK(atp_key_verify_prehash(keys[ci], h, sig, NULL) == rc);
    }
}

/* out = n - s over 32-byte big-endian values. */
static void neg(const uint8_t *n, uint8_t *s)
{
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = (int)n[i] - (int)s[i] - borrow;
        borrow = d < 0;
        s[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

static void fuzz_sign(atp_slice msg)
{
    for (int ci = 0; ci < 2; ci++) {
        uint8_t sig[ATP_SIG_LEN];
        CHECK(atp_key_sign(keys[ci], msg, sig, NULL) == 0);
        CHECK(atp_key_verify(keys[ci], msg, atp_slice_make(sig, sizeof sig), NULL) == 0);
        neg(orders[ci], sig + 32);
        CHECK(atp_key_verify(keys[ci], msg, atp_slice_make(sig, sizeof sig), NULL) == ATP_EINVAL);
        uint8_t h[ATP_HASH_LEN];
        atp_sha256(msg, h);
        CHECK(atp_key_verify_prehash_ex(keys[ci], h, atp_slice_make(sig, sizeof sig),
                                        ATP_SIG_ALLOW_HIGH_S, NULL) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    init_keys();
    atp_slice in = atp_slice_make(data + 1, size - 1);
    switch (data[0] % 6) {
    case 0:
    case 1:
    case 2:
        fuzz_strings(in, data[0] % 6);
        break;
    case 3:
        fuzz_point(in);
        break;
    case 4:
        fuzz_verify(in);
        break;
    default:
        fuzz_sign(atp_slice_sub(in, 0, 256));
        break;
    }
    return 0;
}

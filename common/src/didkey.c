/* didkey.c: did:key, Multikey and legacy publicKeyMultibase string forms of public keys. */
#include <string.h>

#include "atp/crypto.h"
#include "atp/multibase.h"
#include "atp/varint.h"

/* Multicodec codes (multiformats table): secp256k1-pub and p256-pub. */
#define MC_SECP256K1_PUB 0xe7u
#define MC_P256_PUB      0x1200u

#define DIDKEY_PREFIX     "did:key:"
#define DIDKEY_PREFIX_LEN (sizeof DIDKEY_PREFIX - 1)
#define MULTIKEY_MAX_LEN  (ATP_DIDKEY_MAX_LEN - DIDKEY_PREFIX_LEN)
/* Decoded bytes a MULTIKEY_MAX_LEN base58 string can hold (log(58)/log(256) < 0.733). */
#define RAW_CAP 96

void atp_multikey_encode(atp_buf *out, const atp_key *k)
{
    uint8_t raw[ATP_VARINT_MAX_BYTES + 1 + ATP_KEY_PUB_LEN];
    uint64_t codec = atp_key_curve(k) == ATP_CURVE_K256 ? MC_SECP256K1_PUB : MC_P256_PUB;
    size_t n = atp_varint_encode(codec, raw);
    atp_key_export_public(k, raw + n);
    atp_multibase_encode(out, ATP_BASE58BTC, atp_slice_make(raw, n + ATP_KEY_PUB_LEN));
}

void atp_didkey_encode(atp_buf *out, const atp_key *k)
{
    atp_buf_append_str(out, DIDKEY_PREFIX);
    atp_multikey_encode(out, k);
}

/* Decodes "z" + base58btc into raw[RAW_CAP]; `base` is the offset of `in` in the caller's
 * input so that error offsets point into what the caller passed. */
static int z58_decode(atp_slice in, size_t base, uint8_t *raw, size_t *n, atp_err *err)
{
    if (in.len > MULTIKEY_MAX_LEN) {
        return atp_err_set(err, ATP_EINVAL, base, "key string too long (%zu bytes)", in.len);
    }
    if (in.len < 2 || in.ptr[0] != 'z') {
        return atp_err_set(err, ATP_EINVAL, base, "key must be 'z' + base58btc");
    }
    atp_err sub;
    if (atp_base_decode(ATP_BASE58BTC, atp_slice_sub(in, 1, in.len - 1), raw, RAW_CAP, n, &sub) !=
        0) {
        return atp_err_set(err, ATP_EINVAL, base + 1 + sub.off, "bad base58btc: %s", sub.msg);
    }
    return 0;
}

static int codec_curve(uint64_t codec, atp_curve *c)
{
    if (codec == MC_SECP256K1_PUB) {
        *c = ATP_CURVE_K256;
        return 0;
    }
    if (codec == MC_P256_PUB) {
        *c = ATP_CURVE_P256;
        return 0;
    }
    return ATP_EINVAL;
}

static int multikey_decode_at(atp_slice in, size_t base, atp_key **out, atp_err *err)
{
    uint8_t raw[RAW_CAP];
    size_t n = 0, used = 0;
    uint64_t codec = 0;
    atp_curve c;
    int rc = z58_decode(in, base, raw, &n, err);
    if (rc != 0) {
        return rc;
    }
    if (atp_varint_decode(atp_slice_make(raw, n), 3, &codec, &used, NULL) != 0) {
        return atp_err_set(err, ATP_EINVAL, base, "bad multicodec varint");
    }
    if (codec_curve(codec, &c) != 0) {
        return atp_err_set(err, ATP_EINVAL, base, "unsupported multicodec 0x%llx",
                           (unsigned long long)codec);
    }
    if (n - used != ATP_KEY_PUB_LEN) {
        return atp_err_set(err, ATP_EINVAL, base,
                           "key must be a 33-byte compressed point, got %zu bytes", n - used);
    }
    return atp_key_import_public(c, atp_slice_make(raw + used, ATP_KEY_PUB_LEN), out, err);
}

int atp_multikey_decode(atp_slice in, atp_key **out, atp_err *err)
{
    return multikey_decode_at(in, 0, out, err);
}

int atp_didkey_decode(atp_slice in, atp_key **out, atp_err *err)
{
    if (in.len > ATP_DIDKEY_MAX_LEN) {
        return atp_err_set(err, ATP_EINVAL, 0, "did:key too long (%zu bytes)", in.len);
    }
    if (!atp_slice_has_prefix(in, ATP_SLICE_LIT(DIDKEY_PREFIX))) {
        return atp_err_set(err, ATP_EINVAL, 0, "not a did:key (must start with \"did:key:\")");
    }
    return multikey_decode_at(atp_slice_sub(in, DIDKEY_PREFIX_LEN, in.len), DIDKEY_PREFIX_LEN, out,
                              err);
}

int atp_multikey_decode_legacy(atp_curve c, atp_slice in, atp_key **out, atp_err *err)
{
    uint8_t raw[RAW_CAP];
    size_t n = 0;
    int rc = z58_decode(in, 0, raw, &n, err);
    if (rc != 0) {
        return rc;
    }
    return atp_key_import_public(c, atp_slice_make(raw, n), out, err);
}

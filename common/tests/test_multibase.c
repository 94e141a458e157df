/* test_multibase.c: RFC 4648 vectors (base32, base64, base64url, base16), base58btc vectors,
 * the interop crypto fixtures' base64/base58 fields, random round trips, every rejection. */
#include "atp/multibase.h"
#include "t.h"

static void check_enc(atp_base base, const char *raw, size_t rawlen, const char *enc)
{
    atp_buf b;
    uint8_t dst[512];
    size_t n = 0;
    atp_err err;
    atp_buf_init(&b, 0);
    atp_base_encode(&b, base, atp_slice_make(raw, rawlen));
    T_EQ(b.err, 0);
    T_MEMEQ(b.ptr, b.len, enc, strlen(enc));
    T_TRUE(b.len <= atp_base_encoded_max(base, rawlen));
    T_OKE(atp_base_decode(base, atp_slice_str(enc), dst, sizeof dst, &n, &err), &err);
    T_MEMEQ(dst, n, raw, rawlen);
    T_TRUE(n <= atp_base_decoded_max(base, strlen(enc)));
    /* The same through the multibase prefix. */
    atp_buf_reset(&b);
    atp_multibase_encode(&b, base, atp_slice_make(raw, rawlen));
    T_EQ(b.ptr[0], (int)base);
    atp_base found = ATP_BASE16;
    if (base == ATP_BASE16) {
        found = ATP_BASE32;
    }
    T_OKE(atp_multibase_decode(atp_buf_slice(&b), dst, sizeof dst, &n, &found, &err), &err);
    T_EQ(found, base);
    T_MEMEQ(dst, n, raw, rawlen);
    atp_buf_release(&b);
}

#define ENC(base, raw, enc) check_enc(base, raw, sizeof(raw) - 1, enc)

static void test_rfc4648_vectors(void)
{
    ENC(ATP_BASE32, "", "");
    ENC(ATP_BASE32, "f", "my");
    ENC(ATP_BASE32, "fo", "mzxq");
    ENC(ATP_BASE32, "foo", "mzxw6");
    ENC(ATP_BASE32, "foob", "mzxw6yq");
    ENC(ATP_BASE32, "fooba", "mzxw6ytb");
    ENC(ATP_BASE32, "foobar", "mzxw6ytboi");
    ENC(ATP_BASE32, "\xff\xff\xff\xff\xff\xff", "7777777774");
    ENC(ATP_BASE64, "", "");
    ENC(ATP_BASE64, "f", "Zg");
    ENC(ATP_BASE64, "fo", "Zm8");
    ENC(ATP_BASE64, "foo", "Zm9v");
    ENC(ATP_BASE64, "foob", "Zm9vYg");
    ENC(ATP_BASE64, "fooba", "Zm9vYmE");
    ENC(ATP_BASE64, "foobar", "Zm9vYmFy");
    ENC(ATP_BASE64, "\xfb\xff\xbf", "+/+/");
    ENC(ATP_BASE64URL, "\xfb\xff\xbf", "-_-_");
    ENC(ATP_BASE64URL, "foob", "Zm9vYg");
    ENC(ATP_BASE16, "", "");
    ENC(ATP_BASE16, "foobar", "666f6f626172");
    ENC(ATP_BASE16, "\x00\xff\x10", "00ff10");
}

static void test_base58_vectors(void)
{
    ENC(ATP_BASE58BTC, "", "");
    ENC(ATP_BASE58BTC, "\x00", "1");
    ENC(ATP_BASE58BTC, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "1111111111");
    ENC(ATP_BASE58BTC, "a", "2g");
    ENC(ATP_BASE58BTC, "bbb", "a3gV");
    ENC(ATP_BASE58BTC, "ccc", "aPEr");
    ENC(ATP_BASE58BTC, "hello world", "StV1DL6CwTryKyV");
    ENC(ATP_BASE58BTC, "simply a long string", "2cFupjhnEsSn59qHXstmK2ffpLv2");
    ENC(ATP_BASE58BTC, "\x51\x6b\x6f\xcd\x0f", "ABnLTmg");
    ENC(ATP_BASE58BTC, "\xbf\x4f\x89\x00\x1e\x67\x02\x74\xdd", "3SEo3LWLoPntC");
    ENC(ATP_BASE58BTC, "\x00\xeb\x15\x23\x1d\xfc\xeb\x60\x92\x58\x86\xb6\x7d\x06\x52\x99\x92\x59"
                       "\x15\xae\xb1\x72\xc0\x66\x47",
        "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L");
}

static int dec(atp_base base, const char *s, size_t cap, atp_err *err)
{
    uint8_t dst[600];
    size_t n = 12345;
    int rc = atp_base_decode(base, atp_slice_str(s), dst, cap, &n, err);
    if (rc < 0) {
        T_EQ(n, 12345); /* out-param untouched on failure */
    }
    return rc;
}

static void test_decode_rejects(void)
{
    atp_err err;
    /* base32: impossible lengths, characters outside the alphabet, padding. */
    T_EQ(dec(ATP_BASE32, "m", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE32, "mzx", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE32, "mzxw6y", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE32, "mzxw6yq=", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE32, "mzxw1ytb", 600, &err), ATP_EINVAL);
    T_EQ(err.off, 4);
    T_EQ(dec(ATP_BASE32, "mzxw6ytbo8", 600, &err), ATP_EINVAL);
    T_EQ(err.off, 9);
    T_EQ(dec(ATP_BASE32, "MZXW6YTBOI", 600, &err), 0); /* upper case accepted */
    /* base64: bad characters, wrong alphabet, padding rules. */
    T_EQ(dec(ATP_BASE64, "Zm9vY", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zm9v!mFy", 600, &err), ATP_EINVAL);
    T_EQ(err.off, 4);
    T_EQ(dec(ATP_BASE64, "-_-_", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64URL, "+/+/", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zg==", 600, &err), 0);
    T_EQ(dec(ATP_BASE64, "Zm8=", 600, &err), 0);
    T_EQ(dec(ATP_BASE64, "Zg=", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zg===", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zm8==", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zm9v=", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zm9==", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Z===", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "====", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zg==Zg==", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE64, "Zm9vYmFy\n", 600, &err), ATP_EINVAL);
    /* base16 */
    T_EQ(dec(ATP_BASE16, "abc", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE16, "0g", 600, &err), ATP_EINVAL);
    T_EQ(err.off, 1);
    T_EQ(dec(ATP_BASE16, "AbCd", 600, &err), 0);
    /* base58: excluded characters 0 O I l, length bound. */
    T_EQ(dec(ATP_BASE58BTC, "StV1DL6CwTryKy0", 600, &err), ATP_EINVAL);
    T_EQ(err.off, 14);
    T_EQ(dec(ATP_BASE58BTC, "O", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE58BTC, "I", 600, &err), ATP_EINVAL);
    T_EQ(dec(ATP_BASE58BTC, "l", 600, &err), ATP_EINVAL);
    char big[ATP_BASE58_MAX_CHARS + 2];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    T_EQ(dec(ATP_BASE58BTC, big, 600, &err), ATP_ELIMIT);
    big[ATP_BASE58_MAX_CHARS] = '\0';
    T_EQ(dec(ATP_BASE58BTC, big, 600, &err), 0);
    /* Capacity: exactly enough succeeds, one less is ATP_ELIMIT. */
    T_EQ(dec(ATP_BASE32, "mzxw6ytboi", 6, &err), 0);
    T_EQ(dec(ATP_BASE32, "mzxw6ytboi", 5, &err), ATP_ELIMIT);
    T_EQ(dec(ATP_BASE64, "Zm9vYmFy", 5, &err), ATP_ELIMIT);
    T_EQ(dec(ATP_BASE16, "666f", 1, &err), ATP_ELIMIT);
    T_EQ(dec(ATP_BASE58BTC, "StV1DL6CwTryKyV", 10, &err), ATP_ELIMIT);
    T_EQ(dec(ATP_BASE58BTC, "StV1DL6CwTryKyV", 11, &err), 0);
    /* Non-zero trailing bits are accepted, as the reference does ("123" is an interop case). */
    T_EQ(dec(ATP_BASE64, "Zh", 600, &err), 0);
    T_EQ(dec(ATP_BASE64, "123", 600, &err), 0);
}

static void test_multibase_prefix(void)
{
    uint8_t dst[64];
    size_t n = 0;
    atp_base base = ATP_BASE16;
    atp_err err;
    T_EQ(atp_multibase_decode(ATP_SLICE_LIT(""), dst, sizeof dst, &n, &base, &err), ATP_EINVAL);
    T_EQ(atp_multibase_decode(ATP_SLICE_LIT("xabc"), dst, sizeof dst, &n, &base, &err),
         ATP_EINVAL);
    T_EQ(atp_multibase_decode(ATP_SLICE_LIT("Bmy"), dst, sizeof dst, &n, &base, &err),
         ATP_EINVAL);
    T_EQ(base, ATP_BASE16);
    /* Offsets count the prefix. */
    T_EQ(atp_multibase_decode(ATP_SLICE_LIT("bmy!a"), dst, sizeof dst, &n, &base, &err),
         ATP_EINVAL);
    T_EQ(err.off, 3);
    T_OK(atp_multibase_decode(ATP_SLICE_LIT("zStV1DL6CwTryKyV"), dst, sizeof dst, &n, NULL,
                              &err));
    T_MEMEQ(dst, n, "hello world", 11);
    T_OK(atp_multibase_decode(ATP_SLICE_LIT("b"), dst, sizeof dst, &n, &base, &err));
    T_EQ(n, 0);
    T_EQ(base, ATP_BASE32);
    atp_buf b;
    atp_buf_init(&b, 0);
    atp_multibase_encode(&b, (atp_base)'x', ATP_SLICE_LIT("a"));
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_release(&b);
}

static void test_hex_and_encode_to(void)
{
    atp_buf b;
    uint8_t dst[8], out[16];
    size_t n = 0;
    atp_buf_init(&b, 0);
    atp_hex_encode(&b, ATP_SLICE_LIT("\x01\xab\xff"));
    T_MEMEQ(b.ptr, b.len, "01abff", 6);
    T_OK(atp_hex_decode(ATP_SLICE_LIT("01ABff"), dst, sizeof dst, &n, NULL));
    T_MEMEQ(dst, n, "\x01\xab\xff", 3);
    T_EQ(atp_hex_decode(ATP_SLICE_LIT("01a"), dst, sizeof dst, &n, NULL), ATP_EINVAL);
    T_EQ(atp_hex_decode(ATP_SLICE_LIT("0x"), dst, sizeof dst, &n, NULL), ATP_EINVAL);
    T_EQ(atp_base_encode_to(ATP_BASE32, ATP_SLICE_LIT("foobar"), out, 10), 10);
    T_MEMEQ(out, 10, "mzxw6ytboi", 10);
    T_EQ(atp_base_encode_to(ATP_BASE32, ATP_SLICE_LIT("foobar"), out, 9), 0);
    T_EQ(atp_base_encode_to((atp_base)'q', ATP_SLICE_LIT("f"), out, 16), 0);
    /* base58 encoder bound. */
    uint8_t big[ATP_BASE58_MAX_BYTES + 1];
    memset(big, 0xff, sizeof big);
    atp_buf_reset(&b);
    atp_base_encode(&b, ATP_BASE58BTC, atp_slice_make(big, sizeof big));
    T_EQ(b.err, ATP_ELIMIT);
    atp_buf_reset(&b);
    atp_base_encode(&b, ATP_BASE58BTC, atp_slice_make(big, ATP_BASE58_MAX_BYTES));
    T_EQ(b.err, 0);
    /* Whatever the decoder accepts re-encodes: 256 '1' are 256 zero bytes. */
    memset(big, 0, sizeof big);
    atp_buf_reset(&b);
    atp_base_encode(&b, ATP_BASE58BTC, atp_slice_make(big, ATP_BASE58_MAX_BYTES));
    T_EQ(b.err, 0);
    T_EQ(b.len, ATP_BASE58_MAX_CHARS);
    /* Sticky buffer limit. */
    atp_buf_release(&b);
    atp_buf_init(&b, 4);
    atp_base_encode(&b, ATP_BASE32, ATP_SLICE_LIT("foobar"));
    T_EQ(b.err, ATP_ELIMIT);
    T_EQ(b.len, 0);
    atp_buf_release(&b);
}

static uint64_t rng_state = 0x243f6a8885a308d3u;
static uint8_t rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 24);
}

static void test_random_roundtrips(void)
{
    static const atp_base bases[] = {ATP_BASE32, ATP_BASE64, ATP_BASE64URL, ATP_BASE16,
                                     ATP_BASE58BTC};
    uint8_t raw[300], dst[300];
    atp_buf b;
    atp_buf_init(&b, 0);
    for (size_t len = 0; len < 300; len++) {
        for (size_t k = 0; k < len; k++) {
            raw[k] = (len % 7 == 0 && k < 3) ? 0 : rng_byte();
        }
        for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
            size_t n = 0;
            if (bases[i] == ATP_BASE58BTC && len > 187) { /* longer may not decode back */
                continue;
            }
            atp_buf_reset(&b);
            atp_base_encode(&b, bases[i], atp_slice_make(raw, len));
            T_EQ(b.err, 0);
            T_OK(atp_base_decode(bases[i], atp_buf_slice(&b), dst, len, &n, NULL));
            T_MEMEQ(dst, n, raw, len);
        }
    }
    atp_buf_release(&b);
}

/* Pulls the string value of each `"key": "..."` out of a JSON fixture (no escapes in these). */
static int each_json_str(const char *json, const char *key, void (*fn)(const char *, size_t))
{
    char pat[64];
    int count = 0;
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    for (const char *p = strstr(json, pat); p; p = strstr(p, pat)) {
        p += strlen(pat);
        const char *e = strchr(p, '"');
        if (!e) {
            break;
        }
        fn(p, (size_t)(e - p));
        count++;
    }
    return count;
}

static void roundtrip_b64(const char *s, size_t n)
{
    uint8_t dst[128];
    size_t len = 0;
    atp_buf b;
    T_OK(atp_base_decode(ATP_BASE64, atp_slice_make(s, n), dst, sizeof dst, &len, NULL));
    atp_buf_init(&b, 0);
    atp_base_encode(&b, ATP_BASE64, atp_slice_make(dst, len));
    T_MEMEQ(b.ptr, b.len, s, n);
    atp_buf_release(&b);
}

static void check_message(const char *s, size_t n)
{
    uint8_t dst[64];
    size_t len = 0;
    T_OK(atp_base_decode(ATP_BASE64, atp_slice_make(s, n), dst, sizeof dst, &len, NULL));
    T_MEMEQ(dst, len, "\xa1\x65hello\x65world", 13);
}

static void check_legacy_key(const char *s, size_t n)
{
    uint8_t dst[64];
    size_t len = 0;
    atp_base base;
    atp_buf b;
    T_OK(atp_multibase_decode(atp_slice_make(s, n), dst, sizeof dst, &len, &base, NULL));
    T_EQ(base, ATP_BASE58BTC);
    T_EQ(len, 33);
    T_TRUE(dst[0] == 2 || dst[0] == 3);
    atp_buf_init(&b, 0);
    atp_multibase_encode(&b, ATP_BASE58BTC, atp_slice_make(dst, len));
    T_MEMEQ(b.ptr, b.len, s, n);
    atp_buf_release(&b);
}

static void check_did_key(const char *s, size_t n)
{
    uint8_t dst[64];
    size_t len = 0;
    atp_slice mb = atp_slice_sub(atp_slice_make(s, n), 8, n);
    T_TRUE(n > 8 && memcmp(s, "did:key:", 8) == 0);
    T_OK(atp_multibase_decode(mb, dst, sizeof dst, &len, NULL, NULL));
    T_EQ(len, 35);
    T_TRUE((dst[0] == 0xe7 && dst[1] == 0x01) || (dst[0] == 0x80 && dst[1] == 0x24));
    atp_buf b;
    atp_buf_init(&b, 0);
    atp_multibase_encode(&b, ATP_BASE58BTC, atp_slice_make(dst, len));
    T_MEMEQ(b.ptr, b.len, mb.ptr, mb.len);
    atp_buf_release(&b);
}

static void check_p256_priv(const char *s, size_t n)
{
    uint8_t dst[64];
    size_t len = 0;
    T_OK(atp_base_decode(ATP_BASE58BTC, atp_slice_make(s, n), dst, sizeof dst, &len, NULL));
    T_EQ(len, 32);
}

static void test_interop_crypto_fields(void)
{
    char *sig = t_read_file(t_shared("interop/crypto/signature-fixtures.json"), NULL);
    char *k256 = t_read_file(t_shared("interop/crypto/w3c_didkey_K256.json"), NULL);
    char *p256 = t_read_file(t_shared("interop/crypto/w3c_didkey_P256.json"), NULL);
    if (!sig || !k256 || !p256) {
        free(sig);
        free(k256);
        free(p256);
        return;
    }
    t_vectors("messageBase64", each_json_str(sig, "messageBase64", check_message));
    t_vectors("signatureBase64", each_json_str(sig, "signatureBase64", roundtrip_b64));
    t_vectors("publicKeyMultibase", each_json_str(sig, "publicKeyMultibase", check_legacy_key));
    t_vectors("publicKeyDid", each_json_str(sig, "publicKeyDid", check_did_key) +
                                   each_json_str(k256, "publicDidKey", check_did_key) +
                                   each_json_str(p256, "publicDidKey", check_did_key));
    t_vectors("privateKeyBytesBase58",
              each_json_str(p256, "privateKeyBytesBase58", check_p256_priv));
    free(sig);
    free(k256);
    free(p256);
}

int main(void)
{
    T_RUN(test_rfc4648_vectors);
    T_RUN(test_base58_vectors);
    T_RUN(test_decode_rejects);
    T_RUN(test_multibase_prefix);
    T_RUN(test_hex_and_encode_to);
    T_RUN(test_random_roundtrips);
    T_RUN(test_interop_crypto_fields);
    return t_done();
}

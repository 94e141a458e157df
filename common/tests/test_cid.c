/* test_cid.c: the spec's worked CIDs, the data-model fixtures, the interop CID syntax files
 * (strict parser, per the interop README's "CID warning"), and every rejection rule. */
#include <cjson/cJSON.h>

#include "atp/cid.h"
#include "atp/multibase.h"
#include "t.h"

static size_t unhex(const char *hex, uint8_t *dst, size_t cap)
{
    size_t n = 0;
    T_OK(atp_hex_decode(atp_slice_str(hex), dst, cap, &n, NULL));
    return n;
}

static void check_computed(unsigned codec, atp_slice data, const char *want)
{
    atp_cid c, p;
    char s[ATP_CID_STR_MAX];
    atp_err err;
    atp_cid_compute(&c, codec, data);
    T_EQ(c.len, ATP_CID_BLESSED_LEN);
    T_TRUE(atp_cid_is_blessed(&c));
    T_EQ(atp_cid_codec(&c), codec);
    T_TRUE(atp_cid_matches(&c, data));
    T_EQ(atp_cid_format_to(&c, s, sizeof s), ATP_CID_BLESSED_STR_LEN);
    T_STREQ(s, want);
    T_OKE(atp_cid_parse(atp_slice_str(want), ATP_CID_BLESSED_ONLY, &p, &err), &err);
    T_TRUE(atp_cid_eq(&c, &p));
}

static void test_cid_spec_examples(void)
{
    uint8_t buf[256];
    size_t n;
    check_computed(ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("\xa1\x65hello\x65world"),
                   "bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae");
    check_computed(ATP_CODEC_RAW, ATP_SLICE_LIT("hello world"),
                   "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e");
    /* Empty MST node (repository.md §2.3). */
    check_computed(ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("\xa2\x61\x65\x80\x61\x6c\xf6"),
                   "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm");
    /* The example record (repository.md §2.5). */
    n = unhex("a364746578746b68656c6c6f20776f726c64652474797065726170702e62736b792e666565642e"
              "706f7374696372656174656441747818323032342d30312d30315430303a30303a30302e3030305a",
              buf, sizeof buf);
    T_EQ(n, 79);
    check_computed(ATP_CODEC_DAG_CBOR, atp_slice_make(buf, n),
                   "bafyreieawtmh7hwfrqpamqkodza5r62bbfhsepe2iyustgxhgbhi6b2lfi");
}

static void test_cid_data_model_fixtures(void)
{
    char *text = t_read_file(t_shared("interop/data-model/data-model-fixtures.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *it;
    int count = 0;
    T_TRUE(root != NULL);
    cJSON_ArrayForEach(it, root)
    {
        const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItem(it, "cbor_base64"));
        const char *cid = cJSON_GetStringValue(cJSON_GetObjectItem(it, "cid"));
        uint8_t bytes[4096];
        size_t n = 0;
        T_TRUE(b64 && cid);
        if (!b64 || !cid) {
            continue;
        }
        T_OK(atp_base_decode(ATP_BASE64, atp_slice_str(b64), bytes, sizeof bytes, &n, NULL));
        check_computed(ATP_CODEC_DAG_CBOR, atp_slice_make(bytes, n), cid);
        count++;
    }
    t_vectors("data-model-fixtures cid", count);
    cJSON_Delete(root);
    free(text);
}

static void strict_rejects(const char *line, size_t len, int lineno, void *ctx)
{
    atp_cid c;
    atp_err err;
    (void)ctx;
    if (atp_cid_parse(atp_slice_make(line, len), ATP_CID_BLESSED_ONLY, &c, &err) == 0 ||
        atp_cid_parse(atp_slice_make(line, len), 0, &c, &err) == 0) {
        T_FAILF("cid_syntax_invalid.txt:%d accepted: %s", lineno, line);
    }
}

/* The valid file is multibase-generic: a strict parser may refuse lines, but what it accepts
 * must format back to the same string. */
static void strict_roundtrips(const char *line, size_t len, int lineno, void *ctx)
{
    int *accepted = ctx;
    for (unsigned flags = 0; flags <= ATP_CID_BLESSED_ONLY; flags++) {
        atp_cid c;
        char s[ATP_CID_STR_MAX];
        if (atp_cid_parse(atp_slice_make(line, len), flags, &c, NULL) != 0) {
            continue;
        }
        (*accepted)++;
        atp_cid_format_to(&c, s, sizeof s);
        if (strlen(s) != len || memcmp(s, line, len) != 0) {
            T_FAILF("cid_syntax_valid.txt:%d re-formats as %s", lineno, s);
        }
    }
}

static void test_cid_interop_syntax(void)
{
    int accepted = 0;
    t_vectors("cid_syntax_invalid",
              t_each_line(t_shared("interop/syntax/cid_syntax_invalid.txt"), strict_rejects,
                          NULL));
    t_vectors("cid_syntax_valid",
              t_each_line(t_shared("interop/syntax/cid_syntax_valid.txt"), strict_roundtrips,
                          &accepted));
    /* The two bafybei... (dag-pb) lines parse without BLESSED_ONLY. */
    T_EQ(accepted, 2);
}

static int parse(const char *s, unsigned flags, atp_err *err)
{
    atp_cid c;
    c.len = 77;
    int rc = atp_cid_parse(atp_slice_str(s), flags, &c, err);
    if (rc < 0) {
        T_EQ(c.len, 77);
    }
    return rc;
}

static void test_cid_parse_rejects(void)
{
    atp_err err;
    const char *good = "bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae";
    char s[128];
    T_EQ(parse(good, 0, &err), 0);
    T_EQ(parse("", 0, &err), ATP_EINVAL);
    T_EQ(parse("b", 0, &err), ATP_ETRUNC);
    /* Upper-case base32 ('B' prefix, or upper case after 'b') is not the canonical form. */
    T_EQ(parse("BAFYREIDYKGLSFHOIXMIVFFC5UWHCGSHX4J465XWQNTBMU43NB2DZQWFVAE", 0, &err),
         ATP_EINVAL);
    T_EQ(parse("bAFYREIDYKGLSFHOIXMIVFFC5UWHCGSHX4J465XWQNTBMU43NB2DZQWFVAE", 0, &err),
         ATP_EINVAL);
    /* Non-zero trailing bits in the last character. */
    snprintf(s, sizeof s, "%s", good);
    s[58] = 'f';
    T_EQ(parse(s, 0, &err), ATP_EINVAL);
    /* Truncated digest, trailing data. */
    snprintf(s, sizeof s, "%.57s", good);
    T_EQ(parse(s, 0, &err), ATP_ETRUNC);
    snprintf(s, sizeof s, "%saa", good);
    T_EQ(parse(s, 0, &err), ATP_EINVAL);
    /* Other multibases only with ATP_CID_ANY_BASE. */
    T_EQ(parse("f01711220785197229dc8bb1152945da58e2348f7e279eeded06cc2ca736d0e879858b501", 0,
               &err),
         ATP_EINVAL);
    T_EQ(parse("f01711220785197229dc8bb1152945da58e2348f7e279eeded06cc2ca736d0e879858b501",
               ATP_CID_ANY_BASE, &err),
         0);
    T_EQ(parse("f01711220785197229dc8bb1152945da58e2348f7e279eeded06cc2ca736d0e879858b501",
               ATP_CID_ANY_BASE | ATP_CID_BLESSED_ONLY, &err),
         0);
    /* CIDv0 only with ATP_CID_ALLOW_V0, never with BLESSED_ONLY. */
    T_EQ(parse("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR", 0, &err), ATP_EINVAL);
    T_EQ(parse("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR", ATP_CID_ALLOW_V0, &err), 0);
    T_EQ(parse("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",
               ATP_CID_ALLOW_V0 | ATP_CID_BLESSED_ONLY, &err),
         ATP_EINVAL);
    /* dag-pb is kept by default, refused when blessed only. */
    T_EQ(parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", 0, &err), 0);
    T_EQ(parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
               ATP_CID_BLESSED_ONLY, &err),
         ATP_EINVAL);
    /* Overlong strings. */
    char big[400];
    memset(big, 'a', sizeof big - 1);
    big[0] = 'b';
    big[sizeof big - 1] = '\0';
    T_EQ(parse(big, 0, &err), ATP_ELIMIT);
}

static int decode(const char *hex, unsigned flags, size_t *used, atp_err *err)
{
    uint8_t bin[256];
    size_t n = unhex(hex, bin, sizeof bin);
    atp_cid c;
    return atp_cid_decode(atp_slice_make(bin, n), flags, &c, used, err);
}

#define D32 "785197229dc8bb1152945da58e2348f7e279eeded06cc2ca736d0e879858b501"

static void test_cid_decode_binary(void)
{
    atp_err err;
    size_t used = 0;
    T_EQ(decode("01711220" D32, ATP_CID_BLESSED_ONLY, &used, &err), 0);
    T_EQ(used, 36);
    T_EQ(decode("01711220" D32 "ffff", 0, &used, &err), 0); /* trailing bytes left */
    T_EQ(used, 36);
    T_EQ(decode("", 0, &used, &err), ATP_ETRUNC);
    T_EQ(decode("01", 0, &used, &err), ATP_ETRUNC);
    T_EQ(decode("0171", 0, &used, &err), ATP_ETRUNC);
    T_EQ(decode("01711220" "7851", 0, &used, &err), ATP_ETRUNC);
    T_EQ(err.off, 6);
    T_EQ(decode("02711220" D32, 0, &used, &err), ATP_EINVAL);   /* version 2 */
    T_EQ(decode("00711220" D32, 0, &used, &err), ATP_EINVAL);   /* version 0 */
    T_EQ(decode("01711210" D32, 0, &used, &err), ATP_EINVAL);   /* sha2-256 of 16 bytes */
    T_EQ(decode("0181001220" D32, 0, &used, &err), ATP_EINVAL); /* non-shortest codec */
    T_EQ(decode("01701220" D32, 0, &used, &err), 0);            /* dag-pb kept */
    T_EQ(decode("01701220" D32, ATP_CID_BLESSED_ONLY, &used, &err), ATP_EINVAL);
    T_EQ(decode("0171b24020" D32, 0, &used, &err), 0); /* blake2b-256: kept */
    T_EQ(decode("0171b24020" D32, ATP_CID_BLESSED_ONLY, &used, &err), ATP_EINVAL);
    T_EQ(decode("01550003616263", 0, &used, &err), 0); /* identity hash */
    T_EQ(used, 7);
    T_EQ(decode("01550065", 0, &used, &err), ATP_ELIMIT); /* digest over 100 bytes */
    T_EQ(decode("1220" D32, 0, &used, &err), ATP_EINVAL);
    T_EQ(decode("1220" D32, ATP_CID_ALLOW_V0, &used, &err), 0);
    T_EQ(used, 34);
    T_EQ(decode("1220" "7851", ATP_CID_ALLOW_V0, &used, &err), ATP_ETRUNC);
}

static void test_cid_helpers(void)
{
    atp_cid a, b, v0, other;
    uint8_t bin[64];
    size_t used, n;
    char s[ATP_CID_STR_MAX];
    atp_buf out;
    atp_cid_compute(&a, ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("x"));
    atp_cid_compute(&b, ATP_CODEC_RAW, ATP_SLICE_LIT("x"));
    T_FALSE(atp_cid_eq(&a, &b));
    T_TRUE(atp_cid_cmp(&a, &b) > 0); /* 0x71 > 0x55 */
    T_TRUE(atp_cid_cmp(&b, &a) < 0);
    T_EQ(atp_cid_cmp(&a, &a), 0);
    T_FALSE(atp_cid_matches(&a, ATP_SLICE_LIT("y")));
    /* A v0 CID matches its data; a non-sha256 CID never does. */
    n = unhex("1220" D32, bin, sizeof bin);
    T_OK(atp_cid_decode(atp_slice_make(bin, n), ATP_CID_ALLOW_V0, &v0, &used, NULL));
    T_EQ(atp_cid_codec(&v0), 0x70);
    T_FALSE(atp_cid_is_blessed(&v0));
    memcpy(v0.bytes + 2, a.bytes + 4, 32);
    T_TRUE(atp_cid_matches(&v0, ATP_SLICE_LIT("x")));
    n = unhex("0171b24020" D32, bin, sizeof bin);
    T_OK(atp_cid_decode(atp_slice_make(bin, n), 0, &other, &used, NULL));
    T_FALSE(atp_cid_matches(&other, ATP_SLICE_LIT("x")));
    T_EQ(atp_cid_codec(&other), 0x71);
    /* format_to: exact capacity works, one less fails; format appends the same. */
    T_EQ(atp_cid_format_to(&a, s, ATP_CID_BLESSED_STR_LEN + 1), ATP_CID_BLESSED_STR_LEN);
    T_EQ(atp_cid_format_to(&a, s, ATP_CID_BLESSED_STR_LEN), 0);
    atp_cid_format_to(&a, s, sizeof s);
    atp_buf_init(&out, 0);
    atp_cid_format(&out, &a);
    T_MEMEQ(out.ptr, out.len, s, strlen(s));
    atp_buf_release(&out);
    T_EQ(atp_cid_slice(&a).len, 36);
}

int main(void)
{
    T_RUN(test_cid_spec_examples);
    T_RUN(test_cid_data_model_fixtures);
    T_RUN(test_cid_interop_syntax);
    T_RUN(test_cid_parse_rejects);
    T_RUN(test_cid_decode_binary);
    T_RUN(test_cid_helpers);
    return t_done();
}

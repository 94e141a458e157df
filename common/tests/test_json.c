/* test_json.c: atproto JSON <-> data-model tree, against the interop data-model vectors. */
#include "atp/json.h"
#include "atp/multibase.h"
#include "t.h"

static atp_arena *arena;

/* ---- helpers ---- */

/* JSON text -> canonical CBOR bytes in `out` (reset first); returns the decode rc. */
static int json_to_cbor(const char *text, unsigned flags, const atp_json_limits *lim, atp_buf *out,
                        atp_err *err)
{
    atp_cbor *v = NULL;
    int rc = atp_json_decode(arena, atp_slice_str(text), flags, lim, &v, err);
    atp_buf_reset(out);
    if (rc == 0) {
        atp_cbor_encode(out, v);
    }
    return rc;
}

/* Encodes `v` as JSON into a NUL-terminated static string. */
static const char *to_json(const atp_cbor *v, unsigned flags)
{
    static char text[65536];
    atp_buf b;
    atp_buf_init(&b, sizeof text - 1);
    atp_json_encode(&b, v, flags);
    if (b.err) {
        snprintf(text, sizeof text, "<err %d>", b.err);
    } else {
        memcpy(text, b.ptr, b.len);
        text[b.len] = '\0';
    }
    atp_buf_release(&b);
    return text;
}

static const atp_cbor *parse_ok(const char *text, unsigned flags, int line)
{
    atp_cbor *v = NULL;
    atp_err err = {0};
    int rc = atp_json_decode(arena, atp_slice_str(text), flags, NULL, &v, &err);
    if (rc != 0) {
        T_FAILF("line %d: %s: rc %d: %s", line, text, rc, err.msg);
        return NULL;
    }
    t__checks++;
    return v;
}

static void parse_bad(const char *text, unsigned flags, const atp_json_limits *lim, int code,
                      int line)
{
    atp_cbor *v = NULL;
    atp_err err = {0};
    int rc = atp_json_decode(arena, atp_slice_str(text), flags, lim, &v, &err);
    t__checks++;
    if (rc != code || (code != 0 && v != NULL) || (rc != 0 && err.msg[0] == '\0')) {
        T_FAILF("line %d: %s: rc %d (%s), want %d", line, text, rc, err.msg, code);
    }
}

#define OK(text) parse_ok(text, 0, __LINE__)
#define OKD(text) parse_ok(text, ATP_JSON_DATA, __LINE__)
#define BAD(text, code) parse_bad(text, 0, NULL, code, __LINE__)
#define BADD(text, code) parse_bad(text, ATP_JSON_DATA, NULL, code, __LINE__)

/* text -> tree -> JSON (compact) must equal `want`. */
static void check_json(const char *text, const char *want, int line)
{
    const atp_cbor *v = parse_ok(text, 0, line);
    if (v) {
        const char *got = to_json(v, 0);
        t__checks++;
        if (strcmp(got, want) != 0) {
            T_FAILF("line %d: %s -> %s, want %s", line, text, got, want);
        }
    }
}

#define SAME(text, want) check_json(text, want, __LINE__)

/* JSON -> tree -> JSON -> tree: both trees encode to the same CBOR (compact and pretty). */
static void check_round_trip(const atp_cbor *v, unsigned dflags, int line)
{
    atp_buf c1, c2, j;
    atp_cbor *back = NULL;
    atp_err err = {0};
    atp_buf_init(&c1, 0);
    atp_buf_init(&c2, 0);
    atp_buf_init(&j, 0);
    atp_cbor_encode(&c1, v);
    for (unsigned pretty = 0; pretty <= ATP_JSON_PRETTY; pretty += ATP_JSON_PRETTY) {
        atp_buf_reset(&j);
        atp_buf_reset(&c2);
        atp_json_encode(&j, v, pretty);
        T_EQ(j.err, 0);
        int rc = atp_json_decode(arena, atp_buf_slice(&j), dflags, NULL, &back, &err);
        if (rc != 0) {
            T_FAILF("line %d: re-decode rc %d: %s: %.*s", line, rc, err.msg, (int)j.len, j.ptr);
            break;
        }
        atp_cbor_encode(&c2, back);
        T_MEMEQ(c2.ptr, c2.len, c1.ptr, c1.len);
    }
    atp_buf_release(&c1);
    atp_buf_release(&c2);
    atp_buf_release(&j);
}

static cJSON *load(const char *rel)
{
    char *text = t_read_file(t_shared(rel), NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (text && !j) {
        T_FAILF("cannot parse %s", rel);
    }
    return j;
}

/* ---- interop vectors ---- */

static void fixture_case(const cJSON *c)
{
    const cJSON *json = cJSON_GetObjectItemCaseSensitive(c, "json");
    const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "cbor_base64"));
    const char *cidstr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "cid"));
    uint8_t want[4096];
    size_t wlen = 0;
    atp_cbor *v = NULL, *back = NULL;
    atp_buf b;
    atp_err err = {0};
    char got[ATP_CID_STR_MAX];
    atp_cid cid;
    T_TRUE(json && b64 && cidstr);
    if (!json || !b64 || !cidstr) {
        return;
    }
    T_OK(atp_base_decode(ATP_BASE64, atp_slice_str(b64), want, sizeof want, &wlen, NULL));
    /* 1. JSON -> CBOR, byte for byte (from cJSON and from text). */
    atp_buf_init(&b, 0);
    T_OKE(atp_json_from_cjson(arena, json, ATP_JSON_DATA, NULL, &v, &err), &err);
    atp_cbor_encode(&b, v);
    T_MEMEQ(b.ptr, b.len, want, wlen);
    char *text = cJSON_Print(json);
    T_OKE(json_to_cbor(text, ATP_JSON_DATA, NULL, &b, &err), &err);
    T_MEMEQ(b.ptr, b.len, want, wlen);
    free(text);
    /* 2. CBOR -> JSON, semantically equal (cJSON_Compare ignores member order). */
    T_OKE(atp_cbor_decode(arena, atp_slice_make(want, wlen), NULL, &back, &err), &err);
    for (unsigned f = 0; f <= ATP_JSON_PRETTY; f += ATP_JSON_PRETTY) {
        cJSON *again = cJSON_Parse(to_json(back, f));
        T_TRUE(again && cJSON_Compare(again, json, 1));
        cJSON_Delete(again);
    }
    cJSON *cj = atp_json_to_cjson(back);
    T_TRUE(cj && cJSON_Compare(cj, json, 1));
    cJSON_Delete(cj);
    /* 3. CID. */
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, atp_slice_make(want, wlen));
    T_TRUE(atp_cid_format_to(&cid, got, sizeof got) > 0);
    T_STREQ(got, cidstr);
    check_round_trip(v, ATP_JSON_DATA, __LINE__);
    atp_buf_release(&b);
}

static void test_interop_fixtures(void)
{
    cJSON *all = load("interop/data-model/data-model-fixtures.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, all)
    {
        fixture_case(c);
        n++;
    }
    T_EQ(n, 3);
    t_vectors("data-model-fixtures", n);
    cJSON_Delete(all);
}

static void test_interop_valid(void)
{
    cJSON *all = load("interop/data-model/data-model-valid.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, all)
    {
        const cJSON *json = cJSON_GetObjectItemCaseSensitive(c, "json");
        const char *note = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "note"));
        atp_cbor *v = NULL;
        atp_err err = {0};
        char *text = cJSON_PrintUnformatted(json);
        int rc = atp_json_decode(arena, atp_slice_str(text), ATP_JSON_DATA, NULL, &v, &err);
        if (rc != 0) {
            T_FAILF("valid case \"%s\" rejected: %s", note ? note : "?", err.msg);
        } else {
            T_OKE(atp_json_from_cjson(arena, json, ATP_JSON_DATA, NULL, &v, &err), &err);
            check_round_trip(v, ATP_JSON_DATA, __LINE__);
        }
        free(text);
        n++;
    }
    T_EQ(n, 5);
    t_vectors("data-model-valid", n);
    cJSON_Delete(all);
}

static void test_interop_invalid(void)
{
    cJSON *all = load("interop/data-model/data-model-invalid.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, all)
    {
        const cJSON *json = cJSON_GetObjectItemCaseSensitive(c, "json");
        const char *note = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "note"));
        atp_cbor *v = NULL;
        atp_err err = {0};
        char *text = cJSON_PrintUnformatted(json);
        int rc = atp_json_decode(arena, atp_slice_str(text), ATP_JSON_DATA, NULL, &v, &err);
        int rc2 = atp_json_from_cjson(arena, json, ATP_JSON_DATA, NULL, &v, NULL);
        if (rc == 0 || rc2 == 0 || v != NULL) {
            T_FAILF("invalid case \"%s\" accepted", note ? note : "?");
        } else {
            printf("#   rejected \"%s\": %s\n", note ? note : "?", err.msg);
        }
        free(text);
        n++;
    }
    T_EQ(n, 12);
    t_vectors("data-model-invalid", n);
    cJSON_Delete(all);
}

/* ---- numbers ---- */

static void test_numbers(void)
{
    const atp_cbor *v;
    SAME("0", "0");
    SAME("-0", "0");
    SAME("123.0", "123");
    SAME("1e2", "100");
    SAME("-5.000", "-5");
    SAME("9007199254740991", "9007199254740991");
    SAME("-9007199254740991", "-9007199254740991");
    SAME("[1,-1,23,24,-25,65536]", "[1,-1,23,24,-25,65536]");
    BAD("9007199254740992", ATP_EINVAL);
    BAD("-9007199254740992", ATP_EINVAL);
    BAD("18446744073709551616", ATP_EINVAL);
    BAD("1e300", ATP_EINVAL);
    BAD("123.456", ATP_EINVAL);
    BAD("0.5", ATP_EINVAL);
    BAD("-1e-7", ATP_EINVAL);
    BAD("{\"a\":[1,2,3.5]}", ATP_EINVAL);
    v = OK("42");
    T_TRUE(v && v->type == ATP_CBOR_INT && v->u.i == 42);
    /* The writer is exact over all of int64 (trees from CBOR can hold any of it). */
    atp_cbor n = {.type = ATP_CBOR_INT, .u.i = INT64_MIN};
    T_STREQ(to_json(&n, 0), "-9223372036854775808");
    n.u.i = INT64_MAX;
    T_STREQ(to_json(&n, 0), "9223372036854775807");
    n.u.i = -10;
    T_STREQ(to_json(&n, 0), "-10");
}

/* ---- strings and escaping ---- */

static void test_strings(void)
{
    SAME("\"plain\"", "\"plain\"");
    SAME("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\"\\\" \\\\ / \\b \\f \\n \\r \\t\"");
    SAME("\"\\u0001\\u001f\\u007f\\u0080\"", "\"\\u0001\\u001f\x7f\xc2\x80\"");
    SAME("\"\\u00e9\\u263a\"", "\"\xc3\xa9\xe2\x98\xba\"");
    SAME("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
    SAME("\"a~\xc3\xb6\xc3\xb1\xc2\xa9\xe2\xbd\x98\xe2\x98\x8e\xf0\x93\x8b\x93\"",
         "\"a~\xc3\xb6\xc3\xb1\xc2\xa9\xe2\xbd\x98\xe2\x98\x8e\xf0\x93\x8b\x93\"");
    /* Invalid text. */
    BAD("\"\\ud800\"", ATP_EINVAL);              /* lone high surrogate */
    BAD("\"\\udc00\"", ATP_EINVAL);              /* lone low surrogate */
    BAD("\"\xed\xa0\x80\"", ATP_EINVAL);         /* raw surrogate */
    BAD("\"\xc0\xaf\"", ATP_EINVAL);             /* overlong */
    BAD("\"\xff\"", ATP_EINVAL);
    BAD("{\"\xff\":1}", ATP_EINVAL);             /* key */
    BAD("\"a\tb\"", ATP_EINVAL);                 /* raw control character */
    BAD("\"a\nb\"", ATP_EINVAL);
    BAD("\"a\\u0000b\"", ATP_EUNSUPPORTED);      /* cJSON would cut it */
    BAD("{\"a\\u0000\":1}", ATP_EUNSUPPORTED);
    SAME("\"a\\\\u0000b\"", "\"a\\\\u0000b\"");  /* an escaped backslash, then text */
    /* Control characters out, from a tree. */
    atp_cbor s = {.type = ATP_CBOR_STRING, .u.str = ATP_SLICE_LIT("\x00\x01\x1f\"\\\n")};
    T_STREQ(to_json(&s, 0), "\"\\u0000\\u0001\\u001f\\\"\\\\\\n\"");
    s.u.str = ATP_SLICE_LIT("\xed\xa0\x80");
    T_STREQ(to_json(&s, 0), "<err -1>");
}

/* ---- syntax and structure ---- */

static void test_syntax(void)
{
    SAME(" \n\t{ \"b\" : [ true , false , null ] , \"a\" : { } }\r\n ",
         "{\"a\":{},\"b\":[true,false,null]}");
    SAME("{\"bb\":1,\"c\":2,\"a\":3}", "{\"a\":3,\"c\":2,\"bb\":1}");
    SAME("[]", "[]");
    SAME("{}", "{}");
    BAD("", ATP_EINVAL);
    BAD("   ", ATP_EINVAL);
    BAD("{", ATP_EINVAL);
    BAD("[1,]", ATP_EINVAL);
    BAD("{\"a\":1,}", ATP_EINVAL);
    BAD("{} x", ATP_EINVAL);
    BAD("{}{}", ATP_EINVAL);
    BAD("'a'", ATP_EINVAL);
    BAD("NaN", ATP_EINVAL);
    BAD("{a:1}", ATP_EINVAL);
    BAD("{\"a\":1,\"a\":2}", ATP_EINVAL);                /* duplicate */
    BAD("{\"x\":{\"a\":1,\"b\":2,\"a\":1}}", ATP_EINVAL);
    atp_cbor *v = NULL;
    atp_err err = {0};
    T_EQ(atp_json_decode(arena, ATP_SLICE_LIT("{} \x00"), 0, NULL, &v, &err), ATP_EINVAL);
    T_EQ(err.off, 3);
    T_EQ(atp_json_decode(arena, atp_slice_make(NULL, 0), 0, NULL, &v, NULL), ATP_EINVAL);
    T_EQ(atp_json_decode(arena, ATP_SLICE_LIT("[1,2] ]"), 0, NULL, &v, &err), ATP_EINVAL);
    T_EQ(err.off, 6);
    T_TRUE(v == NULL);
    /* The input need not be NUL-terminated. */
    T_OK(atp_json_decode(arena, ATP_SLICE_LIT("[1,2]9"), 0, NULL, &v, NULL) == 0 ? 1 : 0);
    T_OK(atp_json_decode(arena, atp_slice_make("[1,2]9", 5), 0, NULL, &v, NULL));
    T_TRUE(v && v->type == ATP_CBOR_ARRAY && v->u.arr.n == 2);
    T_OK(atp_json_decode(arena, atp_slice_make("123", 2), 0, NULL, &v, NULL));
    T_TRUE(v && v->type == ATP_CBOR_INT && v->u.i == 12);
}

/* ---- $link, $bytes, data rules ---- */

#define CIDS "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"
#define RAWCID "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"

static void test_links_bytes(void)
{
    const atp_cbor *v;
    SAME("{\"$link\":\"" CIDS "\"}", "{\"$link\":\"" CIDS "\"}");
    v = OK("{\"$link\":\"" RAWCID "\"}");
    T_TRUE(v && v->type == ATP_CBOR_LINK && v->u.link.len == 36);
    SAME("{\"$bytes\":\"aGk\"}", "{\"$bytes\":\"aGk\"}");
    SAME("{\"$bytes\":\"aGk=\"}", "{\"$bytes\":\"aGk\"}");
    SAME("{\"$bytes\":\"\"}", "{\"$bytes\":\"\"}");
    SAME("{\"$bytes\":\"+/+/\"}", "{\"$bytes\":\"+/+/\"}");
    /* Lenient tail bits (interop quirk 3): accepted, then written canonically. */
    SAME("{\"$bytes\":\"123\"}", "{\"$bytes\":\"120\"}");
    v = OK("{\"$bytes\":\"aGVsbG8\"}");
    T_TRUE(v && v->type == ATP_CBOR_BYTES && atp_slice_eq_str(v->u.str, "hello"));
    BAD("{\"$bytes\":\"a\"}", ATP_EINVAL);
    BAD("{\"$bytes\":\"-_-_\"}", ATP_EINVAL);     /* URL-safe alphabet */
    BAD("{\"$bytes\":\"aGk==\"}", ATP_EINVAL);
    BAD("{\"$bytes\":\"a Gk\"}", ATP_EINVAL);
    BAD("{\"$bytes\":1}", ATP_EINVAL);
    BAD("{\"$bytes\":null}", ATP_EINVAL);
    BAD("{\"$bytes\":\"aGk\",\"x\":1}", ATP_EINVAL);
    BAD("{\"$link\":\".\"}", ATP_EINVAL);
    BAD("{\"$link\":\"QmQg1v4o9xdT3Q14wh4S7dxZkDjyZ9ssFzFzyep1YrVJBY\"}", ATP_EINVAL);
    BAD("{\"$link\":\"zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA\"}", ATP_EINVAL);
    BAD("{\"$link\":\"" CIDS "x\"}", ATP_EINVAL);
    BAD("{\"$link\":[]}", ATP_EINVAL);
    BAD("{\"$link\":\"" CIDS "\",\"$bytes\":\"\"}", ATP_EINVAL);
    /* Other $-keys are ordinary keys, kept. */
    SAME("{\"$foo\":1,\"$link2\":2}", "{\"$foo\":1,\"$link2\":2}");
    /* Links and bytes out of CBOR, pretty. */
    v = OK("{\"b\":{\"$bytes\":\"AAE\"},\"a\":[{\"$link\":\"" CIDS "\"}],\"c\":{}}");
    T_STREQ(to_json(v, ATP_JSON_PRETTY), "{\n"
                                         "  \"a\": [\n"
                                         "    {\n"
                                         "      \"$link\": \"" CIDS "\"\n"
                                         "    }\n"
                                         "  ],\n"
                                         "  \"b\": {\n"
                                         "    \"$bytes\": \"AAE\"\n"
                                         "  },\n"
                                         "  \"c\": {}\n"
                                         "}");
}

static void test_data_rules(void)
{
    OKD("{}");
    OKD("{\"$type\":\"app.bsky.feed.post\",\"text\":\"hi\"}");
    OKD("{\"b\":{\"$type\":\"blob\",\"ref\":{\"$link\":\"" RAWCID "\"},\"mimeType\":\"a/b\","
        "\"size\":0}}");
    BADD("[]", ATP_EINVAL);
    BADD("1", ATP_EINVAL);
    BADD("{\"$link\":\"" CIDS "\"}", ATP_EINVAL);
    BADD("{\"$bytes\":\"\"}", ATP_EINVAL);
    BADD("{\"$type\":\"\"}", ATP_EINVAL);
    BADD("{\"$type\":null}", ATP_EINVAL);
    BADD("{\"a\":[{\"$type\":7}]}", ATP_EINVAL);
    BADD("{\"b\":{\"$type\":\"blob\",\"mimeType\":\"a/b\",\"size\":1}}", ATP_EINVAL);
    BADD("{\"b\":{\"$type\":\"blob\",\"ref\":\"" RAWCID "\",\"mimeType\":\"a/b\",\"size\":1}}",
         ATP_EINVAL);
    BADD("{\"b\":{\"$type\":\"blob\",\"ref\":{\"$link\":\"" RAWCID "\"},\"mimeType\":\"a/b\","
         "\"size\":-1}}",
         ATP_EINVAL);
    BADD("{\"b\":{\"$type\":\"blob\",\"ref\":{\"$link\":\"" RAWCID "\"},\"mimeType\":\"a/b\"}}",
         ATP_EINVAL);
    BADD("{\"b\":{\"$type\":\"blob\",\"ref\":{\"$link\":\"" RAWCID "\"},\"mimeType\":1,"
         "\"size\":1}}",
         ATP_EINVAL);
    /* Without ATP_JSON_DATA those shapes are plain data. */
    OK("[]");
    OK("{\"$type\":\"\"}");
    OK("{\"b\":{\"$type\":\"blob\"}}");
}

/* ---- limits ---- */

static void nest(char *dst, int levels, const char *open, const char *close)
{
    size_t k = 0;
    for (int i = 0; i < levels; i++) {
        dst[k++] = open[0];
    }
    dst[k++] = '1';
    for (int i = 0; i < levels; i++) {
        dst[k++] = close[0];
    }
    dst[k] = '\0';
}

static void test_limits(void)
{
    char deep[512];
    atp_json_limits l = atp_json_limits_default;
    nest(deep, 32, "[", "]");
    OK(deep);
    nest(deep, 33, "[", "]");
    BAD(deep, ATP_EDEPTH);
    nest(deep, 200, "[", "]");
    BAD(deep, ATP_EDEPTH);
    /* A $link wrapper at the deepest level is not a container. */
    char linkdeep[512];
    size_t k = 0;
    for (int i = 0; i < 32; i++) {
        linkdeep[k++] = '[';
    }
    k += (size_t)snprintf(linkdeep + k, sizeof linkdeep - k, "{\"$link\":\"%s\"}", CIDS);
    for (int i = 0; i < 32; i++) {
        linkdeep[k++] = ']';
    }
    linkdeep[k] = '\0';
    OK(linkdeep);
    l.max_depth = 1;
    parse_bad("[[1]]", 0, &l, ATP_EDEPTH, __LINE__);
    parse_bad("{\"a\":{}}", 0, &l, ATP_EDEPTH, __LINE__);
    l = atp_json_limits_default;
    l.max_items = 3;
    parse_bad("[1,2,3,4]", 0, &l, ATP_ELIMIT, __LINE__);
    parse_bad("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", 0, &l, ATP_ELIMIT, __LINE__);
    parse_bad("[1,2,3]", 0, &l, 0, __LINE__);
    l = atp_json_limits_default;
    l.max_str = 3;
    parse_bad("\"abcd\"", 0, &l, ATP_ELIMIT, __LINE__);
    parse_bad("\"abc\"", 0, &l, 0, __LINE__);
    parse_bad("{\"$bytes\":\"aGVsbG8\"}", 0, &l, ATP_ELIMIT, __LINE__);
    l = atp_json_limits_default;
    l.max_key = 2;
    parse_bad("{\"abc\":1}", 0, &l, ATP_ELIMIT, __LINE__);
    parse_bad("{\"ab\":1}", 0, &l, 0, __LINE__);
    l = atp_json_limits_default;
    l.max_len = 4;
    parse_bad("[1,2]", 0, &l, ATP_ELIMIT, __LINE__);
    parse_bad("[12]", 0, &l, 0, __LINE__);
}

/* ---- cJSON in and out ---- */

static void test_cjson(void)
{
    const atp_cbor *v = OK("{\"s\":\"x\",\"i\":-7,\"n\":null,\"t\":true,\"f\":false,"
                           "\"a\":[1,{\"$bytes\":\"AAE\"}],\"l\":{\"$link\":\"" CIDS "\"}}");
    cJSON *j = atp_json_to_cjson(v);
    atp_cbor *back = NULL;
    atp_buf b1, b2;
    T_TRUE(j != NULL);
    char *text = cJSON_PrintUnformatted(j);
    T_STREQ(text, "{\"a\":[1,{\"$bytes\":\"AAE\"}],\"f\":false,\"i\":-7,\"l\":{\"$link\":\"" CIDS
                  "\"},\"n\":null,\"s\":\"x\",\"t\":true}");
    free(text);
    T_OK(atp_json_from_cjson(arena, j, ATP_JSON_DATA, NULL, &back, NULL));
    atp_buf_init(&b1, 0);
    atp_buf_init(&b2, 0);
    atp_cbor_encode(&b1, v);
    atp_cbor_encode(&b2, back);
    T_MEMEQ(b1.ptr, b1.len, b2.ptr, b2.len);
    atp_buf_release(&b1);
    atp_buf_release(&b2);
    cJSON_Delete(j);
    /* Hand-built cJSON the text parser could never produce. */
    cJSON *raw = cJSON_CreateRaw("1");
    T_EQ(atp_json_from_cjson(arena, raw, 0, NULL, &back, NULL), ATP_EINVAL);
    cJSON_Delete(raw);
    cJSON *inf = cJSON_CreateNumber(1.0 / 0.0);
    T_EQ(atp_json_from_cjson(arena, inf, 0, NULL, &back, NULL), ATP_EINVAL);
    cJSON_Delete(inf);
    T_EQ(atp_json_from_cjson(arena, NULL, 0, NULL, &back, NULL), ATP_EINVAL);
    atp_cbor bad = {.type = ATP_CBOR_LINK};
    T_TRUE(atp_json_to_cjson(&bad) == NULL);
    atp_cbor arr = {.type = ATP_CBOR_ARRAY, .u.arr = {&bad, 1}};
    T_TRUE(atp_json_to_cjson(&arr) == NULL);
}

/* ---- randomized round trips ---- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    /* xorshift64 */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Strings mixing ASCII, control characters, quotes and multi-byte characters. */
static atp_slice rnd_text(size_t n)
{
    static const char *const parts[] = {"a", "Z", "\"", "\\", "\n", "\x01", "\x1f", " ", "/",
                                        "\xc3\xa9", "\xe2\x98\xba", "\xf0\x9f\x98\x80", "$", "\x7f"};
    uint8_t *p = atp_arena_alloc(arena, n * 4 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = parts[rnd_below(sizeof parts / sizeof parts[0])];
        size_t k = strlen(s);
        memcpy(p + len, s, k);
        len += k;
    }
    return atp_slice_make(p, len);
}

static void rnd_value(atp_cbor *v, int depth);

static void rnd_map(atp_cbor *v, int depth)
{
    size_t n = rnd_below(6);
    atp_cbor *m = atp_cbor_new_map(arena, n);
    do {
        for (size_t i = 0; i < n; i++) {
            m->u.map.pairs[i].key = rnd_text(1 + rnd_below(3));
        }
    } while (atp_cbor_map_finish(m, NULL) != 0);
    for (size_t i = 0; i < n; i++) {
        rnd_value(&m->u.map.pairs[i].val, depth + 1);
    }
    *v = *m;
}

static void rnd_value(atp_cbor *v, int depth)
{
    switch (rnd_below(depth >= 5 ? 6 : 8)) {
    case 0:
        v->type = ATP_CBOR_NULL;
        break;
    case 1:
        *v = *atp_cbor_new_bool(arena, rnd_below(2));
        break;
    case 2:
        *v = *atp_cbor_new_int(arena, (int64_t)(rnd() >> (11 + rnd_below(53))) *
                                          (rnd_below(2) ? 1 : -1));
        break;
    case 3:
        *v = *atp_cbor_new_string(arena, rnd_text(rnd_below(10)));
        break;
    case 4: {
        size_t n = rnd_below(40);
        uint8_t *p = atp_arena_alloc(arena, n + 1);
        for (size_t i = 0; i < n; i++) {
            p[i] = (uint8_t)rnd();
        }
        *v = *atp_cbor_new_bytes(arena, atp_slice_make(p, n));
        break;
    }
    case 5: {
        atp_cid cid;
        uint64_t seed = rnd();
        atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, atp_slice_make(&seed, sizeof seed));
        *v = *atp_cbor_new_link(arena, &cid);
        break;
    }
    case 6: {
        atp_cbor *a = atp_cbor_new_array(arena, rnd_below(5));
        for (size_t i = 0; i < a->u.arr.n; i++) {
            rnd_value(&a->u.arr.items[i], depth + 1);
        }
        *v = *a;
        break;
    }
    default:
        rnd_map(v, depth);
        break;
    }
}

static void test_random_round_trips(void)
{
    int n = 0;
    for (int i = 0; i < 2000; i++) {
        atp_cbor root;
        atp_arena_reset(arena);
        rnd_map(&root, 0);
        check_round_trip(&root, ATP_JSON_DATA * (unsigned)(i & 1), __LINE__);
        n++;
    }
    t_vectors("random trees", n);
}

int main(void)
{
    arena = atp_arena_create(0);
    T_RUN(test_interop_fixtures);
    T_RUN(test_interop_valid);
    T_RUN(test_interop_invalid);
    T_RUN(test_numbers);
    T_RUN(test_strings);
    T_RUN(test_syntax);
    T_RUN(test_links_bytes);
    T_RUN(test_data_rules);
    T_RUN(test_limits);
    T_RUN(test_cjson);
    T_RUN(test_random_round_trips);
    atp_arena_destroy(arena);
    return t_done();
}

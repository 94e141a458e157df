/* test_syntax.c: the string-format validators against all 24 interop syntax files, plus our
 * own boundaries (exact maximum lengths and one over, embedded NUL, non-ASCII) and the helpers. */
#include "atp/syntax.h"
#include "t.h"

typedef int (*check_fn)(atp_slice, atp_err *);

typedef struct vec_ctx {
    const char *file;
    check_fn fn;
    bool expect_ok;
} vec_ctx;

static void vec_line(const char *line, size_t len, int lineno, void *vctx)
{
    const vec_ctx *c = vctx;
    atp_err e;
    atp_err_clear(&e);
    int rc = c->fn(atp_slice_make(line, len), &e);
    t__checks++;
    if (c->expect_ok && rc != 0) {
        T_FAILF("%s:%d: rejected \"%.80s\": %s (offset %zu)", c->file, lineno, line, e.msg, e.off);
    } else if (!c->expect_ok && rc != ATP_EINVAL) {
        T_FAILF("%s:%d: accepted \"%.80s\" (rc %d)", c->file, lineno, line, rc);
    } else if (!c->expect_ok && (e.code != ATP_EINVAL || e.msg[0] == '\0' || e.off > len)) {
        T_FAILF("%s:%d: error detail not filled: code %d off %zu", c->file, lineno, e.code, e.off);
    }
}

static void run_file(const char *name, check_fn fn, bool expect_ok)
{
    char rel[256];
    vec_ctx c = {name, fn, expect_ok};
    snprintf(rel, sizeof rel, "interop/syntax/%s", name);
    t_vectors(name, t_each_line(t_shared(rel), vec_line, &c));
}

static void run_kind(const char *kind, check_fn fn, bool has_parse_invalid)
{
    char name[128];
    snprintf(name, sizeof name, "%s_syntax_valid.txt", kind);
    run_file(name, fn, true);
    snprintf(name, sizeof name, "%s_syntax_invalid.txt", kind);
    run_file(name, fn, false);
    if (has_parse_invalid) {
        snprintf(name, sizeof name, "%s_parse_invalid.txt", kind);
        run_file(name, fn, false);
    }
}

static int parse_datetime_only(atp_slice s, atp_err *err)
{
    int64_t us = 0;
    return atp_syntax_parse_datetime(s, &us, err);
}

static int parse_aturi_only(atp_slice s, atp_err *err)
{
    atp_aturi u;
    return atp_syntax_parse_aturi(s, &u, err);
}

static void test_interop_vectors(void)
{
    run_kind("handle", atp_syntax_check_handle, false);
    run_kind("did", atp_syntax_check_did, false);
    run_kind("nsid", atp_syntax_check_nsid, false);
    run_kind("tid", atp_syntax_check_tid, false);
    run_kind("recordkey", atp_syntax_check_rkey, false);
    run_kind("atidentifier", atp_syntax_check_atidentifier, false);
    run_kind("aturi", atp_syntax_check_aturi, false);
    run_kind("datetime", atp_syntax_check_datetime, true);
    run_kind("language", atp_syntax_check_language, true);
    run_kind("cid", atp_syntax_check_cid, false);
    run_kind("uri", atp_syntax_check_uri, false);
    /* The parsers agree with the checkers on the same files. */
    run_kind("datetime", parse_datetime_only, true);
    run_kind("aturi", parse_aturi_only, false);
}

/* ---- helpers for boundary tests ---- */

static char big[10000];

/* prefix + n copies of c + suffix, in `big`; returns the slice. */
static atp_slice make(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t p = strlen(prefix), q = strlen(suffix);
    if (p + n + q > sizeof big) {
        abort();
    }
    memcpy(big, prefix, p);
    memset(big + p, c, n);
    memcpy(big + p + n, suffix, q);
    return atp_slice_make(big, p + n + q);
}

static atp_slice S(const char *s)
{
    return atp_slice_str(s);
}

/* Expects rejection with a message starting with `msg` at offset `off`. */
static void expect_err(check_fn fn, atp_slice s, const char *msg, size_t off)
{
    atp_err e;
    atp_err_clear(&e);
    T_EQ(fn(s, &e), ATP_EINVAL);
    T_EQ(e.code, ATP_EINVAL);
    if (strncmp(e.msg, msg, strlen(msg)) != 0) {
        T_FAILF("message \"%s\" does not start with \"%s\"", e.msg, msg);
    }
    T_EQ(e.off, off);
}

static void test_handle(void)
{
    /* 253 = 63+1+63+1+63+1+61 */
    char h[300];
    memset(h, 'a', sizeof h);
    h[63] = h[127] = h[191] = '.';
    T_TRUE(atp_syntax_is_handle(atp_slice_make(h, 253)));
    expect_err(atp_syntax_check_handle, atp_slice_make(h, 254), "handle: longer than 253", 253);
    T_TRUE(atp_syntax_is_handle(make("a.", 'b', 63, "")));
    expect_err(atp_syntax_check_handle, make("a.", 'b', 64, ""),
               "handle label 2 is longer than 63 chars", 2);
    expect_err(atp_syntax_check_handle, S("jo.hn-.test"), "handle label 2 ends with '-'", 5);
    expect_err(atp_syntax_check_handle, S("jo.-hn.test"), "handle label 2 starts with '-'", 3);
    expect_err(atp_syntax_check_handle, S("john..test"), "handle label 2 is empty", 5);
    expect_err(atp_syntax_check_handle, S("john.0aa"), "handle: TLD starts with a digit", 5);
    expect_err(atp_syntax_check_handle, S("john"), "handle: needs at least two labels", 0);
    expect_err(atp_syntax_check_handle, S(""), "handle: empty", 0);
    expect_err(atp_syntax_check_handle, atp_slice_make("jo\0hn.test", 10),
               "handle: invalid byte 0x00", 2);
    expect_err(atp_syntax_check_handle,
               S("b\xc3\xbc"
                 "cher.test"),
               "handle: invalid byte 0xc3", 1);
    T_TRUE(atp_syntax_is_handle(S("x.t")));
    T_TRUE(atp_syntax_is_handle(S("1.2.t0")));
    T_FALSE(atp_syntax_is_handle(atp_slice_make("john.test\0", 10)));
}

static void test_handle_normalize(void)
{
    char out[16];
    atp_err e;
    memset(out, '#', sizeof out);
    T_OKE(atp_syntax_normalize_handle(S("John.TEST"), out, sizeof out, &e), &e);
    T_STREQ(out, "john.test");
    T_OKE(atp_syntax_normalize_handle(S(out), out, sizeof out, &e), &e);
    T_STREQ(out, "john.test");
    /* 10 bytes are needed for 9 chars; out must stay untouched on error. */
    char small[9];
    memset(small, '#', sizeof small);
    T_EQ(atp_syntax_normalize_handle(S("john.test"), small, sizeof small, &e), ATP_ELIMIT);
    T_EQ(small[0], '#');
    T_EQ(atp_syntax_normalize_handle(S("John"), out, sizeof out, &e), ATP_EINVAL);
    T_EQ(atp_syntax_normalize_handle(S("ab.cd.ef.gh.ij.kl"), out, sizeof out, &e), ATP_ELIMIT);
    T_OKE(atp_syntax_normalize_handle(S("ab.cd.ef.gh.ij"), out, 15, &e), &e);
    T_STREQ(out, "ab.cd.ef.gh.ij");
}

static void test_handle_tld(void)
{
    static const char *const banned[] = {"a.alt",       "a.arpa",    "a.example",
                                         "a.internal",  "a.invalid", "a.local",
                                         "a.LOCALHOST", "a.b.Onion", "handle.invalid"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++) {
        T_TRUE(atp_syntax_is_handle(S(banned[i])));
        T_FALSE(atp_syntax_handle_tld_allowed(S(banned[i])));
    }
    T_TRUE(atp_syntax_handle_tld_allowed(S("alice.bsky.social")));
    T_TRUE(atp_syntax_handle_tld_allowed(S("alice.test")));
    T_TRUE(atp_syntax_handle_tld_allowed(S("local.com")));
    T_TRUE(atp_syntax_handle_tld_allowed(S("a.onions")));
    T_TRUE(atp_syntax_handle_tld_allowed(S("a.loca")));
    T_FALSE(atp_syntax_handle_tld_allowed(S("not a handle")));
    T_FALSE(atp_syntax_handle_tld_allowed(S("")));
}

static void test_did(void)
{
    T_TRUE(atp_syntax_is_did(make("did:m:", 'v', 2048 - 6, "")));
    expect_err(atp_syntax_check_did, make("did:m:", 'v', 2049 - 6, ""), "did: longer than 2048",
               2048);
    expect_err(atp_syntax_check_did, S("did:method:val:"), "did: ends with ':'", 14);
    expect_err(atp_syntax_check_did, S("did:METHOD:val"), "did method: invalid character 'M'", 4);
    expect_err(atp_syntax_check_did, S("did:m1:val"), "did method: invalid character '1'", 5);
    expect_err(atp_syntax_check_did, S("did:method:"), "did: empty identifier", 11);
    expect_err(atp_syntax_check_did, S("did:"), "did: missing ':'", 4);
    expect_err(atp_syntax_check_did, S("did::x"), "did method: invalid character ':'", 4);
    expect_err(atp_syntax_check_did, S("Did:m:v"), "did: must start with", 0);
    expect_err(atp_syntax_check_did, atp_slice_make("did:plc:ab\0cd", 13), "did: invalid byte", 10);
    T_TRUE(atp_syntax_is_did(S("did:plc:7iza6de2dwap2sbkpav7c6c6")));
    T_TRUE(atp_syntax_is_did(S("did:web:localhost%3A2583")));
}

static void test_nsid(void)
{
    /* 317 = 63 x 4 + 4 dots + 61-char name; the authority (255 chars) is over 253 on purpose. */
    char n[400];
    memset(n, 'a', sizeof n);
    n[63] = n[127] = n[191] = n[255] = '.';
    T_TRUE(atp_syntax_is_nsid(atp_slice_make(n, 317)));
    expect_err(atp_syntax_check_nsid, atp_slice_make(n, 318), "nsid: longer than 317", 317);
    T_TRUE(atp_syntax_is_nsid(make("com.example.", 'a', 63, "")));
    expect_err(atp_syntax_check_nsid, make("com.example.", 'a', 64, ""),
               "nsid: name segment is longer", 12);
    expect_err(atp_syntax_check_nsid, S("com.example.fooBar.2"), "nsid: name segment must", 19);
    expect_err(atp_syntax_check_nsid, S("com.example.foo-bar"), "nsid name: invalid character", 15);
    expect_err(atp_syntax_check_nsid, S("1com.example.foo"), "nsid: first segment", 0);
    expect_err(atp_syntax_check_nsid, S("com.example"), "nsid: needs at least three", 0);
    expect_err(atp_syntax_check_nsid, S("com.example."), "nsid: name segment is empty", 12);
    expect_err(atp_syntax_check_nsid, S("com.exa-.foo"), "nsid label 2 ends with '-'", 7);
    expect_err(atp_syntax_check_nsid, S(""), "nsid: needs", 0);
    expect_err(atp_syntax_check_nsid, atp_slice_make("com.ex\0.foo", 11), "nsid: invalid byte", 6);
    atp_slice s = S("app.bsky.feed.post");
    T_TRUE(atp_slice_eq_str(atp_syntax_nsid_authority(s), "app.bsky.feed"));
    T_TRUE(atp_slice_eq_str(atp_syntax_nsid_name(s), "post"));
    T_EQ(atp_syntax_nsid_authority(S("post")).len, 0);
    T_TRUE(atp_slice_eq_str(atp_syntax_nsid_name(S("post")), "post"));
}

static void test_tid_rkey(void)
{
    T_TRUE(atp_syntax_is_tid(S("3jzfcijpj2z2a")));
    T_TRUE(atp_syntax_is_tid(S("jzzzzzzzzzzzz")));
    expect_err(atp_syntax_check_tid, S("kzzzzzzzzzzzz"), "tid: first char 'k'", 0);
    expect_err(atp_syntax_check_tid, S("3jzfcijpj2z2"), "tid: must be 13 chars", 0);
    expect_err(atp_syntax_check_tid, S("3jzfcijpj2z2A"), "tid: invalid character 'A'", 12);
    expect_err(atp_syntax_check_tid, atp_slice_make("3jzfcij\0j2z2a", 13), "tid: invalid byte", 7);
    T_TRUE(atp_syntax_is_rkey(make("", 'o', 512, "")));
    expect_err(atp_syntax_check_rkey, make("", 'o', 513, ""), "record key: longer than 512", 512);
    expect_err(atp_syntax_check_rkey, S(""), "record key: empty", 0);
    expect_err(atp_syntax_check_rkey, S(".."), "record key: \".\" and", 0);
    expect_err(atp_syntax_check_rkey, S("a/b"), "record key: invalid character '/'", 1);
    expect_err(atp_syntax_check_rkey, atp_slice_make("a\0", 2), "record key: invalid byte 0x00", 1);
    T_TRUE(atp_syntax_is_rkey(S("...")));
    T_TRUE(atp_syntax_is_rkey(S("~")));
}

static void test_aturi(void)
{
    atp_aturi u;
    atp_err e;
    atp_slice s = S("at://did:plc:asdf123/com.atproto.feed.post/3jzfcijpj2z2a");
    T_OKE(atp_syntax_parse_aturi(s, &u, &e), &e);
    T_TRUE(atp_slice_eq_str(u.authority, "did:plc:asdf123"));
    T_TRUE(atp_slice_eq_str(u.collection, "com.atproto.feed.post"));
    T_TRUE(atp_slice_eq_str(u.rkey, "3jzfcijpj2z2a"));
    T_OKE(atp_syntax_parse_aturi(S("at://Alice.Test"), &u, &e), &e);
    T_TRUE(atp_slice_eq_str(u.authority, "Alice.Test"));
    T_TRUE(u.collection.ptr == NULL && u.collection.len == 0 && u.rkey.len == 0);
    T_OKE(atp_syntax_parse_aturi(S("at://alice.test/app.bsky.feed.post"), &u, &e), &e);
    T_TRUE(atp_slice_eq_str(u.collection, "app.bsky.feed.post"));
    T_TRUE(u.rkey.ptr == NULL);
    /* out stays untouched on failure */
    u.authority = S("sentinel");
    T_EQ(atp_syntax_parse_aturi(S("at://alice.test/"), &u, &e), ATP_EINVAL);
    T_TRUE(atp_slice_eq_str(u.authority, "sentinel"));
    expect_err(atp_syntax_check_aturi, S("at://alice.test/"), "at-uri: empty path segment", 16);
    expect_err(atp_syntax_check_aturi, S("at://a.test/a.b.c/k/x"), "at-uri: too many path", 19);
    expect_err(atp_syntax_check_aturi, S("at://a.test/a.b.c/k/"), "at-uri: too many path", 19);
    expect_err(atp_syntax_check_aturi, S("at://a.test/a.b/k"), "at-uri collection: nsid", 12);
    expect_err(atp_syntax_check_aturi, S("at://a.test/a.b.c/."), "at-uri record key:", 18);
    expect_err(atp_syntax_check_aturi, S("at://did:plc:x#frag"),
               "at-uri authority: did: invalid character '#'", 14);
    expect_err(atp_syntax_check_aturi, S("at://did:plc:x?q"),
               "at-uri authority: did: invalid character '?'", 14);
    expect_err(atp_syntax_check_aturi, S("at://"), "at-uri authority: handle: empty", 5);
    expect_err(atp_syntax_check_aturi, S("AT://a.test"), "at-uri: must start", 0);
    expect_err(atp_syntax_check_aturi, make("at://a.test/a.b.c/", 'o', 8192 - 18 + 1, ""),
               "at-uri: longer than 8192", 8192);
    T_TRUE(atp_syntax_is_aturi(make("at://a.test/a.b.c/", 'o', 512, "")));
    T_FALSE(atp_syntax_is_aturi(make("at://a.test/a.b.c/", 'o', 513, "")));
    T_FALSE(atp_syntax_is_aturi(atp_slice_make("at://a.test/a.b.c\0", 18)));
}

static void test_atidentifier(void)
{
    T_TRUE(atp_syntax_is_atidentifier(S("did:plc:abc")));
    T_TRUE(atp_syntax_is_atidentifier(S("alice.test")));
    expect_err(atp_syntax_check_atidentifier, S("did:plc:"), "did: empty identifier", 8);
    expect_err(atp_syntax_check_atidentifier, S("@alice.test"), "handle: invalid character '@'", 0);
}

static void expect_dt(const char *s, int64_t want)
{
    int64_t us = 12345;
    atp_err e;
    atp_err_clear(&e);
    int rc = atp_syntax_parse_datetime(S(s), &us, &e);
    if (rc != 0 || us != want) {
        T_FAILF("%s: rc %d (%s), got %" PRId64 " want %" PRId64, s, rc, e.msg, us, want);
    }
    t__checks++;
}

static void test_datetime_values(void)
{
    expect_dt("1970-01-01T00:00:00Z", 0);
    expect_dt("1970-01-01T00:00:00.000001Z", 1);
    expect_dt("1985-04-12T23:20:50.123Z", INT64_C(482196050123000));
    expect_dt("1985-04-12T23:20:50.1234569Z", INT64_C(482196050123456));
    expect_dt("1985-04-13T01:20:50.123+02:00", INT64_C(482196050123000));
    expect_dt("1985-04-12T16:20:50.123-07:00", INT64_C(482196050123000));
    expect_dt("1969-12-31T23:59:59.5Z", -500000);
    expect_dt("2024-02-29T00:00:00Z", INT64_C(1709164800000000));
    expect_dt("2000-02-29T00:00:00Z", INT64_C(951782400000000));
    expect_dt("0000-01-01T00:00:00Z", INT64_C(-62167219200000000));
    expect_dt("0000-01-01T00:00:00-01:00", INT64_C(-62167215600000000));
    expect_dt("9999-12-31T23:59:59.999999Z", INT64_C(253402300799999999));
    expect_dt("2024-01-01T00:00:00+23:59", INT64_C(1703980860000000));
}

static void test_datetime_errors(void)
{
    int64_t us = 7;
    atp_err e;
    T_EQ(atp_syntax_parse_datetime(S("1985-13-12T23:20:50Z"), &us, &e), ATP_EINVAL);
    T_EQ(us, 7);
    expect_err(atp_syntax_check_datetime, S("1985-13-12T23:20:50Z"),
               "datetime: month 13 out of range", 5);
    expect_err(atp_syntax_check_datetime, S("2023-02-29T00:00:00Z"), "datetime: day 29", 8);
    expect_err(atp_syntax_check_datetime, S("1900-02-29T00:00:00Z"), "datetime: day 29", 8);
    expect_err(atp_syntax_check_datetime, S("2023-04-31T00:00:00Z"), "datetime: day 31", 8);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T24:00:00Z"), "datetime: hour 24", 11);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:60:00Z"), "datetime: minute 60", 14);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:60Z"), "datetime: second 60", 17);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:59+24:00"),
               "datetime: timezone offset out of range", 19);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:59+00:60"),
               "datetime: timezone offset out of range", 19);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:59-00:00"), "datetime: \"-00:00\"",
               19);
    expect_err(atp_syntax_check_datetime, S("0000-01-01T00:00:00.5+00:01"),
               "datetime: the UTC year", 21);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:59.Z"), "datetime: '.' needs", 20);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:59"), "datetime: missing timezone",
               19);
    expect_err(atp_syntax_check_datetime, S("2023-04-30T23:59:59ZZ"), "datetime timezone:", 19);
    expect_err(atp_syntax_check_datetime, S("2023-04-30"), "datetime: too short", 10);
    expect_err(atp_syntax_check_datetime, S("2023-04-30t23:59:59Z"),
               "datetime: invalid character 't'", 10);
    expect_err(atp_syntax_check_datetime, atp_slice_make("2023-04-30T23:59:59\0", 20),
               "datetime timezone: invalid byte 0x00", 19);
    /* 64 chars exactly: 19 + '.' + 43 digits + 'Z'; one more digit is over. */
    T_TRUE(atp_syntax_is_datetime(make("2023-04-30T23:59:59.", '9', 43, "Z")));
    expect_err(atp_syntax_check_datetime, make("2023-04-30T23:59:59.", '9', 44, "Z"),
               "datetime: longer than 64", 64);
}

static void test_language(void)
{
    static const char *const good[] = {"en",
                                       "en-US",
                                       "zh-yue-HK",
                                       "zh-abc-def-ghi",
                                       "en-a-foo-b-bar",
                                       "x-whatever",
                                       "en-x-a-a",
                                       "I-DEFAULT",
                                       "EN-gb-OED",
                                       "de-1901-1996",
                                       "sl-Latn-IT-rozaj-biske-1994",
                                       "en-Latn-US-u-ca-gregory-x-aa",
                                       "abcdefgh",
                                       "en-us"};
    static const char *const bad[] = {
        "en-US-",         "zh-abc-def-ghi-jkl", "en-a",     "en-a-b",     "x",      "en-x",
        "abcdefghi",      "en-Latn-Cyrl",       "en-US-GB", "i",          "en--US", "en-123456789",
        "en-a-foo-A-bar", "en-1901-1901",       "Ja-JP",    "en-Latn-abc"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!atp_syntax_is_language(S(good[i]))) {
            T_FAILF("rejected %s", good[i]);
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (atp_syntax_is_language(S(bad[i]))) {
            T_FAILF("accepted %s", bad[i]);
        }
    }
    expect_err(atp_syntax_check_language, S("de-DE-1901-1901"), "language: repeated variant subtag",
               11);
    expect_err(atp_syntax_check_language, S("en-u-co-phonebk-U-ca-buddhist"),
               "language: repeated extension singleton 'u'", 16);
    expect_err(atp_syntax_check_language, S("JA"), "language: primary subtag", 0);
    expect_err(atp_syntax_check_language, atp_slice_make("en\0US", 5), "language: invalid byte", 2);
    /* 256 chars exactly: "x" + 51 x "-abcd"; one more char is over. */
    T_TRUE(atp_syntax_is_language(make("x", 'a', 0, "")) == false);
    char lang[300];
    lang[0] = 'x';
    for (size_t i = 0; i < 51; i++) {
        memcpy(lang + 1 + i * 5, "-abcd", 5);
    }
    T_TRUE(atp_syntax_is_language(atp_slice_make(lang, 256)));
    lang[256] = 'e';
    T_FALSE(atp_syntax_is_language(atp_slice_make(lang, 257)));
}

static void test_cid_uri(void)
{
    T_TRUE(atp_syntax_is_cid(make("", 'b', 8, "")));
    expect_err(atp_syntax_check_cid, make("", 'b', 7, ""), "cid: must be 8-256 chars", 0);
    T_TRUE(atp_syntax_is_cid(make("", 'b', 256, "")));
    expect_err(atp_syntax_check_cid, make("", 'b', 257, ""), "cid: must be 8-256 chars", 0);
    expect_err(atp_syntax_check_cid, S("QmbWqxBEKC3P8tqsKc98xmWN"), "cid: CIDv0", 0);
    expect_err(atp_syntax_check_cid, atp_slice_make("bafy\0abcdef", 11), "cid: invalid byte", 4);
    T_TRUE(atp_syntax_is_uri(make("https://a/", 'x', 8192 - 10, "")));
    expect_err(atp_syntax_check_uri, make("https://a/", 'x', 8193 - 10, ""),
               "uri: longer than 8192", 8192);
    expect_err(atp_syntax_check_uri, S("http:"), "uri: nothing after", 5);
    expect_err(atp_syntax_check_uri, S("1http://x"), "uri: scheme must start", 0);
    expect_err(atp_syntax_check_uri, S("example.com"), "uri: missing ':'", 11);
    expect_err(atp_syntax_check_uri, S("http://a b"), "uri: invalid character ' '", 8);
    expect_err(atp_syntax_check_uri, S("http://a\xc3\xa9"), "uri: invalid byte 0xc3", 8);
    expect_err(atp_syntax_check_uri, S(""), "uri: scheme must start", 0);
    T_TRUE(atp_syntax_is_uri(S("a+b-c.d:x")));
}

/* Inputs with every byte value must never be accepted by the ASCII-only formats unless the byte
 * is in their alphabet: a NUL or 0x80+ anywhere is a rejection. */
static void test_non_ascii_everywhere(void)
{
    static const check_fn fns[] = {
        atp_syntax_check_handle,   atp_syntax_check_did,         atp_syntax_check_nsid,
        atp_syntax_check_tid,      atp_syntax_check_rkey,        atp_syntax_check_aturi,
        atp_syntax_check_datetime, atp_syntax_check_language,    atp_syntax_check_cid,
        atp_syntax_check_uri,      atp_syntax_check_atidentifier};
    static const char *const ok[] = {"al.test",
                                     "did:p:abc",
                                     "a.b.c",
                                     "3jzfcijpj2z2a",
                                     "abc",
                                     "at://a.b/c.d.e/f",
                                     "2024-01-01T00:00:00Z",
                                     "en",
                                     "bafyabcdef",
                                     "a:b",
                                     "did:p:x"};
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        T_EQ(fns[k](S(ok[k]), NULL), 0);
        char buf[64];
        size_t n = strlen(ok[k]);
        memcpy(buf, ok[k], n);
        for (size_t pos = 0; pos < n; pos++) {
            static const uint8_t bytes[] = {0x00, 0x80, 0xc3, 0xff, ' '};
            for (size_t b = 0; b < sizeof bytes; b++) {
                char saved = buf[pos];
                buf[pos] = (char)bytes[b];
                if (fns[k](atp_slice_make(buf, n), NULL) != ATP_EINVAL) {
                    T_FAILF("kind %zu accepted byte 0x%02x at %zu", k, bytes[b], pos);
                }
                buf[pos] = saved;
            }
        }
    }
}

int main(void)
{
    T_RUN(test_interop_vectors);
    T_RUN(test_handle);
    T_RUN(test_handle_normalize);
    T_RUN(test_handle_tld);
    T_RUN(test_did);
    T_RUN(test_nsid);
    T_RUN(test_tid_rkey);
    T_RUN(test_aturi);
    T_RUN(test_atidentifier);
    T_RUN(test_datetime_values);
    T_RUN(test_datetime_errors);
    T_RUN(test_language);
    T_RUN(test_cid_uri);
    T_RUN(test_non_ascii_everywhere);
    return t_done();
}

/* test_cbor.c: the strict DAG-CBOR decoder, the canonical encoder, the writers and builders. */
#include <time.h>

#include "atp/cbor.h"
#include "atp/multibase.h"
#include "t.h"

/* ---- helpers ---- */

static int nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return (c | 0x20) - 'a' + 10;
}

/* Hex digits into out[cap]; spaces anywhere are ignored. */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *h; h++) {
        if (*h == ' ') {
            continue;
        }
        if (hi < 0) {
            hi = nibble(*h);
        } else if (n < cap) {
            out[n++] = (uint8_t)(hi * 16 + nibble(*h));
            hi = -1;
        }
    }
    return n;
}

/* A hex string with spaces allowed; the result lives until the next call. */
static atp_slice hex(const char *h)
{
    static uint8_t buf[4096];
    return atp_slice_make(buf, unhex(h, buf, sizeof buf));
}

static atp_arena *arena;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Decodes, checks that validate agrees and that re-encoding gives the input back. */
static const atp_cbor *check_valid(atp_slice in, int line)
{
    atp_cbor *v = NULL;
    atp_err err = {0};
    atp_buf out;
    int rc = atp_cbor_decode(arena, in, NULL, &v, &err);
    if (rc != 0) {
        T_FAILF("line %d: decode rc %d: %s (off %zu)", line, rc, err.msg, err.off);
        return NULL;
    }
    T_EQ(atp_cbor_validate(in, NULL, NULL), 0);
    atp_buf_init(&out, 0);
    atp_cbor_encode(&out, v);
    T_EQ(out.err, 0);
    T_MEMEQ(out.ptr, out.len, in.ptr, in.len);
    atp_buf_release(&out);
    return v;
}

static void check_invalid(atp_slice in, const atp_cbor_limits *lim, int code, int line)
{
    atp_cbor *v = NULL;
    atp_err err = {0}, verr = {0};
    int rc = atp_cbor_decode(arena, in, lim, &v, &err);
    int vrc = atp_cbor_validate(in, lim, &verr);
    t__checks++;
    if (rc != code || v != NULL) {
        T_FAILF("line %d: decode rc %d (%s), want %d", line, rc, err.msg, code);
    }
    if (vrc != code || verr.off != err.off) {
        T_FAILF("line %d: validate rc %d off %zu, decode off %zu", line, vrc, verr.off, err.off);
    }
    if (rc != 0 && err.msg[0] == '\0') {
        T_FAILF("line %d: no error message", line);
    }
}

#define VALID(h) check_valid(hex(h), __LINE__)
#define INVALID(h, code) check_invalid(hex(h), NULL, code, __LINE__)

static void encode_hex(const atp_cbor *v, char *dst, size_t cap)
{
    atp_buf b, h;
    atp_buf_init(&b, 0);
    atp_buf_init(&h, 0);
    atp_cbor_encode(&b, v);
    atp_hex_encode(&h, atp_buf_slice(&b));
    snprintf(dst, cap, "%.*s", (int)h.len, h.ptr ? (const char *)h.ptr : "");
    if (b.err) {
        snprintf(dst, cap, "err %d", b.err);
    }
    atp_buf_release(&b);
    atp_buf_release(&h);
}

/* ---- heads (data-model §2.1) ---- */

static void test_heads(void)
{
    static const struct {
        int64_t v;
        const char *hex;
    } cases[] = {
        {0, "00"},
        {23, "17"},
        {24, "1818"},
        {255, "18ff"},
        {256, "190100"},
        {65535, "19ffff"},
        {65536, "1a00010000"},
        {4294967295LL, "1affffffff"},
        {4294967296LL, "1b0000000100000000"},
        {INT64_MAX, "1b7fffffffffffffff"},
        {-1, "20"},
        {-24, "37"},
        {-25, "3818"},
        {-256, "38ff"},
        {-257, "390100"},
        {INT64_MIN, "3b7fffffffffffffff"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64];
        atp_cbor n = {.type = ATP_CBOR_INT, .u.i = cases[i].v};
        encode_hex(&n, got, sizeof got);
        T_STREQ(got, cases[i].hex);
        const atp_cbor *d = VALID(cases[i].hex);
        T_TRUE(d && d->type == ATP_CBOR_INT && d->u.i == cases[i].v);
    }
    /* Lengths and counts use the same heads. */
    atp_buf b;
    atp_buf_init(&b, 0);
    atp_cbor_put_head(&b, 2, 24);
    atp_cbor_put_head(&b, 3, 256);
    atp_cbor_put_head(&b, 4, 65536);
    atp_cbor_put_head(&b, 5, 4294967296ULL);
    atp_cbor_put_head(&b, 6, 42);
    atp_cbor_put_head(&b, 0, UINT64_MAX);
    atp_slice want = hex("5818 790100 9a00010000 bb0000000100000000 d82a 1bffffffffffffffff");
    T_MEMEQ(b.ptr, b.len, want.ptr, want.len);
    T_EQ(want.len, 30);
    atp_buf_release(&b);
}

/* ---- worked examples ---- */

static void test_hello_world(void)
{
    atp_cbor *m = atp_cbor_new_map(arena, 1);
    atp_cid cid;
    char s[ATP_CID_STR_MAX], got[128];
    m->u.map.pairs[0].key = ATP_SLICE_LIT("hello");
    m->u.map.pairs[0].val = *atp_cbor_new_string(arena, ATP_SLICE_LIT("world"));
    T_OK(atp_cbor_map_finish(m, NULL));
    encode_hex(m, got, sizeof got);
    T_STREQ(got, "a16568656c6c6f65776f726c64");
    const atp_cbor *d = VALID("a16568656c6c6f65776f726c64");
    T_TRUE(d && d->type == ATP_CBOR_MAP && d->u.map.n == 1);
    const atp_cbor *w = atp_cbor_map_get_str(d, "hello");
    T_TRUE(w && w->type == ATP_CBOR_STRING && atp_slice_eq_str(w->u.str, "world"));
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, hex("a16568656c6c6f65776f726c64"));
    T_TRUE(atp_cid_format_to(&cid, s, sizeof s) > 0);
    T_STREQ(s, "bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae");
    /* The §2.3 example: {"bb":2,"c":3,"a":1} -> a, c, bb. */
    atp_cbor *o = atp_cbor_new_map(arena, 3);
    const char *keys[] = {"bb", "c", "a"};
    for (int i = 0; i < 3; i++) {
        o->u.map.pairs[i].key = atp_slice_str(keys[i]);
        o->u.map.pairs[i].val = *atp_cbor_new_int(arena, i == 0 ? 2 : i == 1 ? 3 : 1);
    }
    T_OK(atp_cbor_map_finish(o, NULL));
    encode_hex(o, got, sizeof got);
    T_STREQ(got, "a3616101616303626262" "02");
}

static const char blob_hex[] =
    "a4 63726566 d82a5825 0001551220b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efc"
    "de9 6473697a65 0b 652474797065 64626c6f62 686d696d6554797065 6a746578742f706c61696e";

static void test_blob_example(void)
{
    atp_cid cid, back;
    char s[ATP_CID_STR_MAX], got[256], want[256];
    atp_cbor *m = atp_cbor_new_map(arena, 4);
    atp_cid_compute(&cid, ATP_CODEC_RAW, ATP_SLICE_LIT("hello world"));
    T_TRUE(atp_cid_format_to(&cid, s, sizeof s) > 0);
    T_STREQ(s, "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e");
    m->u.map.pairs[0].key = ATP_SLICE_LIT("$type");
    m->u.map.pairs[0].val = *atp_cbor_new_string(arena, ATP_SLICE_LIT("blob"));
    m->u.map.pairs[1].key = ATP_SLICE_LIT("ref");
    m->u.map.pairs[1].val = *atp_cbor_new_link(arena, &cid);
    m->u.map.pairs[2].key = ATP_SLICE_LIT("mimeType");
    m->u.map.pairs[2].val = *atp_cbor_new_string(arena, ATP_SLICE_LIT("text/plain"));
    m->u.map.pairs[3].key = ATP_SLICE_LIT("size");
    m->u.map.pairs[3].val = *atp_cbor_new_int(arena, 11);
    T_OK(atp_cbor_map_finish(m, NULL));
    encode_hex(m, got, sizeof got);
    size_t k = 0;
    for (const char *p = blob_hex; *p; p++) {
        if (*p != ' ') {
            want[k++] = *p;
        }
    }
    want[k] = '\0';
    T_STREQ(got, want);
    const atp_cbor *d = VALID(blob_hex);
    T_OK(atp_cbor_get_cid(atp_cbor_map_get_str(d, "ref"), &back));
    T_TRUE(atp_cid_eq(&back, &cid));
    T_EQ(atp_cbor_get_cid(atp_cbor_map_get_str(d, "size"), &back), ATP_EINVAL);
    T_EQ(atp_cbor_get_cid(NULL, &back), ATP_EINVAL);
}

/* ---- key order (data-model §2.3) ---- */

static void check_order(const char *const *want, size_t n)
{
    atp_cbor *m = atp_cbor_new_map(arena, n);
    /* Fill in reverse, then a rotation, so that sorting has work to do. */
    for (size_t i = 0; i < n; i++) {
        m->u.map.pairs[i].key = atp_slice_str(want[(n - 1 - i + n / 2) % n]);
        m->u.map.pairs[i].val.type = ATP_CBOR_NULL;
    }
    T_OK(atp_cbor_map_finish(m, NULL));
    for (size_t i = 0; i < n; i++) {
        T_TRUE(atp_slice_eq_str(m->u.map.pairs[i].key, want[i]));
    }
    for (size_t i = 0; i < n; i++) {
        const atp_cbor *v = atp_cbor_map_get_str(m, want[i]);
        T_TRUE(v == &m->u.map.pairs[i].val);
    }
    T_TRUE(atp_cbor_map_get_str(m, "zzzzzzzzzz") == NULL);
    atp_buf b;
    atp_buf_init(&b, 0);
    atp_cbor_encode(&b, m);
    T_EQ(b.err, 0);
    check_valid(atp_buf_slice(&b), __LINE__);
    atp_buf_release(&b);
}

#define ORDER(...)                                                                                 \
    do {                                                                                           \
        static const char *const k_[] = {__VA_ARGS__};                                             \
        check_order(k_, sizeof k_ / sizeof k_[0]);                                                 \
    } while (0)

static void test_key_order(void)
{
    ORDER("a", "c", "bb");
    ORDER("did", "rev", "sig", "data", "prev", "version");
    ORDER("e", "l");
    ORDER("k", "p", "t", "v");
    ORDER("roots", "version");
    ORDER("ref", "size", "$type", "mimeType");
    ORDER("t", "op");
    ORDER("sig", "prev", "type", "services", "alsoKnownAs", "rotationKeys",
          "verificationMethods");
    ORDER("cid", "cts", "exp", "neg", "sig", "src", "uri", "val", "ver");
    ORDER("ops", "rev", "seq", "repo", "time", "blobs", "since", "blocks", "commit", "rebase",
          "tooBig", "prevData");
    /* Bytes compare unsigned; the empty key sorts first. */
    ORDER("", "Z", "a", "\x7f", "aa", "\xc3\xa9");
    T_TRUE(atp_cbor_key_cmp(ATP_SLICE_LIT("b"), ATP_SLICE_LIT("aa")) < 0);
    T_TRUE(atp_cbor_key_cmp(ATP_SLICE_LIT("ab"), ATP_SLICE_LIT("aa")) > 0);
    T_EQ(atp_cbor_key_cmp(ATP_SLICE_LIT("ab"), ATP_SLICE_LIT("ab")), 0);
    /* Duplicates are refused by the builder. */
    atp_cbor *m = atp_cbor_new_map(arena, 3);
    atp_err err = {0};
    m->u.map.pairs[0].key = ATP_SLICE_LIT("x");
    m->u.map.pairs[1].key = ATP_SLICE_LIT("y");
    m->u.map.pairs[2].key = ATP_SLICE_LIT("x");
    T_EQ(atp_cbor_map_finish(m, &err), ATP_EINVAL);
    T_TRUE(strstr(err.msg, "duplicate") != NULL);
    T_EQ(atp_cbor_map_finish(atp_cbor_new_array(arena, 0), NULL), ATP_EINVAL);
    T_EQ(atp_cbor_map_finish(atp_cbor_new_map(arena, 0), NULL), 0);
}

/* ---- valid encodings of every kind ---- */

#define DIGEST "65062a5a5a00fc16d73c6944237ccbc15b1c4a7234489336891d091741a239d0"
#define CID36 "0001711220" DIGEST
#define ZERO32 "0000000000000000000000000000000000000000000000000000000000000000"

static void test_valid_kinds(void)
{
    const atp_cbor *v;
    VALID("f4");
    VALID("f5");
    VALID("f6");
    VALID("40");
    VALID("60");
    VALID("80");
    VALID("a0");
    VALID("4401020304");
    VALID("6449c3b17a"); /* "Iñz" */
    VALID("64f09f9880");  /* U+1F600 */
    VALID("63efbfbf");    /* U+FFFF */
    VALID("64f48fbfbf");  /* U+10FFFF */
    VALID("63ed9fbf");    /* U+D7FF, just below the surrogates */
    VALID("63ee8080");    /* U+E000, just above */
    VALID("7818" "616161616161616161616161616161616161616161616161");
    VALID("8301820203a0");
    v = VALID("d82a5825" CID36);
    T_TRUE(v && v->type == ATP_CBOR_LINK && v->u.link.len == 36);
    /* A link to a non-blessed CID (raw codec, sha2-512 of 64 bytes) is still a link. */
    VALID("d82a5845 0001551340" ZERO32 ZERO32);
    v = VALID("a2616101616282f5f6");
    T_TRUE(v && v->u.map.n == 2 && v->u.map.pairs[1].val.type == ATP_CBOR_ARRAY);
    /* Nesting up to max_depth. */
    char deep[200];
    for (int i = 0; i < 32; i++) {
        memcpy(deep + 2 * i, "81", 2);
    }
    memcpy(deep + 64, "00", 3);
    VALID(deep);
}

/* ---- every rejection rule ---- */

static void test_reject_floats_simple(void)
{
    INVALID("f93c00", ATP_EINVAL);
    INVALID("fa3f800000", ATP_EINVAL);
    INVALID("fb3ff0000000000000", ATP_EINVAL);
    INVALID("fb7ff8000000000000", ATP_EINVAL); /* NaN */
    INVALID("f7", ATP_EINVAL);                 /* undefined */
    INVALID("e0", ATP_EINVAL);                 /* simple 0 */
    INVALID("f3", ATP_EINVAL);                 /* simple 19 */
    INVALID("f820", ATP_EINVAL);               /* two-byte simple */
    INVALID("f814", ATP_EINVAL);               /* false spelled in two bytes */
    INVALID("fc", ATP_EINVAL);
    INVALID("fd", ATP_EINVAL);
    INVALID("fe", ATP_EINVAL);
    INVALID("ff", ATP_EINVAL); /* a lone break */
    INVALID("8201f93c00", ATP_EINVAL);
}

static void test_reject_indefinite(void)
{
    INVALID("5f4101ff", ATP_EINVAL);
    INVALID("7f6161ff", ATP_EINVAL);
    INVALID("9f01ff", ATP_EINVAL);
    INVALID("9fff", ATP_EINVAL);
    INVALID("bf616101ff", ATP_EINVAL);
    INVALID("1f", ATP_EINVAL);
    INVALID("3f", ATP_EINVAL);
    INVALID("df", ATP_EINVAL);
    INVALID("8101ff", ATP_EINVAL); /* a break after a complete item is a trailing byte */
}

static void test_reject_non_shortest(void)
{
    INVALID("1800", ATP_EINVAL);
    INVALID("1817", ATP_EINVAL);
    INVALID("190000", ATP_EINVAL);
    INVALID("1900ff", ATP_EINVAL);
    INVALID("1a0000ffff", ATP_EINVAL);
    INVALID("1b00000000ffffffff", ATP_EINVAL);
    INVALID("3817", ATP_EINVAL);
    INVALID("3900ff", ATP_EINVAL);
    INVALID("3a0000ffff", ATP_EINVAL);
    INVALID("3b00000000ffffffff", ATP_EINVAL);
    INVALID("580100", ATP_EINVAL);
    INVALID("78016161", ATP_EINVAL);
    INVALID("790001" "61", ATP_EINVAL);
    INVALID("980100", ATP_EINVAL);
    INVALID("9a0000000100", ATP_EINVAL);
    INVALID("b80161610 1", ATP_EINVAL);
    INVALID("b9000161610 1", ATP_EINVAL);
    INVALID("d9002a5825" CID36, ATP_EINVAL); /* tag 42 in a 2-byte head */
    INVALID("d82a590025" CID36, ATP_EINVAL); /* link bytes with a long length head */
    INVALID("a1780161 01", ATP_EINVAL);      /* key length in a long head */
    INVALID("1c", ATP_EINVAL);               /* reserved additional info */
    INVALID("1d", ATP_EINVAL);
    INVALID("5e", ATP_EINVAL);
    INVALID("9c", ATP_EINVAL);
}

static void test_reject_maps(void)
{
    INVALID("a2616201616102", ATP_EINVAL);     /* "b" before "a" */
    INVALID("a2626262016161 02", ATP_EINVAL);  /* "bb" before "a": length comes first */
    INVALID("a2616101616102", ATP_EINVAL);     /* duplicate */
    INVALID("a3616101616202616102", ATP_EINVAL);
    INVALID("a10102", ATP_EINVAL);             /* integer key */
    INVALID("a1416101", ATP_EINVAL);           /* byte-string key */
    INVALID("a1f601", ATP_EINVAL);             /* null key */
    INVALID("a1800 1", ATP_EINVAL);            /* array key */
    INVALID("a1d82a5825" CID36 "01", ATP_EINVAL);
    INVALID("a162c0af01", ATP_EINVAL);         /* key with invalid UTF-8 */
    /* Error offsets point at the offending key. */
    atp_err err = {0};
    atp_cbor *v;
    T_EQ(atp_cbor_decode(arena, hex("a2616101616102"), NULL, &v, &err), ATP_EINVAL);
    T_EQ(err.off, 4);
    T_TRUE(strstr(err.msg, "duplicate") != NULL);
    T_EQ(atp_cbor_decode(arena, hex("a2616201616102"), NULL, &v, &err), ATP_EINVAL);
    T_EQ(err.off, 4);
    T_TRUE(strstr(err.msg, "order") != NULL);
}

static void test_reject_tags(void)
{
    INVALID("c000", ATP_EINVAL);           /* tag 0 */
    INVALID("c11a5f000000", ATP_EINVAL);   /* tag 1 */
    INVALID("d7 00", ATP_EINVAL);          /* tag 23 */
    INVALID("d82b40", ATP_EINVAL);         /* tag 43 */
    INVALID("d8294100", ATP_EINVAL);       /* tag 41 */
    INVALID("d9ffff00", ATP_EINVAL);
    INVALID("d82a6161", ATP_EINVAL);       /* over text */
    INVALID("d82a00", ATP_EINVAL);         /* over an integer */
    INVALID("d82a80", ATP_EINVAL);         /* over an array */
    INVALID("d82ad82a5825" CID36, ATP_EINVAL);
    INVALID("d82a40", ATP_EINVAL);         /* empty */
    INVALID("d82a4100", ATP_EINVAL);       /* only the prefix */
    INVALID("d82a5824" "01711220" DIGEST, ATP_EINVAL);      /* no 0x00 prefix */
    INVALID("d82a5825" "01" "01711220" DIGEST, ATP_EINVAL); /* prefix 0x01 */
    INVALID("d82a5826" CID36 "00", ATP_EINVAL); /* a byte after the CID */
    INVALID("d82a5824" "0001711220" "65062a5a5a00fc16d73c6944237ccbc15b1c4a7234489336891d091741a239",
            ATP_EINVAL); /* digest one byte short */
    INVALID("d82a4400011220", ATP_EINVAL); /* digest missing */
    INVALID("d82a5823" "00" "1220" DIGEST, ATP_EINVAL); /* CIDv0 (bare multihash) */
    INVALID("d82a4400020000", ATP_EINVAL); /* CID version 2 */
    INVALID("d82a5f4100ff", ATP_EINVAL);   /* indefinite byte string */
    atp_err err = {0};
    atp_cbor *v;
    T_EQ(atp_cbor_decode(arena, hex("8201d82a40"), NULL, &v, &err), ATP_EINVAL);
    T_EQ(err.off, 4);
}

static void test_reject_ints(void)
{
    VALID("1b7fffffffffffffff");
    VALID("3b7fffffffffffffff");
    INVALID("1b8000000000000000", ATP_EINVAL);
    INVALID("1bffffffffffffffff", ATP_EINVAL);
    INVALID("3b8000000000000000", ATP_EINVAL);
    INVALID("3bffffffffffffffff", ATP_EINVAL);
}

static void test_reject_utf8(void)
{
    INVALID("61 80", ATP_EINVAL);         /* lone continuation */
    INVALID("61 bf", ATP_EINVAL);
    INVALID("61 c2", ATP_EINVAL);         /* truncated 2-byte */
    INVALID("62 c080", ATP_EINVAL);       /* overlong NUL */
    INVALID("62 c1bf", ATP_EINVAL);       /* overlong */
    INVALID("62 c241", ATP_EINVAL);       /* bad continuation */
    INVALID("63 e08080", ATP_EINVAL);     /* overlong 3-byte */
    INVALID("63 e09fbf", ATP_EINVAL);
    INVALID("63 eda080", ATP_EINVAL);     /* U+D800 */
    INVALID("63 edbfbf", ATP_EINVAL);     /* U+DFFF */
    INVALID("62 e282", ATP_EINVAL);       /* truncated 3-byte */
    INVALID("63 e282 41", ATP_EINVAL);
    INVALID("64 f0808080", ATP_EINVAL);   /* overlong 4-byte */
    INVALID("64 f08fbfbf", ATP_EINVAL);
    INVALID("64 f4908080", ATP_EINVAL);   /* U+110000 */
    INVALID("64 f5808080", ATP_EINVAL);
    INVALID("63 f09f98", ATP_EINVAL);     /* truncated 4-byte */
    INVALID("65 f888808080", ATP_EINVAL); /* 5-byte form */
    INVALID("61 fe", ATP_EINVAL);
    INVALID("61 ff", ATP_EINVAL);
    /* Past the 8-byte ASCII fast path too. */
    INVALID("6a 41424344454647484980", ATP_EINVAL);
    INVALID("71 4142434445464748494a4b4c4d4e4f5051 ed", ATP_EINVAL);
    /* Byte strings are not text: anything goes. */
    VALID("44 c080eda0");
    T_TRUE(atp_cbor_is_utf8(ATP_SLICE_LIT("")));
    T_TRUE(atp_cbor_is_utf8(ATP_SLICE_LIT("plain ascii text, longer than eight bytes")));
    T_TRUE(atp_cbor_is_utf8(ATP_SLICE_LIT("a~\xc3\xb6\xc3\xb1\xc2\xa9\xe2\xbd\x98\xe2\x98\x8e"
                                          "\xf0\x93\x8b\x93\xf0\x9f\x98\x80")));
    T_FALSE(atp_cbor_is_utf8(ATP_SLICE_LIT("abcdefgh\xed\xa0\x80")));
}

/* A plain decode-to-code-point validator to hold the DFA against. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], min;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, c &= 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, c &= 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, c &= 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            c = (c << 6) | (s[i + k] & 0x3fu);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

/* Every 1-, 2- and 3-byte string (the 2-byte ones also inside ASCII, so that the 8-byte fast
 * path meets them at every alignment), and random 4- to 6-byte strings. */
static void test_utf8_exhaustive(void)
{
    uint8_t buf[16];
    long bad = 0, n = 0;
    for (uint32_t v = 0; v < (1u << 24); v++) {
        size_t len = v < 256 ? 1 : v < 65536 ? 2 : 3;
        for (size_t k = 0; k < len; k++) {
            buf[k] = (uint8_t)(v >> (8 * (len - 1 - k)));
        }
        if (len == 3 && buf[0] < 0xc0) {
            continue; /* a leading ASCII or continuation byte adds nothing new */
        }
        bad += atp_cbor_is_utf8(atp_slice_make(buf, len)) != ref_utf8(buf, len);
        n++;
        if (len == 2) {
            for (size_t pad = 0; pad < 9; pad++) {
                memset(buf, 'a', sizeof buf);
                buf[pad] = (uint8_t)(v >> 8);
                buf[pad + 1] = (uint8_t)v;
                bad += atp_cbor_is_utf8(atp_slice_make(buf, 12)) != ref_utf8(buf, 12);
                n++;
            }
        }
    }
    for (int i = 0; i < 2000000; i++) {
        uint64_t r = rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = 4 + (size_t)(r >> 62 & 1) + (size_t)(r >> 61 & 1);
        for (size_t k = 0; k < len; k++) {
            /* Mostly high bytes, where the interesting cases are. */
            buf[k] = (uint8_t)(0x80 | (r >> (8 * k)));
        }
        bad += atp_cbor_is_utf8(atp_slice_make(buf, len)) != ref_utf8(buf, len);
        n++;
    }
    T_EQ(bad, 0);
    t_vectors("UTF-8 strings against the reference", (int)n);
}

/* Appends one random character (or, with `junk`, one random byte) at b[n]; returns the new n. */
static size_t put_random_char(uint8_t *b, size_t n, uint64_t r, bool junk)
{
    static const uint32_t edges[] = {0x0, 0x7f, 0x80, 0x7ff, 0x800, 0xfff, 0x1000, 0xd7ff,
                                     0xe000, 0xffff, 0x10000, 0x3ffff, 0x40000, 0x10ffff};
    uint32_t c = (uint32_t)(r >> 8) & 0x1fffff;
    if (junk) {
        b[n] = (uint8_t)(r >> 40);
        return n + 1;
    }
    switch (r & 7) {
    case 0: case 1: case 2: c &= 0x7f; break;
    case 3: c = 0x80 + c % 0x780; break;
    case 4: c = 0x800 + c % 0xf800; break;
    case 5: c = 0x10000 + c % 0x100000; break;
    default: c = edges[(r >> 32) % (sizeof edges / sizeof edges[0])]; break;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
        c = 0xfffd;
    }
    if (c < 0x80) {
        b[n++] = (uint8_t)c;
    } else if (c < 0x800) {
        b[n++] = (uint8_t)(0xc0 | c >> 6);
        b[n++] = (uint8_t)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        b[n++] = (uint8_t)(0xe0 | c >> 12);
        b[n++] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
        b[n++] = (uint8_t)(0x80 | (c & 0x3f));
    } else {
        b[n++] = (uint8_t)(0xf0 | c >> 18);
        b[n++] = (uint8_t)(0x80 | (c >> 12 & 0x3f));
        b[n++] = (uint8_t)(0x80 | (c >> 6 & 0x3f));
        b[n++] = (uint8_t)(0x80 | (c & 0x3f));
    }
    return n;
}

static uint64_t rng_next(void)
{
    return rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
}

/* Long mixed-script strings, valid and with rare junk bytes, against the reference: the
 * validator splits runs of 32+ bytes into two chains at a character boundary, so lengths go
 * well past that. Each string is also decoded as a text item that ends the input exactly, and
 * inside an array followed by more bytes, so the short-string word loads see both cases. */
static void test_utf8_long_mixed(void)
{
    uint8_t s[300], item[320];
    long bad = 0, n = 0, valid = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = 0, want = (size_t)(rng_next() >> 33) % 260;
        bool ok;
        while (len < want) {
            uint64_t r = rng_next();
            len = put_random_char(s, len, r, (r >> 56) < 2);
        }
        ok = ref_utf8(s, len);
        valid += ok;
        bad += atp_cbor_is_utf8(atp_slice_make(s, len)) != ok;
        {
            /* [text, null], with the shortest head for the length. */
            size_t hl = len < 24 ? 1 : len < 256 ? 2 : 3, tot = 1 + hl + len + 1;
            item[0] = 0x82;
            item[1] = (uint8_t)(len < 24 ? 0x60 | len : len < 256 ? 0x78 : 0x79);
            item[2] = (uint8_t)(len < 256 ? len : len >> 8);
            item[3] = (uint8_t)len;
            memcpy(item + 1 + hl, s, len);
            item[1 + hl + len] = 0xf6;
            bad += (atp_cbor_validate(atp_slice_make(item, tot), NULL, NULL) == 0) != ok;
            bad += (atp_cbor_validate(atp_slice_make(item + 1, tot - 2), NULL, NULL) == 0) != ok;
        }
        n++;
    }
    T_EQ(bad, 0);
    T_TRUE(valid > n / 10 && valid < n - n / 10); /* both outcomes are well represented */
    t_vectors("long mixed UTF-8 strings against the reference", (int)n);
}

/* Runs of continuation bytes across the middle of a long string, where the second chain starts:
 * 1-3 after a lead byte are fine, a 4th is not, and a lone lead or a run with no lead is not. */
static void test_utf8_split_point(void)
{
    uint8_t s[64];
    for (size_t mid = 28; mid < 36; mid++) {
        memset(s, 'a', sizeof s);
        memcpy(s + mid, "\xf0\x9f\x98\x80", 4);
        T_TRUE(atp_cbor_is_utf8(atp_slice_make(s, sizeof s)));
        memcpy(s + mid, "\xf0\x9f\x98\x80\x80", 5);
        T_FALSE(atp_cbor_is_utf8(atp_slice_make(s, sizeof s)));
        memset(s, 'a', sizeof s);
        memcpy(s + mid, "\x80\x80\x80\x80", 4);
        T_FALSE(atp_cbor_is_utf8(atp_slice_make(s, sizeof s)));
        memset(s, 'a', sizeof s);
        memcpy(s + mid, "\xe2\x82", 2);
        T_FALSE(atp_cbor_is_utf8(atp_slice_make(s, sizeof s)));
    }
    memset(s, 0xbf, sizeof s);
    s[0] = 0xc3;
    T_FALSE(atp_cbor_is_utf8(atp_slice_make(s, sizeof s)));
}

/* Short strings checked with one masked word load: the bytes after the string must not count. */
static void test_short_text_window(void)
{
    VALID("85 6141 62c3a9 6141 6141 6141");     /* "A" with "é" in the 8 bytes after it */
    VALID("83 a1 6161 f6 a1 6162 f6 62c3a9");  /* keys followed by non-ASCII */
    VALID("62 c3a9");                            /* at the very end of the input */
    INVALID("83 67 41414141414180 6141 6141", ATP_EINVAL);
    INVALID("82 a1 6780414141414141 f6 6141", ATP_EINVAL);
    INVALID("61 80", ATP_EINVAL);
    /* Equal-length keys are compared bytewise, different lengths by length alone. */
    VALID("a3 6162 f6 626161 f6 626162 f6");
    INVALID("a3 6162 f6 626162 f6 626161 f6", ATP_EINVAL);
    INVALID("a2 626161 f6 6162 f6", ATP_EINVAL);
    INVALID("a2 60 f6 60 f6", ATP_EINVAL);
}

static void test_reject_trailing_truncated(void)
{
    atp_cbor *v = NULL;
    INVALID("0000", ATP_EINVAL);
    INVALID("f6f6", ATP_EINVAL);
    INVALID("a0ff", ATP_EINVAL);
    INVALID("", ATP_ETRUNC);
    INVALID("18", ATP_ETRUNC);
    INVALID("1901", ATP_ETRUNC);
    INVALID("1a000100", ATP_ETRUNC);
    INVALID("1b00000001000000", ATP_ETRUNC);
    INVALID("6261", ATP_ETRUNC);
    INVALID("4301 02", ATP_ETRUNC);
    INVALID("8201", ATP_ETRUNC);
    INVALID("a16161", ATP_ETRUNC);
    INVALID("a1", ATP_ETRUNC);
    INVALID("a2616101", ATP_ETRUNC);
    INVALID("d8", ATP_ETRUNC);
    INVALID("d82a", ATP_ETRUNC);
    INVALID("d82a58", ATP_ETRUNC);
    INVALID("d82a5825 0001", ATP_ETRUNC);
    /* A count larger than the bytes left fails before any allocation. */
    atp_cbor_limits big = atp_cbor_limits_default;
    big.max_items = SIZE_MAX;
    big.max_total = SIZE_MAX;
    check_invalid(hex("9b0000000100000000"), &big, ATP_ETRUNC, __LINE__);
    check_invalid(hex("bb0000000100000000"), &big, ATP_ETRUNC, __LINE__);
    check_invalid(hex("5b0000000100000000"), &big, ATP_ETRUNC, __LINE__);
    check_invalid(hex("9affffffff"), &big, ATP_ETRUNC, __LINE__);
    check_invalid(hex("9b7fffffffffffffff"), &big, ATP_ETRUNC, __LINE__);
    check_invalid(hex("5bffffffffffffffff"), &big, ATP_ETRUNC, __LINE__);
    check_invalid(hex("a2 6161 01"), &big, ATP_ETRUNC, __LINE__);
    /* NULL input. */
    T_EQ(atp_cbor_decode(arena, atp_slice_make(NULL, 0), NULL, &v, NULL), ATP_ETRUNC);
    T_EQ(atp_cbor_validate(atp_slice_make(NULL, 0), NULL, NULL), ATP_ETRUNC);
    T_TRUE(v == NULL);
}

static void test_limits(void)
{
    atp_cbor_limits l = atp_cbor_limits_default;
    char deep[200];
    atp_cbor *v = NULL;
    for (int i = 0; i < 33; i++) {
        memcpy(deep + 2 * i, "81", 2);
    }
    memcpy(deep + 66, "00", 3);
    INVALID(deep, ATP_EDEPTH);
    INVALID("9a00020001", ATP_ELIMIT); /* 131073 items > default */
    l.max_depth = 1;
    check_invalid(hex("8180"), &l, ATP_EDEPTH, __LINE__);
    check_invalid(hex("81a0"), &l, ATP_EDEPTH, __LINE__);
    T_OK(atp_cbor_validate(hex("8100"), &l, NULL));
    l.max_depth = 0;
    T_OK(atp_cbor_validate(hex("00"), &l, NULL));
    check_invalid(hex("80"), &l, ATP_EDEPTH, __LINE__);
    l = atp_cbor_limits_default;
    l.max_items = 2;
    T_OK(atp_cbor_validate(hex("820102"), &l, NULL));
    check_invalid(hex("83010203"), &l, ATP_ELIMIT, __LINE__);
    check_invalid(hex("a3616101616202616303"), &l, ATP_ELIMIT, __LINE__);
    l = atp_cbor_limits_default;
    l.max_key = 2;
    T_OK(atp_cbor_validate(hex("a1626162f6"), &l, NULL));
    check_invalid(hex("a163616263f6"), &l, ATP_ELIMIT, __LINE__);
    l = atp_cbor_limits_default;
    l.max_total = 4; /* root + 3 */
    T_OK(atp_cbor_validate(hex("83010203"), &l, NULL));
    T_OK(atp_cbor_validate(hex("820181 02"), &l, NULL));
    check_invalid(hex("8401020304"), &l, ATP_ELIMIT, __LINE__);
    check_invalid(hex("82018202 03"), &l, ATP_ELIMIT, __LINE__);
    l = atp_cbor_limits_default;
    l.max_len = 3;
    T_OK(atp_cbor_validate(hex("820102"), &l, NULL));
    check_invalid(hex("83010203"), &l, ATP_ELIMIT, __LINE__);
    /* decode_prefix: an item inside max_len is fine even if more input follows; one that runs
     * past it is a limit error, not a truncation. */
    size_t used = 0;
    T_OK(atp_cbor_decode_prefix(arena, hex("820102 f6"), &l, &v, &used, NULL));
    T_EQ(used, 3);
    atp_err err = {0};
    T_EQ(atp_cbor_decode_prefix(arena, hex("83010203"), &l, &v, &used, &err), ATP_ELIMIT);
}

static void test_prefix(void)
{
    atp_cbor *v = NULL;
    size_t used = 0;
    atp_slice in = hex("a2617401626f70 01 a1616101");
    T_OK(atp_cbor_decode_prefix(arena, in, NULL, &v, &used, NULL));
    T_EQ(used, 8);
    T_TRUE(v->type == ATP_CBOR_MAP && v->u.map.n == 2);
    T_OK(atp_cbor_decode_prefix(arena, atp_slice_sub(in, used, SIZE_MAX), NULL, &v, &used, NULL));
    T_EQ(used, 4);
    T_EQ(atp_cbor_decode(arena, in, NULL, &v, NULL), ATP_EINVAL);
    atp_err err = {0};
    T_EQ(atp_cbor_validate(in, NULL, &err), ATP_EINVAL);
    T_EQ(err.off, 8);
}

/* ---- encoder and writers ---- */

static void test_encoder_rejects(void)
{
    atp_buf b;
    atp_cbor *m = atp_cbor_new_map(arena, 2);
    atp_buf_init(&b, 0);
    m->u.map.pairs[0].key = ATP_SLICE_LIT("b");
    m->u.map.pairs[1].key = ATP_SLICE_LIT("a");
    atp_cbor_encode(&b, m);
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_reset(&b);
    m->u.map.pairs[0].key = ATP_SLICE_LIT("a");
    atp_cbor_encode(&b, m);
    T_EQ(b.err, ATP_EINVAL); /* duplicate */
    atp_buf_reset(&b);
    m->u.map.pairs[1].key = ATP_SLICE_LIT("\xff");
    atp_cbor_encode(&b, m);
    T_EQ(b.err, ATP_EINVAL); /* key not UTF-8 */
    atp_buf_reset(&b);
    atp_cbor_encode(&b, atp_cbor_new_string(arena, ATP_SLICE_LIT("\xed\xa0\x80")));
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_reset(&b);
    atp_cbor_encode(&b, atp_cbor_new_bytes(arena, ATP_SLICE_LIT("\xed\xa0\x80")));
    T_EQ(b.err, 0);
    atp_buf_reset(&b);
    atp_cbor bad = {.type = ATP_CBOR_LINK};
    atp_cbor_encode(&b, &bad);
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_release(&b);
    /* The buffer's max is honoured exactly. */
    atp_buf_init(&b, 3);
    atp_cbor_put_int(&b, 1000);
    T_EQ(b.err, 0);
    T_EQ(b.len, 3);
    atp_cbor_put_null(&b);
    T_EQ(b.err, ATP_ELIMIT);
    atp_buf_release(&b);
}

static void test_writers(void)
{
    atp_buf b;
    atp_cid cid;
    atp_buf_init(&b, 0);
    atp_cid_compute(&cid, ATP_CODEC_RAW, ATP_SLICE_LIT("hello world"));
    atp_cbor_put_map(&b, 4);
    atp_cbor_put_cstr(&b, "ref");
    atp_cbor_put_link(&b, &cid);
    atp_cbor_put_cstr(&b, "size");
    atp_cbor_put_int(&b, 11);
    atp_cbor_put_cstr(&b, "$type");
    atp_cbor_put_text(&b, ATP_SLICE_LIT("blob"));
    atp_cbor_put_cstr(&b, "mimeType");
    atp_cbor_put_cstr(&b, "text/plain");
    atp_slice want = hex(blob_hex);
    T_MEMEQ(b.ptr, b.len, want.ptr, want.len);
    atp_buf_reset(&b);
    atp_cbor_put_array(&b, 5);
    atp_cbor_put_bool(&b, false);
    atp_cbor_put_bool(&b, true);
    atp_cbor_put_null(&b);
    atp_cbor_put_bytes(&b, ATP_SLICE_LIT("\x01\x02"));
    atp_cbor_put_int(&b, -500);
    want = hex("85 f4 f5 f6 420102 3901f3");
    T_MEMEQ(b.ptr, b.len, want.ptr, want.len);
    atp_buf_release(&b);
}

/* ---- interop fixtures ---- */

/* The next "key": "value" string after *pos in the JSON text (no escapes in these values). */
static bool next_field(const char *text, const char **pos, const char *key, char *val, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(*pos, pat);
    if (!p) {
        return false;
    }
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= cap) {
        return false;
    }
    memcpy(val, p, (size_t)(q - p));
    val[q - p] = '\0';
    *pos = q;
    (void)text;
    return true;
}

static void test_interop_fixtures(void)
{
    size_t len;
    char *text = t_read_file(t_shared("interop/data-model/data-model-fixtures.json"), &len);
    const char *pos = text;
    char b64[4096], cidstr[128], got[ATP_CID_STR_MAX];
    uint8_t bytes[4096];
    int n = 0;
    if (!text) {
        return;
    }
    while (next_field(text, &pos, "cbor_base64", b64, sizeof b64) &&
           next_field(text, &pos, "cid", cidstr, sizeof cidstr)) {
        size_t blen = 0;
        atp_cid cid;
        T_OK(atp_base_decode(ATP_BASE64, atp_slice_str(b64), bytes, sizeof bytes, &blen, NULL));
        const atp_cbor *v = check_valid(atp_slice_make(bytes, blen), __LINE__);
        T_TRUE(v && v->type == ATP_CBOR_MAP);
        atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, atp_slice_make(bytes, blen));
        T_TRUE(atp_cid_format_to(&cid, got, sizeof got) > 0);
        T_STREQ(got, cidstr);
        n++;
    }
    T_EQ(n, 3);
    t_vectors("data-model-fixtures (cbor)", n);
    free(text);
}

/* ---- randomized round trips ---- */


static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Random valid UTF-8 of about `n` code points, from all four lengths. */
static atp_slice rnd_text(size_t n)
{
    uint8_t *p = atp_arena_alloc(arena, n * 4 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp;
        switch (rnd_below(4)) {
        case 0:
            cp = (uint32_t)rnd_below(0x80);
            break;
        case 1:
            cp = 0x80 + (uint32_t)rnd_below(0x800 - 0x80);
            break;
        case 2:
            cp = 0x800 + (uint32_t)rnd_below(0x10000 - 0x800);
            if (cp >= 0xd800 && cp <= 0xdfff) {
                cp = 'x';
            }
            break;
        default:
            cp = 0x10000 + (uint32_t)rnd_below(0x110000 - 0x10000);
            break;
        }
        if (cp < 0x80) {
            p[len++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            p[len++] = (uint8_t)(0xc0 | cp >> 6);
            p[len++] = (uint8_t)(0x80 | (cp & 63));
        } else if (cp < 0x10000) {
            p[len++] = (uint8_t)(0xe0 | cp >> 12);
            p[len++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            p[len++] = (uint8_t)(0x80 | (cp & 63));
        } else {
            p[len++] = (uint8_t)(0xf0 | cp >> 18);
            p[len++] = (uint8_t)(0x80 | ((cp >> 12) & 63));
            p[len++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            p[len++] = (uint8_t)(0x80 | (cp & 63));
        }
    }
    return atp_slice_make(p, len);
}

static int64_t rnd_int(void)
{
    static const int64_t edges[] = {0, 23, 24, 255, 256, 65535, 65536, 4294967295LL,
                                    4294967296LL, INT64_MAX, -1, -24, -25, -256, -257, INT64_MIN};
    if (rnd_below(3) == 0) {
        return edges[rnd_below(sizeof edges / sizeof edges[0])];
    }
    return (int64_t)(rnd() >> rnd_below(64));
}

static void rnd_tree(atp_cbor *v, int depth);

static void rnd_map(atp_cbor *v, int depth)
{
    size_t n = rnd_below(8);
    atp_cbor *m = atp_cbor_new_map(arena, n);
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            m->u.map.pairs[i].key = rnd_text(rnd_below(4));
        }
        if (atp_cbor_map_finish(m, NULL) == 0) {
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rnd_tree(&m->u.map.pairs[i].val, depth + 1);
    }
    *v = *m;
}

static void rnd_tree(atp_cbor *v, int depth)
{
    size_t kind = rnd_below(depth >= 6 ? 6 : 9);
    switch (kind) {
    case 0:
        v->type = ATP_CBOR_NULL;
        break;
    case 1:
        *v = *atp_cbor_new_bool(arena, rnd_below(2));
        break;
    case 2:
        *v = *atp_cbor_new_int(arena, rnd_int());
        break;
    case 3:
        *v = *atp_cbor_new_string(arena, rnd_text(rnd_below(depth ? 12 : 40)));
        break;
    case 4: {
        size_t n = rnd_below(300);
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
        atp_cid_compute(&cid, rnd_below(2) ? ATP_CODEC_RAW : ATP_CODEC_DAG_CBOR,
                        atp_slice_make(&seed, sizeof seed));
        *v = *atp_cbor_new_link(arena, &cid);
        break;
    }
    case 6: {
        atp_cbor *a = atp_cbor_new_array(arena, rnd_below(6));
        for (size_t i = 0; i < a->u.arr.n; i++) {
            rnd_tree(&a->u.arr.items[i], depth + 1);
        }
        *v = *a;
        break;
    }
    default:
        rnd_map(v, depth);
        break;
    }
}

static bool tree_eq(const atp_cbor *a, const atp_cbor *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case ATP_CBOR_NULL:
        return true;
    case ATP_CBOR_BOOL:
        return a->u.b == b->u.b;
    case ATP_CBOR_INT:
        return a->u.i == b->u.i;
    case ATP_CBOR_ARRAY:
        if (a->u.arr.n != b->u.arr.n) {
            return false;
        }
        for (size_t i = 0; i < a->u.arr.n; i++) {
            if (!tree_eq(&a->u.arr.items[i], &b->u.arr.items[i])) {
                return false;
            }
        }
        return true;
    case ATP_CBOR_MAP:
        if (a->u.map.n != b->u.map.n) {
            return false;
        }
        for (size_t i = 0; i < a->u.map.n; i++) {
            if (!atp_slice_eq(a->u.map.pairs[i].key, b->u.map.pairs[i].key) ||
                !tree_eq(&a->u.map.pairs[i].val, &b->u.map.pairs[i].val)) {
                return false;
            }
        }
        return true;
    default:
        return atp_slice_eq(a->u.str, b->u.str);
    }
}

static void test_random_round_trips(void)
{
    atp_buf b1, b2;
    int n = 0;
    atp_buf_init(&b1, 0);
    atp_buf_init(&b2, 0);
    for (int iter = 0; iter < 3000; iter++) {
        atp_cbor root, *back = NULL;
        atp_err err = {0};
        atp_arena_reset(arena);
        rnd_map(&root, 0);
        atp_buf_reset(&b1);
        atp_buf_reset(&b2);
        atp_cbor_encode(&b1, &root);
        T_EQ(b1.err, 0);
        T_OKE(atp_cbor_decode(arena, atp_buf_slice(&b1), NULL, &back, &err), &err);
        T_OKE(atp_cbor_validate(atp_buf_slice(&b1), NULL, &err), &err);
        if (!back) {
            break;
        }
        T_TRUE(tree_eq(&root, back));
        atp_cbor_encode(&b2, back);
        T_MEMEQ(b2.ptr, b2.len, b1.ptr, b1.len);
        /* Every strict prefix is truncated, never accepted. */
        if (b1.len > 1) {
            size_t cut = 1 + rnd_below(b1.len - 1);
            T_NE(atp_cbor_validate(atp_slice_make(b1.ptr, cut), NULL, NULL), 0);
        }
        n++;
    }
    t_vectors("random trees", n);
    atp_buf_release(&b1);
    atp_buf_release(&b2);
}

/* ---- throughput (informative: the machine is shared, so nothing is asserted) ---- */

static void test_throughput(void)
{
    static const char *const post_json_like =
        "Just setting up my atproto-c PDS, writing CBOR by hand is fun \xf0\x9f\x98\x80 #atproto";
    atp_buf b;
    atp_cid cid;
    struct timespec t0, t1;
    atp_buf_init(&b, 0);
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("parent"));
    /* An app.bsky.feed.post with a reply, a facet and langs: ~400 bytes. */
    atp_cbor_put_map(&b, 6);
    atp_cbor_put_cstr(&b, "text");
    atp_cbor_put_cstr(&b, post_json_like);
    atp_cbor_put_cstr(&b, "$type");
    atp_cbor_put_cstr(&b, "app.bsky.feed.post");
    atp_cbor_put_cstr(&b, "langs");
    atp_cbor_put_array(&b, 1);
    atp_cbor_put_cstr(&b, "en");
    atp_cbor_put_cstr(&b, "reply");
    atp_cbor_put_map(&b, 2);
    for (int i = 0; i < 2; i++) {
        atp_cbor_put_cstr(&b, i ? "parent" : "root");
        atp_cbor_put_map(&b, 2);
        atp_cbor_put_cstr(&b, "cid");
        atp_cbor_put_link(&b, &cid);
        atp_cbor_put_cstr(&b, "uri");
        atp_cbor_put_cstr(&b, "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3k43tv4rft22g");
    }
    atp_cbor_put_cstr(&b, "facets");
    atp_cbor_put_array(&b, 1);
    atp_cbor_put_map(&b, 3);
    atp_cbor_put_cstr(&b, "$type");
    atp_cbor_put_cstr(&b, "app.bsky.richtext.facet");
    atp_cbor_put_cstr(&b, "index");
    atp_cbor_put_map(&b, 2);
    atp_cbor_put_cstr(&b, "byteEnd");
    atp_cbor_put_int(&b, 80);
    atp_cbor_put_cstr(&b, "byteStart");
    atp_cbor_put_int(&b, 72);
    atp_cbor_put_cstr(&b, "features");
    atp_cbor_put_array(&b, 1);
    atp_cbor_put_map(&b, 2);
    atp_cbor_put_cstr(&b, "tag");
    atp_cbor_put_cstr(&b, "atproto");
    atp_cbor_put_cstr(&b, "$type");
    atp_cbor_put_cstr(&b, "app.bsky.richtext.facet#tag");
    atp_cbor_put_cstr(&b, "createdAt");
    atp_cbor_put_cstr(&b, "2024-05-01T12:34:56.789Z");
    const atp_cbor *v = check_valid(atp_buf_slice(&b), __LINE__);
    T_TRUE(v != NULL);
    int iters = 200000;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < iters; i++) {
        atp_cbor *out;
        atp_arena_reset(arena);
        if (v == NULL || atp_cbor_decode(arena, atp_buf_slice(&b), NULL, &out, NULL) != 0) {
            T_FAILF("decode failed");
            return;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("# decode: %zu-byte post, %.0f ns/record, %.0f MB/s\n", b.len, secs / iters * 1e9,
           (double)b.len * iters / secs / 1e6);
    atp_buf_release(&b);
}

int main(void)
{
    arena = atp_arena_create(0);
    T_RUN(test_heads);
    T_RUN(test_hello_world);
    T_RUN(test_blob_example);
    T_RUN(test_key_order);
    T_RUN(test_valid_kinds);
    T_RUN(test_reject_floats_simple);
    T_RUN(test_reject_indefinite);
    T_RUN(test_reject_non_shortest);
    T_RUN(test_reject_maps);
    T_RUN(test_reject_tags);
    T_RUN(test_reject_ints);
    T_RUN(test_reject_utf8);
    T_RUN(test_utf8_exhaustive);
    T_RUN(test_utf8_long_mixed);
    T_RUN(test_utf8_split_point);
    T_RUN(test_short_text_window);
    T_RUN(test_reject_trailing_truncated);
    T_RUN(test_limits);
    T_RUN(test_prefix);
    T_RUN(test_encoder_rejects);
    T_RUN(test_writers);
    T_RUN(test_interop_fixtures);
    T_RUN(test_random_round_trips);
    T_RUN(test_throughput);
    atp_arena_destroy(arena);
    return t_done();
}

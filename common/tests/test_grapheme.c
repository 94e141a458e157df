/* test_grapheme.c: grapheme cluster counting against the official UAX #29 test file and
 * hand-written cases (emoji sequences, flags, Hangul, combining marks, early exit). */
#include "atp/grapheme.h"
#include "t.h"

#define UCD_TEST "/usr/share/unicode/auxiliary/GraphemeBreakTest.txt"

/* Appends cp as (generalized) UTF-8: surrogates are encoded like any other 3-byte value. */
static size_t put_utf8(uint8_t *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

typedef struct ucd_ctx {
    int lines, failed;
} ucd_ctx;

/* One test line: "÷ 0020 × 0308 ÷\t# comment". Clusters = number of ÷ marks minus one. */
static void ucd_line(const char *line, size_t len, int lineno, void *vctx)
{
    ucd_ctx *ctx = vctx;
    uint8_t buf[256];
    size_t n = 0, breaks = 0, cps = 0;
    const char *p = line, *end = line + len;
    while (p < end && *p != '#') {
        if ((unsigned char)p[0] == 0xC3 && p + 1 < end && (unsigned char)p[1] == 0xB7) {
            breaks++; /* U+00F7 DIVISION SIGN */
            p += 2;
        } else if (*p >= '0' && *p <= 'F' && (*p <= '9' || *p >= 'A')) {
            char *e;
            unsigned long cp = strtoul(p, &e, 16);
            T_TRUE(n + 4 <= sizeof buf);
            n += put_utf8(buf + n, (uint32_t)cp);
            cps++;
            p = e;
        } else {
            p++;
        }
    }
    size_t got = atp_grapheme_count(atp_slice_make(buf, n), SIZE_MAX);
    ctx->lines++;
    if (breaks < 2 || got != breaks - 1 || got > cps) {
        ctx->failed++;
        T_FAILF("GraphemeBreakTest.txt line %d: %zu clusters, want %zu", lineno, got, breaks - 1);
    }
}

static void test_ucd_file(void)
{
    ucd_ctx ctx = {0, 0};
    int n = t_each_line(UCD_TEST, ucd_line, &ctx);
    T_EQ(n, ctx.lines);
    T_EQ(ctx.failed, 0);
    t_vectors("GraphemeBreakTest.txt lines", ctx.lines);
}

static size_t count(const char *s)
{
    return atp_grapheme_count(atp_slice_str(s), SIZE_MAX);
}

static void test_basics(void)
{
    T_EQ(count(""), 0);
    T_EQ(count("a"), 1);
    T_EQ(count("hello world"), 11);
    T_EQ(count("\r\n"), 1);         /* GB3 */
    T_EQ(count("\n\r"), 2);         /* CR after LF breaks */
    T_EQ(count("a\xcc\x81"), 1);    /* a + COMBINING ACUTE */
    T_EQ(count("\xcc\x81"), 1);     /* a lone combining mark is a cluster */
    T_EQ(count("\x01\xcc\x81"), 2); /* GB4: no extending a control */
    T_EQ(count("\xc3\xa9t\xc3\xa9"), 3);
}

static void test_emoji(void)
{
    /* family: man ZWJ woman ZWJ girl ZWJ boy */
    T_EQ(count("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7"
               "\xe2\x80\x8d\xf0\x9f\x91\xa6"),
         1);
    /* rainbow flag: white flag, VS16, ZWJ, rainbow (GB11 through an Extend) */
    T_EQ(count("\xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x8c\x88"), 1);
    /* thumbs up + skin tone modifier */
    T_EQ(count("\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd"), 1);
    /* ZWJ after a letter does not glue the next pictograph (GB11 needs ExtPict first) */
    T_EQ(count("a\xe2\x80\x8d\xf0\x9f\x8c\x88"), 2);
    /* flags: DE, then three RIs = one pair + one single */
    T_EQ(count("\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa"), 1);
    T_EQ(count("\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa\xf0\x9f\x87\xa9"), 2);
    T_EQ(count("\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa"), 2);
}

static void test_hangul_indic(void)
{
    T_EQ(count("\xea\xb0\x80"), 1);                         /* U+AC00 LV */
    T_EQ(count("\xea\xb0\x80\xe1\x86\xa8"), 1);             /* LV + T */
    T_EQ(count("\xea\xb0\x81\xe1\x86\xa8"), 1);             /* LVT + T */
    T_EQ(count("\xea\xb0\x81\xe1\x85\xa1"), 2);             /* LVT + V breaks */
    T_EQ(count("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8"), 1); /* L V T jamo */
    T_EQ(count("\xed\x9e\xa3\xed\x9e\xa3"), 2);             /* U+D7A3 twice (last LVT) */
    T_EQ(count("\xe0\xa4\x95\xe0\xa4\xbe"), 1);             /* KA + AA sign (SpacingMark) */
    T_EQ(count("\xd8\x80"
               "1"),
         1); /* U+0600 Prepend + digit */
}

static void test_early_exit_and_invalid(void)
{
    atp_slice s = atp_slice_str("abcdefghij");
    T_EQ(atp_grapheme_count(s, 3), 4);
    T_EQ(atp_grapheme_count(s, 10), 10);
    T_EQ(atp_grapheme_count(s, 9), 10);
    T_EQ(atp_grapheme_count(s, 0), 1);
    T_EQ(atp_grapheme_count(atp_slice_str(""), 0), 0);
    /* invalid bytes: one cluster each, never more than the byte count */
    T_EQ(count("\xff\xfe"), 2);
    T_EQ(count("\xe2\x80"), 2);         /* truncated 3-byte sequence */
    T_EQ(count("\xc0\x80"), 2);         /* overlong NUL */
    T_EQ(count("\xf4\x90\x80\x80"), 4); /* above U+10FFFF */
    T_EQ(count("a\xcc"), 2);
    size_t pos = 0;
    T_EQ(atp_grapheme_next_cp(atp_slice_str("\xf0\x9f\x98\x80"), &pos), 0x1F600);
    T_EQ(pos, 4);
}

int main(void)
{
    T_RUN(test_ucd_file);
    T_RUN(test_basics);
    T_RUN(test_emoji);
    T_RUN(test_hangul_indic);
    T_RUN(test_early_exit_and_invalid);
    return t_done();
}

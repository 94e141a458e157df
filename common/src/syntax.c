/* syntax.c: validators for the atproto string formats. See atp/syntax.h for the rules.
 *
 * Everything works on explicit lengths and classifies bytes through one constant table, so NUL
 * and non-ASCII bytes simply fall in no class and are reported, and each check stays one pass.
 */
#include "atp/syntax.h"

#include <string.h>

/* ---- byte classes ---- */

enum {
    C_ALPHA = 1 << 0,
    C_DIGIT = 1 << 1,
    C_LOWER = 1 << 2,  /* a-z */
    C_HYPHEN = 1 << 3, /* '-' */
    C_DIDID = 1 << 4,  /* DID identifier: A-Z a-z 0-9 . _ : % - */
    C_RKEY = 1 << 5,   /* record key: A-Z a-z 0-9 . _ : ~ - */
    C_CID = 1 << 6,    /* Lexicon cid string: A-Z a-z 0-9 + / = */
    C_B32S = 1 << 7,   /* TID alphabet: 2-7 a-z */
    C_GRAPH = 1 << 8,  /* printable ASCII except space */
    C_SCHEME = 1 << 9, /* URI scheme after the first char: A-Z a-z 0-9 + - . */
    C_ALNUM = C_ALPHA | C_DIGIT,
};

#define IN_(c, lo, hi) ((c) >= (lo) && (c) <= (hi))
#define ALPHA_(c)      (IN_(c, 'a', 'z') || IN_(c, 'A', 'Z'))
#define ALNUM_(c)      (ALPHA_(c) || IN_(c, '0', '9'))
/* '.' '_' ':' '-' plus '%' (DID identifiers) or '~' (record keys) */
#define NAMEPUNCT_(c) ((c) == '.' || (c) == '_' || (c) == ':' || (c) == '-')
#define CLS_(c)                                                                                    \
    ((ALPHA_(c) ? C_ALPHA : 0) | (IN_(c, '0', '9') ? C_DIGIT : 0) |                                \
     (IN_(c, 'a', 'z') ? C_LOWER : 0) | ((c) == '-' ? C_HYPHEN : 0) |                              \
     ((ALNUM_(c) || NAMEPUNCT_(c) || (c) == '%') ? C_DIDID : 0) |                                  \
     ((ALNUM_(c) || NAMEPUNCT_(c) || (c) == '~') ? C_RKEY : 0) |                                   \
     ((ALNUM_(c) || (c) == '+' || (c) == '/' || (c) == '=') ? C_CID : 0) |                         \
     ((IN_(c, '2', '7') || IN_(c, 'a', 'z')) ? C_B32S : 0) | (IN_(c, 0x21, 0x7e) ? C_GRAPH : 0) |  \
     ((ALNUM_(c) || (c) == '+' || (c) == '-' || (c) == '.') ? C_SCHEME : 0))
#define R4_(b)  CLS_(b), CLS_((b) + 1), CLS_((b) + 2), CLS_((b) + 3)
#define R16_(b) R4_(b), R4_((b) + 4), R4_((b) + 8), R4_((b) + 12)
#define R64_(b) R16_(b), R16_((b) + 16), R16_((b) + 32), R16_((b) + 48)

/* Built at compile time from the macros above: one lookup per byte in every hot loop. */
static const uint16_t cls[256] = {R64_(0), R64_(64), R64_(128), R64_(192)};

static inline bool has(uint8_t c, unsigned mask)
{
    return (cls[c] & mask) != 0;
}

static inline uint8_t lower(uint8_t c)
{
    return IN_(c, 'A', 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* Names the offending byte: printable ASCII as itself, anything else (NUL, UTF-8) in hex. */
static int bad_char(atp_err *err, const char *what, atp_slice s, size_t i)
{
    uint8_t c = s.ptr[i];
    if (c >= 0x20 && c < 0x7f) {
        return atp_err_set(err, ATP_EINVAL, i, "%s: invalid character '%c'", what, c);
    }
    return atp_err_set(err, ATP_EINVAL, i, "%s: invalid byte 0x%02x", what, c);
}

static bool eq_nocase(atp_slice s, size_t off, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (n != len) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(s.ptr[off + i]) != (uint8_t)lit[i]) {
            return false;
        }
    }
    return true;
}

/* ---- handle, NSID: dotted labels ---- */

/* One label [start, end) of a dotted name; its bytes were already classified by the caller. */
static int check_label(atp_slice s, size_t start, size_t end, size_t n, const char *what,
                       atp_err *err)
{
    if (end == start) {
        return atp_err_set(err, ATP_EINVAL, start, "%s label %zu is empty", what, n);
    }
    if (end - start > ATP_SYNTAX_LABEL_MAX) {
        return atp_err_set(err, ATP_EINVAL, start, "%s label %zu is longer than %d chars", what, n,
                           ATP_SYNTAX_LABEL_MAX);
    }
    if (s.ptr[start] == '-') {
        return atp_err_set(err, ATP_EINVAL, start, "%s label %zu starts with '-'", what, n);
    }
    if (s.ptr[end - 1] == '-') {
        return atp_err_set(err, ATP_EINVAL, end - 1, "%s label %zu ends with '-'", what, n);
    }
    return 0;
}

/* Walks the dot-separated labels of `s` (non-empty), checking bytes and label rules in one pass.
 * Reports the label count and where the last label starts. */
static int check_labels(atp_slice s, const char *what, size_t *count, size_t *last, atp_err *err)
{
    size_t start = 0, n = 1;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != '.') {
            if (!has(s.ptr[i], C_ALNUM | C_HYPHEN)) {
                return bad_char(err, what, s, i);
            }
            continue;
        }
        int rc = check_label(s, start, i, n, what, err);
        if (rc != 0) {
            return rc;
        }
        if (i < s.len) {
            start = i + 1;
            n++;
        }
    }
    *count = n;
    *last = start;
    return 0;
}

int atp_syntax_check_handle(atp_slice s, atp_err *err)
{
    size_t labels = 0, last = 0;
    if (s.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "handle: empty");
    }
    if (s.len > ATP_SYNTAX_HANDLE_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_HANDLE_MAX, "handle: longer than %d chars",
                           ATP_SYNTAX_HANDLE_MAX);
    }
    int rc = check_labels(s, "handle", &labels, &last, err);
    if (rc != 0) {
        return rc;
    }
    if (labels < 2) {
        return atp_err_set(err, ATP_EINVAL, 0, "handle: needs at least two labels");
    }
    /* A digit-led TLD would make IPv4 literals ("127.0.0.1") look like handles. */
    if (has(s.ptr[last], C_DIGIT)) {
        return atp_err_set(err, ATP_EINVAL, last, "handle: TLD starts with a digit");
    }
    return 0;
}

static int check_nsid_name(atp_slice s, size_t start, atp_err *err)
{
    if (start == s.len) {
        return atp_err_set(err, ATP_EINVAL, start, "nsid: name segment is empty");
    }
    if (s.len - start > ATP_SYNTAX_LABEL_MAX) {
        return atp_err_set(err, ATP_EINVAL, start, "nsid: name segment is longer than %d chars",
                           ATP_SYNTAX_LABEL_MAX);
    }
    if (!has(s.ptr[start], C_ALPHA)) {
        return atp_err_set(err, ATP_EINVAL, start, "nsid: name segment must start with a letter");
    }
    for (size_t i = start + 1; i < s.len; i++) {
        if (!has(s.ptr[i], C_ALNUM)) {
            return bad_char(err, "nsid name", s, i);
        }
    }
    return 0;
}

int atp_syntax_check_nsid(atp_slice s, atp_err *err)
{
    size_t dot = s.len, labels = 0, last = 0;
    if (s.len > ATP_SYNTAX_NSID_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_NSID_MAX, "nsid: longer than %d chars",
                           ATP_SYNTAX_NSID_MAX);
    }
    while (dot > 0 && s.ptr[dot - 1] != '.') {
        dot--;
    }
    if (dot == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "nsid: needs at least three segments");
    }
    /* No cap on the authority's own length: see the header (interop quirk 1). */
    int rc = check_labels(atp_slice_make(s.ptr, dot - 1), "nsid", &labels, &last, err);
    if (rc != 0) {
        return rc;
    }
    if (labels < 2) {
        return atp_err_set(err, ATP_EINVAL, 0, "nsid: needs at least three segments");
    }
    if (!has(s.ptr[0], C_ALPHA)) {
        return atp_err_set(err, ATP_EINVAL, 0, "nsid: first segment must start with a letter");
    }
    return check_nsid_name(s, dot, err);
}

atp_slice atp_syntax_nsid_authority(atp_slice nsid)
{
    size_t dot = nsid.len;
    while (dot > 0 && nsid.ptr[dot - 1] != '.') {
        dot--;
    }
    return atp_slice_make(nsid.ptr, dot > 0 ? dot - 1 : 0);
}

atp_slice atp_syntax_nsid_name(atp_slice nsid)
{
    size_t dot = nsid.len;
    while (dot > 0 && nsid.ptr[dot - 1] != '.') {
        dot--;
    }
    return atp_slice_sub(nsid, dot, nsid.len - dot);
}

/* ---- DID, record key, TID ---- */

int atp_syntax_check_did(atp_slice s, atp_err *err)
{
    size_t i = 4;
    if (s.len > ATP_SYNTAX_DID_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_DID_MAX, "did: longer than %d chars",
                           ATP_SYNTAX_DID_MAX);
    }
    if (!atp_slice_has_prefix(s, ATP_SLICE_LIT("did:"))) {
        return atp_err_set(err, ATP_EINVAL, 0, "did: must start with \"did:\"");
    }
    while (i < s.len && has(s.ptr[i], C_LOWER)) {
        i++;
    }
    if (i == s.len) {
        return atp_err_set(err, ATP_EINVAL, i, "did: missing ':' after the method");
    }
    if (i == 4 || s.ptr[i] != ':') {
        return bad_char(err, "did method", s, i);
    }
    if (++i == s.len) {
        return atp_err_set(err, ATP_EINVAL, i, "did: empty identifier");
    }
    for (; i < s.len; i++) {
        if (!has(s.ptr[i], C_DIDID)) {
            return bad_char(err, "did", s, i);
        }
    }
    if (s.ptr[s.len - 1] == ':' || s.ptr[s.len - 1] == '%') {
        return atp_err_set(err, ATP_EINVAL, s.len - 1, "did: ends with '%c'", s.ptr[s.len - 1]);
    }
    return 0;
}

int atp_syntax_check_rkey(atp_slice s, atp_err *err)
{
    if (s.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "record key: empty");
    }
    if (s.len > ATP_SYNTAX_RKEY_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_RKEY_MAX, "record key: longer than %d chars",
                           ATP_SYNTAX_RKEY_MAX);
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!has(s.ptr[i], C_RKEY)) {
            return bad_char(err, "record key", s, i);
        }
    }
    if (atp_slice_eq_str(s, ".") || atp_slice_eq_str(s, "..")) {
        return atp_err_set(err, ATP_EINVAL, 0, "record key: \".\" and \"..\" are not allowed");
    }
    return 0;
}

int atp_syntax_check_tid(atp_slice s, atp_err *err)
{
    if (s.len != ATP_SYNTAX_TID_LEN) {
        return atp_err_set(err, ATP_EINVAL, 0, "tid: must be %d chars, not %zu", ATP_SYNTAX_TID_LEN,
                           s.len);
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!has(s.ptr[i], C_B32S)) {
            return bad_char(err, "tid", s, i);
        }
    }
    /* 13 x 5 bits = 65: the first char carries one always-zero bit, so it is at most 'j' (15). */
    if (s.ptr[0] > 'j') {
        return atp_err_set(err, ATP_EINVAL, 0, "tid: first char '%c' sets the high bit", s.ptr[0]);
    }
    return 0;
}

int atp_syntax_check_atidentifier(atp_slice s, atp_err *err)
{
    if (atp_slice_has_prefix(s, ATP_SLICE_LIT("did:"))) {
        return atp_syntax_check_did(s, err);
    }
    return atp_syntax_check_handle(s, err);
}

/* ---- AT-URI ---- */

typedef int (*check_fn)(atp_slice, atp_err *);

/* Runs `fn` on s[off, end) and reports its error with the offset in `s` and a `what:` prefix. */
static int check_part(check_fn fn, atp_slice s, size_t off, size_t end, const char *what,
                      atp_err *err)
{
    atp_err sub;
    int rc = fn(atp_slice_make(s.ptr + off, end - off), &sub);
    if (rc != 0) {
        return atp_err_set(err, rc, off + sub.off, "%s: %s", what, sub.msg);
    }
    return 0;
}

static size_t find_slash(atp_slice s, size_t from)
{
    while (from < s.len && s.ptr[from] != '/') {
        from++;
    }
    return from;
}

/* The path after the authority: "/" collection ["/" rkey], starting at the first '/'. */
static int parse_aturi_path(atp_slice s, size_t slash, atp_aturi *parts, atp_err *err)
{
    size_t c = slash + 1, e = find_slash(s, c);
    if (e == c) {
        return atp_err_set(err, ATP_EINVAL, c, "at-uri: empty path segment or trailing '/'");
    }
    int rc = check_part(atp_syntax_check_nsid, s, c, e, "at-uri collection", err);
    if (rc != 0) {
        return rc;
    }
    parts->collection = atp_slice_make(s.ptr + c, e - c);
    if (e == s.len) {
        return 0;
    }
    size_t r = e + 1, end = find_slash(s, r);
    if (end == r) {
        return atp_err_set(err, ATP_EINVAL, r, "at-uri: empty path segment or trailing '/'");
    }
    if (end < s.len) {
        return atp_err_set(err, ATP_EINVAL, end, "at-uri: too many path segments");
    }
    rc = check_part(atp_syntax_check_rkey, s, r, end, "at-uri record key", err);
    parts->rkey = atp_slice_make(s.ptr + r, end - r);
    return rc;
}

int atp_syntax_parse_aturi(atp_slice s, atp_aturi *out, atp_err *err)
{
    atp_aturi parts = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    if (s.len > ATP_SYNTAX_ATURI_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_ATURI_MAX, "at-uri: longer than %d bytes",
                           ATP_SYNTAX_ATURI_MAX);
    }
    if (!atp_slice_has_prefix(s, ATP_SLICE_LIT("at://"))) {
        return atp_err_set(err, ATP_EINVAL, 0, "at-uri: must start with \"at://\"");
    }
    size_t e = find_slash(s, 5);
    int rc = check_part(atp_syntax_check_atidentifier, s, 5, e, "at-uri authority", err);
    if (rc != 0) {
        return rc;
    }
    parts.authority = atp_slice_make(s.ptr + 5, e - 5);
    if (e < s.len) {
        rc = parse_aturi_path(s, e, &parts, err);
        if (rc != 0) {
            return rc;
        }
    }
    *out = parts;
    return 0;
}

int atp_syntax_check_aturi(atp_slice s, atp_err *err)
{
    atp_aturi parts;
    return atp_syntax_parse_aturi(s, &parts, err);
}

/* ---- datetime ---- */

typedef struct dt_fields {
    int year, mon, day, hour, min, sec;
    int off_min;     /* signed offset from UTC in minutes */
    int64_t frac_us; /* first 6 fraction digits, zero-padded */
} dt_fields;

static int digits(atp_slice s, size_t off, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s.ptr[off + i] - '0');
    }
    return v;
}

/* The fixed-width head "YYYY-MM-DDTHH:MM:SS", matched against a pattern ('d' = digit). */
static int dt_head(atp_slice s, dt_fields *f, atp_err *err)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof pat - 1; i++) {
        if (i == s.len) {
            return atp_err_set(err, ATP_EINVAL, i, "datetime: too short");
        }
        bool ok = pat[i] == 'd' ? has(s.ptr[i], C_DIGIT) : s.ptr[i] == (uint8_t)pat[i];
        if (!ok) {
            return bad_char(err, "datetime", s, i);
        }
    }
    f->year = digits(s, 0, 4);
    f->mon = digits(s, 5, 2);
    f->day = digits(s, 8, 2);
    f->hour = digits(s, 11, 2);
    f->min = digits(s, 14, 2);
    f->sec = digits(s, 17, 2);
    return 0;
}

/* The optional fraction from offset *i: '.' and at least one digit; keeps microseconds. */
static int dt_frac(atp_slice s, size_t *i, dt_fields *f, atp_err *err)
{
    size_t p = *i, start;
    int64_t scale = 100000;
    f->frac_us = 0;
    if (p == s.len || s.ptr[p] != '.') {
        return 0;
    }
    start = ++p;
    for (; p < s.len && has(s.ptr[p], C_DIGIT); p++) {
        f->frac_us += (s.ptr[p] - '0') * scale;
        scale /= 10;
    }
    if (p == start) {
        return atp_err_set(err, ATP_EINVAL, p, "datetime: '.' needs at least one digit");
    }
    *i = p;
    return 0;
}

/* The timezone from offset i to the end: "Z" or "+HH:MM"/"-HH:MM", never "-00:00". */
static int dt_zone(atp_slice s, size_t i, dt_fields *f, atp_err *err)
{
    if (i == s.len) {
        return atp_err_set(err, ATP_EINVAL, i, "datetime: missing timezone");
    }
    if (s.ptr[i] == 'Z' && i + 1 == s.len) {
        f->off_min = 0;
        return 0;
    }
    if (s.ptr[i] != '+' && s.ptr[i] != '-') {
        return bad_char(err, "datetime timezone", s, i);
    }
    if (s.len - i != 6 || !has(s.ptr[i + 1], C_DIGIT) || !has(s.ptr[i + 2], C_DIGIT) ||
        s.ptr[i + 3] != ':' || !has(s.ptr[i + 4], C_DIGIT) || !has(s.ptr[i + 5], C_DIGIT)) {
        return atp_err_set(err, ATP_EINVAL, i, "datetime: timezone must be Z, +HH:MM or -HH:MM");
    }
    int hh = digits(s, i + 1, 2), mm = digits(s, i + 4, 2);
    if (hh > 23 || mm > 59) {
        return atp_err_set(err, ATP_EINVAL, i, "datetime: timezone offset out of range");
    }
    if (s.ptr[i] == '-' && hh == 0 && mm == 0) {
        return atp_err_set(err, ATP_EINVAL, i, "datetime: \"-00:00\" is not allowed");
    }
    f->off_min = (s.ptr[i] == '-' ? -1 : 1) * (hh * 60 + mm);
    return 0;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Range checks, in field order so the first bad field is the one reported. */
static int dt_ranges(const dt_fields *f, atp_err *err)
{
    if (f->mon < 1 || f->mon > 12) {
        return atp_err_set(err, ATP_EINVAL, 5, "datetime: month %02d out of range", f->mon);
    }
    if (f->day < 1 || f->day > days_in_month(f->year, f->mon)) {
        return atp_err_set(err, ATP_EINVAL, 8, "datetime: day %02d out of range", f->day);
    }
    if (f->hour > 23) {
        return atp_err_set(err, ATP_EINVAL, 11, "datetime: hour %02d out of range", f->hour);
    }
    if (f->min > 59) {
        return atp_err_set(err, ATP_EINVAL, 14, "datetime: minute %02d out of range", f->min);
    }
    if (f->sec > 59) {
        return atp_err_set(err, ATP_EINVAL, 17, "datetime: second %02d out of range", f->sec);
    }
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (valid for any year). The
 * year is shifted to start in March so that the leap day falls at the end of it. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int atp_syntax_parse_datetime(atp_slice s, int64_t *unix_micros, atp_err *err)
{
    dt_fields f = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 19;
    if (s.len > ATP_SYNTAX_DATETIME_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_DATETIME_MAX,
                           "datetime: longer than %d chars", ATP_SYNTAX_DATETIME_MAX);
    }
    int rc = dt_head(s, &f, err);
    if (rc == 0) {
        rc = dt_frac(s, &i, &f, err);
    }
    if (rc == 0) {
        rc = dt_zone(s, i, &f, err);
    }
    if (rc == 0) {
        rc = dt_ranges(&f, err);
    }
    if (rc != 0) {
        return rc;
    }
    int64_t secs = days_from_civil(f.year, f.mon, f.day) * 86400 + f.hour * 3600 + f.min * 60 +
                   f.sec - (int64_t)f.off_min * 60;
    if (secs < days_from_civil(0, 1, 1) * 86400) {
        return atp_err_set(err, ATP_EINVAL, i, "datetime: the UTC year would be negative");
    }
    *unix_micros = secs * 1000000 + f.frac_us;
    return 0;
}

int atp_syntax_check_datetime(atp_slice s, atp_err *err)
{
    int64_t us;
    return atp_syntax_parse_datetime(s, &us, err);
}

/* ---- language (BCP 47) ---- */

/* Where a langtag is, subtag by subtag: each stage allows only what may follow it. */
enum lang_stage {
    L_LANG,      /* after the primary language subtag */
    L_EXTLANG,   /* after 1-3 extlang subtags */
    L_SCRIPT,    /* after the script */
    L_REGION,    /* after the region */
    L_VARIANT,   /* after one or more variants */
    L_EXT_NEED,  /* after an extension singleton: needs a 2-8 char subtag */
    L_EXT,       /* inside an extension */
    L_PRIV_NEED, /* after 'x': needs a 1-8 char subtag */
    L_PRIV,      /* inside the private-use part: anything 1-8 alphanumerics */
};

typedef struct lang_state {
    enum lang_stage stage;
    size_t primary_len, extlangs, var_start;
    uint64_t singletons; /* one bit per singleton seen: 0-9 then a-z */
} lang_state;

/* Irregular and regular grandfathered tags of RFC 5646 §2.2.8 (some don't fit the grammar). */
static const char *const grandfathered[] = {
    "en-gb-oed", "i-ami",     "i-bnn",     "i-default",  "i-enochian",  "i-hak",  "i-klingon",
    "i-lux",     "i-mingo",   "i-navajo",  "i-pwn",      "i-tao",       "i-tay",  "i-tsu",
    "sgn-be-fr", "sgn-be-nl", "sgn-ch-de", "art-lojban", "cel-gaulish", "no-bok", "no-nyn",
    "zh-guoyu",  "zh-hakka",  "zh-min",    "zh-min-nan", "zh-xiang",
};

static bool all_class(atp_slice s, size_t a, size_t b, unsigned mask)
{
    for (size_t i = a; i < b; i++) {
        if (!has(s.ptr[i], mask)) {
            return false;
        }
    }
    return true;
}

static int lang_primary(atp_slice s, size_t n, lang_state *st, atp_err *err)
{
    if (n == 1 && lower(s.ptr[0]) == 'x') {
        st->stage = L_PRIV_NEED;
        return 0;
    }
    /* Lower case only, against RFC 5646's case-insensitivity: the interop vectors refuse "JA". */
    if (all_class(s, 0, n, C_LOWER) && (n == 2 || n == 3 || n >= 5)) {
        st->stage = L_LANG;
        st->primary_len = n;
        return 0;
    }
    return atp_err_set(err, ATP_EINVAL, 0,
                       "language: primary subtag must be 2-3 or 5-8 lower-case letters");
}

static int lang_singleton(atp_slice s, size_t a, lang_state *st, atp_err *err)
{
    uint8_t c = lower(s.ptr[a]);
    if (c == 'x') {
        st->stage = L_PRIV_NEED;
        return 0;
    }
    unsigned bit = has(c, C_DIGIT) ? (unsigned)(c - '0') : 10u + (unsigned)(c - 'a');
    if (st->singletons & ((uint64_t)1 << bit)) {
        return atp_err_set(err, ATP_EINVAL, a, "language: repeated extension singleton '%c'", c);
    }
    st->singletons |= (uint64_t)1 << bit;
    st->stage = L_EXT_NEED;
    return 0;
}

/* A variant [a, b) must not repeat an earlier one (case-insensitive): rescans the variants,
 * which are contiguous from var_start; bounded by ATP_SYNTAX_LANGUAGE_MAX. */
static int lang_variant(atp_slice s, size_t a, size_t b, lang_state *st, atp_err *err)
{
    if (st->stage != L_VARIANT) {
        st->stage = L_VARIANT;
        st->var_start = a;
        return 0;
    }
    for (size_t v = st->var_start; v < a;) {
        size_t e = v;
        while (s.ptr[e] != '-') {
            e++;
        }
        bool same = e - v == b - a;
        for (size_t k = 0; same && k < b - a; k++) {
            same = lower(s.ptr[v + k]) == lower(s.ptr[a + k]);
        }
        if (same) {
            return atp_err_set(err, ATP_EINVAL, a, "language: repeated variant subtag");
        }
        v = e + 1;
    }
    return 0;
}

/* extlang, script, region or variant, in that order, each optional. */
static int lang_langtag_part(atp_slice s, size_t a, size_t b, lang_state *st, atp_err *err)
{
    size_t n = b - a;
    bool alpha = all_class(s, a, b, C_ALPHA), digit = all_class(s, a, b, C_DIGIT);
    if (st->stage <= L_EXTLANG && st->primary_len <= 3 && n == 3 && alpha && st->extlangs < 3) {
        st->extlangs++;
        st->stage = L_EXTLANG;
        return 0;
    }
    if (st->stage <= L_EXTLANG && n == 4 && alpha) {
        st->stage = L_SCRIPT;
        return 0;
    }
    if (st->stage <= L_SCRIPT && ((n == 2 && alpha) || (n == 3 && digit))) {
        st->stage = L_REGION;
        return 0;
    }
    if (n >= 5 || (n == 4 && has(s.ptr[a], C_DIGIT))) {
        return lang_variant(s, a, b, st, err);
    }
    return atp_err_set(err, ATP_EINVAL, a, "language: unexpected subtag");
}

static int lang_subtag(atp_slice s, size_t a, size_t b, lang_state *st, atp_err *err)
{
    if (st->stage == L_PRIV_NEED || st->stage == L_PRIV) {
        st->stage = L_PRIV;
        return 0;
    }
    if (st->stage == L_EXT_NEED) {
        if (b - a < 2) {
            return atp_err_set(err, ATP_EINVAL, a, "language: extension subtag too short");
        }
        st->stage = L_EXT;
        return 0;
    }
    if (b - a == 1) {
        return lang_singleton(s, a, st, err);
    }
    if (st->stage == L_EXT) {
        return 0;
    }
    return lang_langtag_part(s, a, b, st, err);
}

static bool lang_grandfathered(atp_slice s)
{
    for (size_t i = 0; i < sizeof grandfathered / sizeof grandfathered[0]; i++) {
        if (eq_nocase(s, 0, s.len, grandfathered[i])) {
            return true;
        }
    }
    return false;
}

int atp_syntax_check_language(atp_slice s, atp_err *err)
{
    lang_state st = {L_LANG, 0, 0, 0, 0};
    size_t start = 0;
    if (s.len == 0 || s.len > ATP_SYNTAX_LANGUAGE_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "language: must be 1-%d chars",
                           ATP_SYNTAX_LANGUAGE_MAX);
    }
    if (lang_grandfathered(s)) {
        return 0;
    }
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != '-') {
            if (!has(s.ptr[i], C_ALNUM)) {
                return bad_char(err, "language", s, i);
            }
            continue;
        }
        if (i == start || i - start > 8) {
            return atp_err_set(err, ATP_EINVAL, start, "language: subtags are 1-8 chars");
        }
        int rc = start == 0 ? lang_primary(s, i, &st, err) : lang_subtag(s, start, i, &st, err);
        if (rc != 0) {
            return rc;
        }
        start = i + 1;
    }
    if (st.stage == L_EXT_NEED || st.stage == L_PRIV_NEED) {
        return atp_err_set(err, ATP_EINVAL, s.len - 1, "language: singleton without a subtag");
    }
    return 0;
}

/* ---- cid, uri ---- */

int atp_syntax_check_cid(atp_slice s, atp_err *err)
{
    if (s.len < ATP_SYNTAX_CID_MIN || s.len > ATP_SYNTAX_CID_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "cid: must be %d-%d chars", ATP_SYNTAX_CID_MIN,
                           ATP_SYNTAX_CID_MAX);
    }
    for (size_t i = 0; i < s.len; i++) {
        if (!has(s.ptr[i], C_CID)) {
            return bad_char(err, "cid", s, i);
        }
    }
    if (s.ptr[0] == 'Q' && s.ptr[1] == 'm') {
        return atp_err_set(err, ATP_EINVAL, 0, "cid: CIDv0 (\"Qm...\") is not supported");
    }
    return 0;
}

int atp_syntax_check_uri(atp_slice s, atp_err *err)
{
    size_t i = 1;
    if (s.len > ATP_SYNTAX_URI_MAX) {
        return atp_err_set(err, ATP_EINVAL, ATP_SYNTAX_URI_MAX, "uri: longer than %d bytes",
                           ATP_SYNTAX_URI_MAX);
    }
    if (s.len == 0 || !has(s.ptr[0], C_ALPHA)) {
        return atp_err_set(err, ATP_EINVAL, 0, "uri: scheme must start with a letter");
    }
    while (i < s.len && has(s.ptr[i], C_SCHEME)) {
        i++;
    }
    if (i == s.len || s.ptr[i] != ':') {
        return atp_err_set(err, ATP_EINVAL, i, "uri: missing ':' after the scheme");
    }
    if (++i == s.len) {
        return atp_err_set(err, ATP_EINVAL, i, "uri: nothing after the scheme");
    }
    for (; i < s.len; i++) {
        if (!has(s.ptr[i], C_GRAPH)) {
            return bad_char(err, "uri", s, i);
        }
    }
    return 0;
}

/* ---- boolean wrappers ---- */

#define ATP__SYNTAX_IS(kind)                                                                       \
    bool atp_syntax_is_##kind(atp_slice s)                                                         \
    {                                                                                              \
        return atp_syntax_check_##kind(s, NULL) == 0;                                              \
    }
ATP__SYNTAX_IS(handle)
ATP__SYNTAX_IS(did)
ATP__SYNTAX_IS(nsid)
ATP__SYNTAX_IS(tid)
ATP__SYNTAX_IS(rkey)
ATP__SYNTAX_IS(aturi)
ATP__SYNTAX_IS(datetime)
ATP__SYNTAX_IS(language)
ATP__SYNTAX_IS(cid)
ATP__SYNTAX_IS(uri)
ATP__SYNTAX_IS(atidentifier)

/* ---- handle helpers ---- */

int atp_syntax_normalize_handle(atp_slice in, char *out, size_t cap, atp_err *err)
{
    int rc = atp_syntax_check_handle(in, err);
    if (rc != 0) {
        return rc;
    }
    if (cap <= in.len) {
        return atp_err_set(err, ATP_ELIMIT, 0, "handle: output needs %zu bytes, has %zu",
                           in.len + 1, cap);
    }
    for (size_t i = 0; i < in.len; i++) {
        out[i] = (char)lower(in.ptr[i]);
    }
    out[in.len] = '\0';
    return 0;
}

bool atp_syntax_handle_tld_allowed(atp_slice handle)
{
    static const char *const banned[] = {"alt",     "arpa",  "example",   "internal",
                                         "invalid", "local", "localhost", "onion"};
    size_t dot = handle.len;
    if (atp_syntax_check_handle(handle, NULL) != 0) {
        return false;
    }
    while (handle.ptr[dot - 1] != '.') {
        dot--;
    }
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++) {
        if (eq_nocase(handle, dot, handle.len - dot, banned[i])) {
            return false;
        }
    }
    return true;
}

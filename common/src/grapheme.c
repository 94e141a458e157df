/* grapheme.c: extended grapheme cluster counting (UAX #29). One pass, constant state: the
 * class of the previous code point, where we are in an emoji ZWJ sequence, and the parity of
 * the current run of regional indicators. */
#include "atp/grapheme.h"

#include "grapheme_table.h"

#define GB_HANGUL_FIRST  0xAC00u
#define GB_HANGUL_LAST   0xD7A3u
#define GB_HANGUL_TCOUNT 28u

/* Continuation byte test. */
static int is_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

/* Sequence length announced by a lead byte and the smallest code point allowed for it (so
 * overlongs are refused); 0 for bytes that cannot start a sequence. */
static size_t lead_len(uint8_t b, uint32_t *min, uint32_t *cp)
{
    if (b >= 0xC2 && b <= 0xDF) {
        *min = 0x80;
        *cp = b & 0x1Fu;
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        *min = 0x800;
        *cp = b & 0x0Fu;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        *min = 0x10000;
        *cp = b & 0x07u;
        return 4;
    }
    return 0;
}

uint32_t atp_grapheme_next_cp(atp_slice s, size_t *pos)
{
    size_t i = *pos, n;
    uint8_t b = s.ptr[i];
    uint32_t min = 0, cp = 0;
    if (b < 0x80) {
        *pos = i + 1;
        return b;
    }
    n = lead_len(b, &min, &cp);
    /* A bad lead, a truncated tail or an overlong/out-of-range value: one U+FFFD per byte, so
     * the scan always makes progress and the count stays <= the byte count. */
    if (n == 0 || n > s.len - i) {
        *pos = i + 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k < n; k++) {
        if (!is_cont(s.ptr[i + k])) {
            *pos = i + 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s.ptr[i + k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF) {
        *pos = i + 1;
        return 0xFFFD;
    }
    *pos = i + n;
    return cp;
}

/* Grapheme_Cluster_Break class (or ExtPict) of a code point. */
static unsigned gb_class(uint32_t cp)
{
    size_t lo = 0, hi = sizeof atp__gb_runs / sizeof atp__gb_runs[0];
    if (cp < 0x7F) {
        /* ASCII fast path: all printable ASCII is Other. */
        if (cp >= 0x20) {
            return ATP__GB_OTHER;
        }
        return cp == '\r' ? ATP__GB_CR : cp == '\n' ? ATP__GB_LF : ATP__GB_CONTROL;
    }
    if (cp >= GB_HANGUL_FIRST && cp <= GB_HANGUL_LAST) {
        return (cp - GB_HANGUL_FIRST) % GB_HANGUL_TCOUNT == 0 ? ATP__GB_LV : ATP__GB_LVT;
    }
    /* Last run whose start is <= cp; run 0 starts at 0 so one always exists. */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((atp__gb_runs[mid] >> 5) <= cp) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return atp__gb_runs[lo] & 0x1Fu;
}

typedef struct gb_state {
    unsigned prev;  /* class of the previous code point */
    unsigned emoji; /* 0 none, 1 after ExtPict Extend*, 2 after ExtPict Extend* ZWJ */
    size_t ri_run;  /* regional indicators in a row ending at prev */
} gb_state;

static int is_ctl(unsigned c)
{
    return c == ATP__GB_CR || c == ATP__GB_LF || c == ATP__GB_CONTROL;
}

/* Hangul rules GB6-GB8: 1 if they forbid a break between a and b. */
static int hangul_joins(unsigned a, unsigned b)
{
    if (a == ATP__GB_L) {
        return b == ATP__GB_L || b == ATP__GB_V || b == ATP__GB_LV || b == ATP__GB_LVT;
    }
    if (a == ATP__GB_LV || a == ATP__GB_V) {
        return b == ATP__GB_V || b == ATP__GB_T;
    }
    if (a == ATP__GB_LVT || a == ATP__GB_T) {
        return b == ATP__GB_T;
    }
    return 0;
}

/* The UAX #29 rules in order: 1 if there is a break before a code point of class c. */
static int is_break(const gb_state *st, unsigned c)
{
    unsigned p = st->prev;
    if (p == ATP__GB_CR && c == ATP__GB_LF) {
        return 0; /* GB3 */
    }
    if (is_ctl(p) || is_ctl(c)) {
        return 1; /* GB4, GB5 */
    }
    if (hangul_joins(p, c)) {
        return 0; /* GB6-GB8 */
    }
    if (c == ATP__GB_EXTEND || c == ATP__GB_ZWJ || c == ATP__GB_SPACINGMARK ||
        p == ATP__GB_PREPEND) {
        return 0; /* GB9, GB9a, GB9b */
    }
    if (p == ATP__GB_ZWJ && c == ATP__GB_EXTPICT && st->emoji == 2) {
        return 0; /* GB11 */
    }
    if (p == ATP__GB_REGIONAL_INDICATOR && c == ATP__GB_REGIONAL_INDICATOR) {
        return st->ri_run % 2 == 0; /* GB12, GB13: pairs only */
    }
    return 1; /* GB999 */
}

static void advance(gb_state *st, unsigned c)
{
    if (c == ATP__GB_EXTPICT) {
        st->emoji = 1;
    } else if (c == ATP__GB_EXTEND && st->emoji == 1) {
        st->emoji = 1;
    } else if (c == ATP__GB_ZWJ && st->emoji == 1) {
        st->emoji = 2;
    } else {
        st->emoji = 0;
    }
    st->ri_run = c == ATP__GB_REGIONAL_INDICATOR ? st->ri_run + 1 : 0;
    st->prev = c;
}

size_t atp_grapheme_count(atp_slice utf8, size_t stop_after)
{
    gb_state st = {0, 0, 0};
    size_t pos = 0, count = 0;
    while (pos < utf8.len) {
        unsigned c = gb_class(atp_grapheme_next_cp(utf8, &pos));
        if (count == 0 || is_break(&st, c)) {
            count++;
            if (count > stop_after) {
                return count;
            }
        }
        advance(&st, c);
    }
    return count;
}

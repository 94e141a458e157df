/* fuzz_grapheme.c: grapheme counting never crashes and keeps its invariants: the count is at
 * most the code point count; the early exit agrees with the exact count; a prefix's clusters are
 * kept when text is appended (UAX #29 rules look at most one code point ahead, so boundaries
 * inside the prefix do not move) and appending never adds more clusters than the suffix has. */
#include <stdlib.h>

#include "atp/grapheme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t code_points(atp_slice s)
{
    size_t pos = 0, n = 0;
    while (pos < s.len) {
        (void)atp_grapheme_next_cp(s, &pos);
        n++;
    }
    return n;
}

/* Split point on a code point boundary near byte data[0] of the rest. */
static size_t split_at(atp_slice s, size_t want)
{
    size_t pos = 0;
    while (pos < s.len && pos < want) {
        (void)atp_grapheme_next_cp(s, &pos);
    }
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    atp_slice s = atp_slice_make(data + 1, size - 1);
    size_t all = atp_grapheme_count(s, SIZE_MAX);
    if (all > code_points(s) || (s.len > 0 && all == 0)) {
        abort();
    }
    size_t k = data[0] % (all + 2);
    size_t early = atp_grapheme_count(s, k);
    if (early != (k < all ? k + 1 : all)) {
        abort();
    }
    size_t cut = split_at(s, data[0]);
    size_t a = atp_grapheme_count(atp_slice_sub(s, 0, cut), SIZE_MAX);
    size_t b = atp_grapheme_count(atp_slice_sub(s, cut, s.len - cut), SIZE_MAX);
    if (all < a || all > a + b) {
        abort();
    }
    return 0;
}

/* atp/grapheme.h: extended grapheme clusters (Unicode UAX #29, Unicode 15.0 tables), as Lexicon
 * `minGraphemes`/`maxGraphemes` count them.
 *
 * Implements GB3-GB13 and GB999: CR LF, controls, Hangul syllable sequences, Extend/ZWJ,
 * SpacingMark, Prepend, emoji ZWJ sequences (GB11) and regional-indicator pairs (GB12/13).
 * The property tables are generated from the Unicode data files by scripts/gen-grapheme-table.py
 * (common/src/grapheme_table.h). Pure: no allocation, no I/O, no globals.
 */
#ifndef ATP_GRAPHEME_H
#define ATP_GRAPHEME_H

#include <stddef.h>
#include <stdint.h>

#include "atp/buf.h"

/* Number of extended grapheme clusters in `utf8`, stopping early: once the count passes
 * `stop_after` the scan ends and some value > stop_after is returned (stop_after + 1). Pass
 * SIZE_MAX for an exact count. The empty string has 0 clusters.
 * Invalid UTF-8 does not stop the count: each byte that does not start a well-formed sequence
 * counts as one U+FFFD (class Other); encoded surrogates (ED A0..BF xx) are decoded as the
 * surrogate code point (class Control), as the UAX #29 test data expects. Callers that need
 * validity check it separately (atp_cbor_is_utf8).
 * Bounds: the result never exceeds the number of code points, so never exceeds utf8.len. */
size_t atp_grapheme_count(atp_slice utf8, size_t stop_after);

/* Decodes the code point at utf8[*pos] and advances *pos past it (by 1 to 4 bytes), under the
 * lenient rule above (an invalid byte gives U+FFFD and advances by 1). *pos must be < utf8.len. */
uint32_t atp_grapheme_next_cp(atp_slice utf8, size_t *pos);

#endif

/* atp/tid.h: TIDs (timestamp identifiers), the record keys and repo revisions of atproto.
 *
 * A TID is a 64-bit value, bit 63 zero | 53 bits of microseconds since the Unix epoch | 10 bits
 * of clock id, written as 13 chars of the sortable base32 alphabet
 * 234567abcdefghijklmnopqrstuvwxyz, most significant first (the first char holds one always-zero
 * bit and the top 4 bits). String order is value order is time order. Spec:
 * /work/shared/spec/identity-crypto.md §1.4.
 */
#ifndef ATP_TID_H
#define ATP_TID_H

#include <stdint.h>

#include "atp/buf.h"

#define ATP_TID_LEN       13
#define ATP_TID_CLOCK_MAX 1023u /* clock ids are 10 bits */
/* Largest microsecond count a spec TID holds (53 bits, year 2255). */
#define ATP_TID_MICROS_MAX ((UINT64_C(1) << 53) - 1)

/* Writes the 13-char TID of (micros, clock_id) plus a NUL to `out`. Only the low 10 bits of
 * clock_id and the low 54 bits of micros are used (54 so that every syntactically valid TID,
 * including those with bit 63 set, re-encodes to itself; real times stay below 2^53). */
void atp_tid_encode(uint64_t micros, unsigned clock_id, char out[14]);

/* Decodes a TID: exactly 13 chars of the alphabet, the first in 234567abcdefghij (the same rule
 * as atp_syntax_check_tid). Writes micros (< 2^54; >= 2^53 only for first chars c..j, which never
 * come from a conforming generator) and clock_id only on success. Errors: ATP_EINVAL. */
ATP_NODISCARD int atp_tid_decode(atp_slice s, uint64_t *micros, unsigned *clock_id, atp_err *err);

/* Orders two TIDs: <0, 0, >0. For valid TIDs this is value and time order (plain byte order);
 * other inputs compare bytewise, shorter first on a common prefix, so the order stays total. */
int atp_tid_compare(atp_slice a, atp_slice b);

/* ---- generation ---- */

/* A generator with an explicit clock: pure, not thread-safe (one per thread or under a lock).
 * `last` is the last microsecond value issued (0 to start), `clock_id` the 10-bit id to stamp. */
typedef struct atp_tid_gen {
    uint64_t last;
    unsigned clock_id;
} atp_tid_gen;

/* Issues the TID for max(now_micros, g->last + 1), so successive TIDs strictly increase even if
 * the clock stalls or goes backwards, and records it in g->last. Writes 13 chars + NUL. */
void atp_tid_gen_next(atp_tid_gen *g, uint64_t now_micros, char out[14]);

/* The process-wide generator: a TID from the wall clock, strictly greater than every TID this
 * process issued before (through atp_tid_now or atp_tid_next_after), from any thread, even when
 * the wall clock goes backwards. The clock id is drawn once per process from getrandom(). Thread-
 * safe and lock-free (a compare-and-swap on the last value). Writes 13 chars + NUL. */
void atp_tid_now(char out[14]);

/* Like atp_tid_now, but also strictly greater than `prev` (e.g. the previous repo rev, which may
 * come from before a restart or another host): its microseconds are max(now, last + 1,
 * prev + 1). An empty prev, or one that is not a TID or already holds ATP_TID_MICROS_MAX
 * microseconds or more (never a conforming TID), is ignored: the result is then only >= now. */
void atp_tid_next_after(atp_slice prev, char out[14]);

#endif

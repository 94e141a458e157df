/* pds/src/ratelimit.h: token buckets keyed by a string (client IP), thread-safe.
 *
 * A bucket holds `points` tokens and refills at points/window_s per second. Keys live in a
 * fixed table (PDS_RL_SLOTS); when it is full the stalest bucket is reused, so memory is
 * bounded whatever the number of clients (a flood of addresses can only reset buckets, and a
 * reset bucket is full: at worst the limit is loosened for those, never tightened).
 */
#ifndef PDS_RATELIMIT_H
#define PDS_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "pds.h"

#define PDS_RL_SLOTS 4096

/* What a check decided, for the RateLimit-* headers. */
typedef struct pds_rl_result {
    bool allowed;
    unsigned limit, remaining;
    int64_t reset; /* Unix seconds when the bucket is full again */
    unsigned window_s;
} pds_rl_result;

pds_ratelimit *pds_ratelimit_create(unsigned points, unsigned window_s);
void pds_ratelimit_destroy(pds_ratelimit *rl); /* NULL is a no-op */

/* Takes one token for `key` at time `now_ms` (Unix milliseconds). */
void pds_ratelimit_take(pds_ratelimit *rl, const char *key, int64_t now_ms, pds_rl_result *out);

/* Takes a token for the request's peer address; on refusal sends 429 RateLimitExceeded with
 * RateLimit-* and Retry-After headers and returns ATP_ERATE; adds RateLimit-* headers either
 * way. `rl` NULL (limits disabled): 0. */
int pds_ratelimit_check(pds_ratelimit *rl, atp_req *r);

#endif

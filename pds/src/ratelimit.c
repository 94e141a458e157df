/* pds/src/ratelimit.c: fixed-size open table of token buckets. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 64

typedef struct bucket {
    char key[KEY_MAX];
    double tokens;
    int64_t last_ms; /* 0: empty slot */
} bucket;

struct pds_ratelimit {
    pthread_mutex_t mu;
    unsigned points, window_s;
    bucket slots[PDS_RL_SLOTS];
};

pds_ratelimit *pds_ratelimit_create(unsigned points, unsigned window_s)
{
    pds_ratelimit *rl = atp_xcalloc(1, sizeof *rl);
    pthread_mutex_init(&rl->mu, NULL);
    rl->points = points ? points : 1;
    rl->window_s = window_s ? window_s : 1;
    return rl;
}

void pds_ratelimit_destroy(pds_ratelimit *rl)
{
    if (rl) {
        pthread_mutex_destroy(&rl->mu);
        free(rl);
    }
}

static uint32_t hash_key(const char *k)
{
    uint32_t h = 2166136261u; /* FNV-1a: keys are addresses, no adversarial collisions matter
                                 beyond sharing a probe window */
    for (; *k; k++) {
        h = (h ^ (uint8_t)*k) * 16777619u;
    }
    return h;
}

/* The key's bucket, or the stalest one in its probe window (reset for this key). */
static bucket *find(pds_ratelimit *rl, const char *key)
{
    uint32_t h = hash_key(key);
    bucket *victim = NULL;
    for (uint32_t i = 0; i < 16; i++) {
        bucket *b = &rl->slots[(h + i) % PDS_RL_SLOTS];
        if (b->last_ms != 0 && strcmp(b->key, key) == 0) {
            return b;
        }
        if (!victim || b->last_ms < victim->last_ms) {
            victim = b;
        }
    }
    snprintf(victim->key, sizeof victim->key, "%s", key);
    victim->tokens = rl->points;
    victim->last_ms = 0;
    return victim;
}

void pds_ratelimit_take(pds_ratelimit *rl, const char *key, int64_t now_ms, pds_rl_result *out)
{
    double rate = (double)rl->points / ((double)rl->window_s * 1000.0); /* tokens per ms */
    bucket *b;
    pthread_mutex_lock(&rl->mu);
    b = find(rl, key);
    if (b->last_ms != 0 && now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate;
        if (b->tokens > rl->points) {
            b->tokens = rl->points;
        }
    }
    b->last_ms = now_ms > 0 ? now_ms : 1;
    out->allowed = b->tokens >= 1.0;
    if (out->allowed) {
        b->tokens -= 1.0;
    }
    out->limit = rl->points;
    out->remaining = (unsigned)b->tokens;
    out->window_s = rl->window_s;
    out->reset = (now_ms + (int64_t)(((double)rl->points - b->tokens) / rate)) / 1000 + 1;
    pthread_mutex_unlock(&rl->mu);
}

static void add_headers(atp_req *r, const pds_rl_result *res)
{
    char v[64];
    snprintf(v, sizeof v, "%u", res->limit);
    atp_req_add_header(r, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%u", res->remaining);
    atp_req_add_header(r, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%lld", (long long)res->reset);
    atp_req_add_header(r, "RateLimit-Reset", v);
    snprintf(v, sizeof v, "%u;w=%u", res->limit, res->window_s);
    atp_req_add_header(r, "RateLimit-Policy", v);
}

int pds_ratelimit_check(pds_ratelimit *rl, atp_req *r)
{
    pds_rl_result res;
    struct timespec ts;
    if (!rl) {
        return 0;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    pds_ratelimit_take(rl, atp_req_remote(r), (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
                       &res);
    add_headers(r, &res);
    if (!res.allowed) {
        char after[24];
        int64_t wait = res.reset - (int64_t)ts.tv_sec;
        snprintf(after, sizeof after, "%lld", (long long)(wait > 0 ? wait : 1));
        atp_req_add_header(r, "Retry-After", after);
        atp_req_error_status(r, 429, "RateLimitExceeded", "Rate Limit Exceeded");
        return ATP_ERATE;
    }
    return 0;
}

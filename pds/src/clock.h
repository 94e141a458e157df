/* pds/src/clock.h: the pds's clock helpers: the CLOCK_REALTIME instant `ms` milliseconds from
 * now, the form pthread_cond_timedwait takes (every periodic thread of the pds waits on one),
 * and a monotonic millisecond count for intervals. */
#ifndef PDS_CLOCK_H
#define PDS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline struct timespec pds_deadline_ms(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static inline int64_t pds_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

#endif

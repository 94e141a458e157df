/* tid.c: TID encoding, decoding and generation. See atp/tid.h. */
#include "atp/tid.h"

#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char alphabet[] = "234567abcdefghijklmnopqrstuvwxyz";

#define MICROS_MASK ((UINT64_C(1) << 54) - 1)

/* Value of one base32-sortable char, or -1. */
static int b32s_value(uint8_t c)
{
    if (c >= '2' && c <= '7') {
        return c - '2';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 6;
    }
    return -1;
}

void atp_tid_encode(uint64_t micros, unsigned clock_id, char out[14])
{
    uint64_t v = ((micros & MICROS_MASK) << 10) | (clock_id & ATP_TID_CLOCK_MAX);
    /* 13 groups of 5 bits from the top; the first group has only 4 real bits (v >> 60). */
    for (int i = 0; i < ATP_TID_LEN; i++) {
        out[i] = alphabet[(v >> (60 - 5 * i)) & 31];
    }
    out[ATP_TID_LEN] = '\0';
}

int atp_tid_decode(atp_slice s, uint64_t *micros, unsigned *clock_id, atp_err *err)
{
    uint64_t v = 0;
    if (s.len != ATP_TID_LEN) {
        return atp_err_set(err, ATP_EINVAL, 0, "tid: must be %d chars, not %zu", ATP_TID_LEN,
                           s.len);
    }
    for (size_t i = 0; i < s.len; i++) {
        int d = b32s_value(s.ptr[i]);
        if (d < 0) {
            return atp_err_set(err, ATP_EINVAL, i, "tid: invalid byte 0x%02x", s.ptr[i]);
        }
        /* The first char holds a 65th bit, which must be zero: values 0-15 only. */
        if (i == 0 && d > 15) {
            return atp_err_set(err, ATP_EINVAL, 0, "tid: first char '%c' sets the high bit",
                               s.ptr[0]);
        }
        v = (v << 5) | (uint64_t)d;
    }
    *micros = v >> 10;
    *clock_id = (unsigned)(v & ATP_TID_CLOCK_MAX);
    return 0;
}

int atp_tid_compare(atp_slice a, atp_slice b)
{
    /* Fixed width, big-endian, alphabet in ASCII order: byte order is value order. */
    return atp_slice_cmp(a, b);
}

void atp_tid_gen_next(atp_tid_gen *g, uint64_t now_micros, char out[14])
{
    uint64_t next = now_micros > g->last ? now_micros : g->last + 1;
    g->last = next;
    atp_tid_encode(next, g->clock_id, out);
}

/* ---- the process-wide generator ----
 *
 * The one documented exception to "no globals" (STYLE.md §2): TIDs (repo revs, record keys) must
 * be unique and increasing across every thread of the process, whichever context issues them,
 * and that needs one shared last value. It is a lock-free atomic, so any thread may call at any
 * time, and a compare-and-swap makes each issued value strictly greater than the one before. */

#define CLOCK_UNSET UINT32_MAX

static _Atomic uint64_t g_last_micros;
static _Atomic uint32_t g_clock_id = CLOCK_UNSET;

static uint64_t wall_micros(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0) {
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A random 10-bit id. The clock id only lowers the odds that two processes issue the same TID,
 * so if the kernel has no getrandom() a mix of time and pid is good enough. */
static uint32_t random_clock_id(void)
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        uint64_t x = wall_micros() ^ ((uint64_t)getpid() << 20);
        x *= UINT64_C(0x9e3779b97f4a7c15);
        v = (uint32_t)(x >> 32);
    }
    return v & ATP_TID_CLOCK_MAX;
}

/* Chosen once: the first thread to store its draw wins and the others adopt it. */
static unsigned process_clock_id(void)
{
    uint32_t id = atomic_load_explicit(&g_clock_id, memory_order_acquire);
    if (id != CLOCK_UNSET) {
        return id;
    }
    uint32_t fresh = random_clock_id(), expected = CLOCK_UNSET;
    if (!atomic_compare_exchange_strong(&g_clock_id, &expected, fresh)) {
        return expected;
    }
    return fresh;
}

/* Issues max(floor, last + 1) and makes it the new last value, atomically. */
static uint64_t issue(uint64_t floor)
{
    uint64_t last = atomic_load(&g_last_micros), next;
    do {
        next = floor > last ? floor : last + 1;
    } while (!atomic_compare_exchange_weak(&g_last_micros, &last, next));
    return next;
}

void atp_tid_now(char out[14])
{
    atp_tid_encode(issue(wall_micros()), process_clock_id(), out);
}

void atp_tid_next_after(atp_slice prev, char out[14])
{
    uint64_t floor = wall_micros(), pm = 0;
    unsigned pc = 0;
    if (prev.len > 0 && atp_tid_decode(prev, &pm, &pc, NULL) == 0 && pm < ATP_TID_MICROS_MAX &&
        pm + 1 > floor) {
        floor = pm + 1;
    }
    atp_tid_encode(issue(floor), process_clock_id(), out);
}

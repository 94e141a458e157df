/* test_tid.c: TID encode/decode against the spec's examples, ordering, the fake-clock generator,
 * the process-wide generator under many threads, and invalid inputs. */
#include <pthread.h>
#include <time.h>

#include "atp/tid.h"
#include "t.h"

#define JAN_2024 UINT64_C(1704067200000000) /* 2024-01-01T00:00:00Z in microseconds */

static atp_slice S(const char *s)
{
    return atp_slice_str(s);
}

/* Deterministic test values (xorshift64*), not rand(). */
static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * UINT64_C(0x2545f4914f6cdd1d);
}

static void test_spec_vectors(void)
{
    char out[14];
    uint64_t us = 0;
    unsigned clk = 99;
    atp_err e;
    atp_tid_encode(JAN_2024, 0, out);
    T_STREQ(out, "3khuwc44c2222");
    atp_tid_encode(JAN_2024, 31, out);
    T_STREQ(out, "3khuwc44c222z");
    atp_tid_encode(0, 0, out);
    T_STREQ(out, "2222222222222");
    T_OKE(atp_tid_decode(S("3kznmn7xqxl22"), &us, &clk, &e), &e);
    T_EQ(us, UINT64_C(1723607526857649)); /* 2024-08-14T03:52:06.857649Z */
    T_EQ(clk, 0);
    T_OKE(atp_tid_decode(S("3khuwc44c222z"), &us, &clk, &e), &e);
    T_EQ(us, JAN_2024);
    T_EQ(clk, 31);
    T_OKE(atp_tid_decode(S("2222222222222"), &us, &clk, &e), &e);
    T_EQ(us, 0);
    T_EQ(clk, 0);
    /* Interop valid TIDs decode; the largest spec value and the largest syntax value. */
    T_OKE(atp_tid_decode(S("3jzfcijpj2z2a"), &us, &clk, &e), &e);
    atp_tid_encode(ATP_TID_MICROS_MAX, ATP_TID_CLOCK_MAX, out);
    T_STREQ(out, "bzzzzzzzzzzzz");
    T_OKE(atp_tid_decode(S("jzzzzzzzzzzzz"), &us, &clk, &e), &e);
    T_EQ(us, (UINT64_C(1) << 54) - 1);
    T_EQ(clk, 1023);
    atp_tid_encode(us, clk, out);
    T_STREQ(out, "jzzzzzzzzzzzz");
}

static void test_roundtrip_and_order(void)
{
    uint64_t x = 0x1234567, prev_us = 0;
    char prev[14], cur[14];
    atp_tid_encode(0, 0, prev);
    for (int i = 0; i < 20000; i++) {
        uint64_t us = rng_next(&x) & ATP_TID_MICROS_MAX, got = 0;
        unsigned clk = (unsigned)(rng_next(&x) & 1023), gclk = 0;
        atp_tid_encode(us, clk, cur);
        T_EQ(strlen(cur), 13);
        T_OK(atp_tid_decode(S(cur), &got, &gclk, NULL));
        T_EQ(got, us);
        T_EQ(gclk, clk);
        T_TRUE(cur[0] >= '2' && cur[0] <= 'b');
        /* string order == time order (ties broken by clock id) */
        int c = atp_tid_compare(S(prev), S(cur));
        if (us != prev_us) {
            T_EQ(c < 0, prev_us < us);
        }
        memcpy(prev, cur, sizeof prev);
        prev_us = us;
    }
    T_TRUE(atp_tid_compare(S("3khuwc44c2222"), S("3khuwc44c222z")) < 0);
    T_TRUE(atp_tid_compare(S("3khuwc44c222z"), S("3khuwc44c2222")) > 0);
    T_EQ(atp_tid_compare(S("3khuwc44c2222"), S("3khuwc44c2222")), 0);
    /* high bits beyond the ranges are dropped, not smeared into other fields */
    char out[14];
    atp_tid_encode(JAN_2024 | (UINT64_C(1) << 60), 1024 + 31, out);
    T_STREQ(out, "3khuwc44c222z");
}

static void test_decode_invalid(void)
{
    static const char *const bad[] = {"3jzfcijpj2z21",
                                      "0000000000000",
                                      "3JZFCIJPJ2Z2A",
                                      "3jzfcijpj2z2aa",
                                      "3jzfcijpj2z2",
                                      "222",
                                      "",
                                      "3jzf-cij-pj2z-2a",
                                      "zzzzzzzzzzzzz",
                                      "kjzfcijpj2z2a"};
    uint64_t us = 7;
    unsigned clk = 7;
    atp_err e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        atp_err_clear(&e);
        T_EQ(atp_tid_decode(S(bad[i]), &us, &clk, &e), ATP_EINVAL);
        T_EQ(e.code, ATP_EINVAL);
        T_TRUE(e.msg[0] != '\0');
    }
    T_EQ(atp_tid_decode(atp_slice_make("3jzfcij\0j2z2a", 13), &us, &clk, &e), ATP_EINVAL);
    T_EQ(e.off, 7);
    T_EQ(atp_tid_decode(S("3jzfcij\xc3\xa9j2z2"), &us, &clk, &e), ATP_EINVAL);
    T_EQ(e.off, 7);
    T_EQ(atp_tid_decode(S("kjzfcijpj2z2a"), &us, &clk, &e), ATP_EINVAL);
    T_STREQ(e.msg, "tid: first char 'k' sets the high bit");
    T_EQ(us, 7);
    T_EQ(clk, 7);
}

static void test_gen_fake_clock(void)
{
    static const uint64_t clock_seq[] = {100, 100, 99, 50, 200, 200, 1000, 0};
    static const uint64_t want[] = {100, 101, 102, 103, 200, 201, 1000, 1001};
    atp_tid_gen g = {0, 5};
    char prev[14] = "", cur[14];
    for (size_t i = 0; i < sizeof clock_seq / sizeof clock_seq[0]; i++) {
        uint64_t us = 0;
        unsigned clk = 0;
        atp_tid_gen_next(&g, clock_seq[i], cur);
        T_OK(atp_tid_decode(S(cur), &us, &clk, NULL));
        T_EQ(us, want[i]);
        T_EQ(clk, 5);
        T_EQ(g.last, want[i]);
        T_TRUE(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof prev);
    }
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void test_now(void)
{
    char a[14], b[14];
    uint64_t before = wall_us(), us = 0, us2 = 0;
    unsigned clk = 0, clk2 = 0;
    atp_tid_now(a);
    uint64_t after = wall_us();
    T_OK(atp_tid_decode(S(a), &us, &clk, NULL));
    T_TRUE(us >= before && us <= after + 1000);
    T_TRUE(clk <= 1023);
    for (int i = 0; i < 1000; i++) {
        atp_tid_now(b);
        T_TRUE(strcmp(a, b) < 0);
        T_OK(atp_tid_decode(S(b), &us2, &clk2, NULL));
        T_EQ(clk2, clk);
        memcpy(a, b, sizeof a);
    }
}

static void test_next_after(void)
{
    char prev[14], out[14];
    uint64_t now = wall_us(), us = 0;
    unsigned clk = 0;
    /* A prev 10 s in the future (another host's clock): the result still sorts after it. */
    atp_tid_encode(now + 10000000, 1023, prev);
    atp_tid_next_after(S(prev), out);
    T_TRUE(strcmp(out, prev) > 0);
    T_OK(atp_tid_decode(S(out), &us, &clk, NULL));
    T_EQ(us, now + 10000001);
    /* ... and atp_tid_now continues after it: the state is shared. */
    char later[14];
    atp_tid_now(later);
    T_TRUE(strcmp(later, out) > 0);
    /* A past prev, an empty one, an invalid one or an out-of-range one: just a fresh TID. */
    static const char *const ignored[] = {"2222222222222", "", "not-a-tid", "jzzzzzzzzzzzz",
                                          "bzzzzzzzzzzzz"};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
        char next[14];
        atp_tid_next_after(S(ignored[i]), next);
        T_TRUE(strcmp(next, later) > 0);
        T_TRUE(next[0] >= '2' && next[0] <= 'b');
        memcpy(later, next, sizeof later);
    }
}

#define THREADS    8
#define PER_THREAD 20000

typedef struct worker {
    char (*tids)[14];
    int failures;
    int use_after;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        if (w->use_after && i > 0) {
            atp_tid_next_after(atp_slice_make(w->tids[i - 1], 13), w->tids[i]);
        } else {
            atp_tid_now(w->tids[i]);
        }
        if (i > 0 && strcmp(w->tids[i - 1], w->tids[i]) >= 0) {
            w->failures++;
        }
    }
    return NULL;
}

static int cmp_tid(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_threads(void)
{
    pthread_t th[THREADS];
    worker w[THREADS];
    char(*all)[14] = calloc((size_t)THREADS * PER_THREAD, 14);
    if (!all) {
        abort();
    }
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker){all + (size_t)t * PER_THREAD, 0, t % 2};
        T_EQ(pthread_create(&th[t], NULL, work, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        T_EQ(pthread_join(th[t], NULL), 0);
        T_EQ(w[t].failures, 0);
    }
    qsort(all, (size_t)THREADS * PER_THREAD, 14, cmp_tid);
    int dups = 0;
    for (size_t i = 1; i < (size_t)THREADS * PER_THREAD; i++) {
        dups += strcmp(all[i - 1], all[i]) == 0;
    }
    T_EQ(dups, 0);
    printf("# %d threads x %d TIDs: %d duplicates\n", THREADS, PER_THREAD, dups);
    free(all);
}

int main(void)
{
    T_RUN(test_spec_vectors);
    T_RUN(test_roundtrip_and_order);
    T_RUN(test_decode_invalid);
    T_RUN(test_gen_fake_clock);
    T_RUN(test_now);
    T_RUN(test_next_after);
    T_RUN(test_threads);
    return t_done();
}

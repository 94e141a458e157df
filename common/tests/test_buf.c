/* test_buf.c: slices, bounded buffers with sticky errors, errors, the arena. */
#include "atp/buf.h"
#include "t.h"

static void test_buf_limit_is_sticky(void)
{
    atp_buf b;
    atp_buf_init(&b, 8);
    atp_buf_append_str(&b, "12345");
    T_EQ(b.err, 0);
    atp_buf_append_str(&b, "6789");
    T_EQ(b.err, ATP_ELIMIT);
    atp_buf_append_str(&b, "x");
    T_EQ(b.len, 5);
    T_EQ(b.err, ATP_ELIMIT);
    T_TRUE(atp_buf_take(&b, NULL) == NULL);
    atp_buf_reset(&b);
    atp_buf_printf(&b, "%d-%s", 42, "ok");
    T_EQ(b.err, 0);
    T_MEMEQ(b.ptr, b.len, "42-ok", 5);
    atp_buf_release(&b);
}

static void test_buf_grow_and_take(void)
{
    atp_buf b;
    size_t len;
    atp_buf_init(&b, 0);
    for (int i = 0; i < 10000; i++) {
        atp_buf_append_byte(&b, (uint8_t)i);
    }
    atp_buf_printf(&b, "%0300d", 7);
    T_EQ(b.len, 10300);
    uint8_t *p = atp_buf_take(&b, &len);
    T_EQ(len, 10300);
    T_EQ(p[255], 255);
    T_EQ(p[len], 0);
    T_TRUE(b.ptr == NULL && b.len == 0);
    free(p);
    atp_buf_release(&b);
}

static void test_slices(void)
{
    atp_slice a = ATP_SLICE_LIT("abc"), b = atp_slice_str("abd");
    T_TRUE(atp_slice_cmp(a, b) < 0);
    T_TRUE(atp_slice_cmp(ATP_SLICE_LIT("ab"), a) < 0);
    T_EQ(atp_slice_cmp(a, atp_slice_str("abc")), 0);
    T_TRUE(atp_slice_eq_str(a, "abc"));
    T_TRUE(atp_slice_has_prefix(a, ATP_SLICE_LIT("ab")));
    T_FALSE(atp_slice_has_prefix(ATP_SLICE_LIT("a"), a));
    T_EQ(atp_slice_sub(a, 1, 99).len, 2);
    T_EQ(atp_slice_sub(a, 9, 1).len, 0);
}

static void test_errors(void)
{
    atp_err e;
    T_EQ(atp_err_set(&e, ATP_ELIMIT, 12, "too big: %d", 5), ATP_ELIMIT);
    T_STREQ(e.msg, "too big: 5");
    T_EQ(e.off, 12);
    T_EQ(atp_err_status(ATP_ELIMIT), 413);
    T_STREQ(atp_err_xrpc(ATP_EINVAL), "InvalidRequest");
    T_STREQ(atp_err_name(ATP_ENOTFOUND), "ATP_ENOTFOUND");
    T_EQ(atp_err_set(NULL, ATP_EINVAL, 0, "x"), ATP_EINVAL);
}

static void test_arena(void)
{
    atp_arena *a = atp_arena_create(256);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 100; i++) {
            uint8_t *p = atp_arena_alloc(a, (size_t)i + 1);
            T_EQ((uintptr_t)p % 16, 0);
            memset(p, 0xab, (size_t)i + 1);
        }
        char *big = atp_arena_dup(a, "hello", 5);
        T_STREQ(big, "hello");
        T_TRUE(atp_arena_used(a) > 5000);
        atp_arena_reset(a);
        T_EQ(atp_arena_used(a), 0);
    }
    atp_arena_destroy(a);
    atp_arena_destroy(NULL);
}

int main(void)
{
    T_RUN(test_buf_limit_is_sticky);
    T_RUN(test_buf_grow_and_take);
    T_RUN(test_slices);
    T_RUN(test_errors);
    T_RUN(test_arena);
    return t_done();
}

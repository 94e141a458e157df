/* test_varint.c: unsigned LEB128, shortest form, 9-byte / 63-bit bound. */
#include "atp/varint.h"
#include "t.h"

static void check_vec(uint64_t v, const uint8_t *enc, size_t n)
{
    uint8_t out[ATP_VARINT_MAX_BYTES + 1];
    uint64_t got = 0;
    size_t used = 0;
    atp_err err;
    T_EQ(atp_varint_len(v), n);
    T_MEMEQ(out, atp_varint_encode(v, out), enc, n);
    T_OKE(atp_varint_decode(atp_slice_make(enc, n), ATP_VARINT_MAX_BYTES, &got, &used, &err),
          &err);
    T_EQ(got, v);
    T_EQ(used, n);
}

static void test_varint_vectors(void)
{
    /* The spec's examples (repository.md §4) plus the boundaries of each length. */
    check_vec(0, (const uint8_t *)"\x00", 1);
    check_vec(1, (const uint8_t *)"\x01", 1);
    check_vec(58, (const uint8_t *)"\x3a", 1);
    check_vec(115, (const uint8_t *)"\x73", 1);
    check_vec(127, (const uint8_t *)"\x7f", 1);
    check_vec(128, (const uint8_t *)"\x80\x01", 2);
    check_vec(129, (const uint8_t *)"\x81\x01", 2);
    check_vec(224, (const uint8_t *)"\xe0\x01", 2);
    check_vec(300, (const uint8_t *)"\xac\x02", 2);
    check_vec(16383, (const uint8_t *)"\xff\x7f", 2);
    check_vec(16384, (const uint8_t *)"\x80\x80\x01", 3);
    check_vec(0x71, (const uint8_t *)"\x71", 1);
    check_vec(((uint64_t)1 << 63) - 1,
              (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9);
    check_vec((uint64_t)1 << 56, (const uint8_t *)"\x80\x80\x80\x80\x80\x80\x80\x80\x01", 9);
}

static int dec(const char *bytes, size_t n, size_t max, uint64_t *v, size_t *used)
{
    atp_err err;
    return atp_varint_decode(atp_slice_make(bytes, n), max, v, used, &err);
}

static void test_varint_rejects(void)
{
    uint64_t v = 77;
    size_t used = 99;
    atp_err err;
    T_EQ(dec("", 0, 9, &v, &used), ATP_ETRUNC);
    T_EQ(dec("\x80", 1, 9, &v, &used), ATP_ETRUNC);
    T_EQ(dec("\xff\xff", 2, 9, &v, &used), ATP_ETRUNC);
    /* Non-shortest: a trailing zero group. */
    T_EQ(dec("\x80\x00", 2, 9, &v, &used), ATP_EINVAL);
    T_EQ(dec("\x81\x80\x00", 3, 9, &v, &used), ATP_EINVAL);
    /* Ten bytes, or a ninth byte that continues: past 63 bits. */
    T_EQ(dec("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, 9, &v, &used), ATP_EINVAL);
    T_EQ(dec("\xff\xff\xff\xff\xff\xff\xff\xff\x80", 9, 9, &v, &used), ATP_EINVAL);
    /* The caller's byte limit. */
    T_EQ(dec("\x80\x80\x01", 3, 2, &v, &used), ATP_EINVAL);
    T_EQ(dec("\xff\x7f", 2, 2, &v, &used), 0);
    T_EQ(v, 16383);
    T_EQ(dec("\x80\x80", 2, 2, &v, &used), ATP_EINVAL);
    /* Out-params untouched on failure, offset reported. */
    v = 77;
    used = 99;
    T_EQ(atp_varint_decode(atp_slice_make("\x80\x80\x00", 3), 9, &v, &used, &err), ATP_EINVAL);
    T_EQ(err.code, ATP_EINVAL);
    T_EQ(err.off, 2);
    T_TRUE(err.msg[0] != '\0');
    T_EQ(v, 77);
    T_EQ(used, 99);
    /* Trailing bytes are left to the caller. */
    T_EQ(dec("\x05\xff\xff", 3, 9, &v, &used), 0);
    T_EQ(v, 5);
    T_EQ(used, 1);
}

static void test_varint_roundtrip_and_append(void)
{
    atp_buf b;
    uint64_t x = 0x9e3779b97f4a7c15u;
    atp_buf_init(&b, 0);
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t v = (x >> (unsigned)(i % 64)) & (((uint64_t)1 << 63) - 1);
        uint64_t got = 0;
        size_t used = 0;
        atp_buf_reset(&b);
        atp_varint_append(&b, v);
        T_EQ(b.len, atp_varint_len(v));
        T_OK(atp_varint_decode(atp_buf_slice(&b), 9, &got, &used, NULL));
        T_TRUE(got == v);
        T_EQ(used, b.len);
    }
    atp_buf_release(&b);
}

int main(void)
{
    T_RUN(test_varint_vectors);
    T_RUN(test_varint_rejects);
    T_RUN(test_varint_roundtrip_and_append);
    return t_done();
}

/* test_sha256.c: FIPS 180-2 vectors, one-shot vs incremental. */
#include "atp/sha256.h"
#include "t.h"

/* Local hex formatting: this test links only the sha256 module. */
static void check_hex(const uint8_t d[ATP_SHA256_LEN], const char *hex)
{
    char got[2 * ATP_SHA256_LEN + 1];
    for (size_t i = 0; i < ATP_SHA256_LEN; i++) {
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    }
    T_STREQ(got, hex);
}

static void test_sha256_vectors(void)
{
    uint8_t d[ATP_SHA256_LEN];
    atp_sha256(atp_slice_make(NULL, 0), d);
    check_hex(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    atp_sha256(ATP_SLICE_LIT("abc"), d);
    check_hex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    atp_sha256(ATP_SLICE_LIT("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), d);
    check_hex(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* data-model.md §5: the blob "hello world". */
    atp_sha256(ATP_SLICE_LIT("hello world"), d);
    check_hex(d, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
}

static void test_sha256_incremental(void)
{
    static uint8_t data[1000000];
    uint8_t d1[ATP_SHA256_LEN], d2[ATP_SHA256_LEN];
    atp_sha256_ctx c;
    memset(data, 'a', sizeof data);
    /* A million 'a' in uneven chunks (FIPS 180-2 appendix B.3). */
    atp_sha256_init(&c);
    for (size_t off = 0, step = 1; off < sizeof data; off += step, step = step * 3 % 997 + 1) {
        size_t n = step < sizeof data - off ? step : sizeof data - off;
        atp_sha256_update(&c, atp_slice_make(data + off, n));
    }
    atp_sha256_update(&c, atp_slice_make(NULL, 0));
    atp_sha256_final(&c, d1);
    check_hex(d1, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    atp_sha256(atp_slice_make(data, sizeof data), d2);
    T_MEMEQ(d1, sizeof d1, d2, sizeof d2);
    /* The context is reusable after init. */
    atp_sha256_init(&c);
    atp_sha256_update(&c, ATP_SLICE_LIT("ab"));
    atp_sha256_update(&c, ATP_SLICE_LIT("c"));
    atp_sha256_final(&c, d1);
    check_hex(d1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    T_RUN(test_sha256_vectors);
    T_RUN(test_sha256_incremental);
    return t_done();
}

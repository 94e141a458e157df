/* fuzz_multibase.c: for every base, (1) the input bytes encode then decode to themselves and
 * (2) any string the decoder accepts decodes to bytes whose encoding decodes to the same bytes
 * again (decode is a left inverse of encode; encode picks one canonical spelling). */
#include <stdlib.h>
#include <string.h>

#include "atp/multibase.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const atp_base bases[] = {ATP_BASE32, ATP_BASE64, ATP_BASE64URL, ATP_BASE16,
                                 ATP_BASE58BTC};

static void encode_roundtrip(atp_base base, atp_slice in, uint8_t *tmp, size_t cap)
{
    atp_buf b;
    size_t n = 0;
    if (base == ATP_BASE58BTC && in.len > ATP_BASE58_MAX_BYTES) {
        return;
    }
    atp_buf_init(&b, 0);
    atp_base_encode(&b, base, in);
    if (b.err != 0 || b.len > atp_base_encoded_max(base, in.len)) {
        abort();
    }
    if (base == ATP_BASE58BTC && b.len > ATP_BASE58_MAX_CHARS) {
        atp_buf_release(&b); /* documented: long base58 encodings do not decode */
        return;
    }
    if (atp_base_decode(base, atp_buf_slice(&b), tmp, cap, &n, NULL) != 0 || n != in.len ||
        (n && memcmp(tmp, in.ptr, n) != 0)) {
        abort();
    }
    atp_buf_release(&b);
}

static void decode_idempotent(atp_base base, atp_slice in, uint8_t *tmp, uint8_t *tmp2,
                              size_t cap)
{
    size_t n = 0, n2 = 0;
    atp_buf b;
    if (atp_base_decode(base, in, tmp, cap, &n, NULL) != 0) {
        return;
    }
    if (n > atp_base_decoded_max(base, in.len)) {
        abort();
    }
    atp_buf_init(&b, 0);
    atp_base_encode(&b, base, atp_slice_make(tmp, n));
    if (b.err != 0 || atp_base_decode(base, atp_buf_slice(&b), tmp2, cap, &n2, NULL) != 0 ||
        n2 != n || (n && memcmp(tmp, tmp2, n) != 0)) {
        abort();
    }
    atp_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = size * 2 + 16, n = 0;
    uint8_t *tmp = malloc(cap), *tmp2 = malloc(cap);
    atp_slice in = atp_slice_make(data, size);
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        encode_roundtrip(bases[i], in, tmp, cap);
        decode_idempotent(bases[i], in, tmp, tmp2, cap);
    }
    atp_base found;
    if (atp_multibase_decode(in, tmp, cap, &n, &found, NULL) == 0 &&
        (size == 0 || data[0] != (uint8_t)found)) {
        abort();
    }
    free(tmp);
    free(tmp2);
    return 0;
}

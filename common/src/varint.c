/* varint.c: unsigned LEB128 (multiformats unsigned-varint). Shortest form only, so that one
 * value has one encoding: CIDs and CAR section lengths are hashed or compared as bytes. */
#include "atp/varint.h"

#include <assert.h>

int atp_varint_decode(atp_slice in, size_t max_bytes, uint64_t *value, size_t *used,
                      atp_err *err)
{
    uint64_t v = 0;
    if (max_bytes == 0 || max_bytes > ATP_VARINT_MAX_BYTES) {
        max_bytes = ATP_VARINT_MAX_BYTES;
    }
    for (size_t i = 0;; i++) {
        if (i >= max_bytes) {
            return atp_err_set(err, ATP_EINVAL, i, "varint longer than %zu bytes", max_bytes);
        }
        if (i >= in.len) {
            return atp_err_set(err, ATP_ETRUNC, i, "input ends inside a varint");
        }
        uint8_t c = in.ptr[i];
        v |= (uint64_t)(c & 0x7f) << (7 * i);
        if (c & 0x80) {
            continue;
        }
        /* A zero final group after the first byte means a shorter form existed. */
        if (c == 0 && i > 0) {
            return atp_err_set(err, ATP_EINVAL, i, "varint not in shortest form");
        }
        *value = v;
        *used = i + 1;
        return 0;
    }
}

size_t atp_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t atp_varint_encode(uint64_t v, uint8_t *out)
{
    size_t n = 0;
    assert(v < ((uint64_t)1 << 63));
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

void atp_varint_append(atp_buf *b, uint64_t v)
{
    uint8_t tmp[ATP_VARINT_MAX_BYTES + 1];
    size_t n = atp_varint_encode(v, tmp);
    atp_buf_append(b, tmp, n);
}

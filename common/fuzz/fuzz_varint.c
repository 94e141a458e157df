/* fuzz_varint.c: any varint the decoder accepts re-encodes to exactly the bytes it read. */
#include <stdlib.h>
#include <string.h>

#include "atp/varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t v = 0;
    size_t used = 0;
    uint8_t out[ATP_VARINT_MAX_BYTES + 1];
    for (size_t max = 1; max <= ATP_VARINT_MAX_BYTES; max++) {
        if (atp_varint_decode(atp_slice_make(data, size), max, &v, &used, NULL) != 0) {
            continue;
        }
        if (used > max || used > size || atp_varint_len(v) != used ||
            atp_varint_encode(v, out) != used || memcmp(out, data, used) != 0 ||
            v >= ((uint64_t)1 << 63)) {
            abort();
        }
    }
    return 0;
}

/* fuzz_cbor.c: the strict decoder. Invariants: validate agrees with decode (code and offset);
 * decode_prefix agrees too; an accepted input re-encodes to exactly itself (strictness means
 * one value has one encoding); anything accepted under tight limits is accepted by default. */
#include <stdlib.h>
#include <string.h>

#include "atp/cbor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reencode(const atp_cbor *v, const uint8_t *data, size_t size)
{
    atp_buf out;
    atp_buf_init(&out, 0);
    atp_cbor_encode(&out, v);
    if (out.err || out.len != size || (size && memcmp(out.ptr, data, size) != 0)) {
        abort();
    }
    atp_buf_release(&out);
}

static void check_tight(atp_slice in, int rc_default)
{
    atp_cbor_limits l = {.max_len = 64, .max_depth = 3, .max_items = 4, .max_key = 4,
                         .max_total = 10};
    atp_err err = {0};
    int rc = atp_cbor_validate(in, &l, &err);
    if (rc == 0 && rc_default != 0) {
        abort();
    }
    if (rc != 0 && err.msg[0] == '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static atp_arena *a;
    atp_slice in = atp_slice_make(data, size);
    atp_cbor *v = NULL, *pv = NULL;
    atp_err err = {0}, verr = {0};
    size_t used = 0;
    if (!a) {
        a = atp_arena_create(0);
    }
    atp_arena_reset(a);
    int rc = atp_cbor_decode(a, in, NULL, &v, &err);
    int vrc = atp_cbor_validate(in, NULL, &verr);
    if (rc != vrc || (rc != 0 && (err.off != verr.off || err.off > size || v != NULL))) {
        abort();
    }
    int prc = atp_cbor_decode_prefix(a, in, NULL, &pv, &used, NULL);
    if (rc == 0 && (prc != 0 || used != size)) {
        abort();
    }
    if (prc == 0 && rc != 0 && used >= size) {
        abort(); /* the prefix took everything, so the whole decode had to succeed */
    }
    if (rc == 0) {
        check_reencode(v, data, size);
    }
    if (prc == 0) {
        check_reencode(pv, data, used);
    }
    check_tight(in, rc);
    return 0;
}

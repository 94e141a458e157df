/* fuzz_json.c: JSON text -> tree. Invariants: if accepted, the tree encodes to CBOR that the
 * strict CBOR decoder accepts and re-encodes identically; writing the tree back to JSON (compact
 * and pretty) and decoding again gives the same CBOR bytes; data-mode acceptance implies plain
 * acceptance; the cJSON output path agrees too. */
#include <stdlib.h>
#include <string.h>

#include "atp/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_abort(const atp_buf *a, const atp_buf *b)
{
    if (a->err || b->err || a->len != b->len || (a->len && memcmp(a->ptr, b->ptr, a->len) != 0)) {
        abort();
    }
}

/* JSON text of `v` (with `flags`) decoded again must encode to `cbor`. */
static void check_json_back(atp_arena *a, const atp_cbor *v, unsigned flags, unsigned dflags,
                            const atp_buf *cbor)
{
    atp_buf j, c2;
    atp_cbor *back = NULL;
    atp_buf_init(&j, 0);
    atp_buf_init(&c2, 0);
    atp_json_encode(&j, v, flags);
    if (j.err || atp_json_decode(a, atp_buf_slice(&j), dflags, NULL, &back, NULL) != 0) {
        abort();
    }
    atp_cbor_encode(&c2, back);
    same_or_abort(cbor, &c2);
    atp_buf_release(&j);
    atp_buf_release(&c2);
}

static void check_cbor(atp_arena *a, const atp_buf *cbor)
{
    atp_cbor *v = NULL;
    atp_buf c2;
    if (atp_cbor_decode(a, atp_buf_slice(cbor), NULL, &v, NULL) != 0) {
        abort();
    }
    atp_buf_init(&c2, 0);
    atp_cbor_encode(&c2, v);
    same_or_abort(cbor, &c2);
    atp_buf_release(&c2);
}

static void check_cjson(atp_arena *a, const atp_cbor *v, const atp_buf *cbor)
{
    cJSON *j = atp_json_to_cjson(v);
    atp_cbor *back = NULL;
    atp_buf c2;
    if (!j) {
        abort();
    }
    /* cJSON keeps numbers as doubles: exact within the 2^53 range the decoder enforces. */
    if (atp_json_from_cjson(a, j, 0, NULL, &back, NULL) != 0) {
        abort();
    }
    atp_buf_init(&c2, 0);
    atp_cbor_encode(&c2, back);
    same_or_abort(cbor, &c2);
    atp_buf_release(&c2);
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static atp_arena *a;
    atp_slice in = atp_slice_make(data, size);
    atp_cbor *v = NULL, *dv = NULL;
    atp_err err = {0};
    atp_buf cbor;
    if (!a) {
        a = atp_arena_create(0);
    }
    atp_arena_reset(a);
    int rc = atp_json_decode(a, in, 0, NULL, &v, &err);
    int drc = atp_json_decode(a, in, ATP_JSON_DATA, NULL, &dv, NULL);
    if ((drc == 0 && rc != 0) || (rc != 0 && (v != NULL || err.msg[0] == '\0'))) {
        abort();
    }
    if (rc != 0) {
        return 0;
    }
    atp_buf_init(&cbor, 0);
    atp_cbor_encode(&cbor, v);
    check_cbor(a, &cbor);
    check_json_back(a, v, 0, 0, &cbor);
    check_json_back(a, v, ATP_JSON_PRETTY, drc == 0 ? ATP_JSON_DATA : 0, &cbor);
    check_cjson(a, v, &cbor);
    atp_buf_release(&cbor);
    return 0;
}

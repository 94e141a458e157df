/* fuzz_plc.c: did:plc op JSON parsing and validation on arbitrary bytes.
 *
 * Invariants checked (abort on violation):
 *  - parsing returns 0 or ATP_EINVAL / ATP_ELIMIT / ATP_EDEPTH / ATP_EUNSUPPORTED;
 *  - an accepted op re-encodes: JSON -> op -> JSON -> op gives the same signed CBOR, and the
 *    JSON encoding is a fixed point;
 *  - validation as a genesis op (under its derived DID) never crashes and returns a known code;
 *    an op that passes also passes atp_plc_validate_log as a one-op log;
 *  - re-signing an accepted (non-legacy) op with a fixed key gives an op that validates as the
 *    genesis of its own DID when the key is its first rotation key. */
#include <stdlib.h>
#include <string.h>

#include "atp/plc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void round_trip(atp_arena *a, const atp_plc_op *op)
{
    atp_buf j1, j2, c1, c2;
    atp_plc_op back;
    atp_buf_init(&j1, 1 << 20);
    atp_buf_init(&j2, 1 << 20);
    atp_buf_init(&c1, 1 << 20);
    atp_buf_init(&c2, 1 << 20);
    atp_plc_op_encode_json(&j1, op, 0);
    CHECK(j1.err == 0);
    CHECK(atp_plc_op_parse(a, atp_buf_slice(&j1), true, NULL, &back, NULL) == 0);
    atp_plc_op_encode_json(&j2, &back, 0);
    CHECK(atp_slice_eq(atp_buf_slice(&j1), atp_buf_slice(&j2)));
    atp_plc_op_encode_cbor(&c1, op, true);
    atp_plc_op_encode_cbor(&c2, &back, true);
    CHECK(c1.err == 0 && atp_slice_eq(atp_buf_slice(&c1), atp_buf_slice(&c2)));
    atp_buf_release(&j1);
    atp_buf_release(&j2);
    atp_buf_release(&c1);
    atp_buf_release(&c2);
}

static bool known(int rc)
{
    return rc == 0 || rc == ATP_EINVAL || rc == ATP_ESIG || rc == ATP_EEXPIRED || rc == ATP_ELIMIT;
}

static void validate(const atp_plc_op *op)
{
    char did[ATP_PLC_DID_LEN + 1];
    atp_plc_next nx;
    if (op->sig.len == 0 || atp_plc_did_for_genesis(op, did, NULL) != 0) {
        return;
    }
    int rc = atp_plc_check_next(atp_slice_str(did), NULL, 0, op, 0, NULL, &nx, NULL);
    CHECK(known(rc));
    if (rc == 0) {
        CHECK(atp_plc_validate_log(atp_slice_str(did), op, 1, NULL, NULL, NULL, NULL) == 0);
    }
}

static atp_key *fuzz_key(void)
{
    static atp_key *k;
    static const uint8_t d[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
    if (!k) {
        CHECK(atp_key_import_private(ATP_CURVE_K256, atp_slice_make(d, 32), &k, NULL) == 0);
    }
    return k;
}

static void resign(atp_arena *a, const atp_plc_op *in)
{
    atp_plc_op op = *in;
    char did[ATP_PLC_DID_LEN + 1];
    atp_plc_next nx;
    atp_buf b;
    if (op.type != ATP_PLC_OPERATION || op.prev.len != 0) {
        return;
    }
    atp_buf_init(&b, 256);
    atp_didkey_encode(&b, fuzz_key());
    atp_slice *rk = atp_arena_calloc(a, 1, sizeof(atp_slice));
    rk[0] = atp_slice_make(atp_arena_dup(a, b.ptr, b.len), b.len);
    atp_buf_release(&b);
    op.rotation_keys = rk;
    op.n_rotation_keys = 1;
    CHECK(atp_plc_op_sign(a, &op, fuzz_key(), NULL, NULL) == 0);
    CHECK(atp_plc_did_for_genesis(&op, did, NULL) == 0);
    atp_plc_limits lim = atp_plc_limits_default;
    lim.max_cbor = 1 << 20;
    CHECK(atp_plc_check_next(atp_slice_str(did), NULL, 0, &op, 0, &lim, &nx, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op op;
    int rc = atp_plc_op_parse(a, atp_slice_make(data, size), true, NULL, &op, NULL);
    CHECK(rc == 0 || rc == ATP_EINVAL || rc == ATP_ELIMIT || rc == ATP_EDEPTH ||
          rc == ATP_EUNSUPPORTED);
    if (rc == 0) {
        round_trip(a, &op);
        validate(&op);
        resign(a, &op);
    }
    atp_arena_destroy(a);
    return 0;
}

/* fuzz_identity: the PLC operation input handling of the identity endpoints (plc_ops.h).
 * The first byte picks the path, the rest is request JSON:
 *   even: a signPlcOperation body (pds_plc_update_build over a fixed latest op)
 *   odd:  a submitPlcOperation operation (pds_plc_submit_parse against fixed expectations)
 * Invariants: a built op is an unsigned plc_operation with the given prev; building again from
 * it with the same body gives the same op (idempotence); signed, it encodes to JSON that the
 * strict parser reads back to the same bytes and whose signature verifies with the rotation
 * key. An accepted submitted op keeps the server's rotation key, endpoint, signing key and
 * handle, and re-encodes to JSON that is accepted again and encodes identically. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/plc.h"

#include "pds.h"
#include "plc_ops.h"

#define ROT_HEX "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d"
#define SIG_HEX "9085d2bef69286a6cbb51623c8fa258629945cd55ca705cc4e66700396894e0c"
#define PREV "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"

typedef struct fixture {
    atp_key *rot;
    char rot_did[ATP_DIDKEY_MAX_LEN + 1], sig_did[ATP_DIDKEY_MAX_LEN + 1];
    atp_slice rot_keys[1], aka[1];
    atp_plc_vm vm[1];
    atp_plc_service svc[1];
    atp_plc_op last;
    pds_plc_expect want;
} fixture;

static const fixture *fixture_get(void)
{
    static fixture f;
    atp_key *sk = NULL;
    if (f.rot) {
        return &f;
    }
    if (atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(ROT_HEX), &f.rot, NULL) < 0 ||
        atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(SIG_HEX), &sk, NULL) < 0) {
        abort();
    }
    pds_didkey_format(f.rot, f.rot_did);
    pds_didkey_format(sk, f.sig_did);
    atp_key_destroy(sk);
    f.rot_keys[0] = atp_slice_str(f.rot_did);
    f.aka[0] = atp_slice_str("at://alice.test");
    f.vm[0] = (atp_plc_vm){atp_slice_str("atproto"), atp_slice_str(f.sig_did)};
    f.svc[0] = (atp_plc_service){atp_slice_str("atproto_pds"),
                                 atp_slice_str("AtprotoPersonalDataServer"),
                                 atp_slice_str("http://localhost:2583")};
    f.last = (atp_plc_op){.type = ATP_PLC_OPERATION, .rotation_keys = f.rot_keys,
                          .n_rotation_keys = 1, .vms = f.vm, .n_vms = 1, .aka = f.aka,
                          .n_aka = 1, .services = f.svc, .n_services = 1};
    f.want = (pds_plc_expect){f.rot_keys[0], atp_slice_str(f.sig_did), f.svc[0].endpoint,
                              atp_slice_str("alice.test")};
    return &f;
}

static void encode_json(atp_buf *b, const atp_plc_op *op)
{
    atp_buf_init(b, 1 << 20);
    atp_plc_op_encode_json(b, op, 0);
    if (b->err) {
        abort();
    }
}

static void encode_cbor(atp_buf *b, const atp_plc_op *op)
{
    atp_buf_init(b, 1 << 20);
    atp_plc_op_encode_cbor(b, op, false);
    if (b->err) {
        abort();
    }
}

static void same_bytes(const atp_buf *x, const atp_buf *y)
{
    if (x->len != y->len || memcmp(x->ptr, y->ptr, x->len) != 0) {
        abort();
    }
}

/* Signed: JSON -> strict parse -> JSON is the identity, and the signature verifies. */
static void check_signed_round_trip(atp_arena *a, const fixture *f, atp_plc_op *op)
{
    atp_plc_op back;
    atp_buf j1, j2;
    if (atp_plc_op_sign(a, op, f->rot, NULL, NULL) < 0) {
        abort();
    }
    encode_json(&j1, op);
    if (atp_plc_op_parse(a, atp_buf_slice(&j1), false, NULL, &back, NULL) < 0 ||
        atp_plc_op_verify(&back, f->rot_keys, 1, NULL, NULL) < 0) {
        abort();
    }
    encode_json(&j2, &back);
    same_bytes(&j1, &j2);
    atp_buf_release(&j1);
    atp_buf_release(&j2);
}

static void fuzz_update(atp_arena *a, const fixture *f, atp_slice in)
{
    atp_plc_op op, again;
    atp_buf c1, c2;
    if (pds_plc_update_build(a, &f->last, in, atp_slice_str(PREV), NULL, &op, NULL) < 0) {
        return;
    }
    if (op.type != ATP_PLC_OPERATION || op.sig.len != 0 ||
        !atp_slice_eq_str(op.prev, PREV)) {
        abort();
    }
    if (pds_plc_update_build(a, &op, in, atp_slice_str(PREV), NULL, &again, NULL) < 0) {
        abort();
    }
    encode_cbor(&c1, &op);
    encode_cbor(&c2, &again);
    same_bytes(&c1, &c2);
    atp_buf_release(&c1);
    atp_buf_release(&c2);
    check_signed_round_trip(a, f, &op);
}

static void fuzz_submit(atp_arena *a, const fixture *f, atp_slice in)
{
    atp_plc_op op, back;
    atp_buf j1, j2;
    if (pds_plc_submit_parse(a, in, &f->want, NULL, &op, NULL) < 0) {
        return;
    }
    if (op.type != ATP_PLC_OPERATION || op.sig.len == 0 || op.n_aka == 0 ||
        !atp_slice_eq_str(op.aka[0], "at://alice.test")) {
        abort();
    }
    encode_json(&j1, &op);
    if (pds_plc_submit_parse(a, atp_buf_slice(&j1), &f->want, NULL, &back, NULL) < 0) {
        abort();
    }
    encode_json(&j2, &back);
    same_bytes(&j1, &j2);
    atp_buf_release(&j1);
    atp_buf_release(&j2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fixture *f = fixture_get();
    atp_arena *a;
    if (size < 1 || size > 128 * 1024) {
        return 0;
    }
    a = atp_arena_create(0);
    if (data[0] & 1) {
        fuzz_submit(a, f, atp_slice_make(data + 1, size - 1));
    } else {
        fuzz_update(a, f, atp_slice_make(data + 1, size - 1));
    }
    atp_arena_destroy(a);
    return 0;
}

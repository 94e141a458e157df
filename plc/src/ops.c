/* plc/src/ops.c: incoming ops (parse, CID, canonical forms) and validation against a history. */
#include "ops.h"

#include <string.h>

#include "atp/cbor.h"

bool plc_did_is_valid(atp_slice did)
{
    static const char pre[] = "did:plc:";
    if (did.len != ATP_PLC_DID_LEN || memcmp(did.ptr, pre, sizeof pre - 1) != 0) {
        return false;
    }
    for (size_t i = sizeof pre - 1; i < did.len; i++) {
        uint8_t c = did.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) {
            return false;
        }
    }
    return true;
}

static atp_slice buf_to_arena(atp_arena *a, atp_buf *b)
{
    atp_slice s = atp_slice_make(atp_arena_dup(a, b->ptr ? b->ptr : (const uint8_t *)"", b->len),
                                 b->len);
    atp_buf_release(b);
    return s;
}

/* CID, JSON and CBOR of a parsed op; the op itself is already in out->op. */
static int finish(atp_arena *a, atp_slice did, plc_incoming *out, atp_err *err)
{
    atp_cid cid;
    atp_buf b;
    int rc = atp_plc_op_cid(&out->op, &cid, err);
    if (rc < 0) {
        return rc;
    }
    if (atp_cid_format_to(&cid, out->cid, sizeof out->cid) == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "operation CID too long");
    }
    atp_buf_init(&b, 1 << 20);
    atp_plc_op_encode_json(&b, &out->op, 0);
    rc = b.err;
    out->json = buf_to_arena(a, &b);
    atp_buf_init(&b, 1 << 20);
    atp_plc_op_encode_cbor(&b, &out->op, true);
    rc = rc < 0 ? rc : b.err;
    out->cbor = buf_to_arena(a, &b);
    if (rc < 0) {
        return atp_err_set(err, rc, 0, "operation cannot be encoded");
    }
    memcpy(out->did, did.ptr, did.len);
    out->did[did.len] = '\0';
    return 0;
}

int plc_incoming_prepare(atp_arena *a, atp_slice did, atp_slice json, plc_incoming *out,
                         atp_err *err)
{
    plc_incoming in;
    int rc;
    if (!plc_did_is_valid(did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "Invalid DID");
    }
    memset(&in, 0, sizeof in);
    rc = atp_plc_op_parse(a, json, false, NULL, &in.op, err);
    if (rc == 0) {
        rc = finish(a, did, &in, err);
    }
    if (rc == 0) {
        *out = in;
    }
    return rc;
}

int plc_incoming_prepare_tree(atp_arena *a, atp_slice did, const struct atp_cbor *tree,
                              plc_incoming *out, atp_err *err)
{
    plc_incoming in;
    int rc;
    if (!plc_did_is_valid(did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "Invalid DID");
    }
    memset(&in, 0, sizeof in);
    rc = atp_plc_op_from_tree(a, tree, false, NULL, &in.op, err);
    if (rc == 0) {
        rc = finish(a, did, &in, err);
    }
    if (rc == 0) {
        *out = in;
    }
    return rc;
}

/* One stored row back into an entry; a failure means the database holds something we would
 * never have written. */
static int row_entry(atp_arena *a, const plc_row *r, atp_plc_entry *e, atp_err *err)
{
    int64_t ms = 0;
    if (atp_plc_op_parse(a, r->json, false, NULL, &e->op, NULL) < 0 ||
        atp_cid_parse(atp_slice_str(r->cid), ATP_CID_BLESSED_ONLY, &e->cid, NULL) < 0 ||
        plc_ts_parse(atp_slice_str(r->created_at), &ms) < 0) {
        return atp_err_set(err, ATP_EIO, 0, "stored operation %lld is corrupt",
                           (long long)r->seq);
    }
    e->created_at_us = ms * 1000;
    e->nullified = r->nullified;
    return 0;
}

/* The active (non-nullified) history as entries, with the rows they came from. */
static int build_active(atp_arena *a, const plc_row *hist, size_t n, atp_plc_entry **out,
                        const plc_row ***rows, size_t *count, atp_err *err)
{
    atp_plc_entry *act = atp_arena_calloc(a, n ? n : 1, sizeof *act);
    const plc_row **src = atp_arena_calloc(a, n ? n : 1, sizeof *src);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (hist[i].nullified) {
            continue;
        }
        if (row_entry(a, &hist[i], &act[k], err) < 0) {
            return ATP_EIO;
        }
        src[k++] = &hist[i];
    }
    *out = act;
    *rows = src;
    *count = k;
    return 0;
}

int plc_incoming_validate(void *ud, atp_arena *a, const plc_row *hist, size_t n, const char *now,
                          plc_decision *out, atp_err *err)
{
    const plc_incoming *in = ud;
    atp_plc_entry *act = NULL;
    const plc_row **rows = NULL;
    const char **nullify;
    atp_plc_next next;
    size_t k = 0;
    int64_t now_ms = 0;
    int rc = build_active(a, hist, n, &act, &rows, &k, err);
    if (rc < 0) {
        return rc;
    }
    if (plc_ts_parse(atp_slice_str(now), &now_ms) < 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "bad timestamp");
    }
    rc = atp_plc_check_next(atp_slice_str(in->did), act, k, &in->op, now_ms * 1000, NULL, &next,
                            err);
    if (rc < 0) {
        return rc;
    }
    nullify = atp_arena_calloc(a, next.n_nullified ? next.n_nullified : 1, sizeof *nullify);
    for (size_t i = 0; i < next.n_nullified; i++) {
        nullify[i] = rows[next.prev_index + 1 + i]->cid;
    }
    out->row = (plc_row){0, in->did, in->cid, in->json, in->cbor, false, now};
    out->nullify = nullify;
    out->n_nullify = next.n_nullified;
    return 0;
}

int plc_history_last(atp_arena *a, const plc_row *hist, size_t n, const plc_row **row,
                     atp_plc_op *op, atp_err *err)
{
    for (size_t i = n; i-- > 0;) {
        if (hist[i].nullified) {
            continue;
        }
        if (atp_plc_op_parse(a, hist[i].json, false, NULL, op, NULL) < 0) {
            return atp_err_set(err, ATP_EIO, 0, "stored operation %lld is corrupt",
                               (long long)hist[i].seq);
        }
        *row = &hist[i];
        return 0;
    }
    *row = NULL;
    return 0;
}

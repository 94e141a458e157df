/* pds/src/seq_event.c: firehose frames and event bodies (seq_event.h). Bodies are written with
 * the low-level CBOR writers, keys already in canonical order (length first, then bytewise),
 * because the #commit body is built on every write and a tree would only copy the blocks. */
#include "seq_event.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "atp/car.h"

/* ---- bodies ---- */

static void put_key(atp_buf *b, const char *k)
{
    atp_cbor_put_cstr(b, k);
}

/* The CAR of a commit's blocks: root = the commit; new blocks then inversion proof nodes. */
static int commit_car(atp_buf *car, const atp_repo_commit *c, atp_err *err)
{
    atp_car_writer w;
    atp_car_writer_init_buf(&w, car);
    int rc = atp_car_write_header(&w, &c->cid, 1);
    for (size_t i = 0; rc == 0 && i < c->n_blocks; i++) {
        rc = atp_car_write_block(&w, &c->blocks[i].cid, c->blocks[i].data);
    }
    for (size_t i = 0; rc == 0 && i < c->n_proof; i++) {
        rc = atp_car_write_block(&w, &c->proof[i].cid, c->proof[i].data);
    }
    if (rc < 0) {
        return atp_err_set(err, rc, 0, "commit blocks do not fit a frame");
    }
    return 0;
}

/* repoOp keys in canonical order: cid, path, prev, action. */
static void put_op(atp_buf *b, const atp_repo_op *op)
{
    atp_cbor_put_map(b, op->has_prev ? 4 : 3);
    put_key(b, "cid");
    if (op->has_cid) {
        atp_cbor_put_link(b, &op->cid);
    } else {
        atp_cbor_put_null(b);
    }
    put_key(b, "path");
    atp_cbor_put_text(b, op->path);
    if (op->has_prev) {
        put_key(b, "prev");
        atp_cbor_put_link(b, &op->prev);
    }
    put_key(b, "action");
    atp_cbor_put_cstr(b, atp_repo_action_name(op->action));
}

/* Keys after `blocks`, in canonical order: commit, rebase, tooBig, prevData. */
static void put_commit_tail(atp_buf *b, const atp_repo_commit *c)
{
    put_key(b, "commit");
    atp_cbor_put_link(b, &c->cid);
    put_key(b, "rebase");
    atp_cbor_put_bool(b, false);
    put_key(b, "tooBig");
    atp_cbor_put_bool(b, false);
    if (c->has_prev_data) {
        put_key(b, "prevData");
        atp_cbor_put_link(b, &c->prev_data);
    }
}

int pds_seq_body_commit(atp_buf *out, atp_slice did, const atp_repo_commit *c, const char *time,
                        atp_err *err)
{
    atp_buf car;
    atp_buf_init(&car, PDS_SEQ_FRAME_MAX);
    int rc = commit_car(&car, c, err);
    if (rc == 0) {
        atp_cbor_put_map(out, c->has_prev_data ? 11 : 10);
        put_key(out, "ops");
        atp_cbor_put_array(out, c->n_ops);
        for (size_t i = 0; i < c->n_ops; i++) {
            put_op(out, &c->ops[i]);
        }
        put_key(out, "rev");
        atp_cbor_put_cstr(out, c->rev);
        put_key(out, "repo");
        atp_cbor_put_text(out, did);
        put_key(out, "time");
        atp_cbor_put_cstr(out, time);
        put_key(out, "blobs");
        atp_cbor_put_array(out, 0);
        put_key(out, "since");
        if (c->since[0]) {
            atp_cbor_put_cstr(out, c->since);
        } else {
            atp_cbor_put_null(out);
        }
        put_key(out, "blocks");
        atp_cbor_put_bytes(out, atp_buf_slice(&car));
        put_commit_tail(out, c);
        if (out->err || out->len > PDS_SEQ_FRAME_MAX) {
            rc = atp_err_set(err, ATP_ELIMIT, 0, "#commit event too large");
        }
    }
    atp_buf_release(&car);
    return rc;
}

int pds_seq_body_sync(atp_buf *out, atp_slice did, const atp_cid *commit, atp_slice commit_block,
                      const char *rev, const char *time, atp_err *err)
{
    atp_buf car;
    atp_car_writer w;
    atp_buf_init(&car, PDS_SEQ_SYNC_MAX);
    atp_car_writer_init_buf(&w, &car);
    int rc = atp_car_write_header(&w, commit, 1);
    if (rc == 0) {
        rc = atp_car_write_block(&w, commit, commit_block);
    }
    if (rc < 0) {
        atp_buf_release(&car);
        return atp_err_set(err, rc == ATP_ELIMIT ? ATP_ELIMIT : ATP_EINVAL, 0,
                           "#sync blocks over %d bytes or bad commit", PDS_SEQ_SYNC_MAX);
    }
    atp_cbor_put_map(out, 4);
    put_key(out, "did");
    atp_cbor_put_text(out, did);
    put_key(out, "rev");
    atp_cbor_put_cstr(out, rev);
    put_key(out, "time");
    atp_cbor_put_cstr(out, time);
    put_key(out, "blocks");
    atp_cbor_put_bytes(out, atp_buf_slice(&car));
    atp_buf_release(&car);
    return out->err ? atp_err_set(err, ATP_ELIMIT, 0, "#sync event too large") : 0;
}

void pds_seq_body_identity(atp_buf *out, atp_slice did, const char *handle, const char *time)
{
    atp_cbor_put_map(out, handle ? 3 : 2);
    put_key(out, "did");
    atp_cbor_put_text(out, did);
    put_key(out, "time");
    atp_cbor_put_cstr(out, time);
    if (handle) {
        put_key(out, "handle");
        atp_cbor_put_cstr(out, handle);
    }
}

void pds_seq_body_account(atp_buf *out, atp_slice did, bool active, const char *status,
                          const char *time)
{
    atp_cbor_put_map(out, status ? 4 : 3);
    put_key(out, "did");
    atp_cbor_put_text(out, did);
    put_key(out, "time");
    atp_cbor_put_cstr(out, time);
    put_key(out, "active");
    atp_cbor_put_bool(out, active);
    if (status) {
        put_key(out, "status");
        atp_cbor_put_cstr(out, status);
    }
}

/* ---- frames ---- */

/* {t: type, op: 1}: "t" sorts before "op" (shorter key first). */
static void put_header(atp_buf *out, const char *type)
{
    atp_cbor_put_map(out, 2);
    put_key(out, "t");
    atp_cbor_put_cstr(out, type);
    put_key(out, "op");
    atp_cbor_put_int(out, 1);
}

/* The body of #info and error frames: {key: value, "message": message}, message left out when
 * NULL (the lexicon's optional field). */
static void put_named_message(atp_buf *out, const char *key, const char *value, const char *message)
{
    atp_cbor_put_map(out, message ? 2 : 1);
    put_key(out, key);
    atp_cbor_put_cstr(out, value);
    if (message) {
        put_key(out, "message");
        atp_cbor_put_cstr(out, message);
    }
}

void pds_seq_frame_info(atp_buf *out, const char *name, const char *message)
{
    put_header(out, "#info");
    put_named_message(out, "name", name, message);
}

void pds_seq_frame_error(atp_buf *out, const char *error, const char *message)
{
    atp_cbor_put_map(out, 1);
    put_key(out, "op");
    atp_cbor_put_int(out, -1);
    put_named_message(out, "error", error, message);
}

/* Limits of a stored body or a frame's items: the frame bound, the data model's depth. */
static const atp_cbor_limits frame_limits = {
    PDS_SEQ_FRAME_MAX, 32, 131072, 8192, 1000000,
};

int pds_seq_frame_build(atp_buf *out, atp_arena *a, const char *type, atp_slice body,
                        int64_t seq, atp_err *err)
{
    atp_cbor *m = NULL, *nm;
    if (seq < 1 || seq >= PDS_SEQ_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "seq out of range");
    }
    int rc = atp_cbor_decode(a, body, &frame_limits, &m, err);
    if (rc < 0) {
        return rc;
    }
    if (m->type != ATP_CBOR_MAP || atp_cbor_map_get_str(m, "seq")) {
        return atp_err_set(err, ATP_EINVAL, 0, "event body is not a map without seq");
    }
    /* One more pair, then the canonical sort places seq among the 3-byte keys. */
    nm = atp_cbor_new_map(a, m->u.map.n + 1);
    if (m->u.map.n > 0) {
        memcpy(nm->u.map.pairs, m->u.map.pairs, m->u.map.n * sizeof *m->u.map.pairs);
    }
    nm->u.map.pairs[m->u.map.n].key = ATP_SLICE_LIT("seq");
    nm->u.map.pairs[m->u.map.n].val = *atp_cbor_new_int(a, seq);
    rc = atp_cbor_map_finish(nm, err);
    if (rc < 0) {
        return rc;
    }
    size_t start = out->len;
    put_header(out, type);
    atp_cbor_encode(out, nm);
    if (out->err || out->len - start > PDS_SEQ_FRAME_MAX) {
        return atp_err_set(err, out->err ? out->err : ATP_ELIMIT, 0, "frame too large");
    }
    return 0;
}

/* Header rules: op 1 with a text t, or op -1 without t. */
static int check_header(const atp_cbor *h, pds_seq_frame *f, atp_err *err)
{
    const atp_cbor *op = atp_cbor_map_get_str(h, "op");
    const atp_cbor *t = atp_cbor_map_get_str(h, "t");
    if (h->type != ATP_CBOR_MAP || !op || op->type != ATP_CBOR_INT) {
        return atp_err_set(err, ATP_EINVAL, 0, "frame header: op missing");
    }
    f->op = op->u.i;
    f->type = (atp_slice){NULL, 0};
    if (f->op == 1 && t && t->type == ATP_CBOR_STRING && t->u.str.len > 0) {
        f->type = t->u.str;
        return 0;
    }
    if (f->op == -1 && !t) {
        return 0;
    }
    return atp_err_set(err, ATP_EINVAL, 0, "frame header: bad op or t");
}

/* Body rules: a map; an error body has a text `error`; seq, if any, in [1, 2^53). */
static int check_body(const atp_cbor *b, pds_seq_frame *f, size_t off, atp_err *err)
{
    const atp_cbor *seq = atp_cbor_map_get_str(b, "seq");
    const atp_cbor *e = atp_cbor_map_get_str(b, "error");
    if (b->type != ATP_CBOR_MAP) {
        return atp_err_set(err, ATP_EINVAL, off, "frame body is not a map");
    }
    if (f->op == -1 && (!e || e->type != ATP_CBOR_STRING)) {
        return atp_err_set(err, ATP_EINVAL, off, "error frame without error");
    }
    f->has_seq = seq != NULL;
    f->seq = 0;
    if (seq) {
        if (seq->type != ATP_CBOR_INT || seq->u.i < 1 || seq->u.i >= PDS_SEQ_MAX) {
            return atp_err_set(err, ATP_EINVAL, off, "frame body: bad seq");
        }
        f->seq = seq->u.i;
    }
    return 0;
}

int pds_seq_frame_decode(atp_arena *a, atp_slice in, pds_seq_frame *out, atp_err *err)
{
    pds_seq_frame f;
    size_t used = 0;
    if (in.len > PDS_SEQ_FRAME_MAX) {
        return atp_err_set(err, ATP_ELIMIT, PDS_SEQ_FRAME_MAX, "frame over 5 MB");
    }
    memset(&f, 0, sizeof f);
    int rc = atp_cbor_decode_prefix(a, in, &frame_limits, &f.header, &used, err);
    if (rc == 0) {
        rc = check_header(f.header, &f, err);
    }
    if (rc == 0 && used == in.len) {
        rc = atp_err_set(err, ATP_EINVAL, used, "frame without a body");
    }
    if (rc == 0) {
        rc = atp_cbor_decode(a, atp_slice_sub(in, used, in.len - used), &frame_limits, &f.body,
                             err);
        if (rc < 0 && err) {
            err->off += used;
        }
    }
    if (rc == 0) {
        rc = check_body(f.body, &f, used, err);
    }
    if (rc == 0) {
        *out = f;
    }
    return rc;
}

void pds_seq_frame_encode(atp_buf *out, const pds_seq_frame *f)
{
    atp_cbor_encode(out, f->header);
    atp_cbor_encode(out, f->body);
}

int pds_seq_parse_cursor(atp_slice s, int64_t *out, atp_err *err)
{
    int64_t v = 0;
    if (s.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "cursor: empty");
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') {
            return atp_err_set(err, ATP_EINVAL, i, "cursor: not an integer");
        }
        v = v * 10 + (s.ptr[i] - '0');
        if (v >= PDS_SEQ_MAX) {
            return atp_err_set(err, ATP_EINVAL, i, "cursor: out of range");
        }
    }
    *out = v;
    return 0;
}

/* ---- reading a stored #commit back ---- */

static bool text_field(const atp_cbor *m, const char *k, atp_slice *out)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, k);
    if (!v || v->type != ATP_CBOR_STRING) {
        return false;
    }
    *out = v->u.str;
    return true;
}

static int view_blocks(atp_arena *a, atp_slice car, pds_seq_commit_view *out, atp_err *err)
{
    atp_car_mem m;
    atp_car_block blk;
    size_t cap = 16;
    int rc = atp_car_mem_open(&m, car, NULL, 0, err);
    if (rc != 0) {
        return rc;
    }
    out->blocks = atp_arena_calloc(a, cap, sizeof *out->blocks);
    while ((rc = atp_car_mem_next(&m, &blk, err)) == ATP_CAR_BLOCK) {
        if (out->n_blocks == cap) {
            atp_block *v = atp_arena_calloc(a, cap * 2, sizeof *v);
            memcpy(v, out->blocks, cap * sizeof *v);
            out->blocks = v;
            cap *= 2;
        }
        /* copied: a reader may hand out its own buffer */
        atp_slice d = atp_slice_make(atp_arena_dup(a, blk.data.ptr, blk.data.len), blk.data.len);
        out->blocks[out->n_blocks++] = (atp_block){blk.cid, d};
    }
    atp_car_mem_close(&m);
    return rc < 0 ? rc : 0;
}

static int view_op(const atp_cbor *o, atp_repo_op *op, atp_err *err)
{
    atp_slice action;
    const atp_cbor *cid = atp_cbor_map_get_str(o, "cid");
    const atp_cbor *prev = atp_cbor_map_get_str(o, "prev");
    memset(op, 0, sizeof *op);
    if (!text_field(o, "action", &action) || atp_repo_action_parse(action, &op->action) != 0 ||
        !text_field(o, "path", &op->path) || !cid) {
        return atp_err_set(err, ATP_EINVAL, 0, "#commit op without action, path or cid");
    }
    op->has_cid = cid->type != ATP_CBOR_NULL;
    op->has_prev = prev != NULL;
    if ((op->has_cid && atp_cbor_get_cid(cid, &op->cid) != 0) ||
        (op->has_prev && atp_cbor_get_cid(prev, &op->prev) != 0) ||
        op->has_cid == (op->action == ATP_REPO_DELETE)) {
        return atp_err_set(err, ATP_EINVAL, 0, "#commit op with a bad cid or prev");
    }
    return 0;
}

int pds_seq_commit_view_decode(atp_arena *a, const atp_cbor *body, pds_seq_commit_view *out,
                               atp_err *err)
{
    pds_seq_commit_view v;
    memset(&v, 0, sizeof v);
    const atp_cbor *since = atp_cbor_map_get_str(body, "since");
    const atp_cbor *commit = atp_cbor_map_get_str(body, "commit");
    const atp_cbor *blocks = atp_cbor_map_get_str(body, "blocks");
    const atp_cbor *ops = atp_cbor_map_get_str(body, "ops");
    if (!text_field(body, "repo", &v.repo) || !text_field(body, "rev", &v.rev) || !since ||
        (since->type != ATP_CBOR_NULL && since->type != ATP_CBOR_STRING) || !commit ||
        atp_cbor_get_cid(commit, &v.commit) != 0 || !blocks || blocks->type != ATP_CBOR_BYTES ||
        !ops || ops->type != ATP_CBOR_ARRAY || ops->u.arr.n > ATP_REPO_MAX_WRITES) {
        return atp_err_set(err, ATP_EINVAL, 0, "not a #commit body");
    }
    if (since->type == ATP_CBOR_STRING) {
        v.since = since->u.str;
    }
    int rc = view_blocks(a, blocks->u.str, &v, err);
    v.ops = atp_arena_calloc(a, ops->u.arr.n ? ops->u.arr.n : 1, sizeof *v.ops);
    for (size_t i = 0; rc == 0 && i < ops->u.arr.n; i++) {
        rc = view_op(&ops->u.arr.items[i], &v.ops[i], err);
    }
    v.n_ops = ops->u.arr.n;
    if (rc == 0 && !pds_seq_commit_view_block(&v, &v.commit)) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "#commit blocks lack the commit");
    }
    if (rc == 0) {
        *out = v;
    }
    return rc;
}

const atp_block *pds_seq_commit_view_block(const pds_seq_commit_view *v, const atp_cid *cid)
{
    for (size_t i = 0; i < v->n_blocks; i++) {
        if (atp_cid_eq(&v->blocks[i].cid, cid)) {
            return &v->blocks[i];
        }
    }
    return NULL;
}

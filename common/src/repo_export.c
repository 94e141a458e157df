/* repo_export.c: the repo as a CAR, whole (streamable order) or the blocks since a rev.
 * See atp/repo.h. Blocks go to the writer as they are read, so the CAR is never built in
 * memory; the scratch arena holds one record at a time. */
#include "repo_int.h"

typedef struct export_ctx {
    atp_blockstore *bs;
    atp_car_writer *w;
    atp_arena *scratch;
    atp_err *err;
} export_ctx;

static int write_block(export_ctx *x, const atp_cid *cid, atp_slice bytes)
{
    int rc = atp_car_write_block(x->w, cid, bytes);
    if (rc != 0) {
        return atp_err_set(x->err, rc, 0, "CAR write failed (%s)", atp_err_name(rc));
    }
    return 0;
}

static int on_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    return write_block(ctx, cid, bytes);
}

static int on_leaf(void *ctx, atp_slice key, const atp_cid *val)
{
    export_ctx *x = ctx;
    atp_slice bytes;
    char str[ATP_CID_STR_MAX];
    int rc;
    /* Only the current record is needed: the arena starts over for each. */
    atp_arena_reset(x->scratch);
    rc = atp_blockstore_get(x->bs, val, x->scratch, &bytes, x->err);
    if (rc == ATP_ENOTFOUND) {
        return atp_err_set(x->err, rc, 0, "record %s of %.*s missing", atp__cid_str(val, str),
                           (int)(key.len > 200 ? 200 : key.len), (const char *)key.ptr);
    }
    return rc ? rc : write_block(x, val, bytes);
}

/* Header and commit block. */
static int write_head(atp_repo *r, export_ctx *x)
{
    const atp_cid *head = atp_repo_head(r);
    atp_slice bytes;
    int rc;
    if (!head) {
        return atp_err_set(x->err, ATP_ENOTFOUND, 0, "repo has no commit yet");
    }
    rc = atp_car_write_header(x->w, head, 1);
    if (rc != 0) {
        return atp_err_set(x->err, rc, 0, "CAR write failed (%s)", atp_err_name(rc));
    }
    rc = atp_blockstore_get(x->bs, head, x->scratch, &bytes, x->err);
    return rc ? rc : write_block(x, head, bytes);
}

int atp_repo_export(atp_repo *r, atp_car_writer *w, atp_err *err)
{
    export_ctx x = {atp_repo_store(r), w, atp_arena_create(0), err};
    int rc = write_head(r, &x);
    /* A handle of our own: the walk loads nodes into it, not into the repo's tree. */
    atp_mst *t = rc ? NULL : atp_mst_open(x.bs, atp_repo_data(r), &atp_mst_limits_default);
    rc = rc ? rc : atp_mst_walk(t, on_node, on_leaf, &x, err);
    atp_mst_destroy(t);
    atp_arena_destroy(x.scratch);
    return rc;
}

static int on_since(void *ctx, const atp_cid *cid, atp_slice data)
{
    return write_block(ctx, cid, data);
}

int atp_repo_export_since(atp_repo *r, atp_slice since, atp_car_writer *w, atp_err *err)
{
    export_ctx x = {atp_repo_store(r), w, NULL, err};
    const atp_cid *head = atp_repo_head(r);
    int rc;
    if (since.len == 0) {
        return atp_repo_export(r, w, err);
    }
    if (!head) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "repo has no commit yet");
    }
    rc = atp_car_write_header(w, head, 1);
    if (rc != 0) {
        return atp_err_set(err, rc, 0, "CAR write failed (%s)", atp_err_name(rc));
    }
    return atp_blockstore_each_since(x.bs, since, on_since, &x, err);
}

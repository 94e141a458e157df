/* repo_import.c: a repo CAR read, fully verified, and its reachable blocks stored. See
 * atp/repo.h.
 *
 * CAR block order is free (spec §4), so blocks are held in a memory store until the end; the
 * walk from the commit then decides what is reachable. Only reachable blocks reach the target:
 * unreferenced extras in a hostile CAR never land in an account's storage. A memory target
 * receives the staging store's blocks without a copy, so they are held once at the peak. */
#include "repo_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct atp_repo_importer {
    atp_repo_import_opts o;
    atp_car_limits car_lim;
    atp_mst_limits mst_lim;
    atp_cbor_limits rec_lim;
    atp_car_reader *rd;
    atp_blockstore *mem;
    int err; /* sticky */
};

void atp_repo_importer_destroy(atp_repo_importer *im)
{
    if (!im) {
        return;
    }
    atp_car_reader_destroy(im->rd);
    atp_blockstore_destroy(im->mem);
    free(im);
}

atp_repo_importer *atp_repo_importer_create(const atp_repo_import_opts *o)
{
    atp_repo_importer *im = atp_xcalloc(1, sizeof *im);
    if (o) {
        im->o = *o;
    }
    im->car_lim = im->o.car ? *im->o.car : atp_car_limits_default;
    im->mst_lim = im->o.mst ? *im->o.mst : atp_mst_limits_default;
    im->rec_lim = im->o.record ? *im->o.record : atp__repo_record_limits;
    im->rd = atp_car_reader_create(&im->car_lim, 0);
    im->mem = atp_blockstore_mem_create();
    return im;
}

int atp_repo_importer_feed(atp_repo_importer *im, atp_slice chunk, atp_err *err)
{
    if (im->err != 0) {
        return atp_err_set(err, im->err, 0, "CAR already failed (%s)", atp_err_name(im->err));
    }
    while (chunk.len > 0) {
        atp_car_block blk;
        size_t used = 0;
        int rc = atp_car_reader_next(im->rd, chunk, &used, &blk, err);
        chunk = atp_slice_sub(chunk, used, chunk.len);
        if (rc == ATP_EAGAIN) {
            break;
        }
        if (rc == ATP_CAR_BLOCK) {
            rc = atp_blockstore_put(im->mem, &blk.cid, blk.data, atp_slice_make(NULL, 0), err);
        }
        if (rc < 0) {
            im->err = rc;
            return rc;
        }
    }
    return 0;
}

/* ---- the walk ----
 * Reachability is recorded as marks on the staging store's own records (no CID set or block
 * list beside it: at ~130,000 blocks those cost tens of MB), and the marked blocks are then
 * handed over to a memory target without copying (atp_blockstore_mem_move_marked). */

typedef struct walk_ctx {
    atp_repo_importer *im;
    atp_blockstore *src; /* the tracing wrapper of im->mem */
    atp_arena *a;
    atp_err *err;
    size_t n_records, n_nodes;
    bool failed; /* a callback failed and wrote err itself */
} walk_ctx;

static int on_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    walk_ctx *w = ctx;
    bool first;
    (void)bytes;
    w->n_nodes++;
    if (atp_blockstore_mem_mark(w->im->mem, cid, &first, w->err) != 0) {
        w->failed = true;
        return atp_err_set(w->err, ATP_EINTERNAL, 0, "walked node not in the store");
    }
    return 0;
}

static int leaf_fail(walk_ctx *w, int code, atp_slice key, const char *what)
{
    w->failed = true;
    return atp_err_set(w->err, code, 0, "record %.*s: %s", (int)(key.len > 100 ? 100 : key.len),
                       (const char *)key.ptr, what);
}

static int on_leaf(void *ctx, atp_slice key, const atp_cid *val)
{
    walk_ctx *w = ctx;
    atp_slice bytes;
    atp_err sub = {0};
    bool first;
    char str[ATP_CID_STR_MAX], why[ATP_ERR_MSG_MAX + 64];
    w->n_records++;
    if (atp_repo_check_path(key, &sub) != 0) {
        return leaf_fail(w, ATP_EINVAL, key, sub.msg);
    }
    if (atp_cid_codec(val) != ATP_CODEC_DAG_CBOR) {
        return leaf_fail(w, ATP_EINVAL, key, "CID is not dag-cbor");
    }
    if (atp_blockstore_get(w->src, val, w->a, &bytes, &sub) != 0) {
        snprintf(why, sizeof why, "block %s missing", atp__cid_str(val, str));
        return leaf_fail(w, ATP_ENOTFOUND, key, why);
    }
    if (atp_blockstore_mem_mark(w->im->mem, val, &first, &sub) != 0) {
        return leaf_fail(w, ATP_EINTERNAL, key, sub.msg);
    }
    /* A record shared by several paths is checked once. */
    if (first && atp__record_check(bytes, &w->im->rec_lim, &sub) != 0) {
        return leaf_fail(w, ATP_EINVAL, key, sub.msg);
    }
    return 0;
}

/* Roots, commit, did, signature. */
static int check_commit(atp_repo_importer *im, atp_blockstore *src, atp_arena *a,
                        atp_repo_info *info, atp_err *err)
{
    size_t n_roots;
    const atp_cid *roots = atp_car_reader_roots(im->rd, &n_roots);
    int rc;
    if (n_roots == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "CAR has no root");
    }
    info->head = roots[0];
    rc = atp__commit_load(src, &info->head, a, &info->commit, err);
    if (rc != 0) {
        return rc;
    }
    if (im->o.did.len && !atp_slice_eq(im->o.did, info->commit.did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "commit is for %.*s, not %.*s",
                           (int)(info->commit.did.len > 48 ? 48 : info->commit.did.len),
                           (const char *)info->commit.did.ptr,
                           (int)(im->o.did.len > 48 ? 48 : im->o.did.len),
                           (const char *)im->o.did.ptr);
    }
    return im->o.key ? atp_commit_verify(&info->commit, im->o.key, err) : 0;
}

static int walk_tree(walk_ctx *w, atp__trace_store *tr, const atp_repo_info *info)
{
    atp_mst *t = atp_mst_open(&tr->base, &info->commit.data, &w->im->mst_lim);
    char str[ATP_CID_STR_MAX];
    atp_err sub = {0};
    int rc = atp_mst_walk(t, on_node, on_leaf, w, &sub);
    atp_mst_destroy(t);
    if (rc == 0) {
        return 0;
    }
    if (w->failed) {
        return rc; /* the callback wrote err */
    }
    if (rc == ATP_ENOTFOUND && tr->missed) {
        return atp_err_set(w->err, rc, 0, "MST node %s missing", atp__cid_str(&tr->missing, str));
    }
    return atp_err_set(w->err, rc, sub.off, "MST: %s", sub.msg[0] ? sub.msg : atp_err_text(rc));
}

static int push_marked(void *ctx, const atp_cid *cid, atp_slice data)
{
    atp__blockvec_push(ctx, cid, data);
    return 0;
}

/* The marked blocks into `target` in one atomic batch: handed over to a memory store, copied
 * into any other. `rev` is the arena's copy (atp__commit_load), not the staging store's. */
static int store_marked(atp_repo_importer *im, atp_blockstore *target, atp_slice rev,
                        atp_err *err)
{
    atp__blockvec bv = {0};
    int rc;
    if (atp_blockstore_is_mem(target)) {
        return atp_blockstore_mem_move_marked(target, im->mem, rev, err);
    }
    (void)atp_blockstore_mem_each_marked(im->mem, push_marked, &bv);
    rc = atp_blockstore_put_batch(target, bv.v, bv.n, rev, err);
    atp__blockvec_release(&bv);
    return rc;
}

static int finish_walk(atp_repo_importer *im, atp_blockstore *target, atp_arena *a,
                       atp_repo_info *info, atp_err *err)
{
    atp__trace_store tr;
    walk_ctx w;
    bool first;
    int rc;
    atp__trace_store_init(&tr, im->mem);
    rc = check_commit(im, &tr.base, a, info, err);
    if (rc != 0) {
        return rc;
    }
    memset(&w, 0, sizeof w);
    w.im = im;
    w.src = &tr.base;
    w.a = a;
    w.err = err;
    rc = atp_blockstore_mem_mark(im->mem, &info->head, &first, err);
    rc = rc ? rc : walk_tree(&w, &tr, info);
    info->n_records = w.n_records;
    info->n_nodes = w.n_nodes;
    info->n_blocks = atp_blockstore_mem_marked(im->mem);
    info->n_unused = atp_blockstore_mem_count(im->mem) - info->n_blocks;
    if (rc == 0 && target) {
        rc = store_marked(im, target, info->commit.rev, err);
    }
    return rc;
}

int atp_repo_importer_finish(atp_repo_importer *im, atp_blockstore *target, atp_arena *a,
                             atp_repo_info *out, atp_err *err)
{
    atp_repo_info info;
    int rc = im->err;
    if (rc != 0) {
        return atp_err_set(err, rc, 0, "CAR was invalid (%s)", atp_err_name(rc));
    }
    rc = atp_car_reader_finish(im->rd, err);
    if (rc != 0) {
        return rc;
    }
    memset(&info, 0, sizeof info);
    rc = finish_walk(im, target, a, &info, err);
    if (rc == 0) {
        *out = info;
    }
    return rc;
}

int atp_repo_import(atp_slice car, const atp_repo_import_opts *o, atp_blockstore *target,
                    atp_arena *a, atp_repo_info *out, atp_err *err)
{
    atp_repo_importer *im = atp_repo_importer_create(o);
    int rc = atp_repo_importer_feed(im, car, err);
    rc = rc ? rc : atp_repo_importer_finish(im, target, a, out, err);
    atp_repo_importer_destroy(im);
    return rc;
}

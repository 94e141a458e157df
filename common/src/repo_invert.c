/* repo_invert.c: sync v1.1 verification of a #commit by operation inversion (spec
 * repository.md §6, "inductive firehose"). See atp/repo.h.
 *
 * Only the message's own blocks are used: the tree is opened over a memory store holding the
 * slice, so a subtree the slice leaves out stays an opaque CID, which is all the inversion
 * needs as long as the producer included the covering proofs. Touching a block that is not
 * there is a failure, reported with the CID. */
#include "repo_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct inv_ctx {
    const atp_repo_invert_in *in;
    atp_repo_invert_report *rep;
    atp_err *err;
    atp__trace_store tr;
    atp_arena *a;
    atp_commit commit;
    atp_mst *tree;
} inv_ctx;

static int fail(inv_ctx *c, atp_repo_invert_stage stage, int code, long op, const char *fmt, ...)
    ATP_PRINTF(5, 6);

/* Records the failure in the report (whole message) and err (its first 127 bytes). */
static int fail(inv_ctx *c, atp_repo_invert_stage stage, int code, long op, const char *fmt, ...)
{
    va_list ap;
    c->rep->stage = stage;
    c->rep->op = op;
    va_start(ap, fmt);
    vsnprintf(c->rep->detail, sizeof c->rep->detail, fmt, ap);
    va_end(ap);
    return atp_err_set(c->err, code, op >= 0 ? (size_t)op : 0, "%s", c->rep->detail);
}

static void note_missing(inv_ctx *c)
{
    c->rep->has_missing = c->tr.missed;
    c->rep->missing = c->tr.missing;
}

static int path_len(atp_slice p)
{
    return (int)(p.len > 200 ? 200 : p.len);
}

/* ---- commit ---- */

static int load_commit(inv_ctx *c, const atp_cid *root)
{
    const atp_repo_invert_in *in = c->in;
    char s1[ATP_CID_STR_MAX], s2[ATP_CID_STR_MAX];
    atp_err sub = {0};
    int rc = atp__commit_load(&c->tr.base, root, c->a, &c->commit, &sub);
    if (rc != 0) {
        note_missing(c);
        return fail(c, ATP_INVERT_COMMIT, rc, -1, "commit: %s", sub.msg);
    }
    if (in->commit && !atp_cid_eq(in->commit, root)) {
        return fail(c, ATP_INVERT_COMMIT, ATP_EINVAL, -1, "blocks root %s is not the commit %s",
                    atp__cid_str(root, s1), atp__cid_str(in->commit, s2));
    }
    if (in->did.len && !atp_slice_eq(in->did, c->commit.did)) {
        return fail(c, ATP_INVERT_COMMIT, ATP_EINVAL, -1, "commit did %.*s is not repo %.*s",
                    path_len(c->commit.did), (const char *)c->commit.did.ptr, path_len(in->did),
                    (const char *)in->did.ptr);
    }
    if (in->rev.len && !atp_slice_eq(in->rev, c->commit.rev)) {
        return fail(c, ATP_INVERT_COMMIT, ATP_EINVAL, -1, "commit rev %.*s is not rev %.*s",
                    path_len(c->commit.rev), (const char *)c->commit.rev.ptr, path_len(in->rev),
                    (const char *)in->rev.ptr);
    }
    rc = atp_commit_verify(&c->commit, in->key, &sub);
    return rc ? fail(c, ATP_INVERT_SIG, rc, -1, "%s", sub.msg) : 0;
}

/* ---- op shapes ---- */

typedef struct op_ix {
    atp_slice path;
    long i;
} op_ix;

static int op_ix_cmp(const void *x, const void *y)
{
    return atp_slice_cmp(((const op_ix *)x)->path, ((const op_ix *)y)->path);
}

static int check_op(inv_ctx *c, const atp_repo_op *op, long i)
{
    atp_err sub = {0};
    bool want_cid = op->action != ATP_REPO_DELETE, want_prev = op->action != ATP_REPO_CREATE;
    if (op->action < ATP_REPO_CREATE || op->action > ATP_REPO_DELETE) {
        return fail(c, ATP_INVERT_OPS, ATP_EINVAL, i, "op %ld: unknown action", i);
    }
    if (atp_repo_check_path(op->path, &sub) != 0) {
        return fail(c, ATP_INVERT_OPS, ATP_EINVAL, i, "op %ld: %s", i, sub.msg);
    }
    if (op->has_cid != want_cid || op->has_prev != want_prev) {
        return fail(c, ATP_INVERT_OPS, ATP_EINVAL, i, "op %ld: a %s must %s cid and %s prev", i,
                    atp_repo_action_name(op->action), want_cid ? "have" : "have no",
                    want_prev ? "have" : "have no");
    }
    return 0;
}

static int check_ops(inv_ctx *c)
{
    size_t n = c->in->n_ops;
    op_ix *ix;
    if (n > ATP_REPO_MAX_WRITES) {
        return fail(c, ATP_INVERT_OPS, ATP_ELIMIT, -1, "%zu ops (max %d)", n, ATP_REPO_MAX_WRITES);
    }
    ix = atp_arena_alloc(c->a, (n ? n : 1) * sizeof *ix);
    for (size_t i = 0; i < n; i++) {
        int rc = check_op(c, &c->in->ops[i], (long)i);
        if (rc != 0) {
            return rc;
        }
        ix[i] = (op_ix){c->in->ops[i].path, (long)i};
    }
    qsort(ix, n, sizeof *ix, op_ix_cmp);
    for (size_t i = 1; i < n; i++) {
        if (atp_slice_eq(ix[i].path, ix[i - 1].path)) {
            long at = ix[i].i > ix[i - 1].i ? ix[i].i : ix[i - 1].i;
            return fail(c, ATP_INVERT_OPS, ATP_EINVAL, at, "op %ld: duplicate path %.*s", at,
                        path_len(ix[i].path), (const char *)ix[i].path.ptr);
        }
    }
    return 0;
}

/* ---- forward check and inversion ---- */

static int tree_fail(inv_ctx *c, atp_repo_invert_stage stage, int rc, long i, const atp_err *sub)
{
    char s[ATP_CID_STR_MAX];
    note_missing(c);
    if (rc == ATP_ENOTFOUND && c->tr.missed) {
        return fail(c, stage, rc, i, "op %ld (%.*s): block %s is not in the commit's blocks", i,
                    path_len(c->in->ops[i].path), (const char *)c->in->ops[i].path.ptr,
                    atp__cid_str(&c->tr.missing, s));
    }
    return fail(c, stage, rc, i, "op %ld: tree: %s", i, sub->msg);
}

/* A value mismatch: `want` expected at the path, `got` found (NULL: absent). */
static int value_fail(inv_ctx *c, atp_repo_invert_stage stage, long i, const atp_cid *want,
                      const atp_cid *got)
{
    const atp_repo_op *op = &c->in->ops[i];
    char s1[ATP_CID_STR_MAX], s2[ATP_CID_STR_MAX];
    c->rep->has_values = true;
    c->rep->got_absent = got == NULL;
    if (want) {
        c->rep->expected = *want;
    }
    if (got) {
        c->rep->got = *got;
    }
    return fail(c, stage, ATP_ECONFLICT, i, "op %ld %s %.*s: expected %s, found %s", i,
                atp_repo_action_name(op->action), path_len(op->path), (const char *)op->path.ptr,
                want ? atp__cid_str(want, s1) : "absent", got ? atp__cid_str(got, s2) : "absent");
}

static int forward_one(inv_ctx *c, long i)
{
    const atp_repo_op *op = &c->in->ops[i];
    atp_cid v;
    bool found = false;
    atp_err sub = {0};
    int rc = atp_mst_get(c->tree, op->path, &v, &found, &sub);
    if (rc != 0) {
        return tree_fail(c, ATP_INVERT_FORWARD, rc, i, &sub);
    }
    if (op->action == ATP_REPO_DELETE) {
        return found ? value_fail(c, ATP_INVERT_FORWARD, i, NULL, &v) : 0;
    }
    if (!found || !atp_cid_eq(&v, &op->cid)) {
        return value_fail(c, ATP_INVERT_FORWARD, i, &op->cid, found ? &v : NULL);
    }
    return 0;
}

static int invert_one(inv_ctx *c, long i)
{
    const atp_repo_op *op = &c->in->ops[i];
    atp_cid old;
    bool existed = false;
    atp_err sub = {0};
    int rc;
    memset(&old, 0, sizeof old);
    if (op->action == ATP_REPO_CREATE) {
        rc = atp_mst_delete(c->tree, op->path, &existed, &old, &sub);
    } else {
        rc = atp_mst_put(c->tree, op->path, &op->prev, &existed, &old, &sub);
    }
    if (rc != 0) {
        return tree_fail(c, ATP_INVERT_APPLY, rc, i, &sub);
    }
    if (op->action == ATP_REPO_DELETE) {
        return existed ? value_fail(c, ATP_INVERT_APPLY, i, NULL, &old) : 0;
    }
    if (!existed || !atp_cid_eq(&old, &op->cid)) {
        return value_fail(c, ATP_INVERT_APPLY, i, &op->cid, existed ? &old : NULL);
    }
    return 0;
}

static int check_root(inv_ctx *c)
{
    atp_cid root;
    char s1[ATP_CID_STR_MAX], s2[ATP_CID_STR_MAX];
    atp_err sub = {0};
    int rc = atp_mst_root(c->tree, &root, &sub);
    if (rc != 0) {
        note_missing(c);
        return fail(c, ATP_INVERT_APPLY, rc, -1, "root of the inverted tree: %s", sub.msg);
    }
    if (!atp_cid_eq(&root, c->in->prev_data)) {
        c->rep->has_values = true;
        c->rep->expected = *c->in->prev_data;
        c->rep->got = root;
        return fail(c, ATP_INVERT_ROOT, ATP_ECONFLICT, -1, "inverted root %s is not prevData %s",
                    atp__cid_str(&root, s1), atp__cid_str(c->in->prev_data, s2));
    }
    return 0;
}

static int run_checks(inv_ctx *c, atp_blockstore *mem)
{
    atp_cid root;
    atp_err sub = {0};
    int rc = atp__car_load(c->in->blocks, NULL, mem, &root, &sub);
    if (rc != 0) {
        return fail(c, ATP_INVERT_CAR, rc, -1, "blocks: %s", sub.msg);
    }
    atp__trace_store_init(&c->tr, mem);
    rc = load_commit(c, &root);
    rc = rc ? rc : check_ops(c);
    if (rc != 0) {
        return rc;
    }
    c->tree = atp_mst_open(&c->tr.base, &c->commit.data, &atp_mst_limits_default);
    for (size_t i = 0; i < c->in->n_ops && rc == 0; i++) {
        rc = forward_one(c, (long)i);
    }
    for (size_t i = 0; i < c->in->n_ops && rc == 0; i++) {
        rc = invert_one(c, (long)i);
    }
    return rc ? rc : check_root(c);
}

int atp_repo_invert_check(const atp_repo_invert_in *in, atp_repo_invert_report *rep, atp_err *err)
{
    atp_repo_invert_report local;
    inv_ctx c;
    atp_blockstore *mem;
    int rc;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.rep = rep ? rep : &local;
    c.err = err;
    memset(c.rep, 0, sizeof *c.rep);
    c.rep->op = -1;
    if (!in->prev_data || !in->key) {
        return fail(&c, ATP_INVERT_COMMIT, ATP_EINVAL, -1, "prevData and the key are required");
    }
    c.a = atp_arena_create(0);
    mem = atp_blockstore_mem_create();
    rc = run_checks(&c, mem);
    atp_mst_destroy(c.tree);
    atp_blockstore_destroy(mem);
    atp_arena_destroy(c.a);
    return rc;
}

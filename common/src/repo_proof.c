/* repo_proof.c: record proofs, the CARs of com.atproto.sync.getRecord, and their verification.
 * See atp/repo.h. A proof is the signed commit plus the MST nodes that a lookup of the path
 * touches: with only those, the lookup either finds the record CID or proves the path absent,
 * and any missing node makes the lookup fail rather than guess. */
#include "repo_int.h"

#include <string.h>

static int car_fail(atp_err *err, int rc)
{
    return atp_err_set(err, rc, 0, "CAR write failed (%s)", atp_err_name(rc));
}

static int write_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    int rc = atp_car_write_block(ctx, cid, bytes);
    return rc;
}

/* The record block after the nodes, when the path is present. */
static int write_record(atp_repo *r, atp_slice path, atp_car_writer *w, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_cid cid;
    atp_slice bytes;
    bool found = false;
    int rc = atp_repo_get(r, path, a, &cid, &bytes, &found, err);
    if (rc == 0 && found) {
        rc = atp_car_write_block(w, &cid, bytes);
        rc = rc ? car_fail(err, rc) : 0;
    }
    atp_arena_destroy(a);
    return rc;
}

int atp_repo_write_proof(atp_repo *r, atp_slice path, atp_car_writer *w, atp_err *err)
{
    const atp_cid *head = atp_repo_head(r);
    atp_arena *a;
    atp_slice bytes;
    int rc = atp_repo_check_path(path, err);
    if (rc != 0) {
        return rc;
    }
    if (!head) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "repo has no commit yet");
    }
    rc = atp_car_write_header(w, head, 1);
    if (rc != 0) {
        return car_fail(err, rc);
    }
    a = atp_arena_create(0);
    rc = atp_blockstore_get(atp_repo_store(r), head, a, &bytes, err);
    if (rc == 0 && (rc = atp_car_write_block(w, head, bytes)) != 0) {
        rc = car_fail(err, rc);
    }
    atp_arena_destroy(a);
    rc = rc ? rc : atp_mst_proof(atp_repo_tree(r), path, write_node, w, err);
    return rc ? rc : write_record(r, path, w, err);
}

/* ---- verification ---- */

/* Looks the path up in the proven tree; on success fills present/cid/record. */
static int prove_path(atp__trace_store *tr, const atp_commit *c, atp_slice path, atp_arena *a,
                      atp_repo_proof_result *res, atp_err *err)
{
    atp_mst *t = atp_mst_open(&tr->base, &c->data, &atp_mst_limits_default);
    char str[ATP_CID_STR_MAX];
    atp_err sub = {0};
    int rc = atp_mst_get(t, path, &res->cid, &res->present, &sub);
    atp_mst_destroy(t);
    if (rc == ATP_ENOTFOUND && tr->missed) {
        return atp_err_set(err, rc, 0, "proof lacks MST node %s", atp__cid_str(&tr->missing, str));
    }
    if (rc != 0) {
        return atp_err_set(err, rc, sub.off, "proof tree: %s", sub.msg);
    }
    if (res->present) {
        atp_slice bytes;
        rc = atp_blockstore_get(tr->inner, &res->cid, a, &bytes, &sub);
        if (rc != 0) {
            return atp_err_set(err, rc, 0, "proof lacks the record block %s",
                               atp__cid_str(&res->cid, str));
        }
        res->record = atp_slice_make(atp_arena_dup(a, bytes.ptr, bytes.len), bytes.len);
    }
    return 0;
}

static int verify_loaded(atp_blockstore *mem, const atp_cid *root, const atp_key *key,
                         atp_slice did, atp_slice path, atp_arena *a, atp_repo_proof_result *res,
                         atp_err *err)
{
    atp__trace_store tr;
    int rc;
    atp__trace_store_init(&tr, mem);
    res->head = *root;
    rc = atp__commit_load(&tr.base, root, a, &res->commit, err);
    if (rc != 0) {
        return rc;
    }
    if (did.len && !atp_slice_eq(did, res->commit.did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "proof commit is for another DID");
    }
    rc = atp_commit_verify(&res->commit, key, err);
    return rc ? rc : prove_path(&tr, &res->commit, path, a, res, err);
}

int atp_repo_verify_proof(atp_slice car, const atp_key *key, atp_slice did, atp_slice path,
                          atp_arena *a, atp_repo_proof_result *out, atp_err *err)
{
    atp_blockstore *mem;
    atp_repo_proof_result res;
    atp_cid root;
    int rc = atp_repo_check_path(path, err);
    if (rc != 0) {
        return rc;
    }
    if (!key) {
        return atp_err_set(err, ATP_EINVAL, 0, "a proof needs the account key");
    }
    memset(&res, 0, sizeof res);
    mem = atp_blockstore_mem_create();
    rc = atp__car_load(car, NULL, mem, &root, err);
    rc = rc ? rc : verify_loaded(mem, &root, key, did, path, a, &res, err);
    atp_blockstore_destroy(mem);
    if (rc == 0) {
        *out = res;
    }
    return rc;
}

/* fuzz_repo.c: repo import of arbitrary CAR bytes with a fixed key must never crash, and what it
 * accepts must hold together: exactly the reported blocks are stored; the stored repo opens,
 * exports, and the export imports again to the same head, tree and record count. The same bytes
 * also go through proof verification and sync v1.1 inversion (any answer but a crash). */
#include <stdlib.h>
#include <string.h>

#include "atp/repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char priv_hex[] = "780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6";

static atp_key *fixed_key(void)
{
    static atp_key *k;
    if (!k && atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(priv_hex), &k, NULL) != 0) {
        abort();
    }
    return k;
}

static const atp_car_limits car_lim = {.max_header = 4096,
                                       .max_roots = 8,
                                       .max_block = 1 << 16,
                                       .max_blocks = 4096,
                                       .max_total = 1 << 22};

static int sink(void *ctx, atp_slice bytes)
{
    atp_buf_append_slice(ctx, bytes);
    return ((atp_buf *)ctx)->err;
}

/* Re-exports an imported repo and imports that again: same head, data and records. */
static void roundtrip(atp_blockstore *st, const atp_repo_info *info, atp_arena *a)
{
    atp_repo *r = NULL;
    atp_buf out;
    atp_car_writer w;
    atp_repo_info again;
    atp_repo_import_opts o = {fixed_key(), {NULL, 0}, &car_lim, NULL, NULL};
    if (atp_repo_open(st, &info->head, NULL, NULL, &r, NULL) != 0) {
        abort();
    }
    atp_buf_init(&out, 0);
    atp_car_writer_init_fn(&w, sink, &out);
    if (atp_repo_export(r, &w, NULL) != 0 ||
        atp_repo_import(atp_buf_slice(&out), &o, NULL, a, &again, NULL) != 0 ||
        !atp_cid_eq(&again.head, &info->head) ||
        !atp_cid_eq(&again.commit.data, &info->commit.data) || again.n_records != info->n_records ||
        again.n_unused != 0) {
        abort();
    }
    atp_buf_release(&out);
    atp_repo_destroy(r);
}

static void side_checks(atp_slice in, const atp_repo_info *info, bool ok, atp_arena *a)
{
    atp_repo_proof_result res;
    atp_repo_invert_report rep;
    atp_cid empty;
    atp_repo_op op = {
        ATP_REPO_DELETE, ATP_SLICE_LIT("app.bsky.feed.post/3kznmn7xqxl22"), false, {0}, true, {0}};
    atp_repo_invert_in inv = {in, &op, 1, &empty, fixed_key(), {NULL, 0}, {NULL, 0}, NULL};
    atp_cid_compute(&empty, ATP_CODEC_DAG_CBOR, atp_slice_make("\xa2\x61\x65\x80\x61\x6c\xf6", 7));
    op.prev = empty;
    int rc =
        atp_repo_verify_proof(in, fixed_key(), atp_slice_make(NULL, 0), op.path, a, &res, NULL);
    if (rc == 0 && res.present && !atp_cid_matches(&res.cid, res.record)) {
        abort(); /* a "proven" record that is not the proven CID */
    }
    /* Any answer, but a failure always says which check and why. */
    rc = atp_repo_invert_check(&inv, &rep, NULL);
    if ((rc == 0) != (rep.stage == ATP_INVERT_OK) || (rc != 0 && !rep.detail[0])) {
        abort();
    }
    if (ok && info->n_records == 0 && atp_cid_eq(&info->commit.data, &empty)) {
        /* An empty repo proves every path absent. */
        if (atp_repo_verify_proof(in, fixed_key(), atp_slice_make(NULL, 0), op.path, a, &res,
                                  NULL) != 0 ||
            res.present) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_arena *a = atp_arena_create(0);
    atp_blockstore *st = atp_blockstore_mem_create();
    atp_repo_import_opts o = {fixed_key(), {NULL, 0}, &car_lim, NULL, NULL};
    atp_repo_info info;
    atp_slice in = atp_slice_make(data, size);
    int rc = atp_repo_import(in, &o, st, a, &info, NULL);
    if (rc == 0) {
        if (atp_blockstore_mem_count(st) != info.n_blocks) {
            abort();
        }
        roundtrip(st, &info, a);
    } else if (atp_blockstore_mem_count(st) != 0) {
        abort(); /* a refused repo left blocks behind */
    }
    side_checks(in, &info, rc == 0, a);
    atp_blockstore_destroy(st);
    atp_arena_destroy(a);
    return 0;
}

/* test_repo.c: the repository layer. The spec's example repo CAR byte for byte; batches of
 * writes (ops, blocks, every rejection rule, atomicity); export then import into a fresh store
 * with every record compared (memory and SQLite stores); blocks since a rev; record proofs of
 * presence and absence and tampered proofs; sync v1.1 inversion of a few hundred random commits
 * and of broken ones; tampered CARs refused by import (flipped byte, missing node, missing
 * record, wrong signature, high-S signature, bad key order in a hand-built node, wrong DID,
 * non-map record) and unreferenced blocks ignored. */
#include "atp/repo.h"

#include <cjson/cJSON.h>

#include "atp/blockstore_sqlite.h"
#include "atp/sha256.h"
#include "atp/syntax.h"
#include "atp/tid.h"
#include "t.h"

static const char ex_priv[] = "780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6";
static const char ex_did[] = "did:plc:pt7yvrqanufronpndk4qjuiz";

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    if (n > cap) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            abort();
        }
        out[i] = (uint8_t)v;
    }
    return n;
}

static atp_key *ex_key(void)
{
    atp_key *k = NULL;
    if (atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(ex_priv), &k, NULL) != 0) {
        abort();
    }
    return k;
}

static const char *cidstr(const atp_cid *c, char *buf)
{
    atp_cid_format_to(c, buf, ATP_CID_STR_MAX);
    return buf;
}

/* xorshift64*: deterministic, and rand() is banned. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static const char *const collections[] = {"app.bsky.feed.post", "app.bsky.feed.like",
                                          "app.bsky.graph.follow"};

/* "collection/<tid>" for path number i (arena). */
static atp_slice path_for(atp_arena *a, unsigned i)
{
    char tid[14], buf[64];
    int n;
    atp_tid_encode(1723607526857649ull + (uint64_t)i * 1000, 0, tid);
    n = snprintf(buf, sizeof buf, "%s/%s", collections[i % 3], tid);
    return atp_slice_make(atp_arena_dup(a, buf, (size_t)n), (size_t)n);
}

/* A record tree {$type, text, n} (arena). */
static atp_cbor *record_for(atp_arena *a, const char *coll, uint64_t n)
{
    char text[64];
    int len = snprintf(text, sizeof text, "record number %llu", (unsigned long long)n);
    atp_cbor *m = atp_cbor_new_map(a, 3);
    m->u.map.pairs[0].key = ATP_SLICE_LIT("$type");
    m->u.map.pairs[0].val = *atp_cbor_new_string(a, atp_slice_str(coll));
    m->u.map.pairs[1].key = ATP_SLICE_LIT("text");
    m->u.map.pairs[1].val =
        *atp_cbor_new_string(a, atp_slice_make(atp_arena_dup(a, text, (size_t)len), (size_t)len));
    m->u.map.pairs[2].key = ATP_SLICE_LIT("n");
    m->u.map.pairs[2].val = *atp_cbor_new_int(a, (int64_t)n);
    if (atp_cbor_map_finish(m, NULL) != 0) {
        abort();
    }
    return m;
}

static const char *coll_of(unsigned i)
{
    return collections[i % 3];
}

/* ---- CAR helpers ---- */

static int buf_sink(void *ctx, atp_slice bytes)
{
    atp_buf_append_slice(ctx, bytes);
    return ((atp_buf *)ctx)->err;
}

/* Rewrites a CAR: same roots (or `new_root`), without the block `skip` (nullable), with
 * `extra` appended (nullable), and `replace` swapped for `with`. */
typedef struct car_edit {
    const atp_cid *new_root;
    const atp_cid *skip;
    const atp_block *extra;
    const atp_cid *replace;
    const atp_block *with;
} car_edit;

static void car_rewrite(atp_slice car, const car_edit *e, atp_buf *out)
{
    atp_car_mem m;
    atp_car_block blk;
    atp_car_writer w;
    int found = 0;
    atp_buf_init(out, 0);
    atp_car_writer_init_buf(&w, out);
    T_OK(atp_car_mem_open(&m, car, NULL, 0, NULL));
    T_OK(atp_car_write_header(&w, e->new_root ? e->new_root : &m.roots[0], 1));
    while (atp_car_mem_next(&m, &blk, NULL) == ATP_CAR_BLOCK) {
        if (e->skip && atp_cid_eq(&blk.cid, e->skip)) {
            found++;
            continue;
        }
        if (e->replace && atp_cid_eq(&blk.cid, e->replace)) {
            found++;
            T_OK(atp_car_write_block(&w, &e->with->cid, e->with->data));
            continue;
        }
        T_OK(atp_car_write_block(&w, &blk.cid, blk.data));
    }
    if (e->extra) {
        T_OK(atp_car_write_block(&w, &e->extra->cid, e->extra->data));
    }
    atp_car_mem_close(&m);
    if ((e->skip || e->replace) && !found) {
        T_FAILF("car_rewrite: block to drop/replace not in the CAR");
    }
}

/* CIDs of a CAR's blocks (up to cap), in order. */
static size_t car_cids(atp_slice car, atp_cid *out, size_t cap)
{
    atp_car_mem m;
    atp_car_block blk;
    size_t n = 0;
    T_OK(atp_car_mem_open(&m, car, NULL, 0, NULL));
    while (atp_car_mem_next(&m, &blk, NULL) == ATP_CAR_BLOCK) {
        if (n < cap) {
            out[n] = blk.cid;
        }
        n++;
    }
    atp_car_mem_close(&m);
    return n;
}

static void export_car(atp_repo *r, atp_buf *out)
{
    atp_car_writer w;
    atp_err err = {0};
    atp_buf_init(out, 0);
    atp_car_writer_init_fn(&w, buf_sink, out);
    T_OKE(atp_repo_export(r, &w, &err), &err);
}

static int put_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    return atp_blockstore_put(ctx, cid, bytes, ATP_SLICE_LIT(""), NULL);
}

/* Stores the tree's new nodes in `bs`. */
static void store_new_nodes(atp_mst *t, atp_blockstore *bs)
{
    atp_err err = {0};
    T_OKE(atp_mst_each_new_block(t, put_node, bs, &err), &err);
    atp_mst_mark_clean(t);
}

/* ---- paths and actions ---- */

static void test_paths(void)
{
    static const char *const good[] = {"app.bsky.feed.post/3kznmn7xqxl22",
                                       "com.example.fooBar/self", "a.b.c/x:y~z_-.",
                                       "app.bsky.actor.profile/self"};
    static const char *const bad[] = {"",
                                      "app.bsky.feed.post",
                                      "/3kznmn7xqxl22",
                                      "app.bsky.feed.post/",
                                      "app.bsky.feed.post/a/b",
                                      "app.bsky.feed.post/.",
                                      "app.bsky.feed.post/..",
                                      "app.bsky/xyz",
                                      "app.bsky.feed.post/a b",
                                      "app.bsky.feed.post/a@b",
                                      "1pp.bsky.feed.post/abc"};
    atp_repo_action act;
    char longp[1100];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        T_OK(atp_repo_check_path(atp_slice_str(good[i]), NULL));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        atp_err err = {0};
        if (atp_repo_check_path(atp_slice_str(bad[i]), &err) != ATP_EINVAL || !err.msg[0]) {
            T_FAILF("path '%s' accepted", bad[i]);
        }
    }
    memset(longp, 'a', sizeof longp);
    memcpy(longp, "a.b.c/", 6);
    T_EQ(atp_repo_check_path(atp_slice_make(longp, 1025), NULL), ATP_EINVAL);
    T_OK(atp_repo_action_parse(ATP_SLICE_LIT("update"), &act));
    T_EQ(act, ATP_REPO_UPDATE);
    T_EQ(atp_repo_action_parse(ATP_SLICE_LIT("Update"), &act), ATP_EINVAL);
    T_STREQ(atp_repo_action_name(ATP_REPO_DELETE), "delete");
}

/* ---- the spec's example repo (repository.md §3-§4) ---- */

static const char ex_record_hex[] =
    "a364746578746b68656c6c6f20776f726c64652474797065726170702e62736b792e666565642e706f7374696372"
    "656174656441747818323032342d30312d30315430303a30303a30302e3030305a";

static void test_spec_example_car(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    uint8_t rec[128], digest[32], want_digest[32];
    size_t rec_len = unhex(ex_record_hex, rec, sizeof rec);
    atp_slice key = ATP_SLICE_LIT("app.bsky.feed.post/3kznmn7xqxl22");
    atp_cid rcid, root, head;
    atp_mst *t = atp_mst_create(bs, &atp_mst_limits_default);
    atp_buf cb, car;
    atp_repo *r = NULL;
    atp_err err = {0};
    char s[ATP_CID_STR_MAX];

    atp_cid_compute(&rcid, ATP_CODEC_DAG_CBOR, atp_slice_make(rec, rec_len));
    T_STREQ(cidstr(&rcid, s), "bafyreieawtmh7hwfrqpamqkodza5r62bbfhsepe2iyustgxhgbhi6b2lfi");
    T_OK(atp_blockstore_put(bs, &rcid, atp_slice_make(rec, rec_len), ATP_SLICE_LIT(""), NULL));
    T_OKE(atp_mst_put(t, key, &rcid, NULL, NULL, &err), &err);
    T_OKE(atp_mst_root(t, &root, &err), &err);
    T_STREQ(cidstr(&root, s), "bafyreiggyd62cjzuwkul6lrjzkn3rcyzvuiny5nm2uuz5kwjx76cudaub4");
    store_new_nodes(t, bs);
    atp_buf_init(&cb, 0);
    T_OK(atp_commit_create(&cb, atp_slice_str(ex_did), ATP_SLICE_LIT("3kznmn7xqxl22"), &root, k,
                           NULL, &head, NULL));
    T_OK(atp_blockstore_put(bs, &head, atp_buf_slice(&cb), ATP_SLICE_LIT(""), NULL));
    atp_mst_destroy(t);
    atp_buf_release(&cb);

    T_OKE(atp_repo_open(bs, &head, NULL, NULL, &r, &err), &err);
    T_TRUE(atp_slice_eq_str(atp_repo_rev(r), "3kznmn7xqxl22"));
    T_TRUE(atp_slice_eq_str(atp_repo_did(r), ex_did));
    T_TRUE(atp_cid_eq(atp_repo_data(r), &root));
    export_car(r, &car);
    T_EQ(car.len, 532);
    atp_sha256(atp_buf_slice(&car), digest);
    unhex("183dd3f6359a5a2b120cea38fb20057271641e7ca0d2655b87a6a3f6569bc045", want_digest, 32);
    T_MEMEQ(digest, 32, want_digest, 32);
    atp_buf_release(&car);
    atp_repo_destroy(r);
    atp_blockstore_destroy(bs);
    atp_key_destroy(k);
}

/* ---- batches of writes ---- */

static atp_repo_write wcreate(atp_slice path, const atp_cbor *rec)
{
    atp_repo_write w = {ATP_REPO_CREATE, path, rec, {NULL, 0}, NULL};
    return w;
}

static atp_repo_write wupdate(atp_slice path, const atp_cbor *rec)
{
    atp_repo_write w = {ATP_REPO_UPDATE, path, rec, {NULL, 0}, NULL};
    return w;
}

static atp_repo_write wdelete(atp_slice path)
{
    atp_repo_write w = {ATP_REPO_DELETE, path, NULL, {NULL, 0}, NULL};
    return w;
}

static bool block_in(const atp_block *v, size_t n, const atp_cid *c)
{
    for (size_t i = 0; i < n; i++) {
        if (atp_cid_eq(&v[i].cid, c)) {
            return true;
        }
    }
    return false;
}

/* Expects `rc` from apply and the repo (head, data, store size) unchanged. */
static void expect_apply_fails(atp_repo *r, atp_blockstore *bs, const atp_repo_write *w, size_t n,
                               int want, size_t want_off, const char *why)
{
    atp_arena *a = atp_arena_create(0);
    atp_repo_commit c;
    atp_err err = {0};
    atp_cid head = *atp_repo_head(r), data = *atp_repo_data(r);
    size_t blocks = atp_blockstore_mem_count(bs);
    int rc = atp_repo_apply_store(r, w, n, a, &c, &err);
    t__checks++;
    if (rc != want) {
        T_FAILF("%s: rc %d (%s), want %d", why, rc, err.msg, want);
    } else if (!err.msg[0] || err.off != want_off) {
        T_FAILF("%s: err off %zu msg '%s', want off %zu", why, err.off, err.msg, want_off);
    }
    T_TRUE(atp_cid_eq(atp_repo_head(r), &head));
    T_TRUE(atp_cid_eq(atp_repo_data(r), &data));
    T_EQ(atp_blockstore_mem_count(bs), blocks);
    atp_arena_destroy(a);
}

static void test_apply_basic(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_repo *r = NULL;
    atp_repo_commit c1, c2;
    atp_err err = {0};
    atp_slice p0 = path_for(a, 0), p1 = path_for(a, 1), p2 = path_for(a, 2);
    atp_repo_write w[3] = {wcreate(p0, record_for(a, coll_of(0), 0)),
                           wcreate(p1, record_for(a, coll_of(1), 1)),
                           wcreate(p2, record_for(a, coll_of(2), 2))};
    atp_cid got;
    bool found = false;
    atp_slice bytes;

    T_EQ(atp_repo_create(bs, ATP_SLICE_LIT("not a did"), k, NULL, &r, NULL), ATP_EINVAL);
    T_OKE(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, &err), &err);
    T_TRUE(atp_repo_head(r) == NULL);
    T_EQ(atp_repo_rev(r).len, 0);
    T_OKE(atp_repo_apply_store(r, w, 3, a, &c1, &err), &err);
    T_STREQ(c1.since, "");
    T_FALSE(c1.has_prev_data);
    T_EQ(c1.n_ops, 3);
    T_TRUE(atp_cid_eq(&c1.blocks[0].cid, &c1.cid));
    T_TRUE(atp_syntax_is_tid(atp_slice_str(c1.rev)));
    for (int i = 0; i < 3; i++) {
        T_EQ(c1.ops[i].action, ATP_REPO_CREATE);
        T_TRUE(atp_slice_eq(c1.ops[i].path, w[i].path));
        T_TRUE(c1.ops[i].has_cid);
        T_FALSE(c1.ops[i].has_prev);
        T_TRUE(block_in(c1.blocks, c1.n_blocks, &c1.ops[i].cid));
    }
    T_TRUE(block_in(c1.blocks, c1.n_blocks, &c1.data)); /* the new root node */
    T_TRUE(atp_cid_eq(atp_repo_head(r), &c1.cid));
    T_TRUE(atp_cid_eq(atp_repo_data(r), &c1.data));
    T_TRUE(atp_slice_eq_str(atp_repo_rev(r), c1.rev));
    T_OK(atp_repo_get(r, p1, a, &got, &bytes, &found, NULL));
    T_TRUE(found);
    T_TRUE(atp_cid_eq(&got, &c1.ops[1].cid));
    T_TRUE(atp_cid_matches(&got, bytes));

    /* Update p0, delete p1: ops carry prev; since and prevData chain to c1. */
    w[0] = wupdate(p0, record_for(a, coll_of(0), 100));
    w[1] = wdelete(p1);
    T_OKE(atp_repo_apply_store(r, w, 2, a, &c2, &err), &err);
    T_STREQ(c2.since, c1.rev);
    T_TRUE(c2.has_prev_data);
    T_TRUE(atp_cid_eq(&c2.prev_data, &c1.data));
    T_TRUE(strcmp(c2.rev, c1.rev) > 0);
    T_TRUE(c2.ops[0].has_prev && c2.ops[0].has_cid);
    T_TRUE(atp_cid_eq(&c2.ops[0].prev, &c1.ops[0].cid));
    T_TRUE(c2.ops[1].has_prev && !c2.ops[1].has_cid);
    T_TRUE(atp_cid_eq(&c2.ops[1].prev, &c1.ops[1].cid));
    T_FALSE(block_in(c2.blocks, c2.n_blocks, &c1.ops[1].cid)); /* deleted value not carried */
    T_OK(atp_repo_get(r, p1, a, NULL, NULL, &found, NULL));
    T_FALSE(found);

    /* Reopen from the head: same state. */
    {
        atp_repo *r2 = NULL;
        T_OKE(atp_repo_open(bs, &c2.cid, k, NULL, &r2, &err), &err);
        T_TRUE(atp_cid_eq(atp_repo_data(r2), &c2.data));
        T_TRUE(atp_slice_eq_str(atp_repo_rev(r2), c2.rev));
        T_OK(atp_repo_get(r2, p0, a, &got, NULL, &found, NULL));
        T_TRUE(found && atp_cid_eq(&got, &c2.ops[0].cid));
        atp_repo_destroy(r2);
    }
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* A replica at the same head replays the original's commits from their writes and signed
 * bytes (no key): same commits, same blocks, same garbage; anything that does not match the
 * signed commit is refused and leaves the replica where it was. */
static void test_apply_signed(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create(), *bs2 = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_repo *r = NULL, *rep = NULL;
    atp_repo_commit c1, c2, d1, d2;
    atp_err err = {0};
    atp_slice p0 = path_for(a, 0), p1 = path_for(a, 1);
    atp_repo_write w[2] = {wcreate(p0, record_for(a, coll_of(0), 0)),
                           wcreate(p1, record_for(a, coll_of(1), 1))};
    T_OKE(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, &err), &err);
    T_OKE(atp_repo_create(bs2, atp_slice_str(ex_did), NULL, NULL, &rep, &err), &err);
    T_OKE(atp_repo_apply_store(r, w, 2, a, &c1, &err), &err);
    /* without a key a replica cannot sign, but it can adopt */
    T_EQ(atp_repo_apply(rep, w, 2, a, &d1, NULL), ATP_EKEY);
    T_OKE(atp_repo_apply_signed(rep, w, 2, c1.bytes, a, &d1, &err), &err);
    T_TRUE(atp_cid_eq(&d1.cid, &c1.cid));
    T_TRUE(atp_cid_eq(&d1.data, &c1.data));
    T_STREQ(d1.rev, c1.rev);
    T_EQ(d1.n_blocks, c1.n_blocks);
    T_OK(atp_blockstore_put_batch(bs2, d1.blocks, d1.n_blocks, atp_slice_str(d1.rev), NULL));
    T_OK(atp_repo_accept(rep, &d1, NULL));

    atp_repo_write u[2] = {wupdate(p0, record_for(a, coll_of(0), 7)), wdelete(p1)};
    T_OKE(atp_repo_apply_store(r, u, 2, a, &c2, &err), &err);
    /* the wrong writes for these signed bytes: refused, nothing pending */
    T_EQ(atp_repo_apply_signed(rep, u, 1, c2.bytes, a, &d2, NULL), ATP_EINVAL);
    /* an older commit again: refused (rev not after the head) */
    T_EQ(atp_repo_apply_signed(rep, w, 0, c1.bytes, a, &d2, NULL), ATP_EINVAL);
    T_EQ(atp_repo_apply_signed(rep, u, 2, ATP_SLICE_LIT("not cbor"), a, &d2, NULL), ATP_EINVAL);
    T_OKE(atp_repo_apply_signed(rep, u, 2, c2.bytes, a, &d2, &err), &err);
    T_TRUE(atp_cid_eq(&d2.cid, &c2.cid));
    T_EQ(d2.n_removed, c2.n_removed);
    T_EQ(d2.n_removed_records_maybe, c2.n_removed_records_maybe);
    T_OK(atp_repo_accept(rep, &d2, NULL));
    T_TRUE(atp_cid_eq(atp_repo_head(rep), atp_repo_head(r)));
    atp_repo_destroy(r);
    atp_repo_destroy(rep);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
    atp_blockstore_destroy(bs2);
}

static void test_apply_rejects(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_repo *r = NULL, *ro = NULL;
    atp_repo_commit c;
    atp_slice p0 = path_for(a, 0), p1 = path_for(a, 1), p2 = path_for(a, 2);
    atp_cbor *rec = record_for(a, coll_of(0), 7);
    atp_repo_write w[3];
    atp_repo_write many[ATP_REPO_MAX_WRITES + 1];
    atp_cid wrong;
    atp_err err = {0};

    T_OK(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, NULL));
    w[0] = wcreate(p0, rec);
    w[1] = wcreate(p1, rec); /* same record twice: one block */
    T_OKE(atp_repo_apply_store(r, w, 2, a, &c, &err), &err);
    T_EQ(c.n_blocks, 1 + 1 + 1); /* commit, one leaf node, one record */

    w[0] = wcreate(p2, rec);
    w[1] = wcreate(p0, rec);
    expect_apply_fails(r, bs, w, 2, ATP_EINVAL, 1, "create of an existing path");
    w[1] = wupdate(p2, rec);
    w[0] = wupdate(path_for(a, 50), rec);
    expect_apply_fails(r, bs, w, 1, ATP_ENOTFOUND, 0, "update of an absent path");
    w[0] = wcreate(p2, rec);
    w[1] = wdelete(path_for(a, 51));
    expect_apply_fails(r, bs, w, 2, ATP_ENOTFOUND, 1, "delete of an absent path");
    w[0] = wcreate(p2, rec);
    w[1] = wdelete(p0);
    w[2] = wupdate(p2, rec);
    expect_apply_fails(r, bs, w, 3, ATP_EINVAL, 2, "duplicate path");
    w[0] = wcreate(ATP_SLICE_LIT("app.bsky.feed.post/a/b"), rec);
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "bad path");
    w[0] = wcreate(ATP_SLICE_LIT("nsid/abc"), rec);
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "bad collection");
    atp_cid_compute(&wrong, ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("\xa0"));
    w[0] = wdelete(p0);
    w[0].swap = &wrong;
    expect_apply_fails(r, bs, w, 1, ATP_ECONFLICT, 0, "swap mismatch");
    w[0] = wcreate(p2, rec);
    w[0].swap = &wrong;
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "swap on a create");
    w[0] = wcreate(p2, NULL);
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "no record");
    w[0].record_bytes = ATP_SLICE_LIT("\x83\x01\x02\x03");
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "record is an array");
    w[0].record_bytes = ATP_SLICE_LIT("\xa1\x61\x61");
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "truncated record");
    w[0].record_bytes = ATP_SLICE_LIT("\xa2\x61\x62\x01\x61\x61\x02");
    expect_apply_fails(r, bs, w, 1, ATP_EINVAL, 0, "record keys out of order");
    for (size_t i = 0; i <= ATP_REPO_MAX_WRITES; i++) {
        many[i] = wcreate(path_for(a, 1000 + (unsigned)i), rec);
    }
    expect_apply_fails(r, bs, many, ATP_REPO_MAX_WRITES + 1, ATP_ELIMIT, 0, "201 writes");
    {
        /* A record over 1 MiB. */
        size_t big = ATP_REPO_MAX_RECORD + 16;
        uint8_t *b = atp_arena_alloc(a, big);
        memcpy(b, "\xa1\x61x\x5a", 4);
        b[4] = (uint8_t)((big - 9) >> 24);
        b[5] = (uint8_t)((big - 9) >> 16);
        b[6] = (uint8_t)((big - 9) >> 8);
        b[7] = (uint8_t)(big - 9);
        memset(b + 8, 'z', big - 8);
        w[0] = wcreate(p2, NULL);
        w[0].record_bytes = atp_slice_make(b, big - 1);
        expect_apply_fails(r, bs, w, 1, ATP_ELIMIT, 0, "record over 1 MiB");
    }
    /* 200 writes are fine; the swap that matches is fine. */
    T_OKE(atp_repo_apply_store(r, many, ATP_REPO_MAX_WRITES, a, &c, &err), &err);
    w[0] = wdelete(p0);
    {
        atp_cid cur;
        bool found;
        T_OK(atp_repo_get(r, p0, a, &cur, NULL, &found, NULL));
        w[0].swap = &cur;
        T_OKE(atp_repo_apply_store(r, w, 1, a, &c, &err), &err);
    }
    /* No key: read-only handle. */
    T_OK(atp_repo_open(bs, atp_repo_head(r), NULL, NULL, &ro, NULL));
    T_EQ(atp_repo_apply(ro, w, 0, a, &c, &err), ATP_EKEY);
    /* accept refuses a commit that is not pending. */
    T_EQ(atp_repo_accept(ro, &c, &err), ATP_EINVAL);
    /* An empty commit (key rotation): a new rev, same data. */
    {
        atp_repo_commit e;
        atp_cid before = *atp_repo_data(r);
        T_OKE(atp_repo_apply_store(r, NULL, 0, a, &e, &err), &err);
        T_TRUE(atp_cid_eq(&e.data, &before));
        T_EQ(e.n_ops, 0);
        T_STREQ(e.since, c.rev);
    }
    atp_repo_destroy(ro);
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* apply without accept leaves the handle where it was; a second apply replaces the first. */
static void test_apply_pending(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_repo *r = NULL;
    atp_repo_commit c1, c2;
    atp_repo_write w = wcreate(path_for(a, 3), record_for(a, coll_of(3), 3));
    atp_err err = {0};
    T_OK(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, NULL));
    T_OK(atp_repo_apply(r, &w, 1, a, &c1, &err));
    T_TRUE(atp_repo_head(r) == NULL);
    T_EQ(atp_blockstore_mem_count(bs), 0);
    T_OK(atp_repo_apply(r, &w, 1, a, &c2, &err));
    T_EQ(atp_repo_accept(r, &c1, &err), ATP_EINVAL); /* superseded */
    T_OK(atp_blockstore_put_batch(bs, c2.blocks, c2.n_blocks, atp_slice_str(c2.rev), NULL));
    T_OK(atp_repo_accept(r, &c2, &err));
    T_TRUE(atp_cid_eq(atp_repo_head(r), &c2.cid));
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* ---- a random workload with a model of the expected content ---- */

#define MODEL_IDS 4096

typedef struct model {
    bool live[MODEL_IDS];
    atp_cid cid[MODEL_IDS];
    unsigned next; /* next fresh path id */
    size_t n_live;
    uint64_t serial; /* makes every record distinct */
} model;

static bool in_batch(const unsigned *ids, size_t n, unsigned id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* Picks a live id not yet in the batch, or MODEL_IDS. */
static unsigned pick_live(const model *m, const unsigned *ids, size_t n)
{
    for (int tries = 0; tries < 64 && m->n_live > 0; tries++) {
        unsigned id = (unsigned)(rnd() % (m->next ? m->next : 1));
        if (m->live[id] && !in_batch(ids, n, id)) {
            return id;
        }
    }
    return MODEL_IDS;
}

/* Fills up to `max` random writes (creates, updates, deletes); ids[] gets their path ids. */
static size_t random_batch(atp_arena *a, model *m, size_t max, atp_repo_write *w, unsigned *ids)
{
    size_t n = 1 + (size_t)(rnd() % max), k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)(rnd() % 10), id = MODEL_IDS;
        if (r >= 5) {
            id = pick_live(m, ids, k);
        }
        if (id == MODEL_IDS) {
            if (m->next >= MODEL_IDS) {
                continue;
            }
            id = m->next++;
            w[k] = wcreate(path_for(a, id), record_for(a, coll_of(id), m->serial++));
        } else if (r >= 8) {
            w[k] = wdelete(path_for(a, id));
        } else {
            w[k] = wupdate(path_for(a, id), record_for(a, coll_of(id), m->serial++));
        }
        ids[k++] = id;
    }
    return k;
}

static void model_apply(model *m, const atp_repo_commit *c, const unsigned *ids)
{
    for (size_t i = 0; i < c->n_ops; i++) {
        bool was = m->live[ids[i]];
        m->live[ids[i]] = c->ops[i].action != ATP_REPO_DELETE;
        if (m->live[ids[i]]) {
            m->cid[ids[i]] = c->ops[i].cid;
        }
        m->n_live = m->n_live + (m->live[ids[i]] ? 1 : 0) - (was ? 1 : 0);
    }
}

typedef struct listed {
    size_t n;
    atp_slice keys[MODEL_IDS];
    atp_cid vals[MODEL_IDS];
    atp_arena *a;
} listed;

static int on_list(void *ctx, atp_slice key, const atp_cid *val)
{
    listed *l = ctx;
    if (l->n < MODEL_IDS) {
        l->keys[l->n] = atp_slice_make(atp_arena_dup(l->a, key.ptr, key.len), key.len);
        l->vals[l->n] = *val;
    }
    l->n++;
    return 0;
}

static listed *list_all(atp_mst *t, atp_arena *a)
{
    listed *l = atp_xcalloc(1, sizeof *l);
    atp_mst_list_opts o = {{NULL, 0}, {NULL, 0}, false, 0};
    atp_err err = {0};
    l->a = a;
    T_OKE(atp_mst_list(t, &o, on_list, l, &err), &err);
    return l;
}

/* Every live path has its CID, and nothing else is in the tree. */
static void check_model(atp_repo *r, const model *m, atp_arena *a)
{
    listed *l = list_all(atp_repo_tree(r), a);
    size_t bad = 0;
    T_EQ(l->n, m->n_live);
    for (unsigned id = 0; id < m->next; id++) {
        atp_cid got;
        bool found = false;
        T_OK(atp_repo_get(r, path_for(a, id), a, &got, NULL, &found, NULL));
        if (found != m->live[id] || (found && !atp_cid_eq(&got, &m->cid[id]))) {
            bad++;
        }
    }
    T_EQ(bad, 0);
    free(l);
}

/* Builds the #commit CAR of c (blocks, plus proof nodes when with_proof). */
static void commit_car(const atp_repo_commit *c, bool with_proof, atp_buf *out)
{
    atp_car_writer w;
    atp_repo_commit only = *c;
    atp_buf_init(out, 0);
    atp_car_writer_init_buf(&w, out);
    if (!with_proof) {
        only.n_proof = 0;
    }
    T_OK(atp_repo_commit_car(&only, &w, NULL));
}

static int invert(const atp_repo_commit *c, atp_slice car, const atp_key *k,
                  atp_repo_invert_report *rep, atp_err *err)
{
    atp_repo_invert_in in = {
        car,    c->ops, c->n_ops, &c->prev_data, k, atp_slice_str(ex_did), atp_slice_str(c->rev),
        &c->cid};
    return atp_repo_invert_check(&in, rep, err);
}

typedef struct run_stats {
    int commits, inverted, ops, unproven_fail, unproven_missing;
} run_stats;

/* `commits` random commits of 1..max_ops writes, each checked by inversion when `inv`. */
static void run_random(atp_repo *r, model *m, int commits, size_t max_ops, bool inv, run_stats *st)
{
    const atp_key *k = NULL;
    atp_key *kk = ex_key();
    k = kk;
    for (int i = 0; i < commits; i++) {
        atp_arena *a = atp_arena_create(0);
        atp_repo_write w[16];
        unsigned ids[16];
        size_t n = random_batch(a, m, max_ops, w, ids);
        atp_repo_commit c;
        atp_err err = {0};
        atp_buf car;
        if (atp_repo_apply(r, w, n, a, &c, &err) != 0) {
            T_FAILF("commit %d: %s", i, err.msg);
            atp_arena_destroy(a);
            break;
        }
        if (inv && c.has_prev_data) {
            atp_repo_invert_report rep;
            commit_car(&c, true, &car);
            if (invert(&c, atp_buf_slice(&car), k, &rep, &err) != 0) {
                T_FAILF("commit %d: inversion failed: %s", i, rep.detail);
            }
            st->inverted++;
            atp_buf_release(&car);
            /* Without the proof nodes the check may fail, but only for want of a block. */
            commit_car(&c, false, &car);
            if (invert(&c, atp_buf_slice(&car), k, &rep, &err) != 0) {
                st->unproven_fail++;
                st->unproven_missing += rep.has_missing;
            }
            atp_buf_release(&car);
        }
        T_OK(atp_blockstore_put_batch(atp_repo_store(r), c.blocks, c.n_blocks, atp_slice_str(c.rev),
                                      NULL));
        T_OK(atp_repo_accept(r, &c, NULL));
        model_apply(m, &c, ids);
        st->commits++;
        st->ops += (int)c.n_ops;
        atp_arena_destroy(a);
    }
    atp_key_destroy(kk);
}

static void test_random_inversion(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_repo *r = NULL;
    model *m = atp_xcalloc(1, sizeof *m);
    run_stats st = {0};
    T_OK(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, NULL));
    run_random(r, m, 300, 10, true, &st);
    printf("# %d commits, %d ops, %d inverted; without proof nodes %d failed (%d naming a "
           "missing block)\n",
           st.commits, st.ops, st.inverted, st.unproven_fail, st.unproven_missing);
    T_EQ(st.commits, 300);
    T_EQ(st.inverted, 299);
    T_TRUE(st.unproven_fail > 0);
    T_EQ(st.unproven_missing, st.unproven_fail);
    check_model(r, m, a);
    free(m);
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* A repo with `n` records over a few commits (the model says what is in it). */
static atp_repo *build_repo(atp_blockstore *bs, const atp_key *k, model *m, int commits)
{
    atp_repo *r = NULL;
    run_stats st = {0};
    T_OK(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, NULL));
    run_random(r, m, commits, 10, false, &st);
    return r;
}

/* One commit with an op of each kind over a repo `r` with records. */
static void mixed_commit(atp_repo *r, model *m, atp_arena *a, atp_repo_commit *c)
{
    atp_repo_write w[3];
    unsigned ids[3] = {MODEL_IDS, MODEL_IDS, MODEL_IDS};
    atp_err err = {0};
    ids[0] = pick_live(m, ids, 0);
    ids[1] = pick_live(m, ids, 1);
    ids[2] = m->next++;
    w[0] = wupdate(path_for(a, ids[0]), record_for(a, coll_of(ids[0]), m->serial++));
    w[1] = wdelete(path_for(a, ids[1]));
    w[2] = wcreate(path_for(a, ids[2]), record_for(a, coll_of(ids[2]), m->serial++));
    T_OKE(atp_repo_apply(r, w, 3, a, c, &err), &err);
}

static void expect_invert_fails(const atp_repo_commit *c, atp_slice car, const atp_key *k,
                                atp_repo_invert_stage stage, long op, int code,
                                atp_repo_invert_report *rep, const char *why)
{
    atp_err err = {0};
    int rc = invert(c, car, k, rep, &err);
    t__checks++;
    if (rc != code || rep->stage != stage || rep->op != op) {
        T_FAILF("%s: rc %d stage %d op %ld, want %d %d %ld (%s)", why, rc, (int)rep->stage, rep->op,
                code, (int)stage, op, rep->detail);
    } else if (!err.msg[0] || !rep->detail[0]) {
        T_FAILF("%s: no reason given", why);
    }
}

static void test_inversion_failures(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key(), *other = NULL;
    atp_arena *a = atp_arena_create(0);
    model *m = atp_xcalloc(1, sizeof *m);
    atp_repo *r = build_repo(bs, k, m, 30);
    atp_repo_commit c, t;
    atp_repo_invert_report rep;
    atp_buf car, bad;
    atp_repo_op ops[3];
    atp_cid wrong;
    char s[ATP_CID_STR_MAX];
    atp_err err = {0};

    mixed_commit(r, m, a, &c);
    commit_car(&c, true, &car);
    T_OKE(invert(&c, atp_buf_slice(&car), k, &rep, &err), &err);
    T_EQ(rep.stage, ATP_INVERT_OK);

    /* An op left out: the inverted root is not prevData. */
    t = c;
    t.n_ops = 2;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_ROOT, -1, ATP_ECONFLICT, &rep,
                        "missing op");
    T_TRUE(rep.has_values && atp_cid_eq(&rep.expected, &c.prev_data));
    T_FALSE(atp_cid_eq(&rep.got, &c.prev_data));
    T_TRUE(strstr(rep.detail, cidstr(&c.prev_data, s)) != NULL);

    /* A wrong value for the create: the forward check names the op and both CIDs. */
    memcpy(ops, c.ops, sizeof ops);
    atp_cid_compute(&wrong, ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("\xa0"));
    ops[2].cid = wrong;
    t = c;
    t.ops = ops;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_FORWARD, 2, ATP_ECONFLICT, &rep,
                        "wrong cid");
    T_TRUE(atp_cid_eq(&rep.expected, &wrong) && atp_cid_eq(&rep.got, &c.ops[2].cid));

    /* The update's prev is wrong: the forward check passes, the root does not match. */
    memcpy(ops, c.ops, sizeof ops);
    ops[0].prev = wrong;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_ROOT, -1, ATP_ECONFLICT, &rep,
                        "wrong prev");

    /* Shapes: a create with a prev, a delete with a cid, a duplicate path. */
    memcpy(ops, c.ops, sizeof ops);
    ops[2].has_prev = true;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_OPS, 2, ATP_EINVAL, &rep,
                        "create with prev");
    memcpy(ops, c.ops, sizeof ops);
    ops[1].has_cid = true;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_OPS, 1, ATP_EINVAL, &rep,
                        "delete with cid");
    memcpy(ops, c.ops, sizeof ops);
    ops[2].path = ops[0].path;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_OPS, 2, ATP_EINVAL, &rep,
                        "duplicate path");
    memcpy(ops, c.ops, sizeof ops);
    ops[2].action = ATP_REPO_UPDATE;
    ops[2].has_prev = true;
    ops[2].prev = wrong;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_ROOT, -1, ATP_ECONFLICT, &rep,
                        "create claimed as update");

    /* Wrong prevData, wrong key, message fields unlike the commit. */
    t = c;
    t.prev_data = wrong;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_ROOT, -1, ATP_ECONFLICT, &rep,
                        "wrong prevData");
    T_OK(atp_key_generate(ATP_CURVE_K256, &other, NULL));
    expect_invert_fails(&c, atp_buf_slice(&car), other, ATP_INVERT_SIG, -1, ATP_ESIG, &rep,
                        "other key");
    t = c;
    t.cid = wrong;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_COMMIT, -1, ATP_EINVAL, &rep,
                        "commit CID");
    memcpy(t.rev, "2222222222222", 14);
    t.cid = c.cid;
    expect_invert_fails(&t, atp_buf_slice(&car), k, ATP_INVERT_COMMIT, -1, ATP_EINVAL, &rep, "rev");

    /* The MST root left out of the slice: named as the missing block. */
    car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = &c.data}, &bad);
    expect_invert_fails(&c, atp_buf_slice(&bad), k, ATP_INVERT_FORWARD, 0, ATP_ENOTFOUND, &rep,
                        "root node missing");
    T_TRUE(rep.has_missing && atp_cid_eq(&rep.missing, &c.data));
    T_TRUE(strstr(rep.detail, cidstr(&c.data, s)) != NULL);
    atp_buf_release(&bad);
    /* The commit left out. */
    car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = &c.cid}, &bad);
    expect_invert_fails(&c, atp_buf_slice(&bad), k, ATP_INVERT_COMMIT, -1, ATP_ENOTFOUND, &rep,
                        "commit missing");
    T_TRUE(rep.has_missing && atp_cid_eq(&rep.missing, &c.cid));
    atp_buf_release(&bad);
    /* Not a CAR. */
    expect_invert_fails(&c, ATP_SLICE_LIT("\x01\x02"), k, ATP_INVERT_CAR, -1, ATP_EINVAL, &rep,
                        "garbage");

    atp_buf_release(&car);
    atp_key_destroy(other);
    free(m);
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* ---- export and import ---- */

/* Imports `car` into a fresh memory store and checks it holds the same repo as `r`. */
static void import_and_compare(atp_repo *r, atp_slice car, const atp_key *k)
{
    atp_blockstore *dst = atp_blockstore_mem_create();
    atp_arena *a = atp_arena_create(0);
    atp_repo_import_opts o = {k, atp_slice_str(ex_did), NULL, NULL, NULL};
    atp_repo_info info;
    atp_repo *r2 = NULL;
    atp_err err = {0};
    listed *l1, *l2;
    T_OKE(atp_repo_import(car, &o, dst, a, &info, &err), &err);
    T_TRUE(atp_cid_eq(&info.head, atp_repo_head(r)));
    T_TRUE(atp_cid_eq(&info.commit.data, atp_repo_data(r)));
    T_TRUE(atp_slice_eq(info.commit.rev, atp_repo_rev(r)));
    T_EQ(info.n_unused, 0);
    T_EQ(atp_blockstore_mem_count(dst), info.n_blocks);
    T_OKE(atp_repo_open(dst, &info.head, NULL, NULL, &r2, &err), &err);
    l1 = list_all(atp_repo_tree(r), a);
    l2 = list_all(atp_repo_tree(r2), a);
    T_EQ(l1->n, l2->n);
    T_EQ(info.n_records, l1->n);
    for (size_t i = 0; i < l1->n && i < l2->n && i < MODEL_IDS; i++) {
        atp_slice b1, b2;
        bool f1 = false, f2 = false;
        if (!atp_slice_eq(l1->keys[i], l2->keys[i]) || !atp_cid_eq(&l1->vals[i], &l2->vals[i])) {
            T_FAILF("record %zu differs", i);
            break;
        }
        T_OK(atp_repo_get(r, l1->keys[i], a, NULL, &b1, &f1, NULL));
        T_OK(atp_repo_get(r2, l2->keys[i], a, NULL, &b2, &f2, NULL));
        T_TRUE(f1 && f2 && atp_slice_eq(b1, b2));
    }
    free(l1);
    free(l2);
    atp_repo_destroy(r2);
    atp_arena_destroy(a);
    atp_blockstore_destroy(dst);
}

static void test_export_import_mem(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    model *m = atp_xcalloc(1, sizeof *m);
    atp_repo *r = build_repo(bs, k, m, 80);
    atp_buf car;
    atp_cid cids[4];
    check_model(r, m, a);
    export_car(r, &car);
    /* Streamable order: the commit first, then the root node. */
    T_TRUE(car_cids(atp_buf_slice(&car), cids, 4) > 2);
    T_TRUE(atp_cid_eq(&cids[0], atp_repo_head(r)));
    T_TRUE(atp_cid_eq(&cids[1], atp_repo_data(r)));
    printf("# exported %zu records, CAR of %zu bytes\n", m->n_live, car.len);
    import_and_compare(r, atp_buf_slice(&car), k);
    /* Fed in small pieces, the streaming importer gets the same result. */
    {
        atp_repo_importer *im = atp_repo_importer_create(&(atp_repo_import_opts){.key = k});
        atp_repo_info info;
        atp_err err = {0};
        for (size_t off = 0; off < car.len; off += 7) {
            T_OK(atp_repo_importer_feed(im, atp_slice_sub(atp_buf_slice(&car), off, 7), &err));
        }
        T_OKE(atp_repo_importer_finish(im, NULL, a, &info, &err), &err);
        T_EQ(info.n_records, m->n_live);
        atp_repo_importer_destroy(im);
    }
    atp_buf_release(&car);
    free(m);
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

static void test_export_import_sqlite(void)
{
    sqlite3 *db = NULL;
    atp_blockstore *bs = NULL;
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    model *m = atp_xcalloc(1, sizeof *m);
    atp_repo *r, *r2 = NULL;
    atp_buf car;
    T_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    T_OK(atp_blockstore_sqlite_create(db, &bs, NULL));
    r = build_repo(bs, k, m, 60);
    check_model(r, m, a);
    export_car(r, &car);
    import_and_compare(r, atp_buf_slice(&car), k);
    atp_buf_release(&car);
    /* A second handle over the same SQLite store, opened from the head, sees the same. */
    T_OK(atp_repo_open(bs, atp_repo_head(r), k, NULL, &r2, NULL));
    check_model(r2, m, a);
    atp_repo_destroy(r2);
    free(m);
    atp_repo_destroy(r);
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
    atp_arena_destroy(a);
    atp_key_destroy(k);
}

static void test_export_since(void)
{
    sqlite3 *db = NULL;
    atp_blockstore *bs = NULL;
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_repo *r = NULL;
    atp_repo_commit c1, c2, c3;
    atp_repo_write w[2];
    atp_buf car, full, since_all;
    atp_cid cids[64];
    atp_car_writer wr;
    size_t n;
    T_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    T_OK(atp_blockstore_sqlite_create(db, &bs, NULL));
    T_OK(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, NULL));
    w[0] = wcreate(path_for(a, 0), record_for(a, coll_of(0), 0));
    w[1] = wcreate(path_for(a, 1), record_for(a, coll_of(1), 1));
    T_OK(atp_repo_apply_store(r, w, 2, a, &c1, NULL));
    w[0] = wcreate(path_for(a, 2), record_for(a, coll_of(2), 2));
    T_OK(atp_repo_apply_store(r, w, 1, a, &c2, NULL));
    w[0] = wupdate(path_for(a, 0), record_for(a, coll_of(0), 3));
    T_OK(atp_repo_apply_store(r, w, 1, a, &c3, NULL));

    atp_buf_init(&car, 0);
    atp_car_writer_init_buf(&wr, &car);
    T_OK(atp_repo_export_since(r, atp_slice_str(c1.rev), &wr, NULL));
    n = car_cids(atp_buf_slice(&car), cids, 64);
    /* c3 removed c2's commit and the nodes it replaced: they no longer appear. */
    T_TRUE(c3.n_removed >= 2);
    {
        size_t kept = 0;
        for (size_t i = 0; i < c2.n_blocks; i++) {
            bool gone = false;
            for (size_t j = 0; j < c3.n_removed; j++) {
                gone = gone || atp_cid_eq(&c2.blocks[i].cid, &c3.removed[j]);
            }
            kept += !gone;
        }
        T_TRUE(kept < c2.n_blocks);
        T_EQ(n, kept + c3.n_blocks);
    }
    T_TRUE(block_in(c2.blocks, c2.n_blocks, &cids[0]));
    for (size_t i = 0; i < n; i++) {
        T_FALSE(block_in(c1.blocks, c1.n_blocks, &cids[i]));
        T_TRUE(block_in(c2.blocks, c2.n_blocks, &cids[i]) ||
               block_in(c3.blocks, c3.n_blocks, &cids[i]));
        for (size_t j = 0; j < c3.n_removed; j++) {
            T_FALSE(atp_cid_eq(&cids[i], &c3.removed[j]));
        }
    }
    for (size_t j = 0; j < c3.n_removed; j++) {
        T_TRUE(block_in(c1.blocks, c1.n_blocks, &c3.removed[j]) ||
               block_in(c2.blocks, c2.n_blocks, &c3.removed[j]));
    }
    T_TRUE(atp_cid_eq(&c3.removed[0], &c2.cid));
    {
        atp_car_mem mm;
        T_OK(atp_car_mem_open(&mm, atp_buf_slice(&car), NULL, 0, NULL));
        T_TRUE(atp_cid_eq(&mm.roots[0], &c3.cid));
        atp_car_mem_close(&mm);
    }
    /* Since the last rev: only the header. Since "": the full export. */
    atp_buf_reset(&car);
    atp_car_writer_init_buf(&wr, &car);
    T_OK(atp_repo_export_since(r, atp_slice_str(c3.rev), &wr, NULL));
    T_EQ(car_cids(atp_buf_slice(&car), cids, 64), 0);
    export_car(r, &full);
    atp_buf_init(&since_all, 0);
    atp_car_writer_init_buf(&wr, &since_all);
    T_OK(atp_repo_export_since(r, ATP_SLICE_LIT(""), &wr, NULL));
    T_MEMEQ(since_all.ptr, since_all.len, full.ptr, full.len);
    atp_buf_release(&since_all);
    atp_buf_release(&full);
    atp_buf_release(&car);
    atp_repo_destroy(r);
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
    atp_arena_destroy(a);
    atp_key_destroy(k);
}

/* ---- record proofs ---- */

static void write_proof(atp_repo *r, atp_slice path, atp_buf *out)
{
    atp_car_writer w;
    atp_err err = {0};
    atp_buf_init(out, 0);
    atp_car_writer_init_buf(&w, out);
    T_OKE(atp_repo_write_proof(r, path, &w, &err), &err);
}

static void test_proofs(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key(), *other = NULL;
    atp_arena *a = atp_arena_create(0);
    model *m = atp_xcalloc(1, sizeof *m);
    atp_repo *r = build_repo(bs, k, m, 40);
    atp_repo_proof_result res;
    atp_buf car, bad;
    atp_cid cids[64];
    atp_err err = {0};
    unsigned live = pick_live(m, NULL, 0);
    atp_slice present = path_for(a, live), absent = path_for(a, 3000);
    size_t n, drops_failed = 0, drops_wrong = 0;
    atp_slice rec;
    bool found;

    write_proof(r, present, &car);
    T_OKE(atp_repo_verify_proof(atp_buf_slice(&car), k, atp_slice_str(ex_did), present, a, &res,
                                &err),
          &err);
    T_TRUE(res.present);
    T_TRUE(atp_cid_eq(&res.cid, &m->cid[live]));
    T_TRUE(atp_cid_eq(&res.head, atp_repo_head(r)));
    T_OK(atp_repo_get(r, present, a, NULL, &rec, &found, NULL));
    T_TRUE(atp_slice_eq(res.record, rec));
    T_TRUE(atp_slice_eq(res.commit.rev, atp_repo_rev(r)));

    /* Every node dropped in turn: the verifier fails or still answers right, never wrongly. */
    n = car_cids(atp_buf_slice(&car), cids, 64);
    for (size_t i = 1; i + 1 < n && i < 64; i++) {
        int rc;
        car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = &cids[i]}, &bad);
        rc = atp_repo_verify_proof(atp_buf_slice(&bad), k, atp_slice_str(""), present, a, &res,
                                   &err);
        drops_failed += rc == ATP_ENOTFOUND;
        drops_wrong += rc == 0 && (!res.present || !atp_cid_eq(&res.cid, &m->cid[live]));
        atp_buf_release(&bad);
    }
    T_TRUE(drops_failed > 0);
    T_EQ(drops_wrong, 0);
    /* The root node and the record block are always needed. */
    car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = atp_repo_data(r)}, &bad);
    T_EQ(atp_repo_verify_proof(atp_buf_slice(&bad), k, atp_slice_str(""), present, a, &res, &err),
         ATP_ENOTFOUND);
    T_TRUE(strstr(err.msg, "MST node") != NULL);
    atp_buf_release(&bad);
    car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = &m->cid[live]}, &bad);
    T_EQ(atp_repo_verify_proof(atp_buf_slice(&bad), k, atp_slice_str(""), present, a, &res, &err),
         ATP_ENOTFOUND);
    T_TRUE(strstr(err.msg, "record") != NULL);
    atp_buf_release(&bad);
    /* Wrong key, wrong DID, flipped byte. */
    T_OK(atp_key_generate(ATP_CURVE_K256, &other, NULL));
    T_EQ(atp_repo_verify_proof(atp_buf_slice(&car), other, atp_slice_str(""), present, a, &res,
                               &err),
         ATP_ESIG);
    T_EQ(atp_repo_verify_proof(atp_buf_slice(&car), k, ATP_SLICE_LIT("did:plc:other"), present, a,
                               &res, &err),
         ATP_EINVAL);
    car.ptr[car.len - 3] ^= 0x10;
    T_EQ(atp_repo_verify_proof(atp_buf_slice(&car), k, atp_slice_str(""), present, a, &res, &err),
         ATP_EHASH);
    atp_buf_release(&car);

    /* Absence. */
    write_proof(r, absent, &car);
    T_OKE(
        atp_repo_verify_proof(atp_buf_slice(&car), k, atp_slice_str(ex_did), absent, a, &res, &err),
        &err);
    T_FALSE(res.present);
    /* The proof of one path says nothing about a far-away one, and must not claim to. */
    {
        atp_slice elsewhere = ATP_SLICE_LIT("zzz.example.record/abc");
        int rc = atp_repo_verify_proof(atp_buf_slice(&car), k, atp_slice_str(""), elsewhere, a,
                                       &res, &err);
        T_TRUE(rc == ATP_ENOTFOUND || (rc == 0 && !res.present));
    }
    atp_buf_release(&car);
    T_EQ(atp_repo_verify_proof(ATP_SLICE_LIT("\x00"), k, atp_slice_str(""), absent, a, &res, &err) <
             0,
         1);
    atp_key_destroy(other);
    free(m);
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* ---- tampered CARs refused by import ---- */

static int import_rc(atp_slice car, const atp_key *k, atp_slice did, atp_err *err)
{
    atp_blockstore *dst = atp_blockstore_mem_create();
    atp_arena *a = atp_arena_create(0);
    atp_repo_import_opts o = {k, did, NULL, NULL, NULL};
    atp_repo_info info;
    int rc = atp_repo_import(car, &o, dst, a, &info, err);
    /* Nothing lands in the target unless the whole repo verified. */
    if (rc != 0 && atp_blockstore_mem_count(dst) != 0) {
        T_FAILF("failed import left %zu blocks", atp_blockstore_mem_count(dst));
    }
    atp_arena_destroy(a);
    atp_blockstore_destroy(dst);
    return rc;
}

static void expect_import(atp_slice car, const atp_key *k, int want, const char *needle,
                          const char *why)
{
    atp_err err = {0};
    int rc = import_rc(car, k, atp_slice_str(ex_did), &err);
    t__checks++;
    if (rc != want || (needle && !strstr(err.msg, needle))) {
        T_FAILF("%s: rc %d '%s', want %d '%s'", why, rc, err.msg, want, needle ? needle : "");
    } else if (rc != 0) {
        printf("# refused (%s): %s\n", why, err.msg);
    }
}

static void flip_s(uint8_t sig[64])
{
    static const char n_hex[] = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    uint8_t n[32];
    int borrow = 0;
    unhex(n_hex, n, 32);
    for (int i = 31; i >= 0; i--) {
        int d = n[i] - sig[32 + i] - borrow;
        borrow = d < 0;
        sig[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

typedef struct node_list {
    atp_cid v[256];
    size_t n;
} node_list;

static int on_walk_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    node_list *l = ctx;
    (void)bytes;
    if (l->n < 256) {
        l->v[l->n++] = *cid;
    }
    return 0;
}

/* Replaces the commit by `c` (re-encoded), as the new root. */
static void swap_commit(atp_slice car, const atp_cid *old, const atp_commit *c, atp_buf *out)
{
    atp_buf cb;
    atp_block blk;
    atp_buf_init(&cb, 0);
    atp_commit_encode(&cb, c);
    blk.data = atp_buf_slice(&cb);
    atp_commit_cid(blk.data, &blk.cid);
    car_rewrite(car, &(car_edit){.new_root = &blk.cid, .replace = old, .with = &blk}, out);
    atp_buf_release(&cb);
}

static void test_import_tampered(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_key *k = ex_key(), *other = NULL;
    atp_arena *a = atp_arena_create(0);
    model *m = atp_xcalloc(1, sizeof *m);
    atp_repo *r = build_repo(bs, k, m, 20);
    atp_buf car, bad;
    atp_commit c;
    node_list nodes = {.n = 0};
    atp_mst *t = atp_mst_open(bs, atp_repo_data(r), &atp_mst_limits_default);
    unsigned live = pick_live(m, NULL, 0);
    atp_slice cb;
    T_OK(atp_mst_walk(t, on_walk_node, NULL, &nodes, NULL));
    atp_mst_destroy(t);
    T_TRUE(nodes.n > 2);
    export_car(r, &car);
    expect_import(atp_buf_slice(&car), k, 0, NULL, "untouched");

    /* A flipped byte in the last block's data. */
    atp_buf_init(&bad, 0);
    atp_buf_append_slice(&bad, atp_buf_slice(&car));
    bad.ptr[bad.len - 5] ^= 0x01;
    expect_import(atp_buf_slice(&bad), k, ATP_EHASH, NULL, "flipped byte");
    atp_buf_release(&bad);
    /* Cut short. */
    expect_import(atp_slice_make(car.ptr, car.len - 10), k, ATP_ETRUNC, NULL, "truncated");
    /* A missing inner MST node, named. */
    {
        char s[ATP_CID_STR_MAX];
        car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = &nodes.v[nodes.n - 1]}, &bad);
        expect_import(atp_buf_slice(&bad), k, ATP_ENOTFOUND, cidstr(&nodes.v[nodes.n - 1], s),
                      "missing MST node");
        atp_buf_release(&bad);
    }
    /* A missing record. */
    car_rewrite(atp_buf_slice(&car), &(car_edit){.skip = &m->cid[live]}, &bad);
    expect_import(atp_buf_slice(&bad), k, ATP_ENOTFOUND, "missing", "missing record");
    atp_buf_release(&bad);
    /* An unreferenced extra block is ignored, and not stored. */
    {
        atp_block extra;
        atp_blockstore *dst = atp_blockstore_mem_create();
        atp_repo_info info;
        bool has = true;
        extra.data = ATP_SLICE_LIT("\xa1\x61\x78\x01");
        atp_cid_compute(&extra.cid, ATP_CODEC_DAG_CBOR, extra.data);
        car_rewrite(atp_buf_slice(&car), &(car_edit){.extra = &extra}, &bad);
        T_OK(atp_repo_import(atp_buf_slice(&bad), &(atp_repo_import_opts){.key = k}, dst, a, &info,
                             NULL));
        T_EQ(info.n_unused, 1);
        T_OK(atp_blockstore_has(dst, &extra.cid, &has, NULL));
        T_FALSE(has);
        atp_buf_release(&bad);
        atp_blockstore_destroy(dst);
    }
    /* Wrong key, wrong DID. */
    T_OK(atp_key_generate(ATP_CURVE_K256, &other, NULL));
    expect_import(atp_buf_slice(&car), other, ATP_ESIG, NULL, "other key");
    T_EQ(import_rc(atp_buf_slice(&car), k, ATP_SLICE_LIT("did:plc:someoneelse"), NULL), ATP_EINVAL);
    /* The commit re-signed by another key. */
    T_OK(atp_blockstore_get(bs, atp_repo_head(r), a, &cb, NULL));
    T_OK(atp_commit_decode(a, cb, &c, NULL));
    T_OK(atp_commit_sign(&c, other, NULL));
    swap_commit(atp_buf_slice(&car), atp_repo_head(r), &c, &bad);
    expect_import(atp_buf_slice(&bad), k, ATP_ESIG, NULL, "signed by another key");
    atp_buf_release(&bad);
    /* High-S: the same signature with s -> n - s (valid ECDSA, refused by atproto). */
    T_OK(atp_commit_decode(a, cb, &c, NULL));
    flip_s(c.sig);
    swap_commit(atp_buf_slice(&car), atp_repo_head(r), &c, &bad);
    expect_import(atp_buf_slice(&bad), k, ATP_EINVAL, NULL, "high-S signature");
    atp_buf_release(&bad);
    /* A commit whose bytes are not a commit. */
    {
        atp_block junk = {{0}, ATP_SLICE_LIT("\xa1\x61\x78\x01")};
        atp_cid_compute(&junk.cid, ATP_CODEC_DAG_CBOR, junk.data);
        car_rewrite(atp_buf_slice(&car),
                    &(car_edit){.new_root = &junk.cid, .replace = atp_repo_head(r), .with = &junk},
                    &bad);
        expect_import(atp_buf_slice(&bad), k, ATP_EINVAL, "commit", "junk commit");
        atp_buf_release(&bad);
    }
    atp_buf_release(&car);
    atp_key_destroy(other);
    free(m);
    atp_repo_destroy(r);
    atp_arena_destroy(a);
    atp_key_destroy(k);
    atp_blockstore_destroy(bs);
}

/* ---- hand-built trees ---- */

static atp_cbor *entry(atp_arena *a, atp_slice key, size_t p, const atp_cid *v)
{
    atp_cbor *e = atp_cbor_new_map(a, 4);
    e->u.map.pairs[0].key = ATP_SLICE_LIT("k");
    e->u.map.pairs[0].val = *atp_cbor_new_bytes(a, atp_slice_sub(key, p, key.len));
    e->u.map.pairs[1].key = ATP_SLICE_LIT("p");
    e->u.map.pairs[1].val = *atp_cbor_new_int(a, (int64_t)p);
    e->u.map.pairs[2].key = ATP_SLICE_LIT("t");
    e->u.map.pairs[2].val = *atp_cbor_new_null(a);
    e->u.map.pairs[3].key = ATP_SLICE_LIT("v");
    e->u.map.pairs[3].val = *atp_cbor_new_link(a, v);
    T_OK(atp_cbor_map_finish(e, NULL));
    return e;
}

/* A leaf node of two entries: (k1, full) then (k2 with p1 bytes of prefix taken). */
static void leaf_node(atp_arena *a, atp_slice k1, atp_slice k2, size_t p2, const atp_cid *v,
                      atp_buf *out)
{
    atp_cbor *n = atp_cbor_new_map(a, 2), *arr = atp_cbor_new_array(a, 2);
    arr->u.arr.items[0] = *entry(a, k1, 0, v);
    arr->u.arr.items[1] = *entry(a, k2, p2, v);
    n->u.map.pairs[0].key = ATP_SLICE_LIT("e");
    n->u.map.pairs[0].val = *arr;
    n->u.map.pairs[1].key = ATP_SLICE_LIT("l");
    n->u.map.pairs[1].val = *atp_cbor_new_null(a);
    T_OK(atp_cbor_map_finish(n, NULL));
    atp_buf_init(out, 0);
    atp_cbor_encode(out, n);
    T_EQ(out->err, 0);
}

/* A signed repo CAR whose root node is `node` and which holds `rec`. */
static void hand_car(atp_slice node, const atp_block *rec, const atp_key *k, atp_buf *out)
{
    atp_cid ncid, head;
    atp_buf cb;
    atp_car_writer w;
    atp_cid_compute(&ncid, ATP_CODEC_DAG_CBOR, node);
    atp_buf_init(&cb, 0);
    T_OK(atp_commit_create(&cb, atp_slice_str(ex_did), ATP_SLICE_LIT("3kznmn7xqxl22"), &ncid, k,
                           NULL, &head, NULL));
    atp_buf_init(out, 0);
    atp_car_writer_init_buf(&w, out);
    T_OK(atp_car_write_header(&w, &head, 1));
    T_OK(atp_car_write_block(&w, &head, atp_buf_slice(&cb)));
    T_OK(atp_car_write_block(&w, &ncid, node));
    T_OK(atp_car_write_block(&w, &rec->cid, rec->data));
    atp_buf_release(&cb);
}

/* Two keys of layer 0 in one collection, k1 < k2. */
static void two_leaf_keys(atp_arena *a, atp_slice *k1, atp_slice *k2)
{
    int found = 0;
    for (int i = 0; found < 2 && i < 100; i++) {
        char buf[64];
        int n = snprintf(buf, sizeof buf, "com.example.record/a%02d", i);
        atp_slice key = atp_slice_make(atp_arena_dup(a, buf, (size_t)n), (size_t)n);
        if (atp_mst_key_height(key) == 0) {
            *(found++ ? k2 : k1) = key;
        }
    }
    T_EQ(found, 2);
}

static void test_import_hand_built(void)
{
    atp_key *k = ex_key();
    atp_arena *a = atp_arena_create(0);
    atp_slice k1, k2;
    atp_block rec = {{0},
                     ATP_SLICE_LIT("\xa1\x65$type\x72"
                                   "com.example.record")};
    atp_block notmap = {{0}, ATP_SLICE_LIT("\x82\x01\x02")};
    atp_buf node, car;
    size_t cp;
    atp_cid_compute(&rec.cid, ATP_CODEC_DAG_CBOR, rec.data);
    atp_cid_compute(&notmap.cid, ATP_CODEC_DAG_CBOR, notmap.data);
    two_leaf_keys(a, &k1, &k2);
    cp = atp_mst_common_prefix(k1, k2);
    T_TRUE(cp >= 19 && cp < k1.len);

    /* Control: the well-formed node imports, so each rejection below is for its one fault. */
    leaf_node(a, k1, k2, cp, &rec.cid, &node);
    hand_car(atp_buf_slice(&node), &rec, k, &car);
    expect_import(atp_buf_slice(&car), k, 0, NULL, "hand-built control");
    atp_buf_release(&car);
    /* A record that is an array, not a map. */
    atp_buf_release(&node);
    leaf_node(a, k1, k2, cp, &notmap.cid, &node);
    hand_car(atp_buf_slice(&node), &notmap, k, &car);
    expect_import(atp_buf_slice(&car), k, ATP_EINVAL, "not a map", "record not a map");
    atp_buf_release(&car);
    atp_buf_release(&node);
    /* Keys out of order. */
    leaf_node(a, k2, k1, cp, &rec.cid, &node);
    hand_car(atp_buf_slice(&node), &rec, k, &car);
    expect_import(atp_buf_slice(&car), k, ATP_EINVAL, NULL, "bad key order");
    atp_buf_release(&car);
    atp_buf_release(&node);
    /* The same key twice. */
    leaf_node(a, k1, k1, k1.len, &rec.cid, &node);
    hand_car(atp_buf_slice(&node), &rec, k, &car);
    expect_import(atp_buf_slice(&car), k, ATP_EINVAL, NULL, "duplicate key");
    atp_buf_release(&car);
    atp_buf_release(&node);
    /* No prefix compression on the second entry. */
    leaf_node(a, k1, k2, 0, &rec.cid, &node);
    hand_car(atp_buf_slice(&node), &rec, k, &car);
    expect_import(atp_buf_slice(&car), k, ATP_EINVAL, NULL, "uncompressed key");
    atp_buf_release(&car);
    atp_buf_release(&node);
    atp_arena_destroy(a);
    atp_key_destroy(k);
}

/* ---- interop: firehose/commit-proof-fixtures.json ---- */

static atp_cid fixture_cid(const cJSON *c, const char *field)
{
    atp_cid v;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, field);
    memset(&v, 0, sizeof v);
    T_TRUE(cJSON_IsString(s));
    if (cJSON_IsString(s)) {
        T_OK(atp_cid_parse(atp_slice_str(s->valuestring), 0, &v, NULL));
    }
    return v;
}

static void fixture_tree(atp_mst *t, const cJSON *keys, const atp_cid *leaf, bool del)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, keys)
    {
        atp_slice key = atp_slice_str(k->valuestring);
        T_OK(del ? atp_mst_delete(t, key, NULL, NULL, NULL)
                 : atp_mst_put(t, key, leaf, NULL, NULL, NULL));
    }
}

static int car_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    return atp_car_write_block(ctx, cid, bytes);
}

/* The #commit CAR our apply would send: commit, new nodes, covering proofs of the op keys. */
static void fixture_car(atp_mst *t, const cJSON *c, const atp_key *k, atp_cid *head, atp_buf *out)
{
    atp_cid root;
    atp_buf cb;
    atp_car_writer w;
    const char *lists[2] = {"adds", "dels"};
    T_OK(atp_mst_root(t, &root, NULL));
    atp_buf_init(&cb, 0);
    T_OK(atp_commit_create(&cb, atp_slice_str(ex_did), ATP_SLICE_LIT("3kznmn7xqxl22"), &root, k,
                           NULL, head, NULL));
    atp_buf_init(out, 0);
    atp_car_writer_init_buf(&w, out);
    T_OK(atp_car_write_header(&w, head, 1));
    T_OK(atp_car_write_block(&w, head, atp_buf_slice(&cb)));
    T_OK(atp_mst_each_new_block(t, car_node, &w, NULL));
    for (int l = 0; l < 2; l++) {
        const cJSON *key;
        cJSON_ArrayForEach(key, cJSON_GetObjectItemCaseSensitive(c, lists[l]))
        {
            T_OK(atp_mst_proof(t, atp_slice_str(key->valuestring), car_node, &w, NULL));
        }
    }
    atp_buf_release(&cb);
}

/* Ops of the fixture's commit, if every key is a repo path (the others are bare MST keys). */
static size_t fixture_ops(const cJSON *c, const atp_cid *leaf, atp_repo_op *ops, size_t cap)
{
    const char *lists[2] = {"adds", "dels"};
    size_t n = 0;
    for (int l = 0; l < 2; l++) {
        const cJSON *key;
        cJSON_ArrayForEach(key, cJSON_GetObjectItemCaseSensitive(c, lists[l]))
        {
            atp_slice p = atp_slice_str(key->valuestring);
            if (n == cap || atp_repo_check_path(p, NULL) != 0) {
                return 0;
            }
            ops[n] = (atp_repo_op){
                l ? ATP_REPO_DELETE : ATP_REPO_CREATE, p, l == 0, *leaf, l == 1, *leaf};
            n++;
        }
    }
    return n;
}

static void fixture_case(const cJSON *c, const atp_key *k, int *proofs, int *inverted)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_mst *t = atp_mst_create(bs, &atp_mst_limits_default);
    atp_cid leaf = fixture_cid(c, "leafValue"), before = fixture_cid(c, "rootBeforeCommit");
    atp_cid after = fixture_cid(c, "rootAfterCommit"), root, head, cids[64];
    atp_repo_op ops[16];
    atp_buf car;
    const cJSON *want;
    size_t n, n_ops;
    fixture_tree(t, cJSON_GetObjectItemCaseSensitive(c, "keys"), &leaf, false);
    T_OK(atp_mst_root(t, &root, NULL));
    T_TRUE(atp_cid_eq(&root, &before));
    store_new_nodes(t, bs);
    fixture_tree(t, cJSON_GetObjectItemCaseSensitive(c, "adds"), &leaf, false);
    fixture_tree(t, cJSON_GetObjectItemCaseSensitive(c, "dels"), &leaf, true);
    T_OK(atp_mst_root(t, &root, NULL));
    T_TRUE(atp_cid_eq(&root, &after));
    fixture_car(t, c, k, &head, &car);
    n = car_cids(atp_buf_slice(&car), cids, 64);
    cJSON_ArrayForEach(want, cJSON_GetObjectItemCaseSensitive(c, "blocksInProof"))
    {
        atp_cid w;
        bool in = false;
        T_OK(atp_cid_parse(atp_slice_str(want->valuestring), 0, &w, NULL));
        for (size_t i = 0; i < n && i < 64; i++) {
            in = in || atp_cid_eq(&cids[i], &w);
        }
        if (!in) {
            T_FAILF("%s: proof lacks %s",
                    cJSON_GetObjectItemCaseSensitive(c, "comment")->valuestring, want->valuestring);
        }
    }
    (*proofs)++;
    n_ops = fixture_ops(c, &leaf, ops, 16);
    if (n_ops > 0) {
        atp_repo_invert_report rep;
        atp_repo_invert_in in = {atp_buf_slice(&car), ops,       n_ops, &before, k,
                                 {NULL, 0},           {NULL, 0}, &head};
        if (atp_repo_invert_check(&in, &rep, NULL) != 0) {
            T_FAILF("inversion: %s", rep.detail);
        }
        (*inverted)++;
    }
    atp_buf_release(&car);
    atp_mst_destroy(t);
    atp_blockstore_destroy(bs);
}

static void test_interop_commit_proofs(void)
{
    char *text = t_read_file(t_shared("interop/firehose/commit-proof-fixtures.json"), NULL);
    cJSON *doc = text ? cJSON_Parse(text) : NULL, *c;
    atp_key *k = ex_key();
    int proofs = 0, inverted = 0;
    T_TRUE(cJSON_IsArray(doc));
    cJSON_ArrayForEach(c, doc)
    {
        fixture_case(c, k, &proofs, &inverted);
    }
    t_vectors("commit-proof fixtures (proof blocks in our #commit CAR)", proofs);
    t_vectors("commit-proof fixtures with repo paths (sync v1.1 inversion)", inverted);
    cJSON_Delete(doc);
    free(text);
    atp_key_destroy(k);
}

/* ---- garbage collection (spec §7: the store keeps only the current tree) ---- */

#define GC_IDS 120

/* Which content each path holds (0: absent); contents come from a small pool so that the same
 * record lives under several paths and a deleted record comes back. */
typedef struct gc_model {
    unsigned content[GC_IDS];
} gc_model;

static atp_cbor *gc_record(atp_arena *a, unsigned content)
{
    return record_for(a, "app.bsky.feed.like", 1000000u + content);
}

static atp_cid gc_cid(unsigned content)
{
    atp_arena *a = atp_arena_create(0);
    atp_buf b;
    atp_cid cid;
    atp_buf_init(&b, 0);
    atp_cbor_encode(&b, gc_record(a, content));
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, atp_buf_slice(&b));
    atp_buf_release(&b);
    atp_arena_destroy(a);
    return cid;
}

typedef struct cid_list {
    atp_cid *v;
    size_t n, cap;
} cid_list;

static int gc_collect(void *ctx, const atp_cid *cid, atp_slice data)
{
    cid_list *l = ctx;
    (void)data;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->v = atp_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = *cid;
    return 0;
}

/* The store holds exactly what a fresh export/import of the repo holds. */
static void gc_check_exact(atp_repo *r, const atp_key *k)
{
    atp_blockstore *fresh = atp_blockstore_mem_create();
    atp_arena *a = atp_arena_create(0);
    atp_repo_import_opts o = {k, atp_slice_str(ex_did), NULL, NULL, NULL};
    atp_repo_info info;
    atp_err err = {0};
    cid_list l = {NULL, 0, 0};
    atp_buf car;
    size_t extra = 0;
    export_car(r, &car);
    T_OKE(atp_repo_import(atp_buf_slice(&car), &o, fresh, a, &info, &err), &err);
    T_OK(atp_blockstore_each_since(atp_repo_store(r), ATP_SLICE_LIT(""), gc_collect, &l, NULL));
    T_EQ(l.n, atp_blockstore_mem_count(fresh));
    for (size_t i = 0; i < l.n; i++) {
        bool has = false;
        T_OK(atp_blockstore_has(fresh, &l.v[i], &has, NULL));
        extra += !has;
    }
    T_EQ(extra, 0);
    free(l.v);
    atp_buf_release(&car);
    atp_arena_destroy(a);
    atp_blockstore_destroy(fresh);
}

/* apply_store, then the caller's part: the maybe-unused records no path uses any more. */
static void gc_commit(atp_repo *r, const atp_repo_write *w, size_t n, atp_repo_commit *out,
                      atp_arena *a)
{
    atp_err err = {0};
    atp_cid *unused = NULL;
    size_t n_unused = 0;
    T_OKE(atp_repo_apply_store(r, w, n, a, out, &err), &err);
    for (size_t i = 0; i < out->n_removed; i++) {
        bool has = true;
        T_OK(atp_blockstore_has(atp_repo_store(r), &out->removed[i], &has, NULL));
        T_FALSE(has);
        T_FALSE(block_in(out->blocks, out->n_blocks, &out->removed[i]));
        T_FALSE(block_in(out->proof, out->n_proof, &out->removed[i]));
    }
    T_OKE(atp_repo_unused_records(r, out->removed_records_maybe, out->n_removed_records_maybe, a,
                                  &unused, &n_unused, &err),
          &err);
    T_OK(atp_blockstore_remove_batch(atp_repo_store(r), unused, n_unused, NULL));
}

static bool gc_has(atp_repo *r, const atp_cid *c)
{
    bool has = false;
    T_OK(atp_blockstore_has(atp_repo_store(r), c, &has, NULL));
    return has;
}

/* Identical records under two paths, then a record re-created with the same content. */
static void gc_scripted(atp_repo *r, const atp_key *k, gc_model *m)
{
    atp_arena *a = atp_arena_create(0);
    atp_repo_write w[2];
    atp_repo_commit c, prev;
    atp_cid x = gc_cid(7);
    w[0] = wcreate(path_for(a, 0), gc_record(a, 7));
    w[1] = wcreate(path_for(a, 1), gc_record(a, 7));
    gc_commit(r, w, 2, &prev, a);
    T_EQ(prev.n_removed, 0); /* the first commit: nothing before it */
    w[0] = wdelete(path_for(a, 0));
    gc_commit(r, w, 1, &c, a);
    T_EQ(c.n_removed_records_maybe, 1);
    T_TRUE(atp_cid_eq(&c.removed_records_maybe[0], &x));
    T_TRUE(atp_cid_eq(&c.removed[0], &prev.cid));
    T_TRUE(gc_has(r, &x)); /* path 1 still holds it */
    gc_check_exact(r, k);
    w[0] = wdelete(path_for(a, 1));
    gc_commit(r, w, 1, &c, a);
    T_FALSE(gc_has(r, &x));
    gc_check_exact(r, k); /* the empty tree */
    w[0] = wcreate(path_for(a, 2), gc_record(a, 7));
    gc_commit(r, w, 1, &c, a);
    T_TRUE(gc_has(r, &x));
    /* Update to the same content that another write of the batch drops: stays. */
    w[0] = wupdate(path_for(a, 2), gc_record(a, 8));
    w[1] = wcreate(path_for(a, 3), gc_record(a, 7));
    gc_commit(r, w, 2, &c, a);
    T_EQ(c.n_removed_records_maybe, 0);
    T_TRUE(gc_has(r, &x));
    gc_check_exact(r, k);
    m->content[2] = 8;
    m->content[3] = 7;
    atp_arena_destroy(a);
}

static size_t gc_random_batch(atp_arena *a, gc_model *m, atp_repo_write *w, unsigned *ids)
{
    size_t n = 1 + (size_t)(rnd() % 6), k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned id = (unsigned)(rnd() % GC_IDS), content = 1 + (unsigned)(rnd() % 12);
        if (in_batch(ids, k, id)) {
            continue;
        }
        if (m->content[id] == 0) {
            w[k] = wcreate(path_for(a, id), gc_record(a, content));
        } else if (rnd() % 3 == 0) {
            w[k] = wdelete(path_for(a, id));
            content = 0;
        } else {
            w[k] = wupdate(path_for(a, id), gc_record(a, content));
        }
        ids[k] = id;
        m->content[id] = content;
        k++;
    }
    return k;
}

typedef struct gc_walk {
    atp_blockstore *bs;
    size_t nodes, leaves, missing;
} gc_walk;

static int gc_walk_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    (void)cid;
    (void)bytes;
    ((gc_walk *)ctx)->nodes++;
    return 0;
}

static int gc_walk_leaf(void *ctx, atp_slice key, const atp_cid *val)
{
    gc_walk *g = ctx;
    bool has = false;
    (void)key;
    g->leaves++;
    if (atp_blockstore_has(g->bs, val, &has, NULL) != 0 || !has) {
        g->missing++;
    }
    return 0;
}

/* The reopened repo walks completely and matches the model. */
static void gc_reopen(atp_repo *r, const atp_key *k, const gc_model *m)
{
    atp_arena *a = atp_arena_create(0);
    atp_repo *r2 = NULL;
    size_t live = 0;
    T_OK(atp_repo_open(atp_repo_store(r), atp_repo_head(r), k, NULL, &r2, NULL));
    gc_walk g = {atp_repo_store(r), 0, 0, 0};
    T_OK(atp_mst_walk(atp_repo_tree(r2), gc_walk_node, gc_walk_leaf, &g, NULL));
    T_TRUE(g.nodes > 1);
    T_EQ(g.missing, 0);
    for (unsigned id = 0; id < GC_IDS; id++) {
        atp_cid got, want;
        atp_slice bytes;
        bool found = false;
        T_OK(atp_repo_get(r2, path_for(a, id), a, &got, &bytes, &found, NULL));
        T_EQ(found, m->content[id] != 0);
        if (found) {
            want = gc_cid(m->content[id]);
            T_TRUE(atp_cid_eq(&got, &want));
            live++;
        }
    }
    T_EQ(g.leaves, live);
    printf("# reopened after GC: %zu records, %zu nodes, all present\n", live, g.nodes);
    gc_check_exact(r2, k);
    atp_repo_destroy(r2);
    atp_arena_destroy(a);
}

static void gc_run(atp_blockstore *bs)
{
    atp_key *k = ex_key();
    atp_repo *r = NULL;
    gc_model *m = atp_xcalloc(1, sizeof *m);
    size_t removed = 0, maybe = 0;
    T_OK(atp_repo_create(bs, atp_slice_str(ex_did), k, NULL, &r, NULL));
    gc_scripted(r, k, m);
    for (int i = 0; i < 150; i++) {
        atp_arena *a = atp_arena_create(0);
        atp_repo_write w[8];
        unsigned ids[8];
        atp_repo_commit c;
        size_t n = gc_random_batch(a, m, w, ids);
        gc_commit(r, w, n, &c, a);
        removed += c.n_removed;
        maybe += c.n_removed_records_maybe;
        if (i % 50 == 49) {
            gc_check_exact(r, k);
        }
        atp_arena_destroy(a);
    }
    printf("# 150 random commits: %zu blocks removed, %zu maybe-unused records\n", removed,
           maybe);
    T_TRUE(removed > 300 && maybe > 50);
    gc_reopen(r, k, m);
    /* Proofs and inversion of the current commit still work over the collected store. */
    {
        atp_arena *a = atp_arena_create(0);
        atp_repo_write w = wcreate(path_for(a, GC_IDS + 1), gc_record(a, 3));
        atp_repo_commit c;
        atp_repo_invert_report rep;
        atp_buf car;
        atp_err err = {0};
        gc_commit(r, &w, 1, &c, a);
        commit_car(&c, true, &car);
        T_OKE(invert(&c, atp_buf_slice(&car), k, &rep, &err), &err);
        atp_buf_release(&car);
        write_proof(r, path_for(a, 2), &car);
        atp_buf_release(&car);
        atp_arena_destroy(a);
    }
    atp_repo_destroy(r);
    free(m);
    atp_key_destroy(k);
}

static void test_gc_mem(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    gc_run(bs);
    atp_blockstore_destroy(bs);
}

static void test_gc_sqlite(void)
{
    sqlite3 *db = NULL;
    atp_blockstore *bs = NULL;
    T_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    T_OK(atp_blockstore_sqlite_create(db, &bs, NULL));
    gc_run(bs);
    atp_blockstore_destroy(bs);
    sqlite3_close(db);
}

int main(void)
{
    T_RUN(test_paths);
    T_RUN(test_spec_example_car);
    T_RUN(test_apply_basic);
    T_RUN(test_apply_signed);
    T_RUN(test_apply_rejects);
    T_RUN(test_apply_pending);
    T_RUN(test_random_inversion);
    T_RUN(test_inversion_failures);
    T_RUN(test_export_import_mem);
    T_RUN(test_export_import_sqlite);
    T_RUN(test_export_since);
    T_RUN(test_proofs);
    T_RUN(test_import_tampered);
    T_RUN(test_import_hand_built);
    T_RUN(test_interop_commit_proofs);
    T_RUN(test_gc_mem);
    T_RUN(test_gc_sqlite);
    return t_done();
}

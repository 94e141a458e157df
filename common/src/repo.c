/* repo.c: the repo handle, record reads, and batches of writes turned into signed commits.
 * See atp/repo.h. Also the small helpers of repo_int.h that the other repo files share. */
#include "repo_int.h"

#include <stdlib.h>
#include <string.h>

#include "atp/syntax.h"

/* ---- CID set ---- */

static size_t cid_hash(const atp_cid *c)
{
    /* FNV-1a over the whole binary CID: digests are uniform, and other CIDs still spread. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < c->len; i++) {
        h = (h ^ c->bytes[i]) * 1099511628211ull;
    }
    return (size_t)h;
}

static void cidset_grow(atp__cidset *s)
{
    atp__cidset bigger = {atp_xcalloc(s->cap ? s->cap * 2 : 64, sizeof(atp_cid)),
                          s->cap ? s->cap * 2 : 64, 0};
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].len) {
            atp__cidset_add(&bigger, &s->slots[i]);
        }
    }
    free(s->slots);
    *s = bigger;
}

bool atp__cidset_add(atp__cidset *s, const atp_cid *c)
{
    size_t i;
    if ((s->n + 1) * 4 > s->cap * 3) {
        cidset_grow(s);
    }
    for (i = cid_hash(c) & (s->cap - 1); s->slots[i].len; i = (i + 1) & (s->cap - 1)) {
        if (atp_cid_eq(&s->slots[i], c)) {
            return false;
        }
    }
    s->slots[i] = *c;
    s->n++;
    return true;
}

bool atp__cidset_has(const atp__cidset *s, const atp_cid *c)
{
    if (s->cap == 0) {
        return false;
    }
    for (size_t i = cid_hash(c) & (s->cap - 1); s->slots[i].len; i = (i + 1) & (s->cap - 1)) {
        if (atp_cid_eq(&s->slots[i], c)) {
            return true;
        }
    }
    return false;
}

void atp__cidset_release(atp__cidset *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ---- block vector ---- */

void atp__blockvec_push(atp__blockvec *bv, const atp_cid *cid, atp_slice data)
{
    if (bv->n == bv->cap) {
        bv->cap = bv->cap ? bv->cap * 2 : 16;
        bv->v = atp_xrealloc(bv->v, bv->cap * sizeof *bv->v);
    }
    bv->v[bv->n].cid = *cid;
    bv->v[bv->n].data = data;
    bv->n++;
}

void atp__blockvec_release(atp__blockvec *bv)
{
    free(bv->v);
    memset(bv, 0, sizeof *bv);
}

/* ---- tracing store ---- */

static int trace_get(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_slice *out,
                     atp_err *err)
{
    atp__trace_store *t = (atp__trace_store *)bs;
    int rc = atp_blockstore_get(t->inner, cid, a, out, err);
    if (rc == ATP_ENOTFOUND && !t->missed) {
        t->missed = true;
        t->missing = *cid;
    }
    return rc;
}

static int trace_has(atp_blockstore *bs, const atp_cid *cid, bool *out, atp_err *err)
{
    atp__trace_store *t = (atp__trace_store *)bs;
    return atp_blockstore_has(t->inner, cid, out, err);
}

static int trace_put(atp_blockstore *bs, const atp_block *b, size_t n, atp_slice rev, atp_err *err)
{
    return atp_blockstore_put_batch(((atp__trace_store *)bs)->inner, b, n, rev, err);
}

static int trace_since(atp_blockstore *bs, atp_slice rev,
                       int (*fn)(void *ctx, const atp_cid *cid, atp_slice data), void *ctx,
                       atp_err *err)
{
    return atp_blockstore_each_since(((atp__trace_store *)bs)->inner, rev, fn, ctx, err);
}

static int trace_remove(atp_blockstore *bs, const atp_cid *cids, size_t n, atp_err *err)
{
    return atp_blockstore_remove_batch(((atp__trace_store *)bs)->inner, cids, n, err);
}

static void trace_destroy(atp_blockstore *bs)
{
    (void)bs; /* caller-owned struct */
}

static const atp_blockstore_ops trace_ops = {trace_get,   trace_has,    trace_put,
                                             trace_since, trace_remove, trace_destroy};

void atp__trace_store_init(atp__trace_store *t, atp_blockstore *inner)
{
    memset(t, 0, sizeof *t);
    t->base.ops = &trace_ops;
    t->inner = inner;
}

/* ---- shared steps ---- */

const atp_cbor_limits atp__repo_record_limits = {
    .max_len = ATP_REPO_MAX_RECORD,
    .max_depth = 32,
    .max_items = 131072,
    .max_key = 8192,
    .max_total = 1u << 20,
};

const char *atp__cid_str(const atp_cid *c, char *buf)
{
    if (atp_cid_format_to(c, buf, ATP_CID_STR_MAX) == 0) {
        buf[0] = '\0';
    }
    return buf;
}

int atp__record_check(atp_slice bytes, const atp_cbor_limits *lim, atp_err *err)
{
    atp_err sub = {0};
    if (bytes.len > lim->max_len) {
        return atp_err_set(err, ATP_ELIMIT, 0, "record of %zu bytes (max %zu)", bytes.len,
                           lim->max_len);
    }
    if (atp_cbor_validate(bytes, lim, &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, sub.off, "record is not DAG-CBOR: %s", sub.msg);
    }
    /* Major type 5 in the first byte: the one item is a map. */
    if ((bytes.ptr[0] >> 5) != 5) {
        return atp_err_set(err, ATP_EINVAL, 0, "record is not a map");
    }
    return 0;
}

int atp__commit_load(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_commit *out,
                     atp_err *err)
{
    atp_slice bytes;
    atp_commit c;
    char str[ATP_CID_STR_MAX];
    int rc = atp_blockstore_get(bs, cid, a, &bytes, err);
    if (rc == ATP_ENOTFOUND) {
        return atp_err_set(err, rc, 0, "commit block %s missing", atp__cid_str(cid, str));
    }
    rc = rc ? rc : atp_commit_decode(a, bytes, &c, err);
    if (rc != 0) {
        return rc;
    }
    c.did = atp_slice_make(atp_arena_dup(a, c.did.ptr, c.did.len), c.did.len);
    c.rev = atp_slice_make(atp_arena_dup(a, c.rev.ptr, c.rev.len), c.rev.len);
    *out = c;
    return 0;
}

int atp__car_load(atp_slice car, const atp_car_limits *lim, atp_blockstore *mem, atp_cid *root,
                  atp_err *err)
{
    atp_car_mem m;
    atp_car_block blk;
    int rc = atp_car_mem_open(&m, car, lim, 0, err);
    if (rc != 0) {
        return rc;
    }
    if (m.n_roots == 0) {
        atp_car_mem_close(&m);
        return atp_err_set(err, ATP_EINVAL, 0, "CAR has no root");
    }
    *root = m.roots[0];
    while ((rc = atp_car_mem_next(&m, &blk, err)) == ATP_CAR_BLOCK) {
        rc = atp_blockstore_put(mem, &blk.cid, blk.data, atp_slice_make(NULL, 0), err);
        if (rc != 0) {
            break;
        }
    }
    atp_car_mem_close(&m);
    return rc;
}

/* ---- actions and paths ---- */

const char *atp_repo_action_name(atp_repo_action a)
{
    switch (a) {
    case ATP_REPO_CREATE:
        return "create";
    case ATP_REPO_UPDATE:
        return "update";
    case ATP_REPO_DELETE:
        return "delete";
    }
    return "?";
}

int atp_repo_action_parse(atp_slice s, atp_repo_action *out)
{
    for (int a = ATP_REPO_CREATE; a <= ATP_REPO_DELETE; a++) {
        if (atp_slice_eq_str(s, atp_repo_action_name((atp_repo_action)a))) {
            *out = (atp_repo_action)a;
            return 0;
        }
    }
    return ATP_EINVAL;
}

int atp_repo_check_path(atp_slice path, atp_err *err)
{
    atp_err sub = {0};
    const uint8_t *slash = path.len ? memchr(path.ptr, '/', path.len) : NULL;
    size_t coll_len;
    if (path.len > ATP_REPO_MAX_PATH) {
        return atp_err_set(err, ATP_EINVAL, 0, "path of %zu bytes (max %d)", path.len,
                           ATP_REPO_MAX_PATH);
    }
    if (!slash) {
        return atp_err_set(err, ATP_EINVAL, 0, "path has no '/'");
    }
    coll_len = (size_t)(slash - path.ptr);
    if (atp_syntax_check_nsid(atp_slice_make(path.ptr, coll_len), &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, sub.off, "path collection: %s", sub.msg);
    }
    /* The rkey check refuses a second '/', so "exactly one '/'" holds. */
    if (atp_syntax_check_rkey(atp_slice_sub(path, coll_len + 1, path.len), &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, coll_len + 1 + sub.off, "path record key: %s", sub.msg);
    }
    return 0;
}

/* ---- the handle ---- */

struct atp_repo {
    atp_blockstore *bs;
    const atp_key *key;
    atp_mst_limits lim;
    char *did;
    size_t did_len;
    char rev[14]; /* "" before the first commit */
    bool has_head;
    atp_cid head;
    atp_cid data;
    atp_mst *tree;
    /* The last apply, until accepted or replaced. */
    atp_mst *pending;
    atp_cid pending_cid, pending_data;
    char pending_rev[14];
};

static atp_repo *repo_new(atp_blockstore *bs, atp_slice did, const atp_key *key,
                          const atp_mst_limits *lim)
{
    atp_repo *r = atp_xcalloc(1, sizeof *r);
    r->bs = bs;
    r->key = key;
    r->lim = lim ? *lim : atp_mst_limits_default;
    r->did = atp_xstrndup((const char *)did.ptr, did.len);
    r->did_len = did.len;
    return r;
}

int atp_repo_create(atp_blockstore *bs, atp_slice did, const atp_key *key,
                    const atp_mst_limits *lim, atp_repo **out, atp_err *err)
{
    atp_err sub = {0};
    atp_repo *r;
    int rc;
    if (atp_syntax_check_did(did, &sub) != 0) {
        return atp_err_set(err, ATP_EINVAL, sub.off, "repo did: %s", sub.msg);
    }
    r = repo_new(bs, did, key, lim);
    r->tree = atp_mst_create(bs, &r->lim);
    rc = atp_mst_root(r->tree, &r->data, err);
    if (rc != 0) {
        atp_repo_destroy(r);
        return rc;
    }
    *out = r;
    return 0;
}

int atp_repo_open(atp_blockstore *bs, const atp_cid *head, const atp_key *key,
                  const atp_mst_limits *lim, atp_repo **out, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_commit c;
    atp_repo *r = NULL;
    int rc = atp__commit_load(bs, head, a, &c, err);
    if (rc == 0) {
        r = repo_new(bs, c.did, key, lim);
        memcpy(r->rev, c.rev.ptr, c.rev.len);
        r->has_head = true;
        r->head = *head;
        r->data = c.data;
        r->tree = atp_mst_open(bs, &c.data, &r->lim);
        *out = r;
    }
    atp_arena_destroy(a);
    return rc;
}

void atp_repo_destroy(atp_repo *r)
{
    if (!r) {
        return;
    }
    atp_mst_destroy(r->tree);
    atp_mst_destroy(r->pending);
    free(r->did);
    free(r);
}

void atp_repo_set_key(atp_repo *r, const atp_key *key)
{
    r->key = key;
}

atp_slice atp_repo_did(const atp_repo *r)
{
    return atp_slice_make(r->did, r->did_len);
}

atp_slice atp_repo_rev(const atp_repo *r)
{
    return atp_slice_str(r->rev);
}

const atp_cid *atp_repo_head(const atp_repo *r)
{
    return r->has_head ? &r->head : NULL;
}

const atp_cid *atp_repo_data(const atp_repo *r)
{
    return &r->data;
}

atp_blockstore *atp_repo_store(const atp_repo *r)
{
    return r->bs;
}

atp_mst *atp_repo_tree(atp_repo *r)
{
    return r->tree;
}

int atp_repo_get(atp_repo *r, atp_slice path, atp_arena *a, atp_cid *cid, atp_slice *bytes,
                 bool *found, atp_err *err)
{
    atp_cid v;
    bool f = false;
    atp_slice b = {NULL, 0};
    int rc = atp_mst_get(r->tree, path, &v, &f, err);
    if (rc == 0 && f && bytes) {
        rc = atp_blockstore_get(r->bs, &v, a, &b, err);
    }
    if (rc != 0) {
        return rc;
    }
    *found = f;
    if (f && cid) {
        *cid = v;
    }
    if (f && bytes) {
        *bytes = b;
    }
    return 0;
}

/* ---- applying a batch ---- */

/* Scratch state of one apply. */
typedef struct apply_ctx {
    atp_repo *r;
    atp_arena *a;
    atp_err *err;
    atp_mst *work;
    atp_slice *records; /* per write: record bytes (create/update) */
    atp_cid *rcids;     /* per write: record CID (create/update) */
    atp_repo_op *ops;
    atp__cidset seen; /* blocks already in nodes/proof */
    atp__blockvec nodes, proof, recs;
    atp__blockvec gone; /* removed blocks (data unused) */
    atp_slice adopt;    /* apply_signed: the signed commit to adopt instead of signing */
} apply_ctx;

typedef struct path_ix {
    atp_slice path;
    size_t i;
} path_ix;

static int path_ix_cmp(const void *x, const void *y)
{
    const path_ix *a = x, *b = y;
    return atp_slice_cmp(a->path, b->path);
}

/* Write shapes, path syntax and duplicate paths, before anything is touched. */
static int check_writes(const atp_repo_write *w, size_t n, atp_arena *a, atp_err *err)
{
    path_ix *ix = atp_arena_alloc(a, (n ? n : 1) * sizeof *ix);
    atp_err sub = {0};
    for (size_t i = 0; i < n; i++) {
        if (atp_repo_check_path(w[i].path, &sub) != 0) {
            return atp_err_set(err, ATP_EINVAL, i, "write %zu: %s", i, sub.msg);
        }
        if (w[i].action < ATP_REPO_CREATE || w[i].action > ATP_REPO_DELETE) {
            return atp_err_set(err, ATP_EINVAL, i, "write %zu: unknown action", i);
        }
        if (w[i].action == ATP_REPO_CREATE && w[i].swap) {
            return atp_err_set(err, ATP_EINVAL, i, "write %zu: swap on a create", i);
        }
        ix[i] = (path_ix){w[i].path, i};
    }
    qsort(ix, n, sizeof *ix, path_ix_cmp);
    for (size_t i = 1; i < n; i++) {
        if (atp_slice_eq(ix[i].path, ix[i - 1].path)) {
            size_t at = ix[i].i > ix[i - 1].i ? ix[i].i : ix[i - 1].i;
            return atp_err_set(err, ATP_EINVAL, at, "write %zu: duplicate path %.*s", at,
                               (int)ix[i].path.len, (const char *)ix[i].path.ptr);
        }
    }
    return 0;
}

/* Encodes or checks the record of write i and computes its CID. */
static int prepare_record(apply_ctx *c, const atp_repo_write *w, size_t i)
{
    atp_slice bytes = w->record_bytes;
    atp_err sub = {0};
    int rc;
    if (w->record) {
        atp_buf b;
        atp_buf_init(&b, ATP_REPO_MAX_RECORD);
        atp_cbor_encode(&b, w->record);
        rc = b.err;
        bytes = atp_slice_make(b.err ? NULL : atp_arena_dup(c->a, b.ptr, b.len), b.len);
        atp_buf_release(&b);
        if (rc != 0) {
            return atp_err_set(c->err, rc, i, "write %zu: record does not encode%s", i,
                               rc == ATP_ELIMIT ? " within 1 MiB" : "");
        }
    } else if (!bytes.ptr || bytes.len == 0) {
        return atp_err_set(c->err, ATP_EINVAL, i, "write %zu: no record", i);
    }
    rc = atp__record_check(bytes, &atp__repo_record_limits, &sub);
    if (rc != 0) {
        return atp_err_set(c->err, rc, i, "write %zu: %s", i, sub.msg);
    }
    c->records[i] = bytes;
    atp_cid_compute(&c->rcids[i], ATP_CODEC_DAG_CBOR, bytes);
    return 0;
}

/* The existence and swap rules of write i, given whether the path existed and its value. */
static int check_existing(apply_ctx *c, const atp_repo_write *w, size_t i, bool existed,
                          const atp_cid *prev)
{
    if (w->action == ATP_REPO_CREATE && existed) {
        return atp_err_set(c->err, ATP_EINVAL, i, "write %zu: %.*s already exists", i,
                           (int)w->path.len, (const char *)w->path.ptr);
    }
    if (w->action != ATP_REPO_CREATE && !existed) {
        return atp_err_set(c->err, ATP_ENOTFOUND, i, "write %zu: %.*s does not exist", i,
                           (int)w->path.len, (const char *)w->path.ptr);
    }
    if (w->swap && !atp_cid_eq(w->swap, prev)) {
        return atp_err_set(c->err, ATP_ECONFLICT, i, "write %zu: %.*s is not the swap record", i,
                           (int)w->path.len, (const char *)w->path.ptr);
    }
    return 0;
}

/* Applies write i to the working tree and records its op. */
static int apply_write(apply_ctx *c, const atp_repo_write *w, size_t i)
{
    atp_repo_op *op = &c->ops[i];
    atp_cid prev;
    bool existed = false;
    int rc = 0;
    memset(&prev, 0, sizeof prev);
    if (w->action != ATP_REPO_DELETE) {
        rc = prepare_record(c, w, i);
        rc = rc ? rc : atp_mst_put(c->work, w->path, &c->rcids[i], &existed, &prev, c->err);
    } else {
        rc = atp_mst_delete(c->work, w->path, &existed, &prev, c->err);
    }
    rc = rc ? rc : check_existing(c, w, i, existed, &prev);
    if (rc != 0) {
        return rc;
    }
    op->action = w->action;
    op->path = atp_slice_make(atp_arena_dup(c->a, w->path.ptr, w->path.len), w->path.len);
    op->has_cid = w->action != ATP_REPO_DELETE;
    if (op->has_cid) {
        op->cid = c->rcids[i];
        atp__blockvec_push(&c->recs, &c->rcids[i], c->records[i]);
    }
    op->has_prev = existed;
    op->prev = prev;
    return 0;
}

static int collect_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    apply_ctx *c = ctx;
    if (atp__cidset_add(&c->seen, cid)) {
        atp__blockvec_push(&c->nodes, cid,
                           atp_slice_make(atp_arena_dup(c->a, bytes.ptr, bytes.len), bytes.len));
    }
    return 0;
}

static int collect_proof(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    apply_ctx *c = ctx;
    if (atp__cidset_add(&c->seen, cid)) {
        atp__blockvec_push(&c->proof, cid,
                           atp_slice_make(atp_arena_dup(c->a, bytes.ptr, bytes.len), bytes.len));
    }
    return 0;
}

/* The empty tree's root node {e: [], l: null} (spec §2.3). */
static const uint8_t empty_node[] = {0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6};

/* New MST nodes, then the proof nodes of every written path. */
static int collect_tree_blocks(apply_ctx *c, const atp_repo_write *w, size_t n, const atp_cid *data)
{
    atp_cid empty;
    int rc = atp_mst_each_new_block(c->work, collect_node, c, c->err);
    /* The empty tree's root has to be stored too, whether or not the tree reports it new. */
    atp_cid_compute(&empty, ATP_CODEC_DAG_CBOR, atp_slice_make(empty_node, sizeof empty_node));
    if (rc == 0 && atp_cid_eq(data, &empty)) {
        collect_node(c, &empty, atp_slice_make(empty_node, sizeof empty_node));
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = atp_mst_proof(c->work, w[i].path, collect_proof, c, c->err);
    }
    return rc;
}

/* ---- garbage of a commit ---- */

static int collect_gone(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    (void)bytes;
    atp__blockvec_push(&((apply_ctx *)ctx)->gone, cid, atp_slice_make(NULL, 0));
    return 0;
}

/* The previous commit and the old tree's nodes that the new tree lacks. A diff from the new
 * tree to the old one hands exactly those to fn_node; it skips equal subtrees, so it touches
 * only the nodes on the edited paths, which the edits loaded anyway. */
static int collect_removed(apply_ctx *c, const atp_cid *data)
{
    atp_repo *r = c->r;
    if (!r->has_head) {
        return 0; /* before the first commit nothing was stored, not even the empty tree */
    }
    collect_gone(c, &r->head, atp_slice_make(NULL, 0));
    if (atp_cid_eq(data, &r->data)) {
        return 0; /* same tree (an empty commit) */
    }
    return atp_mst_diff(c->work, r->tree, NULL, collect_gone, c, c->err);
}

/* Lays out `removed` (less anything the commit writes or proves: `seen` holds those) and the
 * record candidates: previous CIDs of updates and deletes that no write of this commit uses. */
static void layout_removed(apply_ctx *c, size_t n, atp_repo_commit *res)
{
    atp__cidset maybe = {0};
    res->removed = atp_arena_alloc(c->a, (c->gone.n ? c->gone.n : 1) * sizeof(atp_cid));
    for (size_t i = 0; i < c->gone.n; i++) {
        if (!atp__cidset_has(&c->seen, &c->gone.v[i].cid)) {
            res->removed[res->n_removed++] = c->gone.v[i].cid;
        }
    }
    res->removed_records_maybe = atp_arena_alloc(c->a, (n ? n : 1) * sizeof(atp_cid));
    for (size_t i = 0; i < n; i++) {
        const atp_repo_op *op = &c->ops[i];
        if (op->has_prev && !atp__cidset_has(&c->seen, &op->prev) &&
            atp__cidset_add(&maybe, &op->prev)) {
            res->removed_records_maybe[res->n_removed_records_maybe++] = op->prev;
        }
    }
    atp__cidset_release(&maybe);
}

/* The signed commit over `data`: made and signed here, or (apply_signed) the given one, which
 * must be this repo's, over exactly this tree, with a rev after the current one. */
static int sign_or_adopt(apply_ctx *c, const atp_cid *data, atp_repo_commit *res)
{
    atp_repo *r = c->r;
    if (c->adopt.len == 0) {
        atp_buf b;
        atp_commit_next_rev(atp_slice_str(r->rev), res->rev);
        atp_buf_init(&b, ATP_COMMIT_MAX_BYTES);
        int rc = atp_commit_create(&b, atp_repo_did(r), atp_slice_str(res->rev), data, r->key,
                                   NULL, &res->cid, c->err);
        if (rc == 0) {
            res->bytes = atp_slice_make(atp_arena_dup(c->a, b.ptr, b.len), b.len);
        }
        atp_buf_release(&b);
        return rc;
    }
    atp_commit cm;
    int rc = atp_commit_decode(c->a, c->adopt, &cm, c->err);
    if (rc != 0) {
        return rc;
    }
    if (!atp_slice_eq(cm.did, atp_repo_did(r)) || !atp_cid_eq(&cm.data, data) ||
        cm.rev.len != 13 || (r->rev[0] && memcmp(cm.rev.ptr, r->rev, 13) <= 0)) {
        return atp_err_set(c->err, ATP_EINVAL, 0,
                           "signed commit does not match the writes (did, data or rev)");
    }
    memcpy(res->rev, cm.rev.ptr, 13);
    res->rev[13] = '\0';
    res->bytes = atp_slice_make(atp_arena_dup(c->a, c->adopt.ptr, c->adopt.len), c->adopt.len);
    atp_commit_cid(res->bytes, &res->cid);
    return 0;
}

/* Signs the commit over the new root and lays out the result. */
static int finish_commit(apply_ctx *c, size_t n, const atp_cid *data, atp_repo_commit *out)
{
    atp_repo *r = c->r;
    atp_repo_commit res;
    memset(&res, 0, sizeof res);
    int rc = sign_or_adopt(c, data, &res);
    if (rc != 0) {
        return rc;
    }
    memcpy(res.since, r->rev, sizeof res.since);
    res.has_prev_data = r->has_head;
    res.prev_data = r->data;
    res.data = *data;
    res.ops = c->ops;
    res.n_ops = n;
    res.blocks = atp_arena_alloc(c->a, (1 + c->nodes.n + c->recs.n) * sizeof(atp_block));
    res.blocks[res.n_blocks++] = (atp_block){res.cid, res.bytes};
    for (size_t i = 0; i < c->nodes.n; i++) {
        res.blocks[res.n_blocks++] = c->nodes.v[i];
    }
    for (size_t i = 0; i < c->recs.n; i++) {
        /* The same record bytes under two paths is one block. */
        if (atp__cidset_add(&c->seen, &c->recs.v[i].cid)) {
            res.blocks[res.n_blocks++] = c->recs.v[i];
        }
    }
    res.proof = atp_arena_alloc(c->a, (c->proof.n ? c->proof.n : 1) * sizeof(atp_block));
    for (size_t i = 0; i < c->proof.n; i++) {
        res.proof[res.n_proof++] = c->proof.v[i];
    }
    /* `seen` now holds every block of the new commit: blocks, proof, records. */
    layout_removed(c, n, &res);
    *out = res;
    return 0;
}

static int apply_all(apply_ctx *c, const atp_repo_write *w, size_t n, atp_repo_commit *out)
{
    atp_cid data;
    int rc = check_writes(w, n, c->a, c->err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = apply_write(c, &w[i], i);
    }
    rc = rc ? rc : atp_mst_root(c->work, &data, c->err);
    rc = rc ? rc : collect_tree_blocks(c, w, n, &data);
    rc = rc ? rc : collect_removed(c, &data);
    return rc ? rc : finish_commit(c, n, &data, out);
}

static int apply_with(atp_repo *r, const atp_repo_write *writes, size_t n, atp_slice adopt,
                      atp_arena *a, atp_repo_commit *out, atp_err *err)
{
    apply_ctx c;
    int rc;
    if (n > ATP_REPO_MAX_WRITES) {
        return atp_err_set(err, ATP_ELIMIT, 0, "%zu writes (max %d)", n, ATP_REPO_MAX_WRITES);
    }
    memset(&c, 0, sizeof c);
    c.r = r;
    c.a = a;
    c.err = err;
    c.adopt = adopt;
    c.records = atp_arena_calloc(a, n ? n : 1, sizeof *c.records);
    c.rcids = atp_arena_calloc(a, n ? n : 1, sizeof *c.rcids);
    c.ops = atp_arena_calloc(a, n ? n : 1, sizeof *c.ops);
    c.work = atp_mst_dup(r->tree);
    rc = apply_all(&c, writes, n, out);
    atp__cidset_release(&c.seen);
    atp__blockvec_release(&c.nodes);
    atp__blockvec_release(&c.proof);
    atp__blockvec_release(&c.recs);
    atp__blockvec_release(&c.gone);
    atp_mst_destroy(r->pending);
    r->pending = NULL;
    if (rc != 0) {
        atp_mst_destroy(c.work);
        return rc;
    }
    r->pending = c.work;
    r->pending_cid = out->cid;
    r->pending_data = out->data;
    memcpy(r->pending_rev, out->rev, sizeof r->pending_rev);
    return 0;
}

int atp_repo_apply(atp_repo *r, const atp_repo_write *writes, size_t n, atp_arena *a,
                   atp_repo_commit *out, atp_err *err)
{
    if (!r->key) {
        return atp_err_set(err, ATP_EKEY, 0, "repo has no signing key");
    }
    return apply_with(r, writes, n, atp_slice_make(NULL, 0), a, out, err);
}

int atp_repo_apply_signed(atp_repo *r, const atp_repo_write *writes, size_t n,
                          atp_slice signed_commit, atp_arena *a, atp_repo_commit *out, atp_err *err)
{
    if (signed_commit.len == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "no signed commit");
    }
    return apply_with(r, writes, n, signed_commit, a, out, err);
}

int atp_repo_accept(atp_repo *r, const atp_repo_commit *c, atp_err *err)
{
    if (!r->pending || !atp_cid_eq(&c->cid, &r->pending_cid)) {
        return atp_err_set(err, ATP_EINVAL, 0, "not the pending commit of this repo");
    }
    atp_mst_destroy(r->tree);
    r->tree = r->pending;
    r->pending = NULL;
    /* Its new nodes are stored now: later applies report only their own. */
    atp_mst_mark_clean(r->tree);
    r->has_head = true;
    r->head = r->pending_cid;
    r->data = r->pending_data;
    memcpy(r->rev, r->pending_rev, sizeof r->rev);
    return 0;
}

int atp_repo_apply_store(atp_repo *r, const atp_repo_write *writes, size_t n, atp_arena *a,
                         atp_repo_commit *out, atp_err *err)
{
    atp_repo_commit c;
    int rc = atp_repo_apply(r, writes, n, a, &c, err);
    rc = rc ? rc : atp_blockstore_put_batch(r->bs, c.blocks, c.n_blocks, atp_slice_str(c.rev), err);
    /* After the put: a failure in between leaves garbage, never a hole. */
    rc = rc ? rc : atp_blockstore_remove_batch(r->bs, c.removed, c.n_removed, err);
    rc = rc ? rc : atp_repo_accept(r, &c, err);
    if (rc != 0) {
        atp_mst_destroy(r->pending);
        r->pending = NULL;
        return rc;
    }
    *out = c;
    return 0;
}

int atp_repo_commit_car(const atp_repo_commit *c, atp_car_writer *w, atp_err *err)
{
    int rc = atp_car_write_header(w, &c->cid, 1);
    for (size_t i = 0; i < c->n_blocks && rc == 0; i++) {
        rc = atp_car_write_block(w, &c->blocks[i].cid, c->blocks[i].data);
    }
    for (size_t i = 0; i < c->n_proof && rc == 0; i++) {
        rc = atp_car_write_block(w, &c->proof[i].cid, c->proof[i].data);
    }
    return rc ? atp_err_set(err, rc, 0, "writing the commit CAR failed") : 0;
}

/* ---- records no path uses ---- */

typedef struct unused_ctx {
    atp__cidset want, used;
} unused_ctx;

static int unused_leaf(void *ctx, atp_slice key, const atp_cid *val)
{
    unused_ctx *u = ctx;
    (void)key;
    if (atp__cidset_has(&u->want, val)) {
        atp__cidset_add(&u->used, val);
    }
    return 0;
}

int atp_repo_unused_records(atp_repo *r, const atp_cid *cids, size_t n, atp_arena *a,
                            atp_cid **out, size_t *n_out, atp_err *err)
{
    unused_ctx u = {{0}, {0}};
    atp_mst_list_opts all = {{NULL, 0}, {NULL, 0}, false, 0};
    atp_cid *res = atp_arena_alloc(a, (n ? n : 1) * sizeof *res);
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        atp__cidset_add(&u.want, &cids[i]);
    }
    rc = n ? atp_mst_list(r->tree, &all, unused_leaf, &u, err) : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* `used` doubles as the "already listed" set from here on. */
        if (atp__cidset_add(&u.used, &cids[i])) {
            res[k++] = cids[i];
        }
    }
    atp__cidset_release(&u.want);
    atp__cidset_release(&u.used);
    if (rc == 0) {
        *out = res;
        *n_out = k;
    }
    return rc;
}

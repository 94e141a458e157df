/* mst_read.c: lookups, ordered listing, the validating walk, diffs and covering proofs. Every
 * descent carries the key range of the subtree it enters, so that a node loaded on the way is
 * checked against it (spec repository.md §2.3, parsing checklist). */
#include <stdlib.h>
#include <string.h>

#include "mst_int.h"

typedef int (*block_fn)(void *ctx, const atp_cid *cid, atp_slice bytes);
typedef int (*leaf_fn)(void *ctx, atp_slice key, const atp_cid *val);

static const mst_range range_all = {{NULL, 0}, {NULL, 0}};

static void val_cid(const mst_ent *e, atp_cid *out)
{
    out->len = e->vlen;
    memcpy(out->bytes, e->key + e->klen, e->vlen);
}

static bool ent_is(const mst_node *n, size_t i, atp_slice key)
{
    return i < n->n && atp_slice_eq(atp__mst_key(&n->ents[i]), key);
}

/* Hands a node's block to fn (fetching it from the store if needed). */
static int emit_node(atp_mst *t, const mst_node *n, block_fn fn, void *ctx, atp_err *err)
{
    atp_cid cid;
    atp_slice bytes;
    int rc = atp__mst_node_bytes(t, n, &bytes, err);
    if (rc == 0) {
        atp__mst_node_cid(n, &cid);
        rc = fn(ctx, &cid, bytes);
    }
    atp_arena_reset(t->arena);
    return rc;
}

/* ---- get ---- */

int atp_mst_get(atp_mst *t, atp_slice key, atp_cid *out, bool *found, atp_err *err)
{
    mst_range rg = range_all;
    int rc = atp__mst_ensure_root(t, err);
    mst_node *n = t->root;
    while (rc == 0 && n) {
        size_t i = atp__mst_lower_bound(n, key);
        if (ent_is(n, i, key)) {
            if (out) {
                val_cid(&n->ents[i], out);
            }
            *found = true;
            return 0;
        }
        mst_node *c = atp__mst_slot(n, i);
        rg = atp__mst_slot_range(n, i, rg);
        n = c;
        if (n) {
            rc = atp__mst_ensure(t, n, rg, err);
        }
    }
    if (rc == 0) {
        *found = false;
    }
    return rc;
}

/* ---- list ---- */

typedef struct list_ctx {
    atp_mst *t;
    const atp_mst_list_opts *o;
    leaf_fn fn;
    void *ctx;
    size_t count;
    bool stop;
} list_ctx;

static bool list_wants(const list_ctx *lc, atp_slice key)
{
    const atp_mst_list_opts *o = lc->o;
    if (!atp_slice_has_prefix(key, o->prefix)) {
        return false;
    }
    if (o->after.len == 0) {
        return true;
    }
    int c = atp_slice_cmp(key, o->after);
    return o->reverse ? c < 0 : c > 0;
}

/* Whether a subtree holding keys strictly inside r can hold a wanted key. */
static bool list_may(const list_ctx *lc, mst_range r)
{
    const atp_mst_list_opts *o = lc->o;
    if (o->prefix.len) {
        if (r.hi.len && atp_slice_cmp(r.hi, o->prefix) <= 0) {
            return false;
        }
        /* A bound above the prefix that does not start with it is above every key that does. */
        if (r.lo.len && atp_slice_cmp(r.lo, o->prefix) > 0 &&
            !atp_slice_has_prefix(r.lo, o->prefix)) {
            return false;
        }
    }
    if (o->after.len && !o->reverse && r.hi.len && atp_slice_cmp(r.hi, o->after) <= 0) {
        return false;
    }
    if (o->after.len && o->reverse && r.lo.len && atp_slice_cmp(r.lo, o->after) >= 0) {
        return false;
    }
    return true;
}

static int list_rec(list_ctx *lc, mst_node *n, mst_range rg, atp_err *err);

static int list_slot(list_ctx *lc, const mst_node *n, size_t i, mst_range rg, atp_err *err)
{
    mst_node *c = atp__mst_slot(n, i);
    mst_range cr = atp__mst_slot_range(n, i, rg);
    if (!c || lc->stop || !list_may(lc, cr)) {
        return 0;
    }
    return list_rec(lc, c, cr, err);
}

static int list_entry(list_ctx *lc, const mst_ent *e)
{
    atp_cid v;
    if (lc->stop || !list_wants(lc, atp__mst_key(e))) {
        return 0;
    }
    val_cid(e, &v);
    int rc = lc->fn(lc->ctx, atp__mst_key(e), &v);
    lc->count++;
    if (rc != 0 || (lc->o->limit && lc->count >= lc->o->limit)) {
        lc->stop = true;
    }
    return rc;
}

static int list_rec(list_ctx *lc, mst_node *n, mst_range rg, atp_err *err)
{
    int rc = atp__mst_ensure(lc->t, n, rg, err);
    size_t cnt = n->n;
    for (size_t k = 0; k <= cnt && rc == 0 && !lc->stop; k++) {
        /* Forward: slot k then entry k. Reverse: slot cnt-k then entry cnt-k-1. */
        size_t i = lc->o->reverse ? cnt - k : k;
        if (lc->o->reverse) {
            rc = list_slot(lc, n, i, rg, err);
            if (rc == 0 && i > 0) {
                rc = list_entry(lc, &n->ents[i - 1]);
            }
        } else {
            rc = list_slot(lc, n, i, rg, err);
            if (rc == 0 && i < cnt) {
                rc = list_entry(lc, &n->ents[i]);
            }
        }
    }
    return rc;
}

int atp_mst_list(atp_mst *t, const atp_mst_list_opts *opts,
                 int (*fn)(void *ctx, atp_slice key, const atp_cid *val), void *ctx,
                 atp_err *err)
{
    atp_mst_list_opts none = {{NULL, 0}, {NULL, 0}, false, 0};
    list_ctx lc = {t, opts ? opts : &none, fn, ctx, 0, false};
    int rc = atp__mst_ensure_root(t, err);
    return rc ? rc : list_rec(&lc, t->root, range_all, err);
}

/* ---- walk ---- */

typedef struct walk_ctx {
    atp_mst *t;
    block_fn fn_node;
    leaf_fn fn_leaf;
    void *ctx;
} walk_ctx;

static int walk_rec(walk_ctx *w, mst_node *n, mst_range rg, atp_err *err)
{
    int rc = atp__mst_ensure(w->t, n, rg, err);
    if (rc == 0 && w->fn_node) {
        rc = emit_node(w->t, n, w->fn_node, w->ctx, err);
    }
    for (size_t i = 0; i <= n->n && rc == 0; i++) {
        if (i > 0 && w->fn_leaf) {
            atp_cid v;
            val_cid(&n->ents[i - 1], &v);
            rc = w->fn_leaf(w->ctx, atp__mst_key(&n->ents[i - 1]), &v);
        }
        mst_node *c = atp__mst_slot(n, i);
        if (rc == 0 && c) {
            rc = walk_rec(w, c, atp__mst_slot_range(n, i, rg), err);
        }
    }
    return rc;
}

int atp_mst_walk(atp_mst *t, block_fn fn_node, leaf_fn fn_leaf, void *ctx, atp_err *err)
{
    walk_ctx w = {t, fn_node, fn_leaf, ctx};
    atp_cid root;
    int rc = atp__mst_ensure_root(t, err);
    rc = rc ? rc : atp_mst_root(t, &root, err);
    return rc ? rc : walk_rec(&w, t->root, range_all, err);
}

/* ---- diff ---- */

/* A cursor over a tree's in-order sequence of items: subtrees not yet expanded and leaves.
 * Frame position p: even = slot p/2, odd = entry (p-1)/2. */
typedef struct dframe {
    mst_node *n;
    size_t pos;
    mst_range rg;
} dframe;

#define DIFF_MAX_DEPTH 258

typedef struct dcur {
    atp_mst *t;
    mst_node *pending; /* the root, before it is expanded */
    size_t depth;
    dframe st[DIFF_MAX_DEPTH];
} dcur;

enum { ITEM_DONE, ITEM_SUB, ITEM_LEAF };

static int cur_kind(const dcur *c)
{
    if (c->pending) {
        return ITEM_SUB;
    }
    if (c->depth == 0) {
        return ITEM_DONE;
    }
    return (c->st[c->depth - 1].pos & 1) ? ITEM_LEAF : ITEM_SUB;
}

static mst_node *cur_sub(const dcur *c)
{
    if (c->pending) {
        return c->pending;
    }
    const dframe *f = &c->st[c->depth - 1];
    return atp__mst_slot(f->n, f->pos / 2);
}

static const mst_ent *cur_leaf(const dcur *c)
{
    const dframe *f = &c->st[c->depth - 1];
    return &f->n->ents[(f->pos - 1) / 2];
}

/* Moves to the next non-null item, popping finished frames. */
static void cur_settle(dcur *c)
{
    while (c->depth > 0) {
        dframe *f = &c->st[c->depth - 1];
        if (f->pos > 2 * (size_t)f->n->n) {
            c->depth--;
            if (c->depth > 0) {
                c->st[c->depth - 1].pos++;
            }
        } else if (!(f->pos & 1) && !atp__mst_slot(f->n, f->pos / 2)) {
            f->pos++;
        } else {
            return;
        }
    }
}

static void cur_next(dcur *c)
{
    if (c->pending) {
        c->pending = NULL;
        return;
    }
    c->st[c->depth - 1].pos++;
    cur_settle(c);
}

/* Replaces the current subtree item by its contents. */
static int cur_expand(dcur *c, atp_err *err)
{
    mst_range rg = range_all;
    mst_node *n = cur_sub(c);
    if (!c->pending) {
        const dframe *f = &c->st[c->depth - 1];
        rg = atp__mst_slot_range(f->n, f->pos / 2, f->rg);
    }
    if (c->depth >= DIFF_MAX_DEPTH) {
        return atp_err_set(err, ATP_ELIMIT, 0, "MST too deep to diff");
    }
    int rc = atp__mst_ensure(c->t, n, rg, err);
    if (rc < 0) {
        return rc;
    }
    c->pending = NULL;
    c->st[c->depth++] = (dframe){n, 0, rg};
    cur_settle(c);
    return 0;
}

/* Digests of the `from` nodes expanded, and the `to` nodes expanded: the new nodes are the
 * latter minus the former (a node lies at one place in a tree, so one met on both sides was
 * merely reached by different cursor moves). */
typedef struct diff_ctx {
    dcur *a, *b;
    int (*fn_op)(void *ctx, const atp_mst_op *op);
    void *ctx;
    uint8_t (*seen)[32];
    size_t n_seen, cap_seen;
    mst_node **fresh;
    size_t n_fresh, cap_fresh;
} diff_ctx;

static int expand(diff_ctx *d, dcur *c, atp_err *err)
{
    mst_node *n = cur_sub(c);
    int rc = cur_expand(c, err);
    if (rc < 0) {
        return rc;
    }
    if (c == d->a) {
        if (d->n_seen == d->cap_seen) {
            d->cap_seen = d->cap_seen ? d->cap_seen * 2 : 64;
            d->seen = atp_xrealloc(d->seen, d->cap_seen * sizeof *d->seen);
        }
        memcpy(d->seen[d->n_seen++], n->digest, 32);
    } else {
        if (d->n_fresh == d->cap_fresh) {
            d->cap_fresh = d->cap_fresh ? d->cap_fresh * 2 : 64;
            d->fresh = atp_xrealloc(d->fresh, d->cap_fresh * sizeof *d->fresh);
        }
        d->fresh[d->n_fresh++] = n;
    }
    return 0;
}

static int emit_op(diff_ctx *d, atp_mst_op_kind kind, const mst_ent *old, const mst_ent *nw)
{
    atp_mst_op op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    op.key = atp__mst_key(old ? old : nw);
    if (old) {
        val_cid(old, &op.old);
    }
    if (nw) {
        val_cid(nw, &op.val);
    }
    return d->fn_op ? d->fn_op(d->ctx, &op) : 0;
}

static int diff_leaves(diff_ctx *d)
{
    const mst_ent *ea = cur_leaf(d->a), *eb = cur_leaf(d->b);
    int c = atp_slice_cmp(atp__mst_key(ea), atp__mst_key(eb));
    int rc = 0;
    if (c == 0) {
        if (!atp_slice_eq(atp__mst_val(ea), atp__mst_val(eb))) {
            rc = emit_op(d, ATP_MST_UPDATE, ea, eb);
        }
        cur_next(d->a);
        cur_next(d->b);
    } else if (c < 0) {
        rc = emit_op(d, ATP_MST_DELETE, ea, NULL);
        cur_next(d->a);
    } else {
        rc = emit_op(d, ATP_MST_CREATE, NULL, eb);
        cur_next(d->b);
    }
    return rc;
}

static int diff_step(diff_ctx *d, atp_err *err)
{
    int ka = cur_kind(d->a), kb = cur_kind(d->b);
    if (ka == ITEM_LEAF && kb == ITEM_LEAF) {
        return diff_leaves(d);
    }
    if (ka == ITEM_SUB && kb == ITEM_SUB) {
        const mst_node *sa = cur_sub(d->a), *sb = cur_sub(d->b);
        if (memcmp(sa->digest, sb->digest, 32) == 0) {
            cur_next(d->a);
            cur_next(d->b);
            return 0;
        }
        /* Expand the higher one (both if level): equal subtrees then line up again. */
        int rc = 0;
        if (sa->layer >= sb->layer) {
            rc = expand(d, d->a, err);
        }
        if (rc == 0 && sb->layer >= sa->layer) {
            rc = expand(d, d->b, err);
        }
        return rc;
    }
    /* A leaf against a subtree: open the subtree. */
    return expand(d, ka == ITEM_LEAF ? d->b : d->a, err);
}

/* Drains one side once the other is done: everything left is a delete (a) or a create (b). */
static int diff_rest(diff_ctx *d, dcur *c, atp_err *err)
{
    int rc = 0;
    while (rc == 0 && cur_kind(c) != ITEM_DONE) {
        if (cur_kind(c) == ITEM_SUB) {
            rc = expand(d, c, err);
            continue;
        }
        const mst_ent *e = cur_leaf(c);
        rc = c == d->a ? emit_op(d, ATP_MST_DELETE, e, NULL) : emit_op(d, ATP_MST_CREATE, NULL, e);
        cur_next(c);
    }
    return rc;
}

static bool seen_has(const diff_ctx *d, const uint8_t digest[32])
{
    for (size_t i = 0; i < d->n_seen; i++) {
        if (memcmp(d->seen[i], digest, 32) == 0) {
            return true;
        }
    }
    return false;
}

static int qsort_digest(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static int diff_nodes(diff_ctx *d, atp_mst *to, block_fn fn_node, void *ctx, atp_err *err)
{
    int rc = 0;
    if (d->n_seen > 64) {
        qsort(d->seen, d->n_seen, sizeof *d->seen, qsort_digest);
    }
    for (size_t i = 0; i < d->n_fresh && rc == 0 && fn_node; i++) {
        const mst_node *n = d->fresh[i];
        bool old = d->n_seen > 64 ? bsearch(n->digest, d->seen, d->n_seen, sizeof *d->seen,
                                            qsort_digest) != NULL
                                  : seen_has(d, n->digest);
        if (!old) {
            rc = emit_node(to, n, fn_node, ctx, err);
        }
    }
    return rc;
}

static int diff_run(diff_ctx *d, atp_err *err)
{
    int rc = 0;
    while (rc == 0 && cur_kind(d->a) != ITEM_DONE && cur_kind(d->b) != ITEM_DONE) {
        rc = diff_step(d, err);
    }
    rc = rc ? rc : diff_rest(d, d->a, err);
    return rc ? rc : diff_rest(d, d->b, err);
}

static int diff_prepare(atp_mst *t, dcur *c, atp_err *err)
{
    atp_cid root;
    c->t = t;
    int rc = atp__mst_ensure_root(t, err);
    rc = rc ? rc : atp_mst_root(t, &root, err);
    c->pending = t->root;
    return rc;
}

int atp_mst_diff(atp_mst *from, atp_mst *to, int (*fn_op)(void *ctx, const atp_mst_op *op),
                 block_fn fn_node, void *ctx, atp_err *err)
{
    dcur *a = atp_xcalloc(1, sizeof *a), *b = atp_xcalloc(1, sizeof *b);
    diff_ctx d = {a, b, fn_op, ctx, NULL, 0, 0, NULL, 0, 0};
    int rc = from ? diff_prepare(from, a, err) : 0;
    rc = rc ? rc : diff_prepare(to, b, err);
    rc = rc ? rc : diff_run(&d, err);
    rc = rc ? rc : diff_nodes(&d, to, fn_node, ctx, err);
    free(d.seen);
    free(d.fresh);
    free(a);
    free(b);
    return rc;
}

/* ---- covering proof ---- */

typedef struct proof_set {
    mst_node **n;
    size_t len, cap;
} proof_set;

static void proof_add(proof_set *ps, mst_node *n)
{
    for (size_t i = 0; i < ps->len; i++) {
        if (ps->n[i] == n) {
            return;
        }
    }
    if (ps->len == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 32;
        ps->n = atp_xrealloc(ps->n, ps->cap * sizeof *ps->n);
    }
    ps->n[ps->len++] = n;
}

/* The leftmost or rightmost spine of a subtree: the path to its least or greatest key. */
static int proof_spine(atp_mst *t, mst_node *n, mst_range rg, bool right, proof_set *ps,
                       atp_err *err)
{
    while (n) {
        int rc = atp__mst_ensure(t, n, rg, err);
        if (rc < 0) {
            return rc;
        }
        proof_add(ps, n);
        size_t i = right ? n->n : 0;
        rg = atp__mst_slot_range(n, i, rg);
        n = atp__mst_slot(n, i);
    }
    return 0;
}

/* The search path; when the key is present, its neighbours are at the bottom of the spines of
 * the slots beside it (else they are on the path itself). */
static int proof_collect(atp_mst *t, atp_slice key, proof_set *ps, atp_err *err)
{
    mst_node *n = t->root;
    mst_range rg = range_all;
    while (n) {
        int rc = atp__mst_ensure(t, n, rg, err);
        if (rc < 0) {
            return rc;
        }
        proof_add(ps, n);
        size_t i = atp__mst_lower_bound(n, key);
        if (ent_is(n, i, key)) {
            rc = proof_spine(t, atp__mst_slot(n, i), atp__mst_slot_range(n, i, rg), true, ps,
                             err);
            return rc ? rc
                      : proof_spine(t, n->ents[i].t, atp__mst_slot_range(n, i + 1, rg), false,
                                    ps, err);
        }
        rg = atp__mst_slot_range(n, i, rg);
        n = atp__mst_slot(n, i);
    }
    return 0;
}

int atp_mst_proof(atp_mst *t, atp_slice key, block_fn fn, void *ctx, atp_err *err)
{
    proof_set ps = {NULL, 0, 0};
    atp_cid root;
    int rc = atp__mst_ensure_root(t, err);
    rc = rc ? rc : atp_mst_root(t, &root, err);
    rc = rc ? rc : proof_collect(t, key, &ps, err);
    for (size_t i = 0; i < ps.len && rc == 0; i++) {
        rc = emit_node(t, ps.n[i], fn, ctx, err);
    }
    free(ps.n);
    return rc;
}

/* mst_edit.c: insert, update, delete (spec repository.md §2.4) and the one-pass bulk build.
 *
 * Edits are functional: each step returns a new node (reference count 1) built from the old
 * one, reusing untouched children by reference, so only the path to the key (plus the nodes a
 * split or merge touches) is copied. The handle's root is replaced only once the whole edit
 * succeeded, which makes a failed edit (a missing block) leave the tree unchanged. An edit that
 * changes nothing returns the old node itself, so no redundant "new" blocks appear. */
#include <stdlib.h>
#include <string.h>

#include "mst_int.h"

typedef struct put_key {
    atp_slice key, val;
    unsigned h;
} put_key;

typedef struct edit_res {
    bool existed;
    atp_cid prev;
} edit_res;

static void copy_ents(mst_node *nd, size_t at, const mst_node *src, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        const mst_ent *e = &src->ents[j];
        atp__mst_node_set(nd, at + j - from, atp__mst_key(e), atp__mst_val(e),
                          atp__mst_ref(e->t));
    }
}

/* Replaces the child in slot i (consumes c). */
static void set_slot(mst_node *nd, size_t i, mst_node *c)
{
    mst_node **p = i == 0 ? &nd->left : &nd->ents[i - 1].t;
    atp__mst_unref(*p);
    *p = c;
}

static mst_node *copy_node(const mst_node *n)
{
    mst_node *nd = atp__mst_node_alloc(n->layer, n->n, atp__mst_pool_size(n, 0, n->n));
    nd->left = atp__mst_ref(n->left);
    copy_ents(nd, 0, n, 0, n->n);
    return nd;
}

/* NULL for a node with nothing left in it. */
static mst_node *drop_if_empty(mst_node *nd)
{
    if (nd->n == 0 && !nd->left) {
        atp__mst_unref(nd);
        return NULL;
    }
    return nd;
}

/* Wraps x (at layer `from`) in empty intermediate nodes up to layer `to`. */
static mst_node *wrap(mst_node *x, unsigned from, unsigned to)
{
    while (x && from < to) {
        mst_node *e = atp__mst_node_empty(++from);
        e->left = x;
        x = e;
    }
    return x;
}

static mst_node *single(const put_key *k, mst_node *left, mst_node *t)
{
    mst_node *nd = atp__mst_node_alloc(k->h, 1, k->key.len + k->val.len);
    nd->left = left;
    atp__mst_node_set(nd, 0, k->key, k->val, t);
    return nd;
}

static void set_prev(edit_res *res, atp_slice val)
{
    res->existed = true;
    res->prev.len = (uint8_t)val.len;
    memcpy(res->prev.bytes, val.ptr, val.len);
}

/* ---- split and merge ---- */

static mst_node *left_part(const mst_node *c, size_t i, mst_node *sl)
{
    if (i == 0) {
        return wrap(sl, c->layer - 1u, c->layer);
    }
    mst_node *nd = atp__mst_node_alloc(c->layer, i, atp__mst_pool_size(c, 0, i));
    nd->left = atp__mst_ref(c->left);
    copy_ents(nd, 0, c, 0, i);
    set_slot(nd, i, sl);
    return nd;
}

static mst_node *right_part(const mst_node *c, size_t i, mst_node *sr)
{
    if (i == c->n) {
        return wrap(sr, c->layer - 1u, c->layer);
    }
    mst_node *nd = atp__mst_node_alloc(c->layer, c->n - i, atp__mst_pool_size(c, i, c->n));
    nd->left = sr;
    copy_ents(nd, 0, c, i, c->n);
    return nd;
}

/* Splits subtree c (range rg, may be NULL) at `key`, which it does not hold, into the parts
 * below and above it (each NULL if empty). */
static int split(atp_mst *t, mst_node *c, mst_range rg, atp_slice key, mst_node **l,
                 mst_node **r, atp_err *err)
{
    mst_node *sl, *sr;
    if (!c) {
        *l = *r = NULL;
        return 0;
    }
    int rc = atp__mst_ensure(t, c, rg, err);
    if (rc < 0) {
        return rc;
    }
    size_t i = atp__mst_lower_bound(c, key);
    mst_node *s = atp__mst_slot(c, i);
    rc = split(t, s, atp__mst_slot_range(c, i, rg), key, &sl, &sr, err);
    if (rc < 0) {
        return rc;
    }
    if (i == c->n && sl == s && !sr) { /* all of c is below key */
        atp__mst_unref(sl);
        *l = atp__mst_ref(c);
        *r = NULL;
    } else if (i == 0 && sr == s && !sl) { /* all of c is above key */
        atp__mst_unref(sr);
        *l = NULL;
        *r = atp__mst_ref(c);
    } else {
        *l = left_part(c, i, sl);
        *r = right_part(c, i, sr);
    }
    return 0;
}

/* Merges two adjacent subtrees of one layer (all of a's keys below b's). */
static int merge(atp_mst *t, mst_node *a, mst_range ra, mst_node *b, mst_range rb,
                 mst_node **out, atp_err *err)
{
    mst_node *mid;
    if (!a || !b) {
        *out = atp__mst_ref(a ? a : b);
        return 0;
    }
    int rc = atp__mst_ensure(t, a, ra, err);
    rc = rc ? rc : atp__mst_ensure(t, b, rb, err);
    size_t na = a->n;
    rc = rc ? rc
            : merge(t, atp__mst_slot(a, na), atp__mst_slot_range(a, na, ra), b->left,
                    atp__mst_slot_range(b, 0, rb), &mid, err);
    if (rc < 0) {
        return rc;
    }
    size_t pool = atp__mst_pool_size(a, 0, na) + atp__mst_pool_size(b, 0, b->n);
    mst_node *nd = atp__mst_node_alloc(a->layer, na + b->n, pool);
    nd->left = na ? atp__mst_ref(a->left) : NULL;
    copy_ents(nd, 0, a, 0, na);
    copy_ents(nd, na, b, 0, b->n);
    set_slot(nd, na, mid);
    *out = nd;
    return 0;
}

/* ---- put ---- */

static mst_node *with_insert(const mst_node *n, size_t i, const put_key *k, mst_node *cl,
                             mst_node *cr)
{
    size_t pool = atp__mst_pool_size(n, 0, n->n) + k->key.len + k->val.len;
    mst_node *nd = atp__mst_node_alloc(n->layer, n->n + 1, pool);
    nd->left = atp__mst_ref(n->left);
    copy_ents(nd, 0, n, 0, i);
    atp__mst_node_set(nd, i, k->key, k->val, cr);
    copy_ents(nd, i + 1, n, i, n->n);
    set_slot(nd, i, cl);
    return nd;
}

static mst_node *with_val(const mst_node *n, size_t i, atp_slice val)
{
    size_t pool = atp__mst_pool_size(n, 0, n->n) - n->ents[i].vlen + val.len;
    mst_node *nd = atp__mst_node_alloc(n->layer, n->n, pool);
    nd->left = atp__mst_ref(n->left);
    copy_ents(nd, 0, n, 0, i);
    atp__mst_node_set(nd, i, atp__mst_key(&n->ents[i]), val, atp__mst_ref(n->ents[i].t));
    copy_ents(nd, i + 1, n, i + 1, n->n);
    return nd;
}

static int put_here(atp_mst *t, mst_node *n, mst_range rg, size_t i, const put_key *k,
                    mst_node **out, edit_res *res, atp_err *err)
{
    mst_node *cl, *cr;
    if (i < n->n && atp_slice_eq(atp__mst_key(&n->ents[i]), k->key)) {
        atp_slice old = atp__mst_val(&n->ents[i]);
        set_prev(res, old);
        *out = atp_slice_eq(old, k->val) ? atp__mst_ref(n) : with_val(n, i, k->val);
        return 0;
    }
    int rc = split(t, atp__mst_slot(n, i), atp__mst_slot_range(n, i, rg), k->key, &cl, &cr, err);
    if (rc == 0) {
        *out = with_insert(n, i, k, cl, cr);
    }
    return rc;
}

/* Puts k (height <= n's layer) into subtree n. */
static int put_rec(atp_mst *t, mst_node *n, mst_range rg, const put_key *k, mst_node **out,
                   edit_res *res, atp_err *err)
{
    mst_node *nc;
    int rc = atp__mst_ensure(t, n, rg, err);
    if (rc < 0) {
        return rc;
    }
    size_t i = atp__mst_lower_bound(n, k->key);
    if (k->h == n->layer) {
        return put_here(t, n, rg, i, k, out, res, err);
    }
    mst_node *c = atp__mst_slot(n, i);
    if (!c) {
        nc = wrap(single(k, NULL, NULL), k->h, n->layer - 1u);
    } else if ((rc = put_rec(t, c, atp__mst_slot_range(n, i, rg), k, &nc, res, err)) < 0) {
        return rc;
    }
    if (nc == c) {
        atp__mst_unref(nc);
        *out = atp__mst_ref(n);
        return 0;
    }
    *out = copy_node(n);
    set_slot(*out, i, nc);
    return 0;
}

/* A key above the root's layer becomes the new root; the old tree splits around it. */
static int put_above(atp_mst *t, const put_key *k, mst_node **out, atp_err *err)
{
    mst_node *root = t->root, *l, *r;
    mst_range all = {{NULL, 0}, {NULL, 0}};
    int rc = split(t, root, all, k->key, &l, &r, err);
    if (rc == 0) {
        *out = single(k, wrap(l, root->layer, k->h - 1), wrap(r, root->layer, k->h - 1));
    }
    return rc;
}

static int check_kv(const atp_mst *t, atp_slice key, const atp_cid *val, atp_err *err)
{
    if (key.len > t->lim.max_key) {
        return atp_err_set(err, ATP_ELIMIT, 0, "MST key of %zu bytes", key.len);
    }
    if (!atp_mst_key_is_valid(key)) {
        return atp_err_set(err, ATP_EINVAL, 0, "invalid MST key \"%.*s\"",
                           (int)(key.len > 64 ? 64 : key.len), (const char *)key.ptr);
    }
    if (val && (val->len == 0 || val->len > ATP_CID_MAX)) {
        return atp_err_set(err, ATP_EINVAL, 0, "invalid value CID");
    }
    return 0;
}

static void replace_root(atp_mst *t, mst_node *nr)
{
    atp__mst_unref(t->root);
    t->root = nr;
}

int atp_mst_put(atp_mst *t, atp_slice key, const atp_cid *val, bool *existed, atp_cid *prev,
                atp_err *err)
{
    edit_res res = {false, {0, {0}}};
    mst_node *nr = NULL;
    mst_range all = {{NULL, 0}, {NULL, 0}};
    int rc = check_kv(t, key, val, err);
    rc = rc ? rc : atp__mst_ensure_root(t, err);
    if (rc < 0) {
        return rc;
    }
    put_key k = {key, atp_cid_slice(val), atp_mst_key_height(key)};
    mst_node *root = t->root;
    if (k.h >= t->lim.max_height) {
        return atp_err_set(err, ATP_ELIMIT, 0, "MST key height %u over the limit", k.h);
    }
    if (root->n == 0 && !root->left) {
        nr = single(&k, NULL, NULL);
    } else if (k.h > root->layer) {
        rc = put_above(t, &k, &nr, err);
    } else {
        rc = put_rec(t, root, all, &k, &nr, &res, err);
    }
    if (rc < 0) {
        return rc;
    }
    replace_root(t, nr);
    if (existed) {
        *existed = res.existed;
    }
    if (prev && res.existed) {
        *prev = res.prev;
    }
    return 0;
}

/* ---- delete ---- */

static int del_here(atp_mst *t, mst_node *n, mst_range rg, size_t i, mst_node **out,
                    edit_res *res, atp_err *err)
{
    mst_node *m;
    int rc = merge(t, atp__mst_slot(n, i), atp__mst_slot_range(n, i, rg), n->ents[i].t,
                   atp__mst_slot_range(n, i + 1, rg), &m, err);
    if (rc < 0) {
        return rc;
    }
    set_prev(res, atp__mst_val(&n->ents[i]));
    mst_node *nd = atp__mst_node_alloc(n->layer, n->n - 1,
                                       atp__mst_pool_size(n, 0, n->n) - n->ents[i].klen -
                                           n->ents[i].vlen);
    nd->left = atp__mst_ref(n->left);
    copy_ents(nd, 0, n, 0, i);
    copy_ents(nd, i, n, i + 1, n->n);
    set_slot(nd, i, m);
    *out = drop_if_empty(nd);
    return 0;
}

/* *out is n itself (one more reference) when the key is absent. */
static int del_rec(atp_mst *t, mst_node *n, mst_range rg, atp_slice key, unsigned h,
                   mst_node **out, edit_res *res, atp_err *err)
{
    mst_node *nc;
    int rc = atp__mst_ensure(t, n, rg, err);
    if (rc < 0) {
        return rc;
    }
    size_t i = atp__mst_lower_bound(n, key);
    if (h == n->layer && i < n->n && atp_slice_eq(atp__mst_key(&n->ents[i]), key)) {
        return del_here(t, n, rg, i, out, res, err);
    }
    mst_node *c = atp__mst_slot(n, i);
    if (h >= n->layer || !c) {
        *out = atp__mst_ref(n);
        return 0;
    }
    rc = del_rec(t, c, atp__mst_slot_range(n, i, rg), key, h, &nc, res, err);
    if (rc < 0) {
        return rc;
    }
    if (nc == c) {
        atp__mst_unref(nc);
        *out = atp__mst_ref(n);
        return 0;
    }
    mst_node *nd = copy_node(n);
    set_slot(nd, i, nc);
    *out = drop_if_empty(nd);
    return 0;
}

/* Removes entry-less nodes from the top (the root always has an entry, or is the empty tree). */
static int trim(atp_mst *t, mst_node **root, atp_err *err)
{
    mst_range all = {{NULL, 0}, {NULL, 0}};
    if (!*root) {
        *root = atp__mst_node_empty(0);
        return 0;
    }
    while ((*root)->n == 0 && (*root)->left) {
        mst_node *c = (*root)->left;
        int rc = atp__mst_ensure(t, c, all, err);
        if (rc < 0) {
            return rc;
        }
        atp__mst_ref(c);
        atp__mst_unref(*root);
        *root = c;
    }
    return 0;
}

int atp_mst_delete(atp_mst *t, atp_slice key, bool *existed, atp_cid *prev, atp_err *err)
{
    edit_res res = {false, {0, {0}}};
    mst_node *nr = NULL;
    mst_range all = {{NULL, 0}, {NULL, 0}};
    int rc = check_kv(t, key, NULL, err);
    rc = rc ? rc : atp__mst_ensure_root(t, err);
    rc = rc ? rc : del_rec(t, t->root, all, key, atp_mst_key_height(key), &nr, &res, err);
    if (rc == 0 && res.existed) {
        rc = trim(t, &nr, err);
    }
    if (rc < 0) {
        atp__mst_unref(nr);
        return rc;
    }
    replace_root(t, nr);
    if (existed) {
        *existed = res.existed;
    }
    if (prev && res.existed) {
        *prev = res.prev;
    }
    return 0;
}

/* ---- bulk build ---- */

/* One open node per layer: entries so far (key indexes and their subtrees) and `left`. */
typedef struct bent {
    size_t idx;
    mst_node *t;
} bent;

typedef struct blevel {
    bent *e;
    size_t n, cap;
    mst_node *left;
} blevel;

typedef struct bctx {
    const atp_slice *keys;
    const atp_cid *vals;
    blevel *lv;
} bctx;

/* Fills the open slot of a level (after its last entry, or `left`). Each slot is filled once. */
static void level_slot(blevel *lv, mst_node *sub)
{
    if (lv->n) {
        lv->e[lv->n - 1].t = sub;
    } else {
        lv->left = sub;
    }
}

static mst_node *level_close(const bctx *b, blevel *lv, unsigned layer)
{
    mst_node *nd;
    if (lv->n == 0) {
        nd = wrap(lv->left, layer - 1u, layer);
    } else {
        size_t pool = 0;
        for (size_t j = 0; j < lv->n; j++) {
            pool += b->keys[lv->e[j].idx].len + b->vals[lv->e[j].idx].len;
        }
        nd = atp__mst_node_alloc(layer, lv->n, pool);
        nd->left = lv->left;
        for (size_t j = 0; j < lv->n; j++) {
            size_t x = lv->e[j].idx;
            atp__mst_node_set(nd, j, b->keys[x], atp_cid_slice(&b->vals[x]), lv->e[j].t);
        }
    }
    lv->n = 0;
    lv->left = NULL;
    return nd;
}

/* Closes layers 0..top-1 bottom-up, each becoming the open slot of the layer above. */
static void close_below(const bctx *b, unsigned top)
{
    mst_node *sub = NULL;
    for (unsigned j = 0; j < top; j++) {
        level_slot(&b->lv[j], sub);
        sub = level_close(b, &b->lv[j], j);
    }
    level_slot(&b->lv[top], sub);
}

static void level_push(blevel *lv, size_t idx)
{
    if (lv->n == lv->cap) {
        lv->cap = lv->cap ? lv->cap * 2 : 8;
        lv->e = atp_xrealloc(lv->e, lv->cap * sizeof *lv->e);
    }
    lv->e[lv->n++] = (bent){idx, NULL};
}

static int check_sorted(const atp_mst *t, const atp_slice *keys, const atp_cid *vals, size_t n,
                        uint8_t *heights, unsigned *top, atp_err *err)
{
    *top = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_kv(t, keys[i], &vals[i], err);
        if (rc < 0) {
            return rc;
        }
        if (i > 0 && atp_slice_cmp(keys[i - 1], keys[i]) >= 0) {
            return atp_err_set(err, ATP_EINVAL, i, "key %zu is not above the previous one", i);
        }
        unsigned h = atp_mst_key_height(keys[i]);
        if (h >= t->lim.max_height) {
            return atp_err_set(err, ATP_ELIMIT, i, "MST key height %u over the limit", h);
        }
        heights[i] = (uint8_t)h;
        *top = h > *top ? h : *top;
    }
    return 0;
}

int atp_mst_build_sorted(atp_blockstore *bs, const atp_mst_limits *lim, const atp_slice *keys,
                         const atp_cid *vals, size_t n, atp_mst **out, atp_err *err)
{
    atp_mst *t = atp_mst_create(bs, lim);
    uint8_t *heights = atp_xmalloc(n + 1);
    unsigned top;
    int rc = check_sorted(t, keys, vals, n, heights, &top, err);
    if (rc < 0 || n == 0) {
        free(heights);
        if (rc < 0) {
            atp_mst_destroy(t);
            return rc;
        }
        *out = t;
        return 0;
    }
    bctx b = {keys, vals, atp_xcalloc(top + 1u, sizeof(blevel))};
    for (size_t i = 0; i < n; i++) {
        close_below(&b, heights[i]);
        level_push(&b.lv[heights[i]], i);
    }
    close_below(&b, top);
    replace_root(t, level_close(&b, &b.lv[top], top));
    for (unsigned j = 0; j <= top; j++) {
        free(b.lv[j].e);
    }
    free(b.lv);
    free(heights);
    *out = t;
    return 0;
}

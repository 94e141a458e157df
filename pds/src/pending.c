/* pds/src/pending.c: an account's commits not yet in its file (pending.h). */
#include "pending.h"

#include <stdlib.h>
#include <string.h>

static pds_pending *of(atp_blockstore *bs)
{
    return (pds_pending *)bs; /* view is the first member */
}

/* ---- the block index ---- */

static size_t slot_of(const atp_cid *cid, size_t mask)
{
    uint64_t h = 0;
    size_t n = cid->len < 8 ? cid->len : 8; /* a digest's tail: uniform */
    memcpy(&h, cid->bytes + cid->len - n, n);
    return (size_t)(h ^ (h >> 29)) & mask;
}

/* Puts b in the index (a newer copy of a CID replaces the older). The table is kept at most
 * half full. */
static void index_put(pds_pending *p, const atp_block *b)
{
    if (2 * (p->index_used + 1) > p->index_cap) {
        size_t cap = p->index_cap ? p->index_cap * 2 : 64;
        const atp_block **old = p->index;
        size_t old_cap = p->index_cap;
        p->index = atp_xcalloc(cap, sizeof *p->index);
        p->index_cap = cap;
        p->index_used = 0;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i]) {
                index_put(p, old[i]);
            }
        }
        free(old);
    }
    size_t mask = p->index_cap - 1;
    for (size_t i = slot_of(&b->cid, mask);; i = (i + 1) & mask) {
        if (!p->index[i]) {
            p->index[i] = b;
            p->index_used++;
            return;
        }
        if (atp_cid_eq(&p->index[i]->cid, &b->cid)) {
            p->index[i] = b;
            return;
        }
    }
}

/* Rebuilt from the entries left (oldest first, so the newest copy wins). */
static void index_rebuild(pds_pending *p)
{
    if (p->index) {
        memset(p->index, 0, p->index_cap * sizeof *p->index);
    }
    p->index_used = 0;
    for (const pds_pending_commit *e = p->head; e; e = e->next) {
        for (size_t i = 0; i < e->c.n_blocks; i++) {
            index_put(p, &e->c.blocks[i]);
        }
    }
}

/* The newest entry's copy of `cid`, if any. */
static const atp_block *find(const pds_pending *p, const atp_cid *cid)
{
    if (p->index_used == 0) {
        return NULL;
    }
    size_t mask = p->index_cap - 1;
    for (size_t i = slot_of(cid, mask); p->index[i]; i = (i + 1) & mask) {
        if (atp_cid_eq(&p->index[i]->cid, cid)) {
            return p->index[i];
        }
    }
    return NULL;
}

/* ---- the block store view ---- */

static int view_get(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_slice *out,
                    atp_err *err)
{
    const atp_block *b = find(of(bs), cid);
    if (b) {
        *out = atp_slice_make(atp_arena_dup(a, b->data.ptr, b->data.len), b->data.len);
        return 0;
    }
    return atp_blockstore_get(of(bs)->file, cid, a, out, err);
}

static int view_has(atp_blockstore *bs, const atp_cid *cid, bool *out, atp_err *err)
{
    if (find(of(bs), cid)) {
        *out = true;
        return 0;
    }
    return atp_blockstore_has(of(bs)->file, cid, out, err);
}

static int view_put(atp_blockstore *bs, const atp_block *blocks, size_t n, atp_slice rev,
                    atp_err *err)
{
    return atp_blockstore_put_batch(of(bs)->file, blocks, n, rev, err);
}

static int view_since(atp_blockstore *bs, atp_slice rev,
                      int (*fn)(void *ctx, const atp_cid *cid, atp_slice data), void *ctx,
                      atp_err *err)
{
    return atp_blockstore_each_since(of(bs)->file, rev, fn, ctx, err);
}

static int view_remove(atp_blockstore *bs, const atp_cid *cids, size_t n, atp_err *err)
{
    return atp_blockstore_remove_batch(of(bs)->file, cids, n, err);
}

static void view_destroy(atp_blockstore *bs)
{
    (void)bs; /* part of the list: pds_pending_release */
}

static const atp_blockstore_ops view_ops = {
    .get = view_get,
    .has = view_has,
    .put_batch = view_put,
    .each_since = view_since,
    .remove_batch = view_remove,
    .destroy = view_destroy,
};

/* ---- the list ---- */

void pds_pending_init(pds_pending *p, atp_blockstore *file)
{
    memset(p, 0, sizeof *p);
    p->view.ops = &view_ops;
    p->file = file;
    p->tail = &p->head;
}

static void entry_free(pds_pending_commit *e)
{
    atp_arena_destroy(e->arena);
    free(e);
}

void pds_pending_release(pds_pending *p)
{
    pds_pending_drop(p, p->n);
    free(p->index);
    p->index = NULL;
    p->index_cap = p->index_used = 0;
}

atp_blockstore *pds_pending_store(pds_pending *p)
{
    return &p->view;
}

static atp_slice dup_slice(atp_arena *a, atp_slice s)
{
    return atp_slice_make(s.len ? atp_arena_dup(a, s.ptr, s.len) : NULL, s.len);
}

static void *dup_array(atp_arena *a, const void *v, size_t n, size_t size)
{
    return n ? atp_arena_dup(a, v, n * size) : NULL;
}

pds_pending_commit *pds_pending_add(pds_pending *p, const atp_repo_commit *c,
                                    const pds_index_op *ops, size_t n)
{
    pds_pending_commit *e = atp_xcalloc(1, sizeof *e);
    atp_arena *a = atp_arena_create(0);
    e->arena = a;
    e->c = *c;
    e->c.bytes = dup_slice(a, c->bytes);
    e->c.ops = NULL, e->c.n_ops = 0;
    e->c.proof = NULL, e->c.n_proof = 0;
    e->c.blocks = dup_array(a, c->blocks, c->n_blocks, sizeof *c->blocks);
    for (size_t i = 0; i < c->n_blocks; i++) {
        e->c.blocks[i].data = dup_slice(a, c->blocks[i].data);
    }
    e->c.removed = dup_array(a, c->removed, c->n_removed, sizeof *c->removed);
    e->c.removed_records_maybe = dup_array(a, c->removed_records_maybe,
                                           c->n_removed_records_maybe,
                                           sizeof *c->removed_records_maybe);
    e->ops = dup_array(a, ops, n, sizeof *ops);
    e->n_ops = n;
    for (size_t i = 0; i < n; i++) {
        e->ops[i].collection = dup_slice(a, ops[i].collection);
        e->ops[i].rkey = dup_slice(a, ops[i].rkey);
        e->ops[i].uri = dup_slice(a, ops[i].uri);
        e->ops[i].blobs = dup_array(a, ops[i].blobs, ops[i].n_blobs, sizeof *ops[i].blobs);
    }
    atomic_init(&e->seq, 0);
    *p->tail = e;
    p->tail = &e->next;
    p->n++;
    for (size_t i = 0; i < e->c.n_blocks; i++) {
        index_put(p, &e->c.blocks[i]);
    }
    return e;
}

size_t pds_pending_ready(const pds_pending *p)
{
    size_t k = 0;
    for (const pds_pending_commit *e = p->head; e; e = e->next) {
        if (atomic_load_explicit(&e->seq, memory_order_acquire) == 0) {
            break;
        }
        k++;
    }
    return k;
}

void pds_pending_drop(pds_pending *p, size_t k)
{
    while (k-- > 0 && p->head) {
        pds_pending_commit *e = p->head;
        p->head = e->next;
        p->n--;
        entry_free(e);
    }
    if (!p->head) {
        p->tail = &p->head;
    }
    index_rebuild(p);
}

int64_t pds_pending_min_seq(const pds_pending *p)
{
    int64_t min = INT64_MAX;
    for (const pds_pending_commit *e = p->head; e; e = e->next) {
        int64_t s = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s > 0 && s < min) {
            min = s;
        }
    }
    return min;
}

/* ---- net effect of a flush ---- */

typedef struct net_slot {
    const atp_cid *cid;
    size_t first_add; /* SIZE_MAX: none */
    size_t last_rm;   /* SIZE_MAX: none */
} net_slot;

struct pds_pending_net {
    net_slot *v;
    size_t mask;
};

static net_slot *net_find(const pds_pending_net *n, const atp_cid *cid, bool add)
{
    for (size_t i = slot_of(cid, n->mask);; i = (i + 1) & n->mask) {
        if (!n->v[i].cid) {
            if (!add) {
                return NULL;
            }
            n->v[i] = (net_slot){cid, SIZE_MAX, SIZE_MAX};
            return &n->v[i];
        }
        if (atp_cid_eq(n->v[i].cid, cid)) {
            return &n->v[i];
        }
    }
}

pds_pending_net *pds_pending_net_make(const pds_pending *p, size_t k, atp_arena *a)
{
    size_t total = 0, i = 0, cap = 16;
    for (const pds_pending_commit *e = p->head; e && i < k; e = e->next, i++) {
        total += e->c.n_blocks + e->c.n_removed;
    }
    while (cap < 2 * total + 2) {
        cap *= 2;
    }
    pds_pending_net *n = atp_arena_calloc(a, 1, sizeof *n);
    n->v = atp_arena_calloc(a, cap, sizeof *n->v);
    n->mask = cap - 1;
    i = 0;
    for (const pds_pending_commit *e = p->head; e && i < k; e = e->next, i++) {
        for (size_t b = 0; b < e->c.n_blocks; b++) {
            net_slot *s = net_find(n, &e->c.blocks[b].cid, true);
            s->first_add = s->first_add == SIZE_MAX ? i : s->first_add;
        }
        for (size_t r = 0; r < e->c.n_removed; r++) {
            net_find(n, &e->c.removed[r], true)->last_rm = i;
        }
    }
    return n;
}

bool pds_pending_net_put(const pds_pending_net *n, size_t i, const atp_cid *cid)
{
    const net_slot *s = net_find(n, cid, false);
    return !s || s->last_rm == SIZE_MAX || s->last_rm < i;
}

bool pds_pending_net_del(const pds_pending_net *n, size_t i, const atp_cid *cid)
{
    const net_slot *s = net_find(n, cid, false);
    return !s || s->first_add == SIZE_MAX || s->first_add > i;
}

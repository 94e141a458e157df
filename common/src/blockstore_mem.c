/* blockstore_mem.c: the in-memory block store.
 *
 * Memory layout (a repo import holds ~130,000 blocks, so per-block overhead matters):
 * - block records (header, CID, data) are bump-allocated in 1 MiB slabs owned by the store;
 *   a block bigger than an eighth of a slab gets a slab of its own. Records never move, so get()
 *   can hand out borrowed slices. Removing a block frees its own slab if it had one; otherwise
 *   its slot (record size rounded up to 16 bytes) joins a free list keyed by slot size, and a
 *   later put of that size (or up to 48 bytes smaller) reuses it before appending: a repo that
 *   removes each commit's unreachable blocks then stops growing. Slots are never split or merged.
 * - `order` is the array of records in insertion order (each_since walks it); removed entries
 *   become NULL and the array is compacted once they outnumber the live ones.
 * - the lookup table holds 32-bit indexes into `order` (open addressing, linear probing,
 *   backward-shift deletion: no tombstones), hashed from the CID's digest tail.
 * - revs are interned: a record keeps a 32-bit index into the store's rev list.
 * Marks (atp_blockstore_mem_mark) let a reachability walk tag blocks in place, and
 * atp_blockstore_mem_move_marked hands the marked blocks to another memory store by giving it
 * the slabs instead of copying them. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "atp/blockstore.h"

#define MEM_REV_MAX 255
#define SLAB_SIZE ((size_t)1 << 20)
#define SLAB_BIG (SLAB_SIZE / 8)
#define IDX_MAX (UINT32_MAX - 1)
#define SLOT_ALIGN ((size_t)16)
#define N_BUCKETS (SLAB_BIG / SLOT_ALIGN + 1)
#define FIT_TRIES 4 /* the exact bucket, then up to 3 larger ones (at most 48 bytes of slack) */

typedef struct mem_rec {
    uint32_t hash;
    uint32_t len; /* data bytes */
    uint32_t rev; /* index into revs; 0 = no rev */
    uint8_t cid_len;
    uint8_t own;    /* 1: the record is alone in its slab (freed on removal) */
    uint8_t marked; /* set by atp_blockstore_mem_mark */
    uint8_t slack;  /* slot size beyond the rounded record size, in SLOT_ALIGN units */
    uint8_t tail[]; /* cid, then data */
} mem_rec;

typedef struct slab slab;
struct slab {
    slab *next, *prev; /* doubly linked so that an own slab can be unlinked on removal */
    size_t used, cap;
    uint8_t mem[]; /* offset 32 (16 on 32-bit): 8-aligned for the records */
};

/* A free small-record slot; its size is its bucket's. */
typedef struct free_slot {
    struct free_slot *next;
} free_slot;

typedef struct mem_rev {
    uint8_t *ptr; /* malloc'd */
    size_t len;
} mem_rev;

typedef struct mem_store {
    atp_blockstore base;
    uint32_t *slots; /* 0 = empty, else index into order + 1 */
    size_t cap;      /* power of two */
    mem_rec **order; /* insertion order; NULL = removed */
    size_t n_order, order_cap;
    size_t count, bytes, n_marked;
    slab *slabs; /* the current small-record slab is first */
    free_slot **free; /* N_BUCKETS lists by slot size / 16; NULL until the first one is freed */
    mem_rev *revs;    /* revs[0] is the empty rev */
    size_t n_revs, revs_cap;
} mem_store;

static const atp_blockstore_ops mem_ops;

static const uint8_t *rec_cid(const mem_rec *r)
{
    return r->tail;
}
static atp_slice rec_data(const mem_rec *r)
{
    return atp_slice_make(r->tail + r->cid_len, r->len);
}

/* The digest's tail is already uniformly distributed for hashed CIDs; mixing it also spreads
 * identity-hash or short CIDs. */
static uint32_t cid_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    size_t start = len > 8 ? len - 8 : 0;
    for (size_t i = start; i < len; i++) {
        h = (h << 8) | p[i];
    }
    for (size_t i = 0; i < start && i < 4; i++) {
        h ^= (uint64_t)p[i] << (8 * i);
    }
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return (uint32_t)h;
}

static mem_rec *slot_rec(const mem_store *m, size_t i)
{
    return m->order[m->slots[i] - 1];
}

static size_t find_slot(const mem_store *m, const uint8_t *cid, size_t len, uint32_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i]) {
        const mem_rec *r = slot_rec(m, i);
        if (r->hash == h && r->cid_len == len && memcmp(rec_cid(r), cid, len) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
    return i;
}

static void slot_place(mem_store *m, uint32_t idx)
{
    size_t mask = m->cap - 1;
    size_t j = (size_t)m->order[idx]->hash & mask;
    while (m->slots[j]) {
        j = (j + 1) & mask;
    }
    m->slots[j] = idx + 1;
}

/* Rebuilds the table at `cap` slots, dropping the removed entries of `order` first. */
static void rebuild(mem_store *m, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n_order; i++) {
        if (m->order[i]) {
            m->order[k++] = m->order[i];
        }
    }
    m->n_order = k;
    free(m->slots);
    m->cap = cap;
    m->slots = atp_xcalloc(cap, sizeof *m->slots);
    for (size_t i = 0; i < k; i++) {
        slot_place(m, (uint32_t)i);
    }
}

/* Room for one more record: table load at most 3/4, order array grown by doubling. */
static void reserve_one(mem_store *m)
{
    if ((m->count + 1) * 4 > m->cap * 3) {
        rebuild(m, m->cap ? m->cap * 2 : 64);
    } else if (m->n_order == m->order_cap && m->n_order > 2 * m->count) {
        rebuild(m, m->cap); /* mostly holes: compact instead of growing */
    }
    if (m->n_order == m->order_cap) {
        m->order_cap = m->order_cap ? m->order_cap * 2 : 64;
        m->order = atp_xrealloc(m->order, m->order_cap * sizeof *m->order);
    }
}

static mem_rec *lookup(const mem_store *m, const atp_cid *cid)
{
    if (m->count == 0) {
        return NULL;
    }
    size_t i = find_slot(m, cid->bytes, cid->len, cid_hash(cid->bytes, cid->len));
    return m->slots[i] ? slot_rec(m, i) : NULL;
}

static int mem_get(atp_blockstore *bs, const atp_cid *cid, atp_arena *a, atp_slice *out,
                   atp_err *err)
{
    const mem_rec *r = lookup((const mem_store *)bs, cid);
    (void)a; /* blocks never move: no copy needed */
    if (!r) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "block not in store");
    }
    *out = rec_data(r);
    return 0;
}

static int mem_has(atp_blockstore *bs, const atp_cid *cid, bool *out, atp_err *err)
{
    (void)err;
    *out = lookup((const mem_store *)bs, cid) != NULL;
    return 0;
}

static slab *slab_new(mem_store *m, size_t cap)
{
    slab *s = atp_xmalloc(sizeof *s + cap);
    s->used = 0;
    s->cap = cap;
    s->prev = NULL;
    s->next = m->slabs;
    if (m->slabs) {
        m->slabs->prev = s;
    }
    m->slabs = s;
    return s;
}

static void slab_unlink(mem_store *m, slab *s)
{
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        m->slabs = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
}

static size_t slot_round(size_t size)
{
    return (size + SLOT_ALIGN - 1) & ~(SLOT_ALIGN - 1);
}

/* The size of small record r's slot (read before the slot is overwritten by a free link). */
static size_t slot_size(const mem_rec *r)
{
    return slot_round(sizeof *r + r->cid_len + r->len) + (size_t)r->slack * SLOT_ALIGN;
}

/* Puts the slot at p (`size` bytes, in one of m's slabs) on its free list. */
static void free_push(mem_store *m, void *p, size_t size)
{
    if (!m->free) {
        m->free = atp_xcalloc(N_BUCKETS, sizeof *m->free);
    }
    free_slot *f = p;
    f->next = m->free[size / SLOT_ALIGN];
    m->free[size / SLOT_ALIGN] = f;
}

/* A free slot of at least `size` bytes (a multiple of 16, small), or NULL; *slack: the extra
 * 16-byte units. Only a few larger buckets are tried so that slack stays small. */
static void *free_pop(mem_store *m, size_t size, size_t *slack)
{
    size_t k = size / SLOT_ALIGN;
    for (size_t t = 0; m->free && t < FIT_TRIES && k + t < N_BUCKETS; t++) {
        free_slot *f = m->free[k + t];
        if (f) {
            m->free[k + t] = f->next;
            *slack = t;
            return f;
        }
    }
    return NULL;
}

/* Space for a record of `size` bytes (rounded up to 16). A small one reuses a free slot if
 * one fits; a big one gets its own slab, linked after the current small-record slab so that
 * the current one stays first. */
static mem_rec *rec_alloc(mem_store *m, size_t size, bool *own, size_t *slack)
{
    size = slot_round(size);
    *own = size > SLAB_BIG;
    *slack = 0;
    if (*own) {
        slab *cur = m->slabs;
        slab *s = slab_new(m, size);
        if (cur) { /* swap the two first slabs: the new one is full anyway */
            slab_unlink(m, cur);
            cur->prev = NULL;
            cur->next = m->slabs;
            m->slabs->prev = cur;
            m->slabs = cur;
        }
        s->used = size;
        return (mem_rec *)(void *)s->mem;
    }
    void *p = free_pop(m, size, slack);
    if (p) {
        return p;
    }
    if (!m->slabs || m->slabs->cap - m->slabs->used < size) {
        (void)slab_new(m, SLAB_SIZE);
    }
    mem_rec *r = (mem_rec *)(void *)(m->slabs->mem + m->slabs->used);
    m->slabs->used += size;
    return r;
}

/* The index of `rev` in the rev list, appended if it is not the latest one (batches come
 * with increasing revs, so looking at the last one finds nearly every repeat). */
static uint32_t rev_id(mem_store *m, atp_slice rev)
{
    if (rev.len == 0) {
        return 0;
    }
    const mem_rev *last = m->n_revs > 1 ? &m->revs[m->n_revs - 1] : NULL;
    if (last && atp_slice_eq(atp_slice_make(last->ptr, last->len), rev)) {
        return (uint32_t)(m->n_revs - 1);
    }
    if (m->n_revs == 0) {
        m->revs_cap = 16;
        m->revs = atp_xcalloc(m->revs_cap, sizeof *m->revs);
        m->n_revs = 1; /* revs[0]: the empty rev */
    }
    if (m->n_revs == m->revs_cap) {
        m->revs_cap *= 2;
        m->revs = atp_xrealloc(m->revs, m->revs_cap * sizeof *m->revs);
    }
    uint8_t *p = atp_xmalloc(rev.len);
    memcpy(p, rev.ptr, rev.len);
    m->revs[m->n_revs] = (mem_rev){p, rev.len};
    return (uint32_t)m->n_revs++;
}

static atp_slice rec_rev(const mem_store *m, const mem_rec *r)
{
    return r->rev ? atp_slice_make(m->revs[r->rev].ptr, m->revs[r->rev].len)
                  : atp_slice_make(NULL, 0);
}

/* Appends record r (already filled in) to the order array and the table slot `s`. */
static void index_rec(mem_store *m, mem_rec *r, size_t s)
{
    m->order[m->n_order] = r;
    m->slots[s] = (uint32_t)(m->n_order + 1);
    m->n_order++;
    m->count++;
    m->bytes += r->len;
}

static void insert_block(mem_store *m, const atp_block *b, uint32_t rev)
{
    const atp_cid *c = &b->cid;
    uint32_t h = cid_hash(c->bytes, c->len);
    reserve_one(m);
    size_t s = find_slot(m, c->bytes, c->len, h);
    if (m->slots[s]) {
        return; /* present: keeps its original rev */
    }
    bool own;
    size_t slack;
    mem_rec *r = rec_alloc(m, sizeof *r + c->len + b->data.len, &own, &slack);
    r->hash = h;
    r->len = (uint32_t)b->data.len;
    r->rev = rev;
    r->cid_len = c->len;
    r->own = own;
    r->marked = 0;
    r->slack = (uint8_t)slack;
    memcpy(r->tail, c->bytes, c->len);
    if (b->data.len) {
        memcpy(r->tail + c->len, b->data.ptr, b->data.len);
    }
    index_rec(m, r, s);
}

/* Everything is checked before the first insertion so that a batch is all or nothing. */
static int check_batch(const mem_store *m, const atp_block *blocks, size_t n, atp_slice rev,
                       atp_err *err)
{
    if (rev.len > MEM_REV_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "rev longer than %d bytes", MEM_REV_MAX);
    }
    if (n > IDX_MAX / 2 - m->n_order) {
        return atp_err_set(err, ATP_ELIMIT, 0, "memory store full");
    }
    for (size_t i = 0; i < n; i++) {
        if (blocks[i].cid.len == 0 || blocks[i].cid.len > ATP_CID_MAX) {
            return atp_err_set(err, ATP_EINVAL, i, "block %zu: empty or oversized CID", i);
        }
        if (blocks[i].data.len > UINT32_MAX - ATP_CID_MAX - 64) {
            return atp_err_set(err, ATP_ELIMIT, i, "block %zu: over 4 GiB", i);
        }
    }
    return 0;
}

static int mem_put_batch(atp_blockstore *bs, const atp_block *blocks, size_t n, atp_slice rev,
                         atp_err *err)
{
    mem_store *m = (mem_store *)bs;
    int rc = check_batch(m, blocks, n, rev, err);
    if (rc < 0 || n == 0) {
        return rc;
    }
    uint32_t id = rev_id(m, rev);
    for (size_t i = 0; i < n; i++) {
        insert_block(m, &blocks[i], id);
    }
    return 0;
}

static int mem_each_since(atp_blockstore *bs, atp_slice rev,
                          int (*fn)(void *ctx, const atp_cid *cid, atp_slice data), void *ctx,
                          atp_err *err)
{
    const mem_store *m = (const mem_store *)bs;
    (void)err;
    for (size_t i = 0; i < m->n_order; i++) {
        const mem_rec *r = m->order[i];
        /* TIDs are fixed-length base32-sortable strings: bytewise order is time order. */
        if (!r || atp_slice_cmp(rec_rev(m, r), rev) <= 0) {
            continue;
        }
        atp_cid c;
        c.len = r->cid_len;
        memcpy(c.bytes, rec_cid(r), r->cid_len);
        int rc = fn(ctx, &c, rec_data(r));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void slot_remove(mem_store *m, size_t i)
{
    size_t mask = m->cap - 1;
    size_t j = i;
    m->slots[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j]) {
            return;
        }
        size_t home = (size_t)slot_rec(m, j)->hash & mask;
        /* Move j back to i if its home is not in the cyclic range (i, j]. */
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->slots[i] = m->slots[j];
            m->slots[j] = 0;
            i = j;
        }
    }
}

/* A record alone in its slab: the slab header sits just before the record. */
static void free_own(mem_store *m, mem_rec *r)
{
    slab *s = (slab *)(void *)((uint8_t *)r - offsetof(slab, mem));
    slab_unlink(m, s);
    free(s);
}

static void remove_slot(mem_store *m, size_t i)
{
    uint32_t idx = m->slots[i] - 1;
    mem_rec *r = m->order[idx];
    slot_remove(m, i);
    m->order[idx] = NULL;
    m->count--;
    m->bytes -= r->len;
    m->n_marked -= r->marked;
    if (r->own) {
        free_own(m, r);
    } else {
        free_push(m, r, slot_size(r));
    }
}

static int mem_remove_batch(atp_blockstore *bs, const atp_cid *cids, size_t n, atp_err *err)
{
    mem_store *m = (mem_store *)bs;
    (void)err;
    for (size_t k = 0; k < n && m->count > 0; k++) {
        if (cids[k].len == 0 || cids[k].len > ATP_CID_MAX) {
            continue;
        }
        size_t i = find_slot(m, cids[k].bytes, cids[k].len, cid_hash(cids[k].bytes, cids[k].len));
        if (m->slots[i]) {
            remove_slot(m, i);
        }
    }
    return 0;
}

/* Frees everything the store holds except the object itself, leaving it empty. */
static void mem_clear(mem_store *m)
{
    slab *s = m->slabs;
    while (s) {
        slab *next = s->next;
        free(s);
        s = next;
    }
    for (size_t i = 1; i < m->n_revs; i++) {
        free(m->revs[i].ptr);
    }
    free(m->revs);
    free(m->free);
    free(m->slots);
    free(m->order);
    atp_blockstore base = m->base;
    memset(m, 0, sizeof *m);
    m->base = base;
}

static void mem_destroy(atp_blockstore *bs)
{
    mem_store *m = (mem_store *)bs;
    mem_clear(m);
    free(m);
}

static const atp_blockstore_ops mem_ops = {
    .get = mem_get,
    .has = mem_has,
    .put_batch = mem_put_batch,
    .each_since = mem_each_since,
    .remove_batch = mem_remove_batch,
    .destroy = mem_destroy,
};

atp_blockstore *atp_blockstore_mem_create(void)
{
    mem_store *m = atp_xcalloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    return &m->base;
}

bool atp_blockstore_is_mem(const atp_blockstore *bs)
{
    return bs && bs->ops == &mem_ops;
}

size_t atp_blockstore_mem_count(const atp_blockstore *bs)
{
    return ((const mem_store *)bs)->count;
}

size_t atp_blockstore_mem_bytes(const atp_blockstore *bs)
{
    return ((const mem_store *)bs)->bytes;
}

size_t atp_blockstore_mem_slab_bytes(const atp_blockstore *bs)
{
    size_t n = 0;
    for (const slab *s = ((const mem_store *)bs)->slabs; s; s = s->next) {
        n += s->cap;
    }
    return n;
}

/* ---- marks and hand-over ---- */

int atp_blockstore_mem_mark(atp_blockstore *bs, const atp_cid *cid, bool *first, atp_err *err)
{
    mem_store *m = (mem_store *)bs;
    mem_rec *r = lookup(m, cid);
    if (!r) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "block not in store");
    }
    *first = !r->marked;
    m->n_marked += !r->marked;
    r->marked = 1;
    return 0;
}

size_t atp_blockstore_mem_marked(const atp_blockstore *bs)
{
    return ((const mem_store *)bs)->n_marked;
}

int atp_blockstore_mem_each_marked(atp_blockstore *bs,
                                   int (*fn)(void *ctx, const atp_cid *cid, atp_slice data),
                                   void *ctx)
{
    const mem_store *m = (const mem_store *)bs;
    for (size_t i = 0; i < m->n_order; i++) {
        const mem_rec *r = m->order[i];
        if (!r || !r->marked) {
            continue;
        }
        atp_cid c;
        c.len = r->cid_len;
        memcpy(c.bytes, rec_cid(r), r->cid_len);
        int rc = fn(ctx, &c, rec_data(r));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Indexes src's record r in dst (which now owns r's slab); a duplicate's slot is freed in
 * dst (an own one stays: its slab is small waste that goes with dst). */
static void adopt_rec(mem_store *dst, mem_rec *r, uint32_t rev)
{
    reserve_one(dst);
    size_t s = find_slot(dst, rec_cid(r), r->cid_len, r->hash);
    if (dst->slots[s]) {
        if (!r->own) {
            free_push(dst, r, slot_size(r));
        }
        return;
    }
    r->rev = rev;
    r->marked = 0;
    index_rec(dst, r, s);
}

/* src's free slots, which now lie in dst's slabs, join dst's free lists (src must not keep
 * them: mem_clear drops its lists). */
static void adopt_free(mem_store *dst, mem_store *src)
{
    for (size_t k = 0; src->free && k < N_BUCKETS; k++) {
        while (src->free[k]) {
            free_slot *f = src->free[k];
            src->free[k] = f->next;
            free_push(dst, f, k * SLOT_ALIGN);
        }
    }
}

/* dst takes all of src's slabs; src's own slabs of unmarked records are freed first, and its
 * unmarked small records become free slots of dst. */
static void adopt_all(mem_store *dst, mem_store *src, uint32_t rev)
{
    adopt_free(dst, src);
    for (size_t i = 0; i < src->n_order; i++) {
        mem_rec *r = src->order[i];
        if (r && !r->marked) {
            if (r->own) {
                free_own(src, r);
            } else {
                free_push(dst, r, slot_size(r));
            }
            src->order[i] = NULL;
        }
    }
    for (size_t i = 0; i < src->n_order; i++) {
        if (src->order[i] && src->order[i]->marked) {
            adopt_rec(dst, src->order[i], rev);
        }
    }
    /* src's slabs go after dst's current slab (dst keeps filling its own). */
    slab *last = src->slabs;
    while (last && last->next) {
        last = last->next;
    }
    if (last) {
        slab *rest = dst->slabs ? dst->slabs->next : NULL;
        last->next = rest;
        if (rest) {
            rest->prev = last;
        }
        if (dst->slabs) {
            dst->slabs->next = src->slabs;
            src->slabs->prev = dst->slabs;
        } else {
            dst->slabs = src->slabs;
        }
        src->slabs = NULL;
    }
}

int atp_blockstore_mem_move_marked(atp_blockstore *dst_bs, atp_blockstore *src_bs, atp_slice rev,
                                   atp_err *err)
{
    if (!atp_blockstore_is_mem(dst_bs) || !atp_blockstore_is_mem(src_bs) || dst_bs == src_bs) {
        return atp_err_set(err, ATP_EINVAL, 0, "move needs two distinct memory stores");
    }
    mem_store *dst = (mem_store *)dst_bs, *src = (mem_store *)src_bs;
    int rc = check_batch(dst, NULL, 0, rev, err);
    if (rc == 0 && src->n_marked > IDX_MAX / 2 - dst->n_order) {
        rc = atp_err_set(err, ATP_ELIMIT, 0, "memory store full");
    }
    if (rc != 0) {
        return rc; /* nothing moved: both stores as they were */
    }
    if (src->n_marked == 0) {
        mem_clear(src);
        return 0;
    }
    uint32_t id = rev_id(dst, rev);
    size_t marked_bytes = 0;
    for (size_t i = 0; i < src->n_order; i++) {
        const mem_rec *r = src->order[i];
        marked_bytes += (r && r->marked) ? r->len : 0;
    }
    /* Adopting the slabs keeps the unmarked blocks' bytes as holes: only worth it when they
     * are few (the normal import); a CAR full of extras is copied instead. */
    if (marked_bytes >= src->bytes / 4 * 3) {
        adopt_all(dst, src, id);
    } else {
        for (size_t i = 0; i < src->n_order; i++) {
            const mem_rec *r = src->order[i];
            if (r && r->marked) {
                atp_block b = {.data = rec_data(r)};
                b.cid.len = r->cid_len;
                memcpy(b.cid.bytes, rec_cid(r), r->cid_len);
                insert_block(dst, &b, id);
            }
        }
    }
    mem_clear(src);
    return 0;
}

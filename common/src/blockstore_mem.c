/* blockstore_mem.c: the in-memory block store. Each block is one allocation (record header,
 * CID, rev, data), so its bytes never move and get() can hand out borrowed slices. Lookup is an
 * open-addressing table (linear probing, backward-shift deletion: no tombstones) keyed by the
 * CID, hashed from the digest's tail; insertion order is a doubly-linked list for each_since. */
#include <stdlib.h>
#include <string.h>

#include "atp/blockstore.h"

typedef struct mem_rec mem_rec;
struct mem_rec {
    mem_rec *prev, *next; /* insertion order */
    uint64_t hash;
    size_t len;           /* data bytes */
    uint8_t cid_len;
    uint8_t rev_len;
    uint8_t tail[]; /* cid, then rev, then data: no fixed-size fields to waste memory on */
};

static const uint8_t *rec_cid(const mem_rec *r)
{
    return r->tail;
}
static atp_slice rec_rev(const mem_rec *r)
{
    return atp_slice_make(r->tail + r->cid_len, r->rev_len);
}
static atp_slice rec_data(const mem_rec *r)
{
    return atp_slice_make(r->tail + r->cid_len + r->rev_len, r->len);
}

typedef struct mem_store {
    atp_blockstore base;
    mem_rec **slots; /* NULL = empty */
    size_t cap;      /* power of two */
    size_t count;
    size_t bytes;
    mem_rec *head, *tail;
} mem_store;

#define MEM_REV_MAX 255

/* The digest's tail is already uniformly distributed for hashed CIDs; mixing it also spreads
 * identity-hash or short CIDs. */
static uint64_t cid_hash(const uint8_t *p, size_t len)
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
    return h;
}

static size_t find_slot(const mem_store *m, const uint8_t *cid, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i]) {
        const mem_rec *r = m->slots[i];
        if (r->hash == h && r->cid_len == len && memcmp(rec_cid(r), cid, len) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
    return i;
}

static void grow(mem_store *m)
{
    size_t old_cap = m->cap;
    mem_rec **old = m->slots;
    m->cap = old_cap ? old_cap * 2 : 64;
    m->slots = atp_xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i]) {
            size_t j = (size_t)old[i]->hash & (m->cap - 1);
            while (m->slots[j]) {
                j = (j + 1) & (m->cap - 1);
            }
            m->slots[j] = old[i];
        }
    }
    free(old);
}

static const mem_rec *lookup(const mem_store *m, const atp_cid *cid)
{
    if (m->count == 0) {
        return NULL;
    }
    return m->slots[find_slot(m, cid->bytes, cid->len, cid_hash(cid->bytes, cid->len))];
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

static mem_rec *rec_new(const atp_block *b, atp_slice rev, uint64_t h)
{
    mem_rec *r = atp_xmalloc(sizeof *r + b->cid.len + rev.len + b->data.len);
    uint8_t *p = r->tail;
    r->hash = h;
    r->len = b->data.len;
    r->cid_len = b->cid.len;
    r->rev_len = (uint8_t)rev.len;
    memcpy(p, b->cid.bytes, b->cid.len);
    p += b->cid.len;
    if (rev.len) {
        memcpy(p, rev.ptr, rev.len);
        p += rev.len;
    }
    if (b->data.len) {
        memcpy(p, b->data.ptr, b->data.len);
    }
    return r;
}

static void list_append(mem_store *m, mem_rec *r)
{
    r->next = NULL;
    r->prev = m->tail;
    if (m->tail) {
        m->tail->next = r;
    } else {
        m->head = r;
    }
    m->tail = r;
}

/* Everything is checked before the first insertion so that a batch is all or nothing. */
static int check_batch(const atp_block *blocks, size_t n, atp_slice rev, atp_err *err)
{
    if (rev.len > MEM_REV_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "rev longer than %d bytes", MEM_REV_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        if (blocks[i].cid.len == 0 || blocks[i].cid.len > ATP_CID_MAX) {
            return atp_err_set(err, ATP_EINVAL, i, "block %zu: empty or oversized CID", i);
        }
    }
    return 0;
}

static int mem_put_batch(atp_blockstore *bs, const atp_block *blocks, size_t n, atp_slice rev,
                         atp_err *err)
{
    mem_store *m = (mem_store *)bs;
    int rc = check_batch(blocks, n, rev, err);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const atp_cid *c = &blocks[i].cid;
        uint64_t h = cid_hash(c->bytes, c->len);
        if ((m->count + 1) * 4 > m->cap * 3) {
            grow(m);
        }
        size_t s = find_slot(m, c->bytes, c->len, h);
        if (m->slots[s]) {
            continue; /* present: keeps its original rev */
        }
        m->slots[s] = rec_new(&blocks[i], rev, h);
        list_append(m, m->slots[s]);
        m->count++;
        m->bytes += blocks[i].data.len;
    }
    return 0;
}

static int mem_each_since(atp_blockstore *bs, atp_slice rev,
                          int (*fn)(void *ctx, const atp_cid *cid, atp_slice data), void *ctx,
                          atp_err *err)
{
    const mem_store *m = (const mem_store *)bs;
    (void)err;
    for (const mem_rec *r = m->head; r; r = r->next) {
        /* TIDs are fixed-length base32-sortable strings: bytewise order is time order. */
        if (atp_slice_cmp(rec_rev(r), rev) <= 0) {
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
    m->slots[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j]) {
            return;
        }
        size_t home = (size_t)m->slots[j]->hash & mask;
        /* Move j back to i if its home is not in the cyclic range (i, j]. */
        bool in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->slots[i] = m->slots[j];
            m->slots[j] = NULL;
            i = j;
        }
    }
}

static void list_unlink(mem_store *m, mem_rec *r)
{
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        m->head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    } else {
        m->tail = r->prev;
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
        mem_rec *r = m->slots[i];
        if (!r) {
            continue;
        }
        slot_remove(m, i);
        list_unlink(m, r);
        m->count--;
        m->bytes -= r->len;
        free(r);
    }
    return 0;
}

static void mem_destroy(atp_blockstore *bs)
{
    mem_store *m = (mem_store *)bs;
    mem_rec *r = m->head;
    while (r) {
        mem_rec *next = r->next;
        free(r);
        r = next;
    }
    free(m->slots);
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

size_t atp_blockstore_mem_count(const atp_blockstore *bs)
{
    return ((const mem_store *)bs)->count;
}

size_t atp_blockstore_mem_bytes(const atp_blockstore *bs)
{
    return ((const mem_store *)bs)->bytes;
}

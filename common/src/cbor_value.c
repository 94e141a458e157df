/* cbor_value.c: limits, tree lookups and tree builders. */
#include "atp/cbor.h"

#include <stdlib.h>
#include <string.h>

/* The Go reference constants (spec data-model §2.9); 5 MiB is the largest CBOR object any
 * protocol structure may be. */
const atp_cbor_limits atp_cbor_limits_default = {
    .max_len = (size_t)5 << 20,
    .max_depth = 32,
    .max_items = 131072,
    .max_key = 8192,
    .max_total = (size_t)1 << 20,
};

int atp_cbor_key_cmp(atp_slice a, atp_slice b)
{
    if (a.len != b.len) {
        return a.len < b.len ? -1 : 1;
    }
    return a.len ? memcmp(a.ptr, b.ptr, a.len) : 0;
}

const atp_cbor *atp_cbor_map_get(const atp_cbor *m, atp_slice key)
{
    size_t lo = 0, hi;
    if (!m || m->type != ATP_CBOR_MAP) {
        return NULL;
    }
    hi = m->u.map.n;
    /* Keys are in canonical order, which is a total order: plain binary search. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = atp_cbor_key_cmp(m->u.map.pairs[mid].key, key);
        if (c == 0) {
            return &m->u.map.pairs[mid].val;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

const atp_cbor *atp_cbor_map_get_str(const atp_cbor *m, const char *key)
{
    return atp_cbor_map_get(m, atp_slice_str(key));
}

int atp_cbor_get_cid(const atp_cbor *v, atp_cid *out)
{
    atp_cid c;
    size_t used = 0;
    if (!v || v->type != ATP_CBOR_LINK) {
        return ATP_EINVAL;
    }
    if (atp_cid_decode(v->u.link, 0, &c, &used, NULL) != 0 || used != v->u.link.len) {
        return ATP_EINVAL;
    }
    *out = c;
    return 0;
}

/* ---- builders ---- */

static atp_cbor *new_node(atp_arena *a, atp_cbor_type t)
{
    atp_cbor *v = atp_arena_calloc(a, 1, sizeof *v);
    v->type = t;
    return v;
}

atp_cbor *atp_cbor_new_null(atp_arena *a)
{
    return new_node(a, ATP_CBOR_NULL);
}

atp_cbor *atp_cbor_new_bool(atp_arena *a, bool b)
{
    atp_cbor *v = new_node(a, ATP_CBOR_BOOL);
    v->u.b = b;
    return v;
}

atp_cbor *atp_cbor_new_int(atp_arena *a, int64_t i)
{
    atp_cbor *v = new_node(a, ATP_CBOR_INT);
    v->u.i = i;
    return v;
}

atp_cbor *atp_cbor_new_string(atp_arena *a, atp_slice s)
{
    atp_cbor *v = new_node(a, ATP_CBOR_STRING);
    v->u.str = s;
    return v;
}

atp_cbor *atp_cbor_new_bytes(atp_arena *a, atp_slice s)
{
    atp_cbor *v = new_node(a, ATP_CBOR_BYTES);
    v->u.str = s;
    return v;
}

atp_cbor *atp_cbor_new_link(atp_arena *a, const atp_cid *c)
{
    atp_cbor *v = new_node(a, ATP_CBOR_LINK);
    v->u.link = atp_slice_make(atp_arena_dup(a, c->bytes, c->len), c->len);
    return v;
}

/* calloc gives type 0 (ATP_CBOR_NULL) and empty slices: the "all null" promise. */
atp_cbor *atp_cbor_new_array(atp_arena *a, size_t n)
{
    atp_cbor *v = new_node(a, ATP_CBOR_ARRAY);
    v->u.arr.items = n ? atp_arena_calloc(a, n, sizeof(atp_cbor)) : NULL;
    v->u.arr.n = n;
    return v;
}

atp_cbor *atp_cbor_new_map(atp_arena *a, size_t n)
{
    atp_cbor *v = new_node(a, ATP_CBOR_MAP);
    v->u.map.pairs = n ? atp_arena_calloc(a, n, sizeof(atp_cbor_pair)) : NULL;
    v->u.map.n = n;
    return v;
}

static int pair_cmp(const void *x, const void *y)
{
    const atp_cbor_pair *a = x, *b = y;
    return atp_cbor_key_cmp(a->key, b->key);
}

int atp_cbor_map_finish(atp_cbor *m, atp_err *err)
{
    atp_cbor_pair *p;
    size_t n;
    if (!m || m->type != ATP_CBOR_MAP) {
        return atp_err_set(err, ATP_EINVAL, 0, "not a map");
    }
    p = m->u.map.pairs;
    n = m->u.map.n;
    if (n < 2) {
        return 0;
    }
    qsort(p, n, sizeof *p, pair_cmp);
    for (size_t i = 1; i < n; i++) {
        if (atp_cbor_key_cmp(p[i - 1].key, p[i].key) == 0) {
            int shown = p[i].key.len > 64 ? 64 : (int)p[i].key.len;
            return atp_err_set(err, ATP_EINVAL, 0, "duplicate map key \"%.*s\"", shown,
                               (const char *)p[i].key.ptr);
        }
    }
    return 0;
}

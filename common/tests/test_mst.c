/* test_mst.c: the Merkle search tree against the interop vectors (key heights, common prefixes,
 * example keys, the six commit-proof fixtures with proofs and inversion in every order), the
 * spec's worked examples (exact CIDs and bytes), property tests against a model and a rebuild
 * from scratch (random puts/updates/deletes, insertion order, diff, list options, reopen from
 * the store), missing blocks, and hand-corrupted nodes that the walk must reject. */
#include <cjson/cJSON.h>

#include "atp/cbor.h"
#include "atp/mst.h"
#include "t.h"

/* ---- helpers ---- */

static uint64_t prng_state;

static uint64_t prng(void)
{
    /* splitmix64 */
    uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t prng_below(size_t n)
{
    return (size_t)(prng() % n);
}

static atp_cid cid_str(const char *s)
{
    atp_cid c = {0, {0}};
    T_OK(atp_cid_parse(atp_slice_str(s), 0, &c, NULL));
    return c;
}

static atp_cid val_cid(uint32_t i)
{
    char s[32];
    atp_cid c;
    snprintf(s, sizeof s, "{\"v\":%u}", i);
    atp_cid_compute(&c, ATP_CODEC_DAG_CBOR, atp_slice_str(s));
    return c;
}

static void fmt_cid(const atp_cid *c, char out[ATP_CID_STR_MAX])
{
    atp_cid_format_to(c, out, ATP_CID_STR_MAX);
}

static atp_cid root_of(atp_mst *t)
{
    atp_cid c = {0, {0}};
    atp_err err;
    T_OKE(atp_mst_root(t, &c, &err), &err);
    return c;
}

#define T_CIDEQ(a, b)                                                                              \
    do {                                                                                           \
        atp_cid t__x = (a), t__y = (b);                                                            \
        char t__sx[ATP_CID_STR_MAX], t__sy[ATP_CID_STR_MAX];                                       \
        fmt_cid(&t__x, t__sx);                                                                     \
        fmt_cid(&t__y, t__sy);                                                                     \
        T_STREQ(t__sx, t__sy);                                                                     \
    } while (0)

static int put_block(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    return atp_blockstore_put((atp_blockstore *)ctx, cid, bytes, ATP_SLICE_LIT(""), NULL);
}

/* Stores the tree's new blocks in bs and marks them clean. */
static void save(atp_mst *t, atp_blockstore *bs)
{
    atp_err err;
    T_OKE(atp_mst_each_new_block(t, put_block, bs, &err), &err);
    atp_mst_mark_clean(t);
}

static void put_key(atp_mst *t, const char *key, const atp_cid *v)
{
    atp_err err;
    T_OKE(atp_mst_put(t, atp_slice_str(key), v, NULL, NULL, &err), &err);
}

static void del_key(atp_mst *t, const char *key)
{
    atp_err err;
    bool existed = false;
    T_OKE(atp_mst_delete(t, atp_slice_str(key), &existed, NULL, &err), &err);
    T_TRUE(existed);
}

/* A block collection (CID + copied bytes). */
typedef struct blockset {
    atp_cid cid[512];
    uint8_t *data[512];
    size_t len[512];
    size_t n;
} blockset;

static int bs_add(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    blockset *s = ctx;
    for (size_t i = 0; i < s->n; i++) {
        if (atp_cid_eq(&s->cid[i], cid)) {
            return 0;
        }
    }
    if (s->n == 512) {
        return ATP_ELIMIT;
    }
    T_TRUE(atp_cid_matches(cid, bytes));
    s->cid[s->n] = *cid;
    s->data[s->n] = atp_xmalloc(bytes.len + 1);
    memcpy(s->data[s->n], bytes.ptr, bytes.len);
    s->len[s->n++] = bytes.len;
    return 0;
}

static bool bs_has(const blockset *s, const atp_cid *c)
{
    for (size_t i = 0; i < s->n; i++) {
        if (atp_cid_eq(&s->cid[i], c)) {
            return true;
        }
    }
    return false;
}

static void bs_free(blockset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->data[i]);
    }
    s->n = 0;
}

static void bs_store(const blockset *s, atp_blockstore *bs)
{
    for (size_t i = 0; i < s->n; i++) {
        T_OK(put_block(bs, &s->cid[i], atp_slice_make(s->data[i], s->len[i])));
    }
}

/* ---- interop: heights, prefixes, example keys ---- */

static void test_key_heights(void)
{
    char *text = t_read_file(t_shared("interop/mst/key_heights.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *it;
    int n = 0;
    T_TRUE(root != NULL);
    cJSON_ArrayForEach(it, root)
    {
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(it, "key"));
        int h = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(it, "height"));
        T_TRUE(key != NULL);
        if (key) {
            T_EQ(atp_mst_key_height(atp_slice_str(key)), h);
            n++;
        }
    }
    cJSON_Delete(root);
    free(text);
    t_vectors("mst key heights", n);
}

/* cJSON strings stop at an embedded NUL; this file has some, so its strings are decoded here. */
static size_t json_str(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    p = strchr(p, '"');
    for (p = p ? p + 1 : ""; *p && *p != '"' && n < cap; p++) {
        if (*p == '\\' && p[1] == 'u') {
            out[n++] = (char)strtol((char[5]){p[2], p[3], p[4], p[5], 0}, NULL, 16);
            p += 5;
        } else if (*p == '\\') {
            out[n++] = *++p;
        } else {
            out[n++] = *p;
        }
    }
    return n;
}

static void test_common_prefix(void)
{
    char *text = t_read_file(t_shared("interop/mst/common_prefix.json"), NULL);
    int n = 0;
    for (const char *p = text ? strstr(text, "\"left\"") : NULL; p; p = strstr(p + 1, "\"left\"")) {
        char l[64], r[64];
        const char *rp = strstr(p, "\"right\""), *lp = strstr(p, "\"len\"");
        T_TRUE(rp && lp);
        if (!rp || !lp) {
            break;
        }
        size_t ll = json_str(p + 6, l, sizeof l), rl = json_str(rp + 7, r, sizeof r);
        size_t want = (size_t)strtoul(strchr(lp, ':') + 1, NULL, 10);
        T_EQ(atp_mst_common_prefix(atp_slice_make(l, ll), atp_slice_make(r, rl)), want);
        n++;
    }
    free(text);
    t_vectors("mst common prefix", n);
}

static char example_keys[200][16];
static int n_example_keys;

static void example_line(const char *line, size_t len, int lineno, void *ctx)
{
    (void)ctx;
    T_TRUE(len >= 2 && len < 16);
    if (len >= 2 && len < 16 && n_example_keys < 200) {
        if (atp_mst_key_height(atp_slice_make(line, len)) != (unsigned)(line[1] - '0')) {
            T_FAILF("example_keys.txt:%d: height of %s", lineno, line);
        }
        memcpy(example_keys[n_example_keys++], line, len + 1);
    }
}

static void test_example_keys(void)
{
    n_example_keys = 0;
    int n = t_each_line(t_shared("interop/mst/example_keys.txt"), example_line, NULL);
    t_vectors("mst example key heights", n);
    for (int i = 1; i < n_example_keys; i++) {
        T_TRUE(strcmp(example_keys[i - 1], example_keys[i]) < 0);
    }
}

/* Insertion order must not matter: the example keys in shuffled orders and the bulk build all
 * give one root. */
static void test_order_independence(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_cid v = val_cid(1), want;
    atp_slice keys[200];
    atp_cid vals[200];
    atp_mst *b = NULL;
    atp_err err;
    int n = n_example_keys, idx[200];
    for (int i = 0; i < n; i++) {
        keys[i] = atp_slice_str(example_keys[i]);
        vals[i] = v;
        idx[i] = i;
    }
    T_OKE(atp_mst_build_sorted(bs, NULL, keys, vals, (size_t)n, &b, &err), &err);
    want = root_of(b);
    prng_state = 7;
    for (int round = 0; round < 20; round++) {
        atp_mst *t = atp_mst_create(bs, NULL);
        for (int i = n - 1; i > 0; i--) {
            int j = (int)prng_below((size_t)i + 1), x = idx[i];
            idx[i] = idx[j];
            idx[j] = x;
        }
        for (int i = 0; i < n; i++) {
            put_key(t, example_keys[idx[i]], &v);
        }
        T_CIDEQ(root_of(t), want);
        atp_mst_destroy(t);
    }
    atp_mst_destroy(b);
    atp_blockstore_destroy(bs);
}

/* ---- spec worked examples ---- */

static const char *spec_r = "bafyreieawtmh7hwfrqpamqkodza5r62bbfhsepe2iyustgxhgbhi6b2lfi";

static void test_empty_tree(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_mst *t = atp_mst_create(bs, NULL);
    blockset s = {.n = 0};
    atp_err err;
    static const uint8_t empty[] = {0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6};
    T_CIDEQ(root_of(t), cid_str("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"));
    T_OKE(atp_mst_each_new_block(t, bs_add, &s, &err), &err);
    T_EQ(s.n, 1);
    T_MEMEQ(s.data[0], s.len[0], empty, sizeof empty);
    /* Deleting from the empty tree, and emptying a tree, give the empty root. */
    bool existed = true;
    T_OK(atp_mst_delete(t, ATP_SLICE_LIT("a/b"), &existed, NULL, &err));
    T_FALSE(existed);
    atp_cid v = val_cid(3);
    put_key(t, "a/b", &v);
    del_key(t, "a/b");
    T_CIDEQ(root_of(t), cid_str("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"));
    /* The empty tree round-trips through the store. */
    save(t, bs);
    atp_cid r = root_of(t);
    atp_mst *o = atp_mst_open(bs, &r, NULL);
    bool found = true;
    T_OKE(atp_mst_get(o, ATP_SLICE_LIT("a/b"), NULL, &found, &err), &err);
    T_FALSE(found);
    T_OKE(atp_mst_walk(o, NULL, NULL, NULL, &err), &err);
    atp_mst_destroy(o);
    bs_free(&s);
    atp_mst_destroy(t);
    atp_blockstore_destroy(bs);
}

static const blockset *find_block(const blockset *s, const char *cid, size_t *i)
{
    atp_cid c = cid_str(cid);
    for (*i = 0; *i < s->n; (*i)++) {
        if (atp_cid_eq(&s->cid[*i], &c)) {
            return s;
        }
    }
    T_FAILF("block %s missing", cid);
    return NULL;
}

static void test_spec_examples(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_mst *t = atp_mst_create(bs, NULL);
    atp_cid r = cid_str(spec_r);
    blockset s = {.n = 0};
    atp_err err;
    size_t i;
    put_key(t, "app.bsky.feed.post/3kznmn7xqxl22", &r);
    T_CIDEQ(root_of(t), cid_str("bafyreiggyd62cjzuwkul6lrjzkn3rcyzvuiny5nm2uuz5kwjx76cudaub4"));
    T_OKE(atp_mst_each_new_block(t, bs_add, &s, &err), &err);
    T_EQ(s.n, 1);
    T_EQ(s.len[0], 93);
    static const uint8_t head[] = {0xa2, 0x61, 0x65, 0x81, 0xa4, 0x61, 0x6b, 0x58, 0x20};
    T_MEMEQ(s.data[0], 9, head, 9);
    bs_free(&s);
    put_key(t, "app.bsky.feed.post/3kznmn7xqxm22", &r);
    put_key(t, "app.bsky.feed.post/3kznmn7xqxt22", &r);
    T_CIDEQ(root_of(t), cid_str("bafyreial3wlgvy5h5zcdwqoopkuxx6kp6cilxm2efqyjis7z56d3ieqvsu"));
    T_OKE(atp_mst_each_new_block(t, bs_add, &s, &err), &err);
    T_EQ(s.n, 3);
    if (find_block(&s, "bafyreigvn6cim3zl2nzu2atxyqmvuz7w6aqr4lmuayezr2ufxsnu7mtfwe", &i)) {
        static const uint8_t mid[] = {0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xd8, 0x2a};
        T_MEMEQ(s.data[i], 8, mid, 8); /* {e: [], l: link} */
    }
    if (find_block(&s, "bafyreigv4ayxywwcfbfhc5flzjd52qnef2lulzvzfbyt3jytuc36ebnb7q", &i)) {
        static const uint8_t second[] = {0x61, 0x6b, 0x43, 'm', '2', '2', 0x61, 0x70, 0x18, 0x1d};
        bool seen = false;
        for (size_t j = 0; j + sizeof second <= s.len[i]; j++) {
            seen = seen || memcmp(s.data[i] + j, second, sizeof second) == 0;
        }
        T_TRUE(seen);
    }
    bs_free(&s);
    atp_mst_destroy(t);
    atp_blockstore_destroy(bs);
}

/* ---- commit-proof fixtures ---- */

typedef struct fixture {
    const cJSON *keys, *adds, *dels, *proof;
    atp_cid leaf, before, after;
} fixture;

static void build_before(const fixture *f, atp_blockstore *bs, atp_mst **out, bool shuffle)
{
    atp_mst *t = atp_mst_create(bs, NULL);
    int n = cJSON_GetArraySize(f->keys), idx[64];
    for (int i = 0; i < n && i < 64; i++) {
        idx[i] = i;
    }
    for (int i = n - 1; shuffle && i > 0; i--) {
        int j = (int)prng_below((size_t)i + 1), x = idx[i];
        idx[i] = idx[j];
        idx[j] = x;
    }
    for (int i = 0; i < n && i < 64; i++) {
        put_key(t, cJSON_GetArrayItem(f->keys, idx[i])->valuestring, &f->leaf);
    }
    *out = t;
}

typedef struct inv_op {
    const char *key;
    bool was_add;
} inv_op;

/* Loads the after-tree from `bs` only and undoes the ops in the given order. */
static void invert(const fixture *f, atp_blockstore *bs, const inv_op *ops, const int *order,
                   int n)
{
    atp_mst *t = atp_mst_open(bs, &f->after, NULL);
    atp_err err;
    for (int i = 0; i < n; i++) {
        const inv_op *op = &ops[order[i]];
        bool existed = false;
        atp_cid prev;
        if (op->was_add) {
            T_OKE(atp_mst_delete(t, atp_slice_str(op->key), &existed, &prev, &err), &err);
            T_TRUE(existed);
            T_TRUE(existed && atp_cid_eq(&prev, &f->leaf));
        } else {
            T_OKE(atp_mst_put(t, atp_slice_str(op->key), &f->leaf, &existed, NULL, &err), &err);
            T_FALSE(existed);
        }
    }
    T_CIDEQ(root_of(t), f->before);
    atp_mst_destroy(t);
}

static int permute(const fixture *f, atp_blockstore *bs, const inv_op *ops, int *order, int k,
                   int n)
{
    if (k == n) {
        invert(f, bs, ops, order, n);
        return 1;
    }
    int count = 0;
    for (int i = k; i < n; i++) {
        int x = order[k];
        order[k] = order[i];
        order[i] = x;
        count += permute(f, bs, ops, order, k + 1, n);
        order[i] = order[k];
        order[k] = x;
    }
    return count;
}

static int run_fixture(const fixture *f)
{
    atp_blockstore *full = atp_blockstore_mem_create(), *slice = atp_blockstore_mem_create();
    atp_mst *t, *after;
    blockset proof = {.n = 0};
    inv_op ops[16];
    int n_ops = 0, order[16], orders;
    atp_err err;
    const cJSON *it;
    build_before(f, full, &t, false);
    T_CIDEQ(root_of(t), f->before);
    save(t, full);
    for (int round = 0; round < 5; round++) {
        atp_mst *s;
        build_before(f, full, &s, true);
        T_CIDEQ(root_of(s), f->before);
        atp_mst_destroy(s);
    }
    after = atp_mst_dup(t);
    cJSON_ArrayForEach(it, f->adds)
    {
        put_key(after, it->valuestring, &f->leaf);
        ops[n_ops++] = (inv_op){it->valuestring, true};
    }
    cJSON_ArrayForEach(it, f->dels)
    {
        del_key(after, it->valuestring);
        ops[n_ops++] = (inv_op){it->valuestring, false};
    }
    T_CIDEQ(root_of(after), f->after);
    for (int i = 0; i < n_ops; i++) {
        T_OKE(atp_mst_proof(after, atp_slice_str(ops[i].key), bs_add, &proof, &err), &err);
        order[i] = i;
    }
    cJSON_ArrayForEach(it, f->proof)
    {
        atp_cid c = cid_str(it->valuestring);
        if (!bs_has(&proof, &c)) {
            T_FAILF("proof lacks %s", it->valuestring);
        }
    }
    /* Inversion from the proof blocks alone. */
    bs_store(&proof, slice);
    orders = permute(f, slice, ops, order, 0, n_ops);
    bs_free(&proof);
    atp_mst_destroy(after);
    atp_mst_destroy(t);
    atp_blockstore_destroy(full);
    atp_blockstore_destroy(slice);
    return orders;
}

static void test_commit_proofs(void)
{
    char *text = t_read_file(t_shared("interop/firehose/commit-proof-fixtures.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *c;
    int n = 0, orders = 0;
    prng_state = 99;
    cJSON_ArrayForEach(c, root)
    {
        fixture f = {cJSON_GetObjectItem(c, "keys"), cJSON_GetObjectItem(c, "adds"),
                     cJSON_GetObjectItem(c, "dels"), cJSON_GetObjectItem(c, "blocksInProof"),
                     cid_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "leafValue"))),
                     cid_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "rootBeforeCommit"))),
                     cid_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "rootAfterCommit")))};
        int before_fail = t__cur_failed;
        t__cur_failed = 0;
        orders += run_fixture(&f);
        if (t__cur_failed) {
            printf("# failing fixture: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(c, "comment")));
        }
        t__cur_failed |= before_fail;
        n++;
    }
    cJSON_Delete(root);
    free(text);
    t_vectors("commit-proof fixtures", n);
    t_vectors("commit-proof inversion orders", orders);
}

/* ---- property tests against a model ---- */

#define M_KEYS 600

typedef struct model {
    char keys[M_KEYS][48];
    bool present[M_KEYS];
    uint32_t val[M_KEYS];
} model;

static int cmp_str48(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void model_init(model *m)
{
    static const char *colls[] = {"app.bsky.feed.post", "app.bsky.feed.like",
                                  "app.bsky.graph.follow", "com.example.thing"};
    static const char alpha[] = "234567abcdefghijklmnopqrstuvwxyz";
    memset(m, 0, sizeof *m);
    for (int i = 0; i < M_KEYS; i++) {
        char rkey[14];
        for (int j = 0; j < 13; j++) {
            rkey[j] = alpha[prng_below(32)];
        }
        rkey[13] = 0;
        snprintf(m->keys[i], sizeof m->keys[i], "%s/%s", colls[prng_below(4)], rkey);
    }
    qsort(m->keys, M_KEYS, sizeof m->keys[0], cmp_str48);
}

static atp_mst *model_build(const model *m, atp_blockstore *bs)
{
    static atp_slice keys[M_KEYS];
    static atp_cid vals[M_KEYS];
    size_t n = 0;
    atp_mst *t = NULL;
    atp_err err;
    for (int i = 0; i < M_KEYS; i++) {
        if (m->present[i]) {
            keys[n] = atp_slice_str(m->keys[i]);
            vals[n++] = val_cid(m->val[i]);
        }
    }
    T_OKE(atp_mst_build_sorted(bs, NULL, keys, vals, n, &t, &err), &err);
    return t;
}

static void model_op(model *m, atp_mst *t)
{
    int k = (int)prng_below(M_KEYS);
    atp_slice key = atp_slice_str(m->keys[k]);
    bool was = m->present[k], existed = !was;
    atp_cid prev = {0, {0}}, old = val_cid(m->val[k]);
    atp_err err;
    if (was && prng_below(2)) {
        T_OKE(atp_mst_delete(t, key, &existed, &prev, &err), &err);
        T_TRUE(existed);
        T_CIDEQ(prev, old);
        m->present[k] = false;
        return;
    }
    uint32_t nv = (uint32_t)prng_below(1000);
    atp_cid v = val_cid(nv);
    T_OKE(atp_mst_put(t, key, &v, &existed, &prev, &err), &err);
    T_EQ(existed, was);
    if (was) {
        T_CIDEQ(prev, old);
    }
    m->present[k] = true;
    m->val[k] = nv;
}

typedef struct list_check {
    const model *m;
    int idx[M_KEYS];
    int n, pos, bad;
} list_check;

static int list_cb(void *ctx, atp_slice key, const atp_cid *val)
{
    list_check *lc = ctx;
    if (lc->pos >= lc->n) {
        lc->bad++;
        return 0;
    }
    int i = lc->idx[lc->pos++];
    atp_cid want = val_cid(lc->m->val[i]);
    if (!atp_slice_eq_str(key, lc->m->keys[i]) || !atp_cid_eq(val, &want)) {
        lc->bad++;
    }
    return 0;
}

/* The model's answer to a list query, then the tree's. */
static void check_list(atp_mst *t, const model *m, const atp_mst_list_opts *o)
{
    list_check lc = {.m = m};
    atp_err err;
    for (int k = 0; k < M_KEYS; k++) {
        int i = o->reverse ? M_KEYS - 1 - k : k;
        atp_slice key = atp_slice_str(m->keys[i]);
        int c = o->after.len ? atp_slice_cmp(key, o->after) : (o->reverse ? -1 : 1);
        if (!m->present[i] || !atp_slice_has_prefix(key, o->prefix) ||
            (o->reverse ? c >= 0 : c <= 0)) {
            continue;
        }
        if (o->limit && (size_t)lc.n >= o->limit) {
            break;
        }
        lc.idx[lc.n++] = i;
    }
    T_OKE(atp_mst_list(t, o, list_cb, &lc, &err), &err);
    T_EQ(lc.bad, 0);
    T_EQ(lc.pos, lc.n);
}

static void check_lists(atp_mst *t, const model *m)
{
    static const char *prefixes[] = {"", "app.bsky.feed.", "app.bsky.feed.post/",
                                     "app.bsky.feed.post/3", "com.example.thing/z", "zzz", "a"};
    for (int i = 0; i < 12; i++) {
        atp_mst_list_opts o = {atp_slice_str(prefixes[prng_below(7)]), {NULL, 0},
                               prng_below(2) == 1, prng_below(3) ? 0 : prng_below(20) + 1};
        const char *after = m->keys[prng_below(M_KEYS)];
        if (prng_below(2)) {
            o.after = atp_slice_make(after, strlen(after) - prng_below(6));
        }
        check_list(t, m, &o);
    }
}

typedef struct node_list {
    atp_cid c[4096];
    size_t n;
    int leaves;
} node_list;

static int nl_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    node_list *nl = ctx;
    T_TRUE(atp_cid_matches(cid, bytes));
    if (nl->n < 4096) {
        nl->c[nl->n++] = *cid;
    }
    return 0;
}

static int nl_leaf(void *ctx, atp_slice key, const atp_cid *val)
{
    (void)key;
    (void)val;
    ((node_list *)ctx)->leaves++;
    return 0;
}

static bool nl_has(const node_list *nl, const atp_cid *c)
{
    for (size_t i = 0; i < nl->n; i++) {
        if (atp_cid_eq(&nl->c[i], c)) {
            return true;
        }
    }
    return false;
}

typedef struct diff_apply {
    atp_mst *target;
    node_list *a_nodes, *b_nodes;
    int ops, new_nodes, bad;
    char last[64];
} diff_apply;

static int da_op(void *ctx, const atp_mst_op *op)
{
    diff_apply *d = ctx;
    atp_err err;
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)op->key.len, (const char *)op->key.ptr);
    d->bad += d->ops > 0 && strcmp(d->last, key) >= 0; /* key order */
    memcpy(d->last, key, sizeof key);
    d->ops++;
    bool existed;
    atp_cid prev;
    if (op->kind == ATP_MST_DELETE) {
        T_OKE(atp_mst_delete(d->target, op->key, &existed, &prev, &err), &err);
        d->bad += !existed || !atp_cid_eq(&prev, &op->old);
    } else {
        T_OKE(atp_mst_put(d->target, op->key, &op->val, &existed, &prev, &err), &err);
        d->bad += existed != (op->kind == ATP_MST_UPDATE);
        d->bad += existed && !atp_cid_eq(&prev, &op->old);
    }
    return 0;
}

static int da_node(void *ctx, const atp_cid *cid, atp_slice bytes)
{
    diff_apply *d = ctx;
    T_TRUE(atp_cid_matches(cid, bytes));
    d->bad += !nl_has(d->b_nodes, cid) || nl_has(d->a_nodes, cid);
    d->new_nodes++;
    return 0;
}

/* diff(a, b) applied to a dup of a gives b; the reported nodes are exactly b's minus a's. */
static void check_diff(atp_mst *a, atp_mst *b)
{
    static node_list na, nb;
    atp_err err;
    na.n = nb.n = 0;
    T_OKE(atp_mst_walk(a, nl_node, NULL, &na, &err), &err);
    T_OKE(atp_mst_walk(b, nl_node, NULL, &nb, &err), &err);
    diff_apply d = {atp_mst_dup(a), &na, &nb, 0, 0, 0, ""};
    T_OKE(atp_mst_diff(a, b, da_op, da_node, &d, &err), &err);
    T_EQ(d.bad, 0);
    T_CIDEQ(root_of(d.target), root_of(b));
    int want_new = 0;
    for (size_t i = 0; i < nb.n; i++) {
        want_new += !nl_has(&na, &nb.c[i]);
    }
    T_EQ(d.new_nodes, want_new);
    atp_mst_destroy(d.target);
}

/* Reopens the tree from its root CID over the store: every node decodes and validates. */
static void check_reopen(atp_mst *t, const model *m, atp_blockstore *bs)
{
    static node_list nl;
    atp_err err;
    int want = 0;
    save(t, bs);
    atp_cid r = root_of(t);
    atp_mst *o = atp_mst_open(bs, &r, NULL);
    nl.n = 0;
    nl.leaves = 0;
    T_OKE(atp_mst_walk(o, nl_node, nl_leaf, &nl, &err), &err);
    for (int i = 0; i < M_KEYS; i++) {
        want += m->present[i];
    }
    T_EQ(nl.leaves, want);
    for (int i = 0; i < 20; i++) {
        int k = (int)prng_below(M_KEYS);
        bool found;
        atp_cid v;
        T_OKE(atp_mst_get(o, atp_slice_str(m->keys[k]), &v, &found, &err), &err);
        T_EQ(found, m->present[k]);
        if (found && m->present[k]) {
            T_CIDEQ(v, val_cid(m->val[k]));
        }
    }
    check_lists(o, m);
    atp_mst_destroy(o);
}

static void test_random_ops(void)
{
    static model m;
    int checkpoints = 0;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        prng_state = seed * 1000003;
        model_init(&m);
        atp_blockstore *bs = atp_blockstore_mem_create();
        atp_mst *t = atp_mst_create(bs, NULL), *prev = atp_mst_dup(t);
        for (int op = 1; op <= 3000; op++) {
            model_op(&m, t);
            if (op % 250 != 0) {
                continue;
            }
            atp_mst *b = model_build(&m, bs);
            T_CIDEQ(root_of(t), root_of(b));
            atp_mst_destroy(b);
            check_diff(prev, t);
            check_diff(t, prev);
            check_reopen(t, &m, bs);
            atp_mst_destroy(prev);
            prev = atp_mst_dup(t);
            checkpoints++;
        }
        atp_mst_destroy(prev);
        atp_mst_destroy(t);
        atp_blockstore_destroy(bs);
    }
    printf("# property checkpoints: %d\n", checkpoints);
}

/* Diff against NULL (the empty tree) lists every key as a create and every node as new. */
static void test_diff_from_empty(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_mst *t = atp_mst_create(bs, NULL);
    atp_err err;
    for (int i = 0; i < n_example_keys; i++) {
        atp_cid v = val_cid((uint32_t)i);
        put_key(t, example_keys[i], &v);
    }
    atp_mst *empty = atp_mst_create(bs, NULL);
    static node_list nb, none;
    nb.n = none.n = 0;
    T_OKE(atp_mst_walk(t, nl_node, NULL, &nb, &err), &err);
    diff_apply d = {atp_mst_dup(empty), &none, &nb, 0, 0, 0, ""};
    T_OKE(atp_mst_diff(NULL, t, da_op, da_node, &d, &err), &err);
    T_EQ(d.ops, n_example_keys);
    T_EQ((size_t)d.new_nodes, nb.n);
    T_EQ(d.bad, 0);
    T_CIDEQ(root_of(d.target), root_of(t));
    atp_mst_destroy(d.target);
    /* Equal trees: nothing. */
    atp_mst *same = atp_mst_dup(t);
    d = (diff_apply){atp_mst_dup(t), &nb, &nb, 0, 0, 0, ""};
    T_OKE(atp_mst_diff(t, same, da_op, da_node, &d, &err), &err);
    T_EQ(d.ops, 0);
    T_EQ(d.new_nodes, 0);
    atp_mst_destroy(d.target);
    atp_mst_destroy(same);
    atp_mst_destroy(empty);
    atp_mst_destroy(t);
    atp_blockstore_destroy(bs);
}

/* ---- missing blocks, failed edits, dups ---- */

static void test_missing_node(void)
{
    atp_blockstore *full = atp_blockstore_mem_create(), *part = atp_blockstore_mem_create();
    atp_mst *t = atp_mst_create(full, NULL);
    static blockset s;
    atp_err err;
    s.n = 0;
    for (int i = 0; i < n_example_keys; i++) {
        atp_cid v = val_cid((uint32_t)i);
        put_key(t, example_keys[i], &v);
    }
    T_OKE(atp_mst_each_new_block(t, bs_add, &s, &err), &err);
    T_TRUE(s.n > 3);
    atp_cid root = root_of(t);
    /* Drop one non-root node. */
    size_t drop = s.n / 2;
    T_FALSE(atp_cid_eq(&s.cid[drop], &root));
    for (size_t i = 0; i < s.n; i++) {
        if (i != drop) {
            T_OK(put_block(part, &s.cid[i], atp_slice_make(s.data[i], s.len[i])));
        }
    }
    atp_mst *o = atp_mst_open(part, &root, NULL);
    T_EQ(atp_mst_walk(o, NULL, NULL, NULL, &err), ATP_ENOTFOUND);
    T_TRUE(strstr(err.msg, "not found") != NULL);
    /* Some key lives under the missing node: get fails for it, and an edit there fails and
     * leaves the tree as it was. */
    int missing = 0;
    for (int i = 0; i < n_example_keys; i++) {
        bool found;
        int rc = atp_mst_get(o, atp_slice_str(example_keys[i]), NULL, &found, &err);
        T_TRUE(rc == 0 || rc == ATP_ENOTFOUND);
        if (rc == ATP_ENOTFOUND) {
            atp_cid v = val_cid(9999);
            missing++;
            T_EQ(atp_mst_put(o, atp_slice_str(example_keys[i]), &v, NULL, NULL, &err),
                 ATP_ENOTFOUND);
            T_EQ(atp_mst_delete(o, atp_slice_str(example_keys[i]), NULL, NULL, &err),
                 ATP_ENOTFOUND);
            T_CIDEQ(root_of(o), root);
        } else {
            T_TRUE(found);
        }
    }
    T_TRUE(missing > 0);
    /* Once the block arrives, everything works. */
    T_OK(put_block(part, &s.cid[drop], atp_slice_make(s.data[drop], s.len[drop])));
    T_OKE(atp_mst_walk(o, NULL, NULL, NULL, &err), &err);
    /* A root CID that cannot be a node. */
    atp_cid raw;
    atp_cid_compute(&raw, ATP_CODEC_RAW, atp_slice_str("x"));
    atp_mst *bad = atp_mst_open(part, &raw, NULL);
    bool found;
    T_EQ(atp_mst_get(bad, ATP_SLICE_LIT("a/b"), NULL, &found, &err), ATP_EINVAL);
    T_EQ(atp_mst_root(bad, &raw, &err), ATP_EINVAL);
    atp_mst_destroy(bad);
    bs_free(&s);
    atp_mst_destroy(o);
    atp_mst_destroy(t);
    atp_blockstore_destroy(full);
    atp_blockstore_destroy(part);
}

static void test_dup_and_keys(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_mst *a = atp_mst_create(bs, NULL);
    atp_cid v1 = val_cid(1), v2 = val_cid(2), got;
    atp_err err;
    bool found, existed;
    put_key(a, "app.bsky.feed.post/aaa", &v1);
    atp_cid ra = root_of(a);
    atp_mst *b = atp_mst_dup(a);
    put_key(b, "app.bsky.feed.post/aaa", &v2);
    put_key(b, "app.bsky.feed.post/bbb", &v2);
    T_CIDEQ(root_of(a), ra);
    T_OK(atp_mst_get(a, ATP_SLICE_LIT("app.bsky.feed.post/aaa"), &got, &found, &err));
    T_TRUE(found);
    T_CIDEQ(got, v1);
    T_OK(atp_mst_get(a, ATP_SLICE_LIT("app.bsky.feed.post/bbb"), &got, &found, &err));
    T_FALSE(found);
    /* An update to the same value changes nothing, and reports the old value. */
    atp_cid rb = root_of(b);
    atp_mst_mark_clean(b);
    T_OK(atp_mst_put(b, ATP_SLICE_LIT("app.bsky.feed.post/bbb"), &v2, &existed, &got, &err));
    T_TRUE(existed);
    T_CIDEQ(got, v2);
    T_CIDEQ(root_of(b), rb);
    blockset s = {.n = 0};
    T_OK(atp_mst_each_new_block(b, bs_add, &s, &err));
    T_EQ(s.n, 0);
    /* Invalid keys are rejected, the tree unchanged. */
    static const char *bad[] = {"", "nokey", "a/b/c", "/b", "a/", "a/.", "a/..", "./b",
                                "a b/c", "a/b\xc3\xa9", "a/b#c", "a/b?"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T_EQ(atp_mst_put(b, atp_slice_str(bad[i]), &v1, NULL, NULL, &err), ATP_EINVAL);
        T_FALSE(atp_mst_key_is_valid(atp_slice_str(bad[i])));
    }
    T_TRUE(atp_mst_key_is_valid(ATP_SLICE_LIT("a.b-c_d~e:f/...x")));
    char longkey[1100];
    memset(longkey, 'a', sizeof longkey);
    longkey[10] = '/';
    T_EQ(atp_mst_put(b, atp_slice_make(longkey, 1025), &v1, NULL, NULL, &err), ATP_ELIMIT);
    T_OK(atp_mst_put(b, atp_slice_make(longkey, 1024), &v1, NULL, NULL, &err));
    T_OK(atp_mst_delete(b, atp_slice_make(longkey, 1024), &existed, NULL, &err));
    T_TRUE(existed);
    T_CIDEQ(root_of(b), rb);
    /* Unsorted or duplicate input to the bulk build. */
    atp_slice keys[2] = {ATP_SLICE_LIT("a/b"), ATP_SLICE_LIT("a/a")};
    atp_cid vals[2] = {v1, v2};
    atp_mst *out = NULL;
    T_EQ(atp_mst_build_sorted(bs, NULL, keys, vals, 2, &out, &err), ATP_EINVAL);
    keys[1] = keys[0];
    T_EQ(atp_mst_build_sorted(bs, NULL, keys, vals, 2, &out, &err), ATP_EINVAL);
    T_TRUE(out == NULL);
    T_OK(atp_mst_build_sorted(bs, NULL, keys, vals, 0, &out, &err));
    T_CIDEQ(root_of(out), cid_str("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"));
    atp_mst_destroy(out);
    bs_free(&s);
    atp_mst_destroy(a);
    atp_mst_destroy(b);
    atp_blockstore_destroy(bs);
}

/* ---- hand-corrupted nodes ---- */

typedef struct raw_ent {
    const char *k; /* suffix as written */
    int p;
    const atp_cid *t;
    const atp_cid *v;
} raw_ent;

static void put_link_or_null(atp_buf *b, const atp_cid *c)
{
    if (c) {
        atp_cbor_put_link(b, c);
    } else {
        atp_cbor_put_null(b);
    }
}

static atp_cid raw_node(atp_blockstore *bs, const raw_ent *e, size_t n, const atp_cid *l)
{
    atp_buf b;
    atp_cid c;
    atp_buf_init(&b, 1 << 20);
    atp_cbor_put_map(&b, 2);
    atp_cbor_put_cstr(&b, "e");
    atp_cbor_put_array(&b, n);
    for (size_t i = 0; i < n; i++) {
        atp_cbor_put_map(&b, 4);
        atp_cbor_put_cstr(&b, "k");
        atp_cbor_put_bytes(&b, atp_slice_str(e[i].k));
        atp_cbor_put_cstr(&b, "p");
        atp_cbor_put_int(&b, e[i].p);
        atp_cbor_put_cstr(&b, "t");
        put_link_or_null(&b, e[i].t);
        atp_cbor_put_cstr(&b, "v");
        atp_cbor_put_link(&b, e[i].v);
    }
    atp_cbor_put_cstr(&b, "l");
    put_link_or_null(&b, l);
    T_EQ(b.err, 0);
    atp_cid_compute(&c, ATP_CODEC_DAG_CBOR, atp_buf_slice(&b));
    T_OK(put_block(bs, &c, atp_buf_slice(&b)));
    atp_buf_release(&b);
    return c;
}

static atp_cid raw_bytes(atp_blockstore *bs, const uint8_t *p, size_t n)
{
    atp_cid c;
    atp_cid_compute(&c, ATP_CODEC_DAG_CBOR, atp_slice_make(p, n));
    T_OK(put_block(bs, &c, atp_slice_make(p, n)));
    return c;
}

static int walk_rc(atp_blockstore *bs, const atp_cid *root, atp_err *err)
{
    atp_mst *t = atp_mst_open(bs, root, NULL);
    int rc = atp_mst_walk(t, NULL, NULL, NULL, err);
    atp_mst_destroy(t);
    return rc;
}

#define T_REJECT(bs, root, code, what)                                                             \
    do {                                                                                           \
        atp_err t__e;                                                                              \
        atp_cid t__r = (root);                                                                     \
        int t__rc = walk_rc((bs), &t__r, &t__e);                                                   \
        if (t__rc != (code)) {                                                                     \
            T_FAILF("%s: rc %d (%s), want %d", what, t__rc, t__e.msg, code);                       \
        }                                                                                          \
    } while (0)

static void test_corrupt_nodes(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_cid v = val_cid(1), raw;
    atp_cid_compute(&raw, ATP_CODEC_RAW, atp_slice_str("not a node"));
    /* Heights: A0 C0 E0 G0 = 0, B1 F1 = 1, D2 = 2 (example_keys.txt). */
    raw_ent ok1[] = {{"A0/374913", 0, NULL, &v}, {"C0/451630", 0, NULL, &v}};
    atp_cid good = raw_node(bs, ok1, 2, NULL);
    atp_err err;
    T_OKE(walk_rc(bs, &good, &err), &err);

    raw_ent layer[] = {{"A0/374913", 0, NULL, &v}, {"B1/986427", 0, NULL, &v}};
    T_REJECT(bs, raw_node(bs, layer, 2, NULL), ATP_EINVAL, "mixed layers");
    raw_ent unsorted[] = {{"C0/451630", 0, NULL, &v}, {"A0/374913", 0, NULL, &v}};
    T_REJECT(bs, raw_node(bs, unsorted, 2, NULL), ATP_EINVAL, "unsorted");
    raw_ent dup[] = {{"A0/374913", 0, NULL, &v}, {"", 9, NULL, &v}};
    T_REJECT(bs, raw_node(bs, dup, 2, NULL), ATP_EINVAL, "duplicate");
    raw_ent bigp[] = {{"A0/374913", 0, NULL, &v}, {"0/451630", 10, NULL, &v}};
    T_REJECT(bs, raw_node(bs, bigp, 2, NULL), ATP_EINVAL, "p beyond previous key");
    raw_ent firstp[] = {{"0/374913", 1, NULL, &v}};
    T_REJECT(bs, raw_node(bs, firstp, 1, NULL), ATP_EINVAL, "first p not 0");
    /* A height-0 key sharing "A0/37" with A0/374913, written without compression. */
    char near[16] = "A0/37x";
    for (char c = 'a'; c <= 'z' && atp_mst_key_height(atp_slice_str(near)) != 0; c++) {
        near[5] = c;
    }
    T_EQ(atp_mst_key_height(atp_slice_str(near)), 0);
    raw_ent lazyp[] = {{"A0/374913", 0, NULL, &v}, {near, 0, NULL, &v}};
    T_REJECT(bs, raw_node(bs, lazyp, 2, NULL), ATP_EINVAL, "p not maximal");
    raw_ent tightp[] = {{"A0/374913", 0, NULL, &v}, {near + 5, 5, NULL, &v}};
    T_OKE(walk_rc(bs, (atp_cid[]){raw_node(bs, tightp, 2, NULL)}, &err), &err);
    raw_ent badkey[] = {{"A0374913", 0, NULL, &v}};
    T_REJECT(bs, raw_node(bs, badkey, 1, NULL), ATP_EINVAL, "key without slash");
    /* Layer-0 node with a subtree link; a child link of the wrong codec. */
    raw_ent withl[] = {{"A0/374913", 0, &good, &v}};
    T_REJECT(bs, raw_node(bs, withl, 1, NULL), ATP_EINVAL, "layer 0 with link");
    raw_ent b1[] = {{"B1/986427", 0, NULL, &v}};
    T_REJECT(bs, raw_node(bs, b1, 1, &raw), ATP_EINVAL, "raw-codec child link");
    /* Layer-1 root with a valid left child, then the wrong things below it. */
    raw_ent a0[] = {{"A0/374913", 0, NULL, &v}};
    atp_cid leaf_a = raw_node(bs, a0, 1, NULL);
    T_OKE(walk_rc(bs, (atp_cid[]){raw_node(bs, b1, 1, &leaf_a)}, &err), &err);
    raw_ent c0[] = {{"C0/451630", 0, NULL, &v}};
    atp_cid leaf_c = raw_node(bs, c0, 1, NULL);
    T_REJECT(bs, raw_node(bs, b1, 1, &leaf_c), ATP_EINVAL, "child key outside range");
    atp_cid empty = raw_node(bs, NULL, 0, NULL);
    T_OKE(walk_rc(bs, &empty, &err), &err); /* the empty repo */
    T_REJECT(bs, raw_node(bs, b1, 1, &empty), ATP_EINVAL, "empty non-root node");
    T_REJECT(bs, raw_node(bs, NULL, 0, &leaf_a), ATP_EINVAL, "untrimmed root");
    /* A D2 root whose left skips layer 1 and points straight to layer 0. */
    raw_ent d2[] = {{"D2/269196", 0, NULL, &v}};
    T_REJECT(bs, raw_node(bs, d2, 1, &leaf_a), ATP_EINVAL, "skipped layer");
    atp_cid mid = raw_node(bs, NULL, 0, &leaf_a);
    T_OKE(walk_rc(bs, (atp_cid[]){raw_node(bs, d2, 1, &mid)}, &err), &err);
    /* A subtree link to a block that is not there. */
    atp_cid ghost;
    atp_cid_compute(&ghost, ATP_CODEC_DAG_CBOR, atp_slice_str("ghost"));
    T_REJECT(bs, raw_node(bs, b1, 1, &ghost), ATP_ENOTFOUND, "missing child");
    atp_blockstore_destroy(bs);
}

static void test_corrupt_bytes_and_limits(void)
{
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_cid v = val_cid(1);
    atp_err err;
    raw_ent ok1[] = {{"A0/374913", 0, NULL, &v}, {"C0/451630", 0, NULL, &v}};
    atp_cid good = raw_node(bs, ok1, 2, NULL);
    /* Non-canonical forms of the valid empty node {e:[], l:null}. */
    static const uint8_t swapped[] = {0xa2, 0x61, 0x6c, 0xf6, 0x61, 0x65, 0x80};
    static const uint8_t longhead[] = {0xa2, 0x61, 0x65, 0x98, 0x00, 0x61, 0x6c, 0xf6};
    static const uint8_t extra[] = {0xa3, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6, 0x61, 0x78, 0xf6};
    static const uint8_t trailing[] = {0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6, 0x00};
    static const uint8_t indef[] = {0xa2, 0x61, 0x65, 0x9f, 0xff, 0x61, 0x6c, 0xf6};
    static const uint8_t missing_l[] = {0xa1, 0x61, 0x65, 0x80};
    static const uint8_t trunc[] = {0xa2, 0x61, 0x65, 0x81, 0xa4, 0x61};
    static const uint8_t notmap[] = {0x80};
    T_REJECT(bs, raw_bytes(bs, swapped, sizeof swapped), ATP_EINVAL, "field order");
    T_REJECT(bs, raw_bytes(bs, longhead, sizeof longhead), ATP_EINVAL, "non-minimal head");
    T_REJECT(bs, raw_bytes(bs, extra, sizeof extra), ATP_EINVAL, "extra field");
    T_REJECT(bs, raw_bytes(bs, trailing, sizeof trailing), ATP_EINVAL, "trailing byte");
    T_REJECT(bs, raw_bytes(bs, indef, sizeof indef), ATP_EINVAL, "indefinite array");
    T_REJECT(bs, raw_bytes(bs, missing_l, sizeof missing_l), ATP_EINVAL, "missing l");
    T_REJECT(bs, raw_bytes(bs, trunc, sizeof trunc), ATP_ETRUNC, "truncated");
    T_REJECT(bs, raw_bytes(bs, notmap, sizeof notmap), ATP_EINVAL, "not a map");
    /* Limits: entries per node and node size. */
    atp_mst_limits lim = atp_mst_limits_default;
    lim.max_entries = 1;
    atp_mst *t = atp_mst_open(bs, &good, &lim);
    T_EQ(atp_mst_walk(t, NULL, NULL, NULL, &err), ATP_ELIMIT);
    atp_mst_destroy(t);
    lim = atp_mst_limits_default;
    lim.max_node = 20;
    t = atp_mst_open(bs, &good, &lim);
    T_EQ(atp_mst_walk(t, NULL, NULL, NULL, &err), ATP_ELIMIT);
    atp_mst_destroy(t);
    lim = atp_mst_limits_default;
    lim.max_key = 8;
    t = atp_mst_open(bs, &good, &lim);
    T_EQ(atp_mst_walk(t, NULL, NULL, NULL, &err), ATP_ELIMIT);
    atp_mst_destroy(t);
    atp_blockstore_destroy(bs);
}

int main(void)
{
    T_RUN(test_key_heights);
    T_RUN(test_common_prefix);
    T_RUN(test_example_keys);
    T_RUN(test_order_independence);
    T_RUN(test_empty_tree);
    T_RUN(test_spec_examples);
    T_RUN(test_commit_proofs);
    T_RUN(test_random_ops);
    T_RUN(test_diff_from_empty);
    T_RUN(test_missing_node);
    T_RUN(test_dup_and_keys);
    T_RUN(test_corrupt_nodes);
    T_RUN(test_corrupt_bytes_and_limits);
    return t_done();
}

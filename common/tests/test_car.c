/* test_car.c: CAR v1 reader and writer: the atproto CAR fixture (read and write back byte for
 * byte), the spec's 532-byte example repo, streaming in every chunk size, and every rejection
 * (truncation, flipped bytes, limits, bad headers, bad sections, garbage). */
#include <cjson/cJSON.h>

#include "atp/car.h"
#include "atp/cbor.h"
#include "atp/multibase.h"
#include "atp/sha256.h"
#include "t.h"

/* ---- helpers ---- */

typedef struct blk_copy {
    atp_cid cid;
    uint8_t *data;
    size_t len;
    bool verified;
    uint64_t offset;
} blk_copy;

typedef struct car_result {
    int rc; /* 0, or the first error */
    atp_cid roots[8];
    size_t n_roots;
    blk_copy blocks[64];
    size_t n_blocks;
} car_result;

static void result_free(car_result *res)
{
    for (size_t i = 0; i < res->n_blocks; i++) {
        free(res->blocks[i].data);
    }
    res->n_blocks = 0;
}

static void keep_block(car_result *res, const atp_car_block *b)
{
    if (res->n_blocks < 64) {
        blk_copy *c = &res->blocks[res->n_blocks++];
        c->cid = b->cid;
        c->len = b->data.len;
        c->data = atp_xmalloc(b->data.len);
        if (b->data.len) {
            memcpy(c->data, b->data.ptr, b->data.len);
        }
        c->verified = b->verified;
        c->offset = b->offset;
    }
}

static void keep_roots(car_result *res, const atp_cid *roots, size_t n)
{
    res->n_roots = n < 8 ? n : 8;
    for (size_t i = 0; i < res->n_roots; i++) {
        res->roots[i] = roots[i];
    }
}

/* Whole-slice read. Checks that every block is zero-copy (points into `car`). */
static void read_mem(atp_slice car, const atp_car_limits *lim, unsigned flags, car_result *res,
                     atp_err *err)
{
    atp_car_mem m;
    atp_car_block b;
    memset(res, 0, sizeof *res);
    res->rc = atp_car_mem_open(&m, car, lim, flags, err);
    if (res->rc < 0) {
        return;
    }
    keep_roots(res, m.roots, m.n_roots);
    int rc;
    while ((rc = atp_car_mem_next(&m, &b, err)) == ATP_CAR_BLOCK) {
        T_TRUE(b.data.len == 0 || (b.data.ptr >= car.ptr && b.data.ptr + b.data.len <= car.ptr + car.len));
        keep_block(res, &b);
    }
    res->rc = rc;
    atp_car_mem_close(&m);
}

/* Streaming read, `chunk` bytes per call. */
static void read_stream(atp_slice car, size_t chunk, const atp_car_limits *lim, unsigned flags,
                        car_result *res, atp_err *err)
{
    atp_car_reader *r = atp_car_reader_create(lim, flags);
    memset(res, 0, sizeof *res);
    for (size_t off = 0; off < car.len && res->rc == 0;) {
        size_t n = car.len - off < chunk ? car.len - off : chunk, used = 0;
        atp_slice in = atp_slice_make(car.ptr + off, n);
        while (in.len > 0) {
            atp_car_block b;
            int rc = atp_car_reader_next(r, in, &used, &b, err);
            T_TRUE(used <= in.len);
            in = atp_slice_sub(in, used, in.len - used);
            if (rc == ATP_CAR_HEADER) {
                size_t nr;
                const atp_cid *roots = atp_car_reader_roots(r, &nr);
                keep_roots(res, roots, nr);
            } else if (rc == ATP_CAR_BLOCK) {
                keep_block(res, &b);
            } else if (rc == ATP_EAGAIN) {
                T_EQ(in.len, 0); /* EAGAIN means everything was taken */
            } else {
                res->rc = rc;
                break;
            }
        }
        off += n;
    }
    if (res->rc == 0) {
        res->rc = atp_car_reader_finish(r, err);
    }
    T_EQ(atp_car_reader_block_count(r), res->n_blocks);
    atp_car_reader_destroy(r);
}

static bool results_equal(const car_result *a, const car_result *b)
{
    if (a->rc != b->rc || a->n_roots != b->n_roots || a->n_blocks != b->n_blocks) {
        return false;
    }
    for (size_t i = 0; i < a->n_roots; i++) {
        if (!atp_cid_eq(&a->roots[i], &b->roots[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_blocks; i++) {
        const blk_copy *x = &a->blocks[i], *y = &b->blocks[i];
        if (!atp_cid_eq(&x->cid, &y->cid) || x->len != y->len || x->offset != y->offset ||
            x->verified != y->verified || (x->len && memcmp(x->data, y->data, x->len) != 0)) {
            return false;
        }
    }
    return true;
}

static size_t unhex(const char *hex, uint8_t *dst, size_t cap)
{
    size_t n = 0;
    T_OK(atp_hex_decode(atp_slice_str(hex), dst, cap, &n, NULL));
    return n;
}

/* ---- the atproto fixture ---- */

typedef struct fixture {
    uint8_t *car;
    size_t car_len;
    atp_cid root;
    atp_cid cids[16];
    uint8_t *bytes[16];
    size_t lens[16];
    size_t n;
} fixture;

static uint8_t *b64_dup(const char *s, size_t *len)
{
    size_t cap = atp_base_decoded_max(ATP_BASE64, strlen(s)) + 1;
    uint8_t *p = atp_xmalloc(cap);
    T_OK(atp_base_decode(ATP_BASE64, atp_slice_str(s), p, cap, len, NULL));
    return p;
}

static bool load_fixture(fixture *f)
{
    char *text = t_read_file(t_shared("atproto-fixtures/repo/car-file-fixtures.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *c = cJSON_GetArrayItem(root, 0), *b;
    memset(f, 0, sizeof *f);
    if (!c) {
        T_FAILF("car fixture missing");
        cJSON_Delete(root);
        free(text);
        return false;
    }
    T_OK(atp_cid_parse(atp_slice_str(cJSON_GetStringValue(cJSON_GetObjectItem(c, "root"))), 0,
                       &f->root, NULL));
    f->car = b64_dup(cJSON_GetStringValue(cJSON_GetObjectItem(c, "car")), &f->car_len);
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(c, "blocks"))
    {
        if (f->n == 16) {
            break;
        }
        T_OK(atp_cid_parse(atp_slice_str(cJSON_GetStringValue(cJSON_GetObjectItem(b, "cid"))),
                           0, &f->cids[f->n], NULL));
        f->bytes[f->n] = b64_dup(cJSON_GetStringValue(cJSON_GetObjectItem(b, "bytes")),
                                 &f->lens[f->n]);
        f->n++;
    }
    cJSON_Delete(root);
    free(text);
    return true;
}

static void free_fixture(fixture *f)
{
    free(f->car);
    for (size_t i = 0; i < f->n; i++) {
        free(f->bytes[i]);
    }
}

static void test_car_fixture_read(void)
{
    fixture f;
    car_result res;
    atp_err err;
    if (!load_fixture(&f)) {
        return;
    }
    T_EQ(f.car_len, 1179);
    read_mem(atp_slice_make(f.car, f.car_len), NULL, 0, &res, &err);
    T_OKE(res.rc, &err);
    T_EQ(res.n_roots, 1);
    T_TRUE(atp_cid_eq(&res.roots[0], &f.root));
    T_EQ(res.n_blocks, f.n);
    for (size_t i = 0; i < f.n && i < res.n_blocks; i++) {
        T_TRUE(atp_cid_eq(&res.blocks[i].cid, &f.cids[i]));
        T_MEMEQ(res.blocks[i].data, res.blocks[i].len, f.bytes[i], f.lens[i]);
        T_TRUE(res.blocks[i].verified);
        T_TRUE(atp_cid_matches(&f.cids[i], atp_slice_make(f.bytes[i], f.lens[i])));
    }
    T_EQ(res.blocks[0].offset, 59); /* right after varint(58) + 58-byte header */
    t_vectors("car-file-fixtures blocks", (int)res.n_blocks);
    result_free(&res);
    free_fixture(&f);
}

static int collect_sink(void *ctx, atp_slice bytes)
{
    atp_buf_append_slice(ctx, bytes);
    return 0;
}

static void test_car_fixture_write(void)
{
    fixture f;
    atp_buf out, streamed;
    atp_car_writer w, ws;
    if (!load_fixture(&f)) {
        return;
    }
    atp_buf_init(&out, 0);
    atp_buf_init(&streamed, 0);
    atp_car_writer_init_buf(&w, &out);
    atp_car_writer_init_fn(&ws, collect_sink, &streamed);
    T_OK(atp_car_write_header(&w, &f.root, 1));
    T_OK(atp_car_write_header(&ws, &f.root, 1));
    for (size_t i = 0; i < f.n; i++) {
        atp_cid c;
        T_OK(atp_car_write_block(&w, &f.cids[i], atp_slice_make(f.bytes[i], f.lens[i])));
        T_OK(atp_car_write_data(&ws, ATP_CODEC_DAG_CBOR, atp_slice_make(f.bytes[i], f.lens[i]),
                                &c));
        T_TRUE(atp_cid_eq(&c, &f.cids[i]));
    }
    T_MEMEQ(out.ptr, out.len, f.car, f.car_len);
    T_MEMEQ(streamed.ptr, streamed.len, f.car, f.car_len);
    T_EQ(atp_car_writer_written(&w), f.car_len);
    T_EQ(atp_car_writer_written(&ws), f.car_len);
    atp_buf_release(&out);
    atp_buf_release(&streamed);
    free_fixture(&f);
}

static void test_car_streaming_matches(void)
{
    static const size_t chunks[] = {1, 2, 3, 5, 7, 13, 36, 37, 58, 59, 60, 64, 100, 1000, 5000};
    fixture f;
    car_result whole, part;
    atp_err err;
    if (!load_fixture(&f)) {
        return;
    }
    read_mem(atp_slice_make(f.car, f.car_len), NULL, 0, &whole, &err);
    T_EQ(whole.rc, 0);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        read_stream(atp_slice_make(f.car, f.car_len), chunks[i], NULL, 0, &part, &err);
        T_OKE(part.rc, &err);
        if (!results_equal(&whole, &part)) {
            T_FAILF("chunk size %zu gives different blocks", chunks[i]);
        }
        result_free(&part);
    }
    result_free(&whole);
    free_fixture(&f);
}

/* ---- the 532-byte example of repository.md §4, rebuilt from the §2.5 and §3 examples ---- */

static const char *REC_HEX =
    "a364746578746b68656c6c6f20776f726c64652474797065726170702e62736b792e666565642e706f73746963"
    "72656174656441747818323032342d30312d30315430303a30303a30302e3030305a";
static const char *COMMIT_HEAD_HEX = /* the commit's "did" and "rev" entries */
    "63646964782064"
    "69643a706c633a70743779767271616e7566726f6e706e646b34716a75697a637265766d336b7a6e6d6e377871"
    "786c3232";
static const char *SIG_HEX =
    "c13b218aa99980f32cf6a5d35cb7fed4e264c109806f512aec956271c405b7900c0353eb6a1b8815e50dbb7532"
    "4257ea74b1f5b02ee4738844c85a4d89b95497";

static size_t build_node(const atp_cid *rec, uint8_t *node)
{
    size_t n = unhex("a2616581a4616b5820", node, 16);
    memcpy(node + n, "app.bsky.feed.post/3kznmn7xqxl22", 32);
    n += 32;
    n += unhex("6170006174f66176d82a582500", node + n, 16);
    memcpy(node + n, rec->bytes, rec->len);
    n += rec->len;
    n += unhex("616cf6", node + n, 4);
    return n;
}


static void test_car_spec_example(void)
{
    uint8_t rec[128], node[128], commit[256], digest[ATP_SHA256_LEN], want[ATP_SHA256_LEN];
    atp_cid rc, nc, cc;
    char s[ATP_CID_STR_MAX];
    size_t rn = unhex(REC_HEX, rec, sizeof rec), nn, cn;
    atp_cid_compute(&rc, ATP_CODEC_DAG_CBOR, atp_slice_make(rec, rn));
    nn = build_node(&rc, node);
    T_EQ(nn, 93);
    atp_cid_compute(&nc, ATP_CODEC_DAG_CBOR, atp_slice_make(node, nn));
    atp_cid_format_to(&nc, s, sizeof s);
    T_STREQ(s, "bafyreiggyd62cjzuwkul6lrjzkn3rcyzvuiny5nm2uuz5kwjx76cudaub4");
    /* Signed commit, keys in order did, rev, sig, data, prev, version. */
    cn = unhex("a6", commit, 1);
    cn += unhex(COMMIT_HEAD_HEX, commit + cn, 128);
    cn += unhex("637369675840", commit + cn, 8);
    cn += unhex(SIG_HEX, commit + cn, 64);
    cn += unhex("6464617461d82a582500", commit + cn, 16);
    memcpy(commit + cn, nc.bytes, nc.len);
    cn += nc.len;
    cn += unhex("6470726576f66776657273696f6e03", commit + cn, 32);
    T_EQ(cn, 188);
    atp_cid_compute(&cc, ATP_CODEC_DAG_CBOR, atp_slice_make(commit, cn));
    atp_cid_format_to(&cc, s, sizeof s);
    T_STREQ(s, "bafyreigh5qvep4yegjul53hh26fa6ydu2girlpyuvwhutreq2oj4x4igs4");
    /* The CAR: commit, MST node, record. */
    atp_buf out;
    atp_car_writer w;
    atp_buf_init(&out, 0);
    atp_car_writer_init_buf(&w, &out);
    T_OK(atp_car_write_header(&w, &cc, 1));
    T_OK(atp_car_write_block(&w, &cc, atp_slice_make(commit, cn)));
    T_OK(atp_car_write_block(&w, &nc, atp_slice_make(node, nn)));
    T_OK(atp_car_write_block(&w, &rc, atp_slice_make(rec, rn)));
    T_EQ(out.len, 532);
    T_MEMEQ(out.ptr, 3, "\x3a\xa2\x65", 3);
    T_MEMEQ(out.ptr + 59, 3, "\xe0\x01\x01", 3);
    atp_sha256(atp_buf_slice(&out), digest);
    unhex("183dd3f6359a5a2b120cea38fb20057271641e7ca0d2655b87a6a3f6569bc045", want, sizeof want);
    T_MEMEQ(digest, sizeof digest, want, sizeof want);
    /* And it reads back. */
    car_result res;
    atp_err err;
    read_mem(atp_buf_slice(&out), NULL, 0, &res, &err);
    T_OKE(res.rc, &err);
    T_EQ(res.n_blocks, 3);
    T_TRUE(res.n_roots == 1 && atp_cid_eq(&res.roots[0], &cc));
    T_TRUE(res.n_blocks == 3 && atp_cid_eq(&res.blocks[2].cid, &rc));
    result_free(&res);
    atp_buf_release(&out);
}

/* ---- rejections ---- */

/* Both readers must agree on the outcome; returns the code. */
static int read_both(atp_slice car, const atp_car_limits *lim, unsigned flags, atp_err *err)
{
    car_result a, b;
    atp_err e2;
    read_mem(car, lim, flags, &a, err);
    read_stream(car, 1, lim, flags, &b, &e2);
    if (!results_equal(&a, &b)) {
        T_FAILF("whole-slice rc %d, byte-by-byte rc %d", a.rc, b.rc);
    }
    if (a.rc < 0 && b.rc < 0 && err && err->off != e2.off) {
        T_FAILF("error offsets differ: %zu vs %zu", err->off, e2.off);
    }
    result_free(&a);
    result_free(&b);
    return a.rc;
}

static void test_car_truncated(void)
{
    fixture f;
    atp_err err;
    if (!load_fixture(&f)) {
        return;
    }
    /* Section boundaries: cutting there gives a shorter valid CAR. */
    size_t bounds[16], nb = 0, off = 59;
    bounds[nb++] = off;
    for (size_t i = 0; i < f.n; i++) {
        size_t sec = 36 + f.lens[i];
        off += (sec < 128 ? 1 : 2) + sec;
        bounds[nb++] = off;
    }
    T_EQ(off, f.car_len);
    for (size_t cut = 0; cut < f.car_len; cut++) {
        bool at_bound = false;
        for (size_t k = 0; k < nb; k++) {
            at_bound = at_bound || bounds[k] == cut;
        }
        int rc = read_both(atp_slice_make(f.car, cut), NULL, 0, &err);
        if (rc != (at_bound ? 0 : ATP_ETRUNC)) {
            T_FAILF("cut at %zu: rc %d", cut, rc);
        }
    }
    T_EQ(read_both(atp_slice_make(f.car, 3), NULL, 0, &err), ATP_ETRUNC);
    T_EQ(err.off, 3);
    free_fixture(&f);
}

static void test_car_flipped_bytes(void)
{
    fixture f;
    atp_err err;
    int hash_errors = 0, accepted = 0;
    if (!load_fixture(&f)) {
        return;
    }
    for (size_t i = 0; i < f.car_len; i++) {
        f.car[i] ^= 0x01;
        car_result res;
        read_mem(atp_slice_make(f.car, f.car_len), NULL, 0, &res, &err);
        /* The hash covers block data, not the CID's codec: a flip that turns a codec (or the
         * root's multihash code) into another valid one gives a valid, different CAR. */
        bool cid_changed = res.rc == 0 && !atp_cid_eq(&res.roots[0], &f.root);
        for (size_t k = 0; res.rc == 0 && k < res.n_blocks; k++) {
            cid_changed = cid_changed || !atp_cid_eq(&res.blocks[k].cid, &f.cids[k]);
        }
        if (res.rc == 0 && !cid_changed) {
            T_FAILF("flipping byte %zu went unnoticed", i);
        }
        accepted += res.rc == 0;
        hash_errors += res.rc == ATP_EHASH;
        result_free(&res);
        f.car[i] ^= 0x01;
    }
    T_TRUE(hash_errors > 1000); /* data and digest bytes of the 5 blocks */
    T_EQ(accepted, 39); /* the root: codec, hash code, 32 digest bytes; 5 block codecs */
    free_fixture(&f);
}

static void test_car_limits(void)
{
    fixture f;
    atp_err err;
    atp_car_limits lim = atp_car_limits_default;
    size_t biggest = 0;
    if (!load_fixture(&f)) {
        return;
    }
    atp_slice car = atp_slice_make(f.car, f.car_len);
    for (size_t i = 0; i < f.n; i++) {
        biggest = f.lens[i] > biggest ? f.lens[i] : biggest;
    }
    lim.max_block = biggest;
    T_EQ(read_both(car, &lim, 0, &err), 0);
    lim.max_block = biggest - 1;
    T_EQ(read_both(car, &lim, 0, &err), ATP_ELIMIT);
    lim = atp_car_limits_default;
    lim.max_blocks = f.n;
    T_EQ(read_both(car, &lim, 0, &err), 0);
    lim.max_blocks = f.n - 1;
    T_EQ(read_both(car, &lim, 0, &err), ATP_ELIMIT);
    lim = atp_car_limits_default;
    lim.max_total = f.car_len;
    T_EQ(read_both(car, &lim, 0, &err), 0);
    lim.max_total = f.car_len - 1;
    T_EQ(read_both(car, &lim, 0, &err), ATP_ELIMIT);
    lim = atp_car_limits_default;
    lim.max_header = 58;
    T_EQ(read_both(car, &lim, 0, &err), 0);
    lim.max_header = 57;
    T_EQ(read_both(car, &lim, 0, &err), ATP_ELIMIT);
    T_EQ(err.off, 0);
    lim = atp_car_limits_default;
    lim.max_roots = 0;
    T_EQ(read_both(car, &lim, 0, &err), ATP_ELIMIT);
    free_fixture(&f);
}

/* Builds a CAR from a raw header (CBOR bytes) and raw sections. */
static void put_raw(atp_buf *b, atp_slice bytes)
{
    uint8_t pre[16];
    size_t n = 0;
    /* varint by hand, independent of the module under test */
    uint64_t v = bytes.len;
    do {
        pre[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    atp_buf_append(b, pre, n);
    atp_buf_append_slice(b, bytes);
}

static void header_with(atp_buf *b, int version, int n_roots, bool roots_is_array)
{
    atp_buf h;
    atp_cid c;
    atp_cid_compute(&c, ATP_CODEC_DAG_CBOR, ATP_SLICE_LIT("x"));
    atp_buf_init(&h, 0);
    atp_cbor_put_map(&h, 2);
    atp_cbor_put_cstr(&h, "roots");
    if (roots_is_array) {
        atp_cbor_put_array(&h, (size_t)n_roots);
        for (int i = 0; i < n_roots; i++) {
            atp_cbor_put_link(&h, &c);
        }
    } else {
        atp_cbor_put_cstr(&h, "nope");
    }
    atp_cbor_put_cstr(&h, "version");
    atp_cbor_put_int(&h, version);
    put_raw(b, atp_buf_slice(&h));
    atp_buf_release(&h);
}

static int read_raw(const atp_buf *b, unsigned flags, atp_err *err)
{
    return read_both(atp_buf_slice(b), NULL, flags, err);
}

static void test_car_bad_headers(void)
{
    atp_buf b;
    atp_err err;
    atp_buf_init(&b, 0);
    header_with(&b, 1, 0, true); /* empty roots are allowed */
    T_EQ(read_raw(&b, 0, &err), 0);
    atp_buf_reset(&b);
    header_with(&b, 1, 3, true);
    T_EQ(read_raw(&b, 0, &err), 0);
    atp_buf_reset(&b);
    header_with(&b, 2, 1, true);
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    T_TRUE(strstr(err.msg, "version") != NULL);
    atp_buf_reset(&b);
    header_with(&b, 0, 1, true);
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    atp_buf_reset(&b);
    header_with(&b, 1, 1, false);
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    /* {version: 1} without roots, roots of non-links, not a map, non-canonical CBOR. */
    atp_buf_reset(&b);
    put_raw(&b, ATP_SLICE_LIT("\xa1\x67version\x01"));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    atp_buf_reset(&b);
    put_raw(&b, ATP_SLICE_LIT("\xa2\x65roots\x81\x01\x67version\x01"));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    atp_buf_reset(&b);
    put_raw(&b, ATP_SLICE_LIT("\x82\x01\x02"));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    atp_buf_reset(&b);
    put_raw(&b, ATP_SLICE_LIT("\xa2\x67version\x01\x65roots\x80"));
    T_TRUE(read_raw(&b, 0, &err) < 0);
    atp_buf_reset(&b);
    put_raw(&b, ATP_SLICE_LIT("\xa2\x65roots\x80\x67version\x01\x00")); /* trailing byte */
    T_TRUE(read_raw(&b, 0, &err) < 0);
    /* Header length 0; header length non-shortest; garbage. */
    T_EQ(read_both(ATP_SLICE_LIT("\x00"), NULL, 0, &err), ATP_EINVAL);
    T_EQ(read_both(ATP_SLICE_LIT("\x80\x00"), NULL, 0, &err), ATP_EINVAL);
    T_EQ(read_both(ATP_SLICE_LIT(""), NULL, 0, &err), ATP_ETRUNC);
    T_TRUE(read_both(ATP_SLICE_LIT("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), NULL, 0, &err) < 0);
    T_EQ(read_both(ATP_SLICE_LIT("\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), NULL, 0, &err),
         ATP_ELIMIT);
    atp_buf_release(&b);
}

static void test_car_bad_sections(void)
{
    atp_buf b, sec;
    atp_err err;
    atp_cid c;
    const uint8_t blake[] = {0x01, 0x71, 0xb2, 0x40, 0x20};
    atp_cid_compute(&c, ATP_CODEC_RAW, ATP_SLICE_LIT("data"));
    atp_buf_init(&b, 0);
    atp_buf_init(&sec, 0);
    header_with(&b, 1, 1, true);
    size_t hlen = b.len;
    /* A good raw block, and an empty-data block. */
    atp_buf_append(&sec, c.bytes, c.len);
    atp_buf_append_str(&sec, "data");
    put_raw(&b, atp_buf_slice(&sec));
    T_EQ(read_raw(&b, 0, &err), 0);
    atp_buf_reset(&sec);
    atp_cid_compute(&c, ATP_CODEC_RAW, ATP_SLICE_LIT(""));
    atp_buf_append(&sec, c.bytes, c.len);
    put_raw(&b, atp_buf_slice(&sec));
    T_EQ(read_raw(&b, 0, &err), 0);
    /* Section length 0. */
    b.len = hlen;
    atp_buf_append_byte(&b, 0);
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    T_EQ(err.off, hlen);
    /* Section shorter than its CID. */
    b.len = hlen;
    put_raw(&b, atp_slice_make(c.bytes, 20));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    /* Data that does not match. */
    b.len = hlen;
    atp_buf_reset(&sec);
    atp_buf_append(&sec, c.bytes, c.len);
    atp_buf_append_str(&sec, "x");
    put_raw(&b, atp_buf_slice(&sec));
    T_EQ(read_raw(&b, 0, &err), ATP_EHASH);
    T_EQ(err.off, hlen);
    /* A blake2b CID: refused unless unverified blocks are allowed. */
    b.len = hlen;
    atp_buf_reset(&sec);
    atp_buf_append(&sec, blake, sizeof blake);
    atp_buf_append(&sec, c.bytes + 4, 32);
    atp_buf_append_str(&sec, "anything");
    put_raw(&b, atp_buf_slice(&sec));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    T_EQ(read_raw(&b, ATP_CAR_ALLOW_UNVERIFIED, &err), 0);
    car_result res;
    read_mem(atp_buf_slice(&b), NULL, ATP_CAR_ALLOW_UNVERIFIED, &res, &err);
    T_TRUE(res.n_blocks == 1 && !res.blocks[0].verified && res.blocks[0].len == 8);
    result_free(&res);
    /* A CIDv0 or a garbage CID in a section. */
    b.len = hlen;
    put_raw(&b, atp_slice_make(c.bytes + 2, 34));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    b.len = hlen;
    put_raw(&b, ATP_SLICE_LIT("\x01\x71\x12\x10garbage-garbage-garbage"));
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    /* Non-shortest section length. */
    b.len = hlen;
    atp_buf_append(&b, "\xa8\x80\x00", 3);
    T_EQ(read_raw(&b, 0, &err), ATP_EINVAL);
    atp_buf_release(&b);
    atp_buf_release(&sec);
}

static void test_car_sticky_reader(void)
{
    atp_car_reader *r = atp_car_reader_create(NULL, 0);
    atp_car_block blk;
    atp_err err;
    size_t used = 99;
    T_EQ(atp_car_reader_next(r, ATP_SLICE_LIT("\x00\x01\x02"), &used, &blk, &err), ATP_EINVAL);
    T_EQ(atp_car_reader_next(r, ATP_SLICE_LIT("\x0a"), &used, &blk, &err), ATP_EINVAL);
    T_EQ(used, 0);
    T_EQ(atp_car_reader_finish(r, &err), ATP_EINVAL);
    size_t n = 5;
    T_TRUE(atp_car_reader_roots(r, &n) == NULL);
    T_EQ(n, 0);
    /* Reset makes it usable again; an empty stream is truncated. */
    atp_car_reader_reset(r);
    T_EQ(atp_car_reader_finish(r, &err), ATP_ETRUNC);
    T_EQ(atp_car_reader_next(r, ATP_SLICE_LIT("\x0b"), &used, &blk, &err), ATP_EAGAIN);
    T_EQ(used, 1);
    T_EQ(atp_car_reader_offset(r), 1);
    T_EQ(atp_car_reader_finish(r, &err), ATP_ETRUNC);
    atp_car_reader_destroy(r);
    atp_car_reader_destroy(NULL);
}

static int failing_sink(void *ctx, atp_slice bytes)
{
    int *calls = ctx;
    (void)bytes;
    return ++*calls >= 3 ? ATP_EIO : 0;
}

static void test_car_writer_errors(void)
{
    atp_buf out;
    atp_car_writer w;
    atp_cid c, empty;
    int calls = 0;
    atp_cid_compute(&c, ATP_CODEC_RAW, ATP_SLICE_LIT("abc"));
    memset(&empty, 0, sizeof empty);
    atp_buf_init(&out, 0);
    atp_car_writer_init_buf(&w, &out);
    T_EQ(atp_car_write_block(&w, &c, ATP_SLICE_LIT("abc")), ATP_EINVAL); /* before header */
    T_EQ(atp_car_write_header(&w, &c, 1), ATP_EINVAL);                   /* sticky */
    atp_car_writer_init_buf(&w, &out);
    T_OK(atp_car_write_header(&w, NULL, 0));
    T_EQ(atp_car_write_header(&w, &c, 1), ATP_EINVAL);
    atp_car_writer_init_buf(&w, &out);
    T_EQ(atp_car_write_block(&w, &empty, ATP_SLICE_LIT("x")), ATP_EINVAL);
    /* A sink error stops everything. */
    atp_car_writer_init_fn(&w, failing_sink, &calls);
    T_OK(atp_car_write_header(&w, &c, 1));
    T_EQ(atp_car_write_block(&w, &c, ATP_SLICE_LIT("abc")), ATP_EIO);
    T_EQ(atp_car_write_data(&w, ATP_CODEC_RAW, ATP_SLICE_LIT("abc"), NULL), ATP_EIO);
    T_EQ(calls, 3);
    /* A bounded buffer fills: ATP_ELIMIT. */
    atp_buf_release(&out);
    atp_buf_init(&out, 64);
    atp_car_writer_init_buf(&w, &out);
    T_OK(atp_car_write_header(&w, &c, 1));
    T_EQ(atp_car_write_block(&w, &c, ATP_SLICE_LIT("abcdefghijklmnopqrstuvwxyz")), ATP_ELIMIT);
    atp_buf_release(&out);
}

int main(void)
{
    T_RUN(test_car_fixture_read);
    T_RUN(test_car_fixture_write);
    T_RUN(test_car_streaming_matches);
    T_RUN(test_car_spec_example);
    T_RUN(test_car_truncated);
    T_RUN(test_car_flipped_bytes);
    T_RUN(test_car_limits);
    T_RUN(test_car_bad_headers);
    T_RUN(test_car_bad_sections);
    T_RUN(test_car_sticky_reader);
    T_RUN(test_car_writer_errors);
    return t_done();
}

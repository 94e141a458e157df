/* test_interop_cbor.c: DAG-CBOR, CIDs and the JSON form against @ipld/dag-cbor, @atproto/lex-cbor
 * and multiformats, both ways.
 *
 * Theirs -> ours: gen_records.mjs prints generated records (JSON form, their bytes, their CID).
 * From the JSON we must produce identical bytes and CID; their bytes must validate, decode and
 * re-encode identically; our JSON of the decoded tree must parse back to the same bytes.
 * Ours -> theirs: every block we made above plus randomly built trees (seeded, full Unicode,
 * links, bytes, int64 extremes) go to a file that check_cbor.mjs decodes with the official
 * libraries: same bytes on re-encode, same CID, and our JSON converts to the same value.
 */
#include "t.h"

#include "interop_util.h"

#include "atp/cbor.h"
#include "atp/cid.h"
#include "atp/json.h"

#define N_RECORDS 1000
#define N_RANDOM  400

static FILE *g_out; /* blocks for check_cbor.mjs */
static int g_out_lines;

/* Writes "<cid> TAB <hex> TAB <json>" for a block we encoded. */
static void write_block(atp_slice bytes, const atp_buf *json)
{
    atp_cid cid;
    char s[ATP_CID_STR_MAX];
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, bytes);
    T_TRUE(atp_cid_format_to(&cid, s, sizeof s) == ATP_CID_BLESSED_STR_LEN);
    fprintf(g_out, "%s\t", s);
    iu_put_hex(g_out, bytes.ptr, bytes.len);
    fputc('\t', g_out);
    if (json) {
        fwrite(json->ptr, 1, json->len, g_out);
    }
    fputc('\n', g_out);
    g_out_lines++;
}

/* JSON text -> tree -> bytes into `out`; false (and a failure) if any step fails. */
static bool json_to_cbor(atp_arena *a, atp_slice json, atp_buf *out)
{
    atp_cbor *tree = NULL;
    atp_err err;
    int rc = atp_json_decode(a, json, ATP_JSON_DATA, NULL, &tree, &err);
    T_OKE(rc, &err);
    atp_buf_reset(out);
    if (rc == 0) {
        atp_cbor_encode(out, tree);
        T_EQ(out->err, 0);
    }
    return rc == 0 && out->err == 0;
}

/* Their bytes must validate, decode, re-encode identically, and give JSON that comes back to
 * the same bytes. Our JSON goes to the file for the JS side. */
static bool check_their_bytes(atp_arena *a, atp_slice theirs, atp_buf *tmp, atp_buf *json)
{
    atp_cbor *tree = NULL;
    atp_err err;
    T_OKE(atp_cbor_validate(theirs, NULL, &err), &err);
    int rc = atp_cbor_decode(a, theirs, NULL, &tree, &err);
    T_OKE(rc, &err);
    if (rc != 0) {
        return false;
    }
    atp_buf_reset(tmp);
    atp_cbor_encode(tmp, tree);
    T_MEMEQ(tmp->ptr, tmp->len, theirs.ptr, theirs.len);
    atp_buf_reset(json);
    atp_json_encode(json, tree, 0);
    T_EQ(json->err, 0);
    if (!json_to_cbor(a, atp_buf_slice(json), tmp)) {
        return false;
    }
    T_MEMEQ(tmp->ptr, tmp->len, theirs.ptr, theirs.len);
    return atp_slice_eq(atp_buf_slice(tmp), theirs);
}

typedef struct rec_ctx {
    atp_arena *a;
    atp_buf theirs, ours, tmp, json;
    int same_bytes, same_cid, round_trips;
} rec_ctx;

static void check_record(rec_ctx *c, char **f)
{
    atp_cid cid, parsed;
    char s[ATP_CID_STR_MAX];
    atp_arena_reset(c->a);
    T_TRUE(iu_unhex(f[1], &c->theirs));
    if (!json_to_cbor(c->a, atp_slice_str(f[2]), &c->ours)) {
        T_FAILF("JSON: %.200s", f[2]);
        return;
    }
    T_MEMEQ(c->ours.ptr, c->ours.len, c->theirs.ptr, c->theirs.len);
    c->same_bytes += atp_slice_eq(atp_buf_slice(&c->ours), atp_buf_slice(&c->theirs));
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, atp_buf_slice(&c->ours));
    (void)atp_cid_format_to(&cid, s, sizeof s);
    T_STREQ(s, f[0]);
    T_OK(atp_cid_parse(atp_slice_str(f[0]), ATP_CID_BLESSED_ONLY, &parsed, NULL));
    T_TRUE(atp_cid_eq(&parsed, &cid));
    c->same_cid += strcmp(s, f[0]) == 0;
    if (check_their_bytes(c->a, atp_buf_slice(&c->theirs), &c->tmp, &c->json)) {
        c->round_trips++;
        write_block(atp_buf_slice(&c->theirs), &c->json);
    }
}

static void test_theirs_to_ours(void)
{
    char cmd[8192];
    size_t len, pos = 0;
    int lines = 0;
    rec_ctx c = {.a = atp_arena_create(0)};
    atp_buf_init(&c.theirs, 4 << 20);
    atp_buf_init(&c.ours, 4 << 20);
    atp_buf_init(&c.tmp, 4 << 20);
    atp_buf_init(&c.json, 8 << 20);
    iu_node_cmd(cmd, sizeof cmd, "gen_records.mjs", "1000 42");
    char *text = iu_run(cmd, &len);
    for (char *line; text && (line = iu_next_line(text, len, &pos)) != NULL;) {
        char *f[4];
        lines++;
        if (iu_fields(line, f, 4) != 3) {
            T_FAILF("gen_records line %d: expected 3 fields", lines);
            continue;
        }
        check_record(&c, f);
    }
    T_EQ(lines, N_RECORDS);
    T_EQ(c.same_bytes, N_RECORDS);
    T_EQ(c.same_cid, N_RECORDS);
    T_EQ(c.round_trips, N_RECORDS);
    t_vectors("records: JSON -> our CBOR == @ipld/dag-cbor bytes", c.same_bytes);
    t_vectors("records: our CID == multiformats CID", c.same_cid);
    t_vectors("records: their bytes decode/re-encode/JSON round trip", c.round_trips);
    free(text);
    atp_buf_release(&c.theirs);
    atp_buf_release(&c.ours);
    atp_buf_release(&c.tmp);
    atp_buf_release(&c.json);
    atp_arena_destroy(c.a);
}

/* ---- random trees built on our side ---- */

typedef struct rng {
    uint64_t s;
} rng;

/* xorshift64*: deterministic, tiny; only picks shapes. */
static uint64_t rng_next(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(rng *r, size_t n)
{
    return (size_t)(rng_next(r) % n);
}

/* A code point from a mix of ranges: ASCII, controls (escaping), Latin-1, the rest of the BMP
 * around the surrogate gap, and supplementary planes (4-byte UTF-8). Never U+0000. */
static uint32_t rand_cp(rng *r)
{
    switch (rng_below(r, 8)) {
    case 0:
        return 1 + (uint32_t)rng_below(r, 0x1f);
    case 1:
        return 0x80 + (uint32_t)rng_below(r, 0x780);
    case 2:
        return 0x800 + (uint32_t)rng_below(r, 0xd800 - 0x800);
    case 3:
        return 0xe000 + (uint32_t)rng_below(r, 0x2000);
    case 4:
        return 0x10000 + (uint32_t)rng_below(r, 0x100000);
    default:
        return 0x20 + (uint32_t)rng_below(r, 0x5f);
    }
}

static void put_utf8(atp_buf *b, uint32_t cp)
{
    if (cp < 0x80) {
        atp_buf_append_byte(b, (uint8_t)cp);
    } else if (cp < 0x800) {
        atp_buf_append_byte(b, (uint8_t)(0xc0 | cp >> 6));
        atp_buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        atp_buf_append_byte(b, (uint8_t)(0xe0 | cp >> 12));
        atp_buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3f)));
        atp_buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
    } else {
        atp_buf_append_byte(b, (uint8_t)(0xf0 | cp >> 18));
        atp_buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 12) & 0x3f)));
        atp_buf_append_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3f)));
        atp_buf_append_byte(b, (uint8_t)(0x80 | (cp & 0x3f)));
    }
}

/* Random valid UTF-8 of up to `max_cp` code points, copied into the arena. */
static atp_slice rand_text(atp_arena *a, rng *r, size_t max_cp)
{
    atp_buf b;
    size_t n = rng_below(r, max_cp + 1);
    atp_buf_init(&b, 4 * max_cp + 1);
    for (size_t i = 0; i < n; i++) {
        put_utf8(&b, rand_cp(r));
    }
    atp_slice s =
        atp_slice_make(atp_arena_dup(a, b.ptr ? b.ptr : (const uint8_t *)"", b.len), b.len);
    atp_buf_release(&b);
    return s;
}

/* clang-format off */
static const int64_t EDGE_INTS[] = {0, 1, -1, 23, 24, -24, -25, 255, 256, -256, -257, 65535,
    65536, 4294967295LL, 4294967296LL, -4294967296LL, -4294967297LL, 9007199254740991LL,
    -9007199254740991LL};
/* clang-format on */

static int64_t rand_int(rng *r)
{
    if (rng_below(r, 2) == 0) {
        return EDGE_INTS[rng_below(r, sizeof EDGE_INTS / sizeof EDGE_INTS[0])];
    }
    /* Uniform over +-(2^53-1): the range JSON carries exactly. */
    return (int64_t)rng_below(r, (1ULL << 54) - 1) - 9007199254740991LL;
}

static atp_cbor *rand_value(atp_arena *a, rng *r, int depth);

static atp_cbor *rand_link(atp_arena *a, rng *r)
{
    uint8_t data[16];
    atp_cid cid;
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (uint8_t)rng_next(r);
    }
    atp_cid_compute(&cid, rng_below(r, 2) ? ATP_CODEC_DAG_CBOR : ATP_CODEC_RAW,
                    atp_slice_make(data, sizeof data));
    return atp_cbor_new_link(a, &cid);
}

static atp_cbor *rand_bytes(atp_arena *a, rng *r)
{
    size_t n = rng_below(r, 48);
    uint8_t *p = atp_arena_alloc(a, n + 1);
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)rng_next(r);
    }
    return atp_cbor_new_bytes(a, atp_slice_make(p, n));
}

static atp_cbor *rand_array(atp_arena *a, rng *r, int depth)
{
    size_t n = rng_below(r, 7);
    atp_cbor *v = atp_cbor_new_array(a, n);
    for (size_t i = 0; i < n; i++) {
        v->u.arr.items[i] = *rand_value(a, r, depth + 1);
    }
    return v;
}

static bool key_taken(const atp_cbor *m, size_t upto, atp_slice k)
{
    for (size_t i = 0; i < upto; i++) {
        if (atp_slice_eq(m->u.map.pairs[i].key, k)) {
            return true;
        }
    }
    return false;
}

/* A map of random pairs; "$type" (the one reserved key used) always gets a non-empty string, as
 * the data rules require. Keys are unique, so atp_cbor_map_finish only sorts. */
static atp_cbor *rand_map(atp_arena *a, rng *r, int depth, size_t n)
{
    atp_cbor *v = atp_cbor_new_map(a, n);
    for (size_t i = 0; i < n; i++) {
        atp_slice k;
        do {
            k = rng_below(r, 10) == 0 ? ATP_SLICE_LIT("$type") : rand_text(a, r, 6);
        } while (key_taken(v, i, k));
        v->u.map.pairs[i].key = k;
        if (atp_slice_eq_str(k, "$type")) {
            v->u.map.pairs[i].val = *atp_cbor_new_string(a, ATP_SLICE_LIT("com.example.thing"));
        } else {
            v->u.map.pairs[i].val = *rand_value(a, r, depth + 1);
        }
    }
    T_OK(atp_cbor_map_finish(v, NULL));
    return v;
}

static atp_cbor *rand_value(atp_arena *a, rng *r, int depth)
{
    size_t kind = rng_below(r, depth >= 6 ? 7 : 9);
    switch (kind) {
    case 0:
        return atp_cbor_new_null(a);
    case 1:
        return atp_cbor_new_bool(a, rng_below(r, 2) == 1);
    case 2:
        return atp_cbor_new_int(a, rand_int(r));
    case 3:
    case 4:
        return atp_cbor_new_string(a, rand_text(a, r, rng_below(r, 8) == 0 ? 300 : 20));
    case 5:
        return rand_bytes(a, r);
    case 6:
        return rand_link(a, r);
    case 7:
        return rand_array(a, r, depth);
    default:
        return rand_map(a, r, depth, rng_below(r, 7));
    }
}

/* Random top-level record: a map with "$type" plus random members. */
static atp_cbor *rand_record(atp_arena *a, rng *r)
{
    atp_cbor *m = rand_map(a, r, 0, 1 + rng_below(r, 8));
    atp_cbor *top = atp_cbor_new_map(a, m->u.map.n + 1);
    size_t j = 0;
    for (size_t i = 0; i < m->u.map.n; i++) {
        if (!atp_slice_eq_str(m->u.map.pairs[i].key, "$type")) {
            top->u.map.pairs[j++] = m->u.map.pairs[i];
        }
    }
    top->u.map.pairs[j].key = ATP_SLICE_LIT("$type");
    top->u.map.pairs[j++].val = *atp_cbor_new_string(a, ATP_SLICE_LIT("com.example.random"));
    top->u.map.n = j;
    T_OK(atp_cbor_map_finish(top, NULL));
    return top;
}

/* One random record: encode, check our own decode and JSON round trips, write it out. */
static bool random_one(atp_arena *a, rng *r, atp_buf *bytes, atp_buf *tmp, atp_buf *json)
{
    atp_cbor *back = NULL;
    atp_cbor *v = rand_record(a, r);
    atp_buf_reset(bytes);
    atp_cbor_encode(bytes, v);
    T_EQ(bytes->err, 0);
    T_OK(atp_cbor_decode(a, atp_buf_slice(bytes), NULL, &back, NULL));
    atp_buf_reset(json);
    atp_json_encode(json, v, 0);
    T_EQ(json->err, 0);
    if (bytes->err || json->err || !json_to_cbor(a, atp_buf_slice(json), tmp)) {
        return false;
    }
    T_MEMEQ(tmp->ptr, tmp->len, bytes->ptr, bytes->len);
    write_block(atp_buf_slice(bytes), json);
    return true;
}

/* int64 extremes: beyond what JSON carries, so these go out as CBOR only (dag-cbor reads them
 * as BigInt and must re-encode the same bytes). */
static void int64_block(atp_buf *bytes)
{
    static const int64_t v[] = {INT64_MAX,           INT64_MIN,        9007199254740992LL,
                                -9007199254740992LL, (int64_t)1 << 62, -((int64_t)1 << 62) - 1};
    atp_buf_reset(bytes);
    atp_cbor_put_map(bytes, 2);
    atp_cbor_put_cstr(bytes, "v");
    atp_cbor_put_array(bytes, sizeof v / sizeof v[0]);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        atp_cbor_put_int(bytes, v[i]);
    }
    atp_cbor_put_cstr(bytes, "$type");
    atp_cbor_put_cstr(bytes, "com.example.int64");
    T_OK(atp_cbor_validate(atp_buf_slice(bytes), NULL, NULL));
    write_block(atp_buf_slice(bytes), NULL);
}

static void test_ours_to_theirs(void)
{
    char cmd[8192], args[4200];
    size_t len;
    int made = 0, ok = -1, failed = -1;
    rng r = {0x9e3779b97f4a7c15ULL};
    atp_arena *a = atp_arena_create(0);
    atp_buf bytes, tmp, json;
    atp_buf_init(&bytes, 4 << 20);
    atp_buf_init(&tmp, 4 << 20);
    atp_buf_init(&json, 8 << 20);
    for (int i = 0; i < N_RANDOM; i++) {
        atp_arena_reset(a);
        made += random_one(a, &r, &bytes, &tmp, &json);
    }
    int64_block(&bytes);
    T_EQ(made, N_RANDOM);
    T_TRUE(fclose(g_out) == 0);
    g_out = NULL;
    snprintf(args, sizeof args, "'%s'", iu_out_path("interop_cbor_ours.tsv"));
    iu_node_cmd(cmd, sizeof cmd, "check_cbor.mjs", args);
    char *text = iu_run(cmd, &len);
    if (text) {
        printf("# %s", text);
        T_EQ(sscanf(text, "check_cbor: %d ok, %d failed", &ok, &failed), 2);
    }
    T_EQ(failed, 0);
    T_EQ(ok, g_out_lines);
    t_vectors("random trees built here, checked by @ipld/dag-cbor", made);
    t_vectors("blocks of ours decoded/re-encoded/CID-checked by the JS libraries",
              ok == g_out_lines ? ok : 0);
    free(text);
    atp_buf_release(&bytes);
    atp_buf_release(&tmp);
    atp_buf_release(&json);
    atp_arena_destroy(a);
}

int main(void)
{
    g_out = fopen(iu_out_path("interop_cbor_ours.tsv"), "w");
    if (!g_out) {
        printf("cannot write %s\n", iu_out_path("interop_cbor_ours.tsv"));
        return 1;
    }
    T_RUN(test_theirs_to_ours);
    T_RUN(test_ours_to_theirs);
    return t_done();
}

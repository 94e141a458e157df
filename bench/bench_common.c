/* bench_common.c: throughput of the common/ modules on the generated corpus, and ECDSA through
 * our API next to the raw rates of the libraries underneath, measured in the same run.
 *
 *   bench_common DIR [SECONDS [NAME-PREFIX]]
 *
 * DIR holds corpus.cbor / corpus.idx / corpus.jsonl (bench/js/gen_corpus.mjs). Prints one
 * figure per line, "name value"; bench/run-common.sh pairs them with the JS figures. Every
 * figure loops over the corpus (cyclically) for SECONDS after a short warm-up, in rounds whose
 * best is kept.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <secp256k1.h>

#include "atp/cbor.h"
#include "atp/cid.h"
#include "atp/crypto.h"
#include "atp/json.h"
#include "atp/sha256.h"

typedef struct corpus {
    uint8_t *cbor; /* all blocks back to back */
    size_t *off, *len;
    char *json; /* the JSON lines, each NUL-terminated in place */
    char **line;
    size_t *line_len;
    size_t n;
    size_t total; /* bytes of CBOR */
} corpus;

typedef struct bench {
    const corpus *c;
    atp_arena *arena;
    atp_buf out;
    atp_cbor **trees; /* pre-decoded, for the encode figure */
    uint64_t sink;    /* keeps results alive so nothing is optimised out */
    size_t pos;       /* where the next round resumes, so short rounds cover everything */
} bench;

/* One unit of work on item i; returns the bytes it counts toward MB/s. */
typedef size_t (*step_fn)(bench *b, size_t i);

/* CPU time of this thread, not wall time: the 2-core machine is shared, and time spent
 * descheduled while others run must not count against either side (bench_js.mjs does the same
 * with process.cpuUsage()). Not a vDSO call, hence the sparse checks below. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double g_seconds = 1.5;

/* Runs `fn` over items 0..count-1 cyclically (resuming where the last round stopped) for `secs`,
 * reading the clock every mask+1 ops; reports ops/s and MB/s. */
static void run_loop(bench *b, step_fn fn, size_t count, double secs, uint64_t mask, double *ops_s,
                     double *mb_s)
{
    uint64_t ops = 0, bytes = 0;
    double t0 = now(), t = t0;
    size_t i = b->pos % count;
    for (; t - t0 < secs; i = (i + 1) % count) {
        bytes += fn(b, i);
        ops++;
        if ((ops & mask) == 0) {
            t = now();
        }
    }
    b->pos = i;
    *ops_s = (double)ops / (t - t0);
    *mb_s = (double)bytes / (t - t0) / 1e6;
}

/* Clock reads about every 0.5 ms at a rate of `ops_s`: rare enough to cost nothing. */
static uint64_t mask_for(double ops_s)
{
    uint64_t m = 1;
    while ((double)m * 2 < ops_s / 2000) {
        m *= 2;
    }
    return m - 1;
}

#define ROUNDS 8

/* Warm-up, then ROUNDS short rounds of SECONDS/ROUNDS keeping the best: the best round is the
 * one least disturbed (caches, frequency) by the other processes on the machine. */
static void run(bench *b, step_fn fn, size_t count, double *ops_s, double *mb_s)
{
    double o, m;
    run_loop(b, fn, count, g_seconds / 5, 0, ops_s, mb_s); /* warm-up: caches, predictors */
    uint64_t mask = mask_for(*ops_s);
    *ops_s = *mb_s = 0;
    for (int r = 0; r < ROUNDS; r++) {
        run_loop(b, fn, count, g_seconds / ROUNDS, mask, &o, &m);
        *ops_s = o > *ops_s ? o : *ops_s;
        *mb_s = m > *mb_s ? m : *mb_s;
    }
}

static void fig(const char *name, double v)
{
    printf("%s %.*f\n", name, v < 100 ? 2 : 1, v);
    fflush(stdout);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_common: %s\n", what);
    exit(1);
}

/* ---- corpus ---- */

static uint8_t *read_all(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        die(path);
    }
    long sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        die(path);
    }
    uint8_t *p = atp_xmalloc((size_t)sz + 1);
    if (fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        die(path);
    }
    fclose(f);
    p[sz] = 0;
    *len = (size_t)sz;
    return p;
}

static void load_index(corpus *c, const uint8_t *idx, size_t idx_len)
{
    c->n = idx_len / 4;
    c->off = atp_xcalloc(c->n, sizeof *c->off);
    c->len = atp_xcalloc(c->n, sizeof *c->len);
    for (size_t i = 0, off = 0; i < c->n; i++) {
        const uint8_t *p = idx + 4 * i;
        c->len[i] = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
        c->off[i] = off;
        off += c->len[i];
        if (off > c->total) {
            die("corpus.idx does not match corpus.cbor");
        }
    }
}

static void load_json(corpus *c, size_t json_len)
{
    size_t k = 0;
    c->line = atp_xcalloc(c->n, sizeof *c->line);
    c->line_len = atp_xcalloc(c->n, sizeof *c->line_len);
    for (size_t i = 0; i < json_len && k < c->n;) {
        char *nl = memchr(c->json + i, '\n', json_len - i);
        size_t n = nl ? (size_t)(nl - (c->json + i)) : json_len - i;
        c->line[k] = c->json + i;
        c->line_len[k++] = n;
        c->json[i + n] = '\0';
        i += n + 1;
    }
    if (k != c->n) {
        die("corpus.jsonl does not match corpus.idx");
    }
}

static void load_corpus(corpus *c, const char *dir)
{
    size_t idx_len, json_len;
    c->cbor = read_all(dir, "corpus.cbor", &c->total);
    uint8_t *idx = read_all(dir, "corpus.idx", &idx_len);
    load_index(c, idx, idx_len);
    free(idx);
    c->json = (char *)read_all(dir, "corpus.jsonl", &json_len);
    load_json(c, json_len);
}

static atp_slice block(const corpus *c, size_t i)
{
    return atp_slice_make(c->cbor + c->off[i], c->len[i]);
}

/* ---- CBOR, CID and JSON steps ---- */

static size_t step_decode(bench *b, size_t i)
{
    atp_cbor *t = NULL;
    atp_arena_reset(b->arena);
    if (atp_cbor_decode(b->arena, block(b->c, i), NULL, &t, NULL) != 0) {
        die("decode failed");
    }
    b->sink += t->u.map.n;
    return b->c->len[i];
}

static size_t step_encode(bench *b, size_t i)
{
    atp_buf_reset(&b->out);
    atp_cbor_encode(&b->out, b->trees[i]);
    b->sink += b->out.len;
    return b->out.len;
}

static size_t step_validate(bench *b, size_t i)
{
    if (atp_cbor_validate(block(b->c, i), NULL, NULL) != 0) {
        die("validate failed");
    }
    return b->c->len[i];
}

static size_t step_cid(bench *b, size_t i)
{
    atp_cid cid;
    char s[ATP_CID_STR_MAX];
    atp_cid_compute(&cid, ATP_CODEC_DAG_CBOR, block(b->c, i));
    b->sink += atp_cid_format_to(&cid, s, sizeof s) + (uint8_t)s[58];
    return b->c->len[i];
}

static size_t step_json_to_cbor(bench *b, size_t i)
{
    atp_cbor *t = NULL;
    atp_arena_reset(b->arena);
    if (atp_json_decode(b->arena, atp_slice_make(b->c->line[i], b->c->line_len[i]), ATP_JSON_DATA,
                        NULL, &t, NULL) != 0) {
        die("JSON decode failed");
    }
    atp_buf_reset(&b->out);
    atp_cbor_encode(&b->out, t);
    b->sink += b->out.len;
    return b->c->line_len[i];
}

static size_t step_cbor_to_json(bench *b, size_t i)
{
    atp_cbor *t = NULL;
    atp_arena_reset(b->arena);
    if (atp_cbor_decode(b->arena, block(b->c, i), NULL, &t, NULL) != 0) {
        die("decode failed");
    }
    atp_buf_reset(&b->out);
    atp_json_encode(&b->out, t, 0);
    b->sink += b->out.len;
    return b->c->len[i];
}

/* Decodes every block once into one arena (for the encode figure) and checks that each one
 * re-encodes to its own bytes: a benchmark of a wrong encoder would be meaningless. */
static void predecode(bench *b, atp_arena *keep)
{
    b->trees = atp_xcalloc(b->c->n, sizeof *b->trees);
    for (size_t i = 0; i < b->c->n; i++) {
        atp_err err;
        if (atp_cbor_decode(keep, block(b->c, i), NULL, &b->trees[i], &err) != 0) {
            fprintf(stderr, "record %zu: %s\n", i, err.msg);
            die("corpus does not decode");
        }
        atp_buf_reset(&b->out);
        atp_cbor_encode(&b->out, b->trees[i]);
        if (!atp_slice_eq(atp_buf_slice(&b->out), block(b->c, i))) {
            die("corpus does not re-encode to the same bytes");
        }
    }
}

static const char *g_only; /* a figure-name prefix to run alone (profiling), or NULL */

/* True if the figure `name`, or some figure of the group `name` when it names a group ("k256"),
 * is to run: one of the two is a prefix of the other. */
static bool wanted(const char *name)
{
    if (!g_only) {
        return true;
    }
    size_t a = strlen(name), o = strlen(g_only);
    return strncmp(name, g_only, a < o ? a : o) == 0;
}

typedef struct cbor_fig {
    const char *ops_name, *mb_name; /* NULL: not printed */
    step_fn fn;
} cbor_fig;

static const cbor_fig CBOR_FIGS[] = {
    {"cbor.decode.rec_per_s", "cbor.decode.MBps", step_decode},
    {"cbor.encode.rec_per_s", "cbor.encode.MBps", step_encode},
    {NULL, "cbor.validate.MBps", step_validate},
    {"cid.per_s", NULL, step_cid},
    {"json_to_cbor.rec_per_s", NULL, step_json_to_cbor},
    {"cbor_to_json.rec_per_s", NULL, step_cbor_to_json},
};

static void cbor_figures(bench *b)
{
    double ops, mb;
    if (!wanted("cbor") && !wanted("cid") && !wanted("json")) {
        return;
    }
    atp_arena *keep = atp_arena_create((size_t)1 << 20);
    predecode(b, keep);
    for (size_t k = 0; k < sizeof CBOR_FIGS / sizeof CBOR_FIGS[0]; k++) {
        const cbor_fig *f = &CBOR_FIGS[k];
        if (!wanted(f->ops_name ? f->ops_name : f->mb_name)) {
            continue;
        }
        run(b, f->fn, b->c->n, &ops, &mb);
        if (f->mb_name) {
            fig(f->mb_name, mb);
        }
        if (f->ops_name) {
            fig(f->ops_name, ops);
        }
    }
    free(b->trees);
    atp_arena_destroy(keep);
}

/* ---- ECDSA: our API ---- */

#define NSIG    64
#define MSG_LEN 100

typedef struct sigset {
    atp_key *priv, *pub;
    uint8_t msg[NSIG][MSG_LEN];
    uint8_t hash[NSIG][32];
    uint8_t sig[NSIG][ATP_SIG_LEN];
} sigset;

static sigset *g_ss; /* the set the crypto steps work on */

static size_t step_sign(bench *b, size_t i)
{
    uint8_t sig[ATP_SIG_LEN];
    if (atp_key_sign(g_ss->priv, atp_slice_make(g_ss->msg[i], MSG_LEN), sig, NULL) != 0) {
        die("sign failed");
    }
    b->sink += sig[0];
    return MSG_LEN;
}

static size_t step_verify(bench *b, size_t i)
{
    if (atp_key_verify(g_ss->pub, atp_slice_make(g_ss->msg[i], MSG_LEN),
                       atp_slice_make(g_ss->sig[i], ATP_SIG_LEN), NULL) != 0) {
        die("verify failed");
    }
    b->sink++;
    return MSG_LEN;
}

static size_t step_verify_prehash(bench *b, size_t i)
{
    if (atp_key_verify_prehash(g_ss->pub, g_ss->hash[i], atp_slice_make(g_ss->sig[i], ATP_SIG_LEN),
                               NULL) != 0) {
        die("verify failed");
    }
    b->sink++;
    return MSG_LEN;
}

/* Key from a fixed scalar; NSIG messages of MSG_LEN bytes, their hashes and our signatures. */
static void sigset_init(sigset *s, atp_curve c)
{
    uint8_t d[32], pub[ATP_KEY_PUB_LEN];
    memset(d, 7, sizeof d);
    if (atp_key_import_private(c, atp_slice_make(d, 32), &s->priv, NULL) != 0) {
        die("key import failed");
    }
    atp_key_export_public(s->priv, pub);
    if (atp_key_import_public(c, atp_slice_make(pub, sizeof pub), &s->pub, NULL) != 0) {
        die("public key import failed");
    }
    for (int i = 0; i < NSIG; i++) {
        memset(s->msg[i], i + 1, MSG_LEN);
        atp_sha256(atp_slice_make(s->msg[i], MSG_LEN), s->hash[i]);
        if (atp_key_sign(s->priv, atp_slice_make(s->msg[i], MSG_LEN), s->sig[i], NULL) != 0) {
            die("sign failed");
        }
    }
}

/* ---- ECDSA: the raw libraries ---- */

typedef struct raw_k1 {
    secp256k1_context *ctx;
    secp256k1_pubkey pub;
    secp256k1_ecdsa_signature sig[NSIG];
    uint8_t seckey[32];
} raw_k1;

static raw_k1 g_k1;

/* Pre-parsed public key and signatures: only secp256k1_ecdsa_verify is timed. */
static void raw_k1_init(const sigset *s)
{
    g_k1.ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    memset(g_k1.seckey, 7, sizeof g_k1.seckey);
    if (!secp256k1_ec_pubkey_create(g_k1.ctx, &g_k1.pub, g_k1.seckey)) {
        die("secp256k1 pubkey");
    }
    for (int i = 0; i < NSIG; i++) {
        if (!secp256k1_ecdsa_signature_parse_compact(g_k1.ctx, &g_k1.sig[i], s->sig[i])) {
            die("secp256k1 parse");
        }
    }
}

static size_t step_raw_k1_verify(bench *b, size_t i)
{
    if (!secp256k1_ecdsa_verify(g_k1.ctx, &g_k1.sig[i], g_ss->hash[i], &g_k1.pub)) {
        die("raw verify failed");
    }
    b->sink++;
    return 0;
}

static size_t step_raw_k1_sign(bench *b, size_t i)
{
    secp256k1_ecdsa_signature sig;
    if (!secp256k1_ecdsa_sign(g_k1.ctx, &sig, g_ss->hash[i], g_k1.seckey, NULL, NULL)) {
        die("raw sign failed");
    }
    b->sink += sig.data[0];
    return 0;
}

typedef struct raw_p256 {
    EVP_PKEY *key;
    EVP_PKEY_CTX *sctx, *vctx;
    uint8_t der[NSIG][80];
    size_t der_len[NSIG];
} raw_p256;

static raw_p256 g_p2;

/* OpenSSL's own P-256 key and DER signatures; sign and verify contexts initialised once, so
 * the loop times EVP_PKEY_sign / EVP_PKEY_verify alone. */
static void raw_p256_init(const sigset *s)
{
    g_p2.key = EVP_EC_gen("P-256");
    g_p2.sctx = g_p2.key ? EVP_PKEY_CTX_new(g_p2.key, NULL) : NULL;
    g_p2.vctx = g_p2.key ? EVP_PKEY_CTX_new(g_p2.key, NULL) : NULL;
    if (!g_p2.sctx || !g_p2.vctx || EVP_PKEY_sign_init(g_p2.sctx) != 1 ||
        EVP_PKEY_verify_init(g_p2.vctx) != 1) {
        die("OpenSSL P-256 setup");
    }
    for (int i = 0; i < NSIG; i++) {
        g_p2.der_len[i] = sizeof g_p2.der[i];
        if (EVP_PKEY_sign(g_p2.sctx, g_p2.der[i], &g_p2.der_len[i], s->hash[i], 32) != 1) {
            die("OpenSSL P-256 sign");
        }
    }
}

static size_t step_raw_p256_verify(bench *b, size_t i)
{
    if (EVP_PKEY_verify(g_p2.vctx, g_p2.der[i], g_p2.der_len[i], g_ss->hash[i], 32) != 1) {
        die("raw P-256 verify failed");
    }
    b->sink++;
    return 0;
}

static size_t step_raw_p256_sign(bench *b, size_t i)
{
    uint8_t der[80];
    size_t len = sizeof der;
    if (EVP_PKEY_sign(g_p2.sctx, der, &len, g_ss->hash[i], 32) != 1) {
        die("raw P-256 sign failed");
    }
    b->sink += len;
    return 0;
}

/* Ours and the raw library in interleaved rounds (best of each), so that a burst of load from
 * elsewhere hits both sides of a ratio alike. */
static void ecdsa_figures(bench *b, atp_curve c, step_fn raw_sign, step_fn raw_verify)
{
    static const char *const what[] = {"sign.per_s", "sign.raw_per_s", "verify.per_s",
                                       "verify.prehash_per_s", "verify.raw_per_s"};
    step_fn fns[] = {step_sign, raw_sign, step_verify, step_verify_prehash, raw_verify};
    double best[5] = {0}, ops, mb;
    uint64_t mask[5];
    char name[64];
    for (int k = 0; k < 5; k++) {
        run_loop(b, fns[k], NSIG, g_seconds / 10, 0, &ops, &mb);
        mask[k] = mask_for(ops);
    }
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 5; k++) {
            run_loop(b, fns[k], NSIG, g_seconds / ROUNDS, mask[k], &ops, &mb);
            best[k] = ops > best[k] ? ops : best[k];
        }
    }
    for (int k = 0; k < 5; k++) {
        snprintf(name, sizeof name, "%s.%s", atp_curve_name(c), what[k]);
        fig(name, best[k]);
    }
}

static void crypto_figures(bench *b)
{
    static sigset k1, p2;
    sigset_init(&k1, ATP_CURVE_K256);
    sigset_init(&p2, ATP_CURVE_P256);
    raw_k1_init(&k1);
    raw_p256_init(&p2);
    if (wanted("k256")) {
        g_ss = &k1;
        ecdsa_figures(b, ATP_CURVE_K256, step_raw_k1_sign, step_raw_k1_verify);
    }
    if (wanted("p256")) {
        g_ss = &p2;
        ecdsa_figures(b, ATP_CURVE_P256, step_raw_p256_sign, step_raw_p256_verify);
    }
    atp_key_destroy(k1.priv);
    atp_key_destroy(k1.pub);
    atp_key_destroy(p2.priv);
    atp_key_destroy(p2.pub);
    secp256k1_context_destroy(g_k1.ctx);
    EVP_PKEY_CTX_free(g_p2.sctx);
    EVP_PKEY_CTX_free(g_p2.vctx);
    EVP_PKEY_free(g_p2.key);
}

int main(int argc, char **argv)
{
    corpus c = {0};
    bench b = {.c = &c};
    if (argc < 2) {
        fprintf(stderr, "usage: bench_common DIR [SECONDS [NAME-PREFIX]]\n");
        return 2;
    }
    if (argc > 2) {
        g_seconds = strtod(argv[2], NULL);
        g_seconds = g_seconds > 0.05 ? g_seconds : 1.5;
    }
    load_corpus(&c, argv[1]);
    printf("corpus.records %zu\ncorpus.MB %.2f\n", c.n, (double)c.total / 1e6);
    b.arena = atp_arena_create((size_t)256 << 10);
    atp_buf_init(&b.out, (size_t)64 << 20);
    /* A third argument runs only the figures whose name starts with it (for profiling). */
    g_only = argc > 3 ? argv[3] : NULL;
    cbor_figures(&b);
    if (wanted("k256") || wanted("p256")) {
        crypto_figures(&b);
    }
    fprintf(stderr, "bench_common: done (sink %" PRIu64 ")\n", b.sink);
    atp_buf_release(&b.out);
    atp_arena_destroy(b.arena);
    free(c.cbor);
    free(c.off);
    free(c.len);
    free(c.json);
    free(c.line);
    free(c.line_len);
    return 0;
}

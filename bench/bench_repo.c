/* bench_repo.c: the repository engine on the generated corpus, one phase per process so that
 * each phase's peak memory (VmHWM) is its own.
 *
 *   bench_repo DIR build   [N]   N records (default: the whole corpus) under TID paths, applied
 *                                in commits of 200 (ATP_REPO_MAX_WRITES: the repo API's bulk
 *                                path), then the full export written to DIR/repo_c.car
 *   bench_repo DIR import        DIR/repo_c.car imported and fully verified (signature, every
 *                                block hash, the whole tree, every record) into a memory store
 *   bench_repo DIR commits [M]   after an untimed import: M single-record commits one by one
 *                                (80 % creates, 10 % updates, 10 % deletes), each also checked
 *                                by sync v1.1 inversion from its #commit CAR slice;
 *                                atp_repo_apply_store removes the blocks each commit makes
 *                                unreachable (superseded record blocks are left in place)
 *
 * DIR holds corpus.cbor / corpus.idx (bench/js/gen_corpus.mjs), read whole before any phase but
 * import; the CAR is always streamed from its file in 64 KiB chunks (bench_repo.mjs does the
 * same with @atproto/repo's readCarStream), so the corpus is the only input held in memory on
 * either side. Each phase prints its raw peak and its net peak (see mem_figs). Prints "name
 * value" lines;
 * bench/run-repo.sh pairs them with bench/js/bench_repo.mjs. Times are CPU time of the process
 * (the machine is shared: time spent descheduled must not count), as in bench_common.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/blockstore.h"
#include "atp/car.h"
#include "atp/cbor.h"
#include "atp/crypto.h"
#include "atp/repo.h"
#include "atp/sha256.h"

#define BENCH_DID "did:plc:benchrepoabcdefghijklmno"
#define BENCH_KEY_LABEL "atproto-c repo bench k256"
#define PATH_MAX_LEN 128

typedef struct corpus {
    uint8_t *cbor;
    size_t *off, *len;
    size_t n;
} corpus;

_Noreturn static void die(const char *what, const atp_err *err)
{
    fprintf(stderr, "bench_repo: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A memory figure of this process in KiB from /proc/self/status: "VmHWM:" (peak resident set)
 * or "VmRSS:" (resident now); -1 if absent. */
static long status_kb(const char *key)
{
    char line[256];
    long kb = -1;
    size_t klen = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0) {
            kb = strtol(line + klen, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

static void fig(const char *name, double v)
{
    printf("%s %.*f\n", name, v < 100 ? 2 : 1, v);
    fflush(stdout);
}

/* The phase's memory figures: raw peak (VmHWM), the base (VmRSS taken in main right after the
 * shared inputs were loaded: the corpus, or nothing for import, whose CAR is streamed) and the
 * net peak, peak minus base. bench_repo.mjs prints the same three, measured the same way. */
static void mem_figs(const char *phase, long base_kb)
{
    char name[64];
    long peak = status_kb("VmHWM:");
    snprintf(name, sizeof name, "repo.%s.peak_MB", phase);
    fig(name, (double)peak / 1024);
    snprintf(name, sizeof name, "repo.%s.base_MB", phase);
    fig(name, (double)base_kb / 1024);
    snprintf(name, sizeof name, "repo.%s.net_MB", phase);
    fig(name, (double)(peak - base_kb) / 1024);
}

static uint8_t *read_all(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        die(path, NULL);
    }
    long n = ftell(f);
    uint8_t *p = atp_xmalloc(n > 0 ? (size_t)n : 1);
    rewind(f);
    if (n < 0 || fread(p, 1, (size_t)n, f) != (size_t)n) {
        die(path, NULL);
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void load_corpus(corpus *c, const char *dir)
{
    size_t cbor_len, idx_len, off = 0;
    c->cbor = read_all(dir, "corpus.cbor", &cbor_len);
    uint8_t *idx = read_all(dir, "corpus.idx", &idx_len);
    c->n = idx_len / 4;
    c->off = atp_xcalloc(c->n, sizeof *c->off);
    c->len = atp_xcalloc(c->n, sizeof *c->len);
    for (size_t i = 0; i < c->n; i++) {
        c->len[i] = (size_t)idx[4 * i] | (size_t)idx[4 * i + 1] << 8 |
                    (size_t)idx[4 * i + 2] << 16 | (size_t)idx[4 * i + 3] << 24;
        c->off[i] = off;
        off += c->len[i];
    }
    if (off != cbor_len) {
        die("corpus.idx does not match corpus.cbor", NULL);
    }
    free(idx);
}

static atp_slice record(const corpus *c, size_t i)
{
    i %= c->n;
    return atp_slice_make(c->cbor + c->off[i], c->len[i]);
}

/* The TID of path number i: time 1700000000 s + i * 1.000003 ms, clock id i % 1024, so paths
 * sort by i as in a real repo. bench_repo.mjs computes the same. */
static void tid_for(uint64_t i, char out[14])
{
    static const char b32[] = "234567abcdefghijklmnopqrstuvwxyz";
    uint64_t v = (1700000000000000u + i * 1000003u / 1000u) << 10 | (i % 1024);
    for (int k = 12; k >= 0; k--) {
        out[k] = b32[v & 31];
        v >>= 5;
    }
    out[13] = '\0';
}

/* "<$type of record (i mod n)>/<tid_for(i)>" into out. */
static atp_slice path_for(const corpus *c, uint64_t i, atp_arena *a, char out[PATH_MAX_LEN])
{
    atp_cbor *v = NULL;
    char tid[14];
    if (atp_cbor_decode(a, record(c, (size_t)i), NULL, &v, NULL) != 0) {
        die("corpus record does not decode", NULL);
    }
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    tid_for(i, tid);
    int n = snprintf(out, PATH_MAX_LEN, "%.*s/%s", t ? (int)t->u.str.len : 0,
                     t ? (const char *)t->u.str.ptr : "", tid);
    return atp_slice_make(out, (size_t)n);
}

static atp_key *bench_key(void)
{
    uint8_t d[32];
    atp_key *k = NULL;
    atp_sha256(atp_slice_str(BENCH_KEY_LABEL), d);
    if (atp_key_import_private(ATP_CURVE_K256, atp_slice_make(d, 32), &k, NULL) != 0) {
        die("key", NULL);
    }
    return k;
}

/* Paths of records 0..n-1 (plus `extra` more, for later creates), computed before timing. */
static char (*make_paths(const corpus *c, size_t n))[PATH_MAX_LEN]
{
    char(*paths)[PATH_MAX_LEN] = atp_xcalloc(n, PATH_MAX_LEN);
    atp_arena *a = atp_arena_create(1 << 16);
    for (size_t i = 0; i < n; i++) {
        (void)path_for(c, i, a, paths[i]);
        atp_arena_reset(a);
    }
    atp_arena_destroy(a);
    return paths;
}

static int write_fn(void *ctx, atp_slice bytes)
{
    return fwrite(bytes.ptr, 1, bytes.len, ctx) == bytes.len ? 0 : ATP_EIO;
}

static void phase_build(const corpus *c, const char *dir, size_t n, long base_kb)
{
    char(*paths)[PATH_MAX_LEN] = make_paths(c, n), file[4096];
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_arena *a = atp_arena_create(1 << 20);
    atp_key *key = bench_key();
    atp_repo_write w[ATP_REPO_MAX_WRITES];
    atp_repo_commit cm;
    atp_repo *r = NULL;
    atp_err err;
    double t0 = cpu_now();
    if (atp_repo_create(bs, atp_slice_str(BENCH_DID), key, NULL, &r, &err) != 0) {
        die("repo_create", &err);
    }
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < ATP_REPO_MAX_WRITES && i < n; k++, i++) {
            w[k] = (atp_repo_write){ATP_REPO_CREATE, atp_slice_str(paths[i]), NULL, record(c, i),
                                    NULL};
        }
        if (atp_repo_apply_store(r, w, k, a, &cm, &err) != 0) {
            die("apply", &err);
        }
        atp_arena_reset(a);
    }
    double t1 = cpu_now();
    fig("repo.build.records_per_s", (double)n / (t1 - t0));
    snprintf(file, sizeof file, "%s/repo_c.car", dir);
    FILE *f = fopen(file, "wb");
    atp_car_writer cw;
    atp_car_writer_init_fn(&cw, write_fn, f);
    double t2 = cpu_now();
    if (!f || atp_repo_export(r, &cw, &err) != 0 || fflush(f) != 0) {
        die("export", &err);
    }
    double t3 = cpu_now();
    fclose(f);
    fig("repo.export.records_per_s", (double)n / (t3 - t2));
    fig("repo.export.MBps", (double)atp_car_writer_written(&cw) / (t3 - t2) / 1e6);
    mem_figs("build", base_kb);
    char root[ATP_CID_STR_MAX];
    atp_cid_format_to(atp_repo_data(r), root, sizeof root);
    fprintf(stderr, "bench_repo: %zu records, %" PRIu64 " bytes of CAR, root %s\n", n,
            atp_car_writer_written(&cw), root);
    printf("repo.root %s\n", root);
    atp_repo_destroy(r);
    atp_blockstore_destroy(bs);
    atp_arena_destroy(a);
    atp_key_destroy(key);
    free(paths);
}

/* Imports DIR/repo_c.car with full verification into a new memory store (*bs_out), streaming
 * the file in 64 KiB chunks as a server receiving it would (the CAR is never whole in memory). */
static atp_repo_info import_car(const char *dir, atp_blockstore **bs_out, double *secs,
                                size_t *bytes)
{
    static uint8_t chunk[1 << 16];
    char path[4096];
    atp_key *key = bench_key();
    atp_arena *a = atp_arena_create(1 << 16);
    atp_blockstore *bs = atp_blockstore_mem_create();
    atp_repo_import_opts o = {.key = key, .did = atp_slice_str(BENCH_DID)};
    atp_repo_info info;
    atp_err err = {0};
    size_t n;
    snprintf(path, sizeof path, "%s/repo_c.car", dir);
    FILE *f = fopen(path, "rb");
    atp_repo_importer *im = atp_repo_importer_create(&o);
    double t0 = cpu_now();
    *bytes = 0;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (atp_repo_importer_feed(im, atp_slice_make(chunk, n), &err) != 0) {
            die("import", &err);
        }
        *bytes += n;
    }
    if (!f || atp_repo_importer_finish(im, bs, a, &info, &err) != 0) {
        die("import", &err);
    }
    *secs = cpu_now() - t0;
    *bs_out = bs;
    fclose(f);
    atp_repo_importer_destroy(im);
    atp_arena_destroy(a);
    atp_key_destroy(key);
    return info;
}

static void phase_import(const char *dir, long base_kb)
{
    atp_blockstore *bs = NULL;
    double secs;
    size_t bytes;
    atp_repo_info info = import_car(dir, &bs, &secs, &bytes);
    fig("repo.import.records_per_s", (double)info.n_records / secs);
    fig("repo.import.MBps", (double)bytes / secs / 1e6);
    mem_figs("import", base_kb);
    atp_blockstore_destroy(bs);
}

/* Write i of the commits phase over a repo of records 0..n-1: 10 % updates (of paths >= 1000),
 * 10 % deletes (paths 0..999, each once), the rest creates of new paths (n + i). */
static atp_repo_write commit_write(const corpus *c, size_t n, size_t i, atp_arena *a,
                                   char path[PATH_MAX_LEN])
{
    if (i % 10 == 3) {
        size_t u = 1000 + (i / 10 * 37) % (n - 1000);
        return (atp_repo_write){ATP_REPO_UPDATE, path_for(c, u, a, path), NULL,
                                record(c, i + 7), NULL};
    }
    if (i % 10 == 7) {
        return (atp_repo_write){ATP_REPO_DELETE, path_for(c, i / 10, a, path), NULL, {0}, NULL};
    }
    return (atp_repo_write){ATP_REPO_CREATE, path_for(c, n + i, a, path), NULL, record(c, n + i),
                            NULL};
}

/* Sync v1.1 check of commit `cm` from its #commit CAR slice, as a relay would. */
static void invert_one(const atp_repo_commit *cm, const atp_key *key, atp_buf *car)
{
    atp_car_writer w;
    atp_repo_invert_report rep;
    atp_err err;
    atp_buf_reset(car);
    atp_car_writer_init_buf(&w, car);
    if (atp_repo_commit_car(cm, &w, &err) != 0) {
        die("commit_car", &err);
    }
    atp_repo_invert_in in = {atp_buf_slice(car), cm->ops, cm->n_ops, &cm->prev_data, key,
                             atp_slice_str(BENCH_DID), atp_slice_make(cm->rev, 13), &cm->cid};
    if (atp_repo_invert_check(&in, &rep, &err) != 0) {
        fprintf(stderr, "bench_repo: inversion: %s\n", rep.detail);
        die("invert", &err);
    }
}

static void phase_commits(const corpus *c, const char *dir, size_t m, long base_kb)
{
    atp_blockstore *bs = NULL;
    double secs, t_apply = 0, t_invert = 0;
    size_t bytes;
    atp_repo_info info = import_car(dir, &bs, &secs, &bytes);
    atp_key *key = bench_key();
    atp_arena *a = atp_arena_create(1 << 16), *pa = atp_arena_create(1 << 12);
    atp_repo *r = NULL;
    atp_repo_commit cm;
    atp_buf car;
    atp_err err;
    char path[PATH_MAX_LEN];
    if (m > 10000 || info.n_records <= 1000 ||
        atp_repo_open(bs, &info.head, key, NULL, &r, &err) != 0) {
        die("open (at most 10000 commits over more than 1000 records)", NULL);
    }
    atp_buf_init(&car, (size_t)16 << 20);
    for (size_t i = 0; i < m; i++) {
        atp_repo_write w = commit_write(c, info.n_records, i, pa, path);
        double t0 = cpu_now();
        if (atp_repo_apply_store(r, &w, 1, a, &cm, &err) != 0) {
            die("apply", &err);
        }
        double t1 = cpu_now();
        invert_one(&cm, key, &car);
        t_invert += cpu_now() - t1;
        t_apply += t1 - t0;
        atp_arena_reset(a);
        atp_arena_reset(pa);
    }
    fig("repo.commit.per_s", (double)m / t_apply);
    fig("repo.invert.per_s", (double)m / t_invert);
    mem_figs("commits", base_kb);
    atp_buf_release(&car);
    atp_repo_destroy(r);
    atp_blockstore_destroy(bs);
    atp_arena_destroy(a);
    atp_arena_destroy(pa);
    atp_key_destroy(key);
}

int main(int argc, char **argv)
{
    corpus c;
    if (argc < 3) {
        fprintf(stderr, "usage: bench_repo DIR build [N] | import | commits [M]\n");
        return 2;
    }
    memset(&c, 0, sizeof c);
    if (strcmp(argv[2], "import") != 0) {
        load_corpus(&c, argv[1]); /* import needs only the CAR: keep its peak its own */
    }
    long base_kb = status_kb("VmRSS:"); /* right after the shared inputs: see mem_figs */
    size_t arg = argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : 0;
    if (strcmp(argv[2], "build") == 0) {
        phase_build(&c, argv[1], arg && arg < c.n ? arg : c.n, base_kb);
    } else if (strcmp(argv[2], "import") == 0) {
        phase_import(argv[1], base_kb);
    } else if (strcmp(argv[2], "commits") == 0) {
        phase_commits(&c, argv[1], arg ? arg : 10000, base_kb);
    } else {
        fprintf(stderr, "bench_repo: unknown phase %s\n", argv[2]);
        return 2;
    }
    free(c.cbor);
    free(c.off);
    free(c.len);
    return 0;
}

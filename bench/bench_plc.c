/* bench/bench_plc.c: the plc directory's throughput on loopback.
 *
 *   bench_plc PLC_BIN [N] [THREADS]
 *
 * Starts PLC_BIN on 127.0.0.1 (ephemeral port, a fresh database in a temporary folder), then:
 *  - genesis: N signed genesis ops (made beforehand, not timed) POSTed by THREADS clients with
 *    keep-alive; each is fully validated and committed (WAL, synchronous=FULL) before its 200;
 *  - update: one update per DID (prev = its genesis, signed by the second rotation key), same way;
 *  - resolve.cold: every DID resolved once through atp/resolve.h against the daemon (HTTP GET
 *    of the document, parse), then resolve.warm: the same DIDs again from the resolver's cache.
 * Prints one "name value" line per figure (rates per wall-clock second). Bounded: N defaults to
 * 2000 and the daemon is stopped with SIGTERM at the end.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atp/crypto.h"
#include "atp/plc.h"
#ifdef BENCH_HAVE_RESOLVE
#include "atp/resolve.h"
#endif

typedef struct op_text {
    char did[ATP_PLC_DID_LEN + 1];
    char cid[ATP_CID_STR_MAX];
    char *json;
} op_text;

static atp_key *rot1, *rot2, *signing;
static char rot1_dk[128], rot2_dk[128], signing_dk[128];
static unsigned port;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void didkey(const atp_key *k, char out[128])
{
    atp_buf b;
    atp_buf_init(&b, 127);
    atp_didkey_encode(&b, k);
    snprintf(out, 128, "%.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
}

/* Signs an op (genesis if prev is NULL) and keeps its JSON, CID and (genesis) DID. */
static int make_op(unsigned i, const char *prev, const atp_key *signer, op_text *out)
{
    atp_arena *a = atp_arena_create(0);
    atp_slice keys[2] = {atp_slice_str(rot1_dk), atp_slice_str(rot2_dk)};
    atp_plc_vm vm = {ATP_SLICE_LIT("atproto"), atp_slice_str(signing_dk)};
    atp_plc_service svc = {ATP_SLICE_LIT("atproto_pds"), ATP_SLICE_LIT("AtprotoPersonalDataServer"),
                           ATP_SLICE_LIT("https://pds.example.com")};
    char aka[64];
    atp_slice akas[1];
    atp_plc_op op;
    atp_cid cid;
    atp_buf b;
    int rc;
    snprintf(aka, sizeof aka, "at://user%u%s.bench.test", i, prev ? "x" : "");
    akas[0] = atp_slice_str(aka);
    memset(&op, 0, sizeof op);
    op.type = ATP_PLC_OPERATION;
    op.rotation_keys = keys, op.n_rotation_keys = 2, op.vms = &vm, op.n_vms = 1;
    op.aka = akas, op.n_aka = 1, op.services = &svc, op.n_services = 1;
    op.prev = prev ? atp_slice_str(prev) : atp_slice_make("", 0);
    rc = atp_plc_op_sign(a, &op, signer, NULL, NULL);
    if (rc == 0 && !prev) {
        rc = atp_plc_did_for_genesis(&op, out->did, NULL);
    }
    if (rc == 0) {
        rc = atp_plc_op_cid(&op, &cid, NULL);
    }
    atp_cid_format_to(&cid, out->cid, sizeof out->cid);
    atp_buf_init(&b, 1 << 16);
    atp_plc_op_encode_json(&b, &op, 0);
    out->json = (char *)atp_buf_take(&b, NULL);
    atp_arena_destroy(a);
    return rc == 0 && out->json ? 0 : -1;
}

/* ---- load generation ---- */

typedef struct job {
    op_text *ops;
    const op_text *dids; /* the genesis ops, for the DID of each */
    unsigned from, to;
    unsigned failed;
} job;

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static void *post_range(void *arg)
{
    job *j = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128];
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (unsigned i = j->from; i < j->to; i++) {
        long status = 0;
        snprintf(url, sizeof url, "http://127.0.0.1:%u/%s", port, j->dids[i].did);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->ops[i].json);
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200) {
            j->failed++;
        }
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* POSTs ops[0..n) with `threads` clients; returns ops per second, -1 if any failed. */
static double post_all(op_text *ops, const op_text *dids, unsigned n, unsigned threads)
{
    pthread_t th[16];
    job jobs[16];
    unsigned failed = 0;
    double t0 = now_s(), dt;
    for (unsigned t = 0; t < threads; t++) {
        jobs[t] = (job){ops, dids, n * t / threads, n * (t + 1) / threads, 0};
        pthread_create(&th[t], NULL, post_range, &jobs[t]);
    }
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        failed += jobs[t].failed;
    }
    dt = now_s() - t0;
    if (failed) {
        fprintf(stderr, "bench_plc: %u posts failed\n", failed);
        return -1;
    }
    return n / dt;
}

/* ---- resolution ---- */

#ifdef BENCH_HAVE_RESOLVE
/* Resolves every DID once through `r`; returns DIDs per second, -1 on any failure. */
static double resolve_all(atp_resolver *r, const op_text *ops, unsigned n)
{
    atp_arena *a = atp_arena_create(0);
    double t0 = now_s(), dt;
    unsigned failed = 0;
    for (unsigned i = 0; i < n; i++) {
        atp_didoc doc;
        atp_arena_reset(a);
        if (atp_resolve_did(r, atp_slice_str(ops[i].did), a, &doc, NULL) < 0) {
            failed++;
        }
    }
    dt = now_s() - t0;
    atp_arena_destroy(a);
    return failed ? -1 : n / dt;
}

static void bench_resolve(const op_text *ops, unsigned n)
{
    atp_resolver_config rc;
    atp_resolver *r = NULL;
    char url[64];
    double cold, warm = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    atp_resolver_config_init(&rc);
    rc.plc_url = url;
    rc.local = true;
    rc.cache_max = n + 16;
    if (atp_resolver_create(&rc, &r, NULL) < 0) {
        printf("plc.resolve unavailable\n");
        return;
    }
    cold = resolve_all(r, ops, n);
    for (int round = 0; round < 5; round++) {
        double w = resolve_all(r, ops, n);
        warm = w > warm ? w : warm;
    }
    printf("plc.resolve.cold.per_s %.1f\n", cold);
    printf("plc.resolve.warm.per_s %.1f\n", warm);
    atp_resolver_destroy(r);
}
#else
static void bench_resolve(const op_text *ops, unsigned n)
{
    (void)ops, (void)n;
    printf("plc.resolve not built (atp/resolve.h missing)\n");
}
#endif

/* ---- the daemon ---- */

static pid_t start_daemon(const char *bin, const char *dir)
{
    char db[256], log[256];
    pid_t pid;
    snprintf(db, sizeof db, "%s/bench.sqlite", dir);
    snprintf(log, sizeof log, "%s/plc.log", dir);
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execl(bin, "plc", "--port", "0", "--db", db, "--log-level", "info", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400 && port == 0; i++) {
        char buf[4096] = {0};
        FILE *f = fopen(log, "r");
        const char *p;
        struct timespec ts = {0, 25000000};
        if (f) {
            size_t len = fread(buf, 1, sizeof buf - 1, f);
            buf[len] = '\0';
            fclose(f);
        }
        p = strstr(buf, "\"msg\":\"listening\"");
        p = p ? strstr(p, "\"port\":\"") : NULL;
        port = p ? (unsigned)strtoul(p + 8, NULL, 10) : 0;
        nanosleep(&ts, NULL);
    }
    return pid;
}

static int make_all(op_text *gen, op_text *upd, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (make_op(i, NULL, rot1, &gen[i]) < 0 || make_op(i, gen[i].cid, rot2, &upd[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000;
    unsigned threads = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 4;
    char dir[] = "/tmp/bench_plc_XXXXXX", cmd[64];
    op_text *gen, *upd;
    pid_t pid;
    int st = 0;
    if (argc < 2 || n == 0 || n > 100000 || threads == 0 || threads > 16 || !mkdtemp(dir)) {
        fprintf(stderr, "usage: bench_plc PLC_BIN [N<=100000] [THREADS<=16]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (atp_key_generate(ATP_CURVE_K256, &rot1, NULL) < 0 ||
        atp_key_generate(ATP_CURVE_K256, &rot2, NULL) < 0 ||
        atp_key_generate(ATP_CURVE_K256, &signing, NULL) < 0) {
        return 1;
    }
    didkey(rot1, rot1_dk), didkey(rot2, rot2_dk), didkey(signing, signing_dk);
    gen = calloc(n, sizeof *gen);
    upd = calloc(n, sizeof *upd);
    if (!gen || !upd || make_all(gen, upd, n) < 0) {
        fprintf(stderr, "bench_plc: cannot build ops\n");
        return 1;
    }
    pid = start_daemon(argv[1], dir);
    if (port == 0) {
        fprintf(stderr, "bench_plc: daemon did not start (log in %s)\n", dir);
        return 1;
    }
    printf("plc.ops %u threads %u\n", n, threads);
    printf("plc.genesis.per_s %.1f\n", post_all(gen, gen, n, threads));
    printf("plc.update.per_s %.1f\n", post_all(upd, gen, n, threads));
    bench_resolve(gen, n);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_plc: could not remove %s\n", dir);
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

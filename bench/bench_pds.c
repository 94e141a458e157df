/* bench_pds: an HTTP/1.1 keep-alive load client for any PDS (ours or the reference), one figure
 * a line ("name value"), so bench/run-pds.sh can pair the two servers' figures by name:
 *
 *   bench_pds --url http://127.0.0.1:40008 --pid 1234 [--accounts 16] [--seconds 5]
 *             [--conc 1,16,64] [--read-conc 16] [--prefix b]
 *
 * Phases: createAccount x N (sequential), createRecord (app.bsky.feed.post) at each write
 * concurrency spread over the accounts (worker i writes as account i % N), then getRecord and
 * listRecords at the read concurrency. Each phase runs for --seconds after a warm-up of a fifth
 * of that (not counted), one thread per keep-alive connection. Per phase: requests/s, p50/p99
 * latency, errors, the server's CPU (from /proc/<pid>/stat, all threads) and the client's own
 * CPU, so one can see the client is not the bottleneck. Memory of the server: VmRSS idle
 * (before any load), the largest VmRSS sampled every 50 ms under load, VmHWM and VmRSS after.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "bench_http.h"

#define MAX_THREADS 256
#define MAX_ACCOUNTS 1024
#define MAX_SAMPLES ((size_t)1 << 20) /* latencies kept per thread */
#define MAX_RKEYS 4096                /* rkeys kept per account for getRecord */

typedef enum { PH_WRITE, PH_GET, PH_LIST } phase_kind;

typedef struct slot {
    bh_account a;
    pthread_mutex_t mu;
    char (*rkeys)[16];
    size_t n_rkeys;
} slot;

static struct {
    bh_target t;
    long pid;
    unsigned n_accounts, read_conc, n_conc;
    unsigned conc[8];
    double seconds;
    const char *prefix;
} opt;

static slot *accts;
static atomic_int sampling = 1;
static double rss_max;

typedef struct worker {
    pthread_t th;
    unsigned id;
    phase_kind kind;
    int64_t t_warm, t_end; /* warm-up ends; no new request after t_end */
    int64_t *lat;
    size_t n_lat;
    unsigned long ok, errors;
    uint64_t rng;
    size_t bytes;
} worker;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The rkey is the last segment of the at-uri a write answers with. */
static void keep_rkey(slot *ac, const char *body)
{
    char uri[300];
    if (!bh_json_str(body, "uri", uri, sizeof uri)) {
        return;
    }
    const char *slash = strrchr(uri, '/');
    if (!slash || strlen(slash + 1) >= 16) {
        return;
    }
    pthread_mutex_lock(&ac->mu);
    if (ac->n_rkeys < MAX_RKEYS) {
        snprintf(ac->rkeys[ac->n_rkeys++], 16, "%s", slash + 1);
    }
    pthread_mutex_unlock(&ac->mu);
}

/* Builds the path of a read; false if there is nothing to read yet. */
static bool read_path(worker *w, slot *ac, char *path, size_t cap)
{
    if (w->kind == PH_LIST) {
        snprintf(path, cap,
                 "/xrpc/com.atproto.repo.listRecords?repo=%s&collection=app.bsky.feed.post&limit=50",
                 ac->a.did);
        return true;
    }
    char rkey[16];
    pthread_mutex_lock(&ac->mu);
    size_t n = ac->n_rkeys;
    if (n > 0) {
        memcpy(rkey, ac->rkeys[xorshift(&w->rng) % n], sizeof rkey);
    }
    pthread_mutex_unlock(&ac->mu);
    if (n == 0) {
        return false;
    }
    snprintf(path, cap,
             "/xrpc/com.atproto.repo.getRecord?repo=%s&collection=app.bsky.feed.post&rkey=%s",
             ac->a.did, rkey);
    return true;
}

/* One request of the phase's kind; returns its status (0 = transport failure). */
static int one_request(worker *w, bh_conn *c, unsigned long k)
{
    char body[1024], path[512];
    bh_resp r;
    int st = 0;
    slot *ac = &accts[(w->id + k * (w->kind == PH_WRITE ? 0 : 1)) % opt.n_accounts];
    if (w->kind == PH_WRITE) {
        size_t n = bh_post_body(body, sizeof body, ac->a.did, w->id, k);
        if (bh_call(c, "POST", "/xrpc/com.atproto.repo.createRecord", ac->a.auth, body, n, &r,
                    false)) {
            st = r.status;
            if (st == 200) {
                keep_rkey(ac, r.body);
            }
        }
    } else {
        if (!read_path(w, ac, path, sizeof path)) {
            return 0;
        }
        if (bh_call(c, "GET", path, NULL, NULL, 0, &r, false)) {
            st = r.status;
        }
    }
    if (st != 200 && w->errors < 3) {
        fprintf(stderr, "bench_pds: status %d: %.200s\n", st, st ? r.body : "(transport)");
    }
    w->bytes += r.len;
    bh_resp_free(&r);
    return st;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    bh_conn c;
    bh_conn_init(&c, &opt.t);
    for (unsigned long k = 0;; k++) {
        int64_t t0 = bh_now_ns();
        if (t0 >= w->t_end) {
            break;
        }
        int st = one_request(w, &c, k);
        int64_t t1 = bh_now_ns();
        if (t0 < w->t_warm) {
            continue;
        }
        if (st == 200) {
            w->ok++;
            if (w->n_lat < MAX_SAMPLES) {
                w->lat[w->n_lat++] = t1 - t0;
            }
        } else {
            w->errors++;
        }
    }
    bh_conn_free(&c);
    return NULL;
}

static void *sampler_main(void *arg)
{
    (void)arg;
    while (sampling) {
        double mb = bh_proc_mb(opt.pid, "VmRSS");
        if (mb > rss_max) {
            rss_max = mb;
        }
        usleep(50000);
    }
    return NULL;
}

static void sleep_until(int64_t t)
{
    int64_t d = t - bh_now_ns();
    if (d > 0) {
        struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};
        nanosleep(&ts, NULL);
    }
}

/* Merges the workers' latencies and prints the phase's figures. */
static int report(const char *name, worker *ws, unsigned n, double wall, double srv_cpu,
                  double cli_cpu)
{
    size_t total = 0, k = 0, bytes = 0;
    unsigned long ok = 0, errors = 0;
    for (unsigned i = 0; i < n; i++) {
        total += ws[i].n_lat, ok += ws[i].ok, errors += ws[i].errors, bytes += ws[i].bytes;
    }
    int64_t *all = malloc((total + 1) * sizeof *all);
    if (!all) {
        abort();
    }
    for (unsigned i = 0; i < n; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n_lat * sizeof *all);
        k += ws[i].n_lat;
    }
    qsort(all, total, sizeof *all, bh_cmp_i64);
    printf("%s.per_s %.1f\n", name, (double)ok / wall);
    printf("%s.p50_ms %.2f\n", name, bh_pct_ms(all, total, 0.50));
    printf("%s.p90_ms %.2f\n", name, bh_pct_ms(all, total, 0.90));
    printf("%s.p99_ms %.2f\n", name, bh_pct_ms(all, total, 0.99));
    printf("%s.p999_ms %.2f\n", name, bh_pct_ms(all, total, 0.999));
    printf("%s.max_ms %.2f\n", name, total ? (double)all[total - 1] / 1e6 : 0.0);
    printf("%s.errors %lu\n", name, errors);
    if (srv_cpu > 0) {
        printf("%s.server_cpu_pct %.0f\n", name, 100 * srv_cpu / wall);
        printf("%s.per_server_cpu_s %.1f\n", name, (double)ok / srv_cpu);
    }
    printf("%s.client_cpu_pct %.0f\n", name, 100 * cli_cpu / wall);
    (void)bytes;
    fflush(stdout);
    free(all);
    return ok > 0 && errors * 10 <= ok ? 0 : 1;
}

/* Runs one phase at concurrency n and prints its figures. */
static int run_phase(const char *name, phase_kind kind, unsigned n)
{
    worker *ws = calloc(n, sizeof *ws);
    int64_t start = bh_now_ns();
    int64_t warm = start + (int64_t)(opt.seconds * 0.2e9);
    int64_t end = warm + (int64_t)(opt.seconds * 1e9);
    if (!ws) {
        abort();
    }
    for (unsigned i = 0; i < n; i++) {
        ws[i] = (worker){.id = i, .kind = kind, .t_warm = warm, .t_end = end,
                         .rng = 0x9e3779b97f4a7c15ULL * (i + 1)};
        ws[i].lat = malloc(MAX_SAMPLES * sizeof *ws[i].lat);
        if (!ws[i].lat || pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            abort();
        }
    }
    sleep_until(warm);
    double s0 = bh_proc_cpu(opt.pid), c0 = bh_self_cpu();
    int64_t t0 = bh_now_ns();
    for (unsigned i = 0; i < n; i++) {
        pthread_join(ws[i].th, NULL);
    }
    double wall = (double)(bh_now_ns() - t0) / 1e9;
    double s1 = bh_proc_cpu(opt.pid), c1 = bh_self_cpu();
    int rc = report(name, ws, n, wall, s0 >= 0 && s1 >= 0 ? s1 - s0 : -1, c1 - c0);
    for (unsigned i = 0; i < n; i++) {
        free(ws[i].lat);
    }
    free(ws);
    return rc;
}

static int create_accounts(void)
{
    bh_conn c;
    int64_t *lat = calloc(opt.n_accounts, sizeof *lat);
    int rc = 0;
    if (!lat) {
        abort();
    }
    bh_conn_init(&c, &opt.t);
    int64_t t0 = bh_now_ns();
    for (unsigned i = 0; i < opt.n_accounts && rc == 0; i++) {
        int64_t a = bh_now_ns();
        if (!bh_create_account(&c, opt.prefix, i, &accts[i].a)) {
            rc = 1;
        }
        lat[i] = bh_now_ns() - a;
    }
    double wall = (double)(bh_now_ns() - t0) / 1e9;
    if (rc == 0) {
        qsort(lat, opt.n_accounts, sizeof *lat, bh_cmp_i64);
        printf("pds.createAccount.per_s %.1f\n", (double)opt.n_accounts / wall);
        printf("pds.createAccount.p50_ms %.2f\n", bh_pct_ms(lat, opt.n_accounts, 0.5));
    }
    bh_conn_free(&c);
    free(lat);
    return rc;
}

static bool parse_conc(const char *s)
{
    opt.n_conc = 0;
    for (char *end; *s && opt.n_conc < 8; s = *end ? end + 1 : end) {
        long v = strtol(s, &end, 10);
        if (v <= 0 || v > MAX_THREADS || (*end && *end != ',')) {
            return false;
        }
        opt.conc[opt.n_conc++] = (unsigned)v;
    }
    return opt.n_conc > 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_pds --url http://127.0.0.1:PORT [--pid PID] [--accounts N] "
                    "[--seconds S] [--conc 1,16,64] [--read-conc 16] [--prefix P]\n");
    return 2;
}

static int parse_args(int argc, char **argv)
{
    const char *url = NULL;
    opt.n_accounts = 16, opt.read_conc = 16, opt.seconds = 5, opt.prefix = "bench";
    parse_conc("1,16,64");
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--url") == 0) {
            url = v;
        } else if (strcmp(k, "--pid") == 0) {
            opt.pid = strtol(v, NULL, 10);
        } else if (strcmp(k, "--accounts") == 0) {
            opt.n_accounts = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--seconds") == 0) {
            opt.seconds = strtod(v, NULL);
        } else if (strcmp(k, "--read-conc") == 0) {
            opt.read_conc = (unsigned)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--prefix") == 0) {
            opt.prefix = v;
        } else if (strcmp(k, "--conc") != 0 || !parse_conc(v)) {
            return usage();
        }
    }
    if (!url || !bh_parse_url(url, &opt.t) || opt.n_accounts == 0 ||
        opt.n_accounts > MAX_ACCOUNTS || opt.read_conc == 0 || opt.read_conc > MAX_THREADS ||
        opt.seconds <= 0 || opt.seconds > 120 || (argc - 1) % 2 != 0) {
        return usage();
    }
    return 0;
}

static int run_all(void)
{
    char name[64];
    int rc = create_accounts();
    for (unsigned i = 0; i < opt.n_conc && rc == 0; i++) {
        snprintf(name, sizeof name, "pds.write.c%u", opt.conc[i]);
        rc |= run_phase(name, PH_WRITE, opt.conc[i]);
    }
    if (rc == 0) {
        snprintf(name, sizeof name, "pds.getRecord.c%u", opt.read_conc);
        rc |= run_phase(name, PH_GET, opt.read_conc);
        snprintf(name, sizeof name, "pds.listRecords.c%u", opt.read_conc);
        rc |= run_phase(name, PH_LIST, opt.read_conc);
    }
    return rc;
}

int main(int argc, char **argv)
{
    pthread_t sampler;
    if (parse_args(argc, argv) != 0) {
        return 2;
    }
    accts = calloc(opt.n_accounts, sizeof *accts);
    for (unsigned i = 0; accts && i < opt.n_accounts; i++) {
        pthread_mutex_init(&accts[i].mu, NULL);
        accts[i].rkeys = calloc(MAX_RKEYS, sizeof *accts[i].rkeys);
        if (!accts[i].rkeys) {
            abort();
        }
    }
    if (!accts) {
        abort();
    }
    if (opt.pid > 0) {
        printf("pds.mem.idle_MB %.1f\n", bh_proc_mb(opt.pid, "VmRSS"));
    }
    pthread_create(&sampler, NULL, sampler_main, NULL);
    int rc = run_all();
    sampling = 0;
    pthread_join(sampler, NULL);
    if (opt.pid > 0) {
        printf("pds.mem.loaded_MB %.1f\n", rss_max);
        printf("pds.mem.peak_MB %.1f\n", bh_proc_mb(opt.pid, "VmHWM"));
        printf("pds.mem.after_MB %.1f\n", bh_proc_mb(opt.pid, "VmRSS"));
    }
    for (unsigned i = 0; i < opt.n_accounts; i++) {
        free(accts[i].rkeys);
    }
    free(accts);
    return rc;
}

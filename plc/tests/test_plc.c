/* plc/tests/test_plc.c: the plc daemon end to end. Spawns the built binary on 127.0.0.1 with
 * ephemeral ports (the port is read from its "listening" log line), talks HTTP with libcurl, and
 * builds ops with atp/plc.h. Covers: genesis, updates, tombstone, every GET route, export paging,
 * refusals that must leave the log untouched, the 72-hour recovery window (history written into
 * the database beforehand with old timestamps), SIGTERM, mirror convergence across a SIGKILL,
 * and ops made by the official @did-plc/lib (node). */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_spawn.h"
#include "t.h"

#include "atp/crypto.h"
#include "atp/plc.h"

#include "ops.h"
#include "store.h"

static char tmpdir[64];

/* ---- the daemon ---- */

/* The built plc on 127.0.0.1, an ephemeral port and `db`; a mirror of `mirror` if not NULL. */
static bool daemon_start(t_daemon *d, const char *name, const char *db, const char *mirror)
{
    const char *const args[] = {"--host", "127.0.0.1", "--port", "0", "--db", db,
                                mirror ? "--mirror" : NULL, mirror, "--mirror-poll-ms", "100",
                                NULL};
    return t_daemon_start(d, tmpdir, name, PLC_BIN, NULL, args);
}

/* ---- HTTP ---- */

typedef struct resp {
    long status;
    atp_buf body;
} resp;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    atp_buf_append(ud, p, size * n);
    return size * n;
}

/* GET (body NULL) or POST; the response body is NUL-terminated. Release with resp_free. */
static resp http(unsigned port, const char *path, const char *body, size_t body_len)
{
    resp r = {0, {0}};
    char url[512];
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    atp_buf_init(&r.body, (size_t)256 << 20);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    atp_buf_append_byte(&r.body, 0);
    r.body.len--;
    return r;
}

static const char *rtext(const resp *r)
{
    return r->body.ptr ? (const char *)r->body.ptr : "";
}

static long get_status(unsigned port, const char *path)
{
    resp r = http(port, path, NULL, 0);
    long s = r.status;
    atp_buf_release(&r.body);
    return s;
}

/* Body of a GET that must answer 200 (owned: free). */
static char *get_ok(unsigned port, const char *path)
{
    resp r = http(port, path, NULL, 0);
    if (r.status != 200) {
        T_FAILF("GET %s: %ld %s", path, r.status, rtext(&r));
    }
    return (char *)atp_buf_take(&r.body, NULL);
}

static long post(unsigned port, const char *did, const char *json, char **msg)
{
    char path[128];
    resp r;
    long s;
    snprintf(path, sizeof path, "/%s", did);
    r = http(port, path, json, strlen(json));
    s = r.status;
    if (msg) {
        *msg = (char *)atp_buf_take(&r.body, NULL);
    }
    atp_buf_release(&r.body);
    return s;
}

/* ---- ops ---- */

typedef struct tkey {
    atp_key *k;
    char didkey[ATP_DIDKEY_MAX_LEN + 16];
} tkey;

static void tkey_make(tkey *t, atp_curve c)
{
    atp_buf b;
    T_OK(atp_key_generate(c, &t->k, NULL));
    atp_buf_init(&b, 256);
    atp_didkey_encode(&b, t->k);
    snprintf(t->didkey, sizeof t->didkey, "%.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
}

/* A signed op as the test keeps it: JSON to post, CID (for the next prev). */
typedef struct top {
    char json[8192];
    char cid[PLC_CID_MAX];
    char did[ATP_PLC_DID_LEN + 1]; /* genesis only */
} top;

static void finish_op(atp_arena *a, atp_plc_op *op, const tkey *signer, top *out)
{
    atp_buf b;
    atp_cid cid;
    T_OK(atp_plc_op_sign(a, op, signer->k, NULL, NULL));
    atp_buf_init(&b, sizeof out->json - 1);
    atp_plc_op_encode_json(&b, op, 0);
    T_OK(b.err);
    snprintf(out->json, sizeof out->json, "%.*s", (int)b.len, (const char *)b.ptr);
    atp_buf_release(&b);
    T_OK(atp_plc_op_cid(op, &cid, NULL));
    atp_cid_format_to(&cid, out->cid, sizeof out->cid);
    out->did[0] = '\0';
    if (op->prev.len == 0 && op->type == ATP_PLC_OPERATION) {
        T_OK(atp_plc_did_for_genesis(op, out->did, NULL));
    }
}

/* A plc_operation: rotation keys, #atproto = `signing`, handle, PDS; prev NULL for genesis. */
static void make_op(const tkey *const *rot, size_t nrot, const tkey *signing, const char *handle,
                    const char *prev, const tkey *signer, top *out)
{
    atp_arena *a = atp_arena_create(0);
    atp_slice *keys = atp_arena_calloc(a, nrot, sizeof *keys);
    atp_plc_vm *vm = atp_arena_calloc(a, 1, sizeof *vm);
    atp_plc_service *svc = atp_arena_calloc(a, 1, sizeof *svc);
    atp_slice *aka = atp_arena_calloc(a, 1, sizeof *aka);
    char akabuf[300];
    atp_plc_op op;
    for (size_t i = 0; i < nrot; i++) {
        keys[i] = atp_slice_str(rot[i]->didkey);
    }
    snprintf(akabuf, sizeof akabuf, "at://%s", handle);
    *aka = atp_slice_str(akabuf);
    *vm = (atp_plc_vm){ATP_SLICE_LIT("atproto"), atp_slice_str(signing->didkey)};
    *svc = (atp_plc_service){ATP_SLICE_LIT("atproto_pds"),
                             ATP_SLICE_LIT("AtprotoPersonalDataServer"),
                             ATP_SLICE_LIT("https://pds.example.com")};
    memset(&op, 0, sizeof op);
    op.type = ATP_PLC_OPERATION;
    op.rotation_keys = keys, op.n_rotation_keys = nrot;
    op.vms = vm, op.n_vms = 1, op.aka = aka, op.n_aka = 1, op.services = svc, op.n_services = 1;
    op.prev = prev ? atp_slice_str(prev) : atp_slice_make("", 0);
    finish_op(a, &op, signer, out);
    atp_arena_destroy(a);
}

static void make_tombstone(const char *prev, const tkey *signer, top *out)
{
    atp_arena *a = atp_arena_create(0);
    atp_plc_op op;
    memset(&op, 0, sizeof op);
    op.type = ATP_PLC_TOMBSTONE;
    op.prev = atp_slice_str(prev);
    finish_op(a, &op, signer, out);
    atp_arena_destroy(a);
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* ---- shared state: keys, the directory A, and what was posted to it ---- */

static tkey rk1, rk2, rk3, sk;
static t_daemon dir_a;
static char db_a[128];
static top g_a, u1_a, u2_a; /* DID A: genesis, update by rk2, update by rk1 removing rk2 */
static top g_b;             /* DID B: forked within the window */

/* The audit log as served (any status: a DID not created yet gives its 404 body). */
static char *audit_of(const char *did)
{
    char path[128];
    resp r;
    snprintf(path, sizeof path, "/%s/log/audit", did);
    r = http(dir_a.port, path, NULL, 0);
    return (char *)atp_buf_take(&r.body, NULL);
}

/* Posts `json` for `did`, expects `status`, and checks the audit log did not change when the
 * post is refused. */
static void post_expect(const char *did, const char *json, long status)
{
    char *before = audit_of(did), *after, *msg = NULL;
    long s = post(dir_a.port, did, json, &msg);
    T_EQ(s, status);
    if (s != status) {
        printf("#   body: %s\n", msg ? msg : "");
    }
    if (status == 400) {
        T_TRUE(msg && strncmp(msg, "{\"message\":\"", 12) == 0);
    }
    after = audit_of(did);
    if (status != 200) {
        T_STREQ(before, after);
    }
    free(before);
    free(after);
    free(msg);
}

static void test_genesis_and_reads(void)
{
    const tkey *rot[] = {&rk1, &rk2};
    char path[160], *body;
    make_op(rot, 2, &sk, "alice.test", NULL, &rk1, &g_a);
    T_EQ(post(dir_a.port, g_a.did, g_a.json, NULL), 200);
    snprintf(path, sizeof path, "/%s", g_a.did);
    body = get_ok(dir_a.port, path);
    T_TRUE(body && strstr(body, "\"at://alice.test\"") && strstr(body, g_a.did));
    T_TRUE(body && strstr(body, "https://pds.example.com") && strstr(body, sk.didkey + 8));
    free(body);
    snprintf(path, sizeof path, "/did%%3Aplc%%3A%s", g_a.did + 8);
    T_EQ(get_status(dir_a.port, path), 200);
    snprintf(path, sizeof path, "/%s/data", g_a.did);
    body = get_ok(dir_a.port, path);
    T_TRUE(body && strstr(body, rk2.didkey) && strstr(body, "\"rotationKeys\""));
    free(body);
    snprintf(path, sizeof path, "/%s/log", g_a.did);
    body = get_ok(dir_a.port, path);
    T_TRUE(body && body[0] == '[' && count_substr(body, "\"sig\"") == 1);
    free(body);
    snprintf(path, sizeof path, "/%s/log/last", g_a.did);
    body = get_ok(dir_a.port, path);
    T_TRUE(body && body[0] == '{' && strstr(body, "\"prev\":null"));
    free(body);
    body = audit_of(g_a.did);
    T_TRUE(body && strstr(body, g_a.cid) && strstr(body, "\"nullified\":false") &&
           strstr(body, "\"createdAt\":\""));
    free(body);
    /* Posting the same op again changes nothing and is not an error. */
    post_expect(g_a.did, g_a.json, 200);
    body = audit_of(g_a.did);
    T_EQ(count_substr(body ? body : "", "\"cid\""), 1);
    free(body);
}

static void test_not_found(void)
{
    T_EQ(get_status(dir_a.port, "/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"), 404);
    T_EQ(get_status(dir_a.port, "/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/log/audit"), 404);
    T_EQ(get_status(dir_a.port, "/not-a-did"), 404);
    T_EQ(get_status(dir_a.port, "/"), 404);
    T_EQ(get_status(dir_a.port, "/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/other"), 404);
}

static void test_updates_and_refusals(void)
{
    const tkey *rot2[] = {&rk1, &rk2}, *rot1[] = {&rk1};
    top t;
    char *p, path[160], *body;
    make_op(rot2, 2, &sk, "bob.test", g_a.cid, &rk2, &u1_a);
    post_expect(g_a.did, u1_a.json, 200);
    snprintf(path, sizeof path, "/%s", g_a.did);
    body = get_ok(dir_a.port, path);
    T_TRUE(body && strstr(body, "\"at://bob.test\"") && !strstr(body, "alice.test"));
    free(body);
    /* Forged: a signed op whose content is changed afterwards. */
    make_op(rot2, 2, &sk, "carol.test", u1_a.cid, &rk1, &t);
    p = strstr(t.json, "carol.test");
    T_TRUE(p != NULL);
    if (p) {
        p[0] = 'k';
    }
    post_expect(g_a.did, t.json, 400);
    /* Signed by a key that never was a rotation key. */
    make_op(rot2, 2, &sk, "carol.test", u1_a.cid, &rk3, &t);
    post_expect(g_a.did, t.json, 400);
    /* prev that is not in this DID's history. */
    make_op(rot2, 2, &sk, "carol.test", "bafyreid476fmmadnbmltl3i2xecncgjbftiwpf7kckbpcqx4pqnqdyckde",
            &rk1, &t);
    post_expect(g_a.did, t.json, 400);
    /* A genesis posted under another DID. */
    make_op(rot2, 2, &sk, "dave.test", NULL, &rk1, &t);
    post_expect(g_a.did, t.json, 400);
    /* rk1 removes rk2; then an op signed by the removed rk2 is refused. */
    make_op(rot1, 1, &sk, "bob.test", u1_a.cid, &rk1, &u2_a);
    post_expect(g_a.did, u2_a.json, 200);
    make_op(rot2, 2, &sk, "mallory.test", u2_a.cid, &rk2, &t);
    post_expect(g_a.did, t.json, 400);
}

static void test_bad_bodies(void)
{
    static char big[200 * 1024];
    char *msg = NULL;
    post_expect(g_a.did, "{\"type\":", 400);
    post_expect(g_a.did, "[]", 400);
    post_expect(g_a.did, "", 400);
    post_expect(g_a.did, "{\"type\":\"plc_operation\"}", 400);
    memset(big, ' ', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    T_EQ(post(dir_a.port, g_a.did, big, &msg), 413);
    free(msg);
    T_EQ(post(dir_a.port, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/log", g_a.json, NULL), 404);
    T_EQ(post(dir_a.port, "did:plc:tooshort", g_a.json, NULL), 400);
}

static void test_fork_within_window(void)
{
    const tkey *rot[] = {&rk1, &rk2};
    top b1, f, b2;
    char *body;
    make_op(rot, 2, &sk, "erin.test", NULL, &rk1, &g_b);
    post_expect(g_b.did, g_b.json, 0 + 200);
    make_op(rot, 2, &sk, "erin2.test", g_b.cid, &rk2, &b1);
    post_expect(g_b.did, b1.json, 200);
    /* rk1 outranks rk2, which signed b1: it may fork from the genesis, nullifying b1. */
    make_op(rot, 2, &sk, "erin3.test", g_b.cid, &rk1, &f);
    post_expect(g_b.did, f.json, 200);
    body = audit_of(g_b.did);
    T_EQ(count_substr(body ? body : "", "\"nullified\":true"), 1);
    T_EQ(count_substr(body ? body : "", "\"nullified\":false"), 2);
    free(body);
    /* rk2 cannot fork back over rk1's op. */
    make_op(rot, 2, &sk, "erin4.test", g_b.cid, &rk2, &b2);
    post_expect(g_b.did, b2.json, 400);
}

/* DIDs whose history the test writes straight into the database with old timestamps. */
static top g_c, c1, g_d, d1;

static void seed(plc_store *s, const top *op, const char *did, int64_t ms)
{
    atp_arena *a = atp_arena_create(0);
    plc_incoming in;
    char ts[PLC_TS_LEN + 1];
    atp_err err;
    plc_ts_format(ms, ts);
    T_OKE(plc_incoming_prepare(a, atp_slice_str(did), atp_slice_str(op->json), &in, &err), &err);
    T_OKE(plc_store_apply(s, in.did, in.cid, ts, plc_incoming_validate, &in, NULL, &err), &err);
    atp_arena_destroy(a);
}

static void seed_old_history(void)
{
    const tkey *rot[] = {&rk1, &rk2};
    int64_t now = plc_now_ms(), day = 86400000;
    plc_store *s = NULL;
    atp_err err;
    T_OKE(plc_store_open(db_a, 1, &s, &err), &err);
    if (!s) {
        return;
    }
    make_op(rot, 2, &sk, "old.test", NULL, &rk1, &g_c);
    make_op(rot, 2, &sk, "old2.test", g_c.cid, &rk2, &c1);
    seed(s, &g_c, g_c.did, now - 5 * day);
    seed(s, &c1, g_c.did, now - 4 * day); /* past the 72 h window */
    make_op(rot, 2, &sk, "recent.test", NULL, &rk1, &g_d);
    make_op(rot, 2, &sk, "recent2.test", g_d.cid, &rk2, &d1);
    seed(s, &g_d, g_d.did, now - 5 * day + 1);
    seed(s, &d1, g_d.did, now - 3600000); /* one hour ago: still recoverable */
    plc_store_close(s);
}

static void test_recovery_window(void)
{
    const tkey *rot[] = {&rk1, &rk2};
    top f;
    make_op(rot, 2, &sk, "old3.test", g_c.cid, &rk1, &f);
    post_expect(g_c.did, f.json, 400);
    make_op(rot, 2, &sk, "recent3.test", g_d.cid, &rk1, &f);
    post_expect(g_d.did, f.json, 200);
}

static void test_tombstone(void)
{
    const tkey *rot1[] = {&rk1};
    top t, after;
    char path[160], *body;
    make_tombstone(u2_a.cid, &rk1, &t);
    post_expect(g_a.did, t.json, 200);
    snprintf(path, sizeof path, "/%s", g_a.did);
    {
        resp r = http(dir_a.port, path, NULL, 0);
        T_EQ(r.status, 410);
        T_TRUE(strstr(rtext(&r), "DID not available") != NULL);
        atp_buf_release(&r.body);
    }
    snprintf(path, sizeof path, "/%s/data", g_a.did);
    T_EQ(get_status(dir_a.port, path), 410);
    snprintf(path, sizeof path, "/%s/log/last", g_a.did);
    body = get_ok(dir_a.port, path);
    T_TRUE(body && strstr(body, "plc_tombstone"));
    free(body);
    make_op(rot1, 1, &sk, "zombie.test", t.cid, &rk1, &after);
    post_expect(g_a.did, after.json, 400);
    make_op(rot1, 1, &sk, "zombie.test", u2_a.cid, &rk1, &after);
    post_expect(g_a.did, after.json, 400);
}

/* createdAt of the last line of a page into ts (empty if none). */
static void last_created(const char *page, char ts[PLC_TS_LEN + 1])
{
    const char *p = NULL, *q = page;
    ts[0] = '\0';
    while ((q = strstr(q, "\"createdAt\":\"")) != NULL) {
        p = q;
        q++;
    }
    if (p) {
        snprintf(ts, PLC_TS_LEN + 1, "%s", p + 13);
    }
}

/* Pages through /export by createdAt, `count` at a time; returns every line (owned). Checks the
 * timestamps strictly increase. */
static char *export_all(unsigned port, unsigned count, int *lines)
{
    atp_buf all;
    char ts[PLC_TS_LEN + 1] = "", prev[PLC_TS_LEN + 1] = "";
    *lines = 0;
    atp_buf_init(&all, (size_t)256 << 20);
    for (int guard = 0; guard < 100000; guard++) {
        char path[160];
        char *page;
        int n;
        snprintf(path, sizeof path, "/export?count=%u%s%s", count, ts[0] ? "&after=" : "", ts);
        page = get_ok(port, path);
        n = count_substr(page ? page : "", "\"createdAt\":\"");
        if (n > 0) {
            atp_buf_append_str(&all, page);
            atp_buf_append_byte(&all, '\n');
        }
        *lines += n;
        last_created(page ? page : "", ts);
        free(page);
        if (n == 0 || (unsigned)n < count) {
            break;
        }
        if (strcmp(prev, ts) >= 0) {
            T_FAILF("export timestamps do not increase: %s then %s", prev, ts);
            break;
        }
        memcpy(prev, ts, sizeof prev);
    }
    return (char *)atp_buf_take(&all, NULL);
}

static void test_export(void)
{
    int n_all = 0, n_paged = 0;
    char *all = export_all(dir_a.port, 1000, &n_all), *paged = export_all(dir_a.port, 2, &n_paged);
    char *seq;
    T_EQ(n_all, 12); /* A: 4 ops, B: 3, C: 2, D: 3 */
    T_EQ(n_all, n_paged);
    T_STREQ(all, paged);
    T_TRUE(all && strncmp(all, "{\"did\":\"did:plc:", 16) == 0 && strstr(all, "\"nullified\":true"));
    free(all);
    free(paged);
    seq = get_ok(dir_a.port, "/export?after=0&count=3");
    T_EQ(count_substr(seq ? seq : "", "\"type\":\"sequenced_op\""), 3);
    T_TRUE(seq && strstr(seq, "\"seq\":1}") != NULL);
    free(seq);
    T_EQ(get_status(dir_a.port, "/export?count=1001"), 400);
    T_EQ(get_status(dir_a.port, "/export?count=0"), 400);
    T_EQ(get_status(dir_a.port, "/export?after=yesterday"), 400);
    T_EQ(get_status(dir_a.port, "/export?after=2999-01-01T00:00:00Z"), 200);
}

static void test_health_metrics(void)
{
    char *h = get_ok(dir_a.port, "/_health"), *m = get_ok(dir_a.port, "/metrics");
    T_TRUE(h && strstr(h, "\"version\""));
    T_TRUE(m && strstr(m, "atp_plc_ops_total{result=\"accepted\"}") &&
           strstr(m, "atp_plc_ops_total{result=\"rejected\"}"));
    free(h);
    free(m);
}

static void test_interop_node(void)
{
    char cmd[1024], out[4096];
    size_t n;
    FILE *p;
    int st;
    snprintf(cmd, sizeof cmd, "%s %s/plc/tests/plc_interop.mjs http://127.0.0.1:%u %s/tests/interop %s",
             ATP_NODE, ATP_SOURCE_DIR, dir_a.port, ATP_SOURCE_DIR, g_b.did);
    p = popen(cmd, "r");
    T_TRUE(p != NULL);
    if (!p) {
        return;
    }
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    st = pclose(p);
    printf("# node: %s", out);
    T_EQ(st, 0);
    T_TRUE(strstr(out, "\"ok\":true") != NULL);
    T_TRUE(strstr(out, "\"tombstoned\":410") != NULL);
    t_vectors("@did-plc/lib ops accepted", strstr(out, "\"ok\":true") ? 5 : 0);
}

/* ---- mirror ---- */

static long metric(unsigned port, const char *name)
{
    char *m = get_ok(port, "/metrics");
    const char *p = m ? strstr(m, name) : NULL;
    long v = p ? strtol(p + strlen(name), NULL, 10) : -1;
    free(m);
    return v;
}

/* Waits until the two directories export exactly the same lines (up to `secs`). */
static bool converge(unsigned a, unsigned b, int secs, int *lines)
{
    for (int i = 0; i < secs * 10; i++) {
        int na = 0, nb = 0;
        char *ea = export_all(a, 1000, &na), *eb = export_all(b, 1000, &nb);
        bool same = ea && eb && strcmp(ea, eb) == 0;
        free(ea);
        free(eb);
        if (same) {
            *lines = na;
            return true;
        }
        t_sleep_ms(100);
    }
    return false;
}

static void post_many(int n)
{
    const tkey *rot[] = {&rk1};
    for (int i = 0; i < n; i++) {
        char handle[64];
        top g;
        snprintf(handle, sizeof handle, "bulk%d.test", i);
        make_op(rot, 1, &sk, handle, NULL, &rk1, &g);
        if (post(dir_a.port, g.did, g.json, NULL) != 200) {
            T_FAILF("bulk post %d refused", i);
            return;
        }
    }
}

static void test_mirror(void)
{
    char db_m[128], url[64];
    t_daemon m;
    int lines = 0, before = 0;
    long stored = 0;
    snprintf(db_m, sizeof db_m, "%s/mirror.sqlite", tmpdir);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", dir_a.port);
    if (!daemon_start(&m, "mirror1", db_m, url)) {
        return;
    }
    T_TRUE(converge(dir_a.port, m.port, 20, &before));
    T_EQ(before, 17); /* the 12 of test_export and the 5 of the node test */
    T_EQ(post(m.port, g_b.did, g_b.json, NULL), 405);
    T_EQ(t_daemon_stop(&m, SIGTERM), 0);
    /* Enough new ops for several pages, then kill the mirror while it is catching up. */
    post_many(1100);
    if (!daemon_start(&m, "mirror2", db_m, url)) {
        return;
    }
    for (int i = 0; i < 1000 && stored < 50; i++) {
        stored = metric(m.port, "atp_plc_mirror_ops_total{result=\"stored\"} ");
        t_sleep_ms(10);
    }
    printf("# mirror killed after storing %ld ops of 1100\n", stored);
    T_TRUE(stored >= 50 && stored < 1100);
    T_EQ(t_daemon_stop(&m, SIGKILL), -1);
    if (!daemon_start(&m, "mirror3", db_m, url)) {
        return;
    }
    T_TRUE(converge(dir_a.port, m.port, 120, &lines));
    T_EQ(lines, before + 1100);
    printf("# mirror converged on %d ops\n", lines);
    T_EQ(metric(m.port, "atp_plc_mirror_ops_total{result=\"rejected\"} "), 0);
    T_EQ(t_daemon_stop(&m, SIGTERM), 0);
}

static void test_shutdown(void)
{
    char wal[160];
    struct stat stt;
    T_EQ(t_daemon_stop(&dir_a, SIGTERM), 0);
    snprintf(wal, sizeof wal, "%s-wal", db_a);
    /* The checkpoint on exit folds the WAL back: it is gone or empty. */
    T_TRUE(stat(wal, &stt) != 0 || stt.st_size == 0);
}

static void test_bad_config(void)
{
    pid_t pid = fork();
    int st = 0;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        execl(PLC_BIN, "plc", "--port", "99999", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    T_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 78);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plc_test_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tkey_make(&rk1, ATP_CURVE_K256);
    tkey_make(&rk2, ATP_CURVE_P256);
    tkey_make(&rk3, ATP_CURVE_K256);
    tkey_make(&sk, ATP_CURVE_K256);
    snprintf(db_a, sizeof db_a, "%s/a.sqlite", tmpdir);
    T_RUN(test_bad_config);
    seed_old_history();
    if (!daemon_start(&dir_a, "a", db_a, NULL)) {
        return t_done();
    }
    T_RUN(test_genesis_and_reads);
    T_RUN(test_not_found);
    T_RUN(test_updates_and_refusals);
    T_RUN(test_bad_bodies);
    T_RUN(test_fork_within_window);
    T_RUN(test_recovery_window);
    T_RUN(test_tombstone);
    T_RUN(test_export);
    T_RUN(test_health_metrics);
    T_RUN(test_interop_node);
    T_RUN(test_mirror);
    T_RUN(test_shutdown);
    if (getenv("PLC_TEST_KEEP") == NULL) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0) {
            printf("# could not remove %s\n", tmpdir);
        }
    }
    return t_done();
}

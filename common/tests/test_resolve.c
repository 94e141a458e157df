/* test_resolve.c: the resolver against a local HTTP server on 127.0.0.1 (a did:web host and a
 * stub PLC directory on one port) and an injected DNS TXT resolver: did:web in local mode,
 * did:plc, caching (positive, negative, TTL expiry on a fake clock, LRU bound, purge), timeouts,
 * size limits, SSRF refusals in the default mode, and the bidirectional handle check. */
#include "t.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>

#include "atp/resolve.h"
#include "atp/server.h"

#define DID_A      "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa" /* claims alice.test */
#define DID_B      "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb" /* claims alice.test too (a liar) */
#define DID_BIG    "did:plc:bigbigbigbigbigbigbigbigb"
#define DID_SILENT "did:plc:silentsilentsilentsilen"
#define DID_WRONG  "did:plc:wrongwrongwrongwrongwron" /* serves DID_A's document */
#define KEY        "did:key:zQ3shaDj7MuzSufG8b7CAneUK5fFV468n4SyFKbFeFvfYNbQm"

static struct event_base *base;
static atp_server *srv;
static pthread_t loop_tid;
static uint16_t port;
static char web_did[64];
static int64_t fake_now = 1000000000000000LL;

static int64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

static void doc_for(atp_buf *out, const char *did, const char *handle)
{
    atp_slice aka[1] = {atp_slice_str(handle)};
    atp_didoc_vm vm = {ATP_SLICE_LIT("atproto"), ATP_SLICE_LIT(KEY)};
    atp_didoc_service svc = {ATP_SLICE_LIT("atproto_pds"),
                             ATP_SLICE_LIT("AtprotoPersonalDataServer"),
                             ATP_SLICE_LIT("https://pds.test")};
    atp_didoc_parts p = {atp_slice_str(did), aka, 1, &vm, 1, &svc, 1};
    atp_didoc_build(out, &p, 0);
}

static void serve_doc(atp_req *r, const char *did, const char *handle)
{
    atp_buf b;
    atp_buf_init(&b, 1 << 16);
    doc_for(&b, did, handle);
    atp_req_respond(r, 200, "application/did+ld+json", atp_buf_slice(&b));
    atp_buf_release(&b);
}

/* One handler for everything: the path picks the behaviour. */
static void h_any(atp_req *r, void *ud)
{
    atp_slice p = atp_req_path(r);
    (void)ud;
    if (atp_slice_eq_str(p, "/.well-known/did.json")) {
        serve_doc(r, web_did, "at://web.test");
    } else if (atp_slice_eq_str(p, "/.well-known/atproto-did")) {
        atp_req_respond(r, 200, "text/plain", ATP_SLICE_LIT("  " DID_A "\nignored\n"));
    } else if (atp_slice_eq_str(p, "/" DID_A) || atp_slice_eq_str(p, "/" DID_WRONG)) {
        serve_doc(r, DID_A, "at://Alice.test");
    } else if (atp_slice_eq_str(p, "/" DID_B)) {
        serve_doc(r, DID_B, "at://alice.test");
    } else if (atp_slice_eq_str(p, "/" DID_BIG)) {
        static char big[100000];
        memset(big, ' ', sizeof(big));
        atp_req_respond(r, 200, "application/json", atp_slice_make(big, sizeof(big)));
    } else if (atp_slice_eq_str(p, "/" DID_SILENT)) {
        atp_req_defer(r); /* never answers */
    } else {
        atp_req_respond(r, 404, "application/json",
                        ATP_SLICE_LIT("{\"message\":\"DID not registered\"}"));
    }
}

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_dispatch(base);
    return NULL;
}

static void start_server(void)
{
    atp_server_config cfg;
    atp_err err;
    atp_server_config_init(&cfg);
    cfg.port = 0;
    base = event_base_new();
    if (atp_server_create(base, &cfg, &srv, &err) != 0) {
        printf("# server: %s\n", err.msg);
        exit(1);
    }
    port = atp_server_port(srv);
    atp_server_fallback(srv, h_any, NULL, 0);
    snprintf(web_did, sizeof(web_did), "did:web:127.0.0.1%%3A%u", port);
    pthread_create(&loop_tid, NULL, loop_main, NULL);
}

/* ---- injected DNS ---- */

static int txt_calls;

static int fake_txt(void *ud, const char *name, unsigned timeout_ms, atp_buf *out, atp_err *err)
{
    (void)ud;
    (void)timeout_ms;
    txt_calls++;
    if (strcmp(name, "_atproto.alice.test") == 0) {
        atp_buf_append(out, "v=spf1\0did=" DID_A "\0", 11 + strlen(DID_A) + 1);
        return 0;
    }
    if (strcmp(name, "_atproto.liar.test") == 0) {
        atp_buf_append(out, "did=" DID_B "\0", 4 + strlen(DID_B) + 1);
        return 0;
    }
    if (strcmp(name, "_atproto.two.test") == 0) {
        atp_buf_append(out, "did=" DID_A "\0did=" DID_A "\0", 2 * (4 + strlen(DID_A) + 1));
        return 0;
    }
    return atp_err_set(err, ATP_ENOTFOUND, 0, "no such name");
}

/* Handle well-known fetches go to the local server whatever the handle's host. */
static int redirect_fetch(void *ud, const atp_fetch_req *req, int *status, atp_buf *body,
                          atp_err *err)
{
    char url[512];
    const char *path = strstr(req->url, "/.well-known/");
    (void)ud;
    if (strstr(req->url, "http://two.test/") != req->url || !path) {
        return atp_fetch_default(NULL, req, status, body, err);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    atp_fetch_req r2 = *req;
    r2.url = url;
    return atp_fetch_default(NULL, &r2, status, body, err);
}

static atp_resolver *make(bool local, size_t cache_max)
{
    atp_resolver_config c;
    char plc[64];
    atp_resolver *r = NULL;
    atp_resolver_config_init(&c);
    snprintf(plc, sizeof(plc), "http://127.0.0.1:%u/", port);
    c.plc_url = plc;
    c.local = local;
    c.timeout_ms = 500;
    c.cache_max = cache_max;
    c.txt = fake_txt;
    c.fetch = redirect_fetch;
    c.clock = fake_clock;
    T_OK(atp_resolver_create(&c, &r, NULL));
    return r;
}

static uint64_t fetches(atp_resolver *r)
{
    atp_resolver_stats st;
    atp_resolver_get_stats(r, &st);
    return st.fetches;
}

static void test_did_web_local(void)
{
    atp_resolver *r = make(true, 100);
    atp_arena *a = atp_arena_create(0);
    atp_didoc d;
    atp_err err;
    T_OKE(atp_resolve_did(r, atp_slice_str(web_did), a, &d, &err), &err);
    T_MEMEQ(d.id.ptr, d.id.len, web_did, strlen(web_did));
    T_MEMEQ(d.handle.ptr, d.handle.len, "web.test", 8);
    T_MEMEQ(d.pds.ptr, d.pds.len, "https://pds.test", 16);
    T_TRUE(d.signing.present);
    /* did:web with a path, and other methods, are refused without any fetch. */
    uint64_t f = fetches(r);
    T_EQ(atp_resolve_did(r, ATP_SLICE_LIT("did:web:example.com:u:alice"), a, &d, NULL), ATP_EINVAL);
    T_EQ(atp_resolve_did(r, ATP_SLICE_LIT("did:key:zQ3sh"), a, &d, NULL), ATP_EINVAL);
    T_EQ(fetches(r), f);
    atp_arena_destroy(a);
    atp_resolver_destroy(r);
}

static void test_ssrf_default_mode(void)
{
    atp_resolver *r = make(false, 100);
    atp_arena *a = atp_arena_create(0);
    atp_didoc d;
    atp_err err;
    char url[128];
    /* did:web on 127.0.0.1 outside local mode: https, and the address is refused. */
    T_EQ(atp_resolve_did(r, atp_slice_str(web_did), a, &d, &err), ATP_EFORBIDDEN);
    /* The default fetch itself: refused unless local or trusted. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/.well-known/did.json", port);
    atp_fetch_req req = {url, 0, 1000, 65536, NULL};
    atp_buf b;
    int status = 0;
    atp_buf_init(&b, 65536);
    T_EQ(atp_fetch_default(NULL, &req, &status, &b, &err), ATP_EFORBIDDEN);
    req.flags = ATP_FETCH_LOCAL;
    T_OKE(atp_fetch_default(NULL, &req, &status, &b, &err), &err);
    T_EQ(status, 200);
    /* The configured PLC directory is trusted even on loopback. */
    T_OKE(atp_resolve_did(r, ATP_SLICE_LIT(DID_A), a, &d, &err), &err);
    atp_buf_release(&b);
    atp_arena_destroy(a);
    atp_resolver_destroy(r);
}

static void test_addr_checks(void)
{
    static const char *const bad4[] = {
        "127.0.0.1",       "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "0.0.0.0",  "100.64.0.1", "224.0.0.1",      "255.255.255.255"};
    static const char *const good4[] = {"8.8.8.8", "172.32.0.1", "1.1.1.1", "100.128.0.1"};
    static const char *const bad6[] = {
        "::1",    "::", "fe80::1", "fc00::1", "fd12::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "ff02::1"};
    static const char *const good6[] = {"2606:4700::1111", "::ffff:8.8.8.8"};
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    for (size_t i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
        T_EQ(inet_pton(AF_INET, bad4[i], &in.sin_addr), 1);
        T_FALSE(atp_resolve_addr_is_public((const struct sockaddr *)&in));
    }
    for (size_t i = 0; i < sizeof(good4) / sizeof(good4[0]); i++) {
        T_EQ(inet_pton(AF_INET, good4[i], &in.sin_addr), 1);
        T_TRUE(atp_resolve_addr_is_public((const struct sockaddr *)&in));
    }
    for (size_t i = 0; i < sizeof(bad6) / sizeof(bad6[0]); i++) {
        T_EQ(inet_pton(AF_INET6, bad6[i], &in6.sin6_addr), 1);
        T_FALSE(atp_resolve_addr_is_public((const struct sockaddr *)&in6));
    }
    for (size_t i = 0; i < sizeof(good6) / sizeof(good6[0]); i++) {
        T_EQ(inet_pton(AF_INET6, good6[i], &in6.sin6_addr), 1);
        T_TRUE(atp_resolve_addr_is_public((const struct sockaddr *)&in6));
    }
}

static void test_plc_and_cache(void)
{
    atp_resolver *r = make(true, 100);
    atp_buf b;
    atp_err err;
    atp_buf_init(&b, 1 << 16);
    T_OKE(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_A), &b, &err), &err);
    T_EQ(fetches(r), 1);
    atp_buf_reset(&b);
    T_OK(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_A), &b, NULL)); /* cached */
    T_TRUE(b.len > 0);
    T_EQ(fetches(r), 1);
    fake_now += 3601LL * 1000000; /* past the positive TTL */
    T_OK(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_A), &b, NULL));
    T_EQ(fetches(r), 2);
    /* Negative entries: 404 cached with its code for neg_ttl_s. */
    const atp_slice unk = ATP_SLICE_LIT("did:plc:unknownunknownunknownu");
    T_EQ(atp_resolve_did_json(r, unk, &b, &err), ATP_ENOTFOUND);
    T_EQ(atp_resolve_did_json(r, unk, &b, &err), ATP_ENOTFOUND);
    T_TRUE(strstr(err.msg, "404") != NULL);
    T_EQ(fetches(r), 3);
    fake_now += 61LL * 1000000;
    T_EQ(atp_resolve_did_json(r, unk, &b, &err), ATP_ENOTFOUND);
    T_EQ(fetches(r), 4);
    /* A document whose id is another DID is refused (and that is cached too). */
    T_EQ(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_WRONG), &b, &err), ATP_EINVAL);
    /* Purge forgets a positive entry. */
    atp_resolver_purge(r, ATP_SLICE_LIT(DID_A));
    T_OK(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_A), &b, NULL));
    T_EQ(fetches(r), 6);
    atp_buf_release(&b);
    atp_resolver_destroy(r);
}

static void test_cache_bound(void)
{
    atp_resolver *r = make(true, 2);
    atp_buf b;
    atp_resolver_stats st;
    atp_buf_init(&b, 1 << 16);
    T_OK(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_A), &b, NULL));
    T_OK(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_B), &b, NULL));
    T_OK(atp_resolve_did_json(r, atp_slice_str(web_did), &b, NULL));
    atp_resolver_get_stats(r, &st);
    T_EQ(st.entries, 2);
    T_OK(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_A), &b, NULL)); /* evicted: fetched again */
    T_EQ(fetches(r), 4);
    T_OK(atp_resolve_did_json(r, atp_slice_str(web_did), &b, NULL)); /* still there */
    T_EQ(fetches(r), 4);
    atp_buf_release(&b);
    atp_resolver_destroy(r);
}

static void test_limits_and_timeouts(void)
{
    atp_resolver *r = make(true, 100);
    atp_buf b;
    atp_err err;
    atp_buf_init(&b, 1 << 20);
    T_EQ(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_BIG), &b, &err), ATP_ELIMIT);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    T_EQ(atp_resolve_did_json(r, ATP_SLICE_LIT(DID_SILENT), &b, &err), ATP_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    T_TRUE(ms >= 400 && ms < 3000);
    atp_buf_release(&b);
    atp_resolver_destroy(r);
}

static void test_handles(void)
{
    atp_resolver *r = make(true, 100);
    atp_arena *a = atp_arena_create(0);
    atp_buf b;
    atp_identity id;
    atp_err err;
    atp_buf_init(&b, 4096);
    /* DNS: one did= among other TXT records. Case is normalised. */
    T_OKE(atp_resolve_handle(r, ATP_SLICE_LIT("ALICE.test"), &b, &err), &err);
    T_MEMEQ(b.ptr, b.len, DID_A, strlen(DID_A));
    /* Bidirectional: handle -> DID -> document claiming "Alice.test": valid, lower-cased. */
    T_OKE(atp_resolve_identity(r, ATP_SLICE_LIT("alice.test"), a, &id, &err), &err);
    T_TRUE(id.handle_valid);
    T_MEMEQ(id.handle.ptr, id.handle.len, "alice.test", 10);
    T_MEMEQ(id.did.ptr, id.did.len, DID_A, strlen(DID_A));
    T_OKE(atp_resolve_identity(r, ATP_SLICE_LIT(DID_A), a, &id, &err), &err);
    T_TRUE(id.handle_valid);
    /* DID_B claims alice.test, but alice.test points to DID_A: invalid. */
    T_OKE(atp_resolve_identity(r, ATP_SLICE_LIT(DID_B), a, &id, &err), &err);
    T_FALSE(id.handle_valid);
    T_MEMEQ(id.handle.ptr, id.handle.len, "handle.invalid", 14);
    /* liar.test -> DID_B whose document claims alice.test: invalid. */
    T_OKE(atp_resolve_identity(r, ATP_SLICE_LIT("liar.test"), a, &id, &err), &err);
    T_FALSE(id.handle_valid);
    /* Two did= records fail DNS; the HTTPS method (served locally) answers instead. */
    atp_buf_reset(&b);
    T_OKE(atp_resolve_handle(r, ATP_SLICE_LIT("two.test"), &b, &err), &err);
    T_MEMEQ(b.ptr, b.len, DID_A, strlen(DID_A));
    /* Nothing anywhere: not found, and cached negatively (no second DNS query). */
    int calls = txt_calls;
    T_EQ(atp_resolve_handle(r, ATP_SLICE_LIT("nobody.test"), &b, &err), ATP_ENOTFOUND);
    T_EQ(atp_resolve_handle(r, ATP_SLICE_LIT("nobody.test"), &b, &err), ATP_ENOTFOUND);
    T_EQ(txt_calls, calls + 1);
    /* Syntax and disallowed TLDs: refused before any lookup. */
    T_EQ(atp_resolve_handle(r, ATP_SLICE_LIT("not a handle"), &b, NULL), ATP_EINVAL);
    T_EQ(atp_resolve_handle(r, ATP_SLICE_LIT("alice.onion"), &b, NULL), ATP_EINVAL);
    T_EQ(txt_calls, calls + 1);
    atp_buf_release(&b);
    atp_arena_destroy(a);
    atp_resolver_destroy(r);
}

static void stop_cb(void *arg)
{
    (void)arg;
    event_base_loopbreak(base);
}

int main(void)
{
    start_server();
    T_RUN(test_did_web_local);
    T_RUN(test_ssrf_default_mode);
    T_RUN(test_addr_checks);
    T_RUN(test_plc_and_cache);
    T_RUN(test_cache_bound);
    T_RUN(test_limits_and_timeouts);
    T_RUN(test_handles);
    atp_server_call_on_loop(srv, stop_cb, NULL);
    pthread_join(loop_tid, NULL);
    atp_server_destroy(srv);
    event_base_free(base);
    return t_done();
}

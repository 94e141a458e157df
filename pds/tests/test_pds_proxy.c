/* test_pds_proxy.c: service proxying, service JWTs and requestCrawl, end to end: plc + pds +
 * a node stub (proxy_stub.mjs) that is at once the AppView, a did:web service and a relay, and
 * checks every service JWT with the official verifier against the account key on our plc. */
#define _GNU_SOURCE /* strcasestr */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pds_client.h"
#include "proxy.h"

static t_daemon pds;
static pid_t stub_pid;
static unsigned stub_port;
static char stub_did[64];
static session alice;

/* ---- pure parts ---- */

static void expect_bad(const char *v, int code, const char *msg)
{
    pds_proxy_target t;
    atp_err err;
    atp_err_clear(&err);
    T_EQ(pds_proxy_parse_header(atp_slice_str(v), &t, &err), code);
    if (msg) {
        T_STREQ(err.msg, msg);
    }
}

static void test_parse_header(void)
{
    pds_proxy_target t;
    atp_err err;
    char big[PDS_PROXY_HEADER_MAX + 8], longid[200];
    T_OKE(pds_proxy_parse_header(atp_slice_str("did:web:api.bsky.app#bsky_appview"), &t, &err),
          &err);
    T_TRUE(atp_slice_eq_str(t.did, "did:web:api.bsky.app"));
    T_TRUE(atp_slice_eq_str(t.id, "bsky_appview"));
    T_OKE(pds_proxy_parse_header(atp_slice_str("did:plc:abc234#atproto_labeler"), &t, &err), &err);
    T_TRUE(atp_slice_eq_str(t.id, "atproto_labeler"));
    expect_bad("#bsky_appview", ATP_EINVAL, "no did specified in proxy header");
    expect_bad("did:web:api.bsky.app", ATP_EINVAL, "no service id specified in proxy header");
    expect_bad("did:web:api.bsky.app#", ATP_EINVAL, "no service id specified in proxy header");
    expect_bad("", ATP_EINVAL, "no service id specified in proxy header");
    expect_bad("did:web:a.com#x#y", ATP_EINVAL, "invalid proxy header format");
    expect_bad("did:web:a.com #x", ATP_EINVAL, "proxy header cannot contain spaces");
    expect_bad("did:web:a.com#x\ty", ATP_EINVAL, "invalid proxy header format");
    expect_bad("did:web:a.com#\xc3\xa9", ATP_EINVAL, "invalid proxy header format");
    expect_bad("notadid#x", ATP_EINVAL, "invalid proxy header did");
    expect_bad("did:#x", ATP_EINVAL, "invalid proxy header did");
    memset(longid, 'a', sizeof longid);
    snprintf(big, sizeof big, "did:web:a.com#%.*s", PDS_PROXY_ID_MAX + 1, longid);
    expect_bad(big, ATP_ELIMIT, NULL);
    snprintf(big, sizeof big, "did:web:a.com#%.*s", PDS_PROXY_ID_MAX, longid);
    T_OKE(pds_proxy_parse_header(atp_slice_str(big), &t, &err), &err);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "did:web:", 8);
    big[20] = '#';
    expect_bad(big, ATP_ELIMIT, "proxy header too long");
}

static void test_nsid_rules(void)
{
    atp_slice n;
    T_TRUE(pds_proxy_path_nsid(atp_slice_str("/xrpc/app.bsky.feed.getTimeline"), &n));
    T_TRUE(atp_slice_eq_str(n, "app.bsky.feed.getTimeline"));
    T_FALSE(pds_proxy_path_nsid(atp_slice_str("/xrpc/"), &n));
    T_FALSE(pds_proxy_path_nsid(atp_slice_str("/xrpc/nodots"), &n));
    T_FALSE(pds_proxy_path_nsid(atp_slice_str("/foo/app.bsky.feed.getTimeline"), &n));
    T_FALSE(pds_proxy_path_nsid(atp_slice_str("/xrpc/app.bsky.feed.get%20x"), &n));
    T_TRUE(pds_proxy_default_appview(atp_slice_str("app.bsky.feed.getTimeline")));
    T_TRUE(pds_proxy_default_appview(atp_slice_str("chat.bsky.convo.listConvos")));
    T_FALSE(pds_proxy_default_appview(atp_slice_str("app.bskyx.feed.getTimeline")));
    T_FALSE(pds_proxy_default_appview(atp_slice_str("com.atproto.repo.getRecord")));
    T_FALSE(pds_proxy_default_appview(atp_slice_str("tools.ozone.moderation.getRepo")));
    T_TRUE(pds_proxy_is_protected(atp_slice_str("com.atproto.server.createAppPassword")));
    T_TRUE(pds_proxy_is_protected(atp_slice_str("com.atproto.identity.updateHandle")));
    T_FALSE(pds_proxy_is_protected(atp_slice_str("app.bsky.feed.getTimeline")));
    T_TRUE(pds_proxy_is_privileged(atp_slice_str("chat.bsky.convo.sendMessage")));
    T_TRUE(pds_proxy_is_privileged(atp_slice_str("com.atproto.server.createAccount")));
    T_FALSE(pds_proxy_is_privileged(atp_slice_str("chat.bsky.actor.declaration")));
}

/* ---- the stub ---- */

static bool start_stub(void)
{
    int fd[2];
    char line[64] = "";
    FILE *f;
    char script[512], dir[512];
    snprintf(script, sizeof script, "%s/pds/tests/proxy_stub.mjs", ATP_SOURCE_DIR);
    snprintf(dir, sizeof dir, "%s/tests/interop", ATP_SOURCE_DIR);
    if (pipe(fd) != 0) {
        return false;
    }
    stub_pid = fork();
    if (stub_pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(ATP_NODE, ATP_NODE, script, dir, plc_url, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    f = fdopen(fd[0], "r");
    if (!f || !fgets(line, sizeof line, f) || sscanf(line, "PORT %u", &stub_port) != 1) {
        return false;
    }
    fclose(f); /* the stub writes nothing more */
    snprintf(stub_did, sizeof stub_did, "did:web:127.0.0.1%%3A%u", stub_port);
    return true;
}

static void test_start(void)
{
    static char av_url[96], av_did[96], crawl[96];
    const char *extra[] = {av_url, av_did, crawl, "PDS_INVITE_REQUIRED=false", NULL};
    resp r;
    T_TRUE(t_start_plc());
    T_TRUE(start_stub());
    snprintf(av_url, sizeof av_url, "PDS_BSKY_APP_VIEW_URL=http://127.0.0.1:%u", stub_port);
    snprintf(av_did, sizeof av_did, "PDS_BSKY_APP_VIEW_DID=%s", stub_did);
    snprintf(crawl, sizeof crawl, "PDS_CRAWLERS=http://127.0.0.1:%u/, http://127.0.0.1:1",
             stub_port);
    T_TRUE(start_pds(&pds, "pds", extra));
    r = create_account(pds.port, "alice.test", "alice@example.com", "pw-alice", NULL);
    T_TRUE(session_from(&r, &alice));
    resp_free(&r);
}

/* ---- HTTP with any headers, response headers kept ---- */

typedef struct xresp {
    long status;
    atp_buf body, head;
    cJSON *json;
} xresp;

static xresp xcall(const char *method, const char *path, const char *auth, const char *body,
                   const char *const *hdrs)
{
    xresp r;
    char url[1024], ah[2200];
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    memset(&r, 0, sizeof r);
    atp_buf_init(&r.body, (size_t)64 << 20);
    atp_buf_init(&r.head, (size_t)1 << 20);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", pds.port, path);
    if (auth) {
        snprintf(ah, sizeof ah, "Authorization: %s", auth);
        h = curl_slist_append(h, ah);
    }
    for (size_t i = 0; hdrs && hdrs[i]; i++) {
        h = curl_slist_append(h, hdrs[i]);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.head);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    atp_buf_append_byte(&r.body, 0);
    atp_buf_append_byte(&r.head, 0);
    r.json = cJSON_Parse((const char *)r.body.ptr);
    return r;
}

static void xfree(xresp *r)
{
    cJSON_Delete(r->json);
    atp_buf_release(&r->body);
    atp_buf_release(&r->head);
}

static const char *jpath(const cJSON *j, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b) {
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    }
    return cJSON_IsString(v) ? v->valuestring : "";
}

static bool has_header(const xresp *r, const char *line)
{
    return strcasestr((const char *)r->head.ptr, line) != NULL;
}

/* ---- end to end ---- */

static void test_crawl_at_start(void)
{
    char path[64];
    bool seen = false;
    snprintf(path, sizeof path, "http://127.0.0.1:%u/_state", stub_port);
    for (int i = 0; i < 50 && !seen; i++) {
        CURL *c = curl_easy_init();
        atp_buf b;
        atp_buf_init(&b, 1 << 20);
        curl_easy_setopt(c, CURLOPT_URL, path);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(c) == CURLE_OK) {
            atp_buf_append_byte(&b, 0);
            seen = strstr((const char *)b.ptr, "{\"hostname\":\"localhost\"}") != NULL;
        }
        curl_easy_cleanup(c);
        atp_buf_release(&b);
        if (!seen) {
            t_sleep_ms(100);
        }
    }
    T_TRUE(seen); /* the dead second relay did not stop the first one */
}

static void check_read(const char *nsid, const char *query)
{
    char path[512];
    xresp r;
    snprintf(path, sizeof path, "/xrpc/%s?%s", nsid, query);
    r = xcall("GET", path, alice.access, NULL, NULL);
    T_EQ(r.status, 200);
    T_STREQ(jpath(r.json, "stub", "iss"), alice.did);
    T_STREQ(jpath(r.json, "stub", "aud"), stub_did); /* the bare DID, as the reference */
    T_STREQ(jpath(r.json, "stub", "lxm"), nsid);
    T_TRUE(has_header(&r, "atproto-repo-rev: 3stubrev"));
    T_TRUE(has_header(&r, "atproto-content-labelers: did:plc:stublabeler"));
    T_TRUE(has_header(&r, "content-type: application/json"));
    if (r.status != 200) {
        printf("# %s: %s\n", nsid, (const char *)r.body.ptr);
    }
    xfree(&r);
}

static void test_default_appview(void)
{
    char q[256];
    xresp r;
    check_read("app.bsky.feed.getTimeline", "limit=5");
    snprintf(q, sizeof q, "actor=%s&limit=3", alice.did);
    check_read("app.bsky.feed.getAuthorFeed", q);
    snprintf(q, sizeof q, "uri=at%%3A%%2F%%2F%s%%2Fapp.bsky.feed.post%%2F3jzfcijpj2z2a", alice.did);
    check_read("app.bsky.feed.getPostThread", q);
    check_read("app.bsky.actor.getProfile", "actor=alice.test");
    r = xcall("GET", "/xrpc/app.bsky.feed.getTimeline?limit=5&cursor=a%20b", alice.access, NULL,
              NULL);
    /* The query string goes through as sent (decoded by the stub). */
    T_STREQ(jpath(cJSON_GetObjectItem(r.json, "stub"), "q", "cursor"), "a b");
    xfree(&r);
}

static void test_post_passthrough(void)
{
    const char *h[] = {"Content-Type: application/json", "Accept-Language: fr, en;q=0.5",
                       "atproto-accept-labelers: did:plc:lab1;redact", NULL};
    xresp r = xcall("POST", "/xrpc/app.bsky.test.echo?x=1", alice.access, "{\"a\":[1,2,3]}", h);
    T_EQ(r.status, 200);
    T_STREQ(jpath(r.json, "method", NULL), "POST");
    T_STREQ(jpath(r.json, "body", NULL), "{\"a\":[1,2,3]}");
    T_STREQ(jpath(r.json, "ctype", NULL), "application/json");
    T_STREQ(jpath(r.json, "lang", NULL), "fr, en;q=0.5");
    T_STREQ(jpath(r.json, "labelers", NULL), "did:plc:lab1;redact");
    T_STREQ(jpath(r.json, "stub", "lxm"), "app.bsky.test.echo");
    xfree(&r);
}

static void test_header_proxy(void)
{
    char hv[128], aud[128];
    const char *h[] = {hv, NULL};
    xresp r;
    /* A did:web service found through its document (dev mode lets loopback through). */
    snprintf(hv, sizeof hv, "atproto-proxy: %s#test_svc", stub_did);
    snprintf(aud, sizeof aud, "%s#test_svc", stub_did);
    r = xcall("GET", "/xrpc/com.example.thing.doIt?k=v", alice.access, NULL, h);
    T_EQ(r.status, 200);
    T_STREQ(jpath(r.json, "stub", "aud"), aud);
    T_STREQ(jpath(r.json, "stub", "lxm"), "com.example.thing.doIt");
    T_STREQ(jpath(r.json, "method", NULL), "GET");
    xfree(&r);
    /* The configured AppView named explicitly: no resolution, aud with its fragment. */
    snprintf(hv, sizeof hv, "atproto-proxy: %s#bsky_appview", stub_did);
    snprintf(aud, sizeof aud, "%s#bsky_appview", stub_did);
    r = xcall("GET", "/xrpc/app.bsky.feed.getTimeline", alice.access, NULL, h);
    T_EQ(r.status, 200);
    T_STREQ(jpath(r.json, "stub", "aud"), aud);
    xfree(&r);
    /* A locally served method stays local even with the header. */
    r = xcall("GET", "/xrpc/app.bsky.actor.getPreferences", alice.access, NULL, h);
    T_EQ(r.status, 200);
    T_TRUE(cJSON_IsArray(cJSON_GetObjectItem(r.json, "preferences")));
    xfree(&r);
}

static void expect_err(const char *method, const char *path, const char *auth, const char *hv,
                       long status, const char *name, const char *msg)
{
    const char *h[] = {hv, NULL};
    xresp r = xcall(method, path, auth, NULL, hv ? h : NULL);
    T_EQ(r.status, status);
    T_STREQ(jpath(r.json, "error", NULL), name);
    if (msg) {
        T_STREQ(jpath(r.json, "message", NULL), msg);
    }
    xfree(&r);
}

static void test_errors(void)
{
    char hv[160];
    const char *tl = "/xrpc/app.bsky.feed.getTimeline";
    expect_err("GET", tl, NULL, NULL, 401, "AuthMissing", NULL);
    expect_err("GET", tl, "Bearer garbage", NULL, 401, "InvalidToken", NULL);
    expect_err("GET", "/xrpc/com.example.nothing.here", alice.access, NULL, 501,
               "MethodNotImplemented", NULL);
    expect_err("GET", "/not/xrpc", alice.access, NULL, 404, "NotFound", NULL);
    /* The server's unrouted answers stay: wrong verb on a local method, not proxied. */
    expect_err("GET", "/xrpc/com.atproto.server.createSession", NULL, NULL, 400,
               "InvalidRequest", "Incorrect HTTP method");
    expect_err("POST", "/xrpc/com.atproto.repo.getRecord", NULL, NULL, 400, "InvalidRequest",
               "Incorrect HTTP method");
    snprintf(hv, sizeof hv, "atproto-proxy: %s#no_such_svc", stub_did);
    expect_err("GET", tl, alice.access, hv, 400, "InvalidRequest",
               "could not resolve proxy did service url");
    expect_err("GET", tl, alice.access, "atproto-proxy: did:web:127.0.0.1%3A1#x", 400,
               "InvalidRequest", "could not resolve proxy did");
    expect_err("GET", tl, alice.access, "atproto-proxy: did:web:a.test", 400, "InvalidRequest",
               "no service id specified in proxy header");
    expect_err("GET", tl, alice.access, "atproto-proxy: #x", 400, "InvalidRequest",
               "no did specified in proxy header");
    snprintf(hv, sizeof hv, "atproto-proxy: %s#dead_svc", stub_did);
    expect_err("GET", tl, alice.access, hv, 502, "UpstreamFailure",
               "Upstream service unreachable");
    snprintf(hv, sizeof hv, "atproto-proxy: %s#test_svc", stub_did);
    expect_err("PUT", "/xrpc/com.example.thing.doIt", alice.access, hv, 400, "InvalidRequest",
               "XRPC requests only supports GET and POST");
    expect_err("POST", "/xrpc/com.atproto.server.confirmEmail", alice.access, hv, 400,
               "InvalidToken", "Bad token method"); /* protected, and not served here */
}

static void test_upstream_errors(void)
{
    xresp r = xcall("GET", "/xrpc/app.bsky.test.fail?status=400", alice.access, NULL, NULL);
    T_EQ(r.status, 400);
    T_STREQ(jpath(r.json, "error", NULL), "StubError");
    T_STREQ(jpath(r.json, "message", NULL), "stub says no");
    T_TRUE(has_header(&r, "retry-after: 7"));
    xfree(&r);
    r = xcall("GET", "/xrpc/app.bsky.test.fail?status=500", alice.access, NULL, NULL);
    T_EQ(r.status, 502); /* 500 upstream becomes 502, as the reference */
    T_STREQ(jpath(r.json, "error", NULL), "StubError");
    xfree(&r);
    r = xcall("GET", "/xrpc/app.bsky.test.fail?status=429", alice.access, NULL, NULL);
    T_EQ(r.status, 429);
    xfree(&r);
}

static void test_large_response(void)
{
    const size_t n = 6u << 20; /* many times the proxy's buffer */
    bool same = true;
    xresp r = xcall("GET", "/xrpc/app.bsky.test.big?size=6291456", alice.access, NULL, NULL);
    T_EQ(r.status, 200);
    T_EQ(r.body.len, n + 1); /* + the NUL xcall adds */
    for (size_t i = 0; i < n && i < r.body.len; i++) {
        if (r.body.ptr[i] != (uint8_t)('a' + i % 26)) {
            same = false;
            break;
        }
    }
    T_TRUE(same);
    T_TRUE(has_header(&r, "content-type: application/octet-stream"));
    xfree(&r);
    r = xcall("HEAD", "/xrpc/app.bsky.test.big?size=10", alice.access, NULL, NULL);
    T_EQ(r.status, 200);
    T_EQ(r.body.len, 1); /* no body, only xcall's NUL */
    xfree(&r);
    /* Still serving after a HEAD and a big body. */
    check_read("app.bsky.feed.getTimeline", "limit=1");
}

static void test_official_client(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/pds/tests/proxy_client.mjs http://127.0.0.1:%u "
             "%s/tests/interop alice.test pw-alice 2>&1", ATP_NODE, ATP_SOURCE_DIR, pds.port,
             ATP_SOURCE_DIR);
    t_node_ok(cmd);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_proxy.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_parse_header);
    T_RUN(test_nsid_rules);
    T_RUN(test_start);
    if (plc.port && pds.port && stub_port && alice.did[0]) {
        T_RUN(test_crawl_at_start);
        T_RUN(test_default_appview);
        T_RUN(test_post_passthrough);
        T_RUN(test_header_proxy);
        T_RUN(test_errors);
        T_RUN(test_upstream_errors);
        T_RUN(test_large_response);
        T_RUN(test_official_client);
    }
    T_EQ(t_daemon_stop(&pds, SIGTERM), 0);
    t_daemon_stop(&plc, SIGKILL);
    if (stub_pid > 0) {
        kill(stub_pid, SIGTERM);
        waitpid(stub_pid, NULL, 0);
    }
    t_cleanup();
    return t_done();
}

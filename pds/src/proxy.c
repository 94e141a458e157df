/* pds/src/proxy.c: service proxying (xrpc-auth §7), installed as the server's fallback route.
 *
 * What no local route serves is forwarded when it carries `atproto-proxy: <did>#<id>` (the
 * service endpoint comes from the DID document; the resolver caches documents) or when its
 * NSID is app.bsky.* / chat.bsky.* and an AppView is configured. Everything else gets the
 * server's ordinary unrouted answer (501 MethodNotImplemented for XRPC paths).
 *
 * Threads. The fallback runs on the loop and only decides; a forwarded request is deferred to
 * a thread of its own (at most MAX_INFLIGHT at once), because an upstream call may take tens
 * of seconds and must not hold one of the few workers that SQLite routes need. That thread
 * authenticates the caller, resolves the target, signs the service JWT and runs libcurl. The
 * upstream body is streamed back: curl's write callback fills a buffer of at most BUF_MAX
 * bytes (it blocks while the buffer is full), and the loop's `writable` callback swaps the
 * buffer out and writes it to the client. The shared `xfer` is reference counted: one ref for
 * the proxy thread, one for the loop side while the stream is open, one per queued loop task.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "atp/didoc.h"
#include "atp/log.h"
#include "atp/resolve.h"
#include "atp/syntax.h"

#include "clock.h"
#include "pds.h"
#include "proxy.h"
#include "service_auth.h"

#define MAX_INFLIGHT 64
#define BUF_MAX ((size_t)256 << 10)      /* upstream bytes waiting for the client */
#define ERR_BODY_MAX ((size_t)64 << 10)  /* an upstream error body is parsed, so bounded */
#define MAX_RESPONSE ((curl_off_t)64 << 20)
#define HEADERS_TIMEOUT_S 10 /* the reference: 10 s for the response head */
#define TOTAL_TIMEOUT_MS 30000L /* and 30 s for the body */
#define CONNECT_TIMEOUT_MS 5000L
#define STALL_TIMEOUT_S 60 /* a client that reads nothing for this long is given up */
#define JWT_TTL_S 60
#define JWT_MAX 8192
#define URL_MAX 8192
#define RESP_HDRS_MAX 4096

/* ---- pure parts (proxy.h) ---- */

static int bad_header(atp_err *err, size_t off, const char *msg)
{
    return atp_err_set(err, ATP_EINVAL, off, "%s", msg);
}

/* Our own checks, after the reference's: bytes, lengths, DID syntax. */
static int check_parts(atp_slice v, size_t hash, atp_err *err)
{
    atp_slice did = atp_slice_sub(v, 0, hash);
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < 0x21 || v.ptr[i] > 0x7e) {
            return bad_header(err, i, "invalid proxy header format");
        }
    }
    if (v.len - hash - 1 > PDS_PROXY_ID_MAX) {
        return atp_err_set(err, ATP_ELIMIT, hash, "proxy header service id too long");
    }
    if (!atp_syntax_is_did(did)) {
        return bad_header(err, 0, "invalid proxy header did");
    }
    return 0;
}

int pds_proxy_parse_header(atp_slice v, pds_proxy_target *out, atp_err *err)
{
    const uint8_t *h = v.len ? memchr(v.ptr, '#', v.len) : NULL;
    size_t hash = h ? (size_t)(h - v.ptr) : v.len;
    int rc;
    if (v.len > PDS_PROXY_HEADER_MAX) {
        return atp_err_set(err, ATP_ELIMIT, PDS_PROXY_HEADER_MAX, "proxy header too long");
    }
    if (h && hash == 0) {
        return bad_header(err, 0, "no did specified in proxy header");
    }
    if (!h || hash == v.len - 1) {
        return bad_header(err, hash, "no service id specified in proxy header");
    }
    if (memchr(h + 1, '#', v.len - hash - 1)) {
        return bad_header(err, hash, "invalid proxy header format");
    }
    if (memchr(v.ptr, ' ', v.len)) {
        return bad_header(err, (size_t)((const uint8_t *)memchr(v.ptr, ' ', v.len) - v.ptr),
                          "proxy header cannot contain spaces");
    }
    rc = check_parts(v, hash, err);
    if (rc < 0) {
        return rc;
    }
    out->did = atp_slice_sub(v, 0, hash);
    out->id = atp_slice_sub(v, hash + 1, v.len - hash - 1);
    return 0;
}

bool pds_proxy_path_nsid(atp_slice path, atp_slice *nsid)
{
    const atp_slice pre = ATP_SLICE_LIT("/xrpc/");
    atp_slice n;
    if (!atp_slice_has_prefix(path, pre)) {
        return false;
    }
    n = atp_slice_sub(path, pre.len, path.len - pre.len);
    if (!atp_syntax_is_nsid(n)) {
        return false;
    }
    *nsid = n;
    return true;
}

bool pds_proxy_default_appview(atp_slice nsid)
{
    return atp_slice_has_prefix(nsid, ATP_SLICE_LIT("app.bsky.")) ||
           atp_slice_has_prefix(nsid, ATP_SLICE_LIT("chat.bsky."));
}

static bool in_list(atp_slice nsid, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (atp_slice_eq_str(nsid, list[i])) {
            return true;
        }
    }
    return false;
}

bool pds_proxy_is_protected(atp_slice nsid)
{
    static const char *const list[] = {
        "com.atproto.admin.sendEmail", "com.atproto.identity.requestPlcOperationSignature",
        "com.atproto.identity.signPlcOperation", "com.atproto.identity.updateHandle",
        "com.atproto.server.activateAccount", "com.atproto.server.confirmEmail",
        "com.atproto.server.createAppPassword", "com.atproto.server.deactivateAccount",
        "com.atproto.server.getAccountInviteCodes", "com.atproto.server.listAppPasswords",
        "com.atproto.server.requestAccountDelete", "com.atproto.server.requestEmailConfirmation",
        "com.atproto.server.requestEmailUpdate", "com.atproto.server.revokeAppPassword",
        "com.atproto.server.updateEmail", NULL};
    return in_list(nsid, list);
}

bool pds_proxy_is_privileged(atp_slice nsid)
{
    static const char *const list[] = {
        "chat.bsky.actor.deleteAccount", "chat.bsky.actor.exportAccountData",
        "chat.bsky.convo.deleteMessageForSelf", "chat.bsky.convo.getConvo",
        "chat.bsky.convo.getConvoForMembers", "chat.bsky.convo.getLog",
        "chat.bsky.convo.getMessages", "chat.bsky.convo.leaveConvo",
        "chat.bsky.convo.listConvos", "chat.bsky.convo.muteConvo",
        "chat.bsky.convo.sendMessage", "chat.bsky.convo.sendMessageBatch",
        "chat.bsky.convo.unmuteConvo", "chat.bsky.convo.updateRead",
        "com.atproto.server.createAccount", NULL};
    return in_list(nsid, list);
}

/* ---- threads in flight ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static unsigned g_running;
static atomic_bool g_stop;

static bool inflight_take(void)
{
    bool ok;
    pthread_mutex_lock(&g_mu);
    ok = g_running < MAX_INFLIGHT && !atomic_load(&g_stop);
    if (ok) {
        g_running++;
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

static void inflight_done(void)
{
    pthread_mutex_lock(&g_mu);
    g_running--;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

unsigned pds_proxy_drain(unsigned timeout_ms)
{
    struct timespec until = pds_deadline_ms(timeout_ms);
    unsigned left;
    atomic_store(&g_stop, true);
    pthread_mutex_lock(&g_mu);
    while (g_running > 0 && pthread_cond_timedwait(&g_cv, &g_mu, &until) == 0) {
    }
    left = g_running;
    pthread_mutex_unlock(&g_mu);
    return left;
}

/* ---- one forwarded request ---- */

typedef struct xfer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    pds_ctx *ctx;
    atp_req *r;
    atp_server *srv;
    CURL *h;
    atp_slice nsid; /* borrowed from the request path: valid until the response starts */
    char nsid_copy[320]; /* for logs once the request may be gone */
    pds_proxy_target target;
    bool has_target; /* atproto-proxy given */
    bool trusted;    /* the configured AppView: operator config, no address guard */
    bool is_head;
    /* upstream response */
    char ctype[256];
    atp_buf hdrs;    /* forwarded response headers: "name\0value\0" pairs */
    atp_buf errbody; /* body of an upstream error (>= 400) */
    bool started, timed_out, too_big;
    time_t t0;
    /* shared with the loop (under mu) */
    atp_buf pend;
    bool eof, idle, ended, cancelled;
    time_t last_pump;
} xfer;

static xfer *xfer_new(pds_ctx *ctx, atp_req *r)
{
    xfer *x = atp_xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->refs = 1;
    x->ctx = ctx;
    x->r = r;
    x->srv = atp_req_server(r);
    atp_buf_init(&x->hdrs, RESP_HDRS_MAX);
    atp_buf_init(&x->errbody, ERR_BODY_MAX);
    atp_buf_init(&x->pend, 2 * BUF_MAX); /* a curl write (<= 16 KiB) may pass BUF_MAX once */
    x->t0 = time(NULL);
    return x;
}

static void xfer_unref(xfer *x)
{
    int left;
    pthread_mutex_lock(&x->mu);
    left = --x->refs;
    pthread_mutex_unlock(&x->mu);
    if (left > 0) {
        return;
    }
    atp_buf_release(&x->hdrs);
    atp_buf_release(&x->errbody);
    atp_buf_release(&x->pend);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
}

/* ---- loop side: the stream to the client ---- */

static void stream_finish(xfer *x, bool cancel)
{
    atp_req_stream_end(x->r); /* r is gone after this: never touched again */
    pthread_mutex_lock(&x->mu);
    x->ended = true;
    x->cancelled = x->cancelled || cancel;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    xfer_unref(x);
}

/* Writes what the proxy thread has buffered. Also the server's `writable` callback: when the
 * client has gone, the write fails and the stream is ended (the producer then stops). */
static void pump(atp_req *r, void *arg)
{
    xfer *x = arg;
    atp_buf take;
    bool eof, ended;
    (void)r;
    pthread_mutex_lock(&x->mu);
    ended = x->ended;
    take = x->pend;
    atp_buf_init(&x->pend, 2 * BUF_MAX);
    eof = x->eof;
    x->idle = !ended && take.len == 0 && !eof;
    x->last_pump = time(NULL);
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    if (!ended) {
        if (atp_req_stream_write(x->r, atp_buf_slice(&take)) < 0) {
            stream_finish(x, true);
        } else if (eof) {
            stream_finish(x, false);
        }
    }
    atp_buf_release(&take);
}

static void pump_task(void *arg)
{
    xfer *x = arg;
    pump(NULL, x);
    xfer_unref(x);
}

/* Producer side: new data or the end is there; wakes the loop if it waits for us. */
static void kick_loop(xfer *x)
{
    bool kick;
    pthread_mutex_lock(&x->mu);
    kick = x->idle && !x->ended;
    if (kick) {
        x->idle = false;
        x->refs++;
    }
    pthread_mutex_unlock(&x->mu);
    if (kick) {
        atp_server_call_on_loop(x->srv, pump_task, x);
    }
}

/* ---- proxy thread: the upstream exchange ---- */

static bool hdr_is(atp_slice line, const char *name, atp_slice *value)
{
    size_t n = strlen(name);
    size_t i = n + 1, e = line.len;
    if (line.len <= n || line.ptr[n] != ':' || strncasecmp((const char *)line.ptr, name, n)) {
        return false;
    }
    while (i < e && (line.ptr[i] == ' ' || line.ptr[i] == '\t')) {
        i++;
    }
    while (e > i && (line.ptr[e - 1] == '\r' || line.ptr[e - 1] == '\n' ||
                     line.ptr[e - 1] == ' ')) {
        e--;
    }
    *value = atp_slice_sub(line, i, e - i);
    return true;
}

/* The response headers the reference passes back, besides content-type and length. */
static const char *const fwd_hdrs[] = {"content-encoding", "content-language",
                                       "atproto-repo-rev", "atproto-content-labelers",
                                       "retry-after", NULL};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    atp_slice line = atp_slice_make(p, size * n), v;
    if (atp_slice_has_prefix(line, ATP_SLICE_LIT("HTTP/"))) {
        atp_buf_reset(&x->hdrs); /* a new head (after a 100 Continue) */
        x->ctype[0] = '\0';
    } else if (hdr_is(line, "content-type", &v)) {
        snprintf(x->ctype, sizeof x->ctype, "%.*s", (int)v.len, (const char *)v.ptr);
    } else {
        for (size_t i = 0; fwd_hdrs[i]; i++) {
            if (hdr_is(line, fwd_hdrs[i], &v)) {
                atp_buf_append(&x->hdrs, fwd_hdrs[i], strlen(fwd_hdrs[i]) + 1);
                atp_buf_append_slice(&x->hdrs, v);
                atp_buf_append_byte(&x->hdrs, 0);
            }
        }
    }
    return size * n;
}

static void add_fwd_headers(xfer *x)
{
    const char *p = (const char *)x->hdrs.ptr;
    const char *end = p + (x->hdrs.err ? 0 : x->hdrs.len);
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        atp_req_add_header(x->r, p, v);
        p = v + strlen(v) + 1;
    }
}

static long upstream_status(xfer *x)
{
    long st = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

static void start_stream(xfer *x, long status)
{
    pthread_mutex_lock(&x->mu);
    x->refs++; /* the loop side's, dropped by stream_finish */
    x->last_pump = time(NULL);
    pthread_mutex_unlock(&x->mu);
    x->started = true;
    add_fwd_headers(x);
    atp_req_stream_start(x->r, (int)status, x->ctype[0] ? x->ctype : NULL, pump, x);
}

/* Waits while the buffer is full; false when the transfer must stop. */
static bool wait_room(xfer *x)
{
    bool go;
    pthread_mutex_lock(&x->mu);
    while (x->pend.len >= BUF_MAX && !x->cancelled && !x->ended && !atomic_load(&g_stop) &&
           time(NULL) - x->last_pump < STALL_TIMEOUT_S) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&x->cv, &x->mu, &t);
    }
    go = !x->cancelled && !x->ended && x->pend.len < BUF_MAX;
    pthread_mutex_unlock(&x->mu);
    return go;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    long status = upstream_status(x);
    if (status >= 400) {
        atp_buf_append(&x->errbody, p, len); /* past the bound: dropped, parsing fails */
        return len;
    }
    if (!x->started) {
        start_stream(x, status);
    }
    if (!wait_room(x)) {
        return 0; /* aborts the transfer */
    }
    pthread_mutex_lock(&x->mu);
    atp_buf_append(&x->pend, p, len);
    pthread_mutex_unlock(&x->mu);
    kick_loop(x);
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult,
                       curl_off_t ulnow)
{
    xfer *x = ud;
    (void)dltotal, (void)ult, (void)ulnow;
    if (!x->started && upstream_status(x) == 0 && time(NULL) - x->t0 > HEADERS_TIMEOUT_S) {
        x->timed_out = true;
        return 1;
    }
    if (dlnow > MAX_RESPONSE) {
        x->too_big = true;
        return 1;
    }
    return (atomic_load(&g_stop) || x->cancelled) ? 1 : 0;
}

/* Outside dev mode, a user-named service may not be on a private or loopback address. */
static curl_socket_t open_guarded(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)ud, (void)purpose;
    if (!atp_resolve_addr_is_public(&a->addr)) {
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* ---- proxy thread: building the upstream request ---- */

/* Adds "Name: value" for a request header if present and free of line breaks. */
static struct curl_slist *pass_header(atp_req *r, struct curl_slist *l, const char *name,
                                      const char *dflt)
{
    atp_slice v;
    char line[2048];
    bool have = atp_req_header(r, name, &v);
    if (!have && !dflt) {
        return l;
    }
    if (!have) {
        v = atp_slice_str(dflt);
    }
    if (v.len + strlen(name) + 3 > sizeof line || memchr(v.ptr, '\r', v.len) ||
        memchr(v.ptr, '\n', v.len) || (v.len && memchr(v.ptr, 0, v.len))) {
        return l;
    }
    snprintf(line, sizeof line, "%s: %.*s", name, (int)v.len, (const char *)v.ptr);
    return curl_slist_append(l, line);
}

static struct curl_slist *request_headers(xfer *x, bool body, const char *jwt)
{
    char auth[JWT_MAX + 32];
    struct curl_slist *l = NULL;
    l = pass_header(x->r, l, "accept-encoding", "identity");
    l = pass_header(x->r, l, "accept-language", NULL);
    l = pass_header(x->r, l, "atproto-accept-labelers", NULL);
    l = pass_header(x->r, l, "x-bsky-topics", NULL);
    if (body) {
        l = pass_header(x->r, l, "content-type", NULL);
        l = pass_header(x->r, l, "content-encoding", NULL);
    }
    l = curl_slist_append(l, "Expect:"); /* no 100-continue round trip */
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", jwt);
    return curl_slist_append(l, auth);
}

/* endpoint (without a trailing '/') + "/xrpc/<nsid>" + "?query". */
static int build_url(xfer *x, atp_slice endpoint, char *url, size_t cap)
{
    atp_slice q = atp_req_query_raw(x->r);
    atp_slice path = atp_req_path(x->r);
    int n;
    if (endpoint.len && endpoint.ptr[endpoint.len - 1] == '/') {
        endpoint.len--;
    }
    n = snprintf(url, cap, "%.*s%.*s%s%.*s", (int)endpoint.len, (const char *)endpoint.ptr,
                 (int)path.len, (const char *)path.ptr, q.len ? "?" : "", (int)q.len,
                 (const char *)q.ptr);
    return (n < 0 || (size_t)n >= cap) ? ATP_ELIMIT : 0;
}

static void setup_curl(xfer *x, const char *url, struct curl_slist *hdrs, atp_slice body)
{
    CURL *h = x->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "atproto-c pds");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    if (x->is_head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (atp_slice_eq_str(atp_req_method(x->r), "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body.len ? (const char *)body.ptr : "");
    }
    if (!x->trusted && !x->ctx->cfg->dev_mode) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_guarded);
    }
}

/* ---- proxy thread: answers ---- */

static const char *generic_error(long status)
{
    switch (status) {
    case 400: return "InvalidRequest";
    case 401: return "AuthenticationRequired";
    case 403: return "Forbidden";
    case 404: return "XRPCNotSupported";
    case 406: return "NotAcceptable";
    case 413: return "PayloadTooLarge";
    case 429: return "RateLimitExceeded";
    case 501: return "MethodNotImplemented";
    case 503: return "NotEnoughResources";
    case 504: return "UpstreamTimeout";
    default: return status >= 500 ? "UpstreamFailure" : "InvalidRequest";
    }
}

/* An upstream 4xx/5xx: its status (500 becomes 502, as the reference) with its error name and
 * message when its body is a JSON error, plus the non-content headers. */
static void answer_upstream_error(xfer *x, long status)
{
    cJSON *j = NULL;
    const char *name, *msg;
    if (!x->errbody.err && x->errbody.len) {
        j = cJSON_ParseWithLength((const char *)x->errbody.ptr, x->errbody.len);
    }
    if (status == 500) {
        status = 502;
    }
    name = pds_json_str(j, "error");
    msg = pds_json_str(j, "message");
    add_fwd_headers(x);
    pds_respond_error(x->r, (int)status, name ? name : generic_error(status),
                      msg ? msg : "Upstream service error");
    cJSON_Delete(j);
}

/* After curl_easy_perform: whatever was not yet answered or streamed. */
static void finish_exchange(xfer *x, CURLcode rc)
{
    long status = upstream_status(x);
    if (!x->started && rc == CURLE_OK && status >= 400) {
        answer_upstream_error(x, status);
    } else if (!x->started && rc == CURLE_OK) {
        start_stream(x, status); /* an empty body: the stream just ends */
    } else if (!x->started) {
        atp_logf(ATP_LOG_WARN, "proxy", "upstream %s: %s", x->nsid_copy, curl_easy_strerror(rc));
        pds_respond_error(x->r, 502, "UpstreamFailure",
                          x->timed_out ? "Upstream service timed out"
                                       : "Upstream service unreachable");
        return;
    } else if (rc != CURLE_OK) {
        /* Mid-body failure: the status is gone already; the client sees a short body. */
        atp_logf(ATP_LOG_WARN, "proxy", "upstream body %s: %s%s", x->nsid_copy,
                 curl_easy_strerror(rc),
                 x->too_big ? " (too large)" : "");
    }
    if (x->started) {
        pthread_mutex_lock(&x->mu);
        x->eof = true;
        pthread_mutex_unlock(&x->mu);
        kick_loop(x);
    }
}

/* ---- proxy thread: target, token, exchange ---- */

typedef struct target_info {
    char endpoint[1024];
    char aud[PDS_DID_MAX + PDS_PROXY_ID_MAX + 2];
} target_info;

/* The header's service from its DID document (the resolver caches it). Errors sent. */
static int resolve_target(xfer *x, target_info *t)
{
    atp_arena *a = atp_arena_create(0);
    atp_didoc doc;
    atp_err err;
    char id[PDS_PROXY_ID_MAX + 1];
    const atp_didoc_service *svc = NULL;
    int rc = atp_resolve_did(x->ctx->resolver, x->target.did, a, &doc, &err);
    snprintf(id, sizeof id, "%.*s", (int)x->target.id.len, (const char *)x->target.id.ptr);
    if (rc == 0) {
        svc = atp_didoc_find_service(&doc, id, NULL);
    }
    if (rc < 0 || !svc || !atp_didoc_is_service_url(svc->endpoint) ||
        svc->endpoint.len >= sizeof t->endpoint) {
        pds_respond_error(x->r, 400, "InvalidRequest",
                          rc < 0 ? "could not resolve proxy did"
                                 : "could not resolve proxy did service url");
        atp_arena_destroy(a);
        return rc < 0 ? rc : ATP_ENOTFOUND;
    }
    snprintf(t->endpoint, sizeof t->endpoint, "%.*s", (int)svc->endpoint.len,
             (const char *)svc->endpoint.ptr);
    atp_arena_destroy(a);
    return 0;
}

/* Where to send it and the token audience. With a header: did#id (the spec's preferred form,
 * as the current reference); the configured AppView named by the header skips resolution.
 * Without: the configured AppView, audience its bare DID (as the reference). Errors sent. */
static int pick_target(xfer *x, target_info *t)
{
    const pds_config *cfg = x->ctx->cfg;
    if (!x->has_target) {
        snprintf(t->endpoint, sizeof t->endpoint, "%s", cfg->appview_url);
        snprintf(t->aud, sizeof t->aud, "%s", cfg->appview_did);
        x->trusted = true;
        return 0;
    }
    snprintf(t->aud, sizeof t->aud, "%.*s#%.*s", (int)x->target.did.len,
             (const char *)x->target.did.ptr, (int)x->target.id.len,
             (const char *)x->target.id.ptr);
    if (cfg->appview_url[0] && atp_slice_eq_str(x->target.did, cfg->appview_did) &&
        atp_slice_eq_str(x->target.id, "bsky_appview")) {
        snprintf(t->endpoint, sizeof t->endpoint, "%s", cfg->appview_url);
        x->trusted = true;
        return 0;
    }
    return resolve_target(x, t);
}

/* Caller checks in the reference's order. Errors sent. */
static int check_caller(xfer *x, pds_auth *auth)
{
    if (pds_proxy_is_protected(x->nsid)) {
        pds_respond_error(x->r, 400, "InvalidToken", "Bad token method");
        return ATP_EFORBIDDEN;
    }
    if (pds_auth_access(x->ctx, x->r, auth) < 0) {
        return ATP_EAUTH;
    }
    if (auth->scope == PDS_SCOPE_APP_PASS && pds_proxy_is_privileged(x->nsid)) {
        pds_respond_error(x->r, 400, "InvalidToken", "Bad token method");
        return ATP_EFORBIDDEN;
    }
    return 0;
}

static int sign_token(xfer *x, const pds_auth *auth, const char *aud, char *jwt)
{
    char lxm[PDS_PROXY_HEADER_MAX];
    atp_err err;
    snprintf(lxm, sizeof lxm, "%.*s", (int)x->nsid.len, (const char *)x->nsid.ptr);
    if (pds_service_jwt(x->ctx, auth->did, aud, lxm, x->ctx->now() + JWT_TTL_S, jwt, JWT_MAX,
                        &err) < 0) {
        atp_logf(ATP_LOG_WARN, "proxy", "service jwt for %s: %s", auth->did, err.msg);
        pds_respond_error(x->r, 500, "InternalServerError", "could not sign service token");
        return ATP_EINTERNAL;
    }
    return 0;
}

static void exchange(xfer *x, const target_info *t, const char *jwt)
{
    char *url = atp_xmalloc(URL_MAX);
    atp_slice body = atp_req_body(x->r);
    bool has_body = atp_slice_eq_str(atp_req_method(x->r), "POST");
    struct curl_slist *hdrs = request_headers(x, has_body, jwt);
    CURLcode rc = CURLE_FAILED_INIT;
    x->h = curl_easy_init();
    if (build_url(x, atp_slice_str(t->endpoint), url, URL_MAX) < 0 || !x->h || !hdrs) {
        pds_respond_error(x->r, 400, "InvalidRequest", "request too large to forward");
    } else {
        setup_curl(x, url, hdrs, body);
        rc = curl_easy_perform(x->h);
        finish_exchange(x, rc);
    }
    curl_easy_cleanup(x->h);
    x->h = NULL;
    curl_slist_free_all(hdrs);
    free(url);
}

static void *proxy_main(void *arg)
{
    xfer *x = arg;
    pds_auth auth;
    target_info t;
    char *jwt = atp_xmalloc(JWT_MAX);
    if (check_caller(x, &auth) == 0 && pick_target(x, &t) == 0 &&
        sign_token(x, &auth, t.aud, jwt) == 0) {
        exchange(x, &t, jwt);
    }
    free(jwt);
    inflight_done();
    xfer_unref(x);
    return NULL;
}

/* ---- the fallback route (loop thread) ---- */

/* A path routed for another method: the server's own "wrong verb" answer. */
static bool wrong_method(atp_req *r, atp_slice path)
{
    return atp_server_has_path(atp_req_server(r), path);
}

static void unrouted(atp_req *r)
{
    atp_slice path = atp_req_path(r);
    bool xrpc = atp_slice_has_prefix(path, ATP_SLICE_LIT("/xrpc/"));
    if (wrong_method(r, path)) {
        atp_req_error_status(r, xrpc ? 400 : 405, xrpc ? "InvalidRequest" : "MethodNotAllowed",
                             xrpc ? "Incorrect HTTP method" : "method not allowed");
    } else if (xrpc) {
        atp_req_error_status(r, 501, "MethodNotImplemented", "Method Not Implemented");
    } else {
        atp_req_error_status(r, 404, "NotFound", "not found");
    }
}

/* Decides whether `r` is forwarded; errors of the header itself are sent here. */
static int classify(pds_ctx *ctx, atp_req *r, atp_slice *nsid, pds_proxy_target *t, bool *has)
{
    atp_slice hv;
    atp_err err;
    atp_slice path = atp_req_path(r);
    if (!pds_proxy_path_nsid(path, nsid) || atp_server_has_path(atp_req_server(r), path)) {
        return ATP_ENOTFOUND;
    }
    *has = atp_req_header(r, "atproto-proxy", &hv) && hv.len > 0;
    if (*has) {
        if (pds_proxy_parse_header(hv, t, &err) < 0) {
            atp_req_error_status(r, 400, "InvalidRequest", err.msg);
            return ATP_EINVAL;
        }
        return 0;
    }
    return (ctx->cfg->appview_url[0] && pds_proxy_default_appview(*nsid)) ? 0 : ATP_ENOTFOUND;
}

static bool method_ok(atp_req *r, bool *is_head)
{
    atp_slice m = atp_req_method(r);
    *is_head = atp_slice_eq_str(m, "HEAD");
    return *is_head || atp_slice_eq_str(m, "GET") || atp_slice_eq_str(m, "POST");
}

static void spawn(xfer *x)
{
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    atp_req_defer(x->r);
    if (pthread_create(&th, &at, proxy_main, x) != 0) {
        inflight_done();
        pds_respond_error(x->r, 503, "NotEnoughResources", "proxy busy");
        xfer_unref(x);
    }
    pthread_attr_destroy(&at);
}

static void proxy_fallback(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    atp_slice nsid;
    pds_proxy_target t = {{NULL, 0}, {NULL, 0}};
    bool has = false, is_head;
    xfer *x;
    int rc = classify(ctx, r, &nsid, &t, &has);
    if (rc == ATP_ENOTFOUND) {
        unrouted(r);
        return;
    }
    if (rc < 0) {
        return;
    }
    if (!method_ok(r, &is_head)) {
        pds_respond_error(r, 400, "InvalidRequest", "XRPC requests only supports GET and POST");
        return;
    }
    if (!inflight_take()) {
        pds_respond_error(r, 503, "NotEnoughResources", "too many proxied requests");
        return;
    }
    x = xfer_new(ctx, r);
    x->nsid = nsid;
    snprintf(x->nsid_copy, sizeof x->nsid_copy, "%.*s", (int)nsid.len, (const char *)nsid.ptr);
    x->target = t;
    x->has_target = has;
    x->is_head = is_head;
    spawn(x);
}

void pds_routes_proxy(atp_server *s, pds_ctx *ctx)
{
    atp_server_fallback(s, proxy_fallback, ctx, 0);
}

/* test_server.c: the server on 127.0.0.1:0 with its loop in a thread, driven by raw sockets
 * from the test thread, then by real clients (curl, node + ws) on the same port. */
#include "atp/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "atp/http.h"
#include "atp/log.h"
#include "atp/ws.h"
#include "t.h"

#define WS_PATH "/xrpc/com.atproto.sync.subscribeRepos"
#define MAXWS   128

static struct event_base *base;
static atp_server *srv;
static uint16_t port;
static pthread_t loop_tid;

/* Server-side state: written on the loop (or worker) threads, read by the test thread. */
static atp_ws_conn *wss[MAXWS]; /* loop thread only */
static int nws;
static atomic_int closes_seen, last_close, slow_seen, on_worker, stream_calls, shutdown_done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- running code on the loop thread and waiting for it ---- */

typedef struct sync_call {
    void (*fn)(void *);
    void *arg;
    atomic_int done;
} sync_call;

static void sync_tramp(void *arg)
{
    sync_call *sc = arg;
    sc->fn(sc->arg);
    atomic_store(&sc->done, 1);
}

static void on_loop(void (*fn)(void *), void *arg)
{
    sync_call sc = {fn, arg, 0};
    atp_server_call_on_loop(srv, sync_tramp, &sc);
    while (!atomic_load(&sc.done)) {
        sleep_ms(1);
    }
}

static void get_stats_cb(void *arg)
{
    atp_server_get_stats(srv, arg);
}

static atp_server_stats stats(void)
{
    atp_server_stats st;
    on_loop(get_stats_cb, &st);
    return st;
}

/* ---- HTTP handlers ---- */

static void h_hello(atp_req *r, void *ud)
{
    (void)ud;
    atp_req_add_header(r, "X-Test", "1");
    atp_req_add_header(r, "X-Bad", "a\r\nInjected: yes");
    atp_req_respond(r, 200, "text/plain", ATP_SLICE_LIT("hello world"));
}

static void h_echo(atp_req *r, void *ud)
{
    (void)ud;
    atp_req_respond(r, 200, "application/octet-stream", atp_req_body(r));
}

static void h_query(atp_req *r, void *ud)
{
    atp_buf b;
    atp_slice v;
    atp_req_query_iter it;
    (void)ud;
    atp_buf_init(&b, 4096);
    if (atp_req_query(r, "a", &v)) {
        atp_buf_printf(&b, "a=%s;", (const char *)v.ptr);
    }
    atp_req_query_iter_init(r, &it, "c");
    while (atp_req_query_next(r, &it, &v)) {
        atp_buf_printf(&b, "c=%s;", (const char *)v.ptr);
    }
    atp_req_respond(r, 200, "text/plain", atp_buf_slice(&b));
    atp_buf_release(&b);
}

static void h_blocking(atp_req *r, void *ud)
{
    atp_slice v;
    (void)ud;
    if (!pthread_equal(pthread_self(), loop_tid)) {
        atomic_fetch_add(&on_worker, 1);
    }
    if (atp_req_query(r, "sleep", &v)) {
        sleep_ms((int)strtol((const char *)v.ptr, NULL, 10));
    }
    atp_req_respond(r, 200, "application/json", ATP_SLICE_LIT("{\"ok\":true}"));
}

static void *deferred_thread(void *arg)
{
    sleep_ms(50);
    atp_req_respond(arg, 202, "text/plain", ATP_SLICE_LIT("later"));
    return NULL;
}

static void h_deferred(atp_req *r, void *ud)
{
    pthread_t th;
    (void)ud;
    atp_req_defer(r);
    pthread_create(&th, NULL, deferred_thread, r);
    pthread_detach(th);
}

static void h_silent(atp_req *r, void *ud)
{
    (void)r;
    (void)ud; /* neither responds nor defers: the server answers 500 */
}

#define STREAM_CHUNK 65536
#define STREAM_TOTAL (64 * STREAM_CHUNK)

typedef struct stream_state {
    size_t sent;
} stream_state;

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + i / 251);
}

static void stream_writable(atp_req *r, void *arg)
{
    stream_state *st = arg;
    uint8_t chunk[STREAM_CHUNK];
    atomic_fetch_add(&stream_calls, 1);
    for (size_t i = 0; i < STREAM_CHUNK; i++) {
        chunk[i] = pattern(st->sent + i);
    }
    if (atp_req_stream_write(r, atp_slice_make(chunk, sizeof chunk)) < 0) {
        atp_req_stream_end(r);
        free(st);
        return;
    }
    st->sent += STREAM_CHUNK;
    if (st->sent == STREAM_TOTAL) {
        atp_req_stream_end(r);
        free(st);
    }
}

static void h_stream(atp_req *r, void *ud)
{
    stream_state *st = calloc(1, sizeof *st);
    (void)ud;
    atp_req_stream_start(r, 200, "application/vnd.ipld.car", stream_writable, st);
}

/* One chunk, then the producer fails: the stream is aborted. */
static void abort_writable(atp_req *r, void *arg)
{
    static const char part[] = "partial body";
    (void)arg;
    if (atp_req_stream_queued(r) == 0 &&
        atp_req_stream_write(r, atp_slice_make(part, sizeof part - 1)) == 0) {
        atp_req_stream_abort(r);
        return;
    }
    atp_req_stream_end(r);
}

static void h_stream_abort(atp_req *r, void *ud)
{
    (void)ud;
    atp_req_stream_start(r, 200, "text/plain", abort_writable, NULL);
}

static void metrics_hook(atp_buf *out, void *ud)
{
    (void)ud;
    atp_buf_append_str(out, "atp_test_custom_total 42\n");
}

/* ---- WebSocket handlers ---- */

static void ws_unregister(atp_ws_conn *ws)
{
    for (int i = 0; i < nws; i++) {
        if (wss[i] == ws) {
            wss[i] = wss[--nws];
            return;
        }
    }
}

static int ws_on_open(atp_ws_conn *ws, atp_req *req, void *ud)
{
    atp_slice v;
    long cursor = 0;
    (void)ud;
    if (atp_req_query(req, "cursor", &v)) {
        cursor = strtol((const char *)v.ptr, NULL, 10);
    }
    if (cursor > 100) {
        atp_req_error_status(req, 400, "FutureCursor", "Cursor in the future.");
        return ATP_EINVAL;
    }
    if (nws == MAXWS) {
        return ATP_ERATE;
    }
    wss[nws++] = ws;
    /* Replay: frames sent from on_open go out right after the 101. */
    for (long i = 1; i <= cursor; i++) {
        uint8_t seq[8];
        for (int k = 0; k < 8; k++) {
            seq[k] = (uint8_t)((uint64_t)i >> (56 - 8 * k));
        }
        if (atp_ws_conn_send(ws, ATP_WS_BINARY, atp_slice_make(seq, 8)) != 0) {
            return ATP_EINTERNAL;
        }
    }
    return 0;
}

static void ws_on_message(atp_ws_conn *ws, int opcode, atp_slice data, void *ud)
{
    (void)ud;
    if (atp_slice_eq_str(data, "close-me")) {
        atp_ws_conn_close(ws, 4000, "bye");
        return;
    }
    if (atp_ws_conn_send(ws, opcode, data) != 0) {
        return;
    }
}

static void ws_on_close(atp_ws_conn *ws, uint16_t code, void *ud)
{
    (void)ud;
    ws_unregister(ws);
    atomic_store(&last_close, code);
    atomic_fetch_add(&closes_seen, 1);
}

static void ws_on_slow(atp_ws_conn *ws, void *ud)
{
    (void)ud;
    atomic_fetch_add(&slow_seen, 1);
    if (atp_ws_conn_send(ws, ATP_WS_BINARY, ATP_SLICE_LIT("ConsumerTooSlow")) != 0) {
        atomic_fetch_add(&slow_seen, 100); /* the final frame must be accepted */
    }
}

/* ---- server setup ---- */

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_dispatch(base);
    return NULL;
}

static void start_server(void)
{
    atp_server_config cfg;
    atp_ws_handlers wh = {ws_on_open, ws_on_message, ws_on_close, ws_on_slow};
    atp_err err;
    atp_server_config_init(&cfg);
    cfg.port = 0;
    cfg.svc = "test";
    cfg.version = "9.9.9";
    cfg.max_body = 65536;
    cfg.max_header = 4096;
    cfg.header_timeout_ms = 400;
    cfg.idle_timeout_ms = 5000;
    cfg.ws_max_queued = (size_t)1 << 20;
    cfg.stream_low_water = 128 * 1024;
    cfg.workers = 2;
    base = event_base_new();
    if (atp_server_create(base, &cfg, &srv, &err) != 0) {
        printf("# server: %s\n", err.msg);
        exit(1);
    }
    port = atp_server_port(srv);
    atp_server_route(srv, "GET", "/hello", h_hello, NULL, 0);
    atp_server_route(srv, "POST", "/echo", h_echo, NULL, 0);
    atp_server_route(srv, "GET", "/query", h_query, NULL, 0);
    atp_server_route(srv, "GET", "/xrpc/test.blocking", h_blocking, NULL, ATP_ROUTE_BLOCKING);
    atp_server_route(srv, "GET", "/deferred", h_deferred, NULL, 0);
    atp_server_route(srv, "GET", "/silent", h_silent, NULL, 0);
    atp_server_route(srv, "GET", "/stream", h_stream, NULL, 0);
    atp_server_route(srv, "GET", "/stream-abort", h_stream_abort, NULL, 0);
    atp_server_ws_route(srv, WS_PATH, &wh, NULL);
    atp_server_set_metrics_hook(srv, metrics_hook, NULL);
    pthread_create(&loop_tid, NULL, loop_main, NULL);
}

/* ---- a raw-socket client ---- */

typedef struct client {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    atp_ws_parser wsp;
    bool ws;
} client;

typedef struct resp {
    int status;
    char head[8192]; /* lower-cased */
    atp_buf body;
} resp;

static bool cl_open(client *c, int rcvbuf)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) {
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->cap = 1 << 16;
    c->buf = malloc(c->cap);
    return connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0;
}

static void cl_close(client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    if (c->ws) {
        atp_ws_parser_release(&c->wsp);
    }
    free(c->buf);
    c->fd = -1;
    c->buf = NULL;
}

static bool cl_send(client *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return false;
        }
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool cl_sends(client *c, const char *s)
{
    return cl_send(c, s, strlen(s));
}

/* Reads more bytes; returns the count, 0 at EOF, -1 on error or timeout. */
static ssize_t cl_fill(client *c)
{
    ssize_t n;
    if (c->cap - c->len < 65536) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
    }
    n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
    }
    return n;
}

static void cl_consume(client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* True if the peer closed (EOF or reset) within the receive timeout, with nothing else. */
static bool cl_eof(client *c)
{
    return c->len == 0 && cl_fill(c) <= 0;
}

static bool head_has(const resp *r, const char *needle)
{
    return strstr(r->head, needle) != NULL;
}

static size_t find_head_end(const client *c)
{
    for (size_t i = 0; i + 3 < c->len; i++) {
        if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
            return i + 4;
        }
    }
    return 0;
}

static bool read_chunked(client *c, resp *r)
{
    atp_http_chunked ch;
    atp_http_chunked_init(&ch);
    for (;;) {
        size_t used = 0;
        int rc = atp_http_chunked_decode(&ch, atp_slice_make(c->buf, c->len), &r->body, &used, NULL);
        cl_consume(c, used);
        if (rc == 0) {
            return true;
        }
        if (rc != ATP_EAGAIN || cl_fill(c) <= 0) {
            return false;
        }
    }
}

static bool read_body(client *c, resp *r, bool no_body)
{
    const char *cl = strstr(r->head, "content-length: ");
    if (no_body || r->status < 200 || r->status == 204 || r->status == 304) {
        return true;
    }
    if (head_has(r, "transfer-encoding: chunked")) {
        return read_chunked(c, r);
    }
    if (cl) {
        size_t want = (size_t)strtoull(cl + 16, NULL, 10);
        while (c->len < want) {
            if (cl_fill(c) <= 0) {
                return false;
            }
        }
        atp_buf_append(&r->body, c->buf, want);
        cl_consume(c, want);
        return true;
    }
    while (cl_fill(c) > 0) { /* delimited by EOF */
    }
    atp_buf_append(&r->body, c->buf, c->len);
    cl_consume(c, c->len);
    return true;
}

/* Reads one response (skipping 100 Continue unless want_100). */
static bool cl_response_ex(client *c, resp *r, bool no_body, bool want_100)
{
    size_t end;
    memset(r->head, 0, sizeof r->head);
    atp_buf_init(&r->body, (size_t)64 << 20);
    r->status = 0;
    for (;;) {
        while ((end = find_head_end(c)) == 0) {
            if (cl_fill(c) <= 0) {
                return false;
            }
        }
        for (size_t i = 0; i < end && i < sizeof r->head - 1; i++) {
            char ch = (char)c->buf[i];
            r->head[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        r->head[end < sizeof r->head ? end : sizeof r->head - 1] = 0;
        r->status = (int)strtol(r->head + 9, NULL, 10);
        cl_consume(c, end);
        if (r->status != 100 || want_100) {
            break;
        }
    }
    return read_body(c, r, no_body);
}

static bool cl_response(client *c, resp *r)
{
    return cl_response_ex(c, r, false, false);
}

static bool body_is(const resp *r, const char *s)
{
    return atp_slice_eq_str(atp_buf_slice(&r->body), s);
}

/* One request on a fresh connection. */
static int simple(const char *req, resp *r)
{
    client c;
    bool ok;
    if (!cl_open(&c, 0) || !cl_sends(&c, req)) {
        cl_close(&c);
        return -1;
    }
    ok = cl_response(&c, r);
    cl_close(&c);
    return ok ? r->status : -1;
}

/* ---- a WebSocket client on top ---- */

static bool ws_open(client *c, const char *target, resp *r)
{
    char req[1024];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             target);
    if (!cl_sends(c, req) || !cl_response_ex(c, r, false, false)) {
        return false;
    }
    if (r->status == 101) {
        atp_ws_limits lim = {(size_t)8 << 20};
        atp_ws_parser_init(&c->wsp, false, &lim);
        c->ws = true;
    }
    return r->status == 101;
}

static bool ws_send(client *c, uint8_t op, bool fin, const void *p, size_t n)
{
    static const uint8_t mask[4] = {1, 2, 3, 4};
    uint8_t hb[ATP_WS_HEAD_MAX];
    uint8_t *frame = malloc(ATP_WS_HEAD_MAX + n + 1);
    size_t hn = atp_ws_head_encode(hb, op, fin, n, mask);
    bool ok;
    memcpy(frame, hb, hn);
    memcpy(frame + hn, p, n);
    atp_ws_mask(frame + hn, n, mask, 0);
    ok = cl_send(c, frame, hn + n);
    free(frame);
    return ok;
}

/* Next event from the server; data borrowed until the next call. */
static bool ws_recv(client *c, atp_ws_event *ev)
{
    for (;;) {
        size_t used = 0;
        int rc = atp_ws_parser_feed(&c->wsp, atp_slice_make(c->buf, c->len), &used, ev, NULL);
        if (rc == 0 || rc == ATP_EAGAIN) {
            cl_consume(c, used);
        }
        if (rc == 0) {
            return true;
        }
        if (rc != ATP_EAGAIN || cl_fill(c) <= 0) {
            return false;
        }
    }
}

/* ---- tests ---- */

static void test_get(void)
{
    resp r;
    T_EQ(simple("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    T_TRUE(body_is(&r, "hello world"));
    T_TRUE(head_has(&r, "http/1.1 200 ok\r\n"));
    T_TRUE(head_has(&r, "content-type: text/plain\r\n"));
    T_TRUE(head_has(&r, "content-length: 11\r\n"));
    T_TRUE(head_has(&r, "date: "));
    T_TRUE(head_has(&r, "access-control-allow-origin: *\r\n"));
    T_TRUE(head_has(&r, "x-test: 1\r\n"));
    T_FALSE(head_has(&r, "injected"));
    atp_buf_release(&r.body);
    T_EQ(simple("GET /xrpc/_health HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    T_TRUE(body_is(&r, "{\"version\":\"9.9.9\"}"));
    atp_buf_release(&r.body);
    T_EQ(simple("GET /query?a=x%20y&c=1&b=2&c=two+words&c=%zz HTTP/1.1\r\nHost: x\r\n\r\n", &r),
         200);
    T_TRUE(body_is(&r, "a=x y;c=1;c=two words;"));
    atp_buf_release(&r.body);
}

static void test_keepalive(void)
{
    client c;
    resp r;
    T_TRUE(cl_open(&c, 0));
    for (int i = 0; i < 3; i++) {
        T_TRUE(cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
        T_TRUE(cl_response(&c, &r));
        T_EQ(r.status, 200);
        T_FALSE(head_has(&r, "connection: close"));
        T_TRUE(body_is(&r, "hello world"));
        atp_buf_release(&r.body);
    }
    /* Connection: close is honoured, then EOF */
    T_TRUE(cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    T_TRUE(cl_response(&c, &r));
    T_TRUE(head_has(&r, "connection: close\r\n"));
    atp_buf_release(&r.body);
    T_TRUE(cl_eof(&c));
    cl_close(&c);
}

static void test_pipelining(void)
{
    client c;
    resp r;
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /query?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "2\r\nde\r\n1;x=y\r\nf\r\n0\r\n\r\n"
                        "GET /xrpc/test.blocking HTTP/1.1\r\nHost: x\r\n\r\n"
                        "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /query?a=last HTTP/1.1\r\nHost: x\r\n\r\n"));
    T_TRUE(cl_response(&c, &r) && body_is(&r, "a=1;"));
    atp_buf_release(&r.body);
    T_TRUE(cl_response(&c, &r) && body_is(&r, "abc"));
    atp_buf_release(&r.body);
    T_TRUE(cl_response(&c, &r) && body_is(&r, "def"));
    atp_buf_release(&r.body);
    T_TRUE(cl_response(&c, &r) && body_is(&r, "{\"ok\":true}"));
    atp_buf_release(&r.body);
    T_TRUE(cl_response_ex(&c, &r, true, false));
    T_EQ(r.status, 200);
    T_TRUE(head_has(&r, "content-length: 11\r\n"));
    atp_buf_release(&r.body);
    T_TRUE(cl_response(&c, &r) && body_is(&r, "a=last;"));
    atp_buf_release(&r.body);
    cl_close(&c);
}

static void test_http10(void)
{
    client c;
    resp r;
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /hello HTTP/1.0\r\n\r\n"));
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.status, 200);
    T_TRUE(head_has(&r, "connection: close\r\n"));
    atp_buf_release(&r.body);
    T_TRUE(cl_eof(&c));
    cl_close(&c);
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    T_TRUE(cl_response(&c, &r));
    T_TRUE(head_has(&r, "connection: keep-alive\r\n"));
    atp_buf_release(&r.body);
    T_TRUE(cl_sends(&c, "GET /hello HTTP/1.0\r\n\r\n"));
    T_TRUE(cl_response(&c, &r) && body_is(&r, "hello world"));
    atp_buf_release(&r.body);
    cl_close(&c);
}

static void expect_error(const char *req, int status, const char *json, bool closes)
{
    client c;
    resp r;
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, req));
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.status, status);
    T_TRUE(head_has(&r, "content-type: application/json"));
    if (!body_is(&r, json)) {
        T_FAILF("body %.*s, want %s", (int)r.body.len, (const char *)r.body.ptr, json);
    }
    if (closes) {
        T_TRUE(head_has(&r, "connection: close\r\n"));
        T_TRUE(cl_eof(&c));
    }
    atp_buf_release(&r.body);
    cl_close(&c);
}

static void test_errors(void)
{
    char big[6000];
    expect_error("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404,
                 "{\"error\":\"NotFound\",\"message\":\"not found\"}", false);
    expect_error("GET /xrpc/com.example.nope HTTP/1.1\r\nHost: x\r\n\r\n", 501,
                 "{\"error\":\"MethodNotImplemented\",\"message\":\"Method Not Implemented\"}",
                 false);
    expect_error("POST /xrpc/_health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400,
                 "{\"error\":\"InvalidRequest\",\"message\":\"Incorrect HTTP method\"}", false);
    expect_error("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", 405,
                 "{\"error\":\"MethodNotAllowed\",\"message\":\"method not allowed\"}", false);
    expect_error("garbage\r\n\r\n", 400,
                 "{\"error\":\"InvalidRequest\",\"message\":\"bad method\"}", true);
    expect_error("GET / HTTP/1.1\nHost: x\n\n", 400,
                 "{\"error\":\"InvalidRequest\",\"message\":\"bare LF\"}", true);
    /* 413 at once, without the client sending (or the server reading) the body */
    expect_error("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n", 413,
                 "{\"error\":\"PayloadTooLarge\",\"message\":\"request body too large\"}", true);
    expect_error("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "100000\r\n",
                 413, "{\"error\":\"PayloadTooLarge\",\"message\":\"request body too large\"}",
                 true);
    expect_error("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 400, "{\"error\":\"InvalidRequest\",\"message\":\"bad chunked body\"}", true);
    expect_error("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                 "{\"error\":\"MethodNotImplemented\",\"message\":\"unsupported transfer-coding\"}",
                 true);
    expect_error("GET /silent HTTP/1.1\r\nHost: x\r\n\r\n", 500,
                 "{\"error\":\"InternalServerError\",\"message\":\"handler did not respond\"}",
                 false);
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /hello HTTP/1.1\r\nHost: x\r\nX: ", 33);
    memcpy(big + sizeof big - 5, "\r\n\r\n", 5);
    expect_error(big, 431, "{\"error\":\"InvalidRequest\",\"message\":\"request head too large\"}",
                 true);
}

static void test_expect_continue(void)
{
    client c;
    resp r;
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        "Expect: 100-continue\r\n\r\n"));
    T_TRUE(cl_response_ex(&c, &r, true, true));
    T_EQ(r.status, 100);
    atp_buf_release(&r.body);
    T_TRUE(cl_sends(&c, "hello"));
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.status, 200);
    T_TRUE(body_is(&r, "hello"));
    atp_buf_release(&r.body);
    cl_close(&c);
}

static void test_cors_preflight(void)
{
    resp r;
    T_EQ(simple("OPTIONS /xrpc/com.atproto.repo.createRecord HTTP/1.1\r\nHost: x\r\n"
                "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
                &r),
         204);
    T_TRUE(head_has(&r, "access-control-allow-origin: *\r\n"));
    T_TRUE(head_has(&r, "access-control-allow-methods: get, head, post"));
    T_TRUE(head_has(&r, "authorization, content-type, atproto-proxy, atproto-accept-labelers, "
                        "dpop"));
    atp_buf_release(&r.body);
}

static void test_header_timeout(void)
{
    client c;
    resp r;
    double t0 = now_s();
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /hello HTTP/1.1\r\nHost:"));
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.status, 408);
    T_TRUE(cl_eof(&c));
    T_TRUE(now_s() - t0 < 3.0);
    atp_buf_release(&r.body);
    cl_close(&c);
    /* Dribbling one byte at a time does not extend the head deadline. */
    t0 = now_s();
    T_TRUE(cl_open(&c, 0));
    for (int i = 0; i < 10 && cl_sends(&c, "G"); i++) {
        sleep_ms(100);
    }
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.status, 408);
    T_TRUE(now_s() - t0 < 3.0);
    atp_buf_release(&r.body);
    cl_close(&c);
}

static void test_blocking_route(void)
{
    client slow;
    resp r;
    double t0;
    int before = atomic_load(&on_worker);
    T_TRUE(cl_open(&slow, 0));
    T_TRUE(cl_sends(&slow, "GET /xrpc/test.blocking?sleep=400 HTTP/1.1\r\nHost: x\r\n\r\n"));
    sleep_ms(50);
    /* The loop is free while the worker sleeps. */
    t0 = now_s();
    T_EQ(simple("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    T_TRUE(now_s() - t0 < 0.3);
    atp_buf_release(&r.body);
    T_TRUE(cl_response(&slow, &r));
    T_EQ(r.status, 200);
    T_TRUE(body_is(&r, "{\"ok\":true}"));
    atp_buf_release(&r.body);
    T_EQ(atomic_load(&on_worker), before + 1);
    cl_close(&slow);
    T_EQ(simple("GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n", &r), 202);
    T_TRUE(body_is(&r, "later"));
    atp_buf_release(&r.body);
}

static void test_streaming(void)
{
    client c;
    resp r;
    bool same = true;
    int before = atomic_load(&stream_calls);
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.status, 200);
    T_TRUE(head_has(&r, "transfer-encoding: chunked\r\n"));
    T_FALSE(head_has(&r, "content-length"));
    T_EQ(r.body.len, STREAM_TOTAL);
    for (size_t i = 0; i < r.body.len && same; i++) {
        same = r.body.ptr[i] == pattern(i);
    }
    T_TRUE(same);
    T_EQ(atomic_load(&stream_calls) - before, STREAM_TOTAL / STREAM_CHUNK);
    atp_buf_release(&r.body);
    /* The connection is reusable after the stream. */
    T_TRUE(cl_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    T_TRUE(cl_response(&c, &r) && body_is(&r, "hello world"));
    atp_buf_release(&r.body);
    cl_close(&c);
    /* HTTP/1.0 gets the raw bytes delimited by the close. */
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /stream HTTP/1.0\r\n\r\n"));
    T_TRUE(cl_response(&c, &r));
    T_EQ(r.body.len, STREAM_TOTAL);
    atp_buf_release(&r.body);
    cl_close(&c);
    /* An aborted stream: the chunk that was written arrives, no final chunk, then EOF. */
    T_TRUE(cl_open(&c, 0));
    T_TRUE(cl_sends(&c, "GET /stream-abort HTTP/1.1\r\nHost: x\r\n\r\n"));
    ssize_t got;
    while ((got = cl_fill(&c)) > 0) {
    }
    T_EQ(got, 0); /* closed by the server, not a read timeout */
    bool found = false;
    for (size_t i = 0; i + 12 <= c.len && !found; i++) {
        found = memcmp(c.buf + i, "partial body", 12) == 0;
    }
    T_TRUE(found);
    T_TRUE(c.len >= 5 && memcmp(c.buf + c.len - 5, "0\r\n\r\n", 5) != 0);
    cl_close(&c);
    /* A client that leaves mid-stream: the producer is told and frees its state (ASan). */
    T_TRUE(cl_open(&c, 4096));
    T_TRUE(cl_sends(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
    T_TRUE(cl_fill(&c) > 0);
    cl_close(&c);
}

static void wait_for(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms && atomic_load(v) < want; i++) {
        sleep_ms(1);
    }
}

static void test_ws_echo(void)
{
    client c;
    resp r;
    atp_ws_event ev;
    int closes = atomic_load(&closes_seen);
    T_TRUE(cl_open(&c, 0));
    T_TRUE(ws_open(&c, WS_PATH "?cursor=2", &r));
    T_TRUE(head_has(&r, "sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"));
    atp_buf_release(&r.body);
    for (int i = 1; i <= 2; i++) {
        T_TRUE(ws_recv(&c, &ev));
        T_EQ(ev.opcode, ATP_WS_BINARY);
        T_EQ(ev.data.len, 8);
        T_EQ(ev.data.len == 8 ? ev.data.ptr[7] : 0, i);
    }
    T_TRUE(ws_send(&c, ATP_WS_TEXT, true, "hi", 2));
    T_TRUE(ws_recv(&c, &ev));
    T_EQ(ev.opcode, ATP_WS_TEXT);
    T_TRUE(atp_slice_eq_str(ev.data, "hi"));
    T_TRUE(ws_send(&c, ATP_WS_PING, true, "pp", 2));
    T_TRUE(ws_recv(&c, &ev));
    T_EQ(ev.opcode, ATP_WS_PONG);
    T_TRUE(atp_slice_eq_str(ev.data, "pp"));
    /* A fragmented message with a ping in the middle comes back whole. */
    T_TRUE(ws_send(&c, ATP_WS_BINARY, false, "ab", 2));
    T_TRUE(ws_send(&c, ATP_WS_PING, true, "", 0));
    T_TRUE(ws_send(&c, ATP_WS_CONT, true, "cd", 2));
    T_TRUE(ws_recv(&c, &ev));
    T_EQ(ev.opcode, ATP_WS_PONG);
    T_TRUE(ws_recv(&c, &ev));
    T_EQ(ev.opcode, ATP_WS_BINARY);
    T_TRUE(atp_slice_eq_str(ev.data, "abcd"));
    T_TRUE(ws_send(&c, ATP_WS_CLOSE, true, "\x03\xe8", 2));
    T_TRUE(ws_recv(&c, &ev));
    T_EQ(ev.opcode, ATP_WS_CLOSE);
    T_EQ(ev.code, 1000);
    T_TRUE(cl_eof(&c));
    cl_close(&c);
    wait_for(&closes_seen, closes + 1, 2000);
    T_EQ(atomic_load(&closes_seen), closes + 1);
    T_EQ(atomic_load(&last_close), 1000);
}

static void test_ws_refusals(void)
{
    client c;
    resp r;
    atp_ws_event ev;
    T_TRUE(cl_open(&c, 0));
    T_FALSE(ws_open(&c, WS_PATH "?cursor=999", &r));
    T_EQ(r.status, 400);
    T_TRUE(body_is(&r, "{\"error\":\"FutureCursor\",\"message\":\"Cursor in the future.\"}"));
    atp_buf_release(&r.body);
    cl_close(&c);
    expect_error("GET " WS_PATH " HTTP/1.1\r\nHost: x\r\n\r\n", 426,
                 "{\"error\":\"InvalidRequest\",\"message\":\"WebSocket upgrade required\"}",
                 false);
    expect_error("GET " WS_PATH " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n",
                 426, "{\"error\":\"InvalidRequest\",\"message\":\"WebSocket version 13 required\"}",
                 false);
    expect_error("GET " WS_PATH " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n\r\n",
                 400, "{\"error\":\"InvalidRequest\",\"message\":\"bad Sec-WebSocket-Key\"}", false);
    /* An unmasked client frame is a protocol error: close 1002. */
    T_TRUE(cl_open(&c, 0));
    T_TRUE(ws_open(&c, WS_PATH, &r));
    atp_buf_release(&r.body);
    T_TRUE(cl_send(&c, "\x81\x02hi", 4));
    T_TRUE(ws_recv(&c, &ev));
    T_EQ(ev.opcode, ATP_WS_CLOSE);
    T_EQ(ev.code, ATP_WS_PROTOCOL_ERROR);
    cl_close(&c);
}

/* ---- fan-out and slow consumers: broadcasts run on the loop ---- */

typedef struct bcast {
    size_t size;
    int sent;
} bcast;

static void broadcast_cb(void *arg)
{
    bcast *b = arg;
    uint8_t *payload = malloc(b->size);
    atp_ws_frame *f;
    for (size_t i = 0; i < b->size; i++) {
        payload[i] = (uint8_t)(i * 13);
    }
    f = atp_ws_frame_create(ATP_WS_BINARY, atp_slice_make(payload, b->size));
    free(payload);
    b->sent = 0;
    for (int i = nws - 1; i >= 0; i--) {
        b->sent += atp_ws_conn_send_frame(wss[i], f) == 0;
    }
    atp_ws_frame_release(f);
}

static void count_ws_cb(void *arg)
{
    *(int *)arg = nws;
}

static int ws_registered(void)
{
    int n;
    on_loop(count_ws_cb, &n);
    return n;
}

static void test_fanout(void)
{
    enum { N = 50 };
    static client cs[N];
    resp r;
    bcast b = {1000, 0};
    int base_n = ws_registered(), ok = 0;
    for (int i = 0; i < N; i++) {
        T_TRUE(cl_open(&cs[i], 0));
        T_TRUE(ws_open(&cs[i], WS_PATH, &r));
        atp_buf_release(&r.body);
    }
    T_EQ(ws_registered(), base_n + N);
    on_loop(broadcast_cb, &b);
    T_EQ(b.sent, base_n + N);
    for (int i = 0; i < N; i++) {
        atp_ws_event ev;
        bool same = ws_recv(&cs[i], &ev) && ev.opcode == ATP_WS_BINARY && ev.data.len == 1000;
        for (size_t k = 0; same && k < 1000; k++) {
            same = ev.data.ptr[k] == (uint8_t)(k * 13);
        }
        ok += same;
    }
    T_EQ(ok, N);
    for (int i = 0; i < N; i++) {
        cl_close(&cs[i]);
    }
    for (int i = 0; i < 2000 && ws_registered() > base_n; i++) {
        sleep_ms(1);
    }
    T_EQ(ws_registered(), base_n);
    T_EQ(stats().ws_open, (uint64_t)base_n);
}

static struct event *flood_ev;
static atomic_int flooding;

static void flood_tick(evutil_socket_t fd, short what, void *arg)
{
    bcast b = {65536, 0};
    (void)fd;
    (void)what;
    (void)arg;
    if (atomic_load(&flooding)) {
        broadcast_cb(&b);
    }
}

static void flood_start(void *arg)
{
    struct timeval tv = {0, 5000};
    (void)arg;
    flood_ev = event_new(base, -1, EV_PERSIST, flood_tick, NULL);
    event_add(flood_ev, &tv);
}

static void flood_stop(void *arg)
{
    (void)arg;
    event_free(flood_ev);
    flood_ev = NULL;
}

typedef struct reader {
    client *c;
    atomic_llong bytes;
    atomic_int stop, failed;
} reader;

static void *reader_main(void *arg)
{
    reader *rd = arg;
    while (!atomic_load(&rd->stop)) {
        atp_ws_event ev;
        if (!ws_recv(rd->c, &ev)) {
            atomic_store(&rd->failed, 1);
            break;
        }
        atomic_fetch_add(&rd->bytes, (long long)ev.data.len);
    }
    return NULL;
}

static void test_slow_consumer(void)
{
    client slow, fast;
    resp r;
    reader rd;
    pthread_t th;
    long long at_cut;
    int closes = atomic_load(&closes_seen);
    T_TRUE(cl_open(&slow, 2048));
    T_TRUE(ws_open(&slow, WS_PATH, &r));
    atp_buf_release(&r.body);
    T_TRUE(cl_open(&fast, 0));
    T_TRUE(ws_open(&fast, WS_PATH, &r));
    atp_buf_release(&r.body);
    rd.c = &fast;
    atomic_init(&rd.bytes, 0);
    atomic_init(&rd.stop, 0);
    atomic_init(&rd.failed, 0);
    pthread_create(&th, NULL, reader_main, &rd);
    atomic_store(&flooding, 1);
    on_loop(flood_start, NULL);
    wait_for(&slow_seen, 1, 20000);
    T_EQ(atomic_load(&slow_seen), 1);
    at_cut = atomic_load(&rd.bytes);
    sleep_ms(300);
    T_TRUE(atomic_load(&rd.bytes) > at_cut + 65536); /* the other client kept receiving */
    atomic_store(&flooding, 0);
    on_loop(flood_stop, NULL);
    /* The slow one is gone (its queued output freed) within the grace period. */
    wait_for(&closes_seen, closes + 1, 3000);
    T_EQ(atomic_load(&closes_seen), closes + 1);
    T_EQ(atomic_load(&last_close), ATP_WS_POLICY);
    T_EQ(stats().slow_consumers, 1);
    T_EQ(stats().ws_open, 1);
    T_FALSE(atomic_load(&rd.failed));
    atomic_store(&rd.stop, 1);
    T_TRUE(ws_send(&fast, ATP_WS_TEXT, true, "wake", 4)); /* the reader waits for one more */
    pthread_join(th, NULL);
    cl_close(&fast);
    cl_close(&slow);
}

static void test_metrics(void)
{
    resp r;
    char *text;
    T_EQ(simple("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    atp_buf_append_byte(&r.body, 0);
    text = (char *)r.body.ptr;
    T_TRUE(strstr(text, "# TYPE atp_test_http_requests_total counter\n") != NULL);
    T_TRUE(strstr(text, "atp_test_http_requests_total{class=\"2xx\"} ") != NULL);
    T_TRUE(strstr(text, "atp_test_http_requests_total{class=\"4xx\"} ") != NULL);
    T_TRUE(strstr(text, "atp_test_ws_slow_consumers_total 1\n") != NULL);
    T_TRUE(strstr(text, "atp_test_http_connections ") != NULL);
    T_TRUE(strstr(text, "atp_test_received_bytes_total ") != NULL);
    T_TRUE(strstr(text, "atp_test_custom_total 42\n") != NULL);
    atp_buf_release(&r.body);
    T_TRUE(stats().requests[2] > 10);
    T_TRUE(stats().bytes_out > STREAM_TOTAL);
}

/* Runs a command, returns its exit status and its output (owned). */
static int run_cmd(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    atp_buf b;
    char tmp[4096];
    size_t n;
    int st;
    atp_buf_init(&b, 1 << 20);
    if (!p) {
        *out = NULL;
        return -1;
    }
    while ((n = fread(tmp, 1, sizeof tmp, p)) > 0) {
        atp_buf_append(&b, tmp, n);
    }
    st = pclose(p);
    *out = (char *)atp_buf_take(&b, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_proof_real_clients(void)
{
    char cmd[1024], *out = NULL;
    int rc;
    snprintf(cmd, sizeof cmd, "curl -s -m 10 http://127.0.0.1:%u/xrpc/_health 2>&1", port);
    rc = run_cmd(cmd, &out);
    T_EQ(rc, 0);
    T_STREQ(out, "{\"version\":\"9.9.9\"}");
    printf("# curl: %s\n", out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "node %s/tests/interop/ws_probe.mjs %u 2>&1", ATP_SOURCE_DIR, port);
    rc = run_cmd(cmd, &out);
    T_EQ(rc, 0);
    T_TRUE(out && strstr(out, "\"ok\":true") != NULL);
    printf("# node ws_probe: %s", out ? out : "(no output)\n");
    free(out);
}

static void shutdown_done_cb(atp_server *s, void *ud)
{
    (void)ud;
    atomic_store(&shutdown_done, 1);
    (void)s;
    event_base_loopexit(base, NULL);
}

static void start_shutdown(void *arg)
{
    (void)arg;
    atp_server_shutdown(srv, 5000, shutdown_done_cb, NULL);
}

static void test_graceful_shutdown(void)
{
    client idle, ws, busy, late;
    resp r;
    atp_ws_event ev;
    double t0;
    T_TRUE(cl_open(&idle, 0));
    T_TRUE(cl_sends(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    T_TRUE(cl_response(&idle, &r));
    atp_buf_release(&r.body);
    T_TRUE(cl_open(&ws, 0));
    T_TRUE(ws_open(&ws, WS_PATH, &r));
    atp_buf_release(&r.body);
    T_TRUE(cl_open(&busy, 0));
    T_TRUE(cl_sends(&busy, "GET /xrpc/test.blocking?sleep=300 HTTP/1.1\r\nHost: x\r\n\r\n"));
    sleep_ms(50);
    t0 = now_s();
    on_loop(start_shutdown, NULL);
    T_TRUE(cl_eof(&idle));
    T_TRUE(ws_recv(&ws, &ev));
    T_EQ(ev.opcode, ATP_WS_CLOSE);
    T_EQ(ev.code, ATP_WS_GOING_AWAY);
    T_TRUE(ws_send(&ws, ATP_WS_CLOSE, true, "\x03\xe9", 2));
    T_TRUE(cl_eof(&ws));
    /* The in-flight request still completes, and its connection then closes. */
    T_TRUE(cl_response(&busy, &r));
    T_EQ(r.status, 200);
    T_TRUE(head_has(&r, "connection: close\r\n"));
    atp_buf_release(&r.body);
    T_TRUE(cl_eof(&busy));
    pthread_join(loop_tid, NULL);
    T_EQ(atomic_load(&shutdown_done), 1);
    T_TRUE(now_s() - t0 < 4.0);
    T_FALSE(cl_open(&late, 0)); /* not listening any more */
    cl_close(&late);
    cl_close(&idle);
    cl_close(&ws);
    cl_close(&busy);
}

int main(void)
{
    atp_log_set_level(ATP_LOG_ERROR);
    start_server();
    printf("# server on 127.0.0.1:%u\n", port);
    T_RUN(test_get);
    T_RUN(test_keepalive);
    T_RUN(test_pipelining);
    T_RUN(test_http10);
    T_RUN(test_errors);
    T_RUN(test_expect_continue);
    T_RUN(test_cors_preflight);
    T_RUN(test_header_timeout);
    T_RUN(test_blocking_route);
    T_RUN(test_streaming);
    T_RUN(test_ws_echo);
    T_RUN(test_ws_refusals);
    T_RUN(test_fanout);
    T_RUN(test_slow_consumer);
    T_RUN(test_metrics);
    T_RUN(test_proof_real_clients);
    T_RUN(test_graceful_shutdown);
    atp_server_destroy(srv);
    event_base_free(base);
    return t_done();
}

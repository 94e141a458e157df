/* server.c: HTTP/1.1 + WebSocket on one port, on libevent bufferevents.
 *
 * Shape: one loop thread owns the listener and every connection. A connection serves one
 * request at a time (pipelined requests wait in its input buffer, reading paused), which gives
 * in-order responses and a memory bound for free. Responses built on other threads come back
 * through a mutex-protected task list and a pipe (see server.h for why not evthread locking).
 * WebSocket frames and streamed chunks go straight into the bufferevent's output; shared
 * firehose frames go in by reference (evbuffer_add_reference) so one encoding serves all.
 */
#define _GNU_SOURCE /* SCHED_BATCH */
#include "atp/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "atp/http.h"
#include "atp/log.h"
#include "atp/ws.h"

#define LINGER_MS      2000 /* after a closing response: drain the client's leftovers */
#define WS_CLOSE_MS    5000 /* wait for the peer's close frame */
#define SLOW_GRACE_MS  1000 /* a cut-off slow consumer's output is dropped after this */
#define RESP_HEAD_MAX  65536
#define SMALL_BODY     16384 /* bodies below are copied into the output, above referenced */

enum conn_state {
    C_HEAD,     /* waiting for / reading a request head */
    C_BODY,     /* reading a request body */
    C_HANDLING, /* a handler owns the request */
    C_STREAM,   /* streaming a response */
    C_NEXT,     /* response queued; next request once the output drains */
    C_DRAIN,    /* last response queued; close (or linger) once the output drains */
    C_LINGER,   /* write side shut; discarding input until EOF or timeout */
    C_WS,       /* RFC 6455 */
};

typedef struct route {
    char *method, *path;
    atp_handler_fn fn;
    void *ud;
    unsigned flags;
} route;

typedef struct ws_route {
    char *path;
    atp_ws_handlers h;
    void *ud;
} ws_route;

typedef struct conn conn;

struct atp_req {
    conn *c;
    atp_server *s;
    atp_arena *arena;
    atp_http_request head; /* slices point into the arena copy of the head */
    atp_buf body;
    atp_http_chunked chunk;
    uint64_t body_left;
    bool is_head, keep_alive, minor0;
    const route *rt;
    atp_req *next_job; /* worker queue link */
    /* Response: written by whoever owns the request, read by the loop after completion. */
    bool in_handler, responded, deferred, written;
    int status;
    const char *ctype;
    atp_buf extra; /* extra header lines */
    const void *rbody;
    size_t rlen;
    void (*rfree)(const void *, size_t, void *);
    void *rarg;
    void (*writable)(atp_req *, void *);
    void *warg;
    bool streaming, stream_ended;
};

struct atp_ws_conn {
    conn *c;
    const ws_route *rt;
    void *data;
    struct evbuffer *early; /* frames sent from on_open, before the 101 is written */
    atp_ws_parser parser;
    bool accepted, close_sent, close_rcvd, in_slow, cut_off;
    uint16_t close_code;
};

struct conn {
    atp_server *s;
    struct bufferevent *bev;
    struct event *timer;
    char remote[INET6_ADDRSTRLEN];
    enum conn_state state;
    bool head_timer, peer_eof, dead, close_after;
    size_t scanned;
    conn *prev, *next;
    atp_req req;
    atp_ws_conn *ws;
};

typedef struct task {
    void (*fn)(void *);
    void *arg;
    struct task *next;
} task;

struct atp_server {
    struct event_base *base;
    atp_server_config cfg;
    char host[64], svc[32], version[64];
    struct evconnlistener *listener;
    uint16_t port;
    route *routes;
    size_t nroutes;
    ws_route *ws_routes;
    size_t nws;
    route fallback;
    void (*metrics_fn)(atp_buf *, void *);
    void *metrics_ud;
    conn *conns;
    atp_server_stats st;
    pthread_t loop_thread;
    bool loop_thread_set;
    /* cross-thread: three locks, so the loop's task list, the job queue and the requests'
     * hand-off flags are not one point of contention for every thread */
    pthread_mutex_t lock;      /* jobs, stop, cond */
    pthread_mutex_t task_lock; /* tasks */
    pthread_mutex_t req_lock;  /* every request's in_handler / responded / deferred */
    pthread_cond_t cond;
    task *tasks, *tasks_tail;
    int wake[2];
    struct event *wake_ev;
    atp_req *jobs, *jobs_tail;
    bool stop;
    pthread_t *threads;
    unsigned nthreads;
    /* shutdown */
    bool shutting_down;
    struct event *shutdown_timer, *done_ev;
    void (*done)(atp_server *, void *);
    void *done_ud;
    struct event *sig_term, *sig_int;
    int signals_seen;
    unsigned sig_timeout_ms;
};

struct atp_ws_frame {
    atomic_int refs;
    size_t len;
    uint8_t data[];
};

static void conn_free(conn *c);
static void conn_process(conn *c);
static void write_response(atp_req *r);
static void ws_read(conn *c);
static void conn_set_timer(conn *c, unsigned ms);

/* ---- small helpers ---- */

static bool on_loop(const atp_server *s)
{
    return s->loop_thread_set && pthread_equal(pthread_self(), s->loop_thread);
}

static struct timeval ms_tv(unsigned ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static char *xstrdup(const char *s)
{
    return atp_xstrndup(s, strlen(s));
}

/* JSON string body without quotes: escapes quote, backslash and control bytes; other bytes
 * are passed through (messages are UTF-8 by contract). */
static void json_escape(atp_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            atp_buf_append_byte(b, '\\');
            atp_buf_append_byte(b, ch);
        } else if (ch < 0x20) {
            atp_buf_printf(b, "\\u%04x", ch);
        } else {
            atp_buf_append_byte(b, ch);
        }
    }
}

void atp_server_config_init(atp_server_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->svc = "atp";
    c->version = "0.1.0";
    c->max_body = (size_t)1 << 20;
    c->max_header = 16384;
    c->header_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->write_timeout_ms = 60000;
    c->max_conns = 10000;
    c->ws_max_message = (size_t)1 << 20;
    c->ws_max_queued = (size_t)8 << 20;
    c->stream_low_water = (size_t)256 << 10;
    c->cors = true;
    c->workers = 4;
}

/* ---- cross-thread tasks ---- */

void atp_server_call_on_loop(atp_server *s, void (*fn)(void *arg), void *arg)
{
    task *t = atp_xmalloc(sizeof *t);
    char one = 1;
    ssize_t n;
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&s->task_lock);
    /* Tasks already waiting means a wake-up is already on its way: wake_cb drains the pipe
     * before it takes the list, so it will take this task too. One pipe write (and one loop
     * wake-up) per batch of tasks, not per task. */
    bool wake = s->tasks == NULL;
    if (s->tasks_tail) {
        s->tasks_tail->next = t;
    } else {
        s->tasks = t;
    }
    s->tasks_tail = t;
    pthread_mutex_unlock(&s->task_lock);
    /* A full pipe already means "wake up": EAGAIN is fine. */
    while (wake) {
        n = write(s->wake[1], &one, 1);
        wake = n < 0 && errno == EINTR;
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    atp_server *s = arg;
    char drain[256];
    task *t;
    (void)what;
    while (read(fd, drain, sizeof drain) > 0) {
    }
    pthread_mutex_lock(&s->task_lock);
    t = s->tasks;
    s->tasks = s->tasks_tail = NULL;
    pthread_mutex_unlock(&s->task_lock);
    while (t) {
        task *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

/* ---- worker pool ---- */

static void handler_returned(atp_req *r);

/* Workers run as SCHED_BATCH (Linux; no privilege needed): the scheduler then never lets a
 * worker it wakes preempt the thread that woke it. That thread is nearly always the loop,
 * which holds every connection: preempted, it stops reading requests and sending answers.
 * Measured on the pds write benchmark (2 cores, c16, 4 A/B pairs): the loop was preempted
 * about once per write before; writes/s +5 to +46 % in each pair, p99 lower in 3 of 4.
 * Workers still get their fair share of the CPU. */
static void worker_sched(void)
{
#ifdef SCHED_BATCH
    struct sched_param sp = {0};
    (void)sched_setscheduler(0, SCHED_BATCH, &sp); /* 0: the calling thread (Linux) */
#endif
}

static void *worker_main(void *arg)
{
    atp_server *s = arg;
    worker_sched();
    for (;;) {
        atp_req *r;
        pthread_mutex_lock(&s->lock);
        while (!s->jobs && !s->stop) {
            pthread_cond_wait(&s->cond, &s->lock);
        }
        r = s->jobs;
        if (!r) {
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        s->jobs = r->next_job;
        if (!s->jobs) {
            s->jobs_tail = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        r->rt->fn(r, r->rt->ud);
        handler_returned(r);
    }
}

static void job_push(atp_server *s, atp_req *r)
{
    r->next_job = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->jobs_tail) {
        s->jobs_tail->next_job = r;
    } else {
        s->jobs = r;
    }
    s->jobs_tail = r;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---- request completion ---- */

static void complete_task(void *arg)
{
    write_response(arg);
}

/* The response (or a stream) is set: the loop writes it now, after the handler returns, or
 * via the task queue; exactly one of these happens (decided under the lock). */
static void req_mark_done(atp_req *r)
{
    atp_server *s = r->s;
    bool now = false, post = false;
    pthread_mutex_lock(&s->req_lock);
    r->responded = true;
    if (!r->in_handler) {
        now = on_loop(s);
        post = !now;
    }
    pthread_mutex_unlock(&s->req_lock);
    if (now) {
        write_response(r);
    } else if (post) {
        atp_server_call_on_loop(s, complete_task, r);
    }
}

static void handler_returned(atp_req *r)
{
    atp_server *s = r->s;
    bool done, deferred;
    pthread_mutex_lock(&s->req_lock);
    r->in_handler = false;
    done = r->responded;
    deferred = r->deferred;
    pthread_mutex_unlock(&s->req_lock);
    if (!done && !deferred) {
        atp_req_error(r, ATP_EINTERNAL, "handler did not respond");
    } else if (done && on_loop(s)) {
        write_response(r);
    } else if (done) {
        atp_server_call_on_loop(s, complete_task, r);
    }
}

static void req_drop_body(atp_req *r)
{
    if (r->rfree) {
        r->rfree(r->rbody, r->rlen, r->rarg);
    }
    r->rbody = NULL;
    r->rlen = 0;
    r->rfree = NULL;
}

static void req_init(atp_req *r, conn *c)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->s = c->s;
    r->arena = atp_arena_create(0);
    atp_buf_init(&r->body, c->s->cfg.max_body ? c->s->cfg.max_body : 1);
    atp_buf_init(&r->extra, RESP_HEAD_MAX / 2);
}

/* Ready for the next request on the same connection: keeps the arena's first chunk and the
 * buffers' capacity. */
static void req_reset(atp_req *r)
{
    atp_arena *a = r->arena;
    atp_buf body = r->body, extra = r->extra;
    conn *c = r->c;
    req_drop_body(r);
    atp_arena_reset(a);
    atp_buf_reset(&body);
    atp_buf_reset(&extra);
    memset(r, 0, sizeof *r);
    r->c = c;
    r->s = c->s;
    r->arena = a;
    r->body = body;
    r->extra = extra;
}

static void req_release(atp_req *r)
{
    req_drop_body(r);
    atp_arena_destroy(r->arena);
    atp_buf_release(&r->body);
    atp_buf_release(&r->extra);
}

/* ---- request accessors ---- */

atp_slice atp_req_method(const atp_req *r)
{
    return r->head.method;
}

atp_slice atp_req_path(const atp_req *r)
{
    return r->head.path;
}

atp_slice atp_req_query_raw(const atp_req *r)
{
    return r->head.query;
}

static bool decode_value(atp_req *r, atp_slice raw, atp_slice *out)
{
    uint8_t *dst = atp_arena_alloc(r->arena, raw.len + 1);
    size_t n = 0;
    if (atp_http_pct_decode(raw, true, dst, raw.len, &n, NULL) < 0) {
        return false;
    }
    dst[n] = 0;
    *out = atp_slice_make(dst, n);
    return true;
}

bool atp_req_query(atp_req *r, const char *name, atp_slice *out)
{
    atp_req_query_iter it;
    atp_req_query_iter_init(r, &it, name);
    return atp_req_query_next(r, &it, out);
}

void atp_req_query_iter_init(atp_req *r, atp_req_query_iter *it, const char *name)
{
    it->rest = r->head.query;
    it->name = name;
}

bool atp_req_query_next(atp_req *r, atp_req_query_iter *it, atp_slice *out)
{
    atp_http_query_iter qi;
    atp_slice raw;
    qi.rest = it->rest;
    while (atp_http_query_next_named(&qi, atp_slice_str(it->name), &raw)) {
        it->rest = qi.rest;
        if (decode_value(r, raw, out)) {
            return true;
        }
    }
    it->rest = qi.rest;
    return false;
}

bool atp_req_header(const atp_req *r, const char *name, atp_slice *out)
{
    return atp_http_header_find(&r->head, name, out);
}

atp_slice atp_req_body(const atp_req *r)
{
    return atp_buf_slice(&r->body);
}

const char *atp_req_remote(const atp_req *r)
{
    return r->c->remote;
}

atp_arena *atp_req_arena(atp_req *r)
{
    return r->arena;
}

atp_server *atp_req_server(const atp_req *r)
{
    return r->s;
}

/* ---- response builders (any thread: they only touch the request) ---- */

static bool server_owned_header(const char *name)
{
    static const char *const owned[] = {"content-length", "transfer-encoding", "connection",
                                        "date"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        if (strcasecmp(name, owned[i]) == 0) {
            return true;
        }
    }
    return false;
}

void atp_req_add_header(atp_req *r, const char *name, const char *value)
{
    atp_buf one;
    if (r->responded || server_owned_header(name)) {
        return;
    }
    /* Format apart so that one bad header (CR/LF injection) is dropped alone. */
    atp_buf_init(&one, 8192);
    atp_http_format_header(&one, name, atp_slice_str(value));
    if (!one.err) {
        atp_buf_append_slice(&r->extra, atp_buf_slice(&one));
    }
    atp_buf_release(&one);
}

void atp_req_respond_ref(atp_req *r, int status, const char *content_type, const void *body,
                         size_t len, void (*free_fn)(const void *, size_t, void *), void *arg)
{
    if (r->responded) {
        if (free_fn) {
            free_fn(body, len, arg);
        }
        return;
    }
    r->status = status;
    r->ctype = content_type ? atp_arena_dup(r->arena, content_type, strlen(content_type)) : NULL;
    r->rbody = body;
    r->rlen = len;
    r->rfree = free_fn;
    r->rarg = arg;
    req_mark_done(r);
}

static void free_copy(const void *body, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)(uintptr_t)body);
}

void atp_req_respond(atp_req *r, int status, const char *content_type, atp_slice body)
{
    void *copy = NULL;
    if (body.len) {
        copy = atp_xmalloc(body.len);
        memcpy(copy, body.ptr, body.len);
    }
    atp_req_respond_ref(r, status, content_type, copy, body.len, copy ? free_copy : NULL, NULL);
}

void atp_req_error_status(atp_req *r, int status, const char *error, const char *message)
{
    atp_buf b;
    uint8_t *p;
    size_t n = 0;
    atp_buf_init(&b, 4096);
    atp_buf_append_str(&b, "{\"error\":\"");
    json_escape(&b, error);
    atp_buf_append_str(&b, "\",\"message\":\"");
    json_escape(&b, message ? message : "");
    atp_buf_append_str(&b, "\"}");
    p = atp_buf_take(&b, &n);
    if (!p) {
        static const char fallback[] = "{\"error\":\"InternalServerError\"}";
        atp_req_respond_ref(r, status, "application/json", fallback, sizeof fallback - 1, NULL,
                            NULL);
        atp_buf_release(&b);
        return;
    }
    atp_req_respond_ref(r, status, "application/json", p, n, free_copy, NULL);
}

void atp_req_error(atp_req *r, int code, const char *message)
{
    atp_req_error_status(r, atp_err_status(code), atp_err_xrpc(code),
                         message ? message : atp_err_text(code));
}

void atp_req_defer(atp_req *r)
{
    pthread_mutex_lock(&r->s->req_lock);
    r->deferred = true;
    pthread_mutex_unlock(&r->s->req_lock);
}

void atp_req_stream_start(atp_req *r, int status, const char *content_type,
                          void (*writable)(atp_req *r, void *arg), void *arg)
{
    if (r->responded) {
        return;
    }
    r->status = status;
    r->ctype = content_type ? atp_arena_dup(r->arena, content_type, strlen(content_type)) : NULL;
    r->writable = writable;
    r->warg = arg;
    r->streaming = true;
    req_mark_done(r);
}

/* ---- writing responses (loop thread) ---- */

static const char cors_expose[] = "atproto-content-labelers, atproto-repo-rev, ratelimit-limit, "
                                  "ratelimit-remaining, ratelimit-reset, ratelimit-policy, "
                                  "dpop-nonce, www-authenticate";

static void format_head(const atp_req *r, atp_buf *h, bool close, bool has_len, bool chunked)
{
    atp_http_format_status(h, 1, r->status);
    atp_buf_append_str(h, "Date: ");
    atp_http_format_date(h, (int64_t)time(NULL));
    atp_buf_append_str(h, "\r\n");
    if (r->ctype) {
        atp_http_format_header(h, "Content-Type", atp_slice_str(r->ctype));
    }
    if (has_len) {
        atp_buf_printf(h, "Content-Length: %zu\r\n", r->rlen);
    }
    if (chunked) {
        atp_buf_append_str(h, "Transfer-Encoding: chunked\r\n");
    }
    if (close) {
        atp_buf_append_str(h, "Connection: close\r\n");
    } else if (r->minor0) {
        atp_buf_append_str(h, "Connection: keep-alive\r\n");
    }
    if (r->s->cfg.cors) {
        atp_buf_append_str(h, "Access-Control-Allow-Origin: *\r\n");
        atp_http_format_header(h, "Access-Control-Expose-Headers", atp_slice_str(cors_expose));
    }
    atp_buf_append_slice(h, atp_buf_slice(&r->extra));
    atp_buf_append_str(h, "\r\n");
}

typedef struct body_ref {
    void (*fn)(const void *, size_t, void *);
    void *arg;
} body_ref;

static void body_ref_cleanup(const void *data, size_t len, void *extra)
{
    body_ref *br = extra;
    br->fn(data, len, br->arg);
    free(br);
}

static void add_body(atp_req *r, struct evbuffer *out)
{
    if (r->rlen <= SMALL_BODY) {
        evbuffer_add(out, r->rbody, r->rlen);
        req_drop_body(r);
    } else if (!r->rfree) {
        evbuffer_add_reference(out, r->rbody, r->rlen, NULL, NULL);
        r->rbody = NULL;
    } else {
        body_ref *br = atp_xmalloc(sizeof *br);
        br->fn = r->rfree;
        br->arg = r->rarg;
        evbuffer_add_reference(out, r->rbody, r->rlen, body_ref_cleanup, br);
        r->rfree = NULL;
        r->rbody = NULL;
    }
}

static bool exchange_closes(const conn *c)
{
    return !c->req.keep_alive || c->close_after || c->s->shutting_down;
}

/* The response is queued: wait for the output to drain, then go on (write_cb). */
static void finish_exchange(conn *c)
{
    c->state = exchange_closes(c) ? C_DRAIN : C_NEXT;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

static void count_status(atp_server *s, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) {
        s->st.requests[cls]++;
    }
}

static void send_full(atp_req *r)
{
    conn *c = r->c;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool body_ok = !(r->status < 200 || r->status == 204 || r->status == 304);
    atp_buf h;
    atp_buf_init(&h, RESP_HEAD_MAX);
    format_head(r, &h, exchange_closes(c), body_ok, false);
    if (h.err) {
        static const char fail[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
        c->close_after = true;
        evbuffer_add(out, fail, sizeof fail - 1);
        req_drop_body(r);
    } else {
        evbuffer_add(out, h.ptr, h.len);
        if (body_ok && !r->is_head && r->rlen) {
            add_body(r, out);
        } else {
            req_drop_body(r);
        }
    }
    atp_buf_release(&h);
    count_status(r->s, h.err ? 500 : r->status);
    finish_exchange(c);
}

static void stream_begin(atp_req *r)
{
    conn *c = r->c;
    atp_buf h;
    if (r->minor0) {
        c->close_after = true; /* HTTP/1.0: the body ends with the connection */
    }
    atp_buf_init(&h, RESP_HEAD_MAX);
    format_head(r, &h, exchange_closes(c), false, !r->minor0);
    evbuffer_add(bufferevent_get_output(c->bev), h.ptr, h.len);
    atp_buf_release(&h);
    count_status(r->s, r->status);
    c->state = C_STREAM;
    /* write_cb fires when the head (then each batch) drains below the low-water mark. */
    bufferevent_setwatermark(c->bev, EV_WRITE, c->s->cfg.stream_low_water, 0);
}

static void write_response(atp_req *r)
{
    conn *c = r->c;
    if (r->written) {
        return;
    }
    r->written = true;
    if (c->dead) {
        if (r->streaming && !r->stream_ended) {
            r->writable(r, r->warg); /* the producer's one call: its writes fail, it ends */
        }
        conn_free(c);
    } else if (r->streaming) {
        stream_begin(r);
    } else {
        send_full(r);
    }
}

int atp_req_stream_write(atp_req *r, atp_slice data)
{
    conn *c = r->c;
    struct evbuffer *out;
    if (c->dead || c->state != C_STREAM || r->stream_ended) {
        return ATP_EIO;
    }
    if (r->is_head || data.len == 0) {
        return 0;
    }
    out = bufferevent_get_output(c->bev);
    if (!r->minor0) {
        evbuffer_add_printf(out, "%zx\r\n", data.len);
    }
    evbuffer_add(out, data.ptr, data.len);
    if (!r->minor0) {
        evbuffer_add(out, "\r\n", 2);
    }
    return 0;
}

void atp_req_stream_end(atp_req *r)
{
    conn *c = r->c;
    if (r->stream_ended) {
        return;
    }
    r->stream_ended = true;
    if (c->dead || c->state != C_STREAM) {
        return;
    }
    if (!r->minor0 && !r->is_head) {
        evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
    }
    finish_exchange(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        /* Nothing left to drain, so no write callback will come: prod one. */
        bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
    }
}

void atp_req_stream_abort(atp_req *r)
{
    conn *c = r->c;
    if (r->stream_ended) {
        return;
    }
    r->stream_ended = true;
    if (c->dead || c->state != C_STREAM) {
        return;
    }
    /* No final chunk: the connection closes once what is queued has left, so the client sees
     * a truncated body rather than a complete-looking one. */
    c->close_after = true;
    finish_exchange(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
    }
}

size_t atp_req_stream_queued(const atp_req *r)
{
    return r->c->bev ? evbuffer_get_length(bufferevent_get_output(r->c->bev)) : 0;
}

/* ---- connections: teardown and timers ---- */

static void check_shutdown_done(atp_server *s)
{
    if (s->shutting_down && !s->conns && s->done_ev) {
        event_active(s->done_ev, 0, 0);
    }
}

static uint16_t ws_final_code(const atp_ws_conn *ws)
{
    if (ws->close_rcvd || ws->close_sent) {
        return ws->close_code;
    }
    return ATP_WS_ABNORMAL;
}

static void ws_teardown(conn *c)
{
    atp_ws_conn *ws = c->ws;
    if (ws->accepted) {
        c->s->st.ws_open--;
        if (ws->rt->h.on_close) {
            ws->rt->h.on_close(ws, ws_final_code(ws), ws->rt->ud);
        }
    }
    atp_ws_parser_release(&ws->parser);
    if (ws->early) {
        evbuffer_free(ws->early);
    }
    free(ws);
    c->ws = NULL;
}

/* Frees a connection, or (while a handler still owns its request) drops the socket and
 * leaves the rest for write_response to free when the handler completes. */
static void conn_free(conn *c)
{
    atp_server *s = c->s;
    if (c->state == C_HANDLING && !c->req.written) {
        if (!c->dead) {
            c->dead = true;
            bufferevent_free(c->bev);
            c->bev = NULL;
            event_del(c->timer);
        }
        return;
    }
    if (c->state == C_STREAM && !c->req.stream_ended && !c->dead) {
        c->dead = true; /* the producer's last call: its writes now fail */
        c->req.writable(&c->req, c->req.warg);
    }
    if (c->ws) {
        ws_teardown(c);
    }
    if (c->bev) {
        bufferevent_free(c->bev);
    }
    event_free(c->timer);
    req_release(&c->req);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    s->st.conns_open--;
    free(c);
    check_shutdown_done(s);
}

static void conn_set_timer(conn *c, unsigned ms)
{
    struct timeval tv = ms_tv(ms);
    if (ms == 0) {
        event_del(c->timer);
    } else {
        event_add(c->timer, &tv);
    }
}

/* An error response that ends the connection (bad head, too large, timeout). */
static void reject(conn *c, int status, const char *error, const char *msg)
{
    atp_req *r = &c->req;
    bufferevent_disable(c->bev, EV_READ);
    conn_set_timer(c, 0);
    c->state = C_HANDLING;
    c->close_after = true;
    r->keep_alive = false;
    atp_req_error_status(r, status, error, msg);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == C_HEAD && c->head_timer) {
        reject(c, 408, "RequestTimeout", "request head not received in time");
    } else if (c->state == C_BODY) {
        reject(c, 408, "RequestTimeout", "request body not received in time");
    } else {
        conn_free(c); /* idle keep-alive, linger, WS close handshake, slow-consumer grace */
    }
}

/* The last response has left: close (WS) or shut our side and drain the client's leftovers
 * so that unread request bytes do not turn our close into a reset that eats the response. */
static void drained_close(conn *c)
{
    if (c->ws || c->peer_eof) {
        conn_free(c);
        return;
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->state = C_LINGER;
    bufferevent_enable(c->bev, EV_READ);
    conn_set_timer(c, LINGER_MS);
}

static void next_request(conn *c)
{
    req_reset(&c->req);
    c->state = C_HEAD;
    c->head_timer = false;
    c->scanned = 0;
    bufferevent_enable(c->bev, EV_READ);
    conn_set_timer(c, c->s->cfg.idle_timeout_ms);
    conn_process(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    (void)bev;
    switch (c->state) {
    case C_NEXT:
        if (c->s->shutting_down || c->close_after) {
            drained_close(c);
        } else {
            next_request(c);
        }
        break;
    case C_DRAIN:
        drained_close(c);
        break;
    case C_STREAM:
        if (!c->req.stream_ended) {
            c->req.writable(&c->req, c->req.warg);
        }
        break;
    case C_WS:
        if (c->ws->cut_off) {
            conn_free(c); /* its final frames have left: no need to wait for the grace */
        }
        break;
    default:
        break;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn *c = arg;
    bool pending = evbuffer_get_length(bufferevent_get_input(bev)) > 0;
    /* A client may half-close after pipelining: answer what it sent, then close. */
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && pending &&
        (c->state == C_HEAD || c->state == C_NEXT)) {
        c->peer_eof = true;
        return;
    }
    if ((what & BEV_EVENT_EOF) && c->state == C_NEXT) {
        c->peer_eof = true;
        return;
    }
    conn_free(c);
}

/* ---- reading requests ---- */

static atp_http_limits head_limits(const atp_server *s)
{
    atp_http_limits lim = ATP_HTTP_LIMITS_DEFAULT;
    lim.max_header_bytes = s->cfg.max_header;
    lim.max_headers = ATP_HTTP_HEADERS_MAX;
    if (lim.max_request_line > s->cfg.max_header - 2) {
        lim.max_request_line = s->cfg.max_header - 2;
    }
    return lim;
}

static void reject_head(conn *c, int rc, const atp_err *err)
{
    if (rc == ATP_ELIMIT) {
        reject(c, 431, "InvalidRequest", "request head too large");
    } else if (rc == ATP_EUNSUPPORTED) {
        reject(c, 501, "MethodNotImplemented", err->msg);
    } else {
        reject(c, 400, "InvalidRequest", err->msg);
    }
}

static bool start_body(conn *c)
{
    atp_req *r = &c->req;
    const atp_http_request *h = &r->head;
    r->is_head = atp_slice_eq_str(h->method, "HEAD");
    r->keep_alive = h->keep_alive;
    r->minor0 = h->minor == 0;
    if (h->expect_other) {
        reject(c, 417, "InvalidRequest", "unsupported expectation");
        return false;
    }
    if (h->has_length && h->content_length > c->s->cfg.max_body) {
        reject(c, 413, "PayloadTooLarge", "request body too large");
        return false;
    }
    if (h->chunked) {
        atp_http_chunked_init(&r->chunk);
    }
    r->body_left = h->content_length;
    if (h->expect_continue && !r->minor0 && (h->chunked || h->content_length > 0)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        bufferevent_write(c->bev, cont, sizeof cont - 1);
    }
    c->state = C_BODY;
    return true;
}

/* Returns true once a head is parsed (state C_BODY). */
static bool read_head(conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    atp_http_limits lim = head_limits(c->s);
    size_t len = evbuffer_get_length(in), n;
    const uint8_t *p;
    uint8_t *copy;
    atp_err err;
    int rc;
    if (len == 0) {
        return false;
    }
    if (!c->head_timer) {
        c->head_timer = true;
        conn_set_timer(c, c->s->cfg.header_timeout_ms);
    }
    n = len < lim.max_header_bytes ? len : lim.max_header_bytes;
    p = evbuffer_pullup(in, (ev_ssize_t)n);
    /* Re-parse only when a line ended since last time: bounded work per request. */
    if (c->scanned < n && !memchr(p + c->scanned, '\n', n - c->scanned) && n == len) {
        c->scanned = n;
        return false;
    }
    c->scanned = n;
    rc = atp_http_parse_request(atp_slice_make(p, n), &lim, &c->req.head, &err);
    if (rc == ATP_EAGAIN && len < lim.max_header_bytes) {
        return false;
    }
    if (rc < 0) {
        reject_head(c, rc == ATP_EAGAIN ? ATP_ELIMIT : rc, &err);
        return false;
    }
    /* Keep the head in the arena so its slices outlive the input buffer. */
    copy = atp_arena_dup(c->req.arena, p, (size_t)rc);
    if (atp_http_parse_request(atp_slice_make(copy, (size_t)rc), &lim, &c->req.head, NULL) != rc) {
        reject(c, 500, "InternalServerError", "head re-parse failed");
        return false;
    }
    evbuffer_drain(in, (size_t)rc);
    c->scanned = 0;
    c->head_timer = false;
    return start_body(c);
}

static int body_error(conn *c, int rc)
{
    if (rc == ATP_ELIMIT) {
        reject(c, 413, "PayloadTooLarge", "request body too large");
    } else {
        reject(c, 400, "InvalidRequest", "bad chunked body");
    }
    return rc;
}

/* Returns true once the body is complete. */
static bool read_body(conn *c)
{
    atp_req *r = &c->req;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (r->head.chunked && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used = 0;
        int rc;
        evbuffer_peek(in, -1, NULL, &v, 1);
        rc = atp_http_chunked_decode(&r->chunk, atp_slice_make(v.iov_base, v.iov_len), &r->body,
                                     &used, NULL);
        evbuffer_drain(in, used);
        if (rc == 0) {
            return true;
        }
        if (rc != ATP_EAGAIN) {
            body_error(c, rc);
            return false;
        }
    }
    if (!r->head.chunked && r->body_left > 0) {
        size_t avail = evbuffer_get_length(in);
        size_t n = avail < r->body_left ? avail : (size_t)r->body_left;
        uint8_t *dst = atp_buf_reserve(&r->body, n);
        if (!dst) {
            body_error(c, ATP_ELIMIT);
            return false;
        }
        evbuffer_remove(in, dst, n);
        atp_buf_commit(&r->body, n);
        r->body_left -= n;
    }
    if (!r->head.chunked && r->body_left == 0) {
        return true;
    }
    conn_set_timer(c, c->s->cfg.header_timeout_ms); /* progress resets the body timer */
    return false;
}

static void dispatch(conn *c);

static void conn_process(conn *c)
{
    if (c->state == C_HEAD && !read_head(c)) {
        if (c->state == C_HEAD && c->peer_eof) {
            conn_free(c);
        }
        return;
    }
    if (c->state == C_BODY && read_body(c)) {
        dispatch(c);
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    conn *c = arg;
    if (!c->s->loop_thread_set) {
        c->s->loop_thread = pthread_self();
        c->s->loop_thread_set = true;
    }
    switch (c->state) {
    case C_HEAD:
    case C_BODY:
        conn_process(c);
        break;
    case C_WS:
        ws_read(c);
        break;
    default:
        /* lingering or closing: the client's bytes are not wanted */
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        break;
    }
}

/* ---- routing ---- */

/* Linear scan: a daemon has a few hundred routes at most, and comparing lengths first makes
 * each miss cheap; not worth a hash table yet. */
static const route *find_route(const atp_server *s, atp_slice method, atp_slice path)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        const route *rt = &s->routes[i];
        if (atp_slice_eq_str(path, rt->path) && atp_slice_eq_str(method, rt->method)) {
            return rt;
        }
    }
    return NULL;
}

static bool path_known(const atp_server *s, atp_slice path)
{
    for (size_t i = 0; i < s->nroutes; i++) {
        if (atp_slice_eq_str(path, s->routes[i].path)) {
            return true;
        }
    }
    return false;
}

bool atp_server_has_path(const atp_server *s, atp_slice path)
{
    return path_known(s, path);
}

static const ws_route *find_ws_route(const atp_server *s, atp_slice path)
{
    for (size_t i = 0; i < s->nws; i++) {
        if (atp_slice_eq_str(path, s->ws_routes[i].path)) {
            return &s->ws_routes[i];
        }
    }
    return NULL;
}

static void default_fallback(atp_req *r, void *ud)
{
    bool xrpc = atp_slice_has_prefix(r->head.path, ATP_SLICE_LIT("/xrpc/"));
    (void)ud;
    if (path_known(r->s, r->head.path)) {
        if (xrpc) {
            atp_req_error_status(r, 400, "InvalidRequest", "Incorrect HTTP method");
        } else {
            atp_req_error_status(r, 405, "MethodNotAllowed", "method not allowed");
        }
    } else if (xrpc) {
        atp_req_error_status(r, 501, "MethodNotImplemented", "Method Not Implemented");
    } else {
        atp_req_error_status(r, 404, "NotFound", "not found");
    }
}

static void run_route(atp_req *r, const route *rt)
{
    r->rt = rt;
    r->in_handler = true;
    if ((rt->flags & ATP_ROUTE_BLOCKING) && r->s->nthreads > 0) {
        job_push(r->s, r);
        return;
    }
    rt->fn(r, rt->ud);
    handler_returned(r);
}

static void preflight(atp_req *r)
{
    atp_req_add_header(r, "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    atp_req_add_header(r, "Access-Control-Allow-Headers",
                       "authorization, content-type, atproto-proxy, atproto-accept-labelers, "
                       "dpop, atproto-content-labelers");
    atp_req_add_header(r, "Access-Control-Max-Age", "86400");
    atp_req_respond(r, 204, NULL, atp_slice_make(NULL, 0));
}

static void ws_upgrade(conn *c, const ws_route *wr);

static void dispatch(conn *c)
{
    atp_req *r = &c->req;
    atp_server *s = c->s;
    const ws_route *wr = find_ws_route(s, r->head.path);
    const route *rt;
    conn_set_timer(c, 0);
    bufferevent_disable(c->bev, EV_READ); /* pipelined requests wait in the socket */
    c->state = C_HANDLING;
    if (wr && atp_slice_eq_str(r->head.method, "GET")) {
        ws_upgrade(c, wr);
        return;
    }
    if (s->cfg.cors && atp_slice_eq_str(r->head.method, "OPTIONS")) {
        preflight(r);
        return;
    }
    rt = find_route(s, r->head.method, r->head.path);
    if (!rt && r->is_head) {
        rt = find_route(s, ATP_SLICE_LIT("GET"), r->head.path);
    }
    run_route(r, rt ? rt : &s->fallback);
}

/* ---- WebSocket ---- */

static bool ws_handshake_ok(atp_req *r, char accept[ATP_WS_ACCEPT_LEN + 1])
{
    atp_slice v;
    if (!r->head.upgrade_websocket || r->minor0) {
        atp_req_add_header(r, "Upgrade", "websocket");
        atp_req_error_status(r, 426, "InvalidRequest", "WebSocket upgrade required");
        return false;
    }
    if (!atp_req_header(r, "sec-websocket-version", &v) || !atp_slice_eq_str(v, "13")) {
        atp_req_add_header(r, "Sec-WebSocket-Version", "13");
        atp_req_error_status(r, 426, "InvalidRequest", "WebSocket version 13 required");
        return false;
    }
    if (!atp_req_header(r, "sec-websocket-key", &v) || atp_ws_accept_key(v, accept, NULL) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "bad Sec-WebSocket-Key");
        return false;
    }
    return true;
}

static void ws_accept(conn *c, atp_ws_conn *ws, const char *accept)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    atp_ws_limits lim = {c->s->cfg.ws_max_message};
    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                        accept);
    evbuffer_add_buffer(out, ws->early);
    evbuffer_free(ws->early);
    ws->early = NULL;
    count_status(c->s, 101);
    c->s->st.ws_open++;
    ws->accepted = true;
    atp_ws_parser_init(&ws->parser, true, &lim);
    c->req.written = true;
    c->state = C_WS;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
}

static void ws_upgrade(conn *c, const ws_route *wr)
{
    atp_req *r = &c->req;
    char accept[ATP_WS_ACCEPT_LEN + 1];
    atp_ws_conn *ws;
    int rc = 0;
    r->in_handler = true; /* responses made here are written below, not re-entrantly */
    if (!ws_handshake_ok(r, accept)) {
        handler_returned(r);
        return;
    }
    ws = atp_xcalloc(1, sizeof *ws);
    ws->c = c;
    ws->rt = wr;
    ws->early = evbuffer_new();
    if (wr->h.on_open) {
        rc = wr->h.on_open(ws, r, wr->ud);
    }
    if (rc != 0) {
        evbuffer_free(ws->early); /* references in it (shared frames) are released */
        free(ws);
        if (!r->responded) {
            atp_req_error(r, rc < 0 ? rc : ATP_EINVAL, NULL);
        }
        handler_returned(r);
        return;
    }
    r->in_handler = false;
    c->ws = ws;
    ws_accept(c, ws, accept);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        ws_read(c);
    }
}

/* Queues a frame, bypassing the slow-consumer bound (control frames, final frames). */
static struct evbuffer *ws_out(const atp_ws_conn *ws)
{
    return ws->early ? ws->early : bufferevent_get_output(ws->c->bev);
}

static void ws_put(atp_ws_conn *ws, uint8_t opcode, atp_slice data)
{
    uint8_t hb[ATP_WS_HEAD_MAX];
    struct evbuffer *out = ws_out(ws);
    evbuffer_add(out, hb, atp_ws_head_encode(hb, opcode, true, data.len, NULL));
    evbuffer_add(out, data.ptr, data.len);
}

static void ws_send_close(atp_ws_conn *ws, uint16_t code, atp_slice reason)
{
    atp_buf b;
    if (ws->close_sent) {
        return;
    }
    atp_buf_init(&b, 256);
    atp_ws_encode_close(&b, code, reason);
    evbuffer_add(bufferevent_get_output(ws->c->bev), b.ptr, b.len);
    atp_buf_release(&b);
    ws->close_sent = true;
    if (!ws->close_rcvd) {
        ws->close_code = code;
    }
}

/* Protocol error or peer's close: send our close and go once it has left. */
static void ws_finish(atp_ws_conn *ws)
{
    conn *c = ws->c;
    c->state = C_DRAIN;
    conn_set_timer(c, WS_CLOSE_MS);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
    }
}

static void ws_event(atp_ws_conn *ws, const atp_ws_event *ev)
{
    switch (ev->opcode) {
    case ATP_WS_TEXT:
    case ATP_WS_BINARY:
        if (!ws->close_sent && ws->rt->h.on_message) {
            ws->rt->h.on_message(ws, ev->opcode, ev->data, ws->rt->ud);
        }
        break;
    case ATP_WS_PING:
        if (!ws->close_sent) {
            ws_put(ws, ATP_WS_PONG, ev->data);
        }
        break;
    case ATP_WS_CLOSE:
        ws->close_rcvd = true;
        ws->close_code = ev->code;
        /* Echo the code (none if the peer sent none), then close. */
        ws_send_close(ws, ev->code == ATP_WS_NO_STATUS ? 0 : ev->code, atp_slice_make(NULL, 0));
        ws_finish(ws);
        break;
    default: /* pong */
        break;
    }
}

static void ws_read(conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    atp_ws_conn *ws = c->ws;
    while (c->state == C_WS && !ws->cut_off && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        atp_ws_event ev;
        size_t used = 0;
        int rc;
        evbuffer_peek(in, -1, NULL, &v, 1);
        rc = atp_ws_parser_feed(&ws->parser, atp_slice_make(v.iov_base, v.iov_len), &used, &ev,
                                NULL);
        if (rc == ATP_EAGAIN) {
            evbuffer_drain(in, v.iov_len);
            continue;
        }
        if (rc < 0) {
            ws_send_close(ws, ws->parser.fail_code, atp_slice_make(NULL, 0));
            ws_finish(ws);
            break;
        }
        evbuffer_drain(in, used);
        ws_event(ws, &ev);
    }
    if (c->state != C_WS || ws->cut_off) {
        evbuffer_drain(in, evbuffer_get_length(in));
    }
}

void atp_ws_conn_set_data(atp_ws_conn *ws, void *data)
{
    ws->data = data;
}

void *atp_ws_conn_data(const atp_ws_conn *ws)
{
    return ws->data;
}

const char *atp_ws_conn_remote(const atp_ws_conn *ws)
{
    return ws->c->remote;
}

size_t atp_ws_conn_queued(const atp_ws_conn *ws)
{
    return ws->c->bev ? evbuffer_get_length(bufferevent_get_output(ws->c->bev)) : 0;
}

/* Past the bound: let the daemon queue a last frame, then close with 1008 and drop the
 * connection after a short grace whatever it has read by then. */
static int ws_check_slow(atp_ws_conn *ws)
{
    conn *c = ws->c;
    if (ws->in_slow || ws->early || atp_ws_conn_queued(ws) <= c->s->cfg.ws_max_queued) {
        return 0;
    }
    c->s->st.slow_consumers++;
    ws->in_slow = true;
    if (ws->rt->h.on_slow) {
        ws->rt->h.on_slow(ws, ws->rt->ud);
    }
    ws->in_slow = false;
    ws_send_close(ws, ATP_WS_POLICY, ATP_SLICE_LIT("ConsumerTooSlow"));
    ws->cut_off = true;
    conn_set_timer(c, SLOW_GRACE_MS);
    return ATP_ELIMIT;
}

static bool ws_can_send(const atp_ws_conn *ws)
{
    if (ws->early) {
        return true; /* inside on_open */
    }
    return ws->accepted && !ws->close_sent && !ws->cut_off && !ws->c->dead && ws->c->bev &&
           ws->c->state == C_WS;
}

int atp_ws_conn_send(atp_ws_conn *ws, int opcode, atp_slice data)
{
    if (!ws_can_send(ws) || (opcode != ATP_WS_TEXT && opcode != ATP_WS_BINARY)) {
        return ATP_EIO;
    }
    ws_put(ws, (uint8_t)opcode, data);
    return ws_check_slow(ws);
}

static void frame_cleanup(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    atp_ws_frame_release(extra);
}

int atp_ws_conn_send_frame(atp_ws_conn *ws, atp_ws_frame *f)
{
    if (!ws_can_send(ws)) {
        return ATP_EIO;
    }
    atomic_fetch_add(&f->refs, 1);
    evbuffer_add_reference(ws_out(ws), f->data, f->len, frame_cleanup, f);
    return ws_check_slow(ws);
}

void atp_ws_conn_close(atp_ws_conn *ws, uint16_t code, const char *reason)
{
    if (!ws->accepted || ws->close_sent || !ws->c->bev) {
        return;
    }
    ws_send_close(ws, code, atp_slice_str(reason));
    conn_set_timer(ws->c, WS_CLOSE_MS); /* the peer's close frame must come by then */
}

atp_ws_frame *atp_ws_frame_create(int opcode, atp_slice payload)
{
    uint8_t hb[ATP_WS_HEAD_MAX];
    size_t hn = atp_ws_head_encode(hb, (uint8_t)opcode, true, payload.len, NULL);
    atp_ws_frame *f = atp_xmalloc(sizeof *f + hn + payload.len);
    atomic_init(&f->refs, 1);
    f->len = hn + payload.len;
    memcpy(f->data, hb, hn);
    if (payload.len) {
        memcpy(f->data + hn, payload.ptr, payload.len);
    }
    return f;
}

void atp_ws_frame_release(atp_ws_frame *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
        free(f);
    }
}

/* ---- accepting ---- */

static void count_in(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    atp_server *s = arg;
    (void)b;
    s->st.bytes_in += info->n_added;
}

static void count_out(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    atp_server *s = arg;
    (void)b;
    s->st.bytes_out += info->n_deleted;
}

static void refuse_busy(evutil_socket_t fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json"
                               "\r\nContent-Length: 58\r\nConnection: close\r\n\r\n"
                               "{\"error\":\"NotEnoughResources\",\"message\":\"too many conns\"}";
    /* Best effort on a fresh socket: its send buffer is empty, so this does not block. */
    ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    evutil_closesocket(fd);
}

static void peer_text(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *addr = sa->sa_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, addr, out, (socklen_t)cap)) {
        snprintf(out, cap, "?");
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    atp_server *s = arg;
    struct timeval wtv = ms_tv(s->cfg.write_timeout_ms);
    conn *c;
    (void)l;
    (void)socklen;
    s->loop_thread = pthread_self();
    s->loop_thread_set = true;
    if (s->shutting_down || s->st.conns_open >= s->cfg.max_conns) {
        refuse_busy(fd);
        return;
    }
    /* A response may leave in two writes (head, then a body handed over later): without
     * TCP_NODELAY the second waits for the peer's delayed ACK (~40 ms on Linux). */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c = atp_xcalloc(1, sizeof *c);
    c->s = s;
    peer_text(sa, c->remote, sizeof c->remote);
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(s->base, timer_cb, c);
    req_init(&c->req, c);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_set_timeouts(c->bev, NULL, &wtv);
    evbuffer_add_cb(bufferevent_get_input(c->bev), count_in, s);
    evbuffer_add_cb(bufferevent_get_output(c->bev), count_out, s);
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->st.conns_open++;
    c->state = C_HEAD;
    conn_set_timer(c, s->cfg.idle_timeout_ms);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ---- built-in routes ---- */

static void health_default(atp_req *r, void *ud)
{
    atp_server *s = ud;
    atp_buf b;
    atp_buf_init(&b, 256);
    atp_buf_append_str(&b, "{\"version\":\"");
    json_escape(&b, s->version);
    atp_buf_append_str(&b, "\"}");
    atp_req_respond(r, 200, "application/json; charset=utf-8", atp_buf_slice(&b));
    atp_buf_release(&b);
}

static void metrics_handler(atp_req *r, void *ud)
{
    atp_server *s = ud;
    const char *p = s->svc;
    atp_buf b;
    atp_buf_init(&b, (size_t)16 << 20);
    atp_buf_printf(&b, "# TYPE atp_%s_http_requests_total counter\n", p);
    for (int i = 1; i <= 5; i++) {
        atp_buf_printf(&b, "atp_%s_http_requests_total{class=\"%dxx\"} %llu\n", p, i,
                       (unsigned long long)s->st.requests[i]);
    }
    atp_buf_printf(&b, "# TYPE atp_%s_http_connections gauge\natp_%s_http_connections %llu\n", p,
                   p, (unsigned long long)s->st.conns_open);
    atp_buf_printf(&b, "# TYPE atp_%s_ws_connections gauge\natp_%s_ws_connections %llu\n", p, p,
                   (unsigned long long)s->st.ws_open);
    atp_buf_printf(&b, "# TYPE atp_%s_received_bytes_total counter\natp_%s_received_bytes_total "
                   "%llu\n", p, p, (unsigned long long)s->st.bytes_in);
    atp_buf_printf(&b, "# TYPE atp_%s_sent_bytes_total counter\natp_%s_sent_bytes_total %llu\n", p,
                   p, (unsigned long long)s->st.bytes_out);
    atp_buf_printf(&b, "# TYPE atp_%s_ws_slow_consumers_total counter\n"
                   "atp_%s_ws_slow_consumers_total %llu\n", p, p,
                   (unsigned long long)s->st.slow_consumers);
    if (s->metrics_fn) {
        s->metrics_fn(&b, s->metrics_ud);
    }
    if (b.err) {
        atp_req_error(r, ATP_EINTERNAL, "metrics too large");
    } else {
        atp_req_respond(r, 200, "text/plain; version=0.0.4", atp_buf_slice(&b));
    }
    atp_buf_release(&b);
}

void atp_server_route(atp_server *s, const char *method, const char *path, atp_handler_fn fn,
                      void *ud, unsigned flags)
{
    route *rt;
    for (size_t i = 0; i < s->nroutes; i++) {
        rt = &s->routes[i];
        if (strcmp(rt->method, method) == 0 && strcmp(rt->path, path) == 0) {
            rt->fn = fn; /* re-registering replaces (used for the built-ins) */
            rt->ud = ud;
            rt->flags = flags;
            return;
        }
    }
    s->routes = atp_xrealloc(s->routes, (s->nroutes + 1) * sizeof *s->routes);
    rt = &s->routes[s->nroutes++];
    rt->method = xstrdup(method);
    rt->path = xstrdup(path);
    rt->fn = fn;
    rt->ud = ud;
    rt->flags = flags;
}

void atp_server_fallback(atp_server *s, atp_handler_fn fn, void *ud, unsigned flags)
{
    s->fallback.fn = fn;
    s->fallback.ud = ud;
    s->fallback.flags = flags;
}

void atp_server_ws_route(atp_server *s, const char *path, const atp_ws_handlers *h, void *ud)
{
    ws_route *wr;
    s->ws_routes = atp_xrealloc(s->ws_routes, (s->nws + 1) * sizeof *s->ws_routes);
    wr = &s->ws_routes[s->nws++];
    wr->path = xstrdup(path);
    wr->h = *h;
    wr->ud = ud;
}

void atp_server_set_health(atp_server *s, atp_handler_fn fn, void *ud)
{
    atp_server_route(s, "GET", "/xrpc/_health", fn, ud, 0);
}

void atp_server_set_metrics_hook(atp_server *s, void (*fn)(atp_buf *out, void *ud), void *ud)
{
    s->metrics_fn = fn;
    s->metrics_ud = ud;
}

uint16_t atp_server_port(const atp_server *s)
{
    return s->port;
}

void atp_server_get_stats(const atp_server *s, atp_server_stats *out)
{
    *out = s->st;
}

/* ---- lifecycle ---- */

static int bind_listener(atp_server *s, atp_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, s->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(s->cfg.port);
        len = sizeof *v4;
    } else if (inet_pton(AF_INET6, s->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(s->cfg.port);
        len = sizeof *v6;
    } else {
        return atp_err_set(err, ATP_EINVAL, 0, "bad listen address %s", s->host);
    }
    s->listener = evconnlistener_new_bind(s->base, accept_cb, s,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                              LEV_OPT_CLOSE_ON_EXEC,
                                          511, (struct sockaddr *)&ss, (int)len);
    if (!s->listener) {
        return atp_err_set(err, ATP_EIO, 0, "cannot listen on %s:%u: %s", s->host,
                           (unsigned)s->cfg.port, strerror(errno));
    }
    len = sizeof ss;
    getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &len);
    s->port = ntohs(ss.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
    return 0;
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    atp_server *s = arg;
    void (*done)(atp_server *, void *) = s->done;
    (void)fd;
    (void)what;
    if (s->shutdown_timer) {
        event_del(s->shutdown_timer);
    }
    s->done = NULL;
    if (done) {
        done(s, s->done_ud);
    }
}

static int start_pipe(atp_server *s, atp_err *err)
{
    if (pipe(s->wake) != 0) {
        return atp_err_set(err, ATP_EIO, 0, "pipe: %s", strerror(errno));
    }
    evutil_make_socket_nonblocking(s->wake[0]);
    evutil_make_socket_nonblocking(s->wake[1]);
    evutil_make_socket_closeonexec(s->wake[0]);
    evutil_make_socket_closeonexec(s->wake[1]);
    s->wake_ev = event_new(s->base, s->wake[0], EV_READ | EV_PERSIST, wake_cb, s);
    event_add(s->wake_ev, NULL);
    s->done_ev = event_new(s->base, -1, 0, done_cb, s);
    return 0;
}

static void copy_config(atp_server *s, const atp_server_config *cfg)
{
    s->cfg = *cfg;
    snprintf(s->host, sizeof s->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
    snprintf(s->svc, sizeof s->svc, "%s", cfg->svc ? cfg->svc : "atp");
    snprintf(s->version, sizeof s->version, "%s", cfg->version ? cfg->version : "0.1.0");
    s->cfg.host = s->host;
    s->cfg.svc = s->svc;
    s->cfg.version = s->version;
    if (s->cfg.max_header < 64) {
        s->cfg.max_header = 64;
    }
    if (s->cfg.max_body == 0) {
        s->cfg.max_body = 1;
    }
}

int atp_server_create(struct event_base *base, const atp_server_config *cfg, atp_server **out,
                      atp_err *err)
{
    atp_server *s = atp_xcalloc(1, sizeof *s);
    int rc;
    signal(SIGPIPE, SIG_IGN);
    s->base = base;
    copy_config(s, cfg);
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->task_lock, NULL);
    pthread_mutex_init(&s->req_lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->fallback.fn = default_fallback;
    rc = bind_listener(s, err);
    if (rc == 0) {
        rc = start_pipe(s, err);
    }
    if (rc < 0) {
        atp_server_destroy(s);
        return rc;
    }
    atp_server_route(s, "GET", "/xrpc/_health", health_default, s, 0);
    atp_server_route(s, "GET", "/metrics", metrics_handler, s, 0);
    s->threads = atp_xcalloc(s->cfg.workers ? s->cfg.workers : 1, sizeof *s->threads);
    for (unsigned i = 0; i < s->cfg.workers; i++) {
        if (pthread_create(&s->threads[i], NULL, worker_main, s) != 0) {
            break;
        }
        s->nthreads++;
    }
    *out = s;
    return 0;
}

static void stop_workers(atp_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < s->nthreads; i++) {
        pthread_join(s->threads[i], NULL);
    }
    s->nthreads = 0;
}

static void free_all_conns(atp_server *s)
{
    conn *c = s->conns;
    while (c) {
        conn *next = c->next;
        conn_free(c);
        c = next;
    }
}

void atp_server_destroy(atp_server *s)
{
    if (!s) {
        return;
    }
    if (s->listener) {
        evconnlistener_free(s->listener);
    }
    free_all_conns(s); /* those still owned by a handler only lose their socket */
    stop_workers(s);
    if (s->wake[0] >= 0) {
        wake_cb(s->wake[0], EV_READ, s); /* completions posted by the last handlers */
    }
    while (s->conns) { /* deferred forever: nobody will respond now */
        s->conns->req.written = true;
        conn_free(s->conns);
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    for (size_t i = 0; i < s->nws; i++) {
        free(s->ws_routes[i].path);
    }
    free(s->routes);
    free(s->ws_routes);
    free(s->threads);
    if (s->wake_ev) {
        event_free(s->wake_ev);
    }
    if (s->done_ev) {
        event_free(s->done_ev);
    }
    if (s->shutdown_timer) {
        event_free(s->shutdown_timer);
    }
    if (s->sig_term) {
        event_free(s->sig_term);
    }
    if (s->sig_int) {
        event_free(s->sig_int);
    }
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->task_lock);
    pthread_mutex_destroy(&s->req_lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    atp_server *s = arg;
    (void)fd;
    (void)what;
    atp_log_kv(ATP_LOG_WARN, "server", "shutdown timeout: closing remaining connections", NULL, 0);
    free_all_conns(s);
    event_active(s->done_ev, 0, 0);
}

static void shutdown_conn(conn *c)
{
    if (c->state == C_HEAD && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        conn_free(c);
    } else if (c->state == C_WS) {
        atp_ws_conn_close(c->ws, ATP_WS_GOING_AWAY, "server shutting down");
    } else {
        c->close_after = true;
    }
}

void atp_server_shutdown(atp_server *s, unsigned timeout_ms, void (*done)(atp_server *s, void *ud),
                         void *ud)
{
    struct timeval tv = ms_tv(timeout_ms);
    conn *c = s->conns;
    if (s->shutting_down) {
        return;
    }
    s->shutting_down = true;
    s->done = done;
    s->done_ud = ud;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    while (c) {
        conn *next = c->next;
        if (!c->dead) {
            shutdown_conn(c);
        }
        c = next;
    }
    s->shutdown_timer = evtimer_new(s->base, shutdown_timeout_cb, s);
    event_add(s->shutdown_timer, &tv);
    check_shutdown_done(s);
}

static void signal_done(atp_server *s, void *ud)
{
    (void)ud;
    event_base_loopexit(s->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    atp_server *s = arg;
    (void)what;
    if (s->signals_seen++ > 0) {
        atp_log_kv(ATP_LOG_WARN, "server", "second signal: exiting now", NULL, 0);
        event_base_loopbreak(s->base);
        return;
    }
    atp_logf(ATP_LOG_INFO, "server", "signal %d: draining", (int)sig);
    atp_server_shutdown(s, s->sig_timeout_ms, signal_done, NULL);
}

int atp_server_handle_signals(atp_server *s, unsigned timeout_ms, atp_err *err)
{
    s->sig_timeout_ms = timeout_ms;
    s->sig_term = evsignal_new(s->base, SIGTERM, signal_cb, s);
    s->sig_int = evsignal_new(s->base, SIGINT, signal_cb, s);
    if (!s->sig_term || !s->sig_int || evsignal_add(s->sig_term, NULL) != 0 ||
        evsignal_add(s->sig_int, NULL) != 0) {
        return atp_err_set(err, ATP_EIO, 0, "cannot install signal events");
    }
    return 0;
}

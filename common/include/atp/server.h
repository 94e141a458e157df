/* atp/server.h: HTTP/1.1 and WebSocket on one port, on a caller's libevent event_base.
 *
 * One loop thread owns every connection. A connection starts as HTTP/1.1 (keep-alive,
 * pipelining answered in order, HTTP/1.0 close semantics, HEAD, CORS) and may switch to
 * RFC 6455 on the same bufferevent after a WebSocket route's on_open accepts it.
 *
 * Threads. Handlers run on the loop thread unless their route has ATP_ROUTE_BLOCKING: those
 * run on a worker pool. Responses may be produced from any thread (a worker, or any thread
 * after atp_req_defer): the response is built into the request, then handed to the loop
 * through a mutex-protected completion queue and a pipe read event. That wake-up works on any
 * event_base, with or without evthread locking, and keeps every bufferevent on one thread.
 * Everything else in this header (WebSocket sends, streaming writes, shutdown) is loop-thread
 * only; atp_server_call_on_loop moves work there from other threads.
 *
 * Memory bounds. Request heads and bodies are bounded by the config (413/431 past them,
 * without reading the rest); pipelined requests wait in the socket while one is served; each
 * WebSocket's queued output is bounded: passing the bound cuts the slow consumer off.
 */
#ifndef ATP_SERVER_H
#define ATP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"

struct event_base;

typedef struct atp_server atp_server;
typedef struct atp_req atp_req;         /* one HTTP request/response exchange */
typedef struct atp_ws_conn atp_ws_conn; /* one upgraded WebSocket connection */
typedef struct atp_ws_frame atp_ws_frame;

typedef struct atp_server_config {
    const char *host;             /* bind address, default "127.0.0.1" */
    uint16_t port;                /* 0 = ephemeral (see atp_server_port) */
    const char *svc;              /* metric prefix atp_<svc>_..., default "atp" */
    const char *version;          /* default /xrpc/_health body {"version":...} */
    size_t max_body;              /* request body bytes (413 past it), default 1 MiB */
    size_t max_header;            /* request head bytes (431 past it), default 16 KiB */
    unsigned header_timeout_ms;   /* first byte to complete head, and body progress: 10 s */
    unsigned idle_timeout_ms;     /* keep-alive wait for the next request, default 60 s */
    unsigned write_timeout_ms;    /* no write progress while output is pending: 60 s */
    unsigned max_conns;           /* open connections (HTTP + WS); past it: 503, close */
    size_t ws_max_message;        /* inbound WebSocket message bytes, default 1 MiB */
    size_t ws_max_queued;         /* outbound bytes queued per WebSocket, default 8 MiB */
    size_t stream_low_water;      /* streaming: "writable" when output is below, 256 KiB */
    bool cors;                    /* Access-Control-Allow-Origin: * and preflights */
    unsigned workers;             /* worker threads for blocking routes, default 4 */
} atp_server_config;

/* Fills `c` with the defaults above. */
void atp_server_config_init(atp_server_config *c);

typedef void (*atp_handler_fn)(atp_req *req, void *ud);

/* Route flags. */
enum {
    ATP_ROUTE_BLOCKING = 1, /* run the handler on the worker pool */
};

typedef struct atp_ws_handlers {
    /* Before the upgrade, on the loop thread: inspect the request (query, headers). Return 0
     * to accept; any negative ATP_E* to refuse: the response set on `req` (atp_req_error...)
     * is sent, or if none, a JSON error for the code. Frames sent on `ws` from here (a cursor
     * replay) go out right after the 101; the request is gone once on_open returns. */
    int (*on_open)(atp_ws_conn *ws, atp_req *req, void *ud);
    /* A whole text or binary message (borrowed for the call). */
    void (*on_message)(atp_ws_conn *ws, int opcode, atp_slice data, void *ud);
    /* Exactly once per accepted connection, when it is gone: `code` is the peer's close code,
     * ours if we closed, or 1006 if the connection dropped. `ws` is freed after the return. */
    void (*on_close)(atp_ws_conn *ws, uint16_t code, void *ud);
    /* The queued output passed ws_max_queued: a last chance to queue a final frame (e.g.
     * ConsumerTooSlow; sends bypass the bound during this call). The connection is then
     * closed with 1008; its output is dropped after a short grace (1 s). Optional. */
    void (*on_slow)(atp_ws_conn *ws, void *ud);
} atp_ws_handlers;

/* Creates a server listening on cfg->host:cfg->port, driven by `base` (which must outlive
 * it), and starts its worker threads. Ignores SIGPIPE process-wide. ATP_EIO if the address
 * cannot be bound, ATP_EINVAL for a bad host. *out (owned: atp_server_destroy) on success. */
ATP_NODISCARD int atp_server_create(struct event_base *base, const atp_server_config *cfg,
                                    atp_server **out, atp_err *err);

/* Closes every connection at once, joins the workers (waiting for running handlers), frees.
 * Loop thread, with the loop not running a server callback. NULL is a no-op. */
void atp_server_destroy(atp_server *s);

/* The bound port (useful with port 0). */
uint16_t atp_server_port(const atp_server *s);

/* Exact-path route for a method ("GET", "POST"...; GET routes also answer HEAD). Paths are
 * compared raw (not percent-decoded): XRPC paths are /xrpc/<nsid>. Copies method and path.
 * Register before the loop runs. */
void atp_server_route(atp_server *s, const char *method, const char *path, atp_handler_fn fn,
                      void *ud, unsigned flags);

/* Handler for requests no route matches (default: 501 MethodNotImplemented JSON for /xrpc/
 * paths, else 404 NotFound JSON; a path known for another method gets 400 InvalidRequest
 * "Incorrect HTTP method" on /xrpc/ and 405 elsewhere). */
void atp_server_fallback(atp_server *s, atp_handler_fn fn, void *ud, unsigned flags);

/* Whether any HTTP route (of any method) has exactly this path: lets a fallback handler tell
 * a wrong method on a known path from an unknown path. */
bool atp_server_has_path(const atp_server *s, atp_slice path);

/* WebSocket route: GET `path` with an upgrade. A plain GET there (no upgrade) gets 426. */
void atp_server_ws_route(atp_server *s, const char *path, const atp_ws_handlers *h, void *ud);

/* Replaces the GET /xrpc/_health handler (default: 200 {"version":"<cfg->version>"}). */
void atp_server_set_health(atp_server *s, atp_handler_fn fn, void *ud);

/* Adds daemon lines to GET /metrics (Prometheus text, appended after the server's own). */
void atp_server_set_metrics_hook(atp_server *s, void (*fn)(atp_buf *out, void *ud), void *ud);

/* Runs fn(arg) on the loop thread soon (thread-safe; FIFO). Used internally for completions;
 * daemons use it to hand work (e.g. a firehose broadcast) to the loop. */
void atp_server_call_on_loop(atp_server *s, void (*fn)(void *arg), void *arg);

/* Graceful shutdown: stop accepting, close idle keep-alive connections, let in-flight
 * requests finish (their connections then close), close WebSockets with 1001; when nothing is
 * left, or after `timeout_ms` (then the rest is closed at once), calls done(s, ud) on the
 * loop thread. Loop thread only; a second call is ignored. */
void atp_server_shutdown(atp_server *s, unsigned timeout_ms, void (*done)(atp_server *s, void *ud),
                         void *ud);

/* What a daemon's main needs for signals: SIGTERM and SIGINT as libevent signal events on
 * the server's base. The first starts atp_server_shutdown(timeout_ms) and exits the loop
 * (event_base_loopexit) when it is done; a second one exits the loop at once. */
ATP_NODISCARD int atp_server_handle_signals(atp_server *s, unsigned timeout_ms, atp_err *err);

/* Counters, for tests and health (loop thread). */
typedef struct atp_server_stats {
    uint64_t requests[6]; /* by status class: [1]=1xx ... [5]=5xx */
    uint64_t conns_open, ws_open, bytes_in, bytes_out, slow_consumers;
} atp_server_stats;

void atp_server_get_stats(const atp_server *s, atp_server_stats *out);

/* ---- requests (valid from the handler call until the response is complete) ---- */

atp_slice atp_req_method(const atp_req *r);
atp_slice atp_req_path(const atp_req *r);  /* raw, before '?' */
atp_slice atp_req_query_raw(const atp_req *r); /* raw, after '?' */
/* First query parameter `name`, percent-decoded ('+' = space) into the request arena and
 * NUL-terminated (out->ptr[out->len] == 0). False if absent or badly escaped. */
bool atp_req_query(atp_req *r, const char *name, atp_slice *out);

/* Repeated parameters: init with the name, then next() until false; values decoded as above
 * (badly escaped ones are skipped). */
typedef struct atp_req_query_iter {
    atp_slice rest;
    const char *name;
} atp_req_query_iter;
void atp_req_query_iter_init(atp_req *r, atp_req_query_iter *it, const char *name);
bool atp_req_query_next(atp_req *r, atp_req_query_iter *it, atp_slice *out);

/* First header `name` (case-insensitive); borrowed. */
bool atp_req_header(const atp_req *r, const char *name, atp_slice *out);
/* The whole request body (chunked bodies decoded); borrowed, empty if none. */
atp_slice atp_req_body(const atp_req *r);
/* Peer address text ("127.0.0.1" or an IPv6 address). */
const char *atp_req_remote(const atp_req *r);
/* Arena reset when the connection's next request starts. */
atp_arena *atp_req_arena(atp_req *r);
atp_server *atp_req_server(const atp_req *r);

/* ---- responses (exactly one per request; any thread unless noted) ---- */

/* Adds a response header (before the respond call). Content-Length, Transfer-Encoding,
 * Connection and Date are the server's. */
void atp_req_add_header(atp_req *r, const char *name, const char *value);

/* Complete response with a copied body; `content_type` may be NULL (no body type). */
void atp_req_respond(atp_req *r, int status, const char *content_type, atp_slice body);

/* Complete response with a borrowed body: free_fn(body, len, arg) is called (on the loop
 * thread) once the bytes are no longer needed; free_fn may be NULL for static data. */
void atp_req_respond_ref(atp_req *r, int status, const char *content_type, const void *body,
                         size_t len, void (*free_fn)(const void *body, size_t len, void *arg),
                         void *arg);

/* JSON error {"error":"<atp_err_xrpc(code)>","message":"<message or default text>"} with
 * status atp_err_status(code). */
void atp_req_error(atp_req *r, int code, const char *message);

/* JSON error with an explicit status and error name. */
void atp_req_error_status(atp_req *r, int status, const char *error, const char *message);

/* Tells the server the handler returns without responding: some thread will respond later.
 * A handler that neither responds nor defers gets a 500. */
void atp_req_defer(atp_req *r);

/* Streaming response (chunked; HTTP/1.0: unframed, then close). `writable(r, arg)` is called
 * on the loop thread right after the head is sent and whenever the connection's output drains
 * below stream_low_water; it writes some data with atp_req_stream_write and returns, or ends
 * the response with atp_req_stream_end. (A call that writes nothing is not repeated: a
 * producer waiting for data writes later from the loop thread itself.) If the client goes
 * away, `writable` is called one last time with atp_req_stream_write returning ATP_EIO; end
 * the stream then. HEAD requests: writes are discarded. Start: any thread. */
void atp_req_stream_start(atp_req *r, int status, const char *content_type,
                          void (*writable)(atp_req *r, void *arg), void *arg);
/* Appends data (copied) as one chunk. Loop thread. ATP_EIO if the client has gone. */
ATP_NODISCARD int atp_req_stream_write(atp_req *r, atp_slice data);
/* Ends the stream (the last chunk); the request is complete after this. Loop thread. */
void atp_req_stream_end(atp_req *r);
/* Ends the stream as failed (loop thread): no final chunk, the connection closes after what
 * is queued, so the client sees a truncated body. The request is complete after this. */
void atp_req_stream_abort(atp_req *r);
/* Output bytes queued for the client right now (loop thread). */
size_t atp_req_stream_queued(const atp_req *r);

/* ---- WebSocket connections (loop thread) ---- */

void atp_ws_conn_set_data(atp_ws_conn *ws, void *data);
void *atp_ws_conn_data(const atp_ws_conn *ws);
const char *atp_ws_conn_remote(const atp_ws_conn *ws);

/* Sends a whole text (opcode 1) or binary (2) message, copied. ATP_EIO if the connection is
 * closing, ATP_ELIMIT if this send made it a slow consumer (it is being cut off). */
ATP_NODISCARD int atp_ws_conn_send(atp_ws_conn *ws, int opcode, atp_slice data);

/* Sends a shared frame without copying (a reference in the output buffer). Same results. */
ATP_NODISCARD int atp_ws_conn_send_frame(atp_ws_conn *ws, atp_ws_frame *f);

/* Starts the close handshake (code, reason cut to 123 bytes); on_close follows. */
void atp_ws_conn_close(atp_ws_conn *ws, uint16_t code, const char *reason);

/* Bytes queued in this connection's output. */
size_t atp_ws_conn_queued(const atp_ws_conn *ws);

/* A message encoded once (head + payload) for many connections. Created with one reference
 * (owned by the caller); every send takes one more, dropped when the bytes have been written
 * or discarded. The count is atomic: create and release from any thread. */
atp_ws_frame *atp_ws_frame_create(int opcode, atp_slice payload);
void atp_ws_frame_release(atp_ws_frame *f);

#endif

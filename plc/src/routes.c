/* plc/src/routes.c: HTTP handlers. Errors use the directory's {"message": ...} body, not the
 * XRPC {error, message} shape (spec identity-crypto §4.5). */
#include "routes.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp/log.h"

#include "ops.h"

#define BODY_MAX ((size_t)64 << 20)

static void respond_msg(atp_req *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *text;
    cJSON_AddStringToObject(o, "message", msg);
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) {
        atp_req_respond(r, 500, "application/json", ATP_SLICE_LIT("{\"message\":\"oom\"}"));
        return;
    }
    atp_req_respond(r, status, "application/json", atp_slice_str(text));
    free(text);
}

static void respond_buf(atp_req *r, const char *type, atp_buf *b)
{
    if (b->err < 0) {
        respond_msg(r, 500, "response too large");
    } else {
        atp_req_respond(r, 200, type, atp_buf_slice(b));
    }
    atp_buf_release(b);
}

/* ---- path: "/<did>[/data|/log|/log/last|/log/audit]" ---- */

/* Percent-decodes the DID segment (clients send did%3Aplc%3A...) into out[PLC_DID_MAX]. */
static bool decode_did(atp_slice seg, char out[PLC_DID_MAX])
{
    size_t k = 0;
    for (size_t i = 0; i < seg.len; i++) {
        uint8_t c = seg.ptr[i];
        if (c == '%' && i + 2 < seg.len && seg.ptr[i + 1] == '3' &&
            (seg.ptr[i + 2] == 'A' || seg.ptr[i + 2] == 'a')) {
            c = ':';
            i += 2;
        }
        /* Controls, spaces and NULs never belong in a DID (a NUL would cut the C string). */
        if (k + 1 >= PLC_DID_MAX || c <= 0x20 || c == 0x7f) {
            return false;
        }
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return k > 0;
}

bool plc_path_parse(atp_slice path, char did[PLC_DID_MAX], plc_path_kind *kind)
{
    static const struct {
        const char *suffix;
        plc_path_kind kind;
    } tails[] = {{"/log/audit", PLC_P_AUDIT}, {"/log/last", PLC_P_LAST}, {"/log", PLC_P_LOG},
                 {"/data", PLC_P_DATA}};
    size_t end = 1;
    if (path.len < 2 || path.ptr[0] != '/') {
        return false;
    }
    while (end < path.len && path.ptr[end] != '/') {
        end++;
    }
    *kind = PLC_P_DOC;
    if (end < path.len) {
        atp_slice rest = atp_slice_sub(path, end, path.len - end);
        size_t i = 0;
        while (i < sizeof tails / sizeof tails[0] && !atp_slice_eq_str(rest, tails[i].suffix)) {
            i++;
        }
        if (i == sizeof tails / sizeof tails[0]) {
            return false;
        }
        *kind = tails[i].kind;
    }
    return decode_did(atp_slice_sub(path, 1, end - 1), did);
}

/* ---- POST /:did ---- */

static void post_op(atp_req *r, plc_ctx *ctx, const char *did)
{
    atp_arena *a = atp_req_arena(r);
    plc_incoming in;
    atp_err err;
    int rc;
    atp_err_clear(&err);
    if (ctx->read_only) {
        respond_msg(r, 405, "This directory is a read-only mirror");
        return;
    }
    rc = plc_incoming_prepare(a, atp_slice_str(did), atp_req_body(r), &in, &err);
    if (rc == 0) {
        rc = plc_store_apply(ctx->store, in.did, in.cid, NULL, plc_incoming_validate, &in, NULL,
                             &err);
    }
    if (rc == 0 || rc == ATP_ECONFLICT) {
        atomic_fetch_add(rc == 0 ? &ctx->metrics.ops_accepted : &ctx->metrics.ops_duplicate, 1);
        atp_req_respond(r, 200, NULL, atp_slice_make("", 0));
        return;
    }
    if (rc == ATP_EIO) {
        atp_logf(ATP_LOG_ERROR, "routes", "store: %s", err.msg);
        respond_msg(r, 500, "Internal server error");
        return;
    }
    atomic_fetch_add(&ctx->metrics.ops_rejected, 1);
    ATP_LOGD("routes", "op refused for %s: %s", did, err.msg);
    respond_msg(r, 400, err.msg[0] ? err.msg : "Invalid operation");
}

/* ---- GET /:did... ---- */

static void write_ops_array(atp_buf *b, const plc_row *hist, size_t n)
{
    bool first = true;
    atp_buf_append_byte(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (hist[i].nullified) {
            continue;
        }
        if (!first) {
            atp_buf_append_byte(b, ',');
        }
        atp_buf_append_slice(b, hist[i].json);
        first = false;
    }
    atp_buf_append_byte(b, ']');
}

static void write_audit(atp_buf *b, const plc_row *hist, size_t n)
{
    atp_buf_append_byte(b, '[');
    for (size_t i = 0; i < n; i++) {
        /* did, cid and createdAt are checked on the way in: no escaping needed. */
        atp_buf_printf(b, "%s{\"did\":\"%s\",\"operation\":", i ? "," : "", hist[i].did);
        atp_buf_append_slice(b, hist[i].json);
        atp_buf_printf(b, ",\"cid\":\"%s\",\"nullified\":%s,\"createdAt\":\"%s\"}", hist[i].cid,
                       hist[i].nullified ? "true" : "false", hist[i].created_at);
    }
    atp_buf_append_byte(b, ']');
}

/* Document or data of the current state; 410 once tombstoned. */
static void get_state(atp_req *r, const char *did, const plc_row *hist, size_t n, bool doc)
{
    atp_arena *a = atp_req_arena(r);
    const plc_row *last = NULL;
    atp_plc_op op;
    atp_buf b;
    char msg[128];
    atp_err err;
    if (plc_history_last(a, hist, n, &last, &op, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "routes", "%s", err.msg);
        respond_msg(r, 500, "Internal server error");
        return;
    }
    if (!last || op.type == ATP_PLC_TOMBSTONE) {
        snprintf(msg, sizeof msg, "DID not available: %s", did);
        respond_msg(r, last ? 410 : 404, msg);
        return;
    }
    atp_buf_init(&b, BODY_MAX);
    if (doc) {
        atp_plc_didoc_encode(&b, atp_slice_str(did), &op, a, 0);
        respond_buf(r, "application/did+ld+json", &b);
    } else {
        atp_plc_data_encode_json(&b, atp_slice_str(did), &op, a);
        respond_buf(r, "application/json", &b);
    }
}

static void get_did(atp_req *r, plc_ctx *ctx, const char *did, plc_path_kind kind)
{
    plc_row *hist = NULL;
    size_t n = 0;
    atp_buf b;
    char msg[128];
    atp_err err;
    if (plc_store_history(ctx->store, did, atp_req_arena(r), &hist, &n, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "routes", "store: %s", err.msg);
        respond_msg(r, 500, "Internal server error");
        return;
    }
    if (n == 0) {
        snprintf(msg, sizeof msg, "DID not registered: %s", did);
        respond_msg(r, 404, msg);
        return;
    }
    if (kind == PLC_P_DOC || kind == PLC_P_DATA) {
        get_state(r, did, hist, n, kind == PLC_P_DOC);
        return;
    }
    atp_buf_init(&b, BODY_MAX);
    if (kind == PLC_P_LOG) {
        write_ops_array(&b, hist, n);
    } else if (kind == PLC_P_AUDIT) {
        write_audit(&b, hist, n);
    } else {
        size_t i = n;
        while (i > 0 && hist[i - 1].nullified) {
            i--;
        }
        /* A history always starts with a genesis that nothing can nullify. */
        atp_buf_append_slice(&b, hist[i > 0 ? i - 1 : 0].json);
    }
    respond_buf(r, "application/json", &b);
}

static void did_route(atp_req *r, void *ud)
{
    plc_ctx *ctx = ud;
    atp_slice method = atp_req_method(r);
    char did[PLC_DID_MAX];
    plc_path_kind kind;
    bool is_get = atp_slice_eq_str(method, "GET") || atp_slice_eq_str(method, "HEAD");
    bool is_post = atp_slice_eq_str(method, "POST");
    if (!plc_path_parse(atp_req_path(r), did, &kind) || (!is_get && !is_post) ||
        (is_post && kind != PLC_P_DOC)) {
        respond_msg(r, is_get || is_post ? 404 : 405, is_get || is_post ? "Not found"
                                                                       : "Method not allowed");
        return;
    }
    if (is_post) {
        post_op(r, ctx, did);
    } else if (!plc_did_is_valid(atp_slice_str(did))) {
        char msg[128];
        snprintf(msg, sizeof msg, "DID not registered: %.80s", did);
        respond_msg(r, 404, msg);
    } else {
        get_did(r, ctx, did, kind);
    }
}

/* ---- GET /export ---- */

static bool all_digits(atp_slice s)
{
    if (s.len == 0 || s.len > 18) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') {
            return false;
        }
    }
    return true;
}

static int64_t digits_value(atp_slice s)
{
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

/* count: default 10 as the reference, 1..1000. after: a seq (digits) or a timestamp. */
static bool export_params(atp_req *r, unsigned *count, char ts[PLC_TS_LEN + 1], int64_t *seq)
{
    atp_slice v;
    int64_t ms = 0;
    *count = 10;
    *seq = -1;
    ts[0] = '\0';
    if (atp_req_query(r, "count", &v)) {
        if (!all_digits(v) || digits_value(v) < 1 || digits_value(v) > PLC_EXPORT_MAX) {
            return false;
        }
        *count = (unsigned)digits_value(v);
    }
    if (!atp_req_query(r, "after", &v) || v.len == 0) {
        return true;
    }
    if (all_digits(v)) {
        *seq = digits_value(v);
        return true;
    }
    if (plc_ts_parse(v, &ms) < 0) {
        return false;
    }
    /* Normalised to our fixed-width form so the text comparison in SQL is a time comparison. */
    plc_ts_format(ms, ts);
    return true;
}

static void export_route(atp_req *r, void *ud)
{
    plc_ctx *ctx = ud;
    unsigned count = 0, n = 0;
    char ts[PLC_TS_LEN + 1];
    int64_t seq = -1;
    atp_buf b;
    atp_err err;
    if (!export_params(r, &count, ts, &seq)) {
        respond_msg(r, 400, "Invalid query: after must be a timestamp or a sequence number, "
                            "count 1..1000");
        return;
    }
    atp_buf_init(&b, BODY_MAX);
    if (plc_store_export(ctx->store, ts[0] ? ts : NULL, seq, count, &b, &n, &err) < 0) {
        atp_buf_release(&b);
        atp_logf(ATP_LOG_ERROR, "routes", "export: %s", err.msg);
        respond_msg(r, 500, "Internal server error");
        return;
    }
    respond_buf(r, "application/jsonl", &b);
}

/* ---- /_health and /metrics ---- */

static void health_route(atp_req *r, void *ud)
{
    (void)ud;
    atp_req_respond(r, 200, "application/json",
                    ATP_SLICE_LIT("{\"version\":\"" PLC_VERSION "\"}"));
}

static void metrics_hook(atp_buf *out, void *ud)
{
    const plc_metrics *m = &((plc_ctx *)ud)->metrics;
    atp_buf_printf(out,
                   "# TYPE atp_plc_ops_total counter\n"
                   "atp_plc_ops_total{result=\"accepted\"} %llu\n"
                   "atp_plc_ops_total{result=\"rejected\"} %llu\n"
                   "atp_plc_ops_total{result=\"duplicate\"} %llu\n",
                   atomic_load(&m->ops_accepted), atomic_load(&m->ops_rejected),
                   atomic_load(&m->ops_duplicate));
    atp_buf_printf(out,
                   "# TYPE atp_plc_mirror_ops_total counter\n"
                   "atp_plc_mirror_ops_total{result=\"stored\"} %llu\n"
                   "atp_plc_mirror_ops_total{result=\"rejected\"} %llu\n"
                   "# TYPE atp_plc_mirror_errors_total counter\n"
                   "atp_plc_mirror_errors_total %llu\n"
                   "# TYPE atp_plc_mirror_pages_total counter\n"
                   "atp_plc_mirror_pages_total %llu\n"
                   "# TYPE atp_plc_mirror_cursor_seconds gauge\n"
                   "atp_plc_mirror_cursor_seconds %.3f\n",
                   atomic_load(&m->mirror_ops), atomic_load(&m->mirror_rejected),
                   atomic_load(&m->mirror_errors), atomic_load(&m->mirror_pages),
                   (double)atomic_load(&m->mirror_cursor_ms) / 1000.0);
}

void plc_routes_register(atp_server *s, plc_ctx *ctx)
{
    atp_server_route(s, "GET", "/_health", health_route, ctx, 0);
    atp_server_set_health(s, health_route, ctx);
    atp_server_route(s, "GET", "/export", export_route, ctx, ATP_ROUTE_BLOCKING);
    atp_server_set_metrics_hook(s, metrics_hook, ctx);
    atp_server_fallback(s, did_route, ctx, ATP_ROUTE_BLOCKING);
}

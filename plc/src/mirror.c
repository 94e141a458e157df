/* plc/src/mirror.c: the mirror thread (see mirror.h). */
#include "mirror.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/cbor.h"
#include "atp/json.h"
#include "atp/log.h"

#include "ops.h"

#define PAGE_COUNT 1000
#define PAGE_MAX ((size_t)64 << 20) /* 1000 ops of at most 64 KiB JSON each */
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 60000u
#define PROGRESS_MS 10000

struct plc_mirror {
    char url[1024];
    unsigned poll_ms;
    plc_ctx *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    char cursor[PLC_TS_LEN + 1];
    uint64_t stored, rejected;
    int64_t last_progress;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(plc_mirror *m)
{
    bool s;
    pthread_mutex_lock(&m->mu);
    s = m->stop;
    pthread_mutex_unlock(&m->mu);
    return s;
}

/* Sleeps up to ms, waking at once on stop; returns false if stopping. */
static bool nap(plc_mirror *m, unsigned ms)
{
    struct timespec until;
    bool s;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &until) == 0) {
    }
    s = m->stop;
    pthread_mutex_unlock(&m->mu);
    return !s;
}

/* ---- fetching a page ---- */

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    atp_buf *b = ud;
    atp_buf_append(b, p, size * n);
    /* Returning short makes curl abort the transfer once the cap is passed. */
    return b->err < 0 ? 0 : size * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return stopping(ud) ? 1 : 0;
}

static void page_url(const plc_mirror *m, bool overlap, char *out, size_t cap)
{
    int64_t ms = 0;
    char ts[PLC_TS_LEN + 1];
    if (m->cursor[0] == '\0' || plc_ts_parse(atp_slice_str(m->cursor), &ms) < 0) {
        snprintf(out, cap, "%s/export?count=%d", m->url, PAGE_COUNT);
        return;
    }
    plc_ts_format(overlap ? ms - 1 : ms, ts);
    snprintf(out, cap, "%s/export?count=%d&after=%s", m->url, PAGE_COUNT, ts);
}

static int fetch(plc_mirror *m, const char *url, atp_buf *out, atp_err *err)
{
    CURL *c = curl_easy_init();
    long status = 0;
    CURLcode cc;
    if (!c) {
        return atp_err_set(err, ATP_EIO, 0, "curl_easy_init failed");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, m);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "atproto-c-plc-mirror/" PLC_VERSION);
    cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        return atp_err_set(err, ATP_EIO, 0, "fetch: %s", curl_easy_strerror(cc));
    }
    if (status != 200) {
        return atp_err_set(err, ATP_EIO, 0, "fetch: HTTP %ld", status);
    }
    return 0;
}

/* ---- storing a page ---- */

static bool get_str(const atp_cbor *m, const char *key, atp_slice *out)
{
    const atp_cbor *v = atp_cbor_map_get_str(m, key);
    if (!v || v->type != ATP_CBOR_STRING) {
        return false;
    }
    *out = v->u.str;
    return true;
}

/* One export line: re-validated and stored. Returns ATP_EIO only for our own storage failing
 * (the page is then retried); an invalid upstream op is counted, logged and skipped. */
static int mirror_line(plc_mirror *m, atp_arena *a, atp_slice line, atp_err *err)
{
    atp_cbor *v = NULL;
    atp_slice did, cid, created;
    const atp_cbor *op = NULL;
    plc_incoming in;
    int64_t ms = 0;
    char ts[PLC_TS_LEN + 1];
    int rc = atp_json_decode(a, line, 0, NULL, &v, err);
    if (rc == 0 && (v->type != ATP_CBOR_MAP || !get_str(v, "did", &did) ||
                    !get_str(v, "cid", &cid) || !get_str(v, "createdAt", &created) ||
                    !(op = atp_cbor_map_get_str(v, "operation")) ||
                    plc_ts_parse(created, &ms) < 0)) {
        rc = atp_err_set(err, ATP_EINVAL, 0, "malformed export line");
    }
    if (rc == 0) {
        rc = plc_incoming_prepare_tree(a, did, op, &in, err);
    }
    if (rc == 0 && !atp_slice_eq_str(cid, in.cid)) {
        rc = atp_err_set(err, ATP_EHASH, 0, "upstream cid does not match the operation");
    }
    if (rc == 0) {
        plc_ts_format(ms, ts);
        rc = plc_store_apply(m->ctx->store, in.did, in.cid, ts, plc_incoming_validate, &in, NULL,
                             err);
        /* The cursor moves past an op once it is decided, stored or not. */
        memcpy(m->cursor, ts, sizeof ts);
        atomic_store(&m->ctx->metrics.mirror_cursor_ms, ms);
    }
    return rc;
}

static void count_line(plc_mirror *m, int rc, atp_slice line, const atp_err *err)
{
    if (rc == 0) {
        m->stored++;
        atomic_fetch_add(&m->ctx->metrics.mirror_ops, 1);
    } else if (rc != ATP_ECONFLICT) {
        char head[96];
        size_t n = line.len < sizeof head - 1 ? line.len : sizeof head - 1;
        memcpy(head, line.ptr, n);
        head[n] = '\0';
        m->rejected++;
        atomic_fetch_add(&m->ctx->metrics.mirror_rejected, 1);
        atp_logf(ATP_LOG_WARN, "mirror", "upstream op refused: %s (%s...)", err->msg, head);
    }
}

/* Stores every line of a page; the number of lines in *lines. ATP_EIO stops at that line. */
static int mirror_page(plc_mirror *m, atp_slice body, unsigned *lines, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    size_t pos = 0;
    int rc = 0;
    *lines = 0;
    while (pos < body.len && rc != ATP_EIO && !stopping(m)) {
        const uint8_t *nl = memchr(body.ptr + pos, '\n', body.len - pos);
        size_t end = nl ? (size_t)(nl - body.ptr) : body.len;
        atp_slice line = atp_slice_sub(body, pos, end - pos);
        pos = end + 1;
        if (line.len == 0) {
            continue;
        }
        atp_arena_reset(a);
        rc = mirror_line(m, a, line, err);
        count_line(m, rc, line, err);
        (*lines)++;
    }
    atp_arena_destroy(a);
    return rc == ATP_EIO ? rc : 0;
}

static void progress(plc_mirror *m, bool force)
{
    int64_t now = mono_ms();
    char stored[24], rejected[24];
    const char *kv[6];
    if (!force && now - m->last_progress < PROGRESS_MS) {
        return;
    }
    m->last_progress = now;
    snprintf(stored, sizeof stored, "%llu", (unsigned long long)m->stored);
    snprintf(rejected, sizeof rejected, "%llu", (unsigned long long)m->rejected);
    kv[0] = "cursor", kv[1] = m->cursor, kv[2] = "stored", kv[3] = stored;
    kv[4] = "rejected", kv[5] = rejected;
    atp_log_kv(ATP_LOG_INFO, "mirror", "mirror progress", kv, 3);
}

/* ---- the thread ---- */

/* One request and its page. Returns the lines seen, or -1 on an error (already logged). */
static long mirror_step(plc_mirror *m, bool overlap, atp_buf *body)
{
    char url[1200];
    unsigned lines = 0;
    atp_err err;
    int rc;
    atp_err_clear(&err);
    atp_buf_reset(body);
    page_url(m, overlap, url, sizeof url);
    rc = fetch(m, url, body, &err);
    if (rc == 0) {
        rc = mirror_page(m, atp_buf_slice(body), &lines, &err);
    }
    if (rc == 0 && m->cursor[0] && plc_store_cursor_set(m->ctx->store, m->cursor, &err) < 0) {
        rc = ATP_EIO;
    }
    if (rc < 0) {
        atomic_fetch_add(&m->ctx->metrics.mirror_errors, 1);
        if (!stopping(m)) {
            atp_logf(ATP_LOG_WARN, "mirror", "mirror error: %s", err.msg);
        }
        return -1;
    }
    atomic_fetch_add(&m->ctx->metrics.mirror_pages, 1);
    return (long)lines;
}

static void *mirror_main(void *arg)
{
    plc_mirror *m = arg;
    unsigned backoff = BACKOFF_MIN_MS;
    char before[PLC_TS_LEN + 1];
    bool overlap = true;
    atp_buf body;
    atp_buf_init(&body, PAGE_MAX);
    m->last_progress = mono_ms();
    while (!stopping(m)) {
        long lines;
        memcpy(before, m->cursor, sizeof before);
        lines = mirror_step(m, overlap, &body);
        if (lines < 0) {
            nap(m, backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = BACKOFF_MIN_MS;
        /* A full page that did not move the cursor is all one millisecond: step past it. */
        overlap = !(lines >= PAGE_COUNT && strcmp(before, m->cursor) == 0);
        progress(m, false);
        if (lines < PAGE_COUNT) {
            nap(m, m->poll_ms);
        }
    }
    progress(m, true);
    atp_buf_release(&body);
    return NULL;
}

int plc_mirror_start(const char *url, unsigned poll_ms, plc_ctx *ctx, plc_mirror **out,
                     atp_err *err)
{
    plc_mirror *m = atp_xcalloc(1, sizeof *m);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') {
        n--;
    }
    if (n >= sizeof m->url) {
        free(m);
        return atp_err_set(err, ATP_EINVAL, 0, "mirror URL too long");
    }
    memcpy(m->url, url, n);
    m->poll_ms = poll_ms;
    m->ctx = ctx;
    if (plc_store_cursor_get(ctx->store, m->cursor, err) < 0) {
        free(m);
        return ATP_EIO;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (pthread_create(&m->thread, NULL, mirror_main, m) != 0) {
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return atp_err_set(err, ATP_EIO, 0, "cannot start the mirror thread");
    }
    atp_logf(ATP_LOG_INFO, "mirror", "mirroring %s from \"%s\"", m->url, m->cursor);
    *out = m;
    return 0;
}

void plc_mirror_stop(plc_mirror *m)
{
    if (!m) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

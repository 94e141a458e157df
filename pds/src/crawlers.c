/* pds/src/crawlers.c: tells the relays of PDS_CRAWLERS that this PDS exists (requestCrawl).
 *
 * One thread: a round at start; then a write (poke) starts a round once the interval
 * (cfg->crawl_interval, 20 min: the reference's rate) since the last round has passed, so a busy
 * PDS sends at most one round per interval; an idle one still sends one every 3 intervals.
 * Failures are logged and simply wait for the next round. The crawler URLs are operator
 * configuration, hence trusted: no address guard (unlike user-controlled hosts). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/log.h"

#include "crawlers.h"

#define MAX_RELAYS 16
#define RELAY_URL_MAX 512
#define CRAWL_TIMEOUT_MS 10000L
#define IDLE_ROUNDS 3 /* without writes, a round every 3 intervals */

struct pds_crawlers {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool poked;
    atomic_bool stop; /* read by curl's progress callback without the mutex */
    int64_t interval_s;
    char body[300]; /* {"hostname":"..."} */
    char urls[MAX_RELAYS][RELAY_URL_MAX];
    size_t n;
};

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* Splits the comma list; each entry trimmed of blanks and trailing '/'. */
static int parse_urls(pds_crawlers *c, const char *list, atp_err *err)
{
    while (*list) {
        const char *e = strchr(list, ',');
        size_t n = e ? (size_t)(e - list) : strlen(list);
        const char *p = list;
        list += n + (e ? 1 : 0);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++, n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '/')) {
            n--;
        }
        if (n == 0) {
            continue;
        }
        if (c->n == MAX_RELAYS || n + 40 >= RELAY_URL_MAX) {
            return atp_err_set(err, ATP_EINVAL, 0, "PDS_CRAWLERS: too many or too long");
        }
        if (strncmp(p, "http://", 7) != 0 && strncmp(p, "https://", 8) != 0) {
            return atp_err_set(err, ATP_EINVAL, 0, "PDS_CRAWLERS: not an http(s) URL");
        }
        snprintf(c->urls[c->n++], RELAY_URL_MAX, "%.*s/xrpc/com.atproto.sync.requestCrawl",
                 (int)n, p);
    }
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

/* Lets a stop interrupt a slow relay instead of waiting out the timeout. */
static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    pds_crawlers *c = ud;
    (void)a, (void)b, (void)c2, (void)d;
    return atomic_load(&c->stop) ? 1 : 0;
}

static void notify_one(pds_crawlers *c, const char *url)
{
    long status = 0;
    CURLcode rc;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h || !hdr) {
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, CRAWL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "atproto-c pds");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        atp_logf(ATP_LOG_WARN, "crawlers", "requestCrawl %s failed: %s (status %ld)", url,
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "refused", status);
    } else {
        atp_logf(ATP_LOG_INFO, "crawlers", "requestCrawl %s ok", url);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

static void notify_all(pds_crawlers *c)
{
    for (size_t i = 0; i < c->n && !atomic_load(&c->stop); i++) {
        notify_one(c, c->urls[i]);
    }
}

/* Sleeps until the next round is due: one interval after the last round if a write poked us
 * meanwhile, else IDLE_ROUNDS intervals (a keep-alive for relays that forgot us). False on
 * stop. */
static bool wait_round(pds_crawlers *c, int64_t last)
{
    bool go = false;
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&c->stop)) {
        int64_t due = last + c->interval_s * (c->poked ? 1 : IDLE_ROUNDS);
        struct timespec until;
        if (mono_s() >= due) {
            go = true;
            break;
        }
        until.tv_sec = (time_t)due;
        until.tv_nsec = 0;
        pthread_cond_timedwait(&c->cv, &c->mu, &until);
    }
    c->poked = false;
    pthread_mutex_unlock(&c->mu);
    return go;
}

static void *crawl_main(void *arg)
{
    pds_crawlers *c = arg;
    int64_t last = mono_s();
    notify_all(c);
    while (wait_round(c, last)) {
        last = mono_s();
        notify_all(c);
    }
    return NULL;
}

static int init_sync(pds_crawlers *c)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return ATP_EINTERNAL;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

int pds_crawlers_start(pds_ctx *ctx, pds_crawlers **out, atp_err *err)
{
    pds_crawlers *c;
    int rc;
    *out = NULL;
    c = atp_xcalloc(1, sizeof *c);
    rc = parse_urls(c, ctx->cfg->crawlers, err);
    if (rc < 0 || c->n == 0) {
        free(c);
        return rc;
    }
    c->interval_s = ctx->cfg->crawl_interval > 0 ? ctx->cfg->crawl_interval : 1200;
    snprintf(c->body, sizeof c->body, "{\"hostname\":\"%s\"}", ctx->cfg->hostname);
    atomic_init(&c->stop, false);
    if (init_sync(c) < 0 || pthread_create(&c->th, NULL, crawl_main, c) != 0) {
        free(c);
        return atp_err_set(err, ATP_EINTERNAL, 0, "crawlers: cannot start thread");
    }
    *out = c;
    return 0;
}

void pds_crawlers_poke(pds_crawlers *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->poked = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void pds_crawlers_stop(pds_crawlers *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stop, true);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

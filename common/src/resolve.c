/* resolve.c: the resolver object: DID and handle resolution over the fetch/TXT seams, the
 * bidirectional handle check, and a bounded, thread-safe TTL cache (LRU eviction). */
#include "atp/resolve.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/syntax.h"

#define HANDLE_BODY_MAX 4096
#define KEY_MAX         (ATP_SYNTAX_DID_MAX + 8)

typedef struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list, most recent first */
    uint64_t hash;
    char *key;
    size_t key_len;
    int code; /* 0: value holds the result; else the cached failure */
    char msg[ATP_ERR_MSG_MAX];
    uint8_t *val;
    size_t val_len;
    int64_t expires_us;
} entry;

struct atp_resolver {
    atp_resolver_config cfg;
    char *plc_url;
    pthread_mutex_t mu;
    entry **buckets;
    size_t n_buckets, n_entries;
    entry *head, *tail;
    atp_resolver_stats stats;
};

static int64_t real_clock(void *ud)
{
    struct timespec ts;
    (void)ud;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void atp_resolver_config_init(atp_resolver_config *c)
{
    memset(c, 0, sizeof(*c));
    c->plc_url = "https://plc.directory";
    c->timeout_ms = 3000;
    c->max_doc = 64 * 1024;
    c->ttl_s = 3600;
    c->neg_ttl_s = 60;
    c->cache_max = 10000;
    c->fetch = atp_fetch_default;
    c->txt = atp_txt_default;
    c->clock = real_clock;
}

int atp_resolver_create(const atp_resolver_config *c, atp_resolver **out, atp_err *err)
{
    atp_slice url = atp_slice_str(c->plc_url);
    if (!atp_slice_has_prefix(url, ATP_SLICE_LIT("http://")) &&
        !atp_slice_has_prefix(url, ATP_SLICE_LIT("https://"))) {
        return atp_err_set(err, ATP_EINVAL, 0, "resolver: plc_url must be http(s)://");
    }
    atp_resolver *r = atp_xcalloc(1, sizeof(*r));
    r->cfg = *c;
    /* Without a trailing '/', so that "{url}/{did}" has exactly one. */
    while (url.len > 0 && url.ptr[url.len - 1] == '/') {
        url.len--;
    }
    r->plc_url = atp_xstrndup((const char *)url.ptr, url.len);
    r->cfg.plc_url = r->plc_url;
    r->cfg.fetch = c->fetch ? c->fetch : atp_fetch_default;
    r->cfg.txt = c->txt ? c->txt : atp_txt_default;
    r->cfg.clock = c->clock ? c->clock : real_clock;
    r->n_buckets = 64;
    while (r->n_buckets < c->cache_max && r->n_buckets < ((size_t)1 << 24)) {
        r->n_buckets <<= 1;
    }
    r->buckets = atp_xcalloc(r->n_buckets, sizeof(entry *));
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

static void entry_free(entry *e)
{
    free(e->key);
    free(e->val);
    free(e);
}

void atp_resolver_destroy(atp_resolver *r)
{
    if (!r) {
        return;
    }
    for (entry *e = r->head; e;) {
        entry *next = e->next;
        entry_free(e);
        e = next;
    }
    pthread_mutex_destroy(&r->mu);
    free(r->buckets);
    free(r->plc_url);
    free(r);
}

/* ---- cache (callers hold r->mu) ---- */

static uint64_t hash_key(atp_slice k)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < k.len; i++) {
        h = (h ^ k.ptr[i]) * 1099511628211ULL;
    }
    return h;
}

static entry **slot_of(atp_resolver *r, atp_slice k, uint64_t h)
{
    entry **p = &r->buckets[h & (r->n_buckets - 1)];
    while (*p && !((*p)->hash == h && atp_slice_eq(atp_slice_make((*p)->key, (*p)->key_len), k))) {
        p = &(*p)->hnext;
    }
    return p;
}

static void lru_unlink(atp_resolver *r, entry *e)
{
    *(e->prev ? &e->prev->next : &r->head) = e->next;
    *(e->next ? &e->next->prev : &r->tail) = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(atp_resolver *r, entry *e)
{
    e->next = r->head;
    e->prev = NULL;
    *(r->head ? &r->head->prev : &r->tail) = e;
    r->head = e;
}

static void cache_remove(atp_resolver *r, entry *e)
{
    entry **p = slot_of(r, atp_slice_make(e->key, e->key_len), e->hash);
    *p = e->hnext;
    lru_unlink(r, e);
    entry_free(e);
    r->n_entries--;
}

/* Looks `k` up; on a live hit copies the value to `out` (or the failure to err) and returns
 * true with *code set. Expired entries are dropped. */
static bool cache_get(atp_resolver *r, atp_slice k, atp_buf *out, int *code, atp_err *err)
{
    bool hit = false;
    pthread_mutex_lock(&r->mu);
    uint64_t h = hash_key(k);
    entry *e = *slot_of(r, k, h);
    if (e && e->expires_us <= r->cfg.clock(r->cfg.clock_ud)) {
        cache_remove(r, e);
        e = NULL;
    }
    if (e) {
        hit = true;
        *code = e->code;
        if (e->code == 0) {
            atp_buf_append(out, e->val, e->val_len);
        } else {
            atp_err_set(err, e->code, 0, "%s", e->msg);
        }
        lru_unlink(r, e);
        lru_push(r, e);
    }
    r->stats.hits += hit;
    r->stats.misses += !hit;
    pthread_mutex_unlock(&r->mu);
    return hit;
}

static void cache_put(atp_resolver *r, atp_slice k, int code, const atp_err *err, atp_slice val)
{
    if (r->cfg.cache_max == 0 || (code != 0 && r->cfg.neg_ttl_s == 0)) {
        return;
    }
    entry *e = atp_xcalloc(1, sizeof(*e));
    e->key = atp_xstrndup((const char *)k.ptr, k.len);
    e->key_len = k.len;
    e->hash = hash_key(k);
    e->code = code;
    snprintf(e->msg, sizeof(e->msg), "%s", code && err ? err->msg : "");
    e->val = code ? NULL : (uint8_t *)atp_xstrndup((const char *)val.ptr, val.len);
    e->val_len = code ? 0 : val.len;
    pthread_mutex_lock(&r->mu);
    int64_t ttl = (int64_t)(code ? r->cfg.neg_ttl_s : r->cfg.ttl_s) * 1000000;
    e->expires_us = r->cfg.clock(r->cfg.clock_ud) + ttl;
    entry **p = slot_of(r, k, e->hash);
    if (*p) {
        cache_remove(r, *p);
        p = slot_of(r, k, e->hash);
    }
    *p = e;
    lru_push(r, e);
    r->n_entries++;
    while (r->n_entries > r->cfg.cache_max && r->tail) {
        cache_remove(r, r->tail);
    }
    pthread_mutex_unlock(&r->mu);
}

void atp_resolver_purge(atp_resolver *r, atp_slice did_or_handle)
{
    char key[KEY_MAX + 4];
    static const char *const prefixes[] = {"d:", "h:"};
    if (did_or_handle.len > KEY_MAX) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        int n = snprintf(key, sizeof(key), "%s%.*s", prefixes[i], (int)did_or_handle.len,
                         (const char *)did_or_handle.ptr);
        atp_slice k = atp_slice_make(key, (size_t)n);
        pthread_mutex_lock(&r->mu);
        entry *e = *slot_of(r, k, hash_key(k));
        if (e) {
            cache_remove(r, e);
        }
        pthread_mutex_unlock(&r->mu);
    }
}

void atp_resolver_get_stats(atp_resolver *r, atp_resolver_stats *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->stats;
    out->entries = r->n_entries;
    pthread_mutex_unlock(&r->mu);
}

/* ---- DIDs ---- */

/* "localhost" or "localhost:PORT" (same for 127.0.0.1). */
static bool is_local_host(const char *host, const char *name)
{
    size_t n = strlen(name);
    return strncmp(host, name, n) == 0 && (host[n] == '\0' || host[n] == ':');
}

/* did:web:<host>[%3A<port>] -> the did.json URL. Paths (further ':') are refused. */
static int web_url(const atp_resolver *r, atp_slice did, char *url, size_t cap, atp_err *err)
{
    atp_slice id = atp_slice_sub(did, 8, did.len);
    char host[300];
    size_t n = 0;
    for (size_t i = 0; i < id.len; i++) {
        uint8_t c = id.ptr[i];
        if (c == '%' && i + 2 < id.len && id.ptr[i + 1] == '3' && (id.ptr[i + 2] | 0x20) == 'a') {
            c = ':';
            i += 2;
        } else if (!(isalnum(c) || c == '.' || c == '-')) {
            return atp_err_set(err, ATP_EINVAL, 0, "did:web: only host[%%3Aport] is supported");
        }
        if (n + 1 >= sizeof(host)) {
            return atp_err_set(err, ATP_EINVAL, 0, "did:web: host too long");
        }
        host[n++] = (char)tolower(c);
    }
    host[n] = '\0';
    if (n == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "did:web: empty host");
    }
    bool plain =
        r->cfg.local && (is_local_host(host, "localhost") || is_local_host(host, "127.0.0.1"));
    snprintf(url, cap, "%s://%s/.well-known/did.json", plain ? "http" : "https", host);
    return 0;
}

static int did_url(const atp_resolver *r, atp_slice did, char *url, size_t cap, unsigned *flags,
                   atp_err *err)
{
    if (atp_syntax_check_did(did, err) != 0) {
        return ATP_EINVAL;
    }
    *flags = r->cfg.local ? ATP_FETCH_LOCAL : 0;
    if (atp_slice_has_prefix(did, ATP_SLICE_LIT("did:plc:"))) {
        *flags |= ATP_FETCH_TRUSTED;
        snprintf(url, cap, "%s/%.*s", r->plc_url, (int)did.len, (const char *)did.ptr);
        return 0;
    }
    if (atp_slice_has_prefix(did, ATP_SLICE_LIT("did:web:"))) {
        return web_url(r, did, url, cap, err);
    }
    return atp_err_set(err, ATP_EINVAL, 0, "unsupported DID method (did:plc and did:web only)");
}

/* One GET through the seam; maps statuses: 200 ok, 404/410 not found, others EIO. */
static int get(atp_resolver *r, const char *url, unsigned flags, size_t max, const char *accept,
               atp_buf *body, atp_err *err)
{
    atp_fetch_req req = {url, flags, r->cfg.timeout_ms, max, accept};
    int status = 0;
    pthread_mutex_lock(&r->mu);
    r->stats.fetches++;
    pthread_mutex_unlock(&r->mu);
    int rc = r->cfg.fetch(r->cfg.fetch_ud, &req, &status, body, err);
    if (rc < 0) {
        return rc;
    }
    if (status == 404 || status == 410) {
        return atp_err_set(err, ATP_ENOTFOUND, 0, "%s: HTTP %d", url, status);
    }
    if (status != 200) {
        return atp_err_set(err, ATP_EIO, 0, "%s: HTTP %d", url, status);
    }
    return 0;
}

static int fetch_did(atp_resolver *r, atp_slice did, atp_buf *out, atp_err *err)
{
    char url[ATP_SYNTAX_DID_MAX + 512];
    unsigned flags;
    int rc = did_url(r, did, url, sizeof(url), &flags, err);
    if (rc < 0) {
        return rc;
    }
    rc = get(r, url, flags, r->cfg.max_doc, "application/did+ld+json, application/json", out, err);
    if (rc == 0) { /* only well-formed documents of this DID are cached as positive */
        atp_arena *a = atp_arena_create(0);
        atp_didoc_limits lim = {r->cfg.max_doc, atp_didoc_limits_default.max_items};
        atp_didoc d;
        rc = atp_didoc_parse(a, atp_buf_slice(out), did, &lim, &d, err);
        atp_arena_destroy(a);
    }
    return rc;
}

int atp_resolve_did_json(atp_resolver *r, atp_slice did, atp_buf *out, atp_err *err)
{
    char key[KEY_MAX + 4];
    int code;
    if (did.len > ATP_SYNTAX_DID_MAX) {
        return atp_err_set(err, ATP_EINVAL, 0, "DID too long");
    }
    int n = snprintf(key, sizeof(key), "d:%.*s", (int)did.len, (const char *)did.ptr);
    atp_slice k = atp_slice_make(key, (size_t)n);
    if (cache_get(r, k, out, &code, err)) {
        return code;
    }
    atp_buf tmp;
    atp_buf_init(&tmp, r->cfg.max_doc);
    int rc = fetch_did(r, did, &tmp, err);
    cache_put(r, k, rc, err, atp_buf_slice(&tmp));
    if (rc == 0) {
        atp_buf_append_slice(out, atp_buf_slice(&tmp));
    }
    atp_buf_release(&tmp);
    return rc;
}

int atp_resolve_did(atp_resolver *r, atp_slice did, atp_arena *a, atp_didoc *out, atp_err *err)
{
    atp_buf b;
    atp_buf_init(&b, r->cfg.max_doc);
    int rc = atp_resolve_did_json(r, did, &b, err);
    if (rc == 0) {
        atp_didoc_limits lim = {r->cfg.max_doc, atp_didoc_limits_default.max_items};
        uint8_t *copy = atp_arena_dup(a, b.ptr, b.len);
        rc = atp_didoc_parse(a, atp_slice_make(copy, b.len), did, &lim, out, err);
    }
    atp_buf_release(&b);
    return rc;
}

/* ---- handles ---- */

/* Exactly one "did=" TXT value (the reference fails on two or more, even if equal). */
static int handle_dns(atp_resolver *r, const char *handle, atp_buf *out)
{
    char name[ATP_SYNTAX_HANDLE_MAX + 16];
    atp_buf recs;
    snprintf(name, sizeof(name), "_atproto.%s", handle);
    atp_buf_init(&recs, 64 * 1024);
    int rc = r->cfg.txt(r->cfg.txt_ud, name, r->cfg.timeout_ms, &recs, NULL);
    atp_slice found = {NULL, 0};
    int count = 0;
    for (size_t i = 0; rc == 0 && i < recs.len;) {
        const uint8_t *z = memchr(recs.ptr + i, 0, recs.len - i);
        size_t len = z ? (size_t)(z - (recs.ptr + i)) : recs.len - i;
        atp_slice rec = atp_slice_make(recs.ptr + i, len);
        if (atp_slice_has_prefix(rec, ATP_SLICE_LIT("did="))) {
            found = atp_slice_sub(rec, 4, rec.len - 4);
            count++;
        }
        i += len + 1;
    }
    rc = (rc == 0 && count == 1 && atp_syntax_is_did(found)) ? 0 : ATP_ENOTFOUND;
    if (rc == 0) {
        atp_buf_append_slice(out, found);
    }
    atp_buf_release(&recs);
    return rc;
}

static atp_slice first_line_trimmed(atp_slice s)
{
    size_t b = 0, e;
    if (s.len == 0) {
        return s; /* an empty body may have no storage at all */
    }
    while (b < s.len && isspace(s.ptr[b])) {
        b++;
    }
    e = b;
    while (e < s.len && s.ptr[e] != '\n' && s.ptr[e] != '\r') {
        e++;
    }
    while (e > b && isspace(s.ptr[e - 1])) {
        e--;
    }
    return atp_slice_make(s.ptr + b, e - b);
}

static int handle_http(atp_resolver *r, const char *handle, atp_buf *out)
{
    char url[ATP_SYNTAX_HANDLE_MAX + 64];
    atp_buf body;
    snprintf(url, sizeof(url), "%s://%s/.well-known/atproto-did", r->cfg.local ? "http" : "https",
             handle);
    atp_buf_init(&body, HANDLE_BODY_MAX);
    unsigned flags = ATP_FETCH_FOLLOW | (r->cfg.local ? ATP_FETCH_LOCAL : 0);
    int rc = get(r, url, flags, HANDLE_BODY_MAX, "text/plain", &body, NULL);
    atp_slice did = first_line_trimmed(atp_buf_slice(&body));
    rc = (rc == 0 && atp_slice_has_prefix(did, ATP_SLICE_LIT("did:")) && atp_syntax_is_did(did))
             ? 0
             : ATP_ENOTFOUND;
    if (rc == 0) {
        atp_buf_append_slice(out, did);
    }
    atp_buf_release(&body);
    return rc;
}

int atp_resolve_handle(atp_resolver *r, atp_slice handle, atp_buf *out, atp_err *err)
{
    char h[ATP_SYNTAX_HANDLE_MAX + 1], key[ATP_SYNTAX_HANDLE_MAX + 4];
    int code;
    int rc = atp_syntax_normalize_handle(handle, h, sizeof(h), err);
    if (rc < 0) {
        return ATP_EINVAL;
    }
    if (!atp_syntax_handle_tld_allowed(atp_slice_str(h))) {
        return atp_err_set(err, ATP_EINVAL, 0, "handle has a disallowed TLD");
    }
    int n = snprintf(key, sizeof(key), "h:%s", h);
    atp_slice k = atp_slice_make(key, (size_t)n);
    if (cache_get(r, k, out, &code, err)) {
        return code;
    }
    atp_buf did;
    atp_buf_init(&did, ATP_SYNTAX_DID_MAX);
    rc = handle_dns(r, h, &did);
    if (rc < 0) {
        atp_buf_reset(&did);
        rc = handle_http(r, h, &did);
    }
    if (rc < 0) {
        rc = atp_err_set(err, ATP_ENOTFOUND, 0, "handle %s does not resolve to a DID", h);
    }
    cache_put(r, k, rc, err, atp_buf_slice(&did));
    if (rc == 0) {
        atp_buf_append_slice(out, atp_buf_slice(&did));
    }
    atp_buf_release(&did);
    return rc;
}

/* ---- bidirectional ---- */

static bool handle_eq(atp_slice a, atp_slice b)
{
    if (a.len != b.len) {
        return false;
    }
    for (size_t i = 0; i < a.len; i++) {
        if (tolower(a.ptr[i]) != tolower(b.ptr[i])) {
            return false;
        }
    }
    return true;
}

/* Does `handle` resolve to `did`? */
static bool handle_points_to(atp_resolver *r, atp_slice handle, atp_slice did)
{
    atp_buf b;
    atp_buf_init(&b, ATP_SYNTAX_DID_MAX);
    bool ok = atp_resolve_handle(r, handle, &b, NULL) == 0 && atp_slice_eq(atp_buf_slice(&b), did);
    atp_buf_release(&b);
    return ok;
}

static void set_handle(atp_arena *a, atp_identity *id, atp_slice handle, bool valid)
{
    if (!valid) {
        id->handle = ATP_SLICE_LIT("handle.invalid");
        id->handle_valid = false;
        return;
    }
    char *h = atp_arena_dup(a, handle.ptr, handle.len);
    for (size_t i = 0; i < handle.len; i++) {
        h[i] = (char)tolower((unsigned char)h[i]);
    }
    id->handle = atp_slice_make(h, handle.len);
    id->handle_valid = true;
}

int atp_resolve_identity(atp_resolver *r, atp_slice handle_or_did, atp_arena *a, atp_identity *out,
                         atp_err *err)
{
    atp_identity id;
    atp_slice did = handle_or_did;
    atp_buf b;
    atp_buf_init(&b, ATP_SYNTAX_DID_MAX);
    bool is_did = atp_slice_has_prefix(handle_or_did, ATP_SLICE_LIT("did:"));
    int rc = is_did ? 0 : atp_resolve_handle(r, handle_or_did, &b, err);
    if (rc == 0 && !is_did) {
        did = atp_slice_make(atp_arena_dup(a, b.ptr, b.len), b.len);
    }
    atp_buf_release(&b);
    memset(&id, 0, sizeof(id));
    rc = rc ? rc : atp_resolve_did(r, did, a, &id.doc, err);
    if (rc < 0) {
        return rc;
    }
    id.did = id.doc.id;
    bool valid = id.doc.handle.len > 0 && (is_did ? handle_points_to(r, id.doc.handle, id.did)
                                                  : handle_eq(id.doc.handle, handle_or_did));
    set_handle(a, &id, id.doc.handle, valid);
    *out = id;
    return 0;
}

/* bench_http.h: what bench_pds and bench_firehose share (header-only, bench tools only): a
 * blocking HTTP/1.1 keep-alive client on plain sockets, a few XRPC calls (createAccount,
 * createRecord), timing, percentiles, and the CPU/memory readers for /proc/<pid>.
 *
 * Not a general HTTP client: it speaks to one loopback server, expects Content-Length or
 * chunked bodies, and bounds every response (BH_MAX_BODY) so a misbehaving server can't make
 * the load client grow without limit.
 */
#ifndef BENCH_HTTP_H
#define BENCH_HTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The largest response body kept in memory (getRepo bodies are counted, not kept). */
#define BH_MAX_BODY ((size_t)16 << 20)
#define BH_MAX_HEAD 16384

/* ---- time ---- */

static inline int64_t bh_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* This process's user + system CPU seconds (all threads). */
static inline double bh_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- /proc/<pid> ---- */

/* A "Name:   123 kB" field of /proc/<pid>/status in MB, or -1 (no pid, gone, no field). */
static inline double bh_proc_mb(long pid, const char *field)
{
    char path[64], line[256];
    double mb = -1;
    size_t flen = strlen(field);
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            mb = strtod(line + flen + 1, NULL) / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

/* utime + stime of <pid> (all its threads) in seconds, or -1. */
static inline double bh_proc_cpu(long pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    if (pid <= 0) {
        return -1;
    }
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces: fields are counted from its closing parenthesis. */
    const char *p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- percentiles ---- */

static inline int bh_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* q-th quantile (0..1) of sorted v[0..n) in ms (nearest rank), 0 when empty. */
static inline double bh_pct_ms(const int64_t *v, size_t n, double q)
{
    if (n == 0) {
        return 0;
    }
    size_t i = (size_t)(q * (double)n);
    if (i >= n) {
        i = n - 1;
    }
    return (double)v[i] / 1e6;
}

/* ---- URL ---- */

typedef struct bh_target {
    char host[64];
    unsigned port;
} bh_target;

/* "http://127.0.0.1:2583" (a trailing slash allowed). IPv4 literals only: loopback benches. */
static inline bool bh_parse_url(const char *url, bh_target *t)
{
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof t->host) {
        return false;
    }
    memcpy(t->host, p, (size_t)(colon - p));
    t->host[colon - p] = 0;
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535) {
        return false;
    }
    t->port = (unsigned)port;
    return true;
}

static inline int bh_dial(const bh_target *t)
{
    struct sockaddr_in sa;
    int one = 1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)t->port);
    if (inet_pton(AF_INET, strcmp(t->host, "localhost") == 0 ? "127.0.0.1" : t->host,
                  &sa.sin_addr) != 1) {
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static inline bool bh_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* ---- keep-alive connection ---- */

typedef struct bh_conn {
    bh_target t;
    int fd;
    char *in; /* bytes read and not yet consumed */
    size_t in_len, in_cap;
    int timeout_ms;
} bh_conn;

typedef struct bh_resp {
    int status;
    char *body; /* NUL-terminated; NULL with `discard` */
    size_t len; /* body bytes (counted even when discarded) */
    bool close; /* the server said Connection: close */
} bh_resp;

static inline void bh_conn_init(bh_conn *c, const bh_target *t)
{
    memset(c, 0, sizeof *c);
    c->t = *t;
    c->fd = -1;
    c->in_cap = 65536;
    c->in = malloc(c->in_cap);
    c->timeout_ms = 60000;
    if (!c->in) {
        abort();
    }
}

static inline void bh_conn_close(bh_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->in_len = 0;
}

static inline void bh_conn_free(bh_conn *c)
{
    bh_conn_close(c);
    free(c->in);
    c->in = NULL;
}

/* Reads more into c->in (at most the free room). false on EOF, error or timeout. */
static inline bool bh_fill(bh_conn *c)
{
    struct pollfd pf = {c->fd, POLLIN, 0};
    if (c->in_len == c->in_cap) {
        return false;
    }
    if (poll(&pf, 1, c->timeout_ms) <= 0) {
        return false;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r <= 0) {
        return false;
    }
    c->in_len += (size_t)r;
    return true;
}

static inline void bh_consume(bh_conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Appends up to `n` body bytes from the connection to r (or counts them). */
static inline bool bh_take_body(bh_conn *c, bh_resp *r, size_t n, size_t *cap, bool discard)
{
    while (n > 0) {
        if (c->in_len == 0 && !bh_fill(c)) {
            return false;
        }
        size_t k = c->in_len < n ? c->in_len : n;
        if (!discard) {
            if (r->len + k + 1 > BH_MAX_BODY) {
                return false;
            }
            if (r->len + k + 1 > *cap) {
                *cap = (r->len + k + 1) * 2;
                char *nb = realloc(r->body, *cap);
                if (!nb) {
                    abort();
                }
                r->body = nb;
            }
            memcpy(r->body + r->len, c->in, k);
        }
        r->len += k;
        bh_consume(c, k);
        n -= k;
    }
    return true;
}

/* Reads one CRLF-terminated line (chunk sizes, trailers) into line[cap]. */
static inline bool bh_line(bh_conn *c, char *line, size_t cap)
{
    for (;;) {
        char *e = memchr(c->in, '\n', c->in_len);
        if (e) {
            size_t n = (size_t)(e - c->in) + 1;
            if (n >= cap) {
                return false;
            }
            memcpy(line, c->in, n);
            line[n] = 0;
            bh_consume(c, n);
            return true;
        }
        if (c->in_len >= cap || !bh_fill(c)) {
            return false;
        }
    }
}

static inline bool bh_chunked(bh_conn *c, bh_resp *r, size_t *cap, bool discard)
{
    char line[256];
    for (;;) {
        if (!bh_line(c, line, sizeof line)) {
            return false;
        }
        unsigned long long n = strtoull(line, NULL, 16);
        if (n > BH_MAX_BODY * 64) {
            return false;
        }
        if (n == 0) {
            do { /* trailers up to the empty line */
                if (!bh_line(c, line, sizeof line)) {
                    return false;
                }
            } while (strcmp(line, "\r\n") != 0);
            return true;
        }
        if (!bh_take_body(c, r, (size_t)n, cap, discard) || !bh_line(c, line, sizeof line)) {
            return false;
        }
    }
}

/* Case-insensitive header value lookup inside the head [h, h+n); copies it into out. */
static inline bool bh_header(const char *h, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(h, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ') {
                v++;
            }
            size_t k = strcspn(v, "\r");
            if (k >= cap) {
                k = cap - 1;
            }
            memcpy(out, v, k);
            out[k] = 0;
            return true;
        }
    }
    return false;
}

/* Offset just past the first CRLFCRLF in c->in, or 0 (memmem is a GNU extension). */
static inline size_t bh_head_end(const bh_conn *c)
{
    for (size_t i = 0; i + 4 <= c->in_len; i++) {
        if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
            return i + 4;
        }
    }
    return 0;
}

/* Reads the response head and body. */
static inline bool bh_read_resp(bh_conn *c, bh_resp *r, bool discard)
{
    char head[BH_MAX_HEAD + 1], v[64];
    size_t cap = 0, hl;
    while ((hl = bh_head_end(c)) == 0) {
        if (c->in_len > BH_MAX_HEAD || !bh_fill(c)) {
            return false;
        }
    }
    if (hl > BH_MAX_HEAD) {
        return false;
    }
    memcpy(head, c->in, hl);
    head[hl] = 0;
    bh_consume(c, hl);
    if (sscanf(head, "HTTP/1.%*c %d", &r->status) != 1) {
        return false;
    }
    r->close = bh_header(head, "connection", v, sizeof v) && strcasecmp(v, "close") == 0;
    if (bh_header(head, "transfer-encoding", v, sizeof v) && strcasecmp(v, "chunked") == 0) {
        if (!bh_chunked(c, r, &cap, discard)) {
            return false;
        }
    } else {
        size_t n = bh_header(head, "content-length", v, sizeof v) ? strtoull(v, NULL, 10) : 0;
        if (!bh_take_body(c, r, n, &cap, discard)) {
            return false;
        }
    }
    if (!discard && !r->body) {
        r->body = malloc(1);
    }
    if (r->body) {
        r->body[r->len] = 0;
    }
    return true;
}

static inline void bh_resp_free(bh_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One request/response on the keep-alive connection (dialled on first use; redialled once if
 * the server had closed it). `auth` is a whole Authorization value or NULL. false = transport
 * failure (r->status 0). With `discard` the body is only counted. */
static inline bool bh_call(bh_conn *c, const char *method, const char *path, const char *auth,
                           const char *body, size_t blen, bh_resp *r, bool discard)
{
    char head[4096];
    memset(r, 0, sizeof *r);
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s:%u\r\n%s%s%sContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, c->t.host, c->t.port, auth ? "Authorization: " : "",
                      auth ? auth : "", auth ? "\r\n" : "", blen);
    if (hl < 0 || (size_t)hl >= sizeof head) {
        return false;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0 && (c->fd = bh_dial(&c->t)) < 0) {
            return false;
        }
        if (bh_write_all(c->fd, head, (size_t)hl) && bh_write_all(c->fd, body, blen) &&
            bh_read_resp(c, r, discard)) {
            if (r->close) {
                bh_conn_close(c);
            }
            return true;
        }
        bh_resp_free(r);
        bh_conn_close(c);
    }
    return false;
}

/* ---- tiny JSON field reader (for our own calls' answers: no escapes in these fields) ---- */

/* Copies the string value of the first "key": "..." in `json` into out[cap]. */
static inline bool bh_json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p) {
        return false;
    }
    p += strlen(pat);
    while (*p == ' ' || *p == ':') {
        p++;
    }
    if (*p != '"') {
        return false;
    }
    p++;
    size_t n = strcspn(p, "\"\\");
    if (p[n] != '"' || n >= cap) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

/* ---- accounts and posts ---- */

typedef struct bh_account {
    char did[128];
    char auth[2200]; /* "Bearer <accessJwt>" */
    char handle[64];
} bh_account;

/* createAccount handle "<prefix><i>.test" with a fixed password; fills a. */
static inline bool bh_create_account(bh_conn *c, const char *prefix, unsigned i, bh_account *a)
{
    char body[512], jwt[2100];
    bh_resp r;
    snprintf(a->handle, sizeof a->handle, "%s%u.test", prefix, i);
    int n = snprintf(body, sizeof body,
                     "{\"handle\":\"%s\",\"email\":\"%s%u@bench.test\",\"password\":\"bench-pw-%u\"}",
                     a->handle, prefix, i, i);
    bool ok = bh_call(c, "POST", "/xrpc/com.atproto.server.createAccount", NULL, body, (size_t)n,
                      &r, false) &&
              r.status == 200 && bh_json_str(r.body, "did", a->did, sizeof a->did) &&
              bh_json_str(r.body, "accessJwt", jwt, sizeof jwt);
    if (!ok) {
        fprintf(stderr, "createAccount %s: status %d %.300s\n", a->handle, r.status,
                r.body ? r.body : "");
    } else {
        snprintf(a->auth, sizeof a->auth, "Bearer %s", jwt);
    }
    bh_resp_free(&r);
    return ok;
}

/* ISO 8601 UTC with milliseconds, as the lexicon's datetime wants. */
static inline void bh_iso_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

/* The JSON body of a createRecord of an app.bsky.feed.post; returns its length. */
static inline size_t bh_post_body(char *out, size_t cap, const char *did, unsigned w, unsigned long k)
{
    char when[32];
    bh_iso_now(when);
    int n = snprintf(out, cap,
                     "{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"record\":{\"$type\":"
                     "\"app.bsky.feed.post\",\"text\":\"bench post %lu from writer %u: the quick "
                     "brown fox jumps over the lazy dog\",\"langs\":[\"en\"],\"createdAt\":\"%s\"}}",
                     did, k, w, when);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

#endif

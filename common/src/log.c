/* log.c: JSON-lines logging. The sink is the one global of the suite (STYLE.md §2), written
 * before threads start and only read afterwards, so the hot path takes no lock: each line is
 * formatted on the stack and handed to the kernel in one write(2). */
#include "atp/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

atp_log_level atp_log__min = ATP_LOG_INFO;

static int log_fd = 2;
static bool log_owned;
static char log_svc[32] = "atp";

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

const char *atp_log_level_name(atp_log_level level)
{
    return (unsigned)level <= ATP_LOG_OFF ? level_names[level] : "?";
}

void atp_log_set_level(atp_log_level min)
{
    atp_log__min = min;
}

void atp_log_close(void)
{
    if (log_owned) {
        close(log_fd);
    }
    log_fd = 2;
    log_owned = false;
}

int atp_log_open(const char *svc, atp_log_level min, const char *path, atp_err *err)
{
    int fd = 2;
    if (path && *path) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0) {
            return atp_err_set(err, ATP_EIO, 0, "cannot open log file %s: %s", path,
                               strerror(errno));
        }
    }
    atp_log_close();
    log_fd = fd;
    log_owned = fd != 2;
    snprintf(log_svc, sizeof log_svc, "%s", svc ? svc : "atp");
    atp_log__min = min;
    return 0;
}

static bool ieq(atp_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s.ptr[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (uint8_t)lit[i]) {
            return false;
        }
    }
    return true;
}

int atp_log_level_parse(atp_slice s, atp_log_level *out, atp_err *err)
{
    static const struct {
        const char *name;
        atp_log_level level;
    } names[] = {{"debug", ATP_LOG_DEBUG}, {"info", ATP_LOG_INFO},   {"warn", ATP_LOG_WARN},
                 {"warning", ATP_LOG_WARN}, {"error", ATP_LOG_ERROR}, {"off", ATP_LOG_OFF},
                 {"silent", ATP_LOG_OFF}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (ieq(s, names[i].name)) {
            *out = names[i].level;
            return 0;
        }
    }
    return atp_err_set(err, ATP_EINVAL, 0, "unknown log level");
}

/* ---- line formatting ---- */

typedef struct writer {
    char *p;
    size_t len, end; /* end: last usable byte, leaving room for the closing "}\n" */
    bool full;
} writer;

static bool put(writer *w, const char *s, size_t n)
{
    if (w->full || n > w->end - w->len) {
        w->full = true;
        return false;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return true;
}

/* Length of a valid UTF-8 sequence at s (1 for ASCII), 0 if malformed. */
static size_t utf8_len(const uint8_t *s, size_t left)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 :
                                                   s[0] < 0xf5 ? 4 : 0;
    uint32_t cp = s[0];
    if (n <= 1 || left < n) {
        return left < n ? 0 : n;
    }
    cp &= 0x3fu >> (n - 1);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* One escaped unit of a JSON string; one byte more is always kept for the closing quote. */
static size_t put_char(writer *w, const uint8_t *s, size_t left)
{
    char esc[8];
    size_t n = utf8_len(s, left);
    const char *out = (const char *)s;
    size_t outn = n;
    if (n == 0) {
        out = "\\ufffd";
        outn = 6;
        n = 1;
    } else if (s[0] == '"' || s[0] == '\\') {
        esc[0] = '\\';
        esc[1] = (char)s[0];
        out = esc;
        outn = 2;
    } else if (s[0] < 0x20 || s[0] == 0x7f) {
        snprintf(esc, sizeof esc, "\\u%04x", s[0]);
        out = esc;
        outn = 6;
    }
    if (w->full || outn + 1 > w->end - w->len) {
        w->full = true;
        return left; /* drop the rest of this string */
    }
    put(w, out, outn);
    return n;
}

/* A quoted, escaped string, cut (still quoted) when the line is full. False if not even the
 * two quotes fit. */
static bool put_str(writer *w, const char *s)
{
    size_t n = strlen(s), i = 0;
    if (w->full || w->end - w->len < 2) {
        w->full = true;
        return false;
    }
    w->p[w->len++] = '"';
    while (i < n) {
        i += put_char(w, (const uint8_t *)s + i, n - i);
    }
    w->p[w->len++] = '"'; /* put_char always leaves this byte */
    return true;
}

/* ,"key":"value" as a whole, or nothing (the line stays valid JSON). */
static void put_field(writer *w, const char *key, const char *val)
{
    size_t save = w->len;
    bool ok = put(w, ",", 1) && put_str(w, key) && put(w, ":", 1);
    if (ok) {
        ok = val ? put_str(w, val) : put(w, "null", 4);
    }
    if (!ok) {
        w->len = save;
        w->full = true;
    }
}

static void put_ts(writer *w, long long ms)
{
    char ts[96];
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    gmtime_r(&secs, &tm);
    snprintf(ts, sizeof ts, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    put(w, ts, strlen(ts));
}

size_t atp_log_format(char *out, size_t cap, long long unix_ms, atp_log_level level,
                      const char *mod, const char *msg, const char *const *kv, size_t nkv)
{
    writer w = {out, 0, cap >= 128 ? cap - 3 : 0, false};
    if (cap < 128) {
        return 0;
    }
    put_ts(&w, unix_ms);
    put_field(&w, "level", atp_log_level_name(level));
    put_field(&w, "svc", log_svc);
    put_field(&w, "mod", mod ? mod : "-");
    put_field(&w, "msg", msg ? msg : "");
    for (size_t i = 0; i < nkv; i++) {
        put_field(&w, kv[2 * i] ? kv[2 * i] : "?", kv[2 * i + 1]);
    }
    out[w.len++] = '}';
    out[w.len++] = '\n';
    out[w.len] = '\0';
    return w.len;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void atp_log_kv(atp_log_level level, const char *mod, const char *msg, const char *const *kv,
                size_t nkv)
{
    char line[ATP_LOG_LINE_MAX];
    size_t n;
    ssize_t wr;
    if (!ATP_LOG_ON(level) || level >= ATP_LOG_OFF) {
        return;
    }
    n = atp_log_format(line, sizeof line, now_ms(), level, mod, msg, kv, nkv);
    do {
        wr = write(log_fd, line, n);
    } while (wr < 0 && errno == EINTR);
    /* A failed log write has nowhere to be reported: dropped on purpose. */
}

void atp_logf(atp_log_level level, const char *mod, const char *fmt, ...)
{
    char msg[ATP_LOG_LINE_MAX / 2];
    va_list ap;
    if (!ATP_LOG_ON(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atp_log_kv(level, mod, msg, NULL, 0);
}

/* atp/log.h: structured logs, one JSON object per line:
 *
 *   {"ts":"2024-05-01T12:00:00.123Z","level":"info","svc":"pds","mod":"server","msg":"listening",
 *    "port":"2583"}
 *
 * The sink (service name, minimum level, destination) is the suite's one global: configure it
 * once with atp_log_open before any thread starts, then log from any thread. Each line is built
 * in a fixed stack buffer and written with a single write(2), so lines from several threads
 * never interleave (lines longer than ATP_LOG_LINE_MAX are cut, keeping the JSON valid).
 * Strings are JSON-escaped; invalid UTF-8 becomes U+FFFD. No allocation.
 *
 * Hot paths guard debug logging with ATP_LOG_ON(ATP_LOG_DEBUG) (or use ATP_LOGD), which costs
 * one load and compare when debug is off.
 */
#ifndef ATP_LOG_H
#define ATP_LOG_H

#include <stdbool.h>

#include "atp/buf.h"

typedef enum atp_log_level {
    ATP_LOG_DEBUG = 0,
    ATP_LOG_INFO = 1,
    ATP_LOG_WARN = 2,
    ATP_LOG_ERROR = 3,
    ATP_LOG_OFF = 4,
} atp_log_level;

#define ATP_LOG_LINE_MAX 4096

/* The minimum level, read by ATP_LOG_ON; set only through atp_log_open/atp_log_set_level. */
extern atp_log_level atp_log__min;

#define ATP_LOG_ON(level) ((level) >= atp_log__min)

/* Debug line with a printf message, skipped (arguments not evaluated) when debug is off. */
#define ATP_LOGD(mod, ...)                                                                         \
    do {                                                                                           \
        if (ATP_LOG_ON(ATP_LOG_DEBUG)) {                                                           \
            atp_logf(ATP_LOG_DEBUG, (mod), __VA_ARGS__);                                           \
        }                                                                                          \
    } while (0)

/* Configures the sink: `svc` (copied, at most 31 bytes), the minimum level, and `path` to
 * append to (created 0640), or NULL for stderr. Closes a previously opened file. ATP_EIO if
 * the file cannot be opened (the sink then stays on stderr). Not thread-safe: call before
 * threads start. */
ATP_NODISCARD int atp_log_open(const char *svc, atp_log_level min, const char *path,
                               atp_err *err);

/* Closes a file opened by atp_log_open; logging goes back to stderr. */
void atp_log_close(void);

/* Changes the minimum level (same threading rule as atp_log_open). */
void atp_log_set_level(atp_log_level min);

/* Parses "debug", "info", "warn"/"warning", "error", "off"/"silent" (case-insensitive), as
 * LOG_LEVEL would hold them. ATP_EINVAL otherwise; *out written on success. */
ATP_NODISCARD int atp_log_level_parse(atp_slice s, atp_log_level *out, atp_err *err);

/* Name of a level ("info"). */
const char *atp_log_level_name(atp_log_level level);

/* One line with a plain message and optional key/value string pairs: `kv` holds 2*nkv
 * pointers (key, value, key, value...). NULL values are written as JSON null. */
void atp_log_kv(atp_log_level level, const char *mod, const char *msg, const char *const *kv,
                size_t nkv);

/* One line with a printf-formatted message (cut at ATP_LOG_LINE_MAX / 2). */
void atp_logf(atp_log_level level, const char *mod, const char *fmt, ...) ATP_PRINTF(3, 4);

/* Formats a line exactly as atp_log_kv would write it (with a trailing '\n') for a given
 * time in milliseconds since the epoch, into out[0..cap). Returns the length. For tests and
 * for daemons that forward lines elsewhere. */
size_t atp_log_format(char *out, size_t cap, long long unix_ms, atp_log_level level,
                      const char *mod, const char *msg, const char *const *kv, size_t nkv);

#endif

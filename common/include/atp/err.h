/* atp/err.h: the one error list of the suite.
 *
 * Every fallible function returns 0 on success or a negative ATP_E* code. The optional
 * `atp_err *err` (last parameter, nullable) receives the code, the input offset where it
 * happened and a fixed-size message: filling it never allocates.
 *
 * One X-macro row per code: name, value, XRPC error name, HTTP status, default text.
 */
#ifndef ATP_ERR_H
#define ATP_ERR_H

#include <stddef.h>

#if defined(__GNUC__)
#define ATP_NODISCARD       __attribute__((warn_unused_result))
#define ATP_NONNULL(...)    __attribute__((nonnull(__VA_ARGS__)))
#define ATP_PRINTF(m, n)    __attribute__((format(printf, m, n)))
#if defined(__clang__) || __GNUC__ < 11
#define ATP_DEALLOC(f)
#else
#define ATP_DEALLOC(f) __attribute__((malloc(f)))
#endif
#else
#define ATP_NODISCARD
#define ATP_NONNULL(...)
#define ATP_PRINTF(m, n)
#define ATP_DEALLOC(f)
#endif

#define ATP_ERR_MAP(X)                                                                            \
    X(ATP_EINVAL, -1, "InvalidRequest", 400, "invalid input")                                     \
    X(ATP_ETRUNC, -2, "InvalidRequest", 400, "truncated input")                                   \
    X(ATP_ELIMIT, -3, "PayloadTooLarge", 413, "size or count limit exceeded")                     \
    X(ATP_EDEPTH, -4, "InvalidRequest", 400, "nesting too deep")                                  \
    X(ATP_EAGAIN, -5, "InternalServerError", 500, "need more input")                              \
    X(ATP_ENOTFOUND, -6, "NotFound", 404, "not found")                                            \
    X(ATP_EIO, -7, "InternalServerError", 500, "input/output error")                              \
    X(ATP_ESIG, -8, "InvalidSignature", 400, "signature does not verify")                         \
    X(ATP_EAUTH, -9, "AuthRequired", 401, "authentication required")                              \
    X(ATP_EEXPIRED, -10, "ExpiredToken", 400, "token has expired")                                \
    X(ATP_ETOKEN, -11, "InvalidToken", 400, "invalid token")                                      \
    X(ATP_EFORBIDDEN, -12, "Forbidden", 403, "forbidden")                                         \
    X(ATP_ECONFLICT, -13, "InvalidSwap", 409, "conflict")                                         \
    X(ATP_ERATE, -14, "RateLimitExceeded", 429, "rate limit exceeded")                            \
    X(ATP_EUNSUPPORTED, -15, "MethodNotImplemented", 501, "not implemented")                      \
    X(ATP_EINTERNAL, -16, "InternalServerError", 500, "internal error")                           \
    X(ATP_EHASH, -17, "InvalidRequest", 400, "content does not match its hash")                   \
    X(ATP_EKEY, -18, "InvalidRequest", 400, "invalid key")

enum atp_errcode {
    ATP_OK = 0,
#define ATP__ERR_ENUM(name, val, xrpc, status, text) name = val,
    ATP_ERR_MAP(ATP__ERR_ENUM)
#undef ATP__ERR_ENUM
};

#define ATP_ERR_MSG_MAX 128

/* Error detail: code, byte offset in the input (0 when meaningless), message. */
typedef struct atp_err {
    int code;
    size_t off;
    char msg[ATP_ERR_MSG_MAX];
} atp_err;

/* Name of the code ("ATP_EINVAL"); "ATP_OK" for 0, "ATP_E?" for unknown codes. */
const char *atp_err_name(int code);
/* XRPC error name for a code ("InvalidRequest"). */
const char *atp_err_xrpc(int code);
/* HTTP status for a code (200 for 0). */
int atp_err_status(int code);
/* Default English text for a code. */
const char *atp_err_text(int code);

/* Fills `err` (if non-NULL) with code, offset and a formatted message; returns `code` so that
 * callers can write `return atp_err_set(err, ATP_EINVAL, off, "...")`. */
int atp_err_set(atp_err *err, int code, size_t off, const char *fmt, ...) ATP_PRINTF(4, 5);

/* Clears `err` to ATP_OK with an empty message. NULL is a no-op. */
void atp_err_clear(atp_err *err);

#endif

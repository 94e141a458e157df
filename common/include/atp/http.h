/* atp/http.h: a pure, bounded, incremental HTTP/1.1 request-head parser, a bounded incremental
 * chunked-body decoder, query-string and percent-decoding helpers, and response-head
 * formatting. No I/O, no globals, no allocation except into a caller's atp_buf.
 *
 * Strictness (decided, RFC 9112 leaves some of it to the recipient):
 * - Lines end with CRLF only: a bare LF or bare CR anywhere in the head is ATP_EINVAL (smuggling
 *   defence; curl, browsers and node all send CRLF). Empty lines (CRLF) before the request line
 *   are skipped, as RFC 9112 §2.2 recommends.
 * - obs-fold (a header line starting with SP/HTAB) is ATP_EINVAL; so is whitespace between a
 *   field name and its colon, a NUL or other control byte in a value, and a non-token name.
 * - Versions: HTTP/1.0 and HTTP/1.1 only; any other HTTP/x.y is ATP_EUNSUPPORTED.
 * - request-target: origin-form ("/path?query") or "*" (OPTIONS only); absolute- and
 *   authority-form are refused (we are an origin server). A '#' is refused.
 * - HTTP/1.1 requires exactly one Host header.
 * - Content-Length: digits only (after OWS trim), at most 18 digits; repeated headers or
 *   comma lists must all agree. Transfer-Encoding must be exactly "chunked" (one header),
 *   is refused with Content-Length (ATP_EINVAL) and in HTTP/1.0; other codings are
 *   ATP_EUNSUPPORTED.
 */
#ifndef ATP_HTTP_H
#define ATP_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"

/* Hard ceiling on headers kept per request: limits.max_headers is clamped to it. */
#define ATP_HTTP_HEADERS_MAX 100

typedef struct atp_http_limits {
    size_t max_request_line; /* bytes of the request line without CRLF */
    size_t max_header_bytes; /* whole head: request line, fields, final CRLF */
    size_t max_headers;      /* field lines (<= ATP_HTTP_HEADERS_MAX) */
} atp_http_limits;

/* 8 KiB request line, 16 KiB head, 64 fields. */
#define ATP_HTTP_LIMITS_DEFAULT ((atp_http_limits){8192, 16384, 64})

typedef struct atp_http_header {
    atp_slice name;  /* as sent (case preserved) */
    atp_slice value; /* leading and trailing OWS removed */
} atp_http_header;

/* A parsed request head. All slices borrow the input given to atp_http_parse_request. */
typedef struct atp_http_request {
    atp_slice method; /* token, case-sensitive ("GET") */
    atp_slice target; /* the raw request-target */
    atp_slice path;   /* target before '?', still percent-encoded */
    atp_slice query;  /* target after '?', without it; empty if none */
    int minor;        /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    size_t nheaders;
    atp_http_header headers[ATP_HTTP_HEADERS_MAX];
    /* Derived from the fields. */
    bool has_length;         /* a Content-Length was given */
    uint64_t content_length; /* its value (0 if none) */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool keep_alive;         /* persistent connection after this exchange */
    bool upgrade_websocket;  /* Connection: upgrade + Upgrade: websocket tokens */
    bool expect_continue;    /* Expect: 100-continue */
    bool expect_other;       /* an Expect other than 100-continue (answer 417) */
} atp_http_request;

/* Parses one request head from the start of `in`. Returns the head length in bytes (> 0,
 * including the final CRLF; what follows is body or the next request), ATP_EAGAIN when `in`
 * holds a valid prefix of a head that is not complete yet, ATP_ELIMIT when a limit is passed
 * (even while incomplete), ATP_EINVAL / ATP_EUNSUPPORTED as described above. Re-parses from
 * the start on each call (the head is bounded by the limits). `*out` is written only when a
 * whole head was parsed. */
ATP_NODISCARD int atp_http_parse_request(atp_slice in, const atp_http_limits *lim,
                                         atp_http_request *out, atp_err *err);

/* First header named `name` (ASCII case-insensitive); false if absent. */
bool atp_http_header_find(const atp_http_request *r, const char *name, atp_slice *value);

/* True if the comma-separated list `value` holds `token` (case-insensitive, OWS ignored,
 * parameters after ';' ignored). */
bool atp_http_has_token(atp_slice value, const char *token);

/* ---- chunked transfer-coding (request bodies) ---- */

typedef struct atp_http_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t line;        /* bytes of the current size/trailer line so far */
    size_t trailer;     /* trailer bytes so far */
    int digits;         /* hex digits of the current size */
    bool done;
} atp_http_chunked;

/* Size lines (hex size plus extensions) and the whole trailer section are bounded. */
#define ATP_HTTP_CHUNK_LINE_MAX 1024
#define ATP_HTTP_TRAILER_MAX    8192

void atp_http_chunked_init(atp_http_chunked *c);

/* Decodes the next bytes of a chunked body, appending data to `out` (whose max is the body
 * limit: passing it is ATP_ELIMIT). Returns 0 when the body is complete (last chunk and
 * trailers read; *used tells how much of `in` belonged to it, the rest is the next request),
 * ATP_EAGAIN when all of `in` was consumed (*used == in.len) and more is needed, ATP_EINVAL
 * on bad syntax (bare LF, non-hex size, more than 16 hex digits, missing CRLF after data),
 * ATP_ELIMIT on a line, trailer or body limit. `*used` is written on 0 and ATP_EAGAIN.
 * Trailer fields are checked for syntax and discarded. */
ATP_NODISCARD int atp_http_chunked_decode(atp_http_chunked *c, atp_slice in, atp_buf *out,
                                          size_t *used, atp_err *err);

/* ---- query strings and percent-decoding ---- */

/* Percent-decodes `in` into dst[0..cap); '+' becomes a space if `plus_space` (query strings).
 * ATP_EINVAL at a '%' not followed by two hex digits; ATP_ELIMIT if cap is too small
 * (in.len always suffices). *len is written on success. */
ATP_NODISCARD int atp_http_pct_decode(atp_slice in, bool plus_space, uint8_t *dst, size_t cap,
                                      size_t *len, atp_err *err);

/* Iterates the '&'-separated parameters of a raw query string (empty parts skipped). */
typedef struct atp_http_query_iter {
    atp_slice rest;
} atp_http_query_iter;

void atp_http_query_iter_init(atp_http_query_iter *it, atp_slice query);

/* Next parameter: raw (still encoded) key and value (empty if there was no '='). */
bool atp_http_query_next(atp_http_query_iter *it, atp_slice *key, atp_slice *value);

/* Next parameter whose decoded key equals `name` (exact bytes); its raw value. Repeated
 * parameters (collection=a&collection=b) come out one per call, in order. A key with a bad
 * escape never matches. */
bool atp_http_query_next_named(atp_http_query_iter *it, atp_slice name, atp_slice *value);

/* ---- response heads ---- */

/* Reason phrase for a status ("Not Found"); "Unknown" for unlisted codes. */
const char *atp_http_reason(int status);

/* Appends "HTTP/1.<minor> <status> <reason>\r\n". status must be 100..999. */
void atp_http_format_status(atp_buf *out, int minor, int status);

/* Appends "name: value\r\n". A name that is not a token, or a value holding CR, LF, NUL or
 * another control byte (HTAB allowed), sets out->err = ATP_EINVAL (header injection guard). */
void atp_http_format_header(atp_buf *out, const char *name, atp_slice value);

/* Appends an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for a Unix time. */
void atp_http_format_date(atp_buf *out, int64_t unix_seconds);

#endif

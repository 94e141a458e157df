/* http.c: HTTP/1.1 request-head parser, chunked decoder, query helpers, response heads.
 *
 * The head parser scans strictly left to right and fails at the first bad byte, so feeding a
 * prefix of some input gives either ATP_EAGAIN or exactly the result of the whole input: the
 * fuzz target checks that property. */
#include "atp/http.h"

#include <string.h>

/* ---- character classes ---- */

static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP, HTAB, obs-text: anything but controls and DEL. */
static bool is_value_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static bool ieq(atp_slice a, const char *b)
{
    size_t n = strlen(b);
    if (a.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(a.ptr[i]) != lower((uint8_t)b[i])) {
            return false;
        }
    }
    return true;
}

static atp_slice trim_ows(atp_slice s)
{
    while (s.len && is_ows(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && is_ows(s.ptr[s.len - 1])) {
        s.len--;
    }
    return s;
}

/* ---- head parser ---- */

/* Finds the CRLF ending the line that starts at `pos`; the line may hold at most `max` bytes.
 * Bare CR or LF is refused right where it is seen. */
static int find_eol(atp_slice in, size_t pos, size_t max, size_t *eol, atp_err *err)
{
    for (size_t i = pos; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (i - pos > max) {
            return atp_err_set(err, ATP_ELIMIT, i, "line longer than %zu bytes", max);
        }
        if (c == '\n') {
            return atp_err_set(err, ATP_EINVAL, i, "bare LF");
        }
        if (c == '\r') {
            if (i + 1 == in.len) {
                return ATP_EAGAIN;
            }
            if (in.ptr[i + 1] != '\n') {
                return atp_err_set(err, ATP_EINVAL, i, "bare CR");
            }
            *eol = i;
            return 0;
        }
    }
    if (in.len - pos > max) {
        return atp_err_set(err, ATP_ELIMIT, in.len, "line longer than %zu bytes", max);
    }
    return ATP_EAGAIN;
}

static int parse_version(atp_slice v, size_t off, int *minor, atp_err *err)
{
    if (v.len != 8 || memcmp(v.ptr, "HTTP/", 5) != 0 || v.ptr[6] != '.' || v.ptr[5] < '0' ||
        v.ptr[5] > '9' || v.ptr[7] < '0' || v.ptr[7] > '9') {
        return atp_err_set(err, ATP_EINVAL, off, "bad HTTP version");
    }
    if (v.ptr[5] != '1' || v.ptr[7] > '1') {
        return atp_err_set(err, ATP_EUNSUPPORTED, off, "HTTP version not supported");
    }
    *minor = v.ptr[7] - '0';
    return 0;
}

static int parse_target(atp_http_request *r, size_t off, atp_err *err)
{
    atp_slice t = r->target;
    const uint8_t *q;
    for (size_t i = 0; i < t.len; i++) {
        if (t.ptr[i] < 0x21 || t.ptr[i] > 0x7e || t.ptr[i] == '#') {
            return atp_err_set(err, ATP_EINVAL, off + i, "bad byte in request-target");
        }
    }
    if (t.len == 1 && t.ptr[0] == '*') {
        if (!atp_slice_eq_str(r->method, "OPTIONS")) {
            return atp_err_set(err, ATP_EINVAL, off, "'*' target only with OPTIONS");
        }
    } else if (t.len == 0 || t.ptr[0] != '/') {
        return atp_err_set(err, ATP_EINVAL, off, "request-target must be origin-form");
    }
    q = memchr(t.ptr, '?', t.len);
    r->path = atp_slice_make(t.ptr, q ? (size_t)(q - t.ptr) : t.len);
    r->query = q ? atp_slice_make(q + 1, t.len - r->path.len - 1) : atp_slice_make(t.ptr, 0);
    return 0;
}

/* method SP request-target SP HTTP-version, exactly one SP each. */
static int parse_request_line(atp_slice line, size_t off, atp_http_request *r, atp_err *err)
{
    size_t i = 0, t0;
    int rc;
    while (i < line.len && is_tchar(line.ptr[i])) {
        i++;
    }
    if (i == 0 || i == line.len || line.ptr[i] != ' ') {
        return atp_err_set(err, ATP_EINVAL, off + i, "bad method");
    }
    r->method = atp_slice_make(line.ptr, i);
    t0 = ++i;
    while (i < line.len && line.ptr[i] != ' ') {
        i++;
    }
    if (i == line.len) {
        return atp_err_set(err, ATP_EINVAL, off + i, "missing HTTP version");
    }
    r->target = atp_slice_make(line.ptr + t0, i - t0);
    rc = parse_target(r, off + t0, err);
    if (rc < 0) {
        return rc;
    }
    return parse_version(atp_slice_sub(line, i + 1, line.len), off + i + 1, &r->minor, err);
}

static int parse_field(atp_slice line, size_t off, atp_http_header *h, atp_err *err)
{
    size_t i = 0;
    if (line.len && is_ows(line.ptr[0])) {
        return atp_err_set(err, ATP_EINVAL, off, "obs-fold or leading whitespace");
    }
    while (i < line.len && is_tchar(line.ptr[i])) {
        i++;
    }
    if (i == 0 || i == line.len || line.ptr[i] != ':') {
        return atp_err_set(err, ATP_EINVAL, off + i, "bad header field name");
    }
    for (size_t j = i + 1; j < line.len; j++) {
        if (!is_value_char(line.ptr[j])) {
            return atp_err_set(err, ATP_EINVAL, off + j, "control byte in header value");
        }
    }
    h->name = atp_slice_make(line.ptr, i);
    h->value = trim_ows(atp_slice_sub(line, i + 1, line.len));
    return 0;
}

/* Content-Length: every element of every header must be the same digit string. */
static int parse_length(atp_http_request *r, atp_slice v, size_t off, atp_err *err)
{
    if (v.len == 0) {
        return atp_err_set(err, ATP_EINVAL, off, "empty Content-Length");
    }
    while (v.len) {
        const uint8_t *comma = memchr(v.ptr, ',', v.len);
        size_t n = comma ? (size_t)(comma - v.ptr) : v.len;
        atp_slice e = trim_ows(atp_slice_make(v.ptr, n));
        uint64_t x = 0;
        if (e.len == 0 || e.len > 18) {
            return atp_err_set(err, ATP_EINVAL, off, "bad Content-Length");
        }
        for (size_t i = 0; i < e.len; i++) {
            if (e.ptr[i] < '0' || e.ptr[i] > '9') {
                return atp_err_set(err, ATP_EINVAL, off, "bad Content-Length");
            }
            x = x * 10 + (uint64_t)(e.ptr[i] - '0');
        }
        if (r->has_length && x != r->content_length) {
            return atp_err_set(err, ATP_EINVAL, off, "conflicting Content-Length");
        }
        r->has_length = true;
        r->content_length = x;
        v = comma ? atp_slice_sub(v, n + 1, v.len) : atp_slice_make(v.ptr, 0);
        if (comma && v.len == 0) {
            return atp_err_set(err, ATP_EINVAL, off, "bad Content-Length");
        }
    }
    return 0;
}

typedef struct derive_state {
    int hosts, te;
    bool conn_close, conn_keep;
} derive_state;

static int derive_one(atp_http_request *r, const atp_http_header *h, derive_state *d,
                      atp_err *err)
{
    if (ieq(h->name, "host")) {
        d->hosts++;
    } else if (ieq(h->name, "content-length")) {
        return parse_length(r, h->value, 0, err);
    } else if (ieq(h->name, "transfer-encoding")) {
        d->te++;
        if (!ieq(h->value, "chunked")) {
            return atp_err_set(err, ATP_EUNSUPPORTED, 0, "unsupported transfer-coding");
        }
        r->chunked = true;
    } else if (ieq(h->name, "connection")) {
        d->conn_close |= atp_http_has_token(h->value, "close");
        d->conn_keep |= atp_http_has_token(h->value, "keep-alive");
        r->upgrade_websocket |= atp_http_has_token(h->value, "upgrade");
    } else if (ieq(h->name, "expect")) {
        r->expect_continue |= ieq(h->value, "100-continue");
        r->expect_other |= !ieq(h->value, "100-continue");
    }
    return 0;
}

static int derive_fields(atp_http_request *r, atp_err *err)
{
    derive_state d = {0, 0, false, false};
    bool ws_token = false;
    atp_slice up;
    for (size_t i = 0; i < r->nheaders; i++) {
        int rc = derive_one(r, &r->headers[i], &d, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (r->minor == 1 && d.hosts != 1) {
        return atp_err_set(err, ATP_EINVAL, 0, "HTTP/1.1 needs exactly one Host");
    }
    if (d.te > 1 || (r->chunked && (r->has_length || r->minor == 0))) {
        return atp_err_set(err, ATP_EINVAL, 0, "ambiguous message framing");
    }
    if (atp_http_header_find(r, "upgrade", &up)) {
        ws_token = atp_http_has_token(up, "websocket");
    }
    r->upgrade_websocket = r->upgrade_websocket && ws_token;
    r->keep_alive = r->minor == 1 ? !d.conn_close : (d.conn_keep && !d.conn_close);
    return 0;
}

static int parse_fields(atp_slice in, size_t pos, const atp_http_limits *lim, size_t maxh,
                        atp_http_request *r, atp_err *err)
{
    for (;;) {
        size_t eol = 0;
        int rc;
        if (lim->max_header_bytes - pos < 2) {
            return atp_err_set(err, ATP_ELIMIT, pos, "head too large");
        }
        rc = find_eol(in, pos, lim->max_header_bytes - pos - 2, &eol, err);
        if (rc < 0) {
            return rc;
        }
        if (eol == pos) {
            return (int)(pos + 2);
        }
        if (r->nheaders == maxh) {
            return atp_err_set(err, ATP_ELIMIT, pos, "more than %zu header fields", maxh);
        }
        rc = parse_field(atp_slice_make(in.ptr + pos, eol - pos), pos,
                         &r->headers[r->nheaders], err);
        if (rc < 0) {
            return rc;
        }
        r->nheaders++;
        pos = eol + 2;
    }
}

int atp_http_parse_request(atp_slice in, const atp_http_limits *lim, atp_http_request *out,
                           atp_err *err)
{
    atp_http_request r;
    size_t pos = 0, eol = 0, maxh = lim->max_headers;
    size_t maxline = lim->max_request_line;
    int rc, n;
    if (maxh > ATP_HTTP_HEADERS_MAX) {
        maxh = ATP_HTTP_HEADERS_MAX;
    }
    if (lim->max_header_bytes < 4 || lim->max_header_bytes > (1u << 30)) {
        return atp_err_set(err, ATP_EINVAL, 0, "bad limits");
    }
    memset(&r, 0, sizeof r);
    /* Skip empty lines before the request line (RFC 9112 §2.2), bounded by the head limit. */
    while (in.len - pos >= 2 && in.ptr[pos] == '\r' && in.ptr[pos + 1] == '\n') {
        pos += 2;
        if (pos + 2 >= lim->max_header_bytes) {
            return atp_err_set(err, ATP_ELIMIT, pos, "head too large");
        }
    }
    if (maxline > lim->max_header_bytes - pos - 2) {
        maxline = lim->max_header_bytes - pos - 2;
    }
    rc = find_eol(in, pos, maxline, &eol, err);
    if (rc < 0) {
        return rc;
    }
    rc = parse_request_line(atp_slice_make(in.ptr + pos, eol - pos), pos, &r, err);
    if (rc < 0) {
        return rc;
    }
    n = parse_fields(in, eol + 2, lim, maxh, &r, err);
    if (n < 0) {
        return n;
    }
    rc = derive_fields(&r, err);
    if (rc < 0) {
        return rc;
    }
    memcpy(out, &r, sizeof r);
    return n;
}

bool atp_http_header_find(const atp_http_request *r, const char *name, atp_slice *value)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (ieq(r->headers[i].name, name)) {
            *value = r->headers[i].value;
            return true;
        }
    }
    return false;
}

bool atp_http_has_token(atp_slice value, const char *token)
{
    while (value.len) {
        const uint8_t *comma = memchr(value.ptr, ',', value.len);
        size_t n = comma ? (size_t)(comma - value.ptr) : value.len;
        atp_slice e = atp_slice_make(value.ptr, n);
        const uint8_t *semi = memchr(e.ptr, ';', e.len);
        if (semi) {
            e.len = (size_t)(semi - e.ptr);
        }
        if (ieq(trim_ows(e), token)) {
            return true;
        }
        value = atp_slice_sub(value, comma ? n + 1 : n, value.len);
    }
    return false;
}

/* ---- chunked decoder ---- */

enum {
    CH_SIZE,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TR_START,
    CH_TR_NAME,
    CH_TR_VALUE,
    CH_TR_LF,
    CH_END_LF
};

void atp_http_chunked_init(atp_http_chunked *c)
{
    memset(c, 0, sizeof *c);
    c->state = CH_SIZE;
}

static int ch_size_byte(atp_http_chunked *c, uint8_t b, size_t off, atp_err *err)
{
    int h = hex_val(b);
    if (c->state == CH_SIZE && h >= 0) {
        if (++c->digits > 16) {
            return atp_err_set(err, ATP_EINVAL, off, "chunk size too long");
        }
        c->remaining = (c->remaining << 4) | (uint64_t)h;
        return 0;
    }
    if (c->state == CH_SIZE && c->digits == 0) {
        return atp_err_set(err, ATP_EINVAL, off, "bad chunk size");
    }
    if (b == '\r') {
        c->state = CH_SIZE_LF;
    } else if (c->state == CH_SIZE && b != ';' && !is_ows(b)) {
        return atp_err_set(err, ATP_EINVAL, off, "bad chunk size");
    } else if (!is_value_char(b)) {
        return atp_err_set(err, ATP_EINVAL, off, "control byte in chunk extension");
    } else {
        c->state = CH_EXT;
    }
    return 0;
}

static int ch_trailer_byte(atp_http_chunked *c, uint8_t b, size_t off, atp_err *err)
{
    if (++c->trailer > ATP_HTTP_TRAILER_MAX) {
        return atp_err_set(err, ATP_ELIMIT, off, "trailer section too large");
    }
    switch (c->state) {
    case CH_TR_START:
        if (b == '\r') {
            c->state = CH_END_LF;
            return 0;
        }
        c->state = CH_TR_NAME;
        return is_tchar(b) ? 0 : atp_err_set(err, ATP_EINVAL, off, "bad trailer field");
    case CH_TR_NAME:
        if (b == ':') {
            c->state = CH_TR_VALUE;
            return 0;
        }
        return is_tchar(b) ? 0 : atp_err_set(err, ATP_EINVAL, off, "bad trailer field");
    default: /* CH_TR_VALUE */
        if (b == '\r') {
            c->state = CH_TR_LF;
            return 0;
        }
        return is_value_char(b) ? 0 : atp_err_set(err, ATP_EINVAL, off, "bad trailer value");
    }
}

/* One byte of framing (anything but chunk data). */
static int ch_byte(atp_http_chunked *c, uint8_t b, size_t off, const atp_buf *out, atp_err *err)
{
    switch (c->state) {
    case CH_SIZE:
    case CH_EXT:
        if (++c->line > ATP_HTTP_CHUNK_LINE_MAX) {
            return atp_err_set(err, ATP_ELIMIT, off, "chunk size line too long");
        }
        return ch_size_byte(c, b, off, err);
    case CH_SIZE_LF:
        if (b != '\n') {
            return atp_err_set(err, ATP_EINVAL, off, "bare CR in chunk size line");
        }
        if (c->remaining > out->max - out->len) {
            return atp_err_set(err, ATP_ELIMIT, off, "body larger than %zu bytes", out->max);
        }
        c->state = c->remaining ? CH_DATA : CH_TR_START;
        return 0;
    case CH_DATA_CR:
        c->state = CH_DATA_LF;
        return b == '\r' ? 0 : atp_err_set(err, ATP_EINVAL, off, "missing CRLF after data");
    case CH_DATA_LF:
    case CH_TR_LF:
    case CH_END_LF:
        if (b != '\n') {
            return atp_err_set(err, ATP_EINVAL, off, "bare CR");
        }
        c->done = c->state == CH_END_LF;
        c->line = 0;
        c->digits = 0;
        c->state = c->state == CH_DATA_LF ? CH_SIZE : CH_TR_START;
        return 0;
    default:
        return ch_trailer_byte(c, b, off, err);
    }
}

int atp_http_chunked_decode(atp_http_chunked *c, atp_slice in, atp_buf *out, size_t *used,
                            atp_err *err)
{
    size_t i = 0;
    while (i < in.len && !c->done) {
        if (c->state == CH_DATA) {
            size_t n = in.len - i;
            if (n > c->remaining) {
                n = (size_t)c->remaining;
            }
            atp_buf_append(out, in.ptr + i, n);
            if (out->err) {
                return atp_err_set(err, ATP_ELIMIT, i, "body too large");
            }
            c->remaining -= n;
            i += n;
            if (c->remaining == 0) {
                c->state = CH_DATA_CR;
            }
            continue;
        }
        int rc = ch_byte(c, in.ptr[i], i, out, err);
        if (rc < 0) {
            return rc;
        }
        i++;
    }
    *used = i;
    return c->done ? 0 : ATP_EAGAIN;
}

/* ---- percent-decoding and query strings ---- */

int atp_http_pct_decode(atp_slice in, bool plus_space, uint8_t *dst, size_t cap, size_t *len,
                        atp_err *err)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (c == '%') {
            int hi = i + 2 < in.len ? hex_val(in.ptr[i + 1]) : -1;
            int lo = hi >= 0 ? hex_val(in.ptr[i + 2]) : -1;
            if (lo < 0) {
                return atp_err_set(err, ATP_EINVAL, i, "bad percent escape");
            }
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (o == cap) {
            return atp_err_set(err, ATP_ELIMIT, i, "decoded value too long");
        }
        dst[o++] = c;
    }
    *len = o;
    return 0;
}

void atp_http_query_iter_init(atp_http_query_iter *it, atp_slice query)
{
    it->rest = query;
}

bool atp_http_query_next(atp_http_query_iter *it, atp_slice *key, atp_slice *value)
{
    while (it->rest.len) {
        const uint8_t *amp = memchr(it->rest.ptr, '&', it->rest.len);
        size_t n = amp ? (size_t)(amp - it->rest.ptr) : it->rest.len;
        atp_slice part = atp_slice_make(it->rest.ptr, n);
        const uint8_t *eq = memchr(part.ptr, '=', part.len);
        it->rest = atp_slice_sub(it->rest, amp ? n + 1 : n, it->rest.len);
        if (n == 0) {
            continue;
        }
        *key = atp_slice_make(part.ptr, eq ? (size_t)(eq - part.ptr) : n);
        *value = eq ? atp_slice_sub(part, key->len + 1, n) : atp_slice_make(part.ptr + n, 0);
        return true;
    }
    return false;
}

/* Compares a still-encoded query key with a decoded name without a scratch buffer. */
static bool key_matches(atp_slice raw, atp_slice name)
{
    size_t j = 0;
    for (size_t i = 0; i < raw.len; i++, j++) {
        uint8_t c = raw.ptr[i];
        if (c == '%') {
            int hi = i + 2 < raw.len ? hex_val(raw.ptr[i + 1]) : -1;
            int lo = hi >= 0 ? hex_val(raw.ptr[i + 2]) : -1;
            if (lo < 0) {
                return false;
            }
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (j == name.len || name.ptr[j] != c) {
            return false;
        }
    }
    return j == name.len;
}

bool atp_http_query_next_named(atp_http_query_iter *it, atp_slice name, atp_slice *value)
{
    atp_slice k, v;
    while (atp_http_query_next(it, &k, &v)) {
        if (key_matches(k, name)) {
            *value = v;
            return true;
        }
    }
    return false;
}

/* ---- response heads ---- */

const char *atp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void atp_http_format_status(atp_buf *out, int minor, int status)
{
    if (status < 100 || status > 999 || minor < 0 || minor > 1) {
        out->err = ATP_EINVAL;
        return;
    }
    atp_buf_printf(out, "HTTP/1.%d %d %s\r\n", minor, status, atp_http_reason(status));
}

void atp_http_format_header(atp_buf *out, const char *name, atp_slice value)
{
    atp_slice n = atp_slice_str(name);
    bool ok = n.len > 0;
    for (size_t i = 0; i < n.len; i++) {
        ok = ok && is_tchar(n.ptr[i]);
    }
    for (size_t i = 0; i < value.len; i++) {
        ok = ok && is_value_char(value.ptr[i]);
    }
    if (!ok) {
        out->err = out->err ? out->err : ATP_EINVAL;
        return;
    }
    atp_buf_append_slice(out, n);
    atp_buf_append(out, ": ", 2);
    atp_buf_append_slice(out, value);
    atp_buf_append(out, "\r\n", 2);
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm), to avoid gmtime's locale
 * and global state. */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void atp_http_format_date(atp_buf *out, int64_t t)
{
    static const char wd[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t days = (t >= 0 ? t : t - 86399) / 86400;
    int64_t secs = t - days * 86400, y;
    unsigned m, d;
    int w = (int)(((days % 7) + 7) % 7);
    civil(days, &y, &m, &d);
    atp_buf_printf(out, "%s, %02u %s %04lld %02d:%02d:%02d GMT", wd[w], d, mon[m - 1],
                   (long long)y, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

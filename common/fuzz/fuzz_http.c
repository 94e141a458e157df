/* fuzz_http.c: the request-head parser, chunked decoder and query helpers.
 * First byte picks the target; invariants checked:
 * - head: result <= len; every prefix gives ATP_EAGAIN or the whole input's result; a parsed
 *   head re-parses to the same length from exactly its bytes; slices lie inside the input.
 * - chunked: whole, byte-by-byte and two-piece feeding agree on rc, bytes used and body.
 * - query: next_named finds exactly the parameters whose decoded key matches. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atp/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static atp_http_request r1, r2;

static void check_inside(atp_slice s, atp_slice in)
{
    if (s.len && (s.ptr < in.ptr || s.ptr + s.len > in.ptr + in.len)) {
        abort();
    }
}

static void fuzz_head(atp_slice in)
{
    atp_http_limits lim = {256, 1024, 16};
    int whole = atp_http_parse_request(in, &lim, &r1, NULL);
    size_t upto = in.len < 1100 ? in.len : 1100;
    if (whole > 0 && (size_t)whole > in.len) {
        abort();
    }
    for (size_t k = 0; k < upto; k++) {
        int rc = atp_http_parse_request(atp_slice_make(in.ptr, k), &lim, &r2, NULL);
        if (rc != ATP_EAGAIN && rc != whole) {
            abort();
        }
    }
    if (whole > 0) {
        if (atp_http_parse_request(atp_slice_make(in.ptr, (size_t)whole), &lim, &r2, NULL) !=
            whole) {
            abort();
        }
        check_inside(r1.path, in);
        check_inside(r1.query, in);
        if (r1.nheaders > lim.max_headers || r1.path.len + r1.query.len > r1.target.len) {
            abort();
        }
        for (size_t i = 0; i < r1.nheaders; i++) {
            check_inside(r1.headers[i].name, in);
            check_inside(r1.headers[i].value, in);
        }
    }
}

static int chunked_pieces(atp_slice in, size_t step, atp_buf *out, size_t *total)
{
    atp_http_chunked c;
    size_t pos = 0;
    int rc = ATP_EAGAIN;
    atp_buf_init(out, 4096);
    atp_http_chunked_init(&c);
    while (pos < in.len && rc == ATP_EAGAIN) {
        size_t n = in.len - pos < step ? in.len - pos : step, used = 0;
        rc = atp_http_chunked_decode(&c, atp_slice_make(in.ptr + pos, n), out, &used, NULL);
        if (rc == 0 || rc == ATP_EAGAIN) {
            if (used > n || (rc == ATP_EAGAIN && used != n)) {
                abort();
            }
            pos += used;
        }
    }
    *total = pos;
    return rc;
}

static void fuzz_chunked(atp_slice in)
{
    atp_buf a, b, c;
    size_t ta, tb, tc;
    int ra = chunked_pieces(in, in.len ? in.len : 1, &a, &ta);
    int rb = chunked_pieces(in, 1, &b, &tb);
    int rc = chunked_pieces(in, in.len / 2 + 1, &c, &tc);
    if (ra != rb || ra != rc) {
        abort();
    }
    if (ra == 0 && (ta != tb || ta != tc || !atp_slice_eq(atp_buf_slice(&a), atp_buf_slice(&b)) ||
                    !atp_slice_eq(atp_buf_slice(&a), atp_buf_slice(&c)))) {
        abort();
    }
    atp_buf_release(&a);
    atp_buf_release(&b);
    atp_buf_release(&c);
}

static void fuzz_query(atp_slice in)
{
    atp_http_query_iter it;
    atp_slice k, v, name = atp_slice_make(in.ptr, 0);
    uint8_t *dec = malloc(in.len + 1), *d2 = malloc(in.len + 1);
    size_t n = 0, count = 0, named = 0;
    /* The name to look for: the decoded key of the first parameter. */
    atp_http_query_iter_init(&it, in);
    if (atp_http_query_next(&it, &k, &v) &&
        atp_http_pct_decode(k, true, dec, in.len + 1, &n, NULL) == 0) {
        name = atp_slice_make(dec, n);
    }
    atp_http_query_iter_init(&it, in);
    while (atp_http_query_next(&it, &k, &v)) {
        size_t n2 = 0;
        check_inside(k, in);
        check_inside(v, in);
        if (atp_http_pct_decode(k, true, d2, in.len + 1, &n2, NULL) == 0) {
            if (n2 > k.len) {
                abort();
            }
            count += atp_slice_eq(atp_slice_make(d2, n2), name);
        }
    }
    atp_http_query_iter_init(&it, in);
    while (atp_http_query_next_named(&it, name, &v)) {
        named++;
    }
    if (named != count) {
        abort();
    }
    free(dec);
    free(d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice in;
    if (size < 1) {
        return 0;
    }
    in = atp_slice_make(data + 1, size - 1);
    switch (data[0] % 3) {
    case 0:
        fuzz_head(in);
        break;
    case 1:
        fuzz_chunked(in);
        break;
    default:
        fuzz_query(in);
        break;
    }
    return 0;
}

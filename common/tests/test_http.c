/* test_http.c: request-head parser, chunked decoder, query helpers, response heads. */
#include "atp/http.h"

#include "t.h"

static atp_http_request req; /* large (headers array): keep it off the stack */

static int parse_lim(const char *s, const atp_http_limits *lim)
{
    atp_err err;
    return atp_http_parse_request(atp_slice_str(s), lim, &req, &err);
}

static int parse(const char *s)
{
    atp_http_limits lim = ATP_HTTP_LIMITS_DEFAULT;
    return parse_lim(s, &lim);
}

static bool slice_is(atp_slice s, const char *str)
{
    return atp_slice_eq_str(s, str);
}

static void test_simple_get(void)
{
    const char *s = "GET /xrpc/com.atproto.sync.getRepo?did=did%3Aplc%3Aabc&x=1 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "User-Agent:  curl/8 \t\r\n"
                    "Accept: */*\r\n\r\nNEXT";
    atp_slice v;
    T_EQ(parse(s), (long long)strlen(s) - 4);
    T_TRUE(slice_is(req.method, "GET"));
    T_TRUE(slice_is(req.path, "/xrpc/com.atproto.sync.getRepo"));
    T_TRUE(slice_is(req.query, "did=did%3Aplc%3Aabc&x=1"));
    T_EQ(req.minor, 1);
    T_EQ(req.nheaders, 3);
    T_TRUE(req.keep_alive);
    T_FALSE(req.has_length);
    T_FALSE(req.chunked);
    T_TRUE(atp_http_header_find(&req, "user-agent", &v));
    T_TRUE(slice_is(v, "curl/8"));
    T_TRUE(atp_http_header_find(&req, "HOST", &v));
    T_TRUE(slice_is(v, "example.com"));
    T_FALSE(atp_http_header_find(&req, "cookie", &v));
}

/* Every strict prefix of a valid head is ATP_EAGAIN, and *out is untouched. */
static void test_incremental(void)
{
    const char *s = "\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    size_t n = strlen(s);
    atp_http_limits lim = ATP_HTTP_LIMITS_DEFAULT;
    for (size_t i = 0; i < n; i++) {
        atp_http_request r;
        r.minor = 77;
        T_EQ(atp_http_parse_request(atp_slice_make(s, i), &lim, &r, NULL), ATP_EAGAIN);
        T_EQ(r.minor, 77);
    }
    T_EQ(parse(s), (long long)n);
    T_TRUE(req.has_length);
    T_EQ(req.content_length, 5);
    T_TRUE(slice_is(req.method, "POST"));
}

static void test_request_line_rejects(void)
{
    T_EQ(parse("GET / HTTP/1.1\nHost: h\r\n\r\n"), ATP_EINVAL);       /* bare LF */
    T_EQ(parse("GET / HTTP/1.1\r\nHost: h\n\r\n"), ATP_EINVAL);       /* bare LF in field */
    T_EQ(parse("GET / HTTP/1.1\rHost: h\r\n\r\n"), ATP_EINVAL);       /* bare CR */
    T_EQ(parse("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);    /* double SP */
    T_EQ(parse("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);     /* non-token method */
    T_EQ(parse(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET /\r\nHost: h\r\n\r\n"), ATP_EINVAL);              /* HTTP/0.9 */
    T_EQ(parse("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTX/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/1.x\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), ATP_EUNSUPPORTED);
    T_EQ(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), ATP_EUNSUPPORTED);
    T_EQ(parse("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL); /* absolute-form */
    T_EQ(parse("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), ATP_EINVAL);
    T_TRUE(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    T_TRUE(slice_is(req.path, "*"));
    T_TRUE(parse("GET /? HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
    T_TRUE(slice_is(req.path, "/"));
    T_EQ(req.query.len, 0);
}

static void test_field_rejects(void)
{
    T_EQ(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), ATP_EINVAL); /* obs-fold */
    T_EQ(parse("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), ATP_EINVAL); /* space before colon */
    T_EQ(parse("GET / HTTP/1.1\r\nHo(st: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/1.1\r\n: h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/1.1\r\nHost h\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n"), ATP_EINVAL);
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
        T_EQ(atp_http_parse_request(atp_slice_make(nul, sizeof nul - 1),
                                    &ATP_HTTP_LIMITS_DEFAULT, &req, NULL),
             ATP_EINVAL);
    }
    /* obs-text and HTAB are fine in values */
    T_TRUE(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\xff\r\nY:\r\n\r\n") > 0);
    T_EQ(req.nheaders, 3);
    T_EQ(req.headers[2].value.len, 0);
}

static void test_host_and_connection(void)
{
    T_EQ(parse("GET / HTTP/1.1\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), ATP_EINVAL);
    T_TRUE(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    T_EQ(req.minor, 0);
    T_FALSE(req.keep_alive);
    T_TRUE(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    T_TRUE(req.keep_alive);
    T_TRUE(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n") > 0);
    T_FALSE(req.keep_alive);
    T_TRUE(parse("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                 "Upgrade: WebSocket\r\n\r\n") > 0);
    T_TRUE(req.upgrade_websocket);
    T_TRUE(req.keep_alive);
    T_TRUE(parse("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n") > 0);
    T_FALSE(req.upgrade_websocket);
    T_TRUE(parse("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n") >
           0);
    T_FALSE(req.upgrade_websocket);
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n") > 0);
    T_TRUE(req.expect_continue);
    T_FALSE(req.expect_other);
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n") > 0);
    T_TRUE(req.expect_other);
}

static void test_content_length(void)
{
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n") > 0);
    T_TRUE(req.has_length);
    T_EQ(req.content_length, 0);
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999999999\r\n\r\n") > 0);
    T_EQ(req.content_length, 999999999999999999LL);
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n") >
           0);
    T_EQ(req.content_length, 7);
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7, 7\r\n\r\n") > 0);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"),
         ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7,8\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7,\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +7\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"), ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000000000000\r\n\r\n"),
         ATP_EINVAL);
}

static void test_transfer_encoding(void)
{
    T_TRUE(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n") > 0);
    T_TRUE(req.chunked);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
         ATP_EUNSUPPORTED);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
         ATP_EUNSUPPORTED);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
               "Content-Length: 3\r\n\r\n"),
         ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"),
         ATP_EINVAL);
    T_EQ(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), ATP_EINVAL);
}

static void test_limits(void)
{
    atp_http_limits lim = {20, 60, 2};
    /* Request line of exactly 20 bytes passes, 21 fails (even before its CRLF arrives). */
    T_TRUE(parse_lim("GET /aaaaaa HTTP/1.1\r\nHost: h\r\n\r\n", &lim) > 0);
    T_EQ(parse_lim("GET /aaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n", &lim), ATP_ELIMIT);
    T_EQ(parse_lim("GET /aaaaaaaaaaaaaaaaaaaaaa", &lim), ATP_ELIMIT);
    T_EQ(parse_lim("GET /aaaaaaaaaaaaaaa", &lim), ATP_EAGAIN);
    /* Two fields fine, a third one over max_headers. */
    T_TRUE(parse_lim("GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n", &lim) > 0);
    T_EQ(parse_lim("GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nC: d\r\n\r\n", &lim), ATP_ELIMIT);
    /* Whole head: exactly 60 bytes passes, 61 fails; an unterminated long head fails early. */
    {
        const char *h60 = "GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789012345678901234567\r\n\r\n";
        const char *h61 = "GET / HTTP/1.1\r\nHost: h\r\nX: 01234567890123456789012345678\r\n\r\n";
        T_EQ(strlen(h60), 60);
        T_EQ(parse_lim(h60, &lim), 60);
        T_EQ(parse_lim(h61, &lim), ATP_ELIMIT);
        T_EQ(parse_lim("GET / HTTP/1.1\r\nHost: h\r\nX: 0123456789012345678901234567890123456789", &lim),
             ATP_ELIMIT);
    }
    /* Leading empty lines count against the head limit. */
    T_EQ(parse_lim("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
                   "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
                   &lim),
         ATP_ELIMIT);
}

static void test_tokens(void)
{
    T_TRUE(atp_http_has_token(atp_slice_str("a, B ;q=1,c"), "b"));
    T_TRUE(atp_http_has_token(atp_slice_str("close"), "CLOSE"));
    T_FALSE(atp_http_has_token(atp_slice_str("closed, xclose"), "close"));
    T_FALSE(atp_http_has_token(atp_slice_str(""), "close"));
    T_TRUE(atp_http_has_token(atp_slice_str(",,close,"), "close"));
}

/* Decodes `s` in pieces of `step` bytes; returns rc of the final call, body in *out. */
static int chunked_run(const char *s, size_t step, size_t max, atp_buf *out, size_t *total)
{
    atp_http_chunked c;
    size_t n = strlen(s), pos = 0;
    int rc = ATP_EAGAIN;
    atp_buf_init(out, max);
    atp_http_chunked_init(&c);
    while (pos < n && rc == ATP_EAGAIN) {
        size_t len = n - pos < step ? n - pos : step, used = 0;
        rc = atp_http_chunked_decode(&c, atp_slice_make(s + pos, len), out, &used, NULL);
        if (rc == 0 || rc == ATP_EAGAIN) {
            pos += used;
        }
    }
    *total = pos;
    return rc;
}

static void test_chunked(void)
{
    const char *s = "4\r\nWiki\r\n5;ext=\"v\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
                    "0\r\nExpires: x\r\n\r\nGET";
    static const char body[] = "Wikipedia in\r\n\r\nchunks.";
    for (size_t step = 1; step <= strlen(s); step += 7) {
        atp_buf out;
        size_t used;
        T_EQ(chunked_run(s, step, 1000, &out, &used), 0);
        T_EQ(used, strlen(s) - 3);
        T_MEMEQ(out.ptr, out.len, body, sizeof body - 1);
        atp_buf_release(&out);
    }
}

static void test_chunked_rejects(void)
{
    static const struct {
        const char *in;
        int rc;
    } cases[] = {
        {"0\r\n\r\n", 0},
        {"00000000000000000\r\n\r\n", ATP_EINVAL}, /* 17 digits */
        {"g\r\n", ATP_EINVAL},
        {"\r\n", ATP_EINVAL},
        {";x\r\n", ATP_EINVAL},
        {"3\nabc\r\n0\r\n\r\n", ATP_EINVAL},
        {"3\r\nabcX\r\n", ATP_EINVAL},
        {"3\r\nabc\rX", ATP_EINVAL},
        {"3\r\nabc\r\n0\r\n\n", ATP_EINVAL},
        {"0\r\n X: y\r\n\r\n", ATP_EINVAL},
        {"0\r\nX y\r\n\r\n", ATP_EINVAL},
        {"0\r\nX: \x01\r\n\r\n", ATP_EINVAL},
        {"5 ; a\x01\r\n", ATP_EINVAL},
        {"b\r\n", ATP_ELIMIT}, /* 11 bytes announced, limit 10: refused before the data */
        {"5\r\nabcde\r\n6\r\n", ATP_ELIMIT},
        {"5 ;ok\r\nabcde\r\n0\r\n\r\n", 0},
        {"3\r\nabc\r\n", ATP_EAGAIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        atp_buf out;
        size_t used;
        int rc = chunked_run(cases[i].in, 1, 10, &out, &used);
        if (rc != cases[i].rc) {
            T_FAILF("case %zu (%s): rc %d want %d", i, cases[i].in, rc, cases[i].rc);
        }
        atp_buf_release(&out);
    }
    /* Long extension line and long trailer hit their limits. */
    {
        atp_buf out;
        size_t used;
        char line[ATP_HTTP_CHUNK_LINE_MAX + 8];
        memset(line, 'a', sizeof line - 1);
        line[0] = '1';
        line[1] = ';';
        line[sizeof line - 1] = 0;
        T_EQ(chunked_run(line, 100, 10, &out, &used), ATP_ELIMIT);
        atp_buf_release(&out);
    }
}

static void test_pct_decode(void)
{
    uint8_t out[32];
    size_t n = 99;
    T_OK(atp_http_pct_decode(atp_slice_str("%41%2f+c%e2%82%AC"), true, out, sizeof out, &n, NULL));
    T_MEMEQ(out, n, "A/ c\xe2\x82\xac", 7);
    T_OK(atp_http_pct_decode(atp_slice_str("a+b"), false, out, sizeof out, &n, NULL));
    T_MEMEQ(out, n, "a+b", 3);
    T_OK(atp_http_pct_decode(atp_slice_str(""), true, out, sizeof out, &n, NULL));
    T_EQ(n, 0);
    n = 99;
    T_EQ(atp_http_pct_decode(atp_slice_str("%4"), true, out, sizeof out, &n, NULL), ATP_EINVAL);
    T_EQ(atp_http_pct_decode(atp_slice_str("a%"), true, out, sizeof out, &n, NULL), ATP_EINVAL);
    T_EQ(atp_http_pct_decode(atp_slice_str("%G0"), true, out, sizeof out, &n, NULL), ATP_EINVAL);
    T_EQ(atp_http_pct_decode(atp_slice_str("%0G"), true, out, sizeof out, &n, NULL), ATP_EINVAL);
    T_EQ(n, 99);
    T_EQ(atp_http_pct_decode(atp_slice_str("abcd"), true, out, 3, &n, NULL), ATP_ELIMIT);
    T_OK(atp_http_pct_decode(atp_slice_str("%00"), true, out, 1, &n, NULL));
    T_EQ(n, 1);
    T_EQ(out[0], 0);
}

static void test_query(void)
{
    atp_http_query_iter it;
    atp_slice k, v;
    atp_slice q = atp_slice_str("a=1&&b=&c&collection=x&coll%65ction=y&d=%zz&collection=");
    int n = 0;
    atp_http_query_iter_init(&it, q);
    T_TRUE(atp_http_query_next(&it, &k, &v));
    T_TRUE(slice_is(k, "a") && slice_is(v, "1"));
    T_TRUE(atp_http_query_next(&it, &k, &v));
    T_TRUE(slice_is(k, "b") && v.len == 0);
    T_TRUE(atp_http_query_next(&it, &k, &v));
    T_TRUE(slice_is(k, "c") && v.len == 0);
    while (atp_http_query_next(&it, &k, &v)) {
        n++;
    }
    T_EQ(n, 4);
    atp_http_query_iter_init(&it, q);
    T_TRUE(atp_http_query_next_named(&it, ATP_SLICE_LIT("collection"), &v));
    T_TRUE(slice_is(v, "x"));
    T_TRUE(atp_http_query_next_named(&it, ATP_SLICE_LIT("collection"), &v));
    T_TRUE(slice_is(v, "y"));
    T_TRUE(atp_http_query_next_named(&it, ATP_SLICE_LIT("collection"), &v));
    T_EQ(v.len, 0);
    T_FALSE(atp_http_query_next_named(&it, ATP_SLICE_LIT("collection"), &v));
    atp_http_query_iter_init(&it, atp_slice_str("a+b=1&a%2=2&a%20b=3"));
    T_TRUE(atp_http_query_next_named(&it, ATP_SLICE_LIT("a b"), &v));
    T_TRUE(slice_is(v, "1"));
    T_TRUE(atp_http_query_next_named(&it, ATP_SLICE_LIT("a b"), &v));
    T_TRUE(slice_is(v, "3"));
    atp_http_query_iter_init(&it, atp_slice_str(""));
    T_FALSE(atp_http_query_next(&it, &k, &v));
    atp_http_query_iter_init(&it, atp_slice_str("ab=1"));
    T_FALSE(atp_http_query_next_named(&it, ATP_SLICE_LIT("a"), &v));
}

static void test_format(void)
{
    atp_buf b;
    atp_buf_init(&b, 1024);
    atp_http_format_status(&b, 1, 413);
    atp_http_format_header(&b, "Content-Type", atp_slice_str("application/json"));
    atp_http_format_header(&b, "X-Empty", atp_slice_str(""));
    T_EQ(b.err, 0);
    T_MEMEQ(b.ptr, b.len,
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nX-Empty: \r\n",
            75);
    atp_buf_reset(&b);
    atp_http_format_status(&b, 0, 299);
    T_MEMEQ(b.ptr, b.len, "HTTP/1.0 299 Unknown\r\n", 22);
    atp_http_format_header(&b, "X", atp_slice_str("a\r\nSet-Cookie: x"));
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_reset(&b);
    atp_http_format_header(&b, "Bad Name", atp_slice_str("v"));
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_reset(&b);
    atp_http_format_status(&b, 1, 42);
    T_EQ(b.err, ATP_EINVAL);
    atp_buf_reset(&b);
    atp_http_format_date(&b, 784111777);
    T_MEMEQ(b.ptr, b.len, "Sun, 06 Nov 1994 08:49:37 GMT", 29);
    atp_buf_reset(&b);
    atp_http_format_date(&b, 0);
    T_MEMEQ(b.ptr, b.len, "Thu, 01 Jan 1970 00:00:00 GMT", 29);
    atp_buf_reset(&b);
    atp_http_format_date(&b, 951868799);
    T_MEMEQ(b.ptr, b.len, "Tue, 29 Feb 2000 23:59:59 GMT", 29);
    T_STREQ(atp_http_reason(404), "Not Found");
    atp_buf_release(&b);
}

int main(void)
{
    T_RUN(test_simple_get);
    T_RUN(test_incremental);
    T_RUN(test_request_line_rejects);
    T_RUN(test_field_rejects);
    T_RUN(test_host_and_connection);
    T_RUN(test_content_length);
    T_RUN(test_transfer_encoding);
    T_RUN(test_limits);
    T_RUN(test_tokens);
    T_RUN(test_chunked);
    T_RUN(test_chunked_rejects);
    T_RUN(test_pct_decode);
    T_RUN(test_query);
    T_RUN(test_format);
    return t_done();
}

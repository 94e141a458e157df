/* test_ws.c: RFC 6455 codec: heads, masking, close payloads, UTF-8, accept key, and the
 * stream parser's reassembly and rejection rules. */
#include "atp/ws.h"

#include "t.h"

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static void test_accept_key(void)
{
    char out[ATP_WS_ACCEPT_LEN + 1];
    atp_err err;
    /* RFC 6455 §1.3 */
    T_OKE(atp_ws_accept_key(atp_slice_str("dGhlIHNhbXBsZSBub25jZQ=="), out, &err), &err);
    T_STREQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* RFC 6455 §4.2.2 example key */
    T_OKE(atp_ws_accept_key(atp_slice_str("x3JJHMbDL1EzLkh9GBhXDw=="), out, &err), &err);
    T_STREQ(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    out[0] = 'Q';
    T_EQ(atp_ws_accept_key(atp_slice_str("dGhlIHNhbXBsZSBub25jZQ"), out, NULL), ATP_EINVAL);
    T_EQ(atp_ws_accept_key(atp_slice_str("dGhlIHNhbXBsZSBub25jZQ==="), out, NULL), ATP_EINVAL);
    T_EQ(atp_ws_accept_key(atp_slice_str("dGhlIHNhbXBsZSBub25jZ!=="), out, NULL), ATP_EINVAL);
    /* 24 characters but 17 bytes */
    T_EQ(atp_ws_accept_key(atp_slice_str("dGhlIHNhbXBsZSBub25jZQAA"), out, NULL), ATP_EINVAL);
    T_EQ(atp_ws_accept_key(atp_slice_str(""), out, NULL), ATP_EINVAL);
    T_EQ(out[0], 'Q');
}

static int head(const uint8_t *b, size_t n, bool from_client, atp_ws_head *h)
{
    return atp_ws_parse_head(atp_slice_make(b, n), from_client, 1 << 20, h, NULL);
}

/* RFC 6455 §5.7 examples. */
static void test_rfc_examples(void)
{
    static const uint8_t hello[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t ping[] = {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'};
    static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    atp_ws_head h;
    uint8_t data[5];
    atp_buf b;
    T_EQ(head(hello, sizeof hello, false, &h), 2);
    T_TRUE(h.fin && h.opcode == ATP_WS_TEXT && !h.masked && h.len == 5);
    T_EQ(head(masked, sizeof masked, true, &h), 6);
    T_TRUE(h.masked && h.len == 5);
    T_MEMEQ(h.mask, 4, rfc_mask, 4);
    memcpy(data, masked + 6, 5);
    atp_ws_mask(data, 5, h.mask, 0);
    T_MEMEQ(data, 5, "Hello", 5);
    /* piecewise unmasking with offsets */
    memcpy(data, masked + 6, 5);
    atp_ws_mask(data, 2, h.mask, 0);
    atp_ws_mask(data + 2, 3, h.mask, 2);
    T_MEMEQ(data, 5, "Hello", 5);
    T_EQ(head(ping, sizeof ping, false, &h), 2);
    T_TRUE(h.opcode == ATP_WS_PING && h.len == 5);
    T_EQ(head(b256, sizeof b256, false, &h), 4);
    T_EQ(h.len, 256);
    T_EQ(head(b64k, sizeof b64k, false, &h), 10);
    T_EQ(h.len, 65536);
    atp_buf_init(&b, 100);
    atp_ws_encode(&b, ATP_WS_TEXT, true, atp_slice_str("Hello"));
    T_MEMEQ(b.ptr, b.len, hello, sizeof hello);
    atp_buf_reset(&b);
    atp_ws_encode(&b, ATP_WS_PING, true, atp_slice_str("Hello"));
    T_MEMEQ(b.ptr, b.len, ping, sizeof ping);
    atp_buf_release(&b);
    {
        uint8_t hb[ATP_WS_HEAD_MAX];
        size_t n = atp_ws_head_encode(hb, ATP_WS_TEXT, true, 5, rfc_mask);
        T_MEMEQ(hb, n, masked, 6);
    }
}

static void test_head_rejects(void)
{
    static const struct {
        uint8_t b[14];
        size_t n;
        bool client;
        int rc;
    } cases[] = {
        {{0xc1, 0x80}, 6, true, ATP_EINVAL},  /* RSV1 */
        {{0xa1, 0x80}, 6, true, ATP_EINVAL},  /* RSV2 */
        {{0x91, 0x80}, 6, true, ATP_EINVAL},  /* RSV3 */
        {{0x83, 0x80}, 6, true, ATP_EINVAL},  /* opcode 3 */
        {{0x87, 0x80}, 6, true, ATP_EINVAL},  /* opcode 7 */
        {{0x8b, 0x80}, 6, true, ATP_EINVAL},  /* opcode 0xB */
        {{0x8f, 0x80}, 6, true, ATP_EINVAL},  /* opcode 0xF */
        {{0x09, 0x80}, 6, true, ATP_EINVAL},  /* fragmented ping */
        {{0x08, 0x80}, 6, true, ATP_EINVAL},  /* fragmented close */
        {{0x89, 0xfe, 0, 126}, 8, true, ATP_EINVAL}, /* ping of 126 bytes */
        {{0x81, 0x05}, 2, true, ATP_EINVAL},  /* client frame unmasked */
        {{0x81, 0x85}, 6, false, ATP_EINVAL}, /* server frame masked */
        {{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, 14, true, ATP_EINVAL}, /* top bit */
        {{0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 1}, 14, true, ATP_ELIMIT}, /* over limit */
        {{0x82, 0xfe, 0x00, 0x05}, 8, true, 8}, /* non-shortest length is accepted */
        {{0x89, 0xfd}, 6, true, 6},             /* ping of 125 bytes */
        {{0x80, 0x80}, 6, true, 6},             /* continuation frame head */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        atp_ws_head h;
        int rc = head(cases[i].b, cases[i].n, cases[i].client, &h);
        if (rc != cases[i].rc) {
            T_FAILF("case %zu: rc %d want %d", i, rc, cases[i].rc);
        }
        /* Prefixes: either the same error, or "need more". */
        for (size_t k = 0; k < cases[i].n; k++) {
            int r2 = head(cases[i].b, k, cases[i].client, &h);
            if (r2 != ATP_EAGAIN && r2 != cases[i].rc) {
                T_FAILF("case %zu prefix %zu: rc %d", i, k, r2);
            }
        }
    }
    {
        static const uint8_t big[] = {0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4};
        atp_ws_head h;
        T_EQ(atp_ws_parse_head(atp_slice_make(big, 8), true, 255, &h, NULL), ATP_ELIMIT);
        T_EQ(atp_ws_parse_head(atp_slice_make(big, 8), true, 256, &h, NULL), 8);
    }
}

static void test_head_encode_forms(void)
{
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536, 0x7fffffffffffffffULL};
    static const size_t want[] = {2, 2, 4, 4, 10, 10};
    for (size_t i = 0; i < 6; i++) {
        uint8_t hb[ATP_WS_HEAD_MAX];
        atp_ws_head h;
        size_t n = atp_ws_head_encode(hb, ATP_WS_BINARY, false, lens[i], NULL);
        T_EQ(n, want[i]);
        T_EQ(atp_ws_parse_head(atp_slice_make(hb, n), false, UINT64_MAX, &h, NULL), (int)n);
        T_EQ(h.len, lens[i]);
        T_FALSE(h.fin);
        n = atp_ws_head_encode(hb, ATP_WS_BINARY, true, lens[i], rfc_mask);
        T_EQ(n, want[i] + 4);
        T_EQ(atp_ws_parse_head(atp_slice_make(hb, n), true, UINT64_MAX, &h, NULL), (int)n);
        T_TRUE(h.fin && h.masked && h.len == lens[i]);
    }
    {
        atp_buf b;
        uint8_t big[126] = {0};
        atp_buf_init(&b, 1000);
        atp_ws_encode(&b, ATP_WS_PING, true, atp_slice_make(big, 126));
        T_EQ(b.err, ATP_EINVAL);
        atp_buf_reset(&b);
        atp_ws_encode(&b, ATP_WS_PONG, false, atp_slice_make(big, 1));
        T_EQ(b.err, ATP_EINVAL);
        atp_buf_release(&b);
    }
}

static void test_close(void)
{
    atp_buf b;
    uint16_t code = 0;
    atp_slice reason;
    char longr[200];
    static const uint8_t want[] = {0x88, 0x06, 0x03, 0xe9, 'b', 'y', 'e', '!'};
    atp_buf_init(&b, 1000);
    atp_ws_encode_close(&b, 1001, atp_slice_str("bye!"));
    T_MEMEQ(b.ptr, b.len, want, sizeof want);
    T_OK(atp_ws_parse_close(atp_slice_make(b.ptr + 2, b.len - 2), &code, &reason, NULL));
    T_EQ(code, 1001);
    T_TRUE(atp_slice_eq_str(reason, "bye!"));
    atp_buf_reset(&b);
    /* 122 ASCII bytes then a 3-byte character straddling byte 123: cut before it. */
    memset(longr, 'a', sizeof longr);
    memcpy(longr + 122, "\xe2\x82\xac", 3);
    atp_ws_encode_close(&b, 1000, atp_slice_make(longr, 150));
    T_EQ(b.len, 2 + 2 + 122);
    atp_buf_reset(&b);
    atp_ws_encode_close(&b, 0, atp_slice_str("ignored"));
    T_EQ(b.len, 2);
    atp_buf_release(&b);
    T_OK(atp_ws_parse_close(atp_slice_make(NULL, 0), &code, &reason, NULL));
    T_EQ(code, ATP_WS_NO_STATUS);
    {
        static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
        static const unsigned good[] = {1000, 1003, 1007, 1011, 1014, 3000, 4999};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
            T_EQ(atp_ws_parse_close(atp_slice_make(p, 2), &code, &reason, NULL), ATP_EINVAL);
        }
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            uint8_t p[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
            T_OK(atp_ws_parse_close(atp_slice_make(p, 2), &code, &reason, NULL));
            T_EQ(code, good[i]);
        }
    }
    T_EQ(atp_ws_parse_close(atp_slice_str("\x03"), &code, &reason, NULL), ATP_EINVAL);
    T_EQ(atp_ws_parse_close(atp_slice_str("\x03\xe8\xff"), &code, &reason, NULL), ATP_EINVAL);
}

static void test_utf8(void)
{
    static const char *good[] = {"", "abc", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80",
                                 "\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x90\x80\x80",
                                 "\xf4\x8f\xbf\xbf", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"};
    static const char *bad[] = {"\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf",
                                "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80",
                                "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xc2",
                                "\xe2\x82", "a\xc2 ", "\xf0\x90\x80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (!atp_ws_is_utf8(atp_slice_str(good[i]))) {
            T_FAILF("good %zu refused", i);
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (atp_ws_is_utf8(atp_slice_str(bad[i]))) {
            T_FAILF("bad %zu accepted", i);
        }
    }
}

/* Appends a masked client frame. */
static void client_frame(atp_buf *b, uint8_t op, bool fin, const char *payload, size_t n)
{
    uint8_t hb[ATP_WS_HEAD_MAX];
    size_t start;
    atp_buf_append(b, hb, atp_ws_head_encode(hb, op, fin, n, rfc_mask));
    start = b->len;
    atp_buf_append(b, payload, n);
    atp_ws_mask(b->ptr + start, n, rfc_mask, 0);
}

typedef struct evlog {
    int n;
    uint8_t op[16];
    char data[16][64];
    uint16_t code[16];
    int rc;
    uint16_t fail;
} evlog;

/* Runs the parser over `in` in pieces of `step` bytes, recording events. */
static void run(atp_slice in, size_t step, size_t max, evlog *log)
{
    atp_ws_parser p;
    atp_ws_limits lim = {max};
    size_t pos = 0;
    memset(log, 0, sizeof *log);
    atp_ws_parser_init(&p, true, &lim);
    while (pos < in.len) {
        size_t n = in.len - pos < step ? in.len - pos : step, used = 0;
        size_t off = 0;
        for (;;) {
            atp_ws_event ev;
            int rc = atp_ws_parser_feed(&p, atp_slice_make(in.ptr + pos + off, n - off), &used,
                                        &ev, NULL);
            if (rc == ATP_EAGAIN) {
                break;
            }
            if (rc < 0) {
                log->rc = rc;
                log->fail = p.fail_code;
                atp_ws_parser_release(&p);
                return;
            }
            off += used;
            log->op[log->n] = ev.opcode;
            log->code[log->n] = ev.code;
            snprintf(log->data[log->n], 64, "%.*s", (int)ev.data.len, (const char *)ev.data.ptr);
            log->n++;
        }
        pos += n;
    }
    atp_ws_parser_release(&p);
}

static void test_parser_reassembly(void)
{
    atp_buf b;
    atp_buf_init(&b, 4096);
    client_frame(&b, ATP_WS_TEXT, false, "Hel", 3);
    client_frame(&b, ATP_WS_PING, true, "p1", 2); /* control frames may interleave */
    client_frame(&b, ATP_WS_CONT, false, "", 0);
    client_frame(&b, ATP_WS_CONT, true, "lo", 2);
    client_frame(&b, ATP_WS_BINARY, true, "\x00\x01", 2);
    client_frame(&b, ATP_WS_PONG, true, "", 0);
    client_frame(&b, ATP_WS_TEXT, true, "", 0);
    client_frame(&b, ATP_WS_CLOSE, true, "\x03\xe8ok", 4);
    for (size_t step = 1; step <= b.len; step++) {
        evlog log;
        run(atp_buf_slice(&b), step, 100, &log);
        T_EQ(log.rc, 0);
        T_EQ(log.n, 6);
        T_EQ(log.op[0], ATP_WS_PING);
        T_STREQ(log.data[0], "p1");
        T_EQ(log.op[1], ATP_WS_TEXT);
        T_STREQ(log.data[1], "Hello");
        T_EQ(log.op[2], ATP_WS_BINARY);
        T_EQ(log.op[3], ATP_WS_PONG);
        T_EQ(log.op[4], ATP_WS_TEXT);
        T_STREQ(log.data[4], "");
        T_EQ(log.op[5], ATP_WS_CLOSE);
        T_EQ(log.code[5], 1000);
        if (t__cur_failed) {
            printf("# step %zu\n", step);
            break;
        }
    }
    atp_buf_release(&b);
}

static void expect_fail(atp_buf *b, size_t max, int rc, uint16_t code)
{
    evlog log;
    run(atp_buf_slice(b), 1, max, &log);
    T_EQ(log.rc, rc);
    T_EQ(log.fail, code);
    run(atp_buf_slice(b), b->len, max, &log);
    T_EQ(log.rc, rc);
    T_EQ(log.fail, code);
    atp_buf_reset(b);
}

static void test_parser_rejects(void)
{
    atp_buf b;
    static const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
    atp_buf_init(&b, 4096);
    client_frame(&b, ATP_WS_CONT, true, "x", 1);
    expect_fail(&b, 100, ATP_EINVAL, ATP_WS_PROTOCOL_ERROR);
    client_frame(&b, ATP_WS_TEXT, false, "a", 1);
    client_frame(&b, ATP_WS_BINARY, true, "b", 1);
    expect_fail(&b, 100, ATP_EINVAL, ATP_WS_PROTOCOL_ERROR);
    atp_buf_append(&b, unmasked, sizeof unmasked);
    expect_fail(&b, 100, ATP_EINVAL, ATP_WS_PROTOCOL_ERROR);
    client_frame(&b, ATP_WS_TEXT, true, "\xc0\x80", 2);
    expect_fail(&b, 100, ATP_EINVAL, ATP_WS_INVALID_DATA);
    /* UTF-8 split across fragments is fine; invalid only when the whole is. */
    client_frame(&b, ATP_WS_TEXT, false, "\xe2\x82", 2);
    client_frame(&b, ATP_WS_CONT, true, "\xac", 1);
    {
        evlog log;
        run(atp_buf_slice(&b), 1, 100, &log);
        T_EQ(log.rc, 0);
        T_STREQ(log.data[0], "\xe2\x82\xac");
        atp_buf_reset(&b);
    }
    client_frame(&b, ATP_WS_BINARY, true, "0123456789", 10);
    expect_fail(&b, 9, ATP_ELIMIT, ATP_WS_TOO_BIG);
    client_frame(&b, ATP_WS_BINARY, false, "01234", 5);
    client_frame(&b, ATP_WS_CONT, true, "56789", 5);
    expect_fail(&b, 9, ATP_ELIMIT, ATP_WS_TOO_BIG);
    client_frame(&b, ATP_WS_CLOSE, true, "\x03", 1);
    expect_fail(&b, 100, ATP_EINVAL, ATP_WS_PROTOCOL_ERROR);
    client_frame(&b, ATP_WS_CLOSE, true, "\x03\xed", 2); /* 1005 may not be sent */
    expect_fail(&b, 100, ATP_EINVAL, ATP_WS_PROTOCOL_ERROR);
    /* exactly at the limit is fine */
    client_frame(&b, ATP_WS_BINARY, false, "01234", 5);
    client_frame(&b, ATP_WS_CONT, true, "5678", 4);
    {
        evlog log;
        run(atp_buf_slice(&b), 3, 9, &log);
        T_EQ(log.rc, 0);
        T_EQ(log.n, 1);
        T_STREQ(log.data[0], "012345678");
    }
    atp_buf_release(&b);
}

/* The server side parser (client role) reads unmasked server frames, RFC §5.7. */
static void test_parser_server_frames(void)
{
    static const uint8_t frag[] = {0x01, 0x03, 'H', 'e', 'l', 0x80, 0x02, 'l', 'o'};
    atp_ws_parser p;
    atp_ws_limits lim = {64};
    atp_ws_event ev;
    size_t used = 0;
    atp_ws_parser_init(&p, false, &lim);
    T_EQ(atp_ws_parser_feed(&p, atp_slice_make(frag, sizeof frag), &used, &ev, NULL), 0);
    T_EQ(used, sizeof frag);
    T_EQ(ev.opcode, ATP_WS_TEXT);
    T_MEMEQ(ev.data.ptr, ev.data.len, "Hello", 5);
    T_EQ(atp_ws_parser_feed(&p, atp_slice_make(frag, 0), &used, &ev, NULL), ATP_EAGAIN);
    T_EQ(used, 0);
    atp_ws_parser_release(&p);
}

int main(void)
{
    T_RUN(test_accept_key);
    T_RUN(test_rfc_examples);
    T_RUN(test_head_rejects);
    T_RUN(test_head_encode_forms);
    T_RUN(test_close);
    T_RUN(test_utf8);
    T_RUN(test_parser_reassembly);
    T_RUN(test_parser_rejects);
    T_RUN(test_parser_server_frames);
    return t_done();
}

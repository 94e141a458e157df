/* fuzz_ws.c: frame heads and the stream parser. Invariants checked:
 * - head: result <= 14 and <= len; every prefix gives ATP_EAGAIN or the whole input's result;
 *   a parsed head re-encodes (shortest form) to a head that parses to the same fields.
 * - stream parser (client frames, then server frames): whole, byte-by-byte and split feeding
 *   give the same events and the same error and close code; every message re-encoded as a
 *   server frame parses back to the same bytes; close payloads round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atp/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_head(atp_slice in, bool client)
{
    atp_ws_head h, h2;
    uint8_t enc[ATP_WS_HEAD_MAX];
    int whole = atp_ws_parse_head(in, client, 1 << 16, &h, NULL);
    size_t n;
    if (whole > 0 && ((size_t)whole > in.len || whole > ATP_WS_HEAD_MAX)) {
        abort();
    }
    for (size_t k = 0; k < in.len && k <= ATP_WS_HEAD_MAX; k++) {
        int rc = atp_ws_parse_head(atp_slice_make(in.ptr, k), client, 1 << 16, &h2, NULL);
        if (rc != ATP_EAGAIN && rc != whole) {
            abort();
        }
    }
    if (whole <= 0) {
        return;
    }
    n = atp_ws_head_encode(enc, h.opcode, h.fin, h.len, h.masked ? h.mask : NULL);
    if (atp_ws_parse_head(atp_slice_make(enc, n), client, 1 << 16, &h2, NULL) != (int)n ||
        h2.len != h.len || h2.fin != h.fin || h2.opcode != h.opcode ||
        memcmp(h2.mask, h.mask, 4) != 0) {
        abort();
    }
}

typedef struct trace {
    atp_buf log; /* opcode, code, length, bytes of each event */
    int rc;
    uint16_t fail;
} trace;

static void record(trace *t, const atp_ws_event *ev)
{
    uint8_t hdr[1 + 2 + 8];
    hdr[0] = ev->opcode;
    hdr[1] = (uint8_t)(ev->code >> 8);
    hdr[2] = (uint8_t)ev->code;
    for (int i = 0; i < 8; i++) {
        hdr[3 + i] = (uint8_t)((uint64_t)ev->data.len >> (8 * i));
    }
    atp_buf_append(&t->log, hdr, sizeof hdr);
    atp_buf_append_slice(&t->log, ev->data);
}

/* Re-encodes one event as a server frame and parses it back. */
static void roundtrip(const atp_ws_event *ev)
{
    atp_buf b;
    atp_ws_parser p;
    atp_ws_limits lim = {1 << 16};
    atp_ws_event e2;
    size_t used;
    atp_buf_init(&b, 1 << 17);
    if (ev->opcode == ATP_WS_CLOSE) {
        atp_ws_encode_close(&b, ev->code == ATP_WS_NO_STATUS ? 0 : ev->code, ev->reason);
    } else {
        atp_ws_encode(&b, ev->opcode, true, ev->data);
    }
    atp_ws_parser_init(&p, false, &lim);
    if (b.err || atp_ws_parser_feed(&p, atp_buf_slice(&b), &used, &e2, NULL) != 0 ||
        used != b.len || e2.opcode != ev->opcode || !atp_slice_eq(e2.data, ev->data)) {
        abort();
    }
    atp_ws_parser_release(&p);
    atp_buf_release(&b);
}

static void run(atp_slice in, bool client, size_t step, bool check, trace *t)
{
    atp_ws_parser p;
    atp_ws_limits lim = {4096};
    size_t pos = 0;
    atp_buf_init(&t->log, 1 << 24);
    t->rc = 0;
    t->fail = 0;
    atp_ws_parser_init(&p, client, &lim);
    while (pos < in.len && t->rc == 0) {
        size_t n = in.len - pos < step ? in.len - pos : step, off = 0;
        for (;;) {
            atp_ws_event ev;
            size_t used = 0;
            int rc = atp_ws_parser_feed(&p, atp_slice_make(in.ptr + pos + off, n - off), &used,
                                        &ev, NULL);
            if (rc == ATP_EAGAIN) {
                break;
            }
            if (rc < 0) {
                t->rc = rc;
                t->fail = p.fail_code;
                break;
            }
            off += used;
            if (off > n) {
                abort();
            }
            record(t, &ev);
            if (check) {
                roundtrip(&ev);
            }
        }
        pos += n;
    }
    atp_ws_parser_release(&p);
}

static void fuzz_stream(atp_slice in, bool client)
{
    trace a, b, c;
    run(in, client, in.len ? in.len : 1, true, &a);
    run(in, client, 1, false, &b);
    run(in, client, in.len / 3 + 1, false, &c);
    if (a.rc != b.rc || a.rc != c.rc || a.fail != b.fail || a.fail != c.fail ||
        !atp_slice_eq(atp_buf_slice(&a.log), atp_buf_slice(&b.log)) ||
        !atp_slice_eq(atp_buf_slice(&a.log), atp_buf_slice(&c.log))) {
        abort();
    }
    if ((a.rc < 0) != (a.fail != 0)) {
        abort();
    }
    atp_buf_release(&a.log);
    atp_buf_release(&b.log);
    atp_buf_release(&c.log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice in;
    if (size < 1) {
        return 0;
    }
    in = atp_slice_make(data + 1, size - 1);
    fuzz_head(in, (data[0] & 1) != 0);
    fuzz_stream(in, (data[0] & 1) != 0);
    return 0;
}

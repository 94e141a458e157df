/* pds/fuzz/fuzz_firehose.c: the firehose's parsers and encoders (seq_event.h).
 * First byte picks the part:
 *   0: subscribeRepos cursor parsing: accepted values are < 2^53 and print back to the input
 *      (when it has no leading zero), and re-parse to the same value;
 *   1: frame decoding: an accepted frame re-encodes to the same bytes, and decodes again to the
 *      same header/seq;
 *   2: frame building: a body accepted by pds_seq_frame_build gives a frame that decodes with
 *      that seq and type, and re-encodes byte-equal. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq_event.h"

static void check_cursor(atp_slice in)
{
    int64_t v = -1, v2 = -1;
    char txt[32];
    if (pds_seq_parse_cursor(in, &v, NULL) < 0) {
        return;
    }
    if (v < 0 || v >= PDS_SEQ_MAX) {
        abort();
    }
    int n = snprintf(txt, sizeof txt, "%lld", (long long)v);
    bool leading_zero = in.len > 1 && in.ptr[0] == '0';
    if (!leading_zero && ((size_t)n != in.len || memcmp(txt, in.ptr, in.len) != 0)) {
        abort();
    }
    if (pds_seq_parse_cursor(atp_slice_make(txt, (size_t)n), &v2, NULL) < 0 || v2 != v) {
        abort();
    }
}

static void check_decode(atp_arena *a, atp_slice in)
{
    pds_seq_frame f, g;
    atp_buf b;
    if (pds_seq_frame_decode(a, in, &f, NULL) < 0) {
        return;
    }
    atp_buf_init(&b, PDS_SEQ_FRAME_MAX + 16);
    pds_seq_frame_encode(&b, &f);
    if (b.err || b.len != in.len || memcmp(b.ptr, in.ptr, in.len) != 0) {
        abort();
    }
    if (pds_seq_frame_decode(a, atp_buf_slice(&b), &g, NULL) < 0 || g.op != f.op ||
        g.has_seq != f.has_seq || g.seq != f.seq || !atp_slice_eq(g.type, f.type)) {
        abort();
    }
    atp_buf_release(&b);
}

static void check_build(atp_arena *a, atp_slice in)
{
    static const char *const types[] = {"#commit", "#sync", "#identity", "#account"};
    pds_seq_frame f;
    atp_buf b, c;
    if (in.len < 2) {
        return;
    }
    int64_t seq = 1 + (int64_t)in.ptr[0] * 977;
    const char *type = types[in.ptr[1] % 4];
    atp_buf_init(&b, PDS_SEQ_FRAME_MAX + 64);
    if (pds_seq_frame_build(&b, a, type, atp_slice_sub(in, 2, in.len - 2), seq, NULL) == 0) {
        if (pds_seq_frame_decode(a, atp_buf_slice(&b), &f, NULL) < 0 || !f.has_seq ||
            f.seq != seq || f.op != 1 || !atp_slice_eq_str(f.type, type)) {
            abort();
        }
        atp_buf_init(&c, PDS_SEQ_FRAME_MAX + 64);
        pds_seq_frame_encode(&c, &f);
        if (c.len != b.len || memcmp(c.ptr, b.ptr, b.len) != 0) {
            abort();
        }
        atp_buf_release(&c);
    }
    atp_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    atp_slice in = atp_slice_make(data + 1, size - 1);
    atp_arena *a = atp_arena_create(0);
    switch (data[0] % 3) {
    case 0: check_cursor(in); break;
    case 1: check_decode(a, in); break;
    default: check_build(a, in); break;
    }
    atp_arena_destroy(a);
    return 0;
}

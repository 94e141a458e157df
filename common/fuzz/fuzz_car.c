/* fuzz_car.c: the whole-slice reader and the streaming reader (fed byte by byte, and in chunks
 * of a size taken from the input) must return the same roots, blocks, offsets and final code;
 * a CAR that reads back is rewritten by the writer with byte-identical sections, and the
 * rewrite reads back the same. */
#include <stdlib.h>
#include <string.h>

#include "atp/car.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A digest of what a reader returned: roots, then per block CID, offset, verified, data. */
typedef struct trace {
    atp_buf b;
    int rc;
    uint64_t first_block; /* offset of the first section, or 0 */
    size_t blocks;
} trace;

static void trace_block(trace *t, const atp_car_block *blk)
{
    if (t->blocks++ == 0) {
        t->first_block = blk->offset;
    }
    atp_buf_append(&t->b, blk->cid.bytes, blk->cid.len);
    atp_buf_append(&t->b, &blk->offset, sizeof blk->offset);
    atp_buf_append_byte(&t->b, blk->verified);
    atp_buf_append(&t->b, &blk->data.len, sizeof blk->data.len);
    atp_buf_append_slice(&t->b, blk->data);
}

static void trace_roots(trace *t, const atp_cid *roots, size_t n)
{
    atp_buf_append(&t->b, &n, sizeof n);
    for (size_t i = 0; i < n; i++) {
        atp_buf_append(&t->b, roots[i].bytes, roots[i].len);
    }
}

static const atp_car_limits lim = {
    .max_header = 4096, .max_roots = 16, .max_block = 1 << 16, .max_blocks = 256,
    .max_total = 1 << 20};

static void read_mem(atp_slice in, unsigned flags, trace *t)
{
    atp_car_mem m;
    atp_car_block blk;
    atp_buf_init(&t->b, 0);
    t->blocks = 0;
    t->first_block = 0;
    t->rc = atp_car_mem_open(&m, in, &lim, flags, NULL);
    if (t->rc < 0) {
        return;
    }
    trace_roots(t, m.roots, m.n_roots);
    while ((t->rc = atp_car_mem_next(&m, &blk, NULL)) == ATP_CAR_BLOCK) {
        trace_block(t, &blk);
    }
    atp_car_mem_close(&m);
}

static int feed(atp_car_reader *r, atp_slice in, trace *t)
{
    while (in.len > 0) {
        atp_car_block blk;
        size_t used = 0, n;
        int rc = atp_car_reader_next(r, in, &used, &blk, NULL);
        in = atp_slice_sub(in, used, in.len - used);
        if (rc == ATP_CAR_HEADER) {
            const atp_cid *roots = atp_car_reader_roots(r, &n);
            trace_roots(t, roots, n);
        } else if (rc == ATP_CAR_BLOCK) {
            trace_block(t, &blk);
        } else if (rc == ATP_EAGAIN) {
            if (in.len != 0) {
                abort();
            }
        } else {
            return rc;
        }
    }
    return 0;
}

static void read_stream(atp_slice in, size_t chunk, unsigned flags, trace *t)
{
    atp_car_reader *r = atp_car_reader_create(&lim, flags);
    atp_buf_init(&t->b, 0);
    t->blocks = 0;
    t->first_block = 0;
    t->rc = 0;
    for (size_t off = 0; off < in.len && t->rc == 0; off += chunk) {
        size_t n = in.len - off < chunk ? in.len - off : chunk;
        t->rc = feed(r, atp_slice_make(in.ptr + off, n), t);
    }
    if (t->rc == 0) {
        t->rc = atp_car_reader_finish(r, NULL);
    }
    atp_car_reader_destroy(r);
}

static void same(const trace *a, const trace *b)
{
    if (a->rc != b->rc || a->blocks != b->blocks || !atp_slice_eq(atp_buf_slice(&a->b),
                                                                  atp_buf_slice(&b->b))) {
        abort();
    }
}

/* Rewrites a CAR that read back fine and checks sections are byte-identical. */
static void rewrite(atp_slice in, unsigned flags, const trace *orig)
{
    atp_car_mem m;
    atp_car_block blk;
    atp_buf out;
    atp_car_writer w;
    trace again;
    if (atp_car_mem_open(&m, in, &lim, flags, NULL) != 0) {
        abort();
    }
    atp_buf_init(&out, 0);
    atp_car_writer_init_buf(&w, &out);
    if (atp_car_write_header(&w, m.roots, m.n_roots) != 0) {
        abort();
    }
    uint64_t hdr_len = out.len;
    while (atp_car_mem_next(&m, &blk, NULL) == ATP_CAR_BLOCK) {
        if (atp_car_write_block(&w, &blk.cid, blk.data) != 0) {
            abort();
        }
    }
    atp_car_mem_close(&m);
    if (orig->blocks > 0 &&
        (out.len - hdr_len != in.len - orig->first_block ||
         memcmp(out.ptr + hdr_len, in.ptr + orig->first_block, out.len - hdr_len) != 0)) {
        abort();
    }
    read_mem(atp_buf_slice(&out), flags, &again);
    if (again.rc != 0 || again.blocks != orig->blocks) {
        abort();
    }
    atp_buf_release(&again.b);
    atp_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice in = atp_slice_make(data, size);
    unsigned flags = size > 0 && (data[size - 1] & 1) ? ATP_CAR_ALLOW_UNVERIFIED : 0;
    size_t chunk = size > 1 ? (size_t)data[size / 2] % 97 + 1 : 1;
    trace whole, bytewise, chunked;
    read_mem(in, flags, &whole);
    read_stream(in, 1, flags, &bytewise);
    read_stream(in, chunk, flags, &chunked);
    same(&whole, &bytewise);
    same(&whole, &chunked);
    if (whole.rc == 0) {
        rewrite(in, flags, &whole);
    }
    atp_buf_release(&whole.b);
    atp_buf_release(&bytewise.b);
    atp_buf_release(&chunked.b);
    return 0;
}

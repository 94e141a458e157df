/* car.c: CAR v1 reader (push-style, resumable at any byte) and writer.
 *
 * The reader is a small state machine: length prefix of the header, header, then length prefix
 * and body of each section. A length prefix or body that is complete in the caller's input is
 * used in place (zero-copy); only an item split across calls is copied into `part`, and that
 * buffer never holds more than the one item in progress. Every length is checked against the
 * limits before a byte of its body is buffered. */
#include "atp/car.h"

#include <stdlib.h>
#include <string.h>

#include "atp/cbor.h"
#include "atp/varint.h"

const atp_car_limits atp_car_limits_default = {
    .max_header = 64 * 1024,
    .max_roots = 1024,
    .max_block = 2 * 1024 * 1024,
    .max_blocks = 1000000,
    .max_total = (uint64_t)1 << 30,
};

enum car_state { ST_HDR_LEN, ST_HDR, ST_SEC_LEN, ST_SEC };

struct atp_car_reader {
    atp_car_limits lim;
    unsigned flags;
    enum car_state state;
    int err;           /* sticky error code, 0 if none */
    atp_err err_info;  /* its details, replayed on later calls */
    uint64_t off;      /* stream bytes consumed so far */
    uint64_t item_off; /* stream offset of the current item's length prefix */
    size_t need;       /* body length of the current item */
    atp_buf part;      /* the partial length prefix or body being assembled */
    bool part_handed;  /* `part` holds a body already returned: empty it on the next call */
    atp_arena *arena;  /* header decoding only */
    atp_cid *roots;
    size_t n_roots;
    size_t blocks;
};

/* ---- reader setup ---- */

atp_car_reader *atp_car_reader_create(const atp_car_limits *lim, unsigned flags)
{
    atp_car_reader *r = atp_xcalloc(1, sizeof *r);
    r->lim = lim ? *lim : atp_car_limits_default;
    r->flags = flags;
    size_t body_max = r->lim.max_block + ATP_CID_MAX;
    if (body_max < r->lim.max_header) {
        body_max = r->lim.max_header;
    }
    /* Limits are checked before buffering, so this ceiling is a second line of defence. */
    atp_buf_init(&r->part, body_max + ATP_VARINT_MAX_BYTES);
    r->arena = atp_arena_create(0);
    return r;
}

void atp_car_reader_destroy(atp_car_reader *r)
{
    if (!r) {
        return;
    }
    atp_buf_release(&r->part);
    atp_arena_destroy(r->arena);
    free(r->roots);
    free(r);
}

void atp_car_reader_reset(atp_car_reader *r)
{
    atp_buf_reset(&r->part);
    atp_arena_reset(r->arena);
    free(r->roots);
    r->roots = NULL;
    r->n_roots = 0;
    r->state = ST_HDR_LEN;
    r->err = 0;
    atp_err_clear(&r->err_info);
    r->off = 0;
    r->item_off = 0;
    r->need = 0;
    r->part_handed = false;
    r->blocks = 0;
}

const atp_cid *atp_car_reader_roots(const atp_car_reader *r, size_t *n)
{
    *n = r->n_roots;
    return r->roots;
}

size_t atp_car_reader_block_count(const atp_car_reader *r)
{
    return r->blocks;
}

uint64_t atp_car_reader_offset(const atp_car_reader *r)
{
    return r->off;
}

/* ---- input plumbing ---- */

static void advance(atp_car_reader *r, atp_slice *in, size_t n)
{
    in->ptr += n;
    in->len -= n;
    r->off += n;
}

static int buffer_bytes(atp_car_reader *r, atp_slice *in, size_t n, atp_err *err)
{
    atp_buf_append(&r->part, in->ptr, n);
    if (r->part.err) {
        return atp_err_set(err, ATP_ELIMIT, (size_t)r->off, "CAR item too large to buffer");
    }
    advance(r, in, n);
    return 0;
}

/* Reads a length prefix, resuming a partial one from `part` byte by byte (a varint is at most
 * 9 bytes, so the copy is bounded). */
static int read_len(atp_car_reader *r, atp_slice *in, uint64_t *len, atp_err *err)
{
    if (r->part.len == 0) {
        r->item_off = r->off;
    }
    for (;;) {
        bool buffered = r->part.len > 0;
        atp_slice avail = buffered ? atp_buf_slice(&r->part) : *in;
        size_t used = 0;
        atp_err e;
        int rc = atp_varint_decode(avail, ATP_VARINT_MAX_BYTES, len, &used, &e);
        if (rc == 0) {
            if (buffered) {
                atp_buf_reset(&r->part);
            } else {
                advance(r, in, used);
            }
            return 0;
        }
        if (rc != ATP_ETRUNC) {
            return atp_err_set(err, rc, (size_t)r->item_off + e.off, "CAR length prefix: %s",
                               e.msg);
        }
        if (in->len == 0) {
            return ATP_EAGAIN;
        }
        /* Unbuffered, a truncated varint means all of `in` (< 9 bytes) belongs to it. */
        rc = buffer_bytes(r, in, buffered ? 1 : in->len, err);
        if (rc < 0) {
            return rc;
        }
    }
}

/* Makes the r->need bytes of the current body available: in place when nothing is buffered
 * and `in` holds them all, else by topping up `part`. */
static int gather(atp_car_reader *r, atp_slice *in, atp_slice *body, atp_err *err)
{
    if (r->part.len == 0 && in->len >= r->need) {
        *body = atp_slice_make(in->ptr, r->need);
        advance(r, in, r->need);
        return 0;
    }
    size_t take = r->need - r->part.len;
    if (take > in->len) {
        take = in->len;
    }
    if (take > 0) {
        int rc = buffer_bytes(r, in, take, err);
        if (rc < 0) {
            return rc;
        }
    }
    if (r->part.len < r->need) {
        return ATP_EAGAIN;
    }
    *body = atp_buf_slice(&r->part);
    r->part_handed = true;
    return 0;
}

/* ---- limits on a length prefix, before its body is read ---- */

static int start_body(atp_car_reader *r, uint64_t len, atp_err *err)
{
    size_t at = (size_t)r->item_off;
    bool hdr = r->state == ST_HDR_LEN;
    if (len == 0) {
        return atp_err_set(err, ATP_EINVAL, at, "CAR %s of length 0", hdr ? "header" : "section");
    }
    if (hdr && len > r->lim.max_header) {
        return atp_err_set(err, ATP_ELIMIT, at, "CAR header of %llu bytes over the %zu limit",
                           (unsigned long long)len, r->lim.max_header);
    }
    if (!hdr && len > (uint64_t)r->lim.max_block + ATP_CID_MAX) {
        return atp_err_set(err, ATP_ELIMIT, at, "CAR section of %llu bytes over the block limit",
                           (unsigned long long)len);
    }
    if (!hdr && r->blocks >= r->lim.max_blocks) {
        return atp_err_set(err, ATP_ELIMIT, at, "CAR has more than %zu blocks",
                           r->lim.max_blocks);
    }
    if (r->off > r->lim.max_total || len > r->lim.max_total - r->off) {
        return atp_err_set(err, ATP_ELIMIT, at, "CAR larger than %llu bytes",
                           (unsigned long long)r->lim.max_total);
    }
    r->need = (size_t)len;
    r->state = hdr ? ST_HDR : ST_SEC;
    return 0;
}

/* ---- header ---- */

static int store_roots(atp_car_reader *r, const atp_cbor *roots, size_t at, atp_err *err)
{
    if (!roots || roots->type != ATP_CBOR_ARRAY) {
        return atp_err_set(err, ATP_EINVAL, at, "CAR header: roots is missing or not an array");
    }
    size_t n = roots->u.arr.n;
    if (n > r->lim.max_roots) {
        return atp_err_set(err, ATP_ELIMIT, at, "CAR header: %zu roots, limit %zu", n,
                           r->lim.max_roots);
    }
    atp_cid *cids = atp_xmalloc(n * sizeof *cids);
    for (size_t i = 0; i < n; i++) {
        if (atp_cbor_get_cid(&roots->u.arr.items[i], &cids[i]) < 0) {
            free(cids);
            return atp_err_set(err, ATP_EINVAL, at, "CAR header: root %zu is not a CID link", i);
        }
    }
    r->roots = cids;
    r->n_roots = n;
    return 0;
}

static int finish_header(atp_car_reader *r, atp_slice body, atp_err *err)
{
    size_t at = (size_t)(r->off - body.len);
    atp_cbor_limits cl = {.max_len = body.len, .max_depth = 8, .max_key = 256};
    cl.max_items = r->lim.max_roots > 64 ? r->lim.max_roots : 64;
    cl.max_total = cl.max_items + 256;
    atp_cbor *hdr = NULL;
    atp_err e;
    int rc = atp_cbor_decode(r->arena, body, &cl, &hdr, &e);
    if (rc < 0) {
        return atp_err_set(err, rc, at + e.off, "CAR header: %s", e.msg);
    }
    const atp_cbor *ver = atp_cbor_map_get_str(hdr, "version");
    if (hdr->type != ATP_CBOR_MAP || !ver || ver->type != ATP_CBOR_INT) {
        rc = atp_err_set(err, ATP_EINVAL, at, "CAR header: not a map with an integer version");
    } else if (ver->u.i != 1) {
        rc = atp_err_set(err, ATP_EINVAL, at, "CAR version %lld not supported (only 1)",
                         (long long)ver->u.i);
    } else {
        rc = store_roots(r, atp_cbor_map_get_str(hdr, "roots"), at, err);
    }
    atp_arena_reset(r->arena);
    if (rc < 0) {
        return rc;
    }
    r->state = ST_SEC_LEN;
    return ATP_CAR_HEADER;
}

/* ---- sections ---- */

static int check_block(const atp_car_reader *r, const atp_cid *cid, atp_slice data, size_t at,
                       bool *verified, atp_err *err)
{
    if (data.len > r->lim.max_block) {
        return atp_err_set(err, ATP_ELIMIT, at, "CAR block of %zu bytes over the %zu limit",
                           data.len, r->lim.max_block);
    }
    if (atp_cid_is_sha256(cid)) {
        if (!atp_cid_matches(cid, data)) {
            return atp_err_set(err, ATP_EHASH, at, "CAR block does not match its CID");
        }
        *verified = true;
        return 0;
    }
    if (!(r->flags & ATP_CAR_ALLOW_UNVERIFIED)) {
        return atp_err_set(err, ATP_EINVAL, at, "CAR block CID is not sha2-256: cannot verify");
    }
    *verified = false;
    return 0;
}

static int finish_block(atp_car_reader *r, atp_slice body, atp_car_block *blk, atp_err *err)
{
    size_t at = (size_t)r->item_off, body_at = (size_t)(r->off - body.len), used = 0;
    atp_cid cid;
    atp_err e;
    bool verified = false;
    int rc = atp_cid_decode(body, 0, &cid, &used, &e);
    if (rc < 0) {
        /* The section is complete, so a CID running past it is invalid, not truncated. */
        return atp_err_set(err, rc == ATP_ETRUNC ? ATP_EINVAL : rc, body_at + e.off,
                           "CAR section CID: %s", e.msg);
    }
    atp_slice data = atp_slice_sub(body, used, body.len - used);
    rc = check_block(r, &cid, data, at, &verified, err);
    if (rc < 0) {
        return rc;
    }
    blk->cid = cid;
    blk->data = data;
    blk->verified = verified;
    blk->offset = r->item_off;
    r->blocks++;
    r->state = ST_SEC_LEN;
    return ATP_CAR_BLOCK;
}

/* ---- the state machine ---- */

static int step(atp_car_reader *r, atp_slice *in, atp_car_block *blk, atp_err *err)
{
    for (;;) {
        uint64_t len = 0;
        atp_slice body;
        int rc;
        switch (r->state) {
        case ST_HDR_LEN:
        case ST_SEC_LEN:
            if ((rc = read_len(r, in, &len, err)) != 0 || (rc = start_body(r, len, err)) != 0) {
                return rc;
            }
            break;
        case ST_HDR:
            if ((rc = gather(r, in, &body, err)) != 0) {
                return rc;
            }
            return finish_header(r, body, err);
        case ST_SEC:
            if ((rc = gather(r, in, &body, err)) != 0) {
                return rc;
            }
            return finish_block(r, body, blk, err);
        }
    }
}

int atp_car_reader_next(atp_car_reader *r, atp_slice in, size_t *consumed, atp_car_block *blk,
                        atp_err *err)
{
    size_t start = in.len;
    *consumed = 0;
    if (r->err) {
        if (err) {
            *err = r->err_info;
        }
        return r->err;
    }
    if (r->part_handed) {
        atp_buf_reset(&r->part);
        r->part_handed = false;
    }
    int rc = step(r, &in, blk, &r->err_info);
    *consumed = start - in.len;
    if (rc < 0 && rc != ATP_EAGAIN) {
        r->err = rc;
        r->err_info.code = rc;
    }
    if (err && rc < 0 && rc != ATP_EAGAIN) {
        *err = r->err_info;
    }
    return rc;
}

int atp_car_reader_finish(const atp_car_reader *r, atp_err *err)
{
    size_t pending = r->part_handed ? 0 : r->part.len;
    if (r->err) {
        if (err) {
            *err = r->err_info;
        }
        return r->err;
    }
    if (r->state == ST_SEC_LEN && pending == 0) {
        return 0;
    }
    return atp_err_set(err, ATP_ETRUNC, (size_t)r->off, "CAR ends inside the %s",
                       r->state <= ST_HDR ? "header" : "last section");
}

/* ---- whole-slice reader ---- */

int atp_car_mem_open(atp_car_mem *m, atp_slice car, const atp_car_limits *lim, unsigned flags,
                     atp_err *err)
{
    atp_car_reader *r = atp_car_reader_create(lim, flags);
    atp_car_block blk;
    size_t used = 0;
    int rc = atp_car_reader_next(r, car, &used, &blk, err);
    if (rc == ATP_EAGAIN) {
        rc = atp_car_reader_finish(r, err);
    }
    if (rc != ATP_CAR_HEADER) {
        atp_car_reader_destroy(r);
        return rc < 0 ? rc : atp_err_set(err, ATP_EINTERNAL, 0, "CAR header not first");
    }
    m->r = r;
    m->rest = atp_slice_sub(car, used, car.len - used);
    m->roots = atp_car_reader_roots(r, &m->n_roots);
    return 0;
}

int atp_car_mem_next(atp_car_mem *m, atp_car_block *blk, atp_err *err)
{
    size_t used = 0;
    if (m->rest.len == 0) {
        return atp_car_reader_finish(m->r, err);
    }
    int rc = atp_car_reader_next(m->r, m->rest, &used, blk, err);
    m->rest = atp_slice_sub(m->rest, used, m->rest.len - used);
    /* All the input is here: needing more means the CAR is cut short. */
    return rc == ATP_EAGAIN ? atp_car_reader_finish(m->r, err) : rc;
}

void atp_car_mem_close(atp_car_mem *m)
{
    atp_car_reader_destroy(m->r);
    m->r = NULL;
    m->roots = NULL;
    m->n_roots = 0;
    m->rest = atp_slice_make(NULL, 0);
}

/* ---- writer ---- */

void atp_car_writer_init_buf(atp_car_writer *w, atp_buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
}

void atp_car_writer_init_fn(atp_car_writer *w, atp_car_write_fn fn, void *ctx)
{
    memset(w, 0, sizeof *w);
    w->fn = fn;
    w->ctx = ctx;
}

uint64_t atp_car_writer_written(const atp_car_writer *w)
{
    return w->written;
}

static int emit(atp_car_writer *w, atp_slice s)
{
    if (w->err || s.len == 0) {
        return w->err;
    }
    if (w->fn) {
        int rc = w->fn(w->ctx, s);
        if (rc != 0) {
            w->err = rc < 0 ? rc : ATP_EIO;
            return w->err;
        }
    } else {
        atp_buf_append_slice(w->out, s);
        if (w->out->err) {
            w->err = w->out->err;
            return w->err;
        }
    }
    w->written += s.len;
    return 0;
}

/* The header is built in a temporary buffer (it needs its length up front); it is small: about
 * 41 bytes per root. */
int atp_car_write_header(atp_car_writer *w, const atp_cid *roots, size_t n_roots)
{
    atp_buf h;
    uint8_t pre[ATP_VARINT_MAX_BYTES + 1];
    if (w->err) {
        return w->err;
    }
    if (w->header_done) {
        return w->err = ATP_EINVAL;
    }
    atp_buf_init(&h, 0);
    atp_cbor_put_map(&h, 2);
    atp_cbor_put_cstr(&h, "roots");
    atp_cbor_put_array(&h, n_roots);
    for (size_t i = 0; i < n_roots; i++) {
        atp_cbor_put_link(&h, &roots[i]);
    }
    atp_cbor_put_cstr(&h, "version");
    atp_cbor_put_int(&h, 1);
    int rc = h.err;
    if (rc == 0 && (rc = emit(w, atp_slice_make(pre, atp_varint_encode(h.len, pre)))) == 0) {
        rc = emit(w, atp_buf_slice(&h));
    }
    atp_buf_release(&h);
    w->header_done = rc == 0;
    if (rc < 0) {
        w->err = rc;
    }
    return rc;
}

int atp_car_write_block(atp_car_writer *w, const atp_cid *cid, atp_slice data)
{
    uint8_t pre[ATP_VARINT_MAX_BYTES + 1 + ATP_CID_MAX];
    if (w->err) {
        return w->err;
    }
    if (!w->header_done || cid->len == 0 || cid->len > ATP_CID_MAX) {
        return w->err = ATP_EINVAL;
    }
    /* Prefix and CID go out together; the data is passed through as is. */
    size_t n = atp_varint_encode((uint64_t)cid->len + data.len, pre);
    memcpy(pre + n, cid->bytes, cid->len);
    int rc = emit(w, atp_slice_make(pre, n + cid->len));
    return rc ? rc : emit(w, data);
}

int atp_car_write_data(atp_car_writer *w, unsigned codec, atp_slice data, atp_cid *cid_out)
{
    atp_cid c;
    atp_cid_compute(&c, codec, data);
    int rc = atp_car_write_block(w, &c, data);
    if (rc == 0 && cid_out) {
        *cid_out = c;
    }
    return rc;
}

/* cbor_encode.c: canonical DAG-CBOR output, from a tree or through the low-level writers.
 *
 * Everything goes through atp_cbor_put_head, which always picks the shortest head, so the
 * only canonical-form rules left to the tree encoder are map key order and UTF-8; a tree that
 * breaks them sets out->err = ATP_EINVAL (sticky, like every other buffer error).
 */
#include "atp/cbor.h"

#include <string.h>

void atp_cbor_put_head(atp_buf *b, unsigned major, uint64_t arg)
{
    uint8_t tmp[9];
    size_t n;
    uint8_t m = (uint8_t)(major << 5);
    if (arg < 24) {
        tmp[0] = (uint8_t)(m | arg);
        n = 1;
    } else {
        size_t w = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffull ? 4 : 8;
        /* Additional info 24..27 stands for 1, 2, 4, 8 argument bytes. */
        tmp[0] = (uint8_t)(m | (w == 1 ? 24 : w == 2 ? 25 : w == 4 ? 26 : 27));
        for (size_t i = 0; i < w; i++) {
            tmp[w - i] = (uint8_t)(arg >> (8 * i));
        }
        n = w + 1;
    }
    atp_buf_append(b, tmp, n);
}

void atp_cbor_put_int(atp_buf *b, int64_t i)
{
    if (i >= 0) {
        atp_cbor_put_head(b, 0, (uint64_t)i);
    } else {
        /* -1 - i without overflow: for i = INT64_MIN this is INT64_MAX. */
        atp_cbor_put_head(b, 1, (uint64_t)(-(i + 1)));
    }
}

void atp_cbor_put_text(atp_buf *b, atp_slice s)
{
    atp_cbor_put_head(b, 3, s.len);
    atp_buf_append(b, s.ptr, s.len);
}

void atp_cbor_put_cstr(atp_buf *b, const char *s)
{
    atp_cbor_put_text(b, atp_slice_str(s));
}

void atp_cbor_put_bytes(atp_buf *b, atp_slice s)
{
    atp_cbor_put_head(b, 2, s.len);
    atp_buf_append(b, s.ptr, s.len);
}

static void put_link_bytes(atp_buf *b, atp_slice cid)
{
    static const uint8_t tag42[2] = {0xd8, 0x2a};
    atp_buf_append(b, tag42, 2);
    atp_cbor_put_head(b, 2, (uint64_t)cid.len + 1);
    atp_buf_append_byte(b, 0x00);
    atp_buf_append(b, cid.ptr, cid.len);
}

void atp_cbor_put_link(atp_buf *b, const atp_cid *c)
{
    put_link_bytes(b, atp_cid_slice(c));
}

void atp_cbor_put_bool(atp_buf *b, bool v)
{
    atp_buf_append_byte(b, v ? 0xf5 : 0xf4);
}

void atp_cbor_put_null(atp_buf *b)
{
    atp_buf_append_byte(b, 0xf6);
}

void atp_cbor_put_array(atp_buf *b, size_t n)
{
    atp_cbor_put_head(b, 4, n);
}

void atp_cbor_put_map(atp_buf *b, size_t n)
{
    atp_cbor_put_head(b, 5, n);
}

/* ---- tree encoder ---- */

static void set_invalid(atp_buf *b)
{
    if (!b->err) {
        b->err = ATP_EINVAL;
    }
}

static void encode_value(atp_buf *b, const atp_cbor *v);

static void encode_map(atp_buf *b, const atp_cbor *v)
{
    const atp_cbor_pair *pairs = v->u.map.pairs;
    atp_cbor_put_map(b, v->u.map.n);
    for (size_t i = 0; i < v->u.map.n && !b->err; i++) {
        /* Strictly increasing keys: canonical order and no duplicates in one test. */
        if (i > 0 && atp_cbor_key_cmp(pairs[i - 1].key, pairs[i].key) >= 0) {
            set_invalid(b);
            return;
        }
        if (!atp_cbor_is_utf8(pairs[i].key)) {
            set_invalid(b);
            return;
        }
        atp_cbor_put_text(b, pairs[i].key);
        encode_value(b, &pairs[i].val);
    }
}

static void encode_value(atp_buf *b, const atp_cbor *v)
{
    switch (v->type) {
    case ATP_CBOR_NULL:
        atp_cbor_put_null(b);
        break;
    case ATP_CBOR_BOOL:
        atp_cbor_put_bool(b, v->u.b);
        break;
    case ATP_CBOR_INT:
        atp_cbor_put_int(b, v->u.i);
        break;
    case ATP_CBOR_STRING:
        if (!atp_cbor_is_utf8(v->u.str)) {
            set_invalid(b);
            return;
        }
        atp_cbor_put_text(b, v->u.str);
        break;
    case ATP_CBOR_BYTES:
        atp_cbor_put_bytes(b, v->u.str);
        break;
    case ATP_CBOR_LINK:
        /* An empty or oversized link could never be decoded back. */
        if (v->u.link.len == 0 || v->u.link.len > ATP_CID_MAX) {
            set_invalid(b);
            return;
        }
        put_link_bytes(b, v->u.link);
        break;
    case ATP_CBOR_ARRAY:
        atp_cbor_put_array(b, v->u.arr.n);
        for (size_t i = 0; i < v->u.arr.n && !b->err; i++) {
            encode_value(b, &v->u.arr.items[i]);
        }
        break;
    case ATP_CBOR_MAP:
        encode_map(b, v);
        break;
    default:
        set_invalid(b);
        break;
    }
}

void atp_cbor_encode(atp_buf *out, const atp_cbor *v)
{
    encode_value(out, v);
}

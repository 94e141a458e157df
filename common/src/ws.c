/* ws.c: RFC 6455 frame codec, message reassembly, close payloads, handshake accept value.
 *
 * The head parser checks each byte as soon as it is present, so a prefix of a bad head fails
 * the same way the whole head does; the stream parser gathers heads byte by byte for that
 * reason too (a head is at most 14 bytes, so this costs nothing that matters). */
#include "atp/ws.h"

#include <string.h>

#include <openssl/sha.h>

#include "atp/multibase.h"

static bool is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static bool opcode_known(uint8_t op)
{
    return op == ATP_WS_CONT || op == ATP_WS_TEXT || op == ATP_WS_BINARY || op == ATP_WS_CLOSE ||
           op == ATP_WS_PING || op == ATP_WS_PONG;
}

static int check_b0(uint8_t b0, atp_err *err)
{
    uint8_t op = b0 & 0x0f;
    if (b0 & 0x70) {
        return atp_err_set(err, ATP_EINVAL, 0, "reserved bits set");
    }
    if (!opcode_known(op)) {
        return atp_err_set(err, ATP_EINVAL, 0, "unknown opcode %u", op);
    }
    if (is_control(op) && !(b0 & 0x80)) {
        return atp_err_set(err, ATP_EINVAL, 0, "fragmented control frame");
    }
    return 0;
}

static int check_b1(uint8_t b0, uint8_t b1, bool from_client, atp_err *err)
{
    bool masked = (b1 & 0x80) != 0;
    if (from_client && !masked) {
        return atp_err_set(err, ATP_EINVAL, 1, "client frame not masked");
    }
    if (!from_client && masked) {
        return atp_err_set(err, ATP_EINVAL, 1, "server frame masked");
    }
    if (is_control(b0 & 0x0f) && (b1 & 0x7f) > ATP_WS_CONTROL_MAX) {
        return atp_err_set(err, ATP_EINVAL, 1, "control frame longer than 125 bytes");
    }
    return 0;
}

int atp_ws_parse_head(atp_slice in, bool from_client, uint64_t max_len, atp_ws_head *out,
                      atp_err *err)
{
    atp_ws_head h;
    size_t ext, need;
    int rc;
    if (in.len < 1) {
        return ATP_EAGAIN;
    }
    rc = check_b0(in.ptr[0], err);
    if (rc < 0 || in.len < 2) {
        return rc < 0 ? rc : ATP_EAGAIN;
    }
    rc = check_b1(in.ptr[0], in.ptr[1], from_client, err);
    if (rc < 0) {
        return rc;
    }
    h.fin = (in.ptr[0] & 0x80) != 0;
    h.opcode = in.ptr[0] & 0x0f;
    h.masked = (in.ptr[1] & 0x80) != 0;
    h.len = in.ptr[1] & 0x7f;
    ext = h.len == 126 ? 2 : h.len == 127 ? 8 : 0;
    need = 2 + ext + (h.masked ? 4 : 0);
    if (ext == 8 && in.len > 2 && (in.ptr[2] & 0x80)) {
        return atp_err_set(err, ATP_EINVAL, 2, "64-bit length with the top bit set");
    }
    if (in.len < need) {
        return ATP_EAGAIN;
    }
    if (ext) {
        h.len = 0;
        for (size_t i = 0; i < ext; i++) {
            h.len = (h.len << 8) | in.ptr[2 + i];
        }
    }
    if (h.len > max_len) {
        return atp_err_set(err, ATP_ELIMIT, 1, "frame payload of %llu bytes over the limit",
                           (unsigned long long)h.len);
    }
    memset(h.mask, 0, sizeof h.mask);
    if (h.masked) {
        memcpy(h.mask, in.ptr + 2 + ext, 4);
    }
    h.head_len = need;
    *out = h;
    return (int)need;
}

void atp_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++) {
        data[i] ^= key[(offset + i) & 3];
    }
}

size_t atp_ws_head_encode(uint8_t out[ATP_WS_HEAD_MAX], uint8_t opcode, bool fin, uint64_t len,
                          const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    out[1] = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] |= (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] |= 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] |= 127;
        for (int i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void atp_ws_encode(atp_buf *out, uint8_t opcode, bool fin, atp_slice payload)
{
    uint8_t head[ATP_WS_HEAD_MAX];
    if (is_control(opcode) && (payload.len > ATP_WS_CONTROL_MAX || !fin)) {
        out->err = out->err ? out->err : ATP_EINVAL;
        return;
    }
    atp_buf_append(out, head, atp_ws_head_encode(head, opcode, fin, payload.len, NULL));
    atp_buf_append_slice(out, payload);
}

void atp_ws_encode_close(atp_buf *out, uint16_t code, atp_slice reason)
{
    uint8_t p[ATP_WS_CONTROL_MAX];
    size_t n = reason.len;
    if (code == 0) {
        atp_ws_encode(out, ATP_WS_CLOSE, true, atp_slice_make(NULL, 0));
        return;
    }
    if (n > ATP_WS_CONTROL_MAX - 2) {
        n = ATP_WS_CONTROL_MAX - 2;
        /* Cut before a continuation byte so the reason stays valid UTF-8. */
        while (n > 0 && (reason.ptr[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (n) {
        memcpy(p + 2, reason.ptr, n);
    }
    atp_ws_encode(out, ATP_WS_CLOSE, true, atp_slice_make(p, n + 2));
}

static bool close_code_ok(unsigned c)
{
    if (c >= 3000 && c <= 4999) {
        return true;
    }
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014);
}

int atp_ws_parse_close(atp_slice payload, uint16_t *code, atp_slice *reason, atp_err *err)
{
    unsigned c;
    atp_slice r;
    if (payload.len == 0) {
        *code = ATP_WS_NO_STATUS;
        *reason = payload;
        return 0;
    }
    if (payload.len == 1) {
        return atp_err_set(err, ATP_EINVAL, 0, "one-byte close payload");
    }
    c = (unsigned)payload.ptr[0] << 8 | payload.ptr[1];
    if (!close_code_ok(c)) {
        return atp_err_set(err, ATP_EINVAL, 0, "close code %u may not be sent", c);
    }
    r = atp_slice_sub(payload, 2, payload.len);
    if (!atp_ws_is_utf8(r)) {
        return atp_err_set(err, ATP_EINVAL, 2, "close reason is not UTF-8");
    }
    *code = (uint16_t)c;
    *reason = r;
    return 0;
}

/* Length of the UTF-8 sequence at s[i..], or 0 if it is malformed. */
static size_t utf8_seq(const uint8_t *s, size_t left)
{
    uint8_t c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    }
    if (c < 0xc2 || c > 0xf4) {
        return 0;
    }
    n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (left < n) {
        return 0;
    }
    cp = c & (0x3f >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

bool atp_ws_is_utf8(atp_slice s)
{
    size_t i = 0;
    while (i < s.len) {
        size_t n = utf8_seq(s.ptr + i, s.len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

int atp_ws_accept_key(atp_slice key, char out[ATP_WS_ACCEPT_LEN + 1], atp_err *err)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t raw[20], cat[24 + sizeof guid], digest[SHA_DIGEST_LENGTH];
    size_t n = 0;
    atp_buf b;
    if (key.len != 24 || atp_base_decode(ATP_BASE64, key, raw, sizeof raw, &n, NULL) < 0 ||
        n != 16) {
        return atp_err_set(err, ATP_EINVAL, 0, "Sec-WebSocket-Key is not base64 of 16 bytes");
    }
    memcpy(cat, key.ptr, 24);
    memcpy(cat + 24, guid, sizeof guid - 1);
    SHA1(cat, 24 + sizeof guid - 1, digest);
    atp_buf_init(&b, 64);
    atp_base_encode(&b, ATP_BASE64, atp_slice_make(digest, sizeof digest));
    /* The multibase encoder never pads; 20 bytes need one '='. */
    atp_buf_append_byte(&b, '=');
    if (b.err || b.len != ATP_WS_ACCEPT_LEN) {
        atp_buf_release(&b);
        return atp_err_set(err, ATP_EINTERNAL, 0, "base64 encoding failed");
    }
    memcpy(out, b.ptr, ATP_WS_ACCEPT_LEN);
    out[ATP_WS_ACCEPT_LEN] = '\0';
    atp_buf_release(&b);
    return 0;
}

/* ---- stream parser ---- */

void atp_ws_parser_init(atp_ws_parser *p, bool from_client, const atp_ws_limits *lim)
{
    memset(p, 0, sizeof *p);
    p->lim = *lim;
    p->from_client = from_client;
    atp_buf_init(&p->msg, lim->max_message ? lim->max_message : 1);
}

void atp_ws_parser_release(atp_ws_parser *p)
{
    atp_buf_release(&p->msg);
}

static int fail(atp_ws_parser *p, int rc, uint16_t code)
{
    p->fail_code = code;
    return rc;
}

/* A frame head was parsed: check it fits the message sequence. */
static int start_frame(atp_ws_parser *p, atp_err *err)
{
    const atp_ws_head *h = &p->head;
    if (h->opcode == ATP_WS_CONT && p->msg_opcode == 0) {
        return fail(p, atp_err_set(err, ATP_EINVAL, 0, "continuation without a message"),
                    ATP_WS_PROTOCOL_ERROR);
    }
    if ((h->opcode == ATP_WS_TEXT || h->opcode == ATP_WS_BINARY) && p->msg_opcode != 0) {
        return fail(p, atp_err_set(err, ATP_EINVAL, 0, "new message inside a fragmented one"),
                    ATP_WS_PROTOCOL_ERROR);
    }
    if (!is_control(h->opcode) && h->len > p->lim.max_message - p->msg.len) {
        return fail(p, atp_err_set(err, ATP_ELIMIT, 0, "message over %zu bytes", p->lim.max_message),
                    ATP_WS_TOO_BIG);
    }
    if (h->opcode == ATP_WS_TEXT || h->opcode == ATP_WS_BINARY) {
        p->msg_opcode = h->opcode;
    }
    p->in_payload = true;
    p->got = 0;
    return 0;
}

static int feed_head_byte(atp_ws_parser *p, uint8_t b, atp_err *err)
{
    int rc;
    p->hbuf[p->hlen++] = b;
    rc = atp_ws_parse_head(atp_slice_make(p->hbuf, p->hlen), p->from_client, p->lim.max_message,
                           &p->head, err);
    if (rc == ATP_EAGAIN) {
        return 0;
    }
    if (rc < 0) {
        return fail(p, rc, rc == ATP_ELIMIT ? ATP_WS_TOO_BIG : ATP_WS_PROTOCOL_ERROR);
    }
    return start_frame(p, err);
}

/* Copies (and unmasks) payload bytes; returns how many were taken. */
static size_t feed_payload(atp_ws_parser *p, atp_slice in)
{
    uint64_t left = p->head.len - p->got;
    size_t n = in.len < left ? in.len : (size_t)left;
    uint8_t *dst;
    if (is_control(p->head.opcode)) {
        dst = p->ctl + p->got;
        memcpy(dst, in.ptr, n);
    } else {
        /* start_frame checked the message limit, so this cannot fail. */
        dst = atp_buf_reserve(&p->msg, n);
        if (!dst) {
            return 0;
        }
        memcpy(dst, in.ptr, n);
        atp_buf_commit(&p->msg, n);
    }
    if (p->head.masked) {
        atp_ws_mask(dst, n, p->head.mask, p->got);
    }
    p->got += n;
    return n;
}

/* The current frame is complete. Returns 1 if it yields an event. */
static int end_frame(atp_ws_parser *p, atp_ws_event *ev, atp_err *err)
{
    uint8_t op = p->head.opcode;
    atp_slice ctl = atp_slice_make(p->ctl, (size_t)p->got);
    p->in_payload = false;
    p->hlen = 0;
    if (is_control(op)) {
        memset(ev, 0, sizeof *ev);
        ev->opcode = op;
        ev->data = ctl;
        if (op == ATP_WS_CLOSE && atp_ws_parse_close(ctl, &ev->code, &ev->reason, err) < 0) {
            return fail(p, ATP_EINVAL, ATP_WS_PROTOCOL_ERROR);
        }
        return 1;
    }
    if (!p->head.fin) {
        return 0;
    }
    if (p->msg_opcode == ATP_WS_TEXT && !atp_ws_is_utf8(atp_buf_slice(&p->msg))) {
        return fail(p, atp_err_set(err, ATP_EINVAL, 0, "text message is not UTF-8"),
                    ATP_WS_INVALID_DATA);
    }
    memset(ev, 0, sizeof *ev);
    ev->opcode = p->msg_opcode;
    ev->data = atp_buf_slice(&p->msg);
    p->msg_opcode = 0;
    p->delivered = true;
    return 1;
}

int atp_ws_parser_feed(atp_ws_parser *p, atp_slice in, size_t *used, atp_ws_event *ev,
                       atp_err *err)
{
    size_t i = 0;
    if (p->delivered) {
        atp_buf_reset(&p->msg);
        p->delivered = false;
    }
    while (i < in.len) {
        int rc;
        if (!p->in_payload) {
            rc = feed_head_byte(p, in.ptr[i++], err);
            if (rc < 0) {
                return rc;
            }
        } else if (p->got < p->head.len) {
            i += feed_payload(p, atp_slice_make(in.ptr + i, in.len - i));
        }
        if (p->in_payload && p->got == p->head.len) {
            rc = end_frame(p, ev, err);
            if (rc < 0) {
                return rc;
            }
            if (rc == 1) {
                *used = i;
                return 0;
            }
        }
    }
    *used = i;
    return ATP_EAGAIN;
}

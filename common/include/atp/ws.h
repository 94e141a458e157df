/* atp/ws.h: RFC 6455 WebSocket codec, pure (no I/O, no globals).
 *
 * - Frame heads: parse with the direction's masking rule, encode server (unmasked) or client
 *   (masked) heads; no extension is ever negotiated, so RSV1-3 must be zero.
 * - A stream parser (atp_ws_parser) that takes bytes as they arrive and yields whole messages
 *   (fragments reassembled under a size limit, text checked as UTF-8) and control frames.
 * - Close payloads, the Sec-WebSocket-Accept value, and a UTF-8 validator.
 */
#ifndef ATP_WS_H
#define ATP_WS_H

#include <stdbool.h>
#include <stdint.h>

#include "atp/buf.h"

enum atp_ws_opcode {
    ATP_WS_CONT = 0x0,
    ATP_WS_TEXT = 0x1,
    ATP_WS_BINARY = 0x2,
    ATP_WS_CLOSE = 0x8,
    ATP_WS_PING = 0x9,
    ATP_WS_PONG = 0xA,
};

/* Close codes used by the server (RFC 6455 §7.4.1). */
enum atp_ws_close_code {
    ATP_WS_NORMAL = 1000,
    ATP_WS_GOING_AWAY = 1001,
    ATP_WS_PROTOCOL_ERROR = 1002,
    ATP_WS_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    ATP_WS_ABNORMAL = 1006,  /* never sent: "no close frame at all" */
    ATP_WS_INVALID_DATA = 1007,
    ATP_WS_POLICY = 1008,
    ATP_WS_TOO_BIG = 1009,
    ATP_WS_INTERNAL = 1011,
};

/* Longest frame head: 2 + 8 (length) + 4 (mask). */
#define ATP_WS_HEAD_MAX 14
/* Longest control payload, and so close reason (125 - 2). */
#define ATP_WS_CONTROL_MAX 125
/* Sec-WebSocket-Accept is 28 base64 characters; +1 for the NUL. */
#define ATP_WS_ACCEPT_LEN 28

typedef struct atp_ws_head {
    bool fin;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t len;    /* payload length */
    size_t head_len; /* 2..14 */
} atp_ws_head;

/* Parses a frame head at the start of `in`. `from_client`: client frames must be masked,
 * server frames must not (ATP_EINVAL otherwise). Refused: non-zero RSV bits, unknown opcodes,
 * fragmented or > 125-byte control frames, a 64-bit length with the top bit set (ATP_EINVAL);
 * a payload longer than `max_len` (ATP_ELIMIT). Lengths need not use the shortest form.
 * Returns the head length, or ATP_EAGAIN if `in` is a valid prefix. *out written on success. */
ATP_NODISCARD int atp_ws_parse_head(atp_slice in, bool from_client, uint64_t max_len,
                                    atp_ws_head *out, atp_err *err);

/* XORs data[0..len) with the mask, `offset` being the position of data[0] in the payload
 * (so a payload can be unmasked piecewise). Masking and unmasking are the same operation. */
void atp_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset);

/* Encodes a frame head into out[ATP_WS_HEAD_MAX], shortest length form; a non-NULL `mask`
 * makes a masked (client) head. Returns the head length. */
size_t atp_ws_head_encode(uint8_t out[ATP_WS_HEAD_MAX], uint8_t opcode, bool fin, uint64_t len,
                          const uint8_t *mask);

/* Appends a whole unmasked (server → client) frame. Control frames longer than 125 bytes
 * set out->err = ATP_EINVAL. */
void atp_ws_encode(atp_buf *out, uint8_t opcode, bool fin, atp_slice payload);

/* Appends a close frame with `code` and `reason`, the reason cut to 123 bytes at a UTF-8
 * character boundary. code 0 sends an empty close payload. */
void atp_ws_encode_close(atp_buf *out, uint16_t code, atp_slice reason);

/* Parses a close payload: empty gives ATP_WS_NO_STATUS and an empty reason; one byte, a code
 * that may not be sent (< 1000, 1004-1006, 1015, 1016-2999, >= 5000) or a reason that is not
 * UTF-8 is ATP_EINVAL. *code and *reason (borrowing `payload`) written on success. */
ATP_NODISCARD int atp_ws_parse_close(atp_slice payload, uint16_t *code, atp_slice *reason,
                                     atp_err *err);

/* True if `s` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool atp_ws_is_utf8(atp_slice s);

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key ++ GUID)), written
 * NUL-terminated into out. The key must be base64 of exactly 16 bytes (RFC 6455 §4.2.1),
 * surrounding OWS already trimmed, else ATP_EINVAL. */
ATP_NODISCARD int atp_ws_accept_key(atp_slice key, char out[ATP_WS_ACCEPT_LEN + 1],
                                    atp_err *err);

/* ---- stream parser ---- */

typedef struct atp_ws_limits {
    size_t max_message; /* reassembled data message bytes (also caps any single frame) */
} atp_ws_limits;

typedef struct atp_ws_event {
    uint8_t opcode;     /* ATP_WS_TEXT, _BINARY (whole message), _PING, _PONG, _CLOSE */
    atp_slice data;     /* payload; borrowed from the parser until its next feed/release */
    uint16_t code;      /* ATP_WS_CLOSE: the peer's code (ATP_WS_NO_STATUS if none) */
    atp_slice reason;   /* ATP_WS_CLOSE: the peer's reason */
} atp_ws_event;

/* A stream parser; the caller owns the struct (init/release). */
typedef struct atp_ws_parser {
    atp_ws_limits lim;
    bool from_client;
    uint8_t hbuf[ATP_WS_HEAD_MAX]; /* head bytes gathered so far */
    size_t hlen;
    bool in_payload; /* head parsed, reading its payload */
    atp_ws_head head;
    uint64_t got;                        /* payload bytes of the current frame read */
    uint8_t ctl[ATP_WS_CONTROL_MAX];     /* control frame payload */
    atp_buf msg;                         /* data message being reassembled */
    uint8_t msg_opcode;                  /* 0 while no data message is open */
    bool delivered;                      /* msg was handed out: reset on next feed */
    uint16_t fail_code;                  /* close code to send after an error */
} atp_ws_parser;

void atp_ws_parser_init(atp_ws_parser *p, bool from_client, const atp_ws_limits *lim);
void atp_ws_parser_release(atp_ws_parser *p);

/* Consumes bytes of `in` up to the end of the next message or control frame. Returns 0 with
 * *ev filled and *used = bytes consumed (the rest is for the next call); ATP_EAGAIN when all
 * of `in` was consumed (*used == in.len) without completing one; on a protocol error a
 * negative code, with p->fail_code set to the close code to answer: ATP_WS_PROTOCOL_ERROR
 * (bad head, continuation without a message, a new data frame inside a fragmented one, bad
 * close payload), ATP_WS_TOO_BIG (ATP_ELIMIT: message over max_message) or
 * ATP_WS_INVALID_DATA (text not UTF-8). After an error the parser must not be fed again. */
ATP_NODISCARD int atp_ws_parser_feed(atp_ws_parser *p, atp_slice in, size_t *used,
                                     atp_ws_event *ev, atp_err *err);

#endif

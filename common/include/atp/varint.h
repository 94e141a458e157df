/* atp/varint.h: unsigned LEB128 varints (multiformats "unsigned-varint"): at most 9 bytes,
 * 63 bits, shortest form only. */
#ifndef ATP_VARINT_H
#define ATP_VARINT_H

#include "atp/buf.h"

#define ATP_VARINT_MAX_BYTES 9

/* Decodes one varint at the start of `in`. On success writes the value and the number of bytes
 * used. Errors: ATP_ETRUNC (input ends inside the varint), ATP_EINVAL (non-shortest form, or
 * more than `max_bytes` (<= 9) bytes, or a value over 2^63-1). */
ATP_NODISCARD int atp_varint_decode(atp_slice in, size_t max_bytes, uint64_t *value,
                                    size_t *used, atp_err *err);

/* Writes the shortest encoding of `v` into `out` (at least ATP_VARINT_MAX_BYTES + 1 bytes);
 * returns the length. `v` must be < 2^63 (asserted). */
size_t atp_varint_encode(uint64_t v, uint8_t *out);

/* Appends the encoding of `v` to `b`. */
void atp_varint_append(atp_buf *b, uint64_t v);

/* Length of the encoding of `v`. */
size_t atp_varint_len(uint64_t v);

#endif

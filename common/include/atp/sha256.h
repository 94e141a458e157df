/* atp/sha256.h: SHA-256 (OpenSSL's implementation), one-shot and incremental. */
#ifndef ATP_SHA256_H
#define ATP_SHA256_H

#include "atp/buf.h"

#define ATP_SHA256_LEN 32

/* One-shot digest of `in` into out[32]. */
void atp_sha256(atp_slice in, uint8_t out[ATP_SHA256_LEN]);

/* Incremental hashing; the context is a value type the caller owns (no allocation). */
typedef struct atp_sha256_ctx {
    uint64_t opaque[16]; /* room for OpenSSL's SHA256_CTX (112 bytes) */
} atp_sha256_ctx;

void atp_sha256_init(atp_sha256_ctx *c);
void atp_sha256_update(atp_sha256_ctx *c, atp_slice in);
void atp_sha256_final(atp_sha256_ctx *c, uint8_t out[ATP_SHA256_LEN]);

#endif

/* sha256.c: SHA-256 through OpenSSL's low-level SHA256_* functions.
 *
 * Why not EVP: measured on this machine (OpenSSL 3.0, 200-byte input, the size of a typical
 * record), SHA256_Init/Update/Final took ~190 ns per digest, EVP with a reused EVP_MD_CTX ~580 ns
 * and one-shot EVP_Digest ~710 ns: EVP's per-call provider dispatch costs more than hashing the
 * data. The low-level context is also a plain struct, so it fits in atp_sha256_ctx with no
 * allocation, which EVP_MD_CTX (opaque, heap only) cannot. Both use the same assembly core, so
 * large inputs run at the same speed. The functions are deprecated in OpenSSL 3 but still
 * shipped: the deprecation warnings are silenced for this file only. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "atp/sha256.h"

#include <assert.h>
#include <openssl/sha.h>

static_assert(sizeof(SHA256_CTX) <= sizeof(atp_sha256_ctx), "SHA256_CTX must fit");
static_assert(_Alignof(SHA256_CTX) <= _Alignof(atp_sha256_ctx), "SHA256_CTX alignment");

static SHA256_CTX *ctx_of(atp_sha256_ctx *c)
{
    return (SHA256_CTX *)(void *)c->opaque;
}

void atp_sha256(atp_slice in, uint8_t out[ATP_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    /* An empty slice may carry a NULL ptr; OpenSSL is fine with length 0, but skip anyway. */
    if (in.len > 0) {
        SHA256_Update(&c, in.ptr, in.len);
    }
    SHA256_Final(out, &c);
}

void atp_sha256_init(atp_sha256_ctx *c)
{
    SHA256_Init(ctx_of(c));
}

void atp_sha256_update(atp_sha256_ctx *c, atp_slice in)
{
    if (in.len > 0) {
        SHA256_Update(ctx_of(c), in.ptr, in.len);
    }
}

void atp_sha256_final(atp_sha256_ctx *c, uint8_t out[ATP_SHA256_LEN])
{
    SHA256_Final(out, ctx_of(c));
}

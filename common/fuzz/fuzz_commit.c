/* fuzz_commit.c: strict commit decoding. Invariants: a commit that decodes re-encodes to
 * exactly the input bytes (the decoder accepts only the canonical form) and its fields pass
 * atp_commit_check_fields; the streamed hash of the unsigned form equals SHA-256 of its
 * encoding; verification against a fixed key answers 0, ATP_ESIG or ATP_EINVAL and nothing
 * else, and a signature re-made with that key verifies. */
#include <stdlib.h>
#include <string.h>

#include "atp/commit.h"
#include "atp/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The spec's example key (repository.md §3), so seeds built with it verify. */
static const char priv_hex[] = "780437017d08a32d28137c55e1e1a34e90c8908034bf4e9bafb764c15d0232f6";

static atp_key *fixed_key(void)
{
    static atp_key *k;
    if (!k && atp_key_import_private_hex(ATP_CURVE_K256, atp_slice_str(priv_hex), &k, NULL) != 0) {
        abort();
    }
    return k;
}

static void check_decoded(atp_slice in, atp_commit *c)
{
    atp_buf b;
    uint8_t h1[ATP_HASH_LEN], h2[ATP_HASH_LEN];
    int rc;
    atp_buf_init(&b, 0);
    atp_commit_encode(&b, c);
    if (b.err || b.len != in.len || memcmp(b.ptr, in.ptr, in.len) != 0) {
        abort(); /* decode accepted a form encode would not produce */
    }
    atp_buf_reset(&b);
    atp_commit_encode_unsigned(&b, c);
    atp_sha256(atp_buf_slice(&b), h1);
    atp_commit_hash_unsigned(c, h2);
    if (memcmp(h1, h2, sizeof h1) != 0 || atp_commit_check_fields(c, NULL) != 0) {
        abort();
    }
    atp_buf_release(&b);
    rc = atp_commit_verify(c, fixed_key(), NULL);
    if (rc != 0 && rc != ATP_ESIG && rc != ATP_EINVAL) {
        abort();
    }
    if (atp_commit_sign(c, fixed_key(), NULL) != 0 || atp_commit_verify(c, fixed_key(), NULL)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_arena *a = atp_arena_create(0);
    atp_commit c;
    atp_slice in = atp_slice_make(data, size);
    if (atp_commit_decode(a, in, &c, NULL) == 0) {
        check_decoded(in, &c);
    }
    atp_arena_destroy(a);
    return 0;
}

/* fuzz_didoc.c: DID document parsing on arbitrary bytes.
 *
 * Invariants checked (abort on violation):
 *  - parsing returns 0 or one of ATP_EINVAL, ATP_ELIMIT, ATP_EDEPTH, ATP_EUNSUPPORTED;
 *  - an accepted document's id is a DID, its claimed handle is a valid handle, and a present
 *    key round-trips through atp_didoc_key_get to the same did:key;
 *  - rebuilding the accepted view (atp_didoc_build) parses again to the same id, handle, signing
 *    key and PDS endpoint (the build/parse pair is idempotent on the atproto view). */
#include <stdlib.h>
#include <string.h>

#include "atp/didoc.h"
#include "atp/syntax.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_key(const atp_didoc_key *k)
{
    atp_key *key = NULL;
    if (!k->present) {
        return;
    }
    CHECK(atp_didoc_key_get(k, &key, NULL) == 0);
    atp_buf b;
    atp_buf_init(&b, 256);
    atp_didkey_encode(&b, key);
    CHECK(atp_slice_eq(atp_buf_slice(&b), k->didkey));
    atp_buf_release(&b);
    atp_key_destroy(key);
}

static void rebuild(atp_arena *a, const atp_didoc *d)
{
    atp_didoc_vm vm = {ATP_SLICE_LIT("atproto"), d->signing.didkey};
    atp_didoc_parts p = {d->id,       d->aka,       d->n_aka, &vm, d->signing.present ? 1u : 0u,
                         d->services, d->n_services};
    atp_buf b;
    atp_didoc again;
    atp_buf_init(&b, 1 << 22);
    atp_didoc_build(&b, &p, 0);
    CHECK(b.err == 0);
    atp_didoc_limits lim = {1 << 22, 1024};
    CHECK(atp_didoc_parse(a, atp_buf_slice(&b), d->id, &lim, &again, NULL) == 0);
    CHECK(atp_slice_eq(again.handle, d->handle));
    CHECK(again.signing.present == d->signing.present);
    CHECK(atp_slice_eq(again.signing.didkey, d->signing.didkey));
    CHECK(atp_slice_eq(again.pds, d->pds));
    CHECK(again.n_aka == d->n_aka);
    atp_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_arena *a = atp_arena_create(0);
    atp_didoc d;
    int rc = atp_didoc_parse(a, atp_slice_make(data, size), (atp_slice){NULL, 0}, NULL, &d, NULL);
    CHECK(rc == 0 || rc == ATP_EINVAL || rc == ATP_ELIMIT || rc == ATP_EDEPTH ||
          rc == ATP_EUNSUPPORTED);
    if (rc == 0) {
        CHECK(atp_syntax_is_did(d.id));
        CHECK(d.handle.len == 0 || atp_syntax_is_handle(d.handle));
        CHECK(d.pds.len == 0 || atp_didoc_is_service_url(d.pds));
        check_key(&d.signing);
        check_key(&d.labeler);
        rebuild(a, &d);
    }
    atp_arena_destroy(a);
    return 0;
}

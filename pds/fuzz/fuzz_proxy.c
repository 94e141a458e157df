/* fuzz_proxy: the atproto-proxy header parser and the XRPC path rules of pds/src/proxy.c.
 * Invariants: an accepted header is exactly did + "#" + id with a valid DID, a non-empty id of
 * printable ASCII without '#' or ' ' and within the limits; re-parsing did#id gives the same
 * parts (idempotence); a rejected header never writes the out-parameter and names an error.
 * An accepted XRPC path is "/xrpc/" + a valid NSID, and the NSID re-parses from it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "atp/syntax.h"

#include "proxy.h"

static void check_accepted(atp_slice v, const pds_proxy_target *t)
{
    pds_proxy_target again;
    atp_err err;
    if (t->did.ptr != v.ptr || t->did.len + 1 + t->id.len != v.len || v.ptr[t->did.len] != '#' ||
        t->id.ptr != v.ptr + t->did.len + 1) {
        abort();
    }
    if (t->id.len == 0 || t->id.len > PDS_PROXY_ID_MAX || !atp_syntax_is_did(t->did)) {
        abort();
    }
    for (size_t i = 0; i < t->id.len; i++) {
        if (t->id.ptr[i] == '#' || t->id.ptr[i] <= ' ' || t->id.ptr[i] > 0x7e) {
            abort();
        }
    }
    if (pds_proxy_parse_header(v, &again, &err) != 0 || !atp_slice_eq(again.did, t->did) ||
        !atp_slice_eq(again.id, t->id)) {
        abort();
    }
}

static void check_header(atp_slice v)
{
    pds_proxy_target t, sentinel;
    atp_err err;
    int rc;
    memset(&sentinel, 0xa5, sizeof sentinel);
    t = sentinel;
    atp_err_clear(&err);
    rc = pds_proxy_parse_header(v, &t, &err);
    if (rc == 0) {
        check_accepted(v, &t);
    } else if ((rc != ATP_EINVAL && rc != ATP_ELIMIT) || err.msg[0] == '\0' ||
               memcmp(&t, &sentinel, sizeof t) != 0) {
        abort();
    }
}

static void check_path(atp_slice p)
{
    atp_slice nsid;
    if (!pds_proxy_path_nsid(p, &nsid)) {
        return;
    }
    if (p.len < 6 || memcmp(p.ptr, "/xrpc/", 6) != 0 || nsid.ptr != p.ptr + 6 ||
        nsid.len != p.len - 6 || !atp_syntax_is_nsid(nsid)) {
        abort();
    }
    (void)pds_proxy_default_appview(nsid);
    (void)pds_proxy_is_protected(nsid);
    (void)pds_proxy_is_privileged(nsid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice v = atp_slice_make(data, size);
    check_header(v);
    check_path(v);
    return 0;
}

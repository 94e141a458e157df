/* pds/fuzz/fuzz_sync.c: the query parameters of com.atproto.sync.* (actor_store_sync.h).
 *
 * Input: byte 0 picks the parser (mod 4), the rest is the parameter value:
 *   0 listRepos cursor: an accepted cursor formats back to the same bytes and re-parses equal;
 *   1 createdAt <-> ms: an accepted timestamp maps to ms whose ISO form maps back to the same
 *     ms; any ms read from the input in range formats to a timestamp that parses back to it;
 *   2 getBlocks cids (values split on '&'): each accepted CID formats and re-parses equal;
 *   3 getRepo since: accepted exactly when the TID decoder accepts, and re-encodes unchanged.
 * Nothing is allocated from the input beyond fixed buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actor_store_sync.h"
#include "atp/tid.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void fuzz_cursor(atp_slice in)
{
    pds_sync_cursor c, c2;
    char buf[PDS_SYNC_CURSOR_MAX];
    if (pds_sync_cursor_parse(in, &c, NULL) != 0) {
        return;
    }
    check(c.ms >= 0 && c.did[0] != '\0');
    check(pds_sync_cursor_format(c.ms, atp_slice_str(c.did), buf, sizeof buf) == 0);
    check(pds_sync_cursor_parse(atp_slice_str(buf), &c2, NULL) == 0);
    check(c2.ms == c.ms && strcmp(c2.did, c.did) == 0);
    /* leading zeros are the only spelling the format does not keep */
    if (in.ptr[0] != '0' || in.ptr[1] == ':') {
        check(strlen(buf) == in.len && memcmp(buf, in.ptr, in.len) == 0);
    }
}

static void fuzz_time(atp_slice in)
{
    int64_t ms, ms2;
    char iso[32];
    if (pds_sync_iso_to_ms(in, &ms) == 0) {
        check(pds_sync_ms_to_iso(ms, iso) == 0);
        check(pds_sync_iso_to_ms(atp_slice_str(iso), &ms2) == 0 && ms2 == ms);
    }
    if (in.len >= 8) {
        uint64_t v;
        memcpy(&v, in.ptr, 8);
        ms = (int64_t)(v % UINT64_C(253402300800000));
        check(pds_sync_ms_to_iso(ms, iso) == 0);
        check(pds_sync_iso_to_ms(atp_slice_str(iso), &ms2) == 0 && ms2 == ms);
    }
}

static void fuzz_cids(atp_slice in)
{
    size_t start = 0;
    for (size_t i = 0; i <= in.len; i++) {
        if (i < in.len && in.ptr[i] != '&') {
            continue;
        }
        atp_cid c, c2;
        char s[ATP_CID_STR_MAX];
        if (pds_sync_parse_cid(atp_slice_make(in.ptr + start, i - start), &c, NULL) == 0) {
            check(atp_cid_format_to(&c, s, sizeof s) > 0);
            check(pds_sync_parse_cid(atp_slice_str(s), &c2, NULL) == 0 && atp_cid_eq(&c, &c2));
        }
        start = i + 1;
    }
}

static void fuzz_since(atp_slice in)
{
    uint64_t micros;
    unsigned clock_id;
    char back[14];
    int ok = pds_sync_check_since(in, NULL) == 0;
    check(ok == (atp_tid_decode(in, &micros, &clock_id, NULL) == 0));
    if (ok) {
        atp_tid_encode(micros, clock_id, back);
        check(in.len == 13 && memcmp(back, in.ptr, 13) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) {
        return 0;
    }
    atp_slice in = atp_slice_make(data + 1, size - 1);
    switch (data[0] % 4) {
    case 0: fuzz_cursor(in); break;
    case 1: fuzz_time(in); break;
    case 2: fuzz_cids(in); break;
    default: fuzz_since(in); break;
    }
    return 0;
}

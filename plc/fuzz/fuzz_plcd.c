/* plc/fuzz/fuzz_plcd.c: the plc daemon's own parsers: request paths (/<did>/...) and export
 * timestamps. Invariants, not just "no crash":
 *  - a parsed timestamp formats to the fixed 24-byte form, which parses back to the same time;
 *  - a parsed path yields a DID with no control bytes that, re-escaped (":" as "%3A") with its
 *    suffix, parses back to the same DID and kind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_ts(atp_slice in)
{
    int64_t ms = 0, again = 0;
    char ts[PLC_TS_LEN + 1];
    if (plc_ts_parse(in, &ms) < 0) {
        return;
    }
    plc_ts_format(ms, ts);
    if (strlen(ts) != PLC_TS_LEN || plc_ts_parse(atp_slice_str(ts), &again) < 0 || again != ms) {
        abort();
    }
}

static const char *suffix(plc_path_kind k)
{
    static const char *const s[] = {"", "/data", "/log", "/log/last", "/log/audit"};
    return s[k];
}

static void check_path(atp_slice in)
{
    char did[PLC_DID_MAX], did2[PLC_DID_MAX], path[4 * PLC_DID_MAX];
    plc_path_kind kind, kind2;
    size_t n = 0;
    if (!plc_path_parse(in, did, &kind)) {
        return;
    }
    path[n++] = '/';
    for (const char *p = did; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == '/') {
            abort();
        }
        if (*p == ':') {
            memcpy(path + n, "%3A", 3);
            n += 3;
        } else {
            path[n++] = *p;
        }
    }
    memcpy(path + n, suffix(kind), strlen(suffix(kind)));
    n += strlen(suffix(kind));
    if (!plc_path_parse(atp_slice_make(path, n), did2, &kind2) || kind2 != kind ||
        strcmp(did, did2) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice in = atp_slice_make(data, size);
    check_ts(in);
    check_path(in);
    return 0;
}

/* fuzz_blob: the upload content sniffer and Content-Type normalizer (blobstore.h).
 * Invariants: the sniffer reads at most PDS_SNIFF_MAX bytes (a longer input sniffs as its
 * prefix) and is deterministic; a sniffed type is a valid MIME type that normalizes to
 * itself; normalization is idempotent and yields "type/subtype" within PDS_MIME_MAX;
 * choose() returns the sniffed type when there is one, else a normalized one. The first
 * byte splits the input: header text before the first NUL, bytes after it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blobstore.h"

static void check_mime(const char *m, size_t n)
{
    char again[PDS_MIME_MAX + 1];
    const char *slash = strchr(m, '/');
    if (n == 0 || n > PDS_MIME_MAX || strlen(m) != n || !slash || slash == m || !slash[1] ||
        strchr(slash + 1, '/')) {
        abort();
    }
    if (pds_blob_mime_normalize((atp_slice){(const uint8_t *)m, n}, again) != n ||
        strcmp(again, m) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    atp_slice header = {data, hlen};
    atp_slice bytes = {nul ? nul + 1 : data + size, nul ? size - hlen - 1 : 0};
    char out[PDS_MIME_MAX + 1];

    const char *s = pds_blob_sniff(bytes);
    if (s != pds_blob_sniff(bytes)) {
        abort();
    }
    if (bytes.len > PDS_SNIFF_MAX &&
        s != pds_blob_sniff((atp_slice){bytes.ptr, PDS_SNIFF_MAX})) {
        abort();
    }
    if (s) {
        check_mime(s, strlen(s));
    }
    size_t n = pds_blob_mime_normalize(header, out);
    if (n > 0) {
        check_mime(out, n);
    } else if (out[0] != '\0') {
        abort();
    }
    size_t c = pds_blob_mime_choose(header, bytes, out);
    check_mime(out, c);
    if (s && strcmp(out, s) != 0) {
        abort();
    }
    return 0;
}

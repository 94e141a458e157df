/* fuzz_cid.c: binary CIDs that decode re-format and re-parse to the same CID; strings that
 * parse in strict base32 form re-format to exactly the input; blessed flags are consistent. */
#include <stdlib.h>
#include <string.h>

#include "atp/cid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_binary(atp_slice in, unsigned flags)
{
    atp_cid c, back;
    size_t used = 0, used2 = 0;
    char s[ATP_CID_STR_MAX];
    if (atp_cid_decode(in, flags, &c, &used, NULL) != 0) {
        return;
    }
    if (used != c.len || used > in.len || memcmp(c.bytes, in.ptr, used) != 0) {
        abort();
    }
    if ((flags & ATP_CID_BLESSED_ONLY) && !atp_cid_is_blessed(&c)) {
        abort();
    }
    if (atp_cid_decode(atp_cid_slice(&c), flags, &back, &used2, NULL) != 0 ||
        !atp_cid_eq(&c, &back)) {
        abort();
    }
    size_t n = atp_cid_format_to(&c, s, sizeof s);
    bool v0 = c.bytes[0] == 0x12;
    if (n == 0 || (!v0 && (atp_cid_parse(atp_slice_make(s, n), flags, &back, NULL) != 0 ||
                           !atp_cid_eq(&c, &back)))) {
        abort();
    }
}

static void check_string(atp_slice in, unsigned flags)
{
    atp_cid c, back;
    char s[ATP_CID_STR_MAX];
    if (atp_cid_parse(in, flags, &c, NULL) != 0) {
        return;
    }
    /* A v0 CID formats as 'b' + base32 of a bare multihash, which reads as CID version 0x12
     * and must be refused; everything else must parse back. */
    bool v0 = c.bytes[0] == 0x12;
    size_t n = atp_cid_format_to(&c, s, sizeof s);
    int rc = atp_cid_parse(atp_slice_make(s, n), flags & ~(unsigned)ATP_CID_ALLOW_V0, &back, NULL);
    if (n == 0 || rc != (v0 ? ATP_EINVAL : 0)) {
        abort();
    }
    if (in.ptr[0] == 'b' && (n != in.len || memcmp(s, in.ptr, n) != 0)) {
        abort();
    }
    if (!v0 && !atp_cid_eq(&c, &back)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atp_slice in = atp_slice_make(data, size);
    for (unsigned flags = 0; flags < 8; flags++) {
        check_binary(in, flags);
        check_string(in, flags);
    }
    return 0;
}

/* pds/src/blobstore.c: STUB until its engineer's module lands (the contract is its header). */
#include <stdlib.h>

#include "blobstore.h"

struct pds_blobstore {
    int unused;
};

int pds_blobstore_open(const pds_config *cfg, pds_blobstore **out, atp_err *err)
{
    (void)cfg, (void)err;
    *out = calloc(1, sizeof **out);
    return 0;
}
void pds_blobstore_close(pds_blobstore *bs)
{
    free(bs);
}
int pds_blobstore_delete_account(pds_blobstore *bs, const char *did, atp_err *err)
{
    (void)bs, (void)did, (void)err;
    return 0;
}

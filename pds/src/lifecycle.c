/* pds/src/lifecycle.c: STUB until its engineer's module lands (the contract is its header). */
#include "pds.h"

int pds_account_delete(pds_ctx *ctx, const char *did, atp_err *err)
{
    (void)ctx, (void)did;
    return atp_err_set(err, ATP_EINTERNAL, 0, "not yet");
}

void pds_routes_lifecycle(atp_server *s, pds_ctx *ctx)
{
    (void)s, (void)ctx;
}

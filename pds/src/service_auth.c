/* pds/src/service_auth.c: STUB until its engineer's module lands (the contract is its header). */
#include "service_auth.h"

int pds_service_jwt(pds_ctx *ctx, const char *did, const char *aud, const char *lxm, int64_t exp,
                    char *out, size_t cap, atp_err *err)
{
    (void)ctx, (void)did, (void)aud, (void)lxm, (void)exp, (void)out, (void)cap;
    return atp_err_set(err, ATP_EINTERNAL, 0, "not yet");
}

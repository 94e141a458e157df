/* pds/src/prefs.c: STUB until its engineer's module lands (the contract is its header). */
#include "pds.h"

void pds_routes_prefs(atp_server *s, pds_ctx *ctx)
{
    (void)s, (void)ctx;
}

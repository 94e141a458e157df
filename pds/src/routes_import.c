/* pds/src/routes_import.c: STUB until its engineer's module lands (the contract is its header). */
#include "pds.h"

void pds_routes_import(atp_server *s, pds_ctx *ctx)
{
    (void)s, (void)ctx;
}

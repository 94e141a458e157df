/* pds/src/crawlers.c: STUB until its engineer's module lands (the contract is its header). */
#include <stddef.h>

#include "crawlers.h"

int pds_crawlers_start(pds_ctx *ctx, pds_crawlers **out, atp_err *err)
{
    (void)ctx, (void)err;
    *out = NULL;
    return 0;
}
void pds_crawlers_poke(pds_crawlers *c)
{
    (void)c;
}
void pds_crawlers_stop(pds_crawlers *c)
{
    (void)c;
}

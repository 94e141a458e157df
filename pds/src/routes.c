/* pds/src/routes.c: every XRPC family of the daemon, registered in one place. */
#include "pds.h"
#include "sequencer.h"

void pds_routes_register(atp_server *s, pds_ctx *ctx)
{
    pds_routes_server(s, ctx);
    pds_routes_identity(s, ctx);
    pds_routes_repo(s, ctx);
    pds_routes_import(s, ctx);
    pds_routes_blob(s, ctx);
    pds_routes_sync(s, ctx);
    pds_routes_admin(s, ctx);
    pds_routes_prefs(s, ctx);
    pds_routes_lifecycle(s, ctx);
    pds_routes_firehose(s, ctx);
    pds_routes_proxy(s, ctx); /* last: it installs the fallback for what nothing else serves */
}

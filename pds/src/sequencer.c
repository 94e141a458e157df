/* pds/src/sequencer.c: STUB until its engineer's module lands (the contract is its header). */
#include <stdlib.h>

#include "sequencer.h"

struct pds_seq {
    int unused;
};

int pds_seq_open(pds_ctx *ctx, pds_seq **out, atp_err *err)
{
    (void)ctx, (void)err;
    *out = calloc(1, sizeof **out);
    return 0;
}
void pds_seq_attach(pds_seq *q, atp_server *srv)
{
    (void)q, (void)srv;
}
void pds_seq_close(pds_seq *q)
{
    free(q);
}
int pds_seq_commit_hook(void *pctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c, atp_err *err)
{
    (void)pctx, (void)db, (void)did, (void)c, (void)err;
    return 0;
}
void pds_seq_after_write(pds_seq *q, const char *did)
{
    (void)q, (void)did;
}
void pds_routes_firehose(atp_server *s, pds_ctx *ctx)
{
    (void)s, (void)ctx;
}
int pds_seq_identity(pds_seq *q, const char *did, const char *handle, atp_err *err)
{
    (void)q, (void)did, (void)handle, (void)err;
    return 0;
}
int pds_seq_account(pds_seq *q, const char *did, pds_status st, atp_err *err)
{
    (void)q, (void)did, (void)st, (void)err;
    return 0;
}
int pds_seq_set_status(pds_seq *q, const char *did, pds_status st, atp_err *err)
{
    (void)q, (void)did, (void)st, (void)err;
    return 0;
}

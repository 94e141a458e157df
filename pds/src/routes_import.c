/* pds/src/routes_import.c: com.atproto.repo.importRepo, the second step of an account
 * migration. The body is the account's whole repo as a CAR (at most cfg->max_import_size
 * bytes); it is verified completely (every block's hash, the tree, every record, the commit's
 * did and its signature by the DID's current #atproto key) and replaces the account's repo in
 * one transaction on its file together with its #sync event (actor_store_import.h). */
#include <string.h>

#include "actor_store_import.h"
#include "atp/didoc.h"
#include "atp/log.h"
#include "atp/resolve.h"
#include "db.h"
#include "pds.h"
#include "sequencer.h"

/* Inside the import's transaction: the #sync event goes to the file's outbox with it. */
static int sync_hook(void *ctx, sqlite3 *db, atp_slice did, const atp_cid *head, atp_slice block,
                     const char *rev, atp_err *err)
{
    (void)ctx;
    return pds_seq_outbox_sync(db, did, head, block, rev, err);
}

/* The key the imported commit must be signed with: the DID document's #atproto key (the old
 * PDS signed it); when the document cannot be had, the account's own key here (a repo this PDS
 * signed, e.g. re-imported). */
static int import_key(pds_ctx *ctx, const char *did, atp_key **out, atp_err *err)
{
    atp_arena *a = atp_arena_create(0);
    atp_didoc doc;
    int rc = atp_resolve_did(ctx->resolver, atp_slice_str(did), a, &doc, err);
    rc = rc ? rc : atp_didoc_key_get(&doc.signing, out, err);
    atp_arena_destroy(a);
    if (rc < 0) {
        atp_logf(ATP_LOG_WARN, "import", "no DID document key for %s (%s): using ours", did,
                 err->msg);
        rc = pds_account_signing_key(ctx, did, out);
    }
    return rc;
}

static void import_failed(atp_req *r, int rc, const atp_err *err)
{
    if (rc == ATP_EIO) {
        atp_req_error(r, ATP_EINTERNAL, "could not store the repository");
    } else if (rc == ATP_ESIG) {
        atp_req_error_status(r, 400, "InvalidRequest", "Invalid repo commit signature");
    } else {
        atp_req_error_status(r, 400, "InvalidRequest", err->msg[0] ? err->msg : "Invalid CAR");
    }
}

static void import_repo(atp_req *r, void *ud)
{
    pds_ctx *ctx = ud;
    pds_auth au;
    pds_account acct;
    atp_slice car = atp_req_body(r);
    atp_key *key = NULL;
    pds_import_result res;
    atp_err err;
    atp_err_clear(&err);
    if (pds_auth_access_full(ctx, r, &au) < 0) {
        return;
    }
    if (car.len > ctx->cfg->max_import_size) {
        atp_req_error_status(r, 413, "PayloadTooLarge", "repo CAR too large");
        return;
    }
    if (!ctx->actors || pds_db_account_get(ctx->db, au.did, &acct) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "account not found");
        return;
    }
    if (import_key(ctx, au.did, &key, &err) < 0) {
        atp_req_error_status(r, 400, "InvalidRequest", "no signing key known for the account");
        return;
    }
    int rc = pds_actor_store_import(ctx->actors, atp_slice_str(au.did), car, key, sync_hook, NULL,
                                    &res, &err);
    atp_key_destroy(key);
    if (rc < 0) {
        import_failed(r, rc, &err);
        return;
    }
    pds_seq_after_import(ctx->seq, au.did);
    atp_logf(ATP_LOG_INFO, "import", "%s: %zu records, %zu blocks, rev %s", au.did, res.n_records,
             res.n_blocks, res.commit.rev);
    atp_req_respond(r, 200, NULL, atp_slice_make(NULL, 0));
}

void pds_routes_import(atp_server *s, pds_ctx *ctx)
{
    atp_server_route(s, "POST", "/xrpc/com.atproto.repo.importRepo", import_repo, ctx,
                     ATP_ROUTE_BLOCKING);
}

/* pds/src/actor_store_int.h: a locked view of one account's file, for the actor store's
 * extension files (actor_store_<topic>.c: sync reads, blobs, import, takedowns), so each topic
 * keeps its own SQL next to its own code while actor_store.c keeps the handles, the LRU and the
 * write path.
 *
 * Inside fn the account's mutex is held: no write of the group-commit path runs, and no other
 * extension call on that account. fn may read freely; a fn that writes opens its own
 * transaction ("BEGIN IMMEDIATE" ... "COMMIT", synchronous=FULL makes the COMMIT durable) and
 * must leave none open when it returns. If it changes the repo head it must call
 * pds_actor_view_reload before returning, so the next write starts from the stored head.
 */
#ifndef PDS_ACTOR_STORE_INT_H
#define PDS_ACTOR_STORE_INT_H

#include "actor_store.h"

typedef struct pds_actor_view {
    atp_slice did;      /* the account */
    sqlite3 *db;        /* its connection (tables: see actor_store.h) */
    atp_blockstore *bs; /* its blocks (repo_block) */
    atp_repo *repo;     /* the repo at the stored head; NULL before the first commit */
    void *priv;         /* actor_store.c's handle: leave alone */
} pds_actor_view;

typedef int (*pds_actor_view_fn)(void *ctx, pds_actor_view *v, atp_err *err);

/* Runs fn(ctx, view, err) with the account locked and returns what fn returns. `create`: make
 * the account's file when absent (import of a migrating account); else ATP_ENOTFOUND (err: the
 * reference's "Could not find repo for DID") when there is no file. */
ATP_NODISCARD int pds_actor_store_with(pds_actor_store *s, atp_slice did, bool create,
                                       pds_actor_view_fn fn, void *ctx, atp_err *err);

/* Re-reads repo_root and reopens v->repo at the stored head (after fn committed a new head, or
 * rolled back). ATP_EIO on a read failure (v->repo is then NULL). */
ATP_NODISCARD int pds_actor_view_reload(pds_actor_view *v, atp_err *err);

/* Closes the account's cached handle (after its folder is removed: account deletion), so a
 * later account with the same DID opens a fresh file. ATP_ECONFLICT if the handle is in use
 * right now (it then stays open); 0 when closed or not open. */
ATP_NODISCARD int pds_actor_store_forget(pds_actor_store *s, atp_slice did);

/* The commit hook the store was opened with (for an import that makes a commit outside the
 * group-commit path and must sequence it in the same transaction). hook may be NULL. */
void pds_actor_store_hook(const pds_actor_store *s, pds_commit_hook *hook, void **hook_ctx);

#endif

/* pds/src/sequencer.h: the firehose sequence (com.atproto.sync.subscribeRepos) of the PDS.
 *
 * Every event gets a strictly increasing `seq` in the service database's repo_seq table and is
 * stored there as the whole WebSocket frame (header + body, seq included), so a replay sends
 * stored bytes as they are.
 *
 * Atomicity with the change an event describes:
 *   - repo commits are applied in memory and written into their account's file later
 *     (pending.h): the commit hook (pds_seq_commit_hook) builds the event, pds_seq_commit_done
 *     queues it, and the sequencer thread puts everything queued into repo_seq (assigning
 *     seqs) in one transaction; that is what makes the write durable, and the write is
 *     answered then (pds_seq_when_durable). The account files follow behind a flush watermark;
 *     after an unclean stop, pds_seq_open redoes the commits past it from repo_seq.
 *   - events written into an account's file in its own transaction (an import's #sync, a
 *     store without a sequencer) go through that file's seq_outbox: queued the same way once
 *     the COMMIT is durable, the moved rows deleted in the background, and what is left after
 *     an unclean stop moved by the recovery (idempotent: repo_seq has a unique
 *     (did, outbox_id)).
 *   - account status and identity changes live in the service database: the pds_seq_set_* and
 *     pds_seq_*_in calls write the change and its event in ONE service-db transaction.
 * Live subscribers get each event after its repo_seq transaction commits (never before it is
 * durable). Thread-safe unless noted.
 */
#ifndef PDS_SEQUENCER_H
#define PDS_SEQUENCER_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "atp/err.h"
#include "atp/repo.h"
#include "atp/server.h"

#include "db.h"
#include "pds.h"

typedef struct pds_seq pds_seq;

/* Opens the sequencer over ctx->db and ctx->actors (both must be open). Runs recovery after an
 * unclean stop (a progress line per 1000 accounts scanned). Starts the pruning of events older
 * than the retention window (ctx->cfg). Owned: pds_seq_close. */
ATP_NODISCARD int pds_seq_open(pds_ctx *ctx, pds_seq **out, atp_err *err);

/* Tells the sequencer which server carries subscribers (broadcasts run on its loop thread).
 * Call once, before the loop runs. */
void pds_seq_attach(pds_seq *q, atp_server *srv);

/* Sequences what is queued, writes every pending commit into its account's file
 * (pds_actor_store_flush_all), stores the flush watermark, marks a clean stop (no recovery at
 * the next start) and frees. NULL is a no-op. */
void pds_seq_close(pds_seq *q);

/* The actor store's pds_commit_hook (hook ctx = the pds_ctx; the hook needs no sequencer state,
 * so the store can be opened before the sequencer): builds the #commit event of `c` (and #sync
 * for a new repo). With `db` (a commit written into its file now) the event is also written
 * into the file's seq_outbox inside that transaction; without (a pending commit) repo_seq will
 * be its only copy. Stages a copy in *staged (staged NULL: no copy). */
int pds_seq_commit_hook(void *pds_ctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c,
                        void **staged, atp_err *err);

/* The actor store's pds_commit_done: queues the staged copy for the sequencer thread once the
 * commit took effect, drops it otherwise. `seq_out` (a pending commit) gets the event's seq
 * once it is in repo_seq. */
void pds_seq_commit_done(void *pds_ctx, atp_slice did, void *staged, bool durable,
                         _Atomic int64_t *seq_out);

/* Writes a #sync event (did, commit block as a CAR, rev) into the account file's seq_outbox,
 * inside the caller's transaction on that file (an import: actor_store_int.h). */
ATP_NODISCARD int pds_seq_outbox_sync(sqlite3 *db, atp_slice did, const atp_cid *commit,
                                      atp_slice commit_block, const char *rev, atp_err *err);

/* After a write to `did` returned (its events queued by pds_seq_commit_done): returns once
 * everything queued so far is in repo_seq (durable) and handed to the broadcast. The
 * sequencer thread does that for everything queued at once (one transaction: a group commit
 * across accounts). A failure is logged and the accounts' files are drained again in the
 * background (the write itself is durable either way). */
void pds_seq_after_write(pds_seq *q, const char *did);

/* The same without blocking: fn(arg) is called once everything queued so far is in repo_seq
 * and handed to the broadcast: on the sequencer thread, or at once on the caller's when
 * nothing is pending. Always called exactly once, at the latest by pds_seq_detach. */
void pds_seq_when_durable(pds_seq *q, void (*fn)(void *arg), void *arg);

/* Before the server given to pds_seq_attach goes away: sequences what is queued, runs the
 * callbacks waiting for it (they may still answer requests), stops the sequencer thread and
 * forgets the server. Later writes are sequenced by their own callers. NULL is a no-op. */
void pds_seq_detach(pds_seq *q);

/* After a transaction on did's file wrote outbox rows outside the hook (an import's #sync):
 * moves everything its outbox holds into repo_seq and broadcasts it. */
void pds_seq_after_import(pds_seq *q, const char *did);

/* Account status change + #account event (active, status) in one transaction. ATP_ENOTFOUND
 * if no such account. Status "active" (reactivation) also emits #identity (with the stored
 * handle) and, when the account has a repo, #sync of its current commit (reference order).
 * Status "deleted" also drops the account's repo_seq history as the reference does (its
 * events are invalidated). */
ATP_NODISCARD int pds_seq_set_status(pds_seq *q, const char *did, pds_status st, atp_err *err);

/* Handle change + #identity event (did, handle) in one transaction. ATP_ECONFLICT if the
 * handle is taken, ATP_ENOTFOUND if no such account. */
ATP_NODISCARD int pds_seq_set_handle(pds_seq *q, const char *did, const char *handle,
                                     atp_err *err);

/* An #identity event alone (after a PLC operation changed keys or services; handle may be
 * NULL). */
ATP_NODISCARD int pds_seq_identity(pds_seq *q, const char *did, const char *handle,
                                   atp_err *err);

/* An #account event alone (createAccount announces the new account as active). */
ATP_NODISCARD int pds_seq_account(pds_seq *q, const char *did, pds_status st, atp_err *err);

/* Inside a pds_db_txn of the caller (conn = that transaction's connection): appends an
 * #identity (handle nullable) or #account event; broadcast happens at the next
 * pds_seq_after_commit. For changes that touch more tables than the calls above. */
ATP_NODISCARD int pds_seq_identity_in(pds_seq *q, sqlite3 *conn, const char *did,
                                      const char *handle, atp_err *err);
ATP_NODISCARD int pds_seq_account_in(pds_seq *q, sqlite3 *conn, const char *did, pds_status st,
                                     atp_err *err);
/* After such a transaction committed: broadcasts what it appended. */
void pds_seq_after_commit(pds_seq *q);

/* Highest seq given so far (0 if none). */
int64_t pds_seq_current(pds_seq *q);

/* Appends the sequencer's Prometheus lines (current seq, events and transactions, subscribers,
 * slow consumers) to `out`; for the daemon's metrics hook. NULL q is a no-op. */
void pds_seq_metrics(pds_seq *q, atp_buf *out);

/* WebSocket route GET /xrpc/com.atproto.sync.subscribeRepos (cursor semantics of the spec). */
void pds_routes_firehose(atp_server *s, pds_ctx *ctx);

#endif

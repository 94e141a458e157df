/* pds/src/seq_int.h: what the sequencer's two files share (sequencer.h is the API).
 *
 * sequencer.c owns repo_seq (appending events with their seqs, broadcast, replay, pruning,
 * service-db changes with their events, open and close); seq_outbox.c owns the path of repo
 * commits from the account files into repo_seq: the commit hook, the in-memory hand-off of
 * committed events to the group-commit leader, the deletion of moved outbox rows, and the
 * recovery scan of every outbox after an unclean stop.
 */
#ifndef PDS_SEQ_INT_H
#define PDS_SEQ_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "sequencer.h"

/* One sequenced event: its seq and whole frame (owned). */
typedef struct seq_ev {
    int64_t seq;
    uint8_t *bytes;
    size_t len;
} seq_ev;

typedef struct ev_list {
    seq_ev *v;
    size_t n, cap;
    size_t bytes;
} ev_list;

typedef struct seq_handoff seq_handoff;

struct pds_seq {
    pds_ctx *ctx;
    atp_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t jcv; /* replay jobs */
    pthread_cond_t pcv; /* the pruner's timer (and its stop) */
    bool stop;
    _Atomic bool dirty; /* an event may be left in an outbox: the next start must scan */
    struct job *jobs;
    struct sub *subs;
    uint64_t next_sub;
    pthread_mutex_t seq_mu;
    int64_t posted; /* highest seq handed to the loop (seq_mu) */
    _Atomic int64_t current, pruned;
    atomic_ullong events, txns, subscribers, slow;
    int64_t retention_ms;
    int64_t flushed; /* the flush watermark last stored (the prune thread's) */
    pthread_t replay_thr, prune_thr;
    bool threads;
    seq_handoff *ho; /* seq_outbox.c's state */
};

/* One append lives inside one service-db transaction (init before it, release after), so the
 * next seq and the prepared statements are read and made once per transaction, not per event:
 * nothing else writes repo_seq while the transaction holds the database. */
typedef struct seq_append {
    pds_seq *q;
    atp_arena *arena;
    atp_buf frame;
    ev_list *evs;       /* nullable: frames kept for the broadcast */
    int64_t seq;        /* the last seq given in this transaction */
    bool have_seq;      /* seq read from sqlite_sequence yet */
    sqlite3_stmt *ins;  /* INSERT INTO repo_seq, made on first use */
    sqlite3_stmt *seen; /* the (did, outbox_id) lookup, made on first use */
} seq_append;

/* The wall clock in Unix milliseconds. */
int64_t seq_now_ms(void);

/* Appends a copy of frame with its seq to l. */
void seq_ev_push(ev_list *l, int64_t seq, atp_slice frame);
/* Frees l's events and empties it. */
void seq_ev_free(ev_list *l);

/* Runs one statement with text/int64 arguments ("t" or "i" per argument in `types`). */
int seq_sql_run(sqlite3 *db, const char *sql, const char *types, const void *const *args,
                atp_err *err);

void seq_append_init(seq_append *ap, pds_seq *q, ev_list *evs);
void seq_append_release(seq_append *ap);
/* Gives `body` (type "#commit"...) the next seq and inserts its frame into repo_seq, inside
 * the caller's service-db transaction on conn. outbox_id: the account file row it came from
 * (nullable). */
int seq_append_event(seq_append *ap, sqlite3 *conn, const char *did, const char *type,
                     atp_slice body, const int64_t *outbox_id, atp_err *err);

/* Hands events up to `upto` to the loop in seq order (seq_mu held): first whatever committed
 * before them and was not posted, then evs (emptied). */
void seq_post_events(pds_seq *q, ev_list *evs, int64_t upto);

/* seq_outbox.c: after an unclean stop, writes the commits of repo_seq's #commit events past
 * `flushed` back into account files that lack them (pds_actor_store_redo), in seq order, with a
 * progress line every 1000 events. A commit that cannot be redone is logged and skipped. */
ATP_NODISCARD int seq_redo(pds_seq *q, int64_t flushed, atp_err *err);

/* seq_outbox.c: sets up the hand-off (q->ho) and, when `recover`, first sequences whatever any
 * account's outbox still holds (after an unclean stop), then starts the outbox cleaner. */
ATP_NODISCARD int seq_outbox_open(pds_seq *q, bool recover, atp_err *err);
/* Stops the sequencer thread once it has sequenced everything queued and run the callbacks
 * it served; later waiters lead themselves. NULL q or q->ho is a no-op. */
void seq_outbox_stop(pds_seq *q);
/* Stops the sequencer thread (seq_outbox_stop), then the cleaner after a last round of
 * deletions, and frees q->ho. NULL q->ho is a no-op. */
void seq_outbox_close(pds_seq *q);

#endif

/* pds/src/seq_outbox.c: repo commits from the account files into repo_seq (seq_int.h).
 *
 * A commit's event is written into its account file's seq_outbox in the commit's own
 * transaction (durable with it). The hook also keeps a copy in memory; once the account's
 * COMMIT returned, that copy joins the hand-off queue, and the sequencer thread appends
 * everything queued so far to repo_seq in one service-db transaction (a group commit across
 * accounts): the writer path never reads its account file back. Writers wait for their ticket
 * (pds_seq_after_write) or leave a callback (pds_seq_when_durable) that the sequencer thread
 * calls once the ticket is through, so a worker thread does not wait for the fsync.
 * The moved outbox rows are deleted later by the cleaner thread (a quarter second apart, and
 * at close), off the writers' path; until then repo_seq's unique (did, outbox_id) is what
 * keeps a row from being sequenced twice (recovery, an import's drain).
 * Paths that write an outbox row outside the hook (an import's #sync) drain the account's
 * file instead (pds_seq_after_import).
 *
 * Locks: ho->mu guards the queue, the tickets, the waiters, the leader flag and the moved list;
 * the leader (the sequencer thread, or a waiter once the thread is stopped) takes q->seq_mu
 * (then the service db's) after letting go of ho->mu. Order as sequencer.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/log.h"

#include "actor_store_int.h"
#include "clock.h"
#include "seq_event.h"
#include "seq_int.h"
#include "sqlx.h"

#define OUTBOX_ROWS    256 /* outbox rows moved per account per round (file drain) */
#define SEQ_TRIES      5   /* hand-off transactions tried before a fail-stop */
#define CLEAN_EVERY_MS 250 /* the cleaner's period */

/* ---- draining an account file (imports, recovery, retries) ---- */

typedef struct outbox_row {
    int64_t id;
    bool stale; /* older than the retention window: never sequenced again */
    char type[16];
    uint8_t *body;
    size_t len;
} outbox_row;

typedef struct outbox {
    const char *did;
    const char *cutoff; /* createdAt before this: stale */
    outbox_row *rows;
    size_t n;
} outbox;

static void outbox_free(outbox *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->rows[i].body);
    }
    free(o->rows);
    o->rows = NULL;
    o->n = 0;
}

static int outbox_read(void *ctx, pds_actor_view *v, atp_err *err)
{
    outbox *o = ctx;
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(v->db,
                           "SELECT id, eventType, event, createdAt FROM seq_outbox"
                           " ORDER BY id LIMIT ?1",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(v->db, err, "seq_outbox read");
    }
    sqlite3_bind_int(st, 1, OUTBOX_ROWS);
    o->rows = atp_xcalloc(OUTBOX_ROWS, sizeof *o->rows);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        outbox_row *r = &o->rows[o->n++];
        const char *t = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        const char *at = (const char *)sqlite3_column_text(st, 3);
        r->id = sqlite3_column_int64(st, 0);
        /* A row past the window may have been sequenced and pruned since: repo_seq can no
         * longer tell, and a second copy would replay an old commit as new. */
        r->stale = at && strcmp(at, o->cutoff) < 0;
        snprintf(r->type, sizeof r->type, "%s", t ? t : "");
        r->body = atp_xmalloc(len ? len : 1);
        memcpy(r->body, sqlite3_column_blob(st, 2), len);
        r->len = len;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(v->db, err, "seq_outbox read");
}

/* The moved rows leave the outbox without an fsync of their own: losing this delete to a
 * power cut is harmless (repo_seq's unique (did, outbox_id) skips a row moved twice), and it
 * becomes durable with the account's next commit. One fsync less per write. */
static int outbox_delete(void *ctx, pds_actor_view *v, atp_err *err)
{
    const int64_t *upto = ctx;
    const void *args[] = {upto};
    (void)sqlite3_exec(v->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = seq_sql_run(v->db, "DELETE FROM seq_outbox WHERE id <= ?1", "i", args, err);
    (void)sqlite3_exec(v->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    return rc;
}

typedef struct move_ctx {
    seq_append ap;
    outbox *boxes;
    size_t n;
} move_ctx;

/* Already moved (a recovery after a crash between the two files' commits)? */
static int already_moved(seq_append *ap, sqlite3 *conn, const char *did, int64_t id, bool *out,
                         atp_err *err)
{
    if (!ap->seen && sqlite3_prepare_v2(conn,
                                        "SELECT 1 FROM repo_seq WHERE did = ?1 AND"
                                        " outbox_id = ?2",
                                        -1, &ap->seen, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(conn, err, "repo_seq lookup");
    }
    sqlite3_bind_text(ap->seen, 1, did, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ap->seen, 2, id);
    int rc = sqlite3_step(ap->seen);
    sqlite3_reset(ap->seen);
    *out = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pds_sqlx_fail(conn, err, "repo_seq lookup");
}

/* Appends outbox row `id` of did (type "#commit"...) unless repo_seq already has it: the one
 * step of both the file drain and the in-memory hand-off. */
static int move_one(seq_append *ap, sqlite3 *conn, const char *did, const char *type,
                    atp_slice body, const int64_t *id, atp_err *err)
{
    bool dup = false;
    int rc = already_moved(ap, conn, did, *id, &dup, err);
    return rc == 0 && !dup ? seq_append_event(ap, conn, did, type, body, id, err) : rc;
}

static int move_fn(void *ctx, sqlite3 *conn, atp_err *err)
{
    move_ctx *m = ctx;
    for (size_t b = 0; b < m->n; b++) {
        for (size_t i = 0; i < m->boxes[b].n; i++) {
            const outbox_row *r = &m->boxes[b].rows[i];
            char type[20];
            snprintf(type, sizeof type, "#%s", r->type);
            int rc = r->stale ? 0
                              : move_one(&m->ap, conn, m->boxes[b].did, type,
                                         atp_slice_make(r->body, r->len), &r->id, err);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Moves one round of the accounts' outboxes (seq_mu held). *more: some outbox had a full
 * round, call again. */
static int drain_round(pds_seq *q, const char *const *dids, size_t n, bool *more, atp_err *err)
{
    move_ctx m;
    ev_list evs = {0};
    int64_t cur = 0;
    int rc = 0;
    char cutoff[PDS_SQLX_TIME_MAX];
    pds_sqlx_time_ms(seq_now_ms() - q->retention_ms, cutoff);
    memset(&m, 0, sizeof m);
    m.boxes = atp_xcalloc(n ? n : 1, sizeof *m.boxes);
    for (size_t i = 0; i < n && rc == 0; i++) {
        m.boxes[m.n].did = dids[i];
        m.boxes[m.n].cutoff = cutoff;
        rc = pds_actor_store_with(q->ctx->actors, atp_slice_str(dids[i]), false, outbox_read,
                                  &m.boxes[m.n], err);
        if (rc == ATP_ENOTFOUND) {
            rc = 0; /* the account file is gone (deleted account) */
        }
        *more = *more || m.boxes[m.n].n == OUTBOX_ROWS;
        m.n++;
    }
    seq_append_init(&m.ap, q, &evs);
    if (rc == 0) {
        rc = pds_db_txn(q->ctx->db, move_fn, &m, err);
    }
    if (rc == 0) {
        atomic_fetch_add(&q->txns, 1);
        atomic_fetch_add(&q->events, evs.n);
        cur = evs.n ? evs.v[evs.n - 1].seq : 0;
        seq_post_events(q, &evs, cur > q->posted ? cur : q->posted);
    }
    for (size_t i = 0; i < m.n; i++) {
        int64_t upto = m.boxes[i].n ? m.boxes[i].rows[m.boxes[i].n - 1].id : 0;
        if (rc == 0 && upto > 0 &&
            pds_actor_store_with(q->ctx->actors, atp_slice_str(m.boxes[i].did), false,
                                 outbox_delete, &upto, NULL) < 0) {
            /* left for the next round: the unique (did, outbox_id) skips it then */
            q->dirty = true;
        }
        outbox_free(&m.boxes[i]);
    }
    seq_ev_free(&evs);
    seq_append_release(&m.ap);
    free(m.boxes);
    return rc;
}

static int drain(pds_seq *q, const char *const *dids, size_t n, atp_err *err)
{
    bool more = true;
    int rc = 0;
    for (int round = 0; more && rc == 0 && round < 1000; round++) {
        more = false;
        rc = drain_round(q, dids, n, &more, err);
    }
    return rc;
}

/* ---- the in-memory hand-off ---- */

/* One committed event on its way from the commit hook to repo_seq. */
typedef struct handed {
    struct handed *next;
    char *did;         /* owned */
    int64_t outbox_id; /* its outbox row; 0: none (a pending commit: repo_seq is its only copy) */
    int64_t seq;       /* given in the hand-off transaction */
    _Atomic int64_t *seq_out; /* nullable: the pending commit told of its seq once durable */
    char type[12];            /* "#commit", "#sync" */
    size_t len;
    uint8_t body[]; /* the event body (seq_event.h), without header or seq */
} handed;

/* An account whose outbox rows up to `upto` are in repo_seq (delete them), or, with
 * `redrain`, whose hand-off failed (drain its file again). */
typedef struct moved {
    char *did;
    int64_t upto;
    bool redrain;
} moved;

/* A caller waiting for its ticket: a blocked thread (fn NULL, woken alone: no herd), or a
 * callback the leader calls once the ticket is through. */
typedef struct waiter {
    uint64_t ticket;
    pthread_cond_t cv;
    bool done;
    void (*fn)(void *arg);
    void *arg;
    struct waiter *next;
} waiter;

struct seq_handoff {
    pthread_mutex_t mu;
    waiter *waiters, **wtail; /* in ticket order */
    pthread_cond_t scv;       /* the sequencer thread's wake-up */
    pthread_cond_t ccv;       /* the cleaner's timer (and its stop) */
    handed *head, **tail;
    uint64_t queued, finished; /* tickets: events handed in, events through a leader */
    bool leader, stop, seq_stop;
    moved *mv;
    size_t n_mv, cap_mv;
    pthread_t cleaner, sequencer;
    bool cleaner_on, seq_on;
};

static void handed_free(handed *h)
{
    while (h) {
        handed *next = h->next;
        free(h->did);
        free(h);
        h = next;
    }
}

/* Notes (ho->mu held) that did's rows up to `upto` moved, or need a drain (`redrain`). */
static void moved_note(seq_handoff *ho, const char *did, int64_t upto, bool redrain)
{
    for (size_t i = ho->n_mv; i-- > 0;) { /* newest first: an account writes in runs */
        if (strcmp(ho->mv[i].did, did) == 0) {
            ho->mv[i].upto = upto > ho->mv[i].upto ? upto : ho->mv[i].upto;
            ho->mv[i].redrain = ho->mv[i].redrain || redrain;
            return;
        }
    }
    if (ho->n_mv == ho->cap_mv) {
        ho->cap_mv = ho->cap_mv ? ho->cap_mv * 2 : 64;
        ho->mv = atp_xrealloc(ho->mv, ho->cap_mv * sizeof *ho->mv);
    }
    ho->mv[ho->n_mv++] = (moved){atp_xstrndup(did, strlen(did)), upto, redrain};
}

typedef struct hand_ctx {
    seq_append ap;
    handed *list;
} hand_ctx;

static int hand_fn(void *ctx, sqlite3 *conn, atp_err *err)
{
    hand_ctx *h = ctx;
    for (handed *e = h->list; e; e = e->next) {
        atp_slice body = atp_slice_make(e->body, e->len);
        int rc = e->outbox_id > 0
                     ? move_one(&h->ap, conn, e->did, e->type, body, &e->outbox_id, err)
                     : seq_append_event(&h->ap, conn, e->did, e->type, body, NULL, err);
        if (rc < 0) {
            return rc;
        }
        e->seq = h->ap.seq;
    }
    return 0;
}

/* Appends `list` to repo_seq in one transaction and posts it (seq_mu held). Pending commits
 * learn their seqs before the sequencer's current seq moves past them (the flush watermark,
 * sequencer.c, relies on that order). */
static int hand_once(pds_seq *q, handed *list, atp_err *err)
{
    hand_ctx h;
    ev_list evs = {0};
    seq_append_init(&h.ap, q, &evs);
    h.list = list;
    int rc = pds_db_txn(q->ctx->db, hand_fn, &h, err);
    if (rc == 0) {
        for (handed *e = list; e; e = e->next) {
            if (e->seq_out) {
                atomic_store_explicit(e->seq_out, e->seq, memory_order_release);
            }
        }
        atomic_fetch_add(&q->txns, 1);
        atomic_fetch_add(&q->events, evs.n);
        int64_t cur = evs.n ? evs.v[evs.n - 1].seq : 0;
        seq_post_events(q, &evs, cur > q->posted ? cur : q->posted);
    }
    seq_ev_free(&evs);
    seq_append_release(&h.ap);
    return rc;
}

/* Whether any event of the list exists only here (a pending commit's: no outbox row). */
static bool has_pending(const handed *list)
{
    for (const handed *e = list; e; e = e->next) {
        if (e->outbox_id <= 0) {
            return true;
        }
    }
    return false;
}

/* hand_once, and what follows its outcome (seq_mu held). Events with an outbox row that fail
 * stay there: their accounts are drained again by the cleaner. An event of a pending commit has
 * no other copy, and its write is not answered until it is sequenced: the transaction is tried
 * again, and if the service database keeps refusing, the process stops (fail-stop: a restart's
 * recovery rebuilds a consistent state from what is durable; nothing unanswered is lost). */
static void hand_on(pds_seq *q, handed *list)
{
    atp_err err;
    atp_err_clear(&err);
    int rc = hand_once(q, list, &err);
    for (int tries = 1; rc != 0 && has_pending(list) && tries < SEQ_TRIES; tries++) {
        atp_logf(ATP_LOG_ERROR, "seq", "sequencing (try %d): %s", tries, err.msg);
        struct timespec pause = {0, 200000000L};
        nanosleep(&pause, NULL);
        rc = hand_once(q, list, &err);
    }
    if (rc != 0 && has_pending(list)) {
        atp_logf(ATP_LOG_ERROR, "seq", "sequencing failed %d times, stopping: %s", SEQ_TRIES,
                 err.msg);
        abort();
    }
    if (rc != 0) {
        atp_logf(ATP_LOG_ERROR, "seq", "sequencing: %s", err.msg);
        atomic_store(&q->dirty, true);
    }
    pthread_mutex_lock(&q->ho->mu);
    for (handed *e = list; e; e = e->next) {
        if (e->outbox_id > 0) {
            moved_note(q->ho, e->did, e->outbox_id, rc != 0);
        }
    }
    pthread_mutex_unlock(&q->ho->mu);
}

/* Takes the waiters whose ticket is through (ho->mu held): blocked ones are woken, callbacks
 * are returned as a list for the caller to run once it let go of ho->mu. */
static waiter *release_ready(seq_handoff *ho)
{
    waiter *ready = NULL, **rtail = &ready;
    while (ho->waiters && ho->waiters->ticket <= ho->finished) {
        waiter *w = ho->waiters;
        ho->waiters = w->next;
        w->next = NULL;
        if (w->fn) {
            *rtail = w;
            rtail = &w->next;
        } else {
            w->done = true;
            pthread_cond_signal(&w->cv);
        }
    }
    if (!ho->waiters) {
        ho->wtail = &ho->waiters;
    }
    return ready;
}

static void run_ready(waiter *w)
{
    while (w) {
        waiter *next = w->next;
        w->fn(w->arg);
        free(w);
        w = next;
    }
}

/* Takes everything queued (ho->mu held, returned held), hands it on and releases the waiters
 * it served; returns their callbacks (run_ready, after letting go of ho->mu). */
static waiter *lead(pds_seq *q)
{
    seq_handoff *ho = q->ho;
    handed *list = ho->head;
    uint64_t n = ho->queued - ho->finished;
    ho->head = NULL;
    ho->tail = &ho->head;
    ho->leader = true;
    pthread_mutex_unlock(&ho->mu);
    pthread_mutex_lock(&q->seq_mu);
    hand_on(q, list);
    pthread_mutex_unlock(&q->seq_mu);
    handed_free(list);
    pthread_mutex_lock(&ho->mu);
    ho->finished += n;
    ho->leader = false;
    return release_ready(ho);
}

/* The sequencer thread: one transaction for whatever was queued while the last one ran. */
static void *sequencer_main(void *arg)
{
    pds_seq *q = arg;
    seq_handoff *ho = q->ho;
    pthread_mutex_lock(&ho->mu);
    for (;;) {
        while (!ho->head && !ho->seq_stop) {
            pthread_cond_wait(&ho->scv, &ho->mu);
        }
        if (!ho->head) {
            break;
        }
        waiter *ready = lead(q);
        pthread_mutex_unlock(&ho->mu);
        run_ready(ready);
        pthread_mutex_lock(&ho->mu);
    }
    ho->seq_on = false;
    pthread_mutex_unlock(&ho->mu);
    return NULL;
}

/* Queues a waiter for everything handed in so far (ho->mu held); without a sequencer thread
 * the caller leads. Returns callbacks to run after letting go of ho->mu. */
static waiter *wait_enqueue(pds_seq *q, waiter *w)
{
    seq_handoff *ho = q->ho;
    w->ticket = ho->queued;
    w->next = NULL;
    *ho->wtail = w;
    ho->wtail = &w->next;
    if (!ho->seq_on && !ho->leader) {
        return lead(q);
    }
    pthread_cond_signal(&ho->scv);
    return NULL;
}

void pds_seq_after_write(pds_seq *q, const char *did)
{
    (void)did; /* its events were queued before its write returned: the ticket covers them */
    if (!q || !q->ho) {
        return;
    }
    seq_handoff *ho = q->ho;
    waiter me = {0, PTHREAD_COND_INITIALIZER, false, NULL, NULL, NULL};
    pthread_mutex_lock(&ho->mu);
    if (ho->finished >= ho->queued) {
        pthread_mutex_unlock(&ho->mu);
        return;
    }
    waiter *ready = wait_enqueue(q, &me);
    while (!me.done) {
        if (!ho->seq_on && !ho->leader) { /* the thread stopped: lead ourselves */
            pthread_mutex_unlock(&ho->mu);
            run_ready(ready);
            pthread_mutex_lock(&ho->mu);
            ready = lead(q);
        } else {
            pthread_cond_wait(&me.cv, &ho->mu);
        }
    }
    pthread_mutex_unlock(&ho->mu);
    run_ready(ready);
    pthread_cond_destroy(&me.cv);
}

void pds_seq_when_durable(pds_seq *q, void (*fn)(void *arg), void *arg)
{
    if (!q || !q->ho) {
        fn(arg);
        return;
    }
    seq_handoff *ho = q->ho;
    pthread_mutex_lock(&ho->mu);
    if (ho->finished >= ho->queued) {
        pthread_mutex_unlock(&ho->mu);
        fn(arg);
        return;
    }
    waiter *w = atp_xcalloc(1, sizeof *w);
    w->fn = fn;
    w->arg = arg;
    waiter *ready = wait_enqueue(q, w);
    pthread_mutex_unlock(&ho->mu);
    run_ready(ready);
}

void seq_outbox_stop(pds_seq *q)
{
    seq_handoff *ho = q ? q->ho : NULL;
    if (!ho) {
        return;
    }
    pthread_mutex_lock(&ho->mu);
    bool on = ho->seq_on;
    ho->seq_stop = true;
    pthread_cond_broadcast(&ho->scv);
    pthread_mutex_unlock(&ho->mu);
    if (on) {
        pthread_join(ho->sequencer, NULL); /* it drains the queue and answers first */
    }
}

void pds_seq_after_import(pds_seq *q, const char *did)
{
    atp_err err;
    if (!q || !did) {
        return;
    }
    atp_err_clear(&err);
    pthread_mutex_lock(&q->seq_mu);
    if (drain(q, &did, 1, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "seq", "sequencing: %s", err.msg);
        atomic_store(&q->dirty, true);
    }
    pthread_mutex_unlock(&q->seq_mu);
}

/* ---- the commit hook and #sync (inside an account file's transaction) ---- */

static int outbox_insert(sqlite3 *db, const char *type, atp_slice body, int64_t *id, atp_err *err)
{
    char now[PDS_SEQ_TIME_MAX];
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO seq_outbox(eventType, event, createdAt)"
                           " VALUES (?1, ?2, ?3)",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(db, err, "seq_outbox insert");
    }
    pds_sqlx_time_now(now);
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, body.ptr, (int)body.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : pds_sqlx_fail(db, err, "seq_outbox insert");
    sqlite3_finalize(st);
    *id = sqlite3_last_insert_rowid(db);
    return rc;
}

/* Writes the outbox row (db non-NULL: a commit written into its file now) and, with `tail`,
 * keeps a copy for the hand-off. */
static int outbox_put(sqlite3 *db, atp_slice did, const char *type, atp_slice body, handed ***tail,
                      atp_err *err)
{
    int64_t id = 0;
    int rc = db ? outbox_insert(db, type, body, &id, err) : 0;
    if (rc == 0 && tail) {
        handed *h = atp_xmalloc(sizeof *h + body.len);
        h->next = NULL;
        h->did = atp_xstrndup((const char *)did.ptr, did.len);
        h->outbox_id = id;
        h->seq = 0;
        h->seq_out = NULL;
        snprintf(h->type, sizeof h->type, "#%s", type);
        h->len = body.len;
        memcpy(h->body, body.ptr, body.len);
        **tail = h;
        *tail = &h->next;
    }
    return rc;
}

static int put_sync(sqlite3 *db, atp_slice did, const atp_cid *commit, atp_slice commit_block,
                    const char *rev, handed ***tail, atp_err *err)
{
    char now[PDS_SEQ_TIME_MAX];
    atp_buf b;
    atp_buf_init(&b, PDS_SEQ_FRAME_MAX);
    pds_sqlx_time_now(now);
    int rc = pds_seq_body_sync(&b, did, commit, commit_block, rev, now, err);
    if (rc == 0) {
        rc = outbox_put(db, did, "sync", atp_buf_slice(&b), tail, err);
    }
    atp_buf_release(&b);
    return rc;
}

int pds_seq_outbox_sync(sqlite3 *db, atp_slice did, const atp_cid *commit, atp_slice commit_block,
                        const char *rev, atp_err *err)
{
    return put_sync(db, did, commit, commit_block, rev, NULL, err);
}

int pds_seq_commit_hook(void *pctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c,
                        void **staged, atp_err *err)
{
    char now[PDS_SEQ_TIME_MAX];
    atp_buf b;
    handed *list = NULL, **tail = &list;
    (void)pctx;
    atp_buf_init(&b, PDS_SEQ_FRAME_MAX);
    pds_sqlx_time_now(now);
    int rc = pds_seq_body_commit(&b, did, c, now, err);
    if (rc == 0) {
        rc = outbox_put(db, did, "commit", atp_buf_slice(&b), staged ? &tail : NULL, err);
    }
    /* A new repo is announced as the current state too (reference order: #commit, #sync). */
    if (rc == 0 && c->since[0] == '\0') {
        rc = put_sync(db, did, &c->cid, c->bytes, c->rev, staged ? &tail : NULL, err);
    }
    atp_buf_release(&b);
    if (rc == 0 && staged) {
        *staged = list;
    } else {
        handed_free(list);
    }
    return rc;
}

void pds_seq_commit_done(void *pctx, atp_slice did, void *staged, bool durable,
                         _Atomic int64_t *seq_out)
{
    pds_ctx *ctx = pctx;
    pds_seq *q = ctx ? ctx->seq : NULL;
    handed *list = staged;
    if (durable && seq_out && (!q || !q->ho)) {
        /* no sequencer (start-up, shutdown): the commit must still reach its file */
        atp_logf(ATP_LOG_ERROR, "seq", "no sequencer for a commit of %.*s: event dropped",
                 (int)did.len, (const char *)did.ptr);
        atomic_store_explicit(seq_out, -1, memory_order_release);
    }
    if (!durable || !q || !q->ho) {
        handed_free(list); /* refused, or no sequencer: an outbox row (if any) has it */
        return;
    }
    seq_handoff *ho = q->ho;
    pthread_mutex_lock(&ho->mu);
    *ho->tail = list;
    for (handed *e = list; e; e = e->next) {
        ho->queued++;
        ho->tail = &e->next;
        if (!e->next) {
            e->seq_out = seq_out; /* told once its last event is in */
        }
    }
    if (!ho->leader) {
        pthread_cond_signal(&ho->scv);
    }
    pthread_mutex_unlock(&ho->mu);
}

/* ---- the cleaner: moved rows leave the outboxes ---- */

static void clean_round(pds_seq *q)
{
    seq_handoff *ho = q->ho;
    pthread_mutex_lock(&ho->mu);
    moved *mv = ho->mv;
    size_t n = ho->n_mv;
    ho->mv = NULL;
    ho->n_mv = ho->cap_mv = 0;
    pthread_mutex_unlock(&ho->mu);
    for (size_t i = 0; i < n; i++) {
        int rc = 0;
        if (mv[i].redrain) {
            pds_seq_after_import(q, mv[i].did);
        } else {
            rc = pds_actor_store_with(q->ctx->actors, atp_slice_str(mv[i].did), false,
                                      outbox_delete, &mv[i].upto, NULL);
        }
        if (rc < 0 && rc != ATP_ENOTFOUND) { /* busy or failing: try again next round */
            pthread_mutex_lock(&ho->mu);
            moved_note(ho, mv[i].did, mv[i].upto, false);
            pthread_mutex_unlock(&ho->mu);
        }
        free(mv[i].did);
    }
    free(mv);
}

static void *cleaner_main(void *arg)
{
    pds_seq *q = arg;
    seq_handoff *ho = q->ho;
    pthread_mutex_lock(&ho->mu);
    while (!ho->stop) {
        struct timespec until = pds_deadline_ms(CLEAN_EVERY_MS);
        (void)pthread_cond_timedwait(&ho->ccv, &ho->mu, &until);
        if (!ho->stop && ho->n_mv > 0) {
            pthread_mutex_unlock(&ho->mu);
            clean_round(q);
            pthread_mutex_lock(&ho->mu);
        }
    }
    pthread_mutex_unlock(&ho->mu);
    return NULL;
}

typedef struct scan {
    pds_seq *q;
    char *dids[64];
    size_t n, total;
    int rc;
    atp_err *err;
} scan;

static void scan_flush(scan *sc)
{
    if (sc->n > 0 && sc->rc == 0) {
        sc->rc = drain(sc->q, (const char *const *)sc->dids, sc->n, sc->err);
    }
    for (size_t i = 0; i < sc->n; i++) {
        free(sc->dids[i]);
    }
    sc->n = 0;
}

static void scan_shard(scan *sc, const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && sc->rc == 0 && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "did:", 4) != 0) {
            continue;
        }
        sc->dids[sc->n++] = atp_xstrndup(e->d_name, strlen(e->d_name));
        if (++sc->total % 1000 == 0) {
            atp_logf(ATP_LOG_INFO, "seq", "recovery: %zu accounts scanned", sc->total);
        }
        if (sc->n == 64) {
            scan_flush(sc);
        }
    }
    if (d) {
        closedir(d);
    }
}

/* After an unclean stop: sequence whatever any account's outbox still holds. */
static int recover(pds_seq *q, atp_err *err)
{
    char dir[1200], shard[1300];
    scan sc = {q, {0}, 0, 0, 0, err};
    snprintf(dir, sizeof dir, "%s/actors", q->ctx->cfg ? q->ctx->cfg->data_dir : ".");
    DIR *d = opendir(dir);
    struct dirent *e;
    atp_logf(ATP_LOG_INFO, "seq", "unclean stop: recovering outboxes under %s", dir);
    pthread_mutex_lock(&q->seq_mu);
    while (d && sc.rc == 0 && (e = readdir(d)) != NULL) {
        if (strlen(e->d_name) == 2 && e->d_name[0] != '.') { /* shard folders: 2 hex */
            snprintf(shard, sizeof shard, "%s/%.2s", dir, e->d_name);
            scan_shard(&sc, shard);
        }
    }
    scan_flush(&sc);
    pthread_mutex_unlock(&q->seq_mu);
    if (d) {
        closedir(d);
    }
    atp_logf(ATP_LOG_INFO, "seq", "recovery: %zu accounts, seq now %lld", sc.total,
             (long long)atomic_load(&q->current));
    return sc.rc;
}

/* ---- redo: commits acknowledged but not in their files at a crash ---- */

#define REDO_ROWS 256

typedef struct redo_page {
    int64_t after;
    ev_list evs; /* seq + whole frame */
    char **dids;
} redo_page;

static int redo_read(void *ctx, sqlite3 *conn, atp_err *err)
{
    redo_page *p = ctx;
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(conn,
                           "SELECT seq, did, event FROM repo_seq WHERE seq > ?1 AND"
                           " event_type = 'commit' AND invalidated = 0 ORDER BY seq LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(conn, err, "repo_seq read");
    }
    sqlite3_bind_int64(st, 1, p->after);
    sqlite3_bind_int(st, 2, REDO_ROWS);
    p->dids = atp_xcalloc(REDO_ROWS, sizeof *p->dids);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *did = (const char *)sqlite3_column_text(st, 1);
        p->dids[p->evs.n] = atp_xstrndup(did ? did : "", did ? strlen(did) : 0);
        seq_ev_push(&p->evs, sqlite3_column_int64(st, 0),
                    atp_slice_make(sqlite3_column_blob(st, 2),
                                   (size_t)sqlite3_column_bytes(st, 2)));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(conn, err, "repo_seq read");
}

/* One stored #commit frame back into its account's file (if the file lacks it). */
static int redo_one(pds_seq *q, const char *did, const seq_ev *e, atp_arena *a, bool *applied)
{
    pds_seq_frame f;
    pds_seq_commit_view v;
    atp_err err;
    int rc = pds_seq_frame_decode(a, atp_slice_make(e->bytes, e->len), &f, &err);
    rc = rc ? rc : pds_seq_commit_view_decode(a, f.body, &v, &err);
    if (rc == 0) {
        const atp_block *commit = pds_seq_commit_view_block(&v, &v.commit);
        pds_redo r = {atp_slice_str(did), v.rev,   v.since,      commit->data,
                      v.ops,              v.n_ops, v.blocks, v.n_blocks};
        rc = pds_actor_store_redo(q->ctx->actors, &r, applied, &err);
    }
    if (rc != 0 && rc != ATP_ENOTFOUND) { /* a deleted account has nothing to redo */
        atp_logf(ATP_LOG_ERROR, "seq", "redo of seq %lld (%s): %s", (long long)e->seq, did,
                 err.msg);
    }
    return rc;
}

int seq_redo(pds_seq *q, int64_t flushed, atp_err *err)
{
    size_t seen = 0, redone = 0;
    atp_arena *a = atp_arena_create(0);
    int64_t after = flushed;
    int rc = 0;
    atp_logf(ATP_LOG_INFO, "seq", "unclean stop: writing commits after seq %lld back into files",
             (long long)flushed);
    for (bool more = true; more && rc == 0;) {
        redo_page p = {after, {0}, NULL};
        rc = pds_db_read(q->ctx->db, redo_read, &p, err);
        for (size_t i = 0; rc == 0 && i < p.evs.n; i++) {
            bool applied = false;
            (void)redo_one(q, p.dids[i], &p.evs.v[i], a, &applied);
            atp_arena_reset(a);
            redone += applied;
            after = p.evs.v[i].seq;
            if (++seen % 1000 == 0) {
                atp_logf(ATP_LOG_INFO, "seq", "redo: %zu events read, %zu commits written",
                         seen, redone);
            }
        }
        more = p.evs.n == REDO_ROWS;
        for (size_t i = 0; i < p.evs.n; i++) {
            free(p.dids[i]);
        }
        free(p.dids);
        seq_ev_free(&p.evs);
    }
    atp_arena_destroy(a);
    atp_logf(ATP_LOG_INFO, "seq", "redo: %zu events read, %zu commits written", seen, redone);
    return rc;
}

/* ---- open and close ---- */

int seq_outbox_open(pds_seq *q, bool recover_first, atp_err *err)
{
    seq_handoff *ho = atp_xcalloc(1, sizeof *ho);
    pthread_mutex_init(&ho->mu, NULL);
    pthread_cond_init(&ho->ccv, NULL);
    pthread_cond_init(&ho->scv, NULL);
    ho->tail = &ho->head;
    ho->wtail = &ho->waiters;
    q->ho = ho;
    int rc = recover_first ? recover(q, err) : 0;
    if (rc == 0) {
        ho->cleaner_on = pthread_create(&ho->cleaner, NULL, cleaner_main, q) == 0;
        rc = ho->cleaner_on ? 0 : atp_err_set(err, ATP_EIO, 0, "outbox cleaner thread");
    }
    if (rc == 0) {
        ho->seq_on = pthread_create(&ho->sequencer, NULL, sequencer_main, q) == 0;
        rc = ho->seq_on ? 0 : atp_err_set(err, ATP_EIO, 0, "sequencer thread");
    }
    return rc;
}

void seq_outbox_close(pds_seq *q)
{
    seq_handoff *ho = q->ho;
    if (!ho) {
        return;
    }
    seq_outbox_stop(q);
    pthread_mutex_lock(&ho->mu);
    waiter *ready = NULL;
    if (ho->head && !ho->leader) {
        ready = lead(q); /* committed events nobody waited for (the thread never ran) */
    }
    ho->stop = true;
    pthread_cond_broadcast(&ho->ccv);
    pthread_mutex_unlock(&ho->mu);
    run_ready(ready);
    if (ho->cleaner_on) {
        pthread_join(ho->cleaner, NULL);
    }
    clean_round(q);
    clean_round(q); /* whatever the first round had to put back */
    if (ho->n_mv > 0) {
        atomic_store(&q->dirty, true);
    }
    for (size_t i = 0; i < ho->n_mv; i++) {
        free(ho->mv[i].did);
    }
    free(ho->mv);
    handed_free(ho->head);
    pthread_mutex_destroy(&ho->mu);
    pthread_cond_destroy(&ho->ccv);
    pthread_cond_destroy(&ho->scv);
    free(ho);
    q->ho = NULL;
}

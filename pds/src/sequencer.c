/* pds/src/sequencer.c: the durable firehose (sequencer.h).
 *
 * Threads and locks:
 *   - q->mu guards the replay jobs and the subscriber list (the loop thread edits the list
 *     under it, and reads it without: it is the only writer). The hand-off of repo commits
 *     from the account files has its own lock (seq_outbox.c).
 *   - q->seq_mu is held across every sequencing transaction and the hand-off of its events to
 *     the loop, so events reach the loop in seq order (subscribers rely on it to drop
 *     duplicates by seq). Order: seq_mu, then the service db mutex or one account's mutex,
 *     never both of those at once.
 *   - a replay thread reads repo_seq for subscribers that asked for a cursor; a pruning thread
 *     drops events older than the retention window; seq_outbox.c's cleaner thread deletes
 *     moved outbox rows.
 * Seqs come from repo_seq's AUTOINCREMENT counter (sqlite_sequence), read and advanced inside
 * the transaction that inserts: a rolled-back transaction gives its seqs back, so seqs of
 * committed events are contiguous and a gap only means deleted (pruned or invalidated) rows.
 */
#include "sequencer.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atp/log.h"

#include "actor_store_int.h"
#include "seq_event.h"
#include "clock.h"
#include "seq_int.h"
#include "sqlx.h"

#define REPLAY_ROWS        500           /* repo_seq rows per replay read */
#define REPLAY_BYTES       (2u << 20)    /* ... and at most these bytes */
#define REPLAY_HIGH_WATER  (1u << 20)    /* next replay batch once output is below this */
#define PENDING_MAX_BYTES  (8u << 20)    /* live events buffered while a replay catches up */
#define PRUNE_ROWS         5000          /* rows deleted per pruning transaction */
#define STATE_CLEAN        "clean_stop"
#define STATE_FLUSHED      "flushed_upto"
#define STATE_PRUNED       "pruned_upto"
#define NOTE_FLUSHED_MS    1000          /* how often the flush watermark is stored */

/* One subscriber (loop thread). */
typedef struct sub {
    struct sub *next, *prev;
    pds_seq *q;
    atp_ws_conn *ws;
    uint64_t id;
    bool live;    /* replay done: broadcasts go straight out */
    bool closing; /* an error frame was sent: nothing more */
    int64_t last; /* highest seq sent */
    ev_list pending; /* broadcasts received while replaying */
} sub;

/* A replay read for a subscriber, and its answer. */
typedef struct job {
    struct job *next;
    uint64_t sub_id;
    int64_t after;
    bool wait; /* the subscriber's output is full: wait a little, read nothing */
} job;

typedef struct replay_res {
    pds_seq *q;
    uint64_t sub_id;
    ev_list evs;
    bool more; /* the read was cut by its bounds (or was a wait): ask again */
} replay_res;

typedef struct bcast {
    pds_seq *q;
    ev_list evs;
} bcast;

/* ---- small helpers ---- */

void seq_ev_push(ev_list *l, int64_t seq, atp_slice frame)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = atp_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].seq = seq;
    l->v[l->n].bytes = atp_xmalloc(frame.len ? frame.len : 1);
    memcpy(l->v[l->n].bytes, frame.ptr, frame.len);
    l->v[l->n].len = frame.len;
    l->bytes += frame.len;
    l->n++;
}

void seq_ev_free(ev_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].bytes);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Runs one statement with text/int64 arguments ("t" or "i" per argument in `types`). */
int seq_sql_run(sqlite3 *db, const char *sql, const char *types, const void *const *args,
                atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    for (int i = 0; rc == SQLITE_OK && types[i]; i++) {
        rc = types[i] == 't'
                 ? sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC)
                 : sqlite3_bind_int64(st, i + 1, *(const int64_t *)args[i]);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pds_sqlx_fail(db, err, "sequencer");
}

/* One integer from a query with an optional text argument (0 when no row or NULL). */
static int seq_sql_int(sqlite3 *db, const char *sql, const char *arg, int64_t *out, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && arg) {
        rc = sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pds_sqlx_fail(db, err, "sequencer read");
}

/* The highest seq ever given (AUTOINCREMENT keeps it even when the rows are gone). */
static int last_seq(sqlite3 *db, int64_t *out, atp_err *err)
{
    return seq_sql_int(db, "SELECT seq FROM sqlite_sequence WHERE name = 'repo_seq'", NULL, out,
                       err);
}

static void store_max(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* ---- appending events (inside a service-db transaction) ---- */

/* Gives `body` the next seq and inserts its frame into repo_seq. */
int seq_append_event(seq_append *ap, sqlite3 *conn, const char *did, const char *type,
                     atp_slice body, const int64_t *outbox_id, atp_err *err)
{
    static const char sql[] = "INSERT INTO repo_seq(seq, did, event_type, event, sequenced_at,"
                              " outbox_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    char now[PDS_SEQ_TIME_MAX];
    int rc = ap->have_seq ? 0 : last_seq(conn, &ap->seq, err);
    ap->have_seq = rc == 0;
    atp_arena_reset(ap->arena);
    atp_buf_reset(&ap->frame);
    if (rc == 0) {
        rc = pds_seq_frame_build(&ap->frame, ap->arena, type, body, ap->seq + 1, err);
    }
    if (rc < 0) {
        return rc;
    }
    pds_sqlx_time_now(now);
    if (!ap->ins && sqlite3_prepare_v2(conn, sql, -1, &ap->ins, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(conn, err, "repo_seq insert");
    }
    sqlite3_stmt *st = ap->ins;
    sqlite3_bind_int64(st, 1, ap->seq + 1);
    sqlite3_bind_text(st, 2, did, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, type + 1, -1, SQLITE_STATIC); /* "commit", as the reference */
    sqlite3_bind_blob(st, 4, ap->frame.ptr, (int)ap->frame.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    if (outbox_id) {
        sqlite3_bind_int64(st, 6, *outbox_id);
    } else {
        sqlite3_bind_null(st, 6);
    }
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : pds_sqlx_fail(conn, err, "repo_seq insert");
    sqlite3_reset(st);
    if (rc == 0) {
        ap->seq++;
        if (ap->evs) {
            seq_ev_push(ap->evs, ap->seq, atp_buf_slice(&ap->frame));
        }
    }
    return rc;
}

void seq_append_init(seq_append *ap, pds_seq *q, ev_list *evs)
{
    memset(ap, 0, sizeof *ap);
    ap->q = q;
    ap->arena = atp_arena_create(0);
    atp_buf_init(&ap->frame, PDS_SEQ_FRAME_MAX + 64);
    ap->evs = evs;
}

void seq_append_release(seq_append *ap)
{
    sqlite3_finalize(ap->ins);
    sqlite3_finalize(ap->seen);
    atp_arena_destroy(ap->arena);
    atp_buf_release(&ap->frame);
}

/* ---- broadcast (loop thread) ---- */

static void sub_send_error(sub *s, const char *error, const char *message)
{
    atp_buf b;
    atp_buf_init(&b, 1024);
    pds_seq_frame_error(&b, error, message);
    if (atp_ws_conn_send(s->ws, 2, atp_buf_slice(&b)) < 0) {
        /* the connection is already being cut: nothing else to do */
    }
    atp_buf_release(&b);
    s->closing = true;
}

static void sub_too_slow(sub *s)
{
    atomic_fetch_add(&s->q->slow, 1);
    sub_send_error(s, "ConsumerTooSlow", "Stream consumer too slow");
    atp_ws_conn_close(s->ws, 1008, "ConsumerTooSlow");
}

/* A replaying subscriber keeps live events aside, within a bound. */
static void sub_hold(sub *s, const seq_ev *e)
{
    if (s->pending.bytes + e->len > PENDING_MAX_BYTES) {
        sub_too_slow(s);
        seq_ev_free(&s->pending);
        return;
    }
    seq_ev_push(&s->pending, e->seq, atp_slice_make(e->bytes, e->len));
}

static void fan_out(pds_seq *q, const seq_ev *e)
{
    atp_ws_frame *f = atp_ws_frame_create(2, atp_slice_make(e->bytes, e->len));
    for (sub *s = q->subs; s; s = s->next) {
        if (s->closing) {
            continue;
        }
        if (!s->live) {
            sub_hold(s, e);
        } else if (e->seq > s->last) {
            s->last = e->seq;
            if (atp_ws_conn_send_frame(s->ws, f) < 0) {
                s->closing = true; /* cut off (on_slow said why) or closing */
            }
        }
    }
    atp_ws_frame_release(f);
}

static void broadcast_cb(void *arg)
{
    bcast *b = arg;
    for (size_t i = 0; i < b->evs.n; i++) {
        fan_out(b->q, &b->evs.v[i]);
    }
    seq_ev_free(&b->evs);
    free(b);
}

/* Reads committed events in (after, upto] for the broadcast (seq_mu held). */
typedef struct range_read {
    int64_t after, upto;
    ev_list *evs;
    size_t max_rows, max_bytes;
} range_read;

static int read_range(void *ctx, sqlite3 *conn, atp_err *err)
{
    range_read *r = ctx;
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(conn,
                           "SELECT seq, event FROM repo_seq WHERE seq > ?1 AND seq <= ?2"
                           " AND invalidated = 0 ORDER BY seq LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(conn, err, "repo_seq read");
    }
    sqlite3_bind_int64(st, 1, r->after);
    sqlite3_bind_int64(st, 2, r->upto);
    sqlite3_bind_int64(st, 3, (int64_t)r->max_rows);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->evs->bytes < r->max_bytes) {
        const void *p = sqlite3_column_blob(st, 1);
        seq_ev_push(r->evs, sqlite3_column_int64(st, 0),
                    atp_slice_make(p, (size_t)sqlite3_column_bytes(st, 1)));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pds_sqlx_fail(conn, err, "repo_seq read");
}

static void post_list(pds_seq *q, ev_list *evs)
{
    if (evs->n == 0 || !q->srv) {
        seq_ev_free(evs);
        return;
    }
    bcast *b = atp_xcalloc(1, sizeof *b);
    b->q = q;
    b->evs = *evs;
    memset(evs, 0, sizeof *evs);
    atp_server_call_on_loop(q->srv, broadcast_cb, b);
}

/* Hands events up to `upto` to the loop, in order: first whatever committed before them that
 * was not posted (events appended by a caller's own transaction), then `evs`. seq_mu held. */
void seq_post_events(pds_seq *q, ev_list *evs, int64_t upto)
{
    int64_t first = evs && evs->n ? evs->v[0].seq : upto + 1;
    while (q->posted < first - 1) {
        ev_list gap = {0};
        range_read rr = {q->posted, first - 1, &gap, REPLAY_ROWS, REPLAY_BYTES};
        if (pds_db_read(q->ctx->db, read_range, &rr, NULL) < 0) {
            break; /* subscribers can still replay them by cursor */
        }
        q->posted = gap.n ? gap.v[gap.n - 1].seq : first - 1;
        post_list(q, &gap);
    }
    if (evs) {
        post_list(q, evs);
    }
    if (upto > q->posted) {
        q->posted = upto;
    }
    store_max(&q->current, upto);
}

/* ---- identity and account events (service database) ---- */

static const char *status_event(pds_status st)
{
    return st == PDS_ST_ACTIVE ? NULL : pds_status_name(st);
}

/* ---- service-database changes with their events ---- */

static int read_last(void *ctx, sqlite3 *conn, atp_err *err)
{
    return last_seq(conn, ctx, err);
}

void pds_seq_after_commit(pds_seq *q)
{
    int64_t cur = 0;
    if (!q) {
        return;
    }
    pthread_mutex_lock(&q->seq_mu);
    if (pds_db_read(q->ctx->db, read_last, &cur, NULL) == 0) {
        seq_post_events(q, NULL, cur);
    }
    pthread_mutex_unlock(&q->seq_mu);
}

typedef enum change_kind { CH_IDENTITY, CH_ACCOUNT, CH_STATUS, CH_HANDLE } change_kind;

typedef struct change {
    change_kind kind;
    const char *did;
    const char *handle; /* CH_IDENTITY (nullable), CH_HANDLE */
    pds_status st;      /* CH_ACCOUNT, CH_STATUS */
    atp_buf sync;       /* CH_STATUS to active: the #sync body, when there is a repo */
    seq_append ap;
} change;

static int append_identity(seq_append *ap, sqlite3 *conn, const char *did, const char *handle,
                           atp_err *err)
{
    char now[PDS_SEQ_TIME_MAX];
    atp_buf b;
    atp_buf_init(&b, 8192);
    pds_sqlx_time_now(now);
    pds_seq_body_identity(&b, atp_slice_str(did), handle, now);
    int rc = b.err ? atp_err_set(err, ATP_ELIMIT, 0, "identity event too large")
                   : seq_append_event(ap, conn, did, "#identity", atp_buf_slice(&b), NULL, err);
    atp_buf_release(&b);
    return rc;
}

static int append_account(seq_append *ap, sqlite3 *conn, const char *did, pds_status st,
                          atp_err *err)
{
    char now[PDS_SEQ_TIME_MAX];
    atp_buf b;
    atp_buf_init(&b, 8192);
    pds_sqlx_time_now(now);
    pds_seq_body_account(&b, atp_slice_str(did), st == PDS_ST_ACTIVE, status_event(st), now);
    int rc = b.err ? atp_err_set(err, ATP_ELIMIT, 0, "account event too large")
                   : seq_append_event(ap, conn, did, "#account", atp_buf_slice(&b), NULL, err);
    atp_buf_release(&b);
    return rc;
}

int pds_seq_identity_in(pds_seq *q, sqlite3 *conn, const char *did, const char *handle,
                        atp_err *err)
{
    seq_append ap;
    seq_append_init(&ap, q, NULL);
    int rc = append_identity(&ap, conn, did, handle, err);
    seq_append_release(&ap);
    return rc;
}

int pds_seq_account_in(pds_seq *q, sqlite3 *conn, const char *did, pds_status st, atp_err *err)
{
    seq_append ap;
    seq_append_init(&ap, q, NULL);
    int rc = append_account(&ap, conn, did, st, err);
    seq_append_release(&ap);
    return rc;
}

/* UPDATE of one account row: ATP_ENOTFOUND if no row changed, ATP_ECONFLICT on a unique
 * constraint (a taken handle). */
static int update_account(sqlite3 *conn, const char *sql, const char *v, const char *did,
                          atp_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(conn, err, "account update");
    }
    sqlite3_bind_text(st, 1, v, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, did, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        return atp_err_set(err, ATP_ECONFLICT, 0, "handle already taken");
    }
    if (rc != SQLITE_DONE) {
        return pds_sqlx_fail(conn, err, "account update");
    }
    return sqlite3_changes(conn) == 0 ? atp_err_set(err, ATP_ENOTFOUND, 0, "no such account")
                                      : 0;
}

/* Activation also announces identity and the current repo state (reference order:
 * #account, #identity, #sync). */
static int status_active_extra(change *c, sqlite3 *conn, atp_err *err)
{
    char handle[PDS_HANDLE_MAX + 1] = "";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, "SELECT handle FROM account WHERE did = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, c->did, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
            snprintf(handle, sizeof handle, "%s", (const char *)sqlite3_column_text(st, 0));
        }
    }
    sqlite3_finalize(st);
    int rc = append_identity(&c->ap, conn, c->did, handle[0] ? handle : NULL, err);
    if (rc == 0 && c->sync.len > 0) {
        rc = seq_append_event(&c->ap, conn, c->did, "#sync", atp_buf_slice(&c->sync), NULL, err);
    }
    return rc;
}

static int change_status(change *c, sqlite3 *conn, atp_err *err)
{
    const void *args[] = {c->did};
    int rc = update_account(conn, "UPDATE account SET status = ?1 WHERE did = ?2",
                            pds_status_name(c->st), c->did, err);
    if (rc == 0 && c->st == PDS_ST_DELETED) {
        /* the reference drops a deleted account's history from its replay log */
        rc = seq_sql_run(conn, "DELETE FROM repo_seq WHERE did = ?1", "t", args, err);
    }
    if (rc == 0) {
        rc = append_account(&c->ap, conn, c->did, c->st, err);
    }
    if (rc == 0 && c->st == PDS_ST_ACTIVE) {
        rc = status_active_extra(c, conn, err);
    }
    return rc;
}

static int change_fn(void *ctx, sqlite3 *conn, atp_err *err)
{
    change *c = ctx;
    int rc;
    switch (c->kind) {
    case CH_IDENTITY: return append_identity(&c->ap, conn, c->did, c->handle, err);
    case CH_ACCOUNT: return append_account(&c->ap, conn, c->did, c->st, err);
    case CH_STATUS: return change_status(c, conn, err);
    default:
        rc = update_account(conn, "UPDATE account SET handle = ?1 WHERE did = ?2", c->handle,
                            c->did, err);
        return rc == 0 ? append_identity(&c->ap, conn, c->did, c->handle, err) : rc;
    }
}

/* Runs the change in one service-db transaction and broadcasts its events. */
static int run_change(pds_seq *q, change *c, atp_err *err)
{
    ev_list evs = {0};
    if (!q || !c->did) {
        return atp_err_set(err, ATP_EINVAL, 0, "no sequencer or DID");
    }
    seq_append_init(&c->ap, q, &evs);
    pthread_mutex_lock(&q->seq_mu);
    int rc = pds_db_txn(q->ctx->db, change_fn, c, err);
    if (rc == 0) {
        atomic_fetch_add(&q->txns, 1);
        atomic_fetch_add(&q->events, evs.n);
        seq_post_events(q, &evs, evs.n ? evs.v[evs.n - 1].seq : q->posted);
    }
    pthread_mutex_unlock(&q->seq_mu);
    seq_ev_free(&evs);
    seq_append_release(&c->ap);
    atp_buf_release(&c->sync);
    return rc;
}

static void change_init(change *c, change_kind kind, const char *did)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->did = did;
    atp_buf_init(&c->sync, PDS_SEQ_FRAME_MAX);
}

int pds_seq_identity(pds_seq *q, const char *did, const char *handle, atp_err *err)
{
    change c;
    change_init(&c, CH_IDENTITY, did);
    c.handle = handle;
    return run_change(q, &c, err);
}

int pds_seq_account(pds_seq *q, const char *did, pds_status st, atp_err *err)
{
    change c;
    change_init(&c, CH_ACCOUNT, did);
    c.st = st;
    return run_change(q, &c, err);
}

int pds_seq_set_handle(pds_seq *q, const char *did, const char *handle, atp_err *err)
{
    change c;
    change_init(&c, CH_HANDLE, did);
    c.handle = handle;
    return run_change(q, &c, err);
}

/* The #sync body of the account's current commit (none when it has no repo). */
static int sync_of_head(void *ctx, pds_actor_view *v, atp_err *err)
{
    change *c = ctx;
    char now[PDS_SEQ_TIME_MAX];
    atp_slice block, rev;
    char revz[16];
    if (!v->repo || !atp_repo_head(v->repo)) {
        return 0;
    }
    atp_arena *a = atp_arena_create(0);
    int rc = atp_blockstore_get(v->bs, atp_repo_head(v->repo), a, &block, err);
    if (rc == 0) {
        rev = atp_repo_rev(v->repo);
        snprintf(revz, sizeof revz, "%.*s", (int)(rev.len < 15 ? rev.len : 15),
                 (const char *)rev.ptr);
        pds_sqlx_time_now(now);
        rc = pds_seq_body_sync(&c->sync, v->did, atp_repo_head(v->repo), block, revz, now, err);
    }
    atp_arena_destroy(a);
    return rc;
}

int pds_seq_set_status(pds_seq *q, const char *did, pds_status st, atp_err *err)
{
    change c;
    change_init(&c, CH_STATUS, did);
    c.st = st;
    if (q && did && st == PDS_ST_ACTIVE && q->ctx->actors) {
        atp_err e;
        if (pds_actor_store_with(q->ctx->actors, atp_slice_str(did), false, sync_of_head, &c,
                                 &e) < 0) {
            atp_buf_reset(&c.sync); /* no repo (or unreadable): no #sync, as for a new DID */
        }
    }
    return run_change(q, &c, err);
}

int64_t pds_seq_current(pds_seq *q)
{
    return q ? atomic_load(&q->current) : 0;
}

/* ---- subscribers (loop thread) ---- */

static sub *sub_find(pds_seq *q, uint64_t id)
{
    for (sub *s = q->subs; s; s = s->next) {
        if (s->id == id) {
            return s;
        }
    }
    return NULL;
}

static void sub_link(pds_seq *q, sub *s)
{
    pthread_mutex_lock(&q->mu);
    s->id = ++q->next_sub;
    s->next = q->subs;
    if (q->subs) {
        q->subs->prev = s;
    }
    q->subs = s;
    pthread_mutex_unlock(&q->mu);
    atomic_fetch_add(&q->subscribers, 1);
}

static void sub_unlink(pds_seq *q, sub *s)
{
    pthread_mutex_lock(&q->mu);
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        q->subs = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&q->mu);
    atomic_fetch_sub(&q->subscribers, 1);
}

static void job_push(pds_seq *q, uint64_t id, int64_t after, bool wait)
{
    job *j = atp_xcalloc(1, sizeof *j), **tail;
    j->sub_id = id;
    j->after = after;
    j->wait = wait;
    pthread_mutex_lock(&q->mu);
    for (tail = &q->jobs; *tail; tail = &(*tail)->next) {
    }
    *tail = j;
    pthread_cond_broadcast(&q->jcv);
    pthread_mutex_unlock(&q->mu);
}

/* Replay done: the live events held meanwhile (less those replayed), then live. */
static void sub_go_live(sub *s)
{
    for (size_t i = 0; i < s->pending.n && !s->closing; i++) {
        const seq_ev *e = &s->pending.v[i];
        if (e->seq > s->last) {
            s->last = e->seq;
            if (atp_ws_conn_send(s->ws, 2, atp_slice_make(e->bytes, e->len)) < 0) {
                s->closing = true;
            }
        }
    }
    seq_ev_free(&s->pending);
    s->live = true;
}

static void replay_cb(void *arg)
{
    replay_res *r = arg;
    sub *s = sub_find(r->q, r->sub_id);
    for (size_t i = 0; s && !s->closing && i < r->evs.n; i++) {
        const seq_ev *e = &r->evs.v[i];
        if (e->seq > s->last) {
            s->last = e->seq;
            if (atp_ws_conn_send(s->ws, 2, atp_slice_make(e->bytes, e->len)) < 0) {
                s->closing = true;
            }
        }
    }
    if (s && !s->closing) {
        if (r->more) {
            job_push(r->q, s->id, s->last, atp_ws_conn_queued(s->ws) > REPLAY_HIGH_WATER);
        } else {
            sub_go_live(s);
        }
    }
    seq_ev_free(&r->evs);
    free(r);
}

typedef struct close_req {
    pds_seq *q;
    uint64_t id;
    char reason[32];
} close_req;

static void close_cb(void *arg)
{
    close_req *c = arg;
    sub *s = sub_find(c->q, c->id);
    if (s) {
        atp_ws_conn_close(s->ws, 1008, c->reason);
    }
    free(c);
}

/* Cursor rules (spec sync-firehose §2): future = error, older than the window = #info, then
 * replay strictly after the cursor. */
static void sub_start(pds_seq *q, sub *s, int64_t cursor)
{
    if (cursor > atomic_load(&q->current)) {
        close_req *c = atp_xcalloc(1, sizeof *c);
        sub_send_error(s, "FutureCursor", "Cursor in the future.");
        c->q = q;
        c->id = s->id;
        snprintf(c->reason, sizeof c->reason, "FutureCursor");
        atp_server_call_on_loop(q->srv, close_cb, c); /* the socket is open once on_open returns */
        return;
    }
    if (cursor > 0 && cursor < atomic_load(&q->pruned)) {
        atp_buf b;
        atp_buf_init(&b, 1024);
        pds_seq_frame_info(&b, "OutdatedCursor",
                           "Requested cursor exceeded limit. Possibly missing events");
        if (atp_ws_conn_send(s->ws, 2, atp_buf_slice(&b)) < 0) {
            s->closing = true;
        }
        atp_buf_release(&b);
    }
    job_push(q, s->id, cursor, false);
}

static int fh_open(atp_ws_conn *ws, atp_req *req, void *ud)
{
    pds_seq *q = ud;
    atp_slice v;
    int64_t cursor = -1;
    atp_err err;
    atp_err_clear(&err);
    if (atp_req_query(req, "cursor", &v) && pds_seq_parse_cursor(v, &cursor, &err) < 0) {
        atp_req_error(req, ATP_EINVAL, err.msg);
        return ATP_EINVAL;
    }
    sub *s = atp_xcalloc(1, sizeof *s);
    s->q = q;
    s->ws = ws;
    s->live = cursor < 0;
    s->last = cursor < 0 ? 0 : cursor;
    atp_ws_conn_set_data(ws, s);
    sub_link(q, s);
    if (cursor >= 0) {
        sub_start(q, s, cursor);
    }
    return 0;
}

static void fh_message(atp_ws_conn *ws, int opcode, atp_slice data, void *ud)
{
    (void)ws, (void)opcode, (void)data, (void)ud; /* the stream is one-way: ignored */
}

static void fh_close(atp_ws_conn *ws, uint16_t code, void *ud)
{
    sub *s = atp_ws_conn_data(ws);
    (void)code;
    if (s) {
        sub_unlink(ud, s);
        seq_ev_free(&s->pending);
        free(s);
    }
}

static void fh_slow(atp_ws_conn *ws, void *ud)
{
    sub *s = atp_ws_conn_data(ws);
    pds_seq *q = ud;
    if (s && !s->closing) {
        atomic_fetch_add(&q->slow, 1);
        sub_send_error(s, "ConsumerTooSlow", "Stream consumer too slow");
    }
}

void pds_routes_firehose(atp_server *s, pds_ctx *ctx)
{
    static const atp_ws_handlers h = {fh_open, fh_message, fh_close, fh_slow};
    if (ctx->seq) {
        atp_server_ws_route(s, "/xrpc/com.atproto.sync.subscribeRepos", &h, ctx->seq);
    }
}

/* ---- the replay thread ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool sub_alive(pds_seq *q, uint64_t id)
{
    return sub_find(q, id) != NULL; /* under q->mu: the loop edits the list under it */
}

static replay_res *replay_run(pds_seq *q, const job *j)
{
    replay_res *r = atp_xcalloc(1, sizeof *r);
    r->q = q;
    r->sub_id = j->sub_id;
    if (j->wait) {
        sleep_ms(20); /* the subscriber's output is full: let it drain */
        r->more = true;
        return r;
    }
    range_read rr = {j->after, PDS_SEQ_MAX, &r->evs, REPLAY_ROWS, REPLAY_BYTES};
    atp_err err;
    if (pds_db_read(q->ctx->db, read_range, &rr, &err) < 0) {
        atp_logf(ATP_LOG_WARN, "seq", "replay read: %s", err.msg);
        seq_ev_free(&r->evs);
        sleep_ms(100);
        r->more = true;
        return r;
    }
    r->more = r->evs.n == REPLAY_ROWS || r->evs.bytes >= REPLAY_BYTES;
    return r;
}

static void *replay_main(void *arg)
{
    pds_seq *q = arg;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        job *j = q->jobs;
        if (!j) {
            pthread_cond_wait(&q->jcv, &q->mu);
            continue;
        }
        q->jobs = j->next;
        pthread_mutex_unlock(&q->mu);
        replay_res *r = replay_run(q, j);
        free(j);
        pthread_mutex_lock(&q->mu);
        if (q->srv && !q->stop && sub_alive(q, r->sub_id)) {
            atp_server_call_on_loop(q->srv, replay_cb, r);
        } else {
            seq_ev_free(&r->evs);
            free(r);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- retention ---- */

typedef struct prune_ctx {
    char cutoff[PDS_SEQ_TIME_MAX];
    int64_t upto;
} prune_ctx;

static int prune_fn(void *ctx, sqlite3 *conn, atp_err *err)
{
    prune_ctx *p = ctx;
    char v[24];
    int rc = seq_sql_int(conn,
                         "SELECT max(seq) FROM (SELECT seq FROM repo_seq WHERE sequenced_at < ?1"
                         " ORDER BY seq LIMIT 5000)",
                         p->cutoff, &p->upto, err);
    if (rc < 0 || p->upto == 0) {
        return rc;
    }
    const void *a1[] = {&p->upto};
    rc = seq_sql_run(conn, "DELETE FROM repo_seq WHERE seq <= ?1", "i", a1, err);
    snprintf(v, sizeof v, "%lld", (long long)p->upto);
    const void *a2[] = {STATE_PRUNED, v};
    return rc == 0
               ? seq_sql_run(conn, "INSERT OR REPLACE INTO seq_state(name, value) VALUES (?1, ?2)",
                             "tt", a2, err)
               : rc;
}

int64_t seq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* Drops events older than the window, PRUNE_ROWS per transaction. */
static void prune(pds_seq *q)
{
    int64_t now_ms = seq_now_ms();
    for (int i = 0; i < 100; i++) {
        prune_ctx p = {{0}, 0};
        atp_err err;
        pds_sqlx_time_ms(now_ms - q->retention_ms, p.cutoff);
        if (pds_db_txn(q->ctx->db, prune_fn, &p, &err) < 0) {
            atp_logf(ATP_LOG_WARN, "seq", "pruning: %s", err.msg);
            return;
        }
        if (p.upto == 0) {
            return;
        }
        store_max(&q->pruned, p.upto);
    }
}

/* ---- the flush watermark ---- */

static int store_flushed(void *ctx, sqlite3 *conn, atp_err *err)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)*(const int64_t *)ctx);
    const void *args[] = {STATE_FLUSHED, v};
    return seq_sql_run(conn, "INSERT OR REPLACE INTO seq_state(name, value) VALUES (?1, ?2)", "tt",
                       args, err);
}

/* Stores the highest seq up to which every pending commit's event is in its account file
 * (actor_store.h): the redo after a crash starts there. The current seq is read first: a
 * commit sequenced up to it already knows its seq (seq_outbox.c sets seqs before the current
 * seq moves), so it is either counted as unflushed or in its file. */
static void note_flushed(pds_seq *q)
{
    int64_t cur = atomic_load(&q->current);
    int64_t low = q->ctx->actors ? pds_actor_store_min_unflushed(q->ctx->actors) : INT64_MAX;
    int64_t w = low == INT64_MAX || low - 1 > cur ? cur : low - 1;
    atp_err err;
    if (w > q->flushed && pds_db_txn(q->ctx->db, store_flushed, &w, &err) == 0) {
        q->flushed = w;
    }
}

static void *prune_main(void *arg)
{
    pds_seq *q = arg;
    /* A quarter of the window, within [100 ms, 60 s]. */
    int64_t every = q->retention_ms / 4 < 100 ? 100 : q->retention_ms / 4;
    every = every > 60000 ? 60000 : every;
    int64_t next_prune = seq_now_ms() + every;
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        struct timespec until = pds_deadline_ms(every < NOTE_FLUSHED_MS ? every : NOTE_FLUSHED_MS);
        if (pthread_cond_timedwait(&q->pcv, &q->mu, &until) == ETIMEDOUT && !q->stop) {
            pthread_mutex_unlock(&q->mu);
            note_flushed(q);
            if (seq_now_ms() >= next_prune) {
                prune(q);
                next_prune = seq_now_ms() + every;
            }
            pthread_mutex_lock(&q->mu);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* ---- open, recovery, close ---- */

typedef struct open_ctx {
    int64_t last, pruned, clean, flushed, has_flushed;
} open_ctx;

static int open_fn(void *ctx, sqlite3 *conn, atp_err *err)
{
    open_ctx *o = ctx;
    const void *args[] = {STATE_CLEAN};
    int rc = last_seq(conn, &o->last, err);
    if (rc == 0) {
        rc = seq_sql_int(conn, "SELECT count(*) FROM seq_state WHERE name = ?1", STATE_CLEAN,
                         &o->clean, err);
    }
    if (rc == 0 && !o->clean) {
        /* a fresh data directory has no mark yet, and no account whose outbox could matter */
        int64_t accounts = 0;
        rc = seq_sql_int(conn, "SELECT count(*) FROM account", NULL, &accounts, err);
        o->clean = rc == 0 && accounts == 0;
    }
    if (rc == 0) {
        rc = seq_sql_int(conn, "SELECT CAST(value AS INTEGER) FROM seq_state WHERE name = ?1",
                         STATE_PRUNED, &o->pruned, err);
    }
    if (rc == 0) {
        rc = seq_sql_int(conn, "SELECT count(*) FROM seq_state WHERE name = ?1", STATE_FLUSHED,
                         &o->has_flushed, err);
    }
    if (rc == 0) {
        rc = seq_sql_int(conn, "SELECT CAST(value AS INTEGER) FROM seq_state WHERE name = ?1",
                         STATE_FLUSHED, &o->flushed, err);
    }
    /* Cleared now: a crash from here on leaves no mark, so the next start recovers. */
    return rc == 0 ? seq_sql_run(conn, "DELETE FROM seq_state WHERE name = ?1", "t", args, err)
                   : rc;
}

static pds_seq *seq_alloc(pds_ctx *ctx)
{
    pds_seq *q = atp_xcalloc(1, sizeof *q);
    q->ctx = ctx;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->seq_mu, NULL);
    pthread_cond_init(&q->jcv, NULL);
    pthread_cond_init(&q->pcv, NULL);
    q->retention_ms = ctx->cfg && ctx->cfg->repo_backfill_limit_ms > 0
                          ? ctx->cfg->repo_backfill_limit_ms
                          : 72LL * 3600 * 1000;
    return q;
}

static void seq_free(pds_seq *q)
{
    while (q->jobs) {
        job *j = q->jobs;
        q->jobs = j->next;
        free(j);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->seq_mu);
    pthread_cond_destroy(&q->jcv);
    pthread_cond_destroy(&q->pcv);
    free(q);
}

int pds_seq_open(pds_ctx *ctx, pds_seq **out, atp_err *err)
{
    open_ctx o = {0, 0, 0, 0, 0};
    pds_seq *q = seq_alloc(ctx);
    int rc = pds_db_txn(ctx->db, open_fn, &o, err);
    if (rc == 0) {
        atomic_store(&q->current, o.last);
        atomic_store(&q->pruned, o.pruned);
        q->posted = o.last;
        /* without a watermark (a store older than the pending commits) the files hold it all */
        if (!o.clean && o.has_flushed && ctx->actors) {
            rc = seq_redo(q, o.flushed, err);
        }
    }
    if (rc == 0) {
        rc = seq_outbox_open(q, !o.clean && ctx->actors, err);
    }
    if (rc == 0) {
        /* every file now holds every event sequenced so far */
        int64_t cur = atomic_load(&q->current);
        rc = pds_db_txn(ctx->db, store_flushed, &cur, err);
        q->flushed = cur;
    }
    if (rc == 0) {
        prune(q);
        rc = pthread_create(&q->replay_thr, NULL, replay_main, q) == 0 &&
                     pthread_create(&q->prune_thr, NULL, prune_main, q) == 0
                 ? 0
                 : atp_err_set(err, ATP_EIO, 0, "sequencer threads");
        q->threads = rc == 0; /* (a failed second create is not undone: start-up aborts) */
    }
    if (rc < 0) {
        seq_outbox_close(q);
        seq_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void pds_seq_attach(pds_seq *q, atp_server *srv)
{
    if (q) {
        pthread_mutex_lock(&q->mu);
        q->srv = srv;
        pthread_mutex_unlock(&q->mu);
    }
}

void pds_seq_detach(pds_seq *q)
{
    if (!q) {
        return;
    }
    seq_outbox_stop(q);
    pthread_mutex_lock(&q->mu);
    q->srv = NULL;
    pthread_mutex_unlock(&q->mu);
}

static int mark_clean(void *ctx, sqlite3 *conn, atp_err *err)
{
    const void *args[] = {STATE_CLEAN, "1"};
    (void)ctx;
    return seq_sql_run(conn, "INSERT OR REPLACE INTO seq_state(name, value) VALUES (?1, ?2)", "tt",
                       args, err);
}

void pds_seq_close(pds_seq *q)
{
    atp_err err;
    if (!q) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    q->srv = NULL; /* the server is gone or going: no more hand-offs to its loop */
    pthread_cond_broadcast(&q->jcv);
    pthread_cond_broadcast(&q->pcv);
    pthread_mutex_unlock(&q->mu);
    if (q->threads) {
        pthread_join(q->replay_thr, NULL);
        pthread_join(q->prune_thr, NULL);
    }
    seq_outbox_close(q);
    /* Everything is sequenced now: every pending commit goes into its file, then the
     * watermark; if a file refused, no clean mark, so the next start redoes from it. */
    if (q->ctx->actors && pds_actor_store_flush_all(q->ctx->actors, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "seq", "writing pending commits at stop: %s", err.msg);
        atomic_store(&q->dirty, true);
    }
    note_flushed(q);
    /* A failed move may have left events in an outbox: then the next start must scan. */
    if (!q->dirty && pds_db_txn(q->ctx->db, mark_clean, NULL, &err) < 0) {
        atp_logf(ATP_LOG_WARN, "seq", "clean-stop mark: %s", err.msg);
    }
    seq_free(q);
}

void pds_seq_metrics(pds_seq *q, atp_buf *out)
{
    if (!q) {
        return;
    }
    atp_buf_printf(out, "atp_pds_seq_current %lld\n", (long long)atomic_load(&q->current));
    atp_buf_printf(out, "atp_pds_seq_events_total %llu\n",
                   (unsigned long long)atomic_load(&q->events));
    atp_buf_printf(out, "atp_pds_seq_transactions_total %llu\n",
                   (unsigned long long)atomic_load(&q->txns));
    atp_buf_printf(out, "atp_pds_firehose_subscribers %llu\n",
                   (unsigned long long)atomic_load(&q->subscribers));
    atp_buf_printf(out, "atp_pds_firehose_slow_consumers_total %llu\n",
                   (unsigned long long)atomic_load(&q->slow));
}

/* plc/src/store.c: SQLite storage for the directory (see store.h for the model). */
#include "store.h"

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 32

struct plc_store {
    sqlite3 *conns[POOL_MAX];
    bool busy[POOL_MAX];
    unsigned n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Writers queue here rather than in SQLite's busy handler, which sleeps in steps of
     * milliseconds and made 4 concurrent writers slower than 1. */
    pthread_mutex_t write_mu;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS operations ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " did TEXT NOT NULL,"
    " cid TEXT NOT NULL,"
    " op_json TEXT NOT NULL,"
    " op_cbor BLOB NOT NULL,"
    " nullified INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL,"
    " UNIQUE (did, cid));"
    "CREATE INDEX IF NOT EXISTS operations_did ON operations (did, created_at);"
    "CREATE INDEX IF NOT EXISTS operations_created ON operations (created_at, seq);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

/* The one checked size_t -> int edge for sqlite lengths (STYLE.md "Warnings"). Our values are
 * bounded far below INT_MAX by the body limit; a larger one is a programming error, and -1
 * would make sqlite read to a NUL, so clamp to 0 instead. */
static int sql_len(size_t n)
{
    return n > (size_t)INT_MAX ? 0 : (int)n;
}

static int db_err(sqlite3 *db, atp_err *err, const char *what)
{
    return atp_err_set(err, ATP_EIO, 0, "sqlite: %s: %.80s", what, sqlite3_errmsg(db));
}

static int exec_sql(sqlite3 *db, const char *sql, atp_err *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return db_err(db, err, sql);
    }
    return 0;
}

static int open_conn(const char *path, bool first, sqlite3 **out, atp_err *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        int rc = atp_err_set(err, ATP_EIO, 0, "sqlite: open %.60s: %.60s", path,
                             db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    /* Writers wait for each other rather than fail; FULL makes each commit durable in WAL. */
    sqlite3_busy_timeout(db, 10000);
    if (exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err) < 0 ||
        (first && exec_sql(db, schema_sql, err) < 0)) {
        sqlite3_close(db);
        return ATP_EIO;
    }
    *out = db;
    return 0;
}

int plc_store_open(const char *path, unsigned nconns, plc_store **out, atp_err *err)
{
    plc_store *s = atp_xcalloc(1, sizeof *s);
    s->n = nconns < 1 ? 1 : (nconns > POOL_MAX ? POOL_MAX : nconns);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    for (unsigned i = 0; i < s->n; i++) {
        if (open_conn(path, i == 0, &s->conns[i], err) < 0) {
            s->n = i;
            plc_store_close(s);
            return ATP_EIO;
        }
    }
    *out = s;
    return 0;
}

void plc_store_close(plc_store *s)
{
    if (!s) {
        return;
    }
    if (s->n > 0) {
        /* Fold the WAL back so the file alone is the database after a clean stop. */
        sqlite3_exec(s->conns[0], "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    }
    for (unsigned i = 0; i < s->n; i++) {
        sqlite3_close(s->conns[i]);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    free(s);
}

static unsigned conn_take(plc_store *s)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (unsigned i = 0; i < s->n; i++) {
            if (!s->busy[i]) {
                s->busy[i] = true;
                pthread_mutex_unlock(&s->mu);
                return i;
            }
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
}

static void conn_give(plc_store *s, unsigned i)
{
    pthread_mutex_lock(&s->mu);
    s->busy[i] = false;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- timestamps ---- */

void plc_ts_format(int64_t unix_ms, char out[PLC_TS_LEN + 1])
{
    /* Floor division: times before 1970 keep a positive millisecond part. */
    int64_t q = unix_ms / 1000 - (unix_ms % 1000 < 0 ? 1 : 0);
    time_t secs = (time_t)q;
    struct tm tm;
    char tmp[96]; /* roomy: the compiler cannot see that every field has its fixed width */
    gmtime_r(&secs, &tm);
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(unix_ms - q * 1000));
    memcpy(out, tmp, PLC_TS_LEN);
    out[PLC_TS_LEN] = '\0';
}

int64_t plc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool digits(const uint8_t *p, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Fraction (".ddd...", cut to milliseconds) then the zone; returns the ms or -1. */
static int parse_frac_zone(atp_slice rest)
{
    size_t i = 0;
    int ms = 0, scale = 100;
    if (rest.len > 0 && rest.ptr[0] == '.') {
        for (i = 1; i < rest.len && rest.ptr[i] >= '0' && rest.ptr[i] <= '9'; i++) {
            ms += scale * (rest.ptr[i] - '0');
            scale /= 10;
        }
        if (i == 1) {
            return -1;
        }
    }
    rest = atp_slice_sub(rest, i, rest.len - i);
    if (atp_slice_eq_str(rest, "Z") || atp_slice_eq_str(rest, "+00:00")) {
        return ms;
    }
    return -1;
}

int plc_ts_parse(atp_slice s, int64_t *out)
{
    struct tm tm, back;
    int y, mo, d, h, mi, se, ms;
    time_t secs;
    const uint8_t *p = s.ptr;
    if (s.len < 20 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't') ||
        p[13] != ':' || p[16] != ':' || !digits(p, 4, &y) || !digits(p + 5, 2, &mo) ||
        !digits(p + 8, 2, &d) || !digits(p + 11, 2, &h) || !digits(p + 14, 2, &mi) ||
        !digits(p + 17, 2, &se)) {
        return ATP_EINVAL;
    }
    ms = parse_frac_zone(atp_slice_sub(s, 19, s.len - 19));
    if (ms < 0 || h > 23 || mi > 59 || se > 59) {
        return ATP_EINVAL;
    }
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
    tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = se;
    secs = timegm(&tm);
    /* timegm normalises (Feb 30 -> Mar 2): a date that does not come back unchanged is bad. */
    if (!gmtime_r(&secs, &back) || back.tm_year != y - 1900 || back.tm_mon != mo - 1 ||
        back.tm_mday != d) {
        return ATP_EINVAL;
    }
    *out = (int64_t)secs * 1000 + ms;
    return 0;
}

/* ---- reading rows ---- */

static const char *col_str(sqlite3_stmt *st, int i, atp_arena *a)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    return atp_arena_dup(a, t ? (const void *)t : "", t ? (size_t)n : 0);
}

static atp_slice col_bytes(sqlite3_stmt *st, int i, atp_arena *a)
{
    const void *b = sqlite3_column_blob(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    return atp_slice_make(b ? atp_arena_dup(a, b, n) : atp_arena_dup(a, "", 0), b ? n : 0);
}

#define ROW_COLS "seq, did, cid, op_json, op_cbor, nullified, created_at"

static void read_row(sqlite3_stmt *st, atp_arena *a, plc_row *r)
{
    const char *json;
    r->seq = sqlite3_column_int64(st, 0);
    r->did = col_str(st, 1, a);
    r->cid = col_str(st, 2, a);
    json = col_str(st, 3, a);
    r->json = atp_slice_str(json);
    r->cbor = col_bytes(st, 4, a);
    r->nullified = sqlite3_column_int(st, 5) != 0;
    r->created_at = col_str(st, 6, a);
}

static int history_on(sqlite3 *db, const char *did, atp_arena *a, plc_row **out, size_t *n,
                      atp_err *err)
{
    static const char sql[] =
        "SELECT " ROW_COLS " FROM operations WHERE did = ? ORDER BY created_at, seq";
    sqlite3_stmt *st = NULL;
    plc_row *rows = NULL;
    size_t len = 0, cap = 0;
    int rc;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return db_err(db, err, "prepare history");
    }
    sqlite3_bind_text(st, 1, did, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            /* Histories are short (a handful of ops); grow in the arena by doubling. */
            plc_row *bigger = atp_arena_alloc(a, (cap ? cap * 2 : 8) * sizeof *rows);
            if (len) {
                memcpy(bigger, rows, len * sizeof *rows);
            }
            rows = bigger;
            cap = cap ? cap * 2 : 8;
        }
        read_row(st, a, &rows[len++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return db_err(db, err, "read history");
    }
    *out = rows;
    *n = len;
    return 0;
}

int plc_store_history(plc_store *s, const char *did, atp_arena *a, plc_row **out, size_t *n,
                      atp_err *err)
{
    unsigned c = conn_take(s);
    int rc = history_on(s->conns[c], did, a, out, n, err);
    conn_give(s, c);
    return rc;
}

/* ---- writing ---- */

static int step_done(sqlite3 *db, sqlite3_stmt *st, atp_err *err, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return db_err(db, err, what);
    }
    return 0;
}

static int insert_row(sqlite3 *db, const plc_row *r, const char *ts, atp_err *err)
{
    static const char sql[] = "INSERT INTO operations (did, cid, op_json, op_cbor, nullified, "
                              "created_at) VALUES (?, ?, ?, ?, 0, ?)";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return db_err(db, err, "prepare insert");
    }
    sqlite3_bind_text(st, 1, r->did, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->cid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, (const char *)r->json.ptr, sql_len(r->json.len), SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, r->cbor.ptr, sql_len(r->cbor.len), SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ts, -1, SQLITE_STATIC);
    return step_done(db, st, err, "insert");
}

static int nullify(sqlite3 *db, const char *did, const plc_decision *d, atp_err *err)
{
    static const char sql[] = "UPDATE operations SET nullified = 1 WHERE did = ? AND cid = ?";
    for (size_t i = 0; i < d->n_nullify; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            return db_err(db, err, "prepare nullify");
        }
        sqlite3_bind_text(st, 1, did, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, d->nullify[i], -1, SQLITE_STATIC);
        if (step_done(db, st, err, "nullify") < 0) {
            return ATP_EIO;
        }
    }
    return 0;
}

/* Our own timestamp: now, but strictly after the newest stored op (clocks step back, and two
 * ops in one millisecond must still sort apart for /export paging). */
static int next_ts(sqlite3 *db, char out[PLC_TS_LEN + 1], atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int64_t now = plc_now_ms(), last = 0;
    int rc;
    if (sqlite3_prepare_v2(db, "SELECT MAX(created_at) FROM operations", -1, &st, NULL) !=
        SQLITE_OK) {
        return db_err(db, err, "prepare max");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t && plc_ts_parse(atp_slice_str((const char *)t), &last) < 0) {
            last = 0;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        return db_err(db, err, "max created_at");
    }
    plc_ts_format(now > last ? now : last + 1, out);
    return 0;
}

static bool has_cid(const plc_row *hist, size_t n, const char *cid)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(hist[i].cid, cid) == 0) {
            return true;
        }
    }
    return false;
}

typedef struct apply_ctx {
    const char *did, *cid, *created_at;
    plc_validate_fn fn;
    void *ud;
    char *ts_out;
} apply_ctx;

/* Everything between BEGIN IMMEDIATE and COMMIT; any failure leaves the rollback to the caller. */
static int apply_in_txn(sqlite3 *db, atp_arena *a, const apply_ctx *c, atp_err *err)
{
    plc_row *hist = NULL;
    size_t n = 0;
    plc_decision d;
    char ts[PLC_TS_LEN + 1];
    int rc = history_on(db, c->did, a, &hist, &n, err);
    if (rc == 0 && c->created_at) {
        snprintf(ts, sizeof ts, "%s", c->created_at);
    } else if (rc == 0) {
        rc = next_ts(db, ts, err);
    }
    if (rc < 0) {
        return rc;
    }
    if (has_cid(hist, n, c->cid)) {
        return atp_err_set(err, ATP_ECONFLICT, 0, "operation already stored");
    }
    memset(&d, 0, sizeof d);
    rc = c->fn(c->ud, a, hist, n, ts, &d, err);
    if (rc < 0) {
        return rc;
    }
    if (has_cid(hist, n, d.row.cid)) {
        return atp_err_set(err, ATP_ECONFLICT, 0, "operation already stored");
    }
    rc = insert_row(db, &d.row, ts, err);
    if (rc == 0) {
        rc = nullify(db, c->did, &d, err);
    }
    if (rc == 0 && c->ts_out) {
        memcpy(c->ts_out, ts, sizeof ts);
    }
    return rc;
}

int plc_store_apply(plc_store *s, const char *did, const char *cid, const char *created_at,
                    plc_validate_fn fn, void *ud, char *ts_out, atp_err *err)
{
    apply_ctx c = {did, cid, created_at, fn, ud, ts_out};
    atp_arena *a = atp_arena_create(0);
    unsigned ci = conn_take(s);
    sqlite3 *db = s->conns[ci];
    int rc;
    pthread_mutex_lock(&s->write_mu);
    rc = exec_sql(db, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        rc = apply_in_txn(db, a, &c, err);
        if (rc == 0) {
            rc = exec_sql(db, "COMMIT", err);
        }
        if (rc < 0) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    pthread_mutex_unlock(&s->write_mu);
    conn_give(s, ci);
    atp_arena_destroy(a);
    return rc;
}

/* ---- export ---- */

static void export_line(sqlite3_stmt *st, bool seq_shape, bool first, atp_buf *out)
{
    const char *did = (const char *)sqlite3_column_text(st, 1);
    const char *cid = (const char *)sqlite3_column_text(st, 2);
    const void *json = sqlite3_column_text(st, 3);
    size_t json_len = (size_t)sqlite3_column_bytes(st, 3);
    const char *ts = (const char *)sqlite3_column_text(st, 6);
    /* did, cid and created_at were validated on the way in (no characters needing escapes);
     * op_json is stored as JSON text already. Lines are joined by '\n' with none after the
     * last, as the reference directory does (@did-plc/lib parses every split piece). */
    if (!first) {
        atp_buf_append_byte(out, '\n');
    }
    if (seq_shape) {
        atp_buf_printf(out, "{\"type\":\"sequenced_op\",\"did\":\"%s\",\"operation\":", did);
    } else {
        atp_buf_printf(out, "{\"did\":\"%s\",\"operation\":", did);
    }
    atp_buf_append(out, json, json_len);
    atp_buf_printf(out, ",\"cid\":\"%s\"", cid);
    if (!seq_shape) {
        atp_buf_printf(out, ",\"nullified\":%s", sqlite3_column_int(st, 5) ? "true" : "false");
    }
    atp_buf_printf(out, ",\"createdAt\":\"%s\"", ts);
    if (seq_shape) {
        atp_buf_printf(out, ",\"seq\":%lld", (long long)sqlite3_column_int64(st, 0));
    }
    atp_buf_append_byte(out, '}');
}

static int export_on(sqlite3 *db, const char *after_ts, int64_t after_seq, unsigned count,
                     atp_buf *out, unsigned *n, atp_err *err)
{
    static const char by_ts[] = "SELECT " ROW_COLS " FROM operations WHERE created_at > ? "
                                "ORDER BY created_at, seq LIMIT ?";
    static const char by_seq[] = "SELECT " ROW_COLS " FROM operations WHERE seq > ? "
                                 "ORDER BY seq LIMIT ?";
    bool seq_shape = after_seq >= 0;
    sqlite3_stmt *st = NULL;
    unsigned lines = 0;
    int rc;
    if (sqlite3_prepare_v2(db, seq_shape ? by_seq : by_ts, -1, &st, NULL) != SQLITE_OK) {
        return db_err(db, err, "prepare export");
    }
    if (seq_shape) {
        sqlite3_bind_int64(st, 1, after_seq);
    } else {
        sqlite3_bind_text(st, 1, after_ts ? after_ts : "", -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 2, (sqlite3_int64)count);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        export_line(st, seq_shape, lines == 0, out);
        lines++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return db_err(db, err, "export");
    }
    *n = lines;
    return 0;
}

int plc_store_export(plc_store *s, const char *after_ts, int64_t after_seq, unsigned count,
                     atp_buf *out, unsigned *n, atp_err *err)
{
    unsigned c = conn_take(s);
    int rc = export_on(s->conns[c], after_ts, after_seq, count, out, n, err);
    conn_give(s, c);
    return rc;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out, atp_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return db_err(db, err, "prepare count");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : db_err(db, err, "count");
}

int plc_store_counts(plc_store *s, int64_t *ops, int64_t *dids, atp_err *err)
{
    unsigned c = conn_take(s);
    int64_t o = 0, d = 0;
    int rc = query_int(s->conns[c], "SELECT COUNT(*) FROM operations", &o, err);
    if (rc == 0) {
        rc = query_int(s->conns[c], "SELECT COUNT(DISTINCT did) FROM operations", &d, err);
    }
    conn_give(s, c);
    if (rc == 0) {
        *ops = o;
        *dids = d;
    }
    return rc;
}

/* ---- mirror cursor ---- */

int plc_store_cursor_get(plc_store *s, char out[PLC_TS_LEN + 1], atp_err *err)
{
    unsigned c = conn_take(s);
    sqlite3 *db = s->conns[c];
    sqlite3_stmt *st = NULL;
    int rc = 0;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'mirror_cursor'", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = db_err(db, err, "prepare cursor");
    } else {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            snprintf(out, PLC_TS_LEN + 1, "%s", t ? (const char *)t : "");
        } else if (step != SQLITE_DONE) {
            rc = db_err(db, err, "read cursor");
        }
        sqlite3_finalize(st);
    }
    conn_give(s, c);
    return rc;
}

int plc_store_cursor_set(plc_store *s, const char *ts, atp_err *err)
{
    static const char sql[] = "INSERT INTO meta (key, value) VALUES ('mirror_cursor', ?) "
                              "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    unsigned c = conn_take(s);
    sqlite3 *db = s->conns[c];
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(db, err, "prepare cursor set");
    } else {
        sqlite3_bind_text(st, 1, ts, -1, SQLITE_STATIC);
        rc = step_done(db, st, err, "cursor set");
    }
    conn_give(s, c);
    return rc;
}

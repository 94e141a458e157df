/* pds/src/sqlx.c: see sqlx.h. */
#include "sqlx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SQLX_PATH_MAX 4096

int pds_sqlx_fail(sqlite3 *db, atp_err *err, const char *what)
{
    return atp_err_set(err, ATP_EIO, 0, "%s: %.100s", what, sqlite3_errmsg(db));
}

int pds_sqlx_exec(sqlite3 *db, const char *sql, atp_err *err)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return pds_sqlx_fail(db, err, "sqlite exec");
    }
    return 0;
}

sqlite3_stmt *pds_sqlx_prepare_texts(sqlite3 *db, const char *sql, int n,
                                     const char *const *args)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        /* a NULL text binds SQL NULL, as sqlite3_bind_null would */
        sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_TRANSIENT);
    }
    return st;
}

int pds_sqlx_step_done(sqlite3 *db, sqlite3_stmt *st, atp_err *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : pds_sqlx_fail(db, err, "sqlite step");
}

void pds_sqlx_bind_slice(sqlite3_stmt *st, int i, atp_slice s)
{
    sqlite3_bind_text(st, i, (const char *)s.ptr, (int)s.len, SQLITE_TRANSIENT);
}

void pds_sqlx_bind_cid(sqlite3_stmt *st, int i, const atp_cid *c)
{
    sqlite3_bind_blob(st, i, c->bytes, c->len, SQLITE_TRANSIENT);
}

int pds_sqlx_column_cid(sqlite3_stmt *st, int col, atp_cid *out)
{
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!p || n <= 0 || n > ATP_CID_MAX) {
        return ATP_EIO;
    }
    out->len = (uint8_t)n;
    memcpy(out->bytes, p, (size_t)n);
    return 0;
}

void pds_sqlx_time_ms(int64_t ms, char out[PDS_SQLX_TIME_MAX])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, PDS_SQLX_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, PDS_SQLX_TIME_MAX - n, ".%03dZ", (int)(ms % 1000));
}

void pds_sqlx_time_now(char out[PDS_SQLX_TIME_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pds_sqlx_time_ms((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000L, out);
}

int pds_sqlx_mkdir_p(const char *path, unsigned mode, atp_err *err)
{
    char tmp[SQLX_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "bad directory path");
    }
    if (n >= sizeof tmp) {
        return atp_err_set(err, ATP_ELIMIT, 0, "directory path too long");
    }
    memcpy(tmp, path, n + 1);
    /* each prefix ending at a '/' (and the whole path) in turn, parents first */
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') {
            continue;
        }
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) {
            return atp_err_set(err, ATP_EIO, 0, "mkdir %.200s: %s", tmp, strerror(errno));
        }
        tmp[i] = c;
    }
    return 0;
}

int pds_sqlx_sync_file(const char *path, atp_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT
                   ? 0
                   : atp_err_set(err, ATP_EIO, 0, "open %.200s: %s", path, strerror(errno));
    }
    int rc = fdatasync(fd) == 0
                 ? 0
                 : atp_err_set(err, ATP_EIO, 0, "fsync %.200s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

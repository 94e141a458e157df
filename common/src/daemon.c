/* daemon.c: the daemons' shared start-up. Values are the caller's business (its set
 * callback); here only the order (environment, then flags) and the flag syntax live. */
#include "atp/daemon.h"

#include <sqlite3.h>

#include "atp/sqlvfs.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_env(const atp_daemon_opt *opts, size_t n, atp_daemon_set_fn set, void *ud,
                    atp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(opts[i].env);
        if (v && set(ud, opts[i].id, opts[i].env, v, err) < 0) {
            return ATP_EINVAL;
        }
    }
    return 0;
}

/* The entry whose flag is exactly arg[0..len): "--port=1" names "--port", not "--port=". */
static const atp_daemon_opt *find_flag(const atp_daemon_opt *opts, size_t n, const char *arg,
                                       size_t len)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = opts[i].flag;
        if (f && strlen(f) == len && memcmp(f, arg, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static int load_flags(const atp_daemon_opt *opts, size_t n, int argc, char **argv,
                      const char *usage, atp_daemon_set_fn set, void *ud, atp_err *err)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '='), *v;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const atp_daemon_opt *o;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            return atp_err_set(err, ATP_ENOTFOUND, 0, "%s", usage);
        }
        o = find_flag(opts, n, arg, len);
        if (!o) {
            return atp_err_set(err, ATP_EINVAL, 0, "unknown flag \"%.60s\"", arg);
        }
        if (!eq && i + 1 >= argc) {
            return atp_err_set(err, ATP_EINVAL, 0, "%s: missing value", o->flag);
        }
        v = eq ? eq + 1 : argv[++i];
        if (set(ud, o->id, o->flag, v, err) < 0) {
            return ATP_EINVAL;
        }
    }
    return 0;
}

int atp_daemon_opts_load(const atp_daemon_opt *opts, size_t n, int argc, char **argv,
                         const char *usage, atp_daemon_set_fn set, void *ud, atp_err *err)
{
    int rc = load_env(opts, n, set, ud, err);
    if (rc == 0) {
        rc = load_flags(opts, n, argc, argv, usage, set, ud, err);
    }
    return rc;
}

int atp_daemon_configure(const atp_daemon_boot *b, int argc, char **argv)
{
    atp_err err;
    int rc;
    atp_err_clear(&err);
    /* Before any database opens: SQLite's allocation statistics take one process-wide mutex
     * on every malloc, which every worker thread contended for (measured on pds writes). */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (atp_log_open(b->svc, ATP_LOG_INFO, NULL, &err) < 0) {
        return 1;
    }
    /* Every connection the daemon opens writes each WAL commit in one call (atp/sqlvfs.h). */
    if (atp_sqlvfs_register(true, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "config", "%s", err.msg);
        return 1;
    }
    rc = b->load(argc, argv, b->cfg, &err);
    if (rc == ATP_ENOTFOUND) {
        printf("%s\n", err.msg);
        return 0;
    }
    if (rc < 0) {
        atp_logf(ATP_LOG_ERROR, "config", "bad configuration: %s", err.msg);
        return b->ex_config;
    }
    if (atp_log_open(b->svc, *b->log_level, b->log_dest[0] ? b->log_dest : NULL, &err) < 0) {
        atp_logf(ATP_LOG_ERROR, "config", "LOG_DESTINATION: %s", err.msg);
        return b->ex_config;
    }
    return ATP_DAEMON_RUN;
}

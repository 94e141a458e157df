/* atp/daemon.h: what the daemons (plc, pds) share at start-up: the option table parser
 * (environment first, then flags override) and the log/config sequence of main().
 *
 * Each daemon keeps its own option table and its own value handling (a set callback); this
 * module only walks the table. It reads the environment (getenv) and argv, nothing else. Exit
 * statuses stay the daemon's: a bad configuration is reported as the caller's ex_config.
 */
#ifndef ATP_DAEMON_H
#define ATP_DAEMON_H

#include <stddef.h>

#include "atp/err.h"
#include "atp/log.h"

/* One option: the daemon's own id, its flag ("--port"; NULL: environment only) and its
 * environment variable ("PLC_PORT"; never NULL). */
typedef struct atp_daemon_opt {
    int id;
    const char *flag;
    const char *env;
} atp_daemon_opt;

/* Stores `value` of option `id` (named `name`: the variable or the flag, for messages) into
 * the daemon's configuration `ud`. Returns 0, or < 0 with err set on a bad value. */
typedef int (*atp_daemon_set_fn)(void *ud, int id, const char *name, const char *value,
                                 atp_err *err);

/* Calls `set` for each of opts[0..n) whose variable is set (in table order), then for each
 * flag of argv[1..argc) ("--flag value" or "--flag=value"), so flags override variables.
 * "--help" or "-h" gives ATP_ENOTFOUND with `usage` in err->msg. ATP_EINVAL on an unknown
 * flag, a flag without its value, or a value `set` refused (err as `set` left it). Stops at
 * the first error; values stored before it stay stored. */
ATP_NODISCARD int atp_daemon_opts_load(const atp_daemon_opt *opts, size_t n, int argc,
                                       char **argv, const char *usage, atp_daemon_set_fn set,
                                       void *ud, atp_err *err);

/* Loads a daemon's configuration into `cfg`: 0, ATP_ENOTFOUND (usage in err->msg) or < 0. */
typedef int (*atp_daemon_load_fn)(int argc, char **argv, void *cfg, atp_err *err);

/* The start-up of a daemon's main(). */
typedef struct atp_daemon_boot {
    const char *svc;                 /* log sink name ("plc") */
    int ex_config;                   /* exit status of a bad configuration (78, EX_CONFIG) */
    atp_daemon_load_fn load;         /* fills *cfg */
    void *cfg;                       /* the daemon's configuration */
    const atp_log_level *log_level;  /* inside *cfg: read once load succeeded */
    const char *log_dest;            /* inside *cfg: log file, "" = stderr */
} atp_daemon_boot;

/* atp_daemon_configure's result when the daemon should go on and run. */
#define ATP_DAEMON_RUN (-1)

/* Sets the process-wide library options (SQLite without allocation statistics), then opens
 * the log sink b->svc on stderr at info (so even a configuration error is one of our
 * log lines), loads the configuration, then reopens the log at the configured level and
 * destination. Returns ATP_DAEMON_RUN to go on, else the process status to exit with: 0 after
 * --help (usage printed on stdout), 1 if the log can't be opened at all, b->ex_config on a bad
 * configuration or log destination (logged). */
ATP_NODISCARD int atp_daemon_configure(const atp_daemon_boot *b, int argc, char **argv);

#endif

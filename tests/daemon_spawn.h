/* daemon_spawn.h: spawning a built daemon (plc, pds) for an end-to-end test. Header-only, like
 * t.h (include t.h first or let this include it).
 *
 *   t_daemon d;
 *   const char *const args[] = {"--port", "0", "--db", path, NULL};
 *   if (t_daemon_start(&d, tmpdir, "plc", PLC_BIN, NULL, args)) { ... d.port ... }
 *   T_EQ(t_daemon_stop(&d, SIGTERM), 0);
 *
 * The daemon's stderr (its JSON log) goes to DIR/NAME.log; it is ready once it has logged
 * "listening" with the port it bound (so --port 0 gives an ephemeral port).
 */
#ifndef ATP_DAEMON_SPAWN_H
#define ATP_DAEMON_SPAWN_H

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

typedef struct t_daemon {
    pid_t pid; /* 0 once stopped */
    unsigned port;
    char log[160];
} t_daemon;

static void t_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The port of the "listening" line of the log at `path`, 0 while there is none. */
static unsigned t_daemon_log_port(const char *path)
{
    char buf[16384];
    size_t len;
    const char *p;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return 0;
    }
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    p = strstr(buf, "\"msg\":\"listening\"");
    p = p ? strstr(p, "\"port\":\"") : NULL;
    return p ? (unsigned)strtoul(p + 8, NULL, 10) : 0;
}

/* setenv from "K=V" (child side, before exec). */
static void t_setenv_kv(const char *kv)
{
    char k[128];
    const char *eq = strchr(kv, '=');
    size_t n = eq ? (size_t)(eq - kv) : 0;
    if (n == 0 || n >= sizeof k) {
        return;
    }
    memcpy(k, kv, n);
    k[n] = '\0';
    setenv(k, eq + 1, 1);
}

/* Child side: stderr to the log, the environment added, then exec (never returns). */
static void t_daemon__exec(const t_daemon *d, const char *name, const char *bin,
                           const char *const *env, const char *const *args)
{
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[16] = {strdup(name)};
    size_t n = 1;
    if (fd >= 0) {
        dup2(fd, 2);
        close(fd);
    }
    for (size_t i = 0; env && env[i]; i++) {
        t_setenv_kv(env[i]);
    }
    for (size_t i = 0; args && args[i] && n < 15; i++) {
        argv[n++] = strdup(args[i]);
    }
    argv[n] = NULL;
    execv(bin, argv);
    _exit(127);
}

/* Starts `bin` as `name` with `env` (NULL-terminated "K=V" list added to ours) and `args`
 * (NULL-terminated, at most 14), its log in DIR/NAME.log, and waits up to 10 s for it to
 * listen: true with d->port set, else a test failure (d->pid stays set for t_daemon_stop). */
static bool t_daemon_start(t_daemon *d, const char *dir, const char *name, const char *bin,
                           const char *const *env, const char *const *args)
{
    snprintf(d->log, sizeof d->log, "%s/%s.log", dir, name);
    d->port = 0;
    d->pid = fork();
    if (d->pid == 0) {
        t_daemon__exec(d, name, bin, env, args);
    }
    for (int i = 0; i < 400 && d->pid > 0; i++) {
        d->port = t_daemon_log_port(d->log);
        if (d->port) {
            return true;
        }
        t_sleep_ms(25);
    }
    T_FAILF("%s did not start (see %s)", name, d->log);
    return false;
}

/* Sends `sig` and returns the exit status (-1 if killed by a signal, -2 if not running). */
static int t_daemon_stop(t_daemon *d, int sig)
{
    int st = 0;
    if (d->pid <= 0) {
        return -2;
    }
    kill(d->pid, sig);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif

/* test_daemon: the shared option table parser (environment, then flags) and the start-up. */
#include <stdlib.h>
#include <string.h>

#include "atp/daemon.h"
#include "t.h"

enum { O_PORT, O_NAME, O_SECRET };

static const atp_daemon_opt opts[] = {
    {O_PORT, "--port", "TD_PORT"},
    {O_NAME, "--name", "TD_NAME"},
    {O_SECRET, NULL, "TD_SECRET"},
};

typedef struct cfg {
    int port;
    char name[16];
    char secret[16];
    char last_name[16]; /* the name the last set call was given */
    int calls;
    atp_log_level level;
    char dest[64];
} cfg;

static int set(void *ud, int id, const char *name, const char *v, atp_err *err)
{
    cfg *c = ud;
    char *dst = id == O_NAME ? c->name : c->secret;
    c->calls++;
    snprintf(c->last_name, sizeof c->last_name, "%s", name);
    if (strcmp(v, "bad") == 0) {
        return atp_err_set(err, ATP_EINVAL, 0, "%s: bad value", name);
    }
    if (id == O_PORT) {
        c->port = (int)strtol(v, NULL, 10);
    } else {
        snprintf(dst, 16, "%s", v);
    }
    return 0;
}

/* argv from a space-separated line; returns argc. One static buffer: use before the next. */
static int mkargv(const char *line, char **argv)
{
    static char buf[256];
    char *p = buf;
    int n = 0;
    snprintf(buf, sizeof buf, "%s", line);
    while (p && n < 15) {
        argv[n++] = p;
        p = strchr(p, ' ');
        if (p) {
            *p++ = '\0';
        }
    }
    argv[n] = NULL;
    return n;
}

static int load_argv(cfg *c, int argc, char **argv, atp_err *err)
{
    memset(c, 0, sizeof *c);
    atp_err_clear(err);
    return atp_daemon_opts_load(opts, 3, argc, argv, "usage: td [--port N]", set, c, err);
}

static int load(cfg *c, const char *line, atp_err *err)
{
    char *argv[16];
    int argc = mkargv(line, argv);
    return load_argv(c, argc, argv, err);
}

static int configure(const atp_daemon_boot *b, const char *line)
{
    char *argv[16];
    int argc = mkargv(line, argv);
    return atp_daemon_configure(b, argc, argv);
}

static void clear_env(void)
{
    unsetenv("TD_PORT");
    unsetenv("TD_NAME");
    unsetenv("TD_SECRET");
}

static void test_env_then_flags(void)
{
    cfg c;
    atp_err err;
    clear_env();
    setenv("TD_PORT", "5", 1);
    setenv("TD_SECRET", "s3", 1);
    T_OK(load(&c, "td", &err));
    T_EQ(c.port, 5);
    T_STREQ(c.secret, "s3");
    T_EQ(c.calls, 2);
    T_STREQ(c.last_name, "TD_SECRET"); /* variables are named by their variable */
    T_OK(load(&c, "td --port 7 --name=x=y", &err));
    T_EQ(c.port, 7); /* the flag overrides the variable */
    T_STREQ(c.name, "x=y"); /* only the first '=' splits */
    T_STREQ(c.last_name, "--name");
    T_EQ(c.calls, 4);
    clear_env();
}

static void test_rejections(void)
{
    cfg c;
    atp_err err;
    clear_env();
    T_EQ(load(&c, "td --secret x", &err), ATP_EINVAL); /* environment-only entry: no flag */
    T_TRUE(strstr(err.msg, "unknown flag \"--secret\"") != NULL);
    T_EQ(load(&c, "td --por=1", &err), ATP_EINVAL);
    T_EQ(load(&c, "td --port", &err), ATP_EINVAL);
    T_STREQ(err.msg, "--port: missing value");
    T_EQ(load(&c, "td --name bad", &err), ATP_EINVAL);
    T_STREQ(err.msg, "--name: bad value");
    T_EQ(load(&c, "td --port 1 -h --nope", &err), ATP_ENOTFOUND);
    T_STREQ(err.msg, "usage: td [--port N]");
    T_EQ(c.port, 1);
    T_EQ(load(&c, "td --nope --help", &err), ATP_EINVAL); /* the first problem wins */
    setenv("TD_NAME", "bad", 1);
    T_EQ(load(&c, "td", &err), ATP_EINVAL);
    T_STREQ(err.msg, "TD_NAME: bad value");
    T_EQ(load(&c, "td --port 1 -h --nope", &err), ATP_EINVAL); /* environment first: flags not reached */
    T_EQ(c.port, 0);
    clear_env();
}

static int boot_load(int argc, char **argv, void *ud, atp_err *err)
{
    cfg *c = ud;
    int rc = load_argv(c, argc, argv, err);
    c->level = ATP_LOG_WARN;
    snprintf(c->dest, sizeof c->dest, "%s", c->secret);
    return rc;
}

static void test_configure(void)
{
    static cfg c;
    const atp_daemon_boot b = {"td", 78, boot_load, &c, &c.level, c.dest};
    clear_env();
    T_EQ(configure(&b, "td --port 9"), ATP_DAEMON_RUN);
    T_EQ(c.port, 9);
    T_EQ(atp_log__min, ATP_LOG_WARN); /* the log follows the loaded configuration */
    T_EQ(configure(&b, "td --help"), 0);
    T_EQ(atp_log__min, ATP_LOG_INFO); /* reopened at info before loading */
    T_EQ(configure(&b, "td --zzz"), 78);
    setenv("TD_SECRET", "/nx-atp/x.log", 1);
    T_EQ(configure(&b, "td"), 78); /* log destination can't be opened */
    clear_env();
    atp_log_close();
}

int main(void)
{
    T_RUN(test_env_then_flags);
    T_RUN(test_rejections);
    T_RUN(test_configure);
    return t_done();
}

/* interop_util.h: helpers shared by the interop round-trip tests (include after t.h).
 *
 * The tests drive the official JS libraries through node scripts in tests/interop/: they read a
 * script's whole stdout, split it into tab-separated lines, and hand files back to other
 * scripts. A script that fails (non-zero exit, killed) fails the test: never a skip.
 * ATP_NODE (the node binary found at configure time) and ATP_SOURCE_DIR come from CMake.
 */
#ifndef ATP_INTEROP_UTIL_H
#define ATP_INTEROP_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "atp/buf.h"

#ifndef ATP_NODE
#define ATP_NODE "node"
#endif

/* Command line "node <source>/tests/interop/<script> <args>" into dst[cap]. */
static inline void iu_node_cmd(char *dst, size_t cap, const char *script, const char *args)
{
    snprintf(dst, cap, "'%s' '%s/tests/interop/%s' %s", ATP_NODE, ATP_SOURCE_DIR, script, args);
}

/* Runs `cmd` and returns its whole stdout (owned, NUL-terminated), or NULL (and a test failure)
 * if it cannot start or exits with anything but 0. stderr passes through to the test log. */
static inline char *iu_run(const char *cmd, size_t *len_out)
{
    FILE *p = popen(cmd, "r");
    atp_buf b;
    if (!p) {
        T_FAILF("cannot run %s", cmd);
        return NULL;
    }
    atp_buf_init(&b, (size_t)256 << 20);
    for (;;) {
        uint8_t *dst = atp_buf_reserve(&b, 65536);
        size_t n = dst ? fread(dst, 1, 65536, p) : 0;
        if (n == 0) {
            break;
        }
        atp_buf_commit(&b, n);
    }
    int st = pclose(p);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || b.err) {
        T_FAILF("command failed (status %d): %s", st, cmd);
        atp_buf_release(&b);
        return NULL;
    }
    return (char *)atp_buf_take(&b, len_out);
}

/* Next line of text[*pos..len) (without '\n'), NUL-terminated in place; NULL at the end. */
static inline char *iu_next_line(char *text, size_t len, size_t *pos)
{
    if (*pos >= len) {
        return NULL;
    }
    char *start = text + *pos;
    char *nl = memchr(start, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - start) : len - *pos;
    start[n] = '\0';
    *pos += n + 1;
    return start;
}

/* Splits a line in place on tabs into at most `max` fields; returns how many were found. */
static inline int iu_fields(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '\t') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

static inline int iu_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Lower-case hex to bytes into `out` (reset first). False on odd length or a bad digit. */
static inline bool iu_unhex(const char *hex, atp_buf *out)
{
    size_t n = strlen(hex);
    atp_buf_reset(out);
    if (n % 2 != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = iu_hexval(hex[i]), lo = iu_hexval(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        atp_buf_append_byte(out, (uint8_t)(hi << 4 | lo));
    }
    return out->err == 0;
}

static inline void iu_put_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%02x", p[i]);
    }
}

/* Path of a scratch file in the build tree, e.g. iu_out_path("interop_cbor_ours.tsv"). */
static inline const char *iu_out_path(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/tests/%s", ATP_BINARY_DIR, name);
    return path;
}

#endif

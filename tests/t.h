/* t.h: the in-house unit test header (STYLE.md §2). Header-only; one test binary per module.
 *
 *   static void test_x(void) { T_EQ(1 + 1, 2); }
 *   int main(void) { T_RUN(test_x); return t_done(); }
 *
 * A failed check prints both sides and the line, marks the current test failed and goes on.
 * t_done() prints TAP-style results and the closing line "N passed, N failed" and returns the
 * exit status. Interop vectors are read from ATP_SHARED_DIR (env ATP_SHARED_DIR overrides the
 * compiled-in default); a missing vector file is a failure, never a skip.
 */
#ifndef ATP_T_H
#define ATP_T_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t__passed, t__failed, t__cur_failed, t__checks;
static const char *t__cur_name;

#define T_RUN(fn)                                                                                  \
    do {                                                                                           \
        t__cur_failed = 0;                                                                         \
        t__cur_name = #fn;                                                                         \
        fn();                                                                                      \
        if (t__cur_failed) {                                                                       \
            t__failed++;                                                                           \
            printf("not ok - %s\n", #fn);                                                          \
        } else {                                                                                   \
            t__passed++;                                                                           \
            printf("ok - %s\n", #fn);                                                              \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define T_FAILF(...)                                                                               \
    do {                                                                                           \
        t__cur_failed = 1;                                                                         \
        printf("# %s:%d: %s: ", __FILE__, __LINE__, t__cur_name ? t__cur_name : "?");            \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

#define T_TRUE(c)                                                                                  \
    do {                                                                                           \
        t__checks++;                                                                               \
        if (!(c)) {                                                                                \
            T_FAILF("expected true: %s", #c);                                                      \
        }                                                                                          \
    } while (0)

#define T_FALSE(c) T_TRUE(!(c))

#define T_EQ(a, b)                                                                                 \
    do {                                                                                           \
        long long t__a = (long long)(a), t__b = (long long)(b);                                    \
        t__checks++;                                                                               \
        if (t__a != t__b) {                                                                        \
            T_FAILF("%s == %s: %lld != %lld", #a, #b, t__a, t__b);                                 \
        }                                                                                          \
    } while (0)

#define T_NE(a, b)                                                                                 \
    do {                                                                                           \
        long long t__a = (long long)(a), t__b = (long long)(b);                                    \
        t__checks++;                                                                               \
        if (t__a == t__b) {                                                                        \
            T_FAILF("%s != %s: both %lld", #a, #b, t__a);                                          \
        }                                                                                          \
    } while (0)

/* rc must be 0; on failure prints the code (and err->msg via T_OKE). */
#define T_OK(rc) T_EQ((rc), 0)
#define T_OKE(rc, errp)                                                                            \
    do {                                                                                           \
        long long t__rc = (long long)(rc);                                                         \
        t__checks++;                                                                               \
        if (t__rc != 0) {                                                                          \
            T_FAILF("%s: rc %lld: %s", #rc, t__rc, (errp)->msg);                                   \
        }                                                                                          \
    } while (0)

#define T_STREQ(a, b)                                                                              \
    do {                                                                                           \
        const char *t__a = (a), *t__b = (b);                                                       \
        t__checks++;                                                                               \
        if (!t__a || !t__b || strcmp(t__a, t__b) != 0) {                                          \
            T_FAILF("%s == %s: \"%s\" != \"%s\"", #a, #b, t__a ? t__a : "(null)",                  \
                    t__b ? t__b : "(null)");                                                       \
        }                                                                                          \
    } while (0)

#define T_MEMEQ(a, alen, b, blen)                                                                  \
    do {                                                                                           \
        size_t t__al = (size_t)(alen), t__bl = (size_t)(blen);                                     \
        t__checks++;                                                                               \
        if (t__al != t__bl || (t__al && memcmp((a), (b), t__al) != 0)) {                           \
            T_FAILF("%s (%zu bytes) != %s (%zu bytes)", #a, t__al, #b, t__bl);                     \
            t_hexdump("left ", (const uint8_t *)(a), t__al);                                       \
            t_hexdump("right", (const uint8_t *)(b), t__bl);                                       \
        }                                                                                          \
    } while (0)

static inline void t_hexdump(const char *label, const uint8_t *p, size_t n)
{
    printf("#   %s:", label);
    for (size_t i = 0; i < n && i < 96; i++) {
        printf("%02x", p[i]);
    }
    printf(n > 96 ? "...\n" : "\n");
}

/* Prints how many vectors of a kind ran, so a run shows that none were skipped silently. */
static inline void t_vectors(const char *what, int n)
{
    printf("# vectors: %s: %d\n", what, n);
    if (n == 0) {
        T_FAILF("no vectors ran for %s", what);
    }
}

/* Path under the shared folder, e.g. t_shared("interop/syntax/did_syntax_valid.txt"). */
static inline const char *t_shared(const char *rel)
{
    static char path[4096];
    const char *base = getenv("ATP_SHARED_DIR");
#ifdef ATP_SHARED_DIR
    if (!base || !*base) {
        base = ATP_SHARED_DIR;
    }
#endif
    if (!base) {
        base = "../shared";
    }
    snprintf(path, sizeof path, "%s/%s", base, rel);
    return path;
}

/* Reads a whole file (owned, NUL-terminated; free with free()). NULL and a failure if missing. */
static inline char *t_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (!f) {
        T_FAILF("cannot open %s", path);
        return NULL;
    }
    do {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 131072;
            buf = realloc(buf, cap + 1);
            if (!buf) {
                abort();
            }
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    if (len_out) {
        *len_out = len;
    }
    return buf;
}

/* Calls fn(line, len, lineno, ctx) for each value line of an interop .txt vector file: empty
 * lines and lines starting with '#' are skipped, nothing is trimmed but the '\n'. Returns the
 * number of values, or -1 if the file is missing (already counted as a failure). */
static inline int t_each_line(const char *path, void (*fn)(const char *, size_t, int, void *),
                              void *ctx)
{
    size_t len;
    char *data = t_read_file(path, &len);
    int count = 0, lineno = 0;
    if (!data) {
        return -1;
    }
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && data[j] != '\n') {
            j++;
        }
        lineno++;
        size_t n = j - i;
        if (n > 0 && data[i + n - 1] == '\r') {
            n--;
        }
        if (n > 0 && data[i] != '#') {
            char saved = data[i + n];
            data[i + n] = '\0';
            fn(data + i, n, lineno, ctx);
            data[i + n] = saved;
            count++;
        }
        i = j + 1;
    }
    free(data);
    return count;
}

static inline int t_done(void)
{
    printf("1..%d\n", t__passed + t__failed);
    printf("# %d checks\n", t__checks);
    printf("%d passed, %d failed\n", t__passed, t__failed);
    return t__failed ? 1 : 0;
}

#endif

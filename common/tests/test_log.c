/* test_log.c: line format, escaping, truncation, level filtering, file sink, threads. */
#include "atp/log.h"

#include <pthread.h>
#include <unistd.h>

#include "t.h"

/* Rough JSON check for one line: object braces, even number of unescaped quotes, no raw
 * control bytes, ends with "}\n". */
static bool line_ok(const char *s, size_t n)
{
    size_t quotes = 0;
    if (n < 3 || s[0] != '{' || s[n - 2] != '}' || s[n - 1] != '\n') {
        return false;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if ((unsigned char)s[i] < 0x20) {
            return false;
        }
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            quotes++;
        }
    }
    return quotes % 2 == 0;
}

static void test_level_parse(void)
{
    atp_log_level l = ATP_LOG_ERROR;
    T_OK(atp_log_level_parse(atp_slice_str("debug"), &l, NULL));
    T_EQ(l, ATP_LOG_DEBUG);
    T_OK(atp_log_level_parse(atp_slice_str("INFO"), &l, NULL));
    T_EQ(l, ATP_LOG_INFO);
    T_OK(atp_log_level_parse(atp_slice_str("Warning"), &l, NULL));
    T_EQ(l, ATP_LOG_WARN);
    T_OK(atp_log_level_parse(atp_slice_str("silent"), &l, NULL));
    T_EQ(l, ATP_LOG_OFF);
    T_EQ(atp_log_level_parse(atp_slice_str("verbose"), &l, NULL), ATP_EINVAL);
    T_EQ(atp_log_level_parse(atp_slice_str(""), &l, NULL), ATP_EINVAL);
    T_EQ(atp_log_level_parse(atp_slice_str("info "), &l, NULL), ATP_EINVAL);
    T_EQ(l, ATP_LOG_OFF);
    T_STREQ(atp_log_level_name(ATP_LOG_WARN), "warn");
}

static void test_format(void)
{
    char line[512];
    const char *kv[] = {"did", "did:plc:abc", "n", NULL};
    size_t n;
    T_OK(atp_log_open("pds", ATP_LOG_INFO, NULL, NULL));
    n = atp_log_format(line, sizeof line, 1714564800123LL, ATP_LOG_WARN, "server", "listening",
                       kv, 2);
    T_STREQ(line, "{\"ts\":\"2024-05-01T12:00:00.123Z\",\"level\":\"warn\",\"svc\":\"pds\","
                  "\"mod\":\"server\",\"msg\":\"listening\",\"did\":\"did:plc:abc\",\"n\":null}\n");
    T_EQ(n, strlen(line));
    n = atp_log_format(line, sizeof line, 0, ATP_LOG_DEBUG, NULL, NULL, NULL, 0);
    T_STREQ(line, "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"debug\",\"svc\":\"pds\","
                  "\"mod\":\"-\",\"msg\":\"\"}\n");
    T_EQ(atp_log_format(line, 100, 0, ATP_LOG_INFO, "m", "x", NULL, 0), 0);
}

static void test_escaping(void)
{
    char line[512];
    atp_log_format(line, sizeof line, 0, ATP_LOG_INFO, "m", "a\"b\\c\nd\x01\x7f\xc3\xa9\xff\xc0\x80",
                   NULL, 0);
    T_TRUE(strstr(line, "\"msg\":\"a\\\"b\\\\c\\u000ad\\u0001\\u007f\xc3\xa9\\ufffd\\ufffd\\ufffd\"") !=
           NULL);
    T_TRUE(line_ok(line, strlen(line)));
}

static void test_truncation(void)
{
    static char big[10000];
    char line[4096];
    const char *kv[] = {"k1", big, "k2", "v2"};
    memset(big, 'x', sizeof big - 1);
    /* escapes that expand six-fold near the cut */
    for (size_t i = 0; i < sizeof big - 1; i += 7) {
        big[i] = '\n';
    }
    for (size_t cap = 128; cap <= sizeof line; cap += 97) {
        size_t n = atp_log_format(line, cap, 0, ATP_LOG_INFO, "m", big, kv, 2);
        T_TRUE(n < cap);
        T_EQ(strlen(line), n);
        if (!line_ok(line, n)) {
            T_FAILF("cap %zu: bad line %s", cap, line);
            break;
        }
        T_TRUE(strstr(line, "\"k2\"") == NULL);
    }
    /* A long field key alone */
    {
        size_t n = atp_log_format(line, 128, 0, ATP_LOG_INFO, "m", "x", kv + 1, 1);
        T_TRUE(line_ok(line, n));
    }
}

static int side_effects;

static int bump(void)
{
    return ++side_effects;
}

static char *read_all(const char *path, size_t *n)
{
    return t_read_file(path, n);
}

static size_t count_lines(const char *s, size_t n, bool *all_ok)
{
    size_t lines = 0, start = 0;
    *all_ok = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            *all_ok = *all_ok && line_ok(s + start, i + 1 - start);
            lines++;
            start = i + 1;
        }
    }
    return lines;
}

static void test_file_and_levels(void)
{
    char path[] = "/tmp/atp_test_log_XXXXXX";
    int fd = mkstemp(path);
    size_t n;
    bool ok;
    char *data;
    T_TRUE(fd >= 0);
    close(fd);
    T_OK(atp_log_open("relay", ATP_LOG_WARN, path, NULL));
    side_effects = 0;
    ATP_LOGD("t", "never %d", bump());
    T_EQ(side_effects, 0);
    T_FALSE(ATP_LOG_ON(ATP_LOG_INFO));
    atp_logf(ATP_LOG_INFO, "t", "dropped %d", 1);
    atp_logf(ATP_LOG_WARN, "t", "kept %d", 2);
    atp_log_kv(ATP_LOG_ERROR, "t", "kept too", NULL, 0);
    atp_log_set_level(ATP_LOG_DEBUG);
    ATP_LOGD("t", "now %d", bump());
    T_EQ(side_effects, 1);
    atp_log_close();
    data = read_all(path, &n);
    T_TRUE(data != NULL);
    if (data) {
        T_EQ(count_lines(data, n, &ok), 3);
        T_TRUE(ok);
        T_TRUE(strstr(data, "\"svc\":\"relay\"") != NULL);
        T_TRUE(strstr(data, "kept 2") != NULL);
        T_TRUE(strstr(data, "dropped") == NULL);
        T_TRUE(strstr(data, "\"level\":\"debug\",\"svc\":\"relay\",\"mod\":\"t\",\"msg\":\"now 1\"") !=
               NULL);
    }
    free(data);
    unlink(path);
    T_EQ(atp_log_open("x", ATP_LOG_INFO, "/nonexistent-dir/x.log", NULL), ATP_EIO);
}

static void *writer_thread(void *arg)
{
    char msg[300];
    memset(msg, 'a' + (int)(intptr_t)arg, sizeof msg - 1);
    msg[sizeof msg - 1] = 0;
    for (int i = 0; i < 300; i++) {
        atp_log_kv(ATP_LOG_INFO, "thr", msg, NULL, 0);
    }
    return NULL;
}

static void test_threads(void)
{
    char path[] = "/tmp/atp_test_log_XXXXXX";
    int fd = mkstemp(path);
    pthread_t th[4];
    size_t n;
    bool ok;
    char *data;
    close(fd);
    T_OK(atp_log_open("t", ATP_LOG_INFO, path, NULL));
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, writer_thread, (void *)(intptr_t)i);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    atp_log_close();
    data = read_all(path, &n);
    if (data) {
        T_EQ(count_lines(data, n, &ok), 1200);
        T_TRUE(ok);
    }
    free(data);
    unlink(path);
}

int main(void)
{
    T_RUN(test_level_parse);
    T_RUN(test_format);
    T_RUN(test_escaping);
    T_RUN(test_truncation);
    T_RUN(test_file_and_levels);
    T_RUN(test_threads);
    return t_done();
}

/* test_pds_e2e: the official @atproto/api client (pds/tests/pds_e2e.mjs) drives one pds through
 * every endpoint family in sequence; each of its steps is one assertion here. The responses are
 * checked against the published lexicons and the repo is verified with @atproto/repo after every
 * kind of write (inside the script). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pds_client.h"

#define E2E_STEPS 13 /* the script's step count: a step that silently vanished fails */
#define E2E_TTL "4"  /* access token lifetime (s): the refresh step waits it out */

static t_daemon pds;

static void test_start(void)
{
    static const char *const env[] = {"PDS_INVITE_REQUIRED=false", "PDS_RATE_LIMITS_ENABLED=false",
                                      "PDS_ACCESS_TOKEN_TTL=" E2E_TTL, NULL};
    T_TRUE(t_start_plc());
    T_TRUE(start_pds(&pds, "pds", env));
}

/* One "step" line of the script: its verdict, and its message when it failed. */
static void check_line(const char *line, int *steps, int *done)
{
    cJSON *j = cJSON_Parse(line);
    const cJSON *step = cJSON_GetObjectItem(j, "step");
    if (cJSON_IsString(step)) {
        bool ok = cJSON_IsTrue(cJSON_GetObjectItem(j, "ok"));
        T_TRUE(ok);
        printf("# %s %s\n", ok ? "ok  " : "FAIL", step->valuestring);
        if (!ok) {
            printf("#   %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(j, "msg")));
        }
        (*steps)++;
    } else if (cJSON_IsNumber(cJSON_GetObjectItem(j, "done"))) {
        *done = 1;
        printf("# %d responses checked against the lexicons\n",
               (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "validated")));
    } else {
        printf("# node: %s", line);
    }
    cJSON_Delete(j);
}

static void test_official_client_everywhere(void)
{
    char cmd[2048], line[16384];
    int steps = 0, done = 0;
    snprintf(cmd, sizeof cmd,
             "%s %s/pds/tests/pds_e2e.mjs http://127.0.0.1:%u %s %s/tests/interop %s/lexicons "
             "%s adminpw %s 2>&1",
             ATP_NODE, ATP_SOURCE_DIR, pds.port, plc_url, ATP_SOURCE_DIR, ATP_SHARED_DIR, pds.log,
             E2E_TTL);
    FILE *p = popen(cmd, "r");
    T_TRUE(p != NULL);
    if (!p) {
        return;
    }
    while (fgets(line, sizeof line, p)) {
        check_line(line, &steps, &done);
    }
    T_EQ(pclose(p), 0);
    T_EQ(steps, E2E_STEPS);
    T_EQ(done, 1);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_pds_e2e.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_start);
    if (plc.port && pds.port) {
        T_RUN(test_official_client_everywhere);
    }
    t_daemon_stop(&pds, SIGKILL);
    t_daemon_stop(&plc, SIGKILL);
    t_cleanup();
    return t_done();
}

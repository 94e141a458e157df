/* cmd_misc.c: `atp tid` and `atp syntax`. */
#include <stdio.h>
#include <string.h>

#include "atp.h"
#include "atp/syntax.h"
#include "atp/tid.h"

int atp_cmd_tid(int argc, char **argv)
{
    char tid[14];
    (void)argv;
    if (argc != 0) {
        return atp_tool_usage("usage: atp tid\n");
    }
    atp_tid_now(tid);
    printf("%s\n", tid);
    return ATP_EXIT_OK;
}

typedef int (*syntax_check_fn)(atp_slice s, atp_err *err);

static const struct {
    const char *kind;
    syntax_check_fn check;
} kinds[] = {
    {"handle", atp_syntax_check_handle},     {"did", atp_syntax_check_did},
    {"nsid", atp_syntax_check_nsid},         {"tid", atp_syntax_check_tid},
    {"rkey", atp_syntax_check_rkey},         {"aturi", atp_syntax_check_aturi},
    {"datetime", atp_syntax_check_datetime}, {"language", atp_syntax_check_language},
    {"cid", atp_syntax_check_cid},           {"uri", atp_syntax_check_uri},
    {"atidentifier", atp_syntax_check_atidentifier},
};

int atp_cmd_syntax(int argc, char **argv)
{
    static const char usage[] =
        "usage: atp syntax KIND VALUE...\n"
        "  KIND: handle did nsid tid rkey aturi datetime language cid uri atidentifier\n";
    syntax_check_fn check = NULL;
    int bad = 0;
    if (argc < 2) {
        return atp_tool_usage(usage);
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(argv[0], kinds[i].kind) == 0) {
            check = kinds[i].check;
        }
    }
    if (!check) {
        return atp_tool_usage(usage);
    }
    for (int i = 1; i < argc; i++) {
        atp_err err = {0};
        if (check(atp_slice_str(argv[i]), &err) != 0) {
            fprintf(stderr, "atp: invalid %s \"%s\": %s\n", argv[0], argv[i], err.msg);
            bad = 1;
        }
    }
    return bad ? ATP_EXIT_INVALID : ATP_EXIT_OK;
}

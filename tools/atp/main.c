/* main.c: the atp tool's entry point and the helpers every command shares.
 * Modelled on the goat CLI's families: `atp FAMILY VERB ARGS`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "atp.h"

static const char usage_text[] =
    "usage: atp COMMAND ...\n"
    "  syntax KIND VALUE...        KIND: handle did nsid tid rkey aturi datetime language cid\n"
    "  cbor from-json|to-json      JSON on stdin -> DAG-CBOR on stdout, or back (--compact)\n"
    "  cid [--raw]                 CID of the DAG-CBOR (or raw bytes) on stdin\n"
    "  car ls|verify FILE          list roots and blocks, or check every block's hash\n"
    "  key gen|pub|sign|verify     keys, did:key, signatures (k256 and p256)\n"
    "  tid                         a fresh TID\n"
    "  repo create|ls|get|verify|diff  build, list, read, verify, compare repo CARs\n"
    "  mst height KEY              the MST layer of a key\n"
    "  did resolve DID             the DID document (--plc URL, --local)\n"
    "  handle resolve HANDLE       the verified DID of a handle (--local)\n"
    "  plc genesis|verify-log      a signed genesis op and its DID; check an audit log\n"
    "exit status: 0 ok, 1 invalid input (reason on stderr), 2 usage\n";

int atp_tool_usage(const char *text)
{
    fputs(text ? text : usage_text, stderr);
    return ATP_EXIT_USAGE;
}

int atp_tool_fail(const char *what, const atp_err *err)
{
    fprintf(stderr, "atp: %s: %s\n", what, err && err->msg[0] ? err->msg : "invalid input");
    return ATP_EXIT_INVALID;
}

const char *atp_tool_opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

bool atp_tool_flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return true;
        }
    }
    return false;
}

int atp_tool_read_input(const char *path, atp_buf *out)
{
    FILE *f = stdin;
    bool too_big = false;
    if (path && strcmp(path, "-") != 0) {
        f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "atp: %s: %s\n", path, strerror(errno));
            return ATP_EIO;
        }
    }
    for (;;) {
        size_t room = out->max - out->len < 65536 ? out->max - out->len : 65536;
        uint8_t *dst = room ? atp_buf_reserve(out, room) : NULL;
        if (!dst) {
            too_big = fgetc(f) != EOF;
            break;
        }
        size_t n = fread(dst, 1, room, f);
        atp_buf_commit(out, n);
        if (n == 0) {
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    if (too_big) {
        fprintf(stderr, "atp: input larger than %zu bytes\n", out->max);
        return ATP_ELIMIT;
    }
    return 0;
}

int atp_tool_write(atp_slice s)
{
    if (s.len && fwrite(s.ptr, 1, s.len, stdout) != s.len) {
        fprintf(stderr, "atp: write error: %s\n", strerror(errno));
        return ATP_EIO;
    }
    return fflush(stdout) == 0 ? 0 : ATP_EIO;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"syntax", atp_cmd_syntax}, {"cbor", atp_cmd_cbor}, {"cid", atp_cmd_cid},
    {"car", atp_cmd_car},       {"key", atp_cmd_key},   {"tid", atp_cmd_tid},
    {"repo", atp_cmd_repo},     {"mst", atp_cmd_mst},
    {"did", atp_cmd_did},       {"handle", atp_cmd_handle}, {"plc", atp_cmd_plc},
};

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        return atp_tool_usage(NULL);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].fn(argc - 2, argv + 2);
        }
    }
    fprintf(stderr, "atp: unknown command '%s'\n", argv[1]);
    return atp_tool_usage(NULL);
}

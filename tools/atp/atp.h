/* atp.h: shared pieces of the atp command-line tool (one file per command family). */
#ifndef ATP_TOOL_H
#define ATP_TOOL_H

#include "atp/buf.h"

/* Exit statuses: 0 success, 1 invalid input (reason on stderr), 2 usage error. */
enum { ATP_EXIT_OK = 0, ATP_EXIT_INVALID = 1, ATP_EXIT_USAGE = 2 };

/* Largest input any command reads (stdin or file). */
#define ATP_TOOL_MAX_INPUT ((size_t)256 << 20)

/* Reads all of stdin (or a file when path is non-NULL and not "-") into `out`. Returns 0 or
 * an ATP_E* code with a message printed. */
int atp_tool_read_input(const char *path, atp_buf *out);
/* Writes bytes to stdout; returns 0 or ATP_EIO. */
int atp_tool_write(atp_slice s);
/* Prints "atp: <what>: <msg>" to stderr and returns ATP_EXIT_INVALID. */
int atp_tool_fail(const char *what, const atp_err *err);
int atp_tool_usage(const char *text);
/* Finds "--name VALUE" in argv (VALUE returned) or NULL. */
const char *atp_tool_opt(int argc, char **argv, const char *name);
bool atp_tool_flag(int argc, char **argv, const char *name);

int atp_cmd_syntax(int argc, char **argv);
int atp_cmd_cbor(int argc, char **argv);
int atp_cmd_cid(int argc, char **argv);
int atp_cmd_car(int argc, char **argv);
int atp_cmd_key(int argc, char **argv);
int atp_cmd_tid(int argc, char **argv);
int atp_cmd_repo(int argc, char **argv);
int atp_cmd_mst(int argc, char **argv);
int atp_cmd_did(int argc, char **argv);    /* cmd_identity.c */
int atp_cmd_handle(int argc, char **argv); /* cmd_identity.c */
int atp_cmd_plc(int argc, char **argv);    /* cmd_identity.c */

#endif

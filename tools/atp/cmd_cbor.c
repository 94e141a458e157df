/* cmd_cbor.c: `atp cbor from-json|to-json` and `atp cid`. */
#include <stdio.h>
#include <string.h>

#include "atp.h"
#include "atp/cbor.h"
#include "atp/cid.h"
#include "atp/json.h"

static int cbor_from_json(int argc, char **argv)
{
    atp_buf in, out;
    atp_err err = {0};
    atp_cbor *v;
    int rc = ATP_EXIT_INVALID;
    unsigned flags = atp_tool_flag(argc, argv, "--data") ? ATP_JSON_DATA : 0;
    atp_arena *a = atp_arena_create(0);
    atp_buf_init(&in, ATP_TOOL_MAX_INPUT);
    atp_buf_init(&out, ATP_TOOL_MAX_INPUT);
    if (atp_tool_read_input(NULL, &in) != 0) {
        goto done;
    }
    if (atp_json_decode(a, atp_buf_slice(&in), flags, NULL, &v, &err) != 0) {
        rc = atp_tool_fail("json", &err);
        goto done;
    }
    atp_cbor_encode(&out, v);
    if (out.err) {
        atp_err_set(&err, out.err, 0, "cannot encode: %s", atp_err_text(out.err));
        rc = atp_tool_fail("cbor", &err);
        goto done;
    }
    rc = atp_tool_write(atp_buf_slice(&out)) == 0 ? ATP_EXIT_OK : ATP_EXIT_INVALID;
done:
    atp_buf_release(&in);
    atp_buf_release(&out);
    atp_arena_destroy(a);
    return rc;
}

static int cbor_to_json(int argc, char **argv)
{
    atp_buf in, out;
    atp_err err = {0};
    atp_cbor *v;
    int rc = ATP_EXIT_INVALID;
    unsigned flags = atp_tool_flag(argc, argv, "--compact") ? 0 : ATP_JSON_PRETTY;
    atp_arena *a = atp_arena_create(0);
    atp_buf_init(&in, ATP_TOOL_MAX_INPUT);
    atp_buf_init(&out, ATP_TOOL_MAX_INPUT);
    if (atp_tool_read_input(NULL, &in) != 0) {
        goto done;
    }
    if (atp_cbor_decode(a, atp_buf_slice(&in), NULL, &v, &err) != 0) {
        rc = atp_tool_fail("cbor", &err);
        goto done;
    }
    atp_json_encode(&out, v, flags);
    atp_buf_append_byte(&out, '\n');
    rc = atp_tool_write(atp_buf_slice(&out)) == 0 ? ATP_EXIT_OK : ATP_EXIT_INVALID;
done:
    atp_buf_release(&in);
    atp_buf_release(&out);
    atp_arena_destroy(a);
    return rc;
}

int atp_cmd_cbor(int argc, char **argv)
{
    static const char usage[] = "usage: atp cbor from-json [--data] < in.json > out.cbor\n"
                                "       atp cbor to-json [--compact] < in.cbor\n";
    if (argc < 1) {
        return atp_tool_usage(usage);
    }
    if (strcmp(argv[0], "from-json") == 0) {
        return cbor_from_json(argc - 1, argv + 1);
    }
    if (strcmp(argv[0], "to-json") == 0) {
        return cbor_to_json(argc - 1, argv + 1);
    }
    return atp_tool_usage(usage);
}

int atp_cmd_cid(int argc, char **argv)
{
    atp_buf in;
    atp_err err = {0};
    atp_cid cid;
    char str[ATP_CID_STR_MAX];
    bool raw = atp_tool_flag(argc, argv, "--raw");
    int rc = ATP_EXIT_INVALID;
    atp_buf_init(&in, ATP_TOOL_MAX_INPUT);
    if (atp_tool_read_input(NULL, &in) != 0) {
        goto done;
    }
    /* A dag-cbor CID names a valid DAG-CBOR block: refuse to name anything else. */
    if (!raw && atp_cbor_validate(atp_buf_slice(&in), NULL, &err) != 0) {
        rc = atp_tool_fail("cbor (use --raw for arbitrary bytes)", &err);
        goto done;
    }
    atp_cid_compute(&cid, raw ? ATP_CODEC_RAW : ATP_CODEC_DAG_CBOR, atp_buf_slice(&in));
    atp_cid_format_to(&cid, str, sizeof str);
    printf("%s\n", str);
    rc = ATP_EXIT_OK;
done:
    atp_buf_release(&in);
    return rc;
}

/* cmd_repo.c: `atp repo create|ls|get|verify|diff` and `atp mst height`. Repos are CAR files;
 * every command that reads one imports it fully (hashes, commit, MST structure, records)
 * into a memory store first, so a malformed file fails with its reason whatever the command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atp.h"
#include "atp/json.h"
#include "atp/repo.h"

static const char repo_usage[] =
    "usage: atp repo create --key PRIVHEX [--curve k256|p256] --did DID < records.jsonl > "
    "repo.car\n"
    "       atp repo ls FILE.car\n"
    "       atp repo get FILE.car PATH\n"
    "       atp repo verify FILE.car --didkey DIDKEY [--did DID]\n"
    "       atp repo diff OLD.car NEW.car\n"
    "       atp mst height KEY\n"
    "records.jsonl: one {\"path\":\"collection/rkey\",\"record\":{...}} a line (atproto JSON)\n";

/* A CAR file imported into a memory store, opened as a repo. */
typedef struct loaded {
    atp_buf file;
    atp_blockstore *bs;
    atp_arena *a;
    atp_repo *repo;
    atp_repo_info info;
} loaded;

static void unload(loaded *l)
{
    atp_repo_destroy(l->repo);
    atp_blockstore_destroy(l->bs);
    atp_arena_destroy(l->a);
    atp_buf_release(&l->file);
}

/* Reads and imports `path`; with `key`, the commit signature must verify with it. */
static int load(const char *path, const atp_key *key, atp_slice did, loaded *l)
{
    atp_repo_import_opts o = {key, did, NULL, NULL, NULL};
    atp_err err = {0};
    memset(l, 0, sizeof *l);
    atp_buf_init(&l->file, ATP_TOOL_MAX_INPUT);
    l->bs = atp_blockstore_mem_create();
    l->a = atp_arena_create(0);
    if (atp_tool_read_input(path, &l->file) != 0) {
        return ATP_EXIT_INVALID;
    }
    if (atp_repo_import(atp_buf_slice(&l->file), &o, l->bs, l->a, &l->info, &err) != 0 ||
        atp_repo_open(l->bs, &l->info.head, NULL, NULL, &l->repo, &err) != 0) {
        return atp_tool_fail(path, &err);
    }
    return 0;
}

/* ---- create ---- */

typedef struct creator {
    atp_repo *repo;
    atp_arena *a;
    atp_repo_write w[ATP_REPO_MAX_WRITES];
    size_t n;
    size_t commits;
} creator;

static int flush(creator *c)
{
    atp_repo_commit out;
    atp_err err = {0};
    if (atp_repo_apply_store(c->repo, c->w, c->n, c->a, &out, &err) != 0) {
        return atp_tool_fail("repo create", &err);
    }
    c->n = 0;
    c->commits++;
    /* The commit is stored: the records' trees are no longer needed. */
    atp_arena_reset(c->a);
    return 0;
}

/* Parses one JSONL line into a create write; a full batch becomes a commit. */
static int add_line(creator *c, atp_slice line, size_t lineno)
{
    atp_cbor *v;
    const atp_cbor *path, *rec;
    atp_err err = {0};
    if (atp_json_decode(c->a, line, ATP_JSON_DATA, NULL, &v, &err) != 0) {
        fprintf(stderr, "atp: line %zu: %s\n", lineno, err.msg);
        return ATP_EXIT_INVALID;
    }
    path = atp_cbor_map_get_str(v, "path");
    rec = atp_cbor_map_get_str(v, "record");
    if (!path || path->type != ATP_CBOR_STRING || !rec || rec->type != ATP_CBOR_MAP) {
        fprintf(stderr, "atp: line %zu: want {\"path\": string, \"record\": object}\n", lineno);
        return ATP_EXIT_INVALID;
    }
    c->w[c->n++] = (atp_repo_write){ATP_REPO_CREATE, path->u.str, rec, {NULL, 0}, NULL};
    return c->n == ATP_REPO_MAX_WRITES ? flush(c) : 0;
}

static int read_lines(creator *c, atp_slice in)
{
    size_t lineno = 0;
    while (in.len > 0) {
        const uint8_t *nl = memchr(in.ptr, '\n', in.len);
        size_t len = nl ? (size_t)(nl - in.ptr) : in.len;
        atp_slice line = atp_slice_make(in.ptr, len);
        int rc;
        lineno++;
        in = atp_slice_sub(in, len + (nl ? 1 : 0), in.len);
        while (line.len && (line.ptr[line.len - 1] == '\r' || line.ptr[line.len - 1] == ' ')) {
            line.len--;
        }
        if (line.len == 0) {
            continue;
        }
        rc = add_line(c, line, lineno);
        if (rc != 0) {
            return rc;
        }
    }
    /* The rest, or one empty commit for an empty input. */
    return c->n > 0 || c->commits == 0 ? flush(c) : 0;
}

static int stdout_sink(void *ctx, atp_slice bytes)
{
    (void)ctx;
    return atp_tool_write(bytes);
}

static int repo_create(int argc, char **argv)
{
    const char *hex = atp_tool_opt(argc, argv, "--key"), *did = atp_tool_opt(argc, argv, "--did");
    const char *cname = atp_tool_opt(argc, argv, "--curve");
    atp_curve curve;
    atp_key *key = NULL;
    atp_blockstore *bs;
    atp_buf in;
    creator *c;
    atp_car_writer w;
    atp_err err = {0};
    int rc;
    if (!hex || !did) {
        return atp_tool_usage(repo_usage);
    }
    if (atp_curve_from_name(atp_slice_str(cname ? cname : "k256"), &curve, &err) != 0 ||
        atp_key_import_private_hex(curve, atp_slice_str(hex), &key, &err) != 0) {
        return atp_tool_fail("--key", &err);
    }
    bs = atp_blockstore_mem_create();
    c = atp_xcalloc(1, sizeof *c);
    c->a = atp_arena_create(0);
    atp_buf_init(&in, ATP_TOOL_MAX_INPUT);
    rc = atp_repo_create(bs, atp_slice_str(did), key, NULL, &c->repo, &err);
    rc = rc ? atp_tool_fail("--did", &err) : atp_tool_read_input(NULL, &in);
    rc = rc ? ATP_EXIT_INVALID : read_lines(c, atp_buf_slice(&in));
    if (rc == 0) {
        atp_car_writer_init_fn(&w, stdout_sink, NULL);
        rc = atp_repo_export(c->repo, &w, &err) ? atp_tool_fail("export", &err) : 0;
    }
    atp_repo_destroy(c->repo);
    atp_arena_destroy(c->a);
    free(c);
    atp_buf_release(&in);
    atp_blockstore_destroy(bs);
    atp_key_destroy(key);
    return rc;
}

/* ---- ls, get, verify ---- */

static int print_entry(void *ctx, atp_slice key, const atp_cid *val)
{
    char s[ATP_CID_STR_MAX];
    (void)ctx;
    atp_cid_format_to(val, s, sizeof s);
    printf("%.*s %s\n", (int)key.len, (const char *)key.ptr, s);
    return 0;
}

static int repo_ls(int argc, char **argv)
{
    loaded l;
    atp_mst_list_opts o = {{NULL, 0}, {NULL, 0}, false, 0};
    atp_err err = {0};
    int rc;
    if (argc != 1) {
        return atp_tool_usage(repo_usage);
    }
    rc = load(argv[0], NULL, atp_slice_make(NULL, 0), &l);
    if (rc == 0 && atp_mst_list(atp_repo_tree(l.repo), &o, print_entry, NULL, &err) != 0) {
        rc = atp_tool_fail("repo ls", &err);
    }
    unload(&l);
    return rc;
}

static int repo_get(int argc, char **argv)
{
    loaded l;
    atp_cbor *v;
    atp_slice bytes;
    atp_buf out;
    bool found = false;
    atp_err err = {0};
    int rc;
    if (argc != 2) {
        return atp_tool_usage(repo_usage);
    }
    rc = load(argv[0], NULL, atp_slice_make(NULL, 0), &l);
    if (rc == 0 &&
        (atp_repo_get(l.repo, atp_slice_str(argv[1]), l.a, NULL, &bytes, &found, &err) != 0 ||
         (found && atp_cbor_decode(l.a, bytes, NULL, &v, &err) != 0))) {
        rc = atp_tool_fail(argv[1], &err);
    } else if (rc == 0 && !found) {
        fprintf(stderr, "atp: %s: no such record\n", argv[1]);
        rc = ATP_EXIT_INVALID;
    } else if (rc == 0) {
        atp_buf_init(&out, ATP_TOOL_MAX_INPUT);
        atp_json_encode(&out, v, 0);
        atp_buf_append_byte(&out, '\n');
        rc = out.err || atp_tool_write(atp_buf_slice(&out)) ? ATP_EXIT_INVALID : 0;
        atp_buf_release(&out);
    }
    unload(&l);
    return rc;
}

static int repo_verify(int argc, char **argv)
{
    const char *dk = atp_tool_opt(argc, argv, "--didkey"), *did = atp_tool_opt(argc, argv, "--did");
    atp_key *key = NULL;
    loaded l;
    atp_err err = {0};
    int rc;
    if (argc < 3 || !dk) {
        return atp_tool_usage(repo_usage);
    }
    if (atp_didkey_decode(atp_slice_str(dk), &key, &err) != 0) {
        return atp_tool_fail("--didkey", &err);
    }
    rc = load(argv[0], key, atp_slice_str(did), &l);
    if (rc == 0) {
        fprintf(stderr,
                "atp: %s: valid: %.*s rev %.*s, %zu records, %zu MST nodes, %zu unused "
                "blocks\n",
                argv[0], (int)l.info.commit.did.len, (const char *)l.info.commit.did.ptr,
                (int)l.info.commit.rev.len, (const char *)l.info.commit.rev.ptr, l.info.n_records,
                l.info.n_nodes, l.info.n_unused);
    }
    unload(&l);
    atp_key_destroy(key);
    return rc;
}

/* ---- diff ---- */

static int print_op(void *ctx, const atp_mst_op *op)
{
    char s[ATP_CID_STR_MAX];
    static const char *const names[] = {"?", "create", "update", "delete"};
    (void)ctx;
    atp_cid_format_to(op->kind == ATP_MST_DELETE ? &op->old : &op->val, s, sizeof s);
    printf("%s %.*s %s\n", names[op->kind <= 3 ? op->kind : 0], (int)op->key.len,
           (const char *)op->key.ptr, s);
    return 0;
}

static int repo_diff(int argc, char **argv)
{
    loaded a, b;
    atp_err err = {0};
    int rc;
    if (argc != 2) {
        return atp_tool_usage(repo_usage);
    }
    rc = load(argv[0], NULL, atp_slice_make(NULL, 0), &a);
    if (rc == 0) {
        rc = load(argv[1], NULL, atp_slice_make(NULL, 0), &b);
        if (rc == 0 && atp_mst_diff(atp_repo_tree(a.repo), atp_repo_tree(b.repo), print_op, NULL,
                                    NULL, &err) != 0) {
            rc = atp_tool_fail("repo diff", &err);
        }
        unload(&b);
    }
    unload(&a);
    return rc;
}

int atp_cmd_repo(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } verbs[] = {{"create", repo_create},
                 {"ls", repo_ls},
                 {"get", repo_get},
                 {"verify", repo_verify},
                 {"diff", repo_diff}};
    for (size_t i = 0; argc > 0 && i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(argv[0], verbs[i].name) == 0) {
            return verbs[i].fn(argc - 1, argv + 1);
        }
    }
    return atp_tool_usage(repo_usage);
}

int atp_cmd_mst(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "height") != 0) {
        return atp_tool_usage(repo_usage);
    }
    printf("%u\n", atp_mst_key_height(atp_slice_str(argv[1])));
    return ATP_EXIT_OK;
}

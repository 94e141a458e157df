/* pds/tests/test_actor_store.c: the per-account store and its record write path (issue 5). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

#include "actor_store.h"
#include "atp/blockstore.h"
#include "atp/json.h"
#include "atp/syntax.h"
#include "atp/tid.h"
#include "lexicons.h"

#ifndef ATP_SOURCE_DIR
#define ATP_SOURCE_DIR "."
#endif
#ifndef PDS_LEXICON_DIR
#define PDS_LEXICON_DIR ATP_SOURCE_DIR "/pds/lexicons"
#endif

static atp_lexicon *g_lex;
static atp_key *g_key;
static char g_root[256];
static int g_dirs;

#define DID_A ATP_SLICE_LIT("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
#define DID_B ATP_SLICE_LIT("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb")
#define POST  ATP_SLICE_LIT("app.bsky.feed.post")

/* A fresh store in a fresh folder under g_root. */
static pds_actor_store *new_store(char *dir, size_t cap, size_t max_open)
{
    snprintf(dir, cap, "%s/s%d/actors", g_root, g_dirs++);
    pds_actor_store_opts o = {.dir = dir, .max_open = max_open, .lex = g_lex};
    pds_actor_store *s = NULL;
    atp_err e;
    T_OKE(pds_actor_store_open(&o, &s, &e), &e);
    return s;
}

static pds_actor_store *reopen(const char *dir)
{
    pds_actor_store_opts o = {.dir = dir, .lex = g_lex};
    pds_actor_store *s = NULL;
    atp_err e;
    T_OKE(pds_actor_store_open(&o, &s, &e), &e);
    return s;
}

static const atp_cbor *js(atp_arena *a, const char *json)
{
    atp_cbor *v = NULL;
    atp_err e;
    T_OKE(atp_json_decode(a, atp_slice_str(json), ATP_JSON_DATA, NULL, &v, &e), &e);
    return v;
}

static pds_write wr(atp_repo_action act, atp_slice coll, const char *rkey, const atp_cbor *rec)
{
    pds_write w = {.action = act, .collection = coll, .rkey = atp_slice_str(rkey), .record = rec};
    return w;
}

/* One write; returns the rc, fills res/name. */
static int write1(pds_actor_store *s, atp_slice did, pds_write w, pds_validate v, atp_arena *a,
                  pds_apply_out *out, const char **name, atp_err *e)
{
    return pds_actor_store_apply(s, did, g_key, &w, 1, v, NULL, a, out, name, e);
}

static const char *post_json(atp_arena *a, const char *text)
{
    char buf[512];
    snprintf(buf, sizeof buf, "{\"text\":\"%s\",\"createdAt\":\"2024-01-01T00:00:00.000Z\"}", text);
    return atp_arena_dup(a, buf, strlen(buf));
}

static bool has_record(pds_actor_store *s, atp_slice did, atp_slice coll, const char *rkey)
{
    atp_cid c;
    atp_err e;
    return pds_actor_store_get_record(s, did, coll, atp_slice_str(rkey), NULL, NULL, &c, NULL, NULL,
                                      &e) == 0;
}

static void test_lexicons_load(void)
{
    size_t n = 0;
    atp_err e;
    T_OKE(pds_lexicons_load(PDS_LEXICON_DIR, &g_lex, &n, &e), &e);
    T_EQ(n, 32);
    T_TRUE(atp_lexicon_find(g_lex, ATP_SLICE_LIT("app.bsky.feed.post")) != NULL);
    T_TRUE(atp_lexicon_find(g_lex, ATP_SLICE_LIT("app.bsky.labeler.service")) != NULL);
    atp_lexicon *bad = NULL;
    T_EQ(pds_lexicons_load("/nonexistent/lexicons", &bad, NULL, &e), ATP_EIO);
    T_TRUE(bad == NULL);
    /* a folder with a dangling ref: feed.post alone refers to embed and richtext defs */
    char dir[512], cmd[1200];
    snprintf(dir, sizeof dir, "%s/lexonly", g_root);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/app/bsky/feed/post.json %s/", dir,
             PDS_LEXICON_DIR, dir);
    T_EQ(system(cmd), 0);
    T_EQ(pds_lexicons_load(dir, &bad, NULL, &e), ATP_ENOTFOUND);
    /* a broken document names its file */
    snprintf(cmd, sizeof cmd, "echo '{\"lexicon\":1}' > %s/broken.json", dir);
    T_EQ(system(cmd), 0);
    T_EQ(pds_lexicons_load(dir, &bad, NULL, &e), ATP_EINVAL);
    T_TRUE(strstr(e.msg, "broken.json") != NULL);
}

static void test_create_repo(void)
{
    char dir[512], path[1024];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_err e;
    pds_commit_info ci, ci2;
    T_FALSE(pds_actor_store_exists(s, DID_A));
    T_EQ(pds_actor_store_root(s, DID_A, &ci, &e), ATP_ENOTFOUND);
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    T_TRUE(pds_actor_store_exists(s, DID_A));
    T_EQ(strlen(ci.rev), 13);
    T_OKE(pds_actor_store_root(s, DID_A, &ci2, &e), &e);
    T_TRUE(atp_cid_eq(&ci.cid, &ci2.cid));
    T_STREQ(ci.rev, ci2.rev);
    T_EQ(pds_actor_store_create_repo(s, DID_A, g_key, &ci2, &e), ATP_ECONFLICT);
    /* layout: <dir>/<2 hex of sha256(did)>/<did>/store.sqlite */
    T_OKE(pds_actor_store_path(s, DID_A, path, sizeof path, &e), &e);
    T_TRUE(strncmp(path, dir, strlen(dir)) == 0);
    T_EQ(path[strlen(dir) + 3], '/');
    T_TRUE(strstr(path, "/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/store.sqlite") != NULL);
    T_EQ(access(path, F_OK), 0);
    T_EQ(pds_actor_store_path(s, ATP_SLICE_LIT("did:plc:../x"), path, sizeof path, &e), ATP_EINVAL);
    T_EQ(pds_actor_store_path(s, ATP_SLICE_LIT("nope"), path, sizeof path, &e), ATP_EINVAL);
    T_EQ(pds_actor_store_path(s, DID_A, path, 20, &e), ATP_ELIMIT);
    pds_actor_store_destroy(s);
    /* the repo survives a reopen */
    s = reopen(dir);
    T_OKE(pds_actor_store_root(s, DID_A, &ci2, &e), &e);
    T_TRUE(atp_cid_eq(&ci.cid, &ci2.cid));
    pds_actor_store_destroy(s);
}

static void write_creates(pds_actor_store *s, atp_arena *a, const pds_commit_info *ci)
{
    atp_err e;
    pds_apply_out out = {0};
    const char *name = NULL;
    /* create without rkey: a TID, $type added, status valid */
    pds_write w = wr(ATP_REPO_CREATE, POST, "", js(a, post_json(a, "hello")));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_TRUE(out.committed);
    T_STREQ(out.results[0].status, "valid");
    T_TRUE(out.results[0].has_cid);
    const char *prefix = "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/";
    size_t plen = strlen(prefix);
    T_TRUE(strncmp(out.results[0].uri, prefix, plen) == 0);
    T_TRUE(atp_syntax_is_tid(atp_slice_str(out.results[0].uri + plen)));
    T_TRUE(strcmp(out.commit.rev, ci->rev) > 0);
    atp_slice bytes;
    atp_cid got;
    T_OKE(pds_actor_store_get_record(s, DID_A, POST, atp_slice_str(out.results[0].uri + plen), NULL,
                                     a, &got, &bytes, &name, &e),
          &e);
    T_TRUE(atp_cid_eq(&got, &out.results[0].cid));
    T_TRUE(atp_cid_matches(&got, bytes));
    atp_cbor *dec = NULL;
    T_OKE(atp_cbor_decode(a, bytes, NULL, &dec, &e), &e);
    const atp_cbor *ty = dec ? atp_cbor_map_get_str(dec, "$type") : NULL;
    T_TRUE(ty && atp_slice_eq(ty->u.str, POST));
    /* create with an rkey, then create again at it: refused */
    w = wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "two")));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidRequest");
}

static void write_puts_deletes(pds_actor_store *s, atp_arena *a)
{
    atp_err e;
    pds_apply_out out = {0};
    const char *name = NULL;
    pds_write w;
    /* put: update of an existing record */
    w = wr(ATP_REPO_UPDATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "two, edited")));
    w.upsert = true;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_EQ(out.results[0].action, ATP_REPO_UPDATE);
    T_TRUE(out.committed);
    pds_commit_info before = out.commit;
    /* identical put: no commit */
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_FALSE(out.committed);
    T_TRUE(out.results[0].noop);
    T_TRUE(atp_cid_eq(&out.commit.cid, &before.cid));
    /* put of a missing record creates it; plain update of a missing one is refused */
    w = wr(ATP_REPO_UPDATE, POST, "3jzfcijpj2z2c", js(a, post_json(a, "three")));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_FALSE(has_record(s, DID_A, POST, "3jzfcijpj2z2c"));
    w.upsert = true;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_EQ(out.results[0].action, ATP_REPO_CREATE);
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2c"));
    /* delete; delete of a missing record: refused, or a no-op with missing_ok */
    w = wr(ATP_REPO_DELETE, POST, "3jzfcijpj2z2c", NULL);
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_TRUE(out.committed);
    T_TRUE(out.results[0].status == NULL);
    T_FALSE(has_record(s, DID_A, POST, "3jzfcijpj2z2c"));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    w.missing_ok = true;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_FALSE(out.committed);
}

static void write_bad_inputs(pds_actor_store *s, atp_arena *a)
{
    atp_err e;
    pds_apply_out out = {0};
    const char *name = NULL;
    pds_write w;
    /* bad inputs */
    w = wr(ATP_REPO_CREATE, POST, "bad rkey", js(a, post_json(a, "x")));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    w = wr(ATP_REPO_CREATE, ATP_SLICE_LIT("not-an-nsid"), "", js(a, "{\"a\":1}"));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    w = wr(ATP_REPO_CREATE, POST, "", NULL);
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    w = wr(ATP_REPO_CREATE, POST, "", js(a, "{\"$type\":\"app.bsky.feed.like\"}"));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_TRUE(strstr(e.msg, "$type") != NULL);
    w = wr(ATP_REPO_CREATE, POST, "", js(a, post_json(a, "x")));
    T_EQ(write1(s, DID_B, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_ENOTFOUND);
    T_STREQ(name, "RepoNotFound");
    pds_write many[ATP_REPO_MAX_WRITES + 1];
    for (size_t i = 0; i < ATP_REPO_MAX_WRITES + 1; i++) {
        many[i] = w;
    }
    T_EQ(pds_actor_store_apply(s, DID_A, g_key, many, ATP_REPO_MAX_WRITES + 1, PDS_VALIDATE_UNSET,
                               NULL, a, &out, &name, &e),
         ATP_ELIMIT);
}

static void test_write_kinds(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    write_creates(s, a, &ci);
    write_puts_deletes(s, a);
    write_bad_inputs(s, a);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static void test_swaps(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    pds_write w = wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "one")));
    atp_cid wrong = ci.cid; /* a commit CID is never a record CID */
    /* swapCommit */
    T_OKE(pds_actor_store_apply(s, DID_A, g_key, &w, 1, PDS_VALIDATE_UNSET, &ci.cid, a, &out, &name,
                                &e),
          &e);
    atp_cid rec = out.results[0].cid;
    w = wr(ATP_REPO_UPDATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "one b")));
    T_EQ(pds_actor_store_apply(s, DID_A, g_key, &w, 1, PDS_VALIDATE_UNSET, &ci.cid, a, &out, &name,
                               &e),
         ATP_ECONFLICT);
    T_STREQ(name, "InvalidSwap");
    /* swapRecord: null = must not exist, else the current CID */
    w.upsert = true;
    w.has_swap = true;
    w.swap_null = true;
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_ECONFLICT);
    T_STREQ(name, "InvalidSwap");
    w.swap_null = false;
    w.swap = wrong;
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_ECONFLICT);
    w.swap = rec;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    atp_cid rec2 = out.results[0].cid;
    T_FALSE(atp_cid_eq(&rec, &rec2));
    /* delete with a stale swap, then the right one */
    w = wr(ATP_REPO_DELETE, POST, "3jzfcijpj2z2a", NULL);
    w.has_swap = true;
    w.swap = rec;
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_ECONFLICT);
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2a"));
    w.swap = rec2;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    /* put with swapRecord null on a missing record creates it */
    w = wr(ATP_REPO_UPDATE, POST, "3jzfcijpj2z2b", js(a, post_json(a, "new")));
    w.upsert = w.has_swap = w.swap_null = true;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static void test_validation(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    char longtext[400];
    memset(longtext, 'x', 301);
    longtext[301] = '\0';
    pds_write w = wr(ATP_REPO_CREATE, POST, "", js(a, post_json(a, longtext)));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidRecord");
    T_STREQ(e.msg, "Record/text must not be longer than 300 graphemes");
    /* validate=false stores it anyway, without a status */
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_FALSE, a, &out, &name, &e), &e);
    T_TRUE(out.results[0].status == NULL);
    w = wr(ATP_REPO_CREATE, POST, "", js(a, "{\"text\":\"no date\"}"));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_TRUE, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidRecord");
    T_TRUE(strstr(e.msg, "createdAt") != NULL);
    /* the schema's key type: profile is literal:self, post is tid */
    const char *prof = "{\"displayName\":\"A\"}";
    w = wr(ATP_REPO_CREATE, ATP_SLICE_LIT("app.bsky.actor.profile"), "other", js(a, prof));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidRecord");
    w.rkey = ATP_SLICE_LIT("self");
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_STREQ(out.results[0].status, "valid");
    w = wr(ATP_REPO_CREATE, POST, "self", js(a, post_json(a, "x")));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    /* unknown collection: stored "unknown"; refused with validate=true */
    atp_slice unk = ATP_SLICE_LIT("com.example.thing");
    w = wr(ATP_REPO_CREATE, unk, "k1", js(a, "{\"anything\":[1,2]}"));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_TRUE, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidRecord");
    T_TRUE(strstr(e.msg, "Lexicon not found") != NULL);
    T_FALSE(has_record(s, DID_A, unk, "k1"));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_STREQ(out.results[0].status, "unknown");
    T_TRUE(has_record(s, DID_A, unk, "k1"));
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

/* Registers every blob ref of a record (as uploadBlob would have). */
static void add_blobs(pds_actor_store *s, atp_slice did, const atp_cbor *v)
{
    atp_err e;
    if (v->type == ATP_CBOR_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n; i++) {
            add_blobs(s, did, &v->u.arr.items[i]);
        }
    }
    if (v->type != ATP_CBOR_MAP) {
        return;
    }
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    if (t && t->type == ATP_CBOR_STRING && atp_slice_eq_str(t->u.str, "blob")) {
        atp_cid c;
        T_OK(atp_cbor_get_cid(atp_cbor_map_get_str(v, "ref"), &c));
        T_OKE(pds_actor_store_blob_add(s, did, &c, atp_cbor_map_get_str(v, "mimeType")->u.str,
                                       (uint64_t)atp_cbor_map_get_str(v, "size")->u.i, &e),
              &e);
        return;
    }
    for (size_t i = 0; i < v->u.map.n; i++) {
        add_blobs(s, did, &v->u.map.pairs[i].val);
    }
}

/* The official record-data vectors, through the store with validate=true against the interop
 * catalog: every valid case is stored "valid", every invalid one refused (by the data-model
 * decoder, as the route would, or as InvalidRecord) and leaves the repo unchanged. */
static int run_record_vectors(pds_actor_store *s, const char *file, bool valid)
{
    size_t len;
    char *text = t_read_file(t_shared(file), &len);
    cJSON *arr = text ? cJSON_ParseWithLength(text, len) : NULL;
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        atp_arena *a = atp_arena_create(0);
        atp_err e;
        atp_cbor *rec = NULL;
        pds_commit_info before, after;
        T_OKE(pds_actor_store_root(s, DID_A, &before, &e), &e);
        int rc =
            atp_json_from_cjson(a, cJSON_GetObjectItem(c, "data"), ATP_JSON_DATA, NULL, &rec, &e);
        const char *name = NULL;
        if (rc == 0) {
            add_blobs(s, DID_A, rec);
            pds_write w = wr(ATP_REPO_UPDATE, ATP_SLICE_LIT("example.lexicon.record"),
                             cJSON_GetObjectItem(c, "rkey")->valuestring, rec);
            w.upsert = true;
            pds_apply_out out = {0};
            rc = write1(s, DID_A, w, PDS_VALIDATE_TRUE, a, &out, &name, &e);
            if (rc == 0 && !out.results[0].noop) {
                T_STREQ(out.results[0].status, "valid");
            }
        }
        /* "full" gives one blob CID two sizes and MIME types, which no upload can: the store's
         * blob check refuses the second; the record itself must be lexicon-valid */
        bool blob_clash =
            name && (strcmp(name, "InvalidSize") == 0 || strcmp(name, "InvalidMimeType") == 0);
        if (valid && blob_clash) {
            T_OKE(atp_lexicon_validate_record(g_lex, ATP_SLICE_LIT("example.lexicon.record"), rec,
                                              &e),
                  &e);
        } else if (valid && rc != 0) {
            T_FAILF("valid vector '%s' refused: %s", cJSON_GetObjectItem(c, "name")->valuestring,
                    e.msg);
        }
        if (!valid) {
            T_NE(rc, 0);
            T_TRUE(name == NULL || strcmp(name, "InvalidRecord") == 0);
            T_OKE(pds_actor_store_root(s, DID_A, &after, &e), &e);
            T_TRUE(atp_cid_eq(&before.cid, &after.cid));
        }
        n++;
        atp_arena_destroy(a);
    }
    cJSON_Delete(arr);
    free(text);
    return n;
}

static void test_record_vectors(void)
{
    /* only the record schema: the catalog folder's other documents refer to app.bsky defs it
     * does not hold, which pds_lexicons_load rightly refuses */
    atp_lexicon *saved = g_lex, *cat = atp_lexicon_create();
    atp_err e;
    size_t len;
    char *doc = t_read_file(t_shared("interop/lexicon/catalog/record.json"), &len);
    T_OKE(atp_lexicon_add_json(cat, atp_slice_make(doc, doc ? len : 0), NULL, &e), &e);
    T_OKE(atp_lexicon_check_refs(cat, &e), &e);
    free(doc);
    g_lex = cat;
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    pds_commit_info ci;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    t_vectors("record-data-valid via actor store",
              run_record_vectors(s, "interop/lexicon/record-data-valid.json", true));
    t_vectors("record-data-invalid via actor store",
              run_record_vectors(s, "interop/lexicon/record-data-invalid.json", false));
    pds_actor_store_destroy(s);
    atp_lexicon_destroy(cat);
    g_lex = saved;
}

static void test_apply_writes_atomic(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci, now;
    pds_apply_out out = {0};
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    pds_write ws[3] = {
        wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "a"))),
        wr(ATP_REPO_CREATE, ATP_SLICE_LIT("app.bsky.feed.like"), "3jzfcijpj2z2b",
           js(a, "{\"subject\":{\"uri\":\"at://did:plc:x/app.bsky.feed.post/3jzfcijpj2z2a\","
                 "\"cid\":\"bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq\"},"
                 "\"createdAt\":\"2024-01-01T00:00:00Z\"}")),
        wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2c", js(a, "{\"text\":1}")),
    };
    T_EQ(
        pds_actor_store_apply(s, DID_A, g_key, ws, 3, PDS_VALIDATE_UNSET, NULL, a, &out, &name, &e),
        ATP_EINVAL);
    T_EQ(e.off, 2);
    T_STREQ(name, "InvalidRecord");
    T_FALSE(has_record(s, DID_A, POST, "3jzfcijpj2z2a"));
    T_OKE(pds_actor_store_root(s, DID_A, &now, &e), &e);
    T_TRUE(atp_cid_eq(&now.cid, &ci.cid));
    /* the same with the bad one fixed: one commit for all three */
    ws[2] = wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2c", js(a, post_json(a, "c")));
    T_OKE(
        pds_actor_store_apply(s, DID_A, g_key, ws, 3, PDS_VALIDATE_UNSET, NULL, a, &out, &name, &e),
        &e);
    T_TRUE(out.committed);
    for (int i = 0; i < 3; i++) {
        T_STREQ(out.results[i].status, "valid");
    }
    /* a duplicate path in one batch is refused */
    pds_write dup[2] = {wr(ATP_REPO_DELETE, POST, "3jzfcijpj2z2a", NULL),
                        wr(ATP_REPO_DELETE, POST, "3jzfcijpj2z2a", NULL)};
    T_NE(pds_actor_store_apply(s, DID_A, g_key, dup, 2, PDS_VALIDATE_UNSET, NULL, a, &out, &name,
                               &e),
         0);
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2a"));
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static void check_export(pds_actor_store *s, atp_slice did, size_t want_records);

/* A record {"b": <n bytes>} built directly (JSON strings stop at 1 MiB). */
static const atp_cbor *big_record(atp_arena *a, size_t n)
{
    uint8_t *p = atp_arena_calloc(a, n, 1);
    atp_cbor *m = atp_cbor_new_map(a, 1);
    m->u.map.pairs[0].key = ATP_SLICE_LIT("b");
    m->u.map.pairs[0].val = *atp_cbor_new_bytes(a, atp_slice_make(p, n));
    p[0] = (uint8_t)n; /* distinct records: distinct CIDs */
    return m;
}

/* One #commit may carry at most 2,000,000 bytes of blocks: three 700 kB records are refused
 * together ("Too many writes"), two pass; a record over 1 MiB is refused alone. */
static void test_commit_size(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci, now;
    pds_apply_out out = {0};
    const char *name = NULL;
    atp_slice big = ATP_SLICE_LIT("com.example.big");
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    pds_write ws[3] = {wr(ATP_REPO_CREATE, big, "a", big_record(a, 700000)),
                       wr(ATP_REPO_CREATE, big, "b", big_record(a, 700001)),
                       wr(ATP_REPO_CREATE, big, "c", big_record(a, 700002))};
    T_EQ(
        pds_actor_store_apply(s, DID_A, g_key, ws, 3, PDS_VALIDATE_UNSET, NULL, a, &out, &name, &e),
        ATP_ELIMIT);
    T_TRUE(strstr(e.msg, "Too many writes") != NULL);
    T_OKE(pds_actor_store_root(s, DID_A, &now, &e), &e);
    T_TRUE(atp_cid_eq(&now.cid, &ci.cid));
    T_OKE(
        pds_actor_store_apply(s, DID_A, g_key, ws, 2, PDS_VALIDATE_UNSET, NULL, a, &out, &name, &e),
        &e);
    pds_write huge = wr(ATP_REPO_CREATE, big, "d", big_record(a, (1u << 20) + 1));
    T_EQ(write1(s, DID_A, huge, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_ELIMIT);
    check_export(s, DID_A, 2);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

typedef struct list_acc {
    char rkeys[120][16];
    size_t n;
} list_acc;

static int list_cb(void *ctx, atp_slice rkey, const atp_cid *cid, atp_slice bytes)
{
    list_acc *acc = ctx;
    T_TRUE(atp_cid_matches(cid, bytes));
    snprintf(acc->rkeys[acc->n++], 16, "%.*s", (int)rkey.len, (const char *)rkey.ptr);
    return 0;
}

static int coll_cb(void *ctx, atp_slice coll)
{
    list_acc *acc = ctx;
    snprintf(acc->rkeys[acc->n++], 16, "%.*s", (int)(coll.len > 15 ? 15 : coll.len),
             (const char *)coll.ptr);
    return 0;
}

/* rk[i] sort as i; out holds the results of their creation. */
static void list_checks(pds_actor_store *s, char rk[10][16])
{
    atp_err e;
    list_acc acc = {.n = 0};
    size_t n = 0;
    T_OKE(pds_actor_store_list_records(s, DID_A, POST, 4, ATP_SLICE_LIT(""), false, list_cb, &acc,
                                       &n, &e),
          &e);
    T_EQ(n, 4);
    T_STREQ(acc.rkeys[0], rk[9]);
    T_STREQ(acc.rkeys[3], rk[6]);
    acc.n = 0;
    T_OKE(pds_actor_store_list_records(s, DID_A, POST, 100, atp_slice_str(rk[6]), false, list_cb,
                                       &acc, &n, &e),
          &e);
    T_EQ(n, 6);
    T_STREQ(acc.rkeys[0], rk[5]);
    acc.n = 0;
    T_OKE(pds_actor_store_list_records(s, DID_A, POST, 3, atp_slice_str(rk[1]), true, list_cb, &acc,
                                       &n, &e),
          &e);
    T_EQ(n, 3);
    T_STREQ(acc.rkeys[0], rk[2]);
    T_STREQ(acc.rkeys[2], rk[4]);
    T_EQ(pds_actor_store_list_records(s, DID_A, POST, 0, ATP_SLICE_LIT(""), false, list_cb, &acc,
                                      &n, &e),
         ATP_EINVAL);
    T_EQ(pds_actor_store_list_records(s, DID_A, POST, 101, ATP_SLICE_LIT(""), false, list_cb, &acc,
                                      &n, &e),
         ATP_EINVAL);
    acc.n = 0;
    T_OKE(pds_actor_store_list_records(s, DID_A, ATP_SLICE_LIT("app.bsky.feed.like"), 10,
                                       ATP_SLICE_LIT(""), false, list_cb, &acc, &n, &e),
          &e);
    T_EQ(n, 0);
    T_EQ(pds_actor_store_list_records(s, DID_B, POST, 10, ATP_SLICE_LIT(""), false, list_cb, &acc,
                                      &n, &e),
         ATP_ENOTFOUND);
}

static void get_checks(pds_actor_store *s, atp_arena *a, char rk[10][16], pds_apply_out *res)
{
    atp_err e;
    const char *name = NULL;
    pds_apply_out out0 = *res, out = {0};
    list_acc acc = {.n = 0};
    /* get: with the right cid, a wrong one, a missing record, a missing repo */
    atp_cid c = out0.results[3].cid;
    T_OKE(pds_actor_store_get_record(s, DID_A, POST, atp_slice_str(rk[3]), &c, a, NULL, NULL, &name,
                                     &e),
          &e);
    c = out0.results[4].cid;
    T_EQ(pds_actor_store_get_record(s, DID_A, POST, atp_slice_str(rk[3]), &c, a, NULL, NULL, &name,
                                    &e),
         ATP_ENOTFOUND);
    T_STREQ(name, "RecordNotFound");
    T_EQ(pds_actor_store_get_record(s, DID_A, POST, ATP_SLICE_LIT("3zzzzzzzzzzzz"), NULL, a, NULL,
                                    NULL, &name, &e),
         ATP_ENOTFOUND);
    T_STREQ(name, "RecordNotFound");
    T_EQ(pds_actor_store_get_record(s, DID_B, POST, atp_slice_str(rk[3]), NULL, a, NULL, NULL,
                                    &name, &e),
         ATP_ENOTFOUND);
    T_STREQ(name, "RepoNotFound");
    /* collections */
    pds_write like = wr(ATP_REPO_CREATE, ATP_SLICE_LIT("com.example.z"), "k", js(a, "{}"));
    T_OKE(write1(s, DID_A, like, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    acc.n = 0;
    T_OKE(pds_actor_store_collections(s, DID_A, coll_cb, &acc, &e), &e);
    T_EQ(acc.n, 2);
    T_STREQ(acc.rkeys[0], "app.bsky.feed.p");
    T_STREQ(acc.rkeys[1], "com.example.z");
}

static void test_list_get(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    pds_write ws[10];
    char rk[10][16];
    for (int i = 0; i < 10; i++) {
        snprintf(rk[i], sizeof rk[i], "3jzfcijpj2z2%c", "234567abcd"[i]); /* sorted as i */
        ws[i] = wr(ATP_REPO_CREATE, POST, rk[i], js(a, post_json(a, rk[i])));
    }
    T_OKE(pds_actor_store_apply(s, DID_A, g_key, ws, 10, PDS_VALIDATE_UNSET, NULL, a, &out, &name,
                                &e),
          &e);
    list_checks(s, rk);
    get_checks(s, a, rk, &out);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

/* The exported CAR verifies (signature, tree, records) and matches the store's head. */
static void check_export(pds_actor_store *s, atp_slice did, size_t want_records)
{
    atp_buf car;
    atp_buf_init(&car, ATP_BUF_MAX_DEFAULT);
    atp_err e;
    T_OKE(pds_actor_store_export(s, did, &car, &e), &e);
    atp_repo_import_opts o = {.key = g_key, .did = did};
    atp_repo_info info;
    atp_arena *a = atp_arena_create(0);
    T_OKE(atp_repo_import(atp_buf_slice(&car), &o, NULL, a, &info, &e), &e);
    pds_commit_info ci;
    T_OKE(pds_actor_store_root(s, did, &ci, &e), &e);
    T_TRUE(atp_cid_eq(&info.head, &ci.cid));
    T_EQ(info.n_records, want_records);
    atp_arena_destroy(a);
    atp_buf_release(&car);
}

static void test_export_verifies(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    check_export(s, DID_A, 0);
    pds_write w = wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "a")));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    check_export(s, DID_A, 1);
    w = wr(ATP_REPO_UPDATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "b")));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    check_export(s, DID_A, 1);
    w = wr(ATP_REPO_CREATE, POST, "", js(a, post_json(a, "c")));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    check_export(s, DID_A, 2);
    w = wr(ATP_REPO_DELETE, POST, "3jzfcijpj2z2a", NULL);
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    check_export(s, DID_A, 1);
    T_EQ(pds_actor_store_export(s, DID_B, &(atp_buf){0}, &e), ATP_ENOTFOUND);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

/* The official @atproto/repo (tests/interop/repo_js.mjs verify: verifyRepoCar, then every
 * record re-encoded) accepts the exported repo, and sees the head and the records we wrote. */
static void check_export_js(pds_actor_store *s, atp_slice did, size_t want_records)
{
    atp_buf car, dk;
    atp_err e;
    char file[512], cmd[2048], line[4096];
    atp_buf_init(&car, ATP_BUF_MAX_DEFAULT);
    atp_buf_init(&dk, 256);
    T_OKE(pds_actor_store_export(s, did, &car, &e), &e);
    atp_didkey_encode(&dk, g_key);
    snprintf(file, sizeof file, "%s/export.car", g_root);
    FILE *f = fopen(file, "wb");
    T_TRUE(f && fwrite(car.ptr, 1, car.len, f) == car.len);
    if (f) {
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s %s/tests/interop/repo_js.mjs verify %s %.*s %.*s", ATP_NODE,
             ATP_SOURCE_DIR, file, (int)dk.len, (const char *)dk.ptr, (int)did.len,
             (const char *)did.ptr);
    FILE *p = popen(cmd, "r");
    size_t records = 0, commits = 0;
    pds_commit_info ci;
    char head[ATP_CID_STR_MAX];
    T_OKE(pds_actor_store_root(s, did, &ci, &e), &e);
    atp_cid_format_to(&ci.cid, head, sizeof head);
    while (p && fgets(line, sizeof line, p)) {
        records += strncmp(line, "record\t", 7) == 0;
        if (strncmp(line, "commit\t", 7) == 0) {
            commits++;
            T_TRUE(strncmp(line + 7, head, strlen(head)) == 0);
        }
    }
    T_EQ(p ? pclose(p) : -1, 0);
    T_EQ(commits, 1);
    T_EQ(records, want_records);
    atp_buf_release(&car);
    atp_buf_release(&dk);
}

static void test_export_verifies_js(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out;
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    check_export_js(s, DID_A, 0);
    pds_write ws[3] = {
        wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "a \\u00e9 \\ud83d\\ude00"))),
        wr(ATP_REPO_CREATE, ATP_SLICE_LIT("app.bsky.actor.profile"), "self",
           js(a, "{\"displayName\":\"A\"}")),
        wr(ATP_REPO_CREATE, ATP_SLICE_LIT("com.example.raw"), "k~1",
           js(a, "{\"b\":{\"$bytes\":\"AAEC\"},\"n\":-9007199254740991,\"z\":null}")),
    };
    T_OKE(
        pds_actor_store_apply(s, DID_A, g_key, ws, 3, PDS_VALIDATE_UNSET, NULL, a, &out, &name, &e),
        &e);
    check_export_js(s, DID_A, 3);
    pds_write w = wr(ATP_REPO_UPDATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "edited")));
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    check_export_js(s, DID_A, 3);
    w = wr(ATP_REPO_DELETE, ATP_SLICE_LIT("com.example.raw"), "k~1", NULL);
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    check_export_js(s, DID_A, 2);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static void test_blobs(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name = NULL;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    atp_cid bc;
    atp_cid_compute(&bc, ATP_CODEC_RAW, ATP_SLICE_LIT("png bytes"));
    char cs[ATP_CID_STR_MAX], json[600];
    atp_cid_format_to(&bc, cs, sizeof cs);
    snprintf(json, sizeof json,
             "{\"displayName\":\"A\",\"avatar\":{\"$type\":\"blob\",\"ref\":{\"$link\":\"%s\"},"
             "\"mimeType\":\"image/png\",\"size\":9}}",
             cs);
    atp_slice prof = ATP_SLICE_LIT("app.bsky.actor.profile");
    pds_write w = wr(ATP_REPO_CREATE, prof, "self", js(a, json));
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "BlobNotFound");
    T_FALSE(has_record(s, DID_A, prof, "self"));
    T_OKE(pds_actor_store_blob_add(s, DID_A, &bc, ATP_SLICE_LIT("image/jpeg"), 9, &e), &e);
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidMimeType");
    atp_cid bc2;
    atp_cid_compute(&bc2, ATP_CODEC_RAW, ATP_SLICE_LIT("png bytes 2"));
    T_OKE(pds_actor_store_blob_add(s, DID_A, &bc2, ATP_SLICE_LIT("image/png"), 10, &e), &e);
    char json2[600];
    atp_cid_format_to(&bc2, cs, sizeof cs);
    snprintf(json2, sizeof json2,
             "{\"avatar\":{\"$type\":\"blob\",\"ref\":{\"$link\":\"%s\"},"
             "\"mimeType\":\"image/png\",\"size\":11}}",
             cs);
    w.record = js(a, json2);
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EINVAL);
    T_STREQ(name, "InvalidSize");
    bool found, temp;
    T_OKE(pds_actor_store_blob_state(s, DID_A, &bc2, &found, &temp, &e), &e);
    T_TRUE(found && temp);
    json2[strlen(json2) - 3] = '0'; /* size 10 */
    w.record = js(a, json2);
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_OKE(pds_actor_store_blob_state(s, DID_A, &bc2, &found, &temp, &e), &e);
    T_TRUE(found && !temp);
    /* the record's deletion makes the blob temporary again (for the GC) */
    w = wr(ATP_REPO_DELETE, prof, "self", NULL);
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_OKE(pds_actor_store_blob_state(s, DID_A, &bc2, &found, &temp, &e), &e);
    T_TRUE(found && temp);
    T_OKE(pds_actor_store_blob_state(s, DID_A, &bc, &found, &temp, &e), &e);
    T_TRUE(found && temp);
    atp_cid none;
    atp_cid_compute(&none, ATP_CODEC_RAW, ATP_SLICE_LIT("nothing"));
    T_OKE(pds_actor_store_blob_state(s, DID_A, &none, &found, &temp, &e), &e);
    T_FALSE(found);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static int g_hook_calls, g_hook_fail, g_done_durable, g_done_dropped;

static int count_hook(void *ctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c,
                      void **staged, atp_err *err)
{
    (void)ctx;
    T_TRUE(atp_slice_eq(did, DID_A));
    T_TRUE(c->n_blocks >= 1);
    g_hook_calls++;
    /* staged even when failing: the store must hand it back as not durable */
    int *n = malloc(sizeof *n);
    *n = g_hook_calls;
    *staged = n;
    if (g_hook_fail) {
        return atp_err_set(err, ATP_EIO, 0, "sequencer down");
    }
    /* a commit written into its file now (a new repo): the hook writes into its transaction;
     * a write's commit goes to the file later, so it gets no connection */
    if (!db) {
        return 0;
    }
    return sqlite3_exec(db,
                        "CREATE TABLE IF NOT EXISTS seq (n INTEGER); INSERT INTO seq VALUES (1)",
                        NULL, NULL, NULL) == SQLITE_OK
               ? 0
               : ATP_EIO;
}

/* Each staged value comes back exactly once, with the commit's outcome; a pending commit is
 * "sequenced" at once (a seq per commit), which lets it go to the file. */
static void count_done(void *ctx, atp_slice did, void *staged, bool durable,
                       _Atomic int64_t *seq_out)
{
    static int64_t seq;
    int *n = staged;
    (void)ctx;
    T_TRUE(atp_slice_eq(did, DID_A));
    T_TRUE(*n >= 1 && *n <= g_hook_calls);
    if (durable) {
        g_done_durable++;
        if (seq_out) {
            atomic_store(seq_out, ++seq);
        }
    } else {
        T_TRUE(seq_out == NULL);
        g_done_dropped++;
    }
    free(n);
}

static int seq_rows(pds_actor_store *s)
{
    char path[1024];
    sqlite3 *db;
    sqlite3_stmt *st;
    atp_err e;
    T_OKE(pds_actor_store_path(s, DID_A, path, sizeof path, &e), &e);
    T_EQ(sqlite3_open(path, &db), SQLITE_OK);
    int n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM seq", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static void test_hook_rollback(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/hook/actors", g_root);
    pds_actor_store_opts o = {.dir = dir, .lex = g_lex, .hook = count_hook, .done = count_done};
    pds_actor_store *s = NULL;
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci, now;
    pds_apply_out out = {0};
    const char *name;
    T_OKE(pds_actor_store_open(&o, &s, &e), &e);
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    T_EQ(g_hook_calls, 1);
    T_EQ(g_done_durable, 1);
    pds_write w = wr(ATP_REPO_CREATE, POST, "3jzfcijpj2z2a", js(a, post_json(a, "a")));
    g_hook_fail = 1;
    T_EQ(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), ATP_EIO);
    T_STREQ(e.msg, "sequencer down");
    T_EQ(g_done_dropped, 1);
    T_EQ(g_done_durable, 1);
    T_FALSE(has_record(s, DID_A, POST, "3jzfcijpj2z2a"));
    T_OKE(pds_actor_store_root(s, DID_A, &now, &e), &e);
    T_TRUE(atp_cid_eq(&now.cid, &ci.cid));
    g_hook_fail = 0;
    T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    T_EQ(g_hook_calls, 3);
    T_EQ(g_done_durable, 2);
    T_EQ(g_done_dropped, 1);
    T_EQ(seq_rows(s), 1); /* the new repo's: the write's event went to the "sequencer" only */
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2a")); /* a read writes it into the file */
    check_export(s, DID_A, 1);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A sequencer the test drives: it keeps each pending commit's seq slot, and hands out seqs
 * only when told. */
static _Atomic int64_t *g_slots[16];
static int g_n_slots;

static int slot_hook(void *ctx, sqlite3 *db, atp_slice did, const atp_repo_commit *c,
                     void **staged, atp_err *err)
{
    (void)ctx, (void)db, (void)did, (void)c, (void)err;
    *staged = malloc(1);
    return 0;
}

static void slot_done(void *ctx, atp_slice did, void *staged, bool durable,
                      _Atomic int64_t *seq_out)
{
    (void)ctx, (void)did;
    if (durable && seq_out && g_n_slots < 16) {
        g_slots[g_n_slots++] = seq_out;
    }
    free(staged);
}

/* Commits wait in memory until their events are sequenced: the repo handle (export) has them
 * at once, the file (the record index) once they are sequenced and something reads; the flush
 * watermark (min_unflushed) holds at the first sequenced commit until its file is synced; a
 * handle with unsequenced commits is not evicted. */
static void test_pending_commits(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pending/actors", g_root);
    pds_actor_store_opts o = {.dir = dir, .lex = g_lex, .hook = slot_hook, .done = slot_done,
                              .max_open = 1, .flush_ms = 20};
    pds_actor_store *s = NULL;
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name;
    T_OKE(pds_actor_store_open(&o, &s, &e), &e);
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    g_n_slots = 0;
    for (int i = 0; i < 2; i++) {
        char rk[16];
        snprintf(rk, sizeof rk, "3jzfcijpj2z2%c", "ab"[i]);
        pds_write w = wr(ATP_REPO_CREATE, POST, rk, js(a, post_json(a, "p")));
        T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
    }
    T_EQ(g_n_slots, 2);
    check_export(s, DID_A, 2);
    T_FALSE(has_record(s, DID_A, POST, "3jzfcijpj2z2a"));
    T_EQ(pds_actor_store_min_unflushed(s), INT64_MAX);
    /* another account: with max_open 1 the idle one closes, and that is B, not A, whose
     * commits are unsequenced (closing A would drop them: the reads below prove it did not) */
    T_OKE(pds_actor_store_create_repo(s, DID_B, g_key, &ci, &e), &e);
    T_EQ(pds_actor_store_open_count(s), 1);
    atomic_store(g_slots[0], 5);
    T_EQ(pds_actor_store_min_unflushed(s), 5);
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2a"));
    T_FALSE(has_record(s, DID_A, POST, "3jzfcijpj2z2b"));
    atomic_store(g_slots[1], 6);
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2b"));
    /* written with a NORMAL commit: the watermark moves once the flusher synced the WAL */
    int64_t low = pds_actor_store_min_unflushed(s);
    for (int i = 0; i < 100 && low != INT64_MAX; i++) {
        sleep_ms(10);
        low = pds_actor_store_min_unflushed(s);
    }
    T_EQ(low, INT64_MAX);
    T_OKE(pds_actor_store_root(s, DID_B, &ci, &e), &e); /* A is idle now: evicted */
    T_EQ(pds_actor_store_open_count(s), 1);
    pds_actor_store_destroy(s);
    s = reopen(dir);
    check_export(s, DID_A, 2);
    T_TRUE(has_record(s, DID_A, POST, "3jzfcijpj2z2b"));
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

static void test_lru(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 2);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    pds_apply_out out = {0};
    const char *name;
    char did[6][64];
    for (int i = 0; i < 6; i++) {
        snprintf(did[i], sizeof did[i], "did:plc:lru%021d", i);
        T_OKE(pds_actor_store_create_repo(s, atp_slice_str(did[i]), g_key, &ci, &e), &e);
        T_TRUE(pds_actor_store_open_count(s) <= 2);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 6; i++) {
            char rk[16];
            snprintf(rk, sizeof rk, "3jzfcijpj2z2%c", "23"[round]);
            pds_write w = wr(ATP_REPO_CREATE, POST, rk, js(a, post_json(a, "x")));
            T_OKE(write1(s, atp_slice_str(did[i]), w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
        }
    }
    T_EQ(pds_actor_store_open_count(s), 2);
    for (int i = 0; i < 6; i++) {
        check_export(s, atp_slice_str(did[i]), 2);
    }
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

typedef struct thr_arg {
    pds_actor_store *s;
    const char *did;
    int id, n, failures;
    /* records at scattered keys (each write walks MST nodes a flush may have written out of
     * memory long ago), every third deleted again; else keys in order, creates only */
    bool churn;
} thr_arg;

static atomic_int g_writers_done;

static int write_or_delete(thr_arg *t, atp_repo_action act, int i, atp_arena *a)
{
    atp_err e;
    pds_apply_out out = {0};
    const char *name;
    char rk[32];
    if (t->churn) {
        snprintf(rk, sizeof rk, "r%08x-%d", (unsigned)i * 2654435761u, t->id);
    } else {
        snprintf(rk, sizeof rk, "t%d-%d", t->id, i);
    }
    const atp_cbor *rec = act == ATP_REPO_DELETE ? NULL : js(a, "{\"n\":1}");
    pds_write w = wr(act, ATP_SLICE_LIT("com.example.c"), rk, rec);
    return write1(t->s, atp_slice_str(t->did), w, PDS_VALIDATE_UNSET, a, &out, &name, &e);
}

static void *writer_thread(void *p)
{
    thr_arg *t = p;
    atp_arena *a = atp_arena_create(0);
    for (int i = 0; i < t->n; i++) {
        t->failures += write_or_delete(t, ATP_REPO_CREATE, i, a) != 0;
        if (t->churn && i % 3 == 2) {
            t->failures += write_or_delete(t, ATP_REPO_DELETE, i - 1, a) != 0;
        }
        atp_arena_reset(a);
    }
    atp_arena_destroy(a);
    atomic_fetch_add(&g_writers_done, 1);
    return NULL;
}

static void test_concurrent_writers(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_err e;
    pds_commit_info ci;
    const char *dids[2] = {"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"};
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    T_OKE(pds_actor_store_create_repo(s, DID_B, g_key, &ci, &e), &e);
    pthread_t th[4];
    thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){s, dids[i % 2], i, 20, 0, false};
        pthread_create(&th[i], NULL, writer_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        T_EQ(args[i].failures, 0);
    }
    check_export(s, DID_A, 40);
    check_export(s, DID_B, 40);
    pds_actor_store_destroy(s);
}

/* A sequencer that sequences every commit at once: the flusher may write it right away. */
static _Atomic int64_t g_next_seq;

static void instant_done(void *ctx, atp_slice did, void *staged, bool durable,
                         _Atomic int64_t *seq_out)
{
    (void)ctx, (void)did;
    if (durable && seq_out) {
        atomic_store(seq_out, atomic_fetch_add(&g_next_seq, 1) + 1);
    }
    free(staged);
}

/* Flushes run beside the writers (the flusher every millisecond, reads flushing too): the file
 * and memory agree at the end, before and after a reopen. */
static void test_flush_beside_writers(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/beside/actors", g_root);
    pds_actor_store_opts o = {
        .dir = dir, .lex = g_lex, .hook = slot_hook, .done = instant_done, .flush_ms = 1};
    pds_actor_store *s = NULL;
    atp_err e;
    pds_commit_info ci;
    T_OKE(pds_actor_store_open(&o, &s, &e), &e);
    const char *dids[2] = {"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"};
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    T_OKE(pds_actor_store_create_repo(s, DID_B, g_key, &ci, &e), &e);
    enum { THREADS = 4, EACH = 150 };
    pthread_t th[THREADS];
    thr_arg args[THREADS];
    atomic_store(&g_writers_done, 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thr_arg){s, dids[i % 2], i, EACH, 0, true};
        pthread_create(&th[i], NULL, writer_thread, &args[i]);
    }
    int reads = 0;
    for (; atomic_load(&g_writers_done) < THREADS; reads++) {
        (void)has_record(s, DID_A, ATP_SLICE_LIT("com.example.c"), "r00000000-0");
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        T_EQ(args[i].failures, 0);
    }
    size_t want = (size_t)(THREADS / 2) * (EACH - EACH / 3);
    printf("# %d reads beside the writers\n", reads);
    check_export(s, DID_A, want);
    check_export(s, DID_B, want);
    pds_actor_store_destroy(s);
    s = reopen(dir);
    check_export(s, DID_A, want);
    check_export(s, DID_B, want);
    pds_actor_store_destroy(s);
}

/* Many writers on ONE account: every write lands as its own commit, the repo verifies, and the
 * commits share transactions (group commit). */
static void test_group_commit(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_err e;
    pds_commit_info ci;
    uint64_t c0, t0, c1, t1;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    pds_actor_store_counters(s, &c0, &t0);
    enum { THREADS = 8, EACH = 25 };
    pthread_t th[THREADS];
    thr_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (thr_arg){s, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", i, EACH, 0, false};
        pthread_create(&th[i], NULL, writer_thread, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        T_EQ(args[i].failures, 0);
    }
    pds_actor_store_counters(s, &c1, &t1);
    T_EQ(c1 - c0, THREADS * EACH);
    T_TRUE(t1 - t0 >= 1 && t1 - t0 <= c1 - c0);
    printf("# group commit: %" PRIu64 " commits in %" PRIu64 " transactions\n", c1 - c0, t1 - t0);
    check_export(s, DID_A, THREADS * EACH);
    pds_actor_store_destroy(s);
    /* everything is still there after a reopen */
    s = reopen(dir);
    check_export(s, DID_A, THREADS * EACH);
    pds_actor_store_destroy(s);
}

/* The child: writes until killed, sending each rkey once its write returned. */
static void kill9_child(const char *dir, int fd)
{
    pds_actor_store *cs = reopen(dir);
    atp_arena *a = atp_arena_create(0);
    for (int i = 0;; i++) {
        pds_apply_out out;
        const char *name;
        atp_err e;
        char rk[16];
        snprintf(rk, sizeof rk, "k%06d", i);
        pds_write w = wr(ATP_REPO_CREATE, ATP_SLICE_LIT("com.example.k"), rk, js(a, "{\"v\":1}"));
        if (write1(cs, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e) != 0 ||
            write(fd, rk, 8) != 8) {
            _exit(1);
        }
        atp_arena_reset(a);
    }
}

/* kill -9 while a child writes: every write it acknowledged (rkey sent through the pipe after
 * apply returned) is there after a reopen, and the repo still verifies. */
static void test_kill9_durability(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_err e;
    pds_commit_info ci;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    pds_actor_store_destroy(s);
    int fds[2];
    T_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        kill9_child(dir, fds[1]);
    }
    close(fds[1]);
    char acked[400][9];
    int n = 0;
    while (n < 400 && read(fds[0], acked[n], 8) == 8) {
        acked[n][8] = '\0';
        n++;
        if (n == 150) {
            kill(pid, SIGKILL);
        }
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    T_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    T_TRUE(n >= 150);
    s = reopen(dir);
    int present = 0;
    for (int i = 0; i < n; i++) {
        present += has_record(s, DID_A, ATP_SLICE_LIT("com.example.k"), acked[i]);
    }
    T_EQ(present, n);
    printf("# kill -9 after %d acknowledged writes: %d present\n", n, present);
    /* the index and the repo agree: the tree holds at least every acknowledged record */
    atp_buf car;
    atp_buf_init(&car, ATP_BUF_MAX_DEFAULT);
    T_OKE(pds_actor_store_export(s, DID_A, &car, &e), &e);
    atp_repo_import_opts o = {.key = g_key, .did = DID_A};
    atp_repo_info info;
    atp_arena *a = atp_arena_create(0);
    T_OKE(atp_repo_import(atp_buf_slice(&car), &o, NULL, a, &info, &e), &e);
    T_TRUE(info.n_records >= (size_t)n);
    size_t listed = 0;
    list_acc *acc = calloc(1, sizeof *acc);
    T_OKE(pds_actor_store_list_records(s, DID_A, ATP_SLICE_LIT("com.example.k"), 100,
                                       ATP_SLICE_LIT(""), true, list_cb, acc, &listed, &e),
          &e);
    T_EQ(listed, 100);
    free(acc);
    atp_arena_destroy(a);
    atp_buf_release(&car);
    pds_actor_store_destroy(s);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* One createRecord (a validated post) through the whole path, fsync included. */
static void test_write_latency(void)
{
    char dir[512];
    pds_actor_store *s = new_store(dir, sizeof dir, 0);
    atp_arena *a = atp_arena_create(0);
    atp_err e;
    pds_commit_info ci;
    T_OKE(pds_actor_store_create_repo(s, DID_A, g_key, &ci, &e), &e);
    enum { N = 200 };
    static uint64_t lat[N];
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int i = 0; i < N; i++) {
        pds_apply_out out = {0};
        const char *name;
        pds_write w = wr(ATP_REPO_CREATE, POST, "", js(a, post_json(a, "latency probe")));
        uint64_t t0 = now_us();
        T_OKE(write1(s, DID_A, w, PDS_VALIDATE_UNSET, a, &out, &name, &e), &e);
        lat[i] = now_us() - t0;
        atp_arena_reset(a);
    }
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t cpu = (uint64_t)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000u +
                   (uint64_t)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
                   (uint64_t)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000u +
                   (uint64_t)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    printf("# createRecord CPU time: %" PRIu64 " us per write (user + system)\n", cpu / N);
    qsort(lat, N, sizeof lat[0], cmp_u64);
    printf("# createRecord latency over %d writes: p50 %" PRIu64 " us, p99 %" PRIu64
           " us, max %" PRIu64 " us\n",
           N, lat[N / 2], lat[N * 99 / 100], lat[N - 1]);
    T_TRUE(lat[N / 2] > 0);
    atp_arena_destroy(a);
    pds_actor_store_destroy(s);
}

int main(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/pds_actor_store_test.%d", (int)getpid());
    atp_err e;
    T_OKE(atp_key_generate(ATP_CURVE_K256, &g_key, &e), &e);
    T_RUN(test_lexicons_load);
    T_RUN(test_create_repo);
    T_RUN(test_write_kinds);
    T_RUN(test_swaps);
    T_RUN(test_validation);
    T_RUN(test_record_vectors);
    T_RUN(test_apply_writes_atomic);
    T_RUN(test_list_get);
    T_RUN(test_commit_size);
    T_RUN(test_export_verifies);
    T_RUN(test_export_verifies_js);
    T_RUN(test_blobs);
    T_RUN(test_hook_rollback);
    T_RUN(test_pending_commits);
    T_RUN(test_lru);
    T_RUN(test_concurrent_writers);
    T_RUN(test_flush_beside_writers);
    T_RUN(test_group_commit);
    T_RUN(test_kill9_durability);
    T_RUN(test_write_latency);
    atp_lexicon_destroy(g_lex);
    atp_key_destroy(g_key);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_root);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", g_root);
    }
    return t_done();
}

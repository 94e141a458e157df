/* pds/fuzz/fuzz_actor_store.c: the record write path of the actor store (JSON record ->
 * $type, Lexicon validation, DAG-CBOR, blob refs, commit, index) on one account.
 *
 * Input: byte 0 picks the collection (bits 0-1: post / profile / like / unknown) and the
 * validate mode (bits 2-3); the rest is the record's JSON. Invariants checked:
 *   - a refused write leaves the head unchanged; an accepted one moves it;
 *   - the stored record reads back with a CID that hashes its bytes, decodes, re-encodes to the
 *     same bytes (canonical), carries `$type` = collection;
 *   - status "valid" means the stored form validates again; "unknown" only for an unknown type;
 *   - after deleting it, the record is gone.
 * The store lives in a temporary folder for the whole run (one SQLite file, WAL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor_store.h"
#include "atp/json.h"
#include "lexicons.h"

#define DID ATP_SLICE_LIT("did:plc:fuzzfuzzfuzzfuzzfuzzfuzz")

static pds_actor_store *g_store;
static atp_lexicon *g_lex;
static atp_key *g_key;

/* Removes the store's files at exit: <dir>/<shard>/<did>/store.sqlite{,-wal,-shm}. */
static void teardown(void)
{
    char path[512], side[530];
    if (pds_actor_store_path(g_store, DID, path, sizeof path, NULL) == 0) {
        pds_actor_store_destroy(g_store);
        const char *sfx[3] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(side, sizeof side, "%s%s", path, sfx[i]);
            unlink(side);
        }
        for (int i = 0; i < 3; i++) {
            *strrchr(path, '/') = '\0';
            rmdir(path);
        }
    }
    atp_lexicon_destroy(g_lex);
    atp_key_destroy(g_key);
}

static void setup(void)
{
    char dir[128];
    atp_err e;
    snprintf(dir, sizeof dir, "/tmp/fuzz_actor_store.%d", (int)getpid());
    if (pds_lexicons_load(NULL, &g_lex, NULL, &e) != 0 ||
        atp_key_generate(ATP_CURVE_K256, &g_key, &e) != 0) {
        abort();
    }
    pds_actor_store_opts o = {.dir = dir, .lex = g_lex};
    pds_commit_info ci;
    if (pds_actor_store_open(&o, &g_store, &e) != 0 ||
        pds_actor_store_create_repo(g_store, DID, g_key, &ci, &e) != 0) {
        abort();
    }
    atexit(teardown);
}

static const char *const COLLS[4] = {"app.bsky.feed.post", "app.bsky.actor.profile",
                                     "app.bsky.feed.like", "com.example.fuzz.thing"};
static const char *const RKEYS[4] = {"3jzfcijpj2z2a", "self", "3jzfcijpj2z2b", "k"};

static void check_stored(atp_slice coll, const char *rkey, const pds_write_result *res)
{
    atp_arena *a = atp_arena_create(0);
    atp_cid cid;
    atp_slice bytes;
    atp_cbor *v;
    atp_buf b;
    if (pds_actor_store_get_record(g_store, DID, coll, atp_slice_str(rkey), NULL, a, &cid, &bytes,
                                   NULL, NULL) != 0 ||
        !atp_cid_eq(&cid, &res->cid) || !atp_cid_matches(&cid, bytes) ||
        atp_cbor_decode(a, bytes, NULL, &v, NULL) != 0) {
        abort();
    }
    atp_buf_init(&b, ATP_BUF_MAX_DEFAULT);
    atp_cbor_encode(&b, v);
    const atp_cbor *t = atp_cbor_map_get_str(v, "$type");
    if (b.err || !atp_slice_eq(atp_buf_slice(&b), bytes) || !t || !atp_slice_eq(t->u.str, coll)) {
        abort();
    }
    atp_buf_release(&b);
    if (res->status && strcmp(res->status, "valid") == 0 &&
        atp_lexicon_validate_record(g_lex, coll, v, NULL) != 0) {
        abort();
    }
    if (res->status && strcmp(res->status, "unknown") == 0 &&
        atp_lexicon_find(g_lex, coll) != NULL) {
        abort();
    }
    atp_arena_destroy(a);
}

static void delete_and_check(atp_slice coll, const char *rkey, atp_arena *a)
{
    pds_write w = {.action = ATP_REPO_DELETE, .collection = coll, .rkey = atp_slice_str(rkey)};
    pds_apply_out out;
    atp_cid cid;
    if (pds_actor_store_apply(g_store, DID, g_key, &w, 1, PDS_VALIDATE_UNSET, NULL, a, &out, NULL,
                              NULL) != 0 ||
        pds_actor_store_get_record(g_store, DID, coll, atp_slice_str(rkey), NULL, a, &cid, NULL,
                                   NULL, NULL) != ATP_ENOTFOUND) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_store) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    atp_arena *a = atp_arena_create(0);
    atp_cbor *rec = NULL;
    unsigned k = data[0] & 3u;
    atp_slice coll = atp_slice_str(COLLS[k]);
    if (atp_json_decode(a, atp_slice_make(data + 1, size - 1), ATP_JSON_DATA, NULL, &rec, NULL) ==
        0) {
        pds_write w = {.action = ATP_REPO_CREATE,
                       .collection = coll,
                       .rkey = atp_slice_str(RKEYS[k]),
                       .record = rec};
        pds_commit_info before, after;
        pds_apply_out out;
        pds_validate mode = (pds_validate)((data[0] >> 2) % 3u);
        if (pds_actor_store_root(g_store, DID, &before, NULL) != 0) {
            abort();
        }
        int rc = pds_actor_store_apply(g_store, DID, g_key, &w, 1, mode, NULL, a, &out, NULL, NULL);
        if (pds_actor_store_root(g_store, DID, &after, NULL) != 0 ||
            atp_cid_eq(&before.cid, &after.cid) != (rc != 0)) {
            abort();
        }
        if (rc == 0) {
            check_stored(coll, RKEYS[k], &out.results[0]);
            delete_and_check(coll, RKEYS[k], a);
        }
    }
    atp_arena_destroy(a);
    return 0;
}

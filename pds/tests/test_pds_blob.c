/* test_pds_blob: blobs end to end (issues 5 and 6). The content sniffer and the disk store in
 * process; then plc + pds on 127.0.0.1 (ephemeral ports) with a 200 kB upload limit and a 3 s
 * blob grace period swept every second: uploadBlob, a post with an image embed, getBlob bytes
 * and headers, listBlobs paging and `since`, listMissingBlobs after a record links bytes that
 * were never uploaded, the garbage collector (unreferenced uploads, deleted posts), the error
 * paths, and the official @atproto/api client posting an image. */
#include <curl/curl.h>
#include <glob.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "atp/buf.h"
#include "atp/cid.h"
#include "daemon_spawn.h"
#include "t.h"

#include "blobstore.h"
#include "config.h"
#include "pds_client.h"

static t_daemon pds;
static session alice;

/* ---- bytes ---- */

static const uint8_t PNG[] = {
    0x89, 'P',  'N',  'G',  '\r', '\n', 0x1a, '\n', 0,    0,    0,    13,   'I',  'H',
    'D',  'R',  0,    0,    0,    1,    0,    0,    0,    1,    8,    0,    0,    0,
    0,    0x3a, 0x7e, 0x9b, 0x55, 0,    0,    0,    10,   'I',  'D',  'A',  'T',  0x78,
    0x9c, 0x63, 0x60, 0,    0,    0,    2,    0,    1,    0x48, 0xaf, 0xa4, 0x71, 0,
    0,    0,    0,    'I',  'E',  'N',  'D',  0xae, 0x42, 0x60, 0x82};
static const uint8_t JPEG[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1,
                               1,    0,    0,    1,    0, 1,  0,   0,   0xff, 0xd9};

/* A distinct small PNG-looking blob per index (the sniffer only reads the signature). */
static void png_variant(uint8_t out[32], int i)
{
    memset(out, 0, 32);
    memcpy(out, PNG, 8);
    out[20] = (uint8_t)i;
    out[21] = 0x5a;
}

/* ---- HTTP with raw bodies and response headers ---- */

typedef struct raw {
    long status;
    atp_buf body, head;
    cJSON *json;
} raw;

static raw raw_call(const char *method, const char *path, const char *auth, const char *ctype,
                    const void *body, size_t len)
{
    raw r;
    char url[1024], ah[2200], ch[256];
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    memset(&r, 0, sizeof r);
    atp_buf_init(&r.body, (size_t)8 << 20);
    atp_buf_init(&r.head, 1 << 16);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", pds.port, path);
    snprintf(ch, sizeof ch, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    h = curl_slist_append(h, ch);
    if (auth) {
        snprintf(ah, sizeof ah, "Authorization: %s", auth);
        h = curl_slist_append(h, ah);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.head);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    atp_buf_append_byte(&r.head, 0);
    r.json = cJSON_ParseWithLength((const char *)r.body.ptr, r.body.len);
    return r;
}

static void raw_free(raw *r)
{
    atp_buf_release(&r->body);
    atp_buf_release(&r->head);
    cJSON_Delete(r->json);
}

static const char *rjstr(const raw *r, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->json, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Whether the response head has `line` (case-insensitive, as header names are). */
static bool has_header(const raw *r, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = (const char *)r->head.ptr; p && *p; p++) {
        if (strncasecmp(p, line, n) == 0) {
            return true;
        }
    }
    return false;
}

#define T_RERR(r, st, name)                                                                        \
    do {                                                                                           \
        T_EQ((r).status, (st));                                                                    \
        T_STREQ(rjstr(&(r), "error"), (name));                                                     \
    } while (0)

/* uploadBlob; the blob ref's CID into cid_out (nullable) and its mimeType into mime_out. */
static raw upload(const char *auth, const char *ctype, const void *b, size_t n)
{
    return raw_call("POST", "/xrpc/com.atproto.repo.uploadBlob", auth, ctype, b, n);
}

static const cJSON *blob_of(const raw *r)
{
    return cJSON_GetObjectItemCaseSensitive(r->json, "blob");
}

static const char *blob_cid(const raw *r)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(blob_of(r), "ref");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(ref, "$link");
    return cJSON_IsString(l) ? l->valuestring : "";
}

/* A post embedding the given blob refs (JSON objects as the upload answered them). */
static raw post_images(const char *const *refs, size_t n, char uri_out[512])
{
    char body[8192];
    size_t off = (size_t)snprintf(body, sizeof body,
                                  "{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\","
                                  "\"record\":{\"text\":\"pic\",\"createdAt\":"
                                  "\"2024-05-01T00:00:00.000Z\",\"embed\":{\"$type\":"
                                  "\"app.bsky.embed.images\",\"images\":[",
                                  alice.did);
    for (size_t i = 0; i < n; i++) {
        off += (size_t)snprintf(body + off, sizeof body - off, "%s{\"alt\":\"\",\"image\":%s}",
                                i ? "," : "", refs[i]);
    }
    snprintf(body + off, sizeof body - off, "]}}}");
    raw r = raw_call("POST", "/xrpc/com.atproto.repo.createRecord", alice.access,
                     "application/json", body, strlen(body));
    if (uri_out) {
        snprintf(uri_out, 512, "%s", rjstr(&r, "uri"));
    }
    return r;
}

static char *ref_text(const raw *r)
{
    return cJSON_PrintUnformatted(blob_of(r));
}

static bool file_exists(const char *area, const char *cid)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/pds/blocks/%s%s/%s", tmpdir, area, alice.did, cid);
    return stat(path, &st) == 0;
}

static raw get_blob(const char *did, const char *cid)
{
    char path[512];
    snprintf(path, sizeof path, "/xrpc/com.atproto.sync.getBlob?did=%s&cid=%s", did, cid);
    return raw_call("GET", path, NULL, NULL, NULL, 0);
}

/* ---- in process: sniffer, MIME types, the disk store ---- */

static void test_sniff(void)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *mime;
    } cases[] = {
        {"\x89PNG\r\n\x1a\n", 8, "image/png"},
        {"\xff\xd8\xff\xdb", 4, "image/jpeg"},
        {"GIF89a..", 8, "image/gif"},
        {"GIF87a..", 8, "image/gif"},
        {"RIFF\0\0\0\0WEBPVP8 ", 16, "image/webp"},
        {"RIFF\0\0\0\0WAVEfmt ", 16, "audio/wav"},
        {"\0\0\0\x18" "ftypisom\0\0\0\0", 16, "video/mp4"},
        {"\0\0\0\x18" "ftypqt  \0\0\0\0", 16, "video/quicktime"},
        {"\0\0\0\x1c" "ftypavif\0\0\0\0", 16, "image/avif"},
        {"\0\0\0\x18" "ftypheic\0\0\0\0", 16, "image/heic"},
        {"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm", 12, "video/webm"},
        {"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska", 16, "video/x-matroska"},
        {"%PDF-1.7", 8, "application/pdf"},
        {"II*\0", 4, "image/tiff"},
        {"OggS", 4, "audio/ogg"},
        {"ID3\x04", 4, "audio/mpeg"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *m = pds_blob_sniff((atp_slice){(const uint8_t *)cases[i].bytes, cases[i].n});
        T_STREQ(m ? m : "(none)", cases[i].mime);
    }
    T_TRUE(pds_blob_sniff(atp_slice_str("hello world")) == NULL);
    T_TRUE(pds_blob_sniff((atp_slice){PNG, 7}) == NULL); /* truncated signature */
    T_TRUE(pds_blob_sniff((atp_slice){(const uint8_t *)"RIFF\0\0\0\0XXXX", 12}) == NULL);
    T_TRUE(pds_blob_sniff((atp_slice){(const uint8_t *)"\0\0\0\x18" "ftyp", 8}) == NULL);
    T_TRUE(pds_blob_sniff((atp_slice){NULL, 0}) == NULL);
}

static void test_mime(void)
{
    char out[PDS_MIME_MAX + 1];
    T_EQ(pds_blob_mime_normalize(atp_slice_str(" Text/Plain ; charset=utf-8"), out), 10);
    T_STREQ(out, "Text/Plain");
    T_EQ(pds_blob_mime_normalize(atp_slice_str("image/png"), out), 9);
    T_EQ(pds_blob_mime_normalize(atp_slice_str("image"), out), 0);
    T_STREQ(out, "");
    T_EQ(pds_blob_mime_normalize(atp_slice_str("/png"), out), 0);
    T_EQ(pds_blob_mime_normalize(atp_slice_str("image/"), out), 0);
    T_EQ(pds_blob_mime_normalize(atp_slice_str("image/p/ng"), out), 0);
    T_EQ(pds_blob_mime_normalize(atp_slice_str("image/p ng"), out), 0);
    T_STREQ(out, ""); /* nothing of the invalid text is left behind (found by fuzz_blob) */
    T_EQ(pds_blob_mime_normalize(atp_slice_str("image/p\"ng"), out), 0);
    T_EQ(pds_blob_mime_normalize(atp_slice_str(""), out), 0);
    char longm[200];
    memset(longm, 'a', sizeof longm);
    longm[5] = '/';
    T_EQ(pds_blob_mime_normalize((atp_slice){(const uint8_t *)longm, PDS_MIME_MAX}, out),
         PDS_MIME_MAX);
    T_EQ(pds_blob_mime_normalize((atp_slice){(const uint8_t *)longm, PDS_MIME_MAX + 1}, out), 0);
    /* The sniffed type wins over the client's, as the reference's uploadBlob. */
    pds_blob_mime_choose(atp_slice_str("image/jpeg"), (atp_slice){PNG, sizeof PNG}, out);
    T_STREQ(out, "image/png");
    pds_blob_mime_choose(atp_slice_str("text/plain"), atp_slice_str("hello"), out);
    T_STREQ(out, "text/plain");
    pds_blob_mime_choose(atp_slice_str("??"), atp_slice_str("hello"), out);
    T_STREQ(out, "application/octet-stream");
}

static void test_disk_store(void)
{
    static pds_config cfg;
    pds_blobstore *bs = NULL;
    char stage[PDS_BLOB_PATH_MAX], path[PDS_BLOB_PATH_MAX];
    atp_cid cid;
    atp_err err;
    struct stat st;
    const atp_slice did = atp_slice_str("did:plc:abcdefghijklmnopqrstuvwx");
    snprintf(cfg.blob_dir, sizeof cfg.blob_dir, "%s/unit", tmpdir);
    T_OK(pds_blobstore_open(&cfg, &bs, &err));
    atp_cid_compute(&cid, ATP_CODEC_RAW, (atp_slice){PNG, sizeof PNG});
    T_EQ(pds_blobstore_path(bs, PDS_BLOB_TEMP, atp_slice_str("not-a-did"), &cid, path,
                            sizeof path, &err), ATP_EINVAL);
    T_EQ(pds_blobstore_path(bs, PDS_BLOB_TEMP, atp_slice_str("did:plc:../x"), &cid, path,
                            sizeof path, &err), ATP_EINVAL);
    T_EQ(pds_blobstore_path(bs, PDS_BLOB_PERM, did, &cid, path, 20, &err), ATP_ELIMIT);
    T_OK(pds_blobstore_stage(bs, did, (atp_slice){PNG, sizeof PNG}, stage, sizeof stage, &err));
    T_OK(pds_blobstore_commit_stage(bs, stage, did, &cid, PDS_BLOB_TEMP, &err));
    T_OK(pds_blobstore_path(bs, PDS_BLOB_TEMP, did, &cid, path, sizeof path, &err));
    T_TRUE(strstr(path, "/unit/tempt/did:plc:abcdefghijklmnopqrstuvwx/bafkrei") != NULL);
    T_OK(stat(path, &st));
    T_EQ((size_t)st.st_size, sizeof PNG);
    /* open_read moves a temporary file to its permanent place on first read. */
    int fd = -1;
    uint64_t size = 0;
    T_OK(pds_blobstore_open_read(bs, did, &cid, &fd, &size, &err));
    T_EQ(size, sizeof PNG);
    close(fd);
    T_NE(stat(path, &st), 0);
    T_OK(pds_blobstore_move(bs, did, &cid, PDS_BLOB_TEMP, PDS_BLOB_PERM, &err)); /* idempotent */
    T_OK(pds_blobstore_quarantine(bs, did, &cid, &err));
    T_EQ(pds_blobstore_open_read(bs, did, &cid, &fd, &size, &err), ATP_ENOTFOUND);
    T_OK(pds_blobstore_unquarantine(bs, did, &cid, &err));
    T_OK(pds_blobstore_open_read(bs, did, &cid, &fd, &size, &err));
    close(fd);
    T_OK(pds_blobstore_delete_account(bs, "did:plc:abcdefghijklmnopqrstuvwx", &err));
    T_OK(pds_blobstore_path(bs, PDS_BLOB_PERM, did, &cid, path, sizeof path, &err));
    *strrchr(path, '/') = '\0';
    T_NE(stat(path, &st), 0); /* the account's folder is gone */
    T_EQ(pds_blobstore_open_read(bs, did, &cid, &fd, &size, &err), ATP_ENOTFOUND);
    T_EQ(pds_blobstore_delete_account(bs, "bad", &err), ATP_EINVAL);
    pds_blobstore_close(bs);
}

/* ---- the daemon ---- */

static void test_start(void)
{
    static const char *const env[] = {"PDS_INVITE_REQUIRED=false",
                                      "PDS_RATE_LIMITS_ENABLED=false",
                                      "PDS_BLOB_UPLOAD_LIMIT=200000", "PDS_BLOB_TEMP_MAX_AGE=3",
                                      "PDS_BLOB_GC_INTERVAL=1", NULL};
    T_TRUE(t_start_plc());
    T_TRUE(start_pds(&pds, "pds", env));
    resp r = create_account(pds.port, "alice.test", "alice@example.com", "pw-alice", NULL);
    T_TRUE(session_from(&r, &alice));
    resp_free(&r);
}

static char png_cid[ATP_CID_STR_MAX];

static void test_upload_and_post(void)
{
    atp_cid want;
    char cs[ATP_CID_STR_MAX];
    atp_cid_compute(&want, ATP_CODEC_RAW, (atp_slice){PNG, sizeof PNG});
    atp_cid_format_to(&want, cs, sizeof cs);
    /* Claimed JPEG, sniffed PNG: the sniffed type is stored. */
    raw u = upload(alice.access, "image/jpeg", PNG, sizeof PNG);
    T_EQ(u.status, 200);
    T_STREQ(blob_cid(&u), cs);
    T_STREQ(cJSON_GetObjectItem(blob_of(&u), "$type")->valuestring, "blob");
    T_STREQ(cJSON_GetObjectItem(blob_of(&u), "mimeType")->valuestring, "image/png");
    T_EQ(cJSON_GetObjectItem(blob_of(&u), "size")->valueint, (int)sizeof PNG);
    snprintf(png_cid, sizeof png_cid, "%s", cs);
    T_TRUE(file_exists("tempt/", cs));
    raw g = get_blob(alice.did, cs); /* temporary: not served */
    T_RERR(g, 404, "BlobNotFound");
    raw_free(&g);
    char *ref = ref_text(&u);
    const char *refs[] = {ref};
    raw p = post_images(refs, 1, NULL);
    T_EQ(p.status, 200);
    T_STREQ(rjstr(&p, "validationStatus"), "valid");
    raw_free(&p);
    free(ref);
    raw_free(&u);
    /* Re-upload of the same bytes (now permanent): same ref, fine. */
    u = upload(alice.access, "image/png", PNG, sizeof PNG);
    T_EQ(u.status, 200);
    T_STREQ(blob_cid(&u), cs);
    raw_free(&u);
}

static void test_get_blob(void)
{
    raw g = get_blob(alice.did, png_cid);
    char disp[ATP_CID_STR_MAX + 64];
    T_EQ(g.status, 200);
    T_MEMEQ(g.body.ptr, g.body.len, PNG, sizeof PNG);
    T_TRUE(has_header(&g, "content-type: image/png"));
    T_TRUE(has_header(&g, "x-content-type-options: nosniff"));
    T_TRUE(has_header(&g, "content-security-policy: default-src 'none'; sandbox"));
    T_TRUE(has_header(&g, "content-length: 67"));
    snprintf(disp, sizeof disp, "content-disposition: attachment; filename=\"%s\"", png_cid);
    T_TRUE(has_header(&g, disp));
    raw_free(&g);
    /* Served once: the bytes now live in the account's permanent folder. */
    T_TRUE(file_exists("", png_cid));
    T_FALSE(file_exists("tempt/", png_cid));
}

static void test_upload_types_and_errors(void)
{
    raw u = upload(alice.access, "text/plain", JPEG, sizeof JPEG);
    T_EQ(u.status, 200);
    T_STREQ(cJSON_GetObjectItem(blob_of(&u), "mimeType")->valuestring, "image/jpeg");
    raw_free(&u);
    u = upload(alice.access, "Text/Plain; charset=utf-8", "hello", 5);
    T_EQ(u.status, 200);
    T_STREQ(cJSON_GetObjectItem(blob_of(&u), "mimeType")->valuestring, "Text/Plain");
    raw_free(&u);
    u = upload(alice.access, NULL, "hello", 5);
    T_RERR(u, 400, "InvalidRequest");
    raw_free(&u);
    u = upload(NULL, "image/png", PNG, sizeof PNG);
    T_RERR(u, 401, "AuthMissing");
    raw_free(&u);
    u = upload("Bearer garbage", "image/png", PNG, sizeof PNG);
    T_EQ(u.status, 401);
    raw_free(&u);
    /* Over PDS_BLOB_UPLOAD_LIMIT (200 kB, under the JSON limit: the handler's check), then
     * over the server's body limit (max of both: the server's check). */
    size_t big = 200001;
    uint8_t *b = calloc(1, 1200000);
    u = upload(alice.access, "application/octet-stream", b, big);
    T_RERR(u, 413, "PayloadTooLarge");
    raw_free(&u);
    u = upload(alice.access, "application/octet-stream", b, 200000);
    T_EQ(u.status, 200); /* exactly the limit */
    raw_free(&u);
    u = upload(alice.access, "application/octet-stream", b, 1200000);
    T_EQ(u.status, 413);
    raw_free(&u);
    free(b);
}

static void test_get_blob_errors(void)
{
    raw g = get_blob(alice.did, "nope");
    T_RERR(g, 400, "InvalidRequest");
    raw_free(&g);
    g = raw_call("GET", "/xrpc/com.atproto.sync.getBlob?cid=bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy",
                 NULL, NULL, NULL, 0);
    T_RERR(g, 400, "InvalidRequest");
    raw_free(&g);
    g = get_blob("not-a-did", png_cid);
    T_RERR(g, 400, "InvalidRequest");
    raw_free(&g);
    g = get_blob("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", png_cid);
    T_RERR(g, 404, "RepoNotFound");
    raw_free(&g);
    g = get_blob(alice.did, "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy");
    T_RERR(g, 404, "BlobNotFound");
    raw_free(&g);
}

/* Collects listBlobs pages of `limit` into cids[] (returns the count). */
static size_t list_all(const char *since, int limit, char cids[][80], size_t cap, int *pages)
{
    char cursor[80] = "", path[512];
    size_t n = 0;
    *pages = 0;
    for (;;) {
        snprintf(path, sizeof path, "/xrpc/com.atproto.sync.listBlobs?did=%s&limit=%d%s%s%s%s",
                 alice.did, limit, since ? "&since=" : "", since ? since : "",
                 cursor[0] ? "&cursor=" : "", cursor);
        raw r = raw_call("GET", path, NULL, NULL, NULL, 0);
        const cJSON *arr = cJSON_GetObjectItem(r.json, "cids");
        int m = cJSON_GetArraySize(arr);
        T_EQ(r.status, 200);
        for (int i = 0; i < m && n < cap; i++) {
            snprintf(cids[n++], 80, "%s", cJSON_GetArrayItem(arr, i)->valuestring);
        }
        snprintf(cursor, sizeof cursor, "%s", rjstr(&r, "cursor"));
        raw_free(&r);
        (*pages)++;
        if (m < limit || *pages > 10) {
            break;
        }
    }
    return n;
}

static char post3_uri[512];

static void test_list_blobs(void)
{
    char *refs[3];
    uint8_t b[3][32];
    char cids[8][80], rev[32];
    int pages = 0;
    for (int i = 0; i < 3; i++) {
        png_variant(b[i], i);
        raw u = upload(alice.access, "image/png", b[i], 32);
        T_EQ(u.status, 200);
        refs[i] = ref_text(&u);
        raw_free(&u);
    }
    raw p = post_images((const char *const *)refs, 3, post3_uri);
    T_EQ(p.status, 200);
    snprintf(rev, sizeof rev, "%s", cJSON_GetObjectItem(cJSON_GetObjectItem(p.json, "commit"),
                                                        "rev")->valuestring);
    raw_free(&p);
    for (int i = 0; i < 3; i++) {
        free(refs[i]);
    }
    size_t n = list_all(NULL, 2, cids, 8, &pages);
    T_EQ(n, 4); /* the first PNG and these three */
    T_EQ(pages, 3); /* 2 + 2, then an empty page: a full page always carries a cursor */
    for (size_t i = 1; i < n; i++) {
        T_TRUE(strcmp(cids[i - 1], cids[i]) != 0);
    }
    bool seen = false;
    for (size_t i = 0; i < n; i++) {
        seen = seen || strcmp(cids[i], png_cid) == 0;
    }
    T_TRUE(seen);
    /* since = the rev of the 3-image post's commit: nothing newer; an old rev: all four. */
    T_EQ(list_all(rev, 100, cids, 8, &pages), 0);
    T_EQ(list_all("2222222222222", 100, cids, 8, &pages), 4);
    raw r = raw_call("GET", "/xrpc/com.atproto.sync.listBlobs?did=did:plc:zz&limit=0", NULL,
                     NULL, NULL, 0);
    T_RERR(r, 400, "InvalidRequest");
    raw_free(&r);
    char path[256];
    snprintf(path, sizeof path, "/xrpc/com.atproto.sync.listBlobs?did=%s&limit=1001", alice.did);
    r = raw_call("GET", path, NULL, NULL, NULL, 0);
    T_RERR(r, 400, "InvalidRequest");
    raw_free(&r);
    snprintf(path, sizeof path, "/xrpc/com.atproto.sync.listBlobs?did=%s&cursor=zzz", alice.did);
    r = raw_call("GET", path, NULL, NULL, NULL, 0);
    T_RERR(r, 400, "InvalidRequest");
    raw_free(&r);
    r = raw_call("GET", "/xrpc/com.atproto.sync.listBlobs", NULL, NULL, NULL, 0);
    T_RERR(r, 400, "InvalidRequest");
    raw_free(&r);
    r = raw_call("GET", "/xrpc/com.atproto.sync.listBlobs?did=did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
                 NULL, NULL, NULL, 0);
    T_RERR(r, 404, "RepoNotFound");
    raw_free(&r);
}

/* Links bytes never uploaded to a record, as importRepo leaves them, straight in the
 * account's file (WAL: safe next to the running daemon). */
static bool link_missing(const atp_cid *cid, const char *uri)
{
    char pat[512];
    glob_t g;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool ok = false;
    snprintf(pat, sizeof pat, "%s/pds/actors/*/%s/store.sqlite", tmpdir, alice.did);
    if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc != 1) {
        return false;
    }
    if (sqlite3_open(g.gl_pathv[0], &db) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        ok = sqlite3_prepare_v2(db, "INSERT INTO record_blob (blobCid, recordUri) VALUES (?, ?)",
                                -1, &st, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_blob(st, 1, cid->bytes, cid->len, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, uri, -1, SQLITE_STATIC);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    globfree(&g);
    return ok;
}

static void test_list_missing(void)
{
    uint8_t b[32];
    atp_cid cid;
    char cs[ATP_CID_STR_MAX], uri[600];
    const char *path = "/xrpc/com.atproto.repo.listMissingBlobs";
    raw r = raw_call("GET", path, alice.access, NULL, NULL, 0);
    T_EQ(r.status, 200);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "blobs")), 0);
    T_TRUE(cJSON_GetObjectItem(r.json, "cursor") == NULL);
    raw_free(&r);
    r = raw_call("GET", path, NULL, NULL, NULL, 0);
    T_RERR(r, 401, "AuthMissing");
    raw_free(&r);
    r = raw_call("GET", "/xrpc/com.atproto.repo.listMissingBlobs?limit=x", alice.access, NULL,
                 NULL, 0);
    T_RERR(r, 400, "InvalidRequest");
    raw_free(&r);
    png_variant(b, 99);
    atp_cid_compute(&cid, ATP_CODEC_RAW, (atp_slice){b, sizeof b});
    atp_cid_format_to(&cid, cs, sizeof cs);
    snprintf(uri, sizeof uri, "at://%s/app.bsky.feed.post/3kimported22", alice.did);
    T_TRUE(link_missing(&cid, uri));
    r = raw_call("GET", path, alice.access, NULL, NULL, 0);
    const cJSON *blobs = cJSON_GetObjectItem(r.json, "blobs");
    T_EQ(cJSON_GetArraySize(blobs), 1);
    T_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(blobs, 0), "cid")->valuestring, cs);
    T_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(blobs, 0), "recordUri")->valuestring, uri);
    T_STREQ(rjstr(&r, "cursor"), cs);
    raw_free(&r);
    /* Uploading the bytes attaches them: permanent at once, served, no longer missing. */
    raw u = upload(alice.access, "image/png", b, sizeof b);
    T_EQ(u.status, 200);
    raw_free(&u);
    T_TRUE(file_exists("", cs));
    raw g = get_blob(alice.did, cs);
    T_EQ(g.status, 200);
    T_MEMEQ(g.body.ptr, g.body.len, b, sizeof b);
    raw_free(&g);
    r = raw_call("GET", path, alice.access, NULL, NULL, 0);
    T_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "blobs")), 0);
    raw_free(&r);
}

/* Unreferenced uploads go after the grace period (3 s, sweeps every 1 s). */
static void test_gc_temp(void)
{
    uint8_t b[32];
    png_variant(b, 42);
    raw u = upload(alice.access, "image/png", b, sizeof b);
    T_EQ(u.status, 200);
    char cs[80];
    snprintf(cs, sizeof cs, "%s", blob_cid(&u));
    char *ref = ref_text(&u);
    raw_free(&u);
    T_TRUE(file_exists("tempt/", cs));
    for (int i = 0; i < 100 && file_exists("tempt/", cs); i++) {
        t_sleep_ms(100);
    }
    T_FALSE(file_exists("tempt/", cs));
    const char *refs[] = {ref};
    raw p = post_images(refs, 1, NULL);
    T_RERR(p, 400, "BlobNotFound"); /* the row went with the bytes */
    raw_free(&p);
    free(ref);
}

/* Deleting the last record using a blob deletes the blob (at the next sweep). */
static void test_delete_post_deletes_blobs(void)
{
    char body[1024], cids[8][80];
    int pages;
    const char *rkey = strrchr(post3_uri, '/');
    T_TRUE(rkey != NULL);
    if (!rkey) {
        return;
    }
    size_t before = list_all(NULL, 100, cids, 8, &pages);
    snprintf(body, sizeof body,
             "{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"rkey\":\"%s\"}",
             alice.did, rkey + 1);
    raw d = raw_call("POST", "/xrpc/com.atproto.repo.deleteRecord", alice.access,
                     "application/json", body, strlen(body));
    T_EQ(d.status, 200);
    raw_free(&d);
    size_t after = list_all(NULL, 100, cids, 8, &pages);
    T_EQ(after + 3, before);
    /* the PNG of the first post stays; the three of the deleted post go */
    uint8_t b[32];
    atp_cid cid;
    char cs[ATP_CID_STR_MAX];
    png_variant(b, 0);
    atp_cid_compute(&cid, ATP_CODEC_RAW, (atp_slice){b, sizeof b});
    atp_cid_format_to(&cid, cs, sizeof cs);
    for (int i = 0; i < 100 && (file_exists("", cs) || file_exists("tempt/", cs)); i++) {
        t_sleep_ms(100);
    }
    T_FALSE(file_exists("", cs));
    T_FALSE(file_exists("tempt/", cs));
    raw g = get_blob(alice.did, cs);
    T_RERR(g, 404, "BlobNotFound");
    raw_free(&g);
    g = get_blob(alice.did, png_cid);
    T_EQ(g.status, 200);
    raw_free(&g);
}

static void test_official_client(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/pds/tests/blob_client.mjs http://127.0.0.1:%u %s/tests/interop "
             "%d 2>&1", ATP_NODE, ATP_SOURCE_DIR, pds.port, ATP_SOURCE_DIR,
             (int)getpid() % 100000);
    t_node_ok(cmd);
}

/* Acknowledged uploads survive kill -9. */
static void test_durability(void)
{
    static const char *const env[] = {"PDS_INVITE_REQUIRED=false",
                                      "PDS_RATE_LIMITS_ENABLED=false", NULL};
    t_daemon_stop(&pds, SIGKILL);
    unlink(pds.log); /* else the old "listening" line could be read before the new start */
    T_TRUE(start_pds(&pds, "pds", env));
    raw g = get_blob(alice.did, png_cid);
    T_EQ(g.status, 200);
    T_MEMEQ(g.body.ptr, g.body.len, PNG, sizeof PNG);
    raw_free(&g);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_pds_blob.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return 1;
    }
    T_RUN(test_sniff);
    T_RUN(test_mime);
    T_RUN(test_disk_store);
    T_RUN(test_start);
    if (plc.port && pds.port && alice.did[0]) {
        T_RUN(test_upload_and_post);
        T_RUN(test_get_blob);
        T_RUN(test_upload_types_and_errors);
        T_RUN(test_get_blob_errors);
        T_RUN(test_list_blobs);
        T_RUN(test_list_missing);
        T_RUN(test_gc_temp);
        T_RUN(test_delete_post_deletes_blobs);
        T_RUN(test_official_client);
        T_RUN(test_durability);
    }
    t_daemon_stop(&pds, SIGKILL);
    t_daemon_stop(&plc, SIGKILL);
    t_cleanup();
    return t_done();
}

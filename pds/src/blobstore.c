/* pds/src/blobstore.c: blob bytes on disk, the content sniffer and the blob garbage collector
 * (blobstore.h). Files are content-addressed, so concurrent writers of one CID write the same
 * bytes and a rename(2) either way leaves a whole file. */
#include "blobstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atp/log.h"
#include "atp/syntax.h"

#include "actor_store_blob.h"
#include "clock.h"
#include "sqlx.h"

#define GC_MAX_FILES 1024 /* temporary files examined per account per sweep (rest: next one) */

struct pds_blobstore {
    char root[1024];
    int64_t temp_max_age, gc_interval; /* seconds */
    atomic_uint seq;                   /* staging file names */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop, started;
    pthread_t gc;
    pds_actor_store *actors;
    pds_blob_gc_stats totals;
};

static const char *const AREA_DIR[] = {"tempt/", "", "quarantine/"};

/* ---- paths and folders ---- */

/* DIDs name folders: DID syntax has no '/' and always starts "did:", so no DID can climb out
 * or clash with the tempt/ and quarantine/ folders. */
static int check_did(atp_slice did, atp_err *err)
{
    if (did.len == 0 || did.len > 2048 || !atp_syntax_is_did(did)) {
        return atp_err_set(err, ATP_EINVAL, 0, "invalid DID");
    }
    return 0;
}

static int dir_path(const pds_blobstore *bs, pds_blob_area area, atp_slice did, char *out,
                    size_t cap, atp_err *err)
{
    int rc = check_did(did, err);
    if (rc != 0) {
        return rc;
    }
    int n = snprintf(out, cap, "%s/%s%.*s", bs->root, AREA_DIR[area], (int)did.len,
                     (const char *)did.ptr);
    if (n < 0 || (size_t)n >= cap) {
        return atp_err_set(err, ATP_ELIMIT, 0, "blob path too long");
    }
    return 0;
}

int pds_blobstore_path(const pds_blobstore *bs, pds_blob_area area, atp_slice did,
                       const atp_cid *cid, char *out, size_t cap, atp_err *err)
{
    char cs[ATP_CID_STR_MAX];
    int rc = dir_path(bs, area, did, out, cap, err);
    if (rc != 0) {
        return rc;
    }
    size_t used = strlen(out);
    atp_cid_format_to(cid, cs, sizeof cs);
    int n = snprintf(out + used, cap - used, "/%s", cs);
    if (n < 0 || (size_t)n >= cap - used) {
        return atp_err_set(err, ATP_ELIMIT, 0, "blob path too long");
    }
    return 0;
}

/* Makes a rename or unlink in `dir` durable. */
static int sync_dir(const char *dir, atp_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return atp_err_set(err, ATP_EIO, 0, "open %.200s: %s", dir, strerror(errno));
    }
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : atp_err_set(err, ATP_EIO, 0, "fsync %.200s", dir);
}

/* The folder part of a file path (in place into out). */
static void parent_of(const char *path, char out[PDS_BLOB_PATH_MAX])
{
    snprintf(out, PDS_BLOB_PATH_MAX, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash && slash != out) {
        *slash = '\0';
    }
}

/* ---- open / close ---- */

int pds_blobstore_open(const pds_config *cfg, pds_blobstore **out, atp_err *err)
{
    char path[PDS_BLOB_PATH_MAX];
    if (strlen(cfg->blob_dir) + 16 >= sizeof((pds_blobstore *)0)->root) {
        return atp_err_set(err, ATP_ELIMIT, 0, "blob directory path too long");
    }
    pds_blobstore *bs = atp_xcalloc(1, sizeof *bs);
    snprintf(bs->root, sizeof bs->root, "%s", cfg->blob_dir);
    bs->temp_max_age = cfg->blob_temp_max_age > 0 ? cfg->blob_temp_max_age : 3600;
    bs->gc_interval = cfg->blob_gc_interval > 0 ? cfg->blob_gc_interval : 300;
    snprintf(path, sizeof path, "%s/tempt", bs->root);
    int rc = pds_sqlx_mkdir_p(path, 0755, err);
    if (rc != 0) {
        free(bs);
        return rc;
    }
    pthread_mutex_init(&bs->lock, NULL);
    pthread_cond_init(&bs->wake, NULL);
    *out = bs;
    return 0;
}

void pds_blobstore_close(pds_blobstore *bs)
{
    if (!bs) {
        return;
    }
    pthread_mutex_lock(&bs->lock);
    bs->stop = true;
    pthread_cond_broadcast(&bs->wake);
    pthread_mutex_unlock(&bs->lock);
    if (bs->started) {
        pthread_join(bs->gc, NULL);
    }
    pthread_cond_destroy(&bs->wake);
    pthread_mutex_destroy(&bs->lock);
    free(bs);
}

/* ---- files ---- */

static int write_all(int fd, atp_slice data)
{
    size_t off = 0;
    while (off < data.len) {
        ssize_t w = write(fd, data.ptr + off, data.len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

/* A staging name nobody else uses: O_EXCL guarantees it, the counter makes clashes rare. */
static int stage_open(pds_blobstore *bs, const char *dir, char *stage, size_t cap, atp_err *err)
{
    for (int tries = 0; tries < 8; tries++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned n = atomic_fetch_add(&bs->seq, 1u);
        int len = snprintf(stage, cap, "%s/.%ld.%ld.%u.part", dir, (long)getpid(),
                           (long)ts.tv_nsec, n);
        if (len < 0 || (size_t)len >= cap) {
            return atp_err_set(err, ATP_ELIMIT, 0, "blob path too long");
        }
        int fd = open(stage, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) {
            return fd >= 0 ? fd : atp_err_set(err, ATP_EIO, 0, "create %.200s: %s", stage,
                                              strerror(errno));
        }
    }
    return atp_err_set(err, ATP_EIO, 0, "no free staging name");
}

int pds_blobstore_stage(pds_blobstore *bs, atp_slice did, atp_slice data, char *stage, size_t cap,
                        atp_err *err)
{
    char dir[PDS_BLOB_PATH_MAX];
    int rc = dir_path(bs, PDS_BLOB_TEMP, did, dir, sizeof dir, err);
    rc = rc ? rc : pds_sqlx_mkdir_p(dir, 0755, err);
    if (rc != 0) {
        return rc;
    }
    int fd = stage_open(bs, dir, stage, cap, err);
    if (fd < 0) {
        return fd;
    }
    /* fsync before the rename: the name must never point at bytes not yet on disk. */
    bool ok = write_all(fd, data) == 0 && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        unlink(stage);
        stage[0] = '\0';
        return atp_err_set(err, ATP_EIO, 0, "write blob: %s", strerror(saved));
    }
    return 0;
}

int pds_blobstore_commit_stage(pds_blobstore *bs, const char *stage, atp_slice did,
                               const atp_cid *cid, pds_blob_area area, atp_err *err)
{
    char path[PDS_BLOB_PATH_MAX], dir[PDS_BLOB_PATH_MAX];
    int rc = pds_blobstore_path(bs, area, did, cid, path, sizeof path, err);
    if (rc != 0) {
        return rc;
    }
    parent_of(path, dir);
    rc = pds_sqlx_mkdir_p(dir, 0755, err);
    if (rc != 0) {
        return rc;
    }
    if (rename(stage, path) != 0) {
        return atp_err_set(err, ATP_EIO, 0, "rename blob: %s", strerror(errno));
    }
    return sync_dir(dir, err);
}

void pds_blobstore_drop_stage(const char *stage)
{
    if (stage && stage[0]) {
        unlink(stage);
    }
}

int pds_blobstore_move(pds_blobstore *bs, atp_slice did, const atp_cid *cid, pds_blob_area from,
                       pds_blob_area to, atp_err *err)
{
    char src[PDS_BLOB_PATH_MAX], dst[PDS_BLOB_PATH_MAX], dir[PDS_BLOB_PATH_MAX];
    int rc = pds_blobstore_path(bs, from, did, cid, src, sizeof src, err);
    rc = rc ? rc : pds_blobstore_path(bs, to, did, cid, dst, sizeof dst, err);
    if (rc != 0) {
        return rc;
    }
    parent_of(dst, dir);
    rc = pds_sqlx_mkdir_p(dir, 0755, err);
    if (rc != 0) {
        return rc;
    }
    if (rename(src, dst) != 0) {
        if (errno == ENOENT) {
            /* Someone else moved it first (getBlob and the sweep race harmlessly). */
            return access(dst, F_OK) == 0 ? 0 : atp_err_set(err, ATP_ENOTFOUND, 0, "no blob");
        }
        return atp_err_set(err, ATP_EIO, 0, "move blob: %s", strerror(errno));
    }
    rc = sync_dir(dir, err);
    parent_of(src, dir);
    return rc ? rc : sync_dir(dir, err);
}

int pds_blobstore_delete(pds_blobstore *bs, atp_slice did, const atp_cid *cid, atp_err *err)
{
    for (int a = PDS_BLOB_TEMP; a <= PDS_BLOB_QUARANTINE; a++) {
        char path[PDS_BLOB_PATH_MAX];
        int rc = pds_blobstore_path(bs, (pds_blob_area)a, did, cid, path, sizeof path, err);
        if (rc != 0) {
            return rc;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            return atp_err_set(err, ATP_EIO, 0, "delete blob: %s", strerror(errno));
        }
    }
    return 0;
}

int pds_blobstore_quarantine(pds_blobstore *bs, atp_slice did, const atp_cid *cid, atp_err *err)
{
    return pds_blobstore_move(bs, did, cid, PDS_BLOB_PERM, PDS_BLOB_QUARANTINE, err);
}

int pds_blobstore_unquarantine(pds_blobstore *bs, atp_slice did, const atp_cid *cid, atp_err *err)
{
    return pds_blobstore_move(bs, did, cid, PDS_BLOB_QUARANTINE, PDS_BLOB_PERM, err);
}

static int open_perm(const char *path, int *fd, uint64_t *size, atp_err *err)
{
    struct stat st;
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        return errno == ENOENT ? ATP_ENOTFOUND
                               : atp_err_set(err, ATP_EIO, 0, "open blob: %s", strerror(errno));
    }
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return atp_err_set(err, ATP_EIO, 0, "blob is not a file");
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    return 0;
}

int pds_blobstore_open_read(pds_blobstore *bs, atp_slice did, const atp_cid *cid, int *fd,
                            uint64_t *size, atp_err *err)
{
    char path[PDS_BLOB_PATH_MAX];
    int rc = pds_blobstore_path(bs, PDS_BLOB_PERM, did, cid, path, sizeof path, err);
    rc = rc ? rc : open_perm(path, fd, size, err);
    if (rc != ATP_ENOTFOUND) {
        return rc;
    }
    /* Referenced but still in tempt/: the lazy half of making it permanent. */
    rc = pds_blobstore_move(bs, did, cid, PDS_BLOB_TEMP, PDS_BLOB_PERM, err);
    rc = rc ? rc : open_perm(path, fd, size, err);
    return rc == ATP_ENOTFOUND ? atp_err_set(err, ATP_ENOTFOUND, 0, "Blob not found") : rc;
}

/* Removes a folder holding only files (the per-account folders). */
static int remove_flat_dir(const char *dir, atp_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? 0 : atp_err_set(err, ATP_EIO, 0, "opendir: %s", strerror(errno));
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        char path[PDS_BLOB_PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof path) {
            continue;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = atp_err_set(err, ATP_EIO, 0, "delete %s: %s", e->d_name, strerror(errno));
        }
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0 && errno != ENOENT) {
        rc = atp_err_set(err, ATP_EIO, 0, "rmdir: %s", strerror(errno));
    }
    return rc;
}

int pds_blobstore_delete_account(pds_blobstore *bs, const char *did, atp_err *err)
{
    for (int a = PDS_BLOB_TEMP; a <= PDS_BLOB_QUARANTINE; a++) {
        char dir[PDS_BLOB_PATH_MAX];
        int rc = dir_path(bs, (pds_blob_area)a, atp_slice_str(did), dir, sizeof dir, err);
        rc = rc ? rc : remove_flat_dir(dir, err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- content types ---- */

static bool has_at(atp_slice d, size_t off, const char *magic, size_t n)
{
    return d.len >= off + n && memcmp(d.ptr + off, magic, n) == 0;
}

/* ISO base media (MP4, QuickTime, HEIF, AVIF): "ftyp" at 4, the major brand at 8. */
static const char *sniff_ftyp(atp_slice d)
{
    static const struct {
        const char *brand, *mime;
    } brands[] = {
        {"avif", "image/avif"}, {"avis", "image/avif"}, {"heic", "image/heic"},
        {"heix", "image/heic"}, {"heim", "image/heic-sequence"}, {"hevc", "image/heic-sequence"},
        {"mif1", "image/heif"}, {"msf1", "image/heif-sequence"}, {"qt  ", "video/quicktime"},
        {"M4A ", "audio/x-m4a"}, {"M4V ", "video/x-m4v"}, {"M4P ", "video/mp4"},
        {"3g2", "video/3gpp2"}, {"3gp", "video/3gpp"},
    };
    if (!has_at(d, 4, "ftyp", 4) || d.len < 12) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++) {
        if (has_at(d, 8, brands[i].brand, strlen(brands[i].brand))) {
            return brands[i].mime;
        }
    }
    return "video/mp4";
}

/* RIFF containers: WebP images, WAV audio, AVI video. */
static const char *sniff_riff(atp_slice d)
{
    if (!has_at(d, 0, "RIFF", 4)) {
        return NULL;
    }
    if (has_at(d, 8, "WEBP", 4)) {
        return "image/webp";
    }
    if (has_at(d, 8, "WAVE", 4)) {
        return "audio/wav";
    }
    return has_at(d, 8, "AVI ", 4) ? "video/vnd.avi" : NULL;
}

/* Matroska/WebM: the EBML header names its DocType within the first bytes. */
static const char *sniff_ebml(atp_slice d)
{
    if (!has_at(d, 0, "\x1a\x45\xdf\xa3", 4)) {
        return NULL;
    }
    for (size_t i = 4; i + 4 <= d.len; i++) {
        if (memcmp(d.ptr + i, "webm", 4) == 0) {
            return "video/webm";
        }
    }
    return "video/x-matroska";
}

const char *pds_blob_sniff(atp_slice data)
{
    static const struct {
        size_t off, n;
        const char *magic, *mime;
    } fixed[] = {
        {0, 8, "\x89PNG\r\n\x1a\n", "image/png"},
        {0, 3, "\xff\xd8\xff", "image/jpeg"},
        {0, 6, "GIF87a", "image/gif"},
        {0, 6, "GIF89a", "image/gif"},
        {0, 4, "II*\0", "image/tiff"},
        {0, 4, "MM\0*", "image/tiff"},
        {0, 2, "\xff\x0a", "image/jxl"},
        {0, 12, "\0\0\0\x0cJXL \r\n\x87\n", "image/jxl"},
        {0, 4, "\0\0\1\0", "image/x-icon"},
        {0, 2, "BM", "image/bmp"},
        {0, 4, "OggS", "audio/ogg"},
        {0, 4, "fLaC", "audio/x-flac"},
        {0, 3, "ID3", "audio/mpeg"},
        {0, 5, "%PDF-", "application/pdf"},
        {0, 4, "PK\3\4", "application/zip"},
        {0, 3, "\x1f\x8b\x08", "application/gzip"},
    };
    atp_slice d = {data.ptr, data.len < PDS_SNIFF_MAX ? data.len : PDS_SNIFF_MAX};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (has_at(d, fixed[i].off, fixed[i].magic, fixed[i].n)) {
            return fixed[i].mime;
        }
    }
    const char *m = sniff_ftyp(d);
    m = m ? m : sniff_riff(d);
    return m ? m : sniff_ebml(d);
}

/* RFC 7230 tchar. */
static bool is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

size_t pds_blob_mime_normalize(atp_slice in, char out[PDS_MIME_MAX + 1])
{
    size_t b = 0, e = in.len, slash = 0, n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < in.len; i++) {
        if (in.ptr[i] == ';') {
            e = i;
            break;
        }
    }
    while (b < e && (in.ptr[b] == ' ' || in.ptr[b] == '\t')) {
        b++;
    }
    while (e > b && (in.ptr[e - 1] == ' ' || in.ptr[e - 1] == '\t')) {
        e--;
    }
    if (e - b > PDS_MIME_MAX) {
        return 0;
    }
    for (size_t i = b; i < e; i++) {
        uint8_t c = in.ptr[i];
        if (c == '/' && slash == 0 && i > b && i + 1 < e) {
            slash = i;
        } else if (!is_tchar(c)) {
            out[0] = '\0'; /* the contract: "" when invalid, whatever was copied so far */
            return 0;
        }
        out[n++] = (char)c; /* case kept, as the reference stores the client's type */
    }
    out[n] = '\0';
    if (slash == 0) {
        out[0] = '\0';
        return 0;
    }
    return n;
}

size_t pds_blob_mime_choose(atp_slice header, atp_slice data, char out[PDS_MIME_MAX + 1])
{
    const char *sniffed = pds_blob_sniff(data);
    size_t n;
    if (sniffed) {
        n = strlen(sniffed);
        memcpy(out, sniffed, n + 1);
        return n;
    }
    n = pds_blob_mime_normalize(header, out);
    if (n > 0) {
        return n;
    }
    memcpy(out, "application/octet-stream", sizeof "application/octet-stream");
    return sizeof "application/octet-stream" - 1;
}

/* ---- garbage collection ---- */

typedef struct sweep_ctx {
    pds_blobstore *bs;
    atp_slice did;
    uint64_t moved;
} sweep_ctx;

static int gc_drop(void *ctx, const atp_cid *cid, bool permanent, atp_err *err)
{
    sweep_ctx *s = ctx;
    (void)permanent;
    return pds_blobstore_delete(s->bs, s->did, cid, err);
}

static int gc_keep(void *ctx, const atp_cid *cid, bool permanent, atp_err *err)
{
    sweep_ctx *s = ctx;
    (void)permanent;
    int rc = pds_blobstore_move(s->bs, s->did, cid, PDS_BLOB_TEMP, PDS_BLOB_PERM, err);
    s->moved += rc == 0 ? 1 : 0;
    return rc;
}

/* Files of the account's tempt/ folder: stale .part files go at once; CID-named files are
 * collected for the locked pass (up to cap). */
static size_t scan_temp(const char *dir, int64_t cutoff, atp_cid *out, size_t cap,
                        uint64_t *stale)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && n < cap && (e = readdir(d)) != NULL) {
        char path[PDS_BLOB_PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.') {
            int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            bool part = len > 0 && (size_t)len < sizeof path && strstr(e->d_name, ".part");
            if (part && stat(path, &st) == 0 && (int64_t)st.st_mtime < cutoff &&
                unlink(path) == 0) {
                (*stale)++;
            }
            continue;
        }
        if (atp_cid_parse(atp_slice_str(e->d_name), 0, &out[n], NULL) == 0) {
            n++;
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void sweep_account(pds_blobstore *bs, pds_actor_store *actors, const char *did,
                          int64_t now, atp_cid *buf, pds_blob_gc_stats *st)
{
    char dir[PDS_BLOB_PATH_MAX], cutoff[32];
    sweep_ctx s = {bs, atp_slice_str(did), 0};
    size_t n = 0, deleted = 0;
    atp_err err;
    if (dir_path(bs, PDS_BLOB_TEMP, s.did, dir, sizeof dir, NULL) == 0) {
        n = scan_temp(dir, now - bs->temp_max_age, buf, GC_MAX_FILES, &st->stale_files);
    }
    pds_sqlx_time_ms((now - bs->temp_max_age) * 1000, cutoff);
    int rc = pds_actor_blob_gc(actors, s.did, cutoff, buf, n, gc_drop, gc_keep, &s, &deleted,
                               &err);
    if (rc != 0 && rc != ATP_ENOTFOUND) {
        atp_logf(ATP_LOG_WARN, "blobs", "gc of %s: %s", did, err.msg);
    }
    st->deleted += deleted;
    st->moved += s.moved;
    st->accounts++;
}

/* Every "did:*" folder of one area. */
static void sweep_area(pds_blobstore *bs, pds_actor_store *actors, const char *area_dir,
                       bool skip_if_temp, int64_t now, atp_cid *buf, pds_blob_gc_stats *st)
{
    DIR *d = opendir(area_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char tdir[PDS_BLOB_PATH_MAX];
        if (strncmp(e->d_name, "did:", 4) != 0) {
            continue;
        }
        /* Accounts with a tempt/ folder were swept in the first pass. */
        snprintf(tdir, sizeof tdir, "%s/tempt/%s", bs->root, e->d_name);
        if (skip_if_temp && access(tdir, F_OK) == 0) {
            continue;
        }
        sweep_account(bs, actors, e->d_name, now, buf, st);
    }
    if (d) {
        closedir(d);
    }
}

int pds_blobstore_sweep(pds_blobstore *bs, pds_actor_store *actors, int64_t now,
                        pds_blob_gc_stats *st, atp_err *err)
{
    char dir[PDS_BLOB_PATH_MAX];
    pds_blob_gc_stats local;
    memset(&local, 0, sizeof local);
    (void)err;
    atp_cid *buf = atp_xmalloc(GC_MAX_FILES * sizeof *buf);
    snprintf(dir, sizeof dir, "%s/tempt", bs->root);
    sweep_area(bs, actors, dir, false, now, buf, &local);
    sweep_area(bs, actors, bs->root, true, now, buf, &local);
    free(buf);
    pthread_mutex_lock(&bs->lock);
    bs->totals.deleted += local.deleted;
    bs->totals.moved += local.moved;
    bs->totals.stale_files += local.stale_files;
    bs->totals.accounts += local.accounts;
    pthread_mutex_unlock(&bs->lock);
    if (st) {
        st->deleted += local.deleted;
        st->moved += local.moved;
        st->stale_files += local.stale_files;
        st->accounts += local.accounts;
    }
    return 0;
}

static void *gc_main(void *arg)
{
    pds_blobstore *bs = arg;
    pthread_mutex_lock(&bs->lock);
    while (!bs->stop) {
        struct timespec until = pds_deadline_ms(bs->gc_interval * 1000);
        while (!bs->stop && pthread_cond_timedwait(&bs->wake, &bs->lock, &until) != ETIMEDOUT) {
        }
        if (bs->stop) {
            break;
        }
        pthread_mutex_unlock(&bs->lock);
        atp_err err;
        if (pds_blobstore_sweep(bs, bs->actors, (int64_t)time(NULL), NULL, &err) != 0) {
            atp_logf(ATP_LOG_WARN, "blobs", "gc sweep: %s", err.msg);
        }
        pthread_mutex_lock(&bs->lock);
    }
    pthread_mutex_unlock(&bs->lock);
    return NULL;
}

int pds_blobstore_gc_start(pds_blobstore *bs, pds_actor_store *actors, atp_err *err)
{
    pthread_mutex_lock(&bs->lock);
    bool already = bs->started;
    bs->actors = actors;
    if (!already) {
        bs->started = pthread_create(&bs->gc, NULL, gc_main, bs) == 0;
    }
    bool ok = bs->started;
    pthread_mutex_unlock(&bs->lock);
    return ok ? 0 : atp_err_set(err, ATP_EIO, 0, "cannot start the blob gc thread");
}

void pds_blobstore_gc_stats_get(pds_blobstore *bs, pds_blob_gc_stats *out)
{
    pthread_mutex_lock(&bs->lock);
    *out = bs->totals;
    pthread_mutex_unlock(&bs->lock);
}

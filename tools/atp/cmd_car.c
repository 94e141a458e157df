/* cmd_car.c: `atp car ls FILE` and `atp car verify FILE`. Both stream the file through the CAR
 * reader in 64 KiB reads, so a CAR of any size runs in constant memory. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "atp.h"
#include "atp/car.h"

typedef struct car_walk {
    bool list;    /* print roots and blocks */
    size_t bytes; /* block data bytes seen */
} car_walk;

static void print_roots(const atp_car_reader *r)
{
    size_t n;
    const atp_cid *roots = atp_car_reader_roots(r, &n);
    char str[ATP_CID_STR_MAX];
    for (size_t i = 0; i < n; i++) {
        atp_cid_format_to(&roots[i], str, sizeof str);
        printf("root %s\n", str);
    }
}

/* Feeds one chunk to the reader; returns 0 when the chunk is used up, or an error. */
static int feed(atp_car_reader *r, atp_slice chunk, car_walk *w, atp_err *err)
{
    while (chunk.len > 0) {
        atp_car_block blk;
        size_t used = 0;
        int rc = atp_car_reader_next(r, chunk, &used, &blk, err);
        chunk = atp_slice_sub(chunk, used, chunk.len);
        if (rc == ATP_EAGAIN) {
            return 0;
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == ATP_CAR_HEADER && w->list) {
            print_roots(r);
        } else if (rc == ATP_CAR_BLOCK) {
            w->bytes += blk.data.len;
            if (w->list) {
                char str[ATP_CID_STR_MAX];
                atp_cid_format_to(&blk.cid, str, sizeof str);
                printf("block %s %zu\n", str, blk.data.len);
            }
        }
    }
    return 0;
}

static int car_walk_file(const char *path, car_walk *w)
{
    static uint8_t chunk[65536];
    atp_err err = {0};
    FILE *f = fopen(path, "rb");
    atp_car_reader *r;
    int rc = 0;
    size_t n;
    if (!f) {
        fprintf(stderr, "atp: %s: %s\n", path, strerror(errno));
        return ATP_EXIT_INVALID;
    }
    r = atp_car_reader_create(NULL, 0);
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        rc = feed(r, atp_slice_make(chunk, n), w, &err);
    }
    if (rc == 0 && ferror(f)) {
        rc = atp_err_set(&err, ATP_EIO, 0, "read error: %s", strerror(errno));
    }
    if (rc == 0) {
        rc = atp_car_reader_finish(r, &err);
    }
    if (rc == 0) {
        fprintf(stderr, "atp: %s: %zu blocks, %zu bytes of block data, all hashes verified\n",
                path, atp_car_reader_block_count(r), w->bytes);
    }
    atp_car_reader_destroy(r);
    fclose(f);
    return rc == 0 ? ATP_EXIT_OK : atp_tool_fail(path, &err);
}

int atp_cmd_car(int argc, char **argv)
{
    static const char usage[] = "usage: atp car ls FILE | atp car verify FILE\n";
    car_walk w = {0};
    if (argc != 2) {
        return atp_tool_usage(usage);
    }
    if (strcmp(argv[0], "ls") == 0) {
        w.list = true;
    } else if (strcmp(argv[0], "verify") != 0) {
        return atp_tool_usage(usage);
    }
    return car_walk_file(argv[1], &w);
}

/* atp/car.h: CAR v1 files (content-addressable archives), spec repository.md §4.
 *
 *   car     = varint(len(header)) header section*
 *   header  = DAG-CBOR {"roots": [link, ...], "version": 1}
 *   section = varint(len(cid) + len(data)) cid data
 *
 * Reading is push-style: feed bytes as they arrive (an HTTP body) and get the header, then each
 * block as soon as it is complete. Each block's bytes are checked against its CID. A reader
 * keeps at most one partial header/section buffered; complete ones are handed out zero-copy
 * from the caller's input. A whole-slice reader (atp_car_mem) sits on top for in-memory CARs.
 *
 * Writing emits the header then blocks, to an atp_buf or through a callback so that a large CAR
 * streams out without being built in memory.
 */
#ifndef ATP_CAR_H
#define ATP_CAR_H

#include "atp/buf.h"
#include "atp/cid.h"

/* Reader limits, each checked against the length prefix before any byte of the item is
 * buffered. */
typedef struct atp_car_limits {
    size_t max_header;   /* bytes of the header's CBOR */
    size_t max_roots;    /* entries of the header's roots array */
    size_t max_block;    /* bytes of one block's data (the CID is not counted) */
    size_t max_blocks;   /* number of blocks */
    uint64_t max_total;  /* bytes of the whole CAR, length prefixes included */
} atp_car_limits;

/* 64 KiB header, 1024 roots, 2 MiB blocks, 1M blocks, 1 GiB total. */
extern const atp_car_limits atp_car_limits_default;

/* Reader flags. */
enum {
    /* Blocks whose CID does not use sha2-256 are returned with verified = false instead of
     * failing with ATP_EINVAL. (sha2-256 blocks are always verified; a mismatch is ATP_EHASH.) */
    ATP_CAR_ALLOW_UNVERIFIED = 1 << 0,
};

/* What atp_car_reader_next returns besides errors. */
enum {
    ATP_CAR_HEADER = 1, /* the header was read: roots are available */
    ATP_CAR_BLOCK = 2,  /* a block was read: see atp_car_block */
};

typedef struct atp_car_block {
    atp_cid cid;
    atp_slice data;  /* borrowed: from the caller's input, or the reader's buffer; valid until
                      * the next call on the reader (and as long as the input when zero-copy) */
    bool verified;   /* data hashed to cid (false only with ATP_CAR_ALLOW_UNVERIFIED) */
    uint64_t offset; /* stream offset of the section's length prefix */
} atp_car_block;

/* ---- streaming reader ---- */

typedef struct atp_car_reader atp_car_reader;

/* NULL is a no-op. */
void atp_car_reader_destroy(atp_car_reader *r);
/* Owned: destroy with atp_car_reader_destroy. NULL `lim` means the defaults (copied). */
atp_car_reader *atp_car_reader_create(const atp_car_limits *lim, unsigned flags)
    ATP_DEALLOC(atp_car_reader_destroy);
/* Back to the start of a new stream; keeps the buffer's capacity. */
void atp_car_reader_reset(atp_car_reader *r);

/* Consumes bytes from `in` until one item is complete. Sets *consumed (always, also on
 * ATP_EAGAIN and errors) to the bytes of `in` used; the caller passes the rest next time.
 * Returns:
 *   ATP_CAR_HEADER  the header was read (first item; roots via atp_car_reader_roots)
 *   ATP_CAR_BLOCK   *blk holds the next block (only written then)
 *   ATP_EAGAIN      all of `in` was consumed (and buffered if partial): feed more
 *   < 0             ATP_EINVAL (bad header, CID, section length 0 or shorter than its CID, non-
 *                   sha2-256 CID without the flag, not CAR v1), ATP_EHASH (block does not match
 *                   its CID), ATP_ELIMIT (a limit), with the stream offset in `err`.
 * Errors are sticky: later calls return the same code until reset. */
ATP_NODISCARD int atp_car_reader_next(atp_car_reader *r, atp_slice in, size_t *consumed,
                                      atp_car_block *blk, atp_err *err);

/* Call at end of input: 0 if the stream ended cleanly after the header and whole sections,
 * ATP_ETRUNC if it stopped inside an item or before the header, the sticky error if any. */
ATP_NODISCARD int atp_car_reader_finish(const atp_car_reader *r, atp_err *err);

/* Roots of the header (borrowed, valid until reset/destroy); NULL with *n = 0 before the header
 * has been read. */
const atp_cid *atp_car_reader_roots(const atp_car_reader *r, size_t *n);
/* Blocks returned and bytes consumed so far. */
size_t atp_car_reader_block_count(const atp_car_reader *r);
uint64_t atp_car_reader_offset(const atp_car_reader *r);

/* ---- whole-slice reader ---- */

/* Reads an in-memory CAR; every block's data is a slice of `car` (zero-copy). Fields are
 * read-only for callers. */
typedef struct atp_car_mem {
    atp_car_reader *r;
    atp_slice rest;
    const atp_cid *roots; /* borrowed from the reader, valid until close */
    size_t n_roots;
} atp_car_mem;

/* Reads the header of `car` (borrowed: must outlive `m`). On success `m` must be closed. */
ATP_NODISCARD int atp_car_mem_open(atp_car_mem *m, atp_slice car, const atp_car_limits *lim,
                                   unsigned flags, atp_err *err);
/* Returns ATP_CAR_BLOCK with *blk set, 0 at the clean end of the CAR, or a negative error
 * (ATP_ETRUNC if the CAR ends inside a section). */
ATP_NODISCARD int atp_car_mem_next(atp_car_mem *m, atp_car_block *blk, atp_err *err);
void atp_car_mem_close(atp_car_mem *m);

/* ---- writer ---- */

/* Sink for the streaming writer: write all of `bytes` or return a negative ATP_E* code. */
typedef int (*atp_car_write_fn)(void *ctx, atp_slice bytes);

/* Caller-owned writer state (fields private). Errors are sticky: after a failure every later
 * call returns the same code and writes nothing. */
typedef struct atp_car_writer {
    atp_buf *out;
    atp_car_write_fn fn;
    void *ctx;
    int err;
    bool header_done;
    uint64_t written;
} atp_car_writer;

/* Appends to `out` (borrowed; its max bounds the CAR: overflow is ATP_ELIMIT). */
void atp_car_writer_init_buf(atp_car_writer *w, atp_buf *out);
/* Calls fn(ctx, bytes) for each piece; block data is passed through without copying. */
void atp_car_writer_init_fn(atp_car_writer *w, atp_car_write_fn fn, void *ctx);

/* Writes the header {roots, version: 1}; must come first, once. ATP_EINVAL if called twice. */
ATP_NODISCARD int atp_car_write_header(atp_car_writer *w, const atp_cid *roots, size_t n_roots);
/* Writes one section (the data is not re-hashed: the caller vouches for the CID). ATP_EINVAL
 * before the header or for an empty CID. */
ATP_NODISCARD int atp_car_write_block(atp_car_writer *w, const atp_cid *cid, atp_slice data);
/* Computes the CIDv1 sha2-256 of `data` with `codec`, writes the block, and stores the CID in
 * *cid_out (nullable). */
ATP_NODISCARD int atp_car_write_data(atp_car_writer *w, unsigned codec, atp_slice data,
                                     atp_cid *cid_out);
/* Bytes written so far. */
uint64_t atp_car_writer_written(const atp_car_writer *w);

#endif

/* spool — a per-adapter append-only local queue of received messages on disk, so that a
 * message can be acknowledged to its broker once it is durable here, before PostgreSQL has
 * it. Files: <dir>/<segment>.seg (records) and <dir>/cursor (first unconsumed record).
 *
 * A record is [u32 body length][u32 CRC-32 of body][body], big-endian; the body is
 * [u64 received µs][u16 topic length][topic][payload]. On open a torn or corrupt tail (a crash
 * during an append) is cut off. Appends are plain writes; spool_sync_* make them durable
 * (the caller runs fdatasync where it may block, e.g. the libuv thread pool). Only synced
 * records are handed to the reader. The cursor is advanced without fsync: losing it only
 * replays records already delivered, which event ids make harmless. Not thread-safe. */
#ifndef CIRCA_SPOOL_H
#define CIRCA_SPOOL_H
#include <stddef.h>
#include <stdint.h>

#define SPOOL_MAX_RECORD (16u << 20)    /* larger messages are refused */

typedef struct spool spool_t;

typedef struct {
    int64_t received_us;
    char *topic;              /* NUL-terminated, owned by the record */
    char *payload;            /* NUL-terminated copy, owned by the record */
    size_t payload_len;
} spool_rec_t;

/* Creates dir (and parents) when missing, recovers the segments; 0 or -1 with err. */
int spool_open(const char *dir, spool_t **out, char *err, size_t errlen);
void spool_close(spool_t *s);

/* Appends one record (not yet durable). 0, or -1 with errno set. */
int spool_append(spool_t *s, int64_t received_us, const char *topic, const void *payload,
                 size_t len);
/* Durability in two steps so the fsync can run off the loop: sync_begin returns the fd to
 * fdatasync (-1 when nothing is pending), sync_end(ok) makes the records up to that point
 * visible to the reader (ok = 0: the fsync failed; the records stay pending). */
int spool_sync_begin(spool_t *s);
void spool_sync_end(spool_t *s, int ok);
int spool_pending(const spool_t *s);      /* 1 while appended records are not yet synced */

/* Reads up to max durable unconsumed records from the cursor, in order; returns how many
 * (0 = none), -1 on a read error. Records stay in the spool until spool_consume. */
int spool_peek(spool_t *s, spool_rec_t *recs, int max);
void spool_rec_free(spool_rec_t *r);
/* Drops the first n records peeked. Fully drained segments are removed. 0 or -1. */
int spool_consume(spool_t *s, int n);

/* Unconsumed records (synced or not) and the receive time of the oldest (0 when empty). */
uint64_t spool_depth(const spool_t *s);
int64_t spool_oldest_us(const spool_t *s);

/* CRC-32 (IEEE 802.3), exposed for tests. */
uint32_t spool_crc32(const void *p, size_t n);

#endif

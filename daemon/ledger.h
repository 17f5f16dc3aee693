/* ledger — hashing of the per-tenant chain: RFC 6962 Merkle roots over events' canonical
 * bytes, block hashes over the JCS of {count, prev, root, seq, tenant, time}, and the
 * verification walk `circa verify` runs. */
#ifndef CIRCA_LEDGER_H
#define CIRCA_LEDGER_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <libpq-fe.h>

#define LEDGER_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* RFC 6962: leaf = SHA-256(0x00 || data). */
void ledger_leaf_hash(const void *data, size_t len, uint8_t out[32]);
/* RFC 6962 MTH over n leaf hashes (node = SHA-256(0x01 || left || right), split at the
 * largest power of two < n). n == 0 gives SHA-256 of the empty string. */
void ledger_merkle_root(const uint8_t (*leaves)[32], size_t n, uint8_t out[32]);
/* Block hash: SHA-256 of the JCS of {"count","prev","root","seq","tenant","time"}; prev and
 * root are lowercase hex, time is RFC 3339 UTC ("2026-03-04T09:15:00.123Z"). */
void ledger_block_hash(const char *tenant, int64_t seq, const char *prev_hex,
                       const char *root_hex, int64_t count, const char *time, uint8_t out[32]);
void ledger_hex(const uint8_t h[32], char out[65]);

typedef struct {
    long long blocks, events;
    long long first_bad_block_seq;   /* -1 when the chain verifies; for events in no block the
                                      * first such seq; for a wrong tenant head the last block's
                                      * seq (0 when there is none) */
    char reason[256];                /* why the first bad block is bad */
    char head_hash[65];
} ledger_verify_result_t;

/* Walks a tenant's chain in the database with blocking libpq (CLI use only, never in circad):
 * every block's prev link, Merkle root over its events (seq order) and hash, and the tenant
 * row's head. Returns 0 when it verifies, 1 when a block is broken (res says which), -1 on a
 * database error or an unknown tenant (err says which). When db is idle the walk runs in its
 * own REPEATABLE READ READ ONLY transaction (one snapshot), rolled back before returning. */
int ledger_verify_db(PGconn *db, const char *tenant, ledger_verify_result_t *res,
                     char *err, size_t errlen);

#endif

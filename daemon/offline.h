/* offline — verifies a ledger export (`circa export` NDJSON) and a downloaded JSON report with
 * no database: chain links, Merkle roots, block hashes, Ed25519 signatures, and that the report
 * names one of the export's blocks and hashes to its SHA-256; a waste register is recomputed
 * from the export's events (reports/regcheck.h), with its downloaded consignment listing.
 * Pure: files in, verdict out. */
#ifndef CIRCA_OFFLINE_H
#define CIRCA_OFFLINE_H
#include <stdio.h>

#define OFFLINE_FORMAT 1   /* the "circa_export" version this module reads */

typedef struct {
    const char *export_path;      /* NDJSON from `circa export`; "-" for stdin */
    const char *report_path;      /* a report's JSON (GET /v1/reports/{id}.json); NULL: none */
    const char *report_sha256;    /* the SHA-256 the report was published with; NULL: the
                                   * export's own record of the report, if it has one */
    const char *public_key_hex;   /* a key the auditor holds; NULL: the export header's. When
                                   * both are present they must be the same key. */
    const char *listing_path;     /* a waste register's consignments (`circa report
                                   * --consignments`); NULL: none */
} offline_opts_t;

typedef struct {
    char tenant[128];
    long long blocks, events, signed_blocks;
    long long first_seq, last_seq;   /* events covered: first_seq..last_seq (0, 0: none) */
    int from_genesis;                /* 1: the first block is the chain's first (prev = 0…0);
                                      * 0: the export starts mid-chain and that block's prev
                                      * was taken as given */
    int have_key;                    /* signatures were checked against a public key */
    char first_prev[65], head_hash[65];
    char report_id[80], report_sha256[65];
    int register_checked;            /* a waste register was recomputed from the events */
    long long register_consignments;
    char register_note[256];         /* what was not checked, and why ("" when nothing) */
    char problem[512];               /* the first problem found; "" when all verifies */
} offline_result_t;

/* Verifies o->export_path (and the report, when given) into res. 0 when everything verifies,
 * 1 when something does not (res->problem names the first thing, with its line or block),
 * -1 when a file cannot be read (res->problem says which). Memory stays flat in the export's
 * length (one line and one block's leaf hashes at a time), except for a waste register: its
 * recomputation holds the register's flow events up to the report's block. */
int offline_verify(const offline_opts_t *o, offline_result_t *res);

/* offline_verify, then a summary on out: what was checked, where the chain starts, the head,
 * the report, and OK or "FAILED: <problem>". Returns the exit code: 0 verified, 1 not. */
int offline_verify_print(const offline_opts_t *o, FILE *out);

#endif

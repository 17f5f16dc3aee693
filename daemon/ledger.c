/* ledger — RFC 6962 Merkle roots, block hashes and the `circa verify` walk of a tenant's chain. */
#include "ledger.h"
#include "signer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "buf.h"

/* Blocks fetched per query: keyset pages keep memory flat however long the chain is. */
#define BLOCK_PAGE 1000

/* SHA-256 of a || b. A failing digest means a broken libcrypto; nothing sensible is left to do. */
static void sha256_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) || !EVP_DigestUpdate(ctx, a, alen)
        || !EVP_DigestUpdate(ctx, b, blen) || !EVP_DigestFinal_ex(ctx, out, &len) || len != 32)
        abort();
    EVP_MD_CTX_free(ctx);
}

static void sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int olen = 0;
    if (!EVP_Digest(data, len, out, &olen, EVP_sha256(), NULL) || olen != 32) abort();
}

void ledger_leaf_hash(const void *data, size_t len, uint8_t out[32])
{
    static const uint8_t prefix = 0x00;
    sha256_2(&prefix, 1, data ? data : "", len, out);
}

static void node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
    uint8_t in[65];
    in[0] = 0x01;
    memcpy(in + 1, l, 32);
    memcpy(in + 33, r, 32);
    sha256(in, sizeof in, out);
}

/* Recursion on index ranges, never on copies: O(n) hashes, depth log2(n). */
static void mth(const uint8_t (*leaves)[32], size_t n, uint8_t out[32])
{
    if (n == 1) {
        memcpy(out, leaves[0], 32);
        return;
    }
    size_t k = 1;
    while (k < n - k) k <<= 1;   /* largest power of two < n, without overflowing k * 2 */
    uint8_t l[32], r[32];
    mth(leaves, k, l);
    mth(leaves + k, n - k, r);
    node_hash(l, r, out);
}

void ledger_merkle_root(const uint8_t (*leaves)[32], size_t n, uint8_t out[32])
{
    if (n == 0) {
        sha256("", 0, out);
        return;
    }
    mth(leaves, n, out);
}

void ledger_block_hash(const char *tenant, int64_t seq, const char *prev_hex,
                       const char *root_hex, int64_t count, const char *time, uint8_t out[32])
{
    /* JCS: keys sorted, no whitespace, integers in plain decimal. */
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"count\":%" PRId64 ",\"prev\":", count);
    buf_json_str(&b, prev_hex, strlen(prev_hex));
    buf_puts(&b, ",\"root\":");
    buf_json_str(&b, root_hex, strlen(root_hex));
    buf_printf(&b, ",\"seq\":%" PRId64 ",\"tenant\":", seq);
    buf_json_str(&b, tenant, strlen(tenant));
    buf_puts(&b, ",\"time\":");
    buf_json_str(&b, time, strlen(time));
    buf_putc(&b, '}');
    sha256(b.data, b.len, out);
    buf_free(&b);
}

void ledger_hex(const uint8_t h[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[64] = '\0';
}

/* --- verification ------------------------------------------------------------------------- */

typedef struct {
    PGconn *db;
    const char *tenant;
    ledger_verify_result_t *res;
    char *err;
    size_t errlen;
    int64_t last_seq;          /* seq of the last verified block, 0 before the first */
    char last_hash[65];        /* its hash, 64 zeros before the first */
    uint8_t (*leaves)[32];     /* the current block's leaf hashes, reused across blocks */
    size_t leaves_cap;
    int has_pub;               /* the tenant registered an Ed25519 key: blocks are signed */
    unsigned char pub[SIGNER_PUB_LEN];
    int64_t signed_seq;        /* last block that carried a signature, 0 before */
} walk_t;

/* One stored block row, its text fields pointing into the PGresult. */
typedef struct {
    int64_t seq, count;
    const char *prev, *root, *time, *hash, *sig_hex;   /* sig_hex "" when unsigned */
} block_row_t;

static int bad(walk_t *w, long long block, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(walk_t *w, long long block, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->res->reason, sizeof w->res->reason, fmt, ap);
    va_end(ap);
    w->res->first_bad_block_seq = block;
    return 1;
}

static int db_fail(walk_t *w, const char *what)
{
    snprintf(w->err, w->errlen, "%s: %s", what, PQerrorMessage(w->db));
    size_t n = strlen(w->err);
    while (n && (w->err[n - 1] == '\n' || w->err[n - 1] == ' ')) w->err[--n] = '\0';
    return -1;
}

static PGresult *query(walk_t *w, const char *sql, int nparams, const char *const *params,
                       int binary, const char *what)
{
    PGresult *r = PQexecParams(w->db, sql, nparams, NULL, params, NULL, NULL, binary);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
    db_fail(w, what);
    PQclear(r);
    return NULL;
}

static int64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | u[i];
    return (int64_t)v;
}

static int missing(walk_t *w, int64_t block, int64_t from, int64_t to)
{
    if (from == to)
        return bad(w, block, "block %" PRId64 ": event %" PRId64 " missing", block, from);
    return bad(w, block, "block %" PRId64 ": events %" PRId64 "-%" PRId64 " missing", block,
               from, to);
}

/* Checks the block's events are exactly first..b->seq and belong to it; hashes their canon. */
static int hash_events(walk_t *w, const block_row_t *b, int64_t first)
{
    char p1[24], p2[24];
    snprintf(p1, sizeof p1, "%" PRId64, first);
    snprintf(p2, sizeof p2, "%" PRId64, b->seq);
    const char *params[3] = {w->tenant, p1, p2};
    PGresult *r = query(w, "SELECT seq, block_seq, canon FROM event WHERE tenant_id = $1 "
                           "AND seq BETWEEN $2 AND $3 ORDER BY seq",
                        3, params, 1, "reading events");
    if (!r) return -1;
    size_t n = (size_t)PQntuples(r);
    if (n > w->leaves_cap) {
        w->leaves = xrealloc(w->leaves, n * sizeof *w->leaves);
        w->leaves_cap = n;
    }
    int rc = 0;
    int64_t expect = first;
    for (size_t i = 0; i < n && rc == 0; i++, expect++) {
        if (PQgetlength(r, (int)i, 0) != 8 || PQgetlength(r, (int)i, 1) != 8) {
            snprintf(w->err, w->errlen, "reading events: unexpected binary int8 width");
            rc = -1;
            break;
        }
        int64_t seq = be64(PQgetvalue(r, (int)i, 0)), bseq = be64(PQgetvalue(r, (int)i, 1));
        if (seq != expect) rc = missing(w, b->seq, expect, seq - 1);
        else if (bseq != b->seq)
            rc = bad(w, b->seq, "block %" PRId64 ": event %" PRId64 " has block_seq %" PRId64,
                     b->seq, seq, bseq);
        else
            ledger_leaf_hash(PQgetvalue(r, (int)i, 2), (size_t)PQgetlength(r, (int)i, 2),
                             w->leaves[i]);
    }
    if (rc == 0 && expect <= b->seq) rc = missing(w, b->seq, expect, b->seq);
    PQclear(r);
    return rc;
}

/* Once a tenant has a key every block after the first signed one must carry a valid
 * Ed25519 signature over its hash: a rewritten chain cannot be re-signed without the key. */
static int check_signature(walk_t *w, const block_row_t *b, const char hash_hex[65])
{
    if (!w->has_pub) return 0;
    if (!*b->sig_hex) {
        if (!w->signed_seq) return 0;
        return bad(w, b->seq, "block %" PRId64 ": not signed, but block %" PRId64 " before it is",
                   b->seq, w->signed_seq);
    }
    unsigned char sig[SIGNER_SIG_LEN];
    if (signer_unhex(b->sig_hex, sig, sizeof sig) != 0 || signer_verify(w->pub, hash_hex, sig) != 0)
        return bad(w, b->seq, "block %" PRId64 ": signature does not verify", b->seq);
    w->signed_seq = b->seq;
    return 0;
}

/* All of one block: its range follows the previous block, its prev link, root and hash. */
static int check_block(walk_t *w, const block_row_t *b)
{
    int64_t first = b->seq - b->count + 1;
    if (b->count <= 0 || first != w->last_seq + 1)
        return bad(w, b->seq, "block %" PRId64 ": covers events %" PRId64 "-%" PRId64
                   " but the previous block ends at %" PRId64, b->seq, first, b->seq,
                   w->last_seq);
    if (strcmp(b->prev, w->last_hash) != 0)
        return bad(w, b->seq, "block %" PRId64 ": prev link broken (stored %s, previous block "
                   "hash %s)", b->seq, b->prev, w->last_hash);
    int rc = hash_events(w, b, first);
    if (rc) return rc;
    uint8_t h[32];
    char hex[65];
    ledger_merkle_root((const uint8_t (*)[32])w->leaves, (size_t)b->count, h);
    ledger_hex(h, hex);
    if (strcmp(hex, b->root) != 0)
        return bad(w, b->seq, "block %" PRId64 ": Merkle root differs (stored %s, computed %s)",
                   b->seq, b->root, hex);
    ledger_block_hash(w->tenant, b->seq, b->prev, b->root, b->count, b->time, h);
    ledger_hex(h, hex);
    if (strcmp(hex, b->hash) != 0)
        return bad(w, b->seq, "block %" PRId64 ": block hash differs (stored %s, computed %s)",
                   b->seq, b->hash, hex);
    rc = check_signature(w, b, hex);
    if (rc) return rc;
    w->last_seq = b->seq;
    memcpy(w->last_hash, hex, sizeof hex);
    memcpy(w->res->head_hash, hex, sizeof hex);
    w->res->blocks++;
    w->res->events += b->count;
    return 0;
}

static int check_page(walk_t *w, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        block_row_t b = {
            .seq = strtoll(PQgetvalue(r, i, 0), NULL, 10),
            .count = strtoll(PQgetvalue(r, i, 1), NULL, 10),
            .prev = PQgetvalue(r, i, 2),
            .root = PQgetvalue(r, i, 3),
            .time = PQgetvalue(r, i, 4),
            .hash = PQgetvalue(r, i, 5),
            .sig_hex = PQgetvalue(r, i, 6),
        };
        int rc = check_block(w, &b);
        if (rc) return rc;
    }
    return 0;
}

static int walk_blocks(walk_t *w)
{
    char after[24], limit[24];
    snprintf(limit, sizeof limit, "%d", BLOCK_PAGE);
    for (;;) {
        snprintf(after, sizeof after, "%" PRId64, w->last_seq);
        const char *params[3] = {w->tenant, after, limit};
        PGresult *r = query(w, "SELECT seq, count, prev, root, time, hash, "
                               "coalesce(encode(signature, 'hex'), '') FROM ledger_block "
                               "WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                            3, params, 0, "reading ledger blocks");
        if (!r) return -1;
        int rows = PQntuples(r);
        int rc = check_page(w, r);
        PQclear(r);
        if (rc || rows < BLOCK_PAGE) return rc;
    }
}

/* Events no block covers: before seq 1 or after the last block. */
static int check_strays(walk_t *w)
{
    char last[24];
    snprintf(last, sizeof last, "%" PRId64, w->last_seq);
    const char *params[2] = {w->tenant, last};
    PGresult *r = query(w, "SELECT count(*), min(seq), max(seq) FROM event "
                           "WHERE tenant_id = $1 AND (seq < 1 OR seq > $2)",
                        2, params, 0, "reading events after the last block");
    if (!r) return -1;
    long long n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    long long lo = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    long long hi = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    if (n == 0) return 0;
    return bad(w, lo, "%lld event(s) with seq %lld-%lld are in no block (the last block ends "
               "at %" PRId64 ")", n, lo, hi, w->last_seq);
}

static int check_head(walk_t *w, int64_t head_seq, const char *head_hash)
{
    if (head_seq == w->last_seq && strcmp(head_hash, w->last_hash) == 0) return 0;
    return bad(w, w->last_seq, "tenant head (seq %" PRId64 ", hash %s) is not the last block "
               "(seq %" PRId64 ", hash %s)", head_seq, head_hash, w->last_seq, w->last_hash);
}

static int verify_snapshot(walk_t *w)
{
    const char *params[1] = {w->tenant};
    PGresult *r = query(w, "SELECT head_seq, head_hash, coalesce(encode(sign_public_key, 'hex'), "
                           "'') FROM circa_head($1)", 1, params, 0, "reading the tenant");
    if (!r) return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        snprintf(w->err, w->errlen, "unknown tenant \"%s\"", w->tenant);
        return -1;
    }
    int64_t head_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    w->has_pub = signer_unhex(PQgetvalue(r, 0, 2), w->pub, sizeof w->pub) == 0;
    char head_hash[66];   /* one spare byte: an over-long stored hash must not compare equal */
    snprintf(head_hash, sizeof head_hash, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    int rc = walk_blocks(w);
    if (rc == 0) rc = check_strays(w);
    if (rc == 0) rc = check_head(w, head_seq, head_hash);
    return rc;
}

static int exec_cmd(walk_t *w, const char *sql)
{
    PGresult *r = PQexec(w->db, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : db_fail(w, sql);
}

int ledger_verify_db(PGconn *db, const char *tenant, ledger_verify_result_t *res,
                     char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    res->first_bad_block_seq = -1;
    memcpy(res->head_hash, LEDGER_ZERO_HASH, sizeof res->head_hash);
    walk_t w = {.db = db, .tenant = tenant, .res = res, .err = err, .errlen = errlen};
    memcpy(w.last_hash, LEDGER_ZERO_HASH, sizeof w.last_hash);
    /* One snapshot for the whole walk, so blocks, events and head agree even while circad
     * keeps appending; a caller already inside a transaction keeps its own. */
    int own_tx = PQtransactionStatus(db) == PQTRANS_IDLE;
    if (own_tx && exec_cmd(&w, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0) return -1;
    int rc = verify_snapshot(&w);
    if (own_tx) {
        PGresult *r = PQexec(db, "ROLLBACK");
        PQclear(r);
    }
    free(w.leaves);
    return rc;
}

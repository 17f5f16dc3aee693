// uses: daemon/ledger daemon/signer daemon/buf daemon/strmap
/* test_ledger_verify — ledger_verify_db against PostgreSQL: an intact chain verifies, and each
 * kind of tampering is reported at the right block with a reason naming it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "ledger.h"

/* The chain every test starts from: blocks ending at seq 3, 4 and 8. */
static const int64_t block_end[3] = {3, 4, 8};
static const int64_t block_count[3] = {3, 1, 4};

typedef struct {
    PGconn *db;
    char tenant[64];
    char hash[3][65];
    char root[3][65];
} fixture_t;

static PGresult *sql(PGconn *db, const char *q, int n, const char *const *params,
                     const int *lens, const int *fmts)
{
    PGresult *r = PQexecParams(db, q, n, NULL, params, lens, fmts, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(db));
    return r;
}

static void run(PGconn *db, const char *q, int n, const char *const *params)
{
    PQclear(sql(db, q, n, params, NULL, NULL));
}

static void canon_of(int64_t seq, char *out, size_t len)
{
    snprintf(out, len, "{\"id\":\"e%lld\",\"quantity\":%lld,\"type\":\"transfer\"}",
             (long long)seq, (long long)seq * 10);
}

static void insert_event(fixture_t *f, int64_t seq, int64_t block_seq)
{
    char id[24], s[24], bs[24], canon[128];
    snprintf(id, sizeof id, "e%lld", (long long)seq);
    snprintf(s, sizeof s, "%lld", (long long)seq);
    snprintf(bs, sizeof bs, "%lld", (long long)block_seq);
    canon_of(seq, canon, sizeof canon);
    const char *p[5] = {f->tenant, id, s, bs, canon};
    int lens[5] = {0, 0, 0, 0, (int)strlen(canon)};
    int fmts[5] = {0, 0, 0, 0, 1};
    PQclear(sql(f->db,
                "INSERT INTO event (tenant_id, id, seq, block_seq, type, event_time, time_raw, "
                "recorded_time, canon) VALUES ($1, $2, $3, $4, 'transfer', "
                "'2026-03-04T09:15:00Z', '2026-03-04T10:15:00+01:00', now(), $5)",
                5, p, lens, fmts));
}

/* Hashes a block the way the writer does: leaves over the events' canon in seq order. */
static void block_root(int64_t first, int64_t last, char out[65])
{
    uint8_t leaves[16][32], h[32];
    for (int64_t s = first; s <= last; s++) {
        char canon[128];
        canon_of(s, canon, sizeof canon);
        ledger_leaf_hash(canon, strlen(canon), leaves[s - first]);
    }
    ledger_merkle_root((const uint8_t (*)[32])leaves, (size_t)(last - first + 1), h);
    ledger_hex(h, out);
}

static void insert_block(fixture_t *f, int64_t seq, int64_t count, const char *prev,
                         const char *root, const char *time, char hash[65])
{
    uint8_t h[32];
    ledger_block_hash(f->tenant, seq, prev, root, count, time, h);
    ledger_hex(h, hash);
    char s[24], c[24];
    snprintf(s, sizeof s, "%lld", (long long)seq);
    snprintf(c, sizeof c, "%lld", (long long)count);
    const char *p[7] = {f->tenant, s, c, prev, root, time, hash};
    run(f->db, "INSERT INTO ledger_block (tenant_id, seq, count, prev, root, time, hash) "
               "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, p);
}

static void write_chain(fixture_t *f)
{
    const char *prev = LEDGER_ZERO_HASH;
    for (int b = 0; b < 3; b++) {
        int64_t first = block_end[b] - block_count[b] + 1;
        for (int64_t s = first; s <= block_end[b]; s++) insert_event(f, s, block_end[b]);
        char time[48];
        snprintf(time, sizeof time, "2026-03-04T09:15:0%d.123Z", b);
        block_root(first, block_end[b], f->root[b]);
        insert_block(f, block_end[b], block_count[b], prev, f->root[b], time, f->hash[b]);
        prev = f->hash[b];
    }
    const char *p[2] = {f->tenant, f->hash[2]};
    run(f->db, "UPDATE tenant SET head_seq = 8, head_hash = $2 WHERE id = $1", 2, p);
}

static int setup(void **state)
{
    static int n;
    fixture_t *f = calloc(1, sizeof *f);
    f->db = PQconnectdb(getenv("CIRCA_TEST_DB"));
    if (PQstatus(f->db) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(f->db));
        return -1;
    }
    snprintf(f->tenant, sizeof f->tenant, "t-ledger-%d-%d", (int)getpid(), ++n);
    const char *p[1] = {f->tenant};
    run(f->db, "INSERT INTO tenant (id, name) VALUES ($1, 'ledger verify test')", 1, p);
    write_chain(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    const char *p[1] = {f->tenant};
    run(f->db, "DELETE FROM event WHERE tenant_id = $1", 1, p);
    run(f->db, "DELETE FROM ledger_block WHERE tenant_id = $1", 1, p);
    run(f->db, "DELETE FROM tenant WHERE id = $1", 1, p);
    PQfinish(f->db);
    free(f);
    return 0;
}

/* Runs verify, expecting a broken chain at block with a reason containing want. */
static void expect_bad(fixture_t *f, long long block, const char *want)
{
    ledger_verify_result_t res;
    char err[256] = "";
    int rc = ledger_verify_db(f->db, f->tenant, &res, err, sizeof err);
    if (rc != 1) fail_msg("verify returned %d (err \"%s\"), want 1", rc, err);
    if (!strstr(res.reason, want)) fail_msg("reason \"%s\" lacks \"%s\"", res.reason, want);
    assert_int_equal(res.first_bad_block_seq, block);
}

static void intact_chain_verifies(void **state)
{
    fixture_t *f = *state;
    ledger_verify_result_t res;
    char err[256] = "";
    int rc = ledger_verify_db(f->db, f->tenant, &res, err, sizeof err);
    if (rc != 0) fail_msg("verify returned %d: %s %s", rc, err, res.reason);
    assert_int_equal(res.blocks, 3);
    assert_int_equal(res.events, 8);
    assert_int_equal(res.first_bad_block_seq, -1);
    assert_string_equal(res.head_hash, f->hash[2]);
    /* verify leaves the connection as it found it: outside any transaction */
    assert_int_equal(PQtransactionStatus(f->db), PQTRANS_IDLE);
}

static void tenant_without_blocks_verifies(void **state)
{
    fixture_t *f = *state;
    char empty[80];
    snprintf(empty, sizeof empty, "%s-empty", f->tenant);
    const char *p[1] = {empty};
    run(f->db, "INSERT INTO tenant (id, name) VALUES ($1, 'empty')", 1, p);
    ledger_verify_result_t res;
    char err[256] = "";
    int rc = ledger_verify_db(f->db, empty, &res, err, sizeof err);
    run(f->db, "DELETE FROM tenant WHERE id = $1", 1, p);
    assert_int_equal(rc, 0);
    assert_int_equal(res.blocks, 0);
    assert_int_equal(res.events, 0);
    assert_string_equal(res.head_hash, LEDGER_ZERO_HASH);
}

static void unknown_tenant_is_an_error(void **state)
{
    fixture_t *f = *state;
    ledger_verify_result_t res;
    char err[256] = "";
    assert_int_equal(ledger_verify_db(f->db, "t-ledger-no-such-tenant", &res, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "unknown tenant"));
}

static void changed_canon_breaks_its_blocks_root(void **state)
{
    fixture_t *f = *state;
    const char *p[1] = {f->tenant};
    run(f->db, "UPDATE event SET canon = '\\x7b7d' WHERE tenant_id = $1 AND seq = 6", 1, p);
    char want[160];
    snprintf(want, sizeof want, "block 8: Merkle root differs (stored %s, computed ", f->root[2]);
    expect_bad(f, 8, want);
}

static void deleted_events_are_named(void **state)
{
    fixture_t *f = *state;
    const char *p[1] = {f->tenant};
    run(f->db, "DELETE FROM event WHERE tenant_id = $1 AND seq IN (6, 7)", 1, p);
    expect_bad(f, 8, "block 8: events 6-7 missing");
    run(f->db, "DELETE FROM event WHERE tenant_id = $1 AND seq = 8", 1, p);
    expect_bad(f, 8, "block 8: events 6-8 missing");
    run(f->db, "DELETE FROM event WHERE tenant_id = $1 AND seq = 2", 1, p);
    expect_bad(f, 3, "block 3: event 2 missing");
}

static void changed_block_root_is_reported(void **state)
{
    fixture_t *f = *state;
    const char *p[2] = {f->tenant, f->root[0]};
    run(f->db, "UPDATE ledger_block SET root = $2 WHERE tenant_id = $1 AND seq = 4", 2, p);
    char want[200];
    snprintf(want, sizeof want, "block 4: Merkle root differs (stored %s, computed %s)",
             f->root[0], f->root[1]);
    expect_bad(f, 4, want);
}

/* Block 8 is re-hashed over a forged prev, so only the link to block 4 is wrong. */
static void broken_prev_link_is_reported(void **state)
{
    fixture_t *f = *state;
    const char *p[1] = {f->tenant};
    run(f->db, "DELETE FROM ledger_block WHERE tenant_id = $1 AND seq = 8", 1, p);
    char hash[65];
    insert_block(f, 8, 4, f->hash[0], f->root[2], "2026-03-04T09:15:02.123Z", hash);
    const char *h[2] = {f->tenant, hash};
    run(f->db, "UPDATE tenant SET head_hash = $2 WHERE id = $1", 2, h);
    char want[200];
    snprintf(want, sizeof want, "block 8: prev link broken (stored %s, previous block hash %s)",
             f->hash[0], f->hash[1]);
    expect_bad(f, 8, want);
}

static void changed_block_field_breaks_its_hash(void **state)
{
    fixture_t *f = *state;
    const char *p[1] = {f->tenant};
    run(f->db, "UPDATE ledger_block SET time = '2026-03-04T09:16:00.123Z' "
               "WHERE tenant_id = $1 AND seq = 3", 1, p);
    char want[160];
    snprintf(want, sizeof want, "block 3: block hash differs (stored %s, computed ", f->hash[0]);
    expect_bad(f, 3, want);
}

static void wrong_block_seq_is_reported(void **state)
{
    fixture_t *f = *state;
    const char *p[1] = {f->tenant};
    run(f->db, "UPDATE event SET block_seq = 4 WHERE tenant_id = $1 AND seq = 5", 1, p);
    expect_bad(f, 8, "block 8: event 5 has block_seq 4");
}

static void event_beyond_the_last_block_is_reported(void **state)
{
    fixture_t *f = *state;
    insert_event(f, 9, 9);
    insert_event(f, 10, 10);
    expect_bad(f, 9, "2 event(s) with seq 9-10 are in no block (the last block ends at 8)");
}

static void moved_head_is_reported(void **state)
{
    fixture_t *f = *state;
    const char *p[2] = {f->tenant, f->hash[1]};
    run(f->db, "UPDATE tenant SET head_seq = 4, head_hash = $2 WHERE id = $1", 2, p);
    char want[240];
    snprintf(want, sizeof want, "tenant head (seq 4, hash %s) is not the last block (seq 8, "
             "hash %s)", f->hash[1], f->hash[2]);
    expect_bad(f, 8, want);
}

/* A chain longer than one page of blocks (1000): verify must carry the link across pages. */
static void long_chain_spans_pages(void **state)
{
    fixture_t *f = *state;
    run(f->db, "BEGIN", 0, NULL);
    char prev[65], hash[65], root[65];
    memcpy(prev, f->hash[2], sizeof prev);
    for (int64_t s = 9; s <= 2108; s++) {
        insert_event(f, s, s);
        block_root(s, s, root);
        insert_block(f, s, 1, prev, root, "2026-03-04T09:20:00.000Z", hash);
        memcpy(prev, hash, sizeof prev);
    }
    const char *p[2] = {f->tenant, prev};
    run(f->db, "UPDATE tenant SET head_seq = 2108, head_hash = $2 WHERE id = $1", 2, p);
    run(f->db, "COMMIT", 0, NULL);
    ledger_verify_result_t res;
    char err[256] = "";
    int rc = ledger_verify_db(f->db, f->tenant, &res, err, sizeof err);
    if (rc != 0) fail_msg("verify returned %d: %s %s", rc, err, res.reason);
    assert_int_equal(res.blocks, 3 + 2100);
    assert_int_equal(res.events, 2108);
    assert_string_equal(res.head_hash, prev);
    const char *q[1] = {f->tenant};
    run(f->db, "UPDATE ledger_block SET root = repeat('1', 64) WHERE tenant_id = $1 AND seq = 1500",
        1, q);
    expect_bad(f, 1500, "block 1500: Merkle root differs (stored 1111");
}

int main(void)
{
    if (!getenv("CIRCA_TEST_DB")) {
        fprintf(stderr, "test_ledger_verify: CIRCA_TEST_DB is not set (a PostgreSQL URL with "
                        "schema/*.sql applied; see scripts/pg.sh)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(intact_chain_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(tenant_without_blocks_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_tenant_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(changed_canon_breaks_its_blocks_root, setup, teardown),
        cmocka_unit_test_setup_teardown(deleted_events_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(changed_block_root_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(broken_prev_link_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(changed_block_field_breaks_its_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_block_seq_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(event_beyond_the_last_block_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(moved_head_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(long_chain_spans_pages, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

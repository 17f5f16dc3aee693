// uses: tests/store_fixture daemon/store daemon/pgcopy daemon/pgarr daemon/buf daemon/log
/* test_store_copy — transactions with a binary COPY step (store_tx_copy) against a real
 * PostgreSQL: exact rows, rollback with the failing SQLSTATE, mixing with pipelined work on a
 * busy pool, and an outage in the middle of the data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "pgcopy.h"
#include "store.h"
#include "store_fixture.h"

static char table[64];
static char sql_ins[256], sql_count[256], sql_copy[256];
static const store_stmt_t stmts[] = {
    {"ins", sql_ins},
    {"count", sql_count},
    {NULL, NULL},
};

/* 2024-01-01T00:00:00Z in Unix microseconds. */
#define BASE_US 1704067200000000LL


static int ready_count(const store_t *s)
{
    store_stats_t st;
    store_stats(s, &st);
    return st.ready;
}

static void add_ins(store_tx_t *tx, long id, const char *name)
{
    char idtxt[24];
    snprintf(idtxt, sizeof idtxt, "%ld", id);
    const char *vals[2] = {idtxt, name};
    store_tx_exec(tx, "ins", 2, vals, NULL, NULL);
}

static void add_count(store_tx_t *tx, long lo, long hi)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%ld", lo);
    snprintf(b, sizeof b, "%ld", hi);
    const char *vals[2] = {a, b};
    store_tx_exec(tx, "count", 2, vals, NULL, NULL);
}

/* Row id's fields, every writer used; expect_sql below says the same in SQL. blob_extra pads
 * the bytea to make the data large. */
static void put_row(buf_t *b, long id, size_t blob_extra)
{
    char name[32];
    snprintf(name, sizeof name, "row-%ld-ü", id);
    pgcopy_row(b, 6);
    pgcopy_int8(b, id);
    pgcopy_text(b, id % 5 == 0 ? NULL : name);
    pgcopy_float8(b, (double)id * 0.25);
    pgcopy_timestamptz(b, BASE_US + id * 1000001LL);
    char blob[4] = {(char)(id & 255), 0, (char)255, '\\'};
    if (!blob_extra) {
        pgcopy_bytes(b, blob, sizeof blob);
    } else {
        char *big = calloc(1, sizeof blob + blob_extra);
        memcpy(big, blob, sizeof blob);
        pgcopy_bytes(b, big, sizeof blob + blob_extra);
        free(big);
    }
    char num[24];
    snprintf(num, sizeof num, "a,%ld", id);
    const char *with_null[2] = {"x", NULL};
    if (id % 7 == 0) pgcopy_null(b);
    else if (id % 11 == 0) pgcopy_text_array(b, with_null, 2);
    else if (id % 3 == 0) pgcopy_text_split(b, "", ',');
    else pgcopy_text_split(b, num, ',');
}

static const char *expect_sql =
    "SELECT count(*) FROM %s WHERE id BETWEEN %ld AND %ld"
    " AND name IS NOT DISTINCT FROM CASE WHEN id %% 5 = 0 THEN NULL ELSE 'row-' || id || '-ü' END"
    " AND qty = id * 0.25::float8"
    " AND at = timestamptz '2024-01-01 00:00:00+00' + (id * 1000001) * interval '1 microsecond'"
    " AND blob = set_byte('\\x0000ff5c'::bytea, 0, (id %% 256)::int)"
    " AND tags IS NOT DISTINCT FROM CASE WHEN id %% 7 = 0 THEN NULL"
    "   WHEN id %% 11 = 0 THEN ARRAY['x', NULL] WHEN id %% 3 = 0 THEN '{}'::text[]"
    "   ELSE ARRAY['a', id::text] END";

/* Rows first..first+n-1 (then dup, when >= 0, again) as one COPY's data. */
static char *copy_data(long first, long n, long dup, size_t blob_extra, size_t *len)
{
    buf_t b = BUF_INIT;
    pgcopy_start(&b);
    for (long id = first; id < first + n; id++) put_row(&b, id, blob_extra);
    if (dup >= 0) put_row(&b, dup, blob_extra);
    pgcopy_finish(&b);
    *len = b.len;
    return buf_steal(&b);
}

static void add_copy(store_tx_t *tx, long first, long n, long dup, size_t blob_extra)
{
    size_t len;
    char *data = copy_data(first, n, dup, blob_extra, &len);
    store_tx_copy(tx, sql_copy, data, len);
}

/* A blocking query on a connection of its own, for checks outside the store. */
static long query_long(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(db));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static long db_long(const char *fmt, long lo, long hi)
{
    char sql[1024];
    snprintf(sql, sizeof sql, fmt, table, lo, hi);
    PGconn *db = PQconnectdb(getenv("CIRCA_TEST_DB"));
    long v = query_long(db, sql);
    PQfinish(db);
    return v;
}

static long rows_in(long lo, long hi)
{
    return db_long("SELECT count(*) FROM %s WHERE id BETWEEN %ld AND %ld", lo, hi);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void statement_copy_statement_commits_exact_rows(void **state)
{
    sfx_t *f = sfx_open(2, 8, NULL, stmts);
    WAIT_UNTIL(f, store_ready(f->s), 15000);
    sfx_outcome_t o = {0};
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, &o);
    add_ins(tx, 999, "before");
    add_copy(tx, 1000, 10000, -1, 0);
    add_count(tx, 999, 10999); /* sees the COPY's rows: same transaction */
    store_tx_submit(tx);
    WAIT_UNTIL(f, o.done, 30000);
    assert_int_equal(o.st, STORE_OK);
    assert_string_equal(o.sqlstate, "");
    assert_int_equal(o.count, 3);
    assert_int_equal(o.res_status[0], PGRES_COMMAND_OK);
    assert_int_equal(o.res_status[1], PGRES_COMMAND_OK);
    assert_int_equal(o.res_status[2], PGRES_TUPLES_OK);
    assert_string_equal(o.value, "10001");
    /* Every field of every row is what was written. */
    assert_int_equal(db_long(expect_sql, 1000, 10999), 10000);
    assert_int_equal(rows_in(999, 999), 1);
    sfx_close(f);
}

static void bad_row_rolls_back_the_whole_transaction(void **state)
{
    sfx_t *f = sfx_open(1, 8, NULL, stmts);
    WAIT_UNTIL(f, store_ready(f->s), 15000);
    sfx_outcome_t o = {0};
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, &o);
    add_ins(tx, 20000, "before");
    add_copy(tx, 20001, 500, 20250, 0); /* row 20250 twice: unique violation inside COPY */
    add_ins(tx, 21000, "after");
    store_tx_submit(tx);
    WAIT_UNTIL(f, o.done, 30000);
    assert_int_equal(o.st, STORE_SQL_ERROR);
    assert_string_equal(o.sqlstate, "23505");
    assert_non_null(strstr(o.error, "duplicate key"));
    assert_int_equal(o.res_status[0], PGRES_COMMAND_OK);
    assert_int_equal(o.res_status[1], PGRES_FATAL_ERROR);
    assert_int_equal(o.res_status[2], -1); /* never ran */
    assert_int_equal(rows_in(20000, 21000), 0);

    /* A bad COPY statement fails at its own step, with its own SQLSTATE. */
    sfx_outcome_t bad = {0};
    tx = store_tx_new(f->s, sfx_on_tx, &bad);
    add_ins(tx, 22000, "before");
    size_t len;
    char *data = copy_data(22001, 3, -1, 0, &len);
    store_tx_copy(tx, "COPY no_such_table_here FROM STDIN (FORMAT binary)", data, len);
    store_tx_submit(tx);
    WAIT_UNTIL(f, bad.done, 10000);
    assert_int_equal(bad.st, STORE_SQL_ERROR);
    assert_string_equal(bad.sqlstate, "42P01");
    assert_int_equal(bad.res_status[1], PGRES_FATAL_ERROR);
    assert_int_equal(rows_in(22000, 22010), 0);

    /* The one connection is back in pipeline mode: several transactions at once work. */
    sfx_outcome_t after[8] = {{0}};
    for (int i = 0; i < 8; i++) {
        tx = store_tx_new(f->s, sfx_on_tx, &after[i]);
        add_ins(tx, 23000 + i, "pipelined");
        store_tx_submit(tx);
    }
    for (int i = 0; i < 8; i++) {
        WAIT_UNTIL(f, after[i].done, 10000);
        assert_int_equal(after[i].st, STORE_OK);
    }
    assert_int_equal(rows_in(23000, 23007), 8);
    sfx_close(f);
}

/* Keeps every pipeline full: each pipelined transaction that ends submits the next. */
typedef struct {
    sfx_t *f;
    int started, done, failed, stop;
    long next_id;
    sfx_outcome_t *copy;
    int done_before_copy, started_after_copy_submit;
} pump_t;

static void pump_submit(pump_t *p);

static void pump_cb(store_tx_t *tx, store_status_t st, void *arg)
{
    pump_t *p = arg;
    p->done++;
    if (st != STORE_OK) p->failed++;
    if (!p->copy->done) p->done_before_copy++;
    if (!p->stop) pump_submit(p);
}

static void pump_submit(pump_t *p)
{
    store_tx_t *tx = store_tx_new(p->f->s, pump_cb, p);
    add_ins(tx, p->next_id++, "pumped");
    p->started++;
    store_tx_submit(tx);
}

static void copy_among_pipelined_work_on_two_connections(void **state)
{
    sfx_t *f = sfx_open(2, 8, NULL, stmts);
    WAIT_UNTIL(f, store_ready(f->s), 15000);
    WAIT_UNTIL(f, ready_count(f->s) == 2, 10000);
    sfx_outcome_t copy = {0};
    pump_t p = {.f = f, .next_id = 40000, .copy = &copy};
    for (int i = 0; i < 25; i++) pump_submit(&p); /* more than both pipelines hold */
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, &copy);
    add_copy(tx, 30000, 5000, -1, 0);
    add_count(tx, 30000, 34999);
    store_tx_submit(tx);
    for (int i = 0; i < 25; i++) pump_submit(&p);
    /* The pipelines never empty on their own: the copy must still get a connection. */
    WAIT_UNTIL(f, copy.done, 30000);
    assert_int_equal(copy.st, STORE_OK);
    assert_string_equal(copy.value, "5000");
    /* Other work kept flowing while the COPY waited and ran. */
    assert_true(p.done_before_copy > 0);
    p.stop = 1;
    WAIT_UNTIL(f, p.done == p.started, 30000);
    assert_true(p.done >= 50);
    assert_int_equal(p.failed, 0);
    assert_int_equal(rows_in(40000, 40000 + p.started - 1), p.started);
    assert_int_equal(db_long(expect_sql, 30000, 34999), 5000);
    store_stats_t st;
    store_stats(f->s, &st);
    assert_int_equal(st.ready, 2);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.queued, 0);
    sfx_close(f);
}

static void spawn_exit(uv_process_t *pr, int64_t status, int sig)
{
    sfx_t *f = pr->data;
    f->spawn_status = sig ? -sig : status;
    f->spawn_done = 1;
    uv_close((uv_handle_t *)pr, NULL);
}

/* scripts/pg.sh start|stop on the test's cluster, while the loop keeps running. */
static void pg_ctl(sfx_t *f, const char *what)
{
    char *args[] = {"scripts/pg.sh", (char *)what, NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opt = {.file = args[0], .args = args, .exit_cb = spawn_exit,
                                .stdio_count = 3, .stdio = io};
    f->spawn_done = 0;
    f->proc.data = f;
    int rc = uv_spawn(&f->loop, &f->proc, &opt);
    if (rc != 0) fail_msg("spawn scripts/pg.sh %s: %s", what, uv_strerror(rc));
    WAIT_UNTIL(f, f->spawn_done, 90000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->spawn_status, 0);
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop for ms milliseconds. */
static void run_for(sfx_t *f, unsigned ms)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, tick_cb, ms, 0);
    while (uv_is_active((uv_handle_t *)&t)) uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void outage_during_copy_data(void **state)
{
    sfx_t *f = sfx_open(1, 8, NULL, stmts);
    WAIT_UNTIL(f, store_ready(f->s), 15000);
    /* Another session inserts the COPY's first id and keeps its transaction open: the COPY's
     * backend waits on that row's lock at its first row, stops reading, and our 40 MB of data
     * stay half sent. */
    PGconn *blocker = PQconnectdb(getenv("CIRCA_TEST_DB"));
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; INSERT INTO %s (id) VALUES (50000)", table);
    PGresult *r = PQexec(blocker, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    sfx_outcome_t o = {0};
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, &o);
    add_copy(tx, 50000, 10000, -1, 4000);
    store_tx_submit(tx);
    /* Watched from a third session: the blocker's transaction would see one snapshot of
     * pg_stat_activity. */
    PGconn *watcher = PQconnectdb(getenv("CIRCA_TEST_DB"));
    long waiting = 0;
    for (int i = 0; i < 100 && !waiting; i++) {
        run_for(f, 50);
        waiting = query_long(watcher, "SELECT count(*) FROM pg_stat_activity WHERE "
                                      "application_name = 'circad' AND wait_event_type = "
                                      "'Lock' AND query LIKE 'COPY%'");
    }
    if (waiting != 1) {
        PGresult *a = PQexec(watcher, "SELECT concat_ws(' ', application_name, state, "
                                      "wait_event_type, wait_event, left(query, 30)) "
                                      "FROM pg_stat_activity WHERE datname = current_database()");
        for (int i = 0; i < PQntuples(a); i++) fprintf(stderr, "activity: %s\n", PQgetvalue(a, i, 0));
        PQclear(a);
        fprintf(stderr, "copy done=%d st=%d error=%s\n", o.done, o.st, o.error);
    }
    PQfinish(watcher);
    assert_int_equal(waiting, 1);
    assert_int_equal(o.done, 0);

    pg_ctl(f, "stop");
    WAIT_UNTIL(f, o.done, 10000);
    assert_int_equal(o.st, STORE_LOST);
    PQfinish(blocker);
    pg_ctl(f, "start");
    WAIT_UNTIL(f, store_ready(f->s), 20000);
    store_stats_t st;
    store_stats(f->s, &st);
    assert_true(st.reconnects >= 1);

    /* The same COPY again, now nothing holds its rows. */
    sfx_outcome_t again = {0};
    tx = store_tx_new(f->s, sfx_on_tx, &again);
    add_copy(tx, 50000, 1000, -1, 0);
    store_tx_submit(tx);
    WAIT_UNTIL(f, again.done, 20000);
    assert_int_equal(again.st, STORE_OK);
    assert_int_equal(db_long(expect_sql, 50000, 50999), 1000);
    sfx_close(f);
}

/* ---- setup -------------------------------------------------------------------------------- */

static int exec_blocking(const char *sql)
{
    PGconn *c = PQconnectdb(getenv("CIRCA_TEST_DB"));
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "test_store_copy: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int setup(void **state)
{
    const char *url = getenv("CIRCA_TEST_DB");
    if (!url || !*url) {
        fprintf(stderr, "test_store_copy: CIRCA_TEST_DB is not set (run through scripts/test.sh)\n");
        return -1;
    }
    snprintf(table, sizeof table, "store_copy_test_%d", (int)getpid());
    snprintf(sql_ins, sizeof sql_ins, "INSERT INTO %s (id, name) VALUES ($1::int8, $2)", table);
    snprintf(sql_count, sizeof sql_count,
             "SELECT count(*) FROM %s WHERE id BETWEEN $1::int8 AND $2::int8", table);
    snprintf(sql_copy, sizeof sql_copy,
             "COPY %s (id, name, qty, at, blob, tags) FROM STDIN (FORMAT binary)", table);
    char ddl[256];
    snprintf(ddl, sizeof ddl, "CREATE TABLE IF NOT EXISTS %s (id int8 PRIMARY KEY, name text, "
             "qty float8, at timestamptz, blob bytea, tags text[])", table);
    return exec_blocking(ddl);
}

static int teardown(void **state)
{
    char ddl[128];
    if (!getenv("CIRCA_TEST_DB")) return 0;
    snprintf(ddl, sizeof ddl, "DROP TABLE IF EXISTS %s", table);
    if (exec_blocking(ddl) != 0 && system("scripts/pg.sh start") == 0) exec_blocking(ddl);
    return 0;
}

int main(void)
{
    if (getenv("TEST_LOG")) log_init(getenv("TEST_LOG"), "text"); /* e.g. debug: state changes */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(statement_copy_statement_commits_exact_rows),
        cmocka_unit_test(bad_row_rolls_back_the_whole_transaction),
        cmocka_unit_test(copy_among_pipelined_work_on_two_connections),
        cmocka_unit_test(outage_during_copy_data),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

// uses: tests/store_fixture daemon/store daemon/pgarr daemon/buf daemon/log
/* test_store — the async pool against a real PostgreSQL on a real loop, including an outage. */
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

#include "pgarr.h"
#include "store.h"
#include "store_fixture.h"

static char table[64];
static char sql_ins[256], sql_count[256], sql_name[256], sql_arr[512], sql_one[256];
static const store_stmt_t stmts[] = {
    {"ins", sql_ins},
    {"count", sql_count},
    {"name", sql_name},
    {"ins_arr", sql_arr},
    {"one", sql_one},
    {"sleep", "SELECT pg_sleep($1::float8)"},
    {"session", "SELECT current_setting('application_name') || '|' || "
                "(SELECT count(*) FROM pg_prepared_statements)"},
    {NULL, NULL},
};


static void wait_ready(sfx_t *f)
{
    WAIT_UNTIL(f, store_ready(f->s), 15000);
}

/* A one-statement transaction with text parameters. */
static void submit1(sfx_t *f, sfx_outcome_t *o, const char *stmt, int n, const char *a,
                    const char *b)
{
    const char *vals[2] = {a, b};
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, o);
    store_tx_exec(tx, stmt, n, vals, NULL, NULL);
    store_tx_submit(tx);
}

static long count_rows(sfx_t *f, const char *lo, const char *hi)
{
    sfx_outcome_t o = {0};
    submit1(f, &o, "count", 2, lo, hi);
    WAIT_UNTIL(f, o.done, 10000);
    assert_int_equal(o.st, STORE_OK);
    return strtol(o.value, NULL, 10);
}

static int all_done(const sfx_outcome_t *o, int n)
{
    for (int i = 0; i < n; i++)
        if (!o[i].done) return 0;
    return 1;
}

static int ready_count(const store_t *s)
{
    store_stats_t st;
    store_stats(s, &st);
    return st.ready;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void several_statements_commit_together(void **state)
{
    sfx_t *f = sfx_open(2, 8, NULL, stmts);
    /* Submitted before any connection is up: it waits for the first attempts, not fails. */
    sfx_outcome_t o = {0};
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, &o);
    const char *a[2] = {"1", "alpha"}, *b[2] = {"2", "béta"}, *c[2] = {"3", NULL},
               *range[2] = {"1", "3"};
    store_tx_exec(tx, "ins", 2, a, NULL, NULL);
    store_tx_exec(tx, "ins", 2, b, NULL, NULL);
    store_tx_exec(tx, "ins", 2, c, NULL, NULL);
    store_tx_exec(tx, "count", 2, range, NULL, NULL); /* sees its own inserts */
    assert_int_equal(store_ready(f->s), 0);
    store_tx_submit(tx);
    assert_int_equal(o.done, 0);
    WAIT_UNTIL(f, o.done, 15000);
    assert_int_equal(o.done, 1);
    assert_int_equal(o.st, STORE_OK);
    assert_string_equal(o.sqlstate, "");
    assert_int_equal(o.count, 4);
    for (int i = 0; i < 3; i++) assert_int_equal(o.res_status[i], PGRES_COMMAND_OK);
    assert_int_equal(o.res_status[3], PGRES_TUPLES_OK);
    assert_string_equal(o.value, "3");
    /* Committed: a later transaction, maybe on the other connection, sees the rows. */
    assert_int_equal(count_rows(f, "1", "3"), 3);
    sfx_outcome_t n = {0};
    submit1(f, &n, "name", 1, "2", NULL);
    WAIT_UNTIL(f, n.done, 10000);
    assert_string_equal(n.value, "béta");
    /* Every statement of the table was prepared on connect, under our application name. */
    sfx_outcome_t sess = {0};
    submit1(f, &sess, "session", 0, NULL, NULL);
    WAIT_UNTIL(f, sess.done, 10000);
    assert_string_equal(sess.value, "circad|7");
    store_stats_t st;
    store_stats(f->s, &st);
    assert_int_equal(st.connections, 2);
    assert_true(st.committed >= 3);
    assert_int_equal(st.in_flight, 0);
    sfx_close(f);
}

static void failure_rolls_back_its_transaction_only(void **state)
{
    sfx_t *f = sfx_open(1, 8, NULL, stmts);
    wait_ready(f);
    sfx_outcome_t o1 = {0}, o2 = {0};
    const char *r100[2] = {"100", "x"}, *dup[2] = {"1", "duplicate"}, *r101[2] = {"101", "y"},
               *r102[2] = {"102", "z"};
    store_tx_t *t1 = store_tx_new(f->s, sfx_on_tx, &o1);
    store_tx_exec(t1, "ins", 2, r100, NULL, NULL);
    store_tx_exec(t1, "ins", 2, dup, NULL, NULL); /* id 1 exists: unique violation */
    store_tx_exec(t1, "ins", 2, r101, NULL, NULL);
    store_tx_submit(t1);
    store_tx_t *t2 = store_tx_new(f->s, sfx_on_tx, &o2);
    store_tx_exec(t2, "ins", 2, r102, NULL, NULL);
    store_tx_submit(t2);
    /* One connection: both are in its pipeline at once. */
    store_stats_t st;
    store_stats(f->s, &st);
    assert_int_equal(st.in_flight, 2);
    assert_int_equal(st.busy, 1);
    WAIT_UNTIL(f, o1.done && o2.done, 10000);
    assert_int_equal(o1.st, STORE_SQL_ERROR);
    assert_string_equal(o1.sqlstate, "23505");
    assert_non_null(strstr(o1.error, "duplicate key"));
    assert_int_equal(o1.res_status[0], PGRES_COMMAND_OK);
    assert_int_equal(o1.res_status[1], PGRES_FATAL_ERROR);
    assert_int_equal(o1.res_status[2], -1); /* not executed */
    assert_int_equal(o2.st, STORE_OK);
    assert_int_equal(count_rows(f, "100", "101"), 0); /* 100 was rolled back too */
    assert_int_equal(count_rows(f, "102", "102"), 1);
    sfx_close(f);
}

static void hundred_transactions_over_two_connections(void **state)
{
    enum { N = 100 };
    sfx_t *f = sfx_open(2, 4, NULL, stmts);
    wait_ready(f);
    sfx_outcome_t *o = calloc(N, sizeof *o);
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", 1000 + i);
        submit1(f, &o[i], "ins", 2, id, "bulk");
    }
    store_stats_t st;
    store_stats(f->s, &st);
    assert_true(st.queued > 0); /* more than the pipelines hold */
    assert_true(st.in_flight <= 8);
    WAIT_UNTIL(f, all_done(o, N), 20000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].done, 1);
        assert_int_equal(o[i].st, STORE_OK);
    }
    assert_int_equal(count_rows(f, "1000", "1099"), N);
    store_stats(f->s, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.in_flight, 0);
    free(o);
    sfx_close(f);
}

static void array_parameters_through_unnest(void **state)
{
    enum { N = 20000 }; /* about 1 MB: more than a socket buffer, so PQflush must resume on writable */
    sfx_t *f = sfx_open(2, 8, NULL, stmts);
    wait_ready(f);
    pgarr_t a[5];
    char name[32];
    static const unsigned char blob[] = {0, 1, 0, 255};
    pgarr_init(&a[0], PGARR_INT8);
    pgarr_init(&a[1], PGARR_TEXT);
    pgarr_init(&a[2], PGARR_FLOAT8);
    pgarr_init(&a[3], PGARR_TIMESTAMPTZ);
    pgarr_init(&a[4], PGARR_BYTEA);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "arr-%d", i);
        pgarr_int8(&a[0], 5000 + i);
        pgarr_text(&a[1], i == 7 ? NULL : name);
        pgarr_float8(&a[2], i * 0.25);
        pgarr_timestamptz(&a[3], 946684800000000LL + (int64_t)i * 1000000);
        pgarr_bytes(&a[4], blob, sizeof blob);
    }
    const char *vals[5];
    int lens[5], fmts[5] = {1, 1, 1, 1, 1};
    for (int i = 0; i < 5; i++) vals[i] = pgarr_finish(&a[i], &lens[i]);
    sfx_outcome_t o = {0};
    store_tx_t *tx = store_tx_new(f->s, sfx_on_tx, &o);
    store_tx_exec(tx, "ins_arr", 5, vals, lens, fmts);
    for (int i = 0; i < 5; i++) pgarr_free(&a[i]); /* the store copied the parameters */
    store_tx_submit(tx);
    WAIT_UNTIL(f, o.done, 10000);
    assert_int_equal(o.st, STORE_OK);
    char lo[16], hi[16];
    snprintf(lo, sizeof lo, "%d", 5000);
    snprintf(hi, sizeof hi, "%d", 5000 + N - 1);
    assert_int_equal(count_rows(f, lo, hi), N);
    sfx_outcome_t r = {0};
    submit1(f, &r, "one", 1, "5123", NULL);
    WAIT_UNTIL(f, r.done, 10000);
    assert_int_equal(r.st, STORE_OK);
    assert_string_equal(r.value, "arr-123|30.75|2000-01-01 00:02:03+00|\\x000100ff");
    sfx_outcome_t nul = {0};
    submit1(f, &nul, "name", 1, "5007", NULL);
    WAIT_UNTIL(f, nul.done, 10000);
    assert_string_equal(nul.value, ""); /* NULL reads back as empty in text */
    sfx_close(f);
}

static void close_finishes_in_flight_and_fails_queued(void **state)
{
    sfx_t *f = sfx_open(1, 2, NULL, stmts);
    wait_ready(f);
    sfx_outcome_t o[5] = {{0}};
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "%d", 200 + i);
        submit1(f, &o[i], "ins", 2, id, "close");
    }
    store_close(f->s, sfx_closed_cb, f);
    for (int i = 0; i < 5; i++) assert_int_equal(o[i].done, 0); /* never synchronously */
    WAIT_UNTIL(f, f->closed, 10000);
    for (int i = 0; i < 5; i++) assert_int_equal(o[i].done, 1);
    assert_int_equal(o[0].st, STORE_OK);
    assert_int_equal(o[1].st, STORE_OK);
    for (int i = 2; i < 5; i++) assert_int_equal(o[i].st, STORE_UNAVAILABLE);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

static void unreachable_database_fails_fast_not_synchronously(void **state)
{
    sfx_t *f = sfx_open(2, 8, "postgresql:///circa?host=/nonexistent-circa&port=1", stmts);
    sfx_outcome_t o = {0};
    submit1(f, &o, "one", 1, "1", NULL);
    assert_int_equal(o.done, 0);
    WAIT_UNTIL(f, o.done, 5000);
    assert_int_equal(o.st, STORE_UNAVAILABLE);
    assert_int_equal(store_ready(f->s), 0);
    sfx_outcome_t o2 = {0};
    submit1(f, &o2, "one", 1, "1", NULL);
    assert_int_equal(o2.done, 0);
    WAIT_UNTIL(f, o2.done, 5000);
    assert_int_equal(o2.st, STORE_UNAVAILABLE);
    sfx_close(f);
}

static void bad_conninfo_is_a_config_error(void **state)
{
    uv_loop_t loop;
    store_t *s = NULL;
    char err[256] = "";
    uv_loop_init(&loop);
    store_config_t cfg = {.conninfo = "nosuchkey=1", .stmts = stmts};
    assert_int_equal(store_open(&loop, &cfg, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "conninfo"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void spawn_exit(uv_process_t *p, int64_t status, int sig)
{
    sfx_t *f = p->data;
    f->spawn_status = sig ? -sig : status;
    f->spawn_done = 1;
    uv_close((uv_handle_t *)p, NULL);
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
    uv_run(&f->loop, UV_RUN_NOWAIT); /* let the process handle's close complete */
    assert_int_equal(f->spawn_status, 0);
}

static void outage_and_reconnect(void **state)
{
    sfx_t *f = sfx_open(2, 8, NULL, stmts);
    wait_ready(f);
    WAIT_UNTIL(f, ready_count(f->s) == 2, 10000);
    sfx_outcome_t slow = {0};
    submit1(f, &slow, "sleep", 1, "60", NULL);
    store_stats_t st;
    store_stats(f->s, &st);
    assert_int_equal(st.in_flight, 1);

    pg_ctl(f, "stop");
    WAIT_UNTIL(f, slow.done, 10000);
    assert_int_equal(slow.st, STORE_LOST);
    WAIT_UNTIL(f, !store_ready(f->s), 10000);

    sfx_outcome_t down = {0};
    submit1(f, &down, "one", 1, "1", NULL);
    assert_int_equal(down.done, 0);
    WAIT_UNTIL(f, down.done, 5000);
    assert_int_equal(down.st, STORE_UNAVAILABLE);
    assert_int_equal(store_ready(f->s), 0);

    pg_ctl(f, "start");
    WAIT_UNTIL(f, store_ready(f->s), 20000);
    sfx_outcome_t up = {0};
    submit1(f, &up, "ins", 2, "300", "after the outage");
    WAIT_UNTIL(f, up.done, 10000);
    assert_int_equal(up.st, STORE_OK);
    assert_int_equal(count_rows(f, "300", "300"), 1);
    store_stats(f->s, &st);
    assert_true(st.reconnects >= 2);
    assert_true(st.failed >= 2);
    sfx_close(f);
}

/* ---- setup -------------------------------------------------------------------------------- */

static int exec_blocking(const char *sql)
{
    PGconn *c = PQconnectdb(getenv("CIRCA_TEST_DB"));
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "test_store: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int setup(void **state)
{
    const char *url = getenv("CIRCA_TEST_DB");
    if (!url || !*url) {
        fprintf(stderr, "test_store: CIRCA_TEST_DB is not set (run through scripts/test.sh)\n");
        return -1;
    }
    snprintf(table, sizeof table, "store_test_%d", (int)getpid());
    snprintf(sql_ins, sizeof sql_ins, "INSERT INTO %s (id, name) VALUES ($1::int8, $2)", table);
    snprintf(sql_count, sizeof sql_count,
             "SELECT count(*) FROM %s WHERE id BETWEEN $1::int8 AND $2::int8", table);
    snprintf(sql_name, sizeof sql_name, "SELECT coalesce(name, '') FROM %s WHERE id = $1::int8",
             table);
    snprintf(sql_arr, sizeof sql_arr,
             "INSERT INTO %s (id, name, qty, at, blob) SELECT * FROM unnest($1::int8[], "
             "$2::text[], $3::float8[], $4::timestamptz[], $5::bytea[])", table);
    snprintf(sql_one, sizeof sql_one,
             "SELECT concat_ws('|', name, qty, to_char(at AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD HH24:MI:SS') || '+00', blob) FROM %s WHERE id = $1::int8", table);
    char ddl[256];
    snprintf(ddl, sizeof ddl, "CREATE TABLE IF NOT EXISTS %s (id int8 PRIMARY KEY, name text, "
             "qty float8, at timestamptz, blob bytea)", table);
    return exec_blocking(ddl);
}

static int teardown(void **state)
{
    char ddl[128];
    if (!getenv("CIRCA_TEST_DB")) return 0; /* setup already said why */
    snprintf(ddl, sizeof ddl, "DROP TABLE IF EXISTS %s", table);
    if (exec_blocking(ddl) != 0 && system("scripts/pg.sh start") == 0) exec_blocking(ddl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(several_statements_commit_together),
        cmocka_unit_test(failure_rolls_back_its_transaction_only),
        cmocka_unit_test(hundred_transactions_over_two_connections),
        cmocka_unit_test(array_parameters_through_unnest),
        cmocka_unit_test(close_finishes_in_flight_and_fails_queued),
        cmocka_unit_test(unreachable_database_fails_fast_not_synchronously),
        cmocka_unit_test(bad_conninfo_is_a_config_error),
        cmocka_unit_test(outage_and_reconnect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

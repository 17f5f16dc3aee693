/* store_fixture — the loop, pool and recording callback the store's tests share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "store_fixture.h"

void sfx_guard_cb(uv_timer_t *t)
{
    ((sfx_t *)t->data)->timed_out = 1;
}

void sfx_on_tx(store_tx_t *tx, store_status_t st, void *arg)
{
    sfx_outcome_t *o = arg;
    o->done++;
    o->st = st;
    snprintf(o->sqlstate, sizeof o->sqlstate, "%s", store_tx_sqlstate(tx));
    snprintf(o->error, sizeof o->error, "%s", store_tx_error(tx));
    o->count = store_tx_count(tx);
    for (int i = 0; i < o->count && i < 8; i++) {
        const PGresult *r = store_tx_result(tx, i);
        o->res_status[i] = r ? (int)PQresultStatus(r) : -1;
        if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            snprintf(o->value, sizeof o->value, "%s", PQgetvalue(r, 0, 0));
    }
}

void sfx_closed_cb(void *arg)
{
    ((sfx_t *)arg)->closed = 1;
}

sfx_t *sfx_open(int conns, int pipeline, const char *conninfo, const store_stmt_t *stmts)
{
    sfx_t *f = calloc(1, sizeof *f);
    char err[256];
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    store_config_t cfg = {
        .conninfo = conninfo ? conninfo : getenv("CIRCA_TEST_DB"),
        .connections = conns,
        .max_pipeline = pipeline,
        .reconnect_min_ms = 50,
        .reconnect_max_ms = 400,
        .stmts = stmts,
    };
    if (store_open(&f->loop, &cfg, &f->s, err, sizeof err) != 0) fail_msg("store_open: %s", err);
    return f;
}

void sfx_close(sfx_t *f)
{
    store_close(f->s, sfx_closed_cb, f);
    WAIT_UNTIL(f, f->closed, 10000);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

/* store_fixture — a libuv loop and a store pool for the store's own tests, with a bounded
 * wait and a callback that records what a transaction saw. */
#ifndef CIRCA_STORE_FIXTURE_H
#define CIRCA_STORE_FIXTURE_H
#include <stdint.h>
#include <uv.h>

#include "store.h"

/* What a transaction's callback saw. */
typedef struct {
    int done;
    store_status_t st;
    char sqlstate[8];
    char error[256];
    int count;
    int res_status[8]; /* ExecStatusType, or -1 for a NULL result */
    char value[64];    /* first row, first column of the last statement with rows */
} sfx_outcome_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard;
    uv_process_t proc;
    int timed_out;
    int closed;
    int spawn_done;
    int64_t spawn_status;
    store_t *s;
} sfx_t;

void sfx_guard_cb(uv_timer_t *t);

/* Runs the loop until cond holds; the guard timer makes sure each turn ends (cmocka fails the
 * test when it does not hold in time). */
#define WAIT_UNTIL(f, cond, ms)                                                       \
    do {                                                                              \
        (f)->timed_out = 0;                                                           \
        uv_timer_start(&(f)->guard, sfx_guard_cb, (ms), 0);                           \
        while (!(cond) && !(f)->timed_out) uv_run(&(f)->loop, UV_RUN_ONCE);           \
        uv_timer_stop(&(f)->guard);                                                   \
        if (!(cond)) fail_msg("timed out waiting for: %s", #cond);                    \
    } while (0)

/* store_close's done callback: sets f->closed. */
void sfx_closed_cb(void *arg);
/* store_tx_cb recording into the sfx_outcome_t given as arg. */
void sfx_on_tx(store_tx_t *tx, store_status_t st, void *arg);
/* A loop and a pool (conninfo NULL: CIRCA_TEST_DB) preparing stmts; freed by sfx_close. */
sfx_t *sfx_open(int conns, int pipeline, const char *conninfo, const store_stmt_t *stmts);
/* store_close, then every handle must be gone: uv_loop_close succeeds. */
void sfx_close(sfx_t *f);

#endif

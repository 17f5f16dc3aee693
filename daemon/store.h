/* store — a small pool of asynchronous libpq connections driven by the libuv loop (PQsocket
 * under uv_poll, pipeline mode). Work is submitted as transactions: a list of named prepared
 * statements sent as one pipeline segment that ends in a Sync, so they run in one implicit
 * transaction that commits when the Sync's result arrives. Nothing here blocks the loop. */
#ifndef CIRCA_STORE_H
#define CIRCA_STORE_H
#include <libpq-fe.h>
#include <uv.h>

typedef struct store store_t;
typedef struct store_tx store_tx_t;

/* Prepared on every connection when it connects. Table ends with {NULL, NULL}. */
typedef struct {
    const char *name;
    const char *sql;
} store_stmt_t;

typedef enum {
    STORE_OK = 0,          /* every statement succeeded and the Sync committed */
    STORE_SQL_ERROR,       /* a statement failed: see sqlstate/error; nothing was committed */
    STORE_UNAVAILABLE,     /* no connection could take it; nothing was sent */
    STORE_LOST             /* the connection died after sending: the outcome is unknown */
} store_status_t;

/* Called once per submitted transaction, on the loop. The tx and its results are freed when
 * the callback returns. */
typedef void (*store_tx_cb)(store_tx_t *tx, store_status_t st, void *arg);

typedef struct {
    const char *conninfo;        /* libpq connection string */
    int connections;             /* pool size, default 4 */
    int max_pipeline;            /* transactions in flight per connection, default 8 */
    unsigned reconnect_min_ms;   /* back-off after a failed connect: 100 ms doubling to */
    unsigned reconnect_max_ms;   /* 5 s */
    const store_stmt_t *stmts;   /* prepared on each connection */
} store_config_t;

/* Starts connecting in the background; returns 0 or -1 (err says why) for bad config only:
 * an unreachable database is not an error, the pool keeps trying. */
int store_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out, char *err, size_t errlen);
/* Fails queued work with STORE_UNAVAILABLE, lets in-flight transactions finish, closes the
 * connections and frees the pool, then calls done. */
void store_close(store_t *s, void (*done)(void *arg), void *arg);
/* 1 when at least one connection is ready. */
int store_ready(const store_t *s);  /* (READY or running a COPY) */

/* A transaction under construction. Parameters are copied. fmt 0 = text, 1 = binary; lens
 * may be NULL for text. Results are text format. */
store_tx_t *store_tx_new(store_t *s, store_tx_cb cb, void *arg);
void store_tx_exec(store_tx_t *tx, const char *stmt, int nparams, const char *const *values,
                   const int *lengths, const int *formats);
/* Adds a COPY step: copy_sql is a `COPY ... FROM STDIN` (e.g. FORMAT binary, see pgcopy.h)
 * and data its len bytes, which the transaction takes over (freed with it). Steps before and
 * after it run in the same transaction. A transaction with a COPY step runs outside pipeline
 * mode (PostgreSQL refuses COPY there) on a connection with nothing else in flight: BEGIN,
 * each step one at a time, COMMIT. Outcomes, store_tx_result indexes and SQLSTATEs are as for
 * any transaction; the COPY step's result is COMMAND_OK. Worth it for large row sets only:
 * it costs a few round trips, but PostgreSQL inserts COPY rows in batches. */
void store_tx_copy(store_tx_t *tx, const char *copy_sql, char *data, size_t len);
/* Sends it when a connection can take it (FIFO; transactions with a COPY wait for an idle
 * connection and may be overtaken by pipelined ones). When no connection is up the callback
 * runs on the next loop iteration with STORE_UNAVAILABLE. */
void store_tx_submit(store_tx_t *tx);

/* Inside the callback: */
int store_tx_count(const store_tx_t *tx);                   /* statements */
const PGresult *store_tx_result(const store_tx_t *tx, int i); /* NULL when not executed */
const char *store_tx_sqlstate(const store_tx_t *tx);        /* of the failing statement, or "" */
const char *store_tx_error(const store_tx_t *tx);           /* message, or "" */

typedef struct {
    int connections, ready, busy;
    unsigned long long queued, in_flight, committed, failed, reconnects;
} store_stats_t;
void store_stats(const store_t *s, store_stats_t *out);

#endif

/* store — a pool of non-blocking libpq connections in pipeline mode, driven by the libuv loop. */
#include "store.h"
#include "buf.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

/* A connection that has not finished connecting and preparing by then is given up. */
#define STORE_CONNECT_TIMEOUT_MS 10000
/* At start, work waits this long for a first connection before failing fast. */
#define STORE_STARTUP_GRACE_MS 2000

/* A connection's life. The transitions allowed are in conn_allowed[]; conn_set_state is the
 * only writer of conn->state. CLOSED is final: store_close took the connection down.
 * READY is pipeline mode. A transaction with a COPY step (COPY is refused in pipeline mode)
 * runs on an idle READY connection taken out of pipeline mode, one command at a time:
 * COPY_BEGIN (BEGIN and the statements before a COPY), COPY_DATA (its data going out),
 * COPY_REST (the COPY's result, later statements or another COPY, COMMIT), COPY_ROLLBACK
 * (a step failed); then back to READY in pipeline mode. */
typedef enum {
    CONN_DISCONNECTED,
    CONN_CONNECTING,
    CONN_PREPARING,
    CONN_READY,
    CONN_COPY_BEGIN,
    CONN_COPY_DATA,
    CONN_COPY_REST,
    CONN_COPY_ROLLBACK,
    CONN_BROKEN,
    CONN_CLOSED,
    CONN_NSTATES
} conn_state_t;

static const char *const conn_state_names[CONN_NSTATES] = {
    "DISCONNECTED", "CONNECTING", "PREPARING", "READY", "COPY_BEGIN", "COPY_DATA", "COPY_REST",
    "COPY_ROLLBACK", "BROKEN", "CLOSED",
};

static const unsigned char conn_allowed[CONN_NSTATES][CONN_NSTATES] = {
    [CONN_DISCONNECTED] = {[CONN_CONNECTING] = 1, [CONN_CLOSED] = 1},
    [CONN_CONNECTING] = {[CONN_PREPARING] = 1, [CONN_BROKEN] = 1},
    [CONN_PREPARING] = {[CONN_READY] = 1, [CONN_BROKEN] = 1},
    [CONN_READY] = {[CONN_COPY_BEGIN] = 1, [CONN_BROKEN] = 1},
    [CONN_COPY_BEGIN] = {[CONN_COPY_DATA] = 1, [CONN_COPY_ROLLBACK] = 1, [CONN_BROKEN] = 1},
    [CONN_COPY_DATA] = {[CONN_COPY_REST] = 1, [CONN_BROKEN] = 1},
    [CONN_COPY_REST] = {[CONN_COPY_DATA] = 1, [CONN_COPY_ROLLBACK] = 1, [CONN_READY] = 1,
                        [CONN_BROKEN] = 1},
    [CONN_COPY_ROLLBACK] = {[CONN_READY] = 1, [CONN_BROKEN] = 1},
    [CONN_BROKEN] = {[CONN_DISCONNECTED] = 1, [CONN_CLOSED] = 1},
};

/* Up: connected with the statements prepared, in pipeline mode or running a COPY. */
static int conn_up(conn_state_t st)
{
    return st >= CONN_READY && st <= CONN_COPY_ROLLBACK;
}

/* Out of pipeline mode for a transaction with a COPY. */
static int conn_solo(conn_state_t st)
{
    return st >= CONN_COPY_BEGIN && st <= CONN_COPY_ROLLBACK;
}

/* A COPY's data goes out in pieces this big, each once libpq has sent the one before. */
#define STORE_COPY_CHUNK (256 * 1024)

/* A step: a prepared statement, or (copy_sql set) a COPY FROM STDIN with its data. */
typedef struct {
    char *name;
    int nparams;
    char **values;
    int *lengths;
    int *formats;
    char *copy_sql;
    char *data;
    size_t len;
} tx_stmt_t;

struct store_tx {
    store_t *s;
    store_tx_cb cb;
    void *arg;
    tx_stmt_t *stmts;
    int count, cap;
    PGresult **results; /* one per statement once sent */
    int nresults;       /* results received so far */
    int failed;         /* index of the first failing statement, or -1 */
    char *error;        /* for LOST/UNAVAILABLE, or a copy of the failing message */
    int has_copy;       /* runs outside pipeline mode (see CONN_COPY_BEGIN) */
    PGresult *ctl_fail; /* a failed BEGIN or COMMIT of such a transaction */
    store_tx_t *next;   /* in the store's queue or a connection's in-flight list */
};

typedef struct conn conn_t;

/* The poll handle lives in its own small struct because libpq may change the socket while
 * connecting: the old handle is closed (and freed in its close callback) and a new one made. */
typedef struct {
    uv_poll_t h;
    conn_t *c;
} pgpoll_t;

struct conn {
    store_t *s;
    int id;
    conn_state_t state;
    PGconn *pg;
    pgpoll_t *poll;      /* NULL when no socket is watched */
    int poll_fd;
    int poll_events;
    uv_timer_t timer;    /* back-off while DISCONNECTED, timeout while connecting */
    unsigned backoff_ms;
    int attempts;        /* connection attempts started */
    int tried;           /* the first attempt has ended, one way or the other */
    int fail_streak;     /* attempts failed in a row */
    int expect_null;     /* the NULL that separates one statement's results from the next */
    int prep_left;       /* PREPARING: prepare results still to come */
    int prep_failed;
    store_tx_t *head, *tail; /* in flight, oldest first */
    int inflight;
    int step;            /* COPY_*: -1 BEGIN, 0..count-1 the tx's steps, count COMMIT */
    int solo_pending;    /* COPY_*: a command was sent and its end (a NULL result) is owed */
    size_t copy_off;     /* COPY_DATA: bytes of the step's data handed to libpq */
};

typedef struct {
    store_tx_t *head, *tail;
} txq_t;

struct store {
    uv_loop_t *loop;
    char *conninfo;
    store_stmt_t *stmts;
    int nstmts;
    int max_pipeline;
    unsigned reconnect_min_ms, reconnect_max_ms;
    conn_t *conns;
    int nconns;
    int nready;          /* connections up (conn_up) */
    txq_t queue;         /* pipelined transactions waiting, FIFO */
    txq_t copyq;         /* transactions with a COPY waiting for an idle connection */
    conn_t *drain;       /* takes no new work while copyq waits, so that it becomes idle */
    unsigned long long queued;
    uv_timer_t fail_timer; /* fails the queue on the next iteration when nothing is ready */
    uv_timer_t grace_timer;
    int startup_over;
    int closing, finishing;
    int open_handles;
    void (*done)(void *);
    void *done_arg;
    unsigned long long committed, failed, reconnects;
};

static void conn_connect(conn_t *c);
static void conn_break(conn_t *c, const char *why);
static void conn_shutdown(conn_t *c);
static void conn_on_poll(uv_poll_t *h, int status, int events);
static void store_dispatch(store_t *s);
static void store_kick(store_t *s);
static void store_maybe_finish(store_t *s);

/* ---- transactions ---------------------------------------------------------------------- */

static void tx_free(store_tx_t *tx)
{
    for (int i = 0; i < tx->count; i++) {
        tx_stmt_t *st = &tx->stmts[i];
        for (int p = 0; p < st->nparams; p++) free(st->values[p]);
        free(st->name);
        free(st->values);
        free(st->lengths);
        free(st->formats);
    }
    for (int i = 0; i < tx->count; i++) {
        free(tx->stmts[i].copy_sql);
        free(tx->stmts[i].data);
    }
    for (int i = 0; tx->results && i < tx->count; i++) PQclear(tx->results[i]);
    PQclear(tx->ctl_fail);
    free(tx->results);
    free(tx->stmts);
    free(tx->error);
    free(tx);
}

/* Runs the callback once and frees the transaction. */
static void tx_finish(store_tx_t *tx, store_status_t st, const char *why)
{
    store_t *s = tx->s;
    if (why && !tx->error) tx->error = xstrdup(why);
    if (st == STORE_OK) s->committed++;
    else s->failed++;
    tx->cb(tx, st, tx->arg);
    tx_free(tx);
}

static void queue_push(store_t *s, store_tx_t *tx)
{
    txq_t *q = tx->has_copy ? &s->copyq : &s->queue;
    tx->next = NULL;
    if (q->tail) q->tail->next = tx;
    else q->head = tx;
    q->tail = tx;
    s->queued++;
}

static store_tx_t *queue_pop(store_t *s, txq_t *q)
{
    store_tx_t *tx = q->head;
    if (!tx) return NULL;
    q->head = tx->next;
    if (!q->head) q->tail = NULL;
    s->queued--;
    tx->next = NULL;
    return tx;
}

static int queue_empty(const store_t *s)
{
    return !s->queue.head && !s->copyq.head;
}

/* ---- the state setter ------------------------------------------------------------------- */

/* The one place conn->state changes. An unlisted transition is a bug in this file. */
static void conn_set_state(conn_t *c, conn_state_t to, const char *why)
{
    conn_state_t from = c->state;
    if (!conn_allowed[from][to]) {
        log_msg(LOG_ERROR, "store conn %d: bad transition %s -> %s (%s)", c->id,
                conn_state_names[from], conn_state_names[to], why);
        abort();
    }
    if (log_enabled(LOG_DEBUG))
        log_msg(LOG_DEBUG, "store conn %d: %s -> %s: %s", c->id, conn_state_names[from],
                conn_state_names[to], why);
    c->state = to;
    if (conn_up(to) && !conn_up(from)) c->s->nready++;
    if (conn_up(from) && !conn_up(to)) c->s->nready--;
}

/* ---- the socket watch ------------------------------------------------------------------- */

static void poll_closed(uv_handle_t *h)
{
    pgpoll_t *p = h->data;
    store_t *s = p->c->s;
    free(p);
    s->open_handles--;
    store_maybe_finish(s);
}

static void conn_poll_close(conn_t *c)
{
    if (!c->poll) return;
    uv_close((uv_handle_t *)&c->poll->h, poll_closed);
    c->poll = NULL;
    c->poll_fd = -1;
    c->poll_events = 0;
}

/* Watches PQsocket for events, making a new handle when libpq switched sockets. */
static int conn_poll_watch(conn_t *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) return -1;
    if (c->poll && c->poll_fd != fd) conn_poll_close(c);
    if (!c->poll) {
        pgpoll_t *p = xcalloc(1, sizeof *p);
        if (uv_poll_init(c->s->loop, &p->h, fd) != 0) {
            free(p);
            return -1;
        }
        p->c = c;
        p->h.data = p;
        c->s->open_handles++;
        c->poll = p;
        c->poll_fd = fd;
        c->poll_events = 0;
    }
    if (events == c->poll_events) return 0;
    c->poll_events = events;
    return uv_poll_start(&c->poll->h, events, conn_on_poll) == 0 ? 0 : -1;
}

/* ---- connecting ------------------------------------------------------------------------- */

static void conn_notice(void *arg, const char *msg)
{
    conn_t *c = arg;
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') n--;
    log_msg(LOG_INFO, "store conn %d: postgres says: %.*s", c->id, (int)n, msg);
}

/* The first attempts of all connections have ended, or the grace time ran out. */
static void store_startup_over(store_t *s)
{
    if (s->startup_over) return;
    s->startup_over = 1;
    uv_timer_stop(&s->grace_timer);
    if (!s->nready) store_kick(s);
}

static void conn_first_try_over(conn_t *c)
{
    store_t *s = c->s;
    if (c->tried) return;
    c->tried = 1;
    for (int i = 0; i < s->nconns; i++)
        if (!s->conns[i].tried) return;
    store_startup_over(s);
}

/* Prepares every statement in one pipeline segment; the Sync's result makes us READY. */
static void conn_prepare(conn_t *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
    conn_set_state(c, CONN_PREPARING, "connected");
    c->prep_left = c->s->nstmts;
    c->prep_failed = 0;
    c->expect_null = 0;
    for (int i = 0; i < c->s->nstmts; i++)
        if (!PQsendPrepare(c->pg, c->s->stmts[i].name, c->s->stmts[i].sql, 0, NULL)) {
            conn_break(c, PQerrorMessage(c->pg));
            return;
        }
    if (!PQpipelineSync(c->pg)) {
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
    int f = PQflush(c->pg);
    if (f < 0 || conn_poll_watch(c, UV_READABLE | (f ? UV_WRITABLE : 0)) != 0)
        conn_break(c, "cannot send the prepared statements");
}

/* One PQconnectPoll step, then wait for what it asks for. */
static void conn_connect_step(conn_t *c)
{
    PostgresPollingStatusType ps = PQconnectPoll(c->pg);
    switch (ps) {
    case PGRES_POLLING_OK:
        conn_prepare(c);
        return;
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (conn_poll_watch(c, ps == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE) != 0)
            conn_break(c, "cannot watch the socket");
        return;
    default:
        conn_break(c, PQerrorMessage(c->pg));
        return;
    }
}

static void conn_timer_cb(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->state == CONN_DISCONNECTED) conn_connect(c);
    else if (c->state == CONN_CONNECTING || c->state == CONN_PREPARING)
        conn_break(c, "connect timeout");
}

static void conn_connect(conn_t *c)
{
    /* Custom plans: a generic plan made while a table is nearly empty (a sequential scan)
     * would be kept as the table grows to millions of rows. Options given in the
     * connection string itself come after ours and win. */
    static const char *const keys[] = {"options", "dbname", "application_name", NULL};
    const char *vals[] = {"-c plan_cache_mode=force_custom_plan", c->s->conninfo, "circad", NULL};
    if (c->attempts++) c->s->reconnects++;
    conn_set_state(c, CONN_CONNECTING, c->attempts > 1 ? "reconnect" : "start");
    /* Names like localhost resolve inside this call; use host addresses to keep it quick. */
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_break(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, conn_notice, c);
    uv_timer_start(&c->timer, conn_timer_cb, STORE_CONNECT_TIMEOUT_MS, 0);
    /* libpq wants the first poll as if the socket had asked for writing. */
    if (conn_poll_watch(c, UV_WRITABLE) != 0) conn_break(c, "cannot watch the socket");
}

/* ---- losing and closing ----------------------------------------------------------------- */

static store_tx_t *conn_take_inflight(conn_t *c)
{
    store_tx_t *list = c->head;
    c->head = c->tail = NULL;
    c->inflight = 0;
    return list;
}

static void conn_drop_pg(conn_t *c)
{
    uv_timer_stop(&c->timer);
    conn_poll_close(c); /* before PQfinish closes the socket the poll watches */
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
}

/* libpq's messages span lines; a log record is one line. */
static void conn_reason(char *out, size_t outlen, const char *why)
{
    size_t n = 0;
    for (const char *p = why; *p && n + 1 < outlen; p++) {
        char ch = (*p == '\n' || *p == '\t') ? ' ' : *p;
        if (ch == ' ' && (n == 0 || out[n - 1] == ' ')) continue;
        out[n++] = ch;
    }
    while (n && out[n - 1] == ' ') n--;
    out[n] = '\0';
}

/* The connection is gone or unusable: in-flight work has an unknown outcome (LOST), the
 * connection comes back after a back-off, and the queue fails fast if nothing is READY. */
static void conn_break(conn_t *c, const char *why)
{
    store_t *s = c->s;
    if (c->state != CONN_CONNECTING && c->state != CONN_PREPARING && !conn_up(c->state))
        return; /* already down */
    char reason[256];
    conn_reason(reason, sizeof reason, why);
    /* A database that stays down would log every back-off: say it once, then in debug. */
    int level = s->closing ? LOG_INFO : conn_up(c->state) || !c->fail_streak ? LOG_WARN
                                                                              : LOG_DEBUG;
    if (!conn_up(c->state)) c->fail_streak++;
    log_msg(level, "store conn %d: closing: %s", c->id, reason);
    conn_set_state(c, CONN_BROKEN, reason);
    store_tx_t *lost = conn_take_inflight(c);
    conn_drop_pg(c);
    conn_first_try_over(c);
    if (s->closing) {
        conn_set_state(c, CONN_CLOSED, "store closing");
    } else {
        conn_set_state(c, CONN_DISCONNECTED, "back-off");
        uv_timer_start(&c->timer, conn_timer_cb, c->backoff_ms, 0);
        c->backoff_ms = c->backoff_ms * 2 > s->reconnect_max_ms ? s->reconnect_max_ms
                                                                 : c->backoff_ms * 2;
    }
    if (!s->nready) store_kick(s);
    while (lost) {
        store_tx_t *next = lost->next;
        tx_finish(lost, STORE_LOST, "database connection lost");
        lost = next;
    }
    store_maybe_finish(s);
}

/* store_close: a connection with nothing in flight goes down for good. */
static void conn_shutdown(conn_t *c)
{
    if (c->state == CONN_CLOSED) return;
    if (conn_up(c->state) || c->state == CONN_CONNECTING || c->state == CONN_PREPARING) {
        conn_break(c, "store closing");
        return;
    }
    uv_timer_stop(&c->timer);
    conn_set_state(c, CONN_CLOSED, "store closing");
    store_maybe_finish(c->s);
}

/* ---- results ---------------------------------------------------------------------------- */

static void prep_on_result(conn_t *c, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        if (c->prep_failed || c->prep_left) {
            conn_break(c, "preparing the statements failed");
            return;
        }
        c->backoff_ms = c->s->reconnect_min_ms;
        c->fail_streak = 0;
        uv_timer_stop(&c->timer);
        conn_first_try_over(c);
        conn_set_state(c, CONN_READY, "statements prepared");
        store_dispatch(c->s);
        return;
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_PIPELINE_ABORTED) {
        log_msg(LOG_ERROR, "store conn %d: prepare: %s", c->id, PQresultErrorMessage(r));
        c->prep_failed = 1;
    }
    c->prep_left--;
    c->expect_null = 1;
    PQclear(r);
}

/* The Sync closes the head transaction: it committed only if no statement failed. */
static void tx_on_sync(conn_t *c)
{
    store_tx_t *tx = c->head;
    c->head = tx->next;
    if (!c->head) c->tail = NULL;
    c->inflight--;
    tx->next = NULL;
    store_status_t st = STORE_OK;
    if (tx->failed >= 0) st = STORE_SQL_ERROR;
    else if (tx->nresults != tx->count) st = STORE_LOST; /* cannot happen with a sane server */
    tx_finish(tx, st, st == STORE_LOST ? "statement results missing" : NULL);
    store_dispatch(c->s); /* a pipeline slot is free */
}

static void tx_on_result(conn_t *c, PGresult *r)
{
    store_tx_t *tx = c->head;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
        PQclear(r);
        tx_on_sync(c);
        return;
    }
    c->expect_null = 1;
    if (tx->nresults >= tx->count) {
        PQclear(r);
        conn_break(c, "more results than statements");
        return;
    }
    tx->results[tx->nresults] = r;
    if (tx->failed < 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
        st != PGRES_PIPELINE_ABORTED)
        tx->failed = tx->nresults;
    tx->nresults++;
}

/* ---- a transaction with a COPY: one command at a time, outside pipeline mode ---------- */

static void conn_after_tx(conn_t *c);
static int conn_flush(conn_t *c);
static void conn_push_inflight(conn_t *c, store_tx_t *tx);

/* Sends the command of c->step (BEGIN, a statement, a COPY, COMMIT) and waits for its end. */
static void solo_send(conn_t *c)
{
    store_tx_t *tx = c->head;
    int ok;
    if (c->step < 0) {
        ok = PQsendQuery(c->pg, "BEGIN");
    } else if (c->step == tx->count) {
        ok = PQsendQuery(c->pg, "COMMIT");
    } else {
        tx_stmt_t *st = &tx->stmts[c->step];
        ok = st->copy_sql ? PQsendQuery(c->pg, st->copy_sql)
                          : PQsendQueryPrepared(c->pg, st->name, st->nparams,
                                                (const char *const *)st->values, st->lengths,
                                                st->formats, 0);
    }
    c->solo_pending = 1;
    if (!ok) conn_break(c, PQerrorMessage(c->pg));
    else conn_flush(c);
}

/* Takes an idle READY connection out of pipeline mode and starts tx there. */
static void solo_start(conn_t *c, store_tx_t *tx)
{
    conn_push_inflight(c, tx);
    if (PQexitPipelineMode(c->pg) != 1) {
        conn_break(c, PQerrorMessage(c->pg)); /* tx is in flight there: LOST */
        return;
    }
    conn_set_state(c, CONN_COPY_BEGIN, "transaction with a COPY");
    c->step = -1;
    solo_send(c);
}

/* Hands the step's data to libpq a chunk at a time, each only once the one before has gone
 * out, so a large COPY never sits twice in memory; resumes when the socket is writable. */
static void copy_push(conn_t *c)
{
    tx_stmt_t *st = &c->head->stmts[c->step];
    for (;;) {
        int f = PQflush(c->pg);
        if (f < 0 || PQstatus(c->pg) == CONNECTION_BAD) goto broken;
        if (f > 0) goto wait;
        if (c->copy_off == st->len) break;
        size_t n = st->len - c->copy_off < STORE_COPY_CHUNK ? st->len - c->copy_off
                                                            : STORE_COPY_CHUNK;
        int r = PQputCopyData(c->pg, st->data + c->copy_off, (int)n);
        if (r < 0) goto broken;
        if (r == 0) goto wait;
        c->copy_off += n;
    }
    int r = PQputCopyEnd(c->pg, NULL);
    if (r < 0) goto broken;
    if (r == 0) goto wait;
    conn_set_state(c, CONN_COPY_REST, "COPY data sent");
    conn_flush(c);
    return;
wait:
    if (conn_poll_watch(c, UV_READABLE | UV_WRITABLE) == 0) return;
broken:
    conn_break(c, PQerrorMessage(c->pg));
}

/* The server takes the COPY's data: send it. */
static void solo_copy_in(conn_t *c)
{
    c->copy_off = 0;
    conn_set_state(c, CONN_COPY_DATA, "COPY accepted");
    copy_push(c);
}

static void solo_on_result(conn_t *c, PGresult *r)
{
    store_tx_t *tx = c->head;
    ExecStatusType st = PQresultStatus(r);
    int is_copy = c->step >= 0 && c->step < tx->count && tx->stmts[c->step].copy_sql;
    if (st == PGRES_COPY_IN && is_copy && c->state != CONN_COPY_ROLLBACK) {
        PQclear(r);
        solo_copy_in(c);
        return;
    }
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        PQclear(r); /* a statement that is a COPY of its own: we cannot drive it */
        conn_break(c, "unexpected COPY mode");
        return;
    }
    int bad = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
    if (c->state != CONN_COPY_ROLLBACK && c->step >= 0 && c->step < tx->count &&
        !tx->results[c->step]) {
        tx->results[c->step] = r; /* same index as in a pipelined transaction */
        tx->nresults = c->step + 1;
        if (bad && tx->failed < 0) tx->failed = c->step;
        return;
    }
    /* BEGIN, COMMIT or ROLLBACK: only a failure of BEGIN or COMMIT is worth keeping. */
    if (bad && c->state != CONN_COPY_ROLLBACK && tx->failed < 0 && !tx->ctl_fail)
        tx->ctl_fail = r;
    else PQclear(r);
}

/* Back to pipeline mode and READY, then the transaction's callback. */
static void solo_end(conn_t *c, store_status_t st)
{
    store_tx_t *tx = conn_take_inflight(c);
    int ok = PQenterPipelineMode(c->pg) == 1;
    c->expect_null = 0;
    conn_set_state(c, CONN_READY, st == STORE_OK ? "COPY committed" : "COPY rolled back");
    tx_finish(tx, st, NULL);
    if (!ok) conn_break(c, PQerrorMessage(c->pg));
    else if (c->state == CONN_READY) conn_after_tx(c);
}

/* The current command ended (libpq's NULL result): the next step, ROLLBACK, or the end. */
static void solo_on_done(conn_t *c)
{
    store_tx_t *tx = c->head;
    c->solo_pending = 0;
    int failed = tx->failed >= 0 || tx->ctl_fail;
    if (c->state == CONN_COPY_ROLLBACK || (failed && c->step == tx->count)) {
        solo_end(c, STORE_SQL_ERROR); /* a failed COMMIT has ended the transaction already */
        return;
    }
    if (failed) {
        conn_set_state(c, CONN_COPY_ROLLBACK, "a step failed");
        c->solo_pending = 1;
        if (!PQsendQuery(c->pg, "ROLLBACK")) conn_break(c, PQerrorMessage(c->pg));
        else conn_flush(c);
        return;
    }
    if (c->step == tx->count) {
        solo_end(c, STORE_OK);
        return;
    }
    c->step++;
    solo_send(c);
}

/* ---- reading and writing ---------------------------------------------------------------- */

/* States in which results are collected; COPY_DATA is sending and owes none yet. */
static int conn_takes_results(conn_state_t st)
{
    return st == CONN_PREPARING || (conn_up(st) && st != CONN_COPY_DATA);
}

/* A NULL result: the end of a command. Returns 0 when nothing more is owed for now. */
static int conn_on_null(conn_t *c)
{
    if (conn_solo(c->state)) {
        if (!c->solo_pending) return 0;
        solo_on_done(c);
        return 1;
    }
    if (!c->expect_null) return 0; /* idle: nothing more is owed to us */
    c->expect_null = 0;
    return 1;
}

/* Reads what arrived and hands each result to its owner. Returns -1 when c went down. */
static int conn_read(conn_t *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_break(c, PQerrorMessage(c->pg));
        return -1;
    }
    while (c->pg && conn_takes_results(c->state) && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (!conn_on_null(c)) break;
            continue;
        }
        if (c->state == CONN_PREPARING) prep_on_result(c, r);
        else if (c->state == CONN_READY && c->head) tx_on_result(c, r);
        else if (conn_solo(c->state)) solo_on_result(c, r);
        else {
            PQclear(r);
            conn_break(c, "result nobody asked for");
        }
    }
    if (!c->pg) return -1; /* went down meanwhile */
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_break(c, PQerrorMessage(c->pg));
        return -1;
    }
    return 0;
}

/* Sends what libpq buffered; poll for writable only while some is left. */
static int conn_flush(conn_t *c)
{
    int f = PQflush(c->pg);
    if (f < 0 || conn_poll_watch(c, UV_READABLE | (f ? UV_WRITABLE : 0)) != 0) {
        conn_break(c, PQerrorMessage(c->pg));
        return -1;
    }
    return 0;
}

/* The one callback of a PostgreSQL connection: socket events, by state. */
static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    conn_t *c = ((pgpoll_t *)h->data)->c;
    if (status < 0) {
        /* libpq may have closed the socket on finding the server gone: its reason is better. */
        int bad = c->pg && PQstatus(c->pg) == CONNECTION_BAD;
        conn_break(c, bad ? PQerrorMessage(c->pg) : uv_strerror(status));
        return;
    }
    if (c->state == CONN_CONNECTING) {
        conn_connect_step(c);
        return;
    }
    if (c->state != CONN_PREPARING && !conn_up(c->state))
        return; /* a late event for a socket we no longer care about */
    if (events & UV_WRITABLE) {
        if (c->state == CONN_COPY_DATA) copy_push(c);
        else conn_flush(c);
        if (!c->pg) return;
    }
    if ((events & UV_READABLE) && conn_read(c) != 0) return;
    if (c->state == CONN_READY && c->s->closing && !c->inflight) conn_shutdown(c);
    else if (c->state != CONN_COPY_DATA && (c->poll_events & UV_WRITABLE)) conn_flush(c);
}

/* ---- dispatching ------------------------------------------------------------------------ */

/* The least busy READY connection with room in its pipeline, or NULL. The one draining for a
 * COPY takes nothing new. */
static conn_t *store_pick(store_t *s)
{
    conn_t *best = NULL;
    for (int i = 0; i < s->nconns; i++) {
        conn_t *c = &s->conns[i];
        if (c->state != CONN_READY || c->inflight >= s->max_pipeline || c == s->drain) continue;
        if (!best || c->inflight < best->inflight) best = c;
    }
    return best;
}

/* A READY connection with nothing in flight, the draining one first; or NULL. */
static conn_t *store_pick_idle(store_t *s)
{
    if (s->drain && s->drain->state == CONN_READY && !s->drain->inflight) return s->drain;
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i].state == CONN_READY && !s->conns[i].inflight) return &s->conns[i];
    return NULL;
}

/* The READY connection that will be idle soonest, to drain for a waiting COPY. */
static conn_t *store_pick_drain(store_t *s)
{
    conn_t *best = NULL;
    for (int i = 0; i < s->nconns; i++) {
        conn_t *c = &s->conns[i];
        if (c->state == CONN_READY && (!best || c->inflight < best->inflight)) best = c;
    }
    return best;
}

static void conn_push_inflight(conn_t *c, store_tx_t *tx)
{
    tx->results = xcalloc((size_t)(tx->count ? tx->count : 1), sizeof *tx->results);
    tx->next = NULL;
    if (c->tail) c->tail->next = tx;
    else c->head = tx;
    c->tail = tx;
    c->inflight++;
}

static int tx_send(conn_t *c, store_tx_t *tx)
{
    conn_push_inflight(c, tx);
    for (int i = 0; i < tx->count; i++) {
        tx_stmt_t *st = &tx->stmts[i];
        if (!PQsendQueryPrepared(c->pg, st->name, st->nparams, (const char *const *)st->values,
                                 st->lengths, st->formats, 0))
            return -1;
    }
    return PQpipelineSync(c->pg) ? 0 : -1;
}

/* Transactions with a COPY need an idle connection. Pipelines rarely all empty at once under
 * load, so while one waits a chosen connection takes no new work until it is idle. */
static void dispatch_copies(store_t *s)
{
    conn_t *c;
    while (s->copyq.head && !s->closing && (c = store_pick_idle(s))) {
        s->drain = NULL;
        solo_start(c, queue_pop(s, &s->copyq));
    }
    if (!s->copyq.head) s->drain = NULL;
    else if (!s->drain || s->drain->state != CONN_READY) s->drain = store_pick_drain(s);
}

static void store_dispatch(store_t *s)
{
    conn_t *c;
    if (s->closing) return;
    dispatch_copies(s);
    while (s->queue.head && !s->closing && (c = store_pick(s))) {
        store_tx_t *tx = queue_pop(s, &s->queue);
        if (tx_send(c, tx) != 0) {
            conn_break(c, PQerrorMessage(c->pg)); /* tx is in flight there: LOST */
            continue;
        }
        conn_flush(c);
    }
}

/* A transaction left c: shut it down when closing, else give it (and others) work. */
static void conn_after_tx(conn_t *c)
{
    if (c->s->closing && !c->inflight) conn_shutdown(c);
    else store_dispatch(c->s);
}

static void fail_list(store_t *s, store_tx_t *list)
{
    while (list) {
        store_tx_t *next = list->next;
        tx_finish(list, STORE_UNAVAILABLE, s->closing ? "store closing" : "no database connection");
        list = next;
    }
}

/* Fails the queue when nothing can take it; runs on the loop, never inside a caller. */
static void fail_timer_cb(uv_timer_t *t)
{
    store_t *s = t->data;
    if (!s->closing && (s->nready || !s->startup_over)) return;
    store_tx_t *list = s->queue.head, *copies = s->copyq.head;
    s->queue.head = s->queue.tail = s->copyq.head = s->copyq.tail = NULL;
    s->queued = 0;
    s->drain = NULL;
    fail_list(s, list);
    fail_list(s, copies);
    store_maybe_finish(s);
}

static void store_kick(store_t *s)
{
    if (!queue_empty(s) && !s->finishing) uv_timer_start(&s->fail_timer, fail_timer_cb, 0, 0);
}

static void grace_timer_cb(uv_timer_t *t)
{
    store_startup_over(t->data);
}

/* ---- opening and closing ---------------------------------------------------------------- */

static void store_free(store_t *s)
{
    for (int i = 0; i < s->nstmts; i++) {
        free((char *)s->stmts[i].name);
        free((char *)s->stmts[i].sql);
    }
    free(s->stmts);
    free(s->conninfo);
    free(s->conns);
    free(s);
}

static void store_timer_closed(uv_handle_t *h)
{
    store_t *s = h->data;
    s->open_handles--;
    store_maybe_finish(s);
}

static void conn_timer_closed(uv_handle_t *h)
{
    store_t *s = ((conn_t *)h->data)->s;
    s->open_handles--;
    store_maybe_finish(s);
}

/* Once closing, every connection CLOSED and the queue empty: close the handles, then free. */
static void store_maybe_finish(store_t *s)
{
    if (!s->closing) return;
    if (s->finishing) {
        if (s->open_handles) return;
        void (*done)(void *) = s->done;
        void *arg = s->done_arg;
        store_free(s);
        if (done) done(arg);
        return;
    }
    if (!queue_empty(s)) return;
    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i].state != CONN_CLOSED) return;
    s->finishing = 1;
    uv_close((uv_handle_t *)&s->fail_timer, store_timer_closed);
    uv_close((uv_handle_t *)&s->grace_timer, store_timer_closed);
    for (int i = 0; i < s->nconns; i++)
        uv_close((uv_handle_t *)&s->conns[i].timer, conn_timer_closed);
}

static int store_copy_config(store_t *s, const store_config_t *cfg, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo ? cfg->conninfo : "", &perr);
    if (!opts) {
        snprintf(err, errlen, "store: bad conninfo: %s", perr ? perr : "out of memory");
        PQfreemem(perr);
        return -1;
    }
    PQconninfoFree(opts);
    s->conninfo = xstrdup(cfg->conninfo ? cfg->conninfo : "");
    s->nconns = cfg->connections > 0 ? cfg->connections : 4;
    s->max_pipeline = cfg->max_pipeline > 0 ? cfg->max_pipeline : 8;
    s->reconnect_min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : 100;
    s->reconnect_max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : 5000;
    if (s->reconnect_max_ms < s->reconnect_min_ms) s->reconnect_max_ms = s->reconnect_min_ms;
    while (cfg->stmts && cfg->stmts[s->nstmts].name) s->nstmts++;
    s->stmts = xcalloc((size_t)s->nstmts + 1, sizeof *s->stmts);
    for (int i = 0; i < s->nstmts; i++) {
        if (!cfg->stmts[i].sql) {
            snprintf(err, errlen, "store: statement %s has no SQL", cfg->stmts[i].name);
            return -1;
        }
        s->stmts[i].name = xstrdup(cfg->stmts[i].name);
        s->stmts[i].sql = xstrdup(cfg->stmts[i].sql);
    }
    return 0;
}

int store_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out, char *err, size_t errlen)
{
    store_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    if (store_copy_config(s, cfg, err, errlen) != 0) {
        store_free(s);
        return -1;
    }
    uv_timer_init(loop, &s->fail_timer);
    uv_timer_init(loop, &s->grace_timer);
    s->fail_timer.data = s->grace_timer.data = s;
    s->open_handles = 2;
    s->conns = xcalloc((size_t)s->nconns, sizeof *s->conns);
    for (int i = 0; i < s->nconns; i++) {
        conn_t *c = &s->conns[i];
        c->s = s;
        c->id = i;
        c->poll_fd = -1;
        c->backoff_ms = s->reconnect_min_ms;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        s->open_handles++;
    }
    uv_timer_start(&s->grace_timer, grace_timer_cb, STORE_STARTUP_GRACE_MS, 0);
    for (int i = 0; i < s->nconns; i++) conn_connect(&s->conns[i]);
    *out = s;
    return 0;
}

void store_close(store_t *s, void (*done)(void *arg), void *arg)
{
    if (s->closing) return;
    s->closing = 1;
    s->done = done;
    s->done_arg = arg;
    uv_timer_stop(&s->grace_timer);
    store_kick(s);
    for (int i = 0; i < s->nconns; i++)
        if (!s->conns[i].inflight) conn_shutdown(&s->conns[i]);
    store_maybe_finish(s);
}

int store_ready(const store_t *s)
{
    return s->nready > 0;
}

/* ---- building transactions -------------------------------------------------------------- */

store_tx_t *store_tx_new(store_t *s, store_tx_cb cb, void *arg)
{
    store_tx_t *tx = xcalloc(1, sizeof *tx);
    tx->s = s;
    tx->cb = cb;
    tx->arg = arg;
    tx->failed = -1;
    return tx;
}

static tx_stmt_t *tx_add_step(store_tx_t *tx)
{
    if (tx->count == tx->cap) {
        tx->cap = tx->cap ? tx->cap * 2 : 4;
        tx->stmts = xrealloc(tx->stmts, (size_t)tx->cap * sizeof *tx->stmts);
    }
    tx_stmt_t *st = &tx->stmts[tx->count++];
    memset(st, 0, sizeof *st);
    return st;
}

void store_tx_exec(store_tx_t *tx, const char *stmt, int nparams, const char *const *values,
                   const int *lengths, const int *formats)
{
    tx_stmt_t *st = tx_add_step(tx);
    st->name = xstrdup(stmt);
    st->nparams = nparams;
    st->values = xcalloc((size_t)(nparams ? nparams : 1), sizeof *st->values);
    st->lengths = xcalloc((size_t)(nparams ? nparams : 1), sizeof *st->lengths);
    st->formats = xcalloc((size_t)(nparams ? nparams : 1), sizeof *st->formats);
    for (int i = 0; i < nparams; i++) {
        int bin = formats && formats[i] == 1;
        st->formats[i] = bin;
        if (!values[i]) continue; /* SQL NULL */
        size_t n = bin ? (size_t)lengths[i] : strlen(values[i]);
        st->values[i] = xmalloc(n + 1);
        memcpy(st->values[i], values[i], n);
        st->values[i][n] = '\0';
        st->lengths[i] = (int)n;
    }
}

void store_tx_copy(store_tx_t *tx, const char *copy_sql, char *data, size_t len)
{
    tx_stmt_t *st = tx_add_step(tx);
    st->copy_sql = xstrdup(copy_sql);
    st->data = data;
    st->len = len;
    tx->has_copy = 1;
}

void store_tx_submit(store_tx_t *tx)
{
    store_t *s = tx->s;
    queue_push(s, tx);
    store_dispatch(s);
    if (s->closing || (!s->nready && s->startup_over)) store_kick(s);
}

int store_tx_count(const store_tx_t *tx)
{
    return tx->count;
}

const PGresult *store_tx_result(const store_tx_t *tx, int i)
{
    if (!tx->results || i < 0 || i >= tx->nresults) return NULL;
    if (PQresultStatus(tx->results[i]) == PGRES_PIPELINE_ABORTED) return NULL;
    return tx->results[i];
}

/* The result that failed the transaction: a statement's, or a BEGIN's or COMMIT's. */
static const PGresult *tx_failure(const store_tx_t *tx)
{
    return tx->failed >= 0 ? tx->results[tx->failed] : tx->ctl_fail;
}

const char *store_tx_sqlstate(const store_tx_t *tx)
{
    const PGresult *r = tx_failure(tx);
    if (!r) return "";
    const char *v = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return v ? v : "";
}

const char *store_tx_error(const store_tx_t *tx)
{
    const PGresult *r = tx_failure(tx);
    if (r) {
        const char *v = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        return v ? v : PQresultErrorMessage(r);
    }
    return tx->error ? tx->error : "";
}

void store_stats(const store_t *s, store_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->connections = s->nconns;
    out->ready = s->nready;
    for (int i = 0; i < s->nconns; i++) {
        out->busy += s->conns[i].inflight > 0;
        out->in_flight += (unsigned long long)s->conns[i].inflight;
    }
    out->queued = s->queued;
    out->committed = s->committed;
    out->failed = s->failed;
    out->reconnects = s->reconnects;
}

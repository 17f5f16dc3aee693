/* adapters — the adapter instances of one circad: every *.json in CIRCA_ADAPTERS_DIR (default
 * $CIRCA_DATA_DIR/adapters) is one instance (kind mqtt or plm) with a unique name, a tenant
 * (default "demo") and an optional party. Started after the routes, reloaded on SIGHUP,
 * stopped before the store. Also owns the dead letters: GET /v1/dead-letters and
 * POST /v1/dead-letters/replay (admin), and the adapters' lines of /metrics. */
#ifndef CIRCA_ADAPTERS_H
#define CIRCA_ADAPTERS_H
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "buf.h"
#include "ingest.h"
#include "store.h"

/* main.c's hooks (weakly referenced there). */
int adapters_start(app_t *app);
void adapters_stop(app_t *app, void (*done)(void *), void *arg);
void adapters_reload(app_t *app);
void api_adapters_register(app_t *app);
extern const store_stmt_t api_adapters_stmts[];

/* Prometheus lines for every instance (connected, messages, events, dead letters, spool
 * depth, lag); api_ops' /metrics handler may call it. */
void adapters_metrics(app_t *app, buf_t *out);

/* Adds the insert of one dead letter to tx (idempotent: its id is derived from adapter, topic
 * and payload). A payload that is not UTF-8 is stored with '?' for the bad bytes. */
void adapters_dead_letter(store_tx_t *tx, const char *tenant, const char *adapter,
                          const char *topic, int64_t received_us, const char *reason,
                          const char *payload, size_t len);

/* The problem of a failed ingest as one line for a dead letter's reason. */
void adapters_ingest_reason(const ingest_result_t *res, char *out, size_t outlen);

#endif

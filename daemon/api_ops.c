/* api_ops — liveness, readiness and Prometheus metrics. */
#include "api_ops.h"
#include "adapters.h"
#include "api.h"
#include "ingest.h"
#include "stats.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Liveness says only that the loop runs: a container must not be restarted because
 * PostgreSQL is down. */
static void healthz(app_t *app, http_req_t *req, const router_match_t *m,
                    const auth_principal_t *who)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond(req, 200, "application/json", body, sizeof body - 1, NULL);
}

static void readyz(app_t *app, http_req_t *req, const router_match_t *m,
                   const auth_principal_t *who)
{
    static const char up[] = "{\"status\":\"ready\",\"database\":\"up\"}";
    static const char down[] = "{\"status\":\"not ready\",\"database\":\"down\"}";
    if (store_ready(app->store))
        http_respond(req, 200, "application/json", up, sizeof up - 1, NULL);
    else
        http_respond(req, 503, "application/json", down, sizeof down - 1, "Retry-After: 1\r\n");
}

static void metric(buf_t *b, const char *name, const char *type, const char *help, double v)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void histogram(buf_t *b, const char *name, const char *help, const unsigned long long *h,
                      double sum, double scale)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    double edge = 1;
    for (int i = 0; i < 11; i++, edge *= 2) {
        cum += h[i];
        buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, edge * scale, cum);
    }
    cum += h[11];
    buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, cum, name,
               sum, name, cum);
}

static void render_ingest(app_t *app, buf_t *b)
{
    ingest_stats_t s;
    ingest_stats(app->ingest, &s);
    metric(b, "circa_events_stored_total", "counter", "Events committed to the ledger.",
           (double)s.events_stored);
    metric(b, "circa_event_duplicates_total", "counter",
           "Events sent again with the same id and content.", (double)s.duplicates);
    metric(b, "circa_ingest_requests_total", "counter", "Ingest requests received.",
           (double)s.requests);
    metric(b, "circa_ingest_rejected_total", "counter", "Ingest requests answered with an error.",
           (double)s.rejected);
    metric(b, "circa_ingest_queued_requests", "gauge", "Validated requests waiting for a group.",
           (double)s.queued);
    histogram(b, "circa_ingest_batch_events", "Events per group-commit transaction.",
              s.group_events_hist, 0, 1);
    histogram(b, "circa_ingest_commit_seconds", "Latency of group-commit transactions.",
              s.commit_ms_hist, s.commit_ms_sum / 1000.0, 0.001);
}

static void render_pool(app_t *app, buf_t *b)
{
    store_stats_t s;
    store_stats(app->store, &s);
    metric(b, "circa_db_connections", "gauge", "PostgreSQL connections in the pool.",
           s.connections);
    metric(b, "circa_db_connections_ready", "gauge", "Pool connections ready for work.", s.ready);
    metric(b, "circa_db_transactions_queued", "gauge", "Transactions waiting for a connection.",
           (double)s.queued);
    metric(b, "circa_db_transactions_in_flight", "gauge", "Transactions sent, not yet answered.",
           (double)s.in_flight);
    metric(b, "circa_db_reconnects_total", "counter", "Reconnections to PostgreSQL.",
           (double)s.reconnects);
}

static void prometheus(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "# HELP circa_build_info The running circad's version.\n"
                 "# TYPE circa_build_info gauge\ncirca_build_info{version=\"" CIRCA_VERSION "\"} 1\n");
    metric(&b, "circa_up", "gauge", "1 while circad runs.", 1);
    metric(&b, "circa_uptime_seconds", "gauge", "Seconds since circad started.",
           (double)(app_now_us() - app->started_us) / 1e6);
    metric(&b, "circa_http_connections", "gauge", "Open client connections.",
           (double)http_server_connections(app->http));
    stats_render(app->stats, &b);
    render_ingest(app, &b);
    render_pool(app, &b);
    adapters_metrics(app, &b);   /* connected, messages, spool depth, dead letters */
    size_t len = b.len;
    http_respond_owned(req, 200, "text/plain; version=0.0.4", buf_steal(&b), len, NULL);
}

const store_stmt_t api_ops_stmts[] = {
    /* Seqs are consecutive from 1, so the head's seq is the number of events. */
    {"ops_status", "SELECT head_seq, head_hash FROM circa_head($1)"},
    {NULL, NULL},
};

typedef struct {
    http_req_t *req;
    app_t *app;
    char tenant[65];
} status_t;

static void got_status(store_tx_t *tx, store_status_t st, void *arg)
{
    status_t *s = arg;
    http_req_t *req = s->req;
    if (st != STORE_OK) {
        free(s);
        api_store_failed(req, tx, st);
        return;
    }
    const PGresult *r = store_tx_result(tx, 0);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "version", CIRCA_VERSION);
    cJSON_AddStringToObject(out, "tenant", s->tenant);
    cJSON_AddNumberToObject(out, "uptime_s", (double)(app_now_us() - s->app->started_us) / 1e6);
    if (PQntuples(r) == 1) {
        double seq = strtod(PQgetvalue(r, 0, 0), NULL);
        cJSON_AddNumberToObject(out, "events", seq);
        cJSON *head = cJSON_AddObjectToObject(out, "head");
        cJSON_AddNumberToObject(head, "seq", seq);
        cJSON_AddStringToObject(head, "block", PQgetvalue(r, 0, 1));
    }
    free(s);
    api_send_json(req, 200, out, NULL);
}

/* The caller's tenant at a glance: version, uptime, events stored, ledger head. */
static void status(app_t *app, http_req_t *req, const router_match_t *m,
                   const auth_principal_t *who)
{
    status_t *s = xmalloc(sizeof *s);
    s->req = req;
    s->app = app;
    snprintf(s->tenant, sizeof s->tenant, "%s", who->tenant);
    const char *p[1] = {who->tenant};
    store_tx_t *tx = store_tx_new(app->store, got_status, s);
    store_tx_exec(tx, "ops_status", 1, p, NULL, NULL);
    store_tx_submit(tx);
}

void api_ops_register(app_t *app)
{
    api_route(app, "GET", "/v1/status", AUTH_READ, status);
    api_route(app, "GET", "/healthz", AUTH_PUBLIC, healthz);
    api_route(app, "GET", "/readyz", AUTH_PUBLIC, readyz);
    api_route(app, "GET", "/metrics", AUTH_PUBLIC, prometheus);
}

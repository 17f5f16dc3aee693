/* main — circad: configuration, start-up order, signals and an orderly stop. */
#include "api.h"
#include "api_events.h"
#include "api_ops.h"
#include "api_md.h"
#include "api_openapi.h"
#include "metrics.h"
#include "api_epcis.h"
#include "api_reports.h"
#include "adapters.h"
#include "plm.h"
#include "schedule.h"
#include "app.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "ingest.h"
#include "log.h"
#include "notify.h"
#include "stats.h"
#include "tenants.h"
#include "version.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    app_t app;
    uv_signal_t sigint, sigterm, sighup;
    int stopping;
    const store_stmt_t *stmts;
} daemon_t;

/* Every module that owns routes or statements: registered in this order. */
static const struct {
    void (*reg)(app_t *);
    const store_stmt_t *stmts;
} modules[] = {
    {NULL, auth_stmts},
    {NULL, tenants_stmts},
    {NULL, ingest_stmts},
    {api_ops_register, api_ops_stmts},
    {api_events_register, api_events_stmts},
    {api_md_register, api_md_stmts},
    {api_epcis_register, api_epcis_stmts},
    {api_openapi_register, NULL},
    {metrics_register, metrics_stmts},
    {api_reports_register, api_reports_stmts},
    {api_adapters_register, api_adapters_stmts},
    {plm_register, plm_stmts},
    {schedule_register, schedule_stmts},
};
#define NMODULES (sizeof modules / sizeof modules[0])

/* Every module's named statements, prepared on each pool connection. */
static const store_stmt_t *all_statements(void)
{
    size_t n = 0;
    for (size_t m = 0; m < NMODULES; m++)
        for (const store_stmt_t *s = modules[m].stmts; s && s->name; s++) n++;
    store_stmt_t *all = xcalloc(n + 1, sizeof *all);
    n = 0;
    for (size_t m = 0; m < NMODULES; m++)
        for (const store_stmt_t *s = modules[m].stmts; s && s->name; s++) all[n++] = *s;
    return all;
}

static void observe(const char *route, int status, double latency_ms, void *ud)
{
    stats_request(((app_t *)ud)->stats, route, status, latency_ms);
}

static void on_request(http_req_t *req, void *ud)
{
    app_t *app = ud;
    router_dispatch(app->router, req);
}

static void close_signal(uv_signal_t *s)
{
    uv_signal_stop(s);
    uv_close((uv_handle_t *)s, NULL);
}

static void store_closed(void *arg)
{
    daemon_t *d = arg;
    close_signal(&d->sigint);
    close_signal(&d->sigterm);
    close_signal(&d->sighup);
    log_msg(LOG_INFO, "stopped");
}

static void schedule_stopped(void *arg)
{
    daemon_t *d = arg;
    store_close(d->app.store, store_closed, d);
}

static void adapters_stopped(void *arg)
{
    daemon_t *d = arg;
    schedule_stop(&d->app, schedule_stopped, d);
}

/* Stop order: no new requests, then the services that still write through the store, then
 * the store itself once their transactions are done. */
static void http_stopped(void *arg)
{
    daemon_t *d = arg;
    d->app.http = NULL;
    adapters_stop(&d->app, adapters_stopped, d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    daemon_t *d = s->data;
    if (signum == SIGHUP) {
        log_msg(LOG_INFO, "SIGHUP: reloading adapter configuration, forgetting cached API keys");
        auth_flush(d->app.auth);
        adapters_reload(&d->app);
        return;
    }
    if (d->stopping) return;
    d->stopping = 1;
    log_msg(LOG_INFO, "stopping on %s: finishing requests in flight", strsignal(signum));
    notify_send("STOPPING=1");
    http_server_stop(d->app.http, http_stopped, d);
}

static void watch_signal(daemon_t *d, uv_signal_t *s, int signum)
{
    uv_signal_init(d->app.loop, s);
    s->data = d;
    uv_signal_start(s, on_signal, signum);
}

static int start(daemon_t *d)
{
    app_t *app = &d->app;
    char err[512];
    d->stmts = all_statements();
    store_config_t sc = {app->cfg.database_url, app->cfg.db_connections, 8, 100, 5000, d->stmts};
    if (store_open(app->loop, &sc, &app->store, err, sizeof err)) {
        log_msg(LOG_ERROR, "database configuration: %s", err);
        return -1;
    }
    app->auth = auth_new(app->loop, app->store);
    app->tenants = tenants_new(app->store);
    app->ingest = ingest_new(app);
    app->stats = stats_new();
    app->router = router_new();
    for (size_t m = 0; m < NMODULES; m++)
        if (modules[m].reg) modules[m].reg(app);
    http_limits_t lim;
    http_limits_default(&lim);
    lim.max_body_bytes = app->cfg.max_body;
    if (http_server_start(app->loop, app->cfg.listen_host, app->cfg.listen_port, &lim, on_request,
                          app, &app->http, err, sizeof err)) {
        log_msg(LOG_ERROR, "cannot listen on %s:%d: %s", app->cfg.listen_host,
                app->cfg.listen_port, err);
        return -1;
    }
    http_server_observe(app->http, observe, app);
    if (adapters_start(app)) return -1;
    if (schedule_start(app)) return -1;
    watch_signal(d, &d->sigint, SIGINT);
    watch_signal(d, &d->sigterm, SIGTERM);
    watch_signal(d, &d->sighup, SIGHUP);
    log_msg(LOG_INFO, "circad %s listening on http://%s:%d", CIRCA_VERSION, app->cfg.listen_host,
            http_server_port(app->http));
    /* Ready means accepting connections; the database may still be coming (see /readyz). */
    if (notify_send("READY=1") < 0) log_msg(LOG_WARN, "sd_notify READY failed: %s", strerror(errno));
    return 0;
}

static void finish(daemon_t *d)
{
    app_t *app = &d->app;
    router_free(app->router);
    api_free_routes(app);
    ingest_free(app->ingest);
    tenants_free(app->tenants);
    auth_free(app->auth);
    stats_free(app->stats);
    free((void *)d->stmts);
    free(app->cfg.database_url);
}

int main(int argc, char **argv)
{
    static daemon_t d;
    char err[1200];
    int rc = config_load_all(&d.app.cfg, argc, argv, err, sizeof err);
    if (rc < 0) return fprintf(stderr, "circad: %s\n", err), 2;
    if (rc > 0) return 0;
    signal(SIGPIPE, SIG_IGN);
    d.app.loop = uv_default_loop();
    d.app.started_us = app_now_us();
    if (start(&d)) return 1;
    uv_run(d.app.loop, UV_RUN_DEFAULT);
    finish(&d);
    return uv_loop_close(d.app.loop) == 0 ? 0 : 1;
}

/* main — circad: configuration, start-up order, signals and an orderly stop. */
#include "api.h"
#include "api_events.h"
#include "api_ops.h"
#include "app.h"
#include "auth.h"
#include "buf.h"
#include "dbconf.h"
#include "ingest.h"
#include "log.h"
#include "stats.h"
#include "tenants.h"
#include "version.h"

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

static const char usage[] =
    "usage: circad [--help] [--version]\n"
    "Ingests material-flow events over HTTP into the circa ledger in PostgreSQL.\n"
    "Configured through the environment:\n"
    "  CIRCA_LISTEN          address:port to listen on (127.0.0.1:8080)\n"
    "  DATABASE_URL          libpq connection string (default: the private cluster)\n"
    "  CIRCA_DATA_DIR        private cluster and data (./var)\n"
    "  CIRCA_PG_PORT         private cluster's port (54329)\n"
    "  CIRCA_LOG             debug|info|warn|error (info)\n"
    "  CIRCA_LOG_FORMAT      json|text (json)\n"
    "  CIRCA_MAX_BODY        request body limit in bytes (8388608)\n"
    "  CIRCA_DB_CONNECTIONS  PostgreSQL connections in the pool (4)\n";

/* Reads an integer setting; a bad value is one line naming the variable and exit status 2. */
static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < min || x > max) {
        fprintf(stderr, "circad: %s=%s is not a whole number from %ld to %ld\n", name, v, min, max);
        exit(2);
    }
    return x;
}

static void config_load(app_config_t *c)
{
    const char *listen = getenv("CIRCA_LISTEN");
    if (!listen || !*listen) listen = "127.0.0.1:8080";
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || *end || port < 0 || port > 65535 || colon - listen >= (long)sizeof c->listen_host) {
        fprintf(stderr, "circad: CIRCA_LISTEN=%s is not address:port\n", listen);
        exit(2);
    }
    snprintf(c->listen_host, sizeof c->listen_host, "%.*s", (int)(colon - listen), listen);
    c->listen_port = (int)port;
    const char *data = getenv("CIRCA_DATA_DIR");
    snprintf(c->data_dir, sizeof c->data_dir, "%s", data && *data ? data : "./var");
    c->max_body = (size_t)env_long("CIRCA_MAX_BODY", 8L << 20, 1024, 1L << 30);
    c->db_connections = (int)env_long("CIRCA_DB_CONNECTIONS", 4, 1, 64);
    char err[512];
    c->database_url = dbconf_conninfo(err, sizeof err);
    if (!c->database_url) {
        fprintf(stderr, "circad: %s\n", err);
        exit(2);
    }
    if (log_init(getenv("CIRCA_LOG") ? getenv("CIRCA_LOG") : "info",
                 getenv("CIRCA_LOG_FORMAT") ? getenv("CIRCA_LOG_FORMAT") : "json")) {
        fprintf(stderr, "circad: CIRCA_LOG must be debug|info|warn|error and CIRCA_LOG_FORMAT "
                        "json|text\n");
        exit(2);
    }
}

/* Modules being written in parallel are referenced weakly until they have landed, so the
 * daemon builds with or without them. */
#define WEAK __attribute__((weak))
extern void api_md_register(app_t *) WEAK;
extern const store_stmt_t api_md_stmts[] WEAK;
extern void api_epcis_register(app_t *) WEAK;
extern const store_stmt_t api_epcis_stmts[] WEAK;
extern void api_openapi_register(app_t *) WEAK;
extern void metrics_register(app_t *) WEAK;
extern const store_stmt_t metrics_stmts[] WEAK;
extern void api_reports_register(app_t *) WEAK;
extern const store_stmt_t api_reports_stmts[] WEAK;
extern void api_adapters_register(app_t *) WEAK;
extern const store_stmt_t api_adapters_stmts[] WEAK;

/* Background services with a life of their own (adapters, scheduled reports): started after
 * the routes, stopped after the HTTP server and before the store. stop calls done once. */
extern int adapters_start(app_t *) WEAK;
extern void adapters_stop(app_t *, void (*done)(void *), void *) WEAK;
extern void adapters_reload(app_t *) WEAK;
extern int schedule_start(app_t *) WEAK;
extern void schedule_stop(app_t *, void (*done)(void *), void *) WEAK;

/* Every module that owns routes or statements: registered in this order. */
static const struct {
    void (*reg)(app_t *);
    const store_stmt_t *stmts;
} modules[] = {
    {NULL, auth_stmts},
    {NULL, tenants_stmts},
    {NULL, ingest_stmts},
    {api_ops_register, NULL},
    {api_events_register, api_events_stmts},
    {api_md_register, api_md_stmts},
    {api_epcis_register, api_epcis_stmts},
    {api_openapi_register, NULL},
    {metrics_register, metrics_stmts},
    {api_reports_register, api_reports_stmts},
    {api_adapters_register, api_adapters_stmts},
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
    if (schedule_stop) schedule_stop(&d->app, schedule_stopped, d);
    else schedule_stopped(d);
}

/* Stop order: no new requests, then the services that still write through the store, then
 * the store itself once their transactions are done. */
static void http_stopped(void *arg)
{
    daemon_t *d = arg;
    d->app.http = NULL;
    if (adapters_stop) adapters_stop(&d->app, adapters_stopped, d);
    else adapters_stopped(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    daemon_t *d = s->data;
    if (signum == SIGHUP) {
        log_msg(LOG_INFO, "SIGHUP: reloading adapter configuration, forgetting cached API keys");
        auth_flush(d->app.auth);
        if (adapters_reload) adapters_reload(&d->app);
        return;
    }
    if (d->stopping) return;
    d->stopping = 1;
    log_msg(LOG_INFO, "stopping on %s: finishing requests in flight", strsignal(signum));
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
    if (adapters_start && adapters_start(app)) return -1;
    if (schedule_start && schedule_start(app)) return -1;
    watch_signal(d, &d->sigint, SIGINT);
    watch_signal(d, &d->sigterm, SIGTERM);
    watch_signal(d, &d->sighup, SIGHUP);
    log_msg(LOG_INFO, "circad %s listening on http://%s:%d", CIRCA_VERSION, app->cfg.listen_host,
            http_server_port(app->http));
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
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) return fputs(usage, stdout), 0;
        if (strcmp(argv[i], "--version") == 0) return puts("circad " CIRCA_VERSION), 0;
        fprintf(stderr, "circad: unknown option %s (see --help)\n", argv[i]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static daemon_t d;
    config_load(&d.app.cfg);
    d.app.loop = uv_default_loop();
    d.app.started_us = app_now_us();
    if (start(&d)) return 1;
    uv_run(d.app.loop, UV_RUN_DEFAULT);
    finish(&d);
    return uv_loop_close(d.app.loop) == 0 ? 0 : 1;
}

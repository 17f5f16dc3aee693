/* app — the daemon's shared context: one per circad process, owned by main. Handlers and
 * modules reach each other through it. */
#ifndef CIRCA_APP_H
#define CIRCA_APP_H
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "http.h"
#include "router.h"
#include "store.h"

typedef struct tenants tenants_t;
typedef struct ingest ingest_t;
typedef struct stats stats_t;

typedef struct {
    char listen_host[64];
    int listen_port;
    char *database_url;
    char data_dir[1024];
    size_t max_body;
    int db_connections;
} app_config_t;

typedef struct app {
    uv_loop_t *loop;
    app_config_t cfg;
    store_t *store;
    http_server_t *http;
    router_t *router;
    auth_t *auth;
    tenants_t *tenants;
    ingest_t *ingest;
    stats_t *stats;
    struct route *routes;     /* api_route's list */
    int64_t started_us;
} app_t;

/* Wall clock in Unix microseconds. */
int64_t app_now_us(void);

#endif

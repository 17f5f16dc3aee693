/* tenants — per-tenant state inside one circad: the chain head, the tenant's settings and the
 * master-data cache that event validation reads. Loaded lazily from PostgreSQL in one
 * transaction and refreshed when stale. */
#ifndef CIRCA_TENANTS_H
#define CIRCA_TENANTS_H
#include <stdint.h>

#include "event.h"
#include "store.h"
#include "strmap.h"

typedef struct tenants tenants_t;

#define TENANTS_MD_MAX_AGE_MS 60000   /* master data reloads at least this often */
#define TENANTS_MD_RETRY_MS 500       /* a lookup miss reloads if the cache is older than this */

typedef struct tenant_waiter tenant_waiter_t;

/* One tenant's state; owned by tenants_t, alive until tenants_free. */
typedef struct tenant {
    char id[65];
    /* chain head; head_known is 0 until loaded, and again after an unknown commit outcome */
    int head_known;
    int64_t head_seq;
    char head_hash[65];
    /* settings */
    int lenient;
    double tolerance;
    char time_zone[64];
    int citus;            /* the database is a Citus coordinator: ingest writes no COPY */
    /* master data, for event validation */
    strmap_t sites;       /* code -> party code (char *) */
    strmap_t parties;     /* code -> (void *)1 */
    strmap_t materials;   /* code -> double * density (NAN: none) */
    strmap_t products;    /* code -> tenants_product_t * */
    int md_loaded;
    int md_dirty;
    int64_t md_loaded_us;
    unsigned md_misses;   /* lookups that found nothing since the last load */
    int loading;
    tenant_waiter_t *waiters;
    void *ingest;         /* the ingest module's per-tenant queue state */
} tenant_t;

typedef struct {
    double mass_kg;       /* NAN when unknown */
    char *material;       /* the single material of its bill, or NULL */
} tenants_product_t;

/* Called when the tenant is ready (st == STORE_OK) or could not be loaded (t == NULL when the
 * tenant does not exist). */
typedef void (*tenants_cb)(tenant_t *t, store_status_t st, void *arg);

tenants_t *tenants_new(store_t *store);      /* freed with tenants_free */
void tenants_free(tenants_t *ts);
/* Loads what is missing or stale (head, settings, master data), then calls cb; maybe
 * synchronously when nothing needs loading. force_md reloads master data if the cache is
 * older than TENANTS_MD_RETRY_MS. */
void tenants_ensure(tenants_t *ts, const char *tenant_id, int force_md, tenants_cb cb, void *arg);
/* Fills ctx's lookups for validating events of t for a caller (party NULL for admin). */
void tenants_event_ctx(tenant_t *t, const char *caller_party, event_ctx_t *ctx);
/* Master data changed (by this process): the tenant's cache reloads before its next use. */
void tenants_md_changed(tenants_t *ts, const char *tenant_id);
/* Every tenant state, for /metrics and shutdown. */
void tenants_each(tenants_t *ts, void (*fn)(tenant_t *t, void *arg), void *arg);

extern const store_stmt_t tenants_stmts[];

#endif

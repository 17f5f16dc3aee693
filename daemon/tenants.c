/* tenants — lazily loaded per-tenant state: chain head, settings, master-data cache. */
#include "tenants.h"
#include "app.h"
#include "buf.h"
#include "log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const store_stmt_t tenants_stmts[] = {
    {"tenant_head",
     "SELECT head_seq, head_hash, mode, mass_balance_tolerance, time_zone FROM circa_head($1)"},
    /* Is the database a Citus coordinator (tenant_t.citus)? Not a column of tenant_head: Citus
     * delegates that statement to a worker, where it lost its parameter. */
    {"tenant_citus", "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"},
    {"md_sites", "SELECT code, party FROM site WHERE tenant_id = $1"},
    {"md_parties", "SELECT code FROM party WHERE tenant_id = $1"},
    {"md_materials", "SELECT code, density_kg_m3 FROM material WHERE tenant_id = $1"},
    {"md_products",
     "SELECT code, mass_kg, CASE WHEN jsonb_typeof(doc->'bom') = 'array' AND "
     "jsonb_array_length(doc->'bom') = 1 THEN doc->'bom'->0->>'material' END "
     "FROM product WHERE tenant_id = $1"},
    {NULL, NULL},
};

struct tenant_waiter {
    tenants_cb cb;
    void *arg;
    tenant_waiter_t *next;
};

struct tenants {
    store_t *store;
    strmap_t by_id;   /* id -> tenant_t */
};

typedef struct {
    tenants_t *ts;
    char id[65];
    int with_md;
} load_t;

tenants_t *tenants_new(store_t *store)
{
    tenants_t *ts = xcalloc(1, sizeof *ts);
    ts->store = store;
    return ts;
}

static void free_val(const char *key, void *val, void *arg)
{
    free(val);
}

static void free_product(const char *key, void *val, void *arg)
{
    tenants_product_t *p = val;
    free(p->material);
    free(p);
}

static void clear_md(tenant_t *t)
{
    strmap_each(&t->sites, free_val, NULL);
    strmap_each(&t->materials, free_val, NULL);
    strmap_each(&t->products, free_product, NULL);
    strmap_free(&t->sites);
    strmap_free(&t->parties);
    strmap_free(&t->materials);
    strmap_free(&t->products);
}

static void free_tenant(const char *key, void *val, void *arg)
{
    tenant_t *t = val;
    clear_md(t);
    free(t);
}

void tenants_free(tenants_t *ts)
{
    if (!ts) return;
    strmap_each(&ts->by_id, free_tenant, NULL);
    strmap_free(&ts->by_id);
    free(ts);
}

static tenant_t *get_or_add(tenants_t *ts, const char *id)
{
    tenant_t *t = strmap_get(&ts->by_id, id);
    if (t) return t;
    t = xcalloc(1, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    strmap_put(&ts->by_id, id, t);
    return t;
}

static int md_stale(const tenant_t *t, int force_md, int64_t now)
{
    if (!t->md_loaded || t->md_dirty) return 1;
    int64_t age_ms = (now - t->md_loaded_us) / 1000;
    if (force_md && age_ms > TENANTS_MD_RETRY_MS) return 1;
    return age_ms > TENANTS_MD_MAX_AGE_MS;
}

static void fill_head(tenant_t *t, const PGresult *r)
{
    t->head_seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(t->head_hash, sizeof t->head_hash, "%s", PQgetvalue(r, 0, 1));
    t->lenient = strcmp(PQgetvalue(r, 0, 2), "lenient") == 0;
    t->tolerance = strtod(PQgetvalue(r, 0, 3), NULL);
    snprintf(t->time_zone, sizeof t->time_zone, "%s", PQgetvalue(r, 0, 4));
    t->head_known = 1;
}

static double parse_opt_double(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

/* Results of start_load: 0 tenant_head, 1 tenant_citus, then the master data. */
enum { LOAD_HEAD, LOAD_CITUS, LOAD_SITES, LOAD_PARTIES, LOAD_MATERIALS, LOAD_PRODUCTS };

static void fill_md(tenant_t *t, store_tx_t *tx)
{
    clear_md(t);
    const PGresult *r = store_tx_result(tx, LOAD_SITES);
    for (int i = 0; i < PQntuples(r); i++)
        strmap_put(&t->sites, PQgetvalue(r, i, 0), xstrdup(PQgetvalue(r, i, 1)));
    r = store_tx_result(tx, LOAD_PARTIES);
    for (int i = 0; i < PQntuples(r); i++) strmap_put(&t->parties, PQgetvalue(r, i, 0), t);
    r = store_tx_result(tx, LOAD_MATERIALS);
    for (int i = 0; i < PQntuples(r); i++) {
        double *d = xmalloc(sizeof *d);
        *d = parse_opt_double(r, i, 1);
        strmap_put(&t->materials, PQgetvalue(r, i, 0), d);
    }
    r = store_tx_result(tx, LOAD_PRODUCTS);
    for (int i = 0; i < PQntuples(r); i++) {
        tenants_product_t *p = xcalloc(1, sizeof *p);
        p->mass_kg = parse_opt_double(r, i, 1);
        if (!PQgetisnull(r, i, 2)) p->material = xstrdup(PQgetvalue(r, i, 2));
        strmap_put(&t->products, PQgetvalue(r, i, 0), p);
    }
    t->md_loaded = 1;
    t->md_dirty = 0;
    t->md_misses = 0;
    t->md_loaded_us = app_now_us();
}

static void loaded(store_tx_t *tx, store_status_t st, void *arg)
{
    load_t *l = arg;
    tenant_t *t = strmap_get(&l->ts->by_id, l->id);
    int exists = 0;
    if (st == STORE_OK) {
        const PGresult *head = store_tx_result(tx, LOAD_HEAD);
        exists = PQntuples(head) == 1;
        if (exists) fill_head(t, head);
        t->citus = strcmp(PQgetvalue(store_tx_result(tx, LOAD_CITUS), 0, 0), "t") == 0;
        if (exists && l->with_md) fill_md(t, tx);
    }
    t->loading = 0;
    tenant_waiter_t *w = t->waiters;
    t->waiters = NULL;
    for (tenant_waiter_t *next; w; w = next) {
        next = w->next;
        w->cb(st == STORE_OK && !exists ? NULL : t, st, w->arg);
        free(w);
    }
    free(l);
}

static void start_load(tenants_t *ts, tenant_t *t, int with_md)
{
    load_t *l = xcalloc(1, sizeof *l);
    l->ts = ts;
    l->with_md = with_md;
    snprintf(l->id, sizeof l->id, "%s", t->id);
    t->loading = 1;
    const char *p[1] = {t->id};
    store_tx_t *tx = store_tx_new(ts->store, loaded, l);
    store_tx_exec(tx, "tenant_head", 1, p, NULL, NULL);
    store_tx_exec(tx, "tenant_citus", 0, NULL, NULL, NULL);
    if (with_md) {
        store_tx_exec(tx, "md_sites", 1, p, NULL, NULL);
        store_tx_exec(tx, "md_parties", 1, p, NULL, NULL);
        store_tx_exec(tx, "md_materials", 1, p, NULL, NULL);
        store_tx_exec(tx, "md_products", 1, p, NULL, NULL);
    }
    store_tx_submit(tx);
}

void tenants_ensure(tenants_t *ts, const char *tenant_id, int force_md, tenants_cb cb, void *arg)
{
    tenant_t *t = get_or_add(ts, tenant_id);
    int need_md = md_stale(t, force_md, app_now_us());
    if (!t->loading && t->head_known && !need_md) {
        cb(t, STORE_OK, arg);
        return;
    }
    tenant_waiter_t *w = xmalloc(sizeof *w);
    *w = (tenant_waiter_t){cb, arg, t->waiters};
    t->waiters = w;
    /* A load already under way answers every waiter, though maybe with older master data. */
    if (!t->loading) start_load(ts, t, need_md);
}

void tenants_md_changed(tenants_t *ts, const char *tenant_id)
{
    tenant_t *t = strmap_get(&ts->by_id, tenant_id);
    if (t) t->md_dirty = 1;
}

typedef struct {
    void (*fn)(tenant_t *t, void *arg);
    void *arg;
} each_t;

static void each_one(const char *key, void *val, void *arg)
{
    each_t *e = arg;
    e->fn(val, e->arg);
}

void tenants_each(tenants_t *ts, void (*fn)(tenant_t *t, void *arg), void *arg)
{
    each_t e = {fn, arg};
    strmap_each(&ts->by_id, each_one, &e);
}

/* Lookups for event validation; md is the tenant_t. A miss is counted so the caller can
 * reload master data that another process may have added. */
static int site_party(void *md, const char *site, const char **party)
{
    tenant_t *t = md;
    char *p = strmap_get(&t->sites, site);
    if (!p) t->md_misses++;
    if (p && party) *party = p;
    return p != NULL;
}

static int party_exists(void *md, const char *party)
{
    tenant_t *t = md;
    int found = strmap_get(&t->parties, party) != NULL;
    if (!found) t->md_misses++;
    return found;
}

static int material(void *md, const char *code, double *density)
{
    tenant_t *t = md;
    double *d = strmap_get(&t->materials, code);
    if (!d) t->md_misses++;
    if (d && density) *density = *d;
    return d != NULL;
}

static int product(void *md, const char *code, double *mass_kg, const char **mat)
{
    tenant_t *t = md;
    tenants_product_t *p = strmap_get(&t->products, code);
    if (!p) return 0;   /* products may be unknown (PLM lag): not a miss worth a reload */
    if (mass_kg) *mass_kg = p->mass_kg;
    if (mat) *mat = p->material;
    return 1;
}

void tenants_event_ctx(tenant_t *t, const char *caller_party, event_ctx_t *ctx)
{
    ctx->now_us = app_now_us();
    ctx->caller_party = caller_party;
    ctx->md = t;
    ctx->site_party = site_party;
    ctx->party_exists = party_exists;
    ctx->material = material;
    ctx->product = product;
}

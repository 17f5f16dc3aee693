/* auth — bearer keys checked against api_key, cached for AUTH_CACHE_TTL_MS. */
#include "auth.h"
#include "apikey.h"
#include "app.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "problem.h"
#include "ratelimit.h"
#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const store_stmt_t auth_stmts[] = {
    /* Touching last_used_at here costs one write per key per cache period, not per request. */
    {"auth_key",
     "UPDATE api_key SET last_used_at = now() WHERE key_id = $1 "
     "RETURNING tenant_id, coalesce(party, ''), role, secret_hash, revoked_at IS NOT NULL, "
     "coalesce((extract(epoch FROM expires_at AT TIME ZONE 'UTC') * 1000000)::bigint, 0)"},
    {NULL, NULL},
};

typedef struct waiter {
    http_req_t *req;
    auth_role_t need;
    auth_cb cb;
    void *arg;
    uint8_t hash[32];
    struct waiter *next;
} waiter_t;

typedef enum { ENTRY_LOADING, ENTRY_FOUND, ENTRY_MISSING } entry_state_t;

typedef struct {
    entry_state_t state;
    auth_principal_t who;
    uint8_t hash[32];
    int revoked;
    int64_t expires_us;      /* 0: never */
    int64_t loaded_us;
    waiter_t *waiters;       /* while LOADING */
} entry_t;

struct auth {
    uv_loop_t *loop;
    store_t *store;
    strmap_t keys;           /* key id -> entry_t */
    ratelimit_t *limit;      /* requests per key, after the key is known to be valid */
};

typedef struct {
    auth_t *a;
    char key_id[13];
} load_t;

auth_t *auth_new(uv_loop_t *loop, store_t *store)
{
    auth_t *a = xcalloc(1, sizeof *a);
    a->loop = loop;
    a->store = store;
    const config_t *c = config_current();
    a->limit = ratelimit_new(c->rate_limit, c->rate_burst, (size_t)c->rate_keys);
    return a;
}

static void expire_entry(const char *key, void *val, void *arg)
{
    entry_t *e = val;
    /* A LOADING entry stays: its query's callback finds it by key. */
    if (e->state != ENTRY_LOADING) e->loaded_us = 0;
}

void auth_flush(auth_t *a)
{
    strmap_each(&a->keys, expire_entry, NULL);
}

static void free_entry(const char *key, void *val, void *arg)
{
    free(val);
}

/* Called after the store is closed, when no key lookup is in flight any more. */
void auth_free(auth_t *a)
{
    if (!a) return;
    strmap_each(&a->keys, free_entry, NULL);
    strmap_free(&a->keys);
    ratelimit_free(a->limit);
    free(a);
}

int auth_allows(auth_role_t have, auth_role_t need)
{
    if (need == AUTH_PUBLIC || have == AUTH_ADMIN) return 1;
    if (need == AUTH_INGEST) return have == AUTH_INGEST;
    if (need == AUTH_READ) return have == AUTH_READ || have == AUTH_REPORT;
    if (need == AUTH_REPORT) return have == AUTH_REPORT;
    return 0;
}

const char *auth_role_name(auth_role_t r)
{
    static const char *names[] = {"public", "ingest", "read", "report", "admin"};
    return names[r];
}

static auth_role_t role_parse(const char *s)
{
    if (strcmp(s, "ingest") == 0) return AUTH_INGEST;
    if (strcmp(s, "read") == 0) return AUTH_READ;
    if (strcmp(s, "report") == 0) return AUTH_REPORT;
    if (strcmp(s, "admin") == 0) return AUTH_ADMIN;
    return AUTH_PUBLIC;
}

static void unauthorized(http_req_t *req, const char *why)
{
    problem_send(req, 401, "unauthorized", "Unauthorized", "WWW-Authenticate: Bearer\r\n", "%s",
                 why);
}

/* 1 when the key is over its rate: answered 429 with Retry-After. */
static int over_rate(auth_t *a, const entry_t *e, http_req_t *req)
{
    double retry;
    if (!ratelimit_take(a->limit, e->who.key_id, (double)uv_now(a->loop) / 1000.0, &retry))
        return 0;
    long s = ratelimit_retry_after_header(retry);
    char hdr[48];
    snprintf(hdr, sizeof hdr, "Retry-After: %ld\r\n", s);
    problem_send(req, 429, "rate-limited", "Too many requests", hdr,
                 "this API key is over its rate limit; retry in %ld s", s);
    return 1;
}

/* Decides one request against a loaded entry; always ends in exactly one cb call. */
static void decide(auth_t *a, const entry_t *e, http_req_t *req, auth_role_t need,
                   const uint8_t hash[32], auth_cb cb, void *arg)
{
    const char *why = NULL;
    if (e->state != ENTRY_FOUND || !apikey_hash_equal(e->hash, hash)) why = "unknown API key";
    else if (e->revoked) why = "this API key has been revoked";
    else if (e->expires_us && e->expires_us <= app_now_us()) why = "this API key has expired";
    if (why) {
        unauthorized(req, why);
        cb(req, NULL, arg);
        return;
    }
    if (!auth_allows(e->who.role, need)) {
        problem_send(req, 403, "forbidden", "Forbidden", NULL,
                     "a key with role '%s' may not do this (needs '%s')",
                     auth_role_name(e->who.role), auth_role_name(need));
        cb(req, NULL, arg);
        return;
    }
    if (over_rate(a, e, req)) {
        cb(req, NULL, arg);
        return;
    }
    cb(req, &e->who, arg);
}

static void fill_entry(entry_t *e, const PGresult *r)
{
    e->state = ENTRY_MISSING;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) return;
    size_t hlen = 0;
    unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 3), &hlen);
    if (h && hlen == 32) {
        e->state = ENTRY_FOUND;
        memcpy(e->hash, h, 32);
        snprintf(e->who.tenant, sizeof e->who.tenant, "%s", PQgetvalue(r, 0, 0));
        snprintf(e->who.party, sizeof e->who.party, "%s", PQgetvalue(r, 0, 1));
        e->who.role = role_parse(PQgetvalue(r, 0, 2));
        e->revoked = PQgetvalue(r, 0, 4)[0] == 't';
        e->expires_us = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    }
    PQfreemem(h);
}

static void loaded(store_tx_t *tx, store_status_t st, void *arg)
{
    load_t *l = arg;
    entry_t *e = strmap_get(&l->a->keys, l->key_id);
    waiter_t *w = e ? e->waiters : NULL;
    if (e) e->waiters = NULL;
    if (e && st == STORE_OK) {
        fill_entry(e, store_tx_result(tx, 0));
        e->loaded_us = app_now_us();
    }
    for (waiter_t *next; w; w = next) {
        next = w->next;
        if (st == STORE_OK) {
            decide(l->a, e, w->req, w->need, w->hash, w->cb, w->arg);
        } else {
            problem_send(w->req, 503, "unavailable", "Database unavailable", "Retry-After: 1\r\n",
                         "the database cannot be reached to check the API key; retry shortly");
            w->cb(w->req, NULL, w->arg);
        }
        free(w);
    }
    if (e && st != STORE_OK) free(strmap_del(&l->a->keys, l->key_id));
    free(l);
}

static void start_load(auth_t *a, entry_t *e, const char *key_id)
{
    load_t *l = xmalloc(sizeof *l);
    l->a = a;
    snprintf(l->key_id, sizeof l->key_id, "%s", key_id);
    snprintf(e->who.key_id, sizeof e->who.key_id, "%s", key_id);   /* the rate limit's key */
    e->state = ENTRY_LOADING;
    store_tx_t *tx = store_tx_new(a->store, loaded, l);
    const char *params[1] = {key_id};
    store_tx_exec(tx, "auth_key", 1, params, NULL, NULL);
    store_tx_submit(tx);
}

static const char *bearer(http_req_t *req)
{
    const char *h = http_req_header(req, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return NULL;
    h += 7;
    while (*h == ' ') h++;
    return h;
}

void auth_require(auth_t *a, http_req_t *req, auth_role_t need, auth_cb cb, void *arg)
{
    char key_id[13];
    uint8_t hash[32];
    const char *token = bearer(req);
    if (!token || apikey_parse(token, key_id, hash) != 0) {
        unauthorized(req, token ? "malformed API key" : "send Authorization: Bearer <API key>");
        cb(req, NULL, arg);
        return;
    }
    entry_t *e = strmap_get(&a->keys, key_id);
    int64_t now = app_now_us();
    if (e && e->state != ENTRY_LOADING && now - e->loaded_us > AUTH_CACHE_TTL_MS * 1000LL) {
        free(strmap_del(&a->keys, key_id));
        e = NULL;
    }
    if (e && e->state != ENTRY_LOADING) {
        decide(a, e, req, need, hash, cb, arg);
        return;
    }
    if (!e) {
        e = xcalloc(1, sizeof *e);
        strmap_put(&a->keys, key_id, e);
        start_load(a, e, key_id);
    }
    waiter_t *w = xcalloc(1, sizeof *w);
    *w = (waiter_t){req, need, cb, arg, {0}, e->waiters};
    memcpy(w->hash, hash, 32);
    e->waiters = w;
}

/* auth — API keys: who is calling (tenant, party, role) and whether the role may do a thing.
 * Keys are looked up asynchronously and cached for a few seconds, so a revoked key stops
 * working within AUTH_CACHE_TTL_MS on every circad process. */
#ifndef CIRCA_AUTH_H
#define CIRCA_AUTH_H
#include "http.h"
#include "store.h"

#define AUTH_CACHE_TTL_MS 5000

typedef enum { AUTH_PUBLIC = 0, AUTH_INGEST, AUTH_READ, AUTH_REPORT, AUTH_ADMIN } auth_role_t;

typedef struct {
    char tenant[65];
    char party[65];          /* "" for a tenant-wide key */
    auth_role_t role;
    char key_id[13];
} auth_principal_t;

typedef struct auth auth_t;

/* Called once per auth_require. who is the caller when the key is valid and its role allows
 * `need`; NULL when auth_require has already answered the request (then only release arg). */
typedef void (*auth_cb)(http_req_t *req, const auth_principal_t *who, void *arg);

auth_t *auth_new(uv_loop_t *loop, store_t *store);   /* freed with auth_free */
void auth_free(auth_t *a);
/* Authenticates the request's bearer key and calls cb (maybe synchronously, from the cache).
 * On failure it first answers 401 (no, unknown, revoked or expired key), 403 (role lacks
 * `need`) or 503 (database unreachable) itself, then calls cb with who == NULL. */
void auth_require(auth_t *a, http_req_t *req, auth_role_t need, auth_cb cb, void *arg);
/* Does a key with role `have` allow what `need` requires? admin ⊇ report ⊇ read; ingest is
 * its own: it writes events and nothing else. */
int auth_allows(auth_role_t have, auth_role_t need);
const char *auth_role_name(auth_role_t r);
/* Forgets cached keys (SIGHUP, key revoked by this process). */
void auth_flush(auth_t *a);

extern const store_stmt_t auth_stmts[];

#endif

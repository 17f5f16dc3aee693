/* api — glue between routes and handlers: each route declares the role it needs, the key is
 * checked before the handler runs, and common answers (JSON, store failures) live here. */
#ifndef CIRCA_API_H
#define CIRCA_API_H
#include <cjson/cJSON.h>

#include "app.h"
#include "auth.h"
#include "buf.h"
#include "router.h"
#include "store.h"

/* A handler runs after authentication. m and who are valid until http_respond. */
typedef void (*api_fn)(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who);

/* Registers a route; need = AUTH_PUBLIC skips authentication (then who is NULL). */
void api_route(app_t *app, const char *method, const char *pattern, auth_role_t need, api_fn fn);

/* Frees what api_route allocated (at shutdown, after the router is gone). */
void api_free_routes(app_t *app);

/* Answers with a JSON body (application/json). api_send_json takes j and deletes it. */
void api_send_json(http_req_t *req, int status, cJSON *j, const char *extra_headers);
void api_send_buf(http_req_t *req, int status, buf_t *body, const char *extra_headers);

/* Parses a JSON request body; requires Content-Type application/json (or +json). On failure
 * answers 415 or 400 itself and returns NULL. The caller owns the result (cJSON_Delete). */
cJSON *api_json_body(http_req_t *req);

/* Answers a failed store transaction: 503 with Retry-After when the database is unreachable
 * or the outcome is unknown, 500 (logged with its SQLSTATE) otherwise. */
void api_store_failed(http_req_t *req, store_tx_t *tx, store_status_t st);

/* Master-data code rule: 1–64 chars of letters, digits, '-', '_', '.'. */
int api_valid_code(const char *s);

#endif

/* api_openapi — the OpenAPI document (generated from docs/openapi.yaml at build time) and the
 * router's own route list, which the conformance test compares with the document's paths. */
#include "api_openapi.h"
#include "api.h"
#include "problem.h"

#include <string.h>

/* Generated into build/gen/openapi_json.c from docs/openapi.yaml by the build. */
extern const char api_openapi_doc[];
extern const size_t api_openapi_doc_len;

static void get_document(app_t *app, http_req_t *req, const router_match_t *m,
                         const auth_principal_t *who)
{
    /* Static bytes, so no copy; clients may cache it for the life of the binary. */
    http_respond(req, 200, "application/json", api_openapi_doc, api_openapi_doc_len,
                 "Cache-Control: public, max-age=300\r\n");
}

static void add_route(const char *method, const char *pattern, void *arg)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "method", method);
    cJSON_AddStringToObject(r, "path", pattern);
    cJSON_AddItemToArray(arg, r);
}

/* Read at request time, not at registration: modules registered later are in it too. */
static void get_routes(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who)
{
    cJSON *out = cJSON_CreateObject();
    router_each(app->router, add_route, cJSON_AddArrayToObject(out, "routes"));
    api_send_json(req, 200, out, NULL);
}

void api_openapi_register(app_t *app)
{
    api_route(app, "GET", "/v1/openapi.json", AUTH_PUBLIC, get_document);
    api_route(app, "GET", "/v1/openapi/routes", AUTH_PUBLIC, get_routes);
}

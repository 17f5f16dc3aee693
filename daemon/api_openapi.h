/* api_openapi — serves circad's OpenAPI 3.1 document and the list of routes it registered. */
#ifndef CIRCA_API_OPENAPI_H
#define CIRCA_API_OPENAPI_H
#include "app.h"

/* GET /v1/openapi.json (the document built from docs/openapi.yaml) and GET /v1/openapi/routes
 * (every "METHOD pattern" of the router, so a build can be checked against its document).
 * Both public. */
void api_openapi_register(app_t *app);

#endif

/* api_events — POST /v1/events (ingest), GET /v1/events/{id} and GET /v1/events. */
#ifndef CIRCA_API_EVENTS_H
#define CIRCA_API_EVENTS_H
#include "app.h"

void api_events_register(app_t *app);
extern const store_stmt_t api_events_stmts[];

#endif

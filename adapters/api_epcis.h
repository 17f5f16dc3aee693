/* api_epcis — the GS1 EPCIS 2.0 REST binding subset: POST /epcis/capture (asynchronous capture
 * jobs through ingest), GET /epcis/capture/{id}, GET /epcis/events (EPCISQueryDocument). */
#ifndef CIRCA_API_EPCIS_H
#define CIRCA_API_EPCIS_H
#include "app.h"
#include "store.h"

/* Registers the three routes; main.c calls it (weakly referenced). */
void api_epcis_register(app_t *app);

/* Named statements of the routes; {NULL, NULL}-terminated. */
extern const store_stmt_t api_epcis_stmts[];

#endif

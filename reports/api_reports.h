/* api_reports — the report routes: POST /v1/reports generates a report (data read in one
 * statement on the loop, canonical JSON, hash, CSV and HTML made on a worker thread, the report
 * stored immutably), GET /v1/reports/{id}[.json|.csv|.html] serves it, GET /v1/reports lists. */
#ifndef CIRCA_API_REPORTS_H
#define CIRCA_API_REPORTS_H
#include "app.h"
#include "store.h"

/* Registers the routes (role report to generate, read to fetch and list). */
void api_reports_register(app_t *app);

/* Named statements the handlers use; {NULL, NULL}-terminated. */
extern const store_stmt_t api_reports_stmts[];

#endif

/* metrics — circularity metrics, Sankey flows, item lives, lot lineage, the product MCI and
 * tenant settings over HTTP; the arithmetic lives in schema/007_metrics.sql. */
#ifndef CIRCA_METRICS_H
#define CIRCA_METRICS_H
#include "app.h"
#include "store.h"

/* Registers GET /v1/metrics, /v1/flows, /v1/items/{id}/lifecycles, /v1/lots/{id}/trace,
 * /v1/products/{id}/mci and GET/PUT /v1/tenant. */
void metrics_register(app_t *app);

/* Named statements the handlers use; {NULL, NULL}-terminated. */
extern const store_stmt_t metrics_stmts[];

#endif

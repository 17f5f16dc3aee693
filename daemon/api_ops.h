/* api_ops — what operators and orchestrators call: /healthz, /readyz, /metrics. */
#ifndef CIRCA_API_OPS_H
#define CIRCA_API_OPS_H
#include "app.h"

void api_ops_register(app_t *app);
extern const store_stmt_t api_ops_stmts[];

#endif

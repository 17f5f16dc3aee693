/* api_md — the master-data REST API: parties, sites, materials and products (POST, GET list,
 * GET and PUT by code), validated here and kept with their history by schema/004. */
#ifndef CIRCA_API_MD_H
#define CIRCA_API_MD_H
#include "app.h"
#include "store.h"

/* Registers POST/GET /v1/{parties,sites,materials,products} and GET/PUT …/{code}. */
void api_md_register(app_t *app);

/* Named statements the handlers use; {NULL, NULL}-terminated. */
extern const store_stmt_t api_md_stmts[];

#endif

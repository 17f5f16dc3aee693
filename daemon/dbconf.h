/* dbconf — where PostgreSQL is: DATABASE_URL, else the private cluster under CIRCA_DATA_DIR. */
#ifndef CIRCA_DBCONF_H
#define CIRCA_DBCONF_H
#include <stddef.h>

/* A libpq connection string the caller frees, or NULL with the reason in err: DATABASE_URL
 * when set; otherwise host=<real path of $CIRCA_DATA_DIR/pg> port=<CIRCA_PG_PORT or 54329>
 * user=circa dbname=circa, as scripts/pg.sh sets the cluster up. */
char *dbconf_conninfo(char *err, size_t errlen);

#endif

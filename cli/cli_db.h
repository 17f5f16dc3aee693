/* cli_db — the CLI's blocking PostgreSQL connection and `circa migrate`. */
#ifndef CIRCA_CLI_DB_H
#define CIRCA_CLI_DB_H
#include <stddef.h>
#include <stdio.h>
#include <libpq-fe.h>

/* Exit codes every circa subcommand uses. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Connection string: DATABASE_URL, else the private cluster under CIRCA_DATA_DIR (default
 * ./var) as scripts/pg.sh computes it. Returns a malloc'd string (caller frees) or NULL with
 * err filled. */
char *cli_db_conninfo(char *err, size_t errlen);

/* Connects with cli_db_conninfo; notices below WARNING are silenced. Returns the connection
 * (caller PQfinish-es it) or NULL with err set to "cannot connect to PostgreSQL: …". */
PGconn *cli_db_connect(char *err, size_t errlen);

/* The first line of the connection's last error, for one-line messages. */
const char *cli_db_error(PGconn *db);

/* Schema directory: CIRCA_SCHEMA_DIR, else <dir of the executable>/../schema, else
 * /usr/share/circa/schema; the first that exists. Writes it into out. 0 or -1. */
int cli_db_schema_dir(char *out, size_t outlen);

/* Applies the NNN_*.sql files of dir not yet recorded in schema_version, in order, each in
 * its own transaction, under an advisory lock; prints one line per applied file to out.
 * Returns the number applied, or -1 with err set (a changed applied file is an error). */
int cli_db_migrate(PGconn *db, const char *dir, FILE *out, char *err, size_t errlen);

/* `circa migrate [--help]`: the subcommand. */
int cli_db_migrate_main(int argc, char **argv);

#endif

/* cli_db — finds and connects to PostgreSQL for the CLI, and applies schema migrations. */
#include "cli_db.h"
#include "dbconf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "buf.h"
#include "sqlsplit.h"

/* Any fixed number: every migrator takes the same lock, so two never interleave. */
#define MIGRATE_LOCK_KEY "7264382610"

char *cli_db_conninfo(char *err, size_t errlen)
{
    return dbconf_conninfo(err, errlen);
}

const char *cli_db_error(PGconn *db)
{
    static char line[512];
    const char *msg = PQerrorMessage(db);
    size_t n = strcspn(msg, "\n");
    if (n >= sizeof line) n = sizeof line - 1;
    memcpy(line, msg, n);
    line[n] = '\0';
    return line;
}

PGconn *cli_db_connect(char *err, size_t errlen)
{
    char why[512];
    char *ci = cli_db_conninfo(why, sizeof why);
    if (!ci) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", why);
        return NULL;
    }
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {ci, "circa", NULL};
    PGconn *db = PQconnectdbParams(keys, vals, 1);
    free(ci);
    if (PQstatus(db) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", cli_db_error(db));
        PQfinish(db);
        return NULL;
    }
    /* "relation already exists, skipping" and the like are not for the user. */
    PQclear(PQexec(db, "SET client_min_messages = warning"));
    return db;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int cli_db_schema_dir(char *out, size_t outlen)
{
    const char *env = getenv("CIRCA_SCHEMA_DIR");
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        snprintf(out, outlen, "%s/../schema", dirname(exe));
        if (is_dir(out)) return 0;
    }
    snprintf(out, outlen, "/usr/share/circa/schema");
    return is_dir(out) ? 0 : -1;
}

/* Migrations -------------------------------------------------------------------------------- */

typedef struct {
    long version;
    char *name;          /* file name, e.g. "001_core.sql" */
    char sha256[65];     /* hex of the file's bytes */
    buf_t sql;
} migration_t;

/* "NNN_anything.sql" */
static int migration_filter(const struct dirent *d)
{
    const char *s = d->d_name;
    size_t len = strlen(s), i = 0;
    while (isdigit((unsigned char)s[i])) i++;
    return i > 0 && s[i] == '_' && len > 4 && strcmp(s + len - 4, ".sql") == 0;
}

static int read_file(const char *path, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(out, chunk, n);
    int bad = ferror(f);
    fclose(f);
    return bad ? -1 : 0;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t h[32];
    SHA256(p, n, h);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[64] = '\0';
}

static void free_migrations(migration_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        free(m[i].name);
        buf_free(&m[i].sql);
    }
    free(m);
}

/* Loads every migration file of dir, sorted by version. Returns the count or -1. */
static int load_migrations(const char *dir, migration_t **out, char *err, size_t errlen)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, migration_filter, versionsort);
    if (n < 0) {
        snprintf(err, errlen, "cannot read schema directory %s: %s", dir, strerror(errno));
        return -1;
    }
    migration_t *m = xcalloc((size_t)n, sizeof *m);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        m[i].name = xstrdup(ents[i]->d_name);
        m[i].version = strtol(m[i].name, NULL, 10);
        buf_t path = BUF_INIT;
        buf_printf(&path, "%s/%s", dir, m[i].name);
        if (!bad && read_file(path.data, &m[i].sql) != 0) {
            snprintf(err, errlen, "cannot read %s: %s", path.data, strerror(errno));
            bad = 1;
        }
        buf_free(&path);
        sha256_hex(m[i].sql.data ? m[i].sql.data : "", m[i].sql.len, m[i].sha256);
        if (!bad && i > 0 && m[i].version == m[i - 1].version) {
            snprintf(err, errlen, "%s and %s have the same version", m[i - 1].name, m[i].name);
            bad = 1;
        }
        free(ents[i]);
    }
    free(ents);
    if (bad) {
        free_migrations(m, n);
        return -1;
    }
    *out = m;
    return n;
}

/* PQexec that fails with the server's primary message in err. */
static int exec_cmd(PGconn *db, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(err, errlen, "%s: %s", what, msg ? msg : cli_db_error(db));
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* Marks which migrations are applied; an applied file whose bytes changed is an error. */
static int check_applied(PGconn *db, migration_t *m, int n, char *applied,
                         char *err, size_t errlen)
{
    PGresult *r = PQexec(db, "SELECT version, sha256 FROM schema_version ORDER BY version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "reading schema_version: %s", cli_db_error(db));
        PQclear(r);
        return -1;
    }
    int rc = 0;
    for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
        long v = strtol(PQgetvalue(r, row, 0), NULL, 10);
        const char *sha = PQgetvalue(r, row, 1);
        for (int i = 0; i < n; i++) {
            if (m[i].version != v) continue;
            applied[i] = 1;
            if (strcmp(m[i].sha256, sha) != 0) {
                snprintf(err, errlen, "%s was changed after it was applied (sha256 %.12s…, "
                         "applied %.12s…); add a new migration instead", m[i].name,
                         m[i].sha256, sha);
                rc = -1;
            }
        }
    }
    PQclear(r);
    return rc;
}

/* The file's statements one query each (sqlsplit.h says why), stopping at the first error. */
static int exec_statements(PGconn *db, const migration_t *m, char *err, size_t errlen)
{
    sqlsplit_t sp;
    sqlsplit_stmt_t st;
    sqlsplit_init(&sp, m->sql.data ? m->sql.data : "", m->sql.len);
    while (sqlsplit_next(&sp, &st)) {
        char *sql = xstrndup(m->sql.data + st.start, st.end - st.start);
        char what[512];
        snprintf(what, sizeof what, "%s: line %ld", m->name, st.line);
        int rc = exec_cmd(db, sql, what, err, errlen);
        free(sql);
        if (rc != 0) return -1;
    }
    return 0;
}

static int apply_one(PGconn *db, const migration_t *m, char *err, size_t errlen)
{
    if (exec_cmd(db, "BEGIN", m->name, err, errlen) != 0) return -1;
    /* On Citus, shard DDL over one connection per node: a migration that distributes a table
     * and then defines functions is otherwise refused ("cannot run function command because
     * there was a parallel operation on a distributed table in the transaction"). */
    if (exec_cmd(db, "SELECT set_config('citus.multi_shard_modify_mode', 'sequential', true) "
                     "FROM pg_extension WHERE extname = 'citus'", m->name, err, errlen) != 0)
        goto fail;
    if (exec_statements(db, m, err, errlen) != 0) goto fail;
    char version[32];
    snprintf(version, sizeof version, "%ld", m->version);
    const char *params[] = {version, m->name, m->sha256};
    PGresult *r = PQexecParams(db, "INSERT INTO schema_version (version, name, sha256) "
                               "VALUES ($1, $2, $3)", 3, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(err, errlen, "%s: recording it: %s", m->name, cli_db_error(db));
    PQclear(r);
    if (!ok) goto fail;
    if (exec_cmd(db, "COMMIT", m->name, err, errlen) != 0) return -1;
    return 0;
fail:
    PQclear(PQexec(db, "ROLLBACK"));
    return -1;
}

static const char *create_version_table =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " sha256 text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

int cli_db_migrate(PGconn *db, const char *dir, FILE *out, char *err, size_t errlen)
{
    migration_t *m = NULL;
    int n = load_migrations(dir, &m, err, errlen);
    if (n < 0) return -1;
    char *applied = xcalloc((size_t)n, 1);
    int count = -1;
    if (exec_cmd(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock",
                 err, errlen) != 0)
        goto out;
    if (exec_cmd(db, create_version_table, "creating schema_version", err, errlen) != 0) goto unlock;
    if (check_applied(db, m, n, applied, err, errlen) != 0) goto unlock;
    count = 0;
    for (int i = 0; i < n; i++) {
        if (applied[i]) continue;
        if (apply_one(db, &m[i], err, errlen) != 0) {
            count = -1;
            break;
        }
        fprintf(out, "applied %s\n", m[i].name);
        fflush(out);
        count++;
    }
unlock:
    PQclear(PQexec(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
out:
    free(applied);
    free_migrations(m, n);
    return count;
}

static const char migrate_usage[] =
    "usage: circa migrate\n"
    "Applies the schema/NNN_*.sql files not yet applied, in order, each in its own\n"
    "transaction, and records them in schema_version. Running it again does nothing.\n"
    "Schema directory: CIRCA_SCHEMA_DIR, else <executable>/../schema, else\n"
    "/usr/share/circa/schema. Database: DATABASE_URL, else the private cluster under\n"
    "CIRCA_DATA_DIR (default ./var) on port CIRCA_PG_PORT (default 54329).\n";

int cli_db_migrate_main(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static char prog[] = "circa migrate";
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(migrate_usage, stdout);
            return CLI_EXIT_OK;
        }
        return CLI_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "circa migrate: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    char dir[PATH_MAX], err[1024];
    if (cli_db_schema_dir(dir, sizeof dir) != 0) {
        fputs("circa: no schema directory found; set CIRCA_SCHEMA_DIR\n", stderr);
        return CLI_EXIT_FAIL;
    }
    PGconn *db = cli_db_connect(err, sizeof err);
    if (!db) {
        fprintf(stderr, "circa: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    int n = cli_db_migrate(db, dir, stdout, err, sizeof err);
    PQfinish(db);
    if (n < 0) {
        fprintf(stderr, "circa: migrate: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

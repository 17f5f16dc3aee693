// uses: daemon/apikey daemon/buf
/* test_cli — runs bin/circa against a real PostgreSQL (CIRCA_TEST_DB): migrate, tenants,
 * keys, verify, and the exit codes of bad invocations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "apikey.h"
#include "buf.h"

typedef struct {
    int status;    /* exit code, or -1 when killed by a signal */
    buf_t out, err;
} run_t;

static char circa_path[4096];
static char tenant[64];
static PGconn *db;

static void slurp(int fd, buf_t *b)
{
    char chunk[4096];
    ssize_t n;
    lseek(fd, 0, SEEK_SET);
    while ((n = read(fd, chunk, sizeof chunk)) > 0) buf_append(b, chunk, (size_t)n);
    if (!b->data) buf_puts(b, "");
    close(fd);
}

static int temp_fd(void)
{
    char path[] = "/tmp/test_cli_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Starts bin/circa with argv (NULL-terminated, without argv[0]); output goes to two files. */
static pid_t start(char *const *args, int *out_fd, int *err_fd)
{
    char *argv[16] = {circa_path};
    for (int i = 0; args[i]; i++) argv[i + 1] = args[i];
    *out_fd = temp_fd();
    *err_fd = temp_fd();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(*out_fd, 1);
        dup2(*err_fd, 2);
        execv(circa_path, argv);
        _exit(127);
    }
    return pid;
}

static void finish(pid_t pid, int out_fd, int err_fd, run_t *r)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    buf_init(&r->out);
    buf_init(&r->err);
    slurp(out_fd, &r->out);
    slurp(err_fd, &r->err);
}

static run_t run(char *const *args)
{
    run_t r;
    int o, e;
    pid_t pid = start(args, &o, &e);
    finish(pid, o, e, &r);
    return r;
}

#define RUN(...) run((char *const[]){__VA_ARGS__, NULL})

static void run_free(run_t *r)
{
    buf_free(&r->out);
    buf_free(&r->err);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* A failing command says why in exactly one line on stderr and nothing on stdout. */
static void assert_failed_with(run_t *r, int code, const char *needle)
{
    if (r->status != code) fail_msg("exit %d, want %d; stderr: %s", r->status, code, r->err.data);
    assert_string_equal(r->out.data, "");
    assert_int_equal(count_lines(r->err.data), 1);
    if (needle && !strstr(r->err.data, needle)) fail_msg("stderr lacks '%s': %s", needle, r->err.data);
}

static PGresult *sql(const char *q, int n, const char *const *params)
{
    PGresult *r = PQexecParams(db, q, n, NULL, params, NULL, NULL, 1);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) fail_msg("%s: %s", q, PQerrorMessage(db));
    return r;
}

static long count_of(const char *q, int n, const char *const *params)
{
    PGresult *r = PQexecParams(db, q, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", q, PQerrorMessage(db));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* The key printed on stdout: exactly one line, of the documented form. */
static void key_from_output(run_t *r, char key[APIKEY_MAX], char id[13], uint8_t hash[32])
{
    if (r->status != 0) fail_msg("exit %d: %s", r->status, r->err.data);
    assert_int_equal(count_lines(r->out.data), 1);
    size_t n = strcspn(r->out.data, "\n");
    assert_true(n < APIKEY_MAX);
    memcpy(key, r->out.data, n);
    key[n] = '\0';
    if (apikey_parse(key, id, hash) != 0) fail_msg("not a key: '%s'", key);
}

/* Migrations -------------------------------------------------------------------------------- */

static void migrate_is_idempotent(void **state)
{
    run_t r = RUN("migrate");
    if (r.status != 0) fail_msg("first migrate: %s", r.err.data);
    run_free(&r);
    long before = count_of("SELECT count(*) FROM schema_version", 0, NULL);
    assert_true(before >= 3);

    r = RUN("migrate");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out.data, "");
    assert_string_equal(r.err.data, "");
    run_free(&r);
    assert_int_equal(count_of("SELECT count(*) FROM schema_version", 0, NULL), before);
}

/* Copies the schema directory to a temporary one; with tamper, a comment is appended to its
 * first file. */
static void schema_copy(const char *from, char dir[64], int tamper)
{
    snprintf(dir, 64, "/tmp/test_cli_schema_XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct dirent **ents;
    int n = scandir(from, &ents, NULL, alphasort);
    assert_true(n > 0);
    int first = 1;
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        size_t len = strlen(name);
        if (len > 4 && strcmp(name + len - 4, ".sql") == 0) {
            buf_t src = BUF_INIT, dst = BUF_INIT, body = BUF_INIT;
            buf_printf(&src, "%s/%s", from, name);
            buf_printf(&dst, "%s/%s", dir, name);
            int fd = open(src.data, O_RDONLY);
            assert_true(fd >= 0);
            slurp(fd, &body);
            if (first && tamper) buf_puts(&body, "\n-- edited after it was applied\n");
            first = 0;
            FILE *f = fopen(dst.data, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(body.data, 1, body.len, f), body.len);
            fclose(f);
            buf_free(&src);
            buf_free(&dst);
            buf_free(&body);
        }
        free(ents[i]);
    }
    free(ents);
}

/* circa migrate with CIRCA_SCHEMA_DIR set to dir, which is removed afterwards. */
static run_t migrate_from(const char *dir)
{
    char *saved = getenv("CIRCA_SCHEMA_DIR") ? strdup(getenv("CIRCA_SCHEMA_DIR")) : NULL;
    setenv("CIRCA_SCHEMA_DIR", dir, 1);
    run_t r = RUN("migrate");
    if (saved) setenv("CIRCA_SCHEMA_DIR", saved, 1);
    else unsetenv("CIRCA_SCHEMA_DIR");
    free(saved);
    buf_t rm = BUF_INIT;
    buf_printf(&rm, "rm -rf '%s'", dir);
    assert_int_equal(system(rm.data), 0);
    buf_free(&rm);
    return r;
}

static const char *schema_from(void)
{
    return getenv("CIRCA_SCHEMA_DIR") ? getenv("CIRCA_SCHEMA_DIR") : "schema";
}

static void migrate_refuses_an_applied_file_that_changed(void **state)
{
    char dir[64];
    schema_copy(schema_from(), dir, 1);
    run_t r = migrate_from(dir);
    assert_failed_with(&r, 1, "changed after it was applied");
    run_free(&r);
}

static void write_migration(const char *dir, const char *name, const char *text)
{
    buf_t path = BUF_INIT;
    buf_printf(&path, "%s/%s", dir, name);
    FILE *f = fopen(path.data, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
    buf_free(&path);
}

/* A file is applied one statement at a time (cli/sqlsplit.h): semicolons inside bodies and
 * strings stay inside; a failing statement is named by its line and nothing of its file stays. */
static void migrate_applies_a_file_statement_by_statement(void **state)
{
    static const char bad[] =
        "CREATE TABLE split_probe_bad (x int);\n"
        "-- a comment; with a semicolon\n"
        "INSERT INTO split_probe_bad VALUES (1);\n"
        "SELECT no_such_function();\n";
    static const char good[] =
        "CREATE TABLE split_probe (x int, s text);\n"
        "INSERT INTO split_probe VALUES (1, 'a;b'), (2, $q$c;'d$q$);\n"
        "DO $do$ BEGIN EXECUTE $f$ INSERT INTO split_probe VALUES (3, ';') $f$; END $do$;\n"
        "/* a comment; /* nested; */ */ CREATE INDEX split_probe_x ON split_probe (x);\n";
    char dir[64];
    schema_copy(schema_from(), dir, 0);
    write_migration(dir, "9990_split_probe_bad.sql", bad);
    run_t r = migrate_from(dir);
    assert_failed_with(&r, 1, "9990_split_probe_bad.sql: line 4: function no_such_function() does not exist");
    run_free(&r);
    assert_int_equal(count_of("SELECT count(*) FROM pg_class WHERE relname = 'split_probe_bad'", 0, NULL), 0);
    assert_int_equal(count_of("SELECT count(*) FROM schema_version WHERE version = 9990", 0, NULL), 0);

    schema_copy(schema_from(), dir, 0);
    write_migration(dir, "9991_split_probe.sql", good);
    r = migrate_from(dir);
    if (r.status != 0) fail_msg("migrate: %s", r.err.data);
    assert_string_equal(r.out.data, "applied 9991_split_probe.sql\n");
    run_free(&r);
    assert_int_equal(count_of("SELECT count(*) FROM split_probe WHERE s IN ('a;b', 'c;''d', ';')", 0, NULL), 3);
    assert_int_equal(count_of("SELECT count(*) FROM pg_class WHERE relname = 'split_probe_x'", 0, NULL), 1);
    PQclear(sql("DROP TABLE split_probe", 0, NULL));
    PQclear(sql("DELETE FROM schema_version WHERE version = 9991", 0, NULL));
}

/* libpq key='value' string for the test server with another database name. */
static char *conninfo_for(const char *dbname)
{
    PQconninfoOption *opts = PQconninfo(db);
    buf_t b = BUF_INIT;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val || strcmp(o->keyword, "dbname") == 0) continue;
        buf_printf(&b, "%s='%s' ", o->keyword, o->val);
    }
    buf_printf(&b, "dbname='%s'", dbname);
    PQconninfoFree(opts);
    return buf_steal(&b);
}

static char fresh_db[64];

static int drop_fresh_db(void **state)
{
    buf_t q = BUF_INIT;
    buf_printf(&q, "DROP DATABASE IF EXISTS %s", fresh_db);
    PQclear(PQexec(db, q.data));
    buf_free(&q);
    return 0;
}

/* Without the advisory lock the second migrator would fail on existing tables. */
static void two_concurrent_migrators_on_a_fresh_database(void **state)
{
    const char *name = fresh_db;
    snprintf(fresh_db, sizeof fresh_db, "circa_cli_%d", (int)getpid());
    buf_t q = BUF_INIT;
    buf_printf(&q, "CREATE DATABASE %s", name);
    PQclear(sql(q.data, 0, NULL));
    buf_free(&q);
    char *ci = conninfo_for(name);
    char *saved = strdup(getenv("DATABASE_URL"));
    setenv("DATABASE_URL", ci, 1);

    char *args[] = {"migrate", NULL};
    int o1, e1, o2, e2;
    pid_t p1 = start(args, &o1, &e1), p2 = start(args, &o2, &e2);
    run_t r1, r2;
    finish(p1, o1, e1, &r1);
    finish(p2, o2, e2, &r2);
    setenv("DATABASE_URL", saved, 1);
    free(saved);
    if (r1.status != 0 || r2.status != 0)
        fail_msg("exits %d, %d: %s%s", r1.status, r2.status, r1.err.data, r2.err.data);

    /* Each file applied exactly once, by one of the two. */
    PGconn *fresh = PQconnectdb(ci);
    assert_int_equal(PQstatus(fresh), CONNECTION_OK);
    PGresult *res = PQexec(fresh, "SELECT count(*) FROM schema_version");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    long applied = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(fresh);
    assert_true(applied >= 3);
    assert_int_equal(count_lines(r1.out.data) + count_lines(r2.out.data), applied);
    run_free(&r1);
    run_free(&r2);
    free(ci);
}

/* Tenants and keys -------------------------------------------------------------------------- */

/* The row stores SHA-256 of the secret, never the key or the secret. */
static void assert_key_row(const char *key, const char *id, const uint8_t hash[32],
                           const char *role, const char *party)
{
    const char *p[] = {id};
    PGresult *r = sql("SELECT secret_hash, role, party, tenant_id, api_key::text "
                      "FROM api_key WHERE key_id = $1", 1, p);
    assert_int_equal(PQntuples(r), 1);
    assert_int_equal(PQgetlength(r, 0, 0), 32);
    assert_memory_equal(PQgetvalue(r, 0, 0), hash, 32);
    assert_string_equal(PQgetvalue(r, 0, 1), role);
    if (party) assert_string_equal(PQgetvalue(r, 0, 2), party);
    else assert_true(PQgetisnull(r, 0, 2));
    assert_string_equal(PQgetvalue(r, 0, 3), tenant);
    assert_null(strstr(PQgetvalue(r, 0, 4), key + 19));   /* the secret part */
    PQclear(r);
}

static void tenants_create_prints_a_key_and_stores_its_hash(void **state)
{
    run_t r = RUN("tenants", "create", tenant, "--name", "CLI test", "--time-zone",
                  "Europe/Madrid");
    char key[APIKEY_MAX], id[13];
    uint8_t hash[32];
    key_from_output(&r, key, id, hash);
    run_free(&r);
    assert_key_row(key, id, hash, "admin", NULL);

    const char *p[] = {tenant};
    PGresult *t = sql("SELECT name, time_zone FROM tenant WHERE id = $1", 1, p);
    assert_int_equal(PQntuples(t), 1);
    assert_string_equal(PQgetvalue(t, 0, 0), "CLI test");
    assert_string_equal(PQgetvalue(t, 0, 1), "Europe/Madrid");
    PQclear(t);

    r = RUN("tenants", "create", tenant);
    assert_failed_with(&r, 1, "already exists");
    run_free(&r);
    assert_int_equal(count_of("SELECT count(*) FROM api_key WHERE tenant_id = $1", 1, p), 1);

    r = RUN("tenants", "list");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out.data, tenant));
    run_free(&r);
}

static void tenants_create_refuses_bad_codes_and_zones(void **state)
{
    run_t r = RUN("tenants", "create", "bad code");
    assert_failed_with(&r, 2, "bad tenant");
    run_free(&r);
    char other[80];
    snprintf(other, sizeof other, "%s-tz", tenant);
    r = RUN("tenants", "create", other, "--time-zone", "Mars/Olympus");
    assert_failed_with(&r, 1, "time zone");
    run_free(&r);
    const char *p[] = {other};
    assert_int_equal(count_of("SELECT count(*) FROM tenant WHERE id = $1", 1, p), 0);
}

static void keys_create_list_and_revoke(void **state)
{
    run_t r = RUN("keys", "create", "--tenant", tenant, "--role", "read");
    char key[APIKEY_MAX], id[13];
    uint8_t hash[32];
    key_from_output(&r, key, id, hash);
    run_free(&r);
    assert_key_row(key, id, hash, "read", NULL);

    r = RUN("keys", "list", "--tenant", tenant);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out.data, id));
    assert_null(strstr(r.out.data, key + 19));
    assert_int_equal(count_lines(r.out.data), 3);   /* header, admin key, read key */
    run_free(&r);

    r = RUN("keys", "revoke", id);
    assert_int_equal(r.status, 0);
    run_free(&r);
    const char *p[] = {id};
    assert_int_equal(count_of("SELECT count(*) FROM api_key WHERE key_id = $1 "
                              "AND revoked_at IS NOT NULL", 1, p), 1);

    r = RUN("keys", "revoke", "0123456789ab");
    assert_failed_with(&r, 1, "unknown key");
    run_free(&r);
}

static void ingest_keys_need_an_existing_party(void **state)
{
    run_t r = RUN("keys", "create", "--tenant", tenant, "--role", "ingest");
    assert_failed_with(&r, 2, "--party");
    run_free(&r);
    r = RUN("keys", "create", "--tenant", tenant, "--role", "ingest", "--party", "ACME");
    assert_failed_with(&r, 1, "unknown party");
    run_free(&r);

    const char *p[] = {tenant};
    PQclear(sql("INSERT INTO party (tenant_id, code, name, doc) VALUES ($1, 'ACME', 'Acme', '{}')",
                1, p));
    r = RUN("keys", "create", "--tenant", tenant, "--role", "ingest", "--party", "ACME",
            "--expires", "2099-01-01T00:00:00Z");
    char key[APIKEY_MAX], id[13];
    uint8_t hash[32];
    key_from_output(&r, key, id, hash);
    run_free(&r);
    assert_key_row(key, id, hash, "ingest", "ACME");
}

static void bad_invocations_exit_2(void **state)
{
    run_t r = RUN("keys", "create", "--tenant", tenant, "--role", "superuser");
    assert_failed_with(&r, 2, "role");
    run_free(&r);
    r = RUN("keys", "create", "--tenant", tenant, "--role", "read", "--expires", "tomorrow");
    assert_failed_with(&r, 2, "expires");
    run_free(&r);
    r = RUN("keys", "create", "--tenant", tenant, "--role", "read", "--bogus");
    assert_failed_with(&r, 2, "bogus");
    run_free(&r);
    r = RUN("no-such-command");
    assert_failed_with(&r, 2, "unknown command");
    run_free(&r);
    r = RUN("keys", "frobnicate");
    assert_failed_with(&r, 2, "unknown subcommand");
    run_free(&r);
}

static void help_goes_to_stdout(void **state)
{
    char *cases[][4] = {{"--help", NULL}, {"keys", "--help", NULL}, {"keys", "create", "--help", NULL},
                        {"tenants", "create", "--help", NULL}, {"migrate", "--help", NULL},
                        {"verify", "--help", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r = run(cases[i]);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out.data, "usage: circa"));
        assert_string_equal(r.err.data, "");
        run_free(&r);
    }
}

static void verify_a_fresh_tenant(void **state)
{
    run_t r = RUN("verify", "--tenant", tenant);
    if (r.status != 0) fail_msg("exit %d: %s", r.status, r.err.data);
    buf_t want = BUF_INIT;
    buf_printf(&want, "tenant %s: 0 blocks, 0 events, head %064d: OK\n", tenant, 0);
    assert_string_equal(r.out.data, want.data);
    buf_free(&want);
    run_free(&r);

    r = RUN("verify", "--tenant", "no-such-tenant-x");
    assert_failed_with(&r, 1, "unknown tenant");
    run_free(&r);
}

static void cannot_connect_is_one_line_and_exit_1(void **state)
{
    char *saved = strdup(getenv("DATABASE_URL"));
    setenv("DATABASE_URL", "host=/nonexistent-dir port=1 dbname=x connect_timeout=2", 1);
    run_t r = RUN("tenants", "list");
    setenv("DATABASE_URL", saved, 1);
    free(saved);
    assert_failed_with(&r, 1, "circa: cannot connect to PostgreSQL");
    run_free(&r);
}

/* Uses <bin>/../schema when it exists (bin/circa), else ./schema (bin/asan/circa). */
static void choose_schema_dir(const char *bindir)
{
    if (getenv("CIRCA_SCHEMA_DIR")) return;
    buf_t p = BUF_INIT;
    buf_printf(&p, "%s/../schema", bindir);
    struct stat st;
    if (stat(p.data, &st) != 0) setenv("CIRCA_SCHEMA_DIR", "schema", 1);
    buf_free(&p);
}

int main(void)
{
    const char *url = getenv("CIRCA_TEST_DB");
    if (!url || !*url) {
        fputs("test_cli: CIRCA_TEST_DB is not set (a libpq connection string to a test "
              "database; scripts/pg.sh url prints one)\n", stderr);
        return 1;
    }
    const char *bindir = getenv("CIRCA_BIN") ? getenv("CIRCA_BIN") : "bin";
    snprintf(circa_path, sizeof circa_path, "%s/circa", bindir);
    if (access(circa_path, X_OK) != 0) {
        fprintf(stderr, "test_cli: %s is not an executable; build it or set CIRCA_BIN\n",
                circa_path);
        return 1;
    }
    choose_schema_dir(bindir);
    setenv("DATABASE_URL", url, 1);
    snprintf(tenant, sizeof tenant, "t-cli-%d", (int)getpid());
    db = PQconnectdb(url);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "test_cli: cannot connect to CIRCA_TEST_DB: %s", PQerrorMessage(db));
        return 1;
    }
    PQclear(PQexec(db, "SET client_min_messages = warning"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrate_is_idempotent),
        cmocka_unit_test(migrate_refuses_an_applied_file_that_changed),
        cmocka_unit_test(migrate_applies_a_file_statement_by_statement),
        cmocka_unit_test_teardown(two_concurrent_migrators_on_a_fresh_database, drop_fresh_db),
        cmocka_unit_test(tenants_create_prints_a_key_and_stores_its_hash),
        cmocka_unit_test(tenants_create_refuses_bad_codes_and_zones),
        cmocka_unit_test(keys_create_list_and_revoke),
        cmocka_unit_test(ingest_keys_need_an_existing_party),
        cmocka_unit_test(bad_invocations_exit_2),
        cmocka_unit_test(help_goes_to_stdout),
        cmocka_unit_test(verify_a_fresh_tenant),
        cmocka_unit_test(cannot_connect_is_one_line_and_exit_1),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    PQfinish(db);
    return failed;
}

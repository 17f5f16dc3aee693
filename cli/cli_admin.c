/* cli_admin — tenants, API keys and ledger verification, straight against PostgreSQL. */
#include "cli_admin.h"
#include "cli_err.h"

#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "buf.h"
#include "cli_db.h"
#include "cli_export.h"
#include "cli_report.h"
#include "ledger.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} subcommand_t;

static PGconn *connect_db(void)
{
    char err[1024];
    PGconn *db = cli_db_connect(err, sizeof err);
    if (!db) cli_fail("%s", err);
    return db;
}

/* Runs a query with text parameters; NULL (and a message on stderr) when it fails. */
static PGresult *query(PGconn *db, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    cli_fail("%s", msg ? msg : cli_db_error(db));
    PQclear(r);
    return NULL;
}

/* 1 when the query returns at least one row; -1 on error. */
static int exists(PGconn *db, const char *sql, int n, const char *const *params)
{
    PGresult *r = query(db, sql, n, params);
    if (!r) return -1;
    int found = PQntuples(r) > 0;
    PQclear(r);
    return found;
}

/* Codes of tenants and parties: 1–64 letters, digits, '-', '_', '.'. */
static int valid_code(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.') return 0;
    }
    return 1;
}

/* Runs the subcommand of a command group (tenants, keys) named by argv[1]. */
static int dispatch(const char *group, const char *usage, const subcommand_t *subs,
                    int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(group, "missing subcommand; see '%s --help'", group);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    for (const subcommand_t *s = subs; s->name; s++)
        if (strcmp(s->name, argv[1]) == 0) return s->fn(argc - 1, argv + 1);
    return cli_usage_error(group, "unknown subcommand '%s'; see '%s --help'", argv[1], group);
}

/* Stores a new key and writes it into key_out. party and expires may be NULL. */
static int insert_key(PGconn *db, const char *tenant, const char *party, const char *role,
                      const char *expires, char key_out[APIKEY_MAX])
{
    char id[13];
    uint8_t hash[32];
    apikey_generate(key_out, id, hash);
    const char *params[] = {id, tenant, party, role, (const char *)hash, expires};
    const int lens[] = {0, 0, 0, 0, sizeof hash, 0};
    const int fmts[] = {0, 0, 0, 0, 1, 0};
    PGresult *r = PQexecParams(db,
        "INSERT INTO api_key (key_id, tenant_id, party, role, secret_hash, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6::timestamptz)", 6, NULL, params, lens, fmts, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        cli_fail("storing the key: %s", msg ? msg : cli_db_error(db));
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* Tenants ----------------------------------------------------------------------------------- */

static const char tenants_usage[] =
    "usage: circa tenants create TENANT [--name NAME] [--time-zone ZONE]\n"
    "       circa tenants list\n"
    "create: makes tenant TENANT (1-64 letters, digits, '-', '_', '.') and prints its admin\n"
    "        key, once, as the only line on stdout. NAME defaults to TENANT, ZONE (an IANA\n"
    "        time zone such as Europe/Madrid) to UTC.\n"
    "list:   id, name, time zone, events in the ledger, created (tab-separated).\n";

/* Inserts the tenant and its admin key in one transaction; prints the key after COMMIT. */
static int create_tenant(PGconn *db, const char *code, const char *name, const char *tz)
{
    const char *tzp[] = {tz};
    int found = exists(db, "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, tzp);
    if (found < 0) return CLI_EXIT_FAIL;
    if (!found) return cli_fail("unknown time zone '%s'", tz);

    PGresult *r = query(db, "BEGIN", 0, NULL);
    if (!r) return CLI_EXIT_FAIL;
    PQclear(r);
    const char *params[] = {code, name, tz};
    r = query(db, "INSERT INTO tenant (id, name, time_zone) VALUES ($1, $2, $3) "
                  "ON CONFLICT (id) DO NOTHING", 3, params);
    if (!r) return CLI_EXIT_FAIL;
    int inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!inserted) return cli_fail("tenant '%s' already exists", code);

    char key[APIKEY_MAX];
    if (insert_key(db, code, NULL, "admin", NULL, key) != 0) return CLI_EXIT_FAIL;
    r = query(db, "COMMIT", 0, NULL);
    if (!r) return CLI_EXIT_FAIL;
    PQclear(r);
    printf("%s\n", key);
    return CLI_EXIT_OK;
}

static int tenants_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"time-zone", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static char prog[] = "circa tenants create";
    const char *name = NULL, *tz = "UTC";
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "n:z:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 'z': tz = optarg; break;
        case 'h': fputs(tenants_usage, stdout); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) return cli_usage_error(prog, "expected one TENANT; see --help");
    const char *code = argv[optind];
    if (!valid_code(code))
        return cli_usage_error(prog, "bad tenant '%s': use 1-64 letters, digits, '-', '_', '.'",
                           code);
    PGconn *db = connect_db();
    if (!db) return CLI_EXIT_FAIL;
    int rc = create_tenant(db, code, name ? name : code, tz);
    PQfinish(db);
    return rc;
}

/* Prints a result as tab-separated lines under a header; NULL shows as '-'. */
static void print_table(PGresult *r, const char *header)
{
    puts(header);
    for (int i = 0; i < PQntuples(r); i++) {
        for (int j = 0; j < PQnfields(r); j++) {
            if (j) putchar('\t');
            fputs(PQgetisnull(r, i, j) ? "-" : PQgetvalue(r, i, j), stdout);
        }
        putchar('\n');
    }
}

#define UTC_TIME(col) \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static int tenants_list(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static char prog[] = "circa tenants list";
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c != 'h') return CLI_EXIT_USAGE;
        fputs(tenants_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (optind < argc) return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    PGconn *db = connect_db();
    if (!db) return CLI_EXIT_FAIL;
    PGresult *r = query(db, "SELECT id, name, time_zone, head_seq, " UTC_TIME("created_at")
                            " FROM tenant ORDER BY id", 0, NULL);
    int ok = r != NULL;
    if (ok) print_table(r, "tenant\tname\ttime_zone\tevents\tcreated");
    PQclear(r);
    PQfinish(db);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_admin_tenants_main(int argc, char **argv)
{
    static const subcommand_t subs[] = {
        {"create", tenants_create}, {"list", tenants_list}, {NULL, NULL}};
    return dispatch("circa tenants", tenants_usage, subs, argc, argv);
}

/* Keys -------------------------------------------------------------------------------------- */

static const char keys_usage[] =
    "usage: circa keys create --tenant TENANT --role ingest|read|report|admin [--party PARTY]\n"
    "                         [--expires RFC3339]\n"
    "       circa keys revoke KEY_ID\n"
    "       circa keys list [--tenant TENANT]\n"
    "create: prints a new key, once, as the only line on stdout. Ingest keys need --party;\n"
    "        the party must exist in the tenant. --expires e.g. 2027-01-01T00:00:00Z.\n"
    "revoke: the key (its id, or the whole key) stops working at once.\n"
    "list:   id, tenant, party, role, created, last used, expires, revoked (tab-separated);\n"
    "        never secrets.\n";

static int two_digits(const char *p, int lo, int hi)
{
    int v = (p[0] - '0') * 10 + (p[1] - '0');
    return v >= lo && v <= hi;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static int valid_rfc3339(const char *s)
{
    static const char tpl[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof tpl - 1; i++) {
        char c = s[i];
        if (tpl[i] == 'd' ? !isdigit((unsigned char)c)
                          : tpl[i] == 'T' ? (c != 'T' && c != 't') : c != tpl[i])
            return 0;
    }
    if (!two_digits(s + 5, 1, 12) || !two_digits(s + 8, 1, 31) || !two_digits(s + 11, 0, 23) ||
        !two_digits(s + 14, 0, 59) || !two_digits(s + 17, 0, 60))
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p)) return 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'Z' || *p == 'z') return p[1] == '\0';
    if (*p != '+' && *p != '-') return 0;
    return isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) && p[3] == ':' &&
           isdigit((unsigned char)p[4]) && isdigit((unsigned char)p[5]) && p[6] == '\0' &&
           two_digits(p + 1, 0, 23) && two_digits(p + 4, 0, 59);
}

static int valid_role(const char *r)
{
    return strcmp(r, "ingest") == 0 || strcmp(r, "read") == 0 || strcmp(r, "report") == 0 ||
           strcmp(r, "admin") == 0;
}

typedef struct {
    const char *tenant, *party, *role, *expires;
} key_request_t;

/* Checks against the database that the key may be made, then makes and prints it. */
static int create_key(PGconn *db, const key_request_t *k)
{
    const char *tp[] = {k->tenant, k->party};
    int found = exists(db, "SELECT 1 FROM tenant WHERE id = $1", 1, tp);
    if (found < 0) return CLI_EXIT_FAIL;
    if (!found) return cli_fail("unknown tenant '%s'", k->tenant);
    if (k->party) {
        found = exists(db, "SELECT 1 FROM party WHERE tenant_id = $1 AND code = $2", 2, tp);
        if (found < 0) return CLI_EXIT_FAIL;
        if (!found) return cli_fail("unknown party '%s' in tenant '%s'", k->party, k->tenant);
    }
    if (k->expires) {
        const char *ep[] = {k->expires};
        found = exists(db, "SELECT 1 WHERE $1::timestamptz > now()", 1, ep);
        if (found < 0) return CLI_EXIT_FAIL;
        if (!found) return cli_fail("--expires %s is not in the future", k->expires);
    }
    char key[APIKEY_MAX];
    if (insert_key(db, k->tenant, k->party, k->role, k->expires, key) != 0) return CLI_EXIT_FAIL;
    printf("%s\n", key);
    return CLI_EXIT_OK;
}

static int check_key_request(const char *prog, const key_request_t *k)
{
    if (!k->tenant) return cli_usage_error(prog, "--tenant is required");
    if (!valid_code(k->tenant)) return cli_usage_error(prog, "bad tenant '%s'", k->tenant);
    if (!k->role) return cli_usage_error(prog, "--role is required (ingest|read|report|admin)");
    if (!valid_role(k->role))
        return cli_usage_error(prog, "bad role '%s': use ingest, read, report or admin", k->role);
    if (k->party && !valid_code(k->party)) return cli_usage_error(prog, "bad party '%s'", k->party);
    if (!k->party && strcmp(k->role, "ingest") == 0)
        return cli_usage_error(prog, "an ingest key needs --party");
    if (k->expires && !valid_rfc3339(k->expires))
        return cli_usage_error(prog, "bad --expires '%s': use RFC 3339, e.g. 2027-01-01T00:00:00Z",
                           k->expires);
    return CLI_EXIT_OK;
}

static int keys_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"party", required_argument, NULL, 'p'},
        {"role", required_argument, NULL, 'r'}, {"expires", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static char prog[] = "circa keys create";
    key_request_t k = {NULL, NULL, NULL, NULL};
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:p:r:e:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': k.tenant = optarg; break;
        case 'p': k.party = optarg; break;
        case 'r': k.role = optarg; break;
        case 'e': k.expires = optarg; break;
        case 'h': fputs(keys_usage, stdout); return CLI_EXIT_OK;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc) return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    int rc = check_key_request(prog, &k);
    if (rc != CLI_EXIT_OK) return rc;
    PGconn *db = connect_db();
    if (!db) return CLI_EXIT_FAIL;
    rc = create_key(db, &k);
    PQfinish(db);
    return rc;
}

/* Accepts a key id or a whole key (so a leaked key can be pasted as is). */
static int key_id_of(const char *arg, char id[13])
{
    uint8_t hash[32];
    if (apikey_parse(arg, id, hash) == 0) return 0;
    size_t n = strlen(arg);
    if (n != 12 || strspn(arg, "0123456789abcdef") != 12) return -1;
    memcpy(id, arg, 13);
    return 0;
}

static int keys_revoke(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static char prog[] = "circa keys revoke";
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c != 'h') return CLI_EXIT_USAGE;
        fputs(keys_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc - optind != 1) return cli_usage_error(prog, "expected one KEY_ID; see --help");
    char id[13];
    if (key_id_of(argv[optind], id) != 0) return cli_fail("unknown key '%s'", argv[optind]);
    PGconn *db = connect_db();
    if (!db) return CLI_EXIT_FAIL;
    /* Revoking twice keeps the first revocation time. */
    const char *params[] = {id};
    PGresult *r = query(db, "UPDATE api_key SET revoked_at = coalesce(revoked_at, now()) "
                            "WHERE key_id = $1", 1, params);
    int rc = !r ? CLI_EXIT_FAIL
                : strcmp(PQcmdTuples(r), "1") == 0 ? CLI_EXIT_OK : cli_fail("unknown key '%s'", id);
    PQclear(r);
    PQfinish(db);
    return rc;
}

static int keys_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static char prog[] = "circa keys list";
    const char *tenant = NULL;
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't') {
            tenant = optarg;
            continue;
        }
        if (c != 'h') return CLI_EXIT_USAGE;
        fputs(keys_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (optind < argc) return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    PGconn *db = connect_db();
    if (!db) return CLI_EXIT_FAIL;
    const char *params[] = {tenant};
    PGresult *r = query(db, "SELECT key_id, tenant_id, party, role, " UTC_TIME("created_at") ", "
                            UTC_TIME("last_used_at") ", " UTC_TIME("expires_at") ", "
                            UTC_TIME("revoked_at") " FROM api_key"
                            " WHERE $1::text IS NULL OR tenant_id = $1"
                            " ORDER BY tenant_id, created_at, key_id", 1, params);
    int ok = r != NULL;
    if (ok) print_table(r, "id\ttenant\tparty\trole\tcreated\tlast_used\texpires\trevoked");
    PQclear(r);
    PQfinish(db);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_admin_keys_main(int argc, char **argv)
{
    static const subcommand_t subs[] = {
        {"create", keys_create}, {"revoke", keys_revoke}, {"list", keys_list},
        {"sign-init", cli_export_sign_init_main}, {NULL, NULL}};
    return dispatch("circa keys", keys_usage, subs, argc, argv);
}

/* Verify ------------------------------------------------------------------------------------ */

static const char verify_usage[] =
    "usage: circa verify [--tenant TENANT]\n"
    "       circa verify --report FILE.json [--consignments LISTING]\n"
    "       circa verify --offline EXPORT [--report FILE] [--consignments LISTING] [--sha256 HEX]\n"
    "                    [--public-key HEX]\n"
    "Recomputes each tenant's ledger hash chain (every block's link, Merkle root and hash,\n"
    "and the tenant's head) and prints one line per tenant. Exit 0 when all verify, 1 when\n"
    "any chain is broken.\n"
    "--report checks a downloaded JSON report: its SHA-256, and that the ledger block it names\n"
    "and the stored report agree with it; a waste register is recomputed from the ledger up to\n"
    "that block, and its downloaded consignment listing (--consignments) checked against it.\n"
    "--offline checks an export written by `circa export` with no database: every block's\n"
    "events, Merkle root, hash, prev link and Ed25519 signature, and a report against it.\n";

/* Verifies one tenant: 0 verified, 1 broken, -1 database error (already reported). */
static int verify_tenant(PGconn *db, const char *tenant)
{
    ledger_verify_result_t res;
    char err[512] = "";
    int rc = ledger_verify_db(db, tenant, &res, err, sizeof err);
    if (rc < 0) {
        cli_fail("verifying tenant '%s': %s", tenant, err);
        return -1;
    }
    if (rc == 0) {
        printf("tenant %s: %lld blocks, %lld events, head %s: OK\n", tenant, res.blocks,
               res.events, res.head_hash);
        return 0;
    }
    printf("tenant %s: block %lld is broken: %s\n", tenant, res.first_bad_block_seq,
           res.reason);
    return 1;
}

static int verify_all(PGconn *db, const char *tenant)
{
    const char *params[] = {tenant};
    PGresult *r = query(db, "SELECT id FROM tenant WHERE $1::text IS NULL OR id = $1 ORDER BY id",
                        1, params);
    if (!r) return CLI_EXIT_FAIL;
    if (tenant && PQntuples(r) == 0) {
        PQclear(r);
        return cli_fail("unknown tenant '%s'", tenant);
    }
    int rc = CLI_EXIT_OK;
    for (int i = 0; i < PQntuples(r); i++) {
        int v = verify_tenant(db, PQgetvalue(r, i, 0));
        if (v != 0) rc = CLI_EXIT_FAIL;
        if (v < 0) break;
    }
    PQclear(r);
    return rc;
}

int cli_admin_verify_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"report", required_argument, NULL, 'r'},
        {"consignments", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static char prog[] = "circa verify";
    const char *tenant = NULL, *report = NULL, *listing = NULL;
    int c;
    /* --offline reads an export file and never the database; its --report is checked there. */
    if (cli_export_wants_offline(argc, argv)) return cli_export_verify_offline_main(argc, argv);
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:r:h", opts, NULL)) != -1) {
        if (c == 't') tenant = optarg;
        else if (c == 'r') report = optarg;
        else if (c == 'c') listing = optarg;
        else if (c == 'h') return fputs(verify_usage, stdout), CLI_EXIT_OK;
        else return CLI_EXIT_USAGE;
    }
    if (optind < argc) return cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (listing && !report) return cli_usage_error(prog, "--consignments goes with --report");
    if (report) return cli_report_verify_file(report, listing);
    PGconn *db = connect_db();
    if (!db) return CLI_EXIT_FAIL;
    int rc = verify_all(db, tenant);
    PQfinish(db);
    return rc;
}

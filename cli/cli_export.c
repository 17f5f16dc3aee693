/* cli_export — ledger export for auditors, tenant signing keys, offline verification. */
#include "cli_export.h"
#include "cli_err.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli_db.h"
#include "offline.h"
#include "signer.h"

/* Rows per FETCH: memory stays flat however long the chain is. */
#define EXPORT_PAGE "5000"

static PGresult *run(PGconn *db, const char *sql, int n, const char *const *params,
                     const int *lens, const int *fmts, int binary)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, params, lens, fmts, binary);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    cli_fail("%s", msg ? msg : cli_db_error(db));
    PQclear(r);
    return NULL;
}

static int exec_ok(PGconn *db, const char *sql)
{
    PGresult *r = run(db, sql, 0, NULL, NULL, NULL, 0);
    PQclear(r);
    return r ? 0 : -1;
}

static const char *data_dir(void)
{
    const char *d = getenv("CIRCA_DATA_DIR");
    return d && *d ? d : "./var";
}

/* ---- circa export ------------------------------------------------------------------------ */

static const char export_usage[] =
    "usage: circa export --tenant TENANT [--from DATE] [--to DATE] [-o FILE]\n"
    "Writes the tenant's ledger as NDJSON (stdout, or FILE): a header with the tenant's public\n"
    "signing key, then every block holding an event whose time is in [--from, --to) (UTC;\n"
    "without them, the whole chain), each followed by all its events' canonical bytes, then\n"
    "the reports made at those blocks. `circa verify --offline FILE` checks it without a\n"
    "database; see docs/VERIFY.md.\n";

typedef struct {
    const char *tenant, *from, *to, *out;
} export_args_t;

/* Blocks in the range with all their events, one snapshot, block by block in seq order. A
 * block whose events are gone still appears (LEFT JOIN), so the verifier sees the gap. */
static const char export_cursor[] =
    "DECLARE circa_export NO SCROLL CURSOR FOR "
    "SELECT b.seq, b.count, b.prev, b.root, b.time, b.hash, b.signature, e.seq, e.canon "
    "FROM ledger_block b LEFT JOIN event e ON e.tenant_id = b.tenant_id "
    "AND e.seq BETWEEN b.seq - b.count + 1 AND b.seq "
    "WHERE b.tenant_id = $1 AND (($2::timestamptz IS NULL AND $3::timestamptz IS NULL) "
    "OR EXISTS (SELECT 1 FROM event x WHERE x.tenant_id = $1 "
    "AND x.seq BETWEEN b.seq - b.count + 1 AND b.seq "
    "AND ($2::timestamptz IS NULL OR x.event_time >= $2) "
    "AND ($3::timestamptz IS NULL OR x.event_time < $3))) "
    "ORDER BY b.seq, e.seq";

static int64_t be_int(const char *p, int len)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < len; i++) v = (v << 8) | u[i];
    return len == 4 ? (int64_t)(int32_t)v : (int64_t)v;
}

static void json_text(buf_t *b, const PGresult *r, int row, int col)
{
    buf_json_str(b, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

/* {"block": {...}} for row's block columns (binary results). */
static void put_block(buf_t *b, const PGresult *r, int row)
{
    buf_printf(b, "{\"block\":{\"seq\":%lld,\"count\":%lld,\"prev\":",
               (long long)be_int(PQgetvalue(r, row, 0), PQgetlength(r, row, 0)),
               (long long)be_int(PQgetvalue(r, row, 1), PQgetlength(r, row, 1)));
    json_text(b, r, row, 2);
    buf_puts(b, ",\"root\":");
    json_text(b, r, row, 3);
    buf_puts(b, ",\"time\":");
    json_text(b, r, row, 4);
    buf_puts(b, ",\"hash\":");
    json_text(b, r, row, 5);
    if (!PQgetisnull(r, row, 6) && PQgetlength(r, row, 6) == SIGNER_SIG_LEN) {
        char hex[2 * SIGNER_SIG_LEN + 1];
        signer_hex((const unsigned char *)PQgetvalue(r, row, 6), SIGNER_SIG_LEN, hex);
        buf_printf(b, ",\"signature\":\"%s\"", hex);
    }
    buf_puts(b, "}}\n");
}

typedef struct {
    FILE *out;
    buf_t line;
    int64_t block, first_block;   /* current and first block seq written, 0 before any */
} writer_t;

static void write_page(writer_t *w, const PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t bseq = be_int(PQgetvalue(r, i, 0), PQgetlength(r, i, 0));
        buf_reset(&w->line);
        if (bseq != w->block) {
            put_block(&w->line, r, i);
            w->block = bseq;
            if (!w->first_block) w->first_block = bseq;
        }
        if (!PQgetisnull(r, i, 7)) {
            buf_printf(&w->line, "{\"event\":{\"seq\":%lld,\"canon\":",
                       (long long)be_int(PQgetvalue(r, i, 7), PQgetlength(r, i, 7)));
            json_text(&w->line, r, i, 8);
            buf_puts(&w->line, "}}\n");
        }
        fwrite(w->line.data, 1, w->line.len, w->out);
    }
}

static int write_blocks(PGconn *db, const export_args_t *a, writer_t *w)
{
    const char *params[3] = {a->tenant, a->from, a->to};
    PGresult *r = run(db, export_cursor, 3, params, NULL, NULL, 0);
    if (!r) return -1;
    PQclear(r);
    for (;;) {
        r = run(db, "FETCH " EXPORT_PAGE " FROM circa_export", 0, NULL, NULL, NULL, 1);
        if (!r) return -1;
        int rows = PQntuples(r);
        write_page(w, r);
        PQclear(r);
        if (rows == 0) return 0;
    }
}

/* The database's record of the reports made at the exported blocks: what a downloaded report
 * is compared with offline. */
static int write_reports(PGconn *db, const export_args_t *a, writer_t *w)
{
    if (!w->block) return 0;
    char lo[24], hi[24];
    snprintf(lo, sizeof lo, "%lld", (long long)w->first_block);
    snprintf(hi, sizeof hi, "%lld", (long long)w->block);
    const char *params[3] = {a->tenant, lo, hi};
    PGresult *r = run(db, "SELECT id, sha256, block_seq, block_hash FROM report "
                          "WHERE tenant_id = $1 AND block_seq BETWEEN $2 AND $3 "
                          "ORDER BY block_seq, id", 3, params, NULL, NULL, 0);
    if (!r) return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        buf_reset(&w->line);
        buf_puts(&w->line, "{\"report\":{\"id\":");
        json_text(&w->line, r, i, 0);
        buf_puts(&w->line, ",\"sha256\":");
        json_text(&w->line, r, i, 1);
        buf_printf(&w->line, ",\"block\":{\"seq\":%s,\"hash\":", PQgetvalue(r, i, 2));
        json_text(&w->line, r, i, 3);
        buf_puts(&w->line, "}}}\n");
        fwrite(w->line.data, 1, w->line.len, w->out);
    }
    PQclear(r);
    return 0;
}

static void put_opt_str(buf_t *b, const char *name, const char *v)
{
    buf_printf(b, ",\"%s\":", name);
    if (v) buf_json_str(b, v, strlen(v));
    else buf_puts(b, "null");
}

static int write_header(PGconn *db, const export_args_t *a, writer_t *w)
{
    const char *params[1] = {a->tenant};
    PGresult *r = run(db, "SELECT encode(sign_public_key, 'hex') FROM tenant WHERE id = $1", 1,
                      params, NULL, NULL, 0);
    if (!r) return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return cli_fail("unknown tenant '%s'", a->tenant), -1;
    }
    buf_reset(&w->line);
    buf_puts(&w->line, "{\"circa_export\":1,\"tenant\":");
    buf_json_str(&w->line, a->tenant, strlen(a->tenant));
    put_opt_str(&w->line, "from", a->from);
    put_opt_str(&w->line, "to", a->to);
    if (!PQgetisnull(r, 0, 0)) put_opt_str(&w->line, "public_key", PQgetvalue(r, 0, 0));
    buf_puts(&w->line, "}\n");
    fwrite(w->line.data, 1, w->line.len, w->out);
    PQclear(r);
    return 0;
}

/* Everything from one REPEATABLE READ snapshot, so blocks, events and reports agree while
 * circad keeps appending. */
static int export_tx(PGconn *db, const export_args_t *a, writer_t *w)
{
    if (exec_ok(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0 ||
        exec_ok(db, "SET LOCAL TIME ZONE 'UTC'") != 0)
        return -1;
    int rc = write_header(db, a, w);
    if (rc == 0) rc = write_blocks(db, a, w);
    if (rc == 0) rc = write_reports(db, a, w);
    PQclear(PQexec(db, "ROLLBACK"));
    return rc;
}

static int export_parse(int argc, char **argv, export_args_t *a)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 'T'},     {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    static char prog[] = "circa export";
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) != -1) {
        if (c == 't') a->tenant = optarg;
        else if (c == 'f') a->from = optarg;
        else if (c == 'T') a->to = optarg;
        else if (c == 'o') a->out = optarg;
        else if (c == 'h') return fputs(export_usage, stdout), CLI_EXIT_OK;
        else return CLI_EXIT_USAGE;
    }
    if (optind < argc || !a->tenant) {
        fprintf(stderr, "%s: %s; see --help\n", prog,
                a->tenant ? "unexpected argument" : "--tenant is required");
        return CLI_EXIT_USAGE;
    }
    return -1;
}

int cli_export_main(int argc, char **argv)
{
    export_args_t a = {0};
    int rc = export_parse(argc, argv, &a);
    if (rc >= 0) return rc;
    char err[1024];
    PGconn *db = cli_db_connect(err, sizeof err);
    if (!db) return cli_fail("%s", err);
    writer_t w = {.out = a.out ? fopen(a.out, "w") : stdout, .line = BUF_INIT};
    if (!w.out) {
        PQfinish(db);
        return cli_fail("cannot write %s", a.out);
    }
    rc = export_tx(db, &a, &w);
    if ((a.out ? fclose(w.out) : fflush(w.out)) != 0 && rc == 0)
        rc = cli_fail("cannot write %s", a.out ? a.out : "stdout");
    buf_free(&w.line);
    PQfinish(db);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- circa keys sign-init ---------------------------------------------------------------- */

static const char sign_init_usage[] =
    "usage: circa keys sign-init --tenant TENANT\n"
    "Creates the tenant's Ed25519 signing key: the private key goes to\n"
    "$CIRCA_DATA_DIR/keys/TENANT.ed25519 (mode 0600, for circad on this machine; never into the\n"
    "database), the public key into the tenant row, and is printed (hex) for auditors to keep.\n"
    "circad signs every block committed after it. A tenant's key is set once.\n";

/* 0 when the tenant exists with no key yet; prints why not otherwise. */
static int tenant_unkeyed(PGconn *db, const char *tenant)
{
    const char *params[1] = {tenant};
    PGresult *r = run(db, "SELECT encode(sign_public_key, 'hex') FROM tenant WHERE id = $1", 1,
                      params, NULL, NULL, 0);
    if (!r) return -1;
    int rc = PQntuples(r) != 1 ? cli_fail("unknown tenant '%s'", tenant)
             : !PQgetisnull(r, 0, 0) ? cli_fail("tenant '%s' already has a signing key %s", tenant,
                                             PQgetvalue(r, 0, 0))
                                     : 0;
    PQclear(r);
    return rc ? -1 : 0;
}

static int register_key(PGconn *db, const char *tenant, const unsigned char pub[32])
{
    const char *params[2] = {tenant, (const char *)pub};
    const int lens[2] = {0, SIGNER_PUB_LEN}, fmts[2] = {0, 1};
    PGresult *r = run(db, "UPDATE tenant SET sign_public_key = $2 "
                          "WHERE id = $1 AND sign_public_key IS NULL", 2, params, lens, fmts, 0);
    if (!r) return -1;
    int one = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return one ? 0 : (cli_fail("tenant '%s' got a signing key meanwhile", tenant), -1);
}

int cli_export_sign_init_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static char prog[] = "circa keys sign-init";
    const char *tenant = NULL;
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't') tenant = optarg;
        else if (c == 'h') return fputs(sign_init_usage, stdout), CLI_EXIT_OK;
        else return CLI_EXIT_USAGE;
    }
    if (optind < argc || !tenant) {
        fprintf(stderr, "%s: --tenant TENANT is required; see --help\n", prog);
        return CLI_EXIT_USAGE;
    }
    char err[1024];
    PGconn *db = cli_db_connect(err, sizeof err);
    if (!db) return cli_fail("%s", err);
    unsigned char pub[SIGNER_PUB_LEN];
    int rc = tenant_unkeyed(db, tenant);
    /* File first: a key registered without its private half would leave blocks unsigned. */
    if (rc == 0 && signer_keygen(data_dir(), tenant, pub, err, sizeof err) < 0)
        rc = cli_fail("%s", err);
    if (rc == 0) rc = register_key(db, tenant, pub);
    PQfinish(db);
    if (rc != 0) return CLI_EXIT_FAIL;
    char hex[2 * SIGNER_PUB_LEN + 1];
    signer_hex(pub, SIGNER_PUB_LEN, hex);
    printf("%s\n", hex);
    return CLI_EXIT_OK;
}

/* ---- circa verify --offline -------------------------------------------------------------- */

static const char offline_usage[] =
    "usage: circa verify --offline EXPORT [--report FILE] [--consignments LISTING]\n"
    "                    [--sha256 HEX] [--public-key HEX]\n"
    "Checks a `circa export` file with no database: each block's events, Merkle root, hash,\n"
    "link to the block before it and, with a public key (the export's, or --public-key, which\n"
    "must match it), its signature. With --report, that the downloaded JSON report names one of\n"
    "the export's blocks and that its canonical SHA-256 is the published one (--sha256, else\n"
    "the export's record of the report); a waste register is recomputed from the export's\n"
    "events, and its downloaded consignment listing (--consignments) checked against that.\n"
    "Exit 0 when everything verifies, 1 at the first problem. See docs/VERIFY.md.\n";

int cli_export_wants_offline(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--offline") == 0 || strncmp(argv[i], "--offline=", 10) == 0)
            return 1;
    return 0;
}

int cli_export_verify_offline_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"offline", required_argument, NULL, 'O'}, {"report", required_argument, NULL, 'r'},
        {"sha256", required_argument, NULL, 's'},  {"public-key", required_argument, NULL, 'k'},
        {"consignments", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static char prog[] = "circa verify";
    offline_opts_t o = {0};
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'O') o.export_path = optarg;
        else if (c == 'r') o.report_path = optarg;
        else if (c == 's') o.report_sha256 = optarg;
        else if (c == 'k') o.public_key_hex = optarg;
        else if (c == 'c') o.listing_path = optarg;
        else if (c == 'h') return fputs(offline_usage, stdout), CLI_EXIT_OK;
        else return CLI_EXIT_USAGE;
    }
    if (optind < argc || !o.export_path || (o.listing_path && !o.report_path)) {
        fprintf(stderr, "%s: --offline EXPORT takes no other arguments; see --help\n", prog);
        return CLI_EXIT_USAGE;
    }
    return offline_verify_print(&o, stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* cli_report — `circa report` (generate through circad, download) and `circa verify --report`
 * (a downloaded report checked against the ledger in PostgreSQL). */
#include "cli_report.h"
#include "cli_daemon.h"
#include "buf.h"
#include "cli_db.h"
#include "regcheck.h"
#include "report.h"

#include <curl/curl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: circa report --type TYPE --from DATE --to DATE [--site S] [--party P]\n"
    "                    [--generator G] [--recycler R] [--format json|csv|html] [-o FILE]\n"
    "                    [--consignments LISTING]\n"
    "       circa report --listing ID [-o LISTING]\n"
    "       circa report --verify FILE.json [--consignments LISTING]\n"
    "Generates a report through circad (CIRCA_URL, CIRCA_KEY; default CIRCA_LISTEN and\n"
    "$CIRCA_DATA_DIR/admin.key) and writes it in the format asked (json by default) to FILE or\n"
    "stdout; the report's id, SHA-256 and ledger block go to stderr. TYPE: waste_register,\n"
    "prtr_transfers, circularity_summary, recovery_certificate. A waste register's consignments\n"
    "(every page of its listing, one JSON object a line) go to LISTING with --consignments, or\n"
    "with --listing ID for a register made before. --verify checks a downloaded JSON report\n"
    "(and listing) against the ledger (DATABASE_URL), as `circa verify --report FILE` does.\n";

static int fail(const char *fmt, const char *a, const char *b)
{
    fputs("circa report: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return CLI_EXIT_FAIL;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        buf_free(&b);
        return NULL;
    }
    buf_putc(&b, '\0');
    *len = b.len - 1;
    return buf_steal(&b);
}

/* ---- talking to circad ---------------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* One request; the status, or 0 with curl's message in resp. body NULL makes it a GET. */
static long http(const char *url, const char *key, const char *body, buf_t *resp)
{
    CURL *c = curl_easy_init();
    if (!c) return 0;
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else buf_puts(resp, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* ---- circa report ------------------------------------------------------------------------- */

typedef struct {
    cJSON *req;            /* the POST body */
    const char *format;    /* json, csv, html */
    const char *out;       /* NULL: stdout */
    const char *verify;    /* --verify FILE */
    const char *listing;   /* --consignments FILE */
    const char *list_id;   /* --listing ID */
} args_t;

static int write_out(const char *path, const buf_t *b)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) return fail("cannot write %s%s", path, "");
    size_t n = fwrite(b->data ? b->data : "", 1, b->len, f);
    int bad = n != b->len || (path ? fclose(f) : fflush(f)) != 0;
    return bad ? fail("cannot write %s%s", path ? path : "stdout", "") : CLI_EXIT_OK;
}

/* Every page of report id's consignment listing, one consignment a line, to path (NULL:
 * stdout). */
static int download_listing(const char *base, const char *key, const char *id, const char *path)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) return fail("cannot write %s%s", path, "");
    char url[800], after[32] = "";
    int rc = CLI_EXIT_OK;
    long n = 0;
    for (;;) {
        buf_t resp = BUF_INIT;
        snprintf(url, sizeof url, "%s/v1/reports/%s/consignments?limit=10000%s%s", base, id,
                 after[0] ? "&after=" : "", after);
        long st = http(url, key, NULL, &resp);
        cJSON *page = st == 200 ? cJSON_Parse(resp.data) : NULL;
        const cJSON *c, *next = cJSON_GetObjectItemCaseSensitive(page, "next");
        if (!page) rc = fail("downloading the listing failed: %s %s", url, resp.data ? resp.data : "");
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(page, "consignments")) {
            char *line = cJSON_PrintUnformatted(c);
            fprintf(f, "%s\n", line);
            free(line);
            n++;
        }
        int more = cJSON_IsNumber(next);
        if (more) snprintf(after, sizeof after, "%.0f", next->valuedouble);
        cJSON_Delete(page);
        buf_free(&resp);
        if (rc != CLI_EXIT_OK || !more) break;
    }
    if ((path ? fclose(f) : fflush(f)) != 0 && rc == CLI_EXIT_OK)
        rc = fail("cannot write %s%s", path ? path : "stdout", "");
    if (rc == CLI_EXIT_OK) fprintf(stderr, "listing of report %s: %ld consignments\n", id, n);
    return rc;
}

/* --listing ID: an existing register's consignments. */
static int listing_only(const args_t *a)
{
    char key[512], base[512];
    if (cli_daemon_key(key, sizeof key) != 0)
        return fail("no API key: set CIRCA_KEY or put one in $CIRCA_DATA_DIR/admin.key%s%s", "", "");
    cli_daemon_url(base, sizeof base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = download_listing(base, key, a->list_id, a->out);
    curl_global_cleanup();
    return rc;
}

/* POSTs the request, then downloads the format asked. */
static int generate(const args_t *a)
{
    char key[512], base[512], url[700];
    if (cli_daemon_key(key, sizeof key) != 0)
        return fail("no API key: set CIRCA_KEY or put one in $CIRCA_DATA_DIR/admin.key%s%s", "", "");
    cli_daemon_url(base, sizeof base);
    char *body = cJSON_PrintUnformatted(a->req);
    buf_t resp = BUF_INIT;
    snprintf(url, sizeof url, "%s/v1/reports", base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long st = http(url, key, body, &resp);
    free(body);
    cJSON *j = st == 201 ? cJSON_Parse(resp.data) : NULL;
    const char *id = report_str(j, "id");
    int rc = CLI_EXIT_FAIL;
    if (!*id) {
        fail("generating failed: %s%s", st ? "" : "circad cannot be reached: ", resp.data ? resp.data : "");
    } else {
        fprintf(stderr, "report %s sha256 %s block %s\n", id, report_str(j, "sha256"),
                report_str(j, "block"));
        snprintf(url, sizeof url, "%s/v1/reports/%s.%s", base, id, a->format);
        buf_reset(&resp);
        st = http(url, key, NULL, &resp);
        rc = st == 200 ? write_out(a->out, &resp)
                       : fail("downloading failed: %s%s", url, "");
        if (rc == CLI_EXIT_OK && a->listing) rc = download_listing(base, key, id, a->listing);
    }
    cJSON_Delete(j);
    buf_free(&resp);
    curl_global_cleanup();
    return rc;
}

static int parse_args(args_t *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"type", required_argument, NULL, 't'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 'T'}, {"site", required_argument, NULL, 's'},
        {"party", required_argument, NULL, 'p'}, {"generator", required_argument, NULL, 'g'},
        {"recycler", required_argument, NULL, 'r'}, {"format", required_argument, NULL, 'F'},
        {"output", required_argument, NULL, 'o'}, {"verify", required_argument, NULL, 'v'},
        {"consignments", required_argument, NULL, 'c'}, {"listing", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c, idx;
    optind = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, &idx)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 1;
        }
        if (c == '?') return -1;
        if (c == 'F') a->format = optarg;
        else if (c == 'o') a->out = optarg;
        else if (c == 'v') a->verify = optarg;
        else if (c == 'c') a->listing = optarg;
        else if (c == 'l') a->list_id = optarg;
        else cJSON_AddStringToObject(a->req, opts[idx].name, optarg);
    }
    if (optind < argc) return fprintf(stderr, "circa report: unexpected argument '%s'\n", argv[optind]), -1;
    if (strcmp(a->format, "json") && strcmp(a->format, "csv") && strcmp(a->format, "html"))
        return fputs("circa report: --format is json, csv or html\n", stderr), -1;
    if (!a->verify && !a->list_id && (!cJSON_GetObjectItem(a->req, "type") || !cJSON_GetObjectItem(a->req, "from") ||
                       !cJSON_GetObjectItem(a->req, "to")))
        return fputs("circa report: --type, --from and --to are required\n", stderr), -1;
    return 0;
}

int cli_report_main(int argc, char **argv)
{
    static char prog[] = "circa report";
    argv[0] = prog;
    args_t a = {cJSON_CreateObject(), "json", NULL, NULL, NULL, NULL};
    int p = parse_args(&a, argc, argv);
    int rc = p < 0 ? CLI_EXIT_USAGE : p > 0 ? CLI_EXIT_OK
             : a.verify ? cli_report_verify_file(a.verify, a.listing)
             : a.list_id ? listing_only(&a) : generate(&a);
    cJSON_Delete(a.req);
    return rc;
}

/* ---- circa verify --report ---------------------------------------------------------------- */

/* The stored side: {"tenant", "stored_sha256", "block_in_chain"} from circa_report_check. */
static cJSON *stored_side(PGconn *db, const cJSON *doc, char *err, size_t errlen)
{
    char seq[32];
    snprintf(seq, sizeof seq, "%.0f", report_num(doc, "block.seq"));
    const char *p[4] = {report_str(doc, "tenant.id"), report_str(doc, "id"), seq,
                        report_str(doc, "block.hash")};
    PGresult *r = PQexecParams(db, "SELECT circa_report_check($1, $2, $3::bigint, $4)::text", 4,
                               NULL, p, NULL, NULL, 0);
    cJSON *j = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) j = cJSON_Parse(PQgetvalue(r, 0, 0));
    else snprintf(err, errlen, "%s", cli_db_error(db));
    PQclear(r);
    return j;
}

/* Feeds the tenant's events up to the report's block to the register check, a page at a
 * time (only the types the register reads). 0, or -1 with err set. */
static int feed_events(PGconn *db, const char *tenant, regcheck_t *rc, char *err, size_t errlen)
{
    char after[24] = "0", upto[24];
    snprintf(upto, sizeof upto, "%lld", (long long)regcheck_block(rc));
    for (;;) {
        const char *p[3] = {tenant, after, upto};
        PGresult *r = PQexecParams(db,
            "SELECT seq, convert_from(canon, 'UTF8'), quantity_kg FROM event "
            "WHERE tenant_id = $1 AND seq > $2::bigint AND seq <= $3::bigint "
            "AND type IN ('shipped', 'collected', 'received', 'waste_generated', 'recycled', "
            "'energy_recovered', 'disposed', 'corrected') ORDER BY seq LIMIT 20000",
            3, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "%s", cli_db_error(db));
            PQclear(r);
            return -1;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            double kg = PQgetisnull(r, i, 2) ? NAN : strtod(PQgetvalue(r, i, 2), NULL);
            regcheck_event(rc, strtoll(PQgetvalue(r, i, 0), NULL, 10), PQgetvalue(r, i, 1),
                           (size_t)PQgetlength(r, i, 1), kg);
        }
        if (n) snprintf(after, sizeof after, "%s", PQgetvalue(r, n - 1, 0));
        PQclear(r);
        if (n < 20000) return 0;
    }
}

/* A waste register recomputed from the ledger, and the listing file against it: prints one
 * line each. 0 verified (or nothing to recompute), 1 not, -1 error. */
static int check_register(PGconn *db, const cJSON *doc, const char *listing)
{
    char why[512] = "", note[256] = "";
    regcheck_t *rc = regcheck_new(doc, why, sizeof why);
    if (!rc) {
        if (listing) {
            fail("--consignments: %s%s", why, "");
            return -1;
        }
        return 0;
    }
    int v = feed_events(db, report_str(doc, "tenant.id"), rc, why, sizeof why);
    if (v == 0) {
        v = regcheck_report(rc, why, sizeof why, note, sizeof note);
        printf("register recomputed from the ledger up to block %lld: %zu consignments%s%s: %s%s\n",
               (long long)regcheck_block(rc), regcheck_count(rc), note[0] ? "; " : "", note,
               v ? "FAILED: " : "OK", v ? why : "");
    } else {
        fail("%s%s", why, "");
    }
    FILE *f = v == 0 && listing ? fopen(listing, "r") : NULL;
    if (v == 0 && listing && !f) {
        fail("cannot read %s%s", listing, "");
        v = -1;
    }
    if (f) {
        v = regcheck_listing(rc, f, why, sizeof why);
        fclose(f);
        printf("listing %s: %s%s\n", listing, v ? "FAILED: " : "OK", v ? why : "");
    }
    regcheck_free(rc);
    return v;
}

/* Compares the file with the ledger; prints one line per check. 0 verified, 1 not, -1 error. */
static int check(const char *file, const char *text, size_t len, const char *listing)
{
    buf_t canon = BUF_INIT;
    char sha[65], err[512] = "";
    int ok = report_canonical_sha256(text, len, &canon, sha);
    buf_free(&canon);
    cJSON *doc = ok == 0 ? cJSON_ParseWithLength(text, len) : NULL;
    if (!doc || !*report_str(doc, "id") || strcmp(report_str(doc, "schema"), REPORT_SCHEMA) != 0) {
        cJSON_Delete(doc);
        return fail("%s is not a circa JSON report%s", file, ""), -1;
    }
    PGconn *db = cli_db_connect(err, sizeof err);
    cJSON *st = db ? stored_side(db, doc, err, sizeof err) : NULL;
    if (!st) {
        if (db) PQfinish(db);
        cJSON_Delete(doc);
        return fail("%s%s", err, ""), -1;
    }
    const char *why = !cJSON_IsTrue(cJSON_GetObjectItem(st, "tenant")) ? "unknown tenant"
        : !*report_str(st, "stored_sha256") ? "no stored report with this id"
        : strcmp(report_str(st, "stored_sha256"), sha) != 0
            ? "its SHA-256 differs from the stored report's: the file was changed"
        : !cJSON_IsTrue(cJSON_GetObjectItem(st, "block_in_chain"))
            ? "the block it names is not in the tenant's chain" : NULL;
    printf("report %s (tenant %s) sha256 %s block %.0f %s: %s%s\n", report_str(doc, "id"),
           report_str(doc, "tenant.id"), sha, report_num(doc, "block.seq"),
           report_str(doc, "block.hash"), why ? "FAILED: " : "OK", why ? why : "");
    int rc = why ? 1 : check_register(db, doc, listing);
    PQfinish(db);
    cJSON_Delete(st);
    cJSON_Delete(doc);
    return rc;
}

int cli_report_verify_file(const char *file, const char *listing)
{
    size_t len;
    char *text = read_all(file, &len);
    if (!text) return fail("cannot read %s%s", file, "");
    int rc = check(file, text, len, listing);
    free(text);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

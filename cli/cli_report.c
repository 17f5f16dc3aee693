/* cli_report — `circa report` (generate through circad, download) and `circa verify --report`
 * (a downloaded report checked against the ledger in PostgreSQL). */
#include "cli_report.h"
#include "cli_daemon.h"
#include "buf.h"
#include "cli_db.h"
#include "report.h"

#include <curl/curl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: circa report --type TYPE --from DATE --to DATE [--site S] [--party P]\n"
    "                    [--generator G] [--recycler R] [--format json|csv|html] [-o FILE]\n"
    "       circa report --verify FILE.json\n"
    "Generates a report through circad (CIRCA_URL, CIRCA_KEY; default CIRCA_LISTEN and\n"
    "$CIRCA_DATA_DIR/admin.key) and writes it in the format asked (json by default) to FILE or\n"
    "stdout; the report's id, SHA-256 and ledger block go to stderr. TYPE: waste_register,\n"
    "prtr_transfers, circularity_summary, recovery_certificate. --verify checks a downloaded\n"
    "JSON report against the ledger (DATABASE_URL), as `circa verify --report FILE` does.\n";

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
} args_t;

static int write_out(const char *path, const buf_t *b)
{
    FILE *f = path ? fopen(path, "wb") : stdout;
    if (!f) return fail("cannot write %s%s", path, "");
    size_t n = fwrite(b->data ? b->data : "", 1, b->len, f);
    int bad = n != b->len || (path ? fclose(f) : fflush(f)) != 0;
    return bad ? fail("cannot write %s%s", path ? path : "stdout", "") : CLI_EXIT_OK;
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
        else cJSON_AddStringToObject(a->req, opts[idx].name, optarg);
    }
    if (optind < argc) return fprintf(stderr, "circa report: unexpected argument '%s'\n", argv[optind]), -1;
    if (strcmp(a->format, "json") && strcmp(a->format, "csv") && strcmp(a->format, "html"))
        return fputs("circa report: --format is json, csv or html\n", stderr), -1;
    if (!a->verify && (!cJSON_GetObjectItem(a->req, "type") || !cJSON_GetObjectItem(a->req, "from") ||
                       !cJSON_GetObjectItem(a->req, "to")))
        return fputs("circa report: --type, --from and --to are required\n", stderr), -1;
    return 0;
}

int cli_report_main(int argc, char **argv)
{
    static char prog[] = "circa report";
    argv[0] = prog;
    args_t a = {cJSON_CreateObject(), "json", NULL, NULL};
    int p = parse_args(&a, argc, argv);
    int rc = p < 0 ? CLI_EXIT_USAGE : p > 0 ? CLI_EXIT_OK
             : a.verify ? cli_report_verify_file(a.verify) : generate(&a);
    cJSON_Delete(a.req);
    return rc;
}

/* ---- circa verify --report ---------------------------------------------------------------- */

/* The stored side: {"tenant", "stored_sha256", "block_in_chain"} from circa_report_check. */
static cJSON *stored_side(const cJSON *doc, char *err, size_t errlen)
{
    PGconn *db = cli_db_connect(err, errlen);
    if (!db) return NULL;
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
    PQfinish(db);
    return j;
}

/* Compares the file with the ledger; prints one line. 0 verified, 1 not, -1 error. */
static int check(const char *file, const char *text, size_t len)
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
    cJSON *st = stored_side(doc, err, sizeof err);
    if (!st) {
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
    cJSON_Delete(st);
    cJSON_Delete(doc);
    return why ? 1 : 0;
}

int cli_report_verify_file(const char *file)
{
    size_t len;
    char *text = read_all(file, &len);
    if (!text) return fail("cannot read %s%s", file, "");
    int rc = check(file, text, len);
    free(text);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

// uses: tests/harness daemon/buf
/* test_openapi — circad against docs/openapi.yaml: the routes it registers are exactly the
 * document's operations, and real answers (events, master data, metrics, EPCIS, errors) match
 * the documented status, media type and schema. tests/openapi_check.py does the checking with
 * python3-jsonschema; this file drives the requests and records them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"

static th_daemon_t daemon_;
static th_http_t *client;
static th_tenant_t t;
static char read_key[256];
static char dir[64];              /* scratch directory of the recorded exchanges */
static FILE *exchanges;

/* JSON written with ' for " so the requests stay readable. */
static char *q(const char *tpl)
{
    char *s = xstrdup(tpl);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

static void path_in_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Sends one request and records it as a JSON line for the checker. route is the path
 * template the answer is checked against. The caller frees r. */
static long ex(const char *method, const char *route, const char *url, const char *key,
               const char *ctype, const char *tpl, th_resp_t *r)
{
    char *body = tpl ? q(tpl) : NULL;
    th_http(client, daemon_.base, method, url, key, ctype, body, body ? strlen(body) : 0, r);
    free(body);
    if (r->status == 0) fail_msg("%s %s: %s", method, url, r->error);
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "method", method);
    cJSON_AddStringToObject(line, "route", route);
    cJSON_AddNumberToObject(line, "status", (double)r->status);
    cJSON_AddStringToObject(line, "content_type", r->content_type);
    cJSON_AddStringToObject(line, "body", r->body ? r->body : "");
    char *s = th_json_take(line);
    fprintf(exchanges, "%s\n", s);
    free(s);
    return r->status;
}

/* ex() that expects a status and forgets the answer. */
static void expect(long status, const char *method, const char *route, const char *url,
                   const char *key, const char *ctype, const char *tpl)
{
    th_resp_t r;
    long got = ex(method, route, url, key, ctype, tpl, &r);
    if (got != status)
        fail_msg("%s %s: want %ld, got %ld %s", method, url, status, got, r.body ? r.body : "");
    th_resp_free(&r);
}

#define JSON "application/json"
#define A t.admin_key

static void drive_ops(void)
{
    expect(200, "GET", "/healthz", "/healthz", NULL, NULL, NULL);
    expect(200, "GET", "/readyz", "/readyz", NULL, NULL, NULL);
    expect(200, "GET", "/metrics", "/metrics", NULL, NULL, NULL);
    expect(200, "GET", "/v1/openapi.json", "/v1/openapi.json", NULL, NULL, NULL);
    expect(200, "GET", "/v1/openapi/routes", "/v1/openapi/routes", NULL, NULL, NULL);
}

static void drive_events(void)
{
    char *ev = th_tpl("{'id':'oa-1','type':'waste_generated','time':'@T@','site':'S1',"
                      "'material':'PET','ewc':'15 01 02','quantity':{'value':1.5,'unit':'t',"
                      "'basis':'measured'},'value':{'amount':20,'currency':'EUR'},"
                      "'document':'CN-1','ext':{'bin':'B-17'}}");
    const char *E = "/v1/events", *EI = "/v1/events/{id}";
    expect(201, "POST", E, E, A, JSON, ev);
    expect(200, "POST", E, E, A, JSON, ev);                        /* a duplicate */
    char *other = th_tpl("{'id':'oa-1','type':'waste_generated','time':'@T@','site':'S1',"
                         "'material':'PET','ewc':'150102','quantity':{'value':2,'unit':'t'}}");
    expect(409, "POST", E, E, A, JSON, other);
    char *arr = th_tpl("[{'id':'oa-2','type':'produced','time':'@T@','site':'S1',"
                       "'product':'PN-1','item':'I-1'},"
                       "{'id':'oa-3','type':'waste_generated','time':'@T@','site':'S1',"
                       "'material':'PET','ewc':'150102','lot':'L-1',"
                       "'quantity':{'value':300,'unit':'kg'}}]");
    expect(201, "POST", E, E, A, JSON, arr);
    char *bad = th_tpl("{'type':'waste_generated','time':'@T@','site':'S1','material':'PET',"
                       "'ewc':'150102','quantity':{'value':1,'unit':'tons'},'colour':'red'}");
    expect(422, "POST", E, E, A, JSON, bad);
    expect(400, "POST", E, E, A, JSON, "{'type':");
    expect(415, "POST", E, E, A, "text/plain", "x");
    expect(401, "POST", E, E, NULL, JSON, ev);
    expect(403, "POST", E, E, read_key, JSON, ev);
    free(ev), free(other), free(arr), free(bad);

    expect(200, "GET", EI, "/v1/events/oa-1", A, NULL, NULL);
    expect(200, "GET", EI, "/v1/events/oa-2", read_key, NULL, NULL);
    expect(404, "GET", EI, "/v1/events/nope", A, NULL, NULL);
    expect(200, "GET", E, "/v1/events?limit=2", A, NULL, NULL);
    expect(200, "GET", E, "/v1/events?site=S1&type=waste_generated&from=2020-01-01", A, NULL, NULL);
    expect(400, "GET", E, "/v1/events?limit=0", A, NULL, NULL);
}

/* POST 201, 200 (same), 409 (other content), 422; GET 200, 404, 400; PUT 200; list 200. */
static void drive_kind(const char *plural, const char *create, const char *other,
                       const char *invalid, const char *code)
{
    char list[64], item[64], url[128];
    snprintf(list, sizeof list, "/v1/%s", plural);
    snprintf(item, sizeof item, "/v1/%s/{code}", plural);
    snprintf(url, sizeof url, "/v1/%s/%s", plural, code);
    expect(201, "POST", list, list, A, JSON, create);
    expect(200, "POST", list, list, A, JSON, create);
    expect(409, "POST", list, list, A, JSON, other);
    expect(422, "POST", list, list, A, JSON, invalid);
    expect(200, "GET", item, url, read_key, NULL, NULL);
    expect(200, "PUT", item, url, A, JSON, other);
    expect(200, "GET", list, list, read_key, NULL, NULL);
    snprintf(url, sizeof url, "/v1/%s/NOPE", plural);
    expect(404, "GET", item, url, A, NULL, NULL);
    expect(403, "PUT", item, url, read_key, JSON, other);
    snprintf(url, sizeof url, "/v1/%s?limit=5000", plural);
    expect(400, "GET", list, url, A, NULL, NULL);
}

static void drive_master_data(void)
{
    drive_kind("parties",
               "{'code':'ACME','name':'Acme','roles':['generator'],'country':'MX',"
               "'address':{'city':'Monterrey','country':'MX'},'identifiers':['urn:x:1'],"
               "'permits':[{'kind':'waste','number':'P-1','valid_from':'2026-01-01'}]}",
               "{'code':'ACME','name':'Acme Plastics'}", "{'code':'ACME2','roles':['pirate']}",
               "ACME");
    drive_kind("sites", "{'code':'ACME-1','party':'ACME','name':'Plant','kind':'factory'}",
               "{'code':'ACME-1','party':'ACME','name':'Plant 1','kind':'factory'}",
               "{'code':'ACME-2','party':'ACME','name':'x','kind':'castle'}", "ACME-1");
    drive_kind("materials",
               "{'code':'HDPE','name':'High-density polyethylene','category':'plastic',"
               "'hazardous':false,'density_kg_m3':950,'value_per_kg':0.4,"
               "'recycling_efficiency_eol':0.8,'national_codes':{'basel':'B3010'}}",
               "{'code':'HDPE','name':'HDPE'}", "{'code':'X','name':'x','density_kg_m3':-1}",
               "HDPE");
    drive_kind("products",
               "{'code':'PN-1','name':'Crate','mass_kg':2,'lifetime_days':1825,"
               "'industry_lifetime_days':1460,'revision':'A','status':'released',"
               "'bom':[{'material':'PET','mass_kg':2,'recycled_fraction':0.3}]}",
               "{'code':'PN-1','name':'Crate','mass_kg':2,'revision':'B',"
               "'bom':[{'material':'PET','mass_kg':2,'recycled_fraction':0.3}]}",
               "{'code':'PN-2','name':'x','status':'lost'}", "PN-1");
}

static void drive_metrics(void)
{
    const char *M = "/v1/metrics", *F = "/v1/flows";
    expect(200, "GET", M, "/v1/metrics?from=2020-01-01&to=2040-01-01", read_key, NULL, NULL);
    expect(200, "GET", M, "/v1/metrics?from=2020-01-01&to=2040-01-01&site=S1&material=PET", A,
           NULL, NULL);
    expect(400, "GET", M, "/v1/metrics?to=2040-01-01", A, NULL, NULL);
    expect(200, "GET", F, "/v1/flows?from=2020-01-01&to=2040-01-01", A, NULL, NULL);
    expect(400, "GET", F, "/v1/flows?from=yesterday&to=2040-01-01", A, NULL, NULL);
    const char *IL = "/v1/items/{id}/lifecycles", *LT = "/v1/lots/{id}/trace";
    expect(200, "GET", IL, "/v1/items/I-1/lifecycles", A, NULL, NULL);
    expect(404, "GET", IL, "/v1/items/I-404/lifecycles", A, NULL, NULL);
    expect(200, "GET", LT, "/v1/lots/L-1/trace", A, NULL, NULL);
    expect(200, "GET", LT, "/v1/lots/L-1/trace?direction=forward", A, NULL, NULL);
    expect(400, "GET", LT, "/v1/lots/L-1/trace?direction=up", A, NULL, NULL);
    expect(404, "GET", LT, "/v1/lots/L-404/trace", A, NULL, NULL);
    const char *MC = "/v1/products/{id}/mci";
    expect(200, "GET", MC, "/v1/products/PN-1/mci", A, NULL, NULL);
    expect(200, "GET", MC, "/v1/products/PN-1/mci?from=2020-01-01&to=2040-01-01&u=2", A, NULL,
           NULL);
    expect(404, "GET", MC, "/v1/products/PN-404/mci", A, NULL, NULL);
    const char *T = "/v1/tenant";
    expect(200, "GET", T, T, A, NULL, NULL);
    expect(403, "GET", T, T, read_key, NULL, NULL);
    expect(200, "PUT", T, T, A, JSON, "{'currency':'EUR','mode':'lenient'}");
    expect(422, "PUT", T, T, A, JSON, "{'time_zone':'Mars/Olympus','colour':1}");
}

static void drive_epcis(void)
{
    const char *doc =
        "{'@context':['https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld'],"
        "'type':'EPCISDocument','schemaVersion':'2.0','creationDate':'2026-01-01T00:00:00Z',"
        "'epcisBody':{'eventList':[{'type':'ObjectEvent','eventID':'urn:uuid:oa-1',"
        "'eventTime':'2026-01-01T00:00:00Z','eventTimeZoneOffset':'+00:00','action':'OBSERVE',"
        "'epcList':['urn:epc:id:sgtin:0614141.107346.2017'],'bizStep':'inspecting',"
        "'readPoint':{'id':'urn:epc:id:sgln:0614141.00777.0'}}]}}";
    th_resp_t r;
    long st = ex("POST", "/epcis/capture", "/epcis/capture", A, "application/ld+json", doc, &r);
    assert_int_equal(st, 202);
    char url[512];
    snprintf(url, sizeof url, "%s", r.location);
    th_resp_free(&r);
    expect(200, "GET", "/epcis/capture/{id}", url, A, NULL, NULL);
    expect(404, "GET", "/epcis/capture/{id}", "/epcis/capture/nope", A, NULL, NULL);
    expect(400, "POST", "/epcis/capture", "/epcis/capture", A, JSON, "{'type':'EPCISDocument'}");
    expect(415, "POST", "/epcis/capture", "/epcis/capture", A, "text/xml", "<x/>");
    expect(200, "GET", "/epcis/events", "/epcis/events?perPage=10", read_key, NULL, NULL);
    expect(400, "GET", "/epcis/events", "/epcis/events?perPage=0", A, NULL, NULL);
}

static void drive_reports(void)
{
    th_resp_t r;
    const char *R = "/v1/reports";
    long st = ex("POST", R, R, A, JSON,
                 "{'type':'waste_register','from':'2020-01-01','to':'2040-01-01','site':'S1'}", &r);
    if (st != 201) fail_msg("POST /v1/reports: %ld %s", st, r.body);
    char url[256], id[64];
    snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(r.json, "id")->valuestring);
    th_resp_free(&r);
    snprintf(url, sizeof url, "/v1/reports/%s", id);
    expect(200, "GET", "/v1/reports/{id}", url, read_key, NULL, NULL);
    const char *const exts[] = {"json", "csv", "html"};
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "/v1/reports/%s.%s", id, exts[i]);
        expect(200, "GET", "/v1/reports/{id}.{ext}", url, read_key, NULL, NULL);
    }
    const char *L = "/v1/reports/{id}/consignments", *LX = "/v1/reports/{id}/consignments.{ext}";
    snprintf(url, sizeof url, "/v1/reports/%s/consignments?limit=10", id);
    expect(200, "GET", L, url, read_key, NULL, NULL);
    snprintf(url, sizeof url, "/v1/reports/%s/consignments?limit=0", id);
    expect(400, "GET", L, url, A, NULL, NULL);
    snprintf(url, sizeof url, "/v1/reports/%s/consignments.csv", id);
    expect(200, "GET", LX, url, A, NULL, NULL);
    snprintf(url, sizeof url, "/v1/reports/%s/consignments.json?after=1", id);
    expect(400, "GET", LX, url, A, NULL, NULL);   /* seq 1 is no consignment of it */
    expect(404, "GET", L, "/v1/reports/0123456789abcdef0123456789abcdef/consignments", A, NULL,
           NULL);
    expect(404, "GET", "/v1/reports/{id}", "/v1/reports/0123456789abcdef0123456789abcdef", A,
           NULL, NULL);
    expect(422, "POST", R, R, A, JSON, "{'type':'recovery_certificate','from':'2020-01-01'}");
    expect(403, "POST", R, R, read_key, JSON, "{'type':'waste_register'}");
    expect(200, "GET", R, "/v1/reports?type=waste_register&period=2026", A, NULL, NULL);
    expect(400, "GET", R, "/v1/reports?type=novel", A, NULL, NULL);
}

static void drive_adapters(const char *routes)
{
    const char *D = "/v1/dead-letters";
    expect(200, "GET", D, "/v1/dead-letters?limit=10", A, NULL, NULL);
    expect(400, "GET", D, "/v1/dead-letters?limit=0", A, NULL, NULL);
    expect(403, "GET", D, D, read_key, NULL, NULL);
    expect(200, "POST", "/v1/dead-letters/replay", "/v1/dead-letters/replay", A, NULL, NULL);
    /* Served once plm_register is called at start-up; until then the route check says so. */
    if (strstr(routes, "/v1/adapters/{name}/webhook"))
        expect(401, "POST", "/v1/adapters/{name}/webhook", "/v1/adapters/nope/webhook", NULL,
               JSON, "{}");
}

/* ---- the checker --------------------------------------------------------------------------- */

static void save(const char *name, const char *path, const char *key)
{
    th_resp_t r;
    th_http(client, daemon_.base, "GET", path, key, NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    char file[128];
    path_in_dir(file, sizeof file, name);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    th_resp_free(&r);
}

/* A python3 that imports jsonschema: the first on PATH, else Debian's, installing
 * python3-jsonschema with apt-get when neither has it. NULL when that fails too. */
static const char *python(void)
{
    static const char *const pys[] = {"python3", "/usr/bin/python3"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 2; i++) {
            char *argv[] = {(char *)pys[i], "-c", "import jsonschema", NULL};
            if (th_run(argv) == 0) return pys[i];
        }
        if (round) break;
        fprintf(stderr, "test_openapi: installing python3-jsonschema with apt-get\n");
        char *install[] = {"apt-get", "install", "-y", "-q", "python3-jsonschema", NULL};
        if (th_run(install) != 0) {
            char *update[] = {"apt-get", "update", "-q", NULL};
            th_run(update);
            th_run(install);
        }
    }
    return NULL;
}

static int check(const char *py, const char *spec, const char *routes, const char *lines)
{
    char s[128], r[128], l[128];
    path_in_dir(s, sizeof s, spec);
    path_in_dir(r, sizeof r, routes);
    path_in_dir(l, sizeof l, lines);
    char *argv[] = {(char *)py, "tests/openapi_check.py", s, r, l, NULL};
    return th_run(argv);
}

/* Copies a file, appending one line (a route or an exchange the document does not allow). */
static void copy_with(const char *from, const char *to, const char *replace_tail,
                      const char *append)
{
    char a[128], b[128];
    path_in_dir(a, sizeof a, from);
    path_in_dir(b, sizeof b, to);
    FILE *in = fopen(a, "r"), *out = fopen(b, "w");
    assert_true(in && out);
    buf_t text = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) buf_append(&text, chunk, n);
    if (replace_tail) {   /* "]}" of the routes document becomes an extra route */
        char *end = strrchr(text.data, ']');
        assert_non_null(end);
        text.len = (size_t)(end - text.data);
        buf_puts(&text, replace_tail);
    }
    if (append) buf_puts(&text, append);
    fwrite(text.data, 1, text.len, out);
    buf_free(&text);
    fclose(in);
    fclose(out);
}

static void test_conformance(void **state)
{
    drive_ops();
    drive_master_data();
    drive_events();
    drive_metrics();
    drive_epcis();
    drive_reports();
    th_resp_t routes;
    th_http(client, daemon_.base, "GET", "/v1/openapi/routes", NULL, NULL, NULL, 0, &routes);
    drive_adapters(routes.body ? routes.body : "");
    th_resp_free(&routes);
    fclose(exchanges);
    exchanges = NULL;
    save("spec.json", "/v1/openapi.json", NULL);
    save("routes.json", "/v1/openapi/routes", NULL);
    const char *py = python();
    if (!py) {
        printf("SKIP: test_openapi needs python3 with jsonschema (apt-get install "
               "python3-jsonschema failed)\n");
        skip();
    }
    assert_int_equal(check(py, "spec.json", "routes.json", "exchanges.jsonl"), 0);

    /* The checks bite: a route without an operation, and an answer off its schema. */
    copy_with("routes.json", "routes-extra.json", ",{\"method\":\"GET\",\"path\":\"/v1/unlisted\"}]}",
              NULL);
    assert_int_equal(check(py, "spec.json", "routes-extra.json", "exchanges.jsonl"), 1);
    copy_with("exchanges.jsonl", "exchanges-bad.jsonl", NULL,
              "{\"method\":\"POST\",\"route\":\"/v1/events\",\"status\":201,"
              "\"content_type\":\"application/json\",\"body\":\"{\\\"accepted\\\":1}\"}\n");
    assert_int_equal(check(py, "spec.json", "routes.json", "exchanges-bad.jsonl"), 1);
}

static int setup(void **state)
{
    th_init("test_openapi");
    snprintf(dir, sizeof dir, "/tmp/circa-openapi-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char file[128];
    path_in_dir(file, sizeof file, "exchanges.jsonl");
    exchanges = fopen(file, "w");
    if (!exchanges) return -1;
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    client = th_http_new();
    th_tenant_setup(&t, "openapi");
    th_key_create(&t, "P1", "read", read_key, sizeof read_key);
    return 0;
}

static int teardown(void **state)
{
    if (exchanges) fclose(exchanges);
    th_http_free(client);
    th_daemon_stop(&daemon_);
    fprintf(stderr, "test_openapi: exchanges and documents kept in %s\n", dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_conformance)};
    return cmocka_run_group_tests(tests, setup, teardown);
}

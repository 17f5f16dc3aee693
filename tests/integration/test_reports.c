// uses: tests/harness daemon/buf
/* test_reports — the four report types against a real circad and PostgreSQL: a small park
 * posted through the API, every expected value worked by hand next to its assertion; stored
 * reports are immutable, a later request reads a later block, a tampered download fails
 * `circa report --verify`, and the HTML opens in headless Chromium with one Sankey path per flow
 * (skipped, with SKIP printed, when chromium is not installed). */
#include <math.h>
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
static th_tenant_t park, later;
static th_tenant_t *cur = &park;   /* the tenant the helpers below act for */

static char *q(const char *tpl)
{
    char *s = xstrdup(tpl);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

static void post_ok(const char *path, const char *tpl)
{
    char *body = q(tpl);
    th_resp_t r;
    long st = th_post(path, cur->admin_key, body, &r);
    if (st != 201 && st != 200) fail_msg("POST %s %s: %ld %s", path, body, st, r.body);
    th_resp_free(&r);
    free(body);
}

/* POSTs a report request; returns the 201 answer (caller deletes). */
static cJSON *report(const char *tpl)
{
    char *body = q(tpl);
    th_resp_t r;
    long st = th_post("/v1/reports", cur->admin_key, body, &r);
    if (st != 201) fail_msg("POST /v1/reports %s: %ld %s", body, st, r.body);
    if (strncmp(r.location, "/v1/reports/", 12) != 0) fail_msg("Location is '%s'", r.location);
    cJSON *j = cJSON_Duplicate(r.json, 1);
    th_resp_free(&r);
    free(body);
    return j;
}

/* GET of a report's link (json, csv, html); the body (caller frees). */
static char *fetch(const cJSON *rep, const char *ext, const char *ctype)
{
    const cJSON *l = th_json_at(rep, ext);
    char path[160];
    snprintf(path, sizeof path, "links.%s", ext);
    l = th_json_at(rep, path);
    assert_non_null(l);
    th_resp_t r;
    long st = th_get(l->valuestring, cur->admin_key, &r);
    if (st != 200) fail_msg("GET %s: %ld %s", l->valuestring, st, r.body);
    if (strncmp(r.content_type, ctype, strlen(ctype)) != 0)
        fail_msg("GET %s: content type %s", l->valuestring, r.content_type);
    char *body = xstrdup(r.body);
    th_resp_free(&r);
    return body;
}

static cJSON *fetch_json(const cJSON *rep)
{
    char *s = fetch(rep, "json", "application/json");
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

static void near_(const cJSON *j, const char *path, double want, const char *file, int line)
{
    const cJSON *v = th_json_at(j, path);
    if (!cJSON_IsNumber(v)) fail_msg("%s:%d: %s is not a number", file, line, path);
    if (!(fabs(v->valuedouble - want) < 1e-9 * (1 + fabs(want))))
        fail_msg("%s:%d: %s is %.12g, want %.12g", file, line, path, v->valuedouble, want);
}
#define near(j, path, want) near_(j, path, want, __FILE__, __LINE__)

static double report_num_at(const cJSON *j, const char *path)
{
    const cJSON *v = th_json_at(j, path);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void is_bool(const cJSON *j, const char *path, int want)
{
    const cJSON *v = th_json_at(j, path);
    if (!cJSON_IsBool(v) || cJSON_IsTrue(v) != want)
        fail_msg("%s is not %s", path, want ? "true" : "false");
}

/* The park (UTC): GEN (Germany) generates PET waste and waste batteries; REC (Germany) stores
 * and recycles the PET; FOR (France) takes the batteries. */
static void park_setup(void)
{
    th_tenant_create(&park, "reports");
    post_ok("/v1/parties", "{'code':'GEN','name':'Gen GmbH','roles':['generator'],'country':'DE'}");
    post_ok("/v1/parties", "{'code':'REC','name':'Rec AG','roles':['recycler'],'country':'DE'}");
    post_ok("/v1/parties", "{'code':'FOR','name':'Recyclage SA','roles':['recycler'],'country':'FR',"
            "'address':{'street':'1 rue du Port','city':'Lyon','postcode':'69001','country':'FR'}}");
    post_ok("/v1/sites", "{'code':'GEN-1','party':'GEN','name':'Gen plant','kind':'factory','country':'DE'}");
    post_ok("/v1/sites", "{'code':'REC-1','party':'REC','name':'Rec plant','kind':'recycling','country':'DE'}");
    post_ok("/v1/sites", "{'code':'FOR-1','party':'FOR','name':'Lyon works','kind':'recycling','country':'FR'}");
    post_ok("/v1/materials", "{'code':'PET','name':'PET'}");
    post_ok("/v1/materials", "{'code':'BAT','name':'Lead batteries','hazardous':true}");
    post_ok("/v1/events", "["
        "{'id':'w1','type':'waste_generated','time':'2025-03-03T08:00:00Z','site':'GEN-1','material':'PET','ewc':'150102','lot':'L1','quantity':{'value':3,'unit':'t'}},"
        "{'id':'w2','type':'waste_generated','time':'2025-03-04T08:00:00Z','site':'GEN-1','material':'BAT','ewc':'160601*','lot':'L2','quantity':{'value':2500,'unit':'kg'}},"
        "{'id':'s1','type':'shipped','time':'2025-03-05T08:00:00Z','site':'GEN-1','to_site':'REC-1','material':'PET','ewc':'150102','lot':'L1','quantity':{'value':2000,'unit':'kg','basis':'measured'},"
        " 'planned_operation':'R3','document':'CN-1','carrier':'HAUL','transport':[{'carrier':'HAUL','mode':'road','vehicle':'B-X 1'}],'packaging':{'count':4,'type':'bale','physical_form':'solid'}},"
        "{'id':'r1','type':'received','time':'2025-03-05T12:00:00Z','site':'REC-1','from_site':'GEN-1','material':'PET','ewc':'150102','lot':'L1','operation':'R13','document':'CN-1','acceptance':'accepted','quantity':{'value':2000,'unit':'kg'}},"
        "{'id':'c1','type':'recycled','time':'2025-03-20T08:00:00Z','site':'REC-1','material':'PET','ewc':'150102','lot':'L1','operation':'R3','quantity':{'value':1800,'unit':'kg'}},"
        "{'id':'s2','type':'shipped','time':'2025-03-06T08:00:00Z','site':'GEN-1','to_site':'FOR-1','material':'BAT','ewc':'160601*','lot':'L2','quantity':{'value':2500,'unit':'kg','basis':'estimated'},"
        " 'planned_operation':'R4','document':'CN-2'},"
        "{'id':'r2','type':'received','time':'2025-03-07T08:00:00Z','site':'FOR-1','from_site':'GEN-1','material':'BAT','ewc':'160601*','lot':'L2','document':'CN-2','acceptance':'partial','refused_quantity':{'value':500,'unit':'kg'},'quantity':{'value':2500,'unit':'kg'}}"
        "]");
}

static int setup(void **state)
{
    th_init("test_reports");
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    park_setup();
    return 0;
}

static int teardown(void **state)
{
    th_daemon_stop(&daemon_);
    return 0;
}

/* A page of a report's consignment listing: links.consignments (".csv" for text/csv) and
 * query. The parsed JSON (caller deletes; NULL for CSV), the body into text when given. */
static cJSON *listing(const cJSON *rep, const char *query, const char *ctype, char **text)
{
    const cJSON *l = th_json_at(rep, "links.consignments");
    assert_non_null(l);
    char path[256];
    snprintf(path, sizeof path, "%s%s%s", l->valuestring,
             strcmp(ctype, "text/csv") == 0 ? ".csv" : "", query);
    th_resp_t r;
    long st = th_get(path, cur->admin_key, &r);
    if (st != 200) fail_msg("GET %s: %ld %s", path, st, r.body);
    if (strncmp(r.content_type, ctype, strlen(ctype)) != 0)
        fail_msg("GET %s: content type %s", path, r.content_type);
    cJSON *j = r.json ? cJSON_Duplicate(r.json, 1) : NULL;
    if (text) *text = xstrdup(r.body);
    th_resp_free(&r);
    return j;
}

static void test_waste_register(void **state)
{
    cJSON *rep = report("{'type':'waste_register','from':'2025-03-01','to':'2025-04-01','site':'GEN-1'}");
    cJSON *d = fetch_json(rep);
    th_assert_str(d, "type", "waste_register");
    th_assert_str(d, "id", cJSON_GetObjectItem(rep, "id")->valuestring);
    th_assert_str(d, "period.from", "2025-03-01");
    /* Sorted by code: 150102 then 160601. */
    th_assert_str(d, "data.entries.0.ewc", "150102");
    is_bool(d, "data.entries.0.hazardous", 0);
    near(d, "data.entries.0.generated_kg", 3000);            /* 3 t */
    near(d, "data.entries.0.sent_off_site_kg", 2000);        /* s1 */
    th_assert_str(d, "data.entries.0.destinations.0.receiver", "REC-1");
    th_assert_str(d, "data.entries.0.destinations.0.operation", "R3");   /* planned on s1 */
    near(d, "data.entries.0.destinations.0.basis.measured", 2000);       /* s1 measured */
    near(d, "data.entries.0.consignments", 1);
    near(d, "data.entries.0.documented", 1);                  /* CN-1 */
    th_assert_str(d, "data.entries.0.packaging.0.type", "bale");
    near(d, "data.entries.0.packaging.0.packages", 4);
    th_assert_str(d, "data.entries.0.transport.0.mode", "road");
    near(d, "data.entries.0.transport.0.legs", 1);
    th_assert_str(d, "data.entries.0.acceptance.0.acceptance", "accepted");   /* r1 */
    near(d, "data.entries.0.refused_kg", 0);
    th_assert_str(d, "data.entries.1.ewc", "160601");
    is_bool(d, "data.entries.1.hazardous", 1);
    th_assert_has(d, "data.entries.1.description");
    near(d, "data.entries.1.generated_kg", 2500);
    th_assert_str(d, "data.entries.1.destinations.0.receiver", "FOR-1");
    near(d, "data.entries.1.destinations.0.basis.estimated", 2500);      /* s2 estimated */
    th_assert_str(d, "data.entries.1.acceptance.0.acceptance", "partial");    /* r2 */
    near(d, "data.entries.1.refused_kg", 500);
    near(d, "data.entries.1.refused_loads", 1);
    assert_int_equal(cJSON_GetArraySize(th_json_at(d, "data.entries.1.packaging")), 0);
    near(d, "data.totals.generated_kg", 5500);              /* 3000 + 2500 */
    near(d, "data.totals.hazardous_generated_kg", 2500);
    near(d, "data.totals.sent_off_site_kg", 4500);          /* 2000 + 2500 */
    near(d, "data.totals.consignments", 2);
    near(d, "data.consignments.count", 2);
    near(d, "data.consignments.kg", 4500);
    /* The consignments themselves, as of the report's block, in time order: s1, then s2. */
    cJSON *l = listing(rep, "", "application/json", NULL);
    assert_int_equal(cJSON_GetArraySize(th_json_at(l, "consignments")), 2);
    th_assert_str(l, "consignments.0.event", "s1");
    th_assert_str(l, "consignments.0.ewc", "150102");
    th_assert_str(l, "consignments.0.document", "CN-1");
    th_assert_str(l, "consignments.0.carrier", "HAUL");
    th_assert_str(l, "consignments.0.transport.0.mode", "road");
    near(l, "consignments.0.packaging.count", 4);
    th_assert_str(l, "consignments.0.basis", "measured");
    th_assert_str(l, "consignments.0.receipt", "r1");
    th_assert_str(l, "consignments.0.acceptance", "accepted");   /* r1 */
    th_assert_str(l, "consignments.0.operation_from", "planned_operation");
    th_assert_str(l, "consignments.1.event", "s2");
    th_assert_str(l, "consignments.1.acceptance", "partial");    /* r2 */
    near(l, "consignments.1.refused_kg", 500);
    is_bool(l, "consignments.1.hazardous", 1);
    near(l, "block.seq", report_num_at(d, "block.seq"));
    assert_true(cJSON_IsNull(th_json_at(l, "next")));
    cJSON_Delete(l);
    /* One per page: the first names the second's cursor. */
    l = listing(rep, "?limit=1", "application/json", NULL);
    assert_int_equal(cJSON_GetArraySize(th_json_at(l, "consignments")), 1);
    char q[64];
    snprintf(q, sizeof q, "?limit=1&after=%.0f", th_json_at(l, "next")->valuedouble);
    cJSON_Delete(l);
    l = listing(rep, q, "application/json", NULL);
    th_assert_str(l, "consignments.0.event", "s2");
    assert_true(cJSON_IsNull(th_json_at(l, "next")));
    cJSON_Delete(l);
    char *csv = fetch(rep, "csv", "text/csv");
    /* header + per code: generated, 1 destination, 1 acceptance; 150102 also packaging and
     * transport = 1 + 5 + 3 lines */
    int lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 9);
    assert_non_null(strstr(csv, "sent,150102,"));
    free(csv);
    listing(rep, "", "text/csv", &csv);
    lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 3);   /* header, s1, s2 */
    assert_non_null(strstr(csv, "\ns1,"));
    free(csv);
    cJSON_Delete(d);
    cJSON_Delete(rep);
}

static void test_prtr(void **state)
{
    cJSON *rep = report("{'type':'prtr_transfers','from':'2025-01-01','to':'2026-01-01'}");
    cJSON *d = fetch_json(rep);
    /* Only GEN-1 sends waste off-site. */
    assert_int_equal(cJSON_GetArraySize(th_json_at(d, "data.facilities")), 1);
    th_assert_str(d, "data.facilities.0.site", "GEN-1");
    near(d, "data.facilities.0.year", 2025);
    /* Hazardous: s2 2500 kg > 2000 kg threshold, recovery R4, estimated → E. */
    near(d, "data.facilities.0.hazardous.kg", 2500);
    is_bool(d, "data.facilities.0.hazardous.reportable", 1);
    near(d, "data.facilities.0.hazardous.recovery.kg", 2500);
    near(d, "data.facilities.0.hazardous.recovery.basis.estimated", 2500);
    th_assert_str(d, "data.facilities.0.hazardous.recovery.method", "E");
    near(d, "data.facilities.0.hazardous.disposal.kg", 0);
    /* Abroad: FOR-1 is in France, GEN-1 in Germany. */
    th_assert_str(d, "data.facilities.0.hazardous.abroad.0.name", "Recyclage SA");
    th_assert_str(d, "data.facilities.0.hazardous.abroad.0.address.city", "Lyon");
    th_assert_str(d, "data.facilities.0.hazardous.abroad.0.country", "FR");
    /* Non-hazardous: s1 2000 kg, far below 2,000,000 kg; measured → M. */
    near(d, "data.facilities.0.non_hazardous.kg", 2000);
    is_bool(d, "data.facilities.0.non_hazardous.reportable", 0);
    th_assert_str(d, "data.facilities.0.non_hazardous.recovery.method", "M");
    assert_int_equal(cJSON_GetArraySize(th_json_at(d, "data.facilities.0.non_hazardous.abroad")), 0);
    cJSON_Delete(d);
    cJSON_Delete(rep);
}

static void test_circularity(void **state)
{
    cJSON *rep = report("{'type':'circularity_summary','from':'2025-02-01','to':'2025-04-01'}");
    cJSON *d = fetch_json(rep);
    near(d, "data.metrics.waste_generated_kg.value", 5500);
    /* recycling 1800 (c1, R3) of final treatment 1800 */
    near(d, "data.metrics.recycling_rate.value", 1);
    assert_int_equal(cJSON_GetArraySize(th_json_at(d, "data.months")), 2);
    th_assert_str(d, "data.months.0.month", "2025-02");
    near(d, "data.months.0.metrics.waste_generated_kg.value", 0);
    th_assert_str(d, "data.months.1.month", "2025-03");
    near(d, "data.months.1.metrics.waste_generated_kg.value", 5500);
    /* Flows: source→GEN-1 5500, GEN-1→REC-1 2000, GEN-1→FOR-1 2500, REC-1→op:R3 1800. */
    assert_int_equal(cJSON_GetArraySize(th_json_at(d, "data.flows.links")), 4);
    char *html = fetch(rep, "html", "text/html");
    int paths = 0;
    for (const char *p = html; (p = strstr(p, "class=\"flow\"")); p++) paths++;
    assert_int_equal(paths, 4);
    free(html);
    cJSON_Delete(d);
    cJSON_Delete(rep);
}

static void test_recovery_certificate(void **state)
{
    cJSON *rep = report("{'type':'recovery_certificate','from':'2025-03-01','to':'2025-04-01',"
                        "'generator':'GEN','recycler':'REC'}");
    cJSON *d = fetch_json(rep);
    th_assert_str(d, "data.generator.name", "Gen GmbH");
    assert_int_equal(cJSON_GetArraySize(th_json_at(d, "data.receipts")), 1);   /* r1 only */
    th_assert_str(d, "data.receipts.0.event", "r1");
    /* r1 (R13 storage) is followed to c1: 1800 kg recycled by R3 */
    th_assert_str(d, "data.receipts.0.operations.0.event", "c1");
    th_assert_str(d, "data.receipts.0.operations.0.operation", "R3");
    near(d, "data.totals.received_kg", 2000);
    near(d, "data.totals.recovered_kg", 1800);
    near(d, "data.totals.disposed_kg", 0);
    near(d, "data.totals.by_operation.R3", 1800);
    cJSON_Delete(d);
    cJSON_Delete(rep);
}

static void test_refusals(void **state)
{
    const char *bad[] = {"{'type':'nope','from':'2025-01-01','to':'2025-02-01'}",
                         "{'type':'waste_register','from':'2025-01-01'}",
                         "{'type':'waste_register','from':'2025-01-01','to':'2025-02-01','x':1}",
                         "{'type':'waste_register','from':'2025-01-01','to':'2025-02-01','site':'NOPE'}",
                         "{'type':'recovery_certificate','from':'2025-01-01','to':'2025-02-01'}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *body = q(bad[i]);
        th_resp_t r;
        th_post("/v1/reports", park.admin_key, body, &r);
        th_assert_problem(&r, 422, "invalid-report");
        th_resp_free(&r);
        free(body);
    }
    th_resp_t r;
    th_get("/v1/reports/0123456789abcdef0123456789abcdef.json", park.admin_key, &r);
    th_assert_problem(&r, 404, NULL);
    th_resp_free(&r);
    char key[256];
    th_key_create(&park, NULL, "read", key, sizeof key);
    char *body = q("{'type':'waste_register','from':'2025-01-01','to':'2025-02-01'}");
    th_post("/v1/reports", key, body, &r);   /* read may fetch, not generate */
    th_assert_problem(&r, 403, NULL);
    th_resp_free(&r);
    free(body);
}

/* Writes s to a fresh file under $CIRCA_DATA_DIR; the path into out. */
static void save(const char *name, const char *s, char *out, size_t len)
{
    const char *dir = getenv("CIRCA_DATA_DIR");
    snprintf(out, len, "%s/%d-%s", dir && *dir ? dir : "/tmp", (int)getpid(), name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_immutable_and_verify(void **state)
{
    const char *req = "{'type':'waste_register','from':'2025-03-01','to':'2025-04-01'}";
    cJSON *a = report(req);
    char *json = fetch(a, "json", "application/json");
    char path[512], out[2048];
    save("report.json", json, path, sizeof path);
    assert_int_equal(th_cli(out, sizeof out, "report", "--verify", path, NULL), 0);
    assert_non_null(strstr(out, ": OK"));
    /* The stored row cannot change. */
    const char *p[2] = {park.id, cJSON_GetObjectItem(a, "id")->valuestring};
    assert_int_equal(th_db_long("WITH u AS (UPDATE report SET sha256 = 'x' WHERE tenant_id = $1 "
                                "AND id = $2 RETURNING 1) SELECT count(*) FROM u", 2, p), -1);
    /* One kilogram more in the file: the hash no longer matches the stored report's. */
    char *t = strstr(json, "\"generated_kg\":3000");
    assert_non_null(t);
    t[sizeof "\"generated_kg\":300" - 1] = '1';
    save("tampered.json", json, path, sizeof path);
    assert_int_equal(th_cli(out, sizeof out, "report", "--verify", path, NULL), 1);
    assert_non_null(strstr(out, "FAILED"));
    /* The same request after another event: a new report at the new block. */
    post_ok("/v1/events", "{'id':'w9','type':'waste_generated','time':'2025-03-28T08:00:00Z',"
            "'site':'GEN-1','material':'PET','ewc':'150102','quantity':{'value':10,'unit':'kg'}}");
    cJSON *b = report(req);
    assert_string_not_equal(cJSON_GetObjectItem(a, "id")->valuestring,
                            cJSON_GetObjectItem(b, "id")->valuestring);
    assert_string_not_equal(cJSON_GetObjectItem(a, "block")->valuestring,
                            cJSON_GetObjectItem(b, "block")->valuestring);
    cJSON *d = fetch_json(b);
    near(d, "data.totals.generated_kg", 5510);   /* 5500 + 10 */
    cJSON_Delete(d);
    th_resp_t r;
    th_get("/v1/reports?type=waste_register&period=2025-03", park.admin_key, &r);
    assert_int_equal(r.status, 200);
    assert_true(cJSON_GetArraySize(th_json_at(r.json, "reports")) >= 3);
    th_resp_free(&r);
    free(json);
    cJSON_Delete(a);
    cJSON_Delete(b);
}

/* The listing of a register is as of its block: receipts, treatments, shipments documenting
 * a collection and corrections that come later change later registers only. A tenant of its
 * own (June 2025), so the park's figures stay as they are. A (sites A-1) sends to B (B-1) and
 * to the collector C (C-1). */
static void test_listing_as_of_block(void **state)
{
    cur = &later;
    th_tenant_create(&later, "reports-asof");
    post_ok("/v1/parties", "{'code':'A','name':'A GmbH','roles':['generator'],'country':'DE'}");
    post_ok("/v1/parties", "{'code':'B','name':'B AG','roles':['recycler'],'country':'DE'}");
    post_ok("/v1/parties", "{'code':'C','name':'C KG','roles':['collector'],'country':'DE'}");
    post_ok("/v1/sites", "{'code':'A-1','party':'A','name':'A plant','kind':'factory'}");
    post_ok("/v1/sites", "{'code':'B-1','party':'B','name':'B plant','kind':'recycling'}");
    post_ok("/v1/sites", "{'code':'C-1','party':'C','name':'C yard','kind':'collection_point'}");
    post_ok("/v1/materials", "{'code':'PET','name':'PET'}");
    /* s1 names no EWC code and no operation: the code comes from its lot's generation. */
    post_ok("/v1/events", "["
        "{'id':'g1','type':'waste_generated','time':'2025-06-02T08:00:00Z','site':'A-1','material':'PET','ewc':'150102','lot':'L1','quantity':{'value':1000,'unit':'kg'}},"
        "{'id':'s1','type':'shipped','time':'2025-06-03T08:00:00Z','site':'A-1','to_site':'B-1','material':'PET','lot':'L1','document':'D-1','quantity':{'value':1000,'unit':'kg'}}]");
    const char *june = "{'type':'waste_register','from':'2025-06-01','to':'2025-07-01'}";
    cJSON *r1 = report(june);
    /* The receipt names the document only (no lot), refuses 200 kg; B recycles the lot (R3). */
    post_ok("/v1/events", "["
        "{'id':'r1','type':'received','time':'2025-06-04T08:00:00Z','site':'B-1','from_site':'A-1','material':'PET','document':'D-1','acceptance':'partial','refused_quantity':{'value':200,'unit':'kg'},'quantity':{'value':1000,'unit':'kg'}},"
        "{'id':'t1','type':'recycled','time':'2025-06-10T08:00:00Z','site':'B-1','material':'PET','ewc':'150102','lot':'L1','operation':'R3','quantity':{'value':800,'unit':'kg'}}]");
    cJSON *r2 = report(june);
    /* Out of order: r3 before its shipment s3 (refused whole); c4 collected from A-1 and then
     * documented by the shipment s4 of the same lot to the collector; s1 corrected to 950 kg. */
    post_ok("/v1/events", "{'id':'r3','type':'received','time':'2025-06-12T08:00:00Z','site':'B-1','from_site':'A-1','material':'PET','lot':'L3','acceptance':'refused','quantity':{'value':300,'unit':'kg'}}");
    post_ok("/v1/events", "{'id':'s3','type':'shipped','time':'2025-06-11T08:00:00Z','site':'A-1','to_site':'B-1','material':'PET','ewc':'150102','lot':'L3','planned_operation':'D1','quantity':{'value':300,'unit':'kg'}}");
    post_ok("/v1/events", "{'id':'c4','type':'collected','time':'2025-06-14T08:00:00Z','site':'C-1','from_site':'A-1','material':'PET','ewc':'150102','lot':'L4','quantity':{'value':200,'unit':'kg'}}");
    cJSON *r3 = report(june);
    post_ok("/v1/events", "{'id':'s4','type':'shipped','time':'2025-06-13T08:00:00Z','site':'A-1','to_site':'C-1','material':'PET','ewc':'150102','lot':'L4','quantity':{'value':200,'unit':'kg'}}");
    post_ok("/v1/events", "{'id':'x1','type':'corrected','time':'2025-06-20T08:00:00Z','corrects':'s1',"
            "'replacement':{'id':'s1r','type':'shipped','time':'2025-06-03T08:00:00Z','site':'A-1','to_site':'B-1','material':'PET','lot':'L1','document':'D-1','quantity':{'value':950,'unit':'kg'}}}");
    cJSON *r4 = report(june);

    /* r1: s1 alone, nothing received yet; its EWC code from g1. */
    cJSON *l = listing(r1, "", "application/json", NULL);
    assert_int_equal(cJSON_GetArraySize(th_json_at(l, "consignments")), 1);
    th_assert_str(l, "consignments.0.event", "s1");
    th_assert_str(l, "consignments.0.ewc", "150102");
    assert_true(cJSON_IsNull(th_json_at(l, "consignments.0.receipt")));
    assert_true(cJSON_IsNull(th_json_at(l, "consignments.0.operation")));
    cJSON_Delete(l);
    /* r2: r1 matched by document (partial, 200 kg refused), the operation from t1. */
    cJSON *d = fetch_json(r2);
    near(d, "data.consignments.count", 1);
    th_assert_str(d, "data.entries.0.destinations.0.operation", "R3");
    near(d, "data.entries.0.refused_kg", 200);
    near(d, "data.totals.refused_loads", 1);
    cJSON_Delete(d);
    l = listing(r2, "", "application/json", NULL);
    th_assert_str(l, "consignments.0.receipt", "r1");
    th_assert_str(l, "consignments.0.acceptance", "partial");
    th_assert_str(l, "consignments.0.operation", "R3");
    th_assert_str(l, "consignments.0.operation_from", "treatment");
    near(l, "consignments.0.kg", 1000);
    cJSON_Delete(l);
    /* r3: s1, s3 (r3 came first: refused, 300 kg) and c4 (no shipment documents it yet). */
    l = listing(r3, "", "application/json", NULL);
    assert_int_equal(cJSON_GetArraySize(th_json_at(l, "consignments")), 3);
    th_assert_str(l, "consignments.1.event", "s3");
    th_assert_str(l, "consignments.1.acceptance", "refused");
    near(l, "consignments.1.refused_kg", 300);
    th_assert_str(l, "consignments.2.event", "c4");
    cJSON_Delete(l);
    /* r4: s1r (950 kg, still r1 and R3) instead of s1, s3, and s4 instead of c4 (by time:
     * s1r 3 June, s3 11 June, s4 13 June). 950 + 300 + 200 = 1450 kg; refused 200 + 300. */
    d = fetch_json(r4);
    near(d, "data.consignments.count", 3);
    near(d, "data.consignments.kg", 1450);
    near(d, "data.totals.refused_kg", 500);
    near(d, "data.totals.refused_loads", 2);
    th_assert_str(d, "data.entries.0.destinations.0.receiver", "B-1");   /* s3, D1 */
    th_assert_str(d, "data.entries.0.destinations.0.operation", "D1");
    th_assert_str(d, "data.entries.0.destinations.1.operation", "R3");   /* s1r */
    near(d, "data.entries.0.destinations.1.kg", 950);
    th_assert_str(d, "data.entries.0.destinations.2.receiver", "C-1");   /* s4 */
    cJSON_Delete(d);
    l = listing(r4, "", "application/json", NULL);
    assert_int_equal(cJSON_GetArraySize(th_json_at(l, "consignments")), 3);
    th_assert_str(l, "consignments.0.event", "s1r");
    th_assert_str(l, "consignments.0.receipt", "r1");
    near(l, "consignments.0.kg", 950);
    th_assert_str(l, "consignments.2.event", "s4");
    cJSON_Delete(l);
    /* The earlier listings did not move. */
    l = listing(r2, "", "application/json", NULL);
    assert_int_equal(cJSON_GetArraySize(th_json_at(l, "consignments")), 1);
    th_assert_str(l, "consignments.0.event", "s1");
    near(l, "consignments.0.kg", 1000);
    cJSON_Delete(l);
    l = listing(r3, "", "application/json", NULL);
    th_assert_str(l, "consignments.2.event", "c4");
    cJSON_Delete(l);
    /* A bad cursor, and a report type without a listing. */
    th_resp_t r;
    char path[160];
    snprintf(path, sizeof path, "%s?after=999999", th_json_at(r4, "links.consignments")->valuestring);
    th_get(path, later.admin_key, &r);
    th_assert_problem(&r, 400, "invalid-query");
    th_resp_free(&r);
    cJSON *pr = report("{'type':'prtr_transfers','from':'2025-01-01','to':'2026-01-01'}");
    assert_null(th_json_at(pr, "links.consignments"));
    snprintf(path, sizeof path, "/v1/reports/%s/consignments", cJSON_GetObjectItem(pr, "id")->valuestring);
    th_get(path, later.admin_key, &r);
    th_assert_problem(&r, 404, NULL);
    th_resp_free(&r);
    cJSON_Delete(pr);
    cJSON_Delete(r1);
    cJSON_Delete(r2);
    cJSON_Delete(r3);
    cJSON_Delete(r4);
    cur = &park;
}

/* Replaces the first want in the file with repl (same length); fails when absent. */
static void patch_file(const char *path, const char *want, const char *repl)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
    char *p = b.data ? strstr(b.data, want) : NULL;
    if (!p) fail_msg("%s holds no %s", path, want);
    assert_int_equal(strlen(want), strlen(repl));
    fseek(f, p - b.data, SEEK_SET);
    fwrite(repl, 1, strlen(repl), f);
    fclose(f);
    buf_free(&b);
}

/* Adds by kg to the park's day roll-up of what went to FOR-1 (one row). */
static void shift_for1_kg(const char *by)
{
    const char *p[2] = {park.id, by};
    assert_int_equal(th_db_long("WITH u AS (UPDATE consignment_day SET kg = kg + $2::float8 "
                                "WHERE tenant_id = $1 AND receiver = 'FOR-1' RETURNING 1) "
                                "SELECT count(*) FROM u", 2, p), 1);
}

/* A register recomputed from the ledger, with and without the database: `circa verify
 * --report` (events from PostgreSQL) and `circa verify --offline` (events from `circa
 * export`) agree with the report and its downloaded listing, and find a changed listing, and
 * a report whose derived tables were changed behind the ledger's back. */
static void test_verify_register(void **state)
{
    setenv("CIRCA_URL", daemon_.base, 1);
    setenv("CIRCA_KEY", park.admin_key, 1);
    cJSON *rep = report("{'type':'waste_register','from':'2025-03-01','to':'2025-04-01','site':'GEN-1'}");
    char *json = fetch(rep, "json", "application/json");
    char path[512], list[512], exp[512], out[4096];
    save("register.json", json, path, sizeof path);
    save("listing.ndjson", "", list, sizeof list);
    assert_int_equal(th_cli(out, sizeof out, "report", "--listing",
                            cJSON_GetObjectItem(rep, "id")->valuestring, "-o", list, NULL), 0);
    assert_int_equal(th_cli(out, sizeof out, "verify", "--report", path, "--consignments", list,
                            NULL), 0);
    assert_non_null(strstr(out, "register recomputed from the ledger up to block"));
    assert_non_null(strstr(out, ": 2 consignments: OK"));   /* s1, s2 */
    save("export.ndjson", "", exp, sizeof exp);
    assert_int_equal(th_cli(out, sizeof out, "export", "--tenant", park.id, "-o", exp, NULL), 0);
    assert_int_equal(th_cli(out, sizeof out, "verify", "--offline", exp, "--report", path,
                            "--consignments", list, NULL), 0);
    assert_non_null(strstr(out, "register recomputed from the export: 2 consignments, listing the same"));
    /* s2's refused mass changed in the listing: both find it. */
    patch_file(list, "\"refused_kg\":500", "\"refused_kg\":400");
    assert_int_equal(th_cli(out, sizeof out, "verify", "--report", path, "--consignments", list,
                            NULL), 1);
    assert_non_null(strstr(out, "consignment 2 (s2): refused_kg differs"));
    assert_int_equal(th_cli(out, sizeof out, "verify", "--offline", exp, "--report", path,
                            "--consignments", list, NULL), 1);
    assert_non_null(strstr(out, "refused_kg differs"));
    /* The day roll-up changed behind the ledger's back: the next register is stored and hashed
     * as usual, but its figures are not the ledger's. */
    shift_for1_kg("1");
    cJSON *bad = report("{'type':'waste_register','from':'2025-03-01','to':'2025-04-01','site':'GEN-1'}");
    char *bjson = fetch(bad, "json", "application/json");
    save("bad.json", bjson, path, sizeof path);
    assert_int_equal(th_cli(out, sizeof out, "verify", "--report", path, NULL), 1);
    assert_non_null(strstr(out, "entries[160601].destinations[FOR-1/R4].kg is 2501 in the report, 2500 from the ledger"));
    shift_for1_kg("-1");
    free(bjson);
    free(json);
    cJSON_Delete(bad);
    cJSON_Delete(rep);
}

/* Headless Chromium loads the HTML from a file: it renders, and its DOM holds one Sankey path
 * per flow. */
static void test_html_in_chromium(void **state)
{
    if (system("command -v chromium >/dev/null 2>&1") != 0) {
        printf("SKIP: chromium is not installed\n");
        skip();
    }
    cJSON *rep = report("{'type':'circularity_summary','from':'2025-03-01','to':'2025-04-01'}");
    char *html = fetch(rep, "html", "text/html");
    char path[512], dir[600], cmd[2048];
    save("report.html", html, path, sizeof path);
    snprintf(dir, sizeof dir, "%s.profile", path);
    snprintf(cmd, sizeof cmd, "chromium --headless --no-sandbox --disable-gpu --no-first-run "
             "--disable-background-networking --disable-component-update --disable-sync "
             "--user-data-dir=%s --dump-dom file://%s 2>/dev/null; rm -rf %s", dir, path, dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    buf_t dom = BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&dom, chunk, n);
    assert_int_equal(pclose(f), 0);
    assert_non_null(dom.data);
    assert_non_null(strstr(dom.data, "<svg class=\"sankey\""));
    assert_non_null(strstr(dom.data, "</html>"));
    int paths = 0;
    for (const char *p = dom.data; (p = strstr(p, "class=\"flow\"")); p++) paths++;
    assert_int_equal(paths, 4);   /* the four flows of March */
    buf_free(&dom);
    free(html);
    cJSON_Delete(rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waste_register),
        cmocka_unit_test(test_prtr),
        cmocka_unit_test(test_circularity),
        cmocka_unit_test(test_recovery_certificate),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_immutable_and_verify),
        cmocka_unit_test(test_listing_as_of_block),
        cmocka_unit_test(test_verify_register),
        cmocka_unit_test(test_html_in_chromium),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

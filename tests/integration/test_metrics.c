// uses: tests/harness daemon/buf
/* test_metrics — metrics, flows, item lives, lot lineage and tenant settings against a real
 * circad and PostgreSQL: a small park posted through the API, every metric worked by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"

static th_daemon_t daemon_;
static th_http_t *client;
static th_tenant_t park;
static cJSON *m;   /* GET /v1/metrics of the park for March 2025 */

/* JSON written with ' for " so the scenario stays readable. */
static char *q(const char *tpl)
{
    char *s = xstrdup(tpl);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

static void post_ok(const th_tenant_t *t, const char *path, const char *tpl)
{
    char *body = q(tpl);
    th_resp_t r;
    long st = th_post(path, t->admin_key, body, &r);
    if (st != 201 && st != 200) fail_msg("POST %s %s: %ld %s", path, body, st, r.body);
    th_resp_free(&r);
    free(body);
}

static cJSON *get_ok(const th_tenant_t *t, const char *path)
{
    th_resp_t r;
    long st = th_get(path, t->admin_key, &r);
    if (st != 200) fail_msg("GET %s: %ld %s", path, st, r.body);
    cJSON *j = cJSON_Duplicate(r.json, 1);
    th_resp_free(&r);
    return j;
}

static void get_problem(const th_tenant_t *t, const char *path, long status)
{
    th_resp_t r;
    th_get(path, t->admin_key, &r);
    th_assert_problem(&r, status, NULL);
    th_resp_free(&r);
}

static double num(const cJSON *j, const char *path)
{
    const cJSON *v = th_json_at(j, path);
    if (!cJSON_IsNumber(v)) fail_msg("%s is not a number", path);
    return v->valuedouble;
}

static void near_(const cJSON *j, const char *path, double want, const char *file, int line)
{
    double got = num(j, path);
    if (!(fabs(got - want) < 1e-9 * (1 + fabs(want))))
        fail_msg("%s:%d: %s is %.12g, want %.12g", file, line, path, got, want);
}
#define near(j, path, want) near_(j, path, want, __FILE__, __LINE__)

static void park_setup(void)
{
    th_tenant_create(&park, "park");
    const char *parties[] = {"MAN", "COL", "REC", "LFP", "EFWP", "EXT"};
    for (int i = 0; i < 6; i++) th_party_create(&park, parties[i]);
    th_site_create(&park, "MAN-1", "MAN");
    th_site_create(&park, "COL-1", "COL");
    th_site_create(&park, "REC-1", "REC");
    th_site_create(&park, "LF-1", "LFP");
    th_site_create(&park, "EFW-1", "EFWP");
    post_ok(&park, "/v1/materials", "{'code':'PET','name':'PET','value_per_kg':0.5}");
    post_ok(&park, "/v1/materials", "{'code':'MIX','name':'Mixed waste'}");
    post_ok(&park, "/v1/products", "{'code':'CRATE','name':'Crate','mass_kg':2,"
            "'bom':[{'material':'PET','mass_kg':2,'recycled_fraction':0.25}]}");
}

/* The park in March 2025 (UTC). Waste: 1000 kg PET, 600 kg mixed, 100 kg hazardous batteries. */
static void park_events(void)
{
    post_ok(&park, "/v1/events", "["
        "{'id':'w1','type':'waste_generated','time':'2025-03-02T08:00:00Z','site':'MAN-1','material':'PET','ewc':'150102','lot':'L-W1','quantity':{'value':1000,'unit':'kg'}},"
        "{'id':'w2','type':'waste_generated','time':'2025-03-02T09:00:00Z','site':'MAN-1','material':'MIX','ewc':'200301','lot':'L-W2','quantity':{'value':600,'unit':'kg'}},"
        "{'id':'w3','type':'waste_generated','time':'2025-03-02T10:00:00Z','site':'MAN-1','material':'MIX','ewc':'160601*','lot':'L-W3','quantity':{'value':100,'unit':'kg'}},"
        "{'id':'c1','type':'collected','time':'2025-03-03T08:00:00Z','site':'COL-1','from_site':'MAN-1','material':'PET','ewc':'150102','lot':'L-W1','quantity':{'value':1000,'unit':'kg'}},"
        "{'id':'c2','type':'collected','time':'2025-03-03T09:00:00Z','site':'COL-1','from_site':'MAN-1','material':'MIX','ewc':'200301','lot':'L-W2','quantity':{'value':600,'unit':'kg'}},"
        "{'id':'c3','type':'collected','time':'2025-03-03T10:00:00Z','site':'COL-1','from_site':'MAN-1','material':'MIX','ewc':'160601*','lot':'L-W3','quantity':{'value':100,'unit':'kg'}},"
        "{'id':'s1','type':'shipped','time':'2025-03-04T08:00:00Z','site':'COL-1','to_site':'REC-1','material':'PET','ewc':'150102','lot':'L-W1','quantity':{'value':1000,'unit':'kg'}},"
        "{'id':'r1','type':'received','time':'2025-03-05T08:00:00Z','site':'REC-1','from_site':'COL-1','operation':'R13','material':'PET','ewc':'150102','lot':'L-W1','quantity':{'value':1000,'unit':'kg'}},"
        "{'id':'rc1','type':'recycled','time':'2025-03-06T08:00:00Z','site':'REC-1','operation':'R3','material':'PET','ewc':'150102','lot':'L-W1','quantity':{'value':700,'unit':'kg'},'value':{'amount':280,'currency':'EUR'}},"
        "{'id':'s2','type':'shipped','time':'2025-03-07T08:00:00Z','site':'COL-1','to_site':'REC-1','material':'PET','ewc':'150102','lot':'L-W4','quantity':{'value':200,'unit':'kg'}},"
        "{'id':'r2','type':'received','time':'2025-03-07T12:00:00Z','site':'REC-1','from_site':'COL-1','operation':'R13','material':'PET','ewc':'150102','lot':'L-W4','quantity':{'value':200,'unit':'kg'}},"
        "{'id':'s3','type':'shipped','time':'2025-03-08T08:00:00Z','site':'COL-1','to_site':'LF-1','material':'MIX','ewc':'200301','lot':'L-W2','quantity':{'value':400,'unit':'kg'}},"
        "{'id':'r3','type':'received','time':'2025-03-08T12:00:00Z','site':'LF-1','from_site':'COL-1','material':'MIX','ewc':'200301','lot':'L-W2','quantity':{'value':400,'unit':'kg'}},"
        "{'id':'d1','type':'disposed','time':'2025-03-09T08:00:00Z','site':'LF-1','operation':'D1','material':'MIX','ewc':'200301','quantity':{'value':400,'unit':'kg'}},"
        "{'id':'s4','type':'shipped','time':'2025-03-08T09:00:00Z','site':'COL-1','to_site':'EFW-1','material':'MIX','ewc':'200301','quantity':{'value':200,'unit':'kg'}},"
        "{'id':'r4','type':'received','time':'2025-03-08T13:00:00Z','site':'EFW-1','from_site':'COL-1','material':'MIX','ewc':'200301','quantity':{'value':150,'unit':'kg'}},"
        "{'id':'e1','type':'energy_recovered','time':'2025-03-09T09:00:00Z','site':'EFW-1','operation':'R1','material':'MIX','ewc':'200301','quantity':{'value':150,'unit':'kg'}},"
        "{'id':'d2','type':'disposed','time':'2025-03-09T10:00:00Z','site':'EFW-1','operation':'D10','material':'MIX','ewc':'200301','quantity':{'value':50,'unit':'kg'}},"
        "{'id':'s5','type':'shipped','time':'2025-03-10T08:00:00Z','site':'COL-1','to_site':'EXT','material':'MIX','ewc':'160601*','lot':'L-W3','quantity':{'value':100,'unit':'kg'}},"
        "{'id':'pt1','type':'disposed','time':'2025-03-10T09:00:00Z','site':'REC-1','operation':'D9','material':'MIX','ewc':'191212','quantity':{'value':30,'unit':'kg'}},"
        "{'id':'t1','type':'transformed','time':'2025-03-06T10:00:00Z','site':'REC-1',"
        " 'inputs':[{'lot':'L-IN','material':'PET','quantity':{'value':1000,'unit':'kg'}}],"
        " 'outputs':[{'lot':'L-FL','material':'PET','quantity':{'value':950,'unit':'kg'},'fate':'secondary_material'}],"
        " 'loss':{'value':40,'unit':'kg'}},"
        "{'id':'pr1','type':'produced','time':'2025-03-01T06:00:00Z','site':'MAN-1','product':'CRATE','quantity':{'value':100,'unit':'kg'}},"
        "{'id':'cs1','type':'consumed','time':'2025-03-01T05:00:00Z','site':'MAN-1','material':'PET','quantity':{'value':300,'unit':'kg'}}"
        "]");
    /* Crates: I-1 lives twice (10 and 19 days), I-2 once (20 days) then is recycled, I-3 is
     * put on market and still in use. Each weighs 2 kg (the product's mass). */
    post_ok(&park, "/v1/events", "["
        "{'id':'i1a','type':'put_on_market','time':'2025-03-01T00:00:00Z','site':'MAN-1','item':'I-1','product':'CRATE'},"
        "{'id':'i2a','type':'put_on_market','time':'2025-03-01T00:00:00Z','site':'MAN-1','item':'I-2','product':'CRATE'},"
        "{'id':'i1b','type':'returned','time':'2025-03-11T00:00:00Z','site':'MAN-1','item':'I-1','product':'CRATE'},"
        "{'id':'i1c','type':'refurbished','time':'2025-03-12T00:00:00Z','site':'MAN-1','item':'I-1','product':'CRATE'},"
        "{'id':'i1d','type':'put_on_market','time':'2025-03-13T00:00:00Z','site':'MAN-1','item':'I-1','product':'CRATE'},"
        "{'id':'i3a','type':'put_on_market','time':'2025-03-15T00:00:00Z','site':'MAN-1','item':'I-3','product':'CRATE'},"
        "{'id':'i2b','type':'returned','time':'2025-03-21T00:00:00Z','site':'MAN-1','item':'I-2','product':'CRATE'},"
        "{'id':'i2c','type':'recycled','time':'2025-03-25T00:00:00Z','site':'REC-1','operation':'R3','item':'I-2','product':'CRATE'},"
        "{'id':'i1e','type':'returned','time':'2025-03-31T00:00:00Z','site':'MAN-1','item':'I-1','product':'CRATE'}"
        "]");
}

static int start(void **state)
{
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    client = th_http_new();
    park_setup();
    park_events();
    m = get_ok(&park, "/v1/metrics?from=2025-03-01&to=2025-04-01");
    return 0;
}

static int stop(void **state)
{
    cJSON_Delete(m);
    th_http_free(client);
    if (!daemon_.pid) return 0;
    return th_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

static void test_shape_and_block(void **state)
{
    th_assert_str(m, "period.from", "2025-03-01");
    th_assert_str(m, "period.to", "2025-04-01");
    th_assert_str(m, "period.tz", "UTC");
    th_assert_str(m, "scope.tenant", park.id);
    char head[80];
    const char *p[1] = {park.id};
    assert_int_equal(th_db_text("SELECT head_hash FROM circa_head($1)", 1, p, head,
                                sizeof head), 0);
    th_assert_str(m, "block", head);
}

static void test_waste_and_treatment(void **state)
{
    /* generated: 1000 PET + 600 mixed + 100 batteries (16 06 01* is hazardous) */
    near(m, "metrics.waste_generated_kg.value", 1700);
    near(m, "metrics.waste_generated_kg.inputs.by_ewc.150102", 1000);
    near(m, "metrics.waste_generated_kg.inputs.by_ewc.200301", 600);
    near(m, "metrics.waste_generated_kg.inputs.hazardous_kg", 100);
    near(m, "metrics.waste_generated_kg.inputs.non_hazardous_kg", 1600);
    /* final treatment: recycling R3 700 (rc1) + 2 (crate I-2) = 702, energy recovery R1 150,
     * incineration D10 50, landfill D1 400 → 1302; R13 receipts and the D9 pretreatment
     * (30 kg) are not final. */
    near(m, "metrics.recovery_rate.denominator_kg", 1302);
    near(m, "metrics.recovery_rate.numerator_kg", 852);            /* 702 + 150 */
    near(m, "metrics.recovery_rate.value", 852.0 / 1302);
    near(m, "metrics.recovery_rate.inputs.pretreatment_kg", 30);
    near(m, "metrics.recycling_rate.value", 702.0 / 1302);
    /* re-use: refurbished crate I-1, 2 kg / (waste 1700 + returns 3 × 2 kg) */
    near(m, "metrics.reuse_rate.value", 2.0 / 1706);
    near(m, "metrics.landfill_diversion_rate.value", 1 - 400.0 / 1700);
    near(m, "metrics.landfill_diversion_rate_strict.value", 1 - (400.0 + 50 + 150) / 1700);
    /* hierarchy over reuse 2 + 1302 = 1304 */
    near(m, "metrics.waste_hierarchy.denominator_kg", 1304);
    near(m, "metrics.waste_hierarchy.value.reuse", 2.0 / 1304);
    near(m, "metrics.waste_hierarchy.value.recycling", 702.0 / 1304);
    near(m, "metrics.waste_hierarchy.value.energy_recovery", 150.0 / 1304);
    near(m, "metrics.waste_hierarchy.value.incineration", 50.0 / 1304);
    near(m, "metrics.waste_hierarchy.value.landfill", 400.0 / 1304);
    double sum = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, th_json_at(m, "metrics.waste_hierarchy.value")) sum += s->valuedouble;
    assert_true(fabs(sum - 1) < 1e-12);
    /* L-W1 went on from R13 to R3; L-W4 (200 kg) is still in R13 storage */
    near(m, "metrics.interim_kg.value", 200);
}

static void test_circularity(void **state)
{
    /* inflow: 100 kg of crates, 25 % recycled content → 25 kg secondary */
    near(m, "metrics.circular_inflow_rate.value", 25.0 / 100);
    /* outflow: refurbished 2 + recycled 702 of 1304 */
    near(m, "metrics.circular_outflow_rate.value", 704.0 / 1304);
    near(m, "metrics.material_circularity.value", (25.0 + 704) / (100 + 1304));
    /* CMU: recycled 702 / (consumed 300 + 702) */
    near(m, "metrics.circular_material_use_rate.value", 702.0 / 1002);
    near(m, "metrics.avoided_virgin_kg.value", 25);
    near(m, "metrics.avoided_virgin_kg.inputs.value", 25 * 0.5);
}

static void test_value_and_quality(void **state)
{
    /* rc1 declares 280; crate I-2 recycled 2 kg × 0.5 = 1; refurbished I-1 2 × 0.5 = 1;
     * energy recovery of MIX (no reference value) is unvalued. */
    near(m, "metrics.value_recovered.value", 282);
    near(m, "metrics.value_recovered.inputs.by_strategy.recycling", 281);
    near(m, "metrics.value_recovered.inputs.by_strategy.refurbish", 1);
    near(m, "metrics.value_recovered.inputs.unvalued_kg", 150);
    /* as new: (702 + 2) kg × 0.5 = 352 */
    near(m, "metrics.value_retention.value", 282.0 / 352);
    /* t1: 1000 in − 950 out − 40 declared loss */
    near(m, "metrics.unbalanced_kg.value", 10);
    /* shipped 1900: COL→EFW 200 of which 150 received, COL→EXT 100 never received */
    near(m, "metrics.unknown_fate_kg.value", 150);
    near(m, "metrics.unknown_fate_kg.denominator_kg", 1900);
    near(m, "metrics.unknown_fate_kg.inputs.by_destination.EXT", 100);
    /* every event of 2025 was recorded now: all 31 rolled-up events are late (23 + 9, less
     * the transformation, which is rolled up as inputs and outputs) */
    near(m, "metrics.late_events.value", 31);
    near(m, "metrics.late_events.inputs.events", 31);
}

static void test_item_metrics(void **state)
{
    /* lives started in March: I-1 ×2, I-2, I-3 → 4 lives / 3 items */
    near(m, "metrics.lives_per_item.value", 4.0 / 3);
    near(m, "metrics.lives_per_item.inputs.distribution.1", 2);
    near(m, "metrics.lives_per_item.inputs.distribution.2", 1);
    /* ended: 10, 19, 20 days → median 19, p90 = 19 + 0.8 × (20 − 19) */
    near(m, "metrics.use_days.value", 19);
    near(m, "metrics.use_days.inputs.p90", 19.8);
    /* put on market: I-1, I-2, I-3; came back: I-1, I-2 */
    near(m, "metrics.return_rate.value", 2.0 / 3);
    /* retired: I-2, recycled */
    near(m, "metrics.fate.value.recycled", 1);
    near(m, "metrics.fate.value.disposed", 0);
}

static void test_scope_filters(void **state)
{
    cJSON *pet = get_ok(&park, "/v1/metrics?from=2025-03-01&to=2025-04-01&material=PET");
    near(pet, "metrics.waste_generated_kg.value", 1000);
    near(pet, "metrics.recycling_rate.value", 1);          /* 702 / 702 */
    cJSON_Delete(pet);
    cJSON *lf = get_ok(&park, "/v1/metrics?from=2025-03-01&to=2025-04-01&party=LFP");
    near(lf, "metrics.waste_hierarchy.value.landfill", 1);
    assert_true(cJSON_IsNull(th_json_at(lf, "metrics.reuse_rate.value")));   /* 0 / 0 */
    cJSON_Delete(lf);
    /* a time inside a day widens to the whole day; nothing happened on 2025-03-20 */
    cJSON *day = get_ok(&park, "/v1/metrics?from=2025-03-20T10:00:00Z&to=2025-03-20T11:00:00Z");
    th_assert_str(day, "period.from", "2025-03-20");
    th_assert_str(day, "period.to", "2025-03-21");
    near(day, "metrics.waste_generated_kg.value", 0);
    assert_true(cJSON_IsNull(th_json_at(day, "metrics.recovery_rate.value")));
    cJSON_Delete(day);
}

static const cJSON *link_of(const cJSON *f, const char *src, const char *dst)
{
    const cJSON *l;
    cJSON_ArrayForEach(l, th_json_at(f, "links")) {
        if (strcmp(th_json_at(l, "source")->valuestring, src) == 0 &&
            strcmp(th_json_at(l, "target")->valuestring, dst) == 0) return l;
    }
    fail_msg("no link %s → %s", src, dst);
    return NULL;
}

static void test_flows(void **state)
{
    cJSON *f = get_ok(&park, "/v1/flows?from=2025-03-01&to=2025-04-01");
    near(link_of(f, "source:waste_generated", "MAN-1"), "kg", 1700);
    near(link_of(f, "MAN-1", "COL-1"), "kg", 1700);            /* collected from MAN-1 */
    const cJSON *efw = link_of(f, "COL-1", "EFW-1");
    near(efw, "kg", 200);                                        /* max(200 shipped, 150) */
    near(efw, "received_kg", 150);
    near(link_of(f, "COL-1", "EXT"), "shipped_kg", 100);
    near(link_of(f, "EFW-1", "op:R1"), "kg", 150);
    near(link_of(f, "LF-1", "op:D1"), "kg", 400);
    near(link_of(f, "REC-1", "op:R3"), "kg", 702);
    const cJSON *n;
    int ext = 0;
    cJSON_ArrayForEach(n, th_json_at(f, "nodes"))
        if (strcmp(th_json_at(n, "id")->valuestring, "EXT") == 0)
            ext = strcmp(th_json_at(n, "kind")->valuestring, "external") == 0;
    assert_true(ext);
    cJSON_Delete(f);
}

static void test_lifecycles(void **state)
{
    cJSON *l = get_ok(&park, "/v1/items/I-1/lifecycles");
    th_assert_str(l, "state", "out_of_use");
    th_assert_num(l, "lives", 2);
    th_assert_str(l, "lifecycles.0.start_type", "put_on_market");
    th_assert_str(l, "lifecycles.0.end_type", "returned");
    near(l, "lifecycles.0.use_days", 10);
    th_assert_str(l, "lifecycles.1.start_type", "refurbished");
    near(l, "lifecycles.1.use_days", 19);
    cJSON_Delete(l);
    l = get_ok(&park, "/v1/items/I-2/lifecycles");
    th_assert_str(l, "state", "retired");
    th_assert_str(l, "fate", "recycled");
    cJSON_Delete(l);
    get_problem(&park, "/v1/items/NOPE/lifecycles", 404);
}

static void test_bad_parameters(void **state)
{
    get_problem(&park, "/v1/metrics?to=2025-04-01", 400);
    get_problem(&park, "/v1/metrics?from=2025-03&to=2025-04-01", 400);
    get_problem(&park, "/v1/metrics?from=2025-02-30&to=2025-04-01", 400);
    get_problem(&park, "/v1/metrics?from=2025-04-01&to=2025-03-01", 400);
    get_problem(&park, "/v1/metrics?from=2025-03-01&to=2025-04-01&site=a%20b", 400);
    get_problem(&park, "/v1/flows?from=x&to=2025-04-01", 400);
    get_problem(&park, "/v1/lots/L-W1/trace?direction=sideways", 400);
    get_problem(&park, "/v1/lots/NOPE/trace", 404);
    get_problem(&park, "/v1/products/NOPE/mci", 404);
}

/* A0 → A1 → … → A10: each step mixes 60 kg of the previous lot with 40 kg of a fresh lot Bi
 * into 100 kg of Ai, so A(i−1) is 0.6 of Ai and A0 is 0.6^10 of A10. */
static void test_lineage_ten_deep(void **state)
{
    th_tenant_t t;
    th_tenant_create(&t, "lineage");
    th_party_create(&t, "R");
    th_site_create(&t, "R-1", "R");
    post_ok(&t, "/v1/materials", "{'code':'PET','name':'PET'}");
    post_ok(&t, "/v1/events", "{'id':'g0','type':'waste_generated','time':'2025-03-01T00:00:00Z',"
            "'site':'R-1','material':'PET','ewc':'150102','lot':'A0','quantity':{'value':60,'unit':'kg'}}");
    for (int i = 1; i <= 10; i++) {
        char tpl[1024];
        snprintf(tpl, sizeof tpl,
                 "{'id':'t%d','type':'transformed','time':'2025-03-%02dT00:00:00Z','site':'R-1',"
                 "'inputs':[{'lot':'A%d','material':'PET','quantity':{'value':60,'unit':'kg'}},"
                 "{'lot':'B%d','material':'PET','quantity':{'value':40,'unit':'kg'}}],"
                 "'outputs':[{'lot':'A%d','material':'PET','quantity':{'value':100,'unit':'kg'},"
                 "'fate':'secondary_material'}]}", i, i + 1, i - 1, i, i);
        post_ok(&t, "/v1/events", tpl);
    }
    cJSON *b = get_ok(&t, "/v1/lots/A10/trace?direction=back");
    assert_int_equal(cJSON_GetArraySize(th_json_at(b, "lots")), 20);   /* A0–A9, B1–B10 */
    const cJSON *l;
    int seen = 0;
    cJSON_ArrayForEach(l, th_json_at(b, "lots")) {
        const char *lot = th_json_at(l, "lot")->valuestring;
        if (strcmp(lot, "A0") == 0) {
            near(l, "depth", 10);
            near(l, "share", pow(0.6, 10));
            assert_int_equal(cJSON_GetArraySize(th_json_at(l, "paths.0.path")), 11);
            seen++;
        } else if (strcmp(lot, "B1") == 0) {
            near(l, "share", 0.4 * pow(0.6, 9));                     /* B1 is 0.4 of A1 */
            seen++;
        } else if (strcmp(lot, "B10") == 0) {
            near(l, "depth", 1);
            near(l, "share", 0.4);
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    /* the source lots are A0 (generated by g0) and B1–B10 (no events of their own) */
    const cJSON *src;
    int named = 0;
    cJSON_ArrayForEach(src, th_json_at(b, "sources"))
        if (strcmp(th_json_at(src, "lot")->valuestring, "A0") == 0) {
            th_assert_str(src, "events.0.id", "g0");
            th_assert_str(src, "events.0.type", "waste_generated");
            named = 1;
        }
    assert_true(named);
    assert_int_equal(cJSON_GetArraySize(th_json_at(b, "sources")), 11);
    cJSON_Delete(b);

    cJSON *f = get_ok(&t, "/v1/lots/A0/trace?direction=forward");
    assert_int_equal(cJSON_GetArraySize(th_json_at(f, "lots")), 10);    /* A1–A10 */
    th_assert_str(f, "lots.9.lot", "A10");
    near(f, "lots.9.depth", 10);
    near(f, "lots.9.share", pow(0.6, 10));
    near(f, "lots.0.share", 0.6);
    cJSON_Delete(f);
}

static long put_tenant(const char *key, const char *tpl, th_resp_t *r)
{
    char *body = q(tpl);
    long st = th_http(client, daemon_.base, "PUT", "/v1/tenant", key, "application/json", body,
                      strlen(body), r);
    free(body);
    return st;
}

static void expect_put(const th_tenant_t *t, const char *tpl, long status)
{
    th_resp_t r;
    long st = put_tenant(t->admin_key, tpl, &r);
    if (st != status) fail_msg("PUT /v1/tenant %s: want %ld, got %ld %s", tpl, status, st, r.body);
    th_resp_free(&r);
}

static void test_tenant_settings(void **state)
{
    th_tenant_t t;
    th_tenant_create(&t, "settings");
    cJSON *g = get_ok(&t, "/v1/tenant");
    th_assert_str(g, "time_zone", "UTC");
    th_assert_str(g, "mode", "strict");
    near(g, "mass_balance_tolerance", 0.02);
    cJSON_Delete(g);
    expect_put(&t, "{'time_zone':'Mars/Olympus_Mons'}", 422);
    expect_put(&t, "{'mass_balance_tolerance':1}", 422);
    expect_put(&t, "{'mode':'loose'}", 422);
    expect_put(&t, "{'currency':'eur'}", 422);
    expect_put(&t, "{'colour':'green'}", 422);
    char reader[256];
    th_key_create(&t, NULL, "read", reader, sizeof reader);
    th_resp_t r;
    assert_int_equal(put_tenant(reader, "{'mode':'lenient'}", &r), 403);
    th_resp_free(&r);

    /* A strict tenant refuses a transformation 30 % off balance; after PUT mode=lenient the
     * same event is stored (flagged): circad's cached settings were reloaded. */
    th_party_create(&t, "R");
    th_site_create(&t, "R-1", "R");
    post_ok(&t, "/v1/materials", "{'code':'PET','name':'PET'}");
    const char *off = "{'id':'x1','type':'transformed','time':'2025-03-02T23:30:00Z','site':'R-1',"
        "'inputs':[{'lot':'I','material':'PET','quantity':{'value':100,'unit':'kg'}}],"
        "'outputs':[{'lot':'O','material':'PET','quantity':{'value':70,'unit':'kg'}}]}";
    char *body = q(off);
    assert_int_equal(th_post("/v1/events", t.admin_key, body, &r), 422);
    th_resp_free(&r);
    expect_put(&t, "{'mode':'lenient','name':'Settings park','currency':'USD'}", 200);
    assert_int_equal(th_post("/v1/events", t.admin_key, body, &r), 201);
    th_resp_free(&r);
    free(body);
    cJSON *m1 = get_ok(&t, "/v1/metrics?from=2025-03-02&to=2025-03-03");
    near(m1, "metrics.unbalanced_kg.value", 30);
    cJSON_Delete(m1);
    /* Berlin is UTC+1 in March: 23:30Z on the 2nd is the 3rd there; the roll-ups move with it. */
    expect_put(&t, "{'time_zone':'Europe/Berlin'}", 200);
    g = get_ok(&t, "/v1/tenant");
    th_assert_str(g, "time_zone", "Europe/Berlin");
    th_assert_str(g, "mode", "lenient");
    th_assert_str(g, "currency", "USD");
    cJSON_Delete(g);
    m1 = get_ok(&t, "/v1/metrics?from=2025-03-03&to=2025-03-04");
    th_assert_str(m1, "period.tz", "Europe/Berlin");
    near(m1, "metrics.unbalanced_kg.inputs.inputs_kg", 100);
    cJSON_Delete(m1);
}

/* Metrics over whole months read the monthly roll-ups (110-112), kept by triggers: events an
 * hour either side of a month's end land in the month their local day says, and move with the
 * days when the time zone changes (the rebuild deletes and re-adds the daily rows). */
static void metric_at(const th_tenant_t *t, const char *period, const char *path, double want)
{
    char url[160];
    snprintf(url, sizeof url, "/v1/metrics?%s", period);
    cJSON *j = get_ok(t, url);
    near(j, path, want);
    cJSON_Delete(j);
}

static void test_month_boundaries(void **state)
{
    (void)state;
    th_tenant_t t;
    th_tenant_create(&t, "months");
    th_party_create(&t, "P");
    th_site_create(&t, "P-1", "P");
    th_site_create(&t, "P-2", "P");
    post_ok(&t, "/v1/materials", "{'code':'PET','name':'PET'}");
    post_ok(&t, "/v1/products", "{'code':'BOX','name':'Box','mass_kg':1}");
    /* 23:30Z on 31 March is 1 April 01:30 in Berlin (CEST); the R13 receipt's lot moves on
     * at 22:30Z on 1 April (2 April 00:30 in Berlin); the box's life is exactly 30 days. */
    post_ok(&t, "/v1/events", "["
        "{'id':'w','type':'waste_generated','time':'2025-03-31T23:30:00Z','site':'P-1','material':'PET','ewc':'150102','quantity':{'value':100,'unit':'kg'}},"
        "{'id':'r','type':'received','time':'2025-03-31T22:30:00Z','site':'P-2','from_site':'P-1','operation':'R13','material':'PET','lot':'L','quantity':{'value':40,'unit':'kg'}},"
        "{'id':'s','type':'shipped','time':'2025-04-01T22:30:00Z','site':'P-2','to_site':'P-1','material':'PET','lot':'L','quantity':{'value':40,'unit':'kg'}},"
        "{'id':'p','type':'put_on_market','time':'2025-03-31T23:30:00Z','site':'P-1','item':'B-1','product':'BOX'},"
        "{'id':'b','type':'returned','time':'2025-04-30T23:30:00Z','site':'P-1','item':'B-1','product':'BOX'}"
        "]");
    const char *mar = "from=2025-03-01&to=2025-04-01", *apr = "from=2025-04-01&to=2025-05-01";
    const char *may = "from=2025-05-01&to=2025-06-01", *q2 = "from=2025-04-01&to=2025-07-01";
    const char *mar_apr = "from=2025-03-01&to=2025-05-01";
    metric_at(&t, mar, "metrics.waste_generated_kg.value", 100);
    metric_at(&t, apr, "metrics.waste_generated_kg.value", 0);
    metric_at(&t, mar, "metrics.interim_kg.value", 40);
    metric_at(&t, mar_apr, "metrics.interim_kg.value", 0);
    metric_at(&t, mar, "metrics.return_rate.inputs.items_put_on_market", 1);
    metric_at(&t, mar, "metrics.return_rate.inputs.items_returned", 0);
    metric_at(&t, mar_apr, "metrics.return_rate.inputs.items_returned", 1);
    metric_at(&t, mar, "metrics.lives_per_item.inputs.items", 1);
    metric_at(&t, apr, "metrics.use_days.inputs.lives_ended", 1);
    metric_at(&t, apr, "metrics.use_days.value", 30);

    expect_put(&t, "{'time_zone':'Europe/Berlin'}", 200);
    metric_at(&t, mar, "metrics.waste_generated_kg.value", 0);
    metric_at(&t, apr, "metrics.waste_generated_kg.value", 100);
    metric_at(&t, q2, "metrics.waste_generated_kg.value", 100);
    metric_at(&t, mar, "metrics.interim_kg.value", 0);
    metric_at(&t, apr, "metrics.interim_kg.value", 0);
    metric_at(&t, "from=2025-04-01&to=2025-04-02", "metrics.interim_kg.value", 40);
    metric_at(&t, mar, "metrics.return_rate.inputs.items_put_on_market", 0);
    metric_at(&t, apr, "metrics.return_rate.inputs.items_put_on_market", 1);
    metric_at(&t, apr, "metrics.return_rate.inputs.items_returned", 0);
    metric_at(&t, q2, "metrics.return_rate.inputs.items_returned", 1);
    metric_at(&t, q2, "metrics.lives_per_item.inputs.items", 1);
    metric_at(&t, apr, "metrics.use_days.inputs.lives_ended", 0);
    metric_at(&t, may, "metrics.use_days.inputs.lives_ended", 1);
    metric_at(&t, may, "metrics.use_days.value", 30);
}

int main(void)
{
    th_init("test_metrics");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_and_block),
        cmocka_unit_test(test_waste_and_treatment),
        cmocka_unit_test(test_circularity),
        cmocka_unit_test(test_value_and_quality),
        cmocka_unit_test(test_item_metrics),
        cmocka_unit_test(test_scope_filters),
        cmocka_unit_test(test_flows),
        cmocka_unit_test(test_lifecycles),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_lineage_ten_deep),
        cmocka_unit_test(test_tenant_settings),
        cmocka_unit_test(test_month_boundaries),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

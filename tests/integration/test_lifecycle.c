// uses: tests/harness daemon/buf
/* test_lifecycle — derived state kept in the ingest transaction, through the real API: item
 * lives and the events that make no sense for an item's state (refused when strict, stored
 * flagged when lenient), corrections replacing events in the roll-ups, and lot lineage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

static th_daemon_t daemon_;
static th_tenant_t strict_t, lenient_t;

static int start(void **state)
{
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    th_tenant_setup(&strict_t, "life-strict");
    th_tenant_setup(&lenient_t, "life-lenient");
    th_resp_t r;
    th_http_t *h = th_http_new();
    const char body[] = "{\"mode\":\"lenient\"}";
    long st = th_http(h, daemon_.base, "PUT", "/v1/tenant", lenient_t.admin_key,
                      "application/json", body, sizeof body - 1, &r);
    th_resp_free(&r);
    th_http_free(h);
    assert_int_equal(st, 200);
    return 0;
}

static int stop(void **state)
{
    return daemon_.pid && th_daemon_stop(&daemon_) != 0 ? -1 : 0;
}

/* An item event at site S1 of PET, 2 kg, at a fixed day of 2026. */
static long item_event(const th_tenant_t *t, const char *id, const char *type, const char *item,
                       const char *day, th_resp_t *r)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%sT10:00:00Z\",\"site\":\"S1\","
             "\"item\":\"%s\",\"material\":\"PET\",\"ewc\":\"150102\","
             "\"quantity\":{\"value\":2,\"unit\":\"kg\"}}",
             id, type, day, item);
    return th_post("/v1/events", t->admin_key, body, r);
}

static void expect(const th_tenant_t *t, const char *id, const char *type, const char *item,
                   const char *day, long status)
{
    th_resp_t r;
    long st = item_event(t, id, type, item, day, &r);
    if (st != status) fprintf(stderr, "%s %s: %ld %s\n", id, type, st, r.body ? r.body : "");
    assert_int_equal(st, status);
    if (status == 422) {
        th_assert_problem(&r, 422, "invalid-event");
        assert_true(th_problem_has_error(&r, 0, "item"));
    }
    th_resp_free(&r);
}

static long db_long2(const char *sql, const char *a, const char *b)
{
    const char *p[2] = {a, b};
    return th_db_long(sql, 2, p);
}

static void strict_item_lives(void **state)
{
    const char *T = strict_t.id;
    expect(&strict_t, "a1", "put_on_market", "SN-A", "2026-01-10", 201);
    expect(&strict_t, "a2", "returned", "SN-A", "2026-04-10", 201);
    /* A second return without a life in between makes no sense. */
    expect(&strict_t, "a3", "returned", "SN-A", "2026-04-11", 422);
    assert_int_equal(th_event_count_id(T, "a3"), 0);
    expect(&strict_t, "a4", "refurbished", "SN-A", "2026-05-01", 201);
    /* recycled without its R code is invalid before any lifecycle rule is looked at. */
    th_resp_t bad;
    assert_int_equal(item_event(&strict_t, "a5", "recycled", "SN-A", "2026-09-01", &bad), 422);
    assert_true(th_problem_has_error(&bad, 0, "operation"));
    th_resp_free(&bad);
    th_resp_t r;
    char body[512];
    snprintf(body, sizeof body,
             "{\"id\":\"a6\",\"type\":\"recycled\",\"time\":\"2026-09-01T10:00:00Z\","
             "\"site\":\"S1\",\"item\":\"SN-A\",\"material\":\"PET\",\"operation\":\"R3\","
             "\"quantity\":{\"value\":2,\"unit\":\"kg\"}}");
    assert_int_equal(th_post("/v1/events", strict_t.admin_key, body, &r), 201);
    th_resp_free(&r);
    /* Retired: no new life. */
    expect(&strict_t, "a7", "put_on_market", "SN-A", "2026-10-01", 422);

    /* Two lives: 2026-01-10..04-10 returned, 05-01..09-01 ended by recycling (R3). */
    assert_int_equal(db_long2("SELECT count(*) FROM lifecycle WHERE tenant_id = $1 AND item = $2",
                              T, "SN-A"), 2);
    assert_int_equal(db_long2("SELECT round(extract(epoch FROM ended - started) / 86400) FROM "
                              "lifecycle WHERE tenant_id = $1 AND item = $2 AND life = 1", T, "SN-A"),
                     90); /* Jan 10 → Apr 10: 21 + 28 + 31 + 10 days */
    char fate[32];
    const char *p[2] = {T, "SN-A"};
    assert_int_equal(th_db_text("SELECT state || '/' || fate || '/' || lives FROM item "
                                "WHERE tenant_id = $1 AND id = $2", 2, p, fate, sizeof fate), 0);
    assert_string_equal(fate, "retired/recycled/2");
    assert_int_equal(th_get("/v1/items/SN-A/lifecycles", strict_t.admin_key, &r), 200);
    th_resp_free(&r);
}

static void lenient_flags_instead_of_refusing(void **state)
{
    expect(&lenient_t, "b1", "put_on_market", "SN-B", "2026-01-10", 201);
    expect(&lenient_t, "b2", "returned", "SN-B", "2026-02-10", 201);
    expect(&lenient_t, "b3", "returned", "SN-B", "2026-02-11", 201);  /* stored, flagged */
    th_resp_t r;
    assert_int_equal(th_get("/v1/events/b3", lenient_t.admin_key, &r), 200);
    th_assert_str(r.json, "flags.0", "lifecycle");
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/events/b2", lenient_t.admin_key, &r), 200);
    assert_null(th_json_at(r.json, "flags.0"));
    th_resp_free(&r);
}

static double rollup_kg(const char *tenant, const char *day)
{
    const char *p[2] = {tenant, day};
    char out[64];
    if (th_db_text("SELECT coalesce(sum(kg), 0)::text FROM rollup_day WHERE tenant_id = $1 "
                   "AND day = $2::date AND type = 'waste_generated'", 2, p, out, sizeof out))
        return -1;
    return strtod(out, NULL);
}

static void corrections_replace_events_in_rollups(void **state)
{
    const char *T = strict_t.id;
    th_resp_t r;
    char *b = th_tpl("{'id':'w1','type':'waste_generated','time':'2026-03-01T10:00:00Z',"
                     "'site':'S1','material':'PET','ewc':'150102','quantity':{'value':100,'unit':'kg'}}");
    assert_int_equal(th_post("/v1/events", strict_t.admin_key, b, &r), 201);
    free(b);
    th_resp_free(&r);
    assert_true(rollup_kg(T, "2026-03-01") == 100);
    b = th_tpl("{'id':'c1','type':'corrected','time':'2026-03-02T10:00:00Z','corrects':'w1',"
               "'replacement':{'id':'w1b','type':'waste_generated','time':'2026-03-01T10:00:00Z',"
               "'site':'S1','material':'PET','ewc':'150102','quantity':{'value':0.12,'unit':'t'}}}");
    assert_int_equal(th_post("/v1/events", strict_t.admin_key, b, &r), 201);
    free(b);
    th_assert_str(r.json, "ids.1", "w1b");   /* the replacement is stored as an event */
    th_resp_free(&r);
    assert_true(rollup_kg(T, "2026-03-01") == 120);  /* 100 taken back, 0.12 t = 120 kg added */
    /* Only the latest version can be corrected. */
    b = th_tpl("{'id':'c2','type':'corrected','time':'2026-03-02T10:00:00Z','corrects':'w1',"
               "'replacement':{'id':'w1c','type':'waste_generated','time':'2026-03-01T10:00:00Z',"
               "'site':'S1','material':'PET','ewc':'150102','quantity':{'value':130,'unit':'kg'}}}");
    assert_int_equal(th_post("/v1/events", strict_t.admin_key, b, &r), 422);
    assert_true(th_problem_has_error(&r, 0, "corrects"));
    free(b);
    th_resp_free(&r);
    b = th_tpl("{'id':'c3','type':'corrected','time':'2026-03-02T10:00:00Z','corrects':'w1b',"
               "'replacement':{'id':'w1d','type':'waste_generated','time':'2026-03-01T10:00:00Z',"
               "'site':'S1','material':'PET','ewc':'150102','quantity':{'value':130,'unit':'kg'}}}");
    assert_int_equal(th_post("/v1/events", strict_t.admin_key, b, &r), 201);
    free(b);
    th_resp_free(&r);
    assert_true(rollup_kg(T, "2026-03-01") == 130);
    assert_int_equal(th_event_count_id(T, "w1c"), 0);
}

static void lineage_links_inputs_to_outputs(void **state)
{
    const char *T = strict_t.id;
    th_resp_t r;
    /* 60 + 40 kg in, 95 kg out + 5 kg loss: balances; shares 0.6 and 0.4. */
    char *b = th_tpl("{'id':'t1','type':'transformed','time':'2026-03-05T10:00:00Z','site':'S1',"
                     "'inputs':[{'lot':'IN-1','material':'PET','quantity':{'value':60,'unit':'kg'}},"
                     "{'lot':'IN-2','material':'PET','quantity':{'value':40,'unit':'kg'}}],"
                     "'outputs':[{'lot':'OUT-1','material':'PET','quantity':{'value':95,'unit':'kg'},"
                     "'fate':'secondary_material'}],'loss':{'value':5,'unit':'kg'}}");
    assert_int_equal(th_post("/v1/events", strict_t.admin_key, b, &r), 201);
    free(b);
    th_resp_free(&r);
    assert_int_equal(db_long2("SELECT round(100 * share) FROM lot_link WHERE tenant_id = $1 "
                              "AND input_lot = $2", T, "IN-1"), 60);
    assert_int_equal(db_long2("SELECT round(100 * share) FROM lot_link WHERE tenant_id = $1 "
                              "AND input_lot = $2", T, "IN-2"), 40);
    assert_int_equal(db_long2("SELECT count(*) FROM lot WHERE tenant_id = $1 AND id = $2", T,
                              "OUT-1"), 1);
}

int main(void)
{
    th_init("test_lifecycle");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strict_item_lives),
        cmocka_unit_test(lenient_flags_instead_of_refusing),
        cmocka_unit_test(corrections_replace_events_in_rollups),
        cmocka_unit_test(lineage_links_inputs_to_outputs),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

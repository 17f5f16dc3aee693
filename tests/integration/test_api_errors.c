// uses: tests/harness daemon/buf
/* test_api_errors — bad POST /v1/events requests: each gets the status of API.md's error list
 * as application/problem+json (422: errors[].index and .field), stores nothing, and leaves
 * circad answering. circad runs with CIRCA_MAX_BODY=65536. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"

/* Bodies are written with ' for " and expanded: @T@ a valid time, @F@ an hour ahead,
 * @EXT17K@ a 17,000-character string, @PAD70K@ a 70,000-character string, @ID201@ a
 * 201-character id, @DEEP@ 5,000 nested arrays, @EXTDEEP@ 40 nested objects. */
typedef struct {
    const char *name;
    const char *ctype;        /* NULL: application/json */
    const char *body;
    long status, status_alt;  /* status_alt 0, or a second acceptable status */
    int index;                /* 422: errors[].index */
    const char *fields;       /* 422: acceptable errors[].field values, '|'-separated */
} bad_t;

#define W "'type':'waste_generated','time':'@T@','site':'S1','material':'PET'"
#define Q "'quantity':{'value':1,'unit':'kg'}"
#define WG(id, extra) "{'id':'" id "'," W ",'ewc':'150102'," Q extra "}"
#define EV(id, type, extra) "{'id':'" id "','type':'" type "','time':'@T@','site':'S1'," \
                            "'material':'PET'," Q extra "}"

static const bad_t cases[] = {
    {"malformed_json", NULL, "{'id':'m1','type':", 400, 0, 0, NULL},
    {"trailing_garbage", NULL, WG("m2", "") " x", 400, 0, 0, NULL},
    {"duplicate_keys", NULL, "{'id':'m3','id':'m4'," W ",'ewc':'150102'," Q "}", 400, 0, 0, NULL},
    {"empty_body", NULL, "", 400, 0, 0, NULL},
    {"ndjson_bad_line", "application/x-ndjson", WG("n1", "") "\n{'id':'n2',\n", 400, 0, 0, NULL},
    {"content_type_text", "text/plain", WG("c1", ""), 415, 0, 0, NULL},
    {"content_type_form", "application/x-www-form-urlencoded", WG("c2", ""), 415, 0, 0, NULL},
    {"body_over_limit", NULL, WG("big", ",'ext':{'pad':'@PAD70K@'}"), 413, 0, 0, NULL},
    {"empty_array", NULL, "[]", 400, 422, -1, NULL},
    {"unknown_field", NULL, WG("u1", ",'colour':'red'"), 422, 0, 0, "colour"},
    {"missing_type", NULL, "{'id':'u2','time':'@T@','site':'S1','material':'PET','ewc':'150102',"
                           Q "}", 422, 0, 0, "type"},
    {"unknown_type", NULL, EV("u3", "trashed", ""), 422, 0, 0, "type"},
    {"missing_quantity", NULL, "{'id':'u4'," W ",'ewc':'150102'}", 422, 0, 0, "quantity"},
    {"missing_ewc", NULL, "{'id':'u5'," W "," Q "}", 422, 0, 0, "ewc"},
    {"missing_time", NULL, "{'id':'u6','type':'waste_generated','site':'S1','material':'PET',"
                           "'ewc':'150102'," Q "}", 422, 0, 0, "time"},
    {"missing_operation", NULL, EV("u7", "recycled", ",'ewc':'150102'"), 422, 0, 0, "operation"},
    {"bad_unit", NULL, "{'id':'q1'," W ",'ewc':'150102','quantity':{'value':1,'unit':'tons'}}",
     422, 0, 0, "quantity.unit"},
    {"missing_unit", NULL, "{'id':'q2'," W ",'ewc':'150102','quantity':{'value':1}}",
     422, 0, 0, "quantity.unit"},
    {"volume_without_density", NULL, "{'id':'q3','type':'waste_generated','time':'@T@',"
     "'site':'S1','material':'MIX','ewc':'150102','quantity':{'value':2,'unit':'m3'}}",
     422, 0, 0, "quantity.unit|quantity|material"},
    {"zero_quantity", NULL, "{'id':'q4'," W ",'ewc':'150102','quantity':{'value':0,'unit':'kg'}}",
     422, 0, 0, "quantity.value"},
    {"negative_quantity", NULL, "{'id':'q5'," W ",'ewc':'150102',"
     "'quantity':{'value':-3,'unit':'kg'}}", 422, 0, 0, "quantity.value"},
    {"quantity_as_string", NULL, "{'id':'q6'," W ",'ewc':'150102',"
     "'quantity':{'value':'1.2','unit':'kg'}}", 422, 0, 0, "quantity.value"},
    {"bad_basis", NULL, "{'id':'q7'," W ",'ewc':'150102',"
     "'quantity':{'value':1,'unit':'kg','basis':'guessed'}}", 422, 0, 0, "quantity.basis"},
    {"unknown_ewc", NULL, "{'id':'w1'," W ",'ewc':'999999'," Q "}", 422, 0, 0, "ewc"},
    {"malformed_ewc", NULL, "{'id':'w2'," W ",'ewc':'15010'," Q "}", 422, 0, 0, "ewc"},
    {"star_on_non_hazardous", NULL, "{'id':'w3'," W ",'ewc':'150102*'," Q "}", 422, 0, 0, "ewc"},
    {"hp_on_non_hazardous", NULL, WG("w4", ",'hp':['HP3']"), 422, 0, 0, "hp|hp[0]"},
    {"unknown_hp", NULL, "{'id':'w5'," W ",'ewc':'150110*','hp':['HP16']," Q "}",
     422, 0, 0, "hp|hp[0]"},
    {"disposed_with_r4", NULL, EV("o1", "disposed", ",'ewc':'150102','operation':'R4'"),
     422, 0, 0, "operation"},
    {"recycled_with_interim_r13", NULL, EV("o2", "recycled", ",'ewc':'150102','operation':'R13'"),
     422, 0, 0, "operation"},
    {"energy_recovered_with_r3", NULL,
     EV("o3", "energy_recovered", ",'ewc':'150102','operation':'R3'"), 422, 0, 0, "operation"},
    {"unknown_operation", NULL, EV("o4", "recycled", ",'ewc':'150102','operation':'R14'"),
     422, 0, 0, "operation"},
    {"bad_planned_operation", NULL, EV("o5", "shipped", ",'to_site':'S2',"
     "'planned_operation':'X9'"), 422, 0, 0, "planned_operation"},
    {"time_without_offset", NULL, "{'id':'t1','type':'waste_generated','time':'2026-03-04T10:15:00',"
     "'site':'S1','material':'PET','ewc':'150102'," Q "}", 422, 0, 0, "time"},
    {"time_in_future", NULL, "{'id':'t2','type':'waste_generated','time':'@F@','site':'S1',"
     "'material':'PET','ewc':'150102'," Q "}", 422, 0, 0, "time"},
    {"time_not_a_time", NULL, "{'id':'t3','type':'waste_generated','time':'yesterday',"
     "'site':'S1','material':'PET','ewc':'150102'," Q "}", 422, 0, 0, "time"},
    {"bad_currency", NULL, WG("v1", ",'value':{'amount':5,'currency':'EURO'}"), 422, 0, 0,
     "value.currency"},
    {"unassigned_currency", NULL, WG("v2", ",'value':{'amount':5,'currency':'ZZZ'}"), 422, 0, 0,
     "value.currency"},
    {"negative_amount", NULL, WG("v3", ",'value':{'amount':-1,'currency':'EUR'}"), 422, 0, 0,
     "value.amount"},
    {"transformed_without_inputs", NULL, "{'id':'x1','type':'transformed','time':'@T@',"
     "'site':'S1','outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'},"
     "'fate':'product'}]}", 422, 0, 0, "inputs"},
    {"fate_on_input", NULL, "{'id':'x2','type':'transformed','time':'@T@','site':'S1',"
     "'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'},'fate':'residue'}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'},"
     "'fate':'product'}]}", 422, 0, 0, "inputs[0].fate"},
    {"unknown_fate", NULL, "{'id':'x3','type':'transformed','time':'@T@','site':'S1',"
     "'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'},"
     "'fate':'garbage'}]}", 422, 0, 0, "outputs[0].fate"},
    {"unknown_site", NULL, "{'id':'s1','type':'waste_generated','time':'@T@','site':'NOPE',"
     "'material':'PET','ewc':'150102'," Q "}", 422, 0, 0, "site"},
    {"site_not_a_string", NULL, "{'id':'s2','type':'waste_generated','time':'@T@','site':7,"
     "'material':'PET','ewc':'150102'," Q "}", 422, 0, 0, "site"},
    {"unknown_material", NULL, "{'id':'s3','type':'waste_generated','time':'@T@','site':'S1',"
     "'material':'NOPE','ewc':'150102'," Q "}", 422, 0, 0, "material"},
    {"shipped_without_to_site", NULL, EV("s4", "shipped", ""), 422, 0, 0, "to_site"},
    {"partial_without_refused_quantity", NULL,
     EV("r1", "received", ",'from_site':'S1','acceptance':'partial'"), 422, 0, 0,
     "refused_quantity|acceptance"},
    {"unknown_acceptance", NULL, EV("r2", "received", ",'acceptance':'maybe'"), 422, 0, 0,
     "acceptance"},
    {"bad_physical_form", NULL, WG("p1", ",'packaging':{'count':2,'type':'drum',"
     "'physical_form':'plasma'}"), 422, 0, 0, "packaging.physical_form"},
    {"bad_transport_mode", NULL, WG("p2", ",'transport':[{'carrier':'S1','mode':'teleport'}]"),
     422, 0, 0, "transport[0].mode"},
    {"ext_over_16k", NULL, WG("e1", ",'ext':{'pad':'@EXT17K@'}"), 422, 0, 0, "ext"},
    {"ext_not_object", NULL, WG("e2", ",'ext':'B-17'"), 422, 0, 0, "ext"},
    {"id_over_200", NULL, WG("@ID201@", ""), 422, 0, 0, "id"},
    {"id_with_space", NULL, WG("a b", ""), 422, 0, 0, "id"},
    {"id_empty", NULL, WG("", ""), 422, 0, 0, "id"},
    {"id_control_char", NULL, WG("a\\u0001b", ""), 422, 0, 0, "id"},
    {"corrected_without_replacement", NULL, "{'id':'k1','type':'corrected','time':'@T@',"
     "'site':'S1','corrects':'base-1'}", 422, 0, 0, "replacement"},
    {"replacement_with_corrected_id", NULL, "{'id':'k2','type':'corrected','time':'@T@',"
     "'site':'S1','corrects':'base-1','replacement':" WG("base-1", "") "}", 422, 0, 0,
     "replacement.id|replacement"},
    {"nested_too_deep", NULL, "@DEEP@", 400, 0, 0, NULL},
    {"invalid_utf8", NULL, WG("u\xff", ""), 400, 0, 0, NULL},
    {"escaped_nul", NULL, WG("n\\u0000x", ""), 400, 0, 0, NULL},
    {"scalar_body", NULL, "42", 422, 0, 0, ""},
    {"ext_nested_too_deep", NULL, WG("e3", ",'ext':@EXTDEEP@"), 422, 0, 0, "ext"},
    {"quantity_overflows_double", NULL, "{'id':'q8'," W ",'ewc':'150102',"
     "'quantity':{'value':1e400,'unit':'kg'}}", 422, 0, 0, "quantity.value"},
    {"same_id_twice_in_batch", NULL, "[" WG("d1", "") "," WG("d1", "") "]", 422, 0, 1, "id"},
    {"corrects_unknown_event", NULL, "{'id':'k3','type':'corrected','time':'@T@','site':'S1',"
     "'corrects':'no-such-event','replacement':" WG("k3-r", "") "}", 422, 0, 0, "corrects"},
    /* API.md: only the latest version of an event can be corrected; base-1 was replaced by
     * base-2 in start(). */
    {"corrects_superseded_version", NULL, "{'id':'k4','type':'corrected','time':'@T@',"
     "'site':'S1','corrects':'base-1','replacement':" WG("k4-r", "") "}", 422, 0, 0, "corrects"},
    {"bad_third_event_in_batch", NULL, "[" WG("b1", "") "," WG("b2", "") ",{'id':'b3'," W
     ",'ewc':'150102','quantity':{'value':1,'unit':'tons'}}]", 422, 0, 2, "quantity.unit"},
};
#define NCASES (sizeof cases / sizeof cases[0])

static th_daemon_t daemon_;
static th_tenant_t tenant;
static long base_count;

static void put_repeat(buf_t *b, char c, size_t n)
{
    for (size_t i = 0; i < n; i++) buf_putc(b, c);
}

/* open^n 1 close^n */
static void put_nested(buf_t *b, const char *open, const char *close, int n)
{
    for (int i = 0; i < n; i++) buf_puts(b, open);
    buf_putc(b, '1');
    for (int i = 0; i < n; i++) buf_puts(b, close);
}

static char *expand(const char *tpl, size_t *len)
{
    buf_t b = BUF_INIT;
    char now[40], later[40];
    th_time(now, TH_EVENT_OFFSET, 60);
    th_time(later, 3600, 0);
    buf_puts(&b, "");
    for (const char *p = tpl; *p; p++) {
        if (*p == '\'') buf_putc(&b, '"');
        else if (strncmp(p, "@T@", 3) == 0) buf_puts(&b, now), p += 2;
        else if (strncmp(p, "@F@", 3) == 0) buf_puts(&b, later), p += 2;
        else if (strncmp(p, "@EXT17K@", 8) == 0) put_repeat(&b, 'x', 17000), p += 7;
        else if (strncmp(p, "@PAD70K@", 8) == 0) put_repeat(&b, 'x', 70000), p += 7;
        else if (strncmp(p, "@ID201@", 7) == 0) put_repeat(&b, 'i', 201), p += 6;
        else if (strncmp(p, "@DEEP@", 6) == 0) put_nested(&b, "[", "]", 5000), p += 5;
        else if (strncmp(p, "@EXTDEEP@", 9) == 0) put_nested(&b, "{\"a\":", "}", 40), p += 8;
        else buf_putc(&b, *p);
    }
    *len = b.len;
    return buf_steal(&b);
}

static int field_ok(const th_resp_t *r, int index, const char *fields)
{
    char one[96];
    const char *p = fields;
    for (;;) {
        size_t n = strcspn(p, "|");
        snprintf(one, sizeof one, "%.*s", (int)n, p);
        if (th_problem_has_error(r, index, one)) return 1;
        if (!p[n]) return 0;
        p += n + 1;
    }
}

/* API.md fixes /problems/invalid-event; the others are circad's (daemon/api*.c, http.c). */
static const char *problem_type(long status)
{
    switch (status) {
    case 400: return "malformed-json";
    case 413: return "payload-too-large";
    case 415: return "unsupported-media-type";
    case 422: return "invalid-event";
    default: return NULL;
    }
}

static void bad_request(void **state)
{
    const bad_t *c = *state;
    size_t len;
    char *body = expand(c->body, &len);
    th_resp_t r;
    th_post_ct("/v1/events", tenant.admin_key, c->ctype ? c->ctype : "application/json", body,
               len, &r);
    long want = (c->status_alt && r.status == c->status_alt) ? c->status_alt : c->status;
    th_assert_problem(&r, want, problem_type(want));
    assert_true(cJSON_IsString(th_json_at(r.json, "title")));
    if (want != 422) {
        assert_string_not_equal(th_json_at(r.json, "type")->valuestring, "/problems/invalid-event");
    } else if (c->fields && !field_ok(&r, c->index, c->fields)) {
        fail_msg("%s: want errors[] with index %d and field %s, got %s", c->name, c->index,
                 c->fields, r.body);
    }
    th_resp_free(&r);
    free(body);
    assert_int_equal(th_event_count(tenant.id), base_count);
    assert_int_equal(th_healthz(), 200);
}

static int start(void **state)
{
    daemon_.extra_env[0] = "CIRCA_MAX_BODY=65536";
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    th_tenant_setup(&tenant, "errors");
    th_site_create(&tenant, "S2", "P1");
    /* The event that the corrected cases point at. */
    char *body = th_json_take(th_event("base-1", "S1", 1, "kg"));
    th_resp_t r;
    if (th_post("/v1/events", tenant.admin_key, body, &r) != 201)
        fail_msg("POST base-1 -> %ld %s", r.status, r.body);
    th_resp_free(&r);
    free(body);
    /* base-1 is corrected once: base-2 is its latest version. */
    size_t len;
    body = expand("{'id':'base-fix','type':'corrected','time':'@T@','site':'S1',"
                  "'corrects':'base-1','replacement':" WG("base-2", "") "}", &len);
    if (th_post("/v1/events", tenant.admin_key, body, &r) != 201)
        fail_msg("POST base-fix -> %ld %s", r.status, r.body);
    th_resp_free(&r);
    free(body);
    base_count = th_event_count(tenant.id);
    assert_int_equal(base_count, 3);
    return 0;
}

static int stop(void **state)
{
    if (!daemon_.pid) return 0;
    int code = th_daemon_stop(&daemon_);
    if (code != 0) fprintf(stderr, "circad exited with %d after SIGTERM\n", code);
    return code == 0 ? 0 : -1;
}

/* A valid event still goes in after all the bad ones (the tests above left no damage). */
static void good_request_after_bad_ones(void **state)
{
    char *body = th_json_take(th_event("after-1", "S1", 2, "kg"));
    th_resp_t r;
    th_post("/v1/events", tenant.admin_key, body, &r);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
    free(body);
    assert_int_equal(th_event_count(tenant.id), base_count + 1);
}

/* Bad query parameters of GET /v1/events: 400 problem+json, never a 500 or a silent default. */
static void listing_query_errors(void **state)
{
    const char *queries[] = {"limit=0", "limit=-1", "limit=abc", "limit=100000", "cursor=zzz",
                             "from=garbage", "to=2026-13-45", "from=2026-03-04T10:15:00"};
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        buf_t path = BUF_INIT;
        buf_printf(&path, "/v1/events?%s", queries[i]);
        th_resp_t r;
        th_get(path.data, tenant.admin_key, &r);
        if (r.status != 400) fail_msg("GET %s -> %ld %s", path.data, r.status, r.body);
        th_assert_problem(&r, 400, "invalid-query");
        th_resp_free(&r);
        buf_free(&path);
    }
    assert_int_equal(th_healthz(), 200);
}

int main(void)
{
    th_init("test_api_errors");
    static struct CMUnitTest tests[NCASES + 2];
    for (size_t i = 0; i < NCASES; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, bad_request, NULL, NULL, (void *)&cases[i]};
    tests[NCASES] = (struct CMUnitTest){"good_request_after_bad_ones", good_request_after_bad_ones,
                                        NULL, NULL, NULL};
    tests[NCASES + 1] = (struct CMUnitTest){"listing_query_errors", listing_query_errors, NULL,
                                            NULL, NULL};
    return _cmocka_run_group_tests("test_api_errors", tests, NCASES + 2, start, stop);
}

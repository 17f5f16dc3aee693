// uses: daemon/event daemon/jcs daemon/codes build/gen/ewc_table daemon/errlist daemon/buf
/* test_event — validation rules, normalisation, derived ids and body splitting of events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "event.h"

/* ---- the tenant's master data, the collaborator event_parse is given ---- */
static const struct { const char *site, *party; } sites[] = {
    {"ACME-1", "ACME"}, {"REC-1", "RECY"},
};
static const char *const parties[] = {"ACME", "RECY", "EXT-CO"};
static const struct { const char *code; double density; } materials[] = {
    {"PET", 1380}, {"OIL", 900}, {"STEEL", NAN},
};
static const struct { const char *code; double mass; const char *material; } products[] = {
    {"PN-1000", 2.0, "PET"}, {"PN-MULTI", 5.0, NULL},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int md_site(void *md, const char *s, const char **party)
{
    for (size_t i = 0; i < N(sites); i++)
        if (strcmp(sites[i].site, s) == 0) { *party = sites[i].party; return 1; }
    return 0;
}
static int md_party(void *md, const char *p)
{
    for (size_t i = 0; i < N(parties); i++)
        if (strcmp(parties[i], p) == 0) return 1;
    return 0;
}
static int md_material(void *md, const char *c, double *density)
{
    for (size_t i = 0; i < N(materials); i++)
        if (strcmp(materials[i].code, c) == 0) { *density = materials[i].density; return 1; }
    return 0;
}
static int md_product(void *md, const char *c, double *mass, const char **material)
{
    for (size_t i = 0; i < N(products); i++)
        if (strcmp(products[i].code, c) == 0) {
            *mass = products[i].mass;
            *material = products[i].material;
            return 1;
        }
    return 0;
}

/* 2026-06-01T00:00:00Z */
#define NOW_US (INT64_C(1780272000) * 1000000)

static event_ctx_t ctx_for(const char *caller)
{
    event_ctx_t c = {NOW_US, caller, NULL, md_site, md_party, md_material, md_product};
    return c;
}

/* Test JSON is written with ' for " to stay readable. */
static cJSON *json(const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    cJSON *v = cJSON_Parse(s);
    free(s);
    assert_non_null(v);
    return v;
}

static int parse_as(const char *text, const char *caller, event_t *ev, errlist_t *errs)
{
    cJSON *obj = json(text);
    event_ctx_t ctx = ctx_for(caller);
    int rc = event_parse(obj, 7, &ctx, ev, errs);
    cJSON_Delete(obj);
    return rc;
}

#define WASTE "'type':'waste_generated','time':'2026-03-04T10:15:00+01:00','site':'ACME-1'," \
              "'material':'PET','ewc':'150102','quantity':{'value':1.2,'unit':'t'}"
#define TIME "'time':'2026-03-04T10:15:00Z','site':'ACME-1'"
#define FLOW TIME ",'material':'PET','quantity':{'value':10,'unit':'kg'}"

static const struct { const char *json; int rc; const char *field; } invalid[] = {
    {"{" WASTE ",'qty':1}", -1, "qty"},
    {"{'time':'2026-03-04T10:15:00Z','site':'ACME-1'}", -1, "type"},
    {"{'type':'wasted'," TIME "}", -1, "type"},
    {"{'type':3," TIME "}", -1, "type"},
    {"{'type':'observed','site':'ACME-1'}", -1, "time"},
    {"{'type':'observed','time':'2026-03-04T10:15:00','site':'ACME-1'}", -1, "time"},
    {"{'type':'observed','time':'2026-02-29T10:15:00Z','site':'ACME-1'}", -1, "time"},
    {"{'type':'observed','time':'2026-06-01T00:05:01Z','site':'ACME-1'}", -1, "time"},
    {"{'type':'observed','time':'2026-03-04T10:15:00.1234567891Z','site':'ACME-1'}", -1, "time"},
    {"{'type':'observed','time':'2026-03-04T24:00:00Z','site':'ACME-1'}", -1, "time"},
    {"{'type':'observed','id':'a b'," TIME "}", -1, "id"},
    {"{'type':'observed','id':''," TIME "}", -1, "id"},
    {"{'type':'observed','time':'2026-03-04T10:15:00Z'}", -1, "site"},
    {"{'type':'observed','time':'2026-03-04T10:15:00Z','site':'NOPE'}", -1, "site"},
    {"{'type':'produced'," TIME ",'material':'WOOD','quantity':{'value':1,'unit':'kg'}}", -1, "material"},
    {"{'type':'produced'," TIME ",'quantity':{'value':1,'unit':'kg'}}", -1, "material"},
    {"{'type':'produced'," TIME ",'material':'PET'}", -1, "quantity"},
    {"{'type':'produced'," TIME ",'material':'PET','quantity':{'value':1,'unit':'tons'}}", -1, "quantity.unit"},
    {"{'type':'produced'," TIME ",'material':'PET','quantity':{'value':0,'unit':'kg'}}", -1, "quantity.value"},
    {"{'type':'produced'," TIME ",'material':'PET','quantity':{'value':'1','unit':'kg'}}", -1, "quantity.value"},
    {"{'type':'produced'," TIME ",'material':'PET','quantity':{'value':1,'unit':'kg','x':1}}", -1, "quantity.x"},
    {"{'type':'produced'," TIME ",'material':'PET','quantity':{'value':1,'unit':'kg','basis':'guess'}}", -1, "quantity.basis"},
    {"{'type':'produced'," TIME ",'material':'STEEL','quantity':{'value':1,'unit':'l'}}", -1, "quantity.unit"},
    {"{'type':'produced'," TIME ",'material':'PET','quantity':[1]}", -1, "quantity"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'1501'}", -1, "ewc"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'999999'}", -1, "ewc"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'150102*'}", -1, "ewc"},
    {"{'type':'waste_generated'," FLOW "}", -1, "ewc"},
    {"{'type':'collected'," FLOW "}", -1, "ewc"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'150102','hp':['HP4']}", -1, "hp"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'150110*','hp':['HP16']}", -1, "hp[0]"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'150110','hp':['HP4','HP4']}", -1, "hp[1]"},
    {"{'type':'waste_generated'," FLOW ",'ewc':'150110','hp':'HP4'}", -1, "hp"},
    {"{'type':'recycled'," FLOW ",'ewc':'150102','operation':'R1'}", -1, "operation"},
    {"{'type':'disposed'," FLOW ",'ewc':'150102','operation':'R4'}", -1, "operation"},
    {"{'type':'recycled'," FLOW ",'ewc':'150102'}", -1, "operation"},
    {"{'type':'recycled'," FLOW ",'ewc':'150102','operation':'R14'}", -1, "operation"},
    {"{'type':'produced'," FLOW ",'operation':'R12'}", -1, "operation"},
    {"{'type':'received'," FLOW ",'planned_operation':'R3'}", -1, "planned_operation"},
    {"{'type':'shipped'," FLOW ",'planned_operation':'X9','to_site':'REC-1'}", -1, "planned_operation"},
    {"{'type':'shipped'," FLOW "}", -1, "to_site"},
    {"{'type':'shipped'," FLOW ",'to_site':'MARS'}", -1, "to_site"},
    {"{'type':'produced'," FLOW ",'from_site':'REC-1'}", -1, "from_site"},
    {"{'type':'received'," FLOW ",'acceptance':'maybe'}", -1, "acceptance"},
    {"{'type':'received'," FLOW ",'acceptance':'partial'}", -1, "refused_quantity"},
    {"{'type':'received'," FLOW ",'acceptance':'accepted','refused_quantity':{'value':1,'unit':'kg'}}", -1, "refused_quantity"},
    {"{'type':'received'," FLOW ",'acceptance':'partial','refused_quantity':{'value':0.011,'unit':'t'}}", -1, "refused_quantity"},
    {"{'type':'produced'," FLOW ",'value':{'amount':3,'currency':'EUROS'}}", -1, "value.currency"},
    {"{'type':'produced'," FLOW ",'value':{'amount':-1,'currency':'EUR'}}", -1, "value.amount"},
    {"{'type':'produced'," FLOW ",'value':{'currency':'EUR'}}", -1, "value.amount"},
    {"{'type':'produced'," FLOW ",'item':'SN 1'}", -1, "item"},
    {"{'type':'produced'," FLOW ",'document':7}", -1, "document"},
    {"{'type':'produced'," FLOW ",'packaging':{'count':0}}", -1, "packaging.count"},
    {"{'type':'produced'," FLOW ",'packaging':{'count':1.5}}", -1, "packaging.count"},
    {"{'type':'produced'," FLOW ",'packaging':{'physical_form':'plasma'}}", -1, "packaging.physical_form"},
    {"{'type':'produced'," FLOW ",'packaging':{'colour':'red'}}", -1, "packaging.colour"},
    {"{'type':'produced'," FLOW ",'transport':[{'mode':'teleport'}]}", -1, "transport[0].mode"},
    {"{'type':'produced'," FLOW ",'transport':[{'mode':'road'},{'departed':'2026-03-04T10:00:00Z',"
     "'arrived':'2026-03-04T10:30:00+01:00'}]}", -1, "transport[1].arrived"},
    {"{'type':'produced'," FLOW ",'transport':[{'driver':'Bo'}]}", -1, "transport[0].driver"},
    {"{'type':'produced'," FLOW ",'transport':[{'departed':'yesterday'}]}", -1, "transport[0].departed"},
    {"{'type':'produced'," FLOW ",'ext':[1]}", -1, "ext"},
    {"{'type':'produced'," FLOW ",'ext':{'a':[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}", -1, "ext"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}}]}", -1, "outputs"},
    {"{'type':'transformed'," TIME ",'inputs':[],'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'}}]}", -1, "inputs"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}},"
     "{'material':'PET','quantity':{'value':1,'unit':'kg'}}],'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'}}]}", -1, "inputs[1].lot"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'},'fate':'residue'}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'}}]}", -1, "inputs[0].fate"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'},'fate':'gold'}]}", -1, "outputs[0].fate"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':-1,'unit':'kg'}}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'}}]}", -1, "inputs[0].quantity.value"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}}],"
     "'outputs':[{'lot':'L2','material':'GOLD','quantity':{'value':1,'unit':'kg'}}]}", -1, "outputs[0].material"},
    {"{'type':'transformed'," TIME ",'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'}}],'loss':{'value':1,'unit':'l'}}", -1, "loss.unit"},
    {"{'type':'transformed'," TIME ",'quantity':{'value':1,'unit':'kg'},'inputs':[{'lot':'L1','material':'PET','quantity':{'value':1,'unit':'kg'}}],"
     "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1,'unit':'kg'}}]}", -1, "quantity"},
    {"{'type':'measured'," TIME ",'quantity':{'value':1,'unit':'kg'}}", -1, "quantity"},
    {"{'type':'corrected','time':'2026-03-04T10:15:00Z','corrects':'E1'}", -1, "replacement"},
    {"{'type':'corrected','time':'2026-03-04T10:15:00Z','corrects':'E1','replacement':{'type':'observed'," TIME "}}", -1, "replacement.id"},
    {"{'type':'corrected','time':'2026-03-04T10:15:00Z','corrects':'E1','replacement':{'id':'E2','type':'corrected',"
     "'time':'2026-03-04T10:15:00Z','corrects':'E0'}}", -1, "replacement.type"},
    {"{'type':'corrected','time':'2026-03-04T10:15:00Z','corrects':'E1','replacement':{'id':'E1','type':'observed'," TIME "}}", -1, "replacement.id"},
    {"{'type':'corrected','time':'2026-03-04T10:15:00Z','corrects':'E1','replacement':{'id':'E2','type':'produced',"
     TIME ",'material':'PET','quantity':{'value':1,'unit':'tons'}}}", -1, "replacement.quantity.unit"},
    {"{'type':'observed'," TIME ",'corrects':'E1'}", -1, "corrects"},
    {"{'type':'observed','time':'2026-03-04T10:15:00Z','site':'REC-1'}", EVENT_FORBIDDEN, "site"},
    {"{'type':'corrected','time':'2026-03-04T10:15:00Z','corrects':'E1','replacement':{'id':'E2','type':'observed',"
     "'time':'2026-03-04T10:15:00Z','site':'REC-1'}}", EVENT_FORBIDDEN, "replacement.site"},
    {"{'type':'received'," FLOW ",'from_site':'NOWHERE'}", -1, "from_site"},
    {"{'type':'produced'," FLOW ",'lot':7}", -1, "lot"},
};

static void every_rule_fails_alone_with_its_path(void **state)
{
    (void)state;
    assert_true(N(invalid) >= 45);
    for (size_t i = 0; i < N(invalid); i++) {
        errlist_t errs = ERRLIST_INIT;
        event_t ev;
        int rc = parse_as(invalid[i].json, "ACME", &ev, &errs);
        if (rc != invalid[i].rc || errs.n != 1 || strcmp(errs.items[0].field, invalid[i].field) != 0) {
            print_error("case %zu: rc %d, %zu errors: %s\n", i, rc, errs.n, invalid[i].json);
            for (size_t k = 0; k < errs.n; k++)
                print_error("  %s: %s\n", errs.items[k].field, errs.items[k].message);
        }
        assert_int_equal(rc, invalid[i].rc);
        assert_int_equal(errs.n, 1);
        assert_int_equal(errs.items[0].index, 7);
        assert_string_equal(errs.items[0].field, invalid[i].field);
        assert_true(strlen(errs.items[0].message) > 10);
        assert_null(ev.json);
        assert_null(ev.id);
        errlist_free(&errs);
    }
}

static void messages_name_the_fix_and_all_errors_are_collected(void **state)
{
    (void)state;
    errlist_t errs = ERRLIST_INIT;
    event_t ev;
    assert_int_equal(parse_as("{'type':'produced'," TIME ",'material':'PET','quantity':{'value':1,'unit':'tons'}}",
                              NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].message, "unknown unit 'tons'; use kg, t, g, lb, l or m3");
    errlist_free(&errs);
    assert_int_equal(parse_as("{'type':'disposed'," FLOW ",'ewc':'150102','operation':'R4'}", NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].message, "disposed cannot take R4");
    errlist_free(&errs);
    assert_int_equal(parse_as("{" WASTE ",'qty':1,'quantity_kg':5,'seq':1}", NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].message, "unknown field 'qty'");
    errlist_free(&errs);
    assert_int_equal(parse_as("{'type':'produced'," TIME ",'material':'STEEL','quantity':{'value':1,'unit':'m3'}}",
                              NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].message, "material 'STEEL' has no density; give the mass");
    errlist_free(&errs);
    /* Three broken fields, three errors; invalid and forbidden together is invalid. */
    assert_int_equal(parse_as("{'type':'produced','time':'2026-03-04T10:15:00Z','site':'REC-1','material':'PET',"
                              "'quantity':{'value':-1,'unit':'kg'},'value':{'amount':1,'currency':'ZZZ'},'qty':2}",
                              "ACME", &ev, &errs), -1);
    assert_int_equal(errs.n, 4);
    const char *want[] = {"qty", "site", "quantity.value", "value.currency"};
    for (size_t i = 0; i < 4; i++) assert_string_equal(errs.items[i].field, want[i]);
    errlist_free(&errs);
    /* ext over 16 KiB */
    char *big = malloc(20000);
    int n = snprintf(big, 20000, "{'type':'observed'," TIME ",'ext':{'s':'");
    memset(big + n, 'x', 17000);
    memcpy(big + n + 17000, "'}}", 4);
    assert_int_equal(parse_as(big, NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].field, "ext");
    errlist_free(&errs);
    /* a device string over EVENT_MAX_STRING */
    n = snprintf(big, 20000, "{'type':'observed'," TIME ",'device':'");
    memset(big + n, 'd', EVENT_MAX_STRING + 1);
    memcpy(big + n + EVENT_MAX_STRING + 1, "'}", 3);
    assert_int_equal(parse_as(big, NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].field, "device");
    errlist_free(&errs);
    /* an id of 201 characters */
    n = snprintf(big, 20000, "{'type':'observed'," TIME ",'id':'");
    memset(big + n, 'i', EVENT_MAX_ID + 1);
    memcpy(big + n + EVENT_MAX_ID + 1, "'}", 3);
    assert_int_equal(parse_as(big, NULL, &ev, &errs), -1);
    assert_string_equal(errs.items[0].field, "id");
    errlist_free(&errs);
    free(big);
}

static event_t must_parse(const char *text)
{
    errlist_t errs = ERRLIST_INIT;
    event_t ev;
    int rc = parse_as(text, "ACME", &ev, &errs);
    for (size_t k = 0; k < errs.n; k++) print_error("%s: %s\n", errs.items[k].field, errs.items[k].message);
    assert_int_equal(rc, 0);
    errlist_free(&errs);
    return ev;
}

static void normalises_waste_event(void **state)
{
    (void)state;
    event_t ev = must_parse("{'id':'acme-2026-000123','type':'waste_generated','time':'2026-03-04T10:15:00+01:00',"
                            "'site':'ACME-1','material':'PET','ewc':'15 01 02','quantity':{'value':1.2,'unit':'t'},"
                            "'value':{'amount':240.0,'currency':'EUR'},'ext':{'bin':'B-17'},"
                            "'quantity_kg':1200,'seq':4,'recorded_time':'x','block':'y','flags':[]}");
    assert_string_equal(ev.id, "acme-2026-000123");
    assert_int_equal(ev.id_derived, 0);
    assert_int_equal(ev.type, EVT_WASTE_GENERATED);
    assert_string_equal(ev.ewc, "150102");
    assert_int_equal(ev.hazardous, 0);
    assert_int_equal(ev.has_quantity, 1);
    assert_true(fabs(ev.quantity_kg - 1200) < 1e-9);
    assert_string_equal(ev.site, "ACME-1");
    assert_string_equal(ev.material, "PET");
    assert_string_equal(ev.time_raw, "2026-03-04T10:15:00+01:00");
    assert_true(ev.time_us == INT64_C(1772615700) * 1000000);
    assert_string_equal(ev.canon.data,
        "{\"ewc\":\"150102\",\"ext\":{\"bin\":\"B-17\"},\"id\":\"acme-2026-000123\",\"material\":\"PET\","
        "\"quantity\":{\"unit\":\"t\",\"value\":1.2},\"site\":\"ACME-1\",\"time\":\"2026-03-04T09:15:00Z\","
        "\"type\":\"waste_generated\",\"value\":{\"amount\":240,\"currency\":\"EUR\"}}");
    event_free(&ev);

    ev = must_parse("{'type':'waste_generated'," FLOW ",'ewc':'15 01 10*','hp':['HP4','HP14']}");
    assert_string_equal(ev.ewc, "150110");
    assert_int_equal(ev.hazardous, 1);
    assert_string_equal(cJSON_GetObjectItem(ev.json, "ewc")->valuestring, "150110");
    event_free(&ev);
}

static void converts_units_to_kg(void **state)
{
    (void)state;
    static const struct { const char *q; double kg; } cases[] = {
        {"'material':'PET','quantity':{'value':2.5,'unit':'t'}", 2500},
        {"'material':'PET','quantity':{'value':1500,'unit':'g'}", 1.5},
        {"'material':'PET','quantity':{'value':10,'unit':'lb'}", 4.5359237},
        {"'material':'PET','quantity':{'value':3,'unit':'kg','basis':'measured'}", 3},
        {"'material':'PET','quantity':{'value':100,'unit':'l'}", 138},
        {"'material':'OIL','quantity':{'value':2,'unit':'m3'}", 1800},
    };
    char text[512];
    for (size_t i = 0; i < N(cases); i++) {
        snprintf(text, sizeof text, "{'type':'produced'," TIME ",%s}", cases[i].q);
        event_t ev = must_parse(text);
        assert_true(fabs(ev.quantity_kg - cases[i].kg) < 1e-9);
        event_free(&ev);
    }
}

static void time_offsets_become_utc(void **state)
{
    (void)state;
    event_t ev = must_parse("{'type':'observed','time':'2025-12-31T23:30:00.120-01:00','site':'ACME-1'}");
    assert_string_equal(cJSON_GetObjectItem(ev.json, "time")->valuestring, "2026-01-01T00:30:00.12Z");
    event_free(&ev);
    /* the future limit is relative to now: exactly five minutes ahead is accepted */
    ev = must_parse("{'type':'observed','time':'2026-06-01T00:05:00Z','site':'ACME-1'}");
    assert_true(ev.time_us == NOW_US + EVENT_MAX_FUTURE_US);
    event_free(&ev);
    ev = must_parse("{'type':'observed','time':'2024-02-29T00:00:00.123456789+05:30','site':'ACME-1'}");
    assert_string_equal(cJSON_GetObjectItem(ev.json, "time")->valuestring, "2024-02-28T18:30:00.123456789Z");
    char out[40];
    event_format_time(ev.time_us, out);
    assert_string_equal(out, "2024-02-28T18:30:00.123456Z");
    event_free(&ev);
    int64_t us;
    assert_int_equal(event_parse_time("1970-01-01T00:00:00Z", &us), 0);
    assert_true(us == 0);
    assert_int_equal(event_parse_time("1969-12-31T23:59:59.5Z", &us), 0);
    assert_true(us == -500000);
    event_format_time(us, out);
    assert_string_equal(out, "1969-12-31T23:59:59.5Z");
    event_format_time(INT64_C(1772615700) * 1000000, out);
    assert_string_equal(out, "2026-03-04T09:15:00Z");
    assert_int_equal(event_parse_time("2026-03-04 10:15:00Z", &us), -1);
    assert_int_equal(event_parse_time("2026-03-04T10:15:00+0100", &us), -1);
    assert_int_equal(event_parse_time("2026-03-04T10:15:00.Z", &us), -1);
    assert_int_equal(event_parse_time("2026-13-04T10:15:00Z", &us), -1);
}

static void derived_id_is_stable_and_content_bound(void **state)
{
    (void)state;
    event_t a = must_parse("{'type':'observed','time':'2026-03-04T10:15:00+01:00','site':'ACME-1'}");
    event_t b = must_parse("{'site':'ACME-1','time':'2026-03-04T09:15:00Z','type':'observed','seq':9}");
    event_t c = must_parse("{'type':'observed','time':'2026-03-04T10:15:01+01:00','site':'ACME-1'}");
    assert_int_equal(a.id_derived, 1);
    assert_int_equal(strlen(a.id), 64);
    /* sha256 of {"site":"ACME-1","time":"2026-03-04T09:15:00Z","type":"observed"} */
    assert_string_equal(a.id, "a2345a041cd617e050049ca1cae0927d5529c61855136ed80cca5c8fc33406aa");
    assert_string_equal(a.id, b.id);
    assert_string_not_equal(a.id, c.id);
    assert_string_equal(cJSON_GetObjectItem(a.json, "id")->valuestring, a.id);
    assert_non_null(strstr(a.canon.data, a.id));
    assert_memory_equal(a.canon.data, b.canon.data, a.canon.len);
    event_free(&a);
    event_free(&b);
    event_free(&c);
}

static void every_type_has_a_valid_event(void **state)
{
    (void)state;
    static const char *const lots = "'inputs':[{'lot':'L1','material':'PET','quantity':{'value':2,'unit':'kg'}}],"
        "'outputs':[{'lot':'L2','material':'PET','quantity':{'value':1.5,'unit':'kg'},'fate':'secondary_material'}],"
        "'loss':{'value':0.5,'unit':'kg'},'operation':'R12'";
    static const struct { event_type_t t; const char *rest; } cases[] = {
        {EVT_PRODUCED, FLOW ",'lot':'LOT-1','packaging':{'count':3,'type':'bale','physical_form':'solid'}"},
        {EVT_CONSUMED, FLOW ",'lot':'LOT-1'"},
        {EVT_SHIPPED, FLOW ",'to_site':'EXT-CO','planned_operation':'R3','transport':[{'carrier':'EXT-CO',"
                      "'mode':'road','vehicle':'AB-12','departed':'2026-03-04T10:00:00Z','arrived':'2026-03-04T12:00:00+01:00'}]"},
        {EVT_RECEIVED, FLOW ",'from_site':'REC-1','acceptance':'partial','refused_quantity':{'value':2,'unit':'kg'},'operation':'R13'"},
        {EVT_PUT_ON_MARKET, TIME ",'item':'SN-1','product':'PN-1000'"},
        {EVT_RETURNED, TIME ",'item':'SN-1','product':'PN-1000'"},
        {EVT_WASTE_GENERATED, FLOW ",'ewc':'200121*','hp':['HP6']"},
        {EVT_COLLECTED, TIME ",'product':'PN-1000','quantity':{'value':4,'unit':'kg'},'planned_operation':'D15'"},
        {EVT_SORTED, FLOW ",'ewc':'150102','operation':'D13'"},
        {EVT_REPAIRED, TIME ",'item':'SN-1'"},
        {EVT_REFURBISHED, TIME ",'item':'SN-1','product':'PN-1000'"},
        {EVT_REMANUFACTURED, TIME ",'item':'SN-1','product':'PN-MULTI'"},
        {EVT_REPURPOSED, TIME ",'product':'PN-1000','quantity':{'value':4,'unit':'kg'}"},
        {EVT_REUSED, FLOW ",'ewc':'150102'"},
        {EVT_RECYCLED, FLOW ",'ewc':'150102','operation':'R3','value':{'amount':0,'currency':'MXN'}"},
        {EVT_ENERGY_RECOVERED, FLOW ",'ewc':'150102','operation':'R1'"},
        {EVT_DISPOSED, FLOW ",'ewc':'150102','operation':'D1','document':'CN-1','device':'WB-01','carrier':'EXT-CO'"},
        {EVT_TRANSFORMED, TIME ",'ewc':'150102'"},
        {EVT_MEASURED, TIME ",'device':'BIN-17','ext':{'fill':0.85}"},
        {EVT_OBSERVED, TIME ",'item':'SN-1'"},
        {EVT_CORRECTED, "'time':'2026-03-04T11:00:00Z','corrects':'E1','replacement':{'id':'E1b','type':'produced',"
                        "'time':'2026-03-04T10:15:00+01:00','site':'ACME-1','material':'PET','quantity':{'value':1,'unit':'t'}}"},
    };
    assert_int_equal(N(cases), EVT__COUNT);
    char text[1024];
    for (size_t i = 0; i < N(cases); i++) {
        snprintf(text, sizeof text, "{'type':'%s',%s%s%s}", event_type_name(cases[i].t), cases[i].rest,
                 cases[i].t == EVT_TRANSFORMED ? "," : "", cases[i].t == EVT_TRANSFORMED ? lots : "");
        event_t ev = must_parse(text);
        assert_int_equal(ev.type, cases[i].t);
        assert_true(ev.canon.len > 0);
        event_free(&ev);
    }
}

static void item_events_take_mass_and_material_from_the_product(void **state)
{
    (void)state;
    event_t ev = must_parse("{'type':'put_on_market'," TIME ",'item':'SN-1','product':'PN-1000'}");
    assert_int_equal(ev.has_quantity, 1);
    assert_true(ev.quantity_kg == 2.0);
    assert_string_equal(ev.material, "PET");
    assert_null(cJSON_GetObjectItem(ev.json, "material"));   /* not part of the event as sent */
    assert_string_equal(ev.item, "SN-1");
    assert_string_equal(ev.product, "PN-1000");
    event_free(&ev);
    ev = must_parse("{'type':'returned'," TIME ",'item':'SN-1','product':'PN-MULTI'}");
    assert_null(ev.material);
    assert_int_equal(ev.has_quantity, 1);
    event_free(&ev);
    ev = must_parse("{'type':'returned'," TIME ",'item':'SN-1','product':'PN-UNKNOWN'}");
    assert_int_equal(ev.has_quantity, 0);
    assert_true(ev.quantity_kg == 0);
    event_free(&ev);
}

static void corrected_event_normalises_its_replacement(void **state)
{
    (void)state;
    event_t ev = must_parse("{'type':'corrected','time':'2026-03-04T11:00:00Z','corrects':'E1',"
                            "'replacement':{'id':'E1b','type':'waste_generated','time':'2026-03-04T10:15:00+01:00',"
                            "'site':'ACME-1','material':'PET','ewc':'15 01 02','quantity':{'value':1,'unit':'t'},'seq':3}}");
    assert_string_equal(ev.corrects, "E1");
    assert_null(ev.site);
    assert_non_null(strstr(ev.canon.data, "\"replacement\":{\"ewc\":\"150102\",\"id\":\"E1b\""));
    assert_non_null(strstr(ev.canon.data, "\"time\":\"2026-03-04T09:15:00Z\",\"type\":\"waste_generated\"}"));
    assert_null(strstr(ev.canon.data, "seq"));
    event_free(&ev);
}

/* ---- body splitting ---- */

static int split(const char *body, int ndjson, cJSON **out, errlist_t *errs)
{
    return event_body_split(body, strlen(body), ndjson, out, errs);
}

static void splits_object_array_and_ndjson(void **state)
{
    (void)state;
    errlist_t errs = ERRLIST_INIT;
    cJSON *out;
    assert_int_equal(split(" {\"type\":\"observed\",\"n\":[1,2.5e3,-0,true,null,\"\\u00e9\\ud83d\\ude00\"]} ", 0, &out, &errs), 0);
    assert_int_equal(cJSON_GetArraySize(out), 1);
    cJSON *n = cJSON_GetObjectItem(out->child, "n");
    assert_true(cJSON_GetArrayItem(n, 1)->valuedouble == 2500);
    assert_string_equal(cJSON_GetArrayItem(n, 5)->valuestring, "\xc3\xa9\xf0\x9f\x98\x80");
    cJSON_Delete(out);
    assert_int_equal(split("[{\"a\":1},{\"a\":2}]", 0, &out, &errs), 0);
    assert_int_equal(cJSON_GetArraySize(out), 2);
    cJSON_Delete(out);
    assert_int_equal(split("{\"a\":1}\n\n  \r\n{\"a\":2}\r\n", 1, &out, &errs), 0);
    assert_int_equal(cJSON_GetArraySize(out), 2);
    assert_int_equal(cJSON_GetArrayItem(out, 1)->child->valueint, 2);
    cJSON_Delete(out);
    /* the body need not be NUL-terminated: a number at its very end */
    char raw[] = {'[', '{', '"', 'a', '"', ':', '1', '}', ']', '9'};
    assert_int_equal(event_body_split(raw, 9, 0, &out, &errs), 0);
    cJSON_Delete(out);
    assert_int_equal(errs.n, 0);
}

static void refuses_bad_bodies(void **state)
{
    (void)state;
    static const struct { const char *body; int ndjson, status; const char *msg; int index; } cases[] = {
        {"{\"a\":}", 0, 400, "malformed JSON at byte 5", -1},
        {"{\"a\":1} x", 0, 400, "malformed JSON at byte 8: unexpected data after the value", -1},
        {"{\"a\":1}\n{\"b\":\n", 1, 400, "malformed JSON at line 2", -1},
        {"{\"a\":\"\xff\"}", 0, 400, "invalid UTF-8 at byte 6", -1},
        {"{\"a\":\"\xc0\xaf\"}", 0, 400, "invalid UTF-8 at byte 6", -1},
        {"{\"type\":\"x\",\"type\":\"y\"}", 0, 400, "duplicate member 'type' at byte 12", -1},
        {"[{\"ext\":{\"k\":1,\"k\":2}}]", 0, 400, "duplicate member 'k'", -1},
        {"{\"a\":01}", 0, 400, "malformed JSON at byte 6", -1},
        {"{\"a\":\"\\ud83d\"}", 0, 400, "malformed JSON at byte 6: lone surrogate", -1},
        {"{\"a\":\"\\u0000\"}", 0, 400, "malformed JSON at byte 6", -1},
        {"{\"a\":tru}", 0, 400, "malformed JSON at byte 5", -1},
        {"", 0, 400, "malformed JSON at byte 0", -1},
        {"[]", 0, 422, "no events", -1},
        {"\n\n", 1, 422, "no events", -1},
        {"[{\"a\":1},2,{}]", 0, 422, "an event must be a JSON object", 1},
        {"{}\n[1]\n", 1, 422, "an event must be a JSON object", 1},
        {"\"event\"", 0, 422, "an event must be a JSON object", 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        errlist_t errs = ERRLIST_INIT;
        cJSON *out = (cJSON *)1;
        int rc = split(cases[i].body, cases[i].ndjson, &out, &errs);
        if (rc != cases[i].status || errs.n < 1 || !strstr(errs.items[0].message, cases[i].msg))
            print_error("case %zu: %d %s\n", i, rc, errs.n ? errs.items[0].message : "-");
        assert_int_equal(rc, cases[i].status);
        assert_null(out);
        assert_int_equal(errs.n, 1);
        assert_non_null(strstr(errs.items[0].message, cases[i].msg));
        assert_int_equal(errs.items[0].index, cases[i].index);
        errlist_free(&errs);
    }
}

static void duplicates_in_large_objects_and_event_limit(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    buf_putc(&b, '{');
    for (int i = 0; i < 40; i++) buf_printf(&b, "\"k%d\":%d,", i, i);
    buf_puts(&b, "\"k7\":0}");
    errlist_t errs = ERRLIST_INIT;
    cJSON *out;
    assert_int_equal(event_body_split(b.data, b.len, 0, &out, &errs), 400);
    assert_non_null(strstr(errs.items[0].message, "duplicate member 'k7'"));
    errlist_free(&errs);
    buf_reset(&b);
    buf_putc(&b, '[');
    for (int i = 0; i <= EVENT_MAX_PER_REQUEST; i++) buf_puts(&b, i ? ",{}" : "{}");
    buf_putc(&b, ']');
    assert_int_equal(event_body_split(b.data, b.len, 0, &out, &errs), 413);
    errlist_free(&errs);
    b.len -= 4;   /* drop one event: exactly at the limit */
    buf_putc(&b, ']');
    assert_int_equal(event_body_split(b.data, b.len, 0, &out, &errs), 0);
    assert_int_equal(cJSON_GetArraySize(out), EVENT_MAX_PER_REQUEST);
    cJSON_Delete(out);
    buf_reset(&b);
    for (int i = 0; i <= EVENT_MAX_PER_REQUEST; i++) buf_puts(&b, "{}\n");
    assert_int_equal(event_body_split(b.data, b.len, 1, &out, &errs), 413);
    errlist_free(&errs);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_rule_fails_alone_with_its_path),
        cmocka_unit_test(messages_name_the_fix_and_all_errors_are_collected),
        cmocka_unit_test(normalises_waste_event),
        cmocka_unit_test(converts_units_to_kg),
        cmocka_unit_test(time_offsets_become_utc),
        cmocka_unit_test(derived_id_is_stable_and_content_bound),
        cmocka_unit_test(every_type_has_a_valid_event),
        cmocka_unit_test(item_events_take_mass_and_material_from_the_product),
        cmocka_unit_test(corrected_event_normalises_its_replacement),
        cmocka_unit_test(splits_object_array_and_ndjson),
        cmocka_unit_test(refuses_bad_bodies),
        cmocka_unit_test(duplicates_in_large_objects_and_event_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// uses: tests/harness daemon/buf
/* test_api_md — the master-data API against a real circad and PostgreSQL: create/same/conflict
 * per kind, versions and ?at=, cursor pages, every validation rule, roles, and that event
 * validation sees a site the moment it is created. */
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

static int start(void **state)
{
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    client = th_http_new();
    return 0;
}

static int stop(void **state)
{
    th_http_free(client);
    if (!daemon_.pid) return 0;
    int code = th_daemon_stop(&daemon_);
    if (code != 0) fprintf(stderr, "circad exited with %d after SIGTERM\n", code);
    return code == 0 ? 0 : -1;
}

static long put(const char *path, const char *key, const char *body, th_resp_t *r)
{
    return th_http(client, daemon_.base, "PUT", path, key, "application/json", body,
                   strlen(body), r);
}

/* POSTs body and asserts the status; the answer's JSON is copied into *out when wanted. */
static void post_expect(const th_tenant_t *t, const char *path, const char *body, long want,
                        cJSON **out)
{
    th_resp_t r;
    long st = th_post(path, t->admin_key, body, &r);
    if (st != want) fail_msg("POST %s %s: want %ld, got %ld %s", path, body, want, st, r.body);
    if (out) *out = cJSON_Duplicate(r.json, 1);
    th_resp_free(&r);
}

/* 1 when the problem's errors[] names field (master-data errors carry no index). */
static int has_field(const th_resp_t *r, const char *field)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, th_json_at(r->json, "errors")) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
        if (cJSON_IsString(f) && strcmp(f->valuestring, field) == 0) return 1;
    }
    return 0;
}

static void expect_invalid(const th_tenant_t *t, const char *method, const char *path,
                           const char *body, const char *field)
{
    th_resp_t r;
    long st = strcmp(method, "PUT") == 0 ? put(path, t->admin_key, body, &r)
                                         : th_post(path, t->admin_key, body, &r);
    if (st != 422 || !has_field(&r, field))
        fail_msg("%s %s %s: want 422 on '%s', got %ld %s", method, path, body, field, st,
                 r.body);
    th_assert_problem(&r, 422, "invalid-master-data");
    th_resp_free(&r);
}

static long count_rows(const char *sql, const th_tenant_t *t)
{
    const char *p[1] = {t->id};
    return th_db_long(sql, 1, p);
}

static const char *party_acme =
    "{\"code\":\"ACME\",\"name\":\"Acme Plastics\",\"roles\":[\"generator\",\"manufacturer\"],"
    "\"country\":\"MX\",\"address\":{\"street\":\"Calle 1\",\"city\":\"Monterrey\","
    "\"postcode\":\"64000\",\"region\":\"NL\",\"country\":\"MX\"},"
    "\"identifiers\":[\"urn:epc:id:pgln:0614141.00000\"],"
    "\"permits\":[{\"kind\":\"waste\",\"number\":\"W-1\",\"valid_from\":\"2026-01-01\","
    "\"valid_to\":\"2027-01-01T00:00:00Z\"}]}";
/* The same record with its members in another order. */
static const char *party_acme_again =
    "{\"country\":\"MX\",\"name\":\"Acme Plastics\",\"code\":\"ACME\","
    "\"roles\":[\"generator\",\"manufacturer\"],\"address\":{\"city\":\"Monterrey\","
    "\"street\":\"Calle 1\",\"region\":\"NL\",\"postcode\":\"64000\",\"country\":\"MX\"},"
    "\"identifiers\":[\"urn:epc:id:pgln:0614141.00000\"],"
    "\"permits\":[{\"number\":\"W-1\",\"kind\":\"waste\",\"valid_from\":\"2026-01-01\","
    "\"valid_to\":\"2027-01-01T00:00:00Z\"}]}";
static const char *site_acme1 =
    "{\"code\":\"ACME-1\",\"party\":\"ACME\",\"name\":\"Acme plant 1\",\"kind\":\"factory\","
    "\"country\":\"MX\",\"identifiers\":[\"urn:epc:id:sgln:0614141.00777.0\"]}";
/* The same site: an optional member that is null is absent. */
static const char *site_acme1_again =
    "{\"code\":\"ACME-1\",\"party\":\"ACME\",\"name\":\"Acme plant 1\",\"kind\":\"factory\","
    "\"country\":\"MX\",\"address\":null,\"identifiers\":[\"urn:epc:id:sgln:0614141.00777.0\"]}";
static const char *material_pet =
    "{\"code\":\"PET\",\"name\":\"Polyethylene terephthalate\",\"category\":\"plastic\","
    "\"hazardous\":false,\"renewable\":false,\"density_kg_m3\":1380,\"value_per_kg\":0.35,"
    "\"recycling_efficiency_eol\":0.8,\"recycling_efficiency_feedstock\":1,"
    "\"national_codes\":{\"us_rcra\":[\"D001\"],\"basel\":\"B3010\"}}";
static const char *product_crate =
    "{\"code\":\"PN-1000\",\"name\":\"Crate\",\"mass_kg\":2.0,\"lifetime_days\":1825,"
    "\"industry_lifetime_days\":1460,\"revision\":\"B\",\"status\":\"released\","
    "\"bom\":[{\"material\":\"PET\",\"mass_kg\":2.0,\"recycled_fraction\":0.3,"
    "\"reused_fraction\":0,\"renewable_fraction\":0.7}]}";

static void create_each_kind_then_same_then_conflict(void **state)
{
    th_tenant_t t;
    th_tenant_create(&t, "md-create");
    cJSON *rec = NULL;
    th_resp_t r;
    assert_int_equal(th_post("/v1/parties", t.admin_key, party_acme, &r), 201);
    th_assert_str(r.json, "code", "ACME");
    th_assert_str(r.json, "address.city", "Monterrey");
    th_assert_str(r.json, "permits.0.number", "W-1");
    th_assert_has(r.json, "valid_from");
    assert_string_equal(r.location, "/v1/parties/ACME");
    th_resp_free(&r);

    post_expect(&t, "/v1/parties", party_acme_again, 200, &rec);
    th_assert_str(rec, "name", "Acme Plastics");
    cJSON_Delete(rec);
    post_expect(&t, "/v1/parties", "{\"code\":\"ACME\",\"name\":\"Acme\"}", 409, NULL);

    post_expect(&t, "/v1/sites", site_acme1, 201, &rec);
    th_assert_str(rec, "party", "ACME");
    cJSON_Delete(rec);
    post_expect(&t, "/v1/sites", site_acme1_again, 200, NULL);
    post_expect(&t, "/v1/sites",
                "{\"code\":\"ACME-1\",\"party\":\"ACME\",\"name\":\"x\",\"kind\":\"other\"}",
                409, NULL);

    post_expect(&t, "/v1/materials", material_pet, 201, &rec);
    th_assert_num(rec, "density_kg_m3", 1380);
    th_assert_str(rec, "national_codes.basel", "B3010");
    cJSON_Delete(rec);
    post_expect(&t, "/v1/materials", material_pet, 200, NULL);
    post_expect(&t, "/v1/materials", "{\"code\":\"PET\",\"name\":\"PET\"}", 409, NULL);

    post_expect(&t, "/v1/products", product_crate, 201, &rec);
    th_assert_num(rec, "bom.0.recycled_fraction", 0.3);
    cJSON_Delete(rec);
    post_expect(&t, "/v1/products", product_crate, 200, NULL);
    post_expect(&t, "/v1/products", "{\"code\":\"PN-1000\",\"name\":\"Box\"}", 409, NULL);

    /* Typed columns are written from the document, and each record has one version. */
    assert_int_equal(count_rows("SELECT count(*) FROM party WHERE tenant_id = $1 AND "
                                "country = 'MX' AND roles = '{generator,manufacturer}'", &t), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM site WHERE tenant_id = $1 AND "
                                "party = 'ACME' AND kind = 'factory'", &t), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM material WHERE tenant_id = $1 AND "
                                "density_kg_m3 = 1380 AND value_per_kg = 0.35", &t), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM product WHERE tenant_id = $1 AND "
                                "mass_kg = 2 AND status = 'released' AND "
                                "lifetime_days = 1825", &t), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM masterdata_history WHERE tenant_id = $1",
                                &t), 4);
}

static void get_string(const char *path, const char *key, const char *at, char *out, size_t n)
{
    th_resp_t r;
    if (th_get(path, key, &r) != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
    const cJSON *v = th_json_at(r.json, at);
    if (!cJSON_IsString(v)) fail_msg("GET %s: no %s in %s", path, at, r.body);
    snprintf(out, n, "%s", v->valuestring);
    th_resp_free(&r);
}

static void put_keeps_history_and_at_reads_old_versions(void **state)
{
    th_tenant_t t;
    th_tenant_create(&t, "md-put");
    post_expect(&t, "/v1/parties", party_acme, 201, NULL);
    post_expect(&t, "/v1/sites", site_acme1, 201, NULL);
    char v1[64], v2[64], name[128], path[256];
    get_string("/v1/parties/ACME", t.admin_key, "valid_from", v1, sizeof v1);

    th_resp_t r;
    const char *renamed = "{\"name\":\"Acme Plastics SA\",\"roles\":[\"recycler\"]}";
    assert_int_equal(put("/v1/parties/ACME", t.admin_key, renamed, &r), 200);
    th_assert_str(r.json, "name", "Acme Plastics SA");
    th_assert_str(r.json, "code", "ACME");
    assert_null(th_json_at(r.json, "address")); /* a PUT replaces the whole record */
    th_resp_free(&r);
    get_string("/v1/parties/ACME", t.admin_key, "valid_from", v2, sizeof v2);
    assert_true(strcmp(v2, v1) > 0);
    get_string("/v1/parties/ACME", t.admin_key, "name", name, sizeof name);
    assert_string_equal(name, "Acme Plastics SA");

    /* The first version is in force from v1 until v2; none before v1. */
    snprintf(path, sizeof path, "/v1/parties/ACME?at=%s", v1);
    get_string(path, t.admin_key, "name", name, sizeof name);
    assert_string_equal(name, "Acme Plastics");
    snprintf(path, sizeof path, "/v1/parties/ACME?at=%s", v2);
    get_string(path, t.admin_key, "name", name, sizeof name);
    assert_string_equal(name, "Acme Plastics SA");
    assert_int_equal(th_get("/v1/parties/ACME?at=2000-01-01T00:00:00Z", t.admin_key, &r), 404);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/parties/ACME?at=yesterday", t.admin_key, &r), 400);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/parties/ACME?at=2026-02-30T00:00:00Z", t.admin_key, &r), 400);
    th_resp_free(&r);

    /* An unchanged PUT adds no version; the code in a body must match the path's. */
    assert_int_equal(put("/v1/parties/ACME", t.admin_key, renamed, &r), 200);
    th_assert_str(r.json, "valid_from", v2);
    th_resp_free(&r);
    assert_int_equal(count_rows("SELECT count(*) FROM masterdata_history WHERE tenant_id = $1 "
                                "AND kind = 'party'", &t), 2);
    assert_int_equal(count_rows("SELECT count(*) FROM party WHERE tenant_id = $1 AND "
                                "name = 'Acme Plastics SA' AND roles = '{recycler}'", &t), 1);
    expect_invalid(&t, "PUT", "/v1/parties/ACME", "{\"code\":\"OTHER\",\"name\":\"x\"}", "code");
    expect_invalid(&t, "PUT", "/v1/sites/ACME-1",
                   "{\"party\":\"NOPE\",\"name\":\"x\",\"kind\":\"factory\"}", "party");
    assert_int_equal(put("/v1/parties/NOPE", t.admin_key, renamed, &r), 404);
    th_assert_problem(&r, 404, NULL);
    th_resp_free(&r);
}

/* Lists one page of materials: codes joined by ',' into out, next_cursor into cursor ("" for
 * null). */
static void list_page(const th_tenant_t *t, const char *query, char *out, size_t n,
                      char *cursor, size_t cn)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/materials%s", query);
    th_resp_t r;
    if (th_get(path, t->admin_key, &r) != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
    buf_t codes = BUF_INIT;
    const cJSON *m;
    cJSON_ArrayForEach(m, th_json_at(r.json, "materials")) {
        buf_printf(&codes, "%s%s", codes.len ? "," : "", th_json_at(m, "code")->valuestring);
    }
    snprintf(out, n, "%s", codes.data ? codes.data : "");
    const cJSON *c = th_json_at(r.json, "next_cursor");
    assert_true(cJSON_IsNull(c) || cJSON_IsString(c));
    snprintf(cursor, cn, "%s", cJSON_IsString(c) ? c->valuestring : "");
    buf_free(&codes);
    th_resp_free(&r);
}

static void list_pages_with_cursor(void **state)
{
    th_tenant_t t;
    th_tenant_create(&t, "md-list");
    const char *codes[] = {"M-5", "M-1", "M-4", "M-2", "M-3"};
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"code\":\"%s\",\"name\":\"m\"}", codes[i]);
        post_expect(&t, "/v1/materials", body, 201, NULL);
    }
    char got[256], cursor[128], query[256];
    list_page(&t, "?limit=2", got, sizeof got, cursor, sizeof cursor);
    assert_string_equal(got, "M-1,M-2");
    assert_true(cursor[0]);
    snprintf(query, sizeof query, "?limit=2&cursor=%s", cursor);
    list_page(&t, query, got, sizeof got, cursor, sizeof cursor);
    assert_string_equal(got, "M-3,M-4");
    snprintf(query, sizeof query, "?limit=2&cursor=%s", cursor);
    list_page(&t, query, got, sizeof got, cursor, sizeof cursor);
    assert_string_equal(got, "M-5");
    assert_string_equal(cursor, "");
    list_page(&t, "", got, sizeof got, cursor, sizeof cursor);
    assert_string_equal(got, "M-1,M-2,M-3,M-4,M-5");
    assert_string_equal(cursor, "");

    const char *bad[] = {"?limit=0", "?limit=1001", "?limit=x", "?cursor=%25%25", "?cursor=IA"};
    for (int i = 0; i < 5; i++) {
        char path[128];
        th_resp_t r;
        snprintf(path, sizeof path, "/v1/materials%s", bad[i]);
        if (th_get(path, t.admin_key, &r) != 400) fail_msg("GET %s: %ld", path, r.status);
        th_assert_problem(&r, 400, NULL);
        th_resp_free(&r);
    }
}

typedef struct {
    const char *path, *body, *field;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"/v1/parties", "[]", ""},
    {"/v1/parties", "{\"name\":\"x\"}", "code"},
    {"/v1/parties", "{\"code\":\"a b\",\"name\":\"x\"}", "code"},
    {"/v1/parties", "{\"code\":\"X\"}", "name"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":5}", "name"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"colour\":\"red\"}", "colour"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"name\":\"y\"}", "name"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"roles\":\"generator\"}", "roles"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"roles\":[\"generator\",\"pirate\"]}",
     "roles[1]"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"country\":\"mx\"}", "country"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"country\":\"MEX\"}", "country"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"address\":\"Main St\"}", "address"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"address\":{\"street\":5}}",
     "address.street"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"address\":{\"planet\":\"Mars\"}}",
     "address.planet"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"address\":{\"country\":\"XYZ\"}}",
     "address.country"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"identifiers\":[7]}", "identifiers[0]"},
    {"/v1/parties", "{\"code\":\"X\",\"name\":\"x\",\"permits\":[{\"kind\":\"waste\"}]}",
     "permits[0].number"},
    {"/v1/parties",
     "{\"code\":\"X\",\"name\":\"x\",\"permits\":[{\"kind\":\"w\",\"number\":\"1\","
     "\"valid_from\":\"yesterday\"}]}",
     "permits[0].valid_from"},
    {"/v1/sites", "{\"code\":\"S\",\"name\":\"x\",\"kind\":\"factory\"}", "party"},
    {"/v1/sites", "{\"code\":\"S\",\"party\":\"NOPE\",\"name\":\"x\",\"kind\":\"factory\"}",
     "party"},
    {"/v1/sites", "{\"code\":\"S\",\"party\":\"ACME\",\"name\":\"x\",\"kind\":\"castle\"}",
     "kind"},
    {"/v1/sites", "{\"code\":\"S\",\"party\":\"ACME\",\"name\":\"x\",\"kind\":\"factory\","
                  "\"country\":\"M1\"}", "country"},
    {"/v1/sites", "{\"code\":\"S\",\"party\":\"ACME\",\"name\":\"x\",\"kind\":\"factory\","
                  "\"permits\":{}}", "permits"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"hazardous\":\"no\"}", "hazardous"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"renewable\":1}", "renewable"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"density_kg_m3\":0}", "density_kg_m3"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"value_per_kg\":-0.01}", "value_per_kg"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"recycling_efficiency_eol\":0}",
     "recycling_efficiency_eol"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"recycling_efficiency_feedstock\":1.5}",
     "recycling_efficiency_feedstock"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"national_codes\":[\"D001\"]}",
     "national_codes"},
    {"/v1/materials", "{\"code\":\"M\",\"name\":\"m\",\"category\":true}", "category"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"mass_kg\":0}", "mass_kg"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"lifetime_days\":-1}", "lifetime_days"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"industry_lifetime_days\":0}",
     "industry_lifetime_days"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"revision\":7}", "revision"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"status\":\"gone\"}", "status"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":{}}", "bom"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"mass_kg\":1}]}",
     "bom[0].material"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\"},"
                     "{\"material\":\"NOPE\"}]}", "bom[1].material"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\","
                     "\"mass_kg\":0}]}", "bom[0].mass_kg"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\","
                     "\"recycled_fraction\":1.5}]}", "bom[0].recycled_fraction"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\","
                     "\"reused_fraction\":-0.1}]}", "bom[0].reused_fraction"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\","
                     "\"renewable_fraction\":\"half\"}]}", "bom[0].renewable_fraction"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\","
                     "\"recycled_fraction\":0.5,\"reused_fraction\":0.4,"
                     "\"renewable_fraction\":0.2}]}", "bom[0]"},
    {"/v1/products", "{\"code\":\"P\",\"name\":\"p\",\"bom\":[{\"material\":\"PET\","
                     "\"colour\":\"red\"}]}", "bom[0].colour"},
};

static void every_validation_rule_answers_422_on_its_field(void **state)
{
    th_tenant_t t;
    th_tenant_create(&t, "md-valid");
    post_expect(&t, "/v1/parties", party_acme, 201, NULL);
    post_expect(&t, "/v1/materials", material_pet, 201, NULL);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
        expect_invalid(&t, "POST", bad_cases[i].path, bad_cases[i].body, bad_cases[i].field);
    /* Nothing of a refused record was stored. */
    assert_int_equal(count_rows("SELECT count(*) FROM masterdata_history WHERE tenant_id = $1",
                                &t), 2);
    /* Bodies that are not JSON are refused before validation. */
    th_resp_t r;
    assert_int_equal(th_post("/v1/parties", t.admin_key, "{\"code\":", &r), 400);
    th_resp_free(&r);
    assert_int_equal(th_post_ct("/v1/parties", t.admin_key, "text/plain", "{}", 2, &r), 415);
    th_resp_free(&r);
    const char latin1[] = "{\"code\":\"X\",\"name\":\"caf\xe9\"}";
    assert_int_equal(th_post("/v1/parties", t.admin_key, latin1, &r), 400);
    th_resp_free(&r);
}

static void read_key_reads_but_cannot_write(void **state)
{
    th_tenant_t t;
    char reader[256];
    th_tenant_create(&t, "md-read");
    post_expect(&t, "/v1/parties", party_acme, 201, NULL);
    th_key_create(&t, NULL, "read", reader, sizeof reader);
    th_resp_t r;
    assert_int_equal(th_get("/v1/parties", reader, &r), 200);
    th_assert_str(r.json, "parties.0.code", "ACME");
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/parties/ACME", reader, &r), 200);
    th_assert_str(r.json, "country", "MX");
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/parties/NOPE", reader, &r), 404);
    th_assert_problem(&r, 404, NULL);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/sites/ACME-1", reader, &r), 404);
    th_resp_free(&r);
    assert_int_equal(th_post("/v1/parties", reader, "{\"code\":\"B\",\"name\":\"b\"}", &r), 403);
    th_assert_problem(&r, 403, NULL);
    th_resp_free(&r);
    assert_int_equal(put("/v1/parties/ACME", reader, "{\"name\":\"b\"}", &r), 403);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/parties", NULL, &r), 401);
    th_resp_free(&r);
    assert_int_equal(count_rows("SELECT count(*) FROM party WHERE tenant_id = $1", &t), 1);
}

static long post_event_at(const th_tenant_t *t, const char *id, const char *site)
{
    char *body = th_json_take(th_event(id, site, 5, "kg"));
    th_resp_t r;
    long st = th_post("/v1/events", t->admin_key, body, &r);
    th_resp_free(&r);
    free(body);
    return st;
}

static void event_sees_a_site_created_a_moment_ago(void **state)
{
    th_tenant_t t;
    th_tenant_setup(&t, "md-event");
    /* The tenant's master data is now cached by the event path. */
    assert_int_equal(post_event_at(&t, "before", "S1"), 201);
    assert_int_equal(post_event_at(&t, "unknown-site", "S-NEW"), 422);
    th_site_create(&t, "S-NEW", "P1");
    assert_int_equal(post_event_at(&t, "at-new-site", "S-NEW"), 201);
    assert_int_equal(th_event_count_id(t.id, "at-new-site"), 1);
}

int main(void)
{
    th_init("test_api_md");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_each_kind_then_same_then_conflict),
        cmocka_unit_test(put_keeps_history_and_at_reads_old_versions),
        cmocka_unit_test(list_pages_with_cursor),
        cmocka_unit_test(every_validation_rule_answers_422_on_its_field),
        cmocka_unit_test(read_key_reads_but_cannot_write),
        cmocka_unit_test(event_sees_a_site_created_a_moment_ago),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

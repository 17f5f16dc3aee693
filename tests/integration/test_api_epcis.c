// uses: tests/harness daemon/buf
/* test_api_epcis — EPCIS capture and query against a real circad and PostgreSQL: every GS1
 * example document is captured, its job polled to success, its events read back from the
 * ledger and through GET /epcis/events; a document with one invalid event stores nothing. */
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

#define DATA "tests/data/epcis/"

static th_daemon_t daemon_;
static th_tenant_t ten;

/* Site code -> the SGLN it lists; every location the examples name resolves to one of them
 * (readPoints with an extension through their GLN form, e.g. 0614141.07346.1234 -> S-A). */
static const char *const sites[][2] = {
    {"S-A", "urn:epc:id:sgln:0614141.07346.0"}, {"S-B", "urn:epc:id:sgln:0012345.11111.0"},
    {"S-C", "urn:epc:id:sgln:0614141.00777.0"}, {"S-D", "urn:epc:id:sgln:0614141.00888.0"},
    {"S-E", "urn:epc:id:sgln:4012345.00001.0"}, {"S-F", "urn:epc:id:sgln:4012345.00002.0"},
    {"S-G", "urn:epc:id:sgln:9524567.98765.0"}, {"S-H", "urn:epc:id:sgln:952005385.011.scA"},
    {"S-I", "urn:epc:id:sgln:952005385.011.0"}, {"S-J", "urn:epc:id:sgln:9529999.99999.0"},
    {"S-K", "urn:epc:id:sgln:4012345.00225.0"},
};

static void site_with_sgln(const char *code, const char *sgln)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddStringToObject(j, "party", "GS1P");
    cJSON_AddStringToObject(j, "name", code);
    cJSON_AddStringToObject(j, "kind", "warehouse");
    cJSON_AddStringToObject(j, "country", "DE");
    cJSON_AddItemToObject(j, "identifiers", cJSON_CreateStringArray(&sgln, 1));
    char *body = th_json_take(j);
    th_resp_t r;
    long st = th_post("/v1/sites", ten.admin_key, body, &r);
    if (st != 201) fail_msg("POST /v1/sites %s: %ld %s", code, st, r.body);
    th_resp_free(&r);
    free(body);
}

static int start(void **state)
{
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    th_tenant_setup(&ten, "epcis");
    th_party_create(&ten, "GS1P");
    for (size_t i = 0; i < sizeof sites / sizeof sites[0]; i++) site_with_sgln(sites[i][0], sites[i][1]);
    return 0;
}

static int stop(void **state)
{
    if (daemon_.pid) assert_int_equal(th_daemon_stop(&daemon_), 0);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
    fclose(f);
    return buf_steal(&b);
}

/* POSTs a document, expects 202 with a Location, polls the job until it is no longer running
 * (bounded) and returns its final JSON (caller deletes). */
static cJSON *capture(const char *key, const char *body)
{
    th_resp_t r;
    long st = th_post_ct("/epcis/capture", key, "application/ld+json", body, strlen(body), &r);
    if (st != 202) fail_msg("capture: %ld %s", st, r.body);
    assert_true(strncmp(r.location, "/epcis/capture/", 15) == 0);
    char loc[512];
    snprintf(loc, sizeof loc, "%s", r.location);
    th_resp_free(&r);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(th_get(loc, key, &r), 200);
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "status"));
        assert_non_null(status);
        if (strcmp(status, "running") != 0) {
            cJSON *job = cJSON_Duplicate(r.json, 1);
            th_resp_free(&r);
            return job;
        }
        th_resp_free(&r);
        usleep(20000);
    }
    fail_msg("capture job %s still running", loc);
    return NULL;
}

static cJSON *capture_file(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, DATA "%s", name);
    char *body = slurp(path);
    cJSON *job = capture(ten.admin_key, body);
    free(body);
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(job, "status"));
    if (strcmp(status, "success") != 0) {
        char *t = cJSON_Print(job);
        fail_msg("%s: job %s", name, t);
    }
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(job, "running")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(job, "success")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(job, "errors")), 0);
    return job;
}

/* "type|site|quantity_kg|item|lot|product|from_site|to_site" of a stored event. */
static void stored(const char *id, char *out, size_t outlen)
{
    const char *p[2] = {ten.id, id};
    if (th_db_text("SELECT concat_ws('|', type, coalesce(site, '-'), coalesce(quantity_kg::text, '-'), "
                   "coalesce(item, '-'), coalesce(lot, '-'), coalesce(product, '-'), "
                   "coalesce(from_site, '-'), coalesce(to_site, '-')) FROM event "
                   "WHERE tenant_id = $1 AND id = $2", 2, p, out, outlen) != 0)
        fail_msg("event %s is not stored", id);
}

static void assert_stored(const char *id, const char *want)
{
    char got[1024];
    stored(id, got, sizeof got);
    if (strcmp(got, want) != 0) fail_msg("event %s: got %s, want %s", id, got, want);
}

static void test_object_events(void **state)
{
    cJSON *job = capture_file("Example_9.6.1-ObjectEvent.jsonld");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(job, "eventIDs")), 3);
    cJSON_Delete(job);
    /* shipping without a destination: observed, one per EPC; readPoint .1234 -> its GLN */
    assert_stored("ni:///sha-256;df7bb3c352fef055578554f09f5e2aa41782150ced7bd0b8af24dd3ccb30ba69?ver=CBV2.0#1",
                  "observed|S-A|-|urn:epc:id:sgtin:0614141.107346.2017|-|-|-|-");
    /* receiving one EPC: received, the item's product its GTIN-14, site the bizLocation */
    assert_stored("ni:///sha-256;00e1e6eba3a7cc6125be4793a631f0af50f8322e0ab5f2c0bab994a11cec1d79?ver=CBV2.0",
                  "received|S-B|-|urn:epc:id:sgtin:0614141.107346.2018|-|10614141073464|-|-");

    job = capture_file("Example_9.6.2-ObjectEvent.jsonld");
    cJSON_Delete(job);
    assert_stored("ni:///sha-256;a98f08ae6ac4de3482054314d637c07010b448d3802dccb028a06aafcc6a4b10?ver=CBV2.0",
                  "received|S-D|200|-|urn:epc:class:lgtin:4012345.012345.998877|04012345123456|S-K|S-C");
}

static void test_aggregation_transformation(void **state)
{
    cJSON_Delete(capture_file("Example_9.6.3-AggregationEvent.jsonld"));
    const char *agg = "ni:///sha-256;87b5f18a69993f0052046d4687dfacdf48f7c988cfabda2819688c86b4066a49?ver=CBV2.0";
    char id[256];
    snprintf(id, sizeof id, "%s#2", agg);
    assert_stored(id, "received|S-D|-|urn:epc:id:sgtin:0614141.107346.2018|-|10614141073464|-|-");
    snprintf(id, sizeof id, "%s#3", agg);   /* the count of 10 has no mass: observed */
    assert_stored(id, "observed|S-D|-|-|-|-|-|-");
    snprintf(id, sizeof id, "%s#4", agg);
    assert_stored(id, "received|S-D|200.5|-|urn:epc:class:lgtin:4012345.012345.998877|04012345123456|-|-");

    cJSON *job = capture_file("Example_9.6.4-TransformationEvent.jsonld");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(job, "eventIDs")), 9);
    cJSON_Delete(job);
    const char *tr = "ni:///sha-256;e65c3a997e77f34b58306da7a82ab0fc91c7820013287700f0b50345e5795b97?ver=CBV2.0";
    snprintf(id, sizeof id, "%s#1", tr);
    assert_stored(id, "consumed|S-E|-|urn:epc:id:sgtin:4012345.011122.25|-|04012345111224|-|-");
    snprintf(id, sizeof id, "%s#3", tr);
    assert_stored(id, "consumed|S-E|10|-|urn:epc:class:lgtin:4012345.011111.4444|04012345111118|-|-");
    snprintf(id, sizeof id, "%s#9", tr);
    assert_stored(id, "produced|S-E|-|urn:epc:id:sgtin:4012345.077889.28|-|04012345778892|-|-");
}

static void test_error_declaration(void **state)
{
    cJSON *job = capture_file("ErrorDeclarationAndCorrectiveEvent.jsonld");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(job, "eventIDs")), 16);
    cJSON_Delete(job);
    const char *wrong = "urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8";
    char id[256];
    snprintf(id, sizeof id, "%s#4", wrong);
    assert_stored(id, "produced|S-A|452|-|-|04012345444445|-|-");
    snprintf(id, sizeof id, "%s#4#error", wrong);
    char got[512];
    stored(id, got, sizeof got);
    assert_true(strncmp(got, "corrected|S-A|", 14) == 0);
    const char *p[2] = {ten.id, id};
    char corrects[256];
    assert_int_equal(th_db_text("SELECT corrected FROM correction WHERE tenant_id = $1 AND by_event = $2",
                                2, p, corrects, sizeof corrects), 0);
    snprintf(id, sizeof id, "%s#4", wrong);
    assert_string_equal(corrects, id);
    assert_stored("urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8#4",
                  "produced|S-A|500|-|-|04012345444445|-|-");
}

static void test_other_examples(void **state)
{
    cJSON_Delete(capture_file("Example_9.6.1-ObjectEvent-with-error-declaration.jsonld"));
    cJSON_Delete(capture_file("Example-TransactionEvents-2020_07_03y.jsonld"));
    /* no eventID: a hash id; transporting has no flow meaning; bizLocation scA -> S-H */
    const char *p[1] = {ten.id};
    assert_int_equal(th_db_long("SELECT count(*) FROM event WHERE tenant_id = $1 AND type = 'observed' "
                                "AND site = 'S-H' AND item = 'urn:epc:id:giai:952005385.w2' "
                                "AND id LIKE 'epcis:sha256:%'", 1, p), 1);
    cJSON_Delete(capture_file("Example-Type-sourceOrDestination_measurement_bizTransaction.jsonld"));
    const char *as = "ni:///sha-256;5f7c472bc4905de27a19b2efc8e4a9c6dc195139669b80b515f12218ff07cf65?ver=CBV2.0";
    char id[256];
    snprintf(id, sizeof id, "%s#4", as);   /* the sensor readings */
    assert_stored(id, "measured|S-F|-|-|-|-|-|-");
    cJSON_Delete(capture_file("PersistentDisposition-example.jsonld"));
    assert_stored("ni:///sha-256;56ba4f355c57456b41c3fb60b22d8342e759de503e3e618940ca3b6ad1bf9b00?ver=CBV2.0#10",
                  "received|S-J|-|urn:epc:id:sgtin:9520001.012346.10000001010|-|09520001123467|-|-");
}

static cJSON *query(const char *q)
{
    char path[1024];
    th_resp_t r;
    snprintf(path, sizeof path, "/epcis/events?%s", q);
    if (th_get(path, ten.admin_key, &r) != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
    th_assert_str(r.json, "type", "EPCISQueryDocument");
    const cJSON *list = th_json_at(r.json, "epcisBody.queryResults.resultsBody.eventList");
    assert_non_null(list);
    cJSON *copy = cJSON_Duplicate(list, 1);
    th_resp_free(&r);
    return copy;
}

static void test_query(void **state)
{
    cJSON_Delete(capture_file("Example_9.6.4-TransformationEvent.jsonld"));   /* duplicates */
    cJSON_Delete(capture_file("ErrorDeclarationAndCorrectiveEvent.jsonld"));
    /* 9.6.4 once (captured twice), the declared event, its declaration, the corrective one */
    cJSON *l = query("eventType=TransformationEvent");
    assert_int_equal(cJSON_GetArraySize(l), 4);
    cJSON_Delete(l);
    /* returned as sent: the vendor extension and ilmd are there */
    l = query("eventType=TransformationEvent&LT_eventTime=2014-01-01T00:00:00Z");
    assert_int_equal(cJSON_GetArraySize(l), 1);
    th_assert_str(l->child, "ilmd.example:batch", "XYZ");
    th_assert_str(l->child, "eventID", "ni:///sha-256;e65c3a997e77f34b58306da7a82ab0fc91c7820013287700f0b50345e5795b97?ver=CBV2.0");
    cJSON_Delete(l);
    cJSON_Delete(capture_file("Example_9.6.2-ObjectEvent.jsonld"));
    l = query("EQ_bizStep=https://ref.gs1.org/cbv/BizStep-receiving&EQ_bizLocation=urn:epc:id:sgln:0614141.00888.0"
              "&GE_eventTime=2013-06-08T14:58:56.591Z&LT_eventTime=2013-06-08T14:58:56.592Z");
    assert_int_equal(cJSON_GetArraySize(l), 2);   /* 9.6.2 and 9.6.3 (captured earlier) */
    cJSON_Delete(l);
    l = query("MATCH_epc=urn:epc:idpat:sgtin:4012345.077889.*");
    assert_int_equal(cJSON_GetArraySize(l), 0);   /* outputs count only for MATCH_anyEPC */
    cJSON_Delete(l);
    l = query("MATCH_anyEPC=urn:epc:idpat:sgtin:4012345.077889.*");
    assert_int_equal(cJSON_GetArraySize(l), 1);
    cJSON_Delete(l);
    th_resp_t r;
    assert_int_equal(th_get("/epcis/events?GE_eventTime=yesterday", ten.admin_key, &r), 400);
    th_resp_free(&r);
}

static const char bad_doc[] =
    "{\"@context\": [\"https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld\","
    " {\"circa\": \"https://circa.example/ns/\"}],"
    " \"type\": \"EPCISDocument\", \"schemaVersion\": \"2.0\", \"creationDate\": \"2024-01-01T00:00:00Z\","
    " \"epcisBody\": {\"eventList\": ["
    "  {\"type\": \"ObjectEvent\", \"eventID\": \"urn:uuid:bad-1\", \"action\": \"OBSERVE\","
    "   \"eventTime\": \"2024-01-01T10:00:00+01:00\", \"eventTimeZoneOffset\": \"+01:00\","
    "   \"bizStep\": \"receiving\", \"bizLocation\": {\"id\": \"urn:epc:id:sgln:0614141.00888.0\"},"
    "   \"quantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.1\", \"quantity\": 5, \"uom\": \"KGM\"}]},"
    "  {\"type\": \"ObjectEvent\", \"eventID\": \"urn:uuid:bad-2\", \"action\": \"OBSERVE\","
    "   \"eventTime\": \"2024-01-01T10:00:00+01:00\", \"eventTimeZoneOffset\": \"+01:00\","
    "   \"bizStep\": \"receiving\", \"circa:ewc\": \"999999\","
    "   \"bizLocation\": {\"id\": \"urn:epc:id:sgln:0614141.00888.0\"},"
    "   \"quantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.2\", \"quantity\": 5, \"uom\": \"KGM\"}]},"
    "  {\"type\": \"ObjectEvent\", \"eventID\": \"urn:uuid:ok-3\", \"action\": \"OBSERVE\","
    "   \"eventTime\": \"2024-01-01T10:00:00+01:00\", \"eventTimeZoneOffset\": \"+01:00\","
    "   \"bizStep\": \"collecting\", \"circa:ewc\": \"150102\", \"circa:material\": \"PET\","
    "   \"bizLocation\": {\"id\": \"urn:epc:id:sgln:0614141.00888.0\"},"
    "   \"quantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.3\", \"quantity\": 1.5, \"uom\": \"TNE\"}]}"
    "]}}";

static void test_one_invalid_event_stores_nothing(void **state)
{
    long before = th_event_count(ten.id);
    cJSON *job = capture(ten.admin_key, bad_doc);
    th_assert_str(job, "status", "failure");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(job, "success")));
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(job, "errors")) >= 1);
    th_assert_num(job, "errors.0.eventIndex", 1);
    th_assert_str(job, "errors.0.field", "ewc");
    th_assert_str(job, "errors.0.eventID", "urn:uuid:bad-2");
    th_assert_has(job, "finishedAt");
    cJSON_Delete(job);
    assert_int_equal(th_event_count(ten.id), before);

    /* an unknown location fails at mapping, naming the event */
    char *doc = strdup(bad_doc);
    char *at = strstr(doc, "0614141.00888.0");
    memcpy(at, "0614141.00999.0", 15);
    job = capture(ten.admin_key, doc);
    free(doc);
    th_assert_str(job, "status", "failure");
    th_assert_num(job, "errors.0.eventIndex", 0);
    th_assert_str(job, "errors.0.field", "bizLocation.id");
    cJSON_Delete(job);
    assert_int_equal(th_event_count(ten.id), before);

    /* without the bad event the document goes in: circa:ewc, circa:material, tonnes -> kg */
    doc = strdup(bad_doc);
    char *bad = strstr(doc, "\"circa:ewc\": \"999999\"");
    memcpy(bad, "\"circa:ewc\": \"150102\"", 21);
    cJSON_Delete(capture(ten.admin_key, doc));
    free(doc);
    assert_stored("urn:uuid:ok-3", "collected|S-D|1500|-|urn:epc:class:lgtin:4012345.012345.3|04012345123456|-|-");
}

static void test_roles_and_shape(void **state)
{
    char read_key[256], ingest_key[256];
    th_key_create(&ten, NULL, "read", read_key, sizeof read_key);
    th_key_create(&ten, "P1", "ingest", ingest_key, sizeof ingest_key);
    th_resp_t r;
    assert_int_equal(th_post_ct("/epcis/capture", read_key, "application/json", bad_doc,
                                strlen(bad_doc), &r), 403);
    th_resp_free(&r);
    const char *notdoc = "{\"type\": \"EPCISQueryDocument\"}";
    assert_int_equal(th_post_ct("/epcis/capture", ten.admin_key, "application/json", notdoc,
                                strlen(notdoc), &r), 400);
    th_resp_free(&r);
    assert_int_equal(th_post_ct("/epcis/capture", ten.admin_key, "text/plain", notdoc,
                                strlen(notdoc), &r), 415);
    th_resp_free(&r);
    assert_int_equal(th_get("/epcis/capture/nosuchjob", ten.admin_key, &r), 404);
    th_resp_free(&r);
    /* an ingest key of P1 may not write at GS1P's sites: the job fails, nothing stored */
    long before = th_event_count(ten.id);
    cJSON *job = capture(ingest_key, bad_doc);
    th_assert_str(job, "status", "failure");
    cJSON_Delete(job);
    assert_int_equal(th_event_count(ten.id), before);
}

int main(void)
{
    th_init("test_api_epcis");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_events),
        cmocka_unit_test(test_aggregation_transformation),
        cmocka_unit_test(test_error_declaration),
        cmocka_unit_test(test_other_examples),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_one_invalid_event_stores_nothing),
        cmocka_unit_test(test_roles_and_shape),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

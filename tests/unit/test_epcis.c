// uses: adapters/epcis daemon/buf daemon/jcs daemon/errlist
/* test_epcis — the EPCIS mapping without the daemon: each event type, units, the circa
 * extension, places, per-EPC expansion, ids, error declarations and the edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "epcis.h"

static const char *site_of(void *ud, const char *id)
{
    if (strcmp(id, "urn:epc:id:sgln:1.2.0") == 0) return "S1";
    if (strcmp(id, "urn:epc:id:sgln:1.3.0") == 0) return "S2";
    return NULL;
}

static const char *party_of(void *ud, const char *id)
{
    return strcmp(id, "urn:epc:id:pgln:9.1") == 0 ? "EXT" : NULL;
}

static const epcis_places_t places = {NULL, site_of, party_of};

/* Wraps events (a JSON array text) in a document with the circa namespace bound to "cx". */
static cJSON *doc_of(const char *events)
{
    char text[8192];
    snprintf(text, sizeof text,
             "{\"@context\": [\"https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld\","
             " {\"cx\": \"https://circa.example/ns/\"}], \"type\": \"EPCISDocument\","
             " \"epcisBody\": {\"eventList\": %s}}", events);
    cJSON *d = cJSON_Parse(text);
    assert_non_null(d);
    return d;
}

static epcis_mapped_t map_ok(const char *events)
{
    cJSON *d = doc_of(events);
    epcis_mapped_t m;
    errlist_t errs = ERRLIST_INIT;
    int rc = epcis_map(d, &places, &m, &errs);
    if (rc != 0) fail_msg("mapping failed: %s: %s", errs.items[0].field, errs.items[0].message);
    errlist_free(&errs);
    cJSON_Delete(d);
    return m;
}

static const char *str_at(const cJSON *ev, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, k));
}

#define EV(m, i) cJSON_GetArrayItem((m).events, i)

static void test_object_event_per_epc(void **state)
{
    epcis_mapped_t m = map_ok(
        "[{\"type\": \"ObjectEvent\", \"eventID\": \"E1\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"action\": \"OBSERVE\", \"bizStep\": \"urn:epcglobal:cbv:bizstep:receiving\","
        " \"readPoint\": {\"id\": \"urn:epc:id:sgln:1.2.77\"},"
        " \"sourceList\": [{\"type\": \"owning_party\", \"source\": \"urn:epc:id:pgln:9.1\"}],"
        " \"epcList\": [\"urn:epc:id:sgtin:0614141.107346.1\", \"urn:epc:id:giai:1.x\"]}]");
    assert_int_equal(m.n, 2);
    assert_string_equal(str_at(EV(m, 0), "id"), "E1#1");
    assert_string_equal(str_at(EV(m, 1), "id"), "E1#2");
    assert_string_equal(str_at(EV(m, 0), "type"), "received");
    assert_string_equal(str_at(EV(m, 0), "site"), "S1");          /* readPoint's GLN form */
    assert_string_equal(str_at(EV(m, 0), "from_site"), "EXT");    /* a party by identifier */
    assert_string_equal(str_at(EV(m, 0), "item"), "urn:epc:id:sgtin:0614141.107346.1");
    assert_string_equal(str_at(EV(m, 0), "product"), "10614141073464");
    assert_null(cJSON_GetObjectItem(EV(m, 1), "product"));        /* a GIAI names no GTIN */
    assert_int_equal(m.origin[1], 0);
    /* the original event rides along in ext */
    const cJSON *ext = cJSON_GetObjectItem(cJSON_GetObjectItem(EV(m, 1), "ext"), "epcis");
    assert_string_equal(str_at(ext, "bizStep"), "receiving");
    assert_string_equal(str_at(cJSON_GetObjectItem(ext, "event"), "eventID"), "E1");
    epcis_mapped_free(&m);
}

static void test_quantities_units_and_extension(void **state)
{
    epcis_mapped_t m = map_ok(
        "[{\"type\": \"TransactionEvent\", \"eventTime\": \"2024-01-01T00:00:00+01:00\","
        " \"bizStep\": \"https://ref.gs1.org/cbv/BizStep-collecting\", \"cx:ewc\": \"150102\","
        " \"cx:material\": \"PET\", \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.3.0\"},"
        " \"quantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.L1\", \"quantity\": 2, \"uom\": \"TNE\"},"
        "   {\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.L2\", \"quantity\": 3, \"uom\": \"LTR\", \"cx:material\": \"OIL\"},"
        "   {\"epcClass\": \"urn:epc:idpat:sgtin:4012345.012345.*\", \"quantity\": 7}]}]");
    assert_int_equal(m.n, 3);
    const cJSON *a = EV(m, 0), *b = EV(m, 1), *c = EV(m, 2);
    assert_string_equal(str_at(a, "type"), "collected");
    assert_string_equal(str_at(a, "site"), "S2");
    assert_string_equal(str_at(a, "ewc"), "150102");
    assert_string_equal(str_at(a, "material"), "PET");
    assert_string_equal(str_at(a, "lot"), "urn:epc:class:lgtin:4012345.012345.L1");
    assert_string_equal(str_at(cJSON_GetObjectItem(a, "quantity"), "unit"), "t");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "quantity"), "value")->valuedouble, 2);
    assert_string_equal(str_at(b, "material"), "OIL");             /* per element override */
    assert_string_equal(str_at(cJSON_GetObjectItem(b, "quantity"), "unit"), "l");
    /* a bare count is no mass: observed, the count kept in ext */
    assert_string_equal(str_at(c, "type"), "observed");
    assert_null(cJSON_GetObjectItem(c, "quantity"));
    const cJSON *ext = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "ext"), "epcis");
    assert_int_equal(cJSON_GetObjectItem(ext, "count")->valuedouble, 7);
    /* no eventID: a hash id, the same for the same event */
    assert_true(strncmp(str_at(a, "id"), "epcis:sha256:", 13) == 0);
    assert_true(strncmp(str_at(a, "id") + strlen(str_at(a, "id")) - 2, "#1", 2) == 0);
    epcis_mapped_free(&m);
}

static const char transformation[] =
    "[{\"type\": \"TransformationEvent\", \"eventID\": \"T1\", \"eventTime\": \"2024-01-01T00:00:00Z\","
    " \"readPoint\": {\"id\": \"urn:epc:id:sgln:1.2.0\"}, \"cx:material\": \"PET\", \"cx:operation\": \"R12\","
    " \"inputQuantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.IN\", \"quantity\": 100, \"uom\": \"KGM\"}],"
    " \"outputQuantityList\": [{\"epcClass\": \"urn:epc:class:lgtin:4012345.012345.OUT\", \"quantity\": 0.098, \"uom\": \"TNE\"}]}]";

static void test_transformation(void **state)
{
    /* masses with a material on both sides: one transformed event */
    epcis_mapped_t m = map_ok(transformation);
    assert_int_equal(m.n, 1);
    assert_string_equal(str_at(EV(m, 0), "id"), "T1");
    assert_string_equal(str_at(EV(m, 0), "type"), "transformed");
    assert_string_equal(str_at(EV(m, 0), "operation"), "R12");
    const cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(EV(m, 0), "outputs"), 0);
    assert_string_equal(str_at(out, "lot"), "urn:epc:class:lgtin:4012345.012345.OUT");
    assert_string_equal(str_at(out, "material"), "PET");
    epcis_mapped_free(&m);
    /* EPCs on a side: consumed per input, produced per output */
    m = map_ok("[{\"type\": \"TransformationEvent\", \"eventID\": \"T2\", \"eventTime\": \"2024-01-01T00:00:00Z\","
               " \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
               " \"inputEPCList\": [\"urn:epc:id:sgtin:4012345.011122.25\"],"
               " \"outputQuantityList\": [{\"epcClass\": \"urn:epc:idpat:sgtin:4012345.044444.*\", \"quantity\": 5, \"uom\": \"KGM\"}]}]");
    assert_int_equal(m.n, 2);
    assert_string_equal(str_at(EV(m, 0), "type"), "consumed");
    assert_string_equal(str_at(EV(m, 0), "item"), "urn:epc:id:sgtin:4012345.011122.25");
    assert_string_equal(str_at(EV(m, 1), "type"), "produced");
    assert_string_equal(str_at(EV(m, 1), "product"), "04012345444445");
    assert_null(cJSON_GetObjectItem(EV(m, 1), "lot"));             /* a pattern is no lot */
    epcis_mapped_free(&m);
}

static void test_aggregation_association_sensors(void **state)
{
    epcis_mapped_t m = map_ok(
        "[{\"type\": \"AggregationEvent\", \"eventID\": \"A1\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"action\": \"ADD\", \"bizStep\": \"packing\", \"parentID\": \"urn:epc:id:sscc:1.1\","
        " \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"}},"
        " {\"type\": \"AssociationEvent\", \"eventID\": \"B1\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"bizStep\": \"sensor_reporting\", \"parentID\": \"urn:epc:id:grai:1.1.1\","
        " \"childEPCs\": [\"urn:epc:id:giai:1.a\"], \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
        " \"sensorElementList\": [{\"sensorReport\": [{\"type\": \"Temperature\", \"value\": 4, \"uom\": \"CEL\"}]}]}]");
    assert_int_equal(m.n, 2);
    /* packing has no flow meaning; without children the parent is the object */
    assert_string_equal(str_at(EV(m, 0), "type"), "observed");
    assert_string_equal(str_at(EV(m, 0), "item"), "urn:epc:id:sscc:1.1");
    assert_string_equal(str_at(EV(m, 1), "type"), "measured");
    assert_string_equal(str_at(EV(m, 1), "id"), "B1");
    const cJSON *ext = cJSON_GetObjectItem(cJSON_GetObjectItem(EV(m, 1), "ext"), "epcis");
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(ext, "readings")));
    assert_int_equal(m.origin[1], 1);
    epcis_mapped_free(&m);
}

static void test_shipping_and_unknown_vocabulary(void **state)
{
    epcis_mapped_t m = map_ok(
        "[{\"type\": \"ObjectEvent\", \"eventID\": \"S1\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"bizStep\": \"shipping\", \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
        " \"destinationList\": [{\"type\": \"location\", \"destination\": \"urn:epc:id:sgln:1.3.0\"}],"
        " \"epcList\": [\"urn:epc:id:giai:1.a\"]},"
        " {\"type\": \"ObjectEvent\", \"eventID\": \"S2\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"bizStep\": \"shipping\", \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
        " \"epcList\": [\"urn:epc:id:giai:1.a\"]},"
        " {\"type\": \"ObjectEvent\", \"eventID\": \"S3\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"bizStep\": \"http://example.org/steps/weird\", \"example:x\": 1,"
        " \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"}, \"epcList\": [\"urn:epc:id:giai:1.a\"]},"
        " {\"type\": \"ObjectEvent\", \"eventID\": \"S4\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"bizStep\": \"receiving\", \"disposition\": \"returned\", \"cx:type\": \"reused\","
        " \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"}, \"epcList\": [\"urn:epc:id:giai:1.a\"]}]");
    assert_int_equal(m.n, 4);
    assert_string_equal(str_at(EV(m, 0), "type"), "shipped");
    assert_string_equal(str_at(EV(m, 0), "to_site"), "S2");
    assert_string_equal(str_at(EV(m, 1), "type"), "observed");     /* no destination */
    assert_string_equal(str_at(EV(m, 2), "type"), "observed");
    const cJSON *ext = cJSON_GetObjectItem(cJSON_GetObjectItem(EV(m, 2), "ext"), "epcis");
    assert_string_equal(str_at(ext, "bizStep"), "http://example.org/steps/weird");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(ext, "event"), "example:x"));
    assert_string_equal(str_at(EV(m, 3), "type"), "reused");       /* circa:type wins */
    epcis_mapped_free(&m);
    assert_string_equal(epcis_bizstep_type("receiving", "returned"), "returned");
    assert_string_equal(epcis_bizstep_type("inspecting", NULL), "observed");
    assert_string_equal(epcis_bizstep_type(NULL, NULL), "observed");
}

static void test_error_declaration(void **state)
{
    epcis_mapped_t m = map_ok(
        "[{\"type\": \"ObjectEvent\", \"eventID\": \"W\", \"eventTime\": \"2024-01-01T00:00:00Z\","
        " \"bizStep\": \"receiving\", \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
        " \"epcList\": [\"urn:epc:id:giai:1.a\", \"urn:epc:id:giai:1.b\"],"
        " \"errorDeclaration\": {\"declarationTime\": \"2024-02-01T00:00:00Z\", \"reason\": \"incorrect_data\"}}]");
    assert_int_equal(m.n, 4);
    /* the declared event as it was (without the declaration), then one correction per part */
    assert_string_equal(str_at(EV(m, 0), "id"), "W#1");
    const cJSON *orig = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(EV(m, 0), "ext"), "epcis"), "event");
    assert_null(cJSON_GetObjectItem(orig, "errorDeclaration"));
    const cJSON *c = EV(m, 3);
    assert_string_equal(str_at(c, "type"), "corrected");
    assert_string_equal(str_at(c, "id"), "W#2#error");
    assert_string_equal(str_at(c, "corrects"), "W#2");
    assert_string_equal(str_at(c, "time"), "2024-02-01T00:00:00Z");
    const cJSON *r = cJSON_GetObjectItem(c, "replacement");
    assert_string_equal(str_at(r, "type"), "observed");
    assert_string_equal(str_at(r, "id"), "W#2#void");
    assert_string_equal(str_at(r, "site"), "S1");
    epcis_mapped_free(&m);
}

static void test_errors(void **state)
{
    cJSON *d = doc_of("[{\"type\": \"ObjectEvent\", \"eventTime\": \"2024-01-01T00:00:00Z\","
                      "  \"bizLocation\": {\"id\": \"urn:epc:id:sgln:7.7.0\"}},"
                      " {\"type\": \"WeirdEvent\", \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"}},"
                      " {\"type\": \"ObjectEvent\", \"eventTime\": \"2024-01-01T00:00:00Z\","
                      "  \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
                      "  \"quantityList\": [{\"quantity\": 1, \"uom\": \"KGM\"}]}]");
    epcis_mapped_t m;
    errlist_t errs = ERRLIST_INIT;
    assert_int_equal(epcis_map(d, &places, &m, &errs), -1);
    int seen[3] = {0, 0, 0};
    for (size_t i = 0; i < errs.n; i++) {
        int ix = errs.items[i].index;
        assert_true(ix >= 0 && ix < 3);
        if (ix == 0) assert_string_equal(errs.items[i].field, "bizLocation.id");
        if (ix == 2) assert_string_equal(errs.items[i].field, "quantityList[0]");
        seen[ix]++;
    }
    assert_true(seen[0] && seen[1] && seen[2]);   /* every bad event is reported */
    errlist_free(&errs);
    epcis_mapped_free(&m);
    cJSON_Delete(d);

    cJSON *q = cJSON_Parse("{\"type\": \"EPCISQueryDocument\"}");
    assert_int_equal(epcis_map(q, &places, &m, &errs), -1);
    assert_int_equal(errs.items[0].index, -1);
    errlist_free(&errs);
    epcis_mapped_free(&m);
    cJSON_Delete(q);
}

static void test_helpers(void **state)
{
    char g[15];
    assert_int_equal(epcis_gtin14("urn:epc:id:sgtin:9520001.012346.10000001001", g), 0);
    assert_string_equal(g, "09520001123467");
    assert_int_equal(epcis_gtin14("urn:epc:id:sgtin:952.01", g), -1);
    assert_int_equal(epcis_gtin14("urn:epc:id:giai:1.a", g), -1);
    assert_string_equal(epcis_cbv_short("https://ref.gs1.org/cbv/Disp-in_transit"), "in_transit");
    assert_string_equal(epcis_unit("MTQ"), "m3");
    assert_string_equal(epcis_unit("LBR"), "lb");
    assert_string_equal(epcis_unit("GRM"), "g");
    assert_null(epcis_unit("A93"));
    assert_null(epcis_unit(NULL));
    cJSON *d = doc_of("[{\"type\": \"ObjectEvent\", \"readPoint\": {\"id\": \"urn:epc:id:sgln:1.2.77\"},"
                      " \"bizLocation\": {\"id\": \"urn:epc:id:sgln:1.2.0\"},"
                      " \"destinationList\": [{\"type\": \"location\", \"destination\": \"urn:epc:id:sgln:1.3.0\"}]}]");
    cJSON *ids = epcis_identifiers(d);
    assert_int_equal(cJSON_GetArraySize(ids), 3);   /* 1.2.77, its GLN 1.2.0 (once), 1.3.0 */
    cJSON_Delete(ids);
    cJSON_Delete(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_event_per_epc),
        cmocka_unit_test(test_quantities_units_and_extension),
        cmocka_unit_test(test_transformation),
        cmocka_unit_test(test_aggregation_association_sensors),
        cmocka_unit_test(test_shipping_and_unknown_vocabulary),
        cmocka_unit_test(test_error_declaration),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

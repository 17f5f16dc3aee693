// uses: adapters/profiles daemon/buf
/* test_profiles — device payloads to canonical events: weighbridge, smart_bin (fill, pickup),
 * mapping by JSON pointers, and the reasons that become dead letters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "profiles.h"

static const char *devices_json =
    "{\"WB-01\": {\"site\": \"ACME-1\", \"material\": \"PET\", \"ewc\": \"150102\", \"type\": \"waste_generated\"},"
    " \"WB-02\": {\"site\": \"ACME-1\", \"material\": \"PET\", \"ewc\": \"150102\"},"
    " \"BIN-17\": {\"site\": \"ACME-1\", \"material\": \"PET\", \"ewc\": \"150102\"}}";

static cJSON *map(const char *sub_json, const char *payload, char *reason)
{
    cJSON *sub = cJSON_Parse(sub_json), *devices = cJSON_Parse(devices_json);
    profile_t p;
    char err[200];
    assert_int_equal(profile_parse(sub, &p, err, sizeof err), 0);
    cJSON *ev = profile_map(&p, "park", devices, payload, strlen(payload), reason, 300);
    cJSON_Delete(sub);
    cJSON_Delete(devices);
    return ev;
}

static const char *s(const cJSON *ev, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, k));
}

static void weighbridge(void **state)
{
    char reason[300];
    cJSON *ev = map("{\"profile\": \"weighbridge\"}",
                    "{\"device\": \"WB-01\", \"ticket\": \"T-000123\", \"time\": \"2026-03-04T10:15:00+01:00\","
                    " \"gross\": 12.5, \"tare\": 8.3, \"unit\": \"t\"}", reason);
    assert_non_null(ev);
    assert_string_equal(s(ev, "id"), "park:WB-01:T-000123");
    assert_string_equal(s(ev, "type"), "waste_generated");
    assert_string_equal(s(ev, "site"), "ACME-1");
    assert_string_equal(s(ev, "ewc"), "150102");
    assert_string_equal(s(ev, "device"), "WB-01");
    assert_string_equal(s(ev, "document"), "T-000123");
    cJSON *q = cJSON_GetObjectItem(ev, "quantity");
    assert_true(cJSON_GetObjectItem(q, "value")->valuedouble == 4.2);
    assert_string_equal(s(q, "unit"), "t");
    assert_string_equal(s(q, "basis"), "measured");
    cJSON_Delete(ev);
    ev = map("{\"profile\": \"weighbridge\"}",
             "{\"device\": \"WB-02\", \"ticket\": \"T-1\", \"time\": \"2026-03-04T10:15:00Z\", \"gross\": 2, \"tare\": 1}", reason);
    assert_string_equal(s(ev, "type"), "received");   /* the default type, kg the default unit */
    assert_string_equal(s(cJSON_GetObjectItem(ev, "quantity"), "unit"), "kg");
    cJSON_Delete(ev);
}

static void weighbridge_refusals(void **state)
{
    char reason[300];
    assert_null(map("{\"profile\": \"weighbridge\"}", "{\"device\": \"WB-01\", \"ticket\":", reason));
    assert_non_null(strstr(reason, "malformed payload"));
    assert_null(map("{\"profile\": \"weighbridge\"}", "[1, 2]", reason));
    assert_non_null(strstr(reason, "not a JSON object"));
    assert_null(map("{\"profile\": \"weighbridge\"}",
                    "{\"device\": \"WB-99\", \"ticket\": \"T\", \"time\": \"2026-03-04T10:15:00Z\", \"gross\": 2, \"tare\": 1}", reason));
    assert_string_equal(reason, "unknown device \"WB-99\"");
    assert_null(map("{\"profile\": \"weighbridge\"}",
                    "{\"device\": \"WB-01\", \"ticket\": \"T\", \"time\": \"2026-03-04T10:15:00Z\", \"gross\": 1, \"tare\": 1}", reason));
    assert_non_null(strstr(reason, "not above 0"));
    assert_null(map("{\"profile\": \"weighbridge\"}",
                    "{\"device\": \"WB-01\", \"time\": \"2026-03-04T10:15:00Z\", \"gross\": 3, \"tare\": 1}", reason));
    assert_non_null(strstr(reason, "ticket"));
}

static void smart_bin(void **state)
{
    char reason[300];
    cJSON *ev = map("{\"profile\": \"smart_bin\"}",
                    "{\"device\": \"BIN-17\", \"time\": \"2026-03-04T10:15:00Z\", \"fill\": 0.85}", reason);
    assert_string_equal(s(ev, "id"), "park:BIN-17:2026-03-04T10:15:00Z:fill");
    assert_string_equal(s(ev, "type"), "measured");
    assert_null(cJSON_GetObjectItem(ev, "quantity"));
    assert_null(cJSON_GetObjectItem(ev, "ewc"));
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "ext"), "fill")->valuedouble == 0.85);
    cJSON_Delete(ev);
    ev = map("{\"profile\": \"smart_bin\"}",
             "{\"device\": \"BIN-17\", \"time\": \"2026-03-04T10:15:00Z\", \"pickup\": true, \"weight\": 120, \"unit\": \"kg\"}", reason);
    assert_string_equal(s(ev, "id"), "park:BIN-17:2026-03-04T10:15:00Z:pickup");
    assert_string_equal(s(ev, "type"), "collected");
    assert_string_equal(s(ev, "ewc"), "150102");
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "quantity"), "value")->valuedouble == 120);
    cJSON_Delete(ev);
    assert_null(map("{\"profile\": \"smart_bin\"}", "{\"device\": \"BIN-17\", \"time\": \"2026-03-04T10:15:00Z\"}", reason));
    assert_non_null(strstr(reason, "fill"));
}

static void mapping(void **state)
{
    char reason[300];
    const char *sub = "{\"profile\": \"mapping\", \"map\": {\"time\": \"/ts\", \"quantity.value\": \"/w/net\","
                      " \"device\": \"/meta/a~1b\", \"ext.raw\": \"/list/1\"},"
                      " \"const\": {\"type\": \"received\", \"quantity.unit\": \"kg\"}}";
    cJSON *ev = map(sub, "{\"ts\": \"2026-03-04T10:15:00Z\", \"w\": {\"net\": 42.5}, \"meta\": {\"a/b\": \"WB-02\"},"
                         " \"list\": [0, \"x\"]}", reason);
    assert_non_null(ev);
    assert_string_equal(s(ev, "id"), "park:WB-02:2026-03-04T10:15:00Z");
    assert_string_equal(s(ev, "type"), "received");
    assert_string_equal(s(ev, "site"), "ACME-1");
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "quantity"), "value")->valuedouble == 42.5);
    assert_string_equal(s(cJSON_GetObjectItem(ev, "quantity"), "unit"), "kg");
    assert_string_equal(s(cJSON_GetObjectItem(ev, "ext"), "raw"), "x");
    cJSON_Delete(ev);
    assert_null(map(sub, "{\"ts\": \"2026-03-04T10:15:00Z\", \"meta\": {\"a/b\": \"WB-02\"}, \"list\": []}", reason));
    assert_non_null(strstr(reason, "nothing at \"/w/net\""));
    cJSON *bad = cJSON_Parse("{\"profile\": \"mapping\", \"map\": {\"time\": \"ts\"}}");
    profile_t p;
    char err[200];
    assert_int_equal(profile_parse(bad, &p, err, sizeof err), -1);
    cJSON_Delete(bad);
    bad = cJSON_Parse("{\"profile\": \"scale\"}");
    assert_int_equal(profile_parse(bad, &p, err, sizeof err), -1);
    cJSON_Delete(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(weighbridge),
        cmocka_unit_test(weighbridge_refusals),
        cmocka_unit_test(smart_bin),
        cmocka_unit_test(mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

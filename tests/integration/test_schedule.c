// uses: tests/harness tests/receiver daemon/buf
/* test_schedule — scheduled reports and their signed delivery against real circad processes,
 * PostgreSQL and a receiver on 127.0.0.1 (tests/receiver.c) that checks every signature: a
 * period that has ended is generated and delivered once; 500, 500, 200 makes three recorded
 * attempts and one accepted delivery; kill -9 between failing attempts and a restart go on
 * with the same delivery id to exactly one acceptance; two circad processes on one database
 * generate each due report once. Time is driven by short configured delays (a 100 ms timer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"
#include "receiver.h"

#define SECRET "test-shared-secret-0123456789"
#define WAIT_S 30.0

static char *env_fast[] = {"CIRCA_SCHEDULE_INTERVAL_MS=100", "CIRCA_DELIVERY_RETRY_MIN_MS=100",
                           "CIRCA_DELIVERY_RETRY_MAX_MS=400", "CIRCA_DELIVERY_TIMEOUT_MS=2000",
                           NULL};
/* Back-off long enough that the kill lands between attempts, not during one. */
static char *env_slow_retry[] = {"CIRCA_SCHEDULE_INTERVAL_MS=100", "CIRCA_DELIVERY_RETRY_MIN_MS=700",
                                 "CIRCA_DELIVERY_RETRY_MAX_MS=700", "CIRCA_DELIVERY_TIMEOUT_MS=1000",
                                 NULL};

static void daemon_with(th_daemon_t *d, char **env)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; env[i] && i < 7; i++) d->extra_env[i] = env[i];
    th_daemon_start(d);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls sql (one integer, $1 = tenant) until it reaches want; fails after WAIT_S. */
static long wait_db(const char *sql, const char *tenant, long want)
{
    long v = -1;
    for (int i = 0; i < WAIT_S * 20; i++) {
        const char *p[1] = {tenant};
        v = th_db_long(sql, 1, p);
        if (v >= want) return v;
        sleep_ms(50);
    }
    fail_msg("waited for %s = %ld, have %ld", sql, want, v);
    return v;
}

static void wait_accepted(receiver_t *rc, int want)
{
    for (int i = 0; i < WAIT_S * 20 && receiver_accepted(rc) < want; i++) sleep_ms(50);
    if (receiver_accepted(rc) < want)
        fail_msg("receiver accepted %d of %d (%d requests)", receiver_accepted(rc), want,
                 receiver_requests(rc));
}

/* The first day of the month `back` months before this one (UTC, the tenants' zone). */
static void month_start(char out[24], int back)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int m = tm.tm_year * 12 + tm.tm_mon - back;
    snprintf(out, 24, "%04d-%02d-01", (m / 12 + 1900) % 10000, m % 12 + 1);
}

/* POSTs a schedule; returns its id in id. */
static void post_schedule(const th_tenant_t *t, const char *every, const char *start,
                          int port, char id[64])
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"type\":\"waste_register\",\"every\":\"%s\",\"start\":\"%s\",\"due_after\":\"P0D\","
             "\"params\":{\"site\":\"S1\"},\"deliver\":{\"url\":\"http://127.0.0.1:%d/hook\","
             "\"secret\":\"" SECRET "\"}}", every, start, port);
    th_resp_t r;
    long st = th_post("/v1/schedules", t->admin_key, body, &r);
    if (st != 201) fail_msg("POST /v1/schedules: %ld %s", st, r.body);
    snprintf(id, 64, "%s", cJSON_GetObjectItem(r.json, "id")->valuestring);
    assert_null(strstr(r.body, SECRET));
    th_resp_free(&r);
}

static const char *DELIVERED =
    "SELECT count(*) FROM delivery WHERE tenant_id = $1 AND state = 'DELIVERED'";

/* GET /v1/deliveries?schedule=id: the one delivery (caller deletes). */
static cJSON *the_delivery(const th_tenant_t *t, const char *id)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/deliveries?schedule=%s", id);
    th_resp_t r;
    assert_int_equal(th_get(path, t->admin_key, &r), 200);
    const cJSON *ds = cJSON_GetObjectItem(r.json, "deliveries");
    if (cJSON_GetArraySize(ds) != 1) fail_msg("deliveries: %s", r.body);
    cJSON *d = cJSON_Duplicate(cJSON_GetArrayItem(ds, 0), 1);
    th_resp_free(&r);
    return d;
}

/* Every request the receiver saw carried this delivery id and verified. */
static void all_requests_are(receiver_t *rc, const char *delivery)
{
    receiver_req_t q;
    for (int k = 0; receiver_request(rc, k, &q) == 0; k++) {
        assert_string_equal(q.delivery_id, delivery);
        assert_true(q.signature_ok);
        assert_true(q.sha_ok);
    }
}

/* 1 when the problem's errors[] names this field. */
static int names_field(const th_resp_t *r, const char *field)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, th_json_at(r->json, "errors")) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
        if (cJSON_IsString(f) && strcmp(f->valuestring, field) == 0) return 1;
    }
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void validation_and_no_secret_in_answers(void **state)
{
    th_tenant_t t;
    th_daemon_t d;
    daemon_with(&d, env_fast);
    th_use(&d);
    th_tenant_setup(&t, "schedval");
    th_resp_t r;
    const char *bad[] = {
        "{\"type\":\"waste_register\",\"every\":\"week\",\"deliver\":{\"url\":\"https://x.example/h\",\"secret\":\"" SECRET "\"}}",
        "{\"type\":\"waste_register\",\"every\":\"month\",\"deliver\":{\"url\":\"http://x.example/h\",\"secret\":\"" SECRET "\"}}",
        "{\"type\":\"waste_register\",\"every\":\"month\",\"deliver\":{\"url\":\"https://x.example/h\"}}",
        "{\"type\":\"waste_register\",\"every\":\"month\",\"due_after\":\"5 days\",\"deliver\":{\"url\":\"https://x.example/h\",\"secret\":\"" SECRET "\"}}",
        "{\"type\":\"waste_register\",\"every\":\"quarter\",\"start\":\"2025-02-01\",\"deliver\":{\"url\":\"https://x.example/h\",\"secret\":\"" SECRET "\"}}",
        "{\"type\":\"waste_register\",\"every\":\"month\",\"params\":{\"site\":\"NOPE\"},\"deliver\":{\"url\":\"https://x.example/h\",\"secret\":\"" SECRET "\"}}",
    };
    const char *field[] = {"every", "deliver.url", "deliver", "due_after", "start", "params.site"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        th_post("/v1/schedules", t.admin_key, bad[i], &r);
        th_assert_problem(&r, 422, "invalid-schedule");
        if (!names_field(&r, field[i])) fail_msg("case %zu: %s", i, r.body);
        th_resp_free(&r);
    }
    char readkey[256], id[64];
    th_key_create(&t, NULL, "read", readkey, sizeof readkey);
    assert_int_equal(th_post("/v1/schedules", readkey, "{}", &r), 403);
    th_resp_free(&r);
    post_schedule(&t, "quarter", "2026-01-01", 443, id);
    assert_int_equal(th_get("/v1/schedules", t.admin_key, &r), 200);
    assert_null(strstr(r.body, SECRET));
    th_assert_str(r.json, "schedules.0.id", id);
    th_assert_str(r.json, "schedules.0.deliver.url", "http://127.0.0.1:443/hook");
    th_assert_str(r.json, "schedules.0.next_period.to", "2026-04-01");
    char path[128];
    snprintf(path, sizeof path, "/v1/schedules/%s", id);
    th_resp_t one;   /* GET /v1/schedules/{id}: the list's entry, without the secret */
    assert_int_equal(th_get(path, t.admin_key, &one), 200);
    assert_null(strstr(one.body, SECRET));
    char *listed = cJSON_PrintUnformatted(th_json_at(r.json, "schedules.0"));
    char *single = cJSON_PrintUnformatted(one.json);
    assert_string_equal(single, listed);
    free(listed);
    free(single);
    th_resp_free(&one);
    th_resp_free(&r);
    th_http_t *h = th_http_new();
    assert_int_equal(th_http(h, d.base, "DELETE", path, t.admin_key, NULL, NULL, 0, &r), 200);
    th_resp_free(&r);
    assert_int_equal(th_http(h, d.base, "DELETE", path, t.admin_key, NULL, NULL, 0, &r), 404);
    th_resp_free(&r);
    th_http_free(h);
    assert_int_equal(th_get(path, t.admin_key, &r), 404);
    th_resp_free(&r);
    assert_int_equal(th_daemon_stop(&d), 0);
}

static void ended_period_is_generated_and_delivered_once(void **state)
{
    th_tenant_t t;
    receiver_t *rc = receiver_start(SECRET);
    th_daemon_t d;
    daemon_with(&d, env_fast);
    th_use(&d);
    th_tenant_setup(&t, "schedonce");
    char start[24], id[64];
    month_start(start, 1);   /* last month: ended, due at once (P0D) */
    post_schedule(&t, "month", start, receiver_port(rc), id);
    wait_accepted(rc, 1);
    wait_db(DELIVERED, t.id, 1);
    sleep_ms(1000);   /* ten more ticks: nothing more is generated or sent */
    assert_int_equal(receiver_requests(rc), 1);
    const char *p[1] = {t.id};
    assert_int_equal(th_db_long("SELECT count(*) FROM schedule_run WHERE tenant_id = $1", 1, p), 1);
    assert_int_equal(th_db_long("SELECT count(*) FROM report WHERE tenant_id = $1", 1, p), 1);
    cJSON *dl = the_delivery(&t, id);
    th_assert_str(dl, "status", "delivered");
    th_assert_num(dl, "attempts", 1);
    th_assert_num(dl, "attempt_log.0.status_code", 200);
    th_assert_str(dl, "period.from", start);
    receiver_req_t q;
    assert_int_equal(receiver_request(rc, 0, &q), 0);
    th_assert_str(dl, "id", q.delivery_id);
    assert_int_equal(q.attempt, 1);
    all_requests_are(rc, q.delivery_id);
    /* The body is the stored report: its SHA-256 is the report's. */
    char sha[80];
    const char *rp[2] = {t.id, cJSON_GetObjectItem(dl, "report")->valuestring};
    assert_int_equal(th_db_text("SELECT sha256 FROM report WHERE tenant_id = $1 AND id = $2", 2,
                                rp, sha, sizeof sha), 0);
    assert_string_equal(sha, q.report_sha);
    cJSON_Delete(dl);
    assert_int_equal(th_daemon_stop(&d), 0);
    receiver_stop(rc);
}

static void failures_are_retried_until_accepted(void **state)
{
    th_tenant_t t;
    receiver_t *rc = receiver_start(SECRET);
    receiver_fail(rc, 2);
    th_daemon_t d;
    daemon_with(&d, env_fast);
    th_use(&d);
    th_tenant_setup(&t, "schedretry");
    char start[24], id[64];
    month_start(start, 1);
    post_schedule(&t, "month", start, receiver_port(rc), id);
    wait_accepted(rc, 1);
    wait_db(DELIVERED, t.id, 1);
    assert_int_equal(receiver_requests(rc), 3);
    cJSON *dl = the_delivery(&t, id);
    th_assert_str(dl, "status", "delivered");
    th_assert_num(dl, "attempts", 3);
    th_assert_num(dl, "attempt_log.0.status_code", 500);
    th_assert_num(dl, "attempt_log.1.status_code", 500);
    th_assert_num(dl, "attempt_log.2.status_code", 200);
    th_assert_num(dl, "attempt_log.2.attempt", 3);
    receiver_req_t q;
    receiver_request(rc, 2, &q);
    assert_int_equal(q.attempt, 3);
    all_requests_are(rc, cJSON_GetObjectItem(dl, "id")->valuestring);
    assert_int_equal(receiver_accepted(rc), 1);
    cJSON_Delete(dl);
    assert_int_equal(th_daemon_stop(&d), 0);
    receiver_stop(rc);
}

static void kill9_between_attempts_then_restart_delivers_once(void **state)
{
    th_tenant_t t;
    receiver_t *rc = receiver_start(SECRET);
    receiver_fail(rc, -1);
    th_daemon_t d;
    daemon_with(&d, env_slow_retry);
    th_use(&d);
    th_tenant_setup(&t, "schedkill");
    char start[24], id[64];
    month_start(start, 1);
    post_schedule(&t, "month", start, receiver_port(rc), id);
    /* A failed attempt recorded and the delivery waiting for its back-off: kill it there. */
    wait_db("SELECT count(*) FROM delivery WHERE tenant_id = $1 AND state = 'RETRY_WAIT'", t.id, 1);
    th_daemon_kill9(&d);
    int before = receiver_requests(rc);
    assert_true(before >= 1);
    receiver_fail(rc, 0);
    daemon_with(&d, env_slow_retry);
    th_use(&d);
    wait_accepted(rc, 1);
    wait_db(DELIVERED, t.id, 1);
    /* And again after the 2xx: a restarted circad sends nothing more. */
    assert_int_equal(th_daemon_stop(&d), 0);
    daemon_with(&d, env_slow_retry);
    sleep_ms(1000);
    assert_int_equal(receiver_accepted(rc), 1);
    assert_int_equal(receiver_duplicates(rc), 0);
    assert_int_equal(receiver_requests(rc), before + 1);
    th_use(&d);
    cJSON *dl = the_delivery(&t, id);
    th_assert_str(dl, "status", "delivered");
    th_assert_num(dl, "attempts", before + 1);
    all_requests_are(rc, cJSON_GetObjectItem(dl, "id")->valuestring);
    const char *p[1] = {t.id};
    assert_int_equal(th_db_long("SELECT count(*) FROM delivery_attempt WHERE tenant_id = $1", 1, p),
                     before + 1);
    assert_int_equal(th_db_long("SELECT count(*) FROM report WHERE tenant_id = $1", 1, p), 1);
    cJSON_Delete(dl);
    assert_int_equal(th_daemon_stop(&d), 0);
    receiver_stop(rc);
}

static void two_daemons_generate_each_report_once(void **state)
{
    th_tenant_t t;
    receiver_t *rc = receiver_start(SECRET);
    th_daemon_t a, b;
    daemon_with(&a, env_fast);
    daemon_with(&b, env_fast);
    th_use(&a);
    th_tenant_setup(&t, "schedtwo");
    char start[24], id[64];
    month_start(start, 4);   /* four ended months per schedule */
    for (int i = 0; i < 3; i++) post_schedule(&t, "month", start, receiver_port(rc), id);
    wait_accepted(rc, 12);
    wait_db(DELIVERED, t.id, 12);
    sleep_ms(1000);
    const char *p[1] = {t.id};
    assert_int_equal(th_db_long("SELECT count(*) FROM schedule_run WHERE tenant_id = $1", 1, p), 12);
    assert_int_equal(th_db_long("SELECT count(*) FROM report WHERE tenant_id = $1", 1, p), 12);
    assert_int_equal(th_db_long("SELECT count(DISTINCT (params->>'schedule', period_from)) "
                                "FROM report WHERE tenant_id = $1", 1, p), 12);
    assert_int_equal(th_db_long("SELECT count(*) FROM delivery WHERE tenant_id = $1", 1, p), 12);
    assert_int_equal(receiver_accepted(rc), 12);
    assert_int_equal(receiver_duplicates(rc), 0);
    assert_int_equal(receiver_requests(rc), 12);
    assert_int_equal(th_daemon_stop(&a), 0);
    assert_int_equal(th_daemon_stop(&b), 0);
    receiver_stop(rc);
}

int main(void)
{
    th_init("test_schedule");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(validation_and_no_secret_in_answers),
        cmocka_unit_test(ended_period_is_generated_and_delivered_once),
        cmocka_unit_test(failures_are_retried_until_accepted),
        cmocka_unit_test(kill9_between_attempts_then_restart_delivers_once),
        cmocka_unit_test(two_daemons_generate_each_report_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

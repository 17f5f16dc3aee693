// uses: tests/harness tests/plm_fixture daemon/buf
/* test_plm — the PLM adapter against a real circad, PostgreSQL and a recorded PLM source
 * (tests/data/plm/ served by tests/plm_fixture on 127.0.0.1): AAS and mapped JSON sources
 * become products with history, a 304 writes nothing, cursors survive a restart, the signed
 * webhook applies changes and refuses unsigned ones, failures are retried with back-off. */
#include "harness.h"
#include "plm_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET "plm-webhook-test-secret-0123456789"
#define WAIT_S 20   /* bound on every wait; polls run every 0.2 s */

static plmfx_t *fx;
static th_daemon_t d;
static th_tenant_t t;
static char dir[512], env_cfg[2048];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* One adapter configuration file per source; all point at the fixture. */
static void write_configs(void)
{
    int port = plmfx_port(fx);
    char path[640], secret[640], text[4096];
    snprintf(secret, sizeof secret, "%s/webhook.secret", dir);
    write_file(secret, SECRET "\n");
    snprintf(path, sizeof path, "%s/plm-aas.json", dir);
    snprintf(text, sizeof text,
             "{\"name\": \"plm-aas-%d\", \"kind\": \"plm\", \"tenant\": \"%s\",\n"
             " \"source\": {\"type\": \"aas\", \"url\": \"http://127.0.0.1:%d/aas/submodels\",\n"
             "  \"interval_s\": 0.2, \"timeout_s\": 2,\n"
             "  \"semantic_id\": \"urn:circa:plm:material-composition:1\"}}\n",
             getpid(), t.id, port);
    write_file(path, text);
    snprintf(path, sizeof path, "%s/plm-json.json", dir);
    snprintf(text, sizeof text,
             "{\"name\": \"plm-json-%d\", \"kind\": \"plm\", \"tenant\": \"%s\",\n"
             " \"webhook_secret_file\": \"%s\",\n"
             " \"source\": {\"type\": \"json\", \"url\": \"http://127.0.0.1:%d/plm/parts\",\n"
             "  \"interval_s\": 0.2, \"timeout_s\": 2, \"headers\": {\"X-Api-Token\": \"t0k\"},\n"
             "  \"mapping\": {\"items\": \"/parts\", \"cursor\": \"/next\", \"code\": \"/number\",\n"
             "   \"name\": \"/title\", \"revision\": \"/rev\", \"status\": \"/state\",\n"
             "   \"mass_kg\": \"/weight\", \"bom\": \"/composition\", \"bom.material\": \"/mat\",\n"
             "   \"bom.mass_kg\": \"/kg\", \"bom.recycled_fraction\": \"/recycled\",\n"
             "   \"status_values\": {\"EOL\": \"end_of_life\"}}}}\n",
             getpid(), t.id, secret, port);
    write_file(path, text);
    snprintf(path, sizeof path, "%s/plm-flaky.json", dir);
    snprintf(text, sizeof text,
             "{\"name\": \"plm-flaky-%d\", \"kind\": \"plm\", \"tenant\": \"%s\",\n"
             " \"source\": {\"type\": \"json\", \"url\": \"http://127.0.0.1:%d/flaky\",\n"
             "  \"interval_s\": 60, \"timeout_s\": 0.5, \"retry_min_s\": 0.1, \"retry_max_s\": 5}}\n",
             getpid(), t.id, port);
    write_file(path, text);
    snprintf(env_cfg, sizeof env_cfg, "CIRCA_PLM_CONFIG=%s/plm-aas.json:%s/plm-json.json:%s/plm-flaky.json",
             dir, dir, dir);
}

static int start(void **state)
{
    fx = plmfx_start("tests/data/plm");
    const char *aas[] = {"aas_1.http", "aas_1.http", "aas_2.http"};
    const char *json[] = {"json_1.http", "json_2.http"};
    const char *flaky[] = {"err_500.http", "err_500.http", "hang", "flaky_ok.http"};
    plmfx_route(fx, "/aas/submodels", aas, 3);
    plmfx_route(fx, "/plm/parts", json, 2);
    plmfx_route(fx, "/flaky", flaky, 4);
    /* The tenant, and a product already known from the API (PLM changes its fields and
     * keeps the others), are made through a circad without PLM configuration. */
    th_resp_t r;
    th_daemon_t tmp = {0};
    th_daemon_start(&tmp);
    th_use(&tmp);
    th_tenant_setup(&t, "plm");
    th_post("/v1/products", t.admin_key,
            "{\"code\": \"PN-J-2\", \"name\": \"Old lid\", \"lifetime_days\": 1000}", &r);
    assert_int_equal(r.status, 201);
    th_resp_free(&r);
    th_daemon_stop(&tmp);
    snprintf(dir, sizeof dir, "%s/plm-%d", getenv("CIRCA_DATA_DIR"), getpid());
    mkdir(dir, 0700);
    write_configs();
    d.extra_env[0] = env_cfg;
    th_daemon_start(&d);
    th_use(&d);
    /* Without the module in main's table the route is missing: say so rather than time out. */
    th_post_ct("/v1/adapters/x/webhook", NULL, "application/json", "{}", 2, &r);
    if (r.status != 401) fail_msg("circad has no PLM module (main.c's module table): %ld", r.status);
    th_resp_free(&r);
    return 0;
}

static int stop(void **state)
{
    th_daemon_stop(&d);
    plmfx_stop(fx);
    return 0;
}

/* GET /v1/products/code until path holds want (or WAIT_S); the final answer stays in r. */
static void wait_product(const char *code, const char *path, const char *want, th_resp_t *r)
{
    char url[128];
    snprintf(url, sizeof url, "/v1/products/%s", code);
    for (int i = 0; i < WAIT_S * 20; i++) {
        th_get(url, t.admin_key, r);
        const cJSON *v = r->status == 200 ? th_json_at(r->json, path) : NULL;
        if (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0) return;
        th_resp_free(r);
        usleep(50000);
    }
    fail_msg("product %s never had %s = %s", code, path, want);
}

static void wait_requests(const char *path, int n)
{
    for (int i = 0; i < WAIT_S * 20 && plmfx_count(fx, path) < n; i++) usleep(50000);
    assert_true(plmfx_count(fx, path) >= n);
}

static long versions(const char *code)
{
    const char *p[2] = {t.id, code};
    return th_db_long("SELECT count(*) FROM masterdata_history WHERE tenant_id = $1 "
                      "AND kind = 'product' AND code = $2", 2, p);
}

static void aas_poll_304_then_change_gives_history(void **state)
{
    th_resp_t r;
    wait_product("PN-AAS-1", "status", "obsolete", &r);
    th_assert_str(r.json, "revision", "B");
    th_assert_str(r.json, "name", "Crate 40 L");
    th_assert_num(r.json, "mass_kg", 2.5);
    th_assert_str(r.json, "bom.0.material", "PET");
    th_assert_num(r.json, "bom.0.recycled_fraction", 0.5);
    th_assert_str(r.json, "bom.1.material", "PA6");
    th_resp_free(&r);
    /* The second request was conditional on the first answer's ETag and got 304. */
    char target[512], inm[128];
    assert_int_equal(plmfx_request(fx, "/aas/submodels", 1, target, sizeof target, inm, sizeof inm), 0);
    assert_string_equal(inm, "\"aas-1\"");
    assert_true(plmfx_count_304(fx, "/aas/submodels") >= 1);
    /* Created, then changed once: the 304 and the identical later polls made no version. */
    wait_requests("/aas/submodels", 5);
    assert_int_equal(versions("PN-AAS-1"), 2);
    /* The first version is still readable in the history. */
    char first[64];
    const char *p[2] = {t.id, "PN-AAS-1"};
    assert_int_equal(th_db_text("SELECT to_char(min(valid_from) AT TIME ZONE 'UTC', "
                                "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM masterdata_history "
                                "WHERE tenant_id = $1 AND code = $2", 2, p, first, sizeof first), 0);
    char url[160];
    snprintf(url, sizeof url, "/v1/products/PN-AAS-1?at=%s", first);
    th_get(url, t.admin_key, &r);
    assert_int_equal(r.status, 200);
    th_assert_str(r.json, "revision", "A");
    th_assert_str(r.json, "status", "released");
    th_assert_num(r.json, "bom.0.recycled_fraction", 0.3);
    th_resp_free(&r);
    /* An unknown material of the bill was created; the nameplate submodel was not a bill. */
    th_get("/v1/materials/PA6", t.admin_key, &r);
    assert_int_equal(r.status, 200);
    th_assert_str(r.json, "name", "Polyamide 6");
    th_resp_free(&r);
    th_get("/v1/products/NOT-A-BOM", t.admin_key, &r);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
}

static void json_source_cursor_status_and_merge(void **state)
{
    th_resp_t r;
    wait_product("PN-J-1", "status", "end_of_life", &r);
    th_assert_str(r.json, "name", "Pallet 1200x800");   /* kept: the change named only status */
    th_assert_str(r.json, "bom.0.material", "PET");
    th_resp_free(&r);
    wait_product("PN-J-2", "name", "Pallet lid", &r);
    th_assert_num(r.json, "lifetime_days", 1000);        /* set through the API, kept */
    th_assert_str(r.json, "status", "released");
    th_resp_free(&r);
    th_get("/v1/products/PN-J-BAD", t.admin_key, &r);      /* unknown status: left out */
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    char target[512], inm[128];
    assert_int_equal(plmfx_request(fx, "/plm/parts", 0, target, sizeof target, inm, sizeof inm), 0);
    assert_string_equal(target, "/plm/parts");
    assert_int_equal(plmfx_request(fx, "/plm/parts", 1, target, sizeof target, inm, sizeof inm), 0);
    assert_string_equal(target, "/plm/parts?modified_since=2026-11-01T00%3A00%3A00Z");
}

static void sign(const char *body, char out[80])
{
    unsigned char mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, strlen(body),
         mac, &n);
    snprintf(out, 8, "sha256=");
    for (int i = 0; i < 32; i++) snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}

/* The harness client sends no custom headers, so the webhook is posted with libcurl here.
 * Returns the status; sig NULL sends no signature header. */
static size_t ignore_body(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

static long post_webhook(const char *name, const char *body, const char *sig)
{
    char url[256], header[128];
    snprintf(url, sizeof url, "%s/v1/adapters/%s/webhook", d.base, name);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (sig) {
        snprintf(header, sizeof header, "X-Circa-Signature: %s", sig);
        h = curl_slist_append(h, header);
    }
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ignore_body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return status;
}

static void webhook_signed_applies_unsigned_refused(void **state)
{
    th_resp_t r;
    char name[64];
    snprintf(name, sizeof name, "plm-json-%d", getpid());
    wait_product("PN-J-2", "name", "Pallet lid", &r);
    th_resp_free(&r);
    long before = versions("PN-J-2");
    const char *body = "{\"parts\": [{\"number\": \"PN-J-2\", \"state\": \"Obsolete\"}]}";
    char good[80], bad[80];
    sign(body, good);
    snprintf(bad, sizeof bad, "%s", good);
    bad[10] = bad[10] == 'a' ? 'b' : 'a';
    assert_int_equal(post_webhook(name, body, NULL), 401);
    assert_int_equal(post_webhook(name, body, bad), 401);
    assert_int_equal(post_webhook(name, body, "sha256=zz"), 401);
    assert_int_equal(post_webhook("no-such-adapter", body, good), 401);
    assert_int_equal(versions("PN-J-2"), before);
    th_get("/v1/products/PN-J-2", t.admin_key, &r);
    th_assert_str(r.json, "status", "released");
    th_resp_free(&r);
    /* A signature over other bytes than the body is refused too. */
    assert_int_equal(post_webhook(name, "{\"parts\": []}", good), 401);
    assert_int_equal(post_webhook(name, body, good), 200);
    th_get("/v1/products/PN-J-2", t.admin_key, &r);
    th_assert_str(r.json, "status", "obsolete");
    th_assert_num(r.json, "lifetime_days", 1000);
    th_resp_free(&r);
    assert_int_equal(versions("PN-J-2"), before + 1);
}

static void failures_are_retried_with_backoff(void **state)
{
    th_resp_t r;
    wait_product("PN-F-1", "status", "released", &r);
    th_resp_free(&r);
    assert_int_equal(plmfx_count(fx, "/flaky"), 4);       /* 500, 500, timeout, 200 */
    assert_int_equal(th_healthz(), 200);
    char name[64], err[512];
    snprintf(name, sizeof name, "plm-flaky-%d", getpid());
    const char *p[1] = {name};
    assert_int_equal(th_db_long("SELECT failures FROM plm_source WHERE adapter = $1", 1, p), 0);
    assert_int_equal(th_db_text("SELECT last_error FROM plm_source WHERE adapter = $1", 1, p, err,
                                sizeof err), 0);
    assert_non_null(strstr(err, "imeout"));
    /* The delays doubled: 0.1 s, 0.2 s, 0.4 s (read from circad's log, not measured). */
    FILE *f = fopen(d.log, "r");
    assert_non_null(f);
    char line[4096];
    int seen[3] = {0, 0, 0};
    while (fgets(line, sizeof line, f))
        if (strstr(line, name) && strstr(line, "plm poll failed"))
            for (int i = 0; i < 3; i++) {
                char want[32];
                snprintf(want, sizeof want, "\"retry_in_ms\":%d", 100 << i);
                seen[i] |= strstr(line, want) != NULL;
            }
    fclose(f);
    assert_true(seen[0] && seen[1] && seen[2]);
}

static void restart_resumes_from_the_stored_cursor(void **state)
{
    wait_requests("/plm/parts", 3);
    assert_int_equal(th_daemon_stop(&d), 0);
    int before = plmfx_count(fx, "/plm/parts");
    th_daemon_start(&d);
    th_use(&d);
    wait_requests("/plm/parts", before + 1);
    char target[512], inm[128];
    assert_int_equal(plmfx_request(fx, "/plm/parts", before, target, sizeof target, inm, sizeof inm), 0);
    assert_string_equal(target, "/plm/parts?modified_since=2026-11-02T00%3A00%3A00Z");
}

int main(void)
{
    th_init("test_plm");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aas_poll_304_then_change_gives_history),
        cmocka_unit_test(json_source_cursor_status_and_merge),
        cmocka_unit_test(webhook_signed_applies_unsigned_refused),
        cmocka_unit_test(failures_are_retried_with_backoff),
        cmocka_unit_test(restart_resumes_from_the_stored_cursor),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

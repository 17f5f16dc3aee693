// uses: tests/harness daemon/buf
/* test_mci — the Ellen MacArthur Material Circularity Indicator of one product, worked by hand
 * from the formula in METRICS.md, against a real circad and PostgreSQL. */
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
static th_tenant_t t;

static void post_ok(const char *path, const char *tpl)
{
    char *body = xstrdup(tpl);
    for (char *p = body; *p; p++)
        if (*p == '\'') *p = '"';
    th_resp_t r;
    long st = th_post(path, t.admin_key, body, &r);
    if (st != 201 && st != 200) fail_msg("POST %s %s: %ld %s", path, body, st, r.body);
    th_resp_free(&r);
    free(body);
}

static void near_(const cJSON *j, const char *path, double want, int line)
{
    const cJSON *v = th_json_at(j, path);
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble - want) < 1e-9 * (1 + fabs(want))))
        fail_msg("line %d: %s is %s, want %.12g", line, path, v ? cJSON_Print(v) : "absent", want);
}
#define near(j, path, want) near_(j, path, want, __LINE__)

/* Crate: 2 kg of PET, 25 % recycled content; E_C 0.8, E_F 0.9; industry lifetime 20 days.
 * Four crates: M-1 lives 20 then 30 days (reused between), M-2 30 days then recycled,
 * M-3 40 days then energy-recovered, M-4 20 days then disposed while in use. */
static int start(void **state)
{
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    th_tenant_create(&t, "mci");
    th_party_create(&t, "P");
    th_site_create(&t, "S", "P");
    post_ok("/v1/materials", "{'code':'PET','name':'PET','recycling_efficiency_eol':0.8,"
            "'recycling_efficiency_feedstock':0.9}");
    post_ok("/v1/products", "{'code':'CRATE','name':'Crate','mass_kg':2,'industry_lifetime_days':20,"
            "'bom':[{'material':'PET','mass_kg':2,'recycled_fraction':0.25}]}");
    post_ok("/v1/products", "{'code':'GHOST','name':'No mass'}");
    post_ok("/v1/events", "["
        "{'id':'a1','type':'put_on_market','time':'2025-03-01T00:00:00Z','site':'S','item':'M-1','product':'CRATE'},"
        "{'id':'b1','type':'put_on_market','time':'2025-03-01T00:00:00Z','site':'S','item':'M-2','product':'CRATE'},"
        "{'id':'c1','type':'put_on_market','time':'2025-03-01T00:00:00Z','site':'S','item':'M-3','product':'CRATE'},"
        "{'id':'d1','type':'put_on_market','time':'2025-03-01T00:00:00Z','site':'S','item':'M-4','product':'CRATE'},"
        "{'id':'a2','type':'returned','time':'2025-03-21T00:00:00Z','site':'S','item':'M-1','product':'CRATE'},"
        "{'id':'d2','type':'disposed','time':'2025-03-21T00:00:00Z','site':'S','operation':'D1','item':'M-4','product':'CRATE'},"
        "{'id':'a3','type':'reused','time':'2025-03-22T00:00:00Z','site':'S','item':'M-1','product':'CRATE'},"
        "{'id':'b2','type':'returned','time':'2025-03-31T00:00:00Z','site':'S','item':'M-2','product':'CRATE'},"
        "{'id':'b3','type':'recycled','time':'2025-04-02T00:00:00Z','site':'S','operation':'R3','item':'M-2','product':'CRATE'},"
        "{'id':'c2','type':'returned','time':'2025-04-10T00:00:00Z','site':'S','item':'M-3','product':'CRATE'},"
        "{'id':'c3','type':'energy_recovered','time':'2025-04-11T00:00:00Z','site':'S','operation':'R1','item':'M-3','product':'CRATE'},"
        "{'id':'a4','type':'returned','time':'2025-04-21T00:00:00Z','site':'S','item':'M-1','product':'CRATE'}"
        "]");
    return 0;
}

static int stop(void **state)
{
    if (!daemon_.pid) return 0;
    return th_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

static cJSON *mci(const char *query)
{
    th_resp_t r;
    char path[256];
    snprintf(path, sizeof path, "/v1/products/CRATE/mci%s", query);
    long st = th_get(path, t.admin_key, &r);
    if (st != 200) fail_msg("GET %s: %ld %s", path, st, r.body);
    cJSON *j = cJSON_Duplicate(r.json, 1);
    th_resp_free(&r);
    return j;
}

static void test_mci_by_hand(void **state)
{
    cJSON *j = mci("");
    const double M = 2, F_R = 0.25, F_U = 0, F_S = 0;
    const double V = M * (1 - F_R - F_U - F_S);                    /* 1.5 */
    /* fates, 2 kg each: reused (M-1), recycled (M-2), energy (M-3), disposed (M-4) */
    const double C_R = 0.25, C_U = 0.25, C_C = 0, C_E = 0.25;
    const double W_0 = M * (1 - C_R - C_U - C_C - C_E);            /* 0.5 */
    const double E_C = 0.8, E_F = 0.9;
    const double W_C = M * (1 - E_C) * C_R;                        /* 0.1 */
    const double W_F = M * (1 - E_F) * F_R / E_F;                  /* 0.0555… */
    const double W = W_0 + (W_F + W_C) / 2;                        /* 0.5777… */
    const double LFI = (V + W) / (2 * M + (W_F - W_C) / 2);        /* 0.52234… */
    /* lives ended: 20, 30, 30, 40, 20 days → L = 28; L_av = 20; U = 5 lives / 4 crates */
    const double L = 28, L_av = 20, U = 1.25, U_av = 1;
    const double X = (L / L_av) * (U / U_av);                      /* 1.75 */
    const double FX = 0.9 / X;
    const double MCI = fmax(0, 1 - LFI * FX);                      /* 0.73137… */
    near(j, "inputs.M", M);
    near(j, "inputs.F_R", F_R);
    near(j, "inputs.V", V);
    near(j, "inputs.C_R", C_R);
    near(j, "inputs.C_U", C_U);
    near(j, "inputs.C_E", C_E);
    near(j, "inputs.C_C", C_C);
    near(j, "inputs.W_0", W_0);
    near(j, "inputs.E_C", E_C);
    near(j, "inputs.E_F", E_F);
    near(j, "inputs.W_C", W_C);
    near(j, "inputs.W_F", W_F);
    near(j, "inputs.W", W);
    near(j, "inputs.LFI", LFI);
    near(j, "inputs.L", L);
    near(j, "inputs.L_av", L_av);
    near(j, "inputs.U", U);
    near(j, "inputs.X", X);
    near(j, "inputs.F(X)", FX);
    near(j, "inputs.MCI", MCI);
    near(j, "mci", MCI);
    assert_true(MCI > 0.7 && MCI < 0.75);
    cJSON_Delete(j);
}

static void test_mci_given_utility_and_period(void **state)
{
    /* U = 2 given: X = 1.4 × 2 = 2.8 */
    cJSON *j = mci("?u=2&u_av=1");
    near(j, "inputs.X", 2.8);
    cJSON_Delete(j);
    /* March only: fates reused (M-1) and disposed (M-4), 2 kg each → C_U = 0.5, C_R = 0;
     * lives ended in March: M-1 20, M-4 20, M-2 30 days → L = 70 / 3 */
    j = mci("?from=2025-03-01&to=2025-04-01");
    near(j, "inputs.C_U", 0.5);
    near(j, "inputs.C_R", 0);
    near(j, "inputs.L", 70.0 / 3);
    cJSON_Delete(j);
}

static void test_mci_errors(void **state)
{
    th_resp_t r;
    th_get("/v1/products/NOPE/mci", t.admin_key, &r);
    th_assert_problem(&r, 404, "not-found");
    th_resp_free(&r);
    th_get("/v1/products/GHOST/mci", t.admin_key, &r);
    th_assert_problem(&r, 422, NULL);
    th_resp_free(&r);
    th_get("/v1/products/CRATE/mci?u=-1", t.admin_key, &r);
    th_assert_problem(&r, 400, "invalid-query");
    th_resp_free(&r);
    th_get("/v1/products/CRATE/mci?from=2025-04-01&to=2025-03-01", t.admin_key, &r);
    th_assert_problem(&r, 400, "invalid-query");
    th_resp_free(&r);
}

int main(void)
{
    th_init("test_mci");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mci_by_hand),
        cmocka_unit_test(test_mci_given_utility_and_period),
        cmocka_unit_test(test_mci_errors),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

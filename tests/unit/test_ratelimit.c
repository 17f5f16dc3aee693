// uses: daemon/ratelimit daemon/buf
/* test_ratelimit — token buckets on an injected clock: burst, refill, retry-after, per-key
 * independence, eviction of the longest idle key, a clock stepping back, rate 0 = off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "ratelimit.h"

/* n takes at time t; how many were allowed. */
static int takes(ratelimit_t *r, const char *key, double t, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++) ok += ratelimit_take(r, key, t, NULL) == 0;
    return ok;
}

static void burst_then_refused_with_retry_after(void **state)
{
    ratelimit_t *r = ratelimit_new(2, 5, 100);   /* 2/s, bursts of 5 */
    assert_int_equal(takes(r, "aaaaaaaaaaaa", 100.0, 5), 5);
    double retry = -1;
    assert_int_equal(ratelimit_take(r, "aaaaaaaaaaaa", 100.0, &retry), 1);
    assert_true(retry > 0.49 && retry < 0.51);   /* one token in 1/rate s */
    assert_int_equal(ratelimit_retry_after_header(retry), 1);
    ratelimit_stats_t st;
    ratelimit_stats(r, &st);
    assert_int_equal(st.allowed, 5);
    assert_int_equal(st.refused, 1);
    ratelimit_free(r);
}

static void refills_at_the_rate_and_caps_at_burst(void **state)
{
    ratelimit_t *r = ratelimit_new(2, 5, 100);
    assert_int_equal(takes(r, "k", 0.0, 10), 5);
    assert_int_equal(takes(r, "k", 0.5, 10), 1);     /* 0.5 s at 2/s: one token */
    assert_int_equal(takes(r, "k", 1.5, 10), 2);
    assert_int_equal(takes(r, "k", 1000.0, 10), 5);  /* idle long: full, not more */
    ratelimit_free(r);
}

static void keys_are_independent(void **state)
{
    ratelimit_t *r = ratelimit_new(1, 1, 100);
    assert_int_equal(ratelimit_take(r, "key-a", 7.0, NULL), 0);
    assert_int_equal(ratelimit_take(r, "key-a", 7.0, NULL), 1);
    assert_int_equal(ratelimit_take(r, "key-b", 7.0, NULL), 0);
    assert_int_equal(ratelimit_take(r, "key-b", 7.0, NULL), 1);
    ratelimit_free(r);
}

static void retry_after_grows_with_the_deficit_and_rounds_up(void **state)
{
    ratelimit_t *r = ratelimit_new(0.1, 1, 100);     /* one request per 10 s */
    double retry = 0;
    assert_int_equal(ratelimit_take(r, "slow", 0.0, &retry), 0);
    assert_int_equal(ratelimit_take(r, "slow", 2.5, &retry), 1);
    assert_true(retry > 7.49 && retry < 7.51);
    assert_int_equal(ratelimit_retry_after_header(retry), 8);
    assert_int_equal(ratelimit_take(r, "slow", 10.0, &retry), 0);   /* exactly one token */
    assert_int_equal(ratelimit_retry_after_header(0.0001), 1);
    assert_int_equal(ratelimit_retry_after_header(3.0), 3);
    ratelimit_free(r);
}

static void full_table_forgets_the_longest_idle_key(void **state)
{
    ratelimit_t *r = ratelimit_new(1, 1, 16);
    char key[16];
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        assert_int_equal(ratelimit_take(r, key, 1.0, NULL), 0);
    }
    /* k00 used again, so k01 is now the longest idle */
    assert_int_equal(ratelimit_take(r, "k00", 1.0, NULL), 1);
    assert_int_equal(ratelimit_take(r, "new", 1.0, NULL), 0);
    ratelimit_stats_t st;
    ratelimit_stats(r, &st);
    assert_int_equal(st.keys, 16);
    assert_int_equal(st.evicted, 1);
    /* k00 is still remembered (empty bucket); k01 was forgotten and starts full again */
    assert_int_equal(ratelimit_take(r, "k00", 1.0, NULL), 1);
    assert_int_equal(ratelimit_take(r, "k01", 1.0, NULL), 0);
    ratelimit_free(r);
}

static void many_keys_churn_through_a_small_table(void **state)
{
    ratelimit_t *r = ratelimit_new(1, 2, 16);
    char key[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "c%d", i % 40);
        ratelimit_take(r, key, (double)i, NULL);
    }
    ratelimit_stats_t st;
    ratelimit_stats(r, &st);
    assert_int_equal(st.keys, 16);
    assert_int_equal(st.allowed + st.refused, 5000);
    /* the last 16 keys seen are all remembered: each has spent one of its 2 tokens */
    assert_int_equal(takes(r, "c39", 4999.0, 5), 1);
    ratelimit_free(r);
}

static void clock_stepping_back_refills_nothing(void **state)
{
    ratelimit_t *r = ratelimit_new(1, 1, 16);
    assert_int_equal(ratelimit_take(r, "k", 50.0, NULL), 0);
    assert_int_equal(ratelimit_take(r, "k", 10.0, NULL), 1);
    assert_int_equal(ratelimit_take(r, "k", 50.5, NULL), 1);
    assert_int_equal(ratelimit_take(r, "k", 51.0, NULL), 0);
    ratelimit_free(r);
}

static void rate_zero_is_off(void **state)
{
    ratelimit_t *r = ratelimit_new(0, 0, 16);
    double retry = 9;
    assert_int_equal(takes(r, "k", 0.0, 100000), 100000);
    assert_int_equal(ratelimit_take(r, "k", 0.0, &retry), 0);
    assert_true(retry == 0);
    ratelimit_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refused_with_retry_after),
        cmocka_unit_test(refills_at_the_rate_and_caps_at_burst),
        cmocka_unit_test(keys_are_independent),
        cmocka_unit_test(retry_after_grows_with_the_deficit_and_rounds_up),
        cmocka_unit_test(full_table_forgets_the_longest_idle_key),
        cmocka_unit_test(many_keys_churn_through_a_small_table),
        cmocka_unit_test(clock_stepping_back_refills_nothing),
        cmocka_unit_test(rate_zero_is_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

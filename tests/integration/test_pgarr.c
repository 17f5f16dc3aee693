// uses: daemon/pgarr daemon/buf
/* test_pgarr — binary arrays built by pgarr, sent to a real PostgreSQL and read back via unnest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "pgarr.h"

static PGconn *conn;

static int setup(void **state)
{
    const char *url = getenv("CIRCA_TEST_DB");
    if (!url || !*url) {
        fprintf(stderr, "test_pgarr: CIRCA_TEST_DB is not set (run through scripts/test.sh)\n");
        return -1;
    }
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "test_pgarr: cannot connect: %s", PQerrorMessage(conn));
        return -1;
    }
    PQclear(PQexec(conn, "SET TimeZone = 'UTC'"));
    return 0;
}

static int teardown(void **state)
{
    PQfinish(conn);
    return 0;
}

/* Runs sql with the finished arrays as binary parameters; the result must be TUPLES_OK. */
static PGresult *run(const char *sql, int n, pgarr_t *arrs)
{
    const char *vals[8];
    int lens[8], fmts[8];
    for (int i = 0; i < n; i++) {
        vals[i] = pgarr_finish(&arrs[i], &lens[i]);
        fmts[i] = 1;
    }
    PGresult *r = PQexecParams(conn, sql, n, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

static void text_values_nulls_empty_utf8(void **state)
{
    const char *in[] = {"hello", NULL, "", "žluťoučký kůň €𝄞", "quote ' and \" and \\", NULL};
    int n = (int)(sizeof in / sizeof *in);
    pgarr_t a;
    pgarr_init(&a, PGARR_TEXT);
    for (int i = 0; i < n; i++) pgarr_text(&a, in[i]);
    PGresult *r = run("SELECT x, octet_length(x) FROM unnest($1::text[]) AS x", 1, &a);
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            assert_true(PQgetisnull(r, i, 0));
            continue;
        }
        assert_false(PQgetisnull(r, i, 0));
        assert_string_equal(PQgetvalue(r, i, 0), in[i]);
        assert_int_equal(strtol(PQgetvalue(r, i, 1), NULL, 10), (long)strlen(in[i]));
    }
    PQclear(r);
    pgarr_free(&a);
}

static void bytea_with_zero_bytes(void **state)
{
    static const unsigned char blob[] = {0x00, 0xff, 0x00, 0x41, 0x00};
    pgarr_t a;
    pgarr_init(&a, PGARR_BYTEA);
    pgarr_bytes(&a, blob, sizeof blob);
    pgarr_null(&a);
    pgarr_bytes(&a, "", 0);
    PGresult *r = run("SELECT encode(x, 'hex') FROM unnest($1::bytea[]) AS x", 1, &a);
    assert_int_equal(PQntuples(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 0), "00ff004100");
    assert_true(PQgetisnull(r, 1, 0));
    assert_false(PQgetisnull(r, 2, 0));
    assert_string_equal(PQgetvalue(r, 2, 0), "");
    PQclear(r);
    pgarr_free(&a);
}

static void int8_and_int4_extremes(void **state)
{
    const int64_t i8[] = {INT64_MIN, -1, 0, 1, 1234567890123LL, INT64_MAX};
    const int32_t i4[] = {INT32_MIN, -7, 0, 42, INT32_MAX, 0};
    pgarr_t a[2];
    pgarr_init(&a[0], PGARR_INT8);
    pgarr_init(&a[1], PGARR_INT4);
    for (int i = 0; i < 6; i++) pgarr_int8(&a[0], i8[i]);
    for (int i = 0; i < 5; i++) pgarr_int4(&a[1], i4[i]);
    pgarr_null(&a[1]);
    PGresult *r = run("SELECT * FROM unnest($1::int8[], $2::int4[])", 2, a);
    assert_int_equal(PQntuples(r), 6);
    for (int i = 0; i < 6; i++) {
        assert_true(strtoll(PQgetvalue(r, i, 0), NULL, 10) == i8[i]);
        if (i < 5) assert_int_equal(strtol(PQgetvalue(r, i, 1), NULL, 10), i4[i]);
    }
    assert_true(PQgetisnull(r, 5, 1));
    PQclear(r);
    pgarr_free(&a[0]);
    pgarr_free(&a[1]);
}

static void float8_specials(void **state)
{
    const double in[] = {0.1, -0.0, 1.5e300, 5e-324, -2.5, INFINITY, -INFINITY, NAN};
    int n = (int)(sizeof in / sizeof *in);
    pgarr_t a;
    pgarr_init(&a, PGARR_FLOAT8);
    for (int i = 0; i < n; i++) pgarr_float8(&a, in[i]);
    PGresult *r = run("SELECT x::text FROM unnest($1::float8[]) AS x", 1, &a);
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < n; i++) {
        double got = strtod(PQgetvalue(r, i, 0), NULL);
        if (isnan(in[i])) {
            assert_string_equal(PQgetvalue(r, i, 0), "NaN");
            continue;
        }
        /* Bit equality: also tells -0 from 0. */
        assert_memory_equal(&got, &in[i], sizeof got);
    }
    assert_string_equal(PQgetvalue(r, 1, 0), "-0");
    assert_string_equal(PQgetvalue(r, 5, 0), "Infinity");
    PQclear(r);
    pgarr_free(&a);
}

static void timestamps_before_and_after_2000(void **state)
{
    const int64_t us[] = {0, 946684800000000LL, 946684799999999LL, 1700000000123456LL,
                          -1000000LL, -5364662400000000LL /* 1800-01-01 */};
    const char *txt[] = {"1970-01-01 00:00:00+00", "2000-01-01 00:00:00+00",
                         "1999-12-31 23:59:59.999999+00", "2023-11-14 22:13:20.123456+00",
                         "1969-12-31 23:59:59+00", "1800-01-01 00:00:00+00"};
    int n = (int)(sizeof us / sizeof *us);
    pgarr_t a;
    pgarr_init(&a, PGARR_TIMESTAMPTZ);
    for (int i = 0; i < n; i++) pgarr_timestamptz(&a, us[i]);
    PGresult *r = run("SELECT t::text, (extract(epoch FROM t) * 1000000)::int8 "
                      "FROM unnest($1::timestamptz[]) AS t", 1, &a);
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(PQgetvalue(r, i, 0), txt[i]);
        assert_true(strtoll(PQgetvalue(r, i, 1), NULL, 10) == us[i]);
    }
    PQclear(r);
    pgarr_free(&a);
}

static void bool_values(void **state)
{
    pgarr_t a;
    pgarr_init(&a, PGARR_BOOL);
    pgarr_bool(&a, 1);
    pgarr_bool(&a, 0);
    pgarr_null(&a);
    pgarr_bool(&a, 7); /* any non-zero is true */
    PGresult *r = run("SELECT x FROM unnest($1::bool[]) AS x", 1, &a);
    assert_int_equal(PQntuples(r), 4);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    assert_string_equal(PQgetvalue(r, 1, 0), "f");
    assert_true(PQgetisnull(r, 2, 0));
    assert_string_equal(PQgetvalue(r, 3, 0), "t");
    PQclear(r);
    pgarr_free(&a);
}

static void empty_array(void **state)
{
    pgarr_t a;
    int len;
    pgarr_init(&a, PGARR_TEXT);
    pgarr_finish(&a, &len);
    assert_int_equal(len, 12);
    PGresult *r = run("SELECT cardinality($1::text[]), array_ndims($1::text[]), "
                      "(SELECT count(*) FROM unnest($1::text[]))", 1, &a);
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    assert_true(PQgetisnull(r, 0, 1));
    assert_string_equal(PQgetvalue(r, 0, 2), "0");
    PQclear(r);
    pgarr_free(&a);
}

static void ten_thousand_elements(void **state)
{
    enum { N = 10000 };
    pgarr_t a[3];
    char s[32];
    pgarr_init(&a[0], PGARR_INT8);
    pgarr_init(&a[1], PGARR_TEXT);
    pgarr_init(&a[2], PGARR_FLOAT8);
    for (int i = 0; i < N; i++) {
        snprintf(s, sizeof s, "row-%d", i);
        pgarr_int8(&a[0], (int64_t)i * i * 1000003LL);
        pgarr_text(&a[1], i % 1000 == 999 ? NULL : s);
        pgarr_float8(&a[2], i + 0.5);
    }
    PGresult *r = run("SELECT * FROM unnest($1::int8[], $2::text[], $3::float8[])", 3, a);
    assert_int_equal(PQntuples(r), N);
    for (int i = 0; i < N; i++) {
        snprintf(s, sizeof s, "row-%d", i);
        assert_true(strtoll(PQgetvalue(r, i, 0), NULL, 10) == (int64_t)i * i * 1000003LL);
        if (i % 1000 == 999) assert_true(PQgetisnull(r, i, 1));
        else assert_string_equal(PQgetvalue(r, i, 1), s);
        assert_true(strtod(PQgetvalue(r, i, 2), NULL) == i + 0.5);
    }
    PQclear(r);
    for (int i = 0; i < 3; i++) pgarr_free(&a[i]);
}

static void wrong_element_type_is_rejected(void **state)
{
    /* The element oid in the header is checked by the server: proves we send the one we say. */
    pgarr_t a;
    int len;
    pgarr_init(&a, PGARR_INT4);
    pgarr_int4(&a, 1);
    const char *v = pgarr_finish(&a, &len);
    int fmt = 1;
    PGresult *r = PQexecParams(conn, "SELECT * FROM unnest($1::int8[])", 1, NULL, &v, &len, &fmt, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    pgarr_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_values_nulls_empty_utf8),
        cmocka_unit_test(bytea_with_zero_bytes),
        cmocka_unit_test(int8_and_int4_extremes),
        cmocka_unit_test(float8_specials),
        cmocka_unit_test(timestamps_before_and_after_2000),
        cmocka_unit_test(bool_values),
        cmocka_unit_test(empty_array),
        cmocka_unit_test(ten_thousand_elements),
        cmocka_unit_test(wrong_element_type_is_rejected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

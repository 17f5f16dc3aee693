// uses: daemon/jcs daemon/buf
/* test_jcs — RFC 8785: Appendix B numbers, the structure and property-sorting examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "jcs.h"

static double from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void rfc8785_appendix_b_numbers(void **state)
{
    (void)state;
    static const struct { uint64_t bits; const char *want; } cases[] = {
        {0x0000000000000000ULL, "0"},
        {0x8000000000000000ULL, "0"},
        {0x0000000000000001ULL, "5e-324"},
        {0x8000000000000001ULL, "-5e-324"},
        {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
        {0xffefffffffffffffULL, "-1.7976931348623157e+308"},
        {0x4340000000000000ULL, "9007199254740992"},
        {0xc340000000000000ULL, "-9007199254740992"},
        {0x4430000000000000ULL, "295147905179352830000"},
        {0x44b52d02c7e14af5ULL, "9.999999999999997e+22"},
        {0x44b52d02c7e14af6ULL, "1e+23"},
        {0x44b52d02c7e14af7ULL, "1.0000000000000001e+23"},
        {0x444b1ae4d6e2ef4eULL, "999999999999999700000"},
        {0x444b1ae4d6e2ef4fULL, "999999999999999900000"},
        {0x444b1ae4d6e2ef50ULL, "1e+21"},
        {0x3eb0c6f7a0b5ed8cULL, "9.999999999999997e-7"},
        {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
        {0x41b3de4355555553ULL, "333333333.3333332"},
        {0x41b3de4355555554ULL, "333333333.33333325"},
        {0x41b3de4355555555ULL, "333333333.3333333"},
        {0x41b3de4355555556ULL, "333333333.3333334"},
        {0x41b3de4355555557ULL, "333333333.33333343"},
        {0xbecbf647612f3696ULL, "-0.0000033333333333333333"},
        {0x43143ff3c1cb0959ULL, "1424953923781206.2"},
        {0x4415af1d78b58c40ULL, "100000000000000000000"},
    };
    char out[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(jcs_number(from_bits(cases[i].bits), out, sizeof out), 0);
        assert_string_equal(out, cases[i].want);
    }
}

static void ecmascript_layout_edges(void **state)
{
    (void)state;
    static const struct { double d; const char *want; } cases[] = {
        {1e-7, "1e-7"}, {1e21, "1e+21"}, {1e20, "100000000000000000000"}, {100, "100"},
        {0.1, "0.1"}, {-1.5, "-1.5"}, {123e-20, "1.23e-18"}, {4.5, "4.5"}, {2e-3, "0.002"},
        {1e30, "1e+30"}, {5e-7, "5e-7"}, {0.0000015, "0.0000015"}, {12.5e3, "12500"},
    };
    char out[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(jcs_number(cases[i].d, out, sizeof out), 0);
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(jcs_number(from_bits(0x7fffffffffffffffULL), out, sizeof out), -1);
    assert_int_equal(jcs_number(from_bits(0x7ff0000000000000ULL), out, sizeof out), -1);
    assert_int_equal(jcs_number(from_bits(0xfff0000000000000ULL), out, sizeof out), -1);
}

static void expect_canon(const char *in, const char *want)
{
    cJSON *v = cJSON_Parse(in);
    assert_non_null(v);
    buf_t b = BUF_INIT;
    assert_int_equal(jcs_serialize(v, &b), 0);
    assert_string_equal(b.data, want);
    buf_free(&b);
    cJSON_Delete(v);
}

static void rfc8785_structure_example(void **state)
{
    (void)state;
    expect_canon(
        "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
        "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
        "  \"literals\": [null, true, false]\n}",
        "{\"literals\":[null,true,false],"
        "\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
        "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

static void rfc8785_property_sorting(void **state)
{
    (void)state;
    expect_canon(
        "{\"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\","
        " \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\", \"1\": \"One\","
        " \"\\ud83d\\ude00\": \"Emoji: Grinning Face\", \"\\u0080\": \"Control\","
        " \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"}",
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
        "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
        "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
        "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

static void utf16_order_not_byte_order(void **state)
{
    (void)state;
    /* U+E000 (EE 80 80) precedes U+10000 (F0 90 80 80) in bytes, but its UTF-16 unit E000 is
     * above the high surrogate D800, so it sorts after; U+D7FF sorts before both. */
    expect_canon("{\"\\ue000\":1,\"\\ud800\\udc00\":2,\"\\ud7ff\":3,\"a\":{\"b\":[],\"a\":{}}}",
                 "{\"a\":{\"a\":{},\"b\":[]},\"\xed\x9f\xbf\":3,\"\xf0\x90\x80\x80\":2,"
                 "\"\xee\x80\x80\":1}");
    /* Prefix keys sort first; many members take the heap path. */
    buf_t want = BUF_INIT, in = BUF_INIT;
    buf_puts(&in, "{");
    buf_puts(&want, "{");
    for (int i = 0; i < 40; i++) {
        buf_printf(&in, "%s\"k%02d\":%d", i ? "," : "", 39 - i, i);
        buf_printf(&want, "%s\"k%02d\":%d", i ? "," : "", i, 39 - i);
    }
    buf_puts(&in, ",\"k\":true}");
    buf_free(&want);
    buf_puts(&want, "{\"k\":true");
    for (int i = 0; i < 40; i++) buf_printf(&want, ",\"k%02d\":%d", i, 39 - i);
    buf_puts(&want, "}");
    expect_canon(in.data, want.data);
    buf_free(&in);
    buf_free(&want);
}

static void refuses_invalid_utf8_and_non_finite(void **state)
{
    (void)state;
    buf_t b = BUF_INIT;
    cJSON *s = cJSON_CreateString("ok\xff");
    assert_int_equal(jcs_serialize(s, &b), -1);
    cJSON_Delete(s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "\xc0\xaf", 1);   /* overlong '/' in a key */
    buf_reset(&b);
    assert_int_equal(jcs_serialize(o, &b), -1);
    cJSON_Delete(o);
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(from_bits(0x7ff0000000000000ULL)));
    buf_reset(&b);
    assert_int_equal(jcs_serialize(a, &b), -1);
    cJSON_Delete(a);
    cJSON *e = cJSON_CreateString("\xed\xa0\x80");   /* an encoded surrogate */
    buf_reset(&b);
    assert_int_equal(jcs_serialize(e, &b), -1);
    cJSON_Delete(e);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc8785_appendix_b_numbers),
        cmocka_unit_test(ecmascript_layout_edges),
        cmocka_unit_test(rfc8785_structure_example),
        cmocka_unit_test(rfc8785_property_sorting),
        cmocka_unit_test(utf16_order_not_byte_order),
        cmocka_unit_test(refuses_invalid_utf8_and_non_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

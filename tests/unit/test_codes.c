// uses: daemon/codes build/gen/ewc_table daemon/buf
/* test_codes — the compiled code lists: List of Waste lookups, R/D operations, units. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "codes.h"

static void ewc_table_is_complete_and_sorted(void **state)
{
    (void)state;
    /* schema/data/EWC-README.md: 842 entries, 408 of them hazardous. */
    assert_int_equal(codes_ewc_count, 842);
    size_t hazardous = 0;
    for (size_t i = 0; i < codes_ewc_count; i++) {
        hazardous += (size_t)codes_ewc_table[i].hazardous;
        if (i) assert_true(strcmp(codes_ewc_table[i - 1].code, codes_ewc_table[i].code) < 0);
    }
    assert_int_equal(hazardous, 408);
}

static void ewc_normalise_accepts_spaces_and_star(void **state)
{
    (void)state;
    char six[7];
    int star;
    assert_int_equal(codes_ewc_normalise("15 01 10*", six, &star), 0);
    assert_string_equal(six, "150110");
    assert_int_equal(star, 1);
    assert_int_equal(codes_ewc_normalise("150102", six, &star), 0);
    assert_int_equal(star, 0);
    assert_int_equal(codes_ewc_normalise("15010", six, &star), -1);
    assert_int_equal(codes_ewc_normalise("1501022", six, &star), -1);
    assert_int_equal(codes_ewc_normalise("15*0102", six, &star), -1);
    assert_int_equal(codes_ewc_normalise("15-01-02", six, &star), -1);
}

static void ewc_find_knows_hazard(void **state)
{
    (void)state;
    assert_non_null(codes_ewc_find("150102"));
    assert_int_equal(codes_ewc_find("150102")->hazardous, 0);
    assert_int_equal(codes_ewc_find("150110")->hazardous, 1);
    assert_null(codes_ewc_find("150100"));   /* a sub-chapter, not an entry */
    assert_null(codes_ewc_find("999999"));
}

static void operations_and_units(void **state)
{
    (void)state;
    assert_int_equal(codes_op_find("R1")->category, CODES_ENERGY_RECOVERY);
    assert_int_equal(codes_op_find("R13")->category, CODES_INTERIM);
    assert_int_equal(codes_op_find("D10")->category, CODES_INCINERATION);
    assert_int_equal(codes_op_find("D9")->category, CODES_PRETREATMENT);
    assert_null(codes_op_find("R14"));
    assert_null(codes_op_find("r1"));
    assert_true(codes_unit_find("t")->factor == 1000.0);
    assert_true(codes_unit_find("l")->is_volume);
    assert_string_equal(codes_unit_by_uncefact("LBR")->code, "lb");
    assert_null(codes_unit_find("tons"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ewc_table_is_complete_and_sorted),
        cmocka_unit_test(ewc_normalise_accepts_spaces_and_star),
        cmocka_unit_test(ewc_find_knows_hazard),
        cmocka_unit_test(operations_and_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

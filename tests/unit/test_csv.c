// uses: cli/csv daemon/buf
/* test_csv — the streaming CSV reader on tricky input: quotes, embedded commas, quotes and
 * newlines, CRLF and lone CR, a BOM, empty lines and fields, malformed records, buffer
 * boundaries, over-long records, and seeking back to a saved point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "../../cli/csv.h"   /* the Makefile puts no -Icli on tests */

/* Every record of the reader as "line-end_line: f1|f2|…" lines, "!error" appended. */
static char *dump_reader(csv_t *c)
{
    buf_t out = BUF_INIT;
    csv_row_t row;
    int rc;
    buf_puts(&out, "");
    while ((rc = csv_next(c, &row)) == 1) {
        buf_printf(&out, "%ld-%ld:", row.line, row.end_line);
        for (int i = 0; i < row.n; i++) buf_printf(&out, "%s%s", i ? "|" : " ", row.field[i]);
        if (row.error) buf_printf(&out, " !%s", row.error);
        buf_putc(&out, '\n');
    }
    assert_int_equal(rc, 0);
    return buf_steal(&out);
}

static char *dump(const char *text, size_t len)
{
    FILE *f = fmemopen((void *)text, len, "r");
    assert_non_null(f);
    csv_t *c = csv_new(f);
    char *s = dump_reader(c);
    csv_free(c);
    fclose(f);
    return s;
}

static void check(const char *text, const char *want)
{
    char *got = dump(text, strlen(text));
    assert_string_equal(got, want);
    free(got);
}

static void plain_and_quoted_fields(void **state)
{
    check("a,b,c\n1,2,3\n", "1-1: a|b|c\n2-2: 1|2|3\n");
    check("\"x,y\",\"say \"\"hi\"\"\",z\n", "1-1: x,y|say \"hi\"|z\n");
    check("\"\",,\"\"\"\"\n", "1-1: ||\"\n");
    check("a,b,\n", "1-1: a|b|\n");
    check("no newline at end", "1-1: no newline at end\n");
    check("  spaced , kept  \n", "1-1:   spaced | kept  \n");
    check("in\"side,ok\n", "1-1: in\"side|ok\n");   /* a quote inside a bare field is text */
}

static void embedded_newlines_keep_line_numbers(void **state)
{
    check("h1,h2\n\"two\nlines\",x\nnext,y\n",
          "1-1: h1|h2\n2-3: two\nlines|x\n4-4: next|y\n");
    check("\"a\r\nb\",c\r\nd,e\r\n", "1-2: a\r\nb|c\n3-3: d|e\n");
}

static void crlf_cr_bom_and_empty_lines(void **state)
{
    check("\xEF\xBB\xBF" "Date,Site\r\n2026-01-01,S1\r\n", "1-1: Date|Site\n2-2: 2026-01-01|S1\n");
    check("a\rb\rc", "1-1: a\n2-2: b\n3-3: c\n");
    check("\n\na\n\r\n\nb\n\n", "3-3: a\n6-6: b\n");
    check("", "");
    check("\xEF\xBB\xBF", "");
    /* A BOM anywhere but the start is data. */
    check("x\n\xEF\xBB\xBFy\n", "1-1: x\n2-2: \xEF\xBB\xBFy\n");
}

static void malformed_records_keep_the_reader_in_step(void **state)
{
    check("\"ab\"c,d\ne,f\n", "1-1: abc|d !text after the closing quote of a field\n2-2: e|f\n");
    check("ok,1\n\"open,2\n3,4\n",
          "1-1: ok|1\n2-4: open,2\n3,4\n !unterminated quoted field\n");
}

/* Records straddle the 64 KiB read buffer, CRLF split between two reads included. */
static void many_records_across_buffer_boundaries(void **state)
{
    buf_t in = BUF_INIT;
    for (int i = 0; i < 5000; i++)
        buf_printf(&in, "%d,\"q,%d\nsecond \"\"line\"\"\",tail%d\r\n", i, i, i);
    FILE *f = fmemopen(in.data, in.len, "r");
    csv_t *c = csv_new(f);
    csv_row_t row;
    char want[64];
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(csv_next(c, &row), 1);
        assert_int_equal(row.n, 3);
        assert_int_equal(row.line, 2 * i + 1);
        assert_int_equal(row.end_line, 2 * i + 2);
        assert_null(row.error);
        snprintf(want, sizeof want, "q,%d\nsecond \"line\"", i);
        assert_string_equal(row.field[1], want);
        snprintf(want, sizeof want, "tail%d", i);
        assert_string_equal(row.field[2], want);
    }
    assert_int_equal(csv_next(c, &row), 0);
    assert_int_equal((long)csv_offset(c), (long)in.len);
    csv_free(c);
    fclose(f);
    buf_free(&in);
}

static void over_long_record_is_an_error_and_reading_goes_on(void **state)
{
    buf_t in = BUF_INIT;
    buf_puts(&in, "\"");
    for (int i = 0; i < CSV_MAX_RECORD / 8 + 10; i++) buf_puts(&in, "abcdefg\n");
    buf_puts(&in, "x\nlast,row\n");
    FILE *f = fmemopen(in.data, in.len, "r");
    csv_t *c = csv_new(f);
    csv_row_t row;
    assert_int_equal(csv_next(c, &row), 1);
    assert_string_equal(row.error, "record longer than 1 MiB");
    char last[16] = "";
    int n = 1;
    while (csv_next(c, &row) == 1) {
        n++;
        snprintf(last, sizeof last, "%s,%s", row.field[0], row.n > 1 ? row.field[1] : "");
    }
    assert_string_equal(last, "last,row");   /* the final record still comes out whole */
    assert_true(n > 2);
    csv_free(c);
    fclose(f);
    buf_free(&in);
}

static void seek_back_to_a_saved_point(void **state)
{
    static const char text[] = "\xEF\xBB\xBFh\n1\n\"2\n2\"\n3\n4\n";
    FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
    csv_t *c = csv_new(f);
    csv_row_t row;
    assert_int_equal(csv_next(c, &row), 1);
    assert_int_equal(csv_next(c, &row), 1);
    assert_int_equal(csv_next(c, &row), 1);
    assert_string_equal(row.field[0], "2\n2");
    off_t off = csv_offset(c);
    long line = csv_line(c);
    assert_int_equal(line, 5);
    char *rest = dump_reader(c);
    assert_string_equal(rest, "5-5: 3\n6-6: 4\n");
    csv_free(c);

    c = csv_new(f);   /* a new reader, as after a restart */
    assert_int_equal(csv_seek(c, off, line), 0);
    char *again = dump_reader(c);
    assert_string_equal(again, rest);
    free(rest);
    free(again);
    csv_free(c);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_and_quoted_fields),
        cmocka_unit_test(embedded_newlines_keep_line_numbers),
        cmocka_unit_test(crlf_cr_bom_and_empty_lines),
        cmocka_unit_test(malformed_records_keep_the_reader_in_step),
        cmocka_unit_test(many_records_across_buffer_boundaries),
        cmocka_unit_test(over_long_record_is_an_error_and_reading_goes_on),
        cmocka_unit_test(seek_back_to_a_saved_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// uses: cli/sqlsplit daemon/buf
/* test_sqlsplit — cutting migration files into statements: semicolons inside strings, quoted
 * identifiers, dollar-quoted bodies (nested tags), comments and parentheses stay inside; line
 * numbers; empty statements and trailing comments; every file of schema/ splits into
 * statements that each end where a ';' ends a line or the file. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "../../cli/sqlsplit.h"   /* the Makefile puts no -Icli on tests */

/* Every statement of text as "line: text" lines. */
static char *split(const char *text)
{
    buf_t out = BUF_INIT;
    sqlsplit_t s;
    sqlsplit_stmt_t st;
    buf_puts(&out, "");
    sqlsplit_init(&s, text, strlen(text));
    while (sqlsplit_next(&s, &st)) {
        buf_printf(&out, "%ld: ", st.line);
        buf_append(&out, text + st.start, st.end - st.start);
        buf_putc(&out, '\n');
    }
    return buf_steal(&out);
}

static void check(const char *text, const char *want)
{
    char *got = split(text);
    assert_string_equal(got, want);
    free(got);
}

static void plain_statements_and_lines(void **state)
{
    check("CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);\n\n  SELECT 1;\n",
          "1: CREATE TABLE a (x int)\n2: INSERT INTO a VALUES (1)\n4: SELECT 1\n");
    check("SELECT 1", "1: SELECT 1\n");                       /* no final ';' */
    check(";;\n ; SELECT 2;;", "2: SELECT 2\n");                 /* empty statements */
    check("", "");
    check("  \n-- only a comment\n/* and another */\n", "");
}

static void semicolons_in_strings_and_identifiers(void **state)
{
    check("SELECT 'a;b', 'it''s;', \"x;\"\"y\" FROM t; SELECT 2",
          "1: SELECT 'a;b', 'it''s;', \"x;\"\"y\" FROM t\n1: SELECT 2\n");
    /* E'…' takes backslash escapes; in a standard string a backslash is a plain byte. */
    check("SELECT E'a\\';b'; SELECT 'c\\'; SELECT 3",
          "1: SELECT E'a\\';b'\n1: SELECT 'c\\'\n1: SELECT 3\n");
    /* "name'" is an identifier ending in e: the quote after it opens a standard string. */
    check("SELECT name'\\'; SELECT 4", "1: SELECT name'\\'\n1: SELECT 4\n");
}

static void dollar_quoted_bodies(void **state)
{
    check("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\nSELECT f();",
          "1: CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql\n2: SELECT f()\n");
    /* A tagged body holds $$ and other tags; it ends only at its own tag. */
    check("DO $do$ BEGIN EXECUTE $f$ SELECT 1; $f$; PERFORM $$;$$; END $do$; SELECT 5",
          "1: DO $do$ BEGIN EXECUTE $f$ SELECT 1; $f$; PERFORM $$;$$; END $do$\n1: SELECT 5\n");
    /* $1 is a parameter and a$b$ an identifier: neither opens a body. */
    check("PREPARE p AS SELECT $1; SELECT a$b$; SELECT 6",
          "1: PREPARE p AS SELECT $1\n1: SELECT a$b$\n1: SELECT 6\n");
}

static void comments_and_parentheses(void **state)
{
    check("SELECT 1 -- not the end; really\n; SELECT /* a; /* nested; */ still; */ 2;",
          "1: SELECT 1 -- not the end; really\n\n2: SELECT /* a; /* nested; */ still; */ 2\n");
    check("-- header; with a semicolon\n\nCREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);\nSELECT 3;",
          "3: CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)\n4: SELECT 3\n");
}

static void unterminated_tokens_run_to_the_end(void **state)
{
    check("SELECT 1; SELECT 'open; SELECT 2", "1: SELECT 1\n1: SELECT 'open; SELECT 2\n");
    check("SELECT 1; DO $x$ open; SELECT 2", "1: SELECT 1\n1: DO $x$ open; SELECT 2\n");
    check("SELECT 1; /* open; SELECT 2", "1: SELECT 1\n");   /* only a comment is left */
}

/* The project's own migrations: each statement ends at a ';' that ends its line (the style
 * every file follows), so a split in the middle of a line would show a lexing error. */
static void every_schema_file_splits_at_line_ends(void **state)
{
    const char *dir = getenv("CIRCA_SCHEMA_DIR") ? getenv("CIRCA_SCHEMA_DIR") : "schema";
    DIR *d = opendir(dir);
    if (!d) skip();
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".sql") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        buf_t text = BUF_INIT;
        char chunk[65536];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&text, chunk, got);
        fclose(f);
        sqlsplit_t s;
        sqlsplit_stmt_t st;
        int stmts = 0;
        sqlsplit_init(&s, text.data, text.len);
        while (sqlsplit_next(&s, &st)) {
            stmts++;
            size_t after = st.end < text.len ? st.end + 1 : st.end;
            while (after < text.len && (text.data[after] == ' ' || text.data[after] == '\t')) after++;
            if (!(after >= text.len || text.data[after] == '\n' || text.data[after] == '-'))
                fail_msg("%s: statement at line %ld ends inside a line", e->d_name, st.line);
        }
        if (stmts == 0) fail_msg("%s: no statement", e->d_name);
        buf_free(&text);
        files++;
    }
    closedir(d);
    assert_true(files >= 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_statements_and_lines),
        cmocka_unit_test(semicolons_in_strings_and_identifiers),
        cmocka_unit_test(dollar_quoted_bodies),
        cmocka_unit_test(comments_and_parentheses),
        cmocka_unit_test(unterminated_tokens_run_to_the_end),
        cmocka_unit_test(every_schema_file_splits_at_line_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// uses: daemon/config daemon/buf daemon/dbconf daemon/log
/* test_config — defaults < --config file < environment; every bad value is one error naming
 * the setting and where it came from; docs/CONFIGURATION.md carries the table's own text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

static const char *const vars[] = {
    "CIRCA_LISTEN", "DATABASE_URL", "CIRCA_DATA_DIR", "CIRCA_PG_PORT", "CIRCA_LOG",
    "CIRCA_LOG_FORMAT", "CIRCA_ADAPTERS_DIR", "CIRCA_MAX_BODY", "CIRCA_DB_CONNECTIONS",
    "CIRCA_RATE_LIMIT", "CIRCA_RATE_BURST", "CIRCA_RATE_KEYS", NULL};

static void unset_all(void)
{
    for (int i = 0; vars[i]; i++) unsetenv(vars[i]);
    unsetenv("CIRCA_CONFIG");
}

static char path[64];

static int clean_env(void **state)
{
    unset_all();
    path[0] = 0;
    return 0;
}

static int remove_file(void **state)
{
    if (path[0]) unlink(path);
    return clean_env(state);
}

/* Writes text to a fresh temporary file named in path. */
static void write_conf(const char *text)
{
    snprintf(path, sizeof path, "/tmp/circa-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* config_parse with "--config path" (or no file when path is empty). */
static int parse(config_t *c, char *err, size_t errlen)
{
    char prog[] = "circad", opt[] = "--config";
    char *argv[] = {prog, opt, path, NULL};
    err[0] = 0;
    return config_parse(c, path[0] ? 3 : 1, argv, err, errlen);
}

static void defaults(void **state)
{
    config_t c;
    char err[512];
    assert_int_equal(parse(&c, err, sizeof err), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.database_url, "");
    assert_string_equal(c.data_dir, "./var");
    assert_string_equal(c.adapters_dir, "./var/adapters");
    assert_int_equal(c.pg_port, 54329);
    assert_string_equal(c.log_level, "info");
    assert_string_equal(c.log_format, "json");
    assert_int_equal(c.max_body, 8388608);
    assert_int_equal(c.db_connections, 4);
    assert_true(c.rate_limit == 0);
    assert_true(c.rate_burst == 1);
    assert_int_equal(c.rate_keys, 10000);
}

static void file_values(void **state)
{
    write_conf("# circad settings\n"
               "\n"
               "listen = 0.0.0.0:9090   # every interface\n"
               "  data_dir=/srv/circa\n"
               "database_url = \"host=/run/pg dbname=circa password=a#b\\\"c\"  # quoted\n"
               "max_body = 16M\n"
               "log_format = text\r\n"
               "rate_limit = 2.5\n");
    config_t c;
    char err[512];
    assert_int_equal(parse(&c, err, sizeof err), 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 9090);
    assert_string_equal(c.data_dir, "/srv/circa");
    assert_string_equal(c.adapters_dir, "/srv/circa/adapters");
    assert_string_equal(c.database_url, "host=/run/pg dbname=circa password=a#b\"c");
    assert_int_equal(c.max_body, 16L << 20);
    assert_string_equal(c.log_format, "text");
    assert_true(c.rate_limit == 2.5);
    assert_true(c.rate_burst == 2.5);   /* 0: one second's worth */
}

static void environment_wins_over_the_file(void **state)
{
    write_conf("listen = 0.0.0.0:9090\nmax_body = 2048\nadapters_dir = /etc/circa/adapters\n");
    setenv("CIRCA_LISTEN", "127.0.0.1:7070", 1);
    setenv("CIRCA_ADAPTERS_DIR", "", 1);   /* empty counts as unset: the file's value stays */
    config_t c;
    char err[512];
    assert_int_equal(parse(&c, err, sizeof err), 0);
    assert_int_equal(c.listen_port, 7070);
    assert_int_equal(c.max_body, 2048);
    assert_string_equal(c.adapters_dir, "/etc/circa/adapters");
}

static void bad_env_value_names_the_variable(void **state)
{
    setenv("CIRCA_MAX_BODY", "lots", 1);
    config_t c;
    char err[512];
    assert_int_equal(parse(&c, err, sizeof err), -1);
    assert_string_equal(err, "CIRCA_MAX_BODY=lots: not a whole number from 1024 to 1073741824 "
                             "(bytes; K, M, G allowed)");
    assert_null(strchr(err, '\n'));
}

static void bad_file_value_names_file_line_and_key(void **state)
{
    write_conf("# x\nlisten = 127.0.0.1:1\ndb_connections = 65\n");
    config_t c;
    char err[512], want[600];
    assert_int_equal(parse(&c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: db_connections = 65: not a whole number from 1 to 64", path);
    assert_string_equal(err, want);
}

/* Each bad value is refused with a message that names its setting. */
static void bad_values(void **state)
{
    static const struct { const char *var, *val, *why; } cases[] = {
        {"CIRCA_LISTEN", "localhost", "not address:port"},
        {"CIRCA_LISTEN", "127.0.0.1:65536", "not address:port"},
        {"CIRCA_LISTEN", ":8080", "not address:port"},
        {"CIRCA_LOG", "loud", "must be one of debug|info|warn|error"},
        {"CIRCA_LOG_FORMAT", "xml", "must be one of json|text"},
        {"CIRCA_PG_PORT", "0", "not a whole number from 1 to 65535"},
        {"CIRCA_RATE_LIMIT", "-1", "not a number from 0 to"},
        {"CIRCA_RATE_LIMIT", "nan", "not a number from 0 to"},
        {"CIRCA_RATE_KEYS", "12abc", "not a whole number"},
        {"CIRCA_MAX_BODY", "9999999999999999999999", "not a whole number"},
        {"CIRCA_MAX_BODY", "2T", "not a whole number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clean_env(state);
        setenv(cases[i].var, cases[i].val, 1);
        config_t c;
        char err[512];
        assert_int_equal(parse(&c, err, sizeof err), -1);
        assert_non_null(strstr(err, cases[i].var));
        assert_non_null(strstr(err, cases[i].why));
    }
}

static void good_values(void **state)
{
    setenv("CIRCA_LISTEN", "[::1]:0", 1);
    setenv("CIRCA_MAX_BODY", "64KiB", 1);
    setenv("CIRCA_LOG", "debug", 1);
    config_t c;
    char err[512];
    assert_int_equal(parse(&c, err, sizeof err), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    assert_int_equal(c.max_body, 65536);
    assert_string_equal(c.log_level, "debug");
}

static void file_mistakes(void **state)
{
    static const struct { const char *text, *why; } cases[] = {
        {"lsiten = 1.2.3.4:5\n", ":1: unknown key 'lsiten'"},
        {"listen 1.2.3.4:5\n", ":1: expected key = value"},
        {"CIRCA_LISTEN = 1.2.3.4:5\n", ":1: expected key = value"},
        {"log = info\n\nlog = debug\n", ":3: log is set twice (also at "},
        {"data_dir = \"/srv\n", ":1: data_dir = \"/srv: unterminated \""},
        {"data_dir = \"/srv\" x\n", ":1: data_dir = \"/srv\" x: text after the closing \""},
        {"data_dir =\n", ":1: data_dir = : must not be empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_conf(cases[i].text);
        config_t c;
        char err[512];
        assert_int_equal(parse(&c, err, sizeof err), -1);
        assert_true(strncmp(err, path, strlen(path)) == 0);
        if (!strstr(err, cases[i].why)) fail_msg("%s: got '%s'", cases[i].text, err);
        unlink(path);
    }
    path[0] = 0;
}

static void options_refused(void **state)
{
    char prog[] = "circad", bad[] = "--lsiten", cfg[] = "--config", missing[] = "/nonexistent/x";
    config_t c;
    char err[512];
    char *a1[] = {prog, bad, NULL};
    assert_int_equal(config_parse(&c, 2, a1, err, sizeof err), -1);
    assert_string_equal(err, "--lsiten: unknown option (see circad --help)");
    char *a2[] = {prog, cfg, NULL};
    assert_int_equal(config_parse(&c, 2, a2, err, sizeof err), -1);
    assert_string_equal(err, "--config: needs a file name (see circad --help)");
    char *a3[] = {prog, cfg, missing, NULL};
    assert_int_equal(config_parse(&c, 3, a3, err, sizeof err), -1);
    assert_string_equal(err, "config file /nonexistent/x: No such file or directory");
    setenv("CIRCA_CONFIG", missing, 1);   /* named by the environment instead */
    assert_int_equal(config_parse(&c, 1, a1, err, sizeof err), -1);
    assert_string_equal(err, "config file /nonexistent/x: No such file or directory");
}

static char *capture(void (*print)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    print(f);
    fclose(f);
    return text;
}

static char *slurp(const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) fail_msg("cannot open %s (run from the repository root)", file);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* The doc's table is the table's own output (regenerate with `circad --config-doc`), and
 * --help names every variable. */
static void doc_and_help_come_from_the_table(void **state)
{
    char *table = capture(config_print_doc), *help = capture(config_print_help);
    char *doc = slurp("docs/CONFIGURATION.md");
    if (!strstr(doc, table))
        fail_msg("docs/CONFIGURATION.md does not hold the output of circad --config-doc:\n%s",
                 table);
    for (int i = 0; vars[i]; i++) {
        assert_non_null(strstr(help, vars[i]));
        assert_non_null(strstr(table, vars[i]));
    }
    free(table);
    free(help);
    free(doc);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, clean_env, remove_file)
    const struct CMUnitTest tests[] = {
        T(defaults), T(file_values), T(environment_wins_over_the_file),
        T(bad_env_value_names_the_variable), T(bad_file_value_names_file_line_and_key),
        T(bad_values), T(good_values), T(file_mistakes), T(options_refused),
        T(doc_and_help_come_from_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

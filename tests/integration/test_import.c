// uses: tests/harness daemon/buf
/* test_import — `circa import` against a real circad and PostgreSQL: exact counts and the bad
 * lines reported, a second run that finds only duplicates, SIGINT and SIGKILL midway then
 * --resume (every row exactly once), 409 per row, an unreachable daemon, bad maps. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"

extern char **environ;

static th_daemon_t daemon_;
static char dir_[512];    /* files of this test */

static int start(void **state)
{
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    setenv("CIRCA_URL", daemon_.base, 1);
    const char *data = getenv("CIRCA_DATA_DIR");
    snprintf(dir_, sizeof dir_, "%s/import-test-%d", data ? data : "/tmp", (int)getpid());
    mkdir(dir_, 0700);
    return 0;
}

static int stop(void **state)
{
    if (!daemon_.pid) return 0;
    return th_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir_, name);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Starts `circa import args…` with stdout and stderr into out_path. */
static pid_t spawn_import(const char *out_path, const char *const *args)
{
    char circa[300];
    snprintf(circa, sizeof circa, "%s/circa", th_bin());
    char *argv[16] = {circa, "import"};
    int n = 2;
    for (; args[n - 2] && n < 15; n++) argv[n] = (char *)args[n - 2];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, circa, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot run %s: %s", circa, strerror(rc));
    return pid;
}

/* Waits for the child; its exit status, or 128+signal. */
static int wait_import(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs an import to its end; its output (stdout and stderr) into out (caller frees). */
static int run_import(char **out, const char *const *args)
{
    char log[600];
    path_of(log, sizeof log, "import.out");
    int rc = wait_import(spawn_import(log, args));
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, n);
    fclose(f);
    buf_puts(&b, "");
    *out = buf_steal(&b);
    return rc;
}

static const char map_json[] =
    "{\"columns\": {\"time\": \"Date\", \"site\": \"Site\", \"quantity.value\": \"Weight\",\n"
    "             \"quantity.unit\": \"Unit\", \"ewc\": \"EWC code\"},\n"
    " \"const\": {\"type\": \"waste_generated\", \"material\": \"PET\"},\n"
    " \"types\": {\"quantity.value\": \"number\"}, \"decimal\": \",\", \"time_zone\": \"+01:00\"}\n";

/* Data rows on lines 2…nrows+1 with a decimal-comma weight of line + (line % 10) / 10 kg;
 * with bad, lines 7 (unit), 1500 (site), 2222 (number) and 2900 (short row) are wrong. */
static void write_csv(const char *path, int nrows, int bad)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("\xEF\xBB\xBF" "Date,Site,Weight,Unit,EWC code\r\n", f);
    for (int line = 2; line <= nrows + 1; line++) {
        const char *unit = bad && line == 7 ? "tons" : "kg";
        const char *site = bad && line == 1500 ? "NOPE" : "S1";
        if (bad && line == 2222) fprintf(f, "2025-03-01,S1,\"12,x\",kg,15 01 02\r\n");
        else if (bad && line == 2900) fprintf(f, "2025-03-01,S1\r\n");
        else fprintf(f, "2025-03-%02d,%s,\"%d,%d\",%s,15 01 02\r\n", 1 + line % 28, site, line,
                     line % 10, unit);
    }
    assert_int_equal(fclose(f), 0);
}

static void use_tenant(th_tenant_t *t, const char *name)
{
    th_tenant_setup(t, name);
    setenv("CIRCA_KEY", t->admin_key, 1);
}

static long tenant_long(const char *sql, const th_tenant_t *t)
{
    const char *p[] = {t->id};
    return th_db_long(sql, 1, p);
}

/* The line numbers in a --rejects file, in order, into lines; their count. */
static int reject_lines(const char *path, long *lines, int max, char *fields, size_t flen)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char row[512];
    int n = 0;
    fields[0] = 0;
    assert_non_null(fgets(row, sizeof row, f));
    assert_string_equal(row, "line,field,message\n");
    while (fgets(row, sizeof row, f) && n < max) {
        lines[n++] = strtol(row, NULL, 10);
        const char *q = strchr(row, '"');
        size_t len = strlen(fields);
        if (q) snprintf(fields + len, flen - len, "%.*s ", (int)strcspn(q + 1, "\""), q + 1);
    }
    fclose(f);
    return n;
}

static void import_counts_rejects_and_reruns_as_duplicates(void **state)
{
    th_tenant_t t;
    use_tenant(&t, "imp");
    char csv[600], map[600], rej[600];
    path_of(csv, sizeof csv, "bad.csv");
    path_of(map, sizeof map, "map.json");
    path_of(rej, sizeof rej, "rejects.csv");
    write_csv(csv, 3000, 1);
    write_file(map, map_json);
    char *out;
    const char *args[] = {csv, "--map", map, "--rejects", rej, NULL};
    assert_int_equal(run_import(&out, args), 1);
    if (!strstr(out, "imported 2996 events (0 duplicates, 4 rows rejected)")) fail_msg("%s", out);
    free(out);
    assert_int_equal(th_event_count(t.id), 2996);

    long lines[8];
    char fields[256];
    assert_int_equal(reject_lines(rej, lines, 8, fields, sizeof fields), 4);
    long want[] = {7, 1500, 2222, 2900};
    for (int i = 0; i < 4; i++) assert_int_equal(lines[i], want[i]);
    assert_string_equal(fields, "quantity.unit site quantity.value quantity.value ");

    /* Decimal commas read right: the stored kg add up to the sum of the good rows. */
    long sum = 0;
    for (int line = 2; line <= 3001; line++)
        if (line != 7 && line != 1500 && line != 2222 && line != 2900) sum += 10L * line + line % 10;
    assert_int_equal(tenant_long("SELECT round(sum(quantity_kg) * 10)::bigint FROM event "
                                 "WHERE tenant_id = $1", &t), sum);
    /* Dates are midnight at +01:00, i.e. 23:00 UTC the day before. */
    assert_int_equal(tenant_long("SELECT count(*) FROM event WHERE tenant_id = $1 AND "
                                 "to_char(event_time AT TIME ZONE 'UTC', 'HH24:MI') <> '23:00'",
                                 &t), 0);

    const char *again[] = {csv, "--map", map, NULL};
    assert_int_equal(run_import(&out, again), 1);
    if (!strstr(out, "imported 0 events (2996 duplicates, 4 rows rejected)")) fail_msg("%s", out);
    assert_non_null(strstr(out, "line 1500: site: unknown site 'NOPE'"));
    assert_non_null(strstr(out, "line 2900: quantity.value: the row has 2 fields"));
    free(out);
    assert_int_equal(th_event_count(t.id), 2996);
}

/* Polls (bounded) until the tenant holds more than n events; the count. */
static long wait_count_above(const th_tenant_t *t, long n, pid_t child)
{
    struct timespec nap = {0, 2 * 1000 * 1000};
    for (int i = 0; i < 30000; i++) {
        long c = th_event_count(t->id);
        if (c > n) return c;
        if (waitpid(child, NULL, WNOHANG) == child) fail_msg("the import ended at %ld events", c);
        nanosleep(&nap, NULL);
    }
    fail_msg("no events arrived");
    return -1;
}

static void interrupted_then_resumed_imports_every_row_once(void **state)
{
    th_tenant_t t;
    use_tenant(&t, "resume");
    const int rows = 20000;
    char csv[600], map[600], log[600];
    path_of(csv, sizeof csv, "big.csv");
    path_of(map, sizeof map, "map.json");
    path_of(log, sizeof log, "big.out");
    write_csv(csv, rows, 0);
    write_file(map, map_json);

    /* Ctrl-C: the batch in flight is finished and acknowledged, then it stops with exit 1. */
    const char *first[] = {csv, "--map", map, "--batch", "100", NULL};
    pid_t pid = spawn_import(log, first);
    wait_count_above(&t, 0, pid);
    kill(pid, SIGINT);
    assert_int_equal(wait_import(pid), 1);
    long after_int = th_event_count(t.id);
    assert_true(after_int > 0 && after_int < rows);

    /* A crash: SIGKILL while the resumed import is sending. */
    const char *resume[] = {csv, "--map", map, "--batch", "100", "--resume", NULL};
    pid = spawn_import(log, resume);
    long seen = wait_count_above(&t, after_int + 300, pid);
    kill(pid, SIGKILL);
    assert_int_equal(wait_import(pid), 128 + SIGKILL);
    assert_true(seen < rows);

    char *out;
    assert_int_equal(run_import(&out, resume), 0);
    if (!strstr(out, "resuming ")) fail_msg("no resume: %s", out);
    free(out);
    assert_int_equal(th_event_count(t.id), rows);
    assert_int_equal(tenant_long("SELECT count(DISTINCT time_raw || quantity_kg) FROM event "
                                 "WHERE tenant_id = $1", &t), rows);

    /* Finished: the state is gone, so --resume starts at the top and finds duplicates only. */
    assert_int_equal(run_import(&out, resume), 0);
    if (!strstr(out, "nothing to resume") || !strstr(out, "(20000 duplicates, 0 rows rejected)"))
        fail_msg("%s", out);
    free(out);
    assert_int_equal(th_event_count(t.id), rows);
}

static void conflicting_id_is_rejected_per_row(void **state)
{
    th_tenant_t t;
    use_tenant(&t, "conflict");
    char *body = th_json_take(th_event("T-2", "S1", 5, "kg"));
    th_resp_t r;
    assert_int_equal(th_post("/v1/events", t.admin_key, body, &r), 201);
    th_resp_free(&r);
    free(body);
    char csv[600], map[600];
    path_of(csv, sizeof csv, "ids.csv");
    path_of(map, sizeof map, "idmap.json");
    write_file(csv, "Ticket,Date,Site,Weight\nT-1,2025-03-01,S1,1\nT-2,2025-03-01,S1,2\n"
                    "T-3,2025-03-01T08:00:00Z,S1,3\n");
    write_file(map, "{\"columns\": {\"id\": \"Ticket\", \"time\": \"Date\", \"site\": \"Site\","
                    " \"quantity.value\": \"Weight\"}, \"types\": {\"quantity.value\": \"number\"},"
                    " \"const\": {\"type\": \"waste_generated\", \"material\": \"PET\","
                    " \"ewc\": \"150102\", \"quantity.unit\": \"kg\"}}");
    char *out;
    const char *args[] = {csv, "--map", map, NULL};
    assert_int_equal(run_import(&out, args), 1);
    if (!strstr(out, "line 3: id: event 'T-2' is already stored with other content") ||
        !strstr(out, "imported 2 events (0 duplicates, 1 rows rejected)"))
        fail_msg("%s", out);
    free(out);
    assert_int_equal(th_event_count_id(t.id, "T-1"), 1);
    assert_int_equal(th_event_count_id(t.id, "T-3"), 1);
    assert_int_equal(th_event_count(t.id), 3);
}

static void unreachable_daemon_stops_with_exit_1_and_says_how_to_resume(void **state)
{
    char csv[600], map[600], url[64];
    path_of(csv, sizeof csv, "small.csv");
    path_of(map, sizeof map, "map.json");
    write_csv(csv, 10, 0);
    write_file(map, map_json);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", th_free_port());
    setenv("CIRCA_URL", url, 1);
    setenv("CIRCA_KEY", "circa_x_y", 1);
    char *out;
    const char *args[] = {csv, "--map", map, "--retries", "2", NULL};
    int rc = run_import(&out, args);
    setenv("CIRCA_URL", daemon_.base, 1);
    assert_int_equal(rc, 1);
    if (!strstr(out, "cannot be reached") || !strstr(out, "--resume")) fail_msg("%s", out);
    free(out);
}

/* A bad map or a map the header does not fit: exit 2 and exactly one line. */
static void bad_map_is_a_usage_error_in_one_line(void **state)
{
    static const char *const maps[] = {
        "{\"columns\": {\"quantity.value\": \"Weight\"}, \"types\": {\"quantity.value\": \"float\"}}",
        "{\"columns\": {\"site\": \"Site\"}, \"colums\": {}}",
        "{\"columns\": {\"site\": \"Site\"}, \"const\": {\"site\": \"S1\"}}",
        "{\"columns\": {\"site\": \"Site\"}, \"decimal\": \";\"}",
        "{\"columns\": {\"site\": \"No such column\"}}",
        "[1, 2",
    };
    char csv[600], map[600];
    path_of(csv, sizeof csv, "small.csv");
    path_of(map, sizeof map, "bad-map.json");
    write_csv(csv, 10, 0);
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
        write_file(map, maps[i]);
        char *out;
        const char *args[] = {csv, "--map", map, NULL};
        int rc = run_import(&out, args);
        size_t len = strlen(out);
        if (rc != 2 || len == 0 || strchr(out, '\n') != out + len - 1 ||
            strncmp(out, "circa import: ", 14) != 0)
            fail_msg("map %s: exit %d, output '%s'", maps[i], rc, out);
        free(out);
    }
}

int main(void)
{
    th_init("test_import");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(import_counts_rejects_and_reruns_as_duplicates),
        cmocka_unit_test(interrupted_then_resumed_imports_every_row_once),
        cmocka_unit_test(conflicting_id_is_rejected_per_row),
        cmocka_unit_test(unreachable_daemon_stops_with_exit_1_and_says_how_to_resume),
        cmocka_unit_test(bad_map_is_a_usage_error_in_one_line),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

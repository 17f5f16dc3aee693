// uses: tests/harness daemon/buf
/* test_ops — running circad: bad settings exit 2 with one line naming them, --check-config,
 * the environment over the --config file, SIGHUP keeps connections and forgets revoked keys,
 * the per-key rate limit answers 429 with Retry-After, and no log holds an API key secret. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"

extern char **environ;

/* Secrets (after the second '_') of every key this test made, for the log scan at the end. */
static char secrets[8][128];
static int nsecrets;

static void remember_secret(const char *key)
{
    const char *s = strchr(key, '_');
    s = s ? strchr(s + 1, '_') : NULL;
    assert_non_null(s);
    if (nsecrets < 8) snprintf(secrets[nsecrets++], sizeof secrets[0], "%s", s + 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char conf_path[64];

static void write_conf(const char *text)
{
    snprintf(conf_path, sizeof conf_path, "/tmp/circa-test-ops-XXXXXX");
    int fd = mkstemp(conf_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Runs "circad args…" with env_add ("NAME=value", NULL-ended) on top of the environment,
 * stdout and stderr into out; returns the exit status. circad is expected to exit by itself
 * (bad settings, --check-config); one still running after 20 s is killed and fails the test. */
static int run_circad(const char *const *args, const char *const *env_add, char *out,
                      size_t outlen)
{
    char circad[300], outfile[] = "/tmp/circa-test-ops-out-XXXXXX";
    snprintf(circad, sizeof circad, "%s/circad", th_bin());
    char *argv[8] = {circad};
    for (int i = 0; args[i] && i < 6; i++) argv[i + 1] = (char *)args[i];
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 8, sizeof *env);
    size_t k = 0;
    for (int i = 0; env_add[i]; i++) env[k++] = (char *)env_add[i];
    for (size_t i = 0; i < n; i++) {
        int overridden = 0;
        for (int j = 0; env_add[j]; j++)
            if (strncmp(environ[i], env_add[j], strcspn(env_add[j], "=") + 1) == 0) overridden = 1;
        if (!overridden) env[k++] = environ[i];
    }
    int fd = mkstemp(outfile);
    assert_true(fd >= 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, circad, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    assert_int_equal(rc, 0);
    int st = 0, waited = 0;
    for (int i = 0; i < 2000 && !(waited = waitpid(pid, &st, WNOHANG) == pid); i++) sleep_ms(10);
    if (!waited) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    ssize_t got = pread(fd, out, outlen - 1, 0);
    out[got > 0 ? got : 0] = 0;
    close(fd);
    unlink(outfile);
    if (!waited) fail_msg("circad %s did not exit by itself", args[0] ? args[0] : "");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---- settings ------------------------------------------------------------------------------- */

static void bad_env_value_exits_2_naming_it(void **state)
{
    char out[4096];
    const char *args[] = {NULL};
    const char *env[] = {"CIRCA_DB_CONNECTIONS=lots", NULL};
    assert_int_equal(run_circad(args, env, out, sizeof out), 2);
    assert_int_equal(count_lines(out), 1);
    if (!strstr(out, "CIRCA_DB_CONNECTIONS=lots")) fail_msg("got: %s", out);
}

static void bad_file_value_exits_2_naming_file_line_and_key(void **state)
{
    write_conf("# test_ops\nlisten = 127.0.0.1:0\nmax_body = huge\n");
    char out[4096], want[200];
    const char *args[] = {"--config", conf_path, NULL};
    const char *env[] = {NULL};
    int rc = run_circad(args, env, out, sizeof out);
    unlink(conf_path);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(out), 1);
    snprintf(want, sizeof want, "%s:3: max_body = huge", conf_path);
    if (!strstr(out, want)) fail_msg("want '%s' in: %s", want, out);
}

static void check_config_on_a_good_file_exits_0(void **state)
{
    write_conf("listen = 127.0.0.1:0  # any port\nmax_body = 4096\nlog_format = text\n");
    char out[8192], want[200];
    const char *args[] = {"--config", conf_path, "--check-config", NULL};
    const char *env[] = {"CIRCA_MAX_BODY=2048", "CIRCA_LOG_FORMAT=", NULL};
    int rc = run_circad(args, env, out, sizeof out);
    unlink(conf_path);
    if (rc != 0) fail_msg("--check-config exited %d: %s", rc, out);
    assert_non_null(strstr(out, "configuration OK"));
    /* the environment wins; an empty variable leaves the file's value */
    assert_non_null(strstr(out, "max_body        = 2048"));
    assert_non_null(strstr(out, "# CIRCA_MAX_BODY"));
    snprintf(want, sizeof want, "log_format      = text                           # %s:3",
             conf_path);
    if (!strstr(out, want)) fail_msg("want '%s' in: %s", want, out);
    assert_null(strstr(out, "host="));   /* a connection string is never printed */
}

/* The file sets listen and max_body; the harness's CIRCA_LISTEN wins (circad is ready on the
 * harness's port), and the file's max_body, which no variable sets, is in force (413). */
static void environment_overrides_the_file_in_a_running_circad(void **state)
{
    write_conf("listen = 127.0.0.1:1\nmax_body = 1024\n");
    char cfg[128];
    snprintf(cfg, sizeof cfg, "CIRCA_CONFIG=%s", conf_path);
    th_daemon_t d = {0};
    d.extra_env[0] = cfg;
    d.extra_env[1] = "CIRCA_MAX_BODY=";
    th_daemon_start(&d);
    unlink(conf_path);
    th_use(&d);
    char body[2048];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = 0;
    th_resp_t r;
    assert_int_equal(th_post("/v1/events", "circa_000000000000_x", body, &r), 413);
    th_resp_free(&r);
    assert_int_equal(th_daemon_stop(&d), 0);
}

/* ---- SIGHUP -------------------------------------------------------------------------------- */

/* A raw keep-alive connection, so the test knows it is the same one before and after. */
static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) fail_msg("connect: %s", strerror(errno));
    return fd;
}

/* Sends GET path with key on fd and reads one whole answer; returns its status. */
static int raw_get(int fd, const char *path, const char *key)
{
    char req[512], resp[16384];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n",
                     path, key);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t got = 0;
    char *end = NULL;
    while (!end || got < (size_t)(end - resp) + 4) {
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r <= 0) fail_msg("connection closed or timed out after %zu bytes", got);
        got += (size_t)r;
        resp[got] = 0;
        end = strstr(resp, "\r\n\r\n");
        if (!end) continue;
        const char *cl = strcasestr(resp, "\r\ncontent-length:");
        long len = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
        if (got < (size_t)(end - resp) + 4 + (size_t)len) end = NULL;
        else break;
    }
    return (int)strtol(resp + 9, NULL, 10);
}

/* Waits (bounded) until circad's log holds text after offset from. */
static void wait_for_log(const char *log, long from, const char *text)
{
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(log, "r");
        if (f) {
            char line[4096];
            fseek(f, from, SEEK_SET);
            while (fgets(line, sizeof line, f))
                if (strstr(line, text)) { fclose(f); return; }
            fclose(f);
        }
        sleep_ms(10);
    }
    fail_msg("'%s' never appeared in %s", text, log);
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void sighup_keeps_connections_and_forgets_revoked_keys(void **state)
{
    th_daemon_t d = {0};
    th_daemon_start(&d);
    th_use(&d);
    th_tenant_t t;
    th_tenant_create(&t, "ops-hup");
    remember_secret(t.admin_key);
    char rkey[256], key_id[32], out[512];
    th_key_create(&t, NULL, "read", rkey, sizeof rkey);
    remember_secret(rkey);
    th_key_id(rkey, key_id, sizeof key_id);
    int fd = connect_to(d.port);
    assert_int_equal(raw_get(fd, "/v1/events?limit=1", t.admin_key), 200);
    assert_int_equal(raw_get(fd, "/v1/events?limit=1", rkey), 200);   /* now cached */
    int rc = th_cli(out, sizeof out, "keys", "revoke", key_id, NULL);
    if (rc != 0) fail_msg("circa keys revoke exited %d: %s", rc, out);
    long from = file_size(d.log);
    kill(d.pid, SIGHUP);
    wait_for_log(d.log, from, "SIGHUP");
    /* the same connection still answers, and the revoked key is refused at once */
    assert_int_equal(raw_get(fd, "/v1/events?limit=1", t.admin_key), 200);
    assert_int_equal(raw_get(fd, "/v1/events?limit=1", rkey), 401);
    close(fd);
    assert_int_equal(th_daemon_stop(&d), 0);
}

/* ---- rate limit ----------------------------------------------------------------------------- */

static void over_the_rate_limit_is_429_with_retry_after(void **state)
{
    th_daemon_t d = {0};
    d.extra_env[0] = "CIRCA_RATE_LIMIT=0.01";   /* one request per 100 s… */
    d.extra_env[1] = "CIRCA_RATE_BURST=2";      /* …after a burst of two */
    th_daemon_start(&d);
    th_use(&d);
    th_tenant_t t;
    th_tenant_create(&t, "ops-rate");
    remember_secret(t.admin_key);
    char other[256];
    th_key_create(&t, NULL, "read", other, sizeof other);
    remember_secret(other);
    th_resp_t r;
    assert_int_equal(th_get("/v1/events?limit=1", t.admin_key, &r), 200);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/events?limit=1", t.admin_key, &r), 200);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/events?limit=1", t.admin_key, &r), 429);
    th_assert_problem(&r, 429, "rate-limited");
    long retry = strtol(r.retry_after, NULL, 10);
    if (retry < 1 || retry > 100) fail_msg("Retry-After: '%s'", r.retry_after);
    th_resp_free(&r);
    assert_int_equal(th_get("/v1/events?limit=1", other, &r), 200);   /* its own bucket */
    th_resp_free(&r);
    assert_int_equal(th_get("/healthz", NULL, &r), 200);              /* no key, no limit */
    th_resp_free(&r);
    assert_int_equal(th_daemon_stop(&d), 0);
}

/* ---- logs ---------------------------------------------------------------------------------- */

/* 1 when the file holds one of this test's secrets or anything shaped like a whole key. */
static int leaks(const char *path, const regex_t *key_re, char *what, size_t whatlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (!found && getline(&line, &cap, f) >= 0) {
        for (int i = 0; i < nsecrets && !found; i++)
            if (strstr(line, secrets[i])) found = 1, snprintf(what, whatlen, "secret %d", i);
        if (!found && regexec(key_re, line, 0, NULL, 0) == 0)
            found = 1, snprintf(what, whatlen, "a whole API key");
    }
    free(line);
    fclose(f);
    return found;
}

static void no_log_holds_an_api_key_secret(void **state)
{
    assert_true(nsecrets >= 2);
    const char *data = getenv("CIRCA_DATA_DIR");
    char dir[600], path[1200], what[64];
    snprintf(dir, sizeof dir, "%s/test-logs", data && *data ? data : "/tmp");
    regex_t re;
    assert_int_equal(regcomp(&re, "circa_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", REG_EXTENDED), 0);
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    int files = 0;
    for (struct dirent *e; (e = readdir(dd));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        files++;
        if (leaks(path, &re, what, sizeof what)) {
            closedir(dd);
            regfree(&re);
            fail_msg("%s holds %s", path, what);
        }
    }
    closedir(dd);
    regfree(&re);
    assert_true(files >= 1);   /* at least this test's own circad log was looked at */
}

int main(void)
{
    th_init("test_ops");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_env_value_exits_2_naming_it),
        cmocka_unit_test(bad_file_value_exits_2_naming_file_line_and_key),
        cmocka_unit_test(check_config_on_a_good_file_exits_0),
        cmocka_unit_test(environment_overrides_the_file_in_a_running_circad),
        cmocka_unit_test(sighup_keeps_connections_and_forgets_revoked_keys),
        cmocka_unit_test(over_the_rate_limit_is_429_with_retry_after),
        cmocka_unit_test(no_log_holds_an_api_key_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// uses: tests/harness daemon/buf
/* test_mqtt — the MQTT adapter against a real Mosquitto (started here on a free loopback port
 * with its own configuration and persistence), the real circad and PostgreSQL: payloads become
 * events with the right fields; a broker restart and a PostgreSQL stop in the middle of a
 * stream lose and duplicate nothing; malformed payloads and unknown devices become dead
 * letters, which `circa dead-letters --replay` stores once the configuration is fixed.
 * Stops and starts the test cluster, so it must not share it with tests running meanwhile. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

static th_daemon_t daemon_;
static th_tenant_t tenant;
static pid_t broker_pid;
static int broker_port;
static char dir[512], adapter[64];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* Mosquitto with persistence, so queued QoS 1 messages and sessions survive its restart. */
static void broker_start(void)
{
    char conf[600], log[600];
    snprintf(conf, sizeof conf, "%s/mosquitto.conf", dir);
    snprintf(log, sizeof log, "%s/mosquitto.log", dir);
    buf_t b = BUF_INIT;
    buf_printf(&b, "listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                   "persistence_location %s/\nmax_queued_messages 100000\nlog_dest stderr\n%s",
               broker_port, dir, geteuid() == 0 ? "user root\n" : "");   /* root: keep access to dir */
    write_file(conf, b.data);
    buf_free(&b);
    broker_pid = fork();
    if (broker_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/usr/sbin/mosquitto", "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {   /* until it accepts (bounded) */
        char port[16];
        snprintf(port, sizeof port, "%d", broker_port);
        char *argv[] = {"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "probe", "-m", "x", NULL};
        if (th_run(argv) == 0) return;
        sleep_ms(50);
    }
    fail_msg("mosquitto did not start (see %s)", log);
}

static void broker_stop(void)
{
    if (!broker_pid) return;
    kill(broker_pid, SIGTERM);
    waitpid(broker_pid, NULL, 0);
    broker_pid = 0;
}

static void write_config(int with_wb99)
{
    char path[600];
    snprintf(path, sizeof path, "%s/adapters/%s.json", dir, adapter);
    buf_t b = BUF_INIT;
    buf_printf(&b,
               "{\"name\": \"%s\", \"kind\": \"mqtt\", \"tenant\": \"%s\",\n"
               " \"broker\": \"mqtt://127.0.0.1:%d\", \"client_id\": \"circad-%s\", \"protocol\": 5,\n"
               " \"subscriptions\": [{\"topic\": \"park/+/weighbridge\", \"profile\": \"weighbridge\", \"qos\": 1},\n"
               "                   {\"topic\": \"park/+/bin\", \"profile\": \"smart_bin\", \"qos\": 1}],\n"
               " \"devices\": {\"WB-01\": {\"site\": \"S1\", \"material\": \"PET\", \"ewc\": \"150102\", \"type\": \"waste_generated\"},\n"
               "             \"BIN-17\": {\"site\": \"S1\", \"material\": \"PET\", \"ewc\": \"150102\"}%s}}\n",
               adapter, tenant.id, broker_port, adapter,
               with_wb99 ? ",\n             \"WB-99\": {\"site\": \"S1\", \"material\": \"PET\", \"ewc\": \"150102\", \"type\": \"waste_generated\"}" : "");
    write_file(path, b.data);
    buf_free(&b);
}

/* mosquitto_pub -l: every line of text is one QoS 1 message on topic. */
static void publish_lines(const char *topic, const char *text)
{
    char path[600], port[16];
    snprintf(path, sizeof path, "%s/pub.txt", dir);
    snprintf(port, sizeof port, "%d", broker_port);
    write_file(path, text);
    pid_t p = fork();
    if (p == 0) {
        int fd = open(path, O_RDONLY);
        dup2(fd, 0);
        execlp("mosquitto_pub", "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", topic,
               "-l", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static long count_like(const char *table, const char *pattern)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE tenant_id = $1 AND %s LIKE $2", table,
             strcmp(table, "event") == 0 ? "id" : "payload");
    const char *p[2] = {tenant.id, pattern};
    return th_db_long(sql, 2, p);
}

/* Polls (bounded: 60 s) until the count reaches want; returns the last count. */
static long wait_count(const char *table, const char *pattern, long want)
{
    long n = -1;
    for (int i = 0; i < 1200 && (n = count_like(table, pattern)) < want; i++) sleep_ms(50);
    return n;
}

static void weighbridge_tickets(buf_t *b, const char *device, int from, int to)
{
    char t[40];
    th_time(t, 0, 60);
    for (int i = from; i < to; i++)
        buf_printf(b, "{\"device\":\"%s\",\"ticket\":\"T-%06d\",\"time\":\"%s\",\"gross\":%d.5,\"tare\":8.3,\"unit\":\"t\"}\n",
                   device, i, t, 9 + i % 7);
}

/* Until the adapter's session exists, the broker drops what is published for it: publish
 * fill readings until one is stored (bounded). */
static void wait_subscribed(void)
{
    char pat[200];
    snprintf(pat, sizeof pat, "%s:BIN-17:%%:fill", adapter);
    for (int i = 0; i < 100 && count_like("event", pat) == 0; i++) {
        char t[40], msg[200];
        th_time(t, 100 + i, 60);   /* not the time the tests use */
        snprintf(msg, sizeof msg, "{\"device\":\"BIN-17\",\"time\":\"%s\",\"fill\":0.1}\n", t);
        publish_lines("park/BIN-17/bin", msg);
        sleep_ms(100);
    }
    assert_true(count_like("event", pat) > 0);
}

static int setup(void **state)
{
    snprintf(adapter, sizeof adapter, "scales-%d", (int)getpid());
    snprintf(dir, sizeof dir, "%s/mqtt-test-%d", getenv("CIRCA_DATA_DIR"), (int)getpid());
    char sub[600];
    snprintf(sub, sizeof sub, "%s/adapters", dir);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    broker_port = th_free_port();
    broker_start();
    static char env[700];
    snprintf(env, sizeof env, "CIRCA_ADAPTERS_DIR=%s", sub);
    daemon_.extra_env[0] = env;
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    th_tenant_setup(&tenant, "mqtt");   /* through the API, so after the start */
    write_config(0);
    kill(daemon_.pid, SIGHUP);
    wait_subscribed();
    return 0;
}

static int teardown(void **state)
{
    th_pg("start");
    int code = daemon_.pid ? th_daemon_stop(&daemon_) : 0;
    broker_stop();
    return code == 0 ? 0 : -1;
}

static void fields_of_each_profile(void **state)
{
    char t[40], id[200];
    th_time(t, 0, 60);
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"device\":\"WB-01\",\"ticket\":\"T-F1\",\"time\":\"%s\",\"gross\":12.5,\"tare\":8.3,\"unit\":\"t\"}\n", t);
    publish_lines("park/WB-01/weighbridge", b.data);
    buf_reset(&b);
    buf_printf(&b, "{\"device\":\"BIN-17\",\"time\":\"%s\",\"fill\":0.85}\n"
                   "{\"device\":\"BIN-17\",\"time\":\"%s\",\"pickup\":true,\"weight\":120,\"unit\":\"kg\"}\n", t, t);
    publish_lines("park/BIN-17/bin", b.data);
    buf_free(&b);
    char pat[200];
    snprintf(pat, sizeof pat, "%s:WB-01:T-F1", adapter);
    assert_int_equal(wait_count("event", pat, 1), 1);
    snprintf(pat, sizeof pat, "%s:BIN-17:%s:%%", adapter, t);
    assert_int_equal(wait_count("event", pat, 2), 2);

    th_resp_t r;
    snprintf(id, sizeof id, "%s:WB-01:T-F1", adapter);
    char *enc = th_pct_encode(id), path[400];
    snprintf(path, sizeof path, "/v1/events/%s", enc);
    free(enc);
    assert_int_equal(th_get(path, tenant.admin_key, &r), 200);
    th_assert_str(r.json, "type", "waste_generated");
    th_assert_str(r.json, "site", "S1");
    th_assert_str(r.json, "material", "PET");
    th_assert_num(r.json, "quantity.value", 4.2);
    th_assert_str(r.json, "quantity.unit", "t");
    th_assert_num(r.json, "quantity_kg", 4200);
    th_assert_str(r.json, "device", "WB-01");
    th_assert_str(r.json, "document", "T-F1");
    th_resp_free(&r);

    snprintf(id, sizeof id, "%s:BIN-17:%s:fill", adapter, t);
    enc = th_pct_encode(id);
    snprintf(path, sizeof path, "/v1/events/%s", enc);
    free(enc);
    assert_int_equal(th_get(path, tenant.admin_key, &r), 200);
    th_assert_str(r.json, "type", "measured");
    th_assert_num(r.json, "ext.fill", 0.85);
    th_resp_free(&r);

    snprintf(id, sizeof id, "%s:BIN-17:%s:pickup", adapter, t);
    enc = th_pct_encode(id);
    snprintf(path, sizeof path, "/v1/events/%s", enc);
    free(enc);
    assert_int_equal(th_get(path, tenant.admin_key, &r), 200);
    th_assert_str(r.json, "type", "collected");
    th_assert_num(r.json, "quantity_kg", 120);
    th_resp_free(&r);
}

/* 900 tickets in three parts: the broker restarts after the first, PostgreSQL is down while
 * the third arrives. Every ticket is one event, none twice. */
static void broker_restart_and_postgres_stop_lose_nothing(void **state)
{
    char pat[200];
    snprintf(pat, sizeof pat, "%s:WB-01:T-0%%", adapter);
    buf_t b = BUF_INIT;
    weighbridge_tickets(&b, "WB-01", 0, 300);
    publish_lines("park/WB-01/weighbridge", b.data);
    broker_stop();                      /* while the adapter is still taking them in */
    broker_start();
    buf_reset(&b);
    weighbridge_tickets(&b, "WB-01", 300, 600);
    publish_lines("park/WB-01/weighbridge", b.data);
    assert_int_equal(wait_count("event", pat, 600), 600);

    assert_int_equal(th_pg("stop"), 0);
    buf_reset(&b);
    weighbridge_tickets(&b, "WB-01", 600, 900);
    publish_lines("park/WB-01/weighbridge", b.data);
    /* a broker restart while PostgreSQL is down: what was acknowledged is in the spool */
    broker_stop();
    broker_start();
    assert_int_equal(th_pg("start"), 0);
    assert_int_equal(wait_count("event", pat, 900), 900);
    sleep_ms(300);   /* anything late would be a duplicate: there must be none */
    assert_int_equal(count_like("event", pat), 900);
    buf_free(&b);
}

static void dead_letters_then_replay(void **state)
{
    char t[40];
    th_time(t, 0, 60);
    buf_t b = BUF_INIT;
    buf_printf(&b, "{\"device\":\"WB-01\",\"ticket\":\"T-BAD\",\"gross\":\n"
                   "{\"device\":\"WB-99\",\"ticket\":\"T-99\",\"time\":\"%s\",\"gross\":3,\"tare\":1,\"unit\":\"t\"}\n", t);
    publish_lines("park/WB-99/weighbridge", b.data);
    buf_free(&b);
    assert_int_equal(wait_count("dead_letter", "%T-BAD%", 1), 1);
    assert_int_equal(wait_count("dead_letter", "%T-99%", 1), 1);
    char reason[512];
    const char *p[1] = {tenant.id};
    assert_int_equal(th_db_text("SELECT reason FROM dead_letter WHERE tenant_id = $1 AND payload LIKE '%T-BAD%'", 1, p, reason, sizeof reason), 0);
    assert_non_null(strstr(reason, "malformed payload"));
    assert_int_equal(th_db_text("SELECT reason FROM dead_letter WHERE tenant_id = $1 AND payload LIKE '%T-99%'", 1, p, reason, sizeof reason), 0);
    assert_non_null(strstr(reason, "unknown device \"WB-99\""));

    th_resp_t r;
    assert_int_equal(th_get("/v1/dead-letters?replayed=false", tenant.admin_key, &r), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "dead_letters")), 2);
    th_resp_free(&r);

    /* fix the configuration, reload, replay (the reload restarts the instance meanwhile) */
    write_config(1);
    kill(daemon_.pid, SIGHUP);
    setenv("CIRCA_URL", daemon_.base, 1);
    setenv("CIRCA_KEY", tenant.admin_key, 1);
    char id[200], out[4096];
    snprintf(id, sizeof id, "%s:WB-99:T-99", adapter);
    for (int i = 0; i < 100 && th_event_count_id(tenant.id, id) == 0; i++) {
        th_cli(out, sizeof out, "dead-letters", "--replay", NULL);
        sleep_ms(100);
    }
    assert_int_equal(th_event_count_id(tenant.id, id), 1);
    assert_int_equal(th_db_long("SELECT count(*) FROM dead_letter WHERE tenant_id = $1 AND replayed", 1, p), 1);
    /* the malformed one stays, listed by the CLI */
    assert_int_equal(th_cli(out, sizeof out, "dead-letters", NULL), 0);
    assert_non_null(strstr(out, "T-BAD"));
    assert_null(strstr(out, "T-99\""));
}

static void metrics_show_the_adapter(void **state)
{
    th_resp_t r;
    assert_int_equal(th_get("/metrics", NULL, &r), 200);
    th_resp_free(&r);   /* the lead wires adapters_metrics into /metrics; nothing to assert yet */
}

int main(void)
{
    th_init("test_mqtt");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_of_each_profile),
        cmocka_unit_test(broker_restart_and_postgres_stop_lose_nothing),
        cmocka_unit_test(dead_letters_then_replay),
        cmocka_unit_test(metrics_show_the_adapter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

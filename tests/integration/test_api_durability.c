// uses: tests/harness daemon/buf
/* test_api_durability — what circad promises when things break: PostgreSQL stopped under it
 * (503 with Retry-After, alive, not ready, recovers by itself, nothing lost) and SIGKILL
 * during a concurrent load (every acknowledged event is in the database, batches are whole,
 * the chain verifies). Stops and starts the test cluster, so it must not share it with
 * tests running at the same time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "harness.h"

#define LOAD_THREADS 4
#define LOAD_BATCH 20

static th_daemon_t daemons[2];
static th_daemon_t *current = &daemons[0];

static int start(void **state)
{
    th_daemon_start(current);
    th_use(current);
    return 0;
}

static int stop(void **state)
{
    if (!current->pid) return 0;
    int code = th_daemon_stop(current);
    if (code != 0) fprintf(stderr, "circad exited with %d after SIGTERM\n", code);
    return code == 0 ? 0 : -1;
}

static int ensure_pg_running(void **state)
{
    return th_pg("start") == 0 ? 0 : -1;
}

static void verify_chain(const char *tenant)
{
    char out[1024];
    int rc = th_cli(out, sizeof out, "verify", "--tenant", tenant, NULL);
    if (rc != 0) fail_msg("circa verify --tenant %s exited %d: %s", tenant, rc, out);
}

static long readyz(void)
{
    th_resp_t r;
    long st = th_get("/readyz", NULL, &r);
    th_resp_free(&r);
    return st;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void postgres_stopped_then_started(void **state)
{
    th_tenant_t t;
    th_tenant_setup(&t, "pgstop");
    char *first = th_json_take(th_event("pg-1", "S1", 1, "kg"));
    char *second = th_json_take(th_event("pg-2", "S1", 2, "kg"));
    th_resp_t r;
    assert_int_equal(th_post("/v1/events", t.admin_key, first, &r), 201);
    th_resp_free(&r);

    /* A valid key circad has not seen yet: while the database is down it cannot be checked,
     * which is a 503, never a 401. */
    char fresh_key[256];
    th_key_create(&t, "P1", "read", fresh_key, sizeof fresh_key);

    assert_int_equal(th_pg("stop"), 0);
    th_post("/v1/events", t.admin_key, second, &r);
    th_assert_problem(&r, 503, NULL);
    char *end = NULL;
    long retry = strtol(r.retry_after, &end, 10);
    if (!r.retry_after[0] || *end || retry <= 0)
        fail_msg("503 without a usable Retry-After: '%s'", r.retry_after);
    th_resp_free(&r);
    assert_int_equal(th_healthz(), 200);
    assert_int_equal(readyz(), 503);
    th_get("/v1/events/pg-1", t.admin_key, &r);
    th_assert_problem(&r, 503, NULL);
    assert_true(r.retry_after[0] != 0);
    th_resp_free(&r);
    th_get("/v1/events/pg-1", fresh_key, &r);
    th_assert_problem(&r, 503, NULL);
    assert_true(r.retry_after[0] != 0);
    th_resp_free(&r);
    assert_true(th_daemon_alive(current));

    assert_int_equal(th_pg("start"), 0);
    long st = 0;
    for (int i = 0; i < 150 && st != 201; i++) {   /* bounded: 150 tries 200 ms apart */
        st = th_post("/v1/events", t.admin_key, second, &r);
        if (st != 201 && st != 503) fail_msg("POST while reconnecting -> %ld %s", st, r.body);
        th_resp_free(&r);
        if (st != 201) sleep_ms(200);
    }
    assert_int_equal(st, 201);
    assert_int_equal(readyz(), 200);
    assert_int_equal(th_event_count(t.id), 2);
    assert_int_equal(th_event_count_id(t.id, "pg-1"), 1);
    assert_int_equal(th_event_count_id(t.id, "pg-2"), 1);
    th_get("/v1/events/pg-1", fresh_key, &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    verify_chain(t.id);
    free(first);
    free(second);
}

typedef struct {
    int no;
    const char *base, *key;
    volatile int *stop;
    int acked[4096];          /* batch numbers answered 2xx */
    int nacked;
    long other;               /* answers neither 2xx nor transport failures */
} loader_t;

static char *load_batch(int thread, int batch_no)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < LOAD_BATCH; i++) {
        char id[64];
        snprintf(id, sizeof id, "k9-%d-%d-%d", thread, batch_no, i);
        cJSON_AddItemToArray(arr, th_event(id, "S1", 1 + i, "kg"));
    }
    return th_json_take(arr);
}

static void *loader(void *arg)
{
    loader_t *l = arg;
    th_http_t *h = th_http_new();
    for (int n = 0; !*l->stop && l->nacked < 4096; n++) {
        char *body = load_batch(l->no, n);
        th_resp_t r;
        long st = th_http(h, l->base, "POST", "/v1/events", l->key, "application/json", body,
                          strlen(body), &r);
        if (st >= 200 && st < 300) l->acked[l->nacked++] = n;
        else if (st != 0) l->other++;
        th_resp_free(&r);
        free(body);
    }
    th_http_free(h);
    return NULL;
}

/* The acknowledged ids as a PostgreSQL text[] literal; *n gets their number. */
static char *acked_ids(loader_t *ls, long *n)
{
    buf_t b = BUF_INIT;
    buf_putc(&b, '{');
    *n = 0;
    for (int t = 0; t < LOAD_THREADS; t++)
        for (int k = 0; k < ls[t].nacked; k++)
            for (int i = 0; i < LOAD_BATCH; i++, (*n)++)
                buf_printf(&b, "%sk9-%d-%d-%d", *n ? "," : "", t, ls[t].acked[k], i);
    buf_putc(&b, '}');
    return buf_steal(&b);
}

/* Starts the loaders against the current circad; returns after they are running. */
static void loaders_start(loader_t *ls, pthread_t *th, const th_tenant_t *t, int base_no,
                          volatile int *stop_flag)
{
    for (int i = 0; i < LOAD_THREADS; i++) {
        ls[i] = (loader_t){.no = base_no + i, .base = current->base, .key = t->admin_key,
                           .stop = stop_flag};
        pthread_create(&th[i], NULL, loader, &ls[i]);
    }
}

static void sigkill_under_load_loses_nothing_acknowledged(void **state)
{
    th_tenant_t t;
    th_tenant_setup(&t, "kill9");
    static loader_t ls[LOAD_THREADS];
    pthread_t th[LOAD_THREADS];
    volatile int stop_flag = 0;
    loaders_start(ls, th, &t, 0, &stop_flag);
    sleep_ms(2000);
    th_daemon_kill9(current);
    stop_flag = 1;
    long other = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        pthread_join(th[i], NULL);
        other += ls[i].other;
    }
    assert_int_equal(other, 0);

    current = &daemons[1];
    th_daemon_start(current);
    th_use(current);
    long n;
    char *ids = acked_ids(ls, &n);
    assert_true(n > 0);
    const char *p[] = {t.id, ids};
    long stored = th_db_long("SELECT count(*) FROM event WHERE tenant_id = $1 AND id = ANY($2::text[])",
                             2, p);
    if (stored != n) fail_msg("%ld events acknowledged, %ld of them stored", n, stored);
    free(ids);
    /* A batch is atomic: each is stored whole or not at all. */
    assert_int_equal(th_db_long("SELECT count(*) FROM (SELECT regexp_replace(id, '-[0-9]+$', '') "
                                "FROM event WHERE tenant_id = $1 GROUP BY 1 HAVING count(*) <> 20) b",
                                1, p), 0);
    /* Seqs have neither gaps nor repeats, and the blocks account for every event. */
    long events = th_event_count(t.id);
    assert_int_equal(th_db_long("SELECT max(seq) FROM event WHERE tenant_id = $1", 1, p), events);
    assert_int_equal(th_db_long("SELECT count(DISTINCT seq) FROM event WHERE tenant_id = $1", 1, p),
                     events);
    assert_int_equal(th_db_long("SELECT sum(count) FROM ledger_block WHERE tenant_id = $1", 1, p),
                     events);
    print_message("kill -9: %ld events acknowledged, %ld stored\n", n, events);
    /* The restarted circad goes on writing the same chain. */
    char *body = th_json_take(th_event("after-kill", "S1", 1, "kg"));
    th_resp_t r;
    assert_int_equal(th_post("/v1/events", t.admin_key, body, &r), 201);
    th_resp_free(&r);
    free(body);
    verify_chain(t.id);
}

static void sigterm_under_load_answers_what_it_took(void **state)
{
    th_tenant_t t;
    th_tenant_setup(&t, "sigterm");
    static loader_t ls[LOAD_THREADS];
    pthread_t th[LOAD_THREADS];
    volatile int stop_flag = 0;
    loaders_start(ls, th, &t, 0, &stop_flag);
    sleep_ms(1000);
    int code = th_daemon_stop(current);
    stop_flag = 1;
    for (int i = 0; i < LOAD_THREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(code, 0);
    long n;
    char *ids = acked_ids(ls, &n);
    assert_true(n > 0);
    const char *p[] = {t.id, ids};
    long stored = th_db_long("SELECT count(*) FROM event WHERE tenant_id = $1 AND id = ANY($2::text[])",
                             2, p);
    if (stored != n) fail_msg("%ld events acknowledged, %ld of them stored", n, stored);
    free(ids);
    verify_chain(t.id);
    th_daemon_start(current);
    th_use(current);
}

int main(void)
{
    th_init("test_api_durability");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(postgres_stopped_then_started, ensure_pg_running),
        cmocka_unit_test(sigkill_under_load_loses_nothing_acknowledged),
        cmocka_unit_test(sigterm_under_load_answers_what_it_took),
    };
    return cmocka_run_group_tests(tests, start, stop);
}

/* metrics_bench — latency of one read endpoint (GET /v1/metrics, /v1/flows, a lot trace):
 * N requests spread over C keep-alive connections, p50/p99 printed as one summary line.
 * --warmup W sends W unmeasured requests on each connection first: the first call on each of
 * circad's PostgreSQL connections compiles and plans the metric functions (~20 ms), a cost a
 * long-running circad pays once per connection, not per request. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "buf.h"

typedef struct {
    const char *url, *key;
    int warmup;                  /* unmeasured requests first */
    int requests;                /* this connection's share */
    double *lat_ms;              /* one per request */
    int errors;
    long last_status;
} conn_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* One connection: its requests one after the other on one easy handle (kept alive). */
static void *run_conn(void *arg)
{
    conn_t *c = arg;
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    CURL *curl = curl_easy_init();
    buf_t body = BUF_INIT;
    curl_easy_setopt(curl, CURLOPT_URL, c->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    for (int i = 0; i < c->warmup; i++) {
        buf_reset(&body);
        if (curl_easy_perform(curl) != CURLE_OK) c->errors++;
    }
    for (int i = 0; i < c->requests; i++) {
        buf_reset(&body);
        double t = now_ms();
        CURLcode rc = curl_easy_perform(curl);
        c->lat_ms[i] = now_ms() - t;
        long st = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &st);
        c->last_status = st;
        if (st != 200) c->errors++;
    }
    curl_easy_cleanup(curl);
    curl_slist_free_all(h);
    buf_free(&body);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);
    return n ? sorted[i] : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'}, {"key", required_argument, NULL, 'k'},
        {"requests", required_argument, NULL, 'n'}, {"connections", required_argument, NULL, 'c'},
        {"scenario", required_argument, NULL, 's'}, {"warmup", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0}};
    const char *url = NULL, *key = NULL, *scenario = "metrics";
    int requests = 200, conns = 4, warmup = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u') url = optarg;
        else if (o == 'k') key = optarg;
        else if (o == 'n') requests = (int)strtol(optarg, NULL, 10);
        else if (o == 'c') conns = (int)strtol(optarg, NULL, 10);
        else if (o == 's') scenario = optarg;
        else if (o == 'w') warmup = (int)strtol(optarg, NULL, 10);
        else return 2;
    }
    if (!url || !key || requests < 1 || conns < 1 || conns > 64 || warmup < 0) {
        fputs("usage: metrics_bench --url URL --key KEY [--requests N] [--connections C] "
              "[--warmup W] [--scenario NAME]\n", stderr);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    double *lat = xcalloc((size_t)requests, sizeof *lat);
    conn_t cs[64];
    pthread_t th[64];
    int given = 0;
    double t0 = now_ms();
    for (int i = 0; i < conns; i++) {
        int share = requests / conns + (i < requests % conns);
        cs[i] = (conn_t){.url = url, .key = key, .warmup = warmup, .requests = share,
                         .lat_ms = lat + given};
        given += share;
        pthread_create(&th[i], NULL, run_conn, &cs[i]);
    }
    int errors = 0;
    long status = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        errors += cs[i].errors;
        if (cs[i].errors) status = cs[i].last_status;
    }
    double secs = (now_ms() - t0) / 1e3;
    qsort(lat, (size_t)requests, sizeof *lat, cmp_double);
    printf("scenario=%s requests=%d connections=%d warmup=%d errors=%d seconds=%.2f p50_ms=%.1f "
           "p99_ms=%.1f max_ms=%.1f\n", scenario, requests, conns, warmup, errors, secs, pct(lat, requests, 0.5),
           pct(lat, requests, 0.99), lat[requests - 1]);
    if (errors) fprintf(stderr, "metrics_bench: %d requests failed (last status %ld)\n", errors, status);
    free(lat);
    curl_global_cleanup();
    return errors ? 1 : 0;
}

/* stats — a small fixed table of (route, status) counters; routes are few and known. */
#include "stats.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 256
#define NBUCKETS 12
static const double bucket_s[NBUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,  0.5,   1.0,  2.5};

typedef struct {
    char route[64];
    int status;
    unsigned long long count;
} series_t;

struct stats {
    series_t series[MAX_SERIES];
    int n;
    unsigned long long dropped;           /* series beyond MAX_SERIES */
    unsigned long long buckets[NBUCKETS]; /* cumulative latency histogram */
    unsigned long long count;
    double sum_s;
};

stats_t *stats_new(void)
{
    return calloc(1, sizeof(stats_t));
}

void stats_free(stats_t *s)
{
    free(s);
}

void stats_request(stats_t *s, const char *route, int status, double latency_ms)
{
    double sec = latency_ms / 1000.0;
    s->count++;
    s->sum_s += sec;
    for (int b = 0; b < NBUCKETS; b++)
        if (sec <= bucket_s[b]) s->buckets[b]++;
    for (int i = 0; i < s->n; i++)
        if (s->series[i].status == status && strcmp(s->series[i].route, route) == 0) {
            s->series[i].count++;
            return;
        }
    if (s->n == MAX_SERIES) {
        s->dropped++;
        return;
    }
    series_t *x = &s->series[s->n++];
    snprintf(x->route, sizeof x->route, "%s", route);
    x->status = status;
    x->count = 1;
}

void stats_render(const stats_t *s, buf_t *out)
{
    buf_puts(out, "# HELP circa_http_requests_total HTTP requests answered, by route and status.\n"
                  "# TYPE circa_http_requests_total counter\n");
    for (int i = 0; i < s->n; i++)
        buf_printf(out, "circa_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                   s->series[i].route, s->series[i].status, s->series[i].count);
    buf_puts(out, "# HELP circa_http_request_duration_seconds Time from a request's last byte "
                  "to its answer.\n# TYPE circa_http_request_duration_seconds histogram\n");
    for (int b = 0; b < NBUCKETS; b++)
        buf_printf(out, "circa_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                   bucket_s[b], s->buckets[b]);
    buf_printf(out,
               "circa_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
               "circa_http_request_duration_seconds_sum %.6f\n"
               "circa_http_request_duration_seconds_count %llu\n",
               s->count, s->sum_s, s->count);
}

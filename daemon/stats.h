/* stats — request counters by route and status, and request latency, for /metrics. */
#ifndef CIRCA_STATS_H
#define CIRCA_STATS_H
#include "buf.h"

typedef struct stats stats_t;

stats_t *stats_new(void);          /* freed with stats_free */
void stats_free(stats_t *s);
/* route is the pattern ("/v1/events/{id}") or "other" for unmatched paths. */
void stats_request(stats_t *s, const char *route, int status, double latency_ms);
/* Appends circa_http_requests_total and circa_http_request_duration_seconds. */
void stats_render(const stats_t *s, buf_t *out);

#endif

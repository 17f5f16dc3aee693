/* ratelimit — a token bucket per API key: `rate` requests per second, bursts up to `burst`.
 * O(1) per request; a fixed-size table forgets the longest idle key when it is full. */
#ifndef CIRCA_RATELIMIT_H
#define CIRCA_RATELIMIT_H
#include <stddef.h>

typedef struct ratelimit ratelimit_t;

/* rate: tokens per second (0: no limit, every take succeeds); burst: bucket size (a new key
 * starts full; values below 1 count as 1); max_keys: keys remembered (at least 16). A key
 * that is forgotten and comes back starts full again, which is harmless when max_keys exceeds
 * the keys active within burst/rate seconds. Freed with ratelimit_free. */
ratelimit_t *ratelimit_new(double rate, double burst, size_t max_keys);
void ratelimit_free(ratelimit_t *r);

/* Takes one token from key_id's bucket at time now_s (seconds on a monotonic clock, e.g.
 * uv_now / 1000.0). Returns 0 when allowed; 1 when over the limit, with *retry_after_s the
 * seconds until a token is there (> 0). retry_after_s may be NULL. */
int ratelimit_take(ratelimit_t *r, const char *key_id, double now_s, double *retry_after_s);

/* Whole seconds for a Retry-After header: rounded up, at least 1. */
long ratelimit_retry_after_header(double retry_after_s);

typedef struct {
    unsigned long long allowed, refused, evicted;
    size_t keys;
} ratelimit_stats_t;
void ratelimit_stats(const ratelimit_t *r, ratelimit_stats_t *out);

#endif

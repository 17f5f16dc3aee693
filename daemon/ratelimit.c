/* ratelimit — token buckets in a chained hash table with an LRU list for eviction. */
#include "ratelimit.h"
#include "buf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
/* Refills are sums of products; a hair of tolerance keeps exact refills (1 token after
 * 1/rate s) from being refused for a rounding error. */
#define EPS 1e-9

typedef struct {
    char key[24];            /* API key ids are 12 characters */
    double tokens, last;
    uint32_t chain;          /* next entry in the same hash bucket */
    uint32_t prev, next;     /* LRU list: head is the most recently used */
    uint32_t bucket;
} entry_t;

struct ratelimit {
    double rate, burst;
    size_t cap, used;
    uint32_t nbuckets;       /* a power of two, at least 2 * cap */
    uint32_t *buckets;
    entry_t *e;
    uint32_t head, tail;
    ratelimit_stats_t st;
};

ratelimit_t *ratelimit_new(double rate, double burst, size_t max_keys)
{
    ratelimit_t *r = xcalloc(1, sizeof *r);
    r->rate = rate > 0 ? rate : 0;
    r->burst = burst >= 1 ? burst : 1;
    r->cap = max_keys < 16 ? 16 : max_keys;
    r->nbuckets = 32;
    while (r->nbuckets < 2 * r->cap) r->nbuckets *= 2;
    r->buckets = xmalloc(r->nbuckets * sizeof *r->buckets);
    memset(r->buckets, 0xff, r->nbuckets * sizeof *r->buckets);   /* all NIL */
    r->e = xcalloc(r->cap, sizeof *r->e);
    r->head = r->tail = NIL;
    return r;
}

void ratelimit_free(ratelimit_t *r)
{
    if (!r) return;
    free(r->buckets);
    free(r->e);
    free(r);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void lru_unlink(ratelimit_t *r, uint32_t i)
{
    entry_t *e = &r->e[i];
    if (e->prev != NIL) r->e[e->prev].next = e->next; else r->head = e->next;
    if (e->next != NIL) r->e[e->next].prev = e->prev; else r->tail = e->prev;
}

static void lru_push_front(ratelimit_t *r, uint32_t i)
{
    r->e[i].prev = NIL;
    r->e[i].next = r->head;
    if (r->head != NIL) r->e[r->head].prev = i;
    r->head = i;
    if (r->tail == NIL) r->tail = i;
}

static void chain_unlink(ratelimit_t *r, uint32_t i)
{
    uint32_t *p = &r->buckets[r->e[i].bucket];
    while (*p != i) p = &r->e[*p].chain;
    *p = r->e[i].chain;
}

/* A slot for a new key: an unused one, else the least recently used key's. */
static uint32_t slot_for_new(ratelimit_t *r)
{
    if (r->used < r->cap) return (uint32_t)r->used++;
    uint32_t i = r->tail;
    lru_unlink(r, i);
    chain_unlink(r, i);
    r->st.evicted++;
    return i;
}

static entry_t *find_or_add(ratelimit_t *r, const char *key, double now)
{
    uint32_t b = hash(key) & (r->nbuckets - 1);
    for (uint32_t i = r->buckets[b]; i != NIL; i = r->e[i].chain) {
        if (strncmp(r->e[i].key, key, sizeof r->e[i].key - 1) != 0) continue;
        lru_unlink(r, i);
        lru_push_front(r, i);
        return &r->e[i];
    }
    uint32_t i = slot_for_new(r);
    entry_t *e = &r->e[i];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->tokens = r->burst;
    e->last = now;
    e->bucket = b;
    e->chain = r->buckets[b];
    r->buckets[b] = i;
    lru_push_front(r, i);
    return e;
}

int ratelimit_take(ratelimit_t *r, const char *key_id, double now_s, double *retry_after_s)
{
    if (retry_after_s) *retry_after_s = 0;
    if (r->rate <= 0) return r->st.allowed++, 0;
    entry_t *e = find_or_add(r, key_id, now_s);
    /* A clock that steps back refills nothing rather than going negative. */
    if (now_s > e->last) {
        e->tokens = fmin(r->burst, e->tokens + (now_s - e->last) * r->rate);
        e->last = now_s;
    }
    if (e->tokens >= 1 - EPS) {
        e->tokens = fmax(0, e->tokens - 1);
        r->st.allowed++;
        return 0;
    }
    if (retry_after_s) *retry_after_s = (1 - e->tokens) / r->rate;
    r->st.refused++;
    return 1;
}

long ratelimit_retry_after_header(double retry_after_s)
{
    double s = ceil(retry_after_s - EPS);
    return s < 1 ? 1 : s > 86400 ? 86400 : (long)s;
}

void ratelimit_stats(const ratelimit_t *r, ratelimit_stats_t *out)
{
    *out = r->st;
    out->keys = r->used;
}

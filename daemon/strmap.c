/* strmap — open addressing with linear probing; FNV-1a hashes; tombstones on delete. */
#include "strmap.h"
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tomb[1]; /* marks a deleted slot */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static size_t find(const strmap_t *m, const char *key, int for_insert)
{
    size_t mask = m->cap - 1, i = (size_t)hash(key) & mask, first_tomb = SIZE_MAX;
    for (;; i = (i + 1) & mask) {
        char *k = m->keys[i];
        if (!k) return (for_insert && first_tomb != SIZE_MAX) ? first_tomb : i;
        if (k == tomb) {
            if (first_tomb == SIZE_MAX) first_tomb = i;
        } else if (strcmp(k, key) == 0) {
            return i;
        }
    }
}

static void grow(strmap_t *m)
{
    strmap_t old = *m;
    m->cap = old.cap ? old.cap * 2 : 16;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->vals = xcalloc(m->cap, sizeof *m->vals);
    m->n = m->tombs = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i] || old.keys[i] == tomb) continue;
        size_t j = find(m, old.keys[i], 1);
        m->keys[j] = old.keys[i];
        m->vals[j] = old.vals[i];
        m->n++;
    }
    free(old.keys);
    free(old.vals);
}

void strmap_free(strmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] && m->keys[i] != tomb) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = m->tombs = 0;
}

void *strmap_get(const strmap_t *m, const char *key)
{
    if (!m->n) return NULL;
    size_t i = find(m, key, 0);
    return m->keys[i] ? m->vals[i] : NULL;
}

void *strmap_put(strmap_t *m, const char *key, void *val)
{
    if ((m->n + m->tombs + 1) * 4 > m->cap * 3) grow(m);
    size_t i = find(m, key, 1);
    if (m->keys[i] && m->keys[i] != tomb) {
        void *prev = m->vals[i];
        m->vals[i] = val;
        return prev;
    }
    if (m->keys[i] == tomb) m->tombs--;
    m->keys[i] = xstrdup(key);
    m->vals[i] = val;
    m->n++;
    return NULL;
}

void *strmap_del(strmap_t *m, const char *key)
{
    if (!m->n) return NULL;
    size_t i = find(m, key, 0);
    if (!m->keys[i]) return NULL;
    void *val = m->vals[i];
    free(m->keys[i]);
    m->keys[i] = tomb;
    m->vals[i] = NULL;
    m->n--;
    m->tombs++;
    return val;
}

size_t strmap_count(const strmap_t *m)
{
    return m->n;
}

void strmap_each(const strmap_t *m, void (*fn)(const char *key, void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] && m->keys[i] != tomb) fn(m->keys[i], m->vals[i], arg);
}

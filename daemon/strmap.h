/* strmap — an open-addressing hash map from NUL-terminated strings to pointers. */
#ifndef CIRCA_STRMAP_H
#define CIRCA_STRMAP_H
#include <stddef.h>

/* The map copies keys and owns the copies; values belong to the caller. */
typedef struct {
    char **keys;
    void **vals;
    size_t cap, n, tombs;
} strmap_t;

#define STRMAP_INIT {NULL, NULL, 0, 0, 0}

void strmap_free(strmap_t *m);                  /* frees the keys, not the values */
void *strmap_get(const strmap_t *m, const char *key);
/* Sets key to val; returns the previous value or NULL. */
void *strmap_put(strmap_t *m, const char *key, void *val);
/* Removes key; returns its value or NULL. */
void *strmap_del(strmap_t *m, const char *key);
size_t strmap_count(const strmap_t *m);
/* Calls fn for every entry; fn must not change the map. */
void strmap_each(const strmap_t *m, void (*fn)(const char *key, void *val, void *arg), void *arg);

#endif

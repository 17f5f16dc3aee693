/* errlist — collected validation errors. */
#include "errlist.h"
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void errlist_add(errlist_t *e, int index, const char *field, const char *fmt, ...)
{
    if (e->n >= ERRLIST_MAX) {
        e->dropped++;
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->items = xrealloc(e->items, e->cap * sizeof *e->items);
    }
    errlist_item_t *it = &e->items[e->n++];
    it->index = index;
    snprintf(it->field, sizeof it->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
}

void errlist_free(errlist_t *e)
{
    free(e->items);
    e->items = NULL;
    e->n = e->cap = e->dropped = 0;
}

size_t errlist_count_indexes(const errlist_t *e)
{
    size_t count = 0;
    int last = -2;
    /* Validators add errors in index order, so counting changes of index suffices. */
    for (size_t i = 0; i < e->n; i++) {
        if (e->items[i].index != last) count++;
        last = e->items[i].index;
    }
    return count;
}

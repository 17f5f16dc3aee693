/* errlist — a list of {index, field, message} errors that validators fill and that reaches
 * both the log and the problem+json "errors" array. */
#ifndef CIRCA_ERRLIST_H
#define CIRCA_ERRLIST_H
#include <stddef.h>

typedef struct {
    int index;          /* event index in the request, -1 when not about one event */
    char field[96];     /* JSON path of the field, e.g. "quantity.unit" or "inputs[1].lot" */
    char message[240];
} errlist_item_t;

/* The caller owns the struct; errlist_free releases the items. */
typedef struct {
    errlist_item_t *items;
    size_t n, cap;
    size_t dropped;     /* errors past ERRLIST_MAX are counted, not kept */
} errlist_t;

#define ERRLIST_MAX 1000
#define ERRLIST_INIT {NULL, 0, 0, 0}

void errlist_add(errlist_t *e, int index, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void errlist_free(errlist_t *e);
/* Number of distinct event indexes with at least one error. */
size_t errlist_count_indexes(const errlist_t *e);

#endif

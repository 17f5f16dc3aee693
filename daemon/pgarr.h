/* pgarr — PostgreSQL binary-format one-dimensional arrays, for passing a whole batch as
 * array parameters to `INSERT ... SELECT FROM unnest($1::text[], ...)`. */
#ifndef CIRCA_PGARR_H
#define CIRCA_PGARR_H
#include <stdint.h>
#include "buf.h"

#define PGARR_TEXT 25
#define PGARR_INT8 20
#define PGARR_INT4 23
#define PGARR_FLOAT8 701
#define PGARR_BYTEA 17
#define PGARR_TIMESTAMPTZ 1184
#define PGARR_BOOL 16

/* The caller owns the struct; pgarr_free releases it. Add elements, then pgarr_finish and
 * pass data/len as a binary parameter (format 1). */
typedef struct {
    buf_t b;
    uint32_t elem_oid;
    int32_t count;
    int has_null;
} pgarr_t;

void pgarr_init(pgarr_t *a, uint32_t elem_oid);
void pgarr_free(pgarr_t *a);
void pgarr_null(pgarr_t *a);
void pgarr_text(pgarr_t *a, const char *s);          /* NULL adds a NULL */
void pgarr_bytes(pgarr_t *a, const void *p, size_t n); /* text or bytea elements */
void pgarr_int8(pgarr_t *a, int64_t v);
void pgarr_int4(pgarr_t *a, int32_t v);
void pgarr_float8(pgarr_t *a, double v);
void pgarr_bool(pgarr_t *a, int v);
/* Unix-epoch microseconds; PostgreSQL counts from 2000-01-01. */
void pgarr_timestamptz(pgarr_t *a, int64_t unix_us);
/* Patches the header; returns the bytes to send. */
const char *pgarr_finish(pgarr_t *a, int *len);

#endif

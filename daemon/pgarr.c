/* pgarr — builds one-dimensional arrays in PostgreSQL's binary wire format (array_send). */
#include "pgarr.h"

#include <string.h>

/* ndim, has_null, elem oid, then one dimension: length and lower bound. */
#define PGARR_HDR 20
/* An empty array has ndim 0 and therefore no dimension fields. */
#define PGARR_HDR_EMPTY 12
/* PostgreSQL's epoch, 2000-01-01 00:00:00 UTC, in Unix microseconds. */
#define PG_EPOCH_UNIX_US 946684800000000LL

void pgarr_init(pgarr_t *a, uint32_t elem_oid)
{
    buf_init(&a->b);
    a->elem_oid = elem_oid;
    a->count = 0;
    a->has_null = 0;
    /* Room for the header, patched by pgarr_finish once the count is known. */
    static const char zero[PGARR_HDR];
    buf_append(&a->b, zero, sizeof zero);
}

void pgarr_free(pgarr_t *a)
{
    buf_free(&a->b);
    a->count = 0;
}

void pgarr_null(pgarr_t *a)
{
    buf_put_be32(&a->b, (uint32_t)-1);
    a->has_null = 1;
    a->count++;
}

void pgarr_bytes(pgarr_t *a, const void *p, size_t n)
{
    buf_put_be32(&a->b, (uint32_t)n);
    buf_append(&a->b, p, n);
    a->count++;
}

void pgarr_text(pgarr_t *a, const char *s)
{
    if (!s) {
        pgarr_null(a);
        return;
    }
    pgarr_bytes(a, s, strlen(s));
}

void pgarr_int8(pgarr_t *a, int64_t v)
{
    buf_put_be32(&a->b, 8);
    buf_put_be64(&a->b, (uint64_t)v);
    a->count++;
}

void pgarr_int4(pgarr_t *a, int32_t v)
{
    buf_put_be32(&a->b, 4);
    buf_put_be32(&a->b, (uint32_t)v);
    a->count++;
}

void pgarr_float8(pgarr_t *a, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits); /* IEEE-754 bits, sent big-endian like an int8 */
    buf_put_be32(&a->b, 8);
    buf_put_be64(&a->b, bits);
    a->count++;
}

void pgarr_bool(pgarr_t *a, int v)
{
    char c = v ? 1 : 0;
    buf_put_be32(&a->b, 1);
    buf_append(&a->b, &c, 1);
    a->count++;
}

void pgarr_timestamptz(pgarr_t *a, int64_t unix_us)
{
    pgarr_int8(a, unix_us - PG_EPOCH_UNIX_US);
}

/* Writes v big-endian at p, inside the already written header. */
static void patch_be32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

const char *pgarr_finish(pgarr_t *a, int *len)
{
    char *h = a->b.data;
    patch_be32(h, a->count ? 1 : 0);
    patch_be32(h + 4, (uint32_t)(a->has_null ? 1 : 0));
    patch_be32(h + 8, a->elem_oid);
    patch_be32(h + 12, (uint32_t)a->count);
    patch_be32(h + 16, 1);
    /* Elements start after the full header, so an empty array is just its first 12 bytes. */
    *len = a->count ? (int)a->b.len : PGARR_HDR_EMPTY;
    return h;
}

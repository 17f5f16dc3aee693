/* pgcopy — writes PostgreSQL's binary COPY stream (see "COPY ... Binary Format" in the manual). */
#include "pgcopy.h"

#include <string.h>

/* PostgreSQL's epoch, 2000-01-01 00:00:00 UTC, in Unix microseconds. */
#define PG_EPOCH_UNIX_US 946684800000000LL

void pgcopy_start(buf_t *b)
{
    /* The 11-byte signature includes a NUL, so it is appended by length, not as a string. */
    static const char sig[11] = "PGCOPY\n\377\r\n";
    buf_append(b, sig, sizeof sig);
    buf_put_be32(b, 0); /* flags: no OIDs */
    buf_put_be32(b, 0); /* header extension length */
}

void pgcopy_row(buf_t *b, int nfields)
{
    buf_put_be16(b, (uint16_t)nfields);
}

void pgcopy_finish(buf_t *b)
{
    buf_put_be16(b, 0xffff); /* a field count of -1 ends the data */
}

void pgcopy_null(buf_t *b)
{
    buf_put_be32(b, (uint32_t)-1);
}

void pgcopy_bytes(buf_t *b, const void *p, size_t n)
{
    buf_put_be32(b, (uint32_t)n);
    buf_append(b, p, n);
}

void pgcopy_text(buf_t *b, const char *s)
{
    if (!s) pgcopy_null(b);
    else pgcopy_bytes(b, s, strlen(s));
}

void pgcopy_int8(buf_t *b, int64_t v)
{
    buf_put_be32(b, 8);
    buf_put_be64(b, (uint64_t)v);
}

void pgcopy_int4(buf_t *b, int32_t v)
{
    buf_put_be32(b, 4);
    buf_put_be32(b, (uint32_t)v);
}

void pgcopy_float8(buf_t *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits); /* IEEE-754 bits, sent big-endian like an int8 */
    pgcopy_int8(b, (int64_t)bits);
}

void pgcopy_bool(buf_t *b, int v)
{
    char c = v ? 1 : 0;
    pgcopy_bytes(b, &c, 1);
}

void pgcopy_timestamptz(buf_t *b, int64_t unix_us)
{
    pgcopy_int8(b, unix_us - PG_EPOCH_UNIX_US);
}

void pgcopy_array(buf_t *b, pgarr_t *a)
{
    int len;
    const char *p = pgarr_finish(a, &len);
    pgcopy_bytes(b, p, (size_t)len);
}

void pgcopy_text_array(buf_t *b, const char *const *v, int n)
{
    pgarr_t a;
    pgarr_init(&a, PGARR_TEXT);
    for (int i = 0; i < n; i++) pgarr_text(&a, v[i]);
    pgcopy_array(b, &a);
    pgarr_free(&a);
}

void pgcopy_text_split(buf_t *b, const char *list, char sep)
{
    pgarr_t a;
    pgarr_init(&a, PGARR_TEXT);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, sep);
        size_t n = end ? (size_t)(end - p) : strlen(p);
        pgarr_bytes(&a, p, n);
        p = end ? end + 1 : p + n;
        if (end && !*p) pgarr_bytes(&a, "", 0); /* "a," has an empty last part */
    }
    pgcopy_array(b, &a);
    pgarr_free(&a);
}

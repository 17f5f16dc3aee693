/* pgcopy — PostgreSQL's binary COPY format, for loading a whole group of rows with
 * `COPY table (cols) FROM STDIN (FORMAT binary)` (store_tx_copy), which PostgreSQL inserts in
 * batches (heap_multi_insert) where INSERT ... SELECT inserts row by row.
 *
 * The caller owns the buf_t: pgcopy_start, then per row pgcopy_row and one writer per field in
 * the COPY column list's order, then pgcopy_finish. Field values are in each type's binary
 * send format; the column's type must match the writer (text writer for a text column, ...). */
#ifndef CIRCA_PGCOPY_H
#define CIRCA_PGCOPY_H
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "pgarr.h"

void pgcopy_start(buf_t *b);                     /* signature, flags, header extension */
void pgcopy_row(buf_t *b, int nfields);          /* a row of nfields fields follows */
void pgcopy_finish(buf_t *b);                    /* the trailer */

void pgcopy_null(buf_t *b);
void pgcopy_text(buf_t *b, const char *s);       /* NULL writes a NULL */
void pgcopy_bytes(buf_t *b, const void *p, size_t n); /* text or bytea */
void pgcopy_int8(buf_t *b, int64_t v);
void pgcopy_int4(buf_t *b, int32_t v);
void pgcopy_float8(buf_t *b, double v);
void pgcopy_bool(buf_t *b, int v);
/* Unix-epoch microseconds; PostgreSQL counts from 2000-01-01. */
void pgcopy_timestamptz(buf_t *b, int64_t unix_us);
/* Any array: finishes a (and leaves it to the caller to free). */
void pgcopy_array(buf_t *b, pgarr_t *a);
/* text[] of n strings (a NULL string is a NULL element). */
void pgcopy_text_array(buf_t *b, const char *const *v, int n);
/* text[] of the sep-separated parts of list, as string_to_array(list, sep) would give;
 * NULL or "" gives an empty array (not NULL). */
void pgcopy_text_split(buf_t *b, const char *list, char sep);

#endif

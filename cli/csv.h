/* csv — a streaming RFC 4180 reader: one record at a time, memory bounded by the record. */
#ifndef CIRCA_CSV_H
#define CIRCA_CSV_H
#include <stdio.h>
#include <sys/types.h>

/* A record longer than this is an error (an unterminated quote would otherwise swallow the
 * rest of the file into one field). */
#define CSV_MAX_RECORD (1024 * 1024)

typedef struct csv csv_t;

/* One record. Fields point into the reader's memory, valid until the next csv_next; each is
 * NUL-terminated (a field holding a NUL byte is cut there). */
typedef struct {
    char **field;
    size_t *len;
    int n;
    long line;          /* physical line (1-based) where the record starts */
    long end_line;      /* the line where it ends (> line when a quoted field holds newlines) */
    const char *error;  /* non-NULL: the record is malformed (the reader stays in step) */
} csv_row_t;

/* Reads from f (not closed by csv_free). A UTF-8 byte order mark at the start is skipped. */
csv_t *csv_new(FILE *f);
void csv_free(csv_t *c);

/* The next record into row: 1, 0 at the end of the input, -1 on a read error (csv_errno).
 * Empty lines are skipped. Quoted fields may hold commas, doubled quotes and newlines; records
 * end at LF, CRLF or a lone CR. A record with row->error set (text after a closing quote, an
 * unterminated quote, a record over CSV_MAX_RECORD) is still returned so the caller can
 * report its line; reading goes on after it. */
int csv_next(csv_t *c, csv_row_t *row);

/* Byte offset of the first byte not yet consumed by a returned record, and the line it is on:
 * the point to csv_seek back to. */
off_t csv_offset(const csv_t *c);
long csv_line(const csv_t *c);

/* Continues reading at offset (from csv_offset), counting lines from line. 0 or -1. */
int csv_seek(csv_t *c, off_t offset, long line);

int csv_errno(const csv_t *c);

#endif

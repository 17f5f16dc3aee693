/* csv — a streaming RFC 4180 reader: one record at a time, memory bounded by the record. */
#include "csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

enum { ST_START, ST_UNQUOTED, ST_QUOTED, ST_AFTER_QUOTE };

struct csv {
    FILE *f;
    unsigned char in[65536];
    size_t pos, end;
    off_t base;             /* file offset of in[0] */
    int eof, err, started;
    long line;              /* line of the byte at pos */
    long end_line;          /* line on which the last record ended */
    buf_t rec;              /* field bytes, each followed by a NUL */
    size_t *starts;         /* offset of each field in rec */
    size_t nstarts, capstarts;
    char **fields;
    size_t *lens;
    const char *error;
};

csv_t *csv_new(FILE *f)
{
    csv_t *c = xcalloc(1, sizeof *c);
    c->f = f;
    c->line = 1;
    return c;
}

void csv_free(csv_t *c)
{
    if (!c) return;
    buf_free(&c->rec);
    free(c->starts);
    free(c->fields);
    free(c->lens);
    free(c);
}

/* Refills the buffer; skips a byte order mark at the very start of the file. */
static int refill(csv_t *c)
{
    if (c->eof) return 0;
    c->base += (off_t)c->end;
    c->pos = 0;
    c->end = fread(c->in, 1, sizeof c->in, c->f);
    if (c->end == 0) {
        if (ferror(c->f)) c->err = errno ? errno : EIO;
        c->eof = 1;
        return 0;
    }
    if (!c->started && c->base == 0 && c->end >= 3 && memcmp(c->in, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
    c->started = 1;
    return 1;
}

/* The next byte without consuming it; -1 at the end. */
static int peek(csv_t *c)
{
    while (c->pos == c->end)   /* a loop: a refill may hold nothing but the BOM */
        if (!refill(c)) return -1;
    return c->in[c->pos];
}

static int take(csv_t *c)
{
    int ch = peek(c);
    if (ch >= 0) c->pos++;
    return ch;
}

/* After a CR or LF has been taken: a CR may be followed by LF (one line end). */
static void end_of_line(csv_t *c, int ch)
{
    if (ch == '\r' && peek(c) == '\n') c->pos++;
    c->line++;
}

static void field_begin(csv_t *c)
{
    if (c->nstarts == c->capstarts) {
        c->capstarts = c->capstarts ? c->capstarts * 2 : 32;
        c->starts = xrealloc(c->starts, c->capstarts * sizeof *c->starts);
    }
    c->starts[c->nstarts++] = c->rec.len;
}

static void field_end(csv_t *c)
{
    buf_putc(&c->rec, 0);
}

/* Appends one byte of field content, unless the record is already over the limit. */
static void put(csv_t *c, int ch)
{
    if (c->rec.len >= CSV_MAX_RECORD) {
        if (!c->error) c->error = "record longer than 1 MiB";
        return;
    }
    buf_putc(&c->rec, (char)ch);
}

static void set_error(csv_t *c, const char *msg)
{
    if (!c->error) c->error = msg;
}

/* Handles one byte inside a quoted field; returns the next state. */
static int in_quoted(csv_t *c, int ch)
{
    if (ch == '"') {
        if (peek(c) != '"') return ST_AFTER_QUOTE;
        c->pos++;
    } else if (ch == '\n' || (ch == '\r' && peek(c) != '\n')) {
        c->line++;
    }
    put(c, ch);
    /* Past the limit, stop trusting the quote: the record then ends at the next line end,
     * so one stray quote cannot swallow the rest of the file. */
    return c->rec.len >= CSV_MAX_RECORD ? ST_UNQUOTED : ST_QUOTED;
}

/* Reads one record into rec/starts; the caller has checked there is one. */
static void read_record(csv_t *c)
{
    int st = ST_START;
    field_begin(c);
    for (;;) {
        int ch = take(c);
        if (ch < 0) {
            if (st == ST_QUOTED) set_error(c, "unterminated quoted field");
            c->end_line = c->line;
            field_end(c);
            return;
        }
        if (st == ST_QUOTED) {
            st = in_quoted(c, ch);
            continue;
        }
        if (ch == ',') {
            field_end(c);
            field_begin(c);
            st = ST_START;
        } else if (ch == '\n' || ch == '\r') {
            c->end_line = c->line;
            end_of_line(c, ch);
            field_end(c);
            return;
        } else if (st == ST_START && ch == '"') {
            st = ST_QUOTED;
        } else {
            if (st == ST_AFTER_QUOTE) set_error(c, "text after the closing quote of a field");
            st = ST_UNQUOTED;
            put(c, ch);
        }
    }
}

/* Skips empty lines; 0 at the end of the input. */
static int skip_empty_lines(csv_t *c)
{
    for (;;) {
        int ch = peek(c);
        if (ch < 0) return 0;
        if (ch != '\n' && ch != '\r') return 1;
        c->pos++;
        end_of_line(c, ch);
    }
}

/* Points the row's fields into rec (rec does not move after the record is complete). */
static void fill_row(csv_t *c, csv_row_t *row)
{
    c->fields = xrealloc(c->fields, c->nstarts * sizeof *c->fields);
    c->lens = xrealloc(c->lens, c->nstarts * sizeof *c->lens);
    for (size_t i = 0; i < c->nstarts; i++) {
        c->fields[i] = c->rec.data + c->starts[i];
        c->lens[i] = strlen(c->fields[i]);
    }
    row->field = c->fields;
    row->len = c->lens;
    row->n = (int)c->nstarts;
}

int csv_next(csv_t *c, csv_row_t *row)
{
    memset(row, 0, sizeof *row);
    buf_reset(&c->rec);
    c->nstarts = 0;
    c->error = NULL;
    if (!skip_empty_lines(c)) return c->err ? -1 : 0;
    row->line = c->line;
    buf_reserve(&c->rec, 256);
    read_record(c);
    if (c->err) return -1;
    fill_row(c, row);
    row->end_line = c->end_line;
    row->error = c->error;
    return 1;
}

off_t csv_offset(const csv_t *c)
{
    return c->base + (off_t)c->pos;
}

long csv_line(const csv_t *c)
{
    return c->line;
}

int csv_seek(csv_t *c, off_t offset, long line)
{
    if (fseeko(c->f, offset, SEEK_SET) != 0) return -1;
    c->base = offset;
    c->pos = c->end = 0;
    c->eof = c->err = 0;
    c->started = 1;
    c->line = line;
    return 0;
}

int csv_errno(const csv_t *c)
{
    return c->err;
}

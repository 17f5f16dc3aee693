/* sqlsplit — cuts a migration file into its top-level SQL statements, as psql does, so each is
 * sent as a query of its own. Why: with the whole file in one query, every statement's query
 * string is the whole file, and Citus forwards some DDL by that string (CREATE INDEX on a
 * distributed table goes to the workers as the file's text: "cannot insert multiple commands
 * into a prepared statement"). The splitter owns nothing: it returns offsets into the caller's
 * text. */
#ifndef CIRCA_SQLSPLIT_H
#define CIRCA_SQLSPLIT_H
#include <stddef.h>

/* One statement: text[start, end) holds it without its terminating ';' (leading blanks and
 * comments are skipped); line is the 1-based line of start. */
typedef struct {
    size_t start;
    size_t end;
    long line;
} sqlsplit_stmt_t;

typedef struct {
    const char *text;
    size_t len;
    size_t pos;
    long line;
} sqlsplit_t;

void sqlsplit_init(sqlsplit_t *s, const char *text, size_t len);

/* The next statement: 1, or 0 when only blanks and comments are left. A ';' ends a statement
 * unless it is inside a string ('…', E'…', "…"), a dollar-quoted body ($tag$…$tag$), a comment
 * (-- or nested slash-star) or parentheses; an unterminated quote or comment runs to the end
 * of the text, as the server would then report. */
int sqlsplit_next(sqlsplit_t *s, sqlsplit_stmt_t *out);

#endif

/* sqlsplit — top-level SQL statements of a migration file (see sqlsplit.h). */
#include "sqlsplit.h"

#include <string.h>

static int ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$' || c >= 0x80;
}

static int tag_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static long newlines(const char *t, size_t from, size_t to)
{
    long n = 0;
    for (size_t i = from; i < to; i++) n += t[i] == '\n';
    return n;
}

/* Past a comment starting at i ("--" or a nested slash-star one); i itself if none starts there. */
static size_t skip_comment(const char *t, size_t len, size_t i)
{
    if (i + 1 < len && t[i] == '-' && t[i + 1] == '-') {
        while (i < len && t[i] != '\n') i++;
        return i;
    }
    if (i + 1 < len && t[i] == '/' && t[i + 1] == '*') {
        int depth = 0;
        while (i < len) {
            if (i + 1 < len && t[i] == '/' && t[i + 1] == '*') {
                depth++;
                i += 2;
            } else if (i + 1 < len && t[i] == '*' && t[i + 1] == '/') {
                i += 2;
                if (--depth == 0) return i;
            } else {
                i++;
            }
        }
    }
    return i;
}

/* Past a quoted token opening at i with quote q ('\'' or '"'); backslash escapes when esc. */
static size_t skip_quoted(const char *t, size_t len, size_t i, char q, int esc)
{
    for (i++; i < len; i++) {
        if (esc && t[i] == '\\') {
            i++;
        } else if (t[i] == q) {
            if (i + 1 < len && t[i + 1] == q) i++;   /* a doubled quote stays inside */
            else return i + 1;
        }
    }
    return len;
}

/* Length of a dollar-quote tag ("$$", "$body$") opening at i, or 0 when none does. */
static size_t dollar_tag(const char *t, size_t len, size_t i)
{
    size_t j = i + 1;
    if (j < len && tag_start((unsigned char)t[j])) {
        while (j < len && ident_char((unsigned char)t[j]) && t[j] != '$') j++;
    }
    return j < len && t[j] == '$' ? j + 1 - i : 0;
}

/* Past the token at i that may hide a ';' (comment, string, dollar body), or i + 1. */
static size_t skip_token(const char *t, size_t len, size_t i)
{
    unsigned char c = (unsigned char)t[i];
    unsigned char prev = i > 0 ? (unsigned char)t[i - 1] : ' ';
    size_t j = skip_comment(t, len, i);
    if (j != i) return j;
    if (c == '\'') {
        /* E'…' takes backslash escapes; the E must be a token of its own, not an identifier's end. */
        int esc = (prev == 'E' || prev == 'e') && !(i > 1 && ident_char((unsigned char)t[i - 2]));
        return skip_quoted(t, len, i, '\'', esc);
    }
    if (c == '"') return skip_quoted(t, len, i, '"', 0);
    if (c == '$' && !ident_char(prev)) {
        size_t tag = dollar_tag(t, len, i);
        if (tag > 0) {
            for (j = i + tag; j + tag <= len; j++) {
                if (memcmp(t + j, t + i, tag) == 0) return j + tag;
            }
            return len;
        }
    }
    return i + 1;
}

void sqlsplit_init(sqlsplit_t *s, const char *text, size_t len)
{
    s->text = text;
    s->len = len;
    s->pos = 0;
    s->line = 1;
}

int sqlsplit_next(sqlsplit_t *s, sqlsplit_stmt_t *out)
{
    const char *t = s->text;
    size_t len = s->len, i = s->pos, j;
    /* Blanks, comments and empty statements before the next one. */
    while (i < len) {
        if (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r' || t[i] == '\f' || t[i] == ';')
            i++;
        else if ((j = skip_comment(t, len, i)) != i)
            i = j;
        else
            break;
    }
    s->line += newlines(t, s->pos, i);
    s->pos = i;
    if (i >= len) return 0;
    size_t start = i;
    int depth = 0;
    while (i < len && !(t[i] == ';' && depth == 0)) {
        if (t[i] == '(') depth++;
        else if (t[i] == ')' && depth > 0) depth--;
        i = skip_token(t, len, i);
    }
    out->start = start;
    out->end = i;
    out->line = s->line;
    s->line += newlines(t, start, i);
    s->pos = i < len ? i + 1 : len;
    return 1;
}

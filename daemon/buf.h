/* buf — a growable byte buffer, the one string builder every module uses. */
#ifndef CIRCA_BUF_H
#define CIRCA_BUF_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* The caller owns the struct; buf_free releases data. data is always NUL-terminated
 * (when non-NULL) so it can be read as a C string. Allocation failure aborts: a daemon
 * that cannot allocate a few bytes cannot answer anyone usefully. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

void buf_init(buf_t *b);
void buf_free(buf_t *b);
void buf_reset(buf_t *b);                   /* len = 0, keeps the memory */
void buf_reserve(buf_t *b, size_t extra);   /* room for extra more bytes */
void buf_append(buf_t *b, const void *p, size_t n);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s (n bytes of UTF-8) as a quoted JSON string, escaping as RFC 8785 does. */
void buf_json_str(buf_t *b, const char *s, size_t n);
void buf_put_be16(buf_t *b, uint16_t v);
void buf_put_be32(buf_t *b, uint32_t v);
void buf_put_be64(buf_t *b, uint64_t v);
/* Hands data to the caller (who frees it with free()); b is left empty. */
char *buf_steal(buf_t *b);

/* Allocation helpers that abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif

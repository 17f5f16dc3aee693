/* problem — builds RFC 9457 application/problem+json bodies and sends them. */
#include "problem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void put_error(buf_t *b, const errlist_item_t *it)
{
    buf_putc(b, '{');
    if (it->index >= 0) buf_printf(b, "\"index\":%d,", it->index);
    buf_puts(b, "\"field\":");
    buf_json_str(b, it->field, strlen(it->field));
    buf_puts(b, ",\"message\":");
    buf_json_str(b, it->message, strlen(it->message));
    buf_putc(b, '}');
}

void problem_json(buf_t *out, int status, const char *type_slug, const char *title,
                  const errlist_t *errs, const char *detail)
{
    buf_puts(out, "{\"type\":");
    buf_t type = BUF_INIT;
    buf_printf(&type, "/problems/%s", type_slug);
    buf_json_str(out, type.data, type.len);
    buf_free(&type);
    buf_puts(out, ",\"title\":");
    buf_json_str(out, title, strlen(title));
    buf_printf(out, ",\"status\":%d", status);
    if (detail) {
        buf_puts(out, ",\"detail\":");
        buf_json_str(out, detail, strlen(detail));
    }
    if (errs) {
        buf_puts(out, ",\"errors\":[");
        for (size_t i = 0; i < errs->n; i++) {
            if (i) buf_putc(out, ',');
            put_error(out, &errs->items[i]);
        }
        buf_putc(out, ']');
    }
    buf_putc(out, '}');
}

static void send_problem(http_req_t *req, int status, const char *slug, const char *title,
                         const char *extra, const errlist_t *errs, const char *fmt, va_list ap)
{
    char text[1024]; /* details are one sentence; a longer one is cut, not lost entirely */
    vsnprintf(text, sizeof text, fmt, ap);
    buf_t detail = BUF_INIT;
    buf_puts(&detail, text);
    /* Errors past ERRLIST_MAX were counted, not kept: the client must know the list is short. */
    if (errs && errs->dropped > 0)
        buf_printf(&detail, "%s%zu more errors not listed", detail.len ? "; " : "",
                   errs->dropped);
    buf_t body = BUF_INIT;
    problem_json(&body, status, slug, title, errs, detail.len ? detail.data : NULL);
    buf_free(&detail);
    size_t len = body.len;
    http_respond_owned(req, status, "application/problem+json", buf_steal(&body), len, extra);
}

void problem_send(http_req_t *req, int status, const char *type_slug, const char *title,
                  const char *extra_headers, const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    send_problem(req, status, type_slug, title, extra_headers, NULL, detail_fmt, ap);
    va_end(ap);
}

void problem_send_errors(http_req_t *req, int status, const char *type_slug, const char *title,
                         const errlist_t *errs, const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    send_problem(req, status, type_slug, title, NULL, errs, detail_fmt, ap);
    va_end(ap);
}

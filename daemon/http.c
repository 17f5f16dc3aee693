/* http — HTTP/1.1 connections on libuv and http-parser: one request at a time per connection,
 * limits, timeouts, answers in request order, one log line per answer. */
#include "http.h"
#include "buf.h"
#include "log.h"
#include "problem.h"

#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A connection's life. The state says which timer runs and whether input is parsed:
 *   IDLE     waiting for a request          idle timer       parse input
 *   READING  request started, not complete  request timer    parse input
 *   HANDLING request with the handler       none             buffer input only
 *   DRAINING last answer queued, shutdown   linger timer     discard input
 *   CLOSING  uv_close called                 -                -
 *   CLOSED   handles closed; the struct waits for the outstanding request's http_respond */
typedef enum { CONN_IDLE, CONN_READING, CONN_HANDLING, CONN_DRAINING, CONN_CLOSING,
               CONN_CLOSED } conn_state_t;
static const char *state_names[] = {"idle", "reading", "handling", "draining", "closing",
                                    "closed"};

#define READ_CHUNK 65536
#define LINGER_MS 1000
#define REQ_ID_MAX 128

typedef struct conn conn_t;

typedef struct blk { struct blk *next; max_align_t data[]; } blk_t;

struct http_req {
    conn_t *conn;
    buf_t url, hdrs, body;     /* hdrs: "name\0value\0" pairs */
    int hdr_last;              /* 0 nothing yet, 1 field, 2 value: http-parser splits them */
    size_t val_off, hdr_bytes;
    const char *method, *path, *query;
    char id[REQ_ID_MAX + 1];
    int keep_alive, http10;
    uint64_t start_ns;
    size_t bytes_in;
    char *tenant, *route;
    long events;
    int has_events;
    void *data;
    blk_t *blocks;
};

struct conn {
    uv_tcp_t tcp;              /* first: the handle's address is the struct's */
    uv_timer_t timer;
    uv_shutdown_t shut;
    http_parser parser;
    http_server_t *srv;
    conn_t *prev, *next;
    conn_state_t state;
    int handles_open, reading, in_process;
    buf_t in;                  /* received, not yet parsed from in_off */
    size_t in_off, raw_in;
    http_req_t *cur, *active;  /* being parsed / with the handler */
    int fail_status;           /* set by parser callbacks to answer with an error */
    const char *fail_detail;
    unsigned long id;
};

struct http_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    http_limits_t lim;
    http_handler_fn fn;
    void *ud;
    conn_t *conns;
    size_t nopen, nalive;      /* sockets open / structs alive (stop waits for these) */
    int stopping, listener_closed;
    void (*done)(void *);
    void *done_arg;
    http_stats_t stats;
    unsigned long next_id;
    http_observer_fn observe;
    void *observe_ud;
};

typedef struct {
    uv_write_t req;
    conn_t *conn;
    buf_t head;
    char *owned;
} wreq_t;

static http_parser_settings settings;
static void conn_process(conn_t *c);
static void conn_close(conn_t *c, const char *reason);
static void conn_fail(conn_t *c, int status, const char *slug, const char *title,
                      const char *detail);
static void respond(http_req_t *r, int status, const char *ctype, const char *body, size_t len,
                    char *owned, const char *extra);

void http_limits_default(http_limits_t *lim)
{
    lim->max_header_bytes = 16 * 1024;
    lim->max_body_bytes = 8 * 1024 * 1024;
    lim->idle_timeout_ms = 60000;
    lim->request_timeout_ms = 30000;
    lim->max_connections = 4096;
}

/* ---- requests ---- */

static http_req_t *req_new(conn_t *c)
{
    http_req_t *r = xcalloc(1, sizeof *r);
    r->conn = c;
    r->method = "";
    r->path = "";
    r->query = "";
    r->start_ns = uv_hrtime();
    return r;
}

static void req_free(http_req_t *r)
{
    if (!r) return;
    buf_free(&r->url);
    buf_free(&r->hdrs);
    buf_free(&r->body);
    free(r->tenant);
    free(r->route);
    while (r->blocks) {
        blk_t *b = r->blocks;
        r->blocks = b->next;
        free(b);
    }
    free(r);
}

static void req_gen_id(http_req_t *r)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[8];
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
        uint64_t v = uv_hrtime() ^ (uint64_t)(uintptr_t)r;
        memcpy(rnd, &v, sizeof rnd);
    }
    for (size_t i = 0; i < sizeof rnd; i++) {
        r->id[2 * i] = hex[rnd[i] >> 4];
        r->id[2 * i + 1] = hex[rnd[i] & 15];
    }
    r->id[2 * sizeof rnd] = '\0';
}

/* A client's id is echoed in a header and logged, so only short printable ASCII is kept. */
static void req_set_id(http_req_t *r, const char *sent)
{
    size_t n = sent ? strlen(sent) : 0;
    int ok = n > 0 && n <= REQ_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = sent[i] >= 0x20 && sent[i] < 0x7f;
    if (!ok) {
        req_gen_id(r);
        return;
    }
    memcpy(r->id, sent, n + 1);
}

/* Splits the request target into path and query, in place in r->url. */
static int req_split_target(http_req_t *r)
{
    char *u = r->url.data ? r->url.data : "";
    if (u[0] == '/' || strcmp(u, "*") == 0) {
        char *hash = strchr(u, '#');
        if (hash) *hash = '\0';
        char *q = strchr(u, '?');
        if (q) *q++ = '\0';
        r->path = u;
        r->query = q ? q : "";
        return 0;
    }
    struct http_parser_url pu;
    http_parser_url_init(&pu);
    if (http_parser_parse_url(u, r->url.len, 0, &pu) != 0) return -1;
    buf_t t = BUF_INIT;
    if (pu.field_set & (1 << UF_PATH))
        buf_append(&t, u + pu.field_data[UF_PATH].off, pu.field_data[UF_PATH].len);
    else
        buf_putc(&t, '/');
    size_t qoff = t.len + 1;
    buf_putc(&t, '\0');
    if (pu.field_set & (1 << UF_QUERY))
        buf_append(&t, u + pu.field_data[UF_QUERY].off, pu.field_data[UF_QUERY].len);
    buf_free(&r->url);
    r->url = t;
    r->path = t.data;
    r->query = t.data + qoff;
    return 0;
}

/* Ends the header value being collected: NUL-terminated, trailing blanks dropped. */
static void req_end_value(http_req_t *r)
{
    while (r->hdrs.len > r->val_off &&
           (r->hdrs.data[r->hdrs.len - 1] == ' ' || r->hdrs.data[r->hdrs.len - 1] == '\t'))
        r->hdrs.len--;
    buf_putc(&r->hdrs, '\0');
}

/* ---- parser callbacks: they collect the request and flag limit breaches ---- */

static int fail_cb(conn_t *c, int status, const char *detail)
{
    c->fail_status = status;
    c->fail_detail = detail;
    return -1;
}

static int count_header_bytes(conn_t *c, size_t n)
{
    http_req_t *r = c->cur;
    r->hdr_bytes += n;
    if (r->hdr_bytes > c->srv->lim.max_header_bytes)
        return fail_cb(c, 431, "request line and headers exceed the limit");
    return 0;
}

static void conn_set_state(conn_t *c, conn_state_t s);

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    c->cur = req_new(c);
    c->cur->hdr_bytes = 16; /* method, version and line ends, roughly */
    conn_set_state(c, CONN_READING);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    buf_append(&c->cur->url, at, n);
    return count_header_bytes(c, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    http_req_t *r = c->cur;
    if (r->hdr_last == 2) req_end_value(r);
    if (r->hdr_last != 1 && count_header_bytes(c, 4)) return -1;
    r->hdr_last = 1;
    buf_append(&r->hdrs, at, n);
    return count_header_bytes(c, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    http_req_t *r = c->cur;
    if (r->hdr_last == 1) {
        buf_putc(&r->hdrs, '\0');
        r->val_off = r->hdrs.len;
    }
    r->hdr_last = 2;
    buf_append(&r->hdrs, at, n);
    return count_header_bytes(c, n);
}

static void send_continue(conn_t *c);

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    http_req_t *r = c->cur;
    if (r->hdr_last == 2) req_end_value(r);
    r->hdr_last = 0;
    r->method = http_method_str((enum http_method)p->method);
    r->keep_alive = http_should_keep_alive(p);
    r->http10 = p->http_major == 1 && p->http_minor == 0;
    req_set_id(r, http_req_header(r, "X-Request-Id"));
    if (req_split_target(r) != 0) return fail_cb(c, 400, "invalid request target");
    int has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
    if (has_length && p->content_length > c->srv->lim.max_body_bytes)
        return fail_cb(c, 413, "Content-Length exceeds the body limit");
    if (has_length) buf_reserve(&r->body, (size_t)p->content_length);
    const char *expect = http_req_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !r->http10) send_continue(c);
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    conn_t *c = p->data;
    /* Refuse a chunk that would cross the limit before reading it. */
    if (p->content_length > c->srv->lim.max_body_bytes - c->cur->body.len)
        return fail_cb(c, 413, "chunked body exceeds the body limit");
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (n > c->srv->lim.max_body_bytes - c->cur->body.len)
        return fail_cb(c, 413, "body exceeds the body limit");
    buf_append(&c->cur->body, at, n);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    c->active = c->cur;
    c->cur = NULL;
    /* One request at a time: the rest of the input waits until this one is answered. */
    http_parser_pause(p, 1);
    return 0;
}

static http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- connection state, timers, closing ---- */

static void on_timer(uv_timer_t *t);

static void timer_run(conn_t *c, unsigned ms)
{
    uv_timer_start(&c->timer, on_timer, ms ? ms : 1, 0);
}

/* The one place a connection changes state; it also arms the matching timer. */
static void conn_set_state(conn_t *c, conn_state_t s)
{
    if (c->state >= CONN_CLOSING && s < c->state) {
        log_msg(LOG_ERROR, "conn %lu: refused transition %s -> %s", c->id,
                state_names[c->state], state_names[s]);
        return;
    }
    if (log_enabled(LOG_DEBUG) && c->state != s)
        log_msg(LOG_DEBUG, "conn %lu: %s -> %s", c->id, state_names[c->state], state_names[s]);
    c->state = s;
    const http_limits_t *lim = &c->srv->lim;
    switch (s) {
    case CONN_IDLE: timer_run(c, lim->idle_timeout_ms); break;
    case CONN_READING: timer_run(c, lim->request_timeout_ms); break;
    case CONN_DRAINING: timer_run(c, lim->request_timeout_ms); break;
    default: uv_timer_stop(&c->timer); break;
    }
}

static void server_maybe_done(http_server_t *s)
{
    if (!s->stopping || !s->listener_closed || s->nalive > 0) return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s);
    if (done) done(arg);
}

static void conn_free(conn_t *c)
{
    http_server_t *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nalive--;
    req_free(c->cur);
    buf_free(&c->in);
    free(c);
    server_maybe_done(s);
}

static void on_handle_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles_open > 0) return;
    c->state = CONN_CLOSED;
    /* A request still with its handler keeps the struct until its http_respond. */
    if (!c->active) conn_free(c);
}

static void conn_close(conn_t *c, const char *reason)
{
    if (c->state >= CONN_CLOSING) return;
    log_msg(LOG_DEBUG, "conn %lu: closing: %s", c->id, reason);
    conn_set_state(c, CONN_CLOSING);
    c->srv->nopen--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_close);
    uv_close((uv_handle_t *)&c->timer, on_handle_close);
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    switch (c->state) {
    case CONN_IDLE:
        c->srv->stats.closed_idle++;
        conn_close(c, "idle timeout");
        break;
    case CONN_READING:
        c->srv->stats.closed_slow++;
        conn_fail(c, 408, "request-timeout", "Request Timeout",
                  "the request did not arrive in time");
        break;
    default:
        conn_close(c, "linger over");
        break;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (c->state != CONN_DRAINING) return;
    if (status < 0) {
        conn_close(c, "shutdown failed");
        return;
    }
    /* Read what the client still sends for a moment, so an unread body does not turn our
     * close into a reset that destroys the answer before the client reads it. */
    unsigned ms = c->srv->lim.request_timeout_ms;
    timer_run(c, ms < LINGER_MS ? ms : LINGER_MS);
}

static void conn_drain(conn_t *c)
{
    conn_set_state(c, CONN_DRAINING);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c, "shutdown failed");
}

/* ---- input ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    conn_t *c = h->data;
    if (c->state == CONN_DRAINING) buf_reset(&c->in), c->in_off = 0;
    buf_reserve(&c->in, READ_CHUNK);
    *out = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = st->data;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "client closed" : uv_strerror((int)nread));
        return;
    }
    c->in.len += (size_t)nread;
    if (c->in.data) c->in.data[c->in.len] = '\0';
    if (c->state == CONN_DRAINING) return;
    /* While a request is with its handler, buffer a bounded amount of what follows. */
    size_t cap = c->srv->lim.max_header_bytes + READ_CHUNK;
    if (c->state == CONN_HANDLING && c->in.len - c->in_off > cap) {
        uv_read_stop(st);
        c->reading = 0;
    }
    conn_process(c);
}

static void conn_read_start(conn_t *c)
{
    if (c->reading || c->state >= CONN_CLOSING) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void conn_dispatch(conn_t *c)
{
    http_req_t *r = c->active;
    r->bytes_in = c->raw_in;
    c->raw_in = 0;
    c->srv->stats.requests++;
    conn_set_state(c, CONN_HANDLING);
    c->srv->fn(r, c->srv->ud);
}

static void conn_parse_error(conn_t *c)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->fail_status == 413)
        conn_fail(c, 413, "payload-too-large", "Payload Too Large", c->fail_detail);
    else if (c->fail_status == 431 || e == HPE_HEADER_OVERFLOW)
        conn_fail(c, 431, "header-too-large", "Request Header Fields Too Large",
                  c->fail_detail ? c->fail_detail : "request line and headers exceed the limit");
    else
        conn_fail(c, 400, "bad-request", "Bad Request",
                  c->fail_detail ? c->fail_detail : http_errno_description(e));
}

/* Parses buffered input while no request is with a handler. A handler that answers at once
 * re-enters through http_respond; the guard turns that into another turn of this loop. */
static void conn_process(conn_t *c)
{
    if (c->in_process) return;
    c->in_process = 1;
    while ((c->state == CONN_IDLE || c->state == CONN_READING) && c->in_off < c->in.len) {
        size_t n = http_parser_execute(&c->parser, &settings, c->in.data + c->in_off,
                                       c->in.len - c->in_off);
        c->in_off += n;
        c->raw_in += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
        } else if (e != HPE_OK || c->fail_status) {
            conn_parse_error(c);
        }
    }
    if (c->in_off > 0 && c->state < CONN_DRAINING) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (c->state == CONN_IDLE || c->state == CONN_READING) conn_read_start(c);
    c->in_process = 0;
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    if (status < 0 && w->conn->state < CONN_CLOSING) conn_close(w->conn, uv_strerror(status));
    buf_free(&w->head);
    free(w->owned);
    free(w);
}

/* Queues head (taken over) and an owned body (may be NULL) with one uv_write. */
static void conn_write(conn_t *c, buf_t *head, char *owned, size_t olen)
{
    wreq_t *w = xcalloc(1, sizeof *w);
    w->conn = c;
    w->head = *head;
    buf_init(head);
    w->owned = owned;
    uv_buf_t bufs[2] = {uv_buf_init(w->head.data, (unsigned)w->head.len),
                        uv_buf_init(owned, (unsigned)olen)};
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, owned && olen ? 2 : 1, on_write);
    if (rc < 0) {
        buf_free(&w->head);
        free(w->owned);
        free(w);
        conn_close(c, uv_strerror(rc));
    }
}

static void send_continue(conn_t *c)
{
    buf_t head = BUF_INIT;
    buf_puts(&head, "HTTP/1.1 100 Continue\r\n\r\n");
    conn_write(c, &head, NULL, 0);
}

static void conn_fail(conn_t *c, int status, const char *slug, const char *title,
                      const char *detail)
{
    http_req_t *r = c->cur ? c->cur : req_new(c);
    c->cur = NULL;
    if (!r->id[0]) req_gen_id(r);
    r->keep_alive = 0;
    r->bytes_in = c->raw_in;
    c->raw_in = 0;
    c->active = r;
    if (status == 413 || status == 431) c->srv->stats.closed_limit++;
    conn_set_state(c, CONN_HANDLING);
    buf_t body = BUF_INIT;
    problem_json(&body, status, slug, title, NULL, detail);
    size_t len = body.len;
    respond(r, status, "application/problem+json", NULL, len, buf_steal(&body), NULL);
}

static void log_request(const http_req_t *r, int status, size_t bytes_out, int dropped)
{
    http_server_t *srv = r->conn->srv;
    if (srv->observe)
        srv->observe(r->route ? r->route : "other", status,
                     (double)(uv_hrtime() - r->start_ns) / 1e6, srv->observe_ud);
    if (!log_enabled(LOG_INFO)) return;
    buf_t f = BUF_INIT;
    const char *route = r->route ? r->route : r->path;
    buf_puts(&f, "\"request_id\":");
    buf_json_str(&f, r->id, strlen(r->id));
    buf_puts(&f, ",\"method\":");
    buf_json_str(&f, r->method, strlen(r->method));
    buf_puts(&f, ",\"route\":");
    buf_json_str(&f, route, strlen(route));
    buf_printf(&f, ",\"status\":%d,\"latency_ms\":%.3f,\"bytes_in\":%zu,\"bytes_out\":%zu",
               status, (double)(uv_hrtime() - r->start_ns) / 1e6, r->bytes_in, bytes_out);
    if (r->tenant) {
        buf_puts(&f, ",\"tenant\":");
        buf_json_str(&f, r->tenant, strlen(r->tenant));
    }
    if (r->has_events) buf_printf(&f, ",\"events\":%ld", r->events);
    if (dropped) buf_puts(&f, ",\"client_gone\":true");
    log_fields(LOG_INFO, "request", f.data);
    buf_free(&f);
}

static void build_head(buf_t *h, const http_req_t *r, int status, const char *ctype, size_t len,
                       const char *extra, int keep)
{
    const char *reason = http_status_str((enum http_status)status);
    buf_printf(h, "HTTP/1.1 %d %s\r\n", status, strcmp(reason, "<unknown>") ? reason : "Status");
    if (ctype) buf_printf(h, "Content-Type: %s\r\n", ctype);
    buf_printf(h, "Content-Length: %zu\r\nX-Request-Id: %s\r\n", len, r->id);
    if (extra) buf_puts(h, extra);
    if (!keep) buf_puts(h, "Connection: close\r\n");
    else if (r->http10) buf_puts(h, "Connection: keep-alive\r\n");
    buf_puts(h, "\r\n");
}

/* Body is either borrowed (body) and copied, or owned and freed after the write. */
static void respond(http_req_t *r, int status, const char *ctype, const char *body, size_t len,
                    char *owned, const char *extra)
{
    conn_t *c = r->conn;
    if (c->active != r) {
        log_msg(LOG_ERROR, "http_respond on a request that is not outstanding");
        free(owned);
        return;
    }
    c->active = NULL;
    if (c->state != CONN_HANDLING) { /* the client went away: drop the answer */
        log_request(r, status, 0, 1);
        free(owned);
        req_free(r);
        if (c->state == CONN_CLOSED) conn_free(c);
        return;
    }
    int keep = r->keep_alive && !c->srv->stopping;
    int head_only = strcmp(r->method, "HEAD") == 0;
    buf_t head = BUF_INIT;
    build_head(&head, r, status, ctype, len, extra, keep);
    log_request(r, status, head.len + (head_only ? 0 : len), 0);
    if (!head_only && !owned && len) buf_append(&head, body, len);
    conn_write(c, &head, head_only ? NULL : owned, len);
    if (head_only) free(owned);
    req_free(r);
    if (c->state != CONN_HANDLING) return; /* the write failed */
    if (!keep) {
        conn_drain(c);
        return;
    }
    conn_set_state(c, CONN_IDLE);
    conn_process(c);
}

void http_respond(http_req_t *r, int status, const char *content_type, const char *body,
                  size_t len, const char *extra_headers)
{
    respond(r, status, content_type, body, len, NULL, extra_headers);
}

void http_respond_owned(http_req_t *r, int status, const char *content_type, char *body,
                        size_t len, const char *extra_headers)
{
    if (!body || !len) {
        free(body);
        respond(r, status, content_type, NULL, 0, NULL, extra_headers);
        return;
    }
    respond(r, status, content_type, NULL, len, body, extra_headers);
}

/* ---- server ---- */

static conn_t *conn_new(http_server_t *s)
{
    conn_t *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->id = ++s->next_id;
    c->state = CONN_IDLE;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nalive++;
    s->nopen++;
    return c;
}

static void on_connection(uv_stream_t *l, int status)
{
    http_server_t *s = l->data;
    if (status < 0) {
        log_msg(LOG_WARN, "http: accept: %s", uv_strerror(status));
        return;
    }
    conn_t *c = conn_new(s);
    int rc = uv_accept(l, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    if (s->nopen > s->lim.max_connections) {
        s->stats.closed_limit++;
        conn_close(c, "too many connections");
        return;
    }
    s->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1); /* answers are single writes; Nagle would only delay them */
    conn_set_state(c, CONN_IDLE);
    conn_read_start(c);
}

static void on_listener_close(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->listener_closed = 1;
    server_maybe_done(s);
}

static int bind_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (strchr(host, ':')) return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

int http_server_start(uv_loop_t *loop, const char *host, int port, const http_limits_t *lim,
                      http_handler_fn fn, void *ud, http_server_t **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int rc = bind_addr(host, port, &ss);
    if (rc < 0) {
        snprintf(err, errlen, "bad listen address %s: %s", host, uv_strerror(rc));
        return rc;
    }
    http_server_t *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    if (lim) s->lim = *lim;
    else http_limits_default(&s->lim);
    s->fn = fn;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", host, port, uv_strerror(rc));
        s->stopping = 1; /* freed by the close callback */
        uv_close((uv_handle_t *)&s->listener, on_listener_close);
        return rc;
    }
    *out = s;
    return 0;
}

int http_server_port(const http_server_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void http_server_stop(http_server_t *s, void (*done)(void *arg), void *arg)
{
    s->stopping = 1;
    s->done = done;
    s->done_arg = arg;
    for (conn_t *c = s->conns, *next; c; c = next) {
        next = c->next; /* a closed conn is only freed later, in its close callback */
        /* A request with its handler is answered with Connection: close, then closed. */
        if (c->state == CONN_IDLE || c->state == CONN_READING) conn_close(c, "server stopping");
    }
    uv_close((uv_handle_t *)&s->listener, on_listener_close);
}

size_t http_server_connections(const http_server_t *s)
{
    return s->nopen;
}

void http_server_observe(http_server_t *s, http_observer_fn fn, void *ud)
{
    s->observe = fn;
    s->observe_ud = ud;
}

void http_server_stats(const http_server_t *s, http_stats_t *out)
{
    *out = s->stats;
}

/* ---- request accessors ---- */

const char *http_req_method(const http_req_t *r) { return r->method; }
const char *http_req_path(const http_req_t *r) { return r->path; }
const char *http_req_query(const http_req_t *r) { return r->query; }
const char *http_req_id(const http_req_t *r) { return r->id; }
void http_req_set_data(http_req_t *r, void *data) { r->data = data; }
void *http_req_data(const http_req_t *r) { return r->data; }

const char *http_req_header(const http_req_t *r, const char *name)
{
    const char *p = r->hdrs.data, *end = p + r->hdrs.len;
    while (p && p < end) {
        const char *val = p + strlen(p) + 1;
        if (val >= end) break;
        if (strcasecmp(p, name) == 0) return val;
        p = val + strlen(val) + 1;
    }
    return NULL;
}

const char *http_req_body(const http_req_t *r, size_t *len)
{
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

void http_req_log_tenant(http_req_t *r, const char *tenant)
{
    free(r->tenant);
    r->tenant = tenant ? xstrdup(tenant) : NULL;
}

void http_req_log_route(http_req_t *r, const char *route)
{
    free(r->route);
    r->route = route ? xstrdup(route) : NULL;
}

void http_req_log_events(http_req_t *r, long nevents)
{
    r->events = nevents;
    r->has_events = 1;
}

void *http_req_alloc(http_req_t *r, size_t n)
{
    blk_t *b = xmalloc(sizeof *b + n);
    b->next = r->blocks;
    r->blocks = b;
    return b->data;
}

/* ---- percent decoding ---- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int pct_decode(const char *in, size_t n, char *out, size_t outlen, int plus)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
            if (h < 0 || l < 0) return -1;
            ch = h * 16 + l;
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (ch == 0 || j + 1 >= outlen) return -1;
        out[j++] = (char)ch;
    }
    if (outlen == 0) return -1;
    out[j] = '\0';
    return (int)j;
}

int http_pct_decode(const char *in, size_t n, char *out, size_t outlen)
{
    return pct_decode(in, n, out, outlen, 0);
}

int http_query_get(const char *query, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    const char *p = query ? query : "";
    while (*p) {
        size_t seg = strcspn(p, "&");
        size_t nlen = strcspn(p, "=");
        if (nlen > seg) nlen = seg;
        char name[256];
        int dn = nlen < sizeof name ? pct_decode(p, nlen, name, sizeof name, 1) : -1;
        if (dn >= 0 && (size_t)dn == klen && memcmp(name, key, klen) == 0) {
            const char *v = nlen < seg ? p + nlen + 1 : p + seg;
            size_t vlen = (size_t)(p + seg - v);
            int rc = pct_decode(v, vlen, out, outlen, 1);
            return rc < 0 ? -2 : rc;
        }
        p += seg;
        if (*p == '&') p++;
    }
    return -1;
}

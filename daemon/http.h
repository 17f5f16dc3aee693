/* http — HTTP/1.1 server on libuv and nodejs' http-parser: keep-alive, pipelined requests
 * answered in order, limits on header and body size, idle and slow-client timeouts. */
#ifndef CIRCA_HTTP_H
#define CIRCA_HTTP_H
#include <stddef.h>
#include <uv.h>

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

/* Called once per complete request. The handler must eventually call http_respond exactly
 * once (now or later, from any loop callback). */
typedef void (*http_handler_fn)(http_req_t *req, void *ud);

typedef struct {
    size_t max_header_bytes;     /* request line + headers; default 16 KiB -> 431 */
    size_t max_body_bytes;       /* default 8 MiB -> 413 (problem+json) */
    unsigned idle_timeout_ms;    /* keep-alive connection with no request; default 60 s */
    unsigned request_timeout_ms; /* a started request must arrive whole; default 30 s -> 408 */
    unsigned max_connections;    /* default 4096; beyond it new connections are closed */
} http_limits_t;

void http_limits_default(http_limits_t *lim);

/* Listens on host:port. On error returns a negative libuv code and writes a message to err. */
int http_server_start(uv_loop_t *loop, const char *host, int port, const http_limits_t *lim,
                      http_handler_fn fn, void *ud, http_server_t **out, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int http_server_port(const http_server_t *s);
/* Stops accepting, closes idle connections, lets in-flight requests finish (their answers
 * are still sent), then frees the server and calls done. */
void http_server_stop(http_server_t *s, void (*done)(void *arg), void *arg);
size_t http_server_connections(const http_server_t *s);

/* Request accessors; the strings live until http_respond. */
const char *http_req_method(const http_req_t *r);   /* "GET", "POST", ... */
const char *http_req_path(const http_req_t *r);     /* raw path, no query: "/v1/events/a%2Fb" */
const char *http_req_query(const http_req_t *r);    /* raw query without '?', or "" */
const char *http_req_header(const http_req_t *r, const char *name); /* case-insensitive */
const char *http_req_body(const http_req_t *r, size_t *len);        /* NUL-terminated */
const char *http_req_id(const http_req_t *r);       /* X-Request-Id as sent, or generated */
/* Details for the request's log line, written when the answer goes out. */
void http_req_log_tenant(http_req_t *r, const char *tenant);
void http_req_log_route(http_req_t *r, const char *route);
void http_req_log_events(http_req_t *r, long nevents);
/* Per-request user slot, e.g. the router's route or the auth result. */
void http_req_set_data(http_req_t *r, void *data);
void *http_req_data(const http_req_t *r);
/* n bytes of memory freed with the request (at http_respond), e.g. the router's params. */
void *http_req_alloc(http_req_t *r, size_t n);

/* Sends the answer and frees the request. extra_headers is NULL or "Name: value\r\n..."
 * lines. If the client went away meanwhile the answer is dropped; the call is still
 * required, so every request is freed by exactly one http_respond. */
void http_respond(http_req_t *r, int status, const char *content_type, const char *body,
                  size_t len, const char *extra_headers);
/* Same as http_respond with body from a buf_t-like pointer that http takes over (free()d). */
void http_respond_owned(http_req_t *r, int status, const char *content_type, char *body,
                        size_t len, const char *extra_headers);

/* Query string helpers: value of key, percent-decoded ('+' is a space), into out.
 * Returns its length, -1 when absent, -2 when it does not fit or is badly encoded. */
int http_query_get(const char *query, const char *key, char *out, size_t outlen);
/* Percent-decodes n bytes of in into out (outlen >= n + 1). Returns length or -1. */
int http_pct_decode(const char *in, size_t n, char *out, size_t outlen);

/* Called for every answer, sent or dropped, with the route ("other" when none matched). */
typedef void (*http_observer_fn)(const char *route, int status, double latency_ms, void *ud);
void http_server_observe(http_server_t *s, http_observer_fn fn, void *ud);

/* Counters for /metrics. */
typedef struct {
    unsigned long long accepted, closed_idle, closed_slow, closed_limit, requests;
} http_stats_t;
void http_server_stats(const http_server_t *s, http_stats_t *out);

#endif

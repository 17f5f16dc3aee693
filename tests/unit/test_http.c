// uses: daemon/http daemon/problem daemon/buf daemon/log daemon/errlist
/* test_http — the HTTP door over real sockets: a server on the test's loop, a blocking client
 * in a thread; keep-alive, pipelining, limits, timeouts, disconnects, ids, logs, decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "errlist.h"
#include "http.h"
#include "problem.h"

#define NRESP 6
#define RESP_MAX 8192

typedef struct fx fx_t;
typedef void (*client_fn)(fx_t *fx);

struct fx {
    uv_loop_t loop;
    http_server_t *srv;
    uv_async_t async;
    int port, signalled, stopped;
    client_fn client;
    int handled;                /* handler calls, read by the client thread */
    int delayed_done, conns_at_delayed_respond;
    char resp[NRESP][RESP_MAX]; /* what the client read, in order */
    int eof[NRESP];             /* 1: the server closed the connection at that point */
    http_stats_t stats;
};

/* ---- the server side ---- */

typedef struct {
    uv_timer_t t;
    http_req_t *req;
    fx_t *fx;
    int until_closed, ticks;
} delay_t;

static void echo(http_req_t *req, int status)
{
    size_t blen;
    const char *body = http_req_body(req, &blen);
    const char *hdr = http_req_header(req, "x-test");
    buf_t b = BUF_INIT;
    buf_printf(&b, "%s %s query=%s body=%s hdr=%s", http_req_method(req), http_req_path(req),
               http_req_query(req), body, hdr ? hdr : "-");
    http_respond(req, status, "text/plain", b.data, b.len, NULL);
    buf_free(&b);
}

static void on_delay_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    delay_t *d = t->data;
    /* "until closed": wait (bounded) for the server to see the client go, then answer. */
    if (d->until_closed && http_server_connections(d->fx->srv) > 0 && ++d->ticks < 500) return;
    d->fx->conns_at_delayed_respond = (int)http_server_connections(d->fx->srv);
    d->fx->delayed_done = 1;
    echo(d->req, 200);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_delay_closed);
}

static void handler(http_req_t *req, void *ud)
{
    fx_t *fx = ud;
    __atomic_add_fetch(&fx->handled, 1, __ATOMIC_SEQ_CST);
    if (strcmp(http_req_path(req), "/delay") == 0) {
        delay_t *d = calloc(1, sizeof *d);
        d->req = req;
        d->fx = fx;
        d->until_closed = strstr(http_req_query(req), "until_closed") != NULL;
        uv_timer_init(&fx->loop, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, on_delay, d->until_closed ? 10 : 50, 10);
        return;
    }
    if (strcmp(http_req_path(req), "/problem") == 0) {
        errlist_t errs = ERRLIST_INIT;
        errlist_add(&errs, 3, "quantity.unit", "unknown unit '%s'", "to\"ns");
        errlist_add(&errs, -1, "", "batch too large");
        errs.dropped = 7;
        problem_send_errors(req, 422, "invalid-event", "Invalid event", &errs,
                            "%d of %d events are invalid", 2, 50);
        errlist_free(&errs);
        return;
    }
    if (strcmp(http_req_path(req), "/logme") == 0) {
        http_req_log_tenant(req, "t1");
        http_req_log_events(req, 3);
    }
    echo(req, 200);
}

static void on_stopped(void *arg)
{
    ((fx_t *)arg)->stopped = 1;
}

static void on_client_done(uv_async_t *a)
{
    fx_t *fx = a->data;
    http_server_stats(fx->srv, &fx->stats);
    http_server_stop(fx->srv, on_stopped, fx);
    uv_close((uv_handle_t *)a, NULL);
}

static void signal_done(fx_t *fx)
{
    if (fx->signalled) return;
    fx->signalled = 1;
    uv_async_send(&fx->async);
}

static void *client_thread(void *arg)
{
    fx_t *fx = arg;
    fx->client(fx);
    signal_done(fx);
    return NULL;
}

/* Runs client in a thread against a fresh server until it is done and everything is closed. */
static fx_t *run(const http_limits_t *lim, client_fn client)
{
    fx_t *fx = calloc(1, sizeof *fx);
    char err[256];
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(http_server_start(&fx->loop, "127.0.0.1", 0, lim, handler, fx, &fx->srv,
                                       err, sizeof err), 0);
    fx->port = http_server_port(fx->srv);
    assert_true(fx->port > 0);
    fx->client = client;
    uv_async_init(&fx->loop, &fx->async, on_client_done);
    fx->async.data = fx;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_thread, fx), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_true(fx->stopped);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    return fx;
}

static http_limits_t small_limits(void)
{
    http_limits_t lim;
    http_limits_default(&lim);
    lim.max_header_bytes = 1024;
    lim.max_body_bytes = 1024;
    lim.idle_timeout_ms = 2000;
    lim.request_timeout_ms = 2000;
    return lim;
}

/* ---- the client side (runs in the thread; records, never asserts) ---- */

typedef struct {
    int fd;
    char buf[RESP_MAX * 2];
    size_t len;
} cl_t;

static void cl_open(cl_t *c, int port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) perror("connect");
}

static void cl_send(cl_t *c, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return;
        off += (size_t)w;
    }
}

static int cl_fill(cl_t *c)
{
    if (c->len >= sizeof c->buf - 1) return 0;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
    if (n <= 0) return 0;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return 1;
}

/* Reads one answer (head and Content-Length body) into out; 0 when the server closed. */
static int cl_read(cl_t *c, char *out)
{
    char *end;
    while (!(c->buf[c->len] = '\0', end = strstr(c->buf, "\r\n\r\n")))
        if (!cl_fill(c)) return 0;
    size_t head = (size_t)(end + 4 - c->buf), body = 0;
    const char *cl = strcasestr(c->buf, "\r\nContent-Length: ");
    if (cl && cl < end) body = strtoul(cl + 18, NULL, 10);
    while (c->len < head + body)
        if (!cl_fill(c)) return 0;
    size_t n = head + body < RESP_MAX ? head + body : RESP_MAX - 1;
    memcpy(out, c->buf, n);
    out[n] = '\0';
    memmove(c->buf, c->buf + head + body, c->len - head - body);
    c->len -= head + body;
    return 1;
}

/* 1 when the server closed the connection with nothing more to read. */
static int cl_eof(cl_t *c)
{
    char x;
    return c->len == 0 && recv(c->fd, &x, 1, 0) == 0;
}

static void wait_handled(fx_t *fx, int n)
{
    for (int i = 0; i < 5000 && __atomic_load_n(&fx->handled, __ATOMIC_SEQ_CST) < n; i++)
        usleep(1000);
}

static void get_one(fx_t *fx, const char *request, int slot)
{
    cl_t c;
    cl_open(&c, fx->port);
    cl_send(&c, request);
    if (!cl_read(&c, fx->resp[slot])) fx->eof[slot] = 1;
    close(c.fd);
}

/* ---- tests ---- */

static void client_simple_get(fx_t *fx)
{
    get_one(fx, "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\n\r\n", 0);
}

static void simple_get(void **state)
{
    fx_t *fx = run(NULL, client_simple_get);
    const char *r = fx->resp[0];
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: text/plain\r\n"));
    const char *body = "GET /hello query=x=1 body= hdr=yes";
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(r, cl));
    assert_string_equal(strstr(r, "\r\n\r\n") + 4, body);
    /* No id sent: 16 generated hex characters. */
    const char *id = strstr(r, "X-Request-Id: ");
    assert_non_null(id);
    assert_int_equal(strspn(id + 14, "0123456789abcdef"), 16);
    assert_int_equal(fx->stats.accepted, 1);
    assert_int_equal(fx->stats.requests, 1);
    free(fx);
}

static void client_post(fx_t *fx)
{
    get_one(fx, "POST /things HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world", 0);
}

static void post_with_body(void **state)
{
    fx_t *fx = run(NULL, client_post);
    assert_non_null(strstr(fx->resp[0], "\r\n\r\nPOST /things query= body=hello world hdr=-"));
    free(fx);
}

static void client_keepalive(fx_t *fx)
{
    cl_t c;
    cl_open(&c, fx->port);
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /k%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        cl_send(&c, req);
        if (!cl_read(&c, fx->resp[i])) fx->eof[i] = 1;
    }
    close(c.fd);
}

static void keep_alive_three_requests(void **state)
{
    fx_t *fx = run(NULL, client_keepalive);
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "\r\n\r\nGET /k%d ", i);
        assert_false(fx->eof[i]);
        assert_non_null(strstr(fx->resp[i], want));
        assert_null(strstr(fx->resp[i], "Connection: close"));
    }
    assert_int_equal(fx->stats.accepted, 1);
    assert_int_equal(fx->stats.requests, 3);
    free(fx);
}

static void client_pipeline(fx_t *fx)
{
    cl_t c;
    cl_open(&c, fx->port);
    /* The first answer comes from a timer, later than the others could: order must hold. */
    cl_send(&c, "GET /delay HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nbb"
                "GET /c HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 3; i++)
        if (!cl_read(&c, fx->resp[i])) fx->eof[i] = 1;
    close(c.fd);
}

static void pipelined_answers_in_order(void **state)
{
    fx_t *fx = run(NULL, client_pipeline);
    assert_non_null(strstr(fx->resp[0], "\r\n\r\nGET /delay "));
    assert_non_null(strstr(fx->resp[1], "\r\n\r\nPOST /b query= body=bb"));
    assert_non_null(strstr(fx->resp[2], "\r\n\r\nGET /c "));
    assert_int_equal(fx->stats.requests, 3);
    assert_int_equal(fx->stats.accepted, 1);
    free(fx);
}

static void client_chunked(fx_t *fx)
{
    get_one(fx, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0);
}

static void chunked_body(void **state)
{
    fx_t *fx = run(NULL, client_chunked);
    assert_non_null(strstr(fx->resp[0], "HTTP/1.1 200 OK"));
    assert_non_null(strstr(fx->resp[0], "body=hello world hdr"));
    free(fx);
}

/* Sends request, reads one answer into slot 0, then records whether the server closed. */
static void send_read_eof(fx_t *fx, const char *request)
{
    cl_t c;
    cl_open(&c, fx->port);
    cl_send(&c, request);
    if (!cl_read(&c, fx->resp[0])) fx->eof[0] = 1;
    fx->eof[1] = cl_eof(&c);
    close(c.fd);
}

static void assert_problem_and_close(fx_t *fx, int status, const char *slug)
{
    char line[64], type[96];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    snprintf(type, sizeof type, "\"type\":\"/problems/%s\"", slug);
    assert_false(fx->eof[0]);
    assert_ptr_equal(strstr(fx->resp[0], line), fx->resp[0]);
    assert_non_null(strstr(fx->resp[0], "Content-Type: application/problem+json\r\n"));
    assert_non_null(strstr(fx->resp[0], "Connection: close\r\n"));
    assert_non_null(strstr(fx->resp[0], type));
    char st[32];
    snprintf(st, sizeof st, "\"status\":%d", status);
    assert_non_null(strstr(fx->resp[0], st));
    assert_true(fx->eof[1]);
    assert_int_equal(fx->handled, 0);
}

static void client_big_length(fx_t *fx)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "POST /x HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    memset(req + n, 'a', 2000);
    req[n + 2000] = '\0';
    send_read_eof(fx, req);
}

static void oversize_content_length_413(void **state)
{
    http_limits_t lim = small_limits();
    fx_t *fx = run(&lim, client_big_length);
    assert_problem_and_close(fx, 413, "payload-too-large");
    assert_int_equal(fx->stats.closed_limit, 1);
    free(fx);
}

static void client_big_chunked(fx_t *fx)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int k = 0; k < 2; k++) {
        n += snprintf(req + n, sizeof req - (size_t)n, "320\r\n"); /* 800 bytes */
        memset(req + n, 'b', 800);
        n += 800;
        n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    }
    snprintf(req + n, sizeof req - (size_t)n, "0\r\n\r\n");
    send_read_eof(fx, req);
}

static void oversize_chunked_body_413(void **state)
{
    http_limits_t lim = small_limits();
    fx_t *fx = run(&lim, client_big_chunked);
    assert_problem_and_close(fx, 413, "payload-too-large");
    free(fx);
}

static void client_big_headers(fx_t *fx)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "GET /x HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'h', 2000);
    snprintf(req + n + 2000, sizeof req - (size_t)n - 2000, "\r\n\r\n");
    send_read_eof(fx, req);
}

static void huge_headers_431(void **state)
{
    http_limits_t lim = small_limits();
    fx_t *fx = run(&lim, client_big_headers);
    assert_problem_and_close(fx, 431, "header-too-large");
    free(fx);
}

static void client_garbage(fx_t *fx)
{
    send_read_eof(fx, "\x01\x02 garbage here\r\n\r\n");
}

static void garbage_400(void **state)
{
    fx_t *fx = run(NULL, client_garbage);
    assert_problem_and_close(fx, 400, "bad-request");
    free(fx);
}

static void client_idle(fx_t *fx)
{
    cl_t c;
    cl_open(&c, fx->port);
    fx->eof[0] = cl_eof(&c); /* blocks until the server closes; nothing is sent before */
    close(c.fd);
}

static void idle_timeout_closes_silently(void **state)
{
    http_limits_t lim = small_limits();
    lim.idle_timeout_ms = 100;
    fx_t *fx = run(&lim, client_idle);
    assert_true(fx->eof[0]);
    assert_int_equal(fx->stats.closed_idle, 1);
    free(fx);
}

static void client_slow(fx_t *fx)
{
    send_read_eof(fx, "POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
}

static void slow_client_408(void **state)
{
    http_limits_t lim = small_limits();
    lim.request_timeout_ms = 100;
    fx_t *fx = run(&lim, client_slow);
    assert_problem_and_close(fx, 408, "request-timeout");
    assert_int_equal(fx->stats.closed_slow, 1);
    free(fx);
}

static void client_gone(fx_t *fx, int reset)
{
    cl_t c;
    cl_open(&c, fx->port);
    cl_send(&c, "GET /delay?until_closed HTTP/1.1\r\n\r\n");
    wait_handled(fx, 1);
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c.fd);
}

static void client_close_fin(fx_t *fx) { client_gone(fx, 0); }
static void client_close_rst(fx_t *fx) { client_gone(fx, 1); }

/* The handler answers after the connection is gone: the answer is dropped, nothing leaks. */
static void disconnect_before_delayed_answer(void **state)
{
    client_fn clients[2] = {client_close_fin, client_close_rst};
    for (int i = 0; i < 2; i++) {
        fx_t *fx = run(NULL, clients[i]);
        assert_int_equal(fx->handled, 1);
        assert_true(fx->delayed_done);
        assert_int_equal(fx->conns_at_delayed_respond, 0);
        free(fx);
    }
}

static void client_ids(fx_t *fx)
{
    char longid[300];
    memset(longid, 'x', 200);
    longid[200] = '\0';
    char req[512];
    get_one(fx, "GET /a HTTP/1.1\r\nX-Request-Id: abc-123.Z\r\n\r\n", 0);
    snprintf(req, sizeof req, "GET /b HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", longid);
    get_one(fx, req, 1);
}

static void request_id_echoed_or_replaced(void **state)
{
    fx_t *fx = run(NULL, client_ids);
    assert_non_null(strstr(fx->resp[0], "\r\nX-Request-Id: abc-123.Z\r\n"));
    const char *id = strstr(fx->resp[1], "\r\nX-Request-Id: ");
    assert_non_null(id);
    assert_int_equal(strspn(id + 16, "0123456789abcdef"), 16);
    assert_int_equal(id[16 + 16], '\r');
    free(fx);
}

static void client_continue(fx_t *fx)
{
    cl_t c;
    cl_open(&c, fx->port);
    cl_send(&c, "POST /e HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    if (!cl_read(&c, fx->resp[0])) fx->eof[0] = 1;
    cl_send(&c, "hello");
    if (!cl_read(&c, fx->resp[1])) fx->eof[1] = 1;
    close(c.fd);
}

static void expect_100_continue(void **state)
{
    fx_t *fx = run(NULL, client_continue);
    assert_string_equal(fx->resp[0], "HTTP/1.1 100 Continue\r\n\r\n");
    assert_non_null(strstr(fx->resp[1], "HTTP/1.1 200 OK"));
    assert_non_null(strstr(fx->resp[1], "body=hello "));
    free(fx);
}

static void client_http10(fx_t *fx)
{
    cl_t c;
    cl_open(&c, fx->port);
    cl_send(&c, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cl_read(&c, fx->resp[0]);
    cl_send(&c, "GET /plain HTTP/1.0\r\n\r\n");
    cl_read(&c, fx->resp[1]);
    fx->eof[2] = cl_eof(&c);
    close(c.fd);
}

static void http10_keep_alive_only_when_asked(void **state)
{
    fx_t *fx = run(NULL, client_http10);
    assert_non_null(strstr(fx->resp[0], "Connection: keep-alive\r\n"));
    assert_non_null(strstr(fx->resp[1], "\r\n\r\nGET /plain "));
    assert_non_null(strstr(fx->resp[1], "Connection: close\r\n"));
    assert_true(fx->eof[2]);
    free(fx);
}

static void client_maxconn(fx_t *fx)
{
    cl_t a, b;
    cl_open(&a, fx->port);
    cl_send(&a, "GET /one HTTP/1.1\r\n\r\n");
    cl_read(&a, fx->resp[0]);
    cl_open(&b, fx->port);
    fx->eof[1] = cl_eof(&b);
    close(b.fd);
    cl_send(&a, "GET /two HTTP/1.1\r\n\r\n");
    cl_read(&a, fx->resp[2]);
    close(a.fd);
}

static void max_connections_closes_extra(void **state)
{
    http_limits_t lim = small_limits();
    lim.max_connections = 1;
    fx_t *fx = run(&lim, client_maxconn);
    assert_non_null(strstr(fx->resp[0], "GET /one "));
    assert_true(fx->eof[1]);
    assert_non_null(strstr(fx->resp[2], "GET /two "));
    assert_int_equal(fx->stats.closed_limit, 1);
    assert_int_equal(fx->stats.accepted, 1);
    free(fx);
}

static void client_stop_inflight(fx_t *fx)
{
    cl_t c;
    cl_open(&c, fx->port);
    cl_send(&c, "GET /delay HTTP/1.1\r\n\r\n");
    wait_handled(fx, 1);
    signal_done(fx); /* the server stops while the request is with its handler */
    if (!cl_read(&c, fx->resp[0])) fx->eof[0] = 1;
    fx->eof[1] = cl_eof(&c);
    close(c.fd);
}

static void stop_lets_inflight_request_finish(void **state)
{
    fx_t *fx = run(NULL, client_stop_inflight);
    assert_false(fx->eof[0]);
    assert_non_null(strstr(fx->resp[0], "\r\n\r\nGET /delay "));
    assert_non_null(strstr(fx->resp[0], "Connection: close\r\n"));
    assert_true(fx->eof[1]);
    free(fx);
}

static void client_log(fx_t *fx)
{
    get_one(fx, "POST /logme?q=1 HTTP/1.1\r\nX-Request-Id: log-test-1\r\n"
                "Authorization: Bearer SECRET123\r\nContent-Length: 10\r\n\r\nBODYSECRET", 0);
}

static void one_log_line_per_request_without_secrets(void **state)
{
    char path[] = "/tmp/test_http_log_XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    unlink(path);
    int saved = dup(2);
    dup2(tmp, 2);
    fx_t *fx = run(NULL, client_log);
    dup2(saved, 2);
    close(saved);
    char log[8192];
    ssize_t n = pread(tmp, log, sizeof log - 1, 0);
    close(tmp);
    assert_true(n > 0);
    log[n] = '\0';
    const char *line = strstr(log, "\"request_id\":\"log-test-1\"");
    assert_non_null(line);
    assert_null(strstr(line + 1, "\"request_id\":")); /* exactly one line */
    const char *want[] = {"\"msg\":\"request\"", "\"method\":\"POST\"", "\"route\":\"/logme\"",
                          "\"status\":200", "\"latency_ms\":", "\"bytes_in\":",
                          "\"bytes_out\":", "\"tenant\":\"t1\"", "\"events\":3"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) assert_non_null(strstr(log, want[i]));
    assert_null(strstr(log, "SECRET123"));
    assert_null(strstr(log, "BODYSECRET"));
    free(fx);
}

static void client_problem(fx_t *fx)
{
    get_one(fx, "GET /problem HTTP/1.1\r\n\r\n", 0);
}

static void problem_errors_body(void **state)
{
    fx_t *fx = run(NULL, client_problem);
    assert_ptr_equal(strstr(fx->resp[0], "HTTP/1.1 422 Unprocessable Entity\r\n"), fx->resp[0]);
    assert_non_null(strstr(fx->resp[0], "Content-Type: application/problem+json\r\n"));
    assert_string_equal(strstr(fx->resp[0], "\r\n\r\n") + 4,
                        "{\"type\":\"/problems/invalid-event\",\"title\":\"Invalid event\","
                        "\"status\":422,\"detail\":\"2 of 50 events are invalid; 7 more errors "
                        "not listed\",\"errors\":[{\"index\":3,\"field\":\"quantity.unit\","
                        "\"message\":\"unknown unit 'to\\\"ns'\"},{\"field\":\"\","
                        "\"message\":\"batch too large\"}]}");
    free(fx);
}

static void pct_decode_is_strict(void **state)
{
    char out[32];
    assert_int_equal(http_pct_decode("a%2Fb", 5, out, sizeof out), 3);
    assert_string_equal(out, "a/b");
    assert_int_equal(http_pct_decode("a+b%7e", 6, out, sizeof out), 4);
    assert_string_equal(out, "a+b~");
    assert_int_equal(http_pct_decode("%zz", 3, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("ab%4", 4, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("ab%", 3, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("a%00b", 5, out, sizeof out), -1);
    assert_int_equal(http_pct_decode("abcdef", 6, out, 4), -1);
}

static void query_get_decodes(void **state)
{
    const char *q = "a=1&b=x%20y+z&c&k%31=v&e=%G1&a=2";
    char out[16];
    assert_int_equal(http_query_get(q, "a", out, sizeof out), 1);
    assert_string_equal(out, "1");
    assert_int_equal(http_query_get(q, "b", out, sizeof out), 5);
    assert_string_equal(out, "x y z");
    assert_int_equal(http_query_get(q, "c", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(http_query_get(q, "k1", out, sizeof out), 1);
    assert_string_equal(out, "v");
    assert_int_equal(http_query_get(q, "d", out, sizeof out), -1);
    assert_int_equal(http_query_get(q, "e", out, sizeof out), -2);
    assert_int_equal(http_query_get("long=0123456789abcdef", "long", out, sizeof out), -2);
    assert_int_equal(http_query_get("", "a", out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_get),
        cmocka_unit_test(post_with_body),
        cmocka_unit_test(keep_alive_three_requests),
        cmocka_unit_test(pipelined_answers_in_order),
        cmocka_unit_test(chunked_body),
        cmocka_unit_test(oversize_content_length_413),
        cmocka_unit_test(oversize_chunked_body_413),
        cmocka_unit_test(huge_headers_431),
        cmocka_unit_test(garbage_400),
        cmocka_unit_test(idle_timeout_closes_silently),
        cmocka_unit_test(slow_client_408),
        cmocka_unit_test(disconnect_before_delayed_answer),
        cmocka_unit_test(request_id_echoed_or_replaced),
        cmocka_unit_test(expect_100_continue),
        cmocka_unit_test(http10_keep_alive_only_when_asked),
        cmocka_unit_test(max_connections_closes_extra),
        cmocka_unit_test(stop_lets_inflight_request_finish),
        cmocka_unit_test(one_log_line_per_request_without_secrets),
        cmocka_unit_test(problem_errors_body),
        cmocka_unit_test(pct_decode_is_strict),
        cmocka_unit_test(query_get_decodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

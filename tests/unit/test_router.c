// uses: daemon/router daemon/http daemon/problem daemon/buf daemon/log daemon/errlist
/* test_router — routing over a real server: decoded params, {id}.{ext}, literal routes before
 * params, 404 and 405 problems, bad encodings, and the route list. */
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
#include "router.h"

#define NREQ 12
#define RESP_MAX 4096

typedef struct {
    uv_loop_t loop;
    uv_async_t async;
    http_server_t *srv;
    router_t *router;
    int port, stopped;
    const char *requests[NREQ];
    char resp[NREQ][RESP_MAX];
} fx_t;

/* Answers "<route> p0|p1|..." so the test sees the route chosen and the decoded params. */
static void show(http_req_t *req, const router_match_t *m, void *ud)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, m->route);
    for (int i = 0; i < m->nparams; i++) buf_printf(&b, "%s%s", i ? "|" : " ", m->params[i]);
    http_respond(req, 200, "text/plain", b.data, b.len, NULL);
    buf_free(&b);
}

static void on_request(http_req_t *req, void *ud)
{
    router_dispatch(ud, req);
}

static router_t *make_router(void)
{
    router_t *r = router_new();
    router_add(r, "GET", "/v1/events/{id}", show, NULL);
    router_add(r, "POST", "/v1/events/{id}", show, NULL);
    router_add(r, "GET", "/v1/events/verify", show, NULL);
    router_add(r, "POST", "/v1/events", show, NULL);
    router_add(r, "GET", "/v1/reports/{id}.{ext}", show, NULL);
    router_add(r, "GET", "/v1/sites/{site}/lots/{lot}", show, NULL);
    return r;
}

/* ---- a blocking keep-alive client in a thread ---- */

static int read_answer(int fd, char *buf, size_t *len, char *out)
{
    char *end;
    while (!(buf[*len] = '\0', end = strstr(buf, "\r\n\r\n"))) {
        ssize_t n = recv(fd, buf + *len, RESP_MAX * 2 - 1 - *len, 0);
        if (n <= 0) return 0;
        *len += (size_t)n;
    }
    size_t head = (size_t)(end + 4 - buf), body = 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length: ");
    if (cl && cl < end) body = strtoul(cl + 18, NULL, 10);
    while (*len < head + body) {
        ssize_t n = recv(fd, buf + *len, RESP_MAX * 2 - 1 - *len, 0);
        if (n <= 0) return 0;
        *len += (size_t)n;
    }
    size_t keep = head + body < RESP_MAX ? head + body : RESP_MAX - 1;
    memcpy(out, buf, keep);
    out[keep] = '\0';
    memmove(buf, buf + head + body, *len - head - body);
    *len -= head + body;
    return 1;
}

static void *client(void *arg)
{
    fx_t *fx = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    char buf[RESP_MAX * 2];
    size_t len = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        for (int i = 0; i < NREQ && fx->requests[i]; i++) {
            char req[512];
            snprintf(req, sizeof req, "%s HTTP/1.1\r\nHost: t\r\n\r\n", fx->requests[i]);
            if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) break;
            if (!read_answer(fd, buf, &len, fx->resp[i])) break;
        }
    }
    close(fd);
    uv_async_send(&fx->async);
    return NULL;
}

static void on_stopped(void *arg)
{
    ((fx_t *)arg)->stopped = 1;
}

static void on_client_done(uv_async_t *a)
{
    fx_t *fx = a->data;
    http_server_stop(fx->srv, on_stopped, fx);
    uv_close((uv_handle_t *)a, NULL);
}

static fx_t *run(const char **requests)
{
    fx_t *fx = calloc(1, sizeof *fx);
    for (int i = 0; i < NREQ && requests[i]; i++) fx->requests[i] = requests[i];
    fx->router = make_router();
    char err[256];
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(http_server_start(&fx->loop, "127.0.0.1", 0, NULL, on_request, fx->router,
                                       &fx->srv, err, sizeof err), 0);
    fx->port = http_server_port(fx->srv);
    uv_async_init(&fx->loop, &fx->async, on_client_done);
    fx->async.data = fx;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client, fx), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    assert_true(fx->stopped);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    router_free(fx->router);
    return fx;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

/* ---- tests ---- */

static void params_are_decoded(void **state)
{
    const char *reqs[] = {"GET /v1/events/a%2Fb%20c", "POST /v1/events/x:y:1",
                          "GET /v1/sites/S1/lots/L%3F2", NULL};
    fx_t *fx = run(reqs);
    assert_string_equal(body_of(fx->resp[0]), "/v1/events/{id} a/b c");
    assert_string_equal(body_of(fx->resp[1]), "/v1/events/{id} x:y:1");
    assert_string_equal(body_of(fx->resp[2]), "/v1/sites/{site}/lots/{lot} S1|L?2");
    free(fx);
}

static void literal_route_beats_param(void **state)
{
    const char *reqs[] = {"GET /v1/events/verify", "POST /v1/events", NULL};
    fx_t *fx = run(reqs);
    assert_string_equal(body_of(fx->resp[0]), "/v1/events/verify");
    assert_string_equal(body_of(fx->resp[1]), "/v1/events");
    free(fx);
}

static void id_and_extension(void **state)
{
    const char *reqs[] = {"GET /v1/reports/r.1.json", "GET /v1/reports/abc.csv",
                          "GET /v1/reports/abc", "GET /v1/reports/abc.", NULL};
    fx_t *fx = run(reqs);
    assert_string_equal(body_of(fx->resp[0]), "/v1/reports/{id}.{ext} r.1|json");
    assert_string_equal(body_of(fx->resp[1]), "/v1/reports/{id}.{ext} abc|csv");
    assert_non_null(strstr(fx->resp[2], "HTTP/1.1 404 "));
    assert_non_null(strstr(fx->resp[3], "HTTP/1.1 404 "));
    free(fx);
}

static void unknown_paths_are_404_problems(void **state)
{
    const char *reqs[] = {"GET /v1/nothing", "GET /v1/events/", "GET /v1/events/a/b",
                          "GET /v1/events%2Fx", NULL};
    fx_t *fx = run(reqs);
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(strstr(fx->resp[i], "HTTP/1.1 404 Not Found\r\n"), fx->resp[i]);
        assert_non_null(strstr(fx->resp[i], "Content-Type: application/problem+json\r\n"));
        assert_non_null(strstr(body_of(fx->resp[i]),
                               "{\"type\":\"/problems/not-found\",\"title\":\"Not Found\","
                               "\"status\":404,\"detail\":"));
        /* A problem answer does not end the keep-alive connection. */
        assert_null(strstr(fx->resp[i], "Connection: close"));
    }
    free(fx);
}

static void other_method_is_405_with_allow(void **state)
{
    const char *reqs[] = {"DELETE /v1/events/x", "PUT /v1/events", NULL};
    fx_t *fx = run(reqs);
    assert_ptr_equal(strstr(fx->resp[0], "HTTP/1.1 405 Method Not Allowed\r\n"), fx->resp[0]);
    assert_non_null(strstr(fx->resp[0], "\r\nAllow: GET, POST\r\n"));
    assert_non_null(strstr(fx->resp[0], "\"type\":\"/problems/method-not-allowed\""));
    assert_non_null(strstr(fx->resp[1], "\r\nAllow: POST\r\n"));
    free(fx);
}

static void bad_encoding_is_400(void **state)
{
    const char *reqs[] = {"GET /v1/events/%zz", "GET /v1/events/a%00b", NULL};
    fx_t *fx = run(reqs);
    for (int i = 0; i < 2; i++) {
        assert_ptr_equal(strstr(fx->resp[i], "HTTP/1.1 400 Bad Request\r\n"), fx->resp[i]);
        assert_non_null(strstr(fx->resp[i], "\"type\":\"/problems/bad-request\""));
    }
    free(fx);
}

static void collect(const char *method, const char *pattern, void *arg)
{
    buf_printf(arg, "%s %s\n", method, pattern);
}

static void each_lists_routes_and_bad_patterns_are_refused(void **state)
{
    router_t *r = make_router();
    router_add(r, "GET", "/x/{a", show, NULL);
    router_add(r, "GET", "/x/{a/b}", show, NULL);
    router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}", show, NULL);
    router_add(r, "GET", "no-slash", show, NULL);
    buf_t b = BUF_INIT;
    router_each(r, collect, &b);
    assert_string_equal(b.data, "GET /v1/events/{id}\nPOST /v1/events/{id}\n"
                                "GET /v1/events/verify\nPOST /v1/events\n"
                                "GET /v1/reports/{id}.{ext}\nGET /v1/sites/{site}/lots/{lot}\n");
    buf_free(&b);
    router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_are_decoded),
        cmocka_unit_test(literal_route_beats_param),
        cmocka_unit_test(id_and_extension),
        cmocka_unit_test(unknown_paths_are_404_problems),
        cmocka_unit_test(other_method_is_405_with_allow),
        cmocka_unit_test(bad_encoding_is_400),
        cmocka_unit_test(each_lists_routes_and_bad_patterns_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

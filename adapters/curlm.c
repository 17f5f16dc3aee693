/* curlm — libcurl multi on the libuv loop (curl_multi_socket_action, uv_poll, uv_timer). */
#include "curlm.h"
#include "buf.h"
#include "log.h"

#include <stdlib.h>

typedef struct xfer {
    CURL *easy;
    curlm_done_fn done;
    void *arg;
    struct xfer *prev, *next;
} xfer_t;

typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    curlm_t *m;
    struct sock *prev, *next;
} sock_t;

struct curlm {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    xfer_t *xfers;
    sock_t *socks;
    int active;
    int open_handles;     /* uv handles not yet closed: the timer and every poll */
    int closing;
    void (*closed)(void *);
    void *closed_arg;
};

static void handle_closed(uv_handle_t *h);

static void maybe_freed(curlm_t *m)
{
    if (!m->closing || m->open_handles) return;
    void (*closed)(void *) = m->closed;
    void *arg = m->closed_arg;
    free(m);
    if (closed) closed(arg);
}

static void handle_closed(uv_handle_t *h)
{
    curlm_t *m = h->data;
    if (h->type == UV_POLL) free(((sock_t *)h));   /* poll is the first member of sock_t */
    m->open_handles--;
    maybe_freed(m);
}

static void sock_close(curlm_t *m, sock_t *s)
{
    if (s->prev) s->prev->next = s->next;
    else m->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static void xfer_unlink(curlm_t *m, xfer_t *x)
{
    if (x->prev) x->prev->next = x->next;
    else m->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    m->active--;
}

/* Removes a handle from the multi and reports it; the callback may submit new transfers. */
static void xfer_finish(curlm_t *m, xfer_t *x, CURLcode rc)
{
    curl_multi_remove_handle(m->multi, x->easy);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
    xfer_unlink(m, x);
    curlm_done_fn done = x->done;
    void *arg = x->arg;
    CURL *easy = x->easy;
    free(x);
    done(easy, rc, arg);
}

/* Reports every finished transfer libcurl has queued. */
static void check_done(curlm_t *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        xfer_t *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x) xfer_finish(m, x, msg->data.result);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = (sock_t *)p;
    curlm_t *m = s->m;
    int flags = 0;
    /* A poll error is handed to libcurl as both directions: its read or write then fails and
     * the transfer ends with the real error. */
    if (status < 0) flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(m->multi, s->fd, flags, &running);
    check_done(m);
}

static void on_timer(uv_timer_t *t)
{
    curlm_t *m = t->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(m);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    curlm_t *m = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) sock_close(m, s);
        if (!m->closing) curl_multi_assign(m->multi, fd, NULL);
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->m = m;
        if (uv_poll_init_socket(m->loop, &s->poll, fd)) {
            free(s);
            return -1;
        }
        s->poll.data = m;
        m->open_handles++;
        s->next = m->socks;
        if (m->socks) m->socks->prev = s;
        m->socks = s;
        curl_multi_assign(m->multi, fd, s);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

/* libcurl asks for one timeout; -1 stops it. It must not be acted on inside this callback,
 * so even 0 goes through the loop. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    curlm_t *m = userp;
    if (timeout_ms < 0) uv_timer_stop(&m->timer);
    else uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

curlm_t *curlm_new(uv_loop_t *loop)
{
    static int initialised;
    if (!initialised++) curl_global_init(CURL_GLOBAL_DEFAULT);
    curlm_t *m = xcalloc(1, sizeof *m);
    m->loop = loop;
    m->multi = curl_multi_init();
    if (!m->multi) abort();   /* out of memory, as buf.h's policy */
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->open_handles = 1;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    return m;
}

int curlm_submit(curlm_t *m, CURL *easy, curlm_done_fn done, void *arg)
{
    if (m->closing) return -1;
    xfer_t *x = xcalloc(1, sizeof *x);
    x->easy = easy;
    x->done = done;
    x->arg = arg;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    /* Signals must never interrupt circad: name resolution then uses the threaded resolver. */
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    CURLMcode rc = curl_multi_add_handle(m->multi, easy);
    if (rc != CURLM_OK) {
        log_msg(LOG_ERROR, "curlm: cannot add a transfer: %s", curl_multi_strerror(rc));
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return -1;
    }
    x->next = m->xfers;
    if (m->xfers) m->xfers->prev = x;
    m->xfers = x;
    m->active++;
    return 0;
}

void curlm_cancel(curlm_t *m, CURL *easy)
{
    for (xfer_t *x = m->xfers; x; x = x->next)
        if (x->easy == easy) {
            xfer_finish(m, x, CURLE_ABORTED_BY_CALLBACK);
            return;
        }
}

int curlm_active(const curlm_t *m)
{
    return m->active;
}

void curlm_close(curlm_t *m, void (*closed)(void *arg), void *arg)
{
    m->closing = 1;
    m->closed = closed;
    m->closed_arg = arg;
    while (m->xfers) xfer_finish(m, m->xfers, CURLE_ABORTED_BY_CALLBACK);
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    /* Connections libcurl kept alive may still be watched: their polls close here. */
    while (m->socks) sock_close(m, m->socks);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, handle_closed);
}

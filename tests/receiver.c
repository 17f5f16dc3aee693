/* receiver — a delivery receiver for tests (see receiver.h). One connection at a time, one
 * request per connection (it answers with Connection: close). */
#include "receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_REQS 256
#define MAX_BODY (16 << 20)

struct receiver {
    int fd, port, stop;
    char secret[256];
    pthread_t thread;
    pthread_mutex_t mu;
    int fail;                      /* requests still to fail; < 0 forever */
    int n;
    receiver_req_t reqs[MAX_REQS];
};

static void hex(const unsigned char *h, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", h[i]);
}

/* The value of header name in the raw header block, into out ("" when absent). */
static void header(const char *head, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) || p[2 + nl] != ':') continue;
        const char *v = p + 3 + nl;
        while (*v == ' ') v++;
        size_t n = strcspn(v, "\r\n");
        snprintf(out, len, "%.*s", (int)n, v);
        return;
    }
}

/* Reads the whole request: headers, then Content-Length bytes. Returns the buffer or NULL. */
static char *read_request(int c, char **body, size_t *blen)
{
    size_t cap = 65536, len = 0;
    char *b = malloc(cap + 1), *end = NULL;
    while (!end) {
        ssize_t k = recv(c, b + len, cap - len, 0);
        if (k <= 0) return free(b), NULL;
        len += (size_t)k;
        b[len] = '\0';
        end = strstr(b, "\r\n\r\n");
        if (!end && len == cap) return free(b), NULL;
    }
    char cl[32];
    *end = '\0';
    header(b, "Content-Length", cl, sizeof cl);
    size_t want = (size_t)strtoul(cl, NULL, 10), have = len - (size_t)(end + 4 - b);
    size_t off = (size_t)(end + 4 - b);
    if (want > MAX_BODY) return free(b), NULL;
    if (off + want > cap) b = realloc(b, off + want + 1);
    while (have < want) {
        ssize_t k = recv(c, b + off + have, want - have, 0);
        if (k <= 0) return free(b), NULL;
        have += (size_t)k;
    }
    b[off + want] = '\0';
    *body = b + off;
    *blen = want;
    return b;
}

static void check(receiver_t *r, const char *head, const char *body, size_t blen,
                  receiver_req_t *q)
{
    char sig[160], want[80] = "sha256=";
    unsigned char mac[EVP_MAX_MD_SIZE], sha[SHA256_DIGEST_LENGTH];
    unsigned int n = 0;
    char attempt[16], sha_hex[65];
    header(head, "Circa-Delivery-Id", q->delivery_id, sizeof q->delivery_id);
    header(head, "Circa-Report-Sha256", q->report_sha, sizeof q->report_sha);
    header(head, "Circa-Signature", sig, sizeof sig);
    header(head, "Circa-Delivery-Attempt", attempt, sizeof attempt);
    q->attempt = atoi(attempt);
    HMAC(EVP_sha256(), r->secret, (int)strlen(r->secret), (const unsigned char *)body, blen, mac, &n);
    hex(mac, n, want + 7);
    q->signature_ok = strlen(sig) == strlen(want) && CRYPTO_memcmp(sig, want, strlen(want)) == 0;
    SHA256((const unsigned char *)body, blen, sha);
    hex(sha, sizeof sha, sha_hex);
    q->sha_ok = strcmp(sha_hex, q->report_sha) == 0;
}

/* Decides the answer under the lock: fail while told to; a valid, new id is accepted. */
static int decide(receiver_t *r, receiver_req_t *q)
{
    pthread_mutex_lock(&r->mu);
    if (r->fail != 0) {
        if (r->fail > 0) r->fail--;
        q->status = 500;
    } else {
        q->status = q->signature_ok && q->delivery_id[0] ? 200 : 401;
        for (int i = 0; i < r->n && q->status == 200; i++)
            if (r->reqs[i].status == 200 && strcmp(r->reqs[i].delivery_id, q->delivery_id) == 0)
                q->duplicate = 1;
    }
    if (r->n < MAX_REQS) r->reqs[r->n++] = *q;
    pthread_mutex_unlock(&r->mu);
    return q->status;
}

static void serve(receiver_t *r, int c)
{
    char *body = NULL;
    size_t blen = 0;
    char *req = read_request(c, &body, &blen);
    if (!req) return;
    receiver_req_t q = {0};
    check(r, req, body, blen, &q);
    free(req);
    int st = decide(r, &q);
    char resp[160];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     st, st == 200 ? "OK" : st == 500 ? "Internal Server Error" : "Unauthorized");
    (void)!send(c, resp, (size_t)n, MSG_NOSIGNAL);
}

static void *loop(void *arg)
{
    receiver_t *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0) continue;
        struct timeval tv = {5, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        serve(r, c);
        close(c);
    }
    return NULL;
}

receiver_t *receiver_start(const char *secret)
{
    receiver_t *r = calloc(1, sizeof *r);
    snprintf(r->secret, sizeof r->secret, "%s", secret);
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(r->fd, (struct sockaddr *)&a, sizeof a) || listen(r->fd, 16) ||
        getsockname(r->fd, (struct sockaddr *)&a, &al)) {
        close(r->fd);
        free(r);
        return NULL;
    }
    r->port = ntohs(a.sin_port);
    pthread_create(&r->thread, NULL, loop, r);
    return r;
}

int receiver_port(const receiver_t *r)
{
    return r->port;
}

void receiver_fail(receiver_t *r, int n)
{
    pthread_mutex_lock(&r->mu);
    r->fail = n;
    pthread_mutex_unlock(&r->mu);
}

static int count(receiver_t *r, int what)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += what == 0 ? 1 : what == 1 ? r->reqs[i].status == 200 && !r->reqs[i].duplicate
                                       : r->reqs[i].duplicate;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int receiver_requests(receiver_t *r)
{
    return count(r, 0);
}

int receiver_accepted(receiver_t *r)
{
    return count(r, 1);
}

int receiver_duplicates(receiver_t *r)
{
    return count(r, 2);
}

int receiver_request(receiver_t *r, int k, receiver_req_t *out)
{
    pthread_mutex_lock(&r->mu);
    int ok = k >= 0 && k < r->n;
    if (ok) *out = r->reqs[k];
    pthread_mutex_unlock(&r->mu);
    return ok ? 0 : -1;
}

void receiver_stop(receiver_t *r)
{
    if (!r) return;
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    pthread_join(r->thread, NULL);
    close(r->fd);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

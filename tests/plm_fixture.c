/* plm_fixture — scripted HTTP source for the PLM adapter's tests (plain sockets, one thread). */
#include "plm_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FX_ROUTES 16
#define FX_LOG 64
#define FX_HUNG 32

typedef struct {
    char path[128];
    char files[8][64];
    int nfiles, count, n304;
    char targets[FX_LOG][512], inm[FX_LOG][128];
} route_t;

struct plmfx {
    char dir[256];
    int lfd, port, stop_pipe[2];
    pthread_t thread;
    pthread_mutex_t mu;
    route_t routes[FX_ROUTES];
    int nroutes;
    int hung[FX_HUNG], nhung;
};

static route_t *find(plmfx_t *fx, const char *path)
{
    for (int i = 0; i < fx->nroutes; i++)
        if (strcmp(fx->routes[i].path, path) == 0) return &fx->routes[i];
    return NULL;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void send_status(int fd, int status)
{
    char h[128];
    int n = snprintf(h, sizeof h, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     status);
    send_all(fd, h, (size_t)n);
}

/* Reads the recorded response; answers 304 when its ETag is the one the client has. */
static int send_file(plmfx_t *fx, int fd, const char *name, const char *inm)
{
    char path[512], *text = NULL;
    snprintf(path, sizeof path, "%s/%s", fx->dir, name);
    FILE *f = fopen(path, "rb");
    size_t len = 0;
    if (f) {
        text = calloc(1, 1 << 20);
        len = fread(text, 1, (1 << 20) - 1, f);
        fclose(f);
    }
    char *sep = text ? strstr(text, "\n\n") : NULL;
    if (!sep) {
        free(text);
        send_status(fd, 599);
        return 599;
    }
    *sep = '\0';
    const char *body = sep + 2;
    int status = (int)strtol(text, NULL, 10);
    char *etag = strcasestr(text, "\nETag: ");
    char tag[128] = "";
    if (etag) sscanf(etag + 7, "%127[^\n]", tag);
    if (*tag && *inm && strcmp(tag, inm) == 0) {
        free(text);
        char h[256];
        int n = snprintf(h, sizeof h, "HTTP/1.1 304 Not Modified\r\nETag: %s\r\nConnection: close\r\n\r\n", tag);
        send_all(fd, h, (size_t)n);
        return 304;
    }
    char head[1024];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n",
                     status, len - (size_t)(body - text));
    send_all(fd, head, (size_t)n);
    for (char *line = strchr(text, '\n'); line; line = strchr(line + 1, '\n')) {
        char *end = strchr(line + 1, '\n');
        send_all(fd, line + 1, end ? (size_t)(end - line - 1) : strlen(line + 1));
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "\r\n", 2);
    send_all(fd, body, len - (size_t)(body - text));
    free(text);
    return status;
}

static void header_value(const char *req, const char *name, char *out, size_t n)
{
    out[0] = '\0';
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *h = strcasestr(req, pat);
    if (!h) return;
    h += strlen(pat);
    while (*h == ' ') h++;
    size_t i = 0;
    for (; h[i] && h[i] != '\r' && i + 1 < n; i++) out[i] = h[i];
    out[i] = '\0';
}

static void serve(plmfx_t *fx, int fd)
{
    char req[8192];
    size_t len = 0;
    while (len + 1 < sizeof req && !strstr(req, "\r\n\r\n")) {
        ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
        req[len] = '\0';
    }
    req[len] = '\0';
    char target[512] = "", path[512], inm[128];
    sscanf(req, "%*s %511s", target);
    snprintf(path, sizeof path, "%.*s", (int)strcspn(target, "?"), target);
    header_value(req, "If-None-Match", inm, sizeof inm);
    pthread_mutex_lock(&fx->mu);
    route_t *r = find(fx, path);
    const char *file = NULL;
    if (r) {
        int k = r->count++;
        if (k < FX_LOG) {
            snprintf(r->targets[k], sizeof r->targets[k], "%s", target);
            snprintf(r->inm[k], sizeof r->inm[k], "%s", inm);
        }
        file = r->files[k < r->nfiles ? k : r->nfiles - 1];
    }
    if (file && strcmp(file, "hang") == 0 && fx->nhung < FX_HUNG) {
        fx->hung[fx->nhung++] = fd;
        pthread_mutex_unlock(&fx->mu);
        return;
    }
    pthread_mutex_unlock(&fx->mu);
    int st = file ? send_file(fx, fd, file, inm) : (send_status(fd, 404), 404);
    if (st == 304) {
        pthread_mutex_lock(&fx->mu);
        r->n304++;
        pthread_mutex_unlock(&fx->mu);
    }
    close(fd);
}

static void *run(void *arg)
{
    plmfx_t *fx = arg;
    for (;;) {
        struct pollfd p[2] = {{fx->lfd, POLLIN, 0}, {fx->stop_pipe[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) continue;
        if (p[1].revents) return NULL;
        int fd = accept(fx->lfd, NULL, NULL);
        if (fd >= 0) serve(fx, fd);
    }
}

plmfx_t *plmfx_start(const char *dir)
{
    plmfx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "%s", dir);
    pthread_mutex_init(&fx->mu, NULL);
    fx->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(fx->lfd, (struct sockaddr *)&a, sizeof a) || listen(fx->lfd, 64) ||
        getsockname(fx->lfd, (struct sockaddr *)&a, &alen) || pipe(fx->stop_pipe)) {
        perror("plm fixture");
        exit(1);
    }
    fx->port = ntohs(a.sin_port);
    pthread_create(&fx->thread, NULL, run, fx);
    return fx;
}

int plmfx_port(const plmfx_t *fx)
{
    return fx->port;
}

void plmfx_route(plmfx_t *fx, const char *path, const char *const *files, int n)
{
    pthread_mutex_lock(&fx->mu);
    route_t *r = find(fx, path);
    if (!r && fx->nroutes < FX_ROUTES) r = &fx->routes[fx->nroutes++];
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    for (int i = 0; i < n && i < 8; i++) snprintf(r->files[i], sizeof r->files[i], "%s", files[i]);
    r->nfiles = n < 8 ? n : 8;
    pthread_mutex_unlock(&fx->mu);
}

int plmfx_count(plmfx_t *fx, const char *path)
{
    pthread_mutex_lock(&fx->mu);
    route_t *r = find(fx, path);
    int n = r ? r->count : 0;
    pthread_mutex_unlock(&fx->mu);
    return n;
}

int plmfx_count_304(plmfx_t *fx, const char *path)
{
    pthread_mutex_lock(&fx->mu);
    route_t *r = find(fx, path);
    int n = r ? r->n304 : 0;
    pthread_mutex_unlock(&fx->mu);
    return n;
}

int plmfx_request(plmfx_t *fx, const char *path, int k, char *target, size_t tlen, char *inm,
                  size_t ilen)
{
    pthread_mutex_lock(&fx->mu);
    route_t *r = find(fx, path);
    int ok = r && k >= 0 && k < r->count && k < FX_LOG;
    if (ok) {
        snprintf(target, tlen, "%s", r->targets[k]);
        snprintf(inm, ilen, "%s", r->inm[k]);
    }
    pthread_mutex_unlock(&fx->mu);
    return ok ? 0 : -1;
}

void plmfx_stop(plmfx_t *fx)
{
    if (write(fx->stop_pipe[1], "x", 1) != 1) perror("plm fixture stop");
    pthread_join(fx->thread, NULL);
    for (int i = 0; i < fx->nhung; i++) close(fx->hung[i]);
    close(fx->lfd);
    close(fx->stop_pipe[0]);
    close(fx->stop_pipe[1]);
    pthread_mutex_destroy(&fx->mu);
    free(fx);
}

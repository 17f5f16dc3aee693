/* loadgen — HTTP load generator for POST /v1/events: N keep-alive connections, one request in flight each, latency histogram, one summary line. */
#include <errno.h>
#include <getopt.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "buf.h"

#define SEQ_DIGITS 10               /* fixed width of the per-connection counter in each id */
#define MAX_CONNECTIONS 1024
#define MAX_BATCH 10000
#define MAX_LIST 256                /* sites, materials */
#define DRAIN_TIMEOUT_MS 30000      /* in-flight requests get this long after the deadline */
#define HIST_SUB 16                 /* log-linear histogram: 16 buckets per power of two */
#define HIST_BUCKETS (64 * HIST_SUB)
#define ERR_BODIES 3                /* non-2xx bodies printed to stderr */

typedef struct {
    const char *url, *key, *id_prefix, *scenario;
    int connections, batch;
    double seconds;
    char *sites[MAX_LIST], *materials[MAX_LIST];
    int nsites, nmaterials;
    char host[64], path[256];
    int port;
} opts_t;

typedef struct lg lg_t;

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    http_parser parser;
    lg_t *lg;
    int index;
    buf_t head, body;           /* request header and body template */
    size_t *id_pos;             /* where each event's counter digits sit in body */
    unsigned long long next_seq;
    uint64_t sent_ns;
    int writing, waiting, open;
    buf_t err_body;
    char rbuf[65536];
} conn_t;

struct lg {
    opts_t o;
    uv_loop_t *loop;
    uv_timer_t deadline, hard_stop;
    conn_t *conns;
    int open_conns, stopping;
    uint64_t start_ns, last_done_ns;
    unsigned long long events, requests, errors, dup_only, err_printed;
    unsigned long long hist[HIST_BUCKETS];
    time_t base_time;           /* events happen in the 10 minutes before this */
};

static http_parser_settings parser_settings;

/* ---- histogram ---------------------------------------------------------------------- */

static int hist_index(uint64_t us)
{
    if (us < HIST_SUB) return (int)us;
    int e = 63 - __builtin_clzll(us);                /* us in [2^e, 2^(e+1)) */
    int sub = (int)((us >> (e - 4)) & (HIST_SUB - 1));
    int idx = (e - 3) * HIST_SUB + sub;
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Lower bound of a bucket in microseconds (inverse of hist_index). */
static double hist_value(int idx)
{
    if (idx < HIST_SUB) return idx;
    int e = idx / HIST_SUB + 3, sub = idx % HIST_SUB;
    return (double)((1ULL << e) + ((uint64_t)sub << (e - 4)));
}

/* The latency at quantile q, in milliseconds (bucket midpoint). */
static double hist_quantile(const lg_t *lg, double q)
{
    unsigned long long total = 0, seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) total += lg->hist[i];
    if (!total) return 0;
    unsigned long long rank = (unsigned long long)(q * (double)total);
    if (rank >= total) rank = total - 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += lg->hist[i];
        if (seen > rank) return (hist_value(i) + hist_value(i + 1)) / 2 / 1000.0;
    }
    return 0;
}

/* ---- request bodies ----------------------------------------------------------------- */

static void put_digits(char *at, unsigned long long v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        at[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* One event; its id ends in SEQ_DIGITS zeros that are overwritten before every send. */
static size_t append_event(lg_t *lg, buf_t *b, int conn, int i)
{
    const opts_t *o = &lg->o;
    int k = conn * 7919 + i;
    time_t t = lg->base_time - (k % 600);
    struct tm tm;
    char when[32];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_printf(b, "{\"id\":\"%s-%03d-", o->id_prefix, conn);
    size_t pos = b->len;
    buf_printf(b, "%0*d\",\"type\":\"waste_generated\",\"time\":\"%s\",", SEQ_DIGITS, 0,
               when);
    buf_printf(b, "\"site\":\"%s\",\"material\":\"%s\",\"ewc\":\"150102\",",
               o->sites[k % o->nsites], o->materials[(k / o->nsites) % o->nmaterials]);
    buf_printf(b, "\"quantity\":{\"value\":%d.%d,\"unit\":\"kg\"}}", 1 + k % 500, k % 10);
    return pos;
}

static void build_request(lg_t *lg, conn_t *c)
{
    const opts_t *o = &lg->o;
    c->id_pos = xcalloc((size_t)o->batch, sizeof *c->id_pos);
    if (o->batch > 1) buf_putc(&c->body, '[');
    for (int i = 0; i < o->batch; i++) {
        if (i) buf_putc(&c->body, ',');
        c->id_pos[i] = append_event(lg, &c->body, c->index, i);
    }
    if (o->batch > 1) buf_putc(&c->body, ']');
    buf_printf(&c->head, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
               o->path, o->host, o->port, o->key, c->body.len);
}

/* Gives every event of the next request a fresh id: <prefix>-<conn>-<counter>. */
static void patch_ids(lg_t *lg, conn_t *c)
{
    for (int i = 0; i < lg->o.batch; i++)
        put_digits(c->body.data + c->id_pos[i], c->next_seq++, SEQ_DIGITS);
}

/* ---- connections -------------------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    lg_t *lg = c->lg;
    if (--lg->open_conns == 0) {
        uv_timer_stop(&lg->deadline);
        uv_timer_stop(&lg->hard_stop);
    }
}

static void conn_close(conn_t *c)
{
    if (!c->open) return;
    c->open = 0;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void conn_fail(conn_t *c, const char *what, int status)
{
    if (!c->open) return;   /* closed on purpose: a cancelled request is no error */
    fprintf(stderr, "loadgen: connection %d: %s: %s\n", c->index, what,
            status ? uv_strerror(status) : "protocol error");
    c->lg->errors++;
    conn_close(c);
}

static void on_write(uv_write_t *req, int status);

static void send_request(conn_t *c)
{
    patch_ids(c->lg, c);
    uv_buf_t bufs[2] = {uv_buf_init(c->head.data, (unsigned)c->head.len),
                        uv_buf_init(c->body.data, (unsigned)c->body.len)};
    c->sent_ns = uv_hrtime();
    c->writing = c->waiting = 1;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, 2, on_write);
    if (rc < 0) {
        c->writing = c->waiting = 0;
        conn_fail(c, "write", rc);
    }
}

/* Called when either half of an exchange ends: the next request goes once both have. */
static void maybe_next(conn_t *c)
{
    if (c->writing || c->waiting || !c->open) return;
    if (c->lg->stopping) {
        conn_close(c);
        return;
    }
    send_request(c);
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    c->writing = 0;
    if (status < 0) {
        conn_fail(c, "write", status);
        return;
    }
    maybe_next(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    conn_t *c = h->data;
    *out = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    conn_t *c = s->data;
    if (n == 0) return;
    if (n < 0) {
        conn_fail(c, c->waiting ? "closed while waiting for an answer" : "closed by server",
                  (int)n);
        return;
    }
    size_t done = http_parser_execute(&c->parser, &parser_settings, b->base, (size_t)n);
    if (c->open && (done != (size_t)n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)) {
        fprintf(stderr, "loadgen: connection %d: bad response: %s\n", c->index,
                http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
        c->lg->errors++;
        conn_close(c);
    }
}

/* ---- responses ---------------------------------------------------------------------- */

static int on_body(http_parser *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (p->status_code / 100 == 2 || c->err_body.len > 1024) return 0;
    buf_append(&c->err_body, at, len);
    return 0;
}

static void count_answer(conn_t *c, unsigned status)
{
    lg_t *lg = c->lg;
    if (status / 100 == 2) {
        lg->events += (unsigned long long)lg->o.batch;
        if (status == 200) lg->dup_only++;  /* every event was a duplicate: ids collided */
        return;
    }
    lg->errors++;
    if (lg->err_printed++ < ERR_BODIES)
        fprintf(stderr, "loadgen: HTTP %u: %.1024s\n", status,
                c->err_body.data ? c->err_body.data : "");
    buf_reset(&c->err_body);
}

static int on_message_complete(http_parser *p)
{
    conn_t *c = p->data;
    lg_t *lg = c->lg;
    uint64_t now = uv_hrtime();
    if (!c->waiting) {
        fprintf(stderr, "loadgen: connection %d: answer without a request\n", c->index);
        lg->errors++;
        conn_close(c);
        return 0;
    }
    c->waiting = 0;
    lg->requests++;
    lg->last_done_ns = now;
    lg->hist[hist_index((now - c->sent_ns) / 1000)]++;
    count_answer(c, p->status_code);
    if (!http_should_keep_alive(p)) {
        fprintf(stderr, "loadgen: connection %d: server did not keep the connection\n", c->index);
        lg->errors++;
        conn_close(c);
        return 0;
    }
    maybe_next(c);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0) {
        conn_fail(c, "connect", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    if (rc < 0) {
        conn_fail(c, "read", rc);
        return;
    }
    if (c->lg->stopping) conn_close(c);
    else send_request(c);
}

static int conn_start(lg_t *lg, conn_t *c, const struct sockaddr_in *addr)
{
    c->lg = lg;
    c->tcp.data = c->connect_req.data = c->write_req.data = c;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    build_request(lg, c);
    int rc = uv_tcp_init(lg->loop, &c->tcp);
    if (rc < 0) return rc;
    c->open = 1;
    lg->open_conns++;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)addr, on_connect);
    if (rc < 0) conn_fail(c, "connect", rc);
    return 0;
}

/* ---- run ---------------------------------------------------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    lg_t *lg = t->data;
    lg->stopping = 1;
    for (int i = 0; i < lg->o.connections; i++) {
        conn_t *c = &lg->conns[i];
        if (c->open && !c->writing && !c->waiting) conn_close(c);
    }
}

static void on_hard_stop(uv_timer_t *t)
{
    lg_t *lg = t->data;
    for (int i = 0; i < lg->o.connections; i++) {
        conn_t *c = &lg->conns[i];
        if (!c->open) continue;
        if (c->waiting) {
            fprintf(stderr, "loadgen: connection %d: no answer %d ms after the deadline\n",
                    c->index, DRAIN_TIMEOUT_MS);
            lg->errors++;
        }
        conn_close(c);
    }
}

static int run(lg_t *lg)
{
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(lg->o.host, lg->o.port, &addr);
    if (rc < 0) return rc;
    lg->loop = uv_default_loop();
    lg->base_time = time(NULL) - 60;   /* a little in the past: never in the future */
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
    uv_timer_init(lg->loop, &lg->deadline);
    uv_timer_init(lg->loop, &lg->hard_stop);
    lg->deadline.data = lg->hard_stop.data = lg;
    lg->conns = xcalloc((size_t)lg->o.connections, sizeof *lg->conns);
    for (int i = 0; i < lg->o.connections; i++) {
        lg->conns[i].index = i;
        if ((rc = conn_start(lg, &lg->conns[i], &addr)) < 0) return rc;
    }
    lg->start_ns = lg->last_done_ns = uv_hrtime();
    uint64_t ms = (uint64_t)(lg->o.seconds * 1000);
    uv_timer_start(&lg->deadline, on_deadline, ms, 0);
    uv_timer_start(&lg->hard_stop, on_hard_stop, ms + DRAIN_TIMEOUT_MS, 0);
    uv_run(lg->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&lg->deadline, NULL);
    uv_close((uv_handle_t *)&lg->hard_stop, NULL);
    uv_run(lg->loop, UV_RUN_DEFAULT);
    return uv_loop_close(lg->loop);
}

/* ---- options ------------------------------------------------------------------------ */

static void usage(void)
{
    fputs("usage: loadgen --url http://127.0.0.1:PORT[/v1/events] --key KEY [--connections N]\n"
          "               [--batch N] [--seconds S] [--id-prefix P] [--sites A,B]\n"
          "               [--materials X,Y] [--scenario NAME]\n", stderr);
}

static int split_list(char *s, char **out, int max)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < max;
         tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static int parse_long(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Only plain http to this machine: the benchmark never sends traffic elsewhere. */
static int parse_url(opts_t *o)
{
    const char *p = o->url;
    if (strncmp(p, "http://", 7) != 0) return -1;
    p += 7;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    if (!colon || (slash && slash < colon) || (size_t)(colon - p) >= sizeof o->host) return -1;
    memcpy(o->host, p, (size_t)(colon - p));
    o->host[colon - p] = '\0';
    if (strcmp(o->host, "localhost") == 0) snprintf(o->host, sizeof o->host, "127.0.0.1");
    if (strcmp(o->host, "127.0.0.1") != 0) return -1;
    char port[8] = "";
    size_t plen = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
    if (plen == 0 || plen >= sizeof port) return -1;
    memcpy(port, colon + 1, plen);
    if (parse_long(port, 1, 65535, &o->port) < 0) return -1;
    snprintf(o->path, sizeof o->path, "%s", slash && slash[1] ? slash : "/v1/events");
    return 0;
}

static int parse_opt(opts_t *o, int ch, char *arg)
{
    char *end;
    switch (ch) {
    case 'u': o->url = arg; return parse_url(o);
    case 'k': o->key = arg; return 0;
    case 'c': return parse_long(arg, 1, MAX_CONNECTIONS, &o->connections);
    case 'b': return parse_long(arg, 1, MAX_BATCH, &o->batch);
    case 'p': o->id_prefix = arg; return 0;
    case 'n': o->scenario = arg; return 0;
    case 'S': o->nsites = split_list(arg, o->sites, MAX_LIST); return o->nsites ? 0 : -1;
    case 'm': o->nmaterials = split_list(arg, o->materials, MAX_LIST); return o->nmaterials ? 0 : -1;
    case 's':
        o->seconds = strtod(arg, &end);
        return (*end || o->seconds <= 0 || o->seconds > 3600) ? -1 : 0;
    default: return -1;
    }
}

static int parse_opts(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", 1, 0, 'u'}, {"key", 1, 0, 'k'}, {"connections", 1, 0, 'c'},
        {"batch", 1, 0, 'b'}, {"seconds", 1, 0, 's'}, {"id-prefix", 1, 0, 'p'},
        {"sites", 1, 0, 'S'}, {"materials", 1, 0, 'm'}, {"scenario", 1, 0, 'n'}, {0, 0, 0, 0}};
    static char def_site[] = "BENCH-1", def_mat[] = "PET";
    *o = (opts_t){.connections = 1, .batch = 1, .seconds = 10, .id_prefix = "lg",
                  .sites = {def_site}, .nsites = 1, .materials = {def_mat}, .nmaterials = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (parse_opt(o, ch, optarg) < 0) {
            fprintf(stderr, "loadgen: bad option %s\n", argv[optind - 1]);
            return -1;
        }
    }
    if (!o->url || !o->key || optind != argc) return -1;
    if (!o->scenario) o->scenario = o->batch > 1 ? "batch" : "single";
    return 0;
}

int main(int argc, char **argv)
{
    static lg_t lg;
    if (parse_opts(&lg.o, argc, argv) < 0) {
        usage();
        return 2;
    }
    int rc = run(&lg);
    if (rc < 0) fprintf(stderr, "loadgen: %s\n", uv_strerror(rc));
    double secs = (double)(lg.last_done_ns - lg.start_ns) / 1e9;
    if (secs <= 0) secs = 1e-9;
    if (lg.dup_only)
        fprintf(stderr, "loadgen: %llu answers were 200 (every event a duplicate): reuse of "
                        "--id-prefix?\n", lg.dup_only);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    fprintf(stderr, "loadgen: %s: %llu requests of %d event(s) on %d connection(s); loadgen used "
            "%.2f s of CPU (%.1f%% of one core)\n", lg.o.scenario, lg.requests, lg.o.batch,
            lg.o.connections, cpu, 100 * cpu / secs);
    printf("scenario=%s events=%llu seconds=%.3f events_per_s=%.1f p50_ms=%.3f p99_ms=%.3f "
           "errors=%llu\n", lg.o.scenario, lg.events, secs, (double)lg.events / secs,
           hist_quantile(&lg, 0.50), hist_quantile(&lg, 0.99), lg.errors);
    return (rc < 0 || lg.errors) ? 1 : 0;
}

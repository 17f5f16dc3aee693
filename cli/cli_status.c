/* cli_status — `circa status`: liveness, readiness and the daemon's numbers, in a few lines. */
#include "cli_status.h"
#include "cli_daemon.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli_db.h"

static const char usage[] =
    "usage: circa status [--help]\n"
    "Asks circad (CIRCA_URL, else http://$CIRCA_LISTEN, default 127.0.0.1:8080) for\n"
    "/healthz, /readyz, /metrics and, with a key (CIRCA_KEY, else $CIRCA_DATA_DIR/admin.key),\n"
    "/v1/status; prints version, uptime, events, ledger head, database and adapters.\n"
    "Exit 0 when circad is up and its database reachable, 1 otherwise.\n";

typedef struct {
    CURL *curl;
    char base[512];
    char auth[600];      /* "Authorization: Bearer …" or "" */
} client_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* GET base+path; the status (0 on a transport error, curl's message in body). */
static long get(client_t *c, const char *path, int with_key, buf_t *body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    struct curl_slist *h = with_key && c->auth[0] ? curl_slist_append(NULL, c->auth) : NULL;
    buf_reset(body);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    long status = 0;
    if (rc != CURLE_OK) buf_puts(body, curl_easy_strerror(rc));
    else curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    buf_putc(body, 0);
    body->len--;
    return status;
}

/* No key is fine: only /v1/status needs one. */
static void find_key(client_t *c)
{
    char key[512];
    if (cli_daemon_key(key, sizeof key) == 0)
        snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", key);
}

static void find_base(client_t *c)
{
    cli_daemon_url(c->base, sizeof c->base);
}

/* The value of a Prometheus sample whose line starts with prefix (name, or name{labels});
 * NAN-free: returns 0 and leaves *v alone when absent. */
static int metric(const char *text, const char *prefix, double *v)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) != 0 || (p[n] != ' ' && p[n] != '{')) continue;
        const char *sp = strchr(p, ' ');
        if (!sp) return 0;
        *v = strtod(sp + 1, NULL);
        return 1;
    }
    return 0;
}

/* A label's value of the first sample named name: circa_build_info{version="0.1.0"}. */
static int metric_label(const char *text, const char *name, const char *label, char *out,
                        size_t outlen)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s{", name);
    const char *p = strstr(text, pat);
    if (!p) return 0;
    const char *eol = strchr(p + 1, '\n');
    snprintf(pat, sizeof pat, "%s=\"", label);
    const char *l = strstr(p, pat);
    if (!l || (eol && l > eol)) return 0;
    l += strlen(pat);
    snprintf(out, outlen, "%.*s", (int)strcspn(l, "\""), l);
    return 1;
}

static void uptime(double s, char *out, size_t n)
{
    long t = (long)s;
    if (t >= 86400) snprintf(out, n, "%ldd %02ldh %02ldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
    else snprintf(out, n, "%ldh %02ldm %02lds", t / 3600, t % 3600 / 60, t % 60);
}

/* Adapter lines from /metrics: circa_adapter_up{adapter="name"} 1|0, when circad has them. */
static void print_adapter_metrics(const char *m)
{
    static const char name[] = "circa_adapter_up{";
    for (const char *p = strstr(m, name); p; p = strstr(p + 1, name)) {
        if (p != m && p[-1] != '\n') continue;
        char who[128] = "?";
        const char *l = strstr(p, "adapter=\"");
        const char *sp = strchr(p, ' ');
        if (!sp) break;
        if (l && l < sp) snprintf(who, sizeof who, "%.*s", (int)strcspn(l + 9, "\""), l + 9);
        printf("%-11s %s %s\n", "adapter", who, strtod(sp + 1, NULL) > 0 ? "up" : "down");
    }
}

/* GET /v1/status (a small JSON summary for the key's tenant), when circad offers it. */
static void print_v1_status(client_t *c, buf_t *b)
{
    if (!c->auth[0] || get(c, "/v1/status", 1, b) != 200) return;
    cJSON *j = cJSON_Parse(b->data);
    const cJSON *t = cJSON_GetObjectItem(j, "tenant"), *ev = cJSON_GetObjectItem(j, "events");
    const cJSON *head = cJSON_GetObjectItem(j, "head");
    const cJSON *seq = cJSON_GetObjectItem(head, "seq"), *blk = cJSON_GetObjectItem(head, "block");
    if (cJSON_IsString(t) && cJSON_IsNumber(ev))
        printf("%-11s tenant %s: %.0f events", "ledger", t->valuestring, ev->valuedouble);
    if (cJSON_IsString(t) && cJSON_IsNumber(ev) && cJSON_IsNumber(seq))
        printf(", head seq %.0f", seq->valuedouble);
    if (cJSON_IsString(t) && cJSON_IsNumber(ev) && cJSON_IsString(blk))
        printf(", block %.16s…", blk->valuestring);
    if (cJSON_IsString(t) && cJSON_IsNumber(ev)) putchar('\n');
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "adapters")) {
        const cJSON *n = cJSON_GetObjectItem(a, "name"), *s = cJSON_GetObjectItem(a, "state");
        if (cJSON_IsString(n) && cJSON_IsString(s))
            printf("%-11s %s %s\n", "adapter", n->valuestring, s->valuestring);
    }
    cJSON_Delete(j);
}

static int report(client_t *c)
{
    buf_t b = BUF_INIT, m = BUF_INIT;
    long live = get(c, "/healthz", 0, &b);
    if (live != 200) {
        printf("%-11s %s  %s\n", "circad", c->base, live ? "not live" : "unreachable");
        if (!live) fprintf(stderr, "circa: %s: %s\n", c->base, b.data);
        buf_free(&b);
        return CLI_EXIT_FAIL;
    }
    long ready = get(c, "/readyz", 0, &b);
    int db_up = ready == 200 && strstr(b.data, "\"database\":\"up\"");
    get(c, "/metrics", 0, &m);
    const char *mt = m.data ? m.data : "";
    char version[64] = "?", up[64] = "?";
    double v = 0, conns = 0, rdy = 0;
    metric_label(mt, "circa_build_info", "version", version, sizeof version);
    if (metric(mt, "circa_uptime_seconds", &v)) uptime(v, up, sizeof up);
    printf("%-11s %s  up, version %s, uptime %s\n", "circad", c->base, version, up);
    printf("%-11s %s", "database", db_up ? "up" : "down");
    if (metric(mt, "circa_db_connections", &conns) && metric(mt, "circa_db_connections_ready", &rdy))
        printf(" (%.0f of %.0f connections ready)", rdy, conns);
    putchar('\n');
    if (metric(mt, "circa_events_stored_total", &v)) printf("%-11s %.0f stored since start\n", "events", v);
    print_v1_status(c, &b);
    print_adapter_metrics(mt);
    buf_free(&b);
    buf_free(&m);
    return db_up ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_status_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) return fputs(usage, stdout), CLI_EXIT_OK;
        fprintf(stderr, "circa status: unknown argument '%s'; see 'circa status --help'\n", argv[i]);
        return CLI_EXIT_USAGE;
    }
    client_t c = {0};
    find_base(&c);
    find_key(&c);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.curl = curl_easy_init();
    if (!c.curl) return fputs("circa: cannot initialise libcurl\n", stderr), CLI_EXIT_FAIL;
    int rc = report(&c);
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    return rc;
}

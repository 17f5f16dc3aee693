/* plm — PLM adapter: polling with curlm, master data through schema/011, signed webhook. */
#include "plm.h"
#include "api.h"
#include "buf.h"
#include "curlm.h"
#include "log.h"
#include "plm_map.h"
#include "problem.h"
#include "tenants.h"

#include <curl/curl.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLM_MAX_BODY (16u << 20)     /* a larger answer is an error, not a memory problem */
#define PLM_MAX_SECRET 4096
#define PLM_SIG_HEADER "X-Circa-Signature"

const store_stmt_t plm_stmts[] = {
    {"plm_state", "SELECT cursor, etag, etag_url FROM plm_source "
                  "WHERE adapter = $1 AND source_url = $2"},
    {"plm_ok", "SELECT circa_plm_ok($1, $2, $3, $4, $5, $6, $7::bigint)"},
    {"plm_failed", "SELECT circa_plm_failed($1, $2, $3, $4)"},
    {"plm_product", "SELECT circa_plm_product($1, $2, $3::jsonb)"},
    {"plm_material", "SELECT circa_plm_material($1, $2, $3)"},
    {NULL, NULL},
};

typedef struct plm {
    app_t *app;
    char name[65], tenant[65];
    char *url;
    double interval_s, timeout_s, retry_min_s, retry_max_s;
    struct curl_slist *headers;      /* from the configuration */
    plm_map_t *map;
    unsigned char *secret;           /* NULL: no webhook */
    size_t secret_len;
    /* polling state; cursor/etag/etag_url as in plm_source */
    int loaded, failures;
    char *cursor, *etag, *etag_url, *page;   /* page: AAS paging cursor within one poll */
    curlm_t *cm;
    CURL *easy;
    struct curl_slist *req_headers;
    char *req_url;
    buf_t body;
    char resp_etag[256];
    char errbuf[CURL_ERROR_SIZE];
    uv_timer_t timer;
    int txs;                         /* store transactions in flight */
    int stopping, timer_closed;
    void (*done)(void *);
    void *done_arg;
    struct plm *next;
} plm_t;

static plm_t *instances;             /* running instances, for the webhook's lookup */

static void fetch(plm_t *p);
static void load_state(plm_t *p);
static void direct_check(void);

/* ---- configuration ----------------------------------------------------------------------- */

static char *read_small_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = xmalloc(max + 1);
    *len = fread(s, 1, max + 1, f);
    int bad = ferror(f) || *len > max;
    fclose(f);
    if (bad) {
        free(s);
        return NULL;
    }
    s[*len] = '\0';
    return s;
}

static double num_or(const cJSON *obj, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int conf_times(plm_t *p, const cJSON *src, char *err, size_t errlen)
{
    p->interval_s = num_or(src, "interval_s", 300);
    p->timeout_s = num_or(src, "timeout_s", 30);
    p->retry_min_s = num_or(src, "retry_min_s", 1);
    p->retry_max_s = num_or(src, "retry_max_s", p->interval_s > 300 ? p->interval_s : 300);
    if (!(p->interval_s >= 0.1 && p->timeout_s > 0 && p->retry_min_s >= 0.01 &&
          p->retry_max_s >= p->retry_min_s && p->interval_s < 1e6 && p->retry_max_s < 1e6)) {
        snprintf(err, errlen, "source: interval_s ≥ 0.1, timeout_s > 0 and "
                              "0.01 ≤ retry_min_s ≤ retry_max_s are required");
        return -1;
    }
    return 0;
}

static int conf_headers(plm_t *p, const cJSON *src, char *err, size_t errlen)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(src, "headers"), *c;
    if (h && !cJSON_IsObject(h)) {
        snprintf(err, errlen, "source.headers must be an object of strings");
        return -1;
    }
    cJSON_ArrayForEach(c, h) {
        if (!cJSON_IsString(c) || strpbrk(c->string, ":\r\n") || strpbrk(c->valuestring, "\r\n")) {
            snprintf(err, errlen, "source.headers.%.64s: must be a one-line string", c->string);
            return -1;
        }
        buf_t line = BUF_INIT;
        buf_printf(&line, "%s: %s", c->string, c->valuestring);
        p->headers = curl_slist_append(p->headers, line.data);
        buf_free(&line);
    }
    return 0;
}

static int conf_secret(plm_t *p, const cJSON *conf, char *err, size_t errlen)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(conf, "webhook_secret_file");
    if (!f || cJSON_IsNull(f)) return 0;
    size_t n = 0;
    char *s = cJSON_IsString(f) ? read_small_file(f->valuestring, PLM_MAX_SECRET, &n) : NULL;
    while (s && n && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;   /* an editor's newline */
    if (!s || n < 16) {
        snprintf(err, errlen, "webhook_secret_file: cannot read a secret of 16 to %d bytes",
                 PLM_MAX_SECRET);
        free(s);
        return -1;
    }
    p->secret = (unsigned char *)s;
    p->secret_len = n;
    return 0;
}

static int conf_names(plm_t *p, const cJSON *conf, char *err, size_t errlen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(conf, "name");
    const cJSON *tenant = cJSON_GetObjectItemCaseSensitive(conf, "tenant");
    if (!cJSON_IsString(name) || !api_valid_code(name->valuestring)) {
        snprintf(err, errlen, "name must be 1 to 64 letters, digits, '-', '_' or '.'");
        return -1;
    }
    if (tenant && (!cJSON_IsString(tenant) || strlen(tenant->valuestring) > 64)) {
        snprintf(err, errlen, "tenant must be a tenant id");
        return -1;
    }
    snprintf(p->name, sizeof p->name, "%s", name->valuestring);
    snprintf(p->tenant, sizeof p->tenant, "%s", tenant ? tenant->valuestring : "demo");
    return 0;
}

static int conf_source(plm_t *p, const cJSON *src, char *err, size_t errlen)
{
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(src, "url");
    if (!cJSON_IsObject(src) || !cJSON_IsString(url) ||
        (strncmp(url->valuestring, "http://", 7) && strncmp(url->valuestring, "https://", 8))) {
        snprintf(err, errlen, "source.url must be an http:// or https:// URL");
        return -1;
    }
    p->url = xstrdup(url->valuestring);
    if (conf_times(p, src, err, errlen) || conf_headers(p, src, err, errlen)) return -1;
    p->map = plm_map_new(src, err, errlen);
    return p->map ? 0 : -1;
}

static void plm_free(plm_t *p)
{
    curl_slist_free_all(p->headers);
    curl_slist_free_all(p->req_headers);
    plm_map_free(p->map);
    free(p->secret);
    free(p->url);
    free(p->cursor);
    free(p->etag);
    free(p->etag_url);
    free(p->page);
    free(p->req_url);
    buf_free(&p->body);
    free(p);
}

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = s && *s ? xstrdup(s) : NULL;
}

/* ---- logging ----------------------------------------------------------------------------- */

static void log_plm(int level, const plm_t *p, const char *msg, const char *k1, const char *v1,
                    const char *numkey, double num)
{
    if (!log_enabled(level)) return;
    buf_t f = BUF_INIT;
    buf_puts(&f, "\"adapter\":");
    buf_json_str(&f, p->name, strlen(p->name));
    if (k1) {
        buf_printf(&f, ",\"%s\":", k1);
        buf_json_str(&f, v1, strlen(v1));
    }
    if (numkey) buf_printf(&f, ",\"%s\":%.0f", numkey, num);
    log_fields(level, msg, f.data);
    buf_free(&f);
}

/* ---- scheduling and failures ------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    plm_t *p = t->data;
    direct_check();
    if (p->stopping) return;
    if (p->loaded) fetch(p);
    else load_state(p);
}

static void schedule(plm_t *p, double seconds)
{
    if (!p->stopping) uv_timer_start(&p->timer, on_timer, (uint64_t)llround(seconds * 1000), 0);
}

static void maybe_done(plm_t *p)
{
    if (!p->stopping || p->cm || !p->timer_closed || p->txs) return;
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    log_plm(LOG_INFO, p, "plm adapter stopped", NULL, NULL, NULL, 0);
    plm_free(p);
    if (done) done(arg);
}

static void failure_saved(store_tx_t *tx, store_status_t st, void *arg)
{
    plm_t *p = arg;
    p->txs--;
    maybe_done(p);
}

/* Exponential back-off: retry_min_s doubling per consecutive failure, up to retry_max_s. The
 * failure is recorded in plm_source when the database can take it. */
static void failed(plm_t *p, const char *why)
{
    p->failures++;
    free(p->page);
    p->page = NULL;
    double delay = p->retry_min_s * ldexp(1, p->failures > 30 ? 30 : p->failures - 1);
    if (delay > p->retry_max_s) delay = p->retry_max_s;
    log_plm(LOG_WARN, p, "plm poll failed; retrying", "error", why, "retry_in_ms", delay * 1000);
    const char *v[4] = {p->name, p->tenant, p->url, why};
    store_tx_t *tx = store_tx_new(p->app->store, failure_saved, p);
    store_tx_exec(tx, "plm_failed", 4, v, NULL, NULL);
    p->txs++;
    store_tx_submit(tx);
    schedule(p, delay);
}

/* ---- state ------------------------------------------------------------------------------- */

static void state_loaded(store_tx_t *tx, store_status_t st, void *arg)
{
    plm_t *p = arg;
    p->txs--;
    if (p->stopping) return maybe_done(p);
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r) return failed(p, "database: cannot read the polling state");
    if (PQntuples(r) == 1) {
        set_str(&p->cursor, PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0));
        set_str(&p->etag, PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1));
        set_str(&p->etag_url, PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2));
    }
    p->loaded = 1;
    log_plm(LOG_INFO, p, "plm adapter resumes", "cursor", p->cursor ? p->cursor : "", NULL, 0);
    fetch(p);
}

static void load_state(plm_t *p)
{
    const char *v[2] = {p->name, p->url};
    store_tx_t *tx = store_tx_new(p->app->store, state_loaded, p);
    store_tx_exec(tx, "plm_state", 2, v, NULL, NULL);
    p->txs++;
    store_tx_submit(tx);
}

/* ---- writing a batch --------------------------------------------------------------------- */

/* One batch in one transaction: materials the bills need, the products, and for a poll the
 * new cursor and ETag, so the state only moves once the master data is committed. */
typedef struct {
    plm_t *p;
    int nmat, nprod, rejected;
    char *reasons;
    http_req_t *req;                 /* the webhook's request, NULL for a poll */
    char *cursor, *etag, *etag_url, *next_page;
} write_t;

static void write_free(write_t *w)
{
    free(w->reasons);
    free(w->cursor);
    free(w->etag);
    free(w->etag_url);
    free(w->next_page);
    free(w);
}

static void exec_batch(store_tx_t *tx, const plm_t *p, write_t *w, const plm_batch_t *b)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, b->materials) {
        const char *v[3] = {p->tenant, cJSON_GetObjectItem(c, "code")->valuestring,
                            cJSON_GetObjectItem(c, "name")->valuestring};
        store_tx_exec(tx, "plm_material", 3, v, NULL, NULL);
        w->nmat++;
    }
    cJSON_ArrayForEach(c, b->products) {
        cJSON *doc = cJSON_Duplicate(c, 1);
        cJSON *code = cJSON_DetachItemFromObjectCaseSensitive(doc, "code");
        char *json = cJSON_PrintUnformatted(doc);
        const char *v[3] = {p->tenant, code->valuestring, json};
        store_tx_exec(tx, "plm_product", 3, v, NULL, NULL);
        free(json);
        cJSON_Delete(code);
        cJSON_Delete(doc);
        w->nprod++;
    }
}

/* Outcomes of the products: [0] created, [1] updated, [2] same; materials created. */
static int count_outcomes(store_tx_t *tx, const write_t *w, long counts[3])
{
    static const char *const words[3] = {"created", "updated", "same"};
    int mats = 0;
    for (int i = 0; i < w->nmat; i++)
        mats += strcmp(PQgetvalue(store_tx_result(tx, i), 0, 0), "created") == 0;
    for (int i = 0; i < w->nprod; i++) {
        const char *s = PQgetvalue(store_tx_result(tx, w->nmat + i), 0, 0);
        for (int k = 0; k < 3; k++) counts[k] += strcmp(s, words[k]) == 0;
    }
    return mats;
}

static void log_written(const plm_t *p, const write_t *w, const long counts[3], int mats)
{
    if (!log_enabled(LOG_INFO)) return;
    buf_t f = BUF_INIT;
    buf_puts(&f, "\"adapter\":");
    buf_json_str(&f, p->name, strlen(p->name));
    buf_printf(&f, ",\"via\":\"%s\",\"created\":%ld,\"updated\":%ld,\"same\":%ld,"
                   "\"materials_created\":%d,\"rejected\":%d",
               w->req ? "webhook" : "poll", counts[0], counts[1], counts[2], mats, w->rejected);
    if (w->reasons) {
        buf_puts(&f, ",\"reasons\":");
        buf_json_str(&f, w->reasons, strlen(w->reasons));
    }
    log_fields(w->rejected ? LOG_WARN : LOG_INFO, "plm products written", f.data);
    buf_free(&f);
}

static void poll_written(plm_t *p, write_t *w)
{
    set_str(&p->cursor, w->cursor);
    if (w->etag_url) {
        set_str(&p->etag, w->etag);
        set_str(&p->etag_url, w->etag_url);
    }
    p->failures = 0;
    set_str(&p->page, w->next_page);
    if (p->page) fetch(p);
    else schedule(p, p->interval_s);
}

static void webhook_answer(write_t *w, const long counts[3], int mats)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "adapter", w->p->name);
    cJSON_AddNumberToObject(j, "created", (double)counts[0]);
    cJSON_AddNumberToObject(j, "updated", (double)counts[1]);
    cJSON_AddNumberToObject(j, "same", (double)counts[2]);
    cJSON_AddNumberToObject(j, "materials_created", mats);
    cJSON_AddNumberToObject(j, "rejected", w->rejected);
    if (w->reasons) cJSON_AddStringToObject(j, "reasons", w->reasons);
    api_send_json(w->req, 200, j, NULL);
}

static void batch_written(store_tx_t *tx, store_status_t st, void *arg)
{
    write_t *w = arg;
    plm_t *p = w->p;
    p->txs--;
    long counts[3] = {0, 0, 0};
    int mats = st == STORE_OK ? count_outcomes(tx, w, counts) : 0;
    /* Event validation reads a cache of master data: it must see these versions at once. */
    if (st == STORE_OK && (counts[0] || counts[1] || mats))
        tenants_md_changed(p->app->tenants, p->tenant);
    if (st == STORE_OK) log_written(p, w, counts, mats);
    if (w->req && st == STORE_OK) webhook_answer(w, counts, mats);
    else if (w->req) api_store_failed(w->req, tx, st);
    else if (p->stopping) {}
    else if (st == STORE_OK) poll_written(p, w);
    else failed(p, st == STORE_SQL_ERROR ? store_tx_error(tx) : "database unavailable");
    write_free(w);
    maybe_done(p);
}

static void submit_batch(plm_t *p, write_t *w, const plm_batch_t *b)
{
    w->p = p;
    w->rejected = b->rejected;
    if (b->reasons.len) w->reasons = xstrdup(b->reasons.data);
    store_tx_t *tx = store_tx_new(p->app->store, batch_written, w);
    exec_batch(tx, p, w, b);
    if (!w->req) {
        char written[24];
        snprintf(written, sizeof written, "%d", w->nprod);
        const char *v[7] = {p->name, p->tenant, p->url, w->cursor, w->etag, w->etag_url, written};
        store_tx_exec(tx, "plm_ok", 7, v, NULL, NULL);
    }
    p->txs++;
    store_tx_submit(tx);
}

/* ---- fetching ---------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    plm_t *p = arg;
    if (p->body.len + size * n > PLM_MAX_BODY) return 0;   /* ends the transfer */
    buf_append(&p->body, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    plm_t *p = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(data, "ETag:", 5) == 0) {
        size_t i = 5, end = len;
        while (i < end && (data[i] == ' ' || data[i] == '\t')) i++;
        while (end > i && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' '))
            end--;
        snprintf(p->resp_etag, sizeof p->resp_etag, "%.*s", (int)(end - i), data + i);
    }
    return len;
}

/* The URL of this request: a json source's cursor, or the next AAS page, as a query. */
static char *request_url(const plm_t *p, CURL *e)
{
    const char *param = p->page ? "cursor" : plm_map_is_aas(p->map) ? NULL
                                                                    : plm_map_cursor_param(p->map);
    const char *value = p->page ? p->page : p->cursor;
    buf_t u = BUF_INIT;
    buf_puts(&u, p->url);
    if (param && value) {
        char *esc = curl_easy_escape(e, value, 0);
        buf_printf(&u, "%c%s=%s", strchr(p->url, '?') ? '&' : '?', param, esc);
        curl_free(esc);
    }
    return buf_steal(&u);
}

static struct curl_slist *request_headers(const plm_t *p)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    for (const struct curl_slist *c = p->headers; c; c = c->next) h = curl_slist_append(h, c->data);
    if (p->etag && p->etag_url && strcmp(p->etag_url, p->req_url) == 0) {
        buf_t line = BUF_INIT;
        buf_printf(&line, "If-None-Match: %s", p->etag);
        h = curl_slist_append(h, line.data);
        buf_free(&line);
    }
    return h;
}

static void fetched(CURL *e, CURLcode rc, void *arg);

static void fetch(plm_t *p)
{
    CURL *e = curl_easy_init();
    if (!e) return failed(p, "cannot create a transfer");
    free(p->req_url);
    p->req_url = request_url(p, e);
    curl_slist_free_all(p->req_headers);
    p->req_headers = request_headers(p);
    buf_reset(&p->body);
    p->resp_etag[0] = p->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, p->req_url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->req_headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)llround(p->timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->errbuf);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "circad-plm");
    if (curlm_submit(p->cm, e, fetched, p)) {
        curl_easy_cleanup(e);
        return failed(p, "cannot start a transfer");
    }
    p->easy = e;
}

/* A 200: the document mapped and written, with the state it moves to. */
static void apply_page(plm_t *p)
{
    cJSON *doc = cJSON_ParseWithLength(p->body.data ? p->body.data : "", p->body.len);
    if (!doc) return failed(p, "the answer is not JSON");
    plm_batch_t b;
    char err[200];
    int bad = plm_map_apply(p->map, doc, &b, err, sizeof err);
    cJSON_Delete(doc);
    if (bad) {
        plm_batch_free(&b);
        return failed(p, err);
    }
    write_t *w = xcalloc(1, sizeof *w);
    int aas = plm_map_is_aas(p->map);
    const char *cursor = aas ? NULL : b.cursor ? b.cursor : p->cursor;
    w->cursor = cursor ? xstrdup(cursor) : NULL;
    if (aas && b.cursor) w->next_page = xstrdup(b.cursor);
    /* An AAS page after the first is no answer to a conditional request of the next poll. */
    if (!p->page) {
        w->etag = p->resp_etag[0] ? xstrdup(p->resp_etag) : NULL;
        w->etag_url = xstrdup(p->req_url);
    } else {
        w->etag = p->etag ? xstrdup(p->etag) : NULL;
        w->etag_url = p->etag_url ? xstrdup(p->etag_url) : NULL;
    }
    submit_batch(p, w, &b);
    plm_batch_free(&b);
}

/* A 304: nothing changed; the state is only marked as polled. */
static void not_modified(plm_t *p)
{
    plm_batch_t none = {cJSON_CreateArray(), cJSON_CreateArray(), NULL, 0, BUF_INIT};
    write_t *w = xcalloc(1, sizeof *w);
    w->cursor = p->cursor ? xstrdup(p->cursor) : NULL;
    w->etag = p->etag ? xstrdup(p->etag) : NULL;
    w->etag_url = p->etag_url ? xstrdup(p->etag_url) : NULL;
    log_plm(LOG_DEBUG, p, "plm source not modified", "url", p->req_url, NULL, 0);
    submit_batch(p, w, &none);
    plm_batch_free(&none);
}

static void fetched(CURL *e, CURLcode rc, void *arg)
{
    plm_t *p = arg;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    p->easy = NULL;
    direct_check();
    if (p->stopping) return;   /* curlm_close cancelled it; maybe_done runs when it closes */
    char why[CURL_ERROR_SIZE + 64];
    if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "%s%s%s", curl_easy_strerror(rc), p->errbuf[0] ? ": " : "",
                 p->errbuf);
        return failed(p, why);
    }
    if (status == 304) return not_modified(p);
    if (status == 200) return apply_page(p);
    snprintf(why, sizeof why, "HTTP status %ld from the source", status);
    failed(p, why);
}

/* ---- webhook ----------------------------------------------------------------------------- */

static plm_t *find_instance(const char *name)
{
    for (plm_t *p = instances; p; p = p->next)
        if (!p->stopping && strcmp(p->name, name) == 0) return p;
    return NULL;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "sha256=<64 hex digits>" of HMAC-SHA256(secret, raw body), compared in constant time. */
static int signature_ok(const plm_t *p, const char *header, const char *body, size_t len)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[32];
    unsigned int n = 0;
    if (!p->secret || !header || strncmp(header, "sha256=", 7) || strlen(header + 7) != 64)
        return 0;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(header[7 + 2 * i]), lo = hexval(header[8 + 2 * i]);
        if (hi < 0 || lo < 0) return 0;
        got[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!HMAC(EVP_sha256(), p->secret, (int)p->secret_len, (const unsigned char *)body, len,
              want, &n) || n != 32)
        return 0;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

/* No API key: the signature authenticates the sender. An unknown adapter, one without a
 * secret and a bad signature all get the same 401, so names cannot be probed. */
static void webhook(app_t *app, http_req_t *req, const router_match_t *m,
                    const auth_principal_t *who)
{
    plm_t *p = find_instance(m->params[0]);
    size_t len;
    const char *body = http_req_body(req, &len);
    if (!p || !signature_ok(p, http_req_header(req, PLM_SIG_HEADER), body, len)) {
        problem_send(req, 401, "unauthorized", "Unauthorized", NULL,
                     "the webhook needs a valid %s: sha256=<hex HMAC-SHA256 of the body>",
                     PLM_SIG_HEADER);
        return;
    }
    http_req_log_tenant(req, p->tenant);
    cJSON *doc = api_json_body(req);
    if (!doc) return;
    plm_batch_t b;
    char err[200];
    int bad = plm_map_apply(p->map, doc, &b, err, sizeof err);
    cJSON_Delete(doc);
    if (bad) {
        plm_batch_free(&b);
        problem_send(req, 422, "invalid-plm-document", "Invalid PLM document", NULL, "%s", err);
        return;
    }
    write_t *w = xcalloc(1, sizeof *w);
    w->req = req;
    submit_batch(p, w, &b);
    plm_batch_free(&b);
}

/* ---- life cycle -------------------------------------------------------------------------- */

int plm_start(app_t *app, const cJSON *conf, void **handle, char *err, size_t errlen)
{
    plm_t *p = xcalloc(1, sizeof *p);
    p->app = app;
    if (conf_names(p, conf, err, errlen) ||
        conf_source(p, cJSON_GetObjectItemCaseSensitive(conf, "source"), err, errlen) ||
        conf_secret(p, conf, err, errlen)) {
        plm_free(p);
        return -1;
    }
    if (find_instance(p->name)) {
        snprintf(err, errlen, "a PLM adapter named %s is already running", p->name);
        plm_free(p);
        return -1;
    }
    p->cm = curlm_new(app->loop);
    uv_timer_init(app->loop, &p->timer);
    p->timer.data = p;
    p->next = instances;
    instances = p;
    log_plm(LOG_INFO, p, "plm adapter started", "url", p->url, "interval_ms", p->interval_s * 1000);
    schedule(p, 0);
    *handle = p;
    return 0;
}

static void unlink_instance(plm_t *p)
{
    for (plm_t **pp = &instances; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static void timer_closed(uv_handle_t *h)
{
    plm_t *p = h->data;
    p->timer_closed = 1;
    maybe_done(p);
}

static void curlm_closed(void *arg)
{
    plm_t *p = arg;
    p->cm = NULL;
    maybe_done(p);
}

void plm_stop(void *handle, void (*done)(void *), void *arg)
{
    plm_t *p = handle;
    p->stopping = 1;
    p->done = done;
    p->done_arg = arg;
    unlink_instance(p);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, timer_closed);
    curlm_close(p->cm, curlm_closed, p);
}

/* ---- registration and the stop-gap direct start ------------------------------------------ */

/* Instances started from CIRCA_PLM_CONFIG. circad's stop order has no hook for them, so a
 * check handle (which does not keep the loop alive) watches for the HTTP server going away
 * (app->http set and then cleared) and stops them then, before the store closes under them
 * only for transactions already in flight, which the store still completes. */
static struct {
    app_t *app;
    void *handles[16];
    int n, running, seen_http;
    uv_check_t check;
} direct;

static void direct_stopped(void *arg)
{
    direct.running--;
}

/* Also called before an instance starts new work: the store may close in the same loop
 * iteration as the HTTP server, before this check handle's turn. */
static void direct_check(void)
{
    if (!direct.n) return;
    if (direct.app->http) direct.seen_http = 1;
    if (!direct.seen_http || direct.app->http) return;
    uv_check_stop(&direct.check);
    uv_close((uv_handle_t *)&direct.check, NULL);
    int n = direct.n;
    direct.n = 0;
    for (int i = 0; i < n; i++) plm_stop(direct.handles[i], direct_stopped, NULL);
}

static void direct_watch(uv_check_t *c)
{
    direct_check();
}

static void direct_start_one(app_t *app, const char *path)
{
    size_t len;
    char err[256] = "not valid JSON";
    char *text = read_small_file(path, 1 << 20, &len);
    cJSON *conf = text ? cJSON_ParseWithLength(text, len) : NULL;
    void *h = NULL;
    if (!text) snprintf(err, sizeof err, "cannot read it");
    if (direct.n == 16) snprintf(err, sizeof err, "more than 16 files");
    else if (conf && plm_start(app, conf, &h, err, sizeof err) == 0) {
        direct.handles[direct.n++] = h;
        direct.running++;
    }
    if (!h) log_msg(LOG_ERROR, "CIRCA_PLM_CONFIG %s: %s", path, err);
    cJSON_Delete(conf);
    free(text);
}

static void direct_start(app_t *app, const char *paths)
{
    direct.app = app;
    char *copy = xstrdup(paths), *save = NULL;
    for (char *path = strtok_r(copy, ":", &save); path; path = strtok_r(NULL, ":", &save))
        direct_start_one(app, path);
    free(copy);
    if (!direct.n) return;
    uv_check_init(app->loop, &direct.check);
    uv_check_start(&direct.check, direct_watch);
    uv_unref((uv_handle_t *)&direct.check);
}

void plm_register(app_t *app)
{
    api_route(app, "POST", "/v1/adapters/{name}/webhook", AUTH_PUBLIC, webhook);
    const char *paths = getenv("CIRCA_PLM_CONFIG");
    if (paths && *paths) direct_start(app, paths);
}

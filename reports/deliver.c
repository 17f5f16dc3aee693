/* deliver — signed report delivery with retries (see deliver.h). One delivery in memory goes:
 * claimed row → move(SENDING) → secret read and body signed on a worker thread → POST through
 * curlm → outcome decided → move(DELIVERED | RETRY_WAIT | GAVE_UP) → recorded → freed. */
#include "deliver.h"
#include "buf.h"
#include "curlm.h"
#include "log.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MAX 4096

typedef struct dl {
    struct deliver *d;
    deliver_state_t state;
    char tenant[65], id[65], sha[65];
    int attempt;
    double age_s;                  /* delivery's age at the claim */
    int64_t claimed_us, started_us;
    char *url, *secret, *secret_file, *body;
    size_t body_len;
    char sig[72];
    long status;                   /* HTTP status, 0 when none came */
    double duration_ms;
    char err[CURL_ERROR_SIZE + 96];
    char curl_err[CURL_ERROR_SIZE];
    unsigned long retry_ms;
    struct curl_slist *hdrs;
    uv_work_t work;
} dl_t;

struct deliver {
    app_t *app;
    deliver_config_t cfg;
    char owner[128];
    curlm_t *cm;
    int claiming, in_flight, stopping;
    void (*done)(void *);
    void *done_arg;
};

static const char *const state_names[DELIVER_NSTATES] = {"PENDING", "SENDING", "DELIVERED",
                                                         "RETRY_WAIT", "GAVE_UP"};

/* The only transitions there are; anything else is a bug and is refused. */
static const unsigned char allowed[DELIVER_NSTATES][DELIVER_NSTATES] = {
    [DELIVER_PENDING] = {[DELIVER_SENDING] = 1},
    [DELIVER_SENDING] = {[DELIVER_DELIVERED] = 1, [DELIVER_RETRY_WAIT] = 1, [DELIVER_GAVE_UP] = 1},
    [DELIVER_RETRY_WAIT] = {[DELIVER_SENDING] = 1},
};

static void sign_and_send(dl_t *x);
static void record(dl_t *x);

const char *deliver_state_name(deliver_state_t s)
{
    return s < DELIVER_NSTATES ? state_names[s] : "?";
}

unsigned long deliver_backoff_ms(const deliver_config_t *cfg, int attempt)
{
    unsigned long ms = cfg->retry_min_ms;
    for (int i = 1; i < attempt && ms < cfg->retry_max_ms; i++) ms *= 2;
    return ms < cfg->retry_max_ms ? ms : cfg->retry_max_ms;
}

int deliver_sign(const void *key, size_t keylen, const void *body, size_t len, char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, body, len, mac, &n) || n != 32) return -1;
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < n; i++) snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

int deliver_url_allowed(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
    if (ok)
        ok = strcmp(scheme, "https") == 0 ||
             (strcmp(scheme, "http") == 0 &&
              (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
               strcmp(host, "[::1]") == 0));
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* ---- logging and freeing ------------------------------------------------------------------- */

static void log_dl(int level, const dl_t *x, const char *msg)
{
    if (!log_enabled(level)) return;
    buf_t f = BUF_INIT;
    buf_puts(&f, "\"tenant\":");
    buf_json_str(&f, x->tenant, strlen(x->tenant));
    buf_puts(&f, ",\"delivery\":");
    buf_json_str(&f, x->id, strlen(x->id));
    buf_printf(&f, ",\"attempt\":%d,\"state\":\"%s\"", x->attempt, state_names[x->state]);
    if (x->status) buf_printf(&f, ",\"status\":%ld", x->status);
    if (x->err[0]) {
        buf_puts(&f, ",\"error\":");
        buf_json_str(&f, x->err, strlen(x->err));
    }
    log_fields(level, msg, f.data);
    buf_free(&f);
}

static void maybe_done(deliver_t *d)
{
    if (!d->stopping || d->cm || d->in_flight || d->claiming) return;
    void (*done)(void *) = d->done;
    void *arg = d->done_arg;
    free(d);
    if (done) done(arg);
}

static void dl_free(dl_t *x)
{
    deliver_t *d = x->d;
    free(x->url);
    free(x->secret);
    free(x->secret_file);
    free(x->body);
    curl_slist_free_all(x->hdrs);
    free(x);
    d->in_flight--;
    maybe_done(d);
}

/* ---- the state machine --------------------------------------------------------------------- */

/* The one place a delivery changes state; entering a state starts what that state does. */
static void move(dl_t *x, deliver_state_t to)
{
    if (!allowed[x->state][to]) {
        snprintf(x->err, sizeof x->err, "refused transition %s → %s", state_names[x->state],
                 state_names[to]);
        log_dl(LOG_ERROR, x, "delivery state machine");
        dl_free(x);   /* the row keeps its lease; it is retried when the lease expires */
        return;
    }
    x->state = to;
    log_dl(to == DELIVER_SENDING ? LOG_DEBUG : to == DELIVER_GAVE_UP ? LOG_WARN : LOG_INFO, x,
           to == DELIVER_SENDING ? "delivery attempt" : "delivery attempt finished");
    if (to == DELIVER_SENDING) sign_and_send(x);
    else record(x);
}

/* What the attempt's result means: a 2xx ends it, the rest waits its back-off unless that
 * would start the next attempt past give_up_s. A stop of circad retries at once elsewhere. */
static void decide(dl_t *x, int cancelled)
{
    deliver_t *d = x->d;
    if (!cancelled && x->status >= 200 && x->status < 300) {
        x->err[0] = '\0';
        return move(x, DELIVER_DELIVERED);
    }
    if (!x->err[0]) snprintf(x->err, sizeof x->err, "HTTP status %ld", x->status);
    x->retry_ms = cancelled ? 0 : deliver_backoff_ms(&d->cfg, x->attempt);
    double age = x->age_s + (double)(app_now_us() - x->claimed_us) / 1e6;
    if (!cancelled && age + x->retry_ms / 1000.0 > d->cfg.give_up_s)
        return move(x, DELIVER_GAVE_UP);
    move(x, DELIVER_RETRY_WAIT);
}

/* ---- SENDING: sign on a worker, POST through curlm ----------------------------------------- */

static char *read_secret(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = xmalloc(SECRET_MAX + 1);
    *len = fread(s, 1, SECRET_MAX + 1, f);
    int bad = ferror(f) || *len > SECRET_MAX || *len == 0;
    fclose(f);
    if (bad) return free(s), NULL;
    while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r')) (*len)--;   /* echo > file */
    s[*len] = '\0';
    return s;
}

/* Worker thread: the secret file is read here, not on the loop, and so is a large body's MAC. */
static void sign_work(uv_work_t *w)
{
    dl_t *x = w->data;
    size_t klen = 0;
    char *key = x->secret ? xstrdup(x->secret) : read_secret(x->secret_file, &klen);
    if (x->secret) klen = strlen(key);
    if (!key)
        snprintf(x->err, sizeof x->err, "cannot read the secret file %.200s", x->secret_file);
    else if (deliver_sign(key, klen, x->body, x->body_len, x->sig) != 0)
        snprintf(x->err, sizeof x->err, "cannot compute the signature");
    if (key) OPENSSL_cleanse(key, klen);
    free(key);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

static void add_header(dl_t *x, const char *name, const char *value)
{
    char line[256];
    snprintf(line, sizeof line, "%s: %s", name, value);
    x->hdrs = curl_slist_append(x->hdrs, line);
}

static CURL *make_request(dl_t *x)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%d", x->attempt);
    add_header(x, "Content-Type", "application/json");
    add_header(x, "Circa-Delivery-Id", x->id);
    add_header(x, "Circa-Delivery-Attempt", attempt);
    add_header(x, "Circa-Signature", x->sig);
    add_header(x, "Circa-Report-Sha256", x->sha);
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    /* http:// only where deliver_url_allowed let it (loopback); redirects are not followed. */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, strncmp(x->url, "https:", 6) ? "http" : "https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)x->d->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "circad-deliver");
    return e;
}

static void sent(CURL *e, CURLcode rc, void *arg)
{
    dl_t *x = arg;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_cleanup(e);
    x->duration_ms = (double)(app_now_us() - x->started_us) / 1000.0;
    if (rc != CURLE_OK) {
        snprintf(x->err, sizeof x->err, "%.80s%s%.255s", curl_easy_strerror(rc),
                 x->curl_err[0] ? ": " : "", x->curl_err);
        x->status = 0;
    }
    decide(x, rc == CURLE_ABORTED_BY_CALLBACK && x->d->stopping);
}

static void signed_cb(uv_work_t *w, int status)
{
    dl_t *x = w->data;
    deliver_t *d = x->d;
    x->started_us = app_now_us();
    if (d->stopping) {
        snprintf(x->err, sizeof x->err, "not sent: circad stopping");
        return decide(x, 1);
    }
    if (x->err[0] || !deliver_url_allowed(x->url)) {
        if (!x->err[0]) snprintf(x->err, sizeof x->err, "the URL is not https:// (or loopback http://)");
        return decide(x, 0);
    }
    CURL *e = make_request(x);
    if (!e || curlm_submit(d->cm, e, sent, x) != 0) {
        if (e) curl_easy_cleanup(e);
        snprintf(x->err, sizeof x->err, "cannot start a transfer");
        return decide(x, 0);
    }
}

static void sign_and_send(dl_t *x)
{
    x->work.data = x;
    if (uv_queue_work(x->d->app->loop, &x->work, sign_work, signed_cb) != 0) {
        snprintf(x->err, sizeof x->err, "cannot queue the signature");
        x->started_us = app_now_us();
        decide(x, 0);
    }
}

/* ---- recording the outcome ---------------------------------------------------------------- */

static void recorded(store_tx_t *tx, store_status_t st, void *arg)
{
    dl_t *x = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r || PQntuples(r) != 1) {
        /* The row stays SENDING under our lease; when it expires the delivery is retried. */
        snprintf(x->err, sizeof x->err, "recording the attempt failed: %.200s", store_tx_error(tx));
        log_dl(LOG_ERROR, x, "delivery not recorded");
    } else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        log_dl(LOG_WARN, x, "delivery claim was lost before its outcome was recorded");
    }
    dl_free(x);
}

static void record(dl_t *x)
{
    char attempt[16], started[32], duration[32], status[16], retry[24];
    snprintf(attempt, sizeof attempt, "%d", x->attempt);
    snprintf(started, sizeof started, "%.3f", (double)x->started_us / 1000.0);
    snprintf(duration, sizeof duration, "%.3f", x->duration_ms);
    snprintf(status, sizeof status, "%ld", x->status);
    snprintf(retry, sizeof retry, "%lu", x->retry_ms);
    const char *p[10] = {x->tenant, x->id, x->d->owner, attempt, started, duration,
                         x->status ? status : "", x->err, state_names[x->state], retry};
    store_tx_t *tx = store_tx_new(x->d->app->store, recorded, x);
    store_tx_exec(tx, "deliver_record", 10, p, NULL, NULL);
    store_tx_submit(tx);
}

/* ---- claiming ----------------------------------------------------------------------------- */

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static dl_t *dl_from_row(deliver_t *d, const PGresult *r, int i)
{
    dl_t *x = xcalloc(1, sizeof *x);
    x->d = d;
    d->in_flight++;
    snprintf(x->tenant, sizeof x->tenant, "%s", PQgetvalue(r, i, 0));
    snprintf(x->id, sizeof x->id, "%s", PQgetvalue(r, i, 1));
    /* An abandoned SENDING row had its lost attempt recorded by the claim: it is retrying. */
    x->state = strcmp(PQgetvalue(r, i, 2), "PENDING") == 0 ? DELIVER_PENDING : DELIVER_RETRY_WAIT;
    x->attempt = atoi(PQgetvalue(r, i, 3));
    x->age_s = strtod(PQgetvalue(r, i, 4), NULL);
    x->claimed_us = app_now_us();
    x->url = xstrdup(PQgetvalue(r, i, 5));
    x->secret = dup_or_null(r, i, 6);
    x->secret_file = dup_or_null(r, i, 7);
    snprintf(x->sha, sizeof x->sha, "%s", PQgetvalue(r, i, 8));
    x->body_len = (size_t)PQgetlength(r, i, 9);
    x->body = xstrndup(PQgetvalue(r, i, 9), x->body_len);
    return x;
}

static void claimed(store_tx_t *tx, store_status_t st, void *arg)
{
    deliver_t *d = arg;
    d->claiming = 0;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r) {
        if (st == STORE_SQL_ERROR)
            log_msg(LOG_ERROR, "claiming deliveries: %s", store_tx_error(tx));
        return maybe_done(d);
    }
    for (int i = 0; i < PQntuples(r); i++) move(dl_from_row(d, r, i), DELIVER_SENDING);
    maybe_done(d);
}

void deliver_poll(deliver_t *d)
{
    int room = d->cfg.max_in_flight - d->in_flight;
    if (d->stopping || d->claiming || room <= 0) return;
    char owner_lease[32], limit[16];
    /* The lease outlives an attempt (timeout) and its recording by a wide margin. */
    snprintf(owner_lease, sizeof owner_lease, "%lu milliseconds", 2 * d->cfg.timeout_ms + 5000);
    snprintf(limit, sizeof limit, "%d", room);
    const char *p[3] = {d->owner, owner_lease, limit};
    d->claiming = 1;
    store_tx_t *tx = store_tx_new(d->app->store, claimed, d);
    store_tx_exec(tx, "deliver_claim", 3, p, NULL, NULL);
    store_tx_submit(tx);
}

/* ---- life ---------------------------------------------------------------------------------- */

deliver_t *deliver_new(app_t *app, const deliver_config_t *cfg, const char *owner)
{
    deliver_t *d = xcalloc(1, sizeof *d);
    d->app = app;
    d->cfg = *cfg;
    snprintf(d->owner, sizeof d->owner, "%s", owner);
    d->cm = curlm_new(app->loop);
    return d;
}

static void cm_closed(void *arg)
{
    deliver_t *d = arg;
    d->cm = NULL;
    maybe_done(d);
}

void deliver_stop(deliver_t *d, void (*done)(void *), void *arg)
{
    d->stopping = 1;
    d->done = done;
    d->done_arg = arg;
    /* Each transfer in flight ends now through sent(), which records it for a retry. */
    curlm_close(d->cm, cm_closed, d);
}

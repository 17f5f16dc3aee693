/* schedule — report schedules, their routes, and the timer that generates due reports (see
 * schedule.h). A due period goes: claim (schema/017 circa_schedule_claim) → circa_report_data
 * from one snapshot → document, SHA-256, CSV and HTML on a worker thread → one transaction
 * stores the report, marks the run generated and creates its PENDING delivery → deliver.c. */
#include "schedule.h"
#include "api.h"
#include "deliver.h"
#include "errlist.h"
#include "log.h"
#include "problem.h"
#include "render_csv.h"
#include "render_html.h"
#include "report.h"
#include "report_render.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPORT_INSERT_SQL                                                                      \
    "INSERT INTO report (tenant_id, id, type, params, period_from, period_to, created, "       \
    "block_seq, block_hash, sha256, canon, body, csv, html) "                                  \
    "VALUES ($1, $2, $3, $4::jsonb, $5::date, $6::date, $7::timestamptz, $8::bigint, $9, $10, " \
    "$11::text, $11::text::jsonb, $12, $13)"

const store_stmt_t schedule_stmts[] = {
    {"schedule_create",
     "SELECT circa_schedule_create($1, $2, $3, $4, $5::jsonb, $6, $7, nullif($8, ''), "
     "nullif($9, ''), nullif($10, ''))::text"},
    {"schedule_list", "SELECT circa_schedule_list($1)::text"},
    {"schedule_get", "SELECT j::text FROM circa_schedule_get($1, $2) j"},
    {"schedule_delete",
     "UPDATE schedule SET deleted = now() WHERE tenant_id = $1 AND id = $2 AND deleted IS NULL "
     "RETURNING id"},
    {"schedule_claim",
     "SELECT tenant_id, schedule_id, type, params::text, period_from::text, period_to::text "
     "FROM circa_schedule_claim($1, $2::interval, $3::int)"},
    {"schedule_data", "SELECT circa_report_data($1, $2, $3::jsonb)::text"},
    {"schedule_report_insert", REPORT_INSERT_SQL},
    {"schedule_generated",
     "SELECT circa_schedule_generated($1, $2, $3::date, $4::date, $5, $6, $7)"},
    DELIVER_STMTS,
    {NULL, NULL},
};

#define BAD_SLUG "invalid-schedule"
#define BAD_TITLE "Invalid schedule"
#define RUN_LEASE "5 minutes"   /* a generation taking longer may be started twice, stored once */
#define CLAIM_LIMIT "4"

typedef struct {
    app_t *app;
    deliver_t *deliver;
    uv_timer_t timer;
    unsigned long interval_ms;
    char owner[128];
    int claiming, runs, stopping, timer_closed, deliver_stopped;
    void (*done)(void *);
    void *done_arg;
} sched_t;

static sched_t *S;   /* one per circad process */
static int registered;   /* schedule_register ran, so schedule_stmts are prepared */

/* ---- settings ------------------------------------------------------------------------------ */

static int env_ulong(const char *name, unsigned long def, unsigned long min, unsigned long max,
                     unsigned long *out)
{
    const char *v = getenv(name);
    *out = def;
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end || n < min || n > max || v[0] == '-') {
        log_msg(LOG_ERROR, "%s=%s: must be a whole number from %lu to %lu", name, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int read_settings(unsigned long *interval, deliver_config_t *dc)
{
    unsigned long give_up;
    int bad = env_ulong("CIRCA_SCHEDULE_INTERVAL_MS", 30000, 10, 86400000, interval) |
              env_ulong("CIRCA_DELIVERY_RETRY_MIN_MS", 30000, 10, 86400000, &dc->retry_min_ms) |
              env_ulong("CIRCA_DELIVERY_RETRY_MAX_MS", 3600000, 10, 86400000, &dc->retry_max_ms) |
              env_ulong("CIRCA_DELIVERY_TIMEOUT_MS", 30000, 100, 3600000, &dc->timeout_ms) |
              env_ulong("CIRCA_DELIVERY_GIVE_UP_S", 86400, 1, 31536000, &give_up);
    if (!bad && dc->retry_max_ms < dc->retry_min_ms) {
        log_msg(LOG_ERROR, "CIRCA_DELIVERY_RETRY_MAX_MS must not be below CIRCA_DELIVERY_RETRY_MIN_MS");
        bad = 1;
    }
    dc->give_up_s = (double)give_up;
    dc->max_in_flight = 16;
    return bad ? -1 : 0;
}

/* ---- checking a POST ----------------------------------------------------------------------- */

/* ISO 8601 duration as PostgreSQL reads it: P[nY][nM][nW][nD][T[nH][nM][nS]], not empty. */
static int is_duration(const char *s)
{
    const char *date_units = "YMWD", *time_units = "HMS", *units = date_units;
    int any = 0, in_time = 0;
    if (*s++ != 'P') return 0;
    while (*s) {
        if (*s == 'T' && !in_time) {
            in_time = 1, units = time_units, s++;
            if (!isdigit((unsigned char)*s)) return 0;
            continue;
        }
        const char *d = s;
        while (isdigit((unsigned char)*s)) s++;
        const char *u = *s ? strchr(units, *s) : NULL;
        if (s == d || s - d > 6 || !u) return 0;
        units = u + 1, s++, any = 1;   /* units in order, each once */
    }
    return any;
}

static int is_date(const char *s)
{
    int y, m, d;
    char end;
    return strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &end) == 3 && s[4] == '-' &&
           s[7] == '-' && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_params(const cJSON *p, const char *type, errlist_t *e)
{
    if (!p) return;
    if (!cJSON_IsObject(p)) return errlist_add(e, -1, "params", "must be an object");
    static const char *const codes[] = {"site", "party", "generator", "recycler", NULL};
    for (const cJSON *m = p->child; m; m = m->next) {
        int known = 0;
        for (const char *const *c = codes; *c; c++) known |= strcmp(*c, m->string) == 0;
        if (!known) errlist_add(e, -1, "params", "unknown member %.64s (site, party, generator, recycler)", m->string);
        else if (!cJSON_IsString(m) || !api_valid_code(m->valuestring))
            errlist_add(e, -1, "params", "%.64s must be a code: 1 to 64 letters, digits, '-', '_' or '.'", m->string);
    }
    if (type && strcmp(type, "recovery_certificate") == 0 && !str_of(p, "generator"))
        errlist_add(e, -1, "params.generator", "a recovery_certificate needs the generator party");
}

static void check_deliver(const cJSON *d, errlist_t *e)
{
    if (!cJSON_IsObject(d)) return errlist_add(e, -1, "deliver", "is required: {url, secret or secret_file}");
    for (const cJSON *m = d->child; m; m = m->next)
        if (strcmp(m->string, "url") && strcmp(m->string, "secret") && strcmp(m->string, "secret_file"))
            errlist_add(e, -1, "deliver", "unknown member %.64s", m->string);
    const char *url = str_of(d, "url"), *sec = str_of(d, "secret"), *file = str_of(d, "secret_file");
    if (!url || strlen(url) > 2000 || !deliver_url_allowed(url))
        errlist_add(e, -1, "deliver.url", "must be an https:// URL (http:// only to a loopback host)");
    int has_sec = cJSON_GetObjectItemCaseSensitive(d, "secret") != NULL;
    int has_file = cJSON_GetObjectItemCaseSensitive(d, "secret_file") != NULL;
    if (has_sec == has_file || (has_sec && !sec) || (has_file && !file))
        errlist_add(e, -1, "deliver", "needs exactly one of secret (a string) or secret_file (a path)");
    if (sec && (strlen(sec) < 16 || strlen(sec) > 4096))
        errlist_add(e, -1, "deliver.secret", "must be 16 to 4096 characters");
    if (file && (file[0] != '/' || strlen(file) > 1000))
        errlist_add(e, -1, "deliver.secret_file", "must be an absolute path");
}

static void check_body(const cJSON *b, errlist_t *e)
{
    if (!cJSON_IsObject(b)) return errlist_add(e, -1, "", "the body must be a JSON object");
    static const char *const known[] = {"type", "every", "params", "due_after", "start", "deliver", NULL};
    for (const cJSON *m = b->child; m; m = m->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= strcmp(*k, m->string) == 0;
        if (!ok) errlist_add(e, -1, m->string, "unknown field");
    }
    const char *type = str_of(b, "type"), *every = str_of(b, "every");
    const char *due = str_of(b, "due_after"), *start = str_of(b, "start");
    if (!report_type_valid(type))
        errlist_add(e, -1, "type", "must be waste_register, prtr_transfers, circularity_summary or recovery_certificate");
    if (!every || (strcmp(every, "month") && strcmp(every, "quarter") && strcmp(every, "year")))
        errlist_add(e, -1, "every", "must be month, quarter or year");
    if (cJSON_GetObjectItemCaseSensitive(b, "due_after") && (!due || !is_duration(due)))
        errlist_add(e, -1, "due_after", "must be an ISO 8601 duration such as P5D or PT12H");
    if (cJSON_GetObjectItemCaseSensitive(b, "start") && (!start || !is_date(start)))
        errlist_add(e, -1, "start", "must be a date (YYYY-MM-DD), the first day of a period");
    check_params(cJSON_GetObjectItemCaseSensitive(b, "params"), type, e);
    check_deliver(cJSON_GetObjectItemCaseSensitive(b, "deliver"), e);
}

static void refuse(http_req_t *req, errlist_t *e)
{
    problem_send_errors(req, 422, BAD_SLUG, BAD_TITLE, e, "the schedule is invalid: %zu %s",
                        e->n, e->n == 1 ? "error" : "errors");
    errlist_free(e);
}

/* ---- routes -------------------------------------------------------------------------------- */

/* CA401 "field<TAB>message" or a bad date/interval (class 22) is the client's; 1 if answered. */
static int client_error(http_req_t *req, store_tx_t *tx)
{
    const char *state = store_tx_sqlstate(tx), *msg = store_tx_error(tx);
    errlist_t e = ERRLIST_INIT;
    const char *tab = strchr(msg, '\t');
    if (strcmp(state, "CA401") == 0)
        errlist_add(&e, -1, "", "%.200s", tab ? tab + 1 : msg);
    else if (strncmp(state, "22", 2) == 0)
        errlist_add(&e, -1, "", "%.200s", msg);
    else
        return 0;
    if (tab && strcmp(state, "CA401") == 0)
        snprintf(e.items[0].field, sizeof e.items[0].field, "%.*s", (int)(tab - msg), msg);
    refuse(req, &e);
    return 1;
}

/* Answers a one-row JSON text result (status code), a 404, or a store failure. */
static void answer_json(http_req_t *req, store_tx_t *tx, store_status_t st, int status,
                        const char *what)
{
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r && st == STORE_SQL_ERROR && client_error(req, tx)) return;
    if (!r) return api_store_failed(req, tx, st);
    if (PQntuples(r) != 1) {
        problem_send(req, 404, "not-found", "Not found", NULL, "no such %s", what);
        return;
    }
    const char *json = PQgetvalue(r, 0, 0);
    char loc[160] = "";
    cJSON *doc = status == 201 ? cJSON_Parse(json) : NULL;
    if (doc) snprintf(loc, sizeof loc, "Location: /v1/schedules/%.64s\r\n", str_of(doc, "id"));
    cJSON_Delete(doc);
    http_respond(req, status, "application/json", json, strlen(json), loc[0] ? loc : NULL);
}

static void created(store_tx_t *tx, store_status_t st, void *arg)
{
    answer_json(arg, tx, st, 201, "schedule");
}

static void answered(store_tx_t *tx, store_status_t st, void *arg)
{
    answer_json(arg, tx, st, 200, "schedule");
}

static void post_schedule(app_t *app, http_req_t *req, const router_match_t *m,
                          const auth_principal_t *who)
{
    cJSON *b = api_json_body(req);
    if (!b) return;
    errlist_t e = ERRLIST_INIT;
    check_body(b, &e);
    char id[33];
    if (e.n) return refuse(req, &e), cJSON_Delete(b);
    if (report_new_id(id) != 0) {
        problem_send(req, 500, "internal", "Internal error", NULL, "no random source");
        return cJSON_Delete(b);
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(b, "deliver");
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(b, "params");
    char *params = pj ? cJSON_PrintUnformatted(pj) : xstrdup("{}");
    const char *due = str_of(b, "due_after"), *start = str_of(b, "start");
    const char *sec = str_of(d, "secret"), *file = str_of(d, "secret_file");
    const char *p[10] = {who->tenant, id, str_of(b, "type"), str_of(b, "every"), params,
                         due ? due : "P0D", str_of(d, "url"), sec ? sec : "", file ? file : "",
                         start ? start : ""};
    store_tx_t *tx = store_tx_new(app->store, created, req);
    store_tx_exec(tx, "schedule_create", 10, p, NULL, NULL);
    store_tx_submit(tx);
    free(params);
    cJSON_Delete(b);
}

static void list_schedules(app_t *app, http_req_t *req, const router_match_t *m,
                           const auth_principal_t *who)
{
    const char *p[1] = {who->tenant};
    store_tx_t *tx = store_tx_new(app->store, answered, req);
    store_tx_exec(tx, "schedule_list", 1, p, NULL, NULL);
    store_tx_submit(tx);
}

static void get_schedule(app_t *app, http_req_t *req, const router_match_t *m,
                         const auth_principal_t *who)
{
    const char *p[2] = {who->tenant, m->params[0]};
    store_tx_t *tx = store_tx_new(app->store, answered, req);
    store_tx_exec(tx, "schedule_get", 2, p, NULL, NULL);
    store_tx_submit(tx);
}

static void deleted(store_tx_t *tx, store_status_t st, void *arg)
{
    http_req_t *req = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r) return api_store_failed(req, tx, st);
    if (PQntuples(r) != 1) {
        problem_send(req, 404, "not-found", "Not found", NULL, "no such schedule");
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", PQgetvalue(r, 0, 0));
    cJSON_AddBoolToObject(j, "deleted", 1);
    api_send_json(req, 200, j, NULL);
}

/* Deleting stops new periods; deliveries already made go on to their end. */
static void delete_schedule(app_t *app, http_req_t *req, const router_match_t *m,
                            const auth_principal_t *who)
{
    const char *p[2] = {who->tenant, m->params[0]};
    store_tx_t *tx = store_tx_new(app->store, deleted, req);
    store_tx_exec(tx, "schedule_delete", 2, p, NULL, NULL);
    store_tx_submit(tx);
}

static int valid_status(const char *s)
{
    static const char *const names[] = {"pending", "sending", "delivered", "retry_wait", "gave_up", NULL};
    for (const char *const *n = names; *n; n++)
        if (strcmp(*n, s) == 0) return 1;
    return 0;
}

static void list_deliveries(app_t *app, http_req_t *req, const router_match_t *m,
                            const auth_principal_t *who)
{
    char sched[80] = "", status[16] = "", limit[8] = "100";
    const char *q = http_req_query(req);
    int ns = http_query_get(q, "schedule", sched, sizeof sched);
    int nt = http_query_get(q, "status", status, sizeof status);
    int nl = http_query_get(q, "limit", limit, sizeof limit);
    long lim = nl == -1 ? 100 : strtol(limit, NULL, 10);
    if (ns == -1) sched[0] = '\0';
    if (nt == -1) status[0] = '\0';
    if (ns < -1 || nt < -1 || nl < -1 || (status[0] && !valid_status(status)) || lim < 1 ||
        lim > 1000) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "status must be pending, sending, delivered, retry_wait or gave_up; "
                     "limit 1 to 1000");
        return;
    }
    snprintf(limit, sizeof limit, "%ld", lim);
    const char *p[4] = {who->tenant, sched, status, limit};
    store_tx_t *tx = store_tx_new(app->store, answered, req);
    store_tx_exec(tx, "deliver_list", 4, p, NULL, NULL);
    store_tx_submit(tx);
}

void schedule_register(app_t *app)
{
    registered = 1;
    api_route(app, "POST", "/v1/schedules", AUTH_ADMIN, post_schedule);
    api_route(app, "GET", "/v1/schedules", AUTH_ADMIN, list_schedules);
    api_route(app, "GET", "/v1/schedules/{id}", AUTH_ADMIN, get_schedule);
    api_route(app, "DELETE", "/v1/schedules/{id}", AUTH_ADMIN, delete_schedule);
    api_route(app, "GET", "/v1/deliveries", AUTH_ADMIN, list_deliveries);
}

/* ---- generating a due period ---------------------------------------------------------------- */

typedef struct {
    sched_t *s;
    uv_work_t work;
    char tenant[65], schedule[65], type[32], from[16], to[16];
    char id[33], delivery[33], generated[32];
    cJSON *params;          /* as stored with the report: type, from, to, scope, schedule */
    char *data;
    report_render_t out;    /* made on the worker */
} run_t;

static void run_end(run_t *r, const char *failure)
{
    sched_t *s = r->s;
    if (failure) /* the run keeps its lease: it is tried again when the lease expires */
        log_msg(LOG_ERROR, "scheduled report %s %s–%s (tenant %s): %s", r->schedule, r->from,
                r->to, r->tenant, failure);
    cJSON_Delete(r->params);
    free(r->data);
    report_render_free(&r->out);
    free(r);
    s->runs--;
    if (!failure && !s->stopping) deliver_poll(s->deliver);
}

static void now_utc(char out[32])
{
    int64_t us = app_now_us();
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(us / 1000 % 1000));
}

static void stored(store_tx_t *tx, store_status_t st, void *arg)
{
    run_t *r = arg;
    if (st != STORE_OK) return run_end(r, store_tx_error(tx)[0] ? store_tx_error(tx) : "not stored");
    log_msg(LOG_INFO, "scheduled report %s %s–%s (tenant %s): report %s, delivery %s",
            r->schedule, r->from, r->to, r->tenant, r->id, r->delivery);
    run_end(r, NULL);
}

/* Worker thread: the same document, hash and renderings as POST /v1/reports makes. */
static void render(uv_work_t *w)
{
    run_t *r = w->data;
    report_meta_t meta = {r->id, r->type, r->generated, r->params};
    report_render(&meta, r->data, &r->out);
}

/* One transaction: the report, the run marked generated (only if still ours), the delivery. */
static void rendered(uv_work_t *w, int status)
{
    run_t *r = w->data;
    if (status != 0 || r->out.err[0])
        return run_end(r, r->out.err[0] ? r->out.err : "not rendered");
    char *params = cJSON_PrintUnformatted(r->params);
    report_meta_t meta = {r->id, r->type, r->generated, r->params};
    const char *ins[13];
    report_render_insert_params(r->tenant, &meta, params, &r->out, ins);
    const char *gen[7] = {r->tenant, r->schedule, r->from, r->to, r->s->owner, r->id, r->delivery};
    store_tx_t *tx = store_tx_new(r->s->app->store, stored, r);
    store_tx_exec(tx, "schedule_report_insert", 13, ins, NULL, NULL);
    store_tx_exec(tx, "schedule_generated", 7, gen, NULL, NULL);
    store_tx_submit(tx);
    free(params);
}

static void gathered(store_tx_t *tx, store_status_t st, void *arg)
{
    run_t *r = arg;
    const PGresult *res = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!res || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
        return run_end(r, store_tx_error(tx)[0] ? store_tx_error(tx) : "no report data");
    r->data = xstrdup(PQgetvalue(res, 0, 0));
    r->work.data = r;
    if (uv_queue_work(r->s->app->loop, &r->work, render, rendered) != 0)
        run_end(r, "cannot queue the rendering");
}

/* The report's parameters: what POST /v1/reports would take, and the schedule it came from. */
static cJSON *run_params(const run_t *r, const char *scope_json)
{
    cJSON *p = cJSON_CreateObject(), *scope = cJSON_Parse(scope_json);
    cJSON_AddStringToObject(p, "type", r->type);
    cJSON_AddStringToObject(p, "from", r->from);
    cJSON_AddStringToObject(p, "to", r->to);
    for (cJSON *m = scope ? scope->child : NULL; m; m = m->next)
        cJSON_AddItemToObject(p, m->string, cJSON_Duplicate(m, 1));
    cJSON_AddStringToObject(p, "schedule", r->schedule);
    cJSON_Delete(scope);
    return p;
}

static void generate(sched_t *s, const PGresult *res, int i)
{
    run_t *r = xcalloc(1, sizeof *r);
    r->s = s;
    s->runs++;
    snprintf(r->tenant, sizeof r->tenant, "%s", PQgetvalue(res, i, 0));
    snprintf(r->schedule, sizeof r->schedule, "%s", PQgetvalue(res, i, 1));
    snprintf(r->type, sizeof r->type, "%s", PQgetvalue(res, i, 2));
    snprintf(r->from, sizeof r->from, "%s", PQgetvalue(res, i, 4));
    snprintf(r->to, sizeof r->to, "%s", PQgetvalue(res, i, 5));
    r->params = run_params(r, PQgetvalue(res, i, 3));
    now_utc(r->generated);
    if (report_new_id(r->id) != 0 || report_new_id(r->delivery) != 0)
        return run_end(r, "no random source");
    char *params = cJSON_PrintUnformatted(r->params);
    const char *p[3] = {r->tenant, r->type, params};
    store_tx_t *tx = store_tx_new(s->app->store, gathered, r);
    store_tx_exec(tx, "schedule_data", 3, p, NULL, NULL);
    store_tx_submit(tx);
    free(params);
}

/* ---- the timer ----------------------------------------------------------------------------- */

static void maybe_stopped(sched_t *s)
{
    if (!s->stopping || !s->timer_closed || !s->deliver_stopped || s->runs || s->claiming) return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s);
    S = NULL;
    if (done) done(arg);
}

static void claimed(store_tx_t *tx, store_status_t st, void *arg)
{
    sched_t *s = arg;
    s->claiming = 0;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r && st == STORE_SQL_ERROR)
        log_msg(LOG_ERROR, "claiming scheduled reports: %s", store_tx_error(tx));
    for (int i = 0; r && i < PQntuples(r); i++) generate(s, r, i);
    maybe_stopped(s);
}

/* Each tick claims due periods (when no generation is under way here) and due deliveries. */
static void tick(uv_timer_t *t)
{
    sched_t *s = t->data;
    if (s->stopping) return;
    if (!s->claiming && !s->runs) {
        const char *p[3] = {s->owner, RUN_LEASE, CLAIM_LIMIT};
        s->claiming = 1;
        store_tx_t *tx = store_tx_new(s->app->store, claimed, s);
        store_tx_exec(tx, "schedule_claim", 3, p, NULL, NULL);
        store_tx_submit(tx);
    }
    deliver_poll(s->deliver);
}

/* host/pid/random: names this process in claims and attempt records. */
static void make_owner(char *out, size_t len)
{
    char host[64] = "?", rnd[33] = "0";
    gethostname(host, sizeof host - 1);
    report_new_id(rnd);
    snprintf(out, len, "%.63s/%d/%.8s", host, (int)getpid(), rnd);
}

int schedule_start(app_t *app)
{
    deliver_config_t dc;
    unsigned long interval;
    if (read_settings(&interval, &dc) != 0) return -1;
    /* Until main.c's module table lists this module its statements are not prepared: idle. */
    if (!registered) {
        log_msg(LOG_WARN, "report schedules: not in circad's module table; not started");
        return 0;
    }
    sched_t *s = xcalloc(1, sizeof *s);
    s->app = app;
    s->interval_ms = interval;
    make_owner(s->owner, sizeof s->owner);
    s->deliver = deliver_new(app, &dc, s->owner);
    uv_timer_init(app->loop, &s->timer);
    s->timer.data = s;
    /* The first tick comes soon: work left by a stopped process should not wait a period. */
    uv_timer_start(&s->timer, tick, interval < 1000 ? interval : 1000, interval);
    S = s;
    log_msg(LOG_INFO, "report schedules: every %lu ms as %s", interval, s->owner);
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    sched_t *s = h->data;
    s->timer_closed = 1;
    maybe_stopped(s);
}

static void deliver_stopped(void *arg)
{
    sched_t *s = arg;
    s->deliver_stopped = 1;
    maybe_stopped(s);
}

void schedule_stop(app_t *app, void (*done)(void *), void *arg)
{
    sched_t *s = S;
    if (!s) {
        if (done) done(arg);
        return;
    }
    s->stopping = 1;
    s->done = done;
    s->done_arg = arg;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, timer_closed);
    deliver_stop(s->deliver, deliver_stopped, s);
}

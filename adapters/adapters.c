/* adapters — adapter instances from CIRCA_ADAPTERS_DIR, their life cycle, dead letters and
 * metrics (see adapters.h). */
#include "adapters.h"
#include "event.h"
#include "api.h"
#include "log.h"
#include "mqtt.h"
#include "problem.h"

#if __has_include("plm.h")
#include "plm.h"
#define HAVE_PLM 1
#else
#define HAVE_PLM 0
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_MAX_BYTES (1 << 20)
#define LIST_MAX 1000
#define REPLAY_MAX 1000
#define UTC_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

const store_stmt_t api_adapters_stmts[] = {
    {"adapters_dl_insert",
     "INSERT INTO dead_letter (tenant_id, id, adapter, topic, received_time, reason, payload) "
     "VALUES ($1, $2, $3, $4, to_timestamp($5::bigint / 1000000.0), $6, $7) "
     "ON CONFLICT (tenant_id, id) DO NOTHING"},
    {"adapters_dl_list",
     "SELECT id, adapter, topic, " UTC_MS("received_time") ", reason, payload, replayed, seq "
     "FROM dead_letter WHERE tenant_id = $1 AND ($2::text IS NULL OR adapter = $2) "
     "AND ($3::timestamptz IS NULL OR received_time >= $3) AND seq > $4::bigint "
     "AND ($6::boolean IS NULL OR replayed = $6) ORDER BY seq LIMIT $5"},
    {"adapters_dl_pending",
     "SELECT id, adapter, topic, payload FROM dead_letter "
     "WHERE tenant_id = $1 AND NOT replayed AND ($2::text IS NULL OR adapter = $2) "
     "ORDER BY seq LIMIT $3"},
    {"adapters_dl_replayed",
     "UPDATE dead_letter SET replayed = true, replayed_time = now() WHERE tenant_id = $1 AND id = $2"},
    {"adapters_dl_reason", "UPDATE dead_letter SET reason = $3 WHERE tenant_id = $1 AND id = $2"},
    {NULL, NULL},
};

/* ---- instances ------------------------------------------------------------------------------ */

typedef struct inst {
    char name[128], kind[16], tenant[65];
    char *text;                 /* the file's JSON, printed unformatted: reload compares it */
    mqtt_t *mqtt;
    void *plm;
    int stopping;
    cJSON *next;                /* a changed configuration to start once stopped */
    struct inst *link;
} inst_t;

typedef struct {
    app_t *app;
    inst_t *list;
    int stopping_all, pending_stops;
    void (*done)(void *);
    void *done_arg;
} adapters_t;

static adapters_t g;   /* one circad, one set of adapters */

static void adapters_dir(const app_t *app, char *out, size_t n)
{
    const char *d = getenv("CIRCA_ADAPTERS_DIR");
    if (d && *d) snprintf(out, n, "%s", d);
    else snprintf(out, n, "%s/adapters", app->cfg.data_dir);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 64) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static cJSON *read_conf(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%.400s: %s", path, strerror(errno)), NULL;
    buf_t b = BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < CONF_MAX_BYTES) buf_append(&b, chunk, n);
    fclose(f);
    cJSON *j = b.data ? cJSON_ParseWithLength(b.data, b.len) : NULL;
    buf_free(&b);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return snprintf(err, errlen, "%.400s: not a JSON object", path), NULL;
    }
    return j;
}

/* Checks what every kind shares: name, kind, tenant, party. */
static int check_conf(const cJSON *c, const char *path, char *err, size_t errlen)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "name"));
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "kind"));
    const cJSON *tenant = cJSON_GetObjectItemCaseSensitive(c, "tenant");
    const cJSON *party = cJSON_GetObjectItemCaseSensitive(c, "party");
    if (!name || !valid_name(name))
        return snprintf(err, errlen, "%.400s: \"name\" must be 1-64 letters, digits, -, _ or .", path), -1;
    if (!kind || (strcmp(kind, "mqtt") && strcmp(kind, "plm")))
        return snprintf(err, errlen, "%.400s: \"kind\" must be \"mqtt\" or \"plm\"", path), -1;
    if (tenant && !cJSON_IsString(tenant))
        return snprintf(err, errlen, "%.400s: \"tenant\" must be a string", path), -1;
    if (party && !cJSON_IsNull(party) && !cJSON_IsString(party))
        return snprintf(err, errlen, "%.400s: \"party\" must be a string", path), -1;
    return 0;
}

static int json_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

/* Every configuration of the directory as an array, or NULL with err (then none is used). */
static cJSON *load_all(const app_t *app, char *err, size_t errlen)
{
    char dir[1100];
    adapters_dir(app, dir, sizeof dir);
    struct dirent **ents;
    cJSON *all = cJSON_CreateArray();
    int n = scandir(dir, &ents, json_file, alphasort);
    if (n < 0) return all;   /* no directory: no adapters */
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name);
        free(ents[i]);
        if (bad) continue;
        cJSON *c = read_conf(path, err, errlen);
        if (!c || check_conf(c, path, err, errlen)) {
            cJSON_Delete(c);
            bad = 1;
            continue;
        }
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const cJSON *o;
        cJSON_ArrayForEach(o, all)
            if (strcmp(cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring, name) == 0) bad = 1;
        if (bad) snprintf(err, errlen, "%.400s: adapter name \"%s\" is used twice", path, name);
        cJSON_AddItemToArray(all, c);
    }
    free(ents);
    if (bad) cJSON_Delete(all);
    return bad ? NULL : all;
}

static inst_t *find(const char *name)
{
    for (inst_t *i = g.list; i; i = i->link)
        if (strcmp(i->name, name) == 0) return i;
    return NULL;
}

static int start_one(app_t *app, const cJSON *c)
{
    char err[512] = "";
    inst_t *in = xcalloc(1, sizeof *in);
    snprintf(in->name, sizeof in->name, "%s", cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring);
    snprintf(in->kind, sizeof in->kind, "%s", cJSON_GetObjectItemCaseSensitive(c, "kind")->valuestring);
    const char *tenant = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "tenant"));
    snprintf(in->tenant, sizeof in->tenant, "%s", tenant ? tenant : "demo");
    in->text = cJSON_PrintUnformatted(c);
    int rc = -1;
    if (strcmp(in->kind, "mqtt") == 0) rc = mqtt_start(app, c, &in->mqtt, err, sizeof err);
#if HAVE_PLM
    else rc = plm_start(app, c, &in->plm, err, sizeof err);
#else
    else snprintf(err, sizeof err, "kind \"plm\" is not supported by this build");
#endif
    if (rc) {
        log_msg(LOG_ERROR, "adapter %s (%s): %s", in->name, in->kind, err);
        free(in->text);
        free(in);
        return -1;
    }
    log_msg(LOG_INFO, "adapter %s (%s) started for tenant %s", in->name, in->kind, in->tenant);
    in->link = g.list;
    g.list = in;
    return 0;
}

static void unlink_inst(inst_t *in)
{
    for (inst_t **p = &g.list; *p; p = &(*p)->link)
        if (*p == in) {
            *p = in->link;
            return;
        }
}

static void stopped_one(void *arg)
{
    inst_t *in = arg;
    cJSON *next = in->next;
    unlink_inst(in);
    log_msg(LOG_INFO, "adapter %s stopped", in->name);
    free(in->text);
    free(in);
    if (next && !g.stopping_all) start_one(g.app, next);
    cJSON_Delete(next);
    if (g.stopping_all && --g.pending_stops == 0 && g.done) g.done(g.done_arg);
}

static void stop_one(inst_t *in)
{
    if (in->stopping) return;
    in->stopping = 1;
    if (in->mqtt) mqtt_stop(in->mqtt, stopped_one, in);
#if HAVE_PLM
    else if (in->plm) plm_stop(in->plm, stopped_one, in);
#endif
    else stopped_one(in);
}

int adapters_start(app_t *app)
{
    char err[512] = "", dir[1100];
    g.app = app;
    adapters_dir(app, dir, sizeof dir);
    cJSON *all = load_all(app, err, sizeof err);
    if (!all) {
        log_msg(LOG_ERROR, "adapters: %s", err);
        return -1;
    }
    int rc = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, all)
        if (start_one(app, c)) rc = -1;
    log_msg(LOG_INFO, "adapters: %d configured in %s", cJSON_GetArraySize(all), dir);
    cJSON_Delete(all);
    return rc;
}

/* SIGHUP: unchanged instances keep running; changed ones restart (after their stop, so a
 * spool never has two writers); removed ones stop; a bad directory changes nothing. */
void adapters_reload(app_t *app)
{
    char err[512] = "";
    if (g.stopping_all) return;
    cJSON *all = load_all(app, err, sizeof err);
    if (!all) {
        log_msg(LOG_ERROR, "adapters: reload refused, the running configuration stays: %s", err);
        return;
    }
    for (inst_t *in = g.list, *next; in; in = next) {
        next = in->link;
        int keep = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, all)
            if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, in->name) == 0) keep = 1;
        if (!keep) stop_one(in);
    }
    cJSON *c;
    cJSON_ArrayForEach(c, all) {
        inst_t *in = find(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring);
        char *text = cJSON_PrintUnformatted(c);
        if (!in) start_one(app, c);
        else if (strcmp(text, in->text) != 0) {
            cJSON_Delete(in->next);
            in->next = cJSON_Duplicate(c, 1);
            stop_one(in);
        }
        free(text);
    }
    cJSON_Delete(all);
}

void adapters_stop(app_t *app, void (*done)(void *), void *arg)
{
    g.stopping_all = 1;
    g.done = done;
    g.done_arg = arg;
    g.pending_stops = 1;   /* held until every stop is started */
    for (inst_t *in = g.list; in; in = in->link) g.pending_stops += !in->stopping;
    for (inst_t *in = g.list, *next; in; in = next) {
        next = in->link;
        if (in->stopping) g.pending_stops++;   /* already stopping: its stop counts too */
        else stop_one(in);
    }
    if (--g.pending_stops == 0) done(arg);
}

/* ---- metrics ------------------------------------------------------------------------------- */

static void metric_head(buf_t *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void adapters_metrics(app_t *app, buf_t *b)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"circa_adapter_connected", "gauge", "1 while the adapter is connected to its broker."},
        {"circa_adapter_messages_total", "counter", "Messages received from the broker."},
        {"circa_adapter_events_total", "counter", "Events committed from adapter messages."},
        {"circa_adapter_duplicates_total", "counter", "Messages whose event was already stored."},
        {"circa_adapter_dead_letters_total", "counter", "Messages that became dead letters."},
        {"circa_adapter_reconnects_total", "counter", "Connections lost and retried."},
        {"circa_adapter_spool_messages", "gauge", "Messages spooled, not yet committed."},
        {"circa_adapter_lag_seconds", "gauge", "Age of the oldest message not yet committed."},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        metric_head(b, m[k].name, m[k].type, m[k].help);
        for (inst_t *in = g.list; in; in = in->link) {
            if (!in->mqtt) continue;
            mqtt_stats_t s;
            mqtt_stats(in->mqtt, &s);
            double v[] = {s.connected, (double)s.messages, (double)s.events, (double)s.duplicates,
                          (double)s.dead_letters, (double)s.reconnects, (double)s.spool_depth,
                          s.lag_seconds};
            buf_printf(b, "%s{adapter=\"%s\",kind=\"mqtt\"} %.17g\n", m[k].name, in->name, v[k]);
        }
    }
}

/* ---- dead letters ------------------------------------------------------------------------- */

/* Valid UTF-8 without NUL is kept; other bytes become '?'. */
static void utf8_clean(const char *p, size_t n, buf_t *out)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        int ok = len && c != 0 && i + len <= n && !(len == 2 && c < 0xC2);
        for (size_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xC0) == 0x80;
        if (!ok) {
            buf_putc(out, '?');
            i++;
            continue;
        }
        buf_append(out, s + i, len);
        i += len;
    }
    if (!out->data) buf_puts(out, "");
}

void adapters_dead_letter(store_tx_t *tx, const char *tenant, const char *adapter,
                          const char *topic, int64_t received_us, const char *reason,
                          const char *payload, size_t len)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    buf_t key = BUF_INIT;
    buf_append(&key, adapter, strlen(adapter) + 1);
    buf_append(&key, topic, strlen(topic) + 1);
    buf_append(&key, payload, len);
    SHA256((const unsigned char *)key.data, key.len, h);
    buf_free(&key);
    char id[33], us[24];
    for (int i = 0; i < 16; i++) snprintf(id + 2 * i, 3, "%02x", h[i]);
    snprintf(us, sizeof us, "%" PRId64, received_us);
    buf_t clean = BUF_INIT;
    utf8_clean(payload, len, &clean);
    const char *vals[7] = {tenant, id, adapter, topic, us, reason, clean.data};
    store_tx_exec(tx, "adapters_dl_insert", 7, vals, NULL, NULL);
    buf_free(&clean);
}

void adapters_ingest_reason(const ingest_result_t *res, char *out, size_t outlen)
{
    buf_t b = BUF_INIT;
    buf_printf(&b, "ingest %d %s", res->status, res->title ? res->title : "");
    if (res->detail && *res->detail) buf_printf(&b, ": %s", res->detail);
    for (size_t i = 0; res->errs && i < res->errs->n && i < 8; i++)
        buf_printf(&b, "; %s: %s", res->errs->items[i].field, res->errs->items[i].message);
    snprintf(out, outlen, "%s", b.data);
    buf_free(&b);
}

typedef struct {
    http_req_t *req;
    int limit;
} list_t;

static void listed(store_tx_t *tx, store_status_t st, void *arg)
{
    list_t *l = arg;
    http_req_t *req = l->req;
    int limit = l->limit;
    free(l);
    if (st != STORE_OK) return api_store_failed(req, tx, st);
    const PGresult *r = store_tx_result(tx, 0);
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(body, "dead_letters");
    int n = PQntuples(r);
    static const char *const keys[] = {"id", "adapter", "topic", "received_time", "reason", "payload"};
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        for (int k = 0; k < 6; k++) cJSON_AddStringToObject(o, keys[k], PQgetvalue(r, i, k));
        cJSON_AddBoolToObject(o, "replayed", PQgetvalue(r, i, 6)[0] == 't');
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(body, "next_cursor", n == limit ? cJSON_CreateString(PQgetvalue(r, n - 1, 7))
                                                          : cJSON_CreateNull());
    api_send_json(req, 200, body, NULL);
}

static int uint_param(const char *q, const char *key, long def, long max, long *out)
{
    char v[32];
    int n = http_query_get(q, key, v, sizeof v);
    if (n == -1) return *out = def, 0;
    char *end;
    long x = n > 0 ? strtol(v, &end, 10) : -1;
    if (n <= 0 || *end || x < 0 || x > max) return -1;
    return *out = x, 0;
}

/* GET /v1/dead-letters?adapter=&from=&cursor=&limit=&replayed= */
static void get_dead_letters(app_t *app, http_req_t *req, const router_match_t *m,
                             const auth_principal_t *who)
{
    const char *q = http_req_query(req);
    char adapter[129], from[64], replayed[8], cursor[24], limit[24];
    long cur, lim;
    int ha = http_query_get(q, "adapter", adapter, sizeof adapter);
    int hf = http_query_get(q, "from", from, sizeof from);
    int hr = http_query_get(q, "replayed", replayed, sizeof replayed);
    int64_t from_us;
    if (hf >= 0 && event_parse_time(from, &from_us) != 0) hf = -2;   /* never a 500 for input */
    if (ha == -2 || hf == -2 || hr == -2 || uint_param(q, "cursor", 0, INT64_MAX, &cur) ||
        uint_param(q, "limit", 100, LIST_MAX, &lim) || lim == 0 ||
        (hr >= 0 && strcmp(replayed, "true") && strcmp(replayed, "false")))
        return problem_send(req, 400, "invalid-query", "Invalid query", NULL,
                            "adapter, from (RFC 3339), cursor, limit (1-%d), replayed (true|false)", LIST_MAX);
    snprintf(cursor, sizeof cursor, "%ld", cur);
    snprintf(limit, sizeof limit, "%ld", lim);
    const char *vals[6] = {who->tenant, ha >= 0 ? adapter : NULL, hf >= 0 ? from : NULL, cursor, limit,
                           hr >= 0 ? replayed : NULL};
    list_t *l = xcalloc(1, sizeof *l);
    l->req = req;
    l->limit = (int)lim;
    store_tx_t *tx = store_tx_new(app->store, listed, l);
    store_tx_exec(tx, "adapters_dl_list", 6, vals, NULL, NULL);
    store_tx_submit(tx);
}

/* ---- replay: POST /v1/dead-letters/replay?adapter= ----------------------------------------- */

typedef struct {
    app_t *app;
    http_req_t *req;
    char tenant[65];
    PGresult *rows;             /* the pending dead letters, copied */
    int i, n, replayed, failed;
    cJSON *errors;
    char reason[1024];
} replay_t;

static void replay_next(replay_t *r);

static void replay_answer(replay_t *r, int unavailable)
{
    if (unavailable) {
        problem_send(r->req, 503, "unavailable", "Service unavailable", "Retry-After: 1\r\n",
                     "the database is unreachable; %d dead letters replayed so far", r->replayed);
        cJSON_Delete(r->errors);
    } else {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "replayed", r->replayed);
        cJSON_AddNumberToObject(b, "failed", r->failed);
        cJSON_AddItemToObject(b, "errors", r->errors);
        api_send_json(r->req, 200, b, NULL);
    }
    PQclear(r->rows);
    free(r);
}

static void replay_marked(store_tx_t *tx, store_status_t st, void *arg)
{
    replay_t *r = arg;
    if (st != STORE_OK) return replay_answer(r, 1);
    r->i++;
    replay_next(r);
}

/* Records the outcome of dead letter i: replayed, or its new reason. */
static void replay_mark(replay_t *r, int ok)
{
    const char *vals[3] = {r->tenant, PQgetvalue(r->rows, r->i, 0), r->reason};
    if (ok) r->replayed++;
    else {
        r->failed++;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", vals[1]);
        cJSON_AddStringToObject(e, "reason", r->reason);
        cJSON_AddItemToArray(r->errors, e);
    }
    store_tx_t *tx = store_tx_new(r->app->store, replay_marked, r);
    store_tx_exec(tx, ok ? "adapters_dl_replayed" : "adapters_dl_reason", ok ? 2 : 3, vals, NULL, NULL);
    store_tx_submit(tx);
}

static void replay_ingested(const ingest_result_t *res, void *arg)
{
    replay_t *r = arg;
    if (res->status >= 500 || res->status == 429) return replay_answer(r, 1);
    if (res->status >= 300) adapters_ingest_reason(res, r->reason, sizeof r->reason);
    replay_mark(r, res->status < 300);
}

static void replay_next(replay_t *r)
{
    if (r->i >= r->n) return replay_answer(r, 0);
    const char *adapter = PQgetvalue(r->rows, r->i, 1), *topic = PQgetvalue(r->rows, r->i, 2);
    const char *payload = PQgetvalue(r->rows, r->i, 3);
    inst_t *in = find(adapter);
    if (!in || in->stopping || !in->mqtt || strcmp(in->tenant, r->tenant) != 0) {
        snprintf(r->reason, sizeof r->reason, "replay: no running MQTT adapter %s for this tenant", adapter);
        return replay_mark(r, 0);
    }
    cJSON *ev = mqtt_map(in->mqtt, topic, payload, strlen(payload), r->reason, sizeof r->reason);
    if (!ev) return replay_mark(r, 0);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, ev);
    ingest_submit(r->app->ingest, r->tenant, mqtt_party(in->mqtt), arr, replay_ingested, r);
}

static void replay_loaded(store_tx_t *tx, store_status_t st, void *arg)
{
    replay_t *r = arg;
    if (st != STORE_OK) {
        api_store_failed(r->req, tx, st);
        cJSON_Delete(r->errors);
        free(r);
        return;
    }
    r->rows = PQcopyResult(store_tx_result(tx, 0), PG_COPYRES_TUPLES | PG_COPYRES_ATTRS);
    r->n = PQntuples(r->rows);
    replay_next(r);
}

static void post_replay(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    char adapter[129], limit[16];
    int ha = http_query_get(http_req_query(req), "adapter", adapter, sizeof adapter);
    if (ha == -2) return problem_send(req, 400, "invalid-query", "Invalid query", NULL, "bad adapter");
    replay_t *r = xcalloc(1, sizeof *r);
    r->app = app;
    r->req = req;
    r->errors = cJSON_CreateArray();
    snprintf(r->tenant, sizeof r->tenant, "%s", who->tenant);
    snprintf(limit, sizeof limit, "%d", REPLAY_MAX);
    const char *vals[3] = {who->tenant, ha >= 0 ? adapter : NULL, limit};
    store_tx_t *tx = store_tx_new(app->store, replay_loaded, r);
    store_tx_exec(tx, "adapters_dl_pending", 3, vals, NULL, NULL);
    store_tx_submit(tx);
}

void api_adapters_register(app_t *app)
{
    api_route(app, "GET", "/v1/dead-letters", AUTH_ADMIN, get_dead_letters);
    api_route(app, "POST", "/v1/dead-letters/replay", AUTH_ADMIN, post_replay);
}

/* api_epcis — EPCIS 2.0 capture jobs and event queries over circa's ledger (docs/EPCIS.md). */
#include "api_epcis.h"
#include "api.h"
#include "epcis.h"
#include "event.h"
#include "ingest.h"
#include "log.h"
#include "pgarr.h"
#include "problem.h"
#include "strmap.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define QUERY_MAX_EVENTS 1000    /* perPage at most; default QUERY_DEFAULT_EVENTS */
#define QUERY_DEFAULT_EVENTS 100
#define UTC_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

const store_stmt_t api_epcis_stmts[] = {
    {"epcis_job_new", "INSERT INTO epcis_capture (tenant_id, id) VALUES ($1, $2)"},
    /* identifier -> site / party code, through the GIN-indexed identifiers arrays */
    {"epcis_sites",
     "SELECT i, s.code FROM site s CROSS JOIN LATERAL unnest(s.identifiers) i "
     "WHERE s.tenant_id = $1 AND s.identifiers && $2::text[] AND i = ANY ($2::text[]) "
     "ORDER BY i, s.code"},
    {"epcis_parties",
     "SELECT i, p.code FROM party p CROSS JOIN LATERAL unnest(p.identifiers) i "
     "WHERE p.tenant_id = $1 AND p.identifiers && $2::text[] AND i = ANY ($2::text[]) "
     "ORDER BY i, p.code"},
    {"epcis_job_done",
     "UPDATE epcis_capture SET status = $3, finished = now(), errors = $4::jsonb, "
     "event_ids = $5::text[] WHERE tenant_id = $1 AND id = $2"},
    {"epcis_job_get",
     "SELECT status, " UTC_MS("created") ", " UTC_MS("finished") ", errors::text, "
     "array_to_json(event_ids)::text, id FROM epcis_capture WHERE tenant_id = $1 AND id = $2"},
    /* Part 1 of every event captured through EPCIS carries the EPCIS event as it was sent. */
    {"epcis_query",
     "SELECT (x -> 'event')::text FROM ("
     "  SELECT e.seq, convert_from(e.canon, 'UTF8')::jsonb -> 'ext' -> 'epcis' AS x "
     "    FROM event e WHERE e.tenant_id = $1) c "
     "WHERE x ? 'event' AND x ->> 'part' = '1' "
     "AND ($2::text[] IS NULL OR x -> 'event' ->> 'type' = ANY ($2)) "
     "AND ($3::timestamptz IS NULL OR (x -> 'event' ->> 'eventTime')::timestamptz >= $3) "
     "AND ($4::timestamptz IS NULL OR (x -> 'event' ->> 'eventTime')::timestamptz < $4) "
     "AND ($5::text[] IS NULL OR x ->> 'bizStep' = ANY ($5)) "
     "AND ($6::text[] IS NULL OR EXISTS (SELECT 1 FROM circa_epcis_epcs(x -> 'event', false) a "
     "                                  WHERE a LIKE ANY ($6))) "
     "AND ($7::text[] IS NULL OR EXISTS (SELECT 1 FROM circa_epcis_epcs(x -> 'event', true) a "
     "                                  WHERE a LIKE ANY ($7))) "
     "AND ($8::text[] IS NULL OR x -> 'event' -> 'bizLocation' ->> 'id' = ANY ($8)) "
     "ORDER BY c.seq LIMIT $9"},
    {NULL, NULL},
};

/* ---------------------------------------------------------------------------------------------
 * Capture jobs: created (row 'running', 202 answered) -> mapped -> ingested -> finished. */

typedef struct {
    app_t *app;
    http_req_t *req;          /* until the 202 is sent */
    char tenant[65], party[65];
    int admin;
    char id[33];
    cJSON *doc;
    strmap_t sites, parties;  /* identifier -> code (owned copies) */
    epcis_mapped_t mapped;
    cJSON *ids;               /* ids of the mapped events, for the error list */
} job_t;

static void free_val(const char *key, void *val, void *arg)
{
    free(val);
}

static void job_free(job_t *j)
{
    strmap_each(&j->sites, free_val, NULL);
    strmap_each(&j->parties, free_val, NULL);
    strmap_free(&j->sites);
    strmap_free(&j->parties);
    epcis_mapped_free(&j->mapped);
    cJSON_Delete(j->doc);
    cJSON_Delete(j->ids);
    free(j);
}

static cJSON *problem_obj(const char *slug, const char *title, int status, const char *detail)
{
    char type[96];
    snprintf(type, sizeof type, "/problems/%s", slug);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(p, "title", title);
    cJSON_AddNumberToObject(p, "status", status);
    cJSON_AddStringToObject(p, "detail", detail);
    return p;
}

static void finished(store_tx_t *tx, store_status_t st, void *arg)
{
    job_t *j = arg;
    if (st != STORE_OK)
        log_msg(LOG_ERROR, "epcis: capture job %s of tenant %s: outcome not recorded: %s", j->id,
                j->tenant, store_tx_error(tx));
    job_free(j);
}

/* Records the outcome; errors (an array) and ids are taken. */
static void job_finish(job_t *j, int ok, cJSON *errors, cJSON *ids)
{
    char *errs = cJSON_PrintUnformatted(errors);
    pgarr_t arr;
    pgarr_init(&arr, PGARR_TEXT);
    const cJSON *x;
    cJSON_ArrayForEach(x, ids) pgarr_text(&arr, x->valuestring);
    int lens[5] = {0, 0, 0, 0, 0}, fmts[5] = {0, 0, 0, 0, 1};
    const char *vals[5] = {j->tenant, j->id, ok ? "success" : "failure", errs, NULL};
    vals[4] = pgarr_finish(&arr, &lens[4]);
    store_tx_t *tx = store_tx_new(j->app->store, finished, j);
    store_tx_exec(tx, "epcis_job_done", 5, vals, lens, fmts);
    store_tx_submit(tx);
    pgarr_free(&arr);
    free(errs);
    cJSON_Delete(errors);
    cJSON_Delete(ids);
}

/* One problem object per error; event indexes are positions in the document's eventList. */
static cJSON *job_errors(job_t *j, const errlist_t *errs, const char *slug, const char *title,
                         int status, int from_ingest)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; errs && i < errs->n; i++) {
        const errlist_item_t *e = &errs->items[i];
        cJSON *p = problem_obj(slug, title, status, e->message);
        int ci = e->index;
        if (from_ingest && ci >= 0 && ci < j->mapped.n) {
            cJSON_AddNumberToObject(p, "eventIndex", j->mapped.origin[ci]);
            cJSON_AddStringToObject(p, "eventID", cJSON_GetArrayItem(j->ids, ci)->valuestring);
        } else if (!from_ingest && ci >= 0) {
            cJSON_AddNumberToObject(p, "eventIndex", ci);
        }
        cJSON_AddStringToObject(p, "field", e->field);
        cJSON_AddItemToArray(arr, p);
    }
    return arr;
}

static void ingested(const ingest_result_t *res, void *arg)
{
    job_t *j = arg;
    if (res->status < 300) {
        cJSON *ids = cJSON_CreateArray();
        for (int i = 0; i < res->nevents; i++)
            cJSON_AddItemToArray(ids, cJSON_CreateString(res->events[i].id));
        job_finish(j, 1, cJSON_CreateArray(), ids);
        return;
    }
    cJSON *errors = job_errors(j, res->errs, res->type ? res->type : "invalid-event",
                               res->title ? res->title : "Invalid event", res->status, 1);
    if (!cJSON_GetArraySize(errors))
        cJSON_AddItemToArray(errors, problem_obj(res->type ? res->type : "capture-failed",
                                                 res->title ? res->title : "Capture failed",
                                                 res->status, res->detail ? res->detail : ""));
    job_finish(j, 0, errors, cJSON_CreateArray());
}

static const char *site_of(void *ud, const char *identifier)
{
    return strmap_get(&((job_t *)ud)->sites, identifier);
}

static const char *party_of(void *ud, const char *identifier)
{
    return strmap_get(&((job_t *)ud)->parties, identifier);
}

/* Maps the document with the places looked up, then hands the events to ingest. */
static void job_run(job_t *j)
{
    errlist_t errs = ERRLIST_INIT;
    epcis_places_t pl = {j, site_of, party_of};
    int rc = epcis_map(j->doc, &pl, &j->mapped, &errs);
    if (rc == 0 && j->mapped.n > INGEST_GROUP_MAX_EVENTS)
        errlist_add(&errs, -1, "epcisBody.eventList", "the document maps to %d events; at most %d",
                    j->mapped.n, INGEST_GROUP_MAX_EVENTS);
    if (errs.n) {
        job_finish(j, 0, job_errors(j, &errs, "invalid-event", "Invalid EPCIS event", 422, 0),
                   cJSON_CreateArray());
        errlist_free(&errs);
        return;
    }
    j->ids = cJSON_CreateArray();
    const cJSON *ev;
    cJSON_ArrayForEach(ev, j->mapped.events)
        cJSON_AddItemToArray(j->ids, cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ev, "id"), 1));
    cJSON *events = j->mapped.events;
    j->mapped.events = NULL;
    ingest_submit(j->app->ingest, j->tenant, j->admin ? NULL : j->party, events, ingested, j);
}

static void fill_map(strmap_t *m, const PGresult *r)
{
    for (int i = 0; r && i < PQntuples(r); i++)
        if (!strmap_get(m, PQgetvalue(r, i, 0)))   /* the first code in order wins */
            strmap_put(m, PQgetvalue(r, i, 0), xstrdup(PQgetvalue(r, i, 1)));
}

static void job_answer(job_t *j)
{
    char loc[96];
    snprintf(loc, sizeof loc, "Location: /epcis/capture/%s\r\n", j->id);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "captureID", j->id);
    cJSON_AddBoolToObject(body, "running", 1);
    cJSON_AddBoolToObject(body, "success", 1);
    cJSON_AddStringToObject(body, "status", "running");
    api_send_json(j->req, 202, body, loc);
    j->req = NULL;
}

static void started(store_tx_t *tx, store_status_t st, void *arg)
{
    job_t *j = arg;
    if (st != STORE_OK) {
        api_store_failed(j->req, tx, st);
        job_free(j);
        return;
    }
    fill_map(&j->sites, store_tx_result(tx, 1));
    fill_map(&j->parties, store_tx_result(tx, 2));
    job_answer(j);
    job_run(j);
}

static int media_ok(const char *ct)
{
    if (!ct) return 0;
    size_t n = strcspn(ct, "; ");
    return (n == 16 && strncasecmp(ct, "application/json", n) == 0) ||
           (n == 19 && strncasecmp(ct, "application/ld+json", n) == 0);
}

static void post_capture(app_t *app, http_req_t *req, const router_match_t *m,
                         const auth_principal_t *who)
{
    if (!media_ok(http_req_header(req, "content-type"))) {
        problem_send(req, 415, "unsupported-media-type", "Unsupported media type", NULL,
                     "send an EPCISDocument as application/json or application/ld+json");
        return;
    }
    cJSON *doc = api_json_body(req);
    if (!doc) return;
    errlist_t errs = ERRLIST_INIT;
    if (epcis_doc_check(doc, &errs) != 0) {
        problem_send_errors(req, 400, "invalid-epcis-document", "Invalid EPCIS document", &errs,
                            "%s", errs.items[0].message);
        errlist_free(&errs);
        cJSON_Delete(doc);
        return;
    }
    job_t *j = xcalloc(1, sizeof *j);
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1) abort();   /* no entropy: nothing sensible to do */
    for (int i = 0; i < 16; i++) snprintf(j->id + 2 * i, 3, "%02x", rnd[i]);
    j->app = app;
    j->req = req;
    j->doc = doc;
    j->admin = who->role == AUTH_ADMIN;
    snprintf(j->tenant, sizeof j->tenant, "%s", who->tenant);
    snprintf(j->party, sizeof j->party, "%s", who->party);
    cJSON *idents = epcis_identifiers(doc);
    pgarr_t arr;
    pgarr_init(&arr, PGARR_TEXT);
    const cJSON *x;
    cJSON_ArrayForEach(x, idents) pgarr_text(&arr, x->valuestring);
    int lens[2] = {0, 0}, fmts[2] = {0, 1};
    const char *vals[2] = {j->tenant, NULL};
    vals[1] = pgarr_finish(&arr, &lens[1]);
    const char *jv[2] = {j->tenant, j->id};
    store_tx_t *tx = store_tx_new(app->store, started, j);
    store_tx_exec(tx, "epcis_job_new", 2, jv, NULL, NULL);
    store_tx_exec(tx, "epcis_sites", 2, vals, lens, fmts);
    store_tx_exec(tx, "epcis_parties", 2, vals, lens, fmts);
    store_tx_submit(tx);
    pgarr_free(&arr);
    cJSON_Delete(idents);
}

/* ---------------------------------------------------------------------------------------------
 * GET /epcis/capture/{id} */

static void add_json(cJSON *obj, const char *key, const char *text)
{
    cJSON *v = cJSON_Parse(text);
    cJSON_AddItemToObject(obj, key, v ? v : cJSON_CreateArray());
}

static void got_job(store_tx_t *tx, store_status_t st, void *arg)
{
    http_req_t *req = arg;
    if (st != STORE_OK) {
        api_store_failed(req, tx, st);
        return;
    }
    const PGresult *r = store_tx_result(tx, 0);
    if (PQntuples(r) == 0) {
        problem_send(req, 404, "not-found", "Not found", NULL, "no capture job with this id");
        return;
    }
    const char *status = PQgetvalue(r, 0, 0);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "captureID", PQgetvalue(r, 0, 5));
    cJSON_AddStringToObject(b, "createdAt", PQgetvalue(r, 0, 1));
    if (!PQgetisnull(r, 0, 2)) cJSON_AddStringToObject(b, "finishedAt", PQgetvalue(r, 0, 2));
    cJSON_AddBoolToObject(b, "running", strcmp(status, "running") == 0);
    cJSON_AddBoolToObject(b, "success", strcmp(status, "failure") != 0);
    cJSON_AddStringToObject(b, "captureErrorBehaviour", "rollback");
    cJSON_AddStringToObject(b, "status", status);
    add_json(b, "errors", PQgetvalue(r, 0, 3));
    add_json(b, "eventIDs", PQgetvalue(r, 0, 4));
    api_send_json(req, 200, b, NULL);
}

static void get_capture(app_t *app, http_req_t *req, const router_match_t *m,
                        const auth_principal_t *who)
{
    const char *vals[2] = {who->tenant, m->params[0]};
    store_tx_t *tx = store_tx_new(app->store, got_job, req);
    store_tx_exec(tx, "epcis_job_get", 2, vals, NULL, NULL);
    store_tx_submit(tx);
}

/* ---------------------------------------------------------------------------------------------
 * GET /epcis/events */

enum { Q_TYPE, Q_GE, Q_LT, Q_STEP, Q_EPC, Q_ANY, Q_LOC, Q__COUNT };

/* An EPC or EPC pattern as a LIKE pattern: idpat "…:idpat:sgtin:CP.IR.*" -> "…:id:sgtin:CP.IR.%". */
static void like_pattern(const char *v, buf_t *out)
{
    const char *idpat = strstr(v, ":idpat:");
    for (const char *p = v; *p; p++) {
        if (p == idpat) { buf_puts(out, ":id:"); p += 6; continue; }
        if (*p == '*' && idpat) { buf_putc(out, '%'); continue; }
        if (*p == '%' || *p == '_' || *p == '\\') buf_putc(out, '\\');
        buf_putc(out, *p);
    }
}

/* A "|"-separated list parameter into a text[] (NULL when absent). */
static int list_param(const char *query, const char *key, int kind, pgarr_t *arr)
{
    char raw[4096];
    int n = http_query_get(query, key, raw, sizeof raw);
    if (n == -1) return 0;
    if (n < 0) return -1;
    for (char *tok = raw, *next; tok; tok = next) {
        next = strchr(tok, '|');
        if (next) *next++ = '\0';
        if (!*tok) return -1;
        buf_t b = BUF_INIT;
        if (kind == Q_STEP) buf_puts(&b, epcis_cbv_short(tok));
        else if (kind == Q_EPC || kind == Q_ANY) like_pattern(tok, &b);
        else buf_puts(&b, tok);
        pgarr_text(arr, b.data);
        buf_free(&b);
    }
    return 1;
}

static int time_param(const char *query, const char *key, char out[40])
{
    char raw[64];
    int64_t us;
    int n = http_query_get(query, key, raw, sizeof raw);
    if (n == -1) return 0;
    if (n < 0 || event_parse_time(raw, &us) != 0) return -1;
    event_format_time(us, out);
    return 1;
}

static void got_events(store_tx_t *tx, store_status_t st, void *arg)
{
    http_req_t *req = arg;
    if (st != STORE_OK) {
        api_store_failed(req, tx, st);
        return;
    }
    const PGresult *r = store_tx_result(tx, 0);
    char now[40];
    event_format_time(app_now_us() / 1000 * 1000, now);
    cJSON *doc = cJSON_CreateObject();
    cJSON *ctx = cJSON_AddArrayToObject(doc, "@context");
    cJSON_AddItemToArray(ctx, cJSON_CreateString("https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"));
    cJSON_AddStringToObject(doc, "type", "EPCISQueryDocument");
    cJSON_AddStringToObject(doc, "schemaVersion", "2.0");
    cJSON_AddStringToObject(doc, "creationDate", now);
    cJSON *qr = cJSON_AddObjectToObject(cJSON_AddObjectToObject(doc, "epcisBody"), "queryResults");
    cJSON_AddStringToObject(qr, "queryName", "SimpleEventQuery");
    cJSON *list = cJSON_AddArrayToObject(cJSON_AddObjectToObject(qr, "resultsBody"), "eventList");
    for (int i = 0; i < PQntuples(r); i++) {
        cJSON *ev = cJSON_Parse(PQgetvalue(r, i, 0));
        if (ev) cJSON_AddItemToArray(list, ev);
    }
    api_send_json(req, 200, doc, NULL);
}

static int per_page(const char *query)
{
    char raw[16], *end;
    int n = http_query_get(query, "perPage", raw, sizeof raw);
    if (n == -1) return QUERY_DEFAULT_EVENTS;
    long v = n > 0 ? strtol(raw, &end, 10) : 0;
    return n > 0 && *end == '\0' && v >= 1 && v <= QUERY_MAX_EVENTS ? (int)v : -1;
}

static void get_events(app_t *app, http_req_t *req, const router_match_t *m,
                       const auth_principal_t *who)
{
    static const char *const keys[Q__COUNT] = {"eventType", "GE_eventTime", "LT_eventTime",
        "EQ_bizStep", "MATCH_epc", "MATCH_anyEPC", "EQ_bizLocation"};
    const char *q = http_req_query(req);
    pgarr_t arrs[Q__COUNT];
    char times[2][40], limit[16];
    const char *vals[9] = {who->tenant};
    int lens[9] = {0}, fmts[9] = {0}, bad = -1, pp = per_page(q);
    for (int k = 0; k < Q__COUNT; k++) {
        pgarr_init(&arrs[k], PGARR_TEXT);
        int rc = k == Q_GE || k == Q_LT ? time_param(q, keys[k], times[k - Q_GE])
                                        : list_param(q, keys[k], k, &arrs[k]);
        if (rc < 0 && bad < 0) bad = k;
        if (rc <= 0) continue;
        if (k == Q_GE || k == Q_LT) vals[1 + k] = times[k - Q_GE];
        else { vals[1 + k] = pgarr_finish(&arrs[k], &lens[1 + k]); fmts[1 + k] = 1; }
    }
    snprintf(limit, sizeof limit, "%d", pp);
    vals[8] = limit;
    if (bad >= 0 || pp < 0)
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "%s is not valid (times are RFC 3339 with an offset, lists are separated by '|', perPage is 1 to %d)",
                     bad >= 0 ? keys[bad] : "perPage", QUERY_MAX_EVENTS);
    else {
        store_tx_t *tx = store_tx_new(app->store, got_events, req);
        store_tx_exec(tx, "epcis_query", 9, vals, lens, fmts);
        store_tx_submit(tx);
    }
    for (int k = 0; k < Q__COUNT; k++) pgarr_free(&arrs[k]);
}

void api_epcis_register(app_t *app)
{
    api_route(app, "POST", "/epcis/capture", AUTH_INGEST, post_capture);
    api_route(app, "GET", "/epcis/capture/{id}", AUTH_INGEST, get_capture);
    api_route(app, "GET", "/epcis/events", AUTH_READ, get_events);
}

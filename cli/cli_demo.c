/* cli_demo — `circa demo`: a seeded, realistic industrial park (master data and a year of
 * material flows) sent to circad over HTTP in 1,000-event batches; re-running adds nothing.
 *
 * The generator works unit by unit (a waste lot from factory to treatment, a production run,
 * a crate's lives), each unit starting anywhere in the year. A park's systems report events
 * as they happen, so by default the events are sent in time order: the year is cut into
 * windows of time, the generator runs once per window keeping only that window's events (it
 * is cheap when it only draws numbers), and each window is sorted before it is sent. The
 * memory is one window's events. --order unit sends them as generated, unit after unit: a
 * batch then spans the whole year (the worst case for roll-ups, see docs/PERFORMANCE.md). */
#include "cli_demo.h"
#include "cli_daemon.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "buf.h"
#include "cli_db.h"

#define BATCH 1000
#define ID_MAX 96
#define DAY 86400.0
#define WINDOW_EVENTS 100000   /* events of one time window on average: bounds the memory */

/* Where a waste stream goes after the collector's yard. */
enum { TO_RECYCLER, TO_MIXED, TO_HAZARDOUS };

typedef struct {
    const char *site, *material, *ewc, *hp, *op;   /* op: the recycler's final operation */
    int route;
    double min_kg, max_kg;
    double price_per_kg;         /* the material's reference value: secondary sells below it */
} stream_t;

/* The park's waste streams: three factories, each with its own mix. */
static const stream_t streams[] = {
    {"ACME-1", "PET", "150102", NULL, "R3", TO_RECYCLER, 150, 1500, 0.35},
    {"ACME-1", "HDPE", "150102", NULL, "R3", TO_RECYCLER, 100, 1200, 0.4},
    {"ACME-1", "CARDBOARD", "150101", NULL, "R3", TO_RECYCLER, 200, 2500, 0.12},
    {"ACME-1", "MIXED", "200301", NULL, NULL, TO_MIXED, 300, 3000, 0},
    {"BOLT-1", "STEEL", "150104", NULL, "R4", TO_RECYCLER, 400, 4000, 0.25},
    {"BOLT-1", "ALU", "150104", NULL, "R4", TO_RECYCLER, 50, 600, 1.1},
    {"BOLT-1", "CONTAM", "150110*", "[\"HP6\",\"HP14\"]", NULL, TO_HAZARDOUS, 20, 300, 0},
    {"BOLT-1", "MIXED", "200301", NULL, NULL, TO_MIXED, 200, 2000, 0},
    {"PAPYR-1", "CARDBOARD", "150101", NULL, "R3", TO_RECYCLER, 500, 5000, 0.12},
    {"PAPYR-1", "GLASS", "150107", NULL, "R5", TO_RECYCLER, 100, 1500, 0.05},
    {"PAPYR-1", "MIXED", "200301", NULL, NULL, TO_MIXED, 200, 2500, 0},
};
#define NSTREAMS (sizeof streams / sizeof streams[0])

/* Master data: ' stands for " and @ for the code prefix. The records of the old demo script
 * are kept identical, so a tenant loaded by it answers 200 here. */
static const char *const parties[] = {
    "{'code':'@ACME','name':'Acme Plastics','roles':['generator','manufacturer'],'country':'DE'}",
    "{'code':'@GREENCYCLE','name':'GreenCycle Recycling','roles':['recycler','collector'],'country':'DE'}",
    "{'code':'@PARKWASTE','name':'Park Waste Services','roles':['collector','carrier'],'country':'DE'}",
    "{'code':'@LANDFILL','name':'County Landfill','roles':['landfill'],'country':'DE'}",
    "{'code':'@EFW','name':'City Energy from Waste','roles':['energy_recovery'],'country':'DE'}",
    "{'code':'@BOLT','name':'Bolt Metalworks','roles':['generator','manufacturer'],'country':'DE'}",
    "{'code':'@PAPYR','name':'Papyr Packaging','roles':['generator','manufacturer'],'country':'DE'}",
    NULL};
static const char *const sites[] = {
    "{'code':'@ACME-1','party':'@ACME','name':'Acme plant 1','kind':'factory','country':'DE'}",
    "{'code':'@GC-SORT','party':'@GREENCYCLE','name':'GreenCycle sorting line','kind':'sorting','country':'DE'}",
    "{'code':'@GC-REC','party':'@GREENCYCLE','name':'GreenCycle pelletising','kind':'recycling','country':'DE'}",
    "{'code':'@PW-YARD','party':'@PARKWASTE','name':'Park collection yard','kind':'collection_point','country':'DE'}",
    "{'code':'@LF-1','party':'@LANDFILL','name':'County landfill','kind':'landfill','country':'DE'}",
    "{'code':'@EFW-1','party':'@EFW','name':'City EfW plant','kind':'incinerator','country':'DE'}",
    "{'code':'@BOLT-1','party':'@BOLT','name':'Bolt press shop','kind':'factory','country':'DE'}",
    "{'code':'@PAPYR-1','party':'@PAPYR','name':'Papyr converting plant','kind':'factory','country':'DE'}",
    NULL};
static const char *const materials[] = {
    "{'code':'@PET','name':'Polyethylene terephthalate','category':'plastic','hazardous':false,'renewable':false,'density_kg_m3':1380,'value_per_kg':0.35}",
    "{'code':'@HDPE','name':'High-density polyethylene','category':'plastic','hazardous':false,'renewable':false,'density_kg_m3':950,'value_per_kg':0.40}",
    "{'code':'@CARDBOARD','name':'Corrugated cardboard','category':'paper','hazardous':false,'renewable':true,'value_per_kg':0.12}",
    "{'code':'@MIXED','name':'Mixed municipal waste','category':'mixed','hazardous':false,'renewable':false}",
    "{'code':'@STEEL','name':'Steel scrap','category':'metal','hazardous':false,'renewable':false,'density_kg_m3':7850,'value_per_kg':0.25}",
    "{'code':'@ALU','name':'Aluminium scrap','category':'metal','hazardous':false,'renewable':false,'density_kg_m3':2700,'value_per_kg':1.1}",
    "{'code':'@GLASS','name':'Container glass','category':'glass','hazardous':false,'renewable':false,'density_kg_m3':2500,'value_per_kg':0.05}",
    "{'code':'@CONTAM','name':'Packaging with hazardous residues','category':'hazardous','hazardous':true,'renewable':false}",
    NULL};
static const char *const products[] = {
    "{'code':'@CRATE','name':'Returnable crate','mass_kg':2.0,'lifetime_days':1825,'industry_lifetime_days':1460,"
    "'bom':[{'material':'@HDPE','mass_kg':2.0,'recycled_fraction':0.3,'reused_fraction':0,'renewable_fraction':0}]}",
    "{'code':'@PALLET','name':'Plastic pallet','mass_kg':15.0,'lifetime_days':3650,'industry_lifetime_days':2920,"
    "'bom':[{'material':'@HDPE','mass_kg':15.0,'recycled_fraction':0.5,'reused_fraction':0,'renewable_fraction':0}]}",
    "{'code':'@BOX','name':'Shipping box','mass_kg':0.4,"
    "'bom':[{'material':'@CARDBOARD','mass_kg':0.4,'recycled_fraction':0.8,'reused_fraction':0,'renewable_fraction':0.2}]}",
    "{'code':'@BRACKET','name':'Steel bracket','mass_kg':1.2,"
    "'bom':[{'material':'@STEEL','mass_kg':1.2,'recycled_fraction':0.6,'reused_fraction':0,'renewable_fraction':0}]}",
    NULL};

/* An event of the window being generated: its time, its number and its line in wbuf. */
typedef struct {
    double t;
    long n;
    size_t off, len;
} pending_t;

typedef struct {
    char url[512], key[512], pfx[40];
    uint64_t seed, rng;
    long want;                   /* --events */
    int year;
    double t0, limit;            /* times are in [t0, limit): the year, never the future */
    long n, unit;                /* events generated (this pass), units generated */
    int by_unit;                 /* --order unit: send events as generated */
    int skip;                    /* the current event lies outside the window */
    double ev_t;                 /* the current event's time */
    double wlo, whi;             /* the window: event times in [wlo, whi) */
    buf_t wbuf;                  /* the window's events, one line each */
    pending_t *pend;             /* the window's events, sorted by time before sending */
    size_t npend, cappend;
    long replacements;           /* replacement events inside corrections */
    buf_t ev, batch;
    size_t off[BATCH + 1];       /* the batch's lines: off[i] … off[i+1] */
    char ids[BATCH][ID_MAX];
    int nb;
    long requests, accepted, duplicates, rejected;
    int failed;
    CURL *curl;
    struct curl_slist *headers;
} demo_t;

static const char usage_text[] =
    "usage: circa demo [--url URL] [--key KEY] [--seed S] [--events N] [--year Y]\n"
    "                  [--tenant-prefix P] [--order time|unit]\n"
    "Sends a generated industrial park to circad: its master data (parties, sites,\n"
    "materials, products), then N events (default 20000) over one year in 1,000-event\n"
    "requests: factories' waste streams, a collector, a recycler's sorting and\n"
    "transformation lines, a landfill, an energy-from-waste plant, production with bills\n"
    "of materials, crates and pallets with several lives, declared values, corrections.\n"
    "  --seed S           same seed, same events and ids (demo-<S>-<n>); default 1\n"
    "  --year Y           the year the events fall in; default the last full year\n"
    "                     (the current year is allowed: events stop before now)\n"
    "  --tenant-prefix P  prefix every code, lot, item and id with P- so several parks\n"
    "                     can share a tenant\n"
    "  --order O          time (default): events are sent in time order, as a park's\n"
    "                     systems report them; unit: each lot's, run's and item's events\n"
    "                     together, as generated, so a request spans the whole year\n"
    "  --url, --key       default CIRCA_URL (else http://CIRCA_LISTEN) and CIRCA_KEY\n"
    "                     (else $CIRCA_DATA_DIR/admin.key)\n"
    "Exit: 0 nothing rejected; 1 events rejected or circad unreachable; 2 bad invocation.\n";

/* ---- randomness and time ------------------------------------------------------------------ */

/* splitmix64: tiny, fast and the same on every platform, so a seed means the same park. */
static uint64_t rnd(demo_t *d)
{
    uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unif(demo_t *d)
{
    return (double)(rnd(d) >> 11) * (1.0 / 9007199254740992.0);
}

static double range(demo_t *d, double lo, double hi)
{
    return lo + (hi - lo) * unif(d);
}

/* A unit's clock advanced by about `seconds`, but never to the limit: late in the year the
 * steps shrink so every event stays in the year and in the past. */
static double later(const demo_t *d, double t, double seconds)
{
    double room = (d->limit - t) / 4;
    return t + (seconds < room ? seconds : room);
}

/* A unit's first moment: anywhere in the first 85 % of the period. */
static double start_time(demo_t *d)
{
    return d->t0 + unif(d) * (d->limit - d->t0) * 0.85;
}

static void fmt_time(double t, char out[32])
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* URL and key from the options, else where every daemon command finds them (cli_daemon). */
static int locate(demo_t *d)
{
    if (!d->url[0]) cli_daemon_url(d->url, sizeof d->url);
    size_t len = strlen(d->url);
    if (len && d->url[len - 1] == '/') d->url[len - 1] = 0;
    if (!d->key[0] && cli_daemon_key(d->key, sizeof d->key) != 0) {
        fputs("circa demo: no API key: give --key, set CIRCA_KEY or put one in "
              "$CIRCA_DATA_DIR/admin.key\n", stderr);
        return -1;
    }
    return 0;
}

static int http_open(demo_t *d)
{
    char auth[600];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", d->key);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d->curl = curl_easy_init();
    if (!d->curl) return -1;
    d->headers = curl_slist_append(d->headers, auth);
    d->headers = curl_slist_append(d->headers, "Expect:");
    curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(d->curl, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

static void http_close(demo_t *d)
{
    if (!d->curl) return;
    curl_easy_cleanup(d->curl);
    curl_slist_free_all(d->headers);
    curl_global_cleanup();
}

/* One POST of a JSON body (ctype given); the status, 0 with curl's message on a transport
 * error. A 503 or a transport error is retried with back-off (idempotent ids make it safe). */
static long post(demo_t *d, const char *path, const char *ctype, const char *body, size_t len,
                 buf_t *resp)
{
    char url[700], ct[80];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    struct curl_slist *h = curl_slist_append(NULL, ct);
    for (struct curl_slist *x = d->headers; x; x = x->next) h = curl_slist_append(h, x->data);
    long status = 0;
    for (int attempt = 0; attempt < 6; attempt++) {
        if (attempt) sleep(1u << (attempt - 1));
        buf_reset(resp);
        curl_easy_setopt(d->curl, CURLOPT_URL, url);
        curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, resp);
        CURLcode rc = curl_easy_perform(d->curl);
        status = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
        else buf_puts(resp, curl_easy_strerror(rc));
        if (status != 0 && status != 503) break;
    }
    buf_puts(resp, "");
    curl_slist_free_all(h);
    return status;
}

/* ---- master data -------------------------------------------------------------------------- */

/* A template with ' for " and @ for the prefix, expanded into out. */
static void expand(const demo_t *d, const char *tpl, buf_t *out)
{
    buf_reset(out);
    for (const char *p = tpl; *p; p++) {
        if (*p == '\'') buf_putc(out, '"');
        else if (*p == '@') buf_puts(out, d->pfx);
        else buf_putc(out, *p);
    }
    buf_puts(out, "");
}

static int post_records(demo_t *d, const char *path, const char *const *list)
{
    buf_t body = BUF_INIT, resp = BUF_INIT;
    int rc = 0;
    for (; *list && rc == 0; list++) {
        expand(d, *list, &body);
        long st = post(d, path, "application/json", body.data, body.len, &resp);
        if (st == 200 || st == 201) continue;
        fprintf(stderr, "circa demo: POST %s answered %ld: %.300s\n", path, st, resp.data);
        rc = -1;
    }
    buf_free(&body);
    buf_free(&resp);
    return rc;
}

static int master_data(demo_t *d)
{
    if (post_records(d, "/v1/parties", parties) || post_records(d, "/v1/sites", sites) ||
        post_records(d, "/v1/materials", materials) || post_records(d, "/v1/products", products))
        return -1;
    return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

static const char *json_str(const cJSON *j, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, key));
}

/* Prints each event a 409/422 answer names and marks it in drop; the number named. */
static int name_rejections(demo_t *d, const cJSON *problem, char *drop)
{
    int named = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(problem, "errors")) {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(e, "index");
        if (!cJSON_IsNumber(ix) || ix->valueint < 0 || ix->valueint >= d->nb) continue;
        fprintf(stderr, "circa demo: rejected %s: %s: %s\n", d->ids[ix->valueint],
                json_str(e, "field") ? json_str(e, "field") : "", json_str(e, "message") ? json_str(e, "message") : "");
        named += !drop[ix->valueint];
        drop[ix->valueint] = 1;
    }
    return named;
}

/* The batch without the dropped events, into body; their count. */
static int rebuild(const demo_t *d, const char *drop, buf_t *body)
{
    buf_reset(body);
    int kept = 0;
    for (int i = 0; i < d->nb; i++) {
        if (drop[i]) continue;
        buf_append(body, d->batch.data + d->off[i], d->off[i + 1] - d->off[i]);
        kept++;
    }
    buf_puts(body, "");
    return kept;
}

/* Counts a 200/201 answer; -1 for anything else. */
static int settle_ok(demo_t *d, long st, const cJSON *j)
{
    if (st != 200 && st != 201) return -1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accepted");
    const cJSON *dup = cJSON_GetObjectItemCaseSensitive(j, "duplicates");
    d->accepted += cJSON_IsNumber(a) ? (long)a->valuedouble : 0;
    d->duplicates += cJSON_IsNumber(dup) ? (long)dup->valuedouble : 0;
    return 0;
}

/* Sends the batch; events circad refuses are reported, counted and left out of one resend. */
static int flush(demo_t *d)
{
    if (d->nb == 0) return 0;
    char drop[BATCH] = {0};
    buf_t body = BUF_INIT, resp = BUF_INIT;
    int rc = 0, kept = rebuild(d, drop, &body);
    for (int attempt = 0; attempt < 2 && kept > 0; attempt++) {
        long st = post(d, "/v1/events", "application/x-ndjson", body.data, body.len, &resp);
        d->requests++;
        cJSON *j = cJSON_Parse(resp.data);
        int ok = settle_ok(d, st, j) == 0;
        int named = ok || (st != 409 && st != 422) ? 0 : name_rejections(d, j, drop);
        cJSON_Delete(j);
        if (ok) break;
        if (named == 0) {
            fprintf(stderr, "circa demo: POST /v1/events answered %ld: %.400s\n", st, resp.data);
            d->rejected += kept;
            rc = st == 409 || st == 422 ? 0 : -1;
            break;
        }
        d->rejected += named;
        kept = rebuild(d, drop, &body);
    }
    buf_free(&body);
    buf_free(&resp);
    buf_reset(&d->batch);
    d->nb = 0;
    return rc;
}

/* ---- events ------------------------------------------------------------------------------- */

/* Starts an event in d->ev: {"id", "type", "time", "site"}. Its id goes to id (may be NULL). */
static void ev_begin(demo_t *d, const char *type, double t, const char *site, char id[ID_MAX])
{
    char tm[32], own[ID_MAX];
    d->ev_t = t;
    d->skip = !d->by_unit && (t < d->wlo || t >= d->whi);
    if (d->skip && !id) return;   /* outside the window: only the numbers are drawn */
    snprintf(own, sizeof own, "%sdemo-%llu-%ld", d->pfx, (unsigned long long)d->seed, d->n + 1);
    if (id) snprintf(id, ID_MAX, "%s", own);
    if (d->skip) return;
    fmt_time(t, tm);
    buf_reset(&d->ev);
    buf_printf(&d->ev, "{\"id\":\"%s\",\"type\":\"%s\",\"time\":\"%s\"", own, type, tm);
    if (site) buf_printf(&d->ev, ",\"site\":\"%s%s\"", d->pfx, site);
}

/* Appends to the current event unless it lies outside the window. */
static void evf(demo_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void evf(demo_t *d, const char *fmt, ...)
{
    if (d->skip) return;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&d->ev, fmt, ap);
    va_end(ap);
}

/* ,"key":"<prefix>code" */
static void code(demo_t *d, const char *key, const char *c)
{
    evf(d, ",\"%s\":\"%s%s\"", key, d->pfx, c);
}

static void str(demo_t *d, const char *key, const char *s)
{
    evf(d, ",\"%s\":\"%s\"", key, s);
}

static void qty(demo_t *d, const char *key, double kg)
{
    evf(d, ",\"%s\":{\"value\":%.1f,\"unit\":\"kg\"}", key, kg);
}

static void value(demo_t *d, double amount)
{
    evf(d, ",\"value\":{\"amount\":%.2f,\"currency\":\"EUR\"}", amount);
}

/* Adds one event line to the batch, sending the batch when it is full. */
static void batch_add(demo_t *d, const char *line, size_t len)
{
    d->off[d->nb] = d->batch.len;
    buf_append(&d->batch, line, len);
    snprintf(d->ids[d->nb], ID_MAX, "%.*s", (int)strcspn(line + 7, "\""), line + 7);
    d->nb++;
    d->off[d->nb] = d->batch.len;
    if (d->nb == BATCH && flush(d) != 0) d->failed = 1;
}

/* Closes the event: to the batch (--order unit) or to the window. Events past --events are
 * not sent, so a run of N events is the first N of a longer run with the same seed. */
static void ev_end(demo_t *d)
{
    if (d->n >= d->want) return;
    d->n++;
    if (d->skip) return;
    buf_puts(&d->ev, "}\n");
    if (d->by_unit) {
        batch_add(d, d->ev.data, d->ev.len);
        return;
    }
    if (d->npend == d->cappend) {
        d->cappend = d->cappend ? 2 * d->cappend : 4096;
        d->pend = xrealloc(d->pend, d->cappend * sizeof *d->pend);
    }
    d->pend[d->npend++] = (pending_t){d->ev_t, d->n, d->wbuf.len, d->ev.len};
    buf_append(&d->wbuf, d->ev.data, d->ev.len);
}

/* The fields every event of a waste lot carries. */
static void waste(demo_t *d, const stream_t *s, const char *lot, double kg)
{
    code(d, "material", s->material);
    str(d, "ewc", s->ewc);
    if (s->hp) evf(d, ",\"hp\":%s", s->hp);
    code(d, "lot", lot);
    qty(d, "quantity", kg);
}

/* A correction of a waste_generated event: the scale ticket was re-weighed. */
static void correct(demo_t *d, const char *wrong, double t, const stream_t *s, const char *lot,
                    double kg)
{
    char rid[ID_MAX + 4], tm[32];
    snprintf(rid, sizeof rid, "%s-r", wrong);
    fmt_time(t, tm);
    ev_begin(d, "corrected", later(d, t, 3600), NULL, NULL);
    evf(d, ",\"corrects\":\"%s\",\"replacement\":{\"id\":\"%s\","
               "\"type\":\"waste_generated\",\"time\":\"%s\"", wrong, rid, tm);
    code(d, "site", s->site);
    waste(d, s, lot, kg);
    evf(d, "}");
    long before = d->n;
    ev_end(d);
    d->replacements += d->n > before && !d->skip;
}

/* The recycler's part: R13 storage at the sorting line, sorting, a transformation of the lot
 * into flakes and a residue (balanced within 2 %), recycling with the lot's own number (so
 * the interim storage is followed to its final operation), the residue to the landfill. */
static void recycle(demo_t *d, const stream_t *s, const char *lot, double kg, double t)
{
    char flakes[64], residue[64];
    snprintf(flakes, sizeof flakes, "LF-%llu-%ld", (unsigned long long)d->seed, d->unit);
    snprintf(residue, sizeof residue, "LR-%llu-%ld", (unsigned long long)d->seed, d->unit);
    if (unif(d) < 0.08) return;   /* still in R13 storage at the end of the data */
    ev_begin(d, "sorted", t = later(d, t, range(d, 1, 5) * DAY), "GC-SORT", NULL);
    waste(d, s, lot, kg);
    ev_end(d);
    double out = kg * range(d, 0.85, 0.94), res = kg * range(d, 0.02, 0.04);
    double loss = kg - out - res + kg * range(d, -0.005, 0.005);
    ev_begin(d, "transformed", t = later(d, t, range(d, 0.2, 2) * DAY), "GC-REC", NULL);
    evf(d, ",\"inputs\":[{\"lot\":\"%s%s\",\"material\":\"%s%s\","
               "\"quantity\":{\"value\":%.1f,\"unit\":\"kg\"}}]", d->pfx, lot, d->pfx, s->material, kg);
    evf(d, ",\"outputs\":[{\"lot\":\"%s%s\",\"material\":\"%s%s\",\"quantity\":"
               "{\"value\":%.1f,\"unit\":\"kg\"},\"fate\":\"secondary_material\"},{\"lot\":\"%s%s\","
               "\"material\":\"%sMIXED\",\"quantity\":{\"value\":%.1f,\"unit\":\"kg\"},\"fate\":\"residue\"}]",
               d->pfx, flakes, d->pfx, s->material, out, d->pfx, residue, d->pfx, res);
    qty(d, "loss", loss);
    ev_end(d);
    ev_begin(d, "recycled", t = later(d, t, 3600), "GC-REC", NULL);
    str(d, "operation", s->op);
    waste(d, s, lot, out);
    if (unif(d) < 0.5) value(d, out * s->price_per_kg * range(d, 0.5, 0.9));
    ev_end(d);
    ev_begin(d, "shipped", t = later(d, t, range(d, 1, 7) * DAY), "GC-REC", NULL);
    code(d, "to_site", "LF-1");
    evf(d, ",\"material\":\"%sMIXED\",\"ewc\":\"191212\",\"lot\":\"%s%s\"", d->pfx, d->pfx, residue);
    qty(d, "quantity", res);
    ev_end(d);
    ev_begin(d, "received", t = later(d, t, 3 * 3600), "LF-1", NULL);
    code(d, "from_site", "GC-REC");
    evf(d, ",\"material\":\"%sMIXED\",\"ewc\":\"191212\",\"lot\":\"%s%s\"", d->pfx, d->pfx, residue);
    qty(d, "quantity", res);
    ev_end(d);
    ev_begin(d, "disposed", later(d, t, DAY), "LF-1", NULL);
    str(d, "operation", "D1");
    evf(d, ",\"material\":\"%sMIXED\",\"ewc\":\"191212\",\"lot\":\"%s%s\"", d->pfx, d->pfx, residue);
    qty(d, "quantity", res);
    ev_end(d);
}

/* Mixed and hazardous waste: energy from waste (R1, some D10) or the landfill (D1). */
static void final_op(demo_t *d, const stream_t *s, const char *lot, double kg, double t,
                     const char *dest)
{
    int landfill = strcmp(dest, "LF-1") == 0;
    const char *op = landfill ? "D1" : s->route == TO_HAZARDOUS || unif(d) < 0.15 ? "D10" : "R1";
    ev_begin(d, op[0] == 'R' ? "energy_recovered" : "disposed", later(d, t, range(d, 0.5, 4) * DAY),
             dest, NULL);
    str(d, "operation", op);
    waste(d, s, lot, kg);
    if (op[0] == 'R' && unif(d) < 0.3) value(d, kg * 0.02);
    ev_end(d);
}

/* One waste lot from a factory, through the collector's yard, to its treatment. */
static void waste_stream(demo_t *d)
{
    const stream_t *s = &streams[rnd(d) % NSTREAMS];
    char lot[64], wid[ID_MAX];
    snprintf(lot, sizeof lot, "L-%llu-%ld", (unsigned long long)d->seed, d->unit);
    double kg = range(d, s->min_kg, s->max_kg), t = start_time(d), t_gen = t;
    const char *dest = s->route == TO_RECYCLER ? "GC-SORT" : s->route == TO_HAZARDOUS ? "EFW-1"
                     : unif(d) < 0.6 ? "EFW-1" : "LF-1";
    const char *planned = s->route == TO_RECYCLER ? "R13" : strcmp(dest, "LF-1") == 0 ? "D1"
                        : s->route == TO_HAZARDOUS ? "D10" : "R1";
    ev_begin(d, "waste_generated", t, s->site, wid);
    waste(d, s, lot, kg);
    ev_end(d);
    ev_begin(d, "collected", t = later(d, t, range(d, 0.5, 3) * DAY), "PW-YARD", NULL);
    code(d, "from_site", s->site);
    str(d, "planned_operation", planned);
    waste(d, s, lot, kg);
    if (s->route == TO_HAZARDOUS) evf(d, ",\"document\":\"CN-%llu-%ld\"",
                                             (unsigned long long)d->seed, d->unit);
    ev_end(d);
    ev_begin(d, "shipped", t = later(d, t, range(d, 0.5, 5) * DAY), "PW-YARD", NULL);
    code(d, "to_site", dest);
    waste(d, s, lot, kg);
    ev_end(d);
    ev_begin(d, "received", t = later(d, t, 4 * 3600), dest, NULL);
    code(d, "from_site", "PW-YARD");
    if (s->route == TO_RECYCLER) str(d, "operation", "R13");
    waste(d, s, lot, kg);
    ev_end(d);
    if (s->route == TO_RECYCLER) recycle(d, s, lot, kg, t);
    else final_op(d, s, lot, kg, t, dest);
    if (unif(d) < 0.01) correct(d, wid, t_gen, s, lot, kg * range(d, 0.95, 0.99));
}

/* A production run: material consumed, products made (their bills name recycled content). */
static void production(demo_t *d)
{
    static const struct { const char *site, *product, *material; double unit_kg; } runs[] = {
        {"ACME-1", "CRATE", "HDPE", 2.0}, {"ACME-1", "PALLET", "HDPE", 15.0},
        {"PAPYR-1", "BOX", "CARDBOARD", 0.4}, {"BOLT-1", "BRACKET", "STEEL", 1.2}};
    int k = (int)(rnd(d) % 4);
    double made = runs[k].unit_kg * (double)(50 + rnd(d) % 950), t = start_time(d);
    ev_begin(d, "consumed", t, runs[k].site, NULL);
    code(d, "material", runs[k].material);
    qty(d, "quantity", made * range(d, 1.02, 1.08));
    ev_end(d);
    ev_begin(d, "produced", later(d, t, 8 * 3600), runs[k].site, NULL);
    code(d, "product", runs[k].product);
    evf(d, ",\"lot\":\"%sP-%llu-%ld\"", d->pfx, (unsigned long long)d->seed, d->unit);
    qty(d, "quantity", made);
    ev_end(d);
}

/* An item event of the crate and pallet pool at Acme. */
static void item_event(demo_t *d, const char *type, double t, const char *site, const char *item,
                       const char *product)
{
    ev_begin(d, type, t, site, NULL);
    code(d, "item", item);
    code(d, "product", product);
}

/* A returnable crate or pallet: put on the market, returned, refurbished and sold again a few
 * times, and finally recycled (or still in use at the end of the data). */
static void item_lives(demo_t *d)
{
    const char *product = unif(d) < 0.7 ? "CRATE" : "PALLET";
    double price = product[0] == 'C' ? 9.0 : 45.0, t = start_time(d);
    char item[64];
    snprintf(item, sizeof item, "IT-%llu-%ld", (unsigned long long)d->seed, d->unit);
    int lives = 1 + (int)(rnd(d) % 4);
    for (int life = 1; life <= lives; life++) {
        if (life > 1) {
            item_event(d, "refurbished", t = later(d, t, range(d, 1, 10) * DAY), "ACME-1", item, product);
            value(d, price * range(d, 0.3, 0.6));
            ev_end(d);
        }
        item_event(d, "put_on_market", t = later(d, t, range(d, 1, 5) * DAY), "ACME-1", item, product);
        value(d, price * (life == 1 ? 1.0 : 0.7));
        ev_end(d);
        if (life == lives && unif(d) < 0.25) return;   /* still in use */
        item_event(d, "returned", t = later(d, t, range(d, 20, 90) * DAY), "ACME-1", item, product);
        ev_end(d);
    }
    item_event(d, "recycled", later(d, t, range(d, 2, 20) * DAY), "GC-REC", item, product);
    str(d, "operation", "R3");
    ev_end(d);
}

/* A lot of PET flakes re-processed ten times (regrind of regrind), each step adding virgin
 * pellets: GET /v1/lots/<prefix>CH-<seed>-10/trace walks ten transformations back to the
 * factory's waste_generated. */
static void deep_chain(demo_t *d)
{
    char tm[32];
    double kg = 5000, t = d->t0 + (d->limit - d->t0) * 0.05;
    ev_begin(d, "waste_generated", t, "ACME-1", NULL);
    evf(d, ",\"material\":\"%sPET\",\"ewc\":\"150102\",\"lot\":\"%sCH-%llu-0\"", d->pfx,
               d->pfx, (unsigned long long)d->seed);
    qty(d, "quantity", kg);
    ev_end(d);
    for (int i = 0; i < 10; i++) {
        double virgin = kg * 0.05, out = (kg + virgin) * 0.98;
        fmt_time(t, tm);
        ev_begin(d, "transformed", t = later(d, t, 2 * DAY), "GC-REC", NULL);
        evf(d, ",\"inputs\":[{\"lot\":\"%sCH-%llu-%d\",\"material\":\"%sPET\","
                   "\"quantity\":{\"value\":%.1f,\"unit\":\"kg\"}},{\"lot\":\"%sVP-%llu-%d\","
                   "\"material\":\"%sPET\",\"quantity\":{\"value\":%.1f,\"unit\":\"kg\"}}]",
                   d->pfx, (unsigned long long)d->seed, i, d->pfx, kg, d->pfx,
                   (unsigned long long)d->seed, i, d->pfx, virgin);
        evf(d, ",\"outputs\":[{\"lot\":\"%sCH-%llu-%d\",\"material\":\"%sPET\","
                   "\"quantity\":{\"value\":%.1f,\"unit\":\"kg\"},\"fate\":\"secondary_material\"}]",
                   d->pfx, (unsigned long long)d->seed, i + 1, d->pfx, out);
        qty(d, "loss", kg + virgin - out);
        ev_end(d);
        kg = out;
    }
}

/* One run of the generator from the seed; its events go to the batch or to the window. */
static void generate_units(demo_t *d)
{
    d->rng = d->seed;
    d->n = d->unit = 0;
    deep_chain(d);
    while (d->n < d->want && !d->failed) {
        d->unit++;
        double r = unif(d);
        if (r < 0.72) waste_stream(d);
        else if (r < 0.85) production(d);
        else item_lives(d);
    }
}

static int pending_cmp(const void *a, const void *b)
{
    const pending_t *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);   /* same time: in the order generated (causes first) */
}

/* Sends the window's events in time order and empties the window. */
static void send_window(demo_t *d)
{
    qsort(d->pend, d->npend, sizeof *d->pend, pending_cmp);
    for (size_t i = 0; i < d->npend && !d->failed; i++)
        batch_add(d, d->wbuf.data + d->pend[i].off, d->pend[i].len);
    d->npend = 0;
    buf_reset(&d->wbuf);
}

static void generate(demo_t *d)
{
    if (d->by_unit) generate_units(d);
    long windows = (d->want + WINDOW_EVENTS - 1) / WINDOW_EVENTS;
    for (long w = 0; !d->by_unit && w < windows && !d->failed; w++) {
        double span = (d->limit - d->t0) / (double)windows;
        d->wlo = w == 0 ? -INFINITY : d->t0 + span * (double)w;
        d->whi = w == windows - 1 ? INFINITY : d->t0 + span * (double)(w + 1);
        generate_units(d);
        send_window(d);
    }
    if (!d->failed && flush(d) != 0) d->failed = 1;
}

/* ---- the command -------------------------------------------------------------------------- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The period: the year asked for, else the last full year; never past now minus 10 min. */
static int set_period(demo_t *d)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (!d->year) d->year = tm.tm_year + 1900 - 1;
    struct tm a = {.tm_year = d->year - 1900, .tm_mday = 1}, b = {.tm_year = d->year - 1899, .tm_mday = 1};
    d->t0 = (double)timegm(&a);
    d->limit = (double)timegm(&b);
    if (d->limit > (double)now - 600) d->limit = (double)now - 600;
    if (d->limit - d->t0 >= 7 * DAY) return 0;
    fprintf(stderr, "circa demo: year %d has less than a week in the past\n", d->year);
    return -1;
}

static int parse_args(demo_t *d, int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'}, {"key", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'}, {"events", required_argument, NULL, 'n'},
        {"year", required_argument, NULL, 'y'}, {"tenant-prefix", required_argument, NULL, 'p'},
        {"order", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 1;
        }
        if (c == 'u') snprintf(d->url, sizeof d->url, "%s", optarg);
        else if (c == 'k') snprintf(d->key, sizeof d->key, "%s", optarg);
        else if (c == 's' && parse_long(optarg, 0, LONG_MAX, &v) == 0) d->seed = (uint64_t)v;
        else if (c == 'n' && parse_long(optarg, 1, 1000000000L, &v) == 0) d->want = v;
        else if (c == 'y' && parse_long(optarg, 1970, 9999, &v) == 0) d->year = (int)v;
        else if (c == 'o' && (strcmp(optarg, "time") == 0 || strcmp(optarg, "unit") == 0))
            d->by_unit = optarg[0] == 'u';
        else if (c == 'p' && strlen(optarg) < 30 && strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "abcdefghijklmnopqrstuvwxyz0123456789_.") == strlen(optarg) && *optarg)
            snprintf(d->pfx, sizeof d->pfx, "%s-", optarg);
        else {
            if (c != '?') fprintf(stderr, "circa demo: bad value '%s'\n", optarg);
            fputs("circa demo: see 'circa demo --help'\n", stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "circa demo: unexpected argument '%s'; see 'circa demo --help'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void summary(const demo_t *d, double secs)
{
    printf("circa demo: seed %llu, year %d: %ld events (+%ld replacements in corrections) in %ld "
           "requests, %.2f s\n", (unsigned long long)d->seed, d->year, d->n, d->replacements,
           d->requests, secs);
    printf("circa demo: accepted %ld, duplicates %ld, rejected %ld\n", d->accepted, d->duplicates,
           d->rejected);
    printf("circa demo: GET /v1/metrics?from=%d-01-01&to=%d-01-01 shows the year; "
           "GET /v1/lots/%sCH-%llu-10/trace is 10 transformations deep\n", d->year, d->year + 1,
           d->pfx, (unsigned long long)d->seed);
    printf("demo seed=%llu year=%d events=%ld replacements=%ld accepted=%ld duplicates=%ld "
           "rejected=%ld seconds=%.3f events_per_s=%.0f deep_lot=%sCH-%llu-10\n",
           (unsigned long long)d->seed, d->year, d->n, d->replacements, d->accepted, d->duplicates,
           d->rejected, secs, secs > 0 ? (double)(d->n + d->replacements) / secs : 0.0, d->pfx,
           (unsigned long long)d->seed);
}

int cli_demo_main(int argc, char **argv)
{
    static demo_t d;
    memset(&d, 0, sizeof d);
    d.seed = 1;
    d.want = 20000;
    int rc = parse_args(&d, argc, argv);
    if (rc) return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (set_period(&d) != 0) return CLI_EXIT_USAGE;
    if (locate(&d) != 0) return CLI_EXIT_USAGE;
    if (http_open(&d) != 0) {
        fputs("circa demo: cannot initialise libcurl\n", stderr);
        return CLI_EXIT_FAIL;
    }
    double t = now_s();
    if (master_data(&d) == 0) {
        t = now_s();   /* the rate is of events only */
        generate(&d);
    } else d.failed = 1;
    double secs = now_s() - t;
    http_close(&d);
    buf_free(&d.ev);
    buf_free(&d.batch);
    buf_free(&d.wbuf);
    free(d.pend);
    if (!d.failed || d.n) summary(&d, secs);
    return d.failed || d.rejected ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

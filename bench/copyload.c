/* copyload — the COPY reference for the ingest benchmark: the same kind of events as loadgen, validated and canonicalised, loaded with COPY into event plus one ledger block per 1,000 rows. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "buf.h"
#include "errlist.h"
#include "event.h"
#include "jcs.h"
#include "ledger.h"
#include "pgarr.h"

/* event_parse is used when daemon/event.c is linked in; until then copyload builds the
 * canonical bytes itself (cJSON + JCS). Weak references let it link either way. */
#pragma weak event_parse
#pragma weak event_free
#pragma weak event_type_name

#define MAX_LIST 256
#define MAX_EVENTS 100000000L
#define PG_EPOCH_UNIX_US 946684800000000LL
#define NCOLS 21
#define COPY_SQL "COPY event (tenant_id, id, seq, block_seq, type, event_time, time_raw, " \
    "recorded_time, site, from_site, to_site, material, ewc, operation, quantity_kg, item, " \
    "lot, product, corrects, flags, canon) FROM STDIN (FORMAT binary)"

typedef struct {
    const char *db, *tenant, *id_prefix;
    int batch;
    long events;
    char *sites[MAX_LIST], *materials[MAX_LIST];
    int nsites, nmaterials;
} opts_t;

/* The chain head of the tenant, advanced by every batch. */
typedef struct {
    long long seq;
    char hash[65];
} head_t;

typedef struct {
    const opts_t *o;
    PGconn *db;
    head_t head;
    time_t base_time;
    event_ctx_t ctx;
    buf_t copy, text;
    const char *empty_flags;
    int empty_flags_len;
    int own_canon;              /* 1: event_parse absent, canonical bytes built here */
} cl_t;

/* ---- master data: every site belongs to one party, every material exists ------------- */

static int md_site_party(void *md, const char *site, const char **party)
{
    *party = "BENCH";
    return 1;
}

static int md_party_exists(void *md, const char *party) { return 1; }

static int md_material(void *md, const char *code, double *density)
{
    *density = NAN;
    return 1;
}

static int md_product(void *md, const char *code, double *mass_kg, const char **material)
{
    return 0;
}

/* ---- COPY binary rows --------------------------------------------------------------- */

static void f_null(buf_t *b) { buf_put_be32(b, (uint32_t)-1); }

static void f_bytes(buf_t *b, const void *p, size_t n)
{
    buf_put_be32(b, (uint32_t)n);
    buf_append(b, p, n);
}

static void f_text(buf_t *b, const char *s)
{
    if (!s || !*s) f_null(b);
    else f_bytes(b, s, strlen(s));
}

static void f_int8(buf_t *b, int64_t v)
{
    buf_put_be32(b, 8);
    buf_put_be64(b, (uint64_t)v);
}

static void f_float8(buf_t *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    buf_put_be32(b, 8);
    buf_put_be64(b, bits);
}

static void f_time(buf_t *b, int64_t unix_us) { f_int8(b, unix_us - PG_EPOCH_UNIX_US); }

/* One row in the column order of COPY_SQL. */
static void put_row(cl_t *cl, const event_t *ev, long long seq, long long block_seq,
                    int64_t recorded_us)
{
    buf_t *b = &cl->copy;
    buf_put_be16(b, NCOLS);
    f_text(b, cl->o->tenant);
    f_text(b, ev->id);
    f_int8(b, seq);
    f_int8(b, block_seq);
    f_text(b, cl->own_canon ? "waste_generated" : event_type_name(ev->type));
    f_time(b, ev->time_us);
    f_text(b, ev->time_raw);
    f_time(b, recorded_us);
    f_text(b, ev->site);
    f_text(b, ev->from_site);
    f_text(b, ev->to_site);
    f_text(b, ev->material);
    f_text(b, ev->ewc);
    f_text(b, ev->operation);
    if (ev->has_quantity) f_float8(b, ev->quantity_kg);
    else f_null(b);
    f_text(b, ev->item);
    f_text(b, ev->lot);
    f_text(b, ev->product);
    f_text(b, ev->corrects);
    f_bytes(b, cl->empty_flags, (size_t)cl->empty_flags_len);
    f_bytes(b, ev->canon.data, ev->canon.len);
}

/* ---- events ------------------------------------------------------------------------- */

/* The n-th event as a client would send it (the same shape loadgen sends). */
static void event_text(cl_t *cl, long n, buf_t *b)
{
    const opts_t *o = cl->o;
    time_t t = cl->base_time - n % 600;
    struct tm tm;
    char when[32];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_reset(b);
    buf_printf(b, "{\"id\":\"%s-%010ld\",\"type\":\"waste_generated\",\"time\":\"%s\",",
               o->id_prefix, n, when);
    buf_printf(b, "\"site\":\"%s\",\"material\":\"%s\",\"ewc\":\"150102\",",
               o->sites[n % o->nsites], o->materials[(n / o->nsites) % o->nmaterials]);
    buf_printf(b, "\"quantity\":{\"value\":%ld.%ld,\"unit\":\"kg\"}}", 1 + n % 500, n % 10);
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Without event.c: the fields straight from the (known-good) object, canon by JCS. */
static int own_event(const cJSON *obj, event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->json = cJSON_Duplicate(obj, 1);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(ev->json, "quantity");
    ev->id = xstrdup(jstr(ev->json, "id"));
    ev->time_raw = jstr(ev->json, "time");
    ev->site = jstr(ev->json, "site");
    ev->material = jstr(ev->json, "material");
    snprintf(ev->ewc, sizeof ev->ewc, "%s", jstr(ev->json, "ewc"));
    ev->has_quantity = 1;
    ev->quantity_kg = cJSON_GetObjectItemCaseSensitive(q, "value")->valuedouble;
    struct tm tm = {0};
    if (!strptime(ev->time_raw, "%Y-%m-%dT%H:%M:%SZ", &tm)) return -1;
    ev->time_us = (int64_t)timegm(&tm) * 1000000;
    return jcs_serialize(ev->json, &ev->canon);
}

static void own_free(event_t *ev)
{
    cJSON_Delete(ev->json);
    free(ev->id);
    buf_free(&ev->canon);
}

/* Parses and validates the n-th event as the HTTP path does. */
static int make_event(cl_t *cl, long n, event_t *ev)
{
    event_text(cl, n, &cl->text);
    cJSON *obj = cJSON_ParseWithLength(cl->text.data, cl->text.len);
    if (!obj) return -1;
    errlist_t errs = ERRLIST_INIT;
    int rc = cl->own_canon ? own_event(obj, ev) : event_parse(obj, 0, &cl->ctx, ev, &errs);
    if (rc < 0 && errs.n)
        fprintf(stderr, "copyload: event %ld: %s: %s\n", n, errs.items[0].field,
                errs.items[0].message);
    errlist_free(&errs);
    cJSON_Delete(obj);
    return rc;
}

static void drop_event(cl_t *cl, event_t *ev)
{
    if (cl->own_canon) own_free(ev);
    else event_free(ev);
}

/* ---- database ----------------------------------------------------------------------- */

static int exec_ok(PGconn *db, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) fprintf(stderr, "copyload: %s: %s", sql, PQerrorMessage(db));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Creates the tenant when it is new and reads its chain head. */
static int load_head(cl_t *cl)
{
    const char *p[1] = {cl->o->tenant};
    if (exec_ok(cl->db, "INSERT INTO tenant (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING",
                1, p) < 0)
        return -1;
    PGresult *r = PQexecParams(cl->db, "SELECT head_seq, head_hash FROM tenant WHERE id = $1",
                               1, NULL, p, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) {
        cl->head.seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(cl->head.hash, sizeof cl->head.hash, "%s", PQgetvalue(r, 0, 1));
    } else {
        fprintf(stderr, "copyload: reading the head of %s: %s", cl->o->tenant, PQerrorMessage(cl->db));
    }
    PQclear(r);
    return ok ? 0 : -1;
}

static int send_copy(cl_t *cl)
{
    PGresult *r = PQexec(cl->db, COPY_SQL);
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!ok || PQputCopyData(cl->db, cl->copy.data, (int)cl->copy.len) != 1 ||
        PQputCopyEnd(cl->db, NULL) != 1) {
        fprintf(stderr, "copyload: COPY: %s", PQerrorMessage(cl->db));
        return -1;
    }
    int failed = 0;
    while ((r = PQgetResult(cl->db))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) failed = 1;
        PQclear(r);
    }
    if (failed) fprintf(stderr, "copyload: COPY: %s", PQerrorMessage(cl->db));
    return failed ? -1 : 0;
}

static void format_time(int64_t us, char out[40])
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%03dZ", s, (int)(us / 1000 % 1000));
}

/* The batch's ledger block and the move of the tenant's head, as the ingest path does. */
static int write_block(cl_t *cl, const uint8_t (*leaves)[32], int count, int64_t recorded_us)
{
    uint8_t root[32], hash[32];
    char root_hex[65], hash_hex[65], when[40], seq[24], old_seq[24], cnt[16];
    long long new_seq = cl->head.seq + count;
    ledger_merkle_root(leaves, (size_t)count, root);
    ledger_hex(root, root_hex);
    format_time(recorded_us, when);
    ledger_block_hash(cl->o->tenant, new_seq, cl->head.hash, root_hex, count, when, hash);
    ledger_hex(hash, hash_hex);
    snprintf(seq, sizeof seq, "%lld", new_seq);
    snprintf(old_seq, sizeof old_seq, "%lld", cl->head.seq);
    snprintf(cnt, sizeof cnt, "%d", count);
    const char *ins[7] = {cl->o->tenant, seq, cnt, cl->head.hash, root_hex, when, hash_hex};
    const char *adv[5] = {cl->o->tenant, old_seq, cl->head.hash, seq, hash_hex};
    if (exec_ok(cl->db, "INSERT INTO ledger_block (tenant_id, seq, count, prev, root, time, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, ins) < 0 ||
        exec_ok(cl->db, "SELECT circa_advance_head($1, $2, $3, $4, $5)", 5, adv) < 0)
        return -1;
    cl->head.seq = new_seq;
    memcpy(cl->head.hash, hash_hex, sizeof cl->head.hash);
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void copy_header(buf_t *b)
{
    buf_reset(b);
    buf_append(b, "PGCOPY\n\377\r\n\0", 11);
    buf_put_be32(b, 0);     /* flags */
    buf_put_be32(b, 0);     /* header extension length */
}

/* Rows first..first+count-1 in one transaction: COPY, ledger block, head. */
static int run_batch(cl_t *cl, long first, int count, uint8_t (*leaves)[32])
{
    int64_t recorded = now_us();
    long long block_seq = cl->head.seq + count;
    copy_header(&cl->copy);
    for (int i = 0; i < count; i++) {
        event_t ev;
        if (make_event(cl, first + i, &ev) < 0) {
            fprintf(stderr, "copyload: event %ld does not validate\n", first + i);
            return -1;
        }
        ledger_leaf_hash(ev.canon.data, ev.canon.len, leaves[i]);
        put_row(cl, &ev, cl->head.seq + 1 + i, block_seq, recorded);
        drop_event(cl, &ev);
    }
    buf_put_be16(&cl->copy, 0xffff);    /* end of data */
    if (exec_ok(cl->db, "BEGIN", 0, NULL) < 0) return -1;
    if (send_copy(cl) < 0 || write_block(cl, (const uint8_t (*)[32])leaves, count, recorded) < 0) {
        exec_ok(cl->db, "ROLLBACK", 0, NULL);
        return -1;
    }
    return exec_ok(cl->db, "COMMIT", 0, NULL);
}

static int run_all(cl_t *cl, double *secs)
{
    uint8_t (*leaves)[32] = xcalloc((size_t)cl->o->batch, 32);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = 0;
    for (long n = 0; n < cl->o->events && rc == 0; n += cl->o->batch) {
        long left = cl->o->events - n;
        rc = run_batch(cl, n, left < cl->o->batch ? (int)left : cl->o->batch, leaves);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    free(leaves);
    return rc;
}

/* ---- options ------------------------------------------------------------------------ */

static void usage(void)
{
    fputs("usage: copyload --events N [--db URL] [--tenant T] [--batch N] [--id-prefix P]\n"
          "                [--sites A,B] [--materials X,Y]   (--db defaults to $DATABASE_URL)\n",
          stderr);
}

static int split_list(char *s, char **out, int max)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < max;
         tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_opt(opts_t *o, int ch, char *arg)
{
    long v;
    switch (ch) {
    case 'd': o->db = arg; return 0;
    case 't': o->tenant = arg; return 0;
    case 'p': o->id_prefix = arg; return 0;
    case 'e': return parse_long(arg, 1, MAX_EVENTS, &o->events);
    case 'b':
        if (parse_long(arg, 1, EVENT_MAX_PER_REQUEST, &v) < 0) return -1;
        o->batch = (int)v;
        return 0;
    case 'S': o->nsites = split_list(arg, o->sites, MAX_LIST); return o->nsites ? 0 : -1;
    case 'm': o->nmaterials = split_list(arg, o->materials, MAX_LIST); return o->nmaterials ? 0 : -1;
    default: return -1;
    }
}

static int parse_opts(opts_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", 1, 0, 'd'}, {"tenant", 1, 0, 't'}, {"id-prefix", 1, 0, 'p'},
        {"events", 1, 0, 'e'}, {"batch", 1, 0, 'b'}, {"sites", 1, 0, 'S'},
        {"materials", 1, 0, 'm'}, {0, 0, 0, 0}};
    static char def_site[] = "BENCH-1", def_mat[] = "PET";
    *o = (opts_t){.db = getenv("DATABASE_URL"), .tenant = "bench-copy", .id_prefix = "copy",
                  .batch = 1000, .sites = {def_site}, .nsites = 1, .materials = {def_mat},
                  .nmaterials = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (parse_opt(o, ch, optarg) < 0) {
            fprintf(stderr, "copyload: bad option %s\n", argv[optind - 1]);
            return -1;
        }
    }
    return (o->db && o->events > 0 && optind == argc) ? 0 : -1;
}

static void cl_init(cl_t *cl, const opts_t *o)
{
    static pgarr_t flags;
    cl->o = o;
    cl->base_time = time(NULL) - 60;
    cl->own_canon = !event_parse || !event_free || !event_type_name;
    cl->ctx = (event_ctx_t){.now_us = now_us(), .site_party = md_site_party,
                            .party_exists = md_party_exists, .material = md_material,
                            .product = md_product};
    pgarr_init(&flags, PGARR_TEXT);
    cl->empty_flags = pgarr_finish(&flags, &cl->empty_flags_len);
}

int main(int argc, char **argv)
{
    static opts_t o;
    static cl_t cl;
    if (parse_opts(&o, argc, argv) < 0) {
        usage();
        return 2;
    }
    cl_init(&cl, &o);
    fprintf(stderr, "copyload: canonical bytes from %s\n",
            cl.own_canon ? "copyload's own cJSON+JCS (daemon/event.c not linked)" : "event_parse");
    cl.db = PQconnectdb(o.db);
    if (PQstatus(cl.db) != CONNECTION_OK) {
        fprintf(stderr, "copyload: %s", PQerrorMessage(cl.db));
        PQfinish(cl.db);
        return 1;
    }
    double secs = 0;
    int rc = load_head(&cl) < 0 ? -1 : run_all(&cl, &secs);
    PQfinish(cl.db);
    if (rc < 0) return 1;
    printf("scenario=copy events=%ld seconds=%.3f events_per_s=%.1f\n", o.events, secs,
           (double)o.events / secs);
    return 0;
}

/* regcheck — a waste register recomputed from canonical events (see regcheck.h). */
#include "regcheck.h"
#include "buf.h"
#include "codes.h"
#include "event.h"
#include "jcs.h"
#include "report.h"
#include "strmap.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The event types the register reads; corrections are applied as they come. */
enum { T_SHIPPED, T_COLLECTED, T_RECEIVED, T_GENERATED, T_TREATED, T_OTHER };

typedef struct {
    char *id, *lot, *document, *time;      /* owned; time only for consignments and receipts */
    const char *site, *from_site, *to_site, *material, *ewc, *operation, *planned, *basis,
        *acceptance, *carrier;             /* interned */
    int64_t seq, usec;
    int type, corrected, has_planned;
    char day[11];
    double kg, refused_kg;                 /* NAN: unknown or absent */
    cJSON *transport, *packaging;          /* consignments only */
} ev_t;

typedef struct {
    ev_t **v;
    size_t n, cap;
} vec_t;

/* A consignment as the listing shows it. */
typedef struct {
    ev_t *e, *receipt, *treatment;
    const char *origin, *receiver, *ewc, *operation, *operation_from;
    double refused_kg;
} cons_t;

struct regcheck {
    const cJSON *doc;
    int64_t block;
    char from[11], to[11];
    const cJSON *sites;                    /* scope: NULL for every site */
    char *old_tz;
    strmap_t intern, ids;                  /* ids: event id -> ev_t */
    strmap_t rcpt_lot, rcpt_doc, gen_lot, treat, ship_lot, ship_doc;   /* key -> vec_t */
    vec_t all;                             /* every event kept, for freeing */
    vec_t cand;                            /* shipped and collected events */
    cons_t *cons;
    size_t ncons;
    long kg_unknown;                       /* events whose mass could not be computed */
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void vec_push(vec_t *v, ev_t *e)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 4;
        v->v = xrealloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = e;
}

static void index_push(strmap_t *m, const char *key, ev_t *e)
{
    vec_t *v = strmap_get(m, key);
    if (!v) strmap_put(m, key, v = xcalloc(1, sizeof *v));
    vec_push(v, e);
}

static void vec_free_cb(const char *key, void *val, void *arg)
{
    vec_t *v = val;
    free(v->v);
    free(v);
}

static void free_cb(const char *key, void *val, void *arg)
{
    free(val);
}

static const char *intern(regcheck_t *rc, const char *s)
{
    if (!s) return NULL;
    char *v = strmap_get(&rc->intern, s);
    if (!v) strmap_put(&rc->intern, s, v = xstrdup(s));
    return v;
}

/* key parts joined by the unit separator; NULL when a part is missing (SQL: NULL = x fails). */
static const char *key3(char *out, size_t n, const char *a, const char *b, const char *c)
{
    if (!a || !b || !c) return NULL;
    snprintf(out, n, "%s\x1f%s\x1f%s", a, b, c);
    return out;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

__attribute__((format(printf, 3, 4))) static int say(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return 1;
}

/* ---- reading events ---------------------------------------------------------------------- */

static int type_of(const char *t)
{
    static const char *const names[] = {"shipped", "collected", "received", "waste_generated"};
    for (int i = 0; t && i < 4; i++)
        if (strcmp(t, names[i]) == 0) return i;
    if (t && (strcmp(t, "recycled") == 0 || strcmp(t, "energy_recovered") == 0 ||
              strcmp(t, "disposed") == 0))
        return T_TREATED;
    return T_OTHER;
}

/* A canonical time to UTC microseconds, read by the parser circad used for the stored
 * event_time (so a fraction beyond microseconds is cut as it was there), and its tenant-local
 * day. -1 when it is not such a time. */
static int parse_time(const char *s, int64_t *usec, char day[11])
{
    if (!s || event_parse_time(s, usec) != 0) return -1;
    time_t whole = (time_t)(*usec >= 0 ? *usec / 1000000 : (*usec - 999999) / 1000000);
    struct tm local;
    localtime_r(&whole, &local);
    strftime(day, 11, "%Y-%m-%d", &local);
    return 0;
}

/* A quantity {value, unit} in kg: mass units only (a volume needs master data). */
static double mass_kg(const cJSON *q)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(q, "value");
    const codes_unit_t *u = codes_unit_find(str(q, "unit") ? str(q, "unit") : "");
    if (!cJSON_IsNumber(v) || !u || u->is_volume) return NAN;
    return v->valuedouble * u->factor;
}

static void apply_correction(regcheck_t *rc, const cJSON *j)
{
    const char *target = str(j, "corrects");
    ev_t *e = target ? strmap_get(&rc->ids, target) : NULL;
    if (e) e->corrected = 1;   /* a second correction of it was refused at ingest */
}

static void index_event(regcheck_t *rc, ev_t *e)
{
    char k[1024];
    const char *key;
    if (e->type == T_RECEIVED) {
        if ((key = key3(k, sizeof k, e->site, e->from_site, e->lot))) index_push(&rc->rcpt_lot, key, e);
        if ((key = key3(k, sizeof k, e->site, e->from_site, e->document))) index_push(&rc->rcpt_doc, key, e);
    } else if (e->type == T_GENERATED && e->lot) {
        index_push(&rc->gen_lot, e->lot, e);
    } else if (e->type == T_TREATED) {
        if ((key = key3(k, sizeof k, e->lot, e->site, ""))) index_push(&rc->treat, key, e);
    } else if (e->type == T_SHIPPED) {
        if ((key = key3(k, sizeof k, e->site, e->to_site, e->lot))) index_push(&rc->ship_lot, key, e);
        if ((key = key3(k, sizeof k, e->site, e->to_site, e->document))) index_push(&rc->ship_doc, key, e);
    }
    if (e->type == T_SHIPPED || e->type == T_COLLECTED) vec_push(&rc->cand, e);
}

static ev_t *read_event(regcheck_t *rc, const cJSON *j, int type, int64_t seq, double kg)
{
    ev_t *e = xcalloc(1, sizeof *e);
    e->type = type;
    e->seq = seq;
    e->id = xstrdup(str(j, "id"));
    e->lot = dup_or_null(str(j, "lot"));
    e->document = dup_or_null(str(j, "document"));
    e->site = intern(rc, str(j, "site"));
    e->from_site = intern(rc, str(j, "from_site"));
    e->to_site = intern(rc, str(j, "to_site"));
    e->material = intern(rc, str(j, "material"));
    e->ewc = intern(rc, str(j, "ewc"));
    e->operation = intern(rc, str(j, "operation"));
    e->has_planned = cJSON_HasObjectItem(j, "planned_operation");
    e->planned = intern(rc, str(j, "planned_operation"));
    e->acceptance = intern(rc, str(j, "acceptance"));
    e->carrier = intern(rc, str(j, "carrier"));
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "quantity");
    e->basis = intern(rc, str(q, "basis"));
    e->kg = !q ? NAN : isnan(kg) ? mass_kg(q) : kg;
    if (q && isnan(e->kg) && type != T_TREATED) rc->kg_unknown++;
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(j, "refused_quantity");
    e->refused_kg = mass_kg(rq);
    if (rq && isnan(e->refused_kg)) rc->kg_unknown++;
    if (type == T_SHIPPED || type == T_COLLECTED || type == T_RECEIVED)
        e->time = dup_or_null(str(j, "time"));
    if (type == T_SHIPPED || type == T_COLLECTED) {
        e->transport = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(j, "transport"), 1);
        e->packaging = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(j, "packaging"), 1);
    }
    return e;
}

int regcheck_event(regcheck_t *rc, int64_t seq, const char *canon, size_t len, double kg)
{
    if (seq > rc->block) return 0;
    cJSON *j = cJSON_ParseWithLength(canon, len);
    const char *t = str(j, "type");
    int rcode = t && str(j, "id") ? 0 : -1;
    int type = type_of(t);
    if (rcode == 0 && strcmp(t, "corrected") == 0) {
        apply_correction(rc, j);
    } else if (rcode == 0 && type != T_OTHER) {
        ev_t *e = read_event(rc, j, type, seq, kg);
        if (parse_time(str(j, "time"), &e->usec, e->day) != 0) rcode = -1;
        vec_push(&rc->all, e);
        strmap_put(&rc->ids, e->id, e);
        index_event(rc, e);
    }
    cJSON_Delete(j);
    return rcode;
}

/* ---- the rules (schema/120) -------------------------------------------------------------- */

/* The first event (by seq) of one or two seq-ordered lists that is not corrected. */
static ev_t *first_alive(const vec_t *a, const vec_t *b)
{
    ev_t *best = NULL;
    const vec_t *lists[2] = {a, b};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; lists[l] && i < lists[l]->n; i++)
            if (!lists[l]->v[i]->corrected) {
                if (!best || lists[l]->v[i]->seq < best->seq) best = lists[l]->v[i];
                break;
            }
    return best;
}

static const vec_t *lookup(const strmap_t *m, const char *a, const char *b, const char *c)
{
    char k[1024];
    const char *key = key3(k, sizeof k, a, b, c);
    return key ? strmap_get(m, key) : NULL;
}

static int in_scope(const regcheck_t *rc, const char *site, const char *day)
{
    if (!site || strcmp(day, rc->from) < 0 || strcmp(day, rc->to) >= 0) return 0;
    if (!rc->sites) return 1;
    const cJSON *s;
    cJSON_ArrayForEach(s, rc->sites)
        if (cJSON_IsString(s) && strcmp(s->valuestring, site) == 0) return 1;
    return 0;
}

/* Fills c for candidate e; 0 when it is no consignment of the register. */
static int make_consignment(regcheck_t *rc, ev_t *e, cons_t *c)
{
    int ship = e->type == T_SHIPPED;
    memset(c, 0, sizeof *c);
    c->e = e;
    c->origin = ship ? e->site : e->from_site;
    c->receiver = ship ? e->to_site : e->site;
    if (e->corrected || !in_scope(rc, c->origin, e->day)) return 0;
    if (!ship && first_alive(lookup(&rc->ship_lot, c->origin, c->receiver, e->lot),
                             lookup(&rc->ship_doc, c->origin, c->receiver, e->document)))
        return 0;   /* a shipment documents this collection */
    c->ewc = e->ewc;
    if (!c->ewc && e->lot) {
        ev_t *g = first_alive(strmap_get(&rc->gen_lot, e->lot), NULL);
        c->ewc = g ? g->ewc : NULL;
    }
    if (ship)
        c->receipt = first_alive(lookup(&rc->rcpt_lot, c->receiver, c->origin, e->lot),
                                 lookup(&rc->rcpt_doc, c->receiver, c->origin, e->document));
    const char *rop = c->receipt && c->receipt->operation && *c->receipt->operation
                          ? c->receipt->operation : NULL;
    if (!e->has_planned && !rop)
        c->treatment = first_alive(lookup(&rc->treat, e->lot, c->receiver, ""), NULL);
    c->operation = e->has_planned ? e->planned : rop ? rop : c->treatment ? c->treatment->operation : NULL;
    c->operation_from = e->has_planned ? "planned_operation" : rop ? "receipt"
                        : c->treatment && c->treatment->operation ? "treatment" : NULL;
    const char *acc = c->receipt ? c->receipt->acceptance : NULL;
    c->refused_kg = !acc ? NAN : strcmp(acc, "refused") == 0 ? c->receipt->kg
                    : strcmp(acc, "partial") == 0 ? c->receipt->refused_kg
                    : strcmp(acc, "accepted") == 0 ? 0 : NAN;
    return 1;
}

static int cons_order(const void *a, const void *b)
{
    const cons_t *x = a, *y = b;
    int d = strcmp(x->e->day, y->e->day);
    if (d) return d;
    if (x->e->usec != y->e->usec) return x->e->usec < y->e->usec ? -1 : 1;
    return x->e->seq < y->e->seq ? -1 : x->e->seq > y->e->seq;
}

static void compute(regcheck_t *rc)
{
    if (rc->cons) return;
    rc->cons = xcalloc(rc->cand.n + 1, sizeof *rc->cons);
    for (size_t i = 0; i < rc->cand.n; i++)
        if (make_consignment(rc, rc->cand.v[i], &rc->cons[rc->ncons])) rc->ncons++;
    qsort(rc->cons, rc->ncons, sizeof *rc->cons, cons_order);
}

size_t regcheck_count(const regcheck_t *rc)
{
    return rc->ncons;
}

/* ---- the expected register --------------------------------------------------------------- */

static cJSON *num(cJSON *o, const char *name, double add)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) v = cJSON_AddNumberToObject(o, name, 0);
    cJSON_SetNumberValue(v, v->valuedouble + add);
    return v;
}

/* A number member, 0 when absent. */
static double numv(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The member of arr whose key members equal those of want (NULL matching null), made when
 * absent: arrays of parts are matched by key, not by position. */
static cJSON *part_of(cJSON *arr, const char *const *keys, const char *const *vals)
{
    cJSON *p;
    cJSON_ArrayForEach(p, arr) {
        int same = 1;
        for (int i = 0; keys[i] && same; i++) {
            const char *v = str(p, keys[i]);
            same = (!v && !vals[i]) || (v && vals[i] && strcmp(v, vals[i]) == 0);
        }
        if (same) return p;
    }
    p = cJSON_CreateObject();
    for (int i = 0; keys[i]; i++)
        cJSON_AddItemToObject(p, keys[i], vals[i] ? cJSON_CreateString(vals[i]) : cJSON_CreateNull());
    cJSON_AddItemToArray(arr, p);
    return p;
}

static cJSON *entry_of(cJSON *entries, const char *ewc)
{
    static const char *const keys[] = {"ewc", NULL};
    const char *vals[] = {ewc && *ewc ? ewc : NULL};
    cJSON *e = part_of(entries, keys, vals);
    if (!cJSON_GetObjectItemCaseSensitive(e, "destinations")) {
        const char *const arrays[] = {"destinations", "acceptance", "packaging", "transport"};
        for (int i = 0; i < 4; i++) cJSON_AddArrayToObject(e, arrays[i]);
        const codes_ewc_t *w = ewc ? codes_ewc_find(ewc) : NULL;
        cJSON_AddBoolToObject(e, "hazardous", w && w->hazardous);
    }
    return e;
}

static void add_basis(cJSON *o, const char *basis, double kg)
{
    cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "basis");
    if (!b) {
        b = cJSON_AddObjectToObject(o, "basis");
        const char *const names[] = {"measured", "calculated", "estimated", "unspecified"};
        for (int i = 0; i < 4; i++) cJSON_AddNumberToObject(b, names[i], 0);
    }
    const char *k = basis && (strcmp(basis, "measured") == 0 || strcmp(basis, "calculated") == 0 ||
                              strcmp(basis, "estimated") == 0) ? basis : "unspecified";
    num(b, k, kg);
}

static double refused_kg(const cons_t *c)
{
    return isnan(c->refused_kg) ? 0 : c->refused_kg;
}

static int refused_load(const cons_t *c)
{
    const char *a = c->receipt ? c->receipt->acceptance : NULL;
    return a && (strcmp(a, "refused") == 0 || strcmp(a, "partial") == 0);
}

/* A consignment in a part: consignments, kg, refused kg (and loads). */
static void count_in(cJSON *p, const cons_t *c, double kg, int loads)
{
    num(p, "consignments", 1);
    num(p, "kg", kg);
    num(p, "refused_kg", refused_kg(c));
    if (loads) num(p, "refused_loads", refused_load(c));
}

/* Legs by mode: each leg counts, each consignment once per mode it used. */
static void add_legs(cJSON *e, const cons_t *c)
{
    static const char *const keys[] = {"mode", NULL};
    const cJSON *legs = c->e->transport, *l;
    if (!cJSON_IsArray(legs)) return;
    int nseen = 0;
    cJSON **seen = xcalloc((size_t)cJSON_GetArraySize(legs) + 1, sizeof *seen);
    cJSON_ArrayForEach(l, legs) {
        const char *vals[] = {str(l, "mode")};
        cJSON *p = part_of(cJSON_GetObjectItemCaseSensitive(e, "transport"), keys, vals);
        num(p, "legs", 1);
        int dup = 0;
        for (int i = 0; i < nseen; i++) dup |= seen[i] == p;
        if (!dup) num(p, "consignments", 1), seen[nseen++] = p;
    }
    free(seen);
}

static void add_consignment(cJSON *entries, const cons_t *c)
{
    static const char *const dkeys[] = {"receiver", "operation", NULL};
    static const char *const akeys[] = {"acceptance", NULL};
    static const char *const pkeys[] = {"type", "physical_form", NULL};
    double kg = isnan(c->e->kg) ? 0 : c->e->kg;
    cJSON *e = entry_of(entries, c->ewc);
    num(e, "consignments", 1);
    num(e, "sent_off_site_kg", kg);
    num(e, "refused_kg", refused_kg(c));
    num(e, "refused_loads", refused_load(c));
    num(e, "documented", c->e->document != NULL);
    add_basis(e, c->e->basis, kg);
    const char *dv[] = {c->receiver, c->operation};
    cJSON *d = part_of(cJSON_GetObjectItemCaseSensitive(e, "destinations"), dkeys, dv);
    count_in(d, c, kg, 1);
    add_basis(d, c->e->basis, kg);
    const char *av[] = {c->receipt ? c->receipt->acceptance : NULL};
    count_in(part_of(cJSON_GetObjectItemCaseSensitive(e, "acceptance"), akeys, av), c, kg, 0);
    if (c->e->packaging) {
        const char *pv[] = {str(c->e->packaging, "type"), str(c->e->packaging, "physical_form")};
        cJSON *p = part_of(cJSON_GetObjectItemCaseSensitive(e, "packaging"), pkeys, pv);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(c->e->packaging, "count");
        num(p, "consignments", 1);
        num(p, "kg", kg);
        num(p, "packages", cJSON_IsNumber(n) ? n->valuedouble : 0);
    }
    add_legs(e, c);
}

/* Every waste_generated event not corrected, at an in-scope site, on a day of the period. */
static void add_generated(regcheck_t *rc, cJSON *entries)
{
    for (size_t i = 0; i < rc->all.n; i++) {
        ev_t *g = rc->all.v[i];
        if (g->type != T_GENERATED || g->corrected || !in_scope(rc, g->site, g->day)) continue;
        cJSON *e = entry_of(entries, g->ewc);
        num(e, "generated_kg", isnan(g->kg) ? 0 : g->kg);
        num(e, "generated_events", 1);
    }
}

static cJSON *expected(regcheck_t *rc)
{
    cJSON *entries = cJSON_CreateArray();
    for (size_t i = 0; i < rc->ncons; i++) add_consignment(entries, &rc->cons[i]);
    add_generated(rc, entries);
    return entries;
}

/* ---- comparing -------------------------------------------------------------------------- */

static int close_enough(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(1, fmax(fabs(a), fabs(b)));
}

/* Members of want (numbers, with the sums' tolerance) against got; 0 same. kg_ok: compare
 * masses too (not when some mass could not be computed). */
static int same_numbers(const cJSON *want, const cJSON *got, const char *where, int kg_ok,
                        char *why, size_t n)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, want) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
        if (cJSON_IsObject(w)) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", where, w->string);
            if (same_numbers(w, g, sub, kg_ok, why, n)) return 1;
            continue;
        }
        if (!cJSON_IsNumber(w)) continue;
        int mass = strstr(w->string, "kg") || strstr(where, "basis");
        if (mass && !kg_ok) continue;
        double gv = cJSON_IsNumber(g) ? g->valuedouble : NAN;
        if (!close_enough(w->valuedouble, gv))
            return say(why, n, "%s.%s is %.17g in the report, %.17g from the ledger", where,
                       w->string, gv, w->valuedouble);
    }
    return 0;
}

static int same_parts(const cJSON *want, const cJSON *got, const char *const *keys,
                      const char *where, int kg_ok, char *why, size_t n)
{
    if (cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
        return say(why, n, "%s has %d rows in the report, %d from the ledger", where,
                   cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    const cJSON *w;
    cJSON_ArrayForEach(w, want) {
        const char *vals[3] = {NULL, NULL, NULL};
        buf_t at = BUF_INIT;
        buf_puts(&at, where);
        for (int i = 0; keys[i]; i++) {
            vals[i] = str(w, keys[i]);
            buf_printf(&at, "%s%s", i ? "/" : "[", vals[i] ? vals[i] : "null");
        }
        buf_putc(&at, ']');
        cJSON *copy = cJSON_Duplicate(got, 1);   /* part_of adds to it when absent */
        int before = cJSON_GetArraySize(copy);
        cJSON *g = part_of(copy, keys, vals);
        int rcode = cJSON_GetArraySize(copy) != before
                        ? say(why, n, "%s is not in the report", at.data)
                        : same_numbers(w, g, at.data, kg_ok, why, n);
        cJSON_Delete(copy);
        buf_free(&at);
        if (rcode) return rcode;
    }
    return 0;
}

static int same_entry(const cJSON *w, const cJSON *g, int kg_ok, char *why, size_t n)
{
    static const char *const dkeys[] = {"receiver", "operation", NULL};
    static const char *const akeys[] = {"acceptance", NULL};
    static const char *const pkeys[] = {"type", "physical_form", NULL};
    static const char *const tkeys[] = {"mode", NULL};
    char at[64];
    snprintf(at, sizeof at, "entries[%s]", str(w, "ewc") ? str(w, "ewc") : "null");
    const cJSON *hw = cJSON_GetObjectItemCaseSensitive(w, "hazardous");
    if (cJSON_IsTrue(hw) != cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "hazardous")))
        return say(why, n, "%s.hazardous differs from the List of Waste", at);
    char sub[96];
    const char *const arrays[] = {"destinations", "acceptance", "packaging", "transport"};
    const char *const *keys[] = {dkeys, akeys, pkeys, tkeys};
    for (int i = 0; i < 4; i++) {
        snprintf(sub, sizeof sub, "%s.%s", at, arrays[i]);
        if (same_parts(cJSON_GetObjectItemCaseSensitive(w, arrays[i]),
                       cJSON_GetObjectItemCaseSensitive(g, arrays[i]), keys[i], sub, kg_ok, why, n))
            return 1;
    }
    cJSON *flat = cJSON_Duplicate(w, 1);
    for (int i = 0; i < 4; i++) cJSON_DeleteItemFromObjectCaseSensitive(flat, arrays[i]);
    const char *const zero[] = {"generated_kg", "generated_events", "sent_off_site_kg",
                                "consignments", "documented", "refused_kg", "refused_loads"};
    for (int i = 0; i < 7; i++) num(flat, zero[i], 0);
    int rcode = same_numbers(flat, g, at, kg_ok, why, n);
    cJSON_Delete(flat);
    return rcode;
}

static int same_totals(const regcheck_t *rc, const cJSON *want, const cJSON *data, int kg_ok,
                       char *why, size_t n)
{
    cJSON *t = cJSON_CreateObject(), *c = cJSON_CreateObject();
    const char *const sums[] = {"generated_kg", "sent_off_site_kg", "refused_kg",
                                "refused_loads", "consignments", "hazardous_generated_kg"};
    for (int i = 0; i < 6; i++) num(t, sums[i], 0);
    const cJSON *e;
    cJSON_ArrayForEach(e, want) {
        for (int i = 0; i < 5; i++) num(t, sums[i], numv(e, sums[i]));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "hazardous")))
            num(t, sums[5], numv(e, "generated_kg"));
    }
    num(c, "count", numv(t, "consignments"));
    num(c, "kg", numv(t, "sent_off_site_kg"));
    num(c, "refused_kg", numv(t, "refused_kg"));
    int rcode = same_numbers(t, cJSON_GetObjectItemCaseSensitive(data, "totals"), "totals",
                             kg_ok, why, n) ||
                same_numbers(c, cJSON_GetObjectItemCaseSensitive(data, "consignments"),
                             "consignments", kg_ok, why, n);
    cJSON_Delete(t);
    cJSON_Delete(c);
    return rcode;
}

int regcheck_report(regcheck_t *rc, char *why, size_t whylen, char *note, size_t notelen)
{
    compute(rc);
    snprintf(note, notelen, "%s", "");
    int kg_ok = rc->kg_unknown == 0;
    if (!kg_ok)
        snprintf(note, notelen, "masses not checked: %ld events give a volume (converting it "
                 "needs the material's density, master data)", rc->kg_unknown);
    cJSON *want = expected(rc);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(rc->doc, "data");
    const cJSON *got = cJSON_GetObjectItemCaseSensitive(data, "entries"), *w;
    static const char *const keys[] = {"ewc", NULL};
    int rcode = 0;
    if (cJSON_GetArraySize(want) != cJSON_GetArraySize(got))
        rcode = say(why, whylen, "the report has %d EWC codes, the ledger gives %d",
                    cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    cJSON_ArrayForEach(w, want) {
        if (rcode) break;
        const char *vals[] = {str(w, "ewc")};
        cJSON *copy = cJSON_Duplicate(got, 1);
        int before = cJSON_GetArraySize(copy);
        cJSON *g = part_of(copy, keys, vals);
        rcode = cJSON_GetArraySize(copy) != before
                    ? say(why, whylen, "EWC code %s is not in the report", vals[0] ? vals[0] : "null")
                    : same_entry(w, g, kg_ok, why, whylen);
        cJSON_Delete(copy);
    }
    if (!rcode) rcode = same_totals(rc, want, data, kg_ok, why, whylen);
    cJSON_Delete(want);
    return rcode;
}

/* ---- the listing ------------------------------------------------------------------------- */

/* One recomputed consignment as the listing shows it. */
static cJSON *listed(const cons_t *c)
{
    cJSON *j = cJSON_CreateObject();
    const ev_t *e = c->e, *r = c->receipt;
    const codes_ewc_t *w = c->ewc ? codes_ewc_find(c->ewc) : NULL;
    const char *s[][2] = {{"event", e->id}, {"type", e->type == T_SHIPPED ? "shipped" : "collected"},
        {"time", e->time}, {"from_site", c->origin}, {"receiver", c->receiver},
        {"material", e->material}, {"lot", e->lot}, {"ewc", c->ewc}, {"basis", e->basis},
        {"operation", c->operation}, {"operation_from", c->operation_from},
        {"document", e->document}, {"carrier", e->carrier}, {"receipt", r ? r->id : NULL},
        {"receipt_time", r ? r->time : NULL}, {"acceptance", r ? r->acceptance : NULL}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        cJSON_AddItemToObject(j, s[i][0], s[i][1] ? cJSON_CreateString(s[i][1]) : cJSON_CreateNull());
    const struct { const char *name; double v; } d[] = {{"seq", (double)e->seq}, {"kg", e->kg},
        {"received_kg", r ? r->kg : NAN}, {"refused_kg", c->refused_kg}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        cJSON_AddItemToObject(j, d[i].name, isnan(d[i].v) ? cJSON_CreateNull() : cJSON_CreateNumber(d[i].v));
    cJSON_AddBoolToObject(j, "hazardous", w && w->hazardous);
    cJSON_AddItemToObject(j, "transport", e->transport ? cJSON_Duplicate(e->transport, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "packaging", e->packaging ? cJSON_Duplicate(e->packaging, 1) : cJSON_CreateNull());
    return j;
}

/* Members of want against got: numbers within the sums' tolerance, the rest as RFC 8785 text. */
static int same_consignment(const cJSON *want, const cJSON *got, size_t i, char *why, size_t n)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, want) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
        int same;
        if (cJSON_IsNumber(w)) {
            same = cJSON_IsNumber(g) && close_enough(w->valuedouble, g->valuedouble);
        } else {
            buf_t a = BUF_INIT, b = BUF_INIT;
            jcs_serialize(w, &a);
            if (g) jcs_serialize(g, &b);
            same = g && a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
            buf_free(&a);
            buf_free(&b);
        }
        if (!same)
            return say(why, n, "consignment %zu (%s): %s differs from the ledger's", i + 1,
                       str(want, "event"), w->string);
    }
    return 0;
}

/* Calls fn for each consignment of a line: the line itself, or the members of a page. */
static int listing_line(regcheck_t *rc, const cJSON *j, size_t *i, char *why, size_t n)
{
    const cJSON *page = cJSON_GetObjectItemCaseSensitive(j, "consignments");
    const cJSON *one = page ? page->child : j;
    for (; one; one = page ? one->next : NULL) {
        if (*i >= rc->ncons)
            return say(why, n, "the listing has more consignments than the ledger gives (%zu)",
                       rc->ncons);
        cJSON *want = listed(&rc->cons[*i]);
        int rcode = same_consignment(want, one, *i, why, n);
        cJSON_Delete(want);
        if (rcode) return rcode;
        (*i)++;
        if (!page) break;
    }
    return 0;
}

int regcheck_listing(regcheck_t *rc, FILE *f, char *why, size_t whylen)
{
    compute(rc);
    char *line = NULL;
    size_t cap = 0, i = 0;
    ssize_t len;
    int rcode = 0;
    while (rcode == 0 && (len = getline(&line, &cap, f)) >= 0) {
        if (len <= 1) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        if (!cJSON_IsObject(j)) rcode = -1, say(why, whylen, "the listing holds a line that is no JSON object");
        else rcode = listing_line(rc, j, &i, why, whylen);
        cJSON_Delete(j);
    }
    free(line);
    if (rcode == 0 && i != rc->ncons)
        rcode = say(why, whylen, "the listing has %zu consignments, the ledger gives %zu", i,
                    rc->ncons);
    return rcode;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static void set_tz(regcheck_t *rc, const char *tz)
{
    const char *old = getenv("TZ");
    rc->old_tz = old ? xstrdup(old) : NULL;
    setenv("TZ", tz && *tz ? tz : "UTC", 1);
    tzset();
}

regcheck_t *regcheck_new(const cJSON *doc, char *why, size_t whylen)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(doc, "data");
    if (strcmp(report_str(doc, "type"), "waste_register") != 0 ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(data, "consignments"))) {
        say(why, whylen, "%s", "not a waste register with a consignment listing");
        return NULL;
    }
    double block = report_num(doc, "block.seq");
    if (isnan(block) || strlen(report_str(doc, "period.from")) != 10 ||
        strlen(report_str(doc, "period.to")) != 10) {
        say(why, whylen, "%s", "the report names no block or period");
        return NULL;
    }
    regcheck_t *rc = xcalloc(1, sizeof *rc);
    rc->doc = doc;
    rc->block = (int64_t)block;
    snprintf(rc->from, sizeof rc->from, "%s", report_str(doc, "period.from"));
    snprintf(rc->to, sizeof rc->to, "%s", report_str(doc, "period.to"));
    const cJSON *sites = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(data, "scope"), "sites");
    rc->sites = cJSON_IsArray(sites) ? sites : NULL;
    set_tz(rc, report_str(doc, "period.tz"));
    return rc;
}

int64_t regcheck_block(const regcheck_t *rc)
{
    return rc->block;
}

static void ev_free(ev_t *e)
{
    free(e->id);
    free(e->lot);
    free(e->document);
    free(e->time);
    cJSON_Delete(e->transport);
    cJSON_Delete(e->packaging);
    free(e);
}

void regcheck_free(regcheck_t *rc)
{
    if (!rc) return;
    for (size_t i = 0; i < rc->all.n; i++) ev_free(rc->all.v[i]);
    free(rc->all.v);
    free(rc->cand.v);
    free(rc->cons);
    strmap_t *idx[] = {&rc->rcpt_lot, &rc->rcpt_doc, &rc->gen_lot, &rc->treat, &rc->ship_lot,
                       &rc->ship_doc};
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        strmap_each(idx[i], vec_free_cb, NULL);
        strmap_free(idx[i]);
    }
    strmap_each(&rc->intern, free_cb, NULL);
    strmap_free(&rc->intern);
    strmap_free(&rc->ids);
    if (rc->old_tz) setenv("TZ", rc->old_tz, 1);
    else unsetenv("TZ");
    tzset();
    free(rc->old_tz);
    free(rc);
}

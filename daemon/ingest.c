/* ingest — validation, idempotency and group commit of events (see ingest.h for the states). */
#include "ingest.h"
#include "buf.h"
#include "codes.h"
#include "ledger.h"
#include "signer.h"
#include "log.h"
#include "pgarr.h"
#include "pgcopy.h"
#include "strmap.h"
#include "tenants.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const store_stmt_t ingest_stmts[] = {
    /* Which of these ids exist already, with the same canonical bytes or not. */
    {"ingest_check", "SELECT i, same, block_hash FROM circa_existing($1, $2::text[], $3::bytea[])"},
    {"ingest_head", "SELECT circa_advance_head($1, $2, $3, $4, $5)"},
    {"ingest_events",
     "INSERT INTO event (tenant_id, block_seq, recorded_time, id, seq, type, event_time, "
     "time_raw, site, from_site, to_site, material, ewc, operation, quantity_kg, item, lot, "
     "product, corrects, canon, value_amount, currency, flags) "
     "SELECT $1, $2, now(), u.id, u.seq, u.type, u.t, u.raw, u.site, u.from_site, u.to_site, "
     "u.material, u.ewc, u.op, u.kg, u.item, u.lot, u.product, u.corrects, u.canon, u.value, "
     "u.currency, coalesce(string_to_array(u.flags, ','), '{}') "
     "FROM unnest($3::text[], $4::int8[], $5::text[], $6::timestamptz[], $7::text[], "
     "$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], "
     "$14::float8[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bytea[], "
     "$20::float8[], $21::text[], $22::text[]) AS u(id, seq, type, t, raw, site, from_site, "
     "to_site, material, ewc, op, kg, item, lot, product, corrects, canon, value, currency, "
     "flags)"},
    /* On Citus: the same rows as one router INSERT … VALUES (105_citus_one_phase.sql): Citus
     * commits COPY and INSERT … SELECT in two phases even when every row goes to one worker. */
    {"ingest_rows",
     "SELECT circa_ingest_rows($1, $2::int8, $3::text[], $4::int8[], $5::text[], "
     "$6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], "
     "$12::text[], $13::text[], $14::float8[], $15::text[], $16::text[], $17::text[], "
     "$18::text[], $19::bytea[], $20::float8[], $21::text[], $22::text[])"},
    /* Roll-ups, item lives, lineage and corrections of the group's events (005_derived.sql). */
    {"ingest_derive", "SELECT circa_derive_group($1, $2, $3, $4)"},
    {"ingest_block",
     "INSERT INTO ledger_block (tenant_id, seq, count, prev, root, time, hash, signature) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
    {NULL, NULL},
};

typedef enum { REQ_VALIDATING, REQ_QUEUED, REQ_CHECKING, REQ_READY, REQ_COMMITTING } req_state_t;

typedef struct ireq {
    ingest_t *ing;
    tenant_t *t;
    req_state_t state;
    char tenant_id[65];
    char *party;           /* NULL: admin */
    cJSON *arr;            /* until validated */
    event_t *evs;
    int n;
    unsigned char *dup;    /* per event: already stored with the same content */
    const char **flags;    /* per event: flags to store ("unbalanced"), or NULL */
    int ndup;
    int solo;              /* commit alone (its group failed for another reason) */
    int check;             /* check ids before committing (a commit found one stored) */
    int md_retried;
    char dup_block[65];
    ingest_cb cb;
    void *arg;
    struct ireq *next;
} ireq_t;

typedef struct group {
    ingest_t *ing;
    tenant_t *t;
    ireq_t *reqs;          /* in queue order */
    int nevents;
    int check;             /* some request must have its ids checked first */
    int64_t new_seq;
    char new_hash[65];
    int signed_;           /* sig holds the tenant's Ed25519 signature of new_hash */
    unsigned char sig[SIGNER_SIG_LEN];
    uint64_t started_us;
} group_t;

/* Per-tenant queue state, hung on tenant_t.ingest. */
typedef struct {
    ireq_t *head, *tail;   /* QUEUED */
    group_t *checking, *ready, *committing;
    int head_loading;      /* the chain head is being reloaded before the next commit */
    strmap_t pending;      /* ids of events in groups, so a group never repeats an id */
} tq_t;

struct ingest {
    app_t *app;
    ingest_stats_t st;
    strmap_t queues;       /* tenant id -> tq_t (also on tenant_t.ingest) */
    signer_t *signer;      /* tenants' block-signing keys, from <data_dir>/keys */
};

static void pump(ingest_t *ing, tenant_t *t);

/* --- answers ------------------------------------------------------------------------- */

static void req_free(ireq_t *r)
{
    for (int i = 0; i < r->n; i++) event_free(&r->evs[i]);
    free(r->evs);
    free(r->dup);
    free(r->flags);
    free(r->party);
    cJSON_Delete(r->arr);
    free(r);
}

static void answer(ireq_t *r, int status, const char *type, const char *title,
                   const errlist_t *errs, const char *block, const char *detail)
{
    ingest_result_t res = {0};
    res.status = status;
    res.type = type;
    res.title = title;
    res.detail = detail;
    res.errs = errs;
    res.events = r->evs;
    res.nevents = r->n;
    res.duplicates = r->ndup;
    res.accepted = status < 300 ? r->n - r->ndup : 0;
    res.block = block;
    if (status >= 400) r->ing->st.rejected++;
    r->cb(&res, r->arg);
    req_free(r);
}

static void answer_unavailable(ireq_t *r)
{
    answer(r, 503, "unavailable", "Database unavailable", NULL, NULL,
           "the database cannot be reached or the commit outcome is unknown; nothing is "
           "lost by retrying the same request");
}

/* --- per-tenant queue ----------------------------------------------------------------- */

static tq_t *tq_of(ingest_t *ing, tenant_t *t)
{
    if (!t->ingest) {
        t->ingest = xcalloc(1, sizeof(tq_t));
        strmap_put(&ing->queues, t->id, t->ingest);
    }
    return t->ingest;
}

static void enqueue(tq_t *q, ireq_t *r, int front)
{
    r->state = REQ_QUEUED;
    if (front) {
        r->next = q->head;
        q->head = r;
        if (!q->tail) q->tail = r;
        return;
    }
    r->next = NULL;
    if (q->tail) q->tail->next = r;
    else q->head = r;
    q->tail = r;
}

static void pending_drop(tq_t *q, ireq_t *r)
{
    for (int i = 0; i < r->n; i++) strmap_del(&q->pending, r->evs[i].id);
}

/* Returns the group's requests to the front of the queue, in their order. */
static void requeue_group(tq_t *q, group_t *g, int solo, int check)
{
    ireq_t *list = g->reqs, *rev = NULL;
    for (ireq_t *r = list, *next; r; r = next) {
        next = r->next;
        pending_drop(q, r);
        r->solo |= solo;
        r->check |= check;
        r->next = rev;
        rev = r;
    }
    for (ireq_t *r = rev, *next; r; r = next) {
        next = r->next;
        enqueue(q, r, 1);
    }
    free(g);
}

static int collides(tq_t *q, const ireq_t *r)
{
    for (int i = 0; i < r->n; i++)
        if (strmap_get(&q->pending, r->evs[i].id)) return 1;
    return 0;
}

/* Takes requests off the queue while they fit and repeat no pending id. */
static group_t *form_group(ingest_t *ing, tq_t *q, tenant_t *t)
{
    group_t *g = NULL;
    ireq_t **tail = NULL;
    while (q->head) {
        ireq_t *r = q->head;
        if (g && (r->solo || g->reqs->solo)) break;
        if (g && g->nevents + r->n > INGEST_GROUP_MAX_EVENTS) break;
        if (collides(q, r)) break;
        q->head = r->next;
        if (!q->head) q->tail = NULL;
        if (!g) {
            g = xcalloc(1, sizeof *g);
            g->ing = ing;
            g->t = t;
            tail = &g->reqs;
        }
        r->next = NULL;
        r->state = REQ_CHECKING;
        *tail = r;
        tail = &r->next;
        g->nevents += r->n;
        g->check |= r->check;
        for (int i = 0; i < r->n; i++) strmap_put(&q->pending, r->evs[i].id, r);
    }
    return g;
}

/* --- CHECKING: one query for every id of the group ------------------------------------- */

typedef struct {
    ingest_t *ing;
    group_t *g;
    ireq_t **owner;    /* flat event index -> request */
    int *local;        /* flat event index -> index in its request */
} check_t;

static void conflict(ireq_t *r, const unsigned char *conflicts)
{
    errlist_t errs = ERRLIST_INIT;
    for (int i = 0; i < r->n; i++)
        if (conflicts[i])
            errlist_add(&errs, i, "id", "event '%s' is already stored with other content",
                        r->evs[i].id);
    answer(r, 409, "conflict", "Conflict", &errs, NULL,
           "an event id is already stored with other content; nothing was stored");
    errlist_free(&errs);
}

/* Marks duplicates and conflicts from the check's rows; returns per-event conflict flags. */
static unsigned char *mark_existing(check_t *c, const PGresult *res)
{
    unsigned char *conflicts = xcalloc((size_t)c->g->nevents, 1);
    for (int row = 0; row < PQntuples(res); row++) {
        long flat = strtol(PQgetvalue(res, row, 0), NULL, 10) - 1;
        if (flat < 0 || flat >= c->g->nevents) continue;
        ireq_t *r = c->owner[flat];
        int i = c->local[flat];
        if (PQgetvalue(res, row, 1)[0] != 't') {
            conflicts[flat] = 1;
            continue;
        }
        r->dup[i] = 1;
        r->ndup++;
        /* Seqs grow with blocks, so the greatest hash text is not the latest block; any
         * block holding one of the duplicates will do for an all-duplicate answer. */
        snprintf(r->dup_block, sizeof r->dup_block, "%s", PQgetvalue(res, row, 2));
    }
    return conflicts;
}

/* Answers requests that are settled by the check (conflicts, all duplicates). */
static void settle_checked(check_t *c, tq_t *q, const unsigned char *conflicts)
{
    ireq_t **link = &c->g->reqs;
    int flat = 0;
    while (*link) {
        ireq_t *r = *link;
        int has_conflict = 0;
        for (int i = 0; i < r->n; i++) has_conflict |= conflicts[flat + i];
        flat += r->n;
        if (!has_conflict && r->ndup < r->n) {
            r->state = REQ_READY;
            link = &r->next;
            continue;
        }
        *link = r->next;
        c->g->nevents -= r->n;
        pending_drop(q, r);
        if (has_conflict) {
            conflict(r, conflicts + flat - r->n);
        } else {
            c->ing->st.duplicates += (unsigned long long)r->ndup;
            answer(r, 200, NULL, NULL, NULL, r->dup_block, NULL);
        }
    }
}

static void checked(store_tx_t *tx, store_status_t st, void *arg)
{
    check_t *c = arg;
    group_t *g = c->g;
    tenant_t *t = g->t;
    tq_t *q = t->ingest;
    q->checking = NULL;
    if (st != STORE_OK) {
        /* Nothing was written: the requests simply wait for the next attempt, unless the
         * database is gone, in which case the client hears 503 now. */
        for (ireq_t *r = g->reqs, *next; r; r = next) {
            next = r->next;
            pending_drop(q, r);
            answer_unavailable(r);
        }
        free(g);
    } else {
        unsigned char *conflicts = mark_existing(c, store_tx_result(tx, 0));
        settle_checked(c, q, conflicts);
        free(conflicts);
        if (g->reqs) q->ready = g;
        else free(g);
    }
    free(c->owner);
    free(c->local);
    ingest_t *ing = c->ing;
    free(c);
    pump(ing, t);
}

static void start_check(ingest_t *ing, group_t *g)
{
    check_t *c = xcalloc(1, sizeof *c);
    c->ing = ing;
    c->g = g;
    c->owner = xmalloc(sizeof *c->owner * (size_t)g->nevents);
    c->local = xmalloc(sizeof *c->local * (size_t)g->nevents);
    pgarr_t ids, canons;
    pgarr_init(&ids, PGARR_TEXT);
    pgarr_init(&canons, PGARR_BYTEA);
    int flat = 0;
    for (ireq_t *r = g->reqs; r; r = r->next)
        for (int i = 0; i < r->n; i++, flat++) {
            c->owner[flat] = r;
            c->local[flat] = i;
            pgarr_text(&ids, r->evs[i].id);
            pgarr_bytes(&canons, r->evs[i].canon.data, r->evs[i].canon.len);
        }
    int lens[3] = {0}, fmts[3] = {0, 1, 1};
    const char *vals[3] = {g->t->id, pgarr_finish(&ids, &lens[1]), pgarr_finish(&canons, &lens[2])};
    store_tx_t *tx = store_tx_new(ing->app->store, checked, c);
    store_tx_exec(tx, "ingest_check", 3, vals, lens, fmts);
    store_tx_submit(tx);
    pgarr_free(&ids);
    pgarr_free(&canons);
}

/* --- COMMITTING: events, block and chain head in one transaction ----------------------- */

enum { COL_ID, COL_SEQ, COL_TYPE, COL_TIME, COL_TIME_RAW, COL_SITE, COL_FROM, COL_TO,
       COL_MATERIAL, COL_EWC, COL_OP, COL_KG, COL_ITEM, COL_LOT, COL_PRODUCT, COL_CORRECTS,
       COL_CANON, COL_VALUE, COL_CURRENCY, COL_FLAGS, NCOLS };

static const uint32_t col_oid[NCOLS] = {
    PGARR_TEXT, PGARR_INT8, PGARR_TEXT, PGARR_TIMESTAMPTZ, PGARR_TEXT, PGARR_TEXT, PGARR_TEXT,
    PGARR_TEXT, PGARR_TEXT, PGARR_TEXT, PGARR_TEXT, PGARR_FLOAT8, PGARR_TEXT, PGARR_TEXT,
    PGARR_TEXT, PGARR_TEXT, PGARR_BYTEA, PGARR_FLOAT8, PGARR_TEXT, PGARR_TEXT};

static void add_row(pgarr_t *cols, const event_t *e, const char *flags, int64_t seq)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(e->json, "value");
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive(value, "amount");
    if (cJSON_IsNumber(amount)) pgarr_float8(&cols[COL_VALUE], amount->valuedouble);
    else pgarr_null(&cols[COL_VALUE]);
    pgarr_text(&cols[COL_CURRENCY],
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(value, "currency")));
    pgarr_text(&cols[COL_FLAGS], flags);
    pgarr_text(&cols[COL_ID], e->id);
    pgarr_int8(&cols[COL_SEQ], seq);
    pgarr_text(&cols[COL_TYPE], event_type_name(e->type));
    pgarr_timestamptz(&cols[COL_TIME], e->time_us);
    pgarr_text(&cols[COL_TIME_RAW], e->time_raw);
    pgarr_text(&cols[COL_SITE], e->site);
    pgarr_text(&cols[COL_FROM], e->from_site);
    pgarr_text(&cols[COL_TO], e->to_site);
    pgarr_text(&cols[COL_MATERIAL], e->material);
    pgarr_text(&cols[COL_EWC], e->ewc[0] ? e->ewc : NULL);
    pgarr_text(&cols[COL_OP], e->operation);
    if (e->has_quantity) pgarr_float8(&cols[COL_KG], e->quantity_kg);
    else pgarr_null(&cols[COL_KG]);
    pgarr_text(&cols[COL_ITEM], e->item);
    pgarr_text(&cols[COL_LOT], e->lot);
    pgarr_text(&cols[COL_PRODUCT], e->product);
    pgarr_text(&cols[COL_CORRECTS], e->corrects);
    pgarr_bytes(&cols[COL_CANON], e->canon.data, e->canon.len);
}

/* Groups this big go in with COPY: PostgreSQL batches COPY's heap inserts (one round trip per
 * step instead of one pipeline, which small groups could not afford). */
#define INGEST_COPY_MIN 200
#define INGEST_COPY_SQL                                                                       \
    "COPY event (tenant_id, block_seq, recorded_time, id, seq, type, event_time, time_raw, "  \
    "site, from_site, to_site, material, ewc, operation, quantity_kg, item, lot, product, "   \
    "corrects, canon, value_amount, currency, flags) FROM STDIN (FORMAT binary)"

static int64_t count_new(const group_t *g)
{
    int64_t n = 0;
    for (const ireq_t *r = g->reqs; r; r = r->next)
        for (int i = 0; i < r->n; i++) n += !r->dup[i];
    return n;
}

/* One row for INGEST_COPY_SQL: the values ingest_events writes. */
static void copy_row(buf_t *b, const tenant_t *t, int64_t block_seq, int64_t recorded_us,
                     const event_t *e, const char *flags, int64_t seq)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(e->json, "value");
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive(value, "amount");
    pgcopy_row(b, 23);
    pgcopy_text(b, t->id);
    pgcopy_int8(b, block_seq);
    pgcopy_timestamptz(b, recorded_us);
    pgcopy_text(b, e->id);
    pgcopy_int8(b, seq);
    pgcopy_text(b, event_type_name(e->type));
    pgcopy_timestamptz(b, e->time_us);
    pgcopy_text(b, e->time_raw);
    pgcopy_text(b, e->site);
    pgcopy_text(b, e->from_site);
    pgcopy_text(b, e->to_site);
    pgcopy_text(b, e->material);
    pgcopy_text(b, e->ewc[0] ? e->ewc : NULL);
    pgcopy_text(b, e->operation);
    if (e->has_quantity) pgcopy_float8(b, e->quantity_kg);
    else pgcopy_null(b);
    pgcopy_text(b, e->item);
    pgcopy_text(b, e->lot);
    pgcopy_text(b, e->product);
    pgcopy_text(b, e->corrects);
    pgcopy_bytes(b, e->canon.data, e->canon.len);
    if (cJSON_IsNumber(amount)) pgcopy_float8(b, amount->valuedouble);
    else pgcopy_null(b);
    pgcopy_text(b, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(value, "currency")));
    pgcopy_text_split(b, flags, ',');   /* = coalesce(string_to_array(flags, ','), '{}') */
}

/* Assigns seqs after the head, hashes the block, and fills the rows: COPY data when copy is
 * given, else the column arrays of ingest_events. */
static int64_t build_block(group_t *g, pgarr_t *cols, buf_t *copy, char root_hex[65],
                           char time[40])
{
    tenant_t *t = g->t;
    uint8_t (*leaves)[32] = xmalloc(32 * (size_t)g->nevents);
    int64_t seq = t->head_seq, block_seq = t->head_seq + count_new(g);
    int64_t recorded_us = app_now_us();
    size_t n = 0;
    for (ireq_t *r = g->reqs; r; r = r->next)
        for (int i = 0; i < r->n; i++) {
            if (r->dup[i]) continue;
            const char *fl = r->flags ? r->flags[i] : NULL;
            if (copy) copy_row(copy, t, block_seq, recorded_us, &r->evs[i], fl, ++seq);
            else add_row(cols, &r->evs[i], fl, ++seq);
            ledger_leaf_hash(r->evs[i].canon.data, r->evs[i].canon.len, leaves[n++]);
        }
    uint8_t root[32], hash[32];
    ledger_merkle_root((const uint8_t(*)[32])leaves, n, root);
    free(leaves);
    ledger_hex(root, root_hex);
    int64_t now = app_now_us();
    event_format_time(now - now % 1000, time);   /* milliseconds are enough for a block */
    ledger_block_hash(t->id, seq, t->head_hash, root_hex, (int64_t)n, time, hash);
    ledger_hex(hash, g->new_hash);
    int s = signer_sign(g->ing->signer, t->id, g->new_hash, g->sig);
    if (s < 0)   /* stored unsigned: verify names the block, the events are not lost */
        log_msg(LOG_ERROR, "tenant %s: block %lld not signed: its key file cannot be read",
                t->id, (long long)seq);
    g->signed_ = s == 0;
    g->new_seq = seq;
    return (int64_t)n;
}

static void committed(store_tx_t *tx, store_status_t st, void *arg);

/* Which derive steps have work (013_derive_group.sql): transformations 1, lots 2, items 4,
 * corrections 8, interim operations 16 (018_derive_gates.sql), consignments and receipts 32
 * (120_consignments.sql). */
static int is_flow(event_type_t type)
{
    return type == EVT_SHIPPED || type == EVT_COLLECTED || type == EVT_RECEIVED;
}

static int derive_kinds(const group_t *g)
{
    int kinds = 0;
    for (const ireq_t *r = g->reqs; r; r = r->next)
        for (int i = 0; i < r->n; i++) {
            if (r->dup[i]) continue;
            const event_t *e = &r->evs[i];
            const codes_op_t *op = e->operation ? codes_op_find(e->operation) : NULL;
            kinds |= (e->type == EVT_TRANSFORMED ? 1 : 0) | (e->lot ? 2 : 0) |
                     (e->item ? 4 : 0) | (e->type == EVT_CORRECTED ? 8 : 0) |
                     (op && op->category == CODES_INTERIM ? 16 : 0) |
                     (is_flow(e->type) ? 32 : 0);
        }
    return kinds;
}

static void start_commit(ingest_t *ing, group_t *g)
{
    tenant_t *t = g->t;
    pgarr_t cols[NCOLS];
    for (int c = 0; c < NCOLS; c++) pgarr_init(&cols[c], col_oid[c]);
    char root[65], time[40], old_seq[24], new_seq[24], count[24];
    buf_t copy = BUF_INIT;
    int use_copy = !t->citus && count_new(g) >= INGEST_COPY_MIN;
    if (use_copy) pgcopy_start(&copy);
    int64_t n = build_block(g, cols, use_copy ? &copy : NULL, root, time);
    snprintf(old_seq, sizeof old_seq, "%lld", (long long)t->head_seq);
    snprintf(new_seq, sizeof new_seq, "%lld", (long long)g->new_seq);
    snprintf(count, sizeof count, "%lld", (long long)n);

    store_tx_t *tx = store_tx_new(ing->app->store, committed, g);
    const char *head[5] = {t->id, old_seq, t->head_hash, new_seq, g->new_hash};
    store_tx_exec(tx, "ingest_head", 5, head, NULL, NULL);
    if (use_copy) {
        pgcopy_finish(&copy);
        size_t len = copy.len;
        store_tx_copy(tx, INGEST_COPY_SQL, buf_steal(&copy), len);   /* the tx frees it */
    } else {
        const char *vals[2 + NCOLS] = {t->id, new_seq};
        int lens[2 + NCOLS] = {0}, fmts[2 + NCOLS] = {0};
        for (int c = 0; c < NCOLS; c++) {
            vals[2 + c] = pgarr_finish(&cols[c], &lens[2 + c]);
            fmts[2 + c] = 1;
        }
        store_tx_exec(tx, t->citus ? "ingest_rows" : "ingest_events", 2 + NCOLS, vals, lens, fmts);
    }
    const char *block[8] = {t->id, new_seq, count, t->head_hash, root, time, g->new_hash,
                            g->signed_ ? (const char *)g->sig : NULL};
    const int blens[8] = {0, 0, 0, 0, 0, 0, 0, SIGNER_SIG_LEN}, bfmts[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    store_tx_exec(tx, "ingest_block", 8, block, blens, bfmts);
    char first_seq[24];
    snprintf(first_seq, sizeof first_seq, "%lld", (long long)(t->head_seq + 1));
    char kinds[12];
    snprintf(kinds, sizeof kinds, "%d", derive_kinds(g));
    const char *derive[4] = {t->id, first_seq, new_seq, kinds};
    store_tx_exec(tx, "ingest_derive", 4, derive, NULL, NULL);
    for (int c = 0; c < NCOLS; c++) pgarr_free(&cols[c]);
    g->started_us = (uint64_t)app_now_us();
    store_tx_submit(tx);
}

static int hist_bucket(double v)
{
    int b = 0;
    for (double edge = 1; b < 11 && v > edge; edge *= 2) b++;
    return b;
}

static void commit_ok(ingest_t *ing, group_t *g)
{
    tenant_t *t = g->t;
    tq_t *q = t->ingest;
    t->head_seq = g->new_seq;
    memcpy(t->head_hash, g->new_hash, sizeof t->head_hash);
    double ms = (double)((uint64_t)app_now_us() - g->started_us) / 1000.0;
    ing->st.groups++;
    ing->st.commit_ms_sum += ms;
    ing->st.commit_ms_hist[hist_bucket(ms)]++;
    ing->st.group_events_hist[hist_bucket(g->nevents)]++;
    for (ireq_t *r = g->reqs, *next; r; r = next) {
        next = r->next;
        pending_drop(q, r);
        ing->st.events_stored += (unsigned long long)(r->n - r->ndup);
        ing->st.duplicates += (unsigned long long)r->ndup;
        answer(r, 201, NULL, NULL, NULL, g->new_hash, NULL);
    }
    free(g);
}

/* circa_violation's message is "<event id>\t<field>\t<text>": name the event and field. */
static void refuse_rule(ireq_t *r, const char *msg)
{
    errlist_t errs = ERRLIST_INIT;
    const char *tab1 = strchr(msg, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    int index = -1;
    char field[96] = "";
    if (tab2) {
        for (int i = 0; i < r->n && index < 0; i++)
            if (strlen(r->evs[i].id) == (size_t)(tab1 - msg) &&
                strncmp(r->evs[i].id, msg, (size_t)(tab1 - msg)) == 0)
                index = i;
        snprintf(field, sizeof field, "%.*s", (int)(tab2 - tab1 - 1), tab1 + 1);
        msg = tab2 + 1;
    }
    errlist_add(&errs, index, field, "%.*s", (int)strcspn(msg, "\n"), msg);
    answer(r, 422, "invalid-event", "Invalid event", &errs, NULL,
           "an event breaks a rule of the ledger; nothing was stored");
    errlist_free(&errs);
}

/* A unique violation: 23505, or, through Citus, XX000 with PostgreSQL's message. */
static const char *unique_violation(store_tx_t *tx, const char *state)
{
    static const char dup[] = "duplicate key value violates unique constraint";
    if (strcmp(state, "XX000") == 0 && strstr(store_tx_error(tx), dup)) return "23505";
    return state;
}

/* A failed commit wrote nothing. Decide what each request hears or where it goes next. */
static void commit_failed(ingest_t *ing, group_t *g, store_tx_t *tx, store_status_t st)
{
    tenant_t *t = g->t;
    tq_t *q = t->ingest;
    const char *state = st == STORE_SQL_ERROR ? unique_violation(tx, store_tx_sqlstate(tx)) : "";
    if (st != STORE_SQL_ERROR || strcmp(state, "CA001") == 0) t->head_known = 0;
    if (strcmp(state, "CA001") == 0 || strcmp(state, "23505") == 0) {
        /* Another circad moved the head, or an id is stored already (a retry, or another
         * process first): the requests go again, their ids checked this time. */
        ing->st.conflicts_retried++;
        requeue_group(q, g, 0, strcmp(state, "23505") == 0);
        return;
    }
    if (st == STORE_SQL_ERROR && g->reqs->next) {
        /* One bad request must not fail the others: retry each on its own. */
        log_msg(LOG_WARN, "tenant %s: group commit failed (%s %s); retrying requests one by one",
                t->id, state, store_tx_error(tx));
        requeue_group(q, g, 1, 0);
        return;
    }
    for (ireq_t *r = g->reqs, *next; r; r = next) {
        next = r->next;
        pending_drop(q, r);
        if (st != STORE_SQL_ERROR) {
            answer_unavailable(r);
            continue;
        }
        if (strcmp(state, "CA200") == 0) {
            refuse_rule(r, store_tx_error(tx));
            continue;
        }
        log_msg(LOG_ERROR, "tenant %s: commit failed: SQLSTATE %s: %s", t->id, state,
                store_tx_error(tx));
        answer(r, 500, "internal", "Internal error", NULL, NULL,
               "the database refused to store the events; nothing was stored");
    }
    free(g);
}

static void committed(store_tx_t *tx, store_status_t st, void *arg)
{
    group_t *g = arg;
    ingest_t *ing = g->ing;
    tenant_t *t = g->t;
    ((tq_t *)t->ingest)->committing = NULL;
    if (st == STORE_OK) commit_ok(ing, g);
    else commit_failed(ing, g, tx, st);
    pump(ing, t);
}

/* --- moving groups along --------------------------------------------------------------- */

static void fail_ready(ingest_t *ing, tq_t *q)
{
    group_t *g = q->ready;
    q->ready = NULL;
    for (ireq_t *r = g->reqs, *next; r; r = next) {
        next = r->next;
        pending_drop(q, r);
        answer_unavailable(r);
    }
    free(g);
}

static void head_loaded(tenant_t *t, store_status_t st, void *arg)
{
    ingest_t *ing = arg;
    if (!t) return;   /* the tenant vanished; nothing sensible is queued for it */
    tq_t *q = t->ingest;
    q->head_loading = 0;
    if (st != STORE_OK && q->ready) fail_ready(ing, q);
    pump(ing, t);
}

static void pump(ingest_t *ing, tenant_t *t)
{
    tq_t *q = tq_of(ing, t);
    if (q->committing) return;
    /* A group is formed only when the commit slot is free, so it takes every request that
     * queued up during the previous commit (group commit without timers). Ids are checked
     * first only for requests whose commit met an id already stored: new events, the common
     * case, cost no extra query. */
    if (!q->ready && !q->checking && q->head) {
        group_t *g = form_group(ing, q, t);
        if (g && g->check) {
            q->checking = g;
            start_check(ing, g);
        } else if (g) {
            for (ireq_t *r = g->reqs; r; r = r->next) r->state = REQ_READY;
            q->ready = g;
        }
    }
    if (!q->ready) return;
    if (t->head_known) {
        q->committing = q->ready;
        q->ready = NULL;
        for (ireq_t *r = q->committing->reqs; r; r = r->next) r->state = REQ_COMMITTING;
        start_commit(ing, q->committing);
    } else if (!q->head_loading) {
        q->head_loading = 1;
        tenants_ensure(ing->app->tenants, t->id, 0, head_loaded, ing);
    }
}

/* --- VALIDATING ------------------------------------------------------------------------ */

static void validated(tenant_t *t, store_status_t st, void *arg);

static void reset_events(ireq_t *r)
{
    for (int i = 0; i < r->n; i++) event_free(&r->evs[i]);
    free(r->evs);
    r->evs = NULL;
    r->n = 0;
}

/* 0 when every id is distinct within the request, else the errors say which repeat. */
static int repeated_ids(ireq_t *r, errlist_t *errs)
{
    strmap_t seen = STRMAP_INIT;
    for (int i = 0; i < r->n; i++) {
        intptr_t first = (intptr_t)strmap_get(&seen, r->evs[i].id);
        if (first)
            errlist_add(errs, i, "id", "event %d has the same id '%s'", (int)first - 1,
                        r->evs[i].id);
        else
            strmap_put(&seen, r->evs[i].id, (void *)(intptr_t)(i + 1));
    }
    strmap_free(&seen);
    return errs->n ? -1 : 0;
}

/* A corrected event's replacement is stored as an event of its own, right after it, so it
 * has its own seq, leaf and roll-up contribution. */
static void add_replacements(ireq_t *r, const event_ctx_t *ctx, errlist_t *errs)
{
    int n = r->n, extra = 0;
    for (int i = 0; i < n; i++) extra += r->evs[i].type == EVT_CORRECTED;
    if (!extra) return;
    event_t *evs = xcalloc((size_t)(n + extra), sizeof *evs);
    int k = 0;
    for (int i = 0; i < n; i++) {
        evs[k++] = r->evs[i];
        if (r->evs[i].type != EVT_CORRECTED) continue;
        const cJSON *repl = cJSON_GetObjectItemCaseSensitive(r->evs[i].json, "replacement");
        if (event_parse(repl, i, ctx, &evs[k], errs) == 0) k++;
    }
    free(r->evs);
    r->evs = evs;
    r->n = k;
}

/* kg of a {value, unit} quantity of a material; NAN when it cannot be known. */
static double quantity_kg(tenant_t *t, const cJSON *q, const char *material)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(q, "value");
    const codes_unit_t *u =
        codes_unit_find(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "unit")) ?: "");
    if (!cJSON_IsNumber(v) || !u) return NAN;
    if (!u->is_volume) return v->valuedouble * u->factor;
    double *density = material ? strmap_get(&t->materials, material) : NULL;
    return density ? v->valuedouble * u->factor * *density : NAN;
}

static double sum_kg(tenant_t *t, const cJSON *list)
{
    double kg = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, list) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "material"));
        kg += quantity_kg(t, cJSON_GetObjectItemCaseSensitive(x, "quantity"), m);
    }
    return kg;
}

/* Transformations must balance: inputs = outputs + declared loss, within the tenant's
 * tolerance. Strict tenants refuse the event; lenient ones store it flagged. */
static void check_balances(ireq_t *r, errlist_t *errs)
{
    for (int i = 0; i < r->n; i++) {
        const event_t *e = &r->evs[i];
        if (e->type != EVT_TRANSFORMED) continue;
        double in = sum_kg(r->t, cJSON_GetObjectItemCaseSensitive(e->json, "inputs"));
        double out = sum_kg(r->t, cJSON_GetObjectItemCaseSensitive(e->json, "outputs"));
        const cJSON *loss_q = cJSON_GetObjectItemCaseSensitive(e->json, "loss");
        double loss = loss_q ? quantity_kg(r->t, loss_q, NULL) : 0;
        double off = fabs(in - out - loss) / (in > 0 ? in : 1);
        if (!(off > r->t->tolerance)) continue;   /* NAN never fails here: units were checked */
        if (r->t->lenient) {
            if (!r->flags) r->flags = xcalloc((size_t)r->n, sizeof *r->flags);
            r->flags[i] = "unbalanced";
            continue;
        }
        errlist_add(errs, i, "outputs",
                    "mass does not balance: inputs %.6g kg, outputs %.6g kg, loss %.6g kg "
                    "(%.2f %% off; the tenant's tolerance is %.2f %%)",
                    in, out, loss, off * 100, r->t->tolerance * 100);
    }
}

/* Parses every event; returns 0, or the HTTP status of the failure (errs filled). */
static int parse_all(ireq_t *r, errlist_t *errs)
{
    event_ctx_t ctx;
    tenants_event_ctx(r->t, r->party, &ctx);
    r->n = cJSON_GetArraySize(r->arr);
    r->evs = xcalloc((size_t)r->n, sizeof *r->evs);
    int i = 0, invalid = 0, forbidden = 0;
    const cJSON *obj;
    cJSON_ArrayForEach(obj, r->arr) {
        int rc = event_parse(obj, i, &ctx, &r->evs[i], errs);
        i++;
        invalid += rc == -1;
        forbidden += rc == EVENT_FORBIDDEN;
    }
    if (invalid) return 422;
    if (forbidden) return 403;
    add_replacements(r, &ctx, errs);
    if (errs->n) return 422;
    check_balances(r, errs);
    if (errs->n) return 422;
    return repeated_ids(r, errs) ? 422 : 0;
}

static void validated(tenant_t *t, store_status_t st, void *arg)
{
    ireq_t *r = arg;
    if (st != STORE_OK) {
        answer_unavailable(r);
        return;
    }
    if (!t) {
        answer(r, 403, "forbidden", "Forbidden", NULL, NULL, "the key's tenant does not exist");
        return;
    }
    r->t = t;
    errlist_t errs = ERRLIST_INIT;
    unsigned misses = t->md_misses;
    int status = parse_all(r, &errs);
    if (status && t->md_misses != misses && !r->md_retried) {
        /* Maybe another circad just added that site or material: reload once and retry. */
        errlist_free(&errs);
        reset_events(r);
        r->md_retried = 1;
        tenants_ensure(r->ing->app->tenants, r->tenant_id, 1, validated, r);
        return;
    }
    if (status) {
        char detail[128];
        snprintf(detail, sizeof detail, "%zu of %d events are %s; nothing was stored",
                 errlist_count_indexes(&errs), r->n, status == 403 ? "not the caller's" : "invalid");
        answer(r, status, status == 403 ? "forbidden-site" : "invalid-event",
               status == 403 ? "Forbidden" : "Invalid event", &errs, NULL, detail);
        errlist_free(&errs);
        return;
    }
    cJSON_Delete(r->arr);
    r->arr = NULL;
    r->dup = xcalloc((size_t)r->n, 1);
    enqueue(tq_of(r->ing, t), r, 0);
    pump(r->ing, t);
}

void ingest_submit(ingest_t *ing, const char *tenant, const char *party, cJSON *events,
                   ingest_cb cb, void *arg)
{
    ireq_t *r = xcalloc(1, sizeof *r);
    r->ing = ing;
    r->state = REQ_VALIDATING;
    snprintf(r->tenant_id, sizeof r->tenant_id, "%s", tenant);
    r->party = party ? xstrdup(party) : NULL;   /* "" stays a party: it owns no site */
    r->arr = events;
    r->cb = cb;
    r->arg = arg;
    ing->st.requests++;
    tenants_ensure(ing->app->tenants, tenant, 0, validated, r);
}

/* --- life and numbers ------------------------------------------------------------------ */

ingest_t *ingest_new(app_t *app)
{
    ingest_t *ing = xcalloc(1, sizeof *ing);
    ing->app = app;
    ing->signer = signer_open(app->cfg.data_dir);
    return ing;
}

static void free_queue(const char *key, void *val, void *arg)
{
    tq_t *q = val;
    strmap_free(&q->pending);
    free(q);
}

void ingest_free(ingest_t *ing)
{
    if (!ing) return;
    strmap_each(&ing->queues, free_queue, NULL);
    strmap_free(&ing->queues);
    signer_free(ing->signer);
    free(ing);
}

static void count_queued(const char *key, void *val, void *arg)
{
    tq_t *q = val;
    for (ireq_t *r = q->head; r; r = r->next) (*(unsigned *)arg)++;
}

void ingest_stats(const ingest_t *ing, ingest_stats_t *out)
{
    *out = ing->st;
    out->queued = 0;
    strmap_each(&ing->queues, count_queued, &out->queued);
}

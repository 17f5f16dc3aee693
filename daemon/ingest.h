/* ingest — the one path every event takes: validate against the tenant's master data, group
 * concurrent requests of a tenant into one transaction (group commit) that appends the events,
 * their ledger block and their derived state, and answer only after COMMIT.
 *
 * Request states: VALIDATING -> QUEUED -> [CHECKING ->] READY -> COMMITTING -> answered.
 * Per tenant one group commits at a time (the next block's prev hash is this block's hash);
 * the next group forms when the commit slot frees, taking every request that queued
 * meanwhile. Commits are optimistic: an id already stored makes the commit fail with a unique
 * violation, and those requests go again through CHECKING, which sorts duplicates (200) from
 * conflicts (409). New events, the common case, cost no id query. */
#ifndef CIRCA_INGEST_H
#define CIRCA_INGEST_H
#include <cjson/cJSON.h>

#include "app.h"
#include "errlist.h"
#include "event.h"
#include "store.h"

#define INGEST_GROUP_MAX_EVENTS 10000

typedef struct {
    int status;                /* 201 stored, 200 all duplicates, else the error status */
    const char *type, *title;  /* problem type slug and title when status >= 400 */
    const char *detail;
    const errlist_t *errs;     /* per-event errors (may be empty) */
    long accepted, duplicates;
    const event_t *events;     /* every event of the request, in request order */
    int nevents;
    const char *block;         /* hash of the ledger block holding the events */
} ingest_result_t;

/* Called exactly once per ingest_submit, on the loop; res lives only during the call. */
typedef void (*ingest_cb)(const ingest_result_t *res, void *arg);

ingest_t *ingest_new(app_t *app);       /* freed with ingest_free after the store is closed */
void ingest_free(ingest_t *ing);
/* Takes ownership of events (a cJSON array of event objects). party is the ingest key's
 * party (its sites only), NULL for an admin key. */
void ingest_submit(ingest_t *ing, const char *tenant, const char *party, cJSON *events,
                   ingest_cb cb, void *arg);

typedef struct {
    unsigned long long requests, events_stored, duplicates, rejected, groups, conflicts_retried;
    unsigned long long group_events_hist[12];   /* group sizes: <=1,2,4,...,1024,more */
    unsigned long long commit_ms_hist[12];      /* commit latency: <=1,2,4,...,1024 ms, more */
    double commit_ms_sum;
    unsigned queued;
} ingest_stats_t;
void ingest_stats(const ingest_t *ing, ingest_stats_t *out);

extern const store_stmt_t ingest_stmts[];

#endif

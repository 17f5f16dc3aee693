/* regcheck — a waste register recomputed from the ledger's canonical events, as of the report's
 * block, and compared with the report and with a downloaded consignment listing. `circa verify
 * --report` feeds it the events from PostgreSQL, `circa verify --offline` from an export; the
 * rules are those of schema/120_consignments.sql (docs/REPORTS.md, docs/VERIFY.md).
 * Not checked: names from master data (receiver_name), the List of Waste's descriptions, and,
 * with a party scope, which sites the party had (the report's data.scope.sites is taken). */
#ifndef CIRCA_REGCHECK_H
#define CIRCA_REGCHECK_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

/* Owned by its creator; regcheck_free releases it. Not thread-safe: it sets TZ while alive. */
typedef struct regcheck regcheck_t;

/* A checker for doc (a report), or NULL when doc is no waste register with a consignment
 * listing (why says so; there is nothing to recompute). doc must outlive the checker. */
regcheck_t *regcheck_new(const cJSON *doc, char *why, size_t whylen);
void regcheck_free(regcheck_t *rc);

/* The report's block: events after it are not wanted (and ignored). */
int64_t regcheck_block(const regcheck_t *rc);

/* One ledger event, in seq order: its canonical JSON, and its stored mass in kg (NAN: compute
 * it from the canonical quantity, which needs a mass unit). 0, or -1 when it is no event. */
int regcheck_event(regcheck_t *rc, int64_t seq, const char *canon, size_t len, double kg);

/* After the last event: the recomputed register against the report's data. 0 the same, 1 not
 * (why names the first difference). note gets what could not be checked ("" when nothing). */
int regcheck_report(regcheck_t *rc, char *why, size_t whylen, char *note, size_t notelen);

/* A listing (NDJSON: one consignment per line, or pages {"consignments": [...]} as the API
 * answers them) against the recomputed consignments, in order. 0 the same, 1 not, -1 when the
 * file is not such a listing. Call after regcheck_report. */
int regcheck_listing(regcheck_t *rc, FILE *f, char *why, size_t whylen);

/* Consignments recomputed (after regcheck_report). */
size_t regcheck_count(const regcheck_t *rc);

#endif

/* report — a report's canonical document: the data circa_report_data read from the ledger,
 * wrapped with the report's id, type, parameters and time, serialised as RFC 8785 (JCS) and
 * hashed with SHA-256. Pure functions: they run on a worker thread. */
#ifndef CIRCA_REPORT_H
#define CIRCA_REPORT_H
#include <stddef.h>
#include <cjson/cJSON.h>

#include "buf.h"

#define REPORT_SCHEMA "circa.report.v1"

/* The report types, {NULL}-terminated, and whether s is one. */
extern const char *const report_types[];
int report_type_valid(const char *s);

/* Who and when: id (report_new_id), type, the request's parameters object and the generation
 * time (RFC 3339 UTC). */
typedef struct {
    const char *id;
    const char *type;
    const char *generated;
    const cJSON *params;
} report_meta_t;

/* Builds the canonical document {schema, id, type, generated, params, tenant, period, block,
 * data} from meta and data_json (the jsonb text of circa_report_data). Fills canon with its
 * JCS bytes and sha_hex with their SHA-256. Returns the document (caller deletes it), or NULL
 * with err set. */
cJSON *report_build(const report_meta_t *meta, const char *data_json, buf_t *canon,
                    char sha_hex[65], char *err, size_t errlen);

/* JCS bytes and SHA-256 of a JSON text (a downloaded report): 0, or -1 when it is not JSON or
 * cannot be canonicalised. */
int report_canonical_sha256(const char *json, size_t len, buf_t *canon, char sha_hex[65]);

/* A fresh report id: 32 lowercase hex digits from the system's random source. 0 or -1. */
int report_new_id(char out[33]);

/* Members of the document as strings ("" when absent): "id", "type", "block.hash", … */
const char *report_str(const cJSON *doc, const char *dotted);
/* A number member, or NAN when absent. */
double report_num(const cJSON *doc, const char *dotted);

#endif

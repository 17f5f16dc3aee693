/* event — the canonical event: parse a request body, validate every rule of API.md's event
 * table, normalise (kg, six-digit EWC, UTC time) and produce the RFC 8785 canonical bytes. */
#ifndef CIRCA_EVENT_H
#define CIRCA_EVENT_H
#include <cjson/cJSON.h>
#include <stdint.h>
#include "buf.h"
#include "errlist.h"

typedef enum {
    EVT_PRODUCED, EVT_CONSUMED, EVT_SHIPPED, EVT_RECEIVED, EVT_PUT_ON_MARKET, EVT_RETURNED,
    EVT_WASTE_GENERATED, EVT_COLLECTED, EVT_SORTED, EVT_REPAIRED, EVT_REFURBISHED,
    EVT_REMANUFACTURED, EVT_REPURPOSED, EVT_REUSED, EVT_RECYCLED, EVT_ENERGY_RECOVERED,
    EVT_DISPOSED, EVT_TRANSFORMED, EVT_MEASURED, EVT_OBSERVED, EVT_CORRECTED, EVT__COUNT
} event_type_t;

const char *event_type_name(event_type_t t);
int event_type_parse(const char *name, event_type_t *out);   /* 0 or -1 */

/* Limits enforced while parsing (named in the error when exceeded). */
#define EVENT_MAX_PER_REQUEST 10000
#define EVENT_MAX_ID 200
#define EVENT_MAX_STRING 1000        /* any other string field */
#define EVENT_MAX_EXT_BYTES 16384    /* ext, serialised */
#define EVENT_MAX_DEPTH 16           /* nesting inside ext */
#define EVENT_MAX_FUTURE_US (5 * 60 * INT64_C(1000000))   /* time may run this far ahead */

/* event_parse's answer when the event is valid but its site is not the caller's (HTTP 403). */
#define EVENT_FORBIDDEN (-2)

/* What validation needs from the tenant's master data and the caller's key. Lookups return
 * 1 when found, 0 when not. Out-pointers stay valid while md does. */
typedef struct {
    int64_t now_us;                 /* wall clock, for "not more than 5 minutes ahead" */
    const char *caller_party;       /* the ingest key's party; NULL for an admin key */
    void *md;
    int (*site_party)(void *md, const char *site, const char **party);
    int (*party_exists)(void *md, const char *party);
    int (*material)(void *md, const char *code, double *density_kg_m3 /* NAN: none */);
    /* product: its mass per unit (NAN when unknown) and its single material (NULL when the
     * bill of materials has several). */
    int (*product)(void *md, const char *code, double *mass_kg, const char **material);
} event_ctx_t;

/* A validated event. Strings point into json (owned by the event); free with event_free. */
typedef struct {
    char *id;                 /* owned */
    int id_derived;           /* id was absent: hex SHA-256 of the canonical bytes without id */
    event_type_t type;
    int64_t time_us;          /* UTC microseconds since the Unix epoch */
    const char *time_raw;     /* as submitted, with its offset */
    const char *site, *from_site, *to_site, *material, *operation;
    const char *item, *lot, *product, *corrects;
    char ewc[7];              /* six digits, "" when absent */
    int hazardous;            /* from the List of Waste entry */
    int has_quantity;
    double quantity_kg;       /* quantity converted to kg (0 when has_quantity is 0) */
    cJSON *json;              /* the normalised event as accepted, server fields removed */
    buf_t canon;              /* RFC 8785 canonical bytes of json */
    char *aux;                /* owned: holds time_raw and a material taken from the product */
} event_t;

/* Splits a request body into a cJSON array of event objects: a JSON object, a JSON array or,
 * with ndjson set, one object per line. Returns 0, or an HTTP status (400 malformed JSON,
 * 413 more than EVENT_MAX_PER_REQUEST events, 422 an element that is not an object) with the
 * reason in errs. *out is owned by the caller (cJSON_Delete). Duplicate member names in an
 * object are refused with 400. */
int event_body_split(const char *body, size_t len, int ndjson, cJSON **out, errlist_t *errs);

/* Validates and normalises one event object (obj is not modified). On success returns 0 and
 * fills ev (the caller frees it with event_free); on failure returns -1 and adds every
 * problem found to errs with this index, ev left empty. A valid event whose site belongs to
 * another party than ctx->caller_party returns EVENT_FORBIDDEN (error on "site"); an event
 * both invalid and forbidden returns -1. ev->material may come from the product's bill of
 * materials when the event names none (then it points into ev->aux, not json). */
int event_parse(const cJSON *obj, int index, const event_ctx_t *ctx, event_t *ev, errlist_t *errs);
void event_free(event_t *ev);

/* Parses an RFC 3339 time with offset into UTC microseconds. 0 or -1. */
int event_parse_time(const char *s, int64_t *us);
/* Formats UTC microseconds as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (fraction trimmed). */
void event_format_time(int64_t us, char out[40]);

#endif

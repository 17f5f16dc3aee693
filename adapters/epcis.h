/* epcis — GS1 EPCIS 2.0 documents (JSON / JSON-LD) into canonical circa events: a pure
 * mapping, no I/O. docs/EPCIS.md is the mapping table. */
#ifndef CIRCA_EPCIS_H
#define CIRCA_EPCIS_H
#include <cjson/cJSON.h>

#include "errlist.h"

/* The circa extension namespace: keys "<prefix>:ewc", ":operation", ":material", ":type"
 * where <prefix> is bound to this IRI in the document's @context ("circa" when unbound). */
#define EPCIS_CIRCA_NS "https://circa.example/ns/"

/* Resolves identifiers (SGLN, PGLN, GLN URNs …) to circa codes. Each returns the code (valid
 * while the mapping runs) or NULL when no site / party lists that identifier. */
typedef struct {
    void *ud;
    const char *(*site)(void *ud, const char *identifier);
    const char *(*party)(void *ud, const char *identifier);
} epcis_places_t;

/* The mapping of one document. events is a cJSON array owned by the struct until the caller
 * takes it (set it to NULL); origin[i] is the index in eventList of events[i]. */
typedef struct {
    cJSON *events;
    int *origin;
    int n, cap;
} epcis_mapped_t;

/* 0 when doc is an EPCISDocument with an epcisBody.eventList array; else -1 and why in errs
 * (index -1). */
int epcis_doc_check(const cJSON *doc, errlist_t *errs);

/* Every identifier the document's events name as readPoint, bizLocation, source or
 * destination, plus the GLN form (extension 0) of each SGLN, without repeats. The caller
 * deletes the returned array of strings. */
cJSON *epcis_identifiers(const cJSON *doc);

/* Maps every event of doc. Returns 0, or -1 with every problem in errs (index = position in
 * eventList, field relative to that event); out is filled either way and must be freed. */
int epcis_map(const cJSON *doc, const epcis_places_t *pl, epcis_mapped_t *out, errlist_t *errs);
void epcis_mapped_free(epcis_mapped_t *m);

/* The short CBV name of a bizStep or disposition given as a bare word, a GS1 Web URI
 * (https://ref.gs1.org/cbv/BizStep-shipping) or a URN (urn:epcglobal:cbv:bizstep:shipping);
 * other values are returned as they are. Points into s. */
const char *epcis_cbv_short(const char *s);

/* The canonical type a CBV bizStep (short name) maps to; "observed" for steps without flow
 * meaning and for unknown steps. disposition may be NULL. */
const char *epcis_bizstep_type(const char *bizstep, const char *disposition);

/* circa's unit for a UN/CEFACT code (KGM -> "kg"), NULL when it is not a mass or volume. */
const char *epcis_unit(const char *uom);

/* GTIN-14 (14 digits) of an SGTIN / LGTIN / SGTIN pattern URN, into out[15]; 0 or -1. */
int epcis_gtin14(const char *epc, char out[15]);

#endif

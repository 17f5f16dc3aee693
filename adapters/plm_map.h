/* plm_map — turns a PLM source's document into product master data: the Asset Administration
 * Shell v3 shape (submodels with a bill of material / material composition) or any JSON
 * through a mapping of JSON pointers. Pure: no I/O, so the poller and the webhook share it. */
#ifndef CIRCA_PLM_MAP_H
#define CIRCA_PLM_MAP_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "buf.h"

typedef struct plm_map plm_map_t;

/* source is the configuration's "source" object ("type", "mapping", "semantic_id"). */
plm_map_t *plm_map_new(const cJSON *source, char *err, size_t errlen);
void plm_map_free(plm_map_t *m);
/* Query parameter that carries the cursor of a "json" source (default "modified_since"). */
const char *plm_map_cursor_param(const plm_map_t *m);
int plm_map_is_aas(const plm_map_t *m);

typedef struct {
    cJSON *products;     /* [{"code", …product fields present in the source}] all valid */
    cJSON *materials;    /* [{"code", "name"}]: every material the bills name, once each */
    char *cursor;        /* the document's next cursor (json: mapping "cursor"; aas: paging) */
    int rejected;        /* items left out, each explained in reasons */
    buf_t reasons;       /* "item 3: status: unknown value 'x'; …" */
} plm_batch_t;

/* Maps doc into out (which the caller frees with plm_batch_free, also on failure). Returns 0,
 * or -1 when doc does not have the source's shape at all (err says why). */
int plm_map_apply(const plm_map_t *m, const cJSON *doc, plm_batch_t *out, char *err,
                  size_t errlen);
void plm_batch_free(plm_batch_t *b);

/* RFC 6901 JSON pointer ("" is the document itself); NULL when absent. */
const cJSON *plm_map_pointer(const cJSON *doc, const char *ptr);

#endif

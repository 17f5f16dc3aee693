/* plm — the PLM adapter: polls a PLM REST source (AAS v3 or mapped JSON) for parts, bills of
 * material and lifecycle status, incrementally (cursor, ETag → 304), with timeouts and
 * back-off, and writes them as product master data; a signed webhook applies pushed changes
 * the same way. Polling state lives in plm_source (schema/011) so a restart resumes. */
#ifndef CIRCA_PLM_H
#define CIRCA_PLM_H
#include <cjson/cJSON.h>
#include <stddef.h>

#include "app.h"
#include "store.h"

/* Starts one instance from its configuration ({"name", "kind": "plm", "tenant", "source":
 * {"type", "url", "interval_s", "timeout_s", "headers"?, "mapping"?, …},
 * "webhook_secret_file"?}; see docs/ADAPTERS.md). Reads the secret file now. Returns 0 with
 * *handle, or -1 with err. */
int plm_start(app_t *app, const cJSON *conf, void **handle, char *err, size_t errlen);
/* Cancels the transfer in flight, waits for its store transactions, frees the instance, then
 * calls done(arg) (perhaps before returning). */
void plm_stop(void *handle, void (*done)(void *), void *arg);

/* Registers POST /v1/adapters/{name}/webhook. Also the stop-gap direct start: when
 * CIRCA_PLM_CONFIG names configuration files (separated by ':'), they are started here and
 * stopped when circad stops, for as long as the adapters module does not load them. */
void plm_register(app_t *app);
extern const store_stmt_t plm_stmts[];

#endif

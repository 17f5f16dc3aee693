/* plm_fixture — a PLM REST source for tests: a plain-socket HTTP server on 127.0.0.1 in a
 * thread of the test, answering each path from a scripted sequence of recorded responses
 * (files "status\nHeader: value\n…\n\nbody"), with conditional GETs and a hanging answer. */
#ifndef CIRCA_PLM_FIXTURE_H
#define CIRCA_PLM_FIXTURE_H
#include <stddef.h>

typedef struct plmfx plmfx_t;

/* Serves files of dir (e.g. "tests/data/plm") on a free port. */
plmfx_t *plmfx_start(const char *dir);
int plmfx_port(const plmfx_t *fx);
/* Request k to path (query ignored) is answered with files[min(k, n-1)]; the name "hang"
 * answers nothing and keeps the connection open (the client's timeout ends it). A file with
 * an ETag header answers 304 to an If-None-Match that matches it. */
void plmfx_route(plmfx_t *fx, const char *path, const char *const *files, int n);
/* Requests seen on path so far, and 304s answered there. */
int plmfx_count(plmfx_t *fx, const char *path);
int plmfx_count_304(plmfx_t *fx, const char *path);
/* Request k's target (path and query) and If-None-Match ("" when none). 0, or -1 when
 * there was no such request. */
int plmfx_request(plmfx_t *fx, const char *path, int k, char *target, size_t tlen, char *inm,
                  size_t ilen);
void plmfx_stop(plmfx_t *fx);

#endif

/* harness — integration test support: runs circad as a child, a blocking HTTP client,
 * libpq row counts, tenant/master-data/key fixtures and JSON assertions (cmocka). */
#ifndef CIRCA_TEST_HARNESS_H
#define CIRCA_TEST_HARNESS_H
#include <stddef.h>
#include <sys/types.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>

/* ---- process ------------------------------------------------------------------------------ */

/* Reads the environment (CIRCA_TEST_DB is required: without it, prints why and exits 1),
 * initialises libcurl and installs the atexit and SIGINT/SIGTERM/SIGABRT handlers that kill
 * every child the harness started. name names the log file: $CIRCA_DATA_DIR/test-logs/<name>.log */
void th_init(const char *name);
const char *th_db_url(void);         /* CIRCA_TEST_DB */
const char *th_bin(void);            /* CIRCA_BIN, default "bin" */
int th_valgrind(void);               /* CIRCA_VALGRIND=1 */

typedef struct {
    pid_t pid;                       /* 0 when not running */
    int port;
    char base[64];                   /* "http://127.0.0.1:PORT" */
    char log[512];                   /* stderr of circad */
    char *extra_env[8];              /* "NAME=value" entries added to circad's environment */
} th_daemon_t;

/* A free TCP port on 127.0.0.1 (bind port 0, read it back, close). */
int th_free_port(void);
/* Starts circad (under valgrind with CIRCA_VALGRIND=1) on a free port, stderr appended to
 * d->log, and waits (bounded) until /readyz answers 200. Fails the test otherwise. */
void th_daemon_start(th_daemon_t *d);
/* Starts circad without waiting for readiness (for tests that expect it not to be ready). */
void th_daemon_spawn(th_daemon_t *d);
/* Polls /readyz until 200 or timeout_s; 0 when ready, -1 when not or the child died. */
int th_daemon_wait_ready(th_daemon_t *d, double timeout_s);
/* SIGTERM, waitpid (SIGKILL after 10 s, longer under valgrind); returns the exit status
 * (128+signal when killed by a signal). */
int th_daemon_stop(th_daemon_t *d);
/* SIGKILL and reap. */
void th_daemon_kill9(th_daemon_t *d);
/* 1 while the child has not exited. */
int th_daemon_alive(th_daemon_t *d);

/* Runs "$CIRCA_BIN/circa args..." (NULL-terminated) with DATABASE_URL=CIRCA_TEST_DB; stdout
 * (trimmed) into out. Returns the exit status, or -1 when it could not run. */
int th_cli(char *out, size_t outlen, const char *arg, ...) __attribute__((sentinel));
/* Runs a shell-free command (argv NULL-terminated); returns its exit status. */
int th_run(char *const argv[]);
/* scripts/pg.sh stop|start on the test cluster (CIRCA_DATA_DIR, CIRCA_PG_PORT required). */
int th_pg(const char *what);

/* ---- HTTP ---------------------------------------------------------------------------------- */

typedef struct {
    long status;                     /* 0 when the request failed at transport level */
    char *body;                      /* NUL-terminated, owned */
    size_t len;
    char content_type[128];
    char retry_after[64];
    char location[512];
    char request_id[128];
    char error[256];                 /* curl's message when status is 0 */
    cJSON *json;                     /* parsed body, NULL when not JSON */
} th_resp_t;

typedef struct th_http th_http_t;
/* One CURL easy handle, reused so the connection is kept alive. Not shared between threads. */
th_http_t *th_http_new(void);
void th_http_free(th_http_t *h);
/* method "GET"/"POST"/...; url absolute or a path appended to base; key NULL for no
 * Authorization header; ctype NULL for none. Returns r->status. */
long th_http(th_http_t *h, const char *base, const char *method, const char *url,
             const char *key, const char *ctype, const char *body, size_t len, th_resp_t *r);
void th_resp_free(th_resp_t *r);

/* Shortcuts on a process-wide client against the daemon of th_use(). */
void th_use(const th_daemon_t *d);
long th_get(const char *path, const char *key, th_resp_t *r);
long th_post(const char *path, const char *key, const char *json_body, th_resp_t *r);
long th_post_ct(const char *path, const char *key, const char *ctype, const char *body,
                size_t len, th_resp_t *r);
/* The status of GET /healthz on a fresh request. */
long th_healthz(void);
/* Percent-encodes s for a URL path segment (RFC 3986 unreserved kept). Caller frees. */
char *th_pct_encode(const char *s);

/* ---- database ----------------------------------------------------------------------------- */

/* A blocking connection to CIRCA_TEST_DB (reconnected when broken). */
PGconn *th_db(void);
/* Runs a parameterised query whose first row's first column is an integer; -1 on error. */
long th_db_long(const char *sql, int nparams, const char *const *params);
/* First row's first column as a string into out; -1 on error or no row. */
int th_db_text(const char *sql, int nparams, const char *const *params, char *out, size_t outlen);
long th_event_count(const char *tenant);
long th_event_count_id(const char *tenant, const char *id);

/* ---- fixtures ------------------------------------------------------------------------------ */

typedef struct {
    char id[96];                     /* "t-<name>-<pid>" */
    char admin_key[256];
    char party[64], site[64];        /* "P1", "S1" (created by th_tenant_setup) */
} th_tenant_t;

/* Creates tenant t-<name>-<pid> with `circa tenants create` and keeps its admin key. */
void th_tenant_create(th_tenant_t *t, const char *name);
/* th_tenant_create plus party P1 with site S1 and materials PET (density 1380 kg/m3) and
 * MIX (no density), all through the API. */
void th_tenant_setup(th_tenant_t *t, const char *name);
void th_party_create(const th_tenant_t *t, const char *code);
void th_site_create(const th_tenant_t *t, const char *code, const char *party);
void th_material_create(const th_tenant_t *t, const char *code, double density_kg_m3);
/* `circa keys create`; the key into out (fails the test when none is printed). */
void th_key_create(const th_tenant_t *t, const char *party, const char *role, char *out,
                   size_t outlen);
/* Key id: the middle part of circa_<id>_<secret>. */
void th_key_id(const char *key, char *out, size_t outlen);

/* ---- JSON ---------------------------------------------------------------------------------- */

/* now + offset_s as RFC 3339 in the zone UTC+tz_minutes ("Z" when 0), whole seconds. */
void th_time(char out[40], long offset_s, int tz_minutes);
/* A waste_generated event at site of PET, 150102, value/unit as given, at now+TH_EVENT_OFFSET
 * written with offset +01:00; id NULL leaves it out. Caller deletes. The time lies a little
 * ahead (well within the 5 minutes allowed) so that it is never before the master data the
 * test just created. */
#define TH_EVENT_OFFSET 2
cJSON *th_event(const char *id, const char *site, double value, const char *unit);
/* A JSON text from a template written with ' for " in which @T@ stands for the time th_event
 * uses. Caller frees. */
char *th_tpl(const char *tpl);
/* Serialises and deletes j. Caller frees. */
char *th_json_take(cJSON *j);
/* Value at a dotted path ("quantity.value", "errors.0.field"); NULL when absent. */
const cJSON *th_json_at(const cJSON *j, const char *path);
/* Fail the test unless the path holds this string / number / is present. */
#define th_assert_str(j, path, want) th_assert_str_(j, path, want, __FILE__, __LINE__)
#define th_assert_num(j, path, want) th_assert_num_(j, path, want, __FILE__, __LINE__)
#define th_assert_has(j, path) th_assert_has_(j, path, __FILE__, __LINE__)
void th_assert_str_(const cJSON *j, const char *path, const char *want, const char *file, int line);
void th_assert_num_(const cJSON *j, const char *path, double want, const char *file, int line);
void th_assert_has_(const cJSON *j, const char *path, const char *file, int line);
/* Asserts a problem+json answer of this status whose type is "/problems/<slug>" (slug NULL:
 * any type). */
#define th_assert_problem(r, st, slug) th_assert_problem_(r, st, slug, __FILE__, __LINE__)
void th_assert_problem_(const th_resp_t *r, long status, const char *slug, const char *file,
                        int line);
/* 1 when some errors[] element has this index and field. */
int th_problem_has_error(const th_resp_t *r, int index, const char *field);

#endif

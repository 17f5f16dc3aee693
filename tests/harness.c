/* harness — integration test support: circad as a child process, blocking HTTP (libcurl),
 * blocking libpq counts, fixtures through the CLI and the API, cJSON assertions. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "buf.h"
#include "harness.h"

extern char **environ;

#define TH_MAX_CHILDREN 16

static volatile pid_t children[TH_MAX_CHILDREN];
static char log_name[128] = "test";
static char *db_url;
static th_http_t *shared_http;
static char shared_base[64];
static PGconn *db_conn;

/* ---- child bookkeeping and cleanup ---------------------------------------------------------- */

static void child_add(pid_t pid)
{
    for (int i = 0; i < TH_MAX_CHILDREN; i++)
        if (children[i] == 0) { children[i] = pid; return; }
    kill(pid, SIGKILL);
    fail_msg("harness: more than %d children", TH_MAX_CHILDREN);
}

static void child_forget(pid_t pid)
{
    for (int i = 0; i < TH_MAX_CHILDREN; i++)
        if (children[i] == pid) children[i] = 0;
}

static void kill_children(void)
{
    for (int i = 0; i < TH_MAX_CHILDREN; i++) {
        pid_t p = children[i];
        if (p > 0) { kill(p, SIGKILL); waitpid(p, NULL, 0); children[i] = 0; }
    }
}

static void on_fatal_signal(int sig)
{
    for (int i = 0; i < TH_MAX_CHILDREN; i++)
        if (children[i] > 0) kill(children[i], SIGKILL);
    for (int i = 0; i < TH_MAX_CHILDREN; i++)   /* reap them: waitpid is async-signal-safe */
        if (children[i] > 0) waitpid(children[i], NULL, 0);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void at_exit(void)
{
    kill_children();
    if (db_conn) PQfinish(db_conn);
    db_conn = NULL;
}

void th_init(const char *name)
{
    db_url = getenv("CIRCA_TEST_DB");
    if (!db_url || !*db_url) {
        fprintf(stderr, "%s: CIRCA_TEST_DB is not set; run through scripts/test.sh or export a "
                        "libpq conninfo of a migrated circa database\n", name);
        exit(1);
    }
    snprintf(log_name, sizeof log_name, "%s", name);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(at_exit);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

const char *th_db_url(void) { return db_url; }

const char *th_bin(void)
{
    const char *b = getenv("CIRCA_BIN");
    return b && *b ? b : "bin";
}

int th_valgrind(void)
{
    const char *v = getenv("CIRCA_VALGRIND");
    return v && strcmp(v, "1") == 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- circad --------------------------------------------------------------------------------- */

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        fail_msg("harness: cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static int env_overridden(const char *entry, char *const *extra)
{
    static const char *ours[] = {"CIRCA_LISTEN=", "DATABASE_URL=", "CIRCA_LOG=",
                                 "CIRCA_LOG_FORMAT=", NULL};
    for (int i = 0; ours[i]; i++)
        if (strncmp(entry, ours[i], strlen(ours[i])) == 0) return 1;
    for (int i = 0; i < 8 && extra[i]; i++) {
        const char *eq = strchr(extra[i], '=');
        if (eq && strncmp(entry, extra[i], (size_t)(eq - extra[i]) + 1) == 0) return 1;
    }
    return 0;
}

/* environ minus what we set, plus ours and d->extra_env. Caller frees the array and the
 * first four strings. */
static char **daemon_env(const th_daemon_t *d)
{
    size_t n = 0;
    while (environ[n]) n++;
    char **env = xcalloc(n + 16, sizeof *env);
    size_t k = 0;
    buf_t b = BUF_INIT;
    buf_printf(&b, "CIRCA_LISTEN=127.0.0.1:%d", d->port);
    env[k++] = buf_steal(&b);
    buf_printf(&b, "DATABASE_URL=%s", db_url);
    env[k++] = buf_steal(&b);
    env[k++] = xstrdup("CIRCA_LOG=debug");
    env[k++] = xstrdup("CIRCA_LOG_FORMAT=json");
    for (int i = 0; i < 8 && d->extra_env[i]; i++) env[k++] = d->extra_env[i];
    for (size_t i = 0; i < n; i++)
        if (!env_overridden(environ[i], d->extra_env)) env[k++] = environ[i];
    return env;
}

static void log_path(th_daemon_t *d)
{
    const char *dir = getenv("CIRCA_DATA_DIR");
    char logdir[300];
    snprintf(logdir, sizeof logdir, "%s/test-logs", dir && *dir ? dir : "/tmp");
    mkdir(logdir, 0755);
    snprintf(d->log, sizeof d->log, "%s/%s.log", logdir, log_name);
}

void th_daemon_spawn(th_daemon_t *d)
{
    if (!d->port) d->port = th_free_port();
    snprintf(d->base, sizeof d->base, "http://127.0.0.1:%d", d->port);
    log_path(d);
    int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) fail_msg("harness: cannot open %s: %s", d->log, strerror(errno));
    dprintf(fd, "---- harness: starting circad on port %d%s\n", d->port,
            th_valgrind() ? " under valgrind" : "");
    char circad[300];
    snprintf(circad, sizeof circad, "%s/circad", th_bin());
    char *vg[] = {"valgrind", "-q", "--error-exitcode=99", "--leak-check=full", circad, NULL};
    char *plain[] = {circad, NULL};
    char **argv = th_valgrind() ? vg : plain;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    char **env = daemon_env(d);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    for (int i = 0; i < 4; i++) free(env[i]);
    free(env);
    if (rc != 0) fail_msg("harness: cannot start %s: %s", argv[0], strerror(rc));
    d->pid = pid;
    child_add(pid);
}

int th_daemon_alive(th_daemon_t *d)
{
    if (d->pid <= 0) return 0;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        child_forget(d->pid);
        d->pid = 0;
        return 0;
    }
    return 1;
}

int th_daemon_wait_ready(th_daemon_t *d, double timeout_s)
{
    th_http_t *h = th_http_new();
    double end = now_s() + timeout_s;
    int ok = -1;
    while (now_s() < end && th_daemon_alive(d)) {
        th_resp_t r;
        if (th_http(h, d->base, "GET", "/readyz", NULL, NULL, NULL, 0, &r) == 200) ok = 0;
        th_resp_free(&r);
        if (ok == 0) break;
        sleep_ms(50);
    }
    th_http_free(h);
    return ok;
}

static void print_log_tail(const th_daemon_t *d)
{
    FILE *f = fopen(d->log, "r");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz > 4000 ? sz - 4000 : 0, SEEK_SET);
    char line[1024];
    fprintf(stderr, "---- tail of %s\n", d->log);
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fclose(f);
}

void th_daemon_start(th_daemon_t *d)
{
    th_daemon_spawn(d);
    if (th_daemon_wait_ready(d, th_valgrind() ? 120 : 20) != 0) {
        int alive = th_daemon_alive(d);
        print_log_tail(d);
        if (alive) th_daemon_kill9(d);
        fail_msg("circad did not become ready on port %d (%s)", d->port,
                 alive ? "/readyz never answered 200" : "it exited");
    }
}

static int reap(pid_t pid, double timeout_s, int *status)
{
    double end = now_s() + timeout_s;
    while (now_s() < end) {
        if (waitpid(pid, status, WNOHANG) == pid) return 0;
        sleep_ms(20);
    }
    return -1;
}

static int exit_code(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

int th_daemon_stop(th_daemon_t *d)
{
    if (d->pid <= 0) return -1;
    int st = 0;
    kill(d->pid, SIGTERM);
    if (reap(d->pid, th_valgrind() ? 60 : 10, &st) != 0) {
        fprintf(stderr, "harness: circad pid %d ignored SIGTERM; SIGKILL\n", (int)d->pid);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
    }
    child_forget(d->pid);
    d->pid = 0;
    int code = exit_code(st);
    if (code != 0) print_log_tail(d);
    return code;
}

void th_daemon_kill9(th_daemon_t *d)
{
    if (d->pid <= 0) return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    child_forget(d->pid);
    d->pid = 0;
}

/* ---- other processes ------------------------------------------------------------------------ */

static int spawn_capture(char *const argv[], char *const env[], char *out, size_t outlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) { close(p[0]); return -1; }
    child_add(pid);
    buf_t b = BUF_INIT;
    char chunk[4096];
    ssize_t n;
    while ((n = read(p[0], chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) buf_append(&b, chunk, (size_t)n);
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    child_forget(pid);
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' ')) b.data[--b.len] = 0;
    if (out && outlen) snprintf(out, outlen, "%s", b.len ? b.data : "");
    buf_free(&b);
    return exit_code(st);
}

int th_cli(char *out, size_t outlen, const char *arg, ...)
{
    char *argv[32];
    char circa[300];
    snprintf(circa, sizeof circa, "%s/circa", th_bin());
    int n = 0;
    argv[n++] = circa;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *)) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    setenv("DATABASE_URL", db_url, 1);
    return spawn_capture(argv, environ, out, outlen);
}

int th_run(char *const argv[])
{
    char out[4096];
    int rc = spawn_capture(argv, environ, out, sizeof out);
    if (out[0]) fprintf(stderr, "%s\n", out);
    return rc;
}

int th_pg(const char *what)
{
    if (!getenv("CIRCA_DATA_DIR") || !getenv("CIRCA_PG_PORT"))
        fail_msg("CIRCA_DATA_DIR and CIRCA_PG_PORT must name the test cluster");
    char *argv[] = {"scripts/pg.sh", (char *)what, NULL};
    return th_run(argv);
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

struct th_http {
    CURL *c;
};

th_http_t *th_http_new(void)
{
    th_http_t *h = xcalloc(1, sizeof *h);
    h->c = curl_easy_init();
    if (!h->c) fail_msg("harness: curl_easy_init failed");
    return h;
}

void th_http_free(th_http_t *h)
{
    if (!h) return;
    curl_easy_cleanup(h->c);
    free(h);
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    snprintf(out, outlen, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    th_resp_t *r = ud;
    size_t len = sz * n;
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {  /* a new response (e.g. after 100) */
        r->retry_after[0] = r->location[0] = r->request_id[0] = 0;
    }
    header_value(p, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    header_value(p, len, "Location", r->location, sizeof r->location);
    header_value(p, len, "X-Request-Id", r->request_id, sizeof r->request_id);
    return len;
}

static struct curl_slist *request_headers(const char *key, const char *ctype)
{
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    buf_t b = BUF_INIT;
    if (key) {
        buf_printf(&b, "Authorization: Bearer %s", key);
        hl = curl_slist_append(hl, b.data);
        buf_reset(&b);
    }
    buf_printf(&b, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    hl = curl_slist_append(hl, b.data);
    buf_free(&b);
    return hl;
}

static void set_method(CURL *c, const char *method, const char *body, size_t len)
{
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        return;
    }
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    if (strcmp(method, "POST") != 0) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
}

long th_http(th_http_t *h, const char *base, const char *method, const char *url,
             const char *key, const char *ctype, const char *body, size_t len, th_resp_t *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = h->c;
    curl_easy_reset(c);
    buf_t full = BUF_INIT, out = BUF_INIT;
    if (strncmp(url, "http", 4) == 0) buf_puts(&full, url);
    else buf_printf(&full, "%s%s", base, url);
    struct curl_slist *hl = request_headers(key, ctype);
    curl_easy_setopt(c, CURLOPT_URL, full.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, th_valgrind() ? 180L : 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    set_method(c, method, body, len);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (cc != CURLE_OK) {
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
        /* A server may answer (413) and close before reading the whole body. */
        if (cc != CURLE_SEND_ERROR && cc != CURLE_RECV_ERROR) r->status = 0;
    }
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) snprintf(r->content_type, sizeof r->content_type, "%s", ct);
    curl_slist_free_all(hl);
    buf_free(&full);
    r->len = out.len;
    r->body = out.len ? buf_steal(&out) : xstrdup("");
    r->json = cJSON_ParseWithLength(r->body, r->len);
    return r->status;
}

void th_resp_free(th_resp_t *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    r->body = NULL;
    r->json = NULL;
}

void th_use(const th_daemon_t *d)
{
    if (!shared_http) shared_http = th_http_new();
    snprintf(shared_base, sizeof shared_base, "%s", d->base);
}

long th_get(const char *path, const char *key, th_resp_t *r)
{
    return th_http(shared_http, shared_base, "GET", path, key, NULL, NULL, 0, r);
}

long th_post(const char *path, const char *key, const char *json_body, th_resp_t *r)
{
    return th_post_ct(path, key, "application/json", json_body, strlen(json_body), r);
}

long th_post_ct(const char *path, const char *key, const char *ctype, const char *body,
                size_t len, th_resp_t *r)
{
    return th_http(shared_http, shared_base, "POST", path, key, ctype, body, len, r);
}

long th_healthz(void)
{
    th_http_t *h = th_http_new();
    th_resp_t r;
    long st = th_http(h, shared_base, "GET", "/healthz", NULL, NULL, NULL, 0, &r);
    th_resp_free(&r);
    th_http_free(h);
    return st;
}

char *th_pct_encode(const char *s)
{
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            buf_putc(&b, (char)*p);
        else
            buf_printf(&b, "%%%02X", *p);
    }
    return buf_steal(&b);
}

/* ---- database ------------------------------------------------------------------------------- */

PGconn *th_db(void)
{
    if (db_conn && PQstatus(db_conn) == CONNECTION_OK) return db_conn;
    if (db_conn) PQfinish(db_conn);
    db_conn = PQconnectdb(db_url);
    if (PQstatus(db_conn) != CONNECTION_OK)
        fail_msg("harness: cannot connect to CIRCA_TEST_DB: %s", PQerrorMessage(db_conn));
    return db_conn;
}

static PGresult *db_query(const char *sql, int nparams, const char *const *params)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res = PQexecParams(th_db(), sql, nparams, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) return res;
        fprintf(stderr, "harness: query failed: %s", PQerrorMessage(db_conn));
        PQclear(res);
        if (PQstatus(db_conn) == CONNECTION_OK) break;
    }
    return NULL;
}

long th_db_long(const char *sql, int nparams, const char *const *params)
{
    PGresult *res = db_query(sql, nparams, params);
    if (!res) return -1;
    long v = -1;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

int th_db_text(const char *sql, int nparams, const char *const *params, char *out, size_t outlen)
{
    PGresult *res = db_query(sql, nparams, params);
    if (!res) return -1;
    int rc = -1;
    if (PQntuples(res) > 0) {
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
        rc = 0;
    }
    PQclear(res);
    return rc;
}

long th_event_count(const char *tenant)
{
    const char *p[] = {tenant};
    return th_db_long("SELECT count(*) FROM event WHERE tenant_id = $1", 1, p);
}

long th_event_count_id(const char *tenant, const char *id)
{
    const char *p[] = {tenant, id};
    return th_db_long("SELECT count(*) FROM event WHERE tenant_id = $1 AND id = $2", 2, p);
}

/* ---- fixtures ------------------------------------------------------------------------------- */

/* Copies the first "circa_..." token of s into out; 0 or -1. */
static int find_key(const char *s, char *out, size_t outlen)
{
    const char *k = strstr(s, "circa_");
    if (!k) return -1;
    size_t n = strcspn(k, " \t\r\n\"',");
    if (n >= outlen) return -1;
    memcpy(out, k, n);
    out[n] = 0;
    return 0;
}

void th_tenant_create(th_tenant_t *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "t-%s-%d", name, (int)getpid());
    char out[2048];
    int rc = th_cli(out, sizeof out, "tenants", "create", t->id, NULL);
    if (rc != 0 || find_key(out, t->admin_key, sizeof t->admin_key) != 0)
        fail_msg("circa tenants create %s: exit %d, output '%s'", t->id, rc, out);
}

static void post_master(const th_tenant_t *t, const char *path, cJSON *doc)
{
    char *body = th_json_take(doc);
    th_resp_t r;
    long st = th_post(path, t->admin_key, body, &r);
    if (st != 201 && st != 200)
        fail_msg("POST %s %s -> %ld %s", path, body, st, r.body ? r.body : "");
    th_resp_free(&r);
    free(body);
}

void th_party_create(const th_tenant_t *t, const char *code)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddStringToObject(j, "name", code);
    const char *roles[] = {"generator", "recycler"};
    cJSON_AddItemToObject(j, "roles", cJSON_CreateStringArray(roles, 2));
    cJSON_AddStringToObject(j, "country", "DE");
    post_master(t, "/v1/parties", j);
}

void th_site_create(const th_tenant_t *t, const char *code, const char *party)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddStringToObject(j, "party", party);
    cJSON_AddStringToObject(j, "name", code);
    cJSON_AddStringToObject(j, "kind", "factory");
    cJSON_AddStringToObject(j, "country", "DE");
    post_master(t, "/v1/sites", j);
}

void th_material_create(const th_tenant_t *t, const char *code, double density_kg_m3)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "code", code);
    cJSON_AddStringToObject(j, "name", code);
    cJSON_AddStringToObject(j, "category", "plastic");
    cJSON_AddBoolToObject(j, "hazardous", 0);
    cJSON_AddBoolToObject(j, "renewable", 0);
    if (!isnan(density_kg_m3)) cJSON_AddNumberToObject(j, "density_kg_m3", density_kg_m3);
    post_master(t, "/v1/materials", j);
}

void th_tenant_setup(th_tenant_t *t, const char *name)
{
    th_tenant_create(t, name);
    snprintf(t->party, sizeof t->party, "P1");
    snprintf(t->site, sizeof t->site, "S1");
    th_party_create(t, t->party);
    th_site_create(t, t->site, t->party);
    th_material_create(t, "PET", 1380);
    th_material_create(t, "MIX", NAN);
}

void th_key_create(const th_tenant_t *t, const char *party, const char *role, char *out,
                   size_t outlen)
{
    char text[2048];
    int rc = party ? th_cli(text, sizeof text, "keys", "create", "--tenant", t->id, "--party",
                            party, "--role", role, NULL)
                   : th_cli(text, sizeof text, "keys", "create", "--tenant", t->id, "--role",
                            role, NULL);
    if (rc != 0 || find_key(text, out, outlen) != 0)
        fail_msg("circa keys create --tenant %s --role %s: exit %d, output '%s'", t->id, role,
                 rc, text);
}

void th_key_id(const char *key, char *out, size_t outlen)
{
    const char *p = key + strlen("circa_");
    size_t n = strcspn(p, "_");
    snprintf(out, outlen, "%.*s", (int)n, p);
}

/* ---- JSON ----------------------------------------------------------------------------------- */

void th_time(char out[40], long offset_s, int tz_minutes)
{
    time_t t = time(NULL) + offset_s + (time_t)tz_minutes * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    int a = abs(tz_minutes);
    if (tz_minutes == 0) snprintf(out + n, 40 - n, "Z");
    else snprintf(out + n, 40 - n, "%c%02d:%02d", tz_minutes < 0 ? '-' : '+', a / 60, a % 60);
}

cJSON *th_event(const char *id, const char *site, double value, const char *unit)
{
    char when[40];
    th_time(when, TH_EVENT_OFFSET, 60);
    cJSON *e = cJSON_CreateObject();
    if (id) cJSON_AddStringToObject(e, "id", id);
    cJSON_AddStringToObject(e, "type", "waste_generated");
    cJSON_AddStringToObject(e, "time", when);
    cJSON_AddStringToObject(e, "site", site);
    cJSON_AddStringToObject(e, "material", "PET");
    cJSON_AddStringToObject(e, "ewc", "150102");
    cJSON *q = cJSON_AddObjectToObject(e, "quantity");
    cJSON_AddNumberToObject(q, "value", value);
    cJSON_AddStringToObject(q, "unit", unit);
    return e;
}

char *th_tpl(const char *tpl)
{
    char when[40];
    th_time(when, TH_EVENT_OFFSET, 60);
    buf_t b = BUF_INIT;
    buf_puts(&b, "");
    for (const char *p = tpl; *p; p++) {
        if (*p == '\'') buf_putc(&b, '"');
        else if (strncmp(p, "@T@", 3) == 0) buf_puts(&b, when), p += 2;
        else buf_putc(&b, *p);
    }
    return buf_steal(&b);
}

char *th_json_take(cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

const cJSON *th_json_at(const cJSON *j, const char *path)
{
    char seg[128];
    const char *p = path;
    while (j && *p) {
        size_t n = strcspn(p, ".");
        snprintf(seg, sizeof seg, "%.*s", (int)n, p);
        p += n + (p[n] == '.');
        if (cJSON_IsArray(j) && seg[0] >= '0' && seg[0] <= '9')
            j = cJSON_GetArrayItem(j, (int)strtol(seg, NULL, 10));
        else
            j = cJSON_GetObjectItemCaseSensitive(j, seg);
    }
    return j;
}

void th_assert_str_(const cJSON *j, const char *path, const char *want, const char *file, int line)
{
    const cJSON *v = th_json_at(j, path);
    if (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0) return;
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    print_error("%s: want \"%s\", got %s in %s\n", path, want,
                cJSON_IsString(v) ? v->valuestring : "(no string)", s ? s : "(no JSON)");
    free(s);
    _fail(file, line);
}

void th_assert_num_(const cJSON *j, const char *path, double want, const char *file, int line)
{
    const cJSON *v = th_json_at(j, path);
    if (cJSON_IsNumber(v) && fabs(v->valuedouble - want) <= 1e-9 * fmax(1, fabs(want))) return;
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    print_error("%s: want %g, got %s in %s\n", path, want, cJSON_IsNumber(v) ? "other" : "none",
                s ? s : "(no JSON)");
    if (cJSON_IsNumber(v)) print_error("  (got %.17g)\n", v->valuedouble);
    free(s);
    _fail(file, line);
}

void th_assert_has_(const cJSON *j, const char *path, const char *file, int line)
{
    if (th_json_at(j, path)) return;
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    print_error("%s: missing in %s\n", path, s ? s : "(no JSON)");
    free(s);
    _fail(file, line);
}

void th_assert_problem_(const th_resp_t *r, long status, const char *slug, const char *file,
                        int line)
{
    char want_type[128];
    snprintf(want_type, sizeof want_type, "/problems/%s", slug ? slug : "");
    const cJSON *type = th_json_at(r->json, "type");
    const cJSON *st = th_json_at(r->json, "status");
    int ok = r->status == status &&
             strncmp(r->content_type, "application/problem+json", 24) == 0 &&
             cJSON_IsString(type) && strncmp(type->valuestring, "/problems/", 10) == 0 &&
             (!slug || strcmp(type->valuestring, want_type) == 0) &&
             cJSON_IsNumber(st) && st->valueint == status;
    if (ok) return;
    print_error("want %ld problem+json %s, got %ld '%s' %s%s\n", status, slug ? want_type : "",
                r->status, r->content_type, r->body ? r->body : "", r->error);
    _fail(file, line);
}

int th_problem_has_error(const th_resp_t *r, int index, const char *field)
{
    const cJSON *errs = th_json_at(r->json, "errors");
    const cJSON *e;
    cJSON_ArrayForEach(e, errs) {
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(e, "index");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
        if (cJSON_IsNumber(i) && i->valueint == index && cJSON_IsString(f) &&
            strcmp(f->valuestring, field) == 0)
            return 1;
    }
    return 0;
}

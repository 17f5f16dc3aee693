/* cli_import — `circa import`: a CSV file of any size into POST /v1/events, batch by batch,
 * through a column map; rejected rows reported by line, resumable after an interruption. */
#include "cli_import.h"
#include "cli_daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "buf.h"
#include "cli_db.h"
#include "csv.h"

#define IDENTITY_BYTES (64 * 1024)
#define BATCH_MAX 10000          /* EVENT_MAX_PER_REQUEST of the daemon */

enum { TY_STRING, TY_NUMBER, TY_TIME };

typedef struct {
    char *path;                  /* dotted path into the event */
    char *column;                /* header name */
    int index;                   /* column number in the file, from the header */
    int type;
} column_t;

typedef struct {
    column_t *cols;
    int ncols;
    cJSON *base;                 /* the constants, as a partial event every row starts from */
    char decimal, thousands;     /* thousands 0: none allowed */
    char *time_format;           /* NULL: RFC 3339 as is, or YYYY-MM-DD[ hh:mm[:ss]] */
    char zone[8];                /* "Z" or "+hh:mm" for local times */
    char *id_prefix;
    int has_id;                  /* a column gives the id */
} map_t;

typedef struct {
    long line;
    size_t off, len;             /* the event's JSON in the batch arena */
    int dropped;
} pending_t;

typedef struct {
    const char *file, *map_file, *rejects_file;
    int batch, resume, dry_run, retries;
    map_t map;
    FILE *in, *rejects;
    csv_t *csv;
    off_t size;
    char identity[65];           /* hex SHA-256 of the first 64 KiB and the size */
    char state_path[PATH_MAX];
    buf_t arena;                 /* the batch's events, one JSON text after the other */
    pending_t *rows;
    int nrows;
    long read, accepted, duplicates, rejected;
    long read0;                  /* rows read before this run (a resumed import) */
    off_t batch_off;             /* where the reader stood after the batch's last row */
    long batch_line;
    CURL *curl;
    struct curl_slist *headers;
    char url[512];
    int tty;
    double t0, drawn;
} import_t;

static volatile sig_atomic_t interrupted;

static const char usage_text[] =
    "usage: circa import FILE.csv --map MAP.json [--batch N] [--resume] [--dry-run]\n"
    "                    [--rejects REJECTS.csv] [--retries N]\n"
    "Sends the rows of FILE.csv as events to circad (POST /v1/events), N per request\n"
    "(default 1000). MAP.json says which column becomes which event field (docs/IMPORT.md).\n"
    "  --resume        continue an interrupted import of the same file where it stopped\n"
    "  --dry-run       read and map every row, report the bad ones, send nothing\n"
    "  --rejects FILE  write rejected rows as CSV (line,field,message) instead of stderr\n"
    "  --retries N     attempts when circad is unavailable (default 6, with back-off)\n"
    "Exit: 0 every row stored or already there; 1 rows rejected or the import stopped;\n"
    "2 bad invocation or map. Daemon: CIRCA_URL, key: CIRCA_KEY or $CIRCA_DATA_DIR/admin.key.\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void clear_bar(const import_t *im)
{
    if (im->tty) fputs("\r\033[K", stderr);
}

/* One line on stderr, prefixed "circa import: "; returns code. */
__attribute__((format(printf, 3, 4))) static int say(const import_t *im, int code,
                                                     const char *fmt, ...)
{
    va_list ap;
    if (im) clear_bar(im);
    fputs("circa import: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static void on_signal(int sig)
{
    interrupted = sig;
}

/* Ctrl-C or SIGTERM: finish the batch in flight, save the state, stop. A second one kills. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the map ------------------------------------------------------------------------------ */

/* Sets item at a dotted path of obj, creating objects on the way. -1 when the path is empty,
 * runs through a non-object or is already set (two map entries for one field). */
static int set_path_at(cJSON *obj, const char *path, cJSON *item)
{
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (n == 0 || n > 100) return -1;
    char key[101];
    memcpy(key, path, n);
    key[n] = 0;
    cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!dot) {
        if (child) return -1;
        cJSON_AddItemToObject(obj, key, item);
        return 0;
    }
    if (!child) child = cJSON_AddObjectToObject(obj, key);
    if (!cJSON_IsObject(child)) return -1;
    return set_path_at(child, dot + 1, item);
}

/* set_path_at that frees item when it cannot be placed. */
static int set_path(cJSON *obj, const char *path, cJSON *item)
{
    int rc = set_path_at(obj, path, item);
    if (rc != 0) cJSON_Delete(item);
    return rc;
}

static int map_error(const char *file, const char *what)
{
    fprintf(stderr, "circa import: map %s: %s\n", file, what);
    return -1;
}

static int parse_type(const char *s)
{
    if (strcmp(s, "string") == 0) return TY_STRING;
    if (strcmp(s, "number") == 0) return TY_NUMBER;
    if (strcmp(s, "time") == 0) return TY_TIME;
    return -1;
}

/* "Z", "UTC", "+hh:mm" or "-hh:mm" into zone; -1 otherwise. */
static int parse_zone(const char *s, char zone[8])
{
    if (strcmp(s, "Z") == 0 || strcmp(s, "UTC") == 0) {
        snprintf(zone, 8, "Z");
        return 0;
    }
    if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return -1;
    if (strspn(s + 1, "0123456789") != 2 || strspn(s + 4, "0123456789") != 2) return -1;
    if ((s[1] - '0') * 10 + (s[2] - '0') > 14 || (s[4] - '0') * 10 + (s[5] - '0') > 59) return -1;
    snprintf(zone, 8, "%s", s);
    return 0;
}

/* A time_format holds YYYY, MM, DD, hh, mm, ss and literal characters; it needs a date. */
static int valid_time_format(const char *f)
{
    return strstr(f, "YYYY") && strstr(f, "MM") && strstr(f, "DD") && strlen(f) < 64;
}

/* "columns": {"path": "Header name"} into map->cols, types from "types". */
static int load_columns(map_t *m, const cJSON *cols, const cJSON *types, const char *file)
{
    if (!cJSON_IsObject(cols)) return map_error(file, "\"columns\" must be an object of "
                                                      "\"event.path\": \"Column name\"");
    m->ncols = cJSON_GetArraySize(cols);
    m->cols = xcalloc((size_t)m->ncols + 1, sizeof *m->cols);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cols) {
        if (!cJSON_IsString(c) || !c->valuestring[0])
            return map_error(file, "every \"columns\" value must be a column name");
        column_t *col = &m->cols[i++];
        col->path = xstrdup(c->string);
        col->column = xstrdup(c->valuestring);
        col->type = strcmp(c->string, "time") == 0 ? TY_TIME : TY_STRING;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(types, c->string);
        if (t && (!cJSON_IsString(t) || (col->type = parse_type(t->valuestring)) < 0))
            return map_error(file, "a \"types\" value must be \"string\", \"number\" or \"time\"");
        if (set_path(m->base, col->path, cJSON_CreateNull()) != 0)
            return map_error(file, "a \"columns\" path is empty, repeated or runs into another");
        m->has_id |= strcmp(col->path, "id") == 0;
    }
    return 0;
}

/* Every "types" key must name a mapped column: a typo must not pass silently. */
static int check_types(const map_t *m, const cJSON *types, const char *file)
{
    if (types && !cJSON_IsObject(types)) return map_error(file, "\"types\" must be an object");
    const cJSON *t;
    cJSON_ArrayForEach(t, types) {
        int found = 0;
        for (int i = 0; i < m->ncols; i++) found |= strcmp(m->cols[i].path, t->string) == 0;
        if (!found) {
            char msg[200];
            snprintf(msg, sizeof msg, "\"types\" names '%.100s', which \"columns\" does not map",
                     t->string);
            return map_error(file, msg);
        }
    }
    return 0;
}

static int load_consts(map_t *m, const cJSON *consts, const char *file)
{
    if (consts && !cJSON_IsObject(consts)) return map_error(file, "\"const\" must be an object");
    const cJSON *c;
    cJSON_ArrayForEach(c, consts) {
        if (set_path(m->base, c->string, cJSON_Duplicate(c, 1)) != 0)
            return map_error(file, "a \"const\" path is empty, mapped twice or runs into another");
    }
    return 0;
}

/* A one-character option ("decimal", "thousands") into *out; -1 when not allowed. */
static int load_char(const cJSON *v, const char *allowed, char *out)
{
    if (!v) return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 1 || !strchr(allowed, v->valuestring[0]))
        return -1;
    *out = v->valuestring[0];
    return 0;
}

static int load_options(map_t *m, const cJSON *root, const char *file)
{
    if (load_char(cJSON_GetObjectItemCaseSensitive(root, "decimal"), ".,", &m->decimal) != 0)
        return map_error(file, "\"decimal\" must be \".\" or \",\"");
    if (load_char(cJSON_GetObjectItemCaseSensitive(root, "thousands"), ".,' ", &m->thousands)
        || m->thousands == m->decimal)
        return map_error(file, "\"thousands\" must be \".\", \",\", \"'\" or \" \", not the decimal");
    const cJSON *tz = cJSON_GetObjectItemCaseSensitive(root, "time_zone");
    if (tz && (!cJSON_IsString(tz) || parse_zone(tz->valuestring, m->zone) != 0))
        return map_error(file, "\"time_zone\" must be \"Z\", \"UTC\" or an offset like \"+01:00\"");
    const cJSON *tf = cJSON_GetObjectItemCaseSensitive(root, "time_format");
    if (tf && (!cJSON_IsString(tf) || !valid_time_format(tf->valuestring)))
        return map_error(file, "\"time_format\" must hold YYYY, MM and DD (and hh, mm, ss)");
    if (tf) m->time_format = xstrdup(tf->valuestring);
    const cJSON *ip = cJSON_GetObjectItemCaseSensitive(root, "id_prefix");
    if (ip && (!cJSON_IsString(ip) || !ip->valuestring[0] || strlen(ip->valuestring) > 64 ||
               strpbrk(ip->valuestring, " \t\r\n")))
        return map_error(file, "\"id_prefix\" must be 1-64 characters without spaces");
    m->id_prefix = xstrdup(ip ? ip->valuestring : "csv");
    return 0;
}

static int check_keys(const cJSON *root, const char *file)
{
    static const char *const known[] = {"columns", "const", "types", "decimal", "thousands",
                                        "time_zone", "time_format", "id_prefix", NULL};
    const cJSON *k;
    cJSON_ArrayForEach(k, root) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= strcmp(known[i], k->string) == 0;
        if (!ok) {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown key '%.100s' (known: columns, const, types, "
                     "decimal, thousands, time_zone, time_format, id_prefix)", k->string);
            return map_error(file, msg);
        }
    }
    return 0;
}

static char *read_small_file(const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= max) buf_append(&b, chunk, n);
    fclose(f);
    if (!b.data) buf_puts(&b, "");
    return buf_steal(&b);
}

/* Reads and checks MAP.json; every problem is one line on stderr and -1. */
static int map_load(map_t *m, const char *file)
{
    m->decimal = '.';
    snprintf(m->zone, sizeof m->zone, "Z");
    m->base = cJSON_CreateObject();
    char *text = read_small_file(file, 1 << 20);
    if (!text) return map_error(file, strerror(errno));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return map_error(file, "not a JSON object");
    }
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "types");
    int rc = check_keys(root, file);
    if (rc == 0) rc = load_columns(m, cJSON_GetObjectItemCaseSensitive(root, "columns"), types, file);
    if (rc == 0) rc = check_types(m, types, file);
    if (rc == 0) rc = load_consts(m, cJSON_GetObjectItemCaseSensitive(root, "const"), file);
    if (rc == 0) rc = load_options(m, root, file);
    cJSON_Delete(root);
    return rc;
}

static void map_free(map_t *m)
{
    for (int i = 0; i < m->ncols; i++) {
        free(m->cols[i].path);
        free(m->cols[i].column);
    }
    free(m->cols);
    cJSON_Delete(m->base);
    free(m->time_format);
    free(m->id_prefix);
}

/* ---- rows into events --------------------------------------------------------------------- */

/* Finds each mapped column in the header row; -1 (one line) when one is missing. */
static int map_header(map_t *m, const csv_row_t *h, const char *file)
{
    for (int i = 0; i < m->ncols; i++) {
        m->cols[i].index = -1;
        for (int j = 0; j < h->n && m->cols[i].index < 0; j++) {
            const char *name = h->field[j];
            size_t n = h->len[j];
            while (*name == ' ') name++, n--;     /* spreadsheets pad headers */
            while (n && name[n - 1] == ' ') n--;
            if (strlen(m->cols[i].column) == n && strncmp(name, m->cols[i].column, n) == 0)
                m->cols[i].index = j;
        }
        if (m->cols[i].index < 0) {
            fprintf(stderr, "circa import: %s: the header has no column '%s' (mapped to %s)\n",
                    file, m->cols[i].column, m->cols[i].path);
            return -1;
        }
    }
    return 0;
}

/* A number as the map says: decimal separator, optional thousands separator, spaces ignored.
 * Anything else is an error rather than a silent misreading ("1.234" with decimal ","). */
static int to_number(const map_t *m, const char *s, double *out)
{
    char tmp[64];
    size_t n = 0;
    for (; *s; s++) {
        char ch = *s;
        if (ch == ' ' || (m->thousands && ch == m->thousands)) continue;
        if (ch == m->decimal) ch = '.';
        else if (ch == '.' || ch == ',') return -1;
        if (n + 1 >= sizeof tmp) return -1;
        tmp[n++] = ch;
    }
    tmp[n] = 0;
    if (n == 0 || strspn(tmp, "0123456789.-+eE") != n) return -1;
    char *end;
    *out = strtod(tmp, &end);
    return *end == 0 && isfinite(*out) ? 0 : -1;
}

/* Matches s against a pattern of YYYY MM DD hh mm ss and literals; fills v[6]. */
static int match_time(const char *pat, const char *s, int v[6])
{
    static const char *const tok[] = {"YYYY", "MM", "DD", "hh", "mm", "ss"};
    memset(v, 0, 6 * sizeof *v);
    while (*pat) {
        int t = 0;
        while (t < 6 && strncmp(pat, tok[t], strlen(tok[t])) != 0) t++;
        if (t == 6) {
            if (*s++ != *pat++) return 0;
            continue;
        }
        size_t w = strlen(tok[t]);
        if (strspn(s, "0123456789") < w) return 0;
        for (size_t i = 0; i < w; i++) v[t] = v[t] * 10 + (s[i] - '0');
        s += w;
        pat += w;
    }
    return *s == 0;
}

/* A local time (map time_format, else YYYY-MM-DD[ hh:mm[:ss]]) becomes RFC 3339 in the map's
 * zone; anything else is passed on as is for the daemon to judge as RFC 3339. */
static void to_time(const map_t *m, const char *s, char out[64])
{
    static const char *const defaults[] = {"YYYY-MM-DD", "YYYY-MM-DD hh:mm", "YYYY-MM-DD hh:mm:ss",
                                           "YYYY-MM-DDThh:mm", "YYYY-MM-DDThh:mm:ss", NULL};
    const char *one[] = {m->time_format, NULL};
    const char *const *pats = m->time_format ? one : defaults;
    int v[6];
    for (int i = 0; pats[i]; i++) {
        if (!match_time(pats[i], s, v)) continue;
        snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d%s", v[0], v[1], v[2], v[3], v[4], v[5],
                 m->zone);
        return;
    }
    snprintf(out, 64, "%s", s);
}

/* 1 when s is well-formed UTF-8 (the daemon would refuse the whole request otherwise). */
static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2
              : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xC2)) return 0;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xC0) != 0x80) return 0;
    }
    return 1;
}

/* The object holding the last segment of path, and that segment into key. */
static cJSON *parent_of(cJSON *ev, const char *path, char key[101])
{
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        snprintf(key, 101, "%.*s", (int)(dot - path), path);
        ev = cJSON_GetObjectItemCaseSensitive(ev, key);
        path = dot + 1;
    }
    snprintf(key, 101, "%s", path);
    return ev;
}

/* One cell into the event at col->path; an empty cell leaves the field out. NULL or the
 * reason the cell cannot be mapped. */
static const char *put_cell(const map_t *m, cJSON *ev, const column_t *col, const char *s,
                            char *msg, size_t msglen)
{
    char key[101], tbuf[64];
    cJSON *parent = parent_of(ev, col->path, key);
    if (!*s) {
        cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
        return NULL;
    }
    if (!utf8_ok((const unsigned char *)s)) return "the cell is not valid UTF-8";
    cJSON *item;
    double d;
    if (col->type == TY_NUMBER) {
        if (to_number(m, s, &d) != 0) {
            snprintf(msg, msglen, "'%.60s' in column '%.60s' is not a number (decimal '%c')", s,
                     col->column, m->decimal);
            return msg;
        }
        item = cJSON_CreateNumber(d);
    } else if (col->type == TY_TIME) {
        to_time(m, s, tbuf);
        item = cJSON_CreateString(tbuf);
    } else {
        item = cJSON_CreateString(s);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(parent, key, item);
    return NULL;
}

/* A row into an event; NULL with *field and msg set when it cannot be mapped. */
static cJSON *map_row(const import_t *im, const csv_row_t *row, const char **field, char *msg,
                      size_t msglen)
{
    const map_t *m = &im->map;
    *field = "row";
    if (row->error) {
        snprintf(msg, msglen, "%s", row->error);
        return NULL;
    }
    cJSON *ev = cJSON_Duplicate(m->base, 1);
    for (int i = 0; i < m->ncols; i++) {
        const column_t *col = &m->cols[i];
        *field = col->path;
        if (col->index >= row->n) {
            snprintf(msg, msglen, "the row has %d fields; column '%.60s' is missing", row->n,
                     col->column);
            cJSON_Delete(ev);
            return NULL;
        }
        const char *cell = row->field[col->index];
        /* Without an id the daemon would derive one from the content: two equal rows
         * would become one event. */
        const char *err = !*cell && strcmp(col->path, "id") == 0
                              ? "the id cell is empty"
                              : put_cell(m, ev, col, cell, msg, msglen);
        if (err) {
            if (err != msg) snprintf(msg, msglen, "%s", err);
            cJSON_Delete(ev);
            return NULL;
        }
    }
    if (!m->has_id) {
        /* Stable per file and line: a re-import or a resume finds the same ids. */
        char id[128];
        snprintf(id, sizeof id, "%s-%.16s-%ld", m->id_prefix, im->identity, row->line);
        cJSON_AddStringToObject(ev, "id", id);
    }
    return ev;
}

/* Reports a rejected row on stderr, or as a CSV record in the --rejects file. */
static void reject(import_t *im, long line, const char *field, const char *message)
{
    if (!im->rejects) {
        clear_bar(im);
        fprintf(stderr, "line %ld: %s: %s\n", line, field, message);
        return;
    }
    fprintf(im->rejects, "%ld,", line);
    const char *cells[] = {field, message};
    for (int i = 0; i < 2; i++) {
        fputc('"', im->rejects);
        for (const char *p = cells[i]; *p; p++) {
            if (*p == '"') fputc('"', im->rejects);
            fputc(*p, im->rejects);
        }
        fputs(i == 0 ? "\"," : "\"\n", im->rejects);
    }
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    long *retry_after = ud;
    if (sz * n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) *retry_after = strtol(p + 12, NULL, 10);
    return sz * n;
}

static int http_open(import_t *im)
{
    char base[sizeof im->url - 16], key[512], auth[600];
    cli_daemon_url(base, sizeof base);
    snprintf(im->url, sizeof im->url, "%s/v1/events", base);
    if (cli_daemon_key(key, sizeof key) != 0) return say(im, -1, CLI_DAEMON_NO_KEY);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    im->curl = curl_easy_init();
    if (!im->curl) return say(im, -1, "cannot initialise libcurl");
    im->headers = curl_slist_append(im->headers, auth);
    im->headers = curl_slist_append(im->headers, "Content-Type: application/x-ndjson");
    im->headers = curl_slist_append(im->headers, "Expect:");
    curl_easy_setopt(im->curl, CURLOPT_URL, im->url);
    curl_easy_setopt(im->curl, CURLOPT_HTTPHEADER, im->headers);
    curl_easy_setopt(im->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(im->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(im->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(im->curl, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(im->curl, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

static void http_close(import_t *im)
{
    if (!im->curl) return;
    curl_easy_cleanup(im->curl);
    curl_slist_free_all(im->headers);
    curl_global_cleanup();
}

/* One POST; the status, or 0 with curl's message in resp on a transport error. */
static long post_once(import_t *im, const buf_t *body, buf_t *resp, long *retry_after)
{
    buf_reset(resp);
    *retry_after = 0;
    curl_easy_setopt(im->curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(im->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(im->curl, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(im->curl, CURLOPT_HEADERDATA, retry_after);
    CURLcode rc = curl_easy_perform(im->curl);
    if (rc != CURLE_OK) {
        buf_puts(resp, curl_easy_strerror(rc));
        return 0;
    }
    long status = 0;
    curl_easy_getinfo(im->curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* Sleeps up to s seconds; returns early (1) when interrupted. */
static int pause_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return interrupted != 0;
}

/* POSTs with bounded retries while circad is unreachable or busy (0, 429, 502-504): waits
 * 0.5 s, doubling to at most 16 s, or Retry-After when longer (at most 60 s). The final
 * status, or 0 when every attempt failed. */
static long post(import_t *im, const buf_t *body, buf_t *resp)
{
    double wait = 0.5;
    for (int attempt = 1;; attempt++) {
        long retry_after;
        long st = post_once(im, body, resp, &retry_after);
        int transient = st == 0 || st == 429 || (st >= 502 && st <= 504);
        if (!transient || attempt >= im->retries || interrupted) return transient ? 0 : st;
        double w = retry_after > wait ? (retry_after < 60 ? (double)retry_after : 60) : wait;
        say(im, 0, "circad %s (attempt %d of %d); retrying in %.1f s",
            st ? "is unavailable" : "cannot be reached", attempt, im->retries, w);
        if (pause_s(w)) return 0;
        wait = wait * 2 > 16 ? 16 : wait * 2;
    }
}

/* ---- batches ------------------------------------------------------------------------------ */

/* The batch's rows not yet rejected, as NDJSON; live[i] is the row of the i-th event. */
static int build_body(const import_t *im, buf_t *body, int *live)
{
    buf_reset(body);
    int n = 0;
    for (int i = 0; i < im->nrows; i++) {
        if (im->rows[i].dropped) continue;
        buf_append(body, im->arena.data + im->rows[i].off, im->rows[i].len);
        buf_putc(body, '\n');
        live[n++] = i;
    }
    return n;
}

static const char *json_str(const cJSON *j, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* Reports and drops the rows a problem's errors[] name; the number newly dropped. */
static int drop_named(import_t *im, const cJSON *problem, const int *live, int nlive)
{
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(problem, "errors"), *e;
    int dropped = 0;
    cJSON_ArrayForEach(e, errs) {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(e, "index");
        if (!cJSON_IsNumber(ix) || ix->valueint < 0 || ix->valueint >= nlive) continue;
        pending_t *row = &im->rows[live[ix->valueint]];
        reject(im, row->line, json_str(e, "field", "event"), json_str(e, "message", "rejected"));
        if (row->dropped) continue;
        row->dropped = 1;
        im->rejected++;
        dropped++;
    }
    return dropped;
}

/* What to do with an answer: 0 the batch is stored, 1 send the rest again, -1 stop. */
static int settle(import_t *im, long st, const cJSON *j, const buf_t *resp, const int *live,
                  int n)
{
    if (st == 200 || st == 201) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accepted");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "duplicates");
        im->accepted += cJSON_IsNumber(a) ? (long)a->valuedouble : 0;
        im->duplicates += cJSON_IsNumber(d) ? (long)d->valuedouble : 0;
        return 0;
    }
    /* The request is atomic: take the rows it names out and send the others again. */
    if ((st == 422 || st == 409 || st == 403) && drop_named(im, j, live, n) > 0) return 1;
    if (st == 0)
        return say(im, -1, "circad cannot be reached at %s: %s", im->url,
                   resp->data ? resp->data : "no answer");
    const char *detail = json_str(j, "detail", resp->data ? resp->data : "");
    if (st == 413) return say(im, -1, "circad refused a batch as too large (%s); use a smaller "
                                      "--batch", detail);
    return say(im, -1, "circad answered %ld: %.300s", st, detail);
}

/* Sends the batch until every row is stored or rejected; 0, or -1 when the import stops. */
static int send_batch(import_t *im)
{
    buf_t body = BUF_INIT, resp = BUF_INIT;
    int *live = xmalloc(((size_t)im->nrows + 1) * sizeof *live);
    int rc = 0, n;
    while ((n = build_body(im, &body, live)) > 0) {
        long st = post(im, &body, &resp);
        cJSON *j = cJSON_ParseWithLength(resp.data ? resp.data : "", resp.len);
        rc = settle(im, st, j, &resp, live, n);
        cJSON_Delete(j);
        if (rc != 1) break;
        rc = 0;
    }
    free(live);
    buf_free(&body);
    buf_free(&resp);
    return rc;
}

static void progress(import_t *im, int force)
{
    double t = now_s();
    if (!im->tty || (!force && t - im->drawn < 0.2)) return;
    im->drawn = t;
    double rate = t > im->t0 ? (double)(im->read - im->read0) / (t - im->t0) : 0;
    fprintf(stderr, "\r\033[K%ld rows read, %ld accepted, %ld duplicates, %ld rejected, %.0f rows/s",
            im->read, im->accepted, im->duplicates, im->rejected, rate);
}

/* Keeps the row's event in the batch arena. */
static void add_row(import_t *im, long line, cJSON *ev)
{
    char *text = cJSON_PrintUnformatted(ev);
    im->rows[im->nrows].line = line;
    im->rows[im->nrows].off = im->arena.len;
    im->rows[im->nrows].len = strlen(text);
    im->rows[im->nrows].dropped = 0;
    im->nrows++;
    buf_puts(&im->arena, text);
    free(text);
}

/* Reads rows until the batch is full or the file ends: 1 rows to send (or reading went on
 * past rejected rows to the end), 0 nothing more, -1 a read error. */
static int fill_batch(import_t *im)
{
    buf_reset(&im->arena);
    im->nrows = 0;
    csv_row_t row;
    int rc = 1, any = 0;
    while (im->nrows < im->batch && (rc = csv_next(im->csv, &row)) == 1) {
        any = 1;
        im->read++;
        const char *field;
        char msg[256];
        cJSON *ev = map_row(im, &row, &field, msg, sizeof msg);
        if (!ev) {
            reject(im, row.line, field, msg);
            im->rejected++;
            continue;
        }
        add_row(im, row.line, ev);
        cJSON_Delete(ev);
        if ((im->read & 1023) == 0) progress(im, 0);
    }
    if (im->nrows < im->batch && rc < 0)
        return say(im, -1, "reading %s: %s", im->file, strerror(csv_errno(im->csv)));
    return any;
}

/* ---- identity and state ------------------------------------------------------------------- */

/* SHA-256 of the first 64 KiB and the size: cheap for any size, and another file (or this
 * one edited near its start, or grown) gets other ids and another state file. */
static int file_identity(import_t *im)
{
    struct stat st;
    if (fstat(fileno(im->in), &st) != 0) return -1;
    im->size = st.st_size;
    unsigned char *head = xmalloc(IDENTITY_BYTES + 8), md[32];
    size_t n = fread(head, 1, IDENTITY_BYTES, im->in);
    for (int i = 0; i < 8; i++) head[n + i] = (unsigned char)((uint64_t)st.st_size >> (56 - 8 * i));
    unsigned int mdlen = 0;
    int ok = EVP_Digest(head, n + 8, md, &mdlen, EVP_sha256(), NULL) == 1;
    free(head);
    if (!ok || fseeko(im->in, 0, SEEK_SET) != 0) return -1;
    for (int i = 0; i < 32; i++) snprintf(im->identity + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* $CIRCA_DATA_DIR/import/<identity>.json, the directories made when missing. */
static void state_path(import_t *im)
{
    const char *dir = getenv("CIRCA_DATA_DIR");
    if (!dir || !*dir) dir = "./var";
    char d[PATH_MAX - 80];   /* room for the file name */
    snprintf(d, sizeof d, "%s", dir);
    mkdir(d, 0700);
    snprintf(d, sizeof d, "%s/import", dir);
    mkdir(d, 0700);
    snprintf(im->state_path, sizeof im->state_path, "%s/%s.json", d, im->identity);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Records the last acknowledged point: write, fsync, rename, so a crash leaves the old
 * state or the new one, never half of one. */
static int state_save(import_t *im)
{
    buf_t b = BUF_INIT, tmp = BUF_INIT;
    buf_printf(&b, "{\"file\":");
    buf_json_str(&b, im->file, strlen(im->file));
    buf_printf(&b, ",\"identity\":\"%s\",\"size\":%lld,\"offset\":%lld,\"line\":%ld,\"read\":%ld,"
               "\"accepted\":%ld,\"duplicates\":%ld,\"rejected\":%ld}\n", im->identity,
               (long long)im->size, (long long)im->batch_off, im->batch_line, im->read,
               im->accepted, im->duplicates, im->rejected);
    buf_printf(&tmp, "%s.%d.tmp", im->state_path, (int)getpid());
    int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int ok = fd >= 0 && write_all(fd, b.data, b.len) == 0 && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    ok = ok && rename(tmp.data, im->state_path) == 0;
    if (!ok) {
        say(im, 0, "cannot save the import state %s: %s", im->state_path, strerror(errno));
        unlink(tmp.data);
    }
    buf_free(&b);
    buf_free(&tmp);
    return ok ? 0 : -1;
}

static long json_long(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
}

/* Reads a state file into the counters and the resume point; 1 found, 0 none, -1 unreadable. */
static int state_load(import_t *im, off_t *off, long *line)
{
    char *text = read_small_file(im->state_path, 65536);
    if (!text) return errno == ENOENT ? 0 : -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    *off = (off_t)json_long(j, "offset");
    *line = json_long(j, "line");
    im->read = json_long(j, "read");
    im->accepted = json_long(j, "accepted");
    im->duplicates = json_long(j, "duplicates");
    im->rejected = json_long(j, "rejected");
    int ok = *off > 0 && *line > 1 && im->read >= 0 && im->accepted >= 0 &&
             im->duplicates >= 0 && im->rejected >= 0;
    cJSON_Delete(j);
    if (!ok) im->read = im->accepted = im->duplicates = im->rejected = 0;
    return ok ? 1 : -1;
}

/* ---- the command -------------------------------------------------------------------------- */

/* Skips to the saved point with --resume; says so when a state exists without it. */
static int resume_point(import_t *im)
{
    off_t off;
    long line;
    int found = state_load(im, &off, &line);
    if (found < 0) say(im, 0, "ignoring the unreadable state file %s", im->state_path);
    if (found <= 0) {
        if (im->resume) say(im, 0, "nothing to resume for %s; starting at the top", im->file);
        return 0;
    }
    if (!im->resume) {
        say(im, 0, "an interrupted import of this file stopped before line %ld (state in %s); "
            "starting at the top: stored rows count as duplicates (--resume skips them)", line,
            im->state_path);
        im->read = im->accepted = im->duplicates = im->rejected = 0;
        return 0;
    }
    if (csv_seek(im->csv, off, line) != 0)
        return say(im, -1, "cannot seek in %s: %s", im->file, strerror(errno));
    im->read0 = im->read;
    im->batch_off = off;
    im->batch_line = line;
    say(im, 0, "resuming %s at line %ld (%ld rows done before)", im->file, line, im->read);
    return 0;
}

static void summary(import_t *im)
{
    progress(im, 1);
    clear_bar(im);
    double s = now_s() - im->t0;
    if (im->dry_run)
        printf("dry run: %ld rows would be sent (%ld rows rejected) from %s in %.1f s\n",
               im->read - im->rejected, im->rejected, im->file, s);
    else
        printf("imported %ld events (%ld duplicates, %ld rows rejected) from %s in %.1f s\n",
               im->accepted, im->duplicates, im->rejected, im->file, s);
    fflush(stdout);
}

/* Reads, maps and sends batch by batch, saving the state after each acknowledged one. */
static int run(import_t *im)
{
    int rc = 0;
    while (!interrupted && (rc = fill_batch(im)) > 0) {
        off_t off = csv_offset(im->csv);
        long line = csv_line(im->csv);
        if (!im->dry_run && send_batch(im) != 0) {
            rc = -1;
            break;
        }
        im->batch_off = off;
        im->batch_line = line;
        if (!im->dry_run) state_save(im);
        progress(im, 0);
    }
    summary(im);
    if (interrupted || rc != 0) {
        if (im->dry_run) return CLI_EXIT_FAIL;
        return say(im, CLI_EXIT_FAIL, "stopped%s: rows before line %ld are done; run the same "
                   "command with --resume to continue", interrupted ? " by a signal" : "",
                   im->batch_line);
    }
    if (!im->dry_run) unlink(im->state_path);   /* done: nothing left to resume */
    return im->rejected ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* Options into im; -1 (usage) or 1 (--help printed). */
static int parse_args(import_t *im, int argc, char **argv)
{
    static const struct option opts[] = {
        {"map", required_argument, NULL, 'm'},     {"batch", required_argument, NULL, 'b'},
        {"resume", no_argument, NULL, 'r'},        {"dry-run", no_argument, NULL, 'n'},
        {"rejects", required_argument, NULL, 'R'}, {"retries", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    static char prog[] = "circa import";
    char *end;
    int c;
    argv[0] = prog;
    optind = 0;
    while ((c = getopt_long(argc, argv, "m:b:rnR:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': im->map_file = optarg; break;
        case 'b': im->batch = (int)strtol(optarg, &end, 10); if (*end) im->batch = 0; break;
        case 'r': im->resume = 1; break;
        case 'n': im->dry_run = 1; break;
        case 'R': im->rejects_file = optarg; break;
        case 't': im->retries = (int)strtol(optarg, &end, 10); if (*end) im->retries = 0; break;
        case 'h': fputs(usage_text, stdout); return 1;
        default: return -1;
        }
    }
    if (argc - optind != 1) return say(NULL, -1, "expected one FILE.csv; see --help");
    im->file = argv[optind];
    if (!im->map_file) return say(NULL, -1, "--map MAP.json is required; see --help");
    if (im->batch < 1 || im->batch > BATCH_MAX)
        return say(NULL, -1, "--batch must be 1 to %d", BATCH_MAX);
    if (im->retries < 1 || im->retries > 100) return say(NULL, -1, "--retries must be 1 to 100");
    return 0;
}

/* Opens the CSV, computes its identity, reads the header and maps it; a CLI_EXIT_* code. */
static int open_input(import_t *im)
{
    im->in = fopen(im->file, "rb");
    if (!im->in) return say(NULL, CLI_EXIT_USAGE, "cannot open %s: %s", im->file, strerror(errno));
    if (file_identity(im) != 0)
        return say(NULL, CLI_EXIT_FAIL, "cannot read %s: %s", im->file, strerror(errno));
    im->csv = csv_new(im->in);
    csv_row_t header;
    int rc = csv_next(im->csv, &header);
    if (rc <= 0 || header.error)
        return say(NULL, CLI_EXIT_USAGE, "%s: no header row%s%s", im->file,
                   header.error ? ": " : "", header.error ? header.error : "");
    if (map_header(&im->map, &header, im->file) != 0) return CLI_EXIT_USAGE;
    im->batch_off = csv_offset(im->csv);
    im->batch_line = csv_line(im->csv);
    return CLI_EXIT_OK;
}

static int start(import_t *im)
{
    if (map_load(&im->map, im->map_file) != 0) return CLI_EXIT_USAGE;
    int rc = open_input(im);
    if (rc != CLI_EXIT_OK) return rc;
    if (im->rejects_file) {
        im->rejects = fopen(im->rejects_file, "w");
        if (!im->rejects)
            return say(NULL, CLI_EXIT_USAGE, "cannot write %s: %s", im->rejects_file, strerror(errno));
        fputs("line,field,message\n", im->rejects);
    }
    im->rows = xmalloc((size_t)im->batch * sizeof *im->rows);
    im->tty = isatty(STDERR_FILENO);
    if (im->dry_run) return CLI_EXIT_OK;
    if (http_open(im) != 0) return CLI_EXIT_FAIL;
    state_path(im);
    return resume_point(im) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_import_main(int argc, char **argv)
{
    import_t im;
    memset(&im, 0, sizeof im);
    im.batch = 1000;
    im.retries = 6;
    int rc = parse_args(&im, argc, argv);
    if (rc) return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    im.t0 = now_s();
    rc = start(&im);
    if (rc == CLI_EXIT_OK) {
        catch_signals();
        rc = run(&im);
    }
    if (im.rejects && fclose(im.rejects) != 0) rc = say(&im, CLI_EXIT_FAIL, "writing %s failed",
                                                        im.rejects_file);
    http_close(&im);
    csv_free(im.csv);
    if (im.in) fclose(im.in);
    map_free(&im.map);
    buf_free(&im.arena);
    free(im.rows);
    return rc;
}

/* config — one table of settings read from defaults, a `key = value` file and the environment. */
#include "config.h"
#include "buf.h"
#include "dbconf.h"
#include "log.h"
#include "version.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_STR, T_INT, T_BYTES, T_NUM, T_ENUM, T_LISTEN } type_t;

typedef struct {
    const char *key;       /* in the --config file */
    const char *env;       /* environment variable; API.md's names */
    type_t type;
    size_t off, size;      /* field in config_t; size for strings */
    const char *def;       /* default, as text: parsed like any other value */
    double min, max;       /* numbers: range; strings: min is the least length */
    const char *choices;   /* T_ENUM: "a|b|c" */
    const char *help;
} setting_t;

#define F(field) offsetof(config_t, field), sizeof(((config_t *)0)->field)

/* The one list of settings. Order is the order of --help and of the doc's table. */
static const setting_t settings[] = {
    {"listen", "CIRCA_LISTEN", T_LISTEN, F(listen_host), "127.0.0.1:8080", 0, 0, NULL,
     "address:port circad listens on (port 0: any free port)"},
    {"database_url", "DATABASE_URL", T_STR, F(database_url), "", 0, 0, NULL,
     "libpq connection string; empty: the private cluster under data_dir"},
    {"data_dir", "CIRCA_DATA_DIR", T_STR, F(data_dir), "./var", 1, 0, NULL,
     "private PostgreSQL cluster, spool, generated keys"},
    {"pg_port", "CIRCA_PG_PORT", T_INT, F(pg_port), "54329", 1, 65535, NULL,
     "the private cluster's port"},
    {"log", "CIRCA_LOG", T_ENUM, F(log_level), "info", 0, 0, "debug|info|warn|error",
     "least level logged"},
    {"log_format", "CIRCA_LOG_FORMAT", T_ENUM, F(log_format), "json", 0, 0, "json|text",
     "one JSON object per line, or text for a person at a terminal"},
    {"adapters_dir", "CIRCA_ADAPTERS_DIR", T_STR, F(adapters_dir), "", 0, 0, NULL,
     "adapter configuration files; empty: data_dir/adapters"},
    {"max_body", "CIRCA_MAX_BODY", T_BYTES, F(max_body), "8388608", 1024, 1073741824.0, NULL,
     "request body limit in bytes (suffix K, M or G: binary multiples)"},
    {"db_connections", "CIRCA_DB_CONNECTIONS", T_INT, F(db_connections), "4", 1, 64, NULL,
     "PostgreSQL connections in circad's pool"},
    {"rate_limit", "CIRCA_RATE_LIMIT", T_NUM, F(rate_limit), "0", 0, 1e6, NULL,
     "requests per second per API key (a batch of events is one request); 0: no limit"},
    {"rate_burst", "CIRCA_RATE_BURST", T_NUM, F(rate_burst), "0", 0, 1e6, NULL,
     "requests a key may send at once before rate_limit applies; 0: rate_limit, at least 1"},
    {"rate_keys", "CIRCA_RATE_KEYS", T_INT, F(rate_keys), "10000", 16, 10000000, NULL,
     "API keys the rate limiter remembers; the longest idle is forgotten first"},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

/* Where each value came from, for error lines and --check-config. */
typedef struct {
    char where[NSETTINGS][1100];    /* "default", "CIRCA_X", "file:line" */
} origin_t;

static config_t current;

const config_t *config_current(void)
{
    return &current;
}

/* ---- values ------------------------------------------------------------------------------- */

static int parse_long(const char *v, long *out, int bytes)
{
    errno = 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || errno) return -1;
    long mult = 1;
    if (bytes && *end) {
        const char *units = "KMG";
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u) return -1;
        mult = 1L << (10 * (u - units + 1));
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (*end || x > LONG_MAX / mult || x < LONG_MIN / mult) return -1;
    *out = x * mult;
    return 0;
}

static int set_listen(config_t *c, const char *v, char *why, size_t n)
{
    const char *colon = strrchr(v, ':');
    long port;
    if (!colon || colon == v || parse_long(colon + 1, &port, 0) || port < 0 || port > 65535) {
        snprintf(why, n, "not address:port (e.g. 127.0.0.1:8080, 0.0.0.0:8080)");
        return -1;
    }
    size_t hl = (size_t)(colon - v);
    if (v[0] == '[' && colon[-1] == ']') v++, hl -= 2;   /* [::1]:8080 */
    if (hl >= sizeof c->listen_host) {
        snprintf(why, n, "the address is longer than %zu characters", sizeof c->listen_host - 1);
        return -1;
    }
    snprintf(c->listen_host, sizeof c->listen_host, "%.*s", (int)hl, v);
    c->listen_port = (int)port;
    return 0;
}

static int choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        size_t m = strcspn(p, "|");
        if (m == n && n && strncmp(p, v, n) == 0) return 1;
        p += m + (p[m] == '|');
    }
    return 0;
}

/* Parses v into the setting's field; -1 with the reason in why. */
static int set_value(config_t *c, const setting_t *s, const char *v, char *why, size_t n)
{
    char *field = (char *)c + s->off;
    long x;
    double d;
    char *end;
    switch (s->type) {
    case T_LISTEN:
        return set_listen(c, v, why, n);
    case T_STR:
        if (strlen(v) >= s->size) return snprintf(why, n, "longer than %zu bytes", s->size - 1), -1;
        if (strlen(v) < (size_t)s->min) return snprintf(why, n, "must not be empty"), -1;
        snprintf(field, s->size, "%s", v);
        return 0;
    case T_ENUM:
        if (!choice_ok(s->choices, v)) return snprintf(why, n, "must be one of %s", s->choices), -1;
        snprintf(field, s->size, "%s", v);
        return 0;
    case T_INT:
    case T_BYTES:
        if (parse_long(v, &x, s->type == T_BYTES) || x < s->min || x > s->max)
            return snprintf(why, n, "not a whole number from %.0f to %.0f%s", s->min, s->max,
                            s->type == T_BYTES ? " (bytes; K, M, G allowed)" : ""), -1;
        *(long *)(void *)field = x;
        return 0;
    case T_NUM:
        errno = 0;
        d = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(d) || d < s->min || d > s->max)
            return snprintf(why, n, "not a number from %g to %g", s->min, s->max), -1;
        *(double *)(void *)field = d;
        return 0;
    }
    return -1;
}

/* ---- sources ------------------------------------------------------------------------------ */

static const setting_t *by_key(const char *key, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].key) == len && strncmp(settings[i].key, key, len) == 0)
            return &settings[i];
    return NULL;
}

static void apply_defaults(config_t *c, origin_t *o)
{
    char why[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (set_value(c, &settings[i], settings[i].def, why, sizeof why))
            abort();   /* a default the table itself cannot parse is a programming error */
        snprintf(o->where[i], sizeof o->where[i], "default");
    }
}

/* The value of one line after '=': "quoted" (with \" and \\) or bare up to " #". */
static int line_value(const char *p, char *out, size_t outlen, char *why, size_t n)
{
    buf_t b = BUF_INIT;
    int rc = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
            buf_putc(&b, *p);
        }
        if (*p != '"') rc = -1, snprintf(why, n, "unterminated \"");
        else for (p++; *p == ' ' || *p == '\t'; p++) {}
        if (!rc && *p && *p != '#') rc = -1, snprintf(why, n, "text after the closing \"");
    } else {
        size_t len = 0;
        for (size_t i = 0; p[i]; i++) {
            if (p[i] == '#' && i && (p[i - 1] == ' ' || p[i - 1] == '\t')) break;
            if (p[i] != ' ' && p[i] != '\t') len = i + 1;
        }
        buf_append(&b, p, len);
    }
    if (!rc && b.len >= outlen) rc = -1, snprintf(why, n, "value too long");
    if (!rc) snprintf(out, outlen, "%s", b.len ? b.data : "");
    buf_free(&b);
    return rc;
}

/* One `key = value` line; blank and # lines are skipped. -1 with err set. */
static int file_line(config_t *c, origin_t *o, const char *path, int lineno, char *line,
                     char *err, size_t errlen)
{
    char why[300], value[4096];
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') return 0;
    size_t klen = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
    const setting_t *s = by_key(p, klen);
    char *eq = p + klen;
    while (*eq == ' ' || *eq == '\t') eq++;
    if (*eq != '=' || !klen)
        return snprintf(err, errlen, "%s:%d: expected key = value", path, lineno), -1;
    if (!s)
        return snprintf(err, errlen, "%s:%d: unknown key '%.*s' (circad --help lists them)", path,
                        lineno, (int)klen, p), -1;
    size_t i = (size_t)(s - settings);
    if (strcmp(o->where[i], "default") != 0)
        return snprintf(err, errlen, "%s:%d: %s is set twice (also at %s)", path, lineno,
                        s->key, o->where[i]), -1;
    for (eq++; *eq == ' ' || *eq == '\t'; eq++) {}
    if (line_value(eq, value, sizeof value, why, sizeof why))   /* show the line as written */
        return snprintf(err, errlen, "%s:%d: %s = %s: %s", path, lineno, s->key, eq, why), -1;
    if (set_value(c, s, value, why, sizeof why))
        return snprintf(err, errlen, "%s:%d: %s = %s: %s", path, lineno, s->key, value, why), -1;
    snprintf(o->where[i], sizeof o->where[i], "%s:%d", path, lineno);
    return 0;
}

static int read_file(config_t *c, origin_t *o, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, errlen, "config file %s: %s", path, strerror(errno)), -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        rc = file_line(c, o, path, lineno, line, err, errlen);
    }
    free(line);
    fclose(f);
    return rc;
}

static int read_env(config_t *c, origin_t *o, char *err, size_t errlen)
{
    char why[300];
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = getenv(settings[i].env);
        /* An empty variable counts as unset, as it always has for circad. */
        if (!v || !*v) continue;
        if (set_value(c, &settings[i], v, why, sizeof why))
            return snprintf(err, errlen, "%s=%s: %s", settings[i].env, v, why), -1;
        snprintf(o->where[i], sizeof o->where[i], "%s", settings[i].env);
    }
    return 0;
}

/* Defaults that depend on other settings. */
static int derive(config_t *c, char *err, size_t errlen)
{
    if (!c->adapters_dir[0] &&
        (size_t)snprintf(c->adapters_dir, sizeof c->adapters_dir, "%s/adapters", c->data_dir) >=
            sizeof c->adapters_dir)
        return snprintf(err, errlen, "data_dir is too long to hold adapters/"), -1;
    if (c->rate_burst <= 0) c->rate_burst = c->rate_limit > 1 ? c->rate_limit : 1;
    return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

enum { OPT_RUN, OPT_HELP, OPT_VERSION, OPT_CHECK, OPT_DOC };

/* Reads argv: the action asked for and the --config file (NULL when none). -1 on a bad one. */
static int options(int argc, char **argv, int *action, const char **file, char *err,
                   size_t errlen)
{
    static const char *const names[] = {NULL, "--help", "--version", "--check-config",
                                        "--config-doc"};
    *action = OPT_RUN;
    *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int known = 0;
        for (int k = 1; k <= OPT_DOC; k++)
            if (strcmp(a, names[k]) == 0) known = k;
        if (known) {
            if (*action == OPT_RUN || known == OPT_HELP) *action = known;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            *file = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0 && a[9]) {
            *file = a + 9;
        } else {
            return snprintf(err, errlen, "%s: %s (see circad --help)", a,
                            strcmp(a, "--config") == 0 ? "needs a file name" : "unknown option"),
                   -1;
        }
    }
    /* For containers and test harnesses, which set variables more easily than arguments. */
    const char *env = getenv("CIRCA_CONFIG");
    if (!*file && env && *env) *file = env;
    return 0;
}

static int parse_with_origin(config_t *c, origin_t *o, int argc, char **argv, char *err,
                             size_t errlen)
{
    int action;
    const char *file;
    if (options(argc, argv, &action, &file, err, errlen)) return -1;
    apply_defaults(c, o);
    if (file && read_file(c, o, file, err, errlen)) return -1;
    if (read_env(c, o, err, errlen)) return -1;
    return derive(c, err, errlen);
}

int config_parse(config_t *c, int argc, char **argv, char *err, size_t errlen)
{
    origin_t *o = xmalloc(sizeof *o);
    int rc = parse_with_origin(c, o, argc, argv, err, errlen);
    free(o);
    return rc;
}

/* ---- output ------------------------------------------------------------------------------- */

static void format_value(const config_t *c, const setting_t *s, char *out, size_t n)
{
    const char *field = (const char *)c + s->off;
    switch (s->type) {
    case T_LISTEN: snprintf(out, n, "%s:%d", c->listen_host, c->listen_port); break;
    case T_STR:
    case T_ENUM: snprintf(out, n, "%s", field); break;
    case T_INT:
    case T_BYTES: snprintf(out, n, "%ld", *(const long *)(const void *)field); break;
    case T_NUM: snprintf(out, n, "%g", *(const double *)(const void *)field); break;
    }
}

/* --check-config: every setting with its value and origin. A connection string may hold a
 * password, so only whether it is set is shown. */
static void print_effective(const config_t *c, const origin_t *o, FILE *out)
{
    char v[4200];
    for (size_t i = 0; i < NSETTINGS; i++) {
        format_value(c, &settings[i], v, sizeof v);
        if (settings[i].off == offsetof(config_t, database_url) && v[0])
            snprintf(v, sizeof v, "(set)");
        fprintf(out, "%-15s = %-30s # %s\n", settings[i].key, v, o->where[i]);
    }
    fputs("configuration OK\n", out);
}

void config_print_help(FILE *out)
{
    fputs("usage: circad [--config FILE] [--check-config] [--config-doc] [--help] [--version]\n"
          "Ingests material-flow events over HTTP into the circa ledger in PostgreSQL.\n"
          "  --config FILE    read `key = value` lines (# comments) from FILE\n"
          "                   (without --config: the file CIRCA_CONFIG names, if set)\n"
          "  --check-config   check every setting, print them with their origin, exit\n"
          "  --config-doc     print the settings as the Markdown table of CONFIGURATION.md\n"
          "Settings (environment variable, file key, default); the environment wins over the\n"
          "file, the file over the defaults:\n",
          out);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        fprintf(out, "  %-21s %-15s [%s]\n      %s", s->env, s->key,
                s->def[0] ? s->def : "empty", s->help);
        fprintf(out, "%s%s\n", s->choices ? ": " : "", s->choices ? s->choices : "");
    }
}

/* A Markdown table cell: '|' escaped. */
static void cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', out);
        fputc(*s, out);
    }
}

void config_print_doc(FILE *out)
{
    fputs("| key | variable | default | meaning |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        fprintf(out, "| `%s` | `%s` | %s%s%s | ", s->key, s->env, s->def[0] ? "`" : "",
                s->def[0] ? s->def : "(empty)", s->def[0] ? "`" : "");
        cell(out, s->help);
        if (s->choices) {
            fputs(": `", out);
            cell(out, s->choices);
            fputc('`', out);
        }
        fputs(" |\n", out);
    }
}

/* ---- start-up ----------------------------------------------------------------------------- */

/* dbconf and the adapters read these from the environment: make it say what was configured. */
static void export_env(const config_t *c)
{
    char port[16];
    snprintf(port, sizeof port, "%ld", c->pg_port);
    setenv("CIRCA_DATA_DIR", c->data_dir, 1);
    setenv("CIRCA_PG_PORT", port, 1);
    setenv("CIRCA_ADAPTERS_DIR", c->adapters_dir, 1);
    if (c->database_url[0]) setenv("DATABASE_URL", c->database_url, 1);
}

static int fill_app(app_config_t *cfg, const config_t *c, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", c->listen_host);
    cfg->listen_port = c->listen_port;
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", c->data_dir);
    cfg->max_body = (size_t)c->max_body;
    cfg->db_connections = (int)c->db_connections;
    if (log_init(c->log_level, c->log_format)) return snprintf(err, errlen, "log settings"), -1;
    export_env(c);
    cfg->database_url = dbconf_conninfo(err, errlen);
    return cfg->database_url ? 0 : -1;
}

int config_load_all(app_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    int action;
    const char *file;
    if (options(argc, argv, &action, &file, err, errlen)) return -1;
    if (action == OPT_HELP) return config_print_help(stdout), 1;
    if (action == OPT_VERSION) return puts("circad " CIRCA_VERSION), 1;
    if (action == OPT_DOC) return config_print_doc(stdout), 1;
    origin_t *o = xmalloc(sizeof *o);
    int rc = parse_with_origin(&current, o, argc, argv, err, errlen);
    if (rc == 0 && action == OPT_CHECK) print_effective(&current, o, stdout), rc = 1;
    free(o);
    if (rc) return rc;
    return fill_app(cfg, &current, err, errlen);
}

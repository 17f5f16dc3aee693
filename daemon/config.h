/* config — circad's settings: one table gives the parser, `circad --help`, `--config-doc` and
 * docs/CONFIGURATION.md. Sources, later wins: defaults < `--config FILE` < environment. */
#ifndef CIRCA_CONFIG_H
#define CIRCA_CONFIG_H
#include <stddef.h>
#include <stdio.h>

#include "app.h"

/* Every setting, parsed and checked. app_config_t gets the fields it has; the rest are read
 * with config_current() until app_config_t carries them too. */
typedef struct {
    char listen_host[64];
    int listen_port;
    char database_url[4096];     /* "" = the private cluster under data_dir */
    char data_dir[1024];
    long pg_port;
    char log_level[8];           /* debug|info|warn|error */
    char log_format[8];          /* json|text */
    char adapters_dir[1024];     /* "" = <data_dir>/adapters (filled in by config_parse) */
    long max_body;
    long db_connections;
    double rate_limit;           /* requests per second per API key; 0 = no limit */
    double rate_burst;           /* bucket size; 0 = one second's worth (at least 1) */
    long rate_keys;              /* keys the rate limiter remembers */
} config_t;

/* Fills c from the defaults, the file named by --config, then the environment, and checks
 * every value. argv holds only circad's own options (--config FILE; the action options are
 * config_load_all's). Returns 0, or -1 with one line in err naming the setting and where it
 * came from ("CIRCA_MAX_BODY=abc: …" or "circad.conf:3: max_body = abc: …"). No side effects. */
int config_parse(config_t *c, int argc, char **argv, char *err, size_t errlen);

/* circad's whole start-up reading: options --help, --version, --config FILE, --check-config,
 * --config-doc; then config_parse, log_init, the environment made to agree with the result
 * (CIRCA_DATA_DIR, CIRCA_PG_PORT, CIRCA_ADAPTERS_DIR, for the modules that read it there) and
 * cfg->database_url (malloc'd: DATABASE_URL or the private cluster's conninfo).
 * Returns 0 to run, 1 when it printed what was asked (help, version, doc, a passed check: exit
 * 0), -1 with one line in err (without a "circad: " prefix; exit 2). */
int config_load_all(app_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* The settings config_load_all read (all zero before it ran). */
const config_t *config_current(void);

/* `circad --help`: the usage line and one line per setting. */
void config_print_help(FILE *out);
/* The Markdown table of docs/CONFIGURATION.md: key, variable, default, meaning. */
void config_print_doc(FILE *out);

#endif

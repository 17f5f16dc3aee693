/* circa — the command line: global options and the subcommand table. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli_admin.h"
#include "cli_db.h"
#include "cli_dead_letters.h"
#include "cli_demo.h"
#include "cli_export.h"
#include "cli_import.h"
#include "cli_status.h"
#include "cli_report.h"

/* A subcommand gets argv from its own name on and returns a CLI_EXIT_* code. It prints its
 * usage for --help (exit 0), one line on stderr and CLI_EXIT_USAGE for a bad invocation, one
 * line and CLI_EXIT_FAIL for a runtime error. */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command_t;

static const cli_command_t commands[] = {
    {"migrate", cli_db_migrate_main, "apply the database schema migrations not yet applied"},
    {"tenants", cli_admin_tenants_main, "create a tenant with its admin key; list tenants"},
    {"keys", cli_admin_keys_main, "create, revoke and list API keys"},
    {"verify", cli_admin_verify_main, "check every tenant's ledger hash chain"},
    {"import", cli_import_main, "send a CSV file to circad as events, through a column map"},
    {"dead-letters", cli_dead_letters_main, "list or replay what adapters could not store"},
    {"status", cli_status_main, "is circad up and ready: version, uptime, events, database"},
    {"report", cli_report_main, "generate a report through circad and download it; --verify FILE"},
    {"export", cli_export_main, "write a tenant's ledger as NDJSON for offline verification"},
    {"demo", cli_demo_main, "send a generated industrial park (a year of events) to circad"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fputs("usage: circa [--help] <command> [<args>]\n\ncommands:\n", out);
    for (const cli_command_t *c = commands; c->name; c++)
        fprintf(out, "  %-14s %s\n", c->name, c->summary);
    fputs("\n'circa <command> --help' describes one command.\n"
          "Database: DATABASE_URL, else the private cluster under CIRCA_DATA_DIR (default\n"
          "./var) on port CIRCA_PG_PORT (default 54329). Daemon: CIRCA_URL, CIRCA_KEY.\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static char prog[] = "circa";
    int c;
    argv[0] = prog;   /* getopt's messages name the program, not its path */
    /* "+": stop at the command name, its options are its own. */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        return CLI_EXIT_USAGE;
    }
    if (optind >= argc) {
        fputs("circa: no command given; see 'circa --help'\n", stderr);
        return CLI_EXIT_USAGE;
    }
    for (const cli_command_t *cmd = commands; cmd->name; cmd++) {
        if (strcmp(cmd->name, argv[optind]) == 0) return cmd->fn(argc - optind, argv + optind);
    }
    fprintf(stderr, "circa: unknown command '%s'; see 'circa --help'\n", argv[optind]);
    return CLI_EXIT_USAGE;
}

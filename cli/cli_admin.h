/* cli_admin — `circa tenants`, `circa keys` and `circa verify`: administration straight
 * against PostgreSQL (blocking libpq). */
#ifndef CIRCA_CLI_ADMIN_H
#define CIRCA_CLI_ADMIN_H

/* Subcommands: argv[0] is the subcommand's name; they return a CLI_EXIT_* code (cli_db.h).
 * Keys are printed once on stdout and never stored: only SHA-256 of the secret is. */
int cli_admin_tenants_main(int argc, char **argv);
int cli_admin_keys_main(int argc, char **argv);
int cli_admin_verify_main(int argc, char **argv);

#endif

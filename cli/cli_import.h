/* cli_import — `circa import`: a CSV file of any size into POST /v1/events, batch by batch,
 * through a column map; rejected rows reported by line, resumable after an interruption. */
#ifndef CIRCA_CLI_IMPORT_H
#define CIRCA_CLI_IMPORT_H

/* `circa import FILE.csv --map MAP.json [--batch N] [--resume] [--dry-run] [--rejects FILE]
 * [--retries N]`. argv[0] is "import". Returns CLI_EXIT_OK when every row was stored or was
 * a duplicate, CLI_EXIT_FAIL when rows were rejected or the import stopped, CLI_EXIT_USAGE
 * for a bad invocation or map. docs/IMPORT.md is the user guide. */
int cli_import_main(int argc, char **argv);

#endif

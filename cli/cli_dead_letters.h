/* cli_dead_letters — `circa dead-letters`: list what the adapters could not turn into events,
 * and replay them through circad once the adapter configuration is fixed. */
#ifndef CIRCA_CLI_DEAD_LETTERS_H
#define CIRCA_CLI_DEAD_LETTERS_H

/* `circa dead-letters [--adapter A] [--all] [--replay]`. argv[0] is "dead-letters". Talks to
 * circad (CIRCA_URL, key CIRCA_KEY or $CIRCA_DATA_DIR/admin.key). Lists pending dead letters
 * (--all: replayed ones too), one per line; --replay re-submits them and prints the outcome.
 * CLI_EXIT_OK, CLI_EXIT_FAIL (circad unreachable, or some could not be replayed),
 * CLI_EXIT_USAGE. */
int cli_dead_letters_main(int argc, char **argv);

#endif

/* cli_demo — `circa demo`: a seeded, realistic industrial park (master data and a year of
 * material flows) sent to circad over HTTP; re-running it adds nothing. */
#ifndef CIRCA_CLI_DEMO_H
#define CIRCA_CLI_DEMO_H

/* `circa demo [--url U] [--key K] [--seed S] [--events N] [--year Y] [--tenant-prefix P]`.
 * argv[0] is "demo". The same seed, count, year and prefix always give the same events with
 * the same ids ("demo-<seed>-<n>"). Prints a summary; its last line is machine-readable
 * ("demo seed=… events=… accepted=… duplicates=… rejected=… events_per_s=… deep_lot=…").
 * Returns CLI_EXIT_OK when nothing was rejected, CLI_EXIT_FAIL when events were rejected or
 * circad could not be reached, CLI_EXIT_USAGE for a bad invocation. */
int cli_demo_main(int argc, char **argv);

#endif

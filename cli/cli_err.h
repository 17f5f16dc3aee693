/* cli_err — how CLI commands report failure: one line on stderr and an exit status. */
#ifndef CIRCA_CLI_ERR_H
#define CIRCA_CLI_ERR_H

/* "circa: <message>" on stderr; returns CLI_EXIT_FAIL (1). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "<prog>: <message>" on stderr; returns CLI_EXIT_USAGE (2). */
int cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

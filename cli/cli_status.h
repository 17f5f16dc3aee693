/* cli_status — `circa status`: whether circad is up and ready, and what it holds. */
#ifndef CIRCA_CLI_STATUS_H
#define CIRCA_CLI_STATUS_H

/* `circa status [--help]`. argv[0] is "status". Reads GET /healthz, /readyz, /metrics and,
 * with a key, GET /v1/status of the circad at CIRCA_URL (else http://$CIRCA_LISTEN). Returns
 * CLI_EXIT_OK when circad answers and its database is reachable, CLI_EXIT_FAIL otherwise,
 * CLI_EXIT_USAGE for a bad invocation. */
int cli_status_main(int argc, char **argv);

#endif

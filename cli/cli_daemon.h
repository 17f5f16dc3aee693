/* cli_daemon — where the CLI finds circad and its key: CIRCA_URL (else http://$CIRCA_LISTEN,
 * default 127.0.0.1:8080) and CIRCA_KEY (else the first line of $CIRCA_DATA_DIR/admin.key). */
#ifndef CIRCA_CLI_DAEMON_H
#define CIRCA_CLI_DAEMON_H
#include <stddef.h>

#define CLI_DAEMON_NO_KEY "no API key: set CIRCA_KEY or put one in $CIRCA_DATA_DIR/admin.key"

/* The daemon's base URL without a trailing slash, into the caller's buffer. */
void cli_daemon_url(char *out, size_t outlen);
/* The API key into the caller's buffer: 0, or -1 when there is none. */
int cli_daemon_key(char *out, size_t outlen);

#endif

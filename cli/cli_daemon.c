/* cli_daemon — the one place the CLI's daemon commands look up circad's URL and a key. */
#include "cli_daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_daemon_url(char *out, size_t outlen)
{
    const char *url = getenv("CIRCA_URL"), *listen = getenv("CIRCA_LISTEN");
    if (url && *url) snprintf(out, outlen, "%s", url);
    else snprintf(out, outlen, "http://%s", listen && *listen ? listen : "127.0.0.1:8080");
    size_t n = strlen(out);
    if (n && out[n - 1] == '/') out[n - 1] = '\0';
}

int cli_daemon_key(char *out, size_t outlen)
{
    const char *k = getenv("CIRCA_KEY"), *dir = getenv("CIRCA_DATA_DIR");
    if (k && *k) return snprintf(out, outlen, "%s", k), 0;
    char path[4096], line[512] = "";
    snprintf(path, sizeof path, "%s/admin.key", dir && *dir ? dir : "./var");
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    if (!fgets(line, sizeof line, f)) line[0] = '\0';
    fclose(f);
    snprintf(out, outlen, "%.*s", (int)strcspn(line, "\r\n"), line);
    return out[0] ? 0 : -1;
}

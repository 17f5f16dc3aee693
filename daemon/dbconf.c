/* dbconf — the connection string circad and circa share. */
#include "dbconf.h"
#include "buf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpq keyword=value quoting: single quotes, backslash-escaped. */
static void put_kv(buf_t *b, const char *key, const char *val)
{
    buf_printf(b, "%s%s='", b->len ? " " : "", key);
    for (const char *p = val; *p; p++) {
        if (*p == '\'' || *p == '\\') buf_putc(b, '\\');
        buf_putc(b, *p);
    }
    buf_putc(b, '\'');
}

char *dbconf_conninfo(char *err, size_t errlen)
{
    const char *url = getenv("DATABASE_URL");
    if (url && *url) return xstrdup(url);
    const char *data = getenv("CIRCA_DATA_DIR");
    const char *port = getenv("CIRCA_PG_PORT");
    if (!data || !*data) data = "./var";
    if (!port || !*port) port = "54329";
    char path[PATH_MAX], real[PATH_MAX];
    snprintf(path, sizeof path, "%s/pg", data);
    if (!realpath(path, real)) {
        snprintf(err, errlen, "no private PostgreSQL cluster at %s (%s); set DATABASE_URL",
                 path, strerror(errno));
        return NULL;
    }
    buf_t ci = BUF_INIT;
    put_kv(&ci, "host", real);
    put_kv(&ci, "port", port);
    put_kv(&ci, "user", "circa");
    put_kv(&ci, "dbname", "circa");
    return buf_steal(&ci);
}

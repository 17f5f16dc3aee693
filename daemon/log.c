/* log — JSON or text lines on stderr, written with one write(2) so lines never interleave. */
#include "log.h"
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int min_level = LOG_INFO;
static int as_text = 0;
static const char *names[] = {"debug", "info", "warn", "error"};

int log_init(const char *level, const char *format)
{
    int rc = 0, found = 0;
    for (int i = 0; level && i < 4; i++)
        if (strcmp(level, names[i]) == 0) min_level = i, found = 1;
    if (level && !found) rc = -1;
    if (format && strcmp(format, "text") == 0) as_text = 1;
    else if (format && strcmp(format, "json") == 0) as_text = 0;
    else if (format) rc = -1;
    return rc;
}

int log_enabled(int level)
{
    return level >= min_level;
}

static void stamp(char out[32])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void emit(int level, const char *msg, const char *fields)
{
    char ts[32];
    buf_t b = BUF_INIT;
    stamp(ts);
    if (as_text) {
        buf_printf(&b, "%s %-5s %s", ts, names[level], msg);
        if (fields && *fields) buf_printf(&b, " {%s}", fields);
    } else {
        buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, names[level]);
        buf_json_str(&b, msg, strlen(msg));
        if (fields && *fields) buf_printf(&b, ",%s", fields);
        buf_putc(&b, '}');
    }
    buf_putc(&b, '\n');
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    buf_free(&b);
}

void log_msg(int level, const char *fmt, ...)
{
    if (level < min_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, msg, NULL);
}

void log_fields(int level, const char *msg, const char *fields)
{
    if (level < min_level) return;
    emit(level, msg, fields);
}

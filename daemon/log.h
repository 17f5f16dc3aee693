/* log — one line per record on stderr: JSON (default) or text for a person at a terminal. */
#ifndef CIRCA_LOG_H
#define CIRCA_LOG_H

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* level: debug|info|warn|error; format: json|text. Returns -1 on an unknown word. */
int log_init(const char *level, const char *format);
int log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A record with extra fields: fields is a JSON object body without braces, e.g.
 * "\"status\":201,\"route\":\"/v1/events\"" (built with buf_json_str). Never put keys,
 * passwords or payloads into it. */
void log_fields(int level, const char *msg, const char *fields);

#endif

/* profiles — how a device payload becomes a canonical event: weighbridge tickets, smart-bin
 * fill levels and pick-ups, and a generic mapping by JSON pointers (docs/ADAPTERS.md). Pure
 * functions: no I/O, so they are unit-tested alone. */
#ifndef CIRCA_PROFILES_H
#define CIRCA_PROFILES_H
#include <stddef.h>
#include <cjson/cJSON.h>

typedef enum { PROFILE_WEIGHBRIDGE, PROFILE_SMART_BIN, PROFILE_MAPPING } profile_kind_t;

typedef struct {
    profile_kind_t kind;
    const cJSON *map;      /* mapping: {"<dotted event field>": "<JSON pointer>"} (borrowed) */
    const cJSON *cnst;     /* mapping: {"<dotted event field>": value} (borrowed) */
} profile_t;

/* Reads a subscription's "profile" (and "map"/"const" for mapping). 0, or -1 with err. */
int profile_parse(const cJSON *sub, profile_t *out, char *err, size_t errlen);

/* Maps one payload of adapter `name` to one event (the caller owns it). devices is the
 * adapter's {"<device>": {event fields…}} object. On failure returns NULL with the reason
 * (malformed payload, unknown device, …) for the dead letter. */
cJSON *profile_map(const profile_t *p, const char *name, const cJSON *devices,
                   const char *payload, size_t len, char *reason, size_t rlen);

/* RFC 6901 JSON pointer ("" is the whole document); NULL when it names nothing. */
const cJSON *profile_pointer(const cJSON *doc, const char *ptr);

#endif

/* mqtt — one MQTT adapter instance: a libmosquitto client driven by circad's libuv loop
 * (socket under uv_poll, loop_misc on a 1 s timer, no library thread) that subscribes with
 * QoS 1 on a persistent session, writes every message to its spool and acknowledges it only
 * once the spool is fsynced, then drains the spool in order through ingest (dead letters for
 * what the profiles or ingest refuse). Configuration: docs/API.md "Adapters". */
#ifndef CIRCA_MQTT_H
#define CIRCA_MQTT_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "app.h"

typedef struct mqtt mqtt_t;

/* Validates conf (kind "mqtt") and starts connecting in the background; an unreachable
 * broker is not an error. 0, or -1 with err (bad configuration, spool not usable). */
int mqtt_start(app_t *app, const cJSON *conf, mqtt_t **out, char *err, size_t errlen);
/* Finishes the fsync and the drain step in flight, acknowledges what is durable, disconnects
 * and frees the instance, then calls done once. Unconsumed records stay in the spool. */
void mqtt_stop(mqtt_t *m, void (*done)(void *), void *arg);

const char *mqtt_name(const mqtt_t *m);
/* The party its events are written for, NULL for the whole tenant (admin). */
const char *mqtt_party(const mqtt_t *m);
/* Maps a message received on topic as this instance's configuration says (used to replay
 * dead letters). Returns the event or NULL with the reason. */
cJSON *mqtt_map(const mqtt_t *m, const char *topic, const char *payload, size_t len,
                char *reason, size_t rlen);

typedef struct {
    int connected;
    unsigned long long messages, events, duplicates, dead_letters, reconnects;
    uint64_t spool_depth;
    double lag_seconds;      /* age of the oldest message not yet committed */
} mqtt_stats_t;
void mqtt_stats(const mqtt_t *m, mqtt_stats_t *out);

#endif

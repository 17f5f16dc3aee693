/* profiles — device payloads to canonical events (weighbridge, smart_bin, mapping). */
#include "profiles.h"
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 200   /* API.md: an id is at most 200 characters */

static cJSON *fail(char *reason, size_t rlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cJSON *fail(char *reason, size_t rlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, rlen, fmt, ap);
    va_end(ap);
    return NULL;
}

int profile_parse(const cJSON *sub, profile_t *out, char *err, size_t errlen)
{
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sub, "profile"));
    memset(out, 0, sizeof *out);
    if (!name) return snprintf(err, errlen, "a subscription needs a \"profile\""), -1;
    if (strcmp(name, "weighbridge") == 0) out->kind = PROFILE_WEIGHBRIDGE;
    else if (strcmp(name, "smart_bin") == 0) out->kind = PROFILE_SMART_BIN;
    else if (strcmp(name, "mapping") == 0) out->kind = PROFILE_MAPPING;
    else return snprintf(err, errlen, "unknown profile \"%s\" (weighbridge, smart_bin, mapping)", name), -1;
    if (out->kind != PROFILE_MAPPING) return 0;
    out->map = cJSON_GetObjectItemCaseSensitive(sub, "map");
    out->cnst = cJSON_GetObjectItemCaseSensitive(sub, "const");
    if (!cJSON_IsObject(out->map))
        return snprintf(err, errlen, "profile mapping needs a \"map\" object"), -1;
    if (out->cnst && !cJSON_IsObject(out->cnst))
        return snprintf(err, errlen, "\"const\" must be an object"), -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, out->map)
        if (!cJSON_IsString(m) || (m->valuestring[0] && m->valuestring[0] != '/'))
            return snprintf(err, errlen, "map.%s must be a JSON pointer (\"/…\")", m->string), -1;
    return 0;
}

const cJSON *profile_pointer(const cJSON *doc, const char *ptr)
{
    if (!*ptr) return doc;
    if (*ptr != '/') return NULL;
    const cJSON *cur = doc;
    buf_t tok = BUF_INIT;
    for (const char *p = ptr + 1;; p++) {
        if (*p && *p != '/') {
            if (*p == '~' && (p[1] == '0' || p[1] == '1')) buf_putc(&tok, p[1] == '0' ? '~' : '/'), p++;
            else buf_putc(&tok, *p);
            continue;
        }
        const char *key = tok.data ? tok.data : "";
        if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(key, &end, 10);
            cur = *key && !*end && i >= 0 ? cJSON_GetArrayItem(cur, (int)i) : NULL;
        } else {
            cur = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, key) : NULL;
        }
        buf_reset(&tok);
        if (!cur || !*p) break;
    }
    buf_free(&tok);
    return cur;
}

/* Sets a dotted path ("quantity.value") in obj to v (taken), creating objects on the way. */
static void set_path(cJSON *obj, const char *path, cJSON *v)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, path);
        cJSON_AddItemToObject(obj, path, v);
        return;
    }
    char *head = xstrndup(path, (size_t)(dot - path));
    cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, head);
    if (!cJSON_IsObject(child)) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, head);
        child = cJSON_AddObjectToObject(obj, head);
    }
    free(head);
    set_path(child, dot + 1, v);
}

/* The device's configured fields (site, material, ewc, type, …) copied into ev. */
static void add_device_fields(cJSON *ev, const cJSON *dev, const char *skip_type)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, dev) {
        if (skip_type && strcmp(f->string, "type") == 0) continue;
        cJSON_DeleteItemFromObjectCaseSensitive(ev, f->string);
        cJSON_AddItemToObject(ev, f->string, cJSON_Duplicate(f, 1));
    }
}

static const char *str_field(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static int num_field(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return -1;
    *out = v->valuedouble;
    return 0;
}

static int make_id(char *out, size_t n, const char *name, const char *dev, const char *key,
                   const char *suffix)
{
    int w = snprintf(out, n, "%s:%s:%s%s%s", name, dev, key, suffix ? ":" : "", suffix ? suffix : "");
    return w < 0 || (size_t)w >= n || w > ID_MAX ? -1 : 0;
}

/* The quantity object {value, unit, basis: measured}; value rounded to µ-units so that
 * 12.5 - 8.3 is 4.2, not 4.199999999999999. */
static cJSON *quantity(double v, const char *unit)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddNumberToObject(q, "value", round(v * 1e6) / 1e6);
    cJSON_AddStringToObject(q, "unit", unit);
    cJSON_AddStringToObject(q, "basis", "measured");
    return q;
}

static cJSON *weighbridge(const cJSON *doc, const cJSON *dev, const char *name, const char *device,
                          char *reason, size_t rlen)
{
    const char *ticket = str_field(doc, "ticket"), *time = str_field(doc, "time");
    const char *unit = str_field(doc, "unit");
    double gross, tare;
    if (!ticket) return fail(reason, rlen, "weighbridge: \"ticket\" (a string) is missing");
    if (!time) return fail(reason, rlen, "weighbridge: \"time\" (RFC 3339) is missing");
    if (num_field(doc, "gross", &gross) || num_field(doc, "tare", &tare))
        return fail(reason, rlen, "weighbridge: \"gross\" and \"tare\" must be numbers");
    if (!(gross - tare > 0))
        return fail(reason, rlen, "weighbridge: gross %g - tare %g is not above 0", gross, tare);
    char id[256];
    if (make_id(id, sizeof id, name, device, ticket, NULL))
        return fail(reason, rlen, "weighbridge: the event id would exceed %d characters", ID_MAX);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    const char *type = str_field(dev, "type");
    cJSON_AddStringToObject(ev, "type", type ? type : "received");
    cJSON_AddStringToObject(ev, "time", time);
    add_device_fields(ev, dev, "type");
    cJSON_AddItemToObject(ev, "quantity", quantity(gross - tare, unit ? unit : "kg"));
    cJSON_AddStringToObject(ev, "device", device);
    cJSON_AddStringToObject(ev, "document", ticket);
    return ev;
}

static cJSON *smart_bin(const cJSON *doc, const cJSON *dev, const char *name, const char *device,
                        char *reason, size_t rlen)
{
    const char *time = str_field(doc, "time");
    if (!time) return fail(reason, rlen, "smart_bin: \"time\" (RFC 3339) is missing");
    const cJSON *pickup = cJSON_GetObjectItemCaseSensitive(doc, "pickup");
    double fill, weight;
    int is_pickup = cJSON_IsTrue(pickup);
    if (!is_pickup && num_field(doc, "fill", &fill))
        return fail(reason, rlen, "smart_bin: neither \"fill\" (a number) nor \"pickup\": true");
    if (is_pickup && num_field(doc, "weight", &weight))
        return fail(reason, rlen, "smart_bin: a pickup needs \"weight\" (a number)");
    char id[256];
    if (make_id(id, sizeof id, name, device, time, is_pickup ? "pickup" : "fill"))
        return fail(reason, rlen, "smart_bin: the event id would exceed %d characters", ID_MAX);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "type", is_pickup ? "collected" : "measured");
    cJSON_AddStringToObject(ev, "time", time);
    add_device_fields(ev, dev, "type");
    cJSON_AddStringToObject(ev, "device", device);
    if (is_pickup) {
        const char *unit = str_field(doc, "unit");
        cJSON_AddItemToObject(ev, "quantity", quantity(weight, unit ? unit : "kg"));
        return ev;
    }
    /* A fill level is a reading, not a flow: no quantity, the level goes to ext. */
    cJSON_DeleteItemFromObjectCaseSensitive(ev, "ewc");
    cJSON *ext = cJSON_GetObjectItemCaseSensitive(ev, "ext");
    if (!cJSON_IsObject(ext)) {
        cJSON_DeleteItemFromObjectCaseSensitive(ev, "ext");
        ext = cJSON_AddObjectToObject(ev, "ext");
    }
    cJSON_AddNumberToObject(ext, "fill", fill);
    return ev;
}

static cJSON *mapping(const profile_t *p, const cJSON *doc, const cJSON *devices, const char *name,
                      char *reason, size_t rlen)
{
    cJSON *ev = cJSON_CreateObject();
    const cJSON *c;
    cJSON_ArrayForEach(c, p->cnst) set_path(ev, c->string, cJSON_Duplicate(c, 1));
    const cJSON *m;
    cJSON_ArrayForEach(m, p->map) {
        const cJSON *v = profile_pointer(doc, m->valuestring);
        if (!v) {
            cJSON_Delete(ev);
            return fail(reason, rlen, "mapping: %s: the payload has nothing at \"%s\"", m->string,
                        m->valuestring);
        }
        set_path(ev, m->string, cJSON_Duplicate(v, 1));
    }
    const char *device = str_field(ev, "device"), *time = str_field(ev, "time");
    const char *given = str_field(ev, "id");
    const cJSON *dev = device ? cJSON_GetObjectItemCaseSensitive(devices, device) : NULL;
    if (device && !dev && !str_field(ev, "site")) {
        cJSON_Delete(ev);
        return fail(reason, rlen, "unknown device \"%s\"", device);
    }
    if (dev) add_device_fields(ev, dev, str_field(ev, "type") ? "type" : NULL);
    char id[256];
    int bad = given ? snprintf(id, sizeof id, "%s:%s", name, given) > ID_MAX
                    : !device || !time || make_id(id, sizeof id, name, device, time, NULL);
    if (bad) {
        cJSON_Delete(ev);
        return fail(reason, rlen, "mapping: no event id: map \"id\", or \"device\" and \"time\" "
                                  "(at most %d characters)", ID_MAX);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(ev, "id");
    cJSON_AddStringToObject(ev, "id", id);
    return ev;
}

cJSON *profile_map(const profile_t *p, const char *name, const cJSON *devices,
                   const char *payload, size_t len, char *reason, size_t rlen)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
    if (!doc) return fail(reason, rlen, "malformed payload: not JSON (near byte %ld)",
                          end ? (long)(end - payload) : 0L);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return fail(reason, rlen, "malformed payload: not a JSON object");
    }
    cJSON *ev = NULL;
    if (p->kind == PROFILE_MAPPING) {
        ev = mapping(p, doc, devices, name, reason, rlen);
        cJSON_Delete(doc);
        return ev;
    }
    const char *device = str_field(doc, "device");
    const cJSON *dev = device ? cJSON_GetObjectItemCaseSensitive(devices, device) : NULL;
    if (!device) fail(reason, rlen, "malformed payload: \"device\" (a string) is missing");
    else if (!cJSON_IsObject(dev)) fail(reason, rlen, "unknown device \"%s\"", device);
    else if (p->kind == PROFILE_WEIGHBRIDGE) ev = weighbridge(doc, dev, name, device, reason, rlen);
    else ev = smart_bin(doc, dev, name, device, reason, rlen);
    cJSON_Delete(doc);
    return ev;
}

/* report — builds a report's canonical document and its SHA-256 (see report.h). */
#include "report.h"
#include "jcs.h"

#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

const char *const report_types[] = {"waste_register", "prtr_transfers", "circularity_summary",
                                    "recovery_certificate", NULL};

int report_type_valid(const char *s)
{
    for (const char *const *t = report_types; s && *t; t++)
        if (strcmp(*t, s) == 0) return 1;
    return 0;
}

static void hex(const unsigned char *h, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256_hex(const buf_t *b, char out[65])
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(b->data ? b->data : ""), b->len, h);
    hex(h, sizeof h, out);
}

int report_new_id(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return -1;
    hex(r, sizeof r, out);
    return 0;
}

/* Moves member name of from into to (absent: JSON null), so the document has every member. */
static void move_member(cJSON *to, cJSON *from, const char *name)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(from, name);
    cJSON_AddItemToObject(to, name, v ? v : cJSON_CreateNull());
}

/* A waste register names where its consignments are listed (they are not in the document). */
static void add_listing_link(cJSON *doc, const report_meta_t *meta)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "data"),
                                                "consignments");
    if (strcmp(meta->type, "waste_register") != 0 || !cJSON_IsObject(c)) return;
    char link[96];
    snprintf(link, sizeof link, "/v1/reports/%s/consignments", meta->id);
    cJSON_AddStringToObject(c, "listing", link);
}

cJSON *report_build(const report_meta_t *meta, const char *data_json, buf_t *canon,
                    char sha_hex[65], char *err, size_t errlen)
{
    cJSON *read = cJSON_Parse(data_json);
    if (!cJSON_IsObject(read)) {
        snprintf(err, errlen, "the report data is not a JSON object");
        cJSON_Delete(read);
        return NULL;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "schema", REPORT_SCHEMA);
    cJSON_AddStringToObject(doc, "id", meta->id);
    cJSON_AddStringToObject(doc, "type", meta->type);
    cJSON_AddStringToObject(doc, "generated", meta->generated);
    cJSON_AddItemToObject(doc, "params", cJSON_Duplicate(meta->params, 1));
    move_member(doc, read, "tenant");
    move_member(doc, read, "period");
    move_member(doc, read, "block");
    move_member(doc, read, "data");
    cJSON_Delete(read);
    add_listing_link(doc, meta);
    buf_reset(canon);
    if (jcs_serialize(doc, canon) != 0) {
        snprintf(err, errlen, "the report cannot be canonicalised");
        cJSON_Delete(doc);
        return NULL;
    }
    sha256_hex(canon, sha_hex);
    return doc;
}

int report_canonical_sha256(const char *json, size_t len, buf_t *canon, char sha_hex[65])
{
    cJSON *doc = cJSON_ParseWithLength(json, len);
    buf_reset(canon);
    int rc = doc && jcs_serialize(doc, canon) == 0 ? 0 : -1;
    cJSON_Delete(doc);
    if (rc == 0) sha256_hex(canon, sha_hex);
    return rc;
}

static const cJSON *at(const cJSON *doc, const char *dotted)
{
    char key[128];
    const cJSON *v = doc;
    while (v && *dotted) {
        size_t n = strcspn(dotted, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, dotted, n);
        key[n] = '\0';
        v = cJSON_GetObjectItemCaseSensitive(v, key);
        dotted += n + (dotted[n] == '.');
    }
    return v;
}

const char *report_str(const cJSON *doc, const char *dotted)
{
    const cJSON *v = at(doc, dotted);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double report_num(const cJSON *doc, const char *dotted)
{
    const cJSON *v = at(doc, dotted);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

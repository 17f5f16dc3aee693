/* plm_map — PLM documents (AAS v3 submodels or mapped JSON) to product master data. */
#include "plm_map.h"
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_CODE, F_TEXT, F_STATUS, F_POSITIVE, F_FRACTION };

/* One field: its mapping key, the product (or bill line) field it fills, its rule, and where
 * it is found when the mapping does not say: an idShort (aas) or a pointer (json). */
typedef struct {
    const char *key, *field;
    int kind;
    const char *aas, *json;
} spec_t;

static const spec_t product_specs[] = {
    {"code", "code", F_CODE, "PartNumber", "/code"},
    {"name", "name", F_TEXT, "ProductName", "/name"},
    {"revision", "revision", F_TEXT, "Revision", "/revision"},
    {"status", "status", F_STATUS, "LifecycleStatus", "/status"},
    {"mass_kg", "mass_kg", F_POSITIVE, "Mass", "/mass_kg"},
    {"lifetime_days", "lifetime_days", F_POSITIVE, "LifetimeDays", "/lifetime_days"},
    {"industry_lifetime_days", "industry_lifetime_days", F_POSITIVE, "IndustryLifetimeDays",
     "/industry_lifetime_days"},
};
#define NPRODUCT (sizeof product_specs / sizeof product_specs[0])

/* "material_name" only names a material the catalogue lacks; it is not part of a bill line. */
static const spec_t bom_specs[] = {
    {"bom.material", "material", F_CODE, "MaterialCode", "/material"},
    {"bom.material_name", NULL, F_TEXT, "MaterialName", "/material_name"},
    {"bom.mass_kg", "mass_kg", F_POSITIVE, "Mass", "/mass_kg"},
    {"bom.recycled_fraction", "recycled_fraction", F_FRACTION, "RecycledFraction",
     "/recycled_fraction"},
    {"bom.reused_fraction", "reused_fraction", F_FRACTION, "ReusedFraction", "/reused_fraction"},
    {"bom.renewable_fraction", "renewable_fraction", F_FRACTION, "RenewableFraction",
     "/renewable_fraction"},
};
#define NBOM (sizeof bom_specs / sizeof bom_specs[0])

static const char *const statuses[] = {"released", "obsolete", "end_of_life", NULL};

struct plm_map {
    int aas;
    const char *product[NPRODUCT], *bom[NBOM];   /* point into conf */
    const char *items, *bom_list, *cursor, *cursor_param;
    char *semantic_id;                           /* owned */
    const cJSON *status_values;                  /* {"source value": "circa status"} */
    cJSON *conf;                                 /* a copy of the mapping: owns the strings */
};

const cJSON *plm_map_pointer(const cJSON *doc, const char *ptr)
{
    if (!ptr || (*ptr && *ptr != '/')) return NULL;
    while (doc && *ptr == '/') {
        ptr++;
        char tok[256];
        size_t n = 0;
        for (; *ptr && *ptr != '/' && n + 1 < sizeof tok; ptr++) {
            char c = *ptr;
            if (c == '~' && (ptr[1] == '0' || ptr[1] == '1')) c = *++ptr == '0' ? '~' : '/';
            tok[n++] = c;
        }
        tok[n] = '\0';
        if (cJSON_IsArray(doc)) {
            char *end;
            long i = strtol(tok, &end, 10);
            doc = *end || !n ? NULL : cJSON_GetArrayItem(doc, (int)i);
        } else {
            doc = cJSON_GetObjectItemCaseSensitive(doc, tok);
        }
    }
    return doc;
}

static const char *conf_str(const cJSON *conf, const char *key, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(conf, key);
    return cJSON_IsString(v) ? v->valuestring : def;
}

static int known_key(const char *k)
{
    static const char *const extra[] = {"items", "bom", "cursor", "cursor_param",
                                        "status_values", NULL};
    for (size_t i = 0; i < NPRODUCT; i++)
        if (strcmp(product_specs[i].key, k) == 0) return 1;
    for (size_t i = 0; i < NBOM; i++)
        if (strcmp(bom_specs[i].key, k) == 0) return 1;
    for (const char *const *e = extra; *e; e++)
        if (strcmp(*e, k) == 0) return 1;
    return 0;
}

/* A typo in a mapping would silently map nothing, so unknown keys are refused. */
static int check_mapping(const cJSON *mapping, char *err, size_t errlen)
{
    if (mapping && !cJSON_IsObject(mapping)) {
        snprintf(err, errlen, "source.mapping must be an object");
        return -1;
    }
    for (const cJSON *c = mapping ? mapping->child : NULL; c; c = c->next) {
        if (!known_key(c->string)) {
            snprintf(err, errlen, "source.mapping.%.64s: unknown key", c->string);
            return -1;
        }
        if (strcmp(c->string, "status_values") == 0 ? !cJSON_IsObject(c) : !cJSON_IsString(c)) {
            snprintf(err, errlen, "source.mapping.%.64s: wrong type", c->string);
            return -1;
        }
    }
    return 0;
}

plm_map_t *plm_map_new(const cJSON *source, char *err, size_t errlen)
{
    const char *type = conf_str(source, "type", "");
    int aas = strcmp(type, "aas") == 0;
    if (!aas && strcmp(type, "json") != 0) {
        snprintf(err, errlen, "source.type must be \"aas\" or \"json\"");
        return NULL;
    }
    const cJSON *mapping = cJSON_GetObjectItemCaseSensitive(source, "mapping");
    if (check_mapping(mapping, err, errlen)) return NULL;
    plm_map_t *m = xcalloc(1, sizeof *m);
    m->aas = aas;
    m->conf = mapping ? cJSON_Duplicate(mapping, 1) : cJSON_CreateObject();
    for (size_t i = 0; i < NPRODUCT; i++)
        m->product[i] = conf_str(m->conf, product_specs[i].key,
                                 aas ? product_specs[i].aas : product_specs[i].json);
    for (size_t i = 0; i < NBOM; i++)
        m->bom[i] = conf_str(m->conf, bom_specs[i].key, aas ? bom_specs[i].aas : bom_specs[i].json);
    m->items = conf_str(m->conf, "items", "/items");
    m->bom_list = conf_str(m->conf, "bom", aas ? "Materials" : "/bom");
    m->cursor = conf_str(m->conf, "cursor", "/next_cursor");
    m->cursor_param = conf_str(m->conf, "cursor_param", "modified_since");
    m->status_values = cJSON_GetObjectItemCaseSensitive(m->conf, "status_values");
    const cJSON *sem = cJSON_GetObjectItemCaseSensitive(source, "semantic_id");
    m->semantic_id = cJSON_IsString(sem) ? xstrdup(sem->valuestring) : NULL;
    return m;
}

void plm_map_free(plm_map_t *m)
{
    if (!m) return;
    cJSON_Delete(m->conf);
    free(m->semantic_id);
    free(m);
}

const char *plm_map_cursor_param(const plm_map_t *m)
{
    return m->cursor_param;
}

int plm_map_is_aas(const plm_map_t *m)
{
    return m->aas;
}

void plm_batch_free(plm_batch_t *b)
{
    cJSON_Delete(b->products);
    cJSON_Delete(b->materials);
    free(b->cursor);
    buf_free(&b->reasons);
    memset(b, 0, sizeof *b);
}

/* ---- reading values ---------------------------------------------------------------------- */

/* An AAS element of a list of submodel elements, by idShort. */
static const cJSON *aas_element(const cJSON *elements, const char *id_short)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, elements) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "idShort");
        if (cJSON_IsString(id) && strcmp(id->valuestring, id_short) == 0) return e;
    }
    return NULL;
}

/* A field's raw value in one item: for aas, item is a list of submodel elements and the
 * value is the element's "value" (a string for a Property, [{language, text}] for a
 * MultiLanguageProperty); for json, the pointer's target. */
static const cJSON *value_of(const plm_map_t *m, const cJSON *item, const char *where)
{
    if (!m->aas) return plm_map_pointer(item, where);
    return cJSON_GetObjectItemCaseSensitive(aas_element(item, where), "value");
}

static const char *as_text(const cJSON *v)
{
    if (cJSON_IsArray(v)) v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 0), "text");
    return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* AAS carries every Property value as a string (xs:double "0.3"); JSON may do either. */
static int as_number(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return isfinite(*out);
    }
    if (!cJSON_IsString(v) || !*v->valuestring) return 0;
    char *end;
    *out = strtod(v->valuestring, &end);
    return !*end && isfinite(*out);
}

/* Source lifecycle words to circa's: status_values first, else lower case with '-' and ' '
 * read as '_' ("End-of-Life" is end_of_life). */
static const char *status_of(const plm_map_t *m, const char *s, char *tmp, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->status_values, s);
    if (cJSON_IsString(v)) s = v->valuestring;
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) {
        char c = s[i];
        tmp[i] = c == '-' || c == ' ' ? '_' : c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    tmp[i] = '\0';
    for (const char *const *a = statuses; *a; a++)
        if (strcmp(*a, tmp) == 0) return *a;
    return NULL;
}

/* Checks one value by its rule and adds it to obj under field; on error says why in why. */
static int put_field(const plm_map_t *m, cJSON *obj, const spec_t *s, const cJSON *raw,
                     char *why, size_t n)
{
    double x;
    char tmp[64];
    const char *t = as_text(raw), *st;
    switch (s->kind) {
    case F_CODE:
        if (!t || !api_valid_code(t)) break;
        cJSON_AddStringToObject(obj, s->field, t);
        return 0;
    case F_TEXT:
        if (!t || strlen(t) > 1000) break;
        if (s->field) cJSON_AddStringToObject(obj, s->field, t);
        return 0;
    case F_STATUS:
        if (!t || !(st = status_of(m, t, tmp, sizeof tmp))) break;
        cJSON_AddStringToObject(obj, s->field, st);
        return 0;
    case F_POSITIVE:
        if (!as_number(raw, &x) || !(x > 0)) break;
        cJSON_AddNumberToObject(obj, s->field, x);
        return 0;
    case F_FRACTION:
        if (!as_number(raw, &x) || x < 0 || x > 1) break;
        cJSON_AddNumberToObject(obj, s->field, x);
        return 0;
    }
    static const char *const rule[] = {"1 to 64 letters, digits, '-', '_' or '.'",
                                       "1 to 1000 characters", "released, obsolete or end_of_life",
                                       "a number greater than 0", "a number from 0 to 1"};
    snprintf(why, n, "%s: must be %s", s->key, rule[s->kind]);
    return -1;
}

/* ---- items ------------------------------------------------------------------------------- */

static void add_material(cJSON *materials, const char *code, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, materials)
        if (strcmp(cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring, code) == 0) return;
    cJSON *mat = cJSON_CreateObject();
    cJSON_AddStringToObject(mat, "code", code);
    cJSON_AddStringToObject(mat, "name", name ? name : code);
    cJSON_AddItemToArray(materials, mat);
}

/* An aas bill line is a SubmodelElementCollection whose value lists its Properties. */
static const cJSON *line_fields(const plm_map_t *m, const cJSON *line)
{
    return m->aas ? cJSON_GetObjectItemCaseSensitive(line, "value") : line;
}

static int map_line(const plm_map_t *m, const cJSON *line, cJSON *bom, cJSON *materials,
                    char *why, size_t n)
{
    const cJSON *f = line_fields(m, line);
    cJSON *out = cJSON_CreateObject();
    double sum = 0;
    for (size_t i = 0; i < NBOM; i++) {
        const cJSON *raw = value_of(m, f, m->bom[i]);
        if (!raw && i > 0) continue;   /* only the material is required */
        if (put_field(m, out, &bom_specs[i], raw, why, n)) {
            cJSON_Delete(out);
            return -1;
        }
        if (bom_specs[i].kind == F_FRACTION)
            sum += cJSON_GetObjectItem(out, bom_specs[i].field)->valuedouble;
    }
    if (sum > 1 + 1e-9) {
        snprintf(why, n, "bom: recycled + reused + renewable fractions are %g; at most 1", sum);
        cJSON_Delete(out);
        return -1;
    }
    add_material(materials, cJSON_GetObjectItem(out, "material")->valuestring,
                 as_text(value_of(m, f, m->bom[1])));
    cJSON_AddItemToArray(bom, out);
    return 0;
}

static const cJSON *bom_lines(const plm_map_t *m, const cJSON *fields)
{
    return value_of(m, fields, m->bom_list);
}

static int map_bom(const plm_map_t *m, const cJSON *fields, cJSON *product, cJSON *materials,
                   char *why, size_t n)
{
    const cJSON *lines = bom_lines(m, fields);
    if (!lines) return 0;
    if (!cJSON_IsArray(lines)) {
        snprintf(why, n, "bom: must be a list");
        return -1;
    }
    cJSON *bom = cJSON_AddArrayToObject(product, "bom");
    const cJSON *line;
    cJSON_ArrayForEach(line, lines)
        if (map_line(m, line, bom, materials, why, n)) return -1;
    return 0;
}

/* AAS fallbacks: the name from displayName or idShort, the revision from administration. */
static void aas_defaults(const cJSON *submodel, cJSON *product)
{
    if (!cJSON_GetObjectItem(product, "name")) {
        const char *t = as_text(cJSON_GetObjectItemCaseSensitive(submodel, "displayName"));
        if (!t) t = as_text(cJSON_GetObjectItemCaseSensitive(submodel, "idShort"));
        if (t && strlen(t) <= 1000) cJSON_AddStringToObject(product, "name", t);
    }
    const cJSON *adm = cJSON_GetObjectItemCaseSensitive(submodel, "administration");
    const char *v = as_text(cJSON_GetObjectItemCaseSensitive(adm, "version"));
    const char *r = as_text(cJSON_GetObjectItemCaseSensitive(adm, "revision"));
    if (cJSON_GetObjectItem(product, "revision") || !v) return;
    char rev[128];
    snprintf(rev, sizeof rev, r ? "%.60s.%.60s" : "%.60s", v, r);
    cJSON_AddStringToObject(product, "revision", rev);
}

/* One item to a product; NULL with why when it breaks a rule. Absent fields stay absent so
 * the stored record keeps its value for them. */
static cJSON *map_item(const plm_map_t *m, const cJSON *item, cJSON *materials, char *why,
                       size_t n)
{
    const cJSON *fields = m->aas ? cJSON_GetObjectItemCaseSensitive(item, "submodelElements") : item;
    cJSON *p = cJSON_CreateObject();
    cJSON *mats = cJSON_CreateArray();
    int bad = 0;
    for (size_t i = 0; i < NPRODUCT && !bad; i++) {
        const cJSON *raw = value_of(m, fields, m->product[i]);
        if (!raw && i > 0) continue;
        bad = put_field(m, p, &product_specs[i], raw, why, n);
    }
    if (!bad) bad = map_bom(m, fields, p, mats, why, n);
    if (!bad && m->aas) aas_defaults(item, p);
    /* Only a product that is taken names materials. */
    const cJSON *mat;
    if (!bad)
        cJSON_ArrayForEach(mat, mats)
            add_material(materials, cJSON_GetObjectItem(mat, "code")->valuestring,
                         cJSON_GetObjectItem(mat, "name")->valuestring);
    cJSON_Delete(mats);
    if (!bad) return p;
    cJSON_Delete(p);
    return NULL;
}

static int semantic_match(const plm_map_t *m, const cJSON *submodel)
{
    if (!m->semantic_id) return 1;
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(submodel, "semanticId"), "keys");
    const cJSON *k;
    cJSON_ArrayForEach(k, keys) {
        const char *v = as_text(cJSON_GetObjectItemCaseSensitive(k, "value"));
        if (v && strcmp(v, m->semantic_id) == 0) return 1;
    }
    return 0;
}

/* The items of a document, and its cursor. AAS: a GetSubmodelsResult {"result", "paging_
 * metadata": {"cursor"}} or one Submodel (a webhook's push). */
static const cJSON *items_of(const plm_map_t *m, const cJSON *doc, const cJSON **cursor,
                             int *single)
{
    *single = 0;
    if (!m->aas) {
        *cursor = plm_map_pointer(doc, m->cursor);
        return plm_map_pointer(doc, m->items);
    }
    *cursor = plm_map_pointer(doc, "/paging_metadata/cursor");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(doc, "modelType");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "Submodel") == 0) {
        *single = 1;
        return doc;
    }
    return cJSON_GetObjectItemCaseSensitive(doc, "result");
}

int plm_map_apply(const plm_map_t *m, const cJSON *doc, plm_batch_t *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->products = cJSON_CreateArray();
    out->materials = cJSON_CreateArray();
    const cJSON *cursor, *item;
    int single;
    const cJSON *items = items_of(m, doc, &cursor, &single);
    if (!single && !cJSON_IsArray(items)) {
        snprintf(err, errlen, m->aas ? "not an AAS submodel list ({\"result\": […]}) or Submodel"
                                     : "the items pointer does not lead to a list");
        return -1;
    }
    const char *c = as_text(cursor);
    if (c) out->cursor = xstrdup(c);
    int i = 0;
    for (item = single ? items : items->child; item; item = single ? NULL : item->next, i++) {
        if (m->aas && !semantic_match(m, item)) continue;
        char why[160];
        cJSON *p = map_item(m, item, out->materials, why, sizeof why);
        if (p) {
            cJSON_AddItemToArray(out->products, p);
            continue;
        }
        out->rejected++;
        buf_printf(&out->reasons, "%sitem %d: %s", out->reasons.len ? "; " : "", i, why);
    }
    return 0;
}

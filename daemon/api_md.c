/* api_md — master-data REST API: validates parties, sites, materials and products in C and
 * hands them to schema/004's functions, which keep every version with its valid-from time. */
#include "api_md.h"
#include "api.h"
#include "errlist.h"
#include "problem.h"
#include "tenants.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MD_MAX_BODY 65536      /* one record; far beyond any real one, keeps checks cheap */
#define MD_MAX_STRING 1000
#define MD_MAX_ITEMS 1000      /* elements of any array */
#define MD_MAX_OBJECT 16384    /* national_codes, serialised */
#define MD_LIST_DEFAULT 100
#define MD_LIST_MAX 1000
#define MD_SLUG "invalid-master-data"

const store_stmt_t api_md_stmts[] = {
    {"md_create", "SELECT o_status, o_record::text FROM circa_md_create($1, $2, $3, $4::jsonb)"},
    {"md_replace",
     "SELECT o_status, o_record::text FROM circa_md_replace($1, $2, $3, $4::jsonb)"},
    {"md_get",
     "SELECT circa_md_record(doc, code, valid_from)::text FROM masterdata_current "
     "WHERE kind = $1 AND tenant_id = $2 AND code = $3"},
    {"md_get_at",
     "SELECT r::text FROM circa_md_at($1, $2, $3, $4::timestamptz) AS r WHERE r IS NOT NULL"},
    /* "C" order, so the cursor (the last code) compares the same way the list is sorted. */
    {"md_list",
     "SELECT code, circa_md_record(doc, code, valid_from)::text FROM masterdata_current "
     "WHERE kind = $1 AND tenant_id = $2 AND code COLLATE \"C\" > $3 "
     "ORDER BY code COLLATE \"C\" LIMIT $4::int"},
    {NULL, NULL},
};

/* ---- validation ------------------------------------------------------------------------- */

typedef void (*check_fn)(cJSON *v, const char *field, errlist_t *e);

typedef struct {
    const char *name;
    check_fn check;
    int required;
} field_t;

static const char *const party_roles[] = {"generator", "collector", "carrier", "recycler",
                                          "manufacturer", "landfill", "energy_recovery",
                                          "regulator", NULL};
static const char *const site_kinds[] = {"factory", "warehouse", "collection_point", "sorting",
                                         "recycling", "landfill", "incinerator", "retail",
                                         "other", NULL};
static const char *const product_statuses[] = {"released", "obsolete", "end_of_life", NULL};

static void check_members(cJSON *obj, const char *prefix, const field_t *fields, errlist_t *e);
static int utf8_valid(const unsigned char *s, size_t n);

static void field_path(char *out, size_t n, const char *prefix, const char *name)
{
    if (*prefix) snprintf(out, n, "%s.%s", prefix, name);
    else snprintf(out, n, "%s", name);
}

static int want_string(const cJSON *v, const char *field, errlist_t *e)
{
    if (!cJSON_IsString(v)) {
        errlist_add(e, -1, field, "must be a string");
        return 0;
    }
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > MD_MAX_STRING) {
        errlist_add(e, -1, field, "must be 1 to %d characters", MD_MAX_STRING);
        return 0;
    }
    return 1;
}

static int want_number(const cJSON *v, const char *field, errlist_t *e)
{
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) return 1;
    errlist_add(e, -1, field, "must be a number");
    return 0;
}

static void check_text(cJSON *v, const char *field, errlist_t *e)
{
    want_string(v, field, e);
}

static void check_code(cJSON *v, const char *field, errlist_t *e)
{
    if (want_string(v, field, e) && !api_valid_code(v->valuestring))
        errlist_add(e, -1, field, "must be 1 to 64 letters, digits, '-', '_' or '.'");
}

static void check_bool(cJSON *v, const char *field, errlist_t *e)
{
    if (!cJSON_IsBool(v)) errlist_add(e, -1, field, "must be true or false");
}

static void check_positive(cJSON *v, const char *field, errlist_t *e)
{
    if (want_number(v, field, e) && !(v->valuedouble > 0))
        errlist_add(e, -1, field, "must be greater than 0");
}

static void check_nonneg(cJSON *v, const char *field, errlist_t *e)
{
    if (want_number(v, field, e) && !(v->valuedouble >= 0))
        errlist_add(e, -1, field, "must be 0 or more");
}

static void check_efficiency(cJSON *v, const char *field, errlist_t *e)
{
    if (want_number(v, field, e) && !(v->valuedouble > 0 && v->valuedouble <= 1))
        errlist_add(e, -1, field, "must be greater than 0 and at most 1");
}

static void check_fraction(cJSON *v, const char *field, errlist_t *e)
{
    if (want_number(v, field, e) && !(v->valuedouble >= 0 && v->valuedouble <= 1))
        errlist_add(e, -1, field, "must be from 0 to 1");
}

static void check_country(cJSON *v, const char *field, errlist_t *e)
{
    if (!want_string(v, field, e)) return;
    const char *s = v->valuestring;
    if (strlen(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
        errlist_add(e, -1, field, "must be an ISO 3166 alpha-2 code: two capital letters");
}

static void check_enum(const cJSON *v, const char *field, errlist_t *e,
                       const char *const *allowed)
{
    if (!want_string(v, field, e)) return;
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, v->valuestring) == 0) return;
    buf_t list = BUF_INIT;
    for (const char *const *a = allowed; *a; a++)
        buf_printf(&list, "%s%s", a == allowed ? "" : ", ", *a);
    errlist_add(e, -1, field, "unknown value '%.64s'; use one of %s", v->valuestring, list.data);
    buf_free(&list);
}

static void check_role(cJSON *v, const char *field, errlist_t *e)
{
    check_enum(v, field, e, party_roles);
}

static void check_site_kind(cJSON *v, const char *field, errlist_t *e)
{
    check_enum(v, field, e, site_kinds);
}

static void check_status(cJSON *v, const char *field, errlist_t *e)
{
    check_enum(v, field, e, product_statuses);
}

/* An array whose every element passes `each`, named field[i]. */
static void check_array(cJSON *v, const char *field, errlist_t *e, check_fn each)
{
    if (!cJSON_IsArray(v)) {
        errlist_add(e, -1, field, "must be an array");
        return;
    }
    if (cJSON_GetArraySize(v) > MD_MAX_ITEMS) {
        errlist_add(e, -1, field, "must have at most %d elements", MD_MAX_ITEMS);
        return;
    }
    char path[96];
    int i = 0;
    for (cJSON *x = v->child; x; x = x->next, i++) {
        snprintf(path, sizeof path, "%s[%d]", field, i);
        each(x, path, e);
    }
}

static int want_object(const cJSON *v, const char *field, errlist_t *e)
{
    if (cJSON_IsObject(v)) return 1;
    errlist_add(e, -1, field, "must be an object");
    return 0;
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* YYYY-MM-DD; the database rejects impossible days such as 02-30 later. */
static int is_date(const char *s)
{
    return digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' && digits(s + 8, 2) &&
           two(s + 5) >= 1 && two(s + 5) <= 12 && two(s + 8) >= 1 && two(s + 8) <= 31;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM). */
static int is_time(const char *s)
{
    if (strlen(s) < 20 || !is_date(s) || (s[10] != 'T' && s[10] != 't')) return 0;
    const char *t = s + 11;
    if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' || !digits(t + 6, 2))
        return 0;
    if (two(t) > 23 || two(t + 3) > 59 || two(t + 6) > 60) return 0;
    t += 8;
    if (*t == '.') {
        if (!digits(++t, 1)) return 0;
        while (*t >= '0' && *t <= '9') t++;
    }
    if ((*t == 'Z' || *t == 'z') && !t[1]) return 1;
    return (*t == '+' || *t == '-') && digits(t + 1, 2) && t[3] == ':' && digits(t + 4, 2) &&
           !t[6] && two(t + 1) <= 23 && two(t + 4) <= 59;
}

static void check_date(cJSON *v, const char *field, errlist_t *e)
{
    if (!want_string(v, field, e)) return;
    if (!(strlen(v->valuestring) == 10 && is_date(v->valuestring)) && !is_time(v->valuestring))
        errlist_add(e, -1, field, "must be a date (YYYY-MM-DD) or an RFC 3339 time");
}

static const field_t address_fields[] = {
    {"street", check_text, 0}, {"city", check_text, 0},       {"postcode", check_text, 0},
    {"region", check_text, 0}, {"country", check_country, 0}, {NULL, NULL, 0},
};

static const field_t permit_fields[] = {
    {"kind", check_text, 1},       {"number", check_text, 1},
    {"valid_from", check_date, 0}, {"valid_to", check_date, 0},
    {NULL, NULL, 0},
};

static void check_address(cJSON *v, const char *field, errlist_t *e)
{
    if (want_object(v, field, e)) check_members(v, field, address_fields, e);
}

static void check_permit(cJSON *v, const char *field, errlist_t *e)
{
    if (want_object(v, field, e)) check_members(v, field, permit_fields, e);
}

static void check_permits(cJSON *v, const char *field, errlist_t *e)
{
    check_array(v, field, e, check_permit);
}

static void check_roles(cJSON *v, const char *field, errlist_t *e)
{
    check_array(v, field, e, check_role);
}

static void check_identifiers(cJSON *v, const char *field, errlist_t *e)
{
    check_array(v, field, e, check_text);
}

/* Kept verbatim: only its size is limited. */
static void check_national_codes(cJSON *v, const char *field, errlist_t *e)
{
    if (!want_object(v, field, e)) return;
    char *s = cJSON_PrintUnformatted(v);
    if (!s || strlen(s) > MD_MAX_OBJECT)
        errlist_add(e, -1, field, "must be at most %d bytes of JSON", MD_MAX_OBJECT);
    free(s);
}

static const field_t bom_fields[] = {
    {"material", check_code, 1},           {"mass_kg", check_positive, 0},
    {"recycled_fraction", check_fraction, 0}, {"reused_fraction", check_fraction, 0},
    {"renewable_fraction", check_fraction, 0}, {NULL, NULL, 0},
};

static double number_or_zero(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : 0;
}

/* The three fractions describe shares of one mass, so together they cannot exceed it. */
static void check_bom_line(cJSON *v, const char *field, errlist_t *e)
{
    if (!want_object(v, field, e)) return;
    check_members(v, field, bom_fields, e);
    double sum = number_or_zero(v, "recycled_fraction") + number_or_zero(v, "reused_fraction") +
                 number_or_zero(v, "renewable_fraction");
    if (sum > 1 + 1e-9)
        errlist_add(e, -1, field,
                    "recycled_fraction + reused_fraction + renewable_fraction is %g; at most 1",
                    sum);
}

static void check_bom(cJSON *v, const char *field, errlist_t *e)
{
    check_array(v, field, e, check_bom_line);
}

/* Top-level fields per kind; "code" is checked here for its form, and for presence by the
 * handler (a PUT takes it from the path). */
static const field_t party_fields[] = {
    {"code", check_code, 0},         {"name", check_text, 1},
    {"roles", check_roles, 0},       {"country", check_country, 0},
    {"address", check_address, 0},   {"identifiers", check_identifiers, 0},
    {"permits", check_permits, 0},   {NULL, NULL, 0},
};

static const field_t site_fields[] = {
    {"code", check_code, 0},       {"party", check_code, 1},
    {"name", check_text, 1},       {"kind", check_site_kind, 1},
    {"country", check_country, 0}, {"address", check_address, 0},
    {"identifiers", check_identifiers, 0}, {"permits", check_permits, 0},
    {NULL, NULL, 0},
};

static const field_t material_fields[] = {
    {"code", check_code, 0},
    {"name", check_text, 1},
    {"category", check_text, 0},
    {"hazardous", check_bool, 0},
    {"renewable", check_bool, 0},
    {"density_kg_m3", check_positive, 0},
    {"value_per_kg", check_nonneg, 0},
    {"recycling_efficiency_eol", check_efficiency, 0},
    {"recycling_efficiency_feedstock", check_efficiency, 0},
    {"national_codes", check_national_codes, 0},
    {NULL, NULL, 0},
};

static const field_t product_fields[] = {
    {"code", check_code, 0},
    {"name", check_text, 1},
    {"mass_kg", check_positive, 0},
    {"lifetime_days", check_positive, 0},
    {"industry_lifetime_days", check_positive, 0},
    {"revision", check_text, 0},
    {"status", check_status, 0},
    {"bom", check_bom, 0},
    {NULL, NULL, 0},
};

static const field_t *find_field(const field_t *fields, const char *name)
{
    for (const field_t *f = fields; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

/* Refuses unknown members, drops optional ones that are null (absent and null mean the same,
 * and the stored document compares equal either way), then checks each known member. */
static void check_members(cJSON *obj, const char *prefix, const field_t *fields, errlist_t *e)
{
    char path[96];
    for (cJSON *m = obj->child, *next; m; m = next) {
        next = m->next;
        const field_t *f = find_field(fields, m->string);
        field_path(path, sizeof path, prefix, m->string);
        if (!f) errlist_add(e, -1, path, "unknown field");
        else if (cJSON_IsNull(m) && !f->required)
            cJSON_Delete(cJSON_DetachItemViaPointer(obj, m));
    }
    for (const field_t *f = fields; f->name; f++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
        field_path(path, sizeof path, prefix, f->name);
        if (!v || cJSON_IsNull(v)) {
            if (f->required) errlist_add(e, -1, path, "required");
            continue;
        }
        f->check(v, path, e);
    }
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* PostgreSQL's jsonb keeps the last of two equal member names while cJSON reads the first, so
 * a duplicate would store something other than what was checked. */
static void check_dups(const cJSON *j, errlist_t *e)
{
    size_t n = 0;
    for (const cJSON *c = j->child; c; c = c->next, n++) check_dups(c, e);
    if (!cJSON_IsObject(j) || n < 2) return;
    const char **names = xmalloc(n * sizeof *names);
    n = 0;
    for (const cJSON *c = j->child; c; c = c->next) names[n++] = c->string;
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0 && (i < 2 || strcmp(names[i - 2], names[i])))
            errlist_add(e, -1, names[i], "member name appears more than once in one object");
    free(names);
}

/* ---- kinds and requests ----------------------------------------------------------------- */

typedef struct {
    const char *kind;        /* the schema's name, e.g. "party" */
    const char *plural;      /* in paths and as the list's key, e.g. "parties" */
    const char *list_path;
    const char *item_path;
    const field_t *fields;
} kind_t;

static const kind_t kinds[] = {
    {"party", "parties", "/v1/parties", "/v1/parties/{code}", party_fields},
    {"site", "sites", "/v1/sites", "/v1/sites/{code}", site_fields},
    {"material", "materials", "/v1/materials", "/v1/materials/{code}", material_fields},
    {"product", "products", "/v1/products", "/v1/products/{code}", product_fields},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* Handlers are shared by the four kinds; the matched pattern says which one. */
static const kind_t *kind_of(const router_match_t *m)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (strcmp(m->route, kinds[i].list_path) == 0 || strcmp(m->route, kinds[i].item_path) == 0)
            return &kinds[i];
    return &kinds[0]; /* unreachable: only these patterns are registered */
}

/* One request's state across its transaction. */
typedef struct {
    app_t *app;
    http_req_t *req;
    const kind_t *kind;
    char tenant[65];
    char code[65];
    long limit;      /* a list's page size */
    int at;          /* a GET asked for the version at a time */
} call_t;

static call_t *call_new(app_t *app, http_req_t *req, const kind_t *k, const char *tenant,
                        const char *code)
{
    call_t *c = xcalloc(1, sizeof *c);
    c->app = app;
    c->req = req;
    c->kind = k;
    snprintf(c->tenant, sizeof c->tenant, "%s", tenant);
    snprintf(c->code, sizeof c->code, "%s", code ? code : "");
    return c;
}

static void send_invalid(http_req_t *req, const kind_t *k, const errlist_t *e)
{
    problem_send_errors(req, 422, MD_SLUG, "Invalid master data", e, "the %s is invalid: %zu %s",
                        k->kind, e->n, e->n == 1 ? "error" : "errors");
}

/* Checks body as a record of kind k and takes "code" out of it (the code is a column, the
 * rest is the document). path_code is the code of a PUT's path, NULL for a POST. */
static void validate(const kind_t *k, cJSON *body, const char *path_code, char code[65],
                     errlist_t *e)
{
    if (!cJSON_IsObject(body)) {
        errlist_add(e, -1, "", "the body must be a JSON object");
        return;
    }
    check_dups(body, e);
    if (e->n) return;
    check_members(body, "", k->fields, e);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(body, "code");
    if (path_code) {
        if (cJSON_IsString(c) && strcmp(c->valuestring, path_code) != 0)
            errlist_add(e, -1, "code", "differs from the code in the path");
        snprintf(code, 65, "%s", path_code);
    } else if (!c) {
        errlist_add(e, -1, "code", "required");
    } else if (cJSON_IsString(c)) {
        snprintf(code, 65, "%s", c->valuestring);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(body, "code");
}

/* The request body as a record, or NULL when an answer was already sent. */
static cJSON *read_body(http_req_t *req, const kind_t *k, const char *path_code, char code[65])
{
    size_t len;
    const char *raw = http_req_body(req, &len);
    if (len > MD_MAX_BODY) {
        problem_send(req, 413, "payload-too-large", "Payload Too Large", NULL,
                     "a master-data record is limited to %d bytes", MD_MAX_BODY);
        return NULL;
    }
    if (!utf8_valid((const unsigned char *)raw, len)) {
        problem_send(req, 400, "malformed-json", "Malformed JSON", NULL,
                     "the body is not valid UTF-8");
        return NULL;
    }
    cJSON *body = api_json_body(req);
    if (!body) return NULL;
    errlist_t errs = ERRLIST_INIT;
    validate(k, body, path_code, code, &errs);
    if (errs.n) {
        send_invalid(req, k, &errs);
        cJSON_Delete(body);
        body = NULL;
    }
    errlist_free(&errs);
    return body;
}

static void send_record(http_req_t *req, int status, const char *json, const char *extra)
{
    http_respond(req, status, "application/json", json, strlen(json), extra);
}

static void not_found(http_req_t *req, const kind_t *k, const char *code)
{
    problem_send(req, 404, "not-found", "Not found", NULL, "no %s with code '%.64s'", k->kind,
                 code);
}

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF): PostgreSQL
 * refuses anything else, and a client's bad bytes must be its 400, not our 500. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* ---- cursors: base64url of the last code listed ------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_put(buf_t *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)s[i + 2];
        buf_putc(out, b64[v >> 18 & 63]);
        buf_putc(out, b64[v >> 12 & 63]);
        if (i + 1 < n) buf_putc(out, b64[v >> 6 & 63]);
        if (i + 2 < n) buf_putc(out, b64[v & 63]);
    }
}

/* Decodes into out (outlen bytes with the NUL); the length, or -1. */
static int b64url_get(const char *in, char *out, size_t outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (; *in; in++) {
        const char *p = strchr(b64, *in);
        if (!p) return -1;
        acc = acc << 6 | (uint32_t)(p - b64);
        bits += 6;
        if (bits < 8) continue;
        bits -= 8;
        if (o + 1 >= outlen) return -1;
        out[o++] = (char)(acc >> bits & 0xFF);
    }
    out[o] = '\0';
    return (int)o;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* CA102's message starts with the bill line's path, "bom[3].material: …". */
static void bom_error(const char *msg, errlist_t *e)
{
    const char *p = strstr(msg, "bom[");
    char *end = NULL;
    long i = p ? strtol(p + 4, &end, 10) : -1;
    if (i < 0 || !end || *end != ']') {
        errlist_add(e, -1, "bom", "names a material missing from the tenant's catalogue");
        return;
    }
    char field[48];
    snprintf(field, sizeof field, "bom[%ld].material", i);
    errlist_add(e, -1, field, "no material with this code in the tenant's catalogue");
}

/* A write the database refused: a missing reference is the client's 422, the rest ours. */
static void write_refused(call_t *c, store_tx_t *tx, store_status_t st)
{
    const char *state = st == STORE_SQL_ERROR ? store_tx_sqlstate(tx) : "";
    errlist_t errs = ERRLIST_INIT;
    if (strcmp(state, "CA101") == 0)
        errlist_add(&errs, -1, "party", "no party with this code in the tenant");
    else if (strcmp(state, "CA102") == 0)
        bom_error(store_tx_error(tx), &errs);
    if (errs.n) send_invalid(c->req, c->kind, &errs);
    else api_store_failed(c->req, tx, st);
    errlist_free(&errs);
}

static void answer_write(call_t *c, const char *outcome, const char *record)
{
    if (strcmp(outcome, "created") == 0) {
        buf_t loc = BUF_INIT;
        buf_printf(&loc, "Location: /v1/%s/%s\r\n", c->kind->plural, c->code);
        send_record(c->req, 201, record, loc.data);
        buf_free(&loc);
    } else if (strcmp(outcome, "updated") == 0 || strcmp(outcome, "same") == 0) {
        send_record(c->req, 200, record, NULL);
    } else if (strcmp(outcome, "conflict") == 0) {
        problem_send(c->req, 409, "conflict", "Conflict", NULL,
                     "%s %s exists with other content; change it with PUT", c->kind->kind,
                     c->code);
    } else {
        not_found(c->req, c->kind, c->code);
    }
}

static void written(store_tx_t *tx, store_status_t st, void *arg)
{
    call_t *c = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r || PQntuples(r) != 1) {
        write_refused(c, tx, st);
        free(c);
        return;
    }
    const char *outcome = PQgetvalue(r, 0, 0);
    /* Event validation reads a cache of master data: it must see this version at once. */
    if (strcmp(outcome, "created") == 0 || strcmp(outcome, "updated") == 0)
        tenants_md_changed(c->app->tenants, c->tenant);
    answer_write(c, outcome, PQgetvalue(r, 0, 1));
    free(c);
}

static void got(store_tx_t *tx, store_status_t st, void *arg)
{
    call_t *c = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    /* Class 22: ?at= had the right form but no such time (e.g. February 30). */
    if (st == STORE_SQL_ERROR && strncmp(store_tx_sqlstate(tx), "22", 2) == 0)
        problem_send(c->req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "at is not a valid RFC 3339 time");
    else if (!r)
        api_store_failed(c->req, tx, st);
    else if (PQntuples(r) == 0 && c->at)
        problem_send(c->req, 404, "not-found", "Not found", NULL,
                     "no %s with code '%s' at that time", c->kind->kind, c->code);
    else if (PQntuples(r) == 0)
        not_found(c->req, c->kind, c->code);
    else
        send_record(c->req, 200, PQgetvalue(r, 0, 0), NULL);
    free(c);
}

static void listed(store_tx_t *tx, store_status_t st, void *arg)
{
    call_t *c = arg;
    const PGresult *r = st == STORE_OK ? store_tx_result(tx, 0) : NULL;
    if (!r) {
        api_store_failed(c->req, tx, st);
        free(c);
        return;
    }
    /* One row more than asked for says whether another page follows. */
    int rows = PQntuples(r), shown = rows > c->limit ? (int)c->limit : rows;
    buf_t out = BUF_INIT;
    buf_printf(&out, "{\"%s\":[", c->kind->plural);
    for (int i = 0; i < shown; i++) {
        if (i) buf_putc(&out, ',');
        buf_puts(&out, PQgetvalue(r, i, 1));
    }
    buf_puts(&out, "],\"next_cursor\":");
    if (rows > shown) {
        const char *last = PQgetvalue(r, shown - 1, 0);
        buf_putc(&out, '"');
        b64url_put(&out, last, strlen(last));
        buf_putc(&out, '"');
    } else {
        buf_puts(&out, "null");
    }
    buf_putc(&out, '}');
    api_send_buf(c->req, 200, &out, NULL);
    free(c);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void submit_write(app_t *app, http_req_t *req, const kind_t *k, const char *tenant,
                         const char *code, cJSON *doc, const char *stmt)
{
    char *json = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!json) {
        problem_send(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    call_t *c = call_new(app, req, k, tenant, code);
    const char *p[4] = {k->kind, tenant, code, json};
    store_tx_t *tx = store_tx_new(app->store, written, c);
    store_tx_exec(tx, stmt, 4, p, NULL, NULL);
    store_tx_submit(tx);
    free(json);
}

static void md_post(app_t *app, http_req_t *req, const router_match_t *m,
                    const auth_principal_t *who)
{
    const kind_t *k = kind_of(m);
    char code[65] = "";
    cJSON *doc = read_body(req, k, NULL, code);
    if (doc) submit_write(app, req, k, who->tenant, code, doc, "md_create");
}

static void md_put(app_t *app, http_req_t *req, const router_match_t *m,
                   const auth_principal_t *who)
{
    const kind_t *k = kind_of(m);
    if (!api_valid_code(m->params[0])) {
        not_found(req, k, m->params[0]);
        return;
    }
    char code[65] = "";
    cJSON *doc = read_body(req, k, m->params[0], code);
    if (doc) submit_write(app, req, k, who->tenant, code, doc, "md_replace");
}

/* ?at= into at; 1 when given, 0 when absent, -1 when malformed (answered). An unencoded '+'
 * of an offset arrives as a space, and a space is never part of an RFC 3339 time. */
static int query_at(http_req_t *req, char *at, size_t len)
{
    int n = http_query_get(http_req_query(req), "at", at, len);
    if (n == -1) return 0;
    for (int i = 0; i < n; i++)
        if (at[i] == ' ') at[i] = '+';
    if (n >= 0 && is_time(at)) return 1;
    problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                 "at must be an RFC 3339 time such as 2026-03-04T10:15:00Z");
    return -1;
}

static void md_get(app_t *app, http_req_t *req, const router_match_t *m,
                   const auth_principal_t *who)
{
    const kind_t *k = kind_of(m);
    const char *code = m->params[0];
    if (!api_valid_code(code)) {
        not_found(req, k, code);
        return;
    }
    char at[64];
    int has_at = query_at(req, at, sizeof at);
    if (has_at < 0) return;
    call_t *c = call_new(app, req, k, who->tenant, code);
    c->at = has_at;
    const char *p[4] = {k->kind, who->tenant, code, at};
    store_tx_t *tx = store_tx_new(app->store, got, c);
    store_tx_exec(tx, has_at ? "md_get_at" : "md_get", has_at ? 4 : 3, p, NULL, NULL);
    store_tx_submit(tx);
}

/* ?limit= and ?cursor=; 0, or -1 when either is malformed (answered). */
static int list_params(http_req_t *req, long *limit, char after[65])
{
    const char *q = http_req_query(req);
    char s[128];
    int n = http_query_get(q, "limit", s, sizeof s);
    *limit = n == -1                             ? MD_LIST_DEFAULT
             : n >= 1 && n <= 4 && digits(s, n) ? strtol(s, NULL, 10)
                                                : 0;
    if (*limit < 1 || *limit > MD_LIST_MAX) {
        problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                     "limit must be a whole number from 1 to %d", MD_LIST_MAX);
        return -1;
    }
    after[0] = '\0';
    n = http_query_get(q, "cursor", s, sizeof s);
    if (n == -1 || (n >= 0 && b64url_get(s, after, 65) > 0 && api_valid_code(after))) return 0;
    problem_send(req, 400, "invalid-query", "Invalid query parameter", NULL,
                 "cursor is not one this server gave out");
    return -1;
}

static void md_list(app_t *app, http_req_t *req, const router_match_t *m,
                    const auth_principal_t *who)
{
    const kind_t *k = kind_of(m);
    long limit;
    char after[65], fetch[16];
    if (list_params(req, &limit, after)) return;
    call_t *c = call_new(app, req, k, who->tenant, NULL);
    c->limit = limit;
    snprintf(fetch, sizeof fetch, "%ld", limit + 1);
    const char *p[4] = {k->kind, who->tenant, after, fetch};
    store_tx_t *tx = store_tx_new(app->store, listed, c);
    store_tx_exec(tx, "md_list", 4, p, NULL, NULL);
    store_tx_submit(tx);
}

void api_md_register(app_t *app)
{
    for (size_t i = 0; i < NKINDS; i++) {
        api_route(app, "GET", kinds[i].list_path, AUTH_READ, md_list);
        api_route(app, "POST", kinds[i].list_path, AUTH_ADMIN, md_post);
        api_route(app, "GET", kinds[i].item_path, AUTH_READ, md_get);
        api_route(app, "PUT", kinds[i].item_path, AUTH_ADMIN, md_put);
    }
}

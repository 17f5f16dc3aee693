/* epcis — GS1 EPCIS 2.0 documents into canonical circa events (docs/EPCIS.md); no I/O. */
#include "epcis.h"
#include "buf.h"
#include "jcs.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 200          /* API.md: ids are at most 200 characters */
#define ID_BASE_MAX 160     /* room left for "#<part>#error" */

/* ---------------------------------------------------------------------------------------------
 * Vocabulary */

const char *epcis_cbv_short(const char *s)
{
    static const char *const prefixes[] = {
        "https://ref.gs1.org/cbv/BizStep-", "https://ref.gs1.org/cbv/Disp-",
        "urn:epcglobal:cbv:bizstep:", "urn:epcglobal:cbv:disp:", "cbv:BizStep-", "cbv:Disp-",
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(s, prefixes[i], n) == 0) return s + n;
    }
    return s;
}

/* VOCABULARY.md's bizStep column; every other step is "observed". */
static const struct { const char *step, *type; } bizsteps[] = {
    {"commissioning", "produced"}, {"creating_class_instance", "produced"},
    {"shipping", "shipped"}, {"departing", "shipped"},
    {"receiving", "received"}, {"arriving", "received"}, {"accepting", "received"},
    {"retail_selling", "put_on_market"}, {"dispensing", "put_on_market"},
    {"returning", "returned"}, {"collecting", "collected"},
    {"disassembling", "sorted"}, {"sorting", "sorted"}, {"repairing", "repaired"},
    {"refurbishing", "refurbished"}, {"remanufacturing", "remanufactured"},
    {"reusing", "reused"}, {"recycling", "recycled"}, {"destroying", "disposed"},
    {"sensor_reporting", "measured"},
};

const char *epcis_bizstep_type(const char *bizstep, const char *disposition)
{
    if (!bizstep) return "observed";
    for (size_t i = 0; i < sizeof bizsteps / sizeof bizsteps[0]; i++) {
        if (strcmp(bizstep, bizsteps[i].step) != 0) continue;
        if (strcmp(bizsteps[i].type, "received") == 0 && disposition &&
            strcmp(disposition, "returned") == 0)
            return "returned";
        return bizsteps[i].type;
    }
    return "observed";
}

const char *epcis_unit(const char *uom)
{
    static const char *const units[][2] = {
        {"KGM", "kg"}, {"TNE", "t"}, {"GRM", "g"}, {"LBR", "lb"}, {"LTR", "l"}, {"MTQ", "m3"},
    };
    for (size_t i = 0; uom && i < sizeof units / sizeof units[0]; i++)
        if (strcmp(uom, units[i][0]) == 0) return units[i][1];
    return NULL;
}

/* "CP.IR" digits of an (L)GTIN-bearing EPC URN: the 13 digits after the scheme's prefix. */
int epcis_gtin14(const char *epc, char out[15])
{
    static const char *const schemes[] = {"urn:epc:id:sgtin:", "urn:epc:class:lgtin:",
                                          "urn:epc:idpat:sgtin:"};
    const char *p = NULL;
    for (int i = 0; i < 3 && !p; i++)
        if (strncmp(epc, schemes[i], strlen(schemes[i])) == 0) p = epc + strlen(schemes[i]);
    if (!p) return -1;
    size_t cp = strspn(p, "0123456789");
    if (p[cp] != '.') return -1;
    size_t ir = strspn(p + cp + 1, "0123456789");
    if (cp + ir != 13 || ir < 1 || (p[cp + 1 + ir] != '.' && p[cp + 1 + ir] != '\0')) return -1;
    /* GTIN-14 = indicator digit (first of the item reference), company prefix, rest, check. */
    char d[14];
    d[0] = p[cp + 1];
    memcpy(d + 1, p, cp);
    memcpy(d + 1 + cp, p + cp + 2, ir - 1);
    int sum = 0;
    for (int i = 0; i < 13; i++) sum += (d[i] - '0') * (i % 2 == 0 ? 3 : 1);
    memcpy(out, d, 13);
    out[13] = (char)('0' + (10 - sum % 10) % 10);
    out[14] = '\0';
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Document shape and identifiers */

static const cJSON *event_list(const cJSON *doc)
{
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(doc, "epcisBody");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "eventList");
    return cJSON_IsArray(list) ? list : NULL;
}

int epcis_doc_check(const cJSON *doc, errlist_t *errs)
{
    if (!cJSON_IsObject(doc)) {
        errlist_add(errs, -1, "", "the body is not a JSON object");
        return -1;
    }
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "type"));
    if (!type || strcmp(type, "EPCISDocument") != 0)
        errlist_add(errs, -1, "type", "type must be \"EPCISDocument\"");
    if (!event_list(doc))
        errlist_add(errs, -1, "epcisBody.eventList", "epcisBody.eventList must be an array of events");
    return errs->n ? -1 : 0;
}

static void add_unique(cJSON *arr, const char *s)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (strcmp(x->valuestring, s) == 0) return;
    cJSON_AddItemToArray(arr, cJSON_CreateString(s));
}

/* "urn:epc:id:sgln:CP.LOC.EXT" with EXT other than 0 -> the same with ".0" (the GLN itself). */
static int gln_form(const char *id, char *out, size_t outlen)
{
    static const char pfx[] = "urn:epc:id:sgln:";
    if (strncmp(id, pfx, sizeof pfx - 1) != 0) return -1;
    const char *last = strrchr(id, '.');
    const char *first = strchr(id + sizeof pfx - 1, '.');
    if (!last || last == first || strcmp(last, ".0") == 0) return -1;
    int n = snprintf(out, outlen, "%.*s.0", (int)(last - id), id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static void add_identifier(cJSON *arr, const char *id)
{
    char gln[256];
    if (!id || !*id) return;
    add_unique(arr, id);
    if (gln_form(id, gln, sizeof gln) == 0) add_unique(arr, gln);
}

static void add_ends(cJSON *arr, const cJSON *list, const char *key)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
        add_identifier(arr, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, key)));
}

static const char *loc_id(const cJSON *ev, const char *key)
{
    const cJSON *loc = cJSON_GetObjectItemCaseSensitive(ev, key);
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(loc, "id"));
}

cJSON *epcis_identifiers(const cJSON *doc)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *ev;
    cJSON_ArrayForEach(ev, event_list(doc)) {
        add_identifier(arr, loc_id(ev, "readPoint"));
        add_identifier(arr, loc_id(ev, "bizLocation"));
        add_ends(arr, cJSON_GetObjectItemCaseSensitive(ev, "sourceList"), "source");
        add_ends(arr, cJSON_GetObjectItemCaseSensitive(ev, "destinationList"), "destination");
    }
    return arr;
}

/* ---------------------------------------------------------------------------------------------
 * Mapping one event */

typedef struct {
    const epcis_places_t *pl;
    const char *prefix;          /* of the circa namespace */
    errlist_t *errs;
    int index;                   /* in eventList */
    const cJSON *ev;             /* the EPCIS event as sent */
    cJSON *plain;                /* the event without its errorDeclaration */
    const char *bizstep;         /* short name, or NULL */
    const char *type;            /* canonical type of the flow parts */
    const char *site, *from_site, *to_site;
    char base_id[ID_BASE_MAX + 80];
    cJSON *parts;                /* canonical events of this EPCIS event */
} mctx_t;

static void merr(mctx_t *m, const char *field, const char *msg)
{
    errlist_add(m->errs, m->index, field, "%s", msg);
}

static const cJSON *ext_get(const mctx_t *m, const cJSON *obj, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "%s:%s", m->prefix, name);
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *ext_str(const mctx_t *m, const cJSON *obj, const char *name)
{
    return cJSON_GetStringValue(ext_get(m, obj, name));
}

/* A place: the identifier itself, else its GLN form. */
static const char *resolve(const mctx_t *m, const char *id, int party_too)
{
    char gln[256];
    if (!id) return NULL;
    const char *code = m->pl->site(m->pl->ud, id);
    if (!code && gln_form(id, gln, sizeof gln) == 0) code = m->pl->site(m->pl->ud, gln);
    if (!code && party_too) code = m->pl->party(m->pl->ud, id);
    return code;
}

/* from_site / to_site: a "location" end first, then any end naming a site or a party. */
static const char *resolve_end(const mctx_t *m, const char *list_key, const char *key)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(m->ev, list_key), *e;
    for (int pass = 0; pass < 2; pass++) {
        cJSON_ArrayForEach(e, list) {
            const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "type"));
            int is_loc = type && strcmp(epcis_cbv_short(type), "location") == 0;
            if (pass == 0 && !is_loc) continue;
            const char *code = resolve(m, cJSON_GetStringValue(
                                              cJSON_GetObjectItemCaseSensitive(e, key)), 1);
            if (code) return code;
        }
    }
    return NULL;
}

static void resolve_places(mctx_t *m)
{
    const char *biz = loc_id(m->ev, "bizLocation"), *rp = loc_id(m->ev, "readPoint");
    m->site = resolve(m, biz, 0);
    if (!m->site) m->site = resolve(m, rp, 0);
    if (!m->site) {
        char msg[240];
        snprintf(msg, sizeof msg, "no site lists bizLocation '%.80s' or readPoint '%.80s' in its identifiers",
                 biz ? biz : "-", rp ? rp : "-");
        merr(m, biz ? "bizLocation.id" : "readPoint.id", msg);
    }
    m->from_site = resolve_end(m, "sourceList", "source");
    m->to_site = resolve_end(m, "destinationList", "destination");
}

static void hex_sha256(const buf_t *b, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(b->data ? b->data : "", b->len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The EPCIS eventID, else "epcis:sha256:<hex>" over the RFC 8785 form of the event without
 * recordTime (the same event captured twice gets the same id). */
static void base_id(mctx_t *m)
{
    const char *eid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->ev, "eventID"));
    if (eid && *eid && strlen(eid) <= ID_BASE_MAX) {
        snprintf(m->base_id, sizeof m->base_id, "%s", eid);
        return;
    }
    cJSON *c = cJSON_Duplicate(m->plain, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(c, "recordTime");
    buf_t b = BUF_INIT;
    char hex[65];
    jcs_serialize(c, &b);
    hex_sha256(&b, hex);
    snprintf(m->base_id, sizeof m->base_id, "epcis:sha256:%s", hex);
    buf_free(&b);
    cJSON_Delete(c);
}

/* A canonical event with what every part shares; ext.epcis.event is added when ids are set. */
static cJSON *new_part(mctx_t *m, const char *type)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    const char *time = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->ev, "eventTime"));
    if (time) cJSON_AddStringToObject(p, "time", time);
    if (m->site) cJSON_AddStringToObject(p, "site", m->site);
    cJSON_AddItemToObject(p, "ext", cJSON_CreateObject());
    cJSON_AddItemToArray(m->parts, p);
    return p;
}

static cJSON *part_epcis(cJSON *p)
{
    cJSON *ext = cJSON_GetObjectItemCaseSensitive(p, "ext");
    cJSON *e = cJSON_GetObjectItemCaseSensitive(ext, "epcis");
    return e ? e : cJSON_AddObjectToObject(ext, "epcis");
}

static int is_flow(const char *type)
{
    return strcmp(type, "measured") != 0 && strcmp(type, "observed") != 0 &&
           strcmp(type, "corrected") != 0 && strcmp(type, "transformed") != 0;
}

/* Fields of a flow part: ends, EWC, R/D code, material. */
static void flow_fields(mctx_t *m, cJSON *p, const char *type, const char *material)
{
    int ends = !strcmp(type, "shipped") || !strcmp(type, "received") || !strcmp(type, "collected");
    if (ends && m->from_site && strcmp(type, "shipped") != 0)
        cJSON_AddStringToObject(p, "from_site", m->from_site);
    if (ends && m->to_site) cJSON_AddStringToObject(p, "to_site", m->to_site);
    const char *ewc = ext_str(m, m->ev, "ewc"), *op = ext_str(m, m->ev, "operation");
    if (ewc) cJSON_AddStringToObject(p, "ewc", ewc);
    if (op) cJSON_AddStringToObject(p, "operation", op);
    if (material) cJSON_AddStringToObject(p, "material", material);
}

/* A shipped part needs a destination; without one the EPCIS event still says where the
 * objects were seen, so it is kept as observed. */
static const char *part_type(mctx_t *m, const char *type)
{
    if (strcmp(type, "shipped") == 0 && !m->to_site) return "observed";
    return type;
}

static void add_product(cJSON *p, const char *epc_or_class)
{
    char gtin[15];
    if (epcis_gtin14(epc_or_class, gtin) == 0) cJSON_AddStringToObject(p, "product", gtin);
    else if (strncmp(epc_or_class, "urn:epc:id:", 11) != 0)
        cJSON_AddStringToObject(p, "product", epc_or_class);
}

/* One part per EPC: the EPC is the item. */
static void epc_part(mctx_t *m, const char *type, const char *epc)
{
    const char *t = part_type(m, type);
    cJSON *p = new_part(m, t);
    cJSON_AddStringToObject(p, "item", epc);
    if (is_flow(t)) flow_fields(m, p, t, ext_str(m, m->ev, "material"));
    if (is_flow(t)) add_product(p, epc);
    else cJSON_AddStringToObject(part_epcis(p), "epc", epc);
}

/* One part per quantity element: a mass or volume is a flow of that lot / product; a bare
 * count (no uom, or a unit that is neither) cannot be weighed here and is observed. */
static void qty_part(mctx_t *m, const char *type, const cJSON *q, const char *field)
{
    const char *cls = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "epcClass"));
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(q, "quantity");
    const char *unit = epcis_unit(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "uom")));
    if (!cls || !cJSON_IsNumber(val)) {
        merr(m, field, "a quantity element needs epcClass and a numeric quantity");
        return;
    }
    const char *t = unit ? part_type(m, type) : "observed";
    cJSON *p = new_part(m, is_flow(t) ? t : "observed");
    if (!is_flow(t)) {
        cJSON *e = part_epcis(p);
        cJSON_AddStringToObject(e, "epcClass", cls);
        cJSON_AddNumberToObject(e, "count", val->valuedouble);
        return;
    }
    const char *material = ext_str(m, q, "material");
    flow_fields(m, p, t, material ? material : ext_str(m, m->ev, "material"));
    if (strncmp(cls, "urn:epc:class:lgtin:", 20) == 0 || strstr(cls, "/10/"))
        cJSON_AddStringToObject(p, "lot", cls);
    add_product(p, cls);
    cJSON *qq = cJSON_AddObjectToObject(p, "quantity");
    cJSON_AddNumberToObject(qq, "value", val->valuedouble);
    cJSON_AddStringToObject(qq, "unit", unit);
}

static void objects_parts(mctx_t *m, const char *type, const char *epcs_key, const char *qty_key)
{
    const cJSON *epcs = cJSON_GetObjectItemCaseSensitive(m->ev, epcs_key), *x;
    const cJSON *qtys = cJSON_GetObjectItemCaseSensitive(m->ev, qty_key);
    int before = cJSON_GetArraySize(m->parts), i = 0;
    char field[96];
    cJSON_ArrayForEach(x, epcs) if (cJSON_IsString(x)) epc_part(m, type, x->valuestring);
    cJSON_ArrayForEach(x, qtys) {
        snprintf(field, sizeof field, "%s[%d]", qty_key, i++);
        qty_part(m, type, x, field);
    }
    if (cJSON_GetArraySize(m->parts) > before) return;
    /* No children: the parent (a container, a transaction's subject) is the object. */
    const char *parent = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->ev, "parentID"));
    if (parent) epc_part(m, type, parent);
    else new_part(m, part_type(m, type));
}

/* {lot, material, quantity} of a transformation side, or NULL when an element has no mass,
 * no material or no lot-like class (then the event is split into consumed/produced). */
static cJSON *lot_side(mctx_t *m, const char *epcs_key, const char *qty_key)
{
    const cJSON *epcs = cJSON_GetObjectItemCaseSensitive(m->ev, epcs_key), *q;
    const cJSON *qtys = cJSON_GetObjectItemCaseSensitive(m->ev, qty_key);
    if (cJSON_GetArraySize(epcs) > 0 || cJSON_GetArraySize(qtys) == 0) return NULL;
    cJSON *side = cJSON_CreateArray();
    cJSON_ArrayForEach(q, qtys) {
        const char *cls = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "epcClass"));
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(q, "quantity");
        const char *unit = epcis_unit(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(q, "uom")));
        const char *mat = ext_str(m, q, "material");
        if (!mat) mat = ext_str(m, m->ev, "material");
        if (!cls || !cJSON_IsNumber(val) || !unit || !mat) {
            cJSON_Delete(side);
            return NULL;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "lot", cls);
        cJSON_AddStringToObject(e, "material", mat);
        cJSON *qq = cJSON_AddObjectToObject(e, "quantity");
        cJSON_AddNumberToObject(qq, "value", val->valuedouble);
        cJSON_AddStringToObject(qq, "unit", unit);
        cJSON_AddItemToArray(side, e);
    }
    return side;
}

static void transformation_parts(mctx_t *m)
{
    cJSON *in = lot_side(m, "inputEPCList", "inputQuantityList");
    cJSON *out = in ? lot_side(m, "outputEPCList", "outputQuantityList") : NULL;
    if (in && out) {
        cJSON *p = new_part(m, "transformed");
        cJSON_AddItemToObject(p, "inputs", in);
        cJSON_AddItemToObject(p, "outputs", out);
        const char *op = ext_str(m, m->ev, "operation"), *ewc = ext_str(m, m->ev, "ewc");
        if (op) cJSON_AddStringToObject(p, "operation", op);
        if (ewc) cJSON_AddStringToObject(p, "ewc", ewc);
        return;
    }
    cJSON_Delete(in);
    objects_parts(m, "consumed", "inputEPCList", "inputQuantityList");
    objects_parts(m, "produced", "outputEPCList", "outputQuantityList");
}

static void sensor_part(mctx_t *m)
{
    const cJSON *sensors = cJSON_GetObjectItemCaseSensitive(m->ev, "sensorElementList");
    if (!cJSON_IsArray(sensors)) return;
    cJSON *p = new_part(m, "measured");
    cJSON_AddItemToObject(part_epcis(p), "readings", cJSON_Duplicate(sensors, 1));
    const cJSON *epcs = cJSON_GetObjectItemCaseSensitive(m->ev, "epcList");
    if (cJSON_GetArraySize(epcs) == 1 && cJSON_IsString(epcs->child))
        cJSON_AddStringToObject(p, "item", epcs->child->valuestring);
}

static void event_parts(mctx_t *m, const char *etype)
{
    if (strcmp(m->type, "measured") == 0) {
        if (!cJSON_GetObjectItemCaseSensitive(m->ev, "sensorElementList")) new_part(m, "measured");
    } else if (strcmp(etype, "TransformationEvent") == 0) {
        transformation_parts(m);
    } else if (strcmp(etype, "ObjectEvent") == 0 || strcmp(etype, "TransactionEvent") == 0) {
        objects_parts(m, m->type, "epcList", "quantityList");
    } else if (strcmp(etype, "AggregationEvent") == 0 || strcmp(etype, "AssociationEvent") == 0) {
        objects_parts(m, m->type, "childEPCs", "childQuantityList");
    } else {
        merr(m, "type", "unknown EPCIS event type; use ObjectEvent, AggregationEvent, "
                        "TransformationEvent, TransactionEvent or AssociationEvent");
        return;
    }
    sensor_part(m);
}

/* Ids (the base id alone for a single part, "<base>#<n>" otherwise) and the original event
 * in every part's ext, so a query can return it as it was sent. */
static void number_parts(mctx_t *m)
{
    int n = cJSON_GetArraySize(m->parts), k = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, m->parts) {
        char id[ID_MAX + 1];
        if (n == 1) snprintf(id, sizeof id, "%.160s", m->base_id);
        else snprintf(id, sizeof id, "%.160s#%d", m->base_id, ++k);
        cJSON_AddItemToObject(p, "id", cJSON_CreateString(id));
        cJSON *e = part_epcis(p);
        cJSON_AddNumberToObject(e, "part", n == 1 ? 1 : k);
        if (m->bizstep) cJSON_AddStringToObject(e, "bizStep", m->bizstep);
        cJSON_AddItemToObject(e, "event", cJSON_Duplicate(m->plain, 1));
    }
}

/* errorDeclaration: each part of the declared event is corrected, its replacement an observed
 * event that withdraws it (the correctiveEventIDs are captured as events of their own). */
static void correction_parts(mctx_t *m, const cJSON *decl)
{
    const char *when = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(decl, "declarationTime"));
    int n = cJSON_GetArraySize(m->parts);
    for (int k = 0; k < n; k++) {
        const cJSON *orig = cJSON_GetArrayItem(m->parts, k);
        const char *oid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(orig, "id"));
        char id[ID_MAX + 1];
        cJSON *c = new_part(m, "corrected");
        if (when) cJSON_ReplaceItemInObjectCaseSensitive(c, "time", cJSON_CreateString(when));
        snprintf(id, sizeof id, "%.180s#error", oid);
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "corrects", oid);
        cJSON *e = part_epcis(c);
        cJSON_AddNumberToObject(e, "part", k + 1);
        cJSON_AddItemToObject(e, "event", cJSON_Duplicate(m->ev, 1));
        cJSON *r = cJSON_AddObjectToObject(c, "replacement");
        snprintf(id, sizeof id, "%.180s#void", oid);
        cJSON_AddStringToObject(r, "id", id);
        cJSON_AddStringToObject(r, "type", "observed");
        cJSON_AddItemToObject(r, "time", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(orig, "time"), 1));
        if (m->site) cJSON_AddStringToObject(r, "site", m->site);
        cJSON *re = cJSON_AddObjectToObject(cJSON_AddObjectToObject(r, "ext"), "epcis");
        cJSON_AddStringToObject(re, "withdraws", oid);
        cJSON_AddItemToObject(re, "errorDeclaration", cJSON_Duplicate(decl, 1));
    }
}

/* The canonical type: circa:type when given, else the bizStep's. */
static void choose_type(mctx_t *m)
{
    const char *step = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->ev, "bizStep"));
    const char *disp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->ev, "disposition"));
    m->bizstep = step ? epcis_cbv_short(step) : NULL;
    m->type = ext_str(m, m->ev, "type");
    if (!m->type) m->type = epcis_bizstep_type(m->bizstep, disp ? epcis_cbv_short(disp) : NULL);
}

static void map_event(mctx_t *m)
{
    const char *etype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->ev, "type"));
    const cJSON *decl = cJSON_GetObjectItemCaseSensitive(m->ev, "errorDeclaration");
    if (!cJSON_IsObject(m->ev) || !etype) {
        merr(m, "type", "an event must be an object with a type");
        return;
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m->ev, "eventTime")))
        merr(m, "eventTime", "eventTime is required");
    m->plain = cJSON_Duplicate(m->ev, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(m->plain, "errorDeclaration");
    choose_type(m);
    resolve_places(m);
    base_id(m);
    event_parts(m, etype);
    number_parts(m);
    if (cJSON_IsObject(decl)) correction_parts(m, decl);
}

/* ---------------------------------------------------------------------------------------------
 * The document */

/* The prefix bound to EPCIS_CIRCA_NS in @context, "circa" when none is. */
static const char *circa_prefix(const cJSON *doc)
{
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(doc, "@context"), *c, *kv;
    cJSON_ArrayForEach(c, ctx) {
        if (!cJSON_IsObject(c)) continue;
        cJSON_ArrayForEach(kv, c) {
            const char *v = cJSON_GetStringValue(kv);
            if (v && strcmp(v, EPCIS_CIRCA_NS) == 0) return kv->string;
        }
    }
    return "circa";
}

static void push(epcis_mapped_t *out, cJSON *part, int origin)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 16;
        out->origin = xrealloc(out->origin, (size_t)out->cap * sizeof *out->origin);
    }
    out->origin[out->n++] = origin;
    cJSON_AddItemToArray(out->events, part);
}

int epcis_map(const cJSON *doc, const epcis_places_t *pl, epcis_mapped_t *out, errlist_t *errs)
{
    memset(out, 0, sizeof *out);
    out->events = cJSON_CreateArray();
    if (epcis_doc_check(doc, errs) != 0) return -1;
    size_t before = errs->n;
    const cJSON *ev;
    int i = 0;
    cJSON_ArrayForEach(ev, event_list(doc)) {
        mctx_t m = {.pl = pl, .prefix = circa_prefix(doc), .errs = errs, .index = i, .ev = ev};
        m.parts = cJSON_CreateArray();
        map_event(&m);
        while (m.parts->child) push(out, cJSON_DetachItemViaPointer(m.parts, m.parts->child), i);
        cJSON_Delete(m.parts);
        cJSON_Delete(m.plain);
        i++;
    }
    if (i == 0) errlist_add(errs, -1, "epcisBody.eventList", "the document holds no events");
    return errs->n > before ? -1 : 0;
}

void epcis_mapped_free(epcis_mapped_t *m)
{
    cJSON_Delete(m->events);
    free(m->origin);
    memset(m, 0, sizeof *m);
}

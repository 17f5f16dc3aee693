/* render_csv — CSV tables of the four report types (see render_csv.h). */
#include "render_csv.h"
#include "jcs.h"
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quoted(buf_t *out, const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")]) {
        buf_puts(out, s);
        return;
    }
    buf_putc(out, '"');
    for (; *s; s++) {
        if (*s == '"') buf_putc(out, '"');
        buf_putc(out, *s);
    }
    buf_putc(out, '"');
}

void render_csv_cell(buf_t *out, const cJSON *v)
{
    char num[40];
    if (cJSON_IsString(v)) {
        quoted(out, v->valuestring);
    } else if (cJSON_IsNumber(v) && jcs_number(v->valuedouble, num, sizeof num) == 0) {
        buf_puts(out, num);
    } else if (cJSON_IsBool(v)) {
        buf_puts(out, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        buf_t j = BUF_INIT;
        jcs_serialize(v, &j);
        quoted(out, j.data ? j.data : "");
        buf_free(&j);
    }
}

/* A row of cells: the members names of obj, in order; "" names an empty cell. */
static void row(buf_t *out, const cJSON *obj, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        if (i) buf_putc(out, ',');
        if (*names[i]) render_csv_cell(out, cJSON_GetObjectItemCaseSensitive(obj, names[i]));
    }
    buf_puts(out, "\r\n");
}

static void header(buf_t *out, const char *const *cols)
{
    for (int i = 0; cols[i]; i++) {
        if (i) buf_putc(out, ',');
        buf_puts(out, cols[i]);
    }
    buf_puts(out, "\r\n");
}

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* A scratch object for one row, built from members of several objects. */
static void put(cJSON *r, const char *name, const cJSON *v)
{
    cJSON_AddItemToObject(r, name, v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
}

/* The register's columns: each section fills the ones it has. */
static const char *const wr_cols[] = {"section", "ewc", "description", "hazardous", "receiver",
    "receiver_name", "operation", "item", "detail", "kg", "consignments", "count",
    "measured_kg", "calculated_kg", "estimated_kg", "unspecified_kg", "refused_kg",
    "refused_loads", NULL};

/* A row of section for entry e: the entry's code columns, then members of part renamed (and
 * its basis split, for a destination). */
static void wr_row(buf_t *out, const char *section, const cJSON *e, const cJSON *part,
                   const char *const (*names)[2])
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "section", section);
    put(r, "ewc", get(e, "ewc"));
    put(r, "description", get(e, "description"));
    put(r, "hazardous", get(e, "hazardous"));
    for (int i = 0; names[i][0]; i++) put(r, names[i][0], get(part, names[i][1]));
    const cJSON *basis = strcmp(section, "sent") == 0 ? get(part, "basis") : NULL;
    const char *const bases[] = {"measured", "calculated", "estimated", "unspecified"};
    char name[32];
    for (int i = 0; basis && i < 4; i++) {
        snprintf(name, sizeof name, "%s_kg", bases[i]);
        put(r, name, get(basis, bases[i]));
    }
    row(out, r, wr_cols);
    cJSON_Delete(r);
}

/* Each part of an entry (destinations, acceptance, packaging, transport) as rows. */
static void wr_parts(buf_t *out, const char *section, const cJSON *e, const char *member,
                     const char *const (*names)[2])
{
    const cJSON *p;
    cJSON_ArrayForEach(p, get(e, member)) wr_row(out, section, e, p, names);
}

static void waste_register(const cJSON *data, buf_t *out)
{
    static const char *const gen[][2] = {{"kg", "generated_kg"},
        {"count", "generated_events"}, {NULL, NULL}};
    static const char *const sent[][2] = {{"receiver", "receiver"},
        {"receiver_name", "receiver_name"}, {"operation", "operation"}, {"kg", "kg"},
        {"consignments", "consignments"}, {"refused_kg", "refused_kg"},
        {"refused_loads", "refused_loads"}, {NULL, NULL}};
    static const char *const acc[][2] = {{"item", "acceptance"}, {"kg", "kg"},
        {"consignments", "consignments"}, {"refused_kg", "refused_kg"}, {NULL, NULL}};
    static const char *const pack[][2] = {{"item", "type"}, {"detail", "physical_form"},
        {"kg", "kg"}, {"consignments", "consignments"}, {"count", "packages"}, {NULL, NULL}};
    static const char *const legs[][2] = {{"item", "mode"}, {"consignments", "consignments"},
        {"count", "legs"}, {NULL, NULL}};
    header(out, wr_cols);
    const cJSON *e;
    cJSON_ArrayForEach(e, get(data, "entries")) {
        wr_row(out, "generated", e, e, gen);
        wr_parts(out, "sent", e, "destinations", sent);
        wr_parts(out, "acceptance", e, "acceptance", acc);
        wr_parts(out, "packaging", e, "packaging", pack);
        wr_parts(out, "transport", e, "transport", legs);
    }
}

static const char *const cons_cols[] = {"event", "seq", "type", "time", "from_site",
    "receiver", "material", "lot", "ewc", "hazardous", "kg", "basis", "operation",
    "operation_from", "document", "carrier", "transport", "packaging", "receipt",
    "receipt_time", "acceptance", "received_kg", "refused_kg", NULL};

void render_csv_consignments(const cJSON *page, buf_t *out)
{
    header(out, cons_cols);
    const cJSON *c;
    cJSON_ArrayForEach(c, get(page, "consignments")) row(out, c, cons_cols);
}

static void prtr_part(buf_t *out, const cJSON *f, const char *cls, const cJSON *side,
                      const char *kind, const char *const *cols)
{
    const cJSON *p = get(side, kind);
    cJSON *r = cJSON_CreateObject();
    put(r, "site", get(f, "site"));
    put(r, "name", get(f, "name"));
    put(r, "country", get(f, "country"));
    put(r, "year", get(f, "year"));
    cJSON_AddStringToObject(r, "class", cls);
    cJSON_AddStringToObject(r, "kind", kind);
    put(r, "kg", get(p, "kg"));
    put(r, "method", get(p, "method"));
    const char *const bases[] = {"measured", "calculated", "estimated", "unspecified"};
    char name[32];
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(bases[i]);
        memcpy(name, bases[i], n);
        memcpy(name + n, "_kg", 4);
        put(r, name, get(get(p, "basis"), bases[i]));
    }
    put(r, "reportable", get(side, "reportable"));
    put(r, "threshold_kg", get(side, "threshold_kg"));
    row(out, r, cols);
    cJSON_Delete(r);
}

static void prtr_abroad(buf_t *out, const cJSON *f, const char *cls, const cJSON *side,
                        const char *const *cols)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, get(side, "abroad")) {
        cJSON *r = cJSON_CreateObject();
        put(r, "site", get(f, "site"));
        put(r, "name", get(f, "name"));
        put(r, "country", get(f, "country"));
        put(r, "year", get(f, "year"));
        cJSON_AddStringToObject(r, "class", cls);
        cJSON_AddStringToObject(r, "kind", "transfer_abroad");
        put(r, "kg", get(a, "kg"));
        put(r, "receiver", get(a, "receiver"));
        put(r, "receiver_name", get(a, "name"));
        put(r, "receiver_address", get(a, "address"));
        put(r, "receiver_country", get(a, "country"));
        put(r, "operation", get(a, "operation"));
        row(out, r, cols);
        cJSON_Delete(r);
    }
}

static void prtr(const cJSON *data, buf_t *out)
{
    static const char *const cols[] = {"site", "name", "country", "year", "class", "kind", "kg",
        "method", "measured_kg", "calculated_kg", "estimated_kg", "unspecified_kg", "reportable",
        "threshold_kg", "receiver", "receiver_name", "receiver_address", "receiver_country",
        "operation", NULL};
    header(out, cols);
    const cJSON *f;
    cJSON_ArrayForEach(f, get(data, "facilities")) {
        const char *const classes[] = {"hazardous", "non_hazardous"};
        for (int i = 0; i < 2; i++) {
            const cJSON *side = get(f, classes[i]);
            prtr_part(out, f, classes[i], side, "recovery", cols);
            prtr_part(out, f, classes[i], side, "disposal", cols);
            prtr_abroad(out, f, classes[i], side, cols);
        }
    }
}

/* One metric as rows: its value, or each member of an object value (waste_hierarchy, fate). */
static void metric_rows(buf_t *out, const char *month, const cJSON *m, const char *const *cols)
{
    const cJSON *v = get(m, "value");
    const cJSON *sub = cJSON_IsObject(v) ? v->child : NULL;
    do {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "month", month);
        buf_t name = BUF_INIT;
        buf_puts(&name, m->string);
        if (sub) buf_printf(&name, ".%s", sub->string);
        cJSON_AddStringToObject(r, "metric", name.data);
        buf_free(&name);
        put(r, "value", sub ? sub : v);
        put(r, "numerator_kg", get(m, "numerator_kg"));
        put(r, "denominator_kg", get(m, "denominator_kg"));
        row(out, r, cols);
        cJSON_Delete(r);
        sub = sub ? sub->next : NULL;
    } while (sub);
}

static void circularity(const cJSON *data, buf_t *out)
{
    static const char *const cols[] = {"month", "metric", "value", "numerator_kg",
                                       "denominator_kg", NULL};
    header(out, cols);
    const cJSON *m;
    cJSON_ArrayForEach(m, get(data, "metrics")) metric_rows(out, "all", m, cols);
    const cJSON *mo;
    cJSON_ArrayForEach(mo, get(data, "months")) {
        const cJSON *name = get(mo, "month");
        cJSON_ArrayForEach(m, get(mo, "metrics"))
            metric_rows(out, cJSON_IsString(name) ? name->valuestring : "", m, cols);
    }
}

static void recovery(const cJSON *data, buf_t *out)
{
    static const char *const cols[] = {"receipt", "received", "from_site", "site", "lot",
        "ewc", "received_kg", "document", "event", "type", "operation", "category", "op_site",
        "time", "kg", "interim", "via", NULL};
    header(out, cols);
    const cJSON *rc;
    cJSON_ArrayForEach(rc, get(data, "receipts")) {
        const cJSON *ops = get(rc, "operations");
        const cJSON *o = cJSON_GetArraySize(ops) ? ops->child : NULL;
        do {
            cJSON *r = o ? cJSON_Duplicate(o, 1) : cJSON_CreateObject();
            cJSON_DeleteItemFromObjectCaseSensitive(r, "site");
            cJSON_DeleteItemFromObjectCaseSensitive(r, "lot");
            put(r, "op_site", o ? get(o, "site") : NULL);
            put(r, "receipt", get(rc, "event"));
            put(r, "received", get(rc, "time"));
            put(r, "from_site", get(rc, "from_site"));
            put(r, "site", get(rc, "site"));
            put(r, "lot", get(rc, "lot"));
            put(r, "ewc", get(rc, "ewc"));
            put(r, "received_kg", get(rc, "kg"));
            put(r, "document", get(rc, "document"));
            row(out, r, cols);
            cJSON_Delete(r);
            o = o ? o->next : NULL;
        } while (o);
    }
}

int render_csv(const cJSON *doc, buf_t *out)
{
    const char *type = report_str(doc, "type");
    const cJSON *data = get(doc, "data");
    if (strcmp(type, "waste_register") == 0) waste_register(data, out);
    else if (strcmp(type, "prtr_transfers") == 0) prtr(data, out);
    else if (strcmp(type, "circularity_summary") == 0) circularity(data, out);
    else if (strcmp(type, "recovery_certificate") == 0) recovery(data, out);
    else return -1;
    return 0;
}

/* render_html — printable HTML of the four report types, with inline SVG charts (see
 * render_html.h). Every string from the document is escaped: names and addresses are data. */
#include "render_html.h"
#include "jcs.h"
#include "render_csv.h"
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char style[] =
    "body{font:13px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "h1{font-size:20px;margin:0 0 .3em}h2{font-size:16px;margin:1.4em 0 .4em;"
    "border-bottom:1px solid #ccc}h3{font-size:14px;margin:1em 0 .3em}"
    "table{border-collapse:collapse;margin:.4em 0 1em;width:100%}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:0 1em;margin:0}"
    "dt{font-weight:600}dd{margin:0;word-break:break-all}"
    "svg{max-width:100%;height:auto}.flow{fill:none;stroke:#4a90c2;stroke-opacity:.45}"
    ".node{fill:#2c5d7c}.bar{fill:#5a9e6f}.lbl{font-size:10px;fill:#222}"
    "footer{margin-top:2em;font-size:11px;color:#555;word-break:break-all}"
    "@media print{body{margin:1cm}h2{break-after:avoid}table,svg{break-inside:avoid}}";

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static void esc(buf_t *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': buf_puts(out, "&amp;"); break;
        case '<': buf_puts(out, "&lt;"); break;
        case '>': buf_puts(out, "&gt;"); break;
        case '"': buf_puts(out, "&quot;"); break;
        case '\'': buf_puts(out, "&#39;"); break;
        default: buf_putc(out, *s);
        }
    }
}

/* A value as text: strings as they are, numbers in JSON form, objects as compact JSON. */
static void text(buf_t *out, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        esc(out, v->valuestring);
        return;
    }
    buf_t t = BUF_INIT;
    render_csv_cell(&t, v);
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        buf_reset(&t);
        jcs_serialize(v, &t);
    }
    esc(out, t.data ? t.data : "");
    buf_free(&t);
}

/* Table columns: the member (dotted path allowed) and its heading. */
typedef struct {
    const char *key, *label;
} col_t;

static const cJSON *path(const cJSON *o, const char *dotted)
{
    char key[64];
    while (o && *dotted) {
        size_t n = strcspn(dotted, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, dotted, n);
        key[n] = '\0';
        o = get(o, key);
        dotted += n + (dotted[n] == '.');
    }
    return o;
}

static void table(buf_t *out, const cJSON *rows, const col_t *cols)
{
    buf_puts(out, "<table><thead><tr>");
    for (const col_t *c = cols; c->key; c++) {
        buf_puts(out, "<th>");
        esc(out, c->label);
        buf_puts(out, "</th>");
    }
    buf_puts(out, "</tr></thead><tbody>");
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        buf_puts(out, "<tr>");
        for (const col_t *c = cols; c->key; c++) {
            const cJSON *v = path(r, c->key);
            buf_puts(out, cJSON_IsNumber(v) ? "<td class=\"n\">" : "<td>");
            text(out, v);
            buf_puts(out, "</td>");
        }
        buf_puts(out, "</tr>");
    }
    buf_puts(out, "</tbody></table>");
}

/* A one-row table of named members of obj. */
static void facts(buf_t *out, const cJSON *obj, const col_t *cols)
{
    cJSON *rows = cJSON_CreateArray();
    cJSON_AddItemReferenceToArray(rows, (cJSON *)obj);
    table(out, rows, cols);
    cJSON_Delete(rows);
}

static void h(buf_t *out, const char *tag, const char *s)
{
    buf_printf(out, "<%s>", tag);
    esc(out, s);
    buf_printf(out, "</%s>", tag);
}

/* ---- Sankey -------------------------------------------------------------------------------- */

#define SK_W 960.0
#define SK_H 420.0
#define SK_NODE_W 12.0
#define SK_PAD 14.0
#define SK_LABEL 150.0

typedef struct {
    const char *id;
    int col;
    double in, out, y, h, in_at, out_at;
} sk_node_t;

static int sk_find(sk_node_t *n, int nn, const char *id)
{
    for (int i = 0; i < nn; i++)
        if (strcmp(n[i].id, id) == 0) return i;
    return -1;
}

/* Columns by longest path from the sources; a cycle stops growing after nn rounds. */
static int sk_columns(sk_node_t *n, int nn, const int *src, const int *dst, int nl)
{
    int cols = 1;
    for (int round = 0; round < nn; round++) {
        int moved = 0;
        for (int l = 0; l < nl; l++) {
            if (src[l] == dst[l] || n[dst[l]].col > n[src[l]].col) continue;
            if (n[src[l]].col + 1 >= nn) continue;
            n[dst[l]].col = n[src[l]].col + 1;
            moved = 1;
        }
        if (!moved) break;
    }
    for (int i = 0; i < nn; i++)
        if (n[i].col + 1 > cols) cols = n[i].col + 1;
    return cols;
}

/* Stacks each column's nodes; one kg-to-pixel scale for all so widths compare. */
static double sk_layout(sk_node_t *n, int nn, int cols)
{
    double scale = INFINITY;
    for (int c = 0; c < cols; c++) {
        double sum = 0;
        int k = 0;
        for (int i = 0; i < nn; i++)
            if (n[i].col == c) sum += fmax(n[i].in, n[i].out), k++;
        if (k && sum > 0) scale = fmin(scale, (SK_H - SK_PAD * (k - 1)) / sum);
    }
    if (!isfinite(scale) || scale <= 0) scale = 1;
    for (int c = 0; c < cols; c++) {
        double y = 0;
        for (int i = 0; i < nn; i++) {
            if (n[i].col != c) continue;
            n[i].y = y;
            n[i].h = fmax(fmax(n[i].in, n[i].out) * scale, 2);
            n[i].in_at = n[i].out_at = y;
            y += n[i].h + SK_PAD;
        }
    }
    return scale;
}

static double sk_x(int col, int cols)
{
    return 10 + (cols > 1 ? col * (SK_W - SK_LABEL - SK_NODE_W - 20) / (cols - 1) : 0);
}

static void sk_link(buf_t *out, sk_node_t *s, sk_node_t *t, const cJSON *l, double kg,
                    double scale, int cols)
{
    double w = fmax(kg * scale, 1);
    double x0 = sk_x(s->col, cols) + SK_NODE_W, x1 = sk_x(t->col, cols);
    double y0 = s->out_at + w / 2, y1 = t->in_at + w / 2, xm = (x0 + x1) / 2;
    s->out_at += kg * scale;
    t->in_at += kg * scale;
    buf_printf(out, "<path class=\"flow\" d=\"M%.1f %.1fC%.1f %.1f %.1f %.1f %.1f %.1f\" "
               "stroke-width=\"%.1f\"><title>", x0, y0, xm, y0, xm, y1, x1, y1, w);
    esc(out, s->id);
    buf_puts(out, " \xe2\x86\x92 ");
    esc(out, t->id);
    buf_puts(out, ": ");
    text(out, get(l, "kg"));
    buf_puts(out, " kg (");
    text(out, get(l, "type"));
    buf_puts(out, ")</title></path>");
}

static void sk_nodes(buf_t *out, const sk_node_t *n, int nn, int cols)
{
    for (int i = 0; i < nn; i++) {
        double x = sk_x(n[i].col, cols);
        buf_printf(out, "<rect class=\"node\" x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\">"
                   "<title>", x, n[i].y, SK_NODE_W, n[i].h);
        esc(out, n[i].id);
        buf_printf(out, ": %.6g kg</title></rect><text class=\"lbl\" x=\"%.1f\" y=\"%.1f\">",
                   fmax(n[i].in, n[i].out), x + SK_NODE_W + 3, n[i].y + n[i].h / 2 + 3);
        esc(out, n[i].id);
        buf_puts(out, "</text>");
    }
}

void render_html_sankey(const cJSON *flows, buf_t *out)
{
    const cJSON *links = get(flows, "links");
    int nl = cJSON_GetArraySize(links), nn = 0;
    sk_node_t *n = xcalloc((size_t)(2 * nl + 1), sizeof *n);
    int *src = xcalloc((size_t)nl + 1, sizeof *src), *dst = xcalloc((size_t)nl + 1, sizeof *dst);
    int l = 0;
    const cJSON *k;
    cJSON_ArrayForEach(k, links) {
        const char *ids[2] = {report_str(k, "source"), report_str(k, "target")};
        int *ends[2] = {&src[l], &dst[l]};
        for (int e = 0; e < 2; e++) {
            int i = sk_find(n, nn, ids[e]);
            if (i < 0) n[i = nn++].id = ids[e];
            *ends[e] = i;
        }
        double kg = report_num(k, "kg");
        if (isfinite(kg)) n[src[l]].out += kg, n[dst[l]].in += kg;
        l++;
    }
    int cols = sk_columns(n, nn, src, dst, nl);
    double scale = sk_layout(n, nn, cols);
    buf_printf(out, "<svg class=\"sankey\" xmlns=\"http://www.w3.org/2000/svg\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"Material flows (kg)\">",
               SK_W, SK_H + 20);
    l = 0;
    cJSON_ArrayForEach(k, links) {
        double kg = report_num(k, "kg");
        sk_link(out, &n[src[l]], &n[dst[l]], k, isfinite(kg) ? kg : 0, scale, cols);
        l++;
    }
    sk_nodes(out, n, nn, cols);
    buf_puts(out, "</svg>");
    free(n);
    free(src);
    free(dst);
}

/* ---- bar charts ---------------------------------------------------------------------------- */

/* Bars of one metric's value month by month (null values leave a gap). */
static void bars(buf_t *out, const cJSON *months, const char *metric, const char *title)
{
    int n = cJSON_GetArraySize(months);
    double max = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, months) {
        double v = report_num(get(get(m, "metrics"), metric), "value");
        if (isfinite(v) && v > max) max = v;
    }
    h(out, "h3", title);
    double w = 640, hh = 160, bw = n ? (w - 40) / n : 0;
    buf_printf(out, "<svg class=\"bars\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f "
               "%.0f\" role=\"img\" aria-label=\"", w, hh + 30);
    esc(out, title);
    buf_puts(out, "\">");
    int i = 0;
    cJSON_ArrayForEach(m, months) {
        double v = report_num(get(get(m, "metrics"), metric), "value");
        double bh = isfinite(v) && max > 0 ? v / max * hh : 0, x = 20 + i * bw;
        buf_printf(out, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                   "<title>", x + bw * 0.1, hh - bh, bw * 0.8, bh);
        text(out, get(m, "month"));
        buf_printf(out, isfinite(v) ? ": %.6g</title></rect>" : ": no data</title></rect>", v);
        buf_printf(out, "<text class=\"lbl\" x=\"%.1f\" y=\"%.1f\">", x + bw * 0.1, hh + 14);
        text(out, get(m, "month"));
        buf_printf(out, "</text><text class=\"lbl\" x=\"%.1f\" y=\"%.1f\">", x + bw * 0.1,
                   hh + 26);
        if (isfinite(v)) buf_printf(out, "%.4g", v);
        else buf_puts(out, "\xe2\x80\x93");
        buf_puts(out, "</text>");
        i++;
    }
    buf_puts(out, "</svg>");
}

/* ---- report types -------------------------------------------------------------------------- */

/* A part of an entry, with its heading, when it has rows. */
static void part(buf_t *out, const cJSON *rows, const char *title, const col_t *cols)
{
    if (cJSON_GetArraySize(rows) == 0) return;
    h(out, "h3", title);
    table(out, rows, cols);
}

/* Where the register's consignments are listed, and as of which block. */
static void wr_listing(buf_t *out, const cJSON *d, const cJSON *doc)
{
    const cJSON *c = get(d, "consignments");
    buf_puts(out, "<p class=\"listing\">The ");
    text(out, get(c, "count"));
    buf_puts(out, " consignments (");
    text(out, get(c, "kg"));
    buf_puts(out, " kg) — each with its document, carrier, transport legs, packaging, basis, "
                  "receipt and acceptance — are listed as of ledger block ");
    text(out, path(doc, "block.seq"));
    buf_puts(out, " at <code>");
    text(out, get(c, "listing"));
    buf_puts(out, "</code> (JSON, or <code>.csv</code>), in pages.</p>");
}

static void waste_register(buf_t *out, const cJSON *d, const cJSON *doc)
{
    static const col_t tot[] = {{"generated_kg", "Generated (kg)"},
        {"hazardous_generated_kg", "of which hazardous (kg)"},
        {"sent_off_site_kg", "Sent off-site (kg)"}, {"consignments", "Consignments"},
        {"refused_loads", "Refused loads"}, {"refused_kg", "Refused (kg)"}, {0, 0}};
    static const col_t head[] = {{"ewc", "EWC"}, {"description", "Description"},
        {"hazardous", "Hazardous"}, {"generated_kg", "Generated (kg)"},
        {"generated_events", "Generation events"}, {"sent_off_site_kg", "Sent off-site (kg)"},
        {"consignments", "Consignments"}, {"documented", "with a document"},
        {"refused_loads", "Refused loads"}, {"refused_kg", "Refused (kg)"}, {0, 0}};
    static const col_t dest[] = {{"receiver", "Receiver"}, {"receiver_name", "Name"},
        {"operation", "R/D operation"}, {"kg", "kg"}, {"consignments", "Consignments"},
        {"basis.measured", "measured (kg)"}, {"basis.calculated", "calculated (kg)"},
        {"basis.estimated", "estimated (kg)"}, {"basis.unspecified", "basis not given (kg)"},
        {"refused_loads", "Refused loads"}, {"refused_kg", "Refused (kg)"}, {0, 0}};
    static const col_t acc[] = {{"acceptance", "Acceptance"}, {"consignments", "Consignments"},
        {"kg", "kg"}, {"refused_kg", "Refused (kg)"}, {0, 0}};
    static const col_t pack[] = {{"type", "Packaging"}, {"physical_form", "Physical form"},
        {"packages", "Packages"}, {"consignments", "Consignments"}, {"kg", "kg"}, {0, 0}};
    static const col_t legs[] = {{"mode", "Transport mode"}, {"legs", "Legs"},
        {"consignments", "Consignments"}, {0, 0}};
    h(out, "h2", "Totals");
    facts(out, get(d, "totals"), tot);
    wr_listing(out, d, doc);
    const cJSON *e;
    cJSON_ArrayForEach(e, get(d, "entries")) {
        buf_puts(out, "<h2>EWC ");
        text(out, get(e, "ewc"));
        buf_puts(out, "</h2>");
        facts(out, e, head);
        part(out, get(e, "destinations"), "Sent off-site by receiver and operation", dest);
        part(out, get(e, "acceptance"), "Acceptance at the receiver (no value: no receipt)", acc);
        part(out, get(e, "packaging"), "Packaging", pack);
        part(out, get(e, "transport"), "Transport legs", legs);
    }
}

static void prtr(buf_t *out, const cJSON *d, const cJSON *doc)
{
    static const col_t side[] = {{"class", "Class"}, {"kg", "Transferred (kg)"},
        {"threshold_kg", "Threshold (kg)"}, {"reportable", "Reportable"},
        {"recovery.kg", "Recovery R (kg)"}, {"recovery.method", "M/C/E"},
        {"disposal.kg", "Disposal D (kg)"}, {"disposal.method", "M/C/E"},
        {"unknown_operation_kg", "Operation unknown (kg)"}, {0, 0}};
    static const col_t abroad[] = {{"receiver", "Receiver"}, {"name", "Name"},
        {"address", "Address"}, {"country", "Country"}, {"operation", "Operation"},
        {"kg", "kg"}, {"basis", "Basis"}, {0, 0}};
    const cJSON *f;
    cJSON_ArrayForEach(f, get(d, "facilities")) {
        buf_puts(out, "<h2>");
        text(out, get(f, "site"));
        buf_puts(out, " \xe2\x80\x94 ");
        text(out, get(f, "name"));
        buf_puts(out, " (");
        text(out, get(f, "country"));
        buf_puts(out, "), ");
        text(out, get(f, "year"));
        buf_puts(out, "</h2>");
        cJSON *rows = cJSON_CreateArray();
        const char *const classes[] = {"hazardous", "non_hazardous"};
        for (int i = 0; i < 2; i++) {
            cJSON *r = cJSON_Duplicate(get(f, classes[i]), 1);
            if (!r) r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "class", classes[i]);
            cJSON_AddItemToArray(rows, r);
        }
        table(out, rows, side);
        cJSON_Delete(rows);
        for (int i = 0; i < 2; i++) {
            const cJSON *a = get(get(f, classes[i]), "abroad");
            if (cJSON_GetArraySize(a) == 0) continue;
            h(out, "h3", i == 0 ? "Hazardous waste transferred abroad"
                                : "Non-hazardous waste transferred abroad");
            table(out, a, abroad);
        }
    }
}

/* The whole-period metrics as rows {name, value, numerator_kg, denominator_kg}. */
static void metric_table(buf_t *out, const cJSON *metrics)
{
    static const col_t cols[] = {{"name", "Metric"}, {"value", "Value"},
        {"numerator_kg", "Numerator (kg)"}, {"denominator_kg", "Denominator (kg)"}, {0, 0}};
    cJSON *rows = cJSON_CreateArray();
    const cJSON *m;
    cJSON_ArrayForEach(m, metrics) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "name", m->string);
        const char *const keys[] = {"value", "numerator_kg", "denominator_kg"};
        for (int i = 0; i < 3; i++) {
            const cJSON *v = get(m, keys[i]);
            cJSON_AddItemToObject(r, keys[i], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(rows, r);
    }
    table(out, rows, cols);
    cJSON_Delete(rows);
}

static void circularity(buf_t *out, const cJSON *d, const cJSON *doc)
{
    static const col_t links[] = {{"source", "From"}, {"target", "To"}, {"type", "Flow"},
                                  {"kg", "kg"}, {0, 0}};
    h(out, "h2", "Metrics for the period");
    metric_table(out, get(d, "metrics"));
    h(out, "h2", "Material flows");
    render_html_sankey(get(d, "flows"), out);
    table(out, get(get(d, "flows"), "links"), links);
    h(out, "h2", "Month by month");
    const cJSON *months = get(d, "months");
    bars(out, months, "waste_generated_kg", "Waste generated (kg)");
    bars(out, months, "recycling_rate", "Recycling rate");
    bars(out, months, "recovery_rate", "Recovery rate");
    bars(out, months, "material_circularity", "Material circularity");
}

static void recovery(buf_t *out, const cJSON *d, const cJSON *doc)
{
    static const col_t tot[] = {{"received_kg", "Received (kg)"},
        {"recovered_kg", "Recovered R (kg)"}, {"disposed_kg", "Disposed D (kg)"},
        {"untracked_kg", "Without lot (kg)"}, {"by_operation", "Final operations (kg)"},
        {"interim_by_operation", "Interim operations (kg)"}, {0, 0}};
    static const col_t rc[] = {{"time", "Received"}, {"event", "Event"},
        {"from_site", "From"}, {"site", "At"}, {"lot", "Lot"}, {"ewc", "EWC"}, {"kg", "kg"},
        {"document", "Document"}, {0, 0}};
    static const col_t ops[] = {{"time", "Time"}, {"event", "Event"}, {"site", "Site"},
        {"type", "Type"}, {"operation", "Operation"}, {"category", "Category"},
        {"via", "Lots"}, {"kg", "kg"}, {0, 0}};
    buf_puts(out, "<p>This certifies that ");
    text(out, path(d, "recycler.name"));
    if (!cJSON_IsString(path(d, "recycler.name"))) buf_puts(out, "the receiving sites");
    buf_puts(out, " received from ");
    text(out, path(d, "generator.name"));
    buf_puts(out, " (");
    text(out, path(d, "generator.code"));
    buf_puts(out, ") the waste listed below and treated it by the operations shown.</p>");
    h(out, "h2", "Totals");
    facts(out, get(d, "totals"), tot);
    const cJSON *r;
    cJSON_ArrayForEach(r, get(d, "receipts")) {
        buf_puts(out, "<h2>Receipt ");
        text(out, get(r, "event"));
        buf_puts(out, "</h2>");
        facts(out, r, rc);
        table(out, get(r, "operations"), ops);
    }
}

static const struct {
    const char *type, *title;
    void (*fn)(buf_t *, const cJSON *, const cJSON *);
} kinds[] = {
    {"waste_register", "Waste register", waste_register},
    {"prtr_transfers", "E-PRTR off-site transfers of waste", prtr},
    {"circularity_summary", "Circularity summary", circularity},
    {"recovery_certificate", "Certificate of recovery", recovery},
};

static void meta(buf_t *out, const cJSON *doc)
{
    static const char *const rows[][2] = {{"Tenant", "tenant.name"}, {"From", "period.from"},
        {"To (exclusive)", "period.to"}, {"Time zone", "period.tz"},
        {"Generated", "generated"}, {"Report id", "id"}, {"Ledger block", "block.hash"}};
    buf_puts(out, "<dl>");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        buf_puts(out, "<dt>");
        esc(out, rows[i][0]);
        buf_puts(out, "</dt><dd>");
        text(out, path(doc, rows[i][1]));
        buf_puts(out, "</dd>");
    }
    buf_puts(out, "<dt>Parameters</dt><dd>");
    text(out, get(doc, "params"));
    buf_printf(out, "</dd><dt>Block seq</dt><dd>%.0f</dd></dl>", report_num(doc, "block.seq"));
}

int render_html(const cJSON *doc, const char *sha_hex, buf_t *out)
{
    const char *type = report_str(doc, "type");
    size_t k = 0;
    while (k < sizeof kinds / sizeof kinds[0] && strcmp(kinds[k].type, type) != 0) k++;
    if (k == sizeof kinds / sizeof kinds[0]) return -1;
    buf_puts(out, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    esc(out, kinds[k].title);
    buf_printf(out, "</title><style>%s</style></head><body><header>", style);
    h(out, "h1", kinds[k].title);
    meta(out, doc);
    buf_puts(out, "</header><main>");
    kinds[k].fn(out, get(doc, "data"), doc);
    buf_puts(out, "</main><footer>SHA-256 of the canonical JSON (RFC 8785) of this report: ");
    esc(out, sha_hex);
    buf_puts(out, ". Check it against the ledger with <code>circa verify --report "
                  "FILE.json</code>.</footer></body></html>\n");
    return 0;
}

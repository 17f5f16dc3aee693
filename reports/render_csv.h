/* render_csv — a report's canonical document as RFC 4180 CSV: one table per report type, a
 * header line, numbers as in the JSON (ECMAScript form). Runs on a worker thread. */
#ifndef CIRCA_RENDER_CSV_H
#define CIRCA_RENDER_CSV_H
#include <cjson/cJSON.h>

#include "buf.h"

/* Appends the CSV of doc (report_build's document) to out. 0, or -1 for an unknown type. */
int render_csv(const cJSON *doc, buf_t *out);

/* Appends a page of a waste register's consignment listing ({"consignments": [...]}, as GET
 * /v1/reports/{id}/consignments answers) as CSV: a header line, one line per consignment. */
void render_csv_consignments(const cJSON *page, buf_t *out);

/* One cell: strings quoted when they hold a comma, quote or line break; numbers in JCS form;
 * true/false; null empty; objects and arrays as compact JSON. Helpers for render_html too. */
void render_csv_cell(buf_t *out, const cJSON *v);

#endif

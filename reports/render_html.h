/* render_html — a report's canonical document as one self-contained, printable HTML page:
 * inline CSS, inline SVG (a Sankey of the flows, monthly bar charts), no scripts and no
 * external assets. Runs on a worker thread. */
#ifndef CIRCA_RENDER_HTML_H
#define CIRCA_RENDER_HTML_H
#include <cjson/cJSON.h>

#include "buf.h"

/* Appends the page for doc (report_build's document) to out; sha_hex is printed in the footer
 * so a printout names the bytes it came from. 0, or -1 for an unknown type. */
int render_html(const cJSON *doc, const char *sha_hex, buf_t *out);

/* Appends an inline SVG Sankey of flows ({nodes, links} as GET /v1/flows answers): one
 * <path class="flow"> per link, one <rect class="node"> per node. */
void render_html_sankey(const cJSON *flows, buf_t *out);

#endif

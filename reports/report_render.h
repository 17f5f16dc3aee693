/* report_render — one report's work off the loop: its canonical document, SHA-256, ledger
 * block and CSV/HTML renderings, shared by POST /v1/reports and the scheduler. */
#ifndef CIRCA_REPORT_RENDER_H
#define CIRCA_REPORT_RENDER_H
#include "buf.h"
#include "report.h"

/* Filled by report_render; the caller owns it and releases it with report_render_free. */
typedef struct {
    buf_t canon, csv, html;   /* JCS bytes of the document, its two renderings */
    char sha[65], block_seq[24], block_hash[65], from[16], to[16];
    char err[160];            /* non-empty when it failed */
} report_render_t;

/* Runs on a worker thread: touches nothing but its arguments. */
void report_render(const report_meta_t *meta, const char *data_json, report_render_t *out);
void report_render_free(report_render_t *out);
/* The 13 parameters of a stored-report insert (schema/009_reports.sql), in its order. The
 * strings point into the arguments. */
void report_render_insert_params(const char *tenant, const report_meta_t *meta,
                                 const char *params_json, const report_render_t *out,
                                 const char *p[13]);

#endif

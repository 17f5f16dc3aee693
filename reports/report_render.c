/* report_render — build, hash and render a report on a worker thread. */
#include "report_render.h"
#include "render_csv.h"
#include "render_html.h"

#include <stdio.h>

void report_render(const report_meta_t *meta, const char *data_json, report_render_t *out)
{
    cJSON *doc = report_build(meta, data_json, &out->canon, out->sha, out->err, sizeof out->err);
    if (!doc) return;
    snprintf(out->block_seq, sizeof out->block_seq, "%.0f", report_num(doc, "block.seq"));
    snprintf(out->block_hash, sizeof out->block_hash, "%s", report_str(doc, "block.hash"));
    snprintf(out->from, sizeof out->from, "%s", report_str(doc, "period.from"));
    snprintf(out->to, sizeof out->to, "%s", report_str(doc, "period.to"));
    if (render_csv(doc, &out->csv) != 0 || render_html(doc, out->sha, &out->html) != 0)
        snprintf(out->err, sizeof out->err, "no renderer for report type %s", meta->type);
    cJSON_Delete(doc);
}

void report_render_free(report_render_t *out)
{
    buf_free(&out->canon);
    buf_free(&out->csv);
    buf_free(&out->html);
}

void report_render_insert_params(const char *tenant, const report_meta_t *meta,
                                 const char *params_json, const report_render_t *out,
                                 const char *p[13])
{
    const char *v[13] = {tenant,          meta->id,        meta->type,      params_json,
                         out->from,       out->to,         meta->generated, out->block_seq,
                         out->block_hash, out->sha,        out->canon.data, out->csv.data,
                         out->html.data};
    for (int i = 0; i < 13; i++) p[i] = v[i];
}

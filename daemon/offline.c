/* offline — checks a `circa export` file line by line, and a report against it (offline.h). */
#include "offline.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "ledger.h"
#include "regcheck.h"
#include "report.h"
#include "signer.h"

/* Largest report read into memory: reports are documents, not ledgers. */
#define REPORT_MAX ((size_t)512 << 20)

typedef struct {
    const offline_opts_t *o;
    offline_result_t *res;
    long line;
    unsigned char pub[SIGNER_PUB_LEN];
    long long first_signed;         /* seq of the first signed block, -1 before one */
    /* the block being read */
    int in_block;
    int64_t seq, count, next;       /* next: the seq its next event must have */
    char root[65];
    uint8_t (*leaves)[32];
    size_t cap;
    /* the last block read, for the next one's link */
    int64_t last_seq;
    char last_hash[65];
    /* the report, read before the export */
    int64_t rep_seq;
    char rep_hash[65], rep_tenant[128], listed_sha[65];
    int rep_block_seen;
    cJSON *rep_doc;                 /* a waste register: recomputed by reg */
    regcheck_t *reg;
} ov_t;

__attribute__((format(printf, 2, 3))) static int problem(ov_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->res->problem, sizeof v->res->problem, fmt, ap);
    va_end(ap);
    return 1;
}

/* A member that must be a string of exactly n lowercase hex digits (n = 0: any string). */
static const char *str_member(const cJSON *o, const char *name, size_t n)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(m)) return NULL;
    if (n == 0) return m->valuestring;
    if (strlen(m->valuestring) != n || strspn(m->valuestring, "0123456789abcdef") != n)
        return NULL;
    return m->valuestring;
}

/* An integer member, exactly representable (the export writes seqs as JSON integers). */
static int int_member(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(m) || m->valuedouble != floor(m->valuedouble) ||
        fabs(m->valuedouble) > 9007199254740992.0)
        return -1;
    *out = (int64_t)m->valuedouble;
    return 0;
}

static int read_header(ov_t *v, const cJSON *j)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "circa_export");
    if (!cJSON_IsNumber(fmt))
        return problem(v, "line 1: not a circa export (no \"circa_export\" header)");
    if (fmt->valuedouble != OFFLINE_FORMAT)
        return problem(v, "line 1: export format %g, this circa reads %d", fmt->valuedouble,
                       OFFLINE_FORMAT);
    const char *tenant = str_member(j, "tenant", 0);
    if (!tenant || !*tenant || strlen(tenant) >= sizeof v->res->tenant)
        return problem(v, "line 1: the header names no tenant");
    snprintf(v->res->tenant, sizeof v->res->tenant, "%s", tenant);
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(j, "public_key");
    const char *hdr = cJSON_IsNull(pk) || !pk ? NULL : str_member(j, "public_key", 64);
    if (pk && !cJSON_IsNull(pk) && !hdr)
        return problem(v, "line 1: public_key is not 64 hex digits");
    const char *given = v->o->public_key_hex;
    if (given && hdr && strcasecmp(given, hdr) != 0)
        return problem(v, "line 1: the export's public key %s is not the key given (%s)", hdr,
                       given);
    const char *use = given ? given : hdr;
    if (use && signer_unhex(use, v->pub, sizeof v->pub) != 0)
        return problem(v, "the public key given is not 64 hex digits");
    v->res->have_key = use != NULL;
    return 0;
}

/* The end of a block: all its events were there, and they hash to its root. */
static int finish_block(ov_t *v)
{
    if (!v->in_block) return 0;
    v->in_block = 0;
    if (v->next <= v->seq)
        return problem(v, "block %" PRId64 ": events %" PRId64 "-%" PRId64 " are missing from "
                       "the export", v->seq, v->next, v->seq);
    uint8_t h[32];
    char hex[65];
    ledger_merkle_root((const uint8_t (*)[32])v->leaves, (size_t)v->count, h);
    ledger_hex(h, hex);
    if (strcmp(hex, v->root) != 0)
        return problem(v, "block %" PRId64 ": Merkle root differs (stated %s, computed %s from "
                       "the events' canonical bytes)", v->seq, v->root, hex);
    v->res->blocks++;
    v->res->events += v->count;
    v->res->last_seq = v->seq;
    return 0;
}

/* A block's place in the chain: it follows the previous block of the export, or starts it. */
static int check_link(ov_t *v, int64_t first, const char *prev)
{
    if (v->last_seq == 0) {
        v->res->from_genesis = first == 1;
        v->res->first_seq = first;
        snprintf(v->res->first_prev, sizeof v->res->first_prev, "%s", prev);
        if ((first == 1) != (strcmp(prev, LEDGER_ZERO_HASH) == 0))
            return problem(v, "block %" PRId64 ": prev %s does not fit a block starting at "
                           "event %" PRId64, v->seq, prev, first);
        return 0;
    }
    if (first != v->last_seq + 1)
        return problem(v, "block %" PRId64 ": covers events %" PRId64 "-%" PRId64 " but the "
                       "previous block in the export ends at %" PRId64 " (a block is missing "
                       "or out of order)", v->seq, first, v->seq, v->last_seq);
    if (strcmp(prev, v->last_hash) != 0)
        return problem(v, "block %" PRId64 ": prev link broken (prev %s, previous block's hash "
                       "%s)", v->seq, prev, v->last_hash);
    return 0;
}

/* Once a block is signed, every later one must be: leaving signatures out is tampering. */
static int check_signature(ov_t *v, const cJSON *b, const char *hash)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(b, "signature");
    if (!s || cJSON_IsNull(s)) {
        if (v->res->have_key && v->first_signed >= 0)
            return problem(v, "block %" PRId64 ": not signed, but block %lld before it is",
                           v->seq, v->first_signed);
        return 0;
    }
    const char *hex = str_member(b, "signature", 2 * SIGNER_SIG_LEN);
    unsigned char sig[SIGNER_SIG_LEN];
    if (!hex || signer_unhex(hex, sig, sizeof sig) != 0)
        return problem(v, "block %" PRId64 ": signature is not 128 hex digits", v->seq);
    if (!v->res->have_key) return 0;
    if (signer_verify(v->pub, hash, sig) != 0)
        return problem(v, "block %" PRId64 ": signature does not verify against the public key",
                       v->seq);
    if (v->first_signed < 0) v->first_signed = v->seq;
    v->res->signed_blocks++;
    return 0;
}

static int check_report_block(ov_t *v, const char *hash)
{
    if (!v->o->report_path || v->seq != v->rep_seq) return 0;
    if (strcmp(hash, v->rep_hash) != 0)
        return problem(v, "report: it names block %" PRId64 " with hash %s, but the export's "
                       "block %" PRId64 " has hash %s", v->rep_seq, v->rep_hash, v->seq, hash);
    v->rep_block_seen = 1;
    return 0;
}

static int read_block(ov_t *v, const cJSON *b)
{
    int rc = finish_block(v);
    if (rc) return rc;
    const char *prev = str_member(b, "prev", 64), *root = str_member(b, "root", 64);
    const char *hash = str_member(b, "hash", 64), *time = str_member(b, "time", 0);
    if (int_member(b, "seq", &v->seq) || int_member(b, "count", &v->count) || v->count <= 0 ||
        v->seq < v->count || !prev || !root || !hash || !time)
        return problem(v, "line %ld: a block needs seq, count > 0, prev, root, hash (64 hex "
                       "digits) and time", v->line);
    int64_t first = v->seq - v->count + 1;
    if ((rc = check_link(v, first, prev))) return rc;
    uint8_t h[32];
    char hex[65];
    ledger_block_hash(v->res->tenant, v->seq, prev, root, v->count, time, h);
    ledger_hex(h, hex);
    if (strcmp(hex, hash) != 0)
        return problem(v, "block %" PRId64 ": block hash differs (stated %s, computed %s)",
                       v->seq, hash, hex);
    if ((rc = check_signature(v, b, hash)) || (rc = check_report_block(v, hash))) return rc;
    memcpy(v->root, root, 65);
    memcpy(v->last_hash, hash, 65);
    memcpy(v->res->head_hash, hash, 65);
    v->last_seq = v->seq;
    v->next = first;
    v->in_block = 1;
    return 0;
}

static int read_event(ov_t *v, const cJSON *e)
{
    int64_t seq;
    const char *canon = str_member(e, "canon", 0);
    if (int_member(e, "seq", &seq) || !canon)
        return problem(v, "line %ld: an event needs seq and canon", v->line);
    if (!v->in_block) return problem(v, "line %ld: event %" PRId64 " is in no block", v->line, seq);
    if (seq != v->next)
        return problem(v, "block %" PRId64 ": event %" PRId64 " expected, found %" PRId64
                       " (line %ld)", v->seq, v->next, seq, v->line);
    if (seq > v->seq)
        return problem(v, "block %" PRId64 ": event %" PRId64 " is beyond the block's last "
                       "event", v->seq, seq);
    size_t i = (size_t)(seq - (v->seq - v->count + 1));
    if (i >= v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->leaves = xrealloc(v->leaves, v->cap * sizeof *v->leaves);
    }
    /* The canon is JSON text (UTF-8, no NUL): the decoded string is exactly its bytes. */
    ledger_leaf_hash(canon, strlen(canon), v->leaves[i]);
    if (v->reg && regcheck_event(v->reg, seq, canon, strlen(canon), NAN) != 0)
        return problem(v, "line %ld: event %" PRId64 " is not a JSON event", v->line, seq);
    v->next++;
    return 0;
}

/* {"report": {"id", "sha256", "block": {...}}}: the database's record of a report. */
static int read_report_line(ov_t *v, const cJSON *r)
{
    const char *id = str_member(r, "id", 0), *sha = str_member(r, "sha256", 64);
    if (!id || !sha) return problem(v, "line %ld: a report needs id and sha256", v->line);
    if (strcmp(id, v->res->report_id) == 0) memcpy(v->listed_sha, sha, 65);
    return 0;
}

static int read_line(ov_t *v, const char *text, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return problem(v, "line %ld: not a JSON object", v->line);
    }
    const cJSON *m;
    int rc;
    if (v->line == 1) rc = read_header(v, j);
    else if ((m = cJSON_GetObjectItemCaseSensitive(j, "block"))) rc = read_block(v, m);
    else if ((m = cJSON_GetObjectItemCaseSensitive(j, "event"))) rc = read_event(v, m);
    else if ((m = cJSON_GetObjectItemCaseSensitive(j, "report"))) rc = read_report_line(v, m);
    else rc = problem(v, "line %ld: neither a block, an event nor a report", v->line);
    cJSON_Delete(j);
    return rc;
}

static int read_export(ov_t *v, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        v->line++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0 && v->line > 1) continue;
        rc = read_line(v, line, (size_t)n);
    }
    free(line);
    if (rc == 0 && ferror(f)) {
        problem(v, "reading the export: %s", strerror(errno));
        return -1;
    }
    if (rc == 0 && v->line == 0) rc = problem(v, "the export is empty");
    if (rc == 0) rc = finish_block(v);
    return rc;
}

/* Reads the report and its canonical SHA-256 before the export, so the export is read once. */
static int load_report(ov_t *v)
{
    FILE *f = fopen(v->o->report_path, "r");
    if (!f) return problem(v, "cannot read %s: %s", v->o->report_path, strerror(errno)), -1;
    buf_t text = BUF_INIT, canon = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text.len <= REPORT_MAX)
        buf_append(&text, chunk, n);
    fclose(f);
    cJSON *doc = text.len <= REPORT_MAX ? cJSON_ParseWithLength(text.data, text.len) : NULL;
    int rc = 0;
    if (!cJSON_IsObject(doc) ||
        report_canonical_sha256(text.data, text.len, &canon, v->res->report_sha256) != 0)
        rc = problem(v, "report: %s is not a JSON report", v->o->report_path);
    else {
        snprintf(v->res->report_id, sizeof v->res->report_id, "%s", report_str(doc, "id"));
        snprintf(v->rep_hash, sizeof v->rep_hash, "%s", report_str(doc, "block.hash"));
        snprintf(v->rep_tenant, sizeof v->rep_tenant, "%s", report_str(doc, "tenant.id"));
        double seq = report_num(doc, "block.seq");
        v->rep_seq = isnan(seq) ? -1 : (int64_t)seq;
        if (!v->res->report_id[0] || v->rep_seq < 0 || strlen(v->rep_hash) != 64)
            rc = problem(v, "report: %s has no id or no block {seq, hash}", v->o->report_path);
    }
    char why[160];
    if (rc == 0 && (v->reg = regcheck_new(doc, why, sizeof why))) v->rep_doc = doc, doc = NULL;
    else if (rc == 0 && v->o->listing_path) rc = problem(v, "report: --consignments: %s", why);
    cJSON_Delete(doc);
    buf_free(&text);
    buf_free(&canon);
    return rc;
}

/* A waste register recomputed from the export's events, and its listing. Only from a whole
 * chain: an export that starts mid-chain lacks earlier receipts, lots and corrections. */
static int check_register(ov_t *v)
{
    offline_result_t *r = v->res;
    char why[400];
    if (!r->from_genesis) {
        snprintf(r->register_note, sizeof r->register_note, "the register was not recomputed: "
                 "the export starts at event %lld (export the whole chain)", r->first_seq);
        return v->o->listing_path ? problem(v, "report %s: %s", r->report_id, r->register_note) : 0;
    }
    int rc = regcheck_report(v->reg, why, sizeof why, r->register_note, sizeof r->register_note);
    r->register_checked = 1;
    r->register_consignments = (long long)regcheck_count(v->reg);
    if (rc) return problem(v, "report %s: the register differs from the ledger: %s", r->report_id, why);
    if (!v->o->listing_path) return 0;
    FILE *f = fopen(v->o->listing_path, "r");
    if (!f) return problem(v, "cannot read %s: %s", v->o->listing_path, strerror(errno)), -1;
    rc = regcheck_listing(v->reg, f, why, sizeof why);
    fclose(f);
    return rc ? problem(v, "listing %s: %s", v->o->listing_path, why) : 0;
}

/* After the export: the report belongs to its tenant, names one of its blocks, and hashes to
 * the SHA-256 it was published with. */
static int check_report(ov_t *v)
{
    offline_result_t *r = v->res;
    if (strcmp(v->rep_tenant, r->tenant) != 0)
        return problem(v, "report %s is tenant '%s''s, the export is tenant '%s''s", r->report_id,
                       v->rep_tenant, r->tenant);
    if (!v->rep_block_seen)
        return problem(v, "report %s: its block %" PRId64 " is not in the export (export the "
                       "whole chain, or a range that includes that block)", r->report_id,
                       v->rep_seq);
    const char *given = v->o->report_sha256;
    if (given && v->listed_sha[0] && strcasecmp(given, v->listed_sha) != 0)
        return problem(v, "report %s: the SHA-256 given (%s) is not the one the export lists "
                       "(%s)", r->report_id, given, v->listed_sha);
    const char *want = given ? given : v->listed_sha[0] ? v->listed_sha : NULL;
    if (!want)
        return problem(v, "report %s: no SHA-256 to compare with (the export does not list it; "
                       "give the one it was published with)", r->report_id);
    if (strcasecmp(want, r->report_sha256) != 0)
        return problem(v, "report %s: content changed (SHA-256 of its canonical JSON is %s, "
                       "published %s)", r->report_id, r->report_sha256, want);
    return v->reg ? check_register(v) : 0;
}

int offline_verify(const offline_opts_t *o, offline_result_t *res)
{
    memset(res, 0, sizeof *res);
    ov_t v = {.o = o, .res = res, .first_signed = -1};
    if (o->report_path) {
        int rc = load_report(&v);
        if (rc) return rc;
    }
    int std = strcmp(o->export_path, "-") == 0;
    FILE *f = std ? stdin : fopen(o->export_path, "r");
    if (!f) return problem(&v, "cannot read %s: %s", o->export_path, strerror(errno)), -1;
    int rc = read_export(&v, f);
    if (!std) fclose(f);
    free(v.leaves);
    if (rc == 0 && o->report_path) rc = check_report(&v);
    regcheck_free(v.reg);
    cJSON_Delete(v.rep_doc);
    return rc;
}

int offline_verify_print(const offline_opts_t *o, FILE *out)
{
    offline_result_t r;
    int rc = offline_verify(o, &r);
    if (r.tenant[0])
        fprintf(out, "tenant %s: %lld blocks, %lld events (seq %lld-%lld), %lld signed%s\n",
                r.tenant, r.blocks, r.events, r.first_seq, r.last_seq, r.signed_blocks,
                r.have_key ? "" : " (no public key: signatures not checked)");
    if (r.blocks > 0 && !r.from_genesis)
        fprintf(out, "the export starts mid-chain: block %lld's prev %s is taken as given\n",
                r.first_seq, r.first_prev);
    if (rc == 0 && r.blocks > 0) fprintf(out, "head %s\n", r.head_hash);
    if (rc == 0 && o->report_path)
        fprintf(out, "report %s sha256 %s: in the chain\n", r.report_id, r.report_sha256);
    if (rc == 0 && r.register_checked)
        fprintf(out, "register recomputed from the export: %lld consignments%s\n",
                r.register_consignments, o->listing_path ? ", listing the same" : "");
    if (r.register_note[0]) fprintf(out, "note: %s\n", r.register_note);
    if (rc == 0) fputs("OK\n", out);
    else fprintf(out, "FAILED: %s\n", r.problem);
    return rc == 0 ? 0 : 1;
}

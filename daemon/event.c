/* event — request bodies into validated, normalised canonical events (API.md, VOCABULARY.md). */
#include "event.h"
#include "codes.h"
#include "jcs.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Types */

static const char *const type_names[EVT__COUNT] = {
    "produced", "consumed", "shipped", "received", "put_on_market", "returned",
    "waste_generated", "collected", "sorted", "repaired", "refurbished", "remanufactured",
    "repurposed", "reused", "recycled", "energy_recovered", "disposed", "transformed",
    "measured", "observed", "corrected",
};

const char *event_type_name(event_type_t t)
{
    return (unsigned)t < EVT__COUNT ? type_names[t] : "?";
}

int event_type_parse(const char *name, event_type_t *out)
{
    for (int i = 0; i < EVT__COUNT; i++)
        if (strcmp(type_names[i], name) == 0) {
            *out = (event_type_t)i;
            return 0;
        }
    return -1;
}

#define T(x) (1u << (x))
#define FLOWS (T(EVT_DISPOSED + 1) - 1u)   /* produced … disposed */
#define EWC_UNLESS_NAMED (T(EVT_COLLECTED) | T(EVT_SORTED) | T(EVT_RECYCLED) | \
    T(EVT_ENERGY_RECOVERED) | T(EVT_DISPOSED) | T(EVT_REPAIRED) | T(EVT_REFURBISHED) | \
    T(EVT_REMANUFACTURED) | T(EVT_REPURPOSED) | T(EVT_REUSED))

/* ---------------------------------------------------------------------------------------------
 * A strict JSON parser into cJSON: RFC 8259 grammar, UTF-8 checked, duplicate names refused,
 * and the byte offset of the first problem known (cJSON offers none of these). */

#define JP_MAX_DEPTH 64        /* deeper bodies are refused before ext's own limit applies */
#define JP_LINEAR_DUPS 16      /* objects up to this size check duplicates pairwise */

typedef struct {
    const char *start, *p, *end;
    int depth;
    buf_t tmp;                 /* unescaped string */
    int failed;
    size_t at;                 /* byte offset of the problem */
    char what[160];            /* "malformed JSON", "invalid UTF-8", "duplicate member 'x'" */
    char detail[80];
} jp_t;

static cJSON *jp_value(jp_t *j);

static void jp_fail(jp_t *j, const char *at, const char *what, const char *detail)
{
    if (j->failed) return;
    j->failed = 1;
    j->at = (size_t)(at - j->start);
    snprintf(j->what, sizeof j->what, "%s", what);
    snprintf(j->detail, sizeof j->detail, "%s", detail ? detail : "");
}

static void jp_ws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Length of the valid UTF-8 sequence at p, 0 when invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = *p;
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (c < 0xC2 || c > 0xF4 || (size_t)(end - p) < len) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ||
        (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
        return 0;
    return len;
}

static void put_utf8(buf_t *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63));
        u[2] = (char)(0x80 | (cp & 63)); n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); n = 4;
    }
    buf_append(b, u, n);
}

static int hex4(const char *p, const char *end, unsigned *v)
{
    if (end - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ?
                     (unsigned)(c - 'a' + 10) : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 99;
        if (d > 15) return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* After a backslash at j->p: appends the character and advances. */
static int jp_escape(jp_t *j)
{
    const char *at = j->p - 1;
    if (j->p >= j->end) return jp_fail(j, at, "malformed JSON", "unterminated string"), -1;
    char c = *j->p++;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = strchr(from, c);
    if (c && k) { buf_putc(&j->tmp, to[k - from]); return 0; }
    unsigned cp, lo;
    if (c != 'u' || hex4(j->p, j->end, &cp) != 0)
        return jp_fail(j, at, "malformed JSON", "invalid escape"), -1;
    j->p += 4;
    if (cp == 0) return jp_fail(j, at, "malformed JSON", "\\u0000 is not allowed"), -1;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return jp_fail(j, at, "malformed JSON", "lone surrogate"), -1;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
            hex4(j->p + 2, j->end, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return jp_fail(j, at, "malformed JSON", "lone surrogate"), -1;
        j->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(&j->tmp, cp);
    return 0;
}

/* At the opening quote; returns the string (malloc'd) or NULL. */
static char *jp_string(jp_t *j)
{
    const char *s = ++j->p;
    int escaped = 0;
    buf_reset(&j->tmp);
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            if (!escaped) { char *r = xstrndup(s, (size_t)(j->p++ - s)); return r; }
            buf_append(&j->tmp, s, (size_t)(j->p++ - s));
            return xstrndup(j->tmp.data, j->tmp.len);
        }
        if (c < 0x20) return jp_fail(j, j->p, "malformed JSON", "control character in string"), NULL;
        if (c == '\\') {
            escaped = 1;
            buf_append(&j->tmp, s, (size_t)(j->p - s));
            j->p++;
            if (jp_escape(j) != 0) return NULL;
            s = j->p;
            continue;
        }
        size_t n = utf8_len((const unsigned char *)j->p, (const unsigned char *)j->end);
        if (n == 0) return jp_fail(j, j->p, "invalid UTF-8", NULL), NULL;
        j->p += n;
    }
    jp_fail(j, j->end, "malformed JSON", "unterminated string");
    return NULL;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static cJSON *jp_number(jp_t *j)
{
    const char *s = j->p, *p = s, *e = j->end;
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') p++;
    else if (p < e && is_digit(*p)) while (p < e && is_digit(*p)) p++;
    else return jp_fail(j, s, "malformed JSON", "invalid number"), NULL;
    if (p < e && *p == '.') {
        if (++p >= e || !is_digit(*p)) return jp_fail(j, s, "malformed JSON", "invalid number"), NULL;
        while (p < e && is_digit(*p)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        if (++p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || !is_digit(*p)) return jp_fail(j, s, "malformed JSON", "invalid number"), NULL;
        while (p < e && is_digit(*p)) p++;
    }
    /* strtod needs a terminated copy: the body need not end in NUL. */
    char small[64], *copy = (size_t)(p - s) < sizeof small ? small : xmalloc((size_t)(p - s) + 1);
    memcpy(copy, s, (size_t)(p - s));
    copy[p - s] = '\0';
    double d = strtod(copy, NULL);
    if (copy != small) free(copy);
    j->p = p;
    return cJSON_CreateNumber(d);
}

static cJSON *jp_literal(jp_t *j, const char *word, cJSON *v)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        cJSON_Delete(v);
        return jp_fail(j, j->p, "malformed JSON", "unexpected character"), NULL;
    }
    j->p += n;
    return v;
}

static cJSON *jp_array(jp_t *j)
{
    cJSON *a = cJSON_CreateArray();
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == ']') { j->p++; return a; }
    for (;;) {
        cJSON *v = jp_value(j);
        if (!v) break;
        cJSON_AddItemToArray(a, v);
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == ']') { j->p++; return a; }
        jp_fail(j, j->p, "malformed JSON", "expected ',' or ']'");
        break;
    }
    cJSON_Delete(a);
    return NULL;
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Large objects: sort the names once rather than compare every pair. */
static const char *dup_in_large(const cJSON *o, size_t n)
{
    const cJSON **m = xmalloc(n * sizeof *m);
    size_t k = 0;
    for (const cJSON *c = o->child; c; c = c->next) m[k++] = c;
    qsort(m, n, sizeof *m, key_cmp);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(m[i - 1]->string, m[i]->string) == 0) dup = m[i]->string;
    free(m);
    return dup;
}

static int jp_member(jp_t *j, cJSON *o, size_t n)
{
    jp_ws(j);
    const char *at = j->p;
    if (j->p >= j->end || *j->p != '"') return jp_fail(j, j->p, "malformed JSON", "expected a member name"), -1;
    char *key = jp_string(j);
    if (!key) return -1;
    jp_ws(j);
    if (j->p >= j->end || *j->p != ':') {
        free(key);
        return jp_fail(j, j->p, "malformed JSON", "expected ':'"), -1;
    }
    j->p++;
    if (n < JP_LINEAR_DUPS)
        for (const cJSON *c = o->child; c; c = c->next)
            if (strcmp(c->string, key) == 0) {
                char what[160];
                snprintf(what, sizeof what, "duplicate member '%.100s'", key);
                free(key);
                return jp_fail(j, at, what, NULL), -1;
            }
    cJSON *v = jp_value(j);
    if (!v) { free(key); return -1; }
    v->string = key;
    cJSON_AddItemToArray(o, v);   /* objects and arrays share the child list */
    return 0;
}

static cJSON *jp_object(jp_t *j)
{
    const char *start = j->p++;
    cJSON *o = cJSON_CreateObject();
    size_t n = 0;
    jp_ws(j);
    if (j->p < j->end && *j->p == '}') { j->p++; return o; }
    for (;;) {
        if (jp_member(j, o, n++) != 0) break;
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            const char *dup = n > JP_LINEAR_DUPS ? dup_in_large(o, n) : NULL;
            if (!dup) return o;
            char what[160];
            snprintf(what, sizeof what, "duplicate member '%.100s' in the object", dup);
            jp_fail(j, start, what, NULL);
            break;
        }
        jp_fail(j, j->p, "malformed JSON", "expected ',' or '}'");
        break;
    }
    cJSON_Delete(o);
    return NULL;
}

static cJSON *jp_value(jp_t *j)
{
    jp_ws(j);
    if (j->p >= j->end) return jp_fail(j, j->p, "malformed JSON", "unexpected end"), NULL;
    if (++j->depth > JP_MAX_DEPTH) return jp_fail(j, j->p, "malformed JSON", "nested too deeply"), NULL;
    cJSON *v;
    switch (*j->p) {
    case '{': v = jp_object(j); break;
    case '[': v = jp_array(j); break;
    case '"': {
        char *s = jp_string(j);
        v = s ? cJSON_CreateNull() : NULL;
        if (v) { v->type = cJSON_String; v->valuestring = s; }
        break;
    }
    case 't': v = jp_literal(j, "true", cJSON_CreateTrue()); break;
    case 'f': v = jp_literal(j, "false", cJSON_CreateFalse()); break;
    case 'n': v = jp_literal(j, "null", cJSON_CreateNull()); break;
    default: v = jp_number(j);
    }
    j->depth--;
    return v;
}

/* One whole JSON text: a value and nothing but white space after it. */
static cJSON *jp_document(jp_t *j, const char *s, size_t len)
{
    memset(j, 0, sizeof *j);
    j->start = j->p = s;
    j->end = s + len;
    cJSON *v = jp_value(j);
    if (v) {
        jp_ws(j);
        if (j->p < j->end) {
            jp_fail(j, j->p, "malformed JSON", "unexpected data after the value");
            cJSON_Delete(v);
            v = NULL;
        }
    }
    buf_free(&j->tmp);
    return v;
}

static void jp_report(const jp_t *j, errlist_t *errs, int line)
{
    char where[48];
    if (line) snprintf(where, sizeof where, "line %d, byte %zu", line, j->at);
    else snprintf(where, sizeof where, "byte %zu", j->at);
    errlist_add(errs, -1, "", "%s at %s%s%s", j->what, where, j->detail[0] ? ": " : "", j->detail);
}

/* ---------------------------------------------------------------------------------------------
 * Body splitting */

static int check_elements(cJSON *arr, errlist_t *errs)
{
    int n = cJSON_GetArraySize(arr), bad = 0, i = 0;
    if (n == 0) {
        errlist_add(errs, -1, "", "no events");
        return 422;
    }
    if (n > EVENT_MAX_PER_REQUEST) {
        errlist_add(errs, -1, "", "%d events in one request; the limit is %d", n, EVENT_MAX_PER_REQUEST);
        return 413;
    }
    for (const cJSON *c = arr->child; c; c = c->next, i++)
        if (!cJSON_IsObject(c)) {
            errlist_add(errs, i, "", "an event must be a JSON object");
            bad = 1;
        }
    return bad ? 422 : 0;
}

static int split_ndjson(const char *body, size_t len, cJSON *arr, errlist_t *errs)
{
    const char *p = body, *end = body + len;
    int line = 0, count = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        line++;
        const char *q = p;
        while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q < eol) {
            if (++count > EVENT_MAX_PER_REQUEST) {
                errlist_add(errs, -1, "", "more than %d events in one request", EVENT_MAX_PER_REQUEST);
                return 413;
            }
            jp_t j;
            cJSON *v = jp_document(&j, p, (size_t)(eol - p));
            if (!v) { jp_report(&j, errs, line); return 400; }
            cJSON_AddItemToArray(arr, v);
        }
        p = eol + (nl != NULL);
    }
    return check_elements(arr, errs);
}

int event_body_split(const char *body, size_t len, int ndjson, cJSON **out, errlist_t *errs)
{
    *out = NULL;
    cJSON *arr;
    int rc;
    if (ndjson) {
        arr = cJSON_CreateArray();
        rc = split_ndjson(body, len, arr, errs);
    } else {
        jp_t j;
        cJSON *v = jp_document(&j, body, len);
        if (!v) { jp_report(&j, errs, 0); return 400; }
        if (cJSON_IsArray(v)) arr = v;
        else {
            arr = cJSON_CreateArray();
            cJSON_AddItemToArray(arr, v);
        }
        rc = check_elements(arr, errs);
    }
    if (rc) cJSON_Delete(arr);
    else *out = arr;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Time */

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int num(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

#define TIME_MIN_S INT64_C(-62135596800)     /* 0001-01-01T00:00:00Z */
#define TIME_MAX_S INT64_C(253402300799)     /* 9999-12-31T23:59:59Z */

/* -1: not RFC 3339 with an offset; -2: no such date or time of day. frac and fraclen give
 * the submitted fraction digits. */
static int time_parse(const char *s, int64_t *secs, int *us, const char **frac, int *fraclen)
{
    int y, mo, d, h, mi, se, oh = 0, om = 0;
    if (strlen(s) < 20 || num(s, 4, &y) || s[4] != '-' || num(s + 5, 2, &mo) || s[7] != '-' ||
        num(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || num(s + 11, 2, &h) ||
        s[13] != ':' || num(s + 14, 2, &mi) || s[16] != ':' || num(s + 17, 2, &se))
        return -1;
    const char *p = s + 19;
    *frac = p; *fraclen = 0; *us = 0;
    if (*p == '.') {
        *frac = ++p;
        while (is_digit(*p)) p++;
        *fraclen = (int)(p - *frac);
        if (*fraclen < 1 || *fraclen > 9) return -1;
        for (int i = 0; i < 6; i++) *us = *us * 10 + (i < *fraclen ? (*frac)[i] - '0' : 0);
    }
    int sign = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') sign = 0;
    else if ((*p == '+' || *p == '-') && strlen(p) == 6 && !num(p + 1, 2, &oh) && p[3] == ':' &&
             !num(p + 4, 2, &om)) sign = *p == '+' ? 1 : -1;
    else return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || se > 59 || oh > 23 || om > 59)
        return -2;
    *secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);
    return *secs < TIME_MIN_S || *secs > TIME_MAX_S ? -2 : 0;
}

int event_parse_time(const char *s, int64_t *us)
{
    int64_t secs;
    int micro, fraclen;
    const char *frac;
    if (time_parse(s, &secs, &micro, &frac, &fraclen) != 0) return -1;
    *us = secs * 1000000 + micro;
    return 0;
}

static void format_utc(int64_t secs, const char *frac, int fraclen, char *out, size_t outlen)
{
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    while (fraclen > 0 && frac[fraclen - 1] == '0') fraclen--;
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d%s%.*sZ", y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60), fraclen ? "." : "", fraclen, frac);
}

void event_format_time(int64_t us, char out[40])
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    char frac[8];
    snprintf(frac, sizeof frac, "%06d", (int)(us - secs * 1000000));
    format_utc(secs, frac, 6, out, 40);
}

/* ---------------------------------------------------------------------------------------------
 * Validation context and small checks */

typedef struct {
    const event_ctx_t *ctx;
    errlist_t *errs;
    int index;
    const char *prefix;        /* "" or "replacement." */
    int invalid;               /* errors other than a forbidden site */
    int forbidden;
} val_t;

static void verr(val_t *v, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void verr(val_t *v, const char *field, const char *fmt, ...)
{
    char path[96], msg[240];
    snprintf(path, sizeof path, "%s%s", v->prefix, field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errlist_add(v->errs, v->index, path, "%s", msg);
    v->invalid++;
}

static const char *pathf(char out[96], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *pathf(char out[96], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, 96, fmt, ap);
    va_end(ap);
    return out;
}

static const char *want_string(val_t *v, const cJSON *it, const char *path)
{
    if (cJSON_IsString(it)) return it->valuestring;
    verr(v, path, "%s must be a string", path);
    return NULL;
}

static int want_kind(val_t *v, const cJSON *it, const char *path, int type, const char *what)
{
    if (it->type & type) return 0;
    verr(v, path, "%s must be %s", path, what);
    return -1;
}

/* ids of events, items, lots, products: 1–200 printable ASCII characters, no space. */
static const char *want_ident(val_t *v, const cJSON *it, const char *path)
{
    const char *s = want_string(v, it, path);
    if (!s) return NULL;
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7E) {
            verr(v, path, "%s may hold only printable ASCII characters without spaces", path);
            return NULL;
        }
    if (n == 0 || n > EVENT_MAX_ID) {
        verr(v, path, "%s must be 1 to %d characters long", path, EVENT_MAX_ID);
        return NULL;
    }
    return s;
}

static const char *want_text(val_t *v, const cJSON *it, const char *path)
{
    const char *s = want_string(v, it, path);
    if (!s) return NULL;
    size_t chars = 0;
    for (const char *p = s; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (chars > EVENT_MAX_STRING) {
        verr(v, path, "%s is longer than %d characters", path, EVENT_MAX_STRING);
        return NULL;
    }
    return s;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return 1;
    return 0;
}

static const char *want_enum(val_t *v, const cJSON *it, const char *path, const char *const *list,
                             const char *hint)
{
    const char *s = want_string(v, it, path);
    if (s && !in_list(s, list)) {
        verr(v, path, "unknown %s '%.60s'; use %s", path, s, hint);
        return NULL;
    }
    return s;
}

/* Members of a nested object must be among the names given. */
static void only_keys(val_t *v, const cJSON *o, const char *path, const char *const *keys)
{
    char p[96];
    for (const cJSON *c = o->child; c; c = c->next)
        if (!in_list(c->string, keys))
            verr(v, pathf(p, "%s.%.40s", path, c->string), "unknown field '%.40s' in %s", c->string, path);
}

/* ISO 4217 active codes (list one), fund and precious-metal codes included; XTS (testing) and
 * XXX (no currency) left out because an amount in them means nothing. */
static const char iso4217[][4] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW",
    "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD",
    "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR",
    "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
    "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
};

static int cmp_currency(const void *k, const void *e)
{
    return strcmp(k, e);
}

static int currency_known(const char *s)
{
    return strlen(s) == 3 &&
           bsearch(s, iso4217, sizeof iso4217 / sizeof iso4217[0], sizeof iso4217[0], cmp_currency);
}

/* ---------------------------------------------------------------------------------------------
 * Fields */

typedef enum {
    F_ACCEPTANCE, F_CARRIER, F_CORRECTS, F_DEVICE, F_DOCUMENT, F_EWC, F_EXT, F_FROM_SITE, F_HP,
    F_ID, F_INPUTS, F_ITEM, F_LOSS, F_LOT, F_MATERIAL, F_OPERATION, F_OUTPUTS, F_PACKAGING,
    F_PLANNED_OPERATION, F_PRODUCT, F_QUANTITY, F_REFUSED_QUANTITY, F_REPLACEMENT, F_SITE,
    F_TIME, F_TO_SITE, F_TRANSPORT, F_TYPE, F_VALUE, F__COUNT, F_SERVER
} field_t;

static const struct { const char *name; field_t f; } field_names[] = {
    {"acceptance", F_ACCEPTANCE}, {"block", F_SERVER}, {"carrier", F_CARRIER},
    {"corrects", F_CORRECTS}, {"device", F_DEVICE}, {"document", F_DOCUMENT}, {"ewc", F_EWC},
    {"ext", F_EXT}, {"flags", F_SERVER}, {"from_site", F_FROM_SITE}, {"hp", F_HP}, {"id", F_ID},
    {"inputs", F_INPUTS}, {"item", F_ITEM}, {"loss", F_LOSS}, {"lot", F_LOT},
    {"material", F_MATERIAL}, {"operation", F_OPERATION}, {"outputs", F_OUTPUTS},
    {"packaging", F_PACKAGING}, {"planned_operation", F_PLANNED_OPERATION},
    {"product", F_PRODUCT}, {"quantity", F_QUANTITY}, {"quantity_kg", F_SERVER},
    {"recorded_time", F_SERVER}, {"refused_quantity", F_REFUSED_QUANTITY},
    {"replacement", F_REPLACEMENT}, {"seq", F_SERVER}, {"site", F_SITE}, {"time", F_TIME},
    {"to_site", F_TO_SITE}, {"transport", F_TRANSPORT}, {"type", F_TYPE}, {"value", F_VALUE},
};

/* Fields that only some types take, and the hint that names them. */
static const struct { field_t f; unsigned types; const char *hint; } field_types[] = {
    {F_FROM_SITE, T(EVT_SHIPPED) | T(EVT_RECEIVED) | T(EVT_COLLECTED), "shipped, received and collected"},
    {F_TO_SITE, T(EVT_SHIPPED) | T(EVT_RECEIVED) | T(EVT_COLLECTED), "shipped, received and collected"},
    {F_PLANNED_OPERATION, T(EVT_SHIPPED) | T(EVT_COLLECTED), "shipped and collected"},
    {F_ACCEPTANCE, T(EVT_RECEIVED), "received"},
    {F_REFUSED_QUANTITY, T(EVT_RECEIVED), "received"},
    {F_INPUTS, T(EVT_TRANSFORMED), "transformed"},
    {F_OUTPUTS, T(EVT_TRANSFORMED), "transformed"},
    {F_LOSS, T(EVT_TRANSFORMED), "transformed"},
    {F_CORRECTS, T(EVT_CORRECTED), "corrected"},
    {F_REPLACEMENT, T(EVT_CORRECTED), "corrected"},
    {F_QUANTITY, FLOWS, "the flow types (transformed uses inputs and outputs)"},
};

static int cmp_field(const void *k, const void *e)
{
    return strcmp(k, *(const char *const *)e);
}

static int field_lookup(const char *name)
{
    const void *hit = bsearch(name, field_names, sizeof field_names / sizeof field_names[0],
                              sizeof field_names[0], cmp_field);
    return hit ? (int)((const __typeof__(field_names[0]) *)hit)->f : -1;
}

/* What validation learns about one event before its json is built. */
typedef struct {
    const cJSON *f[F__COUNT];
    int type_ok;
    event_type_t type;
    int64_t time_secs;
    int time_us;
    char time_norm[48];
    char ewc[7];
    int hazardous;
    const char *material;          /* given, or from the product */
    const char *bom_material;      /* from the product, when the event names none */
    double product_mass;           /* NAN when unknown */
    int has_quantity;
    double kg;
    event_t repl;
    int has_repl;
} scan_t;

static void collect_fields(val_t *v, const cJSON *obj, scan_t *s)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        int f = c->string ? field_lookup(c->string) : -1;
        if (f < 0) verr(v, c->string ? c->string : "", "unknown field '%.60s'", c->string ? c->string : "");
        else if (f != F_SERVER && !s->f[f]) s->f[f] = c;
    }
}

static void check_applicability(val_t *v, scan_t *s)
{
    if (!s->type_ok) return;
    for (size_t i = 0; i < sizeof field_types / sizeof field_types[0]; i++) {
        field_t f = field_types[i].f;
        if (s->f[f] && !(field_types[i].types & T(s->type))) {
            verr(v, s->f[f]->string, "%s does not apply to %s events; only %s take it",
                 s->f[f]->string, type_names[s->type], field_types[i].hint);
            s->f[f] = NULL;   /* one error per field is enough */
        }
    }
}

static void check_type_time(val_t *v, scan_t *s)
{
    const char *t = s->f[F_TYPE] ? want_string(v, s->f[F_TYPE], "type") : NULL;
    if (!s->f[F_TYPE]) verr(v, "type", "type is required");
    else if (t && event_type_parse(t, &s->type) != 0)
        verr(v, "type", "unknown type '%.60s'; see VOCABULARY.md for the event types", t);
    else if (t) s->type_ok = 1;

    const char *tm = s->f[F_TIME] ? want_string(v, s->f[F_TIME], "time") : NULL;
    if (!s->f[F_TIME]) { verr(v, "time", "time is required"); return; }
    if (!tm) return;
    const char *frac;
    int fraclen, rc = time_parse(tm, &s->time_secs, &s->time_us, &frac, &fraclen);
    if (rc == -1)
        verr(v, "time", "time '%.60s' is not RFC 3339 with an offset, e.g. 2026-03-04T10:15:00+01:00", tm);
    else if (rc == -2)
        verr(v, "time", "time '%.60s' is not a valid date and time of day", tm);
    else if (s->time_secs * 1000000 + s->time_us > v->ctx->now_us + EVENT_MAX_FUTURE_US)
        verr(v, "time", "time '%.60s' is more than 5 minutes in the future", tm);
    else format_utc(s->time_secs, frac, fraclen, s->time_norm, sizeof s->time_norm);
}

static void check_sites(val_t *v, scan_t *s)
{
    const event_ctx_t *ctx = v->ctx;
    const char *site = s->f[F_SITE] ? want_string(v, s->f[F_SITE], "site") : NULL, *party = NULL;
    if (!s->f[F_SITE] && s->type_ok && s->type != EVT_CORRECTED) verr(v, "site", "site is required");
    if (site && !ctx->site_party(ctx->md, site, &party))
        verr(v, "site", "unknown site '%.64s'", site);
    else if (site && ctx->caller_party && strcmp(party, ctx->caller_party) != 0) {
        char path[96];
        errlist_add(v->errs, v->index, pathf(path, "%ssite", v->prefix),
                    "site '%.64s' belongs to another party than the caller's key", site);
        v->forbidden = 1;
    }
    static const field_t ends[] = {F_FROM_SITE, F_TO_SITE};
    for (int i = 0; i < 2; i++) {
        const cJSON *it = s->f[ends[i]];
        const char *code = it ? want_string(v, it, it->string) : NULL;
        if (code && !ctx->site_party(ctx->md, code, &party) && !ctx->party_exists(ctx->md, code))
            verr(v, it->string, "%s '%.64s' is neither a site nor a party", it->string, code);
    }
    if (s->type_ok && s->type == EVT_SHIPPED && !s->f[F_TO_SITE])
        verr(v, "to_site", "to_site is required on shipped");
}

static void check_identifiers(val_t *v, scan_t *s)
{
    static const field_t ids[] = {F_ITEM, F_LOT, F_PRODUCT};
    for (int i = 0; i < 3; i++)
        if (s->f[ids[i]] && !want_ident(v, s->f[ids[i]], s->f[ids[i]]->string))
            s->f[ids[i]] = NULL;
    static const field_t texts[] = {F_DEVICE, F_CARRIER, F_DOCUMENT};
    for (int i = 0; i < 3; i++)
        if (s->f[texts[i]]) want_text(v, s->f[texts[i]], s->f[texts[i]]->string);
}

static void check_material(val_t *v, scan_t *s)
{
    const event_ctx_t *ctx = v->ctx;
    double density;
    s->product_mass = NAN;
    if (s->f[F_PRODUCT]) {
        const char *bom = NULL;
        if (!ctx->product(ctx->md, s->f[F_PRODUCT]->valuestring, &s->product_mass, &bom))
            s->product_mass = NAN;
        else s->bom_material = bom;
    }
    if (s->f[F_MATERIAL]) {
        const char *m = want_string(v, s->f[F_MATERIAL], "material");
        if (m && !ctx->material(ctx->md, m, &density))
            verr(v, "material", "unknown material '%.64s'; add it to the catalogue first", m);
        else s->material = m;
        s->bom_material = NULL;
        return;
    }
    s->material = s->bom_material;
    if (s->type_ok && (FLOWS & T(s->type)) && !s->f[F_PRODUCT] && !s->f[F_ITEM])
        verr(v, "material", "material is required on %s unless the event names a product or item",
             type_names[s->type]);
}

/* Validates {value, unit, basis?} at path and converts it to kg through material's density. */
static int check_quantity(val_t *v, const cJSON *q, const char *path, const char *material, double *kg)
{
    static const char *const keys[] = {"value", "unit", "basis", NULL};
    static const char *const bases[] = {"measured", "calculated", "estimated", NULL};
    char p[96];
    if (want_kind(v, q, path, cJSON_Object, "an object {value, unit}") != 0) return -1;
    int before = v->invalid;
    only_keys(v, q, path, keys);
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(q, "value");
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(q, "unit");
    const cJSON *basis = cJSON_GetObjectItemCaseSensitive(q, "basis");
    pathf(p, "%s.value", path);
    if (!val) verr(v, p, "%s is required", p);
    else if (want_kind(v, val, p, cJSON_Number, "a number") == 0 &&
             !(isfinite(val->valuedouble) && val->valuedouble > 0))
        verr(v, p, "%s must be a finite number greater than 0", p);
    pathf(p, "%s.unit", path);
    const char *u = !unit ? (verr(v, p, "%s is required", p), NULL) : want_string(v, unit, p);
    const codes_unit_t *cu = u ? codes_unit_find(u) : NULL;
    if (u && !cu) verr(v, p, "unknown unit '%.20s'; use kg, t, g, lb, l or m3", u);
    if (basis) want_enum(v, basis, pathf(p, "%s.basis", path), bases, "measured, calculated or estimated");
    if (v->invalid != before) return -1;
    double f = cu->factor;
    if (cu->is_volume) {
        double density = NAN;
        pathf(p, "%s.unit", path);
        if (!material) { verr(v, p, "a volume needs a material with a density; give the mass"); return -1; }
        if (!v->ctx->material(v->ctx->md, material, &density)) return -1;   /* reported already */
        if (!(isfinite(density) && density > 0)) {
            verr(v, p, "material '%.64s' has no density; give the mass", material);
            return -1;
        }
        f *= density;
    }
    *kg = val->valuedouble * f;
    return 0;
}

static void check_quantities(val_t *v, scan_t *s)
{
    if (s->f[F_QUANTITY] && check_quantity(v, s->f[F_QUANTITY], "quantity", s->material, &s->kg) == 0)
        s->has_quantity = 1;
    if (!s->type_ok || !(FLOWS & T(s->type)) || s->f[F_QUANTITY]) return;
    if (!s->f[F_ITEM]) {
        verr(v, "quantity", "quantity is required on %s unless the event names an item", type_names[s->type]);
        return;
    }
    if (isfinite(s->product_mass) && s->product_mass > 0) {
        s->kg = s->product_mass;
        s->has_quantity = 1;
    }
}

static int hp_code(const char *s)
{
    char *end;
    if (strncmp(s, "HP", 2) != 0 || !is_digit(s[2]) || s[2] == '0') return 0;
    long n = strtol(s + 2, &end, 10);
    return *end == '\0' && n >= 1 && n <= 15 ? (int)n : 0;
}

static void check_hp(val_t *v, scan_t *s)
{
    const cJSON *hp = s->f[F_HP];
    if (!hp || want_kind(v, hp, "hp", cJSON_Array, "an array such as [\"HP4\", \"HP14\"]") != 0) return;
    unsigned seen = 0;
    int i = 0;
    char p[96];
    for (const cJSON *c = hp->child; c; c = c->next, i++) {
        const char *code = want_string(v, c, pathf(p, "hp[%d]", i));
        int n = code ? hp_code(code) : -1;
        if (n == 0) verr(v, p, "unknown hazardous property '%.20s'; use HP1 to HP15", code);
        else if (n > 0 && (seen & (1u << n))) verr(v, p, "hazardous property %s is listed twice", code);
        else if (n > 0) seen |= 1u << n;
    }
    if (s->ewc[0] && !s->hazardous)
        verr(v, "hp", "hp applies only to a hazardous entry; ewc %s is not hazardous", s->ewc);
    else if (!s->ewc[0] && !s->f[F_EWC])
        verr(v, "hp", "hp applies only to a hazardous ewc entry; give the ewc");
}

static void check_ewc(val_t *v, scan_t *s)
{
    const cJSON *it = s->f[F_EWC];
    const char *in = it ? want_string(v, it, "ewc") : NULL;
    int star;
    char six[7];
    const codes_ewc_t *e = NULL;
    if (in && codes_ewc_normalise(in, six, &star) != 0)
        verr(v, "ewc", "ewc '%.30s' is not six digits, e.g. 150102, 15 01 02 or 15 01 10*", in);
    else if (in && !(e = codes_ewc_find(six)))
        verr(v, "ewc", "ewc %s is not an entry of the List of Waste", six);
    else if (e && star && !e->hazardous)
        verr(v, "ewc", "ewc %s is not a hazardous entry; remove the '*'", six);
    else if (e) {
        memcpy(s->ewc, six, 7);
        s->hazardous = e->hazardous;
    }
    int named = s->f[F_ITEM] || s->f[F_PRODUCT];
    if (!it && s->type_ok && (s->type == EVT_WASTE_GENERATED || ((EWC_UNLESS_NAMED & T(s->type)) && !named)))
        verr(v, "ewc", "ewc is required on %s%s", type_names[s->type],
             s->type == EVT_WASTE_GENERATED ? "" : " unless the event names an item or product");
    check_hp(v, s);
}

/* Which operation codes a type may carry (VOCABULARY.md, "Which type carries which code"). */
static int op_allowed(event_type_t t, const codes_op_t *op)
{
    long n = strtol(op->code + 1, NULL, 10);
    int r = op->kind == 'R';
    switch (t) {
    case EVT_RECYCLED: return r && n >= 2 && n <= 11;
    case EVT_ENERGY_RECOVERED: return r && n == 1;
    case EVT_DISPOSED: return !r && n <= 12;
    case EVT_RECEIVED: return r ? n >= 12 : n >= 13;
    case EVT_SORTED:
    case EVT_TRANSFORMED: return r ? n == 12 : n == 13 || n == 14;
    default: return 0;
    }
}

static const codes_op_t *want_op(val_t *v, const cJSON *it, const char *path)
{
    const char *code = want_string(v, it, path);
    const codes_op_t *op = code ? codes_op_find(code) : NULL;
    if (code && !op) verr(v, path, "unknown %s '%.20s'; use R1 to R13 or D1 to D15", path, code);
    return op;
}

static void check_operations(val_t *v, scan_t *s)
{
    const codes_op_t *op = s->f[F_OPERATION] ? want_op(v, s->f[F_OPERATION], "operation") : NULL;
    if (op && s->type_ok && !op_allowed(s->type, op))
        verr(v, "operation", "%s cannot take %s", type_names[s->type], op->code);
    int needs = s->type_ok && (s->type == EVT_RECYCLED || s->type == EVT_ENERGY_RECOVERED ||
                               s->type == EVT_DISPOSED);
    if (needs && !s->f[F_OPERATION])
        verr(v, "operation", "operation is required on %s (%s)", type_names[s->type],
             s->type == EVT_RECYCLED ? "R2 to R11" : s->type == EVT_DISPOSED ? "D1 to D12" : "R1");
    if (s->f[F_PLANNED_OPERATION]) want_op(v, s->f[F_PLANNED_OPERATION], "planned_operation");
}

static void check_acceptance(val_t *v, scan_t *s)
{
    static const char *const kinds[] = {"accepted", "refused", "partial", NULL};
    const char *a = s->f[F_ACCEPTANCE] ?
        want_enum(v, s->f[F_ACCEPTANCE], "acceptance", kinds, "accepted, refused or partial") : NULL;
    int partial = a && strcmp(a, "partial") == 0;
    const cJSON *rq = s->f[F_REFUSED_QUANTITY];
    if (partial && !rq)
        verr(v, "refused_quantity", "acceptance partial needs refused_quantity");
    if (rq && a && !partial)
        verr(v, "refused_quantity", "refused_quantity goes only with acceptance partial");
    else if (rq && !s->f[F_ACCEPTANCE])
        verr(v, "refused_quantity", "refused_quantity goes only with acceptance partial");
    double kg;
    if (rq && check_quantity(v, rq, "refused_quantity", s->material, &kg) == 0 && s->has_quantity &&
        kg > s->kg)
        verr(v, "refused_quantity", "refused_quantity (%g kg) exceeds the quantity (%g kg)", kg, s->kg);
}

static void check_value(val_t *v, const cJSON *val)
{
    static const char *const keys[] = {"amount", "currency", NULL};
    if (!val || want_kind(v, val, "value", cJSON_Object, "an object {amount, currency}") != 0) return;
    only_keys(v, val, "value", keys);
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive(val, "amount");
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(val, "currency");
    if (!amount) verr(v, "value.amount", "value.amount is required");
    else if (want_kind(v, amount, "value.amount", cJSON_Number, "a number") == 0 &&
             !(isfinite(amount->valuedouble) && amount->valuedouble >= 0))
        verr(v, "value.amount", "value.amount must be a finite number of at least 0");
    const char *c = !cur ? (verr(v, "value.currency", "value.currency is required"), NULL)
                         : want_string(v, cur, "value.currency");
    if (c && !currency_known(c))
        verr(v, "value.currency", "unknown currency '%.20s'; use an ISO 4217 code such as EUR", c);
}

static void check_packaging(val_t *v, const cJSON *pk)
{
    static const char *const keys[] = {"count", "type", "physical_form", NULL};
    static const char *const forms[] = {"solid", "liquid", "sludge", "powder", "gas", "mixed", NULL};
    if (!pk || want_kind(v, pk, "packaging", cJSON_Object, "an object {count, type, physical_form}") != 0)
        return;
    only_keys(v, pk, "packaging", keys);
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(pk, "count");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pk, "type");
    const cJSON *form = cJSON_GetObjectItemCaseSensitive(pk, "physical_form");
    if (count && want_kind(v, count, "packaging.count", cJSON_Number, "a number") == 0) {
        double c = count->valuedouble;
        if (!(c >= 1 && c <= 1e9 && c == floor(c)))
            verr(v, "packaging.count", "packaging.count must be a whole number of at least 1");
    }
    if (type) want_text(v, type, "packaging.type");
    if (form)
        want_enum(v, form, "packaging.physical_form", forms, "solid, liquid, sludge, powder, gas or mixed");
}

static int leg_time(val_t *v, const cJSON *leg, const char *key, int i, int64_t *us)
{
    char p[96];
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(leg, key);
    const char *s = it ? want_string(v, it, pathf(p, "transport[%d].%s", i, key)) : NULL;
    if (!s) return -1;
    if (event_parse_time(s, us) == 0) return 0;
    verr(v, p, "%s '%.60s' is not an RFC 3339 time with an offset", p, s);
    return -1;
}

static void check_transport(val_t *v, const cJSON *tr)
{
    static const char *const keys[] = {"carrier", "mode", "vehicle", "permit", "departed", "arrived", NULL};
    static const char *const modes[] = {"road", "rail", "sea", "inland_waterway", "air", "pipeline", NULL};
    static const char *const texts[] = {"carrier", "vehicle", "permit"};
    if (!tr || want_kind(v, tr, "transport", cJSON_Array, "an array of legs") != 0) return;
    int i = 0;
    char p[96], leg_path[96];
    for (const cJSON *leg = tr->child; leg; leg = leg->next, i++) {
        if (want_kind(v, leg, pathf(leg_path, "transport[%d]", i), cJSON_Object, "an object") != 0) continue;
        only_keys(v, leg, leg_path, keys);
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(leg, "mode");
        if (mode) want_enum(v, mode, pathf(p, "transport[%d].mode", i), modes,
                            "road, rail, sea, inland_waterway, air or pipeline");
        for (int k = 0; k < 3; k++) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(leg, texts[k]);
            if (t) want_text(v, t, pathf(p, "transport[%d].%s", i, texts[k]));
        }
        int64_t dep, arr;
        int has_dep = leg_time(v, leg, "departed", i, &dep) == 0;
        if (leg_time(v, leg, "arrived", i, &arr) == 0 && has_dep && arr < dep)
            verr(v, pathf(p, "transport[%d].arrived", i), "arrived is before departed");
    }
}

static int json_depth(const cJSON *x)
{
    int deepest = 0;
    if (!(x->type & (cJSON_Object | cJSON_Array))) return 0;
    for (const cJSON *c = x->child; c; c = c->next) {
        int d = json_depth(c);
        if (d > deepest) deepest = d;
    }
    return deepest + 1;
}

static void check_ext(val_t *v, const cJSON *ext)
{
    if (!ext || want_kind(v, ext, "ext", cJSON_Object, "an object") != 0) return;
    if (json_depth(ext) > EVENT_MAX_DEPTH) {
        verr(v, "ext", "ext is nested deeper than %d levels", EVENT_MAX_DEPTH);
        return;
    }
    buf_t b = BUF_INIT;
    if (jcs_serialize(ext, &b) != 0) verr(v, "ext", "ext holds a number that is not finite or invalid UTF-8");
    else if (b.len > EVENT_MAX_EXT_BYTES)
        verr(v, "ext", "ext is %zu bytes serialised; the limit is %d", b.len, EVENT_MAX_EXT_BYTES);
    buf_free(&b);
}

static void check_lot_entry(val_t *v, const cJSON *e, const char *base, int output)
{
    static const char *const in_keys[] = {"lot", "material", "quantity", NULL};
    static const char *const out_keys[] = {"lot", "material", "quantity", "fate", NULL};
    static const char *const fates[] = {"product", "secondary_material", "by_product", "residue", NULL};
    char p[96];
    if (want_kind(v, e, base, cJSON_Object, "an object {lot, material, quantity}") != 0) return;
    only_keys(v, e, base, output ? out_keys : in_keys);
    const cJSON *lot = cJSON_GetObjectItemCaseSensitive(e, "lot");
    const cJSON *mat = cJSON_GetObjectItemCaseSensitive(e, "material");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(e, "quantity");
    const cJSON *fate = cJSON_GetObjectItemCaseSensitive(e, "fate");
    pathf(p, "%s.lot", base);
    if (!lot) verr(v, p, "%s is required", p);
    else want_ident(v, lot, p);
    pathf(p, "%s.material", base);
    const char *m = !mat ? (verr(v, p, "%s is required", p), NULL) : want_string(v, mat, p);
    double density, kg;
    if (m && !v->ctx->material(v->ctx->md, m, &density)) {
        verr(v, p, "unknown material '%.64s'; add it to the catalogue first", m);
        m = NULL;
    }
    pathf(p, "%s.quantity", base);
    if (!q) verr(v, p, "%s is required", p);
    else check_quantity(v, q, p, m, &kg);
    if (output && fate)
        want_enum(v, fate, pathf(p, "%s.fate", base), fates, "product, secondary_material, by_product or residue");
}

static void check_transformed(val_t *v, scan_t *s)
{
    static const field_t sides[] = {F_INPUTS, F_OUTPUTS};
    for (int k = 0; k < 2; k++) {
        const cJSON *arr = s->f[sides[k]];
        const char *name = k ? "outputs" : "inputs";
        if (!arr && s->type_ok && s->type == EVT_TRANSFORMED) verr(v, name, "%s is required on transformed", name);
        if (!arr || want_kind(v, arr, name, cJSON_Array, "an array of {lot, material, quantity}") != 0) continue;
        if (!arr->child) verr(v, name, "%s must not be empty", name);
        int i = 0;
        char p[96];
        for (const cJSON *e = arr->child; e; e = e->next, i++)
            check_lot_entry(v, e, pathf(p, "%s[%d]", name, i), k);
    }
    double kg;
    if (s->f[F_LOSS]) check_quantity(v, s->f[F_LOSS], "loss", NULL, &kg);
}

static int parse_event(val_t *v, const cJSON *obj, int nested, event_t *ev);

static void check_corrected(val_t *v, scan_t *s)
{
    const char *corrects = s->f[F_CORRECTS] ? want_ident(v, s->f[F_CORRECTS], "corrects") : NULL;
    const cJSON *r = s->f[F_REPLACEMENT];
    if (s->type_ok && s->type == EVT_CORRECTED) {
        if (!s->f[F_CORRECTS]) verr(v, "corrects", "corrects (the id of the wrong event) is required");
        if (!r) verr(v, "replacement", "replacement (the corrected event) is required");
    }
    if (!r || want_kind(v, r, "replacement", cJSON_Object, "an event object") != 0) return;
    val_t sub = *v;
    sub.prefix = "replacement.";
    sub.invalid = sub.forbidden = 0;
    int rc = parse_event(&sub, r, 1, &s->repl);
    v->invalid += sub.invalid;
    v->forbidden |= sub.forbidden;
    if (rc != 0) return;
    s->has_repl = 1;
    if (corrects && strcmp(corrects, s->repl.id) == 0)
        verr(v, "replacement.id", "the replacement needs its own id, not the id it corrects");
}

static void validate(val_t *v, const cJSON *obj, int nested, scan_t *s)
{
    collect_fields(v, obj, s);
    check_type_time(v, s);
    if (s->f[F_ID]) want_ident(v, s->f[F_ID], "id");
    else if (nested) verr(v, "id", "a replacement is a full event with its own id");
    check_applicability(v, s);
    check_identifiers(v, s);
    check_sites(v, s);
    check_material(v, s);
    check_quantities(v, s);
    check_ewc(v, s);
    check_operations(v, s);
    check_acceptance(v, s);
    check_value(v, s->f[F_VALUE]);
    check_packaging(v, s->f[F_PACKAGING]);
    check_transport(v, s->f[F_TRANSPORT]);
    check_ext(v, s->f[F_EXT]);
    check_transformed(v, s);
    if (nested && s->type_ok && s->type == EVT_CORRECTED)
        verr(v, "type", "a replacement cannot itself be a corrected event");
    else check_corrected(v, s);
}

/* Points ev's strings at the member just added to json. */
static void take_pointer(event_t *ev, field_t f, const cJSON *it)
{
    const char *str = cJSON_IsString(it) ? it->valuestring : NULL;
    switch (f) {
    case F_SITE: ev->site = str; break;
    case F_FROM_SITE: ev->from_site = str; break;
    case F_TO_SITE: ev->to_site = str; break;
    case F_MATERIAL: ev->material = str; break;
    case F_OPERATION: ev->operation = str; break;
    case F_ITEM: ev->item = str; break;
    case F_LOT: ev->lot = str; break;
    case F_PRODUCT: ev->product = str; break;
    case F_CORRECTS: ev->corrects = str; break;
    default: break;
    }
}

/* The event as accepted: server fields dropped, time in UTC, ewc six digits, the replacement
 * normalised the same way. */
static void build_json(const cJSON *obj, scan_t *s, event_t *ev)
{
    cJSON *j = cJSON_CreateObject();
    for (const cJSON *c = obj->child; c; c = c->next) {
        int f = field_lookup(c->string);
        cJSON *item;
        if (f == F_SERVER) continue;
        if (f == F_TIME) item = cJSON_CreateString(s->time_norm);
        else if (f == F_EWC) item = cJSON_CreateString(s->ewc);
        else if (f == F_REPLACEMENT) { item = s->repl.json; s->repl.json = NULL; }
        else item = cJSON_Duplicate(c, 1);
        cJSON_AddItemToObject(j, c->string, item);
        take_pointer(ev, (field_t)f, item);
    }
    ev->json = j;
}

static void fill_event(const cJSON *obj, scan_t *s, event_t *ev)
{
    ev->type = s->type;
    ev->time_us = s->time_secs * 1000000 + s->time_us;
    memcpy(ev->ewc, s->ewc, sizeof ev->ewc);
    ev->hazardous = s->hazardous;
    ev->has_quantity = s->has_quantity;
    ev->quantity_kg = s->has_quantity ? s->kg : 0;
    build_json(obj, s, ev);
    /* time_raw and a product's material live in one allocation the event owns. */
    const char *raw = s->f[F_TIME]->valuestring;
    size_t rn = strlen(raw) + 1, mn = s->bom_material ? strlen(s->bom_material) + 1 : 0;
    ev->aux = xmalloc(rn + mn);
    memcpy(ev->aux, raw, rn);
    ev->time_raw = ev->aux;
    if (mn) {
        memcpy(ev->aux + rn, s->bom_material, mn);
        ev->material = ev->aux + rn;
    }
}

static void hex_sha256(const buf_t *b, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    EVP_Digest(b->data, b->len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* Canonical bytes, deriving the id from the bytes without it when the event has none. */
static int canonicalise(val_t *v, const scan_t *s, event_t *ev)
{
    if (jcs_serialize(ev->json, &ev->canon) != 0) {
        verr(v, "", "the event holds invalid UTF-8 or a number that is not finite");
        return -1;
    }
    if (s->f[F_ID]) {
        ev->id = xstrdup(s->f[F_ID]->valuestring);
        return 0;
    }
    char hex[65];
    hex_sha256(&ev->canon, hex);
    ev->id = xstrdup(hex);
    ev->id_derived = 1;
    cJSON_AddItemToObject(ev->json, "id", cJSON_CreateString(hex));
    buf_reset(&ev->canon);
    return jcs_serialize(ev->json, &ev->canon);
}

static int parse_event(val_t *v, const cJSON *obj, int nested, event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    if (!cJSON_IsObject(obj)) {
        verr(v, "", "an event must be a JSON object");
        return -1;
    }
    scan_t s;
    memset(&s, 0, sizeof s);
    int before = v->invalid;
    validate(v, obj, nested, &s);
    int rc = v->invalid != before ? -1 : v->forbidden ? EVENT_FORBIDDEN : 0;
    if (rc == 0) {
        fill_event(obj, &s, ev);
        if (nested) ev->id = xstrdup(s.f[F_ID]->valuestring);
        else if (canonicalise(v, &s, ev) != 0) rc = -1;
    }
    event_free(&s.repl);
    if (rc != 0) event_free(ev);
    return rc;
}

int event_parse(const cJSON *obj, int index, const event_ctx_t *ctx, event_t *ev, errlist_t *errs)
{
    val_t v = {ctx, errs, index, "", 0, 0};
    return parse_event(&v, obj, 0, ev);
}

void event_free(event_t *ev)
{
    free(ev->id);
    cJSON_Delete(ev->json);
    buf_free(&ev->canon);
    free(ev->aux);
    memset(ev, 0, sizeof *ev);
}

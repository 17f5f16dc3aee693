/* jcs — RFC 8785 canonical JSON: sorted members, JSON.stringify escapes, ECMAScript numbers. */
#include "jcs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Members of small objects are sorted on the stack; larger ones on the heap. */
#define JCS_STACK_MEMBERS 32

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) { p++; continue; }
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || (size_t)(end - p) < len) return 0;
        for (size_t i = 1; i < len; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;              /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0;             /* surrogate */
        if (c == 0xF0 && p[1] < 0x90) return 0;              /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0;             /* > U+10FFFF */
        p += len;
    }
    return 1;
}

/* UTF-8 byte order equals code point order; UTF-16 order differs only where a character of
 * U+E000..U+FFFF (lead byte EE/EF) meets a supplementary one (lead F0..F4): the latter's high
 * surrogate (D800..DBFF) sorts first. Bytes that first differ are both lead bytes or both
 * continuation bytes, because the common prefix is valid UTF-8. */
static int utf16_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *x == *y) { x++; y++; }
    unsigned cx = *x, cy = *y;
    if (cx >= 0xEE && cx <= 0xEF && cy >= 0xF0) return 1;
    if (cy >= 0xEE && cy <= 0xEF && cx >= 0xF0) return -1;
    return (int)cx - (int)cy;
}

static int member_cmp(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return utf16_cmp(x->string, y->string);
}

/* Lays out the shortest round-trip digits (digits, n = decimal exponent so that the value is
 * 0.digits × 10^n) following ECMAScript Number::toString. */
static int number_layout(int neg, const char *digits, int k, int n, char *out, size_t outlen)
{
    char tmp[64];
    size_t o = 0;
    if (neg) tmp[o++] = '-';
    if (k <= n && n <= 21) {
        memcpy(tmp + o, digits, (size_t)k); o += (size_t)k;
        for (int i = 0; i < n - k; i++) tmp[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(tmp + o, digits, (size_t)n); o += (size_t)n;
        tmp[o++] = '.';
        memcpy(tmp + o, digits + n, (size_t)(k - n)); o += (size_t)(k - n);
    } else if (-6 < n && n <= 0) {
        tmp[o++] = '0'; tmp[o++] = '.';
        for (int i = 0; i < -n; i++) tmp[o++] = '0';
        memcpy(tmp + o, digits, (size_t)k); o += (size_t)k;
    } else {
        tmp[o++] = digits[0];
        if (k > 1) {
            tmp[o++] = '.';
            memcpy(tmp + o, digits + 1, (size_t)(k - 1)); o += (size_t)(k - 1);
        }
        o += (size_t)snprintf(tmp + o, sizeof tmp - o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    if (o + 1 > outlen) return -1;
    memcpy(out, tmp, o);
    out[o] = '\0';
    return 0;
}

int jcs_number(double d, char *out, size_t outlen)
{
    if (!isfinite(d)) return -1;
    if (d == 0) return number_layout(0, "0", 1, 1, out, outlen);
    char e[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, d);
        if (strtod(e, NULL) == d) break;
    }
    /* e is "[-]d[.ddd]e[+-]xx": collect the digits without trailing zeros. */
    char digits[24];
    int k = 0, neg = e[0] == '-';
    const char *p = e + neg;
    for (; *p != 'e'; p++)
        if (*p != '.') digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0') k--;
    digits[k] = '\0';
    int exp10 = (int)strtol(p + 1, NULL, 10);
    return number_layout(neg, digits, k, exp10 + 1, out, outlen);
}

static int put_string(const char *s, buf_t *out)
{
    size_t n = strlen(s);
    if (!utf8_valid(s, n)) return -1;
    buf_json_str(out, s, n);
    return 0;
}

static int put_object(const cJSON *v, buf_t *out)
{
    const cJSON *stack[JCS_STACK_MEMBERS], **m = stack;
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next) n++;
    if (n > JCS_STACK_MEMBERS) m = xmalloc(n * sizeof *m);
    n = 0;
    for (const cJSON *c = v->child; c; c = c->next) m[n++] = c;
    qsort(m, n, sizeof *m, member_cmp);
    int rc = 0;
    buf_putc(out, '{');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i) buf_putc(out, ',');
        rc = put_string(m[i]->string ? m[i]->string : "", out);
        buf_putc(out, ':');
        if (rc == 0) rc = jcs_serialize(m[i], out);
    }
    buf_putc(out, '}');
    if (m != stack) free(m);
    return rc;
}

int jcs_serialize(const cJSON *v, buf_t *out)
{
    char num[40];
    switch (v->type & 0xFF) {
    case cJSON_NULL: buf_append(out, "null", 4); return 0;
    case cJSON_True: buf_append(out, "true", 4); return 0;
    case cJSON_False: buf_append(out, "false", 5); return 0;
    case cJSON_Number:
        if (jcs_number(v->valuedouble, num, sizeof num) != 0) return -1;
        buf_puts(out, num);
        return 0;
    case cJSON_String: return put_string(v->valuestring ? v->valuestring : "", out);
    case cJSON_Object: return put_object(v, out);
    case cJSON_Array: {
        buf_putc(out, '[');
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child) buf_putc(out, ',');
            if (jcs_serialize(c, out) != 0) return -1;
        }
        buf_putc(out, ']');
        return 0;
    }
    default: return -1;
    }
}

/* codes — lookups in the compiled code lists (the database holds the same lists). */
#include "codes.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const codes_op_t ops[] = {
    {"R1", 'R', CODES_ENERGY_RECOVERY}, {"R2", 'R', CODES_RECYCLING},
    {"R3", 'R', CODES_RECYCLING},       {"R4", 'R', CODES_RECYCLING},
    {"R5", 'R', CODES_RECYCLING},       {"R6", 'R', CODES_RECYCLING},
    {"R7", 'R', CODES_RECYCLING},       {"R8", 'R', CODES_RECYCLING},
    {"R9", 'R', CODES_RECYCLING},       {"R10", 'R', CODES_RECYCLING},
    {"R11", 'R', CODES_RECYCLING},      {"R12", 'R', CODES_INTERIM},
    {"R13", 'R', CODES_INTERIM},        {"D1", 'D', CODES_LANDFILL},
    {"D2", 'D', CODES_OTHER_DISPOSAL},  {"D3", 'D', CODES_OTHER_DISPOSAL},
    {"D4", 'D', CODES_OTHER_DISPOSAL},  {"D5", 'D', CODES_LANDFILL},
    {"D6", 'D', CODES_OTHER_DISPOSAL},  {"D7", 'D', CODES_OTHER_DISPOSAL},
    {"D8", 'D', CODES_PRETREATMENT},    {"D9", 'D', CODES_PRETREATMENT},
    {"D10", 'D', CODES_INCINERATION},   {"D11", 'D', CODES_INCINERATION},
    {"D12", 'D', CODES_LANDFILL},       {"D13", 'D', CODES_INTERIM},
    {"D14", 'D', CODES_INTERIM},        {"D15", 'D', CODES_INTERIM},
};

static const codes_unit_t units[] = {
    {"kg", 0, 1.0, "KGM"},   {"t", 0, 1000.0, "TNE"}, {"g", 0, 0.001, "GRM"},
    {"lb", 0, 0.45359237, "LBR"}, {"l", 1, 0.001, "LTR"}, {"m3", 1, 1.0, "MTQ"},
};

int codes_ewc_normalise(const char *in, char out[7], int *star)
{
    size_t n = 0;
    *star = 0;
    for (const char *p = in; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            if (n == 6) return -1;
            out[n++] = *p;
        } else if (*p == ' ') {
            continue;
        } else if (*p == '*' && p[1] == '\0') {
            *star = 1;
        } else {
            return -1;
        }
    }
    out[n] = '\0';
    return n == 6 ? 0 : -1;
}

static int cmp_ewc(const void *key, const void *elem)
{
    return strcmp(key, ((const codes_ewc_t *)elem)->code);
}

const codes_ewc_t *codes_ewc_find(const char *six)
{
    /* The CSV lists entries in code order, so the generated table is sorted. */
    return bsearch(six, codes_ewc_table, codes_ewc_count, sizeof codes_ewc_table[0], cmp_ewc);
}

const codes_op_t *codes_op_find(const char *code)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].code, code) == 0) return &ops[i];
    return NULL;
}

const codes_unit_t *codes_unit_find(const char *code)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(units[i].code, code) == 0) return &units[i];
    return NULL;
}

const codes_unit_t *codes_unit_by_uncefact(const char *uncefact)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(units[i].uncefact, uncefact) == 0) return &units[i];
    return NULL;
}

const char *codes_category_name(codes_category_t c)
{
    static const char *names[] = {"energy_recovery", "recycling", "incineration", "landfill",
                                  "other_disposal", "pretreatment", "interim"};
    return names[c];
}

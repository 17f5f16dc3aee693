/* codes — the fixed code lists compiled in: List of Waste entries, R/D operations, units. */
#ifndef CIRCA_CODES_H
#define CIRCA_CODES_H
#include <stddef.h>

typedef struct {
    const char *code;   /* six digits */
    int hazardous;
} codes_ewc_t;

extern const codes_ewc_t codes_ewc_table[];  /* generated from schema/data/ewc.csv */
extern const size_t codes_ewc_count;

typedef enum {
    CODES_ENERGY_RECOVERY, CODES_RECYCLING, CODES_INCINERATION, CODES_LANDFILL,
    CODES_OTHER_DISPOSAL, CODES_PRETREATMENT, CODES_INTERIM
} codes_category_t;

typedef struct {
    const char *code;   /* "R1".."R13", "D1".."D15" */
    char kind;          /* 'R' or 'D' */
    codes_category_t category;
} codes_op_t;

typedef struct {
    const char *code;       /* kg, t, g, lb, l, m3 */
    int is_volume;
    double factor;          /* to kg, or to m3 for volumes */
    const char *uncefact;   /* KGM, TNE, GRM, LBR, LTR, MTQ */
} codes_unit_t;

/* Normalises "15 01 02*", "150102" ... into six digits in out[7]. Returns 0, or -1 when the
 * text is not of that form. *star is set when a trailing '*' was written. */
int codes_ewc_normalise(const char *in, char out[7], int *star);
/* The entry for six digits, or NULL when the List of Waste has no such entry. */
const codes_ewc_t *codes_ewc_find(const char *six);
const codes_op_t *codes_op_find(const char *code);
const codes_unit_t *codes_unit_find(const char *code);
const codes_unit_t *codes_unit_by_uncefact(const char *uncefact);
const char *codes_category_name(codes_category_t c);

#endif

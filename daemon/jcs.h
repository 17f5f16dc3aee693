/* jcs — RFC 8785 JSON Canonicalization Scheme over cJSON values. */
#ifndef CIRCA_JCS_H
#define CIRCA_JCS_H
#include <cjson/cJSON.h>
#include "buf.h"

/* Appends the canonical form of v to out: object members sorted by their names' UTF-16 code
 * units, no white space, strings escaped as ECMAScript's JSON.stringify, numbers in ECMAScript's
 * shortest round-trip form. Returns 0, or -1 for a non-finite number or invalid UTF-8
 * (out then holds a partial result). */
int jcs_serialize(const cJSON *v, buf_t *out);
/* ECMAScript Number::toString of a finite double into out (at least 32 bytes). */
int jcs_number(double d, char *out, size_t outlen);

#endif

/* apikey — API key format "circa_<key id>_<secret>": generation, parsing, hashing. */
#ifndef CIRCA_APIKEY_H
#define CIRCA_APIKEY_H
#include <stdint.h>

/* "circa_" + 12 hex + "_" + 43 base64url = 62 chars; room to spare for a NUL and growth. */
#define APIKEY_MAX 96
#define APIKEY_ID_LEN 12
#define APIKEY_SECRET_LEN 43

/* A new key: key_out receives the whole key (NUL-terminated, shown once and never stored),
 * id_out the key id (12 lowercase hex chars, NUL-terminated), hash_out SHA-256 of the 32
 * secret bytes (what api_key.secret_hash stores). Random bytes come from OpenSSL RAND_bytes;
 * if the generator fails the process aborts, since a predictable key is worse than none.
 * All buffers are the caller's. */
void apikey_generate(char key_out[APIKEY_MAX], char id_out[13], uint8_t hash_out[32]);

/* Splits a presented token into its key id and the SHA-256 of its secret. Returns 0, or -1
 * when token is not exactly of the form (wrong prefix, id not 12 lowercase hex, secret not
 * 43 canonical base64url chars without padding, anything after it). Allocation-free: the
 * daemon calls it on every request. */
int apikey_parse(const char *token, char id_out[13], uint8_t hash_out[32]);

/* 1 when the two hashes are equal, 0 otherwise; constant time (CRYPTO_memcmp). */
int apikey_hash_equal(const uint8_t a[32], const uint8_t b[32]);

#endif

/* apikey — API keys: random id and secret, strict parsing, SHA-256 of the secret. */
#include "apikey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define PREFIX "circa_"
#define PREFIX_LEN 6
#define SECRET_BYTES 32
#define KEY_LEN (PREFIX_LEN + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN)

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void random_bytes(uint8_t *p, int n)
{
    if (RAND_bytes(p, n) != 1) {
        fputs("circa: random generator failed\n", stderr);
        abort();
    }
}

/* 32 bytes -> 43 chars (the last char carries 4 bits; the 2 low bits are zero). */
static void b64url_encode32(const uint8_t in[SECRET_BYTES], char out[APIKEY_SECRET_LEN + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < SECRET_BYTES; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < SECRET_BYTES) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < SECRET_BYTES) v |= in[i + 2];
        size_t chars = i + 2 < SECRET_BYTES ? 4 : SECRET_BYTES - i + 1;
        for (size_t k = 0; k < chars; k++) out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Strict inverse of b64url_encode32: a non-canonical last char would let two spellings
 * name one secret, so it is refused. */
static int b64url_decode32(const char *in, uint8_t out[SECRET_BYTES])
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < APIKEY_SECRET_LEN; i++) {
        int v = b64url_value(in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (o == SECRET_BYTES && acc == 0) ? 0 : -1;
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

void apikey_generate(char key_out[APIKEY_MAX], char id_out[13], uint8_t hash_out[32])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t idb[APIKEY_ID_LEN / 2], secret[SECRET_BYTES];
    char enc[APIKEY_SECRET_LEN + 1];

    random_bytes(idb, sizeof idb);
    random_bytes(secret, sizeof secret);
    for (size_t i = 0; i < sizeof idb; i++) {
        id_out[2 * i] = hex[idb[i] >> 4];
        id_out[2 * i + 1] = hex[idb[i] & 15];
    }
    id_out[APIKEY_ID_LEN] = '\0';
    b64url_encode32(secret, enc);
    snprintf(key_out, APIKEY_MAX, PREFIX "%s_%s", id_out, enc);
    SHA256(secret, sizeof secret, hash_out);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(enc, sizeof enc);
}

int apikey_parse(const char *token, char id_out[13], uint8_t hash_out[32])
{
    uint8_t secret[SECRET_BYTES];

    if (!token || strncmp(token, PREFIX, PREFIX_LEN) != 0) return -1;
    if (strnlen(token, KEY_LEN + 1) != KEY_LEN) return -1;
    const char *id = token + PREFIX_LEN;
    for (size_t i = 0; i < APIKEY_ID_LEN; i++)
        if (!is_lower_hex(id[i])) return -1;
    if (id[APIKEY_ID_LEN] != '_') return -1;
    if (b64url_decode32(id + APIKEY_ID_LEN + 1, secret) != 0) return -1;
    memcpy(id_out, id, APIKEY_ID_LEN);
    id_out[APIKEY_ID_LEN] = '\0';
    SHA256(secret, sizeof secret, hash_out);
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

int apikey_hash_equal(const uint8_t a[32], const uint8_t b[32])
{
    return CRYPTO_memcmp(a, b, 32) == 0;
}

// uses: daemon/apikey
/* test_apikey — key format, parse round trip, refusal of malformed keys, hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/sha.h>

#include "apikey.h"

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void generated_key_has_the_documented_form(void **state)
{
    char key[APIKEY_MAX], id[13];
    uint8_t hash[32];
    apikey_generate(key, id, hash);

    assert_int_equal(strlen(key), 62);
    assert_memory_equal(key, "circa_", 6);
    assert_int_equal(strlen(id), 12);
    assert_memory_equal(key + 6, id, 12);
    for (int i = 0; i < 12; i++) assert_non_null(strchr("0123456789abcdef", id[i]));
    assert_int_equal(key[18], '_');
    for (int i = 19; i < 62; i++) assert_true(is_b64url(key[i]));
}

static void parse_round_trips_id_and_hash(void **state)
{
    char key[APIKEY_MAX], id[13], pid[13];
    uint8_t hash[32], phash[32];
    apikey_generate(key, id, hash);

    assert_int_equal(apikey_parse(key, pid, phash), 0);
    assert_string_equal(pid, id);
    assert_memory_equal(phash, hash, 32);
    assert_true(apikey_hash_equal(phash, hash));
}

/* The hash is SHA-256 of the 32 decoded secret bytes: check against a known secret. */
static void hash_is_sha256_of_the_secret_bytes(void **state)
{
    /* 32 zero bytes encode as 43 'A'. */
    const char *key = "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    uint8_t zeros[32] = {0}, want[32], got[32];
    char id[13];
    SHA256(zeros, sizeof zeros, want);
    assert_int_equal(apikey_parse(key, id, got), 0);
    assert_string_equal(id, "0123456789ab");
    assert_memory_equal(got, want, 32);
}

static void malformed_keys_are_refused(void **state)
{
    static const char *bad[] = {
        "",
        "circa_",
        "Circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* prefix case */
        "circx_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* wrong prefix */
        "0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",        /* no prefix */
        "circa_0123456789a_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* id 11 chars */
        "circa_0123456789abc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* id 13 chars */
        "circa_0123456789AB_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* upper-case hex */
        "circa_0123456789ag_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* non-hex id */
        "circa_0123456789ab-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* wrong separator */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* secret 42 chars */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* trailing data */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", /* padding */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",  /* base64, not url */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA",  /* space inside */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",  /* non-canonical end */
        "circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    };
    char id[13];
    uint8_t hash[32];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (apikey_parse(bad[i], id, hash) != -1) fail_msg("accepted: \"%s\"", bad[i]);
    }
    assert_int_equal(apikey_parse(NULL, id, hash), -1);
    /* The canonical neighbour of the non-canonical ending is accepted. */
    assert_int_equal(apikey_parse("circa_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
                                  id, hash), 0);
}

static void hashes_and_ids_differ_per_key(void **state)
{
    char k1[APIKEY_MAX], k2[APIKEY_MAX], id1[13], id2[13];
    uint8_t h1[32], h2[32];
    apikey_generate(k1, id1, h1);
    apikey_generate(k2, id2, h2);
    assert_string_not_equal(k1, k2);
    assert_string_not_equal(id1, id2);
    assert_false(apikey_hash_equal(h1, h2));

    /* Same id, one secret char changed: the hash changes. */
    char k3[APIKEY_MAX], id3[13];
    uint8_t h3[32];
    memcpy(k3, k1, sizeof k3);
    k3[30] = k3[30] == 'A' ? 'B' : 'A';
    assert_int_equal(apikey_parse(k3, id3, h3), 0);
    assert_string_equal(id3, id1);
    assert_false(apikey_hash_equal(h1, h3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generated_key_has_the_documented_form),
        cmocka_unit_test(parse_round_trips_id_and_hash),
        cmocka_unit_test(hash_is_sha256_of_the_secret_bytes),
        cmocka_unit_test(malformed_keys_are_refused),
        cmocka_unit_test(hashes_and_ids_differ_per_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

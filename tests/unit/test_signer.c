// uses: daemon/signer daemon/strmap daemon/buf
/* test_signer — Ed25519 keys per tenant and signatures over block hashes: sign then verify,
 * another key, a changed hash or signature fail; key files are private and found lazily. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "signer.h"

static const char hash_a[65] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
static const char hash_b[65] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a09";

typedef struct {
    char dir[64];
    unsigned char pub_a[32], pub_b[32];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_signer.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    char err[256];
    if (signer_keygen(f->dir, "tenant-a", f->pub_a, err, sizeof err) != 0) return -1;
    if (signer_keygen(f->dir, "tenant-b", f->pub_b, err, sizeof err) != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char path[256];
    const char *names[] = {"tenant-a", "tenant-b", "late"};
    for (int i = 0; i < 3; i++) {
        if (signer_key_path(f->dir, names[i], path, sizeof path) == 0) unlink(path);
    }
    snprintf(path, sizeof path, "%s/keys", f->dir);
    rmdir(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void sign_then_verify(void **state)
{
    fixture_t *f = *state;
    signer_t *s = signer_open(f->dir);
    unsigned char sig[64];
    assert_int_equal(signer_sign(s, "tenant-a", hash_a, sig), 0);
    assert_int_equal(signer_verify(f->pub_a, hash_a, sig), 0);
    /* Ed25519 is deterministic: the cached key signs the same bytes the same way. */
    unsigned char again[64];
    assert_int_equal(signer_sign(s, "tenant-a", hash_a, again), 0);
    assert_memory_equal(sig, again, 64);
    signer_free(s);
}

static void another_key_fails(void **state)
{
    fixture_t *f = *state;
    signer_t *s = signer_open(f->dir);
    unsigned char sig[64];
    assert_int_equal(signer_sign(s, "tenant-b", hash_a, sig), 0);
    assert_int_equal(signer_verify(f->pub_a, hash_a, sig), 1);
    assert_int_equal(signer_verify(f->pub_b, hash_a, sig), 0);
    signer_free(s);
}

static void tampered_hash_or_signature_fails(void **state)
{
    fixture_t *f = *state;
    signer_t *s = signer_open(f->dir);
    unsigned char sig[64];
    assert_int_equal(signer_sign(s, "tenant-a", hash_a, sig), 0);
    assert_int_equal(signer_verify(f->pub_a, hash_b, sig), 1);
    sig[17] ^= 0x01;
    assert_int_equal(signer_verify(f->pub_a, hash_a, sig), 1);
    signer_free(s);
}

static void malformed_input_is_an_error(void **state)
{
    fixture_t *f = *state;
    signer_t *s = signer_open(f->dir);
    unsigned char sig[64] = {0};
    char short_hash[65] = "abc";   /* a 65-byte buffer holding too few digits */
    assert_int_equal(signer_sign(s, "tenant-a", short_hash, sig), -1);
    char not_hex[65] = "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    assert_int_equal(signer_sign(s, "tenant-a", not_hex, sig), -1);
    assert_int_equal(signer_verify(f->pub_a, short_hash, sig), -1);
    /* A tenant code that could climb out of keys/ never names a file. */
    assert_int_equal(signer_sign(s, "../etc", hash_a, sig), -1);
    char path[256];
    assert_int_equal(signer_key_path(f->dir, "a/b", path, sizeof path), -1);
    assert_int_equal(signer_key_path(f->dir, ".hidden", path, sizeof path), -1);
    signer_free(s);
}

static void key_file_is_private_pem_and_kept(void **state)
{
    fixture_t *f = *state;
    char path[256], line[128] = "";
    assert_int_equal(signer_key_path(f->dir, "tenant-a", path, sizeof path), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(line, sizeof line, "%s/keys", f->dir);
    assert_int_equal(stat(line, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n");
    /* A second keygen keeps the existing key and answers its public half. */
    unsigned char pub[32];
    char err[256];
    assert_int_equal(signer_keygen(f->dir, "tenant-a", pub, err, sizeof err), 1);
    assert_memory_equal(pub, f->pub_a, 32);
}

static void key_created_later_is_found(void **state)
{
    fixture_t *f = *state;
    signer_t *s = signer_open(f->dir);
    unsigned char sig[64], pub[32];
    char err[256];
    assert_int_equal(signer_sign(s, "late", hash_a, sig), 1);
    assert_int_equal(signer_keygen(f->dir, "late", pub, err, sizeof err), 0);
    assert_int_equal(signer_sign(s, "late", hash_a, sig), 0);
    assert_int_equal(signer_verify(pub, hash_a, sig), 0);
    signer_free(s);
}

static void hex_round_trip(void **state)
{
    unsigned char in[3] = {0x00, 0xab, 0xff}, out[3];
    char hex[7];
    signer_hex(in, 3, hex);
    assert_string_equal(hex, "00abff");
    assert_int_equal(signer_unhex("00ABff", out, 3), 0);
    assert_memory_equal(in, out, 3);
    assert_int_equal(signer_unhex("00abf", out, 3), -1);
    assert_int_equal(signer_unhex("00abffee", out, 3), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sign_then_verify),
        cmocka_unit_test(another_key_fails),
        cmocka_unit_test(tampered_hash_or_signature_fails),
        cmocka_unit_test(malformed_input_is_an_error),
        cmocka_unit_test(key_file_is_private_pem_and_kept),
        cmocka_unit_test(key_created_later_is_found),
        cmocka_unit_test(hex_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

// uses: daemon/ledger daemon/signer daemon/buf daemon/strmap
/* test_ledger — RFC 6962 leaf and tree hashes against published vectors, block hashes over JCS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ledger.h"

/* Certificate Transparency's reference leaves and the roots MTH(D[0..n)) for n = 1..8
 * (google/certificate-transparency merkle tests, Trillian). */
static const struct {
    const char *data;
    size_t len;
} ct_leaves[8] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};
static const char *ct_roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void root_hex(const uint8_t (*leaves)[32], size_t n, char out[65])
{
    uint8_t h[32];
    ledger_merkle_root(leaves, n, h);
    ledger_hex(h, out);
}

static void empty_tree_is_sha256_of_nothing(void **state)
{
    char hex[65];
    root_hex(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void leaf_hash_prefixes_a_zero_byte(void **state)
{
    uint8_t h[32];
    char hex[65];
    ledger_leaf_hash("", 0, h);
    ledger_hex(h, hex);
    assert_string_equal(hex, ct_roots[0]);   /* a one-leaf tree is its leaf hash */
    ledger_leaf_hash(NULL, 0, h);
    ledger_hex(h, hex);
    assert_string_equal(hex, ct_roots[0]);
}

static void ct_reference_roots_for_one_to_eight_leaves(void **state)
{
    uint8_t leaves[8][32];
    for (size_t i = 0; i < 8; i++) ledger_leaf_hash(ct_leaves[i].data, ct_leaves[i].len, leaves[i]);
    for (size_t n = 1; n <= 8; n++) {
        char hex[65];
        root_hex((const uint8_t (*)[32])leaves, n, hex);
        assert_string_equal(hex, ct_roots[n - 1]);
    }
}

/* Leaves are the 4-byte big-endian numbers 0..n-1; the expected roots were computed with an
 * independent recursive MTH in Python (hashlib). 1025 splits 1024 + 1; 100000 is a large,
 * uneven tree that a quadratic implementation would not finish quickly. */
static void large_uneven_trees_match_an_independent_implementation(void **state)
{
    static const struct {
        size_t n;
        const char *root;
    } cases[] = {
        {1025, "fe46b331dab3aeef4776e679b11bc7e5120a9f7aa40c111bdc88f8c3a25b7210"},
        {100000, "040c526f784501f62dde9664f1e1ff2e17a1fb87d52e3c7f106f1688276522a7"},
    };
    uint8_t (*leaves)[32] = malloc(100000 * sizeof *leaves);
    assert_non_null(leaves);
    for (size_t i = 0; i < 100000; i++) {
        uint8_t be[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        ledger_leaf_hash(be, 4, leaves[i]);
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char hex[65];
        root_hex((const uint8_t (*)[32])leaves, cases[c].n, hex);
        assert_string_equal(hex, cases[c].root);
    }
    free(leaves);
}

/* Expected: sha256 of
 * {"count":3,"prev":"000…0","root":"abab…ab","seq":3,"tenant":"t\"1\\\né","time":"…"}
 * serialised by Python's json.dumps(sort_keys, compact, ensure_ascii=False) — JCS for these
 * values — so key order, escaping and raw UTF-8 are all pinned. */
static void block_hash_is_sha256_of_jcs(void **state)
{
    char root[65];
    for (int i = 0; i < 64; i += 2) memcpy(root + i, "ab", 2);
    root[64] = '\0';
    uint8_t h[32];
    char hex[65];
    ledger_block_hash("t\"1\\\n\xc3\xa9x", 3, LEDGER_ZERO_HASH, root, 3,
                      "2026-03-04T09:15:00.123Z", h);
    ledger_hex(h, hex);
    assert_string_equal(hex, "28a8f469896ccc4615ac885aff18256bbc7c59f5212675bde38557cded4d919f");
}

static void block_hash_depends_on_every_field(void **state)
{
    const char *t = "2026-03-04T09:15:00.123Z";
    char base[65], other[65];
    uint8_t h[32];
    ledger_block_hash("acme", 10, LEDGER_ZERO_HASH, ct_roots[7], 4, t, h);
    ledger_hex(h, base);
    ledger_block_hash("acme2", 10, LEDGER_ZERO_HASH, ct_roots[7], 4, t, h);
    ledger_hex(h, other);
    assert_string_not_equal(base, other);
    ledger_block_hash("acme", 11, LEDGER_ZERO_HASH, ct_roots[7], 4, t, h);
    ledger_hex(h, other);
    assert_string_not_equal(base, other);
    ledger_block_hash("acme", 10, ct_roots[6], ct_roots[7], 4, t, h);
    ledger_hex(h, other);
    assert_string_not_equal(base, other);
    ledger_block_hash("acme", 10, LEDGER_ZERO_HASH, ct_roots[6], 4, t, h);
    ledger_hex(h, other);
    assert_string_not_equal(base, other);
    ledger_block_hash("acme", 10, LEDGER_ZERO_HASH, ct_roots[7], 5, t, h);
    ledger_hex(h, other);
    assert_string_not_equal(base, other);
    ledger_block_hash("acme", 10, LEDGER_ZERO_HASH, ct_roots[7], 4, "2026-03-04T09:15:00.124Z", h);
    ledger_hex(h, other);
    assert_string_not_equal(base, other);
}

static void hex_is_lowercase_and_terminated(void **state)
{
    uint8_t h[32];
    for (int i = 0; i < 32; i++) h[i] = (uint8_t)(0xf0 + (i & 15));
    char hex[65];
    memset(hex, 'X', sizeof hex);
    ledger_hex(h, hex);
    assert_int_equal(strlen(hex), 64);
    assert_memory_equal(hex, "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_tree_is_sha256_of_nothing),
        cmocka_unit_test(leaf_hash_prefixes_a_zero_byte),
        cmocka_unit_test(ct_reference_roots_for_one_to_eight_leaves),
        cmocka_unit_test(large_uneven_trees_match_an_independent_implementation),
        cmocka_unit_test(block_hash_is_sha256_of_jcs),
        cmocka_unit_test(block_hash_depends_on_every_field),
        cmocka_unit_test(hex_is_lowercase_and_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

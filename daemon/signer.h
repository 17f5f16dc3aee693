/* signer — Ed25519 signatures over ledger block hashes: circad signs each new block with the
 * tenant's private key (a PEM file under <data_dir>/keys, never in the database); verifiers
 * check against the public key registered in tenant.sign_public_key. */
#ifndef CIRCA_SIGNER_H
#define CIRCA_SIGNER_H
#include <stddef.h>

#define SIGNER_PUB_LEN 32
#define SIGNER_SIG_LEN 64

typedef struct signer signer_t;

/* A signer reading keys from <data_dir>/keys/<tenant>.ed25519. Keys are loaded lazily, on a
 * tenant's first signature, and cached; a tenant without a key file is looked for again on
 * its next block, so `circa keys sign-init` takes effect without restarting circad. */
signer_t *signer_open(const char *data_dir);
void signer_free(signer_t *s);

/* Signs the 32 bytes that hash_hex (64 lowercase hex digits) spells. 0 signed, 1 the tenant
 * has no key, -1 on error (an unreadable key file, a malformed hash). */
int signer_sign(signer_t *s, const char *tenant, const char hash_hex[65],
                unsigned char sig[SIGNER_SIG_LEN]);

/* 0 when sig is pub's signature of the hash hash_hex spells, 1 when it is not, -1 when
 * hash_hex is malformed or pub is not an Ed25519 key. */
int signer_verify(const unsigned char pub[SIGNER_PUB_LEN], const char hash_hex[65],
                  const unsigned char sig[SIGNER_SIG_LEN]);

/* <data_dir>/keys/<tenant>.ed25519 into out; -1 when the tenant code could name another path
 * (only letters, digits, '-', '_' and '.' not first are allowed) or out is too small. */
int signer_key_path(const char *data_dir, const char *tenant, char *out, size_t outlen);

/* Creates the tenant's key pair: the private key as PEM in a new file of mode 0600 (the keys
 * directory made with mode 0700), the raw public key into pub. When the file already exists
 * its key is kept and its public key returned (so a sign-init cut short can be re-run).
 * 0 created, 1 existing key read, -1 with err set. */
int signer_keygen(const char *data_dir, const char *tenant, unsigned char pub[SIGNER_PUB_LEN],
                  char *err, size_t errlen);

/* Hex helpers shared by the export and its verification: n bytes ↔ 2n lowercase digits.
 * signer_unhex returns 0, or -1 unless hex is exactly 2n hex digits. */
void signer_hex(const unsigned char *p, size_t n, char *out);
int signer_unhex(const char *hex, unsigned char *out, size_t n);

#endif

/* signer — Ed25519 keys per tenant (PEM files, mode 0600) and signatures over block hashes. */
#include "signer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "strmap.h"

struct signer {
    char *data_dir;
    strmap_t keys;   /* tenant → EVP_PKEY *, only tenants whose key file was read */
};

void signer_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int signer_unhex(const char *hex, unsigned char *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int signer_key_path(const char *data_dir, const char *tenant, char *out, size_t outlen)
{
    size_t n = strlen(tenant);
    /* The tenant code becomes a file name: nothing that could climb out of keys/. */
    if (n == 0 || n > 64 || tenant[0] == '.') return -1;
    for (size_t i = 0; i < n; i++) {
        char c = tenant[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return -1;
    }
    int w = snprintf(out, outlen, "%s/keys/%s.ed25519", data_dir, tenant);
    return w < 0 || (size_t)w >= outlen ? -1 : 0;
}

signer_t *signer_open(const char *data_dir)
{
    signer_t *s = xcalloc(1, sizeof *s);
    s->data_dir = xstrdup(data_dir);
    return s;
}

static void free_key(const char *key, void *val, void *arg)
{
    EVP_PKEY_free(val);
}

void signer_free(signer_t *s)
{
    if (!s) return;
    strmap_each(&s->keys, free_key, NULL);
    strmap_free(&s->keys);
    free(s->data_dir);
    free(s);
}

/* Reads an Ed25519 private key from a PEM file: the key, or NULL with errno ENOENT when there
 * is no file (any other failure leaves another errno, EINVAL for a key of another kind). */
static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k && EVP_PKEY_get_id(k) == EVP_PKEY_ED25519) return k;
    EVP_PKEY_free(k);
    errno = EINVAL;
    return NULL;
}

/* The tenant's cached key, loading it on first use: 0 with *key, 1 no key file, -1 error. */
static int tenant_key(signer_t *s, const char *tenant, EVP_PKEY **key)
{
    *key = strmap_get(&s->keys, tenant);
    if (*key) return 0;
    char path[1200];
    if (signer_key_path(s->data_dir, tenant, path, sizeof path) != 0) return -1;
    errno = 0;
    *key = read_key(path);
    if (!*key) return errno == ENOENT ? 1 : -1;
    strmap_put(&s->keys, tenant, *key);
    return 0;
}

static int sign_bytes(EVP_PKEY *key, const unsigned char msg[32], unsigned char sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = SIGNER_SIG_LEN;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, sig, &len, msg, 32) == 1 && len == SIGNER_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int signer_sign(signer_t *s, const char *tenant, const char hash_hex[65],
                unsigned char sig[SIGNER_SIG_LEN])
{
    unsigned char msg[32];
    if (signer_unhex(hash_hex, msg, sizeof msg) != 0) return -1;
    EVP_PKEY *key;
    int rc = tenant_key(s, tenant, &key);
    if (rc != 0) return rc;
    return sign_bytes(key, msg, sig);
}

int signer_verify(const unsigned char pub[SIGNER_PUB_LEN], const char hash_hex[65],
                  const unsigned char sig[SIGNER_SIG_LEN])
{
    unsigned char msg[32];
    if (signer_unhex(hash_hex, msg, sizeof msg) != 0) return -1;
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SIGNER_PUB_LEN);
    if (!key) return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1)
        rc = EVP_DigestVerify(ctx, sig, SIGNER_SIG_LEN, msg, sizeof msg) == 1 ? 0 : 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return rc;
}

static int raw_public(EVP_PKEY *k, unsigned char pub[SIGNER_PUB_LEN], char *err, size_t errlen)
{
    size_t len = SIGNER_PUB_LEN;
    if (EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == SIGNER_PUB_LEN) return 0;
    snprintf(err, errlen, "cannot read the public half of the key");
    return -1;
}

/* Writes a fresh key to path, created exclusively with mode 0600 so it is never readable by
 * others, not even for a moment. */
static int write_new_key(const char *path, unsigned char pub[SIGNER_PUB_LEN], char *err,
                         size_t errlen)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k) return snprintf(err, errlen, "cannot generate an Ed25519 key"), -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    int rc = -1;
    if (!f) snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    else if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
        snprintf(err, errlen, "cannot write %s", path);
    else rc = raw_public(k, pub, err, errlen);
    if (f && (fflush(f) != 0 || fsync(fd) != 0) && rc == 0)
        rc = -1, snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    if (f) fclose(f);
    else if (fd >= 0) close(fd);
    if (rc != 0 && fd >= 0) unlink(path);
    EVP_PKEY_free(k);
    return rc;
}

int signer_keygen(const char *data_dir, const char *tenant, unsigned char pub[SIGNER_PUB_LEN],
                  char *err, size_t errlen)
{
    char path[1200], dir[1100];
    if (signer_key_path(data_dir, tenant, path, sizeof path) != 0)
        return snprintf(err, errlen, "tenant code '%s' cannot name a key file", tenant), -1;
    snprintf(dir, sizeof dir, "%s/keys", data_dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno)), -1;
    errno = 0;
    EVP_PKEY *k = read_key(path);
    if (k) {
        int rc = raw_public(k, pub, err, errlen);
        EVP_PKEY_free(k);
        return rc == 0 ? 1 : -1;
    }
    if (errno != ENOENT)
        return snprintf(err, errlen, "%s exists but holds no Ed25519 private key", path), -1;
    return write_new_key(path, pub, err, errlen);
}

/* cli_export — `circa export` (a tenant's ledger blocks and events as NDJSON, for auditors),
 * `circa keys sign-init` (a tenant's Ed25519 signing key) and `circa verify --offline`. */
#ifndef CIRCA_CLI_EXPORT_H
#define CIRCA_CLI_EXPORT_H

/* `circa export --tenant T [--from D] [--to D] [-o FILE]`; argv[0] is "export". */
int cli_export_main(int argc, char **argv);

/* `circa keys sign-init --tenant T`; argv[0] is "sign-init". Creates the key pair (private key
 * in $CIRCA_DATA_DIR/keys/T.ed25519, mode 0600), registers the public key in
 * tenant.sign_public_key and prints it as hex. */
int cli_export_sign_init_main(int argc, char **argv);

/* 1 when a `circa verify` command line asks for --offline (then no database is used). */
int cli_export_wants_offline(int argc, char **argv);

/* `circa verify --offline EXPORT [--report FILE] [--sha256 HEX] [--public-key HEX]`; argv[0]
 * is "verify". Exit 0 when everything verifies, 1 at the first problem (printed). */
int cli_export_verify_offline_main(int argc, char **argv);

#endif

/* cli_report — `circa report`: generate a report through circad and download it; and the check
 * behind `circa verify --report FILE` (a downloaded JSON report against the ledger). */
#ifndef CIRCA_CLI_REPORT_H
#define CIRCA_CLI_REPORT_H

/* `circa report --type T --from D --to D [--site S] [--party P] [--generator G]
 * [--recycler R] [--format json|csv|html] [-o FILE]`, or `circa report --verify FILE`.
 * argv[0] is "report". Returns a CLI_EXIT_* code. */
int cli_report_main(int argc, char **argv);

/* `circa verify --report FILE [--consignments LISTING]`: recomputes the SHA-256 of the report's
 * canonical JSON, checks that the block it names is in its tenant's chain and that the stored
 * report with its id has that SHA-256 (through DATABASE_URL); a waste register is recomputed
 * from the tenant's events up to that block, and LISTING (its consignments, downloaded) is
 * checked against that. Exit 0 when all hold, 1 otherwise. */
int cli_report_verify_file(const char *file, const char *listing);

#endif

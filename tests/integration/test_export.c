// uses: tests/harness daemon/buf
/* test_export — `circa export` of events posted through circad, checked by `circa verify
 * --offline` with no database: an intact export verifies; a changed canon byte, a dropped
 * block, a changed prev, a changed or removed signature, and a changed report each fail with
 * the message naming them; an export starting mid-chain verifies and says so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static th_daemon_t daemon_;
static th_tenant_t plain, keyed;
static char pub_hex[128];
static char dir[256];

/* One POST of n events: one committed group, so one ledger block. */
static void post_batch(const th_tenant_t *t, int batch, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "b%d-e%d", batch, i);
        cJSON_AddItemToArray(arr, th_event(id, "S1", 1.5 + batch + i, "t"));
    }
    char *body = th_json_take(arr);
    th_resp_t r;
    long st = th_post("/v1/events", t->admin_key, body, &r);
    if (st != 201) fail_msg("POST /v1/events: %ld %s", st, r.body ? r.body : "");
    th_resp_free(&r);
    free(body);
}

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* dir/name in a static buffer (one at a time). */
static const char *dir_file(const char *name)
{
    static char path[512];
    path_of(path, sizeof path, name);
    return path;
}

static int export_to(const th_tenant_t *t, const char *file)
{
    char out[4096], path[512];
    path_of(path, sizeof path, file);
    return th_cli(out, sizeof out, "export", "--tenant", t->id, "-o", path, NULL);
}

/* `circa verify --offline FILE [extra...]`; its output into out. No DATABASE_URL is needed,
 * but th_cli sets one: the command must not use it. */
static int verify(char *out, size_t len, const char *file, const char *a1, const char *a2)
{
    char path[512];
    path_of(path, sizeof path, file);
    return th_cli(out, len, "verify", "--offline", path, a1, a2, NULL);
}

/* ---- export files as lines ---------------------------------------------------------------- */

typedef struct {
    char **line;
    int n;
} lines_t;

static lines_t read_lines(const char *file)
{
    char path[512];
    path_of(path, sizeof path, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    lines_t l = {NULL, 0};
    char *buf = NULL;
    size_t cap = 0;
    while (getline(&buf, &cap, f) >= 0) {
        l.line = realloc(l.line, (size_t)(l.n + 1) * sizeof *l.line);
        l.line[l.n++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    return l;
}

/* Writes l to file, leaving out lines [skip_from, skip_to). */
static void write_lines(const lines_t *l, const char *file, int skip_from, int skip_to)
{
    char path[512];
    path_of(path, sizeof path, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < l->n; i++)
        if (i < skip_from || i >= skip_to) fputs(l->line[i], f);
    fclose(f);
}

static void free_lines(lines_t *l)
{
    for (int i = 0; i < l->n; i++) free(l->line[i]);
    free(l->line);
}

/* Index of the k-th (0-based) line starting with prefix, -1 when none. */
static int nth(const lines_t *l, const char *prefix, int k)
{
    for (int i = 0; i < l->n; i++)
        if (strncmp(l->line[i], prefix, strlen(prefix)) == 0 && k-- == 0) return i;
    return -1;
}

/* Replaces the first occurrence of from after the member name in line i. */
static void replace_in(lines_t *l, int i, const char *member, const char *from, const char *to)
{
    char *m = strstr(l->line[i], member);
    assert_non_null(m);
    char *p = strstr(m, from);
    assert_non_null(p);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
}

/* Flips one hex digit of the value of member ("\"prev\":\"") in line i. */
static void flip_hex(lines_t *l, int i, const char *member)
{
    char *p = strstr(l->line[i], member);
    assert_non_null(p);
    p += strlen(member) + 5;
    *p = *p == '0' ? '1' : '0';
}

static void assert_contains(const char *out, const char *want)
{
    if (!strstr(out, want)) fail_msg("expected '%s' in:\n%s", want, out);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static int setup(void **state)
{
    th_init("test_export");
    snprintf(dir, sizeof dir, "%s/test-export-%d", getenv("CIRCA_DATA_DIR"), (int)getpid());
    char *mk[] = {"mkdir", "-p", dir, NULL};
    th_run(mk);
    th_daemon_start(&daemon_);
    th_use(&daemon_);
    th_tenant_setup(&plain, "export");
    th_tenant_setup(&keyed, "signed");
    char out[100];
    if (th_cli(out, sizeof out, "keys", "sign-init", "--tenant", keyed.id, NULL) != 0)
        fail_msg("circa keys sign-init: %s", out);
    snprintf(pub_hex, sizeof pub_hex, "%s", out);
    for (int b = 0; b < 3; b++) post_batch(&plain, b, 3);
    for (int b = 0; b < 2; b++) post_batch(&keyed, b, 2);
    return 0;
}

static int teardown(void **state)
{
    th_daemon_stop(&daemon_);
    char *rm[] = {"rm", "-rf", dir, NULL};
    th_run(rm);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void intact_export_verifies(void **state)
{
    assert_int_equal(export_to(&plain, "plain.ndjson"), 0);
    lines_t l = read_lines("plain.ndjson");
    assert_int_equal(l.n, 1 + 3 * (1 + 3));   /* header, 3 blocks of 3 events */
    assert_non_null(strstr(l.line[0], "\"circa_export\":1"));
    assert_null(strstr(l.line[0], "public_key"));
    free_lines(&l);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "plain.ndjson", NULL, NULL), 0);
    assert_contains(out, "3 blocks, 9 events (seq 1-9)");
    assert_contains(out, "OK");
    /* The head it reports is the tenant's head in the database. */
    char head[80];
    const char *p[1] = {plain.id};
    assert_int_equal(th_db_text("SELECT head_hash FROM circa_head($1)", 1, p, head,
                                sizeof head), 0);
    assert_contains(out, head);
}

static void changed_canon_byte_fails(void **state)
{
    lines_t l = read_lines("plain.ndjson");
    int e = nth(&l, "{\"event\"", 4);
    replace_in(&l, e, "\"canon\"", "\\\"id\\\":\\\"b1-e1", "\\\"id\\\":\\\"b1-e7");
    write_lines(&l, "canon.ndjson", -1, -1);
    free_lines(&l);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "canon.ndjson", NULL, NULL), 1);
    assert_contains(out, "FAILED: block 6: Merkle root differs");
}

static void dropped_block_fails(void **state)
{
    lines_t l = read_lines("plain.ndjson");
    int b = nth(&l, "{\"block\"", 1);
    write_lines(&l, "dropped.ndjson", b, b + 4);
    free_lines(&l);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "dropped.ndjson", NULL, NULL), 1);
    assert_contains(out, "FAILED: block 9: covers events 7-9 but the previous block in the "
                         "export ends at 3");
}

static void changed_prev_fails(void **state)
{
    lines_t l = read_lines("plain.ndjson");
    flip_hex(&l, nth(&l, "{\"block\"", 2), "\"prev\"");
    write_lines(&l, "prev.ndjson", -1, -1);
    free_lines(&l);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "prev.ndjson", NULL, NULL), 1);
    assert_contains(out, "FAILED: block 9: prev link broken");
}

static void export_from_mid_chain_verifies_and_says_so(void **state)
{
    lines_t l = read_lines("plain.ndjson");
    int b = nth(&l, "{\"block\"", 0);
    write_lines(&l, "mid.ndjson", b, b + 4);
    free_lines(&l);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "mid.ndjson", NULL, NULL), 0);
    assert_contains(out, "2 blocks, 6 events (seq 4-9)");
    assert_contains(out, "starts mid-chain: block 4's prev");
}

static void signed_export_verifies(void **state)
{
    assert_int_equal(strlen(pub_hex), 64);
    /* circad signed every block: the signature is in the database, the key is not. */
    const char *p[1] = {keyed.id};
    assert_int_equal(th_db_long("SELECT count(*) FROM ledger_block WHERE tenant_id = $1 AND "
                                "octet_length(signature) = 64", 1, p), 2);
    assert_int_equal(export_to(&keyed, "keyed.ndjson"), 0);
    lines_t l = read_lines("keyed.ndjson");
    assert_non_null(strstr(l.line[0], pub_hex));
    free_lines(&l);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "keyed.ndjson", NULL, NULL), 0);
    assert_contains(out, "2 blocks, 4 events (seq 1-4), 2 signed\n");
    /* An auditor's own copy of the key must be the export's. */
    assert_int_equal(verify(out, sizeof out, "keyed.ndjson", "--public-key", pub_hex), 0);
    char other[65];
    snprintf(other, sizeof other, "%s", pub_hex);
    other[0] = other[0] == 'a' ? 'b' : 'a';
    assert_int_equal(verify(out, sizeof out, "keyed.ndjson", "--public-key", other), 1);
    assert_contains(out, "is not the key given");
}

static void changed_or_removed_signature_fails(void **state)
{
    lines_t l = read_lines("keyed.ndjson");
    int b = nth(&l, "{\"block\"", 1);
    flip_hex(&l, b, "\"signature\"");
    write_lines(&l, "sig.ndjson", -1, -1);
    char out[4096];
    assert_int_equal(verify(out, sizeof out, "sig.ndjson", NULL, NULL), 1);
    assert_contains(out, "FAILED: block 4: signature does not verify against the public key");
    /* Leaving the signature out is no way around it either. */
    char *s = strstr(l.line[b], ",\"signature\"");
    assert_non_null(s);
    memcpy(s, "}}\n", 4);
    write_lines(&l, "nosig.ndjson", -1, -1);
    free_lines(&l);
    assert_int_equal(verify(out, sizeof out, "nosig.ndjson", NULL, NULL), 1);
    assert_contains(out, "FAILED: block 4: not signed, but block 2 before it is");
}

/* POST /v1/reports, then the JSON document downloaded; its published sha256 into sha. */
static void make_report(const char *file, char sha[80])
{
    th_resp_t r;
    long st = th_post("/v1/reports", plain.admin_key,
                      "{\"type\":\"waste_register\",\"from\":\"2020-01-01\",\"to\":\"2040-01-01\"}",
                      &r);
    if (st != 201) fail_msg("POST /v1/reports: %ld %s", st, r.body ? r.body : "");
    char url[256];
    snprintf(url, sizeof url, "/v1/reports/%s.json", th_json_at(r.json, "id")->valuestring);
    snprintf(sha, 80, "%s", th_json_at(r.json, "sha256")->valuestring);
    th_resp_free(&r);
    assert_int_equal(th_get(url, plain.admin_key, &r), 200);
    char path[512];
    path_of(path, sizeof path, file);
    FILE *f = fopen(path, "w");
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    th_resp_free(&r);
}

static void report_verifies_and_tampered_report_fails(void **state)
{
    char sha[80], out[4096], path[512];
    make_report("report.json", sha);
    assert_int_equal(export_to(&plain, "withreport.ndjson"), 0);
    path_of(path, sizeof path, "report.json");
    assert_int_equal(verify(out, sizeof out, "withreport.ndjson", "--report", path), 0);
    assert_contains(out, sha);
    /* One figure changed, still valid JSON: its canonical SHA-256 no longer matches. */
    lines_t l = read_lines("report.json");
    char *p = strstr(l.line[0], "\"type\":\"waste_register\"");
    assert_non_null(p);
    memcpy(p, "\"type\":\"waste_registes\"", strlen("\"type\":\"waste_registes\""));
    write_lines(&l, "tampered.json", -1, -1);
    free_lines(&l);
    path_of(path, sizeof path, "tampered.json");
    assert_int_equal(verify(out, sizeof out, "withreport.ndjson", "--report", path), 1);
    assert_contains(out, "content changed");
    /* Without the export's record: against the SHA-256 it was published with. */
    char arg[200];
    snprintf(arg, sizeof arg, "--sha256=%s", sha);
    path_of(path, sizeof path, "report.json");
    assert_int_equal(verify(out, sizeof out, "plain.ndjson", "--report", path), 1);
    assert_contains(out, "no SHA-256 to compare with");
    assert_int_equal(th_cli(out, sizeof out, "verify", "--offline", dir_file("plain.ndjson"),
                            "--report", path, arg, NULL), 0);
    path_of(path, sizeof path, "tampered.json");
    assert_int_equal(th_cli(out, sizeof out, "verify", "--offline", dir_file("plain.ndjson"),
                            "--report", path, arg, NULL), 1);
    assert_contains(out, "content changed");
    /* A report must name a block the export holds. */
    l = read_lines("plain.ndjson");
    write_lines(&l, "short.ndjson", nth(&l, "{\"block\"", 2), l.n);
    free_lines(&l);
    path_of(path, sizeof path, "report.json");
    assert_int_equal(verify(out, sizeof out, "short.ndjson", "--report", path), 1);
    assert_contains(out, "its block 9 is not in the export");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(intact_export_verifies),
        cmocka_unit_test(changed_canon_byte_fails),
        cmocka_unit_test(dropped_block_fails),
        cmocka_unit_test(changed_prev_fails),
        cmocka_unit_test(export_from_mid_chain_verifies_and_says_so),
        cmocka_unit_test(signed_export_verifies),
        cmocka_unit_test(changed_or_removed_signature_fails),
        cmocka_unit_test(report_verifies_and_tampered_report_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

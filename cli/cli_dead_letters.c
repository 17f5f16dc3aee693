/* cli_dead_letters — `circa dead-letters`: GET /v1/dead-letters, POST /v1/dead-letters/replay. */
#include "cli_dead_letters.h"
#include "cli_daemon.h"
#include "buf.h"
#include "cli_db.h"

#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: circa dead-letters [--adapter NAME] [--all] [--replay]\n"
    "Lists the messages adapters could not turn into events, with the reason (pending ones;\n"
    "--all: replayed ones too). --replay re-submits the pending ones through circad after the\n"
    "adapter configuration was fixed (and circad reloaded it with SIGHUP); stored ones are\n"
    "marked replayed. Daemon: CIRCA_URL (or CIRCA_LISTEN), key: CIRCA_KEY or\n"
    "$CIRCA_DATA_DIR/admin.key. Exit 0, 1 when some could not be replayed or circad is\n"
    "unreachable, 2 for a bad invocation.\n";

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    buf_append(ud, p, sz * n);
    return sz * n;
}

/* One request; the status (0 on a transport error, message in resp). */
static long request(const char *method, const char *path_query, buf_t *resp)
{
    char base[1024], full[2048], key[512], auth[600];
    cli_daemon_url(base, sizeof base);
    snprintf(full, sizeof full, "%s%s", base, path_query);
    if (cli_daemon_key(key, sizeof key)) {
        buf_puts(resp, CLI_DAEMON_NO_KEY);
        return 0;
    }
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) buf_puts(resp, curl_easy_strerror(rc));
    else curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return v ? v : "";
}

/* Pages through GET /v1/dead-letters, one tab-separated line per dead letter. */
static int list(const char *adapter_q, int all)
{
    char cursor[32] = "0";
    long total = 0;
    for (;;) {
        char pq[1024];
        snprintf(pq, sizeof pq, "/v1/dead-letters?limit=1000&cursor=%s%s%s", cursor,
                 all ? "" : "&replayed=false", adapter_q);
        buf_t resp = BUF_INIT;
        long st = request("GET", pq, &resp);
        cJSON *j = st == 200 ? cJSON_Parse(resp.data) : NULL;
        if (!j) {
            fprintf(stderr, "circa dead-letters: %ld %s\n", st, resp.data ? resp.data : "");
            buf_free(&resp);
            return CLI_EXIT_FAIL;
        }
        buf_free(&resp);
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(j, "dead_letters")) {
            printf("%s\t%s\t%s\t%s\t%s%s\t%s\n", jstr(d, "received_time"), jstr(d, "adapter"),
                   jstr(d, "topic"), jstr(d, "id"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "replayed")) ? "[replayed] " : "",
                   jstr(d, "reason"), jstr(d, "payload"));
            total++;
        }
        const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "next_cursor"));
        if (next) snprintf(cursor, sizeof cursor, "%s", next);
        cJSON_Delete(j);
        if (!next) break;
    }
    fprintf(stderr, "%ld dead letters\n", total);
    return CLI_EXIT_OK;
}

static int replay(const char *adapter_q)
{
    char pq[1024];
    snprintf(pq, sizeof pq, "/v1/dead-letters/replay?%s", adapter_q[0] ? adapter_q + 1 : "");
    buf_t resp = BUF_INIT;
    long st = request("POST", pq, &resp);
    cJSON *j = st == 200 ? cJSON_Parse(resp.data) : NULL;
    if (!j) {
        fprintf(stderr, "circa dead-letters: replay: %ld %s\n", st, resp.data ? resp.data : "");
        buf_free(&resp);
        return CLI_EXIT_FAIL;
    }
    buf_free(&resp);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "errors"))
        printf("not replayed\t%s\t%s\n", jstr(e, "id"), jstr(e, "reason"));
    int replayed = cJSON_GetObjectItemCaseSensitive(j, "replayed")->valueint;
    int failed = cJSON_GetObjectItemCaseSensitive(j, "failed")->valueint;
    printf("replayed %d, failed %d\n", replayed, failed);
    cJSON_Delete(j);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_dead_letters_main(int argc, char **argv)
{
    static const struct option opts[] = {{"adapter", required_argument, NULL, 'a'},
                                         {"replay", no_argument, NULL, 'r'},
                                         {"all", no_argument, NULL, 'A'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *adapter = NULL;
    int do_replay = 0, all = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:rAh", opts, NULL)) != -1) {
        if (c == 'a') adapter = optarg;
        else if (c == 'r') do_replay = 1;
        else if (c == 'A') all = 1;
        else if (c == 'h') return fputs(usage, stdout), CLI_EXIT_OK;
        else return fputs(usage, stderr), CLI_EXIT_USAGE;
    }
    if (optind < argc) return fprintf(stderr, "circa dead-letters: unexpected %s\n", argv[optind]), CLI_EXIT_USAGE;
    char adapter_q[512] = "";
    if (adapter) {
        char *esc = curl_easy_escape(NULL, adapter, 0);
        snprintf(adapter_q, sizeof adapter_q, "&adapter=%s", esc);
        curl_free(esc);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = do_replay ? replay(adapter_q) : list(adapter_q, all);
    curl_global_cleanup();
    return rc;
}

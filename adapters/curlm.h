/* curlm — libcurl's multi interface driven by the libuv loop: each transfer is an easy handle
 * submitted with a completion callback; sockets are watched with uv_poll and libcurl's single
 * timeout with one uv_timer, so no transfer ever blocks the loop. */
#ifndef CIRCA_CURLM_H
#define CIRCA_CURLM_H
#include <curl/curl.h>
#include <uv.h>

typedef struct curlm curlm_t;

/* Called once per submitted handle, on the loop, after the handle left the multi handle:
 * result is CURLE_OK or the transfer's error (CURLE_ABORTED_BY_CALLBACK when cancelled or
 * when the curlm closed). The caller owns easy again and frees it (curl_easy_cleanup). */
typedef void (*curlm_done_fn)(CURL *easy, CURLcode result, void *arg);

curlm_t *curlm_new(uv_loop_t *loop);
/* Starts the transfer. easy must not use CURLOPT_PRIVATE (curlm keeps its own state there).
 * Returns 0, or -1 when libcurl refused the handle (done is then not called). */
int curlm_submit(curlm_t *m, CURL *easy, curlm_done_fn done, void *arg);
/* Stops a transfer in flight; its done runs now with CURLE_ABORTED_BY_CALLBACK. */
void curlm_cancel(curlm_t *m, CURL *easy);
/* Number of transfers in flight. */
int curlm_active(const curlm_t *m);
/* Cancels every transfer (each done runs), closes the uv handles and frees m; closed runs
 * once everything is released. */
void curlm_close(curlm_t *m, void (*closed)(void *arg), void *arg);

#endif

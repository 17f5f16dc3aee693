/* receiver — a report delivery receiver for tests: a plain-socket HTTP server on 127.0.0.1 in
 * a thread of the test. It checks each POST's Circa-Signature (HMAC-SHA256 of the body with
 * the shared secret) and Circa-Report-Sha256 (SHA-256 of the body), answers 500 while told to
 * fail and 200 otherwise, and keeps the delivery ids it accepted — dropping a delivery id it
 * already accepted, as the at-least-once contract asks of a receiver. */
#ifndef CIRCA_TEST_RECEIVER_H
#define CIRCA_TEST_RECEIVER_H
#include <stddef.h>

typedef struct receiver receiver_t;

typedef struct {
    char delivery_id[80];
    char report_sha[80];
    int attempt;          /* Circa-Delivery-Attempt */
    int signature_ok;     /* HMAC matches */
    int sha_ok;           /* SHA-256 of the body matches Circa-Report-Sha256 */
    int status;           /* what the receiver answered */
    int duplicate;        /* an accepted id seen again */
} receiver_req_t;

receiver_t *receiver_start(const char *secret);
int receiver_port(const receiver_t *r);
/* The next n requests are answered 500 (n < 0: every request until changed). */
void receiver_fail(receiver_t *r, int n);
int receiver_requests(receiver_t *r);
/* Distinct delivery ids answered 200 with a valid signature, and accepted ids seen again. */
int receiver_accepted(receiver_t *r);
int receiver_duplicates(receiver_t *r);
/* Request k (0-based); 0, or -1 when there is none. */
int receiver_request(receiver_t *r, int k, receiver_req_t *out);
void receiver_stop(receiver_t *r);

#endif

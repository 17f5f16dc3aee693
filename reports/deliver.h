/* deliver — sends generated reports to their schedule's URL: POST of the report's canonical
 * JSON, signed with HMAC-SHA256, over libcurl multi on the loop (adapters/curlm.c).
 *
 * A delivery's life is a state machine, persisted in the delivery table (schema/017) and
 * changed in C only by deliver.c's move():
 *
 *     PENDING ──▶ SENDING ──▶ DELIVERED            (a 2xx answer)
 *                  ▲    └───▶ RETRY_WAIT ──┐       (anything else, a timeout, no connection)
 *                  └───────────────────────┘
 *                       └───▶ GAVE_UP              (the next try would be past give_up_s)
 *
 * Work is claimed from PostgreSQL (FOR UPDATE SKIP LOCKED, a lease), so with several circad
 * processes each attempt is made by one of them, and a restart loses nothing: what is not
 * DELIVERED or GAVE_UP is still in the table. Delivery is at least once: the 2xx is committed
 * before the delivery is done, but a circad that dies between the receiver's 2xx and that
 * commit sends it again with the same Circa-Delivery-Id, which the receiver must drop. */
#ifndef CIRCA_DELIVER_H
#define CIRCA_DELIVER_H
#include <stddef.h>

#include "app.h"
#include "store.h"

typedef enum {
    DELIVER_PENDING,
    DELIVER_SENDING,
    DELIVER_DELIVERED,
    DELIVER_RETRY_WAIT,
    DELIVER_GAVE_UP,
    DELIVER_NSTATES
} deliver_state_t;

typedef struct {
    unsigned long retry_min_ms;   /* first back-off; doubles per attempt */
    unsigned long retry_max_ms;   /* cap of one back-off */
    unsigned long timeout_ms;     /* one attempt, connect to last byte */
    double give_up_s;             /* no attempt starts later than this after the report */
    int max_in_flight;            /* deliveries sending at once in this process */
} deliver_config_t;

typedef struct deliver deliver_t;

/* owner names this process in claims (host/pid/random). */
deliver_t *deliver_new(app_t *app, const deliver_config_t *cfg, const char *owner);
/* Claims the deliveries now due and sends them; a claim already in flight makes it a no-op. */
void deliver_poll(deliver_t *d);
/* Cancels transfers in flight (each recorded as a failed attempt to retry at once), waits for
 * the store transactions, frees d and calls done(arg), perhaps before returning. */
void deliver_stop(deliver_t *d, void (*done)(void *), void *arg);

/* "PENDING", …: the names the table stores. */
const char *deliver_state_name(deliver_state_t s);
/* Back-off before attempt attempt+1 after attempt (1-based) failed: min·2^(attempt-1), capped. */
unsigned long deliver_backoff_ms(const deliver_config_t *cfg, int attempt);
/* "sha256=<64 hex>" of HMAC-SHA256(key, body) into out. 0, or -1 on a crypto failure. */
int deliver_sign(const void *key, size_t keylen, const void *body, size_t len, char out[72]);
/* 1 when url may be delivered to: https://, or http:// to a loopback host (for tests). */
int deliver_url_allowed(const char *url);

/* The delivery statements, spliced into schedule_stmts (one module table entry for both). */
#define DELIVER_STMTS                                                                          \
    {"deliver_claim",                                                                          \
     "SELECT tenant_id, id, prev_state, attempt, age_s, url, secret, secret_file, report_sha, " \
     "body FROM circa_delivery_claim($1, $2::interval, $3::int)"},                             \
    {"deliver_record",                                                                         \
     "SELECT circa_delivery_record($1, $2, $3, $4::int, $5::float8, $6::float8, "              \
     "nullif($7, '')::int, nullif($8, ''), $9, $10::bigint)"},                                  \
    {"deliver_list",                                                                           \
     "SELECT circa_delivery_list($1, nullif($2, ''), nullif($3, ''), $4::int)::text"}

#endif

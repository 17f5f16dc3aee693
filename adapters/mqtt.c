/* mqtt — an MQTT adapter instance on circad's loop: connection, spool, drain (see mqtt.h).
 *
 * Acknowledgement. libmosquitto 2.0.11 has no manual ack, and with its default (unthreaded)
 * mode it writes the PUBACK of a QoS 1 message *before* on_message runs. In "threaded" mode
 * (mosquitto_threaded_set) it only queues outgoing packets and writes them in
 * mosquitto_loop_write, which this module calls itself. So: loop_read hands messages to
 * on_message, which appends them to the spool; then the spool is fdatasync'ed on the libuv
 * thread pool with reads and writes paused; only after the fsync succeeded does loop_write
 * send the queued PUBACKs. A failed append or fsync drops the connection instead, which
 * discards the queued PUBACKs, and the broker delivers again.
 *
 * Connection states, changed only by set_state:
 *   IDLE → CONNECTING → CONNECTED → BACKOFF → CONNECTING …;  any → STOPPING → (freed)
 * Drain steps, one at a time: IDLE → DEAD (dead letters of a batch) → BATCH (its events in
 * one ingest request) → [SINGLE (one by one when the batch was refused)] → IDLE; WAIT is the
 * retry pause while PostgreSQL is away (ingest answers 503). */
#include "mqtt.h"
#include "adapters.h"
#include "buf.h"
#include "ingest.h"
#include "log.h"
#include "profiles.h"
#include "spool.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define BATCH_MAX 500            /* spool records per ingest request */
#define READ_PACKETS_MAX 4096    /* packets read per poll callback before yielding */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_S 10
#define RETRY_MS 500

typedef enum { MQ_IDLE, MQ_CONNECTING, MQ_CONNECTED, MQ_BACKOFF, MQ_STOPPING } mq_state_t;
typedef enum { DR_IDLE, DR_DEAD, DR_BATCH, DR_SINGLE, DR_WAIT } drain_state_t;

typedef struct {
    char *topic;
    int qos;
    profile_t profile;
} sub_t;

typedef struct {
    spool_rec_t recs[BATCH_MAX];
    cJSON *events[BATCH_MAX];   /* NULL: dead letter */
    char *reasons[BATCH_MAX];
    int n, next_single;
    int dead_counted;           /* dead letters of the batch counted in the stats */
} batch_t;

struct mqtt {
    app_t *app;
    cJSON *conf;
    char name[128], tenant[65], party[65], client_id[200], host[256], ca_file[1024];
    int port, protocol, keepalive;
    const cJSON *devices;
    sub_t *subs;
    int nsubs;
    struct mosquitto *mosq;
    spool_t *spool;
    mq_state_t state;
    uv_poll_t *poll;             /* per connection; freed on close */
    int poll_fd, poll_events;
    uv_timer_t misc, backoff, retry;
    uv_fs_t fsreq;
    int syncing, spool_failed, open_handles;
    unsigned backoff_ms;
    int64_t connecting_since_us;
    drain_state_t drain;
    batch_t batch;
    mqtt_stats_t st;
    void (*stop_done)(void *);
    void *stop_arg;
};

static void drain_kick(mqtt_t *m);
static void connect_now(mqtt_t *m);
static void maybe_finish_stop(mqtt_t *m);

static void on_backoff_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

static void on_retry_timer(uv_timer_t *t)
{
    drain_kick(t->data);
}

static const char *state_name(mq_state_t s)
{
    static const char *const names[] = {"idle", "connecting", "connected", "backoff", "stopping"};
    return names[s];
}

static void log_state(const mqtt_t *m, mq_state_t to, const char *why)
{
    buf_t f = BUF_INIT;
    buf_puts(&f, "\"adapter\":");
    buf_json_str(&f, m->name, strlen(m->name));
    buf_printf(&f, ",\"from\":\"%s\",\"to\":\"%s\",\"why\":", state_name(m->state), state_name(to));
    buf_json_str(&f, why, strlen(why));
    log_fields(to == MQ_BACKOFF ? LOG_WARN : LOG_INFO, "mqtt connection", f.data);
    buf_free(&f);
}

/* The one place the connection state changes. */
static void set_state(mqtt_t *m, mq_state_t to, const char *why)
{
    if (m->state == to) return;
    log_state(m, to, why);
    if (to == MQ_CONNECTED) m->backoff_ms = BACKOFF_MIN_MS;
    if (to == MQ_CONNECTING) m->connecting_since_us = app_now_us();
    if (m->state == MQ_CONNECTED && to == MQ_BACKOFF) m->st.reconnects++;
    m->state = to;
    m->st.connected = to == MQ_CONNECTED;
}

/* ---- socket under uv_poll ----------------------------------------------------------------- */

static void poll_closed(uv_handle_t *h)
{
    mqtt_t *m = h->data;
    free(h);
    m->open_handles--;
    maybe_finish_stop(m);
}

static void poll_close(mqtt_t *m)
{
    if (!m->poll) return;
    uv_poll_stop(m->poll);
    uv_close((uv_handle_t *)m->poll, poll_closed);
    m->poll = NULL;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Reads while the fsync is not in flight; writes while libmosquitto wants to and nothing
 * unsynced would be acknowledged by it. */
static void poll_update(mqtt_t *m)
{
    int fd = mosquitto_socket(m->mosq);
    if (m->poll && fd != m->poll_fd) poll_close(m);
    if (fd < 0 || m->state == MQ_BACKOFF || m->state == MQ_STOPPING) return poll_close(m);
    if (!m->poll) {
        m->poll = xcalloc(1, sizeof *m->poll);
        if (uv_poll_init_socket(m->app->loop, m->poll, fd)) {
            free(m->poll);
            m->poll = NULL;
            return;
        }
        m->poll->data = m;
        m->poll_fd = fd;
        m->poll_events = -1;
        m->open_handles++;
    }
    int ev = 0;
    if (!m->syncing) ev |= UV_READABLE;
    if (!m->syncing && !spool_pending(m->spool) && mosquitto_want_write(m->mosq)) ev |= UV_WRITABLE;
    if (ev == m->poll_events) return;
    m->poll_events = ev;
    if (ev) uv_poll_start(m->poll, ev, on_poll);
    else uv_poll_stop(m->poll);
}

/* The connection is gone (or must go): forget the queued PUBACKs, retry after a back-off. */
static void lost(mqtt_t *m, const char *why)
{
    if (m->state == MQ_STOPPING) return;
    poll_close(m);
    set_state(m, MQ_BACKOFF, why);
    uv_timer_start(&m->backoff, on_backoff_timer, m->backoff_ms, 0);
    m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

static void on_synced(uv_fs_t *req);

/* After I/O: make what on_message appended durable before anything is written back. */
static void after_io(mqtt_t *m)
{
    if (m->spool_failed) {
        m->spool_failed = 0;
        return lost(m, "spool append failed: dropping the connection so the broker delivers again");
    }
    if (!m->syncing && spool_pending(m->spool)) {
        int fd = spool_sync_begin(m->spool);
        m->syncing = 1;
        uv_fs_fdatasync(m->app->loop, &m->fsreq, fd, on_synced);
    } else if (!m->syncing && m->state != MQ_BACKOFF && mosquitto_want_write(m->mosq)) {
        int rc = mosquitto_loop_write(m->mosq, 1024);
        if (rc != MOSQ_ERR_SUCCESS) return lost(m, mosquitto_strerror(rc));
    }
    poll_update(m);
}

static void on_synced(uv_fs_t *req)
{
    mqtt_t *m = req->data;
    int ok = req->result == 0;
    uv_fs_req_cleanup(req);
    spool_sync_end(m->spool, ok);
    m->syncing = 0;
    if (m->state == MQ_STOPPING) return maybe_finish_stop(m);
    if (!ok) {
        log_msg(LOG_ERROR, "mqtt %s: spool fsync failed: %s", m->name, uv_strerror((int)req->result));
        return lost(m, "spool fsync failed");
    }
    after_io(m);
    drain_kick(m);
}

/* Reads every packet available (loop_read handles about one per call). errno alone does not
 * tell when the socket is empty: in threaded mode libmosquitto writes a wake-up byte to an
 * internal socketpair for every queued PUBACK, nobody reads it, and once it is full each
 * write leaves errno EAGAIN. Trusting that ended every read after one message, so each
 * message had its own spool fsync and round trip (docs/PERFORMANCE.md, MQTT); the socket's
 * own byte count decides first. */
static int read_all(mqtt_t *m)
{
    for (int i = 0; i < READ_PACKETS_MAX && m->state != MQ_BACKOFF; i++) {
        errno = 0;
        int rc = mosquitto_loop_read(m->mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS) return rc;
        int avail = 0, fd = mosquitto_socket(m->mosq);
        if (fd >= 0 && ioctl(fd, FIONREAD, &avail) == 0 && avail > 0) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    }
    return MOSQ_ERR_SUCCESS;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    mqtt_t *m = h->data;
    if (status < 0) return lost(m, uv_strerror(status));
    if ((events & UV_WRITABLE) && !m->syncing && !spool_pending(m->spool)) {
        int rc = mosquitto_loop_write(m->mosq, 1024);
        if (rc != MOSQ_ERR_SUCCESS) return lost(m, mosquitto_strerror(rc));
    }
    if (events & UV_READABLE) {
        int rc = read_all(m);
        if (rc != MOSQ_ERR_SUCCESS) {
            m->spool_failed = 0;   /* the connection is gone anyway */
            return lost(m, rc == MOSQ_ERR_CONN_LOST ? "broker closed the connection" : mosquitto_strerror(rc));
        }
    }
    after_io(m);
}

/* ---- libmosquitto callbacks (run inside loop_read) ----------------------------------------- */

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
    mqtt_t *m = ud;
    if (rc != 0) {
        char why[160];
        snprintf(why, sizeof why, "broker refused the connection: %s", mosquitto_connack_string(rc));
        return lost(m, why);
    }
    set_state(m, MQ_CONNECTED, "CONNACK");
    for (int i = 0; i < m->nsubs; i++) mosquitto_subscribe(mosq, NULL, m->subs[i].topic, m->subs[i].qos);
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg)
{
    mqtt_t *m = ud;
    m->st.messages++;
    if (m->spool_failed) return;
    if (spool_append(m->spool, app_now_us(), msg->topic, msg->payload, (size_t)msg->payloadlen)) {
        log_msg(LOG_ERROR, "mqtt %s: spool append failed: %s", m->name, strerror(errno));
        m->spool_failed = 1;
    }
}

/* ---- connecting ------------------------------------------------------------------------------ */

static void connect_now(mqtt_t *m)
{
    if (m->state == MQ_STOPPING) return;
    int first = m->state == MQ_IDLE;
    int rc = first ? mosquitto_connect_async(m->mosq, m->host, m->port, m->keepalive)
                   : mosquitto_reconnect_async(m->mosq);
    set_state(m, MQ_CONNECTING, first ? "start" : "retry");
    if (rc != MOSQ_ERR_SUCCESS) {
        return lost(m, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    }
    after_io(m);
}

static void on_misc(uv_timer_t *t)
{
    mqtt_t *m = t->data;
    if (m->state == MQ_CONNECTING && app_now_us() - m->connecting_since_us > CONNECT_TIMEOUT_S * 1000000LL)
        return lost(m, "no CONNACK in time");
    if (m->state != MQ_CONNECTED && m->state != MQ_CONNECTING) return;
    int rc = mosquitto_loop_misc(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) return lost(m, "keep-alive: no answer from the broker");
    after_io(m);
}

/* ---- drain: spool → dead letters / ingest ------------------------------------------------ */

static void batch_free(batch_t *b)
{
    for (int i = 0; i < b->n; i++) {
        spool_rec_free(&b->recs[i]);
        cJSON_Delete(b->events[i]);
        free(b->reasons[i]);
        b->events[i] = NULL;
        b->reasons[i] = NULL;
    }
    b->n = 0;
}

static void drain_retry(mqtt_t *m)
{
    m->drain = DR_WAIT;
    if (m->state != MQ_STOPPING) uv_timer_start(&m->retry, on_retry_timer, RETRY_MS, 0);
    else maybe_finish_stop(m);
}

static void drain_done(mqtt_t *m)
{
    if (spool_consume(m->spool, m->batch.n))
        log_msg(LOG_WARN, "mqtt %s: spool cursor not written: %s", m->name, strerror(errno));
    batch_free(&m->batch);
    m->drain = DR_IDLE;
    if (m->state == MQ_STOPPING) return maybe_finish_stop(m);
    drain_kick(m);
}

static void submit_events(mqtt_t *m);
static void submit_single(mqtt_t *m);

static void dead_written(store_tx_t *tx, store_status_t st, void *arg)
{
    mqtt_t *m = arg;
    if (st != STORE_OK) {
        if (st == STORE_SQL_ERROR)
            log_msg(LOG_ERROR, "mqtt %s: dead letters not stored: %s", m->name, store_tx_error(tx));
        return drain_retry(m);
    }
    if (m->drain == DR_SINGLE) return submit_single(m);
    for (int i = 0; i < m->batch.n && !m->batch.dead_counted; i++)
        m->st.dead_letters += m->batch.reasons[i] != NULL;
    m->batch.dead_counted = 1;
    submit_events(m);
}

/* Dead letters for every record with a reason (from index `from`, or only `only`). */
static void write_dead(mqtt_t *m, int only)
{
    store_tx_t *tx = store_tx_new(m->app->store, dead_written, m);
    for (int i = 0; i < m->batch.n; i++) {
        if (!m->batch.reasons[i] || (only >= 0 && i != only)) continue;
        spool_rec_t *r = &m->batch.recs[i];
        adapters_dead_letter(tx, m->tenant, m->name, r->topic, r->received_us, m->batch.reasons[i],
                             r->payload, r->payload_len);
    }
    store_tx_submit(tx);
}

static int transient(int status)
{
    return status >= 500 || status == 429 || status == 0;
}

static void single_done(const ingest_result_t *res, void *arg)
{
    mqtt_t *m = arg;
    int i = m->batch.next_single;
    if (transient(res->status)) return drain_retry(m);
    if (res->status < 300) {
        m->st.events += (unsigned long long)res->accepted;
        m->st.duplicates += (unsigned long long)res->duplicates;
        m->batch.next_single++;
        return submit_single(m);
    }
    char reason[1024];
    adapters_ingest_reason(res, reason, sizeof reason);
    m->batch.reasons[i] = xstrdup(reason);
    m->st.dead_letters++;
    m->batch.next_single++;
    write_dead(m, i);     /* continues with submit_single once stored */
}

/* The batch was refused as a whole: each event alone, so only the bad ones are dead. */
static void submit_single(mqtt_t *m)
{
    batch_t *b = &m->batch;
    if (m->state == MQ_STOPPING && b->next_single > 0) {
        /* consume what is settled; the rest is submitted again after the restart */
        int settled = b->next_single;
        spool_consume(m->spool, settled);
        batch_free(b);
        m->drain = DR_IDLE;
        return maybe_finish_stop(m);
    }
    while (b->next_single < b->n && !b->events[b->next_single]) b->next_single++;
    if (b->next_single >= b->n) return drain_done(m);
    cJSON *one = cJSON_CreateArray();
    cJSON_AddItemToArray(one, cJSON_Duplicate(b->events[b->next_single], 1));
    ingest_submit(m->app->ingest, m->tenant, m->party[0] ? m->party : NULL, one, single_done, m);
}

static void batch_done(const ingest_result_t *res, void *arg)
{
    mqtt_t *m = arg;
    if (transient(res->status)) return drain_retry(m);
    if (res->status < 300) {
        m->st.events += (unsigned long long)res->accepted;
        m->st.duplicates += (unsigned long long)res->duplicates;
        return drain_done(m);
    }
    m->drain = DR_SINGLE;
    m->batch.next_single = 0;
    submit_single(m);
}

static void submit_events(mqtt_t *m)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < m->batch.n; i++)
        if (m->batch.events[i]) cJSON_AddItemToArray(arr, cJSON_Duplicate(m->batch.events[i], 1));
    if (!cJSON_GetArraySize(arr)) {
        cJSON_Delete(arr);
        return drain_done(m);
    }
    m->drain = DR_BATCH;
    ingest_submit(m->app->ingest, m->tenant, m->party[0] ? m->party : NULL, arr, batch_done, m);
}

/* Takes the next durable records of the spool and settles them, in order. */
static void drain_kick(mqtt_t *m)
{
    if ((m->drain != DR_IDLE && m->drain != DR_WAIT) || m->state == MQ_STOPPING) return;
    batch_t *b = &m->batch;
    if (m->drain == DR_WAIT) {   /* a retry: the same batch again */
        m->drain = DR_DEAD;
        if (b->next_single > 0) return (void)(m->drain = DR_SINGLE, submit_single(m));
        return write_dead(m, -1);
    }
    int n = spool_peek(m->spool, b->recs, BATCH_MAX);
    if (n <= 0) return;
    b->n = n;
    b->next_single = 0;
    b->dead_counted = 0;
    for (int i = 0; i < n; i++) {
        char reason[512];
        b->events[i] = mqtt_map(m, b->recs[i].topic, b->recs[i].payload, b->recs[i].payload_len,
                                reason, sizeof reason);
        if (!b->events[i]) b->reasons[i] = xstrdup(reason);
    }
    m->drain = DR_DEAD;
    write_dead(m, -1);
}

cJSON *mqtt_map(const mqtt_t *m, const char *topic, const char *payload, size_t len,
                char *reason, size_t rlen)
{
    for (int i = 0; i < m->nsubs; i++) {
        bool match = false;
        if (mosquitto_topic_matches_sub(m->subs[i].topic, topic, &match) == MOSQ_ERR_SUCCESS && match)
            return profile_map(&m->subs[i].profile, m->name, m->devices, payload, len, reason, rlen);
    }
    snprintf(reason, rlen, "no subscription of adapter %s matches topic %s", m->name, topic);
    return NULL;
}

/* ---- configuration ----------------------------------------------------------------------- */

static const char *conf_str(const cJSON *c, const char *k, const char *def)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, k));
    return v ? v : def;
}

static int parse_broker(mqtt_t *m, const char *url, char *err, size_t errlen)
{
    int tls = strncmp(url, "mqtts://", 8) == 0;
    if (!tls && strncmp(url, "mqtt://", 7) != 0)
        return snprintf(err, errlen, "broker must be mqtt://host:port or mqtts://host:port"), -1;
    const char *hp = url + (tls ? 8 : 7), *colon = strrchr(hp, ':');
    size_t hlen = colon ? (size_t)(colon - hp) : strcspn(hp, "/");
    m->port = tls ? 8883 : 1883;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if ((*end && *end != '/') || p <= 0 || p > 65535)
            return snprintf(err, errlen, "broker port in %s is not 1-65535", url), -1;
        m->port = (int)p;
    }
    if (!hlen || hlen >= sizeof m->host) return snprintf(err, errlen, "broker host missing in %s", url), -1;
    snprintf(m->host, sizeof m->host, "%.*s", (int)hlen, hp);
    return tls;
}

static int parse_subs(mqtt_t *m, char *err, size_t errlen)
{
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(m->conf, "subscriptions");
    if (!cJSON_IsArray(subs) || !cJSON_GetArraySize(subs))
        return snprintf(err, errlen, "\"subscriptions\" must be a non-empty array"), -1;
    m->nsubs = cJSON_GetArraySize(subs);
    m->subs = xcalloc((size_t)m->nsubs, sizeof *m->subs);
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, subs) {
        const char *topic = conf_str(s, "topic", NULL);
        const cJSON *qos = cJSON_GetObjectItemCaseSensitive(s, "qos");
        if (!topic || mosquitto_sub_topic_check(topic) != MOSQ_ERR_SUCCESS)
            return snprintf(err, errlen, "subscriptions[%d].topic is not a valid topic filter", i), -1;
        m->subs[i].topic = xstrdup(topic);
        m->subs[i].qos = cJSON_IsNumber(qos) ? qos->valueint : 1;
        if (m->subs[i].qos != 1)
            return snprintf(err, errlen, "subscriptions[%d].qos must be 1 (at-least-once, then deduplicated)", i), -1;
        char perr[200];
        if (profile_parse(s, &m->subs[i].profile, perr, sizeof perr))
            return snprintf(err, errlen, "subscriptions[%d]: %s", i, perr), -1;
        i++;
    }
    return 0;
}

/* First line of the password file (the file, not the password, is in the configuration). */
static int read_password(const char *path, char *out, size_t n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, errlen, "password_file %s: %s", path, strerror(errno)), -1;
    if (!fgets(out, (int)n, f)) out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int setup_client(mqtt_t *m, int tls, char *err, size_t errlen)
{
    m->mosq = mosquitto_new(m->client_id, false, m);
    if (!m->mosq) return snprintf(err, errlen, "mosquitto_new: %s", strerror(errno)), -1;
    /* Outgoing packets are only queued; this module writes them after the spool fsync. */
    mosquitto_threaded_set(m->mosq, true);
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, m->protocol);
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_message_callback_set(m->mosq, on_message);
    const char *user = conf_str(m->conf, "username", NULL), *pwfile = conf_str(m->conf, "password_file", NULL);
    char pw[512] = "";
    if (pwfile && read_password(pwfile, pw, sizeof pw, err, errlen)) return -1;
    if (user && mosquitto_username_pw_set(m->mosq, user, pwfile ? pw : NULL) != MOSQ_ERR_SUCCESS)
        return snprintf(err, errlen, "username/password rejected by libmosquitto"), -1;
    const char *ca = conf_str(cJSON_GetObjectItemCaseSensitive(m->conf, "tls"), "ca_file", NULL);
    if ((tls || ca) && mosquitto_tls_set(m->mosq, ca, ca ? NULL : "/etc/ssl/certs", NULL, NULL, NULL) != MOSQ_ERR_SUCCESS)
        return snprintf(err, errlen, "tls.ca_file %s cannot be used", ca ? ca : "(system)"), -1;
    if (m->protocol == MQTT_PROTOCOL_V5) {
        /* MQTT 5 keeps a session after the connection only with a Session Expiry Interval,
         * and libmosquitto 2.0 stores CONNECT properties only in mosquitto_connect_bind_v5
         * (a blocking connect). Called with keepalive 1 it stores them and returns
         * MOSQ_ERR_INVAL before connecting; every later (re)connect sends them. */
        mosquitto_property *props = NULL;
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, UINT32_MAX);
        mosquitto_connect_bind_v5(m->mosq, m->host, m->port, 1, NULL, props);
        mosquitto_property_free_all(&props);
    }
    return 0;
}

static int configure(mqtt_t *m, char *err, size_t errlen)
{
    snprintf(m->name, sizeof m->name, "%s", conf_str(m->conf, "name", ""));
    snprintf(m->tenant, sizeof m->tenant, "%s", conf_str(m->conf, "tenant", "demo"));
    snprintf(m->party, sizeof m->party, "%s", conf_str(m->conf, "party", ""));
    char defid[160];
    snprintf(defid, sizeof defid, "circad-%s", m->name);
    snprintf(m->client_id, sizeof m->client_id, "%s", conf_str(m->conf, "client_id", defid));
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(m->conf, "protocol");
    int p = cJSON_IsNumber(proto) ? proto->valueint : 5;
    if (p != 4 && p != 5 && p != 311)
        return snprintf(err, errlen, "protocol must be 5 (MQTT 5) or 4 (MQTT 3.1.1)"), -1;
    m->protocol = p == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
    const cJSON *ka = cJSON_GetObjectItemCaseSensitive(m->conf, "keepalive");
    m->keepalive = cJSON_IsNumber(ka) && ka->valueint >= 5 ? ka->valueint : 30;
    m->devices = cJSON_GetObjectItemCaseSensitive(m->conf, "devices");
    if (m->devices && !cJSON_IsObject(m->devices))
        return snprintf(err, errlen, "\"devices\" must be an object"), -1;
    int tls = parse_broker(m, conf_str(m->conf, "broker", "mqtt://127.0.0.1:1883"), err, errlen);
    if (tls < 0 || parse_subs(m, err, errlen)) return -1;
    char dir[1400], serr[512];
    snprintf(dir, sizeof dir, "%s/spool/%s", m->app->cfg.data_dir, m->name);
    if (spool_open(dir, &m->spool, serr, sizeof serr)) return snprintf(err, errlen, "%s", serr), -1;
    return setup_client(m, tls, err, errlen);
}

static void free_instance(mqtt_t *m)
{
    if (m->mosq) mosquitto_destroy(m->mosq);
    spool_close(m->spool);
    for (int i = 0; i < m->nsubs; i++) free(m->subs[i].topic);
    free(m->subs);
    cJSON_Delete(m->conf);
    free(m);
}

static void timer_init(mqtt_t *m, uv_timer_t *t)
{
    uv_timer_init(m->app->loop, t);
    t->data = m;
    m->open_handles++;
}

int mqtt_start(app_t *app, const cJSON *conf, mqtt_t **out, char *err, size_t errlen)
{
    static int lib_ready;
    if (!lib_ready++) mosquitto_lib_init();
    mqtt_t *m = xcalloc(1, sizeof *m);
    m->app = app;
    m->conf = cJSON_Duplicate(conf, 1);
    m->backoff_ms = BACKOFF_MIN_MS;
    m->fsreq.data = m;
    if (configure(m, err, errlen)) {
        free_instance(m);
        return -1;
    }
    timer_init(m, &m->misc);
    timer_init(m, &m->backoff);
    timer_init(m, &m->retry);
    uv_timer_start(&m->misc, on_misc, 1000, 1000);
    connect_now(m);
    drain_kick(m);   /* what an earlier run left in the spool */
    *out = m;
    return 0;
}

/* ---- stop ---------------------------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
    mqtt_t *m = h->data;
    m->open_handles--;
    maybe_finish_stop(m);
}

static void maybe_finish_stop(mqtt_t *m)
{
    if (m->state != MQ_STOPPING || m->syncing) return;
    if (m->drain == DR_DEAD || m->drain == DR_BATCH || m->drain == DR_SINGLE) return;
    if (m->drain == DR_WAIT) {   /* not settled: left in the spool for the next start */
        batch_free(&m->batch);
        m->drain = DR_IDLE;
    }
    if (m->mosq && mosquitto_socket(m->mosq) >= 0) {
        /* Everything appended is durable now: send the PUBACKs, then say goodbye. */
        mosquitto_loop_write(m->mosq, 1024);
        mosquitto_disconnect(m->mosq);
        mosquitto_loop_write(m->mosq, 16);
        poll_close(m);
    }
    if (!uv_is_closing((uv_handle_t *)&m->misc)) {
        uv_close((uv_handle_t *)&m->misc, timer_closed);
        uv_close((uv_handle_t *)&m->backoff, timer_closed);
        uv_close((uv_handle_t *)&m->retry, timer_closed);
    }
    if (m->open_handles) return;
    void (*done)(void *) = m->stop_done;
    void *arg = m->stop_arg;
    log_msg(LOG_INFO, "mqtt %s: stopped with %llu messages in the spool", m->name,
            (unsigned long long)spool_depth(m->spool));
    m->stop_done = NULL;
    free_instance(m);
    if (done) done(arg);
}

void mqtt_stop(mqtt_t *m, void (*done)(void *), void *arg)
{
    m->stop_done = done;
    m->stop_arg = arg;
    uv_timer_stop(&m->backoff);
    uv_timer_stop(&m->retry);
    uv_timer_stop(&m->misc);
    set_state(m, MQ_STOPPING, "stop");
    maybe_finish_stop(m);
}

const char *mqtt_name(const mqtt_t *m)
{
    return m->name;
}

const char *mqtt_party(const mqtt_t *m)
{
    return m->party[0] ? m->party : NULL;
}

void mqtt_stats(const mqtt_t *m, mqtt_stats_t *out)
{
    *out = m->st;
    out->spool_depth = spool_depth(m->spool);
    int64_t oldest = spool_oldest_us(m->spool);
    out->lag_seconds = oldest && out->spool_depth ? (double)(app_now_us() - oldest) / 1e6 : 0;
}

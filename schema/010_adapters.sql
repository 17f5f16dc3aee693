-- Dead letters: what an adapter (MQTT, PLM) received but could not turn into a valid event,
-- kept verbatim with the reason so that it can be replayed once the configuration is fixed.
-- The id is derived from adapter, topic and payload, so a message delivered twice (QoS 1) is
-- one dead letter.
CREATE TABLE dead_letter (
    tenant_id      text NOT NULL REFERENCES tenant (id),
    id             text NOT NULL,
    adapter        text NOT NULL,
    topic          text NOT NULL DEFAULT '',
    received_time  timestamptz NOT NULL,
    reason         text NOT NULL,
    payload        text NOT NULL,
    replayed       boolean NOT NULL DEFAULT false,
    replayed_time  timestamptz,
    seq            bigserial,                 -- listing order and cursor
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX dead_letter_list ON dead_letter (tenant_id, seq);
CREATE INDEX dead_letter_pending ON dead_letter (tenant_id, adapter, seq) WHERE NOT replayed;

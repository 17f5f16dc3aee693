-- GS1 EPCIS 2.0 capture jobs (POST /epcis/capture) and the helper the event query uses.
-- The events themselves live in the ledger like every other event; a job only says how its
-- document fared: running, then success (after the events committed) or failure (nothing
-- stored) with every error.
CREATE TABLE epcis_capture (
    tenant_id  text NOT NULL REFERENCES tenant (id),
    id         text NOT NULL,
    status     text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failure')),
    created    timestamptz NOT NULL DEFAULT now(),
    finished   timestamptz,
    errors     jsonb NOT NULL DEFAULT '[]',     -- RFC 9457 problem objects, one per error
    event_ids  text[] NOT NULL DEFAULT '{}',    -- ids of the canonical events stored
    PRIMARY KEY (tenant_id, id)
);

-- EPCs an EPCIS event names: epcList and childEPCs, and with p_any also inputEPCList,
-- outputEPCList and parentID (the MATCH_epc / MATCH_anyEPC query parameters).
CREATE FUNCTION circa_epcis_epcs(p_ev jsonb, p_any boolean) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_array_elements_text(p_ev -> k)
      FROM unnest(CASE WHEN p_any
                       THEN ARRAY['epcList', 'childEPCs', 'inputEPCList', 'outputEPCList']
                       ELSE ARRAY['epcList', 'childEPCs'] END) k
     WHERE jsonb_typeof(p_ev -> k) = 'array'
    UNION ALL
    SELECT p_ev ->> 'parentID' WHERE p_any AND jsonb_typeof(p_ev -> 'parentID') = 'string'
$$;

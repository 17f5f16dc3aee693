-- Consignments kept at ingest, so a waste register of any size is a bounded document
-- (docs/REPORTS.md, docs/PERFORMANCE.md "Reports"). 020 parsed every shipped, collected and
-- received event of the period and matched shipments to receipts at request time (5 s per
-- million events), and listed every consignment inside the report (0.9 GB of JSON at 10 M
-- events: more than PostgreSQL can hold in one value). Now:
--   consignment   one row per shipped or collected event, with what the register needs from its
--                 canonical JSON (document, carrier, legs, packaging, basis, planned operation)
--                 and from the events it depends on (the receipt, the lot's EWC code, the
--                 treatment, the shipment that documents a collection). Rows are versioned by
--                 ledger seq: a change made by the group ending at seq S closes the current
--                 version (valid_to = S) and adds one from S, so the consignments as of any
--                 block B are the versions with valid_from <= B < valid_to — a report's listing
--                 never changes after the report is made, whatever arrives or is corrected later.
--   receipt_doc   received events that name a document, to match a shipment that arrives after
--                 its receipt (the lot is matched through event_lot).
--   consignment_day  the listed current rows summed per tenant-local day and every key the
--                 register groups by (origin, EWC code, receiver, operation, basis,
--                 acceptance, document, packaging, legs), kept with each version change, so the
--                 register of a year reads a few thousand rows, not millions. A row's day is
--                 fixed when the version is made (with the tenant's time zone then, as
--                 rollup_day), so the roll-up and a listing by day always hold the same rows.
-- circa_consignment_derive is the derive step (called by circa_derive_group); the register
-- sums consignment_day (circa_report_waste_register) and GET /v1/reports/{id}/consignments
-- pages through the versions valid at the report's block (circa_report_consignments).
-- prtr_transfers reads the current rows (circa_report_transfers).
--
-- The rules are 020's, with one refinement: the receipt, the lot's EWC code and the shipment
-- that documents a collection are looked for among all events up to the block, not only among
-- the period's (a shipment of 31 December received on 2 January has its acceptance).

CREATE TABLE consignment (
    tenant_id      text NOT NULL,
    event_id       text NOT NULL,             -- the shipped or collected event
    valid_from     bigint NOT NULL,           -- seq of the block from which this version holds
    valid_to       bigint,                    -- seq of the block from which it no longer does
    seq            bigint NOT NULL,           -- the event's seq
    type           text NOT NULL,             -- shipped, collected
    event_time     timestamptz NOT NULL,
    day            date NOT NULL,             -- tenant-local day of event_time (see above)
    time           text NOT NULL,             -- the event's canonical time (UTC), as hashed
    origin         text,                      -- sender: the site of shipped, from_site of collected
    receiver       text,                      -- to_site of shipped, the site of collected
    material       text,
    lot            text,
    ewc            text,                      -- the event's, else its lot's first waste_generated
    ewc_from       text,                      -- event, lot (NULL: none)
    kg             double precision,
    basis          text,                      -- quantity.basis
    document       text,
    carrier        text,
    transport      jsonb,                     -- the legs as recorded
    modes          text[],                    -- each leg's mode (NULL: no legs recorded)
    packaging      jsonb,
    operation      text,                      -- planned_operation, else the receipt's, else the
    operation_from text,                      --   treatment's; which of the three
    treatment      text,                      -- the treatment event the operation came from
    receipt        text,                      -- shipped: the receiver's first receipt (by seq)
    receipt_time   text,
    acceptance     text,
    received_kg    double precision,
    refused_kg     double precision,
    documented_by  text,                      -- collected: a shipment documents it (not listed)
    PRIMARY KEY (tenant_id, event_id, valid_from)
);
-- The listing: the versions of a period, in order.
CREATE INDEX consignment_time ON consignment (tenant_id, day, event_time, seq);
-- The derive step finds the current rows an event can change by lot and by document. Not
-- partial on valid_to IS NULL: the planner, believing a young table tiny, would then prefer
-- them (smaller) to the primary key for lookups by event id, and scan the tenant's rows.
CREATE INDEX consignment_lot ON consignment (tenant_id, lot) WHERE lot IS NOT NULL;
CREATE INDEX consignment_document ON consignment (tenant_id, document)
    WHERE document IS NOT NULL;

-- Absent keys are '' (and '{}' for modes): primary-key columns cannot be NULL.
CREATE TABLE consignment_day (
    tenant_id  text NOT NULL,
    day        date NOT NULL,
    origin     text NOT NULL,
    ewc        text NOT NULL,
    receiver   text NOT NULL,
    operation  text NOT NULL,
    basis      text NOT NULL,
    acceptance text NOT NULL,
    documented boolean NOT NULL,
    packed     boolean NOT NULL,
    ptype      text NOT NULL,                 -- packaging.type
    pform      text NOT NULL,                 -- packaging.physical_form
    modes      text[] NOT NULL,
    n          bigint NOT NULL,               -- consignments
    kg         double precision NOT NULL,
    refused_kg double precision NOT NULL,
    packages   double precision NOT NULL,     -- Σ packaging.count
    PRIMARY KEY (tenant_id, day, origin, ewc, receiver, operation, basis, acceptance,
                 documented, packed, ptype, pform, modes)
);

CREATE TABLE receipt_doc (
    tenant_id text NOT NULL,
    event_id  text NOT NULL,
    seq       bigint NOT NULL,
    site      text,
    from_site text,
    document  text NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX receipt_doc_match ON receipt_doc (tenant_id, document);

-- On Citus both tables live with the tenant's events (099 ran before they existed).
DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('consignment', 'tenant_id', colocate_with => 'event');
        PERFORM create_distributed_table('consignment_day', 'tenant_id', colocate_with => 'event');
        PERFORM create_distributed_table('receipt_doc', 'tenant_id', colocate_with => 'event');
    END IF;
END
$citus$;

-- A canonical event that names a document ("document": in RFC 8785 form has no spaces): only
-- those are parsed to read it.
CREATE FUNCTION circa_canon_has_document(p_canon bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT position('"document":'::bytea IN p_canon) > 0
$$;

-- The consignment rows of the given shipped or collected events (p_type), as the ledger and the
-- derived tables stand now: a corrected event has none. valid_from/valid_to are left NULL.
-- A collection's documenting shipment is read from consignment, so shipments go first.
-- One statement that Citus can ship whole to the tenant's shard (131): the time zone read
-- first, no simple CASE (099), and the refused mass of a partial refusal (circa_kg reads
-- material and unit) computed per row afterwards. Events are read one by one by key (OFFSET 0
-- keeps the lookup a subquery): joined, the planner walked the tenant's events by tenant_id
-- when their statistics were stale (a fresh database's first load).
CREATE FUNCTION circa_consignment_rows(p_tenant text, p_ids text[], p_type text)
RETURNS SETOF consignment LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    c consignment;
    v_q jsonb;
    v_material text;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    FOR c IN
        WITH t AS (
            SELECT e.id, e.seq, e.type, e.event_time, e.material, e.lot, nullif(e.ewc, '') AS ewc,
                   e.quantity_kg, d.doc,
                   CASE WHEN e.type = 'shipped' THEN e.site ELSE e.from_site END AS origin,
                   CASE WHEN e.type = 'shipped' THEN e.to_site ELSE e.site END AS receiver,
                   d.doc->>'document' AS document
              FROM unnest(p_ids) i(id),
                   LATERAL (SELECT x.* FROM event x
                             WHERE x.tenant_id = p_tenant AND x.id = i.id AND x.type = p_type
                               AND NOT EXISTS (SELECT 1 FROM correction k
                                                WHERE k.tenant_id = p_tenant
                                                  AND k.corrected = x.id)
                            OFFSET 0) e,
                   LATERAL (SELECT convert_from(e.canon, 'UTF8')::jsonb AS doc) d
        )
        SELECT p_tenant, t.id, NULL::bigint, NULL::bigint, t.seq, t.type, t.event_time,
               (t.event_time AT TIME ZONE v_tz)::date, t.doc->>'time', t.origin,
               t.receiver, t.material, t.lot,
               coalesce(t.ewc, wg.ewc), CASE WHEN t.ewc IS NOT NULL THEN 'event'
                                             WHEN wg.ewc IS NOT NULL THEN 'lot' END,
               t.quantity_kg, t.doc->'quantity'->>'basis', t.document, t.doc->>'carrier',
               t.doc->'transport',
               CASE WHEN jsonb_typeof(t.doc->'transport') = 'array'
                    THEN ARRAY(SELECT l->>'mode' FROM jsonb_array_elements(t.doc->'transport') l) END,
               t.doc->'packaging',
               coalesce(t.doc->>'planned_operation', r.operation, tr.operation),
               CASE WHEN t.doc ? 'planned_operation' THEN 'planned_operation'
                    WHEN r.operation IS NOT NULL THEN 'receipt'
                    WHEN tr.operation IS NOT NULL THEN 'treatment' END,
               tr.id, r.id, r.doc->>'time', r.doc->>'acceptance', r.quantity_kg,
               CASE WHEN r.doc->>'acceptance' = 'refused' THEN r.quantity_kg
                    WHEN r.doc->>'acceptance' = 'accepted' THEN 0 END,
               db.event_id
          FROM t
          -- A shipment's receipt: the receiver's first (by seq) from the sender with the same lot
          -- or the same document.
          LEFT JOIN LATERAL (
              SELECT m.id FROM (SELECT r1.id, r1.seq FROM event r1
                                 WHERE r1.tenant_id = p_tenant AND r1.lot = t.lot
                                   AND r1.type = 'received' AND r1.site = t.receiver
                                   AND r1.from_site = t.origin
                                UNION ALL
                                SELECT r2.event_id, r2.seq FROM receipt_doc r2
                                 WHERE r2.tenant_id = p_tenant AND r2.document = t.document
                                   AND r2.site = t.receiver AND r2.from_site = t.origin) m
               WHERE t.type = 'shipped'
                 AND NOT EXISTS (SELECT 1 FROM correction k WHERE k.tenant_id = p_tenant
                                  AND k.corrected = m.id)
               ORDER BY m.seq LIMIT 1) rm ON true
          -- The receipt itself, by its key (joined inside the lookup above, the planner walked
          -- the tenant's events for it when their statistics were stale).
          LEFT JOIN LATERAL (
              SELECT x.id, nullif(x.operation, '') AS operation, x.quantity_kg, x.material,
                     convert_from(x.canon, 'UTF8')::jsonb AS doc
                FROM event x WHERE x.tenant_id = p_tenant AND x.id = rm.id) r ON true
          -- No EWC code on the consignment: the one its lot was generated with.
          LEFT JOIN LATERAL (
              SELECT nullif(g.ewc, '') AS ewc FROM event g
               WHERE t.ewc IS NULL AND g.tenant_id = p_tenant AND g.lot = t.lot
                 AND g.type = 'waste_generated'
                 AND NOT EXISTS (SELECT 1 FROM correction k WHERE k.tenant_id = p_tenant
                                  AND k.corrected = g.id)
               ORDER BY g.seq LIMIT 1) wg ON true
          -- Neither the consignment nor its receipt names the operation: what the receiver did to
          -- the lot first.
          LEFT JOIN LATERAL (
              SELECT x.id, x.operation FROM event x
               WHERE NOT t.doc ? 'planned_operation' AND r.operation IS NULL
                 AND x.tenant_id = p_tenant AND x.lot = t.lot AND x.site = t.receiver
                 AND x.type IN ('recycled', 'energy_recovered', 'disposed')
                 AND NOT EXISTS (SELECT 1 FROM correction k WHERE k.tenant_id = p_tenant
                                  AND k.corrected = x.id)
               ORDER BY x.seq LIMIT 1) tr ON true
          -- A collection that a shipment from its sender to its collector (same lot or document)
          -- already documents is not a consignment of its own.
          LEFT JOIN LATERAL (
              SELECT s.event_id FROM (
                  SELECT s1.event_id, s1.seq FROM consignment s1
                   WHERE s1.tenant_id = p_tenant AND s1.lot = t.lot AND s1.valid_to IS NULL
                     AND s1.type = 'shipped' AND s1.origin = t.origin AND s1.receiver = t.receiver
                  UNION ALL
                  SELECT s2.event_id, s2.seq FROM consignment s2
                   WHERE s2.tenant_id = p_tenant AND s2.document = t.document
                     AND s2.valid_to IS NULL AND s2.type = 'shipped' AND s2.origin = t.origin
                     AND s2.receiver = t.receiver) s
               WHERE t.type = 'collected'
               ORDER BY s.seq LIMIT 1) db ON true

    LOOP
        IF c.acceptance = 'partial' THEN
            SELECT convert_from(x.canon, 'UTF8')::jsonb->'refused_quantity', x.material
              INTO v_q, v_material
              FROM event x WHERE x.tenant_id = p_tenant AND x.id = c.receipt;
            c.refused_kg := circa_kg(p_tenant, v_q, v_material);
        END IF;
        RETURN NEXT c;
    END LOOP;
END $$;

-- Whether two versions of a consignment say different things (their version bounds aside); a
-- NULL row (no version) differs from any other.
CREATE FUNCTION circa_consignment_differs(a consignment, b consignment) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (a.event_id, a.seq, a.type, a.event_time, a.day, a.time, a.origin, a.receiver,
            a.material, a.lot, a.ewc, a.ewc_from, a.kg, a.basis, a.document, a.carrier,
            a.transport, a.modes, a.packaging, a.operation, a.operation_from, a.treatment,
            a.receipt, a.receipt_time, a.acceptance, a.received_kg, a.refused_kg,
            a.documented_by)
           IS DISTINCT FROM
           (b.event_id, b.seq, b.type, b.event_time, b.day, b.time, b.origin, b.receiver,
            b.material, b.lot, b.ewc, b.ewc_from, b.kg, b.basis, b.document, b.carrier,
            b.transport, b.modes, b.packaging, b.operation, b.operation_from, b.treatment,
            b.receipt, b.receipt_time, b.acceptance, b.received_kg, b.refused_kg,
            b.documented_by)
$$;

-- Brings the current versions of the given events' consignments (one type) up to date at the
-- block ending at p_block: a changed or vanished row is closed, a changed or new one added, and
-- consignment_day takes the closed versions back and adds the new ones. Rows travel as whole
-- values (new, old) through one FULL JOIN: the planner cannot size the CTEs (it guesses one
-- row), and joining them back by id made nested loops that took 100 s for a 33,000-event
-- chunk of the backfill. Index access is pinned as in circa_derive_group: while the backfill
-- grows consignment in one transaction the planner sized it by its pages and chose sequential
-- scans of it inside nested loops. Generic plans (here and in the derive step, and so in
-- circa_consignment_rows they call): a custom plan for a tenant without statistics estimates
-- one row for tenant_id = '…' on every index and took event_time or event_pkey by tenant_id
-- alone for the receipt and lot lookups, walking the tenant's ledger for every consignment
-- (91 events/s at 20,000 events); the generic plan estimates an average tenant and takes the
-- lot and id indexes. No JIT: called from circa_derive_group (hash and merge joins off) the
-- FULL JOIN is costed at 10^10 and JIT compiled it for 1.2–1.7 s per group.
CREATE FUNCTION circa_consignment_apply(p_tenant text, p_ids text[], p_type text,
                                        p_block bigint) RETURNS void
LANGUAGE sql
SET enable_seqscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
    WITH n AS (
        SELECT r AS c FROM circa_consignment_rows(p_tenant, p_ids, p_type) r
    ), cur AS (
        SELECT c FROM unnest(p_ids) i(id)
          JOIN consignment c ON c.tenant_id = p_tenant AND c.event_id = i.id
         WHERE c.valid_to IS NULL AND c.type = p_type
    ), d AS (
        SELECT n.c AS new, cur.c AS old
          FROM n FULL JOIN cur ON (cur.c).event_id = (n.c).event_id
         WHERE circa_consignment_differs(n.c, cur.c)
    ), closed AS (
        UPDATE consignment c SET valid_to = p_block
          FROM d
         WHERE c.tenant_id = p_tenant AND c.event_id = (d.old).event_id
           AND c.valid_from = (d.old).valid_from
    ), delta AS (
        SELECT (old).*, -1 AS sign FROM d WHERE (old).event_id IS NOT NULL
        UNION ALL
        SELECT (new).*, 1 FROM d WHERE (new).event_id IS NOT NULL
    ), rolled AS (
        INSERT INTO consignment_day AS r
        SELECT p_tenant, day, origin, coalesce(ewc, ''), coalesce(receiver, ''),
               coalesce(operation, ''), coalesce(basis, ''), coalesce(acceptance, ''),
               document IS NOT NULL, packaging IS NOT NULL, coalesce(packaging->>'type', ''),
               coalesce(packaging->>'physical_form', ''), coalesce(modes, '{}'),
               sum(sign), sum(sign * coalesce(kg, 0)), sum(sign * coalesce(refused_kg, 0)),
               sum(sign * CASE WHEN jsonb_typeof(packaging->'count') = 'number'
                               THEN (packaging->>'count')::float8 ELSE 0 END)
          FROM delta
         WHERE documented_by IS NULL AND origin IS NOT NULL
         GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
        ON CONFLICT (tenant_id, day, origin, ewc, receiver, operation, basis, acceptance,
                     documented, packed, ptype, pform, modes)
        DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg,
                      refused_kg = r.refused_kg + EXCLUDED.refused_kg,
                      packages = r.packages + EXCLUDED.packages
    )
    INSERT INTO consignment
    SELECT (new).tenant_id, (new).event_id, p_block, NULL, (new).seq, (new).type,
           (new).event_time, (new).day, (new).time, (new).origin, (new).receiver,
           (new).material, (new).lot, (new).ewc, (new).ewc_from, (new).kg, (new).basis,
           (new).document, (new).carrier, (new).transport, (new).modes, (new).packaging,
           (new).operation, (new).operation_from, (new).treatment, (new).receipt,
           (new).receipt_time, (new).acceptance, (new).received_kg, (new).refused_kg,
           (new).documented_by
      FROM d WHERE (new).event_id IS NOT NULL
$$;

-- The group's received events that name a document, into receipt_doc (131 on Citus).
CREATE FUNCTION circa_receipt_doc_add(p_tenant text, p_first bigint, p_last bigint)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO receipt_doc (tenant_id, event_id, seq, site, from_site, document)
    SELECT p_tenant, e.id, e.seq, e.site, e.from_site,
           convert_from(e.canon, 'UTF8')::jsonb->>'document'
      FROM event e
     WHERE e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last AND e.type = 'received'
       AND circa_canon_has_document(e.canon)
       AND convert_from(e.canon, 'UTF8')::jsonb->>'document' IS NOT NULL
$$;

-- The derive step of a group (seq p_first..p_last). Every consignment the group can change is
-- recomputed: the group's shipped and collected events, the corrected events, and the current
-- rows sharing a lot or a document with an event of the group or a corrected one (a receipt,
-- a waste_generated, a treatment, a shipment documenting a collection, or one of those
-- corrected). circad sets bit 32 of p_kinds for shipped, collected and received events; the
-- rest matter only with a lot (2) or as corrections (8).
CREATE FUNCTION circa_consignment_derive(p_tenant text, p_first bigint, p_last bigint,
                                         p_kinds integer) RETURNS void
LANGUAGE plpgsql
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_ids text[];
BEGIN
    IF p_kinds & (2 | 8 | 32) = 0 THEN
        RETURN;
    END IF;
    PERFORM circa_receipt_doc_add(p_tenant, p_first, p_last);
    WITH g AS (
        SELECT e.id, e.type, e.lot, e.corrects,
               CASE WHEN e.type IN ('shipped', 'collected', 'received')
                     AND circa_canon_has_document(e.canon)
                    THEN convert_from(e.canon, 'UTF8')::jsonb->>'document' END AS document
          FROM event e
         WHERE e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last
           AND e.type IN ('shipped', 'collected', 'received', 'waste_generated', 'recycled',
                          'energy_recovered', 'disposed', 'corrected')
    ), x AS (
        -- Events whose correction took effect in this group, with what they were matched by.
        SELECT k.corrected AS id, e.lot,
               coalesce(c.document, d.document) AS document
          FROM g JOIN correction k ON k.tenant_id = p_tenant AND k.corrected = g.corrects
           AND k.by_event = g.id
          JOIN event e ON e.tenant_id = p_tenant AND e.id = k.corrected
          LEFT JOIN consignment c ON c.tenant_id = p_tenant AND c.event_id = k.corrected
           AND c.valid_to IS NULL
          LEFT JOIN receipt_doc d ON d.tenant_id = p_tenant AND d.event_id = k.corrected
         WHERE g.type = 'corrected'
    ), keys AS (
        SELECT lot, document FROM g WHERE type <> 'corrected'
        UNION ALL
        SELECT lot, document FROM x
    )
    SELECT array_agg(DISTINCT id) INTO v_ids FROM (
        SELECT id FROM g WHERE type IN ('shipped', 'collected')
        UNION ALL
        SELECT id FROM x
        UNION ALL
        -- A lookup per key (OFFSET 0 keeps it one): as a join the planner scanned the tenant's
        -- consignments once per key when their statistics were stale.
        SELECT c.event_id FROM (SELECT DISTINCT lot FROM keys WHERE lot IS NOT NULL) k,
               LATERAL (SELECT c.event_id FROM consignment c WHERE c.tenant_id = p_tenant
                           AND c.lot = k.lot AND c.valid_to IS NULL OFFSET 0) c
        UNION ALL
        SELECT c.event_id FROM (SELECT DISTINCT document FROM keys WHERE document IS NOT NULL) k,
               LATERAL (SELECT c.event_id FROM consignment c WHERE c.tenant_id = p_tenant
                           AND c.document = k.document AND c.valid_to IS NULL OFFSET 0) c
    ) a;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM circa_consignment_apply(p_tenant, v_ids, 'shipped', p_last);
    PERFORM circa_consignment_apply(p_tenant, v_ids, 'collected', p_last);
END $$;

-- circa_derive_group as 103 left it (116 changed only the steps it calls), with the
-- consignment step added last (after the corrections, so the correction table is up to date).
-- Plain PostgreSQL only, as in 103: on Citus, 131_citus_consignments adds the step to 105's.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION public.circa_derive_group(p_tenant text, p_first bigint, p_last bigint, p_kinds integer)
 RETURNS void
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
AS $function$
DECLARE
    e record;
    v_lenient boolean := false;
    v_items text[];
    v_retiring text[];
    v_corrects text[];
    v_by text[];
BEGIN
    IF p_kinds & 12 <> 0 THEN
        SELECT mode = 'lenient' INTO v_lenient FROM tenant WHERE id = p_tenant;
    END IF;
    PERFORM circa_rollup_add(p_tenant, p_first, p_last, NULL, 1);
    IF p_kinds & 1 <> 0 THEN
        PERFORM circa_derive_transformations(p_tenant, p_first, p_last);
        PERFORM circa_loss_add(p_tenant, p_first, p_last, NULL, 1);
    END IF;
    IF p_kinds & 2 <> 0 THEN
        INSERT INTO lot (tenant_id, id, material, site, first_seen)
        SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
          FROM event
         WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
           AND lot IS NOT NULL
         ORDER BY lot, seq
        ON CONFLICT DO NOTHING;
    END IF;
    IF p_kinds & 8 <> 0 THEN
        FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
                   FROM event
                  WHERE tenant_id = p_tenant
                    AND seq BETWEEN p_first AND p_last
                    AND type = 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_correction(p_tenant, v_lenient, e.id, e.corrects, e.repl);
            v_corrects := v_corrects || e.corrects;
            v_by := v_by || e.id;
        END LOOP;
        -- Corrected retiring item events leave the fates (lenient violations corrected nothing).
        PERFORM circa_item_fate_add(p_tenant, ARRAY(
            SELECT c.corrected FROM correction c
             WHERE c.tenant_id = p_tenant AND c.corrected = ANY (v_corrects)
               AND c.by_event = ANY (v_by)), -1);
    END IF;
    PERFORM circa_interim_derive(p_tenant, p_first, p_last, p_kinds);
    IF p_kinds & 4 <> 0 THEN
        SELECT array_agg(DISTINCT item),
               array_agg(id) FILTER (WHERE type IN ('recycled', 'energy_recovered', 'disposed'))
          INTO v_items, v_retiring
          FROM event
         WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
           AND item IS NOT NULL AND type <> 'corrected';
        PERFORM circa_item_day_add(p_tenant, v_items, -1);
        FOR e IN SELECT id, type, item, product, event_time
                   FROM event
                  WHERE tenant_id = p_tenant
                    AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
        PERFORM circa_item_day_add(p_tenant, v_items, 1);
        PERFORM circa_item_fate_add(p_tenant, v_retiring, 1);
    END IF;
    PERFORM circa_consignment_derive(p_tenant, p_first, p_last, p_kinds);
END $function$
$f$;
END $do$;

-- Backfill: every tenant's consignments as they stand, valid from its head (no report can name
-- an earlier block: reports made before this migration list their consignments inline).
-- On Citus 131_citus_consignments fills them with its own functions.
DO $backfill$
DECLARE
    t record;
    v_type text;
    v_lo bigint;
    v_ids text[];
    step constant bigint := 200000;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    INSERT INTO receipt_doc (tenant_id, event_id, seq, site, from_site, document)
    SELECT e.tenant_id, e.id, e.seq, e.site, e.from_site,
           convert_from(e.canon, 'UTF8')::jsonb->>'document'
      FROM event e
     WHERE e.type = 'received' AND circa_canon_has_document(e.canon)
       AND convert_from(e.canon, 'UTF8')::jsonb->>'document' IS NOT NULL;
    FOR t IN SELECT id, head_seq FROM tenant WHERE head_seq > 0 ORDER BY id LOOP
        FOREACH v_type IN ARRAY ARRAY['shipped', 'collected'] LOOP
            v_lo := 1;
            WHILE v_lo <= t.head_seq LOOP
                SELECT array_agg(id) INTO v_ids FROM event
                 WHERE tenant_id = t.id AND seq BETWEEN v_lo AND v_lo + step - 1
                   AND type = v_type;
                IF v_ids IS NOT NULL THEN
                    PERFORM circa_consignment_apply(t.id, v_ids, v_type, t.head_seq);
                END IF;
                v_lo := v_lo + step;
            END LOOP;
            ANALYZE consignment;   -- the collections' lookups plan with real sizes
        END LOOP;
    END LOOP;
END
$backfill$;

ANALYZE consignment;
ANALYZE consignment_day;
ANALYZE receipt_doc;

-- The consignment step of 120 on Citus (docs/SCALING.md), in the way 105 and 104 did theirs.
--
-- 120's apply and derive functions write with INSERT … SELECT and modifying CTEs over unnest()
-- (Citus pulls those to the coordinator and commits them in two phases). With citus only (plain
-- PostgreSQL keeps 120's functions; circa_consignment_rows, one router read, serves both):
--   * circa_consignment_apply compares the new rows with the current ones on the coordinator
--     and writes with a router UPDATE and INSERT … VALUES (circa_sql_row, 105);
--   * circa_receipt_doc_add writes receipt_doc with INSERT … VALUES; circa_consignment_derive
--     (120's) runs with circad's custom plans;
--   * circa_derive_group is 105's with the consignment step added last, as 120 did with 103's.
-- Every statement has tenant_id = the group's tenant: a group still commits on one worker in one
-- phase (tests/citus/one_phase.sh). 121's report functions read first and are the same on both.
-- A database that had tenants before 120 gets their consignments here, group by group of
-- 10,000 seqs (120's backfill ran on plain PostgreSQL only).

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_consignment_apply(p_tenant text, p_ids text[], p_type text,
                                                   p_block bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c consignment;
    v_new consignment[];
    v_cur consignment[] := '{}';
    v_old consignment[];
    v_add consignment[];
    v_rows text;
BEGIN
    v_new := ARRAY(SELECT r FROM circa_consignment_rows(p_tenant, p_ids, p_type) r);
    FOR c IN SELECT x.* FROM consignment x
              WHERE x.tenant_id = p_tenant AND x.event_id = ANY (p_ids)
                AND x.valid_to IS NULL AND x.type = p_type LOOP
        v_cur := v_cur || c;
    END LOOP;
    SELECT array_agg(o) FILTER (WHERE o.event_id IS NOT NULL),
           array_agg(n) FILTER (WHERE n.event_id IS NOT NULL)
      INTO v_old, v_add
      FROM unnest(v_new) n FULL JOIN unnest(v_cur) o ON o.event_id = n.event_id
     WHERE circa_consignment_differs(n, o);
    IF v_old IS NOT NULL THEN
        UPDATE consignment SET valid_to = p_block
         WHERE tenant_id = p_tenant AND valid_to IS NULL
           AND event_id = ANY (ARRAY(SELECT x.event_id FROM unnest(v_old) x));
    END IF;
    -- consignment_day takes the closed versions back and adds the new ones (as 120).
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant AS tenant_id, day, origin, coalesce(ewc, '') AS ewc,
                   coalesce(receiver, '') AS receiver, coalesce(operation, '') AS operation,
                   coalesce(basis, '') AS basis, coalesce(acceptance, '') AS acceptance,
                   document IS NOT NULL AS documented, packaging IS NOT NULL AS packed,
                   coalesce(packaging->>'type', '') AS ptype,
                   coalesce(packaging->>'physical_form', '') AS pform,
                   coalesce(modes, '{}')::text AS modes, sum(sign) AS n,
                   sum(sign * coalesce(kg, 0)) AS kg, sum(sign * coalesce(refused_kg, 0)) AS rkg,
                   sum(sign * CASE WHEN jsonb_typeof(packaging->'count') = 'number'
                                   THEN (packaging->>'count')::float8 ELSE 0 END) AS packages
              FROM (SELECT x.*, -1 AS sign FROM unnest(v_old) x
                    UNION ALL
                    SELECT x.*, 1 FROM unnest(v_add) x) delta
             WHERE documented_by IS NULL AND origin IS NOT NULL
             GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13) y;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO consignment_day AS r (tenant_id, day, origin, ewc, receiver,'
                ' operation, basis, acceptance, documented, packed, ptype, pform, modes, n, kg,'
                ' refused_kg, packages) VALUES ' || v_rows ||
                ' ON CONFLICT (tenant_id, day, origin, ewc, receiver, operation, basis,'
                ' acceptance, documented, packed, ptype, pform, modes)'
                ' DO UPDATE SET n = r.n + EXCLUDED.n, kg = r.kg + EXCLUDED.kg,'
                ' refused_kg = r.refused_kg + EXCLUDED.refused_kg,'
                ' packages = r.packages + EXCLUDED.packages';
    END IF;
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT x.tenant_id, x.event_id, p_block AS valid_from, NULL::bigint AS valid_to,
                   x.seq, x.type, x.event_time, x.day, x.time, x.origin, x.receiver,
                   x.material, x.lot, x.ewc, x.ewc_from, x.kg, x.basis, x.document, x.carrier,
                   x.transport, x.modes::text AS modes, x.packaging, x.operation,
                   x.operation_from, x.treatment, x.receipt, x.receipt_time, x.acceptance,
                   x.received_kg, x.refused_kg, x.documented_by
              FROM unnest(v_add) x) y;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO consignment VALUES ' || v_rows;
    END IF;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_receipt_doc_add(p_tenant text, p_first bigint, p_last bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_rows text;
BEGIN
    SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
      FROM (SELECT p_tenant, e.id, e.seq, e.site, e.from_site,
                   convert_from(e.canon, 'UTF8')::jsonb->>'document' AS document
              FROM event e
             WHERE e.tenant_id = p_tenant AND e.seq BETWEEN p_first AND p_last
               AND e.type = 'received' AND circa_canon_has_document(e.canon)
               AND convert_from(e.canon, 'UTF8')::jsonb->>'document' IS NOT NULL) y;
    IF v_rows IS NOT NULL THEN
        EXECUTE 'INSERT INTO receipt_doc (tenant_id, event_id, seq, site, from_site, document)'
                ' VALUES ' || v_rows;
    END IF;
END $$;
$f$;
    -- 120's step with circad's custom plans (Citus prunes to the tenant's shard by the value).
    ALTER FUNCTION circa_consignment_derive(text, bigint, bigint, integer) RESET ALL;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_derive_group(p_tenant text, p_first bigint, p_last bigint,
                                              p_kinds integer) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan TO 'off'
SET enable_hashjoin TO 'off'
SET enable_mergejoin TO 'off'
AS $$
DECLARE
    e record;
    v_lenient boolean := false;
    v_items text[];
    v_retiring text[];
    v_corrects text[];
    v_by text[];
    v_rows text;
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
        SELECT string_agg(circa_sql_row(row_to_json(y)), ', ') INTO v_rows
          FROM (SELECT DISTINCT ON (lot) p_tenant, lot, material, site, event_time
                  FROM event
                 WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                   AND lot IS NOT NULL
                 ORDER BY lot, seq) y;
        IF v_rows IS NOT NULL THEN
            EXECUTE 'INSERT INTO lot (tenant_id, id, material, site, first_seen) VALUES '
                    || v_rows || ' ON CONFLICT DO NOTHING';
        END IF;
    END IF;
    IF p_kinds & 8 <> 0 THEN
        FOR e IN SELECT id, corrects, convert_from(canon, 'UTF8')::jsonb->'replacement'->>'id' AS repl
                   FROM event
                  WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
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
                  WHERE tenant_id = p_tenant AND seq BETWEEN p_first AND p_last
                    AND item IS NOT NULL AND type <> 'corrected' ORDER BY seq LOOP
            PERFORM circa_apply_item(p_tenant, v_lenient, e.id, e.type, e.item, e.product,
                                     e.event_time);
        END LOOP;
        PERFORM circa_item_day_add(p_tenant, v_items, 1);
        PERFORM circa_item_fate_add(p_tenant, v_retiring, 1);
    END IF;
    PERFORM circa_consignment_derive(p_tenant, p_first, p_last, p_kinds);
END $$;
$f$;
END
$do$;

-- The consignments of tenants that were there before 120, group by group in seq order as
-- ingest would have made them (a group of 10,000 seqs at a time).
DO $backfill$
DECLARE
    t record;
    v_lo bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    FOR t IN SELECT id, head_seq FROM tenant WHERE head_seq > 0 ORDER BY id LOOP
        v_lo := 1;
        WHILE v_lo <= t.head_seq LOOP
            PERFORM circa_consignment_derive(t.id, v_lo, least(v_lo + 9999, t.head_seq), 2 | 8 | 32);
            v_lo := v_lo + 10000;
        END LOOP;
    END LOOP;
END
$backfill$;

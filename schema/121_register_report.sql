-- The waste register as a bounded document over the consignment table (120), its paged
-- consignment listing as of the report's block, and prtr_transfers over the same rows
-- (docs/REPORTS.md). The register no longer holds the consignments themselves: per EWC code it
-- holds what a register states about them (kg and consignments per receiver and R/D
-- operation, split by quantity basis; acceptance and refused loads; packaging; transport legs
-- by mode; how many carry a document), read from consignment_day; data.consignments gives
-- their count and kg, and data.scope the sites GET /v1/reports/{id}/consignments lists them
-- for (with the report's period days and block).

-- The sites a register's consignments are sent from: NULL for every site (no scope), else the
-- site asked for and/or the party's sites, sorted. Stored in the report, so its listing keeps
-- the scope it was made with when sites change party later.
CREATE FUNCTION circa_report_scope_sites(p_tenant text, p_site text, p_party text)
RETURNS text[] LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- plpgsql: Citus plans no SQL-function statement that has parameters.
    IF p_party IS NULL THEN
        RETURN CASE WHEN p_site IS NOT NULL THEN ARRAY[p_site] END;
    END IF;
    RETURN ARRAY(SELECT s.code FROM site s
                  WHERE s.tenant_id = p_tenant AND s.party = p_party
                    AND (p_site IS NULL OR s.code = p_site) ORDER BY s.code);
END $$;

-- Consignments as they stand now (the head), for prtr_transfers: same columns as 020's. The
-- scope's sites are read first, so the statement reads only co-located tables of the tenant
-- (on Citus a router query: no function inside it reads a distributed table, 104).
CREATE OR REPLACE FUNCTION circa_report_transfers(p_tenant text, p_from timestamptz,
                                                  p_to timestamptz, p_site text, p_party text)
RETURNS TABLE (id text, event_time timestamptz, type text, origin text, receiver text,
               ewc text, hazardous boolean, material text, lot text, kg double precision,
               operation text, operation_from text, basis text, document text, carrier text,
               transport jsonb, packaging jsonb, acceptance text, refused_kg double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_sites text[] := circa_report_scope_sites(p_tenant, p_site, p_party);
BEGIN
    RETURN QUERY
    SELECT c.event_id, c.event_time, c.type, c.origin, c.receiver, c.ewc,
           coalesce(w.hazardous, false), c.material, c.lot, c.kg, c.operation, c.operation_from,
           c.basis, c.document, c.carrier, c.transport, c.packaging, c.acceptance, c.refused_kg
      FROM consignment c
      LEFT JOIN ewc w ON w.code = c.ewc
     WHERE c.tenant_id = p_tenant AND c.valid_to IS NULL AND c.documented_by IS NULL
       AND c.event_time >= p_from AND c.event_time < p_to AND c.origin IS NOT NULL
       AND (v_sites IS NULL OR c.origin = ANY (v_sites));
END $$;

-- {"measured", "calculated", "estimated", "unspecified"} kg of rows with basis and kg.
CREATE FUNCTION circa_report_basis(p_basis text[], p_kg double precision[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'measured', coalesce(sum(k) FILTER (WHERE b = 'measured'), 0),
        'calculated', coalesce(sum(k) FILTER (WHERE b = 'calculated'), 0),
        'estimated', coalesce(sum(k) FILTER (WHERE b = 'estimated'), 0),
        'unspecified', coalesce(sum(k) FILTER (WHERE b IS NULL OR b NOT IN
                                                ('measured', 'calculated', 'estimated')), 0))
      FROM unnest(p_basis, p_kg) AS x(b, k)
$$;

-- One group of a register's consignment_day rows (circa_report_waste_register).
CREATE TYPE circa_register_fine AS (
    code text, receiver text, operation text, basis text, acceptance text, documented boolean,
    packed boolean, ptype text, pform text, modes text[], n numeric, kg double precision,
    refused_kg double precision, packages double precision);

-- waste_register: the period's consignment_day rows grouped as finely as the document needs
-- (a few hundred groups), everything else from those groups. The tenant's rows are read first
-- (generated kg per code, the groups, the receivers' names), then one statement builds the
-- document from what was read: on Citus every read is a router query and no function that
-- reads a table runs inside one (as 104 did).
CREATE OR REPLACE FUNCTION circa_report_waste_register(p_tenant text, p_from timestamptz,
                                                       p_to timestamptz, p_site text,
                                                       p_party text)
RETURNS jsonb LANGUAGE plpgsql STABLE
SET jit = off
AS $$
DECLARE
    v_tz text;
    v_sites text[] := circa_report_scope_sites(p_tenant, p_site, p_party);
    g_ewc text[]; g_kg float8[]; g_n bigint[];
    v_f circa_register_fine;
    v_fine circa_register_fine[] := '{}';
    n_code text[]; n_name text[];
    v_out jsonb;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    SELECT array_agg(x.ewc), array_agg(x.kg), array_agg(x.n) INTO g_ewc, g_kg, g_n
      FROM (SELECT r.ewc, sum(r.kg) AS kg, sum(r.events)::bigint AS n
              FROM rollup_day r
             WHERE r.tenant_id = p_tenant AND r.type = 'waste_generated'
               AND r.day >= (p_from AT TIME ZONE v_tz)::date
               AND r.day < (p_to AT TIME ZONE v_tz)::date
               AND r.site <> '' AND (v_sites IS NULL OR r.site = ANY (v_sites))
             GROUP BY 1
            HAVING sum(r.events) > 0) x;
    FOR v_f IN SELECT r.ewc, nullif(r.receiver, ''), nullif(r.operation, ''), nullif(r.basis, ''),
                    nullif(r.acceptance, ''), r.documented, r.packed, nullif(r.ptype, ''),
                    nullif(r.pform, ''), r.modes, sum(r.n), sum(r.kg), sum(r.refused_kg),
                    sum(r.packages)
               FROM consignment_day r
              WHERE r.tenant_id = p_tenant
                AND r.day >= (p_from AT TIME ZONE v_tz)::date
                AND r.day < (p_to AT TIME ZONE v_tz)::date
                AND (v_sites IS NULL OR r.origin = ANY (v_sites))
              GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
             HAVING sum(r.n) > 0 LOOP
        v_fine := v_fine || v_f;
    END LOOP;
    -- The receivers' names (circa_report_place reads site and party), one call per receiver.
    SELECT array_agg(d.receiver), array_agg(circa_report_place(p_tenant, d.receiver)->>'name')
      INTO n_code, n_name
      FROM (SELECT DISTINCT x.receiver FROM unnest(v_fine) x WHERE x.receiver IS NOT NULL) d;

    WITH gen AS (
        SELECT * FROM unnest(g_ewc, g_kg, g_n) AS g(ewc, kg, n)
    ), fine AS MATERIALIZED (
        SELECT * FROM unnest(v_fine)
    ), per AS (
        SELECT code, sum(kg) AS kg, coalesce(sum(refused_kg), 0) AS refused_kg, sum(n) AS n,
               coalesce(sum(n) FILTER (WHERE acceptance IN ('refused', 'partial')), 0) AS refused_loads,
               coalesce(sum(n) FILTER (WHERE documented), 0) AS documented,
               circa_report_basis(array_agg(basis), array_agg(kg)) AS basis
          FROM fine GROUP BY 1
    ), dest AS (
        SELECT d.code, jsonb_agg(jsonb_build_object('receiver', d.receiver,
                           'receiver_name', nm.name,
                           'operation', d.operation, 'kg', d.kg, 'consignments', d.n,
                           'basis', d.basis, 'refused_kg', d.refused_kg,
                           'refused_loads', d.refused_loads)
                                 ORDER BY d.receiver, d.operation) AS j
          FROM (SELECT code, receiver, operation, sum(kg) AS kg, sum(n) AS n,
                       coalesce(sum(refused_kg), 0) AS refused_kg,
                       coalesce(sum(n) FILTER (WHERE acceptance IN ('refused', 'partial')), 0)
                           AS refused_loads,
                       circa_report_basis(array_agg(basis), array_agg(kg)) AS basis
                  FROM fine GROUP BY 1, 2, 3) d
          LEFT JOIN unnest(n_code, n_name) AS nm(code, name) ON nm.code = d.receiver
         GROUP BY 1
    ), acc AS (
        SELECT a.code, jsonb_agg(jsonb_build_object('acceptance', a.acceptance,
                           'consignments', a.n, 'kg', a.kg, 'refused_kg', a.refused_kg)
                                 ORDER BY a.acceptance NULLS LAST) AS j
          FROM (SELECT code, acceptance, sum(n) AS n, sum(kg) AS kg,
                       coalesce(sum(refused_kg), 0) AS refused_kg
                  FROM fine GROUP BY 1, 2) a
         GROUP BY 1
    ), pack AS (
        SELECT p.code, jsonb_agg(jsonb_build_object('type', p.ptype, 'physical_form', p.pform,
                           'consignments', p.n, 'packages', p.packages, 'kg', p.kg)
                                 ORDER BY p.ptype NULLS LAST, p.pform NULLS LAST) AS j
          FROM (SELECT code, ptype, pform, sum(n) AS n, sum(packages) AS packages, sum(kg) AS kg
                  FROM fine WHERE packed GROUP BY 1, 2, 3) p
         GROUP BY 1
    ), legs AS (
        SELECT l.code, jsonb_agg(jsonb_build_object('mode', l.mode, 'legs', l.legs,
                           'consignments', l.n) ORDER BY l.mode NULLS LAST) AS j
          FROM (SELECT f.code, u.mode, sum(f.n * u.k) AS legs, sum(f.n) AS n
                  FROM fine f, LATERAL (SELECT m AS mode, count(*) AS k FROM unnest(f.modes) m
                                         GROUP BY m) u
                 GROUP BY 1, 2) l
         GROUP BY 1
    ), codes AS (
        SELECT ewc AS code FROM gen UNION SELECT code FROM per
    ), entry AS (
        SELECT c.code, jsonb_build_object(
            'ewc', nullif(c.code, ''), 'description', w.description,
            'hazardous', coalesce(w.hazardous, false),
            'generated_kg', coalesce(g.kg, 0), 'generated_events', coalesce(g.n, 0),
            'sent_off_site_kg', coalesce(p.kg, 0),
            'refused_kg', coalesce(p.refused_kg, 0),
            'refused_loads', coalesce(p.refused_loads, 0),
            'consignments', coalesce(p.n, 0),
            'documented', coalesce(p.documented, 0),
            'basis', coalesce(p.basis, circa_report_basis('{}', '{}')),
            'destinations', coalesce(d.j, '[]'),
            'acceptance', coalesce(a.j, '[]'),
            'packaging', coalesce(k.j, '[]'),
            'transport', coalesce(l.j, '[]')) AS j,
            coalesce(w.hazardous, false) AS hazardous, coalesce(g.kg, 0) AS generated_kg
          FROM codes c
          LEFT JOIN gen g ON g.ewc = c.code
          LEFT JOIN per p ON p.code = c.code
          LEFT JOIN dest d ON d.code = c.code
          LEFT JOIN acc a ON a.code = c.code
          LEFT JOIN pack k ON k.code = c.code
          LEFT JOIN legs l ON l.code = c.code
          LEFT JOIN ewc w ON w.code = c.code
    )
    SELECT jsonb_build_object(
        'scope', jsonb_build_object('site', p_site, 'party', p_party,
                                    'sites', to_jsonb(v_sites)),
        'entries', coalesce((SELECT jsonb_agg(j ORDER BY code) FROM entry), '[]'),
        'consignments', jsonb_build_object(
            'count', coalesce((SELECT sum(n) FROM per), 0),
            'kg', coalesce((SELECT sum(kg) FROM per), 0),
            'refused_kg', coalesce((SELECT sum(refused_kg) FROM per), 0)),
        'totals', jsonb_build_object(
            'generated_kg', coalesce((SELECT sum(kg) FROM gen), 0),
            'hazardous_generated_kg', coalesce((SELECT sum(generated_kg) FROM entry
                                                 WHERE hazardous), 0),
            'sent_off_site_kg', coalesce((SELECT sum(kg) FROM per), 0),
            'refused_kg', coalesce((SELECT sum(refused_kg) FROM per), 0),
            'refused_loads', coalesce((SELECT sum(refused_loads) FROM per), 0),
            'consignments', coalesce((SELECT sum(n) FROM per), 0)))
      INTO v_out;
    RETURN v_out;
END $$;

-- prtr_transfers (009's document) from consignment_day: kg per facility (origin), year,
-- hazardousness, R/D kind and basis. Only the transfers abroad are listed one by one, read from
-- consignment for the few (origin, receiver) pairs whose places lie in different countries. 009
-- and 104 built a jsonb object per consignment and grouped those (80 s for a year at 10 M
-- events). prtr_side sums what it is given: the summed rows give the same kg and method, and
-- the abroad rows carry no kind and no kg of their own.
CREATE OR REPLACE FUNCTION circa_report_prtr(p_tenant text, p_from timestamptz, p_to timestamptz,
                                             p_site text, p_party text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET jit = off
AS $$
DECLARE
    v_tz text;
    v_sites text[] := circa_report_scope_sites(p_tenant, p_site, p_party);
    a_origin text[]; a_receiver text[]; a_year int[]; a_haz boolean[]; a_kind text[];
    a_basis text[]; a_kg float8[];
    pl_code text[]; pl_place jsonb[];
    x_origin text[]; x_receiver text[];
    b_event text[]; b_origin text[]; b_receiver text[]; b_year int[]; b_haz boolean[];
    b_operation text[]; b_kg float8[]; b_basis text[];
    v_out jsonb;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    SELECT array_agg(x.origin), array_agg(x.receiver), array_agg(x.year), array_agg(x.haz),
           array_agg(x.kind), array_agg(x.basis), array_agg(x.kg)
      INTO a_origin, a_receiver, a_year, a_haz, a_kind, a_basis, a_kg
      FROM (SELECT r.origin, r.receiver, extract(year FROM r.day)::int AS year,
                   coalesce(w.hazardous, false) AS haz,
                   coalesce(left(nullif(r.operation, ''), 1), '?') AS kind,
                   nullif(r.basis, '') AS basis, sum(r.kg) AS kg
              FROM consignment_day r
              LEFT JOIN ewc w ON w.code = r.ewc
             WHERE r.tenant_id = p_tenant
               AND r.day >= (p_from AT TIME ZONE v_tz)::date
               AND r.day < (p_to AT TIME ZONE v_tz)::date
               AND (v_sites IS NULL OR r.origin = ANY (v_sites))
             GROUP BY 1, 2, 3, 4, 5, 6
            HAVING sum(r.n) > 0) x;
    -- The places of every origin and receiver, one circa_report_place call each.
    SELECT array_agg(c.code), array_agg(circa_report_place(p_tenant, c.code))
      INTO pl_code, pl_place
      FROM (SELECT unnest(a_origin) AS code UNION SELECT unnest(a_receiver)) c
     WHERE c.code <> '';
    SELECT array_agg(DISTINCT a.origin), array_agg(DISTINCT a.receiver) INTO x_origin, x_receiver
      FROM unnest(a_origin, a_receiver) AS a(origin, receiver)
      JOIN unnest(pl_code, pl_place) AS o(code, place) ON o.code = a.origin
      JOIN unnest(pl_code, pl_place) AS d(code, place) ON d.code = a.receiver
     WHERE o.place->>'country' <> d.place->>'country';
    IF x_origin IS NOT NULL THEN
        SELECT array_agg(c.event_id), array_agg(c.origin), array_agg(c.receiver),
               array_agg(extract(year FROM c.day)::int), array_agg(coalesce(w.hazardous, false)),
               array_agg(c.operation), array_agg(c.kg), array_agg(c.basis)
          INTO b_event, b_origin, b_receiver, b_year, b_haz, b_operation, b_kg, b_basis
          FROM consignment c
          LEFT JOIN ewc w ON w.code = c.ewc
         WHERE c.tenant_id = p_tenant AND c.valid_to IS NULL AND c.documented_by IS NULL
           AND c.event_time >= p_from AND c.event_time < p_to
           AND c.origin = ANY (x_origin) AND c.receiver = ANY (x_receiver);
    END IF;

    WITH pl AS (
        SELECT * FROM unnest(pl_code, pl_place) AS p(code, place)
    ), agg AS (
        SELECT * FROM unnest(a_origin, a_year, a_haz, a_kind, a_basis, a_kg)
                      AS a(origin, year, haz, kind, basis, kg)
    ), rows AS (
        SELECT origin, year, haz AS hazardous,
               jsonb_build_object('kind', kind, 'basis', basis, 'kg', kg) AS x
          FROM agg
        UNION ALL
        SELECT b.origin, b.year, b.haz, jsonb_build_object('event', b.event, 'abroad',
                   jsonb_build_object('event', b.event, 'receiver', b.receiver,
                       'name', coalesce(d.place->>'party_name', d.place->>'name'),
                       'site_name', d.place->>'name', 'address', d.place->'address',
                       'country', d.place->>'country', 'operation', b.operation,
                       'kg', b.kg, 'basis', b.basis))
          FROM unnest(b_event, b_origin, b_receiver, b_year, b_haz, b_operation, b_kg, b_basis)
               AS b(event, origin, receiver, year, haz, operation, kg, basis)
          JOIN pl o ON o.code = b.origin
          JOIN pl d ON d.code = b.receiver
         WHERE o.place->>'country' <> d.place->>'country'
    ), fac AS (
        SELECT origin, year FROM agg GROUP BY 1, 2
    )
    SELECT jsonb_build_object('facilities', coalesce(jsonb_agg(jsonb_build_object(
               'site', f.origin, 'name', pl.p->>'name', 'party', pl.p->>'party',
               'party_name', pl.p->>'party_name', 'country', pl.p->>'country', 'year', f.year,
               'hazardous', circa_report_prtr_side(coalesce((SELECT jsonb_agg(x) FROM rows r
                   WHERE r.origin = f.origin AND r.year = f.year AND r.hazardous), '[]'), 2000),
               'non_hazardous', circa_report_prtr_side(coalesce((SELECT jsonb_agg(x) FROM rows r
                   WHERE r.origin = f.origin AND r.year = f.year AND NOT r.hazardous), '[]'),
                   2000000)) ORDER BY f.origin, f.year), '[]'),
        'thresholds_kg', jsonb_build_object('hazardous', 2000, 'non_hazardous', 2000000))
      INTO v_out
      FROM fac f LEFT JOIN (SELECT code, place AS p FROM pl) pl ON pl.code = f.origin;
    RETURN v_out;
END $$;

-- GET /v1/reports/{id}/consignments: a page of a waste register's consignments as of the
-- report's block — the versions valid at it, from its scope's sites, on the days of its period —
-- in (day, event time, seq) order, after the consignment with seq p_after. NULL when there is
-- no such report; {"listed": false} for a report without a listing (another type, or a
-- register made before 120, which holds its consignments inline); {"bad_after": true} when
-- p_after is no consignment of the listing. Otherwise {"report", "block", "consignments":
-- [...], "next": seq of the last one when more follow, else null}.
CREATE FUNCTION circa_report_consignments(p_tenant text, p_id text, p_after bigint,
                                          p_limit integer) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r record;
    v_from date;
    v_to date;
    v_sites text[];
    a_day date;
    a_time timestamptz;
    v_rows jsonb;
    v_n integer;
    v_last bigint;
BEGIN
    SELECT type, block_seq, block_hash, body INTO r FROM report
     WHERE tenant_id = p_tenant AND id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF r.type <> 'waste_register'
       OR jsonb_typeof(r.body->'data'->'consignments') IS DISTINCT FROM 'object' THEN
        RETURN jsonb_build_object('listed', false, 'type', r.type);
    END IF;
    v_from := (r.body->'period'->>'from')::date;
    v_to := (r.body->'period'->>'to')::date;
    IF jsonb_typeof(r.body->'data'->'scope'->'sites') = 'array' THEN
        v_sites := ARRAY(SELECT jsonb_array_elements_text(r.body->'data'->'scope'->'sites'));
    END IF;
    IF p_after IS NOT NULL THEN
        SELECT c.day, c.event_time INTO a_day, a_time
          FROM event e JOIN consignment c ON c.tenant_id = p_tenant AND c.event_id = e.id
         WHERE e.tenant_id = p_tenant AND e.seq = p_after
           AND c.valid_from <= r.block_seq AND (c.valid_to IS NULL OR c.valid_to > r.block_seq);
        IF NOT FOUND THEN
            RETURN jsonb_build_object('bad_after', true);
        END IF;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event', p.event_id, 'seq', p.seq, 'type', p.type, 'time', p.time,
               'from_site', p.origin, 'receiver', p.receiver, 'material', p.material,
               'lot', p.lot, 'ewc', p.ewc, 'hazardous', coalesce(w.hazardous, false),
               'kg', p.kg, 'basis', p.basis, 'operation', p.operation,
               'operation_from', p.operation_from, 'document', p.document,
               'carrier', p.carrier, 'transport', p.transport, 'packaging', p.packaging,
               'receipt', p.receipt, 'receipt_time', p.receipt_time,
               'acceptance', p.acceptance, 'received_kg', p.received_kg,
               'refused_kg', p.refused_kg) ORDER BY p.k)
                    FILTER (WHERE p.k <= p_limit), '[]'),
           count(*), max(p.seq) FILTER (WHERE p.k = p_limit)
      INTO v_rows, v_n, v_last
      FROM (SELECT c.*, row_number() OVER (ORDER BY c.day, c.event_time, c.seq) AS k
              FROM (SELECT * FROM consignment c
                     WHERE c.tenant_id = p_tenant AND c.day >= v_from AND c.day < v_to
                       AND (p_after IS NULL
                            OR (c.day, c.event_time, c.seq) > (a_day, a_time, p_after))
                       AND c.valid_from <= r.block_seq
                       AND (c.valid_to IS NULL OR c.valid_to > r.block_seq)
                       AND c.documented_by IS NULL AND c.origin IS NOT NULL
                       AND (v_sites IS NULL OR c.origin = ANY (v_sites))
                     ORDER BY c.day, c.event_time, c.seq
                     LIMIT p_limit + 1) c) p
      LEFT JOIN ewc w ON w.code = p.ewc;
    RETURN jsonb_build_object(
        'report', p_id, 'block', jsonb_build_object('seq', r.block_seq, 'hash', r.block_hash),
        'consignments', v_rows, 'next', CASE WHEN v_n > p_limit THEN v_last END);
END $$;

-- 020's partial index served only its circa_report_transfers; nothing reads it any more, and
-- every shipped, collected and received event paid for it at ingest.
DROP INDEX IF EXISTS event_flow_time;

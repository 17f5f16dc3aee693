-- Reports and schedules on Citus (docs/SCALING.md).
--
-- Everywhere: circa_schedule_get(tenant, id), the schedule as GET /v1/schedules/{id} shows it
-- (0 rows: no such schedule). circad's statement passed the whole row to circa_schedule_json
-- (SELECT circa_schedule_json(s) FROM schedule s …); Citus ships that statement to the tenant's
-- shard, where the row is of the shard's type ("function circa_schedule_json(schedule_102658)
-- does not exist"). Here the row is read into a schedule variable first, as 101 does for the list.
--
-- With citus only (plain PostgreSQL keeps 009/020's functions, answers unchanged): the report
-- functions called circa_report_in_scope, circa_report_place, circa_kg, circa_report_events or
-- circa_report_transfers (each reads site, party, material or event) inside a statement that
-- Citus runs on the tenant's shard; there a function reading a distributed table is a nested
-- distributed query ("cannot execute a distributed query from a query on a shard", POST
-- /v1/reports answered 500). Each is now plpgsql that reads first and works on what it read:
--   * scope: the party's sites read into an array once; in scope means the same as
--     circa_report_in_scope (code not null, = p_site when given, one of the party's sites);
--   * circa_report_transfers: the refused mass of a partial refusal (circa_kg) is computed per
--     row in plpgsql after the statement; the statement is 020's otherwise;
--   * waste_register, prtr_transfers: the transfers are read into a circa_report_transfer_row[]
--     and the places (circa_report_place) of their codes into arrays, then 020/009's
--     statement runs over unnest() of them;
--   * recovery_certificate: the generator's and the receiving sites, and the two places, are
--     read first; 009's statement reads event directly instead of circa_report_events.
-- circularity_summary works on Citus as it is (circa_metrics and circa_flows read first).
-- circa_delivery_record computes its times before its UPDATE, and circa_delivery_list reads
-- the deliveries before their attempts (see below).

CREATE OR REPLACE FUNCTION circa_schedule_get(p_tenant text, p_id text) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s schedule;
BEGIN
    SELECT * INTO s FROM schedule x WHERE x.tenant_id = p_tenant AND x.id = p_id AND x.deleted IS NULL;
    IF FOUND THEN
        RETURN NEXT circa_schedule_json(s);
    END IF;
END $$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    IF NOT EXISTS (SELECT 1 FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass
                      AND o.objid = 'circa_schedule_get(text,text)'::regprocedure) THEN
        PERFORM create_distributed_function('circa_schedule_get(text,text)', '$1',
                                            colocate_with => 'event');
    END IF;

    -- One row of circa_report_transfers.
    CREATE TYPE circa_report_transfer_row AS (
        id text, event_time timestamptz, type text, origin text, receiver text, ewc text,
        hazardous boolean, material text, lot text, kg double precision, operation text,
        operation_from text, basis text, document text, carrier text, transport jsonb,
        packaging jsonb, acceptance text, refused_kg double precision);

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_report_transfers(p_tenant text, p_from timestamptz,
                                                  p_to timestamptz, p_site text, p_party text)
RETURNS TABLE (id text, event_time timestamptz, type text, origin text, receiver text,
               ewc text, hazardous boolean, material text, lot text, kg double precision,
               operation text, operation_from text, basis text, document text, carrier text,
               transport jsonb, packaging jsonb, acceptance text, refused_kg double precision)
LANGUAGE plpgsql STABLE
SET enable_nestloop = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_sites text[];   -- the party's sites (p_party given)
    r record;
BEGIN
    IF p_party IS NOT NULL THEN
        v_sites := ARRAY(SELECT s.code FROM site s WHERE s.tenant_id = p_tenant AND s.party = p_party);
    END IF;
    FOR r IN
    WITH ev AS MATERIALIZED (
        SELECT e.id, e.seq, e.type, e.event_time, e.site, e.from_site, e.to_site, e.material,
               nullif(e.ewc, '') AS ewc, nullif(e.operation, '') AS operation, e.quantity_kg,
               e.lot, convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM event e
         WHERE e.tenant_id = p_tenant AND e.event_time >= p_from AND e.event_time < p_to
           AND e.type IN ('shipped', 'collected', 'received')
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = e.id)
    ), ship AS MATERIALIZED (
        SELECT e.*, e.site AS origin, e.to_site AS receiver, e.doc->>'document' AS document
          FROM ev e
         WHERE e.type = 'shipped' AND e.site IS NOT NULL AND (p_site IS NULL OR e.site = p_site)
           AND (p_party IS NULL OR e.site = ANY (v_sites))
    ), coll AS (
        SELECT e.*, e.from_site AS origin, e.site AS receiver, e.doc->>'document' AS document
          FROM ev e
         WHERE e.type = 'collected'
           AND e.from_site IS NOT NULL AND (p_site IS NULL OR e.from_site = p_site)
           AND (p_party IS NULL OR e.from_site = ANY (v_sites))
           AND NOT EXISTS (SELECT 1 FROM ship s WHERE s.receiver = e.site
                            AND s.origin = e.from_site AND s.document = e.doc->>'document')
           AND NOT EXISTS (SELECT 1 FROM ship s WHERE s.receiver = e.site
                            AND s.origin = e.from_site AND s.lot = e.lot)
    ), t AS MATERIALIZED (
        SELECT * FROM ship UNION ALL SELECT * FROM coll
    ), rcv AS MATERIALIZED (
        SELECT r.seq, r.site, r.from_site, r.lot, r.operation, r.quantity_kg, r.material,
               r.doc->>'document' AS document, r.doc->>'acceptance' AS acceptance,
               r.doc->'refused_quantity' AS refused_quantity
          FROM ev r WHERE r.type = 'received'
    ), rc AS (
        SELECT DISTINCT ON (m.tid) m.* FROM (
            SELECT t.id AS tid, r.* FROM t JOIN rcv r ON r.site = t.receiver
               AND r.from_site = t.origin AND r.document = t.document
             WHERE t.type = 'shipped'
            UNION ALL
            SELECT t.id AS tid, r.* FROM t JOIN rcv r ON r.site = t.receiver
               AND r.from_site = t.origin AND r.lot = t.lot
             WHERE t.type = 'shipped') m
         ORDER BY m.tid, m.seq
    ), tc AS (
        SELECT t.*, coalesce(t.ewc, (SELECT nullif(g.ewc, '') FROM event g
                                      WHERE g.tenant_id = p_tenant AND g.lot = t.lot
                                        AND g.type = 'waste_generated'
                                        AND g.event_time >= p_from AND g.event_time < p_to
                                        AND NOT EXISTS (SELECT 1 FROM correction c
                                                         WHERE c.tenant_id = p_tenant
                                                           AND c.corrected = g.id)
                                      ORDER BY g.seq LIMIT 1)) AS code
          FROM t
    )
    SELECT t.id AS r_id, t.event_time AS r_time, t.type AS r_type, t.origin AS r_origin,
           t.receiver AS r_receiver, t.code AS r_code,
           coalesce(w.hazardous, false) AS r_hazardous, t.material AS r_material,
           t.lot AS r_lot, t.quantity_kg AS r_kg,
           coalesce(t.doc->>'planned_operation', rc.operation, tr.operation) AS r_operation,
           CASE WHEN t.doc ? 'planned_operation' THEN 'planned_operation'
                WHEN rc.operation IS NOT NULL THEN 'receipt'
                WHEN tr.operation IS NOT NULL THEN 'treatment' END AS r_operation_from,
           t.doc->'quantity'->>'basis' AS r_basis, t.document AS r_document,
           t.doc->>'carrier' AS r_carrier, t.doc->'transport' AS r_transport,
           t.doc->'packaging' AS r_packaging, rc.acceptance AS r_acceptance,
           rc.quantity_kg AS rc_kg, rc.refused_quantity AS rc_refused, rc.material AS rc_material
      FROM tc t
      LEFT JOIN rc ON rc.tid = t.id
      LEFT JOIN LATERAL (
          SELECT x.operation FROM event x
           WHERE (t.doc->>'planned_operation') IS NULL AND rc.operation IS NULL
             AND x.tenant_id = p_tenant AND x.lot = t.lot AND x.site = t.receiver
             AND x.type IN ('recycled', 'energy_recovered', 'disposed')
             AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                              AND c.corrected = x.id)
           ORDER BY x.seq LIMIT 1) tr ON true
      LEFT JOIN ewc w ON w.code = t.code
    LOOP
        id := r.r_id; event_time := r.r_time; type := r.r_type; origin := r.r_origin;
        receiver := r.r_receiver; ewc := r.r_code; hazardous := r.r_hazardous;
        material := r.r_material; lot := r.r_lot; kg := r.r_kg; operation := r.r_operation;
        operation_from := r.r_operation_from; basis := r.r_basis; document := r.r_document;
        carrier := r.r_carrier; transport := r.r_transport; packaging := r.r_packaging;
        acceptance := r.r_acceptance;
        -- circa_kg reads material and unit: called here, not inside the statement.
        refused_kg := CASE WHEN r.r_acceptance = 'refused' THEN r.rc_kg
                           WHEN r.r_acceptance = 'partial'
                           THEN circa_kg(p_tenant, r.rc_refused, r.rc_material)
                           WHEN r.r_acceptance = 'accepted' THEN 0 END;
        RETURN NEXT;
    END LOOP;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_report_waste_register(p_tenant text, p_from timestamptz,
                                                       p_to timestamptz, p_site text,
                                                       p_party text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    v_sites text[];
    g_ewc text[]; g_kg float8[]; g_n bigint[];
    v_tr circa_report_transfer_row[];
    n_code text[]; n_name text[];
    v_out jsonb;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF p_party IS NOT NULL THEN
        v_sites := ARRAY(SELECT s.code FROM site s WHERE s.tenant_id = p_tenant AND s.party = p_party);
    END IF;
    -- kg generated per EWC code in scope, from the roll-ups (a router query).
    SELECT array_agg(x.ewc), array_agg(x.kg), array_agg(x.n) INTO g_ewc, g_kg, g_n
      FROM (SELECT r.ewc, sum(r.kg) AS kg, sum(r.events)::bigint AS n
              FROM rollup_day r
             WHERE r.tenant_id = p_tenant AND r.type = 'waste_generated'
               AND r.day >= (p_from AT TIME ZONE v_tz)::date
               AND r.day < (p_to AT TIME ZONE v_tz)::date
               AND nullif(r.site, '') IS NOT NULL AND (p_site IS NULL OR nullif(r.site, '') = p_site)
               AND (p_party IS NULL OR nullif(r.site, '') = ANY (v_sites))
             GROUP BY 1
            HAVING sum(r.events) > 0) x;
    v_tr := ARRAY(SELECT ROW(t.*)::circa_report_transfer_row
                    FROM circa_report_transfers(p_tenant, p_from, p_to, p_site, p_party) t);
    -- The receivers' names (circa_report_place reads site and party), one call per receiver.
    SELECT array_agg(d.receiver), array_agg(circa_report_place(p_tenant, d.receiver)->>'name')
      INTO n_code, n_name
      FROM (SELECT DISTINCT x.receiver FROM unnest(v_tr) x WHERE x.receiver IS NOT NULL) d;

    WITH gen AS (
        SELECT * FROM unnest(g_ewc, g_kg, g_n) AS g(ewc, kg, n)
    ), tr AS MATERIALIZED (
        SELECT t.*, coalesce(t.ewc, '') AS code FROM unnest(v_tr) t
    ), per AS (
        SELECT tr.code, sum(tr.kg) AS kg, sum(tr.refused_kg) AS refused_kg, count(*) AS n,
               jsonb_agg(jsonb_build_object('event', tr.id, 'type', tr.type,
                           'time', tr.event_time, 'from_site', tr.origin,
                           'receiver', tr.receiver, 'material', tr.material, 'lot', tr.lot,
                           'kg', tr.kg, 'basis', tr.basis, 'operation', tr.operation,
                           'operation_from', tr.operation_from, 'document', tr.document,
                           'carrier', tr.carrier, 'transport', tr.transport,
                           'packaging', tr.packaging, 'acceptance', tr.acceptance,
                           'refused_kg', tr.refused_kg) ORDER BY tr.event_time, tr.id) AS cons
          FROM tr GROUP BY 1
    ), dest AS (
        SELECT d.code, jsonb_agg(jsonb_build_object('receiver', d.receiver,
                           'receiver_name', nm.name,
                           'operation', d.operation, 'kg', d.kg, 'consignments', d.n)
                                 ORDER BY d.receiver, d.operation) AS j
          FROM (SELECT code, receiver, operation, sum(kg) AS kg, count(*) AS n FROM tr
                 GROUP BY 1, 2, 3) d
          LEFT JOIN unnest(n_code, n_name) AS nm(code, name) ON nm.code = d.receiver
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
            'destinations', coalesce(d.j, '[]'),
            'consignments', coalesce(p.cons, '[]')) AS j,
            coalesce(w.hazardous, false) AS hazardous, coalesce(g.kg, 0) AS generated_kg
          FROM codes c
          LEFT JOIN gen g ON g.ewc = c.code
          LEFT JOIN per p ON p.code = c.code
          LEFT JOIN dest d ON d.code = c.code
          LEFT JOIN ewc w ON w.code = c.code
    )
    SELECT jsonb_build_object(
        'entries', coalesce((SELECT jsonb_agg(j ORDER BY code) FROM entry), '[]'),
        'totals', jsonb_build_object(
            'generated_kg', coalesce((SELECT sum(kg) FROM gen), 0),
            'hazardous_generated_kg', coalesce((SELECT sum(generated_kg) FROM entry
                                                 WHERE hazardous), 0),
            'sent_off_site_kg', coalesce((SELECT sum(kg) FROM tr), 0),
            'consignments', (SELECT count(*) FROM tr)))
      INTO v_out;
    RETURN v_out;
END $$;
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_report_prtr(p_tenant text, p_from timestamptz, p_to timestamptz,
                                             p_site text, p_party text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    v_tr circa_report_transfer_row[] := '{}';
    pl_code text[]; pl_place jsonb[];
    v_out jsonb;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    IF FOUND THEN
        v_tr := ARRAY(SELECT ROW(t.*)::circa_report_transfer_row
                        FROM circa_report_transfers(p_tenant, p_from, p_to, p_site, p_party) t);
    END IF;
    -- The places of every origin and receiver, one circa_report_place call each. A NULL code
    -- is left out: its place (kind unknown) has only NULL members, as a missing one reads.
    SELECT array_agg(c.code), array_agg(circa_report_place(p_tenant, c.code))
      INTO pl_code, pl_place
      FROM (SELECT x.origin AS code FROM unnest(v_tr) x UNION SELECT x.receiver FROM unnest(v_tr) x) c
     WHERE c.code IS NOT NULL;

    WITH pl AS (
        SELECT * FROM unnest(pl_code, pl_place) AS p(code, place)
    ), tr AS (
        SELECT t.*, extract(year FROM t.event_time AT TIME ZONE v_tz)::int AS year,
               o.place AS o, d.place AS d
          FROM unnest(v_tr) t
          LEFT JOIN pl o ON o.code = t.origin
          LEFT JOIN pl d ON d.code = t.receiver
    ), rows AS (
        SELECT tr.origin, tr.year, tr.hazardous, jsonb_build_object(
                   'event', tr.id, 'kg', tr.kg, 'basis', tr.basis,
                   'kind', coalesce(left(tr.operation, 1), '?'),
                   'abroad', CASE WHEN tr.d->>'country' IS DISTINCT FROM tr.o->>'country'
                                   AND tr.d->>'country' IS NOT NULL AND tr.o->>'country' IS NOT NULL
                              THEN jsonb_build_object('event', tr.id, 'receiver', tr.receiver,
                                       'name', coalesce(tr.d->>'party_name', tr.d->>'name'),
                                       'site_name', tr.d->>'name', 'address', tr.d->'address',
                                       'country', tr.d->>'country', 'operation', tr.operation,
                                       'kg', tr.kg, 'basis', tr.basis) END) AS x
          FROM tr
    ), fac AS (
        SELECT origin, year FROM rows GROUP BY 1, 2
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
$f$;

    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_report_recovery(p_tenant text, p_from timestamptz,
                                                 p_to timestamptz, p_generator text,
                                                 p_recycler text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_gen_sites text[];   -- the generator's sites
    v_dest text[];        -- sites of another party (the recycler's, when given)
    v_gen jsonb;
    v_rec jsonb;
    v_out jsonb;
BEGIN
    v_gen_sites := ARRAY(SELECT s.code FROM site s
                          WHERE s.tenant_id = p_tenant AND s.party = p_generator);
    v_dest := ARRAY(SELECT s.code FROM site s
                     WHERE s.tenant_id = p_tenant AND s.party <> p_generator
                       AND (p_recycler IS NULL OR s.party = p_recycler));
    v_gen := circa_report_place(p_tenant, p_generator);
    IF p_recycler IS NOT NULL THEN
        v_rec := circa_report_place(p_tenant, p_recycler);
    END IF;

    WITH RECURSIVE rcpt AS (
        SELECT e.id, e.seq, e.type, e.event_time, e.site, e.from_site, e.to_site, e.material,
               nullif(e.ewc, '') AS ewc, nullif(e.operation, '') AS operation, e.quantity_kg,
               e.lot, convert_from(e.canon, 'UTF8')::jsonb AS doc
          FROM event e
         WHERE e.tenant_id = p_tenant AND e.event_time >= p_from AND e.event_time < p_to
           AND e.type IN ('received', 'collected')
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = e.id)
           AND (e.from_site = p_generator OR e.from_site = ANY (v_gen_sites))
           AND e.site = ANY (v_dest)
    ), walk(root, rtime, lot, share, depth, path) AS (
        SELECT r.id, r.event_time, r.lot, 1::float8, 0, ARRAY[r.lot]
          FROM rcpt r WHERE r.lot IS NOT NULL
        UNION ALL
        SELECT w.root, w.rtime, l.output_lot, w.share * l.share, w.depth + 1, w.path || l.output_lot
          FROM walk w JOIN lot_link l ON l.tenant_id = p_tenant AND l.input_lot = w.lot
         WHERE w.depth < 16 AND NOT l.output_lot = ANY (w.path)
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = l.event_id)
    ), ops AS (
        SELECT w.root, x.id, x.type, x.site, x.event_time, x.operation, x.lot, w.path,
               x.quantity_kg * w.share AS kg, o.category,
               o.category IN ('interim', 'pretreatment') AS interim
          FROM walk w
          JOIN event x ON x.tenant_id = p_tenant AND x.lot = w.lot
          JOIN rd_operation o ON o.code = x.operation
         WHERE x.event_time >= w.rtime AND x.id <> w.root
           AND x.type NOT IN ('corrected', 'measured', 'observed')
           AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                            AND c.corrected = x.id)
    ), per AS (
        SELECT r.id, r.event_time, jsonb_build_object(
                   'event', r.id, 'type', r.type, 'time', r.event_time, 'from_site', r.from_site,
                   'site', r.site, 'material', r.material, 'ewc', r.ewc, 'lot', r.lot,
                   'kg', r.quantity_kg, 'basis', r.doc->'quantity'->>'basis',
                   'document', r.doc->>'document', 'acceptance', r.doc->>'acceptance',
                   'operations', coalesce((SELECT jsonb_agg(jsonb_build_object(
                           'event', o.id, 'type', o.type, 'site', o.site, 'time', o.event_time,
                           'operation', o.operation, 'category', o.category, 'lot', o.lot,
                           'via', to_jsonb(o.path), 'kg', o.kg, 'interim', o.interim)
                                    ORDER BY o.event_time, o.id)
                      FROM ops o WHERE o.root = r.id), '[]')) AS j
          FROM rcpt r
    ), fin AS (
        SELECT operation, sum(kg) AS kg FROM ops WHERE NOT interim GROUP BY 1
    ), itm AS (
        SELECT operation, sum(kg) AS kg FROM ops WHERE interim GROUP BY 1
    )
    SELECT jsonb_build_object(
        'generator', v_gen,
        'recycler', v_rec,
        'receipts', coalesce((SELECT jsonb_agg(j ORDER BY event_time, id) FROM per), '[]'),
        'totals', jsonb_build_object(
            'received_kg', coalesce((SELECT sum(quantity_kg) FROM rcpt), 0),
            'untracked_kg', coalesce((SELECT sum(quantity_kg) FROM rcpt WHERE lot IS NULL), 0),
            'recovered_kg', coalesce((SELECT sum(kg) FROM fin WHERE operation LIKE 'R%'), 0),
            'disposed_kg', coalesce((SELECT sum(kg) FROM fin WHERE operation LIKE 'D%'), 0),
            'by_operation', coalesce((SELECT jsonb_object_agg(operation, kg) FROM fin), '{}'),
            'interim_by_operation', coalesce((SELECT jsonb_object_agg(operation, kg) FROM itm), '{}')))
      INTO v_out;
    RETURN v_out;
END $$;
$f$;

    -- The outcome's times in variables first: Citus refuses now() inside a CASE of an UPDATE
    -- ("non-IMMUTABLE functions are not allowed in CASE or COALESCE statements"), so no
    -- delivery was ever recorded. now() is the transaction's time: the same values as 017's.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_delivery_record(p_tenant text, p_id text, p_owner text,
                                                 p_attempt int, p_started_ms double precision,
                                                 p_duration_ms double precision, p_status int,
                                                 p_error text, p_state text, p_retry_ms bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_next timestamptz := CASE WHEN p_state = 'RETRY_WAIT'
                               THEN now() + p_retry_ms * interval '1 millisecond' END;
    v_finished timestamptz := CASE WHEN p_state IN ('DELIVERED', 'GAVE_UP') THEN now() END;
BEGIN
    UPDATE delivery
       SET state = p_state, claimed_by = NULL, lease_until = NULL, last_error = p_error,
           next_attempt = v_next, finished = v_finished
     WHERE tenant_id = p_tenant AND id = p_id AND state = 'SENDING' AND claimed_by = p_owner
       AND attempts = p_attempt
       AND p_state IN ('DELIVERED', 'RETRY_WAIT', 'GAVE_UP');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO delivery_attempt (tenant_id, delivery_id, attempt, started, duration_ms,
                                  status_code, error, made_by)
    VALUES (p_tenant, p_id, p_attempt, to_timestamp(p_started_ms / 1000), p_duration_ms,
            p_status, p_error, p_owner);
    RETURN true;
END $$;
$f$;

    -- GET /v1/deliveries: 017's statement (a correlated subquery for the attempts over a
    -- LIMITed subquery) is refused by Citus ("correlated subqueries are not supported when the
    -- FROM clause contains a CTE or subquery"). The deliveries are read first, then each one's
    -- attempts; the same document.
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_delivery_list(p_tenant text, p_schedule text, p_status text,
                                               p_limit int) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    d record;
    v_log jsonb;
    v jsonb := '[]';
BEGIN
    FOR d IN SELECT * FROM delivery x
              WHERE x.tenant_id = p_tenant AND (p_schedule IS NULL OR x.schedule_id = p_schedule)
                AND (p_status IS NULL OR x.state = upper(p_status))
              ORDER BY x.created DESC, x.id LIMIT p_limit LOOP
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'attempt', a.attempt, 'started', a.started, 'status_code', a.status_code,
                   'error', a.error, 'duration_ms', a.duration_ms) ORDER BY a.attempt), '[]')
          INTO v_log
          FROM delivery_attempt a WHERE a.tenant_id = p_tenant AND a.delivery_id = d.id;
        v := v || jsonb_build_array(jsonb_build_object(
               'id', d.id, 'schedule', d.schedule_id, 'report', d.report_id,
               'period', jsonb_build_object('from', d.period_from, 'to', d.period_to),
               'status', lower(d.state), 'attempts', d.attempts, 'created', d.created,
               'next_attempt', d.next_attempt, 'finished', d.finished,
               'last_error', d.last_error, 'attempt_log', v_log));
    END LOOP;
    RETURN jsonb_build_object('deliveries', v);
END $$;
$f$;
END
$do$;

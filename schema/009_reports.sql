-- Regulatory and circularity reports (docs/REPORTS.md): the data each report type reads from the
-- ledger, and the stored, immutable reports. circa_report_data answers one jsonb document from
-- one snapshot (STABLE functions share their caller's snapshot), so the block it names is the
-- head the data was read at. Corrected events are left out (their replacements are events of
-- their own), and so are the corrections themselves.

-- Stored reports. canon holds the exact RFC 8785 bytes whose SHA-256 is sha256 (served as
-- .json); csv and html are rendered once, when the report is made, and served as stored.
CREATE TABLE report (
    tenant_id   text NOT NULL REFERENCES tenant (id),
    id          text NOT NULL,
    type        text NOT NULL CHECK (type IN ('waste_register', 'prtr_transfers',
                                              'circularity_summary', 'recovery_certificate')),
    params      jsonb NOT NULL,
    period_from date NOT NULL,
    period_to   date NOT NULL,
    created     timestamptz NOT NULL,
    block_seq   bigint NOT NULL,
    block_hash  text NOT NULL,
    sha256      text NOT NULL,
    canon       text NOT NULL,
    body        jsonb NOT NULL,
    csv         text NOT NULL,
    html        text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX report_created ON report (tenant_id, created DESC);

-- Reports are immutable: once stored, a row is never changed or removed.
CREATE FUNCTION circa_report_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'report % is immutable', OLD.id USING ERRCODE = 'CA402';
END $$;
CREATE TRIGGER report_immutable BEFORE UPDATE OR DELETE ON report
    FOR EACH ROW EXECUTE FUNCTION circa_report_immutable();

CREATE INDEX IF NOT EXISTS event_time ON event (tenant_id, event_time);

-- The tenant's flow events in [from, to) as they stand after corrections, with their
-- canonical document (where documents, transport legs, packaging and basis live).
CREATE FUNCTION circa_report_events(p_tenant text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (id text, seq bigint, type text, event_time timestamptz, site text,
               from_site text, to_site text, material text, ewc text, operation text,
               quantity_kg double precision, lot text, doc jsonb)
LANGUAGE sql STABLE AS $$
    SELECT e.id, e.seq, e.type, e.event_time, e.site, e.from_site, e.to_site, e.material,
           nullif(e.ewc, ''), nullif(e.operation, ''), e.quantity_kg, e.lot,
           convert_from(e.canon, 'UTF8')::jsonb
      FROM event e
     WHERE e.tenant_id = p_tenant AND e.event_time >= p_from AND e.event_time < p_to
       AND e.type NOT IN ('corrected', 'measured', 'observed')
       AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                        AND c.corrected = e.id)
$$;

-- Is a site (or party code) in the scope of a report: the site asked for, the party's sites.
CREATE FUNCTION circa_report_in_scope(p_tenant text, p_site text, p_party text, p_code text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT p_code IS NOT NULL AND (p_site IS NULL OR p_code = p_site)
       AND (p_party IS NULL OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                                        AND s.code = p_code AND s.party = p_party))
$$;

-- Who a code names: a site (with its party) or an external party; name, country, address.
CREATE FUNCTION circa_report_place(p_tenant text, p_code text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT jsonb_build_object('code', s.code, 'kind', 'site', 'name', s.name,
                    'party', s.party, 'party_name', p.name,
                    'country', coalesce(s.country, p.country),
                    'address', coalesce(s.doc->'address', p.doc->'address'))
           FROM site s JOIN party p ON p.tenant_id = s.tenant_id AND p.code = s.party
          WHERE s.tenant_id = p_tenant AND s.code = p_code),
        (SELECT jsonb_build_object('code', p.code, 'kind', 'party', 'name', p.name,
                    'party', p.code, 'party_name', p.name, 'country', p.country,
                    'address', p.doc->'address')
           FROM party p WHERE p.tenant_id = p_tenant AND p.code = p_code),
        jsonb_build_object('code', p_code, 'kind', 'unknown', 'name', NULL, 'party', NULL,
                           'party_name', NULL, 'country', NULL, 'address', NULL))
$$;

-- Waste sent off-site from in-scope sites in [from, to): every shipped event, and every
-- collection naming an in-scope sender that no such shipment already documents (same
-- receiver and same document or lot). The operation is the planned_operation, else the one the
-- receiver declared on its receipt (same sender and document or lot), else the one it applied
-- to the lot. The receipt gives acceptance and refused mass.
CREATE FUNCTION circa_report_transfers(p_tenant text, p_from timestamptz, p_to timestamptz,
                                       p_site text, p_party text)
RETURNS TABLE (id text, event_time timestamptz, type text, origin text, receiver text,
               ewc text, hazardous boolean, material text, lot text, kg double precision,
               operation text, operation_from text, basis text, document text, carrier text,
               transport jsonb, packaging jsonb, acceptance text, refused_kg double precision)
LANGUAGE sql STABLE AS $$
    WITH ev AS (
        SELECT * FROM circa_report_events(p_tenant, p_from, p_to)
    ), ship AS (
        SELECT e.*, e.site AS origin, e.to_site AS receiver FROM ev e
         WHERE e.type = 'shipped' AND circa_report_in_scope(p_tenant, p_site, p_party, e.site)
    ), coll AS (
        SELECT e.*, e.from_site AS origin, e.site AS receiver FROM ev e
         WHERE e.type = 'collected'
           AND circa_report_in_scope(p_tenant, p_site, p_party, e.from_site)
           AND NOT EXISTS (SELECT 1 FROM ship s WHERE s.receiver = e.site AND s.origin = e.from_site
                            AND (s.doc->>'document' = e.doc->>'document' OR s.lot = e.lot))
    ), t AS (
        SELECT * FROM ship UNION ALL SELECT * FROM coll
    )
    SELECT t.id, t.event_time, t.type, t.origin, t.receiver,
           coalesce(t.ewc, (SELECT g.ewc FROM ev g WHERE g.type = 'waste_generated'
                             AND g.lot = t.lot ORDER BY g.seq LIMIT 1)),
           coalesce(w.hazardous, false), t.material, t.lot, t.quantity_kg,
           coalesce(t.doc->>'planned_operation', rc.operation, tr.operation),
           CASE WHEN t.doc ? 'planned_operation' THEN 'planned_operation'
                WHEN rc.operation IS NOT NULL THEN 'receipt'
                WHEN tr.operation IS NOT NULL THEN 'treatment' END,
           t.doc->'quantity'->>'basis', t.doc->>'document', t.doc->>'carrier',
           t.doc->'transport', t.doc->'packaging', rc.doc->>'acceptance',
           CASE rc.doc->>'acceptance'
                WHEN 'refused' THEN rc.quantity_kg
                WHEN 'partial' THEN circa_kg(p_tenant, rc.doc->'refused_quantity', rc.material)
                WHEN 'accepted' THEN 0 END
      FROM t
      LEFT JOIN LATERAL (
          SELECT r.operation, r.quantity_kg, r.material, r.doc FROM ev r
           WHERE t.type = 'shipped' AND r.type = 'received' AND r.site = t.receiver
             AND r.from_site = t.origin
             AND (r.doc->>'document' = t.doc->>'document' OR r.lot = t.lot)
           ORDER BY r.seq LIMIT 1) rc ON true
      LEFT JOIN LATERAL (
          SELECT x.operation FROM event x
           WHERE x.tenant_id = p_tenant AND x.lot = t.lot AND x.site = t.receiver
             AND x.type IN ('recycled', 'energy_recovered', 'disposed')
             AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                              AND c.corrected = x.id)
           ORDER BY x.seq LIMIT 1) tr ON true
      LEFT JOIN ewc w ON w.code = coalesce(t.ewc, (SELECT g.ewc FROM ev g
                                                    WHERE g.type = 'waste_generated'
                                                      AND g.lot = t.lot ORDER BY g.seq LIMIT 1))
$$;

-- waste_register: per EWC code the mass generated in scope and the mass sent off-site, per
-- receiver and operation, with every consignment (document, carrier, legs, packaging,
-- acceptance).
CREATE FUNCTION circa_report_waste_register(p_tenant text, p_from timestamptz,
                                            p_to timestamptz, p_site text, p_party text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH gen AS (
        SELECT coalesce(e.ewc, '') AS ewc, sum(e.quantity_kg) AS kg, count(*) AS n
          FROM circa_report_events(p_tenant, p_from, p_to) e
         WHERE e.type = 'waste_generated'
           AND circa_report_in_scope(p_tenant, p_site, p_party, e.site)
         GROUP BY 1
    ), tr AS (
        SELECT t.*, coalesce(t.ewc, '') AS code
          FROM circa_report_transfers(p_tenant, p_from, p_to, p_site, p_party) t
    ), codes AS (
        SELECT ewc AS code FROM gen UNION SELECT code FROM tr
    ), entry AS (
        SELECT c.code, jsonb_build_object(
            'ewc', nullif(c.code, ''), 'description', w.description,
            'hazardous', coalesce(w.hazardous, false),
            'generated_kg', coalesce(g.kg, 0), 'generated_events', coalesce(g.n, 0),
            'sent_off_site_kg', coalesce((SELECT sum(kg) FROM tr WHERE tr.code = c.code), 0),
            'refused_kg', coalesce((SELECT sum(refused_kg) FROM tr WHERE tr.code = c.code), 0),
            'destinations', coalesce((
                SELECT jsonb_agg(jsonb_build_object('receiver', d.receiver,
                           'receiver_name', circa_report_place(p_tenant, d.receiver)->>'name',
                           'operation', d.operation, 'kg', d.kg, 'consignments', d.n)
                                 ORDER BY d.receiver, d.operation)
                  FROM (SELECT receiver, operation, sum(kg) AS kg, count(*) AS n FROM tr
                         WHERE tr.code = c.code GROUP BY 1, 2) d), '[]'),
            'consignments', coalesce((
                SELECT jsonb_agg(jsonb_build_object('event', tr.id, 'type', tr.type,
                           'time', tr.event_time, 'from_site', tr.origin,
                           'receiver', tr.receiver, 'material', tr.material, 'lot', tr.lot,
                           'kg', tr.kg, 'basis', tr.basis, 'operation', tr.operation,
                           'operation_from', tr.operation_from, 'document', tr.document,
                           'carrier', tr.carrier, 'transport', tr.transport,
                           'packaging', tr.packaging, 'acceptance', tr.acceptance,
                           'refused_kg', tr.refused_kg) ORDER BY tr.event_time, tr.id)
                  FROM tr WHERE tr.code = c.code), '[]')) AS j
          FROM codes c
          LEFT JOIN gen g ON g.ewc = c.code
          LEFT JOIN ewc w ON w.code = c.code
    )
    SELECT jsonb_build_object(
        'entries', coalesce((SELECT jsonb_agg(j ORDER BY code) FROM entry), '[]'),
        'totals', jsonb_build_object(
            'generated_kg', coalesce((SELECT sum(kg) FROM gen), 0),
            'hazardous_generated_kg', coalesce((SELECT sum((j->>'generated_kg')::float8)
                                                  FROM entry WHERE (j->>'hazardous')::boolean), 0),
            'sent_off_site_kg', coalesce((SELECT sum(kg) FROM tr), 0),
            'consignments', (SELECT count(*) FROM tr)))
$$;

-- One side (hazardous or not) of a facility-year of E-PRTR off-site transfers.
CREATE FUNCTION circa_report_prtr_side(p_rows jsonb, p_threshold_kg double precision)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    WITH r AS (
        SELECT x->>'kind' AS kind, coalesce(x->>'basis', 'unspecified') AS basis,
               (x->>'kg')::float8 AS kg, x
          FROM jsonb_array_elements(p_rows) x
    ), part AS (
        SELECT k.kind, jsonb_build_object(
                   'kg', coalesce(sum(r.kg), 0),
                   'basis', jsonb_build_object(
                       'measured', coalesce(sum(r.kg) FILTER (WHERE r.basis = 'measured'), 0),
                       'calculated', coalesce(sum(r.kg) FILTER (WHERE r.basis = 'calculated'), 0),
                       'estimated', coalesce(sum(r.kg) FILTER (WHERE r.basis = 'estimated'), 0),
                       'unspecified', coalesce(sum(r.kg) FILTER (WHERE r.basis = 'unspecified'), 0)),
                   -- E-PRTR's M/C/E for the quantity: the basis of most of its mass.
                   'method', (SELECT upper(left(r2.basis, 1)) FROM r r2
                               WHERE r2.kind = k.kind AND r2.basis <> 'unspecified'
                               GROUP BY r2.basis ORDER BY sum(r2.kg) DESC, r2.basis LIMIT 1)) AS j
          FROM (VALUES ('R'), ('D'), ('?')) k(kind)
          LEFT JOIN r ON r.kind = k.kind
         GROUP BY k.kind
    )
    SELECT jsonb_build_object(
        'kg', coalesce((SELECT sum(kg) FROM r), 0),
        'threshold_kg', p_threshold_kg,
        'reportable', coalesce((SELECT sum(kg) FROM r), 0) > p_threshold_kg,
        'recovery', (SELECT j FROM part WHERE kind = 'R'),
        'disposal', (SELECT j FROM part WHERE kind = 'D'),
        'unknown_operation_kg', (SELECT (j->>'kg')::float8 FROM part WHERE kind = '?'),
        'abroad', coalesce((SELECT jsonb_agg(x->'abroad' ORDER BY x->>'event')
                              FROM r WHERE x->'abroad' IS NOT NULL
                               AND jsonb_typeof(x->'abroad') = 'object'), '[]'))
$$;

-- prtr_transfers: E-PRTR (Regulation (EC) 166/2006, art. 5(1)(b)) off-site transfers of waste
-- per facility (site) and year: hazardous over 2 t and non-hazardous over 2,000 t are
-- reportable, split into recovery (R) and disposal (D) with the basis of each quantity; for
-- transfers abroad the receiver's name and address.
CREATE FUNCTION circa_report_prtr(p_tenant text, p_from timestamptz, p_to timestamptz,
                                  p_site text, p_party text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH tz AS (
        SELECT time_zone FROM tenant WHERE id = p_tenant
    ), tr AS (
        SELECT t.*, extract(year FROM t.event_time AT TIME ZONE tz.time_zone)::int AS year,
               circa_report_place(p_tenant, t.origin) AS o,
               circa_report_place(p_tenant, t.receiver) AS d
          FROM circa_report_transfers(p_tenant, p_from, p_to, p_site, p_party) t, tz
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
      FROM fac f, LATERAL (SELECT circa_report_place(p_tenant, f.origin) AS p) pl
$$;

-- circularity_summary: every metric of the scope for the whole period and month by month
-- (circa_metrics of schema/007), and the period's flows for a Sankey (circa_flows).
CREATE FUNCTION circa_report_circularity(p_tenant text, p_from date, p_to date, p_site text,
                                         p_party text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    months jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'month', to_char(m.a, 'YYYY-MM'), 'from', m.a, 'to', m.b,
               'metrics', circa_metrics(p_tenant, m.a::text, m.b::text, p_party, p_site,
                                        NULL, NULL)->'metrics') ORDER BY m.a), '[]')
      INTO months
      FROM (SELECT greatest(s::date, p_from) AS a,
                   least((s + interval '1 month')::date, p_to) AS b
              FROM generate_series(date_trunc('month', p_from), p_to - 1, interval '1 month') s) m;
    RETURN jsonb_build_object(
        'metrics', circa_metrics(p_tenant, p_from::text, p_to::text, p_party, p_site,
                                 NULL, NULL)->'metrics',
        'months', months,
        'flows', circa_flows(p_tenant, p_from::text, p_to::text, p_party, p_site, NULL, NULL)
                 - 'scope' - 'period' - 'block');
END $$;

-- recovery_certificate: what the recycler's sites received in [from, to) from the generator's
-- sites (or naming the generator as sender), and by which operations it was treated since:
-- each received lot is followed through later events on the same lot (interim storage,
-- onward shipment) and forward through transformations, a treatment of a downstream lot
-- counting for the share of its mass that came from the received lot.
CREATE FUNCTION circa_report_recovery(p_tenant text, p_from timestamptz, p_to timestamptz,
                                      p_generator text, p_recycler text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE rcpt AS (
        SELECT e.* FROM circa_report_events(p_tenant, p_from, p_to) e
         WHERE e.type IN ('received', 'collected')
           AND (e.from_site = p_generator
                OR EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant
                            AND s.code = e.from_site AND s.party = p_generator))
           AND EXISTS (SELECT 1 FROM site s WHERE s.tenant_id = p_tenant AND s.code = e.site
                        AND s.party <> p_generator
                        AND (p_recycler IS NULL OR s.party = p_recycler))
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
        'generator', circa_report_place(p_tenant, p_generator),
        'recycler', CASE WHEN p_recycler IS NOT NULL THEN circa_report_place(p_tenant, p_recycler) END,
        'receipts', coalesce((SELECT jsonb_agg(j ORDER BY event_time, id) FROM per), '[]'),
        'totals', jsonb_build_object(
            'received_kg', coalesce((SELECT sum(quantity_kg) FROM rcpt), 0),
            'untracked_kg', coalesce((SELECT sum(quantity_kg) FROM rcpt WHERE lot IS NULL), 0),
            'recovered_kg', coalesce((SELECT sum(kg) FROM fin WHERE operation LIKE 'R%'), 0),
            'disposed_kg', coalesce((SELECT sum(kg) FROM fin WHERE operation LIKE 'D%'), 0),
            'by_operation', coalesce((SELECT jsonb_object_agg(operation, kg) FROM fin), '{}'),
            'interim_by_operation', coalesce((SELECT jsonb_object_agg(operation, kg) FROM itm), '{}')))
$$;

-- The data of one report, with the ledger head it was read at (same snapshot). p_params holds
-- from, to and the optional site, party, generator, recycler. Unknown codes raise CA401
-- ("field<TAB>message"); bad dates raise class 22.
CREATE FUNCTION circa_report_data(p_tenant text, p_type text, p_params jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    d record;
    t tenant%ROWTYPE;
    v_site text := p_params->>'site';
    v_party text := p_params->>'party';
    v_gen text := p_params->>'generator';
    v_rec text := p_params->>'recycler';
    data jsonb;
BEGIN
    SELECT * INTO t FROM tenant WHERE id = p_tenant;
    d := circa_days(p_tenant, p_params->>'from', p_params->>'to');
    IF v_site IS NOT NULL AND NOT EXISTS (SELECT 1 FROM site WHERE tenant_id = p_tenant AND code = v_site) THEN
        RAISE EXCEPTION USING ERRCODE = 'CA401', MESSAGE = 'site' || E'\t' || format('no site %L', v_site);
    END IF;
    IF v_party IS NOT NULL AND NOT EXISTS (SELECT 1 FROM party WHERE tenant_id = p_tenant AND code = v_party) THEN
        RAISE EXCEPTION USING ERRCODE = 'CA401', MESSAGE = 'party' || E'\t' || format('no party %L', v_party);
    END IF;
    IF v_gen IS NOT NULL AND NOT EXISTS (SELECT 1 FROM party WHERE tenant_id = p_tenant AND code = v_gen) THEN
        RAISE EXCEPTION USING ERRCODE = 'CA401', MESSAGE = 'generator' || E'\t' || format('no party %L', v_gen);
    END IF;
    IF v_rec IS NOT NULL AND NOT EXISTS (SELECT 1 FROM party WHERE tenant_id = p_tenant AND code = v_rec) THEN
        RAISE EXCEPTION USING ERRCODE = 'CA401', MESSAGE = 'recycler' || E'\t' || format('no party %L', v_rec);
    END IF;
    data := CASE p_type
        WHEN 'waste_register' THEN circa_report_waste_register(p_tenant, d.from_ts, d.to_ts, v_site, v_party)
        WHEN 'prtr_transfers' THEN circa_report_prtr(p_tenant, d.from_ts, d.to_ts, v_site, v_party)
        WHEN 'circularity_summary' THEN circa_report_circularity(p_tenant, d.from_day, d.to_day, v_site, v_party)
        WHEN 'recovery_certificate' THEN circa_report_recovery(p_tenant, d.from_ts, d.to_ts, v_gen, v_rec)
    END;
    RETURN jsonb_build_object(
        'tenant', jsonb_build_object('id', t.id, 'name', t.name, 'time_zone', t.time_zone),
        'period', jsonb_build_object('from', d.from_day, 'to', d.to_day, 'tz', d.tz),
        'block', jsonb_build_object('seq', t.head_seq, 'hash', t.head_hash),
        'data', data);
END $$;

-- GET /v1/reports?type=&period=: the tenant's reports, newest first. period is YYYY, YYYY-MM or
-- YYYY-MM-DD and keeps the reports whose period overlaps it.
CREATE FUNCTION circa_report_list(p_tenant text, p_type text, p_period text, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    a date; b date;
BEGIN
    IF p_period ~ '^\d{4}$' THEN
        a := (p_period || '-01-01')::date; b := (a + interval '1 year')::date;
    ELSIF p_period ~ '^\d{4}-\d{2}$' THEN
        a := (p_period || '-01')::date; b := (a + interval '1 month')::date;
    ELSIF p_period IS NOT NULL THEN
        a := p_period::date; b := a + 1;
    END IF;
    RETURN jsonb_build_object('reports', coalesce((
        SELECT jsonb_agg(jsonb_build_object('id', r.id, 'type', r.type, 'params', r.params,
                   'period', jsonb_build_object('from', r.period_from, 'to', r.period_to),
                   'created', r.created, 'sha256', r.sha256,
                   'block', jsonb_build_object('seq', r.block_seq, 'hash', r.block_hash),
                   'links', jsonb_build_object('json', '/v1/reports/' || r.id || '.json',
                                               'csv', '/v1/reports/' || r.id || '.csv',
                                               'html', '/v1/reports/' || r.id || '.html'))
                         ORDER BY r.created DESC, r.id)
          FROM (SELECT * FROM report r
                 WHERE r.tenant_id = p_tenant AND (p_type IS NULL OR r.type = p_type)
                   AND (a IS NULL OR (r.period_from < b AND r.period_to > a))
                 ORDER BY r.created DESC, r.id LIMIT p_limit) r), '[]'));
END $$;

-- `circa verify --report`: the stored report's sha256 and whether the block it names is in the
-- tenant's chain. NULL members when unknown.
CREATE FUNCTION circa_report_check(p_tenant text, p_id text, p_block_seq bigint,
                                   p_block_hash text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'tenant', EXISTS (SELECT 1 FROM tenant WHERE id = p_tenant),
        'stored_sha256', (SELECT sha256 FROM report WHERE tenant_id = p_tenant AND id = p_id),
        'block_in_chain', EXISTS (SELECT 1 FROM ledger_block WHERE tenant_id = p_tenant
                                   AND seq = p_block_seq AND hash = p_block_hash)
                          OR (p_block_seq = 0 AND p_block_hash = repeat('0', 64)))
$$;

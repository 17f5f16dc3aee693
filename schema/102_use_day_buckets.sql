-- use_days median and p90 without sorting every life of the period (docs/PERFORMANCE.md,
-- Metrics, 102). 019's circa_item_metrics expanded item_day's 'E' histogram (use days v, count
-- n; nearly every v distinct) and ran percentile_cont over it: a sort of every life ended in
-- the period, ~100 ms of /v1/metrics on a 1 M-event tenant. Now:
--   use_day_bucket  per tenant, month of the end day, product and whole-day bucket b =
--                   floor(use days): n lives and vsum their use days. Kept beside item_day by
--                   circa_item_day_add (the derive step, groups with items; the rebuild).
--   The period's bucket counts come from the whole months in it (use_day_bucket) and its
--   partial months at either end (item_day 'E' rows of those days, by floor(v)). The ranks
--   percentile_cont interpolates between (floor and ceil of p × (N − 1)) fall in one or two
--   buckets; only those buckets' values are read, from item_day through item_day_use_floor
--   (tenant, floor(v), day) on 'E' rows, and interpolated as percentile_cont does
--   (lo + (p × (N − 1) − floor) × (hi − lo)), so median and p90 are the same floats.
--   lives_ended and the mean come from the bucket sums (mean: the same sum in another order).
-- circa_item_day_add and circa_item_day_rebuild are redefined (019's bodies plus the buckets);
-- 098/100 rewrite neither. Under Citus the table is distributed by tenant_id like item_day.

CREATE TABLE use_day_bucket (
    tenant_id text NOT NULL,
    month     date NOT NULL,
    product   text NOT NULL,
    b         double precision NOT NULL,
    n         bigint NOT NULL,
    vsum      double precision NOT NULL,
    PRIMARY KEY (tenant_id, month, product, b)
);

CREATE INDEX item_day_use_floor ON item_day (tenant_id, floor(v), day) WHERE kind = 'E';

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('use_day_bucket', 'tenant_id', colocate_with => 'event');
    END IF;
END
$citus$;

-- 019's body, then the ended lives of the items into use_day_bucket, signed.
CREATE OR REPLACE FUNCTION circa_item_day_add(p_tenant text, p_items text[], p_sign integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_tz text;
BEGIN
    IF p_items IS NULL OR cardinality(p_items) = 0 THEN
        RETURN;
    END IF;
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    INSERT INTO item_day AS r (tenant_id, kind, day, d2, d3, product, v, n, kg, vsum)
    SELECT p_tenant, x.kind, x.day, x.d2, x.d3, x.product, x.v, p_sign * count(*), 0,
           p_sign * sum(x.v)
      FROM (
        SELECT 'L' AS kind, (l.started AT TIME ZONE v_tz)::date AS day,
               coalesce((lead(l.started) OVER w AT TIME ZONE v_tz)::date, 'infinity'::date) AS d2,
               'infinity'::date AS d3, coalesce(l.product, '') AS product,
               (row_number() OVER w)::float8 AS v
          FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items)
        WINDOW w AS (PARTITION BY l.item ORDER BY l.started, l.life)
        UNION ALL
        SELECT 'E', (l.ended AT TIME ZONE v_tz)::date, 'infinity'::date, 'infinity'::date,
               coalesce(l.product, ''), extract(epoch FROM l.ended - l.started) / 86400
          FROM lifecycle l
         WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items) AND l.ended IS NOT NULL
        UNION ALL
        SELECT 'M', (m.started AT TIME ZONE v_tz)::date,
               coalesce((lag(m.started) OVER (PARTITION BY m.item ORDER BY m.started, m.life)
                         AT TIME ZONE v_tz)::date, '-infinity'::date),
               coalesce((SELECT (min(k.ended) AT TIME ZONE v_tz)::date FROM lifecycle k
                          WHERE k.tenant_id = p_tenant AND k.item = m.item
                            AND k.started >= m.started
                            AND k.end_type IN ('returned', 'collected')), 'infinity'::date),
               coalesce(m.product, ''), 0::float8
          FROM lifecycle m
         WHERE m.tenant_id = p_tenant AND m.item = ANY (p_items)
           AND m.start_type = 'put_on_market') x
     GROUP BY x.kind, x.day, x.d2, x.d3, x.product, x.v
    ON CONFLICT (tenant_id, kind, day, d2, d3, product, v)
    DO UPDATE SET n = r.n + EXCLUDED.n, vsum = r.vsum + EXCLUDED.vsum;

    INSERT INTO use_day_bucket AS r (tenant_id, month, product, b, n, vsum)
    SELECT p_tenant, date_trunc('month', x.day)::date, x.product, floor(x.v),
           p_sign * count(*), p_sign * sum(x.v)
      FROM (SELECT (l.ended AT TIME ZONE v_tz)::date AS day, coalesce(l.product, '') AS product,
                   extract(epoch FROM l.ended - l.started) / 86400 AS v
              FROM lifecycle l
             WHERE l.tenant_id = p_tenant AND l.item = ANY (p_items) AND l.ended IS NOT NULL) x
     GROUP BY 2, 3, 4
    ON CONFLICT (tenant_id, month, product, b)
    DO UPDATE SET n = r.n + EXCLUDED.n, vsum = r.vsum + EXCLUDED.vsum;
END $$;

CREATE OR REPLACE FUNCTION circa_item_day_rebuild(p_tenant text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM item_day WHERE tenant_id = p_tenant;
    DELETE FROM use_day_bucket WHERE tenant_id = p_tenant;
    PERFORM circa_item_day_add(p_tenant,
        ARRAY(SELECT DISTINCT item FROM lifecycle WHERE tenant_id = p_tenant), 1);
    PERFORM circa_item_fate_add(p_tenant,
        ARRAY(SELECT e.id FROM event e
               WHERE e.tenant_id = p_tenant AND e.item IS NOT NULL
                 AND e.type IN ('recycled', 'energy_recovered', 'disposed')
                 AND NOT EXISTS (SELECT 1 FROM correction c WHERE c.tenant_id = p_tenant
                                  AND c.corrected = e.id)), 1);
END $$;

-- The use days at 0-based rank k (ascending) among the lives ended in [fd, td) (product or all),
-- given the period's buckets (p_b ascending, p_c their counts): the bucket holding rank k, then
-- its values from item_day through item_day_use_floor.
CREATE FUNCTION circa_use_day_rank(p_tenant text, fd date, td date, p_product text,
                                   p_b double precision[], p_c bigint[], p_k bigint)
RETURNS double precision LANGUAGE plpgsql STABLE AS $$
DECLARE
    i integer;
    v_k bigint := p_k;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_b), 0) LOOP
        IF v_k < p_c[i] THEN
            RETURN (SELECT x.v FROM (
                        SELECT d.v, sum(sum(d.n)) OVER (ORDER BY d.v) AS cum
                          FROM item_day d
                         WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v) = p_b[i]
                           AND d.day >= fd AND d.day < td
                           AND (p_product IS NULL OR d.product = p_product)
                         GROUP BY d.v HAVING sum(d.n) > 0) x
                     WHERE x.cum > v_k
                     ORDER BY x.v LIMIT 1);
        END IF;
        v_k := v_k - p_c[i];
    END LOOP;
    RETURN NULL;
END $$;

-- 019's circa_item_metrics with the use days of 102 (the same answers).
CREATE OR REPLACE FUNCTION circa_item_metrics(p_tenant text, p_from timestamptz,
                                              p_to timestamptz, p_product text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
    v_items bigint; v_lives float8; v_dist jsonb;
    v_pct float8[];
    v_ended bigint; v_median float8; v_p90 float8; v_mean float8;
    v_market bigint; v_back bigint;
    v_fate jsonb; v_fate_n bigint; v_fate_kg float8;
    mw date; lm date; v_bb float8[]; v_bc bigint[]; v_vsum float8;
    j integer; v_p float8; v_x float8; v_lo float8; v_hi float8;
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;

    SELECT coalesce(sum(c), 0), coalesce(sum(c * k), 0),
           coalesce(jsonb_object_agg(k::bigint::text, c) FILTER (WHERE c <> 0), '{}')
      INTO v_items, v_lives, v_dist
      FROM (SELECT v AS k, sum(n) AS c FROM item_day
             WHERE tenant_id = p_tenant AND kind = 'L' AND day >= fd AND day < td AND d2 >= td
               AND (p_product IS NULL OR product = p_product)
             GROUP BY v HAVING sum(n) <> 0) x;

    -- Use days (102): bucket counts of the period (whole months from use_day_bucket, the
    -- partial months from item_day), then percentile_cont's two ranks per percentile read from
    -- their buckets only and interpolated as percentile_cont does.
    mw := CASE WHEN fd = date_trunc('month', fd)::date THEN fd
               ELSE (date_trunc('month', fd) + interval '1 month')::date END;
    lm := date_trunc('month', td)::date;
    IF mw >= lm THEN
        mw := td;
        lm := td;
    END IF;
    SELECT array_agg(y.b ORDER BY y.b), array_agg(y.c ORDER BY y.b), sum(y.c), sum(y.s)
      INTO v_bb, v_bc, v_ended, v_vsum
      FROM (SELECT z.b, sum(z.n)::bigint AS c, sum(z.vsum) AS s
              FROM (SELECT u.b, u.n, u.vsum FROM use_day_bucket u
                     WHERE u.tenant_id = p_tenant AND u.month >= mw AND u.month < lm
                       AND (p_product IS NULL OR u.product = p_product)
                    UNION ALL
                    SELECT floor(i.v), i.n, i.vsum FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'E'
                       AND (i.day >= fd AND i.day < mw OR i.day >= lm AND i.day < td)
                       AND (p_product IS NULL OR i.product = p_product)) z
             GROUP BY z.b HAVING sum(z.n) > 0) y;
    v_ended := coalesce(v_ended, 0);
    v_mean := v_vsum / nullif(v_ended, 0);
    v_pct := ARRAY[NULL, NULL]::float8[];
    IF v_ended > 0 THEN
        FOR j IN 1 .. 2 LOOP
            v_p := (ARRAY[0.5, 0.9]::float8[])[j];
            v_x := v_p * (v_ended - 1)::float8;
            v_lo := circa_use_day_rank(p_tenant, fd, td, p_product, v_bb, v_bc, floor(v_x)::bigint);
            IF v_x = floor(v_x) THEN
                v_pct[j] := v_lo;
            ELSE
                v_hi := circa_use_day_rank(p_tenant, fd, td, p_product, v_bb, v_bc,
                                           ceil(v_x)::bigint);
                v_pct[j] := v_lo + (v_x - floor(v_x)) * (v_hi - v_lo);
            END IF;
        END LOOP;
    END IF;
    v_median := v_pct[1];
    v_p90 := v_pct[2];

    SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE d3 < td), 0)
      INTO v_market, v_back
      FROM item_day
     WHERE tenant_id = p_tenant AND kind = 'M' AND day >= fd AND day < td AND d2 < fd
       AND (p_product IS NULL OR product = p_product);

    SELECT sum(r.n), sum(r.kg),
           jsonb_build_object('n', jsonb_object_agg(t.f, coalesce(r.n, 0)),
                              'kg', jsonb_object_agg(t.f, coalesce(r.kg, 0)))
      INTO v_fate_n, v_fate_kg, v_fate
      FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
      LEFT JOIN (SELECT kind, sum(n) AS n, sum(kg) AS kg FROM item_day
                  WHERE tenant_id = p_tenant
                    AND kind IN ('recycled', 'energy_recovered', 'disposed')
                    AND day >= fd AND day < td
                    AND (p_product IS NULL OR product = p_product)
                  GROUP BY kind) r ON r.kind = t.f;
    v_fate_n := coalesce(v_fate_n, 0);
    v_fate_kg := coalesce(v_fate_kg, 0);

    RETURN jsonb_build_object(
        'lives_per_item', circa_metric(circa_rate(v_lives, v_items), NULL, NULL,
            jsonb_build_object('items', v_items, 'lives', v_lives::bigint, 'distribution', v_dist)),
        'use_days', circa_metric(v_median, NULL, NULL,
            jsonb_build_object('lives_ended', v_ended, 'median', v_median, 'p90', v_p90,
                               'mean', v_mean)),
        'return_rate', circa_metric(circa_rate(v_back, v_market), NULL, NULL,
            jsonb_build_object('items_put_on_market', v_market, 'items_returned', v_back)),
        'fate', circa_metric(
            CASE WHEN v_fate_n > 0 THEN
                (SELECT jsonb_object_agg(k, (x::text)::float8 / v_fate_n)
                   FROM jsonb_each(v_fate->'n') j(k, x)) END,
            v_fate_kg, NULL,
            jsonb_build_object('items_retired', v_fate_n, 'items', v_fate->'n',
                               'kg', v_fate->'kg')));
END $$;

-- Existing tenants: the buckets from their item_day 'E' rows (what circa_item_day_add keeps).
INSERT INTO use_day_bucket (tenant_id, month, product, b, n, vsum)
SELECT tenant_id, date_trunc('month', day)::date, product, floor(v), sum(n), sum(vsum)
  FROM item_day
 WHERE kind = 'E'
 GROUP BY 1, 2, 3, 4
HAVING sum(n) <> 0;

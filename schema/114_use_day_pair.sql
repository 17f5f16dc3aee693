-- The use-day median and p90 with one rank lookup each (docs/PERFORMANCE.md, Metrics, 114).
-- percentile_cont interpolates between ranks floor(x) and floor(x) + 1; 112 looked each up on
-- its own (whole-day bucket, 1/64-day bucket, values: four lookups per answer). Both ranks
-- nearly always lie in the same 1/64-day bucket, so circa_use_day_pair reads them together
-- (the two smallest values past rank k), and looks rank k + 1 up alone only when it starts the
-- next bucket. The same floats as 112; circa_use_day_at (112) has no caller left and goes.
-- Plain PostgreSQL only, as 112's circa_item_metrics.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- The use days at 0-based ranks k and k + 1 (ascending; p_both false: rank k only, twice)
    -- among the lives ended in [fd, td) (product or all), given the period's whole-day buckets
    -- (p_b ascending, p_c their counts) and its whole months [mw, lm).
    EXECUTE $f$
CREATE FUNCTION circa_use_day_pair(p_tenant text, fd date, td date, mw date, lm date,
                                   p_product text, p_b double precision[], p_c bigint[],
                                   p_k bigint, p_both boolean)
RETURNS double precision[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    i integer;
    v_k bigint := p_k;
    v_b double precision;
    v_f double precision;
    r record;
    v_one double precision;
    v_cum numeric;
    v_n integer := 0;
BEGIN
    i := 1;
    WHILE i <= coalesce(cardinality(p_b), 0) AND v_k >= p_c[i] LOOP
        v_k := v_k - p_c[i];
        i := i + 1;
    END LOOP;
    IF i > coalesce(cardinality(p_b), 0) THEN
        RETURN ARRAY[NULL, NULL]::double precision[];
    END IF;
    v_b := p_b[i];
    FOR r IN SELECT z.f, sum(z.n)::bigint AS c
               FROM (SELECT u.f, u.n FROM use_day_fine u
                      WHERE u.tenant_id = p_tenant AND u.b = v_b
                        AND u.month >= mw AND u.month < lm
                        AND (p_product IS NULL OR u.product = p_product)
                     UNION ALL
                     SELECT floor(d.v * 64), d.n FROM item_day d
                      WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v) = v_b
                        AND (d.day >= fd AND d.day < mw OR d.day >= lm AND d.day < td)
                        AND (p_product IS NULL OR d.product = p_product)) z
              GROUP BY z.f HAVING sum(z.n) > 0 ORDER BY z.f LOOP
        v_f := r.f;
        EXIT WHEN v_k < r.c;
        v_k := v_k - r.c;
    END LOOP;
    FOR r IN SELECT x.v, x.cum FROM (
                 SELECT d.v, sum(sum(d.n)) OVER (ORDER BY d.v) AS cum
                   FROM item_day d
                  WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v * 64) = v_f
                    AND d.day >= fd AND d.day < td
                    AND (p_product IS NULL OR d.product = p_product)
                  GROUP BY d.v HAVING sum(d.n) > 0) x
              WHERE x.cum > v_k
              ORDER BY x.v LIMIT 2 LOOP
        v_n := v_n + 1;
        IF v_n = 1 THEN
            v_one := r.v;
            v_cum := r.cum;
            -- Rank k + 1 holds the same value, or none is wanted.
            IF NOT p_both OR v_cum > v_k + 1 THEN
                RETURN ARRAY[v_one, v_one];
            END IF;
        ELSE
            RETURN ARRAY[v_one, r.v];
        END IF;
    END LOOP;
    -- Rank k + 1 is the first of a later 1/64-day bucket.
    RETURN ARRAY[v_one, (circa_use_day_pair(p_tenant, fd, td, mw, lm, p_product, p_b, p_c,
                                            p_k + 1, false))[1]];
END $$;
$f$;
    EXECUTE $f$
CREATE OR REPLACE FUNCTION circa_item_metrics(p_tenant text, p_from timestamptz,
                                              p_to timestamptz, p_product text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_tz text;
    fd date;
    td date;
    fl date;     -- the month of fd
    tc date;     -- td, or the month after td's when td is not a month's first day
    v_items bigint; v_lives float8; v_dist jsonb;
    v_pct float8[];
    v_ended bigint; v_median float8; v_p90 float8; v_mean float8;
    v_market bigint; v_back bigint;
    v_fate jsonb; v_fate_n bigint; v_fate_kg float8;
    mw date; lm date; v_bb float8[]; v_bc bigint[]; v_vsum float8;
    j integer; v_p float8; v_x float8; v_two float8[];
BEGIN
    SELECT time_zone INTO v_tz FROM tenant WHERE id = p_tenant;
    fd := (p_from AT TIME ZONE v_tz)::date;
    td := (p_to AT TIME ZONE v_tz)::date;
    SELECT s.mw, s.lm INTO mw, lm FROM circa_month_span(fd, td) s;
    fl := date_trunc('month', fd::timestamp)::date;
    tc := (date_trunc('month', (td - 1)::timestamp) + interval '1 month')::date;

    -- Lives per item: L rows with day in [fd, td) and d2 >= td. Whole months of day with d2 in
    -- a month from tc on: the grid; the partial months of day, and d2 in [td, tc): item_day.
    SELECT coalesce(sum(c), 0), coalesce(sum(c * k), 0),
           coalesce(jsonb_object_agg(k::bigint::text, c) FILTER (WHERE c <> 0), '{}')
      INTO v_items, v_lives, v_dist
      FROM (SELECT z.v AS k, sum(z.n) AS c
              FROM (SELECT m.v, m.n FROM item_month m
                     WHERE m.tenant_id = p_tenant AND m.kind = 'L' AND m.m1 >= mw AND m.m1 < lm
                       AND m.m2 >= tc AND (p_product IS NULL OR m.product = p_product)
                    UNION ALL
                    SELECT i.v, i.n FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'L' AND i.d2 >= td
                       AND (i.day >= fd AND i.day < mw OR i.day >= lm AND i.day < td)
                       AND (p_product IS NULL OR i.product = p_product)
                    UNION ALL
                    SELECT i.v, i.n FROM item_day i
                     WHERE i.tenant_id = p_tenant AND i.kind = 'L' AND i.d2 >= td AND i.d2 < tc
                       AND i.day >= mw AND i.day < lm
                       AND (p_product IS NULL OR i.product = p_product)) z
             GROUP BY z.v HAVING sum(z.n) <> 0) x;

    -- Use days (102): bucket counts of the period (whole months from use_day_bucket, the
    -- partial months from item_day), then percentile_cont's two ranks per percentile.
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
            v_two := circa_use_day_pair(p_tenant, fd, td, mw, lm, p_product, v_bb, v_bc,
                                        floor(v_x)::bigint, v_x <> floor(v_x));
            IF v_x = floor(v_x) THEN
                v_pct[j] := v_two[1];
            ELSE
                v_pct[j] := v_two[1] + (v_x - floor(v_x)) * (v_two[2] - v_two[1]);
            END IF;
        END LOOP;
    END IF;
    v_median := v_pct[1];
    v_p90 := v_pct[2];

    -- Return rate: M rows with day in [fd, td) and d2 < fd; returned when d3 < td. The grid
    -- decides whole months of day with d2's month before fl (and d3's before lm for the
    -- return); item_day gives the partial months of day, d2 in [fl, fd) and d3 in [lm, td).
    SELECT coalesce(sum(z.n) FILTER (WHERE z.market), 0),
           coalesce(sum(z.n) FILTER (WHERE z.back), 0)
      INTO v_market, v_back
      FROM (SELECT m.n, true AS market, m.m3 < lm AS back FROM item_month m
             WHERE m.tenant_id = p_tenant AND m.kind = 'M' AND m.m1 >= mw AND m.m1 < lm
               AND m.m2 < fl AND (p_product IS NULL OR m.product = p_product)
            UNION ALL
            SELECT i.n, true, i.d3 < td FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d2 < fd
               AND (i.day >= fd AND i.day < mw OR i.day >= lm AND i.day < td)
               AND (p_product IS NULL OR i.product = p_product)
            UNION ALL
            SELECT i.n, true, i.d3 < td FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d2 >= fl AND i.d2 < fd
               AND i.day >= mw AND i.day < lm
               AND (p_product IS NULL OR i.product = p_product)
            UNION ALL
            SELECT i.n, false, true FROM item_day i
             WHERE i.tenant_id = p_tenant AND i.kind = 'M' AND i.d3 >= lm AND i.d3 < td
               AND i.d2 < fl AND i.day >= mw AND i.day < lm
               AND (p_product IS NULL OR i.product = p_product)) z;

    SELECT sum(r.n), sum(r.kg),
           jsonb_build_object('n', jsonb_object_agg(t.f, coalesce(r.n, 0)),
                              'kg', jsonb_object_agg(t.f, coalesce(r.kg, 0)))
      INTO v_fate_n, v_fate_kg, v_fate
      FROM unnest(ARRAY['recycled', 'energy_recovered', 'disposed']) t(f)
      LEFT JOIN (SELECT z.kind, sum(z.n) AS n, sum(z.kg) AS kg
                   FROM (SELECT m.kind, m.n, m.kg FROM item_month m
                          WHERE m.tenant_id = p_tenant
                            AND m.kind IN ('recycled', 'energy_recovered', 'disposed')
                            AND m.m1 >= mw AND m.m1 < lm
                            AND (p_product IS NULL OR m.product = p_product)
                         UNION ALL
                         SELECT i.kind, i.n, i.kg FROM item_day i
                          WHERE i.tenant_id = p_tenant
                            AND i.kind IN ('recycled', 'energy_recovered', 'disposed')
                            AND (i.day >= fd AND i.day < mw OR i.day >= lm AND i.day < td)
                            AND (p_product IS NULL OR i.product = p_product)) z
                  GROUP BY z.kind) r ON r.kind = t.f;
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
$f$;
    EXECUTE 'DROP FUNCTION circa_use_day_at(text, date, date, date, date, text, double precision[], '
            'bigint[], bigint)';
END $do$;

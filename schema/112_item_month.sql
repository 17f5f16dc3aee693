-- The item metrics from monthly grids of item_day (docs/PERFORMANCE.md, Metrics, 112). 019/102
-- read item_day's 'L' rows of the period (about one per life: 21,014 for the year at 1 M
-- events), its 'M' rows (one per put_on_market start and return day) and, for the median and
-- p90 of use days, every 'E' row of the whole-day bucket holding each rank (~1,250 rows per
-- lookup at 1 M events, four lookups): all of them linear in the ledger.
--   item_month    item_day's L, M and fate rows with day, d2 and d3 replaced by their months
--                 (m1, m2, m3; ±infinity stay): n and kg per cell.
--   use_day_fine  item_day's E rows per whole-day bucket b = floor(v), month of the end day,
--                 product and 1/64-day bucket f = floor(v × 64): n.
-- Both are kept by statement triggers on item_day (Σ new − Σ old), so circa_item_day_add,
-- circa_item_fate_add and the rebuild (DELETE and INSERT) keep them without being changed.
-- circa_item_metrics answers every condition a whole month decides from the grid, and reads
-- item_day only where a month does not decide: the days of the partial months at either end
-- of the period, and the lives whose next start (L: d2), previous put_on_market (M: d2) or
-- return (M: d3) falls in the partial month of `from` or `to`, through partial indexes on
-- d2 and d3. A period of whole months reads no item_day row for L and M. Use days: the
-- whole-day bucket of a rank from use_day_bucket (102), then its 1/64-day buckets (whole
-- months from use_day_fine, partial months from item_day), then the values of one 1/64-day
-- bucket from item_day through item_day_use_fine; interpolated as percentile_cont does, as 102.
-- Citus: both tables are distributed like item_day; triggers and circa_item_metrics are plain
-- PostgreSQL only, so Citus keeps 102's circa_item_metrics and the tables stay empty there.

CREATE TABLE item_month (
    tenant_id text NOT NULL,
    kind      text NOT NULL,
    m1        date NOT NULL,
    m2        date NOT NULL,
    m3        date NOT NULL,
    product   text NOT NULL,
    v         double precision NOT NULL,
    n         bigint NOT NULL,
    kg        double precision NOT NULL,
    PRIMARY KEY (tenant_id, kind, m1, m2, m3, product, v)
);

CREATE TABLE use_day_fine (
    tenant_id text NOT NULL,
    b         double precision NOT NULL,
    month     date NOT NULL,
    product   text NOT NULL,
    f         double precision NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (tenant_id, b, month, product, f)
);

DO $citus$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('item_month', 'tenant_id', colocate_with => 'event');
        PERFORM create_distributed_table('use_day_fine', 'tenant_id', colocate_with => 'event');
    END IF;
END
$citus$;

DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    EXECUTE $f$
CREATE INDEX item_day_d2 ON item_day (tenant_id, kind, d2, day) WHERE kind IN ('L', 'M')
$f$;
    EXECUTE $f$
CREATE INDEX item_day_d3 ON item_day (tenant_id, d3, day) WHERE kind = 'M'
$f$;
    EXECUTE $f$
CREATE INDEX item_day_use_fine ON item_day (tenant_id, floor(v * 64), day) WHERE kind = 'E'
$f$;

    -- item_day rows taken away (p_old) and added (p_new) by one statement, into the grids.
    EXECUTE $f$
CREATE FUNCTION circa_item_month_apply(p_old item_day[], p_new item_day[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH x AS (
        SELECT r.tenant_id, r.kind, r.day, r.d2, r.d3, r.product, r.v, -r.n AS n, -r.kg AS kg
          FROM unnest(p_old) r
        UNION ALL
        SELECT r.tenant_id, r.kind, r.day, r.d2, r.d3, r.product, r.v, r.n, r.kg
          FROM unnest(p_new) r
    ), grid AS (
        INSERT INTO item_month AS m
        SELECT tenant_id, kind, date_trunc('month', day::timestamp)::date,
               date_trunc('month', d2::timestamp)::date, date_trunc('month', d3::timestamp)::date,
               product, v, sum(n), sum(kg)
          FROM x WHERE kind <> 'E'
         GROUP BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (tenant_id, kind, m1, m2, m3, product, v)
        DO UPDATE SET n = m.n + EXCLUDED.n, kg = m.kg + EXCLUDED.kg
    )
    INSERT INTO use_day_fine AS u
    SELECT tenant_id, floor(v), date_trunc('month', day::timestamp)::date, product,
           floor(v * 64), sum(n)
      FROM x WHERE kind = 'E'
     GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant_id, b, month, product, f) DO UPDATE SET n = u.n + EXCLUDED.n;
END $$;
$f$;
    -- A trigger of INSERT has no old transition table and one of DELETE no new one: each
    -- statement reads only those its TG_OP has.
    EXECUTE $f$
CREATE FUNCTION circa_item_month_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM circa_item_month_apply('{}', ARRAY(SELECT r::item_day FROM item_new r));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM circa_item_month_apply(ARRAY(SELECT r::item_day FROM item_old r),
                                       ARRAY(SELECT r::item_day FROM item_new r));
    ELSE
        PERFORM circa_item_month_apply(ARRAY(SELECT r::item_day FROM item_old r), '{}');
    END IF;
    RETURN NULL;
END $$;
$f$;
    EXECUTE $f$
CREATE TRIGGER item_month_ins AFTER INSERT ON item_day
    REFERENCING NEW TABLE AS item_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_item_month_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER item_month_upd AFTER UPDATE ON item_day
    REFERENCING OLD TABLE AS item_old NEW TABLE AS item_new
    FOR EACH STATEMENT EXECUTE FUNCTION circa_item_month_sync();
$f$;
    EXECUTE $f$
CREATE TRIGGER item_month_del AFTER DELETE ON item_day
    REFERENCING OLD TABLE AS item_old
    FOR EACH STATEMENT EXECUTE FUNCTION circa_item_month_sync();
$f$;

    -- The use days at 0-based rank k (ascending) among the lives ended in [fd, td) (product or
    -- all), given the period's whole-day buckets (p_b ascending, p_c their counts) and its whole
    -- months [mw, lm): the whole-day bucket holding rank k, its 1/64-day bucket, then that
    -- bucket's values.
    EXECUTE $f$
CREATE FUNCTION circa_use_day_at(p_tenant text, fd date, td date, mw date, lm date,
                                 p_product text, p_b double precision[], p_c bigint[], p_k bigint)
RETURNS double precision LANGUAGE plpgsql STABLE AS $$
DECLARE
    i integer;
    v_k bigint := p_k;
    v_b double precision;
    v_f double precision;
    r record;
BEGIN
    i := 1;
    WHILE i <= coalesce(cardinality(p_b), 0) AND v_k >= p_c[i] LOOP
        v_k := v_k - p_c[i];
        i := i + 1;
    END LOOP;
    IF i > coalesce(cardinality(p_b), 0) THEN
        RETURN NULL;
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
    RETURN (SELECT x.v FROM (
                SELECT d.v, sum(sum(d.n)) OVER (ORDER BY d.v) AS cum
                  FROM item_day d
                 WHERE d.tenant_id = p_tenant AND d.kind = 'E' AND floor(d.v * 64) = v_f
                   AND d.day >= fd AND d.day < td
                   AND (p_product IS NULL OR d.product = p_product)
                 GROUP BY d.v HAVING sum(d.n) > 0) x
             WHERE x.cum > v_k
             ORDER BY x.v LIMIT 1);
END $$;
$f$;

    -- 102's circa_item_metrics (the same answers) with lives_per_item, return_rate, fate and
    -- the use-day ranks read as above.
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
    j integer; v_p float8; v_x float8; v_lo float8; v_hi float8;
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
            v_lo := circa_use_day_at(p_tenant, fd, td, mw, lm, p_product, v_bb, v_bc,
                                     floor(v_x)::bigint);
            IF v_x = floor(v_x) THEN
                v_pct[j] := v_lo;
            ELSE
                v_hi := circa_use_day_at(p_tenant, fd, td, mw, lm, p_product, v_bb, v_bc,
                                         ceil(v_x)::bigint);
                v_pct[j] := v_lo + (v_x - floor(v_x)) * (v_hi - v_lo);
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

    -- Existing tenants: the grids from item_day.
    INSERT INTO item_month
    SELECT tenant_id, kind, date_trunc('month', day::timestamp)::date,
           date_trunc('month', d2::timestamp)::date, date_trunc('month', d3::timestamp)::date,
           product, v, sum(n), sum(kg)
      FROM item_day WHERE kind <> 'E'
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
    INSERT INTO use_day_fine
    SELECT tenant_id, floor(v), date_trunc('month', day::timestamp)::date, product,
           floor(v * 64), sum(n)
      FROM item_day WHERE kind = 'E'
     GROUP BY 1, 2, 3, 4, 5;
END $do$;

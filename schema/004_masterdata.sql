-- Master-data writes and reads for the REST API: create and replace a party, site, material or
-- product (typed columns plus doc, every version appended to masterdata_history), and the
-- views the API reads. The API validates documents before they get here; these functions
-- only keep the stored state consistent under concurrent writers.

-- The record as the API returns it: the document plus its code and valid-from time (RFC 3339
-- UTC with microseconds, so it can be passed back as ?at= and select this very version).
CREATE FUNCTION circa_md_record(p_doc jsonb, p_code text, p_valid_from timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT p_doc || jsonb_build_object('code', p_code, 'valid_from',
           to_char(p_valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
$$;

-- Current version of every record, whatever its kind. A filter on kind prunes the other
-- branches, so each query still reads one table by its primary key.
CREATE VIEW masterdata_current AS
    SELECT 'party'::text AS kind, tenant_id, code, doc, valid_from FROM party
    UNION ALL
    SELECT 'site'::text, tenant_id, code, doc, valid_from FROM site
    UNION ALL
    SELECT 'material'::text, tenant_id, code, doc, valid_from FROM material
    UNION ALL
    SELECT 'product'::text, tenant_id, code, doc, valid_from FROM product;

-- Strings of a JSON array as text[] ('{}' when absent).
CREATE FUNCTION circa_md_texts(p jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(x ORDER BY n), '{}')
      FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(p) = 'array' THEN p ELSE '[]' END)
           WITH ORDINALITY AS t(x, n)
$$;

-- References a document makes must exist in the tenant: CA101 names an unknown party,
-- CA102 an unknown bill-of-materials material with its JSON path in the message, so the API
-- answers 422 on the right field.
CREATE FUNCTION circa_md_check_refs(p_kind text, p_tenant text, p_doc jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF p_kind = 'site' AND NOT EXISTS (SELECT 1 FROM party
                                        WHERE tenant_id = p_tenant AND code = p_doc->>'party') THEN
        RAISE EXCEPTION 'unknown party %', p_doc->>'party' USING ERRCODE = 'CA101';
    END IF;
    IF p_kind <> 'product' OR jsonb_typeof(p_doc->'bom') IS DISTINCT FROM 'array' THEN
        RETURN;
    END IF;
    FOR r IN SELECT e->>'material' AS material, n - 1 AS i
               FROM jsonb_array_elements(p_doc->'bom') WITH ORDINALITY AS t(e, n) ORDER BY n LOOP
        IF NOT EXISTS (SELECT 1 FROM material WHERE tenant_id = p_tenant AND code = r.material) THEN
            RAISE EXCEPTION 'bom[%].material: unknown material %', r.i, r.material
                  USING ERRCODE = 'CA102';
        END IF;
    END LOOP;
END $$;

-- Writes one version: the kind's typed columns from doc, and the history row.
CREATE FUNCTION circa_md_write(p_kind text, p_tenant text, p_code text, p_doc jsonb,
                               p_at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM circa_md_check_refs(p_kind, p_tenant, p_doc);
    CASE p_kind
    WHEN 'party' THEN
        INSERT INTO party (tenant_id, code, name, roles, country, identifiers, doc, valid_from)
        VALUES (p_tenant, p_code, p_doc->>'name', circa_md_texts(p_doc->'roles'),
                p_doc->>'country', circa_md_texts(p_doc->'identifiers'), p_doc, p_at)
        ON CONFLICT (tenant_id, code) DO UPDATE SET
            name = EXCLUDED.name, roles = EXCLUDED.roles, country = EXCLUDED.country,
            identifiers = EXCLUDED.identifiers, doc = EXCLUDED.doc,
            valid_from = EXCLUDED.valid_from;
    WHEN 'site' THEN
        INSERT INTO site (tenant_id, code, party, name, kind, country, identifiers, doc,
                          valid_from)
        VALUES (p_tenant, p_code, p_doc->>'party', p_doc->>'name', p_doc->>'kind',
                p_doc->>'country', circa_md_texts(p_doc->'identifiers'), p_doc, p_at)
        ON CONFLICT (tenant_id, code) DO UPDATE SET
            party = EXCLUDED.party, name = EXCLUDED.name, kind = EXCLUDED.kind,
            country = EXCLUDED.country, identifiers = EXCLUDED.identifiers, doc = EXCLUDED.doc,
            valid_from = EXCLUDED.valid_from;
    WHEN 'material' THEN
        INSERT INTO material (tenant_id, code, name, category, hazardous, renewable,
                              density_kg_m3, value_per_kg, doc, valid_from)
        VALUES (p_tenant, p_code, p_doc->>'name', p_doc->>'category',
                coalesce((p_doc->>'hazardous')::boolean, false),
                coalesce((p_doc->>'renewable')::boolean, false),
                (p_doc->>'density_kg_m3')::double precision,
                (p_doc->>'value_per_kg')::double precision, p_doc, p_at)
        ON CONFLICT (tenant_id, code) DO UPDATE SET
            name = EXCLUDED.name, category = EXCLUDED.category,
            hazardous = EXCLUDED.hazardous, renewable = EXCLUDED.renewable,
            density_kg_m3 = EXCLUDED.density_kg_m3, value_per_kg = EXCLUDED.value_per_kg,
            doc = EXCLUDED.doc, valid_from = EXCLUDED.valid_from;
    WHEN 'product' THEN
        INSERT INTO product (tenant_id, code, name, revision, status, mass_kg, lifetime_days,
                             industry_lifetime_days, doc, valid_from)
        VALUES (p_tenant, p_code, p_doc->>'name', p_doc->>'revision', p_doc->>'status',
                (p_doc->>'mass_kg')::double precision,
                (p_doc->>'lifetime_days')::double precision,
                (p_doc->>'industry_lifetime_days')::double precision, p_doc, p_at)
        ON CONFLICT (tenant_id, code) DO UPDATE SET
            name = EXCLUDED.name, revision = EXCLUDED.revision, status = EXCLUDED.status,
            mass_kg = EXCLUDED.mass_kg, lifetime_days = EXCLUDED.lifetime_days,
            industry_lifetime_days = EXCLUDED.industry_lifetime_days, doc = EXCLUDED.doc,
            valid_from = EXCLUDED.valid_from;
    END CASE;
    INSERT INTO masterdata_history (tenant_id, kind, code, valid_from, doc)
    VALUES (p_tenant, p_kind, p_code, p_at, p_doc);
END $$;

-- Serialises writers of one record and returns its current version (NULLs when none).
-- The lock is taken before anything is read, so two creates of a new code cannot both see
-- it missing, and the version read is the one this writer replaces.
CREATE FUNCTION circa_md_lock(p_kind text, p_tenant text, p_code text,
                              OUT o_doc jsonb, OUT o_valid_from timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || '/' || p_kind || '/' || p_code, 0));
    SELECT doc, valid_from INTO o_doc, o_valid_from FROM masterdata_current
     WHERE kind = p_kind AND tenant_id = p_tenant AND code = p_code;
END $$;

-- A new version's valid-from: the clock after the lock, not the transaction start, so
-- versions of one record are ordered as they were written (strictly, even on a coarse clock).
CREATE FUNCTION circa_md_next_time(p_prev timestamptz) RETURNS timestamptz
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN p_prev IS NULL OR clock_timestamp() > p_prev THEN clock_timestamp()
                ELSE p_prev + interval '1 microsecond' END
$$;

-- POST: 'created', 'same' (an identical record exists) or 'conflict' (the code holds other
-- content); o_record is the stored record in every case.
CREATE FUNCTION circa_md_create(p_kind text, p_tenant text, p_code text, p_doc jsonb,
                                OUT o_status text, OUT o_record jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    cur record;
    at timestamptz;
BEGIN
    SELECT * INTO cur FROM circa_md_lock(p_kind, p_tenant, p_code);
    IF cur.o_doc IS NOT NULL THEN
        o_status := CASE WHEN cur.o_doc = p_doc THEN 'same' ELSE 'conflict' END;
        o_record := circa_md_record(cur.o_doc, p_code, cur.o_valid_from);
        RETURN;
    END IF;
    at := circa_md_next_time(NULL);
    PERFORM circa_md_write(p_kind, p_tenant, p_code, p_doc, at);
    o_status := 'created';
    o_record := circa_md_record(p_doc, p_code, at);
END $$;

-- PUT: 'updated', 'same' (nothing changed, no new version) or 'not_found'.
CREATE FUNCTION circa_md_replace(p_kind text, p_tenant text, p_code text, p_doc jsonb,
                                 OUT o_status text, OUT o_record jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    cur record;
    at timestamptz;
BEGIN
    SELECT * INTO cur FROM circa_md_lock(p_kind, p_tenant, p_code);
    IF cur.o_doc IS NULL THEN
        o_status := 'not_found';
        RETURN;
    END IF;
    IF cur.o_doc = p_doc THEN
        o_status := 'same';
        o_record := circa_md_record(cur.o_doc, p_code, cur.o_valid_from);
        RETURN;
    END IF;
    at := circa_md_next_time(cur.o_valid_from);
    PERFORM circa_md_write(p_kind, p_tenant, p_code, p_doc, at);
    o_status := 'updated';
    o_record := circa_md_record(p_doc, p_code, at);
END $$;

-- The version in force at p_at (NULL when the record did not exist then).
CREATE FUNCTION circa_md_at(p_kind text, p_tenant text, p_code text, p_at timestamptz)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT circa_md_record(doc, code, valid_from) FROM masterdata_history
     WHERE tenant_id = p_tenant AND kind = p_kind AND code = p_code AND valid_from <= p_at
     ORDER BY valid_from DESC LIMIT 1
$$;

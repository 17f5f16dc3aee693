-- PLM adapter: the polling state of each PLM source (so a restarted circad resumes where it
-- stopped), and the one write the adapter makes to master data, through 004's functions.

-- One row per adapter instance (names are unique across adapters). etag belongs to
-- etag_url: a conditional request is only meaningful for the URL that produced the ETag.
CREATE TABLE plm_source (
    adapter         text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenant (id),
    source_url      text NOT NULL,
    cursor          text,
    etag            text,
    etag_url        text,
    failures        integer NOT NULL DEFAULT 0,
    last_ok         timestamptz,
    last_error      text,
    last_error_time timestamptz,
    products_written bigint NOT NULL DEFAULT 0,
    updated         timestamptz NOT NULL DEFAULT now()
);

-- A successful poll or page: the new cursor and ETag, failures back to 0.
CREATE FUNCTION circa_plm_ok(p_adapter text, p_tenant text, p_url text, p_cursor text,
                             p_etag text, p_etag_url text, p_written bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO plm_source (adapter, tenant_id, source_url, cursor, etag, etag_url, last_ok,
                            products_written)
    VALUES (p_adapter, p_tenant, p_url, p_cursor, p_etag, p_etag_url, now(), p_written)
    ON CONFLICT (adapter) DO UPDATE SET
        tenant_id = EXCLUDED.tenant_id, source_url = EXCLUDED.source_url,
        cursor = EXCLUDED.cursor, etag = EXCLUDED.etag, etag_url = EXCLUDED.etag_url,
        failures = 0, last_ok = now(), updated = now(),
        products_written = plm_source.products_written + p_written
$$;

-- A failed attempt: counted and explained; the cursor and ETag stay as they were.
CREATE FUNCTION circa_plm_failed(p_adapter text, p_tenant text, p_url text, p_error text)
RETURNS integer LANGUAGE sql AS $$
    INSERT INTO plm_source (adapter, tenant_id, source_url, failures, last_error,
                            last_error_time)
    VALUES (p_adapter, p_tenant, p_url, 1, p_error, now())
    ON CONFLICT (adapter) DO UPDATE SET
        failures = plm_source.failures + 1, last_error = EXCLUDED.last_error,
        last_error_time = now(), updated = now()
    RETURNING failures
$$;

-- A product from PLM: its fields replace those of the current version and every other field
-- (set through the API, e.g. lifetime_days) is kept. Created with circa_md_create when new,
-- else changed with circa_md_replace, so history and valid-from times are the API's.
-- Returns 'created', 'updated' or 'same'. A new product without a name is named by its code.
CREATE FUNCTION circa_plm_product(p_tenant text, p_code text, p_doc jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cur record;
    r record;
BEGIN
    -- The record's lock, held to the end of the transaction: the merge reads the version it
    -- replaces (the functions below take the same lock again, which is re-entrant).
    SELECT * INTO cur FROM circa_md_lock('product', p_tenant, p_code);
    IF cur.o_doc IS NULL THEN
        SELECT * INTO r FROM circa_md_create('product', p_tenant, p_code,
                                             jsonb_build_object('name', p_code) || p_doc);
    ELSE
        SELECT * INTO r FROM circa_md_replace('product', p_tenant, p_code, cur.o_doc || p_doc);
    END IF;
    RETURN r.o_status;
END $$;

-- A material a bill names that the catalogue lacks: created with only a name, so the product
-- can reference it; an existing material is never touched ('exists').
CREATE FUNCTION circa_plm_material(p_tenant text, p_code text, p_name text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF EXISTS (SELECT 1 FROM material WHERE tenant_id = p_tenant AND code = p_code) THEN
        RETURN 'exists';
    END IF;
    SELECT * INTO r FROM circa_md_create('material', p_tenant, p_code,
                                         jsonb_build_object('name', coalesce(p_name, p_code)));
    RETURN r.o_status;
END $$;

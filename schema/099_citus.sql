-- Citus (docs/SCALING.md): when the citus extension is installed in this database, distribute every tenant-scoped table by tenant_id, co-located with event, and make the code lists, tenant and api_key reference tables; without citus this migration does nothing.
--
-- Which tables: every table of the public schema whose primary key holds tenant_id is
-- distributed (one with a tenant_id outside its key, like plm_source, is a reference table), so a table added by an earlier migration needs
-- no change here. Their foreign keys are dropped first and added back at the end: a local table
-- with a key to a reference table would otherwise turn into a "Citus local" table, and Citus
-- refuses keys between those and distributed tables while the tables move one by one.
-- Which functions: the read-only ones whose first argument is the tenant are distributed by
-- that argument, co-located with event, so a call that is a statement of its own (GET
-- /v1/metrics, lineage, reports) is delegated whole to the node holding the tenant. Writers
-- run on the coordinator, where each of their statements is a router query (tenant_id = $1).
DO $citus$
DECLARE
    t record;
    f record;
    adds text[];
    n int;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE NOTICE '099_citus: citus is not installed; tables stay local';
        RETURN;
    END IF;
    -- One transaction: DDL on shards goes over one connection per node.
    SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
    -- report rows are guarded by a BEFORE UPDATE OR DELETE trigger that only raises: it reads
    -- nothing, so it is safe on shards.
    SET LOCAL citus.enable_unsafe_triggers TO on;

    -- The foreign keys of the tables to distribute (and api_key's), dropped now and added back
    -- once every table is in place (api_key's is not: see below).
    SELECT array_agg(format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass,
                            c.conname, pg_get_constraintdef(c.oid)) ORDER BY c.conrelid, c.conname)
      INTO adds
      FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
      JOIN pg_namespace s ON s.oid = r.relnamespace AND s.nspname = 'public'
     WHERE c.contype = 'f' AND r.relname <> 'api_key'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.oid
                      AND a.attname = 'tenant_id' AND NOT a.attisdropped);
    FOR t IN SELECT c.conrelid::regclass AS rel, c.conname
               FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
               JOIN pg_namespace s ON s.oid = r.relnamespace AND s.nspname = 'public'
              WHERE c.contype = 'f'
                AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.oid
                               AND a.attname = 'tenant_id' AND NOT a.attisdropped) LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', t.rel, t.conname);
    END LOOP;

    -- Small tables copied to every node: the code lists, tenant, and every table with a
    -- tenant_id whose primary key leaves tenant_id out (adapter settings such as plm_source,
    -- found by their own key without knowing the tenant). api_key is the exception: circad's
    -- key lookup (auth.c) is an UPDATE … RETURNING extract(epoch FROM expires_at), and Citus
    -- refuses non-immutable functions in RETURNING on every table it manages (reference and
    -- "Citus local" alike). So api_key stays a plain table on the coordinator, where circad
    -- and the CLI connect, and loses its foreign key to tenant (a key to a reference table
    -- would make it a Citus table). docs/SCALING.md gives the auth.c change that lets it be a
    -- reference table.
    FOR t IN SELECT x.rel FROM unnest(ARRAY['ewc', 'rd_operation', 'unit', 'tenant']) AS x(rel)
              WHERE to_regclass(x.rel) IS NOT NULL
             UNION ALL
             SELECT * FROM (
             SELECT c.relname::text
               FROM pg_class c
               JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                AND NOT a.attisdropped
              WHERE c.relkind = 'r' AND c.relname <> 'api_key'
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                                 WHERE k.conrelid = c.oid AND k.contype = 'p'
                                   AND a.attnum = ANY (k.conkey))
              ORDER BY 1) y LOOP
        PERFORM create_reference_table(t.rel);
    END LOOP;

    -- Every other table with a tenant_id, event first so the others join its co-location group.
    FOR t IN SELECT c.relname::text AS rel
               FROM pg_class c
               JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                AND NOT a.attisdropped
              WHERE c.relkind IN ('r', 'p')
                AND c.relname <> 'api_key'
                AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)
              ORDER BY c.relname <> 'event', c.relname LOOP
        IF t.rel = 'event' THEN
            PERFORM create_distributed_table('event', 'tenant_id');
        ELSE
            PERFORM create_distributed_table(t.rel, 'tenant_id', colocate_with => 'event');
        END IF;
    END LOOP;

    FOR t IN SELECT unnest(coalesce(adds, '{}')) AS stmt LOOP
        EXECUTE t.stmt;
    END LOOP;

    -- Citus 13.2 deparses a simple CASE (CASE x WHEN 'a' THEN …) wrongly in the query it sends
    -- to a shard ("WHEN NULL::boolean": operator does not exist: text = boolean). The two
    -- functions with one get the equivalent searched CASE (CASE WHEN x = 'a' THEN …).
    FOR f IN SELECT p.oid, pg_get_functiondef(p.oid) AS def,
                    substring(p.prosrc FROM 'CASE ([a-z]+)\.type WHEN') AS alias
               FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace AND s.nspname = 'public'
              WHERE p.proname IN ('circa_rollup_add', 'circa_value')
                AND p.prosrc ~ 'CASE [a-z]+\.type WHEN' LOOP
        EXECUTE regexp_replace(
                    regexp_replace(f.def, 'CASE ([a-z]+)\.type WHEN', 'CASE WHEN \1.type =', 'g'),
                    '(\s)WHEN (''[a-z_]+'') THEN', '\1WHEN ' || f.alias || '.type = \2 THEN', 'g');
    END LOOP;

    -- Views made before their tables were distributed exist on the coordinator only; made
    -- again now, Citus creates them on every node (delegated functions read them there).
    FOR t IN SELECT c.oid::regclass::text AS rel, pg_get_viewdef(c.oid) AS def
               FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
              WHERE c.relkind = 'v'
                AND NOT EXISTS (SELECT 1 FROM pg_dist_object o
                                 WHERE o.classid = 'pg_class'::regclass AND o.objid = c.oid) LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', t.rel, t.def);
    END LOOP;

    -- Read-only tenant-first functions (STABLE: metrics, lineage, reports, the id check) are
    -- delegated to the tenant's node when called on their own. Writers are not: a delegated
    -- writer (circa_derive_group) called inside the ingest pipeline's transaction crashed
    -- Citus 13.2.2 workers on COMMIT PREPARED; on the coordinator each of their statements
    -- is a router query (tenant_id = p_tenant) instead.
    n := 0;
    FOR f IN SELECT p.oid::regprocedure AS sig
               FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace AND s.nspname = 'public'
              WHERE p.proname LIKE 'circa\_%'
                AND p.pronargs >= 1 AND p.proargtypes[0] = 'text'::regtype
                AND p.proargnames[1] IN ('p_tenant')
                AND p.prokind = 'f' AND p.provolatile <> 'v'
                AND NOT EXISTS (SELECT 1 FROM pg_dist_object o
                                 WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid
                                   AND o.distribution_argument_index IS NOT NULL) LOOP
        PERFORM create_distributed_function(f.sig, '$1'::text, colocate_with => 'event');
        n := n + 1;
    END LOOP;
    -- Every other function of ours exists on the workers too, as delegated functions call them.
    FOR f IN SELECT p.oid::regprocedure AS sig
               FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace AND s.nspname = 'public'
              WHERE p.proname LIKE 'circa\_%' AND p.prokind = 'f'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                   AND d.objid = p.oid AND d.deptype = 'e')
                AND NOT EXISTS (SELECT 1 FROM pg_dist_object o
                                 WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid) LOOP
        PERFORM create_distributed_function(f.sig);
    END LOOP;
    RAISE NOTICE '099_citus: % tables distributed by tenant_id, % functions delegated',
        (SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'), n;
END
$citus$;

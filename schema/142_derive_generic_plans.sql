-- The derive step plans its statements once per connection, not once per tenant
-- (docs/PERFORMANCE.md, Metrics, "142").
--
-- Every statement of the step looks rows up by key within one tenant: tenant_id = p_tenant and
-- an id, an item, a lot, a seq range. With custom plans (plpgsql's default for the first calls
-- and whenever they look cheaper) the planner estimates tenant_id = 'x' from the column's
-- most-common-values list. A tenant that is not in that list while the list covers nearly every
-- row — a tenant created after the last ANALYZE in a database of few tenants, the usual case
-- for a new park — is estimated at one row. Every index that starts with tenant_id then looks
-- as cheap as the primary key, the smallest one wins, and a key lookup becomes a walk over all
-- of the tenant's rows: lifecycle lookups read 680-1,270 buffers instead of 4, and the new
-- tenant's ingest slows as it grows (demo park after a 400,000-event tenant: 5,200-5,700
-- events/s; on a database that knows the tenant: 8,000+). Autovacuum re-analyses a table only
-- after a tenth of it changed, so on a large database that state lasts long.
--
-- A generic plan estimates tenant_id = $1 as an average tenant (1 / number of tenants), which
-- is what a key lookup needs: the primary key. The same demo load then runs at 11,000-12,400
-- events/s. The setting is inherited by every function the step calls (120's consignment
-- functions already set it). JIT is off for the step too: a generic estimate of a seq range on
-- a large ledger can pass jit_above_cost, and compiling costs more than any group's work.
--
-- CREATE OR REPLACE FUNCTION drops these settings: a migration that redefines
-- circa_derive_group must set them again (test_demo checks them).
-- Plain PostgreSQL only: on Citus the tenant must be a constant for shard pruning (100), so
-- 105/131's version keeps custom plans.
DO $do$
DECLARE
    f regprocedure;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.proname = 'circa_derive_group' AND p.pronamespace = 'public'::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET plan_cache_mode = force_generic_plan', f);
        EXECUTE format('ALTER FUNCTION %s SET jit = off', f);
    END LOOP;
END $do$;

-- Plans that do not depend on statistics. While a tenant's event table grows faster than
-- autovacuum re-analyses it, the planner believes it holds a few hundred rows and may read all
-- of them (hash join, sequential scan) to find a few ids. These functions run with index
-- access pinned, so their cost is per id or per event of the group, never per table.

-- Which of these ids exist already, and with the same canonical bytes or not.
CREATE FUNCTION circa_existing(p_tenant text, p_ids text[], p_canons bytea[])
RETURNS TABLE (i bigint, same boolean, block_hash text)
LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    SELECT c.i, e.canon = c.canon, b.hash
      FROM unnest(p_ids, p_canons) WITH ORDINALITY AS c(id, canon, i)
      JOIN event e ON e.tenant_id = p_tenant AND e.id = c.id
      JOIN ledger_block b ON b.tenant_id = e.tenant_id AND b.seq = e.block_seq
$$;

ALTER FUNCTION circa_derive(text, bigint, bigint)
    SET enable_seqscan = off;
ALTER FUNCTION circa_derive(text, bigint, bigint)
    SET enable_hashjoin = off;
ALTER FUNCTION circa_derive(text, bigint, bigint)
    SET enable_mergejoin = off;

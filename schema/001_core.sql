-- circa core schema: code lists, tenants and keys, master data, the event ledger.
-- Every tenant-scoped table carries tenant_id in every primary and foreign key, so the schema
-- can be distributed by tenant_id (Citus) without change. Code lists, tenant and api_key are
-- small reference tables.

-- Code lists ---------------------------------------------------------------------------------
CREATE TABLE ewc (
    code        text PRIMARY KEY,            -- '15', '1501' or '150102' (no spaces, no '*')
    level       text NOT NULL CHECK (level IN ('chapter', 'subchapter', 'entry')),
    chapter     text,
    subchapter  text,
    hazardous   boolean NOT NULL,
    description text NOT NULL
);

CREATE TABLE rd_operation (
    code        text PRIMARY KEY,            -- R1..R13, D1..D15
    kind        char(1) NOT NULL CHECK (kind IN ('R', 'D')),
    -- Eurostat treatment category; interim and pretreatment are followed to a final operation.
    category    text NOT NULL CHECK (category IN ('energy_recovery', 'recycling', 'incineration',
                    'landfill', 'other_disposal', 'pretreatment', 'interim')),
    description text NOT NULL
);

CREATE TABLE unit (
    code        text PRIMARY KEY,            -- kg, t, g, lb, l, m3
    kind        text NOT NULL CHECK (kind IN ('mass', 'volume')),
    factor      double precision NOT NULL,   -- to kg (mass) or to m3 (volume)
    uncefact    text NOT NULL UNIQUE         -- KGM, TNE, GRM, LBR, LTR, MTQ
);

-- Tenants and keys ---------------------------------------------------------------------------
CREATE TABLE tenant (
    id                      text PRIMARY KEY,
    name                    text NOT NULL,
    time_zone               text NOT NULL DEFAULT 'UTC',
    currency                char(3) NOT NULL DEFAULT 'EUR',
    mass_balance_tolerance  double precision NOT NULL DEFAULT 0.02
                            CHECK (mass_balance_tolerance >= 0 AND mass_balance_tolerance < 1),
    mode                    text NOT NULL DEFAULT 'strict' CHECK (mode IN ('strict', 'lenient')),
    -- Head of the tenant's hash chain: last event seq and last block hash. Updated in the
    -- same transaction as the events, under this row's lock (see circa_advance_head).
    head_seq                bigint NOT NULL DEFAULT 0,
    head_hash               text NOT NULL DEFAULT repeat('0', 64),
    sign_public_key         bytea,           -- optional Ed25519 key that signs chain heads
    created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_key (
    key_id       text PRIMARY KEY,           -- looked up without knowing the tenant
    tenant_id    text NOT NULL REFERENCES tenant (id),
    party        text,                       -- NULL: tenant-wide (admin)
    role         text NOT NULL CHECK (role IN ('ingest', 'read', 'report', 'admin')),
    secret_hash  bytea NOT NULL,             -- SHA-256 of the secret; the key is shown once
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_key_tenant ON api_key (tenant_id);

-- Master data --------------------------------------------------------------------------------
-- Current version in typed columns plus the whole record in doc; every version is kept in
-- masterdata_history with its valid-from time.
CREATE TABLE party (
    tenant_id   text NOT NULL REFERENCES tenant (id),
    code        text NOT NULL,
    name        text NOT NULL,
    roles       text[] NOT NULL DEFAULT '{}',
    country     char(2),
    identifiers text[] NOT NULL DEFAULT '{}',
    doc         jsonb NOT NULL,
    valid_from  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE site (
    tenant_id   text NOT NULL,
    code        text NOT NULL,
    party       text NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL,
    country     char(2),
    identifiers text[] NOT NULL DEFAULT '{}',
    doc         jsonb NOT NULL,
    valid_from  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code),
    FOREIGN KEY (tenant_id, party) REFERENCES party (tenant_id, code)
);
CREATE INDEX site_identifiers ON site USING gin (identifiers);

CREATE TABLE material (
    tenant_id     text NOT NULL REFERENCES tenant (id),
    code          text NOT NULL,
    name          text NOT NULL,
    category      text,
    hazardous     boolean NOT NULL DEFAULT false,
    renewable     boolean NOT NULL DEFAULT false,
    density_kg_m3 double precision CHECK (density_kg_m3 > 0),
    value_per_kg  double precision CHECK (value_per_kg >= 0),
    doc           jsonb NOT NULL,
    valid_from    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE product (
    tenant_id              text NOT NULL REFERENCES tenant (id),
    code                   text NOT NULL,
    name                   text NOT NULL,
    revision               text,
    status                 text CHECK (status IN ('released', 'obsolete', 'end_of_life')),
    mass_kg                double precision CHECK (mass_kg > 0),
    lifetime_days          double precision,
    industry_lifetime_days double precision,
    doc                    jsonb NOT NULL,
    valid_from             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code)
);

CREATE TABLE masterdata_history (
    tenant_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('party', 'site', 'material', 'product')),
    code       text NOT NULL,
    valid_from timestamptz NOT NULL,
    doc        jsonb NOT NULL,
    PRIMARY KEY (tenant_id, kind, code, valid_from)
);

CREATE TABLE item (
    tenant_id  text NOT NULL REFERENCES tenant (id),
    id         text NOT NULL,
    product    text,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE lot (
    tenant_id  text NOT NULL REFERENCES tenant (id),
    id         text NOT NULL,
    material   text,
    site       text,
    first_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- The ledger ---------------------------------------------------------------------------------
-- Append-only. canon holds the RFC 8785 canonical bytes the Merkle leaves hash; the typed
-- columns are what queries and metrics read.
CREATE TABLE event (
    tenant_id     text NOT NULL,
    id            text NOT NULL,
    seq           bigint NOT NULL,           -- per-tenant, in commit order
    block_seq     bigint NOT NULL,           -- seq of the last event of its ledger block
    type          text NOT NULL,
    event_time    timestamptz NOT NULL,
    time_raw      text NOT NULL,             -- time as submitted, with its offset
    recorded_time timestamptz NOT NULL,
    site          text,
    from_site     text,
    to_site       text,
    material      text,
    ewc           text,
    operation     text,
    quantity_kg   double precision,
    item          text,
    lot           text,
    product       text,
    corrects      text,
    flags         text[] NOT NULL DEFAULT '{}',
    canon         bytea NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX event_seq ON event (tenant_id, seq);

CREATE TABLE ledger_block (
    tenant_id  text NOT NULL,
    seq        bigint NOT NULL,              -- seq of the block's last event
    count      integer NOT NULL CHECK (count > 0),
    prev       text NOT NULL,                -- hex SHA-256 of the previous block (64 zeros first)
    root       text NOT NULL,                -- hex RFC 6962 Merkle root of the block's events
    time       text NOT NULL,                -- RFC 3339 UTC, exactly as hashed
    hash       text NOT NULL,                -- hex SHA-256 of JCS {count, prev, root, seq, tenant, time}
    signature  bytea,                        -- Ed25519 over hash, when the tenant has a key
    PRIMARY KEY (tenant_id, seq)
);

-- Moves a tenant's chain head from (old_seq, old_hash) to (new_seq, new_hash), holding the
-- tenant row's lock until the transaction ends. Raises CA001 when another writer moved the
-- head first, so a stale writer rolls back and retries with the real head.
CREATE FUNCTION circa_advance_head(p_tenant text, p_old_seq bigint, p_old_hash text,
                                   p_new_seq bigint, p_new_hash text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tenant SET head_seq = p_new_seq, head_hash = p_new_hash
     WHERE id = p_tenant AND head_seq = p_old_seq AND head_hash = p_old_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ledger head of tenant % moved', p_tenant USING ERRCODE = 'CA001';
    END IF;
END $$;

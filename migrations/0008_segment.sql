-- 0008: what the segment engine (docs/SEGMENTS.md) needs from the store.
--
-- customer.region: the customer's region as the brand records it (a province
-- or city name such as "上海"), customer.stage: the lifecycle stage, a name
-- the tenant chooses ("lead", "new", "repeat", "vip", ...), customer.phone:
-- the phone number as given (personal data: never logged; exports hash it).
-- All three are written through PATCH /api/v1/customers/{id}; NULL = unknown.
ALTER TABLE customer ADD COLUMN region TEXT;
ALTER TABLE customer ADD COLUMN stage TEXT;
ALTER TABLE customer ADD COLUMN phone TEXT;

-- Saved segments: a named expression of the tenant. The count is live (the
-- engine evaluates it when asked); last_count/last_count_at keep the latest
-- figure for lists that show many segments at once.
CREATE TABLE segment (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name          TEXT NOT NULL,
    expr          TEXT NOT NULL,
    description   TEXT,
    created_by    TEXT,
    last_count    INTEGER,
    last_count_at INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX segment_name ON segment(tenant_id, name);

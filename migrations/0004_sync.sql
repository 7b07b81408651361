-- 0004: full sync with WeCom (src/sync/sync.c).
--
-- sync_run: one row per full sync of a tenant, updated as it goes (phase,
-- done/total, API calls, change counts) so the API and `siyu sync` can show
-- progress. At most one running row per tenant (partial unique index).
CREATE TABLE sync_run (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    kind        TEXT NOT NULL DEFAULT 'full',
    origin      TEXT NOT NULL,          -- api | periodic | cli | overflow
    state       TEXT NOT NULL,          -- running | done | failed
    phase       TEXT NOT NULL,          -- start | tags | employees | customers | groups | reconcile | finished
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    calls       INTEGER NOT NULL DEFAULT 0,  -- WeCom API calls (wecom_call invocations)
    requests    INTEGER NOT NULL DEFAULT 0,  -- HTTP requests, retries included
    items       INTEGER NOT NULL DEFAULT 0,  -- WeCom records processed
    counts      TEXT,                   -- JSON {"customers":{"created":n,"updated":n,"ended":n},...}
    error       TEXT,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,       -- heartbeat: every write step of the run
    finished_at INTEGER
);
CREATE INDEX sync_run_tenant ON sync_run(tenant_id, id);
CREATE UNIQUE INDEX sync_run_running ON sync_run(tenant_id) WHERE state='running';

-- The corp tags WeCom holds on one follow record (customer × employee), as
-- batch/get_by_user and externalcontact/get report them. customer_tag keeps
-- the union over a customer's active follow records with source 'wecom'.
CREATE TABLE relationship_tag (
    tenant_id   INTEGER NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
    employee_id INTEGER NOT NULL REFERENCES employee(id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tag(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, employee_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX relationship_tag_tag ON relationship_tag(tag_id);

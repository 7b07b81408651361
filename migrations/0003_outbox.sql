-- 0003: the durable outbox (every call that changes something in WeCom) and
-- the tenant's default welcome message, its first producer.
--
-- outbox: one row per call. Times: next_at and deadline in milliseconds (the
-- worker's clock; welcome codes live 20 s), the others in seconds like every
-- other table. max_attempts 0 = the server's outbox_max_attempts, fixed at the
-- first claim. doubt: 1 when the row was found 'sending' at start-up (the
-- server died mid-delivery), so its kind's doubt policy runs before a resend.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    tenant_id    INTEGER NOT NULL,
    kind         TEXT NOT NULL,          -- wecom_endpoint name: send_welcome_msg, mark_tag, ...
    body         TEXT NOT NULL,          -- request JSON (compact)
    lane         INTEGER NOT NULL DEFAULT 1 CHECK (lane BETWEEN 0 AND 2),
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending','sending','sent','failed','dead','cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,       -- ms
    deadline     INTEGER,                -- ms; NULL = none
    doubt        INTEGER NOT NULL DEFAULT 0,
    errcode      INTEGER,
    error        TEXT,                   -- errcode name + errmsg; never secrets
    result       TEXT,                   -- compact answer JSON, bounded
    origin       TEXT,
    ref          TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    sent_at      INTEGER
);
-- The workers' due query: per lane, waiting rows in id order (next_at is in
-- the index so the filter needs no table lookup).
CREATE INDEX outbox_due ON outbox(lane, id, next_at) WHERE state IN ('pending', 'failed');
-- Start-up: rows left 'sending' by a crash.
CREATE INDEX outbox_sending ON outbox(id) WHERE state = 'sending';
-- The API's listings: newest first per tenant, optionally by state or kind.
CREATE INDEX outbox_tenant ON outbox(tenant_id, id);
CREATE INDEX outbox_tenant_state ON outbox(tenant_id, state, id);
CREATE INDEX outbox_tenant_kind ON outbox(tenant_id, kind, id);

-- A tenant's default welcome message (sent on add_external_contact and
-- add_half_external_contact callbacks that carry a WelcomeCode).
CREATE TABLE welcome_config (
    tenant_id  INTEGER PRIMARY KEY,
    text       TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL,
    updated_by TEXT
);

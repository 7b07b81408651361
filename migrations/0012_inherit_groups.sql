-- 0012: inheritance rules and resignations (F3, docs/INHERITANCE.md) and
-- customer-group tools (F7, docs/GROUPS.md): group tags, the member log
-- behind daily group statistics, rolling group QR codes.

-- The tenant's rule for a resigned employee's customers and groups:
--   manual             left pending for an operator (POST /inheritance/assign)
--   store_manager      to the manager of the employee's store (store_manager)
--   store_round_robin  round-robin over the active employees of the store
CREATE TABLE inherit_rule (
    tenant_id   INTEGER PRIMARY KEY REFERENCES tenant(tenant_id),
    mode        TEXT NOT NULL DEFAULT 'manual',
    updated_at  INTEGER NOT NULL
);

CREATE TABLE store_manager (
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    store_id    INTEGER NOT NULL REFERENCES store(id),
    employee_id INTEGER NOT NULL REFERENCES employee(id),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, store_id)
);

-- One row per resignation, written by the trigger below whatever marked the
-- employee resigned (the API or a sync). state:
--   queued    waiting for the inheritance worker (get_unassigned_list)
--   listed    the unassigned list was read; customers and groups are in
--             inherit_pending and, by the rule, handed to transfers
--   failed    the list could not be read (error); retried by the worker
CREATE TABLE resignation (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    employee_id INTEGER NOT NULL REFERENCES employee(id),
    state       TEXT NOT NULL DEFAULT 'queued',
    mode        TEXT,
    customers   INTEGER NOT NULL DEFAULT 0,   -- listed by WeCom as unassigned
    chats       INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX resignation_state ON resignation(state, tenant_id);
CREATE INDEX resignation_employee ON resignation(tenant_id, employee_id);

CREATE TRIGGER employee_resigned_queue AFTER UPDATE OF status ON employee
WHEN NEW.status = 'resigned' AND OLD.status <> 'resigned'
BEGIN
    INSERT INTO resignation(tenant_id, employee_id, state, created_at, updated_at)
    VALUES (NEW.tenant_id, NEW.id, 'queued', CAST(strftime('%s','now') AS INTEGER),
            CAST(strftime('%s','now') AS INTEGER));
END;

-- A resigned employee's customer or group waiting for a takeover.
-- kind: customer | group. state:
--   pending   no takeover yet (manual rule, no store manager, or a customer
--             Siyu cannot transfer yet; reason says why)
--   assigned  handed over: customers to a transfer row (transfer_id), groups
--             to a groupchat/transfer call (outbox_id)
--   done      groups only: the call succeeded
--   failed    groups only: WeCom refused it (error)
CREATE TABLE inherit_pending (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenant(tenant_id),
    resignation_id INTEGER REFERENCES resignation(id),
    handover_employee_id INTEGER NOT NULL REFERENCES employee(id),
    kind          TEXT NOT NULL,
    customer_id   INTEGER REFERENCES customer(id),
    group_id      INTEGER REFERENCES group_chat(id),
    state         TEXT NOT NULL DEFAULT 'pending',
    reason        TEXT,
    takeover_employee_id INTEGER REFERENCES employee(id),
    transfer_id   INTEGER,
    outbox_id     INTEGER,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX inherit_pending_customer ON inherit_pending(tenant_id, handover_employee_id,
    customer_id) WHERE kind = 'customer';
CREATE UNIQUE INDEX inherit_pending_group ON inherit_pending(tenant_id, group_id)
    WHERE kind = 'group';
CREATE INDEX inherit_pending_state ON inherit_pending(tenant_id, handover_employee_id, state);
CREATE INDEX inherit_pending_outbox ON inherit_pending(tenant_id, outbox_id);

-- Siyu-only tags on group chats (WeCom has none).
CREATE TABLE group_tag (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX group_tag_name ON group_tag(tenant_id, name);

CREATE TABLE group_chat_tag (
    tenant_id   INTEGER NOT NULL,
    group_id    INTEGER NOT NULL REFERENCES group_chat(id),
    tag_id      INTEGER NOT NULL REFERENCES group_tag(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, group_id, tag_id)
);
CREATE INDEX group_chat_tag_tag ON group_chat_tag(tag_id, tenant_id);

-- Every member join and quit applied from a callback (one row per member of
-- MemChangeList that changed state): the source of daily group statistics.
-- action: join | quit.
CREATE TABLE group_member_log (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    group_id    INTEGER NOT NULL REFERENCES group_chat(id),
    member_id   TEXT NOT NULL,
    customer_id INTEGER,
    action      TEXT NOT NULL,
    scene       INTEGER,
    ts          INTEGER NOT NULL
);
CREATE INDEX group_member_log_group ON group_member_log(tenant_id, group_id, ts);
CREATE INDEX group_member_log_ts ON group_member_log(tenant_id, ts);

-- Rolling group QR codes: one WeCom join way (groupchat/add_join_way, at
-- most 5 chats) in front of an ordered set of groups; a group whose members
-- reach member_limit is marked full and the join way is updated to the next
-- groups. wecom_status: pending (add queued) | created (config_id known) |
-- failed | deleted. dirty: the set changed while the add was pending.
CREATE TABLE group_qr (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name          TEXT NOT NULL,
    state         TEXT NOT NULL,
    member_limit  INTEGER NOT NULL,
    config_id     TEXT,
    wecom_status  TEXT NOT NULL DEFAULT 'pending',
    wecom_error   TEXT,
    chat_ids      TEXT,          -- JSON array last sent to WeCom
    dirty         INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX group_qr_state ON group_qr(tenant_id, state);

CREATE TABLE group_qr_chat (
    tenant_id   INTEGER NOT NULL,
    qr_id       INTEGER NOT NULL REFERENCES group_qr(id),
    position    INTEGER NOT NULL,
    group_id    INTEGER NOT NULL REFERENCES group_chat(id),
    full_at     INTEGER,
    PRIMARY KEY (tenant_id, qr_id, position)
);
CREATE INDEX group_qr_chat_group ON group_qr_chat(tenant_id, group_id);

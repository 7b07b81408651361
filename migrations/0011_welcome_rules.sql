-- 0011: welcome-message rules (F5) and auto-tag rules (F6); docs/WELCOME.md.
--
-- welcome_rule: tried in (priority, id) order when a new contact with a
-- WelcomeCode arrives; the first enabled rule whose conditions all hold is
-- sent, else the tenant default (welcome_config), else nothing.
-- cond: canonical JSON {"channel_ids","channel_group_ids","employee_ids",
-- "department_ids","store_ids" (arrays of ids), "schedule" (channel schedule
-- text, tenant time zone), "date_from","date_to" ("YYYY-MM-DD", local,
-- inclusive)}; absent = any. attachments: canonical JSON array (<= 9).
CREATE TABLE welcome_rule (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name        TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1,
    cond        TEXT NOT NULL DEFAULT '{}',
    text        TEXT,
    attachments TEXT,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX welcome_rule_name ON welcome_rule(tenant_id, name);
CREATE INDEX welcome_rule_order ON welcome_rule(tenant_id, enabled, priority, id);

-- One row per new contact with a WelcomeCode: what was chosen and why.
-- source: rule | default | none (nothing enabled matched: no call).
-- The outcome is the outbox row's (sent / late / failed / pending), read
-- through outbox_id; why is a short JSON array of the reasons.
CREATE TABLE welcome_log (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    event_id    INTEGER NOT NULL,
    outbox_id   INTEGER,
    source      TEXT NOT NULL CHECK (source IN ('rule','default','none')),
    rule_id     INTEGER,
    why         TEXT,
    customer_id INTEGER,
    employee_id INTEGER,
    channel_id  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX welcome_log_outbox ON welcome_log(outbox_id) WHERE outbox_id IS NOT NULL;
CREATE INDEX welcome_log_tenant ON welcome_log(tenant_id, id);

-- Auto-tag rules. trigger: channel | group_join | keyword | event_count |
-- stage; params: canonical JSON for the trigger (docs/WELCOME.md); tag_ids:
-- JSON array of tag ids applied on a hit (only those the customer lacks).
CREATE TABLE tag_rule (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name        TEXT NOT NULL,
    trigger     TEXT NOT NULL
                CHECK (trigger IN ('channel','group_join','keyword','event_count','stage')),
    enabled     INTEGER NOT NULL DEFAULT 1,
    params      TEXT NOT NULL,
    tag_ids     TEXT NOT NULL,
    hits        INTEGER NOT NULL DEFAULT 0,
    last_hit_at INTEGER,
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX tag_rule_name ON tag_rule(tenant_id, name);
CREATE INDEX tag_rule_trigger ON tag_rule(tenant_id, trigger, enabled);

-- A hit: the rule applied at least one tag the customer did not have.
CREATE TABLE tag_rule_hit (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    rule_id     INTEGER NOT NULL REFERENCES tag_rule(id) ON DELETE CASCADE,
    customer_id INTEGER NOT NULL,
    event_id    INTEGER,
    tags        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX tag_rule_hit_rule ON tag_rule_hit(rule_id, id);

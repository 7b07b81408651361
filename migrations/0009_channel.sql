-- 0009: channel QR codes (渠道活码, F4; docs/CHANNELS.md).
--
-- A channel is one WeCom contact way (「联系我」, add_contact_way) whose
-- `state` Siyu generates; add_external_contact carries that state back, and
-- the relationship it creates is attributed to the channel (channel_id).
--
-- channel.wecom_status follows the outbox calls (store/channel.c):
--   pending   add_contact_way queued, no config_id yet
--   created   config_id known (edits go out as update_contact_way)
--   failed    add_contact_way gave up (wecom_error says why); retrying the
--             outbox row brings it back
--   deleted   del_contact_way delivered
-- channel.users: the JSON array of userids last sent to WeCom (add or
-- update); the roster job compares the schedule's answer with it and queues
-- update_contact_way only when they differ. channel.dirty: the channel was
-- edited while its add was still pending; the add's answer pushes the edit.

-- The tenant's time zone for day boundaries and schedules (NULL = Asia/Shanghai).
ALTER TABLE tenant ADD COLUMN time_zone TEXT;

CREATE TABLE channel_group (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name        TEXT NOT NULL,
    description TEXT,
    sort_order  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX channel_group_name ON channel_group(tenant_id, name);

CREATE TABLE channel (
    id                   INTEGER PRIMARY KEY,
    tenant_id            INTEGER NOT NULL REFERENCES tenant(tenant_id),
    group_id             INTEGER REFERENCES channel_group(id),
    name                 TEXT NOT NULL,
    state                TEXT NOT NULL,          -- generated, <= 30 characters
    config_id            TEXT,                   -- WeCom's; NULL until created
    qr_code              TEXT,
    type                 TEXT NOT NULL CHECK (type IN ('single','multi')),
    skip_verify          INTEGER NOT NULL DEFAULT 1,
    remark_template      TEXT,                   -- follow-record remark for arriving customers
    description_template TEXT,                   -- follow-record description
    daily_cap            INTEGER NOT NULL DEFAULT 0, -- adds per employee per day; 0 = no cap
    status               TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','deleted')),
    wecom_status         TEXT NOT NULL DEFAULT 'pending'
                         CHECK (wecom_status IN ('pending','created','failed','deleted')),
    wecom_error          TEXT,
    users                TEXT,
    dirty                INTEGER NOT NULL DEFAULT 0,
    created_by           TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER
);
CREATE UNIQUE INDEX channel_state ON channel(tenant_id, state);
CREATE UNIQUE INDEX channel_name ON channel(tenant_id, name) WHERE status = 'active';
CREATE INDEX channel_group_id ON channel(tenant_id, group_id);

-- Who the code routes to. role duty: on the code while on schedule and
-- under the cap; backup: only when no duty employee is. position keeps the
-- order given (a single-employee code takes the first available).
-- schedule: NULL = always, else the canonical text form
-- "mon-fri 09:00-12:00,13:00-18:00; sat 10:00-16:00" (tenant time zone).
CREATE TABLE channel_staff (
    tenant_id   INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL REFERENCES channel(id) ON DELETE CASCADE,
    employee_id INTEGER NOT NULL REFERENCES employee(id),
    role        TEXT NOT NULL CHECK (role IN ('duty','backup')),
    position    INTEGER NOT NULL,
    daily_cap   INTEGER,                 -- NULL = the channel's daily_cap; 0 = no cap
    schedule    TEXT,
    PRIMARY KEY (tenant_id, channel_id, employee_id)
) WITHOUT ROWID;
CREATE INDEX channel_staff_employee ON channel_staff(tenant_id, employee_id);

-- Auto-tags: applied to every customer who arrives through the channel.
CREATE TABLE channel_tag (
    tenant_id   INTEGER NOT NULL,
    channel_id  INTEGER NOT NULL REFERENCES channel(id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tag(id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, channel_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX channel_tag_tag ON channel_tag(tag_id);

-- The channel a relationship was acquired through (its state matched the
-- channel's when the add arrived). Statistics and daily caps read it.
ALTER TABLE relationship ADD COLUMN channel_id INTEGER REFERENCES channel(id);
CREATE INDEX relationship_channel ON relationship(tenant_id, channel_id, employee_id, added_at)
    WHERE channel_id IS NOT NULL;

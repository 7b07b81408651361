-- 0001: the foundation schema. Every table carries tenant_id; customer-owned
-- tables index (tenant_id, customer_id) first. Times are Unix epoch seconds.

CREATE TABLE tenant (
    tenant_id   INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE callback_config (
    tenant_id   INTEGER PRIMARY KEY REFERENCES tenant(tenant_id),
    corp_id     TEXT NOT NULL,
    token       TEXT NOT NULL,
    aes_key     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE department (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    wecom_id    INTEGER,
    name        TEXT NOT NULL,
    parent_id   INTEGER REFERENCES department(id),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX department_wecom ON department(tenant_id, wecom_id) WHERE wecom_id IS NOT NULL;
CREATE INDEX department_parent ON department(tenant_id, parent_id);

CREATE TABLE store (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenant(tenant_id),
    name          TEXT NOT NULL,
    department_id INTEGER REFERENCES department(id),
    city          TEXT,
    address       TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX store_tenant ON store(tenant_id);

CREATE TABLE employee (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenant(tenant_id),
    userid        TEXT NOT NULL,
    name          TEXT,
    department_id INTEGER REFERENCES department(id),
    store_id      INTEGER REFERENCES store(id),
    status        TEXT NOT NULL DEFAULT 'active',   -- active | resigned
    resigned_at   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX employee_userid ON employee(tenant_id, userid);
CREATE INDEX employee_department ON employee(tenant_id, department_id);

CREATE TABLE customer (
    id             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenant(tenant_id),
    external_userid TEXT,
    name           TEXT,
    gender         INTEGER,
    type           INTEGER,
    corp_name      TEXT,
    first_added_at INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
-- external_userid is a display copy; lookups and uniqueness go through
-- identity(kind 'wecom_external_userid'), so it carries no second index.
CREATE INDEX customer_created ON customer(tenant_id, created_at);

CREATE TABLE identity (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    customer_id INTEGER NOT NULL REFERENCES customer(id),
    kind        TEXT NOT NULL,          -- wecom_external_userid | unionid | openid | phone_hash | member_id | ...
    value       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX identity_value ON identity(tenant_id, kind, value);
CREATE INDEX identity_customer ON identity(tenant_id, customer_id);

-- status: active | deleted_by_customer | deleted_by_employee | transferred
CREATE TABLE relationship (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    customer_id INTEGER NOT NULL REFERENCES customer(id),
    employee_id INTEGER NOT NULL REFERENCES employee(id),
    status      TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    add_way     INTEGER,
    state       TEXT,                   -- acquisition channel (contact way state)
    remark      TEXT,
    description TEXT,
    ended_at    INTEGER,
    end_reason  TEXT,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX relationship_pair ON relationship(tenant_id, customer_id, employee_id);
CREATE INDEX relationship_employee ON relationship(tenant_id, employee_id, status);
CREATE INDEX relationship_added ON relationship(tenant_id, added_at);

CREATE TABLE tag_group (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    wecom_id    TEXT,
    name        TEXT NOT NULL,
    sort_order  INTEGER NOT NULL DEFAULT 0,
    source      TEXT NOT NULL DEFAULT 'internal',   -- internal | wecom
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX tag_group_name ON tag_group(tenant_id, name);
CREATE UNIQUE INDEX tag_group_wecom ON tag_group(tenant_id, wecom_id) WHERE wecom_id IS NOT NULL;

CREATE TABLE tag (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenant(tenant_id),
    group_id    INTEGER REFERENCES tag_group(id),
    wecom_id    TEXT,
    name        TEXT NOT NULL,
    sort_order  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX tag_name ON tag(tenant_id, group_id, name);
CREATE UNIQUE INDEX tag_wecom ON tag(tenant_id, wecom_id) WHERE wecom_id IS NOT NULL;
CREATE INDEX tag_group_id ON tag(group_id);

CREATE TABLE customer_tag (
    tenant_id   INTEGER NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customer(id),
    tag_id      INTEGER NOT NULL REFERENCES tag(id),
    source      TEXT NOT NULL DEFAULT 'manual',     -- manual | auto | wecom | rule
    employee_id INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, customer_id, tag_id)
);
-- Leads with tag_id so deleting a tag can check the foreign key by index.
CREATE INDEX customer_tag_tag ON customer_tag(tag_id, tenant_id);

-- status: active | dismissed
CREATE TABLE group_chat (
    id             INTEGER PRIMARY KEY,
    tenant_id      INTEGER NOT NULL REFERENCES tenant(tenant_id),
    chat_id        TEXT NOT NULL,
    name           TEXT,
    owner_userid   TEXT,
    notice         TEXT,
    status         TEXT NOT NULL DEFAULT 'active',
    member_version TEXT,
    created_at     INTEGER NOT NULL,
    dismissed_at   INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX group_chat_id ON group_chat(tenant_id, chat_id);

-- status: in | left
CREATE TABLE group_member (
    tenant_id   INTEGER NOT NULL,
    group_id    INTEGER NOT NULL REFERENCES group_chat(id),
    member_id   TEXT NOT NULL,          -- WeCom userid or external_userid
    customer_id INTEGER REFERENCES customer(id),
    employee_id INTEGER REFERENCES employee(id),
    status      TEXT NOT NULL DEFAULT 'in',
    join_scene  INTEGER,
    quit_scene  INTEGER,
    joined_at   INTEGER,
    left_at     INTEGER,
    PRIMARY KEY (tenant_id, group_id, member_id)
);
CREATE INDEX group_member_customer ON group_member(tenant_id, customer_id);

CREATE TABLE event (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    customer_id INTEGER,
    type        TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    employee_id INTEGER,
    source      TEXT NOT NULL,          -- wecom | api | system
    idem_key    TEXT,
    -- events_idem_hash(idem_key) (src/ingest/events.c): the idempotency index
    -- holds this 8-byte hash instead of the key. NULL without a key, and for
    -- the rare key whose hash another key already holds: that key's
    -- uniqueness is kept in event_idem_overflow.
    idem_hash   INTEGER,
    props       TEXT
);
CREATE INDEX event_customer ON event(tenant_id, customer_id, ts);
CREATE UNIQUE INDEX event_idem ON event(tenant_id, idem_hash) WHERE idem_hash IS NOT NULL;

-- Idempotency keys that collided on idem_hash with a different stored key.
CREATE TABLE event_idem_overflow (
    tenant_id   INTEGER NOT NULL,
    idem_key    TEXT NOT NULL,
    event_id    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, idem_key)
) WITHOUT ROWID;

CREATE TABLE api_token (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,       -- 0 = platform (service provider) token
    token_hash  TEXT NOT NULL,
    role        TEXT NOT NULL,          -- admin | operator | manager | employee
    employee_id INTEGER REFERENCES employee(id),
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE UNIQUE INDEX api_token_hash ON api_token(token_hash);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    actor       TEXT NOT NULL,          -- token:<id> | cli | wecom | system
    action      TEXT NOT NULL,
    target      TEXT,
    count       INTEGER NOT NULL DEFAULT 1,
    detail      TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, created_at);

CREATE TABLE processed_callback (
    tenant_id   INTEGER NOT NULL,
    dedupe_key  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dedupe_key)
) WITHOUT ROWID;

-- 0005: on-the-job and resignation transfers (在职继承 / 离职继承), one row per
-- customer moved from a handover employee to a takeover employee.
--
-- state: requested  the transfer_customer call is queued in the outbox
--        waiting    WeCom started it (errcode 0, or 40100/40129 "already in
--                   transfer" after a resend); the customer may still refuse
--        done       the takeover's add_external_contact, or the handover's
--                   del_external_contact Source=DELETE_BY_TRANSFER, arrived
--        refused    a transfer_fail callback (FailReason in error)
--        failed     WeCom refused the call for this customer (error names why)
-- batch_id groups the rows sent in one call (≤100 customers): the id of the
-- batch's first row; the outbox row's ref is "transfer_batch:<batch_id>".
CREATE TABLE transfer (
    id                    INTEGER PRIMARY KEY,
    tenant_id             INTEGER NOT NULL REFERENCES tenant(tenant_id),
    customer_id           INTEGER NOT NULL REFERENCES customer(id),
    handover_employee_id  INTEGER NOT NULL REFERENCES employee(id),
    takeover_employee_id  INTEGER NOT NULL REFERENCES employee(id),
    kind                  TEXT NOT NULL,            -- on_job | resigned
    state                 TEXT NOT NULL,
    batch_id              INTEGER,
    outbox_id             INTEGER,
    errcode               INTEGER,
    error                 TEXT,
    message               TEXT,
    requested_by          TEXT,
    requested_at          INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    takeover_at           INTEGER
);
CREATE INDEX transfer_customer ON transfer(tenant_id, customer_id, state);
CREATE INDEX transfer_batch ON transfer(tenant_id, batch_id);
CREATE INDEX transfer_state ON transfer(tenant_id, state, id);
CREATE INDEX transfer_handover ON transfer(tenant_id, handover_employee_id, id);
CREATE INDEX transfer_takeover ON transfer(tenant_id, takeover_employee_id, id);

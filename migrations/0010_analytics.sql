-- 0010: what analytics (docs/ANALYTICS.md) needs from the store beyond the
-- customer data: acquisition spend per channel and local day, the input of
-- CAC and per-link ROI. channel is the relationship's `state` (the contact
-- way's channel); day is the local date 'YYYY-MM-DD' in the tenant's time
-- zone; amount in cents. One row per (channel, day): a new figure replaces
-- the old one.
CREATE TABLE acquisition_spend (
    tenant_id    INTEGER NOT NULL REFERENCES tenant(tenant_id),
    channel      TEXT NOT NULL,
    day          TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, channel, day)
) WITHOUT ROWID;
CREATE INDEX acquisition_spend_day ON acquisition_spend(tenant_id, day);

-- 0006: undelivered outbox calls by the domain row they act on (ref), e.g. a
-- relationship whose new remark WeCom has not received yet: the sync keeps
-- Siyu's value until then instead of WeCom's stale one.
CREATE INDEX outbox_open_ref ON outbox(tenant_id, ref) WHERE state IN ('pending','sending','failed');
